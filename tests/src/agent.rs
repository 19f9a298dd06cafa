//! A running `sersync-agent` on the reference deployment's confxml.xml, pointed at a test
//! daemon: the file is the seed's with only addresses, paths and switches rewritten.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::Daemon;
use crate::fixture::{Fixture, seed_file};

/// The seed's confxml.xml pointed at `d`, watching `watch`, with deletes `deletes`.
pub fn reference_confxml(f: &Fixture, d: &Daemon, watch: &Path, deletes: bool) -> String {
    reference_confxml_on(f, d.port, watch, deletes)
}

/// [`reference_confxml`] for a daemon on `port` that need not be running.
pub fn reference_confxml_on(f: &Fixture, port: u16, watch: &Path, deletes: bool) -> String {
    seed_file("confxml.xml")
        .replace(
            r#"<delete start="false"/>"#,
            &format!(r#"<delete start="{deletes}"/>"#),
        )
        .replace(
            r#"<localpath watch="/backup">"#,
            &format!(r#"<localpath watch="{}">"#, watch.display()),
        )
        .replace(r#"ip="10.0.0.10""#, r#"ip="127.0.0.1""#)
        .replace(
            r#"<userDefinedPort start="false" port="874"/>"#,
            &format!(r#"<userDefinedPort start="true" port="{port}"/>"#),
        )
        .replace(
            r#"passwordfile="/etc/rsync.password""#,
            &format!(r#"passwordfile="{}""#, f.password_file().display()),
        )
        .replace(
            r#"<failLog path="/tmp/rsync_fail_log.sh""#,
            &format!(
                r#"<failLog path="{}""#,
                f.dir().join("rsync_fail_log.sh").display()
            ),
        )
}

/// A running agent, stopped (SIGTERM, then SIGKILL) when dropped.
#[derive(Debug)]
pub struct Agent {
    child: Option<Child>,
    pub state_dir: PathBuf,
    pub log: PathBuf,
}

impl Agent {
    /// Starts the agent on `config` (written into the fixture's directory) with `args`
    /// (e.g. `-r`), its state in the fixture's `agent-state`.
    pub fn start(f: &Fixture, config: &str, args: &[&str]) -> Agent {
        Agent::start_with_file(f, "confxml.xml", config, args)
    }

    /// [`Agent::start`] with the configuration in the fixture's file `name` (a TOML file
    /// or a confxml.xml: the agent tells them apart by content).
    pub fn start_with_file(f: &Fixture, name: &str, config: &str, args: &[&str]) -> Agent {
        let conf = f.dir().join(name);
        std::fs::write(&conf, config).expect("write the agent's configuration");
        let state_dir = f.dir().join("agent-state");
        let log = f.dir().join("agent.log");
        let err = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("agent log");
        let mut cmd = Command::new(agent_bin());
        cmd.args(args)
            .arg("-o")
            .arg(&conf)
            .arg("--state-dir")
            .arg(&state_dir)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(err);
        // E2E_AGENT_LOG=debug shows every session of every test's agent.
        if let Some(level) = std::env::var_os("E2E_AGENT_LOG") {
            cmd.env("RUST_LOG", level);
        }
        let child = cmd.spawn().expect("start sersync-agent");
        let a = Agent {
            child: Some(child),
            state_dir,
            log,
        };
        // Up once it has written its first status (its watches are in place by then).
        a.wait_for("the agent's first status", Duration::from_secs(20), |a| {
            a.status().is_some()
        });
        a
    }

    /// The agent's status file, if written.
    pub fn status(&self) -> Option<serde_json::Value> {
        let text = std::fs::read(self.state_dir.join("status.json")).ok()?;
        serde_json::from_slice(&text).ok()
    }

    /// A counter of the first remote in the status file.
    pub fn counter(&self, key: &str) -> u64 {
        self.status()
            .and_then(|s| s["remotes"][0][key].as_u64())
            .unwrap_or(0)
    }

    /// The agent's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until `ready` holds, panicking with the agent's log after `limit`.
    pub fn wait_for(&self, what: &str, limit: Duration, ready: impl Fn(&Agent) -> bool) {
        let deadline = Instant::now() + limit;
        while !ready(self) {
            if Instant::now() > deadline {
                panic!("timed out waiting for {what}; agent log:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends `sig` to the agent.
    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        if let Some(c) = &self.child {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(c.id() as i32), sig);
        }
    }

    /// Stops the agent with SIGTERM and waits for it: its exit status.
    pub fn stop(mut self) -> Option<std::process::ExitStatus> {
        self.signal(nix::sys::signal::Signal::SIGTERM);
        let mut c = self.child.take()?;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(st)) = c.try_wait() {
                return Some(st);
            }
            if Instant::now() > deadline {
                let _ = c.kill();
                return c.wait().ok();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the agent with SIGKILL.
    pub fn kill(mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(c.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The `sersync-agent` binary built beside the tests.
pub fn agent_bin() -> PathBuf {
    crate::workspace_bin("sersync-agent")
}

/// Waits until `ready` holds (checked every 20 ms), or panics saying `what` after `limit`.
pub fn eventually(what: &str, limit: Duration, ready: impl Fn() -> bool) {
    let deadline = Instant::now() + limit;
    while !ready() {
        assert!(Instant::now() <= deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}
