//! `-X` (xattrs), differential: a source tree with xattrs on files, a directory, a
//! hard link and (as root) a symlink is pushed, changed (a long value changed alone, a
//! name removed, one added) and pushed again, then pulled back, against stock
//! `rsync --daemon` and rsyncd-rs. The client's exit codes and itemized lines (the `x`
//! column), and every xattr of the module tree and of the pulled tree as
//! `getfattr -h -d -m - -R -e hex` shows them, must agree.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use e2e::compare::{Run, differential_steps, step_differences};
use e2e::tree::{Compare, set_mtime, write_file};
use e2e::{Daemon, Fixture, Rsync, is_root, old_client_or_skip, run_cases};

const T0: i64 = 1_700_000_000;

/// Every xattr beneath `dir` (symlinks' own), by relative path; the listing order of
/// `getfattr` follows the directory's, so entries are keyed and sorted here.
fn xattr_dump(dir: &Path) -> BTreeMap<String, Vec<String>> {
    let out = Command::new("getfattr")
        .args(["-h", "-d", "-m", "-", "-R", "-e", "hex", "."])
        .current_dir(dir)
        .output()
        .expect("getfattr (package attr) runs");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut map = BTreeMap::new();
    for block in text.split("\n\n") {
        let mut lines = block.lines().filter(|l| !l.is_empty());
        let Some(file) = lines.next().and_then(|l| l.strip_prefix("# file: ")) else {
            continue;
        };
        let mut attrs: Vec<String> = lines.map(str::to_string).collect();
        attrs.sort();
        map.insert(file.to_string(), attrs);
    }
    map
}

fn set(path: &Path, name: &str, value: &[u8]) {
    xattr::set(path, name, value)
        .unwrap_or_else(|e| panic!("setxattr {name} on {}: {e}", path.display()));
}

/// The source: short, exactly-32-byte and long values, many names on one file, a
/// directory's own, a hard link, and (as root) trusted.* on a file and on a symlink.
fn source(root: &Path) {
    write_file(root, "a.txt", b"alpha\n", 0o644, T0);
    write_file(root, "many.txt", b"many\n", 0o644, T0);
    write_file(root, "plain.txt", b"none\n", 0o644, T0);
    std::fs::create_dir_all(root.join("dir")).unwrap();
    write_file(root, "dir/in.txt", b"inside\n", 0o600, T0);
    let a = root.join("a.txt");
    set(&a, "user.short", b"s1");
    set(&a, "user.exact32", &[b'e'; 32]);
    set(&a, "user.long", &[b'L'; 100]);
    set(&a, "user.gone", b"to be removed");
    for i in 0..40 {
        set(
            &root.join("many.txt"),
            &format!("user.n{i:02}"),
            format!("value {i}").as_bytes(),
        );
    }
    set(&root.join("dir"), "user.dir", b"d");
    set(&root.join("dir/in.txt"), "user.in", &[b'I'; 200]);
    std::fs::hard_link(root.join("many.txt"), root.join("many-link.txt")).unwrap();
    std::os::unix::fs::symlink("a.txt", root.join("link")).unwrap();
    if is_root() {
        set(&a, "trusted.t", b"tv");
        xattr::set(root.join("link"), "trusted.lnk", b"lv").expect("trusted.* on a symlink");
    }
    // A fixed time for the transfer root, so its line does not depend on when the
    // module directory happened to be made.
    set_mtime(root, T0);
}

/// The change between the pushes: only a long value differs on a.txt (size and time
/// kept), one name goes, one comes.
fn change(root: &Path) {
    let a = root.join("a.txt");
    set(&a, "user.long", &[b'M'; 100]);
    xattr::remove(&a, "user.gone").unwrap();
    set(&root.join("plain.txt"), "user.new", &[b'N'; 40]);
}

fn push(client: Rsync, d: &Daemon, f: &Fixture, opts: &[&str]) -> Rsync {
    client
        .args(opts.iter().copied())
        .arg("--password-file")
        .arg(f.password_file().display().to_string())
        .arg("./")
        .arg(d.url(Some("rsync_backup"), "backup/"))
        .cwd(&f.dir().join("src"))
}

fn pull(client: Rsync, d: &Daemon, f: &Fixture, opts: &[&str]) -> Rsync {
    client
        .args(opts.iter().copied())
        .arg("--password-file")
        .arg(f.password_file().display().to_string())
        .arg(d.url(Some("rsync_backup"), "backup/"))
        .arg("pulled/")
        .cwd(f.dir())
}

