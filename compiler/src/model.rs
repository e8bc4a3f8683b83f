//! The typed estate: what `lower` produces from the KDL and every later stage
//! reads. References between entities are resolved to indices here, so later
//! stages never look names up again. Every entity keeps the [`Loc`] of the node
//! that declared it, so any stage can point a diagnostic at the source.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use crate::diagnostic::Loc;
use crate::semver::Constraint;

/// A value and where it was written.
#[derive(Debug, Clone, PartialEq)]
pub struct Spanned<T> {
    pub value: T,
    pub loc: Loc,
}

impl<T> Spanned<T> {
    pub fn new(value: T, loc: Loc) -> Self {
        Spanned { value, loc }
    }
}

macro_rules! index_type {
    ($($name:ident),*) => {$(
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(pub u32);
        impl $name {
            pub fn index(self) -> usize { self.0 as usize }
        }
    )*};
}
index_type!(
    SiteId, ClusterId, RegistryId, PolicyId, StageId, AppId, ProjectId
);

#[derive(Debug, Clone)]
pub struct Estate {
    /// The estate directory; relative paths in the estate are relative to it.
    pub root: PathBuf,
    pub repo: Repo,
    pub image_updater: ImageUpdaterSettings,
    pub sites: Vec<Site>,
    pub clusters: Vec<Cluster>,
    pub registries: Vec<Registry>,
    pub policies: Vec<Policy>,
    pub stages: Vec<Stage>,
    pub projects: Vec<Project>,
    pub apps: Vec<App>,
    /// Tag snapshot files (JSON), relative to the estate directory.
    pub snapshots: Vec<Spanned<PathBuf>>,
}

impl Estate {
    pub fn site(&self, id: SiteId) -> &Site {
        &self.sites[id.index()]
    }
    pub fn cluster(&self, id: ClusterId) -> &Cluster {
        &self.clusters[id.index()]
    }
    pub fn registry(&self, id: RegistryId) -> &Registry {
        &self.registries[id.index()]
    }
    pub fn policy(&self, id: PolicyId) -> &Policy {
        &self.policies[id.index()]
    }
    pub fn stage(&self, id: StageId) -> &Stage {
        &self.stages[id.index()]
    }
    pub fn project(&self, id: ProjectId) -> &Project {
        &self.projects[id.index()]
    }
    pub fn app(&self, id: AppId) -> &App {
        &self.apps[id.index()]
    }

    /// The layout placeholders of one deployment of an app.
    pub(crate) fn deployment_vars<'a>(&'a self, app: &'a App, d: &Deployment) -> TemplateVars<'a> {
        let cluster = self.cluster(d.cluster.value);
        TemplateVars {
            site: &self.site(cluster.site).name.value,
            cluster: &cluster.name.value,
            app: &app.name.value,
            stage: &self.stage(d.stage.value).name.value,
        }
    }
}

/// The GitOps repository being generated.
#[derive(Debug, Clone)]
pub struct Repo {
    pub url: Spanned<String>,
    pub branch: String,
    /// Argo CD repository credentials, as a reference to a Secret (never a value).
    pub credentials: Option<Spanned<SecretRef>>,
    pub layout: Layout,
    pub loc: Loc,
}

