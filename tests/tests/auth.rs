//! Authentication against the reference module `backup` (`auth users = rsync_backup`,
//! the seed's secrets file): wrong password, unknown user, a secrets file readable by
//! others, and the right password.

use std::os::unix::fs::PermissionsExt;

use e2e::compare::{Side, assert_same_client_view, assert_same_log, differential};
use e2e::tree::{sample_tree, snapshot};
use e2e::{Daemon, Fixture, Rsync};

/// `rsync -artuz SRC/ rsync://USER@127.0.0.1:PORT/backup/` with a password file, as the
/// reference deployment's sersync pushes.
pub(crate) fn push(d: &Daemon, f: &Fixture, user: &str, password_file: &std::path::Path) -> Rsync {
    let src = f.dir().join("src");
    if !src.exists() {
        sample_tree(&src);
    }
    Rsync::client()
        .args(["-artuz", "--password-file"])
        .arg(password_file.display().to_string())
        .arg(format!("{}/", src.display()))
        .arg(d.url(Some(user), "backup/"))
}

fn module_is_empty(s: &Side) -> bool {
    snapshot(&s.module_dir()).len() == 1
}

#[test]
fn a_wrong_password_exits_5_and_writes_nothing() {
    let sides = differential(
        |_| {},
        |d, f| push(d, f, "rsync_backup", &f.password_file_with("wrong.pw", "2")),
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
    assert!(module_is_empty(stock) && module_is_empty(ours));
    assert!(
        ours.events.iter().any(|l| l
            == "auth failed on module backup from localhost (127.0.0.1) for rsync_backup: password mismatch"),
        "{:#?}",
        ours.events
    );
}

#[test]
fn an_unknown_user_exits_5_with_no_matching_rule() {
    let sides = differential(|_| {}, |d, f| push(d, f, "nobodyknows", &f.password_file()));
    assert_same_client_view(&sides);
    assert_same_log(&sides);
    let [stock, ours] = &sides;
    assert_eq!(stock.outcome.code, 5);
    assert!(module_is_empty(ours));
    assert!(
        ours.events.iter().any(|l| l
            == "auth failed on module backup from localhost (127.0.0.1) for nobodyknows: no matching rule"),
        "{:#?}",
        ours.events
    );
}

#[test]
fn a_secrets_file_readable_by_others_is_ignored_and_the_log_says_why() {
    let sides = differential(
        |f| {
            std::fs::set_permissions(f.secrets_path(), std::fs::Permissions::from_mode(0o644))
                .unwrap();
        },
        |d, f| push(d, f, "rsync_backup", &f.password_file()),
    );
    assert_same_client_view(&sides);
    assert_same_log(&sides);
    let [stock, ours] = &sides;
    assert_eq!(stock.outcome.code, 5);
    assert!(module_is_empty(ours));
    let why = [
        "secrets file must not be other-accessible (see strict modes option)",
        "auth failed on module backup from localhost (127.0.0.1) for rsync_backup: ignoring secrets file",
    ];
    let at = ours
        .events
        .iter()
        .position(|l| l == why[0])
        .unwrap_or_else(|| panic!("{:#?}", ours.events));
    assert_eq!(ours.events.get(at + 1).map(String::as_str), Some(why[1]));
}

/// The right password is admitted by both, and both take the reference push: the same
/// client view, the same log, the same tree (contents, modes, times, fake-super xattrs).
#[test]
fn the_right_password_is_admitted() {
    let sides = differential(
        |_| {},
        |d, f| push(d, f, "rsync_backup", &f.password_file()),
    );
    assert_same_client_view(&sides);
    assert_same_log(&sides);
    let [stock, ours] = &sides;
    assert_eq!(stock.outcome.code, 0, "{:#?}", stock.outcome);
    e2e::tree::assert_trees_equal(
        &stock.module_dir(),
        &ours.module_dir(),
        e2e::tree::Compare::ALL,
    );
    assert!(
        snapshot(&ours.module_dir()).len() > 1,
        "nothing was received"
    );
}
