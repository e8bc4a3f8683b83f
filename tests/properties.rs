//! Property tests: thousands of random and mutated estates through `check`
//! and `fmt`. `check` must never panic, and every diagnostic it reports must
//! point at real text in a real file. `fmt` must keep meaning and comments,
//! and be idempotent.

use std::path::{Path, PathBuf};

use keelson::check::check_loaded;
use keelson::diagnostic::{Diagnostics, Format, render};
use keelson::fuzz_entry::{check_in_memory, format_keeps_meaning};
use keelson_tests::{repo_root, subdirs};
use proptest::prelude::*;

pub fn trials() -> Vec<keelson_testkit::harness::Trial> {
    keelson_testkit::trials![
        random_estates_never_panic,
        mutated_estates_never_panic,
        fmt_keeps_meaning_and_is_idempotent,
        printed_yaml_parses_back_to_the_same_value,
        a_cached_parse_lowers_like_a_fresh_one,
    ]
}

/// The text of every example and corpus estate: the seeds mutations start
/// from. Read once; every case draws from the same list.
fn seed_files() -> &'static [String] {
    static SEEDS: std::sync::LazyLock<Vec<String>> = std::sync::LazyLock::new(read_seed_files);
    &SEEDS
}

fn read_seed_files() -> Vec<String> {
    let root = repo_root();
    let mut out = Vec::new();
    for base in ["examples", "tests/estates"] {
        for dir in subdirs(&root.join(base)) {
            for f in keelson::check::walk(&dir) {
                if f.extension().is_some_and(|x| x == "kdl") {
                    out.push(std::fs::read_to_string(&f).expect("readable seed"));
                }
            }
        }
    }
    out.push(keelson::init::STARTER.to_string());
    out
}

/// Runs `check` on in-memory files and asserts the invariants: the fuzz
/// target `kdl_lower`'s own check, [`check_in_memory`].
fn check_invariants(files: Vec<String>) {
    let named: Vec<(String, PathBuf, String)> = files
        .into_iter()
        .enumerate()
        .map(|(i, t)| {
            (
                format!("f{i}.kdl"),
                PathBuf::from(format!("/estate/f{i}.kdl")),
                t,
            )
        })
        .collect();
    check_in_memory(Path::new("/estate"), named);
}

/// KDL-ish tokens that keelson estates are made of, to build random estates.
fn token() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("repo".to_string()),
        Just("site".to_string()),
        Just("cluster".to_string()),
        Just("registry".to_string()),
        Just("policy".to_string()),
        Just("stage".to_string()),
        Just("app".to_string()),
        Just("project".to_string()),
        Just("image".to_string()),
        Just("deploy".to_string()),
        Just("depends-on".to_string()),
        Just("promote-from".to_string()),
        Just("write-back".to_string()),
        Just("layout".to_string()),
        Just("sync".to_string()),
        Just("template".to_string()),
        Just("manifests".to_string()),
        Just("chart".to_string()),
        Just("{".to_string()),
        Just("}".to_string()),
        Just("\n".to_string()),
        Just(";".to_string()),
        Just("#true".to_string()),
        Just("#null".to_string()),
        Just("\"\"\"\n  a: b\n  \"\"\"".to_string()),
        "[a-z]{1,8}=\"[a-z0-9:/.{}^~*-]{0,12}\"".prop_map(|s| s),
        "\"[a-zA-Z0-9 :/._{}^~*#@-]{0,16}\"".prop_map(|s| s),
        "[a-z][a-z-]{0,10}".prop_map(|s| s),
        "-?[0-9]{1,20}".prop_map(|s| s),
    ]
}

fn random_estate() -> impl Strategy<Value = String> {
    prop::collection::vec(token(), 0..120).prop_map(|t| t.join(" "))
}

#[derive(Debug, Clone)]
enum Mutation {
    Delete { at: usize, len: usize },
    Insert { at: usize, text: String },
    Duplicate { at: usize, len: usize },
    Swap { a: usize, b: usize },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 1usize..40).prop_map(|(at, len)| Mutation::Delete { at, len }),
        (any::<usize>(), token()).prop_map(|(at, text)| Mutation::Insert { at, text }),
        (any::<usize>(), 1usize..200).prop_map(|(at, len)| Mutation::Duplicate { at, len }),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Mutation::Swap { a, b }),
    ]
}

