//! keelson's caches save time and never change an answer: the tree is the
//! same bytes with a cold cache, a warm one, a damaged one and none at all,
//! and the output index — which lets a compile `stat` the tree instead of
//! reading it — still catches a hand edit that keeps a file's size and
//! modification time.

use std::path::Path;
use std::time::{Duration, SystemTime};

use keelson::compile::{self, Options};
use keelson::write::{Index, Seen, Stat};
use keelson_bench::{Shape, generate};
use keelson_tests::read_tree as tree;

pub fn trials() -> Vec<keelson_testkit::harness::Trial> {
    keelson_testkit::trials![
        the_tree_is_the_same_with_any_cache,
        the_output_index_is_used_and_still_sees_edits,
    ]
}

fn options(cache: Option<&Path>) -> Options {
    let mut o = Options {
        now: Some("2026-11-23T09:30:00Z".parse().unwrap()),
        ..Options::default()
    };
    o.registry.cache_dir = cache.map(Path::to_path_buf);
    o
}

fn compile_ok(estate: &Path, out: &Path, cache: Option<&Path>) -> keelson::write::Report {
    let c = compile::compile_dir(estate, out, &options(cache)).expect("the compile runs");
    assert!(!c.has_errors(), "{:?}", c.diagnostics);
    c.report.expect("a written compile has a report")
}

/// Every file under `dir` overwritten with garbage of its own length + 1.
fn damage(dir: &Path) -> usize {
    let files = keelson::check::walk(dir);
    for f in &files {
        let len = std::fs::metadata(f).unwrap().len() as usize;
        std::fs::write(f, vec![0xA5; len + 1]).unwrap();
    }
    files.len()
}

/// Waits until every file under `dir` last changed more than the output
/// index's racy window (2 s) ago, so that an index saved from now on vouches
/// for them: files changed within it are not trusted (an edit in the same
/// timestamp tick would be invisible). Setting the files' modification time
/// back does not help: the window counts from the later of the modification
/// and the change time (`ctime`), which cannot be set. Usually shorter than
/// 2 s (the compiles since the write took time), and nothing when the files
/// are old enough.
fn settle(dir: &Path) {
    use std::os::unix::fs::MetadataExt;
    let changed = keelson::check::walk(dir)
        .iter()
        .map(|p| {
            let m = std::fs::metadata(p).unwrap();
            let ns = |s: i64, n: i64| s as i128 * 1_000_000_000 + n as i128;
            ns(m.mtime(), m.mtime_nsec()).max(ns(m.ctime(), m.ctime_nsec()))
        })
        .max()
        .unwrap_or(0);
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i128;
    // 2 s, and a little for the coarse clock file times come from.
    let left = changed + 2_050_000_000 - now;
    if left > 0 {
        std::thread::sleep(Duration::from_nanos(left as u64));
    }
}

fn the_tree_is_the_same_with_any_cache() {
    let tmp = tempfile::tempdir().unwrap();
    let (estate, changed) = (tmp.path().join("estate"), tmp.path().join("changed"));
    generate(&estate, Shape::standard(120)).unwrap();
    generate(&changed, Shape::standard(120)).unwrap();
    // The bench's one-app change: the first app's port.
    let first = changed.join("apps-0000.kdl");
    let text = std::fs::read_to_string(&first).unwrap();
    let edited = text.replacen("port 8000", "port 9000", 1);
    assert_ne!(text, edited, "the first app has port 8000");
    std::fs::write(&first, edited).unwrap();

    let cache = tmp.path().join("cache");
    let (plain, cached) = (tmp.path().join("plain"), tmp.path().join("cached"));
    compile_ok(&estate, &plain, None);
    compile_ok(&estate, &cached, Some(&cache));
    assert_eq!(tree(&plain), tree(&cached), "a cold cache changed the tree");
    assert!(
        cache.join("kdl").is_dir() && cache.join("outputs").is_dir(),
        "parses and the output index are cached"
    );
    let warm = compile_ok(&estate, &cached, Some(&cache));
    assert_eq!(warm.created.len() + warm.updated.len(), 0);
    assert_eq!(tree(&plain), tree(&cached), "a warm cache changed the tree");

    // The change, with the cache intact and then with every entry damaged.
    compile_ok(&changed, &plain, None);
    let one = compile_ok(&changed, &cached, Some(&cache));
    assert_eq!(one.updated.len(), 1, "one app's port is one file");
    assert_eq!(tree(&plain), tree(&cached));
    assert!(damage(&cache) > 0);
    compile_ok(&estate, &plain, None);
    compile_ok(&estate, &cached, Some(&cache));
    assert_eq!(
        tree(&plain),
        tree(&cached),
        "a damaged cache changed the tree"
    );
}

fn the_output_index_is_used_and_still_sees_edits() {
    let tmp = tempfile::tempdir().unwrap();
    let estate = tmp.path().join("estate");
    generate(&estate, Shape::standard(20)).unwrap();
    let (cache, out) = (tmp.path().join("cache"), tmp.path().join("out"));
    compile_ok(&estate, &out, Some(&cache));
    // Files changed within two seconds of the index being saved are not
    // trusted (an edit in the same timestamp tick would be invisible).
    settle(&out);
    compile_ok(&estate, &out, Some(&cache));

    // Proof that the index is believed: one that vouches for a wrong hash
    // makes keelson see an edit that is not there.
    let victim = "README.md";
    let stat = Stat::of(&out.join(victim)).unwrap();
    let mut forged = Index::open(Some(&cache), &out);
    let mut seen = std::collections::HashMap::new();
    seen.insert(
        victim.to_string(),
        Seen {
            stat,
            blake3: blake3::hash(b"something else"),
        },
    );
    forged.save(seen);
    settle(&out);
    let err = compile::compile_dir(&estate, &out, &options(Some(&cache)))
        .expect_err("the forged index says README.md was edited");
    assert!(err.to_string().contains(victim), "{err}");
    // Without the index the file is read, and is what keelson wrote.
    compile_ok(&estate, &out, None);
    std::fs::remove_dir_all(cache.join("outputs")).unwrap();

    // A real edit that keeps the size and the modification time: the change
    // time still moves, so the index does not vouch for the file.
    compile_ok(&estate, &out, Some(&cache));
    settle(&out);
    compile_ok(&estate, &out, Some(&cache));
    let path = out.join(victim);
    let before = std::fs::metadata(&path).unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    let at = bytes.iter().position(|b| b.is_ascii_lowercase()).unwrap();
    bytes[at] = bytes[at].to_ascii_uppercase();
    std::fs::write(&path, &bytes).unwrap();
    let f = std::fs::File::options().write(true).open(&path).unwrap();
    f.set_modified(before.modified().unwrap()).unwrap();
    drop(f);
    let after = std::fs::metadata(&path).unwrap();
    assert_eq!(
        (after.len(), after.modified().unwrap()),
        (before.len(), before.modified().unwrap())
    );
    let err = compile::compile_dir(&estate, &out, &options(Some(&cache)))
        .expect_err("the hand edit is caught");
    assert!(err.to_string().contains(victim), "{err}");
}
