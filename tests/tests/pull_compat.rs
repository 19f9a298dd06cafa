//! Pulls from every client and protocol, differential (see `pull`): the stock client at
//! its own protocol (32) and forced to 27..=31, and the old clients rsync 3.1.1, 3.1.2
//! and 3.2.7 (skipped when missing, but under `CI=true`), each pulling the reference
//! module with `-a` and `-az`, and a delta of a 2 MiB file whose older copy the client
//! holds, where the literal and matched data the client counts must agree.

use std::path::Path;

use e2e::Fixture;
use e2e::tree::{pseudo_random, write_file};

use crate::pull::{Client, Pair, Pull, Pulled, pull};
use crate::pull_tree::pull_tree;
use crate::push::T0;

/// The 2 MiB file of the delta pulls.
const BIG: usize = 2 << 20;

/// The pull tree, and a 2 MiB file beside it.
fn with_big_file(f: &mut Fixture) {
    let m = f.module_dir();
    pull_tree(&m);
    write_file(&m, "big.bin", &pseudo_random(BIG, 42), 0o644, T0 + 500);
    e2e::tree::set_mtime(&m, T0 + 100);
}

/// The client's older copy of the 2 MiB file, with an older mtime: ten bytes changed
/// near the start, 4 KiB around the 700 KiB mark, 64 KiB in the middle, and the last
/// 1000 bytes missing.
fn older_big_file(client: &Path) {
    let mut data = pseudo_random(BIG, 42);
    data[100..110].copy_from_slice(b"0123456789");
    let at = 700 * 1024 - 2048;
    data[at..at + 4096].copy_from_slice(&pseudo_random(4096, 7));
    let at = BIG / 2;
    data[at..at + 65536].copy_from_slice(&pseudo_random(65536, 8));
    data.truncate(BIG - 1000);
    write_file(&client.join("dest"), "big.bin", &data, 0o644, T0);
}

/// Both `--stats` show the same literal and matched data, and stock matched most of
/// the file (the delta worked, it was no whole-file copy).
fn same_delta(sides: &[Pulled; 2]) -> Vec<String> {
    let figure = |p: &Pulled, name: &str| -> Option<u64> {
        p.outcome.stdout.lines().find_map(|l| {
            l.strip_prefix(name)
                .map(|v| v.trim_end_matches(" bytes").replace(',', ""))
                .and_then(|v| v.parse().ok())
        })
    };
    let mut found = Vec::new();
    for name in ["Literal data: ", "Matched data: "] {
        let (s, o) = (figure(&sides[0], name), figure(&sides[1], name));
        if s != o {
            found.push(format!("{name}{s:?} (stock) vs {o:?} (ours)"));
        }
    }
    match figure(&sides[0], "Matched data: ") {
        Some(m) if m > (BIG as u64) * 9 / 10 => {}
        m => found.push(format!("stock matched {m:?} bytes of {BIG}")),
    }
    found
}

/// `-a`, `-az` and the delta pull from each client and protocol, on one pair of daemons.
#[test]
fn every_client_and_protocol() {
    let mut pulls: Vec<Pull> = Vec::new();
    for c in Client::all() {
        pulls.push(pull("-a", &["-a", "-i"], "backup/").by(&c));
        pulls.push(pull("-az", &["-a", "-i", "-z"], "backup/").by(&c));
        pulls.push(pull("-aH a sub-directory", &["-a", "-i", "-H"], "backup/sub/").by(&c));
        pulls.push(
            pull(
                "a delta of 2 MiB",
                &["-a", "-i", "--no-W", "--stats"],
                "backup/big.bin",
            )
            .by(&c)
            .prepare(older_big_file)
            .check(same_delta),
        );
    }
    Pair::start(with_big_file).run_all(pulls);
}
