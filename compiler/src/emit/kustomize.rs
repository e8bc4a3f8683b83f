//! Kustomize bases and overlays for apps given as manifests or templates.
//!
//! A directory of plain YAML is wrapped in a kustomization (Image Updater
//! cannot write back into a plain directory app). Each app stage gets an
//! overlay whose `images:` pins what the stage runs, in Image Updater's own
//! shape (`name`, `newName` only with a kustomize name, `newTag`, `digest`),
//! so that when Image Updater would pick the same image it commits nothing,
//! and when it commits, the next compile reproduces its file.

use std::collections::{BTreeMap, BTreeSet};

use serde_yaml::Value;

use super::{Dep, Emitter, Inputs, KUSTOMIZATION_NAMES, map, s, seq};
use crate::diagnostic::{Code, Diagnostic};
use crate::model::{AppId, Manifests};
use crate::templates;
use crate::tree::relative;

pub(super) fn emit(input: &Inputs<'_>, deps: &[Dep<'_>], out: &mut Emitter<'_>) {
    // Workloads per app (for `replicas`), from the base each app gets.
    let mut done: BTreeSet<AppId> = BTreeSet::new();
    let firsts: Vec<&Dep<'_>> = deps.iter().filter(|d| done.insert(d.app_id)).collect();
    // Apps in parallel; `par_each` puts their files in this order.
    let workloads: BTreeMap<AppId, Vec<String>> = out
        .par_each(&firsts, |dep, out| base(input, dep, out))
        .into_iter()
        .flatten()
        .collect();
    out.par_each(deps, |dep, out| overlay(input, dep, &workloads, out));
}

/// An app's base; the workloads in it, when it has one.
fn base(input: &Inputs<'_>, dep: &Dep<'_>, out: &mut Emitter<'_>) -> Option<(AppId, Vec<String>)> {
    match &dep.app.manifests {
        Manifests::Directory(dir) => {
            let files = input
                .files
                .dirs
                .get(&dep.app_id)
                .map(Vec::as_slice)
                .unwrap_or_default();
            let own = files
                .iter()
                .any(|f| KUSTOMIZATION_NAMES.contains(&f.rel.as_str()));
            let mut resources = Vec::new();
            let mut names = Vec::new();
            for f in files {
                let is_yaml = f.rel.ends_with(".yaml") || f.rel.ends_with(".yml");
                // With its own kustomization the directory is copied whole;
                // otherwise only its YAML, listed as resources.
                if !own && !is_yaml {
                    continue;
                }
                if is_yaml {
                    if let Ok(text) = std::str::from_utf8(&f.bytes) {
                        names.extend(workload_names(text));
                    }
                    if !own {
                        resources.push(s(f.rel.clone()));
                    }
                }
                out.put(
                    &format!("{}/{}", dep.base, f.rel),
                    f.bytes.clone(),
                    format!("manifest `{}` of app `{}`", f.rel, dep.app.name.value),
                    dir.loc,
                );
            }
            if !own {
                let doc = kustomization(vec![("resources", seq(resources))]);
                out.put_yaml(
                    &format!("{}/kustomization.yaml", dep.base),
                    &doc,
                    format!("the base kustomization of app `{}`", dep.app.name.value),
                    dir.loc,
                );
            }
            Some((dep.app_id, names))
        }
        Manifests::Template { name, params } => {
            let rendered = templates::render(dep.app, name, params, out.diags);
            let mut resources = Vec::new();
            for (file, doc) in rendered {
                resources.push(s(file.clone()));
                out.put_yaml(
                    &format!("{}/{file}", dep.base),
                    &doc,
                    format!("template file `{file}` of app `{}`", dep.app.name.value),
                    name.loc,
                );
            }
            let doc = kustomization(vec![("resources", seq(resources))]);
            out.put_yaml(
                &format!("{}/kustomization.yaml", dep.base),
                &doc,
                format!("the base kustomization of app `{}`", dep.app.name.value),
                name.loc,
            );
            Some((dep.app_id, vec![dep.app.name.value.clone()]))
        }
        Manifests::Chart { .. } => None,
    }
}

