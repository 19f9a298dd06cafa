//! Pushes into the reference module, differential: the reference deployment's push
//! (`rsync -artuz -R --delete ./ rsync://rsync_backup@HOST/backup/`) and a re-push after
//! changes, at every protocol, compression and checksum choice, and a delta push of a
//! large file. Each case runs the same client commands against stock `rsync --daemon`
//! and rsyncd-rs and compares, after each command, the client's exit code, itemized
//! output and messages, and the module's tree (names, content, modes, times, symlinks and
//! the `user.rsync.%stat` xattrs of `fake super`), and the daemons' logs.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use e2e::compare::{Run, differential_steps, log_difference, step_differences};
use e2e::tree::{Compare, pseudo_random, sample_tree, set_mtime, write_file};
use e2e::{Daemon, Fixture, Rsync, run_cases};

/// The base time of the test trees' mtimes.
pub(crate) const T0: i64 = 1_700_000_000;

/// The source directory of a fixture (the client's side).
pub(crate) fn src_dir(f: &Fixture) -> PathBuf {
    f.dir().join("src")
}

/// `CLIENT OPTS --password-file PW ./ rsync://rsync_backup@127.0.0.1:PORT/backup/`, run in
/// the source directory, as sersync runs the reference push.
pub(crate) fn push_cmd(client: Rsync, d: &Daemon, f: &Fixture, opts: &[&str]) -> Rsync {
    push_cmd_to(client, d, f, opts, "backup/")
}

/// [`push_cmd`] to another destination in the daemon (`backup/sub/`).
pub(crate) fn push_cmd_to(
    client: Rsync,
    d: &Daemon,
    f: &Fixture,
    opts: &[&str],
    dest: &str,
) -> Rsync {
    client
        .args(opts.iter().copied())
        .arg("--password-file")
        .arg(f.password_file().display().to_string())
        .arg("./")
        .arg(d.url(Some("rsync_backup"), dest))
        .cwd(&src_dir(f))
}

/// The reference push itself: `-artuz -R --delete`, then `extra`.
pub(crate) fn reference_push(client: Rsync, d: &Daemon, f: &Fixture, extra: &[&str]) -> Rsync {
    let mut opts = vec!["-artuz", "-R", "--delete"];
    opts.extend_from_slice(extra);
    push_cmd(client, d, f, &opts)
}

/// Sets every directory's mtime under (and including) `root` to `t`: creating and removing
/// entries stamps directories with the current time, which would differ between the two
/// sides' source trees.
pub(crate) fn fix_dir_times(root: &Path, t: i64) {
    let meta = std::fs::symlink_metadata(root).expect("lstat");
    if !meta.is_dir() {
        return;
    }
    for e in std::fs::read_dir(root).expect("read_dir") {
        fix_dir_times(&e.expect("dir entry").path(), t);
    }
    set_mtime(root, t);
}

/// A symlink with a fixed mtime.
pub(crate) fn symlink(target: &str, link: &Path) {
    let _ = std::fs::remove_file(link);
    std::os::unix::fs::symlink(target, link).expect("symlink");
    set_mtime(link, T0);
}

/// The source tree of the push cases: the reference captures' sample tree (files, a
/// subdirectory, a symlink, 100 KiB of random data) and what else a backup tree holds:
/// nested and empty directories, modes 0755 and 0600, a symlink to a directory, hard
/// links, a fifo, log files, a sparse file, files of a few sizes.
pub(crate) fn source_tree(root: &Path) {
    sample_tree(root);
    write_file(root, "dir2/sub/deep.txt", b"deep\n", 0o644, T0);
    write_file(root, "exec.sh", b"#!/bin/sh\necho hi\n", 0o755, T0);
    write_file(root, "private.txt", b"secret\n", 0o600, T0);
    write_file(root, "older.txt", b"version one\n", 0o644, T0 + 50);
    write_file(root, "same-stamp.txt", b"AAAA\n", 0o644, T0);
    write_file(root, "grow.txt", b"line 1\n", 0o644, T0);
    write_file(root, "skip.log", b"log a\n", 0o644, T0);
    write_file(root, "keep.log", b"log b\n", 0o644, T0);
    write_file(root, "tiny", b"0123456789", 0o644, T0);
    write_file(root, "big.dat", &pseudo_random(40_000, 7), 0o644, T0);
    let mut sparse = pseudo_random(4096, 3);
    sparse.resize(256 * 1024, 0);
    sparse.extend_from_slice(&pseudo_random(4096, 4));
    write_file(root, "sparse.img", &sparse, 0o644, T0);
    write_file(root, "hl/one", b"linked\n", 0o644, T0);
    std::fs::hard_link(root.join("hl/one"), root.join("hl/two")).expect("hard link");
    std::fs::create_dir_all(root.join("empty")).expect("mkdir");
    symlink("dir1", &root.join("link-dir"));
    nix::unistd::mkfifo(
        &root.join("fifo"),
        nix::sys::stat::Mode::from_bits_truncate(0o644),
    )
    .expect("mkfifo");
    set_mtime(&root.join("fifo"), T0);
    fix_dir_times(root, T0 + 100);
}

