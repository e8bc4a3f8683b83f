//! An app's `deploy`: one stage, the cluster and namespace it runs in there,
//! and what it overrides for that stage (sync, pinned images, values, params).

use kdl::KdlNode;

use super::declare::{AllNames, Names, resolve};
use super::manifests::lower_values;
use super::read::{Cx, Shape, code_list, suggest};
use super::shared::{check_dns_label, params_block, write_back_target};
use super::sync::lower_sync;
use crate::diagnostic::{Code, Label};
use crate::model::{
    ClusterId, Deployment, Estate, Image, Manifests, Pin, SiteId, Spanned, SyncPolicy,
};
use crate::rules;

/// One deployment of an app, or `None` when its stage, cluster or namespace
/// is missing or unknown (reported).
pub(super) fn lower_deployment(
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
            children: Some(&["pin", "sync", "values", "params", "write-back-target"]),
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
        if let Some(pin) = lower_pin(cx, p, images, &pins) {
            pins.push(pin);
        }
    }
    let values = deploy_values(cx, node, manifests);
    let params = params_block(cx, node);
    let write_back_target = write_back_target(cx, node);
    Some(Deployment {
        stage: stage?,
        cluster: cluster?,
        namespace: namespace?,
        replicas,
        sync,
        pins,
        values,
        params,
        write_back_target,
        loc,
    })
}

/// `pin "api" tag="1.4.2"`: one of the app's images held at a tag or digest.
/// `None` when it is unusable or pins an image pinned before (reported).
fn lower_pin(cx: &mut Cx<'_>, p: &KdlNode, images: &[Image], pins: &[Pin]) -> Option<Pin> {
    cx.check_shape(
        p,
        "`pin`",
        &Shape {
            args: 1,
            props: &["tag", "digest"],
            children: Some(&[]),
        },
    );
    let alias = cx.req_arg_str(p, 0, "an image alias", "\"api\"")?;
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
        return None;
    };
    let tag = cx.prop_str(p, "tag");
    let digest = cx.prop_str(p, "digest");
    check_pin_values(cx, tag.as_ref(), digest.as_ref());
    if tag.is_none() && digest.is_none() {
        let pl = cx.name_loc(p);
        cx.error(Code::MissingValue, pl, "`pin` needs `tag` or `digest`")
            .help = Some(format!("write `pin \"{}\" tag=\"1.4.2\"`", alias.value));
        return None;
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
        return None;
    }
    Some(Pin {
        image: index,
        tag: tag.map(|t| t.value),
        digest: digest.map(|d| d.value),
        loc: cx.node_loc(p),
    })
}

/// Reports a pinned `tag` or `digest` that is not one.
fn check_pin_values(
    cx: &mut Cx<'_>,
    tag: Option<&Spanned<String>>,
    digest: Option<&Spanned<String>>,
) {
    if let Some(t) = tag {
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
    if let Some(d) = digest {
        if let Err(why) = rules::digest(&d.value) {
            cx.error(
                Code::InvalidValue,
                d.loc,
                format!("`{}` is not a digest", d.value),
            )
            .help = Some(why);
        }
    }
}

/// The deployment's Helm `values`; `values` on an app that is not a chart,
/// and `params` on one that is not a template, are reported.
fn deploy_values(
    cx: &mut Cx<'_>,
    node: &KdlNode,
    manifests: &Option<Manifests>,
) -> Option<Spanned<String>> {
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
    values
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
            no_such_cluster(cx, c, site, name, estate, sites);
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

/// Reports a cluster reference that matches no cluster: the site when that
/// is what is unknown, else the cluster, with the closest one written the
/// same way (qualified by site or not).
fn no_such_cluster(
    cx: &mut Cx<'_>,
    c: &Spanned<String>,
    site: Option<&str>,
    name: &str,
    estate: &Estate,
    sites: &Names<SiteId>,
) {
    if let Some(s) = site {
        if sites.get(s).is_none() {
            let help = sites
                .suggest(s)
                .map_or_else(|| sites.list(), |x| format!("did you mean `{x}/{name}`?"));
            cx.error(Code::UnknownSite, c.loc, format!("there is no site `{s}`"))
                .help = Some(help);
            return;
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
}
