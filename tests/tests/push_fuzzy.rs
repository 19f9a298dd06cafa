//! `--fuzzy` pushes, against stock `rsync --daemon` and rsyncd-rs: a file renamed on the
//! client side is rebuilt from its old copy (only checksums travel), a similar name
//! serves as a delta basis, and `-yy` looks in a `--copy-dest` directory. The stock
//! client's itemized output and `--stats` figures and the resulting trees must agree;
//! the library client's push does the same against both daemons.

use std::path::Path;
use std::time::Duration;

use e2e::tree::{Compare, diff_trees, pseudo_random, write_file};
use e2e::{Daemon, Fixture, Rsync, Server};
use rsyncd_rs::client::{ConnectOptions, Password, Remote, parse_options, push};
use rsyncd_rs::engine::exit::ExitCode;

use crate::push::{T0, fix_dir_times, literal_data, push_cmd_to, src_dir};

/// What one stock-client push showed: exit code, itemized lines, literal and matched data.
#[derive(Debug, PartialEq, Eq)]
struct Shown {
    code: i32,
    items: Vec<String>,
    literal: u64,
    matched: u64,
}

fn matched_data(stdout: &str) -> u64 {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("Matched data: "))
        .map_or(0, |l| {
            l.trim_end_matches(" bytes")
                .replace(',', "")
                .parse()
                .unwrap()
        })
}

/// Pushes the source tree to `dest` with the stock client and `-a -i --stats` plus `opts`.
fn stock_push(d: &Daemon, f: &Fixture, opts: &[&str], dest: &str) -> Shown {
    fix_dir_times(&src_dir(f), T0);
    let mut all = vec!["-a", "-i", "--stats"];
    all.extend_from_slice(opts);
    let out = push_cmd_to(Rsync::client(), d, f, &all, dest).run();
    Shown {
        code: out.code,
        items: out
            .stdout
            .lines()
            .filter(|l| {
                let b = l.as_bytes();
                b.len() > 12 && b"<>ch.*".contains(&b[0]) && b"fdLDS".contains(&b[1])
            })
            .map(str::to_string)
            .collect(),
        literal: if out.code == 0 {
            literal_data(&out.stdout)
        } else {
            u64::MAX
        },
        matched: matched_data(&out.stdout),
    }
}

/// Runs `steps` (each changes the source, then pushes) against stock and ours on twin
/// fixtures; returns what each push showed, stock's first, and checks the module trees.
fn both(steps: impl Fn(&Daemon, &Fixture) -> Vec<Shown>) -> [Vec<Shown>; 2] {
    let mut shown = Vec::new();
    let mut modules = Vec::new();
    for kind in Server::BOTH {
        let f = Fixture::seed();
        std::fs::create_dir_all(src_dir(&f)).unwrap();
        let d = Daemon::start(kind, &f);
        let s = steps(&d, &f);
        for (i, p) in s.iter().enumerate() {
            assert_eq!(p.code, 0, "{kind:?} push {i}: {p:?}\n{}", d.log());
        }
        shown.push(s);
        modules.push(f);
    }
    // Directory times come from each source's own clock (the steps write into them).
    let diffs = diff_trees(
        &modules[0].module_dir(),
        &modules[1].module_dir(),
        Compare {
            dir_mtime: false,
            ..Compare::ALL
        },
    );
    assert!(diffs.is_empty(), "module trees differ: {diffs:#?}");
    let ours = shown.pop().unwrap();
    let stock = shown.pop().unwrap();
    [stock, ours]
}

fn rename(root: &Path, from: &str, to: &str) {
    std::fs::rename(root.join(from), root.join(to)).unwrap();
}

/// A 1 MiB file renamed on the client side: `-y` finds the old name by size and time, so
/// only checksums travel and the item is a new file.
#[test]
fn a_renamed_file_is_rebuilt_from_its_old_name() {
    let [stock, ours] = both(|d, f| {
        let src = src_dir(f);
        write_file(&src, "a.dat", &pseudo_random(1 << 20, 7), 0o644, T0);
        let first = stock_push(d, f, &[], "backup/fz/");
        rename(&src, "a.dat", "b.dat");
        vec![first, stock_push(d, f, &["-y"], "backup/fz/")]
    });
    eprintln!("rename: stock {:?}, ours {:?}", stock[1], ours[1]);
    assert_eq!(stock, ours, "stock (left) and ours (right) differ");
    assert_eq!(ours[1].items, ["<f+++++++++ b.dat"]);
    assert_eq!(ours[1].literal, 0);
    assert_eq!(ours[1].matched, 1 << 20);
}

/// A new name close to an old one (`report-2025.csv` beside `report-2024.csv`), with
/// changed content and time: the old file is the delta basis.
#[test]
fn a_similar_name_is_the_delta_basis() {
    let [stock, ours] = both(|d, f| {
        let src = src_dir(f);
        let mut data = pseudo_random(200 * 1024, 9);
        write_file(&src, "report-2024.csv", &data, 0o644, T0);
        write_file(
            &src,
            "zzz-unrelated.bin",
            &pseudo_random(5000, 3),
            0o644,
            T0,
        );
        let first = stock_push(d, f, &[], "backup/fz/");
        std::fs::remove_file(src.join("report-2024.csv")).unwrap();
        data[100_000..100_010].copy_from_slice(b"0123456789");
        data.extend_from_slice(b"one more line\n");
        write_file(&src, "report-2025.csv", &data, 0o644, T0 + 86_400);
        vec![first, stock_push(d, f, &["-y"], "backup/fz/")]
    });
    eprintln!("similar: stock {:?}, ours {:?}", stock[1], ours[1]);
    assert_eq!(stock, ours, "stock (left) and ours (right) differ");
    assert_eq!(ours[1].items, ["<f+++++++++ report-2025.csv"]);
    assert!(ours[1].literal < 8 * 1024, "{:?}", ours[1]);
    assert!(ours[1].matched > 190 * 1024, "{:?}", ours[1]);
}

