//! The generator's decision for one file-list entry (upstream: generator.c
//! recv_generator(), itemize(), quick_check_ok(); rsync.c set_file_attrs(), dest_mode()).

use std::collections::HashMap;
use std::io::BufReader;

use super::generator::{Generator, write_err};
use super::{RecvError, Said, Shared};
use crate::engine::exit::ExitCode;
use crate::engine::flist::FileList;
use crate::engine::itemize::{ItemizeCtx, is_significant};
use crate::engine::mux::lock;
use crate::engine::tree::{AttrChanges, AttrTarget, FileKind, Meta, RelPath, TreeError, WantAttrs};
use crate::protocol::codec::put_shortint;
use crate::protocol::flist::{FileEntry, mode};
use crate::protocol::ndx::iflags as it;
use crate::protocol::options::Info;
use crate::protocol::sums::{
    SumHead, compute_block_sums, encode_block_sums, encode_sum_head, sum_sizes,
};

/// Permission bits (upstream: CHMOD_BITS).
pub const CHMOD_BITS: u32 = 0o7777;

/// State the generator keeps across entries.
pub(super) struct EntryCtx {
    /// A directory whose contents are skipped (missing, refused, or failed to create).
    skip_dir: Option<Vec<u8>>,
    /// Directories whose times (and permissions) are fixed after their contents.
    dirs_to_touch: Vec<(RelPath, FileEntry)>,
    /// Directories this session created (their `.` counts as new).
    created_dirs: std::collections::HashSet<Vec<u8>>,
    /// Directories that do not exist at the destination after all (for deletion).
    missing_dirs: std::collections::HashSet<Vec<u8>>,
    /// `ACCESSPERMS & ~umask`: permissions of new files without `--perms`.
    dflt_perms: u32,
    /// Generating a redo request (full-length sums, no skipping rules).
    pub redo: bool,
    /// Deletions held back by --max-delete.
    pub skipped_deletes: u64,
    /// A dry run's first directory that does not exist (its contents are missing too).
    pub dry_missing_dir: Option<Vec<u8>>,
    /// --keep-dirlinks symlinks that lead out of the module: nothing goes through them.
    pub unenterable: Option<Vec<Vec<u8>>>,
}

impl EntryCtx {
    /// `dflt_perms` is 0777 without the process umask (upstream's dflt_perms).
    pub fn new(dflt_perms: u32) -> EntryCtx {
        EntryCtx {
            skip_dir: None,
            dirs_to_touch: Vec::new(),
            created_dirs: Default::default(),
            missing_dirs: Default::default(),
            dflt_perms,
            redo: false,
            skipped_deletes: 0,
            dry_missing_dir: None,
            unenterable: None,
        }
    }

    /// Whether a directory was found or created at the destination.
    pub fn dir_exists(&self, dir: &FileEntry) -> bool {
        !self.missing_dirs.contains(&dir.name)
    }

    /// Per-directory filter files for a directory that is not deleted in.
    pub fn enter_dir_filters(&mut self, _dir: &FileEntry) {}

    /// Re-applies a directory's time and permissions after its contents were written.
    /// Upstream: generator.c, touch_up_dirs() for one list's directory.
    pub fn touch_up_dir(&mut self, sh: &Shared, dir: &FileEntry) {
        if let Some(pos) = self
            .dirs_to_touch
            .iter()
            .position(|(_, e)| e.name == dir.name)
        {
            // Delayed deletions change directories at the very end: keep every directory
            // for the final pass then (upstream: touch_up_dirs(-1) with delete_during 2).
            if sh.opts.delete == crate::protocol::options::DeleteWhen::Delay {
                let (path, e) = &self.dirs_to_touch[pos];
                touch_one(sh, path, e);
            } else {
                let (path, e) = self.dirs_to_touch.remove(pos);
                touch_one(sh, &path, &e);
            }
        }
    }

    /// The final pass over every directory. Upstream: generator.c, touch_up_dirs(-1).
    pub fn touch_up_all_dirs(&mut self, sh: &Shared) {
        for (path, e) in std::mem::take(&mut self.dirs_to_touch) {
            touch_one(sh, &path, &e);
        }
    }
}

fn touch_one(sh: &Shared, path: &RelPath, e: &FileEntry) {
    let o = &sh.opts;
    let fix_perms = !sh.policy.am_root && !sh.policy.fake_super && e.mode & 0o200 == 0;
    let want_time = o.preserve_mtimes && !o.omit_dir_times;
    if !(want_time || fix_perms) {
        return;
    }
    let want = WantAttrs {
        mode: fix_perms.then_some(e.mode & CHMOD_BITS),
        mtime: want_time.then_some((e.mtime, e.mtime_nsec)),
        ..WantAttrs::default()
    };
    let _ = sh.tree.set_attrs(AttrTarget::Path(path), &want);
}

/// The mode a received entry gets. Upstream: rsync.c, dest_mode().
pub(super) fn dest_mode(
    o: &crate::protocol::options::Options,
    flist_mode: u32,
    stat_mode: Option<u32>,
    dflt_perms: u32,
) -> u32 {
    if o.preserve_perms {
        return flist_mode;
    }
    match stat_mode {
        Some(st) => {
            let mut m = (flist_mode & !CHMOD_BITS) | (st & CHMOD_BITS);
            if o.preserve_executability && mode::is_reg(flist_mode) {
                if flist_mode & 0o111 == 0 {
                    m &= !0o111;
                } else if st & 0o111 == 0 {
                    m |= (m & 0o444) >> 2;
                }
            }
            m
        }
        None => flist_mode & (!CHMOD_BITS | dflt_perms),
    }
}

/// Hard-link bookkeeping (upstream: hlink.c match_hard_links(), hard_link_check(),
/// finish_hard_link()).
#[derive(Debug, Default)]
pub(super) struct Hlinks {
    /// Per index: the previous member of its group, and state flags.
    nodes: HashMap<i32, Node>,
    /// Group number -> the path of its finished leader (incremental lists refer back).
    done_groups: HashMap<i64, RelPath>,
}

#[derive(Debug, Default, Clone)]
struct Node {
    group: i64,
    prev: Option<i32>,
    first: bool,
    last: bool,
    done: bool,
    sent: bool,
}

impl Hlinks {
    /// Chains each group's members of a new list in sorted order; the last member is the
    /// one transferred. Upstream: hlink.c, match_gnums().
    pub fn match_list(&mut self, list: &FileList, _inc_recurse: bool) {
        let mut by_group: HashMap<i64, Vec<i32>> = HashMap::new();
        for (i, g) in list.hlink_group.iter().enumerate() {
            if let Some(g) = g
                && list.active[i]
                && !list.entries[i].is_dir()
            {
                by_group
                    .entry(*g)
                    .or_default()
                    .push(list.ndx_start + i as i32);
            }
        }
        for (g, members) in by_group {
            let n = members.len();
            let mut prev = None;
            for (k, ndx) in members.into_iter().enumerate() {
                let first = k == 0 && !self.done_groups.contains_key(&g);
                self.nodes.insert(
                    ndx,
                    Node {
                        group: g,
                        prev,
                        first,
                        last: k + 1 == n,
                        ..Node::default()
                    },
                );
                prev = Some(ndx);
            }
        }
    }

    fn node(&mut self, ndx: i32) -> Option<&mut Node> {
        self.nodes.get_mut(&ndx)
    }
}

