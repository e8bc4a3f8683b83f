//! An OCI Distribution v2 client: what keelson asks a registry, and nothing
//! more — tag lists (following `Link` pagination), manifests and config blobs.
//!
//! Written on `ureq` rather than on `oci-client` because keelson must see what
//! that crate hides: its `list_tags` returns one page and ignores `Link`
//! (a registry that paginates would silently lose tags, and a lost tag is a
//! wrong deployment), and its errors drop `Retry-After`. Challenge parsing is
//! `http-auth`'s; credentials come from `docker_credential` (see `credentials`).
//!
//! Every request is counted, retried with backoff when the failure is
//! transient (connection errors, timeouts, 429, 5xx) and honours `Retry-After`.

use std::collections::HashMap;
use std::io::Read;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use base64::Engine as _;
use sha2::{Digest as _, Sha256};

use super::credentials::Credential;

/// A repository as the registry API sees it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RepoRef {
    /// The API base, e.g. `https://ghcr.io` (no trailing slash).
    pub api: String,
    /// The repository's name in the registry, e.g. `acme/api`.
    pub name: String,
    /// The repository as the estate writes it, for messages.
    pub shown: String,
}

impl RepoRef {
    /// The registry part of `api`, for messages and credential lookups.
    pub fn host(&self) -> &str {
        host_of(&self.api)
    }
}

pub fn host_of(api: &str) -> &str {
    let rest = api.split_once("://").map_or(api, |(_, r)| r);
    rest.split('/').next().unwrap_or(rest)
}

#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// The limit on one request, from connecting to the last byte.
    pub timeout: Duration,
    /// How many times a transient failure is retried.
    pub retries: u32,
    /// The first backoff; it doubles with every retry, up to `max_wait`.
    /// A `Retry-After` the registry sends is waited for instead.
    pub backoff: Duration,
    /// The longest keelson waits before a retry, `Retry-After` included; a
    /// registry that asks for longer gets an error instead.
    pub max_wait: Duration,
}

impl ClientOptions {
    /// The wait before retry number `attempt + 1` when the registry sent no
    /// `Retry-After`: `backoff`, doubled with every retry, up to `max_wait`.
    fn backoff_before(&self, attempt: u32) -> Duration {
        self.backoff
            .saturating_mul(1 << attempt.min(16))
            .min(self.max_wait)
    }
}

/// The first backoff after a transient failure, doubled with every retry.
pub(crate) const DEFAULT_BACKOFF: Duration = Duration::from_millis(250);

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            timeout: Duration::from_secs(30),
            retries: 3,
            backoff: DEFAULT_BACKOFF,
            max_wait: Duration::from_secs(60),
        }
    }
}

/// Requests sent, by kind (retries included).
#[derive(Debug, Default)]
pub struct Counts {
    pub tag_pages: AtomicU64,
    pub manifests: AtomicU64,
    pub blobs: AtomicU64,
    pub tokens: AtomicU64,
    pub retries: AtomicU64,
}

impl Counts {
    pub fn total(&self) -> u64 {
        self.tag_pages.load(Ordering::Relaxed)
            + self.manifests.load(Ordering::Relaxed)
            + self.blobs.load(Ordering::Relaxed)
            + self.tokens.load(Ordering::Relaxed)
    }
}

/// A failure to get something from a registry, with what was being done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryError {
    /// The repository as the estate writes it.
    pub repository: String,
    /// The registry API base.
    pub api: String,
    /// What keelson was doing: "listing the tags", "reading the manifest of `1.0`".
    pub doing: String,
    pub kind: ErrorKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorKind {
    /// Could not connect, or the connection broke (after retries).
    Unreachable(String),
    /// No answer within the timeout (after retries).
    Timeout(Duration),
    /// 401: no credentials, or the registry refused them.
    Unauthorized { credentials: Option<String> },
    /// 403.
    Forbidden { credentials: Option<String> },
    /// 404.
    NotFound,
    /// 429 after every retry, or a `Retry-After` longer than keelson waits.
    RateLimited { retry_after: Option<Duration> },
    /// Another status (5xx after retries).
    Status { code: u16, message: String },
    /// An answer keelson cannot read: not JSON, cut short, a wrong digest.
    Malformed(String),
    /// The token server refused or failed.
    TokenRefused { realm: String, detail: String },
}

