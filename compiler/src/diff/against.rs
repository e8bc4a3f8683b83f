//! The tree a diff compares with: a directory, or a directory in a git
//! revision. A git tree is written out to a private temporary directory, so
//! that the compile observes it (its lock, what Image Updater wrote back) the
//! same way it observes a directory.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::error::Error;
use crate::tree::{JOURNAL_DIR, LOCK_FILE};

/// Where the old tree is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Against {
    /// A directory on disk (a previous compile's output, a checkout).
    Dir(PathBuf),
    /// `REV[:PATH]`: the directory PATH (default: the whole repository) in
    /// the git revision REV of the repository in `repo`.
    Git {
        repo: PathBuf,
        rev: String,
        path: String,
    },
}

impl Against {
    /// Parses `--against-git`'s `REV[:PATH]`.
    pub fn git(repo: PathBuf, spec: &str) -> Against {
        let (rev, path) = match spec.split_once(':') {
            Some((rev, path)) => (rev, path.trim_matches('/')),
            None => (spec, ""),
        };
        Against::Git {
            repo,
            rev: rev.to_string(),
            path: path.to_string(),
        }
    }

    /// How the diff names the old tree.
    pub fn label(&self) -> String {
        match self {
            Against::Dir(p) => p.display().to_string(),
            Against::Git { rev, path, .. } if path.is_empty() => rev.clone(),
            Against::Git { rev, path, .. } => format!("{rev}:{path}"),
        }
    }
}

/// The old tree, readable as a directory.
#[derive(Debug)]
pub struct OldTree {
    pub root: PathBuf,
    pub label: String,
    /// Whether the tree exists at all (a first compile compares with nothing).
    pub exists: bool,
    /// Whether a killed compile left a journal (the next compile completes it).
    pub interrupted: bool,
    _temp: Option<tempfile::TempDir>,
}

impl OldTree {
    pub fn open(against: &Against) -> Result<OldTree, Error> {
        match against {
            Against::Dir(dir) => Ok(OldTree {
                root: dir.clone(),
                label: against.label(),
                exists: dir.is_dir(),
                interrupted: dir.join(JOURNAL_DIR).exists(),
                _temp: None,
            }),
            Against::Git { repo, rev, path } => {
                let temp = tempfile::Builder::new()
                    .prefix("keelson-diff-")
                    .tempdir()
                    .map_err(|e| Error::io("creating a temporary directory", Path::new("."), e))?;
                let root = temp.path().join("tree");
                let exists = checkout(repo, rev, path, &root)?;
                Ok(OldTree {
                    root,
                    label: against.label(),
                    exists,
                    interrupted: false,
                    _temp: Some(temp),
                })
            }
        }
    }

    /// The bytes of a file, or `None` when there is no such file.
    pub fn read(&self, path: &str) -> Result<Option<Vec<u8>>, Error> {
        let full = self.root.join(path);
        match std::fs::read(&full) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            // A directory where the tree has a file: not a file.
            Err(_) if full.is_dir() => Ok(None),
            Err(e) => Err(Error::io("reading the old tree", &full, e)),
        }
    }

    /// Every file in the tree, tree-relative with `/`, sorted; `.git`, the
    /// journal and the lock left out.
    pub fn files(&self) -> Vec<String> {
        let mut out = Vec::new();
        walk(&self.root, "", &mut out);
        out.retain(|p| p != LOCK_FILE);
        out.sort();
        out
    }
}

fn walk(dir: &Path, prefix: &str, out: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if prefix.is_empty() && (name == ".git" || name == JOURNAL_DIR) {
            continue;
        }
        let rel = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}/{name}")
        };
        match entry.file_type() {
            Ok(t) if t.is_dir() => walk(&entry.path(), &rel, out),
            Ok(t) if t.is_file() => out.push(rel),
            _ => {}
        }
    }
}

