//! keelson against a real registry: Debian's `docker-registry` (CNCF
//! distribution 2.8) on 127.0.0.1, seeded through the Distribution API with
//! tiny images whose build times the tests choose; a token server of the
//! tests' own; a fault-injecting proxy in front for every failure and for
//! `Link` pagination (distribution 2.8 ignores `n`). Through the binary, as
//! users run it.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use keelson::environment::TEST_REGISTRY_BACKOFF as BACKOFF_VAR;
use keelson_testkit::{Auth, Fault, FaultKind, IndexKind, Proxy, Registry, TestImage};

use crate::support::{Run, keelson};

pub fn trials() -> Vec<keelson_testkit::harness::Trial> {
    keelson_testkit::trials![
        registry_faults_are_clear_errors_and_write_nothing,
        every_strategy_against_a_live_registry,
        transient_faults_are_retried_and_retry_after_is_honoured,
        basic_auth_with_env_and_docker_config_credentials,
        bearer_token_auth_through_the_challenge,
        tag_lists_are_paginated_through_link_headers,
        a_second_compile_reads_no_config_blobs,
    ]
}

/// A scratch directory with an estate, an output and a cache.
struct Scene {
    dir: tempfile::TempDir,
    env: Vec<(String, String)>,
}

impl Scene {
    fn new() -> Scene {
        let dir = tempfile::tempdir().unwrap();
        // An empty Docker config, so the developer's own logins never leak in.
        std::fs::create_dir_all(dir.path().join("docker")).unwrap();
        Scene {
            dir,
            env: Vec::new(),
        }
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    /// Writes the estate: one registry node and the given image lines, one
    /// app per image, all in stage `dev`.
    fn estate(&self, host: &str, api: &str, credentials: Option<&str>, images: &[&str]) {
        let estate = self.path("estate");
        std::fs::create_dir_all(estate.join("manifests")).unwrap();
        std::fs::write(
            estate.join("manifests/deployment.yaml"),
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: app\nspec:\n  selector:\n    matchLabels:\n      app: app\n  template:\n    metadata:\n      labels:\n        app: app\n    spec:\n      containers:\n        - name: app\n          image: app:0\n",
        )
        .unwrap();
        let mut kdl = String::from(
            "repo \"https://github.com/acme/gitops.git\"\nsite \"lab\" {\n    cluster \"mgmt\" server=\"in-cluster\"\n}\nstage \"dev\"\n",
        );
        kdl.push_str(&format!(
            "registry \"lab\" prefix=\"{host}\" api-url=\"{api}\""
        ));
        if let Some(c) = credentials {
            kdl.push_str(&format!(" credentials=\"{c}\""));
        }
        kdl.push('\n');
        for (i, image) in images.iter().enumerate() {
            kdl.push_str(&format!(
                "app \"app{i}\" {{\n    manifests \"./manifests\"\n    {image}\n    deploy \"dev\" cluster=\"mgmt\" namespace=\"app{i}\"\n}}\n"
            ));
        }
        std::fs::write(estate.join("estate.kdl"), kdl).unwrap();
    }

    /// `keelson ARGS` in the scene, with its Docker config and cache, and a
    /// first retry backoff of 1 ms: the tests count retries rather than wait
    /// for them (a `Retry-After` is still waited for).
    fn keelson(&self, args: &[&str]) -> Run {
        let mut cmd = keelson(args)
            .cwd(self.dir.path())
            .env("DOCKER_CONFIG", self.path("docker"))
            .env("KEELSON_CACHE_DIR", self.path("cache"))
            .env(BACKOFF_VAR, "1")
            .env_remove("LAB_CREDS");
        for (k, v) in &self.env {
            cmd = cmd.env(k, v);
        }
        cmd.run()
    }

    fn compile(&self, extra: &[&str]) -> Run {
        let mut args = vec!["compile", "estate", "-o", "out", "--registry-retries", "1"];
        args.extend_from_slice(extra);
        self.keelson(&args)
    }

    fn lock(&self) -> serde_json::Value {
        let text = std::fs::read_to_string(self.path("out/keelson.lock")).unwrap();
        serde_json::from_str(&text).unwrap()
    }

    /// The lock entry of `app{i}`.
    fn locked(&self, app: usize) -> serde_json::Value {
        self.lock()["images"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["app"] == format!("app{app}").as_str())
            .cloned()
            .unwrap_or_else(|| panic!("no lock entry for app{app}"))
    }

    /// Every file of the output with its bytes, to show nothing changed.
    fn snapshot_out(&self) -> Vec<(PathBuf, Vec<u8>)> {
        let mut files = Vec::new();
        walk(&self.path("out"), &mut files);
        files.sort();
        files
    }
}

fn walk(dir: &Path, out: &mut Vec<(PathBuf, Vec<u8>)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            walk(&p, out);
        } else {
            out.push((p.clone(), std::fs::read(&p).unwrap()));
        }
    }
}

