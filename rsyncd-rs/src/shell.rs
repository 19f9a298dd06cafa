//! The remote end of a remote-shell transfer: `rsyncd-rs --server ARGS . DEST` on standard
//! input and output, which is what `rsync -e ssh --rsync-path=rsyncd-rs` (and rsync's own
//! test suite) runs. No daemon handshake, no modules: the client's user owns the process
//! and names any path it may reach, exactly as with `rsync --server`. Both directions: the
//! receiving side of a push and the sending side of a pull.
//! Upstream: main.c, start_server(), do_server_recv() and do_server_sender() when not a
//! daemon.

use std::os::fd::{AsFd, OwnedFd};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use crate::engine::conn::{Conn, ConnError};
use crate::engine::exit::{ExitCode, Origin};
use crate::engine::recv::RecvSession;
use crate::engine::session::{NoLog, Policy};
use crate::engine::setup::{
    ArgListError, ServerSetup, Wire, read_arg_list, server_options, setup_protocol,
};
use crate::engine::tree::{Tree, TreeOptions};
use crate::protocol::WireError;
use crate::protocol::codec::{get_int, put_int};
use crate::protocol::options::{Options, Refusals};

/// The most arguments `--secluded-args` may send (upstream: MAX_ARGS-ish bound).
const MAX_ARGS: usize = 4096;
/// The longest one of them.
const MAX_ARG_LEN: usize = 64 * 1024;

/// Serves one remote-shell session on standard input and output; `args` are the words
/// after the program name, starting with `--server`. Returns the exit code.
pub fn serve(args: &[String]) -> ExitCode {
    let conn = match stdio_conn() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("rsync: [server] cannot use standard input/output: {e}");
            return ExitCode::IPC;
        }
    };
    serve_on(conn, args)
}

fn stdio_conn() -> std::io::Result<Conn> {
    let input: OwnedFd = std::io::stdin().as_fd().try_clone_to_owned()?;
    let output: OwnedFd = std::io::stdout().as_fd().try_clone_to_owned()?;
    Ok(Conn::new(input, output))
}

/// [`serve`] over any connection.
pub fn serve_on(mut conn: Conn, args: &[String]) -> ExitCode {
    let refusals = Refusals::none();
    // --secluded-args: the rest of the list follows on standard input. Upstream: main.c,
    // read_args() before the set-up.
    let parsed = match server_options(args.to_vec(), &refusals, || read_secluded_args(&mut conn)) {
        Ok((_, parsed)) => parsed,
        Err(code) => return code,
    };
    // Both sides send their version first, then read the other's.
    // Upstream: compat.c, setup_protocol() (remote_protocol == 0).
    let mut out = Vec::new();
    put_int(&mut out, crate::PROTOCOL_VERSION);
    if conn.write_all(&out).is_err() {
        return ExitCode::SOCKETIO;
    }
    let theirs = match conn.decode(|b| Ok::<_, WireError>(get_int(b))) {
        Ok(v) => v,
        Err(_) => return ExitCode::STREAMIO,
    };
    let protocol = theirs.min(crate::PROTOCOL_VERSION);
    let options = match parsed {
        Ok(o) => o,
        Err(e) => {
            // Without a working set-up the client only sees our standard error.
            eprintln!("rsync: {e}");
            eprintln!(
                "{}",
                crate::engine::exit::error_line(
                    ExitCode::SYNTAX,
                    Origin {
                        file: "main.c",
                        line: 1775
                    },
                    "server"
                )
                .trim_end()
            );
            return ExitCode::SYNTAX;
        }
    };
    if !(crate::MIN_PROTOCOL_VERSION..=crate::PROTOCOL_VERSION).contains(&theirs) {
        eprintln!(
            "protocol version mismatch -- is your shell clean?\n(see the rsync manpage for an explanation)"
        );
        return ExitCode::PROTOCOL;
    }
    let mut wire = match setup_protocol(
        &mut conn,
        &ServerSetup {
            protocol,
            options: &options,
            module_timeout: 0,
        },
    ) {
        Ok(w) => w,
        Err(e) => {
            eprintln!("rsync: [server] protocol set-up failed: {e}");
            return e.exit_code();
        }
    };
    if let Some(text) = crate::engine::unsupported::check(&options) {
        wire.fatal(
            &mut conn,
            &text,
            ExitCode::UNSUPPORTED,
            Origin {
                file: "options.c",
                line: 2440,
            },
            "server",
        );
        return ExitCode::UNSUPPORTED;
    }
    if let Some(text) = crate::engine::unsupported::check_protocol(&options, wire.protocol) {
        wire.fatal(
            &mut conn,
            &text,
            ExitCode::PROTOCOL,
            Origin {
                file: "compat.c",
                // Upstream's -A check comes seven lines before its -X check.
                line: if options.preserve_acls { 610 } else { 617 },
            },
            "server",
        );
        return ExitCode::PROTOCOL;
    }
    let options = options.for_session(wire.protocol, None);
    if options.am_sender {
        return send(conn, options, wire);
    }
    receive(conn, options, wire)
}

