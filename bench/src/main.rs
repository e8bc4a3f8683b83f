//! `cargo run --release -p keelson-bench -- [check] [--apps N,N,…] [--runs R]`
//! `cargo run --release -p keelson-bench -- registry [--repos R] [--tags T] [--jobs J]`
//! (see `registry.rs`; the default is 1,000 repositories × 200 tags).
//! `cargo run --release -p keelson-bench -- policy [--tags T] [--calls C]`
//! (see `policy.rs`: a WebAssembly filter policy against the same filter in Rust).
//! `cargo run --release -p keelson-bench -- build [--apps N,N] [--runs R]`
//! (see `build.rs`: `compile::build`, the pure half of a compile, from what
//! `gather` read, with the estate directory gone).
//! `cargo run --release -p keelson-bench -- diff [--apps N] [--runs R]`
//! (see `diff.rs`: `keelson diff` between two trees of N apps, default 10,000).
//!
//! For each size, generates an estate of N apps × 3 stages and reports the
//! median wall time of `keelson check` beside two baselines measured in the
//! same run on the same files: reading every file (the I/O floor) and parsing
//! every file with the `kdl` crate alone (the parser floor). Results are a
//! Markdown table; the ratios are what to compare across machines.

use std::path::Path;
use std::time::Duration;

use keelson_bench::{Shape, generate, sizes_and_runs, time};

mod build;
mod diff;
mod policy;
mod scale;

fn kdl_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "kdl"))
        .collect();
    v.sort();
    v
}

fn fmt_ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("registry") {
        return registry(&args[1..]);
    }
    if args.first().map(String::as_str) == Some("policy") {
        return policy::run(&args[1..]);
    }
    if args.first().map(String::as_str) == Some("generate") {
        // `keelson-bench generate DIR N`: an estate to look at or time by hand.
        let dir = args.get(1).expect("usage: keelson-bench generate DIR APPS");
        let n = args.get(2).and_then(|n| n.parse().ok()).unwrap_or(100);
        return generate(Path::new(dir), Shape::standard(n)).expect("writing the estate");
    }
    if args.first().map(String::as_str) == Some("scale") {
        return scale::run_scale(&args[1..]);
    }
    if args.first().map(String::as_str) == Some("build") {
        return build::run(&args[1..]);
    }
    if args.first().map(String::as_str) == Some("diff") {
        return diff::run(&args[1..]);
    }
    // `check` is the default benchmark; its name may be given.
    let args = args.strip_prefix(&["check".to_string()]).unwrap_or(&args);
    let (sizes, runs) = sizes_and_runs(
        args,
        vec![100, 1_000, 10_000],
        5,
        "usage: keelson-bench [check] [--apps N,N] [--runs R]",
    );
    let base = std::env::temp_dir().join(format!("keelson-bench-{}", std::process::id()));
    println!(
        "| apps × stages | estate | read files | kdl parse | keelson check | check, parses cached | check ÷ read | check ÷ parse | cached ÷ parse |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for n in sizes {
        let dir = base.join(format!("n{n}"));
        generate(&dir, Shape::standard(n)).expect("writing the estate");
        let files = kdl_files(&dir);
        let bytes: u64 = files
            .iter()
            .map(|f| std::fs::metadata(f).unwrap().len())
            .sum();
        let read = time(runs, || {
            files
                .iter()
                .map(|f| std::fs::read_to_string(f).unwrap().len())
                .sum::<usize>()
        });
        let parse = time(runs, || {
            files
                .iter()
                .map(|f| {
                    kdl::KdlDocument::parse_v2(&std::fs::read_to_string(f).unwrap())
                        .unwrap()
                        .nodes()
                        .len()
                })
                .sum::<usize>()
        });
        let check = time(runs, || {
            let c = keelson::check::check_dir(&dir).expect("check runs");
            assert!(!c.has_errors(), "the generated estate must be valid");
            c.diagnostics.len()
        });
        // The same check with every file's parse in the cache (`time`'s
        // warm-up run fills it), as a second check or a warm compile has it.
        let cache = keelson::load::ParseCache::at(&base.join(format!("cache{n}")));
        let cached_check = || {
            let c = keelson::check::check_dir_cached(&dir, &cache).expect("check runs");
            assert!(!c.has_errors(), "the generated estate must be valid");
            c.diagnostics.len()
        };
        let cached = time(runs, cached_check);
        println!(
            "| {n} × 3 | {} files, {:.1} MiB | {} | {} | {} | {} | {:.1}× | {:.2}× | {:.2}× |",
            files.len(),
            bytes as f64 / (1024.0 * 1024.0),
            fmt_ms(read),
            fmt_ms(parse),
            fmt_ms(check),
            fmt_ms(cached),
            check.as_secs_f64() / read.as_secs_f64(),
            check.as_secs_f64() / parse.as_secs_f64(),
            cached.as_secs_f64() / parse.as_secs_f64(),
        );
    }
    let _ = std::fs::remove_dir_all(&base);
}

/// `keelson-bench registry [--repos R] [--tags T] [--jobs J]`.
fn registry(args: &[String]) {
    let mut a = keelson_bench::registry::Args {
        repos: 1_000,
        tags: 200,
        jobs: 8,
    };
    let mut i = 0;
    while i < args.len() {
        let value = || -> usize {
            args.get(i + 1)
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{} takes a number", args[i]))
        };
        match args[i].as_str() {
            "--repos" => a.repos = value(),
            "--tags" => a.tags = value(),
            "--jobs" => a.jobs = value(),
            other => panic!(
                "unknown argument {other}; usage: keelson-bench registry [--repos R] [--tags T] [--jobs J]"
            ),
        }
        i += 2;
    }
    keelson_bench::registry::run(&a);
}
