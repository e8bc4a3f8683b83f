//! `keelson diff`: what compiling the estate would do to a generated tree,
//! for a reviewer. The estate is compiled in memory against the old tree
//! (so it observes that tree's lock and write-backs exactly as `compile -o`
//! would), and the result is compared with it:
//!
//! - file by file, the way `write` would apply it (files keelson does not own
//!   and would leave alone are not changes);
//! - resource by resource inside YAML files, keyed by apiVersion, kind,
//!   namespace and name, down to the changed fields;
//! - image by image, from the two locks, with why the new one was chosen;
//! - removed Applications, flagged as prune risks;
//! - hand-edited and foreign files that the compile would refuse to touch,
//!   apart from the rest.
//!
//! Nothing is written; `render` prints the result as text, Markdown or JSON.

pub mod against;
pub mod render;
mod resource;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

use rayon::prelude::*;
use serde::Serialize;

pub use against::{Against, OldTree};
pub use resource::ResourceId;

use crate::compile::{self, Compiled};
use crate::error::Error;
use crate::gather;
use crate::lock::{Lock, LockedImage};
use crate::model::{AppId, Estate, StageId};
use crate::select::Decisions;
use crate::tree::LOCK_FILE;
use crate::tree::Tree;
use crate::write::{self, Conflict};

/// Version of the JSON document `--format json` prints.
pub(crate) const JSON_VERSION: u32 = 1;

/// Everything a diff found. Sorted, so the same inputs print the same bytes.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TreeDiff {
    pub version: u32,
    /// How the old tree was named on the command line.
    pub against: String,
    /// Whether the old tree exists (when it does not, everything is added).
    pub exists: bool,
    /// A killed compile left a journal in the old tree; the next compile
    /// completes it before anything else.
    pub interrupted: bool,
    pub summary: Summary,
    pub prune_risks: Vec<PruneRisk>,
    pub images: Vec<ImageChange>,
    /// App stages that get no Application yet: their gates hold the first rollout.
    pub waiting: Vec<Waiting>,
    /// Changed files keelson owns, by path.
    pub files: Vec<FileDiff>,
    /// Files keelson would overwrite or remove but does not own as they are
    /// (hand-edited since it wrote them, or never written by it).
    pub unowned: Vec<FileDiff>,
    /// Whether `keelson.lock` changes.
    pub lock_changed: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub files: Counts,
    pub resources: Counts,
    pub images: usize,
    pub prune_risks: usize,
    pub unowned: usize,
    /// Files in the old tree that keelson neither owns nor touches.
    pub foreign_untouched: usize,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub added: usize,
    pub removed: usize,
    pub changed: usize,
}

impl Counts {
    fn add(&mut self, s: Status) {
        match s {
            Status::Added => self.added += 1,
            Status::Removed => self.removed += 1,
            Status::Changed => self.changed += 1,
        }
    }

    pub fn total(&self) -> usize {
        self.added + self.removed + self.changed
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    Added,
    Removed,
    Changed,
}

impl Status {
    pub fn word(self) -> &'static str {
        match self {
            Status::Added => "added",
            Status::Removed => "removed",
            Status::Changed => "changed",
        }
    }
}

