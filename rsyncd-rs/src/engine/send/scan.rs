//! Directories read through the confined tree and their entries turned into file-list
//! items: filters, `ignore nonreadable`, `-L`, symlink targets (unmunged), hard-link
//! identities, `outgoing chmod`, `--checksum` sums. Upstream: flist.c send_directory(),
//! send_if_directory(), make_file(), readlink_stat().

use super::Core;
use super::list::{IOERR_GENERAL, IOERR_VANISHED, Item, Lister, MUNGE_PREFIX, show};
use crate::engine::error::EngineError;
use crate::engine::tree::{Meta, RelPath};
use crate::protocol::flist::{FileEntry, HardLink, mode, xmit};

impl Lister {
    /// A failed system call on `path`, worded as upstream's rsyserr() (`rsync: [sender]
    /// WHAT "NAME" failed: STRERROR (ERRNO)`): an I/O error that makes the transfer
    /// partial.
    pub(super) fn sys_error(
        &mut self,
        core: &Core,
        root: u32,
        path: &RelPath,
        what: &str,
        e: &crate::engine::tree::TreeError,
    ) {
        self.io_error |= IOERR_GENERAL;
        core.error_xfer(&crate::engine::exit::syserr(
            "sender",
            &format!("{what} {} failed", self.quoted(core, root, path)),
            super::errno_of(e),
            e,
        ));
    }

    /// `lstat` (or with `-L`, `stat` confined to the module) of a path.
    pub(super) fn stat(
        &self,
        core: &Core,
        p: &RelPath,
    ) -> Result<Option<Meta>, crate::engine::tree::TreeError> {
        let meta = core.tree.lstat(p)?;
        match meta {
            Some(m) if mode::is_lnk(m.mode) && core.opts.copy_links => {
                match core.tree.stat_target(p)? {
                    Some(t) if !mode::is_lnk(t.mode) => Ok(Some(t)),
                    _ => Ok(Some(m)),
                }
            }
            other => Ok(other),
        }
    }

    /// Whether the symlink at `p` (named `name` under the transfer root) is sent as what
    /// it leads to: always with `-L`; with `--copy-unsafe-links` when its target leaves
    /// the transfer; with `-k` when it leads to a directory.
    pub(super) fn follows(&self, core: &Core, p: &RelPath, name: &[u8]) -> bool {
        let o = &core.opts;
        if o.copy_links {
            return true;
        }
        if o.copy_unsafe_links
            && let Ok(target) = core.tree.read_link(p)
            && unsafe_symlink(&target, name)
        {
            return true;
        }
        o.copy_dirlinks && self.follow(core, p).is_some_and(|m| mode::is_dir(m.mode))
    }

    /// What the symlink `p` leads to, if that is in the module and not a symlink itself.
    pub(super) fn follow(&self, core: &Core, p: &RelPath) -> Option<Meta> {
        core.tree
            .stat_target(p)
            .ok()?
            .filter(|t| !mode::is_lnk(t.mode))
    }

    /// A `user.rsync.%stat` this session cannot read (fake super), reported as upstream's
    /// x_lstat() reports it; the entry is still listed, from plain `lstat`.
    /// Upstream: xattrs.c, get_stat_xattr().
    pub(super) fn report_stat_xattr_denied(&self, core: &Core, root: u32, p: &RelPath) {
        core.error_xfer(&format!(
            "rsync: [sender] failed to read xattr user.rsync.%stat for {}: Permission denied (13)",
            self.quoted(core, root, p)
        ));
    }

    /// The contents of `dir` (a name relative to the root), and with `deep` everything
    /// below it. Upstream: flist.c, send_directory() and send_if_directory().
    pub(super) fn scan_tree(
        &mut self,
        core: &Core,
        root: u32,
        dir: &[u8],
        items: &mut Vec<Item>,
        deep: bool,
    ) -> Result<(), EngineError> {
        let start = items.len();
        self.scan_dir(core, root, dir, items)?;
        if deep {
            let end = items.len();
            for i in start..end {
                if items[i].e.is_dir() && items[i].content_dir {
                    let name = items[i].e.name.clone();
                    self.scan_tree(core, root, &name, items, true)?;
                }
            }
        }
        Ok(())
    }

