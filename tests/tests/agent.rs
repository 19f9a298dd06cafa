//! sersync-agent on the reference deployment's confxml.xml (addresses and paths rewritten),
//! pushing to stock rsyncd and to rsyncd-rs holding the reference rsyncd.conf: the
//! initial sync, the reference check, nested directories, deletes off and on, renames
//! without resending data, and a burst of 10,000 files.

use std::path::Path;
use std::time::Duration;

use e2e::agent::{Agent, eventually, reference_confxml};
use e2e::tree::{Compare, write_file};
use e2e::{Daemon, Fixture, Server};

use crate::push::{T0, src_dir};

const WAIT: Duration = Duration::from_secs(30);

/// Names, types, sizes, content, modes and file mtimes: what the agent's `-artuz` carries
/// (directory times move while a test writes; ownership is the module user's).
const CONTENT: Compare = Compare {
    mtime: true,
    dir_mtime: false,
    owner: false,
    xattrs: false,
    mode: true,
};

/// A fixture whose module belongs to the module's user, with an empty source tree.
fn fixture() -> Fixture {
    let f = Fixture::seed();
    std::fs::create_dir_all(src_dir(&f)).unwrap();
    f
}

fn exists(p: &Path) -> bool {
    std::fs::symlink_metadata(p).is_ok()
}

/// The reference check: `-r` pushes what was there, then `touch {1..5}.txt; mkdir
/// dir{1..3}; echo 'test sersync' > 1.txt` appears on the server as it is locally.
#[test]
fn the_reference_check_reaches_stock_and_our_daemon() {
    for kind in [Server::Stock, Server::Ours] {
        let f = fixture();
        let src = src_dir(&f);
        write_file(&src, "before/old.txt", b"there before\n", 0o644, T0);
        let d = Daemon::start(kind, &f);
        let agent = Agent::start(&f, &reference_confxml(&f, &d, &src, false), &["-r"]);
        let m = f.module_dir();
        eventually("the initial sync", WAIT, || {
            exists(&m.join("before/old.txt"))
        });
        for i in 1..=5 {
            std::fs::File::create(src.join(format!("{i}.txt"))).unwrap();
        }
        for i in 1..=3 {
            std::fs::create_dir(src.join(format!("dir{i}"))).unwrap();
        }
        std::fs::write(src.join("1.txt"), b"test sersync\n").unwrap();
        eventually("the reference check on the server", WAIT, || {
            (1..=5).all(|i| exists(&m.join(format!("{i}.txt"))))
                && (1..=3).all(|i| m.join(format!("dir{i}")).is_dir())
                && std::fs::read(m.join("1.txt")).is_ok_and(|b| b == b"test sersync\n")
        });
        let log = agent.log();
        assert!(log.contains("pushing changes of"), "{kind:?}: {log}");
        assert_eq!(agent.stop().map(|s| s.success()), Some(true), "{kind:?}");
    }
}

/// Directories made in a tight loop with a file at the bottom: every file arrives (the
/// watch is added before the new directory is scanned).
#[test]
fn nested_new_directories_lose_nothing() {
    for kind in [Server::Stock, Server::Ours] {
        let f = fixture();
        let src = src_dir(&f);
        let d = Daemon::start(kind, &f);
        let _agent = Agent::start(&f, &reference_confxml(&f, &d, &src, false), &[]);
        for i in 0..50 {
            let deep = src.join(format!("n{i}/a/b/c"));
            std::fs::create_dir_all(&deep).unwrap();
            std::fs::write(deep.join("f.txt"), format!("{i}\n")).unwrap();
        }
        let m = f.module_dir();
        eventually("50 nested files", WAIT, || {
            (0..50).all(|i| {
                std::fs::read(m.join(format!("n{i}/a/b/c/f.txt")))
                    .is_ok_and(|b| b == format!("{i}\n").as_bytes())
            })
        });
    }
}