/// Why a file that changes is not plainly keelson's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Owner {
    Keelson,
    /// keelson wrote it, then someone edited it.
    HandEdited,
    /// keelson never wrote it, and it is where keelson would write.
    Foreign,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileDiff {
    pub path: String,
    pub status: Status,
    pub owner: Owner,
    /// For YAML files: the documents that differ. Empty for other files.
    pub resources: Vec<ResourceDiff>,
    /// A unified diff of the file's text (three lines of context), or a
    /// note for a file that is not text.
    pub patch: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ResourceDiff {
    #[serde(flatten)]
    pub id: ResourceId,
    pub status: Status,
    /// For a changed resource: the leaves that differ.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<FieldChange>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldChange {
    pub path: String,
    pub old: Option<String>,
    pub new: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImageChange {
    pub app: String,
    pub stage: String,
    pub image: String,
    /// `repository:tag@digest` before and after (`None`: not deployed).
    pub old: Option<String>,
    pub new: Option<String>,
    /// Why the new image, from the decision's trace; or why it is gone.
    pub why: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Waiting {
    pub app: String,
    pub stage: String,
    pub why: String,
}

/// A removed Application: Argo CD may delete live workloads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PruneRisk {
    pub path: String,
    pub name: String,
    pub namespace: Option<String>,
    /// Where its resources live: `server-or-name namespace`.
    pub destination: String,
    /// It carries Argo CD's resources finalizer: deleting it deletes them.
    pub finalizer: bool,
    /// The App of Apps that manages it, and whether that one prunes.
    pub parent: Option<String>,
    pub parent_prunes: bool,
    pub message: String,
}

impl PruneRisk {
    /// `namespace/name`, as kubectl names it.
    pub(crate) fn who(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{ns}/{}", self.name),
            None => self.name.clone(),
        }
    }
}

impl TreeDiff {
    /// Whether the compile would change anything at all.
    pub fn has_changes(&self) -> bool {
        !self.files.is_empty() || !self.unowned.is_empty() || self.lock_changed
    }
}

/// What `keelson diff` produced: the compile (for its diagnostics) and, when
/// it succeeded, the diff.
pub struct Outcome {
    pub compiled: Compiled,
    pub diff: Option<TreeDiff>,
}

/// Compiles the estate in `dir` in memory and compares it with the old tree.
pub fn diff_dir(
    dir: &Path,
    against: &Against,
    options: &compile::Options,
) -> Result<Outcome, Error> {
    // A shared lock on a directory: no compile writes it while it is read.
    loop {
        let lock = match against {
            Against::Dir(out) => Some(write::OutputLock::shared(out, &options.wait)?),
            Against::Git { .. } => None,
        };
        let outcome = diff_locked(dir, against, options)?;
        if let (Some(lock), Against::Dir(out)) = (&lock, against)
            && lock.raced(out)
        {
            continue;
        }
        return Ok(outcome);
    }
}

/// [`diff_dir`], holding the old tree's lock.
fn diff_locked(
    dir: &Path,
    against: &Against,
    options: &compile::Options,
) -> Result<Outcome, Error> {
    let old = OldTree::open(against)?;
    let compiled = compile::build(gather::gather(dir, &old.root, &options.gather())?);
    let diff = match (&compiled.tree, &compiled.lock, &compiled.decided) {
        (Some(tree), Some(lock), Some((estate, decisions))) if !compiled.has_errors() => {
            Some(compare(&Inputs {
                old: &old,
                tree,
                lock,
                previous: compiled.previous.as_ref(),
                estate,
                decisions,
            })?)
        }
        _ => None,
    };
    Ok(Outcome { compiled, diff })
}

pub struct Inputs<'a> {
    pub old: &'a OldTree,
    pub tree: &'a Tree,
    pub lock: &'a Lock,
    /// The lock in the old tree.
    pub previous: Option<&'a Lock>,
    pub estate: &'a Estate,
    pub decisions: &'a Decisions,
}

