//! Rule 4: a stage that takes images from the registry runs the strategy's
//! choice over the tag data, after the image filters and the filter
//! policies; with `--offline`, what the lock recorded.

use crate::diagnostic::{Code, Diagnostic};
use crate::discover::TagSource;
use crate::model::{PolicyId, Spanned, Strategy};
use crate::strategy::{self, Dropped, Rules, Selection, TagInfo};

use super::{Decision, PolicyTrace, Slot, Source};

/// Rule 4. `None` when there is no answer (reported here, or by `discover`
/// when the registry could not be asked).
pub(super) fn from_registry(
    slot: &Slot<'_>,
    filters: &[Spanned<PolicyId>],
    diags: &mut Vec<Diagnostic>,
) -> Option<Decision> {
    if slot.input.offline {
        replay_lock(slot, diags)
    } else {
        choose_from_tags(slot, filters, diags)
    }
}

/// `--offline`: the lock's entry, keeping the source it recorded.
fn replay_lock(slot: &Slot<'_>, diags: &mut Vec<Diagnostic>) -> Option<Decision> {
    let Some(l) = slot.locked() else {
        diags.push(
            Diagnostic::error(
                Code::NoTagSource,
                slot.image.repository.loc,
                format!(
                    "{}: `--offline` replays keelson.lock, which has no entry for it",
                    slot.what
                ),
            )
            .with_secondary(slot.deployment.stage.loc, "deployed here")
            .with_help("compile once without `--offline`, or pin the image"),
        );
        return None;
    };
    Some(Decision::new(
        l.tag.clone(),
        l.digest.clone(),
        l.resolved_digest.clone(),
        Source::Lock(l.source.clone()),
    ))
}

/// The strategy over the image's tags, narrowed by the filter policies: the
/// first candidate left wins.
fn choose_from_tags(
    slot: &Slot<'_>,
    filters: &[Spanned<PolicyId>],
    diags: &mut Vec<Diagnostic>,
) -> Option<Decision> {
    let (app, _, ii) = slot.key;
    let image = slot.image;
    // Every such image has a snapshot entry or was asked of its registry:
    // none means that failed (reported).
    let known = slot.input.tags.for_image(app, ii, image)?;
    let (source, origin) = match &known {
        TagSource::Snapshot { file, .. } => {
            (Source::Snapshot(file.to_string()), format!("in `{file}`"))
        }
        TagSource::Registry { origin, .. } => (
            Source::Registry(origin.to_string()),
            format!("from {origin}"),
        ),
    };
    let ignore: Vec<String> = image.ignore_tags.iter().map(|p| p.value.clone()).collect();
    let rules = Rules::of(image, &ignore, slot.empty_constraint_checks);
    let mut selection = strategy::select(&rules, known.tags());
    let trace = apply_filter_policies(slot, filters, &mut selection, diags)?;
    selection.chosen = selection.candidates.first().cloned();
    let Some(TagInfo { name, digest, .. }) = selection.chosen.clone() else {
        diags.push(
            Diagnostic::error(
                Code::NoMatchingTag,
                image.alias.loc,
                format!(
                    "no tag of `{}` matches {} ({} tags {origin}, strategy `{}`)",
                    image.repository.value.0,
                    slot.what,
                    known.tags().len(),
                    image.strategy.value.name()
                ),
            )
            .with_secondary(slot.deployment.stage.loc, "deployed here")
            .with_help(no_match_help(&selection)),
        );
        return None;
    };
    let mut decision = Decision::new(
        Some(name),
        // Only the digest strategy pins by digest.
        digest
            .clone()
            .filter(|_| image.strategy.value == Strategy::Digest),
        digest,
        source,
    );
    decision.selection = Some(selection);
    decision.trace = trace;
    Some(decision)
}

/// Runs the image's filter policies, then the stage's (each policy once),
/// over the candidates still left; denied tags move to `dropped` with the
/// policy's reason, in tag order. `None` when a policy failed (reported).
fn apply_filter_policies(
    slot: &Slot<'_>,
    filters: &[Spanned<PolicyId>],
    selection: &mut Selection,
    diags: &mut Vec<Diagnostic>,
) -> Option<PolicyTrace> {
    let call = slot.call();
    let mut trace = PolicyTrace::default();
    let mut seen = Vec::new();
    for f in slot.image.filters.iter().chain(filters) {
        if seen.contains(&f.value) || selection.candidates.is_empty() {
            continue;
        }
        seen.push(f.value);
        match call.filter(f.value, &selection.candidates) {
            Ok((denied, log)) => {
                trace.log.extend(log);
                let name = &slot.input.estate.policy(f.value).name.value;
                selection
                    .candidates
                    .retain(|c| !denied.contains_key(&c.name));
                let mut denied: Vec<_> = denied.into_iter().collect();
                denied.sort();
                for (tag, reason) in denied {
                    selection.dropped.push((
                        tag,
                        Dropped::Policy {
                            policy: name.clone(),
                            reason,
                        },
                    ));
                }
            }
            Err(e) => {
                diags.extend(call.failure(f, slot.deployment, e));
                return None;
            }
        }
    }
    Some(trace)
}

fn no_match_help(s: &Selection) -> String {
    if s.dropped.is_empty() {
        return "no tags are listed for this repository; push one, add them to the snapshot, or pin the image".into();
    }
    let shown: Vec<String> = s
        .dropped
        .iter()
        .take(5)
        .map(|(t, why)| format!("`{t}`: {}", why.reason()))
        .collect();
    let more = if s.dropped.len() > 5 {
        format!(", and {} more", s.dropped.len() - 5)
    } else {
        String::new()
    };
    format!(
        "{}{more}; loosen the filters or the constraint, or pin the image",
        shown.join(", ")
    )
}
