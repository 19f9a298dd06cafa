//! The daemon as a process: detaching with a pid file, SIGTERM, re-reading the config
//! for each connection, and the one-connection modes rsync's own test suite uses
//! (`RSYNC_CONNECT_PROG` socket pair, `--server --daemon .` over a remote shell).

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use e2e::compare::{assert_same_client_view, log_events};
use e2e::raw::RawClient;
use e2e::{Daemon, Fixture, Outcome, Rsync, Server, daemon_command, free_port, is_listening};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// A listed module next to the reference one, so listings have something to show.
fn listed(f: &mut Fixture) {
    let dir = f.make_module_dir("pub");
    f.add_module(
        "pub",
        &[
            ("path", &dir.display().to_string()),
            ("list", "yes"),
            ("comment", "public area"),
        ],
    );
}

fn list(port: u16) -> Outcome {
    Rsync::client()
        .arg(format!("rsync://127.0.0.1:{port}/"))
        .run()
}

fn is_alive(pid: i32) -> bool {
    kill(Pid::from_raw(pid), None).is_ok()
}

fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    f()
}

/// Kills a detached daemon by the pid in its pid file when the test ends, pass or fail.
struct Detached(i32);

impl Drop for Detached {
    fn drop(&mut self) {
        let _ = kill(Pid::from_raw(self.0), Signal::SIGKILL);
    }
}

#[test]
fn without_no_detach_the_launcher_exits_0_and_a_pid_file_appears() {
    let run = |kind: Server| {
        let mut f = Fixture::seed();
        listed(&mut f);
        let port = free_port();
        let launcher = daemon_command(kind, &f, port, &[])
            .stderr(Stdio::piped())
            .output()
            .expect("run the launcher");
        assert_eq!(launcher.status.code(), Some(0), "{kind:?}: {launcher:?}");
        let pid_file = f.dir().join("rsyncd.pid");
        // Both daemons create the file and then write their pid (upstream's
        // create_pid_file() too): wait for the pid, not only for the file.
        let read_pid =
            || -> Option<i32> { std::fs::read_to_string(&pid_file).ok()?.trim().parse().ok() };
        assert!(
            wait_until(Duration::from_secs(10), || read_pid().is_some()
                && is_listening(port)),
            "{kind:?}: no pid in the pid file, or no listener"
        );
        let pid: i32 = read_pid().expect("a pid in the pid file");
        let _guard = Detached(pid);
        assert!(is_alive(pid));
        let out = list(port);
        assert_eq!(out.code, 0, "{kind:?}: {out:#?}");
        assert!(out.stdout.contains("pub"), "{out:#?}");
        let log = std::fs::read_to_string(f.log_path()).unwrap_or_default();
        assert!(
            log.contains(&format!("listening on port {port}")),
            "{kind:?}: {log}"
        );
        let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
        assert!(
            wait_until(Duration::from_secs(10), || !is_alive(pid)),
            "{kind:?} did not stop on SIGTERM"
        );
    };
    std::thread::scope(|s| {
        let stock = s.spawn(|| run(Server::Stock));
        run(Server::Ours);
        stock.join().unwrap();
    });
}

/// SIGTERM: both stop accepting at once. Stock's listener exits and leaves its sessions
/// running on their own; ours waits for them (up to its grace period) and then exits 0.
#[test]
fn sigterm_stops_accepting_and_the_daemon_exits_after_its_sessions() {
    for kind in Server::BOTH {
        let f = Fixture::seed();
        let d = Daemon::start(kind, &f);
        let pid = d.pid() as i32;
        let mut holder = RawClient::connect(d.port, Duration::from_secs(5));
        assert_eq!(
            holder.open_module("backup", "rsync_backup", "1"),
            "@RSYNCD: OK"
        );
        kill(Pid::from_raw(pid), Signal::SIGTERM).unwrap();
        assert!(
            wait_until(Duration::from_secs(5), || !is_listening(d.port)),
            "{kind:?} still listens after SIGTERM"
        );
        if kind == Server::Ours {
            std::thread::sleep(Duration::from_millis(300));
            assert!(is_alive(pid), "ours exited while a session was running");
            assert!(
                d.log()
                    .contains("got a termination signal: no longer accepting connections"),
                "{}",
                d.log()
            );
        }
        // The session ends when its client goes away.
        holder.shutdown_write();
        drop(holder);
        assert_eq!(d.terminate(), Some(0), "{kind:?}");
    }
}

