//! The receiving side of a transfer (a push into the daemon, or a pull by the client):
//! the file list, then a generator thread that decides what to ask for and a receiver
//! (this thread) that rebuilds files, joined by a channel as rsync's two processes are by
//! a pipe (upstream: main.c do_server_recv(), do_recv()).

mod altdest;
mod delete;
mod delta;
mod dest;
mod entry;
mod fuzzy;
mod generator;
mod receiver;
mod translog;
mod xattrs;

use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use super::exit::ExitCode;
use super::filter::{FilterContext, FilterSet, RuleOrigin};
use super::flist::{FileList, ListReceiver};
use super::mux::{MuxReader, MuxWriter, SharedWriter, TextSink, lock};
use super::setup::Wire;
use super::tree::{RelPath, Tree};
use crate::protocol::filter::{FilterRule, server_cvs_rules};
use crate::protocol::mux::MsgCode;
use crate::protocol::options::{DeleteWhen, Info, Options};

pub use dest::Destination;

pub use super::error::EngineError as RecvError;
pub(crate) use super::error::{PEER_CLOSED, end_failed_session};
pub(crate) use super::session::{
    ExitState, Sums, flist_config, note_error, read_rule_file, receive_filters, say, tell,
    with_newline,
};
pub use super::session::{LogSink, NoLog, PeerStats, Policy, Said, Side, Stats};

/// Everything the two threads share.
pub(crate) struct Shared {
    pub opts: Options,
    pub wire: Wire,
    pub policy: Policy,
    pub tree: Tree,
    pub dest: Destination,
    pub writer: SharedWriter,
    pub log: Arc<dyn LogSink>,
    pub stats: Stats,
    /// The daemon's rules and the client's (for refusals and deletion), with the state of
    /// per-directory merge files.
    pub filters: Mutex<FilterSet>,
    /// Worst exit code seen so far (23 for partial transfers, etc.).
    pub exit: ExitState,
    /// The session's checksums.
    pub sums: Sums,
    /// --compare-dest, --copy-dest or --link-dest directories.
    pub basis: altdest::BasisDirs,
    /// The groups a non-root session may give files (its own); `None` when any will do
    /// (root, or fake super, which only records them). Upstream: uidlist.c,
    /// is_in_group() and FLAG_SKIP_GROUP.
    pub settable_groups: Option<std::collections::HashSet<u32>>,
    /// 0777 without the process umask, read once before the threads start (upstream's
    /// dflt_perms).
    pub dflt_perms: u32,
    /// Which end we are.
    pub side: Side,
    /// What a sending server reported at the end (a client's pull).
    pub peer_stats: Mutex<Option<PeerStats>>,
    /// The indexes the generator asked the sender for and the receiver has not had yet
    /// (see [`Shared::take_request`]).
    requested: Mutex<std::collections::HashSet<i32>>,
}

impl Shared {
    /// A per-file error, to the client and the log, that makes the transfer partial: sent
    /// as MSG_ERROR_XFER, which makes the client exit 23 (upstream's FERROR_XFER).
    pub fn error(&self, text: &str) {
        tell(&*self.log, &self.writer, MsgCode::ErrorXfer, text);
        self.set_exit(ExitCode::PARTIAL);
    }

    /// An error that does not by itself make the transfer partial (upstream's FERROR).
    pub fn error_note(&self, text: &str) {
        note_error(&*self.log, &self.writer, text);
    }

    /// Whether files may be given group `gid` (upstream's FLAG_SKIP_GROUP, inverted).
    pub fn may_set_group(&self, gid: u32) -> bool {
        self.settable_groups
            .as_ref()
            .is_none_or(|mine| mine.contains(&gid))
    }

    /// A name for a message as upstream's full_fname() quotes it.
    pub fn quoted(&self, p: &RelPath) -> String {
        self.policy
            .full_fname(&String::from_utf8_lossy(if p.is_root() {
                b"."
            } else {
                p.as_bytes()
            }))
    }

