//! The fault proxy in front of a real registry.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::common::{ALL_MANIFESTS, Got, basic, call, call_with, get};
use keelson_testkit::{
    Auth, Fault, FaultKind, Logged, Proxy, Registry, TestImage, closed_port_url, sha256_digest,
    test_agent,
};

const CREATED: &str = "2024-01-01T00:00:00Z";

fn text(got: &Got) -> String {
    String::from_utf8_lossy(&got.body).into_owned()
}

#[test]
fn pass_through() {
    let reg = Registry::start(Auth::None);
    let digest = reg.push("app", "v1", &TestImage::linux_amd64(CREATED));
    let proxy = Proxy::start(&reg.url());
    assert_eq!(proxy.url(), format!("http://{}", proxy.host()));

    let url = format!("{}/v2/app/manifests/v1", proxy.url());
    let got = call("GET", &url, &ALL_MANIFESTS, None);
    assert_eq!(got.status, 200);
    assert_eq!(got.header("docker-content-digest"), Some(digest.as_str()));
    assert_eq!(
        got.header("content-type"),
        Some("application/vnd.oci.image.manifest.v1+json")
    );
    assert_eq!(
        got.header("docker-distribution-api-version"),
        Some("registry/2.0")
    );
    assert_eq!(sha256_digest(&got.body), digest);

    // HEAD: the upstream's Content-Length, no body.
    let head = call("HEAD", &url, &ALL_MANIFESTS, None);
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    assert_eq!(
        head.header("content-length"),
        Some(got.body.len().to_string().as_str())
    );

    // Errors pass through with their bodies.
    let missing = call(
        "GET",
        &format!("{}/v2/app/manifests/nope", proxy.url()),
        &ALL_MANIFESTS,
        None,
    );
    assert_eq!(missing.status, 404);
    assert_eq!(missing.json()["errors"][0]["code"], "MANIFEST_UNKNOWN");

    // An upload through the proxy: distribution's Location points back at the proxy.
    let agent = test_agent();
    let resp = agent
        .post(format!("{}/v2/app/blobs/uploads/", proxy.url()))
        .send(&b""[..])
        .unwrap();
    assert_eq!(resp.status().as_u16(), 202);
    let location = resp.headers()["location"].to_str().unwrap().to_string();
    assert!(
        location.starts_with(&proxy.url()),
        "{location} should go through {}",
        proxy.url()
    );
    let blob = b"hello through the proxy";
    let blob_digest = sha256_digest(blob);
    let sep = if location.contains('?') { '&' } else { '?' };
    let resp = agent
        .put(format!("{location}{sep}digest={blob_digest}"))
        .header("Content-Type", "application/octet-stream")
        .send(&blob[..])
        .unwrap();
    assert_eq!(resp.status().as_u16(), 201);
    let got = get(&format!("{}/v2/app/blobs/{blob_digest}", reg.url()));
    assert_eq!(got.body, blob);

    let log = proxy.log();
    assert_eq!(
        log[..3],
        [
            Logged {
                method: "GET".into(),
                path: "/v2/app/manifests/v1".into(),
                status: Some(200)
            },
            Logged {
                method: "HEAD".into(),
                path: "/v2/app/manifests/v1".into(),
                status: Some(200)
            },
            Logged {
                method: "GET".into(),
                path: "/v2/app/manifests/nope".into(),
                status: Some(404)
            },
        ]
    );
    assert_eq!(proxy.requests(), 5);
    assert_eq!(proxy.count("/manifests/"), 3);
    assert_eq!(proxy.count_method("HEAD", "/v2/"), 1);
    proxy.reset_log();
    assert!(proxy.log().is_empty());
    assert_eq!(proxy.requests(), 0);
}

#[test]
fn pass_through_auth_challenge() {
    let reg = Registry::start(Auth::token("robot", "pa55"));
    reg.push("app", "v1", &TestImage::linux_amd64(CREATED));
    let proxy = Proxy::start(&reg.url());
    let url = format!("{}/v2/app/tags/list", proxy.url());
    let got = get(&url);
    assert_eq!(got.status, 401);
    let challenge = got.header("www-authenticate").unwrap();
    assert!(challenge.starts_with("Bearer realm="), "{challenge}");
    assert!(
        challenge.contains("scope=\"repository:app:pull\""),
        "{challenge}"
    );

    // With pagination on too: the Authorization header goes upstream.
    proxy.paginate(Some(10));
    assert_eq!(get(&url).status, 401);
    let token = reg
        .token_server()
        .unwrap()
        .issue("robot", &["repository:app:pull"]);
    let got = call("GET", &url, &[], Some(&format!("Bearer {token}")));
    assert_eq!(got.status, 200, "{}", text(&got));
    assert_eq!(got.json()["tags"], serde_json::json!(["v1"]));
}

