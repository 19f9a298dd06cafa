//! `insecure links = yes` (rsync 3.5.0's per-module opt-out of symlink confinement),
//! differential: two modules over the same layout, one with the parameter and one
//! without, each holding symlinks planted by another user that lead out of the module
//! (relative, absolute, to a directory and to a file). The same pulls and pushes run
//! against stock rsyncd 3.5.0 and rsyncd-rs: exit codes, what arrived in the client's
//! destination, and the module and outside trees afterwards must agree. The opt-out
//! module follows the links out (reads and writes go through them); the other stays
//! confined.
//!
//! Only rsync 3.5.0 and later know the parameter (3.2.7 would ignore it and follow
//! everywhere), so the reference is a 3.5.0 daemon: the stock one when it is 3.5.0, or
//! `RSYNC_3_5_0`. Without one, ours is held to `EXPECTED`, the outcomes stock 3.5.0 gave
//! for these cases; it is checked against ours in any case, so the table cannot drift.

use std::collections::BTreeMap;
use std::path::Path;

use e2e::tree::{snapshot, write_file};
use e2e::{Daemon, Fixture, Rsync, Server, old_client, root_or_skip, run_cases};

const T0: i64 = 1_700_000_000;
const SECRET: &[u8] = b"OUT-OF-MODULE\n";
const PWNED: &[u8] = b"WROTE-THROUGH\n";

/// The two modules: (name, `insecure links`).
const MODULES: [(&str, &str); 2] = [("ins", "yes"), ("conf", "no")];

/// A case: its name, and the client's arguments given the module URL, the client's
/// scratch source and destination directories.
type Args = fn(&str, &Path, &Path) -> Vec<String>;

fn s(p: &Path) -> String {
    format!("{}/", p.display())
}

const CASES: &[(&str, Args)] = &[
    ("pull -k", |url, _, dst| {
        vec![
            "-rt".into(),
            "--copy-dirlinks".into(),
            format!("{url}/"),
            s(dst),
        ]
    }),
    ("pull -L", |url, _, dst| {
        vec!["-rt".into(), "-L".into(), format!("{url}/"), s(dst)]
    }),
    ("pull --copy-unsafe-links", |url, _, dst| {
        vec![
            "-rt".into(),
            "--copy-unsafe-links".into(),
            format!("{url}/"),
            s(dst),
        ]
    }),
    ("pull plain", |url, _, dst| {
        vec!["-rt".into(), format!("{url}/"), s(dst)]
    }),
    ("pull link/ (relative)", |url, _, dst| {
        vec!["-rt".into(), format!("{url}/rel/"), s(dst)]
    }),
    ("pull link/ (absolute)", |url, _, dst| {
        vec!["-rt".into(), format!("{url}/abs/"), s(dst)]
    }),
    ("push -K", |url, src, _| {
        vec![
            "-rt".into(),
            "--keep-dirlinks".into(),
            s(src),
            format!("{url}/"),
        ]
    }),
    ("push plain", |url, src, _| {
        vec!["-rt".into(), s(src), format!("{url}/")]
    }),
    ("push into link/ (relative)", |url, src, _| {
        vec!["-rt".into(), s(&src.join("rel")), format!("{url}/rel/")]
    }),
    ("push into link/ (absolute)", |url, src, _| {
        vec!["-rt".into(), s(&src.join("abs")), format!("{url}/abs/")]
    }),
    ("push --compare-dest through a link", |url, src, _| {
        vec![
            "-rt".into(),
            "--checksum".into(),
            "--compare-dest=/rel".into(),
            s(&src.join("same")),
            format!("{url}/"),
        ]
    }),
];

