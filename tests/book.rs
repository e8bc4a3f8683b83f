//! The book keeps up with the code: every diagnostic code has its section,
//! and every KDL example in the book and the README is valid KDL 2.

use keelson::diagnostic::Code;
use keelson_tests::repo_root;

pub fn trials() -> Vec<keelson_testkit::harness::Trial> {
    keelson_testkit::trials![
        every_diagnostic_code_is_documented,
        every_kdl_example_parses,
        seed_snippets_are_the_examples,
    ]
}

fn book_files() -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(repo_root().join("book/src"))
        .expect("book/src exists")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    files.push(repo_root().join("README.md"));
    files.sort();
    files
}

/// (file, line, code) for every fenced block in the given language.
fn fenced_blocks(lang: &str) -> Vec<(String, usize, String)> {
    let mut out = Vec::new();
    for f in book_files() {
        let text = std::fs::read_to_string(&f).unwrap();
        let mut current: Option<(usize, String)> = None;
        for (i, line) in text.lines().enumerate() {
            let t = line.trim_start();
            match &mut current {
                None if t.starts_with("```") && t.trim_start_matches('`').trim() == lang => {
                    current = Some((i + 1, String::new()))
                }
                Some((start, code)) if t.starts_with("```") => {
                    out.push((f.display().to_string(), *start, std::mem::take(code)));
                    current = None;
                }
                Some((_, code)) => {
                    code.push_str(line);
                    code.push('\n');
                }
                None => {}
            }
        }
    }
    out
}

fn every_diagnostic_code_is_documented() {
    let text = std::fs::read_to_string(repo_root().join("book/src/diagnostics.md")).unwrap();
    let documented: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("## keelson::"))
        .map(str::trim)
        .collect();
    let codes: Vec<&str> = Code::ALL.iter().map(|c| c.name()).collect();
    for code in &codes {
        assert!(
            documented.contains(code),
            "book/src/diagnostics.md has no `## keelson::{code}` section"
        );
    }
    for d in &documented {
        assert!(
            codes.contains(d),
            "book/src/diagnostics.md documents `keelson::{d}`, which is not a code"
        );
    }
    for heading in [
        "**What it means**",
        "**Why it matters**",
        "**Example**",
        "**How to fix**",
    ] {
        assert_eq!(
            text.matches(heading).count(),
            codes.len(),
            "every code needs a {heading} part"
        );
    }
}

fn every_kdl_example_parses() {
    let blocks = fenced_blocks("kdl");
    assert!(blocks.len() > 20, "expected the book to hold KDL examples");
    for (file, line, code) in blocks {
        if let Err(e) = kdl::KdlDocument::parse_v2(&code) {
            panic!("{file}:{line}: a ```kdl block is not valid KDL 2: {e:?}\n{code}");
        }
    }
}

/// The KDL of the seed chapter is the shipped examples' KDL: every block
/// under `## Seed NNN` appears, line for line (comments and blank lines
/// aside, paragraph by paragraph), in `examples/seed-NNN-*`, which the tree tests compile. So the
/// chapter cannot show a setup that does not compile.
fn seed_snippets_are_the_examples() {
    let significant = |text: &str| -> Vec<String> {
        text.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with("//"))
            .map(str::to_owned)
            .collect()
    };
    let chapter = std::fs::read_to_string(repo_root().join("book/src/seeds.md")).unwrap();
    let mut checked = 0;
    let mut seed: Option<std::path::PathBuf> = None;
    let mut block: Option<(usize, String)> = None;
    for (i, line) in chapter.lines().enumerate() {
        if let Some(number) = line.strip_prefix("## Seed ").map(|r| &r[..3]) {
            seed = keelson_tests::subdirs(&repo_root().join("examples"))
                .into_iter()
                .find(|d| {
                    d.file_name().is_some_and(|n| {
                        n.to_string_lossy().starts_with(&format!("seed-{number}-"))
                    })
                });
            assert!(
                seed.is_some(),
                "seeds.md:{}: no examples/seed-{number}-*",
                i + 1
            );
            continue;
        }
        match &mut block {
            None if line.trim() == "```kdl" => block = Some((i + 1, String::new())),
            Some((start, code)) if line.trim() == "```" => {
                let Some(example) = &seed else {
                    block = None;
                    continue;
                };
                let mut files: Vec<_> = keelson::check::walk(example)
                    .into_iter()
                    .filter(|p| p.extension().is_some_and(|e| e == "kdl"))
                    .collect();
                files.sort();
                let text: Vec<String> = files
                    .iter()
                    .flat_map(|f| significant(&std::fs::read_to_string(f).unwrap()))
                    .collect();
                // A block may show several pieces of the example, one per
                // paragraph: each is a run of the example's lines.
                for piece in code.split("\n\n").map(significant) {
                    assert!(
                        piece.is_empty() || text.windows(piece.len()).any(|w| w == piece),
                        "book/src/seeds.md:{start}: this part of a ```kdl block is not the text \
                         of {}:\n{}",
                        example.display(),
                        piece.join("\n")
                    );
                }
                checked += 1;
                block = None;
            }
            Some((_, code)) => {
                code.push_str(line);
                code.push('\n');
            }
            None => {}
        }
    }
    assert!(
        checked >= 6,
        "expected the seed chapter to show its examples ({checked} blocks)"
    );
}
