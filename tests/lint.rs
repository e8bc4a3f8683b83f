//! Every example's generated tree, read by third-party Argo CD linters as a
//! user's CI would run them: argocd-source-lint (PyPI) on a git checkout of
//! the tree. `scripts/lint-tools.sh` installs them into `target/tools/venv`;
//! a missing linter fails the test rather than skipping it.
//!
//! The tree is committed to a fresh repository on the branch its
//! Applications track, with `origin` set to their `repoURL`, so the linter
//! sees the sources as its own repository (otherwise it reports them as
//! external and checks nothing).
//!
//! One finding is expected and allowed: `double-coverage` of a kustomize base
//! shared by the overlays of several stages. The linter flags any file that
//! two Applications' sources reach; Argo CD, though, compares objects, not
//! files, and each stage's Application deploys the base's objects into its own
//! destination namespace, so they are different objects. keelson itself
//! refuses two Applications that would apply the same object
//! (`keelson::shared-resource`). The allowance is only for files under a
//! `base/` directory reached by Applications whose destinations all differ.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use keelson_testkit::harness::{self, Failed, Trial};
use keelson_tests::{repo_root, subdirs};
use serde::Deserialize;
use serde_json::Value as Json;

pub fn trials() -> Vec<Trial> {
    subdirs(&repo_root().join("tests/trees"))
        .into_iter()
        .map(|tree| {
            let name = tree.file_name().unwrap().to_string_lossy().into_owned();
            harness::case(format!("lint::argocd_source_lint::{name}"), move || {
                source_lint(&tree)
            })
        })
        .collect()
}

fn tool(name: &str) -> PathBuf {
    let path = repo_root().join("target/tools/venv/bin").join(name);
    assert!(
        path.is_file(),
        "\n\n*** {} is missing ***\nThe lint tests run the real {name}; install it with \
         `scripts/lint-tools.sh` (scripts/test.sh does). They fail rather than skip.\n",
        path.display()
    );
    path
}

/// An Application of the tree: its name, file, git source and destination.
struct Application {
    name: String,
    repo_url: Option<String>,
    revision: Option<String>,
    destination: (String, String),
}

fn applications(tree: &Path) -> Vec<Application> {
    let mut apps = Vec::new();
    for file in keelson::check::walk(tree) {
        if file.extension().is_none_or(|e| e != "yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let Ok(doc) = serde_yaml::Value::deserialize(doc) else {
                continue;
            };
            if doc["kind"].as_str() != Some("Application") {
                continue;
            }
            let s = |v: &serde_yaml::Value| v.as_str().map(str::to_owned);
            let source = &doc["spec"]["source"];
            let git = source["chart"].is_null();
            apps.push(Application {
                name: s(&doc["metadata"]["name"]).unwrap_or_default(),
                repo_url: git.then(|| s(&source["repoURL"])).flatten(),
                revision: git.then(|| s(&source["targetRevision"])).flatten(),
                destination: (
                    s(&doc["spec"]["destination"]["server"])
                        .or_else(|| s(&doc["spec"]["destination"]["name"]))
                        .unwrap_or_default(),
                    s(&doc["spec"]["destination"]["namespace"]).unwrap_or_default(),
                ),
            });
        }
    }
    apps
}

fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .args([
            "-c",
            "user.name=keelson-tests",
            "-c",
            "user.email=tests@keelson.invalid",
        ])
        .args([
            "-c",
            "commit.gpgsign=false",
            "-c",
            "init.defaultBranch=main",
        ])
        .args(args)
        .current_dir(dir)
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE")
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The tree in a fresh repository, as a clone of its `repoURL` would be.
fn checkout(tree: &Path, apps: &[Application]) -> tempfile::TempDir {
    let repos: BTreeSet<(&str, &str)> = apps
        .iter()
        .filter_map(|a| Some((a.repo_url.as_deref()?, a.revision.as_deref()?)))
        .collect();
    assert_eq!(
        repos.len(),
        1,
        "every Application of {} tracks one repository and branch: {repos:?}",
        tree.display()
    );
    let (url, branch) = repos.into_iter().next().unwrap();
    let dir = tempfile::tempdir().unwrap();
    for (rel, bytes) in keelson_tests::read_tree(tree) {
        let path = dir.path().join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }
    git(dir.path(), &["init", "-q", "-b", branch]);
    git(dir.path(), &["remote", "add", "origin", url]);
    git(dir.path(), &["add", "-A"]);
    git(dir.path(), &["commit", "-q", "-m", "generated by keelson"]);
    dir
}

fn source_lint(tree: &Path) -> Result<(), Failed> {
    let lint = tool("argocd-source-lint");
    let apps = applications(tree);
    let repo = checkout(tree, &apps);
    let out = Command::new(&lint)
        .args(["--format", "json"])
        .arg(repo.path())
        .output()
        .expect("argocd-source-lint runs");
    let report: Json = serde_json::from_slice(&out.stdout).map_err(|e| {
        format!(
            "argocd-source-lint printed no JSON report ({e}); exit {}, stderr:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )
    })?;
    let destinations: BTreeMap<&str, &(String, String)> = apps
        .iter()
        .map(|a| (a.name.as_str(), &a.destination))
        .collect();
    let mut unexpected = Vec::new();
    for finding in report["findings"].as_array().into_iter().flatten() {
        if !is_shared_base(finding, &destinations) {
            unexpected.push(finding.to_string());
        }
    }
    if !unexpected.is_empty() {
        return Err(format!(
            "argocd-source-lint reports on {}:\n{}",
            tree.display(),
            unexpected.join("\n")
        )
        .into());
    }
    Ok(())
}

/// A `double-coverage` finding for a file of a kustomize base whose
/// Applications all deploy to different destinations (see the module doc).
fn is_shared_base(finding: &Json, destinations: &BTreeMap<&str, &(String, String)>) -> bool {
    if finding["rule_id"] != "double-coverage" {
        return false;
    }
    let file = finding["file"].as_str().unwrap_or_default();
    if !file.split('/').any(|c| c == "base") {
        return false;
    }
    // "File covered by N different Applications: a, b — …"
    let message = finding["message"].as_str().unwrap_or_default();
    let Some(names) = message
        .split_once("Applications: ")
        .and_then(|(_, rest)| rest.split_once(" — "))
        .map(|(names, _)| names)
    else {
        return false;
    };
    let mut seen = BTreeSet::new();
    names.split(", ").all(|name| {
        destinations
            .get(name)
            .is_some_and(|destination| seen.insert(*destination))
    })
}
