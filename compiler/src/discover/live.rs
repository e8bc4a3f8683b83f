//! Tags from live registries, as Image Updater's `GetTags` gathers them:
//! the tag list; then, only for `newest-build` and `digest` and only for tags
//! that pass the filters, each tag's manifest, its platforms and build time.
//! `semver` and `alphabetical` need nothing per tag; keelson then asks one
//! digest, of the chosen tag, so the lock records what the tag pointed at.
//!
//! Requests run on a bounded pool of threads; everything a digest names comes
//! from the cache when it can.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};

use super::cache::{Cache, Cached, IndexEntry};
use super::client::{
    Client, ErrorKind, MEDIA_DOCKER_LIST, MEDIA_DOCKER_MANIFEST, MEDIA_OCI_INDEX,
    MEDIA_OCI_MANIFEST, RegistryError, RepoRef,
};
use crate::model::Strategy;
use crate::strategy::{self, Rules, TagInfo};

/// `os/arch[/variant]`, as Image Updater keys platforms.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Platform {
    pub os: String,
    pub arch: String,
    pub variant: Option<String>,
}

impl Platform {
    pub fn parse(s: &str) -> Option<Platform> {
        let mut parts = s.trim().splitn(3, '/');
        let os = parts.next().filter(|p| !p.is_empty())?;
        let arch = parts.next().filter(|p| !p.is_empty())?;
        let variant = parts.next().filter(|p| !p.is_empty());
        Some(Platform {
            os: os.into(),
            arch: arch.into(),
            variant: variant.map(str::to_string),
        })
    }

    /// What Image Updater's controller assumes without `platforms`: its own
    /// platform, which on the usual clusters is this.
    pub fn default_wanted() -> Vec<Platform> {
        vec![Platform::parse("linux/amd64").expect("static")]
    }

    fn of(os: &str, arch: &str, variant: Option<&str>) -> Platform {
        Platform {
            os: os.into(),
            arch: arch.into(),
            variant: variant.filter(|v| !v.is_empty()).map(str::to_string),
        }
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.arch)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// Image Updater's `WantsPlatform`: an exact match, or a wanted platform
/// without variant matching a more specific one.
pub fn wants(wanted: &[Platform], p: &Platform) -> bool {
    wanted.contains(p)
        || (p.variant.is_some()
            && wanted
                .iter()
                .any(|w| w.variant.is_none() && w.os == p.os && w.arch == p.arch))
}

/// One image's question to a registry.
pub struct Query<'a> {
    pub repo: RepoRef,
    pub rules: Rules<'a>,
    pub platforms: Vec<Platform>,
}

/// Reports progress: called with (done, total) as repositories finish.
pub type Progress<'p> = &'p (dyn Fn(usize, usize) + Sync);

/// Answers every query: its candidate tags, in the registry's order, with the
/// metadata its strategy needs; or why the registry could not be read.
/// Answers are in query order; each repository and each tag is asked once,
/// however many queries share it.
pub fn fetch(
    client: &Client,
    cache: &Cache,
    queries: &[Query<'_>],
    jobs: usize,
    progress: Progress<'_>,
) -> Vec<Result<Vec<TagInfo>, RegistryError>> {
    let lists = list_tags(client, queries, jobs, progress);
    let metas = tag_metadata(client, cache, queries, &lists, jobs);
    let mut out = candidates(queries, &lists, &metas);
    add_chosen_digests(client, queries, &mut out, jobs);
    out
}

/// Each repository's tag list, by repository.
type Lists<'q> = BTreeMap<&'q RepoRef, Result<Vec<String>, RegistryError>>;

/// Each (repository, tag)'s manifest and configs, for the tags some query
/// needs them for.
type Metas<'q> = BTreeMap<(&'q RepoRef, &'q str), Result<TagMeta, RegistryError>>;

/// Step 1: one tag list per repository, reporting progress as each arrives.
fn list_tags<'q>(
    client: &Client,
    queries: &'q [Query<'_>],
    jobs: usize,
    progress: Progress<'_>,
) -> Lists<'q> {
    let repos: Vec<&RepoRef> = queries
        .iter()
        .map(|q| &q.repo)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let done = AtomicUsize::new(0);
    let lists = parallel(&repos, jobs, |repo| {
        let r = client.tags(repo);
        progress(done.fetch_add(1, Ordering::Relaxed) + 1, repos.len());
        r
    });
    repos.iter().copied().zip(lists).collect()
}

