//! The repo's `layout` block: where the generated files go and what the
//! Applications are called, as templates over `{site}`, `{cluster}`, `{app}`
//! and `{stage}`. Rendering them and checking for collisions happens once the
//! estate is whole, in `checks.rs`.

use std::path::Path;

use kdl::KdlNode;

use super::read::{Cx, Shape, code_list, suggest};
use super::shared::relative_path;
use crate::diagnostic::Code;
use crate::model::{Layout, PathTemplate, Placeholder, Spanned, TemplatePart};

/// The layout when the estate does not give one (or gives a part badly).
pub(super) fn default_layout() -> Layout {
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

/// Splits a template into literals and placeholders.
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

/// What one layout key may be.
struct Rule {
    key: &'static str,
    /// The placeholders it may use.
    allowed: &'static [Placeholder],
    /// Whether it names a YAML file (else a directory, or the `name`).
    yaml_file: bool,
    /// Why other placeholders are not allowed, for the help.
    why: &'static str,
}

/// The rules for every layout key, in the order they are read.
const RULES: [Rule; 6] = {
    use Placeholder::*;
    const fn rule(
        key: &'static str,
        allowed: &'static [Placeholder],
        yaml_file: bool,
        why: &'static str,
    ) -> Rule {
        Rule {
            key,
            allowed,
            yaml_file,
            why,
        }
    }
    [
        rule("root", &[Site], true, "one file per site"),
        rule("apps", &[Site], false, "one directory per site"),
        rule("application", &[Site, Cluster, App, Stage], true, ""),
        rule("name", &[Site, Cluster, App, Stage], false, ""),
        rule(
            "base",
            &[App],
            false,
            "a base is shared by every stage and cluster",
        ),
        rule("overlay", &[Site, Cluster, App, Stage], false, ""),
    ]
};

/// The layout, each key given replacing its default; a key given badly is
/// reported and keeps its default.
pub(super) fn lower_layout(cx: &mut Cx<'_>, node: &KdlNode) -> Layout {
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
    for rule in &RULES {
        let Some(value) = cx.prop_str(node, rule.key) else {
            continue;
        };
        let Some(t) = layout_template(cx, value, rule) else {
            continue;
        };
        match rule.key {
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

/// One layout key's template, or `None` when anything about it is wrong
/// (every problem reported).
fn layout_template(cx: &mut Cx<'_>, value: Spanned<String>, rule: &Rule) -> Option<PathTemplate> {
    let key = rule.key;
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
            return None;
        }
    };
    let mut ok = placeholders_allowed(cx, &value, &parts, rule);
    if key == "apps" && (value.value.is_empty() || value.value == ".") {
        cx.error(Code::InvalidLayout, value.loc, "layout `apps` cannot be the repository root").help =
            Some("the root Application applies every YAML file under `apps`; give it a directory of its own, e.g. `apps=\"apps/{site}\"`".into());
        return None;
    }
    if key != "name" {
        if let Err(e) = relative_path(Path::new(&value.value)) {
            ok = false;
            cx.error(Code::InvalidPath, value.loc, format!("layout `{key}` {e}"))
                .help =
                Some("layout paths are relative to the root of the generated repository".into());
        }
    }
    if rule.yaml_file && !(value.value.ends_with(".yaml") || value.value.ends_with(".yml")) {
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
    ok.then(|| PathTemplate {
        raw: value.value.clone(),
        parts,
        loc: Some(value.loc),
    })
}

/// Reports each placeholder the key may not use; true when there is none.
fn placeholders_allowed(
    cx: &mut Cx<'_>,
    value: &Spanned<String>,
    parts: &[TemplatePart],
    rule: &Rule,
) -> bool {
    let mut ok = true;
    for p in parts {
        if let TemplatePart::Placeholder(p) = p {
            if !rule.allowed.contains(p) {
                ok = false;
                cx.error(
                    Code::InvalidLayout,
                    value.loc,
                    format!("layout `{}` cannot use `{{{}}}`", rule.key, p.name()),
                )
                .help = Some(format!(
                    "{}; `{}` may use {}",
                    rule.why,
                    rule.key,
                    code_list(rule.allowed.iter().map(|p| format!("{{{}}}", p.name())))
                ));
            }
        }
    }
    ok
}
