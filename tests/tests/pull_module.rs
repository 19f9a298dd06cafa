//! Module parameters that shape a pull, differential (see `pull`): each setup changes the
//! reference module's config the same way for stock `rsync --daemon` and rsyncd-rs, and
//! the stock client pulls from both: what the module hides (`exclude`, `include`,
//! `filter`, `exclude from`, unreadable files), how it presents files (`outgoing chmod`,
//! `munge symlinks`, `numeric ids`, `fake super`), what it refuses (`write only`,
//! `refuse options`), what it logs (`transfer logging`, `log format`, `max verbosity`)
//! and what its exec hooks see.

use std::path::Path;

use e2e::Fixture;
use e2e::tree::{Compare, diff_snapshots, snapshot, write_file};
use e2e::{Daemon, Rsync, Server};

use crate::pull::{Pull, Pulled, pull, run_pulls};
use crate::pull_tree::{pull_tree, reference_module};
use crate::push::{T0, fix_dir_times, source_tree};

/// One module setup and the pulls made under it.
type ModuleCase = (String, Box<dyn FnOnce()>);

/// The reference module with the pull tree, and `params` set on it.
fn with(
    name: &str,
    params: &'static [(&'static str, &'static str)],
    pulls: Vec<Pull>,
) -> ModuleCase {
    (
        name.to_string(),
        Box::new(move || {
            run_pulls(
                |f: &mut Fixture| {
                    pull_tree(&f.module_dir());
                    for (k, v) in params {
                        f.set_module("backup", k, v);
                    }
                },
                pulls,
            );
        }),
    )
}

/// `-a -i` of the whole module.
fn whole() -> Pull {
    pull("-a -i backup/", &["-a", "-i"], "backup/")
}

/// A `--files-from` list naming files the module's filters hide.
fn list_of_hidden(client: &Path) {
    std::fs::write(
        client.join("list"),
        "keep.log\ntext.log\n1.txt\nsub/dir/more/x.log\n",
    )
    .expect("write list");
}

/// What the module hides from a pull: `exclude`, `include` over `exclude`, `filter`,
/// `exclude from`, asked for as the whole module, by name, through `--files-from` and
/// with `-R`.
#[test]
fn what_the_module_hides() {
    let by_name = |name: &str, src: &str| pull(name, &["-a", "-i"], src);
    let listed = Pull {
        opts: vec!["-a".into(), "-i".into(), "--files-from=list".into()],
        ..pull("--files-from naming hidden files", &[], "backup/")
    }
    .prepare(list_of_hidden)
    .code(23);
    e2e::run_cases(vec![
        with(
            "exclude = *.log",
            &[("exclude", "*.log")],
            vec![
                whole(),
                by_name("an excluded file by name", "backup/keep.log").code(23),
                by_name(
                    "an excluded file in a directory",
                    "backup/sub/dir/more/x.log",
                )
                .code(23),
                listed.clone(),
                pull(
                    "-R through an excluded name",
                    &["-a", "-i", "-R"],
                    "backup/sub/dir/more/x.log",
                )
                .code(23),
            ],
        ),
        with(
            "include = keep.log, exclude = *.log",
            &[("include", "keep.log"), ("exclude", "*.log")],
            vec![whole(), listed.clone()],
        ),
        with(
            "filter = - /sub/ - *.sh",
            &[("filter", "- /sub/ - *.sh")],
            vec![
                whole(),
                by_name("inside an excluded directory", "backup/sub/dir/").code(23),
                listed.clone(),
            ],
        ),
        (
            "exclude from".to_string(),
            Box::new(|| {
                run_pulls(
                    |f: &mut Fixture| {
                        pull_tree(&f.module_dir());
                        let list = f.dir().join("excluded");
                        std::fs::write(&list, "*.dat\n/owned/\n").expect("write");
                        f.set_module("backup", "exclude from", &list.display().to_string());
                    },
                    vec![
                        whole(),
                        by_name("an excluded file", "backup/blocks.dat").code(23),
                    ],
                )
            }),
        ),
    ]);
}