/// Compares a compiled tree with the old one.
pub fn compare(i: &Inputs<'_>) -> Result<TreeDiff, Error> {
    let conflicts: HashMap<String, Owner> = write::conflicts(&i.old.root, i.tree, i.previous)?
        .into_iter()
        .map(|c| match c {
            Conflict::Edited(p) => (p, Owner::HandEdited),
            Conflict::Foreign(p) => (p, Owner::Foreign),
        })
        .collect();

    // What the write would do: put every tree file whose bytes differ, and
    // remove every file the old lock lists that the tree no longer has.
    let mut work: Vec<(&str, Option<&[u8]>)> =
        i.tree.iter().map(|(p, b)| (p.as_str(), Some(b))).collect();
    if let Some(prev) = i.previous {
        work.extend(
            prev.files
                .keys()
                .filter(|p| !i.tree.contains(p) && p.as_str() != LOCK_FILE)
                .map(|p| (p.as_str(), None)),
        );
    }
    // Reading and parsing dominate on big trees; the merge keeps path order.
    let results: Vec<Result<Option<FileDiff>, Error>> = work
        .par_iter()
        .map(|&(path, new)| {
            let old = i.old.read(path)?;
            let owner = conflicts.get(path).copied().unwrap_or(Owner::Keelson);
            Ok(file_diff(path, old.as_deref(), new, owner))
        })
        .collect();
    let mut files = Vec::new();
    let mut unowned = Vec::new();
    for r in results {
        if let Some(f) = r? {
            if f.owner == Owner::Keelson {
                files.push(f);
            } else {
                unowned.push(f);
            }
        }
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    unowned.sort_by(|a, b| a.path.cmp(&b.path));

    let lock_text = i.lock.to_text();
    let lock_changed = i.old.read(LOCK_FILE)?.as_deref() != Some(lock_text.as_bytes());

    let owned: BTreeSet<&str> = i
        .previous
        .map(|l| l.files.keys().map(String::as_str).collect())
        .unwrap_or_default();
    let foreign_untouched = if i.old.exists {
        i.old
            .files()
            .iter()
            .filter(|p| !owned.contains(p.as_str()) && !i.tree.contains(p))
            .count()
    } else {
        0
    };

    let images = images(i);
    let waiting = waiting(i.estate, i.decisions);
    let prune_risks = prune_risks(i.old, files.iter().chain(&unowned))?;

    let mut summary = Summary {
        images: images.len(),
        prune_risks: prune_risks.len(),
        unowned: unowned.len(),
        foreign_untouched,
        ..Summary::default()
    };
    for f in files.iter().chain(&unowned) {
        summary.files.add(f.status);
        for r in &f.resources {
            summary.resources.add(r.status);
        }
    }
    Ok(TreeDiff {
        version: JSON_VERSION,
        against: i.old.label.clone(),
        exists: i.old.exists,
        interrupted: i.old.interrupted,
        summary,
        prune_risks,
        images,
        waiting,
        files,
        unowned,
        lock_changed,
    })
}

/// One file's change, or `None` when it does not change.
fn file_diff(path: &str, old: Option<&[u8]>, new: Option<&[u8]>, owner: Owner) -> Option<FileDiff> {
    let status = match (old, new) {
        (Some(o), Some(n)) if o == n => return None,
        (None, None) => return None,
        (Some(_), Some(_)) => Status::Changed,
        (None, Some(_)) => Status::Added,
        (Some(_), None) => Status::Removed,
    };
    let is_yaml = path.ends_with(".yaml") || path.ends_with(".yml");
    let docs = |b: Option<&[u8]>| match b {
        None => Some(Vec::new()),
        Some(b) => resource::documents(b),
    };
    let resources = match (is_yaml, docs(old), docs(new)) {
        (true, Some(o), Some(n)) => resource::compare(&o, &n),
        _ => Vec::new(),
    };
    Some(FileDiff {
        path: path.to_string(),
        status,
        owner,
        resources,
        patch: patch(path, old, new),
    })
}

fn patch(path: &str, old: Option<&[u8]>, new: Option<&[u8]>) -> String {
    fn text(b: Option<&[u8]>) -> Option<&str> {
        match b {
            None => Some(""),
            Some(b) => std::str::from_utf8(b).ok(),
        }
    }
    let (Some(o), Some(n)) = (text(old), text(new)) else {
        return "(not text)\n".into();
    };
    let diff = similar::TextDiff::from_lines(o, n);
    let a = if old.is_some() {
        format!("a/{path}")
    } else {
        "/dev/null".into()
    };
    let b = if new.is_some() {
        format!("b/{path}")
    } else {
        "/dev/null".into()
    };
    let mut out = diff
        .unified_diff()
        .context_radius(3)
        .header(&a, &b)
        .to_string();
    if !out.ends_with('\n') {
        out.push('\n');
    }
    out
}

fn reference(l: &LockedImage) -> String {
    let mut s = l.repository.clone();
    if let Some(t) = &l.tag {
        s.push(':');
        s.push_str(t);
    }
    if let Some(d) = &l.digest {
        s.push('@');
        s.push_str(d);
    }
    s
}

/// Images whose pin moves, from the two locks; why, from the decisions.
fn images(i: &Inputs<'_>) -> Vec<ImageChange> {
    let old: BTreeMap<_, &LockedImage> = i
        .previous
        .map(|l| l.images.iter().map(|e| (e.key(), e)).collect())
        .unwrap_or_default();
    let new: BTreeMap<_, &LockedImage> = i.lock.images.iter().map(|e| (e.key(), e)).collect();
    let keys: BTreeSet<_> = old.keys().chain(new.keys()).copied().collect();
    let ids = Ids::new(i.estate);
    let mut out = Vec::new();
    for key in keys {
        let (o, n) = (old.get(&key), new.get(&key));
        let same = match (o, n) {
            (Some(o), Some(n)) => {
                o.repository == n.repository && o.tag == n.tag && o.digest == n.digest
            }
            _ => false,
        };
        if same {
            continue;
        }
        let (app, stage, image) = key;
        let decided = ids.find(app, stage, image);
        let why = match (n, decided) {
            (Some(_), Some((a, s, ii))) => i
                .decisions
                .images
                .get(&(a, s, ii))
                .map(|d| crate::explain::summary(i.estate, a, ii, d))
                .unwrap_or_default(),
            (None, Some((a, s, ii))) if i.decisions.waiting.contains_key(&(a, s, ii)) => {
                "the stage waits: its gates hold the first rollout".into()
            }
            (None, Some(_)) => "no longer decided".into(),
            (None, None) => "the app, stage or image is no longer deployed".into(),
            (Some(_), None) => String::new(),
        };
        out.push(ImageChange {
            app: app.to_string(),
            stage: stage.to_string(),
            image: image.to_string(),
            old: o.map(|l| reference(l)),
            new: n.map(|l| reference(l)),
            why,
        });
    }
    out
}

/// Names to ids, for looking decisions up by a lock entry's names.
struct Ids<'a> {
    apps: HashMap<&'a str, AppId>,
    stages: HashMap<&'a str, StageId>,
    estate: &'a Estate,
}

