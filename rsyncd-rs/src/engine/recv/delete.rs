//! `--delete`: removing what the sender no longer has (upstream: generator.c
//! delete_in_dir(), do_delete_pass(); delete.c delete_item(), delete_dir_contents();
//! log.c log_delete()).

use std::collections::HashSet;

use super::entry::show;
use super::generator::{Generator, write_err};
use super::{RecvError, Said};
use crate::engine::exit::syserr;
use crate::engine::mux::lock;
use crate::engine::tree::{FileKind, Meta, RelPath};
use crate::protocol::flist::FileEntry;
use crate::protocol::flist::compare_names;
use crate::protocol::mux::MsgCode;
use crate::protocol::ndx::iflags as it;
use crate::protocol::options::{DeleteWhen, Info};

/// How a deletion went (upstream: delete.c, enum delret).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DelRet {
    Success,
    Failure,
    NotEmpty,
    AtLimit,
}

/// Index of each kind in the delete statistics (files, dirs, symlinks, devices, specials).
fn stat_slot(kind: FileKind) -> usize {
    match kind {
        FileKind::Dir => 1,
        FileKind::Symlink => 2,
        FileKind::CharDev | FileKind::BlockDev => 3,
        FileKind::Fifo | FileKind::Socket => 4,
        FileKind::Regular => 0,
    }
}