/// What the generator found at an entry's destination.
pub(super) struct Found {
    pub path: RelPath,
    pub meta: Option<Meta>,
}

impl Generator<'_> {
    /// Decides what to do with one entry. `as_parent` is the directory of an incremental
    /// list handled before its contents (its full treatment); a directory met inside a
    /// list is only created there. Upstream: generator.c, recv_generator().
    pub(super) fn generate_entry(
        &mut self,
        list: &FileList,
        e: &FileEntry,
        ndx: i32,
        as_parent: bool,
    ) -> Result<(), RecvError> {
        let sh = self.sh;
        let o = &sh.opts;
        let is_dir = e.is_dir();
        let inner_dir = is_dir && sh.wire.inc_recurse && !as_parent;
        // --list-only: the entry is listed, nothing else (upstream: recv_generator() with
        // list_only, list_file_entry()).
        if o.list_only {
            let implied = is_dir && !o.implied_dirs && e.is_implied_dir(sh.wire.protocol);
            if !inner_dir && !implied {
                sh.say(Said::Both, &list_line(e, o));
            }
            return Ok(());
        }
        if let Some(skip) = &self.entry.skip_dir {
            if is_below(&e.name, skip) {
                if is_dir {
                    self.entry.missing_dirs.insert(e.name.clone());
                }
                return Ok(());
            }
            self.entry.skip_dir = None;
        }
        let path = match sh.dest.path_of(&e.name) {
            Ok(p) => p,
            Err(err) => {
                sh.error(&format!("rsync: invalid name {}: {err}", show(&e.name)));
                return Ok(());
            }
        };
        // Upstream checks an incremental list's inner directory with name flags that no
        // plain rule matches, so such a directory is still made early (mode 0700) and
        // refused only when its own list comes; we do the same, as clients can see it.
        if e.name != b"."
            && !inner_dir
            && sh
                .filters
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .daemon_refuses(&e.name, is_dir)
        {
            sh.error(&format!(
                "ERROR: daemon refused to receive {} \"{}\"",
                if is_dir { "directory" } else { "file" },
                show(&e.name)
            ));
            if is_dir {
                sh.error_note("*** Skipping any contents from this failed directory ***");
                self.skip_contents(e);
            }
            return Ok(());
        }
        if let Some(link) = self
            .entry
            .unenterable
            .as_ref()
            .and_then(|u| u.iter().find(|d| is_below(&e.name, d) && e.name != **d))
        {
            let _ = link;
            let what = format!("recv_generator: failed to stat {}", sh.quoted(&path));
            sh.error(&crate::engine::exit::syserr(
                "generator",
                &what,
                Some(libc::ELOOP),
                &"",
            ));
            if is_dir && !inner_dir {
                self.skip_contents(e);
            }
            return Ok(());
        }
        // In a dry run, what is below a directory that was never made is missing too.
        // Upstream: recv_generator(), `dry_run > 1` and dry_missing_dir.
        let dry_missing = sh.dest.dry_missing
            || self
                .entry
                .dry_missing_dir
                .as_deref()
                .is_some_and(|d| is_below(&e.name, d) && e.name != d);
        if !dry_missing {
            self.entry.dry_missing_dir = None;
        }
        if o.fuzzy > 0 {
            self.fuzzy.enter(&e.name);
        }
        let meta = match if dry_missing {
            Ok(None)
        } else {
            self.stat_dest(&path, is_dir)
        } {
            Ok(m) => m,
            Err(err) => {
                let what = format!("recv_generator: failed to stat {}", sh.quoted(&path));
                sh.sys_error("generator", &what, &err);
                return Ok(());
            }
        };
        let found = Found { path, meta };
        if o.missing_args == 2 && e.mode == 0 {
            if let Some(m) = found.meta {
                self.delete_item(&found.path, &e.name, m, true)?;
            }
            return Ok(());
        }
        if o.ignore_non_existing && found.meta.is_none() && !self.entry.redo {
            if is_dir {
                if inner_dir {
                    return Ok(());
                }
                self.skip_contents(e);
            }
            return Ok(());
        }
        if o.ignore_existing
            && found.meta.is_some()
            && !self.entry.redo
            && !(is_dir && found.meta.is_some_and(|m| m.kind == FileKind::Dir))
        {
            return Ok(());
        }
        if is_dir {
            return self.generate_dir(e, ndx, found, inner_dir, as_parent);
        }
        // Without --perms a new entry gets default permissions and an existing one keeps
        // its own (upstream: recv_generator(), before the per-type code).
        let adjusted;
        let e = if o.preserve_perms {
            e
        } else {
            let existing = found
                .meta
                .filter(|m| m.kind != FileKind::Dir)
                .map(|m| m.mode);
            let mut a = e.clone();
            a.mode = dest_mode(o, e.mode, existing, self.entry.dflt_perms);
            adjusted = a;
            &adjusted
        };
        if o.hard_links > 0 && self.hlink_not_first(ndx) && self.hard_link_check(e, ndx, &found)? {
            return Ok(());
        }
        if mode::is_lnk(e.mode) && o.preserve_links {
            return self.generate_symlink(e, ndx, &found);
        }
        if mode::is_device(e.mode) || mode::is_special(e.mode) {
            let allowed = (mode::is_device(e.mode)
                && o.preserve_devices
                && (sh.policy.am_root || sh.policy.fake_super))
                || (mode::is_special(e.mode) && o.preserve_specials);
            if allowed {
                return self.generate_special(e, ndx, &found);
            }
        }
        if !mode::is_reg(e.mode) {
            if o.info.at_least(Info::Nonreg, 1) {
                sh.say(
                    Said::Both,
                    &format!("skipping non-regular file \"{}\"", show(&e.name)),
                );
            }
            return Ok(());
        }
        self.generate_file(list, e, ndx, found)
    }

    fn skip_contents(&mut self, e: &FileEntry) {
        self.entry.skip_dir = Some(e.name.clone());
        self.entry.missing_dirs.insert(e.name.clone());
    }

    /// `lstat`, or with `--keep-dirlinks` a symlink to a directory seen as that directory.
    fn stat_dest(&self, path: &RelPath, is_dir: bool) -> Result<Option<Meta>, TreeError> {
        if self.sh.tree.options().insecure_links && *path == self.sh.dest.root {
            // `insecure links`: the destination was entered as upstream's chdir enters
            // it, through a link that may leave the module (kept unresolved).
            return self.sh.tree.stat_target(path);
        }
        let m = self.sh.tree.lstat(path)?;
        if is_dir
            && self.sh.opts.keep_dirlinks
            && m.is_some_and(|m| m.kind == FileKind::Symlink)
            && let Some(dm) = follow_dirlink(&self.sh.tree, path)
        {
            return Ok(Some(dm));
        }
        Ok(m)
    }

    fn generate_dir(
        &mut self,
        e: &FileEntry,
        ndx: i32,
        found: Found,
        inner_dir: bool,
        as_parent: bool,
    ) -> Result<(), RecvError> {
        let sh = self.sh;
        let o = &sh.opts;
        let added = if sh.policy.fake_super { 0o700 } else { 0 };
        if !o.implied_dirs && e.is_implied_dir(sh.wire.protocol) {
            return Ok(());
        }
        // --keep-dirlinks with a symlink we will not follow (out of the module): stock
        // follows it, finds a directory, keeps the administrator's link and then fails on
        // what would go through it. A munged link (one a client pushed) leads nowhere, so
        // stock replaces it with the directory, as we do below.
        if o.keep_dirlinks
            && let Some(m) = found.meta
            && m.kind == FileKind::Symlink
            && !sh
                .tree
                .read_link(&found.path)
                .is_ok_and(|t| t.starts_with(crate::protocol::flist::SYMLINK_PREFIX))
        {
            self.entry
                .unenterable
                .get_or_insert_with(Vec::new)
                .push(e.name.clone());
            return Ok(());
        }
        if inner_dir {
            // Created now (so the parent's time can be fixed early); treated in full with
            // its own list.
            if !o.preserve_mtimes || o.omit_dir_times {
                return Ok(());
            }
            if let Some(m) = found.meta {
                if m.kind == FileKind::Dir || self.delete_item(&found.path, &e.name, m, false)? {
                    return Ok(());
                }
            }
            if sh.tree.mkdir(&found.path, (e.mode | added) & 0o700).is_ok() {
                self.entry.created_dirs.insert(e.name.clone());
            }
            return Ok(());
        }
        let mut meta = found.meta;
        if let Some(m) = meta
            && m.kind != FileKind::Dir
        {
            if !self.delete_item(&found.path, &e.name, m, false)? {
                self.skip_contents(e);
                return Ok(());
            }
            meta = None;
        }
        if sh.opts.dry_run && meta.is_none() && self.entry.dry_missing_dir.is_none() {
            self.entry.dry_missing_dir = Some(e.name.clone());
        }
        let created_earlier =
            self.entry.created_dirs.contains(&e.name) || (e.name == b"." && sh.dest.created);
        let statret_new = meta.is_none() || created_earlier;
        // A directory this session made earlier (an incremental list's parent) counts as
        // new: it gets default permissions, not the ones it was created with.
        let want_mode = dest_mode(
            o,
            e.mode,
            meta.filter(|_| !statret_new).map(|m| m.mode),
            self.entry.dflt_perms,
        );
        let mut entry = e.clone();
        entry.mode = want_mode;
        let mut cmp = if statret_new { None } else { meta };
        // A new directory that a basis directory already has: itemized against that one,
        // or not at all when it matches exactly (upstream: try_dests_non()).
        let mut quiet = false;
        if statret_new && sh.basis.kind.is_some() {
            match self.try_dests_non(&entry, ndx, &found)? {
                super::altdest::Tried::Basis(_, _, bm) => cmp = Some(bm),
                super::altdest::Tried::Nothing => {}
                _ => quiet = true,
            }
        }
        if !quiet {
            self.itemize(
                &entry,
                ndx,
                cmp,
                if statret_new { it::LOCAL_CHANGE } else { 0 },
                None,
            )?;
        }
        if meta.is_none()
            && let Err(err) = sh.tree.mkdir(&found.path, (want_mode | added) & 0o7777)
            && !matches!(err.raw_os_error(), Some(libc::EEXIST))
        {
            let what = format!("recv_generator: mkdir {} failed", sh.quoted(&found.path));
            sh.sys_error("generator", &what, &err);
            sh.error_note("*** Skipping any contents from this failed directory ***");
            self.skip_contents(e);
            return Ok(());
        }
        match self.set_attrs(&found.path, &entry, meta) {
            Ok(changes) => {
                if changes.any()
                    && !quiet
                    && let Some(to) = sh.name_lines()
                {
                    sh.say(to, &format!("{}/", show(&e.name)));
                }
            }
            Err(err) => sh.attr_error("generator", &found.path, &err),
        }
        // Keep the directory writable for its contents; fix permissions and time later.
        if !sh.policy.am_root && !sh.policy.fake_super && want_mode & 0o700 != 0o700 {
            let _ = sh.tree.set_attrs(
                AttrTarget::Path(&found.path),
                &WantAttrs {
                    mode: Some(want_mode | 0o700),
                    ..WantAttrs::default()
                },
            );
        }
        self.entry.dirs_to_touch.push((found.path.clone(), entry));
        if !sh.wire.inc_recurse && super::delete_during(o) && self.phase == 0 && !as_parent {
            if e.is_content_dir(sh.wire.protocol) {
                self.delete_in_dir(e)?;
            } else {
                self.entry.enter_dir_filters(e);
            }
        }
        Ok(())
    }

    fn generate_symlink(
        &mut self,
        e: &FileEntry,
        ndx: i32,
        found: &Found,
    ) -> Result<(), RecvError> {
        let sh = self.sh;
        let target = e.link_target.as_deref().unwrap_or(&[]);
        if sh.opts.safe_links && is_unsafe_symlink(target, &e.name) {
            if sh.opts.info.at_least(Info::Name, 1) {
                sh.say(
                    Said::Both,
                    &format!(
                        "ignoring unsafe symlink \"{}\" -> \"{}\"",
                        show(&e.name),
                        show(target)
                    ),
                );
            }
            return Ok(());
        }
        if let Some(m) = found.meta
            && m.kind == FileKind::Symlink
            && sh.tree.read_link(&found.path).is_ok_and(|t| t == target)
        {
            let _ = self.set_attrs(&found.path, e, Some(m));
            self.itemize(e, ndx, Some(m), 0, None)?;
            self.hlink_leader_ready(e, ndx, &found.path)?;
            return Ok(());
        }
        let Some((quiet, alt_cmp)) = self.alt_dest_non(e, ndx, found)? else {
            return Ok(());
        };
        match self.replace_with(&found.path, &e.name, found.meta, "symlink", |tree, tmp| {
            tree.symlink(target, tmp)
        }) {
            Ok(false) => {}
            Ok(true) => {
                let _ = self.set_attrs(&found.path, e, None);
                let cmp = alt_cmp.or(found.meta.filter(|m| m.kind == FileKind::Symlink));
                if !quiet {
                    self.itemize(e, ndx, cmp, it::LOCAL_CHANGE | it::REPORT_CHANGE, None)?;
                    if let Some(to) = sh.name_lines() {
                        sh.say(to, &format!("{} -> {}", show(&e.name), show(target)));
                    }
                }
                self.hlink_leader_ready(e, ndx, &found.path)?;
            }
            Err(err) => {
                let what = format!(
                    "symlink {} -> \"{}\" failed",
                    sh.quoted(&found.path),
                    show(target)
                );
                sh.sys_error("generator", &what, &err);
            }
        }
        Ok(())
    }

    fn generate_special(
        &mut self,
        e: &FileEntry,
        ndx: i32,
        found: &Found,
    ) -> Result<(), RecvError> {
        let sh = self.sh;
        let rdev = e.rdev.map_or(0, |(ma, mi)| {
            nix::sys::stat::makedev(u64::from(ma), u64::from(mi))
        });
        let rdev = if mode::is_device(e.mode) { rdev } else { 0 };
        if let Some(m) = found.meta
            && m.mode & mode::S_IFMT == e.mode & mode::S_IFMT
            && (!mode::is_device(e.mode) || m.rdev == rdev)
        {
            let m = self.set_attrs_of_kept(&found.path, e, m);
            self.itemize(e, ndx, Some(m), 0, None)?;
            self.hlink_leader_ready(e, ndx, &found.path)?;
            return Ok(());
        }
        let want = e.mode;
        let Some((quiet, alt_cmp)) = self.alt_dest_non(e, ndx, found)? else {
            return Ok(());
        };
        let what = if mode::is_device(want) {
            "device file"
        } else {
            "special file"
        };
        match self.replace_with(&found.path, &e.name, found.meta, what, |tree, tmp| {
            tree.mknod(tmp, want, rdev)
        }) {
            Ok(false) => {}
            Ok(true) => {
                let _ = self.set_attrs(&found.path, e, None);
                let cmp = alt_cmp.or(found
                    .meta
                    .filter(|m| m.mode & mode::S_IFMT == e.mode & mode::S_IFMT));
                if !quiet {
                    self.itemize(e, ndx, cmp, it::LOCAL_CHANGE | it::REPORT_CHANGE, None)?;
                    if let Some(to) = sh.name_lines() {
                        sh.say(to, &show(&e.name));
                    }
                }
                self.hlink_leader_ready(e, ndx, &found.path)?;
            }
            Err(err) => {
                sh.sys_error(
                    "generator",
                    &format!("mknod {} failed", sh.quoted(&found.path)),
                    &err,
                );
            }
        }
        Ok(())
    }

    /// Creates an entry under a temporary name and renames it over whatever is there:
    /// `Ok(false)` when a directory in the way could not go (said as upstream says it,
    /// naming the new entry's kind `what`). Upstream: generator.c, atomic_create();
    /// delete.c, delete_item() with DEL_MAKE_ROOM.
    fn replace_with(
        &mut self,
        path: &RelPath,
        name: &[u8],
        existing: Option<Meta>,
        what: &str,
        create: impl Fn(&crate::engine::tree::Tree, &RelPath) -> Result<(), TreeError>,
    ) -> Result<bool, TreeError> {
        let tree = &self.sh.tree;
        if let Some(m) = existing
            && m.kind == FileKind::Dir
        {
            // A directory in the way goes first (with its contents, as --force would).
            if !self.delete_item(path, name, m, false).unwrap_or(false) {
                self.sh.error(&format!(
                    "could not make way for new {what}: {}",
                    show(path.as_bytes())
                ));
                return Ok(false);
            }
        }
        // --backup keeps what is replaced (upstream: atomic_create() backs it up first).
        if let Some(m) = existing
            && m.kind != FileKind::Dir
            && self.sh.opts.make_backups
        {
            super::receiver::make_backup(self.sh, path)?;
        }
        if tree.lstat(path)?.is_none() {
            return create(tree, path).map(|()| true);
        }
        let tmp = temp_sibling(path)?;
        create(tree, &tmp)?;
        tree.rename(&tmp, path)
            .inspect_err(|_| {
                let _ = tree.unlink(&tmp);
            })
            .map(|()| true)
    }

    fn generate_file(
        &mut self,
        list: &FileList,
        e: &FileEntry,
        ndx: i32,
        found: Found,
    ) -> Result<(), RecvError> {
        let sh = self.sh;
        let o = &sh.opts;
        let redo = self.entry.redo;
        if !redo {
            if o.max_size.is_some_and(|m| e.size > m) || o.min_size.is_some_and(|m| e.size < m) {
                return Ok(());
            }
            if o.update_only
                && let Some(m) = found.meta
                && m.kind == FileKind::Regular
                && e.mtime - m.mtime < i64::from(o.modify_window.unwrap_or(0))
            {
                return self.hlink_skipped(ndx);
            }
        }
        let mut meta = found.meta;
        if let Some(m) = meta
            && m.kind != FileKind::Regular
            && !(o.write_devices && matches!(m.kind, FileKind::BlockDev | FileKind::CharDev))
        {
            if !self.delete_item(&found.path, &e.name, m, false)? {
                return Ok(());
            }
            meta = None;
        }
        let entry = e.clone();
        // The basis directories come first: a match there may settle the file.
        let mut alt_basis = None;
        if sh.basis.kind.is_some()
            && !redo
            && (meta.is_none() || sh.basis.kind != Some(super::altdest::AltDest::Copy))
        {
            match self.try_dests_reg(&entry, ndx, &found, meta)? {
                super::altdest::Tried::Done => return Ok(()),
                super::altdest::Tried::Basis(j, p, m) => alt_basis = Some((p, m, j)),
                _ => {}
            }
        }
        if let Some(b) = alt_basis {
            // Itemized against the basis file, as upstream's sx.st then holds it.
            let m = b.1;
            return self.request(&entry, ndx, Some(m), Some(b), redo);
        }
        // A partial file from an earlier interrupted transfer is a better basis.
        let partial = self.partial_basis(&found.path)?;
        // --fuzzy: with no file of its own (nor a partial one), a similar file of the
        // directory is the basis. Upstream: recv_generator(), find_fuzzy().
        if meta.is_none()
            && partial.is_none()
            && o.fuzzy > 0
            // Only from protocol 29 can a request name its basis (stock refuses the
            // option below it; a stock client never gets that far).
            && sh.wire.protocol >= 29
            && let Some((c, basis_type)) = self.fuzzy.find(sh, &entry, &found.path)
        {
            // Upstream then holds the fuzzy file's size for --append's test.
            if o.append_mode > 0 && !redo && c.meta.size >= e.size.max(0) as u64 {
                return self.hlink_skipped(ndx);
            }
            // Itemized as new: the name it was found under follows the basis type.
            return self.request(&entry, ndx, None, Some((c.path, c.meta, basis_type)), redo);
        }
        if meta.is_none() && partial.is_none() {
            if o.hard_links > 0 && self.hlink_not_last(ndx) {
                self.defer_hlink(list, ndx);
                return Ok(());
            }
            return self.request(&entry, ndx, None, None, redo);
        }
        if let Some(m) = meta
            && !redo
            && self.quick_check_ok(&entry, &found.path, &m)
        {
            if partial.is_some()
                && let Some(pd) = &self.partial_path(&found.path)
            {
                let _ = sh.tree.unlink(pd);
            }
            let m = self.set_attrs_of_kept(&found.path, &entry, m);
            self.itemize(&entry, ndx, Some(m), 0, None)?;
            self.hlink_leader_ready(&entry, ndx, &found.path)?;
            return Ok(());
        }
        if o.append_mode > 0
            && !redo
            && let Some(m) = meta
            && m.size >= e.size.max(0) as u64
        {
            return self.hlink_skipped(ndx);
        }
        let basis = match (partial, meta) {
            (Some((pp, pm)), _) => Some((pp, pm, crate::protocol::ndx::basis::PARTIAL_DIR)),
            (None, Some(m)) => Some((found.path.clone(), m, crate::protocol::ndx::basis::FNAME)),
            (None, None) => None,
        };
        self.request(&entry, ndx, meta, basis, redo)
    }

    /// The quick check: same size and time (or checksum with `-c`), unless
    /// `--ignore-times`. Upstream: generator.c, quick_check_ok().
    pub(super) fn quick_check_ok(&self, e: &FileEntry, path: &RelPath, m: &Meta) -> bool {
        let o = &self.sh.opts;
        if m.size != e.size.max(0) as u64 {
            return false;
        }
        if let (Some(spec), Some(want)) = (&self.sh.sums.file, &e.checksum) {
            return file_checksum(&self.sh.tree, path, spec)
                .is_some_and(|s| s.as_slice() == want.as_slice());
        }
        if o.size_only {
            return true;
        }
        if o.ignore_times {
            return false;
        }
        !mtime_differs(m, e, o.modify_window.unwrap_or(0))
    }

    /// Sends a transfer request: index, item flags, then the sum head and block sums of the
    /// basis (or an empty head for a whole-file transfer). Upstream: generator.c,
    /// recv_generator() "notify_others" and generate_and_send_sums().
    fn request(
        &mut self,
        e: &FileEntry,
        ndx: i32,
        meta: Option<Meta>,
        basis: Option<(RelPath, Meta, u8)>,
        redo: bool,
    ) -> Result<(), RecvError> {
        let sh = self.sh;
        let o = &sh.opts;
        // A dry run transfers nothing, so nothing is waited for.
        if sh.wire.inc_recurse
            && !o.dry_run
            && let Some(ls) = self.lists.iter_mut().find(|l| l.list.contains(ndx))
        {
            ls.in_progress += 1;
        }
        if let Some(n) = self.hlinks.node(ndx) {
            n.sent = true;
        }
        let mut iflags = it::TRANSFER;
        if o.always_checksum {
            iflags |= it::REPORT_CHANGE;
        }
        let basis_type = basis
            .as_ref()
            .map_or(crate::protocol::ndx::basis::FNAME, |b| b.2);
        if basis_type != crate::protocol::ndx::basis::FNAME {
            iflags |= it::BASIS_TYPE_FOLLOWS;
        }
        // A fuzzy basis is named (its name in its directory) for the receiver to open.
        let xname = basis
            .as_ref()
            .filter(|b| b.2 >= crate::protocol::ndx::basis::FUZZY)
            .map(|b| b.0.file_name().to_vec());
        if xname.is_some() {
            iflags |= it::XNAME_FOLLOWS;
        }
        let iflags = self.item_flags(e, meta, iflags);
        // Compared with what the basis holds (nothing for a new file).
        let xattr_local = match (&basis, meta) {
            (Some((bp, _, _)), Some(_)) => Some(bp.clone()),
            (None, Some(_)) => sh.dest.path_of(&e.name).ok(),
            _ => None,
        };
        let (xattrs_differ, xattr_todo) = sh.xattr_item(e.xattrs.as_ref(), xattr_local.as_ref());
        let iflags = if xattrs_differ {
            iflags | it::REPORT_XATTR
        } else {
            iflags
        };
        // A file about to change is no later file's fuzzy basis (upstream marks it as it
        // opens the basis: not in a dry run, nor for a whole-file transfer).
        if o.fuzzy > 0 && !o.dry_run && o.whole_file != Some(true) {
            self.fuzzy.mark_sent(e);
        }
        let whole = o.whole_file == Some(true) || basis.is_none();
        let sums = if whole || o.dry_run {
            None
        } else if let Some((bpath, bmeta, _)) = &basis {
            self.block_sums(bpath, bmeta, redo)
        } else {
            None
        };
        let mut out = Vec::with_capacity(64);
        self.ndx.encode(ndx, &mut out);
        if sh.wire.protocol >= 29 {
            put_shortint(&mut out, (iflags & 0xffff) as u16);
            if iflags & it::BASIS_TYPE_FOLLOWS != 0 {
                out.push(basis_type);
            }
            if let Some(x) = &xname {
                crate::protocol::codec::put_vstring(&mut out, x)
                    .map_err(|e| RecvError::fatal(e.to_string(), ExitCode::PROTOCOL))?;
            }
            sh.put_xattr_request(iflags, &xattr_todo, &mut out);
        }
        match &sums {
            // A dry run sends no sums: the sender only echoes the item.
            // Upstream: generator.c, recv_generator() (`!do_xfers`).
            _ if o.dry_run => {}
            // --append sends only the head: the sender skips what it covers.
            // Upstream: generator.c, generate_and_send_sums().
            Some(s) if o.append_mode > 0 && !redo => {
                encode_sum_head(&mut out, &s.head, sh.wire.protocol);
            }
            Some(s) => {
                encode_sum_head(&mut out, &s.head, sh.wire.protocol);
                encode_block_sums(&mut out, s);
            }
            None => encode_sum_head(&mut out, &SumHead::default(), sh.wire.protocol),
        }
        // A dry run's items come back without data (the receiver takes nothing).
        if !o.dry_run {
            sh.note_request(ndx);
        }
        lock(&sh.writer).data(&out).map_err(write_err)?;
        self.log_item(e, iflags, None);
        // A dry run receives nothing, so a hard-link group is complete at once.
        // Upstream: recv_generator(), finish_hard_link() when `!do_xfers`.
        if o.dry_run {
            self.finish_hlink(ndx, true)?;
        }
        Ok(())
    }

    /// Block sums of the basis, or `None` to send the file whole when it cannot be read.
    fn block_sums(
        &self,
        path: &RelPath,
        meta: &Meta,
        redo: bool,
    ) -> Option<crate::protocol::sums::BlockSums> {
        let sh = self.sh;
        if meta.size == 0 {
            return None;
        }
        let head = sum_sizes(
            meta.size as i64,
            sh.wire.protocol,
            sh.opts.block_size,
            self.sh.sums.xfer.digest_len(),
            redo,
        )?;
        let file = match sh.tree.open_read(path) {
            Ok(f) => f,
            Err(err) => {
                let what = format!("failed to open {}, continuing", sh.quoted(path));
                sh.error_note(&crate::engine::exit::syserr(
                    "generator",
                    &what,
                    err.raw_os_error(),
                    &err,
                ));
                return None;
            }
        };
        let mut reader = BufReader::with_capacity(256 * 1024, file);
        compute_block_sums(&head, &self.sh.sums.xfer, |block| {
            read_or_zero(&mut reader, block)
        })
        .ok()
    }

    /// The item flags for an entry compared with what is at the destination.
    /// Upstream: generator.c, itemize() (the flag computation).
    pub(super) fn item_flags(&self, e: &FileEntry, meta: Option<Meta>, mut iflags: u32) -> u32 {
        let sh = self.sh;
        let o = &sh.opts;
        let Some(m) = meta else {
            return iflags | it::IS_NEW;
        };
        let keep_time = if !o.preserve_mtimes {
            false
        } else if e.is_dir() {
            !o.omit_dir_times
        } else if mode::is_lnk(e.mode) {
            !o.omit_link_times
        } else {
            true
        };
        if mode::is_reg(e.mode) && m.size != e.size.max(0) as u64 {
            iflags |= it::REPORT_SIZE;
        }
        let time_differs = mtime_differs(&m, e, o.modify_window.unwrap_or(0));
        if (keep_time && time_differs)
            || (!keep_time
                && iflags & (it::TRANSFER | it::LOCAL_CHANGE) != 0
                && iflags & it::XNAME_FOLLOWS == 0)
        {
            iflags |= it::REPORT_TIME;
        }
        if !mode::is_lnk(e.mode) {
            if o.preserve_perms {
                if m.mode & CHMOD_BITS != e.mode & CHMOD_BITS {
                    iflags |= it::REPORT_PERMS;
                }
            } else if o.preserve_executability && ((m.mode & 0o111 != 0) != (e.mode & 0o111 != 0)) {
                iflags |= it::REPORT_PERMS;
            }
        }
        if o.preserve_uid
            && (sh.policy.am_root || sh.policy.fake_super)
            && e.uid.is_some_and(|u| u != m.uid)
        {
            iflags |= it::REPORT_OWNER;
        }
        if o.preserve_gid && e.gid.is_some_and(|g| g != m.gid && sh.may_set_group(g)) {
            iflags |= it::REPORT_GROUP;
        }
        // -A: the received ACLs compared with the destination's (upstream: itemize() →
        // set_acl() with no name), or as found before the attributes were set.
        let acl = match self.acl_seen.take() {
            Some(seen) => seen,
            None => self.acls_differ(e, &m),
        };
        if acl {
            iflags |= it::REPORT_ACL;
        }
        iflags
    }

    /// Whether the received ACLs differ from those of the destination entry `m`, against
    /// the mode the entry is getting. Upstream: generator.c, acls_differ().
    fn acls_differ(&self, e: &FileEntry, m: &Meta) -> bool {
        let sh = self.sh;
        if !sh.acls_on() || mode::is_lnk(e.mode) {
            return false;
        }
        let (Some(acls), Ok(p)) = (&e.acls, sh.dest.path_of(&e.name)) else {
            return false;
        };
        let new_mode = want_attrs(sh, e).mode.unwrap_or(m.mode) | (m.mode & !CHMOD_BITS);
        sh.tree.acls_differ(&p, m.mode, new_mode, acls)
    }

    /// Sends a non-transfer item record when it is significant, and logs it.
    /// Upstream: generator.c, itemize() (the output).
    pub(super) fn itemize(
        &mut self,
        e: &FileEntry,
        ndx: i32,
        meta: Option<Meta>,
        base: u32,
        xname: Option<&[u8]>,
    ) -> Result<(), RecvError> {
        let sh = self.sh;
        let mut iflags = self.item_flags(e, meta, base) & 0xffff;
        let xattr_local = meta.and_then(|_| sh.dest.path_of(&e.name).ok());
        let (xattrs_differ, xattr_todo) = sh.xattr_item(e.xattrs.as_ref(), xattr_local.as_ref());
        if xattrs_differ {
            iflags |= it::REPORT_XATTR;
        }
        let xname_nonempty = xname.is_some_and(|x| !x.is_empty());
        let wanted = is_significant(iflags)
            || iflags & it::REPORT_XATTR != 0
            || sh.opts.itemizing() > 1
            || xname_nonempty;
        if !wanted {
            return Ok(());
        }
        if sh.wire.protocol >= 29 {
            let mut out = Vec::with_capacity(16);
            self.ndx.encode(ndx, &mut out);
            put_shortint(&mut out, iflags as u16);
            if iflags & it::XNAME_FOLLOWS != 0 {
                let x = xname.unwrap_or(&[]);
                crate::protocol::codec::put_vstring(&mut out, x)
                    .map_err(|e| RecvError::fatal(e.to_string(), ExitCode::PROTOCOL))?;
            }
            sh.put_xattr_request(iflags, &xattr_todo, &mut out);
            lock(&sh.writer).data(&out).map_err(write_err)?;
        }
        self.log_item(e, iflags, xname);
        Ok(())
    }

    /// The transfer-log line for an item, when `transfer logging` is on.
    pub(super) fn log_item(&self, e: &FileEntry, iflags: u32, hlink: Option<&[u8]>) {
        let sh = self.sh;
        let Some(fmt) = &sh.policy.transfer_log_format else {
            return;
        };
        // Transferred files are logged by the receiver once they arrive; other items only
        // when the format itemizes (%i), and from protocol 29 on only once the sender has
        // echoed them back (receiver.rs). Upstream: generator.c itemize(), log.c
        // maybe_log_item().
        if iflags & it::TRANSFER != 0 || !fmt.contains("%i") || sh.wire.protocol >= 29 {
            return;
        }
        if !is_significant(iflags) && hlink.is_none_or(<[u8]>::is_empty) {
            return;
        }
        super::translog::line(
            sh,
            fmt,
            e,
            &super::translog::Logged {
                iflags,
                hlink,
                ..super::translog::Logged::recv()
            },
        );
    }

    /// Applies an entry's attributes to what is now at `path`. Upstream: rsync.c,
    /// set_file_attrs().
    pub(super) fn set_attrs(
        &self,
        path: &RelPath,
        e: &FileEntry,
        _existing: Option<Meta>,
    ) -> Result<AttrChanges, TreeError> {
        self.sh
            .tree
            .set_attrs(AttrTarget::Path(path), &want_attrs(self.sh, e))
    }

    /// Applies the attributes of an entry kept as it is, before its item, as upstream
    /// does; answers the entry as its item compares it. With `-A` that is upstream's
    /// accident: the ACL column tells what the ACLs were before (they are read first,
    /// into [`Generator::acl_seen`]), the permission column compares the mode an ACL
    /// write left (upstream's set_acl() updates its stat, its chmod does not). A failure
    /// to set the ACLs is reported as upstream's set_acl() reports it; the other steps'
    /// failures are left to the final pass and the next run, as before ACLs.
    /// Upstream: generator.c, recv_generator() → set_file_attrs(), then itemize().
    fn set_attrs_of_kept(&self, path: &RelPath, e: &FileEntry, m: Meta) -> Meta {
        if self.sh.acls_on() {
            self.acl_seen.set(Some(self.acls_differ(e, &m)));
        }
        match self.set_attrs(path, e, Some(m)) {
            Ok(changes) => Meta {
                mode: changes.mode_after_acl.unwrap_or(m.mode),
                ..m
            },
            Err(err) => {
                if err.op().is_some_and(|op| op.contains("acl")) {
                    self.sh.attr_error("generator", path, &err);
                }
                m
            }
        }
    }

    /// `--partial-dir`: an earlier partial file to use as the basis.
    fn partial_basis(&self, path: &RelPath) -> Result<Option<(RelPath, Meta)>, RecvError> {
        let Some(pp) = self.partial_path(path) else {
            return Ok(None);
        };
        match self.sh.tree.lstat(&pp) {
            Ok(Some(m)) if m.kind == FileKind::Regular => Ok(Some((pp, m))),
            _ => Ok(None),
        }
    }

    fn partial_path(&self, path: &RelPath) -> Option<RelPath> {
        partial_dir_path(self.sh, path)
    }

    fn hlink_not_first(&self, ndx: i32) -> bool {
        self.hlinks.nodes.get(&ndx).is_some_and(|n| !n.first)
    }

    fn hlink_not_last(&self, ndx: i32) -> bool {
        self.hlinks.nodes.get(&ndx).is_some_and(|n| !n.last)
    }

    fn defer_hlink(&mut self, _list: &FileList, ndx: i32) {
        if self.sh.wire.inc_recurse
            && let Some(ls) = self.lists.iter_mut().find(|l| l.list.contains(ndx))
        {
            ls.in_progress += 1;
        }
    }

    fn hlink_skipped(&mut self, _ndx: i32) -> Result<(), RecvError> {
        Ok(())
    }

    /// A hard-link member that is not its group's first: link it to a finished earlier
    /// member, or wait for the one being transferred. Returns whether it was handled.
    /// Upstream: hlink.c, hard_link_check().
    fn hard_link_check(
        &mut self,
        e: &FileEntry,
        ndx: i32,
        found: &Found,
    ) -> Result<bool, RecvError> {
        let Some(node) = self.hlinks.nodes.get(&ndx).cloned() else {
            return Ok(false);
        };
        let leader_path = match node
            .prev
            .and_then(|p| self.hlinks.nodes.get(&p).cloned().map(|n| (p, n)))
        {
            Some((p, prev)) if prev.done => self.entry_path(p),
            Some((p, prev)) if prev.sent => {
                // Wait for the transfer in progress; we are linked when it finishes.
                if let Some(n) = self.hlinks.node(ndx) {
                    n.sent = true;
                    n.prev = prev.prev;
                }
                if let Some(pn) = self.hlinks.node(p) {
                    pn.prev = Some(ndx);
                }
                if self.sh.wire.inc_recurse
                    && let Some(ls) = self.lists.iter_mut().find(|l| l.list.contains(ndx))
                {
                    ls.in_progress += 1;
                }
                return Ok(true);
            }
            Some(_) => return Ok(false),
            None => self.hlinks.done_groups.get(&node.group).cloned(),
        };
        let Some(leader) = leader_path else {
            return Ok(false);
        };
        self.link_to(e, ndx, &found.path, found.meta, &leader)?;
        Ok(true)
    }

    /// Creates (or confirms) a hard link from `path` to `leader`, and itemizes it.
    /// Upstream: hlink.c, maybe_hard_link().
    fn link_to(
        &mut self,
        e: &FileEntry,
        ndx: i32,
        path: &RelPath,
        meta: Option<Meta>,
        leader: &RelPath,
    ) -> Result<(), RecvError> {
        let sh = self.sh;
        let leader_meta = sh.tree.lstat(leader).ok().flatten();
        // A dry run made no leader; the link is only reported.
        if leader_meta.is_none() && !sh.opts.dry_run {
            sh.error(&format!(
                "rsync: stat \"{}\" failed",
                show(leader.as_bytes())
            ));
            return Ok(());
        }
        let xname = leader_name(&sh.dest, leader);
        if let Some(m) = meta
            && let Some(lm) = leader_meta
            && m.dev == lm.dev
            && m.ino == lm.ino
        {
            self.itemize(
                e,
                ndx,
                Some(m),
                it::LOCAL_CHANGE | it::XNAME_FOLLOWS,
                Some(b""),
            )?;
            if let Some(n) = self.hlinks.node(ndx) {
                n.done = true;
            }
            return Ok(());
        }
        let leader_clone = leader.clone();
        match self.replace_with(path, &e.name, meta, "regular file", move |tree, tmp| {
            tree.hard_link(&leader_clone, tmp)
        }) {
            Ok(false) => {}
            Ok(true) => {
                self.itemize(
                    e,
                    ndx,
                    meta,
                    it::LOCAL_CHANGE | it::XNAME_FOLLOWS,
                    Some(&xname),
                )?;
                if let Some(to) = sh.name_lines() {
                    sh.say(to, &format!("{} => {}", show(&e.name), show(&xname)));
                }
                if let Some(n) = self.hlinks.node(ndx) {
                    n.done = true;
                }
            }
            Err(err) => {
                let what = format!("link {} => {} failed", sh.quoted(path), show(&xname));
                sh.sys_error("generator", &what, &err);
            }
        }
        Ok(())
    }

    /// The path of an entry by index in a live list.
    fn entry_path(&self, ndx: i32) -> Option<RelPath> {
        let l = self.lists.iter().find(|l| l.list.contains(ndx))?;
        let e = l.list.get(ndx)?;
        self.sh.dest.path_of(&e.name).ok()
    }

    /// A group member is in place (transferred, or already up to date): link the members
    /// that waited for it. Upstream: hlink.c, finish_hard_link().
    pub(super) fn hlink_leader_ready(
        &mut self,
        e: &FileEntry,
        ndx: i32,
        path: &RelPath,
    ) -> Result<(), RecvError> {
        let Some(node) = self.hlinks.nodes.get(&ndx).cloned() else {
            return Ok(());
        };
        let _ = e;
        if let Some(n) = self.hlinks.node(ndx) {
            n.done = true;
            n.first = true;
        }
        let mut prev = node.prev;
        while let Some(p) = prev {
            let Some(pn) = self.hlinks.nodes.get(&p).cloned() else {
                break;
            };
            prev = pn.prev;
            let Some(list) = self
                .lists
                .iter()
                .find(|l| l.list.contains(p))
                .map(|l| l.list.clone())
            else {
                continue;
            };
            let Some(pe) = list.get(p).cloned() else {
                continue;
            };
            let Ok(ppath) = self.sh.dest.path_of(&pe.name) else {
                continue;
            };
            let pmeta = self.sh.tree.lstat(&ppath).ok().flatten();
            self.link_to(&pe, p, &ppath, pmeta, path)?;
            if let Some(n) = self.hlinks.node(p) {
                n.prev = Some(ndx);
            }
            // Every member in the chain was counted when it was deferred or set waiting.
            if self.sh.wire.inc_recurse
                && let Some(ls) = self.lists.iter_mut().find(|l| l.list.contains(p))
            {
                ls.in_progress = ls.in_progress.saturating_sub(1);
            }
        }
        self.hlinks.done_groups.insert(node.group, path.clone());
        Ok(())
    }

    /// After the receiver reported on a hard-linked file.
    pub(super) fn finish_hlink(&mut self, ndx: i32, received: bool) -> Result<(), RecvError> {
        let Some(list) = self
            .lists
            .iter()
            .find(|l| l.list.contains(ndx))
            .map(|l| l.list.clone())
        else {
            return Ok(());
        };
        let Some(e) = list.get(ndx).cloned() else {
            return Ok(());
        };
        if !received {
            return Ok(());
        }
        let Ok(path) = self.sh.dest.path_of(&e.name) else {
            return Ok(());
        };
        self.hlink_leader_ready(&e, ndx, &path)
    }
}

