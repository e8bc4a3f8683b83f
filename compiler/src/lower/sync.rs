//! `sync`: the Argo CD sync policy, for an app (over the defaults) or for one
//! of its deployments (over the app's).

use kdl::KdlNode;

use super::SYNC_OPTIONS;
use super::read::{Cx, Shape, suggest};
use super::shared::duration_prop;
use crate::diagnostic::Code;
use crate::model::{Retry, Spanned, SyncPolicy};

/// `base` with what the `sync` node sets replacing it.
pub(super) fn lower_sync(cx: &mut Cx<'_>, node: &KdlNode, base: &SyncPolicy) -> SyncPolicy {
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
    // Options given here replace the inherited ones rather than adding to them.
    if !option_nodes.is_empty() {
        s.options.clear();
    }
    for n in option_nodes {
        sync_options(cx, n, &mut s.options);
    }
    if let Some(r) = cx.single_child(node, "retry") {
        s.retry = Some(retry(cx, r));
    }
    s
}

/// One `options` node's `Name=value` sync options, added to `options` once each.
fn sync_options(cx: &mut Cx<'_>, n: &KdlNode, options: &mut Vec<String>) {
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
                    unknown_option(cx, &o, k, v);
                }
                if !options.contains(&o.value) {
                    options.push(o.value);
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
                .help =
                    Some("sync options are `Name=value`, e.g. `\"CreateNamespace=true\"`".into());
            }
        }
    }
}

/// Warns about an option Argo CD does not know (a warning only: the option is
/// still passed on).
fn unknown_option(cx: &mut Cx<'_>, o: &Spanned<String>, k: &str, v: &str) {
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

/// `retry`: how Argo CD retries a failed sync.
fn retry(cx: &mut Cx<'_>, r: &KdlNode) -> Retry {
    cx.check_shape(
        r,
        "`retry`",
        &Shape {
            args: 0,
            props: &["limit", "backoff", "factor", "max-backoff"],
            children: Some(&[]),
        },
    );
    Retry {
        limit: cx.prop_uint(r, "limit", 1000).map(|l| l.value as i64),
        backoff_duration: duration_prop(cx, r, "backoff"),
        backoff_factor: cx.prop_uint(r, "factor", 100).map(|f| f.value as i64),
        backoff_max_duration: duration_prop(cx, r, "max-backoff"),
    }
}