#[test]
fn pagination_with_link() {
    let reg = Registry::start(Auth::basic("u", "p"));
    // Names whose byte order differs from numeric order.
    let tags: Vec<String> = (0..250).map(|i| format!("{i}")).collect();
    let jobs = tags
        .iter()
        .map(|t| {
            let img = TestImage::linux_amd64(CREATED).salt(t);
            ("paged/app".to_string(), t.clone(), img)
        })
        .collect();
    reg.push_many(jobs, 4);
    let proxy = Proxy::start(&reg.url());
    proxy.paginate(Some(100));
    let auth = basic("u", "p");

    let walk = |first: &str| -> (Vec<String>, Vec<usize>) {
        let mut next = Some(first.to_string());
        let (mut seen, mut pages) = (Vec::new(), Vec::new());
        while let Some(path) = next.take() {
            let got = call("GET", &format!("{}{path}", proxy.url()), &[], Some(&auth));
            assert_eq!(got.status, 200, "{path}: {}", text(&got));
            let page: Vec<String> = got.json()["tags"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t.as_str().unwrap().to_string())
                .collect();
            pages.push(page.len());
            seen.extend(page);
            if let Some(link) = got.header("link") {
                assert!(link.ends_with(">; rel=\"next\""), "{link}");
                next = Some(link[1..link.find('>').unwrap()].to_string());
            }
            assert!(pages.len() < 100, "Link loop");
        }
        (seen, pages)
    };
    let mut sorted = tags.clone();
    sorted.sort();

    let (seen, pages) = walk("/v2/paged/app/tags/list");
    assert_eq!(pages, [100, 100, 50]);
    assert_eq!(seen, sorted, "every tag once, byte order");

    // The client's n, capped at the page size.
    let (seen, pages) = walk("/v2/paged/app/tags/list?n=30");
    assert_eq!(pages.len(), 9);
    assert!(pages[..8].iter().all(|&p| p == 30));
    assert_eq!(seen, sorted);
    let (_, pages) = walk("/v2/paged/app/tags/list?n=1000");
    assert_eq!(pages, [100, 100, 50]);
    // A start in the middle.
    let (seen, _) = walk(&format!("/v2/paged/app/tags/list?last={}", sorted[199]));
    assert_eq!(seen, sorted[200..]);
    let first = call(
        "GET",
        &format!("{}/v2/paged/app/tags/list?n=2", proxy.url()),
        &[],
        Some(&auth),
    );
    assert_eq!(
        first.header("link"),
        Some(
            format!(
                "</v2/paged/app/tags/list?last={}&n=2>; rel=\"next\"",
                sorted[1]
            )
            .as_str()
        )
    );

    // Off again: the registry's own unpaginated answer.
    proxy.paginate(None);
    let got = call(
        "GET",
        &format!("{}/v2/paged/app/tags/list", proxy.url()),
        &[],
        Some(&auth),
    );
    assert_eq!(got.json()["tags"].as_array().unwrap().len(), 250);
    assert!(got.header("link").is_none());
}

#[test]
fn status_faults_and_times() {
    let reg = Registry::start(Auth::None);
    reg.push("app", "v1", &TestImage::linux_amd64(CREATED));
    let proxy = Proxy::start(&reg.url());
    let url = format!("{}/v2/app/manifests/v1", proxy.url());

    proxy.inject(Fault::new("/manifests/", FaultKind::status_retry_after(429, "7")).times(2));
    proxy.inject(Fault::new("/manifests/", FaultKind::status(503)).times(1));
    let statuses: Vec<u16> = (0..4)
        .map(|_| {
            let got = call("GET", &url, &ALL_MANIFESTS, None);
            if got.status == 429 {
                assert_eq!(got.header("retry-after"), Some("7"));
                assert_eq!(got.json()["errors"][0]["code"], "TOOMANYREQUESTS");
            }
            got.status
        })
        .collect();
    assert_eq!(statuses, [429, 429, 503, 200]);

    // Only matching paths; custom bodies as given.
    proxy.inject(Fault {
        path_contains: "/tags/list".into(),
        times: None,
        kind: FaultKind::Status {
            code: 403,
            retry_after: None,
            body: r#"{"errors":[{"code":"DENIED","message":"nope"}]}"#.into(),
        },
    });
    assert_eq!(call("GET", &url, &ALL_MANIFESTS, None).status, 200);
    for _ in 0..3 {
        let got = get(&format!("{}/v2/app/tags/list", proxy.url()));
        assert_eq!(got.status, 403);
        assert_eq!(got.json()["errors"][0]["message"], "nope");
    }
    proxy.clear();
    assert_eq!(
        get(&format!("{}/v2/app/tags/list", proxy.url())).status,
        200
    );
    let statuses: Vec<Option<u16>> = proxy.log().iter().map(|l| l.status).collect();
    assert_eq!(
        statuses,
        [429, 429, 503, 200, 200, 403, 403, 403, 200].map(Some)
    );
}