/// `delete start="false"` (the reference): a local deletion stays local. `true`: the
/// deleted file and directory go on the server too, and nothing else does (a file only
/// the server has, put there after the initial sync, stays).
#[test]
fn deletes_off_stay_local_and_on_remove_exactly_what_was_deleted() {
    for kind in [Server::Stock, Server::Ours] {
        for deletes in [false, true] {
            let f = fixture();
            let src = src_dir(&f);
            for p in ["keep.txt", "gone.txt", "tree/a.txt", "tree/sub/b.txt"] {
                write_file(&src, p, b"x\n", 0o644, T0);
            }
            let m = f.module_dir();
            let d = Daemon::start(kind, &f);
            let _agent = Agent::start(&f, &reference_confxml(&f, &d, &src, deletes), &["-r"]);
            eventually("the initial sync", WAIT, || {
                exists(&m.join("tree/sub/b.txt"))
            });
            // Put there after -r (which, deletes on, mirrors the tree as sersync's does).
            write_file(&m, "server-only.txt", b"mine\n", 0o644, T0);
            std::fs::remove_file(src.join("gone.txt")).unwrap();
            std::fs::remove_dir_all(src.join("tree")).unwrap();
            std::fs::write(src.join("marker.txt"), b"after\n").unwrap();
            eventually("the marker written after the deletes", WAIT, || {
                exists(&m.join("marker.txt"))
            });
            if deletes {
                eventually("the deletions", WAIT, || {
                    !exists(&m.join("gone.txt")) && !exists(&m.join("tree"))
                });
            } else {
                // The marker went after the deletions were seen: had they been pushed,
                // they would have been by now.
                std::thread::sleep(Duration::from_millis(300));
                assert!(exists(&m.join("gone.txt")), "{kind:?}");
                assert!(exists(&m.join("tree/sub/b.txt")), "{kind:?}");
            }
            assert!(exists(&m.join("keep.txt")), "{kind:?} deletes={deletes}");
            assert!(
                exists(&m.join("server-only.txt")),
                "{kind:?} deletes={deletes}: a file the agent never had was deleted"
            );
        }
    }
}

/// With deletes on, a directory of 1,000 files renamed arrives under its new name and
/// leaves the old one, and the agent sends a small fraction of the data (the old
/// directory is the new one's basis); a file moved into another directory, and a file
/// renamed in place, likewise.
#[test]
fn renames_do_not_resend_data() {
    for kind in [Server::Stock, Server::Ours] {
        let f = fixture();
        let src = src_dir(&f);
        let mut total = 0u64;
        for i in 0..1000u64 {
            let body = e2e::tree::pseudo_random(4096, i);
            total += body.len() as u64;
            write_file(&src, &format!("old/f{i:04}.bin"), &body, 0o644, T0);
        }
        write_file(
            &src,
            "a/moved.bin",
            &e2e::tree::pseudo_random(1 << 20, 7),
            0o644,
            T0,
        );
        let m = f.module_dir();
        let d = Daemon::start(kind, &f);
        let agent = Agent::start(&f, &reference_confxml(&f, &d, &src, true), &["-r"]);
        agent.wait_for("the initial sync", WAIT, |_| {
            exists(&m.join("old/f0999.bin")) && exists(&m.join("a/moved.bin"))
        });
        // Settled: the status counts every session so far.
        agent.wait_for("an empty queue", WAIT, |a| a.counter("pending") == 0);
        let before = agent.counter("bytes_sent");
        std::fs::rename(src.join("old"), src.join("new")).unwrap();
        std::fs::create_dir(src.join("b")).unwrap();
        std::fs::rename(src.join("a/moved.bin"), src.join("b/moved.bin")).unwrap();
        agent.wait_for("the renames on the server", WAIT, |_| {
            exists(&m.join("new/f0999.bin"))
                && !exists(&m.join("old"))
                && exists(&m.join("b/moved.bin"))
                && !exists(&m.join("a/moved.bin"))
        });
        // A file renamed in place, to another name: the remote's fuzzy basis search
        // (-yy) finds the old one.
        std::fs::rename(src.join("b/moved.bin"), src.join("b/renamed.bin")).unwrap();
        agent.wait_for("the in-place rename on the server", WAIT, |_| {
            exists(&m.join("b/renamed.bin")) && !exists(&m.join("b/moved.bin"))
        });
        // A status written after the last of it (it is written twice a second).
        std::thread::sleep(Duration::from_millis(600));
        agent.wait_for("an empty queue", WAIT, |a| a.counter("pending") == 0);
        let sent = agent.counter("bytes_sent") - before;
        let data = total + 2 * (1 << 20);
        assert!(
            sent < data / 10,
            "{kind:?}: sent {sent} bytes for {data} bytes of renamed data; log:\n{}",
            agent.log()
        );
        let diff = e2e::tree::diff_trees(&src, &m, CONTENT);
        assert!(diff.is_empty(), "{kind:?}: {diff:#?}");
    }
}

