//! Proves that `keelson_tests::schema` can fail: each schema accepts a known-good document and
//! rejects known-bad ones, for the right reason. And that `kubectl kustomize` really runs.

use std::sync::OnceLock;

use keelson_tests::schema::{ImageUpdaterSchema, Validator, kubectl_kustomize};

pub fn trials() -> Vec<keelson_testkit::harness::Trial> {
    keelson_testkit::trials![
        application_valid,
        application_unknown_field_in_spec_fails,
        application_unknown_field_deep_fails,
        application_missing_destination_fails,
        application_wrong_type_fails,
        unquoted_sync_wave_annotation_fails,
        metadata_rules_are_checked,
        wrong_api_version_of_a_known_kind_fails,
        kinds_without_schema_are_not_validated,
        app_project_valid,
        app_project_invalid,
        image_updater_v1_3_0_valid,
        spec_namespace_fails_on_v1_3_0_and_is_required_on_v1_0_1,
        v1_0_1_helm_target_needs_tag,
        pull_request_exists_on_v1_3_0_only,
        required_fields_with_defaults_are_defaulted,
        image_updater_patterns_and_required_fields,
        duplicate_list_map_keys_fail,
        kustomization_valid,
        kustomization_invalid,
        validate_text_counts_and_prefixes,
        kubectl_kustomize_builds_an_overlay,
        kubectl_kustomize_fails_loudly,
    ]
}

/// Loading the Application CRD takes a moment; share one validator per ImageUpdater version.
fn v1_3_0() -> &'static Validator {
    static V: OnceLock<Validator> = OnceLock::new();
    V.get_or_init(|| Validator::new(ImageUpdaterSchema::V1_3_0))
}

fn v1_0_1() -> &'static Validator {
    static V: OnceLock<Validator> = OnceLock::new();
    V.get_or_init(|| Validator::new(ImageUpdaterSchema::V1_0_1))
}

fn parse(yaml: &str) -> serde_yaml::Value {
    serde_yaml::from_str(yaml).unwrap_or_else(|e| panic!("test YAML does not parse: {e}\n{yaml}"))
}

fn assert_valid(validator: &Validator, yaml: &str) {
    match validator.validate(&parse(yaml)) {
        Ok(true) => {}
        Ok(false) => panic!("expected the document to be validated, but it has no schema:\n{yaml}"),
        Err(errors) => panic!("expected valid, got:\n  {}\n{yaml}", errors.join("\n  ")),
    }
}

/// Asserts that validation fails and that some error mentions every one of `expected`
/// (a pointer, a field name, …), so the document fails for the reason the test is about.
fn assert_invalid(validator: &Validator, yaml: &str, expected: &[&str]) {
    match validator.validate(&parse(yaml)) {
        Ok(validated) => panic!("expected invalid, got Ok({validated}):\n{yaml}"),
        Err(errors) => assert!(
            errors
                .iter()
                .any(|e| expected.iter().all(|x| e.contains(x))),
            "expected an error mentioning {expected:?}, got:\n  {}",
            errors.join("\n  ")
        ),
    }
}

/// Replaces exactly one occurrence of `from`, so an edit cannot silently miss.
fn edit(yaml: &str, from: &str, to: &str) -> String {
    assert_eq!(
        yaml.matches(from).count(),
        1,
        "{from:?} must occur once in:\n{yaml}"
    );
    yaml.replace(from, to)
}

// ---------------------------------------------------------------------------------------------
// Argo CD Application

const APPLICATION: &str = r#"
apiVersion: argoproj.io/v1alpha1
kind: Application
metadata:
  name: shop-prod
  namespace: argocd
  finalizers:
    - resources-finalizer.argocd.argoproj.io
  annotations:
    argocd.argoproj.io/sync-wave: "1"
spec:
  project: default
  source:
    repoURL: https://github.com/acme/gitops.git
    targetRevision: main
    path: apps/shop/overlays/prod
  destination:
    server: https://kubernetes.default.svc
    namespace: shop
  syncPolicy:
    automated:
      prune: true
      selfHeal: true
    syncOptions:
      - CreateNamespace=true
      - ServerSideApply=true
"#;

fn application_valid() {
    assert_valid(v1_3_0(), APPLICATION);
}

