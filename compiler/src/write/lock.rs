//! One writer at a time: an advisory lock on the output directory.
//!
//! A compile holds an exclusive lock on `OUT` from before it recovers a
//! journal until its write is done; `compile --dry-run` and `diff --against
//! OUT` hold a shared one while they read, so they see one whole tree. The
//! lock is `flock` on the directory itself: no lock file, so nothing shows in
//! the generated repository or in `git status`, and the kernel releases it
//! when its holder dies, so a killed run never blocks the next.
//!
//! A run that has to wait says so once, naming the holder's pid when the
//! system tells it (Linux's `/proc/locks`); with `no_wait` it fails at once.

use std::fs::{self, File, TryLockError};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::Error;

/// Whether to wait for another keelson, and how to say so.
#[derive(Debug, Clone, Default)]
pub struct Wait {
    /// Fail at once instead of waiting.
    pub no_wait: bool,
    /// Told once, before waiting; the CLI prints it.
    pub notify: Option<Notify>,
}

/// Called before a run waits for another one.
#[derive(Clone)]
pub struct Notify(pub Arc<dyn Fn(&Holder) + Send + Sync>);

impl std::fmt::Debug for Notify {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Notify")
    }
}

/// The run that holds the lock another one wants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    /// The output directory.
    pub out: PathBuf,
    /// Its process id, when the system says.
    pub pid: Option<u32>,
    /// It writes (a compile) rather than reads (a dry run, a diff).
    pub writing: bool,
}

impl Holder {
    /// `another keelson (pid N) writing OUT`.
    pub fn describe(&self) -> String {
        self.phrase("")
    }

    /// `another keelson (pid N){is} writing OUT`.
    fn phrase(&self, is: &str) -> String {
        let pid = self.pid.map(|p| format!(" (pid {p})")).unwrap_or_default();
        let doing = if self.writing { "writing" } else { "reading" };
        format!("another keelson{pid}{is} {doing} {}", self.out.display())
    }
}

/// A held lock on an output directory; released when dropped.
#[derive(Debug)]
pub(crate) struct OutputLock {
    /// The directory, open and locked (`None`: it did not exist, and a
    /// reader needs no lock on nothing).
    dir: Option<File>,
    /// The directories this run created for the lock, `out` first: removed
    /// again, while empty, when it is released.
    created: Vec<PathBuf>,
}

impl OutputLock {
    /// The lock a write takes: exclusive. Creates `out` when it is missing
    /// (and removes it again, if nothing was written, when released).
    pub(crate) fn exclusive(out: &Path, wait: &Wait) -> Result<OutputLock, Error> {
        let mut created = Vec::new();
        let mut told = false;
        loop {
            if !is_dir(out)? {
                let missing: Vec<PathBuf> = out
                    .ancestors()
                    .take_while(|a| !a.as_os_str().is_empty() && fs::symlink_metadata(a).is_err())
                    .map(Path::to_path_buf)
                    .collect();
                fs::create_dir_all(out)
                    .map_err(|e| Error::io("creating the output directory", out, e))?;
                if created.is_empty() {
                    created = missing;
                }
            }
            if let Some(dir) = take(out, true, wait, &mut told)? {
                return Ok(OutputLock {
                    dir: Some(dir),
                    created,
                });
            }
        }
    }

    /// The lock a reader takes: shared, so readers run together and never
    /// see a write half done. Nothing to lock when `out` does not exist.
    pub(crate) fn shared(out: &Path, wait: &Wait) -> Result<OutputLock, Error> {
        let mut told = false;
        loop {
            if !is_dir(out)? {
                return Ok(OutputLock {
                    dir: None,
                    created: Vec::new(),
                });
            }
            if let Some(dir) = take(out, false, wait, &mut told)? {
                return Ok(OutputLock {
                    dir: Some(dir),
                    created: Vec::new(),
                });
            }
        }
    }
}

impl OutputLock {
    /// Whether a reader must read again: it found no output to lock, and
    /// now there is one, so what it read may be part of a compile's write.
    /// (A compile removes an output it created only while it is empty.)
    pub(crate) fn raced(&self, out: &Path) -> bool {
        self.dir.is_none() && fs::symlink_metadata(out).is_ok()
    }
}

impl Drop for OutputLock {
    fn drop(&mut self) {
        // Still holding the lock: a run waiting for it sees the directory
        // gone (or not empty) and starts over.
        for dir in &self.created {
            if fs::remove_dir(dir).is_err() {
                break;
            }
        }
        self.dir.take();
    }
}

