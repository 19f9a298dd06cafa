//! A chosen module, from the access check to `@RSYNCD: OK`: hosts, connection limit,
//! auth, identity, path and chroot (upstream: clientserver.c rsync_module()).

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use nix::unistd::{Gid, Uid};

use super::access::{HostName, allow_access};
use super::auth::{
    AccessOverride, AuthFailure, AuthReason, ModuleAuth, check_auth, check_digest_floor,
    system_groups,
};
use super::config::{Module, expand_vars};
use super::exec::Hooks;
use super::limits::{Claim, ConnectionSlot, claim_connection};
use super::log::{io_error, sys_error, target_for};
use super::privileges::{self, DropError};
use super::session::{Session, handshake_timeout};
use crate::engine::exit::ExitCode;
use crate::engine::tree::Tree;
use crate::protocol::auth::{choose_digest, make_challenge};

/// Where symlink munging puts its prefix; a real directory of this name makes munging
/// unsafe. Upstream: rsync.h, SYMLINK_PREFIX.
pub const SYMLINK_PREFIX: &str = "/rsyncd-munged/";

/// A module the session is now confined to, after privileges were dropped.
#[derive(Debug)]
pub struct ModuleSession {
    /// The module root as seen from this process (after any chroot).
    pub root: PathBuf,
    /// The module root, opened before privileges were dropped (see [`Tree::open_root`]);
    /// the session's [`Tree`] is built on it once the client's options are known.
    pub root_dir: OwnedFd,
    /// The module's `filter`, `include from`, `include`, `exclude from` and `exclude`
    /// rules, read before privileges were dropped (or why they could not be).
    pub daemon_rules: Result<Vec<crate::protocol::filter::FilterRule>, String>,
    /// The configured path (for `%P` and the environment).
    pub full_path: PathBuf,
    pub is_read_only: bool,
    pub is_write_only: bool,
    pub munge_symlinks: bool,
    /// The module root as the session sees it is not `/`: what the client names is kept
    /// inside it (upstream's `sanitize_paths`, set when `module_dirlen` is not 0).
    pub sanitize_paths: bool,
    pub use_chroot: bool,
    pub fake_super: bool,
    /// Whether the session may set ownership (it runs as root and not under fake super).
    pub am_root: bool,
    pub numeric_ids: bool,
    pub hooks: Hooks,
    pub early_input: Option<Vec<u8>>,
    _slot: Option<ConnectionSlot>,
}

