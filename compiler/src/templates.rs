//! The stdlib manifest templates (`template "web-service"`), rendered with
//! Tera. The template files live in `stdlib/templates/` and are compiled into
//! the binary, so a keelson release always renders the same manifests.

use std::sync::LazyLock;

use serde_json::{Map, Value as Json, json};

use crate::diagnostic::{Code, Diagnostic, Diagnostics};
use crate::model::{App, Spanned};

/// One template: its files and its parameters (name, default, kind).
struct Template {
    name: &'static str,
    files: &'static [(&'static str, &'static str)],
    params: &'static [(&'static str, Kind)],
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Port,
    Count,
    Text,
    Texts,
    Env,
}

impl Kind {
    fn describe(self) -> &'static str {
        match self {
            Kind::Port => "a port number (1–65535)",
            Kind::Count => "a whole number of at least 1",
            Kind::Text => "a string",
            Kind::Texts => "a list of strings",
            Kind::Env => "a block of `NAME \"value\"` lines",
        }
    }

    fn accepts(self, v: &Json) -> bool {
        match self {
            Kind::Port => v.as_u64().is_some_and(|p| (1..=65535).contains(&p)),
            Kind::Count => v.as_u64().is_some_and(|n| n >= 1),
            Kind::Text => v.is_string(),
            Kind::Texts => {
                v.is_string() || v.as_array().is_some_and(|a| a.iter().all(Json::is_string))
            }
            Kind::Env => v.as_object().is_some_and(|o| {
                o.values()
                    .all(|x| x.is_string() || x.is_number() || x.is_boolean())
            }),
        }
    }
}

macro_rules! files {
    ($dir:literal: $($file:literal),*) => {
        &[$(($file, include_str!(concat!("../../stdlib/templates/", $dir, "/", $file)))),*]
    };
}

static TEMPLATES: &[Template] = &[
    Template {
        name: "web-service",
        files: files!("web-service": "configmap.yaml", "deployment.yaml", "ingress.yaml", "service.yaml"),
        params: &[
            ("port", Kind::Port),
            ("host", Kind::Text),
            ("path", Kind::Text),
            ("ingress-class", Kind::Text),
            ("args", Kind::Texts),
            ("env", Kind::Env),
            ("cpu", Kind::Text),
            ("memory", Kind::Text),
            ("gpu", Kind::Count),
        ],
    },
    Template {
        name: "worker",
        files: files!("worker": "configmap.yaml", "deployment.yaml"),
        params: &[
            ("args", Kind::Texts),
            ("env", Kind::Env),
            ("cpu", Kind::Text),
            ("memory", Kind::Text),
            ("gpu", Kind::Count),
        ],
    },
];

static TERA: LazyLock<Result<tera::Tera, String>> = LazyLock::new(|| {
    let mut tera = tera::Tera::default();
    for t in TEMPLATES {
        for (file, text) in t.files {
            tera.add_raw_template(&format!("{}/{file}", t.name), text)
                .map_err(|e| format!("{}/{file}: {e}", t.name))?;
        }
    }
    Ok(tera)
});

/// Renders a template for an app: `(file name, document)` for every file that
/// is not empty, in name order. Problems with parameters become diagnostics.
pub(crate) fn render(
    app: &App,
    name: &Spanned<String>,
    params: &Map<String, Json>,
    diags: &mut Diagnostics,
) -> Vec<(String, serde_yaml::Value)> {
    let Some(t) = TEMPLATES.iter().find(|t| t.name == name.value) else {
        // Unknown templates are reported by lowering.
        return Vec::new();
    };
    let ok = check_params(t, name, params, diags);
    let Some(image) = app.images.first() else {
        diags.push(
            Diagnostic::error(
                Code::MissingValue,
                name.loc,
                format!(
                    "template `{}` needs an image, and app `{}` has none",
                    t.name, app.name.value
                ),
            )
            .with_help("add `image \"NAME\" repository=\"…\"` to the app"),
        );
        return Vec::new();
    };
    if !ok {
        return Vec::new();
    }
    let tera = match &*TERA {
        Ok(t) => t,
        Err(e) => {
            diags.push(Diagnostic::error(
                Code::InvalidManifest,
                name.loc,
                format!("the stdlib template does not load: {e}"),
            ));
            return Vec::new();
        }
    };
    let mut ctx = tera::Context::new();
    ctx.insert("app", &app.name.value);
    ctx.insert("image", image.kustomize_name());
    ctx.insert("params", &with_defaults(params));
    t.files
        .iter()
        .filter_map(|(file, _)| render_file(tera, t, file, &ctx, name, diags))
        .collect()
}