fn amd64(created: &str) -> TestImage {
    TestImage::linux_amd64(created)
}

fn every_strategy_against_a_live_registry() {
    let reg = Registry::start(Auth::None);
    let host = reg.host();
    for (tag, created) in [
        ("1.0.0", "2026-01-01T00:00:00Z"),
        ("1.2.0", "2026-01-02T00:00:00Z"),
        ("1.10.0", "2026-01-03T00:00:00Z"),
        ("2.0.0-rc.1", "2026-01-04T00:00:00Z"),
        ("latest", "2026-01-04T00:00:00Z"),
    ] {
        reg.push("acme/api", tag, &amd64(created).salt(tag));
    }
    for tag in ["2026-01-15", "2026-02-01", "2025-12-31"] {
        reg.push("acme/cal", tag, &amd64("2026-01-01T00:00:00Z").salt(tag));
    }
    reg.push("acme/worker", "a", &amd64("2026-01-01T00:00:00Z"));
    reg.push("acme/worker", "b", &amd64("2026-03-01T00:00:00+01:00"));
    reg.push("acme/worker", "c", &amd64("2026-02-28T23:30:00Z"));
    let stable = reg.push("acme/runner", "stable", &amd64("2026-01-01T00:00:00Z"));
    reg.push(
        "acme/runner",
        "other",
        &amd64("2026-01-01T00:00:00Z").salt("o"),
    );
    // A multi-platform index whose arm64 build is newest, and an amd64-only image.
    reg.push_index(
        "acme/multi",
        "x",
        &[
            amd64("2026-01-01T00:00:00Z").salt("x"),
            TestImage::linux_arm64("2026-05-01T00:00:00Z").salt("x"),
        ],
        IndexKind::Oci,
    );
    reg.push("acme/multi", "y", &amd64("2026-03-01T00:00:00Z").docker());

    let s = Scene::new();
    s.estate(
        &host,
        &reg.url(),
        None,
        &[
            &format!("image \"api\" repository=\"{host}/acme/api\" constraint=\"^1\""),
            &format!("image \"cal\" repository=\"{host}/acme/cal\" strategy=\"alphabetical\""),
            &format!("image \"worker\" repository=\"{host}/acme/worker\" strategy=\"newest-build\""),
            &format!("image \"runner\" repository=\"{host}/acme/runner\" strategy=\"digest\" constraint=\"stable\""),
            &format!("image \"multi\" repository=\"{host}/acme/multi\" strategy=\"newest-build\""),
            &format!("image \"arm\" repository=\"{host}/acme/multi\" strategy=\"newest-build\" {{\n        platforms \"linux/arm64\"\n    }}"),
        ],
    );
    let run = s.compile(&[]);
    assert!(run.ok(), "{}", run.err());
    let tag = |i: usize| s.locked(i)["tag"].as_str().unwrap().to_string();
    assert_eq!(tag(0), "1.10.0");
    assert_eq!(tag(1), "2026-02-01");
    // 2026-03-01T00:00:00+01:00 is 2026-02-28T23:00Z: before c.
    assert_eq!(tag(2), "c");
    assert_eq!(tag(3), "stable");
    assert_eq!(s.locked(3)["digest"], stable.as_str());
    // Only amd64 counts by default: x's amd64 build is older than y.
    assert_eq!(tag(4), "y");
    assert_eq!(tag(5), "x");
    assert_eq!(
        s.locked(0)["source"],
        format!("registry:{host}/acme/api").as_str()
    );
    // The chosen tag's digest is recorded, though semver does not pin it.
    assert!(
        s.locked(0)["resolved_digest"]
            .as_str()
            .unwrap()
            .starts_with("sha256:")
    );
    assert!(s.locked(0).get("digest").is_none());
    // The digest strategy pins the digest in the overlay.
    let pinned = s
        .snapshot_out()
        .into_iter()
        .filter(|(p, _)| p.ends_with("kustomization.yaml"))
        .map(|(_, b)| String::from_utf8_lossy(&b).into_owned())
        .find(|t| t.contains(&stable));
    assert!(pinned.is_some(), "no overlay pins {stable}");

    // `tags select --image` gives the same answers, with reasons.
    let sel = s.keelson(&[
        "tags",
        "select",
        "--image",
        &format!("{host}/acme/multi"),
        "--strategy",
        "newest-build",
        "--format",
        "json",
    ]);
    assert!(sel.ok(), "{}", sel.err());
    let v: serde_json::Value = serde_json::from_str(&sel.out()).unwrap();
    assert_eq!(v["selected"], "y");
    let sel = s.keelson(&[
        "tags",
        "select",
        "--image",
        &format!("{host}/acme/multi"),
        "--strategy",
        "newest-build",
        "--platform",
        "linux/s390x",
        "--format",
        "json",
    ]);
    let v: serde_json::Value = serde_json::from_str(&sel.out()).unwrap();
    assert_eq!(v["selected"], serde_json::Value::Null);
    let reasons: Vec<String> = v["dropped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["reason"].as_str().unwrap().to_string())
        .collect();
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("its index has no image for linux/s390x")),
        "{reasons:?}"
    );
    assert!(
        reasons.iter().any(|r| r.contains("built for linux/amd64")),
        "{reasons:?}"
    );
    let sel = s.keelson(&["tags", "select", "--image", &format!("{host}/acme/api")]);
    assert!(
        sel.out().starts_with("selected: 1.10.0 (sha256:"),
        "{}",
        sel.out()
    );
}

