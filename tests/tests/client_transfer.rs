//! The native client pushing and pulling, against stock rsyncd 3.5.0, stock 3.1.2 as a
//! daemon (CentOS 7's) and rsyncd-rs: each case does with the library what the stock
//! client does with the same options, on twin fixtures, and compares the trees.

use std::path::{Path, PathBuf};
use std::time::Duration;

use e2e::tree::{Compare, diff_trees, pseudo_random, set_mtime, write_file};
use e2e::{Daemon, Fixture, Rsync, Server, old_client_or_skip};
use rsyncd_rs::client::{
    ClientError, ConnectOptions, ItemWhat, Password, Remote, parse_options, pull, push,
};
use rsyncd_rs::engine::exit::ExitCode;

use crate::push::{T0, change_tree, reference_push, source_tree, src_dir};

fn connect(f: &Fixture) -> ConnectOptions {
    ConnectOptions {
        password: Some(Password::File(f.password_file())),
        io_timeout: Some(Duration::from_secs(30)),
        ..ConnectOptions::default()
    }
}

fn remote(d: &Daemon, path: &str) -> Remote {
    Remote::parse(
        &format!("{}/{path}", d.url(Some("rsync_backup"), "backup")),
        873,
    )
    .unwrap()
}

/// A push that must succeed: its outcome.
fn pushed<P: AsRef<[u8]>>(
    kind: Server,
    to: &Remote,
    f: &Fixture,
    o: &str,
    root: &Path,
    paths: &[P],
) -> rsyncd_rs::client::PushOutcome {
    let out =
        push(to, &connect(f), &opts(o), root, paths).unwrap_or_else(|e| panic!("{kind:?}: {e}"));
    assert_eq!(out.code, ExitCode::OK, "{kind:?}: {:?}", out.lines);
    out
}

fn opts(s: &str) -> rsyncd_rs::protocol::options::Options {
    parse_options(&s.split_whitespace().collect::<Vec<_>>())
        .unwrap()
        .options
}

/// The daemons a case runs against: stock 3.5.0, rsyncd-rs, and stock 3.1.2 (required
/// under CI=true).
fn daemons() -> Vec<Server> {
    let mut v = vec![Server::Stock, Server::Ours];
    if old_client_or_skip("3.1.2").is_some() {
        v.push(Server::Old("3.1.2"));
    }
    v
}

/// Hands a module's contents to the module's user (nobody, when the tests run as root),
/// as a backup host's module belongs to the daemon's `uid`.
fn give_to_module_user(module: &Path) {
    if e2e::is_root() {
        let owner = format!("nobody:{}", e2e::fixture::nobody_group());
        let st = std::process::Command::new("chown")
            .args(["-R", "-h", &owner])
            .arg(module)
            .status()
            .unwrap();
        assert!(st.success());
    }
}

/// A fixture with the push cases' source tree.
fn with_source() -> Fixture {
    let f = Fixture::seed();
    source_tree(&src_dir(&f));
    f
}

/// The reference push (`-artuz -R --delete ./`) by the stock client and by ours into
/// twin modules of the same daemon kind, then the changes and the same push again: the
/// module trees match after each, fake-super xattrs included (the same daemon stores the
/// same `user.rsync.%stat` for either client), and our re-push sends kilobytes, not the
/// tree.
#[test]
fn the_reference_push_and_a_delta_push_match_the_stock_client() {
    for kind in daemons() {
        let (fs, fo) = (with_source(), with_source());
        let (ds, dd) = (Daemon::start(kind, &fs), Daemon::start(kind, &fo));
        let ours = |f: &Fixture, d: &Daemon| {
            push(
                &remote(d, ""),
                &connect(f),
                &opts("-artuz -R --delete"),
                &src_dir(f),
                &["./"],
            )
            .unwrap_or_else(|e| panic!("{kind:?}: {e}"))
        };
        let stock_push = |f: &Fixture, d: &Daemon| {
            let out = reference_push(Rsync::client(), d, f, &[]).run();
            assert_eq!(out.code, 0, "{kind:?}: {out:#?}");
        };
        stock_push(&fs, &ds);
        let first = ours(&fo, &dd);
        assert_eq!(first.code, ExitCode::OK, "{kind:?}: {:?}", first.lines);
        let what = Compare::ALL;
        let diff = diff_trees(&fs.module_dir(), &fo.module_dir(), what);
        assert!(diff.is_empty(), "{kind:?} first push: {diff:#?}");

        change_tree(&src_dir(&fs));
        change_tree(&src_dir(&fo));
        stock_push(&fs, &ds);
        let second = ours(&fo, &dd);
        assert_eq!(second.code, ExitCode::OK, "{kind:?}: {:?}", second.lines);
        let diff = diff_trees(&fs.module_dir(), &fo.module_dir(), what);
        assert!(diff.is_empty(), "{kind:?} re-push: {diff:#?}");
        // The tree holds over 400 KiB; the changes are a few KiB (a 4 KiB change inside
        // the 100 KiB random file goes as a delta).
        assert!(
            second.bytes_written < 64 * 1024,
            "{kind:?}: sent {}",
            second.bytes_written
        );
    }
}

