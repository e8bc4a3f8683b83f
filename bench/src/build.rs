//! `keelson-bench build [--apps N,N] [--runs R]`: the pure half of a compile
//! on its own. For each size, `gather` reads the estate (the disk, the
//! snapshot, the policies) and `compile::build` turns what it read into the
//! tree and the lock with no I/O at all; the estate directory is removed
//! before each build is timed, to show that nothing is read. The baseline is
//! the gather measured in the same run.

use std::time::{Duration, Instant};

use keelson_bench::{Shape, generate, median};

fn build_args(args: &[String]) -> (Vec<usize>, usize) {
    keelson_bench::sizes_and_runs(
        args,
        vec![100, 1_000],
        3,
        "usage: keelson-bench build [--apps N,N] [--runs R]",
    )
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

pub fn run(args: &[String]) {
    let (sizes, runs) = build_args(args);
    let options = keelson::gather::Options {
        now: Some("2026-11-23T09:30:00Z".parse().expect("a time")),
        ..Default::default()
    };
    println!("| apps × stages | files | gather (reads) | build (pure) | build ÷ gather |");
    println!("|---|---|---|---|---|");
    for n in sizes {
        let tmp = tempfile::tempdir().unwrap();
        let estate = tmp.path().join("estate");
        let out = tmp.path().join("out");
        let (mut gathers, mut builds, mut files) = (Vec::new(), Vec::new(), 0);
        for _ in 0..runs.max(1) {
            generate(&estate, Shape::standard(n)).expect("writing the estate");
            let t = Instant::now();
            let gathered = keelson::gather::gather(&estate, &out, &options).expect("gather");
            gathers.push(t.elapsed());
            std::fs::remove_dir_all(&estate).unwrap();
            let t = Instant::now();
            let compiled = std::hint::black_box(keelson::compile::build(gathered));
            builds.push(t.elapsed());
            assert!(!compiled.has_errors(), "the generated estate compiles");
            files = compiled.tree.as_ref().map_or(0, |t| t.len());
            // Freeing is not part of building.
            std::mem::forget(compiled);
        }
        let (gather, build) = (median(gathers), median(builds));
        println!(
            "| {n} × 3 | {files} | {} | {} | {:.2}× |",
            ms(gather),
            ms(build),
            build.as_secs_f64() / gather.as_secs_f64()
        );
    }
}