/// Runs the receiving side into the destination argument.
fn receive(conn: Conn, options: Options, wire: Wire) -> ExitCode {
    let arg = options
        .paths()
        .first()
        .cloned()
        .unwrap_or_else(|| ".".into());
    let (root, dest_arg) = match split_destination(&arg) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("rsync: [Receiver] change_dir \"{arg}\" failed: {e}");
            return ExitCode::FILESELECT;
        }
    };
    let fake_super = options.super_mode == Some(-1);
    let tree = match Tree::open(
        &root,
        TreeOptions {
            fake_super,
            keep_dirlinks: options.keep_dirlinks,
            dry_run: options.dry_run,
            ..TreeOptions::default()
        },
    ) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("rsync: [Receiver] opening {} failed: {e}", root.display());
            return ExitCode::FILESELECT;
        }
    };
    let am_root = nix::unistd::geteuid().is_root() && !fake_super;
    // Not a daemon: no module rules, munging, chmods or transfer log.
    let policy = Policy {
        am_root,
        fake_super,
        numeric_ids: options.numeric_ids,
        ignore_errors: options.ignore_errors,
        dest_shown: Some(shown_arg(&arg)),
        log_module_path: root.display().to_string(),
        ..Policy::default()
    };
    let session = RecvSession {
        opts: options,
        wire,
        policy,
        tree,
        dest_arg: Some(dest_arg),
        log: Arc::new(NoLog),
        name_converter: None,
        side: crate::engine::recv::Side::Server,
    };
    match crate::engine::recv::run_conn(session, conn) {
        Ok(o) => o.code,
        Err(e) => e.code(),
    }
}

/// The sending end: `rsyncd-rs --server --sender ARGS . PATH...` (a pull over a remote
/// shell). Not a daemon: the paths are the client's to name, absolute or relative to our
/// working directory, and symlinks on the way to them are followed as a chdir follows
/// them; inside the transfer the tree's rules apply. Upstream: main.c,
/// do_server_sender().
fn send(conn: Conn, options: Options, wire: Wire) -> ExitCode {
    let fake_super = options.super_mode == Some(-1);
    let tree = match Tree::open(
        Path::new("/"),
        TreeOptions {
            fake_super,
            ..TreeOptions::default()
        },
    ) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("rsync: [sender] opening / failed: {e}");
            return ExitCode::FILESELECT;
        }
    };
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
    let args: Vec<Vec<u8>> = options
        .paths()
        .iter()
        .map(|a| sender_arg(&cwd, a, options.relative))
        .collect();
    let policy = Policy {
        am_root: nix::unistd::geteuid().is_root() && !fake_super,
        fake_super,
        numeric_ids: options.numeric_ids,
        ignore_errors: options.ignore_errors,
        log_module_path: "/".into(),
        ..Policy::default()
    };
    let session = crate::engine::send::SendSession {
        opts: options,
        wire,
        policy,
        tree,
        args,
        log: Arc::new(NoLog),
        counted_from: (0, 0),
        side: crate::engine::session::Side::Server,
    };
    match crate::engine::send::run_conn(session, conn) {
        Ok(o) => o.code,
        Err(e) => e.code(),
    }
}

/// A path argument made relative to `/` for a tree rooted there: relative to `cwd` when
/// not absolute, and the directory part resolved as the kernel resolves it (symlinks and
/// `..`), keeping the last component and a trailing slash as the client wrote them.
/// With `-R` the part before a `/./` marker is resolved and the rest kept.
fn sender_arg(cwd: &Path, arg: &str, relative: bool) -> Vec<u8> {
    use std::os::unix::ffi::OsStrExt;
    let joined = if arg.starts_with('/') {
        arg.to_string()
    } else {
        format!("{}/{arg}", cwd.display())
    };
    let (dir, rest) = if relative {
        match joined.find("/./") {
            Some(i) => (joined[..i].to_string(), format!("/./{}", &joined[i + 3..])),
            None => ("/".to_string(), joined.trim_start_matches('/').to_string()),
        }
    } else {
        let body = joined.trim_end_matches('/');
        match body.rfind('/') {
            Some(i) => (body[..i].to_string(), joined[i..].to_string()),
            None => (String::new(), joined.clone()),
        }
    };
    let dir = if dir.is_empty() { "/".to_string() } else { dir };
    let resolved = Path::new(&dir)
        .canonicalize()
        .unwrap_or_else(|_| PathBuf::from(&dir));
    let mut out = resolved.as_os_str().as_bytes().to_vec();
    while out.first() == Some(&b'/') {
        out.remove(0);
    }
    let rest = rest.as_bytes();
    if relative && !rest.starts_with(b"/./") {
        if !out.is_empty() {
            out.extend_from_slice(b"/./");
        }
        out.extend_from_slice(rest);
        return out;
    }
    if out.is_empty() {
        out.extend_from_slice(rest.strip_prefix(b"/").unwrap_or(rest));
    } else {
        out.extend_from_slice(rest);
    }
    out
}

