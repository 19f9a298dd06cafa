//! Pulls from the reference module, differential: stock `rsync --daemon` and rsyncd-rs
//! serve the same module contents under the same config, and the same client command
//! pulls from each into a fresh directory. Compared per case: the pulled trees (names,
//! types, content, modes, times, owners, symlink targets, hard-link groups), the
//! client's exit code, standard output (itemized lists, `--stats`) and standard error,
//! and the daemons' log lines.
//!
//! A [`Pair`] of daemons serves one module setup for many cases in a row, so a matrix
//! costs client runs, not daemon starts. The module tree is in `pull_tree`, the option
//! matrix in `pull_options`, the module parameters in `pull_module`, older clients and
//! protocols in `pull_compat`, listings in `list_content`, confinement in `pull_safety`.
//!
//! `E2E_SHOW_PULLS=1` prints stock's outcome and log lines for every case (with
//! `--nocapture`): what a case expects of the server, to read when writing one.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use e2e::compare::{client_view, line_diff, log_events};
use e2e::tree::{Compare, Snapshot, diff_snapshots, hard_link_groups, snapshot};
use e2e::{Daemon, Fixture, Outcome, Rsync, Server, old_client_or_skip, run_cases};

use crate::pull_tree::{is_a_copy_of_the_module, reference_module};
use crate::push::T0;

/// A client of the pulls: a binary and the arguments that select its protocol.
#[derive(Debug, Clone)]
pub(crate) struct Client {
    pub(crate) name: String,
    bin: PathBuf,
    extra: Vec<String>,
}

impl Client {
    /// The stock client at its own protocol.
    pub(crate) fn stock() -> Client {
        Client {
            name: "stock".into(),
            bin: e2e::stock_rsync(),
            extra: Vec::new(),
        }
    }

    /// The stock client forced to `protocol`.
    pub(crate) fn stock_at(protocol: u32) -> Client {
        Client {
            name: format!("stock --protocol={protocol}"),
            bin: e2e::stock_rsync(),
            extra: vec![format!("--protocol={protocol}")],
        }
    }

    /// An old client ([`old_client_or_skip`]: skipped when missing, but under `CI=true`).
    pub(crate) fn old(version: &str) -> Option<Client> {
        old_client_or_skip(version).map(|bin| Client {
            name: format!("rsync {version}"),
            bin,
            extra: Vec::new(),
        })
    }

    /// Every client and protocol the pulls are tried with: the stock client at its own
    /// protocol (first) and forced to 27..=31, and the old clients that are there.
    pub(crate) fn all() -> Vec<Client> {
        let mut v = vec![Client::stock()];
        v.extend((27..=31).map(Client::stock_at));
        v.extend(
            ["3.1.1", "3.1.2", "3.2.7"]
                .into_iter()
                .filter_map(Client::old),
        );
        v
    }

    fn rsync(&self) -> Rsync {
        Rsync::with_binary(self.bin.clone()).args(self.extra.clone())
    }
}

/// One pull: `CLIENT OPTS --password-file=PW rsync://rsync_backup@HOST:PORT/SRC... dest/`,
/// run in a fresh client directory.
#[derive(Debug, Clone)]
pub(crate) struct Pull {
    pub(crate) name: String,
    pub(crate) client: Client,
    pub(crate) opts: Vec<String>,
    /// The sources after `rsync://USER@HOST:PORT/`, module first (`backup/sub/`).
    pub(crate) srcs: Vec<String>,
    /// Whether there is a destination (`dest/`); without one the client lists.
    pub(crate) has_dest: bool,
    /// Fills the client directory before the pull (a destination with older or extra
    /// files, a `--files-from` list).
    pub(crate) prepare: fn(&Path),
    /// What of the pulled trees to compare.
    pub(crate) what: Compare,
    /// The exit code stock gives: a check that the case does what it means to.
    pub(crate) code: i32,
    /// A further check of the two sides, for what the comparison does not see.
    pub(crate) check: fn(&[Pulled; 2]) -> Vec<String>,
}

