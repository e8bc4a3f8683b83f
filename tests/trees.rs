//! Compile goldens: every example under `examples/` and every case under
//! `tests/compile/` is compiled into a fresh directory, and
//!
//! - the whole tree is compared, file by file, with the golden tree
//!   (`tests/trees/<example>/`, or `tests/compile/<case>/expected/`); a case
//!   that must fail has `expected.diagnostics` instead;
//! - every Argo CD and Image Updater resource is validated against the
//!   upstream CRD schema of the version the estate targets, and every
//!   kustomization against the kustomization schema;
//! - every Application's kustomize path is built with the real
//!   `kubectl kustomize`, and each image its overlay pins must appear, pinned,
//!   in the rendered manifests.
//!
//! `KEELSON_BLESS=1 cargo test -p keelson-tests --test it -- trees::` rewrites
//! the goldens.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use keelson::compile::{self, Options};
use keelson::diagnostic::render_concise;
use keelson_testkit::harness::{self, Failed, Trial};
use keelson_tests::schema::{ImageUpdaterSchema, Validator, kubectl_kustomize};
use keelson_tests::{bless, compare_golden, repo_root, subdirs};

/// Every file under `dir`, relative, `/`-separated, with its bytes.
fn read_tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for path in keelson::check::walk(dir) {
        let rel = path.strip_prefix(dir).unwrap();
        let rel: Vec<String> = rel
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        out.insert(rel.join("/"), std::fs::read(&path).unwrap());
    }
    out
}

fn compare_trees(golden: &Path, actual_dir: &Path) -> Result<(), Failed> {
    let actual = read_tree(actual_dir);
    if bless() {
        let _ = std::fs::remove_dir_all(golden);
        for (rel, bytes) in &actual {
            let p = golden.join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, bytes).unwrap();
        }
        return Ok(());
    }
    let expected = read_tree(golden);
    let mut problems = Vec::new();
    for (rel, bytes) in &expected {
        match actual.get(rel) {
            None => problems.push(format!("missing: {rel}")),
            Some(a) if a != bytes => {
                let diff =
                    similar_lines(&String::from_utf8_lossy(bytes), &String::from_utf8_lossy(a));
                problems.push(format!("differs: {rel}\n{diff}"));
            }
            Some(_) => {}
        }
    }
    for rel in actual.keys() {
        if !expected.contains_key(rel) {
            problems.push(format!("unexpected: {rel}"));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "the compiled tree differs from {} (KEELSON_BLESS=1 rewrites it):\n{}",
            golden.display(),
            problems.join("\n")
        )
        .into())
    }
}

/// A small line diff for failure messages.
fn similar_lines(expected: &str, actual: &str) -> String {
    let e: Vec<&str> = expected.lines().collect();
    let a: Vec<&str> = actual.lines().collect();
    let mut out = String::new();
    for i in 0..e.len().max(a.len()) {
        match (e.get(i), a.get(i)) {
            (Some(x), Some(y)) if x == y => {}
            (x, y) => {
                if let Some(x) = x {
                    out.push_str(&format!("  -{x}\n"));
                }
                if let Some(y) = y {
                    out.push_str(&format!("  +{y}\n"));
                }
            }
        }
    }
    out
}

fn schema_for(estate_dir: &Path) -> ImageUpdaterSchema {
    let checked = keelson::check::check_dir(estate_dir).unwrap();
    let v = &checked.estate.unwrap().image_updater.version.value;
    if v.to_string().starts_with("1.0.") {
        ImageUpdaterSchema::V1_0_1
    } else {
        ImageUpdaterSchema::V1_3_0
    }
}

