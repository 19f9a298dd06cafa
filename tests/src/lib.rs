//! Harness for the end-to-end tests: starts daemons (rsyncd-rs, or stock `rsync --daemon`
//! for comparison) on loopback from configs derived from the reference fixtures, builds
//! trees, runs the real `rsync` client and compares trees.
//!
//! Everything here talks to real programs: the stock `rsync` binary (the client, and the
//! reference daemon) and our `rsyncd-rs` binary as built by cargo.

// Test support: a failed expectation here is a failed test, so panicking is the point.
#![allow(clippy::expect_used, clippy::unwrap_used)]

pub mod agent;
pub mod compare;
pub mod fixture;
pub mod raw;
pub mod tree;

use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub use fixture::Fixture;

/// Which daemon a test runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Server {
    /// Our `rsyncd-rs`.
    Ours,
    /// Stock `rsync --daemon`, the reference.
    Stock,
    /// An older stock rsync as the daemon (see [`old_client`]: the same binaries).
    Old(&'static str),
}

impl Server {
    pub const BOTH: [Server; 2] = [Server::Stock, Server::Ours];
}

/// Whether `E2E_OURS_IS_STOCK=1` asks for stock rsync in the place of rsyncd-rs: every
/// differential test then runs stock against stock, which checks the tests themselves (a
/// case that fails that way compares something stock does not repeat, or expects what
/// stock does not do).
pub fn ours_is_stock() -> bool {
    std::env::var_os("E2E_OURS_IS_STOCK").is_some_and(|v| v == "1")
}

/// The `rsyncd-rs` binary built by cargo next to this test executable (or `RSYNCD_RS_BIN`;
/// the stock one under `E2E_OURS_IS_STOCK=1`, see [`ours_is_stock`]).
pub fn ours_bin() -> PathBuf {
    if ours_is_stock() {
        return stock_rsync();
    }
    if let Some(p) = std::env::var_os("RSYNCD_RS_BIN") {
        return PathBuf::from(p);
    }
    workspace_bin("rsyncd-rs")
}

/// The `syncctl` binary built by cargo next to this test executable.
pub fn syncctl_bin() -> PathBuf {
    workspace_bin("syncctl")
}

/// A binary of the workspace, built by cargo beside this test executable
/// (target/<profile>/deps/e2e-HASH -> target/<profile>/NAME).
pub(crate) fn workspace_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>");
    let bin = profile_dir.join(name);
    assert!(
        bin.exists(),
        "{} is missing: build it first (`cargo build --workspace`, or run the tests with `cargo test --workspace`)",
        bin.display()
    );
    bin
}

/// The stock rsync binary (`RSYNC` overrides the one on PATH).
pub fn stock_rsync() -> PathBuf {
    std::env::var_os("RSYNC").map_or_else(|| PathBuf::from("rsync"), PathBuf::from)
}

/// An older client when one is installed, looked for in order:
/// - `RSYNC_3_1_2` / `RSYNC_3_2_7` (the version with `_` for `.`);
/// - `/usr/local/lib/rsyncd-rs-tests/rsync-VERSION` (where `scripts/test.sh` puts Debian
///   12's 3.2.7 when the stock client is a newer one);
/// - `<repo>/../shared/tools/rsync-VERSION` (3.1.1 and 3.1.2 ship there, beside the
///   repository, in the workspace and in CI's fresh clone);
/// - the stock `rsync` itself when its `--version` names this version (Debian 12 shipped
///   3.2.7 as its stock client).
pub fn old_client(version: &str) -> Option<PathBuf> {
    let var = format!("RSYNC_{}", version.replace('.', "_"));
    if let Some(p) = std::env::var_os(&var).filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    let installed = PathBuf::from(format!("/usr/local/lib/rsyncd-rs-tests/rsync-{version}"));
    let shared = shared_tools_dir().join(format!("rsync-{version}"));
    if let Some(p) = [installed, shared].into_iter().find(|p| p.exists()) {
        return Some(p);
    }
    (stock_version().as_deref() == Some(version)).then(stock_rsync)
}

/// `<repo>/../shared/tools`: the old rsync binaries kept beside the repository.
pub fn shared_tools_dir() -> PathBuf {
    let tests_crate = Path::new(env!("CARGO_MANIFEST_DIR"));
    let beside_repo = tests_crate.parent().and_then(Path::parent);
    beside_repo.unwrap_or(tests_crate).join("shared/tools")
}

