//! The waiting-stage rule: a stage that promotes, whose gates have not yet
//! let an app's first image through, gets no Application for that app (an
//! Application without an image would deploy nothing, or the base's tag).

use crate::diagnostic::{Code, Diagnostic, Diagnostics};
use crate::model::{AppId, Estate, StageId};

use super::Decisions;

/// The estate without the deployments that wait for their first rollout,
/// with a warning for each naming the gates that hold it; `None` when
/// nothing waits (emit then uses the estate as it is).
pub fn hold_waiting(
    estate: &Estate,
    decisions: &Decisions,
    diags: &mut Diagnostics,
) -> Option<Estate> {
    let waiting = decisions.waiting_stages();
    if waiting.is_empty() {
        return None;
    }
    let mut held = estate.clone();
    for (ai, app) in held.apps.iter_mut().enumerate() {
        app.deployments
            .retain(|d| !waiting.contains(&(AppId(ai as u32), d.stage.value)));
    }
    for &(app, stage) in &waiting {
        diags.push(warning(estate, decisions, app, stage));
    }
    Some(held)
}

fn warning(estate: &Estate, decisions: &Decisions, app: AppId, stage: StageId) -> Diagnostic {
    let a = estate.app(app);
    let d = a
        .deployments
        .iter()
        .find(|d| d.stage.value == stage)
        .expect("a waiting deployment");
    let reasons: Vec<String> = decisions
        .waiting
        .range((app, stage, 0)..=(app, stage, usize::MAX))
        .flat_map(|(_, t)| t.gates.iter().filter(|g| !g.promote))
        .map(|g| format!("`{}`: {}", g.policy, g.reason))
        .collect();
    let reasons = if reasons.is_empty() {
        "its upstream stage has no image yet".to_string()
    } else {
        reasons.join("; ")
    };
    Diagnostic::warning(
        Code::PromotionWaiting,
        d.stage.loc,
        format!(
            "app `{}` waits for its first rollout to stage `{}`, so it gets no Application yet: {reasons}",
            a.name.value,
            estate.stage(stage).name.value
        ),
    )
    .with_help("compile again once the gates pass (`keelson explain` shows them), or pin the images in this `deploy` block to roll out now")
}
