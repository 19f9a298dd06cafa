//! Push options and the module parameters that shape a push, differential: for each case
//! the source tree is pushed with `-a -i` (plus the case's first options), changed, and
//! pushed again with `-a -i` plus the case's options, against stock `rsync --daemon` and
//! rsyncd-rs; after each push the client's exit code, itemized output and messages, the
//! module tree (with the `fake super` xattrs) and the daemons' logs must agree.

use std::os::unix::fs::MetadataExt;

use e2e::compare::{Run, log_difference, step_differences};
use e2e::tree::{Compare, hard_link_groups, snapshot};
use e2e::{Fixture, Rsync, run_cases};

use crate::push::{push_cmd, push_cmd_to, push_twice, src_dir};

/// One option case.
struct Case {
    name: &'static str,
    /// Fixture changes (module parameters), the same for both servers.
    setup: fn(&mut Fixture),
    /// Options of the first push, after `-a -i`.
    first: &'static [&'static str],
    /// Options of the second push, after `-a -i`.
    second: &'static [&'static str],
    /// What of the trees to compare.
    what: Compare,
    /// Whether stock takes both pushes (exit 0): a check that the case does push.
    stock_ok: bool,
    /// A further check of the two runs, for what the tree comparison does not see.
    check: fn(&[Run; 2]) -> Vec<String>,
    /// Where the second push goes (the first always goes to the module root).
    dest: &'static str,
}

fn no_setup(_: &mut Fixture) {}

fn no_check(_: &[Run; 2]) -> Vec<String> {
    Vec::new()
}

