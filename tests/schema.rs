//! Checks generated Kubernetes YAML against the upstream schemas in `tests/schemas/` (where each
//! file comes from: `tests/schemas/SOURCES.md`), and runs the real `kubectl kustomize`.
//!
//! The CRD schemas are OpenAPI v3 "structural schemas", which the Kubernetes API server applies
//! with rules of its own. [`crd_to_json_schema`] rewrites one into a JSON Schema that accepts and
//! rejects what the API server would, and [`default_and_check_lists`] does, on the document, the
//! two things JSON Schema cannot: applying `default`s before validation, and the uniqueness of
//! `x-kubernetes-list-type: map`/`set` lists. What is still not checked:
//!
//! - `x-kubernetes-validations` (CEL) rules. A generator must satisfy them by construction. The
//!   ones in the two ImageUpdater CRDs (Argo CD's Application and AppProject CRDs have none):
//!
//!   v1.3.0:
//!   - `spec.applicationRefs[]`: `!(has(self.useAnnotations) && self.useAnnotations == true) ?
//!     (has(self.images) && size(self.images) > 0) : true` — unless `useAnnotations: true`, every
//!     applicationRef needs at least one image (`useAnnotations` defaults to false).
//!   - `…images[].manifestTargets`: `(has(self.helm) ? 1 : 0) + (has(self.kustomize) ? 1 : 0) +
//!     (has(self.plugin) ? 1 : 0) == 1` — if the block is present, exactly one target.
//!   - `…images[].manifestTargets.plugin`: `has(self.spec) || has(self.name)`.
//!   - `imagesVerification` (at spec, applicationRef and image level):
//!     `self.enabled == false || has(self.cosignKey)` — `enabled` defaults to true, so a present
//!     block needs `cosignKey` unless it says `enabled: false`.
//!   - `writeBackConfig.gitConfig.pullRequest` (spec and applicationRef level):
//!     `(has(self.github) ? 1 : 0) + (has(self.gitlab) ? 1 : 0) == 1` — exactly one provider.
//!
//!   v1.0.1:
//!   - `…images[].manifestTargets`: `has(self.helm) ? !has(self.kustomize) : has(self.kustomize)`
//!     — if the block is present, exactly one of helm and kustomize.
//! - `format` (`int32`, `int64`, `date-time`, `byte`, …): the API server ignores the first two and
//!   parses `date-time` more leniently than JSON Schema does, so formats are not checked at all.
//! - What the API server checks in `metadata` is approximated by [`object_meta_schema`].

use std::path::{Path, PathBuf};
use std::process::Command;

use jsonschema::error::ValidationErrorKind;
use serde_json::{Map, Value as Json, json};

/// Which release of Argo CD Image Updater's `ImageUpdater` CRD to validate against. They differ:
/// v1.0.1 requires `spec.namespace`, which v1.3.0 does not have; v1.3.0 adds `useAnnotations`,
/// `gitConfig.pullRequest`, the `plugin` target and `imagesVerification`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageUpdaterSchema {
    V1_0_1,
    V1_3_0,
}

/// Validates Kubernetes documents against the CRDs and the kustomization schema in
/// `tests/schemas/`.
pub struct Validator {
    schemas: Vec<Schema>,
}

/// One resource kind and what it is checked against.
struct Schema {
    /// API group (empty for the core group), served version and kind this schema is for.
    group: String,
    version: String,
    kind: String,
    /// The CRD's own `openAPIV3Schema`; drives defaulting and list checks. `None` for the
    /// kustomization schema, which is plain JSON Schema.
    structural: Option<Json>,
    validator: jsonschema::Validator,
}

/// The CRDs' only served version.
const CRD_VERSION: &str = "v1alpha1";

