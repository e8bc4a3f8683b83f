//! `keelson diff` as users and CI run it: exit codes (0 no changes, 1
//! changes with `--exit-code`, 2 errors), a tree in a git revision, and
//! colour only when asked for or on a terminal.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::{Run, copy_tree, keelson, repo_root};

pub fn trials() -> Vec<keelson_testkit::harness::Trial> {
    keelson_testkit::trials![
        exit_codes,
        against_a_git_revision,
        colour_only_on_request_or_a_terminal,
        pull_request_workflow,
    ]
}

const NOW: &str = "2026-11-23T09:30:00Z";

/// `keelson ARGS` in `dir` with `NO_COLOR` unset, so colour is keelson's
/// own choice; a compile or a diff runs at [`NOW`] without a cache.
fn run(args: &[&str], dir: &Path) -> Run {
    let cmd = keelson(args).cwd(dir).env_remove("NO_COLOR");
    if matches!(args.first(), Some(&"compile") | Some(&"diff")) {
        cmd.args(["--now", NOW, "--no-cache"]).run()
    } else {
        cmd.run()
    }
}

fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .args(["-c", "user.name=ci", "-c", "user.email=ci@example.invalid"])
        .args([
            "-c",
            "init.defaultBranch=main",
            "-c",
            "commit.gpgsign=false",
        ])
        .args(args)
        .current_dir(dir)
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A repository holding the quickstart estate in `estate/` and its compiled
/// tree in `gitops/`, committed.
fn repo() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    copy_tree(
        &repo_root().join("examples/quickstart"),
        &dir.join("estate"),
    );
    let o = run(&["compile", "estate", "-o", "gitops"], &dir);
    assert!(o.status.success(), "{}", o.err());
    git(&dir, &["init", "-q"]);
    git(&dir, &["add", "-A"]);
    git(&dir, &["commit", "-q", "-m", "first compile"]);
    (tmp, dir)
}

