//! Pushes that must not harm what they cannot finish or must not reach: a killed push
//! leaves the old or the new file (never a truncated one, never a stray temp file),
//! names and symlinks that would lead out of the module change nothing outside it, and
//! a file the module's user cannot write fails the push with exit 23 and stock's
//! per-file messages.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use e2e::compare::{
    Side, assert_same_client_view, client_view, differential, line_diff, log_events,
};
use e2e::tree::{Compare, Snapshot, assert_trees_equal, pseudo_random, snapshot, write_file};
use e2e::{Daemon, Fixture, Rsync, Server, run_cases};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::push::{T0, fix_dir_times, push_cmd, src_dir};

/// The user the seed config's sessions run as.
fn nobody() -> nix::unistd::User {
    nix::unistd::User::from_name("nobody")
        .ok()
        .flatten()
        .expect("user nobody")
}

/// Hands `p` (not following a symlink) to the module's user, as if a push had made it.
fn give_to_nobody(p: &Path) {
    nix::unistd::fchownat(
        nix::fcntl::AT_FDCWD,
        p,
        Some(nobody().uid),
        None,
        nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
    )
    .expect("chown");
}

/// The temp files (`.NAME.XXXXXX`) in `dir`.
fn temp_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with('.'))
                .collect()
        })
        .unwrap_or_default()
}

fn size_of(p: &Path) -> u64 {
    std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
}

/// What one server left after a push killed part-way.
#[derive(Debug)]
struct Killed {
    kind: Server,
    /// Whether the kill came mid-file: the temp file held 1 MiB and the client still ran.
    mid_file: bool,
    /// The temp files left once the session ended.
    left: Vec<String>,
    /// The destination file is the old version, the new one, or neither.
    dest: &'static str,
    events: Vec<String>,
}

/// Pushes a 64 MiB file over an older version of it, SIGKILLs the client once the
/// daemon's temp file holds 1 MiB, and waits for the session to end. (Not slowed with
/// `--bwlimit`: polling every 2 ms sees the temp file well before 64 MiB arrive.)
fn killed_push(kind: Server) -> Killed {
    const SIZE: usize = 64 << 20;
    let f = Fixture::seed();
    let module = f.module_dir();
    let old = pseudo_random(SIZE, 1);
    let new = pseudo_random(SIZE, 2);
    write_file(&module, "big.bin", &old, 0o644, T0);
    give_to_nobody(&module.join("big.bin"));
    let src = src_dir(&f);
    write_file(&src, "big.bin", &new, 0o644, T0 + 100);
    fix_dir_times(&src, T0);
    let d = Daemon::start(kind, &f);
    let before = d.log().len();
    let mut child = push_cmd(Rsync::client(), &d, &f, &["-a", "-W"])
        .command()
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the client");
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut mid_file = false;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            break;
        }
        if temp_files(&module)
            .first()
            .is_some_and(|t| size_of(&module.join(t)) >= 1 << 20)
        {
            mid_file = matches!(child.try_wait(), Ok(None));
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGKILL);
    let _ = child.wait();
    // The session notices the closed connection and cleans up.
    let settle = Instant::now() + Duration::from_secs(10);
    while !temp_files(&module).is_empty() && Instant::now() < settle {
        std::thread::sleep(Duration::from_millis(20));
    }
    let events = log_events(&d.log_since(before));
    let data = std::fs::read(module.join("big.bin")).unwrap_or_default();
    let dest = if data == old {
        "old"
    } else if data == new {
        "new"
    } else {
        "neither (truncated or mixed)"
    };
    Killed {
        kind,
        mid_file,
        left: temp_files(&module),
        dest,
        events,
    }
}

/// A push killed part-way through a 64 MiB file leaves the previous version in place
/// and no temp file, on both servers (without `--inplace` or `--partial`, upstream writes
/// into `.NAME.XXXXXX` and renames only a complete file; on an abort its receiver
/// unlinks the temp file).
#[test]
fn a_killed_push_leaves_the_old_file_and_no_temp_file() {
    let sides = std::thread::scope(|s| {
        let stock = s.spawn(|| killed_push(Server::Stock));
        let ours = killed_push(Server::Ours);
        [stock.join().expect("stock side"), ours]
    });
    for k in &sides {
        assert!(
            k.mid_file,
            "{:?}: the kill did not land mid-file: {k:#?}",
            k.kind
        );
    }
    let view = |k: &Killed| (k.dest, k.left.clone());
    assert_eq!(view(&sides[0]), ("old", vec![]), "stock: {:#?}", sides[0]);
    assert_eq!(view(&sides[1]), view(&sides[0]), "ours: {:#?}", sides[1]);
    assert!(
        !sides[1].events.iter().any(|l| l.contains("panicked")),
        "{:#?}",
        sides[1].events
    );
    // How the session ended, in the log: the byte count stock's message gives depends on
    // where the kill landed, and is blanked.
    let ending = |k: &Killed| -> Vec<String> {
        k.events
            .iter()
            .map(|l| match l.find(" bytes received so far)") {
                Some(end) => {
                    let start = l[..end].rfind('(').map_or(end, |i| i + 1);
                    format!("{}N{}", &l[..start], &l[end..])
                }
                None => l.clone(),
            })
            .collect()
    };
    assert!(
        ending(&sides[0]) == ending(&sides[1]),
        "the logs differ (- stock, + ours):\n{}",
        line_diff(&ending(&sides[0]), &ending(&sides[1]))
    );
}