#[test]
fn a_config_change_applies_to_the_next_connection() {
    let run = |kind: Server| {
        let mut f = Fixture::seed();
        let d = Daemon::start(kind, &f);
        assert_eq!(list(d.port).stdout, "");
        listed(&mut f);
        let after = list(d.port);
        assert_eq!(after.code, 0, "{kind:?}: {after:#?}");
        assert_eq!(after.stdout, "pub            \tpublic area\n", "{kind:?}");
    };
    std::thread::scope(|s| {
        let stock = s.spawn(|| run(Server::Stock));
        run(Server::Ours);
        stock.join().unwrap();
    });
}

fn server_bin(kind: Server) -> String {
    match kind {
        Server::Ours => e2e::ours_bin().display().to_string(),
        Server::Stock => e2e::stock_rsync().display().to_string(),
        Server::Old(v) => e2e::old_client(v).unwrap().display().to_string(),
    }
}

/// `RSYNC_CONNECT_PROG="BIN --config=FILE --daemon"`: the client runs the daemon on a
/// socket pair, and it serves that one connection as the TCP daemon would.
fn via_connect_prog(kind: Server, f: &Fixture, args: &[&str]) -> (Outcome, Vec<String>) {
    let prog = format!(
        "{} --config={} --log-file={} --daemon",
        server_bin(kind),
        f.conf_path().display(),
        f.log_path().display()
    );
    let before = std::fs::read_to_string(f.log_path())
        .unwrap_or_default()
        .len();
    let out = Rsync::client()
        .env("RSYNC_CONNECT_PROG", &prog)
        .args(args.iter().copied())
        .run();
    let log = std::fs::read_to_string(f.log_path()).unwrap_or_default();
    (out, log_events(log.get(before..).unwrap_or_default()))
}

#[test]
fn rsync_connect_prog_lists_and_authenticates_like_the_tcp_daemon() {
    let mut f = Fixture::seed();
    listed(&mut f);
    let tcp = {
        let d = Daemon::start(Server::Ours, &f);
        list(d.port)
    };
    let wrong = f.password_file_with("wrong.pw", "2");
    let wrong_arg = format!("--password-file={}", wrong.display());
    let mut seen = Vec::new();
    for kind in Server::BOTH {
        let (listing, listing_log) = via_connect_prog(kind, &f, &["rsync://localhost/"]);
        assert_eq!(listing, tcp, "{kind:?}");
        let (auth, auth_log) = via_connect_prog(
            kind,
            &f,
            &[
                &wrong_arg,
                "rsync://rsync_backup@localhost/backup/",
                "/nonexistent-dest/",
            ],
        );
        assert_eq!(auth.code, 5, "{kind:?}: {auth:#?}");
        seen.push((listing_log, auth, auth_log));
    }
    assert_eq!(seen[0], seen[1]);
}

