//! A minimal HTTP/1.1 server shared by the token server and the fault proxy.
//!
//! Thread per connection with keep-alive: the benchmark sends ~200k requests through the proxy,
//! and a new TCP connection per request would dominate. Request bodies may be sized or chunked;
//! responses are always sent with a Content-Length so clients see exactly what the handler built.

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// How long an idle keep-alive connection is kept before the server closes it.
const IDLE_TIMEOUT: Duration = Duration::from_secs(300);
/// Upper bound on a request head, so a broken client cannot make us buffer forever.
const MAX_HEAD: usize = 64 * 1024;

/// One parsed request.
pub(crate) struct Request {
    pub method: String,
    /// The request target as sent: path with query.
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The client asked to close the connection after this exchange.
    pub close: bool,
}

impl Request {
    /// The first value of a header, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The target without its query.
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }

    /// The decoded query parameters, in order (repeated names kept).
    pub fn query(&self) -> Vec<(String, String)> {
        match self.target.split_once('?') {
            Some((_, q)) => parse_form(q),
            None => Vec::new(),
        }
    }
}

/// A response built by a handler.
pub(crate) struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// A response with a JSON body.
    pub fn json(status: u16, body: String) -> Response {
        Response {
            status,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: body.into_bytes(),
        }
    }

    /// Adds a header.
    pub fn with_header(mut self, name: &str, value: &str) -> Response {
        self.headers.push((name.into(), value.into()));
        self
    }
}

/// What a handler wants done with the connection.
pub(crate) enum Reply {
    Send(Response),
    /// Close the connection without answering.
    Hangup,
}

pub(crate) type Handler = Arc<dyn Fn(&Request) -> Reply + Send + Sync>;

/// A running server on 127.0.0.1; stops accepting and cuts open connections on drop.
pub(crate) struct Server {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    conns: Arc<Mutex<HashMap<u64, TcpStream>>>,
    accept: Option<JoinHandle<()>>,
}

impl Server {
    /// Binds a free port on 127.0.0.1 and serves `handler` on it.
    pub fn start(handler: Handler) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local_addr");
        let stop = Arc::new(AtomicBool::new(false));
        let conns: Arc<Mutex<HashMap<u64, TcpStream>>> = Arc::default();
        let accept = {
            let (stop, conns) = (stop.clone(), conns.clone());
            std::thread::Builder::new()
                .name(format!("testkit-accept-{}", addr.port()))
                .spawn(move || accept_loop(listener, handler, stop, conns))
                .expect("spawn accept thread")
        };
        Server {
            addr,
            stop,
            conns,
            accept: Some(accept),
        }
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept() so the thread sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
        for (_, c) in self.conns.lock().unwrap().drain() {
            let _ = c.shutdown(Shutdown::Both);
        }
    }
}

fn accept_loop(
    listener: TcpListener,
    handler: Handler,
    stop: Arc<AtomicBool>,
    conns: Arc<Mutex<HashMap<u64, TcpStream>>>,
) {
    let next_id = AtomicU64::new(0);
    for stream in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let Ok(stream) = stream else { continue };
        let id = next_id.fetch_add(1, Ordering::Relaxed);
        if let Ok(clone) = stream.try_clone() {
            conns.lock().unwrap().insert(id, clone);
        }
        let (handler, stop, conns) = (handler.clone(), stop.clone(), conns.clone());
        let spawned = std::thread::Builder::new()
            .name("testkit-conn".into())
            .spawn(move || {
                serve_connection(stream, &handler, &stop);
                conns.lock().unwrap().remove(&id);
            });
        if spawned.is_err() {
            // Out of threads: the connection is dropped, which the client sees as a reset.
            continue;
        }
    }
}

fn serve_connection(stream: TcpStream, handler: &Handler, stop: &AtomicBool) {
    let _ = stream.set_nodelay(true);
    let _ = stream.set_read_timeout(Some(IDLE_TIMEOUT));
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    loop {
        let req = match read_request(&mut reader, &mut writer) {
            Ok(Some(r)) => r,
            Ok(None) => return,
            Err(_) => {
                let _ = writer.write_all(
                    b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
                return;
            }
        };
        if stop.load(Ordering::SeqCst) {
            return;
        }
        match handler(&req) {
            Reply::Hangup => {
                let _ = writer.shutdown(Shutdown::Both);
                return;
            }
            Reply::Send(resp) => {
                let close = req.close;
                let head_only = req.method.eq_ignore_ascii_case("HEAD");
                if write_response(&mut writer, &resp, head_only, close).is_err() || close {
                    let _ = writer.shutdown(Shutdown::Both);
                    return;
                }
            }
        }
    }
}

/// Reads one request; `Ok(None)` when the client closed the connection between requests.
/// Answers `Expect: 100-continue` (curl sends it for bodies over 1 KiB and would otherwise wait
/// a second before sending the body).
fn read_request(r: &mut impl BufRead, w: &mut impl Write) -> io::Result<Option<Request>> {
    let mut line = String::new();
    // Tolerate stray empty lines between requests (RFC 9112 §2.2).
    loop {
        line.clear();
        if r.read_line(&mut line)? == 0 {
            return Ok(None);
        }
        if !line.trim().is_empty() {
            break;
        }
    }
    let mut parts = line.split_whitespace();
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(bad("malformed request line"));
    };
    // A client that treats us as a forward proxy sends the absolute form: keep path and query.
    let target = match target.split_once("://") {
        Some((_, rest)) if target.starts_with("http") => rest.find('/').map_or("/", |i| &rest[i..]),
        _ => target,
    };
    let (method, target, version) = (method.to_string(), target.to_string(), version.to_string());
    let mut headers = Vec::new();
    let mut head_len = line.len();
    loop {
        line.clear();
        if r.read_line(&mut line)? == 0 {
            return Err(bad("eof in headers"));
        }
        head_len += line.len();
        if head_len > MAX_HEAD {
            return Err(bad("request head too large"));
        }
        let l = line.trim_end_matches(['\r', '\n']);
        if l.is_empty() {
            break;
        }
        let (k, v) = l.split_once(':').ok_or_else(|| bad("malformed header"))?;
        headers.push((k.trim().to_string(), v.trim().to_string()));
    }
    let get = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.to_ascii_lowercase())
    };
    let connection = get("connection").unwrap_or_default();
    let close = if version == "HTTP/1.0" {
        !connection.contains("keep-alive")
    } else {
        connection.contains("close")
    };
    if get("expect").is_some_and(|e| e == "100-continue") {
        w.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
        w.flush()?;
    }
    let body = if get("transfer-encoding").is_some_and(|t| t.contains("chunked")) {
        read_chunked(r)?
    } else if let Some(len) = get("content-length") {
        let len: usize = len.parse().map_err(|_| bad("bad content-length"))?;
        let mut body = vec![0; len];
        r.read_exact(&mut body)?;
        body
    } else {
        Vec::new()
    };
    Ok(Some(Request {
        method,
        target,
        headers,
        body,
        close,
    }))
}

