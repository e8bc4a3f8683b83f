//! Generates estates of any size for benchmarks and scale tests.

pub mod registry;

use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

/// `[--apps N,N,…] [--runs R]`, the arguments every size-driven benchmark
/// takes, over the given defaults. Any other argument panics with `usage`.
pub fn sizes_and_runs(
    args: &[String],
    mut sizes: Vec<usize>,
    mut runs: usize,
    usage: &str,
) -> (Vec<usize>, usize) {
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let mut value = || {
            args.next()
                .unwrap_or_else(|| panic!("{arg} takes a value; {usage}"))
        };
        match arg.as_str() {
            "--apps" => {
                sizes = value()
                    .split(',')
                    .map(|s| s.parse().expect("--apps takes numbers"))
                    .collect();
            }
            "--runs" => runs = value().parse().expect("--runs takes a number"),
            other => panic!("unknown argument {other}; {usage}"),
        }
    }
    (sizes, runs)
}

/// The median of `v` (which must not be empty).
pub fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// The median wall time of `runs` calls of `f`, after one untimed call that
/// warms the page cache and the allocator.
pub fn time<T>(runs: usize, mut f: impl FnMut() -> T) -> Duration {
    let _ = f();
    median(
        (0..runs.max(1))
            .map(|_| {
                let t = Instant::now();
                std::hint::black_box(f());
                t.elapsed()
            })
            .collect(),
    )
}

/// The shape of a generated estate.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub apps: usize,
    /// Stages in each pipeline (dev → … → prod), at least 1.
    pub stages: usize,
    /// Workload clusters in the one site (plus its management cluster).
    pub clusters: usize,
    /// Apps per `.kdl` file.
    pub apps_per_file: usize,
    /// Every `policy_every`-th app goes through the policy pipeline (a filter
    /// policy on its first stage, gate policies on every promotion); 0: none.
    /// Policies run WebAssembly per image and stage, so they are a share,
    /// as in real estates, not every app.
    pub policy_every: usize,
}

impl Shape {
    /// N apps × 3 stages over 3 workload clusters, 100 apps per file, one
    /// app in ten through policies.
    pub fn standard(apps: usize) -> Shape {
        Shape {
            apps,
            stages: 3,
            clusters: 3,
            apps_per_file: 100,
            policy_every: 10,
        }
    }
}

fn stage_names(n: usize, suffix: &str) -> Vec<String> {
    let names: Vec<String> = match n {
        1 => vec!["prod".into()],
        2 => vec!["dev".into(), "prod".into()],
        3 => vec!["dev".into(), "staging".into(), "prod".into()],
        _ => (0..n).map(|i| format!("s{i}")).collect(),
    };
    names.into_iter().map(|s| format!("{s}{suffix}")).collect()
}

/// The repository of app `i`'s image, its strategy, and its tags. Apps
/// through policies do not track a mutable tag (`digest`): their filter
/// policy denies mutable tags.
fn image(i: usize, gated: bool) -> (String, &'static str, Vec<(String, String, String)>) {
    let digest = |n: usize| format!("sha256:{:064x}", (i as u128) << 32 | n as u128);
    let day = |d: usize| format!("2026-{:02}-{:02}T12:00:00Z", 9 + d / 28, 1 + d % 28);
    let kind = if gated { i / 10 % 2 } else { i % 3 };
    match kind {
        0 => (
            format!("ghcr.io/acme/svc-{i}"),
            "strategy=\"semver\" constraint=\"^1.2\"",
            [
                "1.1.0",
                "1.2.0",
                "1.2.1",
                "1.2.2-rc.1",
                "1.3.0",
                "2.0.0",
                "latest",
            ]
            .iter()
            .enumerate()
            .map(|(n, t)| (t.to_string(), day(n * 7), digest(n)))
            .collect(),
        ),
        1 => (
            format!("123456789012.dkr.ecr.eu-west-1.amazonaws.com/svc-{i}"),
            "strategy=\"newest-build\" allow-tags=\"regexp:^main-[0-9a-f]{7}$\"",
            (0..6)
                .map(|n| (format!("main-{:07x}", i * 16 + n), day(n * 9), digest(n)))
                .chain([("main-debug".to_string(), day(60), digest(9))])
                .collect(),
        ),
        _ => (
            format!("ghcr.io/acme/svc-{i}"),
            "strategy=\"digest\" constraint=\"stable\"",
            vec![
                ("stable".into(), day(40), digest(1)),
                ("1.0.0".into(), day(10), digest(2)),
                ("1.0.0-debug".into(), day(11), digest(3)),
            ],
        ),
    }
}

