//! An app's `image`: the repository Image Updater watches, how it picks a tag
//! (strategy, constraint, tag filters, platforms, filter policies), which
//! registry serves it, and where in the manifests the image is written.

use kdl::KdlNode;

use super::declare::{AllNames, resolve};
use super::policy::policy_refs;
use super::read::{Cx, Shape, suggest};
use crate::diagnostic::Code;
use crate::model::{
    AllowProblem, AllowTags, Estate, Image, ImageRepo, ImageTarget, RegistryId, Spanned, Strategy,
};
use crate::rules;
use crate::semver::Constraint;

/// The app's image, or `None` when its alias or repository is missing
/// (reported).
pub(super) fn lower_image(
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
    let strategy = match cx.prop_str(node, "strategy") {
        None => Spanned::new(Strategy::Semver, loc),
        Some(s) => Spanned::new(parse_strategy(cx, &s).unwrap_or(Strategy::Semver), s.loc),
    };
    let constraint = cx.prop_str(node, "constraint");
    let semver_constraint = check_constraint(cx, strategy.value, constraint.as_ref(), &alias);
    let allow_tags = cx.prop_str(node, "allow-tags").map(|a| allow_tags(cx, a));
    let ignore_tags = ignore_tags(cx, node);
    let platforms = platforms(cx, node);
    let filters = policy_refs(cx, node, "filter", names.policies);
    let registry = image_registry(cx, node, &repository, estate, names);
    let target = image_target(cx, node, is_chart);
    Some(Image {
        alias,
        repository: Spanned::new(ImageRepo(repository.value), repository.loc),
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

/// `strategy=`, read as Image Updater reads it (case-insensitively, with its
/// deprecated names); `None` when unknown (reported).
fn parse_strategy(cx: &mut Cx<'_>, s: &Spanned<String>) -> Option<Strategy> {
    let Some(parsed) = Strategy::parse(&s.value) else {
        let lowered = s.value.to_ascii_lowercase();
        let help = suggest(&lowered, Strategy::NAMES).map_or_else(
            || "write one of `semver`, `newest-build`, `alphabetical`, `digest`".into(),
            |s| format!("did you mean `{s}`?"),
        );
        cx.error(
            Code::InvalidValue,
            s.loc,
            format!("unknown update strategy `{lowered}`"),
        )
        .help = Some(format!(
            "{help} (Image Updater would silently use `semver` instead)"
        ));
        return None;
    };
    if parsed.deprecated {
        let new = parsed.strategy.name();
        cx.warning(
            Code::InvalidValue,
            s.loc,
            format!("the strategy `{}` is deprecated", s.value),
        )
        .help = Some(format!(
            "write `strategy=\"{new}\"`; Image Updater reads `{}` as `{new}`",
            s.value
        ));
    }
    Some(parsed.strategy)
}

/// Checks `constraint=` against the strategy, whose meaning it depends on.
/// Returns the parsed range for `semver` (`*` when none is given).
fn check_constraint(
    cx: &mut Cx<'_>,
    strategy: Strategy,
    constraint: Option<&Spanned<String>>,
    alias: &Spanned<String>,
) -> Option<Constraint> {
    match (strategy, constraint) {
        (Strategy::Semver, Some(c)) if c.value.trim().is_empty() => Constraint::parse("*").ok(),
        (Strategy::Semver, Some(c)) => match Constraint::parse(&c.value) {
            Ok(parsed) => Some(parsed),
            Err(_) => {
                cx.error(Code::InvalidConstraint, c.loc, format!("`{}` is not a semver constraint", c.value)).help = Some(
                    "write a range such as `^1.2`, `~1.2.0`, `>=1.0 <2.0` or `1.x`; Image Updater refuses to update with an invalid constraint".into(),
                );
                None
            }
        },
        (Strategy::Semver, None) => Constraint::parse("*").ok(),
        (Strategy::Digest, None) => {
            cx.error(
                Code::MissingValue,
                alias.loc,
                "the `digest` strategy needs the tag to track",
            )
            .help = Some(
                "add `constraint=\"latest\"` (or whichever mutable tag to follow by digest)".into(),
            );
            None
        }
        (Strategy::Digest, Some(c)) => {
            if c.value.is_empty()
                || c.value
                    .contains(|ch: char| ch.is_whitespace() || ch == ':' || ch == '@')
            {
                cx.error(Code::InvalidValue, c.loc, format!("`{}` is not a tag", c.value)).help =
                    Some("for `digest`, `constraint` names the one tag to track, e.g. `constraint=\"latest\"`".into());
            }
            None
        }
        (Strategy::NewestBuild | Strategy::Alphabetical, Some(c)) => {
            cx.warning(Code::IgnoredSetting, c.loc, format!("`constraint` has no effect with the `{}` strategy", strategy.name()))
                .help = Some("filter tags with `allow-tags` and `ignore-tags` instead; Image Updater ignores the constraint here".into());
            None
        }
        _ => None,
    }
}

/// `allow-tags=`, with what Image Updater would make of a bad one reported.
fn allow_tags(cx: &mut Cx<'_>, a: Spanned<String>) -> Spanned<AllowTags> {
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
}

/// Every `ignore-tags` child's glob patterns.
fn ignore_tags(cx: &mut Cx<'_>, node: &KdlNode) -> Vec<Spanned<String>> {
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
    ignore_tags
}

/// Every `platforms` child's platforms (`linux/amd64`).
fn platforms(cx: &mut Cx<'_>, node: &KdlNode) -> Vec<Spanned<String>> {
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
    platforms
}

/// The registry serving the image: the one named by `registry=` (which must
/// serve the repository's prefix), else found by prefix.
fn image_registry(
    cx: &mut Cx<'_>,
    node: &KdlNode,
    repository: &Spanned<String>,
    estate: &Estate,
    names: &AllNames<'_>,
) -> Option<RegistryId> {
    let Some(r) = cx.prop_str(node, "registry") else {
        return registry_by_prefix(&repository.value, estate);
    };
    let id =
        resolve(cx, names.registries, &r, Code::UnknownRegistry, "registry").map(|s| s.value)?;
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
    Some(id)
}

/// As Image Updater does: the longest registry prefix that matches, else the
/// default registry for images without a host.
fn registry_by_prefix(repository: &str, estate: &Estate) -> Option<RegistryId> {
    let repo = ImageRepo(repository.to_string());
    let host = repo.registry_host();
    estate
        .registries
        .iter()
        .enumerate()
        .filter(|(_, r)| {
            !r.prefix.value.is_empty() && repository.starts_with(&format!("{}/", r.prefix.value))
                || (host.is_none() && r.default)
        })
        .max_by_key(|(_, r)| r.prefix.value.len())
        .map(|(i, _)| RegistryId(i as u32))
}

/// Where the image is written: Helm value paths for a chart app, else a
/// kustomize image name; the settings of the other kind are reported.
fn image_target(cx: &mut Cx<'_>, node: &KdlNode, is_chart: bool) -> ImageTarget {
    let kustomize_name = cx.prop_str(node, "kustomize-name");
    let helm_name = cx.prop_str(node, "helm-name");
    let helm_tag = cx.prop_str(node, "helm-tag");
    let helm_spec = cx.prop_str(node, "helm-spec");
    if is_chart {
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
    }
}