/// `-yy --copy-dest=../old`: a new `y.dat` in an empty destination finds `../old/x.dat`
/// (FNAMECMP_FUZZY + 1); with one `y` it is sent whole. Stock 3.5.0's daemon lists the
/// basis directory under a sanitized name it then cannot stat ("file has vanished" in
/// its log) and sends the file whole too; its `--server` over a remote shell finds the
/// basis as we do (docs/ARCHITECTURE.md). The client's items and the trees agree.
#[test]
fn fuzzy_twice_searches_the_basis_directories() {
    let [stock, ours] = both(|d, f| {
        let src = src_dir(f);
        let mut data = pseudo_random(300 * 1024, 11);
        write_file(&src, "x.dat", &data, 0o644, T0);
        let first = stock_push(d, f, &[], "backup/old/");
        std::fs::remove_file(src.join("x.dat")).unwrap();
        data[5..15].copy_from_slice(b"abcdefghij");
        write_file(&src, "y.dat", &data, 0o644, T0 + 60);
        let once = stock_push(d, f, &["-y", "--copy-dest=../old"], "backup/new1/");
        let twice = stock_push(d, f, &["-yy", "--copy-dest=../old"], "backup/new2/");
        vec![first, once, twice]
    });
    eprintln!("-yy: stock {:?}, ours {:?}", stock[2], ours[2]);
    assert_eq!(
        stock[..2],
        ours[..2],
        "stock (left) and ours (right) differ"
    );
    assert_eq!(stock[2].items, ours[2].items);
    assert_eq!(ours[1].literal, 300 * 1024);
    assert_eq!(ours[2].items, ["<f+++++++++ y.dat"]);
    assert!(ours[2].literal < 4 * 1024, "{:?}", ours[2]);
    assert!(ours[2].matched > 290 * 1024, "{:?}", ours[2]);
    // Stock's daemon quirk; should a later stock find the basis, this says so.
    assert_eq!(stock[2].literal, 300 * 1024, "stock now finds the basis");
}

fn connect(f: &Fixture) -> ConnectOptions {
    ConnectOptions {
        password: Some(Password::File(f.password_file())),
        io_timeout: Some(Duration::from_secs(30)),
        ..ConnectOptions::default()
    }
}

fn opts(s: &str) -> rsyncd_rs::protocol::options::Options {
    parse_options(&s.split_whitespace().collect::<Vec<_>>())
        .unwrap()
        .options
}

/// The library client's push with `-yy --copy-dest=../old` into `dir/`: the daemon's
/// generator finds the old file in the basis directory, so far less than the file is
/// written (stock's daemon sends it whole, see above); then a file renamed inside `dir/`
/// pushed with `-y` is rebuilt from its old name by both daemons.
#[test]
fn the_library_client_pushes_with_fuzzy_and_a_basis_directory() {
    let mut written = Vec::new();
    for kind in Server::BOTH {
        let f = Fixture::seed();
        let src = src_dir(&f);
        let mut data = pseudo_random(512 * 1024, 13);
        write_file(&src, "old-name.dat", &data, 0o644, T0);
        let d = Daemon::start(kind, &f);
        let to = |p: &str| {
            Remote::parse(
                &format!("{}/{p}", d.url(Some("rsync_backup"), "backup")),
                873,
            )
            .unwrap()
        };
        let pushed = |o: &str, dest: &str| {
            let out = push(&to(dest), &connect(&f), &opts(o), &src, &["./"])
                .unwrap_or_else(|e| panic!("{kind:?}: {e}"));
            assert_eq!(out.code, ExitCode::OK, "{kind:?}: {:?}", out.lines);
            out.bytes_written
        };
        pushed("-a", "old/");
        std::fs::remove_file(src.join("old-name.dat")).unwrap();
        data[1000..1004].copy_from_slice(b"XXXX");
        write_file(&src, "new-name.dat", &data, 0o644, T0 + 5);
        let basis_dir = pushed("-a -yy --copy-dest=../old", "dir/");
        assert_eq!(
            std::fs::read(f.module_dir().join("dir/new-name.dat")).unwrap(),
            data,
            "{kind:?}"
        );
        rename(&src, "new-name.dat", "renamed.dat");
        let renamed = pushed("-a -y", "dir/");
        assert_eq!(
            std::fs::read(f.module_dir().join("dir/renamed.dat")).unwrap(),
            data,
            "{kind:?}"
        );
        assert!(
            renamed < 16 * 1024,
            "{kind:?}: rename wrote {renamed} bytes"
        );
        if kind == Server::Ours {
            assert!(basis_dir < 64 * 1024, "-yy wrote {basis_dir} bytes");
        } else {
            assert!(
                basis_dir > 512 * 1024,
                "stock now finds the basis: {basis_dir}"
            );
        }
        written.push((basis_dir, renamed));
    }
    eprintln!(
        "library push (-yy basis dir, -y rename) bytes written: stock {:?}, ours {:?}",
        written[0], written[1]
    );
}