fn no_prepare(_: &Path) {}

fn no_check(_: &[Pulled; 2]) -> Vec<String> {
    Vec::new()
}

/// A pull of `src` (under `rsync://.../`) into `dest/` with `opts`, by the stock client,
/// expected to succeed.
pub(crate) fn pull(name: &str, opts: &[&str], src: &str) -> Pull {
    Pull {
        name: name.to_string(),
        client: Client::stock(),
        opts: opts.iter().map(|s| s.to_string()).collect(),
        srcs: vec![src.to_string()],
        has_dest: true,
        prepare: no_prepare,
        what: Compare::ALL,
        code: 0,
        check: no_check,
    }
}

impl Pull {
    /// The same pull from another client.
    pub(crate) fn by(mut self, client: &Client) -> Pull {
        self.name = format!("{}: {}", client.name, self.name);
        self.client = client.clone();
        self
    }

    /// The same pull, expecting stock to exit with `code`.
    pub(crate) fn code(mut self, code: i32) -> Pull {
        self.code = code;
        self
    }

    /// The same pull after `prepare` filled the client directory.
    pub(crate) fn prepare(mut self, prepare: fn(&Path)) -> Pull {
        self.prepare = prepare;
        self
    }

    /// The same pull with a further check.
    pub(crate) fn check(mut self, check: fn(&[Pulled; 2]) -> Vec<String>) -> Pull {
        self.check = check;
        self
    }

    /// The same command without a destination: a listing.
    pub(crate) fn listing(mut self) -> Pull {
        self.has_dest = false;
        self
    }
}

/// One daemon of a [`Pair`], with the scratch directory its config and module live in.
#[derive(Debug)]
pub(crate) struct Served {
    pub(crate) kind: Server,
    pub(crate) fixture: Fixture,
    daemon: Daemon,
}

/// Stock and ours, each serving its own copy of one module setup.
#[derive(Debug)]
pub(crate) struct Pair {
    sides: [Served; 2],
    pulls: AtomicUsize,
}

/// One side of a pull.
#[derive(Debug)]
pub(crate) struct Pulled {
    pub(crate) kind: Server,
    pub(crate) outcome: Outcome,
    /// The pull's daemon log lines ([`log_events`]), scratch paths replaced.
    pub(crate) events: Vec<String>,
    /// The destination as pulled (empty for a listing).
    pub(crate) tree: Snapshot,
    /// The module's directory on this side.
    pub(crate) module_dir: PathBuf,
}

/// Mtimes later than this are the clock's, not the module's (whose times are around
/// [`T0`]): what a pull without `-t` or an implied directory got, which may fall in
/// different seconds on the two sides. They compare as equal to one another.
const CLOCK_TIMES: i64 = T0 + 10_000_000;

impl Pair {
    /// Builds a fixture for each server with `setup` (module tree and config), starts
    /// both daemons.
    pub(crate) fn start(setup: impl Fn(&mut Fixture) + Sync) -> Pair {
        let serve = |kind: Server| {
            let mut fixture = Fixture::seed();
            setup(&mut fixture);
            let daemon = Daemon::start(kind, &fixture);
            Served {
                kind,
                fixture,
                daemon,
            }
        };
        let sides = std::thread::scope(|s| {
            let stock = s.spawn(|| serve(Server::Stock));
            let ours = serve(Server::Ours);
            [stock.join().expect("stock side"), ours]
        });
        Pair {
            sides,
            pulls: AtomicUsize::new(0),
        }
    }

    /// Runs `p` against both daemons at once.
    pub(crate) fn pull(&self, p: &Pull) -> [Pulled; 2] {
        let n = self.pulls.fetch_add(1, Ordering::SeqCst);
        let [stock, ours] = &self.sides;
        std::thread::scope(|s| {
            let st = s.spawn(|| pull_from(stock, p, n));
            let o = pull_from(ours, p, n);
            [st.join().expect("stock side"), o]
        })
    }