    /// One directory's entries, filtered, appended to `items`.
    pub(super) fn scan_dir(
        &mut self,
        core: &Core,
        root: u32,
        dir: &[u8],
        items: &mut Vec<Item>,
    ) -> Result<(), EngineError> {
        let probe = Item {
            e: FileEntry {
                name: dir.to_vec(),
                ..FileEntry::default()
            },
            root,
            content_dir: false,
        };
        let mut path = self.disk_path(&probe)?;
        let o = &core.opts;
        if (o.copy_links || o.copy_dirlinks || o.copy_unsafe_links)
            && let Ok(resolved) = core.tree.resolve(&path)
        {
            path = resolved;
        }
        let names = match core.tree.read_dir_meta(&path) {
            Ok(n) => n,
            Err(e) if e.is_not_found() => {
                self.io_error |= IOERR_VANISHED;
                core.warn(&format!(
                    "directory has vanished: {}",
                    self.quoted(core, root, &path)
                ));
                return Ok(());
            }
            Err(e) => {
                self.sys_error(core, root, &path, "opendir", &e);
                return Ok(());
            }
        };
        let has_merge = self.filters[root as usize].has_dir_merge();
        if has_merge {
            let depth = if dir == b"." {
                0
            } else {
                dir.split(|&b| b == b'/').count()
            };
            let tree = &core.tree;
            let mut read = |p: &[u8]| crate::engine::session::read_rule_file(tree, p);
            let rel: &[u8] = if dir == b"." { b"" } else { dir };
            self.filters[root as usize]
                .change_dir(rel, depth, &mut read)
                .map_err(|e| {
                    EngineError::fatal(e.to_string(), crate::engine::filter::exit_code(&e))
                })?;
        }
        for entry in names {
            let (base, listed) = (entry.name, entry.meta);
            let name = if dir == b"." || dir.is_empty() {
                base.clone()
            } else {
                let mut n = dir.to_vec();
                n.push(b'/');
                n.extend_from_slice(&base);
                n
            };
            let Ok(p) = path.join(&base) else {
                continue;
            };
            // With -L a link is described by what it leads to.
            let listed = match listed {
                // -k and a link to a directory outside the module: listed as a directory
                // (with the link's own times, never the target's), whose listing the
                // tree then refuses, as stock's confined opendir does.
                Ok(Some(m))
                    if mode::is_lnk(m.mode)
                        && core.opts.copy_dirlinks
                        && !core.opts.copy_links
                        && self.follow(core, &p).is_none()
                        && core.tree.resolve(&p).is_err()
                        && core.tree.link_leads_to_directory(&p) =>
                {
                    Ok(Some(Meta {
                        mode: 0o040_755,
                        kind: crate::engine::tree::FileKind::Dir,
                        size: 4096,
                        ..m
                    }))
                }
                Ok(Some(m)) if mode::is_lnk(m.mode) && self.follows(core, &p, &name) => {
                    match self.follow(core, &p) {
                        Some(t) => Ok(Some(t)),
                        None => {
                            // A link to nothing, or to what is outside the module (which
                            // is never looked at). Upstream: flist.c, make_file().
                            self.io_error |= IOERR_GENERAL;
                            core.error_xfer(&format!(
                                "symlink has no referent: {}",
                                self.quoted(core, root, &p)
                            ));
                            continue;
                        }
                    }
                }
                other => other,
            };
            let meta = match listed {
                Ok(Some(m)) => m,
                Ok(None) => {
                    self.io_error |= IOERR_VANISHED;
                    core.warn(&format!(
                        "file has vanished: {}",
                        self.quoted(core, root, &p)
                    ));
                    continue;
                }
                Err(e) => {
                    self.io_error |= IOERR_GENERAL;
                    // A link followed out of the module is refused as a confined open
                    // refuses it (upstream's secure resolver gives ELOOP).
                    let errno = super::errno_of(&e);
                    let text: &dyn std::fmt::Display = &e;
                    core.error_xfer(&crate::engine::exit::syserr(
                        "sender",
                        &format!("readlink_stat({}) failed", self.quoted(core, root, &p)),
                        errno,
                        text,
                    ));
                    continue;
                }
            };
            if entry.stat_xattr_denied {
                self.report_stat_xattr_denied(core, root, &p);
            }
            let is_dir = mode::is_dir(meta.mode);
            if is_dir && !core.opts.recurse && !core.opts.xfer_dirs {
                core.info(&format!("skipping directory {}", show(&name)));
                continue;
            }
            if self.filters[root as usize].is_excluded(&name, is_dir)
                || core.policy.locally_excluded(&name, is_dir)
            {
                continue;
            }
            if core.policy.ignore_nonreadable
                && !mode::is_lnk(meta.mode)
                && !core.tree.is_readable(&p)
            {
                continue;
            }
            if let Some(it) = self.make_item(core, root, name, &meta, 0, core.opts.recurse)? {
                items.push(it);
            }
        }
        Ok(())
    }

