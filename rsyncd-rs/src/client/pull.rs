//! Pulling a remote path into a local directory: the server sends, and the engine's
//! receiving roles (the generator thread and the receiver) run here on the client's
//! side of the wire, confined to the destination as a daemon's are to its module.
//! Upstream: main.c, client_run() and do_recv() with `am_sender` off.

use std::path::Path;
use std::sync::{Arc, Mutex};

use super::connect::ConnectOptions;
use super::error::ClientError;
use super::filters::client_rules;
use super::session::{ServerLine, Session};
use super::url::Remote;
use crate::engine::exit::ExitCode;
use crate::engine::mux::TextSink;
use crate::engine::recv::{LogSink, PeerStats, Policy, RecvSession, Side};
use crate::engine::session::{ItemEvent, ItemWhat};
use crate::engine::tree::{Tree, TreeOptions};
use crate::protocol::mux::MsgCode;
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

/// Lines our roles address to the user, and what became of each entry, kept for the
/// outcome.
#[derive(Default)]
pub(super) struct Collected(
    Mutex<Vec<ServerLine>>,
    Mutex<std::collections::BTreeMap<Vec<u8>, ItemWhat>>,
    Option<super::connect::Progress>,
);

impl std::fmt::Debug for Collected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Collected")
    }
}

impl Collected {
    /// The lines so far.
    pub(super) fn lines(&self) -> Vec<ServerLine> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    pub(super) fn push(&self, code: MsgCode, text: &str) {
        let mut l = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if l.len() < 10_000 {
            for line in text.lines() {
                l.push(ServerLine {
                    code,
                    text: line.to_string(),
                });
            }
        }
    }
}

impl LogSink for Collected {
    fn line(&self, _text: &str) {
        // The roles' daemon-log lines ("receiving file list", ...) have no reader here.
    }

    fn item(&self, ev: &ItemEvent) {
        if let Some(p) = &self.2 {
            p(ev);
        }
        let mut m = self
            .1
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // What says most about an entry stays: a failure over a send over an update over
        // a deletion over being listed.
        let rank = |w: &ItemWhat| match w {
            ItemWhat::Failed(_) => 4,
            ItemWhat::Sent => 3,
            ItemWhat::Updated => 2,
            ItemWhat::Deleted => 1,
            ItemWhat::Listed => 0,
        };
        match m.get(&ev.name) {
            Some(old) if rank(old) >= rank(&ev.what) => {}
            _ => {
                m.insert(ev.name.clone(), ev.what.clone());
            }
        }
    }
}

impl Collected {
    /// A collector that also tells `progress` of each entry.
    pub(super) fn with_progress(progress: Option<super::connect::Progress>) -> Collected {
        Collected(Mutex::default(), Mutex::default(), progress)
    }

    /// What became of each entry, by name.
    pub(super) fn items(&self) -> Vec<(Vec<u8>, ItemWhat)> {
        self.1
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
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

/// The other side of a session: a daemon's module, or a server started by a command
/// (a remote shell's `ssh HOST rsync`, our own binary for a local copy) with the path on
/// its side.
#[derive(Debug, Clone, Copy)]
pub enum Endpoint<'a> {
    Daemon(&'a Remote),
    Shell {
        command: &'a [String],
        path: &'a str,
    },
}

impl Endpoint<'_> {
    /// Starts the session: `o` is the server's view of the options.
    pub(super) fn open(self, c: &ConnectOptions, o: Options) -> Result<Session, ClientError> {
        match self {
            Endpoint::Daemon(remote) => {
                if remote.module.is_empty() {
                    return Err(ClientError::Options(
                        "a transfer needs a module name".into(),
                    ));
                }
                Session::start(remote, c, o)
            }
            Endpoint::Shell { command, path } => {
                Session::start_shell(command, c, o, &[path.to_string()])
            }
        }
    }
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
    let ours = Arc::new(Collected::with_progress(c.progress.clone()));
    let sink = ours.clone();
    writer.keep_texts_local(TextSink::new(move |code, text| {
        sink.push(code, &String::from_utf8_lossy(text));
    }));
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

/// The end every client transfer shares: the server's lines and ours in one list, the
/// exit code (the remote shell's own failure, or partial when errors were reported on a
/// session that otherwise ended well), or the typed error of a session that failed.
pub(super) fn finish<T>(
    result: Result<T, crate::engine::error::EngineError>,
    server_code: Option<i32>,
    server_lines: &Mutex<Vec<ServerLine>>,
    ours: &Collected,
) -> Result<(T, impl Fn(ExitCode) -> ExitCode, Vec<ServerLine>), ClientError> {
    let mut lines = server_lines
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    lines.extend(ours.lines());
    let errors = lines
        .iter()
        .any(|l| matches!(l.code, MsgCode::Error | MsgCode::ErrorXfer));
    match result {
        Ok(out) => {
            let code = move |engine: ExitCode| match (engine, server_code) {
                (ExitCode::OK, Some(c)) if c != 0 => ExitCode(c),
                (ExitCode::OK, _) if errors => ExitCode::PARTIAL,
                (c, _) => c,
            };
            Ok((out, code, lines))
        }
        Err(e) => Err(ClientError::Transfer {
            code: e.code(),
            messages: lines
                .iter()
                .map(|l| l.text.clone())
                .chain(std::iter::once(e.to_string()))
                .collect(),
        }),
    }
}
