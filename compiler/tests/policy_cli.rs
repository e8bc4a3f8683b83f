//! `keelson policy hash|test|new` and `keelson explain`, through the binary.

use std::path::Path;

use crate::support::{Run, copy_tree, keelson, repo_root as root};

pub fn trials() -> Vec<keelson_testkit::harness::Trial> {
    keelson_testkit::trials![
        a_new_image_held_by_gates_in_a_deployed_stage_is_an_error,
        a_module_changed_since_the_lock_pinned_it_stops_the_compile,
        explain_names_each_policy_verdict,
        test_runs_one_call_and_prints_the_verdict,
        hash_prints_the_recorded_pin,
        new_scaffolds_a_crate_and_never_overwrites,
    ]
}

/// `keelson ARGS` at the repository root.
fn run(args: &[&str]) -> Run {
    keelson(args).cwd(root()).run()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn hash_prints_the_recorded_pin() {
    let o = run(&["policy", "hash", "stdlib/wasm/soak-time.wasm"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let hashes = std::fs::read_to_string(root().join("stdlib/wasm/HASHES")).unwrap();
    let line = hashes
        .lines()
        .find(|l| l.ends_with("  soak-time.wasm"))
        .unwrap();
    assert_eq!(text(&o.stdout).trim(), format!("blake3:{}", &line[..64]));
}

fn test_runs_one_call_and_prints_the_verdict() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("input.json");
    std::fs::write(
        &input,
        r#"{"abi":1,"entry":"promote","context":{"policy":"soak","app":"a","stage":"prd","image":"i","repository":"r","strategy":"semver","now":"2026-11-23T10:00:00Z","params":{"hours":24}},
           "upstream":{"stage":"stg","tag":"1.0.0","digest":null,"since":"2026-11-23T09:00:00Z","age_seconds":3600},"current":null,"history":[]}"#,
    )
    .unwrap();
    let input = input.to_str().unwrap();
    let o = run(&[
        "policy",
        "test",
        "stdlib/wasm/soak-time.wasm",
        "--input",
        input,
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let out: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(out["decision"], "hold", "{out}");
    assert!(text(&o.stderr).contains("fuel used"));

    // Bad params: the policy's own error, exit 1.
    let bad = dir.path().join("bad.json");
    let text_in = std::fs::read_to_string(input)
        .unwrap()
        .replace(r#""hours":24"#, r#""hourz":24"#);
    std::fs::write(&bad, text_in).unwrap();
    let o = run(&[
        "policy",
        "test",
        "stdlib/wasm/soak-time.wasm",
        "--input",
        bad.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("reported an error"),
        "{}",
        text(&o.stderr)
    );

    // A policy without params refuses ones it does not know.
    let o = run(&[
        "policy",
        "test",
        "stdlib/wasm/same-digest.wasm",
        "--input",
        input,
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("takes no params"),
        "{}",
        text(&o.stderr)
    );
}

fn new_scaffolds_a_crate_and_never_overwrites() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let o = run(&["policy", "new", "team-rules", "--dir", d]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let krate = dir.path().join("team-rules");
    for f in [
        "Cargo.toml",
        "src/lib.rs",
        "README.md",
        "input.json",
        ".cargo/config.toml",
        "vendor/keelson-policy/Cargo.toml",
        "vendor/keelson-policy/src/lib.rs",
        "vendor/keelson-policy/src/time.rs",
        "vendor/keelson-policy/src/version.rs",
    ] {
        assert!(krate.join(f).is_file(), "{f}");
    }
    let cargo = std::fs::read_to_string(krate.join("Cargo.toml")).unwrap();
    assert!(
        cargo.contains("team-rules") && !cargo.contains("{{"),
        "{cargo}"
    );
    let o = run(&["policy", "new", "team-rules", "--dir", d]);
    assert_eq!(o.status.code(), Some(2));
    let o = run(&["policy", "new", "Team_Rules", "--dir", d]);
    assert_eq!(o.status.code(), Some(2));
}

fn explain_names_each_policy_verdict() {
    let o = run(&[
        "explain",
        "examples/promotion",
        "shop",
        "--now",
        "2026-11-23T09:30:00Z",
        "--no-cache",
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let out = text(&o.stdout);
    for want in [
        "latest      denied by policy `no-mutable-tags`",
        "1.5.0-rc.1  denied by policy `no-prereleases`",
        "pick: 1.4.0",
        "gate `change-freeze`: promote",
        "gate `soak-one-day`: hold",
        "waits: the stage has never run this app",
    ] {
        assert!(out.contains(want), "no `{want}` in:\n{out}");
    }
    assert!(text(&o.stderr).contains("promotion-waiting"));
    let o = run(&["explain", "examples/promotion", "shop", "--stage", "nope"]);
    assert_eq!(o.status.code(), Some(2));
}

/// A copy of `examples/promotion` in a temporary directory.
fn promotion_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_tree(
        &root().join("examples/promotion"),
        &dir.path().join("estate"),
    );
    dir
}

fn compile_at(dir: &Path, now: &str) -> Run {
    let estate = dir.join("estate");
    let out = dir.join("out");
    run(&[
        "compile",
        estate.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--now",
        now,
        "--no-cache",
    ])
}

fn lock_of(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("out/keelson.lock")).unwrap()
}

fn a_module_changed_since_the_lock_pinned_it_stops_the_compile() {
    let dir = promotion_copy();
    let o = compile_at(dir.path(), "2026-11-23T09:30:00Z");
    assert!(o.status.success(), "{}", text(&o.stderr));
    let before = lock_of(dir.path());
    assert!(before.contains("\"no-downgrade\""), "{before}");
    // Someone swaps the module (the estate has no pin= for it).
    let policies = dir.path().join("estate/policies");
    std::fs::copy(
        policies.join("change-freeze.wasm"),
        policies.join("no-downgrade.wasm"),
    )
    .unwrap();
    let o = compile_at(dir.path(), "2026-11-23T10:00:00Z");
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    let err = text(&o.stderr);
    assert!(err.contains("policy-pin-mismatch"), "{err}");
    assert!(
        err.contains("changed since keelson.lock recorded it"),
        "{err}"
    );
    assert_eq!(
        lock_of(dir.path()),
        before,
        "a failed compile changed the lock"
    );
}

fn a_new_image_held_by_gates_in_a_deployed_stage_is_an_error() {
    let dir = promotion_copy();
    assert!(
        compile_at(dir.path(), "2026-11-23T09:30:00Z")
            .status
            .success()
    );
    // A day later prod runs the app.
    let o = compile_at(dir.path(), "2026-11-24T10:00:00Z");
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(lock_of(dir.path()).contains("\"prod\""));
    // A second image: new in prod, where the soak gate holds it.
    let estate = dir.path().join("estate/estate.kdl");
    let kdl = std::fs::read_to_string(&estate).unwrap().replace(
        "    image \"shop\" repository=\"ghcr.io/acme/shop\" strategy=\"newest-build\"\n",
        "    image \"shop\" repository=\"ghcr.io/acme/shop\" strategy=\"newest-build\"\n    image \"worker\" repository=\"ghcr.io/acme/worker\" strategy=\"semver\"\n",
    );
    std::fs::write(&estate, kdl).unwrap();
    let tags = dir.path().join("estate/tags.json");
    let mut snapshot: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&tags).unwrap()).unwrap();
    snapshot["ghcr.io/acme/worker"] = serde_json::json!([{
        "name": "2.0.0",
        "created": "2026-11-20T00:00:00Z",
        "digest": format!("sha256:{}", "7".repeat(64))
    }]);
    std::fs::write(&tags, snapshot.to_string()).unwrap();
    let before = lock_of(dir.path());
    let o = compile_at(dir.path(), "2026-11-24T10:05:00Z");
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    let err = text(&o.stderr);
    assert!(err.contains("promotion-held"), "{err}");
    assert!(
        err.contains("image `worker` of app `shop` in stage `prod` has never run"),
        "{err}"
    );
    assert_eq!(lock_of(dir.path()), before);
}
