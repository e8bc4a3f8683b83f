//! Small readers and checks that more than one entity uses.

use std::path::{Component, Path};

use kdl::KdlNode;

use super::read::{Cx, Shape, params_to_json};
use crate::diagnostic::Code;
use crate::model::{SecretRef, Spanned, TargetKind, WriteBackTarget};
use crate::rules;

/// Reports `value` unless it is a DNS-1123 label; `what` names it ("a namespace").
pub(super) fn check_dns_label(cx: &mut Cx<'_>, value: &Spanned<String>, what: &str) {
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

/// A path that stays inside the directory it is relative to.
pub(super) fn relative_path(p: &Path) -> Result<(), String> {
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

/// A `params { … }` child, read as free-form parameters (empty when absent).
pub(super) fn params_block(
    cx: &mut Cx<'_>,
    node: &KdlNode,
) -> serde_json::Map<String, serde_json::Value> {
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
pub(super) fn duration_prop(cx: &mut Cx<'_>, node: &KdlNode, key: &str) -> Option<String> {
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

/// `name` or `namespace/name` of a Kubernetes Secret.
pub(super) fn parse_secret_ref(s: &str) -> Option<SecretRef> {
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

/// A `write-back-target "…"` child of an app or a deployment: where Image
/// Updater's git write-back edits, in `writeBackTarget`'s own syntax.
/// Whether it points at the file keelson writes is checked once the estate
/// is whole (`checks.rs`).
pub(super) fn write_back_target(
    cx: &mut Cx<'_>,
    node: &KdlNode,
) -> Option<Spanned<WriteBackTarget>> {
    let t = cx.single_child(node, "write-back-target")?;
    cx.check_shape(
        t,
        "`write-back-target`",
        &Shape {
            args: 1,
            props: &[],
            children: Some(&[]),
        },
    );
    let raw = cx.req_arg_str(
        t,
        0,
        "a write-back target",
        "\"kustomization:/clusters/prod/api\"",
    )?;
    match parse_write_back_target(&raw.value) {
        Ok(target) => Some(Spanned::new(target, raw.loc)),
        Err(why) => {
            cx.error(
                Code::InvalidValue,
                raw.loc,
                format!("`{}` is not a write-back target: {why}", raw.value),
            )
            .help = Some("write `kustomization` (the kustomization in the Application's path), `kustomization:DIR` or `helmvalues:FILE`; a path starting with `/` is from the repository root, any other is relative to the Application's path".into());
            None
        }
    }
}

/// Reads `kustomization[:PATH]` or `helmvalues[:PATH]`.
fn parse_write_back_target(raw: &str) -> Result<WriteBackTarget, String> {
    let (kind, path) = match raw.split_once(':') {
        Some((k, p)) => (k, Some(p)),
        None => (raw, None),
    };
    let kind = match kind {
        "kustomization" => TargetKind::Kustomization,
        "helmvalues" => TargetKind::HelmValues,
        _ if path.is_none() => {
            return Err(
                "Image Updater would read it as a file to write parameter overrides to, which keelson does not generate".into(),
            );
        }
        other => return Err(format!("`{other}` is not `kustomization` or `helmvalues`")),
    };
    if let Some(p) = path {
        if p.contains('\\') {
            return Err("it uses `\\`; write `/` between directories".into());
        }
        if p.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err("its path has whitespace or control characters".into());
        }
    }
    Ok(WriteBackTarget {
        kind,
        path: path.map(str::to_string),
    })
}