/// Schema-validates every YAML document; returns the Applications' paths.
fn validate_tree(estate_dir: &Path, out: &Path) -> Result<Vec<String>, Failed> {
    let validator = Validator::new(schema_for(estate_dir));
    let mut errors = Vec::new();
    let mut paths = Vec::new();
    let mut validated = 0;
    for (rel, bytes) in read_tree(out) {
        if !(rel.ends_with(".yaml") || rel.ends_with(".yml")) {
            continue;
        }
        let text = String::from_utf8(bytes).map_err(|_| format!("{rel} is not UTF-8"))?;
        if rel.ends_with("kustomization.yaml") {
            let doc: serde_yaml::Value =
                serde_yaml::from_str(&text).map_err(|e| format!("{rel}: {e}"))?;
            match validator.validate_kustomization(&doc) {
                Ok(()) => validated += 1,
                Err(es) => errors.extend(es.into_iter().map(|e| format!("{rel}: {e}"))),
            }
            continue;
        }
        match validator.validate_text(&rel, &text) {
            Ok(n) => validated += n,
            Err(es) => errors.extend(es),
        }
        for doc in serde_yaml::Deserializer::from_str(&text) {
            use serde::Deserialize;
            let v = serde_yaml::Value::deserialize(doc).unwrap();
            if v.get("kind").and_then(|k| k.as_str()) == Some("Application") {
                if let Some(p) = v
                    .get("spec")
                    .and_then(|s| s.get("source"))
                    .and_then(|s| s.get("path"))
                    .and_then(|p| p.as_str())
                {
                    if v.get("spec")
                        .and_then(|s| s.get("source"))
                        .and_then(|s| s.get("directory"))
                        .is_none()
                    {
                        paths.push(p.to_string());
                    }
                }
            }
        }
    }
    if !errors.is_empty() {
        return Err(format!("schema validation failed:\n{}", errors.join("\n")).into());
    }
    if validated == 0 {
        return Err("no document was validated".into());
    }
    Ok(paths)
}

/// Builds each Application's path with kubectl and checks its pinned images.
/// Returns what each path renders to.
fn build_overlays(out: &Path, paths: &[String]) -> Result<BTreeMap<String, String>, Failed> {
    let mut all = BTreeMap::new();
    for p in paths {
        let dir = out.join(p);
        let rendered = kubectl_kustomize(&dir);
        let k: serde_yaml::Value = serde_yaml::from_str(
            &std::fs::read_to_string(dir.join("kustomization.yaml"))
                .map_err(|e| format!("{p}: {e}"))?,
        )
        .map_err(|e| format!("{p}: {e}"))?;
        for image in k
            .get("images")
            .and_then(|i| i.as_sequence())
            .into_iter()
            .flatten()
        {
            let field = |f: &str| image.get(f).and_then(|v| v.as_str());
            let name = field("newName").or(field("name")).unwrap();
            let mut expected = name.to_string();
            if let Some(t) = field("newTag") {
                expected.push_str(&format!(":{t}"));
            }
            if let Some(d) = field("digest") {
                expected.push_str(&format!("@{d}"));
            }
            if !rendered
                .lines()
                .any(|l| l.trim_start().trim_start_matches("- ") == format!("image: {expected}"))
            {
                return Err(format!("`kubectl kustomize {p}` does not run the pinned image `{expected}`:\n{rendered}").into());
            }
        }
        all.insert(p.clone(), rendered);
    }
    Ok(all)
}

/// Every YAML document of the tree that is of `kind`.
fn documents_of(out: &Path, kind: &str) -> Vec<serde_yaml::Value> {
    use serde::Deserialize;
    let mut docs = Vec::new();
    for (rel, bytes) in read_tree(out) {
        if !rel.ends_with(".yaml") {
            continue;
        }
        let text = String::from_utf8_lossy(&bytes);
        for doc in serde_yaml::Deserializer::from_str(&text) {
            if let Ok(v) = serde_yaml::Value::deserialize(doc) {
                if v.get("kind").and_then(|k| k.as_str()) == Some(kind) {
                    docs.push(v);
                }
            }
        }
    }
    docs
}

fn at<'v>(v: &'v serde_yaml::Value, path: &[&str]) -> Option<&'v str> {
    path.iter().try_fold(v, |v, k| v.get(*k))?.as_str()
}

