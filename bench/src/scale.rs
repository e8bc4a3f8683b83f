//! `keelson-bench scale [--apps N,N,…] [--runs R]`: the estate benchmark.
//!
//! For each N (default 100, 1,000 and 10,000 apps × 3 stages, a tenth of
//! them through policies), the release `keelson` binary is run as users run
//! it, and timed beside baselines measured in the same run on the same tree:
//!
//! - `check` cold and with the parses cached; `compile` cold (empty output,
//!   empty caches), warm with nothing changed, and warm with one app
//!   changed; `diff` of that change; the peak memory (max RSS) of each;
//! - the copy floor: `cp -R` of the compiled tree into an empty directory
//!   (writing the same bytes, no thinking);
//! - jrsonnet, when installed (`scripts/bench.sh` installs it), generating
//!   the same Applications and kustomizations from `bench/scale.jsonnet`,
//!   and just the Application files: the per-file comparison the targets use.
//!
//! Every row is a median of R runs, each started after a `sync`, and every
//! ratio is against a baseline of the same run.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use keelson_bench::{Shape, generate};

const NOW: &str = "2026-11-23T09:30:00Z";

/// Time and peak memory of one child process.
#[derive(Clone, Copy)]
struct Run {
    time: Duration,
    max_rss_kib: u64,
}

/// Runs a command to completion; its wall time and max RSS (from `wait4`).
fn run(cmd: &mut Command) -> Run {
    cmd.stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    // Every step starts on a settled disk: what the previous one wrote or
    // deleted (this machine's ext4 discards deleted blocks at commit) is
    // flushed first, not charged to whoever runs next.
    // SAFETY: sync has no arguments and cannot fail.
    unsafe { libc::sync() };
    let started = Instant::now();
    let child = cmd.spawn().expect("the command starts");
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: wait4 on our own child, with valid pointers to locals.
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let time = started.elapsed();
    assert_eq!(waited, pid, "wait4 failed");
    let ok = libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
    if !ok {
        let mut err = String::new();
        if let Some(mut e) = child.stderr {
            use std::io::Read;
            let _ = e.read_to_string(&mut err);
        }
        panic!("{cmd:?} failed ({status}):\n{err}");
    }
    Run {
        time,
        max_rss_kib: usage.ru_maxrss as u64,
    }
}

fn median_run(runs: usize, mut f: impl FnMut() -> Run) -> Run {
    median_after(runs, || {}, &mut f)
}

/// The median of `runs` measurements, each after an untimed `setup`.
fn median_after(runs: usize, mut setup: impl FnMut(), mut f: impl FnMut() -> Run) -> Run {
    let mut v: Vec<Run> = (0..runs.max(1))
        .map(|_| {
            setup();
            f()
        })
        .collect();
    v.sort_by_key(|r| r.time);
    v[v.len() / 2]
}

fn keelson_bin() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let bin = exe.with_file_name("keelson");
    assert!(
        bin.exists(),
        "{} is missing: build it with `cargo build --release -p keelson` (scripts/bench.sh does)",
        bin.display()
    );
    bin
}

