//! Image Updater's tag selection, as keelson must reproduce it: pick the
//! tag an image runs from candidate tags, the way Argo CD Image Updater v1
//! would (`GetNewestVersionFromTags` after `GetTags`):
//! filter (allow, ignore, tracked tag), then sort by the strategy and take the
//! last. Every dropped tag keeps its reason, for `explain` and `tags select`.
//!
//! Pure: the candidates come from `discover` (a registry, a snapshot, the lock).

use std::cmp::Ordering;

use crate::model::{AllowTags, Image, Strategy};
use crate::semver::{Constraint, Version};

/// One tag of a repository, with the metadata a strategy may need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagInfo {
    pub name: String,
    /// The image config's `created` time (newest-build).
    pub created: Option<jiff::Timestamp>,
    /// The manifest (or index) digest, `sha256:<hex>` (digest).
    pub digest: Option<String>,
    /// Why the tag cannot be used though it is listed (its manifest is for
    /// another platform, or unreadable); Image Updater skips such tags.
    pub unusable: Option<String>,
}

impl TagInfo {
    /// A tag known by name only.
    pub fn named(name: &str) -> TagInfo {
        TagInfo {
            name: name.to_string(),
            created: None,
            digest: None,
            unusable: None,
        }
    }
}

/// The filter settings of one image, as Image Updater reads them.
#[derive(Debug, Clone, Copy)]
pub struct Rules<'a> {
    pub strategy: Strategy,
    /// For `semver` the parsed constraint (`None`: no check at all, as Image
    /// Updater before v1.3.0 does for an empty constraint); for `digest` unused.
    pub constraint: Option<&'a Constraint>,
    /// For `digest`, the tracked tag.
    pub tracked: Option<&'a str>,
    pub allow: Option<&'a AllowTags>,
    pub ignore: &'a [String],
}

impl<'a> Rules<'a> {
    /// The rules of an estate image. `empty_constraint_checks` is whether the
    /// targeted Image Updater (v1.3.0+) treats a missing constraint as `*`.
    pub fn of(image: &'a Image, ignore: &'a [String], empty_constraint_checks: bool) -> Self {
        let written = image
            .constraint
            .as_ref()
            .is_some_and(|c| !c.value.trim().is_empty());
        Rules {
            strategy: image.strategy.value,
            constraint: if written || empty_constraint_checks {
                image.semver_constraint.as_ref()
            } else {
                None
            },
            tracked: image.constraint.as_ref().map(|c| c.value.as_str()),
            allow: image.allow_tags.as_ref().map(|a| &a.value),
            ignore,
        }
    }
}

/// Why a tag was not chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dropped {
    NotAllowed,
    Ignored {
        pattern: String,
    },
    NotTracked,
    NotSemver,
    OutsideConstraint,
    NoCreated,
    NoDigest,
    /// Listed, but its manifest is unusable here (the text says why).
    Unusable(String),
    /// Denied by a filter policy.
    Policy {
        policy: String,
        reason: String,
    },
}

impl Dropped {
    pub fn reason(&self) -> String {
        match self {
            Dropped::NotAllowed => "not allowed by allow-tags".into(),
            Dropped::Ignored { pattern } => format!("matches ignore-tags `{pattern}`"),
            Dropped::NotTracked => "not the tracked tag".into(),
            Dropped::NotSemver => "not a semantic version".into(),
            Dropped::OutsideConstraint => "outside the constraint".into(),
            Dropped::NoCreated => "no creation time".into(),
            Dropped::NoDigest => "no digest".into(),
            Dropped::Unusable(why) => why.clone(),
            Dropped::Policy { policy, reason } => format!("denied by policy `{policy}`: {reason}"),
        }
    }
}

/// The outcome of selection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    pub chosen: Option<TagInfo>,
    /// Every tag that passed every filter, best first: `chosen` is the first.
    pub candidates: Vec<TagInfo>,
    /// Every tag filtered out, in input order, with why.
    pub dropped: Vec<(String, Dropped)>,
}