fn git(repo: &Path) -> Command {
    let mut c = Command::new("git");
    c.arg("-C").arg(repo);
    // The user's pager, colour and replacement settings have no business here.
    c.env("GIT_PAGER", "cat").env("GIT_NO_REPLACE_OBJECTS", "1");
    c
}

fn git_failed(what: &str, stderr: &[u8], help: &str) -> Error {
    let msg = String::from_utf8_lossy(stderr).trim().to_string();
    Error::refused(format!("git could not {what}: {msg}"), help.to_string())
}

/// Writes the blobs under `path` in `rev` into `dest`. Returns false when
/// `rev` has no such directory (the tree is new).
fn checkout(repo: &Path, rev: &str, path: &str, dest: &Path) -> Result<bool, Error> {
    let commit = resolve_commit(repo, rev)?;
    let Some(tree) = directory_in(repo, &commit, rev, path)? else {
        return Ok(false);
    };
    let blobs = list_blobs(repo, &tree)?;
    std::fs::create_dir_all(dest).map_err(|e| Error::io("creating", dest, e))?;
    if !blobs.is_empty() {
        write_blobs(repo, &blobs, dest)?;
    }
    Ok(true)
}

fn spawn_error(e: std::io::Error) -> Error {
    Error::refused(
        format!("cannot run git: {e}"),
        "install git, or compare with a directory: `--against DIR`",
    )
}

/// The commit `rev` names. Refuses when `repo` is no repository, or `rev`
/// no commit in it.
fn resolve_commit(repo: &Path, rev: &str) -> Result<String, Error> {
    let commit = git(repo)
        .args(["rev-parse", "--verify", "--quiet", "--end-of-options"])
        .arg(format!("{rev}^{{commit}}"))
        .output()
        .map_err(spawn_error)?;
    if commit.status.success() {
        return Ok(String::from_utf8_lossy(&commit.stdout).trim().to_string());
    }
    let inside = git(repo)
        .args(["rev-parse", "--git-dir"])
        .output()
        .map_err(spawn_error)?;
    if !inside.status.success() {
        return Err(git_failed(
            &format!("open a repository in `{}`", repo.display()),
            &inside.stderr,
            "run keelson diff inside the git repository, or compare with a directory: `--against DIR`",
        ));
    }
    Err(Error::refused(
        format!("`{rev}` is not a commit in the repository"),
        "name a branch, tag or commit, e.g. `--against-git origin/main:gitops` (fetch it first in CI)",
    ))
}

/// The tree object of `path` in `commit` (`""`: the whole commit), as git
/// names it; `None` when the commit has nothing there. Refuses a file.
fn directory_in(repo: &Path, commit: &str, rev: &str, path: &str) -> Result<Option<String>, Error> {
    let tree = if path.is_empty() {
        format!("{commit}^{{tree}}")
    } else {
        format!("{commit}:{path}")
    };
    let kind = git(repo)
        .args(["cat-file", "-t", &tree])
        .output()
        .map_err(spawn_error)?;
    if !kind.status.success() {
        return Ok(None);
    }
    if String::from_utf8_lossy(&kind.stdout).trim() != "tree" {
        return Err(Error::refused(
            format!("`{path}` in `{rev}` is a file, not a directory"),
            "name the directory of the generated tree after the colon, e.g. `main:gitops`",
        ));
    }
    Ok(Some(tree))
}

/// The blobs under `tree`, as (object, path), in git's order.
fn list_blobs(repo: &Path, tree: &str) -> Result<Vec<(String, String)>, Error> {
    let listed = git(repo)
        .args(["ls-tree", "-r", "-z", "--full-tree", tree])
        .output()
        .map_err(spawn_error)?;
    if !listed.status.success() {
        return Err(git_failed(
            &format!("list `{tree}`"),
            &listed.stderr,
            "check the revision and the path",
        ));
    }
    Ok(parse_ls_tree(&listed.stdout))
}

