//! Diff goldens: every case under `tests/diff/<case>/` is a change to an
//! example, and its expected `keelson diff` in each format.
//!
//! A case holds:
//! - `example`: the example it starts from (a directory name under `examples/`);
//! - `before/` (optional): files laid over the example for the first compile;
//! - `after/` (optional): files laid over the example for the diff;
//! - `edit/` (optional): files laid over the compiled tree, as a person would
//!   edit or add them;
//! - `expected.txt`, `expected.md`, `expected.json`: the diff as text (no
//!   colour), Markdown and JSON.
//!
//! Beyond the goldens, each case checks that the diff writes nothing, that a
//! forced compile then does exactly what the diff said (the same files
//! created, updated and removed), and that a second diff finds no changes.
//!
//! `KEELSON_BLESS=1 cargo test -p keelson-tests --test it -- diffs::` rewrites
//! the goldens.

use std::path::Path;

use keelson::compile::{self, Options};
use keelson::diagnostic::render_concise;
use keelson::diff::{self, Against, Status, render};
use keelson_testkit::harness::{self, Failed, Trial};
use keelson_tests::{bless, compare_golden, repo_root, subdirs};

const NOW: &str = "2026-11-23T09:30:00Z";

fn options() -> Options {
    let mut o = Options {
        now: Some(NOW.parse().unwrap()),
        ..Options::default()
    };
    o.registry.cache_dir = None;
    o
}

/// Copies every file under `from` into `to` (over what is there).
fn lay(from: &Path, to: &Path) {
    if !from.is_dir() {
        return;
    }
    for path in keelson::check::walk(from) {
        let target = to.join(path.strip_prefix(from).unwrap());
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::copy(&path, &target).unwrap();
    }
}

fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = keelson::check::walk(dir)
        .into_iter()
        .map(|p| {
            (
                p.strip_prefix(dir).unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect();
    out.sort();
    out
}

fn run_case(case: &Path) -> Result<(), Failed> {
    let root = repo_root();
    let example = std::fs::read_to_string(case.join("example"))
        .map_err(|e| format!("{}: {e}", case.join("example").display()))?;
    let example = root.join("examples").join(example.trim());
    let tmp = tempfile::tempdir().unwrap();
    let (before, after, out) = (
        tmp.path().join("before"),
        tmp.path().join("after"),
        tmp.path().join("gitops"),
    );
    lay(&example, &before);
    lay(&case.join("before"), &before);
    lay(&example, &after);
    lay(&case.join("after"), &after);

    let first = compile::compile_dir(&before, &out, &options())
        .map_err(|e| format!("the first compile failed: {e}"))?;
    if first.has_errors() {
        return Err(format!(
            "the first compile failed:\n{}",
            render_concise(&first.diagnostics, &first.sources)
        )
        .into());
    }
    lay(&case.join("edit"), &out);
    let untouched = snapshot(&out);

    let outcome = diff::diff_dir(&after, &Against::Dir(out.clone()), &options())
        .map_err(|e| format!("diff failed: {e}"))?;
    let mut d = outcome.diff.ok_or_else(|| {
        format!(
            "the estate does not compile:\n{}",
            render_concise(&outcome.compiled.diagnostics, &outcome.compiled.sources)
        )
    })?;
    if snapshot(&out) != untouched {
        return Err("keelson diff changed the tree it compared with".into());
    }
    // Goldens name the tree the way a user would, not by a temporary path.
    d.against = "gitops".into();
    let mut failures = Vec::new();
    for (file, text) in [
        ("expected.txt", render::text(&d, false, false)),
        ("expected.md", render::markdown(&d)),
        ("expected.json", render::json(&d)),
    ] {
        if let Err(e) = compare_golden(&case.join(file), &text) {
            failures.push(e);
        }
    }
    if !failures.is_empty() {
        return Err(failures.join("\n").into());
    }
    if bless() {
        return Ok(());
    }

    // The diff predicts the write: a forced compile creates, updates and
    // removes exactly the files it listed.
    let forced = Options {
        force: true,
        ..options()
    };
    let written = compile::compile_dir(&after, &out, &forced)
        .map_err(|e| format!("the compile after the diff failed: {e}"))?;
    let report = written
        .report
        .ok_or("the compile after the diff wrote nothing")?;
    let listed = |s: Status| -> Vec<String> {
        let mut v: Vec<String> = d
            .files
            .iter()
            .chain(&d.unowned)
            .filter(|f| f.status == s)
            .map(|f| f.path.clone())
            .collect();
        v.sort();
        v
    };
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    for (status, done) in [
        (Status::Added, sorted(report.created.clone())),
        (Status::Changed, sorted(report.updated.clone())),
        (Status::Removed, sorted(report.removed.clone())),
    ] {
        if listed(status) != done {
            return Err(format!(
                "the diff listed {:?} as {}, the compile did {done:?}",
                listed(status),
                status.word()
            )
            .into());
        }
    }
    let again = diff::diff_dir(&after, &Against::Dir(out.clone()), &options())
        .map_err(|e| format!("the second diff failed: {e}"))?
        .diff
        .ok_or("the second diff did not compile")?;
    if again.has_changes() {
        return Err(format!(
            "after the compile, the diff still finds changes:\n{}",
            render::text(&again, false, true)
        )
        .into());
    }
    Ok(())
}

/// One trial per case.
pub fn trials() -> Vec<Trial> {
    subdirs(&repo_root().join("tests/diff"))
        .into_iter()
        .map(|dir| {
            let name = dir.file_name().unwrap().to_string_lossy().into_owned();
            harness::case(format!("diffs::{name}"), move || run_case(&dir))
        })
        .collect()
}
