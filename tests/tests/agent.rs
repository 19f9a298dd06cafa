//! sersync-agent on the reference deployment's confxml.xml (addresses and paths rewritten),
//! pushing to stock rsyncd and to rsyncd-rs holding the reference rsyncd.conf: what
//! reaches the replica — the initial sync, the reference check, nested directories,
//! deletes off and on, renames without resending data, a burst of 10,000 files, the
//! filter, crontab's full sync, replaced roots and directories. Recovery and operations
//! are in `agent_ops`.

use std::path::Path;
use std::time::Duration;

use e2e::agent::{Agent, eventually, reference_confxml};
use e2e::tree::{Compare, write_file};
use e2e::{Daemon, Fixture, Server};

use crate::push::{T0, src_dir};

pub(crate) const WAIT: Duration = Duration::from_secs(30);

/// Names, types, sizes, content, modes and file mtimes: what the agent's `-artuz` carries
/// (directory times move while a test writes; ownership is the module user's).
pub(crate) const CONTENT: Compare = Compare {
    mtime: true,
    dir_mtime: false,
    owner: false,
    xattrs: false,
    mode: true,
};

/// A fixture whose module belongs to the module's user, with an empty source tree.
pub(crate) fn fixture() -> Fixture {
    let f = Fixture::seed();
    std::fs::create_dir_all(src_dir(&f)).unwrap();
    f
}

pub(crate) fn exists(p: &Path) -> bool {
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
pub(crate) fn converged(agent: &Agent, src: &Path, m: &Path, limit: Duration) {
    agent.wait_for("the module to match the source", limit, |_| {
        e2e::tree::diff_trees(src, m, CONTENT).is_empty()
    });
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