/// Whether `out` is a directory (following a symlink); `false` when it does
/// not exist; a clear refusal when it is something else.
fn is_dir(out: &Path) -> Result<bool, Error> {
    match fs::metadata(out) {
        Ok(m) if m.is_dir() => Ok(true),
        Ok(_) => Err(Error::refused(
            format!("the output `{}` is a file, not a directory", out.display()),
            "give `-o`/`--against` the directory of the generated tree (`compile` creates it when it is missing), or move the file away",
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(Error::io("opening the output directory", out, e)),
    }
}

/// Locks the directory at `out`; `None` when what was locked is no longer
/// at `out` (removed or replaced while this run waited): start over.
fn take(out: &Path, exclusive: bool, wait: &Wait, told: &mut bool) -> Result<Option<File>, Error> {
    let dir = match File::open(out) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io("opening the output directory", out, e)),
    };
    let tried = if exclusive {
        dir.try_lock()
    } else {
        dir.try_lock_shared()
    };
    match tried {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            // Unknown holders are taken for a compile, the usual case.
            let holder = Holder {
                out: out.to_path_buf(),
                pid: None,
                writing: true,
            };
            let holder = holder_of(&dir).map_or(holder.clone(), |(pid, writing)| Holder {
                pid: Some(pid),
                writing,
                ..holder
            });
            if wait.no_wait {
                return Err(Error::refused(
                    format!("{}; not waiting (--no-wait)", holder.phrase(" is")),
                    "run again when it is done, or without `--no-wait` to wait for it",
                ));
            }
            if !*told {
                *told = true;
                if let Some(Notify(notify)) = &wait.notify {
                    notify(&holder);
                }
            }
            let locked = if exclusive {
                dir.lock()
            } else {
                dir.lock_shared()
            };
            locked.map_err(|e| Error::io("locking the output directory", out, e))?;
        }
        Err(TryLockError::Error(e)) => {
            return Err(Error::io("locking the output directory", out, e));
        }
    }
    Ok(same_dir(&dir, out).then_some(dir))
}

/// Whether the open directory is still the one at `out`.
fn same_dir(dir: &File, out: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        match (dir.metadata(), fs::metadata(out)) {
            (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
            _ => false,
        }
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        out.is_dir()
    }
}

/// Who holds a lock on the open directory, and whether exclusively, from
/// `/proc/locks` (Linux); `None` elsewhere or when it does not say.
fn holder_of(dir: &File) -> Option<(u32, bool)> {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::fs::MetadataExt;
        let meta = dir.metadata().ok()?;
        let locks = fs::read_to_string("/proc/locks").ok()?;
        holder_in(&locks, meta.dev(), meta.ino())
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = dir;
        None
    }
}

/// The first holder (not a waiter, `->`) of a `FLOCK` on the inode `ino` of
/// device `dev` in the text of `/proc/locks`: `1: FLOCK ADVISORY WRITE 4242
/// fe:00:1234 0 EOF`, the device as hexadecimal major:minor.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn holder_in(locks: &str, dev: u64, ino: u64) -> Option<(u32, bool)> {
    // Linux's dev_t encoding.
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
    let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
    locks.lines().find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.get(1) == Some(&"->") || fields.get(1) != Some(&"FLOCK") {
            return None;
        }
        let writing = match *fields.get(3)? {
            "WRITE" => true,
            "READ" => false,
            _ => return None,
        };
        let pid: u32 = fields.get(4)?.parse().ok().filter(|&p| p > 0)?;
        let mut id = fields.get(5)?.split(':');
        let (ma, mi, i) = (id.next()?, id.next()?, id.next()?);
        let hit = u64::from_str_radix(ma, 16).ok()? == major
            && u64::from_str_radix(mi, 16).ok()? == minor
            && i.parse::<u64>().ok()? == ino;
        hit.then_some((pid, writing))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_holder_in_proc_locks() {
        let locks = "1: FLOCK  ADVISORY  WRITE 16825 fe:00:10010808 0 EOF\n\
                     2: FLOCK  ADVISORY  READ 16518 fe:00:42 0 EOF\n\
                     2: -> FLOCK  ADVISORY  WRITE 99 fe:00:42 0 EOF\n\
                     3: POSIX  ADVISORY  WRITE 7 08:01:42 0 EOF\n";
        let dev = 0xfe00;
        assert_eq!(holder_in(locks, dev, 10010808), Some((16825, true)));
        assert_eq!(holder_in(locks, dev, 42), Some((16518, false)));
        assert_eq!(
            holder_in(locks, 0x0801, 42),
            None,
            "a POSIX lock is not ours"
        );
        assert_eq!(holder_in(locks, dev, 7), None);
    }

    #[test]
    fn a_file_for_an_output_is_refused_clearly() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("out");
        fs::write(&out, "not a tree").unwrap();
        let err = OutputLock::exclusive(&out, &Wait::default()).unwrap_err();
        assert!(
            err.to_string().contains("is a file, not a directory"),
            "{err}"
        );
        assert!(err.help().is_some());
        let err = OutputLock::shared(&out, &Wait::default()).unwrap_err();
        assert!(
            err.to_string().contains("is a file, not a directory"),
            "{err}"
        );
    }

    #[test]
    fn an_exclusive_lock_excludes_and_an_empty_new_output_is_removed() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("new/out");
        let held = OutputLock::exclusive(&out, &Wait::default()).unwrap();
        assert!(out.is_dir(), "created for the lock");
        let no_wait = Wait {
            no_wait: true,
            notify: None,
        };
        let err = OutputLock::shared(&out, &no_wait).unwrap_err();
        assert!(err.to_string().contains("writing"), "{err}");
        #[cfg(target_os = "linux")]
        assert!(
            err.to_string()
                .contains(&format!("(pid {})", std::process::id())),
            "{err}"
        );
        drop(held);
        assert!(
            !tmp.path().join("new").exists(),
            "an empty output this run created is removed, with its new parents"
        );
        // Readers share.
        fs::create_dir_all(&out).unwrap();
        let a = OutputLock::shared(&out, &no_wait).unwrap();
        let b = OutputLock::shared(&out, &no_wait).unwrap();
        assert!(OutputLock::exclusive(&out, &no_wait).is_err());
        drop((a, b));
        drop(OutputLock::exclusive(&out, &no_wait).unwrap());
        assert!(out.is_dir(), "an output that was there stays");
    }
}