/// What stock rsyncd 3.5.0 gave, per case and module: (exit code, whether the link was
/// followed out of the module: the outside file arrived in a pull, a pushed file
/// landed outside, or the compare-dest basis outside was found).
const EXPECTED: &[(&str, &str, i32, bool)] = &[
    ("pull -k", "ins", 0, true),
    ("pull -k", "conf", 23, false),
    ("pull -L", "ins", 0, true),
    ("pull -L", "conf", 23, false),
    ("pull --copy-unsafe-links", "ins", 0, true),
    ("pull --copy-unsafe-links", "conf", 23, false),
    ("pull plain", "ins", 0, false),
    ("pull plain", "conf", 0, false),
    ("pull link/ (relative)", "ins", 0, true),
    ("pull link/ (relative)", "conf", 23, false),
    ("pull link/ (absolute)", "ins", 0, true),
    ("pull link/ (absolute)", "conf", 23, false),
    ("push -K", "ins", 0, true),
    ("push -K", "conf", 23, false),
    ("push plain", "ins", 0, false),
    ("push plain", "conf", 0, false),
    ("push into link/ (relative)", "ins", 0, true),
    ("push into link/ (relative)", "conf", 3, false),
    ("push into link/ (absolute)", "ins", 0, true),
    ("push into link/ (absolute)", "conf", 3, false),
    ("push --compare-dest through a link", "ins", 0, true),
    ("push --compare-dest through a link", "conf", 0, false),
];

/// What one run left: exit code, whether it followed a link out, and the trees (the
/// client's destination, the module, the outside directory) by name as kind and
/// content.
#[derive(Debug, PartialEq, Eq)]
struct Run {
    code: i32,
    followed: bool,
    dest: Trees,
    module: Trees,
    outside: Trees,
}

type Trees = BTreeMap<String, (char, Vec<u8>)>;

/// `root`'s entries; the scratch directory `base` in a link's target reads `BASE`, so
/// two fixtures compare.
fn flat(root: &Path, base: &Path) -> Trees {
    if !root.exists() {
        return Trees::new();
    }
    let base = base.display().to_string();
    snapshot(root)
        .into_iter()
        .map(|(n, e)| {
            let content = String::from_utf8_lossy(&e.content).replace(&base, "BASE");
            (n, (e.kind, content.into_bytes()))
        })
        .collect()
}