impl ErrorKind {
    /// Whether trying again may help: the connection, not the answer, failed.
    fn is_transient(&self) -> bool {
        matches!(self, ErrorKind::Unreachable(_) | ErrorKind::Timeout(_))
    }
}

impl std::fmt::Display for RegistryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} of `{}` at {} failed: ",
            self.doing, self.repository, self.api
        )?;
        match &self.kind {
            ErrorKind::Unreachable(why) => write!(f, "the registry is unreachable ({why})"),
            ErrorKind::Timeout(t) => {
                write!(f, "the registry did not answer within {}s", t.as_secs_f64())
            }
            ErrorKind::Unauthorized { credentials: None } => write!(
                f,
                "the registry requires credentials (401), and keelson found none"
            ),
            ErrorKind::Unauthorized {
                credentials: Some(c),
            } => write!(f, "the registry refused the credentials from {c} (401)"),
            ErrorKind::Forbidden { credentials } => write!(
                f,
                "access denied (403){}",
                credentials
                    .as_ref()
                    .map(|c| format!(" with the credentials from {c}"))
                    .unwrap_or_default()
            ),
            ErrorKind::NotFound => write!(f, "not found (404)"),
            ErrorKind::RateLimited { retry_after: None } => {
                write!(f, "rate-limited (429), still after retries")
            }
            ErrorKind::RateLimited {
                retry_after: Some(d),
            } => write!(
                f,
                "rate-limited (429); the registry asks to wait {}s",
                d.as_secs()
            ),
            ErrorKind::Status { code, message } => {
                write!(f, "the registry answered {code}")?;
                if !message.is_empty() {
                    write!(f, ": {message}")?;
                }
                Ok(())
            }
            ErrorKind::Malformed(why) => write!(f, "the answer cannot be read: {why}"),
            ErrorKind::TokenRefused { realm, detail } => {
                write!(f, "the token server {realm} refused: {detail}")
            }
        }
    }
}

impl RegistryError {
    /// What the user can do about it.
    pub fn help(&self) -> String {
        let host = host_of(&self.api);
        match &self.kind {
            ErrorKind::Unreachable(_) | ErrorKind::Timeout(_) => format!(
                "check that {} is reachable from here; to compile without the registry, use `--offline` (replays keelson.lock) or a `snapshot` file",
                self.api
            ),
            ErrorKind::Unauthorized { credentials: None } => format!(
                "log in with `docker login {host}` (keelson reads ~/.docker/config.json and its credential helpers), or give the registry `credentials=\"env:VAR\"` with VAR set to `user:password` where keelson runs"
            ),
            ErrorKind::Unauthorized { .. } | ErrorKind::Forbidden { .. } => format!(
                "check the credentials for {host} and that they may pull `{}`",
                self.repository
            ),
            ErrorKind::NotFound => {
                "check the repository's spelling and registry; a repository that was never pushed does not exist yet".into()
            }
            ErrorKind::RateLimited { .. } => {
                "try again later, or lower the load on the registry (fewer repositories per compile, or a snapshot file)".into()
            }
            ErrorKind::Status { .. } | ErrorKind::Malformed(_) => {
                "the registry misbehaved; try again, and report it to its operators if it persists".into()
            }
            ErrorKind::TokenRefused { .. } => format!("check the credentials for {host}"),
        }
    }
}

