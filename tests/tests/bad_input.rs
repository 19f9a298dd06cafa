//! Hostile or broken peers: idle connections, over-long lines, garbage. Each case runs
//! against both servers; the daemon must answer as stock does and keep serving.

use std::time::{Duration, Instant};

use e2e::compare::log_events;
use e2e::raw::RawClient;
use e2e::{Daemon, Fixture, Rsync, Server};

/// What a raw peer saw: the daemon's bytes after the greeting, and whether it closed;
/// and the daemon's log lines for the session (see `e2e::compare::log_events`).
#[derive(Debug, PartialEq, Eq)]
struct Seen {
    reply: String,
    closed: bool,
    events: Vec<String>,
}

/// Runs `poke` against each server (in parallel), then checks the listener still serves
/// a real client; returns `[stock, ours]`.
fn against_both(poke: impl Fn(&mut RawClient) + Sync) -> [Seen; 2] {
    against_both_with(|_| {}, poke)
}

/// As [`against_both`], with a fixture change first.
fn against_both_with(
    setup: impl Fn(&mut Fixture) + Sync,
    poke: impl Fn(&mut RawClient) + Sync,
) -> [Seen; 2] {
    let run = |kind: Server| {
        let mut f = Fixture::seed();
        f.set_module("backup", "list", "yes");
        setup(&mut f);
        let d = Daemon::start(kind, &f);
        let mut raw = RawClient::connect(d.port, Duration::from_secs(5));
        poke(&mut raw);
        let reply = String::from_utf8_lossy(&raw.rest()).into_owned();
        let closed = raw.is_closed_by_peer();
        drop(raw);
        let events = log_events(&d.log_since(0));
        assert_listener_serves(&d);
        Seen {
            reply,
            closed,
            events,
        }
    };
    std::thread::scope(|s| {
        let stock = s.spawn(|| run(Server::Stock));
        let ours = run(Server::Ours);
        [stock.join().unwrap(), ours]
    })
}

/// A real client still gets the module list, within a few seconds.
fn assert_listener_serves(d: &Daemon) {
    let started = Instant::now();
    let out = Rsync::client()
        .arg(format!("rsync://127.0.0.1:{}/", d.port))
        .timeout(Duration::from_secs(20))
        .run();
    assert_eq!(out.code, 0, "{:?} daemon stopped serving: {out:#?}", d.kind);
    assert!(out.stdout.contains("backup"), "{out:#?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?} took {:?} to list",
        d.kind,
        started.elapsed()
    );
}

/// Each idle connection is a forked session waiting for a greeting (up to the 60 s
/// handshake limit); the real client must not queue behind them. (Opening them takes a
/// while on some sandboxes, where fork is slow; both servers pay it alike, in parallel.)
#[test]
fn a_hundred_idle_connections_do_not_stop_a_real_client() {
    let run = |kind: Server| {
        let mut f = Fixture::seed();
        f.set_module("backup", "list", "yes");
        let d = Daemon::start(kind, &f);
        let idle: Vec<RawClient> = (0..100)
            .map(|_| RawClient::connect(d.port, Duration::from_secs(1)))
            .collect();
        assert_listener_serves(&d);
        drop(idle);
    };
    std::thread::scope(|s| {
        let stock = s.spawn(|| run(Server::Stock));
        run(Server::Ours);
        stock.join().unwrap();
    });
}

#[test]
fn an_over_long_module_line_ends_the_session() {
    let seen = against_both(|raw| {
        raw.greet("md5");
        let _ = raw.send(format!("{}\n", "m".repeat(2000)).as_bytes());
    });
    assert_eq!(seen[0], seen[1]);
    assert!(seen[1].closed, "{:?}", seen[1]);
}

#[test]
fn an_over_long_auth_response_ends_the_session() {
    let seen = against_both(|raw| {
        raw.greet("md5");
        let _ = raw.send(b"backup\n");
        let challenge = raw.line().unwrap_or_default();
        assert!(challenge.starts_with("@RSYNCD: AUTHREQD "), "{challenge}");
        let _ = raw.send(format!("rsync_backup {}\n", "A".repeat(8000)).as_bytes());
    });
    assert_eq!(seen[0], seen[1]);
    assert!(seen[1].closed, "{:?}", seen[1]);
}

#[test]
fn garbage_then_close_does_not_kill_the_listener() {
    let seen = against_both(|raw| {
        let mut x: u32 = 7;
        let junk: Vec<u8> = (0..4096)
            .map(|_| {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                (x >> 16) as u8
            })
            .collect();
        let _ = raw.send(&junk);
        raw.shutdown_write();
    });
    assert_eq!(seen[0].closed, seen[1].closed);
    assert!(seen[1].closed);
}

#[test]
fn a_greeting_without_a_version_is_answered_as_upstream() {
    let seen = against_both(|raw| {
        let _ = raw.line();
        let _ = raw.send(b"HELLO\n");
    });
    assert_eq!(seen[0], seen[1]);
}

/// A peer that says nothing is dropped at the handshake deadline (`timeout`, at most
/// 60 s), and both logs say so in the same words.
#[test]
fn a_silent_peer_is_dropped_at_the_handshake_deadline() {
    let seen = against_both_with(
        |f| f.set_global("timeout", "2"),
        |raw| {
            let _ = raw.line();
        },
    );
    assert_eq!(seen[0], seen[1]);
    assert!(seen[1].closed);
    assert!(
        seen[1]
            .events
            .iter()
            .any(|l| l == "[Receiver] daemon handshake timeout -- exiting"),
        "{:#?}",
        seen[1].events
    );
}
