//! `keelson compile`: the whole pipeline, from an estate directory to a
//! written GitOps tree.
//!
//! check → discover (snapshots, the previous tree) → select → emit →
//! verify → write. A compile with any error diagnostic writes nothing.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::check::{self, Checked};
use crate::diagnostic::{Code, Diagnostic, Diagnostics, Sources};
use crate::discover;
use crate::emit::{self, AppFiles, ManifestFile, Tree};
use crate::error::Error;
use crate::lock::Lock;
use crate::model::{AppId, Estate, Manifests};
use crate::policy;
use crate::select;
use crate::write::{self, Conflict, Report};

#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Use only keelson.lock and snapshots: no registry is asked.
    pub offline: bool,
    /// Overwrite hand-edited and foreign files.
    pub force: bool,
    /// Build and check the tree, but write nothing.
    pub dry_run: bool,
    /// How registries are asked (ignored with `offline`).
    pub registry: discover::RegistryOptions,
    /// The time policies see and new lock entries record (`None`: the
    /// clock). Passing it makes a compile reproducible.
    pub now: Option<jiff::Timestamp>,
    /// What each policy call may use.
    pub policy_limits: policy::Limits,
    /// Decide images from what this generated tree runs (its lock and
    /// write-backs) instead of what the output runs; the output's lock still
    /// says which files keelson owns there. `keelson diff --decide-from`
    /// uses it to compare a pull request's compile, pinned by its committed
    /// tree, with the base branch's tree.
    pub decide_from: Option<PathBuf>,
}

impl Options {
    /// Parsed estate files are kept beside the registry's cache.
    pub fn parse_cache(&self) -> crate::load::ParseCache {
        crate::load::ParseCache::new(self.registry.cache_dir.as_deref())
    }
}

/// What a compile produced. `tree` is `None` when there were errors.
#[derive(Debug)]
pub struct Compiled {
    pub sources: Sources,
    pub diagnostics: Vec<Diagnostic>,
    pub tree: Option<Tree>,
    pub lock: Option<Lock>,
    /// The lock the previous compile left in the output.
    pub previous: Option<Lock>,
    pub report: Option<Report>,
    /// The estate and what `select` decided, once it ran (for `explain`).
    pub decided: Option<(Estate, select::Decisions)>,
}

impl Compiled {
    pub fn has_errors(&self) -> bool {
        self.error_count() > 0
    }

    pub fn error_count(&self) -> usize {
        self.diagnostics
            .iter()
            .filter(|d| d.severity == crate::diagnostic::Severity::Error)
            .count()
    }
}

/// Stage timings on stderr when `KEELSON_TIMINGS=1`: for finding where a
/// compile spends its time (the benchmarks time whole runs).
pub(crate) struct Laps {
    last: std::time::Instant,
    on: bool,
}

impl Laps {
    pub(crate) fn start() -> Laps {
        Laps {
            last: std::time::Instant::now(),
            on: std::env::var_os("KEELSON_TIMINGS").is_some_and(|v| v == "1"),
        }
    }

    pub(crate) fn lap(&mut self, what: &str) {
        if self.on {
            let now = std::time::Instant::now();
            eprintln!(
                "timing: {what:<10} {:>8.1} ms",
                (now - self.last).as_secs_f64() * 1e3
            );
            self.last = now;
        }
    }
}

/// Compiles the estate in `dir` into `out`.
pub fn compile_dir(dir: &Path, out: &Path, options: &Options) -> Result<Compiled, Error> {
    // A previous run that was killed mid-write is completed before anything
    // reads the tree.
    let recovered = if options.dry_run {
        false
    } else {
        write::recover(out)?
    };
    let mut laps = Laps::start();
    let checked = check::check_dir_cached(dir, &options.parse_cache())?;
    laps.lap("check");
    let mut compiled = build(checked, out, options)?;
    laps = Laps::start();
    if compiled.has_errors() || options.dry_run {
        return Ok(compiled);
    }
    let (Some(tree), Some(lock)) = (&compiled.tree, &compiled.lock) else {
        return Ok(compiled);
    };
    let old = compiled.previous.clone();
    let mut index = write::Index::open(options.registry.cache_dir.as_deref(), out);
    let write::Scan {
        conflicts,
        unchanged,
        seen,
    } = write::scan(out, tree, old.as_ref(), &index)?;
    let mut forced = Vec::new();
    if !conflicts.is_empty() {
        if !options.force {
            return Err(refusal(out, &conflicts));
        }
        forced = conflicts
            .into_iter()
            .map(|c| match c {
                Conflict::Edited(p) | Conflict::Foreign(p) => p,
            })
            .collect();
    }
    laps.lap("conflicts");
    let mut report = write::write(out, tree, lock, old.as_ref(), forced, &unchanged)?;
    laps.lap("write");
    write::update_index(&mut index, out, tree, seen, &report.staged);
    laps.lap("index");
    report.recovered = recovered;
    compiled.report = Some(report);
    Ok(compiled)
}