/// What Argo CD would do with the tree: no object (destination, namespace,
/// group, kind, name) is rendered by two Applications, which Argo CD reports
/// as a SharedResourceWarning while the two fight over it. The objects come
/// from the real `kubectl kustomize` of each Application's path, placed as
/// Argo CD places them.
fn one_owner_per_object(out: &Path, rendered: &BTreeMap<String, String>) -> Result<(), Failed> {
    use serde::Deserialize;
    const CLUSTER_SCOPED: &[&str] = &[
        "Namespace",
        "ClusterRole",
        "ClusterRoleBinding",
        "CustomResourceDefinition",
        "StorageClass",
        "PriorityClass",
        "IngressClass",
        "PersistentVolume",
        "ValidatingWebhookConfiguration",
        "MutatingWebhookConfiguration",
    ];
    let mut owners: BTreeMap<String, String> = BTreeMap::new();
    let mut problems = Vec::new();
    for app in documents_of(out, "Application") {
        let (Some(name), Some(path), Some(server), Some(namespace)) = (
            at(&app, &["metadata", "name"]),
            at(&app, &["spec", "source", "path"]),
            at(&app, &["spec", "destination", "server"]),
            at(&app, &["spec", "destination", "namespace"]),
        ) else {
            continue;
        };
        let Some(text) = rendered.get(path) else {
            continue;
        };
        for doc in serde_yaml::Deserializer::from_str(text) {
            let o = serde_yaml::Value::deserialize(doc).unwrap();
            let kind = at(&o, &["kind"]).unwrap_or_default();
            let group = at(&o, &["apiVersion"])
                .and_then(|a| a.rsplit_once('/'))
                .map_or("", |(g, _)| g);
            let ns = if CLUSTER_SCOPED.contains(&kind) {
                ""
            } else {
                at(&o, &["metadata", "namespace"]).unwrap_or(namespace)
            };
            let object_name = at(&o, &["metadata", "name"]).unwrap_or_default();
            let key = format!("{server} {ns} {group}/{kind} {object_name}");
            if let Some(first) = owners.insert(key.clone(), name.to_string()) {
                problems.push(format!(
                    "{key}: applied by Applications `{first}` and `{name}`"
                ));
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!("objects with two owners:\n{}", problems.join("\n")).into())
    }
}

/// Every git write-back of every ImageUpdater lands on a kustomization in
/// the tree that pins each of the ref's images: the target resolved as Image
/// Updater resolves it (`/DIR` from the repository root, anything else
/// joined onto the Application's path).
fn write_back_targets_land(out: &Path) -> Result<(), Failed> {
    let apps: BTreeMap<String, String> = documents_of(out, "Application")
        .iter()
        .filter_map(|a| {
            Some((
                at(a, &["metadata", "name"])?.to_string(),
                at(a, &["spec", "source", "path"])?.to_string(),
            ))
        })
        .collect();
    let mut problems = Vec::new();
    for iu in documents_of(out, "ImageUpdater") {
        let refs = iu
            .get("spec")
            .and_then(|s| s.get("applicationRefs"))
            .and_then(|r| r.as_sequence())
            .cloned()
            .unwrap_or_default();
        for r in refs {
            let method = at(&r, &["writeBackConfig", "method"]).unwrap_or("argocd");
            if !method.starts_with("git") {
                continue;
            }
            let name = at(&r, &["namePattern"]).unwrap_or_default();
            let Some(path) = apps.get(name) else {
                problems.push(format!("ref `{name}` names no Application with a path"));
                continue;
            };
            let target =
                at(&r, &["writeBackConfig", "gitConfig", "writeBackTarget"]).unwrap_or("(none)");
            let dir = match target.strip_prefix("kustomization") {
                Some("") => path.clone(),
                Some(rest) => match rest.strip_prefix(':') {
                    Some(abs) if abs.starts_with('/') => abs[1..].to_string(),
                    Some(rel) => format!("{path}/{rel}"),
                    None => {
                        problems.push(format!("ref `{name}`: target `{target}`"));
                        continue;
                    }
                },
                None => {
                    problems.push(format!(
                        "ref `{name}`: target `{target}` is not a kustomization"
                    ));
                    continue;
                }
            };
            let file = out.join(&dir).join("kustomization.yaml");
            let k: serde_yaml::Value = match std::fs::read_to_string(&file) {
                Ok(t) => serde_yaml::from_str(&t).map_err(|e| format!("{dir}: {e}"))?,
                Err(_) => {
                    problems.push(format!(
                        "ref `{name}`: `{target}` has no kustomization.yaml in the tree (`{dir}`)"
                    ));
                    continue;
                }
            };
            let pinned: Vec<&str> = k
                .get("images")
                .and_then(|i| i.as_sequence())
                .into_iter()
                .flatten()
                .filter_map(|i| at(i, &["name"]))
                .collect();
            for image in r
                .get("images")
                .and_then(|i| i.as_sequence())
                .into_iter()
                .flatten()
            {
                let wanted =
                    at(image, &["manifestTargets", "kustomize", "name"]).unwrap_or_default();
                if !pinned.contains(&wanted) {
                    problems.push(format!(
                        "ref `{name}`: `{dir}/kustomization.yaml` pins no image `{wanted}`"
                    ));
                }
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!("write-back targets that miss:\n{}", problems.join("\n")).into())
    }
}

/// The `now` of every golden compile, unless a case has a `now` file.
const NOW: &str = "2026-11-23T09:30:00Z";

/// Compile options for a case: a fixed `now` (the lock records it), no
/// registry cache, and the limits a case's `limits` file sets
/// (`fuel=N`, `memory_mib=N`, `deadline_ms=N`).
fn options_for(case: &Path) -> Result<Options, Failed> {
    let now = std::fs::read_to_string(case.join("now")).unwrap_or_else(|_| NOW.into());
    let mut options = Options {
        now: Some(now.trim().parse().map_err(|e| format!("bad `now`: {e}"))?),
        ..Options::default()
    };
    options.registry.cache_dir = None;
    if let Ok(text) = std::fs::read_to_string(case.join("limits")) {
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let (k, v) = line.split_once('=').ok_or("limits: write key=value")?;
            let v: u64 = v.trim().parse().map_err(|_| format!("limits: bad {k}"))?;
            match k.trim() {
                "fuel" => options.policy_limits.fuel = v,
                "memory_mib" => options.policy_limits.memory = (v as usize) << 20,
                "deadline_ms" => {
                    options.policy_limits.deadline = std::time::Duration::from_millis(v)
                }
                other => return Err(format!("limits: unknown key {other}").into()),
            }
        }
    }
    Ok(options)
}

/// A case with WebAssembly text (`*.wat`) is copied, each `X.wat` assembled
/// into `X.wasm` beside it, so hostile modules live in the repo as text.
fn assembled(estate: &Path, tmp: &Path) -> PathBuf {
    let wats: Vec<PathBuf> = keelson::check::walk(estate)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "wat"))
        .collect();
    if wats.is_empty() {
        return estate.to_path_buf();
    }
    let copy = tmp.join("estate");
    for path in keelson::check::walk(estate) {
        let rel = path.strip_prefix(estate).unwrap();
        let target = copy.join(rel);
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        if path.extension().is_some_and(|e| e == "wat") {
            let bytes = wat::parse_file(&path)
                .unwrap_or_else(|e| panic!("{} does not assemble: {e}", path.display()));
            std::fs::write(target.with_extension("wasm"), bytes).unwrap();
        } else {
            std::fs::copy(&path, &target).unwrap();
        }
    }
    copy
}

