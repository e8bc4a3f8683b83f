//! `keelson fmt`: canonical formatting of estate files.
//!
//! The printer walks the parsed document and writes each node on its own line,
//! indented four spaces per level, with one space between entries. What the
//! author chose is kept: the spelling of every value (quoted or bare, raw or
//! multi-line strings), comments, and single blank lines between nodes (runs
//! of blank lines become one). The `kdl` crate's own autoformat is not used
//! because it drops blank lines and mis-indents comments.
//!
//! A file with syntax errors is never rewritten. Formatting keeps meaning: the
//! tests check that a formatted file parses to the same document and keeps
//! every comment, and that formatting is idempotent.

use kdl::{KdlDocument, KdlEntry, KdlNode};

const INDENT: &str = "    ";

/// Formats one estate file's text. `Err` carries the parser's error.
pub fn format_source(text: &str) -> Result<String, kdl::KdlError> {
    let doc = crate::load::parse_kdl(text)?;
    let mut out = String::with_capacity(text.len());
    let (leading, trailing) = doc
        .format()
        .map_or(("", ""), |f| (f.leading.as_str(), f.trailing.as_str()));
    write_document(&doc, 0, leading, false, &mut out);
    let trailing_text = trivia(trailing, 0, false, false);
    if !trailing_text.trim().is_empty() {
        out.push_str(&trailing_text);
    }
    let trimmed = out.trim_end_matches(['\n', ' ']).len();
    out.truncate(trimmed);
    out.push('\n');
    Ok(out)
}

/// `mid_line`: the document starts right after `{` rather than at the start
/// of a line.
fn write_document(
    doc: &KdlDocument,
    depth: usize,
    doc_leading: &str,
    mid_line: bool,
    out: &mut String,
) {
    let mut after_newline = !mid_line;
    if doc.nodes().is_empty() {
        out.push_str(&trivia(doc_leading, depth, true, mid_line));
    }
    for (i, node) in doc.nodes().iter().enumerate() {
        let leading = node.format().map_or("", |f| f.leading.as_str());
        let leading = if i == 0 {
            format!("{doc_leading}{leading}")
        } else {
            leading.to_string()
        };
        out.push_str(&trivia(&leading, depth, i == 0, !after_newline));
        write_node(node, depth, out);
        after_newline = node.format().is_none_or(|f| f.terminator.ends_with('\n'));
    }
}

/// Whitespace and comments before a node: comment lines re-indented, runs of
/// blank lines collapsed to one, none at the start of a block. Block comments
/// and slashdashed nodes are kept verbatim, since re-indenting their inner
/// lines could change them.
///
/// Every line break in `text` ends a line; when `mid_line`, the text before
/// the first one is the rest of the previous line, not a line of its own.
fn trivia(text: &str, depth: usize, first_in_block: bool, mid_line: bool) -> String {
    let indent = INDENT.repeat(depth);
    if has_block_or_slashdash(text) {
        let body = text.trim_matches(|c: char| c == '\n' || c == ' ' || c == '\t' || c == '\r');
        if body.is_empty() {
            return String::new();
        }
        let blank_prefix = if mid_line { "\n\n" } else { "\n" };
        let blank_before = !first_in_block
            && text
                .trim_start_matches([' ', '\t'])
                .starts_with(blank_prefix);
        let mut s = String::new();
        if blank_before {
            s.push('\n');
        }
        s.push_str(&indent);
        s.push_str(body);
        s.push('\n');
        if text.trim_end_matches([' ', '\t']).ends_with("\n\n") {
            s.push('\n');
        }
        return s;
    }
    let mut out = String::new();
    let mut pending_blank = false;
    let mut seen_content = false;
    let lines: Vec<&str> = text.split('\n').collect();
    // The last piece is the indentation before the node itself.
    for (i, line) in lines.iter().enumerate() {
        let is_last = i + 1 == lines.len();
        let t = line.trim();
        if t.is_empty() {
            // A line break before this line ended a previous line; an empty
            // piece in between means a blank line.
            if !is_last && !(i == 0 && mid_line) {
                pending_blank = true;
            }
            continue;
        }
        if pending_blank && (seen_content || !first_in_block) {
            out.push('\n');
        }
        pending_blank = false;
        seen_content = true;
        out.push_str(&indent);
        out.push_str(t);
        out.push('\n');
    }
    if pending_blank && (seen_content || !first_in_block) {
        out.push('\n');
    }
    out
}