fn application_unknown_field_in_spec_fails() {
    let doc = edit(
        APPLICATION,
        "  project: default\n",
        "  project: default\n  targetNamespace: shop\n",
    );
    assert_invalid(v1_3_0(), &doc, &["/spec:", "targetNamespace"]);
}

fn application_unknown_field_deep_fails() {
    let doc = edit(
        APPLICATION,
        "      selfHeal: true\n",
        "      selfHeal: true\n      selfheal: true\n",
    );
    assert_invalid(v1_3_0(), &doc, &["/spec/syncPolicy/automated", "selfheal"]);
}

fn application_missing_destination_fails() {
    let doc = edit(
        APPLICATION,
        "  destination:\n    server: https://kubernetes.default.svc\n    namespace: shop\n",
        "",
    );
    assert_invalid(v1_3_0(), &doc, &["/spec:", "destination"]);
}

fn application_wrong_type_fails() {
    let doc = edit(APPLICATION, "      - ServerSideApply=true\n", "      - 3\n");
    assert_invalid(v1_3_0(), &doc, &["/spec/syncPolicy/syncOptions/1"]);
}

fn unquoted_sync_wave_annotation_fails() {
    // Annotation values are strings; the API server refuses a YAML integer here.
    let doc = edit(APPLICATION, r#"sync-wave: "1""#, "sync-wave: 1");
    assert_invalid(
        v1_3_0(),
        &doc,
        &["/metadata/annotations/argocd.argoproj.io~1sync-wave"],
    );
}

fn metadata_rules_are_checked() {
    assert_invalid(
        v1_3_0(),
        &edit(APPLICATION, "name: shop-prod", "name: Shop_Prod"),
        &["/metadata/name"],
    );
    assert_invalid(
        v1_3_0(),
        &edit(
            APPLICATION,
            "  namespace: argocd\n",
            "  namespace: argocd\n  nmespace: x\n",
        ),
        &["/metadata:", "nmespace"],
    );
    assert_invalid(
        v1_3_0(),
        &edit(APPLICATION, "  name: shop-prod\n", ""),
        &["/metadata:", "name"],
    );
}

fn wrong_api_version_of_a_known_kind_fails() {
    let doc = edit(APPLICATION, "argoproj.io/v1alpha1", "argoproj.io/v1");
    assert_invalid(v1_3_0(), &doc, &["/apiVersion"]);
}

fn kinds_without_schema_are_not_validated() {
    let deployment =
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec: {whatever: 1}\n";
    assert_eq!(v1_3_0().validate(&parse(deployment)), Ok(false));
    assert!(
        v1_3_0().validate(&parse("metadata: {name: x}\n")).is_err(),
        "no apiVersion/kind"
    );
}

// ---------------------------------------------------------------------------------------------
// Argo CD AppProject

const APP_PROJECT: &str = r#"
apiVersion: argoproj.io/v1alpha1
kind: AppProject
metadata:
  name: shop
  namespace: argocd
spec:
  description: The shop
  sourceRepos:
    - https://github.com/acme/gitops.git
  destinations:
    - server: https://kubernetes.default.svc
      namespace: shop
  clusterResourceWhitelist:
    - group: ""
      kind: Namespace
"#;

fn app_project_valid() {
    assert_valid(v1_3_0(), APP_PROJECT);
}

fn app_project_invalid() {
    // sourceRepos is a list, and there is no `destination` (singular).
    let doc = edit(
        APP_PROJECT,
        "  sourceRepos:\n    - https://github.com/acme/gitops.git\n",
        "  sourceRepos: https://github.com/acme/gitops.git\n",
    );
    assert_invalid(v1_3_0(), &doc, &["/spec/sourceRepos"]);
    let doc = edit(APP_PROJECT, "  destinations:", "  destination:");
    assert_invalid(v1_3_0(), &doc, &["/spec:", "destination"]);
    // `kind` is required in a group-kind entry.
    let doc = edit(APP_PROJECT, "      kind: Namespace\n", "");
    assert_invalid(
        v1_3_0(),
        &doc,
        &["/spec/clusterResourceWhitelist/0", "kind"],
    );
}

// ---------------------------------------------------------------------------------------------
// Argo CD Image Updater's ImageUpdater, v1.3.0 and v1.0.1

const IMAGE_UPDATER: &str = r#"
apiVersion: argocd-image-updater.argoproj.io/v1alpha1
kind: ImageUpdater
metadata:
  name: shop-images
  namespace: argocd
spec:
  applicationRefs:
    - namePattern: "shop-*"
      images:
        - alias: web
          imageName: ghcr.io/acme/web:1.0.0
          commonUpdateSettings:
            updateStrategy: semver
            forceUpdate: false
          manifestTargets:
            kustomize:
              name: ghcr.io/acme/web
  writeBackConfig:
    method: git
    gitConfig:
      branch: main
      writeBackTarget: "kustomization:."
"#;

fn with_spec_namespace(doc: &str) -> String {
    edit(doc, "spec:\n", "spec:\n  namespace: argocd\n")
}

fn image_updater_v1_3_0_valid() {
    assert_valid(v1_3_0(), IMAGE_UPDATER);
}

fn spec_namespace_fails_on_v1_3_0_and_is_required_on_v1_0_1() {
    let with_ns = with_spec_namespace(IMAGE_UPDATER);
    assert_invalid(v1_3_0(), &with_ns, &["/spec:", "namespace"]);
    assert_valid(v1_0_1(), &with_ns);
    assert_invalid(
        v1_0_1(),
        IMAGE_UPDATER,
        &["/spec:", "namespace", "required"],
    );
}

fn v1_0_1_helm_target_needs_tag() {
    let helm = edit(
        IMAGE_UPDATER,
        "            kustomize:\n              name: ghcr.io/acme/web\n",
        "            helm:\n              name: image.repository\n",
    );
    assert_invalid(
        v1_0_1(),
        &with_spec_namespace(&helm),
        &[
            "/spec/applicationRefs/0/images/0/manifestTargets/helm",
            "tag",
        ],
    );
    // v1.3.0 defaults name and tag, so either alone is fine there.
    assert_valid(v1_3_0(), &helm);
    let both = edit(
        &helm,
        "name: image.repository\n",
        "name: image.repository\n              tag: image.tag\n",
    );
    assert_valid(v1_0_1(), &with_spec_namespace(&both));
}

fn pull_request_exists_on_v1_3_0_only() {
    let pr = edit(
        IMAGE_UPDATER,
        "      branch: main\n",
        "      branch: main\n      pullRequest:\n        github: {}\n",
    );
    assert_valid(v1_3_0(), &pr);
    assert_invalid(
        v1_0_1(),
        &with_spec_namespace(&pr),
        &["/spec/writeBackConfig/gitConfig", "pullRequest"],
    );
    // `github: {type: object}` has no fields in v1.3.0: anything in it would be dropped.
    let configured = edit(&pr, "github: {}", "github: {owner: acme}");
    assert_invalid(
        v1_3_0(),
        &configured,
        &[
            "/spec/writeBackConfig/gitConfig/pullRequest/github",
            "owner",
        ],
    );
}

fn required_fields_with_defaults_are_defaulted() {
    // v1.0.1 requires writeBackConfig.method but defaults it to "argocd", as the API server does.
    let no_method = edit(IMAGE_UPDATER, "    method: git\n", "");
    assert_valid(v1_0_1(), &with_spec_namespace(&no_method));
    // A null for a non-nullable field is dropped, then defaulted.
    let null_method = edit(IMAGE_UPDATER, "method: git", "method: null");
    assert_valid(v1_0_1(), &with_spec_namespace(&null_method));
}

fn image_updater_patterns_and_required_fields() {
    let v = v1_3_0();
    assert_invalid(
        v,
        &edit(IMAGE_UPDATER, "alias: web", "alias: -web"),
        &["/spec/applicationRefs/0/images/0/alias"],
    );
    assert_invalid(
        v,
        &edit(IMAGE_UPDATER, "method: git", "method: github"),
        &["/spec/writeBackConfig/method"],
    );
    assert_valid(
        v,
        &edit(
            IMAGE_UPDATER,
            "method: git",
            "method: git:secret:argocd/git-creds",
        ),
    );
    assert_invalid(
        v,
        &edit(
            IMAGE_UPDATER,
            "          imageName: ghcr.io/acme/web:1.0.0\n",
            "",
        ),
        &["/spec/applicationRefs/0/images/0", "imageName"],
    );
    assert_invalid(
        v,
        &edit(
            IMAGE_UPDATER,
            "    - namePattern: \"shop-*\"\n      images:",
            "    - images:",
        ),
        &["/spec/applicationRefs/0", "namePattern"],
    );
    assert_invalid(
        v,
        &edit(
            IMAGE_UPDATER,
            "forceUpdate: false",
            "forceUpdate: \"false\"",
        ),
        &["forceUpdate"],
    );
}

fn duplicate_list_map_keys_fail() {
    // images is an x-kubernetes-list-type: map keyed by alias.
    let twice = edit(
        IMAGE_UPDATER,
        "      images:\n",
        "      images:\n        - alias: web\n          imageName: ghcr.io/acme/other:1.0.0\n",
    );
    assert_invalid(
        v1_3_0(),
        &twice,
        &["/spec/applicationRefs/0/images/1", "duplicate", "web"],
    );
}

// ---------------------------------------------------------------------------------------------
// kustomization.yaml

const KUSTOMIZATION: &str = r#"
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
namespace: shop
resources:
  - ../../base
images:
  - name: ghcr.io/acme/web
    newTag: "1.2.3"
labels:
  - pairs:
      app.kubernetes.io/part-of: shop
"#;

fn kustomization_valid() {
    assert_valid(v1_3_0(), KUSTOMIZATION);
    let bare = edit(
        KUSTOMIZATION,
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n",
        "",
    );
    v1_3_0().validate_kustomization(&parse(&bare)).unwrap();
}

fn kustomization_invalid() {
    let images = edit(
        KUSTOMIZATION,
        "images:\n  - name: ghcr.io/acme/web\n    newTag: \"1.2.3\"\n",
        "images: \"x\"\n",
    );
    assert_invalid(v1_3_0(), &images, &["/images"]);
    // An unquoted 1.10 is the float 1.1, not a tag.
    assert_invalid(
        v1_3_0(),
        &edit(KUSTOMIZATION, "newTag: \"1.2.3\"", "newTag: 1.10"),
        &["/images/0/newTag"],
    );
    assert_invalid(
        v1_3_0(),
        &edit(KUSTOMIZATION, "namespace: shop", "namespaces: shop"),
        &["namespaces"],
    );
}

// ---------------------------------------------------------------------------------------------
// Multi-document text

fn validate_text_counts_and_prefixes() {
    let text = format!(
        "{APPLICATION}---\n{APP_PROJECT}---\napiVersion: v1\nkind: Namespace\nmetadata: {{name: shop}}\n---\n"
    );
    assert_eq!(v1_3_0().validate_text("apps.yaml", &text), Ok(2));

    let bad = format!(
        "{APPLICATION}---\n{}",
        edit(APP_PROJECT, "  destinations:", "  destination:")
    );
    let errors = v1_3_0().validate_text("apps.yaml", &bad).unwrap_err();
    assert!(
        errors
            .iter()
            .all(|e| e.starts_with("apps.yaml: document 2 (AppProject shop): ")),
        "{errors:#?}"
    );
}

// ---------------------------------------------------------------------------------------------
// kubectl kustomize

fn kubectl_kustomize_builds_an_overlay() {
    let dir = tempfile::tempdir().unwrap();
    let write = |path: &str, text: &str| {
        let path = dir.path().join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    };
    write(
        "base/kustomization.yaml",
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - deployment.yaml\n",
    );
    write(
        "base/deployment.yaml",
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: x
spec:
  selector:
    matchLabels: {app: x}
  template:
    metadata:
      labels: {app: x}
    spec:
      containers:
        - name: x
          image: ghcr.io/acme/x:0.0.1
"#,
    );
    write(
        "overlay/kustomization.yaml",
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - ../base\nimages:\n  - name: ghcr.io/acme/x\n    newTag: \"1.2.3\"\n",
    );
    let out = kubectl_kustomize(&dir.path().join("overlay"));
    assert!(out.contains("image: ghcr.io/acme/x:1.2.3"), "{out}");
    // The output is itself valid (the Deployment has no schema here, so nothing is counted).
    assert_eq!(v1_3_0().validate_text("kustomize output", &out), Ok(0));
}

fn kubectl_kustomize_fails_loudly() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("kustomization.yaml"),
        "resources:\n  - missing.yaml\n",
    )
    .unwrap();
    let panic = keelson_testkit::harness::catch(|| kubectl_kustomize(dir.path()))
        .expect_err("kubectl kustomize of a broken kustomization must panic");
    assert!(panic.contains("failed"), "{panic}");
}