fn basic_auth_with_env_and_docker_config_credentials() {
    let reg = Registry::start(Auth::basic("ci", "s3cret-pass"));
    let host = reg.host();
    reg.push("team/app", "1.0.0", &amd64("2026-01-01T00:00:00Z"));
    let mut s = Scene::new();
    s.estate(
        &host,
        &reg.url(),
        Some("env:LAB_CREDS"),
        &[&format!("image \"app\" repository=\"{host}/team/app\"")],
    );
    // No credentials anywhere.
    let run = s.compile(&[]);
    assert_eq!(run.code(), Some(1), "{}", run.err());
    assert!(
        run.err()
            .contains("the registry requires credentials (401), and keelson found none"),
        "{}",
        run.err()
    );
    assert!(
        run.err()
            .contains(&format!("`{host}/team/app` at {}", reg.url())),
        "{}",
        run.err()
    );
    assert!(!s.path("out/keelson.lock").exists());
    // Wrong ones, from the estate's env: reference.
    s.env = vec![("LAB_CREDS".into(), "ci:wrong".into())];
    let run = s.compile(&[]);
    assert!(
        run.err()
            .contains("refused the credentials from env:LAB_CREDS (401)"),
        "{}",
        run.err()
    );
    // Right ones.
    s.env = vec![("LAB_CREDS".into(), "ci:s3cret-pass".into())];
    let run = s.compile(&[]);
    assert!(run.ok(), "{}", run.err());
    assert_eq!(s.locked(0)["tag"], "1.0.0");
    // From Docker's config.json, as `docker login` writes it.
    s.env.clear();
    std::fs::remove_dir_all(s.path("out")).unwrap();
    let auth = base64_encode("ci:s3cret-pass");
    std::fs::write(
        s.path("docker/config.json"),
        format!("{{\"auths\": {{\"{host}\": {{\"auth\": \"{auth}\"}}}}}}"),
    )
    .unwrap();
    let run = s.compile(&[]);
    assert!(run.ok(), "{}", run.err());
    // No credential reaches the output.
    for (path, bytes) in s.snapshot_out() {
        let text = String::from_utf8_lossy(&bytes);
        assert!(
            !text.contains("s3cret"),
            "{} holds the password",
            path.display()
        );
    }
}

fn bearer_token_auth_through_the_challenge() {
    let reg = Registry::start(Auth::token("robot", "t0ken-pass"));
    let host = reg.host();
    reg.push("team/svc", "0.1.0", &amd64("2026-01-01T00:00:00Z"));
    reg.push("team/svc", "0.2.0", &amd64("2026-01-02T00:00:00Z"));
    let s = Scene::new();
    let select = |s: &Scene| {
        s.keelson(&[
            "tags",
            "select",
            "--image",
            &format!("{host}/team/svc"),
            "--strategy",
            "newest-build",
            "--registry-retries",
            "0",
        ])
    };
    let run = select(&s);
    assert_eq!(run.code(), Some(2));
    assert!(run.err().contains("requires credentials"), "{}", run.err());
    std::fs::write(
        s.path("docker/config.json"),
        format!(
            "{{\"auths\": {{\"{host}\": {{\"auth\": \"{}\"}}}}}}",
            base64_encode("robot:wrong")
        ),
    )
    .unwrap();
    let run = select(&s);
    assert_eq!(run.code(), Some(2));
    assert!(
        run.err()
            .contains("refused the credentials from Docker's config.json"),
        "{}",
        run.err()
    );
    std::fs::write(
        s.path("docker/config.json"),
        format!(
            "{{\"auths\": {{\"{host}\": {{\"auth\": \"{}\"}}}}}}",
            base64_encode("robot:t0ken-pass")
        ),
    )
    .unwrap();
    let before = reg.token_server().unwrap().requests();
    let run = select(&s);
    assert!(run.ok(), "{}", run.err());
    assert!(run.out().starts_with("selected: 0.2.0"), "{}", run.out());
    // One token serves every request of the repository.
    assert_eq!(reg.token_server().unwrap().requests() - before, 1);
}

