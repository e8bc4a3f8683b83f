//! The Kubernetes objects each deployment applies, as far as keelson can know
//! them from the manifests it reads and writes, and the problems Argo CD would
//! otherwise only find in the cluster:
//!
//! - two Applications applying one object (Argo CD's `SharedResourceWarning`:
//!   both self-heal it, each prunes it when it drops it, deleting either
//!   deletes it): `keelson::shared-resource`;
//! - one Application's manifests defining an object twice (kustomize refuses
//!   to build it; Argo CD's `RepeatedResourceWarning`): `keelson::repeated-resource`;
//! - an object a declared AppProject does not permit (the sync fails with
//!   "resource … is not permitted in project"): `keelson::resource-not-permitted`.
//!
//! An object is its destination cluster, namespace (none when cluster-scoped),
//! API group, kind and name, placed as Argo CD places it: a cluster-scoped kind
//! loses any namespace, a namespaced object without `metadata.namespace` gets
//! the Application's destination namespace. Which kinds are cluster-scoped
//! comes from [`CLUSTER_SCOPED`] and the kinds projects allow as
//! `cluster-resource`; any other kind is namespaced, as Argo CD treats a kind
//! it does not know.
//!
//! What is known: a directory app's YAML files (with its own kustomization:
//! the files its `resources` list, under its `namespace`; a kustomization that
//! renames objects or pulls in other directories is not read further), and a
//! template app's rendered files. A Helm chart is not rendered; two
//! deployments of one chart app into one namespace are one Helm release twice.
//! Pure: `check` reads the files, `emit` has them.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use serde::Deserialize;
use serde_yaml::Value;

use crate::diagnostic::{Code, Diagnostic, Diagnostics, Loc};
use crate::model::{App, AppId, Deployment, Estate, Manifests, ProjectRef, Server, SiteId};
use crate::strategy::glob_match;
use crate::templates;
use crate::tree::KUSTOMIZATION_NAMES;

/// Kinds that are cluster-scoped in every Kubernetes (and a few widely
/// installed CRDs), by API group and kind.
pub(crate) const CLUSTER_SCOPED: &[(&str, &str)] = &[
    ("", "Namespace"),
    ("", "Node"),
    ("", "PersistentVolume"),
    ("", "ComponentStatus"),
    ("rbac.authorization.k8s.io", "ClusterRole"),
    ("rbac.authorization.k8s.io", "ClusterRoleBinding"),
    ("apiextensions.k8s.io", "CustomResourceDefinition"),
    ("apiregistration.k8s.io", "APIService"),
    (
        "admissionregistration.k8s.io",
        "ValidatingWebhookConfiguration",
    ),
    (
        "admissionregistration.k8s.io",
        "MutatingWebhookConfiguration",
    ),
    ("admissionregistration.k8s.io", "ValidatingAdmissionPolicy"),
    (
        "admissionregistration.k8s.io",
        "ValidatingAdmissionPolicyBinding",
    ),
    ("admissionregistration.k8s.io", "MutatingAdmissionPolicy"),
    (
        "admissionregistration.k8s.io",
        "MutatingAdmissionPolicyBinding",
    ),
    ("storage.k8s.io", "StorageClass"),
    ("storage.k8s.io", "CSIDriver"),
    ("storage.k8s.io", "CSINode"),
    ("storage.k8s.io", "VolumeAttachment"),
    ("scheduling.k8s.io", "PriorityClass"),
    ("networking.k8s.io", "IngressClass"),
    ("networking.k8s.io", "IPAddress"),
    ("networking.k8s.io", "ServiceCIDR"),
    ("node.k8s.io", "RuntimeClass"),
    ("certificates.k8s.io", "CertificateSigningRequest"),
    ("certificates.k8s.io", "ClusterTrustBundle"),
    ("flowcontrol.apiserver.k8s.io", "FlowSchema"),
    ("flowcontrol.apiserver.k8s.io", "PriorityLevelConfiguration"),
    ("resource.k8s.io", "DeviceClass"),
    ("policy", "PodSecurityPolicy"),
    ("cert-manager.io", "ClusterIssuer"),
    ("gateway.networking.k8s.io", "GatewayClass"),
];

