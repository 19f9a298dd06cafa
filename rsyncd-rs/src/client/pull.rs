//! Pulling a remote path into a local directory: the server sends, and the engine's
//! receiving roles (the generator thread and the receiver) run here on the client's
//! side of the wire, confined to the destination as a daemon's are to its module.
//! Upstream: main.c, client_run() and do_recv() with `am_sender` off.

use std::path::Path;

use super::connect::ConnectOptions;
use super::error::ClientError;
use super::filters::client_rules;
use super::session::{Collected, Endpoint, ServerLine, Session, finish};
use super::url::Remote;
use crate::engine::exit::ExitCode;
use crate::engine::recv::{PeerStats, Policy, RecvSession, Side};
use crate::engine::tree::{Tree, TreeOptions};
use crate::protocol::options::Options;

/// What a pull did.
#[derive(Debug, Clone)]
pub struct PullOutcome {
    /// Ok, or partial (23), or vanished files (24).
    pub code: ExitCode,
    pub files_transferred: u64,
    pub literal_bytes: u64,
    pub matched_bytes: u64,
    pub total_size: u64,
    /// What the server reported at the end.
    pub server: PeerStats,
    /// Lines from the server and from our own roles (errors, warnings, `-v` names).
    pub lines: Vec<ServerLine>,
    pub motd: Vec<String>,
}

/// Pulls `remote` into the local directory `dest` (created when missing, as rsync
/// creates the last component) with the transfer options `o` (recursion, attributes,
/// compression, deletion, filters...). Everything written stays below `dest`: the
/// server's names are checked by the same confined tree a daemon writes through.
pub fn pull(
    remote: &Remote,
    c: &ConnectOptions,
    o: &Options,
    dest: &Path,
) -> Result<PullOutcome, ClientError> {
    pull_from(Endpoint::Daemon(remote), c, o, dest, None)
}

/// [`pull`] from any endpoint; `dest_arg` names the destination inside `dest` as
/// rsync's last argument does (a new name for a single file, or a directory to make),
/// `None` for `dest` itself.
pub fn pull_from(
    endpoint: Endpoint<'_>,
    c: &ConnectOptions,
    o: &Options,
    dest: &Path,
    dest_arg: Option<Vec<u8>>,
) -> Result<PullOutcome, ClientError> {
    let rules = client_rules(&o.filters)?;
    match std::fs::create_dir(dest) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => {
            return Err(ClientError::Local(format!(
                "mkdir \"{}\" failed: {e}",
                dest.display()
            )));
        }
    }
    let mut o = o.clone();
    o.am_sender = true;
    o.server = false;
    o.args.clear();
    let s = endpoint.open(c, o)?;
    let Session {
        reader,
        mut writer,
        wire,
        opts,
        motd,
        lines: server_lines,
        child,
        ..
    } = s;
    let opts = opts.for_session(wire.protocol, None);
    // Our filter rules go first (a receiving client always sends them).
    let mut out = Vec::new();
    crate::protocol::filter::encode_filter_list(&rules, wire.protocol, false, &mut out)
        .map_err(|e| ClientError::Options(e.to_string()))?;
    writer.data(&out).map_err(super::connect::conn_error)?;
    writer.flush().map_err(super::connect::conn_error)?;
    let ours = Collected::kept_from(&mut writer, c.progress.clone());
    let fake_super = opts.super_mode == Some(-1);
    let tree = Tree::open(
        dest,
        TreeOptions {
            fake_super,
            keep_dirlinks: opts.keep_dirlinks,
            dry_run: opts.dry_run,
            ..TreeOptions::default()
        },
    )
    .map_err(|e| ClientError::Local(format!("opening {} failed: {e}", dest.display())))?;
    let policy = Policy {
        am_root: nix::unistd::geteuid().is_root() && !fake_super,
        fake_super,
        numeric_ids: opts.numeric_ids,
        ignore_errors: opts.ignore_errors,
        log_module_path: dest.display().to_string(),
        ..Policy::default()
    };
    let session = RecvSession {
        opts,
        wire,
        policy,
        tree,
        dest_arg,
        log: ours.clone(),
        name_converter: None,
        side: Side::Client { rules },
    };
    let result = crate::engine::recv::run(session, reader, writer);
    let server_code = child.and_then(super::transport::ChildGuard::wait);
    let (out, code, lines) = finish(result, server_code, &server_lines, &ours)?;
    Ok(PullOutcome {
        code: code(out.code),
        files_transferred: out.files_transferred,
        literal_bytes: out.literal_bytes,
        matched_bytes: out.matched_bytes,
        total_size: out.total_size,
        server: out.peer_stats.unwrap_or_default(),
        lines,
        motd,
    })
}
