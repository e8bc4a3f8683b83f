//! Image tags read as versions, leniently, ordered as semver 2.0 orders them.
//!
//! [`Version::parse`] accepts what image tags look like in practice: an
//! optional `v`, one to three dot-separated numbers (`1`, `1.2`, `1.2.3`;
//! missing parts are 0, leading zeros are allowed), then an optional
//! prerelease after `-` (`1.2.0-rc.1`) and build metadata after `+`. A tag
//! such as `latest`, `1.2.3.4` or `2024-06-01` is not a version.
//!
//! Note that `1.2.3-alpine` *is* a prerelease by these rules (as by semver's
//! and Argo CD Image Updater's): a tag's suffix after `-` cannot be told from
//! a prerelease. Likewise a date tag `2024-06-01` reads as `2024.0.0-06-01`.

use std::cmp::Ordering;
use std::fmt;

/// A version read from a tag.
#[derive(Debug, Clone, Eq)]
pub struct Version {
    pub major: u64,
    pub minor: u64,
    pub patch: u64,
    /// The dot-separated identifiers after `-`; empty for a release.
    pub prerelease: Vec<String>,
    /// The build metadata after `+`, without it; empty when there is none.
    /// Ignored by comparisons, as semver says.
    pub build: String,
}

impl Version {
    /// Reads `tag` as a version, or `None` if it is not one.
    pub fn parse(tag: &str) -> Option<Version> {
        let text = tag.strip_prefix(['v', 'V']).unwrap_or(tag);
        let (text, build) = match text.split_once('+') {
            Some((v, b)) if identifiers(b) => (v, b),
            Some(_) => return None,
            None => (text, ""),
        };
        let (core, prerelease) = match text.split_once('-') {
            Some((c, p)) if identifiers(p) => (c, p.split('.').map(String::from).collect()),
            Some(_) => return None,
            None => (text, Vec::new()),
        };
        let mut numbers = [0u64; 3];
        let mut parts = core.split('.');
        for (i, part) in parts.by_ref().take(3).enumerate() {
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            numbers[i] = part.parse().ok()?;
        }
        if parts.next().is_some() {
            return None;
        }
        Some(Version {
            major: numbers[0],
            minor: numbers[1],
            patch: numbers[2],
            prerelease,
            build: build.to_string(),
        })
    }

    pub fn new(major: u64, minor: u64, patch: u64) -> Version {
        Version {
            major,
            minor,
            patch,
            prerelease: Vec::new(),
            build: String::new(),
        }
    }

    /// Whether it has a prerelease part (`1.2.0-rc.1`).
    pub fn is_prerelease(&self) -> bool {
        !self.prerelease.is_empty()
    }

    /// The prerelease part as written (`rc.1`), empty for a release.
    pub fn prerelease_str(&self) -> String {
        self.prerelease.join(".")
    }
}

