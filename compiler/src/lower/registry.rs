//! `registry`: a container registry Image Updater reads tags from, matched to
//! images by the `prefix` of their repository.

use std::collections::HashMap;

use kdl::KdlNode;

use super::declare::{Kind, Names};
use super::read::{Cx, Shape};
use super::shared::duration_prop;
use super::{Decl, Lowerer};
use crate::diagnostic::{Code, Label, Loc};
use crate::model::{CredentialRef, Registry, RegistryId, Spanned};
use crate::rules;

const REGISTRY: Kind = Kind {
    node: "registry",
    what: "a registry name",
    example: "\"ghcr\"",
    shape: Shape {
        args: 1,
        props: &[
            "prefix",
            "api-url",
            "credentials",
            "credentials-expire",
            "default-namespace",
            "rate-limit",
            "insecure",
            "default",
        ],
        children: Some(&[]),
    },
};

/// What must be unique across registries, as seen so far.
#[derive(Default)]
struct Seen {
    prefixes: HashMap<String, Loc>,
    /// The first registry marked `default=#true`.
    default: Option<Loc>,
}

impl Lowerer<'_> {
    pub(super) fn lower_registries(
        &mut self,
        decls: Vec<Decl<'_>>,
    ) -> (Vec<Registry>, Names<RegistryId>) {
        let mut seen = Seen::default();
        self.lower_named(decls, &REGISTRY, RegistryId, |cx, node, name, _| {
            lower_registry(cx, node, name, &mut seen)
        })
    }
}

fn lower_registry(
    cx: &mut Cx<'_>,
    node: &KdlNode,
    name: Spanned<String>,
    seen: &mut Seen,
) -> Registry {
    let loc = cx.node_loc(node);
    let prefix = registry_prefix(cx, node, loc, &mut seen.prefixes);
    let api_url = match cx.prop_str(node, "api-url") {
        Some(u) => {
            if let Err(why) = rules::url(&u.value, &["https", "http"]) {
                cx.error(
                    Code::InvalidUrl,
                    u.loc,
                    format!("`{}` is not a registry API URL: {why}", u.value),
                )
                .help = Some("write e.g. `api-url=\"https://ghcr.io\"`".into());
            }
            u.value.trim_end_matches('/').to_string()
        }
        None => format!("https://{}", prefix.value),
    };
    let credentials = cx
        .prop_str(node, "credentials")
        .and_then(|c| lower_credentials(cx, &c));
    let credentials_expire = duration_prop(cx, node, "credentials-expire");
    let default_namespace = cx.prop_str(node, "default-namespace").map(|n| n.value);
    let rate_limit = cx.prop_uint(node, "rate-limit", 100_000).and_then(|r| {
        if r.value == 0 {
            cx.error(Code::InvalidValue, r.loc, "`rate-limit` must be at least 1")
                .help = Some("it is requests per second; Image Updater's default is 20".into());
            None
        } else {
            Some(r.value as u32)
        }
    });
    let insecure = cx.prop_bool(node, "insecure").is_some_and(|b| b.value);
    let default = cx.prop_bool(node, "default").is_some_and(|b| b.value);
    if default {
        match seen.default {
            Some(other) => {
                let d = cx.error(
                    Code::Conflict,
                    loc,
                    "two registries are marked `default=#true`",
                );
                d.secondary.push(Label {
                    loc: other,
                    text: Some("the other default".into()),
                });
                d.help =
                    Some("only one registry can serve images written without a registry".into());
            }
            None => seen.default = Some(loc),
        }
    }
    Registry {
        name,
        prefix,
        api_url,
        credentials,
        credentials_expire,
        default_namespace,
        rate_limit,
        insecure,
        default,
        loc,
    }
}

/// `prefix=`: the host (and port) images of this registry start with, unique
/// across registries. Empty when missing (reported).
fn registry_prefix(
    cx: &mut Cx<'_>,
    node: &KdlNode,
    loc: Loc,
    prefixes: &mut HashMap<String, Loc>,
) -> Spanned<String> {
    let prefix = cx
        .req_prop_str(node, "prefix", "\"ghcr.io\"")
        .unwrap_or_else(|| Spanned::new(String::new(), loc));
    if prefix.value.is_empty() {
        return prefix;
    }
    if prefix.value.contains("://")
        || prefix.value.ends_with('/')
        || prefix.value.contains(char::is_whitespace)
    {
        cx.error(Code::InvalidValue, prefix.loc, format!("`{}` is not a registry prefix", prefix.value)).help =
            Some("write the host (and port) as it appears in image references, e.g. `prefix=\"ghcr.io\"`; put the URL in `api-url`".into());
    } else if let Some(first) = prefixes.get(&prefix.value) {
        let d = cx.error(
            Code::DuplicateName,
            prefix.loc,
            format!("two registries have the prefix `{}`", prefix.value),
        );
        d.secondary.push(Label {
            loc: *first,
            text: Some("first used here".into()),
        });
        d.help = Some("Image Updater requires registry prefixes to be unique".into());
    } else {
        prefixes.insert(prefix.value.clone(), prefix.loc);
    }
    prefix
}

/// `credentials=`: a reference to where Image Updater finds the registry's
/// credentials, never the credentials themselves.
fn lower_credentials(cx: &mut Cx<'_>, c: &Spanned<String>) -> Option<Spanned<CredentialRef>> {
    match rules::credential_ref(&c.value) {
        Ok(r) => Some(Spanned::new(r, c.loc)),
        Err(why) => {
            let known_prefix = ["pullsecret:", "secret:", "env:", "ext:"]
                .iter()
                .any(|p| c.value.starts_with(p));
            if rules::looks_like_secret(&c.value).is_some() {
                // Already reported by the estate-wide secret scan.
            } else if !known_prefix {
                cx.error(Code::LiteralSecret, c.loc, "`credentials` must be a reference, and this looks like a literal credential")
                    .help = Some("store the credential in a Secret and reference it: `pullsecret:<ns>/<name>`, `secret:<ns>/<name>#<field>`, `env:<VAR>` or `ext:/path`".into());
            } else {
                cx.error(
                    Code::InvalidCredentials,
                    c.loc,
                    format!("`{}` is not a credentials reference", c.value),
                )
                .help = Some(why);
            }
            None
        }
    }
}
