//! The native client (`rsyncd_rs::client`) listing modules of stock rsyncd 3.5.0, of
//! stock 3.1.2 as a daemon (CentOS 7's) and of rsyncd-rs, against what the stock client
//! lists from the same daemon; its refusals typed as the caller needs them.

use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use e2e::{Daemon, Fixture, Rsync, Server, old_client_or_skip};
use rsyncd_rs::client::{
    ClientError, ConnectOptions, ListOptions, Password, Refusal, Remote, list,
};
use rsyncd_rs::engine::exit::ExitCode;
use rsyncd_rs::protocol::flist::mode;

/// A module holding a little of everything a listing shows.
fn fill(module: &Path) {
    std::fs::create_dir_all(module.join("sub/deeper")).unwrap();
    std::fs::create_dir_all(module.join("empty")).unwrap();
    std::fs::write(module.join("1.txt"), "test sersync\n").unwrap();
    std::fs::write(module.join("sub/big.bin"), vec![7u8; 300_000]).unwrap();
    std::fs::write(module.join("sub/deeper/x"), "x").unwrap();
    std::fs::set_permissions(
        module.join("sub/deeper/x"),
        std::fs::Permissions::from_mode(0o640),
    )
    .unwrap();
    symlink("../1.txt", module.join("sub/link")).unwrap();
    let _ = Command::new("chmod")
        .arg("-R")
        .arg("a+rX")
        .arg(module)
        .status();
}

fn seeded() -> Fixture {
    let f = Fixture::seed();
    fill(&f.module_dir());
    f
}

fn connect_options(f: &Fixture, protocol: i32) -> ConnectOptions {
    ConnectOptions {
        password: Some(Password::File(f.password_file())),
        io_timeout: Some(Duration::from_secs(20)),
        max_protocol: protocol,
        ..ConnectOptions::default()
    }
}

fn remote(d: &Daemon, path: &str) -> Remote {
    Remote::parse(
        &format!("{}/{path}", d.url(Some("rsync_backup"), "backup")),
        873,
    )
    .unwrap()
}

/// `rsync --list-only` lines as (mode, size, date time, name): the stock client's view.
fn stock_listing(
    d: &Daemon,
    f: &Fixture,
    path: &str,
    protocol: i32,
    client: Option<&Path>,
) -> Vec<String> {
    let rsync = match client {
        Some(b) => Rsync::with_binary(b.to_path_buf()),
        None => Rsync::client(),
    };
    let out = rsync
        .args(["-rl", "--list-only", &format!("--protocol={protocol}")])
        .arg(format!("--password-file={}", f.password_file().display()))
        .arg(format!("{}/{path}", d.url(Some("rsync_backup"), "backup")))
        .run();
    assert_eq!(out.code, 0, "{out:#?}");
    out.stdout
        .lines()
        .map(|l| {
            let mut words = l.split_whitespace();
            let perms = words.next().unwrap_or_default();
            let size = words.next().unwrap_or_default().replace(',', "");
            let date = words.next().unwrap_or_default();
            let time = words.next().unwrap_or_default();
            let name = l.split_once(time).map_or("", |x| x.1).trim_start();
            format!("{perms} {size} {date} {time} {name}")
        })
        .collect()
}

/// The client library's listing in the same form.
fn our_listing(d: &Daemon, f: &Fixture, path: &str, protocol: i32) -> Vec<String> {
    let l = list(
        &remote(d, path),
        &connect_options(f, protocol),
        &ListOptions {
            recursive: true,
            ..ListOptions::default()
        },
    )
    .unwrap_or_else(|e| panic!("{:?} p{protocol}: {e}", d.kind));
    assert_eq!(l.code, ExitCode::OK, "{:?}", l.lines);
    l.entries
        .iter()
        .map(|e| {
            let shown = rsyncd_rs::client::Shown::of(e);
            format!("{} {} {} {}", shown.mode, e.size, shown.mtime, shown.name)
        })
        .collect()
}

fn lists_match(kind: Server, protocols: &[i32], client: Option<&Path>) {
    let f = seeded();
    let d = Daemon::start(kind, &f);
    for &p in protocols {
        for path in ["", "sub/", "sub", "1.txt"] {
            let want = stock_listing(&d, &f, path, p, client);
            let got = our_listing(&d, &f, path, p);
            assert!(want.len() > 1 || path == "1.txt", "{want:?}");
            assert_eq!(got, want, "{kind:?} protocol {p} path {path:?}");
        }
    }
}

#[test]
fn lists_stock_3_5_as_the_stock_client_does_at_every_protocol() {
    lists_match(Server::Stock, &[27, 28, 29, 30, 31, 32], None);
}

#[test]
fn lists_rsyncd_rs_as_the_stock_client_does_at_every_protocol() {
    lists_match(Server::Ours, &[27, 28, 29, 30, 31, 32], None);
}

#[test]
fn lists_a_3_1_2_daemon_as_its_own_client_does() {
    let Some(old) = old_client_or_skip("3.1.2") else {
        return;
    };
    lists_match(Server::Old("3.1.2"), &[30, 31], Some(&old));
}

/// `--checksum` sums agree with `md5sum` over the files the module holds.
#[test]
fn checksums_agree_with_md5sum() {
    let f = seeded();
    for kind in [Server::Stock, Server::Ours] {
        let d = Daemon::start(kind, &f);
        let l = list(
            &remote(&d, ""),
            &connect_options(&f, 32),
            &ListOptions {
                recursive: true,
                checksum: true,
                checksum_choice: Some("md5".into()),
                ..ListOptions::default()
            },
        )
        .unwrap();
        assert_eq!(l.checksum_name.as_deref(), Some("md5"));
        let mut files = 0;
        for e in l.entries.iter().filter(|e| mode::is_reg(e.mode)) {
            let name = String::from_utf8_lossy(&e.name).into_owned();
            let out = Command::new("md5sum")
                .arg(f.module_dir().join(&name))
                .output()
                .unwrap();
            let want = String::from_utf8_lossy(&out.stdout)
                .split(' ')
                .next()
                .unwrap()
                .to_string();
            let got: String = e
                .checksum
                .as_ref()
                .unwrap()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            assert_eq!(got, want, "{kind:?} {name}");
            files += 1;
        }
        assert_eq!(files, 3);
    }
}

