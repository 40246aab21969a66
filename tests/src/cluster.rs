//! Processes for end-to-end tests: the repository, the binaries of the
//! profile the tests were built with, `deploy/launch.sh` clusters, and
//! process facts read from `/proc`.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

/// The text of a file; panics naming it.
pub fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// Resident memory of a process, KiB (`VmRSS` of `/proc/PID/status`).
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// The command line of a running process.
pub fn cmdline(pid: u32) -> Vec<String> {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .unwrap_or_default()
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect()
}

/// The repository's root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ lies in the repository").to_path_buf()
}

/// `deploy/launch.sh`.
pub fn launch_script() -> PathBuf {
    repo_root().join("deploy/launch.sh")
}

/// Whether Debian's nginx is installed.
pub fn nginx_available() -> bool {
    Command::new("nginx").arg("-v").output().is_ok() || Path::new("/usr/sbin/nginx").exists()
}

/// A free port below the kernel's ephemeral range (32768 and up by default), where
/// no outgoing connection can take it between this check and nginx binding it.
pub fn free_port() -> u16 {
    let seed = std::process::id() as u64
        ^ std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos() as u64;
    (0..10_000u64)
        .map(|i| 21_000 + ((seed + i * 7919) % 11_000) as u16)
        .find(|p| TcpListener::bind(("127.0.0.1", *p)).is_ok())
        .expect("a free port between 21000 and 32000")
}

/// The directory cargo puts this profile's binaries in: `<target>/debug` for
/// `<target>/debug/deps/packaging-HASH`.
pub fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().and_then(Path::parent).expect("the test binary lies in <target>/<profile>/deps").to_path_buf()
}

/// The worker and dashboard binaries of the profile these tests were built
/// with, and their directory (or `QUIVER_BIN_DIR`). They are built by `cargo
/// test --workspace` itself (the packages' own integration tests need them),
/// so this runs that same build with `--no-run`: a no-op after `cargo test
/// --workspace`, and never a second build of every dependency with another
/// feature set, as a plain `cargo build --bins` would be (cargo test unifies
/// the dev-dependencies' features, cargo build does not).
pub fn build_binaries() -> PathBuf {
    if let Some(dir) = std::env::var_os("QUIVER_BIN_DIR") {
        let dir = PathBuf::from(dir);
        for b in ["quiver-worker", "quiver-dashboard"] {
            assert!(dir.join(b).exists(), "QUIVER_BIN_DIR: {} not found", dir.join(b).display());
        }
        return dir;
    }
    let dir = profile_dir();
    let profile = dir.file_name().and_then(|n| n.to_str()).unwrap_or("debug").to_string();
    let mut cmd = Command::new(env!("CARGO"));
    cmd.current_dir(repo_root()).args(["test", "--workspace", "--no-run", "--quiet"]);
    // Not the jobserver of the `cargo test` running us: its tokens stay taken
    // while tests run, and this build would wait for them forever.
    for var in ["CARGO_MAKEFLAGS", "MAKEFLAGS", "MFLAGS"] {
        cmd.env_remove(var);
    }
    match profile.as_str() {
        "debug" => {}
        "release" => {
            cmd.arg("--release");
        }
        other => {
            cmd.args(["--profile", other]);
        }
    }
    let status = cmd.status().expect("cargo runs");
    assert!(status.success(), "cargo test --workspace --no-run ({profile}) failed");
    for b in ["quiver-worker", "quiver-dashboard"] {
        assert!(dir.join(b).exists(), "{} was not built", dir.join(b).display());
    }
    dir
}

/// Whether a process runs (zombies do not).
pub fn pid_alive(pid: u32) -> bool {
    // A zombie is as good as gone: it runs nothing and holds no port.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat.rsplit_once(')').is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// Child processes of `pid`.
pub fn children_of(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(p) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat"))
            && let Some((_, rest)) = stat.rsplit_once(')')
            && rest.split_whitespace().nth(1).and_then(|v| v.parse::<u32>().ok()) == Some(pid)
        {
            out.push(p);
        }
    }
    out
}

/// Sends `kill -SIG` to a pid (negative: a process group).
pub fn signal(pid: i64, sig: &str) {
    let _ = Command::new("kill").args([format!("-{sig}"), "--".to_string(), pid.to_string()]).status();
}

/// Stops the whole process group of launch.sh if the test fails half-way.
pub struct Cluster {
    /// launch.sh.
    pub child: Child,
    /// Set once it was stopped on purpose.
    pub stopped: bool,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if !self.stopped {
            let pgid = -(self.child.id() as i64);
            let _ = Command::new("kill").args(["-TERM", "--", &pgid.to_string()]).status();
            std::thread::sleep(Duration::from_secs(3));
            let _ = Command::new("kill").args(["-KILL", "--", &pgid.to_string()]).status();
            let _ = self.child.wait();
        }
    }
}

