//! `keelson check`: load → lower → graph, plus the checks that need the
//! filesystem (do referenced directories and files exist?). This is the one
//! entry point every command that reads an estate goes through.

use std::path::{Path, PathBuf};

use crate::diagnostic::{Code, Diagnostic, Diagnostics, Loc};
use crate::error::Error;
use crate::graph::{self, EstateGraph};
use crate::load::{self, Loaded};
use crate::lower;
use crate::model::{AppId, Estate, Manifests, PolicySource};
use crate::objects::{self, Declared};

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
    if let Some(e) = &estate {
        let dirs = if probe_files {
            declared_objects(e)
        } else {
            Default::default()
        };
        objects::check(e, &dirs, &mut diags);
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
                check_manifest_dir(estate, &dir.value, dir.loc, diags);
            }
            Manifests::Chart {
                values_file: Some(f),
                ..
            } => match resolve_inside(&estate.root, &f.value) {
                Resolved::Outside(target) => {
                    diags.push(outside_estate(f.loc, "the values file", &f.value, &target))
                }
                Resolved::Inside(real) if real.is_file() => {}
                _ => diags.push(
                    Diagnostic::error(
                        Code::InvalidPath,
                        f.loc,
                        format!("the values file `{}` does not exist", f.value.display()),
                    )
                    .with_help("fix the path; it is relative to the estate directory"),
                ),
            },
            _ => {}
        }
    }
    for snap in &estate.snapshots {
        match resolve_inside(&estate.root, &snap.value) {
            Resolved::Outside(target) => {
                diags.push(outside_estate(snap.loc, "the snapshot", &snap.value, &target))
            }
            Resolved::Inside(real) if real.is_file() => {}
            _ => diags.push(
                Diagnostic::error(Code::InvalidPath, snap.loc, format!("the snapshot `{}` does not exist", snap.value.display()))
                    .with_help("write the tag snapshot (a JSON object of repository → tags), or fix the path; it is relative to the estate directory"),
            ),
        }
    }
    for policy in &estate.policies {
        if let PolicySource::Path(p) = &policy.source.value {
            // A path that is not a `.wasm` module was reported by lowering.
            if !p.extension().is_some_and(|x| x == "wasm") {
                continue;
            }
            match resolve_inside(&estate.root, p) {
                Resolved::Outside(target) => diags.push(outside_estate(
                    policy.source.loc,
                    "the policy module",
                    p,
                    &target,
                )),
                Resolved::Inside(real) if real.is_file() => {}
                _ => diags.push(
                    Diagnostic::error(Code::InvalidPath, policy.source.loc, format!("the policy module `{}` does not exist", p.display()))
                        .with_help("build it first (`cargo build --target wasm32-unknown-unknown --release`) or fix the path"),
                ),
            }
        }
    }
}

/// A directory app's directory: inside the estate, there, with YAML in it,
/// and nothing in it that leads out of the estate.
fn check_manifest_dir(estate: &Estate, dir: &Path, loc: Loc, diags: &mut Diagnostics) {
    let real = match resolve_inside(&estate.root, dir) {
        Resolved::Outside(target) => {
            diags.push(outside_estate(loc, "the manifest directory", dir, &target));
            return;
        }
        Resolved::Inside(real) if real.is_dir() => real,
        _ => {
            diags.push(
                Diagnostic::error(Code::InvalidPath, loc, format!("the manifest directory `{}` does not exist", dir.display()))
                    .with_help("create it with the app's YAML, or fix the path (it is relative to the estate directory)"),
            );
            return;
        }
    };
    let listing = list_inside(&estate.root, &real);
    listing.report(dir, loc, diags);
    let has_yaml = listing
        .files
        .iter()
        .any(|(rel, _)| rel.ends_with(".yaml") || rel.ends_with(".yml"));
    if !has_yaml {
        diags.push(
            Diagnostic::error(
                Code::InvalidPath,
                loc,
                format!(
                    "the manifest directory `{}` has no `.yaml` files",
                    dir.display()
                ),
            )
            .with_help("put the app's Kubernetes manifests in it as `.yaml` or `.yml` files"),
        );
    }
}

/// The objects each directory app's manifests declare, for the ownership
/// checks. A directory that is missing or leads out of the estate was
/// reported by `check_paths` and is left out; so is a file that cannot be
/// read (`gather` reports it when it reads the files to copy them).
fn declared_objects(estate: &Estate) -> std::collections::BTreeMap<AppId, Vec<Declared>> {
    let mut out = std::collections::BTreeMap::new();
    for (ai, app) in estate.apps.iter().enumerate() {
        let Manifests::Directory(dir) = &app.manifests else {
            continue;
        };
        if dir.value.as_os_str().is_empty() {
            continue;
        }
        let Resolved::Inside(real) = resolve_inside(&estate.root, &dir.value) else {
            continue;
        };
        let listing = list_inside(&estate.root, &real);
        let read: Vec<(String, Vec<u8>)> = listing
            .files
            .into_iter()
            .filter_map(|(rel, path)| std::fs::read(path).ok().map(|b| (rel, b)))
            .collect();
        let files: Vec<objects::Manifest<'_>> = read
            .iter()
            .map(|(rel, bytes)| objects::Manifest { rel, bytes })
            .collect();
        out.insert(
            AppId(ai as u32),
            objects::directory(&dir.value.to_string_lossy(), &files),
        );
    }
    out
}