pub fn select(rules: &Rules<'_>, tags: &[TagInfo]) -> Selection {
    // Upstream keeps tags in a map keyed by name: duplicates collapse (last wins).
    let mut unique: Vec<&TagInfo> = Vec::with_capacity(tags.len());
    let mut slots: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for t in tags {
        match slots.get(t.name.as_str()) {
            Some(&i) => unique[i] = t,
            None => {
                slots.insert(&t.name, unique.len());
                unique.push(t);
            }
        }
    }
    let mut dropped = Vec::new();
    let mut kept: Vec<&TagInfo> = Vec::new();
    for t in unique {
        match filter(rules, t) {
            Some(why) => dropped.push((t.name.clone(), why)),
            None => kept.push(t),
        }
    }
    let ranked: Vec<&TagInfo> = match rules.strategy {
        Strategy::Semver => {
            let mut versions: Vec<(Version, &TagInfo)> = Vec::new();
            for t in kept {
                match Version::parse(&t.name) {
                    Err(_) => dropped.push((t.name.clone(), Dropped::NotSemver)),
                    Ok(v) if rules.constraint.is_some_and(|c| !c.matches(&v)) => {
                        dropped.push((t.name.clone(), Dropped::OutsideConstraint))
                    }
                    Ok(v) => versions.push((v, t)),
                }
            }
            // Precedence, then the original strings byte-wise; the last wins.
            versions.sort_by(|(va, a), (vb, b)| {
                va.compare(vb)
                    .then_with(|| a.name.as_bytes().cmp(b.name.as_bytes()))
            });
            versions.into_iter().map(|(_, t)| t).collect()
        }
        Strategy::NewestBuild => {
            let mut dated: Vec<&TagInfo> = Vec::new();
            for t in kept {
                if t.created.is_some() {
                    dated.push(t);
                } else {
                    dropped.push((t.name.clone(), Dropped::NoCreated));
                }
            }
            dated.sort_by(|a, b| {
                a.created
                    .cmp(&b.created)
                    .then_with(|| a.name.as_bytes().cmp(b.name.as_bytes()))
            });
            dated
        }
        Strategy::Alphabetical => {
            kept.sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
            kept
        }
        Strategy::Digest => {
            let mut with_digest = Vec::new();
            for t in kept {
                if t.digest.is_some() {
                    with_digest.push(t);
                } else {
                    dropped.push((t.name.clone(), Dropped::NoDigest));
                }
            }
            with_digest
        }
    };
    // Sorted ascending, the last wins: best first is the reverse.
    let candidates: Vec<TagInfo> = ranked.into_iter().rev().cloned().collect();
    let order: std::collections::HashMap<&str, usize> = tags
        .iter()
        .enumerate()
        .map(|(i, t)| (t.name.as_str(), i))
        .collect();
    dropped.sort_by_key(|(name, _)| order.get(name.as_str()).copied());
    Selection {
        chosen: candidates.first().cloned(),
        candidates,
        dropped,
    }
}

/// Upstream's three filters, in its order: allow, ignore, tracked tag; then
/// whether the tag's metadata is usable (read only for tags that pass).
fn filter(rules: &Rules<'_>, t: &TagInfo) -> Option<Dropped> {
    filter_name(rules, &t.name).or_else(|| t.unusable.clone().map(Dropped::Unusable))
}

/// The filters that look at the name alone: what decides which tags a
/// registry is asked about.
pub(crate) fn filter_name(rules: &Rules<'_>, name: &str) -> Option<Dropped> {
    match rules.allow {
        // Go's `regexp.Match` is unanchored, as is `is_match`.
        Some(AllowTags::Regexp(re)) if !re.is_match(name) => return Some(Dropped::NotAllowed),
        Some(AllowTags::Nothing(_)) => return Some(Dropped::NotAllowed),
        _ => {}
    }
    if let Some(p) = rules.ignore.iter().find(|p| glob_match(p, name)) {
        return Some(Dropped::Ignored { pattern: p.clone() });
    }
    if rules.strategy == Strategy::Digest && rules.tracked != Some(name) {
        return Some(Dropped::NotTracked);
    }
    None
}

