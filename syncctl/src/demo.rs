//! `syncctl demo`: the whole suite on one machine, for a newcomer. rsyncd-rs and
//! sersync-agent start on loopback from the reference deployment's files (its
//! rsyncd.conf, confxml.xml and password files, with only addresses, ports and paths made
//! local), `check` and `verify` run against them, and everything is stopped and removed.
//! No root needed, no network but loopback.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The reference deployment (`../shared/fixtures/seed/`, copied into `tests/fixtures/`).
const RSYNCD_CONF: &str = include_str!("../../tests/fixtures/seed/rsyncd.conf");
const CONFXML: &str = include_str!("../../tests/fixtures/seed/confxml.xml");
const SERVER_SECRETS: &str = include_str!("../../tests/fixtures/seed/rsync.password.server");
const CLIENT_PASSWORD: &str = include_str!("../../tests/fixtures/seed/rsync.password.client");

/// Runs the demo, printing as it goes to `out`: 0 when verify passed, 1 otherwise.
pub fn run(out: &mut dyn std::io::Write) -> anyhow::Result<i32> {
    let started = Instant::now();
    let tmp = tempfile::Builder::new().prefix("syncctl-demo-").tempdir()?;
    let dir = tmp.path();
    // The module's user (nobody, when root runs the demo) must reach the module.
    set_mode(dir, 0o755)?;
    let port = free_port()?;
    let files = write_configs(dir, port)?;
    writeln!(
        out,
        "syncctl demo in {}: rsyncd-rs on 127.0.0.1:{port}, module backup = {}, sersync-agent watching {}",
        dir.display(),
        files.module.display(),
        files.watch.display()
    )?;
    let mut daemon = Running::start(
        "rsyncd-rs",
        Command::new(sibling("rsyncd-rs")?)
            .arg("--daemon")
            .arg("--no-detach")
            .arg(format!("--config={}", files.rsyncd_conf.display()))
            .arg(format!("--port={port}")),
        &dir.join("rsyncd.stderr"),
    )?;
    daemon.wait_until("rsyncd-rs to listen", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    })?;
    let state = dir.join("agent-state");
    let mut agent = Running::start(
        "sersync-agent",
        Command::new(sibling("sersync-agent")?)
            .arg("-r")
            .arg("-o")
            .arg(&files.confxml)
            .arg("--state-dir")
            .arg(&state),
        &dir.join("agent.log"),
    )?;
    agent.wait_until("sersync-agent to watch", || {
        state.join("status.json").exists()
    })?;
    writeln!(
        out,
        "both running; syncctl check (the reference files' own warnings are expected):"
    )?;
    let check = crate::check::run(&crate::cli::CheckArgs {
        server_config: Some(files.rsyncd_conf.clone()),
        agent_config: Some(files.confxml.clone()),
        remote: true,
        json: false,
    })
    .map_err(|e| anyhow::anyhow!("check: {e}"))?;
    crate::check::render::write(&check, false, out)?;
    writeln!(out, "syncctl verify:")?;
    let cfg = sersync_agent::config::load(&files.confxml)?;
    let report = crate::verify::verify(
        &cfg,
        &crate::verify::VerifyOptions {
            timeout: Duration::from_secs(15),
            keep: false,
            progress: false,
        },
    )?;
    write!(out, "{}", crate::verify::render(&report, false))?;
    agent.stop();
    daemon.stop();
    let passed = report.passed() && !check.failed();
    if !passed {
        writeln!(
            out,
            "the agent's log:\n{}",
            std::fs::read_to_string(dir.join("agent.log")).unwrap_or_default()
        )?;
    }
    writeln!(
        out,
        "stopped both and removed {} ({:.1} s).\n\n{}",
        dir.display(),
        started.elapsed().as_secs_f64(),
        NEXT
    )?;
    Ok(if passed { 0 } else { 1 })
}