/// Where a path the estate names leads once symlinks are followed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Resolved {
    /// Inside the estate directory: the real path, to read.
    Inside(PathBuf),
    /// Out of the estate directory, through a symlink: where it leads.
    Outside(PathBuf),
    /// Nothing there (or a symlink to nothing).
    Missing,
}

/// Resolves `rel`, a path relative to the estate directory `root` (lowering
/// has checked that it does not leave it through `..` or by being
/// absolute), following symlinks. A symlink whose target is inside the
/// estate is followed; one that leads out of it makes the path
/// [`Resolved::Outside`]: keelson reads nothing outside the estate.
pub(crate) fn resolve_inside(root: &Path, rel: &Path) -> Resolved {
    match root.canonicalize() {
        Ok(real_root) => resolve_under(&real_root, &root.join(rel)),
        Err(_) => Resolved::Missing,
    }
}

fn resolve_under(real_root: &Path, path: &Path) -> Resolved {
    match path.canonicalize() {
        Ok(real) if real.starts_with(real_root) => Resolved::Inside(real),
        Ok(real) => Resolved::Outside(real),
        Err(_) => Resolved::Missing,
    }
}

/// Why a file the estate names was not read.
#[derive(Debug)]
pub(crate) enum Unreadable {
    /// It leads out of the estate through a symlink, to this path.
    Outside(PathBuf),
    Io(std::io::Error),
}

/// Reads the file at `rel` in the estate `root`, refusing one that leads out
/// of the estate (see [`resolve_inside`]).
pub(crate) fn read_inside(root: &Path, rel: &Path) -> Result<Vec<u8>, Unreadable> {
    let path = match resolve_inside(root, rel) {
        Resolved::Inside(real) => real,
        Resolved::Outside(target) => return Err(Unreadable::Outside(target)),
        // Reading it says why it is not there.
        Resolved::Missing => root.join(rel),
    };
    std::fs::read(path).map_err(Unreadable::Io)
}

/// [`read_inside`], for UTF-8 text.
pub(crate) fn read_text_inside(root: &Path, rel: &Path) -> Result<String, Unreadable> {
    String::from_utf8(read_inside(root, rel)?).map_err(|_| {
        Unreadable::Io(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "stream did not contain valid UTF-8",
        ))
    })
}

/// The error for a path that leads out of the estate through a symlink,
/// at the estate node that names it.
pub(crate) fn outside_estate(loc: Loc, what: &str, path: &Path, target: &Path) -> Diagnostic {
    Diagnostic::error(
        Code::InvalidPath,
        loc,
        format!(
            "{what} `{}` leads out of the estate through a symlink, to `{}`",
            path.display(),
            target.display()
        ),
    )
    .with_help("keelson reads only files inside the estate directory: copy what it needs into the estate (a symlink may point anywhere inside it)")
}

/// The files under a directory of the estate, as a directory app copies them.
#[derive(Debug, Default)]
pub(crate) struct Listing {
    /// Each file's path relative to the directory (`/`-separated) and its
    /// real path, in path order.
    pub files: Vec<(String, PathBuf)>,
    /// Symlinks that lead out of the estate: relative path and target.
    pub outside: Vec<(String, PathBuf)>,
    /// Symlinks to nothing: relative path and what they name.
    pub broken: Vec<(String, PathBuf)>,
}

impl Listing {
    /// Reports the symlinks that lead out of the estate or to nothing, at
    /// `loc`, the node that names the directory `dir`.
    pub(crate) fn report(&self, dir: &Path, loc: Loc, diags: &mut Diagnostics) {
        for (rel, target) in &self.outside {
            diags.push(outside_estate(loc, "the manifest", &dir.join(rel), target));
        }
        for (rel, target) in &self.broken {
            diags.push(
                Diagnostic::error(
                    Code::InvalidPath,
                    loc,
                    format!(
                        "the manifest `{}` is a symlink to `{}`, which does not exist",
                        dir.join(rel).display(),
                        target.display()
                    ),
                )
                .with_help("remove the link, or point it at a file inside the estate"),
            );
        }
    }
}