const fn case(name: &'static str, second: &'static [&'static str]) -> Case {
    Case {
        name,
        setup: no_setup,
        first: &[],
        second,
        what: Compare::ALL,
        stock_ok: true,
        check: no_check,
        dest: "backup/",
    }
}

/// Runs one case and fails with every difference found.
fn run_case(c: &Case) {
    let opts = |extra: &[&'static str]| {
        let mut v = vec!["-a", "-i"];
        v.extend_from_slice(extra);
        v
    };
    let runs = push_twice(
        c.setup,
        |d, f| push_cmd(Rsync::client(), d, f, &opts(c.first)),
        |d, f| push_cmd_to(Rsync::client(), d, f, &opts(c.second), c.dest),
    );
    let mut found = step_differences(&runs, c.what);
    found.extend(log_difference(&runs));
    found.extend((c.check)(&runs));
    if c.stock_ok {
        for (i, s) in runs[0].steps.iter().enumerate() {
            if s.outcome.code != 0 {
                found.push(format!("stock failed step {i}: {:#?}", s.outcome));
            }
        }
    }
    assert!(found.is_empty(), "{}", found.join("\n"));
}

fn run_all(cases: Vec<Case>) {
    run_cases(
        cases
            .iter()
            .map(|c| (c.name.to_string(), move || run_case(c))),
    );
}

/// The same groups of hard-linked names in both module trees, after each push.
fn same_hard_links(runs: &[Run; 2]) -> Vec<String> {
    let mut found = Vec::new();
    for (i, (s, o)) in runs[0].steps.iter().zip(&runs[1].steps).enumerate() {
        let (gs, go) = (hard_link_groups(&s.tree), hard_link_groups(&o.tree));
        if gs != go {
            found.push(format!(
                "step {i}: hard links differ: stock {gs:?} vs ours {go:?}"
            ));
        }
    }
    if hard_link_groups(&runs[0].steps[1].tree).is_empty() {
        found.push("stock made no hard links".to_string());
    }
    found
}

/// The sparse file takes the same disk blocks in both module trees (holes kept).
fn same_sparse_blocks(runs: &[Run; 2]) -> Vec<String> {
    let blocks = |r: &Run| {
        std::fs::metadata(r.module_dir().join("sparse.img"))
            .map(|m| m.blocks())
            .unwrap_or(0)
    };
    let (s, o) = (blocks(&runs[0]), blocks(&runs[1]));
    if s == o {
        Vec::new()
    } else {
        vec![format!("sparse.img takes {s} blocks (stock) vs {o} (ours)")]
    }
}

/// `--delete` and its timings, and the filters that decide what a push deletes: client
/// excludes and includes, protect (`P`) and risk (`R`) rules, `--delete-excluded`.
#[test]
fn deletion_and_filter_options() {
    run_all(vec![
        case("--delete", &["--delete"]),
        case("--delete-before", &["--delete-before"]),
        case("--delete-during", &["--delete-during"]),
        case("--delete-after", &["--delete-after"]),
        case("--delete-delay", &["--delete-delay"]),
        case(
            "--delete-excluded",
            &["--delete-excluded", "--exclude=*.sh"],
        ),
        case(
            "--include/--exclude",
            &["--delete", "--include=*/", "--include=*.txt", "--exclude=*"],
        ),
        case(
            "--filter protect and risk",
            &[
                "--delete",
                "--filter=R skip.log",
                "--filter=P *.log",
                "--filter=P dir2/",
            ],
        ),
    ]);
}

/// The module's own `exclude`, `include`, `filter` and `incoming chmod` parameters, set
/// the same in both daemons' configs. Stock refuses daemon-excluded names in a push
/// (`ERROR: daemon refused to receive file "NAME"`) and exits 23.
#[test]
fn module_filter_and_chmod_parameters() {
    run_all(vec![
        Case {
            setup: |f| f.set_module("backup", "exclude", "*.sh"),
            stock_ok: false,
            ..case("module exclude", &["--delete"])
        },
        Case {
            setup: |f| {
                f.set_module("backup", "include", "new.txt");
                f.set_module("backup", "exclude", "*.txt");
            },
            stock_ok: false,
            ..case("module include and exclude", &["--delete"])
        },
        Case {
            setup: |f| f.set_module("backup", "filter", "- *.log - /newdir/y/"),
            stock_ok: false,
            // The refused directory is made early and keeps the push's own clock.
            what: BACKUP_DIR,
            ..case("module filter", &["--delete"])
        },
        // An option directory inside what the module excludes is refused outright.
        Case {
            setup: |f| f.set_module("backup", "exclude", "/secret/"),
            stock_ok: false,
            ..case(
                "--partial-dir into a module exclude",
                &["--partial-dir=/x/../secret"],
            )
        },
        Case {
            setup: |f| f.set_module("backup", "incoming chmod", "Dg+s,Fo-rwx,Fu+x"),
            ..case("module incoming chmod", &[])
        },
    ]);
}

/// Options that change how files are written: hard links, ids, in place, partial files,
/// appending, sparse and preallocated files, whole files, `--chmod`, `--bwlimit`.
#[test]
fn how_files_are_written() {
    run_all(vec![
        Case {
            first: &["-H"],
            check: same_hard_links,
            ..case("-H", &["-H"])
        },
        Case {
            first: &["--numeric-ids"],
            ..case("--numeric-ids", &["--numeric-ids"])
        },
        case("--inplace", &["--inplace"]),
        case("--partial", &["--partial"]),
        case("--partial-dir", &["--partial-dir=.rsync-partial"]),
        case("--append", &["--append"]),
        case("--append-verify", &["--append-verify"]),
        case("-W", &["-W"]),
        Case {
            first: &["--sparse"],
            check: same_sparse_blocks,
            ..case("--sparse", &["--sparse"])
        },
        case("--preallocate", &["--preallocate"]),
        case("--chmod", &["--chmod=Fgo-w,D750"]),
        // The client passes its limit on to the server (`--bwlimit=102400`).
        case("--bwlimit", &["--bwlimit=100m"]),
    ]);
}

/// Options that decide which files are sent: the quick check's variants, `--existing`,
/// `--ignore-existing`, `-u`, size limits, and `--dry-run`.
#[test]
fn which_files_are_sent() {
    run_all(vec![
        case("--size-only", &["--size-only"]),
        case("--ignore-times", &["--ignore-times"]),
        case("--existing", &["--existing"]),
        case("--ignore-existing", &["--ignore-existing"]),
        case("-u", &["-u"]),
        Case {
            first: &["--max-size=10K"],
            ..case("--max-size", &["--max-size=10K"])
        },
        Case {
            first: &["--min-size=1K"],
            ..case("--min-size", &["--min-size=1K"])
        },
        case("--dry-run", &["--dry-run", "--delete"]),
        case("--stats -v", &["--stats", "-v", "--delete"]),
    ]);
}

/// Hard links from a second push into `backup/snap/` to the first push's files at the
/// module root (`--link-dest=..`): the same names must be linked on both sides.
fn same_snapshot_links(runs: &[Run; 2]) -> Vec<String> {
    let linked = |r: &Run| {
        let mut v: Vec<String> = snapshot(&r.module_dir())
            .into_iter()
            .filter(|(n, e)| n.starts_with("snap/") && e.kind == 'f' && e.nlink > 1)
            .map(|(n, _)| n)
            .collect();
        v.sort();
        v
    };
    let (s, o) = (linked(&runs[0]), linked(&runs[1]));
    let mut found = Vec::new();
    if s != o {
        found.push(format!("linked into snap/: stock {s:?} vs ours {o:?}"));
    }
    if s.is_empty() {
        found.push("stock linked nothing".to_string());
    }
    found
}

/// `--link-dest`, `--copy-dest` and `--compare-dest` (a snapshot pushed beside the first
/// push), `--delay-updates`, id maps (`--chown`, `--groupmap`), `--list-only` and `-ii`.
#[test]
fn basis_dirs_and_other_push_options() {
    const SNAP: Compare = Compare {
        dir_mtime: false,
        ..Compare::ALL
    };
    run_all(vec![
        Case {
            dest: "backup/snap/",
            what: SNAP,
            check: same_snapshot_links,
            ..case("--link-dest", &["--link-dest=.."])
        },
        Case {
            dest: "backup/snap/",
            what: SNAP,
            ..case("--copy-dest", &["--copy-dest=.."])
        },
        Case {
            dest: "backup/snap/",
            what: SNAP,
            ..case("--compare-dest", &["--compare-dest=..", "-i"])
        },
        case("--delay-updates", &["--delay-updates", "--delete"]),
        case("--chown", &["--chown=daemon:bin"]),
        case("--groupmap", &["--groupmap=*:bin", "--usermap=0-99:daemon"]),
        case("--list-only", &["--list-only"]),
        case("-ii", &["-i", "--delete"]),
    ]);
}

/// The trees of a push with `--backup-dir`, but the directories' mtimes: the backup
/// directory has no source counterpart and keeps the time the push wrote into it, which
/// may fall in different seconds on the two sides.
const BACKUP_DIR: Compare = Compare {
    dir_mtime: false,
    ..Compare::ALL
};

/// Backups of replaced and deleted files: `--backup`, `--suffix`, `--backup-dir`.
#[test]
fn backups() {
    run_all(vec![
        // --backup without a directory implies --omit-dir-times: directories keep the
        // push's own clock, which may differ by a second between the two sides.
        Case {
            what: BACKUP_DIR,
            ..case("--backup", &["--backup", "--delete"])
        },
        Case {
            what: BACKUP_DIR,
            ..case("--suffix", &["--backup", "--suffix=.old", "--delete"])
        },
        Case {
            what: BACKUP_DIR,
            ..case("--backup-dir", &["--backup-dir=bak", "--delete"])
        },
        Case {
            what: BACKUP_DIR,
            ..case(
                "--backup-dir and --suffix",
                &["--backup-dir=bak", "--suffix=.old", "--delete"],
            )
        },
        // A --backup-dir in what the module excludes is refused before anything moves.
        Case {
            setup: |f| f.set_module("backup", "exclude", "/dir2/"),
            stock_ok: false,
            ..case(
                "--backup-dir in an excluded directory",
                &["--backup-dir=/dir1/../dir2/bak"],
            )
        },
    ]);
}

/// Pushes into a sub-directory, twice, with a `--backup-dir`: a relative one is below the
/// destination, an absolute one below the module root.
#[test]
fn backup_dir_into_a_sub_directory() {
    run_cases(["bak", "/bak"].into_iter().map(|dir| {
        (format!("--backup-dir={dir}"), move || {
            let opt = format!("--backup-dir={dir}");
            let opts = ["-a", "-i", opt.as_str()];
            let runs = push_twice(
                no_setup,
                |d, f| push_cmd_to(Rsync::client(), d, f, &opts, "backup/sub/"),
                |d, f| push_cmd_to(Rsync::client(), d, f, &opts, "backup/sub/"),
            );
            let mut found = step_differences(&runs, BACKUP_DIR);
            found.extend(log_difference(&runs));
            // Stock's backups are where the option says: a check that this case backs up.
            let module = runs[0].module_dir();
            let backups = if dir.starts_with('/') {
                module.join("bak")
            } else {
                module.join("sub/bak")
            };
            if !backups.is_dir() {
                found.push(format!("stock made no {}", backups.display()));
            }
            assert!(found.is_empty(), "{}", found.join("\n"));
        })
    }));
}

/// `refuse options` (stock's wording and exit code for a refused `--delete-after` and
/// `-H`), and `transfer logging` with a `log format` of `%o %f %n %l %b %i`: the
/// daemons' per-file lines are compared with the rest of their logs.
#[test]
fn refuse_options_and_transfer_logging() {
    run_all(vec![
        Case {
            setup: |f| f.set_module("backup", "refuse options", "delete"),
            stock_ok: false,
            ..case("refuse options = delete", &["--delete-after"])
        },
        Case {
            setup: |f| f.set_module("backup", "refuse options", "hard-links"),
            stock_ok: false,
            ..case("refuse options = hard-links", &["-H"])
        },
        Case {
            setup: |f| {
                f.set_module("backup", "transfer logging", "yes");
                f.set_module("backup", "log format", "%o %f %n %l %b %i");
            },
            ..case("transfer logging", &["--delete"])
        },
    ]);
}

/// A `name converter` that maps the sender's `daemon` user and `bin` group to ids no
/// system has, and logs what it is asked, next to the module.
fn with_name_converter(f: &mut Fixture) {
    let script = f.dir().join("nameconvert");
    let log = f.dir().join("namecvt.log");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nwhile read cmd name; do\n  echo \"$cmd $name\" >> {}\n  case \"$cmd $name\" in\n    'usr daemon') echo 4242 ;;\n    'grp bin') echo 4343 ;;\n    *) echo ;;\n  esac\ndone\n",
            log.display()
        ),
    )
    .expect("write converter");
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod converter");
    f.set_module("backup", "name converter", &script.display().to_string());
}

