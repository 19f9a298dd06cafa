//! rsyncd.conf on its own: read by the daemon's parser, then each module's path,
//! identity, secrets and host lists, the daemon's own files and port, and the settings
//! that do not do what they seem to.

use std::path::{Path, PathBuf};

use rsyncd_rs::daemon::auth::{self, AuthReason, SecretsFileProblem};
use rsyncd_rs::daemon::config::{DaemonConfig, Location, Module, WarningKind, expand_vars};
use rsyncd_rs::daemon::{access, module, privileges};

use super::{Report, at, unix};

/// A daemon config that parsed, for the cross checks.
#[derive(Debug)]
pub struct Server {
    pub path: PathBuf,
    pub config: DaemonConfig,
}

/// Whether the daemon is taken to run as root: the checks cannot see the daemon, so
/// they assume it runs as the user running `syncctl check` (root on a server).
pub fn daemon_is_root() -> bool {
    privileges::running_as_root()
}

/// Checks the daemon config at `path`; `None` when it does not parse.
pub fn check(path: &Path, r: &mut Report) -> Option<Server> {
    let target = path.display().to_string();
    let config = match DaemonConfig::load(path, &[]) {
        Ok(c) => c,
        Err(errors) => {
            for e in &errors.0 {
                r.fail("server syntax", &target, e.to_string());
            }
            return None;
        }
    };
    let mut clean = true;
    for w in &config.warnings {
        let place = w.location.to_string();
        match w.kind {
            WarningKind::UnknownParameter => {
                clean = false;
                r.fail("server syntax", &target, format!("{place}: {}", w.message));
            }
            WarningKind::NoEquals if is_ignore_errors(w.key.as_deref()) => r.warn(
                "ignore errors",
                &target,
                format!(
                    "{place}: a bare `ignore errors` line is ignored as badly formed, so I/O \
                     errors still stop deletions (and stock rsyncd then logs some lines to \
                     syslog, not the log file): write `ignore errors = yes` or drop it"
                ),
            ),
            _ => r.warn("server syntax", &target, w.to_string()),
        }
    }
    if clean {
        r.ok(
            "server syntax",
            &target,
            format!("{} module(s)", config.modules.len()),
        );
    }
    for m in &config.modules {
        check_module(&config, m, r);
    }
    check_daemon_files(&config, path, r);
    check_port(&config, path, r);
    Some(Server {
        path: path.to_path_buf(),
        config,
    })
}

fn is_ignore_errors(key: Option<&str>) -> bool {
    key.is_some_and(|k| {
        let folded: Vec<&str> = k.split_whitespace().collect();
        folded.join(" ").eq_ignore_ascii_case("ignore errors")
    })
}

/// Where parameter `name` was set for module `m`, else the module's header.
pub fn place(m: &Module, name: &str) -> String {
    m.params
        .set_location(name)
        .unwrap_or(&m.location)
        .to_string()
}

/// A module's string parameter with `%VAR%` expanded from the environment, as the
/// daemon uses it.
pub fn expanded(value: &Option<String>) -> Option<String> {
    value
        .as_deref()
        .map(|v| expand_vars(v, &|n| std::env::var(n).ok()))
}

fn check_module(c: &DaemonConfig, m: &Module, r: &mut Report) {
    let target = format!("[{}]", m.name);
    let p = &m.params;
    let root = daemon_is_root();
    let identity = module::resolve_identity(
        expanded(&p.uid).as_deref(),
        expanded(&p.gid).as_deref(),
        root,
    );
    let (uid, gids) = match identity {
        Ok((u, g)) => {
            let uid = u.map_or_else(|| nix::unistd::geteuid().as_raw(), |u| u.as_raw());
            let mut gids: Vec<u32> = g.iter().map(|g| g.as_raw()).collect();
            if gids.is_empty() {
                gids.push(nix::unistd::getegid().as_raw());
            }
            r.ok("uid/gid", &target, format!("uid {uid}, gids {gids:?}"));
            (Some(uid), gids)
        }
        Err(module::IdentityError::Uid(name)) => {
            let where_ = place(m, "uid");
            r.fail("uid/gid", &target, format!("{where_}: no user `{name}`"));
            (None, Vec::new())
        }
        Err(module::IdentityError::Gid(name)) => {
            let where_ = place(m, "gid");
            r.fail("uid/gid", &target, format!("{where_}: no group `{name}`"));
            (None, Vec::new())
        }
        Err(module::IdentityError::Groups(e)) => {
            r.fail("uid/gid", &target, format!("{}: {e}", place(m, "gid")));
            (None, Vec::new())
        }
    };
    check_path(m, uid.map(|u| (u, gids)), r);
    check_secrets(c, m, r);
    check_hosts(m, r);
    check_semantics(m, r);
}

