//! A fault-injecting HTTP/1.1 reverse proxy for putting in front of a registry.
//!
//! It forwards every request (method, target, headers, body) and sends back the upstream's
//! status and headers with the body re-framed by Content-Length. It sets `X-Forwarded-Host` to
//! the client's `Host`, so distribution writes upload `Location`s that point back at the proxy.
//! It also plays the parts a registry plays badly or not at all: tag-list pagination (which
//! distribution 2.8 ignores) and failures (statuses, delays, truncated bodies, hang-ups).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use ureq::config::AutoHeaderValue;
use ureq::http;

use crate::http::{Reply, Request, Response, Server, percent_encode};
use crate::registry::free_port;

/// An HTTP/1.1 reverse proxy in front of an upstream (the registry), on 127.0.0.1, that counts
/// requests and injects faults.
pub struct Proxy {
    server: Server,
    state: Arc<State>,
}

/// A failure to inject into matching requests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fault {
    /// Applies to requests whose path-with-query contains this.
    pub path_contains: String,
    /// How many requests it applies to; `None` for all.
    pub times: Option<usize>,
    /// What happens.
    pub kind: FaultKind,
}

impl Fault {
    /// A fault on every request whose path-with-query contains `path_contains`.
    pub fn new(path_contains: &str, kind: FaultKind) -> Fault {
        Fault {
            path_contains: path_contains.into(),
            times: None,
            kind,
        }
    }

    /// Limits the fault to the next `n` matching requests.
    pub fn times(mut self, n: usize) -> Fault {
        self.times = Some(n);
        self
    }
}

/// What a [`Fault`] does to a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FaultKind {
    /// Answer with this status (JSON body), and `Retry-After` when given, without forwarding.
    Status {
        /// The HTTP status.
        code: u16,
        /// The `Retry-After` value (seconds or an HTTP date), sent verbatim.
        retry_after: Option<String>,
        /// The body, sent as `application/json`.
        body: String,
    },
    /// Wait, then forward normally (for timeout tests).
    Delay(Duration),
    /// Forward, but send only the first half of the body with a Content-Length of that half.
    Truncate,
    /// Read the request and close the connection without answering.
    Hangup,
}

impl FaultKind {
    /// A status with a registry-style `{"errors":[…]}` body and no `Retry-After`.
    pub fn status(code: u16) -> FaultKind {
        FaultKind::Status {
            code,
            retry_after: None,
            body: error_body(code),
        }
    }

    /// A status with a registry-style body and a `Retry-After` header.
    pub fn status_retry_after(code: u16, retry_after: &str) -> FaultKind {
        FaultKind::Status {
            code,
            retry_after: Some(retry_after.into()),
            body: error_body(code),
        }
    }
}

/// One request the proxy received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Logged {
    /// The method, e.g. `GET`.
    pub method: String,
    /// The path with its query, as the client sent it.
    pub path: String,
    /// The status sent, or `None` when the connection was cut ([`FaultKind::Hangup`]).
    pub status: Option<u16>,
}

struct State {
    upstream: String,
    agent: ureq::Agent,
    page_size: Mutex<Option<usize>>,
    faults: Mutex<Vec<Fault>>,
    log: Mutex<Vec<Logged>>,
    requests: AtomicUsize,
}

