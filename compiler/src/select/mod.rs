//! Stage 5: decide the image every app stage runs.
//!
//! In order of precedence, for each image of each deployment (each rule
//! with the function that implements it):
//! 1. a `pin` in the estate — `pinned`. It beats rules 3 and 4, and rule 2
//!    unless the write-back is an `.argocd-source-<app>.yaml` file, which
//!    Argo CD applies over whatever keelson writes;
//! 2. for a stage Image Updater updates by git: the image it wrote back into
//!    the tree, unless the strategy's own choice is strictly newer, so
//!    keelson never moves such a stage backwards —
//!    `write_back::keep_write_back`, run on what the other rules decided;
//! 3. for a stage that promotes: the upstream stage's image once its gates
//!    pass — `promote::promote`. `run_gates` asks the gates; while they
//!    hold, `hold_or_wait` keeps what the stage ran, or, for a stage that
//!    never ran the app, makes it wait for its first rollout
//!    (`waiting::hold_waiting` then leaves it without an Application);
//! 4. for a stage that takes images from the registry: the strategy's
//!    choice over the tag data after the image filters and the filter
//!    policies, or with `--offline` the lock — `registry::from_registry`
//!    (`choose_from_tags`, `apply_filter_policies`, `replay_lock`).
//!
//! Shared steps: `decide_app` walks one app's stages upstream first, so a
//! promotion sees its source's answer; `decide_image` tries rules 1, 3 and 4
//! in order; `since_and_history` dates each decision against the lock and
//! extends its history; `call.rs` runs the filter and gate policies, whose
//! verdicts and logs go in the decision's `PolicyTrace`.
//!
//! Pure: tag data and the previous tree come from `discover`.

mod call;
mod promote;
mod registry;
mod waiting;
mod write_back;

use std::collections::BTreeMap;

use rayon::prelude::*;

use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::discover::{Observed, TagData};
use crate::graph::EstateGraph;
use crate::lock::LockedImage;
use crate::model::{App, AppId, Deployment, Estate, Image, Stage, StageId, StageSource};
use crate::policy::abi::{self, Past, Running};
use crate::policy::{Budget, Policies};
use crate::strategy::{self, Selection};
use call::Call;
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
pub(crate) type DecisionKey = (AppId, StageId, usize);

#[derive(Debug, Clone, Default)]
pub struct Decisions {
    pub images: BTreeMap<DecisionKey, Decision>,
    /// Images of app stages that have never run the app and whose gates hold:
    /// the stage waits, and gets no Application until a gate lets it in.
    pub waiting: BTreeMap<DecisionKey, PolicyTrace>,
}

