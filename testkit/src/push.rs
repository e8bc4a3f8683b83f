//! Pushing test images straight to the registry through the Distribution API.
//!
//! Built for seeding benchmarks (1,000 repositories × 200 tags): one keep-alive agent, a record
//! of which blobs each repository already has (so the shared layer is sent once per repository,
//! or mounted from another), and tokens cached per scope. It authenticates like a real client:
//! Basic credentials on every request, or Bearer tokens fetched from the realm that the
//! registry's `WWW-Authenticate` challenge names.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ureq::http;

use crate::http::percent_encode;
use crate::image::{IndexKind, LAYER_GZ, TestImage, index_bytes, sha256_digest};

/// What the push helpers have sent so far ([`crate::Registry::push_stats`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PushStats {
    /// HTTP requests to the registry (token requests not included).
    pub requests: usize,
    /// Blobs uploaded (a POST and a PUT each).
    pub uploads: usize,
    /// Blobs mounted from another repository (one POST each).
    pub mounts: usize,
    /// Manifests and indexes PUT.
    pub manifests: usize,
    /// Tokens fetched from the token server.
    pub tokens: usize,
}

#[derive(Default)]
struct Counters {
    requests: AtomicUsize,
    uploads: AtomicUsize,
    mounts: AtomicUsize,
    manifests: AtomicUsize,
    tokens: AtomicUsize,
}

/// How the pusher authenticates.
pub(crate) enum PushAuth {
    None,
    Basic(String),
    Token { basic: String },
}

/// The pushing client of one registry.
pub(crate) struct Pusher {
    base: String,
    agent: ureq::Agent,
    auth: PushAuth,
    blobs: Mutex<Blobs>,
    /// Bearer tokens by the scope string they were requested for.
    tokens: Mutex<HashMap<String, String>>,
    /// The realm and service of the registry's Bearer challenge, once seen.
    challenge: Mutex<Option<(String, String)>>,
    counters: Counters,
}

#[derive(Default)]
struct Blobs {
    /// (repository, digest) pairs the registry has.
    linked: HashSet<(String, String)>,
    /// For each digest, one repository that has it: the `from` of a mount.
    source: HashMap<String, String>,
}

/// A response read whole.
struct Answer {
    status: u16,
    headers: http::HeaderMap,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

impl Pusher {
    pub fn new(base: String, auth: PushAuth) -> Pusher {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .max_idle_connections(256)
            .max_idle_connections_per_host(256)
            .timeout_global(Some(Duration::from_secs(60)))
            .build()
            .into();
        Pusher {
            base,
            agent,
            auth,
            blobs: Mutex::default(),
            tokens: Mutex::default(),
            challenge: Mutex::default(),
            counters: Counters::default(),
        }
    }

    /// The counts so far.
    pub fn stats(&self) -> PushStats {
        let c = &self.counters;
        let get = |a: &AtomicUsize| a.load(Ordering::Relaxed);
        PushStats {
            requests: get(&c.requests),
            uploads: get(&c.uploads),
            mounts: get(&c.mounts),
            manifests: get(&c.manifests),
            tokens: get(&c.tokens),
        }
    }

    /// Pushes one image under `reference` (a tag or its digest); returns the manifest digest.
    pub fn push_image(&self, repo: &str, reference: &str, image: &TestImage) -> String {
        self.ensure_blob(repo, &LAYER_GZ);
        self.ensure_blob(repo, &image.config_bytes());
        self.put_manifest(
            repo,
            reference,
            &image.manifest_bytes(),
            image.media.media_type(),
        )
    }

    /// Pushes each image by digest, then the index under `tag`; returns the index digest.
    pub fn push_index(
        &self,
        repo: &str,
        tag: &str,
        images: &[TestImage],
        kind: IndexKind,
    ) -> String {
        for img in images {
            self.push_image(repo, &img.digest(), img);
        }
        self.put_manifest(repo, tag, &index_bytes(images, kind), kind.media_type())
    }

    fn put_manifest(&self, repo: &str, reference: &str, bytes: &[u8], media: &str) -> String {
        let digest = sha256_digest(bytes);
        let url = format!("{}/v2/{repo}/manifests/{reference}", self.base);
        let a = self.send("PUT", &url, Some(media), bytes, &push_scope(repo, None));
        if a.status != 201 {
            panic!("PUT {url} answered {}: {}", a.status, a.text());
        }
        self.counters.manifests.fetch_add(1, Ordering::Relaxed);
        let sent = a.header("docker-content-digest").unwrap_or("");
        assert_eq!(
            sent, digest,
            "registry's Docker-Content-Digest for {repo}:{reference}"
        );
        digest
    }

