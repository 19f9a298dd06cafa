//! The session core every role shares: where log lines go, the module's policy, how
//! lines reach the client, the session's checksums, the client's filter list, and merge
//! files read through the confined tree.

use std::sync::atomic::{AtomicU64, Ordering};

use super::error::EngineError;
use super::exit::ExitCode;
use super::mux::{MuxReader, SharedWriter, lock};
use super::setup::Wire;
use super::tree::{RelPath, Tree};
use crate::protocol::checksum::ChecksumSpec;
use crate::protocol::compat::CF_CHKSUM_SEED_FIX;
use crate::protocol::filter::{FilterRule, filter_list_expected};
use crate::protocol::flist::LinkTargets;
use crate::protocol::mux::MsgCode;
use crate::protocol::options::Options;

/// Where transfer log lines go (the daemon's log); the engine knows nothing else of it.
pub trait LogSink: Send + Sync {
    /// Writes one line.
    fn line(&self, text: &str);

    /// What became of one entry of the transfer (the client keeps these per path; a
    /// daemon's log has its lines instead).
    fn item(&self, _event: &ItemEvent) {}
}

/// What became of one entry, by its name under the transfer root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemEvent {
    pub name: Vec<u8>,
    pub what: ItemWhat,
    /// The entry's size in bytes (its data, for a file).
    pub size: u64,
}

/// See [`ItemEvent`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ItemWhat {
    /// Put in the file list (directories too).
    Listed,
    /// Its data went to the receiver (or, receiving, arrived and was put in place).
    Sent,
    /// The receiver asked for it again, or its attributes only.
    Updated,
    /// The receiver deleted it (from its MSG_DELETED).
    Deleted,
    /// It could not be sent: rsync's reason.
    Failed(String),
}

/// A sink that drops everything.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoLog;

impl LogSink for NoLog {
    fn line(&self, _: &str) {}
}

/// What the module (or the local side) decides beyond the client's options.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    /// The session may give files away (root, and not under fake super).
    pub am_root: bool,
    /// Ownership and special files go into xattrs (`fake super`).
    pub fake_super: bool,
    /// Ids are not mapped through names (`--numeric-ids`, or the module's `numeric ids`).
    pub numeric_ids: bool,
    /// Received symlink targets get the `/rsyncd-munged/` prefix.
    pub munge_symlinks: bool,
    /// A daemon module not chrooted at its root: paths from the client are kept inside
    /// the transfer, and, without munging, so are received symlink targets (upstream:
    /// clientserver.c, `sanitize_paths` when `module_dirlen`).
    pub sanitize_paths: bool,
    /// Delete even after the sender reported I/O errors (`ignore errors`).
    pub ignore_errors: bool,
    /// A daemon module is being served (daemon-only refusals and log lines apply).
    pub is_daemon: bool,
    /// Absolute path arguments are shown as the client gave them: a daemon chrooted at the
    /// module root leaves them unsanitized, so "/sub" stays "/sub" in its messages
    /// (upstream: clientserver.c, `sanitize_paths` only when `module_dirlen`).
    pub show_absolute_args: bool,
    /// The destination as messages name it, when not derived from the module path (a
    /// remote-shell server shows the argument as the client gave it).
    pub dest_shown: Option<String>,
    /// The module's own `filter`, `include from`, `include`, `exclude from` and `exclude`
    /// rules, parsed, in that order.
    pub daemon_rules: Vec<FilterRule>,
    /// The module's `incoming chmod`, applied after any client `--chmod`.
    pub incoming_chmod: Option<super::chmod::ChmodRules>,
    /// The module's `outgoing chmod`: the modes a pull's file list shows.
    pub outgoing_chmod: Option<super::chmod::ChmodRules>,
    /// `ignore nonreadable`: a pull leaves out what this session cannot read.
    pub ignore_nonreadable: bool,
    /// `dont compress` holds `*`: a pull's zlib stream is stored, not compressed (the one
    /// effect the list has in stock 3.5.0, whose per-file levels are compiled out).
    pub dont_compress_all: bool,
    /// `log format` when `transfer logging` is on.
    pub transfer_log_format: Option<String>,
    /// For `log format` escapes.
    pub log_host: String,
    pub log_addr: String,
    pub log_module: String,
    pub log_module_path: String,
    pub log_user: String,
    /// A client's own exclusion of names it lists (below its transfer root), beyond what
    /// rsync's filter rules express: the agent's regular expressions. Never sent to the
    /// peer; a sender leaves such a name out of its list as an excluded one.
    pub local_filter: Option<LocalFilter>,
}

/// The predicate of a [`LocalFilter`]: `(name, is_dir)` → left out.
pub type NameFilter = dyn Fn(&[u8], bool) -> bool + Send + Sync;