/// A pull of the whole module and of a subdirectory into a local directory matches the
/// stock client's pull; after a local change to the large file, a re-pull receives a
/// delta.
#[test]
fn pulls_match_the_stock_client_and_re_pulls_are_deltas() {
    for kind in daemons() {
        let f = Fixture::seed();
        source_tree(&f.module_dir());
        give_to_module_user(&f.module_dir());
        let d = Daemon::start(kind, &f);
        let mine = f.dir().join("mine");
        let theirs = f.dir().join("theirs");
        for (path, sub) in [("", ""), ("dir2/", "dir2")] {
            let (m, t) = (mine.join(sub), theirs.join(sub));
            let out = Rsync::client()
                .args(["-a", "--password-file"])
                .arg(f.password_file().display().to_string())
                .arg(format!("{}/{path}", d.url(Some("rsync_backup"), "backup")))
                .arg(format!("{}/", t.display()))
                .run();
            assert_eq!(out.code, 0, "{kind:?} {path}: {out:#?}");
            let got = pull(&remote(&d, path), &connect(&f), &opts("-a"), &m)
                .unwrap_or_else(|e| panic!("{kind:?} {path}: {e}"));
            assert_eq!(got.code, ExitCode::OK, "{kind:?}: {:?}", got.lines);
            let diff = diff_trees(&t, &m, Compare::ALL);
            assert!(diff.is_empty(), "{kind:?} {path}: {diff:#?}");
        }
        // 4 KiB changed in the middle of our copy of the 100 KiB file.
        let local = mine.join("random.bin");
        let mut data = std::fs::read(&local).unwrap();
        data[50_000..54_096].copy_from_slice(&pseudo_random(4096, 5));
        write_file(&mine, "random.bin", &data, 0o644, T0 + 999);
        let again = pull(&remote(&d, ""), &connect(&f), &opts("-a"), &mine).unwrap();
        assert_eq!(again.files_transferred, 1, "{kind:?}: {again:?}");
        assert!(again.literal_bytes < 16 * 1024, "{kind:?}: {again:?}");
        assert!(again.matched_bytes > 80 * 1024, "{kind:?}: {again:?}");
        assert_eq!(
            std::fs::read(&local).unwrap(),
            std::fs::read(f.module_dir().join("random.bin")).unwrap()
        );
    }
}

/// 1,000 scattered paths in one `-R` session: exactly those files arrive, with their
/// directories, and nothing else of the tree.
#[test]
fn a_thousand_scattered_paths_in_one_session() {
    for kind in [Server::Stock, Server::Ours] {
        let f = Fixture::seed();
        let src = src_dir(&f);
        for i in 0..2000 {
            write_file(
                &src,
                &format!("d{:02}/f{i:04}.txt", i % 50),
                format!("file {i}\n").as_bytes(),
                0o644,
                T0,
            );
        }
        let named: Vec<String> = (0..2000)
            .step_by(2)
            .map(|i| format!("d{:02}/f{i:04}.txt", i % 50))
            .collect();
        let d = Daemon::start(kind, &f);
        let out = pushed(kind, &remote(&d, ""), &f, "-artuz -R", &src, &named);
        let mut got: Vec<String> = Vec::new();
        for dir in std::fs::read_dir(f.module_dir()).unwrap() {
            let dir = dir.unwrap();
            for file in std::fs::read_dir(dir.path()).unwrap() {
                let p = file.unwrap().path();
                got.push(
                    p.strip_prefix(f.module_dir())
                        .unwrap()
                        .display()
                        .to_string(),
                );
            }
        }
        got.sort();
        let sent = out
            .items
            .iter()
            .filter(|(_, w)| *w == ItemWhat::Sent)
            .count();
        assert_eq!(sent, named.len(), "{kind:?}");
        let mut want = named.clone();
        want.sort();
        assert_eq!(got, want, "{kind:?}");
    }
}

