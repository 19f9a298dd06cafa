//! The sender's file lists: the arguments turned into entries, directories scanned through
//! the confined tree, each list sorted and sent, and with incremental recursion the
//! sub-lists of the directory tree sent ahead of the receiver's requests.
//! Upstream: flist.c send_file_list(), send_directory(), send_extra_file_list(),
//! add_dirs_to_tree(), make_file(); uidlist.c send_id_lists().

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use super::Core;
use crate::engine::error::EngineError;
use crate::engine::exit::ExitCode;
use crate::engine::filter::FilterSet;
use crate::engine::tree::{Meta, RelPath};
use crate::protocol::codec::put_int;
use crate::protocol::flist::{
    FileEntry, FlistEncoder, HardLink, compare_names, encode_id_list, mode, xmit,
};
use crate::protocol::ndx::{NDX_FLIST_EOF, NDX_FLIST_OFFSET};

/// Sub-lists are sent until this many files wait ahead of the receiver.
/// Upstream: rsync.h, MIN_FILECNT_LOOKAHEAD.
pub(super) const LOOKAHEAD: usize = 1000;

/// The io_error bit for a file that vanished, and for any other error.
pub(super) const IOERR_GENERAL: i32 = 1;
pub(super) const IOERR_VANISHED: i32 = 2;

/// The prefix a `munge symlinks` module stores before every symlink target.
const MUNGE_PREFIX: &[u8] = b"/rsyncd-munged/";

/// One entry as the sender keeps it: what went on the wire, and where it is on disk.
#[derive(Debug, Clone)]
pub(super) struct Item {
    pub e: FileEntry,
    /// Index into [`Lister::roots`]: the transfer root `e.name` is relative to.
    pub root: u32,
    /// A directory whose contents are part of the transfer (FLAG_CONTENT_DIR).
    pub content_dir: bool,
}

/// One sent list; its indexes are `ndx_start + position`.
#[derive(Debug)]
pub(super) struct SendList {
    pub ndx_start: i32,
    pub items: Vec<Item>,
    /// The directory this list holds the contents of (an index into the directory list;
    /// for the first list, its `.`).
    pub parent: Option<usize>,
}

impl SendList {
    pub fn get(&self, ndx: i32) -> Option<&Item> {
        let i = usize::try_from(ndx.checked_sub(self.ndx_start)?).ok()?;
        self.items.get(i)
    }
}

/// A directory of the incremental tree (upstream's dir_flist with its DIR_* links).
#[derive(Debug, Clone)]
struct DirNode {
    item: Item,
    parent: Option<usize>,
    first_child: Option<usize>,
    next_sibling: Option<usize>,
}

/// Builds and sends the lists of one session.
pub(super) struct Lister {
    enc: FlistEncoder,
    /// Transfer roots relative to the module root, one per distinct argument directory.
    pub roots: Vec<Vec<u8>>,
    /// The filter set of each root (daemon rules are anchored at the root's path).
    filters: Vec<FilterSet>,
    /// The daemon's rules alone, rooted at the module (for argument paths).
    daemon: Option<FilterSet>,
    /// The lists sent and not yet finished by the receiver, oldest first.
    pub lists: std::collections::VecDeque<Arc<SendList>>,
    dirs: Vec<DirNode>,
    next_dir: Option<usize>,
    /// No more lists follow.
    pub eof: bool,
    next_ndx: i32,
    /// Files in lists sent / in lists the receiver finished (upstream's file_total and
    /// file_old_total).
    pub file_total: usize,
    pub file_old_total: usize,
    /// The io_error bits so far.
    pub io_error: i32,
    /// The first index of each (dev, ino) seen, for hard links.
    hlinks: HashMap<(u64, u64), i32>,
    /// Ids met, with their names, for the id lists (non-incremental).
    uids: BTreeMap<u32, Option<Vec<u8>>>,
    gids: BTreeMap<u32, Option<Vec<u8>>>,
    /// Ids whose names already rode inline (incremental).
    sent_uids: HashSet<u32>,
    sent_gids: HashSet<u32>,
    /// Sum of the sizes of regular files and symlinks listed (the `total size` statistic).
    pub total_size: u64,
    /// Bytes of list data written.
    pub list_bytes: u64,
}

