//! One diagnostic model for every stage, and its renderers.
//!
//! Stages never fail on bad input: they return their value *and* push
//! [`Diagnostic`]s into a [`Diagnostics`] sink. Every diagnostic points into a
//! source file by [`FileId`] and byte span, carries a stable [`Code`] and, where
//! we know what to do, a help line. Renderers (human, concise, JSON, GitHub
//! annotations) all read the same model.

use std::fmt::{self, Write as _};
use std::path::PathBuf;

use miette::{GraphicalReportHandler, GraphicalTheme, SourceSpan};

/// Index of a file in [`Sources`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FileId(pub u32);

/// A place in the estate: a file and a byte range in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Loc {
    pub file: FileId,
    pub offset: usize,
    pub len: usize,
}

impl Loc {
    pub fn new(file: FileId, span: SourceSpan) -> Self {
        Loc {
            file,
            offset: span.offset(),
            len: span.len(),
        }
    }

    pub fn span(&self) -> SourceSpan {
        SourceSpan::new(self.offset.into(), self.len)
    }
}

/// The text of every file that diagnostics may point into.
#[derive(Debug, Default, Clone)]
pub struct Sources {
    files: Vec<SourceFile>,
}

#[derive(Debug, Clone)]
pub struct SourceFile {
    /// The path as shown to users: relative to the estate directory.
    pub name: String,
    /// The path on disk (or a synthetic one for in-memory sources).
    pub path: PathBuf,
    pub text: String,
}

impl Sources {
    pub fn add(
        &mut self,
        name: impl Into<String>,
        path: impl Into<PathBuf>,
        text: String,
    ) -> FileId {
        let id = FileId(self.files.len() as u32);
        self.files.push(SourceFile {
            name: name.into(),
            path: path.into(),
            text,
        });
        id
    }

    pub fn get(&self, id: FileId) -> &SourceFile {
        &self.files[id.0 as usize]
    }

    pub fn iter(&self) -> impl Iterator<Item = (FileId, &SourceFile)> {
        self.files
            .iter()
            .enumerate()
            .map(|(i, f)| (FileId(i as u32), f))
    }

    pub fn len(&self) -> usize {
        self.files.len()
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// 1-based line and column (in characters) of a byte offset.
    pub(crate) fn line_col(&self, file: FileId, offset: usize) -> (usize, usize) {
        line_col(&self.get(file).text, offset)
    }
}

pub(crate) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let col = before[line_start..].chars().count() + 1;
    (line, col)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Error,
    Warning,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        }
    }
}

macro_rules! codes {
    ($($variant:ident => $name:literal, $summary:literal;)*) => {
        /// A stable code per kind of problem. Each has a page in the book
        /// (`book/src/diagnostics.md`); a test keeps the two in step.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Code { $($variant,)* }

        impl Code {
            pub const ALL: &'static [Code] = &[$(Code::$variant,)*];

            /// The name after `keelson::`, e.g. `unknown-node`.
            pub fn name(self) -> &'static str {
                match self { $(Code::$variant => $name,)* }
            }

            /// One line saying what the code means.
            pub fn summary(self) -> &'static str {
                match self { $(Code::$variant => $summary,)* }
            }
        }
    };
}

