//! The generated repository in memory: path → bytes, ordered by path.
//! `write` puts it on disk and `diff` compares two of them.

use std::collections::{BTreeMap, BTreeSet};

/// The file names kustomize looks for in a directory.
pub(crate) const KUSTOMIZATION_NAMES: &[&str] =
    &["kustomization.yaml", "kustomization.yml", "Kustomization"];

/// The lock's file name at the tree's root.
pub(crate) const LOCK_FILE: &str = "keelson.lock";

/// Where `write` stages a compile before committing it; no generated file
/// may live under it.
pub(crate) const JOURNAL_DIR: &str = ".keelson-journal";

/// A path in the tree: relative, `/`-separated, no `.` or `..` parts.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TreePath(String);

impl TreePath {
    /// Normalises `a/./b//c` to `a/b/c`; `None` for paths that leave the
    /// tree or are empty.
    pub fn new(raw: &str) -> Option<TreePath> {
        let mut parts: Vec<&str> = Vec::new();
        for part in raw.split('/') {
            match part {
                "" | "." => {}
                ".." => {
                    parts.pop()?;
                }
                p => parts.push(p),
            }
        }
        if parts.is_empty() || raw.starts_with('/') {
            return None;
        }
        Some(TreePath(parts.join("/")))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The directory part (`""` at the root).
    pub fn parent(&self) -> &str {
        self.0.rsplit_once('/').map_or("", |(d, _)| d)
    }
}

impl std::fmt::Display for TreePath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tree {
    files: BTreeMap<TreePath, Vec<u8>>,
    /// Files keelson's YAML printer wrote from a value: valid YAML by
    /// construction (a property test holds the printer to it), so the last
    /// check before writing does not parse them again.
    printed: BTreeSet<TreePath>,
}

impl Tree {
    /// Adds a file; returns the old bytes if the path was taken.
    pub fn insert(&mut self, path: TreePath, bytes: Vec<u8>) -> Option<Vec<u8>> {
        self.files.insert(path, bytes)
    }

    /// Marks a file as printed from a YAML value (see `printed`).
    pub(crate) fn mark_printed(&mut self, path: TreePath) {
        self.printed.insert(path);
    }

    pub(crate) fn is_printed(&self, path: &TreePath) -> bool {
        self.printed.contains(path)
    }

    pub fn contains(&self, path: &str) -> bool {
        TreePath::new(path).is_some_and(|p| self.files.contains_key(&p))
    }

    pub fn get(&self, path: &str) -> Option<&[u8]> {
        self.files.get(&TreePath::new(path)?).map(Vec::as_slice)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&TreePath, &[u8])> {
        self.files.iter().map(|(p, b)| (p, b.as_slice()))
    }

    pub fn len(&self) -> usize {
        self.files.len()
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }
}

/// The relative path from directory `from` to `to` (both tree-relative).
pub fn relative(from: &str, to: &str) -> String {
    let f: Vec<&str> = from
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    let t: Vec<&str> = to
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    let common = f.iter().zip(&t).take_while(|(a, b)| a == b).count();
    let mut parts: Vec<&str> = vec![".."; f.len() - common];
    parts.extend(&t[common..]);
    if parts.is_empty() {
        ".".into()
    } else {
        parts.join("/")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises() {
        assert_eq!(TreePath::new("a/./b//c").unwrap().as_str(), "a/b/c");
        assert_eq!(TreePath::new("a/../b").unwrap().as_str(), "b");
        assert!(TreePath::new("../x").is_none());
        assert!(TreePath::new("/x").is_none());
        assert!(TreePath::new("").is_none());
    }

    #[test]
    fn relative_paths() {
        assert_eq!(
            relative("k8s/app/overlays/dev", "k8s/app/base"),
            "../../base"
        );
        assert_eq!(
            relative("k8s/cl/ticket/main", "k8s/aws/ticket/main/base"),
            "../../../aws/ticket/main/base"
        );
        assert_eq!(relative("a", "a/b"), "b");
        assert_eq!(relative("a/b", "a/b"), ".");
    }
}