    /// A failed system call, worded as upstream's rsyserr() (`rsync: [ROLE] WHAT: TEXT
    /// (ERRNO)`), marking the transfer partial.
    pub fn sys_error(&self, role: &str, what: &str, err: &crate::engine::tree::TreeError) {
        self.error(&crate::engine::exit::syserr(
            role,
            what,
            err.raw_os_error(),
            err,
        ));
    }

    /// A failure to apply attributes, worded by the step that failed as upstream's
    /// set_file_attrs() words it.
    pub fn attr_error(&self, role: &str, p: &RelPath, err: &crate::engine::tree::TreeError) {
        let name = self.quoted(p);
        let what = match err.op() {
            Some("chown") => format!("chown {name} failed"),
            Some("chmod") => format!("failed to set permissions on {name}"),
            Some("utimes") => format!("failed to set times on {name}"),
            // -A, worded as upstream's set_acl() (the name as given, not quoted).
            Some("set_acl_access") => format!("set_acl: sys_acl_set_file({p}, ACL_TYPE_ACCESS)"),
            Some("set_acl_default") => {
                format!("set_acl: sys_acl_set_file({p}, ACL_TYPE_DEFAULT)")
            }
            Some("delete_def_acl") => format!("set_acl: sys_acl_delete_def_file({p})"),
            Some("set_xattr_acl_access") => {
                format!("set_xattr_acl: lsetxattr(\"{p}\",\"user.rsync.%aacl\") failed")
            }
            Some("set_xattr_acl_default") => {
                format!("set_xattr_acl: lsetxattr(\"{p}\",\"user.rsync.%dacl\") failed")
            }
            Some("get_acl") => format!("get_acl: sys_acl_get_file({p}, ACL_TYPE_ACCESS)"),
            _ => format!("stat {name} failed"),
        };
        self.sys_error(role, &what, err);
    }

    /// A warning, to the log and the client (upstream's FWARNING).
    pub fn warn(&self, text: &str) {
        tell(&*self.log, &self.writer, MsgCode::Warning, text);
    }

    /// Sends an informational line to the client.
    pub fn info(&self, text: &str) {
        self.say(Said::Client, text);
    }

    /// An informational line to the client, the daemon log or both, as upstream's
    /// rprintf() routes FCLIENT, FLOG and FINFO in a daemon (log.c, rwrite()).
    pub fn say(&self, to: Said, text: &str) {
        say(&*self.log, &self.writer, self.opts.quiet > 0, to, text);
    }

    /// Where the generator's `-v` name lines go ("dir/", "link -> target", "a => b"), if
    /// anywhere: the log from protocol 29 on (the client itemizes for itself), the client
    /// and the log before. A log format with `%i` logs the items instead.
    /// Upstream: generator.c, generate_files() (`code`).
    pub fn name_lines(&self) -> Option<Said> {
        if !self.opts.info.at_least(Info::Name, 1) {
            return None;
        }
        let itemizing = self
            .policy
            .transfer_log_format
            .as_deref()
            .is_some_and(|f| f.contains("%i"));
        match (self.wire.protocol >= 29, itemizing) {
            (true, true) => None,
            (true, false) => Some(Said::Log),
            (false, true) => Some(Said::Client),
            (false, false) => Some(Said::Both),
        }
    }

    /// Notes that the generator is asking the sender for `ndx` (before the request goes
    /// out, so that the receiver knows of it before the answer can arrive).
    pub fn note_request(&self, ndx: i32) {
        self.requested
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(ndx);
    }

    /// Whether `ndx` was asked for and not received yet; the request is used up. A sender
    /// sends only what it was asked for, and upstream's receiver trusts it to. We do not:
    /// data for anything else would replace a file the generator chose to keep (one up
    /// to date, or one `-u` or `--ignore-existing` protects), or come a second time and
    /// pass for the redo of a file that failed its checksum.
    pub fn take_request(&self, ndx: i32) -> bool {
        self.requested
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&ndx)
    }

    /// Raises the exit code (the first error of the highest kind wins).
    pub fn set_exit(&self, code: ExitCode) {
        self.exit.raise(code);
    }
}