/// The changes between a push and the re-push: a modified file, a 4 KiB change inside the
/// random file (a delta), a file whose new version is older than the pushed one (`-u`
/// keeps the pushed one), a change keeping size and mtime (only `-c` or `-I` see it), a
/// mode change alone, a grown file (`--append`), a retargeted symlink, a third hard link,
/// removed files and directories, added files and directories.
pub(crate) fn change_tree(root: &Path) {
    write_file(root, "1.txt", b"test sersync, changed\n", 0o644, T0 + 200);
    let mut random = std::fs::read(root.join("random.bin")).expect("read random.bin");
    let mid = random.len() / 2;
    random[mid..mid + 4096].copy_from_slice(&pseudo_random(4096, 99));
    write_file(root, "random.bin", &random, 0o644, T0 + 200);
    write_file(root, "older.txt", b"version two, older\n", 0o644, T0);
    write_file(root, "same-stamp.txt", b"BBBB\n", 0o644, T0);
    std::fs::set_permissions(
        root.join("private.txt"),
        std::fs::Permissions::from_mode(0o640),
    )
    .expect("chmod");
    write_file(root, "grow.txt", b"line 1\nline 2\n", 0o644, T0 + 200);
    std::fs::hard_link(root.join("hl/one"), root.join("hl/three")).expect("hard link");
    symlink("new.txt", &root.join("link-to-1"));
    std::fs::remove_file(root.join("2.txt")).expect("rm");
    std::fs::remove_file(root.join("skip.log")).expect("rm");
    std::fs::remove_file(root.join("keep.log")).expect("rm");
    std::fs::remove_dir_all(root.join("dir2")).expect("rm -r");
    write_file(root, "new.txt", b"a new file\n", 0o644, T0 + 300);
    write_file(root, "newdir/x.txt", b"x\n", 0o644, T0 + 300);
    write_file(root, "newdir/y/z.txt", b"z\n", 0o600, T0 + 300);
    fix_dir_times(root, T0 + 400);
}

/// Two pushes in a row against each server: the source tree is built before the first
/// and changed before the second; `first` and `second` build the commands.
pub(crate) fn push_twice(
    setup: impl Fn(&mut Fixture) + Sync,
    first: impl Fn(&Daemon, &Fixture) -> Rsync + Sync,
    second: impl Fn(&Daemon, &Fixture) -> Rsync + Sync,
) -> [Run; 2] {
    differential_steps(setup, 2, |i, d, f| {
        if i == 0 {
            source_tree(&src_dir(f));
            first(d, f)
        } else {
            change_tree(&src_dir(f));
            second(d, f)
        }
    })
}

/// The checks of a push case: each step the same for the client and the tree, the same
/// log, and stock took both pushes (exit 0), so the case did transfer something. Reports
/// every difference found, not only the first.
pub(crate) fn assert_same_pushes(runs: &[Run; 2], what: Compare) {
    let mut found = step_differences(runs, what);
    found.extend(log_difference(runs));
    for (i, s) in runs[0].steps.iter().enumerate() {
        if s.outcome.code != 0 {
            found.push(format!("stock failed step {i}: {:#?}", s.outcome));
        }
    }
    if runs[0].steps[0].tree.len() < 2 {
        found.push("stock received nothing".to_string());
    }
    assert!(found.is_empty(), "{}", found.join("\n"));
}

