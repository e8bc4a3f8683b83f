//! `keelson tags select`: one image's tag selection, outside any estate —
//! keelson's counterpart of `argocd-image-updater test`. The tags come from a
//! JSON file or a live registry; the rules from the command line; the answer
//! is the same `select` that `compile` runs.

use std::path::Path;

use serde::Deserialize;

use crate::discover::client::{Client, RegistryError};
use crate::discover::live::{self, Platform, Query};
use crate::discover::{self, RegistryOptions, cache::Cache, credentials};
use crate::model::{AllowProblem, AllowTags, Strategy};
use crate::semver::Constraint;
use crate::strategy::{self, Rules, Selection, TagInfo};

/// The rules as given on the command line, checked.
pub struct Request {
    pub strategy: Strategy,
    /// For `semver` the constraint (empty: `*`, as Image Updater v1.3+); for
    /// `digest` the tracked tag.
    pub constraint: Option<String>,
    pub allow: Option<String>,
    pub ignore: Vec<String>,
    pub platforms: Vec<String>,
}

/// Rules ready to run, and warnings about values Image Updater reads as
/// matching nothing (keelson matches nothing too, and says so).
pub struct Checked {
    strategy: Strategy,
    constraint: Option<Constraint>,
    tracked: Option<String>,
    allow: Option<AllowTags>,
    ignore: Vec<String>,
    pub platforms: Vec<Platform>,
    pub warnings: Vec<String>,
}

impl Checked {
    pub fn rules(&self) -> Rules<'_> {
        Rules {
            strategy: self.strategy,
            constraint: self.constraint.as_ref(),
            tracked: self.tracked.as_deref(),
            allow: self.allow.as_ref(),
            ignore: &self.ignore,
        }
    }
}