/// A response keelson read in full.
struct Answer {
    status: u16,
    headers: ureq::http::HeaderMap,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Method {
    Get,
    Head,
}

#[derive(Clone, Copy)]
enum Kind {
    Tags,
    Manifest,
    Blob,
}

pub(crate) struct Token {
    value: String,
    expires: Instant,
}

/// A manifest as fetched: its bytes, its digest and media type.
#[derive(Debug, Clone)]
pub struct Manifest {
    pub digest: String,
    pub media_type: String,
    pub body: Vec<u8>,
}

pub const MEDIA_OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const MEDIA_OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const MEDIA_DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const MEDIA_DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
const ACCEPT_MANIFESTS: &str = "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";

const LIMIT_TAGS: u64 = 64 << 20;
const LIMIT_MANIFEST: u64 = 4 << 20;
const LIMIT_BLOB: u64 = 8 << 20;

pub struct Client {
    agent: ureq::Agent,
    options: ClientOptions,
    /// Credentials per registry host, with where they came from.
    credentials: HashMap<String, Credential>,
    /// Bearer tokens per (API, repository).
    tokens: Mutex<HashMap<(String, String), Token>>,
    /// Registries that asked for HTTP Basic.
    basic: Mutex<std::collections::HashSet<String>>,
    pub counts: Counts,
}

impl Client {
    pub fn new(options: ClientOptions, credentials: HashMap<String, Credential>) -> Self {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(options.timeout))
            .user_agent(concat!("keelson/", env!("CARGO_PKG_VERSION")))
            // Blob GETs may redirect to storage; credentials stay behind.
            .max_redirects(5)
            .max_idle_connections_per_host(16)
            .build()
            .into();
        Client {
            agent,
            options,
            credentials,
            tokens: Mutex::new(HashMap::new()),
            basic: Mutex::new(Default::default()),
            counts: Counts::default(),
        }
    }

    /// Every tag of the repository, across `Link`-paginated pages, in the
    /// registry's order.
    pub fn tags(&self, repo: &RepoRef) -> Result<Vec<String>, RegistryError> {
        let doing = "listing the tags";
        let mut tags = Vec::new();
        let mut url = format!("{}/v2/{}/tags/list", repo.api, repo.name);
        let mut seen = std::collections::HashSet::new();
        loop {
            if !seen.insert(url.clone()) {
                return Err(self.error(
                    repo,
                    doing,
                    ErrorKind::Malformed(format!("the tag list's `Link` pages loop back to {url}")),
                ));
            }
            let answer = self.send(repo, Method::Get, &url, None, Kind::Tags, LIMIT_TAGS, doing)?;
            let page = tag_page(&answer.body).map_err(|e| {
                self.error(
                    repo,
                    doing,
                    ErrorKind::Malformed(format!("the tag list is not valid JSON: {e}")),
                )
            })?;
            tags.extend(page);
            match answer.header("link").and_then(next_link) {
                Some(next) => url = resolve_url(&repo.api, &url, &next),
                None => break,
            }
        }
        Ok(tags)
    }

    /// The manifest (or index) a tag or digest names, verified against its digest.
    pub fn manifest(&self, repo: &RepoRef, reference: &str) -> Result<Manifest, RegistryError> {
        let doing = format!("reading the manifest of `{reference}`");
        let url = format!("{}/v2/{}/manifests/{reference}", repo.api, repo.name);
        let answer = self.send(
            repo,
            Method::Get,
            &url,
            Some(ACCEPT_MANIFESTS),
            Kind::Manifest,
            LIMIT_MANIFEST,
            &doing,
        )?;
        let digest = sha256_digest(&answer.body);
        let expected = reference
            .starts_with("sha256:")
            .then_some(reference)
            .or(answer.header("docker-content-digest"));
        if let Some(expected) = expected {
            if expected.starts_with("sha256:") && expected != digest {
                return Err(self.error(
                    repo,
                    &doing,
                    ErrorKind::Malformed(format!(
                        "the manifest's bytes hash to {digest}, but the registry says {expected}"
                    )),
                ));
            }
        }
        let media_type = media_type(answer.header("content-type"), &answer.body);
        Ok(Manifest {
            digest,
            media_type,
            body: answer.body,
        })
    }