fn refusal(out: &Path, conflicts: &[Conflict]) -> Error {
    let mut lines = Vec::new();
    for c in conflicts {
        match c {
            Conflict::Edited(p) => lines.push(format!("  {p} (generated by keelson, then edited)")),
            Conflict::Foreign(p) => lines.push(format!("  {p} (not generated by keelson)")),
        }
    }
    Error::refused(
        format!(
            "keelson would overwrite {} file{} in `{}` that it does not own as written:\n{}",
            conflicts.len(),
            if conflicts.len() == 1 { "" } else { "s" },
            out.display(),
            lines.join("\n")
        ),
        "move the change into the estate (or keep the file out of keelson's way), or run again with `--force` to overwrite",
    )
}

/// Everything up to the finished tree and lock, reading but never writing.
pub fn build(checked: Checked, out: &Path, options: &Options) -> Result<Compiled, Error> {
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
    let fail = |sources, diags: Diagnostics| Compiled {
        sources,
        diagnostics: diags.into_sorted(),
        tree: None,
        lock: None,
        previous: None,
        report: None,
        decided: None,
    };
    let (Some(estate), Some(graph)) = (estate, graph) else {
        return Ok(fail(sources, diags));
    };
    if diags.has_errors() {
        return Ok(fail(sources, diags));
    }
    let mut laps = Laps::start();
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
    laps.lap("discover");
    let policies = if diags.has_errors() {
        policy::Policies::default()
    } else {
        policy::load::load(
            &estate,
            observed.lock.as_ref(),
            options.policy_limits,
            options.registry.cache_dir.clone(),
            &mut diags,
        )
    };
    if diags.has_errors() {
        return Ok(fail(sources, diags));
    }
    let now = options.now.unwrap_or_else(jiff::Timestamp::now);
    laps.lap("policies");
    let decisions = select::decide(
        &select::Inputs {
            estate: &estate,
            graph: &graph,
            tags: &tags,
            observed: &observed,
            offline: options.offline,
            now,
            policies: &policies,
        },
        &mut diags,
    );
    if diags.has_errors() {
        let mut failed = fail(sources, diags);
        failed.decided = Some((estate, decisions));
        return Ok(failed);
    }
    // A stage waiting for its first rollout of an app gets no Application.
    let waiting = decisions.waiting_stages();
    let emitted;
    let estate_for_emit = if waiting.is_empty() {
        &estate
    } else {
        let mut e = estate.clone();
        for (ai, app) in e.apps.iter_mut().enumerate() {
            app.deployments
                .retain(|d| !waiting.contains(&(AppId(ai as u32), d.stage.value)));
        }
        for &(app, stage) in &waiting {
            let a = estate.app(app);
            let d = a
                .deployments
                .iter()
                .find(|d| d.stage.value == stage)
                .expect("a waiting deployment");
            let reasons: Vec<String> = decisions
                .waiting
                .range((app, stage, 0)..=(app, stage, usize::MAX))
                .flat_map(|(_, t)| t.gates.iter().filter(|g| !g.promote))
                .map(|g| format!("`{}`: {}", g.policy, g.reason))
                .collect();
            let reasons = if reasons.is_empty() {
                "its upstream stage has no image yet".to_string()
            } else {
                reasons.join("; ")
            };
            diags.push(
                Diagnostic::warning(
                    Code::PromotionWaiting,
                    d.stage.loc,
                    format!(
                        "app `{}` waits for its first rollout to stage `{}`, so it gets no Application yet: {reasons}",
                        a.name.value,
                        estate.stage(stage).name.value
                    ),
                )
                .with_help("compile again once the gates pass (`keelson explain` shows them), or pin the images in this `deploy` block to roll out now"),
            );
        }
        emitted = e;
        &emitted
    };
    laps.lap("select");
    let tree = emit::emit(
        &emit::Inputs {
            estate: estate_for_emit,
            graph: &graph,
            decisions: &decisions,
            files: &files,
        },
        &mut diags,
    );
    laps.lap("emit");
    let file_entries = write::file_entries(&tree, &shared_files(&estate), owned.as_ref());
    verify(&tree, &estate, owned.as_ref(), &file_entries, &mut diags);
    laps.lap("verify");
    if diags.has_errors() {
        return Ok(fail(sources, diags));
    }
    let mut lock = Lock::new();
    lock.images = decisions.lock_entries(&estate);
    lock.policies = policies.lock_entries(&estate);
    lock.files = file_entries;
    Ok(Compiled {
        sources,
        diagnostics: diags.into_sorted(),
        tree: Some(tree),
        lock: Some(lock),
        previous: owned,
        report: None,
        decided: Some((estate, decisions)),
    })
}

