//! The receiver: the only reader of the socket on the receiving side. It takes the file
//! lists that arrive during the transfer, the sender's replies and file data, rebuilds
//! each file under a temporary name and renames it into place (upstream: receiver.c
//! recv_files(), finish_transfer(); rsync.c read_ndx_and_attrs()).

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::sync::mpsc::Sender;

use super::delta::{Output, Rebuild, Received, append_len, discard_data, receive_data};
use super::entry::{partial_dir_path, show, want_attrs};
use super::translog::{self, Logged};
use super::{RecvError, Shared, Stats, ToGenerator};
use crate::engine::exit::{ExitCode, syserr};
use crate::engine::flist::{FileList, ListError, ListReceiver};
use crate::engine::mux::{Message, MuxReader};
use crate::engine::tree::{AttrTarget, FileKind, RelPath, TempFile, TreeError};
use crate::protocol::checksum::ChecksumSpec;
use crate::protocol::codec::{get_shortint, get_varint};
use crate::protocol::flist::FileEntry;
use crate::protocol::ndx::basis::{
    BACKUP as FNAMECMP_BACKUP, FNAME as FNAMECMP_FNAME, FUZZY as FNAMECMP_FUZZY,
    PARTIAL_DIR as FNAMECMP_PARTIAL_DIR,
};
use crate::protocol::ndx::{
    NDX_DEL_STATS, NDX_DONE, NDX_FLIST_EOF, NDX_FLIST_OFFSET, NdxCodec, iflags as it,
};
use crate::protocol::sums::{SumHead, decode_sum_head};
use crate::protocol::token::{Compression, TokenDecoder};

/// The receiver's state.
struct Receiver<'a, 'r> {
    sh: &'a Shared,
    r: &'r mut MuxReader,
    to_gen: &'a Sender<ToGenerator>,
    /// Files received since the generator was last told (see [`Receiver::done`]).
    pending_done: Vec<i32>,
    live: VecDeque<Arc<FileList>>,
    /// Entries in `live`.
    live_entries: usize,
    /// `--delay-updates`: files staged in their partial dir (destination, staged path)
    /// with their index, put in place when the transfer phases end.
    delayed: Vec<(RelPath, RelPath)>,
    delayed_ndx: Vec<i32>,
    ndx: NdxCodec,
    tokens: TokenDecoder,
    spec: ChecksumSpec,
    /// Files received once already: a second request is the redo pass.
    sent_once: HashSet<i32>,
    /// The long xattr values the sender sent with the current item.
    xattr_fetched: super::xattrs::Fetched,
    /// The basis a transferred file's unfetched long xattr values come from.
    xattr_basis: Option<RelPath>,
    /// The entry's list, for an in-place update.
    xattr_list: Option<Arc<crate::protocol::xattr::XattrList>>,
}

/// Runs the receiver until the sender's last phase ends. Upstream: receiver.c,
/// recv_files(), and the receiver half of main.c do_recv().
pub(super) fn run(
    sh: &Shared,
    r: &mut MuxReader,
    lists: &mut ListReceiver,
    first: Arc<FileList>,
    to_gen: &Sender<ToGenerator>,
) -> Result<(), RecvError> {
    let w = &sh.wire;
    let spec = sh.sums.xfer;
    let compression = match &w.compression {
        Some(name) => Compression::from_name(name).ok_or_else(|| {
            RecvError::fatal(
                format!("unknown compress name: {name}"),
                ExitCode::UNSUPPORTED,
            )
        })?,
        None => Compression::None,
    };
    let mut rc = Receiver {
        sh,
        r,
        to_gen,
        live: VecDeque::from([first.clone()]),
        live_entries: first.entries.len(),
        delayed: Vec::new(),
        delayed_ndx: Vec::new(),
        ndx: NdxCodec::new(w.protocol),
        tokens: TokenDecoder::new(compression, w.protocol),
        spec,
        sent_once: HashSet::new(),
        xattr_fetched: Vec::new(),
        xattr_basis: None,
        xattr_list: None,
        pending_done: Vec::new(),
    };
    if w.inc_recurse && first.entries.len() == 1 {
        // A first list of one entry (duplicates count) is followed at once by the next
        // list or the end. Upstream: flist.c, recv_additional_file_list(), before the
        // receiver forks.
        let ndx = rc.read_ndx()?;
        if ndx != NDX_FLIST_EOF {
            let d = NDX_FLIST_OFFSET.wrapping_sub(ndx);
            if d < 0 || d as usize >= lists.dirs.len() {
                let low = NDX_FLIST_OFFSET - lists.dirs.len() as i32 + 1;
                return Err(RecvError::fatal(
                    format!("[Receiver] Invalid dir index: {ndx} ({NDX_FLIST_OFFSET} - {low})"),
                    ExitCode::PROTOCOL,
                )
                .at("flist.c", 3116, "Receiver"));
            }
        }
        rc.list_marker(ndx, lists, "Receiver")?;
    }
    // An error is reported once, by recv::run().
    let result = rc.files(lists);
    rc.flush_done();
    result?;
    rc.notify(ToGenerator::PhaseDone);
    if matches!(sh.side, super::Side::Client { .. }) {
        let stats = rc.peer_stats()?;
        *sh.peer_stats
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(stats);
    }
    rc.goodbye()
}

impl Receiver<'_, '_> {
    /// Tells the generator something, after the successes it has not heard of yet (the
    /// order matters: a phase ends after its files).
    fn notify(&mut self, msg: ToGenerator) {
        self.flush_done();
        let _ = self.to_gen.send(msg);
    }

