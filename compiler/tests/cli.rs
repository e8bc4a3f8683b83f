//! The `keelson` binary as users run it: exit codes, streams, files written.

use std::path::PathBuf;

use crate::support::keelson;

pub fn trials() -> Vec<keelson_testkit::harness::Trial> {
    keelson_testkit::trials![
        init_writes_an_estate_that_checks_and_is_formatted,
        check_reports_every_error_and_exits_1,
        check_json_goes_to_stdout,
        io_errors_exit_2_with_the_path,
        fmt_rewrites_and_check_mode_lists_files,
        graph_prints_dot_and_json,
        a_file_that_is_not_utf8_exits_2_naming_it,
        fmt_never_rewrites_a_file_with_syntax_errors,
        warnings_pass_unless_denied,
        github_format_writes_workflow_commands,
        a_reader_that_goes_away_ends_the_command_quietly,
        data_that_cannot_be_written_is_exit_2,
    ]
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("keelson-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn init_writes_an_estate_that_checks_and_is_formatted() {
    let dir = temp_dir("init");
    let o = keelson(&["init", "estate"]).cwd(&dir).run();
    assert!(o.status.success(), "{}", o.err());
    let o = keelson(&["check", "estate"]).cwd(&dir).run();
    assert_eq!(o.status.code(), Some(0), "{}", o.err());
    let o = keelson(&["fmt", "--check", "estate"]).cwd(&dir).run();
    assert_eq!(
        o.status.code(),
        Some(0),
        "the starter estate must be formatted: {}",
        o.err()
    );
    // A second init refuses rather than overwrite.
    let o = keelson(&["init", "estate"]).cwd(&dir).run();
    assert_eq!(o.status.code(), Some(2));
    assert!(o.err().contains("already holds an estate"), "{}", o.err());
}

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
    let o = keelson(&["check", ".", "--format", "concise"])
        .cwd(&dir)
        .run();
    assert_eq!(o.status.code(), Some(1));
    let err = o.err();
    assert!(
        err.contains("unknown node `stge`") && err.contains("did you mean `stage`?"),
        "{err}"
    );
    assert!(err.contains("a.kdl:2:1"), "{err}");
    assert!(err.contains("not a valid app name"), "{err}");
    assert!(err.contains("there is no stage `nope`"), "{err}");
    assert!(err.contains("b.kdl:1:"), "{err}");
}

fn check_json_goes_to_stdout() {
    let dir = temp_dir("json");
    std::fs::write(
        dir.join("a.kdl"),
        "repo \"https://x.example/g.git\"\nbogus\n",
    )
    .unwrap();
    let o = keelson(&["check", ".", "--format", "json"]).cwd(&dir).run();
    assert_eq!(o.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON on stdout");
    assert_eq!(v[0]["code"], "keelson::unknown-node");
    assert_eq!(v[0]["location"]["start"]["line"], 2);
}

fn io_errors_exit_2_with_the_path() {
    let dir = temp_dir("io");
    let o = keelson(&["check", "missing"]).cwd(&dir).run();
    assert_eq!(o.status.code(), Some(2));
    assert!(o.err().contains("missing"), "{}", o.err());
    std::fs::create_dir_all(dir.join("empty")).unwrap();
    let o = keelson(&["check", "empty"]).cwd(&dir).run();
    assert_eq!(o.status.code(), Some(2));
    assert!(o.err().contains("keelson init"), "{}", o.err());
}

fn fmt_rewrites_and_check_mode_lists_files() {
    let dir = temp_dir("fmt");
    std::fs::write(dir.join("a.kdl"), "repo   \"https://x.example/g.git\"   branch=\"main\"\n\n\n\nsite \"s\"{\n  cluster \"c\"  server=\"in-cluster\"\n}").unwrap();
    let o = keelson(&["fmt", "--check", "."]).cwd(&dir).run();
    assert_eq!(o.status.code(), Some(1));
    assert!(o.out().contains("a.kdl"));
    let o = keelson(&["fmt", "."]).cwd(&dir).run();
    assert!(o.status.success(), "{}", o.err());
    let text = std::fs::read_to_string(dir.join("a.kdl")).unwrap();
    assert_eq!(
        text,
        "repo \"https://x.example/g.git\" branch=\"main\"\n\nsite \"s\" {\n    cluster \"c\" server=\"in-cluster\"\n}\n"
    );
    let o = keelson(&["fmt", "--check", "."]).cwd(&dir).run();
    assert_eq!(o.status.code(), Some(0));
}

fn graph_prints_dot_and_json() {
    let dir = temp_dir("graph");
    let o = keelson(&["init", "e"]).cwd(&dir).run();
    assert!(o.status.success());
    let o = keelson(&["graph", "e"]).cwd(&dir).run();
    assert!(o.status.success(), "{}", o.err());
    let dot = o.out();
    assert!(
        dot.starts_with("digraph estate {")
            && dot.contains("\"stage:prod\" -> \"stage:dev\" [label=\"promotes-from\"]"),
        "{dot}"
    );
    let o = keelson(&["graph", "e", "--format", "json"]).cwd(&dir).run();
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["order"]["stages"], serde_json::json!(["dev", "prod"]));
}