/// 10,000 files written as fast as the test can: all arrive, in a handful of sessions.
#[test]
fn a_burst_of_ten_thousand_files_loses_none() {
    for kind in [Server::Stock, Server::Ours] {
        let f = fixture();
        let src = src_dir(&f);
        let d = Daemon::start(kind, &f);
        let agent = Agent::start(&f, &reference_confxml(&f, &d, &src, false), &[]);
        let sessions_before = agent.counter("sessions");
        for dir in 0..100 {
            let dp = src.join(format!("d{dir:03}"));
            std::fs::create_dir(&dp).unwrap();
            for i in 0..100 {
                std::fs::write(dp.join(format!("f{i:03}.txt")), format!("{dir}/{i}\n")).unwrap();
            }
        }
        let m = f.module_dir();
        let count = || {
            (0..100)
                .map(|dir| {
                    std::fs::read_dir(m.join(format!("d{dir:03}")))
                        .map(|r| r.count())
                        .unwrap_or(0)
                })
                .sum::<usize>()
        };
        eventually(
            "10,000 files on the server",
            Duration::from_secs(60),
            || count() == 10_000,
        );
        agent.wait_for("an empty queue", WAIT, |a| a.counter("pending") == 0);
        let sessions = agent.counter("sessions") - sessions_before;
        assert!(
            sessions <= 50,
            "{kind:?}: {sessions} sessions for a 10,000-file burst"
        );
        let diff = e2e::tree::diff_trees(&src, &m, CONTENT);
        assert!(diff.is_empty(), "{kind:?}: {diff:#?}");
    }
}

/// Waits until the module holds what the source holds (names, content, modes, mtimes).
fn converged(agent: &Agent, src: &Path, m: &Path, limit: Duration) {
    agent.wait_for("the module to match the source", limit, |_| {
        e2e::tree::diff_trees(src, m, CONTENT).is_empty()
    });
}

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

/// The crontab's full sync (sersync's `<crontab>` with `<crontabfilter>`): the whole
/// tree in one session, the filter's patterns left out.
#[test]
fn the_crontab_full_sync_leaves_out_its_filter() {
    for kind in [Server::Stock, Server::Ours] {
        let f = fixture();
        let src = src_dir(&f);
        for p in [
            "index.html",
            "a.php",
            "info/x.txt",
            "sub/info/y.txt",
            "sub/b.php",
        ] {
            write_file(&src, p, b"x\n", 0o644, T0);
        }
        let d = Daemon::start(kind, &f);
        let conf = reference_confxml(&f, &d, &src, false);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("confxml.xml");
        std::fs::write(&path, conf).unwrap();
        let cfg = sersync_agent::config::load(&path).unwrap();
        let (_, target) = sersync_agent::agent::targets(&cfg).remove(0);
        let r = sersync_agent::push::full_sync(&target, &["*.php".into(), "info/*".into()]);
        assert!(r.error.is_none() && r.failed.is_empty(), "{kind:?}: {r:?}");
        let m = f.module_dir();
        for (p, there) in [
            ("index.html", true),
            ("a.php", false),
            ("info/x.txt", false),
            ("sub/info/y.txt", false),
            ("sub/b.php", false),
        ] {
            assert_eq!(exists(&m.join(p)), there, "{kind:?}: {p}");
        }
    }
}

