//! `no-downgrade`: never go back to a lower version.
//!
//! No params. Versions are compared by semver precedence
//! ([`keelson_policy::Version`]); a tag that is not a version, or a stage
//! that runs none, is never called a downgrade.
//!
//! ```kdl
//! policy "forward-only" source="policies/no-downgrade.wasm"
//! ```
//!
//! As a filter it denies every candidate lower than what the stage runs; as
//! a gate it holds when the upstream stage runs a lower version than this
//! one.

use keelson_policy::{Error, FilterInput, PromoteInput, Promotion, Verdict};

pub fn filter(input: &FilterInput) -> Result<Vec<Verdict>, Error> {
    input.context.no_params()?;
    let stage = &input.context.stage;
    let current = input
        .current
        .as_ref()
        .and_then(|c| Some((c.tag.as_deref()?, c.version()?)));
    Ok(input
        .candidates
        .iter()
        .map(|c| match (&current, c.version()) {
            (Some((tag, cur)), Some(v)) if v < *cur => Verdict::deny(
                &c.tag,
                format!(
                    "{} is lower than {tag}, which {stage} runs now; to go back, pin the image in the deploy block",
                    c.tag
                ),
            ),
            _ => Verdict::allow(&c.tag),
        })
        .collect())
}

pub fn promote(input: &PromoteInput) -> Result<Promotion, Error> {
    input.context.no_params()?;
    let (stage, up) = (&input.context.stage, &input.upstream);
    let current = input
        .current
        .as_ref()
        .and_then(|c| Some((c.tag.as_deref()?, c.version()?)));
    Ok(match (current, up.version()) {
        (Some((tag, cur)), Some(v)) if v < cur => Promotion::hold(format!(
            "{} runs {}, lower than {tag} which {stage} runs; to go back, pin the image in the deploy block",
            up.stage,
            up.describe()
        )),
        (Some((tag, _)), Some(_)) => Promotion::promote(format!(
            "{} is not lower than {tag}, which {stage} runs",
            up.describe()
        )),
        (None, _) => Promotion::promote(format!("{stage} runs no version to compare with")),
        (Some(_), None) => Promotion::promote(format!(
            "{} is not a version, so it cannot be a downgrade",
            up.describe()
        )),
    })
}

keelson_policy::export!(filter = filter, promote = promote);

#[cfg(test)]
mod tests {
    use super::*;
    use keelson_policy::serde_json::json;
    use keelson_policy::{Candidate, Context, Running, Upstream};

    fn ctx() -> Context {
        Context {
            stage: "prd".into(),
            ..Context::default()
        }
    }

    fn running(tag: &str) -> Option<Running> {
        Some(Running {
            tag: Some(tag.into()),
            ..Running::default()
        })
    }

    fn judge(current: Option<Running>, tags: &[&str]) -> Vec<Verdict> {
        filter(&FilterInput {
            context: ctx(),
            current,
            candidates: tags.iter().map(|t| Candidate::new(*t)).collect(),
            ..FilterInput::default()
        })
        .unwrap()
    }

    fn gate(current: Option<Running>, upstream: Option<&str>) -> Promotion {
        promote(&PromoteInput {
            context: ctx(),
            upstream: Upstream {
                stage: "stg".into(),
                tag: upstream.map(String::from),
                ..Upstream::default()
            },
            current,
            ..PromoteInput::default()
        })
        .unwrap()
    }

    #[test]
    fn filter_denies_lower_versions() {
        let v = judge(
            running("v1.4.0"),
            &["1.5.0", "1.4.0", "1.4.0-rc.1", "1.3.9", "latest"],
        );
        let allowed: Vec<&str> = v
            .iter()
            .filter(|v| v.is_allow())
            .map(|v| v.tag.as_str())
            .collect();
        assert_eq!(allowed, ["1.5.0", "1.4.0", "latest"]);
        assert_eq!(
            v[3],
            Verdict::deny(
                "1.3.9",
                "1.3.9 is lower than v1.4.0, which prd runs now; to go back, pin the image in the deploy block"
            )
        );
    }

    #[test]
    fn filter_allows_everything_without_a_current_version() {
        assert!(
            judge(None, &["0.1.0", "latest"])
                .iter()
                .all(Verdict::is_allow)
        );
        assert!(
            judge(running("main"), &["0.1.0"])
                .iter()
                .all(Verdict::is_allow)
        );
        let no_tag = Some(Running::default());
        assert!(judge(no_tag, &["0.1.0"]).iter().all(Verdict::is_allow));
    }

    #[test]
    fn gate_holds_a_downgrade() {
        assert_eq!(
            gate(running("1.4.0"), Some("1.3.0")),
            Promotion::hold(
                "stg runs 1.3.0, lower than 1.4.0 which prd runs; to go back, pin the image in the deploy block"
            )
        );
    }

    #[test]
    fn gate_promotes_otherwise() {
        assert_eq!(
            gate(running("1.4.0"), Some("1.4.1")),
            Promotion::promote("1.4.1 is not lower than 1.4.0, which prd runs")
        );
        assert!(gate(running("1.4.0"), Some("1.4.0+build.2")).is_promote());
        assert_eq!(
            gate(None, Some("0.1.0")),
            Promotion::promote("prd runs no version to compare with")
        );
        assert_eq!(
            gate(running("1.4.0"), Some("latest")),
            Promotion::promote("latest is not a version, so it cannot be a downgrade")
        );
        assert!(gate(running("1.4.0"), None).is_promote());
    }

    #[test]
    fn takes_no_params() {
        let input = PromoteInput {
            context: ctx().with_params(json!({"allow": "1.3.0"})),
            ..PromoteInput::default()
        };
        assert_eq!(
            promote(&input).unwrap_err().message(),
            "bad params: this policy takes no params, but it was given `allow`"
        );
        let input = FilterInput {
            context: ctx().with_params(json!({"allow": "1.3.0"})),
            ..FilterInput::default()
        };
        assert!(filter(&input).is_err());
    }
}
