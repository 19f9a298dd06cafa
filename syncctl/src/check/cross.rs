//! Both configs (the pre-rollout case): does each of the agent's remotes name a module
//! this server has, with a user, password, address and options the module accepts?

use std::net::{IpAddr, ToSocketAddrs, UdpSocket};

use rsyncd_rs::client::{Password, parse_options, read_password};
use rsyncd_rs::daemon::access::{self, HostName};
use rsyncd_rs::daemon::auth::{self, RuleOption};
use rsyncd_rs::daemon::config::Module;
use rsyncd_rs::protocol::options::{Refusals, parse_server_args, server_args};

use super::agent::{Agent, place as agent_place, port_of};
use super::server::{Server, expanded, place, read_secrets};
use super::{Report, at};

/// Runs the cross checks for every remote of `g` against `s`.
pub fn check(s: &Server, g: &Agent, r: &mut Report) {
    let c = &g.config;
    for (i, remote) in c.remotes.iter().enumerate() {
        let from = agent_place(c, &format!("remote.{i}"));
        let target = format!("{}::{}", remote.host, remote.module);
        let Some(m) = s.config.module(&remote.module) else {
            let known: Vec<&str> = s.config.modules.iter().map(|m| m.name.as_str()).collect();
            r.fail(
                "module known",
                target,
                format!(
                    "{from}: module `{}` is not in {} (it has: {})",
                    remote.module,
                    s.path.display(),
                    known.join(", ")
                ),
            );
            continue;
        };
        r.ok(
            "module known",
            &target,
            format!("{from}: [{}] at {}", m.name, m.location),
        );
        let override_ = check_auth(g, m, &target, r);
        check_hosts(g, m, &remote.host, &target, r);
        check_writable(m, override_, &target, r);
        check_refused(g, m, &target, r);
    }
}

/// The user in `auth users` and the password against the secret; returns the rule's
/// `:ro`/`:rw` when one matched.
fn check_auth(g: &Agent, m: &Module, target: &str, r: &mut Report) -> Option<RuleOption> {
    let c = &g.config;
    let users = m
        .params
        .auth_users
        .as_deref()
        .filter(|u| !u.trim().is_empty());
    let (auth, users) = match (&c.rsync.auth, users) {
        (None, None) => {
            r.ok("agent user", target, "no auth on either side");
            return None;
        }
        (None, Some(_)) => {
            r.fail(
                "agent user",
                target,
                format!(
                    "{}: the module asks for a login ({}) but the agent's auth is off",
                    at(&c.source, 0),
                    place(m, "auth users")
                ),
            );
            return None;
        }
        (Some(_), None) => {
            r.warn(
                "agent user",
                target,
                format!(
                    "{}: the module has no `auth users`: the agent's password is never asked",
                    m.location
                ),
            );
            return None;
        }
        (Some(a), Some(u)) => (a, u),
    };
    let user = auth.user.as_str();
    let from = agent_place(c, "rsync.password_file");
    let rule = auth::matching_rule(users, user.as_bytes(), &|| auth::system_groups(user));
    let (option, group) = match rule {
        None => {
            r.fail(
                "agent user",
                target,
                format!(
                    "{from}: user `{user}` is not in {}: `auth users = {users}`",
                    place(m, "auth users")
                ),
            );
            return None;
        }
        Some((RuleOption::Deny, _)) => {
            r.fail(
                "agent user",
                target,
                format!(
                    "{from}: user `{user}` is denied by {}",
                    place(m, "auth users")
                ),
            );
            return None;
        }
        Some(found) => found,
    };
    r.ok(
        "agent user",
        target,
        format!("{from}: `{user}` is in {}", place(m, "auth users")),
    );
    let Some(secrets) = expanded(&m.params.secrets_file).filter(|s| !s.is_empty()) else {
        return Some(option);
    };
    let secrets = std::path::Path::new(&secrets);
    let lines = match read_secrets(secrets, m.params.strict_modes) {
        Ok(l) => l,
        Err(why) => {
            r.fail(
                "password matches",
                target,
                format!("{}: {why}", secrets.display()),
            );
            return Some(option);
        }
    };
    // The daemon tries the first line for the user (or the matched group) only.
    let (name, is_group) = match &group {
        Some(g) => (g.as_str(), true),
        None => (user, false),
    };
    let entry = lines.iter().find_map(|l| {
        l.entry()
            .filter(|(n, _, g)| *g == is_group && *n == name.as_bytes())
            .map(|(_, s, _)| (l.line, s.to_vec()))
    });
    let Some((line, secret)) = entry else {
        r.fail(
            "password matches",
            target,
            format!("{}: no secret for `{name}`", secrets.display()),
        );
        return Some(option);
    };
    match read_password(&Password::File(auth.password_file.clone())) {
        Ok(pw) if pw == secret => r.ok(
            "password matches",
            target,
            format!("{from} matches {}", at(secrets, line)),
        ),
        Ok(_) => r.fail(
            "password matches",
            target,
            format!(
                "{from}: the password in {} differs from the secret for `{name}` at {}",
                auth.password_file.display(),
                at(secrets, line)
            ),
        ),
        Err(e) => r.fail("password matches", target, format!("{from}: {e}")),
    }
    Some(option)
}