impl Validator {
    /// Loads the CRDs and the kustomization schema from `tests/schemas`.
    pub fn new(image_updater: ImageUpdaterSchema) -> Validator {
        let dir = schemas_dir();
        let image_updater = match image_updater {
            ImageUpdaterSchema::V1_3_0 => {
                "argocd-image-updater/argocd-image-updater.argoproj.io_imageupdaters.yaml"
            }
            ImageUpdaterSchema::V1_0_1 => {
                "argocd-image-updater/v1.0.1/argocd-image-updater.argoproj.io_imageupdaters.yaml"
            }
        };
        let mut schemas: Vec<Schema> = [
            "argo-cd/application-crd.yaml",
            "argo-cd/appproject-crd.yaml",
            image_updater,
        ]
        .iter()
        .map(|file| load_crd(&dir.join(file), CRD_VERSION))
        .collect();

        // kustomize reads Components with the same schema as Kustomizations.
        let path = dir.join("kustomize/kustomization.json");
        let kustomization: Json = serde_json::from_str(&read(&path))
            .unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()));
        for (version, kind) in [("v1beta1", "Kustomization"), ("v1alpha1", "Component")] {
            schemas.push(Schema {
                group: "kustomize.config.k8s.io".into(),
                version: version.into(),
                kind: kind.into(),
                structural: None,
                validator: build(&kustomization, &path),
            });
        }
        Validator { schemas }
    }

    /// Validates one YAML document, choosing the schema by `apiVersion` and `kind`.
    ///
    /// Returns `Ok(true)` if it was validated and is valid, `Ok(false)` if this validator has no
    /// schema for its kind (e.g. a Deployment), and `Err` with one readable message per problem,
    /// each starting with the JSON pointer of the offending value. A document that is not a
    /// mapping, lacks `apiVersion` or `kind`, or names a known kind with a version the schema does
    /// not serve (e.g. `argoproj.io/v1 Application`) is an error: kubectl would refuse it. For a
    /// `kustomization.yaml`, which may omit both, use [`Validator::validate_kustomization`].
    pub fn validate(&self, doc: &serde_yaml::Value) -> Result<bool, Vec<String>> {
        let mut instance = yaml_to_json(doc).map_err(|e| vec![format!("/: {e}")])?;
        let (group, version, kind) = type_of(&instance)?;
        let Some(schema) = self
            .schemas
            .iter()
            .find(|s| s.group == group && s.kind == kind)
        else {
            return Ok(false);
        };
        if !self
            .schemas
            .iter()
            .any(|s| s.group == group && s.kind == kind && s.version == version)
        {
            return Err(vec![format!(
                "/apiVersion: {kind} is served as {}/{} (the schema has no version {version:?})",
                schema.group, schema.version
            )]);
        }
        let mut errors = Vec::new();
        if let Some(structural) = &schema.structural {
            default_and_check_lists(structural, &mut instance, "", &mut errors);
        }
        errors.extend(schema_errors(&schema.validator, &instance));
        if errors.is_empty() {
            Ok(true)
        } else {
            Err(errors)
        }
    }

    /// Validates a `kustomization.yaml` document against the kustomization schema, whether or not
    /// it has `apiVersion` and `kind` (kustomize does not require them).
    pub fn validate_kustomization(&self, doc: &serde_yaml::Value) -> Result<(), Vec<String>> {
        let instance = yaml_to_json(doc).map_err(|e| vec![format!("/: {e}")])?;
        let schema = self
            .schemas
            .iter()
            .find(|s| s.kind == "Kustomization")
            .expect("loaded in new()");
        let errors = schema_errors(&schema.validator, &instance);
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    /// Validates every document of a multi-document YAML text with [`Validator::validate`].
    /// Returns how many documents had a schema; every error is prefixed with `what` (e.g. the
    /// file's path), the document's position and its kind and name.
    pub fn validate_text(&self, what: &str, yaml: &str) -> Result<usize, Vec<String>> {
        let mut validated = 0;
        let mut errors = Vec::new();
        for (i, de) in serde_yaml::Deserializer::from_str(yaml).enumerate() {
            let n = i + 1;
            // `Value::deserialize(de)` without naming serde's trait (serde is no direct dependency
            // here): for a Value, this wrapper forwards straight to `de`.
            let doc = match serde_yaml::with::singleton_map::deserialize::<serde_yaml::Value, _>(de)
            {
                Ok(doc) => doc,
                Err(e) => {
                    // The parser cannot resume after a syntax error.
                    errors.push(format!("{what}: document {n}: not valid YAML: {e}"));
                    break;
                }
            };
            // An empty document, e.g. after a trailing `---`.
            if doc.is_null() {
                continue;
            }
            match self.validate(&doc) {
                Ok(true) => validated += 1,
                Ok(false) => {}
                Err(errs) => {
                    let label = describe(&doc);
                    errors.extend(
                        errs.into_iter()
                            .map(|e| format!("{what}: document {n} ({label}): {e}")),
                    );
                }
            }
        }
        if errors.is_empty() {
            Ok(validated)
        } else {
            Err(errors)
        }
    }
}