/// The stock client's version (`3.5.0` of `rsync  version 3.5.0  protocol version 32`),
/// asked once.
pub fn stock_version() -> Option<String> {
    static VERSION: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    VERSION
        .get_or_init(|| {
            let out = Command::new(stock_rsync()).arg("--version").output().ok()?;
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            let first = text.lines().next()?;
            let mut words = first.split_whitespace();
            words.find(|w| *w == "version")?;
            words.next().map(str::to_string)
        })
        .clone()
}

/// Whether the tests run in CI (`CI=true`), where nothing may be skipped for want of a
/// tool: a missing old client fails the test that needs it.
pub fn in_ci() -> bool {
    std::env::var_os("CI").is_some_and(|v| v == "true")
}

/// The old client `version` for a test that needs it: [`old_client`]'s find. When there
/// is none, outside CI the test is skipped (`None`, with a note on stderr); under
/// `CI=true` it fails, naming where it looked.
pub fn old_client_or_skip(version: &str) -> Option<PathBuf> {
    if let Some(p) = old_client(version) {
        return Some(p);
    }
    let var = format!("RSYNC_{}", version.replace('.', "_"));
    let looked = format!(
        "looked at ${var}, /usr/local/lib/rsyncd-rs-tests/rsync-{version}, {}/rsync-{version} \
         and the stock client ({}, version {})",
        shared_tools_dir().display(),
        stock_rsync().display(),
        stock_version().unwrap_or_else(|| "unknown".into())
    );
    assert!(
        !in_ci(),
        "rsync {version} is required under CI=true but was not found: {looked}"
    );
    eprintln!("rsync {version} is not available, skipped: set {var} to run this case ({looked})");
    None
}

/// Whether a test that needs root can run: true as root; otherwise it is skipped with
/// `why` said, but under `CI=true`, where running without root is a failure (CI runs as
/// root, and a test that checks nothing must not pass there).
pub fn root_or_skip(why: &str) -> bool {
    if is_root() {
        return true;
    }
    assert!(!in_ci(), "this test needs root under CI=true: {why}");
    eprintln!("skipped: {why}");
    false
}

/// A daemon's children (its sessions), from `/proc`.
pub fn children(pid: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// Whether the tests run as root (ownership, chroot and uid switching need it).
pub fn is_root() -> bool {
    nix::unistd::Uid::effective().is_root()
}

/// A free TCP port on loopback (bound and released; the daemon retries on a clash).
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    l.local_addr().expect("local addr").port()
}

/// `BIN --daemon --address=127.0.0.1 --port=PORT --config=FILE --log-file=LOG EXTRA...`,
/// LANG=C, with standard input and output on /dev/null.
///
/// `--log-file` names the file the config's `log file` already names: after the reference
/// config's bare `ignore errors` line, stock rsync sends its sessions' lines to syslog
/// instead (a side effect the issue says not to copy), and the command-line option keeps
/// them in the file where the tests can compare them.
pub fn daemon_command(kind: Server, fixture: &Fixture, port: u16, extra: &[&str]) -> Command {
    let mut cmd = match kind {
        Server::Ours => Command::new(ours_bin()),
        Server::Stock => Command::new(stock_rsync()),
        Server::Old(v) => {
            Command::new(old_client(v).unwrap_or_else(|| panic!("rsync {v} is missing")))
        }
    };
    cmd.arg("--daemon")
        .arg("--address=127.0.0.1")
        .arg(format!("--port={port}"))
        .arg(format!("--config={}", fixture.conf_path().display()))
        .arg(format!("--log-file={}", fixture.log_path().display()))
        .args(extra)
        .env("LANG", "C")
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    cmd
}

/// Whether something listens on 127.0.0.1:`port` (read from `/proc/net/tcp`).
pub fn is_listening(port: u16) -> bool {
    listening_inode(port).is_some()
}

/// The socket inode listening on 127.0.0.1:`port`, from `/proc/net/tcp`.
fn listening_inode(port: u16) -> Option<String> {
    let wanted = format!("0100007F:{port:04X}");
    let table = std::fs::read_to_string("/proc/net/tcp").ok()?;
    table.lines().skip(1).find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.get(1) == Some(&wanted.as_str()) && f.get(3) == Some(&"0A"))
            .then(|| f.get(9).map(|i| i.to_string()))
            .flatten()
    })
}

/// Whether a process still holds the daemon's end of the connection from the client's
/// `client_port` to 127.0.0.1:`server_port`: its entry in `/proc/net/tcp` names a socket
/// inode until the last descriptor for it is closed (a session that ended leaves none,
/// or an orphan in FIN_WAIT/TIME_WAIT with inode 0).
pub fn is_connection_held(server_port: u16, client_port: u16) -> bool {
    let local = format!("0100007F:{server_port:04X}");
    let remote = format!("0100007F:{client_port:04X}");
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    table.lines().skip(1).any(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        f.get(1) == Some(&local.as_str())
            && f.get(2) == Some(&remote.as_str())
            && f.get(9).is_some_and(|inode| *inode != "0")
    })
}

