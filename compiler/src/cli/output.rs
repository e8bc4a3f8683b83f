//! All user-facing output of the `keelson` commands goes through [`Output`]:
//! data to stdout, messages and diagnostics to stderr, one colour rule, and
//! no panic when a reader goes away (`keelson check 2>&1 | head -1`).

use std::fmt::Display;
use std::io::{self, IsTerminal, Write};
use std::process::ExitCode;

use crate::diagnostic::{self, Diagnostic, Format, Sources};
use crate::error::Error;

/// When to colour: `Auto` colours a terminal unless `NO_COLOR` is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ColorChoice {
    #[default]
    Auto,
    Always,
    Never,
}

impl ColorChoice {
    /// The one colour rule, for a stream that is or is not a terminal.
    fn colours(self, terminal: bool) -> bool {
        match self {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => terminal && !crate::environment::no_color(),
        }
    }
}

/// The command's two streams.
pub struct Output {
    stdout_colour: bool,
    stderr_colour: bool,
    stderr_terminal: bool,
    /// A reader closed the stream: later writes to it are dropped.
    stdout_closed: bool,
    stderr_closed: bool,
    /// Writing data failed for another reason (a full disk): the command
    /// must not claim success.
    stdout_failed: Option<io::Error>,
}

impl Output {
    /// Streams coloured by `choice` (each stream by whether it is a terminal).
    pub fn new(choice: ColorChoice) -> Output {
        let stderr_terminal = io::stderr().is_terminal();
        Output {
            stdout_colour: choice.colours(io::stdout().is_terminal()),
            stderr_colour: choice.colours(stderr_terminal),
            stderr_terminal,
            stdout_closed: false,
            stderr_closed: false,
            stdout_failed: None,
        }
    }

    /// Whether data printed to stdout may be coloured.
    pub fn stdout_colour(&self) -> bool {
        self.stdout_colour
    }

    /// A progress bar for reading registries, drawn on stderr when it is a
    /// terminal (`None` otherwise); it clears itself when the last
    /// repository is done.
    pub fn registry_progress(&self) -> Option<crate::discover::Progress> {
        if !self.stderr_terminal || self.stderr_closed {
            return None;
        }
        let bar = indicatif::ProgressBar::new(0);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} reading tags {bar:30} {pos}/{len} repositories ({elapsed})",
            )
            .expect("static template"),
        );
        Some(crate::discover::Progress(std::sync::Arc::new(
            move |done, total| {
                bar.set_length(total as u64);
                bar.set_position(done as u64);
                if done >= total {
                    bar.finish_and_clear();
                }
            },
        )))
    }

    /// What a run says, once, before it waits for another keelson that holds
    /// the output (on stderr): `waiting for another keelson (pid N) writing OUT`.
    pub fn lock_wait(&self) -> crate::write::Notify {
        let closed = self.stderr_closed;
        crate::write::Notify(std::sync::Arc::new(move |holder| {
            if !closed {
                let _ = writeln!(io::stderr().lock(), "waiting for {}", holder.describe());
            }
        }))
    }

    /// The command's result, as is: for stdout.
    pub fn data(&mut self, text: &str) {
        if self.stdout_closed || self.stdout_failed.is_some() {
            return;
        }
        let mut out = io::stdout().lock();
        match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => self.stdout_closed = true,
            Err(e) => self.stdout_failed = Some(e),
        }
    }

    /// Text for people, as is: for stderr.
    pub fn text(&mut self, text: &str) {
        if self.stderr_closed {
            return;
        }
        let mut err = io::stderr().lock();
        // stderr has nowhere to report its own failure; a closed one ends it.
        if err.write_all(text.as_bytes()).is_err() {
            self.stderr_closed = true;
        }
    }

    /// One line for people (a summary, a note): for stderr.
    pub fn line(&mut self, line: impl Display) {
        self.text(&format!("{line}\n"));
    }

    /// An error that stopped the command, with its help line.
    pub fn error(&mut self, e: &Error) {
        self.line(format_args!("error: {e}"));
        if let Some(help) = e.help() {
            self.line(format_args!("  help: {help}"));
        }
    }

    /// Diagnostics: JSON is the command's data (stdout), every other format
    /// is for people (stderr).
    pub fn diagnostics(&mut self, diags: &[Diagnostic], sources: &Sources, format: Format) {
        let rendered = diagnostic::render(diags, sources, format, self.stderr_colour);
        match format {
            Format::Json => self.data(&rendered),
            _ => self.text(&rendered),
        }
    }

    /// Stage timings collected while the command ran (`KEELSON_TIMINGS=1`).
    pub fn timings(&mut self) {
        for (what, took) in crate::timing::take() {
            self.line(format_args!(
                "timing: {what:<10} {:>8.1} ms",
                took.as_secs_f64() * 1e3
            ));
        }
    }

    /// The process's exit code: `code`, unless writing the data failed.
    /// A reader that closed a stream is not a failure: the command ends
    /// quietly, as `cat` and `git` do.
    pub fn finish(mut self, code: ExitCode) -> ExitCode {
        self.timings();
        match self.stdout_failed.take() {
            Some(e) => {
                self.line(format_args!("error: cannot write to stdout: {e}"));
                ExitCode::from(2)
            }
            None => code,
        }
    }
}