    /// The digest a tag points at now, from a HEAD request (a GET when the
    /// registry does not send `Docker-Content-Digest`).
    pub fn digest(&self, repo: &RepoRef, tag: &str) -> Result<String, RegistryError> {
        let doing = format!("reading the digest of `{tag}`");
        let url = format!("{}/v2/{}/manifests/{tag}", repo.api, repo.name);
        let answer = self.send(
            repo,
            Method::Head,
            &url,
            Some(ACCEPT_MANIFESTS),
            Kind::Manifest,
            0,
            &doing,
        )?;
        match answer.header("docker-content-digest") {
            Some(d) if crate::rules::digest(d).is_ok() => Ok(d.to_string()),
            _ => Ok(self.manifest(repo, tag)?.digest),
        }
    }

    /// A blob (an image config), verified against its digest.
    pub fn blob(&self, repo: &RepoRef, digest: &str) -> Result<Vec<u8>, RegistryError> {
        let doing = format!("reading the blob {digest}");
        let url = format!("{}/v2/{}/blobs/{digest}", repo.api, repo.name);
        let answer = self.send(
            repo,
            Method::Get,
            &url,
            None,
            Kind::Blob,
            LIMIT_BLOB,
            &doing,
        )?;
        let actual = sha256_digest(&answer.body);
        if actual != digest {
            return Err(self.error(
                repo,
                &doing,
                ErrorKind::Malformed(format!("its bytes hash to {actual}")),
            ));
        }
        Ok(answer.body)
    }

    fn error(&self, repo: &RepoRef, doing: &str, kind: ErrorKind) -> RegistryError {
        RegistryError {
            repository: repo.shown.clone(),
            api: repo.api.clone(),
            doing: doing.to_string(),
            kind,
        }
    }

    fn credential(&self, repo: &RepoRef) -> Option<&Credential> {
        self.credentials.get(repo.host())
    }

    fn origin(&self, repo: &RepoRef) -> Option<String> {
        self.credential(repo).map(|c| c.origin.clone())
    }

    /// The `Authorization` header for a request to `repo`, if keelson has one.
    fn authorization(&self, repo: &RepoRef) -> Option<String> {
        let key = (repo.api.clone(), repo.name.clone());
        if let Some(t) = lock(&self.tokens).get(&key) {
            if t.expires > Instant::now() {
                return Some(format!("Bearer {}", t.value));
            }
        }
        if lock(&self.basic).contains(&repo.api) {
            if let Some(c) = self.credential(repo) {
                return c.basic_header();
            }
        }
        None
    }

    /// One request with authentication and retries; the body read in full.
    #[allow(clippy::too_many_arguments)]
    fn send(
        &self,
        repo: &RepoRef,
        method: Method,
        url: &str,
        accept: Option<&str>,
        kind: Kind,
        limit: u64,
        doing: &str,
    ) -> Result<Answer, RegistryError> {
        let mut authenticated = false;
        let mut attempt = 0u32;
        loop {
            let auth = self.authorization(repo);
            self.count(kind);
            let result = self.call(method, url, accept, auth.as_deref(), limit);
            let answer = match result {
                Ok(a) => a,
                Err(failure) => {
                    if failure.is_transient() && attempt < self.options.retries {
                        self.pause(attempt, None);
                        attempt += 1;
                        continue;
                    }
                    return Err(self.error(repo, doing, failure));
                }
            };
            match answer.status {
                200..=299 => return Ok(answer),
                401 if !authenticated => {
                    authenticated = true;
                    let challenge = answer.header("www-authenticate").map(str::to_string);
                    self.authenticate(repo, challenge.as_deref(), doing)?;
                    continue;
                }
                401 => {
                    return Err(self.error(
                        repo,
                        doing,
                        ErrorKind::Unauthorized {
                            credentials: self.origin(repo),
                        },
                    ));
                }
                403 => {
                    return Err(self.error(
                        repo,
                        doing,
                        ErrorKind::Forbidden {
                            credentials: self.origin(repo),
                        },
                    ));
                }
                404 => return Err(self.error(repo, doing, ErrorKind::NotFound)),
                429 | 500 | 502 | 503 | 504 => {
                    let retry_after = answer.header("retry-after").and_then(parse_retry_after);
                    if retry_after.is_some_and(|d| d > self.options.max_wait) {
                        return Err(self.error(
                            repo,
                            doing,
                            ErrorKind::RateLimited { retry_after },
                        ));
                    }
                    if attempt < self.options.retries {
                        self.pause(attempt, retry_after);
                        attempt += 1;
                        continue;
                    }
                    let kind = if answer.status == 429 {
                        ErrorKind::RateLimited { retry_after: None }
                    } else {
                        ErrorKind::Status {
                            code: answer.status,
                            message: error_message(&answer.body),
                        }
                    };
                    return Err(self.error(repo, doing, kind));
                }
                code => {
                    return Err(self.error(
                        repo,
                        doing,
                        ErrorKind::Status {
                            code,
                            message: error_message(&answer.body),
                        },
                    ));
                }
            }
        }
    }

