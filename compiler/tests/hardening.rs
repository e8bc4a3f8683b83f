//! Bad input tried as a new user would, through the binary: paths that
//! lead out of the estate, honest dry runs, a summary that counts every
//! file, one writer at a time, and clear errors for the usual mistakes.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::support::{copy_tree, repo_root};

pub fn trials() -> Vec<keelson_testkit::harness::Trial> {
    keelson_testkit::trials![
        a_manifest_directory_symlinked_out_of_the_estate_is_refused_where_it_is_named,
        a_manifest_symlinked_out_of_the_estate_is_refused_and_one_inside_is_followed,
        a_snapshot_values_file_or_policy_module_symlinked_out_of_the_estate_is_refused,
        a_dry_run_refuses_where_the_compile_would_and_writes_nothing,
        a_dry_run_lists_exactly_what_the_compile_then_does,
        a_dry_run_into_a_new_output_creates_nothing_and_reports_estate_errors_as_json,
        the_summary_counts_every_file_written_the_lock_included,
        concurrent_compiles_into_one_output_are_serialised,
        a_second_run_waits_and_says_so_once_and_no_wait_fails_at_once,
        a_lock_left_by_a_killed_run_never_blocks,
        an_output_that_is_a_file_is_named_as_such,
        an_empty_estate_file_is_called_empty,
        nul_bytes_are_visible_in_snippets,
        policy_hash_refuses_a_file_that_is_not_a_module,
    ]
}

/// Every compile here runs at one fixed `--now`, so trees compare equal.
const NOW: &str = "2026-11-23T09:30:00Z";

/// A line of the outside file; it must never reach a generated tree.
const OUTSIDE_MARKER: &str = "outside-the-estate-marker";

/// The one door (`support::keelson`), as a `Command` these tests redirect.
fn bin() -> Command {
    crate::support::keelson(std::iter::empty::<&str>())
        .env_remove("KEELSON_TEST_CRASH_AFTER")
        .into_command()
}

/// Runs keelson in `cwd`; `compile` gets the fixed `--now` and no cache.
fn keelson(cwd: &Path, args: &[&str]) -> Output {
    keelson_env(cwd, args, &[])
}