/// The address this machine uses toward `host` (no packet is sent): the agent's
/// address as the daemon sees it, when the check runs on the agent's host.
fn own_address_toward(host: &str, port: u16) -> Option<IpAddr> {
    let peer = (host, port).to_socket_addrs().ok()?.next()?;
    let bind = if peer.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    };
    let sock = UdpSocket::bind(bind).ok()?;
    sock.connect(peer).ok()?;
    sock.local_addr().ok().map(|a| a.ip())
}

fn check_hosts(g: &Agent, m: &Module, host: &str, target: &str, r: &mut Report) {
    let p = &m.params;
    let Some(addr) = own_address_toward(host, port_of(&g.config)) else {
        r.warn(
            "hosts admit agent",
            target,
            format!("cannot tell this host's address toward {host}"),
        );
        return;
    };
    let mut name = if p.reverse_lookup {
        HostName::Name(access::reverse_lookup(addr).unwrap_or_else(|_| access::UNKNOWN.into()))
    } else {
        HostName::Undetermined
    };
    let allowed = access::allow_access(
        addr,
        &mut name,
        p.hosts_allow.as_deref(),
        p.hosts_deny.as_deref(),
        p.forward_lookup,
    );
    let lists = format!("{} / {}", place(m, "hosts allow"), place(m, "hosts deny"));
    if allowed {
        r.ok(
            "hosts admit agent",
            target,
            format!("{lists}: {addr} ({name}) admitted"),
        );
    } else {
        r.fail(
            "hosts admit agent",
            target,
            format!("{lists}: {addr} ({name}), this host's address toward {host}, is refused"),
        );
    }
}

fn check_writable(m: &Module, rule: Option<RuleOption>, target: &str, r: &mut Report) {
    let read_only = match rule {
        Some(RuleOption::ReadOnly) => true,
        Some(RuleOption::ReadWrite) => false,
        _ => m.params.read_only,
    };
    let where_ = place(m, "read only");
    if read_only {
        let why = if rule == Some(RuleOption::ReadOnly) {
            "the agent's user has `:ro` in `auth users`"
        } else {
            "`read only` is on"
        };
        r.fail(
            "module writable",
            target,
            format!("{where_}: {why}: every push is refused"),
        );
    } else {
        r.ok("module writable", target, format!("{where_}: writable"));
    }
}

/// The agent's `commonParams` (plus the `-R`, `--delete` and `--force` it adds) encoded
/// as the client sends them, read by the daemon's parser with the module's refusals.
fn check_refused(g: &Agent, m: &Module, target: &str, r: &mut Report) {
    let c = &g.config;
    let from = agent_place(c, "rsync.params");
    let mut words: Vec<&str> = c.rsync.params.split_whitespace().collect();
    words.push("-R");
    if c.events.delete {
        words.extend(["--delete", "--force"]);
    }
    let Ok(args) = parse_options(&words) else {
        return; // Reported by the agent's own validation.
    };
    let refusals = Refusals::for_daemon(m.params.refuse_options.as_deref().unwrap_or(""));
    let sent = server_args(&args.options, rsyncd_rs::PROTOCOL_VERSION);
    match parse_server_args(&sent, &refusals) {
        Ok(_) => r.ok(
            "options accepted",
            target,
            format!("{from}: {}", sent.join(" ")),
        ),
        Err(e) => r.fail(
            "options accepted",
            target,
            format!(
                "{from}: {} refuses what the agent sends: {e}",
                place(m, "refuse options")
            ),
        ),
    }
}
