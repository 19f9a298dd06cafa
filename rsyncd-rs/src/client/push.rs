//! Pushing local paths to a module: the engine's sender runs on the client's side of the
//! wire, reading through a tree confined to the local root, so that only what the caller
//! named (and what lies below it) can be sent. Upstream: main.c, client_run() with
//! `am_sender`; sersync's `cd ROOT && rsync -artuz -R PATH... host::module`.

use std::path::Path;

use super::connect::{ConnectOptions, conn_error};
use super::error::ClientError;
use super::filters::client_rules;
use super::session::{Collected, Endpoint, ServerLine, Session};
use super::url::Remote;
use crate::engine::exit::ExitCode;
use crate::engine::recv::Policy;
use crate::engine::session::{ItemWhat, Side};
use crate::engine::tree::{Tree, TreeOptions};
use crate::protocol::filter::{encode_filter_list, filter_list_expected};
use crate::protocol::options::Options;

/// What a push did.
#[derive(Debug, Clone)]
pub struct PushOutcome {
    /// Ok, or partial (23) / vanished (24) with the reasons in `lines`.
    pub code: ExitCode,
    /// The total size of the files listed.
    pub total_size: u64,
    pub bytes_read: u64,
    pub bytes_written: u64,
    /// Lines from the server and from our sender (errors, warnings).
    pub lines: Vec<ServerLine>,
    pub motd: Vec<String>,
    /// What became of each entry, by its name under the local root (with `-R`, the path
    /// as named): `Listed` (the receiver had it already), `Sent`, `Updated` (attributes
    /// only), `Deleted` (by `--delete`, on the receiver), `Failed` with rsync's reason.
    /// A failure the receiving server reports names its entry in its text only; an error
    /// line naming a listed entry marks it failed, with the line as the reason.
    pub items: Vec<(Vec<u8>, ItemWhat)>,
    /// From the start of the connection to the session's end.
    pub elapsed: std::time::Duration,
}

/// Pushes `paths` (relative to the local directory `root`; with `-R` in `o` their
/// directories are recreated under the module path, as sersync pushes) to `remote`.
pub fn push<P: AsRef<[u8]>>(
    remote: &Remote,
    c: &ConnectOptions,
    o: &Options,
    root: &Path,
    paths: &[P],
) -> Result<PushOutcome, ClientError> {
    push_to(Endpoint::Daemon(remote), c, o, root, paths)
}

/// [`push`] to any endpoint.
pub fn push_to<P: AsRef<[u8]>>(
    endpoint: Endpoint<'_>,
    c: &ConnectOptions,
    o: &Options,
    root: &Path,
    paths: &[P],
) -> Result<PushOutcome, ClientError> {
    if paths.is_empty() {
        return Err(ClientError::Options(
            "nothing to push: no path given".into(),
        ));
    }
    let started = std::time::Instant::now();
    let rules = client_rules(&o.filters)?;
    let tree = Tree::open(
        root,
        TreeOptions {
            // Rooted at `/`, the sender may follow links wherever the user's own
            // rsync would (-L, --copy-unsafe-links); any other root confines it.
            whole_filesystem: root == Path::new("/"),
            ..TreeOptions::default()
        },
    )
    .map_err(|e| ClientError::Local(format!("opening {} failed: {e}", root.display())))?;
    let mut o = o.clone();
    o.am_sender = false;
    o.server = false;
    o.args.clear();
    // A receiving server names what it deletes (MSG_DELETED) only when asked for
    // deletion lines. Upstream: log.c, log_delete().
    if o.deletes() && o.verbose == 0 && o.itemize_changes == 0 {
        o.verbose = 1;
    }
    let dest = match endpoint {
        Endpoint::Daemon(r) => r.path.clone(),
        Endpoint::Shell { path, .. } => path.to_string(),
    };
    let s = endpoint.open(c, o)?;
    let Session {
        reader,
        mut writer,
        wire,
        opts,
        motd,
        lines: server_lines,
        counters,
        counted_from,
        child,
        ..
    } = s;
    let opts = opts.for_session(wire.protocol, None);
    // The receiver gets our rules when it deletes or prunes. Upstream: exclude.c,
    // send_filter_list().
    if filter_list_expected(
        false,
        opts.prune_empty_dirs,
        opts.deletes(),
        opts.delete_excluded,
        wire.protocol,
    ) {
        let mut out = Vec::new();
        encode_filter_list(&rules, wire.protocol, true, &mut out)
            .map_err(|e| ClientError::Options(e.to_string()))?;
        writer.data(&out).map_err(conn_error)?;
    }
    let ours = Collected::kept_from(&mut writer, c.progress.clone());
    let policy = Policy {
        numeric_ids: opts.numeric_ids,
        log_module_path: String::new(),
        local_filter: c.local_filter.clone(),
        ..Policy::default()
    };
    let session = crate::engine::send::SendSession {
        opts,
        wire,
        policy,
        tree,
        args: paths.iter().map(|p| p.as_ref().to_vec()).collect(),
        log: ours.clone(),
        counted_from,
        side: Side::Client { rules },
    };
    let result = crate::engine::send::run(session, reader, writer, counters);
    let server_code = child.and_then(super::transport::ChildGuard::wait);
    let (out, code, lines) = super::session::finish(result, server_code, &server_lines, &ours)?;
    ours.blame(&lines, &dest);
    Ok(PushOutcome {
        code: code(out.code),
        total_size: out.total_size,
        bytes_read: out.bytes_read,
        bytes_written: out.bytes_written,
        lines,
        motd,
        items: ours.items(),
        elapsed: started.elapsed(),
    })
}