fn run_case(
    estate: &Path,
    golden: Option<&Path>,
    diagnostics: Option<&Path>,
) -> Result<(), Failed> {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let options = options_for(estate)?;
    let estate = &assembled(estate, tmp.path());
    let started = std::time::Instant::now();
    let compiled =
        compile::compile_dir(estate, &out, &options).map_err(|e| format!("compile failed: {e}"))?;
    // Hostile modules must be stopped within a bounded time.
    if started.elapsed() > options.policy_limits.deadline * 3 + std::time::Duration::from_secs(30) {
        return Err(format!("compile took {:?}", started.elapsed()).into());
    }
    let rendered = render_concise(&compiled.diagnostics, &compiled.sources);
    if let Some(expected) = diagnostics {
        compare_golden(expected, &rendered)?;
        if out.exists() && !read_tree(&out).is_empty() {
            return Err("a compile with errors wrote files".into());
        }
        return Ok(());
    }
    if compiled.has_errors() {
        return Err(format!("compile failed:\n{rendered}").into());
    }
    compare_trees(golden.unwrap(), &out)?;
    let paths = validate_tree(estate, &out)?;
    let rendered = build_overlays(&out, &paths)?;
    one_owner_per_object(&out, &rendered)?;
    write_back_targets_land(&out)?;
    Ok(())
}

