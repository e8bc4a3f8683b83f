//! Every input the fuzzers ever crashed on, replayed by `cargo test`.
//!
//! `fuzz/regressions/<target>/` holds the (minimised) inputs that once
//! crashed a fuzz target, plus a few interesting seeds; `fuzz/seeds/<target>/`
//! holds the seed corpus. Each file goes through `keelson::fuzz_entry::<target>`,
//! the very function the fuzz target (`fuzz/fuzz_targets/<target>.rs`) calls,
//! so the test and the fuzzer cannot drift apart. A file that panics fails
//! the test, which names every such file with its panic. See
//! book/src/fuzzing.md.

use std::path::PathBuf;

use keelson_testkit::harness;

use crate::support::repo_root;

pub fn trials() -> Vec<harness::Trial> {
    keelson_testkit::trials![kdl_lower, policy_json, registry_response]
}

fn fuzz_dir() -> PathBuf {
    repo_root().join("fuzz")
}

/// The files of `fuzz/<kind>/<target>/`, sorted.
fn inputs(kind: &str, target: &str) -> Vec<PathBuf> {
    let dir = fuzz_dir().join(kind).join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

/// Runs every regression and seed input of `target` through `run`; fails
/// naming each input that panicked.
fn replay(target: &str, run: fn(&[u8])) {
    let regressions = inputs("regressions", target);
    assert!(
        !regressions.is_empty(),
        "fuzz/regressions/{target}/ has no inputs"
    );
    let seeds = inputs("seeds", target);
    assert!(!seeds.is_empty(), "fuzz/seeds/{target}/ has no inputs");
    let mut failed = Vec::new();
    for path in regressions.iter().chain(&seeds) {
        let data = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        if let Err(panic) = harness::catch(|| run(&data)) {
            failed.push(format!("{}: {panic}", path.display()));
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {} inputs of `{target}` panicked:\n  {}\nreproduce one with: cargo test -p keelson --test it -- fuzz_regressions::{target}, or scripts/fuzz.sh --reproduce {target} FILE",
        failed.len(),
        regressions.len() + seeds.len(),
        failed.join("\n  ")
    );
}

fn kdl_lower() {
    replay("kdl_lower", keelson::fuzz_entry::kdl_lower);
}

fn policy_json() {
    replay("policy_json", keelson::fuzz_entry::policy_json);
}

fn registry_response() {
    replay("registry_response", keelson::fuzz_entry::registry_response);
}
