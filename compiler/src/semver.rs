//! Semantic versions and constraints exactly as Masterminds/semver v3.4.0 reads
//! them, which is what every Argo CD Image Updater v1 release vendors.
//!
//! We do not use the `semver` crate: it implements Cargo's rules (strict
//! parsing, different wildcard and pre-release semantics), and keelson must
//! pick the same tags Image Updater would. The regular expressions below are
//! upstream's, with `\s` spelled as Go's ASCII class; Rust's `regex` and Go's
//! RE2 both use leftmost-first alternation, so matches are the same.

use std::cmp::Ordering;
use std::fmt;
use std::sync::LazyLock;

use regex::Regex;

/// A version as `semver.NewVersion` parses it (coercing, lenient).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    pub major: u64,
    pub minor: u64,
    pub patch: u64,
    pub pre: String,
    pub metadata: String,
    /// The text it was parsed from; Image Updater returns tags verbatim.
    pub original: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VersionError {
    Invalid,
    InvalidPrerelease,
    SegmentStartsZero,
    InvalidMetadata,
}

impl fmt::Display for VersionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            VersionError::Invalid => "invalid semantic version",
            VersionError::InvalidPrerelease => "invalid prerelease string",
            VersionError::SegmentStartsZero => "version segment starts with 0",
            VersionError::InvalidMetadata => "invalid metadata string",
        })
    }
}

const WS: &str = r"[\t\n\f\r ]";

static LOOSE_VERSION: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"^v?([0-9]+)(\.[0-9]+)?(\.[0-9]+)?(-([0-9A-Za-z\-]+(\.[0-9A-Za-z\-]+)*))?(\+([0-9A-Za-z\-]+(\.[0-9A-Za-z\-]+)*))?$",
    )
    .expect("static regex")
});

const NUM: &str = "0123456789";

fn contains_only(s: &str, allowed: impl Fn(char) -> bool) -> bool {
    s.chars().all(allowed)
}

fn is_num(c: char) -> bool {
    NUM.contains(c)
}

fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-'
}

fn validate_prerelease(p: &str) -> Result<(), VersionError> {
    for part in p.split('.') {
        if part.is_empty() {
            return Err(VersionError::InvalidPrerelease);
        } else if contains_only(part, is_num) {
            if part.len() > 1 && part.starts_with('0') {
                return Err(VersionError::SegmentStartsZero);
            }
        } else if !contains_only(part, is_ident_char) {
            return Err(VersionError::InvalidPrerelease);
        }
    }
    Ok(())
}

fn validate_metadata(m: &str) -> Result<(), VersionError> {
    for part in m.split('.') {
        if part.is_empty() || !contains_only(part, is_ident_char) {
            return Err(VersionError::InvalidMetadata);
        }
    }
    Ok(())
}

impl Version {
    /// `semver.NewVersion` with upstream's default `CoerceNewVersion = true`.
    pub fn parse(v: &str) -> Result<Version, VersionError> {
        let m = LOOSE_VERSION.captures(v).ok_or(VersionError::Invalid)?;
        let seg = |i: usize| -> Result<u64, VersionError> {
            match m.get(i) {
                None => Ok(0),
                Some(s) => s
                    .as_str()
                    .trim_start_matches('.')
                    .parse()
                    .map_err(|_| VersionError::Invalid),
            }
        };
        let version = Version {
            major: seg(1)?,
            minor: seg(2)?,
            patch: seg(3)?,
            pre: m.get(5).map_or("", |s| s.as_str()).to_string(),
            metadata: m.get(8).map_or("", |s| s.as_str()).to_string(),
            original: v.to_string(),
        };
        if !version.pre.is_empty() {
            validate_prerelease(&version.pre)?;
        }
        if !version.metadata.is_empty() {
            validate_metadata(&version.metadata)?;
        }
        Ok(version)
    }

    fn from_parts(major: u64, minor: u64, patch: u64, pre: &str) -> Version {
        Version {
            major,
            minor,
            patch,
            pre: pre.into(),
            metadata: String::new(),
            original: String::new(),
        }
    }

    /// Semver precedence; build metadata is ignored (`Version.Compare`).
    pub fn compare(&self, o: &Version) -> Ordering {
        self.major
            .cmp(&o.major)
            .then(self.minor.cmp(&o.minor))
            .then(self.patch.cmp(&o.patch))
            .then_with(|| match (self.pre.is_empty(), o.pre.is_empty()) {
                (true, true) => Ordering::Equal,
                (true, false) => Ordering::Greater,
                (false, true) => Ordering::Less,
                (false, false) => compare_prerelease(&self.pre, &o.pre),
            })
    }

