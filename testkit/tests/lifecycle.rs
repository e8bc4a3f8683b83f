//! A registry must not outlive the process that started it, even one killed without unwinding.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use keelson_testkit::{Auth, Registry};

/// Dead or a zombie waiting for its reaper.
fn gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z')),
    }
}

#[test]
fn registry_dies_with_its_process() {
    let mut holder = Command::new(std::env::current_exe().unwrap())
        .args(["lifecycle::holder", "--exact", "--ignored", "--nocapture"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    let mut out = BufReader::new(holder.stdout.take().unwrap());
    let (pid, dir) = loop {
        line.clear();
        assert!(out.read_line(&mut line).unwrap() > 0, "holder said nothing");
        if let Some(rest) = line.trim().strip_prefix("holding ") {
            let (pid, dir) = rest.split_once(' ').unwrap();
            break (pid.parse::<u32>().unwrap(), PathBuf::from(dir));
        }
    };
    assert!(!gone(pid));
    assert!(dir.is_dir());

    // SIGKILL: no Drop runs in the holder.
    holder.kill().unwrap();
    holder.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !gone(pid) {
        assert!(
            Instant::now() < deadline,
            "registry {pid} outlived its process"
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    // Its temp dir is left behind until a registry starts and sweeps it
    // away. Other tests in this binary start registries at the same time,
    // so one of them may sweep it first: after our own start it is gone.
    let _reg = Registry::start(Auth::None);
    assert!(!Path::new(&dir).exists(), "{} swept", dir.display());
}

#[test]
#[ignore = "run as a child process by registry_dies_with_its_process"]
fn holder() {
    let reg = Registry::start(Auth::None);
    let dir = reg.storage_dir().parent().unwrap().to_path_buf();
    println!("holding {} {}", reg.pid(), dir.display());
    std::thread::sleep(Duration::from_secs(60));
}