    fn count(&self, kind: Kind) {
        let c = match kind {
            Kind::Tags => &self.counts.tag_pages,
            Kind::Manifest => &self.counts.manifests,
            Kind::Blob => &self.counts.blobs,
        };
        c.fetch_add(1, Ordering::Relaxed);
    }

    fn pause(&self, attempt: u32, retry_after: Option<Duration>) {
        self.counts.retries.fetch_add(1, Ordering::Relaxed);
        std::thread::sleep(retry_after.unwrap_or_else(|| self.options.backoff_before(attempt)));
    }

    /// One HTTP exchange. Transport failures come back as the error kind they
    /// would be reported as.
    fn call(
        &self,
        method: Method,
        url: &str,
        accept: Option<&str>,
        auth: Option<&str>,
        limit: u64,
    ) -> Result<Answer, ErrorKind> {
        let mut req = match method {
            Method::Get => self.agent.get(url),
            Method::Head => self.agent.head(url),
        };
        if let Some(a) = accept {
            req = req.header("Accept", a);
        }
        if let Some(a) = auth {
            req = req.header("Authorization", a);
        }
        let response = req.call().map_err(|e| self.transport(e))?;
        let (parts, mut body) = response.into_parts();
        let status = parts.status.as_u16();
        let body = if method == Method::Head {
            Vec::new()
        } else {
            // Error bodies are read (bounded) for their message.
            let limit = if (200..300).contains(&status) {
                limit
            } else {
                64 << 10
            };
            self.read_body(&mut body, limit)?
        };
        Ok(Answer {
            status,
            headers: parts.headers,
            body,
        })
    }