/// The attributes an entry should end up with.
pub(super) fn want_attrs(sh: &Shared, e: &FileEntry) -> WantAttrs {
    let o = &sh.opts;
    let owner_ok = sh.policy.am_root || sh.policy.fake_super;
    let mut m = e.mode;
    if let Some(chmod) = &sh.policy.incoming_chmod
        && !mode::is_lnk(m)
    {
        m = chmod.apply(m);
    }
    let keep_time = if !o.preserve_mtimes {
        false
    } else if e.is_dir() {
        !o.omit_dir_times
    } else if mode::is_lnk(e.mode) {
        // Upstream tests the entry on disk, and a fake-super symlink is a regular file.
        !o.omit_link_times || sh.policy.fake_super
    } else {
        true
    };
    WantAttrs {
        // A symlink's own permissions can only be recorded (fake super).
        mode: (!mode::is_lnk(m) || sh.policy.fake_super).then_some(m & CHMOD_BITS),
        uid: if o.preserve_uid && owner_ok {
            e.uid
        } else {
            None
        },
        gid: if o.preserve_gid {
            e.gid.filter(|&g| sh.may_set_group(g))
        } else {
            None
        },
        mtime: keep_time.then_some((e.mtime, e.mtime_nsec)),
        atime: if o.preserve_atimes > 0 && !e.is_dir() {
            e.atime.map(|a| (a, 0))
        } else {
            None
        },
        rdev: if sh.policy.fake_super && mode::is_device(e.mode) {
            e.rdev
                .map(|(a, b)| nix::sys::stat::makedev(u64::from(a), u64::from(b)))
        } else {
            None
        },
        // -A: a symlink has none (its entry carries no ACL blocks).
        acls: if sh.acls_on() && !mode::is_lnk(e.mode) {
            e.acls.clone()
        } else {
            None
        },
    }
}

