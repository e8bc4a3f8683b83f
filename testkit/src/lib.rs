//! Test support for keelson: a real OCI registry on loopback, a Docker token server, and a
//! fault-injecting proxy.
//!
//! - [`Registry`] runs CNCF distribution (Debian's `docker-registry`, 2.8) on 127.0.0.1 with
//!   anonymous, Basic ([`Auth::Basic`]) or token ([`Auth::Token`]) authentication, and pushes
//!   [`TestImage`]s and indexes to it through the Distribution API.
//! - [`TokenServer`] implements the Docker token protocol for [`Auth::Token`].
//! - [`Proxy`] sits in front of a registry, logs requests, paginates tag lists and injects
//!   [`Fault`]s; [`closed_port_url`] is a registry that is down.
//!
//! It does not depend on the `keelson` crate, so the compiler's tests and benchmark can use it.

mod http;
mod image;
mod proxy;
mod push;
mod registry;
mod token;

pub use image::{IndexKind, ManifestKind, TestImage, index_bytes, sha256_digest};
pub use proxy::{Fault, FaultKind, Logged, Proxy, closed_port_url};
pub use push::parse_challenge;
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