    /// A file was put in place. Successes are passed on in batches: one wake-up of the
    /// generator per file cost more than the file for small ones. They go out when the
    /// batch fills, before any other notice, and before the receiver may wait for input
    /// (see [`Receiver::files`]), so the generator never waits on one held back.
    fn done(&mut self, ndx: i32) {
        self.pending_done.push(ndx);
        if self.pending_done.len() >= 256 {
            self.flush_done();
        }
    }

    fn flush_done(&mut self) {
        if !self.pending_done.is_empty() {
            let batch = std::mem::take(&mut self.pending_done);
            let _ = self.to_gen.send(ToGenerator::DoneMany(batch));
        }
    }

    fn read_ndx(&mut self) -> Result<i32, RecvError> {
        let codec = &mut self.ndx;
        let n = self.r.decode(|b| codec.decode(b)).map_err(read_err)?;
        self.messages()?;
        Ok(n)
    }

    /// Handles messages the sender interleaved with the data.
    fn messages(&mut self) -> Result<(), RecvError> {
        for m in self.r.take_messages() {
            match m {
                Message::IoError(e) => {
                    self.notify(ToGenerator::IoError(e));
                }
                Message::NoSend(ndx) => {
                    // The sender will not send it: its request is used up.
                    self.sh.take_request(ndx);
                    self.notify(ToGenerator::Failed(ndx));
                }
                Message::ErrorExit(code) => {
                    return Err(RecvError::fatal(
                        "the sender exited with an error",
                        crate::engine::exit::ExitCode(code.unwrap_or(12)),
                    ));
                }
                Message::Text(_, text) => {
                    self.sh.log.line(String::from_utf8_lossy(&text).trim_end())
                }
                // A server's reader never gets MSG_IO_TIMEOUT.
                Message::Success(_) | Message::Deleted(_) | Message::IoTimeout(_) => {}
            }
        }
        Ok(())
    }

    /// A negative index that is not NDX_DONE: the end of the lists, or a sub-list (`role`
    /// names upstream's process for the error line). Upstream: rsync.c,
    /// read_ndx_and_attrs(), and flist.c, recv_file_list().
    fn list_marker(
        &mut self,
        ndx: i32,
        lists: &mut ListReceiver,
        role: &'static str,
    ) -> Result<(), RecvError> {
        if !self.sh.wire.inc_recurse {
            let last = self.live.back().map_or(-1, |l| l.end() - 1);
            return Err(RecvError::fatal(
                format!("Invalid file index: {ndx} ({NDX_DONE} - {last}) [receiver]"),
                ExitCode::PROTOCOL,
            )
            .at("rsync.c", 353, "receiver"));
        }
        if ndx == NDX_FLIST_EOF {
            self.notify(ToGenerator::FlistEof);
            return Ok(());
        }
        let d = NDX_FLIST_OFFSET.wrapping_sub(ndx);
        if d < 0 || d as usize >= lists.dirs.len() {
            let low = NDX_FLIST_OFFSET - lists.dirs.len() as i32 + 1;
            return Err(RecvError::fatal(
                format!("Invalid dir index: {ndx} ({NDX_FLIST_OFFSET} - {low}) [receiver]"),
                ExitCode::PROTOCOL,
            )
            .at("rsync.c", 370, "receiver"));
        }
        // Every list has been finished (and freed, upstream): no directory is waiting for
        // its contents any more. Upstream logs the start of a first list again on its way
        // to the refusal.
        if self.live.is_empty() {
            self.sh.log.line("receiving file list");
            return Err(RecvError::fatal(
                "rsync: refusing sub-flist after final flist was freed",
                ExitCode::PROTOCOL,
            )
            .at("flist.c", 2904, role));
        }
        let list = lists.receive(self.r, Some(d as usize));
        super::report_id_errors(lists, &*self.sh.log, &self.sh.writer);
        let list = list.map_err(|e| match e {
            // A refused sub-list is the receiver's (or, before it forks, the
            // Receiver's) to report.
            ListError::Fatal {
                msg,
                code,
                at,
                role: "receiver",
            } => RecvError::fatal(msg, code).at(at.file, at.line, role),
            other => RecvError::List(other),
        })?;
        Stats::add(&self.sh.stats.total_size, super::total_size(&list));
        if lists.io_error != 0 {
            self.notify(ToGenerator::IoError(lists.io_error));
        }
        // Lists stay until the sender finishes them; one that streams lists without ever
        // finishing them is stopped well before memory runs out.
        self.live_entries += list.entries.len();
        if self.live_entries > 2 * crate::engine::flist::MAX_LIST_ENTRIES {
            return Err(RecvError::fatal("file list too long", ExitCode::PROTOCOL));
        }
        self.live.push_back(list.clone());
        self.notify(ToGenerator::List(list));
        Ok(())
    }

