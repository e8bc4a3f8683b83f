//! Crash safety under real kills: `keelson compile` is SIGKILLed at random
//! moments of a compile that rewrites and removes hundreds of files, many
//! times. After every kill the output must be the complete old tree (a kill
//! before the journal's commit point; the next run discards the staging) or
//! hold a committed journal that the next run completes, or be the complete
//! new tree (a kill after the write, while the output index is saved) — and
//! the next run must always leave exactly the new tree.
//!
//! `compile.rs` kills at every step of applying the journal by fault
//! injection; this test kills from outside, at times no step chooses.
//!
//! The kill times are spread over the whole compile: the rounds of each kind
//! (an update of an existing tree, or a first compile into an empty
//! directory) split 0–1.2× an uninterrupted compile into equal slices, and
//! each round kills at a point of its slice drawn from a seeded generator.
//! The seed is fixed, so a run is repeatable (as far as the machine's timing
//! allows); `KEELSON_CRASH_SEED=S` draws other points, and
//! `KEELSON_CRASH_ROUNDS=N` runs N rounds instead of 12, e.g.
//! `KEELSON_CRASH_ROUNDS=200 KEELSON_CRASH_SEED=$RANDOM cargo test -p keelson
//! --test it -- crash::` for a long exploration. A failure names its seed and
//! round.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::support::keelson;

pub fn trials() -> Vec<keelson_testkit::harness::Trial> {
    keelson_testkit::trials![random_kills_leave_the_old_tree_or_one_the_next_run_completes]
}

const NOW: &str = "2026-11-23T09:30:00Z";

/// The rounds of a run unless `KEELSON_CRASH_ROUNDS` says otherwise: two
/// thirds updates, one third first compiles.
const ROUNDS: usize = 12;

/// The seed unless `KEELSON_CRASH_SEED` says otherwise ("keelson").
const SEED: u64 = 0x6b65656c736f6e;

/// An estate of `apps` apps × 2 stages sharing one directory of manifests,
/// each with its own image; `version` is the newest tag in the snapshot,
/// and apps from `drop_from` on are left out.
fn estate(dir: &Path, apps: usize, version: &str, drop_from: usize) {
    std::fs::create_dir_all(dir.join("manifests/web")).unwrap();
    std::fs::write(
        dir.join("manifests/web/deployment.yaml"),
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 1\n  selector:\n    matchLabels:\n      app: web\n  template:\n    metadata:\n      labels:\n        app: web\n    spec:\n      containers:\n        - name: web\n          image: ghcr.io/acme/web:1.0.0\n",
    )
    .unwrap();
    let mut kdl = String::from(
        "repo \"https://git.example.com/gitops.git\" branch=\"main\"\nimage-updater version=\"1.2.2\" chart-version=\"1.2.4\"\nsite \"lab\" {\n    cluster \"mgmt\" server=\"in-cluster\"\n}\nregistry \"ghcr\" prefix=\"ghcr.io\"\nsnapshot \"./tags.json\"\nstage \"dev\" {\n    write-back \"pinned\"\n}\nstage \"prod\" {\n    promote-from \"dev\"\n}\n",
    );
    let mut tags = serde_json::Map::new();
    for i in 0..apps.min(drop_from) {
        let _ = write!(
            kdl,
            "app \"web-{i}\" {{\n    manifests \"./manifests/web\"\n    image \"web\" repository=\"ghcr.io/acme/web-{i}\" strategy=\"semver\"\n    deploy \"dev\" cluster=\"mgmt\" namespace=\"web-{i}-dev\"\n    deploy \"prod\" cluster=\"mgmt\" namespace=\"web-{i}\"\n}}\n"
        );
        tags.insert(
            format!("ghcr.io/acme/web-{i}"),
            serde_json::json!([
                {"name": "1.0.0", "created": null, "digest": null},
                {"name": version, "created": null, "digest": null},
            ]),
        );
    }
    std::fs::write(dir.join("estate.kdl"), kdl).unwrap();
    std::fs::write(
        dir.join("tags.json"),
        serde_json::to_string(&serde_json::Value::Object(tags)).unwrap(),
    )
    .unwrap();
}

fn compile(estate: &Path, out: &Path) -> std::process::Child {
    // With a cache, so kills also land while parses and the output index
    // are saved, and the next run must not be misled by them.
    keelson(["compile", "--now", NOW, "--cache-dir"])
        .args([out.with_file_name("cache").as_os_str()])
        .args(["-o".as_ref(), out.as_os_str(), estate.as_os_str()])
        .spawn()
}

fn compile_ok(estate: &Path, out: &Path) {
    let o = compile(estate, out).wait_with_output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// The tree, journal left out.
fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    keelson::check::walk(dir)
        .into_iter()
        .filter_map(|p| {
            let rel = p.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
            (!rel.starts_with(".keelson-journal")).then(|| (rel, std::fs::read(&p).unwrap()))
        })
        .collect()
}

