//! Stage 4: gather what the world says, before any decision is made.
//!
//! - tag data: snapshot files the estate names (`snapshot "./tags.json"`),
//!   and live registries for every other image (`live`, over `client`, with
//!   `credentials` and an on-disk `cache`);
//! - the previous output: `keelson.lock`, and the images Image Updater wrote
//!   back into the tree (an overlay's `kustomization.yaml`, or
//!   `.argocd-source-<app>.yaml` beside it) for stages it updates live.
//!
//! This is one of the two stages that do I/O (the other is `write`). What it
//! returns is plain data, so `select` and `emit` stay pure and testable.

pub mod cache;
pub mod client;
pub mod credentials;
pub mod live;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::diagnostic::{Code, Diagnostic, Diagnostics, Loc, Sources};
use crate::lock::Lock;
use crate::model::{AppId, Estate, Image, ImageRepo, Manifests, Registry, RegistryId, StageId};
use crate::strategy::TagInfo;
use crate::tree::LOCK_FILE;

/// Tags per repository (`registry/path`), and the snapshot each came from;
/// and per image, what its registry answered.
#[derive(Debug, Clone, Default)]
pub struct TagData {
    pub repos: BTreeMap<String, SnapshotTags>,
    /// Key: (app, image index in the app).
    pub live: BTreeMap<(AppId, usize), LiveTags>,
}

/// An image's tags as its registry listed them, with the metadata its
/// strategy needs.
#[derive(Debug, Clone)]
pub struct LiveTags {
    pub tags: Vec<TagInfo>,
    /// The repository as the registry serves it, `host/name`.
    pub origin: String,
}

/// Where an image's tags came from.
pub(crate) enum TagSource<'a> {
    Snapshot {
        tags: &'a [TagInfo],
        file: &'a str,
    },
    Registry {
        tags: &'a [TagInfo],
        origin: &'a str,
    },
}

impl TagSource<'_> {
    pub fn tags(&self) -> &[TagInfo] {
        match self {
            TagSource::Snapshot { tags, .. } | TagSource::Registry { tags, .. } => tags,
        }
    }
}

impl TagData {
    /// The tags known for an image: a snapshot's entry for its repository
    /// wins over the registry (the registry is then not asked).
    pub(crate) fn for_image(
        &self,
        app: AppId,
        index: usize,
        image: &Image,
    ) -> Option<TagSource<'_>> {
        if let Some(s) = self.repos.get(&image.repository.value.0) {
            return Some(TagSource::Snapshot {
                tags: &s.tags,
                file: &s.file,
            });
        }
        self.live.get(&(app, index)).map(|l| TagSource::Registry {
            tags: &l.tags,
            origin: &l.origin,
        })
    }
}

/// Where reading registries reports how far it got: called with (done,
/// total) repositories, from any thread. The CLI's output module makes one.
#[derive(Clone)]
pub struct Progress(pub std::sync::Arc<dyn Fn(usize, usize) + Send + Sync>);

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Progress")
    }
}

/// How keelson talks to registries.
#[derive(Debug, Clone)]
pub struct RegistryOptions {
    pub client: client::ClientOptions,
    /// `None`: no disk cache.
    pub cache_dir: Option<PathBuf>,
    /// Requests in flight at once.
    pub jobs: usize,
    /// Told (done, total) as repositories finish; the CLI draws it.
    pub progress: Option<Progress>,
}

impl Default for RegistryOptions {
    fn default() -> Self {
        RegistryOptions {
            client: client::ClientOptions::default(),
            cache_dir: None,
            jobs: 8,
            progress: None,
        }
    }
}

/// The API base and name of an image's repository.
pub(crate) fn repo_ref(estate: &Estate, image: &Image) -> client::RepoRef {
    repo_ref_of(
        &image.repository.value,
        image.registry.map(|r| estate.registry(r)),
    )
}

