//! `keelson explain`: why an app's images are what they are. For every image
//! and stage: the candidate tags, what dropped each and why (the image's own
//! filters and filter policies), the strategy's pick, every gate's verdict,
//! and what the stage runs since when. It reads the trace `select` keeps; it
//! decides nothing itself.

use std::fmt::Write;

use crate::model::{AppId, Estate, StageId, StageSource};
use crate::select::{Decision, Decisions, PolicyTrace, Source};

/// The explanation of the app named `app` (and only stage `stage`, when
/// given), or a refusal naming the apps or stages there are.
pub(crate) fn explain_named(
    estate: &Estate,
    decisions: &Decisions,
    app: &str,
    stage: Option<&str>,
) -> Result<String, crate::error::Error> {
    let Some(ai) = estate.apps.iter().position(|a| a.name.value == app) else {
        let names: Vec<&str> = estate.apps.iter().map(|a| a.name.value.as_str()).collect();
        return Err(crate::error::Error::refused(
            format!("the estate has no app `{app}`"),
            format!("the apps are: {}", names.join(", ")),
        ));
    };
    let stage = match stage {
        None => None,
        Some(s) => match estate.stages.iter().position(|st| st.name.value == s) {
            Some(i) => Some(StageId(i as u32)),
            None => {
                let all: Vec<&str> = estate
                    .stages
                    .iter()
                    .map(|s| s.name.value.as_str())
                    .collect();
                return Err(crate::error::Error::refused(
                    format!("the estate has no stage `{s}`"),
                    format!("the stages are: {}", all.join(", ")),
                ));
            }
        },
    };
    Ok(explain(estate, decisions, AppId(ai as u32), stage))
}

/// The explanation of one app (optionally one stage), as text.
pub fn explain(
    estate: &Estate,
    decisions: &Decisions,
    app: AppId,
    stage: Option<StageId>,
) -> String {
    let a = estate.app(app);
    let mut out = String::new();
    let _ = writeln!(out, "app `{}`", a.name.value);
    for (ii, image) in a.images.iter().enumerate() {
        let _ = writeln!(
            out,
            "\nimage `{}` ({}), strategy {}{}",
            image.alias.value,
            image.repository.value.0,
            image.strategy.value.name(),
            image
                .constraint
                .as_ref()
                .map(|c| format!(", constraint `{}`", c.value))
                .unwrap_or_default()
        );
        for d in &a.deployments {
            let sid = d.stage.value;
            if stage.is_some_and(|s| s != sid) {
                continue;
            }
            let s = estate.stage(sid);
            let key = (app, sid, ii);
            let how = match &s.source {
                StageSource::Registry { .. } => "from the registry".to_string(),
                StageSource::Promotion { from, .. } => {
                    format!("promoted from `{}`", estate.stage(from.value).name.value)
                }
            };
            let _ = writeln!(out, "  stage `{}` ({how})", s.name.value);
            match (decisions.images.get(&key), decisions.waiting.get(&key)) {
                (Some(decision), _) => decision_lines(&mut out, estate, decision),
                (None, Some(trace)) => {
                    trace_lines(&mut out, estate, trace);
                    let _ = writeln!(
                        out,
                        "    waits: the stage has never run this app, and its gates hold; no Application yet"
                    );
                }
                (None, None) => {
                    let _ = writeln!(out, "    no decision: see the errors above");
                }
            }
        }
    }
    out
}

fn decision_lines(out: &mut String, estate: &Estate, d: &Decision) {
    if let Some(sel) = &d.selection {
        let names: Vec<&str> = sel.candidates.iter().map(|c| c.name.as_str()).collect();
        let shown = names
            .iter()
            .take(10)
            .copied()
            .collect::<Vec<_>>()
            .join(", ");
        let more = names.len().saturating_sub(10);
        let _ = writeln!(
            out,
            "    candidates, best first ({}): {shown}{}",
            names.len(),
            if more > 0 {
                format!(", and {more} more")
            } else {
                String::new()
            }
        );
        if !sel.dropped.is_empty() {
            let _ = writeln!(out, "    dropped ({}):", sel.dropped.len());
            let width = sel.dropped.iter().map(|(t, _)| t.len()).max().unwrap_or(0);
            for (tag, why) in &sel.dropped {
                let _ = writeln!(out, "      {tag:width$}  {}", why.reason());
            }
        }
        match &sel.chosen {
            Some(c) => {
                let _ = writeln!(out, "    pick: {} (the best candidate left)", c.name);
            }
            None => {
                let _ = writeln!(out, "    pick: none");
            }
        }
    }
    trace_lines(out, estate, &d.trace);
    let image = reference(&d.tag, &d.digest);
    let why = source_text(estate, &d.source);
    let _ = writeln!(out, "    runs {image} since {}: {why}", d.since);
    if let Some(prev) = d.history.first() {
        let _ = writeln!(
            out,
            "    before: {} from {} until {}",
            reference(&prev.tag, &prev.digest),
            prev.since,
            prev.until
        );
    }
}

