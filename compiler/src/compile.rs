//! `keelson compile`: the whole pipeline, from an estate directory to a
//! written GitOps tree.
//!
//! gather (the estate, snapshots, registries, the previous tree, files,
//! policies, the clock) → build (select → emit → verify, pure) → write.
//! A compile with any error diagnostic writes nothing.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::diagnostic::{Code, Diagnostic, Diagnostics, Sources};
use crate::discover;
use crate::emit;
use crate::error::Error;
use crate::gather::{self, Gathered};
use crate::lock::Lock;
use crate::model::Estate;
use crate::policy;
use crate::select;
use crate::timing::Laps;
use crate::tree::{KUSTOMIZATION_NAMES, Tree, TreePath};
use crate::write::{self, Conflict, Report};

#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Use only keelson.lock and snapshots: no registry is asked.
    pub offline: bool,
    /// Overwrite hand-edited and foreign files.
    pub force: bool,
    /// Build and check the tree and see what writing it would do (the
    /// ownership checks included), but write nothing.
    pub dry_run: bool,
    /// Whether to wait while another keelson writes the output.
    pub wait: write::Wait,
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
    /// What `gather` needs of these options.
    pub(crate) fn gather(&self) -> gather::Options {
        gather::Options {
            offline: self.offline,
            registry: self.registry.clone(),
            now: self.now,
            policy_limits: self.policy_limits,
            decide_from: self.decide_from.clone(),
        }
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
    /// With `dry_run`: what the write would have done.
    pub plan: Option<write::Plan>,
    /// The estate and what `select` decided, once it ran (for `explain`).
    pub decided: Option<(Estate, select::Decisions)>,
}

impl Compiled {
    pub fn has_errors(&self) -> bool {
        self.error_count() > 0
    }

    pub(crate) fn error_count(&self) -> usize {
        self.diagnostics
            .iter()
            .filter(|d| d.severity == crate::diagnostic::Severity::Error)
            .count()
    }
}

/// Compiles the estate in `dir` into `out`: gather → build → write. Writes
/// nothing when the estate has errors, with `dry_run` (which reports in
/// `plan` what the write would do), or when a file to replace is not
/// keelson's as it wrote it (an `Err` refusal, unless `force`); a write is
/// all or nothing (see `write`).
///
/// One writer at a time: a compile holds an exclusive lock on `out`
/// throughout, a dry run a shared one (see `write::lock`).
pub fn compile_dir(dir: &Path, out: &Path, options: &Options) -> Result<Compiled, Error> {
    loop {
        let lock = if options.dry_run {
            write::OutputLock::shared(out, &options.wait)?
        } else {
            write::OutputLock::exclusive(out, &options.wait)?
        };
        let compiled = compile_locked(dir, out, options)?;
        if !lock.raced(out) {
            return Ok(compiled);
        }
    }
}

