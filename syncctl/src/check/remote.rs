//! `--remote`: a live session to each of the agent's remotes with its credentials, by
//! the native client: reachability, authentication, and writability (a dry-run push
//! of an empty directory, which a read-only module refuses and which changes nothing).

use std::time::Duration;

use rsyncd_rs::client::{
    ClientError, ConnectOptions, ListOptions, Password, Refusal, Remote, list, parse_options, push,
};

use super::Report;
use super::agent::{Agent, place, port_of};

/// Connects to every remote of `g`.
pub fn check(g: &Agent, r: &mut Report) {
    let c = &g.config;
    for (i, t) in c.remotes.iter().enumerate() {
        let from = place(c, &format!("remote.{i}"));
        let remote = Remote {
            user: c.rsync.auth.as_ref().map(|a| a.user.clone()),
            host: t.host.clone(),
            port: port_of(c),
            module: t.module.clone(),
            path: String::new(),
        };
        let target = format!("rsync://{}:{}/{}", t.host, remote.port, t.module);
        let opts = ConnectOptions {
            connect_timeout: Some(Duration::from_secs(10)),
            io_timeout: Some(Duration::from_secs(30)),
            password: c
                .rsync
                .auth
                .as_ref()
                .map(|a| Password::File(a.password_file.clone())),
            ..ConnectOptions::default()
        };
        match list(&remote, &opts, &ListOptions::default()) {
            Ok(_) => {
                r.ok("remote reachable", &target, format!("{from}: connected"));
                r.ok(
                    "remote auth",
                    &target,
                    format!("{from}: logged in and listed the module"),
                );
            }
            Err(e) => {
                report_refusal(&e, &from, &target, r);
                continue;
            }
        }
        match dry_push(&remote, &opts) {
            Ok(()) => r.ok(
                "remote writable",
                &target,
                format!("{from}: a dry-run push was accepted"),
            ),
            Err(e) => r.fail("remote writable", &target, format!("{from}: {e}")),
        }
    }
}

fn report_refusal(e: &ClientError, from: &str, target: &str, r: &mut Report) {
    match e {
        ClientError::Resolve { .. } | ClientError::Connect { .. } | ClientError::Timeout { .. } => {
            r.fail("remote reachable", target, format!("{from}: {e}"));
        }
        ClientError::Daemon { kind, .. } => {
            r.ok("remote reachable", target, format!("{from}: connected"));
            let check = match kind {
                Refusal::AuthFailed => "remote auth",
                _ => "remote access",
            };
            r.fail(check, target, format!("{from}: {e}"));
        }
        ClientError::Password(_) => r.fail("remote auth", target, format!("{from}: {e}")),
        _ => r.fail("remote reachable", target, format!("{from}: {e}")),
    }
}

/// `rsync -rn EMPTY/ MODULE/`: nothing is written, but the daemon applies `read only`.
fn dry_push(remote: &Remote, c: &ConnectOptions) -> Result<(), String> {
    let dir = std::env::temp_dir().join(format!("syncctl-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let result = parse_options(&["-r", "-n"])
        .map_err(|e| e.to_string())
        .and_then(|args| {
            push(remote, c, &args.options, &dir, &["."])
                .map_err(|e| e.to_string())
                .and_then(|out| match out.code.0 {
                    0 => Ok(()),
                    code => Err(format!("the push ended with code {code}")),
                })
        });
    let _ = std::fs::remove_dir(&dir);
    result
}
