//! `--delete`: removing what the sender no longer has (upstream: generator.c
//! delete_in_dir(), do_delete_pass(); delete.c delete_item(), delete_dir_contents();
//! log.c log_delete()).

use std::collections::HashSet;

use super::RecvError;
use super::entry::show;
use super::generator::{Generator, write_err};
use crate::engine::mux::lock;
use crate::engine::tree::{FileKind, Meta, RelPath};
use crate::protocol::flist::FileEntry;
use crate::protocol::mux::MsgCode;
use crate::protocol::ndx::iflags as it;
use crate::protocol::options::DeleteWhen;

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
        if self.io_error & 1 != 0 && !sh.policy.ignore_errors {
            if !self.delete_warned {
                self.delete_warned = true;
                sh.info("IO error encountered -- skipping file deletion");
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
        // Upstream walks the directory list from the end.
        let mut names = names;
        names.sort();
        for name in names.into_iter().rev() {
            if keep.contains(&name) {
                continue;
            }
            let rel = if dir.name == b"." {
                name.clone()
            } else {
                [dir.name.as_slice(), b"/", name.as_slice()].concat()
            };
            let Ok(path) = dir_path.join(&name) else {
                continue;
            };
            let Ok(Some(meta)) = sh.tree.lstat(&path) else {
                continue;
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
        let mut out = HashSet::new();
        for list in self.all_lists() {
            for (e, a) in list.entries.iter().zip(&list.active) {
                if *a && e.dirname() == if dir == b"." { &b""[..] } else { dir } && e.name != b"." {
                    out.insert(e.basename().to_vec());
                }
            }
        }
        out
    }

    /// Deletes one entry (a directory with its contents); `counted` says whether it shows
    /// in the statistics and the log (false when making room for a new entry). Returns
    /// whether it is gone. Upstream: delete.c, delete_item().
    pub(super) fn delete_item(
        &mut self,
        path: &RelPath,
        rel: &[u8],
        meta: Meta,
        counted: bool,
    ) -> Result<bool, RecvError> {
        let sh = self.sh;
        if counted
            && let Some(max) = sh.opts.max_delete
            && self.deleted_count >= u64::try_from(max).unwrap_or(0)
        {
            self.entry.skipped_deletes += 1;
            return Ok(false);
        }
        if meta.kind == FileKind::Dir {
            // Contents first, each counted and reported as upstream does.
            if let Ok(names) = sh.tree.read_dir(path) {
                for name in names {
                    let Ok(child) = path.join(&name) else {
                        continue;
                    };
                    let Ok(Some(cm)) = sh.tree.lstat(&child) else {
                        continue;
                    };
                    let crel = [rel, b"/", name.as_slice()].concat();
                    if counted && self.protected_from_delete(&crel, cm.kind == FileKind::Dir, true)
                    {
                        continue;
                    }
                    self.delete_item(&child, &crel, cm, counted)?;
                }
            }
            if let Err(err) = sh.tree.rmdir(path) {
                if err.raw_os_error() == Some(libc::ENOTEMPTY) {
                    sh.info(&format!("cannot delete non-empty directory: {}", show(rel)));
                } else if !err.is_not_found() {
                    sh.error(&format!(
                        "rsync: delete_file: rmdir({}) failed: {err}",
                        show(rel)
                    ));
                }
                return Ok(false);
            }
        } else {
            if sh.opts.make_backups && !sh.opts.delete_excluded {
                match super::receiver::make_backup(sh, path) {
                    Ok(true) => {
                        self.log_delete(rel, meta, counted)?;
                        return Ok(true);
                    }
                    Ok(false) => {}
                    Err(err) => {
                        sh.error(&format!(
                            "rsync: delete_file: make_backup({}) failed: {err}",
                            show(rel)
                        ));
                        return Ok(false);
                    }
                }
            }
            if let Err(err) = sh.tree.unlink(path) {
                if !err.is_not_found() {
                    sh.error(&format!(
                        "rsync: delete_file: unlink({}) failed: {err}",
                        show(rel)
                    ));
                    return Ok(false);
                }
            }
        }
        self.log_delete(rel, meta, counted)?;
        Ok(true)
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
        } else if sh.opts.verbose > 0 {
            sh.info(&format!(
                "deleting {}{}",
                show(rel),
                if meta.kind == FileKind::Dir { "/" } else { "" }
            ));
        }
        if let Some(fmt) = &sh.policy.transfer_log_format {
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
