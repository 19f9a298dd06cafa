//! sersync-agent's recovery and operations, on the reference confxml.xml: an outage, a
//! SIGKILL, a server restart under load, the fail log, a failing remote, the command
//! line and its refusals, signals, status and -d.

use std::path::Path;
use std::time::Duration;

use e2e::agent::{Agent, eventually, reference_confxml};
use e2e::tree::write_file;
use e2e::{Daemon, Server};

use crate::agent::{WAIT, converged, exists, fixture};
use crate::push::{T0, src_dir};

/// The server stops; 200 changes and a directory rename happen meanwhile; the server
/// comes back on its port: the agent, never restarted, converges.
#[test]
fn an_outage_converges_without_restarting_the_agent() {
    for kind in [Server::Stock, Server::Ours] {
        let f = fixture();
        let src = src_dir(&f);
        for i in 0..20 {
            write_file(&src, &format!("olddir/f{i}.txt"), b"x\n", 0o644, T0);
        }
        let m = f.module_dir();
        let d = Daemon::start(kind, &f);
        let port = d.port;
        let agent = Agent::start(&f, &reference_confxml(&f, &d, &src, true), &["-r"]);
        converged(&agent, &src, &m, WAIT);
        d.terminate();
        for i in 0..200 {
            std::fs::write(src.join(format!("during{i}.txt")), format!("{i}\n")).unwrap();
        }
        std::fs::rename(src.join("olddir"), src.join("newdir")).unwrap();
        agent.wait_for("a failed attempt", WAIT, |a| a.counter("last_failure") > 0);
        let _d = Daemon::start_on(kind, &f, port);
        converged(&agent, &src, &m, Duration::from_secs(60));
        assert!(!exists(&m.join("olddir")), "{kind:?}");
    }
}

/// The agent is killed (SIGKILL) with work pending, more changes are made while it is
/// down, and it starts again without -r: everything converges.
#[test]
fn a_killed_agent_catches_up_after_restart_without_r() {
    for kind in [Server::Stock, Server::Ours] {
        let f = fixture();
        let src = src_dir(&f);
        write_file(&src, "first.txt", b"1\n", 0o644, T0);
        let m = f.module_dir();
        let d = Daemon::start(kind, &f);
        let port = d.port;
        let conf = reference_confxml(&f, &d, &src, true);
        let agent = Agent::start(&f, &conf, &["-r"]);
        converged(&agent, &src, &m, WAIT);
        // Pending work: the server is away while these are seen.
        d.terminate();
        for i in 0..50 {
            std::fs::write(src.join(format!("pending{i}.txt")), format!("{i}\n")).unwrap();
        }
        agent.wait_for("the changes queued", WAIT, |a| a.counter("pending") >= 50);
        agent.kill();
        // Changes while no agent runs.
        for i in 0..50 {
            std::fs::write(src.join(format!("away{i}.txt")), format!("{i}\n")).unwrap();
        }
        std::fs::remove_file(src.join("first.txt")).unwrap();
        let _d = Daemon::start_on(kind, &f, port);
        let agent = Agent::start(&f, &conf, &[]);
        converged(&agent, &src, &m, Duration::from_secs(60));
    }
}