/// Where each generated file goes. Every field is a path template.
#[derive(Debug, Clone)]
pub struct Layout {
    /// A site's root App of Apps file. Placeholders: `{site}`.
    pub root: PathTemplate,
    /// The directory a site's root watches (recursively). Placeholders: `{site}`.
    pub apps: PathTemplate,
    /// An Application file, relative to `apps`. Placeholders: `{site}`, `{cluster}`, `{app}`, `{stage}`.
    pub application: PathTemplate,
    /// An Application's name. Placeholders: `{site}`, `{cluster}`, `{app}`, `{stage}`.
    pub name: PathTemplate,
    /// An app's kustomize base. Placeholders: `{app}`.
    pub base: PathTemplate,
    /// An app's overlay for one stage. Placeholders: `{site}`, `{cluster}`, `{app}`, `{stage}`.
    pub overlay: PathTemplate,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Placeholder {
    Site,
    Cluster,
    App,
    Stage,
}

impl Placeholder {
    pub const ALL: &'static [Placeholder] = &[
        Placeholder::Site,
        Placeholder::Cluster,
        Placeholder::App,
        Placeholder::Stage,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Placeholder::Site => "site",
            Placeholder::Cluster => "cluster",
            Placeholder::App => "app",
            Placeholder::Stage => "stage",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplatePart {
    Literal(String),
    Placeholder(Placeholder),
}

/// A path (or name) with `{placeholder}`s, parsed and checked at lowering.
#[derive(Debug, Clone)]
pub struct PathTemplate {
    pub raw: String,
    pub parts: Vec<TemplatePart>,
    /// `None` for a default the user did not write.
    pub loc: Option<Loc>,
}

/// Values to substitute into a [`PathTemplate`].
#[derive(Debug, Clone, Copy, Default)]
pub struct TemplateVars<'a> {
    pub site: &'a str,
    pub cluster: &'a str,
    pub app: &'a str,
    pub stage: &'a str,
}

impl PathTemplate {
    pub fn render(&self, vars: &TemplateVars<'_>) -> String {
        let mut out = String::with_capacity(self.raw.len() + 16);
        for part in &self.parts {
            match part {
                TemplatePart::Literal(s) => out.push_str(s),
                TemplatePart::Placeholder(Placeholder::Site) => out.push_str(vars.site),
                TemplatePart::Placeholder(Placeholder::Cluster) => out.push_str(vars.cluster),
                TemplatePart::Placeholder(Placeholder::App) => out.push_str(vars.app),
                TemplatePart::Placeholder(Placeholder::Stage) => out.push_str(vars.stage),
            }
        }
        out
    }
}

/// Which Image Updater the estate targets, and how it is installed.
#[derive(Debug, Clone)]
pub struct ImageUpdaterSettings {
    pub version: Spanned<crate::semver::Version>,
    /// The `argocd-image-updater` Helm chart version.
    pub chart_version: String,
    /// How often Image Updater polls registries (its `--interval`).
    pub interval: Option<String>,
    pub loc: Option<Loc>,
}

#[derive(Debug, Clone)]
pub struct Site {
    pub name: Spanned<String>,
    /// The namespace Argo CD (and so every Application) lives in.
    pub argocd_namespace: String,
    pub clusters: Vec<ClusterId>,
    /// The cluster Argo CD runs on. Always set after lowering succeeds.
    pub management: Option<ClusterId>,
    pub loc: Loc,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Server {
    /// The cluster Argo CD runs on: `https://kubernetes.default.svc`.
    InCluster,
    Url(String),
}

impl Server {
    pub(crate) const IN_CLUSTER_URL: &'static str = "https://kubernetes.default.svc";

    pub fn url(&self) -> &str {
        match self {
            Server::InCluster => Self::IN_CLUSTER_URL,
            Server::Url(u) => u,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClusterRole {
    Management,
    Workload,
}

#[derive(Debug, Clone)]
pub struct Cluster {
    pub name: Spanned<String>,
    pub site: SiteId,
    pub server: Server,
    /// The name the cluster is registered under in Argo CD, when not its own.
    pub argocd_name: Option<String>,
    pub role: ClusterRole,
    pub labels: BTreeMap<String, String>,
    pub loc: Loc,
}

/// A credentials reference in one of Image Updater's forms. Never a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialRef {
    /// `pullsecret:<namespace>/<name>`: a docker-registry pull secret.
    PullSecret { namespace: String, name: String },
    /// `secret:<namespace>/<name>#<field>`: one field of a generic secret.
    Secret {
        namespace: String,
        name: String,
        field: String,
    },
    /// `env:<VAR>`: an environment variable of the Image Updater pod.
    Env(String),
    /// `ext:<absolute path>`: a script in the Image Updater pod.
    Ext(String),
}

impl fmt::Display for CredentialRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CredentialRef::PullSecret { namespace, name } => {
                write!(f, "pullsecret:{namespace}/{name}")
            }
            CredentialRef::Secret {
                namespace,
                name,
                field,
            } => {
                write!(f, "secret:{namespace}/{name}#{field}")
            }
            CredentialRef::Env(v) => write!(f, "env:{v}"),
            CredentialRef::Ext(p) => write!(f, "ext:{p}"),
        }
    }
}

/// A reference to a Kubernetes Secret by name (in the Argo CD namespace
/// unless given), for Argo CD repository credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretRef {
    pub namespace: Option<String>,
    pub name: String,
}