/// Whether an entry's mtime differs from the destination's (seconds, nanoseconds when
/// both sides have them, and `--modify-window`). Upstream: util1.c, same_time().
pub(super) fn mtime_differs(m: &Meta, e: &FileEntry, window: i32) -> bool {
    if window > 0 {
        return (m.mtime - e.mtime).abs() > i64::from(window);
    }
    if m.mtime != e.mtime {
        return true;
    }
    // Nanoseconds count only when the sender sent them (protocol 31+).
    e.mtime_nsec != 0 && m.mtime_nsec != e.mtime_nsec
}

/// `--partial-dir` location of a file: `DIR/NAME` in the file's directory (relative
/// `--partial-dir`), as upstream's partial_dir_fname().
pub(super) fn partial_dir_path(sh: &Shared, path: &RelPath) -> Option<RelPath> {
    let dir = sh.opts.partial_dir.as_deref()?;
    // An absolute one holds every partial file; a relative one sits in each file's
    // directory. (A daemon has made an absolute one relative, as upstream sanitizes it.)
    let mut p = match dir.strip_prefix('/') {
        Some(_) => RelPath::root(),
        None => path.parent().unwrap_or_else(RelPath::root),
    };
    for part in dir.split('/').filter(|s| !s.is_empty() && *s != ".") {
        p = p.join(part.as_bytes()).ok()?;
    }
    // An operator path: symlinks in it are followed while they stay in the module.
    let p = sh.tree.resolve(&p).unwrap_or(p);
    p.join(path.file_name()).ok()
}