/// Runs `kubectl kustomize DIR` (or `$KUBECTL kustomize DIR`) and returns the rendered YAML.
///
/// Panics, with kubectl's stderr, if kubectl cannot be run or fails: a test that needs kustomize
/// must fail, never pass by skipping, when the tool is absent.
pub fn kubectl_kustomize(dir: &Path) -> String {
    let kubectl = std::env::var_os("KUBECTL").unwrap_or_else(|| "kubectl".into());
    let shown = format!(
        "{} kustomize {}",
        Path::new(&kubectl).display(),
        dir.display()
    );
    let output = match Command::new(&kubectl).arg("kustomize").arg(dir).output() {
        Ok(output) => output,
        Err(e) => panic!(
            "\n\n*** cannot run `{shown}`: {e} ***\n\
             This test needs kubectl (1.27 or newer, which bundles kustomize v5) on PATH, or \
             KUBECTL=/path/to/kubectl. It fails rather than skips when kubectl is missing.\n"
        ),
    };
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        panic!(
            "\n\n*** `{shown}` failed ({}) ***\nstderr:\n{stderr}\n",
            output.status
        );
    }
    if !stderr.trim().is_empty() {
        // Warnings (e.g. deprecated fields) do not fail the build, but should be seen.
        eprintln!("`{shown}` warned:\n{stderr}");
    }
    String::from_utf8(output.stdout)
        .unwrap_or_else(|e| panic!("`{shown}` printed non-UTF-8 output: {e}"))
}

fn schemas_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

fn build(schema: &Json, path: &Path) -> jsonschema::Validator {
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft7)
        .should_validate_formats(false)
        .build(schema)
        .unwrap_or_else(|e| panic!("the schema from {} does not compile: {e}", path.display()))
}

/// Loads `spec.versions[name=version].schema.openAPIV3Schema` of a CRD file.
fn load_crd(path: &Path, version: &str) -> Schema {
    let crd: serde_yaml::Value = serde_yaml::from_str(&read(path))
        .unwrap_or_else(|e| panic!("{} is not YAML: {e}", path.display()));
    let crd = yaml_to_json(&crd).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let text = |pointer: &str| -> String {
        crd.pointer(pointer)
            .and_then(Json::as_str)
            .unwrap_or_else(|| panic!("{} has no {pointer}", path.display()))
            .to_string()
    };
    let (group, kind) = (text("/spec/group"), text("/spec/names/kind"));
    let structural = crd
        .pointer("/spec/versions")
        .and_then(Json::as_array)
        .and_then(|vs| vs.iter().find(|v| v["name"] == version))
        .and_then(|v| v.pointer("/schema/openAPIV3Schema"))
        .unwrap_or_else(|| panic!("{} has no version {version} with a schema", path.display()))
        .clone();
    let json_schema = crd_to_json_schema(&structural, &format!("{group}/{version}"), &kind);
    Schema {
        validator: build(&json_schema, path),
        group,
        version: version.into(),
        kind,
        structural: Some(structural),
    }
}

