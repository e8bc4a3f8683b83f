//! `ImageUpdater` resources (argocd-image-updater.argoproj.io/v1alpha1): one
//! per app and site, with one application ref per app stage that Image
//! Updater updates live.
//!
//! Rules from upstream (see the reference notes):
//! - the resource lives in the Applications' namespace; `spec.namespace` only
//!   for the releases whose CRD requires it (v1.0.0–1.0.2, v1.1.0);
//! - `namePattern`s are exact Application names, so no two refs — and no
//!   two resources — ever match one Application;
//! - every `commonUpdateSettings` spells out `updateStrategy` and
//!   `forceUpdate`, and every `writeBackConfig` its `method`: the CRDs fill in
//!   defaults for absent fields, which would override inherited settings;
//! - Helm targets always carry both `name` and `tag` (required in v1.0.x;
//!   their defaults changed in v1.1).

use std::collections::BTreeMap;

use serde_yaml::Value;

use super::argocd::{SYNC_WAVE, WAVE_IMAGE_UPDATERS, is_live, keelson_dir};
use super::{Dep, Emitter, Inputs, map, s, seq};
use crate::model::{
    AllowTags, AppId, Estate, GitProvider, ImageTarget, SiteId, Strategy, WriteBack,
};
use crate::semver::Version;

pub(super) fn emit(input: &Inputs<'_>, deps: &[Dep<'_>], out: &mut Emitter<'_>) {
    let estate = input.estate;
    let mut groups: BTreeMap<(SiteId, AppId), Vec<&Dep<'_>>> = BTreeMap::new();
    for dep in deps.iter().filter(|d| is_live(d)) {
        groups
            .entry((dep.site_id, dep.app_id))
            .or_default()
            .push(dep);
    }
    let groups: Vec<_> = groups.into_iter().collect();
    out.par_each(&groups, |((site_id, app_id), deps), out| {
        let site = estate.site(*site_id);
        let app = estate.app(*app_id);
        let doc = resource(estate, deps);
        out.put_yaml(
            &format!(
                "{}/imageupdater-{}.yaml",
                keelson_dir(estate, &site.name.value),
                app.name.value
            ),
            &doc,
            format!(
                "the ImageUpdater of app `{}` in site `{}`",
                app.name.value, site.name.value
            ),
            app.loc,
        );
    });
}

/// Whether the targeted release's CRD requires `spec.namespace`.
fn needs_spec_namespace(v: &Version) -> bool {
    let at_least =
        |s: &str| v.compare(&Version::parse(s).expect("static")) != std::cmp::Ordering::Less;
    (at_least("1.0.0") && !at_least("1.0.3")) || (at_least("1.1.0") && !at_least("1.1.1"))
}