/// What the sender sends of an argument (upstream's name_type).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NameType {
    Normal,
    DotDir,
}

impl Lister {
    pub fn new(core: &Core) -> Lister {
        let inc = core.cfg.inc_recurse;
        Lister {
            enc: FlistEncoder::new(core.cfg.clone()),
            roots: Vec::new(),
            filters: Vec::new(),
            daemon: None,
            lists: std::collections::VecDeque::new(),
            dirs: Vec::new(),
            next_dir: None,
            eof: false,
            next_ndx: if inc { 1 } else { 0 },
            file_total: 0,
            file_old_total: 0,
            io_error: 0,
            hlinks: HashMap::new(),
            uids: BTreeMap::new(),
            gids: BTreeMap::new(),
            sent_uids: HashSet::new(),
            sent_gids: HashSet::new(),
            total_size: 0,
            list_bytes: 0,
        }
    }

    /// The list holding `ndx`, and the entry (a list's own directory answers for the index
    /// just before its first).
    pub fn find(&self, ndx: i32) -> Option<(&Arc<SendList>, &Item)> {
        for l in &self.lists {
            if ndx >= l.ndx_start && ndx < l.ndx_start + l.items.len() as i32 {
                return l.get(ndx).map(|i| (l, i));
            }
            if ndx == l.ndx_start - 1
                && let Some(d) = l.parent
            {
                return self.dirs.get(d).map(|n| (l, &n.item));
            }
        }
        None
    }

    /// The receiver finished the oldest list.
    pub fn finish_first(&mut self) {
        if let Some(l) = self.lists.pop_front() {
            self.file_old_total += l.items.len();
        }
    }

    /// The path of an entry from the module root.
    pub fn disk_path(&self, it: &Item) -> Result<RelPath, EngineError> {
        let root = self
            .roots
            .get(it.root as usize)
            .map_or(&[][..], Vec::as_slice);
        let name: &[u8] = if it.e.name == b"." { b"" } else { &it.e.name };
        let mut full = root.to_vec();
        if !full.is_empty() && !name.is_empty() {
            full.push(b'/');
        }
        full.extend_from_slice(name);
        if full.is_empty() {
            return Ok(RelPath::root());
        }
        RelPath::parse(&full).map_err(|e| {
            EngineError::fatal(format!("bad path in file list: {e}"), ExitCode::FILESELECT)
                .at("sender.c", 250, "sender")
        })
    }

    /// Builds and sends the first list from the path arguments (after `.`).
    /// Upstream: flist.c, send_file_list().
    pub fn send_first(&mut self, core: &Core, args: &[Vec<u8>]) -> Result<(), EngineError> {
        let o = &core.opts;
        let mut items: Vec<Item> = Vec::new();
        let mut args: Vec<Vec<u8>> = args.to_vec();
        if args.is_empty() && (o.recurse || o.xfer_dirs || o.list_only) {
            args.push(b".".to_vec());
        }
        for arg in &args {
            self.add_arg(core, arg, &mut items)?;
        }
        let mut out = Vec::new();
        let list = self.finish_list(core, items, None, &mut out)?;
        if !core.cfg.inc_recurse && core.cfg.protocol >= 0 {
            self.append_id_lists(core, &mut out)?;
        }
        if core.wire.protocol < 30 {
            put_int(
                &mut out,
                if core.opts.ignore_errors {
                    0
                } else {
                    self.io_error
                },
            );
        }
        self.file_old_total = 0;
        let used = list.items.len();
        core.data(&out)?;
        if core.cfg.inc_recurse {
            self.add_dirs(&list, None);
            if self.next_dir.is_none() {
                self.write_eof(core)?;
            } else if used == 1 {
                // A one-entry first list is followed by one more list at once, so the
                // receiver can tell a one-file transfer. Upstream: send_file_list().
                self.send_extra(core, 1)?;
            }
        } else {
            self.eof = true;
        }
        Ok(())
    }

    fn write_eof(&mut self, core: &Core) -> Result<(), EngineError> {
        let mut out = Vec::new();
        core.put_ndx(NDX_FLIST_EOF, &mut out);
        core.data(&out)?;
        self.eof = true;
        Ok(())
    }