/// Messages from the receiver thread to the generator (upstream: the error pipe).
#[derive(Debug)]
pub(crate) enum ToGenerator {
    List(Arc<FileList>),
    FlistEof,
    /// Files were received and put in place, in order (MSG_SUCCESS on the pipe).
    DoneMany(Vec<i32>),
    /// A file failed its checksum: ask again with full sums (MSG_REDO).
    Redo(i32),
    /// A file could not be received (MSG_NO_SEND).
    Failed(i32),
    /// The receiver finished a phase (its NDX_DONE on the pipe).
    PhaseDone,
    /// The sender's io_error bits.
    IoError(i32),
    /// The receiver hit a fatal error; the generator stops.
    Abort,
}

/// Reports what the id lookups of the last list had to refuse, as upstream's
/// rprintf(FERROR) does in a daemon: to the log and to the client.
pub(crate) fn report_id_errors(lists: &mut ListReceiver, log: &dyn LogSink, writer: &SharedWriter) {
    for text in std::mem::take(&mut lists.ids.errors) {
        note_error(log, writer, &text);
    }
}

/// The inputs of a receiving session.
pub struct RecvSession {
    pub opts: Options,
    pub wire: Wire,
    pub policy: Policy,
    pub tree: Tree,
    /// The destination argument (module-relative, sanitized): `None` for the root.
    pub dest_arg: Option<Vec<u8>>,
    pub log: Arc<dyn LogSink>,
    /// The module's running `name converter`, if it has one.
    pub name_converter: Option<crate::engine::idmap::NameConverter>,
    /// Which end of the connection we are.
    pub side: Side,
}

impl std::fmt::Debug for RecvSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecvSession")
            .field("wire", &self.wire)
            .finish_non_exhaustive()
    }
}

/// The outcome of a receiving session.
#[derive(Debug)]
pub struct RecvOutcome {
    pub code: ExitCode,
    pub total_size: u64,
    /// Files received and put in place.
    pub files_transferred: u64,
    /// Literal and matched bytes of the received files.
    pub literal_bytes: u64,
    pub matched_bytes: u64,
    /// What a sending server reported at the end (a client's pull).
    pub peer_stats: Option<PeerStats>,
}

/// [`run`] over a connection after the set-up: the client's side is multiplexed from
/// protocol 30, ours always.
pub fn run_conn(s: RecvSession, conn: crate::engine::conn::Conn) -> Result<RecvOutcome, RecvError> {
    let (rx, tx) = conn.into_halves();
    let reader = MuxReader::new(rx, s.wire.protocol >= 30);
    let writer = MuxWriter::new(tx, true, s.wire.protocol);
    run(s, reader, writer)
}

/// Runs the receiving side to its end. `reader`/`writer` are the two halves of the
/// connection (multiplexed as the protocol says).
pub fn run(
    s: RecvSession,
    mut reader: MuxReader,
    writer: MuxWriter,
) -> Result<RecvOutcome, RecvError> {
    let writer: SharedWriter = Arc::new(Mutex::new(writer));
    let log = s.log.clone();
    // Texts a peer puts on the wire (a stock sender does not) go to the log as they come,
    // as upstream's generator logs what its receiver forwards.
    // (A client keeps the sink its session set: the server's lines are its user's.)
    if matches!(s.side, Side::Server) {
        let text_log = s.log.clone();
        reader.set_text_sink(TextSink::new(move |code, text| {
            if code != MsgCode::Noop {
                text_log.line(String::from_utf8_lossy(text).trim_end());
            }
        }));
    }
    let wire = (s.wire.protocol, s.wire.io_timeout);
    // Upstream's generator notices a client that went away first and says so.
    run_session(s, &mut reader, writer.clone())
        .map_err(|e| end_failed_session(&mut reader, &writer, &*log, wire, "generator", e))
}

