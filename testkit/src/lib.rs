//! Test support for keelson: a real OCI registry on loopback, a Docker token server, and a
//! fault-injecting proxy.
//!
//! - [`Registry`] runs CNCF distribution (Debian's `docker-registry`, 2.8) on 127.0.0.1 with
//!   anonymous, Basic ([`Auth::Basic`]) or token ([`Auth::Token`]) authentication, and pushes
//!   [`TestImage`]s and indexes to it through the Distribution API.
//! - [`TokenServer`] implements the Docker token protocol for [`Auth::Token`].
//! - [`Proxy`] sits in front of a registry, logs requests, paginates tag lists and injects
//!   [`Fault`]s; [`closed_port_url`] is a registry that is down.
//! - [`harness`] runs a crate's integration tests as one binary: data-driven cases and test
//!   functions, through libtest-mimic.
//!
//! It does not depend on the `keelson` crate, so the compiler's tests and benchmark can use it.
//!
//! ```no_run
//! use keelson_testkit::{Auth, Fault, FaultKind, IndexKind, Proxy, Registry, TestImage};
//!
//! let reg = Registry::start(Auth::basic("ci", "secret"));
//! let digest = reg.push("team/app", "1.2.3", &TestImage::linux_amd64("2024-05-01T00:00:00Z"));
//! let created = "2024-05-01T00:00:00Z";
//! let both = [TestImage::linux_amd64(created), TestImage::linux_arm64(created)];
//! reg.push_index("team/app", "multi", &both, IndexKind::Oci);
//! let proxy = Proxy::start(&reg.url());
//! proxy.paginate(Some(100));
//! proxy.inject(Fault::new("/tags/list", FaultKind::status_retry_after(429, "1")).times(1));
//! // … point the code under test at proxy.host() …
//! assert_eq!(proxy.count("/tags/list"), 0);
//! # let _ = digest;
//! ```
//!
//! # Things to know
//!
//! - Registry temp dirs go to /dev/shm when it exists (`KEELSON_TESTKIT_TMPDIR` overrides):
//!   the filesystem driver writes ~15 small files and directories per image, which this
//!   machine's ext4 takes ~0.2 ms each to delete. Expect ~42 KiB of tmpfs per image.
//! - A registry dies with the process that started it, even one killed by a timeout, and the
//!   next [`Registry::start`] removes temp dirs such processes left.
//! - distribution 2.8 costs ~1.5 ms of CPU per request (it rebuilds its URL router every
//!   time), so pushing is registry-bound: one image is three requests (config POST and PUT,
//!   manifest PUT), ~2.6 ms on two cores with [`Registry::push_many`]; a config already in
//!   another repository is mounted instead (two requests).
//! - distribution 2.8 answers an OCI manifest or index with 404 `MANIFEST_UNKNOWN` unless
//!   `Accept` names the OCI type; a Docker list asked for with only the v2 manifest type comes
//!   back as its linux/amd64 child, under another digest; index children must be pushed
//!   (by digest) before the index.
//! - The registry logs at `warn` without access logs; set
//!   `KEELSON_TESTKIT_REGISTRY_LOG_LEVEL=debug` to see every request in [`Registry::log`].

#![warn(missing_docs)]

pub mod golden;
pub mod harness;
mod http;
mod image;
mod proxy;
mod push;
mod registry;
mod token;

pub use image::{IndexKind, ManifestKind, TestImage, index_bytes, sha256_digest};
pub use proxy::{Fault, FaultKind, Logged, Proxy, closed_port_url};
pub use push::{PushStats, parse_challenge};
pub use registry::{Auth, Registry};
pub use token::{ISSUER, SERVICE, TokenServer};

/// A ureq agent for tests: statuses are answers (not errors), redirects are not followed, no
/// compression is asked for, and a call gives up after 30 s.
pub fn test_agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .accept_encoding(ureq::config::AutoHeaderValue::None)
        .timeout_global(Some(std::time::Duration::from_secs(30)))
        .build()
        .into()
}

#[cfg(test)]
mod tests {
    /// Shared through statics and across push threads.
    #[test]
    fn send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<super::Registry>();
        check::<super::Proxy>();
        check::<super::TokenServer>();
    }
}