/// Go's `filepath.Match` on a whole tag. A malformed pattern matches nothing,
/// as upstream (lowering reports it).
pub(crate) fn glob_match(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    glob_at(&p, &n).unwrap_or(false)
}

fn glob_at(p: &[char], n: &[char]) -> Option<bool> {
    let Some((&first, rest)) = p.split_first() else {
        return Some(n.is_empty());
    };
    match first {
        '*' => {
            // `*` never matches the separator `/` (tags have none anyway).
            for i in 0..=n.len() {
                if i > 0 && n[i - 1] == '/' {
                    break;
                }
                if glob_at(rest, &n[i..])? {
                    return Some(true);
                }
            }
            Some(false)
        }
        '?' => match n.split_first() {
            Some((&c, nrest)) if c != '/' => glob_at(rest, nrest),
            _ => Some(false),
        },
        '[' => {
            let (matched, consumed) = class(rest, n.first().copied())?;
            match n.split_first() {
                Some((_, nrest)) if matched => glob_at(&rest[consumed..], nrest),
                _ => Some(false),
            }
        }
        '\\' => {
            let (&lit, rest) = rest.split_first()?;
            match n.split_first() {
                Some((&c, nrest)) if c == lit => glob_at(rest, nrest),
                _ => Some(false),
            }
        }
        lit => match n.split_first() {
            Some((&c, nrest)) if c == lit => glob_at(rest, nrest),
            _ => Some(false),
        },
    }
}

/// A `[...]` class after its `[`: whether `c` is in it, and how many pattern
/// characters it spans (through the `]`). `None` when malformed.
fn class(p: &[char], c: Option<char>) -> Option<(bool, usize)> {
    let mut i = 0;
    let negated = p.first() == Some(&'^');
    if negated {
        i += 1;
    }
    let mut matched = false;
    let mut first = true;
    loop {
        let &ch = p.get(i)?;
        if ch == ']' && !first {
            i += 1;
            break;
        }
        first = false;
        let lo = class_char(p, &mut i)?;
        let hi = if p.get(i) == Some(&'-') {
            i += 1;
            class_char(p, &mut i)?
        } else {
            lo
        };
        // Go checks no order: a backwards range such as `z-a` is valid and
        // contains nothing (so `[^z-a]` is any character).
        if c.is_some_and(|c| lo <= c && c <= hi) {
            matched = true;
        }
    }
    // Unlike `*` and `?`, a class may match the separator `/` in Go.
    Some((matched != negated && c.is_some(), i))
}

fn class_char(p: &[char], i: &mut usize) -> Option<char> {
    let c = *p.get(*i)?;
    match c {
        '-' | ']' => None,
        '\\' => {
            let e = *p.get(*i + 1)?;
            *i += 2;
            Some(e)
        }
        c => {
            *i += 1;
            Some(c)
        }
    }
}

/// Whether `chosen` is strictly newer, by the strategy, than the image
/// currently written (`tag`, `digest`). When that cannot be told (a tag that
/// is not a version, an unknown build time), the answer is no: keelson then
/// keeps what is running.
pub(crate) fn is_newer(
    strategy: Strategy,
    chosen: &TagInfo,
    tag: Option<&str>,
    digest: Option<&str>,
    known: &[TagInfo],
) -> bool {
    let Some(tag) = tag else {
        return false;
    };
    let current = known
        .iter()
        .find(|t| t.name == tag && (digest.is_none() || t.digest.as_deref() == digest));
    match strategy {
        Strategy::Semver => match (Version::parse(&chosen.name), Version::parse(tag)) {
            (Ok(a), Ok(b)) => {
                a.compare(&b)
                    .then_with(|| chosen.name.as_bytes().cmp(tag.as_bytes()))
                    == Ordering::Greater
            }
            _ => false,
        },
        Strategy::Alphabetical => chosen.name.as_bytes() > tag.as_bytes(),
        Strategy::NewestBuild | Strategy::Digest => {
            match (chosen.created, current.and_then(|c| c.created)) {
                (Some(a), Some(b)) => a > b,
                _ => false,
            }
        }
    }
}

