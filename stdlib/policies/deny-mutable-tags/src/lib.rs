//! `stdlib:deny-mutable-tags`: keep tags that move out of a stage.
//!
//! A mutable tag (`latest`, `main`, …) can point at a different image
//! tomorrow, so a stage that runs one does not say what it runs.
//!
//! Params: `tags`, one tag or a list, compared ASCII-case-insensitively (tags are ASCII); default
//! [`DEFAULT_TAGS`].
//!
//! - filter: denies the listed tags, allows the rest.
//! - gate: holds when the upstream stage runs a listed tag, or an image with
//!   neither tag nor digest; promotes otherwise.

use keelson_policy::{Context, Error, FilterInput, PromoteInput, Promotion, Verdict, one_or_many};
use serde::Deserialize;

/// The tags denied when `tags` is not given.
pub const DEFAULT_TAGS: [&str; 10] = [
    "latest", "main", "master", "develop", "dev", "stable", "edge", "nightly", "head", "canary",
];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    #[serde(default = "default_tags", deserialize_with = "one_or_many")]
    tags: Vec<String>,
}

fn default_tags() -> Vec<String> {
    DEFAULT_TAGS.iter().map(|t| t.to_string()).collect()
}

/// The listed tags, lowercased.
fn mutable_tags(ctx: &Context) -> Result<Vec<String>, Error> {
    let Params { tags } = ctx.params()?;
    if tags.is_empty() {
        return Err(Error::new(
            "bad params: `tags` is empty; leave it out to deny the default list",
        ));
    }
    if tags.iter().any(|t| t.trim().is_empty()) {
        return Err(Error::new("bad params: `tags` has an empty tag"));
    }
    Ok(tags.iter().map(|t| t.to_ascii_lowercase()).collect())
}

fn is_listed(tags: &[String], tag: &str) -> bool {
    let tag = tag.to_ascii_lowercase();
    tags.contains(&tag)
}

pub fn filter(input: &FilterInput) -> Result<Vec<Verdict>, Error> {
    let tags = mutable_tags(&input.context)?;
    Ok(input
        .candidates
        .iter()
        .map(|c| {
            if is_listed(&tags, &c.tag) {
                Verdict::deny(
                    &c.tag,
                    format!(
                        "`{}` is a mutable tag: it can point at a different image tomorrow; use an immutable tag, such as a version",
                        c.tag
                    ),
                )
            } else {
                Verdict::allow(&c.tag)
            }
        })
        .collect())
}

pub fn promote(input: &PromoteInput) -> Result<Promotion, Error> {
    let tags = mutable_tags(&input.context)?;
    let (stage, up) = (&input.context.stage, &input.upstream);
    Ok(match (&up.tag, &up.digest) {
        (Some(tag), _) if is_listed(&tags, tag) => Promotion::hold(format!(
            "{} runs `{tag}`, a mutable tag: {stage} would not be pinned to what {} ran; promote an immutable tag, such as a version",
            up.stage, up.stage
        )),
        (Some(tag), _) => {
            Promotion::promote(format!("{} runs `{tag}`, not a mutable tag", up.stage))
        }
        (None, Some(digest)) => Promotion::promote(format!(
            "{} runs {digest}, a digest, which cannot move",
            up.stage
        )),
        (None, None) => Promotion::hold(format!(
            "{} runs an image with neither a tag nor a digest, so there is nothing fixed to promote",
            up.stage
        )),
    })
}

keelson_policy::export!(filter = filter, promote = promote);

#[cfg(test)]
mod tests {
    use super::*;
    use keelson_policy::serde_json::{Value, json};
    use keelson_policy::{Candidate, Upstream};

    fn ctx(params: Value) -> Context {
        Context {
            stage: "prd".into(),
            ..Context::default()
        }
        .with_params(params)
    }

    fn judge(params: Value, tags: &[&str]) -> Result<Vec<Verdict>, Error> {
        filter(&FilterInput {
            context: ctx(params),
            candidates: tags.iter().map(|t| Candidate::new(*t)).collect(),
            ..FilterInput::default()
        })
    }

    fn allowed(v: &[Verdict]) -> Vec<&str> {
        v.iter()
            .filter(|v| v.is_allow())
            .map(|v| v.tag.as_str())
            .collect()
    }

    fn gate(params: Value, tag: Option<&str>, digest: Option<&str>) -> Result<Promotion, Error> {
        promote(&PromoteInput {
            context: ctx(params),
            upstream: Upstream {
                stage: "stg".into(),
                tag: tag.map(String::from),
                digest: digest.map(String::from),
                ..Upstream::default()
            },
            ..PromoteInput::default()
        })
    }

    #[test]
    fn filter_denies_the_default_list_in_any_case() {
        let v = judge(
            json!({}),
            &["1.2.0", "latest", "Main", "NIGHTLY", "latest-alpine", "v1"],
        )
        .unwrap();
        assert_eq!(allowed(&v), ["1.2.0", "latest-alpine", "v1"]);
        assert_eq!(
            v[1],
            Verdict::deny(
                "latest",
                "`latest` is a mutable tag: it can point at a different image tomorrow; use an immutable tag, such as a version"
            )
        );
        for tag in DEFAULT_TAGS {
            assert!(!judge(json!({}), &[tag]).unwrap()[0].is_allow(), "{tag}");
        }
    }

    #[test]
    fn filter_uses_the_given_tags() {
        let v = judge(json!({"tags": "Release"}), &["release", "latest"]).unwrap();
        assert_eq!(allowed(&v), ["latest"]);
        let v = judge(json!({"tags": ["prod", "qa"]}), &["prod", "QA", "main"]).unwrap();
        assert_eq!(allowed(&v), ["main"]);
    }

    #[test]
    fn gate_holds_a_mutable_tag() {
        assert_eq!(
            gate(json!({}), Some("latest"), Some("sha256:ab")).unwrap(),
            Promotion::hold(
                "stg runs `latest`, a mutable tag: prd would not be pinned to what stg ran; promote an immutable tag, such as a version"
            )
        );
        assert!(
            !gate(json!({"tags": "rolling"}), Some("Rolling"), None)
                .unwrap()
                .is_promote()
        );
    }

    #[test]
    fn gate_holds_an_image_without_tag_or_digest() {
        assert_eq!(
            gate(json!({}), None, None).unwrap(),
            Promotion::hold(
                "stg runs an image with neither a tag nor a digest, so there is nothing fixed to promote"
            )
        );
    }

    #[test]
    fn gate_promotes_immutable_tags_and_digests() {
        assert_eq!(
            gate(json!({}), Some("1.4.0"), None).unwrap(),
            Promotion::promote("stg runs `1.4.0`, not a mutable tag")
        );
        assert_eq!(
            gate(json!({}), None, Some("sha256:ab")).unwrap(),
            Promotion::promote("stg runs sha256:ab, a digest, which cannot move")
        );
    }

    #[test]
    fn bad_params() {
        for (params, want) in [
            (json!({"tags": []}), "bad params: `tags` is empty"),
            (
                json!({"tags": ["latest", ""]}),
                "bad params: `tags` has an empty tag",
            ),
            (
                json!({"tags": 1}),
                "bad params: invalid type: integer `1`, expected a string",
            ),
            (
                json!({"tag": "latest"}),
                "bad params: unknown field `tag`, expected `tags`",
            ),
        ] {
            let e = judge(params.clone(), &["x"]).unwrap_err();
            assert!(e.message().starts_with(want), "{e}");
            let e = gate(params, Some("x"), None).unwrap_err();
            assert!(e.message().starts_with(want), "{e}");
        }
    }
}
