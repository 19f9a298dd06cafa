//! `-A` (POSIX ACLs), differential: a source tree with named user and group entries,
//! masks, a mask without named entries and a directory's default ACL is pushed, changed
//! (an ACL removed, one changed, a default ACL removed, one added) and pushed again,
//! then pulled back, against stock `rsync --daemon` and rsyncd-rs. The client's exit
//! codes and itemized lines (the `a` column), every ACL of the module tree and of the
//! pulled tree as `getfacl -R -p` shows them, and their xattrs as `getfattr -d -m -`
//! shows them (fake super keeps ACLs in `user.rsync.%aacl`/`%dacl`) must agree.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use e2e::compare::{Run, differential_steps, step_differences};
use e2e::tree::{Compare, set_mtime, write_file};
use e2e::{Daemon, Fixture, Rsync, old_client_or_skip, run_cases};

const T0: i64 = 1_700_000_000;

/// Output of a command run in `dir`, split into blocks per file (`# file: NAME` first),
/// keyed by name with each block's lines sorted.
fn dump(dir: &Path, cmd: &str, args: &[&str]) -> BTreeMap<String, Vec<String>> {
    let out = Command::new(cmd)
        .args(args)
        .arg(".")
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("{cmd} runs (package acl/attr): {e}"));
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

/// Every ACL beneath `dir` (symlinks are skipped by getfacl -R -p without -L).
fn acl_dump(dir: &Path) -> BTreeMap<String, Vec<String>> {
    dump(dir, "getfacl", &["-R", "--absolute-names", "-p"])
}

/// Every xattr beneath `dir` (fake super's `%aacl`/`%dacl` among them).
fn xattr_dump(dir: &Path) -> BTreeMap<String, Vec<String>> {
    dump(dir, "getfattr", &["-h", "-d", "-m", "-", "-R", "-e", "hex"])
}

fn setfacl(path: &Path, args: &[&str]) {
    let st = Command::new("setfacl")
        .args(args)
        .arg(path)
        .status()
        .expect("setfacl (package acl) runs");
    assert!(st.success(), "setfacl {args:?} {}", path.display());
}

/// A uid and a gid with names on this system and one of each without (ACL entries name
/// ids, which travel as names unless `--numeric-ids`).
const NAMED_USER: &str = "nobody";
const BARE_ID: &str = "54321";

fn named_group() -> String {
    e2e::fixture::nobody_group().to_string()
}

/// The source: named user and group entries with a mask on a file, a mask without named
/// entries, a directory with a default ACL and a file inside with a named group, a file
/// without an extended ACL, a symlink.
fn source(root: &Path) {
    write_file(root, "a.txt", b"alpha\n", 0o640, T0);
    write_file(root, "mask-only.txt", b"mask\n", 0o664, T0);
    write_file(root, "plain.txt", b"none\n", 0o644, T0);
    write_file(root, "later.txt", b"later\n", 0o644, T0);
    std::fs::create_dir_all(root.join("dir")).unwrap();
    write_file(root, "dir/in.txt", b"inside\n", 0o660, T0);
    std::fs::create_dir_all(root.join("undef")).unwrap();
    let g = named_group();
    setfacl(
        &root.join("a.txt"),
        &[
            "-m",
            &format!("u:{NAMED_USER}:rw-,u:{BARE_ID}:r--,g:{g}:r--,g:{BARE_ID}:rw-,m::rw-"),
        ],
    );
    setfacl(&root.join("mask-only.txt"), &["-m", "m::r--"]);
    setfacl(&root.join("dir"), &["-m", &format!("u:{NAMED_USER}:rwx")]);
    setfacl(
        &root.join("dir"),
        &["-d", "-m", &format!("u:{NAMED_USER}:rwx,g:{g}:r-x,o::---")],
    );
    setfacl(&root.join("dir/in.txt"), &["-m", &format!("g:{g}:rw-")]);
    std::os::unix::fs::symlink("a.txt", root.join("link")).unwrap();
    for d in [root.join("dir"), root.join("undef")] {
        set_mtime(&d, T0);
    }
    set_mtime(root, T0);
}