/// A file of a directory app: its path in the directory and its bytes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Manifest<'a> {
    pub rel: &'a str,
    pub bytes: &'a [u8],
}

/// An object as the app's manifests declare it, before it is placed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Declared {
    pub group: String,
    pub kind: String,
    pub name: String,
    /// `metadata.namespace` (or the app's kustomization's `namespace`).
    pub namespace: Option<String>,
    /// Where it is written, for messages, quoted: `` `dir/file.yaml` ``, or
    /// `` template `web-service` (`service.yaml`) ``.
    pub source: String,
}

/// An object where Argo CD applies it for one deployment.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Placed {
    pub group: String,
    pub kind: String,
    /// `None`: cluster-scoped.
    pub namespace: Option<String>,
    pub name: String,
}

impl Placed {
    /// ``CronJob `nexus/nexus-backup` ``; with the group when it is not
    /// Kubernetes' own (`Certificate.cert-manager.io`), so a CRD's kind is
    /// not mistaken for another.
    fn describe(&self) -> String {
        let kind = if self.group.contains('.') && !self.group.ends_with(".k8s.io") {
            format!("{}.{}", self.kind, self.group)
        } else {
            self.kind.clone()
        };
        match &self.namespace {
            Some(ns) => format!("{kind} `{ns}/{}`", self.name),
            None => format!("{kind} `{}`", self.name),
        }
    }
}

/// Whether a kind is cluster-scoped: a well-known one, or one a project
/// allows as `cluster-resource` (only cluster-scoped kinds go there).
pub(crate) fn is_cluster_scoped(estate: &Estate, group: &str, kind: &str) -> bool {
    CLUSTER_SCOPED.contains(&(group, kind))
        || estate.projects.iter().any(|p| {
            p.cluster_resource_whitelist
                .iter()
                .any(|gk| gk.group == group && gk.kind == kind)
        })
}

/// Places a declared object for a deployment, as Argo CD does.
pub(crate) fn place(estate: &Estate, d: &Deployment, o: &Declared) -> Placed {
    let namespace = if is_cluster_scoped(estate, &o.group, &o.kind) {
        None
    } else {
        Some(
            o.namespace
                .clone()
                .unwrap_or_else(|| d.namespace.value.clone()),
        )
    };
    Placed {
        group: o.group.clone(),
        kind: o.kind.clone(),
        namespace,
        name: o.name.clone(),
    }
}

/// The objects a directory app's files declare. `dir` is the directory as
/// the estate names it (for messages). Without a kustomization of its own
/// every YAML file is a resource (keelson wraps them so); with one, the files
/// its `resources` list, under its `namespace`. A kustomization keelson does
/// not model (one that renames objects, or uses components or transformers)
/// yields nothing: better to check nothing than to check wrong names.
pub(crate) fn directory(dir: &str, files: &[Manifest<'_>]) -> Vec<Declared> {
    let shown = |rel: &str| {
        let d = dir.trim_start_matches("./").trim_end_matches('/');
        if d.is_empty() || d == "." {
            format!("`{rel}`")
        } else {
            format!("`{d}/{rel}`")
        }
    };
    fn text<'a>(f: &Manifest<'a>) -> Option<&'a str> {
        std::str::from_utf8(f.bytes).ok()
    }
    let is_yaml = |rel: &str| rel.ends_with(".yaml") || rel.ends_with(".yml");
    let mut out = Vec::new();
    let own = files.iter().find(|f| KUSTOMIZATION_NAMES.contains(&f.rel));
    let Some(own) = own else {
        for f in files.iter().filter(|f| is_yaml(f.rel)) {
            if let Some(t) = text(f) {
                declared_in(t, &shown(f.rel), &mut out);
            }
        }
        return out;
    };
    let Some(k) = text(own).and_then(|t| serde_yaml::from_str::<Value>(t).ok()) else {
        return out;
    };
    let Some(k) = k.as_mapping() else {
        return out;
    };
    // Fields that neither rename objects nor move them (generated objects,
    // with their hashed names, are simply not seen).
    const UNDERSTOOD: &[&str] = &[
        "apiVersion",
        "kind",
        "metadata",
        "resources",
        "bases",
        "namespace",
        "commonLabels",
        "labels",
        "commonAnnotations",
        "images",
        "replicas",
        "patches",
        "patchesStrategicMerge",
        "patchesJson6902",
        "configMapGenerator",
        "secretGenerator",
        "generatorOptions",
        "buildMetadata",
        "sortOptions",
        "openapi",
        "crds",
    ];
    if k.keys()
        .any(|key| !key.as_str().is_some_and(|key| UNDERSTOOD.contains(&key)))
    {
        return out;
    }
    let namespace = k
        .get("namespace")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty());
    let listed = ["resources", "bases"]
        .iter()
        .filter_map(|key| k.get(*key).and_then(Value::as_sequence))
        .flatten()
        .filter_map(Value::as_str);
    for entry in listed {
        let rel = entry.trim_start_matches("./");
        // Directories, other bases and URLs are not read.
        if let Some(f) = files.iter().find(|f| f.rel == rel && is_yaml(rel)) {
            if let Some(t) = text(f) {
                let from = out.len();
                declared_in(t, &shown(f.rel), &mut out);
                if let Some(ns) = namespace {
                    for o in &mut out[from..] {
                        o.namespace = Some(ns.to_string());
                    }
                }
            }
        }
    }
    out
}