/// Step 2: per-tag metadata, only for `newest-build` and `digest` queries and
/// only for the tags that pass their filters; the platforms every such
/// query wants are asked together.
fn tag_metadata<'q>(
    client: &Client,
    cache: &Cache,
    queries: &'q [Query<'_>],
    lists: &'q Lists<'q>,
    jobs: usize,
) -> Metas<'q> {
    let mut wanted: BTreeMap<(&RepoRef, &str), (BTreeSet<Platform>, bool)> = BTreeMap::new();
    for q in queries {
        let needs_created = match q.rules.strategy {
            Strategy::NewestBuild => true,
            Strategy::Digest => false,
            Strategy::Semver | Strategy::Alphabetical => continue,
        };
        let Some(Ok(tags)) = lists.get(&q.repo) else {
            continue;
        };
        for t in tags {
            if strategy::filter_name(&q.rules, t).is_none() {
                let entry = wanted.entry((&q.repo, t.as_str())).or_default();
                entry.0.extend(q.platforms.iter().cloned());
                entry.1 |= needs_created;
            }
        }
    }
    let jobs_list: Vec<_> = wanted.into_iter().collect();
    let metas = parallel(&jobs_list, jobs, |((repo, tag), (platforms, children))| {
        let platforms: Vec<Platform> = platforms.iter().cloned().collect();
        tag_meta(client, cache, repo, tag, &platforms, *children)
    });
    jobs_list.iter().map(|(k, _)| *k).zip(metas).collect()
}