impl<'a> Ids<'a> {
    fn new(estate: &'a Estate) -> Self {
        Ids {
            apps: estate
                .apps
                .iter()
                .enumerate()
                .map(|(i, a)| (a.name.value.as_str(), AppId(i as u32)))
                .collect(),
            stages: estate
                .stages
                .iter()
                .enumerate()
                .map(|(i, s)| (s.name.value.as_str(), StageId(i as u32)))
                .collect(),
            estate,
        }
    }

    fn find(&self, app: &str, stage: &str, image: &str) -> Option<(AppId, StageId, usize)> {
        let a = *self.apps.get(app)?;
        let s = *self.stages.get(stage)?;
        let ii = self
            .estate
            .app(a)
            .images
            .iter()
            .position(|im| im.alias.value == image)?;
        Some((a, s, ii))
    }
}

fn waiting(estate: &Estate, decisions: &Decisions) -> Vec<Waiting> {
    let mut out: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for (&(app, stage, _), trace) in &decisions.waiting {
        let reasons = out
            .entry((
                estate.app(app).name.value.clone(),
                estate.stage(stage).name.value.clone(),
            ))
            .or_default();
        for g in trace.gates.iter().filter(|g| !g.promote) {
            let r = format!("gate `{}` holds: {}", g.policy, g.reason);
            if !reasons.contains(&r) {
                reasons.push(r);
            }
        }
    }
    out.into_iter()
        .map(|((app, stage), reasons)| Waiting {
            app,
            stage,
            why: if reasons.is_empty() {
                "its upstream stage has no image yet".into()
            } else {
                reasons.join("; ")
            },
        })
        .collect()
}

/// An Application's `spec.source.path` as a tree directory (`""` for the
/// repository's root): Argo CD reads `apps`, `./apps`, `/apps` and `apps/`
/// alike. `None` for a path that leaves the repository.
fn source_dir(raw: &str) -> Option<String> {
    let trimmed = raw.trim_start_matches('/');
    match crate::tree::TreePath::new(trimmed) {
        Some(p) => Some(p.as_str().to_string()),
        None if trimmed.split('/').all(|c| c.is_empty() || c == ".") => Some(String::new()),
        None => None,
    }
}

