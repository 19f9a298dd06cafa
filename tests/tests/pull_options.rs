//! Client options of a pull, differential (see `pull`): the stock client pulls the
//! reference module's tree with each option, from stock `rsync --daemon` and from
//! rsyncd-rs, into a fresh destination, or into one that already holds older, changed or
//! extra files where the option is about those.

use std::path::Path;

use e2e::Fixture;
use e2e::tree::{Compare, pseudo_random, write_file};

use crate::pull::{Pull, Pulled, pull, run_pulls};
use crate::pull_tree::{made_hard_links, pull_tree};
use crate::push::T0;

/// The reference module with the pull tree, and beside it a module `plain` serving the
/// same directory without `fake super`: stock 3.5.0's confined open for `-L`, `-k` and
/// `--copy-unsafe-links` reads a fake-super module's regular files as links and reports
/// each one as vanished (exit 24), which is not worth copying; `plain` shows those
/// options at work.
fn modules(f: &mut Fixture) {
    pull_tree(&f.module_dir());
    let path = f.module_dir().display().to_string();
    f.add_module("plain", &[("path", &path), ("fake super", "no")]);
}

/// `-a -i` and `more`.
fn a_i(more: &[&str]) -> Vec<String> {
    ["-a", "-i"]
        .iter()
        .chain(more)
        .map(|s| s.to_string())
        .collect()
}

/// A pull of the whole reference module with `-a -i` and `more`.
fn a(name: &str, more: &[&str]) -> Pull {
    Pull {
        opts: a_i(more),
        ..pull(name, &[], "backup/")
    }
}

/// A destination holding an older copy of the module's 300 KiB file with three changed
/// 1 KiB regions and an older mtime (a delta), a file of the same size and mtime but
/// other content (only `-c` sees it), a newer version of another (`-u` keeps it), and
/// extra files and directories (`--delete` removes them).
fn older_copy(client: &Path) {
    let dest = client.join("dest");
    let mut data = pseudo_random(300_000, 2);
    for at in [1_000, 150_000, 290_000] {
        data[at..at + 1024].copy_from_slice(&pseudo_random(1024, at as u64));
    }
    write_file(&dest, "blocks.dat", &data, 0o644, T0 - 50);
    write_file(&dest, "1.txt", b"test SERSYNC\n", 0o644, T0);
    write_file(&dest, "2.txt", b"newer here\n", 0o644, T0 + 1_000_000);
    write_file(&dest, "extra.txt", b"only here\n", 0o644, T0);
    write_file(&dest, "stale.log", b"old log\n", 0o644, T0);
    write_file(&dest, "sub/gone/f", b"gone\n", 0o644, T0);
    write_file(&dest, "sub/dir/more/old.log", b"x\n", 0o644, T0);
    crate::push::fix_dir_times(&dest, T0);
}

/// A `--files-from` list in the client directory: files, a directory, a name in a
/// directory the list does not name (its parents are implied).
fn files_list(client: &Path) {
    std::fs::write(
        client.join("list"),
        "1.txt\nsub/dir/deep.txt\nhl/two\na/b\nname with spaces.txt\n",
    )
    .expect("write list");
}

/// A `--files-from` list naming a file the module does not have.
fn files_list_with_missing(client: &Path) {
    std::fs::write(client.join("list"), "1.txt\nno-such-file\ntiny\n").expect("write list");
}

/// The same `Literal data` and `Matched data` lines in both `--stats` outputs: the
/// client counts them from what the sender sent, so a sender that matched less (or
/// more) of the basis shows here. Stock matched most of the file.
fn same_delta(sides: &[Pulled; 2]) -> Vec<String> {
    let figures = |p: &Pulled| -> Vec<String> {
        p.outcome
            .stdout
            .lines()
            .filter(|l| l.starts_with("Literal data: ") || l.starts_with("Matched data: "))
            .map(str::to_string)
            .collect()
    };
    let (s, o) = (figures(&sides[0]), figures(&sides[1]));
    let mut found = Vec::new();
    if s != o {
        found.push(format!("delta figures: stock {s:?} vs ours {o:?}"));
    }
    if !s
        .iter()
        .any(|l| l.starts_with("Matched data: ") && l != "Matched data: 0 bytes")
    {
        found.push(format!("stock matched nothing: {s:?}"));
    }
    found
}

/// The file-type options one at a time, each with `-r -i`: links, permissions, times,
/// group, owner, devices and specials, and `-a` with hard links, numeric ids, `-L`,
/// `-k` and `--copy-unsafe-links`, `--safe-links`.
#[test]
fn what_of_each_file_is_kept() {
    let r = |name: &str, opt: &str| pull(name, &["-r", "-i", opt], "backup/");
    run_pulls(
        modules,
        vec![
            pull("-r", &["-r", "-i"], "backup/"),
            r("-rl", "-l"),
            r("-rp", "-p"),
            r("-rt", "-t"),
            r("-rg", "-g"),
            r("-ro", "-o"),
            r("-rD", "-D"),
            r("-rl --specials", "--specials"),
            a("-aH", &["-H"]).check(made_hard_links),
            a("--numeric-ids", &["--numeric-ids"]),
            Pull {
                what: Compare {
                    dir_mtime: false,
                    ..Compare::ALL
                },
                ..a("-O", &["-O"])
            },
            a("-L", &["-L"]).code(23).from("plain/"),
            a("-k", &["-k"]).from("plain/"),
            a("--copy-unsafe-links", &["--copy-unsafe-links"])
                .code(23)
                .from("plain/"),
            a("--safe-links", &["--safe-links"]),
            a("-rlptgoD -L one file", &["-L"]).from("plain/link-to-1"),
        ],
    );
}