    fn files(&mut self, lists: &mut ListReceiver) -> Result<(), RecvError> {
        let sh = self.sh;
        let p = sh.wire.protocol;
        let max_phase = if p >= 29 { 2 } else { 1 };
        let mut phase = 0;
        loop {
            // Little left to read: the next read may wait, so pass successes on first.
            if self.r.buffered().len() < 64 {
                self.flush_done();
            }
            let ndx = self.read_ndx()?;
            if ndx == NDX_DONE {
                if sh.wire.inc_recurse && !self.live.is_empty() {
                    if let Some(done) = self.live.pop_front() {
                        self.live_entries -= done.entries.len();
                    }
                    if !self.live.is_empty() {
                        continue;
                    }
                }
                phase += 1;
                if phase == 2 && sh.opts.delay_updates {
                    self.handle_delayed_updates();
                }
                if phase > max_phase {
                    return Ok(());
                }
                self.notify(ToGenerator::PhaseDone);
                continue;
            }
            if ndx == NDX_DEL_STATS {
                for _ in 0..5 {
                    self.r.decode(get_varint).map_err(read_err)?;
                }
                continue;
            }
            if ndx < 0 {
                self.list_marker(ndx, lists, "receiver")?;
                continue;
            }
            let iflags = if p >= 29 {
                u32::from(self.r.decode(|b| Ok(get_shortint(b))).map_err(read_err)?)
            } else {
                it::TRANSFER | it::MISSING_DATA
            };
            // Protocol 29's keepalive: the list's length with IS_NEW.
            if p < 30 && iflags == it::IS_NEW && self.live.front().is_some_and(|l| ndx == l.end()) {
                continue;
            }
            let Some(list) = self.list_for(ndx) else {
                let (first, last) = match (self.live.front(), self.live.back()) {
                    (Some(f), Some(l)) => (f.ndx_start - 1, l.end() - 1),
                    _ => (0, -1),
                };
                return Err(RecvError::fatal(
                    format!(
                        "File-list index {ndx} not in {first} - {last} (read_ndx_and_attrs) [receiver]"
                    ),
                    ExitCode::PROTOCOL,
                )
                .at("rsync.c", 982, "receiver"));
            };
            let basis_type = if iflags & it::BASIS_TYPE_FOLLOWS != 0 {
                self.r.read_exact(1).map_err(read_err)?[0]
            } else {
                FNAMECMP_FNAME
            };
            let xname = if iflags & it::XNAME_FOLLOWS != 0 {
                Some(
                    self.r
                        .decode(|b| crate::protocol::codec::get_vstring(b, 4096))
                        .map_err(read_err)?,
                )
            } else {
                None
            };
            // The long xattr values asked for follow the item. Upstream: receiver.c,
            // recv_files() → recv_xattr_request().
            self.xattr_fetched.clear();
            if sh.xattr_exchange() && iflags & it::REPORT_XATTR != 0 {
                self.xattr_fetched = self
                    .r
                    .decode(|b| {
                        crate::protocol::xattr::decode_xattr_response(b)
                            .map_err(crate::protocol::WireError::from)
                    })
                    .map_err(read_err)?;
            }
            // Only a regular file can be transferred (a removed duplicate has upstream's
            // cleared mode, which is none); the slot before a list is its directory.
            let slot = usize::try_from(ndx - list.ndx_start).ok();
            if iflags & it::TRANSFER != 0
                && !slot.is_some_and(|i| {
                    list.active[i] && crate::protocol::flist::mode::is_reg(list.entries[i].mode)
                })
            {
                return Err(RecvError::fatal(
                    format!("received request to transfer non-regular file: {ndx} [receiver]"),
                    ExitCode::PROTOCOL,
                )
                .at("rsync.c", 442, "receiver"));
            }
            let entry = match slot {
                Some(i) if list.active[i] => list.entries[i].clone(),
                Some(_) => {
                    return Err(RecvError::fatal(
                        format!("rsync: refusing transfer of cleared file index {ndx}"),
                        ExitCode::PROTOCOL,
                    )
                    .at("receiver.c", 880, "receiver"));
                }
                None => match &list.parent {
                    Some((_, dir)) => dir.clone(),
                    None => {
                        return Err(RecvError::fatal("", ExitCode::PROTOCOL).at(
                            "receiver.c",
                            868,
                            "receiver",
                        ));
                    }
                },
            };
            if !self.xattr_fetched.is_empty() {
                sh.check_xattr_response(entry.xattrs.as_ref(), &self.xattr_fetched, &entry.name)?;
            }
            if iflags & it::TRANSFER == 0 {
                // xattr-only changes reach disk here: the generator never applies them.
                if super::xattrs::applies_to_item(iflags)
                    && !sh.opts.dry_run
                    && let Ok(dest) = sh.dest.path_of(&entry.name)
                {
                    let fetched = std::mem::take(&mut self.xattr_fetched);
                    sh.apply_xattrs(
                        AttrTarget::Path(&dest),
                        &dest,
                        entry.xattrs.as_ref(),
                        &fetched,
                        None,
                    );
                    // Then the rest of the entry's attributes, ACLs among them, as
                    // upstream's receiver runs set_file_attrs() for such an item (with
                    // fake super, the xattr step may have removed %aacl/%dacl).
                    if sh.acls_on()
                        && let Err(err) = sh
                            .tree
                            .set_attrs(AttrTarget::Path(&dest), &want_attrs(sh, &entry))
                    {
                        sh.attr_error("receiver", &dest, &err);
                    }
                }
                if let Some(fmt) = &sh.policy.transfer_log_format
                    && !sh.opts.dry_run
                    && (crate::engine::itemize::is_significant(iflags)
                        || xname.as_deref().is_some_and(|x| !x.is_empty()))
                    && fmt.contains("%i")
                {
                    translog::line(
                        sh,
                        fmt,
                        &entry,
                        &Logged {
                            iflags,
                            hlink: xname.as_deref(),
                            ..Logged::recv()
                        },
                    );
                }
                continue;
            }
            if phase == 2 {
                return Err(RecvError::fatal(
                    "got transfer request in phase 2 [receiver]",
                    ExitCode::PROTOCOL,
                ));
            }
            // A dry run gets no data: the item was only echoed.
            if sh.opts.dry_run {
                continue;
            }
            if !sh.take_request(ndx) {
                return Err(RecvError::fatal(
                    format!(
                        "rsync: refusing data for file index {ndx}, which was not requested [receiver]"
                    ),
                    ExitCode::PROTOCOL,
                ));
            }
            self.receive_file(ndx, &entry, iflags, basis_type, xname.as_deref())?;
        }
    }

