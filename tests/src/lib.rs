//! Harness for the end-to-end tests: starts daemons (rsyncd-rs, or stock `rsync --daemon`
//! for comparison) on loopback from configs derived from the reference fixtures, builds
//! trees, runs the real `rsync` client and compares trees.
//!
//! Everything here talks to real programs: the stock `rsync` binary (the client, and the
//! reference daemon) and our `rsyncd-rs` binary as built by cargo.

// Test support: a failed expectation here is a failed test, so panicking is the point.
#![allow(clippy::expect_used, clippy::unwrap_used)]

pub mod fixture;
pub mod tree;

use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
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
}

impl Server {
    pub const BOTH: [Server; 2] = [Server::Stock, Server::Ours];
}

/// The `rsyncd-rs` binary built by cargo next to this test executable (or `RSYNCD_RS_BIN`).
pub fn ours_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("RSYNCD_RS_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/e2e-HASH -> target/<profile>/rsyncd-rs
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>");
    let bin = profile_dir.join("rsyncd-rs");
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

/// An older client when one is installed: `RSYNC_3_1_2` / `RSYNC_3_2_7`, or the paths the
/// README's setup uses.
pub fn old_client(version: &str) -> Option<PathBuf> {
    let var = format!("RSYNC_{}", version.replace('.', "_"));
    if let Some(p) = std::env::var_os(&var) {
        return Some(PathBuf::from(p));
    }
    let p = PathBuf::from(format!("/usr/local/lib/rsyncd-rs-tests/rsync-{version}"));
    p.exists().then_some(p)
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
            let mut cmd = match kind {
                Server::Ours => Command::new(ours_bin()),
                Server::Stock => Command::new(stock_rsync()),
            };
            cmd.arg("--daemon")
                .arg("--no-detach")
                .arg("--address=127.0.0.1")
                .arg(format!("--port={port}"))
                .arg(format!("--config={}", fixture.conf_path().display()))
                .args(extra)
                .env("LANG", "C")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped());
            let mut child = cmd.spawn().expect("start the daemon");
            let deadline = Instant::now() + Duration::from_secs(10);
            let addr: SocketAddr = ([127, 0, 0, 1], port).into();
            loop {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                    return Daemon {
                        kind,
                        port,
                        child,
                        log_file: fixture.log_path(),
                    };
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    panic!("{kind:?} daemon did not listen on port {port}");
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = e.read_to_string(&mut err);
            }
            if !err.contains("in use") && !err.contains("bind") {
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

    /// The process id of the listening daemon.
    pub fn pid(&self) -> u32 {
        self.child.id()
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

impl Outcome {
    /// stderr without the parts that legitimately differ between servers: the source
    /// position and version tail of `rsync error:` lines is the client's own, so it stays.
    pub fn stderr_lines(&self) -> Vec<String> {
        self.stderr.lines().map(str::to_string).collect()
    }
}

/// A real rsync client invocation.
#[derive(Debug, Clone)]
pub struct Rsync {
    bin: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
    cwd: Option<PathBuf>,
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

    /// Runs it with a timeout of two minutes.
    pub fn run(&self) -> Outcome {
        let mut cmd = Command::new(&self.bin);
        cmd.args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        if let Some(d) = &self.cwd {
            cmd.current_dir(d);
        }
        let out = cmd
            .output()
            .unwrap_or_else(|e| panic!("running {}: {e}", self.bin.display()));
        Outcome {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}
