//! Differential runs: the same fixture change and the same client command against stock
//! `rsync --daemon` and against rsyncd-rs, and what to compare of the two outcomes.

use std::path::PathBuf;

use crate::tree::{Compare, Snapshot, diff_snapshots, snapshot};
use crate::{Daemon, Fixture, Outcome, Rsync, Server};

/// One server's side of a differential run.
#[derive(Debug)]
pub struct Side {
    pub kind: Server,
    pub outcome: Outcome,
    /// The log lines the client's session(s) wrote, see [`log_events`].
    pub events: Vec<String>,
    /// The scratch directory of this side (its fixture), kept for inspection.
    pub fixture: Fixture,
}

impl Side {
    /// The reference module's directory on this side.
    pub fn module_dir(&self) -> PathBuf {
        self.fixture.module_dir()
    }
}

/// Builds a fixture with `setup` for each server, starts both daemons, runs the client
/// `client` builds against each (in parallel), and returns `[stock, ours]`.
pub fn differential(
    setup: impl Fn(&mut Fixture) + Sync,
    client: impl Fn(&Daemon, &Fixture) -> Rsync + Sync,
) -> [Side; 2] {
    let run = |kind: Server| {
        let mut fixture = Fixture::seed();
        setup(&mut fixture);
        let daemon = Daemon::start(kind, &fixture);
        let before = daemon.log().len();
        let outcome = client(&daemon, &fixture).run();
        let events = log_events(&daemon.log_since(before));
        drop(daemon);
        Side {
            kind,
            outcome,
            events,
            fixture,
        }
    };
    std::thread::scope(|scope| {
        let stock = scope.spawn(|| run(Server::Stock));
        let ours = run(Server::Ours);
        [stock.join().expect("stock side"), ours]
    })
}

/// The lines of a daemon log without their `YYYY/MM/DD HH:MM:SS [PID] ` prefix, minus the
/// lines only one of the two servers writes:
/// - ours: `session end: ...` (one summary line per connection), and the startup banner;
/// - stock: its startup banner (`rsyncd version ... starting`), and the warning about the
///   reference config's bare `ignore errors` line, which it repeats in every session
///   (ours warns once, at startup, in its own words, as the issue asks).
///
/// Everything else — `connect from`, `rsync denied on module`, `auth failed on module
/// ... : REASON`, `unknown module`, `max connections (N) reached`, `module-list request`,
/// the refusal texts and `rsync error:` lines — is what operators grep for, and is kept.
pub fn log_events(log: &str) -> Vec<String> {
    const ONE_SIDED: [&str; 4] = [
        "session end: ",
        "rsyncd version ",
        "rsyncd-rs version ",
        "params.c:Parameter() - Ignoring badly formed line",
    ];
    log.lines()
        .map(strip_log_prefix)
        .filter(|l| !ONE_SIDED.iter().any(|p| l.starts_with(p)))
        .map(without_byte_counts)
        .collect()
}

/// `sent N bytes  received M bytes  total size T` with N and M blanked: they count wire
/// bytes, which depend on how each side happened to frame and flush its output (stock's
/// own figures vary between runs of the same push). The total size is kept.
fn without_byte_counts(line: &str) -> String {
    let Some(rest) = line.strip_prefix("sent ") else {
        return line.to_string();
    };
    match (
        rest.find(" bytes  received "),
        rest.find(" bytes  total size "),
    ) {
        (Some(_), Some(t)) => format!("sent N bytes  received N{}", &rest[t..]),
        _ => line.to_string(),
    }
}

/// `2024/01/02 03:04:05 [123] text` -> `text`.
pub fn strip_log_prefix(line: &str) -> &str {
    let bytes = line.as_bytes();
    let stamped = bytes.len() > 21
        && bytes[4] == b'/'
        && bytes[7] == b'/'
        && bytes[13] == b':'
        && bytes[20] == b'[';
    if !stamped {
        return line;
    }
    match line[20..].find("] ") {
        Some(i) => &line[20 + i + 2..],
        None => line,
    }
}

/// The client's stderr lines, without the one line that depends on timing rather than on
/// the server: when a daemon exits while the client's data is still unread in its socket,
/// the kernel resets the connection, and whether the client's last read sees the reset
/// (`rsync: [sender] read error: Connection reset by peer (104)`) or a clean end of file
/// depends on which process runs first. Both servers close at the same protocol point,
/// so the exit code (compared separately) still has to agree.
pub fn stderr_without_reset(o: &Outcome) -> Vec<String> {
    o.stderr
        .lines()
        .filter(|l| !l.ends_with("read error: Connection reset by peer (104)"))
        .map(str::to_string)
        .collect()
}

/// What the client saw, as compared: exit code, standard output with the figures that
/// count wire bytes or time blanked (see [`without_wire_figures`]), and standard error up
/// to the timing-dependent reset line.
pub fn client_view(o: &Outcome) -> (i32, Vec<String>, Vec<String>) {
    (
        o.code,
        o.stdout.lines().map(without_wire_figures).collect(),
        stderr_without_reset(o),
    )
}