/// Reports every parameter the template does not have, or whose value is
/// not of its kind. Returns whether all were fine.
fn check_params(
    t: &Template,
    name: &Spanned<String>,
    params: &Map<String, Json>,
    diags: &mut Diagnostics,
) -> bool {
    let mut ok = true;
    for (key, value) in params {
        match t.params.iter().find(|(p, _)| p == key) {
            None => {
                ok = false;
                let known: Vec<&str> = t.params.iter().map(|(p, _)| *p).collect();
                diags.push(
                    Diagnostic::error(
                        Code::InvalidValue,
                        name.loc,
                        format!("template `{}` has no parameter `{key}`", t.name),
                    )
                    .with_help(format!("its parameters are: {}", known.join(", "))),
                );
            }
            Some((_, kind)) if !kind.accepts(value) => {
                ok = false;
                diags.push(
                    Diagnostic::error(
                        Code::InvalidValue,
                        name.loc,
                        format!(
                            "parameter `{key}` of template `{}` must be {}",
                            t.name,
                            kind.describe()
                        ),
                    )
                    .with_help("fix the value in the app's (or the stage's) `params`"),
                );
            }
            Some(_) => {}
        }
    }
    ok
}

/// The parameters the templates see: the defaults (`port` 8080, `path`
/// `/`) under the given ones, a single `args` string as a list, and every
/// `env` value as a string.
fn with_defaults(params: &Map<String, Json>) -> Map<String, Json> {
    let mut merged = Map::new();
    merged.insert("port".into(), json!(8080));
    merged.insert("path".into(), json!("/"));
    for (k, v) in params {
        let v = match (k.as_str(), v) {
            ("args", Json::String(s)) => json!([s]),
            ("env", Json::Object(o)) => Json::Object(
                o.iter()
                    .map(|(k, v)| {
                        (
                            k.clone(),
                            Json::String(v.as_str().map_or_else(|| v.to_string(), str::to_string)),
                        )
                    })
                    .collect(),
            ),
            _ => v.clone(),
        };
        merged.insert(k.clone(), v);
    }
    merged
}

/// One file of the template, parsed; `None` when it renders empty, or fails
/// to render or parse (reported).
fn render_file(
    tera: &tera::Tera,
    t: &Template,
    file: &str,
    ctx: &tera::Context,
    name: &Spanned<String>,
    diags: &mut Diagnostics,
) -> Option<(String, serde_yaml::Value)> {
    let rendered = match tera.render(&format!("{}/{file}", t.name), ctx) {
        Ok(r) => r,
        Err(e) => {
            let mut msg = e.to_string();
            let mut src = std::error::Error::source(&e);
            while let Some(s) = src {
                msg = format!("{msg}: {s}");
                src = s.source();
            }
            diags.push(Diagnostic::error(
                Code::InvalidManifest,
                name.loc,
                format!("template `{}` failed to render `{file}`: {msg}", t.name),
            ));
            return None;
        }
    };
    if rendered.trim().is_empty() {
        return None;
    }
    // Parsed, to be printed like every generated file: one style, and
    // valid YAML.
    match serde_yaml::from_str::<serde_yaml::Value>(&rendered) {
        Ok(doc) => Some((file.to_string(), doc)),
        Err(e) => {
            diags.push(Diagnostic::error(
                Code::InvalidManifest,
                name.loc,
                format!(
                    "template `{}` rendered `{file}` as invalid YAML: {e}",
                    t.name
                ),
            ));
            None
        }
    }
}