/// 10,000 files written 1 ms apart while the server restarts: all 10,000 arrive.
#[test]
fn ten_thousand_files_one_ms_apart_across_a_server_restart() {
    for kind in [Server::Stock, Server::Ours] {
        let f = fixture();
        let src = src_dir(&f);
        let m = f.module_dir();
        let d = Daemon::start(kind, &f);
        let port = d.port;
        let agent = Agent::start(&f, &reference_confxml(&f, &d, &src, false), &[]);
        let mut daemon = Some(d);
        for i in 0..10_000 {
            if i % 100 == 0 {
                std::fs::create_dir(src.join(format!("d{:03}", i / 100))).unwrap();
            }
            std::fs::write(
                src.join(format!("d{:03}/f{i:05}.txt", i / 100)),
                format!("{i}\n"),
            )
            .unwrap();
            if i == 3000 {
                daemon.take().map(Daemon::terminate);
            }
            if i == 5000 {
                daemon = Some(Daemon::start_on(kind, &f, port));
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        converged(&agent, &src, &m, Duration::from_secs(90));
    }
}

/// While the server is away, a failed push goes into sersync's failLog as `#errno` and
/// the command that would do it by hand; the agent retries on its own and the change
/// arrives once the server is back.
#[test]
fn failures_go_to_the_fail_log_and_are_retried() {
    let f = fixture();
    let src = src_dir(&f);
    let d = Daemon::start(Server::Ours, &f);
    let port = d.port;
    let conf = reference_confxml(&f, &d, &src, false);
    d.terminate();
    let agent = Agent::start(&f, &conf, &[]);
    std::fs::write(src.join("late.txt"), b"late\n").unwrap();
    let log_path = f.dir().join("rsync_fail_log.sh");
    agent.wait_for("the fail log entry", WAIT, |_| {
        std::fs::read_to_string(&log_path).is_ok_and(|t| t.contains("./late.txt"))
    });
    let text = std::fs::read_to_string(&log_path).unwrap();
    // rsync's exit 10 (socket I/O) as the wait status sersync's system() returned.
    assert!(text.starts_with("#errno 2560\n"), "{text}");
    assert!(
        text.contains(&format!(
            "rsync -artuz -R ./late.txt --port={port} rsync_backup@127.0.0.1::backup --password-file="
        )),
        "{text}"
    );
    let _d = Daemon::start_on(Server::Ours, &f, port);
    let m = f.module_dir();
    agent.wait_for("the retried push", WAIT, |_| exists(&m.join("late.txt")));
}

/// sersync's command line: --help and --version answer, `convert` prints TOML that reads
/// back, `-m` refuses a plugin sersync does not have, and a broken config names its line and stops
/// the agent before it starts.
#[test]
fn the_command_line_and_its_refusals() {
    let bin = e2e::agent::agent_bin();
    let run = |args: &[&str]| {
        std::process::Command::new(&bin)
            .args(args)
            .output()
            .expect("run sersync-agent")
    };
    let out = run(&["--version"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("sersync-agent "));
    let out = run(&["--help"]);
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in ["-d", "-r", "-n", "-o", "convert", "status"] {
        assert!(help.contains(flag), "{flag}: {help}");
    }
    let f = fixture();
    let seed = f.dir().join("seed.xml");
    std::fs::write(&seed, e2e::fixture::seed_file("confxml.xml")).unwrap();
    let out = run(&["convert", seed.to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    let toml = f.dir().join("agent.toml");
    std::fs::write(&toml, &out.stdout).unwrap();
    let back = sersync_agent::config::load(&toml).unwrap();
    assert_eq!(back.watch, Path::new("/backup"));
    let out = run(&["-m", "http", "-o", seed.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no such plugin"),
        "{out:?}"
    );
    let broken = f.dir().join("broken.xml");
    std::fs::write(
        &broken,
        e2e::fixture::seed_file("confxml.xml").replace(
            r#"<remote ip="10.0.0.10" name="backup"/>"#,
            r#"<remote ip="10.0.0.10"/>"#,
        ),
    )
    .unwrap();
    let out = run(&["-o", broken.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("broken.xml:25") && err.contains("<remote>") && err.contains("name"),
        "{err}"
    );
}

/// A password file others can read is refused at start, as rsync refuses it.
#[test]
fn a_password_file_readable_by_others_stops_the_agent() {
    use std::os::unix::fs::PermissionsExt;
    let f = fixture();
    let src = src_dir(&f);
    let d = Daemon::start(Server::Ours, &f);
    let conf = reference_confxml(&f, &d, &src, false);
    std::fs::set_permissions(f.password_file(), std::fs::Permissions::from_mode(0o644)).unwrap();
    let path = f.dir().join("confxml.xml");
    std::fs::write(&path, conf).unwrap();
    let out = std::process::Command::new(e2e::agent::agent_bin())
        .args(["-o", path.to_str().unwrap(), "--state-dir"])
        .arg(f.dir().join("state"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("other"), "{err}");
}

/// SIGTERM lets the queues drain: a burst written just before it is on the server when
/// the agent has exited (with status 0).
#[test]
fn sigterm_drains_the_queue_before_exit() {
    let f = fixture();
    let src = src_dir(&f);
    let d = Daemon::start(Server::Ours, &f);
    let agent = Agent::start(&f, &reference_confxml(&f, &d, &src, false), &[]);
    for i in 0..300 {
        std::fs::write(src.join(format!("f{i}.txt")), format!("{i}\n")).unwrap();
    }
    // Seen (queued or already pushed) before the signal.
    agent.wait_for("the burst seen", WAIT, |a| {
        let st = a.status().unwrap_or_default();
        st["remotes"][0]["pending"].as_u64().unwrap_or(0)
            + st["remotes"][0]["sessions"].as_u64().unwrap_or(0)
            > 0
    });
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(agent.stop().map(|s| s.success()), Some(true));
    let m = f.module_dir();
    let missing: Vec<usize> = (0..300)
        .filter(|i| !exists(&m.join(format!("f{i}.txt"))))
        .collect();
    assert!(missing.is_empty(), "not drained: {missing:?}");
}

/// SIGHUP reloads the configuration: pointed at another daemon, the agent pushes there.
#[test]
fn sighup_reloads_the_configuration() {
    let f = fixture();
    let g = fixture();
    let src = src_dir(&f);
    let (d1, d2) = (
        Daemon::start(Server::Ours, &f),
        Daemon::start(Server::Ours, &g),
    );
    let agent = Agent::start(&f, &reference_confxml(&f, &d1, &src, false), &[]);
    std::fs::write(src.join("one.txt"), b"1\n").unwrap();
    agent.wait_for("one.txt on the first", WAIT, |_| {
        exists(&f.module_dir().join("one.txt"))
    });
    // The second daemon takes the same password; only its port differs.
    std::fs::write(
        f.dir().join("confxml.xml"),
        reference_confxml(&f, &d2, &src, false),
    )
    .unwrap();
    agent.signal(nix::sys::signal::Signal::SIGHUP);
    agent.wait_for("the reload", WAIT, |a| {
        a.log().contains("configuration reloaded")
    });
    std::fs::write(src.join("two.txt"), b"2\n").unwrap();
    agent.wait_for("two.txt on the second", WAIT, |_| {
        exists(&g.module_dir().join("two.txt"))
    });
    assert!(!exists(&f.module_dir().join("two.txt")));
}

/// `sersync-agent status` reads the running agent's queues.
#[test]
fn status_shows_each_remote() {
    let f = fixture();
    let src = src_dir(&f);
    let d = Daemon::start(Server::Ours, &f);
    let agent = Agent::start(&f, &reference_confxml(&f, &d, &src, false), &["-r"]);
    agent.wait_for("a session", WAIT, |a| a.counter("sessions") > 0);
    let out = std::process::Command::new(e2e::agent::agent_bin())
        .args(["status", "--state-dir"])
        .arg(&agent.state_dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("127.0.0.1::backup")
            && text.contains("pending 0")
            && text.contains("last success"),
        "{text}"
    );
    let out = std::process::Command::new(e2e::agent::agent_bin())
        .args(["status", "--json", "--state-dir"])
        .arg(&agent.state_dir)
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["remotes"][0]["remote"], "127.0.0.1::backup");
    assert!(v["watches"].as_u64().is_some_and(|n| n >= 1), "{v}");
    assert_eq!(v["overflows"], 0, "{v}");
    // The -r mirror is one change carried out.
    assert!(
        v["remotes"][0]["changes_pushed"]
            .as_u64()
            .is_some_and(|n| n >= 1),
        "{v}"
    );
    assert_eq!(v["remotes"][0]["refusals"], 0, "{v}");
}

/// Two remotes, one of which refuses every session (an unknown module): the other gets
/// every change as fast as alone, and the refusal is logged as an error, not given up.
#[test]
fn a_failing_remote_holds_back_only_itself() {
    let f = fixture();
    let src = src_dir(&f);
    let d = Daemon::start(Server::Ours, &f);
    let conf = reference_confxml(&f, &d, &src, false).replace(
        r#"<remote ip="127.0.0.1" name="backup"/>"#,
        r#"<remote ip="127.0.0.1" name="missing"/>
	    <remote ip="127.0.0.1" name="backup"/>"#,
    );
    let agent = Agent::start(&f, &conf, &[]);
    let m = f.module_dir();
    for i in 0..20 {
        std::fs::write(src.join(format!("f{i}.txt")), b"x\n").unwrap();
        agent.wait_for(
            "the change on the working remote",
            Duration::from_secs(5),
            |_| exists(&m.join(format!("f{i}.txt"))),
        );
    }
    agent.wait_for("the refusal logged", WAIT, |a| {
        a.log().contains("ERROR") && a.log().contains("Unknown module 'missing'")
    });
    // Its changes wait in its own queue.
    agent.wait_for("the refused remote's queue", WAIT, |a| {
        a.status().is_some_and(|st| {
            st["remotes"].as_array().is_some_and(|rs| {
                rs.iter().any(|r| {
                    r["remote"] == "127.0.0.1::missing"
                        && r["pending"].as_u64().is_some_and(|n| n >= 20)
                        && r["last_failure_reason"]
                            .as_str()
                            .is_some_and(|w| w.contains("Unknown module"))
                })
            })
        })
    });
}

/// `-d` detaches: the command returns at once, the agent runs on with its pid in the
/// state directory, and pushes.
#[test]
fn dash_d_detaches_and_writes_its_pid() {
    let f = fixture();
    let src = src_dir(&f);
    let d = Daemon::start(Server::Ours, &f);
    let conf = f.dir().join("confxml.xml");
    std::fs::write(&conf, reference_confxml(&f, &d, &src, false)).unwrap();
    let state = f.dir().join("state");
    let out = std::process::Command::new(e2e::agent::agent_bin())
        .args(["-d", "-o"])
        .arg(&conf)
        .arg("--state-dir")
        .arg(&state)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let pid_file = state.join("sersync-agent.pid");
    eventually("the pid file", WAIT, || pid_file.exists());
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let pid = nix::unistd::Pid::from_raw(pid);
    // Whatever happens below, the detached agent goes.
    struct Kill(nix::unistd::Pid);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = nix::sys::signal::kill(self.0, nix::sys::signal::Signal::SIGTERM);
        }
    }
    let _kill = Kill(pid);
    assert!(nix::sys::signal::kill(pid, None).is_ok(), "the agent runs");
    eventually("the first status", WAIT, || {
        state.join("status.json").exists()
    });
    std::fs::write(src.join("bg.txt"), b"bg\n").unwrap();
    eventually("bg.txt on the server", WAIT, || {
        exists(&f.module_dir().join("bg.txt"))
    });
}

/// `[agent] metrics`: Prometheus' text format at `GET /metrics`, read with curl, with the
/// watch count and the remote's counters after a push; anything else is a 404.
#[test]
fn metrics_are_served_to_a_real_http_client() {
    let f = fixture();
    let src = src_dir(&f);
    let d = Daemon::start(Server::Ours, &f);
    // The reference confxml.xml as TOML (the agent's own `convert`), with the endpoint on.
    let xml = f.dir().join("reference.xml");
    std::fs::write(&xml, reference_confxml(&f, &d, &src, false)).unwrap();
    let port = e2e::free_port();
    let toml = sersync_agent::config::to_toml(&sersync_agent::config::load(&xml).unwrap())
        + &format!("metrics = \"127.0.0.1:{port}\"\n");
    let agent = Agent::start_with_file(&f, "agent.toml", &toml, &[]);
    std::fs::write(src.join("m.txt"), b"m\n").unwrap();
    agent.wait_for("the push", WAIT, |_| exists(&f.module_dir().join("m.txt")));
    let url = format!("http://127.0.0.1:{port}/metrics");
    let scrape = || {
        let out = std::process::Command::new("curl")
            .args(["-sS", "-D", "-", &url])
            .output()
            .expect("run curl (scripts/test.sh installs it)");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    agent.wait_for("a change counted", WAIT, |_| {
        scrape().contains("sersync_agent_changes_pushed_total{remote=\"127.0.0.1::backup\"} 1")
    });
    let text = scrape();
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains("text/plain; version=0.0.4"), "{text}");
    assert!(
        text.contains("# TYPE sersync_agent_pending gauge"),
        "{text}"
    );
    assert!(
        text.contains("sersync_agent_watches 1\r\n") || text.contains("sersync_agent_watches 1\n"),
        "{text}"
    );
    assert!(
        text.contains("sersync_agent_refusals_total{remote=\"127.0.0.1::backup\"} 0"),
        "{text}"
    );
    let other = std::process::Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}"])
        .arg(format!("http://127.0.0.1:{port}/"))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&other.stdout), "404");
}