/// The objects a template app renders for a deployment (with the
/// deployment's `params` over the app's). Problems rendering are `emit`'s to
/// report; here they only mean fewer objects.
fn template(app: &App, d: &Deployment) -> Vec<Declared> {
    let Manifests::Template { name, params } = &app.manifests else {
        return Vec::new();
    };
    let mut merged = params.clone();
    for (k, v) in &d.params {
        merged.insert(k.clone(), v.clone());
    }
    let mut ignored = Diagnostics::default();
    let mut out = Vec::new();
    for (file, doc) in templates::render(app, name, &merged, &mut ignored) {
        push_object(
            &doc,
            &format!("template `{}` (`{file}`)", name.value),
            &mut out,
        );
    }
    out
}

/// Every object in a YAML stream, `*List` kinds unpacked as kubectl does.
/// Documents without a kind or a name (`generateName`) are not objects
/// keelson can compare; a document that does not parse ends the stream.
fn declared_in(text: &str, source: &str, out: &mut Vec<Declared>) {
    for doc in serde_yaml::Deserializer::from_str(text) {
        let Ok(v) = Value::deserialize(doc) else {
            break;
        };
        push_object(&v, source, out);
    }
}

fn push_object(v: &Value, source: &str, out: &mut Vec<Declared>) {
    let Some(kind) = v.get("kind").and_then(Value::as_str) else {
        return;
    };
    if kind.ends_with("List") {
        if let Some(items) = v.get("items").and_then(Value::as_sequence) {
            for item in items {
                push_object(item, source, out);
            }
            return;
        }
    }
    let api = v.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    let meta = v.get("metadata");
    let field = |key: &str| {
        meta.and_then(|m| m.get(key))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    let Some(name) = field("name") else {
        return;
    };
    out.push(Declared {
        group: api.rsplit_once('/').map_or("", |(g, _)| g).to_string(),
        kind: kind.to_string(),
        name: name.to_string(),
        namespace: field("namespace").map(str::to_string),
        source: source.to_string(),
    });
}

/// The cluster a deployment applies to. `in-cluster` is each site's own
/// management cluster, so it is told apart by site.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Dest {
    InCluster(SiteId),
    Url(String),
}

fn dest(estate: &Estate, d: &Deployment) -> Dest {
    let cluster = estate.cluster(d.cluster.value);
    match &cluster.server {
        Server::InCluster => Dest::InCluster(cluster.site),
        Server::Url(u) => Dest::Url(u.trim_end_matches('/').to_string()),
    }
}

/// One deployment and what it applies.
struct Applied<'e> {
    app_id: AppId,
    app: &'e App,
    d: &'e Deployment,
    dest: Dest,
    /// Each object with the file it comes from.
    objects: Vec<(Placed, String)>,
}

