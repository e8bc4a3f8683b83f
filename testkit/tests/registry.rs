//! An anonymous registry: single- and multi-platform pushes read back through the API.

use crate::common::{ALL_MANIFESTS, call, get};
use keelson_testkit::{Auth, IndexKind, ManifestKind, Registry, TestImage, sha256_digest};

const CREATED: &str = "2024-05-06T07:08:09Z";

/// GETs `repo:reference` accepting `media` and checks type, digest header and body digest.
fn check_manifest(reg: &Registry, repo: &str, reference: &str, media: &str, digest: &str) {
    let url = format!("{}/v2/{repo}/manifests/{reference}", reg.url());
    let got = call("GET", &url, &[media], None);
    assert_eq!(
        got.status,
        200,
        "{url}: {}",
        String::from_utf8_lossy(&got.body)
    );
    assert_eq!(got.header("content-type"), Some(media), "{url}");
    assert_eq!(got.header("docker-content-digest"), Some(digest), "{url}");
    assert_eq!(sha256_digest(&got.body), digest, "{url}");
    let head = call("HEAD", &url, &[media], None);
    assert_eq!(head.status, 200);
    assert_eq!(head.header("docker-content-digest"), Some(digest));
    assert_eq!(
        head.header("content-length"),
        Some(got.body.len().to_string().as_str())
    );
}