/// Where a decision came from, as a sentence.
fn source_text(estate: &Estate, source: &Source) -> String {
    match source {
        Source::Pin => "pinned in the estate: the pin overrides every strategy and policy".into(),
        Source::Snapshot(f) => format!("chosen by the strategy from snapshot `{f}`"),
        Source::Registry(r) => format!("chosen by the strategy from {r}"),
        Source::Lock(s) => format!("replayed from keelson.lock (`{s}`, --offline)"),
        Source::WriteBack(f) => {
            format!("kept as Image Updater wrote it into `{f}` (keelson never moves it backwards)")
        }
        Source::Promotion(s) => format!("promoted from `{}`", estate.stage(*s).name.value),
        Source::Held { from, .. } => format!(
            "held: the gates keep `{}`'s image out, so the stage keeps what it ran",
            estate.stage(*from).name.value
        ),
    }
}

/// Why a stage runs what it runs, on one line (for `keelson diff`): the
/// source, the strategy's pick among how many, what policies dropped, and
/// every gate's verdict.
pub fn summary(estate: &Estate, app: AppId, image: usize, d: &Decision) -> String {
    let img = &estate.app(app).images[image];
    let mut parts = Vec::new();
    match &d.source {
        Source::Snapshot(_) | Source::Registry(_) => {
            let mut s = format!(
                "{}{}",
                img.strategy.value.name(),
                img.constraint
                    .as_ref()
                    .map(|c| format!(" `{}`", c.value))
                    .unwrap_or_default()
            );
            if let Some(sel) = &d.selection {
                let _ = write!(s, ": best of {} candidates", sel.candidates.len());
                let by_policy: Vec<&str> = sel
                    .dropped
                    .iter()
                    .filter_map(|(_, why)| match why {
                        crate::strategy::Dropped::Policy { policy, .. } => Some(policy.as_str()),
                        _ => None,
                    })
                    .collect();
                if !by_policy.is_empty() {
                    let mut names = by_policy.clone();
                    names.sort_unstable();
                    names.dedup();
                    let _ = write!(
                        s,
                        ", {} denied by {}",
                        by_policy.len(),
                        names
                            .iter()
                            .map(|n| format!("`{n}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    );
                }
            }
            let from = match &d.source {
                Source::Snapshot(f) => format!("snapshot `{f}`"),
                Source::Registry(r) => r.clone(),
                _ => unreachable!(),
            };
            parts.push(format!("{s} (from {from})"));
        }
        other => parts.push(source_text(estate, other)),
    }
    for g in &d.trace.gates {
        parts.push(format!(
            "gate `{}` {}: {}",
            g.policy,
            if g.promote { "promotes" } else { "holds" },
            g.reason
        ));
    }
    parts.join("; ")
}

fn trace_lines(out: &mut String, estate: &Estate, t: &PolicyTrace) {
    if let Some((from, tag, digest)) = &t.upstream {
        let _ = writeln!(
            out,
            "    upstream `{}` runs {}",
            estate.stage(*from).name.value,
            reference(tag, digest)
        );
    }
    for g in &t.gates {
        let _ = writeln!(
            out,
            "    gate `{}`: {}: {}",
            g.policy,
            if g.promote { "promote" } else { "hold" },
            g.reason
        );
    }
    for (policy, line) in &t.log {
        let _ = writeln!(out, "    log [{policy}] {line}");
    }
}

fn reference(tag: &Option<String>, digest: &Option<String>) -> String {
    match (tag, digest) {
        (Some(t), Some(d)) => format!("{t}@{d}"),
        (Some(t), None) => t.clone(),
        (None, Some(d)) => d.clone(),
        (None, None) => "nothing".into(),
    }
}
