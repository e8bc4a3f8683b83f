//! Rule 3: a stage that promotes takes the upstream stage's image once its
//! gates pass; while they hold, it keeps what it ran, or — never having run
//! the app — waits for its first rollout.

use crate::diagnostic::{Code, Diagnostic};
use crate::model::{PolicyId, Spanned, StageId};

use super::{AppDecisions, Decision, PolicyTrace, Slot, Source, same_image};

/// What the gates said about the upstream's image.
struct Judgement {
    promote: bool,
    trace: PolicyTrace,
    /// A gate failed (reported): nothing more is said about the image.
    failed: bool,
}

/// Rule 3. Reads the upstream's decision (or its waiting) from `out`, so the
/// upstream stage must be decided first; a held first rollout goes to
/// `out.waiting` or, for a stage keelson deployed before, an error.
pub(super) fn promote(
    slot: &Slot<'_>,
    from: StageId,
    gates: &[Spanned<PolicyId>],
    out: &mut AppDecisions,
) -> Option<Decision> {
    let (app, _, ii) = slot.key;
    let up = out.images.get(&(app, from, ii));
    let judgement = match up {
        // The upstream stage failed (reported).
        None if !out.waiting.contains_key(&(app, from, ii)) => return None,
        // The upstream stage waits for its own first rollout.
        None => Judgement {
            promote: false,
            trace: PolicyTrace::default(),
            failed: false,
        },
        Some(up) => run_gates(slot, from, gates, up, &mut out.diags),
    };
    if judgement.promote
        && let Some(up) = up
    {
        return Some(from_upstream(up, from, judgement.trace));
    }
    hold_or_wait(slot, from, judgement, out)
}

/// Asks every gate (all of them, so `explain` shows each verdict) whether the
/// upstream's image may come in. The image the stage already runs, and any
/// image for a stage without gates, needs no verdict.
fn run_gates(
    slot: &Slot<'_>,
    from: StageId,
    gates: &[Spanned<PolicyId>],
    up: &Decision,
    diags: &mut Vec<Diagnostic>,
) -> Judgement {
    let up_digest = up.resolved_digest.clone().or(up.digest.clone());
    let mut trace = PolicyTrace {
        upstream: Some((from, up.tag.clone(), up_digest.clone())),
        ..PolicyTrace::default()
    };
    let same = slot.current.is_some_and(|c| {
        same_image(c.locked, &up.tag, &up.digest, &up.resolved_digest)
            || (c.running.tag == up.tag && c.running.digest == up_digest)
    });
    if same || gates.is_empty() {
        return Judgement {
            promote: true,
            trace,
            failed: false,
        };
    }
    let call = slot.call();
    let mut promote = true;
    let mut failed = false;
    for g in gates {
        match call.promote(g.value, from, up) {
            Ok((verdict, log)) => {
                promote &= verdict.promote;
                trace.log.extend(log);
                trace.gates.push(verdict);
            }
            Err(e) => {
                diags.extend(call.failure(g, slot.deployment, e));
                failed = true;
                promote = false;
            }
        }
    }
    Judgement {
        promote,
        trace,
        failed,
    }
}

/// The upstream's image, pinned to the digest it ran when known: the stage
/// runs exactly what was tested there.
fn from_upstream(up: &Decision, from: StageId, trace: PolicyTrace) -> Decision {
    let digest = up.resolved_digest.clone().or(up.digest.clone());
    let mut decision = Decision::new(
        up.tag.clone(),
        digest.clone(),
        digest,
        Source::Promotion(from),
    );
    decision.trace = trace;
    decision
}

/// The gates hold (or the upstream waits): the stage keeps what the lock
/// says it runs. With nothing in the lock, a stage keelson never deployed
/// waits for its first rollout (see `waiting.rs`); one it did deploy cannot
/// get a new image this way, which is an error.
fn hold_or_wait(
    slot: &Slot<'_>,
    from: StageId,
    judgement: Judgement,
    out: &mut AppDecisions,
) -> Option<Decision> {
    if let Some(l) = slot.locked() {
        let mut decision = Decision::new(
            l.tag.clone(),
            l.digest.clone(),
            l.resolved_digest.clone(),
            Source::Held {
                from,
                previous: l.source.clone(),
            },
        );
        decision.trace = judgement.trace;
        return Some(decision);
    }
    if judgement.failed {
        return None;
    }
    if !slot.stage_known {
        out.waiting.insert(slot.key, judgement.trace);
        return None;
    }
    out.diags.push(never_ran(slot, from, &judgement.trace));
    None
}

/// The error for a new image of an app already deployed to the stage, whose
/// gates hold its first rollout there.
fn never_ran(slot: &Slot<'_>, from: StageId, trace: &PolicyTrace) -> Diagnostic {
    let reasons: Vec<String> = trace
        .gates
        .iter()
        .filter(|g| !g.promote)
        .map(|g| format!("`{}`: {}", g.policy, g.reason))
        .collect();
    Diagnostic::error(
        Code::PromotionHeld,
        slot.deployment.stage.loc,
        format!(
            "{} has never run, and its gates hold what `{}` runs ({})",
            slot.what,
            slot.input.estate.stage(from).name.value,
            reasons.join("; ")
        ),
    )
    .with_secondary(slot.image.alias.loc, "a new image of a deployed app")
    .with_help(format!(
        "pin it for its first rollout (`pin \"{}\" tag=\"…\"` in the `deploy` block), or wait until the gates pass",
        slot.image.alias.value
    ))
}