    /// Reads a body up to `limit` bytes. A longer one is malformed, not a
    /// reason to retry.
    fn read_body(&self, body: &mut ureq::Body, limit: u64) -> Result<Vec<u8>, ErrorKind> {
        let mut out = Vec::new();
        let mut reader = body.with_config().limit(limit.max(1)).reader();
        match reader.read_to_end(&mut out) {
            Ok(_) => Ok(out),
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                Err(ErrorKind::Timeout(self.options.timeout))
            }
            Err(e) => match e.get_ref().and_then(|i| i.downcast_ref::<ureq::Error>()) {
                Some(ureq::Error::BodyExceedsLimit(n)) => Err(ErrorKind::Malformed(format!(
                    "the answer is larger than {n} bytes"
                ))),
                Some(ureq::Error::Timeout(_)) => Err(ErrorKind::Timeout(self.options.timeout)),
                _ => Err(ErrorKind::Unreachable(format!("reading the answer: {e}"))),
            },
        }
    }

    fn transport(&self, e: ureq::Error) -> ErrorKind {
        match e {
            ureq::Error::Timeout(_) => ErrorKind::Timeout(self.options.timeout),
            ureq::Error::Io(io) if io.kind() == std::io::ErrorKind::TimedOut => {
                ErrorKind::Timeout(self.options.timeout)
            }
            other => ErrorKind::Unreachable(other.to_string()),
        }
    }

    /// Answers a 401's challenge: a bearer token from the realm, or HTTP Basic.
    fn authenticate(
        &self,
        repo: &RepoRef,
        challenge: Option<&str>,
        doing: &str,
    ) -> Result<(), RegistryError> {
        let unauthorized = || {
            self.error(
                repo,
                doing,
                ErrorKind::Unauthorized {
                    credentials: self.origin(repo),
                },
            )
        };
        let Some(header) = challenge else {
            return Err(unauthorized());
        };
        match read_challenge(header).map_err(|kind| self.error(repo, doing, kind))? {
            Challenge::Bearer { realm, service } => {
                let scope = format!("repository:{}:pull", repo.name);
                let token = self.fetch_token(repo, &realm, service.as_deref(), &scope, doing)?;
                lock(&self.tokens).insert((repo.api.clone(), repo.name.clone()), token);
                Ok(())
            }
            Challenge::Basic
                if self
                    .credential(repo)
                    .and_then(Credential::basic_header)
                    .is_some() =>
            {
                lock(&self.basic).insert(repo.api.clone());
                Ok(())
            }
            Challenge::Basic | Challenge::Other => Err(unauthorized()),
        }
    }

    fn fetch_token(
        &self,
        repo: &RepoRef,
        realm: &str,
        service: Option<&str>,
        scope: &str,
        doing: &str,
    ) -> Result<Token, RegistryError> {
        let refused = |detail: String| {
            self.error(
                repo,
                doing,
                ErrorKind::TokenRefused {
                    realm: realm.to_string(),
                    detail,
                },
            )
        };
        let mut attempt = 0;
        let answer = loop {
            self.counts.tokens.fetch_add(1, Ordering::Relaxed);
            let credential = self.credential(repo);
            let sent = match credential.and_then(Credential::identity_token) {
                // Docker's identity tokens are OAuth2 refresh tokens.
                Some(refresh) => self.agent.post(realm).send_form([
                    ("grant_type", "refresh_token"),
                    ("service", service.unwrap_or_default()),
                    ("scope", scope),
                    ("client_id", "keelson"),
                    ("refresh_token", refresh),
                ]),
                None => {
                    let mut req = self.agent.get(realm).query("scope", scope);
                    if let Some(s) = service {
                        req = req.query("service", s);
                    }
                    if let Some(h) = credential.and_then(Credential::basic_header) {
                        req = req.header("Authorization", &h);
                    }
                    req.call()
                }
            };
            let result = sent.map_err(|e| self.transport(e)).and_then(|r| {
                let (parts, mut body) = r.into_parts();
                Ok((parts.status.as_u16(), self.read_body(&mut body, 1 << 20)?))
            });
            match result {
                Ok((status, body)) if (200..300).contains(&status) => break body,
                Ok((401 | 403, _)) => {
                    return Err(self.error(
                        repo,
                        doing,
                        ErrorKind::Unauthorized {
                            credentials: self.origin(repo),
                        },
                    ));
                }
                Ok((status, _))
                    if attempt < self.options.retries
                        && matches!(status, 429 | 500 | 502 | 503 | 504) =>
                {
                    self.pause(attempt, None);
                    attempt += 1;
                }
                Ok((status, body)) => {
                    return Err(refused(format!("{status} {}", error_message(&body))));
                }
                Err(kind) if kind.is_transient() && attempt < self.options.retries => {
                    self.pause(attempt, None);
                    attempt += 1;
                }
                Err(kind) => return Err(self.error(repo, doing, kind)),
            }
        };
        read_token(&answer).map_err(refused)
    }
}

// The pure parts of the client — what it makes of the bytes and headers a
// registry sends — are `pub(crate)` so that `crate::fuzz_entry` can reach
// them: reachable for the fuzz targets (fuzz/, book/src/fuzzing.md).

/// One page of a tag list: its tags (none when `tags` is null or absent).
pub(crate) fn tag_page(body: &[u8]) -> Result<Vec<String>, serde_json::Error> {
    #[derive(serde::Deserialize)]
    struct Page {
        #[serde(default)]
        tags: Option<Vec<String>>,
    }
    let page: Page = serde_json::from_slice(body)?;
    Ok(page.tags.unwrap_or_default())
}

