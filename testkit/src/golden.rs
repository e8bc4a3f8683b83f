//! Golden files for data-driven tests: one directory per case, its
//! expectation beside it, `KEELSON_BLESS=1` to rewrite. Shared by the
//! `keelson` and `keelson-tests` packages, which cannot depend on each other
//! both ways.

use std::path::{Path, PathBuf};

/// Whether goldens should be rewritten instead of compared (`KEELSON_BLESS=1`).
pub fn bless() -> bool {
    std::env::var_os("KEELSON_BLESS").is_some_and(|v| v == "1")
}

/// The directories directly inside `dir`, sorted.
pub fn subdirs(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    out.sort();
    out
}

/// Compares `actual` with the golden file, or writes it when blessing.
/// Returns a readable failure message with a line diff.
pub fn compare_golden(golden: &Path, actual: &str) -> Result<(), String> {
    if bless() {
        std::fs::write(golden, actual).map_err(|e| format!("writing {}: {e}", golden.display()))?;
        return Ok(());
    }
    let expected = match std::fs::read_to_string(golden) {
        Ok(s) => s,
        Err(_) => {
            return Err(format!(
                "{} is missing; every case needs its expectation (run with KEELSON_BLESS=1 to write it)\nactual:\n{actual}",
                golden.display()
            ));
        }
    };
    if expected == actual {
        return Ok(());
    }
    let mut msg = format!(
        "{} differs (KEELSON_BLESS=1 rewrites it):\n",
        golden.display()
    );
    let (e, a): (Vec<&str>, Vec<&str>) = (expected.lines().collect(), actual.lines().collect());
    for i in 0..e.len().max(a.len()) {
        match (e.get(i), a.get(i)) {
            (Some(x), Some(y)) if x == y => {}
            (x, y) => {
                msg.push_str(&format!(
                    "  line {}:\n    expected: {}\n    actual:   {}\n",
                    i + 1,
                    x.unwrap_or(&"<none>"),
                    y.unwrap_or(&"<none>")
                ));
            }
        }
    }
    Err(msg)
}