    /// The live list an index falls in: one of its entries (active or not), or the slot
    /// just before it, which names the list's directory. Upstream: rsync.c,
    /// flist_for_ndx().
    fn list_for(&self, ndx: i32) -> Option<Arc<FileList>> {
        self.live
            .iter()
            .find(|l| ndx >= l.ndx_start - 1 && ndx < l.end())
            .cloned()
    }

    /// Receives one file. Upstream: receiver.c, recv_files() for an ITEM_TRANSFER record.
    fn receive_file(
        &mut self,
        ndx: i32,
        e: &FileEntry,
        iflags: u32,
        basis_type: u8,
        xname: Option<&[u8]>,
    ) -> Result<(), RecvError> {
        let sh = self.sh;
        let o = &sh.opts;
        let redo = !self.sent_once.insert(ndx);
        // Upstream's %b counts what this file's data took on the wire, sum head included.
        let wire_start = self.r.consumed();
        let head = self.read_sum_head()?;
        let dest = match sh.dest.path_of(&e.name) {
            Ok(p) => p,
            Err(err) => {
                return self.skip_file(
                    ndx,
                    &head,
                    &format!("rsync: invalid name {}: {err}", show(&e.name)),
                );
            }
        };
        if e.name != b"."
            && sh
                .filters
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .daemon_refuses(&e.name, false)
        {
            return Err(RecvError::fatal(
                format!(
                    "ERROR: rejecting file transfer request for daemon excluded file: {}",
                    show(&e.name)
                ),
                ExitCode::PROTOCOL,
            ));
        }
        let partial = partial_dir_path(sh, &dest);
        let basis_path = match basis_type {
            FNAMECMP_FNAME => Some(dest.clone()),
            FNAMECMP_PARTIAL_DIR => partial.clone(),
            FNAMECMP_BACKUP => backup_path(sh, &dest),
            t if t >= FNAMECMP_FUZZY => {
                if o.fuzzy == 0 {
                    return Err(RecvError::fatal(
                        format!(
                            "rsync: refusing malicious fuzzy operation for {}",
                            show(xname.unwrap_or_default())
                        ),
                        ExitCode::PROTOCOL,
                    ));
                }
                let n = usize::from(t - FNAMECMP_FUZZY);
                if n > sh.basis.dirs.len() {
                    return Err(RecvError::fatal(
                        format!("invalid basis_dir index: {t}."),
                        ExitCode::PROTOCOL,
                    ));
                }
                fuzzy_basis(sh, e, &dest, n, xname.unwrap_or_default()).or(Some(dest.clone()))
            }
            t if usize::from(t) < sh.basis.dirs.len() => {
                let name = sh.dest.solo.clone().unwrap_or_else(|| e.name.clone());
                sh.basis.path(usize::from(t), &name)
            }
            t => {
                return Err(RecvError::fatal(
                    format!("invalid basis_dir index: {t}."),
                    ExitCode::PROTOCOL,
                ));
            }
        };
        self.xattr_basis.clone_from(&basis_path);
        self.xattr_list.clone_from(&e.xattrs);
        let basis = basis_path.as_ref().and_then(|bp| match sh.tree.lstat(bp) {
            Ok(Some(m)) if m.kind == FileKind::Regular => sh.tree.open_read(bp).ok(),
            _ => None,
        });
        let dest_meta = sh.tree.lstat(&dest).ok().flatten();
        if dest_meta.as_ref().is_some_and(|m| m.kind == FileKind::Dir) {
            return self.skip_file(
                ndx,
                &head,
                &format!("rsync: recv_files: {} is a directory", show(&e.name)),
            );
        }
        // Upstream's one_inplace (a partial-dir basis updated in place) only saves a copy;
        // staging a temporary file gives the same result, so only --inplace writes in place.
        let inplace = o.inplace;
        let mut want = want_attrs(sh, e);
        if !o.preserve_perms {
            let existing = dest_meta.as_ref().map(|m| m.mode);
            want.mode = Some(super::entry::dest_mode(o, e.mode, existing, sh.dflt_perms) & 0o7777);
        }
        let outcome = if inplace {
            // --append keeps what the sum head covered, except when redoing a file whose
            // checksum failed (upstream negates append_mode for the redo pass).
            let append = o.append_mode > 0 && !redo;
            let how = Rebuild {
                inplace: true,
                keep: if append { append_len(&head) } else { 0 },
                verify_kept: append && o.append_mode == 2,
            };
            self.receive_inplace(&dest, &head, basis.as_ref(), &want, how)
        } else {
            let from_partial = basis_type == FNAMECMP_PARTIAL_DIR && basis.is_some();
            self.receive_to_temp(
                e,
                &dest,
                &head,
                (basis.as_ref(), from_partial),
                &want,
                partial.as_ref(),
            )
        };
        let got = match outcome {
            Ok(g) => g,
            Err(Fail::Skip(msg)) => return self.skip_file(ndx, &head, &msg),
            Err(Fail::Lost(msg)) => {
                sh.error(&msg);
                self.notify(ToGenerator::Failed(ndx));
                return Ok(());
            }
            Err(Fail::Fatal(err)) => return Err(err),
        };
        match got {
            Some(received) if received.verified => {
                Stats::add(&sh.stats.files_transferred, 1);
                sh.log.item(&crate::engine::session::ItemEvent {
                    name: e.name.clone(),
                    what: crate::engine::session::ItemWhat::Sent,
                    size: e.size.max(0) as u64,
                });
                Stats::add(&sh.stats.literal_bytes, received.literal_bytes);
                Stats::add(&sh.stats.matched_bytes, received.matched_bytes);
                if let Some(fmt) = &sh.policy.transfer_log_format {
                    let wire_bytes = self.r.consumed() - wire_start;
                    translog::line(
                        sh,
                        fmt,
                        e,
                        &Logged {
                            iflags,
                            bytes: wire_bytes,
                            sum: Some(&received.sum),
                            ..Logged::recv()
                        },
                    );
                }
                if received.delayed {
                    self.delayed_ndx.push(ndx);
                } else {
                    self.done(ndx);
                }
            }
            Some(_) => {
                let kept = if o.inplace {
                    "retained"
                } else if o.keep_partial && o.partial_dir.is_some() {
                    "put into partial-dir"
                } else if o.keep_partial {
                    "retained"
                } else {
                    "discarded"
                };
                if redo {
                    sh.error(&format!(
                        "ERROR: {} failed verification -- update {kept}.",
                        show(&e.name)
                    ));
                    self.notify(ToGenerator::Failed(ndx));
                } else {
                    let itemizing = o.itemizing() > 0;
                    if o.info.at_least(crate::protocol::options::Info::Name, 1) || itemizing {
                        sh.warn(&format!(
                            "WARNING: {} failed verification -- update {kept} (will try again).",
                            show(&e.name)
                        ));
                    }
                    self.notify(ToGenerator::Redo(ndx));
                }
            }
            None => {
                self.notify(ToGenerator::Failed(ndx));
            }
        }
        Ok(())
    }

