//! Stage 2: lower parsed KDL into the typed [`Estate`], validating as we go.
//!
//! Lowering never stops at the first problem. It works in two passes over all
//! files together: first it declares every named thing (so references may point
//! forwards and across files), then it lowers bodies and resolves references.
//! Anything wrong becomes a diagnostic and the offending piece is left out or
//! given a placeholder, so later checks (the graph's cycle check, layout
//! collisions) still run and one `keelson check` reports everything.
//!
//! **Architecture invariant:** this module does no I/O. Checks that need the
//! filesystem (do the manifest directories exist?) live in [`crate::check`].

mod read;
use crate::rules;

use std::collections::{BTreeMap, HashMap};
use std::path::{Component, Path, PathBuf};

use kdl::{KdlNode, KdlValue};

use crate::diagnostic::{Code, Diagnostic, Diagnostics, FileId, Label, Loc};
use crate::load::Loaded;
use crate::model::*;
use crate::semver::{Constraint, Version};
use read::{Cx, Shape, code_list, params_to_json, suggest, suggest_owned};

/// Top-level node names, in the order the book documents them.
pub const TOP_LEVEL: &[&str] = &[
    "repo",
    "image-updater",
    "site",
    "registry",
    "policy",
    "stage",
    "project",
    "app",
    "snapshot",
];

/// Standard policies shipped in `stdlib/`, usable as `stdlib:NAME`.
pub const STDLIB_POLICIES: &[&str] = &[
    "deny-mutable-tags",
    "no-prerelease",
    "soak-time",
    "deploy-window",
    "same-digest",
    "no-major-jump",
];

/// Standard manifest templates, usable as `template "NAME"`.
pub const STDLIB_TEMPLATES: &[&str] = &["web-service", "worker"];

/// The Image Updater release an estate targets when it does not say.
pub const DEFAULT_IMAGE_UPDATER: &str = "1.0.1";
/// The `argocd-image-updater` chart that ships [`DEFAULT_IMAGE_UPDATER`].
pub const DEFAULT_IMAGE_UPDATER_CHART: &str = "1.0.1";

/// Argo CD sync options (`syncPolicy.syncOptions`) as of v3.5.
pub const SYNC_OPTIONS: &[&str] = &[
    "CreateNamespace",
    "PruneLast",
    "ServerSideApply",
    "ApplyOutOfSyncOnly",
    "RespectIgnoreDifferences",
    "Prune",
    "Replace",
    "SkipDryRunOnMissingResource",
    "PrunePropagationPolicy",
    "Validate",
    "FailOnSharedResource",
    "Delete",
    "ClientSideApplyMigration",
];

/// Application names keelson itself uses in every site's Argo CD namespace.
pub const RESERVED_APP_NAMES: &[&str] = &["root", "argocd-image-updater"];

/// Lowers every parsed file into one estate. Returns `None` only when no file
/// could be parsed at all.
pub fn lower(loaded: &Loaded, diags: &mut Diagnostics) -> Option<Estate> {
    let first_file = loaded.files.first()?.file;
    let mut l = Lowerer {
        diags,
        decls: Decls::default(),
    };
    l.collect(loaded);
    let estate = l.lower_estate(loaded, first_file);
    note_skipped_files(loaded, diags);
    Some(estate)
}

/// Files with syntax errors are left out of lowering, so what they define is
/// missing. Rather than hide those follow-on errors, each says so.
fn note_skipped_files(loaded: &Loaded, diags: &mut Diagnostics) {
    let skipped: Vec<&str> = loaded
        .sources
        .iter()
        .filter(|(id, _)| !loaded.files.iter().any(|f| f.file == *id))
        .map(|(_, f)| f.name.as_str())
        .collect();
    if skipped.is_empty() {
        return;
    }
    let names = code_list(skipped.iter());
    for d in diags.iter_mut() {
        let follow_on = matches!(
            d.code,
            Code::UnknownSite
                | Code::UnknownCluster
                | Code::UnknownRegistry
                | Code::UnknownPolicy
                | Code::UnknownStage
                | Code::UnknownApp
                | Code::UnknownProject
        ) || (d.code == Code::MissingValue
            && d.message == "the estate has no `repo`");
        if follow_on {
            let help = d.help.take().unwrap_or_default();
            d.help = Some(format!(
                "{help} (note: {names} could not be parsed and was skipped; it may define this)"
            ));
        }
    }
}

