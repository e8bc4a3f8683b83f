//! Stage 1: read an estate directory's `*.kdl` files and parse them.
//!
//! Files are read in byte order of their names, so the result never depends on
//! the order a directory lists them in. A file that is not valid KDL 2 becomes
//! `keelson::syntax` diagnostics (every one the parser found) and is left out
//! of lowering; the other files are still lowered, so one run reports problems
//! in all of them. Parses are kept in a [`ParseCache`] keyed by the text's
//! blake3, so an unchanged file is not parsed again.

pub(crate) mod cache;

use std::path::{Path, PathBuf};

use kdl::KdlDocument;

use crate::diagnostic::{Code, Diagnostic, Diagnostics, FileId, Loc, Sources};
use crate::error::Error;
pub use cache::ParseCache;

/// A parsed estate file.
#[derive(Debug, Clone)]
pub struct ParsedFile {
    pub file: FileId,
    pub doc: KdlDocument,
}

#[derive(Debug, Clone, Default)]
pub struct Loaded {
    /// The estate directory; relative paths in the estate are resolved from it.
    pub root: PathBuf,
    pub sources: Sources,
    pub files: Vec<ParsedFile>,
}

/// Reads every `*.kdl` file directly inside `dir`, parsing each.
pub(crate) fn load_dir(dir: &Path, diags: &mut Diagnostics) -> Result<Loaded, Error> {
    load_dir_cached(dir, &ParseCache::none(), diags)
}

/// Stage 1: reads every `*.kdl` file directly inside `dir`, in byte order of
/// name, and parses each (in parallel), taking unchanged files' parses from
/// `cache`. Syntax errors are diagnostics (all of them: the parser
/// recovers) and the other files are still returned; only an unreadable
/// directory or file, no estate file, or a file that is not UTF-8 is an
/// `Err`. Never panics on any input.
pub(crate) fn load_dir_cached(
    dir: &Path,
    cache: &ParseCache,
    diags: &mut Diagnostics,
) -> Result<Loaded, Error> {
    let entries =
        std::fs::read_dir(dir).map_err(|e| Error::io("reading the estate directory", dir, e))?;
    let mut paths = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io("reading the estate directory", dir, e))?;
        let path = entry.path();
        if path.extension().is_some_and(|x| x == "kdl") && path.is_file() {
            paths.push(path);
        }
    }
    paths.sort();
    if paths.is_empty() {
        return Err(Error::NoEstateFiles(dir.to_path_buf()));
    }
    let mut files = Vec::with_capacity(paths.len());
    for path in paths {
        let bytes =
            std::fs::read(&path).map_err(|e| Error::io("reading an estate file", &path, e))?;
        let text = String::from_utf8(bytes).map_err(|_| Error::NotUtf8(path.clone()))?;
        let name = path.file_name().map_or_else(
            || path.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        files.push((name, path, text));
    }
    Ok(load_sources_cached(dir, files, cache, diags))
}

/// Parses estate files that are already in memory (tests, fuzzing, benchmarks).
/// Each item is (display name, path, text).
pub fn load_sources(
    root: &Path,
    files: Vec<(String, PathBuf, String)>,
    diags: &mut Diagnostics,
) -> Loaded {
    load_sources_cached(root, files, &ParseCache::none(), diags)
}

/// [`load_sources`], taking unchanged files' parses from `cache`.
pub fn load_sources_cached(
    root: &Path,
    files: Vec<(String, PathBuf, String)>,
    cache: &ParseCache,
    diags: &mut Diagnostics,
) -> Loaded {
    let mut loaded = Loaded {
        root: root.to_path_buf(),
        ..Default::default()
    };
    // Parsing is most of a check's time, and files parse independently.
    let parsed: Vec<_> = {
        use rayon::prelude::*;
        files
            .par_iter()
            .map(|(_, _, text)| {
                if let Some(doc) = cache.get(text) {
                    return Ok(doc);
                }
                let parsed = parse_kdl(text);
                if let Ok(doc) = &parsed {
                    cache.put(text, doc);
                }
                parsed
            })
            .collect()
    };
    for ((name, path, text), parsed) in files.into_iter().zip(parsed) {
        let id = loaded.sources.add(name, path, text);
        match parsed {
            Ok(doc) => loaded.files.push(ParsedFile { file: id, doc }),
            Err(err) => report_syntax(id, err, diags),
        }
    }
    loaded
}

/// Parses KDL 2. The parser is third-party code on arbitrary input, so a panic
/// inside it is caught and reported as a syntax error rather than crashing.
pub(crate) fn parse_kdl(text: &str) -> Result<KdlDocument, kdl::KdlError> {
    let result = std::panic::catch_unwind(|| KdlDocument::parse_v2(text));
    match result {
        Ok(r) => r,
        Err(_) => Err(kdl::KdlError {
            input: std::sync::Arc::new(text.to_string()),
            diagnostics: vec![kdl::KdlDiagnostic {
                input: std::sync::Arc::new(text.to_string()),
                span: (0, 0).into(),
                message: Some("the KDL parser failed on this file".into()),
                label: None,
                help: Some("please report this file to keelson's issue tracker".into()),
                severity: miette::Severity::Error,
            }],
        }),
    }
}

fn report_syntax(file: FileId, err: kdl::KdlError, diags: &mut Diagnostics) {
    if err.diagnostics.is_empty() {
        diags.push(
            Diagnostic::error(
                Code::Syntax,
                Loc {
                    file,
                    offset: 0,
                    len: 0,
                },
                "this file is not valid KDL 2",
            )
            .with_help("see https://kdl.dev for the syntax"),
        );
    }
    for mut d in err.diagnostics {
        let message = d.message.unwrap_or_else(|| "invalid KDL".to_string());
        let spanned = text_at(&d.input, d.span);
        let kdl1 = matches!(spanned, "true" | "false" | "null");
        let mut diag = Diagnostic::error(Code::Syntax, Loc::new(file, d.span), message);
        if kdl1 {
            d.help = Some(format!(
                "KDL 2 writes `#{spanned}`; keelson estates are KDL 2"
            ));
        }
        if let Some(label) = d.label {
            diag = diag.with_label(label);
        }
        diag = diag.with_help(d.help.unwrap_or_else(|| {
            "fix the KDL syntax here; keelson estates are KDL 2 (https://kdl.dev)".into()
        }));
        diags.push(diag);
    }
}

fn text_at(text: &str, span: miette::SourceSpan) -> &str {
    let start = span.offset().min(text.len());
    let end = (span.offset() + span.len()).min(text.len());
    text.get(start..end).unwrap_or("").trim()
}
