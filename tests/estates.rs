//! The estate corpus: every directory under `tests/estates/` is one case, and
//! every example under `examples/` is one more.
//!
//! A case holds an estate (its `*.kdl` files and whatever they reference) and
//! `expected.diagnostics`: exactly what `keelson check --format concise`
//! prints for it (empty for a valid estate). Adding a case is adding a
//! directory; `KEELSON_BLESS=1 cargo test -p keelson-tests --test it -- estates::`
//! writes the goldens.
//! Examples must check with no diagnostics at all.

use std::path::Path;

use keelson::check;
use keelson::diagnostic::render_concise;
use keelson_testkit::harness::{self, Failed, Trial};
use keelson_tests::{compare_golden, repo_root, subdirs};

fn check_case(dir: &Path) -> Result<(), Failed> {
    let checked = check::check_dir(dir).map_err(|e| format!("check failed to run: {e}"))?;
    let actual = render_concise(&checked.diagnostics, &checked.loaded.sources);
    compare_golden(&dir.join("expected.diagnostics"), &actual)?;
    Ok(())
}

fn check_example(dir: &Path) -> Result<(), Failed> {
    let checked = check::check_dir(dir).map_err(|e| format!("check failed to run: {e}"))?;
    if !checked.diagnostics.is_empty() {
        return Err(format!(
            "example {} must check clean, but:\n{}",
            dir.display(),
            render_concise(&checked.diagnostics, &checked.loaded.sources)
        )
        .into());
    }
    Ok(())
}

/// One trial per case, and one per example.
pub fn trials() -> Vec<Trial> {
    let root = repo_root();
    let mut trials = Vec::new();
    for dir in subdirs(&root.join("tests/estates")) {
        let name = format!("estates::{}", dir.file_name().unwrap().to_string_lossy());
        trials.push(harness::case(name, move || check_case(&dir)));
    }
    for dir in subdirs(&root.join("examples")) {
        let name = format!(
            "estates::examples::{}",
            dir.file_name().unwrap().to_string_lossy()
        );
        trials.push(harness::case(name, move || check_example(&dir)));
    }
    trials
}
