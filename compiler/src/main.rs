//! The `keelson` command. Thin: parse arguments, call the library, print.
//! Data goes to stdout; diagnostics and progress to stderr.
//!
//! Exit codes: 0 success; 1 the estate has errors (or `fmt --check` found
//! files to format); 2 a usage or I/O error. `diff` differs, as `git diff
//! --exit-code` and `kubectl diff` do: 1 means changes (with `--exit-code`),
//! and every failure, estate errors included, is 2.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use keelson::diagnostic::{self, Format};
use keelson::load::ParseCache;
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
        #[command(flatten)]
        registry: RegistryArgs,
        #[command(flatten)]
        policy: PolicyArgs,
    },
    /// Show what compiling the estate would change in a generated tree: files,
    /// resources, images and why, prune risks. Writes nothing.
    #[command(group(clap::ArgGroup::new("old").required(true).args(["against", "against_git"])))]
    Diff {
        /// The estate directory (its `*.kdl` files).
        dir: PathBuf,
        /// The generated tree to compare with: a directory (the output of an earlier compile).
        #[arg(long, value_name = "OUT")]
        against: Option<PathBuf>,
        /// The tree in a git revision, `REV[:PATH]` (e.g. `origin/main:gitops`), in the repository of the current directory.
        #[arg(long, value_name = "REV[:PATH]")]
        against_git: Option<String>,
        /// `text` for a terminal, `markdown` for a pull-request comment, `json` for tools.
        #[arg(long, value_enum, default_value_t = DiffFormat::Text)]
        format: DiffFormat,
        /// Exit 1 when anything would change, 0 when nothing would (errors exit 2).
        #[arg(long)]
        exit_code: bool,
        /// With `--format text`, show each file's line diff too.
        #[arg(long)]
        patch: bool,
        /// Colour the text: `auto` colours a terminal unless NO_COLOR is set.
        #[arg(long, value_enum, default_value_t = ColorChoice::Auto)]
        color: ColorChoice,
        /// Ask no registry: pin what keelson.lock and the snapshots say.
        #[arg(long)]
        offline: bool,
        /// Decide images from what this generated tree runs (its keelson.lock and Image Updater's
        /// write-backs) rather than the old tree; with `--offline`, a pull request's committed
        /// compile compared with the base branch's tree.
        #[arg(long, value_name = "TREE")]
        decide_from: Option<PathBuf>,
        #[command(flatten)]
        registry: RegistryArgs,
        #[command(flatten)]
        policy: PolicyArgs,
    },
    /// Explain why an app's images are what they are: candidates, filters, policies, gates.
    Explain {
        /// The estate directory (its `*.kdl` files).
        dir: PathBuf,
        /// The app to explain.
        app: String,
        /// Only this stage.
        #[arg(long)]
        stage: Option<String>,
        /// The generated tree, whose keelson.lock says what each stage runs and since when.
        #[arg(short, long)]
        out: Option<PathBuf>,
        /// Ask no registry: use keelson.lock and the snapshots.
        #[arg(long)]
        offline: bool,
        #[command(flatten)]
        registry: RegistryArgs,
        #[command(flatten)]
        policy: PolicyArgs,
    },
    /// Write, test and pin WebAssembly policies.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// Image tags: see what a strategy would pick, and why.
    Tags {
        #[command(subcommand)]
        command: TagsCommand,
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

#[derive(Subcommand)]
enum TagsCommand {
    /// Select a tag the way Argo CD Image Updater would, from a file or a live registry.
    Select {
        /// The update strategy (`latest` and `name` are Image Updater's old names).
        #[arg(long, value_parser = parse_strategy, default_value = "semver")]
        strategy: keelson::model::Strategy,
        /// For `semver`, the version constraint (default `*`); for `digest`, the tag to track.
        #[arg(long)]
        constraint: Option<String>,
        /// Image Updater's allowTags: `regexp:<expr>` or `any`.
        #[arg(long)]
        allow: Option<String>,
        /// A glob of tags to ignore (repeatable).
        #[arg(long)]
        ignore: Vec<String>,
        /// A platform `os/arch[/variant]` the image must have (repeatable; default linux/amd64).
        #[arg(long = "platform")]
        platforms: Vec<String>,
        /// A JSON array of tags: `[{"name": "1.0.0", "created": "…" or null, "digest": "sha256:…" or null}]`.
        #[arg(long, conflicts_with = "image", required_unless_present = "image")]
        from_file: Option<PathBuf>,
        /// Ask a registry instead: `REGISTRY/REPOSITORY`, e.g. `ghcr.io/acme/api`.
        #[arg(long)]
        image: Option<String>,
        /// The registry's API URL, when it is not `https://<registry>`.
        #[arg(long, requires = "image")]
        api_url: Option<String>,
        /// Credentials as `env:VAR` (VAR holds `user:password`); otherwise Docker's config.json is read.
        #[arg(long, requires = "image")]
        credentials: Option<String>,
        /// `text` for people, `json` for tools.
        #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
        format: OutputFormat,
        #[command(flatten)]
        registry: RegistryArgs,
    },
}

#[derive(Subcommand)]
enum PolicyCommand {
    /// Scaffold a policy crate that builds to WebAssembly as is.
    New {
        /// The policy's name (lowercase, digits and `-`).
        name: String,
        /// Where to create the crate's directory.
        #[arg(long, default_value = ".")]
        dir: PathBuf,
    },
    /// Call a module once with a JSON input; print its verdicts and log.
    Test {
        /// The module (`.wasm`, or WebAssembly text `.wat`).
        module: PathBuf,
        /// The input, as the policy ABI describes it.
        #[arg(long)]
        input: PathBuf,
        #[command(flatten)]
        policy: PolicyArgs,
    },
    /// Print a module's pin, `blake3:<hash>`, for the estate's `pin=`.
    Hash { module: PathBuf },
}

/// Policy time and limits.
#[derive(clap::Args)]
struct PolicyArgs {
    /// The time policies see and new lock entries record, RFC 3339 (default: the clock).
    #[arg(long, value_parser = parse_now)]
    now: Option<jiff::Timestamp>,
    /// Fuel per policy call (about one unit per WebAssembly instruction).
    #[arg(long, default_value_t = keelson::policy::Limits::default().fuel)]
    policy_fuel: u64,
    /// Memory a policy may grow to, in MiB.
    #[arg(long, default_value_t = (keelson::policy::Limits::default().memory >> 20) as u64, value_name = "MIB")]
    policy_memory: u64,
    /// Wall-clock seconds per policy call.
    #[arg(long, default_value_t = keelson::policy::Limits::default().deadline.as_secs(), value_name = "SECONDS")]
    policy_deadline: u64,
}

impl PolicyArgs {
    fn limits(&self) -> keelson::policy::Limits {
        keelson::policy::Limits {
            fuel: self.policy_fuel.max(1),
            memory: (self.policy_memory.clamp(1, 4096) as usize) << 20,
            deadline: std::time::Duration::from_secs(self.policy_deadline.max(1)),
            ..keelson::policy::Limits::default()
        }
    }
}

fn parse_now(s: &str) -> Result<jiff::Timestamp, String> {
    s.parse::<jiff::Timestamp>()
        .map(|t| jiff::Timestamp::from_second(t.as_second()).unwrap_or(t))
        .map_err(|e| format!("`{s}` is not an RFC 3339 time such as 2026-11-23T09:30:00Z: {e}"))
}

/// How registries are asked.
#[derive(clap::Args)]
struct RegistryArgs {
    /// Seconds one registry request may take, connection to last byte.
    #[arg(long, default_value_t = 30, value_name = "SECONDS")]
    registry_timeout: u64,
    /// How many times a transient failure (timeout, 429, 5xx) is retried, with backoff.
    #[arg(long, default_value_t = 3)]
    registry_retries: u32,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 8)]
    jobs: usize,
    /// Where keelson keeps its caches: parsed estate files, compiled policies, manifests and image configs by digest [default: $KEELSON_CACHE_DIR, else ~/.cache/keelson].
    #[arg(long)]
    cache_dir: Option<PathBuf>,
    /// Keep no cache.
    #[arg(long, conflicts_with = "cache_dir")]
    no_cache: bool,
}

