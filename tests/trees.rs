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
//! `KEELSON_BLESS=1 cargo test --test trees` rewrites the goldens.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use keelson::compile::{self, Options};
use keelson::diagnostic::render_concise;
use keelson_tests::schema::{ImageUpdaterSchema, Validator, kubectl_kustomize};
use keelson_tests::{bless, compare_golden, repo_root, subdirs};
use libtest_mimic::{Arguments, Failed, Trial};

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
fn build_overlays(out: &Path, paths: &[String]) -> Result<(), Failed> {
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
    }
    Ok(())
}

fn run_case(
    estate: &Path,
    golden: Option<&Path>,
    diagnostics: Option<&Path>,
) -> Result<(), Failed> {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let compiled = compile::compile_dir(estate, &out, &Options::default())
        .map_err(|e| format!("compile failed: {e}"))?;
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
    build_overlays(&out, &paths)?;
    Ok(())
}

fn main() {
    let args = Arguments::from_args();
    let root = repo_root();
    let mut trials = Vec::new();
    for dir in subdirs(&root.join("examples")) {
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let golden = root.join("tests/trees").join(&name);
        trials.push(Trial::test(format!("examples::{name}"), move || {
            run_case(&dir, Some(&golden), None)
        }));
    }
    let cases = root.join("tests/compile");
    if cases.is_dir() {
        for dir in subdirs(&cases) {
            let name = dir.file_name().unwrap().to_string_lossy().into_owned();
            let diags: PathBuf = dir.join("expected.diagnostics");
            let golden = dir.join("expected");
            trials.push(Trial::test(format!("compile::{name}"), move || {
                if diags.exists() {
                    run_case(&dir, None, Some(&diags))
                } else {
                    run_case(&dir, Some(&golden), None)
                }
            }));
        }
    }
    libtest_mimic::run(&args, trials).exit();
}