/// sersync's command line: --help and --version answer, `convert` prints TOML that reads
/// back, `-m` says plugins come later, and a broken config names its line and stops
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
    let out = run(&["-m", "refreshCDN", "-o", seed.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("later"),
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

/// The watched root moved away and replaced by an empty directory (deletes on): the
/// agent watches the new root and pushes what appears there, and the replica keeps what
/// it had (a rescan pushes, it does not mirror).
#[test]
fn a_replaced_root_never_empties_the_replica() {
    let f = fixture();
    let src = src_dir(&f);
    write_file(&src, "precious.txt", b"keep me\n", 0o644, T0);
    let m = f.module_dir();
    let d = Daemon::start(Server::Ours, &f);
    let agent = Agent::start(&f, &reference_confxml(&f, &d, &src, true), &["-r"]);
    agent.wait_for("the initial sync", WAIT, |_| {
        exists(&m.join("precious.txt"))
    });
    std::fs::rename(&src, f.dir().join("src.old")).unwrap();
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("new.txt"), b"new\n").unwrap();
    agent.wait_for("the new root's file", WAIT, |_| exists(&m.join("new.txt")));
    assert!(exists(&m.join("precious.txt")), "{}", agent.log());
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

/// sersync's filter, on (the fixture's expressions): what it excludes is never pushed,
/// neither by -r's whole-tree push nor as a change; the rest is.
#[test]
fn the_filter_keeps_its_paths_off_the_server() {
    for kind in [Server::Stock, Server::Ours] {
        let f = fixture();
        let src = src_dir(&f);
        for p in [
            "keep.txt",
            "a.gz",
            "sub/b.gz",
            "info/x.txt",
            "static/y.txt",
            "sub/info/z.txt",
        ] {
            write_file(&src, p, b"x\n", 0o644, T0);
        }
        let d = Daemon::start(kind, &f);
        let conf = reference_confxml(&f, &d, &src, false)
            .replace(r#"<filter start="false">"#, r#"<filter start="true">"#);
        let agent = Agent::start(&f, &conf, &["-r"]);
        let m = f.module_dir();
        agent.wait_for("the initial sync", WAIT, |_| {
            exists(&m.join("sub/info/z.txt"))
        });
        std::fs::write(src.join("c.gz"), b"c\n").unwrap();
        std::fs::write(src.join("info/later.txt"), b"l\n").unwrap();
        std::fs::write(src.join("d.txt"), b"d\n").unwrap();
        agent.wait_for("d.txt", WAIT, |_| exists(&m.join("d.txt")));
        std::thread::sleep(Duration::from_millis(200));
        for (p, there) in [
            ("keep.txt", true),
            ("sub/info/z.txt", true),
            ("a.gz", false),
            ("sub/b.gz", false),
            ("info", false),
            ("static", false),
            ("c.gz", false),
        ] {
            assert_eq!(exists(&m.join(p)), there, "{kind:?}: {p}");
        }
    }
}

/// A directory replaced by a symlink to its renamed self (`mv data data.v2 && ln -s
/// data.v2 data`): with deletes on, the server gets the rename and the symlink and keeps
/// every file of the target; with deletes off it keeps the old directory too, and the
/// agent does not retry what it cannot do.
#[test]
fn a_directory_replaced_by_a_symlink_keeps_the_targets_data() {
    for deletes in [true, false] {
        let f = fixture();
        let src = src_dir(&f);
        for i in 0..20 {
            write_file(&src, &format!("data/f{i}.txt"), b"x\n", 0o644, T0);
        }
        let d = Daemon::start(Server::Ours, &f);
        let agent = Agent::start(&f, &reference_confxml(&f, &d, &src, deletes), &["-r"]);
        let m = f.module_dir();
        agent.wait_for("the initial sync", WAIT, |_| {
            exists(&m.join("data/f19.txt"))
        });
        std::fs::rename(src.join("data"), src.join("data.v2")).unwrap();
        std::os::unix::fs::symlink("data.v2", src.join("data")).unwrap();
        agent.wait_for("data.v2 on the server", WAIT, |_| {
            (0..20).all(|i| exists(&m.join(format!("data.v2/f{i}.txt"))))
        });
        if deletes {
            // Under `fake super` (the reference module) a symlink is kept as a file
            // holding its target (munged: `use chroot = no`), its type in an xattr.
            agent.wait_for("the symlink on the server", WAIT, |_| {
                std::fs::read(m.join("data"))
                    .is_ok_and(|b| b == b"/rsyncd-munged/data.v2" || b == b"data.v2")
            });
        } else {
            std::thread::sleep(Duration::from_millis(300));
            assert!(
                m.join("data").is_dir(),
                "deletes off: the old directory stays"
            );
            assert!(exists(&m.join("data/f0.txt")));
        }
        // Settled, and nothing left to retry.
        std::thread::sleep(Duration::from_millis(600));
        agent.wait_for("an empty queue", WAIT, |a| a.counter("pending") == 0);
        assert!((0..20).all(|i| exists(&m.join(format!("data.v2/f{i}.txt")))));
    }
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

/// A file written and closed 1,000 times in a burst is pushed a few times, not 1,000,
/// and the server ends with its last content; `<debug start="true">` logs each session.
#[test]
fn a_file_written_a_thousand_times_is_pushed_a_few_times() {
    let f = fixture();
    let src = src_dir(&f);
    let d = Daemon::start(Server::Ours, &f);
    let conf = reference_confxml(&f, &d, &src, false)
        .replace(r#"<debug start="false"/>"#, r#"<debug start="true"/>"#);
    let agent = Agent::start(&f, &conf, &[]);
    let before = agent.counter("sessions");
    for i in 0..1000 {
        std::fs::write(src.join("hot.txt"), format!("version {i}\n")).unwrap();
    }
    let m = f.module_dir();
    agent.wait_for("the last version", WAIT, |_| {
        std::fs::read(m.join("hot.txt")).is_ok_and(|b| b == b"version 999\n")
    });
    std::thread::sleep(Duration::from_millis(600));
    agent.wait_for("an empty queue", WAIT, |a| a.counter("pending") == 0);
    let sessions = agent.counter("sessions") - before;
    assert!(
        sessions <= 10,
        "{sessions} sessions for 1,000 writes of one file"
    );
    assert!(agent.log().contains("DEBUG"), "debug on: {}", agent.log());
}
