//! `keelson compile` as users run it, for the guarantees of the write:
//! determinism, ownership (hand edits refused, foreign files kept), Image
//! Updater write-backs never reverted, nothing written on failure, and a kill
//! at any step of the write recovered by the next run.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Every compile here runs at one fixed `--now`, so trees from separate
/// compiles (whose locks record `since`) compare equal.
const NOW: &str = "2026-11-23T09:30:00Z";

fn keelson(args: &[&str], cwd: &Path, env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_keelson"));
    cmd.args(args).current_dir(cwd).env("NO_COLOR", "1");
    if args.first() == Some(&"compile") {
        cmd.args(["--now", NOW]);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("keelson runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("keelson-compile-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// A copy of the quickstart example in `dir/estate`.
fn quickstart(dir: &Path) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let estate = dir.join("estate");
    copy_dir(&root.join("examples/quickstart"), &estate);
    estate
}

fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    keelson::check::walk(dir)
        .into_iter()
        .map(|p| {
            let rel = p
                .strip_prefix(dir)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/");
            let bytes = std::fs::read(&p).unwrap();
            (rel, bytes)
        })
        .collect()
}

fn compile(dir: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["compile", "estate", "-o", "out"];
    args.extend_from_slice(extra);
    keelson(&args, dir, &[])
}

/// Replaces `from` (which must be there) with `to` in a file.
fn replace_in(path: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.contains(from), "{} has no `{from}`", path.display());
    std::fs::write(path, text.replace(from, to)).unwrap();
}

const REMOVE_PROD: &str = "    deploy \"prod\" cluster=\"mgmt\" namespace=\"hello\" replicas=2\n";

const DEV_OVERLAY: &str = "out/k8s/hello/overlays/dev/kustomization.yaml";