fn jrsonnet() -> Option<PathBuf> {
    let home = std::env::var_os("HOME").map(PathBuf::from)?;
    let candidates = [home.join(".cargo/bin/jrsonnet"), PathBuf::from("jrsonnet")];
    candidates.into_iter().find(|c| {
        Command::new(c)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

fn files_under(dir: &Path) -> usize {
    keelson::check::walk(dir).len()
}

fn s(d: Duration) -> String {
    if d.as_secs_f64() >= 1.0 {
        format!("{:.2} s", d.as_secs_f64())
    } else {
        format!("{:.0} ms", d.as_secs_f64() * 1000.0)
    }
}

fn mib(r: &Run) -> String {
    format!("{:.0} MiB", r.max_rss_kib as f64 / 1024.0)
}

/// The baseline must do the same work: every file it writes holds the same
/// YAML as keelson's file of that path (Jsonnet sorts keys and quotes
/// strings, so bytes differ).
fn same_documents(keelson_out: &Path, jsonnet_out: &Path) {
    let files = keelson::check::walk(jsonnet_out);
    assert!(!files.is_empty(), "jrsonnet wrote nothing");
    for path in files {
        let rel = path.strip_prefix(jsonnet_out).unwrap();
        let ours = std::fs::read_to_string(keelson_out.join(rel))
            .unwrap_or_else(|_| panic!("jrsonnet wrote {}, which keelson does not", rel.display()));
        let theirs = std::fs::read_to_string(&path).unwrap();
        let a: serde_yaml::Value = serde_yaml::from_str(&ours).unwrap();
        let b: serde_yaml::Value = serde_yaml::from_str(&theirs).unwrap();
        assert!(
            a == b,
            "{} differs between keelson and jrsonnet",
            rel.display()
        );
    }
}

/// Changes one app: a different port in its template params.
fn change_one_app(estate: &Path) {
    let file = estate.join("apps-0000.kdl");
    let text = std::fs::read_to_string(&file).unwrap();
    let changed = text.replacen("port 8000", "port 9000", 1);
    assert_ne!(text, changed, "the first app has port 8000");
    std::fs::write(file, changed).unwrap();
}

/// `keelson-bench scale [--apps N,N] [--runs R]`: the sizes and the runs per step.
fn scale_args(args: &[String]) -> (Vec<usize>, usize) {
    keelson_bench::sizes_and_runs(
        args,
        vec![100, 1_000, 10_000],
        3,
        "usage: keelson-bench scale [--apps N,N] [--runs R]",
    )
}

/// What the scale benchmark runs: the binaries, a scratch directory and the
/// cache every keelson run shares.
struct Scale {
    keelson: PathBuf,
    jsonnet: Option<PathBuf>,
    program: PathBuf,
    tmp: tempfile::TempDir,
    cache: PathBuf,
    runs: usize,
}

/// One size's timed steps.
struct Measured {
    files: usize,
    check: Run,
    check_warm: Run,
    cold: Run,
    warm: Run,
    one: Run,
    diff: Run,
    copy: Run,
    /// jrsonnet writing the whole equivalent tree, and just the Applications.
    js_all: Option<(Run, usize)>,
    js_apps: Option<(Run, usize)>,
}

impl Scale {
    fn new(runs: usize) -> Scale {
        let tmp = tempfile::tempdir().unwrap();
        Scale {
            keelson: keelson_bin(),
            jsonnet: jrsonnet(),
            program: Path::new(env!("CARGO_MANIFEST_DIR")).join("scale.jsonnet"),
            cache: tmp.path().join("cache"),
            tmp,
            runs,
        }
    }

    fn keelson(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.keelson);
        c.args(args)
            .env("KEELSON_CACHE_DIR", &self.cache)
            .env("NO_COLOR", "1");
        c
    }

    fn measure(&self, n: usize) -> Measured {
        let (tmp, r) = (self.tmp.path(), self.runs);
        let k = |args: &[&str]| self.keelson(args);
        let estate = tmp.join(format!("estate-{n}"));
        generate(&estate, Shape::standard(n)).expect("writing the estate");
        let e = estate.to_str().unwrap();
        let out = tmp.join(format!("out-{n}"));
        let o = out.to_str().unwrap();

        // Cold: every file parsed (an empty cache each run).
        let check_cache = tmp.join("check-cache");
        let check = median_run(r, || {
            let _ = std::fs::remove_dir_all(&check_cache);
            run(k(&["check", e]).env("KEELSON_CACHE_DIR", &check_cache))
        });
        let cold = median_run(r, || {
            let _ = std::fs::remove_dir_all(&out);
            let _ = std::fs::remove_dir_all(&self.cache);
            run(&mut k(&["compile", e, "-o", o, "--now", NOW]))
        });
        let files = files_under(&out);
        // Warm: the cold compile left every file's parse in the cache.
        let check_warm = median_run(r, || run(&mut k(&["check", e])));
        let copy = median_run(r, || {
            let target = tmp.join("copy");
            let _ = std::fs::remove_dir_all(&target);
            run(Command::new("cp").arg("-R").arg(&out).arg(&target))
        });
        let warm = median_run(r, || run(&mut k(&["compile", e, "-o", o, "--now", NOW])));
        let changed_estate = tmp.join(format!("changed-{n}"));
        generate(&changed_estate, Shape::standard(n)).unwrap();
        change_one_app(&changed_estate);
        let ce = changed_estate.to_str().unwrap();
        let diff = median_run(r, || {
            run(&mut k(&["diff", ce, "--against", o, "--now", NOW]))
        });
        // From the unchanged tree each time, so every run writes the change.
        let one = median_after(
            r,
            || {
                run(&mut k(&["compile", e, "-o", o, "--now", NOW]));
            },
            || run(&mut k(&["compile", ce, "-o", o, "--now", NOW])),
        );
        let js_all = self
            .jsonnet
            .as_deref()
            .map(|j| self.jsonnet_tree(j, n, "all"));
        if js_all.is_some() {
            // `copy` holds the cold compile's tree (`out` has the one-app change now).
            same_documents(&tmp.join("copy"), &tmp.join("jsonnet-all"));
        }
        let js_apps = (self.jsonnet.as_deref()).map(|j| self.jsonnet_tree(j, n, "applications"));
        Measured {
            files,
            check,
            check_warm,
            cold,
            warm,
            one,
            diff,
            copy,
            js_all,
            js_apps,
        }
    }

    /// jrsonnet writing the equivalent of `what` (`all` or `applications`).
    fn jsonnet_tree(&self, jrsonnet: &Path, n: usize, what: &str) -> (Run, usize) {
        let target = self.tmp.path().join(format!("jsonnet-{what}"));
        let r = median_after(
            self.runs,
            || {
                let _ = std::fs::remove_dir_all(&target);
                std::fs::create_dir_all(&target).unwrap();
            },
            || {
                run(Command::new(jrsonnet)
                    .args(["-S", "-c", "-m"])
                    .arg(&target)
                    .args(["--tla-code", &format!("apps={n}")])
                    .args(["--tla-str", &format!("only={what}")])
                    .arg(&self.program))
            },
        );
        (r, files_under(&target))
    }
}

/// The table rows of one size, as ratios against the copy floor measured
/// in the same run.
fn print_rows(n: usize, m: Measured) {
    let Measured {
        files,
        check,
        check_warm,
        cold,
        warm,
        one,
        diff,
        copy,
        js_all,
        js_apps,
    } = m;
    let ratio = |r: &Run| r.time.as_secs_f64() / copy.time.as_secs_f64();
    let per_file_vs_js = |r: &Run, count: usize| match &js_apps {
        Some((j, jfiles)) => format!(
            "{:.2}×",
            (r.time.as_secs_f64() / count as f64) / (j.time.as_secs_f64() / *jfiles as f64)
        ),
        None => "—".into(),
    };
    let rows: Vec<(&str, &Run, String)> = vec![
        ("`keelson check`, cold", &check, "—".into()),
        ("`keelson check`, parses cached", &check_warm, "—".into()),
        (
            "`keelson compile`, cold",
            &cold,
            per_file_vs_js(&cold, files),
        ),
        (
            "`keelson compile`, warm, nothing changed",
            &warm,
            per_file_vs_js(&warm, files),
        ),
        (
            "`keelson compile`, warm, one app changed",
            &one,
            per_file_vs_js(&one, files),
        ),
        ("`keelson diff`, one app changed", &diff, "—".into()),
        ("copy floor: `cp -R` of the tree", &copy, "—".into()),
    ];
    for (step, r, js) in rows {
        println!(
            "| {n} × 3 | {files} | {step} | {} | {} | {:.2}× | {js} |",
            s(r.time),
            mib(r),
            ratio(r)
        );
    }
    if let Some((j, jfiles)) = &js_all {
        println!(
            "| {n} × 3 | {jfiles} | jrsonnet: the same Applications and kustomizations | {} | {} | {:.2}× | — |",
            s(j.time),
            mib(j),
            ratio(j)
        );
    }
    if let Some((j, jfiles)) = &js_apps {
        println!(
            "| {n} × 3 | {jfiles} | jrsonnet: the Application files only | {} | {} | {:.2}× | 1.00× |",
            s(j.time),
            mib(j),
            ratio(j)
        );
    }
    println!(
        "\n{n} apps: one-app change is {:.1}× faster than cold; warm nothing-changed is {:.2}× the copy floor\n",
        cold.time.as_secs_f64() / one.time.as_secs_f64(),
        ratio(&warm)
    );
}

pub fn run_scale(args: &[String]) {
    let (sizes, runs) = scale_args(args);
    let scale = Scale::new(runs);
    println!(
        "| apps × stages | files | step | time | peak memory | ÷ copy floor | per file vs jrsonnet Applications |"
    );
    println!("|---|---|---|---|---|---|---|");
    for n in sizes {
        print_rows(n, scale.measure(n));
    }
    if scale.jsonnet.is_none() {
        eprintln!("jrsonnet is not installed: its rows are missing (scripts/bench.sh installs it)");
    }
}
