//! Estate-wide checks: what can only be checked once every entity is lowered
//! (promotion sources, chart write-back, derived project names, the rendered
//! layout), and the literal-secret scan, which reads the raw KDL instead.

use std::collections::HashMap;

use kdl::{KdlNode, KdlValue};

use super::shared::parse_secret_ref;
use super::{Lowerer, RESERVED_APP_NAMES};
use crate::diagnostic::{Code, Diagnostic, Diagnostics, FileId, Loc};
use crate::model::{
    App, Deployment, Estate, Layout, Manifests, PathTemplate, ProjectRef, SiteId, StageSource,
    TargetKind, TemplateVars, WriteBack,
};
use crate::rules;

impl Lowerer<'_> {
    /// A stage that promotes from `U` needs the app deployed to `U` too.
    pub(super) fn check_promotion_sources(&mut self, estate: &Estate) {
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
    pub(super) fn check_chart_write_back(&mut self, estate: &Estate) {
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
    pub(super) fn check_derived_projects(&mut self, estate: &Estate) {
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
    pub(super) fn check_layout(&mut self, estate: &Estate) {
        let mut check = LayoutCheck {
            estate,
            layout: &estate.repo.layout,
            diags: self.diags,
            paths: HashMap::new(),
            app_names: HashMap::new(),
        };
        let apps_dirs = check.site_roots();
        for app in &estate.apps {
            check.app(app);
        }
        check.nothing_else_in(&apps_dirs);
    }

    /// A `write-back-target` must name what keelson writes for that
    /// deployment: the kustomization of its overlay, which carries its
    /// `images:`. keelson writes no Helm values file (a chart app's values
    /// are inline in its Application), so a `helmvalues` target never does.
    /// Only git-written stages take one: `argocd` patches the live
    /// Application and `pinned` has no Image Updater at all.
    pub(super) fn check_write_back_targets(&mut self, estate: &Estate) {
        let layout = &estate.repo.layout;
        // Every overlay, to say whose a wrong target names.
        let mut overlays: HashMap<String, String> = HashMap::new();
        for app in &estate.apps {
            for d in &app.deployments {
                let vars = estate.deployment_vars(app, d);
                overlays
                    .entry(layout.overlay.render(&vars))
                    .or_insert_with(|| {
                        format!(
                            "the overlay of app `{}` in stage `{}`",
                            app.name.value, vars.stage
                        )
                    });
            }
            let base = layout.base.render(&TemplateVars {
                app: &app.name.value,
                ..Default::default()
            });
            overlays.entry(base).or_insert_with(|| {
                format!(
                    "the base of app `{}`, whose kustomization pins no image",
                    app.name.value
                )
            });
        }
        for app in &estate.apps {
            if let Some(t) = &app.write_back_target {
                let commits = app
                    .deployments
                    .iter()
                    .any(|d| estate.stage(d.stage.value).write_back.value.commits());
                if !commits && !app.deployments.is_empty() {
                    self.diags.push(
                        Diagnostic::error(
                            Code::Conflict,
                            t.loc,
                            format!(
                                "app `{}` has a write-back target, but none of its stages writes back to git",
                                app.name.value
                            ),
                        )
                        .with_help("a target says which file Image Updater commits to; it applies to stages with `write-back \"git\"` or `\"pull-request\"`. Remove it, or deploy the app to such a stage"),
                    );
                }
            }
            for d in &app.deployments {
                self.check_write_back_target(estate, app, d, &overlays);
            }
        }
    }

    fn check_write_back_target(
        &mut self,
        estate: &Estate,
        app: &App,
        d: &Deployment,
        overlays: &HashMap<String, String>,
    ) {
        let Some(target) = app.write_back_target(d) else {
            return;
        };
        let stage = estate.stage(d.stage.value);
        let vars = estate.deployment_vars(app, d);
        let who = format!("app `{}` in stage `{}`", app.name.value, stage.name.value);
        let own = d.write_back_target.is_some();
        let wb = &stage.write_back;
        if !wb.value.commits() {
            // An app-wide target applies to its git-written stages only.
            if own {
                let why = match wb.value {
                    WriteBack::Argocd => {
                        "Image Updater patches the live Application and commits nothing"
                    }
                    _ => "keelson pins the stage itself and no Image Updater updates it",
                };
                self.diags.push(
                    Diagnostic::error(
                        Code::Conflict,
                        target.loc,
                        format!(
                            "{who} has a write-back target, but stage `{}` uses `{}` write-back: {why}",
                            stage.name.value,
                            wb.value.name()
                        ),
                    )
                    .with_secondary(wb.loc, "write-back set here")
                    .with_help("remove `write-back-target`, or give the stage `write-back \"git\"` or `\"pull-request\"`"),
                );
            }
            return;
        }
        // A chart app in a git-written stage is refused on its own
        // (`check_chart_write_back`).
        if matches!(app.manifests, Manifests::Chart { .. }) {
            return;
        }
        let overlay = estate.repo.layout.overlay.render(&vars);
        let kustomization = format!("`{overlay}/kustomization.yaml`");
        let Some(resolved) = target.value.resolve(&overlay) else {
            self.diags.push(
                Diagnostic::error(
                    Code::WriteBackTarget,
                    target.loc,
                    format!(
                        "the write-back target `{}` of {who} leads out of the repository (relative paths start at the Application's path, `{overlay}`)",
                        target.value
                    ),
                )
                .with_secondary(d.loc, "this deployment")
                .with_help(format!("keelson writes this deployment's images to {kustomization}: write `kustomization`, or `kustomization:/{overlay}`")),
            );
            return;
        };
        let (problem, help) = match target.value.kind {
            TargetKind::Kustomization if resolved == overlay => return,
            TargetKind::Kustomization => {
                let whose = match overlays.get(&resolved) {
                    Some(other) => format!(", {other}"),
                    None => ", where keelson writes no kustomization".into(),
                };
                (
                    format!(
                        "the write-back target `{}` of {who} is the kustomization in `{resolved}`{whose}; keelson writes this deployment's images to {kustomization}, its overlay",
                        target.value
                    ),
                    format!(
                        "write `kustomization` (the overlay, wherever the layout puts it) or `kustomization:/{overlay}`; to have the overlay at `{resolved}` instead, change the layout's `overlay`, or the stage, cluster or app name it is made of"
                    ),
                )
            }
            TargetKind::HelmValues => (
                format!(
                    "the write-back target `{}` of {who} is the Helm values file `{resolved}`, which keelson does not write: the app is built with kustomize, and its images are pinned in {kustomization}, its overlay",
                    target.value
                ),
                format!(
                    "write `kustomization` or `kustomization:/{overlay}`, or remove the target (the overlay is the default)"
                ),
            ),
        };
        let mut diag = Diagnostic::error(Code::WriteBackTarget, target.loc, problem)
            .with_secondary(d.loc, "this deployment");
        if let (TargetKind::Kustomization, Some(l)) =
            (target.value.kind, estate.repo.layout.overlay.loc)
        {
            diag = diag.with_secondary(l, "the layout's `overlay`");
        }
        self.diags.push(diag.with_help(help));
    }

    // ---- secrets ----------------------------------------------------------------

    /// Every string anywhere in the estate is checked for literal secrets:
    /// credentials belong in Secrets, and the estate holds only references.
    pub(super) fn scan_secrets(&mut self, file: FileId, nodes: &[KdlNode]) {
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

/// The layout rendered for every site, app and deployment, and what has
/// claimed each output so far.
struct LayoutCheck<'e, 'd> {
    estate: &'e Estate,
    layout: &'e Layout,
    diags: &'d mut Diagnostics,
    /// Generated path → where and what claimed it first.
    paths: HashMap<String, (Loc, String)>,
    /// (site, Application name) → where and what claimed it first.
    app_names: HashMap<(SiteId, String), (Loc, String)>,
}

impl LayoutCheck<'_, '_> {
    /// Where a template was written; the `repo` node for a default one.
    fn layout_loc(&self, t: &PathTemplate) -> Loc {
        t.loc.unwrap_or(self.estate.repo.loc)
    }

    /// Records that `what` is written to `path`, reporting a collision when
    /// something else already is.
    fn claim(&mut self, path: String, loc: Loc, what: String, tmpl: &PathTemplate) {
        let layout = self.layout_loc(tmpl);
        if let Some((first_loc, first_what)) = self.paths.get(&path) {
            self.diags.push(
                Diagnostic::error(
                    Code::PathCollision,
                    loc,
                    format!("{what} and {first_what} would both be written to `{path}`"),
                )
                .with_secondary(*first_loc, first_what.clone())
                .with_secondary(layout, "the layout path")
                .with_help(
                    "rename one of them, or add placeholders to the layout so the paths differ",
                ),
            );
        } else {
            self.paths.insert(path, (loc, what));
        }
    }

    /// Claims each site's root file; returns each site's apps directory.
    fn site_roots(&mut self) -> Vec<(String, SiteId)> {
        let (estate, layout) = (self.estate, self.layout);
        let mut apps_dirs = Vec::new();
        for (i, site) in estate.sites.iter().enumerate() {
            let vars = TemplateVars {
                site: &site.name.value,
                ..Default::default()
            };
            self.claim(
                layout.root.render(&vars),
                site.name.loc,
                format!("the root of site `{}`", site.name.value),
                &layout.root,
            );
            apps_dirs.push((layout.apps.render(&vars), SiteId(i as u32)));
        }
        apps_dirs
    }

    /// Claims the app's base, and each deployment's Application file, overlay
    /// and Application name.
    fn app(&mut self, app: &App) {
        let layout = self.layout;
        let base = layout.base.render(&TemplateVars {
            app: &app.name.value,
            ..Default::default()
        });
        self.claim(
            base,
            app.name.loc,
            format!("the base of app `{}`", app.name.value),
            &layout.base,
        );
        for d in &app.deployments {
            self.deployment(app, d);
        }
    }

    fn deployment(&mut self, app: &App, d: &Deployment) {
        let (estate, layout) = (self.estate, self.layout);
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
        self.claim(
            file,
            d.loc,
            format!("the Application of {who}"),
            &layout.application,
        );
        self.claim(
            layout.overlay.render(&vars),
            d.loc,
            format!("the overlay of {who}"),
            &layout.overlay,
        );
        let app_name = layout.name.render(&vars);
        // A part that is itself invalid was reported where it was declared;
        // the name it makes is not reported again.
        let parts_valid = [
            &app.name.value,
            &stage.name.value,
            &cluster.name.value,
            &site.name.value,
        ]
        .iter()
        .all(|n| rules::dns1123_label(n).is_ok());
        if let (true, Err(why)) = (parts_valid, rules::dns1123_subdomain(&app_name)) {
            let mut diag = Diagnostic::error(Code::InvalidName, d.loc, format!("the Application name `{app_name}` of {who} is invalid: {why}"))
                .with_help("Application names must be lowercase DNS-1123 subdomains of at most 253 characters; shorten the layout's `name`");
            if let Some(l) = layout.name.loc {
                diag = diag.with_secondary(l, "the layout's `name`");
            }
            self.diags.push(diag);
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
        self.claim_app_name(cluster.site, app_name, d.loc, who);
    }

    /// Application names are unique within a site (one Argo CD namespace).
    fn claim_app_name(&mut self, site: SiteId, app_name: String, loc: Loc, who: String) {
        match self.app_names.get(&(site, app_name.clone())) {
            Some((first, first_who)) => self.diags.push(
                Diagnostic::error(
                    Code::PathCollision,
                    loc,
                    format!("{who} and {first_who} would both be the Application `{app_name}` in site `{}`", self.estate.site(site).name.value),
                )
                .with_secondary(*first, first_who.clone())
                .with_secondary(self.layout_loc(&self.layout.name), "the layout's `name`")
                .with_help("Application names are unique per Argo CD; add `{stage}` or `{cluster}` to the layout's `name`"),
            ),
            None => {
                self.app_names.insert((site, app_name), (loc, who));
            }
        }
    }

    /// The root syncs every YAML file under the apps directory, so nothing
    /// but Applications (and keelson's own resources) may live there.
    fn nothing_else_in(&mut self, apps_dirs: &[(String, SiteId)]) {
        let layout = self.layout;
        for (path, (loc, what)) in &self.paths {
            for (dir, site) in apps_dirs {
                let inside = path.starts_with(&format!("{dir}/")) || path == dir;
                if inside && !what.starts_with("the Application") {
                    let tmpl_loc = if what.starts_with("the root") {
                        self.layout_loc(&layout.root)
                    } else {
                        self.layout_loc(&layout.apps)
                    };
                    self.diags.push(
                        Diagnostic::error(
                            Code::InvalidLayout,
                            *loc,
                            format!(
                                "{what} (`{path}`) is inside `{dir}`, the directory the root of site `{}` applies",
                                self.estate.site(*site).name.value
                            ),
                        )
                        .with_secondary(tmpl_loc, "the layout path")
                        .with_help("keep roots and manifests outside the layout's `apps` directory"),
                    );
                }
            }
        }
    }
}