fn refusal(what: &str, r: Result<rsyncd_rs::client::Listing, ClientError>) -> ClientError {
    match r {
        Ok(l) => panic!("{what}: listed {} entries", l.entries.len()),
        Err(e) => e,
    }
}

#[test]
fn refusals_are_typed_with_stock_exit_codes() {
    // A fixture each: a session of one daemon may hold the lock file's slot a moment
    // after its client went.
    for kind in [Server::Stock, Server::Ours] {
        let mut f = seeded();
        f.set_module("backup", "max connections", "1");
        // The reference's `hosts deny = 0.0.0.0/32` matches no one, so an address outside
        // `hosts allow` is let in (stock's rule); deny the rest for real.
        // An unlisted module (the reference's `list = false`) is "Unknown" to a denied host.
        f.set_global("hosts deny", "*");
        f.set_module("backup", "list", "yes");
        let bad_password = f.password_file_with("wrong.pass", "not-the-password");
        let d = Daemon::start(kind, &f);
        let lo = ListOptions::default();
        let check = |e: ClientError, kind_want: Refusal| {
            match &e {
                ClientError::Daemon { kind: k, line } => assert_eq!(*k, kind_want, "{line}"),
                other => panic!("{other:?}"),
            }
            assert_eq!(e.exit_code(), ExitCode::STARTCLIENT);
            assert_eq!(
                e.is_retryable(),
                kind_want == Refusal::MaxConnections,
                "{e}"
            );
        };
        // An unknown module.
        let mut r = remote(&d, "");
        r.module = "nope".into();
        check(
            refusal("unknown module", list(&r, &connect_options(&f, 32), &lo)),
            Refusal::UnknownModule,
        );
        // A wrong password.
        let mut c = connect_options(&f, 32);
        c.password = Some(Password::File(bad_password.clone()));
        check(
            refusal("bad password", list(&remote(&d, ""), &c, &lo)),
            Refusal::AuthFailed,
        );
        // A source address the module's hosts allow does not name.
        let mut c = connect_options(&f, 32);
        c.bind = Some("127.0.0.2".parse().unwrap());
        check(
            refusal("denied host", list(&remote(&d, ""), &c, &lo)),
            Refusal::AccessDenied,
        );
        // The one connection slot held by another client.
        let mut holder = e2e::raw::RawClient::connect(d.port, Duration::from_secs(10));
        assert_eq!(
            holder.open_module("backup", "rsync_backup", "1"),
            "@RSYNCD: OK"
        );
        check(
            refusal(
                "max connections",
                list(&remote(&d, ""), &connect_options(&f, 32), &lo),
            ),
            Refusal::MaxConnections,
        );
        drop(holder);
    }
}

#[test]
fn local_failures_are_typed() {
    let f = seeded();
    // Nothing listens: a retryable socket error, exit 10.
    let port = e2e::free_port();
    let r = Remote::parse(&format!("rsync://127.0.0.1:{port}/backup"), 873).unwrap();
    let e = refusal(
        "closed port",
        list(&r, &connect_options(&f, 32), &ListOptions::default()),
    );
    assert!(matches!(e, ClientError::Connect { .. }), "{e:?}");
    assert_eq!(e.exit_code(), ExitCode::SOCKETIO);
    assert!(e.is_retryable());
    // A password file others can read is refused before it is used, as rsync does.
    let d = Daemon::start(Server::Ours, &f);
    let open = f.dir().join("open.pass");
    std::fs::write(&open, "1\n").unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut c = connect_options(&f, 32);
    c.password = Some(Password::File(open));
    let e = refusal(
        "open password file",
        list(&remote(&d, ""), &c, &ListOptions::default()),
    );
    assert!(matches!(e, ClientError::Password(_)), "{e:?}");
    assert_eq!(e.exit_code(), ExitCode::SYNTAX);
    assert!(!e.is_retryable());
}

/// An IPv6 address in brackets reaches a daemon listening on `::1`, stock's and ours.
#[test]
fn lists_over_ipv6() {
    let mut f = seeded();
    f.set_module("backup", "hosts allow", "::1");
    for kind in [Server::Stock, Server::Ours] {
        let port = e2e::free_port();
        let bin = match kind {
            Server::Ours => e2e::ours_bin(),
            _ => e2e::stock_rsync(),
        };
        let mut child = Command::new(bin)
            .args(["--daemon", "--no-detach", "--address=::1"])
            .arg(format!("--port={port}"))
            .arg(format!("--config={}", f.conf_path().display()))
            .arg(format!("--log-file={}", f.log_path().display()))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("::1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "{kind:?}: no listener on [::1]:{port}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let r = Remote::parse(&format!("rsync://rsync_backup@[::1]:{port}/backup/"), 873).unwrap();
        let got = list(
            &r,
            &connect_options(&f, 32),
            &ListOptions {
                recursive: true,
                ..ListOptions::default()
            },
        );
        let _ = child.kill();
        let _ = child.wait();
        let got = got.unwrap_or_else(|e| panic!("{kind:?}: {e}"));
        assert!(
            got.entries.iter().any(|e| e.name == b"sub/big.bin"),
            "{kind:?}"
        );
    }
}