/// Compression (`-z` negotiated, and each `--zc`) and checksum choices (`--cc`, with a
/// delta against an older copy and with `-c`).
#[test]
fn compression_and_checksum_choices() {
    let mut pulls = vec![a("-z", &["-z"]).prepare(older_copy)];
    for zc in ["zlib", "zlibx", "zstd", "lz4", "none"] {
        let opt = format!("--zc={zc}");
        pulls.push(
            Pull {
                opts: a_i(&["-z", &opt, "--no-W", "--stats"]),
                ..a(&format!("-z --zc={zc}"), &[])
            }
            .prepare(older_copy),
        );
    }
    for cc in ["md4", "md5", "xxh64", "xxh128"] {
        let opt = format!("--cc={cc}");
        pulls.push(
            Pull {
                opts: a_i(&[&opt, "--no-W", "--stats"]),
                ..a(&format!("--cc={cc}"), &[])
            }
            .prepare(older_copy),
        );
        pulls.push(
            Pull {
                opts: a_i(&["-c", &opt]),
                ..a(&format!("-c --cc={cc}"), &[])
            }
            .prepare(older_copy),
        );
    }
    run_pulls(modules, pulls);
}

/// Which files a pull updates in a destination that has some: the quick check, `-c`,
/// `-u`, `--existing`, `--ignore-existing`, `--size-only`, `-I`, size limits, and a
/// delta with `--stats`: the literal and matched data must agree.
#[test]
fn which_files_are_pulled() {
    run_pulls(
        modules,
        vec![
            a("quick check", &[]).prepare(older_copy),
            a("-c", &["-c"]).prepare(older_copy),
            a("-u", &["-u"]).prepare(older_copy),
            a("--existing", &["--existing"]).prepare(older_copy),
            a("--ignore-existing", &["--ignore-existing"]).prepare(older_copy),
            a("--size-only", &["--size-only"]).prepare(older_copy),
            a("-I", &["-I"]).prepare(older_copy),
            a("--max-size", &["--max-size=1K"]),
            a("--min-size", &["--min-size=1K"]),
            a("a delta with --stats", &["--no-W", "--stats"])
                .prepare(older_copy)
                .check(same_delta),
            a("-W with --stats", &["-W", "--stats"]).prepare(older_copy),
            a("--inplace", &["--inplace", "--no-W"]).prepare(older_copy),
            a("--dry-run", &["--dry-run", "--delete"]).prepare(older_copy),
        ],
    );
}

/// Deletion on the client side (`--delete` and its timings, `--delete-excluded`), the
/// client's filters, `--files-from` with a local list (which the client sends to the
/// server), and wildcard sources (which the server expands).
#[test]
fn deletion_filters_and_lists() {
    let listed = |name: &str, more: &[&str]| {
        let mut opts = a_i(&["--files-from=list"]);
        opts.extend(more.iter().map(|s| s.to_string()));
        Pull {
            opts,
            ..pull(name, &[], "backup/")
        }
        .prepare(files_list)
    };
    run_pulls(
        modules,
        vec![
            a("--delete", &["--delete"]).prepare(older_copy),
            a("--delete-before", &["--delete-before"]).prepare(older_copy),
            a("--delete-after", &["--delete-after"]).prepare(older_copy),
            a("--delete-delay", &["--delete-delay"]).prepare(older_copy),
            a(
                "--delete-excluded",
                &["--delete-excluded", "--exclude=*.log"],
            )
            .prepare(older_copy),
            a("--exclude", &["--exclude=*.txt", "--exclude=/dev/"]),
            a(
                "--filter",
                &["--filter=- /sub/", "--filter=+ *.dat", "--filter=- *"],
            ),
            a(
                "--include and -m",
                &["-m", "--include=*/", "--include=*.txt", "--exclude=*"],
            ),
            a(
                "--exclude with --delete",
                &["--delete", "--exclude=extra.txt"],
            )
            .prepare(older_copy),
            listed("--files-from", &[]),
            listed("--files-from -r", &["-r"]),
            listed("--files-from --no-implied-dirs", &["--no-implied-dirs"]),
            listed("--files-from a missing name", &[])
                .prepare(files_list_with_missing)
                .code(23),
            a("a wildcard source", &[]).from("backup/*.txt"),
            a("a wildcard in a directory", &[]).from("backup/sub/*/deep.txt"),
            a("a wildcard matching nothing", &[])
                .from("backup/*.nothing")
                .code(23),
        ],
    );
}

/// What the client prints: `-v`, `-vv`, `-ii`, `--stats`, `--out-format`, and how names
/// reach the server: `-s` (arguments after the handshake) and `--old-args` (split at
/// spaces by the server).
#[test]
fn output_and_argument_passing() {
    run_pulls(
        modules,
        vec![
            pull("-v", &["-a", "-v"], "backup/"),
            pull("-vv", &["-a", "-vv"], "backup/sub/"),
            pull("-ii", &["-a", "-ii"], "backup/").prepare(older_copy),
            pull("--stats", &["-a", "--stats"], "backup/"),
            pull(
                "--out-format",
                &["-a", "--out-format=%o %n %l %L %M %B %i %C"],
                "backup/",
            ),
            pull(
                "-s with spaces",
                &["-a", "-i", "-s"],
                "backup/name with spaces.txt",
            ),
            pull(
                "--old-args with spaces",
                &["-a", "-i", "--old-args"],
                "backup/name with spaces.txt",
            ),
            pull("--timeout", &["-a", "-i", "--timeout=30"], "backup/sub/"),
        ],
    );
}

impl Pull {
    /// The same pull from another source.
    fn from(mut self, src: &str) -> Pull {
        self.srcs = vec![src.to_string()];
        self
    }
}
