//! The generated tree's README.md: what is where, how to bootstrap each site,
//! and which Secrets must exist — named, never with values.

use std::collections::{BTreeMap, BTreeSet};

use rayon::prelude::*;
use serde::Serialize;

use super::argocd::{is_live, keelson_dir};
use super::{Dep, Emitter, Inputs};
use crate::diagnostic::{Code, Diagnostic};
use crate::model::{
    ClusterRole, CredentialRef, Estate, Manifests, ProjectRef, Server, Site, StageSource,
    TemplateVars, WriteBack,
};

const TEMPLATE: &str = include_str!("readme.md.tera");

#[derive(Serialize)]
struct Context {
    repo: String,
    branch: String,
    image_updater: String,
    chart: String,
    sites: Vec<SiteCx>,
    secrets: Vec<SecretCx>,
    /// The rows of the "Where things are" table.
    paths: String,
}

#[derive(Serialize)]
struct SiteCx {
    name: String,
    namespace: String,
    management: String,
    root: String,
    apps: String,
    keelson_dir: String,
    workload_clusters: Vec<ClusterCx>,
    /// The rows of the Applications table, each after a line break. A large
    /// estate has tens of thousands: they are formatted here, in parallel,
    /// rather than by the template engine.
    applications: String,
    projects: Vec<String>,
    image_updater: bool,
    waves: bool,
}

#[derive(Serialize)]
struct ClusterCx {
    name: String,
    server: String,
    argocd_name: Option<String>,
}

struct AppCx {
    name: String,
    app: String,
    stage: String,
    cluster: String,
    namespace: String,
    images: String,
    updates: String,
}

impl AppCx {
    fn row(&self) -> String {
        format!(
            "\n| `{}` | {} | {} | {} | {} | {} | {} |",
            self.name,
            self.app,
            self.stage,
            self.cluster,
            self.namespace,
            self.images,
            self.updates
        )
    }
}

#[derive(Serialize, PartialEq, Eq, PartialOrd, Ord)]
struct SecretCx {
    #[serde(rename = "where")]
    where_: String,
    reference: String,
    purpose: String,
}

/// The README: one section per site that has Applications, the Secrets the
/// estate refers to, and the "Where things are" table; rendered with
/// `readme.md.tera`. Rows are sorted, so the text does not depend on the
/// thread count.
pub(super) fn emit(input: &Inputs<'_>, deps: &[Dep<'_>], out: &mut Emitter<'_>) {
    let estate = input.estate;
    let mut sites = Vec::new();
    // A set: the same Secret is named once, in a stable order.
    let mut secrets: BTreeSet<SecretCx> = BTreeSet::new();
    for (si, site) in estate.sites.iter().enumerate() {
        let here: Vec<&Dep<'_>> = deps.iter().filter(|d| d.site_id.index() == si).collect();
        if here.is_empty() {
            continue;
        }
        let cx = site_context(input, site, &here);
        if cx.image_updater {
            image_updater_secrets(estate, site, &here, &mut secrets);
        }
        if let Some(secret) = repository_secret(estate, site) {
            secrets.insert(secret);
        }
        sites.push(cx);
    }
    let cx = Context {
        repo: estate.repo.url.value.clone(),
        branch: estate.repo.branch.clone(),
        image_updater: estate.image_updater.version.value.to_string(),
        chart: estate.image_updater.chart_version.clone(),
        paths: where_things_are(&sites, deps),
        sites,
        secrets: secrets.into_iter().collect(),
    };
    render(estate, &cx, out);
}