#[derive(Debug, Clone)]
pub struct Registry {
    pub name: Spanned<String>,
    /// The image-reference prefix this registry serves, e.g. `ghcr.io`.
    pub prefix: Spanned<String>,
    pub api_url: String,
    pub credentials: Option<Spanned<CredentialRef>>,
    pub credentials_expire: Option<String>,
    pub default_namespace: Option<String>,
    /// Requests per second (Image Updater's default is 20).
    pub rate_limit: Option<u32>,
    pub insecure: bool,
    /// Use this registry for images without a registry part.
    pub default: bool,
    pub loc: Loc,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicySource {
    /// `stdlib:NAME`, a policy keelson ships.
    Stdlib(String),
    /// A `.wasm` module, relative to the estate directory.
    Path(PathBuf),
}

/// A blake3 hash, 32 bytes, as 64 lowercase hex digits.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Blake3Pin(pub String);

#[derive(Debug, Clone)]
pub struct Policy {
    pub name: Spanned<String>,
    pub source: Spanned<PolicySource>,
    pub pin: Option<Spanned<Blake3Pin>>,
    pub params: serde_json::Map<String, serde_json::Value>,
    pub loc: Loc,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteBack {
    /// Image Updater commits to the branch the Application tracks.
    Git {
        branch: Option<String>,
        credentials: Option<String>,
    },
    /// Image Updater opens a pull (or merge) request.
    PullRequest {
        provider: GitProvider,
        branch: Option<String>,
        credentials: Option<String>,
    },
    /// Image Updater patches the live Application; nothing is committed.
    Argocd,
    /// keelson alone decides; no ImageUpdater resource is emitted.
    Pinned,
}

impl WriteBack {
    pub fn name(&self) -> &'static str {
        match self {
            WriteBack::Git { .. } => "git",
            WriteBack::PullRequest { .. } => "pull-request",
            WriteBack::Argocd => "argocd",
            WriteBack::Pinned => "pinned",
        }
    }

    /// Whether Image Updater commits this stage's updates to git (directly
    /// or through a pull request).
    pub fn commits(&self) -> bool {
        matches!(self, WriteBack::Git { .. } | WriteBack::PullRequest { .. })
    }

    /// Whether Image Updater changes this stage's images in-cluster.
    pub(crate) fn is_live(&self) -> bool {
        !matches!(self, WriteBack::Pinned)
    }
}

/// Which file Image Updater's git write-back edits (`writeBackTarget`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetKind {
    /// `kustomization[:DIR]`: the `images:` of the kustomization in a directory.
    Kustomization,
    /// `helmvalues[:FILE]`: image keys in a Helm values file.
    HelmValues,
}

impl TargetKind {
    pub fn name(self) -> &'static str {
        match self {
            TargetKind::Kustomization => "kustomization",
            TargetKind::HelmValues => "helmvalues",
        }
    }
}

/// A `writeBackTarget`, as written: `kustomization`, `kustomization:PATH`,
/// `helmvalues` or `helmvalues:PATH`. A `PATH` starting with `/` is from the
/// repository root; any other is joined onto the Application's source path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteBackTarget {
    pub kind: TargetKind,
    pub path: Option<String>,
}

impl WriteBackTarget {
    /// The repository path Image Updater edits for an Application whose
    /// source path is `source` (relative to the repository root): the
    /// directory of the kustomization, or the values file. As Image Updater
    /// resolves it (`parseKustomizeBase`, `parseTarget`): `/PATH` is
    /// repository-relative, anything else is joined onto `source`, and
    /// `helmvalues` alone is `values.yaml` there. `None` when the path leaves
    /// the repository. Normalised like a [`crate::tree::TreePath`]: no `.`,
    /// no empty segments; the repository root is `""`.
    pub(crate) fn resolve(&self, source: &str) -> Option<String> {
        let joined = match (self.kind, self.path.as_deref()) {
            (_, Some(p)) if p.starts_with('/') => p[1..].to_string(),
            (TargetKind::Kustomization, None) => source.to_string(),
            (TargetKind::HelmValues, None) => format!("{source}/values.yaml"),
            (_, Some(p)) => format!("{source}/{p}"),
        };
        let mut parts: Vec<&str> = Vec::new();
        for seg in joined.split('/') {
            match seg {
                "" | "." => {}
                ".." => {
                    parts.pop()?;
                }
                s => parts.push(s),
            }
        }
        Some(parts.join("/"))
    }
}

impl fmt::Display for WriteBackTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.path {
            Some(p) => write!(f, "{}:{p}", self.kind.name()),
            None => f.write_str(self.kind.name()),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GitProvider {
    Github,
    Gitlab,
}

#[derive(Debug, Clone)]
pub enum StageSource {
    /// Images come from the registry: strategy, filters and filter policies.
    Registry { filters: Vec<Spanned<PolicyId>> },
    /// Images come from an upstream stage, through gate policies.
    Promotion {
        from: Spanned<StageId>,
        gates: Vec<Spanned<PolicyId>>,
    },
}

#[derive(Debug, Clone)]
pub struct Stage {
    pub name: Spanned<String>,
    pub source: StageSource,
    pub write_back: Spanned<WriteBack>,
    pub loc: Loc,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct GroupKind {
    pub group: String,
    pub kind: String,
}

#[derive(Debug, Clone)]
pub struct Project {
    pub name: Spanned<String>,
    pub description: Option<String>,
    /// Extra source repositories beyond the generated repo and the charts used.
    pub source_repos: Vec<String>,
    pub cluster_resource_whitelist: Vec<GroupKind>,
    pub namespace_resource_blacklist: Vec<GroupKind>,
    pub loc: Loc,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    Semver,
    NewestBuild,
    Alphabetical,
    Digest,
}

impl Strategy {
    pub(crate) const NAMES: &'static [&'static str] =
        &["semver", "newest-build", "alphabetical", "digest"];

