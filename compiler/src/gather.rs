//! The one seam to the outside: everything a compile needs from the world,
//! read into one value, so that building the tree from it is pure.
//!
//! [`gather`] reads, in this order, stopping where errors make the rest
//! pointless (as `keelson check` reports them):
//! 1. the estate (through the parse cache), checked: load → lower → graph;
//! 2. snapshot files, then the registries (unless `offline`);
//! 3. what a generated tree runs: its lock and Image Updater's write-backs
//!    (the output's, or the tree `decide_from` names), and which files the
//!    output's lock says keelson owns;
//! 4. directory apps' manifests and chart values files, scanned for secrets;
//! 5. the policies' modules (compiled, through the module cache);
//! 6. the clock, once, when `now` is not given.
//!
//! `compile::build` then decides, emits and verifies from [`Inputs`] alone:
//! no filesystem, no environment, no clock.

use std::path::{Path, PathBuf};

use crate::check::{self, Checked, Resolved, Unreadable};
use crate::diagnostic::{Code, Diagnostic, Diagnostics, FileId, Loc, Sources};
use crate::discover::{self, Observed, RegistryOptions, TagData};
use crate::error::Error;
use crate::graph::EstateGraph;
use crate::load::ParseCache;
use crate::lock::Lock;
use crate::model::{AppId, Estate, Manifests};
use crate::policy::{self, Policies};
use crate::timing::Laps;

/// What to read, and how.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Ask no registry: snapshots and the lock decide.
    pub offline: bool,
    /// How registries are asked, and where the caches are.
    pub registry: RegistryOptions,
    /// The time policies see and new lock entries record; `None` reads the
    /// clock (once, here).
    pub now: Option<jiff::Timestamp>,
    /// What each policy call may use.
    pub policy_limits: policy::Limits,
    /// Decide images from what this tree runs instead of the output.
    pub decide_from: Option<PathBuf>,
}

/// Everything read for a compile. `inputs` is `None` when the estate had
/// errors before the world was read; `diagnostics` then says why.
pub struct Gathered {
    pub sources: Sources,
    pub diagnostics: Diagnostics,
    pub inputs: Option<Inputs>,
}

/// What the pure part of a compile builds from.
pub struct Inputs {
    pub estate: Estate,
    pub graph: EstateGraph,
    /// Candidate tags: per repository from snapshots, per image from registries.
    pub tags: TagData,
    /// What the tree that decides runs: its lock and write-backs.
    pub observed: Observed,
    /// The output's lock: which files keelson owns there.
    pub owned: Option<Lock>,
    /// Directory apps' files and chart values files.
    pub files: AppFiles,
    pub policies: Policies,
    pub now: jiff::Timestamp,
    pub offline: bool,
}

/// Files read from the estate directory for emit.
#[derive(Debug, Clone, Default)]
pub struct AppFiles {
    /// A directory app's files, relative to its directory, sorted.
    pub dirs: std::collections::BTreeMap<AppId, Vec<ManifestFile>>,
    /// A chart app's `values-file`, as text.
    pub values_files: std::collections::BTreeMap<AppId, (FileId, String)>,
}

/// One file of a directory app.
#[derive(Debug, Clone)]
pub struct ManifestFile {
    /// Relative to the app's manifest directory, `/`-separated.
    pub rel: String,
    pub bytes: Vec<u8>,
    /// The file's text among the sources, for YAML files (diagnostics point
    /// into it).
    pub file: Option<FileId>,
}

/// Reads everything compiling the estate in `dir` into `out` needs. Only
/// I/O failures that stop a command (an unreadable directory, a damaged
/// lock) are `Err`; everything wrong with the inputs is a diagnostic.
pub fn gather(dir: &Path, out: &Path, options: &Options) -> Result<Gathered, Error> {
    let mut laps = Laps::start();
    let cache = ParseCache::new(options.registry.cache_dir.as_deref());
    let checked = check::check_dir_cached(dir, &cache)?;
    laps.lap("check");
    let gathered = gather_checked(checked, out, options);
    laps.lap("gather");
    gathered
}

