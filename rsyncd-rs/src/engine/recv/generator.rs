//! The generator: walks the file lists in order, decides for each entry what to do and
//! asks the sender for the files it needs; runs the phase protocol (upstream:
//! generator.c generate_files(), check_for_finished_files(), touch_up_dirs()).

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::Duration;

use super::entry::{EntryCtx, Hlinks};
use super::{RecvError, Shared, ToGenerator};
use crate::engine::exit::ExitCode;
use crate::engine::flist::FileList;
use crate::engine::mux::lock;
use crate::protocol::codec::put_varint;
use crate::protocol::ndx::{NDX_DEL_STATS, NDX_DONE, NdxCodec};
use crate::protocol::options::DeleteWhen;

/// A list being worked on, with the counts that decide when it is finished.
pub(super) struct ListState {
    pub list: Arc<FileList>,
    /// Requests sent whose outcome the receiver has not reported yet.
    pub in_progress: u32,
    pub to_redo: u32,
}

/// The generator's state.
pub(super) struct Generator<'a> {
    pub sh: &'a Shared,
    rx: Receiver<ToGenerator>,
    /// Lists not yet finished, oldest first; `cur` indexes the one being walked.
    pub lists: VecDeque<ListState>,
    /// Lists received but not walked yet.
    incoming: VecDeque<Arc<FileList>>,
    flist_eof: bool,
    pub phase: u8,
    msgdone: u32,
    redo: VecDeque<i32>,
    /// Hard-link outcomes to finish: (ndx, whether it was received).
    hlink_done: VecDeque<(i32, bool)>,
    pub ndx: NdxCodec,
    pub io_error: i32,
    pub entry: EntryCtx,
    pub hlinks: Hlinks,
    aborted: bool,
    /// Every list has been walked (upstream's cur_flist is NULL).
    walking_done: bool,
    /// The I/O-error warning before deletions was given.
    pub delete_warned: bool,
    /// `--delete-delay`: what to delete at the end.
    pub delayed: Vec<(
        crate::engine::tree::RelPath,
        Vec<u8>,
        crate::engine::tree::Meta,
    )>,
    /// Deletions so far (for `--max-delete`).
    pub deleted_count: u64,
    /// `--fuzzy`: the similar files of the directory being worked on.
    pub fuzzy: super::fuzzy::FuzzyDirs,
    /// `-A`: the ACL column of the next item, found before its attributes were set
    /// (upstream's stat_x keeps the ACL it read before set_file_attrs()).
    pub acl_seen: std::cell::Cell<Option<bool>>,
}

/// How long the generator waits for the receiver before sending a keepalive.
const WAIT_TICK: Duration = Duration::from_millis(500);

/// Runs the generator until its goodbye. Upstream: generator.c, generate_files(), and the
/// generator half of main.c do_recv().
pub(super) fn run(sh: &Shared, rx: Receiver<ToGenerator>) -> Result<(), RecvError> {
    let mut g = Generator {
        sh,
        rx,
        lists: VecDeque::new(),
        incoming: VecDeque::new(),
        flist_eof: !sh.wire.inc_recurse,
        phase: 0,
        msgdone: 0,
        redo: VecDeque::new(),
        hlink_done: VecDeque::new(),
        ndx: NdxCodec::new(sh.wire.protocol),
        io_error: 0,
        entry: EntryCtx::new(sh.dflt_perms),
        hlinks: Hlinks::default(),
        aborted: false,
        walking_done: false,
        delete_warned: false,
        delayed: Vec::new(),
        deleted_count: 0,
        fuzzy: Default::default(),
        acl_seen: std::cell::Cell::new(None),
    };
    let r = g.generate();
    if r.is_err() || g.aborted {
        let _ = lock(&sh.writer).flush();
    }
    r
}

