//! One test binary per crate. Every integration test of a crate is linked into one binary (a link
//! of wasmtime and the rest of keelson costs more than most tests take to run), whose `main` runs
//! both kinds of tests with [`libtest_mimic`]: data-driven cases found at run time (a directory
//! per case), and plain test functions, registered with [`trials!`].
//!
//! ```no_run
//! use keelson_testkit::harness::{self, Trial};
//!
//! mod cli {
//!     pub fn trials() -> Vec<keelson_testkit::harness::Trial> {
//!         keelson_testkit::trials![exit_codes]
//!     }
//!     fn exit_codes() {
//!         assert_eq!(1 + 1, 2);
//!     }
//! }
//!
//! fn main() {
//!     let mut trials: Vec<Trial> = cli::trials();
//!     trials.push(harness::case("corpus::one", || Ok(())));
//!     harness::run(trials);
//! }
//! ```
//!
//! What the harness adds to libtest-mimic: a panic in a trial fails it with the message and the
//! place it panicked at (and a backtrace with `RUST_BACKTRACE=1`), shown in the summary of
//! failures as `cargo test` shows them; panics that a trial catches itself print nothing, as
//! under `cargo test`'s output capture (`--nocapture` prints them as they happen); two trials of
//! one name are refused. A test function the binary does not register is dead code: declare
//! `#![deny(dead_code)]` in the binary's root, so a forgotten one fails the build.

use std::cell::{Cell, RefCell};
use std::panic::{AssertUnwindSafe, catch_unwind};

pub use libtest_mimic::{Arguments, Failed, Trial};

thread_local! {
    /// Set on the threads that run a trial: their panics are captured.
    static CAPTURING: Cell<bool> = const { Cell::new(false) };
    /// The last panic of this thread, with where it happened.
    static LAST_PANIC: RefCell<Option<Captured>> = const { RefCell::new(None) };
}

struct Captured {
    message: String,
    report: String,
}

fn payload_text(payload: &(dyn std::any::Any + Send)) -> Option<String> {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
}

/// Records the panics of trial threads instead of printing them (unless `--nocapture`); panics
/// on other threads (e.g. a thread pool a test starts) print as usual.
fn install_hook(nocapture: bool) {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !CAPTURING.with(Cell::get) {
            default(info);
            return;
        }
        if nocapture {
            default(info);
        }
        let message = payload_text(info.payload()).unwrap_or_else(|| "Box<dyn Any>".into());
        let mut report = match info.location() {
            Some(l) => format!(
                "panicked at {}:{}:{}:\n{message}",
                l.file(),
                l.line(),
                l.column()
            ),
            None => format!("panicked:\n{message}"),
        };
        let backtrace = std::backtrace::Backtrace::capture();
        if backtrace.status() == std::backtrace::BacktraceStatus::Captured {
            report.push_str(&format!("\nstack backtrace:\n{backtrace}"));
        }
        LAST_PANIC.with(|p| *p.borrow_mut() = Some(Captured { message, report }));
    }));
}

/// Runs `f`, turning a panic into an error that says what panicked where. For tests that go on
/// after a panic (e.g. to name every input that panics, not just the first).
pub fn catch<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    let was = CAPTURING.with(|c| c.replace(true));
    LAST_PANIC.with(|p| p.borrow_mut().take());
    let result = catch_unwind(AssertUnwindSafe(f));
    CAPTURING.with(|c| c.set(was));
    result.map_err(|payload| {
        let text = payload_text(payload.as_ref());
        let captured = LAST_PANIC.with(|p| p.borrow_mut().take());
        match (captured, text) {
            // The hook saw this very panic: its report has the place.
            (Some(c), Some(t)) if c.message == t => c.report,
            (Some(c), None) => c.report,
            // Panicked on another thread and resumed here: the payload is all there is.
            (_, Some(t)) => format!("panicked:\n{t}"),
            (None, None) => "panicked".to_string(),
        }
    })
}

/// A data-driven case: fails when `f` returns an error or panics.
pub fn case(
    name: impl Into<String>,
    f: impl FnOnce() -> Result<(), Failed> + Send + 'static,
) -> Trial {
    Trial::test(name, move || catch(f).map_err(Failed::from)?)
}

/// A test function: fails when it panics, as a `#[test]` does.
pub fn test(name: impl Into<String>, f: fn()) -> Trial {
    Trial::test(name, move || catch(f).map_err(Failed::from))
}

/// The trial name of a test function in module `module_path` (as `module_path!()` gives it):
/// the module path without the crate, then the function, as `cargo test` names them.
pub fn name(module_path: &str, function: &str) -> String {
    match module_path.split_once("::") {
        Some((_, module)) => format!("{module}::{function}"),
        None => function.to_string(),
    }
}

/// The test functions of the calling module as [`Trial`]s named `module::function`.
#[macro_export]
macro_rules! trials {
    ($($f:ident),* $(,)?) => {
        vec![$($crate::harness::test($crate::harness::name(module_path!(), stringify!($f)), $f)),*]
    };
}

/// Runs the trials with the arguments of the command line (the same as `cargo test`'s: a
/// filter, `--exact`, `--skip`, `--test-threads`, `--list`, …) and exits with their outcome.
pub fn run(trials: Vec<Trial>) -> ! {
    let mut names: Vec<&str> = trials.iter().map(Trial::name).collect();
    names.sort_unstable();
    if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
        eprintln!("error: two trials are named `{}`", w[0]);
        std::process::exit(101);
    }
    let args = Arguments::from_args();
    install_hook(args.nocapture);
    libtest_mimic::run(&args, trials).exit()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_drop_the_crate() {
        assert_eq!(name("it::cli", "exit_codes"), "cli::exit_codes");
        assert_eq!(name("it", "alone"), "alone");
    }
}
