//! A real registry (CNCF distribution, Debian's `docker-registry`) on 127.0.0.1, one process per
//! [`Registry`], with filesystem storage in a temporary directory.

use std::fs;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock, mpsc};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::image::{IndexKind, TestImage};
use crate::push::{PushAuth, PushStats, Pusher, basic};
use crate::token::{ISSUER, SERVICE, TokenServer};

/// The prefix of registry temp dirs.
const DIR_PREFIX: &str = "keelson-registry-";
/// The file in a registry temp dir holding the pid of the process that made it.
const OWNER: &str = "owner.pid";

/// How long `start` waits for `/v2/` to answer.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// How clients must authenticate to a [`Registry`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Auth {
    /// Anonymous pull and push.
    None,
    /// HTTP Basic against an htpasswd file (`auth.htpasswd`).
    Basic {
        /// The one user.
        user: String,
        /// Its password.
        password: String,
    },
    /// Bearer tokens from a [`TokenServer`] that accepts this user (`auth.token`).
    Token {
        /// The one user.
        user: String,
        /// Its password.
        password: String,
    },
}

impl Auth {
    /// `Auth::Basic` from string slices.
    pub fn basic(user: &str, password: &str) -> Auth {
        Auth::Basic {
            user: user.into(),
            password: password.into(),
        }
    }

    /// `Auth::Token` from string slices.
    pub fn token(user: &str, password: &str) -> Auth {
        Auth::Token {
            user: user.into(),
            password: password.into(),
        }
    }
}

/// A running registry; the process is killed and its temp dir removed on Drop.
pub struct Registry {
    child: Child,
    port: u16,
    auth: Auth,
    token: Option<TokenServer>,
    pusher: Pusher,
    // Last, so it is removed after the process is gone.
    dir: TempDir,
}

impl Registry {
    /// Starts a registry on a free port of 127.0.0.1, with filesystem storage in a temp dir,
    /// and waits until `/v2/` answers.
    ///
    /// Panics if `docker-registry` is not installed, or (showing the registry's log) if it does
    /// not come up within 10 s.
    pub fn start(auth: Auth) -> Registry {
        let binary = find_binary();
        let root = temp_root();
        sweep_stale(&root);
        let dir = tempfile::Builder::new()
            .prefix(DIR_PREFIX)
            .tempdir_in(&root)
            .expect("create registry temp dir");
        // Written whole, by rename, so a sweep in another process never reads it half-done.
        let owner_tmp = dir.path().join("owner.tmp");
        fs::write(&owner_tmp, std::process::id().to_string()).expect("write owner");
        fs::rename(&owner_tmp, dir.path().join(OWNER)).expect("write owner");
        let token = match &auth {
            Auth::Token { user, password } => Some(TokenServer::start(user, password)),
            _ => None,
        };
        let auth_yaml = auth_config(&auth, dir.path(), token.as_ref());
        let log_path = dir.path().join("registry.log");
        // The port is free when we look but may be taken before the registry binds it; a few
        // tries make that race harmless.
        for _ in 0..5 {
            let port = free_port();
            let config = dir.path().join("config.yml");
            fs::write(&config, config_yaml(dir.path(), port, &auth_yaml)).expect("write config");
            let log = fs::File::create(&log_path).expect("create registry log");
            let mut cmd = Command::new(&binary);
            cmd.arg("serve")
                .arg(&config)
                // distribution 2.8 allocates ~0.5 MB per request (it rebuilds its router to
                // make URLs); a lazier GC cuts its CPU per request by 10-40%. An explicit
                // GOGC in the environment wins.
                .env(
                    "GOGC",
                    std::env::var("GOGC").unwrap_or_else(|_| "400".into()),
                )
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("clone log handle"))
                .stderr(log);
            let mut child = spawn_guarded(cmd)
                .unwrap_or_else(|e| panic!("cannot run {}: {e}", binary.display()));
            let url = format!("http://127.0.0.1:{port}");
            match wait_ready(&mut child, &url) {
                Ok(()) => {
                    return Registry {
                        child,
                        port,
                        pusher: Pusher::new(url, push_auth(&auth)),
                        auth,
                        token,
                        dir,
                    };
                }
                Err(why) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    let log = fs::read_to_string(&log_path).unwrap_or_default();
                    if !log.contains("address already in use") {
                        panic!(
                            "docker-registry did not answer on {url} within {START_TIMEOUT:?} ({why}); its log ({}):\n{log}",
                            log_path.display()
                        );
                    }
                }
            }
        }
        panic!("docker-registry lost the race for a free port five times")
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `127.0.0.1:PORT`, as an image reference's registry part.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// How clients must authenticate.
    pub fn auth(&self) -> &Auth {
        &self.auth
    }

    /// The token server, for [`Auth::Token`].
    pub fn token_server(&self) -> Option<&TokenServer> {
        self.token.as_ref()
    }

    /// The registry process's id (to read its memory, or to stop it with SIGSTOP and see a
    /// client time out).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The filesystem driver's root directory (`docker/registry/v2/…` below it), for tests
    /// that inspect or damage what is stored.
    pub fn storage_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The registry's log file (stdout and stderr).
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("registry.log")
    }

    /// The registry's log so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Pushes `image` as `repo:tag`; returns the manifest digest `sha256:<hex>`.
    pub fn push(&self, repo: &str, tag: &str, image: &TestImage) -> String {
        self.pusher.push_image(repo, tag, image)
    }

    /// Pushes `images` by digest and an index over them as `repo:tag`; returns the index digest.
    pub fn push_index(
        &self,
        repo: &str,
        tag: &str,
        images: &[TestImage],
        kind: IndexKind,
    ) -> String {
        self.pusher.push_index(repo, tag, images, kind)
    }

    /// What the push helpers have sent so far: requests, uploads, mounts, manifests, tokens.
    pub fn push_stats(&self) -> PushStats {
        self.pusher.stats()
    }

    /// Pushes `(repo, tag, image)` jobs on `threads` threads; returns the manifest digests in
    /// job order. For seeding many repositories quickly.
    pub fn push_many(&self, jobs: Vec<(String, String, TestImage)>, threads: usize) -> Vec<String> {
        let next = AtomicUsize::new(0);
        let results: Vec<std::sync::OnceLock<String>> = (0..jobs.len())
            .map(|_| std::sync::OnceLock::new())
            .collect();
        std::thread::scope(|s| {
            for _ in 0..threads.max(1) {
                s.spawn(|| {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some((repo, tag, image)) = jobs.get(i) else {
                            break;
                        };
                        let _ = results[i].set(self.push(repo, tag, image));
                    }
                });
            }
        });
        results
            .into_iter()
            .map(|r| r.into_inner().expect("every job pushed"))
            .collect()
    }
}