/// Every removed Application, with what Argo CD will do about it.
fn prune_risks<'a>(
    old: &OldTree,
    files: impl Iterator<Item = &'a FileDiff>,
) -> Result<Vec<PruneRisk>, Error> {
    let removed = removed_applications(files);
    if removed.is_empty() {
        return Ok(Vec::new());
    }
    let parents = apps_of_apps(old, &removed)?;
    removed
        .into_iter()
        .map(|(path, id)| prune_risk(old, path, &id, &parents))
        .collect()
}

/// The Applications the diff removes, with their files, in diff order.
fn removed_applications<'a>(
    files: impl Iterator<Item = &'a FileDiff>,
) -> Vec<(String, ResourceId)> {
    let mut removed = Vec::new();
    for f in files {
        for r in &f.resources {
            if r.status == Status::Removed && r.id.is_application() {
                removed.push((f.path.clone(), r.id.clone()));
            }
        }
    }
    removed
}

/// An Application in the old tree that manages the Applications in its
/// source directory (an App of Apps, perhaps).
struct Parent {
    name: String,
    /// Its source directory in the tree (`""`: the root).
    dir: String,
    recurse: bool,
    prunes: bool,
}

/// The Applications of the old tree that could manage a removed one: those
/// whose source directory holds its file. Only looked for when something is
/// removed; a text test (`path: <an ancestor directory>`) picks the few
/// files worth parsing.
fn apps_of_apps(old: &OldTree, removed: &[(String, ResourceId)]) -> Result<Vec<Parent>, Error> {
    let candidate = ancestor_path_pattern(removed);
    let mut parents = Vec::new();
    for path in old.files() {
        if !(path.ends_with(".yaml") || path.ends_with(".yml")) {
            continue;
        }
        let Some(bytes) = old.read(&path)? else {
            continue;
        };
        // Without an ancestor (a file at the top) any Application may be its parent.
        if let Some(c) = &candidate
            && !c.is_match(&bytes)
        {
            continue;
        }
        for doc in resource::documents(&bytes).unwrap_or_default() {
            parents.extend(parent_of(&doc));
        }
    }
    Ok(parents)
}

/// A regex for `path: <dir>` lines naming a directory above any removed
/// file; `None` when there is no such directory (or the regex would not
/// build), and every file is parsed.
fn ancestor_path_pattern(removed: &[(String, ResourceId)]) -> Option<regex::bytes::Regex> {
    let mut ancestors: BTreeSet<String> = BTreeSet::new();
    for (path, _) in removed {
        let mut dir = path.as_str();
        while let Some((parent, _)) = dir.rsplit_once('/') {
            ancestors.insert(regex::escape(parent));
            dir = parent;
        }
    }
    let alternatives: Vec<String> = ancestors.into_iter().collect();
    regex::bytes::RegexBuilder::new(&format!(
        r"path: ['\x22]?/?(?:{})/?['\x22]?\s*$",
        alternatives.join("|")
    ))
    .multi_line(true)
    .build()
    .ok()
}

/// A document as a possible parent: an Application with a source path.
fn parent_of(doc: &serde_yaml::Value) -> Option<Parent> {
    if !ResourceId::of_value(doc).is_application() {
        return None;
    }
    let spec = doc.get("spec");
    let source = spec.and_then(|s| s.get("source"));
    let dir = source
        .and_then(|s| s.get("path"))
        .and_then(|p| p.as_str())?;
    let recurse = source
        .and_then(|s| s.get("directory"))
        .and_then(|d| d.get("recurse"))
        .and_then(|r| r.as_bool())
        .unwrap_or(false);
    let prunes = spec
        .and_then(|s| s.get("syncPolicy"))
        .and_then(|p| p.get("automated"))
        .and_then(|a| a.get("prune"))
        .and_then(|p| p.as_bool())
        .unwrap_or(false);
    let dir = source_dir(dir)?;
    Some(Parent {
        name: ResourceId::of_value(doc).name.unwrap_or_default(),
        dir,
        recurse,
        prunes,
    })
}