/// Converts a CRD's `openAPIV3Schema` into a draft-07 JSON Schema for the whole object, applying
/// the API server's rules:
///
/// - `apiVersion` and `kind` must be present and match; `metadata` must be a valid ObjectMeta
///   ([`object_meta_schema`]).
/// - Unknown fields are errors. The API server prunes them (or rejects them, with strict field
///   validation); either way a field the CRD version does not have never takes effect, so every
///   object schema that does not allow unknown fields gets `additionalProperties: false`. That
///   includes objects without `properties` (e.g. v1.3.0's `pullRequest.github: {type: object}`):
///   any field in them would be dropped.
/// - `nullable`, `x-kubernetes-int-or-string`, `x-kubernetes-preserve-unknown-fields` and
///   `x-kubernetes-embedded-resource` become their JSON Schema equivalents; other extensions
///   (list types and keys, map types, CEL rules) and annotations are dropped.
/// - OpenAPI 3.0's boolean `exclusiveMinimum`/`exclusiveMaximum` become draft-07 numbers.
pub fn crd_to_json_schema(open_api: &Json, api_version: &str, kind: &str) -> Json {
    let mut schema = convert(open_api, false);
    let root = schema
        .as_object_mut()
        .expect("an openAPIV3Schema is an object");
    let properties = root
        .entry("properties")
        .or_insert_with(|| json!({}))
        .as_object_mut()
        .expect("properties is an object");
    properties.insert("apiVersion".into(), json!({ "const": api_version }));
    properties.insert("kind".into(), json!({ "const": kind }));
    properties.insert("metadata".into(), object_meta_schema());
    let required = root
        .entry("required")
        .or_insert_with(|| json!([]))
        .as_array_mut()
        .expect("required is an array");
    for field in ["apiVersion", "kind", "metadata"] {
        if !required.iter().any(|r| r == field) {
            required.push(field.into());
        }
    }
    root.insert(
        "$schema".into(),
        json!("http://json-schema.org/draft-07/schema#"),
    );
    schema
}

/// Converts one schema node. `in_junctor` is true under `allOf`/`anyOf`/`oneOf`/`not`: there a
/// node only adds constraints to the structural schema around it, so it must not close objects.
fn convert(node: &Json, in_junctor: bool) -> Json {
    let Json::Object(src) = node else {
        return node.clone();
    };
    let flag = |key: &str| src.get(key) == Some(&Json::Bool(true));
    let mut out = Map::new();
    for (key, value) in src {
        let converted = match key.as_str() {
            "properties" => Json::Object(
                value
                    .as_object()
                    .expect("properties is an object")
                    .iter()
                    .map(|(name, prop)| (name.clone(), convert(prop, in_junctor)))
                    .collect(),
            ),
            "items" | "not" => convert(value, in_junctor || key == "not"),
            "additionalProperties" => match value {
                Json::Bool(_) => value.clone(),
                _ => convert(value, in_junctor),
            },
            "allOf" | "anyOf" | "oneOf" => Json::Array(
                value
                    .as_array()
                    .expect("a junctor holds an array")
                    .iter()
                    .map(|sub| convert(sub, true))
                    .collect(),
            ),
            "type" | "required" | "enum" | "pattern" | "minLength" | "maxLength" | "minimum"
            | "maximum" | "multipleOf" | "minItems" | "maxItems" | "uniqueItems"
            | "minProperties" | "maxProperties" => value.clone(),
            "exclusiveMinimum" | "exclusiveMaximum" => {
                if value != &Json::Bool(true) {
                    continue;
                }
                let bound = if key == "exclusiveMinimum" {
                    "minimum"
                } else {
                    "maximum"
                };
                match src.get(bound) {
                    Some(limit) => limit.clone(),
                    None => continue,
                }
            }
            // description, default (applied to the document instead), format (see the module
            // comment), nullable and x-kubernetes-* (handled below), example, …
            _ => continue,
        };
        out.insert(key.clone(), converted);
    }
    // A bound that is exclusive is not also inclusive.
    for (exclusive, bound) in [
        ("exclusiveMinimum", "minimum"),
        ("exclusiveMaximum", "maximum"),
    ] {
        if out.contains_key(exclusive) {
            out.remove(bound);
        }
    }

    if flag("x-kubernetes-int-or-string") {
        out.insert("type".into(), json!(["integer", "string"]));
    }
    if flag("x-kubernetes-embedded-resource") {
        let properties = out.entry("properties").or_insert_with(|| json!({}));
        let properties = properties.as_object_mut().expect("properties is an object");
        for (name, sub) in [
            ("apiVersion", json!({"type": "string"})),
            ("kind", json!({"type": "string"})),
            ("metadata", json!({"type": "object"})),
        ] {
            properties.entry(name).or_insert(sub);
        }
    }
    let is_object = out.get("type") == Some(&json!("object")) || out.contains_key("properties");
    if is_object
        && !in_junctor
        && !out.contains_key("additionalProperties")
        && !flag("x-kubernetes-preserve-unknown-fields")
    {
        out.insert("additionalProperties".into(), Json::Bool(false));
        // Without `properties`, jsonschema reports a bare "False schema" error that does not
        // name the unknown field; with an empty map it lists them.
        out.entry("properties").or_insert_with(|| json!({}));
    }

    if flag("nullable") {
        allow_null(out)
    } else {
        Json::Object(out)
    }
}

