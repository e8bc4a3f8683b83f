//! `change-freeze`: no changes during freeze periods.
//!
//! Params: `periods`, one or more `"YYYY-MM-DD..YYYY-MM-DD"` date ranges, in
//! UTC and inclusive at both ends (a single `"YYYY-MM-DD"` is a one-day
//! period).
//!
//! ```kdl
//! policy "year-end-freeze" source="policies/change-freeze.wasm" {
//!     params {
//!         periods "2026-12-19..2027-01-04" "2027-03-31..2027-03-31"
//!     }
//! }
//! ```
//!
//! As a gate it holds every promotion while `now` is in a period, naming
//! it; as a filter it denies every candidate then, so a registry stage keeps
//! what it runs.

use keelson_policy::{
    Context, Date, Error, FilterInput, PromoteInput, Promotion, Verdict, one_or_many,
};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    #[serde(deserialize_with = "one_or_many")]
    periods: Vec<String>,
}

/// A freeze, from its first day to its last, inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Period {
    first: Date,
    last: Date,
}

fn periods(ctx: &Context) -> Result<Vec<Period>, Error> {
    let Params { periods } = ctx.params()?;
    periods
        .iter()
        .map(|text| {
            let (first, last) = text.split_once("..").unwrap_or((text, text));
            let bad = |e: Error| {
                Error::new(format!(
                    "bad params: period `{text}`: {e}; write periods as `YYYY-MM-DD..YYYY-MM-DD`"
                ))
            };
            let period = Period {
                first: Date::parse(first.trim()).map_err(bad)?,
                last: Date::parse(last.trim()).map_err(bad)?,
            };
            if period.last < period.first {
                return Err(Error::new(format!(
                    "bad params: period `{text}` ends before it starts"
                )));
            }
            Ok(period)
        })
        .collect()
}

/// The freeze `now` is in, if any: the one that ends last, so the reason
/// says when changes can resume.
fn freeze(ctx: &Context) -> Result<Option<Period>, Error> {
    let today = ctx.now.date();
    Ok(periods(ctx)?
        .into_iter()
        .filter(|p| p.first <= today && today <= p.last)
        .max_by_key(|p| p.last))
}

fn frozen(ctx: &Context, p: Period) -> String {
    format!(
        "change freeze {}..{} is on (today is {} UTC); changes resume on {}",
        p.first,
        p.last,
        ctx.now.date(),
        p.last.plus_days(1)
    )
}

pub fn filter(input: &FilterInput) -> Result<Vec<Verdict>, Error> {
    let ctx = &input.context;
    let freeze = freeze(ctx)?;
    Ok(input
        .candidates
        .iter()
        .map(|c| match freeze {
            Some(p) => Verdict::deny(&c.tag, frozen(ctx, p)),
            None => Verdict::allow(&c.tag),
        })
        .collect())
}

pub fn promote(input: &PromoteInput) -> Result<Promotion, Error> {
    let ctx = &input.context;
    Ok(match freeze(ctx)? {
        Some(p) => Promotion::hold(frozen(ctx, p)),
        None => Promotion::promote(format!("no change freeze on {} UTC", ctx.now.date())),
    })
}

keelson_policy::export!(filter = filter, promote = promote);

#[cfg(test)]
mod tests {
    use super::*;
    use keelson_policy::serde_json::json;
    use keelson_policy::{Candidate, Time, Upstream};

    fn ctx(now: &str, periods: keelson_policy::serde_json::Value) -> Context {
        Context {
            policy: "year-end-freeze".into(),
            stage: "prd".into(),
            now: Time::parse(now).unwrap(),
            ..Context::default()
        }
        .with_params(json!({ "periods": periods }))
    }

    fn gate(now: &str, periods: keelson_policy::serde_json::Value) -> Result<Promotion, Error> {
        promote(&PromoteInput {
            context: ctx(now, periods),
            upstream: Upstream {
                stage: "stg".into(),
                tag: Some("1.4.0".into()),
                ..Upstream::default()
            },
            ..PromoteInput::default()
        })
    }