/// The reference push from the stock 3.5.0 client, then the same after changes: the
/// quick check skips what did not change, `--delete` removes what went, `-u` keeps the
/// newer pushed version.
#[test]
fn the_reference_push_and_a_re_push_after_changes() {
    let runs = push_twice(
        |_| {},
        |d, f| reference_push(Rsync::client(), d, f, &[]),
        |d, f| reference_push(Rsync::client(), d, f, &[]),
    );
    assert_same_pushes(&runs, Compare::ALL);
    let stock = &runs[0].steps[1].tree;
    assert!(!stock.contains_key("2.txt") && stock.contains_key("newdir/y/z.txt"));
}

/// The reference push and re-push, itemized (`-i`), with `extra` options.
fn itemized_case(extra: Vec<String>) -> impl FnOnce() {
    move || {
        let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
        let runs = push_twice(
            |_| {},
            |d, f| {
                let mut opts = vec!["-i"];
                opts.extend_from_slice(&extra);
                reference_push(Rsync::client(), d, f, &opts)
            },
            |d, f| {
                let mut opts = vec!["-i"];
                opts.extend_from_slice(&extra);
                reference_push(Rsync::client(), d, f, &opts)
            },
        );
        assert_same_pushes(&runs, Compare::ALL);
    }
}

/// The reference push and re-push at every protocol the daemon speaks.
#[test]
fn the_reference_push_at_every_protocol() {
    run_cases((27..=32).map(|p| {
        (
            format!("--protocol={p}"),
            itemized_case(vec![format!("--protocol={p}")]),
        )
    }));
}

/// The reference push and re-push with each compression: negotiated (`-z` alone, in the
/// reference options) and each `--zc` choice.
#[test]
fn the_reference_push_with_each_compression() {
    let cases = ["", "--zc=zlib", "--zc=zlibx", "--zc=zstd", "--zc=lz4"];
    run_cases(cases.map(|zc| {
        let extra = if zc.is_empty() {
            vec![]
        } else {
            vec![zc.to_string()]
        };
        (format!("-z {zc}"), itemized_case(extra))
    }));
}

/// The reference push and re-push with each checksum, with `-c` (the whole-file checksum
/// quick check, which sees the change that keeps size and mtime) and without.
#[test]
fn the_reference_push_with_each_checksum() {
    let mut cases = vec![("-c".to_string(), vec!["-c".to_string()])];
    for cc in ["md4", "md5", "xxh64", "xxh3", "xxh128"] {
        cases.push((format!("--cc={cc}"), vec![format!("--cc={cc}")]));
        cases.push((
            format!("-c --cc={cc}"),
            vec!["-c".to_string(), format!("--cc={cc}")],
        ));
    }
    run_cases(
        cases
            .into_iter()
            .map(|(name, extra)| (name, itemized_case(extra))),
    );
}

/// `Literal data: N bytes` of `--stats`.
pub(crate) fn literal_data(stdout: &str) -> u64 {
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("Literal data: "))
        .unwrap_or_else(|| panic!("no literal data line in {stdout}"));
    line.trim_end_matches(" bytes")
        .replace(',', "")
        .parse()
        .unwrap_or_else(|e| panic!("{line}: {e}"))
}

/// An 8 MiB file pushed, 4 KiB changed in its middle, pushed again with `--no-W`: both
/// servers' block sums let the client send only a few KiB, the same amount.
#[test]
fn a_4_kib_change_in_an_8_mib_file_sends_a_few_kib() {
    let big = |f: &Fixture| src_dir(f).join("big.bin");
    let runs = differential_steps(
        |_| {},
        2,
        |i, d, f| {
            let src = src_dir(f);
            if i == 0 {
                std::fs::create_dir_all(&src).expect("mkdir");
                write_file(&src, "big.bin", &pseudo_random(8 << 20, 42), 0o644, T0);
            } else {
                let mut data = std::fs::read(big(f)).expect("read");
                let mid = data.len() / 2 + 1234;
                data[mid..mid + 4096].copy_from_slice(&pseudo_random(4096, 43));
                write_file(&src, "big.bin", &data, 0o644, T0 + 10);
            }
            fix_dir_times(&src, T0);
            push_cmd(Rsync::client(), d, f, &["-a", "-i", "--stats", "--no-W"])
        },
    );
    assert_same_pushes(&runs, Compare::ALL);
    let literal = runs
        .each_ref()
        .map(|r| literal_data(&r.steps[1].outcome.stdout));
    for (r, l) in runs.iter().zip(literal) {
        assert!(l < 64 * 1024, "{:?}: literal data {l} bytes", r.kind);
    }
    assert_eq!(literal[0], literal[1], "literal data, stock vs ours");
}