/// Polls `GET /v2/` until it answers (200, or 401 with auth).
fn wait_ready(child: &mut Child, url: &str) -> Result<(), String> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(1)))
        .build()
        .into();
    let deadline = Instant::now() + START_TIMEOUT;
    let url = format!("{url}/v2/");
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("it exited with {status}"));
        }
        if let Ok(resp) = agent.get(&url).call()
            && matches!(resp.status().as_u16(), 200 | 401)
        {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err("timed out".into())
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn push_auth(auth: &Auth) -> PushAuth {
    match auth {
        Auth::None => PushAuth::None,
        Auth::Basic { user, password } => PushAuth::Basic(basic(user, password)),
        Auth::Token { user, password } => PushAuth::Token {
            basic: basic(user, password),
        },
    }
}

/// `docker-registry` on PATH or in /usr/bin; a loud panic otherwise (never a silent skip).
fn find_binary() -> PathBuf {
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("docker-registry"))
            .find(|p| p.is_file())
    });
    on_path
        .or_else(|| Some(PathBuf::from("/usr/bin/docker-registry")).filter(|p| p.is_file()))
        .unwrap_or_else(|| {
            panic!(
                "docker-registry is not installed: run `apt-get install -y docker-registry` (scripts/test.sh does)"
            )
        })
}

/// Where registry temp dirs go: `KEELSON_TESTKIT_TMPDIR`, else /dev/shm when it is there
/// (deleting a registry's many small files from this machine's ext4 takes ~0.2 ms each, from
/// tmpfs next to nothing), else the system temp dir.
fn temp_root() -> PathBuf {
    if let Some(dir) = std::env::var_os("KEELSON_TESTKIT_TMPDIR") {
        return PathBuf::from(dir);
    }
    let shm = Path::new("/dev/shm");
    let writable = shm.is_dir()
        && tempfile::Builder::new()
            .prefix("keelson-probe-")
            .tempfile_in(shm)
            .is_ok();
    if writable {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    }
}