fn boundary(s: &str, i: usize) -> usize {
    let mut i = i % (s.len() + 1);
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn apply(mut s: String, m: &Mutation) -> String {
    match m {
        Mutation::Delete { at, len } => {
            let a = boundary(&s, *at);
            let b = boundary(&s, (a + len).min(s.len()));
            s.replace_range(a..b.max(a), "");
        }
        Mutation::Insert { at, text } => {
            let a = boundary(&s, *at);
            s.insert_str(a, text);
        }
        Mutation::Duplicate { at, len } => {
            let a = boundary(&s, *at);
            let b = boundary(&s, (a + len).min(s.len())).max(a);
            let chunk = s[a..b].to_string();
            s.insert_str(b, &chunk);
        }
        Mutation::Swap { a, b } => {
            let lines: Vec<&str> = s.lines().collect();
            if lines.len() > 1 {
                let (i, j) = (a % lines.len(), b % lines.len());
                let mut lines: Vec<String> = lines.into_iter().map(String::from).collect();
                lines.swap(i, j);
                s = lines.join("\n");
            }
        }
    }
    s
}

/// A YAML value of the kinds keelson prints: strings that look like other
/// scalars, numbers, booleans, null, and nested mappings and sequences.
fn yaml_value() -> impl Strategy<Value = serde_yaml::Value> {
    use serde_yaml::Value;
    let tricky = prop::sample::select(vec![
        "",
        "true",
        "no",
        "off",
        "~",
        "null",
        "0x1F",
        "1e3",
        "0o17",
        "-",
        "- a",
        ": x",
        "a: b",
        "#c",
        "a #b",
        "'q'",
        "\"d\"",
        "@x",
        "`x`",
        "*a",
        "&a",
        "!t",
        "%d",
        "{a}",
        "[a]",
        "|",
        ">",
        "?",
        "1.0",
        ".inf",
        "-.nan",
        "2026-11-23",
        "12:30",
        "a\nb",
        "a\tb",
        " lead",
        "trail ",
        "ünï",
        "é:",
        "\\",
        "\r",
        "\u{1}",
        "\u{feff}x",
        "=",
        "<<",
        "y",
        "Y",
        "NO",
    ])
    .prop_map(|s| Value::String(s.to_string()));
    let leaf = prop_oneof![
        tricky,
        "[ -~\\n\\tä€]{0,12}".prop_map(Value::String),
        any::<i64>().prop_map(|n| Value::Number(n.into())),
        any::<u64>().prop_map(|n| Value::Number(n.into())),
        (-1e9f64..1e9).prop_map(|f| Value::Number(f.into())),
        any::<bool>().prop_map(Value::Bool),
        Just(Value::Null),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Sequence),
            prop::collection::vec(("[a-z./-]{1,8}|true|1|-|a: b|#x", inner), 0..5).prop_map(
                |pairs| {
                    let mut m = serde_yaml::Mapping::new();
                    for (k, v) in pairs {
                        m.insert(serde_yaml::Value::String(k), v);
                    }
                    serde_yaml::Value::Mapping(m)
                }
            ),
        ]
    })
}

/// A fixed seed keeps CI deterministic; `KEELSON_PROPTEST_SEED=N` explores
/// other inputs (a nightly or local fuzzing run).
fn config() -> ProptestConfig {
    let seed = std::env::var("KEELSON_PROPTEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x6b65656c736f6e);
    ProptestConfig {
        cases: 2000,
        failure_persistence: None,
        rng_seed: proptest::test_runner::RngSeed::Fixed(seed),
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    fn random_estates_never_panic(files in prop::collection::vec(random_estate(), 1..3)) {
        check_invariants(files);
    }

    fn mutated_estates_never_panic(seed in any::<prop::sample::Index>(), muts in prop::collection::vec(mutation(), 1..6)) {
        let seeds = seed_files();
        let mut text = seeds[seed.index(seeds.len())].clone();
        for m in &muts {
            text = apply(text, m);
        }
        check_invariants(vec![text]);
    }

    fn fmt_keeps_meaning_and_is_idempotent(seed in any::<prop::sample::Index>(), muts in prop::collection::vec(mutation(), 0..3)) {
        let seeds = seed_files();
        let mut text = seeds[seed.index(seeds.len())].clone();
        for m in &muts {
            text = apply(text, m);
        }
        // Meaning and idempotence: the fuzz target's own check; then comments.
        if let Some(formatted) = format_keeps_meaning(&text) {
            prop_assert_eq!(text.matches("//").count(), formatted.matches("//").count(), "a comment was lost:\n{}", formatted);
        }
    }
    /// keelson's YAML printer is trusted: a compile does not parse the
    /// files it printed again. So whatever it prints must parse back to the
    /// same value.
    fn printed_yaml_parses_back_to_the_same_value(doc in yaml_value()) {
        let text = keelson::yaml::to_string(&doc);
        let back: serde_yaml::Value = serde_yaml::from_str(&text)
            .unwrap_or_else(|e| panic!("printed YAML does not parse: {e}\n---\n{text}"));
        prop_assert_eq!(&back, &doc, "printed as:\n{}", text);
    }
}

proptest! {
    // Three checks of a whole estate per case: fewer cases.
    #![proptest_config(ProptestConfig { cases: 300, ..config() })]

    /// A cached parse lowers exactly as a fresh one: the same estate (every
    /// span included) and the same diagnostics.
    fn a_cached_parse_lowers_like_a_fresh_one(seed in any::<prop::sample::Index>(), muts in prop::collection::vec(mutation(), 0..3)) {
        let seeds = seed_files();
        let mut text = seeds[seed.index(seeds.len())].clone();
        for m in &muts {
            text = apply(text, m);
        }
        let cache_dir = tempfile::tempdir().unwrap();
        let cache = keelson::load::ParseCache::at(cache_dir.path());
        let root = repo_root().join("examples");
        let files = || vec![("estate.kdl".to_string(), root.join("estate.kdl"), text.clone())];
        let run = |cache: &keelson::load::ParseCache| {
            let mut diags = Diagnostics::default();
            let loaded = keelson::load::load_sources_cached(&root, files(), cache, &mut diags);
            let checked = check_loaded(loaded, diags, false);
            (format!("{:?}", checked.estate), render(&checked.diagnostics, &checked.loaded.sources, Format::Concise, false))
        };
        let fresh = run(&keelson::load::ParseCache::none());
        let _ = run(&cache); // fills the cache
        let cached = run(&cache);
        prop_assert_eq!(&fresh.0, &cached.0);
        prop_assert_eq!(&fresh.1, &cached.1);
    }
}
