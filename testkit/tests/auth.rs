//! Basic and token authentication against the real registry.

use crate::common::{ALL_MANIFESTS, basic, call, get};
use keelson_testkit::{Auth, Registry, SERVICE, TestImage, parse_challenge};

#[test]
fn basic_auth() {
    let reg = Registry::start(Auth::basic("admin", "s3cret"));
    assert!(reg.token_server().is_none());
    // The push helpers authenticate themselves.
    let digest = reg.push(
        "private/app",
        "v1",
        &TestImage::linux_amd64("2024-01-01T00:00:00Z"),
    );

    let v2 = format!("{}/v2/", reg.url());
    let anonymous = get(&v2);
    assert_eq!(anonymous.status, 401);
    assert_eq!(
        anonymous.header("www-authenticate"),
        Some("Basic realm=\"keelson-testkit\"")
    );
    assert_eq!(
        call("GET", &v2, &[], Some(&basic("admin", "s3cret"))).status,
        200
    );
    assert_eq!(
        call("GET", &v2, &[], Some(&basic("admin", "wrong"))).status,
        401
    );
    assert_eq!(
        call("GET", &v2, &[], Some(&basic("nobody", "s3cret"))).status,
        401
    );

    let manifest = format!("{}/v2/private/app/manifests/v1", reg.url());
    assert_eq!(call("GET", &manifest, &ALL_MANIFESTS, None).status, 401);
    let got = call(
        "GET",
        &manifest,
        &ALL_MANIFESTS,
        Some(&basic("admin", "s3cret")),
    );
    assert_eq!(got.status, 200);
    assert_eq!(got.header("docker-content-digest"), Some(digest.as_str()));
}

#[test]
fn token_auth() {
    let reg = Registry::start(Auth::token("robot", "pa55"));
    let img = TestImage::linux_amd64("2024-01-01T00:00:00Z");
    let digest = reg.push("secure/app", "v1", &img);
    // A second repository mounts the layer from the first (a token for both scopes).
    reg.push("secure/other", "v1", &img);
    let tokens = reg.token_server().expect("token server");
    let stats = reg.push_stats();
    assert_eq!(
        (stats.uploads, stats.mounts, stats.manifests),
        (2, 2, 2),
        "{stats:?}"
    );
    // One token per scope: app's push; other's push with a pull on app (the mounts); other's
    // push. Only the very first request met a 401: after it the realm is known.
    assert_eq!(stats.tokens, 3, "{stats:?}");
    assert_eq!(stats.requests, 9, "{stats:?}");
    assert_eq!(tokens.requests(), 3);

    // Anonymous: 401 with a Bearer challenge naming realm, service and scope.
    let manifest = format!("{}/v2/secure/app/manifests/v1", reg.url());
    let anonymous = call("GET", &manifest, &ALL_MANIFESTS, None);
    assert_eq!(anonymous.status, 401);
    let challenge = anonymous.header("www-authenticate").expect("challenge");
    let (scheme, params) = parse_challenge(challenge).expect("parse challenge");
    assert_eq!(scheme, "Bearer");
    let param = |k: &str| {
        params
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("no {k} in {challenge}"))
    };
    assert_eq!(param("realm"), tokens.realm());
    assert_eq!(param("service"), SERVICE);
    assert_eq!(param("scope"), "repository:secure/app:pull");

    // Follow it like a client: token, then the manifest with the Bearer token.
    let token_url = format!(
        "{}?service={}&scope={}",
        param("realm"),
        param("service"),
        param("scope")
    );
    let before = tokens.requests();
    let got = call("GET", &token_url, &[], Some(&basic("robot", "pa55")));
    assert_eq!(got.status, 200, "{}", String::from_utf8_lossy(&got.body));
    assert_eq!(tokens.requests(), before + 1);
    let body = got.json();
    assert_eq!(body["expires_in"], 300);
    assert!(body["issued_at"].as_str().unwrap().ends_with('Z'));
    let token = body["token"].as_str().unwrap();
    assert_eq!(body["access_token"].as_str(), Some(token));
    let got = call(
        "GET",
        &manifest,
        &ALL_MANIFESTS,
        Some(&format!("Bearer {token}")),
    );
    assert_eq!(got.status, 200, "{}", String::from_utf8_lossy(&got.body));
    assert_eq!(got.header("docker-content-digest"), Some(digest.as_str()));

    // A pull token cannot list the catalog, nor read another repository.
    let other = format!("{}/v2/secure/other/manifests/v1", reg.url());
    let got = call(
        "GET",
        &other,
        &ALL_MANIFESTS,
        Some(&format!("Bearer {token}")),
    );
    assert_eq!(got.status, 401);
    let got = call(
        "GET",
        &format!("{}/v2/_catalog", reg.url()),
        &[],
        Some(&format!("Bearer {token}")),
    );
    assert_eq!(got.status, 401);
    let catalog = tokens.issue("robot", &["registry:catalog:*"]);
    let got = call(
        "GET",
        &format!("{}/v2/_catalog", reg.url()),
        &[],
        Some(&format!("Bearer {catalog}")),
    );
    assert_eq!(got.status, 200);
    assert_eq!(
        got.json()["repositories"],
        serde_json::json!(["secure/app", "secure/other"])
    );

    // Wrong or missing credentials: the token server says 401.
    assert_eq!(
        call("GET", &token_url, &[], Some(&basic("robot", "nope"))).status,
        401
    );
    assert_eq!(
        call("GET", &token_url, &[], Some(&basic("eve", "pa55"))).status,
        401
    );
    assert_eq!(get(&token_url).status, 401);
    // A garbage token is refused by the registry.
    assert_eq!(
        call("GET", &manifest, &ALL_MANIFESTS, Some("Bearer not.a.jwt")).status,
        401
    );
}

#[test]
fn token_oauth2_post() {
    // containerd asks with the OAuth2 password grant first.
    let reg = Registry::start(Auth::token("robot", "pa55"));
    let tokens = reg.token_server().unwrap();
    let agent = keelson_testkit::test_agent();
    let form = format!(
        "grant_type=password&username=robot&password=pa55&service={SERVICE}&scope=repository%3Aa%3Apull&client_id=test"
    );
    let mut resp = agent
        .post(tokens.realm())
        .header("Content-Type", "application/x-www-form-urlencoded")
        .send(form.as_bytes())
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let body: serde_json::Value =
        serde_json::from_slice(&resp.body_mut().read_to_vec().unwrap()).unwrap();
    assert!(body["access_token"].as_str().is_some());
    let got = call(
        "GET",
        &format!("{}/v2/a/tags/list", reg.url()),
        &[],
        Some(&format!(
            "Bearer {}",
            body["access_token"].as_str().unwrap()
        )),
    );
    // Authorised: the repository just does not exist.
    assert_eq!(got.status, 404);
}