/// The `--checksum` sum of an existing file.
fn file_checksum(
    tree: &crate::engine::tree::Tree,
    path: &RelPath,
    spec: &crate::protocol::checksum::ChecksumSpec,
) -> Option<Vec<u8>> {
    use std::io::Read;
    let mut f = tree.open_read(path).ok()?;
    let mut sum = crate::protocol::checksum::FileSum::new(spec);
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = f.read(&mut buf).ok()?;
        if n == 0 {
            break;
        }
        sum.update(&buf[..n]);
    }
    Some(sum.finish().to_vec())
}

/// A symlink that leads outside the transfer (`--safe-links`). Upstream: util1.c,
/// unsafe_symlink().
pub(super) fn is_unsafe_symlink(target: &[u8], name: &[u8]) -> bool {
    if target.is_empty() || target.starts_with(b"/") {
        return true;
    }
    let mut depth: i64 = name.iter().filter(|&&b| b == b'/').count() as i64;
    for part in target.split(|&b| b == b'/') {
        match part {
            b".." => {
                depth -= 1;
                if depth < 0 {
                    return true;
                }
            }
            b"" | b"." => {}
            _ => depth += 1,
        }
    }
    false
}

/// A fresh temporary name beside `path` (for entries created then renamed into place).
fn temp_sibling(path: &RelPath) -> Result<RelPath, TreeError> {
    let random = crate::engine::tree::random_suffix().map_err(|e| TreeError::Io {
        op: "getrandom",
        path: path.to_string(),
        source: e,
    })?;
    let name = crate::engine::tree::temp_name(path.file_name(), &random);
    path.parent().unwrap_or_else(RelPath::root).join(&name)
}