fn check_path(m: &Module, who: Option<(u32, Vec<u32>)>, r: &mut Report) {
    let target = format!("[{}]", m.name);
    let p = &m.params;
    let Some(path) = expanded(&p.path).filter(|s| !s.is_empty()) else {
        r.fail("module path", &target, format!("{}: no `path`", m.location));
        return;
    };
    let where_ = place(m, "path");
    let meta = match std::fs::metadata(&path) {
        Ok(meta) if meta.is_dir() => meta,
        Ok(_) => {
            r.fail(
                "module path",
                &target,
                format!("{where_}: {path} is not a directory"),
            );
            return;
        }
        Err(e) => {
            r.fail("module path", &target, format!("{where_}: {path}: {e}"));
            return;
        }
    };
    let Some((uid, gids)) = who else {
        r.warn(
            "module path",
            &target,
            format!("{where_}: {path} exists; its user is unknown"),
        );
        return;
    };
    let (want, what) = if p.read_only {
        (unix::R | unix::X, "readable")
    } else {
        (unix::W | unix::X, "writable")
    };
    if !unix::permits(&meta, uid, &gids, want) {
        r.fail(
            "module path",
            &target,
            format!("{where_}: {path} is not {what} by uid {uid} (gids {gids:?})"),
        );
        return;
    }
    let chroot = p.use_chroot.unwrap_or(true);
    match unix::unenterable_parent(Path::new(&path), uid, &gids) {
        Some(parent) => r.warn(
            "module path",
            &target,
            format!(
                "{where_}: {path} is {what} by uid {uid}, but {} is not enterable by it: \
                 this works only because the daemon enters the path as root{}",
                parent.display(),
                if chroot { " (then chroots)" } else { "" }
            ),
        ),
        None => r.ok(
            "module path",
            &target,
            format!("{where_}: {path} is {what} by uid {uid}"),
        ),
    }
}

fn check_secrets(c: &DaemonConfig, m: &Module, r: &mut Report) {
    let target = format!("[{}]", m.name);
    let p = &m.params;
    let Some(users) = p.auth_users.as_deref().filter(|u| !u.trim().is_empty()) else {
        return;
    };
    let Some(file) = expanded(&p.secrets_file).filter(|s| !s.is_empty()) else {
        r.fail(
            "secrets file",
            &target,
            format!(
                "{}: `auth users` is set but no `secrets file`: every login fails",
                place(m, "auth users")
            ),
        );
        return;
    };
    let where_ = place(m, "secrets file");
    let _ = c;
    let lines = match read_secrets(Path::new(&file), p.strict_modes) {
        Ok(lines) => lines,
        Err(why) => {
            r.fail("secrets file", &target, format!("{where_}: {file}: {why}"));
            return;
        }
    };
    let path = Path::new(&file);
    let mut fine = true;
    if let Ok(meta) = std::fs::metadata(path) {
        use std::os::unix::fs::MetadataExt;
        let mode = meta.mode() & 0o777;
        if mode & 0o077 != 0 {
            fine = false;
            let why = if p.strict_modes {
                "group bits set; make it 600"
            } else {
                "`strict modes = no` lets the daemon use a file others can read; make it 600"
            };
            r.warn(
                "secrets file",
                &target,
                format!("{where_}: {file} is mode {mode:03o}: {why}"),
            );
        }
    }
    for l in &lines {
        if l.text.first() == Some(&b'#') {
            continue;
        }
        if l.entry().is_none() {
            fine = false;
            r.fail(
                "secrets file",
                &target,
                format!(
                    "{}: no `:` (NAME:SECRET): this line matches nobody",
                    at(path, l.line)
                ),
            );
        }
    }
    for rule in auth::parse_auth_users(users) {
        if rule.pattern.contains(['*', '?', '[']) {
            continue;
        }
        let has = lines.iter().any(|l| {
            l.entry()
                .is_some_and(|(n, _, g)| g == rule.is_group && n == rule.pattern.as_bytes())
        });
        if !has && rule.option != auth::RuleOption::Deny {
            fine = false;
            let who = if rule.is_group {
                format!("@{}", rule.pattern)
            } else {
                rule.pattern.clone()
            };
            r.fail(
                "secrets file",
                &target,
                format!(
                    "{}: auth user `{who}` has no secret in {file}: that login always fails",
                    place(m, "auth users")
                ),
            );
        }
    }
    if fine {
        r.ok(
            "secrets file",
            &target,
            format!("{where_}: {file}: mode, owner and entries fine"),
        );
    }
}