/// `-R --delete dir` deletes what the named directory holds remotely and the local one
/// does not, and nothing outside it.
#[test]
fn delete_reaches_the_named_directory_only() {
    for kind in [Server::Stock, Server::Ours] {
        let f = Fixture::seed();
        let src = src_dir(&f);
        write_file(&src, "dir/keep.txt", b"k\n", 0o644, T0);
        for p in ["dir/keep.txt", "dir/stale.txt", "other/untouched.txt"] {
            write_file(&f.module_dir(), p, b"old\n", 0o644, T0);
        }
        give_to_module_user(&f.module_dir());
        let d = Daemon::start(kind, &f);
        let out = pushed(
            kind,
            &remote(&d, ""),
            &f,
            "-artuz -R --delete",
            &src,
            &["dir"],
        );
        let m = f.module_dir();
        assert_eq!(std::fs::read(m.join("dir/keep.txt")).unwrap(), b"k\n");
        assert!(!m.join("dir/stale.txt").exists(), "{kind:?}");
        assert!(m.join("other/untouched.txt").exists(), "{kind:?}");
        // What became of each entry, as the caller (the agent) needs it.
        let items: std::collections::BTreeMap<String, ItemWhat> = out
            .items
            .iter()
            .map(|(n, w)| (String::from_utf8_lossy(n).into_owned(), w.clone()))
            .collect();
        assert_eq!(
            items.get("dir/keep.txt"),
            Some(&ItemWhat::Sent),
            "{kind:?} {items:?}"
        );
        assert_eq!(
            items.get("dir/stale.txt"),
            Some(&ItemWhat::Deleted),
            "{kind:?} {items:?}"
        );
        assert!(
            !items.contains_key("other/untouched.txt"),
            "{kind:?} {items:?}"
        );
        // The session ended as stock's client ends it: no complaint in the daemon's log
        // (a client echoing the receiver's delete statistics made rsyncd-rs log
        // "Invalid packet at end of run").
        let log = d.log();
        assert!(!log.contains("Invalid packet"), "{kind:?}: {log}");
        // Pushed again unchanged: listed, nothing sent.
        let again = push(
            &remote(&d, ""),
            &connect(&f),
            &opts("-artuz -R --delete"),
            &src,
            &["dir"],
        )
        .unwrap();
        let keep = again
            .items
            .iter()
            .find(|(n, _)| n == b"dir/keep.txt")
            .map(|(_, w)| w);
        assert_eq!(keep, Some(&ItemWhat::Listed), "{kind:?}");
    }
}