/// A directory outside the module, writable by the module's user (so that only the
/// daemon's own checks keep a push out of it), with a file in it.
fn outside_dir(f: &Fixture) -> PathBuf {
    let out = f.dir().join("outside");
    write_file(&out, "keep.txt", b"outside\n", 0o644, T0);
    std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    give_to_nobody(&out);
    out
}

/// What lies outside the module: the outside directory's tree, and the names in the
/// scratch directory (but the daemon's own `rsyncd.*` files) and in its parent.
fn outside_view(f: &Fixture) -> (Snapshot, Vec<String>, Vec<String>) {
    let names = |d: &Path| {
        let mut v: Vec<String> = std::fs::read_dir(d)
            .map(|e| {
                e.filter_map(Result::ok)
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| !n.starts_with("rsyncd."))
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    };
    (
        snapshot(&f.dir().join("outside")),
        names(f.dir()),
        names(f.dir().parent().expect("scratch parent")),
    )
}

/// Asserts that ours changed nothing outside the module, and did not panic; says what
/// stock did, for reference, when stock did change something.
fn assert_ours_stayed_inside(case: &str, sides: &[Side; 2], before: &[OutsideBefore; 2]) {
    let [stock, ours] = sides;
    let ours_after = outside_view(&ours.fixture);
    let stock_after = outside_view(&stock.fixture);
    let stock_note = if stock_after.0 == before[0].0 && stock_after.1 == before[0].1 {
        "stock changed nothing outside either".to_string()
    } else {
        format!(
            "stock, for reference, did change things outside: {:?}",
            e2e::tree::diff_snapshots(
                &before[0].0,
                &stock_after.0,
                Compare::ALL,
                "before",
                "after"
            )
        )
    };
    let d = e2e::tree::diff_snapshots(&before[1].0, &ours_after.0, Compare::ALL, "before", "after");
    assert!(
        d.is_empty() && ours_after.1 == before[1].1,
        "{case}: ours changed things outside the module: {d:?}, scratch dir {:?} -> {:?} ({stock_note})\n--- client: {:#?}",
        before[1].1,
        ours_after.1,
        ours.outcome
    );
    // The scratch parent (/tmp) is shared with other tests: only a name this case
    // would make counts.
    assert!(
        !ours_after.2.iter().any(|n| n.starts_with("escape-")),
        "{case}: ours made {:?}",
        ours_after.2
    );
    assert!(
        !ours.events.iter().any(|l| l.contains("panicked")),
        "{case}: {:#?}",
        ours.events
    );
}

type OutsideBefore = (Snapshot, Vec<String>, Vec<String>);

/// Runs `client` against both servers with the outside directory and `setup`, and returns
/// the sides and what lay outside each module before the push.
fn escape_attempt(
    setup: impl Fn(&Fixture) + Sync,
    client: impl Fn(&Daemon, &Fixture) -> Rsync + Sync,
) -> ([Side; 2], [OutsideBefore; 2]) {
    let befores = std::sync::Mutex::new(Vec::new());
    let sides = differential(
        |f| {
            outside_dir(f);
            setup(f);
        },
        |d, f| {
            // After the builder, which makes the source tree (in the scratch dir).
            let cmd = client(d, f);
            befores
                .lock()
                .expect("lock")
                .push((f.dir().to_path_buf(), outside_view(f)));
            cmd
        },
    );
    let befores = befores.into_inner().expect("lock");
    let find = |s: &Side| {
        befores
            .iter()
            .find(|(dir, _)| dir == s.fixture.dir())
            .map(|(_, v)| v.clone())
            .expect("the view before")
    };
    let before = [find(&sides[0]), find(&sides[1])];
    (sides, before)
}

/// Symlinks already in the module (put there by an administrator, say) that lead out of
/// it: `evil -> /abs/outside` and `evil2 -> ../outside`; `inlink -> sub` stays inside.
/// A push with `--keep-dirlinks` of a tree holding `evil/x`, `evil2/x` and `inlink/y` must
/// not write into the outside directory (upstream follows such links: with
/// `use chroot = no` it trusts what is in the module).
#[test]
fn keep_dirlinks_does_not_follow_module_symlinks_out_of_the_module() {
    let (sides, before) = escape_attempt(
        |f| {
            let m = f.module_dir();
            let out = f.dir().join("outside");
            std::os::unix::fs::symlink(&out, m.join("evil")).expect("symlink");
            std::os::unix::fs::symlink("../outside", m.join("evil2")).expect("symlink");
            write_file(&m, "sub/inside.txt", b"inside\n", 0o644, T0);
            give_to_nobody(&m.join("sub"));
            give_to_nobody(&m.join("sub/inside.txt"));
            std::os::unix::fs::symlink("sub", m.join("inlink")).expect("symlink");
            for l in ["evil", "evil2", "inlink"] {
                give_to_nobody(&m.join(l));
            }
        },
        |d, f| {
            let src = src_dir(f);
            write_file(&src, "evil/x", b"escaped\n", 0o644, T0);
            write_file(&src, "evil2/x", b"escaped\n", 0o644, T0);
            write_file(&src, "inlink/y", b"through an inside link\n", 0o644, T0);
            fix_dir_times(&src, T0);
            push_cmd(Rsync::client(), d, f, &["-a", "-i", "--keep-dirlinks"])
        },
    );
    assert_ours_stayed_inside("--keep-dirlinks", &sides, &before);
    // The inside link is followed as upstream follows it.
    assert!(
        sides[1].module_dir().join("sub/y").exists(),
        "ours did not follow the inside link: {:#?}",
        sides[1].outcome
    );
}

/// A symlink pushed into the module that points out of it (`up -> ../outside`), then a
/// second push with `--keep-dirlinks` of `up/x`: under `fake super` the link is kept as
/// a plain file, and with `use chroot = no` its target is munged, so nothing is followed.
#[test]
fn a_pushed_symlink_leading_out_is_not_followed_later() {
    let (sides, before) = escape_attempt(
        |_| {},
        |d, f| {
            let src = src_dir(f);
            std::fs::create_dir_all(&src).expect("mkdir");
            crate::push::symlink("../outside", &src.join("up"));
            fix_dir_times(&src, T0);
            let first = push_cmd(Rsync::client(), d, f, &["-a", "-i"]).run();
            assert_eq!(first.code, 0, "{first:#?}");
            std::fs::remove_file(src.join("up")).expect("rm");
            write_file(&src, "up/x", b"escaped\n", 0o644, T0);
            fix_dir_times(&src, T0);
            push_cmd(Rsync::client(), d, f, &["-a", "-i", "--keep-dirlinks"])
        },
    );
    assert_same_client_view(&sides);
    assert_trees_equal(&sides[0].module_dir(), &sides[1].module_dir(), Compare::ALL);
    assert_ours_stayed_inside("pushed symlink, then --keep-dirlinks", &sides, &before);
}

/// `-R` sources that climb (`./a/../../outside-src`, and `./sub/../..` from two levels
/// down): every stock client (3.1.2, 3.2.7, 3.5.0) refuses them itself (`found ".." dir
/// in relative path`) after the daemon admitted it, so both daemons see a session that
/// ends without a file list: the same client view, nothing written anywhere.
#[test]
fn relative_sources_that_climb_change_nothing() {
    run_cases(
        [("./a/../../stuff", ""), ("./sub/../..", "deep/er")].map(|(source, cwd)| {
            (source.to_string(), move || {
                let (sides, before) = escape_attempt(
                    |_| {},
                    |d, f| {
                        let src = src_dir(f);
                        write_file(&src, "a/file", b"a\n", 0o644, T0);
                        write_file(&src, "deep/er/sub/f", b"f\n", 0o644, T0);
                        write_file(&f.dir().join("stuff"), "s.txt", b"s\n", 0o644, T0);
                        Rsync::client()
                            .args(["-a", "-i", "-R", "--password-file"])
                            .arg(f.password_file().display().to_string())
                            .arg(source)
                            .arg(d.url(Some("rsync_backup"), "backup/"))
                            .cwd(&src.join(cwd))
                    },
                );
                assert_ours_stayed_inside(source, &sides, &before);
                assert_eq!(snapshot(&sides[1].module_dir()).len(), 1, "ours wrote");
                assert_ne!(sides[0].outcome.code, 0, "{:#?}", sides[0].outcome);
                assert_same_client_view(&sides);
                e2e::compare::assert_same_log(&sides);
            })
        }),
    );
}

/// A destination that climbs out of the module (`backup/../outside/`,
/// `backup/../../escape-NAME/`): the daemon keeps it inside the module as upstream's
/// path sanitizing does; both servers the same, nothing outside changed.
#[test]
fn a_destination_that_climbs_stays_in_the_module() {
    run_cases(
        ["../outside/", "../../escape-dest/", "sub/../../../x/"].map(|dest| {
            (dest.to_string(), move || {
                let (sides, before) = escape_attempt(
                    |_| {},
                    |d, f| {
                        let src = src_dir(f);
                        write_file(&src, "file.txt", b"pushed\n", 0o644, T0);
                        fix_dir_times(&src, T0);
                        Rsync::client()
                            .args(["-a", "-i", "--password-file"])
                            .arg(f.password_file().display().to_string())
                            .arg(format!("{}/", src.display()))
                            .arg(d.url(Some("rsync_backup"), &format!("backup/{dest}")))
                    },
                );
                assert_ours_stayed_inside(dest, &sides, &before);
                assert_same_client_view(&sides);
                e2e::compare::assert_same_log(&sides);
                // Not the directories' mtimes: the module root's is the time the push
                // made the destination directory in it, which may fall in different
                // seconds on the two sides.
                let what = Compare {
                    dir_mtime: false,
                    ..Compare::ALL
                };
                assert_trees_equal(&sides[0].module_dir(), &sides[1].module_dir(), what);
            })
        }),
    );
}

/// A directory of the module the module's user cannot write (root's, mode 755): the
/// files for it fail with stock's per-file messages, the rest arrives, and both exit 23.
#[test]
fn an_unwritable_directory_fails_the_push_with_exit_23() {
    let sides = differential(
        |f| {
            let m = f.module_dir();
            write_file(&m, "ro/old.txt", b"old\n", 0o644, T0);
        },
        |d, f| {
            let src = src_dir(f);
            write_file(&src, "ro/old.txt", b"new version\n", 0o644, T0 + 10);
            write_file(&src, "ro/new.txt", b"new file\n", 0o644, T0 + 10);
            write_file(&src, "ok/fine.txt", b"fine\n", 0o644, T0 + 10);
            fix_dir_times(&src, T0);
            push_cmd(Rsync::client(), d, f, &["-a", "-i"])
        },
    );
    let view = |s: &Side| {
        let (code, out, err) = client_view(&s.outcome);
        (
            code,
            out,
            err.iter()
                .map(|l| without_temp_suffix(l))
                .collect::<Vec<_>>(),
        )
    };
    let [stock, ours] = &sides;
    assert!(
        view(stock) == view(ours),
        "the client saw different outcomes: exit {} (stock) vs {} (ours)\nstdout (- stock, + ours):\n{}stderr (- stock, + ours):\n{}",
        stock.outcome.code,
        ours.outcome.code,
        line_diff(&view(stock).1, &view(ours).1),
        line_diff(&view(stock).2, &view(ours).2)
    );
    let events =
        |s: &Side| -> Vec<String> { s.events.iter().map(|l| without_temp_suffix(l)).collect() };
    assert!(
        events(stock) == events(ours),
        "the logs differ (- stock, + ours):\n{}",
        line_diff(&events(stock), &events(ours))
    );
    assert_eq!(sides[0].outcome.code, 23, "{:#?}", sides[0].outcome);
    assert_trees_equal(&sides[0].module_dir(), &sides[1].module_dir(), Compare::ALL);
    assert!(sides[1].module_dir().join("ok/fine.txt").exists());
}

/// A message with the random part of temp names (`dir/.NAME.XXXXXX`, mkstemp's six
/// letters) replaced by `XXXXXX`, since it differs from run to run.
fn without_temp_suffix(line: &str) -> String {
    let mut out = String::new();
    for (i, part) in line.split('"').enumerate() {
        if i > 0 {
            out.push('"');
        }
        let base = part.rsplit('/').next().unwrap_or(part);
        let suffix = base.rsplit('.').next().unwrap_or("");
        if i % 2 == 1
            && base.starts_with('.')
            && base.len() > suffix.len() + 1
            && suffix.len() == 6
            && suffix.bytes().all(|b| b.is_ascii_alphanumeric())
        {
            out.push_str(&part[..part.len() - 6]);
            out.push_str("XXXXXX");
        } else {
            out.push_str(part);
        }
    }
    out
}
