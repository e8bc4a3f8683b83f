//! The output index: what keelson last knew of each file in an output — its
//! `stat` (size, modification and change times, inode) and its blake3 — so
//! that a compile finds the files that are still as it left them with one
//! `stat` each instead of reading the whole tree back. Git's index does the
//! same for a work tree.
//!
//! A file whose `stat` differs in any field is read, as without an index. The
//! change time (`ctime`) cannot be set from user space, so a file restored
//! with an old modification time still differs. What a `stat` cannot see is
//! an edit made within the timestamp granularity of the moment keelson looked
//! at the file; as git does, an entry that was recorded less than
//! [`RACY`] before the index was saved is not trusted, and is read next time.
//!
//! The index lives in keelson's cache directory, one file per output
//! directory (named by the blake3 of its canonical path), checksummed: a
//! damaged or foreign index is an empty one. Losing it costs time, never
//! correctness.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

/// Bumped when the encoding changes.
const MAGIC: &[u8] = b"keelson-output-index 1\n";

/// Files changed less than this before the index was saved are not trusted
/// (covers file systems with one- and two-second timestamps).
const RACY: i64 = 2_000_000_000;

/// What `stat` says of a file, compared field by field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    size: u64,
    mtime_ns: i64,
    ctime_ns: i64,
    ino: u64,
}

impl Stat {
    /// The `stat` of a regular file; `None` for anything else or an error.
    pub fn of(path: &Path) -> Option<Stat> {
        let meta = fs::symlink_metadata(path).ok()?;
        if !meta.is_file() {
            return None;
        }
        Some(Stat::from_meta(&meta))
    }

    /// The `stat` of an open file.
    pub(crate) fn of_file(file: &fs::File) -> Option<Stat> {
        Some(Stat::from_meta(&file.metadata().ok()?))
    }

    #[cfg(unix)]
    fn from_meta(meta: &fs::Metadata) -> Stat {
        use std::os::unix::fs::MetadataExt;
        Stat {
            size: meta.size(),
            mtime_ns: meta.mtime().saturating_mul(1_000_000_000) + meta.mtime_nsec(),
            ctime_ns: meta.ctime().saturating_mul(1_000_000_000) + meta.ctime_nsec(),
            ino: meta.ino(),
        }
    }

    /// Without a change time or an inode the index cannot be trusted: every
    /// entry is made racy, so every file is read.
    #[cfg(not(unix))]
    fn from_meta(meta: &fs::Metadata) -> Stat {
        Stat {
            size: meta.len(),
            mtime_ns: i64::MAX,
            ctime_ns: i64::MAX,
            ino: 0,
        }
    }

    fn changed_ns(&self) -> i64 {
        self.mtime_ns.max(self.ctime_ns)
    }
}

/// A file as keelson last saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    pub stat: Stat,
    pub blake3: blake3::Hash,
}

/// The index of one output directory.
#[derive(Debug, Default)]
pub struct Index {
    /// keelson's cache directory and the output; `None` keeps nothing.
    place: Option<(PathBuf, PathBuf)>,
    entries: HashMap<String, Seen>,
}

impl Index {
    /// No index: every file is read.
    pub fn none() -> Index {
        Index::default()
    }

    /// The index of `out` kept under `cache_dir`, or an empty one (also
    /// when `out` does not exist yet).
    pub fn open(cache_dir: Option<&Path>, out: &Path) -> Index {
        let Some(cache_dir) = cache_dir else {
            return Index::none();
        };
        let entries = file_for(cache_dir, out)
            .and_then(|file| fs::read(file).ok())
            .and_then(|bytes| decode(&bytes))
            .unwrap_or_default();
        Index {
            place: Some((cache_dir.to_path_buf(), out.to_path_buf())),
            entries,
        }
    }

    /// The blake3 of the file at `path` (relative to the output) when its
    /// `stat` is `stat` and the index can vouch for it.
    pub(crate) fn lookup(&self, path: &str, stat: &Stat) -> Option<blake3::Hash> {
        let seen = self.entries.get(path)?;
        (seen.stat == *stat).then_some(seen.blake3)
    }

    /// Replaces the index with `files` and saves it. Failures are ignored:
    /// the index only saves time.
    pub fn save(&mut self, files: HashMap<String, Seen>) {
        self.entries = files;
        let Some(file) = self.place.as_ref().and_then(|(c, o)| file_for(c, o)) else {
            return;
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX));
        let Some(dir) = file.parent() else {
            return;
        };
        if fs::create_dir_all(dir).is_err() {
            return;
        }
        let bytes = encode(&self.entries, now);
        let tmp = dir.join(format!(".tmp-{}", std::process::id()));
        if fs::write(&tmp, bytes).is_ok() && fs::rename(&tmp, &file).is_err() {
            let _ = fs::remove_file(&tmp);
        }
    }
}

/// Where the index of `out` lives: named by the blake3 of the output's
/// canonical path, so it is found from any working directory. `None` while
/// the output does not exist.
fn file_for(cache_dir: &Path, out: &Path) -> Option<PathBuf> {
    let absolute = fs::canonicalize(out).ok()?;
    let name = blake3::hash(absolute.as_os_str().as_encoded_bytes()).to_hex();
    Some(cache_dir.join("outputs").join(name.as_str()))
}