/// Whether process `pid` itself holds the socket listening on 127.0.0.1:`port`: a port
/// picked free can be taken by a daemon of a test running in parallel before ours binds
/// it, and the test must not talk to that one.
pub fn is_listening_by(pid: u32, port: u16) -> bool {
    let Some(inode) = listening_inode(port) else {
        return false;
    };
    let wanted = format!("socket:[{inode}]");
    std::fs::read_dir(format!("/proc/{pid}/fd")).is_ok_and(|fds| {
        fds.filter_map(Result::ok)
            .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|t| t.as_os_str() == wanted.as_str()))
    })
}

/// A running daemon, stopped when dropped.
#[derive(Debug)]
pub struct Daemon {
    pub kind: Server,
    pub port: u16,
    child: Child,
    log_file: PathBuf,
}

impl Daemon {
    /// Starts `kind` in the foreground on 127.0.0.1 with the fixture's config, and waits
    /// until it accepts connections.
    pub fn start(kind: Server, fixture: &Fixture) -> Daemon {
        Daemon::start_with(kind, fixture, &[])
    }

    /// As [`Daemon::start`], with extra daemon arguments.
    pub fn start_with(kind: Server, fixture: &Fixture, extra: &[&str]) -> Daemon {
        for _attempt in 0..5 {
            let port = free_port();
            let mut child = daemon_command(kind, fixture, port, extra)
                .arg("--no-detach")
                .stderr(Stdio::piped())
                .spawn()
                .expect("start the daemon");
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                // Watching the kernel's socket table instead of connecting keeps the
                // daemon's log free of a probe session.
                if is_listening_by(child.id(), port) {
                    return Daemon::listening(kind, port, child, fixture);
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    panic!("{kind:?} daemon did not listen on port {port}");
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = e.read_to_string(&mut err);
            }
            // Stock reports a port taken meanwhile in its log file (`bind() failed:
            // Address already in use`), not on stderr: look at both before retrying.
            let log = std::fs::read_to_string(fixture.log_path()).unwrap_or_default();
            let clash = |t: &str| t.contains("in use") || t.contains("bind");
            if !clash(&err) && !clash(&log) {
                panic!("{kind:?} daemon exited at start: {err}");
            }
        }
        panic!("{kind:?} daemon could not bind a port");
    }

    /// `rsync://127.0.0.1:PORT/MODULE` (with `user@` when given).
    pub fn url(&self, user: Option<&str>, module: &str) -> String {
        let user = user.map(|u| format!("{u}@")).unwrap_or_default();
        format!("rsync://{user}127.0.0.1:{}/{module}", self.port)
    }

