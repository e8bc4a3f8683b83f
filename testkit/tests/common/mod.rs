//! Helpers shared by the self-tests: plain HTTP calls that keep every status as an answer.

#![allow(dead_code)]

use keelson_testkit::test_agent;
use ureq::http;

/// A whole response.
pub struct Got {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Vec<u8>,
}

impl Got {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
}

/// A request with optional `Accept` values and `Authorization`.
pub fn call(method: &str, url: &str, accept: &[&str], authorization: Option<&str>) -> Got {
    call_with(&test_agent(), method, url, accept, authorization).expect("request")
}

/// `call` on a given agent, returning transport errors.
pub fn call_with(
    agent: &ureq::Agent,
    method: &str,
    url: &str,
    accept: &[&str],
    authorization: Option<&str>,
) -> Result<Got, ureq::Error> {
    let mut b = http::Request::builder().method(method).uri(url);
    if !accept.is_empty() {
        b = b.header("Accept", accept.join(", "));
    }
    if let Some(a) = authorization {
        b = b.header("Authorization", a);
    }
    let mut resp = agent.run(b.body(()).unwrap())?;
    let body = resp.body_mut().read_to_vec()?;
    Ok(Got {
        status: resp.status().as_u16(),
        headers: resp.headers().clone(),
        body,
    })
}

pub fn get(url: &str) -> Got {
    call("GET", url, &[], None)
}

/// `Basic base64(user:password)`.
pub fn basic(user: &str, password: &str) -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

/// Every tag media type a modern client accepts.
pub const ALL_MANIFESTS: [&str; 4] = [
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
];
