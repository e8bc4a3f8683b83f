//! The committed policy modules are the recorded bytes. `scripts/build-policies.sh` builds the
//! modules of `stdlib/policies/` into `stdlib/wasm/` and those of `policies/examples/` into
//! `policies/examples/wasm/`, each set with a `HASHES` file (the toolchain, the hash of the
//! sources, then one blake3 per module). Whether the sources still build to those bytes is
//! that script's business (`--check`; CI rebuilds only when the sources' record is stale);
//! here, on every `cargo test`, the files themselves are held to their `HASHES`, and the
//! copies the promotion example runs to the example modules.

use std::collections::BTreeMap;
use std::path::Path;

use keelson_tests::repo_root;

pub fn trials() -> Vec<keelson_testkit::harness::Trial> {
    keelson_testkit::trials![
        every_module_is_the_recorded_bytes,
        the_promotion_example_runs_the_example_modules,
    ]
}

/// `name.wasm` → blake3 hex, from a `HASHES` file.
fn recorded(hashes: &Path) -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(hashes)
        .unwrap_or_else(|e| panic!("{}: {e}; run scripts/build-policies.sh", hashes.display()));
    let mut lines = text.lines();
    assert!(
        lines.next().is_some_and(|l| l.starts_with("# built with ")),
        "{} does not start with `# built with <rustc -V>`",
        hashes.display()
    );
    assert!(
        lines
            .next()
            .is_some_and(|l| l.starts_with("# sources sha256:")),
        "{} has no `# sources sha256:…` second line; run scripts/build-policies.sh",
        hashes.display()
    );
    lines
        .map(|l| {
            let (hash, file) = l
                .split_once("  ")
                .unwrap_or_else(|| panic!("{}: a bad line `{l}`", hashes.display()));
            (file.to_string(), hash.to_string())
        })
        .collect()
}

/// The `*.wasm` files of a directory, by name.
fn modules(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "wasm"))
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&p).unwrap())
        })
        .collect()
}

fn every_module_is_the_recorded_bytes() {
    let root = repo_root();
    for set in ["stdlib/wasm", "policies/examples/wasm"] {
        let dir = root.join(set);
        let want = recorded(&dir.join("HASHES"));
        let have = modules(&dir);
        assert!(!want.is_empty(), "{set}/HASHES records no module");
        for (name, hash) in &want {
            let bytes = have
                .get(name)
                .unwrap_or_else(|| panic!("{set}/{name} is recorded in {set}/HASHES but missing"));
            assert_eq!(
                blake3::hash(bytes).to_hex().as_str(),
                hash,
                "{set}/{name} is not the module {set}/HASHES records; run scripts/build-policies.sh"
            );
        }
        for name in have.keys() {
            assert!(
                want.contains_key(name),
                "{set}/{name} is not recorded in {set}/HASHES"
            );
        }
    }
}

fn the_promotion_example_runs_the_example_modules() {
    let root = repo_root();
    let examples = modules(&root.join("policies/examples/wasm"));
    let copies = modules(&root.join("examples/promotion/policies"));
    assert!(
        !copies.is_empty(),
        "examples/promotion/policies has no module"
    );
    for (name, bytes) in &copies {
        assert!(
            examples.get(name) == Some(bytes),
            "examples/promotion/policies/{name} is not policies/examples/wasm/{name}; copy it after scripts/build-policies.sh"
        );
    }
}
