//! One input through the code a fuzz target exercises. The fuzz targets
//! (`fuzz/fuzz_targets/*.rs`) and the regression test
//! (`compiler/tests/fuzz_regressions.rs`) both call these functions, so an
//! input the fuzzer found is replayed by `cargo test` through exactly the
//! same path. The property tests (`tests/properties.rs`) check their random
//! estates with the same [`check_in_memory`] and [`format_keeps_meaning`].
//! See `book/src/fuzzing.md`.
//!
//! Every function takes arbitrary bytes and must return normally: a panic is
//! a bug (keelson turns every bad input into a diagnostic or an error). The
//! `assert!`s here are the documented guarantees the fuzzer also checks.
//! Not part of keelson's API.

use std::path::{Path, PathBuf};

use crate::check::Checked;
use crate::diagnostic::{Diagnostics, Format, render};
use crate::discover::cache::Cached;
use crate::discover::client::{self, ErrorKind, RegistryError};
use crate::discover::live;
use crate::policy::abi;

/// The estate directory the in-memory files claim to live in. Nothing is
/// read from it: `check_loaded` runs with `probe_files = false`.
const ROOT: &str = "/fuzz-estate";

/// `keelson check` on an in-memory estate, then the diagnostics in every
/// format, the graph (when the estate has no error, as `keelson graph`), and
/// `keelson fmt` on each file.
///
/// The bytes are read as UTF-8 (lossily). A NUL byte, which KDL never
/// allows, separates files (`a.kdl`, `b.kdl`, …, at most 8), so the fuzzer
/// can reach what spans files: names declared in one and used in another,
/// duplicates across files.
pub fn kdl_lower(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let files: Vec<(String, PathBuf, String)> = text
        .splitn(8, '\0')
        .enumerate()
        .map(|(i, t)| {
            let name = format!("{}.kdl", char::from(b'a' + i as u8));
            let path = Path::new(ROOT).join(&name);
            (name, path, t.to_string())
        })
        .collect();
    let texts: Vec<String> = files.iter().map(|(_, _, t)| t.clone()).collect();

    let checked = check_in_memory(Path::new(ROOT), files);
    if !checked.has_errors() {
        if let (Some(estate), Some(g)) = (&checked.estate, &checked.graph) {
            let _ = crate::graph::to_dot(estate, g);
            let _ = crate::graph::to_json(estate, g);
        }
    }

    for text in &texts {
        let _ = format_keeps_meaning(text);
        cache_keeps_the_parse(text);
    }
    // The same bytes read as a cached parse and as an output index: files
    // from disk, so anything must be a miss, never a panic.
    let _ = crate::load::cache::decode(data);
    let _ = crate::write::index::decode(data);
}

/// The parse cache: a file that parses encodes to a form that decodes to a
/// document encoding to the same bytes (the form holds all that lowering
/// reads; tests/properties.rs also lowers both and compares).
fn cache_keeps_the_parse(text: &str) {
    use crate::load::cache::{decode, encode};
    let Ok(doc) = crate::load::parse_kdl(text) else {
        return;
    };
    // Too deeply nested documents are not cached.
    let Some(once) = encode(&doc) else {
        return;
    };
    let back = decode(&once).expect("an encoded document decodes");
    assert_eq!(
        encode(&back).as_ref(),
        Some(&once),
        "the parse cache lost something"
    );
}

/// `keelson check` on files held in memory (`(name, path, text)`, as
/// [`crate::load::load_sources`] takes them, the paths under `root`), with
/// the filesystem checks off, held to what every input must give: each
/// diagnostic has a message and points inside its file, and every renderer
/// (human with and without colour, concise, JSON, GitHub) copes with
/// whatever was reported. `kdl_lower` and the property tests
/// (`tests/properties.rs`) both check estates through this one function.
pub fn check_in_memory(root: &Path, files: Vec<(String, PathBuf, String)>) -> Checked {
    let mut diags = Diagnostics::default();
    let loaded = crate::load::load_sources(root, files, &mut diags);
    let checked = crate::check::check_loaded(loaded, diags, false);
    for d in &checked.diagnostics {
        for label in std::iter::once(&d.primary).chain(&d.secondary) {
            let text = &checked.loaded.sources.get(label.loc.file).text;
            assert!(
                label.loc.offset + label.loc.len <= text.len(),
                "diagnostic `{}` points past the end of its file",
                d.message
            );
        }
        assert!(!d.message.is_empty(), "a diagnostic without a message");
    }
    for format in [Format::Human, Format::Concise, Format::Json, Format::Github] {
        let _ = render(&checked.diagnostics, &checked.loaded.sources, format, false);
    }
    let _ = render(
        &checked.diagnostics,
        &checked.loaded.sources,
        Format::Human,
        true,
    );
    checked
}