/// The overlay of an app stage, which pins its images.
fn overlay(
    input: &Inputs<'_>,
    dep: &Dep<'_>,
    workloads: &BTreeMap<AppId, Vec<String>>,
    out: &mut Emitter<'_>,
) {
    let mut resources = Vec::new();
    match &dep.app.manifests {
        Manifests::Chart { .. } => return,
        Manifests::Template { name, params } if !dep.d.params.is_empty() => {
            // Stage parameters change the manifests themselves: render
            // them into the overlay instead of using the base.
            let mut merged = params.clone();
            for (k, v) in &dep.d.params {
                merged.insert(k.clone(), v.clone());
            }
            for (file, doc) in templates::render(dep.app, name, &merged, out.diags) {
                resources.push(s(file.clone()));
                out.put_yaml(
                    &format!("{}/{file}", dep.overlay),
                    &doc,
                    format!(
                        "template file `{file}` of app `{}` in stage `{}`",
                        dep.app.name.value, dep.stage.name.value
                    ),
                    dep.d.loc,
                );
            }
        }
        _ => resources.push(s(relative(&dep.overlay, &dep.base))),
    }
    let mut fields = vec![("resources", seq(resources))];
    if let Some(count) = dep.d.replicas {
        let names = workloads.get(&dep.app_id).cloned().unwrap_or_default();
        if names.is_empty() {
            out.diags.push(
                Diagnostic::warning(Code::IgnoredSetting, dep.d.loc, format!("`replicas` has nothing to scale: app `{}` has no Deployment or StatefulSet", dep.app.name.value))
                    .with_help("remove `replicas`, or add the workload to the app's manifests"),
            );
        } else {
            fields.push((
                "replicas",
                seq(names
                    .into_iter()
                    .map(|n| map(vec![("name", s(n)), ("count", Value::from(count))]))),
            ));
        }
    }
    let images: Vec<Value> = dep
        .app
        .images
        .iter()
        .enumerate()
        .filter_map(|(ii, image)| {
            let decided = input
                .decisions
                .images
                .get(&(dep.app_id, dep.stage_id(), ii))?;
            let mut entry = vec![("name", s(image.kustomize_name()))];
            if image.kustomize_name() != image.repository.value.0 {
                entry.push(("newName", s(image.repository.value.0.clone())));
            }
            if let Some(tag) = &decided.tag {
                entry.push(("newTag", s(tag.clone())));
            }
            if let Some(digest) = &decided.digest {
                entry.push(("digest", s(digest.clone())));
            }
            Some(map(entry))
        })
        .collect();
    if !images.is_empty() {
        fields.push(("images", seq(images)));
    }
    out.put_yaml(
        &format!("{}/kustomization.yaml", dep.overlay),
        &kustomization(fields),
        format!(
            "the overlay of app `{}` in stage `{}`",
            dep.app.name.value, dep.stage.name.value
        ),
        dep.d.loc,
    );
}

fn kustomization(fields: Vec<(&str, Value)>) -> Value {
    let mut all = vec![
        ("apiVersion", s("kustomize.config.k8s.io/v1beta1")),
        ("kind", s("Kustomization")),
    ];
    all.extend(fields);
    map(all)
}

/// Names of the Deployments and StatefulSets in a YAML stream.
fn workload_names(text: &str) -> Vec<String> {
    use serde::Deserialize;
    let mut names = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(text) {
        let Ok(v) = Value::deserialize(doc) else {
            break;
        };
        let kind = v.get("kind").and_then(Value::as_str);
        if matches!(kind, Some("Deployment" | "StatefulSet")) {
            if let Some(n) = v
                .get("metadata")
                .and_then(|m| m.get("name"))
                .and_then(Value::as_str)
            {
                names.push(n.to_string());
            }
        }
    }
    names.sort();
    names.dedup();
    names
}