impl Applied<'_> {
    fn who(&self, estate: &Estate) -> String {
        format!(
            "app `{}` in stage `{}`",
            self.app.name.value,
            estate.stage(self.d.stage.value).name.value
        )
    }

    /// Where to point at the deployment for an object: its namespace when
    /// the object lands there, else its cluster.
    fn loc_for(&self, o: &Placed) -> Loc {
        if o.namespace.as_deref() == Some(self.d.namespace.value.as_str()) {
            self.d.namespace.loc
        } else {
            self.d.cluster.loc
        }
    }
}

/// Stage: the checks above, over every deployment. `dirs` holds each
/// directory app's declared objects ([`directory`]); an app missing there is
/// not checked (its files were not read). Template apps are rendered only
/// where it can matter: their objects all take the deployment's namespace
/// (a stdlib template sets none and holds no cluster-scoped kind), so only
/// when something else lands in that namespace, or their project denies
/// kinds.
pub(crate) fn check(
    estate: &Estate,
    dirs: &BTreeMap<AppId, Vec<Declared>>,
    diags: &mut Diagnostics,
) {
    let mut applied: Vec<Applied<'_>> = Vec::new();
    for (ai, app) in estate.apps.iter().enumerate() {
        let app_id = AppId(ai as u32);
        for d in &app.deployments {
            let objects = match &app.manifests {
                Manifests::Directory(_) => dirs
                    .get(&app_id)
                    .map(|decl| {
                        decl.iter()
                            .map(|o| (place(estate, d, o), o.source.clone()))
                            .collect()
                    })
                    .unwrap_or_default(),
                _ => Vec::new(),
            };
            applied.push(Applied {
                app_id,
                app,
                d,
                dest: dest(estate, d),
                objects,
            });
        }
    }
    // Who lands in each namespace of each cluster.
    let mut users: HashMap<(Dest, &str), HashSet<usize>> = HashMap::new();
    for (i, a) in applied.iter().enumerate() {
        users
            .entry((a.dest.clone(), a.d.namespace.value.as_str()))
            .or_default()
            .insert(i);
        for (o, _) in &a.objects {
            if let Some(ns) = &o.namespace {
                users.entry((a.dest.clone(), ns)).or_default().insert(i);
            }
        }
    }
    let render: Vec<bool> = applied
        .iter()
        .map(|a| {
            matches!(a.app.manifests, Manifests::Template { .. })
                && (users
                    .get(&(a.dest.clone(), a.d.namespace.value.as_str()))
                    .is_some_and(|u| u.len() > 1)
                    || denies_kinds(estate, a.app))
        })
        .collect();
    for (a, render) in applied.iter_mut().zip(render) {
        if render {
            a.objects = template(a.app, a.d)
                .iter()
                .map(|o| (place(estate, a.d, o), o.source.clone()))
                .collect();
        }
    }
    repeated(estate, &applied, diags);
    shared(estate, &applied, diags);
    releases(estate, &applied, diags);
    permitted(estate, &applied, diags);
}

fn denies_kinds(estate: &Estate, app: &App) -> bool {
    matches!(&app.project, ProjectRef::Declared(p)
        if !estate.project(p.value).namespace_resource_blacklist.is_empty())
}