/// Identifiers of a prerelease or build: non-empty, `[0-9A-Za-z-]`.
fn identifiers(s: &str) -> bool {
    s.split('.')
        .all(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
}

impl Ord for Version {
    /// Semver 2.0 precedence: numbers, then a release above its
    /// prereleases, prerelease identifiers left to right (numeric ones
    /// numerically and below alphanumeric ones, which compare in ASCII
    /// order; more identifiers rank higher when the rest are equal). Build
    /// metadata is ignored.
    fn cmp(&self, other: &Version) -> Ordering {
        (self.major, self.minor, self.patch)
            .cmp(&(other.major, other.minor, other.patch))
            .then_with(|| match (self.is_prerelease(), other.is_prerelease()) {
                (false, false) => Ordering::Equal,
                (false, true) => Ordering::Greater,
                (true, false) => Ordering::Less,
                (true, true) => {
                    for (a, b) in self.prerelease.iter().zip(&other.prerelease) {
                        let order = compare_identifiers(a, b);
                        if order != Ordering::Equal {
                            return order;
                        }
                    }
                    self.prerelease.len().cmp(&other.prerelease.len())
                }
            })
    }
}

fn compare_identifiers(a: &str, b: &str) -> Ordering {
    let numeric = |s: &str| s.bytes().all(|c| c.is_ascii_digit());
    match (numeric(a), numeric(b)) {
        // Numbers of any length: compare without leading zeros, by length then digits.
        (true, true) => {
            let (a, b) = (a.trim_start_matches('0'), b.trim_start_matches('0'));
            a.len().cmp(&b.len()).then_with(|| a.cmp(b))
        }
        (true, false) => Ordering::Less,
        (false, true) => Ordering::Greater,
        (false, false) => a.cmp(b),
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Version) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Version {
    /// Equal in precedence: build metadata is ignored.
    fn eq(&self, other: &Version) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl fmt::Display for Version {
    /// The normal form, `MAJOR.MINOR.PATCH[-PRERELEASE][+BUILD]`, without `v`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)?;
        if self.is_prerelease() {
            write!(f, "-{}", self.prerelease_str())?;
        }
        if !self.build.is_empty() {
            write!(f, "+{}", self.build)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap_or_else(|| panic!("{s} should parse"))
    }

    #[test]
    fn lenient_forms() {
        assert_eq!((v("1").major, v("1").minor, v("1").patch), (1, 0, 0));
        assert_eq!(v("1.2").to_string(), "1.2.0");
        assert_eq!(v("v1.2.3").to_string(), "1.2.3");
        assert_eq!(v("V1.2.3").to_string(), "1.2.3");
        assert_eq!(v("01.002.0003").to_string(), "1.2.3");
        let x = v("1.2.0-rc.1+build.5");
        assert_eq!(x.prerelease, ["rc", "1"]);
        assert_eq!(x.prerelease_str(), "rc.1");
        assert_eq!(x.build, "build.5");
        assert!(x.is_prerelease());
        assert_eq!(x.to_string(), "1.2.0-rc.1+build.5");
        assert!(!v("1.2.0+meta").is_prerelease());
        assert!(v("1.2.3-alpine").is_prerelease());
        assert_eq!(v("2.0.0-x-y--z").prerelease, ["x-y--z"]);
        // A date tag reads as a version with a prerelease, as in Image Updater.
        assert_eq!(v("2024-06-01").to_string(), "2024.0.0-06-01");
    }

    #[test]
    fn what_is_not_a_version() {
        for bad in [
            "",
            "v",
            "latest",
            "main",
            "1.",
            ".1",
            "1..2",
            "1.2.3.4",
            "1.2.x",
            "1.2.3-",
            "1.2.3-rc..1",
            "1.2.3+",
            "1.2.3-rc+",
            "1.2.3-r_c",
            "v-1",
            " 1.2.3",
            "1.2.3 ",
            "vv1",
            "-1.2.3",
            "+1",
            "1.2.3-ü",
            "99999999999999999999999",
        ] {
            assert!(Version::parse(bad).is_none(), "{bad:?} parsed");
        }
    }

    #[test]
    fn semver_precedence() {
        // The example chain from semver.org §11.
        let chain = [
            "1.0.0-alpha",
            "1.0.0-alpha.1",
            "1.0.0-alpha.beta",
            "1.0.0-beta",
            "1.0.0-beta.2",
            "1.0.0-beta.11",
            "1.0.0-rc.1",
            "1.0.0",
            "1.0.1",
            "1.1.0",
            "2.0.0",
            "10.0.0",
        ];
        for pair in chain.windows(2) {
            assert!(v(pair[0]) < v(pair[1]), "{} < {}", pair[0], pair[1]);
        }
        assert_eq!(v("1.0.0+a"), v("1.0.0+b"));
        assert_eq!(v("v1.2"), v("1.2.0"));
        assert!(v("1.0.0-2") < v("1.0.0-10"));
        assert!(v("1.0.0-010") > v("1.0.0-9"));
        assert!(v("1.0.0-99999999999999999999999") > v("1.0.0-9"));
        assert!(v("1.0.0-1") < v("1.0.0-a"));
    }
}
