//! What keelson reads from its process environment, in one place. The
//! pipeline's stages read none of it: the CLI and `gather` pass what they
//! found here down as plain values.

use std::path::PathBuf;
use std::time::Duration;

fn var(k: &str) -> Option<PathBuf> {
    std::env::var_os(k)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// keelson's cache directory: `$KEELSON_CACHE_DIR`, else
/// `$XDG_CACHE_HOME/keelson`, else `~/.cache/keelson`; `None` when none of
/// them is set.
pub fn cache_dir() -> Option<PathBuf> {
    var("KEELSON_CACHE_DIR")
        .or_else(|| var("XDG_CACHE_HOME").map(|d| d.join("keelson")))
        .or_else(|| var("HOME").map(|h| h.join(".cache").join("keelson")))
}

/// Whether `KEELSON_TIMINGS=1` asks for stage timings.
pub fn timings() -> bool {
    std::env::var_os("KEELSON_TIMINGS").is_some_and(|v| v == "1")
}

/// Whether `NO_COLOR` is set to anything but the empty string.
pub(crate) fn no_color() -> bool {
    std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty())
}

/// `KEELSON_TEST_CRASH_AFTER=N` aborts the process after the N-th step of
/// applying a journal. Only the test suite sets it.
pub(crate) fn test_crash_point() -> Option<usize> {
    std::env::var("KEELSON_TEST_CRASH_AFTER").ok()?.parse().ok()
}

/// `KEELSON_TEST_REGISTRY_BACKOFF_MS=N` makes the first retry backoff N
/// milliseconds. Only the registry tests set it, so that they count retries
/// without sleeping through real backoff; `Retry-After` is still honoured.
pub const TEST_REGISTRY_BACKOFF: &str = "KEELSON_TEST_REGISTRY_BACKOFF_MS";

/// The backoff [`TEST_REGISTRY_BACKOFF`] asks for, if any.
pub fn test_registry_backoff() -> Option<Duration> {
    let ms = std::env::var(TEST_REGISTRY_BACKOFF).ok()?;
    ms.trim().parse().ok().map(Duration::from_millis)
}