/// A file the daemon cannot write (its directory belongs to root; the module's user is
/// nobody) fails alone: the push ends partial (23), that entry is `Failed` with the
/// daemon's own words, and its neighbours are sent. Root only: a daemon running as the
/// file's owner makes a read-only directory writable for the time it needs it.
#[test]
fn a_file_the_receiver_cannot_write_is_reported_failed_by_name() {
    if !e2e::is_root() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI runs the suite as root"
        );
        eprintln!("skipped: the daemon's user must differ from the directory's owner");
        return;
    }
    for kind in daemons() {
        let f = Fixture::seed();
        let src = src_dir(&f);
        write_file(&src, "ok/g.txt", b"g\n", 0o644, T0);
        write_file(&src, "locked/f.txt", b"f\n", 0o644, T0);
        give_to_module_user(&f.module_dir());
        // Owned by root, as in the source; the same mode and time, so only the file's
        // creation fails.
        let locked = f.module_dir().join("locked");
        std::fs::create_dir(&locked).unwrap();
        set_mtime(&locked, T0);
        set_mtime(&src.join("locked"), T0);
        let d = Daemon::start(kind, &f);
        let out = push(
            &remote(&d, ""),
            &connect(&f),
            &opts("-artuz -R"),
            &src,
            &["ok", "locked/f.txt"],
        )
        .unwrap_or_else(|e| panic!("{kind:?}: {e}"));
        assert_eq!(out.code, ExitCode::PARTIAL, "{kind:?}: {:?}", out.lines);
        let item = |n: &str| {
            out.items
                .iter()
                .find(|(k, _)| k == n.as_bytes())
                .map(|(_, w)| w.clone())
        };
        assert_eq!(item("ok/g.txt"), Some(ItemWhat::Sent), "{kind:?}: {out:?}");
        match item("locked/f.txt") {
            Some(ItemWhat::Failed(why)) => {
                assert!(why.contains("Permission denied"), "{kind:?}: {why}")
            }
            other => panic!("{kind:?}: locked/f.txt {other:?}; {:?}", out.lines),
        }
        assert!(!locked.join("f.txt").exists(), "{kind:?}");
        assert!(f.module_dir().join("ok/g.txt").exists(), "{kind:?}");
    }
}

/// A module refusing `--delete` ends the push with the daemon's words and exit code 4;
/// a wrong password is the typed refusal; neither is worth retrying.
#[test]
fn refused_options_and_auth_failures_are_typed() {
    for kind in [Server::Stock, Server::Ours] {
        let mut f = with_source();
        f.set_module("backup", "refuse options", "delete");
        let d = Daemon::start(kind, &f);
        let e = push(
            &remote(&d, ""),
            &connect(&f),
            &opts("-artuz -R --delete"),
            &src_dir(&f),
            &["./"],
        )
        .unwrap_err();
        match &e {
            ClientError::Transfer { code, messages } => {
                assert_eq!(*code, ExitCode::UNSUPPORTED, "{messages:?}");
                assert!(
                    messages.iter().any(|m| m.contains("refuse --delete")),
                    "{messages:?}"
                );
            }
            other => panic!("{kind:?}: {other:?}"),
        }
        assert!(!e.is_retryable());
        let mut c = connect(&f);
        c.password = Some(Password::Value(b"wrong".to_vec()));
        let e = push(&remote(&d, ""), &c, &opts("-a"), &src_dir(&f), &["./"]).unwrap_err();
        assert!(
            matches!(
                e,
                ClientError::Daemon {
                    kind: rsyncd_rs::client::Refusal::AuthFailed,
                    ..
                }
            ),
            "{e:?}"
        );
    }
}

/// The pulled tree lands inside the destination, whatever the path's shape.
#[test]
fn a_pull_into_a_missing_destination_creates_it() {
    let f = with_source();
    source_tree(&f.module_dir());
    give_to_module_user(&f.module_dir());
    let d = Daemon::start(Server::Ours, &f);
    let dest: PathBuf = f.dir().join("new-dir");
    let out = pull(&remote(&d, "dir1/"), &connect(&f), &opts("-a"), &dest).unwrap();
    assert_eq!(out.code, ExitCode::OK);
    assert!(Path::new(&dest).join("a.txt").exists());
}

/// `--bwlimit` holds a push to its rate, and a daemon's own `--bwlimit` holds what it
/// sends to a stock client: 512 KiB at 256 KiB/s take about two seconds.
#[test]
fn bwlimit_holds_the_rate_both_ways() {
    let f = Fixture::seed();
    let src = src_dir(&f);
    write_file(
        &src,
        "half-mib.bin",
        &pseudo_random(512 * 1024, 11),
        0o644,
        T0,
    );
    let d = Daemon::start(Server::Ours, &f);
    let started = std::time::Instant::now();
    let out = push(
        &remote(&d, ""),
        &connect(&f),
        &opts("-a --bwlimit=256"),
        &src,
        &["half-mib.bin"],
    )
    .unwrap();
    assert_eq!(out.code, ExitCode::OK, "{:?}", out.lines);
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(1500),
        "the limited push took {took:?}"
    );
    drop(d);

    give_to_module_user(&f.module_dir());
    let d = Daemon::start_with(Server::Ours, &f, &["--bwlimit=256"]);
    let started = std::time::Instant::now();
    let out = Rsync::client()
        .args(["-a", "--password-file"])
        .arg(f.password_file().display().to_string())
        .arg(format!(
            "{}/half-mib.bin",
            d.url(Some("rsync_backup"), "backup")
        ))
        .arg(f.dir().join("pulled.bin").display().to_string())
        .run();
    assert_eq!(out.code, 0, "{out:#?}");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(1500),
        "the limited pull took {took:?}"
    );
}