fn tags(reg: &Registry, repo: &str) -> Vec<String> {
    let got = get(&format!("{}/v2/{repo}/tags/list", reg.url()));
    assert_eq!(got.status, 200);
    let mut tags: Vec<String> = got.json()["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_string())
        .collect();
    tags.sort();
    tags
}

#[test]
fn single_platform_oci_and_docker() {
    let reg = Registry::start(Auth::None);
    assert_eq!(reg.url(), format!("http://{}", reg.host()));
    let oci = TestImage::linux_amd64(CREATED);
    let docker = TestImage::linux_amd64(CREATED).docker();
    let bare = TestImage::new("linux", "amd64").salt("no-date");

    let d_oci = reg.push("team/app", "1.0.0", &oci);
    let d_docker = reg.push("team/app", "docker", &docker);
    reg.push("team/app", "bare", &bare);
    assert_eq!(d_oci, oci.digest());
    assert_ne!(d_oci, d_docker);

    assert_eq!(tags(&reg, "team/app"), ["1.0.0", "bare", "docker"]);
    check_manifest(
        &reg,
        "team/app",
        "1.0.0",
        ManifestKind::Oci.media_type(),
        &d_oci,
    );
    check_manifest(
        &reg,
        "team/app",
        "docker",
        ManifestKind::DockerV2.media_type(),
        &d_docker,
    );
    // By digest too, with every type accepted.
    let got = call(
        "GET",
        &format!("{}/v2/team/app/manifests/{d_docker}", reg.url()),
        &ALL_MANIFESTS,
        None,
    );
    assert_eq!(sha256_digest(&got.body), d_docker);

    // The config blob carries the chosen `created`, or none.
    for (img, created) in [
        (&oci, Some(CREATED)),
        (&docker, Some(CREATED)),
        (&bare, None),
    ] {
        let got = get(&format!(
            "{}/v2/team/app/blobs/{}",
            reg.url(),
            img.config_digest()
        ));
        assert_eq!(got.status, 200);
        assert_eq!(sha256_digest(&got.body), img.config_digest());
        let cfg = got.json();
        assert_eq!(cfg["created"].as_str(), created);
        assert_eq!(cfg["os"], "linux");
        assert_eq!(cfg["architecture"], "amd64");
    }

    // Pushing the same tag again is idempotent; re-tagging moves nothing else.
    assert_eq!(reg.push("team/app", "1.0.0", &oci), d_oci);
    assert_eq!(reg.push("other/app", "latest", &oci), d_oci);
    assert_eq!(tags(&reg, "other/app"), ["latest"]);
}

#[test]
fn multi_platform_indexes() {
    let reg = Registry::start(Auth::None);
    let oci_images = [
        TestImage::linux_amd64(CREATED),
        TestImage::linux_arm64(CREATED),
        TestImage::new("linux", "arm")
            .variant("v7")
            .created(CREATED),
    ];
    let docker_images: Vec<TestImage> = oci_images.iter().map(|i| i.clone().docker()).collect();

    let d_index = reg.push_index("multi", "oci", &oci_images, IndexKind::Oci);
    let d_list = reg.push_index("multi", "list", &docker_images, IndexKind::DockerList);
    assert_eq!(
        d_index,
        sha256_digest(&keelson_testkit::index_bytes(&oci_images, IndexKind::Oci))
    );
    check_manifest(&reg, "multi", "oci", IndexKind::Oci.media_type(), &d_index);
    check_manifest(
        &reg,
        "multi",
        "list",
        IndexKind::DockerList.media_type(),
        &d_list,
    );
    // Children are pushed by digest only: the tag list has just the two indexes.
    assert_eq!(tags(&reg, "multi"), ["list", "oci"]);

    let index = call(
        "GET",
        &format!("{}/v2/multi/manifests/{d_index}", reg.url()),
        &[IndexKind::Oci.media_type()],
        None,
    )
    .json();
    let entries = index["manifests"].as_array().unwrap();
    assert_eq!(entries.len(), 3);
    assert_eq!(entries[1]["platform"]["architecture"], "arm64");
    assert_eq!(entries[1]["platform"]["variant"], "v8");
    for (entry, img) in entries.iter().zip(&oci_images) {
        let digest = entry["digest"].as_str().unwrap();
        assert_eq!(digest, img.digest());
        check_manifest(
            &reg,
            "multi",
            digest,
            ManifestKind::Oci.media_type(),
            digest,
        );
    }
}

#[test]
fn push_many_in_parallel() {
    let reg = Registry::start(Auth::None);
    let mut jobs = Vec::new();
    for r in 0..4 {
        for t in 0..25 {
            let img =
                TestImage::linux_amd64(&format!("2024-01-01T00:00:{t:02}Z")).salt(&format!("{r}"));
            jobs.push((format!("bulk/r{r}"), format!("t{t:02}"), img));
        }
    }
    let expected: Vec<String> = jobs.iter().map(|(_, _, i)| i.digest()).collect();
    let started = std::time::Instant::now();
    let digests = reg.push_many(jobs, 4);
    eprintln!("push_many: 100 images in {:?}", started.elapsed());
    assert_eq!(digests, expected);
    // Configs are all different; the shared layer is uploaded or mounted about once per
    // repository (threads racing on a repository's first image may both send it).
    let stats = reg.push_stats();
    assert_eq!(stats.manifests, 100);
    assert!(stats.uploads >= 101, "{stats:?}");
    assert!(stats.uploads + stats.mounts <= 100 + 4 * 4, "{stats:?}");
    for r in 0..4 {
        let want: Vec<String> = (0..25).map(|t| format!("t{t:02}")).collect();
        assert_eq!(tags(&reg, &format!("bulk/r{r}")), want);
    }
}

/// What distribution 2.8 does with `Accept`, pinned so a surprise in a newer one shows up here.
#[test]
fn accept_header_behaviour() {
    let reg = Registry::start(Auth::None);
    reg.push("acc", "oci", &TestImage::linux_amd64(CREATED));
    reg.push("acc", "docker", &TestImage::linux_amd64(CREATED).docker());
    reg.push_index(
        "acc",
        "index",
        &[
            TestImage::linux_amd64(CREATED),
            TestImage::linux_arm64(CREATED),
        ],
        IndexKind::Oci,
    );
    let amd64 = TestImage::linux_amd64(CREATED).docker();
    reg.push_index(
        "acc",
        "list",
        &[amd64.clone(), TestImage::linux_arm64(CREATED).docker()],
        IndexKind::DockerList,
    );
    let show = |reference: &str, accept: &[&str]| {
        let got = call(
            "GET",
            &format!("{}/v2/acc/manifests/{reference}", reg.url()),
            accept,
            None,
        );
        eprintln!(
            "{reference} accept={accept:?} -> {} {:?} {}",
            got.status,
            got.header("content-type"),
            String::from_utf8_lossy(&got.body)
                .chars()
                .take(120)
                .collect::<String>()
        );
        got
    };
    // 2.8 serves a manifest only to a client that accepts its exact type. Without that:
    // OCI manifests and indexes are "not found"; a Docker v2 manifest is 400 MANIFEST_INVALID
    // (2.8 tries to rewrite it to schema 1, which it cannot sign); a Docker list likewise.
    for (reference, accept, status, code) in [
        ("oci", vec![], 404, "MANIFEST_UNKNOWN"),
        (
            "oci",
            vec![ManifestKind::DockerV2.media_type()],
            404,
            "MANIFEST_UNKNOWN",
        ),
        ("index", vec![], 404, "MANIFEST_UNKNOWN"),
        (
            "index",
            vec![ManifestKind::Oci.media_type()],
            404,
            "MANIFEST_UNKNOWN",
        ),
        ("docker", vec![], 400, "MANIFEST_INVALID"),
        ("list", vec![], 400, "MANIFEST_INVALID"),
        ("list", vec![ManifestKind::DockerV2.media_type()], 200, ""),
    ] {
        let got = show(reference, &accept);
        assert_eq!(got.status, status, "{reference} {accept:?}");
        if status != 200 {
            assert_eq!(
                got.json()["errors"][0]["code"],
                code,
                "{reference} {accept:?}"
            );
        }
    }
    // …and a Docker list asked for as a plain v2 manifest answers with its linux/amd64 child.
    let got = show("list", &[ManifestKind::DockerV2.media_type()]);
    assert_eq!(
        got.header("docker-content-digest"),
        Some(amd64.digest().as_str())
    );
}