/// A newer release in the snapshot: the image moves.
fn bump(dir: &Path) {
    let path = dir.join("estate/tags.json");
    let s = std::fs::read_to_string(&path).unwrap().replace(
        r#"{"name": "1.1.0","#,
        r#"{"name": "1.1.9", "created": "2026-11-10T10:00:00Z", "digest": null},
    {"name": "1.1.0","#,
    );
    std::fs::write(path, s).unwrap();
}

fn exit_codes() {
    let (_tmp, dir) = repo();
    let o = run(
        &["diff", "estate", "--against", "gitops", "--exit-code"],
        &dir,
    );
    let (out, err) = (o.out(), o.err());
    assert_eq!(o.status.code(), Some(0), "{out}{err}");
    assert!(out.contains("no changes"), "{out}");

    bump(&dir);
    let o = run(
        &["diff", "estate", "--against", "gitops", "--exit-code"],
        &dir,
    );
    let (out, err) = (o.out(), o.err());
    assert_eq!(o.status.code(), Some(1), "{out}{err}");
    assert!(
        out.contains("ghcr.io/acme/hello:1.1.0 → ghcr.io/acme/hello:1.1.9"),
        "{out}"
    );
    // Without --exit-code, changes are not a failure.
    let o = run(&["diff", "estate", "--against", "gitops"], &dir);
    assert_eq!(o.status.code(), Some(0));

    // An estate with errors: nothing to compare, which is not "no changes".
    std::fs::write(dir.join("estate/broken.kdl"), "app \"x\" {\n").unwrap();
    let o = run(
        &["diff", "estate", "--against", "gitops", "--exit-code"],
        &dir,
    );
    let (out, err) = (o.out(), o.err());
    assert_eq!(o.status.code(), Some(2), "{out}{err}");
    assert!(out.is_empty(), "{out}");
    assert!(err.contains("broken.kdl:"), "{err}");

    // Neither --against nor --against-git: a usage error.
    let o = run(&["diff", "estate"], &dir);
    assert_eq!(o.status.code(), Some(2));
}

fn against_a_git_revision() {
    let (_tmp, dir) = repo();
    bump(&dir);
    // The working tree's gitops/ is not what is compared: the committed one is.
    std::fs::remove_dir_all(dir.join("gitops")).unwrap();
    let o = run(
        &[
            "diff",
            "estate",
            "--against-git",
            "HEAD:gitops",
            "--format",
            "json",
            "--exit-code",
        ],
        &dir,
    );
    let (out, err) = (o.out(), o.err());
    assert_eq!(o.status.code(), Some(1), "{out}{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["against"], "HEAD:gitops");
    assert_eq!(v["exists"], true);
    assert_eq!(v["summary"]["files"]["added"], 0, "{out}");
    let images = v["images"].as_array().unwrap();
    assert_eq!(images.len(), 2, "{out}");
    assert_eq!(images[0]["old"], "ghcr.io/acme/hello:1.1.0");
    assert_eq!(images[0]["new"], "ghcr.io/acme/hello:1.1.9");

    // A revision that is not there is an error, not an empty tree.
    let o = run(
        &["diff", "estate", "--against-git", "no-such-branch:gitops"],
        &dir,
    );
    let err = o.err();
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("`no-such-branch` is not a commit"), "{err}");

    // A directory the revision does not have yet: everything is new.
    let o = run(
        &[
            "diff",
            "estate",
            "--against-git",
            "HEAD:new-tree",
            "--format",
            "json",
        ],
        &dir,
    );
    let (out, err) = (o.out(), o.err());
    assert_eq!(o.status.code(), Some(0), "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["exists"], false);
    assert_eq!(v["summary"]["files"]["added"], 11, "{out}");

    // A file is not a tree.
    let o = run(
        &["diff", "estate", "--against-git", "HEAD:gitops/README.md"],
        &dir,
    );
    assert_eq!(o.status.code(), Some(2));
}

fn colour_only_on_request_or_a_terminal() {
    let (_tmp, dir) = repo();
    bump(&dir);
    let args = ["diff", "estate", "--against", "gitops"];
    // Piped: plain.
    let o = run(&args, &dir);
    assert!(!o.out().contains('\u{1b}'));
    let mut always = args.to_vec();
    always.extend(["--color", "always"]);
    let o = run(&always, &dir);
    assert!(o.out().contains("\u{1b}["));
    // Markdown and JSON are never coloured.
    let mut md = always.clone();
    md.extend(["--format", "markdown"]);
    let o = run(&md, &dir);
    let out = o.out();
    assert!(
        !out.contains('\u{1b}') && out.starts_with("### keelson diff"),
        "{out}"
    );
}

/// The CI recipe of the book: on a pull request that changed the estate and
/// committed the recompiled tree, the committed tree is up to date, and the
/// review diff against the base branch, pinned by the pull request's lock,
/// shows what the pull request does — with no registry asked.
fn pull_request_workflow() {
    let (_tmp, dir) = repo();
    git(&dir, &["checkout", "-q", "-b", "bump"]);
    bump(&dir);
    let o = run(&["compile", "estate", "-o", "gitops"], &dir);
    assert!(o.status.success(), "{}", o.err());
    git(&dir, &["commit", "-q", "-am", "bump hello"]);
    // The snapshot would pick newer tags now; --offline replays the lock.
    let snapshot = dir.join("estate/tags.json");
    let s = std::fs::read_to_string(&snapshot)
        .unwrap()
        .replace("1.1.9", "1.1.10");
    std::fs::write(&snapshot, s).unwrap();

    let o = run(
        &[
            "diff",
            "estate",
            "--against",
            "gitops",
            "--offline",
            "--exit-code",
        ],
        &dir,
    );
    let (out, err) = (o.out(), o.err());
    assert_eq!(
        o.status.code(),
        Some(0),
        "the committed tree is up to date:\n{out}{err}"
    );

    let o = run(
        &[
            "diff",
            "estate",
            "--against-git",
            "main:gitops",
            "--offline",
            "--decide-from",
            "gitops",
            "--format",
            "markdown",
            "--exit-code",
        ],
        &dir,
    );
    let (out, err) = (o.out(), o.err());
    assert_eq!(o.status.code(), Some(1), "{out}{err}");
    assert!(
        out.contains(
            "| hello | dev | hello | `ghcr.io/acme/hello:1.1.0` | `ghcr.io/acme/hello:1.1.9` |"
        ),
        "{out}"
    );
    // Nothing is hand-edited: ownership comes from the base tree's own lock.
    assert!(!out.contains("hand-edited"), "{out}");
}
