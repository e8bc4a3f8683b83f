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

pub mod strategy;

use std::collections::BTreeMap;

use crate::diagnostic::{Code, Diagnostic, Diagnostics};
use crate::discover::{Observed, TagData, TagSource};
use crate::graph::EstateGraph;
use crate::lock::LockedImage;
use crate::model::{AppId, Estate, StageId, StageSource};
use crate::semver::Version;
use strategy::{Rules, Selection, TagInfo};

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
}

/// The image one deployment runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub tag: Option<String>,
    pub digest: Option<String>,
    pub source: Source,
    /// The strategy's trace, when a strategy chose.
    pub selection: Option<Selection>,
    /// The digest the tag pointed at when keelson resolved it, when known
    /// (recorded in the lock; the tree pins `digest` only).
    pub resolved_digest: Option<String>,
}

/// Key: (app, stage, image index in the app).
pub type DecisionKey = (AppId, StageId, usize);

#[derive(Debug, Clone, Default)]
pub struct Decisions {
    pub images: BTreeMap<DecisionKey, Decision>,
}

pub struct Inputs<'a> {
    pub estate: &'a Estate,
    pub graph: &'a EstateGraph,
    pub tags: &'a TagData,
    pub observed: &'a Observed,
    pub offline: bool,
}

/// Whether the targeted Image Updater (v1.3.0+) treats a missing semver
/// constraint as `*`, which excludes pre-releases.
pub fn empty_constraint_checks(estate: &Estate) -> bool {
    estate
        .image_updater
        .version
        .value
        .compare(&Version::parse("1.3.0").expect("static"))
        != std::cmp::Ordering::Less
}