/// `<mode> <type> <object>\t<path>`, NUL-terminated. Only blobs: a
/// submodule (a commit) is not part of the tree keelson generates, and a
/// symlink or a path that would leave the directory is skipped.
fn parse_ls_tree(stdout: &[u8]) -> Vec<(String, String)> {
    let mut blobs: Vec<(String, String)> = Vec::new();
    for entry in stdout.split(|&b| b == 0).filter(|e| !e.is_empty()) {
        let entry = String::from_utf8_lossy(entry);
        let Some((meta, file)) = entry.split_once('\t') else {
            continue;
        };
        let mut parts = meta.split(' ');
        let (mode, kind, object) = (parts.next(), parts.next(), parts.next());
        if kind != Some("blob") || mode == Some("120000") {
            continue;
        }
        let Some(object) = object else { continue };
        if file.split('/').any(|c| c == ".." || c.is_empty()) {
            continue;
        }
        blobs.push((object.to_string(), file.to_string()));
    }
    blobs
}

/// Writes every blob to its path under `dest`, through one `git cat-file
/// --batch`: the ids go in on a thread, the contents come out in the same
/// order.
fn write_blobs(repo: &Path, blobs: &[(String, String)], dest: &Path) -> Result<(), Error> {
    let mut child = git(repo)
        .args(["cat-file", "--batch"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(spawn_error)?;
    let mut stdin = child.stdin.take().expect("piped stdin");
    let ids: Vec<String> = blobs.iter().map(|(o, _)| o.clone()).collect();
    let feeder = std::thread::spawn(move || {
        for id in ids {
            if writeln!(stdin, "{id}").is_err() {
                break;
            }
        }
    });
    let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
    let mut header = String::new();
    for (object, file) in blobs {
        let bytes = read_blob(&mut stdout, &mut header, object, file)?;
        let target = dest.join(file);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(|e| Error::io("creating", parent, e))?;
        }
        std::fs::write(&target, &bytes).map_err(|e| Error::io("writing", &target, e))?;
    }
    let _ = feeder.join();
    let status = child
        .wait()
        .map_err(|e| Error::io("waiting for git", Path::new("git"), e))?;
    if !status.success() {
        let mut err = Vec::new();
        if let Some(mut s) = child.stderr.take() {
            let _ = s.read_to_end(&mut err);
        }
        return Err(git_failed(
            "read the tree's files",
            &err,
            "check the repository with `git fsck`",
        ));
    }
    Ok(())
}

/// Reads one `<object> blob <size>` header and the contents after it;
/// refuses an answer for another object.
fn read_blob(
    stdout: &mut impl BufRead,
    header: &mut String,
    object: &str,
    file: &str,
) -> Result<Vec<u8>, Error> {
    let broken = |what: String| Error::refused(what, "check the repository with `git fsck`");
    header.clear();
    stdout
        .read_line(header)
        .map_err(|e| Error::io("reading from git", Path::new(file), e))?;
    let size: usize = header
        .trim_end()
        .rsplit(' ')
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| broken(format!("git answered `{}` for `{file}`", header.trim_end())))?;
    if !header.starts_with(object) {
        return Err(broken(format!(
            "git answered `{}` for `{file}`",
            header.trim_end()
        )));
    }
    let mut bytes = vec![0; size + 1];
    stdout
        .read_exact(&mut bytes)
        .map_err(|e| Error::io("reading from git", Path::new(file), e))?;
    bytes.pop(); // the newline after the contents
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rev_and_path() {
        let repo = PathBuf::from(".");
        assert_eq!(
            Against::git(repo.clone(), "origin/main:gitops/"),
            Against::Git {
                repo: repo.clone(),
                rev: "origin/main".into(),
                path: "gitops".into()
            }
        );
        assert_eq!(
            Against::git(repo.clone(), "HEAD~1"),
            Against::Git {
                repo,
                rev: "HEAD~1".into(),
                path: String::new()
            }
        );
    }
}