/// Whether the targeted Image Updater (v1.3.0+) treats a missing semver
/// constraint as `*`, which excludes pre-releases.
pub(crate) fn empty_constraint_checks(estate: &crate::model::Estate) -> bool {
    estate
        .image_updater
        .version
        .value
        .compare(&Version::parse("1.3.0").expect("static"))
        != Ordering::Less
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(name: &str) -> TagInfo {
        TagInfo::named(name)
    }

    fn rules(strategy: Strategy, constraint: Option<&Constraint>) -> Rules<'_> {
        Rules {
            strategy,
            constraint,
            tracked: None,
            allow: None,
            ignore: &[],
        }
    }

    #[test]
    fn semver_ties_break_on_the_original_string() {
        let c = Constraint::parse("*").unwrap();
        let s = select(
            &rules(Strategy::Semver, Some(&c)),
            &[tag("v1.0.0"), tag("1.0.0")],
        );
        assert_eq!(s.chosen.unwrap().name, "v1.0.0");
    }

    #[test]
    fn semver_star_excludes_prereleases_but_no_constraint_does_not() {
        let c = Constraint::parse("*").unwrap();
        let tags = [tag("1.0.0"), tag("1.1.0-rc1")];
        let s = select(&rules(Strategy::Semver, Some(&c)), &tags);
        assert_eq!(s.chosen.unwrap().name, "1.0.0");
        let s = select(&rules(Strategy::Semver, None), &tags);
        assert_eq!(s.chosen.unwrap().name, "1.1.0-rc1");
    }

    #[test]
    fn alphabetical_is_bytewise() {
        let s = select(
            &rules(Strategy::Alphabetical, None),
            &[tag("alpha"), tag("Zeta"), tag("v1.10"), tag("v1.9")],
        );
        assert_eq!(s.chosen.unwrap().name, "v1.9");
    }

    #[test]
    fn globs_match_whole_tags() {
        assert!(glob_match("*-debug", "1.0-debug"));
        assert!(!glob_match("rc", "1.0-rc1"));
        assert!(glob_match("1.[0-2]*", "1.2.3"));
        assert!(!glob_match("1.[^0-2]*", "1.2.3"));
        assert!(!glob_match("[", "["));
        assert!(glob_match("\\*", "*"));
        assert!(glob_match("?.0", "1.0"));
    }

    #[test]
    fn globs_read_classes_as_go_does() {
        // A backwards range is no syntax error in Go: it holds nothing.
        assert!(!glob_match("[z-a]*", "a1"));
        assert!(glob_match("[^z-a]*", "a1"));
        assert!(glob_match("[^9-0]", "x"));
        // A class is no path element: it may match `/`.
        assert!(glob_match("a[/]b", "a/b"));
        assert!(glob_match("a[^x]b", "a/b"));
        assert!(!glob_match("a?b", "a/b"));
        assert!(!glob_match("a*b", "a/b"));
        // Still malformed: an unclosed or empty class, a lone `-` or `\\`.
        assert!(!glob_match("[a", "a"));
        assert!(!glob_match("[]a]", "a"));
        assert!(!glob_match("[-a]", "a"));
        assert!(!glob_match("[a-]", "a"));
        assert!(!glob_match("a\\", "a"));
    }
}
