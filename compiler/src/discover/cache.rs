//! The registry cache: what a digest names never changes, so manifests
//! fetched by digest and image configs are kept on disk, keyed by digest. Tags
//! move, so what a tag points at is asked every time.
//!
//! `$KEELSON_CACHE_DIR`, else `$XDG_CACHE_HOME/keelson`, else
//! `~/.cache/keelson`; entries are `registry-v1/sha256/<hex>.json`, written by
//! rename so a reader never sees half an entry. An entry that does not parse is
//! ignored and fetched again.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// What keelson keeps of an immutable object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Cached {
    /// An image manifest: the digest of its config.
    Manifest { config: String },
    /// An image index or manifest list: its entries.
    Index { manifests: Vec<IndexEntry> },
    /// An image config: its platform and build time (verbatim).
    Config {
        os: String,
        architecture: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        variant: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        created: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexEntry {
    pub digest: String,
    #[serde(default)]
    pub os: String,
    #[serde(default)]
    pub architecture: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Cache {
    dir: Option<PathBuf>,
}

impl Cache {
    /// A cache in `dir`; `None` keeps nothing.
    pub fn new(dir: Option<PathBuf>) -> Self {
        Cache {
            dir: dir.map(|d| d.join("registry-v1").join("sha256")),
        }
    }

    fn path(&self, digest: &str) -> Option<PathBuf> {
        let hex = digest.strip_prefix("sha256:")?;
        let valid = hex.len() == 64
            && hex
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase());
        Some(self.dir.as_ref()?.join(format!("{hex}.json"))).filter(|_| valid)
    }

    pub fn get(&self, digest: &str) -> Option<Cached> {
        let text = std::fs::read(self.path(digest)?).ok()?;
        serde_json::from_slice(&text).ok()
    }

    /// Stores an entry; a cache that cannot be written is only slower.
    pub fn put(&self, digest: &str, value: &Cached) {
        let Some(path) = self.path(digest) else {
            return;
        };
        let _ = write_atomically(
            &path,
            &serde_json::to_vec(value).expect("cache entries serialise"),
        );
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().expect("cache entries live in a directory");
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(
        ".{}.{}.{:?}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("entry"),
        std::process::id(),
        std::thread::current().id()
    ));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn entries_round_trip_and_damaged_ones_are_misses() {
        let dir = std::env::temp_dir().join(format!("keelson-cache-test-{}", std::process::id()));
        let cache = Cache::new(Some(dir.clone()));
        let entry = Cached::Manifest {
            config: DIGEST.into(),
        };
        assert_eq!(cache.get(DIGEST), None);
        cache.put(DIGEST, &entry);
        assert_eq!(cache.get(DIGEST), Some(entry));
        std::fs::write(cache.path(DIGEST).unwrap(), "{\"kind\": \"manif").unwrap();
        assert_eq!(cache.get(DIGEST), None, "a damaged entry is fetched again");
        // Only sha256 digests name files: nothing escapes the cache directory.
        assert_eq!(cache.path("sha256:../../etc/passwd"), None);
        assert_eq!(cache.path(&DIGEST.to_uppercase()), None);
        assert_eq!(Cache::new(None).get(DIGEST), None);
        let _ = std::fs::remove_dir_all(dir);
    }
}