    /// Sends sub-lists until `at_least` files wait ahead of the receiver, or none are left.
    /// Upstream: flist.c, send_extra_file_list().
    pub fn send_extra(&mut self, core: &Core, at_least: usize) -> Result<(), EngineError> {
        while !self.eof && self.file_total - self.file_old_total < at_least {
            let Some(d) = self.next_dir else {
                return self.write_eof(core);
            };
            let dir = self.dirs[d].item.clone();
            let mut items = Vec::new();
            if dir.content_dir {
                let name = dir.e.name.clone();
                self.scan_dir(core, dir.root, &name, &mut items, true)?;
            }
            let mut out = Vec::new();
            core.put_ndx(NDX_FLIST_OFFSET - d as i32, &mut out);
            let list = self.finish_list(core, items, Some(d), &mut out)?;
            core.data(&out)?;
            self.add_dirs(&list, Some(d));
            // Depth first: the first child, else the next sibling of this directory or
            // of the nearest ancestor that has one.
            self.next_dir = match self.dirs[d].first_child {
                Some(c) => Some(c),
                None => {
                    let mut at = d;
                    loop {
                        if let Some(s) = self.dirs[at].next_sibling {
                            break Some(s);
                        }
                        match self.dirs[at].parent {
                            Some(p) => at = p,
                            None => break None,
                        }
                    }
                }
            };
            if self.next_dir.is_none() {
                self.write_eof(core)?;
            }
        }
        Ok(())
    }

    /// Appends a sorted list's directories to the directory tree under `parent`.
    /// Upstream: flist.c, add_dirs_to_tree().
    fn add_dirs(&mut self, list: &SendList, parent: Option<usize>) {
        let mut prev: Option<usize> = None;
        for it in list.items.iter().filter(|i| i.e.is_dir()) {
            let at = self.dirs.len();
            self.dirs.push(DirNode {
                item: it.clone(),
                parent,
                first_child: None,
                next_sibling: None,
            });
            if it.e.name == b"." {
                continue;
            }
            match (prev, parent) {
                (Some(p), _) => self.dirs[p].next_sibling = Some(at),
                (None, Some(par)) => self.dirs[par].first_child = Some(at),
                (None, None) => self.next_dir = Some(at),
            }
            prev = Some(at);
        }
    }

    /// Sorts `items`, numbers them, encodes them into `out` and keeps the list.
    fn finish_list(
        &mut self,
        core: &Core,
        mut items: Vec<Item>,
        parent: Option<usize>,
        out: &mut Vec<u8>,
    ) -> Result<Arc<SendList>, EngineError> {
        let protocol = core.wire.protocol;
        items.sort_by(|a, b| {
            compare_names(&a.e.name, a.e.is_dir(), &b.e.name, b.e.is_dir(), protocol)
        });
        let ndx_start = self.next_ndx;
        let start_len = out.len();
        for (i, it) in items.iter_mut().enumerate() {
            self.link_hard(core, it, ndx_start + i as i32);
            let send_names = core.cfg.inc_recurse && self.note_names(core, &mut it.e);
            if !core.cfg.inc_recurse {
                self.note_ids(core, &it.e);
            }
            self.enc
                .encode(&it.e, ndx_start, send_names, out)
                .map_err(|e| EngineError::fatal(e.to_string(), ExitCode::PROTOCOL))?;
            it.e.user_name = None;
            it.e.group_name = None;
            if mode::is_reg(it.e.mode) || mode::is_lnk(it.e.mode) {
                self.total_size += it.e.size.max(0) as u64;
            }
        }
        let ioe = if self.io_error != 0 && !core.opts.ignore_errors && core.cfg.safe_flist {
            self.io_error
        } else {
            0
        };
        self.enc.end(ioe, out);
        self.list_bytes += (out.len() - start_len) as u64;
        self.next_ndx = ndx_start + items.len() as i32 + i32::from(core.cfg.inc_recurse);
        self.file_total += items.len();
        // The first list's `.` is also directory 0: the index before the list names it.
        let parent = match parent {
            None if core.cfg.inc_recurse && items.first().is_some_and(|i| i.e.name == b".") => {
                Some(self.dirs.len())
            }
            p => p,
        };
        let list = Arc::new(SendList {
            ndx_start,
            items,
            parent,
        });
        self.lists.push_back(list.clone());
        Ok(list)
    }

