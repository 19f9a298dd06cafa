//! Content listings, differential: `rsync rsync://HOST/module/path/` (no destination: the
//! client lists what the server sends, as `ls -l` would), recursive and not, of a
//! directory, of the module root, of a single file, from every client and protocol (see
//! `pull_compat`). The client prints each entry's permissions, size, mtime (in its local
//! time, the same for both sides) and name, so the two servers' file lists must agree.

use crate::pull::{Client, Pair, Pull, pull};
use crate::pull_tree::reference_module;

/// The listings of the stock client.
fn listings(c: &Client) -> Vec<Pull> {
    let list = |name: &str, opts: &[&str], src: &str| pull(name, opts, src).listing().by(c);
    vec![
        list("a directory", &[], "backup/sub/"),
        list("the module root", &[], "backup/"),
        list("-r the module", &["-r"], "backup/"),
        list("a single file", &[], "backup/1.txt"),
        list("a directory without its slash", &[], "backup/sub"),
        list("-a (links with their targets)", &["-a"], "backup/"),
        list("--list-only -c", &["--list-only", "-c"], "backup/sub/"),
        list("-r --exclude", &["-r", "--exclude=*.txt"], "backup/"),
        list("a missing name", &[], "backup/no-such-file").code(23),
    ]
}

/// The listings of the other clients and protocols: a directory, a file, the module
/// recursively with and without links' targets. (Each listing costs the client about
/// 0.1 s of waiting at its end, so the whole matrix is for the stock client only.)
fn fewer_listings(c: &Client) -> Vec<Pull> {
    let keep = ["a directory", "-r the module", "a single file", "-a (links"];
    listings(c)
        .into_iter()
        .filter(|p| keep.iter().any(|k| p.name.contains(k)))
        .collect()
}

/// Every listing from the stock client and the main ones from every other client and
/// protocol, on one pair of daemons.
#[test]
fn listings_from_every_client() {
    let clients = Client::all();
    let (stock, others) = clients.split_first().expect("the stock client");
    let mut pulls = listings(stock);
    pulls.extend(others.iter().flat_map(fewer_listings));
    Pair::start(reference_module).run_all(pulls);
}
