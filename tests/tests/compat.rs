//! The listing and authentication cases from older protocols and older clients: the
//! stock 3.5.0 client forced to protocol 29 and 30, and rsync 3.1.2 and 3.2.7 (see
//! `e2e::old_client` for where they are found; skipped when missing, but under `CI=true`).

use e2e::compare::{assert_same_client_view, assert_same_log, differential};
use e2e::tree::sample_tree;
use e2e::{Daemon, Fixture, Rsync, old_client_or_skip};

/// A client variant: a binary and the arguments that select it.
#[derive(Debug, Clone)]
struct Client {
    bin: std::path::PathBuf,
    extra: Vec<String>,
}

impl Client {
    fn stock_at(protocol: u32) -> Option<Client> {
        Some(Client {
            bin: e2e::stock_rsync(),
            extra: vec![format!("--protocol={protocol}")],
        })
    }

    /// Skipped when the client is missing, but under `CI=true`, where that fails.
    fn old(version: &str) -> Option<Client> {
        old_client_or_skip(version).map(|bin| Client {
            bin,
            extra: Vec::new(),
        })
    }

    fn rsync(&self) -> Rsync {
        Rsync::with_binary(self.bin.clone()).args(self.extra.clone())
    }
}

/// A listable module next to the reference one.
fn with_listed_module(f: &mut Fixture) {
    let dir = f.make_module_dir("pub");
    f.add_module(
        "pub",
        &[
            ("path", &dir.display().to_string()),
            ("list", "yes"),
            ("comment", "public area"),
        ],
    );
}

fn listing(c: &Client) {
    let sides = differential(with_listed_module, |d: &Daemon, _| {
        c.rsync().arg(format!("rsync://127.0.0.1:{}/", d.port))
    });
    assert_same_client_view(&sides);
    assert_same_log(&sides);
    assert!(
        sides[0]
            .outcome
            .stdout
            .contains("pub            \tpublic area")
    );
}

fn push_with(c: &Client, d: &Daemon, f: &Fixture, user: &str, password: &str) -> Rsync {
    let src = f.dir().join("src");
    sample_tree(&src);
    c.rsync()
        .args(["-artuz", "--password-file"])
        .arg(
            f.password_file_with("this.pw", password)
                .display()
                .to_string(),
        )
        .arg(format!("{}/", src.display()))
        .arg(d.url(Some(user), "backup/"))
}

fn wrong_password(c: &Client) {
    let sides = differential(|_| {}, |d, f| push_with(c, d, f, "rsync_backup", "2"));
    assert_same_client_view(&sides);
    assert_same_log(&sides);
    assert_eq!(sides[0].outcome.code, 5);
}

fn unknown_user(c: &Client) {
    let sides = differential(|_| {}, |d, f| push_with(c, d, f, "nobodyknows", "1"));
    assert_same_client_view(&sides);
    assert_same_log(&sides);
    assert_eq!(sides[0].outcome.code, 5);
}

/// The right password: both daemons must get as far as the transfer, with the same log
/// lines up to the request (the digest each protocol negotiates was accepted).
fn right_password(c: &Client) {
    let sides = differential(|_| {}, |d, f| push_with(c, d, f, "rsync_backup", "1"));
    e2e::compare::assert_same_events(
        &sides,
        &[
            "connect from",
            "rsync allowed access",
            "auth failed",
            "rsync to",
        ],
    );
    assert!(
        sides[1]
            .events
            .iter()
            .any(|l| l == "rsync to backup/ from rsync_backup@localhost (127.0.0.1)"),
        "{:#?}",
        sides[1].events
    );
}

macro_rules! cases {
    ($($name:ident => $client:expr;)*) => {$(
        mod $name {
            use super::*;

            #[test]
            fn listing() {
                if let Some(c) = $client { super::listing(&c) }
            }

            #[test]
            fn wrong_password() {
                if let Some(c) = $client { super::wrong_password(&c) }
            }

            #[test]
            fn unknown_user() {
                if let Some(c) = $client { super::unknown_user(&c) }
            }

            #[test]
            fn right_password() {
                if let Some(c) = $client { super::right_password(&c) }
            }
        }
    )*};
}

cases! {
    protocol_29 => Client::stock_at(29);
    protocol_30 => Client::stock_at(30);
    rsync_3_1_2 => Client::old("3.1.2");
    rsync_3_2_7 => Client::old("3.2.7");
}
