//! Symlinks pushed into a module, differential: what the daemon stores as their targets.
//! A module not chrooted at its root (`use chroot = no`, or a chroot with an inner
//! `/./` path) sanitizes the targets it does not munge: an absolute target is made
//! relative and `..` may climb no higher than the transfer root from the link's
//! directory (upstream's sanitize_paths, as rsync's own `variety` test finds). A module
//! chrooted at its root keeps them as sent, and `munge symlinks` (the default without a
//! chroot) puts `/rsyncd-munged/` in front instead. Each case pushes the same links to
//! both daemons, twice (the second push must find the stored links up to date), and
//! compares the client's view, the module trees and the logs.

use std::path::Path;

use e2e::compare::{assert_same_run_log, assert_same_steps, differential_steps};
use e2e::tree::{Compare, Snapshot, write_file};
use e2e::{Fixture, Rsync, is_root, ours_is_stock, root_or_skip, run_cases};

use crate::push::{T0, fix_dir_times, push_cmd_to, src_dir, symlink};

/// Links whose targets are absolute, climb out of the module, stay inside it, or carry
/// `//` and `.` components, at the transfer root and one and two directories down.
fn link_tree(root: &Path) {
    write_file(root, "dir1/a.txt", b"alpha\n", 0o644, T0);
    for (name, target) in [
        ("abs", "/tmp/x"),
        ("slash", "/"),
        ("up2", "../../above/a_file"),
        ("dotdot", ".."),
        ("inside", "dir1/a.txt"),
        ("dots", "a//b/./c"),
        ("mid", "dir1/../../x"),
        ("trailing", "dir1/"),
        ("dir1/up1", "../a.txt"),
        ("dir1/up2", "../../x"),
        ("dir1/dot-x", "./x"),
        ("dir1/up-slash", "../"),
        ("dir1/d2/up3", "../../../x"),
        ("dir1/d2/up2", "../../a.txt"),
        ("dir1/d2/abs-up", "/../x"),
        ("dir1/d2/dots", "..//./../dir1//a.txt"),
    ] {
        let link = root.join(name);
        std::fs::create_dir_all(link.parent().expect("a parent")).expect("mkdir");
        symlink(target, &link);
    }
    fix_dir_times(root, T0 + 100);
}

/// The symlink targets of a tree, by name (with `fake super` they are the content of the
/// plain files standing in for the links).
fn targets(tree: &Snapshot) -> Vec<(String, String)> {
    tree.iter()
        .filter(|(name, e)| e.kind == 'l' || (e.kind == 'f' && name.as_str() != "dir1/a.txt"))
        .map(|(name, e)| {
            (
                name.clone(),
                String::from_utf8_lossy(&e.content).into_owned(),
            )
        })
        .collect()
}

/// Pushes the link tree with `-a -i` into `dest` of the reference module set up with
/// `params` (and `fake super = no` unless `params` says otherwise), twice; checks both
/// daemons agree, and that stock stored `abs` as `want_abs`, so the case shows which
/// treatment it exercises.
fn case(
    params: &'static [(&'static str, &'static str)],
    dest: &'static str,
    want_abs: &'static str,
) -> impl FnOnce() {
    move || {
        let runs = differential_steps(
            |f| {
                f.set_module("backup", "fake super", "no");
                for (k, v) in params {
                    let v = v.replace("SCRATCH", &f.dir().display().to_string());
                    f.set_module("backup", k, &v);
                }
                // The destination's directories exist beforehand with a fixed mtime:
                // created by the push, a parent's mtime would be the second each side's
                // push ran in, which the two sides running side by side may not share.
                let inner = dest.trim_start_matches("backup/").trim_end_matches('/');
                if !inner.is_empty() {
                    let mut at = f.module_dir();
                    for part in inner.split('/') {
                        at = at.join(part);
                        make_owned_dir(&at);
                    }
                    let mut at = f.module_dir();
                    for part in inner.split('/') {
                        at = at.join(part);
                        e2e::tree::set_mtime(&at, 1_700_000_000);
                    }
                }
            },
            2,
            |i, d, f| {
                if i == 0 {
                    link_tree(&src_dir(f));
                }
                push_cmd_to(Rsync::client(), d, f, &["-a", "-i"], dest)
            },
        );
        assert_same_steps(&runs, Compare::ALL);
        assert_same_run_log(&runs);
        let stock = &runs[0].steps[0];
        assert_eq!(stock.outcome.code, 0, "{:#?}", stock.outcome);
        let abs = dest.trim_start_matches("backup/").to_string() + "abs";
        let got = targets(&stock.tree)
            .into_iter()
            .find(|(name, _)| *name == abs)
            .map(|(_, t)| t);
        assert_eq!(
            got.as_deref(),
            Some(want_abs),
            "stock: {:#?}",
            targets(&stock.tree)
        );
    }
}

/// A directory in the module the module's user may write (nobody, when root).
fn make_owned_dir(dir: &Path) {
    std::fs::create_dir_all(dir).expect("mkdir");
    if is_root() {
        let nobody = nix::unistd::User::from_name("nobody")
            .ok()
            .flatten()
            .expect("user nobody");
        nix::unistd::chown(dir, Some(nobody.uid), None).expect("chown");
    }
}