/// A manifest's media type: the `Content-Type` when it names one, else the
/// body's `mediaType`, else empty.
pub(crate) fn media_type(content_type: Option<&str>, body: &[u8]) -> String {
    content_type
        .map(|c| c.split(';').next().unwrap_or(c).trim().to_string())
        .filter(|c| c.starts_with("application/vnd."))
        .or_else(|| {
            serde_json::from_slice::<serde_json::Value>(body)
                .ok()
                .and_then(|v| v.get("mediaType")?.as_str().map(str::to_string))
        })
        .unwrap_or_default()
}

/// What a 401's `WWW-Authenticate` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Challenge {
    /// A bearer token from `realm` (the first Bearer challenge wins).
    Bearer {
        realm: String,
        service: Option<String>,
    },
    /// HTTP Basic, and no Bearer challenge.
    Basic,
    /// Neither.
    Other,
}

pub(crate) fn read_challenge(header: &str) -> Result<Challenge, ErrorKind> {
    let challenges = http_auth::parse_challenges(header).map_err(|e| {
        ErrorKind::Malformed(format!("the WWW-Authenticate header `{header}`: {e}"))
    })?;
    let param = |c: &http_auth::ChallengeRef<'_>, name: &str| {
        c.params
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.to_unescaped())
    };
    if let Some(bearer) = challenges
        .iter()
        .find(|c| c.scheme.eq_ignore_ascii_case("bearer"))
    {
        let Some(realm) = param(bearer, "realm") else {
            return Err(ErrorKind::Malformed(
                "a Bearer challenge without a realm".into(),
            ));
        };
        let service = param(bearer, "service");
        return Ok(Challenge::Bearer { realm, service });
    }
    if challenges
        .iter()
        .any(|c| c.scheme.eq_ignore_ascii_case("basic"))
    {
        return Ok(Challenge::Basic);
    }
    Ok(Challenge::Other)
}

/// A token server's answer: the token and until when to use it. `Err` is the
/// detail of a refusal.
pub(crate) fn read_token(body: &[u8]) -> Result<Token, String> {
    #[derive(serde::Deserialize)]
    struct TokenAnswer {
        #[serde(default)]
        token: Option<String>,
        #[serde(default)]
        access_token: Option<String>,
        #[serde(default)]
        expires_in: Option<u64>,
    }
    let parsed: TokenAnswer =
        serde_json::from_slice(body).map_err(|e| format!("its answer is not valid JSON: {e}"))?;
    let value = parsed
        .token
        .or(parsed.access_token)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| "its answer has no token".to_string())?;
    // Tokens without a lifetime last 60 s (the token spec's default);
    // keelson renews a little early. A lifetime is kept to a day: no compile
    // runs that long, and a token server answering `expires_in` near
    // u64::MAX made `Instant + lifetime` overflow, a panic (see
    // fuzz/regressions/registry_response/7-expires-in-*).
    let lifetime = Duration::from_secs(parsed.expires_in.unwrap_or(60).clamp(10, 86_400) - 5);
    Ok(Token {
        value,
        expires: Instant::now() + lifetime,
    })
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic elsewhere cannot leave these maps inconsistent: every update is
    // a single insert.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