/// Makes a converted schema accept `null` as well.
fn allow_null(mut schema: Map<String, Json>) -> Json {
    let has_junctor = ["allOf", "anyOf", "oneOf", "not"]
        .iter()
        .any(|k| schema.contains_key(*k));
    if has_junctor {
        // Sub-schemas may exclude null on their own; only an alternative lets it through.
        return json!({ "anyOf": [{ "type": "null" }, Json::Object(schema)] });
    }
    match schema.get_mut("type") {
        Some(Json::String(t)) => {
            let t = std::mem::take(t);
            schema.insert("type".into(), json!([t, "null"]));
        }
        Some(Json::Array(types)) => types.push(json!("null")),
        _ => {}
    }
    if let Some(Json::Array(values)) = schema.get_mut("enum") {
        if !values.contains(&Json::Null) {
            values.push(Json::Null);
        }
    }
    Json::Object(schema)
}

/// What the API server accepts in `metadata`, for the fields a generated manifest may carry: the
/// name is a DNS-1123 subdomain (custom resources use that rule), the namespace a DNS-1123 label,
/// label and annotation keys qualified names, label values at most 63 characters, annotation
/// values strings (so `argocd.argoproj.io/sync-wave: 1` without quotes is an error), finalizers
/// qualified names. A name is required: kubectl apply and Argo CD need one.
/// Not checked: the 253-character limit on key prefixes and the 256 KiB limit on annotations.
pub fn object_meta_schema() -> Json {
    const SUBDOMAIN: &str = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";
    const LABEL: &str = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";
    const QUALIFIED_NAME: &str = r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$";
    const LABEL_VALUE: &str = r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$";
    let string = json!({"type": "string"});
    json!({
        "type": "object",
        "additionalProperties": false,
        "required": ["name"],
        "properties": {
            "name": {"type": "string", "maxLength": 253, "pattern": SUBDOMAIN},
            "generateName": string,
            "namespace": {"type": "string", "maxLength": 63, "pattern": LABEL},
            "labels": {
                "type": "object",
                "propertyNames": {"pattern": QUALIFIED_NAME},
                "additionalProperties": {"type": "string", "pattern": LABEL_VALUE},
            },
            "annotations": {
                "type": "object",
                "propertyNames": {"pattern": QUALIFIED_NAME},
                "additionalProperties": string,
            },
            "finalizers": {"type": "array", "items": {"type": "string", "pattern": QUALIFIED_NAME}},
            "ownerReferences": {"type": "array", "items": {"type": "object"}},
            "managedFields": {"type": "array", "items": {"type": "object"}},
            "uid": string,
            "resourceVersion": string,
            "selfLink": string,
            "creationTimestamp": {"type": ["string", "null"]},
            "deletionTimestamp": string,
            "generation": {"type": "integer"},
            "deletionGracePeriodSeconds": {"type": "integer"},
        },
    })
}

