//! What a compile may spend on each policy module across all its calls.
//!
//! Every call has its own limits ([`super::Limits`]); a compile makes one
//! call per image of each app stage that uses a policy, so without a budget a
//! module that loops would cost a full call's fuel on every app. Per module
//! (policies that share a module share its budget), for one compile:
//!
//! - **fuel**: the calls together may use [`super::Limits::compile_fuel`].
//!   Once they have used more, no further call is made, and the compile
//!   fails with one error at the policy's declaration. Whether the budget is
//!   exceeded does not depend on the thread count: every call's fuel is
//!   deterministic, so the total goes over exactly when the calls together
//!   need more.
//! - **the breaker**: after a call fails (a trap, fuel, memory, the
//!   deadline, output the host cannot read), the module is not called again
//!   for that app or any later one, and the compile reports that failure
//!   once, not once per app. Apps are decided in parallel, so "first" means
//!   first in app order: a call is skipped only for an app at or after the
//!   lowest app whose call failed so far, so every app before it still runs
//!   and the failure reported is always that of the lowest failing app — the
//!   one a single thread would have found. (When the fuel budget also runs
//!   out, which call was refused first may vary; the compile fails either
//!   way.)
//!
//! Answers the ABI reading rejects (bad JSON, a missing verdict, an
//! `{"error": …}`) are not the module running away, and are reported per call
//! as before.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use crate::diagnostic::{Code, Diagnostic};
use crate::model::{Estate, PolicyId};

use super::{CallError, Called, Policies};

/// One compile's spending on its policies' modules. Made by
/// [`Policies::budget`], shared by the threads that decide apps.
pub struct Budget<'p> {
    policies: &'p Policies,
    accounts: Vec<Account>,
    of: HashMap<PolicyId, usize>,
}

/// One module's spending.
struct Account {
    /// The first policy (by id) that uses the module: where a spent budget
    /// is reported.
    policy: PolicyId,
    limit: u64,
    used: AtomicU64,
    /// The lowest app order a call failed for (`u32::MAX`: none yet).
    broken_at: AtomicU32,
    /// That call's diagnostic.
    first_failure: Mutex<Option<(u32, Diagnostic)>>,
}

/// Why a call gave no answer.
#[derive(Debug)]
pub enum Refused {
    /// The call failed: the caller reports it through [`Budget::failed`].
    Failed(CallError),
    /// The call was not made: the module failed for an earlier app, or spent
    /// its budget. The compile reports that; nothing more needs saying.
    Skipped,
}

impl Policies {
    /// A fresh budget for one compile's calls.
    pub fn budget(&self) -> Budget<'_> {
        let mut ids: Vec<PolicyId> = self.modules.keys().copied().collect();
        ids.sort();
        let limit = self.host.as_ref().map_or(0, |h| h.limits().compile_fuel());
        let mut by_hash: HashMap<&str, usize> = HashMap::new();
        let mut accounts = Vec::new();
        let mut of = HashMap::new();
        for id in ids {
            let hash = self.modules[&id].hash.as_str();
            let index = *by_hash.entry(hash).or_insert_with(|| {
                accounts.push(Account {
                    policy: id,
                    limit,
                    used: AtomicU64::new(0),
                    broken_at: AtomicU32::new(u32::MAX),
                    first_failure: Mutex::new(None),
                });
                accounts.len() - 1
            });
            of.insert(id, index);
        }
        Budget {
            policies: self,
            accounts,
            of,
        }
    }
}