/// A client output line with the figures blanked that depend on framing or on time
/// rather than on what the server decided: `sent N bytes  received M bytes  R bytes/sec`
/// and the speedup of `-v`'s summary, `--stats`'s `Total bytes sent/received` and its file
/// list times. Like the daemon log's byte counts ([`log_events`]) they count wire bytes,
/// which differ with how each side framed and flushed its output (stock's own vary between
/// runs of one push). Sizes, file counts, and literal and matched data are kept: the
/// sending client computes them from the server's requests and block sums.
pub fn without_wire_figures(line: &str) -> String {
    if line.starts_with("sent ")
        && line.contains(" bytes  received ")
        && line.ends_with(" bytes/sec")
    {
        return "sent N bytes  received N bytes  N bytes/sec".to_string();
    }
    if let Some(rest) = line.strip_prefix("total size is ") {
        if let Some(at) = rest.find("  speedup is ") {
            let dry = if rest.ends_with(" (DRY RUN)") {
                " (DRY RUN)"
            } else {
                ""
            };
            return format!("total size is {}  speedup is N{dry}", &rest[..at]);
        }
    }
    // A pulling client counts the list's bytes as read off the socket, multiplex frame
    // headers included, so where the server flushed shows in this figure too (stock's
    // own protocol-30 lists carry one more frame header than its 31 ones).
    for prefix in [
        "File list size: ",
        "Total bytes sent: ",
        "Total bytes received: ",
        "File list generation time: ",
        "File list transfer time: ",
    ] {
        if line.starts_with(prefix) {
            return format!("{prefix}N");
        }
    }
    line.to_string()
}

/// Asserts that the client saw the same thing from both servers: exit code, stdout, and
/// stderr, as [`client_view`] reads them.
pub fn assert_same_client_view(sides: &[Side; 2]) {
    let [stock, ours] = sides;
    assert_eq!(
        client_view(&stock.outcome),
        client_view(&ours.outcome),
        "the client saw different outcomes\n--- stock: {:#?}\n--- ours: {:#?}",
        stock.outcome,
        ours.outcome
    );
}

/// One server's side of a run of several client commands in a row
/// ([`differential_steps`]).
#[derive(Debug)]
pub struct Run {
    pub kind: Server,
    /// Each command's outcome and the module's tree right after it, in order.
    pub steps: Vec<Step>,
    /// The log lines of all the steps' sessions, see [`log_events`].
    pub events: Vec<String>,
    pub fixture: Fixture,
}

/// One command of a [`Run`].
#[derive(Debug)]
pub struct Step {
    pub outcome: Outcome,
    /// The module directory right after the command.
    pub tree: Snapshot,
}

impl Run {
    /// The reference module's directory on this side.
    pub fn module_dir(&self) -> PathBuf {
        self.fixture.module_dir()
    }

    /// The last step's outcome.
    pub fn last(&self) -> &Outcome {
        &self.steps.last().expect("a run has steps").outcome
    }
}

/// As [`differential`], with `steps` client commands in a row against one daemon per
/// server: `client(i, ..)` builds the `i`th (and may change the source tree first), and
/// the module's tree is read after each. Returns `[stock, ours]`.
pub fn differential_steps(
    setup: impl Fn(&mut Fixture) + Sync,
    steps: usize,
    client: impl Fn(usize, &Daemon, &Fixture) -> Rsync + Sync,
) -> [Run; 2] {
    let run = |kind: Server| {
        let mut fixture = Fixture::seed();
        setup(&mut fixture);
        let daemon = Daemon::start(kind, &fixture);
        let mut done = Vec::new();
        let mut events = Vec::new();
        for i in 0..steps {
            let before = daemon.log().len();
            let outcome = client(i, &daemon, &fixture).run();
            // The session may log (and finish writing) after the client exited: wait for
            // it before the next step, so each step's lines stay together and the tree
            // is complete.
            events.extend(log_events(&daemon.log_since(before)));
            let tree = snapshot(&fixture.module_dir());
            done.push(Step { outcome, tree });
        }
        drop(daemon);
        Run {
            kind,
            steps: done,
            events,
            fixture,
        }
    };
    std::thread::scope(|scope| {
        let stock = scope.spawn(|| run(Server::Stock));
        let ours = run(Server::Ours);
        [stock.join().expect("stock side"), ours]
    })
}