impl Generator<'_> {
    fn generate(&mut self) -> Result<(), RecvError> {
        let sh = self.sh;
        let o = &sh.opts;
        let p = sh.wire.protocol;
        // The first list arrives with the start of the session.
        self.wait_for_list()?;
        if o.delete == DeleteWhen::Before && sh.dest.solo.is_none() {
            self.delete_pass()?;
        }
        while let Some(list) = self.incoming.pop_front() {
            self.hlinks.match_list(&list, sh.wire.inc_recurse);
            self.lists.push_back(ListState {
                list: list.clone(),
                in_progress: 0,
                to_redo: 0,
            });
            if sh.wire.inc_recurse
                && let Some((_, dir)) = &list.parent
            {
                // Upstream's generator has usually waited for this list, which flushed
                // what it had generated; flushing here keeps the client's output (items
                // before the deletions they precede) in stock's order.
                lock(&sh.writer).flush().map_err(write_err)?;
                let ndx = list.ndx_start - 1;
                self.generate_entry(&list, dir, ndx, true)?;
                if super::delete_during(o) && self.entry.dir_exists(dir) {
                    if dir.is_content_dir(p) {
                        self.delete_in_dir(dir)?;
                    } else {
                        self.entry.enter_dir_filters(dir);
                    }
                }
            }
            for i in 0..list.entries.len() {
                if !list.active[i] {
                    continue;
                }
                let ndx = list.ndx_start + i as i32;
                self.generate_entry(&list, &list.entries[i], ndx, false)?;
                self.check_finished(false)?;
                if self.aborted {
                    return Ok(());
                }
            }
            if !sh.wire.inc_recurse {
                self.write_done()?;
                break;
            }
            loop {
                self.check_finished(true)?;
                if !self.incoming.is_empty() || self.flist_eof || self.aborted {
                    break;
                }
                self.wait_for_receiver()?;
            }
            if self.aborted {
                return Ok(());
            }
        }
        self.walking_done = true;
        self.phase = 1;
        loop {
            self.check_finished(true)?;
            if self.msgdone > 0 || self.aborted {
                break;
            }
            self.wait_for_receiver()?;
        }
        self.phase = 2;
        self.write_done()?;
        let early_delete_done = !matches!(o.delete, DeleteWhen::After | DeleteWhen::Delay);
        if p >= 29 && !o.delay_updates {
            self.write_done()?;
        }
        if p >= 31 && early_delete_done {
            if o.deletes() || o.force_delete {
                self.write_del_stats()?;
            }
            if !o.delay_updates {
                self.write_done()?;
            }
        }
        loop {
            self.check_finished(false)?;
            if self.msgdone > 1 || self.aborted {
                break;
            }
            self.wait_for_receiver()?;
        }
        if p >= 29 {
            self.phase = 3;
            if o.delay_updates {
                self.write_done()?;
                if p >= 31 && early_delete_done {
                    self.write_done()?;
                }
            }
            while self.msgdone == 2 && !self.aborted {
                self.wait_for_receiver()?;
            }
        }
        if o.delete == DeleteWhen::Delay {
            self.run_delayed_deletions()?;
        }
        if o.delete == DeleteWhen::After && sh.dest.solo.is_none() {
            self.delete_pass()?;
        }
        self.report_max_delete();
        if p >= 31 {
            if !early_delete_done {
                if o.deletes() || o.force_delete {
                    self.write_del_stats()?;
                }
                self.write_done()?;
            }
            while self.msgdone == 3 && !self.aborted {
                self.wait_for_receiver()?;
            }
        }
        self.entry.touch_up_all_dirs(sh);
        // The goodbye.
        if p >= 24 {
            self.write_done()?;
        }
        lock(&sh.writer)
            .flush()
            .map_err(|e| RecvError::fatal(format!("write error: {e}"), ExitCode::SOCKETIO))?;
        Ok(())
    }

    /// Every list known: those being worked on and those not walked yet.
    pub fn all_lists(&self) -> impl Iterator<Item = &Arc<FileList>> {
        self.lists
            .iter()
            .map(|l| &l.list)
            .chain(self.incoming.iter())
    }

    /// Writes one NDX_DONE (sent with the next flush: before the generator waits, or at
    /// the end).
    pub fn write_done(&mut self) -> Result<(), RecvError> {
        self.write_ndx_only(NDX_DONE)
    }

    /// Writes an index into the data stream.
    pub fn write_ndx_only(&mut self, ndx: i32) -> Result<(), RecvError> {
        let mut out = Vec::with_capacity(6);
        self.ndx.encode(ndx, &mut out);
        lock(&self.sh.writer).data(&out).map_err(write_err)
    }

    /// NDX_DEL_STATS and the five counters (protocol 31+). Upstream: main.c,
    /// write_del_stats().
    fn write_del_stats(&mut self) -> Result<(), RecvError> {
        let mut out = Vec::new();
        self.ndx.encode(NDX_DEL_STATS, &mut out);
        let d = &self.sh.stats.deleted;
        let load = |i: usize| d[i].load(std::sync::atomic::Ordering::Relaxed) as i32;
        // Upstream sends the file count without the other kinds.
        let files = load(0) - load(1) - load(2) - load(3) - load(4);
        put_varint(&mut out, files);
        for i in 1..5 {
            put_varint(&mut out, load(i));
        }
        lock(&self.sh.writer).data(&out).map_err(write_err)
    }

    /// Waits until the first list is here.
    fn wait_for_list(&mut self) -> Result<(), RecvError> {
        while self.incoming.is_empty() && !self.aborted {
            self.wait_for_receiver()?;
        }
        Ok(())
    }

    /// Takes one message from the receiver (sending keepalives while idle, as upstream's
    /// maybe_send_keepalive() does). Upstream: io.c, wait_for_receiver().
    pub fn wait_for_receiver(&mut self) -> Result<(), RecvError> {
        // The sender cannot answer requests it has not seen.
        lock(&self.sh.writer).flush().map_err(write_err)?;
        loop {
            match self.rx.recv_timeout(WAIT_TICK) {
                Ok(msg) => {
                    self.handle(msg);
                    // Drain whatever else is waiting, without blocking.
                    while let Ok(m) = self.rx.try_recv() {
                        self.handle(m);
                    }
                    return Ok(());
                }
                Err(RecvTimeoutError::Timeout) => {
                    let _ = lock(&self.sh.writer).flush();
                    if self.sh.wire.io_timeout > 0 && self.sh.wire.protocol >= 31 {
                        let idle = Duration::from_secs(
                            u64::try_from(self.sh.wire.io_timeout / 2)
                                .unwrap_or(1)
                                .max(1),
                        );
                        let _ = lock(&self.sh.writer).keepalive_if_idle(idle);
                    }
                }
                Err(RecvTimeoutError::Disconnected) => {
                    self.aborted = true;
                    return Ok(());
                }
            }
        }
    }

    fn handle(&mut self, msg: ToGenerator) {
        match msg {
            ToGenerator::List(l) => self.incoming.push_back(l),
            ToGenerator::FlistEof => self.flist_eof = true,
            ToGenerator::DoneMany(batch) => {
                for ndx in batch {
                    self.entry_status(ndx, Status::Success);
                }
            }
            ToGenerator::Failed(ndx) => self.entry_status(ndx, Status::NoSend),
            ToGenerator::Redo(ndx) => self.entry_status(ndx, Status::Redo),
            ToGenerator::PhaseDone => self.msgdone += 1,
            ToGenerator::IoError(e) => self.io_error |= e,
            ToGenerator::Abort => self.aborted = true,
        }
    }

    /// A receiver outcome. Upstream: io.c, got_flist_entry_status().
    fn entry_status(&mut self, ndx: i32, status: Status) {
        let inc = self.sh.wire.inc_recurse;
        if let Some(ls) = self.lists.iter_mut().find(|l| l.list.contains(ndx)) {
            if inc {
                ls.in_progress = ls.in_progress.saturating_sub(1);
            }
            let hlinked = ls
                .list
                .hlink_group
                .get((ndx - ls.list.ndx_start) as usize)
                .copied()
                .flatten()
                .is_some();
            match status {
                Status::Success | Status::NoSend if hlinked && self.sh.opts.hard_links > 0 => {
                    self.hlink_done.push_back((ndx, status == Status::Success));
                    if inc {
                        ls.in_progress += 1;
                    }
                }
                Status::Redo => {
                    if inc {
                        ls.to_redo += 1;
                    }
                    self.redo.push_back(ndx);
                }
                _ => {}
            }
        }
    }

    /// Finishes hard links, runs redo requests (in phase 1), and retires lists whose work
    /// is done. Upstream: generator.c, check_for_finished_files().
    fn check_finished(&mut self, check_redo: bool) -> Result<(), RecvError> {
        loop {
            if let Some((ndx, ok)) = self.hlink_done.pop_front() {
                self.finish_hlink(ndx, ok)?;
                if let Some(ls) = self.lists.iter_mut().find(|l| l.list.contains(ndx))
                    && self.sh.wire.inc_recurse
                {
                    ls.in_progress = ls.in_progress.saturating_sub(1);
                }
                continue;
            }
            if check_redo && let Some(ndx) = self.redo.pop_front() {
                let found = self
                    .lists
                    .iter()
                    .find(|l| l.list.contains(ndx))
                    .map(|l| l.list.clone());
                if let Some(list) = found
                    && let Some(e) = list.get(ndx)
                {
                    let e = e.clone();
                    self.entry.redo = true;
                    let r = self.generate_entry(&list, &e, ndx, false);
                    self.entry.redo = false;
                    r?;
                    if let Some(ls) = self.lists.iter_mut().find(|l| l.list.contains(ndx)) {
                        ls.to_redo = ls.to_redo.saturating_sub(1);
                    }
                }
                continue;
            }
            if !self.sh.wire.inc_recurse {
                return Ok(());
            }
            // Only lists before the one being walked can be finished.
            if self.lists.len() <= 1 && !self.walking_done {
                return Ok(());
            }
            let Some(first) = self.lists.front() else {
                return Ok(());
            };
            if first.in_progress > 0 || first.to_redo > 0 {
                return Ok(());
            }
            self.write_done()?;
            if let Some(done) = self.lists.pop_front()
                && let Some((_, dir)) = &done.list.parent
            {
                self.entry.touch_up_dir(self.sh, dir);
            }
        }
    }

    /// Records the maximum-delete warning. Upstream: generator.c, generate_files().
    fn report_max_delete(&mut self) {
        let skipped = self.entry.skipped_deletes;
        if skipped > 0 && self.sh.opts.max_delete.is_some() {
            self.sh.warn(&format!(
                "Deletions stopped due to --max-delete limit ({skipped} skipped)"
            ));
            self.sh.set_exit(ExitCode::DEL_LIMIT);
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Success,
    NoSend,
    Redo,
}

pub(super) fn write_err(e: crate::engine::conn::ConnError) -> RecvError {
    RecvError::fatal(format!("write error: {e}"), ExitCode::SOCKETIO)
}