/// Runs every check of a module request and, when all pass, sends `@RSYNCD: OK`.
pub(super) fn open_module(
    s: &mut Session<'_>,
    m: &Module,
    early_input: Option<Vec<u8>>,
) -> Result<ModuleSession, ExitCode> {
    let p = &m.params;
    let name = m.name.clone();
    let vars = session_vars(s, &name, None);
    let expand = |v: &Option<String>| v.as_deref().map(|x| expand_vars(x, &|k| vars(k)));

    // A module may want names when the global setting did not.
    if s.peer.host == HostName::Undetermined && p.reverse_lookup {
        s.peer.host = HostName::Name(s.lookup_host());
    }
    let allowed = match s.peer.ip {
        Some(ip) => allow_access(
            ip,
            &mut s.peer.host,
            expand(&p.hosts_allow).as_deref(),
            expand(&p.hosts_deny).as_deref(),
            p.forward_lookup,
        ),
        // No address (a remote-shell session without SSH_CONNECTION): only a module without
        // lists admits it, as upstream's "0.0.0.0" matches nothing but a wildcard.
        None => allow_access(
            std::net::Ipv4Addr::UNSPECIFIED.into(),
            &mut s.peer.host,
            expand(&p.hosts_allow).as_deref(),
            expand(&p.hosts_deny).as_deref(),
            p.forward_lookup,
        ),
    };
    if !allowed {
        s.log.line(&format!(
            "rsync denied on module {name} from {} ({})",
            s.peer.host, s.peer.addr
        ));
        let msg = if p.list {
            format!(
                "access denied to {name} from {} ({})",
                s.peer.host, s.peer.addr
            )
        } else {
            format!("Unknown module '{name}'")
        };
        return Err(s.fail(&msg));
    }
    if s.setup.kind != super::session::SessionKind::RemoteShell {
        s.log.line(&format!(
            "rsync allowed access on module {name} from {} ({})",
            s.peer.host, s.peer.addr
        ));
    }

    let lock_file = expand_vars(&p.lock_file, &|k| vars(k));
    let slot = match claim_connection(Path::new(&lock_file), p.max_connections) {
        Ok(Claim::Granted(slot)) => slot,
        Ok(Claim::Full) => {
            s.log
                .line(&format!("max connections ({}) reached", p.max_connections));
            return Err(s.fail(&format!(
                "max connections ({}) reached -- try again later",
                p.max_connections
            )));
        }
        Err(e) => {
            s.log.line(&io_error(
                &format!("failed to open lock file {lock_file}"),
                &e,
            ));
            return Err(s.fail("failed to open lock file"));
        }
    };

    let mut is_read_only = p.read_only;
    if s.setup.kind != super::session::SessionKind::RemoteShell {
        s.conn.set_deadline(Some(
            std::time::Instant::now() + handshake_timeout(p.timeout),
        ));
    }
    let user = authenticate(s, m, &mut is_read_only)?;
    s.user = Some(user.clone());
    s.conn.set_deadline(None);

    let vars = session_vars(s, &name, Some(&user));
    let expand = |v: &Option<String>| v.as_deref().map(|x| expand_vars(x, &|k| vars(k)));
    let am_root = privileges::running_as_root();
    let (uid, gids) = module_identity(s, m, am_root, &expand)?;

    let path = expand(&p.path).unwrap_or_default();
    if path.is_empty() {
        s.log.line(&format!("No path specified for module {name}"));
        return Err(s.fail("no path setting."));
    }
    let use_chroot = match p.use_chroot {
        Some(v) => v,
        // Unset: chroot when we can (root), as upstream's test chroot("/") decides.
        None => path.contains("/./") || am_root,
    };
    let (chroot_dir, inner) = split_chroot_path(&path, use_chroot);
    let sanitize_paths = !is_filesystem_root(&inner);
    let full_path = PathBuf::from(&path.replace("/./", "/"));

    // The module's own log file (or syslog settings) replace the global ones now.
    let target = match &s.setup.log_file {
        Some(f) => super::log::LogTarget::File(f.clone()),
        None => target_for(
            expand(&p.log_file).as_deref().unwrap_or(""),
            p.syslog_facility.code(),
            &p.syslog_tag,
        ),
    };
    if !s.log.is_target(&target)
        && let Ok(log) = super::log::DaemonLog::open(&target)
    {
        s.log.replace(log);
    }

    // The hooks see the module's path too, set before they are expanded as upstream's
    // set_env_str("RSYNC_MODULE_PATH") is; an inherited value must not leak in.
    let module_path = full_path.display().to_string();
    let hook_vars = |k: &str| match k {
        "RSYNC_MODULE_PATH" => Some(module_path.clone()),
        other => vars(other),
    };
    let mut hooks = match Hooks::from_module(p, &hook_vars) {
        Ok(h) => h,
        Err(e) => {
            let (lines, code) = e.log_lines();
            for line in lines {
                s.log.line(&line);
            }
            return Err(code);
        }
    };
    hooks.start(s, &name, &full_path, &user, early_input.as_deref())?;

    if let Some(dir) = &chroot_dir {
        if let Err(e) = privileges::chroot_to(dir) {
            let what = format!("chroot(\"{}\") failed", dir.display());
            s.log.line(&sys_error("Receiver", &what, e.errno()));
            return Err(s.fail("chroot failed"));
        }
    }
    // The module root is entered and its descriptor opened while we are still root: the
    // module's user may not be able to reach it (a parent it cannot search), as upstream
    // enters the module before it drops privileges too.
    // Without a chroot, a symlink on the module path is followed only when root or the
    // daemon owns it (upstream's change_dir() for a daemon, 3.5.0).
    let entered = if chroot_dir.is_none() {
        match super::trusted::open_trusted_dir(&inner, nix::unistd::geteuid().as_raw()) {
            Ok(fd) => nix::unistd::fchdir(&fd)
                .map_err(|e| Some(e as i32))
                .and_then(|()| Tree::open_root(Path::new(".")).map_err(|e| e.raw_os_error())),
            Err(e) => {
                if matches!(e, super::trusted::TrustedError::Foreign) {
                    // Upstream's words (syscall.c), logged before the chdir failure.
                    s.log.line(
                        "refusing to follow a symlink owned by an untrusted user; use \
                         --insecure-links locally or \"insecure links = yes\" in a daemon \
                         module ONLY if every path component is trusted",
                    );
                }
                Err(e.raw_os_error())
            }
        }
    } else {
        match std::env::set_current_dir(&inner) {
            Ok(()) => Tree::open_root(Path::new(".")).map_err(|e| e.raw_os_error()),
            Err(e) => Err(e.raw_os_error()),
        }
    };
    let root_dir = match entered {
        Ok(fd) => fd,
        Err(errno) => {
            let what = format!("chdir {} failed", inner.display());
            s.log
                .line(&sys_error("Receiver", &what, errno.unwrap_or(0)));
            return Err(s.fail("chdir failed"));
        }
    };

    // Unset: munge unless the session sees `/` as the module root through a chroot
    // (upstream: `!use_chroot || module_dirlen`, so `DIR/./.` does not munge).
    let munge_symlinks = p.munge_symlinks.unwrap_or(!use_chroot || sanitize_paths);
    if munge_symlinks && Path::new(SYMLINK_PREFIX.trim_end_matches('/')).is_dir() {
        s.log.line(&format!(
            "Symlink munging is unsafe when a {} directory exists.",
            SYMLINK_PREFIX.trim_end_matches('/')
        ));
        let _ = s.fail("daemon security issue -- contact admin");
        return Err(ExitCode::UNSUPPORTED);
    }

    // The module's rules, and the files `include from`/`exclude from` name, are read
    // now, as root and outside any chroot, as upstream's rsync_module() reads them.
    let vars = |k: &str| std::env::var(k).ok();
    let daemon_rules = super::transfer::module_filters(m, &vars);

    if let Err(e) = privileges::drop_to(uid, &gids) {
        let what = match &e {
            DropError::Setgid(_) => {
                format!("setgid {} failed", gids.first().map_or(0, |g| g.as_raw()))
            }
            DropError::Setgroups(_) => "setgroups failed".to_string(),
            DropError::Setuid(_) => format!("setuid {} failed", uid.map_or(0, |u| u.as_raw())),
            DropError::Chroot(_) => "chroot failed".to_string(),
        };
        s.log.line(&sys_error("Receiver", &what, e.errno()));
        return Err(s.fail(&e.to_string()));
    }

    s.conn.set_deadline(
        Some(std::time::Instant::now() + handshake_timeout(p.timeout))
            .filter(|_| s.setup.kind != super::session::SessionKind::RemoteShell),
    );
    s.send_line("@RSYNCD: OK\n")?;

    let numeric_ids = match p.numeric_ids {
        Some(v) => v,
        None => use_chroot && p.name_converter.as_deref().unwrap_or("").is_empty(),
    };
    Ok(ModuleSession {
        root: inner,
        root_dir,
        daemon_rules,
        full_path,
        is_read_only,
        is_write_only: p.write_only,
        munge_symlinks,
        sanitize_paths,
        use_chroot,
        fake_super: p.fake_super,
        am_root: privileges::running_as_root() && !p.fake_super,
        numeric_ids,
        hooks,
        early_input,
        _slot: slot,
    })
}