impl Proxy {
    /// Starts a proxy to `upstream` (e.g. `http://127.0.0.1:5000`) on a free port of 127.0.0.1.
    pub fn start(upstream: &str) -> Proxy {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            // Redirects and content codings are the client's business: pass them through.
            .max_redirects(0)
            .accept_encoding(AutoHeaderValue::None)
            .user_agent(AutoHeaderValue::None)
            .accept(AutoHeaderValue::None)
            .max_idle_connections(256)
            .max_idle_connections_per_host(256)
            .timeout_global(Some(Duration::from_secs(120)))
            .build()
            .into();
        let state = Arc::new(State {
            upstream: upstream.trim_end_matches('/').to_string(),
            agent,
            page_size: Mutex::new(None),
            faults: Mutex::default(),
            log: Mutex::default(),
            requests: AtomicUsize::new(0),
        });
        let handler_state = state.clone();
        let server = Server::start(Arc::new(move |req: &Request| handle(&handler_state, req)));
        Proxy { server, state }
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.server.port())
    }

    /// `127.0.0.1:PORT`
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.server.port())
    }

    /// With `Some(n)`, answers `GET /v2/<name>/tags/list` itself from the upstream's full list,
    /// sorted byte-wise, honouring `last` and `n` (at most `n`), with a `Link: <…>; rel="next"`
    /// while more remain. `None` forwards tag lists untouched.
    pub fn paginate(&self, page_size: Option<usize>) {
        *self.state.page_size.lock().unwrap() = page_size;
    }

    /// Adds a fault rule. Rules are checked in order; the first matching rule with uses left
    /// applies.
    pub fn inject(&self, fault: Fault) {
        self.state.faults.lock().unwrap().push(fault);
    }

    /// Removes every fault rule.
    pub fn clear(&self) {
        self.state.faults.lock().unwrap().clear();
    }

    /// Every request so far, in the order they were answered.
    pub fn log(&self) -> Vec<Logged> {
        self.state.log.lock().unwrap().clone()
    }

    /// Forgets the log (and resets [`Proxy::requests`]).
    pub fn reset_log(&self) {
        let mut log = self.state.log.lock().unwrap();
        log.clear();
        self.state.requests.store(0, Ordering::SeqCst);
    }

    /// The number of requests since start or the last [`Proxy::reset_log`].
    pub fn requests(&self) -> usize {
        self.state.requests.load(Ordering::SeqCst)
    }

    /// The number of logged requests whose path-with-query contains `path_contains`.
    pub fn count(&self, path_contains: &str) -> usize {
        let log = self.state.log.lock().unwrap();
        log.iter()
            .filter(|l| l.path.contains(path_contains))
            .count()
    }

    /// The number of logged requests with `method` whose path contains `path_contains`.
    pub fn count_method(&self, method: &str, path_contains: &str) -> usize {
        let log = self.state.log.lock().unwrap();
        log.iter()
            .filter(|l| l.method.eq_ignore_ascii_case(method) && l.path.contains(path_contains))
            .count()
    }
}

/// `http://127.0.0.1:PORT` where nothing listens: a registry that is down.
pub fn closed_port_url() -> String {
    format!("http://127.0.0.1:{}", free_port())
}

fn handle(state: &State, req: &Request) -> Reply {
    state.requests.fetch_add(1, Ordering::SeqCst);
    let mut truncate = false;
    match take_fault(state, &req.target) {
        Some(FaultKind::Status {
            code,
            retry_after,
            body,
        }) => {
            let mut resp = Response::json(code, body);
            if let Some(r) = retry_after {
                resp = resp.with_header("Retry-After", &r);
            }
            // A registry error also says which API it is.
            resp = resp.with_header("Docker-Distribution-API-Version", "registry/2.0");
            return send(state, req, resp);
        }
        Some(FaultKind::Delay(d)) => std::thread::sleep(d),
        Some(FaultKind::Truncate) => truncate = true,
        Some(FaultKind::Hangup) => {
            record(state, req, None);
            return Reply::Hangup;
        }
        None => {}
    }
    let page_size = *state.page_size.lock().unwrap();
    let mut resp = match (page_size, tags_list_name(req)) {
        (Some(page), Some(name)) => paginate(state, req, name, page),
        _ => forward(state, req),
    };
    if truncate {
        let half = resp.body.len() / 2;
        resp.body.truncate(half);
    }
    send(state, req, resp)
}

fn send(state: &State, req: &Request, resp: Response) -> Reply {
    // Logged before the write, so a client that has its answer also sees it in the log.
    record(state, req, Some(resp.status));
    Reply::Send(resp)
}

fn record(state: &State, req: &Request, status: Option<u16>) {
    state.log.lock().unwrap().push(Logged {
        method: req.method.clone(),
        path: req.target.clone(),
        status,
    });
}

/// The first matching rule with uses left, counting one use down.
fn take_fault(state: &State, target: &str) -> Option<FaultKind> {
    let mut faults = state.faults.lock().unwrap();
    let rule = faults
        .iter_mut()
        .find(|f| target.contains(&f.path_contains) && f.times != Some(0))?;
    if let Some(n) = &mut rule.times {
        *n -= 1;
    }
    Some(rule.kind.clone())
}

/// The repository name of a `GET /v2/<name>/tags/list`.
fn tags_list_name(req: &Request) -> Option<&str> {
    if req.method != "GET" {
        return None;
    }
    let name = req
        .path()
        .strip_prefix("/v2/")?
        .strip_suffix("/tags/list")?;
    (!name.is_empty()).then_some(name)
}

/// Headers a proxy must not forward (RFC 9110 §7.6.1), plus the framing it redoes itself.
fn hop_by_hop(name: &str) -> bool {
    matches!(
        name.to_ascii_lowercase().as_str(),
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
            | "host"
            | "content-length"
    )
}