/// Checks the request. An error is what Image Updater refuses too (an
/// invalid constraint, `digest` without a tag) or a platform it cannot parse.
pub fn check(req: &Request) -> Result<Checked, String> {
    let mut warnings = Vec::new();
    let (constraint, tracked) = match req.strategy {
        Strategy::Semver => {
            // Only an empty constraint is `*`; upstream parses anything
            // else as written, so blanks are an invalid constraint.
            let text = req.constraint.as_deref().unwrap_or("");
            let text = if text.is_empty() { "*" } else { text };
            let c = Constraint::parse(text).map_err(|e| {
                format!("`{text}` is not a semver constraint ({e}); Image Updater would not update this image")
            })?;
            (Some(c), None)
        }
        // Upstream compares the tracked tag byte for byte.
        Strategy::Digest => match req.constraint.as_deref() {
            Some(t) if !t.is_empty() => (None, Some(t.to_string())),
            _ => {
                return Err(
                    "the `digest` strategy needs `--constraint TAG`, the tag whose digest to track"
                        .into(),
                );
            }
        },
        Strategy::NewestBuild | Strategy::Alphabetical => {
            if req.constraint.is_some() {
                warnings.push(format!(
                    "`--constraint` has no effect with `{}`; Image Updater ignores it too",
                    req.strategy.name()
                ));
            }
            (None, None)
        }
    };
    let allow = req.allow.as_deref().map(|a| {
        let (allow, problem) = AllowTags::parse(a);
        match problem {
            Some(AllowProblem::BadRegex { expr, why }) => warnings.push(format!(
                "the regular expression `{expr}` does not compile: {why}; no tag is allowed"
            )),
            Some(AllowProblem::NoFunction) => warnings.push(format!(
                "`{a}` has no `regexp:` prefix, so Image Updater reads it as a filter that allows no tag; no tag is allowed"
            )),
            None => {}
        }
        allow
    });
    for p in &req.ignore {
        if let Err(why) = crate::rules::go_glob(p) {
            warnings.push(format!(
                "`--ignore {p}` is not a valid glob ({why}); Image Updater ignores no tag with it"
            ));
        }
    }
    let mut platforms = Vec::new();
    for p in &req.platforms {
        for one in p.split(',') {
            platforms.push(Platform::parse(one).ok_or_else(|| {
                format!("`{one}` is not a platform; write `os/arch` or `os/arch/variant`, e.g. `linux/arm64`")
            })?);
        }
    }
    if platforms.is_empty() {
        platforms = Platform::default_wanted();
    }
    Ok(Checked {
        strategy: req.strategy,
        constraint,
        tracked,
        allow,
        ignore: req.ignore.clone(),
        platforms,
        warnings,
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTag {
    name: String,
    created: Option<String>,
    digest: Option<String>,
}

/// Reads a tag file: a JSON array of `{"name", "created", "digest"}`.
pub(crate) fn read_file(path: &Path) -> Result<Vec<TagInfo>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read `{}`: {e}", path.display()))?;
    let raw: Vec<RawTag> = serde_json::from_str(&text).map_err(|e| {
        format!(
            "`{}` is not a tag list: {e}; write a JSON array of {{\"name\": \"1.0.0\", \"created\": \"2026-01-01T00:00:00Z\" or null, \"digest\": \"sha256:…\" or null}}",
            path.display()
        )
    })?;
    raw.into_iter()
        .map(|t| {
            let created = match t.created {
                None => None,
                Some(c) => Some(c.parse::<jiff::Timestamp>().map_err(|_| {
                    format!("tag `{}`: `created` is not an RFC 3339 time: `{c}`", t.name)
                })?),
            };
            if let Some(d) = &t.digest {
                crate::rules::digest(d).map_err(|_| {
                    format!(
                        "tag `{}`: `digest` is not `sha256:` and 64 hex digits: `{d}`",
                        t.name
                    )
                })?;
            }
            Ok(TagInfo {
                name: t.name,
                created,
                digest: t.digest,
                unusable: None,
            })
        })
        .collect()
}

/// Asks a live registry for `image` (`host/path`), with credentials from the
/// environment (`docker login`'s config, or `credentials` as `env:VAR`).
pub(crate) fn read_registry(
    image: &str,
    api_url: Option<&str>,
    credentials: Option<&crate::model::CredentialRef>,
    checked: &Checked,
    options: &RegistryOptions,
) -> Result<(Vec<TagInfo>, u64), RegistryError> {
    let mut repo = discover::repo_ref_of(&crate::model::ImageRepo(image.to_string()), None);
    if let Some(url) = api_url {
        repo.api = url.trim_end_matches('/').to_string();
    }
    let mut creds = std::collections::HashMap::new();
    if let Some(c) = credentials::lookup(repo.host(), credentials) {
        creds.insert(repo.host().to_string(), c);
    }
    let client = Client::new(options.client.clone(), creds);
    let cache = Cache::new(options.cache_dir.clone());
    let query = Query {
        repo,
        rules: checked.rules(),
        platforms: checked.platforms.clone(),
    };
    let no_progress = |_: usize, _: usize| {};
    let mut answers = live::fetch(
        &client,
        &cache,
        std::slice::from_ref(&query),
        1,
        &no_progress,
    );
    let tags = answers.pop().expect("one answer per query")?;
    Ok((tags, client.counts.total()))
}

pub fn select(checked: &Checked, tags: &[TagInfo]) -> Selection {
    strategy::select(&checked.rules(), tags)
}

/// The answer as one JSON object: `selected` (a tag or null), its `digest`,
/// `candidates` (every tag that passed the filters, best first) and `dropped`
/// (every other tag, in input order, with why).
pub(crate) fn to_json(checked: &Checked, s: &Selection) -> String {
    let tag = |t: &TagInfo| {
        serde_json::json!({
            "name": t.name,
            "created": t.created.map(|c| c.to_string()),
            "digest": t.digest,
        })
    };
    let value = serde_json::json!({
        "strategy": checked.strategy.name(),
        "selected": s.chosen.as_ref().map(|c| c.name.clone()),
        "digest": s.chosen.as_ref().and_then(|c| c.digest.clone()),
        "candidates": s.candidates.iter().map(tag).collect::<Vec<_>>(),
        "dropped": s.dropped.iter().map(|(name, why)| serde_json::json!({"name": name, "reason": why.reason()})).collect::<Vec<_>>(),
    });
    let mut out = serde_json::to_string_pretty(&value).expect("JSON values serialise");
    out.push('\n');
    out
}

/// The answer for people: the pick, then the ranking, then the drops.
pub(crate) fn to_text(checked: &Checked, s: &Selection) -> String {
    let mut out = String::new();
    match &s.chosen {
        Some(c) => {
            out.push_str(&format!("selected: {}", c.name));
            if let Some(d) = &c.digest {
                out.push_str(&format!(" ({d})"));
            }
            out.push('\n');
        }
        None => out.push_str("selected: none — no tag passes the rules\n"),
    }
    out.push_str(&format!(
        "strategy: {}; {} candidate{}, {} dropped\n",
        checked.strategy.name(),
        s.candidates.len(),
        if s.candidates.len() == 1 { "" } else { "s" },
        s.dropped.len()
    ));
    if !s.candidates.is_empty() {
        out.push_str("candidates, best first:\n");
        for c in &s.candidates {
            out.push_str(&format!("  {}", c.name));
            if let Some(t) = c.created {
                out.push_str(&format!("  created {t}"));
            }
            out.push('\n');
        }
    }
    if !s.dropped.is_empty() {
        out.push_str("dropped:\n");
        let width = s
            .dropped
            .iter()
            .map(|(n, _)| n.chars().count())
            .max()
            .unwrap_or(0);
        for (name, why) in &s.dropped {
            out.push_str(&format!("  {name:width$}  {}\n", why.reason()));
        }
    }
    out
}
