//! Every integration test of the `keelson` crate, in one binary: one link of
//! keelson and its dependencies instead of one per file. Each module is what
//! was once a test binary of its own; `main` gathers their trials (test
//! functions, registered with `trials!`, and the cases of the data-driven
//! corpora) and runs them with the testkit's harness.
//!
//! ```sh
//! cargo test -p keelson --test it                  # everything
//! cargo test -p keelson --test it -- registry::    # one module
//! cargo test -p keelson --test it -- --list        # every trial's name
//! ```
//!
//! A test function that no `trials!` names is dead code, which fails the
//! build: none is forgotten.

#![deny(dead_code)]

mod cli;
mod compile;
mod crash;
mod diff_cli;
mod fuzz_regressions;
mod hardening;
mod policy_cli;
mod registry;
mod support;
mod tags_select;

fn main() {
    // The slowest first, so they do not start last and run alone.
    let trials = [
        crash::trials(),
        registry::trials(),
        compile::trials(),
        hardening::trials(),
        policy_cli::trials(),
        diff_cli::trials(),
        cli::trials(),
        fuzz_regressions::trials(),
        tags_select::trials(),
    ];
    keelson_testkit::harness::run(trials.into_iter().flatten().collect());
}
