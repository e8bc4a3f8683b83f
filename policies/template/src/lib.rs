//! `{{name}}`: a keelson policy.
//!
//! keelson calls `filter` to judge the tags a stage could run, and `promote`
//! to decide whether a stage takes the image its upstream stage runs. Both
//! are plain functions over typed input (see the `keelson_policy` docs and
//! the book's "Policy ABI"); `export!` at the bottom makes them the module's
//! entry points. Export only the ones you need.
//!
//! This example:
//! - filter: denies tags that end in one of `deny-suffixes`;
//! - gate: holds until the upstream stage has run its image `min-hours`.
//!
//! ```kdl
//! policy "{{name}}" source="policies/{{crate}}.wasm" {
//!     params {
//!         deny-suffixes "-debug" "-test"
//!         min-hours 4
//!     }
//! }
//! ```

use keelson_policy::time::format_duration;
use keelson_policy::{Error, FilterInput, PromoteInput, Promotion, Verdict};
use serde::Deserialize;

/// The policy's `params { … }` block. Unknown names are an error, so a
/// misspelt parameter fails the compile instead of being ignored.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Params {
    /// Tags ending in one of these are denied, such as `-debug`.
    #[serde(default, deserialize_with = "keelson_policy::one_or_many")]
    deny_suffixes: Vec<String>,
    /// How long the upstream stage must have run an image, in hours.
    #[serde(default)]
    min_hours: u32,
}

pub fn filter(input: &FilterInput) -> Result<Vec<Verdict>, Error> {
    let params: Params = input.context.params()?;
    let verdicts: Vec<Verdict> = input
        .candidates
        .iter()
        .map(|c| match params.deny_suffixes.iter().find(|s| c.tag.ends_with(s.as_str())) {
            Some(suffix) => Verdict::deny(&c.tag, format!("{} ends in `{suffix}`", c.tag)),
            None => Verdict::allow(&c.tag),
        })
        .collect();
    // Logs show in the trace and in `keelson policy test`.
    keelson_policy::log(format!(
        "{} of {} tags allowed",
        verdicts.iter().filter(|v| v.is_allow()).count(),
        verdicts.len()
    ));
    Ok(verdicts)
}

pub fn promote(input: &PromoteInput) -> Result<Promotion, Error> {
    let params: Params = input.context.params()?;
    let up = &input.upstream;
    let need = i64::from(params.min_hours) * 3600;
    let been = format!(
        "{} has run in {} for {}",
        up.describe(),
        up.stage,
        format_duration(up.age_seconds.max(0))
    );
    Ok(if up.age_seconds >= need {
        Promotion::promote(been)
    } else {
        Promotion::hold(format!("{been}, less than {}h", params.min_hours))
    })
}

keelson_policy::export!(filter = filter, promote = promote);

#[cfg(test)]
mod tests {
    use super::*;
    use keelson_policy::serde_json::json;
    use keelson_policy::{Candidate, Context, Upstream};

    #[test]
    fn filter_denies_the_suffixes() {
        let input = FilterInput {
            context: Context::default().with_params(json!({"deny-suffixes": ["-debug"]})),
            candidates: vec![Candidate::new("1.2.0"), Candidate::new("1.2.0-debug")],
            ..FilterInput::default()
        };
        let verdicts = filter(&input).unwrap();
        assert_eq!(verdicts[0], Verdict::allow("1.2.0"));
        assert_eq!(verdicts[1], Verdict::deny("1.2.0-debug", "1.2.0-debug ends in `-debug`"));
        assert_eq!(keelson_policy::take_log(), ["1 of 2 tags allowed"]);
    }

    #[test]
    fn gate_holds_until_min_hours() {
        let mut input = PromoteInput {
            context: Context::default().with_params(json!({"min-hours": 4})),
            upstream: Upstream {
                stage: "stg".into(),
                tag: Some("1.2.0".into()),
                age_seconds: 3 * 3600,
                ..Upstream::default()
            },
            ..PromoteInput::default()
        };
        assert_eq!(
            promote(&input).unwrap(),
            Promotion::hold("1.2.0 has run in stg for 3h, less than 4h")
        );
        input.upstream.age_seconds = 4 * 3600;
        assert!(promote(&input).unwrap().is_promote());
    }

    #[test]
    fn bad_params_are_an_error() {
        let input = PromoteInput {
            context: Context::default().with_params(json!({"min-hour": 4})),
            ..PromoteInput::default()
        };
        let e = promote(&input).unwrap_err();
        assert!(e.message().starts_with("bad params: unknown field `min-hour`"), "{e}");
    }

    /// The same calls through JSON, as keelson makes them, on the example
    /// inputs `keelson policy test` takes.
    #[test]
    fn input_json_works() {
        let out = keelson_policy::call_filter(filter, include_str!("../input.json"));
        assert!(out.starts_with(r#"{"verdicts":["#), "{out}");
        let out = keelson_policy::call_promote(promote, include_str!("../input-gate.json"));
        assert!(out.starts_with(r#"{"decision":"hold""#), "{out}");
    }
}