/// One trial per example, per compile case and per promotion walkthrough.
pub fn trials() -> Vec<Trial> {
    let root = repo_root();
    let mut trials = Vec::new();
    for dir in subdirs(&root.join("examples")) {
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let golden = root.join("tests/trees").join(&name);
        trials.push(harness::case(
            format!("trees::examples::{name}"),
            move || run_case(&dir, Some(&golden), None),
        ));
    }
    let cases = root.join("tests/compile");
    if cases.is_dir() {
        for dir in subdirs(&cases) {
            let name = dir.file_name().unwrap().to_string_lossy().into_owned();
            let diags: PathBuf = dir.join("expected.diagnostics");
            let golden = dir.join("expected");
            trials.push(harness::case(
                format!("trees::compile::{name}"),
                move || {
                    if diags.exists() {
                        run_case(&dir, None, Some(&diags))
                    } else {
                        run_case(&dir, Some(&golden), None)
                    }
                },
            ));
        }
    }
    let walks = root.join("tests/promotion");
    if walks.is_dir() {
        for dir in subdirs(&walks) {
            let name = dir.file_name().unwrap().to_string_lossy().into_owned();
            trials.push(harness::case(
                format!("trees::promotion::{name}"),
                move || run_walk(&dir),
            ));
        }
    }
    trials
}

/// A promotion walkthrough: `tests/promotion/<walk>/` names an example
/// (`example` file) and holds numbered steps. Each step compiles the example
/// into the same output directory at the step's `now`, optionally with the
/// step's `tags.json` in place of the example's snapshot, and compares the
/// whole tree with the step's `expected/` — so the goldens show what each
/// compile changes as time passes.
fn run_walk(walk: &Path) -> Result<(), Failed> {
    let root = repo_root();
    let example = std::fs::read_to_string(walk.join("example")).map_err(|e| e.to_string())?;
    let example = root.join("examples").join(example.trim());
    let tmp = tempfile::tempdir().unwrap();
    let estate = tmp.path().join("estate");
    for path in keelson::check::walk(&example) {
        let target = estate.join(path.strip_prefix(&example).unwrap());
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::copy(&path, &target).unwrap();
    }
    let out = tmp.path().join("out");
    for step in subdirs(walk) {
        let name = step.file_name().unwrap().to_string_lossy().into_owned();
        if step.join("tags.json").exists() {
            std::fs::copy(step.join("tags.json"), estate.join("tags.json")).unwrap();
        }
        let options = options_for(&step)?;
        let compiled = compile::compile_dir(&estate, &out, &options)
            .map_err(|e| format!("step {name}: compile failed: {e}"))?;
        let rendered = render_concise(&compiled.diagnostics, &compiled.sources);
        compare_golden(&step.join("expected.diagnostics"), &rendered)
            .map_err(|e| format!("step {name}: {e}"))?;
        if compiled.has_errors() {
            return Err(format!("step {name} failed:\n{rendered}").into());
        }
        compare_trees(&step.join("expected"), &out)
            .map_err(|e| format!("step {name}: {}", e.message().unwrap_or("trees differ")))?;
        let paths = validate_tree(&estate, &out)?;
        build_overlays(&out, &paths)?;
    }
    Ok(())
}
