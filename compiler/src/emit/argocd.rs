//! Argo CD resources: each site's root App of Apps, an Application per app
//! stage, the AppProjects, and the Image Updater installation.

use std::collections::{BTreeMap, BTreeSet};

use serde_yaml::Value;

use super::{Dep, Emitter, Inputs, deep_merge, map, s, seq};
use crate::diagnostic::{Code, Diagnostic};
use crate::model::{
    Estate, ImageTarget, Manifests, ProjectRef, Server, SiteId, SyncPolicy, TemplateVars, WriteBack,
};
use crate::objects;

pub(crate) const FINALIZER: &str = "resources-finalizer.argocd.argoproj.io";
pub(crate) const SYNC_WAVE: &str = "argocd.argoproj.io/sync-wave";
/// Where the Image Updater chart is published.
pub(crate) const IMAGE_UPDATER_CHART_REPO: &str = "https://argoproj.github.io/argo-helm";
/// The Application that installs Image Updater (a reserved name).
pub(crate) const IMAGE_UPDATER_APP: &str = "argocd-image-updater";
/// AppProjects sync before the Applications that use them, and Image Updater
/// (its CRD) before its resources.
const WAVE_PROJECTS: i32 = -3;
pub(super) const WAVE_IMAGE_UPDATER: i32 = -2;
pub(super) const WAVE_IMAGE_UPDATERS: i32 = -1;

/// keelson's own files in a site's apps directory. Names start with `_`,
/// which no app name (DNS-1123) can, so they never meet an Application file.
pub(crate) fn keelson_dir(estate: &Estate, site: &str) -> String {
    let apps = estate.repo.layout.apps.render(&TemplateVars {
        site,
        ..TemplateVars::default()
    });
    format!("{apps}/_keelson")
}

pub(super) fn emit(input: &Inputs<'_>, deps: &[Dep<'_>], out: &mut Emitter<'_>) {
    let estate = input.estate;
    out.par_each(deps, |dep, out| {
        let doc = application(input, dep, out);
        out.put_yaml(
            &dep.file,
            &doc,
            format!(
                "the Application of app `{}` in stage `{}`",
                dep.app.name.value, dep.stage.name.value
            ),
            dep.d.loc,
        );
    });
    let mut sites: BTreeSet<SiteId> = BTreeSet::new();
    for dep in deps {
        sites.insert(dep.site_id);
    }
    for site_id in sites {
        let site = estate.site(site_id);
        let here: Vec<&Dep<'_>> = deps.iter().filter(|d| d.site_id == site_id).collect();
        let root_path = estate.repo.layout.root.render(&TemplateVars {
            site: &site.name.value,
            ..TemplateVars::default()
        });
        out.put_yaml(
            &root_path,
            &root(estate, site_id, &here),
            format!("the root Application of site `{}`", site.name.value),
            site.loc,
        );
        let dir = keelson_dir(estate, &site.name.value);
        for (name, doc) in projects(input, &here) {
            out.put_yaml(
                &format!("{dir}/project-{name}.yaml"),
                &doc,
                format!("AppProject `{name}`"),
                site.loc,
            );
        }
        if needs_image_updater(&here) {
            out.put_yaml(
                &format!("{dir}/image-updater.yaml"),
                &image_updater_install(estate, site_id),
                format!(
                    "the Image Updater installation of site `{}`",
                    site.name.value
                ),
                estate.image_updater.loc.unwrap_or(site.loc),
            );
        }
    }
}