    /// Reads a strategy name as Image Updater does: lower-cased first, with
    /// `latest` and `name` as the old names of `newest-build` and
    /// `alphabetical` (`deprecated` is then true). `None` for any other name.
    /// The one parser of strategy names: the estate and the CLI both use it.
    pub fn parse(name: &str) -> Option<ParsedStrategy> {
        let (strategy, deprecated) = match name.to_ascii_lowercase().as_str() {
            "semver" => (Strategy::Semver, false),
            "newest-build" => (Strategy::NewestBuild, false),
            "alphabetical" => (Strategy::Alphabetical, false),
            "digest" => (Strategy::Digest, false),
            "latest" => (Strategy::NewestBuild, true),
            "name" => (Strategy::Alphabetical, true),
            _ => return None,
        };
        Some(ParsedStrategy {
            strategy,
            deprecated,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Strategy::Semver => "semver",
            Strategy::NewestBuild => "newest-build",
            Strategy::Alphabetical => "alphabetical",
            Strategy::Digest => "digest",
        }
    }
}

/// A strategy name, read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParsedStrategy {
    pub strategy: Strategy,
    /// The name was an old one (`latest`, `name`), still read by Image Updater.
    pub deprecated: bool,
}

/// `allowTags` as Image Updater reads it.
#[derive(Debug, Clone)]
pub enum AllowTags {
    Any,
    Regexp(regex::Regex),
    /// What Image Updater reads as a filter that allows no tag: a value with
    /// no `regexp:` function, or a regexp that does not compile (kept verbatim).
    Nothing(String),
}

/// Why an `allowTags` value allows no tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowProblem {
    /// `regexp:` with an expression that does not compile.
    BadRegex { expr: String, why: String },
    /// No `regexp:` function (a bare regex, or an unknown function).
    NoFunction,
}

impl AllowTags {
    /// Reads a value as Image Updater's `ParseMatch` does. A value it reads
    /// as allowing nothing is `Nothing`, with why.
    pub fn parse(v: &str) -> (AllowTags, Option<AllowProblem>) {
        if v.is_empty() || v.eq_ignore_ascii_case("any") {
            return (AllowTags::Any, None);
        }
        let problem = match v.split_once(':') {
            Some((f, re)) if f.eq_ignore_ascii_case("regexp") => match regex::Regex::new(re) {
                Ok(r) => return (AllowTags::Regexp(r), None),
                Err(e) => AllowProblem::BadRegex {
                    expr: re.to_string(),
                    // The last line of regex's report is the cause.
                    why: e
                        .to_string()
                        .lines()
                        .last()
                        .unwrap_or("")
                        .trim()
                        .trim_start_matches("error:")
                        .trim()
                        .to_string(),
                },
            },
            _ => AllowProblem::NoFunction,
        };
        (AllowTags::Nothing(v.to_string()), Some(problem))
    }
}

#[derive(Debug, Clone)]
pub enum ImageTarget {
    /// The kustomize `images[].name` the manifests use, when it is not the repository.
    Kustomize { name: Option<String> },
    /// Dotted Helm value paths.
    Helm {
        name: String,
        tag: String,
        spec: Option<String>,
    },
}

/// An image reference without tag: `[registry/]path`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ImageRepo(pub String);

impl ImageRepo {
    /// The registry host part, when the first segment looks like one (as
    /// Docker's reference grammar decides: it has a `.` or `:`, or is `localhost`).
    pub(crate) fn registry_host(&self) -> Option<&str> {
        let (first, _) = self.0.split_once('/')?;
        (first.contains('.') || first.contains(':') || first == "localhost").then_some(first)
    }
}