fn a_file_that_is_not_utf8_exits_2_naming_it() {
    let dir = temp_dir("utf8");
    std::fs::write(dir.join("a.kdl"), b"repo \"\xff\xfe\"\n").unwrap();
    let o = keelson(&["check", "."]).cwd(&dir).run();
    assert_eq!(o.status.code(), Some(2));
    let err = o.err();
    assert!(err.contains("a.kdl") && err.contains("not UTF-8"), "{err}");
}

fn fmt_never_rewrites_a_file_with_syntax_errors() {
    let dir = temp_dir("fmt-syntax");
    let broken = "repo   \"https://x.example/g.git\"\nsite \"s\" {\n";
    std::fs::write(dir.join("a.kdl"), broken).unwrap();
    let o = keelson(&["fmt", "."]).cwd(&dir).run();
    assert_eq!(o.status.code(), Some(1));
    assert!(o.err().contains("not formatted"), "{}", o.err());
    assert_eq!(std::fs::read_to_string(dir.join("a.kdl")).unwrap(), broken);
}

fn warnings_pass_unless_denied() {
    let dir = temp_dir("warnings");
    let o = keelson(&["init", "e"]).cwd(&dir).run();
    assert!(o.status.success());
    // A constraint with newest-build is ignored upstream: a warning.
    let path = dir.join("e/estate.kdl");
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("strategy=\"semver\"", "strategy=\"newest-build\"");
    std::fs::write(&path, text).unwrap();
    let o = keelson(&["check", "e"]).cwd(&dir).run();
    assert_eq!(o.status.code(), Some(0), "{}", o.err());
    assert!(o.err().contains("ignored-setting"), "{}", o.err());
    let o = keelson(&["check", "e", "--deny-warnings"]).cwd(&dir).run();
    assert_eq!(o.status.code(), Some(1), "{}", o.err());
}

fn github_format_writes_workflow_commands() {
    let dir = temp_dir("github");
    std::fs::write(
        dir.join("a.kdl"),
        "repo \"https://x.example/g.git\"\nbogus\n",
    )
    .unwrap();
    let o = keelson(&["check", ".", "--format", "github"])
        .cwd(&dir)
        .run();
    assert_eq!(o.status.code(), Some(1));
    let err = o.err();
    assert!(
        err.lines().any(|l| l.starts_with("::error file=")
            && l.contains("line=2,col=1")
            && l.contains("title=keelson::unknown-node")),
        "{err}"
    );
}

/// `keelson check 2>&1 | head -1`: the reader closes the pipe while keelson
/// still has much to write. keelson must end with its own exit code (1: the
/// estate has errors), not a panic (101), whether the closed stream is
/// stderr (diagnostics) or stdout (`--format json`).
fn a_reader_that_goes_away_ends_the_command_quietly() {
    use std::io::Read;
    use std::process::Stdio;
    let dir = temp_dir("pipe");
    // Thousands of diagnostics: far more than a pipe buffers, so keelson is
    // still writing when the reader goes away.
    let mut text = String::from("repo \"https://x.example/g.git\"\n");
    for i in 0..3000 {
        text.push_str(&format!("bogus{i} \"x\"\n"));
    }
    std::fs::write(dir.join("a.kdl"), text).unwrap();
    for json in [false, true] {
        let mut args = vec!["check", "."];
        if json {
            args.extend(["--format", "json"]);
        }
        let mut cmd = keelson(&args).cwd(&dir).into_command();
        cmd.stdin(Stdio::null());
        let mut child = if json {
            cmd.stdout(Stdio::piped()).stderr(Stdio::null()).spawn()
        } else {
            cmd.stdout(Stdio::null()).stderr(Stdio::piped()).spawn()
        }
        .expect("keelson runs");
        let mut first = [0u8; 16];
        if json {
            let mut out = child.stdout.take().unwrap();
            out.read_exact(&mut first).unwrap();
        } else {
            let mut err = child.stderr.take().unwrap();
            err.read_exact(&mut first).unwrap();
        }
        // The read end is closed here, as `head` closes it.
        let status = child.wait().unwrap();
        assert_eq!(
            status.code(),
            Some(1),
            "json={json}: keelson must exit 1 (estate errors), not panic on the closed pipe"
        );
    }
}

/// stdout on a full disk (`/dev/full`): the data was not delivered, so the
/// command must not claim success.
fn data_that_cannot_be_written_is_exit_2() {
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .expect("/dev/full exists on Linux");
    let estate = crate::support::repo_root().join("examples/quickstart");
    let mut cmd = keelson(["graph".as_ref(), estate.as_os_str()]).into_command();
    let out = cmd
        .stdin(std::process::Stdio::null())
        .stdout(full)
        .output()
        .expect("keelson runs");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot write to stdout"), "{err}");
}
