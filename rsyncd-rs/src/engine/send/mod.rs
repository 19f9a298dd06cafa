//! The sending side of a transfer (a pull from the daemon, `rsyncd-rs --server --sender`,
//! and the pushing half of the native client): the client's filter list, the file lists,
//! then the receiver's requests answered with delta data, the statistics and the goodbye.
//! Upstream: main.c do_server_sender(), flist.c send_file_list(), sender.c send_files(),
//! match.c.

mod args;

pub use args::sanitize_arg;
mod dirtree;
mod files;
mod list;
mod matcher;
mod scan;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::conn::Conn;
use super::error::{EngineError, end_failed_session};
use super::exit::ExitCode;
use super::filter::{FilterContext, FilterSet, RuleOrigin};
use super::mux::{MuxReader, MuxWriter, SharedWriter, TextSink, lock};
use super::session::{
    ExitState, LogSink, Policy, Said, Sums, flist_config, read_rule_file, receive_filters, say,
    tell,
};
use super::setup::Wire;
use super::tree::{RelPath, Tree};
use crate::protocol::checksum::{ChecksumSpec, FileSum};
use crate::protocol::filter::{FilterRule, server_cvs_rules};
use crate::protocol::flist::{FlistConfig, LinkTargets};
use crate::protocol::mux::MsgCode;
use crate::protocol::options::Options;

/// The inputs of a sending session.
pub struct SendSession {
    pub opts: Options,
    pub wire: Wire,
    pub policy: Policy,
    pub tree: Tree,
    /// The path arguments after `.`, with the module name taken off (module-relative).
    pub args: Vec<Vec<u8>>,
    pub log: Arc<dyn LogSink>,
    /// Bytes read and written on the connection before the transfer (the statistics
    /// leave out the handshake, as upstream's do).
    pub counted_from: (u64, u64),
    /// Which end of the connection we are: a pushing client sends its own filter list
    /// (when the receiver wants one) and no statistics.
    pub side: super::session::Side,
}

impl std::fmt::Debug for SendSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SendSession")
            .field("wire", &self.wire)
            .finish_non_exhaustive()
    }
}

/// The outcome of a sending session.
#[derive(Debug)]
pub struct SendOutcome {
    pub code: ExitCode,
    pub total_size: u64,
    pub bytes_read: u64,
    pub bytes_written: u64,
}

/// What every part of the sender reads: the session's settings and its outputs.
pub(crate) struct Core {
    pub opts: Options,
    pub wire: Wire,
    pub policy: Policy,
    pub tree: Tree,
    pub cfg: FlistConfig,
    pub sums: Sums,
    pub writer: SharedWriter,
    pub log: Arc<dyn LogSink>,
    /// The client's rules (and `-C`'s), for the filter set of each transfer root.
    peer_rules: Vec<FilterRule>,
    exit: ExitState,
    /// The one index encoder of our output: list markers and answers share its state.
    ndx_out: Mutex<crate::protocol::ndx::NdxCodec>,
    /// We serve a client (not the client's own sender).
    pub is_server: bool,
    /// The filter set when it has xattr rules (`-X` with `-f'-x NAME'`).
    pub xattr_filter: Option<FilterSet>,
}

