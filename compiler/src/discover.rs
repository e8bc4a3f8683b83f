//! Stage 4: gather what the world says, before any decision is made.
//!
//! - tag data: snapshot files the estate names (`snapshot "./tags.json"`);
//! - the previous output: `keelson.lock`, and the images Image Updater wrote
//!   back into the tree (an overlay's `kustomization.yaml`, or
//!   `.argocd-source-<app>.yaml` beside it) for stages it updates live.
//!
//! This is one of the two stages that do I/O (the other is `write`). What it
//! returns is plain data, so `select` and `emit` stay pure and testable.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use crate::diagnostic::{Code, Diagnostic, Diagnostics, Loc, Sources};
use crate::lock::{LOCK_FILE, Lock};
use crate::model::{AppId, Estate, Manifests, StageId};
use crate::select::strategy::TagInfo;

/// Tags per repository (`registry/path`), and the snapshot each came from.
#[derive(Debug, Clone, Default)]
pub struct TagData {
    pub repos: BTreeMap<String, SnapshotTags>,
}

#[derive(Debug, Clone)]
pub struct SnapshotTags {
    pub tags: Vec<TagInfo>,
    /// The snapshot file, as written in the estate.
    pub file: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTag {
    name: String,
    #[serde(default)]
    created: Option<String>,
    #[serde(default)]
    digest: Option<String>,
}

/// Reads every snapshot the estate names. Problems become diagnostics that
/// point into the snapshot file.
pub fn read_snapshots(estate: &Estate, sources: &mut Sources, diags: &mut Diagnostics) -> TagData {
    let mut data = TagData::default();
    for snap in &estate.snapshots {
        let path = estate.root.join(&snap.value);
        let shown = snap
            .value
            .to_string_lossy()
            .trim_start_matches("./")
            .to_string();
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) => {
                diags.push(
                    Diagnostic::error(
                        Code::InvalidSnapshot,
                        snap.loc,
                        format!("cannot read the snapshot `{shown}`: {e}"),
                    )
                    .with_help("check that the file exists and is UTF-8 JSON"),
                );
                continue;
            }
        };
        let file = sources.add(shown.clone(), path.clone(), text);
        let text = &sources.get(file).text;
        let at = |line: usize, column: usize| -> Loc {
            let offset = offset_of(text, line, column);
            Loc {
                file,
                offset,
                len: 1,
            }
        };
        let raw: BTreeMap<String, Vec<RawTag>> = match serde_json::from_str(text) {
            Ok(r) => r,
            Err(e) => {
                let msg = e.to_string();
                let msg = msg.split(" at line ").next().unwrap_or(&msg).to_string();
                diags.push(
                    Diagnostic::error(Code::InvalidSnapshot, at(e.line(), e.column()), format!("the snapshot is not valid: {msg}"))
                        .with_help("a snapshot is a JSON object: `{\"ghcr.io/acme/app\": [{\"name\": \"1.0.0\", \"created\": \"2026-01-01T00:00:00Z\", \"digest\": \"sha256:…\"}]}`"),
                );
                continue;
            }
        };
        for (repo, tags) in raw {
            let key_loc = find_loc(text, &format!("\"{repo}\""), file);
            let mut infos = Vec::with_capacity(tags.len());
            for t in tags {
                let created = match t.created.as_deref().map(str::parse::<jiff::Timestamp>) {
                    None => None,
                    Some(Ok(ts)) => Some(ts),
                    Some(Err(_)) => {
                        diags.push(
                            Diagnostic::error(Code::InvalidSnapshot, find_loc(text, &format!("\"{}\"", t.created.as_deref().unwrap_or_default()), file), format!("tag `{}` of `{repo}` has a `created` time that is not RFC 3339", t.name))
                                .with_help("write e.g. `\"2026-01-31T12:00:00Z\"`, or `null` when unknown"),
                        );
                        None
                    }
                };
                if let Some(d) = &t.digest {
                    if crate::lower::rules::digest(d).is_err() {
                        diags.push(
                            Diagnostic::error(Code::InvalidSnapshot, find_loc(text, &format!("\"{d}\""), file), format!("tag `{}` of `{repo}` has a digest that is not `sha256:` and 64 hex digits", t.name))
                                .with_help("copy the digest from the registry, or write `null`"),
                        );
                        continue;
                    }
                }
                infos.push(TagInfo {
                    name: t.name,
                    created,
                    digest: t.digest,
                });
            }
            if let Some(prev) = data.repos.get(&repo) {
                diags.push(
                    Diagnostic::error(
                        Code::InvalidSnapshot,
                        key_loc,
                        format!(
                            "repository `{repo}` is in two snapshots (also in `{}`)",
                            prev.file
                        ),
                    )
                    .with_help("keep each repository's tags in one snapshot"),
                );
                continue;
            }
            data.repos.insert(
                repo,
                SnapshotTags {
                    tags: infos,
                    file: shown.clone(),
                },
            );
        }
    }
    data
}