/// The secrets file's lines, or why the daemon could not use it, in words.
pub fn read_secrets(path: &Path, strict_modes: bool) -> Result<Vec<auth::SecretsLine>, String> {
    auth::read_secrets_file(path, strict_modes, daemon_is_root()).map_err(|e| match e {
        AuthReason::NoSecretsFile => "missing or unreadable: every login fails".to_string(),
        AuthReason::IgnoringSecretsFile(SecretsFileProblem::OtherAccessible) => {
            let mode = mode_of(path);
            format!(
                "mode {mode}: others can read it, so under `strict modes` the daemon ignores \
                 the file and every login fails; make it 600"
            )
        }
        AuthReason::IgnoringSecretsFile(problem) => {
            format!("{}: every login fails", problem.log_line())
        }
        other => other.to_string(),
    })
}

/// A file's permission bits as `0644`.
pub fn mode_of(path: &Path) -> String {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).map_or("?".into(), |m| format!("{:04o}", m.mode() & 0o7777))
}

fn check_hosts(m: &Module, r: &mut Report) {
    let target = format!("[{}]", m.name);
    let p = &m.params;
    for (name, list) in [
        ("hosts allow", &p.hosts_allow),
        ("hosts deny", &p.hosts_deny),
    ] {
        let Some(list) = list else { continue };
        let where_ = place(m, name);
        let bad: Vec<String> = access::host_list_tokens(list)
            .iter()
            .filter_map(|t| access::host_pattern_problem(t))
            .collect();
        if bad.is_empty() {
            r.ok(name, &target, format!("{where_}: {list}"));
        } else {
            for why in bad {
                r.fail(
                    name,
                    &target,
                    format!("{where_}: {why}: the pattern never matches"),
                );
            }
        }
    }
    let allow = p.hosts_allow.as_deref().filter(|l| !l.is_empty());
    let deny = p.hosts_deny.as_deref().filter(|l| !l.is_empty());
    if let (Some(_), Some(deny)) = (allow, deny) {
        let tokens = access::host_list_tokens(deny);
        let nothing = ["0.0.0.0", "0.0.0.0/32", "0.0.0.0/255.255.255.255"];
        if !tokens.is_empty() && tokens.iter().all(|t| nothing.contains(&t.as_str())) {
            r.warn(
                "hosts deny",
                &target,
                format!(
                    "{}: `hosts deny = {deny}` matches nothing, so beside `hosts allow` it lets in \
                     hosts outside the allow list (rsyncd admits a host matching neither list): \
                     drop the deny line to refuse them",
                    place(m, "hosts deny")
                ),
            );
        }
    }
}

