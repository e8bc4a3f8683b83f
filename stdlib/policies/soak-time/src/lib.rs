//! `stdlib:soak-time`: let an image prove itself before it moves on.
//!
//! Params: `hours` (a number, required, may be decimal, such as `0.5`) and
//! `minutes` (optional, added to it); together more than zero.
//!
//! - gate: promotes once the upstream stage has run its image at least that
//!   long (`upstream.age_seconds`), else holds, saying how long it has been
//!   and how long is left.
//! - filter: allows tags built at least that long ago (their `created`
//!   time); denies tags whose creation time is unknown, since their age
//!   cannot be told.

use keelson_policy::time::{ceil_minutes, format_duration};
use keelson_policy::{Context, Error, FilterInput, PromoteInput, Promotion, Verdict};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    hours: f64,
    #[serde(default)]
    minutes: f64,
}

/// The soak time, in seconds.
fn soak(ctx: &Context) -> Result<i64, Error> {
    let Params { hours, minutes } = ctx.params()?;
    for (name, value) in [("hours", hours), ("minutes", minutes)] {
        if !value.is_finite() || value < 0.0 {
            return Err(Error::new(format!(
                "bad params: `{name}` is {value}; it must be a number of at least 0"
            )));
        }
    }
    let seconds = (hours * 3600.0 + minutes * 60.0).round();
    // Past a century, the number means a mistake rather than a soak.
    if seconds > 100.0 * 365.0 * 86_400.0 {
        return Err(Error::new(
            "bad params: the soak time is longer than a century",
        ));
    }
    if seconds < 1.0 {
        return Err(Error::new(
            "bad params: the soak time is zero; give `hours` (and optionally `minutes`) more than zero",
        ));
    }
    Ok(seconds as i64)
}

/// `"; 20h50m to go (it must soak 24h)"`.
fn to_go(soak: i64, age: i64) -> String {
    format!(
        "; {} to go (it must soak {})",
        format_duration(ceil_minutes(soak - age)),
        format_duration(soak)
    )
}

pub fn promote(input: &PromoteInput) -> Result<Promotion, Error> {
    let soak = soak(&input.context)?;
    let up = &input.upstream;
    let age = up.age_seconds;
    let been = format!(
        "{} has been in {} for {}",
        up.describe(),
        up.stage,
        format_duration(age.max(0))
    );
    Ok(if age >= soak {
        Promotion::promote(format!("{been}, at least {}", format_duration(soak)))
    } else {
        Promotion::hold(format!("{been}{}", to_go(soak, age)))
    })
}

pub fn filter(input: &FilterInput) -> Result<Vec<Verdict>, Error> {
    let soak = soak(&input.context)?;
    let now = input.context.now;
    Ok(input
        .candidates
        .iter()
        .map(|c| match c.created {
            Some(created) => {
                let age = now.seconds_since(created);
                if age >= soak {
                    Verdict::allow(&c.tag)
                } else {
                    Verdict::deny(
                        &c.tag,
                        format!(
                            "{} was built {} ago{}",
                            c.tag,
                            format_duration(age.max(0)),
                            to_go(soak, age)
                        ),
                    )
                }
            }
            None => Verdict::deny(
                &c.tag,
                format!(
                    "{}'s creation time is unknown, so its age cannot be told; record creation times (registry metadata, or `created` in the snapshot)",
                    c.tag
                ),
            ),
        })
        .collect())
}

keelson_policy::export!(filter = filter, promote = promote);

#[cfg(test)]
mod tests {
    use super::*;
    use keelson_policy::serde_json::{Value, json};
    use keelson_policy::{Candidate, Time, Upstream};

    fn t(s: &str) -> Time {
        Time::parse(s).unwrap()
    }

    fn ctx(params: Value) -> Context {
        Context {
            stage: "prd".into(),
            now: t("2026-11-23T09:30:00Z"),
            ..Context::default()
        }
        .with_params(params)
    }

    fn gate(params: Value, age: i64) -> Result<Promotion, Error> {
        promote(&PromoteInput {
            context: ctx(params),
            upstream: Upstream {
                stage: "stg".into(),
                tag: Some("0.5.0".into()),
                age_seconds: age,
                ..Upstream::default()
            },
            ..PromoteInput::default()
        })
    }