    fn read_sum_head(&mut self) -> Result<SumHead, RecvError> {
        let p = self.sh.wire.protocol;
        let max = self.spec.digest_len();
        self.r
            .decode(|b| decode_sum_head(b, p, max))
            .map_err(read_err)
    }

    /// Reads past a file that cannot be received, reports it and tells the generator.
    fn skip_file(&mut self, ndx: i32, head: &SumHead, msg: &str) -> Result<(), RecvError> {
        self.sh.error(msg);
        discard_data(self.r, &mut self.tokens, head, &self.spec).map_err(delta_err)?;
        self.notify(ToGenerator::Failed(ndx));
        Ok(())
    }

    /// Writes into a temp file beside the destination and renames it into place when the
    /// checksum matched. Upstream: receiver.c recv_files() and rsync.c finish_transfer().
    fn receive_to_temp(
        &mut self,
        e: &FileEntry,
        dest: &RelPath,
        head: &SumHead,
        (basis, partial_was_basis): (Option<&std::fs::File>, bool),
        want: &crate::engine::tree::WantAttrs,
        partial: Option<&RelPath>,
    ) -> Result<Option<Received>, Fail> {
        let sh = self.sh;
        let o = &sh.opts;
        let temp_mode = (e.mode | 0o200) & 0o700 | if sh.policy.fake_super { 0o600 } else { 0 };
        let mut tmp: TempFile = match sh.tree.create_temp(dest, temp_mode) {
            Ok(t) => t,
            Err(err) => {
                let what = format!("mkstemp {} failed", sh.quoted(&temp_template(dest)));
                return Err(Fail::Skip(syserr(
                    "receiver",
                    &what,
                    err.raw_os_error(),
                    &err,
                )));
            }
        };
        if o.preallocate && e.size > 0 {
            let _ =
                nix::fcntl::fallocate(tmp.file(), nix::fcntl::FallocateFlags::empty(), 0, e.size);
        }
        let received = {
            let mut out = Output::new(tmp.file_mut(), o.sparse);
            let r = receive_data(
                self.r,
                &mut self.tokens,
                head,
                &self.spec,
                basis,
                &mut out,
                Rebuild::default(),
            );
            match r {
                Ok(got) => {
                    out.finish(o.sparse)
                        .map_err(|err| Fail::Fatal(write_failed(sh, dest, &err)))?;
                    got
                }
                Err(err) => {
                    // The connection broke mid-file: keep what arrived with --partial,
                    // its gathered bytes written out first. Upstream: cleanup.c,
                    // _exit_cleanup() (cleanup_got_literal, flush_write_file()).
                    let arrived = out.pos() > 0;
                    let kept = o.keep_partial
                        && arrived
                        && !matches!(err, super::delta::DeltaError::Write(_))
                        && out.finish(o.sparse).is_ok();
                    if kept {
                        self.keep_broken_partial(tmp, dest, partial, want);
                    } else {
                        sh.tree.discard(tmp);
                    }
                    return Err(match err {
                        super::delta::DeltaError::Write(w) => {
                            Fail::Fatal(write_failed(sh, dest, &w))
                        }
                        other => Fail::Fatal(delta_err(other)),
                    });
                }
            }
        };
        if !received.verified {
            if o.keep_partial {
                self.keep_partial(tmp, dest, partial);
            } else {
                sh.tree.discard(tmp);
            }
            return Ok(Some(received));
        }
        let fetched = std::mem::take(&mut self.xattr_fetched);
        sh.apply_xattrs(
            AttrTarget::Temp(&tmp),
            dest,
            e.xattrs.as_ref(),
            &fetched,
            self.xattr_basis.as_ref(),
        );
        if let Err(err) = sh.tree.set_attrs(AttrTarget::Temp(&tmp), want) {
            sh.attr_error("receiver", dest, &err);
        }
        // --delay-updates: the finished file waits in the partial dir until the end.
        // Upstream: recv_files() with delay_updates, handle_delayed_updates().
        if o.delay_updates
            && let Some(pp) = partial
        {
            let made = match pp.parent() {
                Some(dir) if sh.tree.lstat(&dir).ok().flatten().is_none() => {
                    sh.tree.mkdir(&dir, 0o700).is_ok()
                }
                _ => true,
            };
            if !made {
                sh.tree.discard(tmp);
                sh.error_note(&format!(
                    "Unable to create partial-dir for {} -- discarding completed file.",
                    show(&e.name)
                ));
                return Ok(None);
            }
            commit(sh, tmp, dest, pp)?;
            self.delayed.push((dest.clone(), pp.clone()));
            let mut received = received;
            received.delayed = true;
            return Ok(Some(received));
        }
        if o.make_backups
            && let Err(err) = make_backup(sh, dest)
        {
            sh.tree.discard(tmp);
            let what = format!("make_backup {} failed", sh.quoted(dest));
            return Err(Fail::Lost(syserr(
                "receiver",
                &what,
                err.raw_os_error(),
                &err,
            )));
        }
        commit(sh, tmp, dest, dest)?;
        // The partial file it was rebuilt from is used up (only that one: a --partial-dir
        // never deletes what it did not provide). Upstream: recv_files(), fnamecmp ==
        // partialptr.
        if partial_was_basis && let Some(pp) = partial {
            let _ = sh.tree.unlink(pp);
        }
        Ok(Some(received))
    }