impl Generator<'_> {
    /// Deletes the entries of a content directory that are not in the file list.
    /// Upstream: generator.c, delete_in_dir().
    pub(super) fn delete_in_dir(&mut self, dir: &FileEntry) -> Result<(), RecvError> {
        let sh = self.sh;
        if sh.dest.dry_missing || sh.opts.list_only {
            return Ok(());
        }
        // At protocol 30 (only), stock's client shows the transfer root's itemized line
        // before the deletions in it, at 29 and 31+ after them: stock's output happens to
        // be flushed by then. Observed against rsync 3.5.0; see docs/ARCHITECTURE.md.
        if sh.wire.protocol == 30 && dir.name == b"." {
            lock(&sh.writer).flush().map_err(write_err)?;
        }
        if self.io_error & 1 != 0 && !sh.policy.ignore_errors {
            if !self.delete_warned {
                self.delete_warned = true;
                sh.say(Said::Both, "IO error encountered -- skipping file deletion");
            }
            return Ok(());
        }
        let Ok(dir_path) = sh.dest.path_of(&dir.name) else {
            return Ok(());
        };
        {
            // Per-directory merge files of this directory (and its parents) apply now.
            let depth = if dir.name == b"." {
                0
            } else {
                dir.name.split(|&b| b == b'/').count()
            };
            let tree = &sh.tree;
            let mut read = |p: &[u8]| super::read_rule_file(tree, p);
            let mut filters = sh
                .filters
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let rel: &[u8] = if dir.name == b"." { b"" } else { &dir.name };
            if let Err(e) = filters.change_dir(rel, depth, &mut read) {
                drop(filters);
                return Err(RecvError::fatal(
                    e.to_string(),
                    crate::engine::filter::exit_code(&e),
                ));
            }
        }
        let names = match sh.tree.read_dir(&dir_path) {
            Ok(n) => n,
            Err(_) => return Ok(()),
        };
        let keep: HashSet<Vec<u8>> = self.names_in_lists(&dir.name);
        // Upstream walks the directory's sorted list from the end (files sort before
        // directories from protocol 29).
        let mut found = Vec::new();
        for name in names {
            if keep.contains(&name) {
                continue;
            }
            let Ok(path) = dir_path.join(&name) else {
                continue;
            };
            let Ok(Some(meta)) = sh.tree.lstat(&path) else {
                continue;
            };
            found.push((name, path, meta));
        }
        let protocol = sh.wire.protocol;
        found.sort_by(|a, b| {
            compare_names(
                &a.0,
                a.2.kind == FileKind::Dir,
                &b.0,
                b.2.kind == FileKind::Dir,
                protocol,
            )
        });
        for (name, path, meta) in found.into_iter().rev() {
            let rel = if dir.name == b"." {
                name.clone()
            } else {
                [dir.name.as_slice(), b"/", name.as_slice()].concat()
            };
            let is_dir = meta.kind == FileKind::Dir;
            if self.protected_from_delete(&rel, is_dir, false) {
                continue;
            }
            if sh.opts.delete == DeleteWhen::Delay {
                self.delayed.push((path, rel, meta));
                continue;
            }
            self.delete_item(&path, &rel, meta, true)?;
        }
        Ok(())
    }

    /// Whether filter rules keep an existing entry from deletion (the client's rules on the
    /// receiver side, protect rules, and the daemon's own exclusions); `in_deleted_dir` for
    /// the contents of a directory that is itself being deleted (perishable rules off).
    fn protected_from_delete(&self, rel: &[u8], is_dir: bool, in_deleted_dir: bool) -> bool {
        let filters = self
            .sh
            .filters
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if in_deleted_dir {
            filters.excluded_in_deleted_dir(rel, is_dir)
        } else {
            filters.excluded_for_delete(rel, is_dir)
        }
    }

    /// The names the sender has in `dir` (in any live list).
    fn names_in_lists(&self, dir: &[u8]) -> HashSet<Vec<u8>> {
        let dir: &[u8] = if dir == b"." { b"" } else { dir };
        let mut out = HashSet::new();
        for list in self.all_lists() {
            out.extend(list.names_in(dir).map(<[u8]>::to_vec));
        }
        out
    }

    /// Deletes one entry (a directory with its contents); `counted` says whether it shows
    /// in the statistics and the log and obeys --max-delete (false when making room for a
    /// new entry). Returns whether it is gone. Upstream: delete.c, delete_item().
    pub(super) fn delete_item(
        &mut self,
        path: &RelPath,
        rel: &[u8],
        meta: Meta,
        counted: bool,
    ) -> Result<bool, RecvError> {
        let o = &self.sh.opts;
        let recurse = counted || o.deletes() || o.force_delete;
        Ok(self.delete_entry(path, rel, meta, counted, recurse, false)? == DelRet::Success)
    }

    /// Upstream's delete_item(): a directory's contents first (unless `dir_is_empty`, when
    /// the caller already emptied it), then the --max-delete check, then the entry.
    fn delete_entry(
        &mut self,
        path: &RelPath,
        rel: &[u8],
        meta: Meta,
        counted: bool,
        recurse: bool,
        dir_is_empty: bool,
    ) -> Result<DelRet, RecvError> {
        let sh = self.sh;
        let is_dir = meta.kind == FileKind::Dir;
        if is_dir && !dir_is_empty {
            let ret = self.delete_dir_contents(path, rel, counted, recurse)?;
            if matches!(ret, DelRet::NotEmpty | DelRet::AtLimit) {
                return Ok(ret);
            }
        }
        if counted
            && let Some(max) = sh.opts.max_delete
            && self.deleted_count >= u64::try_from(max).unwrap_or(0)
        {
            self.entry.skipped_deletes += 1;
            return Ok(DelRet::AtLimit);
        }
        let (what, result) = if is_dir {
            ("rmdir", sh.tree.rmdir(path))
        } else if sh.opts.make_backups && !self.is_backup_name(rel) {
            match super::receiver::make_backup(sh, path) {
                Ok(true) => ("make_backup", Ok(())),
                Ok(false) => ("unlink", sh.tree.unlink(path)),
                Err(err) => ("make_backup", Err(err)),
            }
        } else {
            ("unlink", sh.tree.unlink(path))
        };
        match result {
            Ok(()) => {
                self.log_delete(rel, meta, counted)?;
                Ok(DelRet::Success)
            }
            Err(err) if is_dir && err.raw_os_error() == Some(libc::ENOTEMPTY) => {
                sh.say(
                    Said::Both,
                    &format!("cannot delete non-empty directory: {}", show(rel)),
                );
                Ok(DelRet::NotEmpty)
            }
            Err(err) if err.is_not_found() => Ok(DelRet::Success),
            Err(err) => {
                sh.error(&syserr(
                    "generator",
                    &format!("delete_file: {what}({}) failed", show(rel)),
                    err.raw_os_error(),
                    &err,
                ));
                Ok(DelRet::Failure)
            }
        }
    }

    /// Empties a directory that is being deleted: entries the filters keep (perishable
    /// rules do not count here) make it non-empty; the rest go deepest first, in reverse
    /// file-list order. Without `recurse` it only reports whether there is anything.
    /// Upstream: delete.c, delete_dir_contents().
    fn delete_dir_contents(
        &mut self,
        path: &RelPath,
        rel: &[u8],
        counted: bool,
        recurse: bool,
    ) -> Result<DelRet, RecvError> {
        let sh = self.sh;
        let mut ret = DelRet::Success;
        let mut entries = Vec::new();
        for name in sh.tree.read_dir(path).unwrap_or_default() {
            let Ok(child) = path.join(&name) else {
                continue;
            };
            let Ok(Some(cm)) = sh.tree.lstat(&child) else {
                continue;
            };
            let crel = [rel, b"/", name.as_slice()].concat();
            if self.protected_from_delete(&crel, cm.kind == FileKind::Dir, true) {
                ret = DelRet::NotEmpty;
                continue;
            }
            entries.push((name, child, crel, cm));
        }
        if !entries.is_empty() && !recurse {
            ret = DelRet::NotEmpty;
        } else {
            let protocol = sh.wire.protocol;
            entries.sort_by(|a, b| {
                compare_names(
                    &a.0,
                    a.3.kind == FileKind::Dir,
                    &b.0,
                    b.3.kind == FileKind::Dir,
                    protocol,
                )
            });
            for (_, child, crel, cm) in entries.into_iter().rev() {
                if cm.kind == FileKind::Dir
                    && self.delete_dir_contents(&child, &crel, counted, true)? != DelRet::Success
                {
                    ret = DelRet::NotEmpty;
                }
                if self.delete_entry(&child, &crel, cm, counted, true, true)? != DelRet::Success {
                    ret = DelRet::NotEmpty;
                }
            }
        }
        if ret == DelRet::NotEmpty {
            sh.say(
                Said::Both,
                &format!("cannot delete non-empty directory: {}", show(rel)),
            );
        }
        Ok(ret)
    }

    /// A name with the backup suffix (not backed up again when deleted, unless backups go
    /// to a --backup-dir). Upstream: delete.c, is_backup_file().
    fn is_backup_name(&self, rel: &[u8]) -> bool {
        let o = &self.sh.opts;
        if o.backup_dir.is_some() {
            return false;
        }
        let suffix = o.backup_suffix.as_deref().unwrap_or("~").as_bytes();
        rel.len() > suffix.len() && rel.ends_with(suffix)
    }

    /// Reports a deletion: MSG_DELETED to a client (protocol 29+), the log line, and the
    /// statistics. Upstream: log.c, log_delete().
    fn log_delete(&mut self, rel: &[u8], meta: Meta, counted: bool) -> Result<(), RecvError> {
        if !counted {
            return Ok(());
        }
        let sh = self.sh;
        self.deleted_count += 1;
        crate::engine::recv::Stats::add(&sh.stats.deleted[0], 1);
        let slot = stat_slot(meta.kind);
        if slot != 0 {
            crate::engine::recv::Stats::add(&sh.stats.deleted[slot], 1);
        }
        if sh.wire.protocol >= 29 {
            let mut payload = rel.to_vec();
            if meta.kind == FileKind::Dir {
                payload.push(0);
            }
            lock(&sh.writer)
                .message(MsgCode::Deleted, &payload)
                .map_err(write_err)?;
        } else if sh.opts.info.at_least(Info::Del, 1) || sh.opts.stdout_format.is_some() {
            // Before 29 the client is told in text, in its --out-format when that itemizes
            // (3.x clients send `--log-format=%i`). Upstream: log.c, log_delete().
            let fmt = match sh.opts.stdout_format.as_deref() {
                Some(f) if f.contains("%i") || f.contains("%o") => f.to_string(),
                _ => "deleting %n".to_string(),
            };
            let e = FileEntry {
                name: rel.to_vec(),
                mode: meta.mode,
                gid: sh.opts.preserve_gid.then_some(0),
                ..FileEntry::default()
            };
            let what = super::translog::Logged {
                op: "del.",
                iflags: it::DELETED,
                ..super::translog::Logged::recv()
            };
            sh.info(&super::translog::format(sh, &fmt, &e, &what));
        }
        if let Some(fmt) = sh
            .policy
            .transfer_log_format
            .as_ref()
            .filter(|_| !sh.opts.dry_run)
        {
            let fmt = if fmt.contains("%i") || fmt.contains("%o") {
                fmt.clone()
            } else {
                "deleting %n".to_string()
            };
            let e = FileEntry {
                name: if meta.kind == FileKind::Dir {
                    [rel, b"/"].concat()
                } else {
                    rel.to_vec()
                },
                mode: meta.mode,
                // Upstream logs deletions through a blank entry: group 0 when groups are kept.
                gid: sh.opts.preserve_gid.then_some(0),
                ..FileEntry::default()
            };
            super::translog::line(
                sh,
                &fmt,
                &e,
                &super::translog::Logged {
                    op: "del.",
                    iflags: it::DELETED,
                    ..super::translog::Logged::recv()
                },
            );
        }
        Ok(())
    }

    /// `--delete-before` / `--delete-after`: one pass over every content directory of the
    /// transfer. Upstream: generator.c, do_delete_pass().
    pub(super) fn delete_pass(&mut self) -> Result<(), RecvError> {
        let protocol = self.sh.wire.protocol;
        let dirs: Vec<FileEntry> = self
            .all_lists()
            .flat_map(|l| {
                l.entries
                    .iter()
                    .zip(&l.active)
                    .filter(|(e, a)| **a && e.is_content_dir(protocol))
                    .map(|(e, _)| e.clone())
            })
            .collect();
        for d in dirs {
            if self.entry.dir_exists(&d) {
                self.delete_in_dir(&d)?;
            }
        }
        Ok(())
    }

    /// `--delete-delay`: the deletions found during the transfer, done at its end.
    pub(super) fn run_delayed_deletions(&mut self) -> Result<(), RecvError> {
        for (path, rel, meta) in std::mem::take(&mut self.delayed) {
            self.delete_item(&path, &rel, meta, true)?;
        }
        Ok(())
    }
}