/// Overlays whose `images:` Image Updater commits to.
fn shared_files(estate: &Estate) -> BTreeSet<String> {
    discover::committed_overlays(estate)
        .into_iter()
        .map(|c| c.kustomization)
        .collect()
}

/// The last check before anything is written: every generated YAML file
/// parses, and every kustomization's local resources exist in the tree.
/// Files keelson printed from a YAML value are valid by construction and
/// not parsed (their kustomizations' lists still are checked); what is
/// parsed is what keelson copies as it is: directory apps' manifests.
///
/// A file whose bytes the output's lock records was verified by the compile
/// that wrote it, and is not parsed again. So are such kustomizations, as
/// long as every file of that compile's tree is still in this one: what they
/// list existed then, so it exists now.
fn verify(
    tree: &Tree,
    estate: &Estate,
    owned: Option<&Lock>,
    entries: &std::collections::BTreeMap<String, crate::lock::LockedFile>,
    diags: &mut Diagnostics,
) {
    use rayon::prelude::*;
    let nothing_gone = owned.is_some_and(|l| l.files.keys().all(|p| tree.contains(p)));
    let verified = |path: &emit::TreePath| {
        let p = path.as_str();
        let name = p.rsplit('/').next().unwrap_or(p);
        let kustomization = emit::KUSTOMIZATION_NAMES.contains(&name);
        // Printed YAML is valid YAML; a kustomization's list still needs checking.
        if tree.is_printed(path) && !kustomization {
            return true;
        }
        if !nothing_gone && kustomization {
            return false;
        }
        let before = owned.and_then(|l| l.files.get(p)).map(|e| &e.blake3);
        before.is_some() && before == entries.get(p).map(|e| &e.blake3)
    };
    // Files are checked in parallel and reported in path order.
    let files: Vec<_> = tree.iter().filter(|(p, _)| !verified(p)).collect();
    let found: Vec<Diagnostics> = files
        .par_iter()
        .map(|(path, bytes)| {
            let mut diags = Diagnostics::default();
            verify_file(tree, estate, path, bytes, &mut diags);
            diags
        })
        .collect();
    for d in found {
        for d in d.into_sorted() {
            diags.push(d);
        }
    }
}

fn verify_file(
    tree: &Tree,
    estate: &Estate,
    path: &emit::TreePath,
    bytes: &[u8],
    diags: &mut Diagnostics,
) {
    use serde::Deserialize;
    {
        let p = path.as_str();
        if !(p.ends_with(".yaml") || p.ends_with(".yml")) {
            return;
        }
        let Ok(text) = std::str::from_utf8(bytes) else {
            diags.push(
                Diagnostic::error(
                    Code::InvalidManifest,
                    estate.repo.loc,
                    format!("`{p}` is not UTF-8"),
                )
                .with_help("save the manifest as UTF-8"),
            );
            return;
        };
        let mut docs = Vec::new();
        for doc in serde_yaml::Deserializer::from_str(text) {
            match serde_yaml::Value::deserialize(doc) {
                Ok(v) => docs.push(v),
                Err(e) => {
                    diags.push(
                        Diagnostic::error(
                            Code::InvalidManifest,
                            estate.repo.loc,
                            format!("`{p}` would not be valid YAML: {e}"),
                        )
                        .with_help("fix the app's manifest; keelson copies it as it is"),
                    );
                    break;
                }
            }
        }
        let name = p.rsplit('/').next().unwrap_or(p);
        if let (true, Some(doc)) = (emit::KUSTOMIZATION_NAMES.contains(&name), docs.first()) {
            let dir = path.parent();
            for r in doc
                .get("resources")
                .and_then(|r| r.as_sequence())
                .into_iter()
                .flatten()
            {
                let Some(r) = r.as_str() else { continue };
                if r.contains("://") {
                    continue;
                }
                // A file, or a directory kustomize can build.
                let target = if dir.is_empty() {
                    r.to_string()
                } else {
                    format!("{dir}/{r}")
                };
                let exists = tree.contains(&target)
                    || emit::KUSTOMIZATION_NAMES
                        .iter()
                        .any(|k| tree.contains(&format!("{target}/{k}")));
                if !exists {
                    diags.push(
                        Diagnostic::error(Code::InvalidManifest, estate.repo.loc, format!("`{p}` lists resource `{r}`, which is not in the generated tree"))
                            .with_help("if the app's own kustomization refers to files outside its directory, move them into it"),
                    );
                }
            }
        }
    }
}