pub fn sha256_digest(bytes: &[u8]) -> String {
    let hash = Sha256::digest(bytes);
    let mut s = String::with_capacity(71);
    s.push_str("sha256:");
    for b in hash {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// The `rel="next"` target of a `Link` header.
pub(crate) fn next_link(header: &str) -> Option<String> {
    for part in header.split(',') {
        let (target, params) = part.split_once(';')?;
        let target = target.trim();
        let is_next = params.split(';').any(|p| {
            let p = p.trim().replace(' ', "");
            p.eq_ignore_ascii_case("rel=\"next\"") || p.eq_ignore_ascii_case("rel=next")
        });
        if is_next && target.starts_with('<') && target.ends_with('>') {
            return Some(target[1..target.len() - 1].to_string());
        }
    }
    None
}

/// A `Link` target made absolute: registries send paths (`/v2/…`).
pub(crate) fn resolve_url(api: &str, current: &str, next: &str) -> String {
    if next.contains("://") {
        next.to_string()
    } else if next.starts_with('/') {
        let scheme_host_end = api
            .find("://")
            .map(|i| i + 3 + api[i + 3..].find('/').unwrap_or(api.len() - i - 3))
            .unwrap_or(api.len());
        format!("{}{next}", &api[..scheme_host_end])
    } else {
        let base = current.rsplit_once('/').map_or(current, |(b, _)| b);
        format!("{base}/{next}")
    }
}

/// `Retry-After`: seconds, or an HTTP date.
pub(crate) fn parse_retry_after(v: &str) -> Option<Duration> {
    let v = v.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = jiff::fmt::rfc2822::parse(v).ok()?.timestamp();
    let now = jiff::Timestamp::now();
    let secs = when.as_second().saturating_sub(now.as_second()).max(0);
    Some(Duration::from_secs(secs as u64))
}

/// The first message of a registry's `{"errors": [...]}` body, if any.
pub(crate) fn error_message(body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct Errors {
        errors: Vec<Entry>,
    }
    #[derive(serde::Deserialize)]
    struct Entry {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
    }
    match serde_json::from_slice::<Errors>(body) {
        Ok(e) => e
            .errors
            .first()
            .map(|e| format!("{} {}", e.code, e.message).trim().to_string())
            .unwrap_or_default(),
        Err(_) => String::from_utf8_lossy(&body[..body.len().min(200)])
            .trim()
            .to_string(),
    }
}

/// Base64 of `user:password`, for HTTP Basic.
pub fn basic(user: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_headers() {
        assert_eq!(
            next_link(r#"</v2/acme/api/tags/list?last=b&n=2>; rel="next""#).as_deref(),
            Some("/v2/acme/api/tags/list?last=b&n=2")
        );
        assert_eq!(next_link(r#"</x>; rel="prev""#), None);
        assert_eq!(
            resolve_url(
                "http://127.0.0.1:5000",
                "http://127.0.0.1:5000/v2/a/tags/list",
                "/v2/a/tags/list?last=x"
            ),
            "http://127.0.0.1:5000/v2/a/tags/list?last=x"
        );
        assert_eq!(
            resolve_url(
                "https://r.example/sub",
                "https://r.example/sub/v2/a/tags/list",
                "https://o.example/x"
            ),
            "https://o.example/x"
        );
    }

    #[test]
    fn backoff_doubles_up_to_the_longest_wait() {
        let options = ClientOptions {
            backoff: Duration::from_millis(250),
            max_wait: Duration::from_secs(1),
            ..ClientOptions::default()
        };
        let waits: Vec<u128> = (0..5)
            .map(|a| options.backoff_before(a).as_millis())
            .collect();
        assert_eq!(waits, [250, 500, 1000, 1000, 1000]);
        let tiny = ClientOptions {
            backoff: Duration::from_millis(1),
            ..options
        };
        assert_eq!(tiny.backoff_before(2), Duration::from_millis(4));
        assert_eq!(tiny.backoff_before(40), Duration::from_secs(1));
    }

    #[test]
    fn retry_after() {
        assert_eq!(parse_retry_after("3"), Some(Duration::from_secs(3)));
        assert_eq!(parse_retry_after("soon"), None);
        assert_eq!(
            parse_retry_after("Mon, 01 Jan 2001 00:00:00 GMT"),
            Some(Duration::ZERO)
        );
    }

    #[test]
    fn token_lifetimes_are_bounded() {
        let t = read_token(br#"{"token":"t","expires_in":18446744073709551615}"#).unwrap();
        assert!(t.expires <= Instant::now() + Duration::from_secs(86_400));
        assert!(read_token(br#"{"access_token":"t","expires_in":0}"#).is_ok());
        assert!(read_token(br#"{"token":""}"#).is_err());
    }

    #[test]
    fn error_messages() {
        assert_eq!(
            error_message(br#"{"errors":[{"code":"NAME_UNKNOWN","message":"repository name not known to registry"}]}"#),
            "NAME_UNKNOWN repository name not known to registry"
        );
        assert_eq!(error_message(b"oops"), "oops");
    }
}