/// The API base and name of a repository: the registry's (`api-url`,
/// `default-namespace`) when one serves it, else the repository's own host
/// (`https://`, or `http://` on loopback, as Docker allows), Docker Hub for a
/// repository without one.
pub(crate) fn repo_ref_of(repository: &ImageRepo, registry: Option<&Registry>) -> client::RepoRef {
    let full = &repository.0;
    let (host, path) = match repository.registry_host() {
        Some(h) => (h.to_string(), full[h.len() + 1..].to_string()),
        None => (String::new(), full.clone()),
    };
    // Image Updater matches a registry's prefix against the image's host;
    // the name in the registry is the rest.
    let api = match registry {
        Some(r) => r.api_url.trim_end_matches('/').to_string(),
        None => default_api(&host),
    };
    let namespace = registry
        .and_then(|r| r.default_namespace.clone())
        .or_else(|| (host.is_empty() || host == "docker.io").then(|| "library".to_string()));
    let name = match namespace {
        Some(ns) if !path.contains('/') => format!("{ns}/{path}"),
        _ => path,
    };
    client::RepoRef {
        api,
        name,
        shown: full.clone(),
    }
}

/// The API base for a registry host with no `registry` node.
pub(crate) fn default_api(host: &str) -> String {
    match host {
        "" | "docker.io" | "index.docker.io" => "https://registry-1.docker.io".into(),
        h if h == "localhost"
            || h.starts_with("localhost:")
            || h.starts_with("127.")
            || h.starts_with("[::1]") =>
        {
            format!("http://{h}")
        }
        h => format!("https://{h}"),
    }
}