/// Step 3: each query's candidates, in the registry's order, described for
/// its platforms and strategy; the first metadata error fails the query.
fn candidates(
    queries: &[Query<'_>],
    lists: &Lists<'_>,
    metas: &Metas<'_>,
) -> Vec<Result<Vec<TagInfo>, RegistryError>> {
    let mut out: Vec<Result<Vec<TagInfo>, RegistryError>> = Vec::with_capacity(queries.len());
    for q in queries {
        let tags = match lists.get(&q.repo) {
            Some(Ok(t)) => t,
            Some(Err(e)) => {
                out.push(Err(e.clone()));
                continue;
            }
            None => unreachable!("every query's repository was listed"),
        };
        let mut infos = Vec::with_capacity(tags.len());
        let mut failed = None;
        for t in tags {
            let mut info = TagInfo::named(t);
            if let Some(meta) = metas.get(&(&q.repo, t.as_str())) {
                match meta {
                    Ok(m) => m.describe(&q.platforms, q.rules.strategy, &mut info),
                    Err(e) => {
                        failed = Some(e.clone());
                        break;
                    }
                }
            }
            infos.push(info);
        }
        out.push(match failed {
            Some(e) => Err(e),
            None => Ok(infos),
        });
    }
    out
}

/// Step 4: the digest of each chosen tag that has none yet, for the lock
/// (one request per distinct tag). A tag deleted since it was listed gets
/// no digest; any other error fails the query.
fn add_chosen_digests(
    client: &Client,
    queries: &[Query<'_>],
    out: &mut [Result<Vec<TagInfo>, RegistryError>],
    jobs: usize,
) {
    let chosen: Vec<Option<usize>> = queries
        .iter()
        .zip(out.iter())
        .map(|(q, r)| {
            let infos = r.as_ref().ok()?;
            let c = strategy::select(&q.rules, infos).chosen?;
            if c.digest.is_some() {
                return None;
            }
            infos.iter().rposition(|t| t.name == c.name)
        })
        .collect();
    let heads: Vec<(&RepoRef, &str)> = queries
        .iter()
        .zip(out.iter())
        .zip(&chosen)
        .filter_map(|((q, r), c)| Some((&q.repo, r.as_ref().ok()?[(*c)?].name.as_str())))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let digests = parallel(&heads, jobs, |(repo, tag)| client.digest(repo, tag));
    let digests: BTreeMap<(RepoRef, String), Result<String, RegistryError>> = heads
        .iter()
        .map(|(r, t)| ((*r).clone(), t.to_string()))
        .zip(digests)
        .collect();
    for ((q, r), c) in queries.iter().zip(out.iter_mut()).zip(chosen) {
        let (Ok(infos), Some(i)) = (&mut *r, c) else {
            continue;
        };
        match digests.get(&(q.repo.clone(), infos[i].name.clone())) {
            Some(Ok(d)) => infos[i].digest = Some(d.clone()),
            // Deleted since it was listed: the lock records no digest.
            Some(Err(e)) if e.kind == ErrorKind::NotFound => {}
            Some(Err(e)) => *r = Err(e.clone()),
            None => {}
        }
    }
}

/// What a tag's manifest says, independent of who asks.
#[derive(Debug, Clone)]
enum TagMeta {
    Image {
        digest: String,
        config: Result<Config, String>,
    },
    Index {
        digest: String,
        entries: Vec<IndexEntry>,
        /// The configs of the entries fetched (those some query wants).
        children: BTreeMap<String, Result<Config, String>>,
    },
    /// Listed, but unreadable: skipped, as Image Updater skips it.
    Unusable(String),
}

#[derive(Debug, Clone)]
struct Config {
    platform: Platform,
    created: Option<String>,
}

impl TagMeta {
    /// Fills `info` for a query with these platforms and this strategy.
    fn describe(&self, wanted: &[Platform], strategy: Strategy, info: &mut TagInfo) {
        let dated = |c: &Config| -> Result<jiff::Timestamp, String> {
            c.created
                .as_deref()
                .and_then(|s| s.parse::<jiff::Timestamp>().ok())
                .ok_or_else(|| "its image config has no valid `created` time".to_string())
        };
        match self {
            TagMeta::Unusable(why) => info.unusable = Some(why.clone()),
            TagMeta::Image { digest, config } => {
                let c = match config {
                    Ok(c) => c,
                    Err(why) => {
                        info.unusable = Some(why.clone());
                        return;
                    }
                };
                if !wants(wanted, &c.platform) {
                    info.unusable = Some(format!("built for {}, not {}", c.platform, list(wanted)));
                    return;
                }
                // Image Updater parses the build time of a single image for
                // both strategies, and skips the tag when it cannot.
                match dated(c) {
                    Ok(ts) => {
                        info.created = Some(ts);
                        info.digest = Some(digest.clone());
                    }
                    Err(why) => info.unusable = Some(why),
                }
            }
            TagMeta::Index {
                digest,
                entries,
                children,
            } => {
                let usable: Vec<&IndexEntry> = entries
                    .iter()
                    .filter(|e| {
                        wants(
                            wanted,
                            &Platform::of(&e.os, &e.architecture, e.variant.as_deref()),
                        )
                    })
                    .collect();
                if usable.is_empty() {
                    let has: Vec<String> = entries
                        .iter()
                        .map(|e| {
                            Platform::of(&e.os, &e.architecture, e.variant.as_deref()).to_string()
                        })
                        .collect();
                    info.unusable = Some(format!(
                        "its index has no image for {} (it has {})",
                        list(wanted),
                        if has.is_empty() {
                            "none".into()
                        } else {
                            has.join(", ")
                        }
                    ));
                    return;
                }
                info.digest = Some(digest.clone());
                if strategy != Strategy::NewestBuild {
                    return;
                }
                // The latest build among the wanted platforms; Go's zero time
                // when none could be read, as upstream.
                let mut latest: Option<jiff::Timestamp> = None;
                for e in usable {
                    match children.get(&e.digest) {
                        Some(Ok(c)) if wants(wanted, &c.platform) => match dated(c) {
                            Ok(ts) => latest = latest.max(Some(ts)),
                            Err(why) => {
                                info.unusable = Some(format!("{} in its index: {why}", c.platform));
                                return;
                            }
                        },
                        Some(Ok(_)) | None => {}
                        Some(Err(why)) => {
                            info.unusable = Some(why.clone());
                            return;
                        }
                    }
                }
                info.created = Some(latest.unwrap_or_else(go_zero_time));
            }
        }
    }
}

fn go_zero_time() -> jiff::Timestamp {
    "0001-01-01T00:00:00Z".parse().expect("static")
}

fn list(ps: &[Platform]) -> String {
    ps.iter()
        .map(Platform::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Fetches what a tag points at. Registry failures are errors; a tag that
/// vanished or cannot be read is `Unusable`, as upstream skips it.
fn tag_meta(
    client: &Client,
    cache: &Cache,
    repo: &RepoRef,
    tag: &str,
    wanted: &[Platform],
    children: bool,
) -> Result<TagMeta, RegistryError> {
    let m = match client.manifest(repo, tag) {
        Ok(m) => m,
        Err(e) if e.kind == ErrorKind::NotFound => {
            return Ok(TagMeta::Unusable("its manifest was not found (404)".into()));
        }
        Err(e) => return Err(e),
    };
    let summary = match summarize(&m.media_type, &m.body) {
        Ok(s) => s,
        Err(why) => return Ok(TagMeta::Unusable(why)),
    };
    cache.put(&m.digest, &summary);
    match summary {
        Cached::Manifest { config } => Ok(TagMeta::Image {
            digest: m.digest,
            config: config_of(client, cache, repo, &config)?,
        }),
        Cached::Index { manifests } => {
            let mut configs = BTreeMap::new();
            if children {
                for e in &manifests {
                    let p = Platform::of(&e.os, &e.architecture, e.variant.as_deref());
                    if wants(wanted, &p) && !configs.contains_key(&e.digest) {
                        let c = child_config(client, cache, repo, &e.digest)?;
                        configs.insert(e.digest.clone(), c);
                    }
                }
            }
            Ok(TagMeta::Index {
                digest: m.digest,
                entries: manifests,
                children: configs,
            })
        }
        Cached::Config { .. } => Ok(TagMeta::Unusable(
            "it names a config, not a manifest".into(),
        )),
    }
}

fn child_config(
    client: &Client,
    cache: &Cache,
    repo: &RepoRef,
    digest: &str,
) -> Result<Result<Config, String>, RegistryError> {
    let summary = match cache.get(digest) {
        Some(s) => s,
        None => {
            let m = match client.manifest(repo, digest) {
                Ok(m) => m,
                Err(e) if e.kind == ErrorKind::NotFound => {
                    return Ok(Err(format!(
                        "its index names {digest}, which is not found (404)"
                    )));
                }
                Err(e) => return Err(e),
            };
            match summarize(&m.media_type, &m.body) {
                Ok(s) => {
                    cache.put(digest, &s);
                    s
                }
                Err(why) => return Ok(Err(why)),
            }
        }
    };
    match summary {
        Cached::Manifest { config } => config_of(client, cache, repo, &config),
        _ => Ok(Err(format!(
            "its index entry {digest} is not an image manifest"
        ))),
    }
}

fn config_of(
    client: &Client,
    cache: &Cache,
    repo: &RepoRef,
    digest: &str,
) -> Result<Result<Config, String>, RegistryError> {
    let to_config = |c: Cached| match c {
        Cached::Config {
            os,
            architecture,
            variant,
            created,
        } => Ok(Config {
            platform: Platform::of(&os, &architecture, variant.as_deref()),
            created,
        }),
        _ => Err(format!("{digest} is not an image config")),
    };
    if let Some(c) = cache.get(digest) {
        return Ok(to_config(c));
    }
    let bytes = match client.blob(repo, digest) {
        Ok(b) => b,
        Err(e) if e.kind == ErrorKind::NotFound => {
            return Ok(Err(format!("its image config {digest} is not found (404)")));
        }
        Err(e) => return Err(e),
    };
    let cached = match read_config(&bytes) {
        Ok(c) => c,
        Err(why) => return Ok(Err(why)),
    };
    cache.put(digest, &cached);
    Ok(to_config(cached))
}

/// The part of an image config keelson needs (`pub(crate)`: reachable for
/// the fuzz targets, like `summarize`).
pub(crate) fn read_config(bytes: &[u8]) -> Result<Cached, String> {
    #[derive(serde::Deserialize)]
    struct Raw {
        #[serde(default)]
        os: String,
        #[serde(default)]
        architecture: String,
        #[serde(default)]
        variant: Option<String>,
        #[serde(default)]
        created: Option<String>,
    }
    let raw: Raw = serde_json::from_slice(bytes)
        .map_err(|e| format!("its image config is not valid JSON: {e}"))?;
    Ok(Cached::Config {
        os: raw.os,
        architecture: raw.architecture,
        variant: raw.variant.filter(|v| !v.is_empty()),
        created: raw.created,
    })
}

/// The part of a manifest keelson needs, by media type (the body's
/// `mediaType` when the registry sends no useful `Content-Type`).
pub(crate) fn summarize(media_type: &str, body: &[u8]) -> Result<Cached, String> {
    #[derive(serde::Deserialize)]
    struct Raw {
        #[serde(default, rename = "mediaType")]
        media_type: Option<String>,
        #[serde(default)]
        config: Option<Descriptor>,
        #[serde(default)]
        manifests: Option<Vec<Entry>>,
    }
    #[derive(serde::Deserialize)]
    struct Descriptor {
        digest: String,
    }
    #[derive(serde::Deserialize)]
    struct Entry {
        digest: String,
        #[serde(default)]
        platform: Option<RawPlatform>,
    }
    #[derive(serde::Deserialize)]
    struct RawPlatform {
        #[serde(default)]
        os: String,
        #[serde(default)]
        architecture: String,
        #[serde(default)]
        variant: Option<String>,
    }
    let raw: Raw =
        serde_json::from_slice(body).map_err(|e| format!("its manifest is not valid JSON: {e}"))?;
    let kind = if media_type.is_empty() {
        raw.media_type.clone().unwrap_or_default()
    } else {
        media_type.to_string()
    };
    match kind.as_str() {
        MEDIA_OCI_MANIFEST | MEDIA_DOCKER_MANIFEST => {
            let config = raw
                .config
                .ok_or_else(|| "its manifest has no config".to_string())?;
            Ok(Cached::Manifest {
                config: config.digest,
            })
        }
        MEDIA_OCI_INDEX | MEDIA_DOCKER_LIST => {
            let manifests = raw
                .manifests
                .filter(|m| !m.is_empty())
                .ok_or_else(|| "its index lists no manifests".to_string())?;
            Ok(Cached::Index {
                manifests: manifests
                    .into_iter()
                    .map(|e| {
                        let p = e.platform.unwrap_or(RawPlatform {
                            os: String::new(),
                            architecture: String::new(),
                            variant: None,
                        });
                        IndexEntry {
                            digest: e.digest,
                            os: p.os,
                            architecture: p.architecture,
                            variant: p.variant.filter(|v| !v.is_empty()),
                        }
                    })
                    .collect(),
            })
        }
        other => Err(format!(
            "its manifest has a media type keelson does not read (`{other}`)"
        )),
    }
}

/// Runs `f` over `items` on at most `jobs` threads; results in input order.
pub fn parallel<T: Sync, R: Send>(items: &[T], jobs: usize, f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let next = AtomicUsize::new(0);
    let results: Vec<std::sync::Mutex<Option<R>>> =
        items.iter().map(|_| std::sync::Mutex::new(None)).collect();
    let workers = jobs.clamp(1, items.len().max(1));
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(item) = items.get(i) else { break };
                    let r = f(item);
                    *results[i].lock().unwrap_or_else(|p| p.into_inner()) = Some(r);
                }
            });
        }
    });
    results
        .into_iter()
        .map(|m| {
            m.into_inner()
                .unwrap_or_else(|p| p.into_inner())
                .expect("every item was run")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platform_matching_follows_image_updater() {
        let p = |s: &str| Platform::parse(s).unwrap();
        assert!(wants(&[p("linux/arm64")], &p("linux/arm64/v8")));
        assert!(!wants(&[p("linux/arm64/v8")], &p("linux/arm64")));
        assert!(wants(&[p("linux/arm/v7")], &p("linux/arm/v7")));
        assert!(!wants(&[p("linux/amd64")], &p("windows/amd64")));
        assert_eq!(Platform::parse("linux"), None);
    }

    #[test]
    fn summaries_by_media_type() {
        let m = br#"{"schemaVersion":2,"config":{"digest":"sha256:aa"},"layers":[]}"#;
        assert_eq!(
            summarize(MEDIA_OCI_MANIFEST, m),
            Ok(Cached::Manifest {
                config: "sha256:aa".into()
            })
        );
        let i = br#"{"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"digest":"sha256:bb","platform":{"os":"linux","architecture":"arm","variant":"v7"}}]}"#;
        match summarize("", i) {
            Ok(Cached::Index { manifests }) => {
                assert_eq!(manifests[0].variant.as_deref(), Some("v7"))
            }
            other => panic!("{other:?}"),
        }
        assert!(
            summarize(
                "application/vnd.docker.distribution.manifest.v1+prettyjws",
                m
            )
            .is_err()
        );
        assert!(summarize(MEDIA_OCI_MANIFEST, b"{").is_err());
    }

    #[test]
    fn parallel_keeps_order() {
        let v: Vec<usize> = (0..100).collect();
        assert_eq!(
            parallel(&v, 7, |x| x * 2),
            (0..100).map(|x| x * 2).collect::<Vec<_>>()
        );
        assert!(parallel(&Vec::<usize>::new(), 4, |x| *x).is_empty());
    }
}
