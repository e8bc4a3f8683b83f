//! Generates estates of any size for benchmarks and scale tests.

pub mod registry;

use std::fmt::Write as _;
use std::path::Path;

/// The shape of a generated estate.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub apps: usize,
    /// Workload clusters in the one site (plus its management cluster).
    pub clusters: usize,
    /// Apps per `.kdl` file.
    pub apps_per_file: usize,
}

/// Writes a valid estate of `shape.apps` apps × 3 stages (dev → staging →
/// prod) into `dir`: registries, filter and gate policies, images with
/// constraints and filters, and `depends-on` chains 4 deep.
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
    head.push_str("policy \"no-mutable\" source=\"stdlib:deny-mutable-tags\"\n");
    head.push_str("policy \"soak\" source=\"stdlib:soak-time\" {\n    params {\n        hours 24\n    }\n}\n\n");
    head.push_str("stage \"dev\" {\n    filter \"no-mutable\"\n    write-back \"git\"\n}\n");
    head.push_str("stage \"staging\" {\n    promote-from \"dev\"\n    gate \"soak\"\n}\n");
    head.push_str("stage \"prod\" {\n    promote-from \"staging\"\n    gate \"soak\"\n}\n");
    std::fs::write(dir.join("00-estate.kdl"), head)?;

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
            let (repo, strategy) = match i % 3 {
                0 => (
                    format!("ghcr.io/acme/svc-{i}"),
                    "strategy=\"semver\" constraint=\"^1.2\"",
                ),
                1 => (
                    format!("123456789012.dkr.ecr.eu-west-1.amazonaws.com/svc-{i}"),
                    "strategy=\"newest-build\" allow-tags=\"regexp:^main-[0-9a-f]{7}$\"",
                ),
                _ => (
                    format!("ghcr.io/acme/svc-{i}"),
                    "strategy=\"digest\" constraint=\"stable\"",
                ),
            };
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
            for (stage, ns) in [("dev", "-dev"), ("staging", "-stg"), ("prod", "")] {
                let _ = writeln!(
                    s,
                    "    deploy \"{stage}\" cluster=\"{cluster}\" namespace=\"svc-{i}{ns}\""
                );
            }
            s.push_str("}\n\n");
        }
        std::fs::write(dir.join(format!("apps-{f:04}.kdl")), s)?;
    }
    Ok(())
}