#[derive(Default)]
struct Decls<'a> {
    repo: Vec<(FileId, &'a KdlNode)>,
    image_updater: Vec<(FileId, &'a KdlNode)>,
    sites: Vec<(FileId, &'a KdlNode)>,
    registries: Vec<(FileId, &'a KdlNode)>,
    policies: Vec<(FileId, &'a KdlNode)>,
    stages: Vec<(FileId, &'a KdlNode)>,
    projects: Vec<(FileId, &'a KdlNode)>,
    apps: Vec<(FileId, &'a KdlNode)>,
    snapshots: Vec<(FileId, &'a KdlNode)>,
}

struct Lowerer<'a, 'd> {
    diags: &'d mut Diagnostics,
    decls: Decls<'a>,
}

/// Name → id, with where the name was declared.
struct Names<Id> {
    map: HashMap<String, (Id, Loc)>,
}

impl<Id: Copy> Names<Id> {
    fn new() -> Self {
        Names {
            map: HashMap::new(),
        }
    }

    fn get(&self, name: &str) -> Option<Id> {
        self.map.get(name).map(|(id, _)| *id)
    }

    fn suggest(&self, name: &str) -> Option<&str> {
        let mut keys: Vec<&str> = self.map.keys().map(String::as_str).collect();
        keys.sort_unstable();
        suggest_owned(name, keys.into_iter())
    }

    fn list(&self) -> String {
        let mut keys: Vec<&str> = self.map.keys().map(String::as_str).collect();
        keys.sort_unstable();
        if keys.is_empty() {
            return "none is defined".into();
        }
        let shown = code_list(keys.iter().take(8));
        let more = if keys.len() > 8 {
            format!(" and {} more", keys.len() - 8)
        } else {
            String::new()
        };
        format!("defined: {shown}{more}")
    }
}

impl<'a> Lowerer<'a, '_> {
    fn cx(&mut self, file: FileId) -> Cx<'_> {
        Cx {
            file,
            diags: self.diags,
        }
    }

    /// Sorts top-level nodes by kind and reports unknown ones.
    fn collect(&mut self, loaded: &'a Loaded) {
        for parsed in &loaded.files {
            for node in parsed.doc.nodes() {
                let file = parsed.file;
                let list = match node.name().value() {
                    "repo" => &mut self.decls.repo,
                    "image-updater" => &mut self.decls.image_updater,
                    "site" => &mut self.decls.sites,
                    "registry" => &mut self.decls.registries,
                    "policy" => &mut self.decls.policies,
                    "stage" => &mut self.decls.stages,
                    "project" => &mut self.decls.projects,
                    "app" => &mut self.decls.apps,
                    "snapshot" => &mut self.decls.snapshots,
                    other => {
                        let mut cx = Cx {
                            file,
                            diags: self.diags,
                        };
                        let loc = cx.name_loc(node);
                        let help = match suggest(other, TOP_LEVEL) {
                            Some(s) => format!("did you mean `{s}`?"),
                            None => {
                                format!("an estate is made of: {}", code_list(TOP_LEVEL.iter()))
                            }
                        };
                        cx.error(Code::UnknownNode, loc, format!("unknown node `{other}`"))
                            .help = Some(help);
                        continue;
                    }
                };
                list.push((file, node));
            }
            self.scan_secrets(parsed.file, parsed.doc.nodes());
        }
    }

    fn lower_estate(&mut self, loaded: &Loaded, first_file: FileId) -> Estate {
        let repo = self.lower_repo(first_file);
        let image_updater = self.lower_image_updater();
        let (sites, clusters, site_names) = self.lower_sites();
        let (registries, registry_names) = self.lower_registries();
        let (policies, policy_names) = self.lower_policies();
        let (stages, stage_names) = self.lower_stages(&policy_names, &image_updater);
        let (projects, project_names) = self.lower_projects();
        let mut estate = Estate {
            root: loaded.root.clone(),
            repo,
            image_updater,
            sites,
            clusters,
            registries,
            policies,
            stages,
            projects,
            apps: Vec::new(),
            snapshots: self.lower_snapshots(),
        };
        let names = AllNames {
            sites: &site_names,
            registries: &registry_names,
            policies: &policy_names,
            stages: &stage_names,
            projects: &project_names,
        };
        estate.apps = self.lower_apps(&estate, &names);
        self.check_promotion_sources(&estate);
        self.check_chart_write_back(&estate);
        self.check_derived_projects(&estate);
        self.check_layout(&estate);
        estate
    }

    // ---- repo -----------------------------------------------------------

    fn lower_repo(&mut self, first_file: FileId) -> Repo {
        let decls = std::mem::take(&mut self.decls.repo);
        for &(file, extra) in decls.iter().skip(1) {
            let (first_file_id, first) = decls[0];
            let first_loc = Loc::new(first_file_id, first.name().span());
            let mut cx = self.cx(file);
            let loc = cx.name_loc(extra);
            let d = cx.error(
                Code::DuplicateNode,
                loc,
                "the estate has more than one `repo`",
            );
            d.secondary.push(Label {
                loc: first_loc,
                text: Some("first `repo` here".into()),
            });
            d.help = Some("an estate generates one GitOps repository; keep one `repo`".into());
        }
        let Some(&(file, node)) = decls.first() else {
            let loc = Loc {
                file: first_file,
                offset: 0,
                len: 0,
            };
            self.diags.push(
                Diagnostic::error(Code::MissingValue, loc, "the estate has no `repo`")
                    .with_help("add the GitOps repository to generate: `repo \"https://github.com/acme/gitops.git\" branch=\"main\"`"),
            );
            return Repo {
                url: Spanned::new(String::new(), loc),
                branch: "main".into(),
                credentials: None,
                layout: default_layout(),
                loc,
            };
        };
        let mut cx = self.cx(file);
        cx.check_shape(
            node,
            "`repo`",
            &Shape {
                args: 1,
                props: &["branch", "credentials"],
                children: Some(&["layout"]),
            },
        );
        let loc = cx.node_loc(node);
        let url = cx
            .req_arg_str(
                node,
                0,
                "the repository URL",
                "\"https://github.com/acme/gitops.git\"",
            )
            .unwrap_or_else(|| Spanned::new(String::new(), loc));
        if !url.value.is_empty() {
            if let Err(why) = rules::git_url(&url.value) {
                cx.error(
                    Code::InvalidUrl,
                    url.loc,
                    format!("`{}` is not a git repository URL: {why}", url.value),
                )
                .help = Some("write an `https://…`, `ssh://…` or `git@host:path` URL".into());
            }
        }
        let branch = match cx.prop_str(node, "branch") {
            Some(b) if b.value.trim().is_empty() || b.value.contains(char::is_whitespace) => {
                cx.error(Code::InvalidValue, b.loc, "`branch` must be a branch name")
                    .help = Some("write e.g. `branch=\"main\"`".into());
                "main".to_string()
            }
            Some(b) => b.value,
            None => "main".to_string(),
        };
        let credentials = cx.prop_str(node, "credentials").and_then(|c| {
            let parsed = parse_secret_ref(&c.value);
            if parsed.is_none() {
                cx.error(
                    Code::InvalidCredentials,
                    c.loc,
                    format!("`{}` is not the name of a Secret", c.value),
                )
                .help = Some("name the Argo CD repository Secret: `credentials=\"gitops-repo\"` or `\"argocd/gitops-repo\"`".into());
            }
            parsed.map(|p| Spanned::new(p, c.loc))
        });
        let layout = match cx.single_child(node, "layout") {
            Some(layout) => lower_layout(&mut cx, layout),
            None => default_layout(),
        };
        Repo {
            url,
            branch,
            credentials,
            layout,
            loc,
        }
    }

    fn lower_image_updater(&mut self) -> ImageUpdaterSettings {
        let decls = std::mem::take(&mut self.decls.image_updater);
        let default_version = Version::parse(DEFAULT_IMAGE_UPDATER).expect("valid default");
        for &(file, extra) in decls.iter().skip(1) {
            let mut cx = self.cx(file);
            let loc = cx.name_loc(extra);
            cx.error(
                Code::DuplicateNode,
                loc,
                "the estate has more than one `image-updater`",
            )
            .help = Some("keep one `image-updater`".into());
        }
        let Some(&(file, node)) = decls.first() else {
            return ImageUpdaterSettings {
                version: Spanned::new(
                    default_version,
                    Loc {
                        file: FileId(0),
                        offset: 0,
                        len: 0,
                    },
                ),
                chart_version: DEFAULT_IMAGE_UPDATER_CHART.into(),
                interval: None,
                loc: None,
            };
        };
        let mut cx = self.cx(file);
        cx.check_shape(
            node,
            "`image-updater`",
            &Shape {
                args: 0,
                props: &["version", "chart-version", "interval"],
                children: Some(&[]),
            },
        );
        let loc = cx.node_loc(node);
        let version = match cx.prop_str(node, "version") {
            Some(v) => match Version::parse(v.value.trim_start_matches('v')) {
                Ok(parsed) if parsed.major == 1 && parsed.pre.is_empty() => {
                    Spanned::new(parsed, v.loc)
                }
                Ok(_) => {
                    cx.error(Code::UnsupportedVersion, v.loc, format!("Image Updater {} is not supported", v.value))
                        .help = Some("keelson targets the `ImageUpdater` resource of Image Updater 1.x: write e.g. `version=\"1.3.0\"`".into());
                    Spanned::new(default_version, v.loc)
                }
                Err(_) => {
                    cx.error(
                        Code::InvalidValue,
                        v.loc,
                        format!("`{}` is not a version", v.value),
                    )
                    .help = Some("write a release such as `version=\"1.3.0\"`".into());
                    Spanned::new(default_version, v.loc)
                }
            },
            None => Spanned::new(default_version, loc),
        };
        let chart_version = match cx.prop_str(node, "chart-version") {
            Some(v) => {
                if Version::parse(&v.value).is_err() {
                    cx.error(Code::InvalidValue, v.loc, format!("`{}` is not a chart version", v.value)).help =
                        Some("write the `argocd-image-updater` chart's version, e.g. `chart-version=\"1.0.1\"`".into());
                }
                v.value
            }
            None => DEFAULT_IMAGE_UPDATER_CHART.into(),
        };
        let interval = duration_prop(&mut cx, node, "interval");
        ImageUpdaterSettings {
            version,
            chart_version,
            interval,
            loc: Some(loc),
        }
    }

    // ---- sites and clusters ----------------------------------------------

    fn lower_sites(&mut self) -> (Vec<Site>, Vec<Cluster>, Names<SiteId>) {
        let decls = std::mem::take(&mut self.decls.sites);
        let mut sites = Vec::new();
        let mut clusters: Vec<Cluster> = Vec::new();
        let mut names = Names::new();
        for (file, node) in decls {
            let mut cx = self.cx(file);
            cx.check_shape(
                node,
                "`site`",
                &Shape {
                    args: 1,
                    props: &["argocd-namespace"],
                    children: Some(&["cluster"]),
                },
            );
            let Some(name) = declare_name(
                &mut cx,
                node,
                "site",
                "a site name",
                "\"home-lab\"",
                &mut names,
                SiteId(sites.len() as u32),
            ) else {
                continue;
            };
            let site_id = SiteId(sites.len() as u32);
            let argocd_namespace = match cx.prop_str(node, "argocd-namespace") {
                Some(ns) => {
                    check_dns_label(&mut cx, &ns, "a namespace");
                    ns.value
                }
                None => "argocd".to_string(),
            };
            let mut site_clusters = Vec::new();
            let mut cluster_names: Names<ClusterId> = Names::new();
            for cnode in cx.children(node, "cluster").collect::<Vec<_>>() {
                cx.check_shape(
                    cnode,
                    "`cluster`",
                    &Shape {
                        args: 1,
                        props: &["server", "role", "argocd-name"],
                        children: Some(&["labels"]),
                    },
                );
                let id = ClusterId(clusters.len() as u32);
                let Some(cname) = declare_name(
                    &mut cx,
                    cnode,
                    "cluster",
                    "a cluster name",
                    "\"k3s\"",
                    &mut cluster_names,
                    id,
                ) else {
                    continue;
                };
                let server = match cx.req_prop_str(cnode, "server", "\"in-cluster\"") {
                    Some(s) if s.value == "in-cluster" || s.value == Server::IN_CLUSTER_URL => {
                        Server::InCluster
                    }
                    Some(s) => {
                        if let Err(why) = rules::url(&s.value, &["https", "http"]) {
                            cx.error(Code::InvalidUrl, s.loc, format!("`{}` is not a Kubernetes API URL: {why}", s.value))
                                .help = Some("write `server=\"in-cluster\"` for the cluster Argo CD runs on, or its API URL, e.g. `server=\"https://10.0.0.5:6443\"`".into());
                        }
                        Server::Url(s.value)
                    }
                    None => Server::InCluster,
                };
                let role = match cx.prop_str(cnode, "role") {
                    Some(r) => match r.value.as_str() {
                        "management" => ClusterRole::Management,
                        "workload" => ClusterRole::Workload,
                        other => {
                            let help = suggest(other, &["management", "workload"]).map_or(
                                "write `role=\"management\"` or `role=\"workload\"`".to_string(),
                                |s| format!("did you mean `{s}`?"),
                            );
                            cx.error(
                                Code::InvalidValue,
                                r.loc,
                                format!("unknown cluster role `{other}`"),
                            )
                            .help = Some(help);
                            ClusterRole::Workload
                        }
                    },
                    None if server == Server::InCluster => ClusterRole::Management,
                    None => ClusterRole::Workload,
                };
                if role == ClusterRole::Management && server != Server::InCluster {
                    let loc = cx.node_loc(cnode);
                    cx.warning(Code::ManagementCluster, loc, "the management cluster is addressed by URL").help =
                        Some("Argo CD reaches its own cluster as `in-cluster`; write `server=\"in-cluster\"` unless you registered it by URL".into());
                }
                let argocd_name = cx.prop_str(cnode, "argocd-name").map(|n| n.value);
                let mut labels = BTreeMap::new();
                for lnode in cx.children(cnode, "labels").collect::<Vec<_>>() {
                    cx.check_shape(
                        lnode,
                        "`labels`",
                        &Shape {
                            args: 0,
                            props: read::ANY_PROPS,
                            children: Some(&[]),
                        },
                    );
                    if lnode.entries().iter().all(|e| e.name().is_none()) {
                        let ll = cx.name_loc(lnode);
                        cx.warning(Code::MissingValue, ll, "`labels` has no labels")
                            .help =
                            Some("write them as properties: `labels role=\"gitops\"`".into());
                    }
                    for e in lnode.entries() {
                        if let Some(k) = e.name() {
                            let key = k.value().to_string();
                            if let Err(why) = rules::label_key(&key) {
                                let el = cx.loc(e.span());
                                cx.error(Code::InvalidName, el, format!("`{key}` is not a valid label key: {why}")).help =
                                    Some("label keys are `[prefix/]name`, the name up to 63 letters, digits, `-`, `_` and `.`".into());
                            }
                            if let Some(v) = cx.entry_str(e, &format!("the label `{key}`")) {
                                labels.insert(key, v.value);
                            }
                        }
                    }
                }
                let loc = cx.node_loc(cnode);
                clusters.push(Cluster {
                    name: cname,
                    site: site_id,
                    server,
                    argocd_name,
                    role,
                    labels,
                    loc,
                });
                site_clusters.push(id);
            }
            let loc = cx.node_loc(node);
            let managements: Vec<ClusterId> = site_clusters
                .iter()
                .copied()
                .filter(|c| clusters[c.index()].role == ClusterRole::Management)
                .collect();
            let management = match managements.as_slice() {
                [one] => Some(*one),
                [] => {
                    cx.error(
                        Code::ManagementCluster,
                        cx.name_loc(node),
                        format!("site `{}` has no management cluster", name.value),
                    )
                    .help = Some(
                        "add the cluster Argo CD runs on: `cluster \"mgmt\" server=\"in-cluster\"`"
                            .into(),
                    );
                    None
                }
                [first, rest @ ..] => {
                    for extra in rest {
                        let d = cx.error(
                            Code::ManagementCluster,
                            clusters[extra.index()].name.loc,
                            format!("site `{}` has more than one management cluster", name.value),
                        );
                        d.secondary.push(Label {
                            loc: clusters[first.index()].name.loc,
                            text: Some("the first one".into()),
                        });
                        d.help = Some(
                            "a site is one Argo CD instance; mark the others `role=\"workload\"`"
                                .into(),
                        );
                    }
                    Some(*first)
                }
            };
            sites.push(Site {
                name,
                argocd_namespace,
                clusters: site_clusters,
                management,
                loc,
            });
        }
        (sites, clusters, names)
    }

    // ---- registries --------------------------------------------------------

    fn lower_registries(&mut self) -> (Vec<Registry>, Names<RegistryId>) {
        let decls = std::mem::take(&mut self.decls.registries);
        let mut out: Vec<Registry> = Vec::new();
        let mut names = Names::new();
        let mut prefixes: HashMap<String, Loc> = HashMap::new();
        for (file, node) in decls {
            let mut cx = self.cx(file);
            cx.check_shape(
                node,
                "`registry`",
                &Shape {
                    args: 1,
                    props: &[
                        "prefix",
                        "api-url",
                        "credentials",
                        "credentials-expire",
                        "default-namespace",
                        "rate-limit",
                        "insecure",
                        "default",
                    ],
                    children: Some(&[]),
                },
            );
            let Some(name) = declare_name(
                &mut cx,
                node,
                "registry",
                "a registry name",
                "\"ghcr\"",
                &mut names,
                RegistryId(out.len() as u32),
            ) else {
                continue;
            };
            let loc = cx.node_loc(node);
            let prefix = cx
                .req_prop_str(node, "prefix", "\"ghcr.io\"")
                .unwrap_or_else(|| Spanned::new(String::new(), loc));
            if !prefix.value.is_empty() {
                if prefix.value.contains("://")
                    || prefix.value.ends_with('/')
                    || prefix.value.contains(char::is_whitespace)
                {
                    cx.error(Code::InvalidValue, prefix.loc, format!("`{}` is not a registry prefix", prefix.value)).help =
                        Some("write the host (and port) as it appears in image references, e.g. `prefix=\"ghcr.io\"`; put the URL in `api-url`".into());
                } else if let Some(first) = prefixes.get(&prefix.value) {
                    let d = cx.error(
                        Code::DuplicateName,
                        prefix.loc,
                        format!("two registries have the prefix `{}`", prefix.value),
                    );
                    d.secondary.push(Label {
                        loc: *first,
                        text: Some("first used here".into()),
                    });
                    d.help = Some("Image Updater requires registry prefixes to be unique".into());
                } else {
                    prefixes.insert(prefix.value.clone(), prefix.loc);
                }
            }
            let api_url = match cx.prop_str(node, "api-url") {
                Some(u) => {
                    if let Err(why) = rules::url(&u.value, &["https", "http"]) {
                        cx.error(
                            Code::InvalidUrl,
                            u.loc,
                            format!("`{}` is not a registry API URL: {why}", u.value),
                        )
                        .help = Some("write e.g. `api-url=\"https://ghcr.io\"`".into());
                    }
                    u.value.trim_end_matches('/').to_string()
                }
                None => format!("https://{}", prefix.value),
            };
            let credentials = cx
                .prop_str(node, "credentials")
                .and_then(|c| lower_credentials(&mut cx, &c));
            let credentials_expire = duration_prop(&mut cx, node, "credentials-expire");
            let default_namespace = cx.prop_str(node, "default-namespace").map(|n| n.value);
            let rate_limit = cx.prop_uint(node, "rate-limit", 100_000).and_then(|r| {
                if r.value == 0 {
                    cx.error(Code::InvalidValue, r.loc, "`rate-limit` must be at least 1")
                        .help =
                        Some("it is requests per second; Image Updater's default is 20".into());
                    None
                } else {
                    Some(r.value as u32)
                }
            });
            let insecure = cx.prop_bool(node, "insecure").is_some_and(|b| b.value);
            let default = cx.prop_bool(node, "default").is_some_and(|b| b.value);
            if default {
                if let Some(other) = out.iter().find(|r| r.default) {
                    let d = cx.error(
                        Code::Conflict,
                        loc,
                        "two registries are marked `default=#true`",
                    );
                    d.secondary.push(Label {
                        loc: other.loc,
                        text: Some("the other default".into()),
                    });
                    d.help = Some(
                        "only one registry can serve images written without a registry".into(),
                    );
                }
            }
            out.push(Registry {
                name,
                prefix,
                api_url,
                credentials,
                credentials_expire,
                default_namespace,
                rate_limit,
                insecure,
                default,
                loc,
            });
        }
        (out, names)
    }

    // ---- policies ------------------------------------------------------------

    fn lower_policies(&mut self) -> (Vec<Policy>, Names<PolicyId>) {
        let decls = std::mem::take(&mut self.decls.policies);
        let mut out = Vec::new();
        let mut names = Names::new();
        for (file, node) in decls {
            let mut cx = self.cx(file);
            cx.check_shape(
                node,
                "`policy`",
                &Shape {
                    args: 1,
                    props: &["source", "pin"],
                    children: Some(&["params"]),
                },
            );
            let Some(name) = declare_name(
                &mut cx,
                node,
                "policy",
                "a policy name",
                "\"no-latest\"",
                &mut names,
                PolicyId(out.len() as u32),
            ) else {
                continue;
            };
            let loc = cx.node_loc(node);
            // Once declared, a policy must be kept (its id is already in use
            // by references), so a missing source becomes a placeholder.
            let src = cx
                .req_prop_str(node, "source", "\"stdlib:deny-mutable-tags\"")
                .unwrap_or_else(|| Spanned::new("stdlib:".to_string(), loc));
            let source = if let Some(std_name) = src.value.strip_prefix("stdlib:") {
                if !STDLIB_POLICIES.contains(&std_name) && !std_name.is_empty() {
                    let help = suggest(std_name, STDLIB_POLICIES).map_or_else(
                        || {
                            format!(
                                "the standard policies are: {}",
                                code_list(STDLIB_POLICIES.iter())
                            )
                        },
                        |s| format!("did you mean `stdlib:{s}`?"),
                    );
                    cx.error(
                        Code::UnknownPolicy,
                        src.loc,
                        format!("there is no standard policy `{std_name}`"),
                    )
                    .help = Some(help);
                }
                PolicySource::Stdlib(std_name.to_string())
            } else {
                let path = PathBuf::from(&src.value);
                if !src.value.ends_with(".wasm") {
                    cx.error(Code::InvalidPath, src.loc, format!("`{}` is not a `.wasm` module", src.value)).help =
                        Some("write `stdlib:NAME` for a standard policy, or the path of a `.wasm` file relative to the estate".into());
                } else if let Err(why) = relative_path(&path) {
                    cx.error(
                        Code::InvalidPath,
                        src.loc,
                        format!("policy path `{}` {why}", src.value),
                    )
                    .help = Some("write the module's path relative to the estate directory".into());
                }
                PolicySource::Path(path)
            };
            let pin = cx.prop_str(node, "pin").and_then(|p| {
                let hex = p.value.strip_prefix("blake3:").unwrap_or(&p.value);
                if hex.len() == 64
                    && hex
                        .chars()
                        .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
                {
                    Some(Spanned::new(Blake3Pin(hex.to_string()), p.loc))
                } else {
                    cx.error(
                        Code::InvalidPin,
                        p.loc,
                        format!("`{}` is not a blake3 hash", p.value),
                    )
                    .help = Some(
                        "a pin is 64 lowercase hex digits; `keelson policy hash MODULE` prints it"
                            .into(),
                    );
                    None
                }
            });
            let params = params_block(&mut cx, node);
            out.push(Policy {
                name,
                source: Spanned::new(source, src.loc),
                pin,
                params,
                loc,
            });
        }
        (out, names)
    }

    // ---- stages ---------------------------------------------------------------

    fn lower_stages(
        &mut self,
        policies: &Names<PolicyId>,
        iu: &ImageUpdaterSettings,
    ) -> (Vec<Stage>, Names<StageId>) {
        let decls = std::mem::take(&mut self.decls.stages);
        let mut names = Names::new();
        let mut declared = Vec::new();
        for (file, node) in decls {
            let mut cx = self.cx(file);
            cx.check_shape(
                node,
                "`stage`",
                &Shape {
                    args: 1,
                    props: &[],
                    children: Some(&["promote-from", "gate", "filter", "write-back"]),
                },
            );
            if let Some(name) = declare_name(
                &mut cx,
                node,
                "stage",
                "a stage name",
                "\"dev\"",
                &mut names,
                StageId(declared.len() as u32),
            ) {
                declared.push((file, node, name));
            }
        }
        let mut out = Vec::new();
        for (file, node, name) in declared {
            let mut cx = self.cx(file);
            let loc = cx.node_loc(node);
            let promote = cx.single_child(node, "promote-from");
            let from = promote.and_then(|p| {
                cx.check_shape(
                    p,
                    "`promote-from`",
                    &Shape {
                        args: 1,
                        props: &[],
                        children: Some(&[]),
                    },
                );
                let s = cx.req_arg_str(p, 0, "the upstream stage", "\"dev\"")?;
                resolve(&mut cx, &names, &s, Code::UnknownStage, "stage")
            });
            let gates = policy_refs(&mut cx, node, "gate", policies);
            let filters = policy_refs(&mut cx, node, "filter", policies);
            if promote.is_none() {
                for g in cx.children(node, "gate").collect::<Vec<_>>() {
                    let gl = cx.name_loc(g);
                    cx.error(Code::Conflict, gl, "`gate` needs `promote-from`").help = Some(
                        "gates decide promotion from an upstream stage; for registry tags use `filter`, or add `promote-from \"<upstream stage>\"`".into(),
                    );
                }
            } else {
                for f in cx.children(node, "filter").collect::<Vec<_>>() {
                    let fl = cx.name_loc(f);
                    cx.error(Code::Conflict, fl, "`filter` has no effect in a stage that promotes").help = Some(
                        "a promoted stage takes its upstream stage's images; use `gate` to decide promotion".into(),
                    );
                }
            }
            let write_back = lower_write_back(&mut cx, node, promote.is_some(), iu);
            let source = match (promote, from) {
                (Some(_), Some(from)) => StageSource::Promotion { from, gates },
                // The upstream did not resolve (reported); treat the stage as
                // tracking nothing further rather than inventing an edge.
                (Some(_), None) => StageSource::Registry {
                    filters: Vec::new(),
                },
                (None, _) => StageSource::Registry { filters },
            };
            out.push(Stage {
                name,
                source,
                write_back,
                loc,
            });
        }
        (out, names)
    }

    // ---- snapshots ---------------------------------------------------------

    /// `snapshot "./tags.json"`: tag data read from a file instead of a registry.
    fn lower_snapshots(&mut self) -> Vec<Spanned<PathBuf>> {
        let decls = std::mem::take(&mut self.decls.snapshots);
        let mut out: Vec<Spanned<PathBuf>> = Vec::new();
        for (file, node) in decls {
            let mut cx = self.cx(file);
            cx.check_shape(
                node,
                "`snapshot`",
                &Shape {
                    args: 1,
                    props: &[],
                    children: None,
                },
            );
            let Some(path) = cx.req_arg_str(node, 0, "the snapshot file", "\"./tags.json\"") else {
                continue;
            };
            // `./tags.json` and `tags.json` are one file.
            let p: PathBuf = Path::new(&path.value)
                .components()
                .filter(|c| !matches!(c, Component::CurDir))
                .collect();
            if let Err(why) = relative_path(Path::new(&path.value)) {
                cx.error(
                    Code::InvalidPath,
                    path.loc,
                    format!("the snapshot path {why}"),
                )
                .help = Some(
                    "write a path relative to the estate directory, e.g. `\"./tags.json\"`".into(),
                );
                continue;
            }
            if p.extension().is_none_or(|x| x != "json") {
                cx.error(
                    Code::InvalidPath,
                    path.loc,
                    "a tag snapshot is a `.json` file",
                )
                .help = Some("name the JSON file of tags, e.g. `snapshot \"./tags.json\"`".into());
                continue;
            }
            if let Some(first) = out.iter().find(|s| s.value == p) {
                let first = first.loc;
                let d = cx.error(
                    Code::DuplicateNode,
                    path.loc,
                    format!("the snapshot `{}` is listed twice", path.value),
                );
                d.secondary.push(Label {
                    loc: first,
                    text: Some("first listed here".into()),
                });
                d.help = Some("remove one of them".into());
                continue;
            }
            out.push(Spanned::new(p, path.loc));
        }
        out
    }

    // ---- projects ----------------------------------------------------------

    fn lower_projects(&mut self) -> (Vec<Project>, Names<ProjectId>) {
        let decls = std::mem::take(&mut self.decls.projects);
        let mut out = Vec::new();
        let mut names = Names::new();
        for (file, node) in decls {
            let mut cx = self.cx(file);
            cx.check_shape(
                node,
                "`project`",
                &Shape {
                    args: 1,
                    props: &["description"],
                    children: Some(&["source-repo", "cluster-resource", "deny-namespace-resource"]),
                },
            );
            let Some(name) = declare_name(
                &mut cx,
                node,
                "project",
                "a project name",
                "\"platform\"",
                &mut names,
                ProjectId(out.len() as u32),
            ) else {
                continue;
            };
            if name.value == "default" {
                cx.error(Code::InvalidName, name.loc, "`default` is Argo CD's built-in project").help =
                    Some("give the project another name; apps use `default` with `project=\"default\"` without declaring it".into());
            }
            let description = cx.prop_str(node, "description").map(|d| d.value);
            let mut source_repos = Vec::new();
            for r in cx.children(node, "source-repo").collect::<Vec<_>>() {
                cx.check_shape(
                    r,
                    "`source-repo`",
                    &Shape {
                        args: usize::MAX,
                        props: &[],
                        children: Some(&[]),
                    },
                );
                for url in cx.req_args_str(r, "a repository URL", "\"https://charts.example.com\"")
                {
                    if url.value != "*" {
                        if let Err(why) = rules::git_url(&url.value) {
                            cx.error(
                                Code::InvalidUrl,
                                url.loc,
                                format!("`{}` is not a repository URL: {why}", url.value),
                            )
                            .help = Some("write a git or Helm repository URL".into());
                        }
                    }
                    source_repos.push(url.value);
                }
            }
            let cluster_resource_whitelist = group_kinds(&mut cx, node, "cluster-resource");
            let namespace_resource_blacklist =
                group_kinds(&mut cx, node, "deny-namespace-resource");
            let loc = cx.node_loc(node);
            out.push(Project {
                name,
                description,
                source_repos,
                cluster_resource_whitelist,
                namespace_resource_blacklist,
                loc,
            });
        }
        (out, names)
    }

    // ---- apps ----------------------------------------------------------------

    fn lower_apps(&mut self, estate: &Estate, names: &AllNames<'_>) -> Vec<App> {
        let decls = std::mem::take(&mut self.decls.apps);
        let mut app_names = Names::new();
        let mut declared = Vec::new();
        for (file, node) in decls {
            let mut cx = self.cx(file);
            cx.check_shape(
                node,
                "`app`",
                &Shape {
                    args: 1,
                    props: &["project"],
                    children: Some(&[
                        "manifests",
                        "template",
                        "chart",
                        "image",
                        "deploy",
                        "depends-on",
                        "sync",
                    ]),
                },
            );
            if let Some(name) = declare_name(
                &mut cx,
                node,
                "app",
                "an app name",
                "\"api\"",
                &mut app_names,
                AppId(declared.len() as u32),
            ) {
                if RESERVED_APP_NAMES.contains(&name.value.as_str()) {
                    cx.error(Code::PathCollision, name.loc, format!("the app name `{}` is reserved", name.value)).help =
                        Some("keelson names the root Application and the Image Updater installation so; rename the app".into());
                }
                declared.push((file, node, name));
            }
        }
        let mut apps = Vec::new();
        for (file, node, name) in declared {
            let mut cx = self.cx(file);
            apps.push(lower_app(&mut cx, node, name, estate, names, &app_names));
        }
        apps
    }

    /// A stage that promotes from `U` needs the app deployed to `U` too.
    fn check_promotion_sources(&mut self, estate: &Estate) {
        for app in &estate.apps {
            for d in &app.deployments {
                let stage = estate.stage(d.stage.value);
                if let StageSource::Promotion { from, .. } = &stage.source {
                    if !app.deploy_stages.contains(&from.value) {
                        let upstream = &estate.stage(from.value).name.value;
                        self.diags.push(
                            Diagnostic::error(
                                Code::NothingToPromote,
                                d.stage.loc,
                                format!(
                                    "app `{}` deploys to `{}`, which promotes from `{upstream}`, but the app is not deployed to `{upstream}`",
                                    app.name.value, stage.name.value
                                ),
                            )
                            .with_secondary(from.loc, "promotes from here")
                            .with_help(format!("add `deploy \"{upstream}\" …` to the app, or move it to a stage that takes images from the registry")),
                        );
                    }
                }
            }
        }
    }

    /// Image Updater's git write-back commits into the Application's source
    /// repository; for a chart app that is a Helm repository, so only `argocd`
    /// (or keelson's own `pinned`) can work.
    fn check_chart_write_back(&mut self, estate: &Estate) {
        for app in &estate.apps {
            if !matches!(app.manifests, Manifests::Chart { .. }) || app.images.is_empty() {
                continue;
            }
            for d in &app.deployments {
                let stage = estate.stage(d.stage.value);
                if stage.write_back.value.commits() {
                    self.diags.push(
                        Diagnostic::error(
                            Code::Conflict,
                            d.stage.loc,
                            format!(
                                "app `{}` is a Helm chart, and stage `{}` writes image updates back with `{}`: Image Updater would commit into the chart repository",
                                app.name.value, stage.name.value, stage.write_back.value.name()
                            ),
                        )
                        .with_secondary(stage.write_back.loc, "write-back set here")
                        .with_help("use `write-back \"argocd\"` (or `\"pinned\"`) for stages that run chart apps, or deploy the app from manifests"),
                    );
                }
            }
        }
    }

    /// An app without `project=` gets an AppProject named after it; that name
    /// must not be a declared project's.
    fn check_derived_projects(&mut self, estate: &Estate) {
        for app in &estate.apps {
            if app.project != ProjectRef::Derived {
                continue;
            }
            if let Some(p) = estate
                .projects
                .iter()
                .find(|p| p.name.value == app.name.value)
            {
                self.diags.push(
                    Diagnostic::error(
                        Code::PathCollision,
                        app.name.loc,
                        format!(
                            "app `{}` has no `project`, so keelson derives an AppProject named `{}`, but a project of that name is declared",
                            app.name.value, app.name.value
                        ),
                    )
                    .with_secondary(p.name.loc, "declared here")
                    .with_help(format!("put the app in it with `project=\"{}\"`, or rename one of them", app.name.value)),
                );
            }
        }
    }

    /// Renders every path and Application name the layout produces and reports
    /// collisions, names Kubernetes would reject, and outputs that the root
    /// Application would sweep up.
    fn check_layout(&mut self, estate: &Estate) {
        let layout = &estate.repo.layout;
        let layout_loc = |t: &PathTemplate| t.loc.unwrap_or(estate.repo.loc);
        let mut paths: HashMap<String, (Loc, String)> = HashMap::new();
        let mut claim =
            |diags: &mut Diagnostics, path: String, loc: Loc, what: String, tmpl: &PathTemplate| {
                claim_path(
                    &mut paths,
                    diags,
                    Claim {
                        path,
                        loc,
                        what,
                        layout: layout_loc(tmpl),
                    },
                );
            };
        let mut apps_dirs: Vec<(String, SiteId)> = Vec::new();
        for (i, site) in estate.sites.iter().enumerate() {
            let vars = TemplateVars {
                site: &site.name.value,
                ..Default::default()
            };
            claim(
                self.diags,
                layout.root.render(&vars),
                site.name.loc,
                format!("the root of site `{}`", site.name.value),
                &layout.root,
            );
            apps_dirs.push((layout.apps.render(&vars), SiteId(i as u32)));
        }
        let mut app_names: HashMap<(SiteId, String), (Loc, String)> = HashMap::new();
        for app in &estate.apps {
            let base = layout.base.render(&TemplateVars {
                app: &app.name.value,
                ..Default::default()
            });
            claim(
                self.diags,
                base,
                app.name.loc,
                format!("the base of app `{}`", app.name.value),
                &layout.base,
            );
            for d in &app.deployments {
                let cluster = estate.cluster(d.cluster.value);
                let site = estate.site(cluster.site);
                let stage = estate.stage(d.stage.value);
                let vars = TemplateVars {
                    site: &site.name.value,
                    cluster: &cluster.name.value,
                    app: &app.name.value,
                    stage: &stage.name.value,
                };
                let who = format!("app `{}` in stage `{}`", app.name.value, stage.name.value);
                let apps_dir = layout.apps.render(&vars);
                let file = format!("{apps_dir}/{}", layout.application.render(&vars));
                claim(
                    self.diags,
                    file,
                    d.loc,
                    format!("the Application of {who}"),
                    &layout.application,
                );
                claim(
                    self.diags,
                    layout.overlay.render(&vars),
                    d.loc,
                    format!("the overlay of {who}"),
                    &layout.overlay,
                );
                let app_name = layout.name.render(&vars);
                let parts_valid = [
                    &app.name.value,
                    &stage.name.value,
                    &cluster.name.value,
                    &site.name.value,
                ]
                .iter()
                .all(|n| rules::dns1123_label(n).is_ok());
                if let (true, Err(why)) = (parts_valid, rules::dns1123_subdomain(&app_name)) {
                    let mut d = Diagnostic::error(Code::InvalidName, d.loc, format!("the Application name `{app_name}` of {who} is invalid: {why}"))
                        .with_help("Application names must be lowercase DNS-1123 subdomains of at most 253 characters; shorten the layout's `name`");
                    if let Some(l) = layout.name.loc {
                        d = d.with_secondary(l, "the layout's `name`");
                    }
                    self.diags.push(d);
                } else if RESERVED_APP_NAMES.contains(&app_name.as_str()) {
                    self.diags.push(
                        Diagnostic::error(
                            Code::PathCollision,
                            d.loc,
                            format!("{who} would be named `{app_name}`, which keelson reserves"),
                        )
                        .with_help("change the layout's `name` or the app's name"),
                    );
                }
                match app_names.get(&(cluster.site, app_name.clone())) {
                    Some((first, first_who)) => self.diags.push(
                        Diagnostic::error(
                            Code::PathCollision,
                            d.loc,
                            format!("{who} and {first_who} would both be the Application `{app_name}` in site `{}`", site.name.value),
                        )
                        .with_secondary(*first, first_who.clone())
                        .with_secondary(layout_loc(&layout.name), "the layout's `name`")
                        .with_help("Application names are unique per Argo CD; add `{stage}` or `{cluster}` to the layout's `name`"),
                    ),
                    None => {
                        app_names.insert((cluster.site, app_name), (d.loc, who));
                    }
                }
            }
        }
        // The root syncs every YAML file under the apps directory, so nothing
        // but Applications (and keelson's own resources) may live there.
        for (path, (loc, what)) in &paths {
            for (dir, site) in &apps_dirs {
                let inside = path.starts_with(&format!("{dir}/")) || path == dir;
                if inside && !what.starts_with("the Application") {
                    let tmpl_loc = if what.starts_with("the root") {
                        layout_loc(&layout.root)
                    } else {
                        layout_loc(&layout.apps)
                    };
                    self.diags.push(
                        Diagnostic::error(
                            Code::InvalidLayout,
                            *loc,
                            format!(
                                "{what} (`{path}`) is inside `{dir}`, the directory the root of site `{}` applies",
                                estate.site(*site).name.value
                            ),
                        )
                        .with_secondary(tmpl_loc, "the layout path")
                        .with_help("keep roots and manifests outside the layout's `apps` directory"),
                    );
                }
            }
        }
    }

    // ---- secrets ----------------------------------------------------------------

    /// Every string anywhere in the estate is checked for literal secrets:
    /// credentials belong in Secrets, and the estate holds only references.
    fn scan_secrets(&mut self, file: FileId, nodes: &[KdlNode]) {
        for node in nodes {
            let node_is_secret_key = rules::is_secret_key(node.name().value());
            for entry in node.entries() {
                let KdlValue::String(s) = entry.value() else {
                    continue;
                };
                let loc = Loc::new(file, entry.span());
                let key = entry.name().map(|n| n.value());
                let is_reference = rules::credential_ref(s).is_ok()
                    || parse_secret_ref(s).is_some() && key == Some("credentials");
                if let Some(what) = rules::looks_like_secret(s) {
                    self.diags.push(
                        Diagnostic::error(Code::LiteralSecret, loc, format!("this looks like {what}"))
                            .with_help("never write secrets in the estate: store them in a Kubernetes Secret and reference it (e.g. `credentials=\"pullsecret:argocd/ghcr\"`)"),
                    );
                } else if !is_reference
                    && s.len() >= 4
                    && (key.is_some_and(rules::is_secret_key)
                        || (key.is_none() && node_is_secret_key))
                {
                    self.diags.push(
                        Diagnostic::error(
                            Code::LiteralSecret,
                            loc,
                            "a password or token is written here literally",
                        )
                        .with_help("store it in a Kubernetes Secret and reference it instead"),
                    );
                } else if node.name().value() == "values" && key.is_none() {
                    for (_, _, what) in rules::secrets_in_yaml(s) {
                        self.diags.push(
                            Diagnostic::error(Code::LiteralSecret, loc, format!("these Helm values contain {what}"))
                                .with_help("use the chart's `existingSecret`-style setting and keep the value in a Kubernetes Secret"),
                        );
                    }
                }
            }
            if let Some(children) = node.children() {
                self.scan_secrets(file, children.nodes());
            }
        }
    }
}

/// A generated path, who wants it, and the layout template that made it.
struct Claim {
    path: String,
    loc: Loc,
    what: String,
    layout: Loc,
}

/// Records that `claim.what` is written to `claim.path`, reporting a
/// collision when something else already is.
fn claim_path(paths: &mut HashMap<String, (Loc, String)>, diags: &mut Diagnostics, claim: Claim) {
    let Claim {
        path,
        loc,
        what,
        layout,
    } = claim;
    if let Some((first_loc, first_what)) = paths.get(&path) {
        diags.push(
            Diagnostic::error(
                Code::PathCollision,
                loc,
                format!("{what} and {first_what} would both be written to `{path}`"),
            )
            .with_secondary(*first_loc, first_what.clone())
            .with_secondary(layout, "the layout path")
            .with_help("rename one of them, or add placeholders to the layout so the paths differ"),
        );
    } else {
        paths.insert(path, (loc, what));
    }
}

struct AllNames<'n> {
    sites: &'n Names<SiteId>,
    registries: &'n Names<RegistryId>,
    policies: &'n Names<PolicyId>,
    stages: &'n Names<StageId>,
    projects: &'n Names<ProjectId>,
}

/// Reads a node's name argument, checks it, and records it; reports duplicates.
fn declare_name<Id: Copy>(
    cx: &mut Cx<'_>,
    node: &KdlNode,
    kind: &str,
    what: &str,
    example: &str,
    names: &mut Names<Id>,
    id: Id,
) -> Option<Spanned<String>> {
    let name = cx.req_arg_str(node, 0, what, example)?;
    if let Err(why) = rules::dns1123_label(&name.value) {
        let suggestion = rules::suggest_name(&name.value);
        let help = if suggestion.is_empty() {
            "use lowercase letters, digits and `-`".to_string()
        } else {
            format!("use lowercase letters, digits and `-`, e.g. `{suggestion}`")
        };
        cx.error(
            Code::InvalidName,
            name.loc,
            format!("`{}` is not a valid {kind} name: {why}", name.value),
        )
        .help = Some(help);
    }
    if let Some((_, first)) = names.map.get(&name.value) {
        let first = *first;
        let d = cx.error(
            Code::DuplicateName,
            name.loc,
            format!("{kind} `{}` is defined twice", name.value),
        );
        d.secondary.push(Label {
            loc: first,
            text: Some("first defined here".into()),
        });
        d.help = Some(format!(
            "rename one of them or merge them; {kind} names are unique in an estate"
        ));
        return None;
    }
    names.map.insert(name.value.clone(), (id, name.loc));
    Some(name)
}

fn check_dns_label(cx: &mut Cx<'_>, value: &Spanned<String>, what: &str) {
    if let Err(why) = rules::dns1123_label(&value.value) {
        let suggestion = rules::suggest_name(&value.value);
        cx.error(
            Code::InvalidName,
            value.loc,
            format!("`{}` is not a valid {what}: {why}", value.value),
        )
        .help = Some(format!(
            "use lowercase letters, digits and `-`, e.g. `{suggestion}`"
        ));
    }
}

fn resolve<Id: Copy>(
    cx: &mut Cx<'_>,
    names: &Names<Id>,
    name: &Spanned<String>,
    code: Code,
    kind: &str,
) -> Option<Spanned<Id>> {
    match names.get(&name.value) {
        Some(id) => Some(Spanned::new(id, name.loc)),
        None => {
            let help = match names.suggest(&name.value) {
                Some(s) => format!("did you mean `{s}`?"),
                None => format!(
                    "define it with `{kind} \"{}\" …`; {}",
                    name.value,
                    names.list()
                ),
            };
            cx.error(
                code,
                name.loc,
                format!("there is no {kind} `{}`", name.value),
            )
            .help = Some(help);
            None
        }
    }
}

fn policy_refs(
    cx: &mut Cx<'_>,
    node: &KdlNode,
    child: &str,
    policies: &Names<PolicyId>,
) -> Vec<Spanned<PolicyId>> {
    let mut out = Vec::new();
    for n in cx.children(node, child).collect::<Vec<_>>() {
        cx.check_shape(
            n,
            &format!("`{child}`"),
            &Shape {
                args: usize::MAX,
                props: &[],
                children: Some(&[]),
            },
        );
        for name in cx.req_args_str(n, "a policy name", "\"no-latest\"") {
            if let Some(id) = resolve(cx, policies, &name, Code::UnknownPolicy, "policy") {
                out.push(id);
            }
        }
    }
    out
}

fn group_kinds(cx: &mut Cx<'_>, node: &KdlNode, child: &str) -> Vec<GroupKind> {
    let mut out = Vec::new();
    for n in cx.children(node, child).collect::<Vec<_>>() {
        cx.check_shape(
            n,
            &format!("`{child}`"),
            &Shape {
                args: 0,
                props: &["group", "kind"],
                children: Some(&[]),
            },
        );
        let group = cx.prop_str(n, "group").map(|g| g.value).unwrap_or_default();
        if let Some(kind) = cx.req_prop_str(n, "kind", "\"Namespace\"") {
            out.push(GroupKind {
                group,
                kind: kind.value,
            });
        }
    }
    out.sort();
    out.dedup();
    out
}

fn parse_secret_ref(s: &str) -> Option<SecretRef> {
    let (namespace, name) = match s.split_once('/') {
        Some((ns, n)) => (Some(ns.to_string()), n),
        None => (None, s),
    };
    let ok = |x: &str| rules::dns1123_subdomain(x).is_ok();
    (ok(name) && namespace.as_deref().is_none_or(ok)).then(|| SecretRef {
        namespace,
        name: name.to_string(),
    })
}

fn lower_credentials(cx: &mut Cx<'_>, c: &Spanned<String>) -> Option<Spanned<CredentialRef>> {
    match rules::credential_ref(&c.value) {
        Ok(r) => Some(Spanned::new(r, c.loc)),
        Err(why) => {
            let known_prefix = ["pullsecret:", "secret:", "env:", "ext:"]
                .iter()
                .any(|p| c.value.starts_with(p));
            if rules::looks_like_secret(&c.value).is_some() {
                // Already reported by the estate-wide secret scan.
            } else if !known_prefix {
                cx.error(Code::LiteralSecret, c.loc, "`credentials` must be a reference, and this looks like a literal credential")
                    .help = Some("store the credential in a Secret and reference it: `pullsecret:<ns>/<name>`, `secret:<ns>/<name>#<field>`, `env:<VAR>` or `ext:/path`".into());
            } else {
                cx.error(
                    Code::InvalidCredentials,
                    c.loc,
                    format!("`{}` is not a credentials reference", c.value),
                )
                .help = Some(why);
            }
            None
        }
    }
}

fn lower_write_back(
    cx: &mut Cx<'_>,
    stage: &KdlNode,
    promotes: bool,
    iu: &ImageUpdaterSettings,
) -> Spanned<WriteBack> {
    let stage_loc = cx.node_loc(stage);
    let Some(node) = cx.single_child(stage, "write-back") else {
        let default = if promotes {
            WriteBack::Pinned
        } else {
            WriteBack::Git {
                branch: None,
                credentials: None,
            }
        };
        return Spanned::new(default, stage_loc);
    };
    cx.check_shape(
        node,
        "`write-back`",
        &Shape {
            args: 1,
            props: &["branch", "provider", "credentials"],
            children: Some(&[]),
        },
    );
    let loc = cx.node_loc(node);
    let Some(mode) = cx.req_arg_str(node, 0, "a mode", "\"git\"") else {
        return Spanned::new(WriteBack::Pinned, loc);
    };
    let branch = cx.prop_str(node, "branch");
    let credentials = cx.prop_str(node, "credentials").map(|c| {
        let valid = c.value == "repocreds"
            || c.value.strip_prefix("secret:").is_some_and(|r| parse_secret_ref(r).is_some());
        if !valid {
            cx.error(Code::InvalidCredentials, c.loc, format!("`{}` is not a git credentials reference", c.value)).help =
                Some("write `repocreds` (Argo CD's repository credentials), `secret:<name>` or `secret:<namespace>/<name>`".into());
        }
        c.value
    });
    let provider = cx.prop_str(node, "provider");
    let modes = ["git", "pull-request", "argocd", "pinned"];
    let wb = match mode.value.as_str() {
        "git" => WriteBack::Git {
            branch: branch.as_ref().map(|b| b.value.clone()),
            credentials,
        },
        "pull-request" => {
            if iu.version.value.minor < 2 {
                let d = cx.error(
                    Code::UnsupportedVersion,
                    mode.loc,
                    format!("pull-request write-back needs Image Updater 1.2 or later; the estate targets {}", iu.version.value),
                );
                d.secondary.push(Label {
                    loc: iu.version.loc,
                    text: Some("the targeted version".into()),
                });
                d.help = Some(
                    "set `image-updater version=\"1.3.0\"`, or use `write-back \"git\"`".into(),
                );
            }
            if let Some(b) = &branch {
                if b.value.contains(':') {
                    cx.error(Code::InvalidValue, b.loc, "in pull-request mode `branch` is the base branch and cannot contain `:`")
                        .help = Some("Image Updater names the head branch itself; write only the base, e.g. `branch=\"main\"`".into());
                }
            }
            let provider = match provider.as_ref().map(|p| p.value.as_str()) {
                None | Some("github") => GitProvider::Github,
                Some("gitlab") => GitProvider::Gitlab,
                Some(other) => {
                    let p = provider.as_ref().expect("some");
                    cx.error(
                        Code::InvalidValue,
                        p.loc,
                        format!("unknown pull-request provider `{other}`"),
                    )
                    .help = Some("write `provider=\"github\"` or `provider=\"gitlab\"`".into());
                    GitProvider::Github
                }
            };
            WriteBack::PullRequest {
                provider,
                branch: branch.as_ref().map(|b| b.value.clone()),
                credentials,
            }
        }
        "argocd" => WriteBack::Argocd,
        "pinned" => WriteBack::Pinned,
        other => {
            let help = suggest(other, &modes).map_or_else(
                || "write one of `git`, `pull-request`, `argocd`, `pinned`".into(),
                |s| format!("did you mean `{s}`?"),
            );
            cx.error(
                Code::InvalidValue,
                mode.loc,
                format!("unknown write-back mode `{other}`"),
            )
            .help = Some(help);
            WriteBack::Pinned
        }
    };
    if provider.is_some() && !matches!(wb, WriteBack::PullRequest { .. }) {
        let p = provider.expect("some");
        cx.warning(
            Code::IgnoredSetting,
            p.loc,
            "`provider` only applies to `pull-request` write-back",
        )
        .help = Some("remove it".into());
    }
    if matches!(wb, WriteBack::Argocd | WriteBack::Pinned) {
        if let Some(b) = &branch {
            cx.warning(
                Code::IgnoredSetting,
                b.loc,
                format!("`branch` has no effect with `{}` write-back", mode.value),
            )
            .help = Some("remove it".into());
        }
    }
    if promotes && wb.is_live() {
        cx.error(Code::Conflict, mode.loc, format!("a stage that promotes cannot use `{}` write-back", mode.value)).help = Some(
            "Image Updater tracks registries, not stages: keelson pins promoted stages itself. Use `write-back \"pinned\"` (the default for promoted stages)".into(),
        );
    }
    Spanned::new(wb, mode.loc)
}

fn default_layout() -> Layout {
    let t = |raw: &str| PathTemplate {
        raw: raw.into(),
        parts: parse_parts(raw).expect("valid default"),
        loc: None,
    };
    Layout {
        root: t("root/{site}.yaml"),
        apps: t("apps/{site}"),
        application: t("{cluster}/{app}-{stage}.yaml"),
        name: t("{app}-{stage}"),
        base: t("k8s/{app}/base"),
        overlay: t("k8s/{app}/overlays/{stage}"),
    }
}

fn parse_parts(raw: &str) -> Result<Vec<TemplatePart>, String> {
    let mut parts = Vec::new();
    let mut rest = raw;
    while let Some(open) = rest.find(['{', '}']) {
        if rest.as_bytes()[open] == b'}' {
            return Err("it has a `}` without `{`".into());
        }
        if open > 0 {
            parts.push(TemplatePart::Literal(rest[..open].to_string()));
        }
        let after = &rest[open + 1..];
        let close = after.find('}').ok_or("it has a `{` without `}`")?;
        let name = &after[..close];
        let p = Placeholder::ALL.iter().find(|p| p.name() == name).ok_or_else(|| {
            let names: Vec<&str> = Placeholder::ALL.iter().map(|p| p.name()).collect();
            match suggest(name, &names) {
                Some(s) => format!("`{{{name}}}` is not a placeholder; did you mean `{{{s}}}`?"),
                None => format!("`{{{name}}}` is not a placeholder; use {{site}}, {{cluster}}, {{app}} or {{stage}}"),
            }
        })?;
        parts.push(TemplatePart::Placeholder(*p));
        rest = &after[close + 1..];
    }
    if !rest.is_empty() {
        parts.push(TemplatePart::Literal(rest.to_string()));
    }
    Ok(parts)
}

fn lower_layout(cx: &mut Cx<'_>, node: &KdlNode) -> Layout {
    use Placeholder::*;
    let keys = ["root", "apps", "application", "name", "base", "overlay"];
    cx.check_shape(
        node,
        "`layout`",
        &Shape {
            args: 0,
            props: &keys,
            children: Some(&[]),
        },
    );
    let mut layout = default_layout();
    let specs: [(&str, &[Placeholder], bool, &str); 6] = [
        ("root", &[Site], true, "one file per site"),
        ("apps", &[Site], false, "one directory per site"),
        ("application", &[Site, Cluster, App, Stage], true, ""),
        ("name", &[Site, Cluster, App, Stage], false, ""),
        (
            "base",
            &[App],
            false,
            "a base is shared by every stage and cluster",
        ),
        ("overlay", &[Site, Cluster, App, Stage], false, ""),
    ];
    for (key, allowed, yaml_file, why) in specs {
        let Some(value) = cx.prop_str(node, key) else {
            continue;
        };
        // `./apps/` and `apps` are the same directory; compare paths in one form.
        let value = if key == "name" {
            value
        } else {
            let mut v = value.value.as_str();
            while let Some(rest) = v.strip_prefix("./") {
                v = rest;
            }
            Spanned::new(v.trim_end_matches('/').to_string(), value.loc)
        };
        let parts = match parse_parts(&value.value) {
            Ok(p) => p,
            Err(e) => {
                cx.error(
                    Code::InvalidLayout,
                    value.loc,
                    format!("layout `{key}` is not a valid template: {e}"),
                )
                .help = Some(
                    "placeholders are written in braces: `{site}`, `{cluster}`, `{app}`, `{stage}`"
                        .into(),
                );
                continue;
            }
        };
        let mut ok = true;
        for p in &parts {
            if let TemplatePart::Placeholder(p) = p {
                if !allowed.contains(p) {
                    ok = false;
                    cx.error(
                        Code::InvalidLayout,
                        value.loc,
                        format!("layout `{key}` cannot use `{{{}}}`", p.name()),
                    )
                    .help = Some(format!(
                        "{why}; `{key}` may use {}",
                        code_list(allowed.iter().map(|p| format!("{{{}}}", p.name())))
                    ));
                }
            }
        }
        if key == "apps" && (value.value.is_empty() || value.value == ".") {
            cx.error(Code::InvalidLayout, value.loc, "layout `apps` cannot be the repository root").help =
                Some("the root Application applies every YAML file under `apps`; give it a directory of its own, e.g. `apps=\"apps/{site}\"`".into());
            continue;
        }
        if key != "name" {
            if let Err(e) = relative_path(Path::new(&value.value)) {
                ok = false;
                cx.error(Code::InvalidPath, value.loc, format!("layout `{key}` {e}"))
                    .help = Some(
                    "layout paths are relative to the root of the generated repository".into(),
                );
            }
        }
        if yaml_file && !(value.value.ends_with(".yaml") || value.value.ends_with(".yml")) {
            ok = false;
            cx.error(
                Code::InvalidLayout,
                value.loc,
                format!("layout `{key}` must name a `.yaml` file"),
            )
            .help = Some(format!(
                "end it with `.yaml`, e.g. `{}.yaml`",
                value.value.trim_end_matches('/')
            ));
        }
        if !ok {
            continue;
        }
        let t = PathTemplate {
            raw: value.value.clone(),
            parts,
            loc: Some(value.loc),
        };
        match key {
            "root" => layout.root = t,
            "apps" => layout.apps = t,
            "application" => layout.application = t,
            "name" => layout.name = t,
            "base" => layout.base = t,
            _ => layout.overlay = t,
        }
    }
    layout
}

/// A path that stays inside the directory it is relative to.
fn relative_path(p: &Path) -> Result<(), String> {
    let text = p.to_string_lossy();
    if text.is_empty() {
        return Err("is empty".into());
    }
    if text.contains('\\') {
        return Err("uses `\\`; write `/` between directories".into());
    }
    let mut depth: i32 = 0;
    for c in p.components() {
        match c {
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
            Component::ParentDir => {
                depth -= 1;
                if depth < 0 {
                    return Err("leaves its directory through `..`".into());
                }
            }
            Component::RootDir | Component::Prefix(_) => return Err("is absolute".into()),
        }
    }
    Ok(())
}

fn lower_app(
    cx: &mut Cx<'_>,
    node: &KdlNode,
    name: Spanned<String>,
    estate: &Estate,
    names: &AllNames<'_>,
    app_names: &Names<AppId>,
) -> App {
    let loc = cx.node_loc(node);
    let project = match cx.prop_str(node, "project") {
        None => ProjectRef::Derived,
        Some(p) if p.value == "default" => ProjectRef::Default(p.loc),
        Some(p) => match resolve(cx, names.projects, &p, Code::UnknownProject, "project") {
            Some(id) => ProjectRef::Declared(id),
            // Unknown: reported; derive so later checks still run.
            None => ProjectRef::Derived,
        },
    };
    let manifests = lower_manifests(cx, node, &name);
    let is_chart = matches!(manifests, Some(Manifests::Chart { .. }));
    let mut images: Vec<Image> = Vec::new();
    for inode in cx.children(node, "image").collect::<Vec<_>>() {
        if let Some(image) = lower_image(cx, inode, estate, names, is_chart) {
            if let Some(first) = images.iter().find(|i| i.alias.value == image.alias.value) {
                let d = cx.error(
                    Code::DuplicateName,
                    image.alias.loc,
                    format!(
                        "image alias `{}` is used twice in app `{}`",
                        image.alias.value, name.value
                    ),
                );
                d.secondary.push(Label {
                    loc: first.alias.loc,
                    text: Some("first used here".into()),
                });
                d.help = Some("give each image of an app its own alias".into());
                continue;
            }
            images.push(image);
        }
    }
    let mut depends_on = Vec::new();
    for dnode in cx.children(node, "depends-on").collect::<Vec<_>>() {
        cx.check_shape(
            dnode,
            "`depends-on`",
            &Shape {
                args: usize::MAX,
                props: &[],
                children: Some(&[]),
            },
        );
        for dep in cx.req_args_str(dnode, "an app name", "\"database\"") {
            if let Some(id) = resolve(cx, app_names, &dep, Code::UnknownApp, "app") {
                depends_on.push(id);
            }
        }
    }
    let app_sync = match cx.single_child(node, "sync") {
        Some(s) => lower_sync(cx, s, &SyncPolicy::default()),
        None => SyncPolicy::default(),
    };
    let mut deployments: Vec<Deployment> = Vec::new();
    let mut deploy_stages = Vec::new();
    for dnode in cx.children(node, "deploy").collect::<Vec<_>>() {
        if let Some(KdlValue::String(s)) = cx.arg(dnode, 0).map(|e| e.value()) {
            deploy_stages.extend(names.stages.get(s));
        }
        if let Some(d) = lower_deployment(cx, dnode, estate, names, &app_sync, &images, &manifests)
        {
            if let Some(first) = deployments.iter().find(|o| o.stage.value == d.stage.value) {
                let stage = &estate.stage(d.stage.value).name.value;
                let e = cx.error(
                    Code::DuplicateName,
                    d.stage.loc,
                    format!("app `{}` deploys to stage `{stage}` twice", name.value),
                );
                e.secondary.push(Label {
                    loc: first.stage.loc,
                    text: Some("first deployment".into()),
                });
                e.help = Some("an app has one deployment per stage; to run it on several clusters, make one app per cluster".into());
                continue;
            }
            deployments.push(d);
        }
    }
    if cx.children(node, "deploy").next().is_none() {
        let nl = cx.name_loc(node);
        cx.warning(Code::MissingValue, nl, format!("app `{}` is not deployed to any stage", name.value)).help =
            Some("add `deploy \"dev\" cluster=\"…\" namespace=\"…\"`; without one nothing is generated for it".into());
    }
    let manifests = manifests.unwrap_or(Manifests::Directory(Spanned::new(PathBuf::new(), loc)));
    App {
        name,
        project,
        manifests,
        images,
        deployments,
        deploy_stages,
        depends_on,
        loc,
    }
}

fn lower_manifests(cx: &mut Cx<'_>, node: &KdlNode, app: &Spanned<String>) -> Option<Manifests> {
    let kinds = ["manifests", "template", "chart"];
    let given: Vec<&KdlNode> = node
        .children()
        .into_iter()
        .flat_map(|d| d.nodes())
        .filter(|n| kinds.contains(&n.name().value()))
        .collect();
    if given.is_empty() {
        cx.error(Code::MissingValue, app.loc, format!("app `{}` has no manifests", app.value)).help = Some(
            "give one of: `manifests \"./apps/NAME\"` (a directory of YAML), `template \"web-service\" { … }` or `chart \"NAME\" repo=\"…\" version=\"…\"`".into(),
        );
        return None;
    }
    for extra in &given[1..] {
        let loc = cx.name_loc(extra);
        let first = cx.name_loc(given[0]);
        let d = cx.error(
            Code::Conflict,
            loc,
            format!("app `{}` has more than one source of manifests", app.value),
        );
        d.secondary.push(Label {
            loc: first,
            text: Some("first given here".into()),
        });
        d.help = Some("keep one of `manifests`, `template` and `chart`".into());
    }
    let m = given[0];
    match m.name().value() {
        "manifests" => {
            cx.check_shape(
                m,
                "`manifests`",
                &Shape {
                    args: 1,
                    props: &[],
                    children: Some(&[]),
                },
            );
            let p = cx.req_arg_str(m, 0, "a directory", "\"./apps/api\"")?;
            if let Err(why) = relative_path(Path::new(&p.value)) {
                cx.error(
                    Code::InvalidPath,
                    p.loc,
                    format!("manifest directory `{}` {why}", p.value),
                )
                .help = Some(
                    "write the directory relative to the estate, e.g. `\"./apps/api\"`".into(),
                );
                return None;
            }
            Some(Manifests::Directory(Spanned::new(
                PathBuf::from(&p.value),
                p.loc,
            )))
        }
        "template" => {
            cx.check_shape(
                m,
                "`template`",
                &Shape {
                    args: 1,
                    props: &[],
                    children: Some(&["params"]),
                },
            );
            let t = cx.req_arg_str(m, 0, "a template name", "\"web-service\"")?;
            if !STDLIB_TEMPLATES.contains(&t.value.as_str()) {
                let help = suggest(&t.value, STDLIB_TEMPLATES).map_or_else(
                    || format!("the templates are: {}", STDLIB_TEMPLATES.join(", ")),
                    |s| format!("did you mean `{s}`?"),
                );
                cx.error(
                    Code::InvalidValue,
                    t.loc,
                    format!("there is no template `{}`", t.value),
                )
                .help = Some(help);
            }
            let params = params_block(cx, m);
            Some(Manifests::Template { name: t, params })
        }
        _ => {
            cx.check_shape(
                m,
                "`chart`",
                &Shape {
                    args: 1,
                    props: &["repo", "version"],
                    children: Some(&["values", "values-file"]),
                },
            );
            let chart = cx.req_arg_str(m, 0, "a chart name", "\"argocd-image-updater\"")?;
            let repo = cx.req_prop_str(m, "repo", "\"https://argoproj.github.io/argo-helm\"")?;
            if let Err(why) = rules::url(&repo.value, &["https", "http", "oci"]) {
                cx.error(Code::InvalidUrl, repo.loc, format!("`{}` is not a chart repository URL: {why}", repo.value)).help =
                    Some("write the Helm repository's URL, e.g. `repo=\"https://argoproj.github.io/argo-helm\"`".into());
            }
            let version = cx
                .req_prop_str(m, "version", "\"1.0.1\"")
                .map(|v| v.value)
                .unwrap_or_default();
            let values = cx
                .single_child(m, "values")
                .and_then(|v| lower_values(cx, v));
            let values_file = cx.single_child(m, "values-file").and_then(|v| {
                cx.check_shape(
                    v,
                    "`values-file`",
                    &Shape {
                        args: 1,
                        props: &[],
                        children: Some(&[]),
                    },
                );
                let p = cx.req_arg_str(v, 0, "a file", "\"./values/api.yaml\"")?;
                if let Err(why) = relative_path(Path::new(&p.value)) {
                    cx.error(
                        Code::InvalidPath,
                        p.loc,
                        format!("values file `{}` {why}", p.value),
                    )
                    .help = Some("write the file relative to the estate".into());
                    return None;
                }
                Some(Spanned::new(PathBuf::from(&p.value), p.loc))
            });
            Some(Manifests::Chart {
                name: chart,
                repo,
                version,
                values,
                values_file,
            })
        }
    }
}

/// Inline Helm values: a YAML mapping in a (multi-line) string.
fn lower_values(cx: &mut Cx<'_>, node: &KdlNode) -> Option<Spanned<String>> {
    cx.check_shape(
        node,
        "`values`",
        &Shape {
            args: 1,
            props: &[],
            children: Some(&[]),
        },
    );
    let v = cx.req_arg_str(
        node,
        0,
        "YAML values",
        "\"\"\"\\n  replicaCount: 2\\n  \"\"\"",
    )?;
    if let Err(why) = yaml_mapping(&v.value) {
        cx.error(
            Code::InvalidValue,
            v.loc,
            format!("these Helm values are not a YAML mapping: {why}"),
        )
        .help = Some("write YAML key: value lines in a multi-line string `\"\"\" … \"\"\"`".into());
        return None;
    }
    Some(v)
}

/// A light structural check of inline YAML: keelson re-emits values through a
/// real YAML parser at compile time; here we catch tabs and non-mappings early.
fn yaml_mapping(text: &str) -> Result<(), String> {
    for (i, line) in text.lines().enumerate() {
        let indent: String = line.chars().take_while(|c| c.is_whitespace()).collect();
        if indent.contains('\t') {
            return Err(format!("line {} is indented with a tab", i + 1));
        }
    }
    let first = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'));
    match first {
        None => Ok(()),
        Some(l) if l.starts_with('-') => Err("it is a list".into()),
        Some(l) if !l.contains(':') && l != "{}" => Err(format!("`{l}` is not `key: value`")),
        Some(_) => Ok(()),
    }
}

fn lower_image(
    cx: &mut Cx<'_>,
    node: &KdlNode,
    estate: &Estate,
    names: &AllNames<'_>,
    is_chart: bool,
) -> Option<Image> {
    cx.check_shape(
        node,
        "`image`",
        &Shape {
            args: 1,
            props: &[
                "repository",
                "strategy",
                "constraint",
                "allow-tags",
                "registry",
                "kustomize-name",
                "helm-name",
                "helm-tag",
                "helm-spec",
            ],
            children: Some(&["ignore-tags", "platforms", "filter"]),
        },
    );
    let loc = cx.node_loc(node);
    let alias = cx.req_arg_str(node, 0, "an alias", "\"api\"")?;
    if let Err(why) = rules::image_alias(&alias.value) {
        cx.error(
            Code::InvalidAlias,
            alias.loc,
            format!("`{}` is not a valid image alias", alias.value),
        )
        .help = Some(why);
    }
    let repository = cx.req_prop_str(node, "repository", "\"ghcr.io/acme/api\"")?;
    if let Err(why) = rules::image_repository(&repository.value) {
        cx.error(
            Code::InvalidValue,
            repository.loc,
            format!("`{}` is not an image repository: {why}", repository.value),
        )
        .help = Some("write e.g. `repository=\"ghcr.io/acme/api\"`".into());
    }
    let repo = ImageRepo(repository.value.clone());
    let strategy = match cx.prop_str(node, "strategy") {
        None => Spanned::new(Strategy::Semver, loc),
        Some(s) => {
            let lowered = s.value.to_ascii_lowercase();
            let parsed = match lowered.as_str() {
                "semver" => Some(Strategy::Semver),
                "newest-build" => Some(Strategy::NewestBuild),
                "alphabetical" => Some(Strategy::Alphabetical),
                "digest" => Some(Strategy::Digest),
                "latest" | "name" => {
                    let new = if lowered == "latest" {
                        "newest-build"
                    } else {
                        "alphabetical"
                    };
                    cx.warning(
                        Code::InvalidValue,
                        s.loc,
                        format!("the strategy `{}` is deprecated", s.value),
                    )
                    .help = Some(format!(
                        "write `strategy=\"{new}\"`; Image Updater reads `{}` as `{new}`",
                        s.value
                    ));
                    Some(if lowered == "latest" {
                        Strategy::NewestBuild
                    } else {
                        Strategy::Alphabetical
                    })
                }
                other => {
                    let help = suggest(other, Strategy::NAMES).map_or_else(
                        || "write one of `semver`, `newest-build`, `alphabetical`, `digest`".into(),
                        |s| format!("did you mean `{s}`?"),
                    );
                    cx.error(
                        Code::InvalidValue,
                        s.loc,
                        format!("unknown update strategy `{other}`"),
                    )
                    .help = Some(format!(
                        "{help} (Image Updater would silently use `semver` instead)"
                    ));
                    None
                }
            };
            Spanned::new(parsed.unwrap_or(Strategy::Semver), s.loc)
        }
    };
    let constraint = cx.prop_str(node, "constraint");
    let mut semver_constraint = None;
    match (strategy.value, &constraint) {
        (Strategy::Semver, Some(c)) if c.value.trim().is_empty() => {
            semver_constraint = Constraint::parse("*").ok()
        }
        (Strategy::Semver, Some(c)) => match Constraint::parse(&c.value) {
            Ok(parsed) => semver_constraint = Some(parsed),
            Err(_) => {
                cx.error(Code::InvalidConstraint, c.loc, format!("`{}` is not a semver constraint", c.value)).help = Some(
                    "write a range such as `^1.2`, `~1.2.0`, `>=1.0 <2.0` or `1.x`; Image Updater refuses to update with an invalid constraint".into(),
                );
            }
        },
        (Strategy::Semver, None) => semver_constraint = Constraint::parse("*").ok(),
        (Strategy::Digest, None) => {
            let al = alias.loc;
            cx.error(
                Code::MissingValue,
                al,
                "the `digest` strategy needs the tag to track",
            )
            .help = Some(
                "add `constraint=\"latest\"` (or whichever mutable tag to follow by digest)".into(),
            );
        }
        (Strategy::Digest, Some(c)) => {
            if c.value.is_empty()
                || c.value
                    .contains(|ch: char| ch.is_whitespace() || ch == ':' || ch == '@')
            {
                cx.error(Code::InvalidValue, c.loc, format!("`{}` is not a tag", c.value)).help =
                    Some("for `digest`, `constraint` names the one tag to track, e.g. `constraint=\"latest\"`".into());
            }
        }
        (Strategy::NewestBuild | Strategy::Alphabetical, Some(c)) => {
            cx.warning(Code::IgnoredSetting, c.loc, format!("`constraint` has no effect with the `{}` strategy", strategy.value.name()))
                .help = Some("filter tags with `allow-tags` and `ignore-tags` instead; Image Updater ignores the constraint here".into());
        }
        _ => {}
    }
    let allow_tags = cx.prop_str(node, "allow-tags").map(|a| {
        let v = a.value.as_str();
        let (allow, problem) = AllowTags::parse(v);
        match problem {
            Some(AllowProblem::BadRegex { expr, why }) => {
                cx.error(
                    Code::InvalidRegex,
                    a.loc,
                    format!("the regular expression `{expr}` does not compile: {why}"),
                )
                .help = Some("fix the expression; Image Updater would allow no tag at all".into());
            }
            Some(AllowProblem::NoFunction) => {
                cx.error(
                    Code::MatchesNothing,
                    a.loc,
                    format!("Image Updater reads `{v}` as a filter that allows no tag"),
                )
                .help = Some(format!(
                    "write `regexp:{v}` for a regular expression, or `any`"
                ));
            }
            None => {}
        }
        Spanned::new(allow, a.loc)
    });
    let mut ignore_tags = Vec::new();
    for n in cx.children(node, "ignore-tags").collect::<Vec<_>>() {
        cx.check_shape(
            n,
            "`ignore-tags`",
            &Shape {
                args: usize::MAX,
                props: &[],
                children: Some(&[]),
            },
        );
        for g in cx.req_args_str(n, "glob patterns", "\"*-debug\" \"*-rc*\"") {
            if let Err(why) = rules::go_glob(&g.value) {
                cx.error(Code::InvalidGlob, g.loc, format!("`{}` is not a valid glob: {why}", g.value)).help =
                    Some("Image Updater silently ignores malformed patterns; `*` matches any run, `?` one character, `[a-z]` a class".into());
            } else if g.value.starts_with("regexp:") || g.value.starts_with('^') {
                cx.warning(
                    Code::MatchesNothing,
                    g.loc,
                    format!(
                        "`{}` looks like a regular expression, but ignore-tags are globs",
                        g.value
                    ),
                )
                .help = Some("write a glob such as `*-rc*`".into());
            }
            ignore_tags.push(g);
        }
    }
    let mut platforms = Vec::new();
    for n in cx.children(node, "platforms").collect::<Vec<_>>() {
        cx.check_shape(
            n,
            "`platforms`",
            &Shape {
                args: usize::MAX,
                props: &[],
                children: Some(&[]),
            },
        );
        for p in cx.req_args_str(n, "platforms", "\"linux/amd64\"") {
            if let Err(why) = rules::platform(&p.value) {
                cx.error(
                    Code::InvalidPlatform,
                    p.loc,
                    format!("`{}` is not a platform", p.value),
                )
                .help = Some(why);
            }
            platforms.push(p);
        }
    }
    let filters = policy_refs(cx, node, "filter", names.policies);
    let registry = match cx.prop_str(node, "registry") {
        Some(r) => {
            let id = resolve(cx, names.registries, &r, Code::UnknownRegistry, "registry")
                .map(|s| s.value);
            if let Some(id) = id {
                let prefix = &estate.registry(id).prefix.value;
                if !prefix.is_empty() && !repository.value.starts_with(&format!("{prefix}/")) {
                    cx.error(
                        Code::Conflict,
                        r.loc,
                        format!(
                            "registry `{}` serves `{prefix}`, but the repository is `{}`",
                            r.value, repository.value
                        ),
                    )
                    .help = Some(format!(
                        "write the repository as `{prefix}/…`, or drop `registry` to match by prefix"
                    ));
                }
            }
            id
        }
        None => {
            // As Image Updater does: the longest registry prefix that matches,
            // else the default registry for images without a host.
            let host = repo.registry_host();
            estate
                .registries
                .iter()
                .enumerate()
                .filter(|(_, r)| {
                    !r.prefix.value.is_empty()
                        && repository
                            .value
                            .starts_with(&format!("{}/", r.prefix.value))
                        || (host.is_none() && r.default)
                })
                .max_by_key(|(_, r)| r.prefix.value.len())
                .map(|(i, _)| RegistryId(i as u32))
        }
    };
    let kustomize_name = cx.prop_str(node, "kustomize-name");
    let helm_name = cx.prop_str(node, "helm-name");
    let helm_tag = cx.prop_str(node, "helm-tag");
    let helm_spec = cx.prop_str(node, "helm-spec");
    let target = if is_chart {
        if let Some(k) = &kustomize_name {
            cx.error(Code::Conflict, k.loc, "`kustomize-name` does not apply to a Helm chart app").help =
                Some("use `helm-name` and `helm-tag` (or `helm-spec`) to say where the chart takes the image".into());
        }
        ImageTarget::Helm {
            name: helm_name.map_or_else(|| "image.repository".to_string(), |n| n.value),
            tag: helm_tag.map_or_else(|| "image.tag".to_string(), |t| t.value),
            spec: helm_spec.map(|s| s.value),
        }
    } else {
        for h in [&helm_name, &helm_tag, &helm_spec].into_iter().flatten() {
            cx.error(Code::Conflict, h.loc, "Helm value paths only apply to an app given as a `chart`").help =
                Some("remove it; for kustomize apps use `kustomize-name` when the manifests use another image name".into());
        }
        ImageTarget::Kustomize {
            name: kustomize_name.map(|k| k.value),
        }
    };
    Some(Image {
        alias,
        repository: Spanned::new(repo, repository.loc),
        registry,
        strategy,
        constraint,
        semver_constraint,
        allow_tags,
        ignore_tags,
        platforms,
        filters,
        target,
        loc,
    })
}

fn lower_sync(cx: &mut Cx<'_>, node: &KdlNode, base: &SyncPolicy) -> SyncPolicy {
    cx.check_shape(
        node,
        "`sync`",
        &Shape {
            args: 0,
            props: &["automated", "prune", "self-heal", "allow-empty"],
            children: Some(&["options", "retry"]),
        },
    );
    let mut s = base.clone();
    if let Some(b) = cx.prop_bool(node, "automated") {
        s.automated = b.value;
    }
    if let Some(b) = cx.prop_bool(node, "prune") {
        s.prune = b.value;
    }
    if let Some(b) = cx.prop_bool(node, "self-heal") {
        s.self_heal = b.value;
    }
    if let Some(b) = cx.prop_bool(node, "allow-empty") {
        s.allow_empty = b.value;
    }
    if !s.automated {
        for key in ["prune", "self-heal", "allow-empty"] {
            if let Some(e) = cx.prop(node, key) {
                let loc = cx.loc(e.span());
                cx.warning(
                    Code::IgnoredSetting,
                    loc,
                    format!("`{key}` has no effect without automated sync"),
                )
                .help = Some("remove it, or set `automated=#true`".into());
            }
        }
    }
    let option_nodes: Vec<&KdlNode> = cx.children(node, "options").collect();
    if !option_nodes.is_empty() {
        s.options.clear();
    }
    for n in option_nodes {
        cx.check_shape(
            n,
            "`options`",
            &Shape {
                args: usize::MAX,
                props: &[],
                children: Some(&[]),
            },
        );
        for o in cx.args(n).collect::<Vec<_>>() {
            let Some(o) = cx.entry_str(o, "a sync option") else {
                continue;
            };
            match o.value.split_once('=') {
                Some((k, v)) if !v.is_empty() => {
                    if !SYNC_OPTIONS.contains(&k) {
                        let help = suggest(k, SYNC_OPTIONS).map_or_else(
                            || "check Argo CD's list of sync options".into(),
                            |s| format!("did you mean `{s}={v}`?"),
                        );
                        cx.warning(
                            Code::InvalidValue,
                            o.loc,
                            format!("`{k}` is not a sync option Argo CD knows"),
                        )
                        .help = Some(help);
                    }
                    if !s.options.contains(&o.value) {
                        s.options.push(o.value);
                    }
                }
                _ if SYNC_OPTIONS.contains(&o.value.trim_end_matches('=')) => {
                    let name = o.value.trim_end_matches('=');
                    cx.error(
                        Code::InvalidValue,
                        o.loc,
                        format!("the sync option `{name}` needs a value"),
                    )
                    .help = Some(format!(
                        "write `\"{name}=true\"` (sync options are `Name=value`)"
                    ));
                }
                _ => {
                    cx.error(
                        Code::InvalidValue,
                        o.loc,
                        format!("`{}` is not a sync option", o.value),
                    )
                    .help = Some(
                        "sync options are `Name=value`, e.g. `\"CreateNamespace=true\"`".into(),
                    );
                }
            }
        }
    }
    if let Some(r) = cx.single_child(node, "retry") {
        cx.check_shape(
            r,
            "`retry`",
            &Shape {
                args: 0,
                props: &["limit", "backoff", "factor", "max-backoff"],
                children: Some(&[]),
            },
        );
        s.retry = Some(Retry {
            limit: cx.prop_uint(r, "limit", 1000).map(|l| l.value as i64),
            backoff_duration: duration_prop(cx, r, "backoff"),
            backoff_factor: cx.prop_uint(r, "factor", 100).map(|f| f.value as i64),
            backoff_max_duration: duration_prop(cx, r, "max-backoff"),
        });
    }
    s
}

fn lower_deployment(
    cx: &mut Cx<'_>,
    node: &KdlNode,
    estate: &Estate,
    names: &AllNames<'_>,
    app_sync: &SyncPolicy,
    images: &[Image],
    manifests: &Option<Manifests>,
) -> Option<Deployment> {
    cx.check_shape(
        node,
        "`deploy`",
        &Shape {
            args: 1,
            props: &["cluster", "namespace", "replicas"],
            children: Some(&["pin", "sync", "values", "params"]),
        },
    );
    let loc = cx.node_loc(node);
    let stage_name = cx.req_arg_str(node, 0, "a stage", "\"dev\"");
    let stage = stage_name.and_then(|s| resolve(cx, names.stages, &s, Code::UnknownStage, "stage"));
    let cluster = cx
        .req_prop_str(node, "cluster", "\"k3s\"")
        .and_then(|c| resolve_cluster(cx, &c, estate, names.sites));
    let namespace = cx.req_prop_str(node, "namespace", "\"api\"");
    if let Some(ns) = &namespace {
        check_dns_label(cx, ns, "namespace");
    }
    let replicas = cx
        .prop_uint(node, "replicas", 10_000)
        .map(|r| r.value as u32);
    let sync = match cx.single_child(node, "sync") {
        Some(s) => lower_sync(cx, s, app_sync),
        None => app_sync.clone(),
    };
    let mut pins: Vec<Pin> = Vec::new();
    for p in cx.children(node, "pin").collect::<Vec<_>>() {
        cx.check_shape(
            p,
            "`pin`",
            &Shape {
                args: 1,
                props: &["tag", "digest"],
                children: Some(&[]),
            },
        );
        let Some(alias) = cx.req_arg_str(p, 0, "an image alias", "\"api\"") else {
            continue;
        };
        let Some(index) = images.iter().position(|i| i.alias.value == alias.value) else {
            let aliases: Vec<&str> = images.iter().map(|i| i.alias.value.as_str()).collect();
            let help = suggest(&alias.value, &aliases).map_or_else(
                || {
                    format!(
                        "the app's images are: {}",
                        if aliases.is_empty() {
                            "none".into()
                        } else {
                            aliases.join(", ")
                        }
                    )
                },
                |s| format!("did you mean `{s}`?"),
            );
            cx.error(
                Code::UnknownImage,
                alias.loc,
                format!("the app has no image `{}`", alias.value),
            )
            .help = Some(help);
            continue;
        };
        let tag = cx.prop_str(p, "tag");
        let digest = cx.prop_str(p, "digest");
        if let Some(t) = &tag {
            if t.value.is_empty()
                || t.value.len() > 128
                || t.value
                    .contains(|c: char| !(c.is_ascii_alphanumeric() || "._-".contains(c)))
            {
                cx.error(
                    Code::InvalidValue,
                    t.loc,
                    format!("`{}` is not an image tag", t.value),
                )
                .help = Some("tags are up to 128 letters, digits, `.`, `_` and `-`".into());
            }
        }
        if let Some(d) = &digest {
            if let Err(why) = rules::digest(&d.value) {
                cx.error(
                    Code::InvalidValue,
                    d.loc,
                    format!("`{}` is not a digest", d.value),
                )
                .help = Some(why);
            }
        }
        if tag.is_none() && digest.is_none() {
            let pl = cx.name_loc(p);
            cx.error(Code::MissingValue, pl, "`pin` needs `tag` or `digest`")
                .help = Some(format!("write `pin \"{}\" tag=\"1.4.2\"`", alias.value));
            continue;
        }
        if let Some(first) = pins.iter().find(|o| o.image == index) {
            let pl = cx.node_loc(p);
            let e = cx.error(
                Code::DuplicateNode,
                pl,
                format!("image `{}` is pinned twice", alias.value),
            );
            e.secondary.push(Label {
                loc: first.loc,
                text: Some("first pin".into()),
            });
            e.help = Some("keep one pin per image".into());
            continue;
        }
        pins.push(Pin {
            image: index,
            tag: tag.map(|t| t.value),
            digest: digest.map(|d| d.value),
            loc: cx.node_loc(p),
        });
    }
    let is_chart = matches!(manifests, Some(Manifests::Chart { .. }));
    let is_template = matches!(manifests, Some(Manifests::Template { .. }));
    let values = cx.single_child(node, "values").and_then(|v| {
        if !is_chart && manifests.is_some() {
            let vl = cx.name_loc(v);
            cx.error(
                Code::Conflict,
                vl,
                "`values` only applies to an app given as a `chart`",
            )
            .help = Some(
                "use `params` for a template app, or patch a directory app's manifests".into(),
            );
        }
        lower_values(cx, v)
    });
    if let Some(p) = cx.children(node, "params").next() {
        if !is_template && manifests.is_some() {
            let pl = cx.name_loc(p);
            cx.error(
                Code::Conflict,
                pl,
                "`params` only applies to an app given as a `template`",
            )
            .help = Some("use `values` for a chart app".into());
        }
    }
    let params = params_block(cx, node);
    Some(Deployment {
        stage: stage?,
        cluster: cluster?,
        namespace: namespace?,
        replicas,
        sync,
        pins,
        values,
        params,
        loc,
    })
}

/// A `params { … }` child, read as free-form parameters (empty when absent).
fn params_block(cx: &mut Cx<'_>, node: &KdlNode) -> serde_json::Map<String, serde_json::Value> {
    match cx.single_child(node, "params") {
        Some(p) => {
            cx.check_shape(
                p,
                "`params`",
                &Shape {
                    args: 0,
                    props: &[],
                    children: None,
                },
            );
            params_to_json(cx, p)
        }
        None => serde_json::Map::new(),
    }
}

/// A duration property (`30s`, `2m`, `1h30m`), reported when malformed.
fn duration_prop(cx: &mut Cx<'_>, node: &KdlNode, key: &str) -> Option<String> {
    let d = cx.prop_str(node, key)?;
    if let Err(why) = rules::duration(&d.value) {
        cx.error(
            Code::InvalidValue,
            d.loc,
            format!("`{}` is not a duration", d.value),
        )
        .help = Some(why);
    }
    Some(d.value)
}

/// `site/cluster`, or a bare cluster name when only one site has it.
fn resolve_cluster(
    cx: &mut Cx<'_>,
    c: &Spanned<String>,
    estate: &Estate,
    sites: &Names<SiteId>,
) -> Option<Spanned<ClusterId>> {
    let (site, name) = match c.value.split_once('/') {
        Some((s, n)) => (Some(s), n),
        None => (None, c.value.as_str()),
    };
    let candidates: Vec<ClusterId> = estate
        .clusters
        .iter()
        .enumerate()
        .filter(|(_, cl)| {
            cl.name.value == name && site.is_none_or(|s| estate.site(cl.site).name.value == s)
        })
        .map(|(i, _)| ClusterId(i as u32))
        .collect();
    match candidates.as_slice() {
        [one] => Some(Spanned::new(*one, c.loc)),
        [] => {
            if let Some(s) = site {
                if sites.get(s).is_none() {
                    let help = sites
                        .suggest(s)
                        .map_or_else(|| sites.list(), |x| format!("did you mean `{x}/{name}`?"));
                    cx.error(Code::UnknownSite, c.loc, format!("there is no site `{s}`"))
                        .help = Some(help);
                    return None;
                }
            }
            let mut all: Vec<String> = estate
                .clusters
                .iter()
                .map(|cl| {
                    if site.is_some() {
                        format!("{}/{}", estate.site(cl.site).name.value, cl.name.value)
                    } else {
                        cl.name.value.clone()
                    }
                })
                .collect();
            all.sort();
            let refs: Vec<&str> = all.iter().map(String::as_str).collect();
            let help = match suggest(&c.value, &refs) {
                Some(s) => format!("did you mean `{s}`?"),
                None if refs.is_empty() => "define clusters inside a `site`".to_string(),
                None => format!("defined: {}", code_list(refs.iter().take(8))),
            };
            cx.error(
                Code::UnknownCluster,
                c.loc,
                format!("there is no cluster `{}`", c.value),
            )
            .help = Some(help);
            None
        }
        many => {
            let options: Vec<String> = many
                .iter()
                .map(|id| {
                    format!(
                        "`{}/{name}`",
                        estate.site(estate.cluster(*id).site).name.value
                    )
                })
                .collect();
            cx.error(
                Code::AmbiguousCluster,
                c.loc,
                format!("several sites have a cluster `{name}`"),
            )
            .help = Some(format!("say which: {}", options.join(" or ")));
            None
        }
    }
}
