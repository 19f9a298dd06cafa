//! Access control from the reference config: hosts allow/deny with a client bound to
//! 127.0.0.2, `read only`, `refuse options` and `max connections`.

use std::time::Duration;

use e2e::compare::{assert_same_client_view, assert_same_events, assert_same_log, differential};
use e2e::raw::RawClient;
use e2e::tree::snapshot;
use e2e::{Daemon, Fixture, Rsync, Server};

use crate::auth::push;

/// The push of the reference deployment, from 127.0.0.2.
fn push_from_127_0_0_2(d: &Daemon, f: &Fixture, password: &std::path::Path) -> Rsync {
    push(d, f, "rsync_backup", password).arg("--address=127.0.0.2")
}

/// `hosts deny = 0.0.0.0/32` becomes `127.0.0.2/32`: only an address changes.
fn deny_127_0_0_2(f: &mut Fixture) {
    let conf = f
        .conf()
        .replace("hosts deny = 0.0.0.0/32", "hosts deny = 127.0.0.2/32");
    assert_ne!(conf, f.conf(), "the seed's hosts deny line moved");
    f.set_conf(&conf);
}

#[test]
fn a_denied_address_is_refused_as_an_unknown_module() {
    let sides = differential(deny_127_0_0_2, |d, f| {
        push_from_127_0_0_2(d, f, &f.password_file())
    });
    assert_same_client_view(&sides);
    assert_same_log(&sides);
    let [stock, ours] = &sides;
    assert_eq!(stock.outcome.code, 5);
    // `list = false`: upstream does not tell a denied host that the module exists.
    assert!(
        stock
            .outcome
            .stderr
            .contains("@ERROR: Unknown module 'backup'"),
        "{:#?}",
        stock.outcome
    );
    assert!(
        ours.events
            .iter()
            .any(|l| l.starts_with("rsync denied on module backup from ")
                && l.ends_with(" (127.0.0.2)")),
        "{:#?}",
        ours.events
    );
    assert_eq!(snapshot(&ours.module_dir()).len(), 1);
}

/// Upstream's rule: with both lists set, a host in neither is let in. The reference
/// `hosts allow = 127.0.0.1/32` does not name 127.0.0.2 and `hosts deny = 0.0.0.0/32`
/// does not either, so 127.0.0.2 gets as far as authentication (a wrong password there
/// shows it was admitted, without needing a transfer).
#[test]
fn a_host_in_neither_list_is_admitted_when_both_lists_exist() {
    let sides = differential(
        |_| {},
        |d, f| push_from_127_0_0_2(d, f, &f.password_file_with("wrong.pw", "2")),
    );
    assert_same_client_view(&sides);
    assert_same_log(&sides);
    let [stock, ours] = &sides;
    assert_eq!(stock.outcome.code, 5);
    assert!(
        stock
            .outcome
            .stderr
            .contains("@ERROR: auth failed on module backup")
    );
    assert!(
        ours.events.iter().any(
            |l| l.starts_with("rsync allowed access on module backup from ")
                && l.ends_with(" (127.0.0.2)")
        ),
        "{:#?}",
        ours.events
    );
}

#[test]
fn a_push_into_a_read_only_module_exits_1() {
    let sides = differential(
        |f| f.set_global("read only", "true"),
        |d, f| push(d, f, "rsync_backup", &f.password_file()),
    );
    assert_same_client_view(&sides);
    assert_same_log(&sides);
    let [stock, ours] = &sides;
    assert_eq!(stock.outcome.code, 1);
    assert!(
        stock.outcome.stderr.starts_with(
            "ERROR: module is read only\n\
             rsync error: syntax or usage error (code 1) at main.c(1185) [Receiver=3.5.0]\n"
        ),
        "{:#?}",
        stock.outcome
    );
    assert_eq!(snapshot(&ours.module_dir()).len(), 1);
}

#[test]
fn a_pull_from_a_write_only_module_exits_1() {
    let sides = differential(
        |f| f.set_module("backup", "write only", "yes"),
        |d, f| {
            Rsync::client()
                .args(["-a", "--password-file"])
                .arg(f.password_file().display().to_string())
                .arg(d.url(Some("rsync_backup"), "backup/"))
                .arg(format!("{}/", f.dir().join("pulled").display()))
        },
    );
    assert_same_client_view(&sides);
    assert_same_log(&sides);
    let [stock, _] = &sides;
    assert_eq!(stock.outcome.code, 1, "{:#?}", stock.outcome);
}

