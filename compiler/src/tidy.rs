//! Tidy tests: rules about the code itself, checked on every `cargo test`.
//!
//! The layering rule: ARCHITECTURE.md's "Floors" block lists every
//! top-level module of the crate, floor by floor, bottom last, in pipeline
//! order within a floor. A module may use only modules listed *after* it
//! (below it, or earlier in its own floor's order). So the imports form no
//! cycle, and reading the crate from the bottom up never needs what is above.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const ARCHITECTURE: &str = include_str!("../../ARCHITECTURE.md");

/// The floors as ARCHITECTURE.md lists them: each module's rank, where a
/// higher rank may use a lower one and never the other way round.
fn ranks(architecture: &str) -> BTreeMap<String, usize> {
    let block = architecture
        .split("```floors\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("ARCHITECTURE.md has a ```floors block");
    // Written top floor first, and within a floor in pipeline order; the
    // rank counts up from the bottom floor.
    let mut floors: Vec<Vec<String>> = Vec::new();
    for line in block.lines() {
        let Some((_, modules)) = line.split_once(':') else {
            continue;
        };
        floors.push(modules.split_whitespace().map(str::to_string).collect());
    }
    let mut ranks = BTreeMap::new();
    let mut rank = 0;
    for floor in floors.iter().rev() {
        for m in floor {
            assert!(
                ranks.insert(m.clone(), rank).is_none(),
                "`{m}` is listed twice in ARCHITECTURE.md's floors"
            );
            rank += 1;
        }
    }
    ranks
}

/// The top-level module a source file belongs to (`emit/argocd.rs` → `emit`).
fn top_module(rel: &Path) -> Option<String> {
    let first = rel.components().next()?.as_os_str().to_str()?;
    let name = first.strip_suffix(".rs").unwrap_or(first);
    (!matches!(name, "lib" | "main" | "tidy")).then(|| name.to_string())
}

/// The top-level modules a file's code (not its comments) names through
/// `crate::`.
fn uses(text: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let code = line.split("//").next().unwrap_or_default();
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            let after = &rest[at + "crate::".len()..];
            let name: String = after
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                found.push((n + 1, name));
            }
            rest = after;
        }
    }
    found
}

/// Every use of a module at the same rank or above, as `file:line: a uses b`.
fn violations(ranks: &BTreeMap<String, usize>, files: &[(PathBuf, String)]) -> Vec<String> {
    let mut bad = Vec::new();
    for (rel, text) in files {
        let Some(from) = top_module(rel) else {
            continue;
        };
        let Some(&from_rank) = ranks.get(&from) else {
            bad.push(format!(
                "{}: module `{from}` is not in ARCHITECTURE.md's floors",
                rel.display()
            ));
            continue;
        };
        for (line, to) in uses(text) {
            if to == from {
                continue;
            }
            match ranks.get(&to) {
                Some(&to_rank) if to_rank < from_rank => {}
                Some(_) => bad.push(format!(
                    "{}:{line}: `{from}` uses `{to}`, which sits above it",
                    rel.display()
                )),
                None => bad.push(format!(
                    "{}:{line}: `{from}` uses `{to}`, which is not in ARCHITECTURE.md's floors",
                    rel.display()
                )),
            }
        }
    }
    bad
}

fn sources(dir: &Path, rel: &Path, out: &mut Vec<(PathBuf, String)>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir.join(rel))
        .expect("the source directory")
        .map(|e| e.expect("a directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        let name = rel.join(path.file_name().expect("a name"));
        if path.is_dir() {
            sources(dir, &name, out);
        } else if name.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path).expect("a source file");
            out.push((name, text));
        }
    }
}

#[test]
fn no_module_uses_one_above_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, Path::new(""), &mut files);
    let ranks = ranks(ARCHITECTURE);
    let bad = violations(&ranks, &files);
    assert!(
        bad.is_empty(),
        "upward imports (see ARCHITECTURE.md, Floors):\n{}",
        bad.join("\n")
    );
    // Every module in the floors exists, so the list cannot rot.
    for m in ranks.keys() {
        assert!(
            files
                .iter()
                .any(|(rel, _)| top_module(rel).as_ref() == Some(m)),
            "ARCHITECTURE.md's floors list `{m}`, which is not a module"
        );
    }
}

#[test]
fn an_upward_import_is_caught() {
    let ranks = ranks("```floors\ntop: compile\nbottom: model emit\n```\n");
    let files = vec![
        (
            PathBuf::from("emit/mod.rs"),
            "use crate::model::Estate;\n// crate::compile in a comment is fine\nuse crate::compile::Laps;\n".to_string(),
        ),
        (PathBuf::from("model.rs"), "use crate::emit::Tree;\n".to_string()),
        (PathBuf::from("compile.rs"), "use crate::emit;\n".to_string()),
    ];
    assert_eq!(
        violations(&ranks, &files),
        [
            "emit/mod.rs:3: `emit` uses `compile`, which sits above it",
            "model.rs:1: `model` uses `emit`, which sits above it",
        ]
    );
}
