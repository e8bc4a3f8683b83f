//! The `keelson` command: parses flags and calls one function of
//! [`keelson::cli`] per command; all output goes through its `Output`.
//! Exit codes are documented there.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use keelson::Error;
use keelson::cli::{self, ColorChoice, Output};
use keelson::diagnostic::Format;

#[derive(Parser)]
#[command(
    name = "keelson",
    version,
    about = "Compile an Argo CD estate described in KDL into a GitOps repository"
)]
struct Args {
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
        /// Build and check the tree, report what the write would create, update, remove and
        /// refuse, write nothing (exit 2 where the compile would refuse).
        #[arg(long)]
        dry_run: bool,
        /// How to print diagnostics (`json` with `--dry-run`: one document with the report).
        #[arg(long, value_enum, default_value_t = Format::Human)]
        format: Format,
        /// Fail at once, rather than wait, when another keelson is writing OUT.
        #[arg(long)]
        no_wait: bool,
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
        /// Fail at once, rather than wait, when a keelson is writing the `--against` directory.
        #[arg(long)]
        no_wait: bool,
        /// With `--format text`, show each file's line diff too.
        #[arg(long)]
        patch: bool,
        /// Colour the text: `auto` colours a terminal unless NO_COLOR is set.
        #[arg(long, value_enum, default_value_t = ColorArg::Auto)]
        color: ColorArg,
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
        #[arg(long, value_parser = cli::parse_strategy, default_value = "semver")]
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
    /// Memory (linear memory and tables together) a policy call may use, in MiB.
    #[arg(long, default_value_t = (keelson::policy::Limits::default().memory >> 20) as u64, value_name = "MIB")]
    policy_memory: u64,
    /// Wall-clock seconds per policy call, and for compiling a policy module.
    #[arg(long, default_value_t = keelson::policy::Limits::default().deadline.as_secs(), value_name = "SECONDS")]
    policy_deadline: u64,
    /// Fuel one policy module may use over all its calls in a compile
    /// (default: 40 × --policy-fuel).
    #[arg(long, value_name = "UNITS")]
    policy_compile_fuel: Option<u64>,
}

impl PolicyArgs {
    fn limits(&self) -> keelson::policy::Limits {
        keelson::policy::Limits {
            fuel: self.policy_fuel.max(1),
            memory: (self.policy_memory.clamp(1, 4096) as usize) << 20,
            deadline: std::time::Duration::from_secs(self.policy_deadline.max(1)),
            compile_fuel: self.policy_compile_fuel,
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
    fn options(&self, out: &Output) -> keelson::discover::RegistryOptions {
        let defaults = keelson::discover::RegistryOptions::default();
        keelson::discover::RegistryOptions {
            client: keelson::discover::client::ClientOptions {
                timeout: std::time::Duration::from_secs(self.registry_timeout.max(1)),
                retries: self.registry_retries,
                backoff: keelson::environment::test_registry_backoff()
                    .unwrap_or(defaults.client.backoff),
                ..defaults.client
            },
            cache_dir: if self.no_cache {
                None
            } else {
                self.cache_dir
                    .clone()
                    .or_else(keelson::environment::cache_dir)
            },
            jobs: self.jobs.max(1),
            progress: out.registry_progress(),
        }
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
enum ColorArg {
    Auto,
    Always,
    Never,
}

impl From<ColorArg> for ColorChoice {
    fn from(c: ColorArg) -> ColorChoice {
        match c {
            ColorArg::Auto => ColorChoice::Auto,
            ColorArg::Always => ColorChoice::Always,
            ColorArg::Never => ColorChoice::Never,
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum GraphFormat {
    Dot,
    Json,
}

fn main() -> ExitCode {
    let args = Args::parse();
    keelson::timing::enable(keelson::environment::timings());
    // Only `diff` has `--color` so far; every other command colours by the
    // terminal and NO_COLOR.
    let colour = match &args.command {
        Command::Diff { color, .. } => ColorChoice::from(*color),
        _ => ColorChoice::Auto,
    };
    let mut out = Output::new(colour);
    let code = match run(&mut out, args.command) {
        Ok(code) => code,
        Err(e) => {
            out.error(&e);
            ExitCode::from(2)
        }
    };
    out.finish(code)
}

/// Whether to wait for another keelson that holds the output.
fn wait(out: &Output, no_wait: bool) -> keelson::write::Wait {
    keelson::write::Wait {
        no_wait,
        notify: Some(out.lock_wait()),
    }
}

/// Calls the one library function each command is.
fn run(out: &mut Output, command: Command) -> Result<ExitCode, Error> {
    match command {
        Command::Check {
            dir,
            format,
            deny_warnings,
        } => cli::check(out, &dir, format, deny_warnings),
        Command::Compile {
            dir,
            out: tree,
            offline,
            force,
            dry_run,
            format,
            no_wait,
            registry,
            policy,
        } => {
            let options = keelson::compile::Options {
                offline,
                force,
                dry_run,
                wait: wait(out, no_wait),
                registry: registry.options(out),
                now: policy.now,
                policy_limits: policy.limits(),
                decide_from: None,
            };
            cli::compile(out, &dir, &tree, &options, format)
        }
        Command::Diff {
            dir,
            against,
            against_git,
            format,
            exit_code,
            no_wait,
            patch,
            color: _,
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
            let options = keelson::compile::Options {
                offline,
                registry: registry.options(out),
                now: policy.now,
                policy_limits: policy.limits(),
                decide_from,
                wait: wait(out, no_wait),
                ..Default::default()
            };
            let format = match format {
                DiffFormat::Text => cli::DiffFormat::Text,
                DiffFormat::Markdown => cli::DiffFormat::Markdown,
                DiffFormat::Json => cli::DiffFormat::Json,
            };
            let view = cli::DiffView {
                format,
                exit_code,
                patch,
            };
            cli::diff(out, &dir, &against, &options, view)
        }
        Command::Explain {
            dir,
            app,
            stage,
            out: tree,
            offline,
            registry,
            policy,
        } => {
            let options = keelson::compile::Options {
                offline,
                dry_run: true,
                registry: registry.options(out),
                now: policy.now,
                policy_limits: policy.limits(),
                ..Default::default()
            };
            cli::explain(out, &dir, &app, stage.as_deref(), tree.as_deref(), &options)
        }
        Command::Policy { command } => match command {
            PolicyCommand::Hash { module } => cli::policy_hash(out, &module),
            PolicyCommand::New { name, dir } => cli::policy_new(out, &name, &dir),
            PolicyCommand::Test {
                module,
                input,
                policy,
            } => cli::policy_test(out, &module, &input, policy.limits()),
        },
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
            let request = keelson::tags::Request {
                strategy,
                constraint,
                allow,
                ignore,
                platforms,
            };
            let from = match (from_file, image) {
                (Some(file), _) => cli::TagsFrom::File(file),
                (None, Some(image)) => cli::TagsFrom::Registry {
                    image,
                    api_url,
                    credentials,
                    options: registry.options(out),
                },
                (None, None) => unreachable!("clap requires --from-file or --image"),
            };
            cli::tags_select(out, &request, &from, format == OutputFormat::Json)
        }
        Command::Fmt { dir, check } => cli::fmt(out, &dir, check),
        Command::Init { dir } => cli::init(out, &dir),
        Command::Graph { dir, format } => {
            let format = match format {
                GraphFormat::Dot => cli::GraphFormat::Dot,
                GraphFormat::Json => cli::GraphFormat::Json,
            };
            cli::graph(out, &dir, format)
        }
    }
}