/// Whether Image Updater has anything to do in these app stages.
pub(super) fn needs_image_updater(deps: &[&Dep<'_>]) -> bool {
    deps.iter().any(|d| is_live(d))
}

/// An app stage whose images Image Updater updates in-cluster.
pub(super) fn is_live(dep: &Dep<'_>) -> bool {
    dep.stage.write_back.value.is_live()
        && !dep.app.images.is_empty()
        && dep.d.pins.len() < dep.app.images.len()
}

fn metadata(name: &str, namespace: &str, wave: Option<i32>, finalizer: bool) -> Value {
    let mut m = vec![("name", s(name)), ("namespace", s(namespace))];
    if let Some(w) = wave {
        m.push(("annotations", map(vec![(SYNC_WAVE, s(w.to_string()))])));
    }
    if finalizer {
        m.push(("finalizers", seq([s(FINALIZER)])));
    }
    map(m)
}

fn project_name(dep: &Dep<'_>, estate: &Estate) -> String {
    match &dep.app.project {
        ProjectRef::Derived => dep.app.name.value.clone(),
        ProjectRef::Default(_) => "default".into(),
        ProjectRef::Declared(p) => estate.project(p.value).name.value.clone(),
    }
}

fn application(input: &Inputs<'_>, dep: &Dep<'_>, out: &mut Emitter<'_>) -> Value {
    let estate = input.estate;
    let wave = input
        .graph
        .waves
        .get(dep.app_id.index())
        .copied()
        .unwrap_or(0);
    let source = match &dep.app.manifests {
        Manifests::Chart {
            name,
            repo,
            version,
            values,
            ..
        } => {
            let mut merged = Value::Mapping(Default::default());
            let mut layer = |text: &str, loc| match serde_yaml::from_str::<Value>(text) {
                Ok(Value::Null) => {}
                Ok(v @ Value::Mapping(_)) => deep_merge(&mut merged, v),
                Ok(_) | Err(_) => out.diags.push(
                    Diagnostic::error(
                        Code::InvalidManifest,
                        loc,
                        "Helm values must be a YAML mapping",
                    )
                    .with_help("write the values as `key: value` lines"),
                ),
            };
            // Read (and checked to be a mapping) by `compile`.
            if let Some((file, text)) = input.files.values_files.get(&dep.app_id) {
                let loc = crate::diagnostic::Loc {
                    file: *file,
                    offset: 0,
                    len: 0,
                };
                layer(text, loc);
            }
            if let Some(v) = values {
                layer(&v.value, v.loc);
            }
            if let Some(v) = &dep.d.values {
                layer(&v.value, v.loc);
            }
            let mut helm = vec![("releaseName", s(dep.app.name.value.clone()))];
            let params = helm_parameters(input, dep);
            if !params.is_empty() {
                helm.push(("parameters", seq(params)));
            }
            if merged.as_mapping().is_some_and(|m| !m.is_empty()) {
                helm.push(("valuesObject", merged));
            }
            map(vec![
                ("repoURL", s(repo.value.clone())),
                ("chart", s(name.value.clone())),
                ("targetRevision", s(version.clone())),
                ("helm", map(helm)),
            ])
        }
        _ => map(vec![
            ("repoURL", s(estate.repo.url.value.clone())),
            ("targetRevision", s(estate.repo.branch.clone())),
            ("path", s(dep.overlay.clone())),
        ]),
    };
    let mut spec = vec![
        ("project", s(project_name(dep, estate))),
        ("source", source),
        (
            "destination",
            map(vec![
                ("server", s(dep.cluster.server.url())),
                ("namespace", s(dep.d.namespace.value.clone())),
            ]),
        ),
    ];
    if let Some(sp) = sync_policy(&dep.d.sync) {
        spec.push(("syncPolicy", sp));
    }
    map(vec![
        ("apiVersion", s("argoproj.io/v1alpha1")),
        ("kind", s("Application")),
        (
            "metadata",
            metadata(&dep.name, &dep.site.argocd_namespace, Some(wave), true),
        ),
        ("spec", map(spec)),
    ])
}

/// Image parameters for a chart app, sorted by name as Image Updater writes them.
fn helm_parameters(input: &Inputs<'_>, dep: &Dep<'_>) -> Vec<Value> {
    let mut params: BTreeMap<String, String> = BTreeMap::new();
    for (ii, image) in dep.app.images.iter().enumerate() {
        let Some(decided) = input
            .decisions
            .images
            .get(&(dep.app_id, dep.stage_id(), ii))
        else {
            continue;
        };
        let ImageTarget::Helm { name, tag, spec } = &image.target else {
            continue;
        };
        let repo = &image.repository.value.0;
        let tag_value = match (&decided.tag, &decided.digest) {
            (Some(t), Some(d)) => format!("{t}@{d}"),
            (Some(t), None) => t.clone(),
            (None, Some(d)) => format!("latest@{d}"),
            (None, None) => continue,
        };
        match spec {
            Some(spec) => {
                let full = match (&decided.tag, &decided.digest) {
                    (Some(t), Some(d)) => format!("{repo}:{t}@{d}"),
                    (Some(t), None) => format!("{repo}:{t}"),
                    (None, Some(d)) => format!("{repo}@{d}"),
                    (None, None) => continue,
                };
                params.insert(spec.clone(), full);
            }
            None => {
                params.insert(name.clone(), repo.clone());
                params.insert(tag.clone(), tag_value);
            }
        }
    }
    params
        .into_iter()
        .map(|(name, value)| {
            map(vec![
                ("name", s(name)),
                ("value", s(value)),
                ("forceString", Value::Bool(true)),
            ])
        })
        .collect()
}

fn sync_policy(sync: &SyncPolicy) -> Option<Value> {
    let mut sp = Vec::new();
    if sync.automated {
        let mut a = vec![
            ("prune", Value::Bool(sync.prune)),
            ("selfHeal", Value::Bool(sync.self_heal)),
        ];
        if sync.allow_empty {
            a.push(("allowEmpty", Value::Bool(true)));
        }
        sp.push(("automated", map(a)));
    }
    if !sync.options.is_empty() {
        sp.push((
            "syncOptions",
            seq(sync.options.iter().map(|o| s(o.clone()))),
        ));
    }
    if let Some(r) = &sync.retry {
        let mut retry = Vec::new();
        if let Some(l) = r.limit {
            retry.push(("limit", Value::from(l)));
        }
        let mut backoff = Vec::new();
        if let Some(d) = &r.backoff_duration {
            backoff.push(("duration", s(d.clone())));
        }
        if let Some(f) = r.backoff_factor {
            backoff.push(("factor", Value::from(f)));
        }
        if let Some(m) = &r.backoff_max_duration {
            backoff.push(("maxDuration", s(m.clone())));
        }
        if !backoff.is_empty() {
            retry.push(("backoff", map(backoff)));
        }
        sp.push(("retry", map(retry)));
    }
    (!sp.is_empty()).then(|| map(sp))
}

/// The root App of Apps. It has no finalizer on purpose: deleting the root
/// then leaves the child Applications (and the workloads) in place, instead
/// of cascading through every app of the site.
fn root(estate: &Estate, site_id: SiteId, deps: &[&Dep<'_>]) -> Value {
    let site = estate.site(site_id);
    let apps_dir = estate.repo.layout.apps.render(&TemplateVars {
        site: &site.name.value,
        ..TemplateVars::default()
    });
    let mut spec = vec![
        ("project", s("default")),
        (
            "source",
            map(vec![
                ("repoURL", s(estate.repo.url.value.clone())),
                ("targetRevision", s(estate.repo.branch.clone())),
                ("path", s(apps_dir)),
                ("directory", map(vec![("recurse", Value::Bool(true))])),
            ]),
        ),
        (
            "destination",
            map(vec![
                ("server", s(Server::IN_CLUSTER_URL)),
                ("namespace", s(site.argocd_namespace.clone())),
            ]),
        ),
    ];
    // Image Updater's `argocd` write-back patches the live child Application;
    // without this the root's self-heal would revert every update at once.
    let patched: Vec<&&Dep<'_>> = deps
        .iter()
        .filter(|d| d.stage.write_back.value == WriteBack::Argocd && is_live(d))
        .collect();
    let mut options = Vec::new();
    if !patched.is_empty() {
        let mut names: Vec<&str> = patched.iter().map(|d| d.name.as_str()).collect();
        names.sort_unstable();
        spec.push((
            "ignoreDifferences",
            seq(names.into_iter().map(|n| {
                map(vec![
                    ("group", s("argoproj.io")),
                    ("kind", s("Application")),
                    ("name", s(n)),
                    (
                        "jsonPointers",
                        seq([
                            s("/spec/source/kustomize/images"),
                            s("/spec/source/helm/parameters"),
                        ]),
                    ),
                ])
            })),
        ));
        options.push(s("RespectIgnoreDifferences=true"));
    }
    let mut sync = vec![(
        "automated",
        map(vec![
            ("prune", Value::Bool(true)),
            ("selfHeal", Value::Bool(true)),
        ]),
    )];
    if !options.is_empty() {
        sync.push(("syncOptions", seq(options)));
    }
    spec.push(("syncPolicy", map(sync)));
    map(vec![
        ("apiVersion", s("argoproj.io/v1alpha1")),
        ("kind", s("Application")),
        (
            "metadata",
            metadata("root", &site.argocd_namespace, None, false),
        ),
        ("spec", map(spec)),
    ])
}

/// The AppProjects the site's Applications use, by name. A project allows
/// exactly the destinations and source repositories its apps use: each
/// deployment's namespace, and every other namespace its objects name
/// (Argo CD checks each namespaced object's namespace against the
/// destinations). A derived project also allows the cluster-scoped kinds its
/// app applies; a declared one allows what it declares (`check` refuses an
/// app whose objects it does not permit).
fn projects(input: &Inputs<'_>, deps: &[&Dep<'_>]) -> Vec<(String, Value)> {
    let estate = input.estate;
    struct Acc {
        description: String,
        repos: BTreeSet<String>,
        destinations: BTreeSet<(String, String)>,
        cluster_whitelist: BTreeSet<(String, String)>,
        namespace_blacklist: Vec<(String, String)>,
    }
    let mut acc: BTreeMap<String, Acc> = BTreeMap::new();
    let mut namespace = String::new();
    for dep in deps {
        namespace = dep.site.argocd_namespace.clone();
        let (name, declared) = match &dep.app.project {
            ProjectRef::Default(_) => continue,
            ProjectRef::Derived => (dep.app.name.value.clone(), None),
            ProjectRef::Declared(p) => {
                let p = estate.project(p.value);
                (p.name.value.clone(), Some(p))
            }
        };
        let entry = acc.entry(name.clone()).or_insert_with(|| Acc {
            description: match declared {
                Some(p) => p
                    .description
                    .clone()
                    .unwrap_or_else(|| format!("Project `{name}`")),
                None => format!(
                    "Derived by keelson for app `{name}`: only its own destinations and sources"
                ),
            },
            repos: declared
                .map(|p| p.source_repos.iter().cloned().collect())
                .unwrap_or_default(),
            destinations: BTreeSet::new(),
            cluster_whitelist: declared
                .map(|p| {
                    p.cluster_resource_whitelist
                        .iter()
                        .map(|g| (g.group.clone(), g.kind.clone()))
                        .collect()
                })
                .unwrap_or_default(),
            namespace_blacklist: declared
                .map(|p| {
                    p.namespace_resource_blacklist
                        .iter()
                        .map(|g| (g.group.clone(), g.kind.clone()))
                        .collect()
                })
                .unwrap_or_default(),
        });
        match &dep.app.manifests {
            Manifests::Chart { repo, .. } => entry.repos.insert(repo.value.clone()),
            _ => entry.repos.insert(estate.repo.url.value.clone()),
        };
        entry.destinations.insert((
            dep.cluster.server.url().to_string(),
            dep.d.namespace.value.clone(),
        ));
        for o in declared_objects(input, dep) {
            match o.namespace {
                Some(ns) => {
                    entry
                        .destinations
                        .insert((dep.cluster.server.url().to_string(), ns));
                }
                None if declared.is_none() => {
                    entry.cluster_whitelist.insert((o.group, o.kind));
                }
                None => {}
            }
        }
        // Argo CD creates the namespace as a resource of the sync, so the
        // project must permit Namespaces for `CreateNamespace=true`.
        if dep
            .d
            .sync
            .options
            .iter()
            .any(|o| o == "CreateNamespace=true")
        {
            entry
                .cluster_whitelist
                .insert((String::new(), "Namespace".into()));
        }
    }
    acc.into_iter()
        .map(|(name, a)| {
            let mut spec = vec![
                ("description", s(a.description)),
                ("sourceRepos", seq(a.repos.into_iter().map(s))),
                (
                    "destinations",
                    seq(a.destinations.into_iter().map(|(server, ns)| {
                        map(vec![("server", s(server)), ("namespace", s(ns))])
                    })),
                ),
            ];
            let gk = |(g, k): (String, String)| map(vec![("group", s(g)), ("kind", s(k))]);
            if !a.cluster_whitelist.is_empty() {
                spec.push((
                    "clusterResourceWhitelist",
                    seq(a.cluster_whitelist.into_iter().map(gk)),
                ));
            }
            if !a.namespace_blacklist.is_empty() {
                spec.push((
                    "namespaceResourceBlacklist",
                    seq(a.namespace_blacklist.into_iter().map(gk)),
                ));
            }
            let doc = map(vec![
                ("apiVersion", s("argoproj.io/v1alpha1")),
                ("kind", s("AppProject")),
                (
                    "metadata",
                    metadata(&name, &namespace, Some(WAVE_PROJECTS), true),
                ),
                ("spec", map(spec)),
            ]);
            (name, doc)
        })
        .collect()
}

/// The objects a directory app applies in one deployment, placed as Argo CD
/// places them. Template apps' objects all land in the deployment's
/// namespace, and a chart is not rendered, so neither adds anything here.
fn declared_objects(input: &Inputs<'_>, dep: &Dep<'_>) -> Vec<objects::Placed> {
    let (Manifests::Directory(dir), Some(files)) =
        (&dep.app.manifests, input.files.dirs.get(&dep.app_id))
    else {
        return Vec::new();
    };
    let files: Vec<objects::Manifest<'_>> = files
        .iter()
        .map(|f| objects::Manifest {
            rel: &f.rel,
            bytes: &f.bytes,
        })
        .collect();
    let declared = objects::directory(&dir.value.to_string_lossy(), &files);
    objects::placed(input.estate, dep.d, &declared)
}

/// Image Updater itself: its Helm chart, with `registries.conf` rendered
/// from the estate's registries (credentials only as references).
fn image_updater_install(estate: &Estate, site_id: SiteId) -> Value {
    let site = estate.site(site_id);
    let registries: Vec<Value> = estate
        .registries
        .iter()
        .map(|r| {
            let mut m = vec![
                ("name", s(r.name.value.clone())),
                ("prefix", s(r.prefix.value.clone())),
                ("api_url", s(r.api_url.clone())),
            ];
            if let Some(c) = &r.credentials {
                m.push(("credentials", s(c.value.to_string())));
            }
            if let Some(e) = &r.credentials_expire {
                m.push(("credsexpire", s(e.clone())));
            }
            if let Some(ns) = &r.default_namespace {
                m.push(("defaultns", s(ns.clone())));
            }
            if r.default {
                m.push(("default", Value::Bool(true)));
            }
            if r.insecure {
                m.push(("insecure", Value::Bool(true)));
            }
            if let Some(l) = r.rate_limit {
                m.push(("limit", Value::from(l)));
            }
            map(m)
        })
        .collect();
    let mut values = vec![("config", map(vec![("registries", seq(registries))]))];
    if let Some(interval) = &estate.image_updater.interval {
        values.push(("extraArgs", seq([s("--interval"), s(interval.clone())])));
    }
    map(vec![
        ("apiVersion", s("argoproj.io/v1alpha1")),
        ("kind", s("Application")),
        (
            "metadata",
            metadata(
                IMAGE_UPDATER_APP,
                &site.argocd_namespace,
                Some(WAVE_IMAGE_UPDATER),
                true,
            ),
        ),
        (
            "spec",
            map(vec![
                ("project", s("default")),
                (
                    "source",
                    map(vec![
                        ("repoURL", s(IMAGE_UPDATER_CHART_REPO)),
                        ("chart", s("argocd-image-updater")),
                        (
                            "targetRevision",
                            s(estate.image_updater.chart_version.clone()),
                        ),
                        ("helm", map(vec![("valuesObject", map(values))])),
                    ]),
                ),
                (
                    "destination",
                    map(vec![
                        ("server", s(Server::IN_CLUSTER_URL)),
                        ("namespace", s(site.argocd_namespace.clone())),
                    ]),
                ),
                (
                    "syncPolicy",
                    map(vec![
                        (
                            "automated",
                            map(vec![
                                ("prune", Value::Bool(true)),
                                ("selfHeal", Value::Bool(true)),
                            ]),
                        ),
                        ("syncOptions", seq([s("ServerSideApply=true")])),
                    ]),
                ),
            ]),
        ),
    ])
}
