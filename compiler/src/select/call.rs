//! Calling policies for one image of one app stage: the filter and gate
//! entry points, their logs, and the diagnostic when a call fails.
//!
//! Calls go through the compile's `policy::Budget`: a module that failed for
//! an earlier app, or spent its fuel budget, is not called again, and its
//! failure is reported once, by `decide`, from the budget.

use std::collections::BTreeMap;

use crate::diagnostic::{Code, Diagnostic};
use crate::model::{AppId, PolicyId, Spanned, StageId};
use crate::policy::abi::{self, Failure, Past, Running};
use crate::policy::{Budget, CallError, Refused};
use crate::strategy::TagInfo;

use super::{Decision, GateVerdict, Inputs};

/// One image of one app stage, as policies see it.
pub(super) struct Call<'a> {
    pub(super) input: &'a Inputs<'a>,
    pub(super) budget: &'a Budget<'a>,
    pub(super) app_id: AppId,
    pub(super) app: &'a crate::model::App,
    pub(super) stage: &'a crate::model::Stage,
    pub(super) image: &'a crate::model::Image,
    pub(super) now: &'a str,
    pub(super) current: Option<&'a Running>,
    pub(super) history: &'a [Past],
}

pub(super) type Log = Vec<(String, String)>;

/// Why a policy gave no answer for an image.
pub(super) enum Failed {
    /// Its answer broke the ABI, or it reported an error.
    Answer(Failure),
    /// The call failed in the module: trapped, ran out of fuel, memory or
    /// time. Reported once per module, through the budget.
    Module(CallError),
    /// Not called: the module failed before or spent its budget (reported
    /// once, elsewhere).
    Skipped,
}

impl From<Failure> for Failed {
    fn from(f: Failure) -> Failed {
        Failed::Answer(f)
    }
}

impl Call<'_> {
    fn context<'b>(&'b self, policy: &'b crate::model::Policy) -> abi::Context<'b> {
        abi::Context {
            policy: &policy.name.value,
            app: &self.app.name.value,
            stage: &self.stage.name.value,
            image: &self.image.alias.value,
            repository: &self.image.repository.value.0,
            strategy: self.image.strategy.value.name(),
            now: self.now.to_string(),
            params: &policy.params,
        }
    }

    fn run(&self, id: PolicyId, entry: &str, input: &[u8]) -> Result<(String, Log), Failed> {
        let policy = self.input.estate.policy(id);
        let log_of = |lines: Vec<String>| -> Log {
            lines
                .into_iter()
                .map(|l| (policy.name.value.clone(), l))
                .collect()
        };
        // A compile stops before `select` when a policy fails to load, so
        // every policy has its module.
        match self.budget.call(id, self.app_id.0, entry, input) {
            Ok(called) => Ok((called.output, log_of(called.log))),
            Err(Refused::Failed(e)) => Err(Failed::Module(e)),
            Err(Refused::Skipped) => Err(Failed::Skipped),
        }
    }

    /// Runs a filter over the candidates: the denied tags, with reasons.
    pub(super) fn filter(
        &self,
        id: PolicyId,
        candidates: &[TagInfo],
    ) -> Result<(BTreeMap<String, String>, Log), Failed> {
        let policy = self.input.estate.policy(id);
        let input = abi::FilterInput {
            abi: abi::VERSION,
            entry: "filter",
            context: self.context(policy),
            current: self.current,
            history: self.history,
            candidates: candidates
                .iter()
                .map(|t| abi::Candidate {
                    tag: &t.name,
                    digest: t.digest.as_deref(),
                    created: t.created.map(abi::time),
                })
                .collect(),
        };
        let bytes = serde_json::to_vec(&input).expect("inputs serialise");
        let (output, log) = self.run(id, "filter", &bytes)?;
        let denied = abi::read_verdicts(&output, candidates.iter().map(|c| c.name.as_str()))?;
        Ok((denied, log))
    }

    /// Runs a gate on the upstream's image.
    pub(super) fn promote(
        &self,
        id: PolicyId,
        from: StageId,
        up: &Decision,
    ) -> Result<(GateVerdict, Log), Failed> {
        let policy = self.input.estate.policy(id);
        let age = match (abi::parse_time(&up.since), abi::parse_time(self.now)) {
            (Some(since), Some(now)) => (now.as_second() - since.as_second()).max(0),
            _ => 0,
        };
        let digest = up.resolved_digest.as_deref().or(up.digest.as_deref());
        let input = abi::PromoteInput {
            abi: abi::VERSION,
            entry: "promote",
            context: self.context(policy),
            upstream: abi::Upstream {
                stage: &self.input.estate.stage(from).name.value,
                tag: up.tag.as_deref(),
                digest,
                since: &up.since,
                age_seconds: age,
            },
            current: self.current,
            history: self.history,
        };
        let bytes = serde_json::to_vec(&input).expect("inputs serialise");
        let (output, log) = self.run(id, "promote", &bytes)?;
        let p = abi::read_promotion(&output)?;
        Ok((
            GateVerdict {
                policy: policy.name.value.clone(),
                promote: p.decision == abi::PromoteDecision::Promote,
                reason: p.reason,
            },
            log,
        ))
    }

    /// The diagnostic for a failed call, when this call reports it: a
    /// failure in the module goes to the budget (which keeps the first, in
    /// app order), and a skipped call has nothing to add.
    pub(super) fn failure(
        &self,
        at: &Spanned<PolicyId>,
        d: &crate::model::Deployment,
        why: Failed,
    ) -> Option<Diagnostic> {
        let label = crate::policy::label(&self.input.estate.policy(at.value).source.value);
        let fix = || {
            format!(
                "fix the module or ask its author; `keelson explain` shows the call, and `keelson policy test {label} --input FILE` repeats it"
            )
        };
        match why {
            Failed::Answer(Failure::Reported(msg)) => Some(self.diagnostic(
                at,
                d,
                format!("it reported an error: {msg}"),
                "fix the policy's `params` (its documentation lists them)".to_string(),
            )),
            Failed::Answer(Failure::Broken(why)) => Some(self.diagnostic(at, d, why, fix())),
            Failed::Module(e) => {
                let help = match &e.help {
                    Some(advice) => format!(
                        "{advice}; `keelson policy test {label} --input FILE` repeats the call"
                    ),
                    None => fix(),
                };
                let diag = self.diagnostic(at, d, e.to_string(), help);
                self.budget.failed(at.value, self.app_id.0, diag)
            }
            Failed::Skipped => None,
        }
    }

    fn diagnostic(
        &self,
        at: &Spanned<PolicyId>,
        d: &crate::model::Deployment,
        why: String,
        help: String,
    ) -> Diagnostic {
        let policy = self.input.estate.policy(at.value);
        let label = crate::policy::label(&policy.source.value);
        Diagnostic::error(
            Code::PolicyFailed,
            at.loc,
            format!(
                "policy `{}` ({label}) failed for image `{}` of app `{}` in stage `{}`: {why}",
                policy.name.value,
                self.image.alias.value,
                self.app.name.value,
                self.stage.name.value
            ),
        )
        .with_secondary(policy.loc, "declared here")
        .with_secondary(d.stage.loc, "deployed here")
        .with_help(help)
    }
}
