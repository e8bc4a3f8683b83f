//! `keelson init`: a commented starter estate that passes `keelson check`.

use std::path::Path;

use crate::error::Error;

/// The starter estate, written as `estate.kdl`.
pub const STARTER: &str = r#"// A keelson estate: the whole Argo CD setup this repository generates.
// Check it with `keelson check .`, see the graph with `keelson graph .`.
// Reference: the estate language chapter of the keelson book.

// The GitOps repository keelson generates. Argo CD reads it; keelson writes it.
repo "https://github.com/acme/gitops.git" branch="main"

// Which Argo CD Image Updater release runs in-cluster (1.x), and the
// `argocd-image-updater` Helm chart version that ships it.
image-updater version="1.2.2" chart-version="1.2.4"

// A site is one Argo CD instance and the clusters it deploys to.
site "lab" {
    // The cluster Argo CD itself runs on.
    cluster "mgmt" server="in-cluster"
    // A workload cluster registered in Argo CD (by `argocd cluster add`).
    // cluster "gpu" server="https://10.0.0.20:6443" argocd-name="lab-gpu"
}

// A container registry. Credentials are always references, never values.
registry "ghcr" prefix="ghcr.io" api-url="https://ghcr.io" credentials="pullsecret:argocd/ghcr-pull"

// Stages form a promotion chain. `dev` tracks the registry; Image Updater
// commits new tags to git. `prod` takes what `dev` runs, pinned by keelson.
stage "dev" {
    write-back "git"
}
stage "prod" {
    promote-from "dev"
}

// An app: its manifests, its images and one deployment per stage.
app "hello" {
    template "web-service" {
        params {
            port 8080
        }
    }
    image "hello" repository="ghcr.io/acme/hello" strategy="semver" constraint="^1.0"
    deploy "dev" cluster="mgmt" namespace="hello-dev"
    deploy "prod" cluster="mgmt" namespace="hello" replicas=2
}
"#;

/// Writes the starter estate into `dir` (created if missing). Refuses when the
/// directory already holds `.kdl` files, so it never overwrites an estate.
pub fn init(dir: &Path) -> Result<std::path::PathBuf, Error> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io("creating the estate directory", dir, e))?;
    let entries =
        std::fs::read_dir(dir).map_err(|e| Error::io("reading the estate directory", dir, e))?;
    for entry in entries.flatten() {
        if entry.path().extension().is_some_and(|x| x == "kdl") {
            return Err(Error::refused(
                format!(
                    "`{}` already holds an estate (`{}`)",
                    dir.display(),
                    entry.path().display()
                ),
                "run `keelson init` on an empty directory, or edit the existing estate",
            ));
        }
    }
    let path = dir.join("estate.kdl");
    std::fs::write(&path, STARTER)
        .map_err(|e| Error::io("writing the starter estate", &path, e))?;
    Ok(path)
}
