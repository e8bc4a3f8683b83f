//! The JSON a policy reads and writes (ABI v1, book/src/policy-abi.md).
//!
//! Inputs are written by keelson and may grow fields within a version;
//! outputs are read strictly (`deny_unknown_fields`), so a module that
//! misspells a field fails loudly instead of being misread.

use serde::{Deserialize, Serialize};

/// The ABI version this keelson speaks.
pub const VERSION: i32 = 1;

/// At most this many earlier images of a stage are kept and passed.
pub(crate) const HISTORY: usize = 10;

#[derive(Debug, Clone, Serialize)]
pub struct Context<'a> {
    pub policy: &'a str,
    pub app: &'a str,
    pub stage: &'a str,
    pub image: &'a str,
    pub repository: &'a str,
    pub strategy: &'a str,
    pub now: String,
    pub params: &'a serde_json::Map<String, serde_json::Value>,
}

/// What a stage runs now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Running {
    pub tag: Option<String>,
    pub digest: Option<String>,
    pub since: String,
}

pub use crate::lock::Past;

#[derive(Debug, Clone, Serialize)]
pub struct Candidate<'a> {
    pub tag: &'a str,
    pub digest: Option<&'a str>,
    pub created: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct FilterInput<'a> {
    pub abi: i32,
    pub entry: &'static str,
    pub context: Context<'a>,
    pub current: Option<&'a Running>,
    pub history: &'a [Past],
    pub candidates: Vec<Candidate<'a>>,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Upstream<'a> {
    pub stage: &'a str,
    pub tag: Option<&'a str>,
    pub digest: Option<&'a str>,
    pub since: &'a str,
    pub age_seconds: i64,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct PromoteInput<'a> {
    pub abi: i32,
    pub entry: &'static str,
    pub context: Context<'a>,
    pub upstream: Upstream<'a>,
    pub current: Option<&'a Running>,
    pub history: &'a [Past],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FilterDecision {
    Allow,
    Deny,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Verdict {
    pub tag: String,
    pub decision: FilterDecision,
    #[serde(default)]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Verdicts {
    pub verdicts: Vec<Verdict>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum PromoteDecision {
    Promote,
    Hold,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Promotion {
    pub decision: PromoteDecision,
    pub reason: String,
}

/// `{"error": "…"}`: the policy could not judge its input.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PolicyError {
    pub error: String,
}

/// RFC 3339, UTC, whole seconds: the only time format of the ABI.
pub fn time(t: jiff::Timestamp) -> String {
    // Whole seconds: sub-second precision would only add noise to the lock.
    let t = jiff::Timestamp::from_second(t.as_second()).unwrap_or(t);
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Reads a time keelson wrote (or any RFC 3339 time).
pub(crate) fn parse_time(s: &str) -> Option<jiff::Timestamp> {
    s.parse().ok()
}

/// Why a call gave no usable answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Failure {
    /// The policy answered `{"error": …}`: it could not judge its input
    /// (most often, its `params`).
    Reported(String),
    /// The module broke the ABI or a limit: a trap, too much fuel, output
    /// that is not what the ABI says.
    Broken(String),
}

/// Reads an entry point's output: `{"error": …}`, or `T`, strictly.
pub(crate) fn parse_output<T: serde::de::DeserializeOwned>(
    output: &str,
    entry: &str,
) -> Result<T, Failure> {
    let broken = |e: serde_json::Error| {
        Failure::Broken(format!(
            "the output of `{entry}` is not what the ABI says: {e}"
        ))
    };
    let value: serde_json::Value = serde_json::from_str(output)
        .map_err(|e| Failure::Broken(format!("the output of `{entry}` is not JSON: {e}")))?;
    if value.as_object().is_some_and(|o| o.contains_key("error")) {
        let e: PolicyError = serde_json::from_value(value).map_err(broken)?;
        return Err(Failure::Reported(e.error));
    }
    serde_json::from_value(value).map_err(broken)
}

/// Reads a `filter` answer for `candidates`: the denied tags, with their
/// reasons. Every candidate needs exactly one verdict, and a denial a reason.
pub(crate) fn read_verdicts<'a>(
    output: &str,
    candidates: impl Iterator<Item = &'a str>,
) -> Result<std::collections::BTreeMap<String, String>, Failure> {
    use std::collections::{BTreeMap, BTreeSet};
    let verdicts: Verdicts = parse_output(output, "filter")?;
    // In the caller's order, so the first missing verdict named is the best
    // candidate's.
    let order: Vec<&str> = candidates.collect();
    let candidates: BTreeSet<&str> = order.iter().copied().collect();
    let mut seen = BTreeSet::new();
    let mut denied = BTreeMap::new();
    for v in &verdicts.verdicts {
        if !candidates.contains(v.tag.as_str()) {
            return Err(Failure::Broken(format!(
                "it answered for `{}`, which is not a candidate",
                v.tag
            )));
        }
        if !seen.insert(v.tag.as_str()) {
            return Err(Failure::Broken(format!(
                "it answered twice for `{}`",
                v.tag
            )));
        }
        if v.decision == FilterDecision::Deny {
            match &v.reason {
                Some(r) if !r.trim().is_empty() => {
                    denied.insert(v.tag.clone(), r.clone());
                }
                _ => {
                    return Err(Failure::Broken(format!(
                        "it denied `{}` without a reason",
                        v.tag
                    )));
                }
            }
        }
    }
    if let Some(missing) = order.iter().find(|c| !seen.contains(*c)) {
        return Err(Failure::Broken(format!(
            "it gave no verdict for `{missing}` ({} candidates, {} verdicts)",
            order.len(),
            verdicts.verdicts.len()
        )));
    }
    Ok(denied)
}

/// Reads a `promote` answer; its reason must not be empty.
pub(crate) fn read_promotion(output: &str) -> Result<Promotion, Failure> {
    let p: Promotion = parse_output(output, "promote")?;
    if p.reason.trim().is_empty() {
        return Err(Failure::Broken("its decision has no reason".into()));
    }
    Ok(p)
}