/// A 4 KiB change in an 8 MiB file pushes kilobytes, not the file; a dry run before it
/// changes nothing in the module.
#[test]
fn a_4_kib_change_in_8_mib_pushes_kilobytes_and_a_dry_run_nothing() {
    for kind in [Server::Stock, Server::Ours] {
        let f = Fixture::seed();
        let src = src_dir(&f);
        let mut data = pseudo_random(8 << 20, 21);
        write_file(&src, "big.img", &data, 0o644, T0);
        let d = Daemon::start(kind, &f);
        let push_big =
            |o: &str| push(&remote(&d, ""), &connect(&f), &opts(o), &src, &["big.img"]).unwrap();
        let first = push_big("-artuz");
        assert_eq!(first.code, ExitCode::OK, "{kind:?}: {:?}", first.lines);
        data[3_000_000..3_004_096].copy_from_slice(&pseudo_random(4096, 22));
        write_file(&src, "big.img", &data, 0o644, T0 + 10);
        let before = std::fs::read(f.module_dir().join("big.img")).unwrap();
        let dry = push_big("-artu -n");
        assert_eq!(dry.code, ExitCode::OK, "{kind:?}");
        assert_eq!(
            std::fs::read(f.module_dir().join("big.img")).unwrap(),
            before,
            "{kind:?}: the dry run wrote"
        );
        let second = push_big("-artu");
        assert_eq!(second.code, ExitCode::OK, "{kind:?}: {:?}", second.lines);
        assert_eq!(
            std::fs::read(f.module_dir().join("big.img")).unwrap(),
            data,
            "{kind:?}"
        );
        assert!(
            second.bytes_written < 128 * 1024,
            "{kind:?}: sent {}",
            second.bytes_written
        );
    }
}