codes! {
    Syntax => "syntax", "the file is not valid KDL 2";
    EmptyFile => "empty-file", "every estate file is empty: there is nothing to check or compile";
    UnknownNode => "unknown-node", "a node that keelson does not know in this place";
    UnknownProperty => "unknown-property", "a property that this node does not take";
    UnexpectedArgument => "unexpected-argument", "more arguments than this node takes";
    WrongType => "wrong-type", "a value of the wrong type (a number where a string belongs, …)";
    MissingValue => "missing-value", "a required argument, property or child node is missing";
    InvalidValue => "invalid-value", "a value outside the set this setting accepts";
    DuplicateName => "duplicate-name", "two things of one kind share a name";
    DuplicateNode => "duplicate-node", "a node that may appear once appears twice";
    Conflict => "conflict", "settings that exclude each other are both given";
    UnknownSite => "unknown-site", "a reference to a site that is not defined";
    UnknownCluster => "unknown-cluster", "a reference to a cluster that is not defined";
    AmbiguousCluster => "ambiguous-cluster", "a cluster name that several sites define";
    UnknownRegistry => "unknown-registry", "a reference to a registry that is not defined";
    UnknownPolicy => "unknown-policy", "a reference to a policy that is not defined";
    UnknownStage => "unknown-stage", "a reference to a stage that is not defined";
    UnknownApp => "unknown-app", "a reference to an app that is not defined";
    UnknownProject => "unknown-project", "a reference to a project that is not defined";
    UnknownImage => "unknown-image", "a reference to an image alias that the app does not have";
    InvalidName => "invalid-name", "a name that Kubernetes would reject (DNS-1123)";
    InvalidRegex => "invalid-regex", "a `regexp:` tag filter that does not compile";
    MatchesNothing => "matches-nothing", "a tag filter that Image Updater reads as matching no tag";
    InvalidGlob => "invalid-glob", "an ignore-tags pattern that is not a valid glob";
    InvalidConstraint => "invalid-constraint", "a semver constraint that does not parse";
    IgnoredSetting => "ignored-setting", "a setting that has no effect where it is written";
    LiteralSecret => "literal-secret", "a value that looks like a secret; estates hold only references";
    InvalidCredentials => "invalid-credentials", "a credentials reference in none of the accepted forms";
    InvalidUrl => "invalid-url", "a URL that does not parse or has the wrong scheme";
    InvalidPin => "invalid-pin", "a policy pin that is not a blake3 hash";
    InvalidPlatform => "invalid-platform", "a platform that is not `os/arch[/variant]`";
    InvalidAlias => "invalid-alias", "an image alias that Image Updater would reject";
    InvalidPath => "invalid-path", "a path that escapes the estate or does not exist";
    InvalidLayout => "invalid-layout", "a layout path template with an unknown or missing placeholder";
    PathCollision => "path-collision", "two generated files or Applications would get the same path or name";
    SharedResource => "shared-resource", "two Applications would apply the same Kubernetes object";
    RepeatedResource => "repeated-resource", "one Application's manifests define the same Kubernetes object twice";
    ResourceNotPermitted => "resource-not-permitted", "an app's manifests hold an object its AppProject does not permit";
    WriteBackTarget => "write-back-target", "a write-back target that is not the file keelson writes the deployment's images to";
    Cycle => "cycle", "a cycle in `depends-on` or in stage promotion";
    ManagementCluster => "management-cluster", "a site without exactly one management cluster";
    NothingToPromote => "nothing-to-promote", "a stage promotes from a stage where the app is not deployed";
    UnsupportedVersion => "unsupported-version", "a feature that the targeted Image Updater version lacks";
    InvalidSnapshot => "invalid-snapshot", "a tag snapshot file that is not valid";
    NoTagSource => "no-tag-source", "an image that keelson has no tags for";
    RegistryUnavailable => "registry-unavailable", "a registry that could not be read: down, slow, refusing, or answering nonsense";
    NoMatchingTag => "no-matching-tag", "no tag passes an image's strategy and filters";
    InvalidPolicy => "invalid-policy", "a policy module that cannot be used: unreadable, not valid WebAssembly, or breaking the ABI";
    PolicyPinMismatch => "policy-pin-mismatch", "a policy module whose blake3 differs from its pin (in the estate or keelson.lock)";
    PolicyFailed => "policy-failed", "a policy call that trapped, ran out of fuel, memory or time, or answered nonsense";
    PolicyInCluster => "policy-in-cluster", "a filter policy on a stage that Image Updater updates in-cluster, where policies cannot run";
    PromotionHeld => "promotion-held", "a gate holds an image that its stage has never run, so there is nothing to keep";
    PromotionWaiting => "promotion-waiting", "a stage's first rollout of an app waits for its gates (no Application yet)";
    InvalidManifest => "invalid-manifest", "an app manifest or values file that keelson cannot use";
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "keelson::{}", self.name())
    }
}

/// A labelled span.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Label {
    pub loc: Loc,
    pub text: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub code: Code,
    pub severity: Severity,
    pub message: String,
    pub primary: Label,
    pub secondary: Vec<Label>,
    pub help: Option<String>,
}

impl Diagnostic {
    pub fn error(code: Code, loc: Loc, message: impl Into<String>) -> Self {
        Diagnostic {
            code,
            severity: Severity::Error,
            message: message.into(),
            primary: Label { loc, text: None },
            secondary: Vec::new(),
            help: None,
        }
    }