#[test]
fn delay_truncate_hangup() {
    let reg = Registry::start(Auth::None);
    let digest = reg.push("app", "v1", &TestImage::linux_amd64(CREATED));
    let proxy = Proxy::start(&reg.url());
    let url = format!("{}/v2/app/manifests/v1", proxy.url());

    // Delay: a client with a short timeout gives up; a patient one gets the answer.
    proxy.inject(Fault::new("/manifests/", FaultKind::Delay(Duration::from_millis(600))).times(2));
    let impatient: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_millis(150)))
        .build()
        .into();
    let started = Instant::now();
    let err = call_with(&impatient, "GET", &url, &ALL_MANIFESTS, None)
        .err()
        .expect("timed out");
    assert!(matches!(err, ureq::Error::Timeout(_)), "{err:?}");
    assert!(started.elapsed() < Duration::from_millis(500));
    let started = Instant::now();
    let got = call("GET", &url, &ALL_MANIFESTS, None);
    assert_eq!(got.status, 200);
    assert!(started.elapsed() >= Duration::from_millis(600));

    // Truncate: half the body, with a matching Content-Length, so the JSON is cut.
    let full = call("GET", &url, &ALL_MANIFESTS, None).body;
    proxy.inject(Fault::new("/manifests/", FaultKind::Truncate).times(1));
    let got = call("GET", &url, &ALL_MANIFESTS, None);
    assert_eq!(got.status, 200);
    assert_eq!(got.body, full[..full.len() / 2]);
    assert_eq!(
        got.header("content-length"),
        Some((full.len() / 2).to_string().as_str())
    );
    assert!(serde_json::from_slice::<serde_json::Value>(&got.body).is_err());
    assert_eq!(got.header("docker-content-digest"), Some(digest.as_str()));

    // Hangup: the connection closes without an answer.
    proxy.reset_log();
    proxy.inject(Fault::new("/manifests/", FaultKind::Hangup).times(1));
    let err = call_with(&test_agent(), "GET", &url, &ALL_MANIFESTS, None)
        .err()
        .expect("connection cut");
    eprintln!("hangup seen as: {err}");
    assert!(
        matches!(err, ureq::Error::Io(_) | ureq::Error::Protocol(_)),
        "{err:?}"
    );
    assert_eq!(call("GET", &url, &ALL_MANIFESTS, None).status, 200);
    let statuses: Vec<Option<u16>> = proxy.log().iter().map(|l| l.status).collect();
    assert_eq!(statuses, [None, Some(200)]);
}

#[test]
fn down_registry() {
    let url = closed_port_url();
    let err = call_with(&test_agent(), "GET", &format!("{url}/v2/"), &[], None)
        .err()
        .expect("nothing listens");
    assert!(matches!(err, ureq::Error::Io(_)), "{err:?}");

    // A proxy whose upstream is down answers 502, as a real one would.
    let proxy = Proxy::start(&url);
    assert_eq!(get(&format!("{}/v2/", proxy.url())).status, 502);
}

#[test]
fn keep_alive_and_close() {
    let reg = Registry::start(Auth::None);
    reg.push("app", "v1", &TestImage::linux_amd64(CREATED));
    let proxy = Proxy::start(&reg.url());
    let mut stream = TcpStream::connect(proxy.host()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let read_response = |reader: &mut BufReader<TcpStream>| -> (String, Vec<String>, Vec<u8>) {
        let mut status = String::new();
        reader.read_line(&mut status).unwrap();
        let mut headers = Vec::new();
        let mut len = 0;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            let line = line.trim_end().to_string();
            if line.is_empty() {
                break;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                len = v.trim().parse().unwrap();
            }
            headers.push(line);
        }
        let mut body = vec![0; len];
        reader.read_exact(&mut body).unwrap();
        (status.trim_end().to_string(), headers, body)
    };
    // Two requests on one connection.
    for _ in 0..2 {
        write!(stream, "GET /v2/app/tags/list HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let (status, _, body) = read_response(&mut reader);
        assert_eq!(status, "HTTP/1.1 200 OK");
        assert!(String::from_utf8_lossy(&body).contains("\"v1\""));
    }
    // Connection: close is honoured.
    write!(
        stream,
        "GET /v2/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let (status, headers, _) = read_response(&mut reader);
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(
        headers
            .iter()
            .any(|h| h.eq_ignore_ascii_case("connection: close"))
    );
    let mut rest = Vec::new();
    assert_eq!(reader.read_to_end(&mut rest).unwrap(), 0, "closed after");
}

#[test]
fn concurrent_clients() {
    let reg = Registry::start(Auth::None);
    reg.push("app", "v1", &TestImage::linux_amd64(CREATED));
    let proxy = Proxy::start(&reg.url());
    let url = format!("{}/v2/app/manifests/v1", proxy.url());
    let started = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..8 {
            s.spawn(|| {
                let agent = test_agent();
                for _ in 0..100 {
                    let got = call_with(&agent, "GET", &url, &ALL_MANIFESTS, None).unwrap();
                    assert_eq!(got.status, 200);
                }
            });
        }
    });
    eprintln!("800 proxied GETs in {:?}", started.elapsed());
    assert_eq!(proxy.requests(), 800);
    assert_eq!(proxy.count_method("GET", "/manifests/v1"), 800);
}