/// The destination as upstream's messages show it: as given, without a trailing slash.
fn shown_arg(arg: &str) -> String {
    match arg.trim_end_matches('/') {
        "" if arg.starts_with('/') => "/".into(),
        "" => ".".into(),
        a => a.into(),
    }
}

/// Splits the destination into a directory the tree is rooted at (an existing one,
/// resolved as the kernel resolves it, `..` and symlinks included, as a plain
/// `rsync --server` does with chdir) and the rest, relative to it. A destination that
/// exists as a directory is the root itself; otherwise the root is its deepest existing
/// ancestor and the rest is made by the transfer (`--mkpath` for more than one level).
fn split_destination(arg: &str) -> std::io::Result<(PathBuf, Vec<u8>)> {
    let trailing = arg.ends_with('/');
    let path = Path::new(if arg.is_empty() { "." } else { arg });
    if path.is_dir() {
        return Ok((
            path.canonicalize()?,
            if trailing { b"/".to_vec() } else { Vec::new() },
        ));
    }
    let mut rest: Vec<String> = Vec::new();
    let mut base = path.to_path_buf();
    loop {
        match base.file_name() {
            Some(name) => {
                rest.insert(0, name.to_string_lossy().into_owned());
                base.pop();
                let probe = if base.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    base.as_path()
                };
                if probe.is_dir() {
                    let mut tail = rest.join("/");
                    if trailing {
                        tail.push('/');
                    }
                    return Ok((probe.canonicalize()?, tail.into_bytes()));
                }
            }
            None => {
                // Only `..`, `/` or `.` components are left: resolve what exists.
                if base
                    .components()
                    .all(|c| !matches!(c, Component::Normal(_)))
                {
                    let probe = if base.as_os_str().is_empty() {
                        Path::new(".")
                    } else {
                        base.as_path()
                    };
                    let mut tail = rest.join("/");
                    if trailing {
                        tail.push('/');
                    }
                    return Ok((probe.canonicalize()?, tail.into_bytes()));
                }
                return Err(std::io::Error::from(std::io::ErrorKind::NotFound));
            }
        }
    }
}

/// Reads the `--secluded-args` list: NUL-terminated words up to an empty one.
fn read_secluded_args(conn: &mut Conn) -> Result<Vec<String>, ExitCode> {
    read_arg_list(conn, true, MAX_ARG_LEN, MAX_ARGS).map_err(|e| match e {
        ArgListError::Conn(ConnError::Eof) => ExitCode::STREAMIO,
        ArgListError::Conn(_) => ExitCode::SOCKETIO,
        ArgListError::TooMany => {
            eprintln!("rsync: [server] too many arguments");
            ExitCode::PROTOCOL
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations_split_at_their_deepest_existing_directory() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let base = dir.path().canonicalize().unwrap_or_else(|e| panic!("{e}"));
        std::fs::create_dir(base.join("a")).unwrap_or_else(|e| panic!("{e}"));
        let s = |p: &str| split_destination(&format!("{}/{p}", base.display()));
        let ok = |r: std::io::Result<(PathBuf, Vec<u8>)>| r.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(ok(s("a")), (base.join("a"), b"".to_vec()));
        assert_eq!(ok(s("a/")), (base.join("a"), b"/".to_vec()));
        assert_eq!(ok(s("a/new/")), (base.join("a"), b"new/".to_vec()));
        assert_eq!(ok(s("a/x/y")), (base.join("a"), b"x/y".to_vec()));
        assert_eq!(ok(s("a/../b")), (base.clone(), b"b".to_vec()));
    }

    #[test]
    fn sender_arguments_resolve_their_directory() {
        let cwd = Path::new("/");
        assert_eq!(sender_arg(cwd, "/etc/", false), b"etc/");
        assert_eq!(sender_arg(cwd, "/etc/hostname", false), b"etc/hostname");
        assert_eq!(sender_arg(cwd, "/", false), b"");
        assert_eq!(
            sender_arg(Path::new("/etc"), "hostname", false),
            b"etc/hostname"
        );
        assert_eq!(sender_arg(cwd, "/etc/./hostname", true), b"etc/./hostname");
    }
}