    /// Puts the files `--delay-updates` staged in place, in list order, removing partial
    /// dirs left empty. Upstream: receiver.c, handle_delayed_updates().
    fn handle_delayed_updates(&mut self) {
        let sh = self.sh;
        for ((dest, staged), ndx) in std::mem::take(&mut self.delayed)
            .into_iter()
            .zip(std::mem::take(&mut self.delayed_ndx))
        {
            if sh.opts.make_backups && make_backup(sh, &dest).is_err() {
                continue;
            }
            match sh.tree.rename(&staged, &dest) {
                Ok(()) => {
                    self.done(ndx);
                    if let Some(dir) = staged.parent()
                        && !sh
                            .opts
                            .partial_dir
                            .as_deref()
                            .is_some_and(|d| d.starts_with('/'))
                    {
                        let _ = sh.tree.rmdir(&dir);
                    }
                }
                Err(err) => {
                    let what = format!(
                        "rename failed for {} (from {})",
                        sh.quoted(&dest),
                        show(staged.as_bytes())
                    );
                    sh.sys_error("receiver", &what, &err);
                    self.notify(ToGenerator::Failed(ndx));
                }
            }
        }
    }

    /// `--partial` after the connection broke mid-file: the file's attributes, and
    /// without a partial dir an mtime of 0, so that `--update` (sersync's `-u`) does not
    /// take the unfinished file for a newer one and skip it for ever. Upstream:
    /// cleanup.c, _exit_cleanup() (tweak_modtime) and rsync.c, finish_transfer().
    fn keep_broken_partial(
        &self,
        tmp: TempFile,
        dest: &RelPath,
        partial: Option<&RelPath>,
        want: &crate::engine::tree::WantAttrs,
    ) {
        let mut attrs = want.clone();
        attrs.mtime = if partial.is_none() {
            Some((0, 0))
        } else {
            None
        };
        let _ = self.sh.tree.set_attrs(AttrTarget::Temp(&tmp), &attrs);
        self.keep_partial(tmp, dest, partial);
    }

    /// `--partial`: a partial file replaces the destination (or goes to `--partial-dir`).
    fn keep_partial(&self, tmp: TempFile, dest: &RelPath, partial: Option<&RelPath>) {
        let sh = self.sh;
        let target = match partial {
            Some(pp) => {
                if let Some(dir) = pp.parent()
                    && sh.tree.lstat(&dir).ok().flatten().is_none()
                {
                    let _ = sh.tree.mkdir(&dir, 0o700);
                }
                pp.clone()
            }
            None => dest.clone(),
        };
        if sh.tree.commit(tmp, &target).is_err() {
            // Nothing better to do: the temp file was removed by the failed commit or stays.
        }
    }