    #[test]
    fn gate_holds_until_the_soak_is_over() {
        assert_eq!(
            gate(json!({"hours": 24}), 3 * 3600 + 10 * 60).unwrap(),
            Promotion::hold("0.5.0 has been in stg for 3h10m; 20h50m to go (it must soak 24h)")
        );
        // 30 seconds short still reads as a minute to go.
        assert_eq!(
            gate(json!({"hours": 24}), 86_370).unwrap().reason,
            "0.5.0 has been in stg for 23h59m; 1m to go (it must soak 24h)"
        );
        assert_eq!(
            gate(json!({"hours": 48}), 88_200).unwrap().reason,
            "0.5.0 has been in stg for 24h30m; 23h30m to go (it must soak 48h)"
        );
    }

    #[test]
    fn gate_promotes_after_the_soak() {
        assert_eq!(
            gate(json!({"hours": 24}), 86_400).unwrap(),
            Promotion::promote("0.5.0 has been in stg for 24h, at least 24h")
        );
        assert_eq!(
            gate(json!({"hours": 24}), 88_200).unwrap(),
            Promotion::promote("0.5.0 has been in stg for 24h30m, at least 24h")
        );
    }

    #[test]
    fn hours_and_minutes() {
        assert!(
            gate(json!({"hours": 0.5}), 1799)
                .unwrap()
                .reason
                .ends_with("(it must soak 30m)")
        );
        assert!(gate(json!({"hours": 0.5}), 1800).unwrap().is_promote());
        assert!(
            !gate(json!({"hours": 1, "minutes": 30}), 5399)
                .unwrap()
                .is_promote()
        );
        assert!(
            gate(json!({"hours": 1, "minutes": 30}), 5400)
                .unwrap()
                .is_promote()
        );
        assert!(
            gate(json!({"hours": 0, "minutes": 10}), 600)
                .unwrap()
                .is_promote()
        );
        assert_eq!(
            gate(json!({"hours": 168}), 0).unwrap().reason,
            "0.5.0 has been in stg for 0s; 7d to go (it must soak 7d)"
        );
    }

    #[test]
    fn filter_judges_the_build_time() {
        let input = FilterInput {
            context: ctx(json!({"hours": 24})),
            candidates: vec![
                Candidate {
                    created: Some(t("2026-11-22T09:30:00Z")),
                    ..Candidate::new("1.1.0")
                },
                Candidate {
                    created: Some(t("2026-11-22T17:04:11Z")),
                    ..Candidate::new("1.2.0")
                },
                Candidate::new("1.0.1"),
            ],
            ..FilterInput::default()
        };
        let v = filter(&input).unwrap();
        assert_eq!(v[0], Verdict::allow("1.1.0"));
        assert_eq!(
            v[1],
            Verdict::deny(
                "1.2.0",
                "1.2.0 was built 16h25m ago; 7h35m to go (it must soak 24h)"
            )
        );
        assert_eq!(
            v[2],
            Verdict::deny(
                "1.0.1",
                "1.0.1's creation time is unknown, so its age cannot be told; record creation times (registry metadata, or `created` in the snapshot)"
            )
        );
    }

    #[test]
    fn a_build_time_in_the_future_is_not_old_enough() {
        let input = FilterInput {
            context: ctx(json!({"hours": 1})),
            candidates: vec![Candidate {
                created: Some(t("2026-11-23T10:00:00Z")),
                ..Candidate::new("2.0.0")
            }],
            ..FilterInput::default()
        };
        assert_eq!(
            filter(&input).unwrap()[0].reason.as_deref(),
            Some("2.0.0 was built 0s ago; 1h30m to go (it must soak 1h)")
        );
    }

    #[test]
    fn bad_params() {
        for (params, want) in [
            (json!({}), "bad params: missing field `hours`"),
            (
                json!({"hours": "24"}),
                "bad params: invalid type: string \"24\", expected f64",
            ),
            (
                json!({"hours": -1}),
                "bad params: `hours` is -1; it must be a number of at least 0",
            ),
            (
                json!({"hours": 1, "minutes": -5}),
                "bad params: `minutes` is -5",
            ),
            (json!({"hours": 0}), "bad params: the soak time is zero"),
            (
                json!({"hours": 1e12}),
                "bad params: the soak time is longer than a century",
            ),
            (
                json!({"hours": 24, "days": 1}),
                "bad params: unknown field `days`",
            ),
        ] {
            let e = gate(params.clone(), 0).unwrap_err();
            assert!(e.message().starts_with(want), "{params}: {e}");
            let input = FilterInput {
                context: ctx(params),
                ..FilterInput::default()
            };
            assert!(filter(&input).unwrap_err().message().starts_with(want));
        }
    }
}
