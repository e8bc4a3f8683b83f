//! The `keelson` commands, one function each. The binary (`main.rs`) parses
//! flags into these arguments and calls exactly one of them; each calls the
//! library and reports through [`Output`], and nothing else prints.
//!
//! Exit codes: 0 success; 1 the estate has errors (or `fmt --check` found
//! files to format, or `--deny-warnings` found warnings); 2 a usage or I/O
//! error. `diff` differs, as `git diff --exit-code` and `kubectl diff` do:
//! 1 means changes (with `--exit-code`), and every failure, estate errors
//! included, is 2.

mod output;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

pub use output::{ColorChoice, Output};

use crate::check;
use crate::compile::{self, Compiled};
use crate::diagnostic::{Diagnostics, Format};
use crate::diff::{self, Against};
use crate::error::Error;
use crate::load::{self, ParseCache};
use crate::model::Strategy;
use crate::policy::{self, tool};
use crate::tags;
use crate::{fmt, graph, init};

/// The parse cache in keelson's default cache directory.
fn default_parse_cache() -> ParseCache {
    ParseCache::new(crate::environment::cache_dir().as_deref())
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// `keelson check DIR`.
pub fn check(
    out: &mut Output,
    dir: &Path,
    format: Format,
    deny_warnings: bool,
) -> Result<ExitCode, Error> {
    let checked = check::check_dir_cached(dir, &default_parse_cache())?;
    out.diagnostics(&checked.diagnostics, &checked.loaded.sources, format);
    let errors = checked.error_count();
    let warnings = checked.diagnostics.len() - errors;
    let failed = errors > 0 || (deny_warnings && warnings > 0);
    if format != Format::Json {
        let files = checked.loaded.sources.len();
        if failed {
            out.line(format_args!(
                "error: the estate has {errors} error{} and {warnings} warning{}",
                plural(errors),
                plural(warnings)
            ));
        } else {
            out.line(format_args!(
                "checked {files} file{}: {warnings} warning{}",
                plural(files),
                plural(warnings)
            ));
        }
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// `keelson compile DIR -o OUT`.
pub fn compile(
    out: &mut Output,
    dir: &Path,
    tree: &Path,
    options: &compile::Options,
    format: Format,
) -> Result<ExitCode, Error> {
    let compiled = compile::compile_dir(dir, tree, options)?;
    out.diagnostics(&compiled.diagnostics, &compiled.sources, format);
    if compiled.has_errors() {
        let errors = compiled.error_count();
        out.line(format_args!(
            "error: the estate has {errors} error{}; nothing was written to {}",
            plural(errors),
            tree.display()
        ));
        return Ok(ExitCode::from(1));
    }
    let files = compiled.tree.as_ref().map_or(0, |t| t.len());
    match &compiled.report {
        Some(r) => {
            if r.recovered {
                out.line("completed an interrupted compile first");
            }
            for p in &r.forced {
                out.line(format_args!("overwrote {p} (--force)"));
            }
            out.line(format_args!(
                "compiled {files} files into {}: {} created, {} updated, {} removed, {} unchanged",
                tree.display(),
                r.created.len(),
                r.updated.len(),
                r.removed.len(),
                r.unchanged
            ));
        }
        None => out.line(format_args!(
            "checked {files} files; nothing written (--dry-run)"
        )),
    }
    // The process ends next: freeing a large estate's tree and model one
    // allocation at a time would only delay the exit (rustc does the same).
    std::mem::forget(compiled);
    Ok(ExitCode::SUCCESS)
}

/// How `keelson diff` shows what it found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiffFormat {
    Text,
    Markdown,
    Json,
}

/// `keelson diff`'s presentation flags.
#[derive(Debug, Clone, Copy)]
pub struct DiffView {
    pub format: DiffFormat,
    /// Exit 1 when anything would change.
    pub exit_code: bool,
    /// With text, each file's line diff too.
    pub patch: bool,
}

/// `keelson diff DIR --against OUT | --against-git REV[:PATH]`.
pub fn diff(
    out: &mut Output,
    dir: &Path,
    against: &Against,
    options: &compile::Options,
    view: DiffView,
) -> Result<ExitCode, Error> {
    use crate::diff::render;
    let outcome = diff::diff_dir(dir, against, options)?;
    let compiled = &outcome.compiled;
    out.diagnostics(&compiled.diagnostics, &compiled.sources, Format::Human);
    let Some(diff) = &outcome.diff else {
        // Errors in the estate: there is nothing to compare, and that is not
        // "no changes" (exit 2, as for every failure of diff).
        out.error(&Error::InvalidEstate {
            errors: compiled.error_count(),
        });
        return Ok(ExitCode::from(2));
    };
    let text = match view.format {
        DiffFormat::Text => render::text(diff, out.stdout_colour(), view.patch),
        DiffFormat::Markdown => render::markdown(diff),
        DiffFormat::Json => render::json(diff),
    };
    out.data(&text);
    if view.format != DiffFormat::Text {
        out.line(render::headline(diff));
    }
    Ok(if view.exit_code && diff.has_changes() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// `keelson explain DIR APP [--stage S] [-o OUT]`.
pub fn explain(
    out: &mut Output,
    dir: &Path,
    app: &str,
    stage: Option<&str>,
    tree: Option<&Path>,
    options: &compile::Options,
) -> Result<ExitCode, Error> {
    // Without a tree there is no lock: every stage is explained as new. The
    // path is this process's own and is never created (explain writes nothing).
    let no_tree =
        std::env::temp_dir().join(format!("keelson-explain-{}-no-tree", std::process::id()));
    let tree = tree.unwrap_or(&no_tree);
    let gathered = crate::gather::gather(dir, tree, &options.gather())?;
    let compiled: Compiled = compile::build(gathered);
    out.diagnostics(&compiled.diagnostics, &compiled.sources, Format::Human);
    let Some((estate, decisions)) = &compiled.decided else {
        out.error(&Error::InvalidEstate {
            errors: compiled.error_count(),
        });
        return Ok(ExitCode::from(1));
    };
    out.data(&crate::explain::explain_named(
        estate, decisions, app, stage,
    )?);
    Ok(if compiled.has_errors() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// How `keelson graph` prints the graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GraphFormat {
    Dot,
    Json,
}

/// `keelson graph DIR`.
pub fn graph(out: &mut Output, dir: &Path, format: GraphFormat) -> Result<ExitCode, Error> {
    let checked = check::check_dir_cached(dir, &default_parse_cache())?;
    let invalid = Error::InvalidEstate {
        errors: checked.error_count(),
    };
    if checked.has_errors() {
        out.diagnostics(&checked.diagnostics, &checked.loaded.sources, Format::Human);
        out.error(&invalid);
        return Ok(ExitCode::from(1));
    }
    let (Some(estate), Some(g)) = (&checked.estate, &checked.graph) else {
        return Err(invalid);
    };
    out.data(&match format {
        GraphFormat::Dot => graph::to_dot(estate, g),
        GraphFormat::Json => graph::to_json(estate, g),
    });
    Ok(ExitCode::SUCCESS)
}

/// `keelson fmt DIR [--check]`.
pub fn fmt(out: &mut Output, dir: &Path, check_only: bool) -> Result<ExitCode, Error> {
    let mut diags = Diagnostics::default();
    let loaded = load::load_dir(dir, &mut diags)?;
    if diags.has_errors() {
        out.diagnostics(&diags.into_sorted(), &loaded.sources, Format::Human);
        out.line("error: files with syntax errors are not formatted");
        return Ok(ExitCode::from(1));
    }
    let mut unformatted = 0;
    for (_, file) in loaded.sources.iter() {
        let Ok(formatted) = fmt::format_source(&file.text) else {
            continue;
        };
        if formatted == file.text {
            continue;
        }
        if check_only {
            out.data(&format!("{}\n", file.path.display()));
        } else {
            fmt::write_file(&file.path, &formatted)?;
            out.line(format_args!("formatted {}", file.path.display()));
        }
        unformatted += 1;
    }
    if check_only && unformatted > 0 {
        out.line(format_args!(
            "error: {unformatted} file(s) are not formatted; run `keelson fmt {}`",
            dir.display()
        ));
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

/// `keelson init DIR`.
pub fn init(out: &mut Output, dir: &Path) -> Result<ExitCode, Error> {
    let path = init::init(dir)?;
    out.line(format_args!(
        "wrote {}; check it with `keelson check {}`",
        path.display(),
        dir.display()
    ));
    Ok(ExitCode::SUCCESS)
}

/// `keelson policy hash MODULE`.
pub fn policy_hash(out: &mut Output, module: &Path) -> Result<ExitCode, Error> {
    out.data(&format!("{}\n", tool::hash_file(module)?));
    Ok(ExitCode::SUCCESS)
}

/// `keelson policy new NAME [--dir DIR]`.
pub fn policy_new(out: &mut Output, name: &str, dir: &Path) -> Result<ExitCode, Error> {
    let (root, files) = tool::scaffold(dir, name)?;
    for f in &files {
        out.line(format_args!("wrote {}", root.join(f).display()));
    }
    out.line(format_args!(
        "build it with `cd {} && cargo build --release`; its README says how to test and pin it",
        root.display()
    ));
    Ok(ExitCode::SUCCESS)
}

/// `keelson policy test MODULE --input FILE`.
pub fn policy_test(
    out: &mut Output,
    module: &Path,
    input: &Path,
    limits: policy::Limits,
) -> Result<ExitCode, Error> {
    let tested = tool::test(module, input, limits)?;
    for line in &tested.log {
        out.line(format_args!("log: {line}"));
    }
    match &tested.output {
        Ok(answer) => {
            out.data(&format!("{answer}\n"));
            out.line(format_args!(
                "`{}` answered; fuel used: {}; pin: blake3:{}",
                tested.entry,
                tested.fuel.unwrap_or(0),
                tested.hash
            ));
            Ok(ExitCode::SUCCESS)
        }
        Err(why) => {
            out.line(format_args!("error: `{}` failed: {why}", tested.entry));
            Ok(ExitCode::from(1))
        }
    }
}

/// Where `keelson tags select` takes its tags from.
pub enum TagsFrom {
    /// A JSON file of tags.
    File(PathBuf),
    /// A live registry.
    Registry {
        /// `REGISTRY/REPOSITORY`.
        image: String,
        /// The API URL, when it is not `https://<registry>`.
        api_url: Option<String>,
        /// `env:VAR`; otherwise Docker's config.json.
        credentials: Option<String>,
        options: crate::discover::RegistryOptions,
    },
}

/// `keelson tags select`: the rules checked, the tags read, the selection
/// printed as text or JSON.
pub fn tags_select(
    out: &mut Output,
    request: &tags::Request,
    from: &TagsFrom,
    json: bool,
) -> Result<ExitCode, Error> {
    let checked =
        tags::check(request).map_err(|e| Error::refused(e, "see `keelson tags select --help`"))?;
    for w in &checked.warnings {
        out.line(format_args!("warning: {w}"));
    }
    let tags = match from {
        TagsFrom::File(file) => {
            tags::read_file(file).map_err(|e| Error::refused(e, "fix the file and run again"))?
        }
        TagsFrom::Registry {
            image,
            api_url,
            credentials,
            options,
        } => {
            let credentials = credentials
                .as_deref()
                .map(|c| {
                    crate::rules::credential_ref(c).map_err(|why| {
                        Error::refused(
                            format!("`{c}` is not a credential reference: {why}"),
                            "write `env:VAR`, with VAR holding `user:password`",
                        )
                    })
                })
                .transpose()?;
            let (tags, requests) = tags::read_registry(
                image,
                api_url.as_deref(),
                credentials.as_ref(),
                &checked,
                options,
            )
            .map_err(|e| Error::refused(e.to_string(), e.help()))?;
            out.line(format_args!(
                "read {} tags of {image} in {requests} requests",
                tags.len()
            ));
            tags
        }
    };
    let selection = tags::select(&checked, &tags);
    out.data(&if json {
        tags::to_json(&checked, &selection)
    } else {
        tags::to_text(&checked, &selection)
    });
    Ok(ExitCode::SUCCESS)
}

/// Image Updater's strategy names, as `--strategy` takes them.
pub fn parse_strategy(name: &str) -> Result<Strategy, String> {
    Strategy::parse(name).map(|p| p.strategy).ok_or_else(|| {
        format!(
            "`{}` is not a strategy; use semver, newest-build, alphabetical or digest",
            name.to_ascii_lowercase()
        )
    })
}