/// Does to `value` what the API server does before validating it against `schema` (a CRD's
/// structural schema): null values of non-nullable fields are dropped, then missing fields that
/// have a `default` get it — so a `required` field with a default is never missing. Then checks
/// what JSON Schema cannot express: entries of an `x-kubernetes-list-type: map` list must differ
/// in their `x-kubernetes-list-map-keys`, items of a `set` list must be unique.
/// `path` is the JSON pointer of `value`; problems are pushed to `errors`.
pub fn default_and_check_lists(
    schema: &Json,
    value: &mut Json,
    path: &str,
    errors: &mut Vec<String>,
) {
    let nullable = |s: &Json| s.get("nullable") == Some(&Json::Bool(true));
    match value {
        Json::Object(map) => {
            let properties = schema.get("properties").and_then(Json::as_object);
            let additional = schema.get("additionalProperties").filter(|a| a.is_object());
            let schema_of = |name: &str| properties.and_then(|p| p.get(name)).or(additional);
            // Pruning nulls and defaulting, as in apiextensions-apiserver's
            // PruneNonNullableNullsWithoutDefaults and Default.
            map.retain(|name, v| {
                !(v.is_null()
                    && schema_of(name).is_some_and(|s| !nullable(s) && s.get("default").is_none()))
            });
            for (name, prop) in properties.into_iter().flatten() {
                let Some(default) = prop.get("default") else {
                    continue;
                };
                let missing = map.get(name).is_none_or(|v| v.is_null() && !nullable(prop));
                if missing {
                    map.insert(name.clone(), default.clone());
                }
            }
            for (name, v) in map.iter_mut() {
                if let Some(sub) = schema_of(name) {
                    let sub_path = format!("{path}/{}", name.replace('~', "~0").replace('/', "~1"));
                    default_and_check_lists(sub, v, &sub_path, errors);
                }
            }
        }
        Json::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter_mut().enumerate() {
                    if item.is_null() && !nullable(item_schema) {
                        if let Some(default) = item_schema.get("default") {
                            *item = default.clone();
                        }
                    }
                    default_and_check_lists(item_schema, item, &format!("{path}/{i}"), errors);
                }
            }
            check_list_type(schema, items, path, errors);
        }
        _ => {}
    }
}

fn check_list_type(schema: &Json, items: &[Json], path: &str, errors: &mut Vec<String>) {
    let keys: Vec<&str> = match schema.get("x-kubernetes-list-type").and_then(Json::as_str) {
        Some("map") => schema
            .get("x-kubernetes-list-map-keys")
            .and_then(Json::as_array)
            .map(|keys| keys.iter().filter_map(Json::as_str).collect())
            .unwrap_or_default(),
        Some("set") => Vec::new(),
        _ => return,
    };
    // The identity of an item: its key fields for a map list, the whole item for a set.
    let identity = |item: &Json| -> Json {
        if keys.is_empty() {
            return item.clone();
        }
        Json::Object(
            keys.iter()
                .map(|k| (k.to_string(), item.get(*k).cloned().unwrap_or(Json::Null)))
                .collect(),
        )
    };
    for (i, item) in items.iter().enumerate() {
        let id = identity(item);
        if let Some(first) = items[..i]
            .iter()
            .position(|earlier| identity(earlier) == id)
        {
            let what = if keys.is_empty() { "item" } else { "key" };
            errors.push(format!(
                "{path}/{i}: duplicate {what} {id} (same as item {first}); the API server rejects \
                 duplicates in a list of x-kubernetes-list-type {}",
                if keys.is_empty() { "set" } else { "map" }
            ));
        }
    }
}