/// Whether trivia holds a block comment or a slashdashed node, looking past
/// `//` line comments (whose text may well contain `/*`).
fn has_block_or_slashdash(text: &str) -> bool {
    text.lines().any(|line| {
        let code = line.trim_start();
        if code.starts_with("//") {
            return false;
        }
        code.contains("/*") || code.contains("/-")
    })
}

fn write_node(node: &KdlNode, depth: usize, out: &mut String) {
    let indent = INDENT.repeat(depth);
    out.push_str(&indent);
    if let Some(ty) = node.ty() {
        out.push('(');
        out.push_str(&ty.to_string());
        out.push(')');
    }
    out.push_str(&node.name().to_string());
    for entry in node.entries() {
        out.push_str(&entry_text(entry));
    }
    let fmt = node.format();
    if let Some(children) = node.children() {
        if let Some(c) = fmt
            .map(|f| f.before_children.trim())
            .filter(|c| !c.is_empty())
        {
            out.push(' ');
            out.push_str(c);
        }
        if children.nodes().is_empty()
            && children
                .format()
                .is_none_or(|f| f.leading.trim().is_empty() && f.trailing.trim().is_empty())
        {
            out.push_str(" {}");
        } else {
            out.push_str(" {\n");
            let (leading, trailing) = children
                .format()
                .map_or(("", ""), |f| (f.leading.as_str(), f.trailing.as_str()));
            write_document(children, depth + 1, leading, true, out);
            let t = trivia(trailing, depth + 1, false, false);
            if !t.trim().is_empty() {
                out.push_str(t.trim_start_matches('\n'));
            }
            out.push_str(&indent);
            out.push('}');
        }
    }
    // A comment after the node. After a closing `}` the parser reads a
    // same-line comment as the next node's leading trivia once reprinted, so
    // the stable place for it is its own line.
    if let Some(f) = fmt {
        for part in [
            f.before_terminator.as_str(),
            f.terminator.as_str(),
            f.trailing.as_str(),
        ] {
            let t = part.trim().trim_start_matches(';').trim();
            if !t.is_empty() {
                if node.children().is_some() {
                    out.push('\n');
                    out.push_str(&indent);
                } else {
                    out.push(' ');
                }
                out.push_str(t);
            }
        }
    }
    out.push('\n');
}

/// One entry with a single space before it and none inside, keeping the
/// value's written form and any comment inside the entry.
fn entry_text(entry: &KdlEntry) -> String {
    let mut e = entry.clone();
    if let Some(f) = e.format_mut() {
        let squash = |s: &mut String| {
            let t = s.trim().trim_start_matches('\\').trim();
            *s = if t.is_empty() {
                String::new()
            } else {
                format!("{t} ")
            };
        };
        squash(&mut f.leading);
        f.leading.insert(0, ' ');
        for s in [&mut f.after_key, &mut f.after_eq, &mut f.after_ty] {
            if s.trim().is_empty() {
                s.clear();
            }
        }
        if f.trailing.trim().is_empty() {
            f.trailing.clear();
        } else {
            f.trailing = format!(" {}", f.trailing.trim());
        }
    }
    e.to_string()
}

/// Replaces a file's contents atomically (a sibling temp file, then rename),
/// so an interrupted `fmt` never leaves half a file.
pub(crate) fn write_file(path: &std::path::Path, text: &str) -> Result<(), crate::error::Error> {
    let dir = path.parent().unwrap_or(std::path::Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.keelson-tmp"));
    std::fs::write(&tmp, text).map_err(|e| crate::error::Error::io("writing", &tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| crate::error::Error::io("replacing", path, e))
}