/// `keelson fmt` on one file: a file that parses formats to text that parses
/// to the same document, and formatting that again changes nothing. Returns
/// the formatted text, or `None` when the file does not parse (`fmt` leaves
/// it alone). `kdl_lower` and the property tests both call it.
pub fn format_keeps_meaning(text: &str) -> Option<String> {
    let Ok(formatted) = crate::fmt::format_source(text) else {
        return None;
    };
    let mut before = crate::load::parse_kdl(text).expect("format_source parsed it");
    let mut after = crate::load::parse_kdl(&formatted)
        .unwrap_or_else(|e| panic!("formatted text does not parse: {e:?}\n---\n{formatted}"));
    before.clear_format_recursive();
    after.clear_format_recursive();
    assert_eq!(
        before.to_string(),
        after.to_string(),
        "formatting changed meaning:\n{formatted}"
    );
    let again = crate::fmt::format_source(&formatted).expect("formatted text parses");
    assert_eq!(again, formatted, "formatting is not idempotent");
    Some(formatted)
}

/// A policy's output through the host's boundary: `abi::parse_output`,
/// `read_verdicts` (for a fixed list of candidates, for the tags the output
/// itself names, and for none) and `read_promotion`.
///
/// The host refuses output that is not UTF-8 before these parsers; other
/// bytes are read lossily here so that the fuzzer's mutations still reach
/// the JSON.
pub fn policy_json(data: &[u8]) {
    let output = String::from_utf8_lossy(data);
    let output = output.as_ref();

    let _ = abi::parse_output::<serde_json::Value>(output, "filter");
    let _ = abi::parse_output::<abi::Verdicts>(output, "filter");
    let _ = abi::parse_output::<abi::Promotion>(output, "promote");

    const CANDIDATES: &[&str] = &["1.2.0", "1.1.0", "1.0.1", "0.9.1", "latest", "v2.0.0-rc.1"];
    check_verdicts(output, CANDIDATES.iter().copied());
    check_verdicts(output, std::iter::empty());
    // The tags the output answers for, so that answers the fixed list does
    // not cover still reach the checks past "not a candidate".
    let named: Vec<String> = serde_json::from_str::<serde_json::Value>(output)
        .ok()
        .and_then(|v| {
            let verdicts = v.get("verdicts")?.as_array()?.clone();
            Some(
                verdicts
                    .iter()
                    .filter_map(|x| x.get("tag")?.as_str().map(str::to_string))
                    .collect(),
            )
        })
        .unwrap_or_default();
    check_verdicts(output, named.iter().map(String::as_str));

    match abi::read_promotion(output) {
        Ok(p) => assert!(!p.reason.trim().is_empty(), "a promotion without a reason"),
        Err(f) => check_failure(&f),
    }
}

fn check_verdicts<'a>(output: &str, candidates: impl Iterator<Item = &'a str> + Clone) {
    match abi::read_verdicts(output, candidates.clone()) {
        Ok(denied) => {
            let all: Vec<&str> = candidates.collect();
            for (tag, reason) in &denied {
                assert!(
                    all.contains(&tag.as_str()),
                    "denied `{tag}`, not a candidate"
                );
                assert!(!reason.trim().is_empty(), "denied `{tag}` without a reason");
            }
        }
        Err(f) => check_failure(&f),
    }
}

fn check_failure(f: &abi::Failure) {
    match f {
        // The policy's own words; may be empty.
        abi::Failure::Reported(_) => {}
        abi::Failure::Broken(why) => assert!(!why.is_empty(), "a failure without a reason"),
    }
}