    /// The daemon's log file as it is now.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_file).unwrap_or_default()
    }

    /// The log after its first `from` bytes, once sessions stopped writing to it: upstream
    /// and we both log from the session process, which may outlive the client a little.
    pub fn log_since(&self, from: usize) -> String {
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut last = self.log();
        let mut stable_since = Instant::now();
        while Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
            let now = self.log();
            if now.len() != last.len() {
                last = now;
                stable_since = Instant::now();
            } else if stable_since.elapsed() >= Duration::from_millis(300) {
                break;
            }
        }
        last.get(from..).unwrap_or_default().to_string()
    }

    /// The log after its first `from` bytes once none of the daemon's sessions runs any
    /// more. Each session is a process the listener forked (upstream's and ours), which
    /// writes its lines before it exits, so this needs no quiet period as
    /// [`Daemon::log_since`] does and suits tests that run many clients in a row. Where
    /// the kernel does not list a process's children, it falls back to `log_since`.
    pub fn log_after_sessions(&self, from: usize) -> String {
        let pid = self.child.id();
        let children = format!("/proc/{pid}/task/{pid}/children");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let Ok(list) = std::fs::read_to_string(&children) else {
                return self.log_since(from);
            };
            // A session that exited but is not reaped yet has written all it will.
            let running = list.split_whitespace().any(|c| {
                std::fs::read_to_string(format!("/proc/{c}/stat")).is_ok_and(|st| {
                    st.rsplit_once(") ")
                        .is_some_and(|(_, rest)| !rest.starts_with('Z'))
                })
            });
            if !running || Instant::now() > deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        self.log().get(from..).unwrap_or_default().to_string()
    }

    /// The process id of the listening daemon.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    fn listening(kind: Server, port: u16, child: Child, fixture: &Fixture) -> Daemon {
        Daemon {
            kind,
            port,
            child,
            log_file: fixture.log_path(),
        }
    }

    /// Starts `kind` on `port` (a port a stopped daemon had: what a client configured for
    /// it reaches again), waiting until it accepts connections.
    pub fn start_on(kind: Server, fixture: &Fixture, port: u16) -> Daemon {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let mut child = daemon_command(kind, fixture, port, &[])
                .arg("--no-detach")
                .stderr(Stdio::null())
                .spawn()
                .expect("start the daemon");
            let started = Instant::now();
            while started.elapsed() < Duration::from_secs(5) {
                if is_listening_by(child.id(), port) {
                    return Daemon::listening(kind, port, child, fixture);
                }
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = child.kill();
            let _ = child.wait();
            // The old socket may linger a moment in the kernel; try again.
            assert!(
                Instant::now() < deadline,
                "{kind:?} daemon did not listen on port {port} again"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Sends SIGTERM and waits for the daemon to exit; returns its exit code.
    pub fn terminate(mut self) -> Option<i32> {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(st)) = self.child.try_wait() {
                return st.code();
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What a client run produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// A real rsync client invocation.
#[derive(Debug, Clone)]
pub struct Rsync {
    bin: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
    cwd: Option<PathBuf>,
    timeout: Duration,
}

impl Rsync {
    /// The stock client.
    pub fn client() -> Rsync {
        Rsync::with_binary(stock_rsync())
    }

    /// A specific client binary.
    pub fn with_binary(bin: PathBuf) -> Rsync {
        Rsync {
            bin,
            args: Vec::new(),
            env: vec![("LANG".into(), "C".into())],
            cwd: None,
            timeout: Duration::from_secs(60),
        }
    }

    pub fn arg(mut self, a: impl Into<String>) -> Rsync {
        self.args.push(a.into());
        self
    }

    pub fn args<I: IntoIterator<Item = S>, S: Into<String>>(mut self, a: I) -> Rsync {
        self.args.extend(a.into_iter().map(Into::into));
        self
    }

    pub fn env(mut self, k: &str, v: &str) -> Rsync {
        self.env.push((k.into(), v.into()));
        self
    }

    pub fn cwd(mut self, dir: &Path) -> Rsync {
        self.cwd = Some(dir.to_path_buf());
        self
    }

    /// Sets how long [`Rsync::run`] lets the client run before killing it (default 60 s).
    pub fn timeout(mut self, t: Duration) -> Rsync {
        self.timeout = t;
        self
    }

    /// The command, not started: binary, arguments, environment and directory, standard
    /// input on /dev/null (for a test that must start the client and signal it).
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(&self.bin);
        cmd.args(&self.args).stdin(Stdio::null());
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        if let Some(d) = &self.cwd {
            cmd.current_dir(d);
        }
        cmd
    }

    /// Runs it; a client still running after the timeout is killed and the test fails.
    pub fn run(&self) -> Outcome {
        let mut cmd = self.command();
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("running {}: {e}", self.bin.display()));
        let mut out = child.stdout.take().expect("stdout");
        let mut err = child.stderr.take().expect("stderr");
        let out_reader = std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = out.read_to_end(&mut v);
            v
        });
        let err_reader = std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = err.read_to_end(&mut v);
            v
        });
        let deadline = Instant::now() + self.timeout;
        let status = loop {
            if let Some(st) = child.try_wait().expect("wait for the client") {
                break st;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "{} {:?} still ran after {:?}",
                    self.bin.display(),
                    self.args,
                    self.timeout
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let stdout = out_reader.join().unwrap_or_default();
        let stderr = err_reader.join().unwrap_or_default();
        Outcome {
            code: status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        }
    }
}

/// Runs named cases one after the other, each to its end even when an earlier one failed,
/// then fails naming every case that failed with its message: a loop of cases inside one
/// test function (fewer daemons and less time than a test each) that still reports which
/// cases broke.
pub fn run_cases<F: FnOnce()>(cases: impl IntoIterator<Item = (String, F)>) {
    let mut failed = Vec::new();
    let mut count = 0;
    for (name, case) in cases {
        count += 1;
        if let Err(payload) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(case)) {
            let msg = payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_string()))
                .unwrap_or_else(|| "(no message)".to_string());
            failed.push(format!("case `{name}`: {msg}"));
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {count} cases failed:\n{}",
        failed.len(),
        failed.join("\n\n")
    );
}