/// Asks the registries for every image that needs tags and has no snapshot
/// entry: images of stages that take them from the registry, unless pinned
/// there. Failures are diagnostics at the image's repository.
pub(crate) fn read_registries(
    estate: &Estate,
    data: &mut TagData,
    options: &RegistryOptions,
    diags: &mut Diagnostics,
) {
    use crate::model::StageSource;
    let empty_constraint_checks = crate::strategy::empty_constraint_checks(estate);
    let mut needed: Vec<(AppId, usize)> = Vec::new();
    for (ai, app) in estate.apps.iter().enumerate() {
        for (ii, image) in app.images.iter().enumerate() {
            if data.repos.contains_key(&image.repository.value.0) {
                continue;
            }
            let needs = app.deployments.iter().any(|d| {
                matches!(
                    estate.stage(d.stage.value).source,
                    StageSource::Registry { .. }
                ) && !d.pins.iter().any(|p| p.image == ii)
            });
            if needs {
                needed.push((AppId(ai as u32), ii));
            }
        }
    }
    if needed.is_empty() {
        return;
    }
    let ignores: Vec<Vec<String>> = needed
        .iter()
        .map(|&(a, i)| {
            estate.app(a).images[i]
                .ignore_tags
                .iter()
                .map(|p| p.value.clone())
                .collect()
        })
        .collect();
    let queries: Vec<live::Query<'_>> = needed
        .iter()
        .zip(&ignores)
        .map(|(&(a, i), ignore)| {
            let image = &estate.app(a).images[i];
            let platforms: Vec<live::Platform> = image
                .platforms
                .iter()
                .filter_map(|p| live::Platform::parse(&p.value))
                .collect();
            live::Query {
                repo: repo_ref(estate, image),
                rules: crate::strategy::Rules::of(image, ignore, empty_constraint_checks),
                platforms: if platforms.is_empty() {
                    live::Platform::default_wanted()
                } else {
                    platforms
                },
            }
        })
        .collect();
    let hosts: Vec<(String, Option<RegistryId>)> = needed
        .iter()
        .zip(&queries)
        .map(|(&(a, i), q)| (q.repo.host().to_string(), estate.app(a).images[i].registry))
        .collect();
    let client = client::Client::new(
        options.client.clone(),
        credentials::for_estate(estate, &hosts),
    );
    let cache = cache::Cache::new(options.cache_dir.clone());
    let progress = |done: usize, total: usize| {
        if let Some(Progress(report)) = &options.progress {
            report(done, total);
        }
    };
    let answers = live::fetch(&client, &cache, &queries, options.jobs, &progress);
    let mut reported = std::collections::BTreeSet::new();
    for ((&(a, i), q), answer) in needed.iter().zip(&queries).zip(answers) {
        let image = &estate.app(a).images[i];
        match answer {
            Ok(tags) => {
                data.live.insert(
                    (a, i),
                    LiveTags {
                        tags,
                        origin: format!("{}/{}", q.repo.host(), q.repo.name),
                    },
                );
            }
            // One report per repository and failure, at its first image.
            Err(e) => {
                if reported.insert((q.repo.clone(), e.to_string())) {
                    diags.push(
                        Diagnostic::error(
                            Code::RegistryUnavailable,
                            image.repository.loc,
                            e.to_string(),
                        )
                        .with_help(e.help()),
                    );
                }
            }
        }
    }
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
pub(crate) fn read_snapshots(
    estate: &Estate,
    sources: &mut Sources,
    diags: &mut Diagnostics,
) -> TagData {
    let mut data = TagData::default();
    for snap in &estate.snapshots {
        let path = estate.root.join(&snap.value);
        let shown = snap
            .value
            .to_string_lossy()
            .trim_start_matches("./")
            .to_string();
        // Nothing outside the estate is read, even through a symlink.
        let text = match crate::check::read_text_inside(&estate.root, &snap.value) {
            Ok(t) => t,
            Err(crate::check::Unreadable::Outside(target)) => {
                let loc = snap.loc;
                diags.push(crate::check::outside_estate(
                    loc,
                    "the snapshot",
                    &snap.value,
                    &target,
                ));
                continue;
            }
            Err(crate::check::Unreadable::Io(e)) => {
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
                    if crate::rules::digest(d).is_err() {
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
                    unusable: None,
                });
            }
            if let Some(prev) = data.repos.get(&repo) {
                // Found only when needed: searching for every key is
                // quadratic in the snapshot's size.
                let key_loc = find_loc(text, &format!("\"{repo}\""), file);
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
pub(crate) fn observe(estate: &Estate, out: &Path) -> Result<Observed, crate::error::Error> {
    let mut observed = Observed::default();
    let lock_path = out.join(LOCK_FILE);
    match std::fs::read_to_string(&lock_path) {
        Ok(text) => {
            let lock = Lock::parse(&text).map_err(|why| {
                crate::error::Error::refused(
                    format!("`{}` is not a keelson lock: {why}", lock_path.display()),
                    "restore it from version control; keelson needs it to know which files it owns",
                )
            })?;
            observed.lock = Some(lock);
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(crate::error::Error::io("reading the lock", &lock_path, e)),
    }
    // Read in parallel (a large estate has thousands), kept in order.
    let overlays: Vec<_> = {
        use rayon::prelude::*;
        committed_overlays(estate)
            .into_par_iter()
            .map(|c| {
                let source_file = format!("{}/.argocd-source-{}.yaml", c.overlay, c.name);
                let from_kustomization = read_yaml(&out.join(&c.kustomization));
                let from_source = read_yaml(&out.join(&source_file));
                (c, source_file, from_kustomization, from_source)
            })
            .collect()
    };
    for (c, source_file, from_kustomization, from_source) in overlays {
        let app = estate.app(c.app);
        let kustomization = c.kustomization;
        for (ii, image) in app.images.iter().enumerate() {
            let name = image.kustomize_name();
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
pub(crate) struct CommittedOverlay {
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
pub(crate) fn committed_overlays(estate: &Estate) -> Vec<CommittedOverlay> {
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
                crate::tree::TreePath::new(&raw).map_or(raw, |p| p.as_str().to_string());
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