impl Core {
    /// Runs `f` with this sender's xattr rules (upstream's `am_root`, `preserve_xattrs`
    /// and xattr filters).
    pub fn with_xattr_rules<R>(
        &self,
        f: impl FnOnce(&crate::engine::xattrs::XattrRules<'_>) -> R,
    ) -> R {
        let excluded = |n: &[u8]| {
            self.xattr_filter
                .as_ref()
                .is_some_and(|s| s.xattr_excluded(n))
        };
        let rules = crate::engine::xattrs::XattrRules {
            am_root: if self.policy.fake_super {
                -1
            } else {
                i8::from(self.policy.am_root)
            },
            preserve: self.opts.preserve_xattrs,
            filter: self
                .xattr_filter
                .is_some()
                .then_some(&excluded as &dyn Fn(&[u8]) -> bool),
            // A sender removes nothing.
            keep_acls: false,
        };
        f(&rules)
    }

    /// Appends a request (an echoed file request, delete statistics, NDX_DONE) to `out`.
    pub fn put_request(&self, r: &crate::protocol::request::Request, out: &mut Vec<u8>) {
        let mut codec = self
            .ndx_out
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Names were read with a MAXPATHLEN bound, well inside a vstring's.
        let _ = crate::protocol::request::encode_request(&mut codec, self.wire.protocol, r, out);
    }

    /// Appends an index to `out` (upstream's write_ndx(), one state for the session).
    pub fn put_ndx(&self, ndx: i32, out: &mut Vec<u8>) {
        self.ndx_out
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .encode(ndx, out);
    }

    /// Writes file-list or file data.
    pub fn data(&self, bytes: &[u8]) -> Result<(), EngineError> {
        lock(&self.writer).data(bytes).map_err(write_err)
    }

    /// A per-file error that makes the transfer partial (upstream's FERROR_XFER).
    pub fn error_xfer(&self, text: &str) {
        tell(&*self.log, &self.writer, MsgCode::ErrorXfer, text);
        self.exit.raise(ExitCode::PARTIAL);
    }

    /// A warning (upstream's FWARNING).
    pub fn warn(&self, text: &str) {
        tell(&*self.log, &self.writer, MsgCode::Warning, text);
    }

    /// An informational line to the client.
    pub fn info(&self, text: &str) {
        say(
            &*self.log,
            &self.writer,
            self.opts.quiet > 0,
            Said::Client,
            text,
        );
    }

    /// A name quoted for a message as upstream's full_fname() does.
    pub fn quoted(&self, p: &RelPath) -> String {
        self.policy
            .full_fname(&String::from_utf8_lossy(if p.is_root() {
                b"."
            } else {
                p.as_bytes()
            }))
    }

    /// A name relative to the transfer root `dir`, quoted as upstream's full_fname()
    /// does with the working directory at `dir`: in a daemon the module-relative
    /// directory with a leading slash, then the name.
    pub fn quoted_in(&self, dir: &[u8], name: &[u8]) -> String {
        let show = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        // Chrooted at the module root, upstream's working directory is `/` itself.
        if self.policy.is_daemon && self.policy.show_absolute_args {
            let mut p = dir.to_vec();
            if !p.is_empty() {
                p.push(b'/');
            }
            p.extend_from_slice(name);
            return format!("\"/{}\" (in {})", show(&p), self.policy.log_module);
        }
        if dir.is_empty() || !self.policy.is_daemon {
            let mut p = dir.to_vec();
            if !p.is_empty() {
                p.push(b'/');
            }
            p.extend_from_slice(name);
            return self.policy.full_fname(&show(&p));
        }
        format!(
            "\"/{}/{}\" (in {})",
            show(dir),
            show(name),
            self.policy.log_module
        )
    }

    /// The filter set of a transfer rooted at `dir` (module-relative): the daemon's rules,
    /// then the client's. Upstream: exclude.c, the daemon and transfer filter lists.
    pub fn filters_for(&self, dir: &[u8]) -> Result<FilterSet, EngineError> {
        let mut set = FilterSet::new(FilterContext {
            protocol: self.wire.protocol,
            am_sender: true,
            root: dir.to_vec(),
            delete_excluded: self.opts.delete_excluded,
            eol_nulls: self.opts.from0,
        });
        let tree = &self.tree;
        let mut read = |p: &[u8]| -> Option<Vec<u8>> { read_rule_file(tree, p) };
        let fail = |e: crate::protocol::filter::FilterError| {
            EngineError::fatal(e.to_string(), crate::engine::filter::exit_code(&e)).at(
                "exclude.c",
                1500,
                "sender",
            )
        };
        set.add_daemon_rules(self.policy.daemon_rules.clone(), &mut read)
            .map_err(fail)?;
        set.add_rules(self.peer_rules.clone(), RuleOrigin::Peer, &mut read)
            .map_err(fail)?;
        Ok(set)
    }

    /// The daemon's rules alone, rooted at the module.
    pub fn daemon_filters(&self) -> Result<FilterSet, EngineError> {
        let mut set = FilterSet::new(FilterContext {
            protocol: self.wire.protocol,
            am_sender: true,
            root: Vec::new(),
            delete_excluded: false,
            eol_nulls: false,
        });
        let tree = &self.tree;
        let mut read = |p: &[u8]| -> Option<Vec<u8>> { read_rule_file(tree, p) };
        set.add_daemon_rules(self.policy.daemon_rules.clone(), &mut read)
            .map_err(|e| EngineError::fatal(e.to_string(), crate::engine::filter::exit_code(&e)))?;
        Ok(set)
    }

    /// The `--checksum` sum of a file, or `None` when it cannot be read.
    pub fn file_checksum(&self, p: &RelPath, spec: ChecksumSpec) -> Option<Vec<u8>> {
        use std::io::Read;
        let mut f = self.tree.open_read(p).ok()?;
        let mut sum = FileSum::new(&spec);
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            match f.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => sum.update(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => return None,
            }
        }
        let d = sum.finish();
        Some(d[..spec.digest_len().min(d.len())].to_vec())
    }
}

