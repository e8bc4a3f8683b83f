//! `policy`: a WebAssembly module (standard or the estate's own) that stages
//! use as a `gate` or `filter`; and reading those `gate`/`filter` lists.

use std::path::PathBuf;

use kdl::KdlNode;

use super::declare::{Kind, Names, resolve};
use super::read::{Cx, Shape, code_list, suggest};
use super::shared::{params_block, relative_path};
use super::{Decl, Lowerer, STDLIB_POLICIES};
use crate::diagnostic::Code;
use crate::model::{Blake3Pin, Policy, PolicyId, PolicySource, Spanned};

const POLICY: Kind = Kind {
    node: "policy",
    what: "a policy name",
    example: "\"no-latest\"",
    shape: Shape {
        args: 1,
        props: &["source", "pin"],
        children: Some(&["params"]),
    },
};

impl Lowerer<'_> {
    pub(super) fn lower_policies(
        &mut self,
        decls: Vec<Decl<'_>>,
    ) -> (Vec<Policy>, Names<PolicyId>) {
        self.lower_named(decls, &POLICY, PolicyId, |cx, node, name, _| {
            let loc = cx.node_loc(node);
            // Once declared, a policy must be kept (its id is already in use
            // by references), so a missing source becomes a placeholder.
            let src = cx
                .req_prop_str(node, "source", "\"stdlib:deny-mutable-tags\"")
                .unwrap_or_else(|| Spanned::new("stdlib:".to_string(), loc));
            let source = policy_source(cx, &src);
            let pin = cx.prop_str(node, "pin").and_then(|p| policy_pin(cx, p));
            let params = params_block(cx, node);
            Policy {
                name,
                source: Spanned::new(source, src.loc),
                pin,
                params,
                loc,
            }
        })
    }
}

/// `source=`: `stdlib:NAME`, or the path of a `.wasm` module in the estate.
fn policy_source(cx: &mut Cx<'_>, src: &Spanned<String>) -> PolicySource {
    if let Some(std_name) = src.value.strip_prefix("stdlib:") {
        if !STDLIB_POLICIES.contains(&std_name) && !std_name.is_empty() {
            let help = suggest(std_name, STDLIB_POLICIES).map_or_else(
                || {
                    format!(
                        "the standard policies are: {}",
                        code_list(STDLIB_POLICIES.iter())
                    )
                },
                |s| format!("did you mean `stdlib:{s}`?"),
            );
            cx.error(
                Code::UnknownPolicy,
                src.loc,
                format!("there is no standard policy `{std_name}`"),
            )
            .help = Some(help);
        }
        return PolicySource::Stdlib(std_name.to_string());
    }
    let path = PathBuf::from(&src.value);
    if !src.value.ends_with(".wasm") {
        cx.error(Code::InvalidPath, src.loc, format!("`{}` is not a `.wasm` module", src.value)).help =
            Some("write `stdlib:NAME` for a standard policy, or the path of a `.wasm` file relative to the estate".into());
    } else if let Err(why) = relative_path(&path) {
        cx.error(
            Code::InvalidPath,
            src.loc,
            format!("policy path `{}` {why}", src.value),
        )
        .help = Some("write the module's path relative to the estate directory".into());
    }
    PolicySource::Path(path)
}

/// `pin=`: the module's blake3 hash, with or without the `blake3:` prefix.
fn policy_pin(cx: &mut Cx<'_>, p: Spanned<String>) -> Option<Spanned<Blake3Pin>> {
    let hex = p.value.strip_prefix("blake3:").unwrap_or(&p.value);
    if hex.len() == 64
        && hex
            .chars()
            .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
    {
        Some(Spanned::new(Blake3Pin(hex.to_string()), p.loc))
    } else {
        cx.error(
            Code::InvalidPin,
            p.loc,
            format!("`{}` is not a blake3 hash", p.value),
        )
        .help =
            Some("a pin is 64 lowercase hex digits; `keelson policy hash MODULE` prints it".into());
        None
    }
}

/// The policies named by every `child` node (`gate`, `filter`) of `node`;
/// unknown names are reported and left out.
pub(super) fn policy_refs(
    cx: &mut Cx<'_>,
    node: &KdlNode,
    child: &str,
    policies: &Names<PolicyId>,
) -> Vec<Spanned<PolicyId>> {
    let mut out = Vec::new();
    for n in cx.children(node, child).collect::<Vec<_>>() {
        cx.check_shape(
            n,
            &format!("`{child}`"),
            &Shape {
                args: usize::MAX,
                props: &[],
                children: Some(&[]),
            },
        );
        for name in cx.req_args_str(n, "a policy name", "\"no-latest\"") {
            if let Some(id) = resolve(cx, policies, &name, Code::UnknownPolicy, "policy") {
                out.push(id);
            }
        }
    }
    out
}