    pub(crate) fn is_prerelease(&self) -> bool {
        !self.pre.is_empty()
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)?;
        if !self.pre.is_empty() {
            write!(f, "-{}", self.pre)?;
        }
        if !self.metadata.is_empty() {
            write!(f, "+{}", self.metadata)?;
        }
        Ok(())
    }
}

fn compare_prerelease(v: &str, o: &str) -> Ordering {
    let sparts: Vec<&str> = v.split('.').collect();
    let oparts: Vec<&str> = o.split('.').collect();
    for i in 0..sparts.len().max(oparts.len()) {
        let s = sparts.get(i).copied().unwrap_or("");
        let o = oparts.get(i).copied().unwrap_or("");
        let d = compare_pre_part(s, o);
        if d != Ordering::Equal {
            return d;
        }
    }
    Ordering::Equal
}

/// `comparePrePart`: numeric identifiers sort before alphanumeric ones; a
/// missing identifier sorts first.
fn compare_pre_part(s: &str, o: &str) -> Ordering {
    if s == o {
        return Ordering::Equal;
    }
    if s.is_empty() {
        return Ordering::Less;
    }
    if o.is_empty() {
        return Ordering::Greater;
    }
    match (s.parse::<u64>(), o.parse::<u64>()) {
        (Err(_), Err(_)) => {
            if s > o {
                Ordering::Greater
            } else {
                Ordering::Less
            }
        }
        (_, Err(_)) => Ordering::Less,
        (Err(_), _) => Ordering::Greater,
        (Ok(si), Ok(oi)) => {
            if si > oi {
                Ordering::Greater
            } else {
                Ordering::Less
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    TildeOrEqual,
    NotEqual,
    Greater,
    Less,
    GreaterEqual,
    LessEqual,
    Tilde,
    Caret,
}

#[derive(Debug, Clone)]
struct Single {
    con: Version,
    op: Op,
    minor_dirty: bool,
    patch_dirty: bool,
    dirty: bool,
}

/// A parsed `semver.NewConstraint`: OR groups of AND-ed comparisons.
#[derive(Debug, Clone)]
pub struct Constraint {
    groups: Vec<Vec<Single>>,
    contains_pre: Vec<bool>,
    text: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConstraintError {
    /// The OR-group or comparison that failed, as upstream reports it.
    pub segment: String,
}

impl fmt::Display for ConstraintError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "improper constraint: {}", self.segment)
    }
}

const CV: &str = r"v?([0-9|x|X|\*]+)(\.[0-9|x|X|\*]+)?(\.[0-9|x|X|\*]+)?(-([0-9A-Za-z\-]+(\.[0-9A-Za-z\-]+)*))?(\+([0-9A-Za-z\-]+(\.[0-9A-Za-z\-]+)*))?";
const OPS: &str = r"=||!=|>|<|>=|=>|<=|=<|~|~>|\^";

static CONSTRAINT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!(r"^{WS}*({OPS}){WS}*({CV}){WS}*$")).expect("static regex")
});
static CONSTRAINT_RANGE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!(r"{WS}*({CV}){WS}+-{WS}+({CV}){WS}*")).expect("static regex")
});
static FIND_CONSTRAINT: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(&format!(r"({OPS}){WS}*({CV})")).expect("static regex"));
static VALID_CONSTRAINT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!(
        r"^({WS}*({OPS}){WS}*({CV}){WS}*)((?:{WS}+|,{WS}*)({OPS}){WS}*({CV}){WS}*)*$"
    ))
    .expect("static regex")
});

fn is_x(s: &str) -> bool {
    matches!(s, "x" | "*" | "X")
}

/// `rewriteRange`: `A - B` becomes `>= A, <= B `.
fn rewrite_range(input: &str) -> String {
    let mut out = input.to_string();
    for caps in CONSTRAINT_RANGE.captures_iter(input) {
        let whole = caps.get(0).map_or("", |m| m.as_str());
        let a = caps.get(1).map_or("", |m| m.as_str());
        let b = caps.get(11).map_or("", |m| m.as_str());
        out = out.replacen(whole, &format!(">= {a}, <= {b} "), 1);
    }
    out
}

