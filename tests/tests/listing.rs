//! Module listings, unknown modules and the motd, from the reference config.

use e2e::compare::{assert_same_client_view, assert_same_log, differential};
use e2e::{Fixture, Rsync};

fn list(d: &e2e::Daemon, _: &Fixture) -> Rsync {
    Rsync::client().arg(format!("rsync://127.0.0.1:{}/", d.port))
}

#[test]
fn reference_config_lists_nothing_because_backup_is_unlisted() {
    let sides = differential(|_| {}, list);
    assert_same_client_view(&sides);
    assert_same_log(&sides);
    let [stock, _] = &sides;
    assert_eq!(stock.outcome.code, 0, "{:#?}", stock.outcome);
    assert!(!stock.outcome.stdout.contains("backup"));
    assert!(
        stock
            .events
            .iter()
            .any(|l| l == "module-list request from localhost (127.0.0.1)"),
        "{:#?}",
        stock.events
    );
}

#[test]
fn a_listed_module_shows_with_its_comment() {
    let sides = differential(
        |f| {
            let dir = f.make_module_dir("pub");
            f.add_module(
                "pub",
                &[
                    ("path", &dir.display().to_string()),
                    ("list", "true"),
                    ("comment", "public area"),
                ],
            );
        },
        list,
    );
    assert_same_client_view(&sides);
    assert_same_log(&sides);
    let [stock, _] = &sides;
    assert_eq!(stock.outcome.stdout, "pub            \tpublic area\n");
}

#[test]
fn the_motd_comes_before_the_listing() {
    let sides = differential(
        |f| {
            let motd = f.dir().join("motd");
            std::fs::write(&motd, "Welcome to the backup host.\nBe nice.\n").unwrap();
            f.set_global("motd file", &motd.display().to_string());
            f.set_module("backup", "list", "yes");
        },
        list,
    );
    assert_same_client_view(&sides);
    assert_same_log(&sides);
    let [stock, _] = &sides;
    assert!(
        stock
            .outcome
            .stdout
            .starts_with("Welcome to the backup host.\nBe nice.\n\n"),
        "{:?}",
        stock.outcome.stdout
    );
    assert!(stock.outcome.stdout.contains("welcome to edu backup!"));
}

#[test]
fn an_unknown_module_is_refused_with_exit_5() {
    let sides = differential(
        |_| {},
        |d, f| {
            Rsync::client()
                .arg(format!("--password-file={}", f.password_file().display()))
                .arg(d.url(Some("rsync_backup"), "nosuch/"))
        },
    );
    assert_same_client_view(&sides);
    assert_same_log(&sides);
    let [stock, _] = &sides;
    assert_eq!(stock.outcome.code, 5);
    assert!(
        stock
            .outcome
            .stderr
            .contains("@ERROR: Unknown module 'nosuch'")
    );
    assert!(
        stock
            .events
            .iter()
            .any(|l| l == "unknown module 'nosuch' tried from localhost (127.0.0.1)"),
        "{:#?}",
        stock.events
    );
}