pub fn decide(input: &Inputs<'_>, diags: &mut Diagnostics) -> Decisions {
    let estate = input.estate;
    let mut out = Decisions::default();
    let empty_constraint_checks = empty_constraint_checks(estate);
    for &stage_id in &input.graph.stage_order {
        let stage = estate.stage(stage_id);
        for (ai, app) in estate.apps.iter().enumerate() {
            let app_id = AppId(ai as u32);
            let Some(d) = app.deployments.iter().find(|d| d.stage.value == stage_id) else {
                continue;
            };
            for (ii, image) in app.images.iter().enumerate() {
                let key = (app_id, stage_id, ii);
                let locked =
                    input.observed.lock.as_ref().and_then(|l| {
                        l.image(&app.name.value, &stage.name.value, &image.alias.value)
                    });
                let lock_decision = |l: &LockedImage| Decision {
                    tag: l.tag.clone(),
                    digest: l.digest.clone(),
                    source: Source::Lock(l.source.clone()),
                    selection: None,
                    resolved_digest: l.resolved_digest.clone(),
                };
                let what = format!(
                    "image `{}` of app `{}` in stage `{}`",
                    image.alias.value, app.name.value, stage.name.value
                );
                // 1. A pin overrides everything.
                if let Some(pin) = d.pins.iter().find(|p| p.image == ii) {
                    out.images.insert(
                        key,
                        Decision {
                            tag: pin.tag.clone(),
                            digest: pin.digest.clone(),
                            source: Source::Pin,
                            selection: None,
                            resolved_digest: pin.digest.clone(),
                        },
                    );
                    continue;
                }
                match &stage.source {
                    // 3. Promotion.
                    StageSource::Promotion { from, gates } => {
                        if !gates.is_empty() {
                            let names: Vec<&str> = gates
                                .iter()
                                .map(|g| estate.policy(g.value).name.value.as_str())
                                .collect();
                            diags.push(
                                Diagnostic::error(
                                    Code::PolicyUnavailable,
                                    d.stage.loc,
                                    format!("{what} is promoted through gate policies ({}), and this keelson cannot run policies yet", names.join(", ")),
                                )
                                .with_secondary(gates[0].loc, "gates declared here")
                                .with_help(format!("pin the image for this stage (`pin \"{}\" tag=\"…\"` in the `deploy` block) until policies are supported", image.alias.value)),
                            );
                            continue;
                        }
                        match out.images.get(&(app_id, from.value, ii)) {
                            Some(up) => {
                                let decision = Decision {
                                    tag: up.tag.clone(),
                                    digest: up.digest.clone(),
                                    source: Source::Promotion(from.value),
                                    selection: None,
                                    resolved_digest: up.resolved_digest.clone(),
                                };
                                out.images.insert(key, decision);
                            }
                            // The upstream stage failed and was reported.
                            None => {}
                        }
                    }
                    // 4. The registry.
                    StageSource::Registry { filters } => {
                        let mut policies: Vec<&str> = image
                            .filters
                            .iter()
                            .chain(filters.iter())
                            .map(|f| estate.policy(f.value).name.value.as_str())
                            .collect();
                        policies.dedup();
                        if !policies.is_empty() {
                            diags.push(
                                Diagnostic::error(
                                    Code::PolicyUnavailable,
                                    image.alias.loc,
                                    format!("{what} is filtered by policies ({}), and this keelson cannot run policies yet", policies.join(", ")),
                                )
                                .with_secondary(d.stage.loc, "deployed here")
                                .with_help(format!("pin the image for this stage (`pin \"{}\" tag=\"…\"` in the `deploy` block) until policies are supported", image.alias.value)),
                            );
                            continue;
                        }
                        if input.offline {
                            match locked {
                                Some(l) => {
                                    out.images.insert(key, lock_decision(l));
                                }
                                None => diags.push(
                                    Diagnostic::error(
                                        Code::NoTagSource,
                                        image.repository.loc,
                                        format!("{what}: `--offline` replays keelson.lock, which has no entry for it"),
                                    )
                                    .with_secondary(d.stage.loc, "deployed here")
                                    .with_help("compile once without `--offline`, or pin the image"),
                                ),
                            }
                            continue;
                        }
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
                        let selection = strategy::select(&rules, known.tags());
                        match &selection.chosen {
                            Some(TagInfo { name, digest, .. }) => {
                                let decision = Decision {
                                    tag: Some(name.clone()),
                                    // Only the digest strategy pins by digest.
                                    digest: digest.clone().filter(|_| {
                                        image.strategy.value == crate::model::Strategy::Digest
                                    }),
                                    source,
                                    selection: Some(selection.clone()),
                                    resolved_digest: digest.clone(),
                                };
                                out.images.insert(key, decision);
                            }
                            None => diags.push(
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
                            ),
                        }
                    }
                }
                // 2. Never move a stage that Image Updater commits to backwards
                // from what it wrote into the tree.
                if stage.write_back.value.commits() {
                    if let Some(wb) = input.observed.written_back.get(&key) {
                        let known = input.tags.for_image(app_id, ii, image);
                        // Argo CD applies `.argocd-source-<app>.yaml` over the
                        // overlay, so what it says runs, whatever keelson writes.
                        let from_source_file = wb
                            .file
                            .rsplit('/')
                            .next()
                            .is_some_and(|f| f.starts_with(".argocd-source"));
                        let keep = match out.images.get(&key) {
                            Some(d) if d.tag == wb.tag && d.digest == wb.digest => false,
                            _ if from_source_file => true,
                            Some(Decision {
                                source: Source::Snapshot(_) | Source::Registry(_),
                                selection: Some(sel),
                                ..
                            }) => match (&sel.chosen, known) {
                                (Some(chosen), Some(known)) => !strategy::is_newer(
                                    image.strategy.value,
                                    chosen,
                                    wb.tag.as_deref(),
                                    wb.digest.as_deref(),
                                    known.tags(),
                                ),
                                _ => true,
                            },
                            Some(Decision {
                                source: Source::Pin,
                                ..
                            }) => false,
                            _ => true,
                        };
                        if keep {
                            out.images.insert(
                                key,
                                Decision {
                                    tag: wb.tag.clone(),
                                    digest: wb.digest.clone(),
                                    source: Source::WriteBack(wb.file.clone()),
                                    selection: None,
                                    resolved_digest: wb.digest.clone(),
                                },
                            );
                        }
                    }
                }
            }
        }
    }
    out
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
                    },
                }
            })
            .collect();
        out.sort_by(|a, b| a.key().cmp(&b.key()));
        out
    }
}