/// Spawns `cmd` so that it dies with this process, even one killed by a CI timeout: a leaked
/// registry would keep its port and its files in /dev/shm. PR_SET_PDEATHSIG fires when the
/// *thread* that forked exits, so every registry is forked by one thread that lives as long as
/// the process (a registry started by one test and shared through a static outlives that test's
/// thread).
fn spawn_guarded(cmd: Command) -> std::io::Result<Child> {
    type Job = (Command, mpsc::Sender<std::io::Result<Child>>);
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<Job>>> = OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("testkit-spawner".into())
            .spawn(move || {
                for (mut cmd, reply) in rx {
                    let parent = std::process::id();
                    // SAFETY: only async-signal-safe calls (prctl, getppid, _exit) between fork
                    // and exec.
                    unsafe {
                        cmd.pre_exec(move || {
                            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                            // The parent may have died before prctl: then go now.
                            if libc::getppid() as u32 != parent {
                                libc::_exit(1);
                            }
                            Ok(())
                        });
                    }
                    let _ = reply.send(cmd.spawn());
                }
            })
            .expect("spawn the spawner thread");
        Mutex::new(tx)
    });
    let (tx, rx) = mpsc::channel();
    spawner
        .lock()
        .unwrap()
        .send((cmd, tx))
        .expect("spawner thread alive");
    rx.recv().expect("spawner thread answers")
}

/// Removes registry dirs left by processes that no longer exist (killed before their Drop ran),
/// which would otherwise hold memory in /dev/shm until reboot.
fn sweep_stale(root: &Path) {
    let Ok(entries) = fs::read_dir(root) else {
        return;
    };
    for entry in entries.flatten() {
        if !entry.file_name().to_string_lossy().starts_with(DIR_PREFIX) {
            continue;
        }
        let Ok(owner) = fs::read_to_string(entry.path().join(OWNER)) else {
            continue;
        };
        // Unreadable means half-written by a process starting right now: leave it.
        let Ok(pid) = owner.trim().parse::<u32>() else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

/// A port nothing listens on right now.
pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

/// The `auth:` section, writing the htpasswd file or the token certificate it points to.
fn auth_config(auth: &Auth, dir: &Path, token: Option<&TokenServer>) -> String {
    match auth {
        Auth::None => String::new(),
        Auth::Basic { user, password } => {
            // Cost 4, the minimum: distribution checks the hash on every request, and the
            // default cost (~50 ms each) would make an authenticated benchmark crawl.
            let hash = bcrypt::hash_with_result(password, 4)
                .expect("bcrypt")
                .format_for_version(bcrypt::Version::TwoY);
            let path = dir.join("htpasswd");
            fs::write(&path, format!("{user}:{hash}\n")).expect("write htpasswd");
            format!(
                "auth:\n  htpasswd:\n    realm: keelson-testkit\n    path: {}\n",
                yaml_str(&path)
            )
        }
        Auth::Token { .. } => {
            let token = token.expect("token server for Auth::Token");
            let path = dir.join("token-root.pem");
            fs::write(&path, token.cert_pem()).expect("write token certificate");
            format!(
                "auth:\n  token:\n    realm: {}\n    service: {SERVICE}\n    issuer: {ISSUER}\n    rootcertbundle: {}\n",
                yaml_str(Path::new(&token.realm())),
                yaml_str(&path)
            )
        }
    }
}

/// The registry's configuration. Access logs are off and the level is `warn` (override with
/// KEELSON_TESTKIT_REGISTRY_LOG_LEVEL) so that a benchmark's 600k requests do not fill a log.
fn config_yaml(dir: &Path, port: u16, auth: &str) -> String {
    let level =
        std::env::var("KEELSON_TESTKIT_REGISTRY_LOG_LEVEL").unwrap_or_else(|_| "warn".into());
    format!(
        "version: 0.1
log:
  level: {level}
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: {root}
  delete:
    enabled: true
  cache:
    blobdescriptor: inmemory
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:{port}
  secret: keelson-testkit-{port}
  headers:
    X-Content-Type-Options: [nosniff]
{auth}",
        root = yaml_str(&dir.join("data")),
    )
}

/// A double-quoted YAML scalar.
fn yaml_str(p: &Path) -> String {
    serde_json::to_string(&p.to_string_lossy()).expect("string serializes")
}