/// The JSON Schema errors, as `pointer: message`.
fn schema_errors(validator: &jsonschema::Validator, instance: &Json) -> Vec<String> {
    validator
        .iter_errors(instance)
        .map(|e| {
            let pointer = match e.instance_path.as_str() {
                "" => "/",
                p => p,
            };
            let message = match &e.kind {
                ValidationErrorKind::AdditionalProperties { unexpected } => format!(
                    "unknown field(s) {} (not in this schema version)",
                    unexpected
                        .iter()
                        .map(|u| format!("{u:?}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                _ => e.to_string(),
            };
            format!("{pointer}: {}", shorten(&message))
        })
        .collect()
}

/// Keeps messages that quote a whole sub-document readable.
fn shorten(message: &str) -> String {
    const MAX: usize = 400;
    match message.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}…", &message[..cut]),
        None => message.to_string(),
    }
}

/// Group, version and kind of a document.
fn type_of(instance: &Json) -> Result<(&str, &str, &str), Vec<String>> {
    let Some(object) = instance.as_object() else {
        return Err(vec!["/: a Kubernetes document must be a mapping".into()]);
    };
    let field = |name: &str| match object.get(name) {
        Some(Json::String(s)) if !s.is_empty() => Ok(s.as_str()),
        Some(other) => Err(format!("/{name}: must be a non-empty string, not {other}")),
        None => Err(format!("/: {name} is missing")),
    };
    match (field("apiVersion"), field("kind")) {
        (Ok(api_version), Ok(kind)) => {
            let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
            Ok((group, version, kind))
        }
        (a, k) => Err([a.err(), k.err()].into_iter().flatten().collect()),
    }
}

/// `Kind name` of a document (or just the kind), for error messages.
fn describe(doc: &serde_yaml::Value) -> String {
    let kind = doc
        .get("kind")
        .and_then(serde_yaml::Value::as_str)
        .unwrap_or("no kind");
    match doc
        .get("metadata")
        .and_then(|m| m.get("name"))
        .and_then(serde_yaml::Value::as_str)
    {
        Some(name) => format!("{kind} {name}"),
        None => kind.to_string(),
    }
}

/// Converts parsed YAML to JSON as Kubernetes' YAML reader does: scalar mapping keys become
/// strings, tags are ignored.
fn yaml_to_json(value: &serde_yaml::Value) -> Result<Json, String> {
    use serde_yaml::Value as Y;
    Ok(match value {
        Y::Null => Json::Null,
        Y::Bool(b) => Json::Bool(*b),
        Y::Number(n) => {
            if let Some(i) = n.as_i64() {
                i.into()
            } else if let Some(u) = n.as_u64() {
                u.into()
            } else {
                let f = n.as_f64().expect("a YAML number is i64, u64 or f64");
                serde_json::Number::from_f64(f)
                    .map(Json::Number)
                    .ok_or_else(|| format!("{f} has no JSON representation"))?
            }
        }
        Y::String(s) => Json::String(s.clone()),
        Y::Sequence(items) => {
            Json::Array(items.iter().map(yaml_to_json).collect::<Result<_, _>>()?)
        }
        Y::Mapping(mapping) => {
            let mut out = Map::new();
            for (k, v) in mapping {
                let key = match k {
                    Y::String(s) => s.clone(),
                    Y::Number(n) => n.to_string(),
                    Y::Bool(b) => b.to_string(),
                    Y::Null => "null".into(),
                    other => return Err(format!("mapping key {other:?} is not a scalar")),
                };
                out.insert(key, yaml_to_json(v)?);
            }
            Json::Object(out)
        }
        Y::Tagged(tagged) => yaml_to_json(&tagged.value)?,
    })
}