/// The `%VAR%` lookup for this session: the RSYNC_* values upstream puts in its
/// environment, then the process environment.
fn session_vars(
    s: &Session<'_>,
    module: &str,
    user: Option<&str>,
) -> impl Fn(&str) -> Option<String> + use<> {
    let host = s.peer.host.to_string();
    let addr = s.peer.addr.clone();
    let module = module.to_string();
    let user = user.map(str::to_string);
    move |k: &str| match k {
        "RSYNC_MODULE_NAME" => Some(module.clone()),
        "RSYNC_HOST_NAME" => Some(host.clone()),
        "RSYNC_HOST_ADDR" => Some(addr.clone()),
        "RSYNC_USER_NAME" => user.clone(),
        other => std::env::var(other).ok(),
    }
}

/// Challenge, response and the `auth users` rules, when the module has them.
fn authenticate(
    s: &mut Session<'_>,
    m: &Module,
    is_read_only: &mut bool,
) -> Result<String, ExitCode> {
    let p = &m.params;
    let rules = p.auth_users.as_deref().unwrap_or("").trim().to_string();
    if rules.is_empty() {
        return Ok(String::new());
    }
    let peer_digests = s.peer_greeting.as_ref().and_then(|g| g.digests.clone());
    let digest = match choose_digest(peer_digests.as_deref(), s.protocol) {
        Ok(d) => d,
        Err(_) => {
            let _ = s.fail(&format!(
                "your client does not support one of our daemon-auth checksums: {}",
                crate::protocol::auth::OUR_DIGESTS
            ));
            return Err(ExitCode::UNSUPPORTED);
        }
    };
    let mut random = [0u8; 32];
    getrandom::fill(&mut random).map_err(|_| ExitCode::IPC)?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let challenge = make_challenge(
        digest,
        &random,
        &s.peer.addr,
        now.as_secs() as i32,
        now.subsec_micros() as i32,
        std::process::id() as i32,
    );
    s.send_line(&format!("@RSYNCD: AUTHREQD {challenge}\n"))?;
    // A line that is too long, holds a NUL or ends early is refused like a wrong answer:
    // logged as an invalid challenge response, `@ERROR: auth failed` to the client.
    // Upstream: authenticate.c, auth_server() after read_line_old() fails.
    let line = match s.conn.decode(crate::protocol::auth::decode_response_line) {
        Ok(line) => line,
        Err(
            e @ (crate::engine::conn::ConnError::Timeout | crate::engine::conn::ConnError::Io(_)),
        ) => {
            return Err(s.read_failed(&e));
        }
        Err(_) => {
            let failure = AuthFailure {
                user: None,
                reason: AuthReason::InvalidChallengeResponse,
            };
            let (host, addr) = (s.peer.host.to_string(), s.peer.addr.clone());
            s.log.line(&failure.log_line(&m.name, &host, &addr));
            return Err(s.fail(&format!("auth failed on module {}", m.name)));
        }
    };
    let secrets = p
        .secrets_file
        .as_deref()
        .filter(|f| !f.is_empty())
        .map(PathBuf::from);
    let module_auth = ModuleAuth {
        auth_users: &rules,
        secrets_file: secrets.as_deref(),
        strict_modes: p.strict_modes,
    };
    let outcome = check_digest_floor(digest, p.auth_digest.as_deref()).and_then(|()| {
        check_auth(
            &line,
            &challenge,
            digest,
            &module_auth,
            privileges::running_as_root(),
            &system_groups,
        )
    });
    match outcome {
        Ok(ok) => {
            match ok.access {
                Some(AccessOverride::ReadOnly) => *is_read_only = true,
                Some(AccessOverride::ReadWrite) => *is_read_only = false,
                None => {}
            }
            Ok(ok.user)
        }
        Err(failure) => {
            if let Some(pre) = failure.preceding_log_line() {
                s.log.line(&pre);
            }
            let (host, addr) = (s.peer.host.to_string(), s.peer.addr.clone());
            s.log.line(&failure.log_line(&m.name, &host, &addr));
            Err(s.fail(&format!("auth failed on module {}", m.name)))
        }
    }
}