    /// Hard-link bookkeeping of one entry at index `ndx`. Upstream: flist.c,
    /// send_file_entry() (idev_find).
    fn link_hard(&mut self, core: &Core, it: &mut Item, ndx: i32) {
        let Some(HardLink::DevIno { dev, ino }) = it.e.hard_link.clone() else {
            return;
        };
        if core.wire.protocol < 30 {
            return;
        }
        let key = (dev as u64, ino as u64);
        it.e.hard_link = Some(match self.hlinks.get(&key) {
            Some(&first) => HardLink::Follower(first),
            None => {
                self.hlinks.insert(key, ndx);
                HardLink::First
            }
        });
    }

    /// Inline names (incremental lists): the first entry with an id carries its name.
    fn note_names(&mut self, core: &Core, e: &mut FileEntry) -> bool {
        if core.policy.numeric_ids {
            return false;
        }
        let mut any = false;
        if let Some(uid) = e.uid
            && uid != 0
            && self.sent_uids.insert(uid)
            && let Some(n) = user_name(uid)
        {
            e.user_name = Some(n);
            any = true;
        }
        if let Some(gid) = e.gid
            && gid != 0
            && self.sent_gids.insert(gid)
            && let Some(n) = group_name(gid)
        {
            e.group_name = Some(n);
            any = true;
        }
        any
    }

    fn note_ids(&mut self, core: &Core, e: &FileEntry) {
        if core.policy.numeric_ids {
            return;
        }
        if let Some(uid) = e.uid {
            self.uids.entry(uid).or_insert_with(|| user_name(uid));
        }
        if let Some(gid) = e.gid {
            self.gids.entry(gid).or_insert_with(|| group_name(gid));
        }
    }

    /// The uid and gid lists after a non-incremental list. Upstream: uidlist.c,
    /// send_id_lists().
    fn append_id_lists(&self, core: &Core, out: &mut Vec<u8>) -> Result<(), EngineError> {
        if core.policy.numeric_ids {
            return Ok(());
        }
        let p = core.wire.protocol;
        let named = |m: &BTreeMap<u32, Option<Vec<u8>>>| -> Vec<(u32, Vec<u8>)> {
            m.iter()
                .filter_map(|(id, n)| n.clone().map(|n| (*id, n)))
                .collect()
        };
        let bad =
            |e: crate::protocol::WireError| EngineError::fatal(e.to_string(), ExitCode::PROTOCOL);
        if core.cfg.preserve_uid {
            encode_id_list(out, p, &named(&self.uids), core.cfg.id0_names).map_err(bad)?;
        }
        if core.cfg.preserve_gid {
            encode_id_list(out, p, &named(&self.gids), core.cfg.id0_names).map_err(bad)?;
        }
        Ok(())
    }

