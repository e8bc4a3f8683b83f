//! An app's manifests: exactly one of `manifests` (a directory of YAML),
//! `template` (a standard template with `params`) or `chart` (a Helm chart),
//! and inline Helm `values`.

use std::path::{Path, PathBuf};

use kdl::KdlNode;

use super::STDLIB_TEMPLATES;
use super::read::{Cx, Shape, suggest};
use super::shared::{params_block, relative_path};
use crate::diagnostic::{Code, Label};
use crate::model::{Manifests, Spanned};
use crate::rules;

/// The app's manifests; `None` when they are missing or unusable (reported).
pub(super) fn lower_manifests(
    cx: &mut Cx<'_>,
    node: &KdlNode,
    app: &Spanned<String>,
) -> Option<Manifests> {
    let m = manifest_source(cx, node, app)?;
    match m.name().value() {
        "manifests" => lower_directory(cx, m),
        "template" => lower_template(cx, m),
        _ => lower_chart(cx, m),
    }
}

/// The first of the app's `manifests`, `template` and `chart` children; each
/// further one is reported, and having none is too.
fn manifest_source<'n>(
    cx: &mut Cx<'_>,
    node: &'n KdlNode,
    app: &Spanned<String>,
) -> Option<&'n KdlNode> {
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
    Some(given[0])
}

/// `manifests "./apps/api"`: a directory of YAML in the estate.
fn lower_directory(cx: &mut Cx<'_>, m: &KdlNode) -> Option<Manifests> {
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
        .help = Some("write the directory relative to the estate, e.g. `\"./apps/api\"`".into());
        return None;
    }
    Some(Manifests::Directory(Spanned::new(
        PathBuf::from(&p.value),
        p.loc,
    )))
}

/// `template "web-service" { params … }`: a standard template.
fn lower_template(cx: &mut Cx<'_>, m: &KdlNode) -> Option<Manifests> {
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

/// `chart "NAME" repo="…" version="…"`: a Helm chart, with inline `values`
/// and a `values-file`.
fn lower_chart(cx: &mut Cx<'_>, m: &KdlNode) -> Option<Manifests> {
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
        cx.error(
            Code::InvalidUrl,
            repo.loc,
            format!("`{}` is not a chart repository URL: {why}", repo.value),
        )
        .help = Some(
            "write the Helm repository's URL, e.g. `repo=\"https://argoproj.github.io/argo-helm\"`"
                .into(),
        );
    }
    let version = cx
        .req_prop_str(m, "version", "\"1.0.1\"")
        .map(|v| v.value)
        .unwrap_or_default();
    let values = cx
        .single_child(m, "values")
        .and_then(|v| lower_values(cx, v));
    let values_file = cx
        .single_child(m, "values-file")
        .and_then(|v| values_file(cx, v));
    Some(Manifests::Chart {
        name: chart,
        repo,
        version,
        values,
        values_file,
    })
}

/// `values-file "./values/api.yaml"`: a file of Helm values in the estate.
fn values_file(cx: &mut Cx<'_>, v: &KdlNode) -> Option<Spanned<PathBuf>> {
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
}

/// Inline Helm values: a YAML mapping in a (multi-line) string.
pub(super) fn lower_values(cx: &mut Cx<'_>, node: &KdlNode) -> Option<Spanned<String>> {
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