/// Writes a valid estate of `shape.apps` apps × `shape.stages` stages into
/// `dir`: registries, a snapshot of every image's tags (`tags.json`, so no
/// registry is asked), filter and gate policies for a share of the apps,
/// images with constraints and filters, and `depends-on` chains 4 deep.
pub fn generate(dir: &Path, shape: Shape) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut head = String::new();
    head.push_str("repo \"https://git.example.com/platform/gitops.git\" branch=\"main\"\n");
    head.push_str("image-updater version=\"1.2.2\" chart-version=\"1.2.4\"\n\n");
    head.push_str("site \"dc1\" {\n    cluster \"mgmt\" server=\"in-cluster\"\n");
    for c in 0..shape.clusters {
        let _ = writeln!(
            head,
            "    cluster \"w{c}\" server=\"https://w{c}.dc1.example.com:6443\""
        );
    }
    head.push_str("}\n\n");
    head.push_str("registry \"ghcr\" prefix=\"ghcr.io\" credentials=\"pullsecret:argocd/ghcr\"\n");
    head.push_str("registry \"ecr\" prefix=\"123456789012.dkr.ecr.eu-west-1.amazonaws.com\" credentials=\"ext:/scripts/ecr.sh\"\n\n");
    head.push_str("snapshot \"./tags.json\"\n\n");
    let plain = stage_names(shape.stages.max(1), "");
    for (n, s) in plain.iter().enumerate() {
        let _ = writeln!(head, "stage \"{s}\" {{");
        if n == 0 {
            head.push_str("    write-back \"git\"\n");
        } else {
            let _ = writeln!(head, "    promote-from \"{}\"", plain[n - 1]);
        }
        head.push_str("}\n");
    }
    let gated = stage_names(shape.stages.max(1), "-gated");
    if shape.policy_every > 0 {
        head.push_str("\npolicy \"no-mutable\" source=\"stdlib:deny-mutable-tags\"\n");
        head.push_str("policy \"no-prerelease\" source=\"stdlib:no-prerelease\"\n");
        head.push_str("policy \"no-major-jump\" source=\"stdlib:no-major-jump\"\n");
        head.push_str("policy \"same-digest\" source=\"stdlib:same-digest\"\n\n");
        for (n, s) in gated.iter().enumerate() {
            let _ = writeln!(head, "stage \"{s}\" {{");
            if n == 0 {
                head.push_str("    write-back \"pinned\"\n");
                head.push_str("    filter \"no-mutable\" \"no-prerelease\"\n");
            } else {
                let _ = writeln!(head, "    promote-from \"{}\"", gated[n - 1]);
                head.push_str("    gate \"no-major-jump\" \"same-digest\"\n");
            }
            head.push_str("}\n");
        }
    }
    std::fs::write(dir.join("00-estate.kdl"), head)?;

    let mut tags = serde_json::Map::new();
    let files = shape.apps.div_ceil(shape.apps_per_file.max(1));
    for f in 0..files {
        let mut s = String::new();
        let start = f * shape.apps_per_file;
        let end = (start + shape.apps_per_file).min(shape.apps);
        for i in start..end {
            let cluster = if shape.clusters == 0 {
                "mgmt".to_string()
            } else {
                format!("w{}", i % shape.clusters)
            };
            let through_policies = shape.policy_every > 0 && i % shape.policy_every == 0;
            let (repo, strategy, repo_tags) = image(i, through_policies);
            tags.insert(
                repo.clone(),
                repo_tags
                    .into_iter()
                    .map(|(name, created, digest)| {
                        serde_json::json!({"name": name, "created": created, "digest": digest})
                    })
                    .collect(),
            );
            let _ = writeln!(s, "app \"svc-{i}\" {{");
            let _ = writeln!(
                s,
                "    template \"web-service\" {{\n        params {{\n            port {}\n        }}\n    }}",
                8000 + i % 1000
            );
            let _ = writeln!(
                s,
                "    image \"svc\" repository=\"{repo}\" {strategy} {{\n        ignore-tags \"*-debug\" \"*-rc*\"\n    }}"
            );
            if i % 4 != 0 {
                let _ = writeln!(s, "    depends-on \"svc-{}\"", i - 1);
            }
            let stages = if through_policies { &gated } else { &plain };
            for (n, stage) in stages.iter().enumerate() {
                let _ = writeln!(
                    s,
                    "    deploy \"{stage}\" cluster=\"{cluster}\" namespace=\"svc-{i}-s{n}\""
                );
            }
            s.push_str("}\n\n");
        }
        std::fs::write(dir.join(format!("apps-{f:04}.kdl")), s)?;
    }
    let mut json = serde_json::to_string_pretty(&serde_json::Value::Object(tags))?;
    json.push('\n');
    std::fs::write(dir.join("tags.json"), json)?;
    Ok(())
}