fn resource(estate: &Estate, deps: &[&Dep<'_>]) -> Value {
    let first = deps[0];
    let namespace = &first.site.argocd_namespace;
    let mut refs: Vec<Value> = Vec::new();
    let mut sorted: Vec<&&Dep<'_>> = deps.iter().collect();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    for dep in sorted {
        let images: Vec<Value> = dep
            .app
            .images
            .iter()
            .enumerate()
            // A pinned image is keelson's alone.
            .filter(|(ii, _)| !dep.d.pins.iter().any(|p| p.image == *ii))
            .map(|(_, image)| {
                let mut image_name = image.repository.value.0.clone();
                // The tag part is the constraint for semver and the tracked
                // tag for digest; the other strategies ignore it.
                if let Some(c) = &image.constraint {
                    if matches!(image.strategy.value, Strategy::Semver | Strategy::Digest)
                        && !c.value.trim().is_empty()
                    {
                        image_name = format!("{image_name}:{}", c.value);
                    }
                }
                let mut settings = vec![
                    ("updateStrategy", s(image.strategy.value.name())),
                    ("forceUpdate", Value::Bool(false)),
                ];
                match image.allow_tags.as_ref().map(|a| &a.value) {
                    Some(AllowTags::Regexp(re)) => {
                        settings.push(("allowTags", s(format!("regexp:{}", re.as_str()))))
                    }
                    Some(AllowTags::Any) => settings.push(("allowTags", s("any"))),
                    // Never emitted: `check` reports it as an error.
                    Some(AllowTags::Nothing(v)) => settings.push(("allowTags", s(v.clone()))),
                    None => {}
                }
                if !image.ignore_tags.is_empty() {
                    settings.push((
                        "ignoreTags",
                        seq(image.ignore_tags.iter().map(|t| s(t.value.clone()))),
                    ));
                }
                if !image.platforms.is_empty() {
                    settings.push((
                        "platforms",
                        seq(image.platforms.iter().map(|p| s(p.value.clone()))),
                    ));
                }
                let target = match &image.target {
                    ImageTarget::Kustomize { .. } => map(vec![(
                        "kustomize",
                        map(vec![("name", s(image.kustomize_name()))]),
                    )]),
                    ImageTarget::Helm { name, tag, spec } => {
                        let mut h = vec![("name", s(name.clone())), ("tag", s(tag.clone()))];
                        if let Some(spec) = spec {
                            h.push(("spec", s(spec.clone())));
                        }
                        map(vec![("helm", map(h))])
                    }
                };
                map(vec![
                    ("alias", s(image.alias.value.clone())),
                    ("imageName", s(image_name)),
                    ("commonUpdateSettings", map(settings)),
                    ("manifestTargets", target),
                ])
            })
            .collect();
        refs.push(map(vec![
            ("namePattern", s(dep.name.clone())),
            ("writeBackConfig", write_back(estate, dep)),
            ("images", seq(images)),
        ]));
    }
    let mut spec = Vec::new();
    if needs_spec_namespace(&estate.image_updater.version.value) {
        spec.push(("namespace", s(namespace.clone())));
    }
    spec.push(("applicationRefs", seq(refs)));
    map(vec![
        ("apiVersion", s("argocd-image-updater.argoproj.io/v1alpha1")),
        ("kind", s("ImageUpdater")),
        (
            "metadata",
            map(vec![
                ("name", s(first.app.name.value.clone())),
                ("namespace", s(namespace.clone())),
                (
                    "annotations",
                    map(vec![
                        // The CRD arrives with Image Updater's chart in an
                        // earlier wave; until then the dry run cannot know the kind.
                        (
                            "argocd.argoproj.io/sync-options",
                            s("SkipDryRunOnMissingResource=true"),
                        ),
                        (SYNC_WAVE, s(WAVE_IMAGE_UPDATERS.to_string())),
                    ]),
                ),
            ]),
        ),
        ("spec", map(spec)),
    ])
}

fn write_back(estate: &Estate, dep: &Dep<'_>) -> Value {
    let (branch, credentials, provider) = match &dep.stage.write_back.value {
        WriteBack::Git {
            branch,
            credentials,
        } => (branch, credentials, None),
        WriteBack::PullRequest {
            provider,
            branch,
            credentials,
        } => (branch, credentials, Some(provider)),
        WriteBack::Argocd | WriteBack::Pinned => return map(vec![("method", s("argocd"))]),
    };
    let method = match credentials {
        Some(c) => format!("git:{c}"),
        None => "git".into(),
    };
    let branch = branch.clone().unwrap_or_else(|| estate.repo.branch.clone());
    // As the estate wrote it (checked to be the overlay); else the
    // kustomization in the Application's path, which is the overlay.
    let target = dep
        .app
        .write_back_target(dep.d)
        .map_or_else(|| "kustomization".to_string(), |t| t.value.to_string());
    let mut git = vec![("branch", s(branch)), ("writeBackTarget", s(target))];
    if let Some(provider) = provider {
        let key = match provider {
            GitProvider::Github => "github",
            GitProvider::Gitlab => "gitlab",
        };
        git.push(("pullRequest", map(vec![(key, map(vec![]))])));
    }
    map(vec![("method", s(method)), ("gitConfig", map(git))])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_namespace_only_where_the_crd_requires_it() {
        let v = |s: &str| Version::parse(s).unwrap();
        assert!(needs_spec_namespace(&v("1.0.1")));
        assert!(needs_spec_namespace(&v("1.0.2")));
        assert!(!needs_spec_namespace(&v("1.0.3")));
        assert!(needs_spec_namespace(&v("1.1.0")));
        assert!(!needs_spec_namespace(&v("1.1.1")));
        assert!(!needs_spec_namespace(&v("1.2.2")));
        assert!(!needs_spec_namespace(&v("1.3.0")));
    }
}