impl RegistryArgs {
    fn options(&self) -> keelson::discover::RegistryOptions {
        let defaults = keelson::discover::RegistryOptions::default();
        keelson::discover::RegistryOptions {
            client: keelson::discover::client::ClientOptions {
                timeout: std::time::Duration::from_secs(self.registry_timeout.max(1)),
                retries: self.registry_retries,
                ..defaults.client
            },
            cache_dir: if self.no_cache {
                None
            } else {
                self.cache_dir.clone().or(defaults.cache_dir)
            },
            jobs: self.jobs.max(1),
            progress: std::io::stderr().is_terminal(),
        }
    }
}

fn parse_strategy(s: &str) -> Result<keelson::model::Strategy, String> {
    use keelson::model::Strategy;
    // Image Updater lower-cases the name first.
    match s.to_ascii_lowercase().as_str() {
        "semver" => Ok(Strategy::Semver),
        "newest-build" | "latest" => Ok(Strategy::NewestBuild),
        "alphabetical" | "name" => Ok(Strategy::Alphabetical),
        "digest" => Ok(Strategy::Digest),
        other => Err(format!(
            "`{other}` is not a strategy; use semver, newest-build, alphabetical or digest"
        )),
    }
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum OutputFormat {
    Text,
    Json,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum DiffFormat {
    Text,
    Markdown,
    Json,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ColorChoice {
    Auto,
    Always,
    Never,
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
            let checked = check::check_dir_cached(&dir, &ParseCache::from_env())?;
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
            registry,
            policy,
        } => run_compile(
            &dir,
            &out,
            &keelson::compile::Options {
                offline,
                force,
                dry_run,
                registry: registry.options(),
                now: policy.now,
                policy_limits: policy.limits(),
                decide_from: None,
            },
            format,
        ),
        Command::Diff {
            dir,
            against,
            against_git,
            format,
            exit_code,
            patch,
            color,
            offline,
            decide_from,
            registry,
            policy,
        } => {
            let against = match (against, against_git) {
                (Some(dir), _) => keelson::diff::Against::Dir(dir),
                (None, Some(spec)) => keelson::diff::Against::git(PathBuf::from("."), &spec),
                (None, None) => unreachable!("clap requires --against or --against-git"),
            };
            let color = match color {
                ColorChoice::Always => true,
                ColorChoice::Never => false,
                ColorChoice::Auto => {
                    std::io::stdout().is_terminal()
                        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
                }
            };
            run_diff(
                &dir,
                &against,
                &keelson::compile::Options {
                    offline,
                    registry: registry.options(),
                    now: policy.now,
                    policy_limits: policy.limits(),
                    decide_from,
                    ..Default::default()
                },
                format,
                exit_code,
                patch,
                color,
            )
        }
        Command::Explain {
            dir,
            app,
            stage,
            out,
            offline,
            registry,
            policy,
        } => run_explain(
            &dir,
            &app,
            stage.as_deref(),
            out.as_deref(),
            &keelson::compile::Options {
                offline,
                dry_run: true,
                registry: registry.options(),
                now: policy.now,
                policy_limits: policy.limits(),
                ..Default::default()
            },
        ),
        Command::Policy { command } => run_policy(command),
        Command::Tags {
            command:
                TagsCommand::Select {
                    strategy,
                    constraint,
                    allow,
                    ignore,
                    platforms,
                    from_file,
                    image,
                    api_url,
                    credentials,
                    format,
                    registry,
                },
        } => {
            let checked = keelson::tags::check(&keelson::tags::Request {
                strategy,
                constraint,
                allow,
                ignore,
                platforms,
            })
            .map_err(|e| Error::refused(e, "see `keelson tags select --help`"))?;
            for w in &checked.warnings {
                eprintln!("warning: {w}");
            }
            let tags = match (&from_file, &image) {
                (Some(file), _) => keelson::tags::read_file(file)
                    .map_err(|e| Error::refused(e, "fix the file and run again"))?,
                (None, Some(image)) => {
                    let credentials = credentials
                        .as_deref()
                        .map(|c| {
                            keelson::rules::credential_ref(c).map_err(|why| {
                                Error::refused(
                                    format!("`{c}` is not a credential reference: {why}"),
                                    "write `env:VAR`, with VAR holding `user:password`",
                                )
                            })
                        })
                        .transpose()?;
                    let (tags, requests) = keelson::tags::read_registry(
                        image,
                        api_url.as_deref(),
                        credentials.as_ref(),
                        &checked,
                        &registry.options(),
                    )
                    .map_err(|e| Error::refused(e.to_string(), e.help()))?;
                    eprintln!("read {} tags of {image} in {requests} requests", tags.len());
                    tags
                }
                (None, None) => unreachable!("clap requires --from-file or --image"),
            };
            let selection = keelson::tags::select(&checked, &tags);
            let out = match format {
                OutputFormat::Json => keelson::tags::to_json(&checked, &selection),
                OutputFormat::Text => keelson::tags::to_text(&checked, &selection),
            };
            print!("{out}");
            Ok(ExitCode::SUCCESS)
        }
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
            let checked = check::check_dir_cached(&dir, &ParseCache::from_env())?;
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
    // The process ends next: freeing a large estate's tree and model one
    // allocation at a time would only delay the exit (rustc does the same).
    std::mem::forget(compiled);
    Ok(ExitCode::SUCCESS)
}

fn run_diff(
    dir: &std::path::Path,
    against: &keelson::diff::Against,
    options: &keelson::compile::Options,
    format: DiffFormat,
    exit_code: bool,
    patch: bool,
    color_out: bool,
) -> Result<ExitCode, Error> {
    use keelson::diff::render;
    let outcome = keelson::diff::diff_dir(dir, against, options)?;
    let compiled = &outcome.compiled;
    eprint!(
        "{}",
        diagnostic::render(
            &compiled.diagnostics,
            &compiled.sources,
            Format::Human,
            color()
        )
    );
    let Some(diff) = &outcome.diff else {
        // Errors in the estate: there is nothing to compare, and that is not
        // "no changes" (exit 2, as for every failure of diff).
        print_error(&Error::InvalidEstate {
            errors: compiled.error_count(),
        });
        return Ok(ExitCode::from(2));
    };
    let text = match format {
        DiffFormat::Text => render::text(diff, color_out, patch),
        DiffFormat::Markdown => render::markdown(diff),
        DiffFormat::Json => render::json(diff),
    };
    print!("{text}");
    if format != DiffFormat::Text {
        eprintln!("{}", render::headline(diff));
    }
    Ok(if exit_code && diff.has_changes() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
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

fn run_explain(
    dir: &std::path::Path,
    app: &str,
    stage: Option<&str>,
    out: Option<&std::path::Path>,
    options: &keelson::compile::Options,
) -> Result<ExitCode, Error> {
    // Without a tree there is no lock: every stage is explained as new. The
    // path is this process's own and is never created (explain writes nothing).
    let empty =
        std::env::temp_dir().join(format!("keelson-explain-{}-no-tree", std::process::id()));
    let out = out.unwrap_or(&empty);
    let compiled = keelson::compile::build(keelson::gather::gather(dir, out, &options.gather())?);
    let rendered = diagnostic::render(
        &compiled.diagnostics,
        &compiled.sources,
        Format::Human,
        color(),
    );
    eprint!("{rendered}");
    let Some((estate, decisions)) = &compiled.decided else {
        print_error(&Error::InvalidEstate {
            errors: compiled.error_count(),
        });
        return Ok(ExitCode::from(1));
    };
    print!(
        "{}",
        keelson::explain::explain_named(estate, decisions, app, stage)?
    );
    Ok(if compiled.has_errors() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn run_policy(command: PolicyCommand) -> Result<ExitCode, Error> {
    use keelson::policy::tool;
    match command {
        PolicyCommand::Hash { module } => {
            println!("{}", tool::hash_file(&module)?);
            Ok(ExitCode::SUCCESS)
        }
        PolicyCommand::New { name, dir } => {
            let (root, files) = tool::scaffold(&dir, &name)?;
            for f in &files {
                eprintln!("wrote {}", root.join(f).display());
            }
            eprintln!(
                "build it with `cd {} && cargo build --release`; its README says how to test and pin it",
                root.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        PolicyCommand::Test {
            module,
            input,
            policy,
        } => {
            let tested = tool::test(&module, &input, policy.limits())?;
            for line in &tested.log {
                eprintln!("log: {line}");
            }
            match &tested.output {
                Ok(out) => {
                    println!("{out}");
                    eprintln!(
                        "`{}` answered; fuel used: {}; pin: blake3:{}",
                        tested.entry,
                        tested.fuel.unwrap_or(0),
                        tested.hash
                    );
                    Ok(ExitCode::SUCCESS)
                }
                Err(why) => {
                    eprintln!("error: `{}` failed: {why}", tested.entry);
                    Ok(ExitCode::from(1))
                }
            }
        }
    }
}