/// [`gather`] for an estate already checked.
pub(crate) fn gather_checked(
    checked: Checked,
    out: &Path,
    options: &Options,
) -> Result<Gathered, Error> {
    let Checked {
        loaded,
        estate,
        graph,
        diagnostics,
    } = checked;
    let mut sources = loaded.sources;
    let mut diags = Diagnostics::default();
    for d in diagnostics {
        diags.push(d);
    }
    let (Some(estate), Some(graph)) = (estate, graph) else {
        return Ok(Gathered {
            sources,
            diagnostics: diags,
            inputs: None,
        });
    };
    if diags.has_errors() {
        return Ok(Gathered {
            sources,
            diagnostics: diags,
            inputs: None,
        });
    }
    let mut tags = discover::read_snapshots(&estate, &mut sources, &mut diags);
    if !options.offline && !diags.has_errors() {
        discover::read_registries(&estate, &mut tags, &options.registry, &mut diags);
    }
    // Decisions build on what a tree runs (its lock, Image Updater's
    // write-backs): the output's, or the tree `decide_from` names. Which
    // files keelson owns is always the output's lock.
    let observed = discover::observe(&estate, options.decide_from.as_deref().unwrap_or(out))?;
    let owned = match &options.decide_from {
        Some(_) => discover::observe(&estate, out)?.lock,
        None => observed.lock.clone(),
    };
    let files = read_app_files(&estate, &mut sources, &mut diags);
    let policies = if diags.has_errors() {
        Policies::default()
    } else {
        policy::load::load(
            &estate,
            observed.lock.as_ref(),
            options.policy_limits,
            options.registry.cache_dir.clone(),
            &mut diags,
        )
    };
    let now = options.now.unwrap_or_else(jiff::Timestamp::now);
    Ok(Gathered {
        sources,
        diagnostics: diags,
        inputs: Some(Inputs {
            estate,
            graph,
            tags,
            observed,
            owned,
            files,
            policies,
            now,
            offline: options.offline,
        }),
    })
}

/// Reads directory apps' files and chart values files, scanning them for
/// literal secrets.
fn read_app_files(estate: &Estate, sources: &mut Sources, diags: &mut Diagnostics) -> AppFiles {
    let mut files = AppFiles::default();
    for (ai, app) in estate.apps.iter().enumerate() {
        let id = AppId(ai as u32);
        match &app.manifests {
            Manifests::Directory(dir) => {
                let list = read_manifest_dir(estate, &dir.value, dir.loc, sources, diags);
                files.dirs.insert(id, list);
            }
            Manifests::Chart {
                values_file: Some(f),
                ..
            } => {
                if let Some(values) = read_values_file(estate, &f.value, f.loc, sources, diags) {
                    files.values_files.insert(id, values);
                }
            }
            _ => {}
        }
    }
    files
}

/// A directory app's files, in path order; hidden files are skipped, and
/// nothing outside the estate is read (see [`check::list_inside`]).
fn read_manifest_dir(
    estate: &Estate,
    dir: &Path,
    loc: Loc,
    sources: &mut Sources,
    diags: &mut Diagnostics,
) -> Vec<ManifestFile> {
    let real = match check::resolve_inside(&estate.root, dir) {
        Resolved::Inside(real) => real,
        Resolved::Outside(target) => {
            diags.push(check::outside_estate(
                loc,
                "the manifest directory",
                dir,
                &target,
            ));
            return Vec::new();
        }
        // `check` reported it.
        Resolved::Missing => return Vec::new(),
    };
    let listing = check::list_inside(&estate.root, &real);
    listing.report(dir, loc, diags);
    let mut list = Vec::new();
    for (rel, real) in listing.files {
        let path = estate.root.join(dir).join(&rel);
        let bytes = match std::fs::read(&real) {
            Ok(b) => b,
            Err(e) => {
                diags.push(
                    Diagnostic::error(
                        Code::InvalidManifest,
                        loc,
                        format!("cannot read `{}`: {e}", path.display()),
                    )
                    .with_help("check the file's permissions"),
                );
                continue;
            }
        };
        let is_yaml = rel.ends_with(".yaml") || rel.ends_with(".yml");
        let file = if is_yaml {
            match std::str::from_utf8(&bytes) {
                Ok(text) => {
                    let shown = display_path(dir, &rel);
                    let fid = sources.add(shown, path.clone(), text.to_string());
                    scan(sources, fid, diags);
                    Some(fid)
                }
                Err(_) => {
                    diags.push(
                        Diagnostic::error(
                            Code::InvalidManifest,
                            loc,
                            format!("`{rel}` in `{}` is not UTF-8", dir.display()),
                        )
                        .with_help("save the manifest as UTF-8"),
                    );
                    None
                }
            }
        } else {
            None
        };
        list.push(ManifestFile { rel, bytes, file });
    }
    list
}