fn run_session(
    mut s: RecvSession,
    reader: &mut MuxReader,
    writer: SharedWriter,
) -> Result<RecvOutcome, RecvError> {
    let sums = Sums::for_session(&s.opts, &s.wire)?;
    let cfg = flist_config(&s.opts, &s.wire, &sums, s.policy.link_targets());

    let daemon_only = daemon_filter_set(&s)?;
    reject_excluded_backup_dir(&s.opts, &daemon_only)?;
    let peer_rules = match &s.side {
        Side::Server => receive_filters(reader, &s.opts, s.wire.protocol)?,
        Side::Client { rules } => rules.clone(),
    };
    let mut cfg = cfg;
    cfg.acl_fake_super = s.policy.fake_super;
    let mut lists = ListReceiver::new(cfg.clone(), !s.policy.numeric_ids);
    lists.chmod = s.policy.incoming_chmod.clone();
    if let Side::Client { rules } = &s.side {
        lists.refuse = sender_view(rules, &s.opts, s.wire.protocol)?;
    }
    // --usermap/--groupmap (and --chown): names the system lacks are reported, the rest
    // applies. Upstream: uidlist.c, parse_name_map().
    for (text, users) in [(&s.opts.usermap, true), (&s.opts.groupmap, false)] {
        let Some(text) = text else { continue };
        let errors = &mut lists.ids.errors;
        let map = crate::engine::idmap::NameMap::parse(text, users, &mut |t| errors.push(t))
            .map_err(|e| {
                RecvError::fatal(e.0, ExitCode::SYNTAX).at("uidlist.c", 514, "Receiver")
            })?;
        if users {
            lists.ids.user_map = Some(map);
        } else {
            lists.ids.group_map = Some(map);
        }
    }
    report_id_errors(&mut lists, &*s.log, &writer);
    lists.ids.converter = s.name_converter.take().map(|c| Arc::new(Mutex::new(c)));
    s.log.line("receiving file list");
    let first = lists.receive(reader, None);
    report_id_errors(&mut lists, &*s.log, &writer);
    let first = first?;
    let dest = Destination::prepare(
        &s.tree,
        s.dest_arg.as_deref(),
        &first,
        &s.opts,
        &s.policy,
        &|name, is_dir| daemon_only.daemon_refuses(name, is_dir),
        &|to, text| say(&*s.log, &writer, s.opts.quiet > 0, to, text),
    )?;
    reject_excluded_option_dirs(&s.opts, &daemon_only)?;
    let filters = build_filters(&s, &dest, peer_rules)?;
    let settable_groups = if s.policy.am_root || s.policy.fake_super {
        None
    } else {
        let mut g: std::collections::HashSet<u32> = nix::unistd::getgroups()
            .unwrap_or_default()
            .into_iter()
            .map(|g| g.as_raw())
            .collect();
        g.insert(nix::unistd::getegid().as_raw());
        Some(g)
    };
    let basis = altdest::BasisDirs::resolve(&s.tree, &s.opts, &dest.root, &|text| {
        let mut w = lock(&writer);
        s.log.line(text);
        let _ = w.text(MsgCode::Warning, &with_newline(text));
    });
    let shared = Arc::new(Shared {
        opts: s.opts,
        wire: s.wire,
        policy: s.policy,
        tree: s.tree,
        dest,
        writer: writer.clone(),
        log: s.log,
        stats: Stats::default(),
        filters: Mutex::new(filters),
        exit: ExitState::default(),
        sums,
        basis,
        settable_groups,
        dflt_perms: 0o777 & !crate::engine::chmod::process_umask(),
        side: s.side,
        peer_stats: Mutex::new(None),
        requested: Mutex::default(),
    });
    Stats::add(&shared.stats.total_size, total_size(&first));

    let (to_gen, from_receiver) = mpsc::channel::<ToGenerator>();
    let _ = to_gen.send(ToGenerator::List(first.clone()));
    if lists.io_error != 0 {
        let _ = to_gen.send(ToGenerator::IoError(lists.io_error));
    }
    let gen_shared = shared.clone();
    let generator = std::thread::Builder::new()
        .name("generator".into())
        .spawn(move || generator::run(&gen_shared, from_receiver))
        .map_err(|e| {
            RecvError::fatal(format!("failed to start the generator: {e}"), ExitCode::IPC)
        })?;

    let received = receiver::run(&shared, reader, &mut lists, first, &to_gen);
    if received.is_err() {
        let _ = to_gen.send(ToGenerator::Abort);
    }
    // Nothing more can reach the generator: without this sender its waits see the end
    // instead of waiting for messages the receiver, gone early (with an error or not),
    // will never send.
    drop(to_gen);
    let generated = generator
        .join()
        .unwrap_or_else(|_| Err(RecvError::fatal("generator crashed", ExitCode::CRASHED)));
    received?;
    generated?;
    let code = shared.exit.get();
    let st = &shared.stats;
    Ok(RecvOutcome {
        code,
        total_size: st.total_size.load(Ordering::Relaxed),
        files_transferred: st.files_transferred.load(Ordering::Relaxed),
        literal_bytes: st.literal_bytes.load(Ordering::Relaxed),
        matched_bytes: st.matched_bytes.load(Ordering::Relaxed),
        peer_stats: *shared
            .peer_stats
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
    })
}