    /// An entry from its metadata (upstream's make_file() after the filters).
    pub(super) fn make_item(
        &mut self,
        core: &Core,
        root: u32,
        name: Vec<u8>,
        m: &Meta,
        xflags: u32,
        content: bool,
    ) -> Result<Option<Item>, EngineError> {
        let cfg = &core.cfg;
        // From protocol 30 a directory whose contents are not sent says so (an implied
        // directory also says it is a top one). Upstream: flist.c, send_file_entry().
        let xflags = if mode::is_dir(m.mode) && !content && core.wire.protocol >= 30 {
            if xflags & xmit::NO_CONTENT_DIR != 0 {
                xflags
            } else {
                xmit::NO_CONTENT_DIR
            }
        } else {
            xflags
        };
        let mut e = FileEntry {
            name,
            mode: m.mode,
            size: i64::try_from(m.size).unwrap_or(i64::MAX),
            mtime: m.mtime,
            mtime_nsec: m.mtime_nsec,
            xflags,
            ..FileEntry::default()
        };
        if cfg.preserve_atimes && !e.is_dir() {
            e.atime = Some(m.atime);
        }
        if cfg.preserve_uid {
            e.uid = Some(m.uid);
        }
        if cfg.preserve_gid {
            e.gid = Some(m.gid);
        }
        if (mode::is_device(m.mode) && cfg.preserve_devices)
            || (mode::is_special(m.mode) && cfg.preserve_specials)
        {
            let (ma, mi) = (nix::sys::stat::major(m.rdev), nix::sys::stat::minor(m.rdev));
            e.rdev = Some((ma as u32, mi as u32));
        }
        if mode::is_lnk(m.mode) {
            let it = Item {
                e: e.clone(),
                root,
                content_dir: false,
            };
            let p = self.disk_path(&it)?;
            match core.tree.read_link(&p) {
                Ok(mut t) => {
                    if core.policy.munge_symlinks
                        && t.starts_with(MUNGE_PREFIX)
                        && t.len() > MUNGE_PREFIX.len()
                    {
                        t.drain(..MUNGE_PREFIX.len());
                    }
                    // The size stays lstat's (a munged target counts its prefix), as
                    // upstream's make_file() takes st_size.
                    if cfg.preserve_links {
                        if t.is_empty() {
                            self.io_error |= IOERR_GENERAL;
                            core.error_xfer(&format!(
                                "skipping symlink with 0-length value: {}",
                                self.quoted(core, root, &p)
                            ));
                            return Ok(None);
                        }
                        e.link_target = Some(t);
                    }
                }
                Err(err) => {
                    self.sys_error(core, root, &p, "readlink", &err);
                    return Ok(None);
                }
            }
        }
        if cfg.preserve_hard_links && !e.is_dir() {
            let linked = if core.wire.protocol < 28 {
                mode::is_reg(m.mode)
            } else {
                m.nlink > 1
            };
            if linked {
                e.hard_link = Some(HardLink::DevIno {
                    dev: m.dev as i64,
                    ino: m.ino as i64,
                });
            }
        }
        if let Some(c) = &core.policy.outgoing_chmod
            && !mode::is_lnk(e.mode)
        {
            e.mode = c.apply(e.mode);
        }
        let item = Item {
            e,
            root,
            content_dir: content && mode::is_dir(m.mode),
        };
        let mut item = item;
        if cfg.preserve_acls && !self.read_acls(core, &mut item, m.mode)? {
            return Ok(None);
        }
        if cfg.preserve_xattrs && !self.read_xattrs(core, &mut item, m.mode)? {
            return Ok(None);
        }
        if let Some(spec) = core.sums.file
            && mode::is_reg(item.e.mode)
        {
            let p = self.disk_path(&item)?;
            item.e.checksum = Some(
                core.file_checksum(&p, spec)
                    .unwrap_or_else(|| vec![0; spec.digest_len()]),
            );
        }
        Ok(Some(item))
    }
}

impl Lister {
    /// Fills in an entry's ACLs (`-A`): regular files and directories, devices and
    /// specials only when they are preserved (others send the mode's), none for a
    /// symlink. The access ACL is condensed against the wire mode when it is encoded.
    /// `false`: they could not be read, and the entry is left out of the list.
    /// Upstream: flist.c, send_file_name() after get_acl(); acls.c, get_acl().
    fn read_acls(
        &mut self,
        core: &Core,
        item: &mut Item,
        disk_mode: u32,
    ) -> Result<bool, EngineError> {
        let cfg = &core.cfg;
        if mode::is_lnk(item.e.mode) {
            return Ok(true);
        }
        let read = mode::is_reg(disk_mode)
            || mode::is_dir(disk_mode)
            || (mode::is_device(disk_mode) && cfg.preserve_devices)
            || (mode::is_special(disk_mode) && cfg.preserve_specials);
        let acls = if read {
            let p = self.disk_path(item)?;
            match core.tree.read_acls(&p, disk_mode) {
                Ok(a) => a,
                Err(err) => {
                    let what = format!(
                        "get_acl: sys_acl_get_file({}, ACL_TYPE_ACCESS)",
                        self.quoted(core, item.root, &p)
                    );
                    return Ok(self.attrs_unreadable(core, &what, &err));
                }
            }
        } else {
            crate::protocol::acl::FileAcls::default()
        };
        if acls.access.as_ref().map_or(0, |a| a.names.len())
            > crate::protocol::acl::MAX_WIRE_ACL_COUNT
            || acls.default.as_ref().map_or(0, |a| a.names.len())
                > crate::protocol::acl::MAX_WIRE_ACL_COUNT
        {
            self.io_error |= IOERR_GENERAL;
            return Ok(false);
        }
        item.e.acls = Some(std::sync::Arc::new(acls));
        Ok(true)
    }