fn check_semantics(m: &Module, r: &mut Report) {
    let target = format!("[{}]", m.name);
    let p = &m.params;
    let auth = p
        .auth_users
        .as_deref()
        .is_some_and(|u| !u.trim().is_empty());
    if p.use_chroot == Some(false) && p.munge_symlinks == Some(false) {
        r.warn(
            "symlinks",
            &target,
            format!(
                "{}: `use chroot = no` with `munge symlinks = no`: a client can upload a symlink \
                 leading out of the module and later writes may follow it",
                place(m, "munge symlinks")
            ),
        );
    }
    if p.insecure_links {
        r.warn(
            "insecure links",
            &target,
            format!(
                "{}: `insecure links = yes`: {}",
                place(m, "insecure links"),
                rsyncd_rs::daemon::startup::INSECURE_LINKS_ALLOWS
            ),
        );
    }
    if !p.read_only && !auth {
        r.warn(
            "read only",
            &target,
            format!(
                "{}: `read only = false` with no `auth users`: any host the host lists admit \
                 can write and delete here",
                place(m, "read only")
            ),
        );
    }
    if p.list && auth {
        r.warn(
            "list",
            &target,
            format!(
                "{}: `list = yes` on an authenticated module: anyone can see its name and comment",
                place(m, "list")
            ),
        );
    }
    if p.max_connections == 0 && m.params.set_location("max connections").is_some() {
        r.warn(
            "max connections",
            &target,
            format!(
                "{}: `max connections = 0` means no limit, not none",
                place(m, "max connections")
            ),
        );
    }
    if let Some(refuse) = p.refuse_options.as_deref() {
        let refusals = rsyncd_rs::protocol::options::Refusals::for_daemon(refuse);
        for token in &refusals.unmatched {
            r.warn(
                "refuse options",
                &target,
                format!(
                    "{}: `{token}` matches no option: nothing is refused by it",
                    place(m, "refuse options")
                ),
            );
        }
    }
}

/// Lock, pid and log files: the daemon must be able to write them.
fn check_daemon_files(c: &DaemonConfig, conf: &Path, r: &mut Report) {
    let mut files: Vec<(&str, String, Option<&Location>)> = Vec::new();
    if let Some(pid) = expanded(&c.global.pid_file).filter(|s| !s.is_empty()) {
        files.push(("pid file", pid, c.global.set_location("pid file")));
    }
    let lock = expand_vars(&c.defaults.lock_file, &|n| std::env::var(n).ok());
    files.push(("lock file", lock, c.defaults.set_location("lock file")));
    if let Some(log) = expanded(&c.defaults.log_file).filter(|s| !s.is_empty()) {
        files.push(("log file", log, c.defaults.set_location("log file")));
    }
    for m in &c.modules {
        if let Some(log) = expanded(&m.params.log_file).filter(|s| !s.is_empty()) {
            if !files.iter().any(|(_, f, _)| *f == log) {
                files.push(("log file", log, m.params.set_location("log file")));
            }
        }
    }
    for (check, file, loc) in files {
        let where_ = loc.map_or_else(
            || format!("{} (default)", conf.display()),
            Location::to_string,
        );
        match unix::writable_here(Path::new(&file)) {
            Ok(()) => r.ok(check, &file, format!("{where_}: writable")),
            Err(why) => r.fail(check, &file, format!("{where_}: {why}")),
        }
    }
}

/// The port: free, or held by the daemon whose pid file the config names.
fn check_port(c: &DaemonConfig, conf: &Path, r: &mut Report) {
    let port = if c.global.port == 0 {
        873
    } else {
        c.global.port
    };
    let where_ = c.global.set_location("port").map_or_else(
        || format!("{} (default 873)", conf.display()),
        Location::to_string,
    );
    let target = format!("port {port}");
    let inodes = unix::listening_inodes(port);
    if inodes.is_empty() {
        r.ok("port", target, format!("{where_}: free"));
        return;
    }
    let pid = expanded(&c.global.pid_file)
        .and_then(|f| std::fs::read_to_string(f).ok())
        .and_then(|t| t.trim().parse::<u32>().ok());
    match pid {
        Some(pid) if unix::holds_socket(pid, &inodes) => {
            r.ok(
                "port",
                target,
                format!("{where_}: held by our daemon (pid {pid})"),
            );
        }
        _ => r.fail(
            "port",
            target,
            format!("{where_}: another process listens on it (not the pid in `pid file`)"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bare_ignore_errors_line_is_recognised_in_any_spacing() {
        assert!(is_ignore_errors(Some("ignore errors")));
        assert!(is_ignore_errors(Some("Ignore   Errors")));
        assert!(!is_ignore_errors(Some("ignore nonreadable")));
        assert!(!is_ignore_errors(None));
    }
}
