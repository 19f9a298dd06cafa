//! Path arguments that overlap or repeat (`-R ./ a`, `a a`, `a a/f`, `a/ a`): the file
//! list names a directory twice, the stock receiver keeps the first and clears the
//! others, and refuses a sub-list announced for a cleared one ("refusing flist for
//! cleared dir_ndx", protocol error). The sender must put a repeated directory's contents
//! in the first one's sub-list, as stock's does. Our sender serves a push of the native
//! client into stock rsyncd and a pull of the stock client from rsyncd-rs; both are
//! compared with stock doing the same, at protocol 30+ (incremental lists), with
//! `--no-inc-recursive` and at protocol 29.

use e2e::tree::{Compare, diff_trees, set_mtime, write_file};
use e2e::{Daemon, Fixture, Rsync, Server, run_cases};
use rsyncd_rs::client::{ConnectOptions, Password, Remote, parse_options, push};
use rsyncd_rs::engine::exit::ExitCode;

use crate::pull::{Client, Pull, pull, run_pulls};
use crate::pull_tree::reference_module;
use crate::push::{T0, fix_dir_times, source_tree, src_dir};

/// The option sets each case runs with: incremental lists, none, protocol 29.
const MODES: [&str; 3] = ["", "--no-inc-recursive", "--protocol=29"];

/// Overlapping sources of a push (relative to the source directory), with and without
/// `-R`.
const PUSHES: &[(&str, &[&str])] = &[
    ("-a -R", &["./", "dir2"]),
    ("-a -R", &["dir2", "dir2"]),
    ("-a -R", &["dir2", "dir2/sub/deep.txt"]),
    ("-a -R", &["dir2/sub/deep.txt", "dir2"]),
    ("-a -R", &["dir2/sub", "dir2", "dir2/sub/deep.txt", "./"]),
    ("-a", &["./", "dir2"]),
    ("-a", &["dir2", "dir2"]),
    ("-a", &["dir2/", "dir2"]),
];

/// A push by the library into stock rsyncd leaves what the stock client's push leaves.
#[test]
fn pushes_of_overlapping_paths_into_stock_rsyncd_match_the_stock_client() {
    let (fs, fo) = (Fixture::seed(), Fixture::seed());
    for f in [&fs, &fo] {
        source_tree(&src_dir(f));
        write_file(&src_dir(f), "dir2/sub/more/x.txt", b"x\n", 0o644, T0);
        fix_dir_times(&src_dir(f), T0);
    }
    let (ds, dd) = (
        Daemon::start(Server::Stock, &fs),
        Daemon::start(Server::Stock, &fo),
    );
    let mut cases = Vec::new();
    for (mode, (opts, paths)) in MODES
        .iter()
        .flat_map(|m| PUSHES.iter().map(move |p| (m, p)))
    {
        let words = format!("{opts} {mode}");
        let name = format!("{words} {}", paths.join(" "));
        let (fs, fo, ds, dd) = (&fs, &fo, &ds, &dd);
        cases.push((name.clone(), move || {
            for f in [fs, fo] {
                empty(&f.module_dir());
            }
            let out = Rsync::client()
                .args(words.split_whitespace())
                .arg("--password-file")
                .arg(fs.password_file().display().to_string())
                .args(paths.iter().copied())
                .arg(format!("{}/", ds.url(Some("rsync_backup"), "backup")))
                .cwd(&src_dir(fs))
                .run();
            assert_eq!(out.code, 0, "the stock client: {out:#?}");
            let args = parse_options(&words.split_whitespace().collect::<Vec<_>>()).unwrap();
            let connect = ConnectOptions {
                password: Some(Password::File(fo.password_file())),
                io_timeout: Some(std::time::Duration::from_secs(30)),
                max_protocol: args.protocol.unwrap_or(rsyncd_rs::PROTOCOL_VERSION),
                ..ConnectOptions::default()
            };
            let to = Remote::parse(&format!("{}/", dd.url(Some("rsync_backup"), "backup")), 873)
                .unwrap();
            let ours = push(&to, &connect, &args.options, &src_dir(fo), paths)
                .unwrap_or_else(|e| panic!("our push: {e}"));
            assert_eq!(ours.code, ExitCode::OK, "our push: {:?}", ours.lines);
            if !paths.contains(&"./") {
                // The module's own time is the clock's when `.` is not sent.
                for f in [fs, fo] {
                    set_mtime(&f.module_dir(), T0);
                }
            }
            let diff = diff_trees(&fs.module_dir(), &fo.module_dir(), Compare::ALL);
            assert!(diff.is_empty(), "{name}: {diff:#?}");
        }));
    }
    run_cases(cases);
}

/// Removes what a directory holds (the module directory itself keeps its owner).
fn empty(dir: &std::path::Path) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() && !p.is_symlink() {
            std::fs::remove_dir_all(&p).unwrap();
        } else {
            std::fs::remove_file(&p).unwrap();
        }
    }
}

/// Overlapping sources of a pull (under `rsync://HOST/`), with and without `-R`.
///
/// Not here: three or more arguments through one directory with implied directories
/// between them (`-R a/b a a/b/c/file.txt`). The tree is stock's, but stock's list names
/// some files more often than ours (it lists an implied directory again whenever the
/// previous argument's differs, and re-reads a duplicate after one that had no
/// contents), so the `total size` its log and `--stats` show is larger.
const PULLS: &[(&[&str], &[&str])] = &[
    (&["-a", "-i", "-R"], &["backup/./", "backup/sub"]),
    (&["-a", "-i", "-R"], &["backup/sub", "backup/sub"]),
    (
        &["-a", "-i", "-R"],
        &["backup/sub", "backup/sub/dir/deep.txt"],
    ),
    (
        &["-a", "-i", "-R"],
        &["backup/sub/dir/deep.txt", "backup/sub"],
    ),
    (&["-a", "-i"], &["backup/./", "backup/sub"]),
    (&["-a", "-i"], &["backup/sub", "backup/sub"]),
    (&["-a", "-i"], &["backup/sub/", "backup/sub"]),
];

/// The stock client pulling overlapping sources from rsyncd-rs gets what it gets from
/// stock rsyncd: the same tree, output, exit code and log lines.
#[test]
fn pulls_of_overlapping_paths_match_stock() {
    let mut cases: Vec<Pull> = Vec::new();
    for mode in MODES {
        for (opts, srcs) in PULLS {
            let mut opts = opts.to_vec();
            let client = match mode {
                "--protocol=29" => Client::stock_at(29),
                "" => Client::stock(),
                other => {
                    opts.push(other);
                    Client::stock()
                }
            };
            let name = format!("{} {}", opts.join(" "), srcs.join(" "));
            cases.push(
                Pull {
                    srcs: srcs.iter().map(|s| s.to_string()).collect(),
                    ..pull(&name, &opts, "")
                }
                .by(&client),
            );
        }
    }
    run_pulls(reference_module, cases);
}