/// `rsync -e RSH --rsync-path="BIN --config=FILE" localhost::` runs `BIN --server
/// --daemon .` through the remote shell; the listing must be the TCP daemon's.
#[test]
fn server_daemon_over_a_remote_shell_lists_like_the_tcp_daemon() {
    let mut f = Fixture::seed();
    listed(&mut f);
    // A remote shell that runs the command line here, re-parsed by a shell as ssh does.
    let rsh = f.dir().join("rsh");
    std::fs::write(&rsh, "#!/bin/sh\nshift\nexec sh -c \"$*\"\n").unwrap();
    std::fs::set_permissions(&rsh, std::fs::Permissions::from_mode(0o755)).unwrap();
    let tcp = {
        let d = Daemon::start(Server::Stock, &f);
        list(d.port)
    };
    let run = |kind: Server, path: &Path| {
        Rsync::client()
            .arg(format!("--rsh={}", rsh.display()))
            .arg(format!(
                "--rsync-path={} --config={}",
                server_bin(kind),
                path.display()
            ))
            .arg("localhost::")
            .run()
    };
    let sides = [Server::Stock, Server::Ours].map(|k| run(k, &f.conf_path()));
    assert_eq!(sides[0], tcp);
    assert_eq!(sides[1], tcp);
}

/// An unknown module through `RSYNC_CONNECT_PROG`: the same refusal and log lines as stock.
#[test]
fn rsync_connect_prog_refuses_an_unknown_module_like_stock() {
    let f = Fixture::seed();
    let sides = Server::BOTH.map(|kind| {
        let (outcome, events) = via_connect_prog(kind, &f, &["rsync://localhost/nosuch/"]);
        e2e::compare::Side {
            kind,
            outcome,
            events,
            fixture: Fixture::seed(),
        }
    });
    assert_same_client_view(&sides);
    assert_eq!(sides[0].events, sides[1].events);
    assert_eq!(sides[0].outcome.code, 5);
}

/// The reference config as deployed (only addresses and paths changed) starts both
/// daemons; ours warns once, at startup, that the bare `ignore errors` line has no
/// effect, naming file and line (the wording, not stock's, which repeats its
/// warning in every session and then logs to syslog).
#[test]
fn the_reference_config_starts_and_the_bare_ignore_errors_line_is_reported() {
    let f = Fixture::seed();
    let line = f
        .conf()
        .lines()
        .position(|l| l.trim() == "ignore errors")
        .expect("the seed's bare line")
        + 1;
    for kind in Server::BOTH {
        let port = free_port();
        let child = daemon_command(kind, &f, port, &["--no-detach"])
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let up = wait_until(Duration::from_secs(10), || {
            e2e::is_listening_by(child.id(), port)
        });
        let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
        let out = child.wait_with_output().unwrap();
        assert!(up, "{kind:?} did not start: {out:?}");
        if kind == Server::Ours {
            let stderr = String::from_utf8_lossy(&out.stderr);
            let at = format!("{}:{line}: `ignore errors`", f.conf_path().display());
            assert!(
                stderr.contains(&at) && stderr.contains("no effect"),
                "{stderr}"
            );
        }
    }
}

/// `--version` and `-VV` answer as stock's do: the capability list in stock's words and
/// the JSON keys stock 3.5.0 prints, with our values (ACLs and xattrs on, iconv off).
#[test]
fn version_reports_capabilities_as_stock_does() {
    let run = |arg: &str| {
        let out = std::process::Command::new(e2e::ours_bin())
            .arg(arg)
            .output()
            .unwrap();
        assert!(out.status.success(), "{arg}");
        String::from_utf8(out.stdout).unwrap()
    };
    let text = run("--version");
    assert!(text.contains("protocol version 32"), "{text}");
    assert!(text.contains("\nCapabilities:\n"), "{text}");
    assert!(
        text.contains(" xattrs,") && text.contains("no iconv"),
        "{text}"
    );
    let vv: serde_json::Value = serde_json::from_str(&run("-VV")).unwrap();
    assert_eq!(vv["capabilities"]["xattrs"], true, "{vv:#}");
    assert_eq!(vv["capabilities"]["ACLs"], true, "{vv:#}");
    assert_eq!(vv["capabilities"]["iconv"], false, "{vv:#}");
    assert_eq!(vv["checksum_list"][0], "xxh128", "{vv:#}");
}
