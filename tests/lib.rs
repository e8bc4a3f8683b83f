//! Shared helpers for keelson's end-to-end tests.

pub mod schema;

use std::path::{Path, PathBuf};

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

pub use keelson_testkit::golden::{bless, compare_golden, subdirs};