    pub fn warning(code: Code, loc: Loc, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Warning,
            ..Self::error(code, loc, message)
        }
    }

    pub(crate) fn with_label(mut self, text: impl Into<String>) -> Self {
        self.primary.text = Some(text.into());
        self
    }

    pub(crate) fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    pub(crate) fn with_secondary(mut self, loc: Loc, text: impl Into<String>) -> Self {
        self.secondary.push(Label {
            loc,
            text: Some(text.into()),
        });
        self
    }
}

/// The sink every stage writes to.
#[derive(Debug, Default, Clone)]
pub struct Diagnostics {
    items: Vec<Diagnostic>,
}

impl Diagnostics {
    pub fn push(&mut self, d: Diagnostic) {
        self.items.push(d);
    }

    /// Moves every diagnostic of `other` here.
    pub(crate) fn append(&mut self, mut other: Diagnostics) {
        self.items.append(&mut other.items);
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut Diagnostic> {
        self.items.iter_mut()
    }

    pub(crate) fn last_mut(&mut self) -> Option<&mut Diagnostic> {
        self.items.last_mut()
    }

    pub fn has_errors(&self) -> bool {
        self.items.iter().any(|d| d.severity == Severity::Error)
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Diagnostic> {
        self.items.iter()
    }

    /// Sorted by file, position, then code, with exact duplicates removed, so
    /// that output does not depend on the order stages ran in.
    pub(crate) fn into_sorted(mut self) -> Vec<Diagnostic> {
        self.items.sort_by(|a, b| {
            (a.primary.loc, a.code, &a.message).cmp(&(b.primary.loc, b.code, &b.message))
        });
        self.items.dedup();
        self.items
    }
}

/// How diagnostics are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Source snippets with labels, coloured on a terminal.
    Human,
    /// One block per diagnostic, no snippets: `file:line:col`, message, help.
    Concise,
    /// A JSON array, for tools.
    Json,
    /// GitHub Actions workflow commands (`::error file=…`).
    Github,
}

/// Renders diagnostics in the given format. `color` only affects `Human`.
pub fn render(diags: &[Diagnostic], sources: &Sources, format: Format, color: bool) -> String {
    match format {
        Format::Human => render_human(diags, sources, color),
        Format::Concise => render_concise(diags, sources),
        Format::Json => render_json(diags, sources),
        Format::Github => render_github(diags, sources),
    }
}

fn position(sources: &Sources, loc: Loc) -> (usize, usize, usize, usize) {
    let (l1, c1) = sources.line_col(loc.file, loc.offset);
    let (l2, c2) = sources.line_col(loc.file, loc.offset + loc.len);
    (l1, c1, l2, c2)
}

/// The stable text form used by the test corpus: every field that matters,
/// nothing that depends on the terminal.
pub fn render_concise(diags: &[Diagnostic], sources: &Sources) -> String {
    let mut out = String::new();
    for d in diags {
        let file = &sources.get(d.primary.loc.file).name;
        let (l1, c1, l2, c2) = position(sources, d.primary.loc);
        let _ = writeln!(
            out,
            "{}[{}]: {}",
            d.severity.as_str(),
            d.code.name(),
            d.message
        );
        let _ = writeln!(out, "  --> {file}:{l1}:{c1}-{l2}:{c2}");
        let text = &sources.get(d.primary.loc.file).text;
        let snippet = snippet(text, d.primary.loc);
        let _ = writeln!(out, "  span: {snippet}");
        if let Some(label) = &d.primary.text {
            let _ = writeln!(out, "  label: {label}");
        }
        for s in &d.secondary {
            let (l, c, _, _) = position(sources, s.loc);
            let name = &sources.get(s.loc.file).name;
            let _ = writeln!(
                out,
                "  note: {name}:{l}:{c}: {}",
                s.text.as_deref().unwrap_or("")
            );
        }
        if let Some(help) = &d.help {
            let _ = writeln!(out, "  help: {help}");
        }
    }
    out
}

/// The spanned source text, on one line, shortened if long.
fn snippet(text: &str, loc: Loc) -> String {
    let start = floor_boundary(text, loc.offset);
    let end = floor_boundary(text, loc.offset + loc.len);
    let s: String = text[start..end]
        .chars()
        .map(|c| if c == '\n' { '⏎' } else { picture(c) })
        .collect();
    let count = s.chars().count();
    if count > 60 {
        let head: String = s.chars().take(40).collect();
        let tail: String = s.chars().skip(count - 15).collect();
        format!("`{head}…{tail}`")
    } else {
        format!("`{s}`")
    }
}

fn floor_boundary(text: &str, mut i: usize) -> usize {
    i = i.min(text.len());
    while !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn render_json(diags: &[Diagnostic], sources: &Sources) -> String {
    let mut s = serde_json::to_string_pretty(&json_values(diags, sources))
        .expect("JSON values always serialise");
    s.push('\n');
    s
}

/// The diagnostics as the JSON format prints them: an array of objects
/// (also a field of `compile --dry-run --format json`'s document).
pub(crate) fn json_values(diags: &[Diagnostic], sources: &Sources) -> serde_json::Value {
    let items: Vec<serde_json::Value> = diags
        .iter()
        .map(|d| {
            let label = |l: &Label| {
                let (l1, c1, l2, c2) = position(sources, l.loc);
                serde_json::json!({
                    "file": sources.get(l.loc.file).name,
                    "offset": l.loc.offset,
                    "length": l.loc.len,
                    "start": {"line": l1, "column": c1},
                    "end": {"line": l2, "column": c2},
                    "label": l.text,
                })
            };
            serde_json::json!({
                "code": d.code.to_string(),
                "severity": d.severity.as_str(),
                "message": d.message,
                "location": label(&d.primary),
                "related": d.secondary.iter().map(label).collect::<Vec<_>>(),
                "help": d.help,
            })
        })
        .collect();
    serde_json::Value::Array(items)
}

fn render_github(diags: &[Diagnostic], sources: &Sources) -> String {
    let mut out = String::new();
    for d in diags {
        let file = sources.get(d.primary.loc.file);
        let (l1, c1, l2, c2) = position(sources, d.primary.loc);
        let mut msg = d.message.clone();
        if let Some(help) = &d.help {
            msg.push_str("\nhelp: ");
            msg.push_str(help);
        }
        // Workflow commands escape %, CR and LF in the message.
        let msg = msg
            .replace('%', "%25")
            .replace('\r', "%0D")
            .replace('\n', "%0A");
        let _ = writeln!(
            out,
            "::{} file={},line={l1},col={c1},endLine={l2},endColumn={c2},title={}::{msg}",
            d.severity.as_str(),
            file.path.display(),
            d.code,
        );
    }
    out
}

fn render_human(diags: &[Diagnostic], sources: &Sources, color: bool) -> String {
    let theme = if color {
        GraphicalTheme::unicode()
    } else {
        GraphicalTheme::unicode_nocolor()
    };
    let handler = GraphicalReportHandler::new_themed(theme).with_context_lines(1);
    let mut out = String::new();
    for d in diags {
        let _ = handler.render_report(&mut out, &MietteView::new(d, sources));
        out.push('\n');
    }
    out
}

/// Adapts a [`Diagnostic`] to miette's trait for its graphical renderers.
struct MietteView<'a> {
    diag: &'a Diagnostic,
    source: NamedText<'a>,
}

impl<'a> MietteView<'a> {
    fn new(diag: &'a Diagnostic, sources: &'a Sources) -> Self {
        let file = sources.get(diag.primary.loc.file);
        MietteView {
            diag,
            source: NamedText {
                name: &file.name,
                text: visible(&file.text),
                original: &file.text,
            },
        }
    }