    /// Runs `change` on each side's module directory (a change between pulls).
    pub(crate) fn each_module(&self, change: impl Fn(&Path)) {
        for side in &self.sides {
            change(&side.fixture.module_dir());
        }
    }

    /// Runs every case, each to its end, and fails naming those that differ.
    pub(crate) fn run_all(&self, pulls: Vec<Pull>) {
        run_cases(
            pulls
                .iter()
                .map(|p| (p.name.clone(), move || assert_same_pulls(p, &self.pull(p)))),
        );
    }
}

/// Starts a [`Pair`] with `setup` and runs every case against it.
pub(crate) fn run_pulls(setup: impl Fn(&mut Fixture) + Sync, pulls: Vec<Pull>) {
    Pair::start(setup).run_all(pulls);
}

fn pull_from(side: &Served, p: &Pull, n: usize) -> Pulled {
    let scratch = side.fixture.dir();
    let client_dir = scratch.join(format!("client-{n}"));
    std::fs::create_dir_all(&client_dir)
        .unwrap_or_else(|e| panic!("{:?}: {}: {e}", side.kind, client_dir.display()));
    (p.prepare)(&client_dir);
    let mut cmd = p
        .client
        .rsync()
        .args(p.opts.iter().cloned())
        .arg(format!(
            "--password-file={}",
            side.fixture.password_file().display()
        ))
        .args(
            p.srcs
                .iter()
                .map(|s| format!("rsync://rsync_backup@127.0.0.1:{}/{s}", side.daemon.port)),
        )
        .cwd(&client_dir);
    if p.has_dest {
        cmd = cmd.arg("dest/");
    }
    let before = side.daemon.log().len();
    let outcome = cmd.run();
    // The scratch directories and ports differ between the sides.
    let port = side.daemon.port.to_string();
    let scrub = |t: &str| {
        without_pids(
            &t.replace(&scratch.display().to_string(), "SCRATCH")
                .replace(&format!("port {port}"), "port PORT")
                .replace(&format!(":{port}/"), ":PORT/"),
        )
    };
    let events = log_events(&side.daemon.log_after_sessions(before))
        .iter()
        .map(|l| scrub(l))
        .collect();
    let outcome = Outcome {
        code: outcome.code,
        stdout: scrub(&outcome.stdout),
        stderr: scrub(&outcome.stderr),
    };
    let dest = client_dir.join("dest");
    let mut tree = if dest.exists() {
        snapshot(&dest)
    } else {
        Snapshot::new()
    };
    for e in tree.values_mut() {
        if e.mtime > CLOCK_TIMES {
            e.mtime = CLOCK_TIMES;
        }
    }
    Pulled {
        kind: side.kind,
        outcome,
        events,
        tree,
        module_dir: side.fixture.module_dir(),
    }
}

/// `pid=123` as `pid=N`: `-vvvv` shows the processes' ids.
fn without_pids(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("pid=") {
        out.push_str(&rest[..at + 4]);
        rest = &rest[at + 4..];
        let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        if digits > 0 {
            out.push('N');
        }
        rest = &rest[digits..];
    }
    out.push_str(rest);
    out
}