/// `KEY=VALUE` lines of a file.
pub fn env_file(path: &Path) -> BTreeMap<String, String> {
    read(path).lines().filter_map(|l| l.split_once('=')).map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// A running `deploy/launch.sh`, ready.
pub struct Launched {
    /// The launch.sh process group.
    pub cluster: Cluster,
    /// Its run folder (logs, pids, cluster.env, secrets).
    pub run_dir: PathBuf,
    /// nginx's URL.
    pub url: String,
    /// nginx's port.
    pub port: u16,
    /// Everything launch.sh wrote to stderr so far.
    pub log: Arc<Mutex<String>>,
}

/// Runs launch.sh with `args` (plus a port, run folder, the test's binaries and
/// `token`) and waits for its status line.
pub fn launch(tmp: &Path, args: &[&str], token: &str) -> Launched {
    let bin_dir = build_binaries();
    let run_dir = tmp.join("run");
    let port = free_port();
    let started = Instant::now();
    let mut child = Command::new("bash");
    child
        .arg(launch_script())
        .args(args)
        .args(["--port", &port.to_string()])
        .arg("--run-dir")
        .arg(&run_dir)
        .arg("--bin-dir")
        .arg(&bin_dir)
        .args(["--token", token, "--timeout", "300"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // Its own process group, so a failed test can stop everything it started.
    std::os::unix::process::CommandExt::process_group(&mut child, 0);
    let mut cluster = Cluster { child: child.spawn().expect("bash runs launch.sh"), stopped: false };

    // stdout carries the status line; stderr the progress (kept for failure messages).
    let (tx, rx) = mpsc::channel::<String>();
    let stdout = cluster.child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let stderr = cluster.child.stderr.take().unwrap();
    let log = Arc::new(Mutex::new(String::new()));
    let log_writer = log.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("launch.sh: {line}");
            log_writer.lock().unwrap().push_str(&(line + "\n"));
        }
    });
    let status_line = loop {
        match rx.recv_timeout(Duration::from_millis(500)) {
            Ok(line) if line.starts_with("quiver: ready at ") => break line,
            Ok(_) => {}
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if let Some(status) = cluster.child.try_wait().unwrap() {
                    panic!("launch.sh exited ({status}) before it was ready:\n{}", log.lock().unwrap());
                }
                assert!(
                    started.elapsed() < Duration::from_secs(360),
                    "launch.sh not ready after 6 minutes:\n{}",
                    log.lock().unwrap()
                );
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                panic!("launch.sh closed stdout before it was ready:\n{}", log.lock().unwrap())
            }
        }
    };
    println!("{status_line} (after {:.1} s)", started.elapsed().as_secs_f64());
    let url = format!("http://127.0.0.1:{port}");
    assert!(status_line.contains(&format!("{url}/login")), "status line names the nginx URL: {status_line}");
    assert!(status_line.contains(token), "status line shows the token: {status_line}");
    Launched { cluster, run_dir, url, port, log }
}

/// `role index pid` lines of the run folder's `pids`.
pub fn started_processes(run_dir: &Path) -> Vec<(String, String, u32)> {
    read(&run_dir.join("pids"))
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f[0].to_string(), f[1].to_string(), f[2].parse().unwrap())
        })
        .collect()
}

/// SIGTERM to launch.sh; it must exit 0 and leave no process it started (nor
/// nginx's workers) running, and free the port.
pub async fn stop_and_check(l: &mut Launched) {
    let pids = started_processes(&l.run_dir);
    let nginx = pids.iter().find(|(r, _, _)| r == "nginx").expect("nginx was started").2;
    let nginx_workers = children_of(nginx);
    assert!(!nginx_workers.is_empty(), "nginx runs worker processes");
    signal(l.cluster.child.id() as i64, "TERM");
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = l.cluster.child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "launch.sh did not stop within 30 s of SIGTERM");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    l.cluster.stopped = true;
    assert!(status.success(), "launch.sh exits cleanly on SIGTERM: {status}");
    let left: Vec<u32> = pids.iter().map(|p| p.2).chain(nginx_workers).filter(|p| pid_alive(*p)).collect();
    assert!(left.is_empty(), "processes still running after launch.sh stopped: {left:?}");
    assert!(TcpListener::bind(("127.0.0.1", l.port)).is_ok(), "port {} is free again", l.port);
}