/// Byte offset of a 1-based line and column (serde_json counts columns in bytes).
fn offset_of(text: &str, line: usize, column: usize) -> usize {
    let start: usize = text
        .split_inclusive('\n')
        .take(line.saturating_sub(1))
        .map(str::len)
        .sum();
    (start + column.saturating_sub(1)).min(text.len().saturating_sub(1))
}

fn find_loc(text: &str, needle: &str, file: crate::diagnostic::FileId) -> Loc {
    let offset = text.find(needle).unwrap_or(0);
    Loc {
        file,
        offset,
        len: needle.len().max(1),
    }
}

/// What the previous compile left in the output directory.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    /// The lock, if there was one.
    pub lock: Option<Lock>,
    /// Images found in the tree for stages Image Updater updates by git, keyed
    /// by (app, stage, image alias): what the tree runs now, and where it says so.
    pub written_back: BTreeMap<(AppId, StageId, usize), WrittenBack>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenBack {
    pub tag: Option<String>,
    pub digest: Option<String>,
    /// The file it was read from, relative to the tree.
    pub file: String,
}

/// Reads the lock and the written-back images in `out`. A lock that does not
/// parse is an error: without it keelson cannot tell its files from others.
pub fn observe(estate: &Estate, out: &Path) -> Result<Observed, crate::Error> {
    let mut observed = Observed::default();
    let lock_path = out.join(LOCK_FILE);
    match std::fs::read_to_string(&lock_path) {
        Ok(text) => {
            let lock = Lock::parse(&text).map_err(|why| {
                crate::Error::refused(
                    format!("`{}` is not a keelson lock: {why}", lock_path.display()),
                    "restore it from version control; keelson needs it to know which files it owns",
                )
            })?;
            observed.lock = Some(lock);
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(crate::Error::io("reading the lock", &lock_path, e)),
    }
    for c in committed_overlays(estate) {
        let app = estate.app(c.app);
        let kustomization = c.kustomization;
        let source_file = format!("{}/.argocd-source-{}.yaml", c.overlay, c.name);
        let from_kustomization = read_yaml(&out.join(&kustomization));
        let from_source = read_yaml(&out.join(&source_file));
        for (ii, image) in app.images.iter().enumerate() {
            let name = crate::emit::kustomize_image_name(image);
            // Argo CD applies `.argocd-source-<app>.yaml` over the
            // kustomization, so it wins when both name the image.
            let found = from_source
                .as_ref()
                .and_then(|v| source_file_image(v, name, &image.repository.value.0))
                .map(|(tag, digest)| WrittenBack {
                    tag,
                    digest,
                    file: source_file.clone(),
                })
                .or_else(|| {
                    from_kustomization
                        .as_ref()
                        .and_then(|v| kustomization_image(v, name))
                        .map(|(tag, digest)| WrittenBack {
                            tag,
                            digest,
                            file: kustomization.clone(),
                        })
                });
            if let Some(found) = found {
                observed.written_back.insert((c.app, c.stage, ii), found);
            }
        }
    }
    Ok(observed)
}

/// The overlay of an app stage that Image Updater commits to.
pub struct CommittedOverlay {
    pub app: AppId,
    pub stage: StageId,
    /// The overlay directory, tree-relative.
    pub overlay: String,
    /// Its `kustomization.yaml`, normalised as the tree names it.
    pub kustomization: String,
    /// The Application's name.
    pub name: String,
}

/// Every overlay whose `images:` Image Updater commits to (git or
/// pull-request write-back, manifests rather than a chart, tracked images).
pub fn committed_overlays(estate: &Estate) -> Vec<CommittedOverlay> {
    let layout = &estate.repo.layout;
    let mut out = Vec::new();
    for (ai, app) in estate.apps.iter().enumerate() {
        if matches!(app.manifests, Manifests::Chart { .. }) || app.images.is_empty() {
            continue;
        }
        for d in &app.deployments {
            if !estate.stage(d.stage.value).write_back.value.commits() {
                continue;
            }
            let vars = estate.deployment_vars(app, d);
            let overlay = layout.overlay.render(&vars);
            let raw = format!("{overlay}/kustomization.yaml");
            let kustomization =
                crate::emit::TreePath::new(&raw).map_or(raw, |p| p.as_str().to_string());
            out.push(CommittedOverlay {
                app: AppId(ai as u32),
                stage: d.stage.value,
                overlay,
                kustomization,
                name: layout.name.render(&vars),
            });
        }
    }
    out
}

fn read_yaml(path: &Path) -> Option<serde_yaml::Value> {
    let text = std::fs::read_to_string(path).ok()?;
    serde_yaml::from_str(&text).ok()
}

/// The `newTag`/`digest` of the `images:` entry named `name`.
fn kustomization_image(
    doc: &serde_yaml::Value,
    name: &str,
) -> Option<(Option<String>, Option<String>)> {
    let images = doc.get("images")?.as_sequence()?;
    let entry = images
        .iter()
        .find(|e| e.get("name").and_then(|n| n.as_str()) == Some(name))?;
    let text = |k: &str| entry.get(k).and_then(scalar_text);
    let (tag, digest) = (text("newTag"), text("digest"));
    (tag.is_some() || digest.is_some()).then_some((tag, digest))
}

fn scalar_text(v: &serde_yaml::Value) -> Option<String> {
    match v {
        serde_yaml::Value::String(s) => Some(s.clone()),
        serde_yaml::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// An image in `.argocd-source-<app>.yaml`'s `kustomize.images`, written as
/// `[name=]repo[:tag][@digest]`.
fn source_file_image(
    doc: &serde_yaml::Value,
    name: &str,
    repository: &str,
) -> Option<(Option<String>, Option<String>)> {
    let images = doc.get("kustomize")?.get("images")?.as_sequence()?;
    for entry in images.iter().filter_map(|e| e.as_str()) {
        let (alias, reference) = match entry.split_once('=') {
            Some((a, r)) => (Some(a), r),
            None => (None, entry),
        };
        let (rest, digest) = match reference.split_once('@') {
            Some((r, d)) => (r, Some(d.to_string())),
            None => (reference, None),
        };
        // A `:` after the last `/` separates the tag (a registry port has a `/` after it).
        let (repo, tag) = match rest.rfind(':') {
            Some(i) if !rest[i..].contains('/') => (&rest[..i], Some(rest[i + 1..].to_string())),
            _ => (rest, None),
        };
        if alias == Some(name) || (alias.is_none() && (repo == name || repo == repository)) {
            return Some((tag, digest));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_source_file_images() {
        let doc: serde_yaml::Value = serde_yaml::from_str(
            "kustomize:\n  images:\n  - ghcr.io/acme/api:1.4.2\n  - web=127.0.0.1:5000/acme/web:2.0.1@sha256:abc\n",
        )
        .unwrap();
        assert_eq!(
            source_file_image(&doc, "ghcr.io/acme/api", "ghcr.io/acme/api"),
            Some((Some("1.4.2".into()), None))
        );
        assert_eq!(
            source_file_image(&doc, "web", "127.0.0.1:5000/acme/web"),
            Some((Some("2.0.1".into()), Some("sha256:abc".into())))
        );
    }

    #[test]
    fn reads_kustomization_images() {
        let doc: serde_yaml::Value =
            serde_yaml::from_str("images:\n- name: x\n  newTag: 123\n").unwrap();
        assert_eq!(
            kustomization_image(&doc, "x"),
            Some((Some("123".into()), None))
        );
        assert_eq!(kustomization_image(&doc, "y"), None);
    }
}