/// One site's section: its clusters, its Applications (one row each, by
/// name), its AppProjects.
fn site_context(input: &Inputs<'_>, site: &Site, here: &[&Dep<'_>]) -> SiteCx {
    let estate = input.estate;
    let layout = &estate.repo.layout;
    let vars = TemplateVars {
        site: &site.name.value,
        ..TemplateVars::default()
    };
    let management = site
        .management
        .map(|c| estate.cluster(c).name.value.clone())
        .unwrap_or_default();
    let workload_clusters = site
        .clusters
        .iter()
        .map(|&c| estate.cluster(c))
        .filter(|c| c.role == ClusterRole::Workload && c.server != Server::InCluster)
        .map(|c| ClusterCx {
            name: c.name.value.clone(),
            server: c.server.url().to_string(),
            argocd_name: c.argocd_name.clone(),
        })
        .collect();
    let mut applications: Vec<AppCx> = here.par_iter().map(|d| app_row(input, d)).collect();
    applications.par_sort_by(|a, b| a.name.cmp(&b.name));
    let applications: String = applications.par_iter().map(AppCx::row).collect();
    let projects: BTreeSet<String> = here
        .iter()
        .filter_map(|d| match &d.app.project {
            ProjectRef::Derived => Some(d.app.name.value.clone()),
            ProjectRef::Declared(p) => Some(estate.project(p.value).name.value.clone()),
            ProjectRef::Default(_) => None,
        })
        .collect();
    SiteCx {
        name: site.name.value.clone(),
        namespace: site.argocd_namespace.clone(),
        management,
        root: layout.root.render(&vars),
        apps: layout.apps.render(&vars),
        keelson_dir: keelson_dir(estate, &site.name.value),
        workload_clusters,
        applications,
        projects: projects.into_iter().collect(),
        image_updater: here.iter().any(|d| is_live(d)),
        waves: here.iter().any(|d| {
            input
                .graph
                .waves
                .get(d.app_id.index())
                .is_some_and(|&w| w > 0)
        }),
    }
}

/// One row of a site's Applications table.
fn app_row(input: &Inputs<'_>, d: &Dep<'_>) -> AppCx {
    let images: Vec<String> = d
        .app
        .images
        .iter()
        .enumerate()
        .map(|(ii, image)| {
            let decided = input.decisions.images.get(&(d.app_id, d.stage_id(), ii));
            let reference = match decided.map(|x| (&x.tag, &x.digest)) {
                Some((Some(t), Some(dg))) => {
                    format!("{}:{t}@{dg}", image.repository.value.0)
                }
                Some((Some(t), None)) => format!("{}:{t}", image.repository.value.0),
                Some((None, Some(dg))) => format!("{}@{dg}", image.repository.value.0),
                _ => image.repository.value.0.clone(),
            };
            format!("`{reference}`")
        })
        .collect();
    AppCx {
        name: d.name.clone(),
        app: d.app.name.value.clone(),
        stage: d.stage.name.value.clone(),
        cluster: d.cluster.name.value.clone(),
        namespace: d.d.namespace.value.clone(),
        images: if images.is_empty() {
            "from the manifests".into()
        } else {
            images.join(", ")
        },
        updates: how_updated(input.estate, d),
    }
}

/// The "updates" column: who moves the deployment's images, and how.
fn how_updated(estate: &Estate, d: &Dep<'_>) -> String {
    let all_pinned = d
        .app
        .images
        .iter()
        .enumerate()
        .all(|(ii, _)| d.d.pins.iter().any(|p| p.image == ii));
    if d.app.images.is_empty() {
        "no image tracked".to_string()
    } else if all_pinned {
        "pinned in the estate".to_string()
    } else if !is_live(d) {
        match &d.stage.source {
            StageSource::Promotion { from, .. } => {
                format!(
                    "promoted from `{}` by keelson",
                    estate.stage(from.value).name.value
                )
            }
            _ => "pinned by keelson".into(),
        }
    } else {
        match &d.stage.write_back.value {
            WriteBack::Git { .. } => "Image Updater commits to git".into(),
            WriteBack::PullRequest { .. } => "Image Updater opens pull requests".into(),
            WriteBack::Argocd => "Image Updater patches the live Application".into(),
            WriteBack::Pinned => "pinned by keelson".into(),
        }
    }
}