/// The errno upstream reports for what the tree refused: its confined resolver answers a
/// symlink on the way with ELOOP.
pub(crate) fn errno_of(e: &super::tree::TreeError) -> Option<i32> {
    if e.is_confinement() {
        Some(40)
    } else {
        e.raw_os_error()
    }
}

pub(crate) fn write_err(e: super::conn::ConnError) -> EngineError {
    EngineError::io(format!("write error: {e}"), ExitCode::STREAMIO).at("io.c", 1500, "sender")
}

/// [`run`] over a connection after the set-up: the client's side is multiplexed from
/// protocol 30 (upstream's need_messages_from_generator), ours always.
pub fn run_conn(s: SendSession, conn: Conn) -> Result<SendOutcome, EngineError> {
    let counters = conn.counters();
    let (rx, tx) = conn.into_halves();
    let protocol = s.wire.protocol;
    let reader = MuxReader::new(rx, protocol >= 30);
    let writer = MuxWriter::new(tx, true, protocol);
    // Output is gathered and written when we would wait (see `flush_before_waiting`).
    writer.send_at_once();
    run(s, reader, writer, counters)
}

/// Runs the sending side to its end.
pub fn run(
    s: SendSession,
    mut reader: MuxReader,
    writer: MuxWriter,
    counters: Counters,
) -> Result<SendOutcome, EngineError> {
    let writer: SharedWriter = Arc::new(Mutex::new(writer));
    let log = s.log.clone();
    // (A client keeps the sink its session set: the server's lines are its user's.)
    if matches!(s.side, super::session::Side::Server) {
        let text_log = s.log.clone();
        reader.set_text_sink(TextSink::new(move |code, text| {
            if code != MsgCode::Noop {
                text_log.line(String::from_utf8_lossy(text).trim_end());
            }
        }));
    }
    if s.wire.io_timeout > 0 {
        reader
            .conn_mut()
            .set_idle_timeout(Some(std::time::Duration::from_secs(
                s.wire.io_timeout as u64,
            )));
    }
    let wire = (s.wire.protocol, s.wire.io_timeout);
    // Our output goes out when we would wait for the client, not after every answer.
    reader.flush_before_waiting(writer.clone());
    run_session(s, &mut reader, writer.clone(), &counters)
        .map_err(|e| end_failed_session(&mut reader, &writer, &*log, wire, "sender", e))
}

