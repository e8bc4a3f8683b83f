//! Stage 5: decide the image every app stage runs.
//!
//! In order of precedence, for each image of each deployment:
//! 1. a `pin` in the estate — overrides everything;
//! 2. for a stage Image Updater updates by git: the image it wrote back into
//!    the tree, unless the strategy's own choice is strictly newer — keelson
//!    never moves such a stage backwards;
//! 3. for a stage that promotes: the upstream stage's image, once its gates
//!    pass;
//! 4. for a stage that takes images from the registry: the strategy over the
//!    tag data (`--offline`: the lock).
//!
//! Stages are visited upstream first, so a promotion sees its source's answer.
//! Pure: tag data and the previous tree come from `discover`.

mod waiting;

use std::collections::BTreeMap;

use rayon::prelude::*;

use crate::diagnostic::{Code, Diagnostic, Diagnostics};
use crate::discover::{Observed, TagData, TagSource};
use crate::graph::EstateGraph;
use crate::lock::LockedImage;
use crate::model::{AppId, Estate, PolicyId, Spanned, StageId, StageSource};
use crate::policy::Policies;
use crate::policy::abi::{self, Failure, Past, Running};
use crate::strategy::{self, Dropped, Rules, Selection, TagInfo};
pub use waiting::hold_waiting;

/// Where an image decision came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Pin,
    /// Chosen by the strategy from a snapshot file.
    Snapshot(String),
    /// Chosen by the strategy from a registry's answer (`host/name`).
    Registry(String),
    /// Replayed from `keelson.lock` (`--offline`), keeping the recorded source.
    Lock(String),
    /// Kept as Image Updater wrote it into this file.
    WriteBack(String),
    /// Taken from the upstream stage.
    Promotion(StageId),
    /// A gate held the upstream's image: the stage keeps what it ran, with
    /// the source recorded then.
    Held {
        from: StageId,
        previous: String,
    },
}

/// The image one deployment runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub tag: Option<String>,
    pub digest: Option<String>,
    pub source: Source,
    /// The strategy's trace, when a strategy chose (policy denials included).
    pub selection: Option<Selection>,
    /// The digest the tag pointed at when keelson resolved it, when known
    /// (recorded in the lock; the tree pins `digest` only).
    pub resolved_digest: Option<String>,
    /// Since when the stage runs this image (RFC 3339).
    pub since: String,
    /// What the stage ran before, newest first.
    pub history: Vec<Past>,
    /// Gate verdicts and policy logs.
    pub trace: PolicyTrace,
}

/// What policies said about one decision, for `explain` and diagnostics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PolicyTrace {
    /// The upstream image the gates judged, when the stage promotes.
    pub upstream: Option<(StageId, Option<String>, Option<String>)>,
    /// Each gate's verdict, in the order the stage lists them.
    pub gates: Vec<GateVerdict>,
    /// Log lines, by policy name.
    pub log: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GateVerdict {
    pub policy: String,
    pub promote: bool,
    pub reason: String,
}

impl PolicyTrace {
    pub fn held(&self) -> bool {
        self.gates.iter().any(|g| !g.promote)
    }
}

/// Key: (app, stage, image index in the app).
pub type DecisionKey = (AppId, StageId, usize);

#[derive(Debug, Clone, Default)]
pub struct Decisions {
    pub images: BTreeMap<DecisionKey, Decision>,
    /// Images of app stages that have never run the app and whose gates hold:
    /// the stage waits, and gets no Application until a gate lets it in.
    pub waiting: BTreeMap<DecisionKey, PolicyTrace>,
}

impl Decisions {
    /// The app stages that wait for their first rollout.
    pub fn waiting_stages(&self) -> std::collections::BTreeSet<(AppId, StageId)> {
        self.waiting.keys().map(|&(a, s, _)| (a, s)).collect()
    }
}

pub struct Inputs<'a> {
    pub estate: &'a Estate,
    pub graph: &'a EstateGraph,
    pub tags: &'a TagData,
    pub observed: &'a Observed,
    pub offline: bool,
    /// The time policies see, and the `since` of every new decision.
    pub now: jiff::Timestamp,
    pub policies: &'a Policies,
}

