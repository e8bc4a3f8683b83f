//! Rule 2: a stage Image Updater updates by committing to git keeps the
//! image it wrote back into the tree, unless the strategy's own choice is
//! strictly newer — keelson never moves such a stage backwards.

use crate::discover::WrittenBack;
use crate::strategy;

use super::{Decision, Slot, Source};

/// Rule 2, applied to what rules 1, 3 and 4 decided: that decision, or the
/// written-back image (keeping the decision's policy trace).
pub(super) fn keep_write_back(slot: &Slot<'_>, decision: Decision) -> Decision {
    if !slot.stage.write_back.value.commits() {
        return decision;
    }
    let Some(wb) = slot.input.observed.written_back.get(&slot.key) else {
        return decision;
    };
    if !write_back_wins(slot, &decision, wb) {
        return decision;
    }
    let mut kept = Decision::new(
        wb.tag.clone(),
        wb.digest.clone(),
        wb.digest.clone(),
        Source::WriteBack(wb.file.clone()),
    );
    kept.trace = decision.trace;
    kept
}

/// Whether the written-back image stands over `decision`.
fn write_back_wins(slot: &Slot<'_>, decision: &Decision, wb: &WrittenBack) -> bool {
    // Argo CD applies `.argocd-source-<app>.yaml` over the overlay, so what
    // it says runs, whatever keelson writes — even over a pin.
    let from_source_file = wb
        .file
        .rsplit('/')
        .next()
        .is_some_and(|f| f.starts_with(".argocd-source"));
    match decision {
        d if d.tag == wb.tag && d.digest == wb.digest => false,
        _ if from_source_file => true,
        Decision {
            source: Source::Snapshot(_) | Source::Registry(_),
            selection: Some(sel),
            ..
        } => {
            let (app, _, ii) = slot.key;
            let known = slot.input.tags.for_image(app, ii, slot.image);
            match (&sel.chosen, known) {
                (Some(chosen), Some(known)) => !strategy::is_newer(
                    slot.image.strategy.value,
                    chosen,
                    wb.tag.as_deref(),
                    wb.digest.as_deref(),
                    known.tags(),
                ),
                _ => true,
            }
        }
        Decision {
            source: Source::Pin,
            ..
        } => false,
        _ => true,
    }
}