    /// One path argument of the first list. Upstream: the loop of send_file_list().
    fn add_arg(
        &mut self,
        core: &Core,
        raw: &[u8],
        items: &mut Vec<Item>,
    ) -> Result<(), EngineError> {
        let o = &core.opts;
        let mut fbuf = sanitize_arg(raw);
        let (dir, mut fname, mut name_type) = if o.relative {
            split_relative(&fbuf)
        } else {
            if fbuf.is_empty() || fbuf.ends_with(b"/") {
                if fbuf == b"./" {
                    fbuf.truncate(1);
                } else {
                    fbuf.push(b'.');
                }
            } else if fbuf == b".." || fbuf.ends_with(b"/..") {
                fbuf.extend_from_slice(b"/.");
            }
            let name_type = if fbuf == b"." || fbuf.ends_with(b"/.") {
                NameType::DotDir
            } else {
                NameType::Normal
            };
            match fbuf.iter().rposition(|&b| b == b'/') {
                Some(i) => (fbuf[..i].to_vec(), fbuf[i + 1..].to_vec(), name_type),
                None => (Vec::new(), fbuf.clone(), name_type),
            }
        };
        if fname.is_empty() {
            fname = b".".to_vec();
            name_type = NameType::DotDir;
        }
        if !dir.is_empty() && self.daemon_excluded(core, &dir, false)? {
            core.error_xfer(&format!(
                "rsync: [sender] change_dir {} failed: No such file or directory (2)",
                core.quoted(&RelPath::parse(&dir).unwrap_or_else(|_| RelPath::root()))
            ));
            return Ok(());
        }
        let root = self.root_index(core, &dir)?;
        let it_name = if name_type == NameType::DotDir && !o.relative {
            b".".to_vec()
        } else {
            fname.clone()
        };
        let probe = Item {
            e: FileEntry {
                name: it_name.clone(),
                ..FileEntry::default()
            },
            root,
            content_dir: false,
        };
        let path = self.disk_path(&probe)?;
        let meta = match self.stat(core, &path) {
            Ok(Some(m)) => m,
            Ok(None) => {
                self.io_error |= IOERR_VANISHED;
                core.error_xfer(&format!(
                    "rsync: [sender] link_stat {} failed: No such file or directory (2)",
                    self.quoted(core, root, &path)
                ));
                return Ok(());
            }
            Err(e) => {
                self.io_error |= IOERR_GENERAL;
                core.error_xfer(&crate::engine::exit::syserr(
                    "sender",
                    &format!("link_stat {} failed", self.quoted(core, root, &path)),
                    e.raw_os_error(),
                    &e,
                ));
                return Ok(());
            }
        };
        let is_dir = mode::is_dir(meta.mode);
        let hidden = (name_type != NameType::DotDir
            && self.filters[root as usize].check_daemon(&it_name, is_dir)
                == Some(crate::engine::filter::Verdict::Excluded))
            || (o.relative && self.daemon_excluded(core, path.as_bytes(), true)?);
        if hidden {
            // What the daemon hides is reported as missing (upstream sets ENOENT).
            core.error_xfer(&format!(
                "rsync: [sender] link_stat {} failed: No such file or directory (2)",
                self.quoted(core, root, &path)
            ));
            return Ok(());
        }
        if name_type != NameType::DotDir
            && self.filters[root as usize].is_excluded(&it_name, is_dir)
        {
            return Ok(());
        }
        if is_dir && !o.xfer_dirs && !o.recurse {
            core.info(&format!("skipping directory {}", show(&it_name)));
            return Ok(());
        }
        if o.relative && o.implied_dirs {
            self.implied_dirs(core, root, &it_name, items)?;
        }
        let whole = o.recurse || (o.xfer_dirs && name_type == NameType::DotDir);
        let mut xflags = 0;
        if whole && is_dir {
            xflags |= xmit::TOP_DIR;
        }
        let Some(item) = self.make_item(core, root, it_name.clone(), &meta, xflags, whole)? else {
            return Ok(());
        };
        let content = item.content_dir;
        items.push(item);
        if is_dir && content {
            let descend = if core.cfg.inc_recurse {
                name_type == NameType::DotDir
            } else {
                true
            };
            if descend {
                let recurse_all = o.recurse && !core.cfg.inc_recurse;
                self.scan_tree(core, root, &it_name, items, recurse_all)?;
            }
        }
        Ok(())
    }

    /// With `-R`, the parents of a path go first as implied directories.
    /// Upstream: flist.c, send_implied_dirs().
    fn implied_dirs(
        &mut self,
        core: &Core,
        root: u32,
        name: &[u8],
        items: &mut Vec<Item>,
    ) -> Result<(), EngineError> {
        let mut at = 0;
        while let Some(i) = name[at..].iter().position(|&b| b == b'/') {
            let part = name[..at + i].to_vec();
            at += i + 1;
            if part == b"." || items.iter().any(|x| x.e.name == part) {
                continue;
            }
            let probe = Item {
                e: FileEntry {
                    name: part.clone(),
                    ..FileEntry::default()
                },
                root,
                content_dir: false,
            };
            let path = self.disk_path(&probe)?;
            let Ok(Some(meta)) = self.stat(core, &path) else {
                continue;
            };
            if !mode::is_dir(meta.mode) {
                continue;
            }
            let xflags = if core.wire.protocol >= 30 {
                xmit::TOP_DIR | xmit::NO_CONTENT_DIR
            } else {
                0
            };
            if let Some(it) = self.make_item(core, root, part, &meta, xflags, false)? {
                items.push(it);
            }
        }
        Ok(())
    }