fn registry_faults_are_clear_errors_and_write_nothing() {
    let reg = Registry::start(Auth::None);
    let host = reg.host();
    reg.push("acme/web", "1.0.0", &amd64("2026-01-01T00:00:00Z"));
    let proxy = Proxy::start(&reg.url());
    let s = Scene::new();
    s.estate(
        &host,
        &proxy.url(),
        None,
        &[&format!(
            "image \"web\" repository=\"{host}/acme/web\" strategy=\"newest-build\""
        )],
    );
    let run = s.compile(&[]);
    assert!(run.ok(), "{}", run.err());
    let before = s.snapshot_out();
    // Estate changes that would change the output, were the compile to succeed.
    reg.push("acme/web", "1.1.0", &amd64("2026-02-01T00:00:00Z"));
    // With the number of requests for the faulted path where it is certain:
    // a status worth retrying is retried once (`--registry-retries 1`), after
    // a backoff of 1 ms or the `Retry-After` the registry sent; others, and a
    // `Retry-After` longer than keelson waits, are not retried.
    let cases: Vec<(&str, FaultKind, &str, Option<usize>)> = vec![
        (
            "/tags/list",
            FaultKind::status(401),
            "the registry requires credentials (401)",
            None,
        ),
        (
            "/tags/list",
            FaultKind::status(403),
            "access denied (403)",
            Some(1),
        ),
        (
            "/tags/list",
            FaultKind::status(404),
            "not found (404)",
            Some(1),
        ),
        (
            "/tags/list",
            FaultKind::status_retry_after(429, "0"),
            "rate-limited (429)",
            Some(2),
        ),
        (
            "/tags/list",
            FaultKind::status_retry_after(429, "3600"),
            "the registry asks to wait 3600s",
            Some(1),
        ),
        (
            "/tags/list",
            FaultKind::status(500),
            "the registry answered 500",
            Some(2),
        ),
        (
            "/tags/list",
            FaultKind::status(502),
            "the registry answered 502",
            Some(2),
        ),
        (
            "/tags/list",
            FaultKind::status(503),
            "the registry answered 503",
            Some(2),
        ),
        (
            "/tags/list",
            FaultKind::Truncate,
            "the tag list is not valid JSON",
            None,
        ),
        (
            "/tags/list",
            FaultKind::Hangup,
            "the registry is unreachable",
            None,
        ),
        (
            "/manifests/",
            FaultKind::status(500),
            "reading the manifest of `",
            None,
        ),
        (
            "/manifests/",
            FaultKind::Truncate,
            "reading the manifest of `",
            None,
        ),
        (
            "/blobs/",
            FaultKind::status(503),
            "reading the blob sha256:",
            None,
        ),
        (
            "/tags/list",
            FaultKind::Delay(Duration::from_secs(3)),
            "did not answer within 1s",
            None,
        ),
    ];
    for (path, kind, expected, requests) in cases {
        proxy.clear();
        proxy.reset_log();
        proxy.inject(Fault::new(path, kind.clone()));
        let run = s.compile(&["--registry-timeout", "1", "--no-cache"]);
        assert_eq!(run.code(), Some(1), "{kind:?}: {}", run.err());
        let err = run.err();
        assert!(
            err.contains(expected),
            "{kind:?}: expected `{expected}` in:\n{err}"
        );
        assert!(
            err.contains(&format!("`{host}/acme/web` at {}", proxy.url())),
            "{kind:?}: {err}"
        );
        assert!(err.contains("help: "), "{kind:?}: {err}");
        assert!(err.contains("nothing was written"), "{kind:?}: {err}");
        assert_eq!(s.snapshot_out(), before, "{kind:?} changed the output");
        if let Some(n) = requests {
            assert_eq!(proxy.count(path), n, "{kind:?}: requests for {path}");
        }
    }
    // A registry that is down.
    let down = Scene::new();
    down.estate(
        &host,
        &keelson_testkit::closed_port_url(),
        None,
        &[&format!("image \"web\" repository=\"{host}/acme/web\"")],
    );
    let run = down.compile(&[]);
    assert_eq!(run.code(), Some(1));
    assert!(
        run.err().contains("the registry is unreachable"),
        "{}",
        run.err()
    );
}

