//! The `keelson` binary as users run it: exit codes, streams, files written.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn keelson(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_keelson"))
        .args(args)
        .current_dir(cwd)
        .env("NO_COLOR", "1")
        .output()
        .expect("keelson runs")
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("keelson-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn init_writes_an_estate_that_checks_and_is_formatted() {
    let dir = temp_dir("init");
    let o = keelson(&["init", "estate"], &dir);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = keelson(&["check", "estate"], &dir);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = keelson(&["fmt", "--check", "estate"], &dir);
    assert_eq!(
        o.status.code(),
        Some(0),
        "the starter estate must be formatted: {}",
        stderr(&o)
    );
    // A second init refuses rather than overwrite.
    let o = keelson(&["init", "estate"], &dir);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("already holds an estate"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn check_reports_every_error_and_exits_1() {
    let dir = temp_dir("errors");
    std::fs::write(
        dir.join("a.kdl"),
        "repo \"https://x.example/g.git\"\nstge \"dev\"\nsite \"s\" { cluster \"c\" server=\"in-cluster\" }\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("b.kdl"),
        "app \"A\" { template \"worker\"; deploy \"nope\" cluster=\"c\" namespace=\"x\" }\n",
    )
    .unwrap();
    let o = keelson(&["check", ".", "--format", "concise"], &dir);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.contains("unknown node `stge`") && err.contains("did you mean `stage`?"),
        "{err}"
    );
    assert!(err.contains("a.kdl:2:1"), "{err}");
    assert!(err.contains("not a valid app name"), "{err}");
    assert!(err.contains("there is no stage `nope`"), "{err}");
    assert!(err.contains("b.kdl:1:"), "{err}");
}

#[test]
fn check_json_goes_to_stdout() {
    let dir = temp_dir("json");
    std::fs::write(
        dir.join("a.kdl"),
        "repo \"https://x.example/g.git\"\nbogus\n",
    )
    .unwrap();
    let o = keelson(&["check", ".", "--format", "json"], &dir);
    assert_eq!(o.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON on stdout");
    assert_eq!(v[0]["code"], "keelson::unknown-node");
    assert_eq!(v[0]["location"]["start"]["line"], 2);
}

#[test]
fn io_errors_exit_2_with_the_path() {
    let dir = temp_dir("io");
    let o = keelson(&["check", "missing"], &dir);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("missing"), "{}", stderr(&o));
    std::fs::create_dir_all(dir.join("empty")).unwrap();
    let o = keelson(&["check", "empty"], &dir);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("keelson init"), "{}", stderr(&o));
}

#[test]
fn fmt_rewrites_and_check_mode_lists_files() {
    let dir = temp_dir("fmt");
    std::fs::write(dir.join("a.kdl"), "repo   \"https://x.example/g.git\"   branch=\"main\"\n\n\n\nsite \"s\"{\n  cluster \"c\"  server=\"in-cluster\"\n}").unwrap();
    let o = keelson(&["fmt", "--check", "."], &dir);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stdout).contains("a.kdl"));
    let o = keelson(&["fmt", "."], &dir);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = std::fs::read_to_string(dir.join("a.kdl")).unwrap();
    assert_eq!(
        text,
        "repo \"https://x.example/g.git\" branch=\"main\"\n\nsite \"s\" {\n    cluster \"c\" server=\"in-cluster\"\n}\n"
    );
    let o = keelson(&["fmt", "--check", "."], &dir);
    assert_eq!(o.status.code(), Some(0));
}

#[test]
fn graph_prints_dot_and_json() {
    let dir = temp_dir("graph");
    let o = keelson(&["init", "e"], &dir);
    assert!(o.status.success());
    let o = keelson(&["graph", "e"], &dir);
    assert!(o.status.success(), "{}", stderr(&o));
    let dot = String::from_utf8_lossy(&o.stdout);
    assert!(
        dot.starts_with("digraph estate {")
            && dot.contains("\"stage:prod\" -> \"stage:dev\" [label=\"promotes-from\"]"),
        "{dot}"
    );
    let o = keelson(&["graph", "e", "--format", "json"], &dir);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["order"]["stages"], serde_json::json!(["dev", "prod"]));
}

#[test]
fn a_file_that_is_not_utf8_exits_2_naming_it() {
    let dir = temp_dir("utf8");
    std::fs::write(dir.join("a.kdl"), b"repo \"\xff\xfe\"\n").unwrap();
    let o = keelson(&["check", "."], &dir);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(err.contains("a.kdl") && err.contains("not UTF-8"), "{err}");
}

#[test]
fn fmt_never_rewrites_a_file_with_syntax_errors() {
    let dir = temp_dir("fmt-syntax");
    let broken = "repo   \"https://x.example/g.git\"\nsite \"s\" {\n";
    std::fs::write(dir.join("a.kdl"), broken).unwrap();
    let o = keelson(&["fmt", "."], &dir);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("not formatted"), "{}", stderr(&o));
    assert_eq!(std::fs::read_to_string(dir.join("a.kdl")).unwrap(), broken);
}

#[test]
fn warnings_pass_unless_denied() {
    let dir = temp_dir("warnings");
    let o = keelson(&["init", "e"], &dir);
    assert!(o.status.success());
    // A constraint with newest-build is ignored upstream: a warning.
    let path = dir.join("e/estate.kdl");
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("strategy=\"semver\"", "strategy=\"newest-build\"");
    std::fs::write(&path, text).unwrap();
    let o = keelson(&["check", "e"], &dir);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stderr(&o).contains("ignored-setting"), "{}", stderr(&o));
    let o = keelson(&["check", "e", "--deny-warnings"], &dir);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
}

#[test]
fn github_format_writes_workflow_commands() {
    let dir = temp_dir("github");
    std::fs::write(
        dir.join("a.kdl"),
        "repo \"https://x.example/g.git\"\nbogus\n",
    )
    .unwrap();
    let o = keelson(&["check", ".", "--format", "github"], &dir);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.lines().any(|l| l.starts_with("::error file=")
            && l.contains("line=2,col=1")
            && l.contains("title=keelson::unknown-node")),
        "{err}"
    );
}