    #[test]
    fn holds_during_a_freeze_naming_it() {
        let p = gate("2026-12-24T10:00:00Z", json!(["2026-12-19..2027-01-04"])).unwrap();
        assert_eq!(
            p,
            Promotion::hold(
                "change freeze 2026-12-19..2027-01-04 is on (today is 2026-12-24 UTC); changes resume on 2027-01-05"
            )
        );
    }

    #[test]
    fn both_ends_are_inclusive_in_utc() {
        let periods = json!("2026-12-19..2027-01-04");
        assert!(
            gate("2026-12-18T23:59:59Z", periods.clone())
                .unwrap()
                .is_promote()
        );
        assert!(
            !gate("2026-12-19T00:00:00Z", periods.clone())
                .unwrap()
                .is_promote()
        );
        assert!(
            !gate("2027-01-04T23:59:59Z", periods.clone())
                .unwrap()
                .is_promote()
        );
        assert!(gate("2027-01-05T00:00:00Z", periods).unwrap().is_promote());
    }

    #[test]
    fn promotes_outside_every_freeze() {
        let p = gate(
            "2026-11-23T09:30:00Z",
            json!(["2026-12-19..2027-01-04", "2026-11-24"]),
        );
        assert_eq!(
            p.unwrap(),
            Promotion::promote("no change freeze on 2026-11-23 UTC")
        );
        assert!(
            gate("2026-11-23T09:30:00Z", json!([]))
                .unwrap()
                .is_promote()
        );
    }

    #[test]
    fn a_single_date_and_overlapping_periods() {
        let p = gate(
            "2026-11-24T12:00:00Z",
            json!(["2026-11-24", "2026-11-20..2026-11-30"]),
        );
        assert_eq!(
            p.unwrap().reason,
            "change freeze 2026-11-20..2026-11-30 is on (today is 2026-11-24 UTC); changes resume on 2026-12-01"
        );
    }

    #[test]
    fn filter_denies_everything_during_a_freeze() {
        let mut input = FilterInput {
            context: ctx("2026-12-24T10:00:00Z", json!("2026-12-24..2026-12-26")),
            candidates: vec![Candidate::new("1.4.0"), Candidate::new("1.3.9")],
            ..FilterInput::default()
        };
        let v = filter(&input).unwrap();
        assert_eq!(v.len(), 2);
        assert!(v.iter().all(|v| !v.is_allow()));
        assert_eq!(
            v[1],
            Verdict::deny(
                "1.3.9",
                "change freeze 2026-12-24..2026-12-26 is on (today is 2026-12-24 UTC); changes resume on 2026-12-27"
            )
        );
        input.context.now = Time::parse("2026-12-27T00:00:00Z").unwrap();
        assert!(filter(&input).unwrap().iter().all(Verdict::is_allow));
    }

    #[test]
    fn bad_params() {
        for (periods, want) in [
            (
                json!("2026-12-24...2026-12-26"),
                "bad params: period `2026-12-24...2026-12-26`: `.2026-12-26` is not a date",
            ),
            (
                json!(["2026-12-31..2026-12-01"]),
                "bad params: period `2026-12-31..2026-12-01` ends before it starts",
            ),
            (
                json!("2026-02-30"),
                "bad params: period `2026-02-30`: `2026-02-30` is not a date",
            ),
            (
                json!(7),
                "bad params: invalid type: integer `7`, expected a string",
            ),
        ] {
            let e = gate("2026-11-23T09:30:00Z", periods).unwrap_err();
            assert!(e.message().starts_with(want), "{e}");
        }
        let e = promote(&PromoteInput::default()).unwrap_err();
        assert_eq!(e.message(), "bad params: missing field `periods`");
        let input = PromoteInput {
            context: Context::default().with_params(json!({"periods": [], "zone": "UTC"})),
            ..PromoteInput::default()
        };
        assert!(
            promote(&input)
                .unwrap_err()
                .message()
                .contains("unknown field `zone`")
        );
    }
}