impl Decisions {
    /// The app stages that wait for their first rollout.
    pub(crate) fn waiting_stages(&self) -> std::collections::BTreeSet<(AppId, StageId)> {
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

/// Decides every (app, stage, image) of the estate from the tag data, the
/// previous output and the policies in `input`. Does no I/O and never
/// panics on input: a failure is a diagnostic in `diags`, and the image
/// gets no decision. Deterministic: apps are independent (promotion stays
/// within an app), so they are decided in parallel and merged — decisions
/// and diagnostics alike — in app order; the thread count never shows. The
/// apps' policy calls share one `policy::Budget`, which reports a module
/// that failed once, for the lowest app it failed for, whatever the thread
/// count.
pub fn decide(input: &Inputs<'_>, diags: &mut Diagnostics) -> Decisions {
    // What this compile may spend on each policy module; a module that
    // fails is reported once, from here (see `policy::Budget`).
    let budget = input.policies.budget();
    let apps: Vec<AppDecisions> = (0..input.estate.apps.len())
        .into_par_iter()
        .map(|ai| decide_app(input, &budget, AppId(ai as u32)))
        .collect();
    let mut out = Decisions::default();
    for app in apps {
        out.images.extend(app.images);
        out.waiting.extend(app.waiting);
        for d in app.diags {
            diags.push(d);
        }
    }
    for d in budget.into_diagnostics(input.estate) {
        diags.push(d);
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

impl<'a> Current<'a> {
    fn of(locked: &'a LockedImage, now: &str) -> Current<'a> {
        Current {
            locked,
            running: Running {
                tag: locked.tag.clone(),
                digest: locked
                    .digest
                    .clone()
                    .or_else(|| locked.resolved_digest.clone()),
                // A lock from before `since` was recorded: count from now.
                since: locked.since.clone().unwrap_or_else(|| now.to_string()),
            },
        }
    }
}

/// One image of one app stage being decided: what every rule reads.
struct Slot<'a> {
    input: &'a Inputs<'a>,
    budget: &'a Budget<'a>,
    key: DecisionKey,
    app: &'a App,
    stage: &'a Stage,
    deployment: &'a Deployment,
    image: &'a Image,
    /// `input.now` as policies and the lock write it.
    now: &'a str,
    /// What the lock says the stage runs, if it ran this image before.
    current: Option<&'a Current<'a>>,
    /// Whether keelson ever deployed this app to this stage.
    stage_known: bool,
    /// `strategy::empty_constraint_checks`, worked out once per app.
    empty_constraint_checks: bool,
    /// "image `x` of app `y` in stage `z`", for diagnostics.
    what: String,
}

impl Slot<'_> {
    fn index(&self) -> usize {
        self.key.2
    }

    fn locked(&self) -> Option<&LockedImage> {
        self.current.map(|c| c.locked)
    }

    /// The policy calls for this image.
    fn call(&self) -> Call<'_> {
        Call {
            input: self.input,
            budget: self.budget,
            app_id: self.key.0,
            app: self.app,
            stage: self.stage,
            image: self.image,
            now: self.now,
            current: self.current.map(|c| &c.running),
            history: self.current.map_or(&[], |c| &c.locked.history),
        }
    }
}

/// Decides every image of one app, stages upstream first (a promotion reads
/// its source's decision from what is decided so far).
fn decide_app(input: &Inputs<'_>, budget: &Budget<'_>, app_id: AppId) -> AppDecisions {
    let estate = input.estate;
    let app = estate.app(app_id);
    let now = abi::time(input.now);
    let empty_constraint_checks = strategy::empty_constraint_checks(estate);
    let lock = input.observed.lock.as_ref();
    let mut out = AppDecisions::default();
    for &stage_id in &input.graph.stage_order {
        let stage = estate.stage(stage_id);
        let Some(deployment) = app.deployments.iter().find(|d| d.stage.value == stage_id) else {
            continue;
        };
        let stage_known = lock.is_some_and(|l| l.has_stage(&app.name.value, &stage.name.value));
        for (ii, image) in app.images.iter().enumerate() {
            let current = lock
                .and_then(|l| l.image(&app.name.value, &stage.name.value, &image.alias.value))
                .map(|l| Current::of(l, &now));
            let slot = Slot {
                input,
                budget,
                key: (app_id, stage_id, ii),
                app,
                stage,
                deployment,
                image,
                now: &now,
                current: current.as_ref(),
                stage_known,
                empty_constraint_checks,
                what: format!(
                    "image `{}` of app `{}` in stage `{}`",
                    image.alias.value, app.name.value, stage.name.value
                ),
            };
            let Some(decision) = decide_image(&slot, &mut out) else {
                continue;
            };
            let mut decision = write_back::keep_write_back(&slot, decision);
            since_and_history(&mut decision, slot.current, &now);
            out.images.insert(slot.key, decision);
        }
    }
    out
}

/// Rules 1, 3 and 4 in precedence order; rule 2 then looks at the answer.
/// `None` when the image gets no decision: the reason is reported, or the
/// stage waits for its first rollout.
fn decide_image(slot: &Slot<'_>, out: &mut AppDecisions) -> Option<Decision> {
    if let Some(pin) = pinned(slot) {
        return Some(pin);
    }
    match &slot.stage.source {
        StageSource::Promotion { from, gates } => promote::promote(slot, from.value, gates, out),
        StageSource::Registry { filters } => registry::from_registry(slot, filters, &mut out.diags),
    }
}

/// Rule 1: a `pin` in the deployment.
fn pinned(slot: &Slot<'_>) -> Option<Decision> {
    let pin = slot
        .deployment
        .pins
        .iter()
        .find(|p| p.image == slot.index())?;
    Some(Decision::new(
        pin.tag.clone(),
        pin.digest.clone(),
        pin.digest.clone(),
        Source::Pin,
    ))
}

/// Since when the stage runs the decided image, and what it ran before: the
/// lock's record when the image is the same, else a new entry on top of the
/// history (at most `abi::HISTORY` long).
fn since_and_history(decision: &mut Decision, current: Option<&Current<'_>>, now: &str) {
    match current {
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
            decision.since = now.to_string();
            let mut history = vec![Past {
                tag: c.running.tag.clone(),
                digest: c.running.digest.clone(),
                since: c.running.since.clone(),
                until: now.to_string(),
            }];
            history.extend(c.locked.history.iter().cloned());
            history.truncate(abi::HISTORY);
            decision.history = history;
        }
        None => decision.since = now.to_string(),
    }
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

impl Decisions {
    /// The lock entries: one per decided image, sorted by app, stage, alias.
    pub(crate) fn lock_entries(&self, estate: &Estate) -> Vec<LockedImage> {
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