#[test]
fn compiling_twice_anywhere_gives_identical_bytes() {
    let dir = temp_dir("determinism");
    quickstart(&dir);
    let o = compile(&dir, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    // From another working directory, with absolute paths.
    let other = temp_dir("determinism-cwd");
    let estate = dir.join("estate");
    let out2 = other.join("out2");
    let o = keelson(
        &[
            "compile",
            estate.to_str().unwrap(),
            "-o",
            out2.to_str().unwrap(),
        ],
        &other,
        &[],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(tree(&dir.join("out")), tree(&out2));
    // Again into the same directory: nothing changes.
    let o = compile(&dir, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("0 created, 0 updated, 0 removed"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn a_failed_compile_writes_nothing() {
    let dir = temp_dir("fails");
    let estate = quickstart(&dir);
    assert!(compile(&dir, &[]).status.success());
    let before = tree(&dir.join("out"));
    // Break the estate: the image now has no tag matching its constraint.
    replace_in(&estate.join("estate.kdl"), "^1.0", "^9.0");
    let o = compile(&dir, &[]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("no-matching-tag"), "{}", stderr(&o));
    assert!(stderr(&o).contains("nothing was written"), "{}", stderr(&o));
    assert_eq!(tree(&dir.join("out")), before);
}

#[test]
fn a_hand_edited_file_is_refused_until_forced() {
    let dir = temp_dir("hand-edit");
    quickstart(&dir);
    assert!(compile(&dir, &[]).status.success());
    let app = dir.join("out/apps/lab/mgmt/hello-prod.yaml");
    let edited = std::fs::read_to_string(&app)
        .unwrap()
        .replace("selfHeal: true", "selfHeal: false");
    std::fs::write(&app, &edited).unwrap();
    let before = tree(&dir.join("out"));

    let o = compile(&dir, &[]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("apps/lab/mgmt/hello-prod.yaml (generated by keelson, then edited)"),
        "{err}"
    );
    assert!(err.contains("--force"), "{err}");
    assert_eq!(
        tree(&dir.join("out")),
        before,
        "a refused compile must not write"
    );

    let o = compile(&dir, &["--force"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("overwrote apps/lab/mgmt/hello-prod.yaml"),
        "{}",
        stderr(&o)
    );
    assert!(
        std::fs::read_to_string(&app)
            .unwrap()
            .contains("selfHeal: true")
    );
}

#[test]
fn files_keelson_does_not_own_are_kept_and_never_overwritten() {
    let dir = temp_dir("foreign");
    quickstart(&dir);
    let out = dir.join("out");
    std::fs::create_dir_all(out.join(".git")).unwrap();
    std::fs::write(out.join(".git/HEAD"), "ref: refs/heads/main\n").unwrap();
    std::fs::create_dir_all(out.join("apps/lab/mgmt")).unwrap();
    std::fs::write(
        out.join("apps/lab/mgmt/hand-made.yaml"),
        "kind: ConfigMap\n",
    )
    .unwrap();
    std::fs::write(out.join("NOTES.md"), "ours\n").unwrap();
    let o = compile(&dir, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        std::fs::read_to_string(out.join(".git/HEAD")).unwrap(),
        "ref: refs/heads/main\n"
    );
    assert_eq!(
        std::fs::read_to_string(out.join("apps/lab/mgmt/hand-made.yaml")).unwrap(),
        "kind: ConfigMap\n"
    );
    assert_eq!(
        std::fs::read_to_string(out.join("NOTES.md")).unwrap(),
        "ours\n"
    );
    let lock = std::fs::read_to_string(out.join("keelson.lock")).unwrap();
    assert!(
        !lock.contains("hand-made.yaml") && !lock.contains("NOTES.md") && !lock.contains(".git")
    );

    // A foreign file where keelson wants to write is refused, not clobbered.
    let dir = temp_dir("foreign-in-the-way");
    quickstart(&dir);
    std::fs::create_dir_all(dir.join("out")).unwrap();
    std::fs::write(dir.join("out/README.md"), "the team's own README\n").unwrap();
    let o = compile(&dir, &[]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("README.md (not generated by keelson)"),
        "{}",
        stderr(&o)
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("out/README.md")).unwrap(),
        "the team's own README\n"
    );
}

#[test]
fn removed_apps_leave_with_their_files_only() {
    let dir = temp_dir("remove");
    let estate = quickstart(&dir);
    assert!(compile(&dir, &[]).status.success());
    std::fs::write(dir.join("out/k8s/hello/overlays/prod/extra.txt"), "mine\n").unwrap();
    replace_in(&estate.join("estate.kdl"), REMOVE_PROD, "");
    let o = compile(&dir, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!dir.join("out/apps/lab/mgmt/hello-prod.yaml").exists());
    assert!(
        !dir.join("out/k8s/hello/overlays/prod/kustomization.yaml")
            .exists()
    );
    // The directory stays: it holds a file keelson does not own.
    assert_eq!(
        std::fs::read_to_string(dir.join("out/k8s/hello/overlays/prod/extra.txt")).unwrap(),
        "mine\n"
    );
}

#[test]
fn image_updater_write_backs_are_never_reverted() {
    let dir = temp_dir("write-back");
    quickstart(&dir);
    assert!(compile(&dir, &[]).status.success());
    let overlay = dir.join(DEV_OVERLAY);
    let text = std::fs::read_to_string(&overlay).unwrap();
    assert!(text.contains("newTag: 1.1.0"), "{text}");
    // Image Updater commits a newer tag than the snapshot knows, rewriting
    // the file its own way (comments and formatting change).
    let written = "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - ../../base\nimages:\n  - name: ghcr.io/acme/hello\n    newTag: 1.1.7\n";
    std::fs::write(&overlay, written).unwrap();
    let o = compile(&dir, &[]);
    assert!(
        o.status.success(),
        "a write-back is not a hand edit: {}",
        stderr(&o)
    );
    let text = std::fs::read_to_string(&overlay).unwrap();
    assert!(
        text.contains("newTag: 1.1.7"),
        "the write-back was reverted:\n{text}"
    );
    let lock = std::fs::read_to_string(dir.join("out/keelson.lock")).unwrap();
    assert!(
        lock.contains("\"write-back:k8s/hello/overlays/dev/kustomization.yaml\""),
        "{lock}"
    );
    // prod promotes what dev runs now.
    let prod = std::fs::read_to_string(dir.join("out/k8s/hello/overlays/prod/kustomization.yaml"))
        .unwrap();
    assert!(prod.contains("newTag: 1.1.7"), "{prod}");
    // Compiling again is stable.
    let o = compile(&dir, &[]);
    assert!(
        stderr(&o).contains("0 created, 0 updated, 0 removed"),
        "{}",
        stderr(&o)
    );

    // A write-back into `.argocd-source-<app>.yaml` (Image Updater's default
    // target) wins too, and the file stays Image Updater's.
    let source = dir.join("out/k8s/hello/overlays/dev/.argocd-source-hello-dev.yaml");
    std::fs::write(
        &source,
        "kustomize:\n  images:\n  - ghcr.io/acme/hello:1.1.9\n",
    )
    .unwrap();
    let o = compile(&dir, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        std::fs::read_to_string(&overlay)
            .unwrap()
            .contains("newTag: 1.1.9")
    );
    assert!(source.exists());

    // When the tags move past what Image Updater wrote, keelson moves too.
    replace_in(&dir.join("estate/tags.json"), "\"1.1.0\"", "\"1.3.0\"");
    std::fs::remove_file(&source).unwrap();
    let o = compile(&dir, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        std::fs::read_to_string(&overlay)
            .unwrap()
            .contains("newTag: 1.3.0")
    );

    // A change outside `images:` is still a hand edit.
    let text = std::fs::read_to_string(&overlay)
        .unwrap()
        .replace("../../base", "../../other");
    std::fs::write(&overlay, text).unwrap();
    let o = compile(&dir, &[]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
}

#[test]
fn offline_replays_the_lock() {
    let dir = temp_dir("offline");
    let estate = quickstart(&dir);
    assert!(compile(&dir, &[]).status.success());
    let before = tree(&dir.join("out"));
    // The snapshot moves on, but --offline pins what the lock recorded.
    replace_in(&estate.join("tags.json"), "\"1.1.0\"", "\"1.1.5\"");
    let o = compile(&dir, &["--offline"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(tree(&dir.join("out")), before);
    let o = compile(&dir, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        std::fs::read_to_string(dir.join(DEV_OVERLAY))
            .unwrap()
            .contains("newTag: 1.1.5")
    );
}

#[test]
fn a_kill_at_any_step_of_the_write_is_recovered_by_the_next_run() {
    // The change: a new tag everywhere, and the prod stage removed, so the
    // write both replaces and removes files.
    let change = |estate: &Path| {
        replace_in(&estate.join("tags.json"), "\"1.1.0\"", "\"1.1.5\"");
        replace_in(&estate.join("estate.kdl"), REMOVE_PROD, "");
    };
    let reference = temp_dir("kill-reference");
    let estate = quickstart(&reference);
    assert!(compile(&reference, &[]).status.success());
    let old = tree(&reference.join("out"));
    change(&estate);
    assert!(compile(&reference, &[]).status.success());
    let new = tree(&reference.join("out"));
    assert_ne!(old, new);

    let mut step = 1;
    loop {
        let dir = temp_dir(&format!("kill-{step}"));
        let estate = quickstart(&dir);
        assert!(compile(&dir, &[]).status.success());
        change(&estate);
        let o = keelson(
            &["compile", "estate", "-o", "out"],
            &dir,
            &[("KEELSON_TEST_CRASH_AFTER", &step.to_string())],
        );
        if o.status.success() {
            // Fewer steps than `step`: every crash point has been tried.
            assert!(step > 3, "the write should take several steps");
            break;
        }
        // Killed mid-write: the journal says so, and the next run completes it.
        assert!(
            dir.join("out/.keelson-journal/journal.json").exists(),
            "step {step}: no journal after a kill"
        );
        let o = compile(&dir, &[]);
        assert!(o.status.success(), "step {step}: {}", stderr(&o));
        assert!(
            stderr(&o).contains("completed an interrupted compile"),
            "step {step}: {}",
            stderr(&o)
        );
        assert_eq!(
            tree(&dir.join("out")),
            new,
            "step {step}: the recovered tree differs"
        );
        step += 1;
    }

    // A kill before the journal was committed leaves the old tree and some
    // staging, which the next run discards.
    let dir = temp_dir("kill-before-commit");
    quickstart(&dir);
    assert!(compile(&dir, &[]).status.success());
    std::fs::create_dir_all(dir.join("out/.keelson-journal/staged")).unwrap();
    std::fs::write(dir.join("out/.keelson-journal/staged/000000"), "half").unwrap();
    let o = compile(&dir, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!dir.join("out/.keelson-journal").exists());
    assert_eq!(tree(&dir.join("out")), old);
}

#[test]
fn a_damaged_lock_or_journal_stops_the_compile_and_changes_nothing() {
    let dir = temp_dir("damaged-lock");
    quickstart(&dir);
    assert!(compile(&dir, &[]).status.success());
    std::fs::write(dir.join("out/keelson.lock"), "{ not json").unwrap();
    let before = tree(&dir.join("out"));
    let o = compile(&dir, &[]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("is not a keelson lock"),
        "{}",
        stderr(&o)
    );
    assert_eq!(tree(&dir.join("out")), before);

    let dir = temp_dir("damaged-journal");
    quickstart(&dir);
    assert!(compile(&dir, &[]).status.success());
    std::fs::create_dir_all(dir.join("out/.keelson-journal")).unwrap();
    std::fs::write(dir.join("out/.keelson-journal/journal.json"), "{ half").unwrap();
    let before = tree(&dir.join("out"));
    let o = compile(&dir, &[]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("is damaged"), "{}", stderr(&o));
    assert_eq!(tree(&dir.join("out")), before);
}