fn forward(state: &State, req: &Request) -> Response {
    let mut b = http::Request::builder()
        .method(req.method.as_str())
        .uri(format!("{}{}", state.upstream, req.target));
    for (k, v) in &req.headers {
        if !hop_by_hop(k) {
            b = b.header(k.as_str(), v.as_str());
        }
    }
    if let Some(host) = req.header("host")
        && req.header("x-forwarded-host").is_none()
    {
        b = b.header("X-Forwarded-Host", host);
    }
    let no_body = req.body.is_empty() && matches!(req.method.as_str(), "GET" | "HEAD" | "DELETE");
    let result = match (no_body, b) {
        (true, b) => b.body(()).map(|r| state.agent.run(r)),
        (false, b) => b.body(req.body.as_slice()).map(|r| state.agent.run(r)),
    };
    let mut upstream = match result {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => return bad_gateway(&format!("upstream {}: {e}", state.upstream)),
        Err(e) => return bad_gateway(&format!("cannot forward request: {e}")),
    };
    let status = upstream.status().as_u16();
    let head = req.method == "HEAD";
    let headers: Vec<(String, String)> = upstream
        .headers()
        .iter()
        .filter(|(k, _)| !hop_by_hop(k.as_str()) || (head && k.as_str() == "content-length"))
        .map(|(k, v)| {
            (
                k.to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let body = if head {
        Vec::new()
    } else {
        match upstream
            .body_mut()
            .with_config()
            .limit(1 << 32)
            .read_to_vec()
        {
            Ok(b) => b,
            Err(e) => return bad_gateway(&format!("reading upstream body: {e}")),
        }
    };
    Response {
        status,
        headers,
        body,
    }
}

/// Answers a tag list from the upstream's whole list, one page at a time.
fn paginate(state: &State, req: &Request, name: &str, page: usize) -> Response {
    let mut b = http::Request::builder()
        .method("GET")
        .uri(format!("{}/v2/{name}/tags/list", state.upstream))
        .header("Accept", "application/json");
    if let Some(a) = req.header("authorization") {
        b = b.header("Authorization", a);
    }
    let mut upstream = match state.agent.run(b.body(()).expect("request")) {
        Ok(r) => r,
        Err(e) => return bad_gateway(&format!("upstream {}: {e}", state.upstream)),
    };
    let status = upstream.status().as_u16();
    let headers: Vec<(String, String)> = upstream
        .headers()
        .iter()
        .filter(|(k, _)| !hop_by_hop(k.as_str()))
        .map(|(k, v)| {
            (
                k.to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let body = upstream
        .body_mut()
        .with_config()
        .limit(1 << 32)
        .read_to_vec()
        .unwrap_or_default();
    if status != 200 {
        // 401 with its challenge, 404 NAME_UNKNOWN, …: the client sees the registry's answer.
        return Response {
            status,
            headers,
            body,
        };
    }
    let v: serde_json::Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return bad_gateway(&format!("upstream tag list is not JSON: {e}")),
    };
    let mut tags: Vec<String> = v["tags"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|t| t.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    tags.sort();
    tags.dedup();
    let query = req.query();
    let get = |k: &str| query.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let n = get("n")
        .and_then(|n| n.parse::<usize>().ok())
        .map_or(page, |n| n.min(page));
    let start = match get("last") {
        Some(last) => tags.partition_point(|t| t.as_str() <= last),
        None => 0,
    };
    let rest = &tags[start..];
    let shown = &rest[..n.min(rest.len())];
    let mut resp = Response::json(200, json!({"name": name, "tags": shown}).to_string())
        .with_header("Docker-Distribution-API-Version", "registry/2.0");
    if rest.len() > shown.len()
        && let Some(last) = shown.last()
    {
        resp = resp.with_header(
            "Link",
            &format!(
                "</v2/{name}/tags/list?last={}&n={n}>; rel=\"next\"",
                percent_encode(last)
            ),
        );
    }
    resp
}

fn bad_gateway(message: &str) -> Response {
    let body = json!({"errors": [{"code": "UNAVAILABLE", "message": message, "detail": null}]});
    Response::json(502, body.to_string())
}

/// A distribution-style error body for `code`.
fn error_body(code: u16) -> String {
    let (name, message) = match code {
        400 => ("UNSUPPORTED", "the operation is unsupported"),
        401 => ("UNAUTHORIZED", "authentication required"),
        403 => ("DENIED", "requested access to the resource is denied"),
        404 => ("NAME_UNKNOWN", "repository name not known to registry"),
        405 => ("UNSUPPORTED", "the operation is unsupported"),
        429 => ("TOOMANYREQUESTS", "too many requests"),
        500 => ("UNKNOWN", "unknown error"),
        502..=504 => ("UNAVAILABLE", "service unavailable"),
        _ => ("UNKNOWN", "unknown error"),
    };
    json!({"errors": [{"code": name, "message": message, "detail": null}]}).to_string()
}