    /// A name quoted for a message as upstream's full_fname() shows it from the transfer
    /// root `root` (its working directory): `"/root/name" (in module)`.
    pub fn quoted(&self, core: &Core, root: u32, path: &RelPath) -> String {
        let dir = self.roots.get(root as usize).map_or(&[][..], Vec::as_slice);
        let full = path.as_bytes();
        let name = if dir.is_empty() {
            full
        } else {
            full.strip_prefix(dir)
                .map(|r| r.strip_prefix(b"/").unwrap_or(r))
                .unwrap_or(full)
        };
        core.quoted_in(dir, if name.is_empty() { b"." } else { name })
    }

    /// Whether the daemon's rules hide `path` (module-relative): any of its parent
    /// directories, or (unless `ignore_filename`) the path itself as a directory.
    /// Upstream: flist.c, path_is_daemon_excluded().
    fn daemon_excluded(
        &mut self,
        core: &Core,
        path: &[u8],
        ignore_filename: bool,
    ) -> Result<bool, EngineError> {
        if core.policy.daemon_rules.is_empty() {
            return Ok(false);
        }
        if self.daemon.is_none() {
            self.daemon = Some(core.daemon_filters()?);
        }
        let Some(set) = &self.daemon else {
            return Ok(false);
        };
        let excluded =
            |p: &[u8]| set.check_daemon(p, true) == Some(crate::engine::filter::Verdict::Excluded);
        for (i, _) in path.iter().enumerate().skip(1).filter(|(_, b)| **b == b'/') {
            if excluded(&path[..i]) {
                return Ok(true);
            }
        }
        Ok(!ignore_filename && excluded(path))
    }

    fn root_index(&mut self, core: &Core, dir: &[u8]) -> Result<u32, EngineError> {
        if let Some(i) = self.roots.iter().position(|r| r == dir) {
            return Ok(i as u32);
        }
        self.filters.push(core.filters_for(dir)?);
        self.roots.push(dir.to_vec());
        Ok((self.roots.len() - 1) as u32)
    }

    /// `lstat` (or with `-L`, `stat` confined to the module) of a path.
    fn stat(
        &self,
        core: &Core,
        p: &RelPath,
    ) -> Result<Option<Meta>, crate::engine::tree::TreeError> {
        let meta = core.tree.lstat(p)?;
        match meta {
            Some(m) if mode::is_lnk(m.mode) && core.opts.copy_links => {
                let target = core.tree.resolve(p)?;
                match core.tree.lstat(&target)? {
                    Some(t) if !mode::is_lnk(t.mode) => Ok(Some(t)),
                    _ => Ok(Some(m)),
                }
            }
            other => Ok(other),
        }
    }