fn keelson_env(cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = bin();
    cmd.args(args).current_dir(cwd);
    if args.first() == Some(&"compile") {
        cmd.args(["--now", NOW, "--no-cache"]);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("keelson runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A scratch directory with a copy of the quickstart in `estate/`.
fn quickstart() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_tree(
        &repo_root().join("examples/quickstart"),
        &dir.path().join("estate"),
    );
    dir
}

/// Every file under `dir` (hidden ones too, but not `.git`), relative.
fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            if e.file_name() == ".git" {
                continue;
            }
            if e.file_type().unwrap().is_dir() {
                walk(root, &p, out);
            } else {
                let rel = p.strip_prefix(root).unwrap().to_string_lossy();
                out.insert(rel.replace('\\', "/"), std::fs::read(&p).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// `file:line:col` of the first occurrence of `needle` in the estate file,
/// as the concise format prints it.
fn position(file: &Path, needle: &str) -> String {
    let text = std::fs::read_to_string(file).unwrap();
    let at = text.find(needle).expect("the needle is in the file");
    let line = text[..at].matches('\n').count() + 1;
    let col = at - text[..at].rfind('\n').map_or(0, |i| i + 1) + 1;
    format!(
        "{}:{line}:{col}",
        file.file_name().unwrap().to_string_lossy()
    )
}

/// A directory outside the estate holding a YAML file and a snapshot.
fn outside(dir: &Path) -> PathBuf {
    let out = dir.join("outside");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(
        out.join("leak.yaml"),
        format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: leak\ndata:\n  x: {OUTSIDE_MARKER}\n"
        ),
    )
    .unwrap();
    std::fs::copy(
        repo_root().join("examples/quickstart/manifests/hello/deployment.yaml"),
        out.join("deployment.yaml"),
    )
    .unwrap();
    std::fs::copy(
        repo_root().join("examples/quickstart/tags.json"),
        out.join("tags.json"),
    )
    .unwrap();
    out
}

#[cfg(unix)]
fn symlink(target: &Path, link: &Path) {
    std::os::unix::fs::symlink(target, link).unwrap();
}

fn assert_nothing_from_outside(out: &Path) {
    for (path, bytes) in tree(out) {
        assert!(
            !String::from_utf8_lossy(&bytes).contains(OUTSIDE_MARKER),
            "{path} holds a file from outside the estate"
        );
    }
}

// 1. Files stay inside the estate.

#[cfg(unix)]
fn a_manifest_directory_symlinked_out_of_the_estate_is_refused_where_it_is_named() {
    let dir = quickstart();
    let estate = dir.path().join("estate");
    let outside = outside(dir.path());
    let manifests = estate.join("manifests/hello");
    std::fs::remove_dir_all(&manifests).unwrap();
    symlink(&outside, &manifests);

    for command in ["check", "compile"] {
        let mut args = vec![command, "estate", "--format", "concise"];
        if command == "compile" {
            args.extend(["-o", "out"]);
        }
        let o = keelson(dir.path(), &args);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(1), "{command}: {err}");
        assert!(
            err.contains("the manifest directory `./manifests/hello` leads out of the estate through a symlink"),
            "{command}: {err}"
        );
        let at = position(&estate.join("estate.kdl"), "\"./manifests/hello\"");
        assert!(err.contains(&format!("--> {at}")), "{command}: {err}");
        assert!(
            err.contains("help: keelson reads only files inside the estate"),
            "{err}"
        );
    }
    assert!(
        !dir.path().join("out").exists(),
        "a refused compile wrote nothing"
    );
}

#[cfg(unix)]
fn a_manifest_symlinked_out_of_the_estate_is_refused_and_one_inside_is_followed() {
    let dir = quickstart();
    let estate = dir.path().join("estate");
    let outside = outside(dir.path());
    let manifests = estate.join("manifests/hello");
    // Inside the estate: a shared file and a shared directory, linked.
    std::fs::create_dir_all(estate.join("shared/extra")).unwrap();
    std::fs::write(
        estate.join("shared/config.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: shared-config\n",
    )
    .unwrap();
    std::fs::write(
        estate.join("shared/extra/more.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: shared-more\n",
    )
    .unwrap();
    symlink(
        Path::new("../../shared/config.yaml"),
        &manifests.join("config.yaml"),
    );
    symlink(Path::new("../../shared/extra"), &manifests.join("extra"));
    // A link back up must not loop.
    symlink(Path::new(".."), &manifests.join("up"));
    let o = keelson(dir.path(), &["compile", "estate", "-o", "out"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = tree(&dir.path().join("out"));
    let base = "k8s/hello/base";
    assert!(
        String::from_utf8_lossy(&out[&format!("{base}/config.yaml")]).contains("shared-config"),
        "a symlinked file inside the estate is copied: {:?}",
        out.keys()
    );
    assert!(
        out.contains_key(&format!("{base}/extra/more.yaml")),
        "{:?}",
        out.keys()
    );

    // Out of the estate: refused, at the node naming the directory.
    symlink(&outside.join("leak.yaml"), &manifests.join("leak.yaml"));
    let before = tree(&dir.path().join("out"));
    let o = keelson(
        dir.path(),
        &["compile", "estate", "-o", "out", "--format", "concise"],
    );
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("the manifest `./manifests/hello/leak.yaml` leads out of the estate through a symlink, to `"),
        "{err}"
    );
    let at = position(&estate.join("estate.kdl"), "\"./manifests/hello\"");
    assert!(err.contains(&format!("--> {at}")), "{err}");
    assert_eq!(tree(&dir.path().join("out")), before, "nothing was written");
    assert_nothing_from_outside(&dir.path().join("out"));
    // `check` says so too.
    let o = keelson(dir.path(), &["check", "estate"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("leads out of the estate"),
        "{}",
        stderr(&o)
    );
}

#[cfg(unix)]
fn a_snapshot_values_file_or_policy_module_symlinked_out_of_the_estate_is_refused() {
    let dir = quickstart();
    let estate = dir.path().join("estate");
    let outside = outside(dir.path());
    std::fs::copy(
        repo_root().join("stdlib/wasm/deny-mutable-tags.wasm"),
        outside.join("policy.wasm"),
    )
    .unwrap();
    std::fs::write(
        outside.join("values.yaml"),
        format!("x: {OUTSIDE_MARKER}\n"),
    )
    .unwrap();
    std::fs::remove_file(estate.join("tags.json")).unwrap();
    symlink(&outside.join("tags.json"), &estate.join("tags.json"));
    symlink(&outside.join("values.yaml"), &estate.join("values.yaml"));
    symlink(&outside.join("policy.wasm"), &estate.join("policy.wasm"));
    let kdl = estate.join("estate.kdl");
    let mut text = std::fs::read_to_string(&kdl).unwrap();
    text.push_str(concat!(
        "\npolicy \"local\" source=\"policy.wasm\"\n",
        "app \"podinfo\" {\n",
        "    chart \"podinfo\" repo=\"https://stefanprodan.github.io/podinfo\" version=\"6.7.0\" {\n",
        "        values-file \"values.yaml\"\n",
        "    }\n",
        "    deploy \"dev\" cluster=\"mgmt\" namespace=\"podinfo\"\n",
        "}\n",
    ));
    std::fs::write(&kdl, text).unwrap();

    let o = keelson(
        dir.path(),
        &["compile", "estate", "-o", "out", "--format", "concise"],
    );
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    for (what, named) in [
        ("the snapshot `tags.json`", "\"./tags.json\""),
        ("the values file `values.yaml`", "\"values.yaml\""),
        ("the policy module `policy.wasm`", "source=\"policy.wasm\""),
    ] {
        assert!(
            err.contains(&format!("{what} leads out of the estate through a symlink")),
            "{what}: {err}"
        );
        assert!(
            err.contains(&format!("--> {}", position(&kdl, named))),
            "{what} is located: {err}"
        );
    }
    assert!(
        !dir.path().join("out").exists(),
        "a refused compile wrote nothing"
    );
}

// 2. Honest dry runs.

/// The paths `compile --dry-run` lists on stdout under `verb`.
fn listed(o: &Output, verb: &str) -> BTreeSet<String> {
    stdout(o)
        .lines()
        .filter_map(|l| l.strip_prefix(&format!("{verb} ")))
        .map(|l| l.split(" (").next().unwrap().to_string())
        .collect()
}

fn a_dry_run_refuses_where_the_compile_would_and_writes_nothing() {
    let dir = quickstart();
    let o = keelson(dir.path(), &["compile", "estate", "-o", "out"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let edited = dir.path().join("out/apps/lab/mgmt/hello-prod.yaml");
    let text = std::fs::read_to_string(&edited).unwrap();
    std::fs::write(&edited, text.replace("selfHeal: true", "selfHeal: false")).unwrap();
    let before = tree(&dir.path().join("out"));

    let o = keelson(dir.path(), &["compile", "estate", "-o", "out", "--dry-run"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stdout(&o)
            .contains("refuse apps/lab/mgmt/hello-prod.yaml (generated by keelson, then edited)"),
        "{}",
        stdout(&o)
    );
    assert!(
        stderr(&o).contains("keelson would overwrite 1 file in `out`"),
        "{}",
        stderr(&o)
    );
    assert!(stderr(&o).contains("help:"), "{}", stderr(&o));

    let o = keelson(
        dir.path(),
        &[
            "compile",
            "estate",
            "-o",
            "out",
            "--dry-run",
            "--format",
            "json",
        ],
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).expect("one JSON document");
    assert_eq!(doc["version"], 1);
    assert_eq!(doc["outcome"], "refused");
    assert_eq!(
        doc["files"]["refused"],
        serde_json::json!([{"path": "apps/lab/mgmt/hello-prod.yaml", "reason": "hand-edited"}])
    );
    assert_eq!(doc["diagnostics"], serde_json::json!([]));

    // With --force it would overwrite it, and says so.
    let o = keelson(
        dir.path(),
        &["compile", "estate", "-o", "out", "--dry-run", "--force"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("would overwrite apps/lab/mgmt/hello-prod.yaml (--force)"),
        "{}",
        stderr(&o)
    );
    assert_eq!(
        tree(&dir.path().join("out")),
        before,
        "a dry run writes nothing, not even a journal"
    );
}

fn a_dry_run_lists_exactly_what_the_compile_then_does() {
    let dir = quickstart();
    let o = keelson(dir.path(), &["compile", "estate", "-o", "out"]);
    assert!(o.status.success(), "{}", stderr(&o));
    // Remove a stage (files go, kustomizations and the lock change) and add
    // a manifest (a file comes).
    let kdl = dir.path().join("estate/estate.kdl");
    let text = std::fs::read_to_string(&kdl).unwrap();
    let prod = "    deploy \"prod\" cluster=\"mgmt\" namespace=\"hello\" replicas=2\n";
    assert!(text.contains(prod));
    std::fs::write(&kdl, text.replace(prod, "")).unwrap();
    std::fs::write(
        dir.path().join("estate/manifests/hello/config.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: hello\n",
    )
    .unwrap();
    let before = tree(&dir.path().join("out"));

    let dry = keelson(dir.path(), &["compile", "estate", "-o", "out", "--dry-run"]);
    assert!(dry.status.success(), "{}", stderr(&dry));
    assert_eq!(
        tree(&dir.path().join("out")),
        before,
        "the dry run wrote nothing"
    );
    let json = keelson(
        dir.path(),
        &[
            "compile",
            "estate",
            "-o",
            "out",
            "--dry-run",
            "--format",
            "json",
        ],
    );
    assert!(json.status.success(), "{}", stderr(&json));
    let doc: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(doc["outcome"], "changes");

    let o = keelson(dir.path(), &["compile", "estate", "-o", "out"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let after = tree(&dir.path().join("out"));
    let created: BTreeSet<String> = after
        .keys()
        .filter(|p| !before.contains_key(*p))
        .cloned()
        .collect();
    let removed: BTreeSet<String> = before
        .keys()
        .filter(|p| !after.contains_key(*p))
        .cloned()
        .collect();
    let updated: BTreeSet<String> = after
        .iter()
        .filter(|(p, b)| before.get(*p).is_some_and(|old| old != *b))
        .map(|(p, _)| p.clone())
        .collect();
    assert!(!created.is_empty() && !removed.is_empty() && updated.contains("keelson.lock"));
    let as_set = |v: &serde_json::Value| -> BTreeSet<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_string())
            .collect()
    };
    for (verb, key, done) in [
        ("create", "created", &created),
        ("update", "updated", &updated),
        ("remove", "removed", &removed),
    ] {
        assert_eq!(&listed(&dry, verb), done, "{verb}");
        assert_eq!(&as_set(&doc["files"][key]), done, "{key} in JSON");
    }
    let unchanged = after.len() - created.len() - updated.len();
    assert_eq!(doc["files"]["unchanged"], unchanged);
    assert_eq!(doc["files"]["total"], after.len());
    assert!(
        stderr(&dry).contains(&format!(
            "dry run: would compile {} files into out: {} created, {} updated, {} removed, {unchanged} unchanged; nothing written",
            after.len(),
            created.len(),
            updated.len(),
            removed.len()
        )),
        "{}",
        stderr(&dry)
    );
}

fn a_dry_run_into_a_new_output_creates_nothing_and_reports_estate_errors_as_json() {
    let dir = quickstart();
    let o = keelson(dir.path(), &["compile", "estate", "-o", "out", "--dry-run"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        !dir.path().join("out").exists(),
        "the dry run created the output"
    );
    assert!(
        listed(&o, "create").contains("keelson.lock"),
        "{}",
        stdout(&o)
    );

    let kdl = dir.path().join("estate/estate.kdl");
    let text = std::fs::read_to_string(&kdl).unwrap();
    std::fs::write(&kdl, text.replace("^1.0", "^9.0")).unwrap();
    let o = keelson(
        dir.path(),
        &[
            "compile",
            "estate",
            "-o",
            "out",
            "--dry-run",
            "--format",
            "json",
        ],
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(doc["outcome"], "invalid-estate");
    assert_eq!(doc["files"], serde_json::Value::Null);
    assert_eq!(doc["diagnostics"][0]["code"], "keelson::no-matching-tag");
    // Without --dry-run, --format json is still the diagnostics array.
    let o = keelson(
        dir.path(),
        &["compile", "estate", "-o", "out", "--format", "json"],
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let diags: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(diags[0]["code"], "keelson::no-matching-tag");
}

// 3. The summary counts every file.

fn the_summary_counts_every_file_written_the_lock_included() {
    let dir = quickstart();
    let o = keelson(dir.path(), &["compile", "estate", "-o", "out"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let n = tree(&dir.path().join("out")).len();
    assert!(tree(&dir.path().join("out")).contains_key("keelson.lock"));
    assert!(
        stderr(&o).contains(&format!(
            "compiled {n} files into out: {n} created, 0 updated, 0 removed, 0 unchanged"
        )),
        "{}",
        stderr(&o)
    );
    let o = keelson(dir.path(), &["compile", "estate", "-o", "out"]);
    assert!(
        stderr(&o).contains(&format!(
            "compiled {n} files into out: 0 created, 0 updated, 0 removed, {n} unchanged"
        )),
        "{}",
        stderr(&o)
    );
}

// 4. One writer at a time.

fn spawn(cwd: &Path, args: &[&str], log: &Path) -> std::process::Child {
    let mut cmd = bin();
    cmd.args(args)
        .current_dir(cwd)
        .stdout(Stdio::from(
            std::fs::File::create(log.with_extension("out")).unwrap(),
        ))
        .stderr(Stdio::from(std::fs::File::create(log).unwrap()));
    if args.first() == Some(&"compile") {
        cmd.args(["--now", NOW, "--no-cache"]);
    }
    cmd.spawn().unwrap()
}

fn concurrent_compiles_into_one_output_are_serialised() {
    let dir = quickstart();
    let o = keelson(dir.path(), &["compile", "estate", "-o", "reference"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let reference = tree(&dir.path().join("reference"));
    let started = Instant::now();
    let mut rounds = 0;
    // Bounded in time: up to 40 rounds, as many as fit in 30 s, at least 3.
    while rounds < 40 && (rounds < 3 || started.elapsed() < Duration::from_secs(30)) {
        let out = format!("out{rounds}");
        let mut runs = Vec::new();
        for k in 0..3 {
            let log = dir.path().join(format!("{out}-{k}.log"));
            runs.push((
                log.clone(),
                spawn(dir.path(), &["compile", "estate", "-o", &out], &log),
            ));
        }
        let log = dir.path().join(format!("{out}-dry.log"));
        let dry = spawn(
            dir.path(),
            &["compile", "estate", "-o", &out, "--dry-run"],
            &log,
        );
        runs.push((log, dry));
        for (log, mut child) in runs {
            let status = child.wait().unwrap();
            let err = std::fs::read_to_string(&log).unwrap();
            assert!(status.success(), "round {rounds}: {err}");
            assert!(
                err.matches("waiting for another keelson").count() <= 1,
                "says it once: {err}"
            );
            if log.to_string_lossy().ends_with("dry.log") {
                // A whole tree or none: everything to create, or nothing.
                let listing = std::fs::read_to_string(log.with_extension("out")).unwrap();
                let n = listing.lines().count();
                assert!(n == 0 || n == reference.len(), "round {rounds}: {listing}");
            }
        }
        assert_eq!(tree(&dir.path().join(&out)), reference, "round {rounds}");
        rounds += 1;
    }
}

#[cfg(unix)]
fn a_second_run_waits_and_says_so_once_and_no_wait_fails_at_once() {
    let dir = quickstart();
    let out = dir.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    // This test holds the lock a compile takes.
    let held = std::fs::File::open(&out).unwrap();
    held.lock().unwrap();

    let o = keelson(dir.path(), &["compile", "estate", "-o", "out", "--no-wait"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("another keelson") && err.contains("writing out"),
        "{err}"
    );
    #[cfg(target_os = "linux")]
    assert!(
        err.contains(&format!("(pid {})", std::process::id())),
        "{err}"
    );
    assert!(err.contains("help:"), "{err}");
    // A dry run and a diff read: they wait for a writer too.
    for args in [
        &["compile", "estate", "-o", "out", "--dry-run", "--no-wait"][..],
        &[
            "diff",
            "estate",
            "--against",
            "out",
            "--offline",
            "--no-wait",
        ][..],
    ] {
        let o = keelson(dir.path(), args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains("another keelson"), "{}", stderr(&o));
    }

    let log = dir.path().join("waiting.log");
    let mut child = spawn(dir.path(), &["compile", "estate", "-o", "out"], &log);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !std::fs::read_to_string(&log)
        .unwrap()
        .contains("waiting for another keelson")
    {
        assert!(
            Instant::now() < deadline,
            "the second run never said it waits"
        );
        assert!(child.try_wait().unwrap().is_none(), "it did not wait");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(200));
    assert!(child.try_wait().unwrap().is_none(), "it waits for the lock");
    drop(held);
    assert!(child.wait().unwrap().success());
    let err = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        err.matches("waiting for another keelson").count(),
        1,
        "{err}"
    );
    #[cfg(target_os = "linux")]
    assert!(
        err.contains(&format!(
            "waiting for another keelson (pid {}) writing out",
            std::process::id()
        )),
        "{err}"
    );
    assert!(err.contains("compiled "), "{err}");

    // Readers share: with a reader holding the output, a dry run goes
    // ahead and a compile waits.
    let reader = std::fs::File::open(&out).unwrap();
    reader.lock_shared().unwrap();
    let o = keelson(
        dir.path(),
        &["compile", "estate", "-o", "out", "--dry-run", "--no-wait"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let o = keelson(dir.path(), &["compile", "estate", "-o", "out", "--no-wait"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    #[cfg(target_os = "linux")]
    assert!(stderr(&o).contains("reading out"), "{}", stderr(&o));
}

fn a_lock_left_by_a_killed_run_never_blocks() {
    let dir = quickstart();
    let o = keelson_env(
        dir.path(),
        &["compile", "estate", "-o", "out"],
        &[("KEELSON_TEST_CRASH_AFTER", "1")],
    );
    assert!(!o.status.success(), "the run was killed mid-write");
    let o = keelson(dir.path(), &["compile", "estate", "-o", "out", "--no-wait"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("completed an interrupted compile first"),
        "{}",
        stderr(&o)
    );
}

// 5. Clear errors.

fn an_output_that_is_a_file_is_named_as_such() {
    let dir = quickstart();
    std::fs::write(dir.path().join("out"), "a file").unwrap();
    for args in [
        &["compile", "estate", "-o", "out"][..],
        &["compile", "estate", "-o", "out", "--dry-run"][..],
        &["diff", "estate", "--against", "out", "--offline"][..],
    ] {
        let o = keelson(dir.path(), args);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.contains("error: the output `out` is a file, not a directory"),
            "{args:?}: {err}"
        );
        assert!(err.contains("help:"), "{err}");
        assert!(!err.contains("Not a directory"), "{err}");
    }
    assert_eq!(
        std::fs::read_to_string(dir.path().join("out")).unwrap(),
        "a file"
    );
}

fn an_empty_estate_file_is_called_empty() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("estate")).unwrap();
    std::fs::write(dir.path().join("estate/estate.kdl"), "").unwrap();
    let o = keelson(dir.path(), &["check", "estate", "--format", "concise"]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("error[empty-file]: the estate file `estate.kdl` is empty"),
        "{err}"
    );
    assert!(err.contains("--> estate.kdl:1:1"), "{err}");
    assert!(!err.contains("no `repo`"), "{err}");
    // Comments only.
    std::fs::write(dir.path().join("estate/estate.kdl"), "// later\n").unwrap();
    let o = keelson(dir.path(), &["check", "estate"]);
    assert!(
        stderr(&o).contains("the estate file `estate.kdl` holds only comments"),
        "{}",
        stderr(&o)
    );
}

fn nul_bytes_are_visible_in_snippets() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("estate")).unwrap();
    std::fs::write(
        dir.path().join("estate/estate.kdl"),
        "repo \"https://github.com/acme/gitops.git\"\nsite \"l\0b\"\n",
    )
    .unwrap();
    for format in ["human", "concise"] {
        let o = keelson(dir.path(), &["check", "estate", "--format", format]);
        assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
        assert!(
            !o.stderr.contains(&0),
            "{format}: a NUL reached the terminal"
        );
        assert!(stderr(&o).contains('\u{2400}'), "{format}: {}", stderr(&o));
    }
}

fn policy_hash_refuses_a_file_that_is_not_a_module() {
    let root = repo_root();
    let o = keelson(&root, &["policy", "hash", "Cargo.toml"]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("`Cargo.toml` is not a WebAssembly module"),
        "{err}"
    );
    assert!(err.contains("help:"), "{err}");
    assert!(o.stdout.is_empty());
    // A module, and WebAssembly text, hash as before.
    let o = keelson(&root, &["policy", "hash", "stdlib/wasm/soak-time.wasm"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).starts_with("blake3:"));
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("p.wat"), "(module)\n").unwrap();
    let o = keelson(dir.path(), &["policy", "hash", "p.wat"]);
    assert!(o.status.success(), "{}", stderr(&o));
}