impl Budget<'_> {
    /// Calls policy `id`'s `entry` with `input` for the app at `order` (its
    /// index in the estate), unless its module already failed for that app
    /// or an earlier one, or spent its budget.
    pub fn call(
        &self,
        id: PolicyId,
        order: u32,
        entry: &str,
        input: &[u8],
    ) -> Result<Called<String>, Refused> {
        let (Some((host, module)), Some(&index)) = (self.policies.get(id), self.of.get(&id)) else {
            return Err(Refused::Failed(CallError::plain(
                "its module was not loaded".into(),
            )));
        };
        let account = &self.accounts[index];
        if account.used.load(Ordering::Relaxed) > account.limit
            || account.broken_at.load(Ordering::Relaxed) <= order
        {
            return Err(Refused::Skipped);
        }
        let result = host.call(module, entry, input);
        let fuel = match &result {
            Ok(called) => called.fuel,
            Err(e) => e.fuel,
        };
        let _ = account
            .used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |u| {
                Some(u.saturating_add(fuel))
            });
        result.map_err(|e| {
            account.broken_at.fetch_min(order, Ordering::Relaxed);
            Refused::Failed(e)
        })
    }

    /// Records the diagnostic for a call of policy `id` that failed for the
    /// app at `order`; only the lowest order's is reported. Returns it when
    /// the policy has no module to charge (it is then reported as is).
    pub fn failed(&self, id: PolicyId, order: u32, d: Diagnostic) -> Option<Diagnostic> {
        let Some(&index) = self.of.get(&id) else {
            return Some(d);
        };
        let mut first = self.accounts[index]
            .first_failure
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if first.as_ref().is_none_or(|(o, _)| order < *o) {
            *first = Some((order, d));
        }
        None
    }

    /// What the compile reports: each module's first failure, and each
    /// budget that ran out.
    pub fn into_diagnostics(self, estate: &Estate) -> Vec<Diagnostic> {
        let mut out = Vec::new();
        for account in self.accounts {
            let first = account
                .first_failure
                .into_inner()
                .unwrap_or_else(|p| p.into_inner());
            out.extend(first.map(|(_, d)| d));
            if account.used.into_inner() > account.limit {
                let policy = estate.policy(account.policy);
                let label = super::label(&policy.source.value);
                out.push(
                    Diagnostic::error(
                        Code::PolicyFailed,
                        policy.loc,
                        format!(
                            "policy `{}` ({label}): its calls in this compile used more than {} units of fuel together, the budget of one module in one compile; it was not called again",
                            policy.name.value, account.limit
                        ),
                    )
                    .with_help(format!(
                        "make the policy cheaper (`keelson policy test {label} --input FILE` prints the fuel of one call), or raise the budget with `--policy-compile-fuel` (default: {} × `--policy-fuel`)",
                        super::COMPILE_CALLS
                    )),
                );
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{Host, Limits};

    /// A filter that runs `body` (with a local `$i` to count in), then
    /// answers `{}`.
    fn filter(body: &str) -> String {
        crate::policy::tests::filter_doing(&format!("(local $i i32) {body}"))
    }

    /// Policies 0 and 1 share the module `wat`; policy 2 has its own copy
    /// of another.
    fn policies(limits: Limits, wat: &str) -> Policies {
        let host = Host::new(limits, None).unwrap();
        let shared = host.load("a.wat", wat.as_bytes()).unwrap();
        let other = host.load("b.wat", filter("").as_bytes()).unwrap();
        Policies {
            modules: [
                (PolicyId(0), shared.clone()),
                (PolicyId(1), shared),
                (PolicyId(2), other),
            ]
            .into(),
            host: Some(host),
        }
    }

    fn skipped(r: Result<Called<String>, Refused>) -> bool {
        matches!(r, Err(Refused::Skipped))
    }

    fn failed(r: Result<Called<String>, Refused>) -> bool {
        matches!(r, Err(Refused::Failed(_)))
    }

    #[test]
    fn a_module_that_failed_is_not_called_for_that_app_or_later_ones() {
        let p = policies(Limits::default(), &filter("unreachable"));
        let budget = p.budget();
        assert!(failed(budget.call(PolicyId(0), 5, "filter", b"{}")));
        // Later apps, the same app, and another policy of the same module.
        assert!(skipped(budget.call(PolicyId(0), 6, "filter", b"{}")));
        assert!(skipped(budget.call(PolicyId(0), 5, "filter", b"{}")));
        assert!(skipped(budget.call(PolicyId(1), 9, "filter", b"{}")));
        // An earlier app still runs (its failure is the one reported).
        assert!(failed(budget.call(PolicyId(1), 3, "filter", b"{}")));
        assert!(skipped(budget.call(PolicyId(0), 4, "filter", b"{}")));
        // Another module is not affected.
        assert!(budget.call(PolicyId(2), 7, "filter", b"{}").is_ok());
        // The next compile starts afresh.
        assert!(failed(p.budget().call(PolicyId(0), 8, "filter", b"{}")));
    }

    #[test]
    fn a_module_stops_being_called_once_its_calls_spent_the_budget() {
        let limits = Limits {
            fuel: 1_000_000,
            compile_fuel: Some(2_000_000),
            ..Limits::default()
        };
        // About 800,000 fuel a call.
        let burn = "(loop $l
            (local.set $i (i32.add (local.get $i) (i32.const 1)))
            (br_if $l (i32.lt_u (local.get $i) (i32.const 100000))))";
        let p = policies(limits, &filter(burn));
        let budget = p.budget();
        let fuel = budget.call(PolicyId(0), 0, "filter", b"{}").unwrap().fuel;
        assert!((700_000..1_000_000).contains(&fuel), "{fuel}");
        // The second call fits; the third goes over (its answer stands: the
        // compile fails on the budget anyway); the fourth is not made.
        budget.call(PolicyId(1), 1, "filter", b"{}").unwrap();
        budget.call(PolicyId(0), 2, "filter", b"{}").unwrap();
        assert!(skipped(budget.call(PolicyId(0), 3, "filter", b"{}")));
        assert!(skipped(budget.call(PolicyId(1), 0, "filter", b"{}")));
        assert!(budget.call(PolicyId(2), 0, "filter", b"{}").is_ok());
        assert!(budget.accounts[0].used.load(Ordering::Relaxed) > 2_000_000);
        // By default the budget is 40 calls' fuel.
        assert_eq!(Limits::default().compile_fuel(), 40 * 500_000_000);
    }
}
