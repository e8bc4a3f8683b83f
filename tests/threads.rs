//! Parallelism must not show in the output: the same estate compiles to the
//! same bytes — tree, lock and diff — on 1, 2, 3 and 8 threads. `select`
//! decides apps in parallel and `diff` compares files in parallel; both merge
//! in a fixed order, and this test holds them to it.

use keelson::compile::{self, Options};
use keelson::diff::{self, Against, render};
use keelson_bench::{Shape, generate};
use keelson_tests::read_tree as tree;

pub fn trials() -> Vec<keelson_testkit::harness::Trial> {
    keelson_testkit::trials![output_is_identical_for_any_thread_count,]
}

fn options() -> Options {
    let mut o = Options {
        now: Some("2026-11-23T09:30:00Z".parse().unwrap()),
        ..Options::default()
    };
    o.registry.cache_dir = None;
    o
}

fn output_is_identical_for_any_thread_count() {
    let tmp = tempfile::tempdir().unwrap();
    let (estate, changed) = (tmp.path().join("estate"), tmp.path().join("changed"));
    // Policies on a share of the apps, so the WebAssembly calls run in
    // parallel too.
    generate(&estate, Shape::standard(240)).unwrap();
    generate(&changed, Shape::standard(240)).unwrap();
    // A second estate whose snapshot moves every image, for the diff.
    let tags = std::fs::read_to_string(changed.join("tags.json")).unwrap();
    std::fs::write(
        changed.join("tags.json"),
        tags.replace("\"1.3.0\"", "\"1.4.0\""),
    )
    .unwrap();

    let mut results = Vec::new();
    for threads in [1, 2, 3, 8] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        let out = tmp.path().join(format!("out-{threads}"));
        let (compiled, diffed) = pool.install(|| {
            let compiled = compile::compile_dir(&estate, &out, &options()).unwrap();
            let diffed = diff::diff_dir(&changed, &Against::Dir(out.clone()), &options()).unwrap();
            (compiled, diffed)
        });
        assert!(!compiled.has_errors());
        let mut d = diffed.diff.expect("the changed estate compiles");
        assert!(d.summary.images > 0, "the diff should move images");
        d.against = "out".into();
        results.push((threads, tree(&out), render::json(&d)));
    }
    let (_, first_tree, first_diff) = &results[0];
    for (threads, t, d) in &results[1..] {
        assert!(
            t == first_tree,
            "the tree on {threads} threads differs from 1 thread"
        );
        assert!(
            d == first_diff,
            "the diff on {threads} threads differs from 1 thread"
        );
    }
}
