//! The tag-selection corpus: every directory under `tests/select/` is one run
//! of `keelson tags select`, and its expected output, derived from Argo CD
//! Image Updater's and Masterminds/semver's own code and tests.
//!
//! A case holds:
//!
//! - `args`: the arguments after `keelson tags select`, one per line (every
//!   line is one argument, an empty line an empty argument); the runner adds
//!   `--from-file tags.json --format json` and runs in the case directory;
//! - `tags.json`: the tags, `[{"name", "created", "digest"}]`;
//! - `expected.json`: stdout of a successful run (exit 0), and then
//!   `expected.stderr` when the run warns (without it, stderr must be empty);
//!   or `expected.err`: `exit: N` on the first line, then stderr, for a run
//!   that fails;
//! - `source`: where the expectation comes from upstream.
//!
//! `KEELSON_BLESS=1 cargo test -p keelson --test it -- tags_select::` rewrites the
//! expectation files; review every line against upstream before committing.

use std::path::Path;

use keelson_testkit::golden::{bless, compare_golden, subdirs};
use keelson_testkit::harness::{self, Failed, Trial};

use crate::support::{keelson, repo_root};

/// The arguments of a case: one per line; the file's final newline ends the
/// last argument rather than starting an empty one.
fn read_args(dir: &Path) -> Result<Vec<String>, String> {
    let path = dir.join("args");
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("{}: {e}; every case needs its arguments", path.display()))?;
    let text = text.strip_suffix('\n').unwrap_or(&text);
    if text.is_empty() {
        return Ok(Vec::new());
    }
    Ok(text.split('\n').map(str::to_string).collect())
}

fn remove_if_present(path: &Path) -> Result<(), String> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(format!("removing {}: {e}", path.display())),
    }
}

fn run_case(dir: &Path) -> Result<(), Failed> {
    let args = read_args(dir)?;
    if !dir.join("tags.json").is_file() {
        return Err(format!("{} has no tags.json", dir.display()).into());
    }
    let out = keelson(["tags", "select"])
        .args(&args)
        .args(["--from-file", "tags.json", "--format", "json"])
        .cwd(dir)
        .run();
    let (stdout, stderr, code) = (out.out(), out.err(), out.code());
    let (json, err, warnings) = (
        dir.join("expected.json"),
        dir.join("expected.err"),
        dir.join("expected.stderr"),
    );

    if bless() {
        if code == Some(0) {
            compare_golden(&json, &stdout)?;
            remove_if_present(&err)?;
            if stderr.is_empty() {
                remove_if_present(&warnings)?;
            } else {
                compare_golden(&warnings, &stderr)?;
            }
        } else {
            let code = code.map_or_else(|| "signal".to_string(), |c| c.to_string());
            compare_golden(&err, &format!("exit: {code}\n{stderr}"))?;
            remove_if_present(&json)?;
            remove_if_present(&warnings)?;
        }
        return Ok(());
    }

    let ran = || {
        format!(
            "keelson tags select {} --from-file tags.json --format json\nexit: {}\nstdout:\n{stdout}stderr:\n{stderr}",
            args.iter()
                .map(|a| format!("'{a}'"))
                .collect::<Vec<_>>()
                .join(" "),
            code.map_or_else(|| "signal".to_string(), |c| c.to_string()),
        )
    };
    match (json.is_file(), err.is_file()) {
        (true, true) => Err(format!(
            "{} has both expected.json and expected.err; keep one",
            dir.display()
        )
        .into()),
        (false, false) => Err(format!(
            "{} has no expected.json or expected.err; every case needs its expectation (run with KEELSON_BLESS=1 to write it)\n{}",
            dir.display(),
            ran()
        )
        .into()),
        (true, false) => {
            if code != Some(0) {
                return Err(format!("expected exit 0\n{}", ran()).into());
            }
            compare_golden(&json, &stdout)?;
            if warnings.is_file() {
                compare_golden(&warnings, &stderr)?;
            } else if !stderr.is_empty() {
                return Err(format!(
                    "stderr must be empty without {}:\n{stderr}",
                    warnings.display()
                )
                .into());
            }
            Ok(())
        }
        (false, true) => {
            if code == Some(0) {
                return Err(format!("expected a failure\n{}", ran()).into());
            }
            if !stdout.is_empty() {
                return Err(format!("a failure prints nothing on stdout\n{}", ran()).into());
            }
            let code = code.map_or_else(|| "signal".to_string(), |c| c.to_string());
            compare_golden(&err, &format!("exit: {code}\n{stderr}"))?;
            Ok(())
        }
    }
}

/// One trial per case directory.
pub fn trials() -> Vec<Trial> {
    subdirs(&repo_root().join("tests/select"))
        .into_iter()
        .map(|dir| {
            let name = format!(
                "tags_select::{}",
                dir.file_name().unwrap().to_string_lossy()
            );
            harness::case(name, move || run_case(&dir))
        })
        .collect()
}
