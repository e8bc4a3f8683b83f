//! The `keelson` command. Thin: parse arguments, call the library, print.
//! Data goes to stdout; diagnostics and progress to stderr.
//!
//! Exit codes: 0 success; 1 the estate has errors (or `fmt --check` found
//! files to format); 2 a usage or I/O error.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use keelson::diagnostic::{self, Format};
use keelson::{Error, check, fmt, graph, init};

#[derive(Parser)]
#[command(
    name = "keelson",
    version,
    about = "Compile an Argo CD estate described in KDL into a GitOps repository"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check an estate and report every problem in it.
    Check {
        /// The estate directory (its `*.kdl` files).
        dir: PathBuf,
        /// How to print diagnostics.
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
        /// Treat warnings as errors.
        #[arg(long)]
        deny_warnings: bool,
    },
    /// Compile an estate into a GitOps repository tree.
    Compile {
        /// The estate directory (its `*.kdl` files).
        dir: PathBuf,
        /// The output directory: the GitOps repository (it may be a git checkout).
        #[arg(short, long)]
        out: PathBuf,
        /// Ask no registry: pin what keelson.lock and the snapshots say.
        #[arg(long)]
        offline: bool,
        /// Overwrite generated files that were edited by hand, and files keelson did not write.
        #[arg(long)]
        force: bool,
        /// Build and check the tree, report what would change, write nothing.
        #[arg(long)]
        dry_run: bool,
        /// How to print diagnostics.
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
    },
    /// Format estate files canonically.
    Fmt {
        dir: PathBuf,
        /// Change nothing; exit 1 and list the files that are not formatted.
        #[arg(long)]
        check: bool,
    },
    /// Write a commented starter estate into a directory.
    Init { dir: PathBuf },
    /// Print the estate's dependency graph.
    Graph {
        dir: PathBuf,
        #[arg(long, value_enum, default_value_t = GraphFormat::Dot)]
        format: GraphFormat,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum GraphFormat {
    Dot,
    Json,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            print_error(&e);
            ExitCode::from(2)
        }
    }
}

fn color() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

fn print_error(e: &Error) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "error: {e}");
    if let Some(help) = e.help() {
        let _ = writeln!(err, "  help: {help}");
    }
}

fn run(cli: Cli) -> Result<ExitCode, Error> {
    match cli.command {
        Command::Check {
            dir,
            format,
            deny_warnings,
        } => {
            let checked = check::check_dir(&dir)?;
            let rendered = diagnostic::render(
                &checked.diagnostics,
                &checked.loaded.sources,
                format,
                color(),
            );
            match format {
                Format::Json => print!("{rendered}"),
                _ => eprint!("{rendered}"),
            }
            let errors = checked.error_count();
            let warnings = checked.diagnostics.len() - errors;
            let failed = errors > 0 || (deny_warnings && warnings > 0);
            if format != Format::Json {
                let files = checked.loaded.sources.len();
                let s = |n: usize| if n == 1 { "" } else { "s" };
                if failed {
                    eprintln!(
                        "error: the estate has {errors} error{} and {warnings} warning{}",
                        s(errors),
                        s(warnings)
                    );
                } else {
                    eprintln!(
                        "checked {files} file{}: {warnings} warning{}",
                        s(files),
                        s(warnings)
                    );
                }
            }
            Ok(if failed {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Compile {
            dir,
            out,
            offline,
            force,
            dry_run,
            format,
        } => run_compile(
            &dir,
            &out,
            &keelson::compile::Options {
                offline,
                force,
                dry_run,
            },
            format,
        ),
        Command::Fmt { dir, check } => run_fmt(&dir, check),
        Command::Init { dir } => {
            let path = init::init(&dir)?;
            eprintln!(
                "wrote {}; check it with `keelson check {}`",
                path.display(),
                dir.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Graph { dir, format } => {
            let checked = check::check_dir(&dir)?;
            if checked.has_errors() {
                let rendered = diagnostic::render(
                    &checked.diagnostics,
                    &checked.loaded.sources,
                    Format::Human,
                    color(),
                );
                eprint!("{rendered}");
                print_error(&Error::InvalidEstate {
                    errors: checked.error_count(),
                });
                return Ok(ExitCode::from(1));
            }
            let (Some(estate), Some(g)) = (&checked.estate, &checked.graph) else {
                return Err(Error::InvalidEstate {
                    errors: checked.error_count(),
                });
            };
            let out = match format {
                GraphFormat::Dot => graph::to_dot(estate, g),
                GraphFormat::Json => graph::to_json(estate, g),
            };
            print!("{out}");
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn run_compile(
    dir: &std::path::Path,
    out: &std::path::Path,
    options: &keelson::compile::Options,
    format: Format,
) -> Result<ExitCode, Error> {
    let compiled = keelson::compile::compile_dir(dir, out, options)?;
    let rendered = diagnostic::render(&compiled.diagnostics, &compiled.sources, format, color());
    match format {
        Format::Json => print!("{rendered}"),
        _ => eprint!("{rendered}"),
    }
    if compiled.has_errors() {
        let errors = compiled.error_count();
        eprintln!(
            "error: the estate has {errors} error{}; nothing was written to {}",
            if errors == 1 { "" } else { "s" },
            out.display()
        );
        return Ok(ExitCode::from(1));
    }
    let files = compiled.tree.as_ref().map_or(0, |t| t.len());
    match &compiled.report {
        Some(r) => {
            if r.recovered {
                eprintln!("completed an interrupted compile first");
            }
            for p in &r.forced {
                eprintln!("overwrote {p} (--force)");
            }
            eprintln!(
                "compiled {files} files into {}: {} created, {} updated, {} removed, {} unchanged",
                out.display(),
                r.created.len(),
                r.updated.len(),
                r.removed.len(),
                r.unchanged
            );
        }
        None => eprintln!("checked {files} files; nothing written (--dry-run)"),
    }
    Ok(ExitCode::SUCCESS)
}

fn run_fmt(dir: &std::path::Path, check_only: bool) -> Result<ExitCode, Error> {
    let mut diags = diagnostic::Diagnostics::default();
    let loaded = keelson::load::load_dir(dir, &mut diags)?;
    if diags.has_errors() {
        let rendered = diagnostic::render(
            &diags.into_sorted(),
            &loaded.sources,
            Format::Human,
            color(),
        );
        eprint!("{rendered}");
        eprintln!("error: files with syntax errors are not formatted");
        return Ok(ExitCode::from(1));
    }
    let mut unformatted = Vec::new();
    for (_, file) in loaded.sources.iter() {
        let Ok(formatted) = fmt::format_source(&file.text) else {
            continue;
        };
        if formatted != file.text {
            if check_only {
                println!("{}", file.path.display());
            } else {
                keelson::fmt::write_file(&file.path, &formatted)?;
                eprintln!("formatted {}", file.path.display());
            }
            unformatted.push(file.path.clone());
        }
    }
    if check_only && !unformatted.is_empty() {
        eprintln!(
            "error: {} file(s) are not formatted; run `keelson fmt {}`",
            unformatted.len(),
            dir.display()
        );
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}