fn parse_single(c: &str) -> Result<Single, ConstraintError> {
    if c.is_empty() {
        return Ok(Single {
            con: Version::from_parts(0, 0, 0, ""),
            op: Op::TildeOrEqual,
            minor_dirty: false,
            patch_dirty: false,
            dirty: true,
        });
    }
    let m = CONSTRAINT.captures(c).ok_or_else(|| ConstraintError {
        segment: c.to_string(),
    })?;
    let g = |i: usize| m.get(i).map_or("", |s| s.as_str());
    let op = match g(1) {
        "" | "=" => Op::TildeOrEqual,
        "!=" => Op::NotEqual,
        ">" => Op::Greater,
        "<" => Op::Less,
        ">=" | "=>" => Op::GreaterEqual,
        "<=" | "=<" => Op::LessEqual,
        "~" | "~>" => Op::Tilde,
        "^" => Op::Caret,
        _ => {
            return Err(ConstraintError {
                segment: c.to_string(),
            });
        }
    };
    let (mut minor_dirty, mut patch_dirty, mut dirty) = (false, false, false);
    let ver = if is_x(g(3)) || g(3).is_empty() {
        dirty = true;
        format!("0.0.0{}", g(6))
    } else if is_x(g(4).trim_start_matches('.')) || g(4).is_empty() {
        minor_dirty = true;
        dirty = true;
        format!("{}.0.0{}", g(3), g(6))
    } else if is_x(g(5).trim_start_matches('.')) || g(5).is_empty() {
        dirty = true;
        patch_dirty = true;
        format!("{}{}.0{}", g(3), g(4), g(6))
    } else {
        g(2).to_string()
    };
    // Upstream calls this "constraint parser error"; it happens for wildcards
    // in odd places (`1.x.3`) and for numbers that overflow.
    let con = Version::parse(&ver).map_err(|_| ConstraintError {
        segment: c.to_string(),
    })?;
    Ok(Single {
        con,
        op,
        minor_dirty,
        patch_dirty,
        dirty,
    })
}

