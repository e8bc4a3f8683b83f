//! keelson's YAML printer for generated files.
//!
//! serde_yaml quotes only what YAML 1.2 would misread, but kubectl and Argo CD
//! read YAML with go-yaml, where `yes`, `on`, `n` are booleans, `010` is
//! octal and `0x1f` hex. So strings are written plain only when no YAML
//! reader could take them for anything else; otherwise single-quoted (or
//! double-quoted with escapes when they hold control characters). Layout
//! follows yaml.v3 (what Image Updater writes): two-space indent, sequence
//! items at their key's indent.

use std::borrow::Cow;
use std::sync::LazyLock;

use regex::Regex;
use serde_yaml::Value;

pub fn to_string(v: &Value) -> String {
    let mut out = String::new();
    match v {
        Value::Mapping(m) if !m.is_empty() => mapping(m, 0, &mut out),
        Value::Sequence(s) if !s.is_empty() => sequence(s, 0, &mut out),
        other => {
            inline(other, &mut out);
            out.push('\n');
        }
    }
    out
}

fn indent_by(indent: usize, out: &mut String) {
    out.extend(std::iter::repeat_n(' ', indent));
}

fn mapping(m: &serde_yaml::Mapping, indent: usize, out: &mut String) {
    for (i, (k, v)) in m.iter().enumerate() {
        // The first key of a sequence item sits after its `- `.
        if i > 0 || !out.ends_with("- ") {
            indent_by(indent, out);
        }
        inline(k, out);
        out.push(':');
        value_after_key(v, indent, out);
    }
}

fn value_after_key(v: &Value, indent: usize, out: &mut String) {
    match v {
        Value::Mapping(m) if !m.is_empty() => {
            out.push('\n');
            mapping(m, indent + 2, out);
        }
        Value::Sequence(s) if !s.is_empty() => {
            out.push('\n');
            sequence(s, indent, out);
        }
        other => {
            out.push(' ');
            inline(other, out);
            out.push('\n');
        }
    }
}

fn sequence(s: &[Value], indent: usize, out: &mut String) {
    for item in s {
        indent_by(indent, out);
        out.push_str("- ");
        match item {
            Value::Mapping(m) if !m.is_empty() => mapping(m, indent + 2, out),
            Value::Sequence(inner) if !inner.is_empty() => {
                out.push('\n');
                sequence(inner, indent + 2, out);
            }
            other => {
                inline(other, out);
                out.push('\n');
            }
        }
    }
}

fn inline(v: &Value, out: &mut String) {
    use std::fmt::Write as _;
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => {
            let _ = write!(out, "{n}");
        }
        Value::String(s) => out.push_str(&scalar(s)),
        Value::Mapping(_) => out.push_str("{}"),
        Value::Sequence(_) => out.push_str("[]"),
        Value::Tagged(t) => inline(&t.value, out),
    }
}

/// A string as a YAML scalar: plain when unambiguous, else quoted.
/// Borrowed when the string is written as it is, the common case.
pub fn scalar(s: &str) -> Cow<'_, str> {
    if s.chars().any(escaped) {
        // JSON's string syntax is YAML's double-quoted style; YAML wants
        // more escaped than JSON does.
        let json = serde_json::to_string(s).expect("strings serialise");
        return json
            .chars()
            .map(|c| match c {
                c if escaped(c) => format!("\\u{:04x}", c as u32),
                c => c.to_string(),
            })
            .collect::<String>()
            .into();
    }
    if needs_quotes(s) {
        return format!("'{}'", s.replace('\'', "''")).into();
    }
    Cow::Borrowed(s)
}

/// Characters a YAML parser would not keep as they are in a scalar:
/// control characters, line separators that YAML 1.1 breaks lines at, the
/// byte-order mark, and non-characters.
fn escaped(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{2028}' | '\u{2029}' | '\u{feff}' | '\u{fffe}' | '\u{ffff}'
        )
}

fn needs_quotes(s: &str) -> bool {
    static AMBIGUOUS: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(concat!(
            r"(?i)^(",
            r"y|n|yes|no|on|off|true|false|null|~", // YAML 1.1 booleans, null
            r"|[-+]?\.?[0-9][0-9_]*(\.[0-9_]*)?(e[-+]?[0-9]+)?", // ints, floats, go-yaml base-0 ints
            r"|[-+]?0[xob][0-9a-f_]+",                           // hex, octal, binary
            r"|[-+]?\.(inf|nan)",                                // infinities
            r"|[-+]?[0-9][0-9_]*(:[0-5]?[0-9])+(\.[0-9_]*)?",    // sexagesimal
            r"|[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}([Tt ].*)?",        // timestamps
            r")$"
        ))
        .expect("static regex")
    });
    let Some(first) = s.chars().next() else {
        return true;
    };
    // Every ambiguous form starts with one of these (or a non-ASCII
    // character that case folding might map to one): most strings skip
    // the regex.
    let may_be_ambiguous = !first.is_ascii()
        || matches!(
            first.to_ascii_lowercase(),
            'y' | 'n' | 'o' | 't' | 'f' | '~' | '0'..='9' | '+' | '-' | '.'
        );
    // `-`, `?` and `:` are indicators only before a space (or alone).
    let indicator = "-?:".contains(first) && s[1..].chars().next().is_none_or(char::is_whitespace);
    indicator
        || ",[]{}#&*!|>'\"%@`".contains(first)
        || first.is_whitespace()
        || s.ends_with(char::is_whitespace)
        || s.ends_with(':')
        || s.contains(": ")
        || s.contains(" #")
        || (may_be_ambiguous && AMBIGUOUS.is_match(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ambiguous_scalars_are_quoted() {
        for s in [
            "yes",
            "No",
            "on",
            "OFF",
            "y",
            "n",
            "true",
            "null",
            "~",
            "1.10",
            "010",
            "1e3",
            "0x1f",
            "12:30",
            "",
            "2026-10-01",
            "-1",
            ".5",
            ".inf",
            "- x",
            "-",
            "? x",
            "a: b",
            "x #y",
            "*",
            "#34577c",
            "{a}",
            "key:",
            ">=0.4.0-0 <1.0.0",
        ] {
            let out = scalar(s);
            assert!(
                out.starts_with('\'') || out.starts_with('"'),
                "`{s}` is written unquoted: {out}"
            );
            let back: String = serde_yaml::from_str(&out).unwrap();
            assert_eq!(back, s);
        }
        for s in [
            "1.1.0",
            "v1.2.3",
            "master-1a2b3c4",
            "ghcr.io/acme/x",
            "^1.0",
            "--interval",
            "CreateNamespace=true",
            "https://a.b/c",
        ] {
            assert_eq!(scalar(s), s);
        }
        assert_eq!(scalar("it's"), "it's");
        assert_eq!(scalar("a\nb"), "\"a\\nb\"");
    }

    #[test]
    fn layout_matches_yaml_v3() {
        let v: Value =
            serde_yaml::from_str("a:\n  b: 1\n  c: [x, {d: e, f: []}]\ng: {}\n").unwrap();
        assert_eq!(
            to_string(&v),
            "a:\n  b: 1\n  c:\n  - x\n  - d: e\n    f: []\ng: {}\n"
        );
        let back: Value = serde_yaml::from_str(&to_string(&v)).unwrap();
        assert_eq!(back, v);
    }
}