    /// A span of the file's text, in the text as shown.
    fn span(&self, loc: Loc) -> SourceSpan {
        if let std::borrow::Cow::Borrowed(_) = self.source.text {
            return loc.span();
        }
        let start = shown_offset(self.source.original, loc.offset);
        let end = shown_offset(self.source.original, loc.offset + loc.len);
        SourceSpan::new(start.into(), end - start)
    }
}

/// Whether a character is shown as its Unicode Control Picture: the C0
/// controls but tab and line ends, and DEL. A NUL is invisible on a
/// terminal, and an escape would drive it.
fn hidden_control(c: char) -> bool {
    (c < ' ' && !matches!(c, '\t' | '\n' | '\r')) || c == '\u{7f}'
}

/// The text with every [`hidden_control`] shown as its picture (NUL as
/// `␀`, U+2400); borrowed when there is none.
fn visible(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(hidden_control) {
        return std::borrow::Cow::Borrowed(text);
    }
    text.chars().map(picture).collect()
}

/// A [`hidden_control`]'s Unicode Control Picture; any other character as it is.
fn picture(c: char) -> char {
    match c {
        '\u{7f}' => '\u{2421}',
        c if hidden_control(c) => char::from_u32(0x2400 + c as u32).unwrap_or(c),
        c => c,
    }
}

/// Where a byte offset of `text` is in [`visible`]`(text)`: each picture
/// before it takes three bytes where its control took one.
fn shown_offset(text: &str, offset: usize) -> usize {
    let offset = floor_boundary(text, offset);
    offset
        + 2 * text[..offset]
            .chars()
            .filter(|&c| hidden_control(c))
            .count()
}

impl fmt::Debug for MietteView<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.diag, f)
    }
}

