//! `keelson check`: load → lower → graph, plus the checks that need the
//! filesystem (do referenced directories and files exist?). This is the one
//! entry point every command that reads an estate goes through.

use std::path::Path;

use crate::diagnostic::{Code, Diagnostic, Diagnostics};
use crate::error::Error;
use crate::graph::{self, EstateGraph};
use crate::load::{self, Loaded};
use crate::lower;
use crate::model::{Estate, Manifests, PolicySource};

/// A checked estate: the model (when lowering got that far), its graph, and
/// every diagnostic, sorted.
#[derive(Debug)]
pub struct Checked {
    pub loaded: Loaded,
    pub estate: Option<Estate>,
    pub graph: Option<EstateGraph>,
    pub diagnostics: Vec<Diagnostic>,
}

impl Checked {
    pub fn has_errors(&self) -> bool {
        self.diagnostics
            .iter()
            .any(|d| d.severity == crate::diagnostic::Severity::Error)
    }

    pub(crate) fn error_count(&self) -> usize {
        self.diagnostics
            .iter()
            .filter(|d| d.severity == crate::diagnostic::Severity::Error)
            .count()
    }
}

/// Checks the estate in a directory.
pub fn check_dir(dir: &Path) -> Result<Checked, Error> {
    check_dir_cached(dir, &load::ParseCache::none())
}

/// The front half of the pipeline for the estate in `dir`: load → lower →
/// graph, then the checks that need the filesystem (referenced directories
/// and files exist). Every problem is a diagnostic in `Checked`, sorted by
/// position; `Err` only when the estate cannot be read at all.
pub fn check_dir_cached(dir: &Path, cache: &load::ParseCache) -> Result<Checked, Error> {
    let mut diags = Diagnostics::default();
    let loaded = load::load_dir_cached(dir, cache, &mut diags)?;
    Ok(check_loaded(loaded, diags, true))
}

/// Checks estate files already loaded. `probe_files` turns the filesystem
/// checks on (off for in-memory estates in tests and fuzzing).
pub fn check_loaded(loaded: Loaded, mut diags: Diagnostics, probe_files: bool) -> Checked {
    let estate = lower::lower(&loaded, &mut diags);
    let graph = estate.as_ref().map(|e| graph::build(e, &mut diags));
    if let Some(e) = &estate {
        check_filter_stages(e, &mut diags);
    }
    if probe_files {
        if let Some(e) = &estate {
            check_paths(e, &mut diags);
        }
    }
    Checked {
        loaded,
        estate,
        graph,
        diagnostics: diags.into_sorted(),
    }
}

/// Filter policies run inside keelson, at compile time. Image Updater, which
/// updates `git`, `pull-request` and `argocd` stages in-cluster between
/// compiles, cannot run them, so it would deploy tags a policy denies: such a
/// stage must be `pinned` (keelson alone decides) to use filter policies.
fn check_filter_stages(estate: &Estate, diags: &mut Diagnostics) {
    use crate::model::StageSource;
    for app in &estate.apps {
        for d in &app.deployments {
            let stage = estate.stage(d.stage.value);
            let StageSource::Registry { filters } = &stage.source else {
                continue;
            };
            if !stage.write_back.value.is_live() {
                continue;
            }
            for image in &app.images {
                let Some(f) = image.filters.iter().chain(filters).next() else {
                    continue;
                };
                diags.push(
                    Diagnostic::error(
                        Code::PolicyInCluster,
                        f.loc,
                        format!(
                            "image `{}` of app `{}` is filtered by policy `{}` in stage `{}`, which Image Updater updates in-cluster (write-back `{}`), where policies cannot run",
                            image.alias.value,
                            app.name.value,
                            estate.policy(f.value).name.value,
                            stage.name.value,
                            stage.write_back.value.name()
                        ),
                    )
                    .with_secondary(stage.write_back.loc, "updated in-cluster because of this")
                    .with_help("set `write-back \"pinned\"` on the stage so keelson alone picks its tags on every compile, or express the rule as `allow-tags`/`ignore-tags`, which Image Updater applies"),
                );
            }
        }
    }
}

fn check_paths(estate: &Estate, diags: &mut Diagnostics) {
    for app in &estate.apps {
        match &app.manifests {
            Manifests::Directory(dir) if !dir.value.as_os_str().is_empty() => {
                let full = estate.root.join(&dir.value);
                if !full.is_dir() {
                    diags.push(
                        Diagnostic::error(Code::InvalidPath, dir.loc, format!("the manifest directory `{}` does not exist", dir.value.display()))
                            .with_help("create it with the app's YAML, or fix the path (it is relative to the estate directory)"),
                    );
                } else if !has_yaml(&full) {
                    diags.push(
                        Diagnostic::error(
                            Code::InvalidPath,
                            dir.loc,
                            format!(
                                "the manifest directory `{}` has no `.yaml` files",
                                dir.value.display()
                            ),
                        )
                        .with_help(
                            "put the app's Kubernetes manifests in it as `.yaml` or `.yml` files",
                        ),
                    );
                }
            }
            Manifests::Chart {
                values_file: Some(f),
                ..
            } => {
                if !estate.root.join(&f.value).is_file() {
                    diags.push(
                        Diagnostic::error(
                            Code::InvalidPath,
                            f.loc,
                            format!("the values file `{}` does not exist", f.value.display()),
                        )
                        .with_help("fix the path; it is relative to the estate directory"),
                    );
                }
            }
            _ => {}
        }
    }
    for snap in &estate.snapshots {
        if !estate.root.join(&snap.value).is_file() {
            diags.push(
                Diagnostic::error(Code::InvalidPath, snap.loc, format!("the snapshot `{}` does not exist", snap.value.display()))
                    .with_help("write the tag snapshot (a JSON object of repository → tags), or fix the path; it is relative to the estate directory"),
            );
        }
    }
    for policy in &estate.policies {
        if let PolicySource::Path(p) = &policy.source.value {
            // A path that is not a `.wasm` module was reported by lowering.
            if p.extension().is_some_and(|x| x == "wasm") && !estate.root.join(p).is_file() {
                diags.push(
                    Diagnostic::error(Code::InvalidPath, policy.source.loc, format!("the policy module `{}` does not exist", p.display()))
                        .with_help("build it first (`cargo build --target wasm32-unknown-unknown --release`) or fix the path"),
                );
            }
        }
    }
}

fn has_yaml(dir: &Path) -> bool {
    walk(dir)
        .into_iter()
        .any(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
}

/// Every file under a directory, sorted; unreadable entries are skipped.
pub fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let p = entry.path();
            match entry.file_type() {
                Ok(t) if t.is_dir() => stack.push(p),
                Ok(t) if t.is_file() => out.push(p),
                _ => {}
            }
        }
    }
    out.sort();
    out
}