/// A chart app's values file: one YAML mapping, checked once here rather
/// than once per stage that merges it.
fn read_values_file(
    estate: &Estate,
    file: &Path,
    loc: Loc,
    sources: &mut Sources,
    diags: &mut Diagnostics,
) -> Option<(FileId, String)> {
    let path = estate.root.join(file);
    let text = match check::read_text_inside(&estate.root, file) {
        Ok(text) => text,
        Err(Unreadable::Outside(target)) => {
            diags.push(check::outside_estate(loc, "the values file", file, &target));
            return None;
        }
        Err(Unreadable::Io(e)) => {
            diags.push(
                Diagnostic::error(
                    Code::InvalidManifest,
                    loc,
                    format!("cannot read the values file: {e}"),
                )
                .with_help("check that it exists and is UTF-8"),
            );
            return None;
        }
    };
    let fid = sources.add(file.to_string_lossy().into_owned(), path, text.clone());
    scan(sources, fid, diags);
    match serde_yaml::from_str::<serde_yaml::Value>(&text) {
        Ok(serde_yaml::Value::Mapping(_) | serde_yaml::Value::Null) => Some((fid, text)),
        Ok(_) | Err(_) => {
            diags.push(
                Diagnostic::error(
                    Code::InvalidManifest,
                    Loc {
                        file: fid,
                        offset: 0,
                        len: 0,
                    },
                    "a Helm values file must hold one YAML mapping",
                )
                .with_help("write the values as `key: value` lines"),
            );
            None
        }
    }
}

fn display_path(dir: &Path, rel: &str) -> String {
    let mut p = PathBuf::from(dir);
    p.push(rel);
    p.to_string_lossy().trim_start_matches("./").to_string()
}

/// Literal secrets in a manifest would be committed to the GitOps repo.
fn scan(sources: &Sources, file: FileId, diags: &mut Diagnostics) {
    use serde::Deserialize;
    let text = &sources.get(file).text;
    for doc in serde_yaml::Deserializer::from_str(text) {
        let Ok(v) = serde_yaml::Value::deserialize(doc) else {
            break;
        };
        let has = |k: &str| {
            v.get(k)
                .and_then(|d| d.as_mapping())
                .is_some_and(|m| !m.is_empty())
        };
        if v.get("kind").and_then(|k| k.as_str()) == Some("Secret")
            && (has("data") || has("stringData"))
        {
            let offset = text.find("kind: Secret").unwrap_or(0);
            diags.push(
                Diagnostic::error(Code::LiteralSecret, Loc { file, offset, len: 12 }, "a Secret with data; keelson will not copy secrets into the GitOps repository")
                    .with_help("create the Secret outside git (or use a SealedSecret/ExternalSecret) and refer to it by name"),
            );
        }
    }
    for (offset, len, what) in crate::rules::secrets_in_yaml(text) {
        diags.push(
            Diagnostic::error(Code::LiteralSecret, Loc { file, offset, len }, format!("this looks like {what}; keelson will not copy secrets into the GitOps repository"))
                .with_help("keep the value in a Secret created outside git (or a SealedSecret/ExternalSecret) and refer to it by name"),
        );
    }
}