    /// The contents of `dir` (a name relative to the root), and with `deep` everything
    /// below it. Upstream: flist.c, send_directory() and send_if_directory().
    fn scan_tree(
        &mut self,
        core: &Core,
        root: u32,
        dir: &[u8],
        items: &mut Vec<Item>,
        deep: bool,
    ) -> Result<(), EngineError> {
        let start = items.len();
        self.scan_dir(core, root, dir, items, false)?;
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
    fn scan_dir(
        &mut self,
        core: &Core,
        root: u32,
        dir: &[u8],
        items: &mut Vec<Item>,
        _sub_list: bool,
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
        if core.opts.copy_links
            && let Ok(resolved) = core.tree.resolve(&path)
        {
            path = resolved;
        }
        let names = match core.tree.read_dir(&path) {
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
                self.io_error |= IOERR_GENERAL;
                core.error_xfer(&crate::engine::exit::syserr(
                    "sender",
                    &format!("opendir {} failed", self.quoted(core, root, &path)),
                    e.raw_os_error(),
                    &e,
                ));
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
        for base in names {
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
            let meta = match self.stat(core, &p) {
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
                    let errno = if e.is_confinement() {
                        Some(40)
                    } else {
                        e.raw_os_error()
                    };
                    let text: &dyn std::fmt::Display = if e.is_confinement() {
                        &"Too many levels of symbolic links"
                    } else {
                        &e
                    };
                    core.error_xfer(&crate::engine::exit::syserr(
                        "sender",
                        &format!("readlink_stat({}) failed", self.quoted(core, root, &p)),
                        errno,
                        text,
                    ));
                    continue;
                }
            };
            let is_dir = mode::is_dir(meta.mode);
            if is_dir && !core.opts.recurse && !core.opts.xfer_dirs {
                core.info(&format!("skipping directory {}", show(&name)));
                continue;
            }
            if self.filters[root as usize].is_excluded(&name, is_dir) {
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
    fn make_item(
        &mut self,
        core: &Core,
        root: u32,
        name: Vec<u8>,
        m: &Meta,
        xflags: u32,
        content: bool,
    ) -> Result<Option<Item>, EngineError> {
        let cfg = &core.cfg;
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
                    self.io_error |= IOERR_GENERAL;
                    core.error_xfer(&crate::engine::exit::syserr(
                        "sender",
                        &format!("readlink {} failed", self.quoted(core, root, &p)),
                        err.raw_os_error(),
                        &err,
                    ));
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

/// A path argument made safe as upstream's sanitize_path() with SP_KEEP_DOT_DIRS: no
/// leading slash, `..` never climbs above the start, `.` components and a trailing slash
/// kept.
pub(super) fn sanitize_arg(arg: &[u8]) -> Vec<u8> {
    let mut parts: Vec<&[u8]> = Vec::new();
    let mut dotdot_floor = 0;
    for part in arg.split(|&b| b == b'/') {
        match part {
            b"" => {}
            b".." => {
                if parts.len() > dotdot_floor {
                    parts.pop();
                } else {
                    dotdot_floor = parts.len();
                }
            }
            p => parts.push(p),
        }
    }
    let mut out = parts.join(&b'/');
    if arg.ends_with(b"/") && !out.is_empty() {
        out.push(b'/');
    }
    out
}

/// Splits a `-R` argument at its `/./` marker into the part that stays behind (the
/// transfer root) and the part that is sent, as upstream's send_file_list() does.
fn split_relative(fbuf: &[u8]) -> (Vec<u8>, Vec<u8>, NameType) {
    let (dir, rest) = match fbuf.windows(3).position(|w| w == b"/./") {
        Some(i) => (fbuf[..i].to_vec(), &fbuf[i + 3..]),
        None => match fbuf.strip_prefix(b"./") {
            Some(r) => (Vec::new(), r),
            None => (Vec::new(), fbuf),
        },
    };
    let mut parts: Vec<&[u8]> = Vec::new();
    for p in rest.split(|&b| b == b'/') {
        if !p.is_empty() && p != b"." {
            parts.push(p);
        }
    }
    let name = parts.join(&b'/');
    if name.is_empty() {
        (dir, b".".to_vec(), NameType::DotDir)
    } else {
        (dir, name, NameType::Normal)
    }
}

fn user_name(uid: u32) -> Option<Vec<u8>> {
    nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
        .ok()
        .flatten()
        .map(|u| u.name.into_bytes())
        .filter(|n| n.len() <= 255)
}

fn group_name(gid: u32) -> Option<Vec<u8>> {
    nix::unistd::Group::from_gid(nix::unistd::Gid::from_raw(gid))
        .ok()
        .flatten()
        .map(|g| g.name.into_bytes())
        .filter(|n| n.len() <= 255)
}

pub(super) fn show(name: &[u8]) -> String {
    String::from_utf8_lossy(name).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitizing_arguments() {
        assert_eq!(sanitize_arg(b"/"), b"");
        assert_eq!(sanitize_arg(b"/sub/"), b"sub/");
        assert_eq!(sanitize_arg(b"../../etc/passwd"), b"etc/passwd");
        assert_eq!(sanitize_arg(b"a/../../b"), b"b");
        assert_eq!(sanitize_arg(b"a/./b"), b"a/./b");
    }

    #[test]
    fn relative_split() {
        assert_eq!(split_relative(b"a/b/c").1, b"a/b/c");
        let (d, n, _) = split_relative(b"a/./b/c");
        assert_eq!((d.as_slice(), n.as_slice()), (&b"a"[..], &b"b/c"[..]));
        assert_eq!(split_relative(b"").2, NameType::DotDir);
    }
}