/// `--keep-dirlinks`: the directory a symlink at `path` leads to, when it stays beneath
/// the root (a relative target resolved against the link's directory).
fn follow_dirlink(tree: &crate::engine::tree::Tree, path: &RelPath) -> Option<Meta> {
    if tree.options().insecure_links {
        // The module's `insecure links`: wherever the link leads.
        return tree
            .stat_target(path)
            .ok()
            .flatten()
            .filter(|m| m.kind == FileKind::Dir);
    }
    let target = tree.read_link(path).ok()?;
    if target.starts_with(b"/") {
        return None;
    }
    let mut parts: Vec<Vec<u8>> = path
        .parent()
        .map(|p| p.components().map(<[u8]>::to_vec).collect())
        .unwrap_or_default();
    for c in target.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                parts.pop()?;
            }
            c => parts.push(c.to_vec()),
        }
    }
    let p = if parts.is_empty() {
        RelPath::root()
    } else {
        RelPath::parse(&parts.join(&b'/')).ok()?
    };
    tree.lstat(&p)
        .ok()
        .flatten()
        .filter(|m| m.kind == FileKind::Dir)
}

/// Whether `name` is `dir` or inside it.
fn is_below(name: &[u8], dir: &[u8]) -> bool {
    dir == b"." || name == dir || (name.starts_with(dir) && name.get(dir.len()) == Some(&b'/'))
}

