//! The module root is entered before the session gives up root: a module below a
//! directory its `uid` cannot enter is served as stock serves it (upstream's
//! rsync_module() chroots and changes into the module as root, then drops privileges),
//! and a path that cannot be entered is refused with stock's `@ERROR: chdir failed`.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use e2e::compare::{Side, assert_same_client_view, assert_same_log, differential};
use e2e::tree::{Compare, assert_trees_equal, write_file};
use e2e::{Fixture, Rsync, root_or_skip, run_cases};

use crate::push::{T0, fix_dir_times, push_cmd_to, src_dir};

/// `SCRATCH/private` (root's, mode 0700) and the module directory `private/mod` in it,
/// owned by nobody; returns the module directory.
fn private_module_dir(f: &Fixture) -> PathBuf {
    let private = f.dir().join("private");
    std::fs::create_dir_all(&private).expect("mkdir private");
    std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o700)).expect("chmod 700");
    let m = private.join("mod");
    std::fs::create_dir_all(&m).expect("mkdir module");
    std::fs::set_permissions(&m, std::fs::Permissions::from_mode(0o755)).expect("chmod 755");
    let nobody = nix::unistd::User::from_name("nobody")
        .ok()
        .flatten()
        .expect("user nobody");
    nix::unistd::chown(&m, Some(nobody.uid), None).expect("chown module dir");
    m
}

/// `-a -i` of a small tree into module `private`.
fn push_private(d: &e2e::Daemon, f: &Fixture) -> Rsync {
    let src = src_dir(f);
    write_file(&src, "a.txt", b"first\n", 0o644, T0);
    write_file(&src, "sub/b.txt", b"second\n", 0o600, T0 + 10);
    fix_dir_times(&src, T0 + 100);
    push_cmd_to(Rsync::client(), d, f, &["-a", "-i"], "private/")
}

/// Runs the push against both servers with the module set up by `path` (given the
/// fixture, returns the module's `path` value) and `params`.
fn push_both(path: fn(&Fixture) -> String, params: &'static [(&str, &str)]) -> [Side; 2] {
    differential(
        |f| {
            let p = path(f);
            let mut all = vec![("path", p.as_str())];
            all.extend_from_slice(params);
            f.add_module("private", &all);
        },
        push_private,
    )
}

/// With `uid = nobody` (the fixture's, as root) and the module below a 0700 directory:
/// without chroot, chrooted to the module, and chrooted outside it (`/./`) so that the
/// module path inside the chroot leads through the 0700 directory. The push works
/// against both servers with the same client view, log and tree; a missing module
/// directory below the 0700 one is refused as stock refuses it.
#[test]
fn a_module_below_a_directory_its_user_cannot_enter_is_served() {
    if !root_or_skip("dropping to `uid = nobody` needs root") {
        return;
    }
    let served = |path: fn(&Fixture) -> String, params: &'static [(&str, &str)]| {
        move || {
            let sides = push_both(path, params);
            assert_same_client_view(&sides);
            assert_same_log(&sides);
            assert_eq!(sides[1].outcome.code, 0, "{:#?}", sides[1].outcome);
            let module = |s: &Side| s.fixture.dir().join("private/mod");
            assert!(module(&sides[1]).join("sub/b.txt").exists());
            assert_trees_equal(&module(&sides[0]), &module(&sides[1]), Compare::ALL);
        }
    };
    let whole = |f: &Fixture| private_module_dir(f).display().to_string();
    let inner = |f: &Fixture| {
        private_module_dir(f);
        format!("{}/./private/mod", f.dir().display())
    };
    let missing = |f: &Fixture| {
        private_module_dir(f);
        f.dir().join("private/missing").display().to_string()
    };
    run_cases([
        (
            "no chroot".to_string(),
            Box::new(served(whole, &[("use chroot", "no")])) as Box<dyn FnOnce()>,
        ),
        (
            "chroot to the module".to_string(),
            Box::new(served(whole, &[("use chroot", "yes")])),
        ),
        (
            "chroot outside the 0700 directory".to_string(),
            Box::new(served(inner, &[("use chroot", "yes")])),
        ),
        (
            "missing module directory".to_string(),
            Box::new(move || {
                let sides = push_both(missing, &[("use chroot", "no")]);
                assert_same_client_view(&sides);
                // The log names the module path, which is in each side's own scratch.
                let events = |s: &Side| -> Vec<String> {
                    let scratch = s.fixture.dir().display().to_string();
                    s.events
                        .iter()
                        .map(|l| l.replace(&scratch, "SCRATCH"))
                        .collect()
                };
                assert_eq!(events(&sides[0]), events(&sides[1]));
                assert_eq!(sides[1].outcome.code, 5, "{:#?}", sides[1].outcome);
                assert!(
                    sides[1].outcome.stderr.contains("@ERROR: chdir failed"),
                    "{:#?}",
                    sides[1].outcome
                );
            }),
        ),
    ]);
}

/// A module path through a symlink: followed when root owns it (the admin's
/// `/backup -> /mnt/disk`), refused with `@ERROR: chdir failed` when another user owns
/// it (one planted in a directory that user can write), as stock 3.5.0 does without a
/// chroot. Rsync's own daemon-module-chdir-symlink test plants the second.
#[test]
fn a_module_path_through_a_foreign_symlink_is_refused() {
    if !root_or_skip("planting a symlink owned by nobody needs root") {
        return;
    }
    let through_link = |owner: Option<u32>| {
        move |f: &Fixture| {
            let real = f.dir().join("real");
            std::fs::create_dir_all(&real).expect("mkdir real");
            let link = f.dir().join("link");
            std::os::unix::fs::symlink(&real, &link).expect("symlink");
            if let Some(uid) = owner {
                std::os::unix::fs::lchown(&link, Some(uid), Some(uid)).expect("lchown");
            }
            link.display().to_string()
        }
    };
    let nobody = nix::unistd::User::from_name("nobody")
        .ok()
        .flatten()
        .expect("user nobody")
        .uid
        .as_raw();
    let scratch_free = |s: &Side| -> Vec<String> {
        let scratch = s.fixture.dir().display().to_string();
        s.events
            .iter()
            .map(|l| l.replace(&scratch, "SCRATCH"))
            .collect()
    };
    for (owner, code) in [(None, 0), (Some(nobody), 5)] {
        let sides = differential(
            |f| {
                let p = through_link(owner)(f);
                f.add_module(
                    "private",
                    &[("path", p.as_str()), ("use chroot", "no"), ("uid", "root")],
                );
            },
            push_private,
        );
        assert_same_client_view(&sides);
        assert_eq!(scratch_free(&sides[0]), scratch_free(&sides[1]));
        assert_eq!(sides[1].outcome.code, code, "{:#?}", sides[1].outcome);
    }
}