#[test]
fn a_refused_option_exits_4_with_upstreams_message() {
    let sides = differential(
        |f| f.set_module("backup", "refuse options", "delete"),
        |d, f| push(d, f, "rsync_backup", &f.password_file()).arg("--delete"),
    );
    assert_same_client_view(&sides);
    assert_same_log(&sides);
    let [stock, _] = &sides;
    assert_eq!(stock.outcome.code, 4);
    assert!(
        stock
            .outcome
            .stderr
            .starts_with("rsync: The server is configured to refuse --delete\n"),
        "{:#?}",
        stock.outcome
    );
}

/// A pull refused at option time: upstream's sending daemon never flushes its final
/// `rsync error:` line, so the client reports the connection's end (exit 10).
#[test]
fn a_pull_with_a_refused_option_ends_as_upstreams() {
    let sides = differential(
        |f| f.set_module("backup", "refuse options", "compress"),
        |d, f| {
            Rsync::client()
                .args(["-az", "--password-file"])
                .arg(f.password_file().display().to_string())
                .arg(d.url(Some("rsync_backup"), "backup/"))
                .arg(format!("{}/", f.dir().join("pulled").display()))
        },
    );
    assert_same_client_view(&sides);
    assert_same_log(&sides);
}

#[test]
fn a_session_past_max_connections_is_refused() {
    let run = |kind: Server| {
        let mut f = Fixture::seed();
        f.set_global("max connections", "1");
        let d = Daemon::start(kind, &f);
        // The first session holds the only slot: admitted, then silent.
        let mut holder = RawClient::connect(d.port, Duration::from_secs(5));
        assert_eq!(
            holder.open_module("backup", "rsync_backup", "1"),
            "@RSYNCD: OK"
        );
        let before = d.log().len();
        let outcome = push(&d, &f, "rsync_backup", &f.password_file()).run();
        let events = e2e::compare::log_events(&d.log_since(before));
        drop(holder);
        e2e::compare::Side {
            kind,
            outcome,
            events,
            fixture: f,
        }
    };
    let sides = std::thread::scope(|s| {
        let stock = s.spawn(|| run(Server::Stock));
        let ours = run(Server::Ours);
        [stock.join().unwrap(), ours]
    });
    assert_same_client_view(&sides);
    assert_same_events(
        &sides,
        &["connect from", "max connections", "rsync allowed"],
    );
    let [stock, ours] = &sides;
    assert_eq!(stock.outcome.code, 5);
    assert!(
        stock
            .outcome
            .stderr
            .contains("@ERROR: max connections (1) reached -- try again later"),
        "{:#?}",
        stock.outcome
    );
    assert!(
        ours.events
            .iter()
            .any(|l| l == "max connections (1) reached"),
        "{:#?}",
        ours.events
    );
}

/// A module whose path is missing: `@ERROR: chdir failed` (exit 5), and the log names the
/// path and the system error in upstream's words.
#[test]
fn a_missing_module_path_fails_as_upstream() {
    let sides = differential(
        |f| {
            let missing = f.dir().join("gone");
            f.set_module("backup", "path", &missing.display().to_string());
        },
        |d, f| push(d, f, "rsync_backup", &f.password_file()),
    );
    // The path differs between the two scratch directories; compare past it.
    let scrub = |s: &e2e::compare::Side| -> Vec<String> {
        let dir = s.fixture.dir().display().to_string();
        s.events.iter().map(|l| l.replace(&dir, "DIR")).collect()
    };
    assert_same_client_view(&sides);
    assert_eq!(scrub(&sides[0]), scrub(&sides[1]));
    assert_eq!(sides[0].outcome.code, 5);
    assert!(
        scrub(&sides[1])
            .iter()
            .any(|l| l == "rsync: [Receiver] chdir DIR/gone failed: No such file or directory (2)"),
        "{:#?}",
        sides[1].events
    );
}