/// Sorted by path, so the same index is the same bytes.
fn encode(entries: &HashMap<String, Seen>, saved_at_ns: i64) -> Vec<u8> {
    let mut paths: Vec<(&String, &Seen)> = entries.iter().collect();
    paths.sort_by(|a, b| a.0.cmp(b.0));
    let mut out = Vec::with_capacity(MAGIC.len() + 16 + paths.len() * 120);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&saved_at_ns.to_le_bytes());
    out.extend_from_slice(&(paths.len() as u64).to_le_bytes());
    for (path, seen) in paths {
        out.extend_from_slice(&(path.len() as u64).to_le_bytes());
        out.extend_from_slice(path.as_bytes());
        out.extend_from_slice(&seen.stat.size.to_le_bytes());
        out.extend_from_slice(&seen.stat.mtime_ns.to_le_bytes());
        out.extend_from_slice(&seen.stat.ctime_ns.to_le_bytes());
        out.extend_from_slice(&seen.stat.ino.to_le_bytes());
        out.extend_from_slice(seen.blake3.as_bytes());
    }
    let sum = blake3::hash(&out);
    out.extend_from_slice(sum.as_bytes());
    out
}

/// The trusted entries of a saved index; `None` when it is damaged.
pub(crate) fn decode(bytes: &[u8]) -> Option<HashMap<String, Seen>> {
    let (body, sum) = bytes.split_at_checked(bytes.len().checked_sub(32)?)?;
    if blake3::hash(body).as_bytes() != sum {
        return None;
    }
    let mut r = body.strip_prefix(MAGIC)?;
    let mut take = |n: usize| -> Option<&[u8]> {
        let (head, rest) = r.split_at_checked(n)?;
        r = rest;
        Some(head)
    };
    let saved_at = i64::from_le_bytes(take(8)?.try_into().ok()?);
    let count = u64::from_le_bytes(take(8)?.try_into().ok()?);
    let mut entries = HashMap::new();
    for _ in 0..count {
        let len = usize::try_from(u64::from_le_bytes(take(8)?.try_into().ok()?)).ok()?;
        let path = std::str::from_utf8(take(len)?).ok()?.to_string();
        let size = u64::from_le_bytes(take(8)?.try_into().ok()?);
        let mtime_ns = i64::from_le_bytes(take(8)?.try_into().ok()?);
        let ctime_ns = i64::from_le_bytes(take(8)?.try_into().ok()?);
        let ino = u64::from_le_bytes(take(8)?.try_into().ok()?);
        let hash: [u8; 32] = take(32)?.try_into().ok()?;
        let stat = Stat {
            size,
            mtime_ns,
            ctime_ns,
            ino,
        };
        // Racy: changed too close to the save to tell a later edit apart.
        if stat.changed_ns().saturating_add(RACY) >= saved_at {
            continue;
        }
        entries.insert(
            path,
            Seen {
                stat,
                blake3: blake3::Hash::from_bytes(hash),
            },
        );
    }
    take(1).is_none().then_some(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(mtime_ns: i64) -> Seen {
        Seen {
            stat: Stat {
                size: 3,
                mtime_ns,
                ctime_ns: mtime_ns,
                ino: 7,
            },
            blake3: blake3::hash(b"abc"),
        }
    }

    #[test]
    fn an_index_reads_back_without_its_racy_entries() {
        let mut files = HashMap::new();
        files.insert("old.yaml".to_string(), seen(1_000_000_000_000));
        files.insert("fresh.yaml".to_string(), seen(1_000_000_000_000 + 9 * RACY));
        let saved = 1_000_000_000_000 + 10 * RACY - 1;
        let back = decode(&encode(&files, saved)).unwrap();
        assert_eq!(back.get("old.yaml"), files.get("old.yaml"));
        assert!(
            !back.contains_key("fresh.yaml"),
            "a racy entry is not trusted"
        );
    }

    #[test]
    fn a_damaged_index_is_empty() {
        let mut files = HashMap::new();
        files.insert("a".to_string(), seen(5));
        let bytes = encode(&files, i64::MAX);
        for cut in 0..bytes.len() {
            assert!(decode(&bytes[..cut]).is_none());
        }
        let mut flipped = bytes.clone();
        flipped[MAGIC.len() + 20] ^= 1;
        assert!(decode(&flipped).is_none());
        assert!(decode(&bytes).is_some());
    }

    #[test]
    fn lookup_needs_every_stat_field_to_match() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        fs::create_dir_all(&out).unwrap();
        fs::write(out.join("f"), "abc").unwrap();
        let stat = Stat::of(&out.join("f")).unwrap();
        let mut index = Index::open(Some(&dir.path().join("cache")), &out);
        let mut files = HashMap::new();
        files.insert(
            "f".to_string(),
            Seen {
                stat,
                blake3: blake3::hash(b"abc"),
            },
        );
        index.save(files);
        // Just written: racy, so a fresh open does not trust it...
        let reopened = Index::open(Some(&dir.path().join("cache")), &out);
        assert_eq!(reopened.lookup("f", &stat), None);
        // ...but the in-memory one matches exactly, and only exactly.
        assert_eq!(index.lookup("f", &stat), Some(blake3::hash(b"abc")));
        let other = Stat {
            ino: stat.ino + 1,
            ..stat
        };
        assert_eq!(index.lookup("f", &other), None);
        let longer = Stat { size: 4, ..stat };
        assert_eq!(index.lookup("f", &longer), None);
        assert_eq!(Index::none().lookup("f", &stat), None);
    }
}