/// What to run next, after the demo.
const NEXT: &str = "\
Next, on real machines:
  backup server:  rsyncd-rs --daemon --config=/etc/rsyncd.conf     (stock rsyncd's command line)
  pushing side:   sersync-agent -r -o /etc/confxml.xml               (sersync's; -d to detach)
  then:           syncctl verify --agent-config /etc/confxml.xml     (the touch-and-compare test)
                  sersync-agent status -o /etc/confxml.xml           (queues, last success and failure)";

/// The generated files.
struct Files {
    rsyncd_conf: PathBuf,
    confxml: PathBuf,
    module: PathBuf,
    watch: PathBuf,
}

/// The reference files with addresses, ports and paths made local.
fn write_configs(dir: &Path, port: u16) -> anyhow::Result<Files> {
    let root = nix::unistd::Uid::effective().is_root();
    let module = dir.join("backup");
    let watch = dir.join("src");
    std::fs::create_dir(&module)?;
    std::fs::create_dir(&watch)?;
    let secrets = dir.join("rsync.password");
    let password = dir.join("rsync.password.client");
    write_private(&secrets, SERVER_SECRETS)?;
    write_private(&password, CLIENT_PASSWORD)?;
    let nobody = root.then(module_user).flatten();
    if let Some((uid, gid)) = nobody {
        nix::unistd::chown(&module, Some(uid), Some(gid))?;
    }
    let mut conf = String::new();
    for line in RSYNCD_CONF.lines() {
        let kv = line.split_once('=').map(|(k, v)| (k.trim(), v.trim()));
        let rewritten = match kv {
            // The reference's `rsync` user is not here: nobody when root, else the
            // demo's own user (no uid/gid lines).
            Some(("uid", _)) => match nobody {
                Some((uid, _)) => format!("uid = {uid}"),
                None => continue,
            },
            Some(("gid", _)) => match nobody {
                Some((_, gid)) => format!("gid = {gid}"),
                None => continue,
            },
            Some(("hosts allow", _)) => "hosts allow = 127.0.0.1/32".to_string(),
            Some(("secrets file", _)) => format!("secrets file = {}", secrets.display()),
            Some(("log file", _)) => format!(
                "log file = {}\npid file = {}\nlock file = {}",
                dir.join("rsyncd.log").display(),
                dir.join("rsyncd.pid").display(),
                dir.join("rsyncd.lock").display()
            ),
            Some(("path", _)) => format!("path = {}", module.display()),
            _ => line.to_string(),
        };
        conf.push_str(&rewritten);
        conf.push('\n');
    }
    let rsyncd_conf = dir.join("rsyncd.conf");
    std::fs::write(&rsyncd_conf, conf)?;
    let xml = CONFXML
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
            &format!(r#"passwordfile="{}""#, password.display()),
        )
        .replace(
            r#"<failLog path="/tmp/rsync_fail_log.sh""#,
            &format!(
                r#"<failLog path="{}""#,
                dir.join("rsync_fail_log.sh").display()
            ),
        );
    let confxml = dir.join("confxml.xml");
    std::fs::write(&confxml, xml)?;
    Ok(Files {
        rsyncd_conf,
        confxml,
        module,
        watch,
    })
}

/// nobody and its group (nogroup on Debian, nobody on RHEL), by number.
fn module_user() -> Option<(nix::unistd::Uid, nix::unistd::Gid)> {
    let user = nix::unistd::User::from_name("nobody").ok().flatten()?;
    Some((user.uid, user.gid))
}

fn write_private(p: &Path, text: &str) -> anyhow::Result<()> {
    std::fs::write(p, text)?;
    set_mode(p, 0o600)
}

fn set_mode(p: &Path, mode: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode))?;
    Ok(())
}

/// A port free on loopback now.
fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// A program installed beside this one (cargo builds the workspace's binaries into one
/// directory; packages install them into one `bin`).
fn sibling(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let p = exe.with_file_name(name);
    if p.exists() {
        return Ok(p);
    }
    anyhow::bail!(
        "{} not found beside {} (build the workspace: cargo build --release)",
        name,
        exe.display()
    )
}

/// A started program, stopped (SIGTERM, then SIGKILL) when dropped.
struct Running {
    name: &'static str,
    child: Option<Child>,
}

impl Running {
    fn start(name: &'static str, cmd: &mut Command, log: &Path) -> anyhow::Result<Running> {
        let err = std::fs::File::create(log)?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(err)
            .spawn()
            .map_err(|e| anyhow::anyhow!("cannot start {name}: {e}"))?;
        Ok(Running {
            name,
            child: Some(child),
        })
    }

    /// Waits (10 s at most) until `ready`, or the program's exit, which is an error.
    fn wait_until(&mut self, what: &str, ready: impl Fn() -> bool) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !ready() {
            if let Some(c) = &mut self.child
                && let Ok(Some(st)) = c.try_wait()
            {
                anyhow::bail!("{} exited ({st}) before {what}", self.name);
            }
            if Instant::now() > deadline {
                anyhow::bail!("timed out waiting for {what}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    fn stop(&mut self) {
        let Some(mut c) = self.child.take() else {
            return;
        };
        if let Ok(pid) = i32::try_from(c.id()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        let deadline = Instant::now() + Duration::from_secs(10);
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

impl Drop for Running {
    fn drop(&mut self) {
        self.stop();
    }
}