/// What removing the Application `id` (from the old tree's `path`) does:
/// its destination, its finalizer, the first parent that manages it.
fn prune_risk(
    old: &OldTree,
    path: String,
    id: &ResourceId,
    parents: &[Parent],
) -> Result<PruneRisk, Error> {
    let bytes = old.read(&path)?.unwrap_or_default();
    let doc = resource::documents(&bytes)
        .unwrap_or_default()
        .into_iter()
        .find(|d| ResourceId::of_value(d) == *id);
    let destination = destination(doc.as_ref());
    let finalizer = has_resources_finalizer(doc.as_ref());
    let file_dir = path.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
    let parent = parents.iter().find(|p| {
        Some(&p.name) != id.name.as_ref()
            && (file_dir == p.dir
                || (p.recurse
                    && (p.dir.is_empty() || file_dir.starts_with(&format!("{}/", p.dir)))))
    });
    let name = id.name.clone().unwrap_or_default();
    let message = prune_message(parent, finalizer, &name, &destination);
    Ok(PruneRisk {
        path,
        name,
        namespace: id.namespace.clone(),
        destination,
        finalizer,
        parent: parent.map(|p| p.name.clone()),
        parent_prunes: parent.is_some_and(|p| p.prunes),
        message,
    })
}

/// An Application's destination as `<server or name> namespace <ns>`.
fn destination(doc: Option<&serde_yaml::Value>) -> String {
    let dest = doc
        .and_then(|d| d.get("spec"))
        .and_then(|s| s.get("destination"));
    let text = |v: Option<&serde_yaml::Value>, k: &str| {
        v.and_then(|v| v.get(k))
            .and_then(|v| v.as_str())
            .map(str::to_string)
    };
    format!(
        "{} namespace {}",
        text(dest, "server")
            .or_else(|| text(dest, "name"))
            .unwrap_or_else(|| "(no cluster)".into()),
        text(dest, "namespace").unwrap_or_else(|| "(none)".into())
    )
}

/// Whether deleting the Application deletes what it manages.
fn has_resources_finalizer(doc: Option<&serde_yaml::Value>) -> bool {
    doc.and_then(|d| d.get("metadata"))
        .and_then(|m| m.get("finalizers"))
        .and_then(|f| f.as_sequence())
        .is_some_and(|f| {
            f.iter().any(|x| {
                x.as_str()
                    .is_some_and(|s| s.starts_with("resources-finalizer.argocd.argoproj.io"))
            })
        })
}

fn prune_message(
    parent: Option<&Parent>,
    finalizer: bool,
    name: &str,
    destination: &str,
) -> String {
    let then_finalizer = if finalizer {
        " (then its resources finalizer deletes everything it manages)"
    } else {
        ""
    };
    match parent {
        Some(Parent {
            name: p,
            prunes: true,
            ..
        }) if finalizer => format!(
            "the App of Apps `{p}` prunes, so Argo CD deletes `{name}`, and its resources finalizer deletes every live resource it manages in {destination}"
        ),
        Some(Parent {
            name: p,
            prunes: true,
            ..
        }) => format!(
            "the App of Apps `{p}` prunes, so Argo CD deletes `{name}`; it has no resources finalizer, so its live resources in {destination} stay, unmanaged"
        ),
        Some(Parent { name: p, .. }) => format!(
            "the App of Apps `{p}` does not prune: Argo CD reports `{name}` out of sync and leaves it running until someone deletes it{then_finalizer}"
        ),
        None => format!(
            "no App of Apps in the tree manages `{name}`: it keeps running until someone deletes it{then_finalizer}"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::source_dir;

    #[test]
    fn source_paths_are_read_as_argo_cd_reads_them() {
        for raw in [
            "apps/lab",
            "./apps/lab",
            "/apps/lab",
            "apps/lab/",
            "apps//lab",
        ] {
            assert_eq!(source_dir(raw).as_deref(), Some("apps/lab"), "{raw}");
        }
        for raw in ["", ".", "./", "/"] {
            assert_eq!(source_dir(raw).as_deref(), Some(""), "{raw:?}");
        }
        assert_eq!(source_dir("../elsewhere"), None);
    }
}