/// Lists the files under `dir`, a real directory inside the estate `root`,
/// in path order. Hidden entries (`.git`, editor droppings) are skipped.
/// Symlinks are followed while they stay inside the estate (each directory
/// is listed once, so a link to an ancestor does not loop); one that leads
/// out of it, or to nothing, is listed apart and never followed.
pub(crate) fn list_inside(root: &Path, dir: &Path) -> Listing {
    let mut listing = Listing::default();
    let Ok(real_root) = root.canonicalize() else {
        return listing;
    };
    let mut files: Vec<(PathBuf, PathBuf)> = Vec::new();
    let mut seen: std::collections::HashSet<PathBuf> = [dir.to_path_buf()].into();
    let mut stack = vec![(PathBuf::new(), dir.to_path_buf())];
    while let Some((rel_dir, real_dir)) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&real_dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            if name.to_string_lossy().starts_with('.') {
                continue;
            }
            let rel = rel_dir.join(&name);
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            let (real, kind) = if kind.is_symlink() {
                let path = entry.path();
                match resolve_under(&real_root, &path) {
                    Resolved::Inside(real) => match std::fs::metadata(&real) {
                        Ok(m) => (real, m.file_type()),
                        Err(_) => continue,
                    },
                    Resolved::Outside(target) => {
                        listing.outside.push((slashed(&rel), target));
                        continue;
                    }
                    Resolved::Missing => {
                        let target = std::fs::read_link(&path).unwrap_or_default();
                        listing.broken.push((slashed(&rel), target));
                        continue;
                    }
                }
            } else {
                (real_dir.join(&name), kind)
            };
            if kind.is_dir() {
                if seen.insert(real.clone()) {
                    stack.push((rel, real));
                }
            } else if kind.is_file() {
                files.push((rel, real));
            }
        }
    }
    // Sorted as paths (component by component), as `walk` sorts.
    files.sort();
    listing.files = files
        .into_iter()
        .map(|(rel, real)| (slashed(&rel), real))
        .collect();
    listing.outside.sort();
    listing.broken.sort();
    listing
}

fn slashed(rel: &Path) -> String {
    rel.components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join("/")
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

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn paths_resolve_inside_the_estate_only() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("estate");
        let outside = tmp.path().join("outside");
        std::fs::create_dir_all(root.join("shared")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(root.join("shared/a.yaml"), "a: 1\n").unwrap();
        std::fs::write(outside.join("secret.yaml"), "s: 1\n").unwrap();
        symlink("shared/a.yaml", root.join("inside.yaml")).unwrap();
        symlink(&outside, root.join("out-dir")).unwrap();
        symlink(outside.join("secret.yaml"), root.join("out.yaml")).unwrap();

        assert_eq!(
            read_inside(&root, Path::new("inside.yaml")).unwrap(),
            b"a: 1\n"
        );
        for rel in ["out.yaml", "out-dir/secret.yaml"] {
            match read_inside(&root, Path::new(rel)) {
                Err(Unreadable::Outside(target)) => {
                    assert!(target.ends_with("outside/secret.yaml"), "{rel}: {target:?}")
                }
                other => panic!("{rel}: {other:?}"),
            }
        }
        assert!(matches!(
            read_inside(&root, Path::new("missing.yaml")),
            Err(Unreadable::Io(e)) if e.kind() == std::io::ErrorKind::NotFound
        ));
        // The estate directory itself may be reached through a symlink.
        let alias = tmp.path().join("alias");
        symlink(&root, &alias).unwrap();
        assert!(read_inside(&alias, Path::new("inside.yaml")).is_ok());
        assert!(matches!(
            read_inside(&alias, Path::new("out.yaml")),
            Err(Unreadable::Outside(_))
        ));
    }

    #[test]
    fn a_listing_follows_links_inside_once_and_sets_apart_the_rest() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("estate");
        let dir = root.join("m");
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        std::fs::create_dir_all(root.join("shared")).unwrap();
        std::fs::write(dir.join("sub/b.yaml"), "").unwrap();
        std::fs::write(dir.join(".hidden.yaml"), "").unwrap();
        std::fs::write(root.join("shared/c.yaml"), "").unwrap();
        symlink("../shared", dir.join("linked")).unwrap();
        symlink("..", dir.join("sub/up")).unwrap();
        std::fs::write(tmp.path().join("outside.yaml"), "").unwrap();
        symlink(tmp.path().join("outside.yaml"), dir.join("host.yaml")).unwrap();
        symlink("nowhere.yaml", dir.join("broken.yaml")).unwrap();
        symlink("/nowhere", dir.join(".#editor-lock")).unwrap();

        let real = dir.canonicalize().unwrap();
        let listing = list_inside(&root, &real);
        let files: Vec<&str> = listing.files.iter().map(|(r, _)| r.as_str()).collect();
        assert_eq!(files, ["linked/c.yaml", "sub/b.yaml"]);
        let outside: Vec<&str> = listing.outside.iter().map(|(r, _)| r.as_str()).collect();
        assert_eq!(outside, ["host.yaml"]);
        let broken: Vec<&str> = listing.broken.iter().map(|(r, _)| r.as_str()).collect();
        assert_eq!(broken, ["broken.yaml"]);
    }
}
