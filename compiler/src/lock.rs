//! `keelson.lock`: what the last compile decided and wrote, at the root of the
//! generated tree. It is how keelson knows which files it owns, whether one
//! was edited by hand, which image each stage ran, and (with `--offline`) what
//! to pin without asking a registry.
//!
//! JSON with a fixed field order and sorted entries, so the same compile gives
//! the same bytes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The lock format this keelson writes. Version 1 (no `since`, `history` or
/// `policies`) is still read.
pub(crate) const LOCK_VERSION: u32 = 2;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lock {
    pub version: u32,
    /// Every image of every app stage, sorted by app, stage, alias.
    #[serde(default)]
    pub images: Vec<LockedImage>,
    /// The module each policy ran, by policy name: pinned on first use and
    /// checked on every later compile.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub policies: BTreeMap<String, LockedPolicy>,
    /// Every file keelson wrote (path relative to the tree's root, `/`-separated).
    #[serde(default)]
    pub files: BTreeMap<String, LockedFile>,
}

/// The image one app stage runs, and where that answer came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockedImage {
    pub app: String,
    pub stage: String,
    pub image: String,
    pub repository: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// The digest the tag pointed at when keelson resolved it (informational:
    /// the tree pins `digest` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_digest: Option<String>,
    /// `pin`, `registry:<host>/<name>`, `snapshot:<file>`, `write-back:<file>`
    /// or `promotion:<stage>`; `--offline` and a held promotion keep the
    /// source recorded before.
    pub source: String,
    /// Since when the stage runs this image (RFC 3339, UTC): the `now` of
    /// the compile that first chose it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    /// What the stage ran before, newest first (at most 10).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<Past>,
}

/// A policy module as it was first used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockedPolicy {
    /// `stdlib:NAME` or the module's path in the estate.
    pub source: String,
    pub blake3: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockedFile {
    pub blake3: String,
    /// For an overlay kustomization that Image Updater commits to: the hash of
    /// the file with its `images:` removed, so a write-back is told apart from
    /// a hand edit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub without_images: Option<String>,
}

impl Lock {
    pub fn new() -> Self {
        Lock {
            version: LOCK_VERSION,
            ..Lock::default()
        }
    }

    pub fn parse(text: &str) -> Result<Lock, String> {
        let mut lock: Lock = serde_json::from_str(text).map_err(|e| e.to_string())?;
        if !(1..=LOCK_VERSION).contains(&lock.version) {
            return Err(format!(
                "lock format {} is not one this keelson reads (1 to {LOCK_VERSION}); was it written by a newer keelson?",
                lock.version
            ));
        }
        lock.version = LOCK_VERSION;
        // keelson writes them sorted; sort anyway, so lookups can bisect.
        lock.images.sort_by(|a, b| a.key().cmp(&b.key()));
        Ok(lock)
    }

    pub(crate) fn to_text(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).expect("a lock always serialises");
        s.push('\n');
        s
    }

    pub fn image(&self, app: &str, stage: &str, image: &str) -> Option<&LockedImage> {
        let i = self
            .images
            .binary_search_by(|i| i.key().cmp(&(app, stage, image)))
            .ok()?;
        self.images.get(i)
    }
}

impl Lock {
    /// Whether the lock has any image of `app` in `stage`: whether keelson
    /// ever deployed the app there.
    pub(crate) fn has_stage(&self, app: &str, stage: &str) -> bool {
        let i = self
            .images
            .partition_point(|i| (i.app.as_str(), i.stage.as_str()) < (app, stage));
        self.images
            .get(i)
            .is_some_and(|i| i.app == app && i.stage == stage)
    }
}

impl LockedImage {
    /// The order of the lock's `images`: app, stage, image alias.
    pub fn key(&self) -> (&str, &str, &str) {
        (&self.app, &self.stage, &self.image)
    }
}

/// The blake3 of bytes, as 64 lowercase hex digits.
pub fn hash(bytes: &[u8]) -> String {
    blake3::hash(bytes).to_hex().to_string()
}

/// The hash of a kustomization with its `images:` removed (see
/// [`LockedFile::without_images`]). Formatting and comments do not count:
/// Image Updater re-serialises the file when it writes back. `None` when the
/// text is not a YAML mapping.
pub(crate) fn hash_without_images(text: &str) -> Option<String> {
    let mut value: serde_yaml::Value = serde_yaml::from_str(text).ok()?;
    let map = value.as_mapping_mut()?;
    map.remove("images");
    let canonical = serde_yaml::to_string(&value).ok()?;
    Some(hash(canonical.as_bytes()))
}

/// What a stage ran before: a lock entry's history, and what promotion
/// gates see of it (policy ABI `history`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Past {
    pub tag: Option<String>,
    pub digest: Option<String>,
    pub since: String,
    pub until: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_format_1_and_refuses_newer_ones() {
        let v1 = r#"{"version": 1, "images": [{"app": "a", "stage": "dev", "image": "i", "repository": "r", "tag": "1.0.0", "source": "pin"}]}"#;
        let lock = Lock::parse(v1).unwrap();
        assert_eq!(lock.version, LOCK_VERSION);
        assert_eq!(lock.images[0].since, None);
        assert!(lock.images[0].history.is_empty());
        let v3 = r#"{"version": 3}"#;
        assert!(Lock::parse(v3).unwrap_err().contains("newer keelson"));
    }

    #[test]
    fn knows_which_app_stages_it_has() {
        let entry = |app: &str, stage: &str, image: &str| LockedImage {
            app: app.into(),
            stage: stage.into(),
            image: image.into(),
            repository: "r".into(),
            tag: None,
            digest: None,
            resolved_digest: None,
            source: "pin".into(),
            since: None,
            history: Vec::new(),
        };
        let text = Lock {
            images: vec![
                entry("b", "prod", "x"),
                entry("a", "dev", "y"),
                entry("b", "dev", "z"),
            ],
            ..Lock::new()
        }
        .to_text();
        let lock = Lock::parse(&text).unwrap();
        assert!(lock.has_stage("a", "dev"));
        assert!(lock.has_stage("b", "prod"));
        assert!(!lock.has_stage("a", "prod"));
        assert!(!lock.has_stage("c", "dev"));
        assert!(!Lock::new().has_stage("a", "dev"));
    }

    #[test]
    fn round_trips() {
        let mut lock = Lock::new();
        lock.files.insert(
            "a/b.yaml".into(),
            LockedFile {
                blake3: hash(b"x"),
                without_images: None,
            },
        );
        let text = lock.to_text();
        assert_eq!(Lock::parse(&text).unwrap(), lock);
    }

    #[test]
    fn images_do_not_change_the_shape_hash() {
        let a = "resources:\n- ../base\nimages:\n- name: x\n  newTag: '1'\n";
        let b = "# a comment\nresources: [../base]\nimages:\n- name: x\n  newTag: '2'\n";
        let c = "resources:\n- ../other\nimages:\n- name: x\n  newTag: '1'\n";
        assert_eq!(hash_without_images(a), hash_without_images(b));
        assert_ne!(hash_without_images(a), hash_without_images(c));
    }
}