/// The uid and groups a session runs as: the module's `uid`/`gid`, or nobody/nogroup
/// when the daemon runs as root. Upstream: clientserver.c, rsync_module().
fn module_identity(
    s: &mut Session<'_>,
    m: &Module,
    am_root: bool,
    expand: &dyn Fn(&Option<String>) -> Option<String>,
) -> Result<(Option<Uid>, Vec<Gid>), ExitCode> {
    let p = &m.params;
    match resolve_identity(
        expand(&p.uid).as_deref(),
        expand(&p.gid).as_deref(),
        am_root,
    ) {
        Ok(found) => Ok(found),
        Err(IdentityError::Uid(name)) => {
            s.log.line(&format!("Invalid uid {name}"));
            Err(s.fail(&format!("invalid uid {name}")))
        }
        Err(IdentityError::Gid(name)) => {
            s.log.line(&format!("Invalid gid {name}"));
            Err(s.fail(&format!("invalid gid {name}")))
        }
        Err(IdentityError::Groups(e)) => {
            s.log.line(&e);
            Err(s.fail(&e))
        }
    }
}

/// Why a module's `uid`/`gid` (expanded) name no user or group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdentityError {
    /// No such user.
    Uid(String),
    /// No such group.
    Gid(String),
    /// `gid = *`: the user's groups could not be read.
    Groups(String),
}