impl fmt::Display for MietteView<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.diag.message)
    }
}

impl std::error::Error for MietteView<'_> {}

struct NamedText<'a> {
    name: &'a str,
    /// The text as shown (see [`visible`]).
    text: std::borrow::Cow<'a, str>,
    /// The text as it is, which diagnostics' offsets count in.
    original: &'a str,
}

impl miette::SourceCode for NamedText<'_> {
    fn read_span<'a>(
        &'a self,
        span: &SourceSpan,
        before: usize,
        after: usize,
    ) -> Result<Box<dyn miette::SpanContents<'a> + 'a>, miette::MietteError> {
        let inner = self.text.as_ref().read_span(span, before, after)?;
        Ok(Box::new(miette::MietteSpanContents::new_named(
            self.name.to_string(),
            inner.data(),
            *inner.span(),
            inner.line(),
            inner.column(),
            inner.line_count(),
        )))
    }
}

impl miette::Diagnostic for MietteView<'_> {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        Some(Box::new(self.diag.code))
    }

    fn severity(&self) -> Option<miette::Severity> {
        Some(match self.diag.severity {
            Severity::Error => miette::Severity::Error,
            Severity::Warning => miette::Severity::Warning,
        })
    }

    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.diag
            .help
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }

    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        Some(&self.source)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = miette::LabeledSpan> + '_>> {
        let primary_file = self.diag.primary.loc.file;
        let mut labels = vec![miette::LabeledSpan::new_primary_with_span(
            Some(
                self.diag
                    .primary
                    .text
                    .clone()
                    .unwrap_or_else(|| "here".into()),
            ),
            self.span(self.diag.primary.loc),
        )];
        for s in &self.diag.secondary {
            if s.loc.file == primary_file {
                labels.push(miette::LabeledSpan::new_with_span(
                    s.text.clone(),
                    self.span(s.loc),
                ));
            }
        }
        Some(Box::new(labels.into_iter()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_shown_as_pictures_with_spans_kept() {
        let mut sources = Sources::default();
        let text = "a\0b\u{1b}c \"bad\"\n".to_string();
        let at = text.find("\"bad\"").unwrap();
        let file = sources.add("estate.kdl", "estate.kdl", text);
        let d = Diagnostic::error(
            Code::InvalidValue,
            Loc {
                file,
                offset: at,
                len: 5,
            },
            "m",
        )
        .with_label("this");
        let human = render(std::slice::from_ref(&d), &sources, Format::Human, false);
        assert!(
            !human.contains('\0') && !human.contains('\u{1b}'),
            "{human}"
        );
        assert!(human.contains("a␀b␛c \"bad\""), "{human}");
        // The label still underlines `"bad"`: five columns after the pictures.
        let line = human.lines().find(|l| l.contains("─┬─")).unwrap();
        let source = human.lines().find(|l| l.contains("a␀b␛c")).unwrap();
        let col = |s: &str, needle: &str| s[..s.find(needle).unwrap()].chars().count();
        assert_eq!(col(line, "─"), col(source, "\"bad\""), "{human}");
        let concise = render(&[d], &sources, Format::Concise, false);
        assert!(concise.contains("--> estate.kdl:1:7-1:12"), "{concise}");
        let nul = Diagnostic::error(
            Code::Syntax,
            Loc {
                file,
                offset: 0,
                len: 3,
            },
            "m",
        );
        let concise = render(&[nul], &sources, Format::Concise, false);
        assert!(concise.contains("span: `a␀b`"), "{concise}");
    }
}
