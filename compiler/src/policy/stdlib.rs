//! The standard policies, built from `stdlib/policies/` by
//! `scripts/build-policies.sh` and embedded in keelson, so `stdlib:NAME`
//! needs no file and is pinned by keelson's own release.

/// `(name, module bytes)`, in the order of [`crate::lower::STDLIB_POLICIES`].
const MODULES: &[(&str, &[u8])] = &[
    (
        "deny-mutable-tags",
        include_bytes!("../../../stdlib/wasm/deny-mutable-tags.wasm"),
    ),
    (
        "no-prerelease",
        include_bytes!("../../../stdlib/wasm/no-prerelease.wasm"),
    ),
    (
        "soak-time",
        include_bytes!("../../../stdlib/wasm/soak-time.wasm"),
    ),
    (
        "deploy-window",
        include_bytes!("../../../stdlib/wasm/deploy-window.wasm"),
    ),
    (
        "same-digest",
        include_bytes!("../../../stdlib/wasm/same-digest.wasm"),
    ),
    (
        "no-major-jump",
        include_bytes!("../../../stdlib/wasm/no-major-jump.wasm"),
    ),
];

/// The hashes the build recorded (`<hash>  <name>.wasm` lines).
pub const HASHES: &str = include_str!("../../../stdlib/wasm/HASHES");

/// The module of a standard policy.
pub fn module(name: &str) -> Option<&'static [u8]> {
    MODULES.iter().find(|(n, _)| *n == name).map(|(_, b)| *b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_standard_policy_is_embedded() {
        for name in crate::lower::STDLIB_POLICIES {
            assert!(module(name).is_some(), "{name}");
        }
        assert_eq!(MODULES.len(), crate::lower::STDLIB_POLICIES.len());
    }

    /// The embedded bytes are the ones the reproducible build recorded.
    #[test]
    fn embedded_modules_match_the_recorded_hashes() {
        for (name, bytes) in MODULES {
            let line = HASHES
                .lines()
                .find(|l| l.ends_with(&format!("  {name}.wasm")))
                .unwrap_or_else(|| panic!("{name} is not in stdlib/wasm/HASHES"));
            assert_eq!(&line[..64], crate::lock::hash(bytes), "{name}");
        }
    }
}