/// An object twice in one app's manifests, reported once per app (at its
/// first deployment, whatever namespace each places it in).
fn repeated(estate: &Estate, applied: &[Applied<'_>], diags: &mut Diagnostics) {
    let mut reported: HashSet<(AppId, String, String, String)> = HashSet::new();
    for a in applied {
        let mut first: HashMap<&Placed, &str> = HashMap::new();
        for (o, source) in &a.objects {
            let Some(before) = first.insert(o, source) else {
                continue;
            };
            if !reported.insert((a.app_id, o.group.clone(), o.kind.clone(), o.name.clone())) {
                continue;
            }
            let place = if before == source {
                format!("twice in {source}")
            } else {
                format!("in {before} and again in {source}")
            };
            diags.push(
                Diagnostic::error(
                    Code::RepeatedResource,
                    manifests_loc(a.app),
                    format!(
                        "app `{}` defines {} {place}",
                        a.app.name.value,
                        o.describe()
                    ),
                )
                .with_secondary(a.loc_for(o), format!("in stage `{}`, for one", estate.stage(a.d.stage.value).name.value))
                .with_help("keep one definition: kustomize refuses to build an app that defines an object twice, and Argo CD would apply only the last"),
            );
        }
    }
}

fn manifests_loc(app: &App) -> Loc {
    match &app.manifests {
        Manifests::Directory(dir) => dir.loc,
        Manifests::Template { name, .. } => name.loc,
        Manifests::Chart { name, .. } => name.loc,
    }
}

/// One object, two Applications: reported once per pair of deployments,
/// naming what they share.
fn shared(estate: &Estate, applied: &[Applied<'_>], diags: &mut Diagnostics) {
    type Key = (Dest, Placed);
    let mut owner: HashMap<Key, (usize, &str)> = HashMap::new();
    // (first, second) → the objects both apply, with each one's source.
    let mut pairs: BTreeMap<(usize, usize), Vec<(&Placed, &str, &str)>> = BTreeMap::new();
    for (i, a) in applied.iter().enumerate() {
        for (o, source) in &a.objects {
            match owner.get(&(a.dest.clone(), o.clone())) {
                Some(&(first, first_source)) if first != i => {
                    let list = pairs.entry((first, i)).or_default();
                    if !list.iter().any(|(p, _, _)| *p == o) {
                        list.push((o, first_source, source));
                    }
                }
                Some(_) => {}
                None => {
                    owner.insert((a.dest.clone(), o.clone()), (i, source));
                }
            }
        }
    }
    for ((first, second), objects) in pairs {
        let (a, b) = (&applied[first], &applied[second]);
        let (o, first_source, second_source) = objects[0];
        let cluster = &estate.cluster(b.d.cluster.value).name.value;
        let what = match objects.len() {
            1 if first_source == second_source => format!(
                "{} (from {first_source}) to cluster `{cluster}`",
                o.describe()
            ),
            1 => format!(
                "{} (from {second_source} and from {first_source}) to cluster `{cluster}`",
                o.describe()
            ),
            n => {
                let mut names: Vec<String> = objects
                    .iter()
                    .take(3)
                    .map(|(o, _, _)| o.describe())
                    .collect();
                if n > 3 {
                    names.push(format!("{} more", n - 3));
                }
                format!("{n} objects to cluster `{cluster}`: {}", names.join(", "))
            }
        };
        let them = if objects.len() == 1 { "it" } else { "them" };
        let help = if a.app_id == b.app_id {
            "Argo CD lets one Application own an object: the two would undo each other's changes (self-heal, prune), and deleting either would delete it. Deploy the stages to different namespaces or clusters, or the app to one stage"
        } else {
            "Argo CD lets one Application own an object: the two would undo each other's changes (self-heal, prune), and deleting either would delete it. Keep the object in one app (or in an app of its own that the others `depends-on`)"
        };
        diags.push(
            Diagnostic::error(
                Code::SharedResource,
                b.loc_for(o),
                format!(
                    "{} and {} would both apply {what}",
                    b.who(estate),
                    a.who(estate)
                ),
            )
            .with_secondary(
                a.loc_for(o),
                format!("{} applies {them} too", a.who(estate)),
            )
            .with_help(help),
        );
    }
}

/// Two deployments of one chart app into one namespace of one cluster are
/// one Helm release (keelson names the release after the app) installed
/// twice: the chart's objects are named after the release, so they are the
/// same objects. keelson cannot render a chart to say which.
fn releases(estate: &Estate, applied: &[Applied<'_>], diags: &mut Diagnostics) {
    let mut first: HashMap<(AppId, Dest, &str), usize> = HashMap::new();
    for (i, a) in applied.iter().enumerate() {
        if !matches!(a.app.manifests, Manifests::Chart { .. }) {
            continue;
        }
        let key = (a.app_id, a.dest.clone(), a.d.namespace.value.as_str());
        let Some(&f) = first.get(&key) else {
            first.insert(key, i);
            continue;
        };
        let other = &applied[f];
        diags.push(
            Diagnostic::error(
                Code::SharedResource,
                a.d.namespace.loc,
                format!(
                    "{} and {} would both install the Helm release `{}` in namespace `{}` of cluster `{}`: the chart's objects, named after the release, would be the same objects",
                    a.who(estate),
                    other.who(estate),
                    a.app.name.value,
                    a.d.namespace.value,
                    estate.cluster(a.d.cluster.value).name.value
                ),
            )
            .with_secondary(other.d.namespace.loc, format!("{} installs it too", other.who(estate)))
            .with_help("Argo CD lets one Application own an object: deploy the stages to different namespaces or clusters, or the app to one stage"),
        );
    }
}

/// What a declared project permits, as Argo CD reads it
/// (`IsGroupKindNamePermitted`): a cluster-scoped kind must match a
/// `cluster-resource` entry (the emitted whitelist also has `Namespace` when
/// a deployment of the project creates its namespace); a namespaced kind must
/// match no `deny-namespace-resource` entry. Patterns are Go globs. The
/// default project permits everything, and keelson derives a project
/// without `project=` from what the app applies; destinations are always
/// derived, so they permit every namespace an app's objects land in.
fn permitted(estate: &Estate, applied: &[Applied<'_>], diags: &mut Diagnostics) {
    // Projects whose emitted whitelist gains `Namespace`, per site.
    let mut creates_namespace: HashSet<(SiteId, u32)> = HashSet::new();
    for a in applied {
        if let ProjectRef::Declared(p) = &a.app.project {
            if a.d.sync.options.iter().any(|o| o == "CreateNamespace=true") {
                let site = estate.cluster(a.d.cluster.value).site;
                creates_namespace.insert((site, p.value.0));
            }
        }
    }
    fn matches<'a>(mut list: impl Iterator<Item = (&'a str, &'a str)>, o: &Placed) -> bool {
        list.any(|(g, k)| glob_match(k, &o.kind) && glob_match(g, &o.group))
    }
    let mut reported: BTreeSet<(AppId, String, String)> = BTreeSet::new();
    for a in applied {
        let ProjectRef::Declared(p) = &a.app.project else {
            continue;
        };
        let project = estate.project(p.value);
        let site = estate.cluster(a.d.cluster.value).site;
        for (o, source) in &a.objects {
            let denied = match o.namespace {
                None => {
                    let extra = creates_namespace
                        .contains(&(site, p.value.0))
                        .then_some(("", "Namespace"));
                    let list = project
                        .cluster_resource_whitelist
                        .iter()
                        .map(|gk| (gk.group.as_str(), gk.kind.as_str()))
                        .chain(extra);
                    !matches(list, o)
                }
                Some(_) => {
                    let list = project
                        .namespace_resource_blacklist
                        .iter()
                        .map(|gk| (gk.group.as_str(), gk.kind.as_str()));
                    matches(list, o)
                }
            };
            if !denied || !reported.insert((a.app_id, o.group.clone(), o.kind.clone())) {
                continue;
            }
            let name = &project.name.value;
            let (why, help) = match o.namespace {
                None => (
                    format!("a cluster-scoped kind that project `{name}` does not permit"),
                    format!(
                        "add `cluster-resource group=\"{}\" kind=\"{}\"` to project `{name}`, or remove the object from the app",
                        o.group, o.kind
                    ),
                ),
                Some(_) => (
                    format!("a kind that project `{name}` denies (`deny-namespace-resource`)"),
                    format!(
                        "remove the object from the app, or the `deny-namespace-resource` entry from project `{name}`"
                    ),
                ),
            };
            diags.push(
                Diagnostic::error(
                    Code::ResourceNotPermitted,
                    p.loc,
                    format!(
                        "app `{}` applies {} (from {source}), {why}: Argo CD would refuse to sync it",
                        a.app.name.value,
                        o.describe()
                    ),
                )
                .with_secondary(project.name.loc, format!("project `{name}`"))
                .with_help(help),
            );
        }
    }
}

/// The objects a directory app places for one deployment, with the kinds
/// and namespaces its AppProject must allow. For `emit`, which derives
/// projects from them.
pub(crate) fn placed(estate: &Estate, d: &Deployment, declared: &[Declared]) -> Vec<Placed> {
    declared.iter().map(|o| place(estate, d, o)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decl(text: &str) -> Vec<Declared> {
        let mut out = Vec::new();
        declared_in(text, "m.yaml", &mut out);
        out
    }

    #[test]
    fn objects_are_read_with_group_namespace_and_lists() {
        let got = decl(
            "apiVersion: batch/v1\nkind: CronJob\nmetadata:\n  name: backup\n---\n\
             apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n  namespace: other\n---\n\
             apiVersion: v1\nkind: List\nitems:\n- apiVersion: rbac.authorization.k8s.io/v1\n  kind: ClusterRole\n  metadata:\n    name: r\n---\n\
             apiVersion: batch/v1\nkind: Job\nmetadata:\n  generateName: j-\n",
        );
        let brief: Vec<(&str, &str, &str, Option<&str>)> = got
            .iter()
            .map(|o| {
                (
                    o.group.as_str(),
                    o.kind.as_str(),
                    o.name.as_str(),
                    o.namespace.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            brief,
            [
                ("batch", "CronJob", "backup", None),
                ("", "ConfigMap", "c", Some("other")),
                ("rbac.authorization.k8s.io", "ClusterRole", "r", None),
            ]
        );
    }

    #[test]
    fn an_own_kustomization_lists_the_resources_and_sets_the_namespace() {
        let files = [
            Manifest {
                rel: "kustomization.yaml",
                bytes: b"resources:\n- ./a.yaml\n- ../shared\nnamespace: team\n",
            },
            Manifest {
                rel: "a.yaml",
                bytes: b"apiVersion: v1\nkind: Service\nmetadata:\n  name: a\n",
            },
            Manifest {
                rel: "unlisted.yaml",
                bytes: b"apiVersion: v1\nkind: Service\nmetadata:\n  name: u\n",
            },
        ];
        let got = directory("./m", &files);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].name, "a");
        assert_eq!(got[0].namespace.as_deref(), Some("team"));
        assert_eq!(got[0].source, "`m/a.yaml`");
        // A kustomization that renames objects is not modelled.
        let renamed = [
            Manifest {
                rel: "kustomization.yaml",
                bytes: b"resources:\n- a.yaml\nnamePrefix: x-\n",
            },
            files[1],
        ];
        assert!(directory("m", &renamed).is_empty());
    }

    #[test]
    fn stdlib_templates_place_everything_in_the_deployments_namespace() {
        // `check` renders template apps only where another deployment shares
        // the namespace; that is exact only while no template sets a
        // namespace or holds a cluster-scoped kind.
        for name in crate::lower::STDLIB_TEMPLATES {
            let text = format!(
                r#"repo "https://github.com/acme/gitops.git"
site "lab" {{
    cluster "mgmt" server="in-cluster"
}}
stage "dev"
app "t" {{
    template "{name}" {{
        params {{
            {host}
            args "x"
            gpu 1
            env {{
                A "1"
            }}
        }}
    }}
    image "t" repository="ghcr.io/acme/t"
    deploy "dev" cluster="mgmt" namespace="t"
}}
"#,
                host = if *name == "web-service" {
                    "host \"t.example.com\""
                } else {
                    ""
                }
            );
            let mut diags = Diagnostics::default();
            let root = std::path::Path::new("/estate");
            let loaded = crate::load::load_sources(
                root,
                vec![("e.kdl".into(), root.join("e.kdl"), text)],
                &mut diags,
            );
            let estate = crate::lower::lower(&loaded, &mut diags).unwrap();
            let app = &estate.apps[0];
            let objects = template(app, &app.deployments[0]);
            assert!(objects.len() >= 2, "{name}: {objects:?}");
            for o in &objects {
                assert_eq!(o.namespace, None, "{name}: {o:?}");
                assert!(
                    !is_cluster_scoped(&estate, &o.group, &o.kind),
                    "{name}: {o:?}"
                );
            }
        }
    }
}
