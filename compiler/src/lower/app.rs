//! `app`: something to deploy. Its manifests (`manifests.rs`), images
//! (`image.rs`), the apps it depends on, its sync policy (`sync.rs`) and one
//! deployment per stage (`deploy.rs`).

use std::path::PathBuf;

use kdl::{KdlNode, KdlValue};

use super::declare::{AllNames, Kind, Names, resolve};
use super::deploy::lower_deployment;
use super::image::lower_image;
use super::manifests::lower_manifests;
use super::read::{Cx, Shape};
use super::shared::write_back_target;
use super::sync::lower_sync;
use super::{Decl, Lowerer, RESERVED_APP_NAMES};
use crate::diagnostic::{Code, Label};
use crate::model::{
    App, AppId, Deployment, Estate, Image, Manifests, ProjectRef, Spanned, SyncPolicy,
};

const APP: Kind = Kind {
    node: "app",
    what: "an app name",
    example: "\"api\"",
    shape: Shape {
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
            "write-back-target",
        ]),
    },
};

impl Lowerer<'_> {
    /// Every app. Apps depend on apps, so all are declared before any is
    /// lowered.
    pub(super) fn lower_apps(
        &mut self,
        decls: Vec<Decl<'_>>,
        estate: &Estate,
        names: &AllNames<'_>,
    ) -> Vec<App> {
        let (declared, app_names) = self.lower_named(decls, &APP, AppId, |cx, node, name, _| {
            if RESERVED_APP_NAMES.contains(&name.value.as_str()) {
                cx.error(Code::PathCollision, name.loc, format!("the app name `{}` is reserved", name.value)).help =
                    Some("keelson names the root Application and the Image Updater installation so; rename the app".into());
            }
            (cx.file, node, name)
        });
        let mut apps = Vec::new();
        for (file, node, name) in declared {
            let mut cx = self.cx(file);
            apps.push(lower_app(&mut cx, node, name, estate, names, &app_names));
        }
        apps
    }
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
    let images = lower_images(cx, node, &name, estate, names, is_chart);
    let depends_on = depends_on(cx, node, app_names);
    let write_back_target = write_back_target(cx, node);
    let app_sync = match cx.single_child(node, "sync") {
        Some(s) => lower_sync(cx, s, &SyncPolicy::default()),
        None => SyncPolicy::default(),
    };
    let mut deployments: Vec<Deployment> = Vec::new();
    let mut deploy_stages = Vec::new();
    for dnode in cx.children(node, "deploy").collect::<Vec<_>>() {
        // Every stage the app names, even in a deployment that fails to
        // lower, so the promotion check does not add a second error.
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
    // No manifests (reported): an empty directory stands in.
    let manifests = manifests.unwrap_or(Manifests::Directory(Spanned::new(PathBuf::new(), loc)));
    App {
        name,
        project,
        manifests,
        images,
        deployments,
        deploy_stages,
        depends_on,
        write_back_target,
        loc,
    }
}

/// Every `image` of the app, each alias once.
fn lower_images(
    cx: &mut Cx<'_>,
    node: &KdlNode,
    app: &Spanned<String>,
    estate: &Estate,
    names: &AllNames<'_>,
    is_chart: bool,
) -> Vec<Image> {
    let mut images: Vec<Image> = Vec::new();
    for inode in cx.children(node, "image").collect::<Vec<_>>() {
        if let Some(image) = lower_image(cx, inode, estate, names, is_chart) {
            if let Some(first) = images.iter().find(|i| i.alias.value == image.alias.value) {
                let d = cx.error(
                    Code::DuplicateName,
                    image.alias.loc,
                    format!(
                        "image alias `{}` is used twice in app `{}`",
                        image.alias.value, app.value
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
    images
}

/// The apps named by every `depends-on` child; unknown ones are reported.
fn depends_on(cx: &mut Cx<'_>, node: &KdlNode, app_names: &Names<AppId>) -> Vec<Spanned<AppId>> {
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
    depends_on
}
