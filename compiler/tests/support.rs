//! What the tests share: the one way they run the `keelson` binary, and the
//! repository's files.
//!
//! ```ignore
//! let run = keelson(["check", "estate"]).cwd(&dir).env("KEELSON_CACHE_DIR", &cache).run();
//! assert_eq!(run.code(), Some(1), "{}", run.err());
//! ```

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};

/// `keelson ARGS`, to be given a working directory and environment, then
/// [`run`](Keelson::run) (or [`spawn`](Keelson::spawn)ed, to be killed).
///
/// It runs with `NO_COLOR=1`: a test that is about colour removes it. Every
/// other variable is the test process's own, unless the test sets it.
pub fn keelson<I, S>(args: I) -> Keelson
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_keelson"));
    cmd.args(args).env("NO_COLOR", "1");
    Keelson { cmd }
}

/// A `keelson` command line being put together.
pub struct Keelson {
    cmd: Command,
}

impl Keelson {
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.cmd.args(args);
        self
    }

    /// The working directory (the test process's own unless set).
    pub fn cwd(mut self, dir: impl AsRef<Path>) -> Self {
        self.cmd.current_dir(dir);
        self
    }

    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.cmd.env(key, value);
        self
    }

    pub fn env_remove(mut self, key: impl AsRef<OsStr>) -> Self {
        self.cmd.env_remove(key);
        self
    }

    /// The command itself, for a test that redirects its streams.
    pub fn into_command(self) -> Command {
        self.cmd
    }

    /// Runs it to the end, stdin closed.
    pub fn run(mut self) -> Run {
        let out = self
            .cmd
            .stdin(Stdio::null())
            .output()
            .expect("keelson runs");
        Run {
            status: out.status,
            stdout: out.stdout,
            stderr: out.stderr,
        }
    }

    /// Starts it with stdout discarded and stderr piped, to be killed or
    /// waited for.
    pub fn spawn(mut self) -> Child {
        self.cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("keelson runs")
    }
}

/// How a run of `keelson` ended, and what it printed.
pub struct Run {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl Run {
    pub fn ok(&self) -> bool {
        self.status.success()
    }

    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// Standard output, as text.
    pub fn out(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// Standard error, as text.
    pub fn err(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
}

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("compiler/ has a parent")
        .to_path_buf()
}

/// Copies every file under `from` to the same place under `to`.
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for path in keelson::check::walk(from) {
        let target = to.join(path.strip_prefix(from).unwrap());
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::copy(&path, &target).unwrap();
    }
}

/// Every file under `dir` with its bytes, by its path relative to `dir`.
pub fn read_tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    keelson::check::walk(dir)
        .into_iter()
        .map(|p| {
            let rel = p
                .strip_prefix(dir)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/");
            let bytes = std::fs::read(&p).unwrap();
            (rel, bytes)
        })
        .collect()
}