    /// `--inplace`: writes straight into the destination. Upstream: receiver.c with
    /// inplace set.
    fn receive_inplace(
        &mut self,
        dest: &RelPath,
        head: &SumHead,
        basis: Option<&std::fs::File>,
        want: &crate::engine::tree::WantAttrs,
        how: Rebuild,
    ) -> Result<Option<Received>, Fail> {
        let sh = self.sh;
        let o = &sh.opts;
        let mut file = match sh.tree.open_inplace(dest) {
            Ok(f) => f,
            Err(err) => {
                let what = format!("open {} failed", sh.quoted(dest));
                return Err(Fail::Skip(syserr(
                    "receiver",
                    &what,
                    err.raw_os_error(),
                    &err,
                )));
            }
        };
        let received = {
            let mut out = Output::new(&mut file, o.sparse);
            let got = receive_data(
                self.r,
                &mut self.tokens,
                head,
                &self.spec,
                basis,
                &mut out,
                how,
            )
            .map_err(|err| Fail::Fatal(delta_err(err)))?;
            out.finish(true)
                .map_err(|err| Fail::Fatal(write_failed(sh, dest, &err)))?;
            got
        };
        drop(file);
        // A file that failed its checksum keeps its old attributes (it is redone).
        if received.verified {
            let fetched = std::mem::take(&mut self.xattr_fetched);
            let list = self.xattr_list.take();
            sh.apply_xattrs(AttrTarget::Path(dest), dest, list.as_ref(), &fetched, None);
        }
        if received.verified
            && let Err(err) = sh.tree.set_attrs(AttrTarget::Path(dest), want)
        {
            sh.attr_error("receiver", dest, &err);
        }
        Ok(Some(received))
    }

    /// The sending server's statistics, which a receiving client reads after the last
    /// phase. Upstream: main.c, handle_stats() (read and written swap sides on the way).
    fn peer_stats(&mut self) -> Result<super::PeerStats, RecvError> {
        let p = self.sh.wire.protocol;
        let st = self
            .r
            .decode(|b| crate::protocol::stats::decode_stats(b, p))
            .map_err(read_err)?;
        self.messages()?;
        Ok(st)
    }

    /// After the last phase: the sender's final NDX_DONE (at 31+, passed on to the
    /// generator, which then says goodbye), until the sender hangs up. The connection
    /// ending (or timing out) before that NDX_DONE is the client leaving early, an error
    /// as upstream's generator reports it; after it, it is how the session ends.
    /// Upstream: main.c, read_final_goodbye().
    fn goodbye(&mut self) -> Result<(), RecvError> {
        let p = self.sh.wire.protocol;
        if p < 29 {
            return Ok(());
        }
        // A client that never hangs up is let go after a minute, or after the session's
        // `timeout` when that is shorter.
        let idle = u64::try_from(self.sh.wire.io_timeout)
            .ok()
            .filter(|&t| t > 0)
            .map_or(60, |t| t.min(60));
        self.r
            .conn_mut()
            .set_idle_timeout(Some(std::time::Duration::from_secs(idle)));
        let mut awaited = p >= 31;
        loop {
            let ndx = match self.read_ndx() {
                Ok(ndx) => ndx,
                Err(e) if awaited => return Err(e),
                Err(_) => return Ok(()),
            };
            if ndx != NDX_DONE {
                self.sh
                    .log
                    .line(&format!("Invalid packet at end of run ({ndx}) [receiver]"));
                return Ok(());
            }
            if awaited {
                self.notify(ToGenerator::PhaseDone);
                awaited = false;
            }
        }
    }
}

/// How receiving a file failed.
enum Fail {
    /// Before its data was read: report, read past the data, go on.
    Skip(String),
    /// After its data was read (the update could not be put in place): report, go on.
    Lost(String),
    /// End the session.
    Fatal(RecvError),
}

fn read_err(e: crate::engine::mux::ReadError) -> RecvError {
    use crate::engine::conn::ConnError;
    match e {
        ConnError::Timeout => RecvError::fatal("timeout in data send/receive", ExitCode::TIMEOUT),
        ConnError::Decode(w) => {
            RecvError::fatal(format!("protocol error: {w}"), ExitCode::PROTOCOL)
        }
        ConnError::Eof => RecvError::fatal(super::PEER_CLOSED, ExitCode::STREAMIO),
        ConnError::Io(io) => RecvError::fatal(format!("read error: {io}"), ExitCode::STREAMIO),
    }
}

fn delta_err(e: super::delta::DeltaError) -> RecvError {
    match e {
        super::delta::DeltaError::Read(r) => read_err(r),
        other => RecvError::fatal(other.to_string(), ExitCode::FILEIO),
    }
}

/// Where `--backup` puts the old version of `dest`: under `--backup-dir` (see
/// [`backup_dir_root`]) or beside it with the suffix (default `~`).
pub(super) fn backup_path(sh: &Shared, dest: &RelPath) -> Option<RelPath> {
    let o = &sh.opts;
    let suffix = o.backup_suffix.clone().unwrap_or_else(|| {
        if o.backup_dir.is_some() {
            String::new()
        } else {
            "~".to_string()
        }
    });
    let mut name = dest.as_bytes().to_vec();
    name.extend_from_slice(suffix.as_bytes());
    match &o.backup_dir {
        // Like upstream's (whose receiver works from inside the destination directory),
        // a relative --backup-dir is below the destination; names keep their path there.
        Some(dir) => {
            let _ = dir;
            let inside = sh.dest.relative(dest)?;
            let mut p = backup_dir_root(sh)?;
            let mut name = inside.to_vec();
            name.extend_from_slice(suffix.as_bytes());
            for part in name.split(|&b| b == b'/') {
                p = p.join(part).ok()?;
            }
            Some(p)
        }
        None => RelPath::parse(&name).ok(),
    }
}