/// The total size of regular files and symlinks in a list (the `total size` statistic).
/// The sizes are the peer's word, up to 2^63 - 1 each: their sum saturates rather than
/// overflowing (a panic in a debug build, a wrapped statistic in a release one).
fn total_size(list: &FileList) -> u64 {
    list.entries
        .iter()
        .zip(&list.active)
        .filter(|(e, a)| {
            **a && (crate::protocol::flist::mode::is_reg(e.mode)
                || crate::protocol::flist::mode::is_lnk(e.mode))
        })
        .map(|(e, _)| e.size.max(0) as u64)
        .fold(0, u64::saturating_add)
}

/// A receiving client's own rules as the sender applies them, to refuse names they
/// exclude; `None` with a per-directory merge rule, whose files only the sender reads
/// (upstream's trust_sender_filter).
fn sender_view(
    rules: &[FilterRule],
    o: &Options,
    protocol: i32,
) -> Result<Option<crate::engine::flist::Refuse>, RecvError> {
    if rules.is_empty()
        || rules
            .iter()
            .any(|r| matches!(r.action, crate::protocol::filter::Action::Merge(_)))
    {
        return Ok(None);
    }
    let mut set = FilterSet::new(FilterContext {
        protocol,
        am_sender: true,
        root: Vec::new(),
        delete_excluded: o.delete_excluded,
        eol_nulls: o.from0,
    });
    let mut no_files = |_: &[u8]| -> Option<Vec<u8>> { None };
    set.add_rules(rules.to_vec(), RuleOrigin::Peer, &mut no_files)
        .map_err(|e| RecvError::fatal(e.to_string(), crate::engine::filter::exit_code(&e)))?;
    if set.has_dir_merge() {
        return Ok(None);
    }
    Ok(Some(Box::new(move |name: &[u8], is_dir: bool| {
        set.is_excluded(name, is_dir)
    })))
}