/// `syncctl ls -r -c --checksum-choice=md5 --json` agrees with `md5sum` over the files
/// the module holds, for stock rsyncd and rsyncd-rs.
#[test]
fn syncctl_ls_checksums_agree_with_md5sum() {
    let f = with_source();
    source_tree(&f.module_dir());
    give_to_module_user(&f.module_dir());
    for kind in [Server::Stock, Server::Ours] {
        let d = Daemon::start(kind, &f);
        let out = std::process::Command::new(e2e::syncctl_bin())
            .args([
                "ls",
                "-r",
                "-c",
                "--checksum-choice=md5",
                "--json",
                "--password-file",
            ])
            .arg(f.password_file())
            .arg(format!("{}/", d.url(Some("rsync_backup"), "backup")))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{kind:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(doc["checksum"], "md5");
        let mut checked = 0;
        for e in doc["entries"].as_array().unwrap() {
            let (mode, name, sum) = (
                e["mode"].as_str().unwrap(),
                e["name"].as_str().unwrap(),
                e["checksum"].as_str().unwrap(),
            );
            if !mode.starts_with('-') {
                continue;
            }
            let md5 = std::process::Command::new("md5sum")
                .arg(f.module_dir().join(name))
                .output()
                .unwrap();
            let want = String::from_utf8_lossy(&md5.stdout)
                .split(' ')
                .next()
                .unwrap()
                .to_string();
            assert_eq!(sum, want, "{kind:?} {name}");
            checked += 1;
        }
        assert!(checked >= 10, "{kind:?}: {checked} files checked");
    }
}

/// Options the client passes through to the engine, end to end: hard links (`-H`),
/// `--numeric-ids`, a named compression, `--link-dest` (an unchanged file becomes a hard
/// link to the previous backup's), and the daemon's MOTD reaching the caller.
#[test]
fn hard_links_link_dest_compress_choice_and_the_motd() {
    use std::os::unix::fs::MetadataExt;
    for kind in [Server::Stock, Server::Ours] {
        let mut f = Fixture::seed();
        let motd = f.dir().join("motd");
        std::fs::write(&motd, "Backups only.\n").unwrap();
        f.set_global("motd file", &motd.display().to_string());
        let src = src_dir(&f);
        write_file(&src, "a.txt", b"same\n", 0o644, T0);
        std::fs::hard_link(src.join("a.txt"), src.join("b.txt")).unwrap();
        write_file(&src, "c.txt", b"changes\n", 0o644, T0);
        let d = Daemon::start(kind, &f);
        let to = |path: &str| remote(&d, path);
        let first = pushed(
            kind,
            &to("prev/"),
            &f,
            "-aH --numeric-ids --compress-choice=zlib -z",
            &src,
            &["./"],
        );
        assert_eq!(
            first.motd.first().map(String::as_str),
            Some("Backups only."),
            "{kind:?}"
        );
        let m = f.module_dir();
        let (a, b) = (
            std::fs::metadata(m.join("prev/a.txt")).unwrap(),
            std::fs::metadata(m.join("prev/b.txt")).unwrap(),
        );
        assert_eq!(a.ino(), b.ino(), "{kind:?}: -H kept the link");
        write_file(&src, "c.txt", b"changed now\n", 0o644, T0 + 5);
        pushed(
            kind,
            &to("cur/"),
            &f,
            "-a --link-dest=../prev",
            &src,
            &["./"],
        );
        let (prev, cur) = (
            std::fs::metadata(m.join("prev/a.txt")).unwrap(),
            std::fs::metadata(m.join("cur/a.txt")).unwrap(),
        );
        assert_eq!(
            prev.ino(),
            cur.ino(),
            "{kind:?}: --link-dest linked the unchanged file"
        );
        assert_eq!(
            std::fs::read(m.join("cur/c.txt")).unwrap(),
            b"changed now\n"
        );
    }
}

/// `--copy-dest` copies an unchanged file from the previous backup; `--partial` keeps what
/// arrived of a push cut short (syncctl killed mid-file, held to 64 KiB/s by --bwlimit).
#[test]
fn copy_dest_and_partial() {
    use std::os::unix::fs::MetadataExt;
    for kind in [Server::Stock, Server::Ours] {
        let f = Fixture::seed();
        let src = src_dir(&f);
        write_file(&src, "a.txt", b"same\n", 0o644, T0);
        let d = Daemon::start(kind, &f);
        pushed(kind, &remote(&d, "prev/"), &f, "-a", &src, &["./"]);
        pushed(
            kind,
            &remote(&d, "cur/"),
            &f,
            "-a --copy-dest=../prev",
            &src,
            &["./"],
        );
        let m = f.module_dir();
        let (prev, cur) = (
            std::fs::metadata(m.join("prev/a.txt")).unwrap(),
            std::fs::metadata(m.join("cur/a.txt")).unwrap(),
        );
        assert_ne!(prev.ino(), cur.ino(), "{kind:?}: a copy, not a link");
        assert_eq!(std::fs::read(m.join("cur/a.txt")).unwrap(), b"same\n");

        write_file(&src, "big.bin", &pseudo_random(1 << 20, 31), 0o644, T0);
        let mut child = std::process::Command::new(e2e::syncctl_bin())
            .arg("push")
            .arg("--root")
            .arg(&src)
            .args(["-a", "--partial", "--bwlimit=64", "--password-file"])
            .arg(f.password_file())
            .arg("big.bin")
            .arg(format!("{}/part/", d.url(Some("rsync_backup"), "backup")))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(1500));
        let _ = child.kill();
        let _ = child.wait();
        let kept = m.join("part/big.bin");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !kept.exists() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let meta = std::fs::metadata(&kept);
        let len = meta.as_ref().map(|m| m.len()).unwrap_or(0);
        assert!(
            len > 0 && len < 1 << 20,
            "{kind:?}: the partial file holds {len} bytes; log: {}",
            d.log()
        );
        // An old mtime, so that -u does not skip the unfinished file next time.
        assert_eq!(meta.unwrap().mtime(), 0, "{kind:?}");
    }
}