/// See [`Policy::local_filter`].
#[derive(Clone)]
pub struct LocalFilter(pub std::sync::Arc<NameFilter>);

impl std::fmt::Debug for LocalFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LocalFilter")
    }
}

impl Policy {
    /// Whether the local filter leaves `name` out.
    pub fn locally_excluded(&self, name: &[u8], is_dir: bool) -> bool {
        self.local_filter
            .as_ref()
            .is_some_and(|f| (f.0)(name, is_dir))
    }

    /// What becomes of the symlink targets this session receives: munging wins over
    /// sanitizing (upstream: flist.c recv_file_entry(), `sanitize_paths &&
    /// !munge_symlinks`).
    pub fn link_targets(&self) -> LinkTargets {
        if self.munge_symlinks {
            LinkTargets::Munged
        } else if self.sanitize_paths {
            LinkTargets::Sanitized
        } else {
            LinkTargets::AsSent
        }
    }

    /// A name quoted for a message as upstream's full_fname() does: in a daemon the
    /// module-relative path and the module, `"dir/file" (in backup)`; otherwise the path
    /// under the transfer root.
    pub fn full_fname(&self, rel: &str) -> String {
        if self.is_daemon {
            format!("\"{rel}\" (in {})", self.log_module)
        } else if self.log_module_path.is_empty() || rel.starts_with('/') {
            format!("\"{rel}\"")
        } else {
            format!("\"{}/{rel}\"", self.log_module_path.trim_end_matches('/'))
        }
    }
}

/// Which end of the connection a session is. A role runs the same way at either end but
/// for what the peer's side of the protocol decides: who sends the filter list, and
/// whether statistics come back at the end.
#[derive(Debug, Clone, Default)]
pub enum Side {
    /// We serve a client (the daemon, `rsyncd-rs --server`).
    #[default]
    Server,
    /// We are the client. `rules` are our own filter rules: we sent them to the server,
    /// and a receiving client applies them too (what `--delete` spares).
    Client { rules: Vec<FilterRule> },
}

/// The statistics a sending server reports to its receiving client at the end.
pub use crate::protocol::stats::TransferStats as PeerStats;

/// Statistics of the receiving side.
#[derive(Debug, Default)]
pub struct Stats {
    pub total_size: AtomicU64,
    pub literal_bytes: AtomicU64,
    pub matched_bytes: AtomicU64,
    pub files_transferred: AtomicU64,
    pub deleted: [AtomicU64; 5],
}

impl Stats {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

/// Where an informational line goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Said {
    /// To the client only (upstream's FCLIENT).
    Client,
    /// To the daemon log only (FLOG).
    Log,
    /// To both (FINFO).
    Both,
}

/// Sends `text` where `to` says.
pub(crate) fn say(log: &dyn LogSink, writer: &SharedWriter, quiet: bool, to: Said, text: &str) {
    if matches!(to, Said::Log | Said::Both) {
        log.line(text.trim_end());
    }
    // A quiet client gets no informational lines (upstream: rwrite() drops FINFO).
    if matches!(to, Said::Client | Said::Both) && !quiet {
        let _ = lock(writer).text(MsgCode::Info, &with_newline(text));
    }
}

/// The checksums of a session: the transfer (whole-file) sum, and the `--checksum` file-list
/// sum when that option is on. Upstream: checksum.c, parse_checksum_choice() (xfer_sum_nni
/// and file_sum_nni).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sums {
    pub xfer: ChecksumSpec,
    pub file: Option<ChecksumSpec>,
}

impl Sums {
    /// From `--checksum-choice=X[,Y]` or the negotiated name; an unknown name is fatal.
    pub(crate) fn for_session(o: &Options, w: &Wire) -> Result<Sums, EngineError> {
        let mut parts = o.checksum_choice.as_deref().map(|c| c.split(','));
        let xfer_name = match &mut parts {
            Some(p) => p.next(),
            None => Some(w.checksum.as_str()),
        };
        let file_name = match &mut parts {
            Some(p) => p.next().or(xfer_name),
            None => xfer_name,
        };
        let unknown = |n: Option<&str>| {
            EngineError::fatal(
                format!("unknown checksum name: {}", n.unwrap_or("")),
                ExitCode::UNSUPPORTED,
            )
        };
        let xfer = ChecksumSpec::for_transfer(xfer_name, w.seed, w.protocol, seed_fix(w))
            .ok_or_else(|| unknown(xfer_name))?;
        let file = if o.always_checksum {
            Some(
                crate::protocol::checksum::file_checksum_spec(file_name, w.protocol)
                    .ok_or_else(|| unknown(file_name))?,
            )
        } else {
            None
        };
        Ok(Sums { xfer, file })
    }
}

pub(crate) fn with_newline(text: &str) -> String {
    if text.ends_with('\n') {
        text.to_string()
    } else {
        format!("{text}\n")
    }
}