/// The session's filter set: the daemon's rules, then the client's (and `-C`'s).
fn build_filters(
    s: &RecvSession,
    dest: &Destination,
    peer: Vec<FilterRule>,
) -> Result<FilterSet, RecvError> {
    let ctx = FilterContext {
        protocol: s.wire.protocol,
        am_sender: false,
        // The module root is "" here (a RelPath shows it as "."). Rules see the names the
        // client used, not where symlinks in the destination argument lead.
        root: if dest.logical.is_root() {
            Vec::new()
        } else {
            dest.logical.as_bytes().to_vec()
        },
        delete_excluded: s.opts.delete_excluded,
        eol_nulls: s.opts.from0,
    };
    let mut set = FilterSet::new(ctx);
    let tree = &s.tree;
    let mut read = |p: &[u8]| -> Option<Vec<u8>> { read_rule_file(tree, p) };
    let fail = |e: crate::protocol::filter::FilterError| {
        RecvError::fatal(e.to_string(), crate::engine::filter::exit_code(&e))
    };
    set.add_daemon_rules(s.policy.daemon_rules.clone(), &mut read)
        .map_err(fail)?;
    let mut rules = peer;
    if s.opts.cvs_exclude {
        rules.extend(server_cvs_rules(false, s.wire.protocol));
    }
    set.add_rules(rules, RuleOrigin::Peer, &mut read)
        .map_err(fail)?;
    Ok(set)
}

/// A basis directory or an absolute --partial-dir inside what the daemon excludes ends
/// the session: files would be read from, written to or deleted in there. Upstream:
/// main.c, do_server_recv(), "Your options have been rejected by the server.".
fn reject_excluded_option_dirs(o: &Options, daemon: &FilterSet) -> Result<(), RecvError> {
    let mut dirs: Vec<&String> = o
        .link_dest
        .iter()
        .chain(&o.copy_dest)
        .chain(&o.compare_dest)
        .collect();
    if let Some(p) = o.partial_dir.as_ref().filter(|p| p.starts_with('/')) {
        dirs.push(p);
    }
    for dir in dirs {
        if excluded_dir(dir, daemon) {
            return Err(RecvError::fatal(
                "Your options have been rejected by the server.",
                ExitCode::SYNTAX,
            )
            .at("main.c", 1268, "Receiver"));
        }
    }
    Ok(())
}

/// A --backup-dir inside what the daemon excludes is refused with the options, before
/// anything is read: upstream vets it as it is written, relative or not, in options.c
/// parse_arguments(), and the daemon reports the failed parse (clientserver.c).
fn reject_excluded_backup_dir(o: &Options, daemon: &FilterSet) -> Result<(), RecvError> {
    match &o.backup_dir {
        Some(dir) if excluded_dir(dir, daemon) => Err(RecvError::fatal(
            "rsync: Your options have been rejected by the server.",
            ExitCode::UNSUPPORTED,
        )
        .at("clientserver.c", 1267, "Receiver")),
        _ => Ok(()),
    }
}

/// Whether the daemon's rules exclude `dir` (an option's directory, cleaned of `..` and
/// rooted at the module).
fn excluded_dir(dir: &str, daemon: &FilterSet) -> bool {
    let clean = dest::sanitize(dir.as_bytes());
    !clean.is_root() && daemon.daemon_refuses(clean.as_bytes(), true)
}

/// The daemon's own rules alone, rooted at the module (to vet the destination argument).
fn daemon_filter_set(s: &RecvSession) -> Result<FilterSet, RecvError> {
    let mut set = FilterSet::new(FilterContext {
        protocol: s.wire.protocol,
        am_sender: false,
        root: Vec::new(),
        delete_excluded: false,
        eol_nulls: false,
    });
    let tree = &s.tree;
    let mut read = |p: &[u8]| -> Option<Vec<u8>> { read_rule_file(tree, p) };
    set.add_daemon_rules(s.policy.daemon_rules.clone(), &mut read)
        .map_err(|e| RecvError::fatal(e.to_string(), crate::engine::filter::exit_code(&e)))?;
    Ok(set)
}

/// `--delete` modes the generator runs in.
pub(crate) fn delete_during(o: &Options) -> bool {
    matches!(o.delete, DeleteWhen::During | DeleteWhen::Delay)
}

/// The relative path of the destination root, for tests and logs.
pub fn dest_root(d: &Destination) -> &RelPath {
    &d.root
}