/// Without a chroot: sanitized when not munged (with real links, and with `fake super`'s
/// stand-in files, and with the transfer root below the module root, which is the
/// limit `..` is held to), munged by default.
#[test]
fn symlink_targets_pushed_into_a_module_without_a_chroot() {
    run_cases([
        (
            "munge symlinks = no".to_string(),
            Box::new(case(&[("munge symlinks", "no")], "backup/", "tmp/x")) as Box<dyn FnOnce()>,
        ),
        (
            "munge symlinks = no, fake super".to_string(),
            Box::new(case(
                &[("munge symlinks", "no"), ("fake super", "yes")],
                "backup/",
                "tmp/x",
            )),
        ),
        (
            "munge symlinks = no, into backup/s1/s2/".to_string(),
            Box::new(case(&[("munge symlinks", "no")], "backup/s1/s2/", "tmp/x")),
        ),
        (
            "munge symlinks by default".to_string(),
            Box::new(case(&[], "backup/", "/rsyncd-munged//tmp/x")),
        ),
        (
            "munge symlinks = yes".to_string(),
            Box::new(case(
                &[("munge symlinks", "yes")],
                "backup/",
                "/rsyncd-munged//tmp/x",
            )),
        ),
    ]);
}

/// With a chroot: kept as sent when chrooted at the module root, also when that root is
/// named with an empty inner path (`DIR/./.`, where munging is off by default), sanitized
/// when the module is an inner path of the chroot (`DIR/./backup`).
#[test]
fn symlink_targets_pushed_into_a_chrooted_module() {
    if !root_or_skip("chroot needs root") {
        return;
    }
    run_cases([
        (
            "use chroot = yes".to_string(),
            Box::new(case(
                &[("use chroot", "yes"), ("munge symlinks", "no")],
                "backup/",
                "/tmp/x",
            )) as Box<dyn FnOnce()>,
        ),
        (
            "use chroot = yes, path = SCRATCH/backup/./., munging by default".to_string(),
            Box::new(case(
                &[("use chroot", "yes"), ("path", "SCRATCH/backup/./.")],
                "backup/",
                "/tmp/x",
            )),
        ),
        (
            "use chroot = yes, path = SCRATCH/./backup".to_string(),
            Box::new(case(
                &[
                    ("use chroot", "yes"),
                    ("path", "SCRATCH/./backup"),
                    ("munge symlinks", "no"),
                ],
                "backup/",
                "tmp/x",
            )),
        ),
    ]);
}

/// Where ours deliberately differs (docs/ARCHITECTURE.md): stock sanitizes a link at the
/// depth of the last name in the list that had a directory part, so without incremental
/// recursion a top-level link sent after `dir1/d2/...` (a second source argument) keeps
/// `../../x` and leads two levels out of the module. Ours sanitizes every link at its own
/// depth. Everything else must agree.
#[test]
fn a_top_level_link_after_deeper_names_is_held_to_its_own_depth() {
    let runs = differential_steps(
        |f| f.set_module("backup", "munge symlinks", "no"),
        1,
        |_, d, f: &Fixture| {
            link_tree(&src_dir(f));
            let top = f.dir().join("toplink");
            symlink("../../x", &top);
            Rsync::client()
                .args(["-a", "--no-inc-recursive", "--password-file"])
                .arg(f.password_file().display().to_string())
                .args(["./", "../toplink"])
                .arg(d.url(Some("rsync_backup"), "backup/"))
                .cwd(&src_dir(f))
        },
    );
    let [stock, ours] = &runs;
    let toplink = |tree: &Snapshot| {
        targets(tree)
            .into_iter()
            .find(|(name, _)| name == "toplink")
            .map(|(_, t)| t)
    };
    let (stock_tree, ours_tree) = (&stock.steps[0].tree, &ours.steps[0].tree);
    assert_eq!(toplink(stock_tree).as_deref(), Some("../../x"));
    // Under E2E_OURS_IS_STOCK=1 (the harness checking itself) both sides are stock.
    let ours_want = if ours_is_stock() { "../../x" } else { "x" };
    assert_eq!(toplink(ours_tree).as_deref(), Some(ours_want));
    let without = |tree: &Snapshot| {
        let mut t = targets(tree);
        t.retain(|(name, _)| name != "toplink");
        t
    };
    assert_eq!(without(stock_tree), without(ours_tree));
    assert_eq!(
        e2e::compare::client_view(stock.last()),
        e2e::compare::client_view(ours.last())
    );
}

/// A symlink pushed over a non-empty directory without `--delete` or `--force`: the
/// directory stays, and both daemons say so in stock's words (`could not make way for
/// new symlink: link`), exit 23.
#[test]
fn a_directory_in_the_way_is_reported_as_stock_reports_it() {
    use e2e::{Daemon, Server};
    let mut said = Vec::new();
    for kind in [Server::Stock, Server::Ours] {
        let f = Fixture::seed();
        let src = src_dir(&f);
        std::fs::create_dir_all(&src).unwrap();
        symlink("target", &src.join("link"));
        write_file(&f.module_dir(), "link/kept.txt", b"k\n", 0o644, T0);
        let d = Daemon::start(kind, &f);
        let out = crate::push::push_cmd(Rsync::client(), &d, &f, &["-rl"]).run();
        assert_eq!(out.code, 23, "{kind:?}: {out:?}");
        assert!(f.module_dir().join("link/kept.txt").exists(), "{kind:?}");
        let lines: Vec<String> = out
            .stderr
            .lines()
            .filter(|l| l.contains("link"))
            .map(String::from)
            .collect();
        said.push(lines);
    }
    assert_eq!(said[0], said[1]);
    assert!(
        said[0]
            .iter()
            .any(|l| l == "could not make way for new symlink: link"),
        "{said:?}"
    );
}