/// The Secrets Image Updater needs on a site where it runs: registry
/// credentials, and the credentials its write-backs push with.
fn image_updater_secrets(
    estate: &Estate,
    site: &Site,
    here: &[&Dep<'_>],
    secrets: &mut BTreeSet<SecretCx>,
) {
    for r in &estate.registries {
        if let Some(c) = &r.credentials {
            let (where_, reference) = match &c.value {
                CredentialRef::Env(var) => (
                    "the Image Updater pod".to_string(),
                    format!("environment variable {var}"),
                ),
                CredentialRef::Ext(path) => (
                    "the Image Updater pod".to_string(),
                    format!("script {path}"),
                ),
                other => (format!("site `{}`", site.name.value), other.to_string()),
            };
            secrets.insert(SecretCx {
                where_,
                reference,
                purpose: format!(
                    "Image Updater reads registry `{}` ({})",
                    r.name.value, r.prefix.value
                ),
            });
        }
    }
    for d in here.iter().filter(|d| is_live(d)) {
        if let WriteBack::Git {
            credentials: Some(c),
            ..
        }
        | WriteBack::PullRequest {
            credentials: Some(c),
            ..
        } = &d.stage.write_back.value
        {
            // `repocreds` is Argo CD's own repository Secret, listed below.
            if c == "repocreds" {
                continue;
            }
            secrets.insert(SecretCx {
                where_: format!("site `{}`", site.name.value),
                reference: c.clone(),
                purpose: format!(
                    "Image Updater pushes write-backs for stage `{}`",
                    d.stage.name.value
                ),
            });
        }
    }
}

/// The repository Secret Argo CD reads the tree with, when the estate names one.
fn repository_secret(estate: &Estate, site: &Site) -> Option<SecretCx> {
    let c = estate.repo.credentials.as_ref()?;
    Some(SecretCx {
        where_: format!("site `{}`", site.name.value),
        reference: format!(
            "{}/{}",
            c.value
                .namespace
                .as_deref()
                .unwrap_or(&site.argocd_namespace),
            c.value.name
        ),
        purpose: format!(
            "Argo CD reads `{}` (a Secret labelled `argocd.argoproj.io/secret-type: repository`)",
            estate.repo.url.value
        ),
    })
}

/// The rows of the "Where things are" table, by path.
fn where_things_are(sites: &[SiteCx], deps: &[Dep<'_>]) -> String {
    let mut paths: BTreeMap<String, String> = BTreeMap::new();
    for site in sites {
        paths.insert(
            site.root.clone(),
            format!(
                "the root Application of site `{}`: apply it once",
                site.name
            ),
        );
        paths.insert(
            format!("{}/", site.apps),
            format!("the Applications of site `{}`", site.name),
        );
        paths.insert(
            format!("{}/", site.keelson_dir),
            format!(
                "AppProjects and Image Updater resources of site `{}`",
                site.name
            ),
        );
    }
    for d in deps {
        match &d.app.manifests {
            Manifests::Chart { .. } => {}
            _ => {
                paths.insert(
                    format!("{}/", d.base),
                    format!("the kustomize base of app `{}`", d.app.name.value),
                );
                paths.insert(
                    format!("{}/", d.overlay),
                    format!(
                        "app `{}` in stage `{}`: the overlay that pins its images",
                        d.app.name.value, d.stage.name.value
                    ),
                );
            }
        }
    }
    paths
        .into_iter()
        .map(|(path, what)| format!("\n| `{path}` | {what} |"))
        .collect()
}

/// Renders the template and puts README.md; a template error is a
/// diagnostic, never a panic.
fn render(estate: &Estate, cx: &Context, out: &mut Emitter<'_>) {
    let context = match tera::Context::from_serialize(cx) {
        Ok(c) => c,
        Err(e) => {
            out.diags.push(Diagnostic::error(
                Code::InvalidManifest,
                estate.repo.loc,
                format!("the README could not be rendered: {e}"),
            ));
            return;
        }
    };
    match tera::Tera::one_off(TEMPLATE, &context, false) {
        Ok(text) => out.put(
            "README.md",
            text.into_bytes(),
            "the README",
            estate.repo.loc,
        ),
        Err(e) => out.diags.push(Diagnostic::error(
            Code::InvalidManifest,
            estate.repo.loc,
            format!("the README could not be rendered: {e}"),
        )),
    }
}