/// [`compile_dir`], holding the output's lock.
fn compile_locked(dir: &Path, out: &Path, options: &Options) -> Result<Compiled, Error> {
    // A previous run that was killed mid-write is completed before anything
    // reads the tree.
    let recovered = if options.dry_run {
        false
    } else {
        write::recover(out)?
    };
    let mut compiled = build(gather::gather(dir, out, &options.gather())?);
    let mut laps = Laps::start();
    if compiled.has_errors() {
        return Ok(compiled);
    }
    let (Some(tree), Some(lock)) = (&compiled.tree, &compiled.lock) else {
        return Ok(compiled);
    };
    let old = compiled.previous.clone();
    let mut index = write::Index::open(options.registry.cache_dir.as_deref(), out);
    let scan = write::scan(out, tree, old.as_ref(), &index)?;
    if options.dry_run {
        compiled.plan = Some(write::plan(
            out,
            tree,
            lock,
            old.as_ref(),
            &scan,
            options.force,
        ));
        return Ok(compiled);
    }
    let write::Scan {
        conflicts,
        unchanged,
        seen,
        ..
    } = scan;
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

/// The refusal of a write that would overwrite or remove `conflicts`.
pub fn refusal(out: &Path, conflicts: &[Conflict]) -> Error {
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

/// Decides, emits and verifies the tree and its lock from what [`gather`]
/// read: pure (no filesystem, no environment, no clock), so the same
/// gathered inputs always give the same tree. With any error diagnostic
/// there is no tree; `decided` is kept once `select` ran (for `explain`).
pub fn build(gathered: Gathered) -> Compiled {
    let Gathered {
        sources,
        diagnostics: mut diags,
        inputs,
    } = gathered;
    let fail = |sources, diags: Diagnostics| Compiled {
        sources,
        diagnostics: diags.into_sorted(),
        tree: None,
        lock: None,
        previous: None,
        report: None,
        plan: None,
        decided: None,
    };
    let Some(inputs) = inputs else {
        return fail(sources, diags);
    };
    if diags.has_errors() {
        return fail(sources, diags);
    }
    let gather::Inputs {
        estate,
        graph,
        tags,
        observed,
        owned,
        files,
        policies,
        now,
        offline,
    } = inputs;
    let mut laps = Laps::start();
    let decisions = select::decide(
        &select::Inputs {
            estate: &estate,
            graph: &graph,
            tags: &tags,
            observed: &observed,
            offline,
            now,
            policies: &policies,
        },
        &mut diags,
    );
    if diags.has_errors() {
        let mut failed = fail(sources, diags);
        failed.decided = Some((estate, decisions));
        return failed;
    }
    let held = select::hold_waiting(&estate, &decisions, &mut diags);
    laps.lap("select");
    let tree = emit::emit(
        &emit::Inputs {
            estate: held.as_ref().unwrap_or(&estate),
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
        return fail(sources, diags);
    }
    let mut lock = Lock::new();
    lock.images = decisions.lock_entries(&estate);
    lock.policies = policies.lock_entries(&estate);
    lock.files = file_entries;
    Compiled {
        sources,
        diagnostics: diags.into_sorted(),
        tree: Some(tree),
        lock: Some(lock),
        previous: owned,
        report: None,
        plan: None,
        decided: Some((estate, decisions)),
    }
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
    let verified = |path: &TreePath| {
        let p = path.as_str();
        let name = p.rsplit('/').next().unwrap_or(p);
        let kustomization = KUSTOMIZATION_NAMES.contains(&name);
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
    path: &TreePath,
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
        if let (true, Some(doc)) = (KUSTOMIZATION_NAMES.contains(&name), docs.first()) {
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
                    || KUSTOMIZATION_NAMES
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

#[cfg(test)]
mod tests {
    use super::*;

    fn copy_dir(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let path = entry.unwrap().path();
            let dest = to.join(path.file_name().unwrap());
            if path.is_dir() {
                copy_dir(&path, &dest);
            } else {
                std::fs::copy(&path, &dest).unwrap();
            }
        }
    }

    /// `build` reads nothing: with the estate directory gone after
    /// `gather`, it still gives the tree a compile from the directory gives,
    /// and twice the same.
    #[test]
    fn build_is_pure_once_gathered() {
        let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
        for example in [
            "promotion",
            "seed-000-aws-ecr",
            "seed-003-tirosh-home",
            "seed-004-prodesk",
        ] {
            let scratch = tempfile::tempdir().unwrap();
            let estate = scratch.path().join("estate");
            copy_dir(&examples.join(example), &estate);
            // The examples' snapshots and pins decide: no registry is asked.
            let options = Options {
                now: Some("2026-11-23T09:30:00Z".parse().unwrap()),
                ..Options::default()
            };
            let out = scratch.path().join("out");
            let gathered = || gather::gather(&estate, &out, &options.gather()).unwrap();
            let first = build(gathered());
            let second = gathered();
            std::fs::remove_dir_all(&estate).unwrap();
            let second = build(second);
            assert!(!first.has_errors(), "{example}: {:?}", first.diagnostics);
            assert!(first.tree.is_some(), "{example}");
            assert_eq!(first.tree, second.tree, "{example}");
            assert_eq!(
                first.lock.map(|l| l.to_text()),
                second.lock.map(|l| l.to_text()),
                "{example}"
            );
        }
    }
}