/// Both daemons asked their converter for the names the client sent.
fn converter_was_asked(runs: &[Run; 2]) -> Vec<String> {
    let mut found = Vec::new();
    for r in runs {
        let asked =
            std::fs::read_to_string(r.fixture.dir().join("namecvt.log")).unwrap_or_default();
        for want in ["usr daemon", "grp bin"] {
            if !asked.lines().any(|l| l == want) {
                found.push(format!(
                    "{:?}: converter never got {want:?}: {asked:?}",
                    r.kind
                ));
            }
        }
    }
    found
}

/// `name converter`: the sender's user and group names are mapped by the module's
/// converter program rather than the system's databases (the ids land in the `fake
/// super` xattrs, compared with stock's).
#[test]
fn name_converter() {
    let opts = ["-a", "-i"];
    let runs = push_twice(
        with_name_converter,
        |d, f| push_cmd(Rsync::client(), d, f, &opts),
        |d, f| {
            let src = src_dir(f);
            for name in ["tiny", "grow.txt"] {
                std::os::unix::fs::lchown(src.join(name), Some(1), Some(2)).expect("chown");
            }
            push_cmd(Rsync::client(), d, f, &opts)
        },
    );
    let mut found = step_differences(&runs, Compare::ALL);
    found.extend(log_difference(&runs));
    found.extend(converter_was_asked(&runs));
    assert!(found.is_empty(), "{}", found.join("\n"));
}
