//! Every test of `keelson-tests`, in one binary: one link of keelson and its
//! dependencies instead of one per file. Each module is what was once a test
//! binary of its own; `main` gathers their trials (test functions, registered
//! with `trials!`, and the cases of the data-driven corpora) and runs them
//! with the testkit's harness.
//!
//! ```sh
//! cargo test -p keelson-tests --test it                # everything
//! cargo test -p keelson-tests --test it -- trees::     # one module
//! KEELSON_BLESS=1 cargo test -p keelson-tests --test it -- estates::   # rewrite goldens
//! ```
//!
//! A test function that no `trials!` names is dead code, which fails the
//! build: none is forgotten.

#![deny(dead_code)]

mod book;
mod caches;
mod diffs;
mod estates;
mod lint;
mod policies;
mod properties;
mod schemas_selftest;
mod threads;
mod trees;

fn main() {
    // The slowest first, so they do not start last and run alone.
    let trials = [
        threads::trials(),
        caches::trials(),
        properties::trials(),
        trees::trials(),
        lint::trials(),
        diffs::trials(),
        estates::trials(),
        schemas_selftest::trials(),
        book::trials(),
        policies::trials(),
    ];
    keelson_testkit::harness::run(trials.into_iter().flatten().collect());
}
