//! A Docker token server (the "token authentication specification" used by Docker Hub, GHCR,
//! Harbor…), enough for distribution's `auth.token` to trust it.
//!
//! At start it makes an ECDSA P-256 key and a self-signed certificate. The registry gets the
//! certificate as its `rootcertbundle`; every JWT carries it in the `x5c` header, and
//! distribution checks that chain against the bundle before it checks the ES256 signature.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;

use crate::http::{self, Reply, Request, Response, Server};

/// The `service` the registry announces in its challenge and expects as the tokens' `aud`.
pub const SERVICE: &str = "keelson-testkit-registry";
/// The tokens' `iss`, which the registry is configured to expect.
pub const ISSUER: &str = "keelson-testkit-token-server";
/// How long a token lives, in seconds.
pub const EXPIRES_IN: u64 = 300;

/// A running token server on 127.0.0.1 that grants every requested action to one user.
pub struct TokenServer {
    server: Server,
    state: Arc<State>,
}

struct State {
    user: String,
    password: String,
    key: EncodingKey,
    /// The certificate, base64 DER, for the `x5c` header.
    x5c: String,
    cert_pem: String,
    requests: AtomicUsize,
    issued: AtomicUsize,
}

impl TokenServer {
    /// Starts a token server that accepts `user`/`password` (HTTP Basic, or the OAuth2 password
    /// grant on POST).
    pub fn start(user: &str, password: &str) -> TokenServer {
        let key = rcgen::KeyPair::generate().expect("generate P-256 key");
        let params = rcgen::CertificateParams::new(vec!["keelson-testkit-token".to_string()])
            .expect("certificate params");
        let cert = params.self_signed(&key).expect("self-sign certificate");
        let state = Arc::new(State {
            user: user.into(),
            password: password.into(),
            key: EncodingKey::from_ec_der(&key.serialize_der()),
            x5c: STANDARD.encode(cert.der()),
            cert_pem: cert.pem(),
            requests: AtomicUsize::new(0),
            issued: AtomicUsize::new(0),
        });
        let handler_state = state.clone();
        let server = Server::start(Arc::new(move |req: &Request| {
            Reply::Send(handle(&handler_state, req))
        }));
        TokenServer { server, state }
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.server.port())
    }

    /// The token endpoint, the challenge's `realm`: `http://127.0.0.1:PORT/token`.
    pub fn realm(&self) -> String {
        format!("{}/token", self.url())
    }

    /// The certificate (PEM) the registry trusts.
    pub fn cert_pem(&self) -> &str {
        &self.state.cert_pem
    }

    /// Requests received so far, answered or refused.
    pub fn requests(&self) -> usize {
        self.state.requests.load(Ordering::SeqCst)
    }

    /// Tokens issued so far.
    pub fn issued(&self) -> usize {
        self.state.issued.load(Ordering::SeqCst)
    }

    /// Signs a token for `subject` granting `scopes` (`repository:NAME:pull,push`, …) without
    /// a request: for tests that need a token directly.
    pub fn issue(&self, subject: &str, scopes: &[&str]) -> String {
        let scopes: Vec<String> = scopes.iter().map(|s| s.to_string()).collect();
        sign(&self.state, subject, &scopes)
    }
}

fn handle(state: &State, req: &Request) -> Response {
    state.requests.fetch_add(1, Ordering::SeqCst);
    if req.path() != "/token" {
        return error(404, "NOT_FOUND", "no such endpoint: use /token");
    }
    // GET carries everything in the query; the OAuth2 POST (containerd) in a form body.
    let mut params = req.query();
    let mut form_user = None;
    match req.method.as_str() {
        "GET" => {}
        "POST" => {
            params.extend(http::parse_form(&String::from_utf8_lossy(&req.body)));
            let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
            if get("grant_type").as_deref() == Some("password") {
                form_user = Some((get("username").unwrap_or_default(), get("password")));
            }
        }
        _ => return error(405, "UNSUPPORTED", "use GET or POST"),
    }
    let creds = form_user.or_else(|| basic_credentials(req));
    let Some((user, password)) = creds else {
        return unauthorized("credentials required");
    };
    if user != state.user || password.as_deref() != Some(state.password.as_str()) {
        return unauthorized("invalid username or password");
    }
    if let Some((_, service)) = params.iter().find(|(k, _)| k == "service")
        && service != SERVICE
    {
        return error(
            400,
            "INVALID_REQUEST",
            &format!("unknown service {service:?}"),
        );
    }
    // Scopes may come as repeated parameters or space-separated in one.
    let scopes: Vec<String> = params
        .iter()
        .filter(|(k, _)| k == "scope")
        .flat_map(|(_, v)| v.split(' ').map(str::to_string).collect::<Vec<_>>())
        .filter(|s| !s.is_empty())
        .collect();
    let token = sign(state, &user, &scopes);
    let body = json!({
        "token": token,
        "access_token": token,
        "expires_in": EXPIRES_IN,
        "issued_at": rfc3339(now()),
    });
    Response::json(200, body.to_string())
}

/// Signs an ES256 JWT with the certificate in `x5c`, granting every requested action.
fn sign(state: &State, subject: &str, scopes: &[String]) -> String {
    state.issued.fetch_add(1, Ordering::SeqCst);
    let access: Vec<serde_json::Value> = scopes
        .iter()
        .filter_map(|s| {
            // type:name:actions, where only the name may contain ':' (a registry host:port).
            let (rest, actions) = s.rsplit_once(':')?;
            let (kind, name) = rest.split_once(':')?;
            let actions: Vec<&str> = actions.split(',').filter(|a| !a.is_empty()).collect();
            Some(json!({"type": kind, "name": name, "actions": actions}))
        })
        .collect();
    let now = now();
    let claims = json!({
        "iss": ISSUER,
        "sub": subject,
        "aud": SERVICE,
        "exp": now + EXPIRES_IN,
        "nbf": now.saturating_sub(10),
        "iat": now,
        "jti": format!("{}-{}", now, state.issued.load(Ordering::SeqCst)),
        "access": access,
    });
    let mut header = Header::new(Algorithm::ES256);
    header.typ = Some("JWT".into());
    header.x5c = Some(vec![state.x5c.clone()]);
    jsonwebtoken::encode(&header, &claims, &state.key).expect("sign token")
}

/// The user and password of an `Authorization: Basic` header.
fn basic_credentials(req: &Request) -> Option<(String, Option<String>)> {
    let value = req.header("authorization")?;
    let (scheme, b64) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(STANDARD.decode(b64.trim()).ok()?).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.into(), Some(password.into())))
}

fn unauthorized(message: &str) -> Response {
    error(401, "UNAUTHORIZED", message)
        .with_header("WWW-Authenticate", "Basic realm=\"keelson-testkit-token\"")
}

fn error(status: u16, code: &str, message: &str) -> Response {
    let body = json!({"errors": [{"code": code, "message": message, "detail": null}]});
    Response::json(status, body.to_string())
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

/// Formats Unix seconds as RFC 3339 UTC (`issued_at`), without a date crate.
pub(crate) fn rfc3339(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_735_689_599), "2024-12-31T23:59:59Z");
    }
}