/// Moves the current version of `dest` aside (`--backup`); `Ok(false)` when there was
/// nothing to back up. Upstream: backup.c, make_backup().
pub(super) fn make_backup(sh: &Shared, dest: &RelPath) -> Result<bool, TreeError> {
    let Some(m) = sh.tree.lstat(dest)? else {
        return Ok(false);
    };
    if m.kind == FileKind::Dir {
        return Ok(false);
    }
    let Some(bp) = backup_path(sh, dest) else {
        return Ok(false);
    };
    make_backup_dirs(sh, &bp)?;
    sh.tree.rename(dest, &bp)?;
    Ok(true)
}

/// Creates the missing directories of a backup path. A directory that mirrors one of the
/// destination gets that directory's permissions, owner and time, as upstream's
/// backup.c, copy_valid_path() does; the --backup-dir itself gets default permissions.
fn make_backup_dirs(sh: &Shared, backup: &RelPath) -> Result<(), TreeError> {
    let Some(parent) = backup.parent() else {
        return Ok(());
    };
    if sh.tree.lstat(&parent)?.is_some() {
        return Ok(());
    }
    make_backup_dirs(sh, &parent)?;
    sh.tree.mkdir(&parent, 0o777)?;
    let mirrored = backup_dir_root(sh).and_then(|root| {
        let inside = parent.as_bytes().strip_prefix(root.as_bytes())?;
        let inside = inside.strip_prefix(b"/")?;
        inside
            .split(|&b| b == b'/')
            .try_fold(sh.dest.root.clone(), |p, part| p.join(part).ok())
    });
    if let Some(orig) = mirrored
        && let Ok(Some(m)) = sh.tree.lstat(&orig)
        && m.kind == FileKind::Dir
    {
        let want = crate::engine::tree::WantAttrs {
            mode: Some(m.mode & 0o7777),
            uid: (sh.policy.am_root || sh.policy.fake_super).then_some(m.uid),
            gid: (sh.policy.am_root || sh.policy.fake_super).then_some(m.gid),
            mtime: Some((m.mtime, m.mtime_nsec)),
            ..Default::default()
        };
        let _ = sh.tree.set_attrs(AttrTarget::Path(&parent), &want);
    }
    Ok(())
}

/// The --backup-dir as a module path: a relative one is below the destination, an
/// absolute one below the module root (upstream: options.c sanitizes it with
/// sanitize_path(), which roots a leading "/" at the module directory).
fn backup_dir_root(sh: &Shared) -> Option<RelPath> {
    let dir = sh.opts.backup_dir.as_deref()?;
    let mut p = if dir.starts_with('/') {
        RelPath::root()
    } else {
        sh.dest.root.clone()
    };
    for part in super::dest::sanitize(dir.as_bytes()).components() {
        p = p.join(part).ok()?;
    }
    // An operator path: symlinks in it are followed while they stay in the module.
    Some(sh.tree.resolve(&p).unwrap_or(p))
}

/// Renames the finished temp file of `dest` to `to` (the destination, or its place in
/// the partial dir); a failure loses the update. Upstream: rsync.c, finish_transfer().
fn commit(sh: &Shared, tmp: TempFile, dest: &RelPath, to: &RelPath) -> Result<(), Fail> {
    sh.tree.commit(tmp, to).map_err(|err| {
        let what = format!(
            "rename {} -> \"{}\"",
            sh.quoted(&temp_template(dest)),
            show(to.as_bytes())
        );
        Fail::Lost(syserr("receiver", &what, err.raw_os_error(), &err))
    })
}

/// A failed write ends the session, as upstream's receive_data() does (a full disk must
/// not leave a run of files each failing the same way).
fn write_failed(sh: &Shared, dest: &RelPath, err: &std::io::Error) -> RecvError {
    let what = format!("write failed on {}", sh.quoted(dest));
    RecvError::fatal(
        syserr("receiver", &what, err.raw_os_error(), err),
        ExitCode::FILEIO,
    )
    .at("receiver.c", 643, "receiver")
}

/// The name upstream's messages give a file's temporary copy (`.NAME.XXXXXX` beside it).
fn temp_template(dest: &RelPath) -> RelPath {
    let name = [b".", dest.file_name(), b".XXXXXX"].concat();
    dest.parent()
        .unwrap_or_else(RelPath::root)
        .join(&name)
        .unwrap_or_else(|_| dest.clone())
}

/// The fuzzy basis a request named: `xname` in the file's own directory (`n` = 0) or in
/// basis directory `n - 1`'s matching directory, through the tree (so inside the module)
/// and not where the daemon's rules exclude it; `None` to use the file's own name, as
/// upstream falls back to it for a name its daemon filter refuses. Upstream:
/// receiver.c, recv_files() (FNAMECMP_FUZZY); rsync.c, read_ndx_and_attrs()
/// (sanitize_path() on the name).
fn fuzzy_basis(
    sh: &Shared,
    e: &FileEntry,
    dest: &RelPath,
    n: usize,
    xname: &[u8],
) -> Option<RelPath> {
    let dir_name = match e.name.iter().rposition(|&b| b == b'/') {
        Some(i) if sh.dest.solo.is_none() => &e.name[..i],
        _ => &b"."[..],
    };
    let search_dir = match n {
        0 => dest.parent(),
        _ if dir_name == b"." => sh.basis.dirs.get(n - 1).cloned(),
        _ => sh.basis.path(n - 1, dir_name),
    };
    let path = super::fuzzy::basis_for(search_dir, xname)?;
    let listed = super::fuzzy::list_name(dir_name, path.file_name());
    let refused = sh
        .filters
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .daemon_refuses(&listed, false);
    (!refused).then_some(path)
}