    /// Makes sure `repo` has the blob: known already, mounted from another repository, or
    /// uploaded (POST for a session, then PUT with the digest: distribution 2.8 has no
    /// single-request upload).
    fn ensure_blob(&self, repo: &str, bytes: &[u8]) {
        let digest = sha256_digest(bytes);
        let from = {
            let blobs = self.blobs.lock().unwrap();
            if blobs.linked.contains(&(repo.to_string(), digest.clone())) {
                return;
            }
            blobs.source.get(&digest).cloned()
        };
        let uploads = format!("{}/v2/{repo}/blobs/uploads/", self.base);
        let (url, scope) = match &from {
            Some(from) => (
                format!(
                    "{uploads}?mount={}&from={}",
                    percent_encode(&digest),
                    percent_encode(from)
                ),
                push_scope(repo, Some(from)),
            ),
            None => (uploads, push_scope(repo, None)),
        };
        let a = self.send("POST", &url, None, b"", &scope);
        match a.status {
            // Mounted: nothing to send.
            201 => {
                self.counters.mounts.fetch_add(1, Ordering::Relaxed);
            }
            // A session: a failed mount also opens one, so falling back costs nothing.
            202 => {
                let location = a
                    .header("location")
                    .unwrap_or_else(|| panic!("POST {url}: 202 without Location"));
                let mut put = if location.starts_with('/') {
                    format!("{}{location}", self.base)
                } else {
                    location.to_string()
                };
                put.push(if put.contains('?') { '&' } else { '?' });
                put.push_str("digest=");
                put.push_str(&percent_encode(&digest));
                let a = self.send(
                    "PUT",
                    &put,
                    Some("application/octet-stream"),
                    bytes,
                    &push_scope(repo, None),
                );
                if a.status != 201 {
                    panic!("PUT {put} answered {}: {}", a.status, a.text());
                }
                self.counters.uploads.fetch_add(1, Ordering::Relaxed);
            }
            s => panic!("POST {url} answered {s}: {}", a.text()),
        }
        let mut blobs = self.blobs.lock().unwrap();
        blobs.linked.insert((repo.to_string(), digest.clone()));
        blobs
            .source
            .entry(digest)
            .or_insert_with(|| repo.to_string());
    }

    /// Sends a request with credentials, answering one Bearer challenge by fetching a token.
    fn send(
        &self,
        method: &str,
        url: &str,
        content_type: Option<&str>,
        body: &[u8],
        scope: &str,
    ) -> Answer {
        let mut authorization = match &self.auth {
            PushAuth::None => None,
            PushAuth::Basic(b) => Some(format!("Basic {b}")),
            PushAuth::Token { .. } => self.cached_token(scope).map(|t| format!("Bearer {t}")),
        };
        let mut retried = false;
        loop {
            self.counters.requests.fetch_add(1, Ordering::Relaxed);
            let a = self.raw(method, url, content_type, body, authorization.as_deref());
            if a.status != 401 || retried {
                return a;
            }
            let PushAuth::Token { basic } = &self.auth else {
                return a;
            };
            let Some(challenge) = a.header("www-authenticate") else {
                return a;
            };
            let Some((scheme, params)) = parse_challenge(challenge) else {
                return a;
            };
            if !scheme.eq_ignore_ascii_case("bearer") {
                return a;
            }
            let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
            let (Some(realm), service) = (get("realm"), get("service").unwrap_or_default()) else {
                return a;
            };
            *self.challenge.lock().unwrap() = Some((realm.clone(), service.clone()));
            // Ask for what we need plus whatever the challenge named.
            let mut scopes: Vec<String> = scope.split(' ').map(str::to_string).collect();
            for s in get("scope").unwrap_or_default().split(' ') {
                if !s.is_empty() && !scopes.iter().any(|x| x == s) {
                    scopes.push(s.to_string());
                }
            }
            let token = self.fetch_token(&realm, &service, &scopes, basic);
            self.tokens
                .lock()
                .unwrap()
                .insert(scope.to_string(), token.clone());
            authorization = Some(format!("Bearer {token}"));
            retried = true;
        }
    }