/// The change between the pushes: a.txt loses its ACL, dir/in.txt's named group gets
/// other perms, dir loses its default ACL, later.txt and undef/ gain ACLs; sizes and
/// times stay, so only the ACL column tells.
fn change(root: &Path) {
    setfacl(&root.join("a.txt"), &["-b"]);
    setfacl(
        &root.join("dir/in.txt"),
        &["-m", &format!("g:{}:r--", named_group())],
    );
    setfacl(&root.join("dir"), &["-k"]);
    setfacl(
        &root.join("later.txt"),
        &["-m", &format!("u:{NAMED_USER}:r--")],
    );
    setfacl(
        &root.join("undef"),
        &["-d", "-m", &format!("u:{BARE_ID}:r-x")],
    );
    for (f, t) in [("a.txt", T0), ("dir/in.txt", T0), ("later.txt", T0)] {
        set_mtime(&root.join(f), t);
    }
    for d in [root.join("dir"), root.join("undef")] {
        set_mtime(&d, T0);
    }
    set_mtime(root, T0);
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

/// Compares the ACL and xattr dumps of the module and the pulled tree.
fn compare_dumps(runs: &[Run; 2], found: &mut Vec<String>, pulled: bool) {
    let mut places = vec![("module", None)];
    if pulled {
        places.push(("pulled tree", Some("pulled")));
    }
    for (what, dir) in places {
        let at = |r: &Run| match dir {
            Some(sub) => r.fixture.dir().join(sub),
            None => r.module_dir(),
        };
        for (kind, f) in [
            (
                "ACLs",
                acl_dump as fn(&Path) -> BTreeMap<String, Vec<String>>,
            ),
            ("xattrs", xattr_dump),
        ] {
            let (s, o) = (f(&at(&runs[0])), f(&at(&runs[1])));
            if s != o {
                found.push(format!(
                    "{what}: {kind} differ:\n stock {s:#?}\n ours {o:#?}"
                ));
            }
        }
    }
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
    compare_dumps(&runs, &mut found, true);
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
    ("fake super, -aA", no_setup, &["-a", "-i", "-A"]),
    ("fake super, -aAX", no_setup, &["-a", "-i", "-A", "-X"]),
    (
        "fake super, -aAXH",
        no_setup,
        &["-a", "-i", "-A", "-X", "-H"],
    ),
    ("plain user, -aA", no_fake_super, &["-a", "-i", "-A"]),
    ("plain user, -aAX", no_fake_super, &["-a", "-i", "-A", "-X"]),
    // -A without -o/-g still sends the id lists; -A implies -p.
    ("plain user, -rtA", no_fake_super, &["-r", "-t", "-i", "-A"]),
    (
        "plain user, -aA --no-inc-recursive",
        no_fake_super,
        &["-a", "-i", "-A", "--no-inc-recursive"],
    ),
    (
        "plain user, -aA --numeric-ids",
        no_fake_super,
        &["-a", "-i", "-A", "--numeric-ids"],
    ),
];

const ROOT_CASES: &[Case] = &[
    ("root module, -aA", as_root, &["-a", "-i", "-A"]),
    (
        "root module, -aAXH",
        as_root,
        &["-a", "-i", "-A", "-X", "-H"],
    ),
    (
        "root module, -aA --no-inc-recursive",
        as_root,
        &["-a", "-i", "-A", "--no-inc-recursive"],
    ),
    (
        "root module, -aA --numeric-ids --no-inc-recursive",
        as_root,
        &["-a", "-i", "-A", "--numeric-ids", "--no-inc-recursive"],
    ),
];

/// Pushes and pulls with `-A` as the module's unprivileged user, with `fake super` on
/// (ACLs in `user.rsync.%aacl`/`%dacl`) and off (the kernel's ACLs).
#[test]
fn acls_as_module_user() {
    run_cases(CASES.iter().map(|&(name, setup, opts)| {
        (name.to_string(), move || {
            let (_, found) = run(setup, opts);
            assert!(found.is_empty(), "{}", found.join("\n"));
        })
    }));
}

/// As root, ids and names as a privileged receiver maps them.
#[test]
fn acls_as_root() {
    if !e2e::root_or_skip("a root module: ACLs of any uid") {
        return;
    }
    run_cases(ROOT_CASES.iter().map(|&(name, setup, opts)| {
        (name.to_string(), move || {
            let (runs, found) = run(setup, opts);
            assert!(found.is_empty(), "{}", found.join("\n"));
            let acls = acl_dump(&runs[1].module_dir());
            assert!(
                acls.get("./dir/in.txt")
                    .is_some_and(|a| a.iter().any(|l| l.starts_with("group:"))),
                "the named group arrived: {acls:#?}"
            );
        })
    }));
}

/// rsync 3.1.2's client pushes `-A` (protocol 31) and gets what it gets from stock.
#[test]
fn an_old_client_pushes_acls() {
    let Some(old) = old_client_or_skip("3.1.2") else {
        return;
    };
    let runs = differential_steps(no_fake_super, 2, |i, d, f| {
        let src = f.dir().join("src");
        if i == 0 {
            source(&src);
        } else {
            change(&src);
        }
        push(Rsync::with_binary(old.clone()), d, f, &["-a", "-i", "-A"])
    });
    let mut found = step_differences(&runs, Compare::ALL);
    compare_dumps(&runs, &mut found, false);
    assert!(found.is_empty(), "{}", found.join("\n"));
}

/// `refuse options = acls` refuses `-A` with stock's words on both servers.
#[test]
fn refused_acls() {
    let runs = differential_steps(
        |f| f.set_module("backup", "refuse options", "acls"),
        1,
        |_, d, f| {
            source(&f.dir().join("src"));
            push(Rsync::client(), d, f, &["-a", "-A"])
        },
    );
    let found = step_differences(&runs, Compare::ALL);
    assert!(found.is_empty(), "{}", found.join("\n"));
    let o = runs[1].last();
    assert!(o.code != 0 && o.stderr.contains("refuse --acls"), "{o:#?}");
}

/// Below protocol 30 both servers refuse `-A` with stock's words.
#[test]
fn acls_need_protocol_30() {
    let runs = differential_steps(no_fake_super, 1, |_, d, f| {
        source(&f.dir().join("src"));
        push(Rsync::client(), d, f, &["-a", "-A", "--protocol=29"])
    });
    let found = step_differences(&runs, Compare::ALL);
    assert!(found.is_empty(), "{}", found.join("\n"));
    let o = runs[1].last();
    assert!(
        o.code == 2 && o.stderr.contains("--acls requires protocol 30"),
        "{o:#?}"
    );
}

/// rsyncd-rs's own client carries `-A` both ways: it pushes and pulls the tree against
/// both servers, and what lands agrees.
#[test]
fn our_client_carries_acls() {
    let ours = || Rsync::with_binary(e2e::ours_bin());
    let opts: &[&str] = &["-a", "-A"];
    // Named from the fixture's directory: rsyncd-rs's client does not take `./` as a
    // source (a separate issue).
    let push = |c: Rsync, d: &Daemon, f: &Fixture, opts: &[&str]| {
        c.args(opts.iter().copied())
            .arg("--password-file")
            .arg(f.password_file().display().to_string())
            .arg("src/")
            .arg(d.url(Some("rsync_backup"), "backup/"))
            .cwd(f.dir())
    };
    let runs = differential_steps(no_fake_super, 3, |i, d, f| {
        let src = f.dir().join("src");
        match i {
            0 => {
                source(&src);
                push(ours(), d, f, opts)
            }
            1 => {
                change(&src);
                push(ours(), d, f, opts)
            }
            _ => pull(ours(), d, f, opts),
        }
    });
    let mut found = step_differences(&runs, Compare::ALL);
    compare_dumps(&runs, &mut found, true);
    let pulled = acl_dump(&runs[1].fixture.dir().join("pulled"));
    if !pulled
        .get("./dir/in.txt")
        .is_some_and(|a| a.iter().any(|l| l.starts_with("group:")))
    {
        found.push(format!(
            "the pull lost dir/in.txt's named group: {pulled:#?}"
        ));
    }
    assert!(found.is_empty(), "{}", found.join("\n"));
}

/// Under fake super with `-AX`, a file whose ACL stays while one of its xattrs changes
/// keeps its `user.rsync.%aacl`. Stock's xattr step removes it and its ACL step, having
/// read the ACL before, does not write it again (the spec's §5.2 quirk); ours exempts
/// `%aacl`/`%dacl` from the removal as the spec recommends (ARCHITECTURE.md).
#[test]
fn fake_super_keeps_acls_through_an_xattr_change() {
    let runs = differential_steps(no_setup, 2, |i, d, f| {
        let src = f.dir().join("src");
        let keep = src.join("keep.txt");
        if i == 0 {
            write_file(&src, "keep.txt", b"keep\n", 0o640, T0);
            setfacl(&keep, &["-m", &format!("u:{NAMED_USER}:rwx")]);
            xattr::set(&keep, "user.v", b"1").expect("user.v");
        } else {
            xattr::set(&keep, "user.v", b"2").expect("user.v");
        }
        set_mtime(&src, T0);
        push(Rsync::client(), d, f, &["-a", "-i", "-A", "-X"])
    });
    let ours = xattr_dump(&runs[1].module_dir());
    let stock = xattr_dump(&runs[0].module_dir());
    let kept = |d: &BTreeMap<String, Vec<String>>| {
        d.get("keep.txt")
            .is_some_and(|a| a.iter().any(|l| l.starts_with("user.rsync.%aacl=")))
    };
    assert!(
        kept(&ours),
        "ours lost the stored ACL: {ours:#?}\nstock, for reference: {stock:#?}"
    );
    assert_eq!(runs[1].last().code, 0, "{:#?}", runs[1].last());
}

/// The id lists after a non-incremental list: the client's `--numeric-ids` sends none
/// (and a server reads none), with `-A` or only `-o`/`-g`; a push and a pull both
/// finish as stock's do instead of waiting for lists that never come.
#[test]
fn numeric_ids_without_inc_recursion() {
    run_cases(
        [
            &["-a", "-i", "--numeric-ids", "--no-inc-recursive"][..],
            &["-a", "-i", "-A", "--numeric-ids", "--no-inc-recursive"][..],
        ]
        .map(|opts| {
            (opts.join(" "), move || {
                let runs = differential_steps(no_fake_super, 2, |i, d, f| {
                    let mut c = Rsync::client().timeout(std::time::Duration::from_secs(30));
                    c = c.args(opts.iter().copied());
                    if i == 0 {
                        source(&f.dir().join("src"));
                        push(c, d, f, &[])
                    } else {
                        pull(c, d, f, &[])
                    }
                });
                let found = step_differences(&runs, Compare::ALL);
                assert!(found.is_empty(), "{}", found.join("\n"));
                for s in &runs[1].steps {
                    assert_eq!(s.outcome.code, 0, "{:#?}", s.outcome);
                }
            })
        }),
    );
}
