//! Handing an accepted session to the transfer engine: the module's policy (chroot,
//! fake super, munging, filters, chmod, transfer log) turned into the engine's inputs
//! (upstream: clientserver.c rsync_module() tail and main.c start_server()).

use std::sync::Arc;

use super::config::{Module, expand_vars};
use super::module::ModuleSession;
use super::session::Session;
use crate::engine::exit::ExitCode;
use crate::engine::recv::RecvSession;
use crate::engine::send::SendSession;
use crate::engine::session::Policy;
use crate::engine::setup::Wire;
use crate::engine::tree::{Tree, TreeOptions};
use crate::protocol::filter::{DaemonParam, FilterRule, parse_daemon_param};
use crate::protocol::options::Options;

/// What both directions build from the module: the confined tree and the policy.
fn prepare(
    s: &mut Session<'_>,
    m: &Module,
    ms: &ModuleSession,
    options: &Options,
) -> Result<(Tree, Policy), ExitCode> {
    let p = &m.params;
    // An absolute --partial-dir names a directory from the module root (upstream's
    // sanitize_path() puts the module path in front of it), which is how the engine
    // reads it.
    let chrooted_at_root = ms.use_chroot && ms.root == std::path::Path::new("/");
    // Built here, after the privilege drop, on the root opened before it.
    let root_dir = ms.root_dir.try_clone().map_err(|e| {
        s.log
            .line(&format!("cannot duplicate the module root: {e}"));
        ExitCode::FILEIO
    })?;
    let tree = Tree::from_fd(
        root_dir,
        TreeOptions {
            fake_super: ms.fake_super,
            keep_dirlinks: options.keep_dirlinks && !options.am_sender,
            dry_run: options.dry_run,
            open_noatime: p.open_noatime == Some(true),
            insecure_links: p.insecure_links,
            // Only a sender reads through a final link (-L); a receiver never does.
            follow_read_links: options.am_sender
                && (options.copy_links || options.copy_unsafe_links),
            ..TreeOptions::default()
        },
    );
    let daemon_rules = match &ms.daemon_rules {
        Ok(f) => f.clone(),
        Err(e) => {
            s.log.line(&format!("invalid daemon filter rules: {e}"));
            return Err(ExitCode::SYNTAX);
        }
    };
    let chmod = |text: Option<&str>| match text.filter(|c| !c.trim().is_empty()) {
        Some(text) => {
            match crate::engine::chmod::parse_chmod(text, crate::engine::chmod::process_umask()) {
                Ok(rules) => Some(rules),
                Err(e) => {
                    s.log.line(&e.daemon_log_line(true));
                    None
                }
            }
        }
        None => None,
    };
    let incoming_chmod = chmod(p.incoming_chmod.as_deref());
    let outgoing_chmod = chmod(p.outgoing_chmod.as_deref());
    let transfer_log_format = match (&s.setup.log_file_format, p.transfer_logging) {
        (Some(f), _) => Some(f.clone()),
        (None, true) => Some(p.log_format.clone()),
        (None, false) => None,
    }
    .filter(|f| !f.is_empty());
    let policy = Policy {
        am_root: ms.am_root,
        fake_super: ms.fake_super,
        numeric_ids: options.numeric_ids || ms.numeric_ids,
        munge_symlinks: ms.munge_symlinks,
        sanitize_paths: ms.sanitize_paths,
        ignore_errors: p.ignore_errors || options.ignore_errors,
        is_daemon: true,
        show_absolute_args: chrooted_at_root,
        dest_shown: None,
        daemon_rules,
        incoming_chmod,
        outgoing_chmod,
        ignore_nonreadable: p.ignore_nonreadable,
        dont_compress_all: p.dont_compress.split_whitespace().any(|w| w == "*"),
        transfer_log_format,
        log_host: s.peer.host.to_string(),
        log_addr: s.peer.addr.clone(),
        log_module: m.name.clone(),
        log_module_path: ms.full_path.display().to_string(),
        log_user: s.user.clone().unwrap_or_default(),
        local_filter: None,
    };
    Ok((tree, policy))
}

/// Takes the connection out of the session, with the byte counts so far (the statistics
/// leave out the handshake and protocol setup, as upstream's do).
fn take_conn(
    s: &mut Session<'_>,
    options: &Options,
) -> Result<(crate::engine::conn::Conn, (u64, u64)), ExitCode> {
    let mut conn = s.conn.take().map_err(|e| {
        s.log.line(&format!("cannot duplicate the connection: {e}"));
        ExitCode::FILEIO
    })?;
    // The daemon's --bwlimit caps the client's. Upstream: clientserver.c,
    // rsync_module() (daemon_bwlimit).
    let kib = match (options.bwlimit, s.setup.bwlimit) {
        (Some(c), Some(d)) => Some(c.min(d)),
        (c, d) => c.or(d),
    };
    conn.tx
        .set_rate_limit(kib.and_then(crate::engine::conn::RateLimit::kib_per_sec));
    let (read, written) = conn.counters();
    let load = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
    let before = (load(&read) - conn.buffered().len() as u64, load(&written));
    Ok((conn, before))
}