    /// A token for `scope`: cached, or fetched up front once the realm is known (saves the
    /// 401 round trip per repository).
    fn cached_token(&self, scope: &str) -> Option<String> {
        if let Some(t) = self.tokens.lock().unwrap().get(scope) {
            return Some(t.clone());
        }
        let (realm, service) = self.challenge.lock().unwrap().clone()?;
        let PushAuth::Token { basic } = &self.auth else {
            return None;
        };
        let scopes: Vec<String> = scope.split(' ').map(str::to_string).collect();
        let token = self.fetch_token(&realm, &service, &scopes, basic);
        self.tokens
            .lock()
            .unwrap()
            .insert(scope.to_string(), token.clone());
        Some(token)
    }

    fn fetch_token(&self, realm: &str, service: &str, scopes: &[String], basic: &str) -> String {
        let mut url = format!("{realm}?service={}", percent_encode(service));
        for s in scopes {
            url += &format!("&scope={}", percent_encode(s));
        }
        self.counters.tokens.fetch_add(1, Ordering::Relaxed);
        let a = self.raw("GET", &url, None, b"", Some(&format!("Basic {basic}")));
        if a.status != 200 {
            panic!("token request {url} answered {}: {}", a.status, a.text());
        }
        let v: serde_json::Value = serde_json::from_slice(&a.body)
            .unwrap_or_else(|e| panic!("token response is not JSON ({e}): {}", a.text()));
        v["token"]
            .as_str()
            .or_else(|| v["access_token"].as_str())
            .unwrap_or_else(|| panic!("token response without a token: {}", a.text()))
            .to_string()
    }

    fn raw(
        &self,
        method: &str,
        url: &str,
        content_type: Option<&str>,
        body: &[u8],
        authorization: Option<&str>,
    ) -> Answer {
        let mut b = http::Request::builder().method(method).uri(url);
        if let Some(ct) = content_type {
            b = b.header("Content-Type", ct);
        }
        if let Some(a) = authorization {
            b = b.header("Authorization", a);
        }
        let result = if method == "GET" || method == "HEAD" {
            self.agent.run(b.body(()).expect("request"))
        } else {
            self.agent.run(b.body(body).expect("request"))
        };
        let mut resp = result.unwrap_or_else(|e| panic!("{method} {url}: {e}"));
        let status = resp.status().as_u16();
        let body = resp
            .body_mut()
            .with_config()
            .limit(1 << 30)
            .read_to_vec()
            .unwrap_or_else(|e| panic!("{method} {url}: reading body: {e}"));
        Answer {
            status,
            headers: resp.headers().clone(),
            body,
        }
    }
}

/// `repository:REPO:pull,push`, plus `repository:FROM:pull` when mounting from `from`.
fn push_scope(repo: &str, from: Option<&str>) -> String {
    match from {
        Some(from) => format!("repository:{repo}:pull,push repository:{from}:pull"),
        None => format!("repository:{repo}:pull,push"),
    }
}

/// `Basic` credentials, base64.
pub(crate) fn basic(user: &str, password: &str) -> String {
    STANDARD.encode(format!("{user}:{password}"))
}

/// Parses a `WWW-Authenticate` challenge such as
/// `Bearer realm="http://…/token",service="registry",scope="repository:a:pull"` into its scheme
/// and parameters (quoted values may contain commas).
pub fn parse_challenge(header: &str) -> Option<(String, Vec<(String, String)>)> {
    let header = header.trim();
    let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
    if scheme.is_empty() {
        return None;
    }
    let mut params = Vec::new();
    let mut chars = rest.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if key.is_empty() {
            break;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            while let Some(c) = chars.peek() {
                if *c == ',' {
                    break;
                }
                value.push(*c);
                chars.next();
            }
        }
        params.push((key.trim().to_ascii_lowercase(), value));
    }
    Some((scheme.to_string(), params))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenge() {
        let (s, p) = parse_challenge(
            r#"Bearer realm="http://127.0.0.1:1/token",service="svc",scope="repository:a:pull,push""#,
        )
        .unwrap();
        assert_eq!(s, "Bearer");
        assert_eq!(
            p,
            vec![
                ("realm".into(), "http://127.0.0.1:1/token".into()),
                ("service".into(), "svc".into()),
                ("scope".into(), "repository:a:pull,push".into()),
            ]
        );
        let (s, p) = parse_challenge(r#"Basic realm="x""#).unwrap();
        assert_eq!((s.as_str(), p.len()), ("Basic", 1));
    }
}