/// How a leader's path is named in an `hf` line: relative to the destination root.
fn leader_name(dest: &super::Destination, leader: &RelPath) -> Vec<u8> {
    let root = dest.root.as_bytes();
    let l = leader.as_bytes();
    if dest.root.is_root() {
        return l.to_vec();
    }
    l.strip_prefix(root)
        .and_then(|r| r.strip_prefix(b"/"))
        .map_or_else(|| l.to_vec(), <[u8]>::to_vec)
}

pub(super) fn show(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The itemize context of the receiving side.
pub(super) fn item_ctx(sh: &Shared) -> ItemizeCtx {
    ItemizeCtx {
        sending: false,
        preserve_mtimes: sh.opts.preserve_mtimes,
        symlink_times: true,
    }
}

/// One line of a --list-only listing: permissions, size, time, name, link target.
/// Upstream: generator.c, list_file_entry().
fn list_line(e: &FileEntry, o: &crate::protocol::options::Options) -> String {
    use crate::engine::logfmt::{human_num, perm_string, time_string};
    let width = if o.human_readable > 0 { 14 } else { 11 };
    let kind = match e.mode & mode::S_IFMT {
        m if m == mode::S_IFDIR => 'd',
        m if m == mode::S_IFLNK => 'l',
        m if m == mode::S_IFCHR => 'c',
        m if m == mode::S_IFBLK => 'b',
        m if m == mode::S_IFIFO => 'p',
        m if m == mode::S_IFSOCK => 's',
        _ => '-',
    };
    if o.missing_args == 2 && e.mode == 0 {
        let blank = 10 + 1 + width + 1 + time_string(0).len();
        return format!("{:<blank$} {}", "*missing", show(&e.name));
    }
    let link = match (&e.link_target, mode::is_lnk(e.mode) && o.preserve_links) {
        (Some(t), true) => format!(" -> {}", show(t)),
        _ => String::new(),
    };
    format!(
        "{kind}{} {:>width$} {} {}{link}",
        perm_string(e.mode),
        human_num(e.size, o.human_readable),
        time_string(e.mtime),
        show(&e.name),
    )
}

/// Fills `buf` from `data`, zero-filling whatever is left when the data ends early, as
/// upstream's map_ptr() pads a basis that shrank while its sums were made.
fn read_or_zero(data: &mut impl std::io::Read, buf: &mut [u8]) -> std::io::Result<()> {
    let mut filled = 0;
    while filled < buf.len() {
        match data.read(&mut buf[filled..]) {
            Ok(0) => {
                buf[filled..].fill(0);
                break;
            }
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