fn copy_tree(from: &Path, to: &Path) {
    let _ = std::fs::remove_dir_all(to);
    for path in keelson::check::walk(from) {
        let target = to.join(path.strip_prefix(from).unwrap());
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::copy(&path, &target).unwrap();
    }
}

fn same(a: &BTreeMap<String, Vec<u8>>, b: &BTreeMap<String, Vec<u8>>) -> bool {
    a == b
}

/// The paths two trees disagree on (a few), for a readable failure.
fn differing(a: &BTreeMap<String, Vec<u8>>, b: &BTreeMap<String, Vec<u8>>) -> String {
    let mut paths: Vec<&String> = a.keys().chain(b.keys()).collect();
    paths.sort();
    paths.dedup();
    let bad: Vec<&String> = paths
        .into_iter()
        .filter(|p| a.get(*p) != b.get(*p))
        .collect();
    format!(
        "{} paths differ, e.g. {:?}",
        bad.len(),
        bad.iter().take(5).collect::<Vec<_>>()
    )
}

/// xorshift64*: enough randomness for kill times, and replayable.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n.max(1)
    }
}

fn random_kills_leave_the_old_tree_or_one_the_next_run_completes() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    // B moves every image and drops a fifth of the apps: the write updates
    // and removes hundreds of files.
    estate(&a, 150, "1.1.0", usize::MAX);
    estate(&b, 150, "1.2.0", 120);
    let (old_out, new_out) = (tmp.path().join("old"), tmp.path().join("new"));
    compile_ok(&a, &old_out);
    copy_tree(&old_out, &new_out);
    let started = Instant::now();
    compile_ok(&b, &new_out);
    let full = started.elapsed();
    let (old, new) = (tree(&old_out), tree(&new_out));
    assert_ne!(old, new);
    // From nothing, the lock records no history: its own expected tree.
    let scratch_out = tmp.path().join("scratch");
    compile_ok(&b, &scratch_out);
    let scratch = tree(&scratch_out);

    let rounds: usize = std::env::var("KEELSON_CRASH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(ROUNDS);
    let seed: u64 = std::env::var("KEELSON_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(SEED);
    // xorshift never leaves zero.
    let mut rng = Rng(seed.max(1));
    let out = tmp.path().join("out");
    let (mut old_kept, mut completed, mut written, mut finished) = (0, 0, 0, 0);
    // A third of the rounds start from nothing: a first compile, whose new
    // directories the journal moves into place whole.
    let empty = tmp.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let scratch_rounds = rounds / 3;
    let update_rounds = rounds - scratch_rounds;
    // Up to 1.2× an uninterrupted compile, so some kills land after it
    // finished too; each kind's rounds take equal slices of that span.
    let span = full.as_micros() as u64 * 6 / 5;
    for round in 0..rounds {
        let from_scratch = round % 3 == 2;
        let (start, old, new) = if from_scratch {
            (&empty, BTreeMap::new(), &scratch)
        } else {
            (&old_out, old.clone(), &new)
        };
        copy_tree(start, &out);
        std::fs::create_dir_all(&out).unwrap();
        let (slice, slices) = if from_scratch {
            (round / 3, scratch_rounds)
        } else {
            (round - round / 3, update_rounds)
        };
        let width = span / slices.max(1) as u64;
        let delay = Duration::from_micros(slice as u64 * width + rng.below(width));
        let mut child = compile(&b, &out);
        std::thread::sleep(delay);
        let _ = child.kill(); // SIGKILL
        let status = child.wait().unwrap();
        let ctx = format!("round {round}, seed {seed}, killed after {delay:?}");
        let committed = out.join(".keelson-journal/journal.json").exists();
        let now = tree(&out);
        if status.success() {
            finished += 1;
            assert!(
                same(&now, new),
                "{ctx}: a compile that finished left another tree: {}",
                differing(&now, new)
            );
        } else if committed {
            completed += 1;
        } else if same(&now, new) {
            // Killed after the write was complete, while keelson saved its
            // caches (the output index) or exited.
            written += 1;
        } else {
            old_kept += 1;
            assert!(
                same(&now, &old),
                "{ctx}: killed before the commit point, yet the tree is not the old one: {}",
                differing(&now, &old)
            );
        }
        compile_ok(&b, &out);
        let after = tree(&out);
        assert!(
            same(&after, new),
            "{ctx}: the next run did not complete the new tree: {}",
            differing(&after, new)
        );
        assert!(
            !out.join(".keelson-journal").exists(),
            "{ctx}: the journal outlived the next run"
        );
    }
    eprintln!(
        "{rounds} kills (seed {seed}): {old_kept} left the old tree, {completed} left a journal the next run completed, {written} came after the write, {finished} after the compile finished"
    );
}