    /// An entry's ACLs or xattrs could not be read: said as stock says it (`what`), an
    /// I/O error for the session, and `false`: the entry is left out of the list.
    fn attrs_unreadable(
        &mut self,
        core: &Core,
        what: &str,
        err: &crate::engine::tree::TreeError,
    ) -> bool {
        self.io_error |= IOERR_GENERAL;
        core.error_xfer(&crate::engine::exit::syserr(
            "sender",
            what,
            super::errno_of(err),
            err,
        ));
        false
    }

    /// Fills in an entry's xattrs (a symlink's own; devices and specials only when
    /// they are preserved, others send the empty list). `false`: they could not be
    /// read, and the entry is left out of the list (upstream: flist.c,
    /// send_file_name() after get_xattr(); xattrs.c, rsync_xal_get()).
    fn read_xattrs(
        &mut self,
        core: &Core,
        item: &mut Item,
        disk_mode: u32,
    ) -> Result<bool, EngineError> {
        let cfg = &core.cfg;
        let read = mode::is_reg(disk_mode)
            || mode::is_dir(disk_mode)
            || (mode::is_lnk(disk_mode) && cfg.preserve_links)
            || (mode::is_device(disk_mode) && cfg.preserve_devices)
            || (mode::is_special(disk_mode) && cfg.preserve_specials);
        let local = if read {
            let p = self.disk_path(item)?;
            match core.tree.list_xattrs(&p) {
                Ok(l) => l,
                Err(err) => {
                    let what = format!(
                        "get_xattr_names: llistxattr({},1024) failed",
                        self.quoted(core, item.root, &p)
                    );
                    return Ok(self.attrs_unreadable(core, &what, &err));
                }
            }
        } else {
            Vec::new()
        };
        let list = core.with_xattr_rules(|r| r.sender_list(local));
        item.e.xattrs = Some(std::sync::Arc::new(list));
        Ok(true)
    }
}

/// Whether a symlink named `name` (relative to the transfer root) with target `target`
/// leads out of the transfer: an absolute or empty target, or one whose `..` climb above
/// the root. Upstream: util1.c, unsafe_symlink().
pub(super) fn unsafe_symlink(target: &[u8], name: &[u8]) -> bool {
    if target.is_empty() || target.starts_with(b"/") {
        return true;
    }
    let mut depth: i64 = name
        .split(|&b| b == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
        .count() as i64
        - 1;
    for part in target.split(|&b| b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => {
                depth -= 1;
                if depth < 0 {
                    return true;
                }
            }
            _ => depth += 1,
        }
    }
    false
}

/// The name of a user, for the id lists (none when the system has none or it is too
/// long for the wire).
pub(super) fn user_name(uid: u32) -> Option<Vec<u8>> {
    nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
        .ok()
        .flatten()
        .map(|u| u.name.into_bytes())
        .filter(|n| n.len() <= 255)
}

/// The name of a group, as [`user_name`].
pub(super) fn group_name(gid: u32) -> Option<Vec<u8>> {
    nix::unistd::Group::from_gid(nix::unistd::Gid::from_raw(gid))
        .ok()
        .flatten()
        .map(|g| g.name.into_bytes())
        .filter(|n| n.len() <= 255)
}

#[cfg(test)]
mod tests {
    use super::unsafe_symlink;

    #[test]
    fn unsafe_symlinks() {
        assert!(unsafe_symlink(b"/etc", b"a"));
        assert!(unsafe_symlink(b"../x", b"a"));
        assert!(!unsafe_symlink(b"../x", b"d/a"));
        assert!(unsafe_symlink(b"../../x", b"d/a"));
        assert!(!unsafe_symlink(b"b/../c", b"a"));
        assert!(unsafe_symlink(b"", b"a"));
    }
}
