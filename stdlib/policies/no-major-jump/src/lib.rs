//! `stdlib:no-major-jump`: no automatic major-version upgrades.
//!
//! No params. A major-version jump is a candidate (or the upstream's image)
//! whose major version is greater than what the stage runs now. Before 1.0,
//! semver says anything may change, and by the usual convention (Cargo's) a
//! minor bump of a `0.x` version is breaking, so `0.4.x → 0.5.0` counts as a
//! major jump too (and `0.x → 1.0.0` is one). Patch bumps of `0.0.x` are
//! not. When the stage runs nothing, or runs a tag that is not a version,
//! nothing is a jump; a candidate that is not a version is not one either.
//!
//! - filter: denies the jumps.
//! - gate: holds a jump.
//!
//! To take a new major version, pin it in the app's deploy block; once the
//! stage runs it, later versions of that major pass.

use keelson_policy::{Error, FilterInput, PromoteInput, Promotion, Running, Verdict, Version};

/// The compatible series `v` belongs to, as people write it: `1.x`, `0.4.x`.
fn series(v: &Version) -> String {
    if v.major == 0 {
        format!("0.{}.x", v.minor)
    } else {
        format!("{}.x", v.major)
    }
}

/// Whether going from `from` to `to` is a major-version jump.
fn is_jump(from: &Version, to: &Version) -> bool {
    if from.major == 0 && to.major == 0 {
        to.minor > from.minor
    } else {
        to.major > from.major
    }
}

fn why(from: &Version, to: &str) -> String {
    let zero = if from.major == 0 {
        " (before 1.0, a minor bump is major)"
    } else {
        ""
    };
    format!(
        "{} → {to} is a major-version jump{zero}; pin the image in the deploy block to take it",
        series(from)
    )
}

fn current(running: &Option<Running>) -> Option<Version> {
    running.as_ref().and_then(Running::version)
}

pub fn filter(input: &FilterInput) -> Result<Vec<Verdict>, Error> {
    input.context.no_params()?;
    let current = current(&input.current);
    Ok(input
        .candidates
        .iter()
        .map(|c| match (&current, c.version()) {
            (Some(from), Some(to)) if is_jump(from, &to) => {
                Verdict::deny(&c.tag, why(from, &c.tag))
            }
            _ => Verdict::allow(&c.tag),
        })
        .collect())
}

pub fn promote(input: &PromoteInput) -> Result<Promotion, Error> {
    input.context.no_params()?;
    let (stage, up) = (&input.context.stage, &input.upstream);
    let name = up.describe();
    Ok(match (current(&input.current), up.version()) {
        (Some(from), Some(to)) if is_jump(&from, &to) => Promotion::hold(format!(
            "{} runs {name}, and {}",
            up.stage,
            why(&from, &name)
        )),
        (Some(from), Some(_)) => Promotion::promote(format!(
            "{} runs {name}, no major-version jump from {}",
            up.stage,
            series(&from)
        )),
        (None, _) => Promotion::promote(format!("{stage} runs no version to compare with")),
        (Some(_), None) => Promotion::promote(format!(
            "{} runs {name}, not a version, so not a major-version jump",
            up.stage
        )),
    })
}

keelson_policy::export!(filter = filter, promote = promote);

#[cfg(test)]
mod tests {
    use super::*;
    use keelson_policy::serde_json::json;
    use keelson_policy::{Candidate, Context, Upstream};

    fn running(tag: &str) -> Option<Running> {
        Some(Running {
            tag: Some(tag.into()),
            ..Running::default()
        })
    }

    fn judge(current: Option<Running>, tags: &[&str]) -> Vec<Verdict> {
        filter(&FilterInput {
            current,
            candidates: tags.iter().map(|t| Candidate::new(*t)).collect(),
            ..FilterInput::default()
        })
        .unwrap()
    }

    fn allowed(v: &[Verdict]) -> Vec<&str> {
        v.iter()
            .filter(|v| v.is_allow())
            .map(|v| v.tag.as_str())
            .collect()
    }

    fn gate(current: Option<Running>, tag: &str) -> Promotion {
        promote(&PromoteInput {
            context: Context {
                stage: "prd".into(),
                ..Context::default()
            },
            upstream: Upstream {
                stage: "stg".into(),
                tag: Some(tag.into()),
                ..Upstream::default()
            },
            current,
            ..PromoteInput::default()
        })
        .unwrap()
    }

    #[test]
    fn filter_denies_a_new_major() {
        let v = judge(
            running("1.4.2"),
            &["2.0.0", "v2.1.0-rc.1", "1.9.0", "1.4.3", "0.9.0", "latest"],
        );
        assert_eq!(allowed(&v), ["1.9.0", "1.4.3", "0.9.0", "latest"]);
        assert_eq!(
            v[0],
            Verdict::deny(
                "2.0.0",
                "1.x → 2.0.0 is a major-version jump; pin the image in the deploy block to take it"
            )
        );
    }

    #[test]
    fn before_1_0_a_minor_bump_is_major() {
        let v = judge(running("0.4.1"), &["0.4.9", "0.5.0", "1.0.0", "0.3.0"]);
        assert_eq!(allowed(&v), ["0.4.9", "0.3.0"]);
        assert_eq!(
            v[1].reason.as_deref(),
            Some(
                "0.4.x → 0.5.0 is a major-version jump (before 1.0, a minor bump is major); pin the image in the deploy block to take it"
            )
        );
        assert!(!v[2].is_allow());
        assert_eq!(
            allowed(&judge(running("0.0.3"), &["0.0.4", "0.1.0"])),
            ["0.0.4"]
        );
    }

    #[test]
    fn filter_allows_everything_without_a_current_version() {
        assert_eq!(allowed(&judge(None, &["9.0.0"])), ["9.0.0"]);
        assert_eq!(allowed(&judge(running("latest"), &["9.0.0"])), ["9.0.0"]);
        assert_eq!(
            allowed(&judge(Some(Running::default()), &["9.0.0"])),
            ["9.0.0"]
        );
    }

    #[test]
    fn gate_holds_a_jump() {
        assert_eq!(
            gate(running("v1.9.0"), "2.0.0"),
            Promotion::hold(
                "stg runs 2.0.0, and 1.x → 2.0.0 is a major-version jump; pin the image in the deploy block to take it"
            )
        );
        assert!(!gate(running("0.4.0"), "0.5.0").is_promote());
    }

    #[test]
    fn gate_promotes_within_a_major() {
        assert_eq!(
            gate(running("1.4.0"), "1.5.0"),
            Promotion::promote("stg runs 1.5.0, no major-version jump from 1.x")
        );
        assert_eq!(
            gate(None, "3.0.0"),
            Promotion::promote("prd runs no version to compare with")
        );
        assert_eq!(
            gate(running("1.4.0"), "edge"),
            Promotion::promote("stg runs edge, not a version, so not a major-version jump")
        );
    }

    #[test]
    fn takes_no_params() {
        let input = FilterInput {
            context: Context::default().with_params(json!({"max": 2})),
            ..FilterInput::default()
        };
        assert!(
            filter(&input)
                .unwrap_err()
                .message()
                .contains("takes no params")
        );
        let input = PromoteInput {
            context: Context::default().with_params(json!({"max": 2})),
            ..PromoteInput::default()
        };
        assert!(promote(&input).is_err());
    }
}
