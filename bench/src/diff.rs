//! `keelson-bench diff [--apps N] [--runs R]`: the cost of `keelson diff`
//! between two trees of N apps × 3 stages.
//!
//! The old tree is a compile of a generated estate; the new estate moves 1%
//! of the images (a newer tag in the snapshot), removes 10 apps and adds 10.
//! One run measures, median of R:
//! - `keelson diff` end to end (compile in memory, then compare);
//! - the comparison alone, on the compiled tree (what diff adds to a compile);
//! - baselines on the same two trees on disk: reading every file of both
//!   (the floor: a diff must at least read them) and GNU `diff -rq`, which
//!   compares bytes and says nothing about resources, images or prune risks.

use std::path::Path;
use std::time::Duration;

use keelson::compile::{self, Options};
use keelson::diff::{self, Against, OldTree};
use keelson_bench::{Shape, generate, time};

fn options() -> Options {
    let mut o = Options {
        now: Some("2026-11-23T09:30:00Z".parse().unwrap()),
        ..Options::default()
    };
    o.registry.cache_dir = None;
    o
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

/// The second estate: 1% of images get a newer release, the last 10 apps
/// are gone and 10 new ones appear.
fn change(estate: &Path, apps: usize) {
    let path = estate.join("tags.json");
    let mut tags: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    for (n, (_, list)) in tags.iter_mut().enumerate() {
        if n % 100 != 0 {
            continue;
        }
        let list = list.as_array_mut().unwrap();
        let first = list[0]["name"].as_str().unwrap().to_string();
        let newer = if first.starts_with("main-") {
            "main-fffffff".to_string()
        } else if first == "stable" {
            // The tracked tag moves to a new digest.
            list[0]["digest"] = format!("sha256:{}", "f".repeat(64)).into();
            continue;
        } else {
            "1.2.9".to_string()
        };
        list.push(serde_json::json!({
            "name": newer,
            "created": "2026-11-20T12:00:00Z",
            "digest": format!("sha256:{}", "e".repeat(64)),
        }));
    }
    std::fs::write(&path, serde_json::to_string_pretty(&tags).unwrap()).unwrap();
    // Drop the last 10 apps: they are the tail of the last file.
    let mut files: Vec<_> = std::fs::read_dir(estate)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("apps-")
        })
        .collect();
    files.sort();
    let last = files.last().unwrap();
    let text = std::fs::read_to_string(last).unwrap();
    let cut = text.find(&format!("app \"svc-{}\"", apps - 10)).unwrap();
    std::fs::write(last, &text[..cut]).unwrap();
    // And add 10, copied from the first 10 under new names.
    let mut extra = String::new();
    let first = std::fs::read_to_string(&files[0]).unwrap();
    for i in 0..10 {
        let start = first.find(&format!("app \"svc-{i}\" {{")).unwrap();
        let end = start + first[start..].find("\n}\n").unwrap() + 3;
        extra
            .push_str(&first[start..end].replace(&format!("\"svc-{i}\""), &format!("\"new-{i}\"")));
        extra = extra.replace(
            &format!("namespace=\"svc-{i}-"),
            &format!("namespace=\"new-{i}-"),
        );
        extra.push('\n');
    }
    std::fs::write(estate.join("apps-new.kdl"), extra).unwrap();
}

fn read_all(dir: &Path) -> usize {
    keelson::check::walk(dir)
        .iter()
        .map(|p| std::fs::read(p).map(|b| b.len()).unwrap_or(0))
        .sum()
}

pub fn run(args: &[String]) {
    let mut apps = 10_000usize;
    let mut runs = 3usize;
    let mut i = 0;
    while i < args.len() {
        let value = || -> usize {
            args.get(i + 1)
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{} takes a number", args[i]))
        };
        match args[i].as_str() {
            "--apps" => apps = value(),
            "--runs" => runs = value(),
            other => {
                panic!("unknown argument {other}; usage: keelson-bench diff [--apps N] [--runs R]")
            }
        }
        i += 2;
    }
    assert!(apps >= 20, "--apps must be at least 20");
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("estate-a"), tmp.path().join("estate-b"));
    let (old, new) = (tmp.path().join("old"), tmp.path().join("new"));
    generate(&a, Shape::standard(apps)).unwrap();
    generate(&b, Shape::standard(apps)).unwrap();
    change(&b, apps);
    let first = compile::compile_dir(&a, &old, &options()).expect("compile runs");
    assert!(!first.has_errors(), "the generated estate compiles");
    let files = first.tree.as_ref().map_or(0, |t| t.len());
    // The new tree on disk too, for the baselines.
    let copy = std::process::Command::new("cp")
        .args(["-a"])
        .arg(&old)
        .arg(&new)
        .status()
        .unwrap();
    assert!(copy.success());
    let second = compile::compile_dir(&b, &new, &options()).expect("compile runs");
    assert!(!second.has_errors(), "the changed estate compiles");

    let against = Against::Dir(old.clone());
    let outcome = diff::diff_dir(&b, &against, &options()).unwrap();
    let d = outcome.diff.expect("the diff runs");
    let end_to_end = time(runs, || diff::diff_dir(&b, &against, &options()).unwrap());
    let compiled = &outcome.compiled;
    let (estate, decisions) = compiled.decided.as_ref().unwrap();
    let old_tree = OldTree::open(&against).unwrap();
    let compare = time(runs, || {
        diff::compare(&diff::Inputs {
            old: &old_tree,
            tree: compiled.tree.as_ref().unwrap(),
            lock: compiled.lock.as_ref().unwrap(),
            previous: compiled.previous.as_ref(),
            estate,
            decisions,
        })
        .unwrap()
    });
    let read = time(runs, || read_all(&old) + read_all(&new));
    let gnu = time(runs, || {
        std::process::Command::new("diff")
            .arg("-rq")
            .arg(&old)
            .arg(&new)
            .output()
            .unwrap()
    });
    println!(
        "{apps} apps × 3 stages: {files} files per tree; the diff finds {} files and {} resources changed, {} images, {} prune risks\n",
        d.summary.files.total(),
        d.summary.resources.total(),
        d.summary.images,
        d.summary.prune_risks
    );
    println!("| measured | time | ÷ reading both trees |");
    println!("|---|---|---|");
    let ratio = |t: Duration| t.as_secs_f64() / read.as_secs_f64();
    println!(
        "| reading every file of both trees (floor) | {} | 1.0× |",
        ms(read)
    );
    println!(
        "| GNU `diff -rq` (bytes only) | {} | {:.1}× |",
        ms(gnu),
        ratio(gnu)
    );
    println!(
        "| keelson: the comparison alone | {} | {:.1}× |",
        ms(compare),
        ratio(compare)
    );
    println!(
        "| `keelson diff` end to end (compile in memory + compare) | {} | {:.1}× |",
        ms(end_to_end),
        ratio(end_to_end)
    );
}