pub fn decide(input: &Inputs<'_>, diags: &mut Diagnostics) -> Decisions {
    // Apps are independent (promotion stays within an app), so they are
    // decided in parallel and merged in app order: the same output for any
    // number of threads.
    let apps: Vec<AppDecisions> = (0..input.estate.apps.len())
        .into_par_iter()
        .map(|ai| decide_app(input, AppId(ai as u32)))
        .collect();
    let mut out = Decisions::default();
    for app in apps {
        out.images.extend(app.images);
        out.waiting.extend(app.waiting);
        for d in app.diags {
            diags.push(d);
        }
    }
    out
}

#[derive(Default)]
struct AppDecisions {
    images: BTreeMap<DecisionKey, Decision>,
    waiting: BTreeMap<DecisionKey, PolicyTrace>,
    diags: Vec<Diagnostic>,
}

/// What a stage ran, as the lock recorded it.
struct Current<'a> {
    locked: &'a LockedImage,
    running: Running,
}

fn decide_app(input: &Inputs<'_>, app_id: AppId) -> AppDecisions {
    let estate = input.estate;
    let app = estate.app(app_id);
    let now = abi::time(input.now);
    let empty_constraint_checks = strategy::empty_constraint_checks(estate);
    let mut out = AppDecisions::default();
    let lock = input.observed.lock.as_ref();
    for &stage_id in &input.graph.stage_order {
        let stage = estate.stage(stage_id);
        let Some(d) = app.deployments.iter().find(|d| d.stage.value == stage_id) else {
            continue;
        };
        // Whether keelson ever deployed this app to this stage.
        let stage_known = lock.is_some_and(|l| l.has_stage(&app.name.value, &stage.name.value));
        for (ii, image) in app.images.iter().enumerate() {
            let key = (app_id, stage_id, ii);
            let locked =
                lock.and_then(|l| l.image(&app.name.value, &stage.name.value, &image.alias.value));
            let current = locked.map(|l| Current {
                locked: l,
                running: Running {
                    tag: l.tag.clone(),
                    digest: l.digest.clone().or_else(|| l.resolved_digest.clone()),
                    // A lock from before `since` was recorded: count from now.
                    since: l.since.clone().unwrap_or_else(|| now.clone()),
                },
            });
            let history: &[Past] = locked.map_or(&[], |l| &l.history);
            let what = format!(
                "image `{}` of app `{}` in stage `{}`",
                image.alias.value, app.name.value, stage.name.value
            );
            let call = Call {
                input,
                app,
                stage,
                image,
                now: &now,
                current: current.as_ref().map(|c| &c.running),
                history,
            };
            let decision: Option<Decision>;
            // 1. A pin overrides everything.
            if let Some(pin) = d.pins.iter().find(|p| p.image == ii) {
                decision = Some(Decision::new(
                    pin.tag.clone(),
                    pin.digest.clone(),
                    pin.digest.clone(),
                    Source::Pin,
                ));
            } else {
                match &stage.source {
                    // 3. Promotion.
                    StageSource::Promotion { from, gates } => {
                        let up = out.images.get(&(app_id, from.value, ii));
                        let upstream_waits = out.waiting.contains_key(&(app_id, from.value, ii));
                        let mut trace = PolicyTrace::default();
                        let mut gate_failed = false;
                        let promote = match up {
                            // The upstream stage failed (reported) or waits.
                            None if !upstream_waits => continue,
                            None => false,
                            Some(up) => {
                                let up_digest = up.resolved_digest.clone().or(up.digest.clone());
                                trace.upstream =
                                    Some((from.value, up.tag.clone(), up_digest.clone()));
                                let same = current.as_ref().is_some_and(|c| {
                                    same_image(c.locked, &up.tag, &up.digest, &up.resolved_digest)
                                        || (c.running.tag == up.tag
                                            && c.running.digest == up_digest)
                                });
                                if same || gates.is_empty() {
                                    true
                                } else {
                                    let mut all = true;
                                    for g in gates {
                                        match call.promote(g.value, from.value, up) {
                                            Ok((verdict, log)) => {
                                                all &= verdict.promote;
                                                trace.log.extend(log);
                                                trace.gates.push(verdict);
                                            }
                                            Err(e) => {
                                                out.diags.push(call.failure(g, d, e));
                                                gate_failed = true;
                                                all = false;
                                            }
                                        }
                                    }
                                    all
                                }
                            }
                        };
                        if promote {
                            let up = up.expect("promote needs an upstream");
                            // Pin the digest the upstream ran, when known:
                            // the stage runs exactly what was tested there.
                            let digest = up.resolved_digest.clone().or(up.digest.clone());
                            let mut dec = Decision::new(
                                up.tag.clone(),
                                digest.clone(),
                                digest,
                                Source::Promotion(from.value),
                            );
                            dec.trace = trace;
                            decision = Some(dec);
                        } else if let Some(c) = &current {
                            let l = c.locked;
                            let mut dec = Decision::new(
                                l.tag.clone(),
                                l.digest.clone(),
                                l.resolved_digest.clone(),
                                Source::Held {
                                    from: from.value,
                                    previous: l.source.clone(),
                                },
                            );
                            dec.trace = trace;
                            decision = Some(dec);
                        } else if gate_failed {
                            continue;
                        } else if !stage_known {
                            out.waiting.insert(key, trace);
                            continue;
                        } else {
                            let reasons: Vec<String> = trace
                                .gates
                                .iter()
                                .filter(|g| !g.promote)
                                .map(|g| format!("`{}`: {}", g.policy, g.reason))
                                .collect();
                            out.diags.push(
                                Diagnostic::error(
                                    Code::PromotionHeld,
                                    d.stage.loc,
                                    format!("{what} has never run, and its gates hold what `{}` runs ({})", estate.stage(from.value).name.value, reasons.join("; ")),
                                )
                                .with_secondary(image.alias.loc, "a new image of a deployed app")
                                .with_help(format!("pin it for its first rollout (`pin \"{}\" tag=\"…\"` in the `deploy` block), or wait until the gates pass", image.alias.value)),
                            );
                            continue;
                        }
                    }
                    // 4. The registry.
                    StageSource::Registry { filters } => {
                        if input.offline {
                            match locked {
                                Some(l) => {
                                    decision = Some(Decision::new(
                                        l.tag.clone(),
                                        l.digest.clone(),
                                        l.resolved_digest.clone(),
                                        Source::Lock(l.source.clone()),
                                    ));
                                }
                                None => {
                                    out.diags.push(
                                        Diagnostic::error(
                                            Code::NoTagSource,
                                            image.repository.loc,
                                            format!("{what}: `--offline` replays keelson.lock, which has no entry for it"),
                                        )
                                        .with_secondary(d.stage.loc, "deployed here")
                                        .with_help("compile once without `--offline`, or pin the image"),
                                    );
                                    continue;
                                }
                            }
                        } else {
                            let repo = &image.repository.value.0;
                            // Every such image has a snapshot entry or was asked
                            // of its registry: none means that failed (reported).
                            let Some(known) = input.tags.for_image(app_id, ii, image) else {
                                continue;
                            };
                            let (source, origin) = match &known {
                                TagSource::Snapshot { file, .. } => {
                                    (Source::Snapshot(file.to_string()), format!("in `{file}`"))
                                }
                                TagSource::Registry { origin, .. } => (
                                    Source::Registry(origin.to_string()),
                                    format!("from {origin}"),
                                ),
                            };
                            let ignore: Vec<String> =
                                image.ignore_tags.iter().map(|p| p.value.clone()).collect();
                            let rules = Rules::of(image, &ignore, empty_constraint_checks);
                            let mut selection = strategy::select(&rules, known.tags());
                            let mut trace = PolicyTrace::default();
                            let mut seen = Vec::new();
                            let mut failed = false;
                            for f in image.filters.iter().chain(filters) {
                                if seen.contains(&f.value) || selection.candidates.is_empty() {
                                    continue;
                                }
                                seen.push(f.value);
                                match call.filter(f.value, &selection.candidates) {
                                    Ok((denied, log)) => {
                                        trace.log.extend(log);
                                        let name = &estate.policy(f.value).name.value;
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
                                        out.diags.push(call.failure(f, d, e));
                                        failed = true;
                                        break;
                                    }
                                }
                            }
                            if failed {
                                continue;
                            }
                            selection.chosen = selection.candidates.first().cloned();
                            match &selection.chosen {
                                Some(TagInfo { name, digest, .. }) => {
                                    let mut dec = Decision::new(
                                        Some(name.clone()),
                                        // Only the digest strategy pins by digest.
                                        digest.clone().filter(|_| {
                                            image.strategy.value == crate::model::Strategy::Digest
                                        }),
                                        digest.clone(),
                                        source,
                                    );
                                    dec.selection = Some(selection.clone());
                                    dec.trace = trace;
                                    decision = Some(dec);
                                }
                                None => {
                                    out.diags.push(
                                        Diagnostic::error(
                                            Code::NoMatchingTag,
                                            image.alias.loc,
                                            format!(
                                                "no tag of `{repo}` matches {what} ({} tags {origin}, strategy `{}`)",
                                                known.tags().len(),
                                                image.strategy.value.name()
                                            ),
                                        )
                                        .with_secondary(d.stage.loc, "deployed here")
                                        .with_help(no_match_help(&selection)),
                                    );
                                    continue;
                                }
                            }
                        }
                    }
                }
            }
            let Some(mut decision) = decision else {
                continue;
            };
            // 2. Never move a stage that Image Updater commits to backwards
            // from what it wrote into the tree.
            if stage.write_back.value.commits()
                && let Some(wb) = input.observed.written_back.get(&key)
            {
                let known = input.tags.for_image(app_id, ii, image);
                // Argo CD applies `.argocd-source-<app>.yaml` over the
                // overlay, so what it says runs, whatever keelson writes.
                let from_source_file = wb
                    .file
                    .rsplit('/')
                    .next()
                    .is_some_and(|f| f.starts_with(".argocd-source"));
                let keep = match &decision {
                    d if d.tag == wb.tag && d.digest == wb.digest => false,
                    _ if from_source_file => true,
                    Decision {
                        source: Source::Snapshot(_) | Source::Registry(_),
                        selection: Some(sel),
                        ..
                    } => match (&sel.chosen, known) {
                        (Some(chosen), Some(known)) => !strategy::is_newer(
                            image.strategy.value,
                            chosen,
                            wb.tag.as_deref(),
                            wb.digest.as_deref(),
                            known.tags(),
                        ),
                        _ => true,
                    },
                    Decision {
                        source: Source::Pin,
                        ..
                    } => false,
                    _ => true,
                };
                if keep {
                    let trace = std::mem::take(&mut decision.trace);
                    decision = Decision::new(
                        wb.tag.clone(),
                        wb.digest.clone(),
                        wb.digest.clone(),
                        Source::WriteBack(wb.file.clone()),
                    );
                    decision.trace = trace;
                }
            }
            // Since when, and what ran before.
            match &current {
                Some(c)
                    if same_image(
                        c.locked,
                        &decision.tag,
                        &decision.digest,
                        &decision.resolved_digest,
                    ) =>
                {
                    decision.since = c.running.since.clone();
                    decision.history = c.locked.history.clone();
                }
                Some(c) => {
                    decision.since = now.clone();
                    let mut history = vec![Past {
                        tag: c.running.tag.clone(),
                        digest: c.running.digest.clone(),
                        since: c.running.since.clone(),
                        until: now.clone(),
                    }];
                    history.extend(c.locked.history.iter().cloned());
                    history.truncate(abi::HISTORY);
                    decision.history = history;
                }
                None => decision.since = now.clone(),
            }
            out.images.insert(key, decision);
        }
    }
    out
}