/// The layout, made afresh under `base`: `MOD/rel` → `../outside_MOD`, `MOD/abs` → its
/// absolute path, `MOD/file` → the outside file, `MOD/inside/f`; all links owned by
/// nobody (another user than the daemon's root, as an attacker's plant would be).
fn plant(base: &Path, module: &str) {
    let m = base.join(module);
    let out = base.join(format!("outside_{module}"));
    for d in [&m, &out] {
        let _ = std::fs::remove_dir_all(d);
    }
    write_file(&out, "secret.txt", SECRET, 0o644, T0);
    write_file(&m, "inside/f", b"in module\n", 0o644, T0);
    let nobody = nix::unistd::User::from_name("nobody")
        .ok()
        .flatten()
        .map(|u| u.uid);
    for (name, target) in [
        ("rel", format!("../outside_{module}")),
        ("abs", out.display().to_string()),
        ("file", format!("../outside_{module}/secret.txt")),
    ] {
        let link = m.join(name);
        std::os::unix::fs::symlink(&target, &link).unwrap();
        nix::unistd::fchownat(
            nix::fcntl::AT_FDCWD,
            &link,
            nobody,
            None,
            nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .unwrap();
    }
}

/// The client's source: `rel/pwned` and `abs/pwned` (a push of the top writes through
/// the links with `-K`), and `same/secret.txt` (the outside file's content, for
/// `--compare-dest`).
fn source(src: &Path) {
    let _ = std::fs::remove_dir_all(src);
    write_file(src, "rel/pwned", PWNED, 0o644, T0);
    write_file(src, "abs/pwned", PWNED, 0o644, T0);
    write_file(src, "same/secret.txt", SECRET, 0o644, T0);
}

fn run_one(d: &Daemon, f: &Fixture, case: &str, args: Args, module: &str) -> Run {
    let base = f.dir();
    plant(base, module);
    let src = base.join("client_src");
    let dst = base.join("client_dst");
    source(&src);
    let _ = std::fs::remove_dir_all(&dst);
    std::fs::create_dir_all(&dst).unwrap();
    let out = Rsync::client()
        .args(args(&d.url(None, module), &src, &dst))
        .run();
    let outside = base.join(format!("outside_{module}"));
    let dest = flat(&dst, base);
    let outside_tree = flat(&outside, base);
    let module_tree = flat(&base.join(module), base);
    let followed = if case.starts_with("pull") {
        dest.values().any(|(_, c)| c == SECRET)
    } else if case.contains("compare-dest") {
        // The basis through the link matched: nothing was transferred.
        !module_tree.contains_key("secret.txt")
    } else {
        outside_tree.contains_key("pwned")
    };
    Run {
        code: out.code,
        followed,
        dest,
        module: module_tree,
        outside: outside_tree,
    }
}

/// A fixture with the two modules, as root (`uid = 0` keeps the links foreign-owned
/// to the daemon, as in rsync's own insecure-links tests).
fn fixture() -> Fixture {
    let mut f = Fixture::seed();
    for (name, insecure) in MODULES {
        let path = f.dir().join(name).display().to_string();
        f.add_module(
            name,
            &[
                ("path", path.as_str()),
                ("use chroot", "no"),
                ("read only", "no"),
                ("uid", "0"),
                ("gid", "0"),
                ("munge symlinks", "no"),
                ("insecure links", insecure),
                // The seed's global `auth users` would ask for a password.
                ("auth users", ""),
                ("hosts allow", "127.0.0.1"),
            ],
        );
    }
    f
}

#[test]
fn insecure_links_follows_out_of_its_module_as_stock_3_5_0_does() {
    if !root_or_skip("the planted links belong to another user and the modules run as root") {
        return;
    }
    let f = fixture();
    let ours = Daemon::start(Server::Ours, &f);
    // The reference needs 3.5.0: older daemons do not know the parameter. It gets a
    // scratch directory of its own (its own pid file).
    let g = fixture();
    let stock = old_client("3.5.0").map(|_| Daemon::start(Server::Old("3.5.0"), &g));
    if stock.is_none() {
        eprintln!(
            "no rsync 3.5.0 (stock client or RSYNC_3_5_0): ours is checked against the \
             recorded outcomes of stock 3.5.0 only"
        );
    }
    let mut cases = Vec::new();
    for &(case, args) in CASES {
        for (module, _) in MODULES {
            let (f, g, ours, stock) = (&f, &g, &ours, stock.as_ref());
            cases.push((format!("{case} [{module}]"), move || {
                let got = run_one(ours, f, case, args, module);
                let want = EXPECTED
                    .iter()
                    .find(|e| e.0 == case && e.1 == module)
                    .unwrap_or_else(|| panic!("no expected outcome for {case} [{module}]"));
                if let Some(stock) = stock {
                    let reference = run_one(stock, g, case, args, module);
                    assert_eq!(
                        (reference.code, reference.followed),
                        (want.2, want.3),
                        "stock 3.5.0 no longer gives the recorded outcome"
                    );
                    if module == "ins" {
                        assert_eq!(got, reference, "ours (left) and stock 3.5.0 (right) differ");
                    } else {
                        // The confined module keeps its known differences (what is
                        // reported for a link leading out, and stock's sender losing
                        // the rest of a directory after a refused one: `pull_safety`).
                        assert_eq!(
                            (got.code, got.followed, &got.module, &got.outside),
                            (
                                reference.code,
                                reference.followed,
                                &reference.module,
                                &reference.outside
                            ),
                            "ours (left) and stock 3.5.0 (right) differ"
                        );
                    }
                }
                assert_eq!(
                    (got.code, got.followed),
                    (want.2, want.3),
                    "(exit code, followed out of the module) of ours: {got:?}"
                );
            }));
        }
    }
    run_cases(cases);
}

/// The daemon names each module with the opt-out when it starts (stock says nothing).
#[test]
fn startup_warns_about_each_module_with_insecure_links() {
    let mut f = Fixture::seed();
    let path = f.dir().join("backup").display().to_string();
    f.add_module(
        "open",
        &[("path", path.as_str()), ("insecure links", "yes")],
    );
    f.add_module("shut", &[("path", path.as_str()), ("insecure links", "no")]);
    let port = e2e::free_port();
    let err_path = f.dir().join("daemon.stderr");
    let mut child = e2e::daemon_command(Server::Ours, &f, port, &["--no-detach"])
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !e2e::is_listening_by(child.id(), port) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let _ = child.kill();
    let _ = child.wait();
    let err = std::fs::read_to_string(&err_path).unwrap();
    let warnings: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("insecure links"))
        .collect();
    assert_eq!(warnings.len(), 1, "{err}");
    assert!(
        warnings[0].contains("module [open] has `insecure links = yes`")
            && warnings[0].contains("out of the module"),
        "{err}"
    );
    assert!(!err.contains("not applied yet"), "{err}");
}