/// Reads directory apps' files and chart values files, scanning them for
/// literal secrets.
fn read_app_files(estate: &Estate, sources: &mut Sources, diags: &mut Diagnostics) -> AppFiles {
    let mut files = AppFiles::default();
    for (ai, app) in estate.apps.iter().enumerate() {
        let id = AppId(ai as u32);
        match &app.manifests {
            Manifests::Directory(dir) => {
                let root = estate.root.join(&dir.value);
                let mut list = Vec::new();
                for path in check::walk(&root) {
                    let Ok(rel) = path.strip_prefix(&root) else {
                        continue;
                    };
                    let rel: Vec<String> = rel
                        .components()
                        .map(|c| c.as_os_str().to_string_lossy().into_owned())
                        .collect();
                    // Hidden files (editor droppings, `.git`) are not manifests.
                    if rel.iter().any(|c| c.starts_with('.')) {
                        continue;
                    }
                    let rel = rel.join("/");
                    let bytes = match std::fs::read(&path) {
                        Ok(b) => b,
                        Err(e) => {
                            diags.push(
                                Diagnostic::error(
                                    Code::InvalidManifest,
                                    dir.loc,
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
                                let shown = display_path(&dir.value, &rel);
                                let fid = sources.add(shown, path.clone(), text.to_string());
                                scan(sources, fid, diags);
                                Some(fid)
                            }
                            Err(_) => {
                                diags.push(
                                    Diagnostic::error(
                                        Code::InvalidManifest,
                                        dir.loc,
                                        format!(
                                            "`{rel}` in `{}` is not UTF-8",
                                            dir.value.display()
                                        ),
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
                files.dirs.insert(id, list);
            }
            Manifests::Chart {
                values_file: Some(f),
                ..
            } => {
                let path = estate.root.join(&f.value);
                match std::fs::read_to_string(&path) {
                    Ok(text) => {
                        let fid =
                            sources.add(f.value.to_string_lossy().into_owned(), path, text.clone());
                        scan(sources, fid, diags);
                        // Checked once here, not once per stage that merges it.
                        match serde_yaml::from_str::<serde_yaml::Value>(&text) {
                            Ok(serde_yaml::Value::Mapping(_) | serde_yaml::Value::Null) => {
                                files.values_files.insert(id, (fid, text));
                            }
                            Ok(_) | Err(_) => diags.push(
                                Diagnostic::error(
                                    Code::InvalidManifest,
                                    crate::diagnostic::Loc {
                                        file: fid,
                                        offset: 0,
                                        len: 0,
                                    },
                                    "a Helm values file must hold one YAML mapping",
                                )
                                .with_help("write the values as `key: value` lines"),
                            ),
                        }
                    }
                    Err(e) => diags.push(
                        Diagnostic::error(
                            Code::InvalidManifest,
                            f.loc,
                            format!("cannot read the values file: {e}"),
                        )
                        .with_help("check that it exists and is UTF-8"),
                    ),
                }
            }
            _ => {}
        }
    }
    files
}

fn display_path(dir: &Path, rel: &str) -> String {
    let mut p = PathBuf::from(dir);
    p.push(rel);
    p.to_string_lossy().trim_start_matches("./").to_string()
}

/// Literal secrets in a manifest would be committed to the GitOps repo.
fn scan(sources: &Sources, file: crate::diagnostic::FileId, diags: &mut Diagnostics) {
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
                Diagnostic::error(Code::LiteralSecret, crate::diagnostic::Loc { file, offset, len: 12 }, "a Secret with data; keelson will not copy secrets into the GitOps repository")
                    .with_help("create the Secret outside git (or use a SealedSecret/ExternalSecret) and refer to it by name"),
            );
        }
    }
    for (offset, len, what) in crate::lower::rules::secrets_in_yaml(text) {
        diags.push(
            Diagnostic::error(Code::LiteralSecret, crate::diagnostic::Loc { file, offset, len }, format!("this looks like {what}; keelson will not copy secrets into the GitOps repository"))
                .with_help("keep the value in a Secret created outside git (or a SealedSecret/ExternalSecret) and refer to it by name"),
        );
    }
}