/// Runs the receiving side of a push into the module.
pub(super) fn receive(
    s: &mut Session<'_>,
    m: &Module,
    mut ms: ModuleSession,
    options: Options,
    wire: Wire,
) -> Result<ExitCode, ExitCode> {
    let (tree, policy) = prepare(s, m, &ms, &options)?;
    let dest_arg = options.paths().first().map(|a| strip_module(a, &m.name));
    let (conn, (read_before, written_before)) = take_conn(s, &options)?;
    let (read, written) = conn.counters();
    let load = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
    let session = RecvSession {
        opts: options,
        wire,
        policy,
        tree,
        dest_arg,
        log: Arc::new(s.log.clone()),
        name_converter: ms.hooks.take_name_converter(),
        side: crate::engine::recv::Side::Server,
    };
    let outcome = crate::engine::recv::run_conn(session, conn);
    let (got, sent) = (load(&read) - read_before, load(&written) - written_before);
    match outcome {
        // Stock rsyncd writes the totals line only for a clean session: after per-file
        // errors (a partial transfer) its log ends with those errors.
        Ok(o) if o.code == ExitCode::OK => {
            s.log.line(&format!(
                "sent {sent} bytes  received {got} bytes  total size {}",
                o.total_size
            ));
            Ok(o.code)
        }
        Ok(o) => Err(o.code),
        // The engine has told the client and the log already.
        Err(e) => Err(e.code()),
    }
}

/// Runs the sending side of a pull from the module (upstream: main.c,
/// do_server_sender()).
pub(super) fn send(
    s: &mut Session<'_>,
    m: &Module,
    ms: ModuleSession,
    options: Options,
    wire: Wire,
) -> Result<ExitCode, ExitCode> {
    let (tree, policy) = prepare(s, m, &ms, &options)?;
    let args: Vec<Vec<u8>> = options
        .paths()
        .iter()
        .flat_map(|a| module_args(a, &m.name))
        .collect();
    let (conn, counted_from) = take_conn(s, &options)?;
    let session = SendSession {
        opts: options,
        wire,
        policy,
        tree,
        args,
        log: Arc::new(s.log.clone()),
        counted_from,
        side: crate::engine::session::Side::Server,
    };
    match crate::engine::send::run_conn(session, conn) {
        // Unlike a push, a pull logs its totals after per-file errors too (upstream's
        // sender reaches log_exit() with the partial code).
        Ok(o) => {
            s.log.line(&format!(
                "sent {} bytes  received {} bytes  total size {}",
                o.bytes_written, o.bytes_read, o.total_size
            ));
            if o.code == ExitCode::OK {
                Ok(o.code)
            } else {
                Err(o.code)
            }
        }
        Err(e) => Err(e.code()),
    }
}

/// A path argument with the module name taken off its front, as upstream's
/// glob_expand_module() does (`backup/dir` → `/dir`).
fn strip_module(arg: &str, module: &str) -> Vec<u8> {
    arg.strip_prefix(module).unwrap_or(arg).as_bytes().to_vec()
}

/// A sender's path argument as upstream's glob_expand_module() leaves it: the module
/// name taken off its front, split where an old client joined several paths with
/// ` module/`, each made safe (no leading slash, no climbing `..`). Wildcards are
/// expanded later, against the module's tree.
pub(super) fn module_args(arg: &str, module: &str) -> Vec<Vec<u8>> {
    let rest = arg.strip_prefix(module).unwrap_or(arg);
    let sep = format!(" {module}/");
    rest.split(sep.as_str())
        .map(|p| crate::engine::send::sanitize_arg(p.as_bytes()))
        .collect()
}

/// The module's `filter`, `include from`, `include`, `exclude from` and `exclude` rules, in
/// upstream's order; the `from` files are read now, as the operator's own files.
/// Upstream: clientserver.c, rsync_module().
pub(super) fn module_filters(
    m: &Module,
    vars: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<FilterRule>, String> {
    let p = &m.params;
    let expand = |v: &Option<String>| {
        v.as_deref()
            .map(|x| expand_vars(x, vars))
            .filter(|x| !x.trim().is_empty())
    };
    let mut rules = Vec::new();
    for (param, value) in [
        (DaemonParam::Filter, expand(&p.filter)),
        (
            DaemonParam::IncludeFrom,
            expand(&p.include_from).map(read_list_file).transpose()?,
        ),
        (DaemonParam::Include, expand(&p.include)),
        (
            DaemonParam::ExcludeFrom,
            expand(&p.exclude_from).map(read_list_file).transpose()?,
        ),
        (DaemonParam::Exclude, expand(&p.exclude)),
    ] {
        let Some(text) = value else { continue };
        if matches!(param, DaemonParam::IncludeFrom | DaemonParam::ExcludeFrom) {
            // A file of patterns: one rule a line, as upstream's parse_filter_file().
            for (_, line) in crate::protocol::filter::split_rule_file(text.as_bytes(), false, false)
            {
                rules.extend(parse_daemon_param(param, line).map_err(|e| e.to_string())?);
            }
        } else {
            rules.extend(parse_daemon_param(param, text.as_bytes()).map_err(|e| e.to_string())?);
        }
    }
    Ok(rules)
}

/// The contents of an `include from` / `exclude from` file.
fn read_list_file(path: String) -> Result<String, String> {
    std::fs::read(&path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .map_err(|e| format!("{path}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_prefix() {
        assert_eq!(strip_module("backup/", "backup"), b"/");
        assert_eq!(strip_module("backup/a/b", "backup"), b"/a/b");
        assert_eq!(strip_module("backup", "backup"), b"");
    }
}