/// A file and a directory the daemon's user cannot read (root's, mode 0600 and 0700).
fn with_unreadable(f: &mut Fixture) {
    let m = f.module_dir();
    pull_tree(&m);
    write_file(&m, "secret.txt", b"root only\n", 0o600, T0);
    write_file(&m, "closed/inner.txt", b"root only\n", 0o600, T0);
    std::fs::set_permissions(
        m.join("closed"),
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .expect("chmod");
    fix_dir_times(&m, T0 + 100);
}

/// The unreadable file by name.
fn single() -> Pull {
    pull("the unreadable file", &["-a", "-i"], "backup/secret.txt")
}

/// Unreadable files: reported (exit 23) by default, skipped silently under `ignore
/// nonreadable`.
#[test]
fn unreadable_files() {
    e2e::run_cases(vec![
        (
            "ignore nonreadable = no".to_string(),
            Box::new(|| run_pulls(with_unreadable, vec![whole().code(23), single().code(23)]))
                as Box<dyn FnOnce()>,
        ),
        // In a fake-super module the sender reads each file's `user.rsync.%stat` first,
        // and that fails (exit 23) before `ignore nonreadable` is asked.
        (
            "ignore nonreadable = yes".to_string(),
            Box::new(|| {
                run_pulls(
                    |f: &mut Fixture| {
                        with_unreadable(f);
                        f.set_module("backup", "ignore nonreadable", "yes");
                    },
                    vec![whole().code(23), single().code(23)],
                )
            }),
        ),
        (
            "ignore nonreadable = yes, fake super = no".to_string(),
            Box::new(|| {
                run_pulls(
                    |f: &mut Fixture| {
                        with_unreadable(f);
                        f.set_module("backup", "ignore nonreadable", "yes");
                        f.set_module("backup", "fake super", "no");
                    },
                    vec![whole(), single().code(23)],
                )
            }),
        ),
    ]);
}

/// How the module presents what it sends: `outgoing chmod`, `munge symlinks` (off, and
/// on as `use chroot = no` already implies), `numeric ids`, `use chroot = yes`, `read
/// only` (no matter for a pull), `fake super = no`, `dont compress`.
#[test]
fn how_the_module_presents_files() {
    e2e::run_cases(vec![
        with(
            "outgoing chmod",
            &[("outgoing chmod", "o-rwx,Dg-w,Fu+x,Fg=r")],
            vec![whole(), pull("-r without -p", &["-r", "-i"], "backup/")],
        ),
        with(
            "munge symlinks = no",
            &[("munge symlinks", "no")],
            vec![whole()],
        ),
        with(
            "munge symlinks = yes",
            &[("munge symlinks", "yes")],
            vec![whole()],
        ),
        with(
            "numeric ids = yes",
            &[("numeric ids", "yes")],
            vec![whole(), pull("-v", &["-a", "-v"], "backup/owned/")],
        ),
        with(
            "use chroot = yes",
            &[("use chroot", "yes")],
            vec![whole(), pull("-L", &["-a", "-i", "-L"], "backup/").code(23)],
        ),
        with("read only = yes", &[("read only", "yes")], vec![whole()]),
        with("fake super = no", &[("fake super", "no")], vec![whole()]),
        with(
            "dont compress",
            &[("dont compress", "*.log *.dat")],
            vec![pull(
                "-z --stats",
                &["-a", "-i", "-z", "--stats"],
                "backup/",
            )],
        ),
    ]);
}

/// What the module refuses: a pull from a `write only` module, and options named in
/// `refuse options` (stock's words and exit codes). A pulling client does the deleting
/// and does not send `--delete` to the server, so `refuse options = delete` lets it by.
#[test]
fn what_the_module_refuses() {
    e2e::run_cases(vec![
        with(
            "write only = yes",
            &[("write only", "yes")],
            vec![whole().code(1)],
        ),
        with(
            "refuse options = compress",
            &[("refuse options", "compress")],
            vec![
                pull("-z", &["-a", "-i", "-z"], "backup/").code(10),
                pull("--zc=zstd", &["-a", "-i", "--zc=zstd"], "backup/").code(10),
                whole(),
            ],
        ),
        with(
            "refuse options = delete",
            &[("refuse options", "delete")],
            vec![
                pull("--delete", &["-a", "-i", "--delete"], "backup/"),
                pull("--delete-after", &["-a", "-i", "--delete-after"], "backup/"),
                whole(),
            ],
        ),
        with(
            "refuse options = checksum copy-links",
            &[("refuse options", "checksum copy-links")],
            vec![
                pull("-c", &["-a", "-i", "-c"], "backup/").code(10),
                pull("-L", &["-a", "-i", "-L"], "backup/").code(10),
            ],
        ),
    ]);
}

/// What the daemon logs of a pull: `transfer logging` with the default format and with
/// one of every per-file escape, and `max verbosity` against `-vv`.
#[test]
fn what_the_daemon_logs() {
    e2e::run_cases(vec![
        with(
            "transfer logging",
            &[("transfer logging", "yes")],
            vec![
                whole(),
                pull("-v of a sub-directory", &["-a", "-v"], "backup/sub/"),
            ],
        ),
        with(
            "transfer logging with a log format",
            &[
                ("transfer logging", "yes"),
                ("log format", "%o %m %u %P %f %n %l %L %M %B %i %c %C"),
            ],
            vec![whole(), pull("-c", &["-a", "-i", "-c"], "backup/sub/")],
        ),
        with(
            "max verbosity = 0",
            &[("max verbosity", "0")],
            vec![pull("-vv", &["-a", "-vv"], "backup/sub/")],
        ),
    ]);
}

/// A `pre-xfer exec` and a `post-xfer exec` that record what they are told of the pull
/// (the `RSYNC_*` variables but the pid) in the scratch directory.
fn with_exec_hooks(f: &mut Fixture) {
    reference_module(f);
    for hook in ["pre", "post"] {
        let script = f.dir().join(format!("{hook}.sh"));
        let out = f.dir().join(format!("{hook}.env"));
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\nenv | grep '^RSYNC_' | grep -v '^RSYNC_PID=' | sort >> {}\n",
                out.display()
            ),
        )
        .expect("write hook");
        std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .expect("chmod hook");
        f.set_module(
            "backup",
            &format!("{hook}-xfer exec"),
            &script.display().to_string(),
        );
    }
}