/// What a registry sends, through the client's parsers. The first byte picks
/// the parser (`data[0] - b'0'`, wrapping, modulo the count, so the seed
/// files start with an ASCII digit); the rest is the body or header value:
///
/// - `0` a tag list page (`{"tags": [...]}`)
/// - `1` a manifest, manifest list or OCI index (media type from the body,
///   then each media type keelson reads)
/// - `2` an image config
/// - `3` a `Link` header, and the next page's URL made absolute; with three
///   lines, `resolve_url(api, current, next)` on them
/// - `4` a `Retry-After` header
/// - `5` an error body (`{"errors": [...]}` or anything)
/// - `6` a `WWW-Authenticate` challenge
/// - `7` a token server's answer
/// - `8` a `Docker-Content-Digest` header
///
/// Errors are formatted as they would be reported.
pub fn registry_response(data: &[u8]) {
    const PARSERS: u8 = 9;
    let Some((&first, body)) = data.split_first() else {
        return;
    };
    let header = String::from_utf8_lossy(body);
    let header = header.as_ref();
    match first.wrapping_sub(b'0') % PARSERS {
        0 => {
            if let Err(e) = client::tag_page(body) {
                report(ErrorKind::Malformed(format!(
                    "the tag list is not valid JSON: {e}"
                )));
            }
        }
        1 => {
            let found = client::media_type(None, body);
            let _ = live::summarize(&found, body);
            for media in [
                client::MEDIA_OCI_MANIFEST,
                client::MEDIA_OCI_INDEX,
                client::MEDIA_DOCKER_MANIFEST,
                client::MEDIA_DOCKER_LIST,
                "",
            ] {
                let with_header = client::media_type(Some(media), body);
                if let Ok(summary) = live::summarize(&with_header, body) {
                    cache_round_trip(&summary);
                }
            }
        }
        2 => {
            if let Ok(config) = live::read_config(body) {
                cache_round_trip(&config);
                if let Cached::Config {
                    os,
                    architecture,
                    variant,
                    created,
                } = &config
                {
                    let platform =
                        format!("{os}/{architecture}/{}", variant.as_deref().unwrap_or(""));
                    let _ = live::Platform::parse(&platform).map(|p| p.to_string());
                    let _ = created.as_deref().map(str::parse::<jiff::Timestamp>);
                }
            }
        }
        3 => {
            if let Some(next) = client::next_link(header) {
                for (api, current) in [
                    (
                        "https://r.example",
                        "https://r.example/v2/acme/api/tags/list",
                    ),
                    (
                        "https://r.example/sub",
                        "https://r.example/sub/v2/a/tags/list?n=2",
                    ),
                    (
                        "http://127.0.0.1:5000",
                        "http://127.0.0.1:5000/v2/a/tags/list",
                    ),
                    ("r.example", "r.example"),
                    ("", ""),
                ] {
                    let _ = client::resolve_url(api, current, &next);
                }
            }
            let lines: Vec<&str> = header.splitn(3, '\n').collect();
            if let [api, current, next] = lines[..] {
                let _ = client::resolve_url(api, current, next);
            }
        }
        4 => {
            let retry_after = client::parse_retry_after(header);
            report(ErrorKind::RateLimited { retry_after });
        }
        5 => {
            let message = client::error_message(body);
            report(ErrorKind::Status { code: 503, message });
        }
        6 => match client::read_challenge(header) {
            Ok(client::Challenge::Bearer { realm, service }) => report(ErrorKind::TokenRefused {
                realm,
                detail: service.unwrap_or_default(),
            }),
            Ok(_) => {}
            Err(kind) => report(kind),
        },
        7 => {
            if let Err(detail) = client::read_token(body) {
                report(ErrorKind::TokenRefused {
                    realm: "https://auth.example/token".into(),
                    detail,
                });
            }
        }
        _ => {
            let _ = crate::rules::digest(header);
        }
    }
}

/// What the cache writes of a summary reads back the same.
fn cache_round_trip(c: &Cached) {
    let bytes = serde_json::to_vec(c).expect("cache entries serialise");
    let back: Cached = serde_json::from_slice(&bytes).expect("cache entries read back");
    assert_eq!(
        &back, c,
        "a cache entry changed on its way through the cache"
    );
}

/// An error as a compile reports it: message and help.
fn report(kind: ErrorKind) {
    let e = RegistryError {
        repository: "r.example/acme/api".into(),
        api: "https://r.example".into(),
        doing: "listing the tags".into(),
        kind,
    };
    let _ = e.to_string();
    let _ = e.help();
}