/// An error line (upstream's FERROR) to the log and to the client.
pub(crate) fn note_error(log: &dyn LogSink, writer: &SharedWriter, text: &str) {
    tell(log, writer, MsgCode::Error, text);
}

/// A line to the log and to the client as `code` (MSG_ERROR_XFER, MSG_WARNING,
/// MSG_ERROR), as upstream's rwrite() sends FERROR_XFER, FWARNING and FERROR in a daemon.
pub(crate) fn tell(log: &dyn LogSink, writer: &SharedWriter, code: MsgCode, text: &str) {
    log.line(text.trim_end());
    let _ = lock(writer).text(code, &with_newline(text));
}

/// The exit code a session has earned so far: the first error that raises it decides.
#[derive(Debug)]
pub struct ExitState(std::sync::Mutex<ExitCode>);

impl Default for ExitState {
    fn default() -> Self {
        ExitState(std::sync::Mutex::new(ExitCode::OK))
    }
}

impl ExitState {
    /// Raises the code unless an earlier error did.
    pub fn raise(&self, code: ExitCode) {
        let mut e = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if e.0 == 0 {
            *e = code;
        }
    }

    /// The code so far.
    pub fn get(&self) -> ExitCode {
        *self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Reads a merge file named relative to the module root, through the confined tree.
pub(crate) fn read_rule_file(tree: &Tree, path: &[u8]) -> Option<Vec<u8>> {
    use std::io::Read;
    let rel = RelPath::parse(path).ok()?;
    let mut f = tree.open_read(&rel).ok()?;
    let mut buf = Vec::new();
    // Filter files are small; a huge one is not read past this.
    f.by_ref().take(16 << 20).read_to_end(&mut buf).ok()?;
    Some(buf)
}

/// Whether MD5 block sums put the seed first (CF_CHKSUM_SEED_FIX).
pub(crate) fn seed_fix(w: &Wire) -> bool {
    w.compat_flags & CF_CHKSUM_SEED_FIX != 0
}

/// Reads the client's filter list when one comes our way. Upstream: exclude.c,
/// recv_filter_list().
pub(crate) fn receive_filters(
    r: &mut MuxReader,
    o: &Options,
    protocol: i32,
) -> Result<Vec<FilterRule>, EngineError> {
    if !filter_list_expected(
        o.am_sender,
        o.prune_empty_dirs,
        o.deletes(),
        o.delete_excluded,
        protocol,
    ) {
        return Ok(Vec::new());
    }
    // A rule at a time, so each rule's bytes are dropped as it is read.
    let mut d = crate::protocol::filter::FilterListDecoder::new(protocol);
    loop {
        if let Some(rules) = r
            .decode_with(|b| d.decode(b))
            .map_err(|e| EngineError::fatal(format!("filter list: {e}"), ExitCode::PROTOCOL))?
        {
            return Ok(rules);
        }
    }
}

/// The file-list settings of a session; `link_targets` says what becomes of received
/// symlink targets (a receiving daemon's [`Policy::link_targets`]).
pub(crate) fn flist_config(
    o: &Options,
    w: &Wire,
    sums: &Sums,
    link_targets: LinkTargets,
) -> crate::protocol::flist::FlistConfig {
    use crate::protocol::compat::{CF_ID0_NAMES, CF_SAFE_FLIST, CF_VARINT_FLIST_FLAGS};
    crate::protocol::flist::FlistConfig {
        protocol: w.protocol,
        varint_flags: w.compat_flags & CF_VARINT_FLIST_FLAGS != 0,
        inc_recurse: w.inc_recurse,
        safe_flist: w.protocol >= 31 || w.compat_flags & CF_SAFE_FLIST != 0,
        preserve_uid: o.preserve_uid,
        preserve_gid: o.preserve_gid,
        preserve_links: o.preserve_links,
        preserve_devices: o.preserve_devices,
        preserve_specials: o.preserve_specials,
        preserve_hard_links: o.hard_links > 0,
        preserve_atimes: o.preserve_atimes > 0,
        preserve_crtimes: o.preserve_crtimes,
        relative: o.relative,
        flist_csum_len: sums.file.map_or(0, |f| f.digest_len()),
        id0_names: w.compat_flags & CF_ID0_NAMES != 0,
        missing_args_delete: o.missing_args == 2,
        link_targets,
        // -X travels only at protocol 30+ (both ends refuse it below).
        preserve_xattrs: o.preserve_xattrs > 0 && w.protocol >= 30,
        // -A too (both ends refuse it below 30).
        preserve_acls: o.preserve_acls && w.protocol >= 30,
        // The receiving role sets this from its policy.
        acl_fake_super: false,
        numeric_ids: o.numeric_ids,
    }
}