/// Push, change, push again, pull; every difference between the two servers.
fn run(setup: fn(&mut Fixture), opts: &'static [&'static str]) -> ([Run; 2], Vec<String>) {
    let runs = differential_steps(setup, 3, |i, d, f| {
        let src = f.dir().join("src");
        match i {
            0 => {
                source(&src);
                push(Rsync::client(), d, f, opts)
            }
            1 => {
                change(&src);
                push(Rsync::client(), d, f, opts)
            }
            _ => pull(Rsync::client(), d, f, opts),
        }
    });
    let mut found = step_differences(&runs, Compare::ALL);
    for (what, dir) in [("module", None), ("pulled tree", Some("pulled"))] {
        let dump = |r: &Run| {
            let d = match dir {
                Some(sub) => r.fixture.dir().join(sub),
                None => r.module_dir(),
            };
            xattr_dump(&d)
        };
        let (s, o) = (dump(&runs[0]), dump(&runs[1]));
        if s != o {
            found.push(format!(
                "{what}: xattrs differ:\n stock {s:#?}\n ours {o:#?}"
            ));
        }
        if s.is_empty() {
            found.push(format!("{what}: stock kept no xattrs at all"));
        }
    }
    for (i, s) in runs[0].steps.iter().enumerate() {
        if s.outcome.code != 0 {
            found.push(format!("stock failed step {i}: {:#?}", s.outcome));
        }
    }
    (runs, found)
}

fn no_setup(_: &mut Fixture) {}

fn no_fake_super(f: &mut Fixture) {
    f.set_module("backup", "fake super", "no");
}

fn as_root(f: &mut Fixture) {
    f.set_module("backup", "fake super", "no");
    f.set_module("backup", "uid", "root");
    f.set_module("backup", "gid", "root");
}

type Case = (&'static str, fn(&mut Fixture), &'static [&'static str]);

const CASES: &[Case] = &[
    ("fake super, -aX", no_setup, &["-a", "-i", "-X"]),
    ("fake super, -aXH", no_setup, &["-a", "-i", "-X", "-H"]),
    (
        "fake super, -aXX (downgraded)",
        no_setup,
        &["-a", "-i", "-XX"],
    ),
    ("plain user, -aX", no_fake_super, &["-a", "-i", "-X"]),
    ("plain user, -aXH", no_fake_super, &["-a", "-i", "-X", "-H"]),
    // Without -o/-g, stock's fake super records uninitialised owners in %stat (the
    // upstream bug ARCHITECTURE.md describes): this one runs without fake super.
    (
        "plain user, -X -rt",
        no_fake_super,
        &["-r", "-t", "-i", "-X"],
    ),
];

const ROOT_CASES: &[Case] = &[
    ("root module, -aX", as_root, &["-a", "-i", "-X"]),
    ("root module, -aXXH", as_root, &["-a", "-i", "-XX", "-H"]),
];

/// Pushes and pulls with `-X` as the module's unprivileged user, with `fake super` on
/// (foreign namespaces under `user.rsync.`, `%stat`) and off (`user.*` only).
#[test]
fn xattrs_as_module_user() {
    run_cases(CASES.iter().map(|&(name, setup, opts)| {
        (name.to_string(), move || {
            let (_, found) = run(setup, opts);
            assert!(found.is_empty(), "{}", found.join("\n"));
        })
    }));
}

/// As root the module keeps every namespace but `system.*`, symlinks' own included.
#[test]
fn xattrs_as_root() {
    if !e2e::root_or_skip("a root module: trusted.* xattrs") {
        return;
    }
    run_cases(ROOT_CASES.iter().map(|&(name, setup, opts)| {
        (name.to_string(), move || {
            let (runs, found) = run(setup, opts);
            assert!(found.is_empty(), "{}", found.join("\n"));
            let dump = xattr_dump(&runs[1].module_dir());
            assert!(
                dump.get("link")
                    .is_some_and(|a| a.iter().any(|l| l.starts_with("trusted.lnk="))),
                "the symlink's own trusted.* arrived: {dump:#?}"
            );
        })
    }));
}

/// rsync 3.1.2's client pushes `-X` (protocol 31, no 3.5.0 bounds) and gets what it gets
/// from stock.
#[test]
fn an_old_client_pushes_xattrs() {
    let Some(old) = old_client_or_skip("3.1.2") else {
        return;
    };
    let runs = differential_steps(no_setup, 2, |i, d, f| {
        let src = f.dir().join("src");
        if i == 0 {
            source(&src);
        } else {
            change(&src);
        }
        push(Rsync::with_binary(old.clone()), d, f, &["-a", "-i", "-X"])
    });
    let mut found = step_differences(&runs, Compare::ALL);
    let (s, o) = (
        xattr_dump(&runs[0].module_dir()),
        xattr_dump(&runs[1].module_dir()),
    );
    if s != o {
        found.push(format!("xattrs differ:\n stock {s:#?}\n ours {o:#?}"));
    }
    assert!(found.is_empty(), "{}", found.join("\n"));
}

/// `refuse options = xattrs` refuses `-X` with stock's words on both servers.
#[test]
fn refused_xattrs() {
    let runs = differential_steps(
        |f| f.set_module("backup", "refuse options", "xattrs"),
        1,
        |_, d, f| {
            source(&f.dir().join("src"));
            push(Rsync::client(), d, f, &["-a", "-X"])
        },
    );
    let found = step_differences(&runs, Compare::ALL);
    assert!(found.is_empty(), "{}", found.join("\n"));
    let o = runs[1].last();
    assert!(
        o.code != 0 && o.stderr.contains("refuse --xattrs"),
        "{o:#?}"
    );
}