/// Every way the two sides of a pull differ, and whether stock's exit code is the one
/// the case expects.
pub(crate) fn pull_differences(p: &Pull, sides: &[Pulled; 2]) -> Vec<String> {
    let [stock, ours] = sides;
    if std::env::var_os("E2E_SHOW_PULLS").is_some() {
        eprintln!("=== {}\n{:#?}\n{:#?}", p.name, stock.outcome, stock.events);
    }
    let mut found = Vec::new();
    let (sv, ov) = (client_view(&stock.outcome), client_view(&ours.outcome));
    if !same_lines_but_interleaving(&sv, &ov) {
        found.push(format!(
            "the client saw different outcomes: exit {} (stock) vs {} (ours)\n\
             stdout (- stock, + ours):\n{}stderr (- stock, + ours):\n{}",
            sv.0,
            ov.0,
            line_diff(&sv.1, &ov.1),
            line_diff(&sv.2, &ov.2),
        ));
    }
    let d = diff_snapshots(&stock.tree, &ours.tree, p.what, "stock", "ours");
    if !d.is_empty() {
        found.push(format!(
            "the pulled trees differ (stock vs ours):\n  {}",
            d.join("\n  ")
        ));
    }
    let (hs, ho) = (hard_link_groups(&stock.tree), hard_link_groups(&ours.tree));
    if hs != ho {
        found.push(format!("hard links differ: stock {hs:?} vs ours {ho:?}"));
    }
    if stock.events != ours.events {
        found.push(format!(
            "the logs differ (- stock, + ours):\n{}",
            line_diff(&stock.events, &ours.events)
        ));
    }
    if stock.outcome.code != p.code {
        found.push(format!(
            "stock exited {} where the case expects {}: {:#?}",
            stock.outcome.code, p.code, stock.outcome
        ));
    }
    found.extend((p.check)(sides));
    found
}

/// Whether two client views are equal, or would be but for how the lines of the client's
/// two processes interleave. In a pull the client's generator prints the directories,
/// links, devices, unchanged files and `*deleting` lines, and its receiver the files it
/// received, each straight to the terminal: their order relative to one another depends
/// on scheduling (stock against stock differs from run to run), while each process's
/// own lines come in file-list order. So the lines are compared in order, and failing
/// that as sorted lists.
fn same_lines_but_interleaving(
    a: &(i32, Vec<String>, Vec<String>),
    b: &(i32, Vec<String>, Vec<String>),
) -> bool {
    let sorted = |v: &[String]| {
        let mut v = v.to_vec();
        v.sort();
        v
    };
    a == b || (a.0 == b.0 && sorted(&a.1) == sorted(&b.1) && sorted(&a.2) == sorted(&b.2))
}

/// Fails with every difference [`pull_differences`] finds.
pub(crate) fn assert_same_pulls(p: &Pull, sides: &[Pulled; 2]) {
    let found = pull_differences(p, sides);
    assert!(found.is_empty(), "{}", found.join("\n"));
}

/// The whole module, a sub-directory with and without its trailing slash, single files,
/// a name with spaces, `-R` with implied directories (and without them), several
/// sources in one command.
#[test]
fn what_a_pull_names() {
    run_pulls(
        reference_module,
        vec![
            pull("-a backup/", &["-a", "-i"], "backup/").check(is_a_copy_of_the_module),
            pull("-a backup/sub/dir/", &["-a", "-i"], "backup/sub/dir/"),
            pull("-a backup/sub/dir", &["-a", "-i"], "backup/sub/dir"),
            pull("-a backup (no slash)", &["-a", "-i"], "backup"),
            pull("a single file", &["-a", "-i"], "backup/1.txt"),
            pull(
                "a file in a sub-directory",
                &["-a", "-i"],
                "backup/sub/dir/deep.txt",
            ),
            pull(
                "a name with spaces",
                &["-a", "-i"],
                "backup/name with spaces.txt",
            ),
            pull(
                "-R with implied directories",
                &["-a", "-i", "-R"],
                "backup/a/b/c",
            ),
            pull(
                "-R with a dot dir",
                &["-a", "-i", "-R"],
                "backup/a/./b/c/file.txt",
            ),
            pull(
                "-R --no-implied-dirs",
                &["-a", "-i", "-R", "--no-implied-dirs"],
                "backup/a/b/c/file.txt",
            ),
            Pull {
                srcs: vec![
                    "backup/1.txt".into(),
                    "backup/sub/dir/".into(),
                    "backup/hl".into(),
                ],
                ..pull("several sources", &["-a", "-i"], "")
            },
            pull("a missing file", &["-a", "-i"], "backup/no-such-file").code(23),
        ],
    );
}