impl Constraint {
    /// `semver.NewConstraint`. Like upstream it rejects `""`; Image Updater
    /// itself treats a missing constraint as `*`, and so do keelson's callers.
    pub fn parse(c: &str) -> Result<Constraint, ConstraintError> {
        let rewritten = rewrite_range(c);
        let mut groups = Vec::new();
        let mut contains_pre = Vec::new();
        for or in rewritten.split("||") {
            if !VALID_CONSTRAINT.is_match(or) {
                return Err(ConstraintError {
                    segment: or.to_string(),
                });
            }
            let found: Vec<&str> = FIND_CONSTRAINT.find_iter(or).map(|m| m.as_str()).collect();
            let pieces = if found.is_empty() { vec![or] } else { found };
            let mut group = Vec::new();
            let mut has_pre = false;
            for piece in pieces {
                let single = parse_single(piece)?;
                has_pre |= !single.con.pre.is_empty();
                group.push(single);
            }
            groups.push(group);
            contains_pre.push(has_pre);
        }
        Ok(Constraint {
            groups,
            contains_pre,
            text: c.to_string(),
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// `Constraints.Check`.
    pub fn matches(&self, v: &Version) -> bool {
        self.groups
            .iter()
            .zip(&self.contains_pre)
            .any(|(group, &include_pre)| group.iter().all(|c| check(v, c, include_pre)))
    }
}

fn check(v: &Version, c: &Single, include_pre: bool) -> bool {
    if v.is_prerelease() && !include_pre {
        return false;
    }
    let cmp = v.compare(&c.con);
    match c.op {
        Op::TildeOrEqual => {
            if c.dirty {
                tilde(v, c)
            } else {
                cmp == Ordering::Equal
            }
        }
        Op::NotEqual => {
            if c.dirty {
                if c.con.major != v.major {
                    return true;
                }
                if c.con.minor != v.minor && !c.minor_dirty {
                    return true;
                } else if c.minor_dirty {
                    return false;
                } else if c.con.patch != v.patch && !c.patch_dirty {
                    return true;
                } else if c.patch_dirty {
                    if v.is_prerelease() || c.con.is_prerelease() {
                        return compare_prerelease(&v.pre, &c.con.pre) != Ordering::Equal;
                    }
                    return false;
                }
            }
            cmp != Ordering::Equal
        }
        Op::Greater => {
            if !c.dirty {
                return cmp == Ordering::Greater;
            }
            if v.major > c.con.major {
                true
            } else if v.major < c.con.major || c.minor_dirty {
                false
            } else if c.patch_dirty {
                v.minor > c.con.minor
            } else {
                cmp == Ordering::Greater
            }
        }
        Op::Less => cmp == Ordering::Less,
        Op::GreaterEqual => cmp != Ordering::Less,
        Op::LessEqual => {
            if !c.dirty {
                return cmp != Ordering::Greater;
            }
            !(v.major > c.con.major
                || (v.major == c.con.major && v.minor > c.con.minor && !c.minor_dirty))
        }
        Op::Tilde => tilde(v, c),
        Op::Caret => caret(v, c),
    }
}

fn tilde(v: &Version, c: &Single) -> bool {
    if v.compare(&c.con) == Ordering::Less {
        return false;
    }
    if c.con.major == 0 && c.con.minor == 0 && c.con.patch == 0 && !c.minor_dirty && !c.patch_dirty
    {
        return true;
    }
    if v.major != c.con.major {
        return false;
    }
    !(v.minor != c.con.minor && !c.minor_dirty)
}

fn caret(v: &Version, c: &Single) -> bool {
    if v.compare(&c.con) == Ordering::Less {
        return false;
    }
    if c.con.major > 0 || c.minor_dirty {
        return v.major == c.con.major;
    }
    if c.con.major == 0 && v.major > 0 {
        return false;
    }
    if c.con.minor > 0 || c.patch_dirty {
        return v.minor == c.con.minor;
    }
    if c.con.minor == 0 && v.minor > 0 {
        return false;
    }
    c.con.patch == v.patch
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(c: &str, v: &str) -> bool {
        Constraint::parse(c)
            .unwrap()
            .matches(&Version::parse(v).unwrap())
    }

    #[test]
    fn lenient_versions() {
        assert_eq!(Version::parse("1").unwrap().to_string(), "1.0.0");
        assert_eq!(Version::parse("v1.2").unwrap().to_string(), "1.2.0");
        assert_eq!(
            Version::parse("2024.01.15").unwrap().to_string(),
            "2024.1.15"
        );
        assert!(Version::parse("V1.0.0").is_err());
        assert!(Version::parse("1.0.0.1").is_err());
        assert_eq!(
            Version::parse("1.0.0-01"),
            Err(VersionError::SegmentStartsZero)
        );
        assert_eq!(Version::parse("1.25.3-alpine").unwrap().pre, "alpine");
        assert_eq!(Version::parse("2024-01-15").unwrap().pre, "01-15");
        assert!(Version::parse("latest").is_err());
    }

    #[test]
    fn prerelease_order() {
        let cmp = |a: &str, b: &str| {
            Version::parse(a)
                .unwrap()
                .compare(&Version::parse(b).unwrap())
        };
        assert_eq!(cmp("1.0.0-rc.10", "1.0.0-rc.9"), Ordering::Greater);
        assert_eq!(cmp("1.0.0-rc10", "1.0.0-rc2"), Ordering::Less);
        assert_eq!(cmp("1.0.0-1", "1.0.0-alpha"), Ordering::Less);
        assert_eq!(cmp("1.0.0", "1.0.0-rc.1"), Ordering::Greater);
        assert_eq!(cmp("1.0.0+b.1", "1.0.0+b.2"), Ordering::Equal);
    }

    #[test]
    fn constraints_as_documented() {
        assert!(ok("1.20", "1.20.7"));
        assert!(!ok("1.20", "1.21.0"));
        assert!(ok("~1.2", "1.2.9") && !ok("~1.2", "1.3.0"));
        assert!(ok("~1", "1.9.0") && !ok("~1", "2.0.0"));
        assert!(ok("^1.2", "1.9.0") && !ok("^1.2", "2.0.0"));
        assert!(ok("^0.2", "0.2.5") && !ok("^0.2", "0.3.0"));
        assert!(ok("^0.0.3", "0.0.3") && !ok("^0.0.3", "0.0.4"));
        assert!(ok("1.0 - 1.5", "1.5.9"));
        assert!(!ok(">1.1", "1.1.5") && ok(">1.1", "1.2.0"));
        assert!(ok("1.2.3", "1.2.3") && !ok("1.2.3", "1.2.4"));
        assert!(ok(">= 1.2, < 2 || 3.x", "3.4.0"));
        assert!(ok("*", "9.9.9") && ok("1.x.3x", "1.7.0"));
        // Upstream's NewConstraint rejects ""; Image Updater substitutes `*`.
        assert!(Constraint::parse("").is_err());
    }

    #[test]
    fn prerelease_opt_in_is_per_group() {
        assert!(!ok("*", "2.0.0-rc1"));
        assert!(ok("2.x-0", "2.0.0-rc1"));
        assert!(ok(">=1.0.0-0 <2.0.0", "2.0.0-rc1"));
        assert!(!ok(">=1.0.0-0 <2.0.0 || 3.x", "3.0.0-rc1"));
    }

    #[test]
    fn invalid_constraints() {
        for bad in [
            "latest", "stable", ">=", "^1.2.3.4", "~> >1", "1.2 ||", "a.b",
        ] {
            assert!(Constraint::parse(bad).is_err(), "{bad} should be invalid");
        }
    }
}