/// How two runs differ, step by step: the client's view ([`client_view`]) and the module
/// tree after each step (compared as `what` says). Empty when they agree.
pub fn step_differences(runs: &[Run; 2], what: Compare) -> Vec<String> {
    let [stock, ours] = runs;
    let mut found = Vec::new();
    if stock.steps.len() != ours.steps.len() {
        found.push(format!(
            "{} steps (stock) vs {} (ours)",
            stock.steps.len(),
            ours.steps.len()
        ));
    }
    for (i, (s, o)) in stock.steps.iter().zip(&ours.steps).enumerate() {
        let (sv, ov) = (client_view(&s.outcome), client_view(&o.outcome));
        if sv != ov {
            found.push(format!(
                "step {i}: the client saw different outcomes: exit {} (stock) vs {} (ours)\n\
                 stdout (- stock, + ours):\n{}stderr (- stock, + ours):\n{}",
                sv.0,
                ov.0,
                line_diff(&sv.1, &ov.1),
                line_diff(&sv.2, &ov.2),
            ));
        }
        let d = diff_snapshots(&s.tree, &o.tree, what, "stock", "ours");
        if !d.is_empty() {
            found.push(format!(
                "step {i}: the module trees differ (stock vs ours):\n  {}",
                d.join("\n  ")
            ));
        }
    }
    found
}

/// Asserts that every step of two runs gave the client the same view and left the same
/// module tree ([`step_differences`]); the message names every step that differs.
pub fn assert_same_steps(runs: &[Run; 2], what: Compare) {
    let found = step_differences(runs, what);
    assert!(found.is_empty(), "{}", found.join("\n"));
}

/// How two runs' logs differ after [`log_events`]'s filtering (`None` when equal).
pub fn log_difference(runs: &[Run; 2]) -> Option<String> {
    let [stock, ours] = runs;
    (stock.events != ours.events).then(|| {
        format!(
            "the logs differ (- stock, + ours):\n{}",
            line_diff(&stock.events, &ours.events)
        )
    })
}

/// The lines of `a` and `b` as a diff: `    ` both, `  - ` only `a`, `  + ` only `b`
/// (longest common subsequence; the outputs compared here are short).
pub fn line_diff(a: &[String], b: &[String]) -> String {
    let (n, m) = (a.len(), b.len());
    let mut lcs = vec![vec![0usize; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, String::new());
    while i < n || j < m {
        if i < n && j < m && a[i] == b[j] {
            out.push_str(&format!("    {}\n", a[i]));
            i += 1;
            j += 1;
        } else if j < m && (i == n || lcs[i][j + 1] >= lcs[i + 1][j]) {
            out.push_str(&format!("  + {}\n", b[j]));
            j += 1;
        } else {
            out.push_str(&format!("  - {}\n", a[i]));
            i += 1;
        }
    }
    out
}

/// Asserts that both runs' logs are equal after [`log_events`]'s filtering.
pub fn assert_same_run_log(runs: &[Run; 2]) {
    if let Some(d) = log_difference(runs) {
        panic!("{d}");
    }
}

/// Asserts that both logs hold the same lines among those starting with one of
/// `prefixes`, in the same order.
pub fn assert_same_events(sides: &[Side; 2], prefixes: &[&str]) {
    let pick = |s: &Side| -> Vec<String> {
        s.events
            .iter()
            .filter(|l| prefixes.iter().any(|p| l.starts_with(p)))
            .cloned()
            .collect()
    };
    let [stock, ours] = sides;
    assert_eq!(
        pick(stock),
        pick(ours),
        "the logs differ\n--- stock log: {:#?}\n--- ours log: {:#?}",
        stock.events,
        ours.events
    );
}

/// Asserts that both logs are equal after [`log_events`]'s filtering.
pub fn assert_same_log(sides: &[Side; 2]) {
    let [stock, ours] = sides;
    assert_eq!(
        stock.events, ours.events,
        "the logs differ\n--- stock: {:#?}\n--- ours: {:#?}",
        stock.events, ours.events
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_are_stripped() {
        assert_eq!(
            strip_log_prefix("2024/01/02 03:04:05 [123] connect from x (1.2.3.4)"),
            "connect from x (1.2.3.4)"
        );
        assert_eq!(strip_log_prefix("plain"), "plain");
        assert_eq!(
            log_events(
                "2024/01/02 03:04:05 [1] rsyncd version 3.5.0 starting, listening on port 1\n\
                 2024/01/02 03:04:05 [2] connect from a (1.1.1.1)\n\
                 2024/01/02 03:04:05 [2] session end: a (1.1.1.1) module - user -: ok\n"
            ),
            vec!["connect from a (1.1.1.1)".to_string()]
        );
    }

    #[test]
    fn wire_figures_are_blanked_and_sizes_kept() {
        assert_eq!(
            without_wire_figures("sent 1,234 bytes  received 56 bytes  2,580.00 bytes/sec"),
            "sent N bytes  received N bytes  N bytes/sec"
        );
        assert_eq!(
            without_wire_figures("total size is 102,400  speedup is 79.38 (DRY RUN)"),
            "total size is 102,400  speedup is N (DRY RUN)"
        );
        assert_eq!(
            without_wire_figures("Total bytes received: 1,017"),
            "Total bytes received: N"
        );
        assert_eq!(
            without_wire_figures("Literal data: 4,096 bytes"),
            "Literal data: 4,096 bytes"
        );
    }
}