/// The uid and groups a module's session runs as, from its `uid` and `gid` values
/// (already expanded): as given, or nobody/nogroup when the daemon runs as root; a
/// daemon not running as root keeps its own identity (`None`, no groups).
///
/// Upstream: clientserver.c, rsync_module().
pub fn resolve_identity(
    uid: Option<&str>,
    gid: Option<&str>,
    am_root: bool,
) -> Result<(Option<Uid>, Vec<Gid>), IdentityError> {
    let uid_name = uid
        .filter(|u| !u.is_empty())
        .map(str::to_string)
        .or_else(|| am_root.then(|| "nobody".to_string()));
    let uid = match uid_name {
        Some(name) => match privileges::user_to_uid(&name) {
            Some(u) => Some(u),
            None => return Err(IdentityError::Uid(name)),
        },
        None => None,
    };
    let mut gids = Vec::new();
    match gid.filter(|g| !g.trim().is_empty()) {
        Some(list) => {
            for (i, g) in list
                .split([' ', ',', '\t'])
                .filter(|g| !g.is_empty())
                .enumerate()
            {
                if g == "*" && i == 0 {
                    let who = uid.unwrap_or_else(Uid::current);
                    let all = privileges::all_groups_of(who)
                        .map_err(|e| IdentityError::Groups(e.to_string()))?;
                    gids.extend(all);
                    continue;
                }
                match privileges::group_to_gid(g) {
                    Some(gid) => gids.push(gid),
                    None => return Err(IdentityError::Gid(g.to_string())),
                }
            }
        }
        None if am_root => match privileges::group_to_gid("nogroup")
            .or_else(|| privileges::group_to_gid("nobody"))
        {
            Some(g) => gids.push(g),
            None => return Err(IdentityError::Gid("nogroup".to_string())),
        },
        None => {}
    }
    // Only root can change identity; a normal user keeps its own, as rsyncd does.
    if !am_root {
        return Ok((None, Vec::new()));
    }
    Ok((uid, gids))
}

/// Splits a module path into the directory to chroot to (if any) and the module root
/// inside it: `/outer/./inner` chroots to `/outer` and serves `/inner`.
fn split_chroot_path(path: &str, use_chroot: bool) -> (Option<PathBuf>, PathBuf) {
    if !use_chroot {
        return (None, PathBuf::from(path));
    }
    match path.split_once("/./") {
        Some((outer, inner)) => (
            Some(PathBuf::from(if outer.is_empty() { "/" } else { outer })),
            Path::new("/").join(inner),
        ),
        None => (Some(PathBuf::from(path)), PathBuf::from("/")),
    }
}

/// Whether the module root, as the session sees it (after any chroot), is `/` itself:
/// `/`, or a path that comes to it lexically (`//`, `/srv/..`), as upstream's
/// normalize_path() measures `module_dirlen`. A relative path is taken as not `/`, so
/// its sessions are confined.
fn is_filesystem_root(inner: &Path) -> bool {
    use std::path::Component;
    let mut depth = 0usize;
    for c in inner.components() {
        match c {
            Component::Normal(_) => depth += 1,
            // `..` at the root stays at the root.
            Component::ParentDir => depth = depth.saturating_sub(1),
            Component::RootDir | Component::CurDir => {}
            Component::Prefix(_) => return false,
        }
    }
    inner.has_root() && depth == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn which_module_roots_are_the_filesystem_root() {
        for root in ["/", "//", "/.", "/srv/..", "/.."] {
            assert!(is_filesystem_root(Path::new(root)), "{root}");
        }
        for other in ["/srv", "/srv/./sub", "/a/../b", "srv", "."] {
            assert!(!is_filesystem_root(Path::new(other)), "{other}");
        }
    }

    #[test]
    fn chroot_paths() {
        assert_eq!(
            split_chroot_path("/backup", false),
            (None, PathBuf::from("/backup"))
        );
        assert_eq!(
            split_chroot_path("/backup", true),
            (Some(PathBuf::from("/backup")), PathBuf::from("/"))
        );
        assert_eq!(
            split_chroot_path("/var/./backup", true),
            (Some(PathBuf::from("/var")), PathBuf::from("/backup"))
        );
    }
}