#[derive(Debug, Clone)]
pub struct Image {
    pub alias: Spanned<String>,
    pub repository: Spanned<ImageRepo>,
    pub registry: Option<RegistryId>,
    pub strategy: Spanned<Strategy>,
    /// For `semver`, the constraint; for `digest`, the tracked tag.
    pub constraint: Option<Spanned<String>>,
    pub semver_constraint: Option<Constraint>,
    pub allow_tags: Option<Spanned<AllowTags>>,
    pub ignore_tags: Vec<Spanned<String>>,
    pub platforms: Vec<Spanned<String>>,
    pub filters: Vec<Spanned<PolicyId>>,
    pub target: ImageTarget,
    pub loc: Loc,
}

impl Image {
    /// The kustomize `images[].name` this image is known by in the manifests.
    pub(crate) fn kustomize_name(&self) -> &str {
        match &self.target {
            ImageTarget::Kustomize { name: Some(n) } => n,
            _ => &self.repository.value.0,
        }
    }
}

#[derive(Debug, Clone)]
pub enum Manifests {
    /// A directory of plain YAML (wrapped in a kustomization when emitted).
    Directory(Spanned<PathBuf>),
    /// A stdlib template, rendered with parameters.
    Template {
        name: Spanned<String>,
        params: serde_json::Map<String, serde_json::Value>,
    },
    /// A Helm chart from a chart repository.
    Chart {
        name: Spanned<String>,
        repo: Spanned<String>,
        version: String,
        values: Option<Spanned<String>>,
        values_file: Option<Spanned<PathBuf>>,
    },
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Retry {
    pub limit: Option<i64>,
    pub backoff_duration: Option<String>,
    pub backoff_factor: Option<i64>,
    pub backoff_max_duration: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SyncPolicy {
    pub automated: bool,
    pub prune: bool,
    pub self_heal: bool,
    pub allow_empty: bool,
    pub options: Vec<String>,
    pub retry: Option<Retry>,
}

impl Default for SyncPolicy {
    /// What seeds 000 and 004 run: automated, prune, self-heal, and namespaces
    /// created on demand.
    fn default() -> Self {
        SyncPolicy {
            automated: true,
            prune: true,
            self_heal: true,
            allow_empty: false,
            options: vec!["CreateNamespace=true".into()],
            retry: None,
        }
    }
}

/// A manual image pin in a deployment: overrides every strategy and policy.
#[derive(Debug, Clone)]
pub struct Pin {
    pub image: usize,
    pub tag: Option<String>,
    pub digest: Option<String>,
    pub loc: Loc,
}

#[derive(Debug, Clone)]
pub struct Deployment {
    pub stage: Spanned<StageId>,
    pub cluster: Spanned<ClusterId>,
    pub namespace: Spanned<String>,
    pub replicas: Option<u32>,
    pub sync: SyncPolicy,
    pub pins: Vec<Pin>,
    /// Helm values merged over the app's for this stage (YAML text).
    pub values: Option<Spanned<String>>,
    /// Template parameters merged over the app's for this stage.
    pub params: serde_json::Map<String, serde_json::Value>,
    /// Where Image Updater writes this stage's updates, when not the app's
    /// (or the default, the overlay's kustomization).
    pub write_back_target: Option<Spanned<WriteBackTarget>>,
    pub loc: Loc,
}

/// Which AppProject an app's Applications belong to.
#[derive(Debug, Clone, PartialEq)]
pub enum ProjectRef {
    /// No `project=`: keelson derives a least-privilege AppProject named
    /// after the app, allowing only its own destinations and sources.
    Derived,
    /// `project="default"`: Argo CD's built-in project; nothing is emitted.
    Default(Loc),
    /// A `project` the estate declares.
    Declared(Spanned<ProjectId>),
}

#[derive(Debug, Clone)]
pub struct App {
    pub name: Spanned<String>,
    pub project: ProjectRef,
    pub manifests: Manifests,
    pub images: Vec<Image>,
    pub deployments: Vec<Deployment>,
    /// Every stage a `deploy` node names, including deployments that failed
    /// to lower (so one mistake is not reported again as a missing stage).
    pub deploy_stages: Vec<StageId>,
    pub depends_on: Vec<Spanned<AppId>>,
    /// Where Image Updater writes updates in the app's git-written stages,
    /// unless a deployment says otherwise.
    pub write_back_target: Option<Spanned<WriteBackTarget>>,
    pub loc: Loc,
}

impl App {
    /// The write-back target a deployment of the app states: its own, else
    /// the app's. `None`: Image Updater's `kustomization` (the overlay).
    pub(crate) fn write_back_target<'a>(
        &'a self,
        d: &'a Deployment,
    ) -> Option<&'a Spanned<WriteBackTarget>> {
        d.write_back_target
            .as_ref()
            .or(self.write_back_target.as_ref())
    }
}