/// Both hooks ran and were told the same, up to the scratch directory.
fn same_hook_environment(sides: &[Pulled; 2]) -> Vec<String> {
    let env = |p: &Pulled, hook: &str| {
        let scratch = p
            .module_dir
            .parent()
            .expect("scratch")
            .display()
            .to_string();
        std::fs::read_to_string(p.module_dir.with_file_name(format!("{hook}.env")))
            .unwrap_or_default()
            .replace(&scratch, "SCRATCH")
    };
    let mut found = Vec::new();
    for hook in ["pre", "post"] {
        let (s, o) = (env(&sides[0], hook), env(&sides[1], hook));
        if s != o {
            found.push(format!(
                "{hook}-xfer exec saw\n--- stock:\n{s}--- ours:\n{o}"
            ));
        }
        let told = if hook == "pre" {
            "RSYNC_REQUEST="
        } else {
            "RSYNC_EXIT_STATUS="
        };
        if !s.contains(told) {
            found.push(format!("stock's {hook}-xfer exec did not run: {s:?}"));
        }
    }
    found
}

/// The exec hooks of a pull with several arguments.
#[test]
fn exec_hooks_see_the_pull() {
    run_pulls(
        with_exec_hooks,
        vec![
            pull("-a", &["-a", "-i", "--delete", "-z"], "backup/sub/").check(same_hook_environment),
        ],
    );
}

/// The tree pushed with `-a` into the fake-super module and pulled back as root: the
/// owners, modes, devices and symlinks the daemon keeps in `user.rsync.%stat` come back.
fn pushed_through_fake_super(f: &mut Fixture) {
    let src = f.dir().join("src");
    source_tree(&src);
    let nameless = src.join("nameless");
    write_file(&nameless, "f", b"ids without names\n", 0o640, T0);
    std::os::unix::fs::lchown(nameless.join("f"), Some(4242), Some(4343)).expect("chown");
    std::os::unix::fs::lchown(src.join("exec.sh"), Some(1), Some(2)).expect("chown");
    nix::sys::stat::mknod(
        &src.join("null-copy"),
        nix::sys::stat::SFlag::S_IFCHR,
        nix::sys::stat::Mode::from_bits_truncate(0o620),
        nix::sys::stat::makedev(1, 3),
    )
    .expect("mknod");
    e2e::tree::set_mtime(&src.join("null-copy"), T0);
    fix_dir_times(&src, T0 + 100);
    // Stock stores the tree for both sides, so both serve the same bytes.
    let d = Daemon::start(Server::Stock, f);
    let pushed = Rsync::client()
        .args(["-a", "--password-file"])
        .arg(f.password_file().display().to_string())
        .arg(format!("{}/", src.display()))
        .arg(d.url(Some("rsync_backup"), "backup/"))
        .run();
    assert_eq!(pushed.code, 0, "the push: {pushed:#?}");
    // The session logs its last line after the client exits: let it, before the pulls
    // count their own lines.
    d.log_after_sessions(0);
}

/// Stock's pull gave back the pushed tree.
fn is_the_pushed_tree(sides: &[Pulled; 2]) -> Vec<String> {
    let stock = &sides[0];
    let src = snapshot(&stock.module_dir.with_file_name("src"));
    diff_snapshots(
        &src,
        &stock.tree,
        Compare::WITHOUT_XATTRS,
        "pushed",
        "pulled",
    )
    .into_iter()
    .map(|d| format!("stock did not give back the pushed tree: {d}"))
    .collect()
}

/// `fake super`: a tree pushed with `-a` (owners, modes, a device, a fifo, symlinks kept
/// in `user.rsync.%stat` xattrs) pulled back with `-a` gives the same tree from both.
#[test]
fn fake_super_gives_back_what_was_pushed() {
    run_pulls(
        pushed_through_fake_super,
        vec![
            whole().check(is_the_pushed_tree),
            pull(
                "-a --numeric-ids",
                &["-a", "-i", "--numeric-ids"],
                "backup/",
            ),
            pull("-r without -o -g -p", &["-rlt", "-i"], "backup/"),
            pull("a listing", &["-r"], "backup/").listing(),
        ],
    );
}
