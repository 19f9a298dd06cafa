//! Differential runs: the same fixture change and the same client command against stock
//! `rsync --daemon` and against rsyncd-rs, and what to compare of the two outcomes.

use std::path::PathBuf;

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

/// Asserts that the client saw the same thing from both servers: exit code, stdout, and
/// stderr up to the timing-dependent reset line.
pub fn assert_same_client_view(sides: &[Side; 2]) {
    let [stock, ours] = sides;
    let view = |s: &Side| {
        (
            s.outcome.code,
            s.outcome.stdout.clone(),
            stderr_without_reset(&s.outcome),
        )
    };
    assert_eq!(
        view(stock),
        view(ours),
        "the client saw different outcomes\n--- stock: {:#?}\n--- ours: {:#?}",
        stock.outcome,
        ours.outcome
    );
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
}