fn transient_faults_are_retried_and_retry_after_is_honoured() {
    let reg = Registry::start(Auth::None);
    let host = reg.host();
    reg.push("acme/web", "1.0.0", &amd64("2026-01-01T00:00:00Z"));
    let proxy = Proxy::start(&reg.url());
    let s = Scene::new();
    s.estate(
        &host,
        &proxy.url(),
        None,
        &[&format!("image \"web\" repository=\"{host}/acme/web\"")],
    );
    let tag_list_statuses = || -> Vec<Option<u16>> {
        proxy
            .log()
            .iter()
            .filter(|l| l.path.contains("/tags/list"))
            .map(|l| l.status)
            .collect()
    };
    proxy.inject(Fault::new("/tags/list", FaultKind::status(503)).times(1));
    let run = s.compile(&[]);
    assert!(run.ok(), "{}", run.err());
    assert_eq!(tag_list_statuses(), vec![Some(503), Some(200)]);
    proxy.clear();
    proxy.reset_log();
    // The one real wait of these tests: the registry's own `Retry-After`.
    proxy.inject(Fault::new("/tags/list", FaultKind::status_retry_after(429, "1")).times(1));
    let started = Instant::now();
    let run = s.compile(&[]);
    assert!(run.ok(), "{}", run.err());
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After: 1 was not waited for"
    );
    assert_eq!(tag_list_statuses(), vec![Some(429), Some(200)]);
}

fn tag_lists_are_paginated_through_link_headers() {
    let reg = Registry::start(Auth::None);
    let host = reg.host();
    let names = [
        "1.0.0", "1.0.1", "1.1.0", "1.2.0", "1.3.0", "1.4.0", "1.5.0",
    ];
    for n in names {
        reg.push("acme/paged", n, &amd64("2026-01-01T00:00:00Z").salt(n));
    }
    let proxy = Proxy::start(&reg.url());
    proxy.paginate(Some(2));
    let s = Scene::new();
    let run = s.keelson(&[
        "tags",
        "select",
        "--image",
        &format!("{host}/acme/paged"),
        "--api-url",
        &proxy.url(),
        "--format",
        "json",
    ]);
    assert!(run.ok(), "{}", run.err());
    let v: serde_json::Value = serde_json::from_str(&run.out()).unwrap();
    assert_eq!(v["selected"], "1.5.0");
    assert_eq!(v["candidates"].as_array().unwrap().len(), names.len());
    assert_eq!(proxy.count("/tags/list"), 4, "7 tags in pages of 2");
}

fn a_second_compile_reads_no_config_blobs() {
    let reg = Registry::start(Auth::None);
    let host = reg.host();
    for (i, day) in ["01", "02", "03", "04", "05"].iter().enumerate() {
        reg.push(
            "acme/nb",
            &format!("b{i}"),
            &amd64(&format!("2026-01-{day}T00:00:00Z")),
        );
    }
    reg.push_index(
        "acme/nb",
        "multi",
        &[
            amd64("2025-01-01T00:00:00Z").salt("m"),
            TestImage::linux_arm64("2025-01-01T00:00:00Z").salt("m"),
        ],
        IndexKind::DockerList,
    );
    let proxy = Proxy::start(&reg.url());
    let s = Scene::new();
    s.estate(
        &host,
        &proxy.url(),
        None,
        &[&format!(
            "image \"nb\" repository=\"{host}/acme/nb\" strategy=\"newest-build\""
        )],
    );
    let run = s.compile(&[]);
    assert!(run.ok(), "{}", run.err());
    assert_eq!(s.locked(0)["tag"], "b4");
    assert!(proxy.count("/blobs/") >= 6, "cold: every config is read");
    proxy.reset_log();
    let run = s.compile(&[]);
    assert!(run.ok(), "{}", run.err());
    assert_eq!(
        proxy.count("/blobs/"),
        0,
        "warm: configs come from the cache"
    );
    assert_eq!(proxy.count("/tags/list"), 1);
    // Tags move: each tag's manifest is read again, the index's entries are not.
    assert_eq!(proxy.count_method("GET", "/manifests/"), 6);
}

fn base64_encode(s: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(s)
}