fn read_chunked(r: &mut impl BufRead) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        r.read_line(&mut line)?;
        let size = line.trim().split(';').next().unwrap_or("");
        let size = usize::from_str_radix(size, 16).map_err(|_| bad("bad chunk size"))?;
        if size == 0 {
            // Skip trailers up to the empty line.
            loop {
                line.clear();
                if r.read_line(&mut line)? == 0 || line.trim().is_empty() {
                    return Ok(body);
                }
            }
        }
        let start = body.len();
        body.resize(start + size, 0);
        r.read_exact(&mut body[start..])?;
        line.clear();
        r.read_line(&mut line)?; // the CRLF after the chunk
    }
}

/// Writes a response in one buffer (with TCP_NODELAY a split head and body would cost a packet
/// each). For HEAD the handler's headers are sent as they are, so an upstream Content-Length
/// survives; otherwise Content-Length is the body's length.
fn write_response(
    w: &mut impl Write,
    resp: &Response,
    head_only: bool,
    close: bool,
) -> io::Result<()> {
    let mut out = Vec::with_capacity(256 + resp.body.len());
    write!(out, "HTTP/1.1 {} {}\r\n", resp.status, reason(resp.status))?;
    let no_body = head_only || resp.status < 200 || resp.status == 204 || resp.status == 304;
    for (k, v) in &resp.headers {
        let lk = k.to_ascii_lowercase();
        if lk == "connection" || lk == "transfer-encoding" {
            continue;
        }
        if lk == "content-length" && !head_only {
            continue;
        }
        write!(out, "{k}: {v}\r\n")?;
    }
    if !no_body {
        write!(out, "Content-Length: {}\r\n", resp.body.len())?;
    }
    if close {
        out.extend_from_slice(b"Connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    if !no_body {
        out.extend_from_slice(&resp.body);
    }
    w.write_all(&out)?;
    w.flush()
}

fn bad(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.to_string())
}

/// The standard reason phrase (clients ignore it, people reading logs do not).
pub(crate) fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        416 => "Range Not Satisfiable",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Status",
    }
}

/// Parses `a=b&c=d` (query strings and form bodies), decoding `%XX` and `+`.
pub(crate) fn parse_form(s: &str) -> Vec<(String, String)> {
    s.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

/// Decodes `%XX` escapes and `+` (as space).
pub(crate) fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h * 16 + l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

/// Encodes everything but RFC 3986 unreserved characters.
pub(crate) fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for &c in s.as_bytes() {
        if c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~') {
            out.push(c as char);
        } else {
            out.push_str(&format!("%{c:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_round_trip() {
        assert_eq!(percent_encode("a:b/c d"), "a%3Ab%2Fc%20d");
        assert_eq!(percent_decode("a%3Ab%2Fc+d%20e"), "a:b/c d e");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%4"), "%4");
    }

    #[test]
    fn chunked_request() {
        let raw = b"PUT /x?a=1 HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n";
        let mut out = Vec::new();
        let req = read_request(&mut &raw[..], &mut out).unwrap().unwrap();
        assert!(out.is_empty());
        assert_eq!(req.body, b"abcde");
        assert_eq!(req.path(), "/x");
        assert_eq!(req.query(), vec![("a".into(), "1".into())]);
        assert!(!req.close);
    }

    #[test]
    fn absolute_form() {
        let raw = b"GET http://127.0.0.1:5000/v2/a/tags/list?n=1 HTTP/1.1\r\n\r\n";
        let req = read_request(&mut &raw[..], &mut Vec::new())
            .unwrap()
            .unwrap();
        assert_eq!(req.target, "/v2/a/tags/list?n=1");
    }

    #[test]
    fn expect_continue() {
        let raw = b"PUT /x HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi";
        let mut out = Vec::new();
        let req = read_request(&mut &raw[..], &mut out).unwrap().unwrap();
        assert_eq!(out, b"HTTP/1.1 100 Continue\r\n\r\n");
        assert_eq!(req.body, b"hi");
        assert!(req.close);
    }
}