/// Whether a decision names the image the lock recorded: the same tag and
/// pinned digest, and the same resolved digest where both are known (a
/// re-pushed tag is a new image).
fn same_image(
    l: &LockedImage,
    tag: &Option<String>,
    digest: &Option<String>,
    resolved: &Option<String>,
) -> bool {
    l.tag == *tag
        && l.digest == *digest
        && match (&l.resolved_digest, resolved) {
            (Some(a), Some(b)) => a == b,
            _ => true,
        }
}

impl Decision {
    fn new(
        tag: Option<String>,
        digest: Option<String>,
        resolved_digest: Option<String>,
        source: Source,
    ) -> Decision {
        Decision {
            tag,
            digest,
            source,
            selection: None,
            resolved_digest,
            since: String::new(),
            history: Vec::new(),
            trace: PolicyTrace::default(),
        }
    }
}

/// One image of one app stage, as policies see it.
struct Call<'a> {
    input: &'a Inputs<'a>,
    app: &'a crate::model::App,
    stage: &'a crate::model::Stage,
    image: &'a crate::model::Image,
    now: &'a str,
    current: Option<&'a Running>,
    history: &'a [Past],
}

type Log = Vec<(String, String)>;

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

    fn run(&self, id: PolicyId, entry: &str, input: &[u8]) -> Result<(String, Log), Failure> {
        let policy = self.input.estate.policy(id);
        // A compile stops before `select` when a policy fails to load.
        let Some((host, module)) = self.input.policies.get(id) else {
            return Err(Failure::Broken("its module was not loaded".into()));
        };
        let log_of = |lines: Vec<String>| -> Log {
            lines
                .into_iter()
                .map(|l| (policy.name.value.clone(), l))
                .collect()
        };
        match host.call(module, entry, input) {
            Ok(called) => Ok((called.output, log_of(called.log))),
            Err(e) => Err(Failure::Broken(e.to_string())),
        }
    }

    /// Runs a filter over the candidates: the denied tags, with reasons.
    fn filter(
        &self,
        id: PolicyId,
        candidates: &[TagInfo],
    ) -> Result<(BTreeMap<String, String>, Log), Failure> {
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
    fn promote(
        &self,
        id: PolicyId,
        from: StageId,
        up: &Decision,
    ) -> Result<(GateVerdict, Log), Failure> {
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

    fn failure(
        &self,
        at: &Spanned<PolicyId>,
        d: &crate::model::Deployment,
        why: Failure,
    ) -> Diagnostic {
        let policy = self.input.estate.policy(at.value);
        let label = crate::policy::label(&policy.source.value);
        let (why, help) = match why {
            Failure::Reported(msg) => (
                format!("it reported an error: {msg}"),
                "fix the policy's `params` (its documentation lists them)".to_string(),
            ),
            Failure::Broken(why) => (
                why,
                format!(
                    "fix the module or ask its author; `keelson explain` shows the call, and `keelson policy test {label} --input FILE` repeats it"
                ),
            ),
        };
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

impl Decisions {
    /// The lock entries: one per decided image, sorted by app, stage, alias.
    pub fn lock_entries(&self, estate: &Estate) -> Vec<LockedImage> {
        let mut out: Vec<LockedImage> = self
            .images
            .iter()
            .map(|(&(app, stage, ii), d)| {
                let app = estate.app(app);
                let image = &app.images[ii];
                LockedImage {
                    app: app.name.value.clone(),
                    stage: estate.stage(stage).name.value.clone(),
                    image: image.alias.value.clone(),
                    repository: image.repository.value.0.clone(),
                    tag: d.tag.clone(),
                    digest: d.digest.clone(),
                    resolved_digest: d.resolved_digest.clone(),
                    source: match &d.source {
                        Source::Pin => "pin".into(),
                        Source::Snapshot(f) => format!("snapshot:{f}"),
                        Source::Registry(r) => format!("registry:{r}"),
                        Source::Lock(recorded) => recorded.clone(),
                        Source::WriteBack(f) => format!("write-back:{f}"),
                        Source::Promotion(s) => {
                            format!("promotion:{}", estate.stage(*s).name.value)
                        }
                        Source::Held { previous, .. } => previous.clone(),
                    },
                    since: Some(d.since.clone()),
                    history: d.history.clone(),
                }
            })
            .collect();
        out.sort_by(|a, b| a.key().cmp(&b.key()));
        out
    }
}