/// Upstream: main.c, start_server() for the sender and do_server_sender().
fn run_session(
    s: SendSession,
    reader: &mut MuxReader,
    writer: SharedWriter,
    counters: &Counters,
) -> Result<SendOutcome, EngineError> {
    let started = Instant::now();
    let sums = Sums::for_session(&s.opts, &s.wire)?;
    let is_client = matches!(s.side, super::session::Side::Client { .. });
    let mut peer_rules = match &s.side {
        super::session::Side::Server => receive_filters(reader, &s.opts, s.wire.protocol)?,
        super::session::Side::Client { rules } => rules.clone(),
    };
    if s.opts.cvs_exclude {
        peer_rules.extend(server_cvs_rules(true, s.wire.protocol));
    }
    // The sender sends targets as they are (a munged one was unmunged when read).
    let cfg = flist_config(&s.opts, &s.wire, &sums, LinkTargets::AsSent);
    let protocol = s.wire.protocol;
    let mut core = Core {
        opts: s.opts,
        wire: s.wire,
        policy: s.policy,
        tree: s.tree,
        cfg,
        sums,
        writer,
        log: s.log,
        peer_rules,
        exit: ExitState::default(),
        ndx_out: Mutex::new(crate::protocol::ndx::NdxCodec::new(protocol)),
        is_server: !is_client,
        xattr_filter: None,
    };
    if core.cfg.preserve_xattrs {
        let set = core.filters_for(b"")?;
        core.xattr_filter = set.has_xattr_rules().then_some(set);
    }
    core.log.line("building file list");
    let mut lists = list::Lister::new(&core);
    let args = match core.opts.files_from.as_deref() {
        Some("-") => files_from(reader, &core, &s.args)?,
        _ => s.args.clone(),
    };
    lists.send_first(&core, &args)?;
    let build_ms = started.elapsed().as_millis().max(1) as i64;
    if lists.file_total == 0 && !is_client {
        // Upstream ends at once when the list is empty (no statistics, no goodbye).
        lock(&core.writer).flush().map_err(write_err)?;
        let code = core.exit.get();
        return Ok(SendOutcome {
            code,
            total_size: 0,
            bytes_read: 0,
            bytes_written: 0,
        });
    }
    files::send_files(&core, reader, &mut lists)?;
    lock(&core.writer).flush().map_err(write_err)?;
    if is_client {
        // A pushing client reports its own statistics. Upstream: main.c, client_run().
        if core.wire.protocol >= 24 {
            files::read_final_goodbye(&core, reader)?;
        }
        return Ok(SendOutcome {
            code: core.exit.get(),
            total_size: lists.total_size,
            bytes_read: load(&counters.0).saturating_sub(s.counted_from.0),
            bytes_written: load(&counters.1).saturating_sub(s.counted_from.1),
        });
    }

    // The statistics the client prints. Upstream: main.c, handle_stats().
    let (read, written) = (load(&counters.0), load(&counters.1));
    let (read, written) = (
        read.saturating_sub(s.counted_from.0),
        written.saturating_sub(s.counted_from.1),
    );
    let mut out = Vec::new();
    crate::protocol::stats::encode_stats(
        &crate::protocol::stats::TransferStats {
            read: read as i64,
            written: written as i64,
            total_size: lists.total_size as i64,
            flist_build_ms: build_ms,
            flist_xfer_ms: 0,
        },
        core.wire.protocol,
        &mut out,
    );
    core.data(&out)?;
    lock(&core.writer).flush().map_err(write_err)?;
    if core.wire.protocol >= 24 {
        files::read_final_goodbye(&core, reader)?;
    }
    lock(&core.writer).flush().map_err(write_err)?;
    let code = core.exit.get();
    Ok(SendOutcome {
        code,
        total_size: lists.total_size,
        bytes_read: load(&counters.0).saturating_sub(s.counted_from.0),
        bytes_written: load(&counters.1).saturating_sub(s.counted_from.1),
    })
}

/// The most names a `--files-from` list may hold (a bound on what a client can make us
/// keep: the first list holds them all, as upstream's does).
const MAX_FILES_FROM: usize = 10_000_000;

/// Reads the names the client forwards for `--files-from=-` (NUL-terminated, ended by an
/// empty one) and turns each into a `-R` argument under the first path argument.
/// Upstream: flist.c, send_file_list() reading filesfrom_fd.
fn files_from(
    r: &mut MuxReader,
    core: &Core,
    args: &[Vec<u8>],
) -> Result<Vec<Vec<u8>>, EngineError> {
    let base = args::sanitize_arg(args.first().map_or(&[][..], Vec::as_slice));
    let base = base.strip_suffix(b"/").unwrap_or(&base).to_vec();
    let raw = core.wire.protocol < 31 && core.wire.protocol >= 30;
    if raw {
        r.set_muxed(false);
    }
    let mut out = Vec::new();
    loop {
        let name = r
            .decode_with(crate::protocol::request::decode_files_from_name)
            .map_err(|e| {
                EngineError::malformed(format!("reading --files-from names: {e}"))
                    .at("io.c", 1200, "sender")
            })?;
        if name.is_empty() {
            break;
        }
        if out.len() >= MAX_FILES_FROM {
            return Err(EngineError::violation("too many --files-from names"));
        }
        let clean = args::sanitize_arg(&name);
        if clean.is_empty() {
            continue;
        }
        let mut arg = base.clone();
        if !arg.is_empty() {
            arg.extend_from_slice(b"/./");
        }
        arg.extend_from_slice(&clean);
        out.push(arg);
    }
    if raw {
        r.set_muxed(true);
    }
    Ok(out)
}

/// The connection's byte counters (read, written).
pub type Counters = (Arc<AtomicU64>, Arc<AtomicU64>);

fn load(c: &AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}
