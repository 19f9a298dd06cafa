//! The sender's file lists: the arguments turned into entries, directories scanned through
//! the confined tree, each list sorted and sent, and with incremental recursion the
//! sub-lists of the directory tree sent ahead of the receiver's requests.
//! Upstream: flist.c send_file_list(), send_directory(), send_extra_file_list(),
//! add_dirs_to_tree(), make_file(); uidlist.c send_id_lists().

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use super::Core;
use super::args::sanitize_arg;
use super::dirtree::DirTree;
use super::scan::{group_name, user_name};
use crate::engine::error::EngineError;
use crate::engine::exit::ExitCode;
use crate::engine::filter::FilterSet;
use crate::engine::tree::RelPath;
use crate::protocol::acl::IdKind;
use crate::protocol::codec::put_int;
use crate::protocol::flist::{
    FileEntry, FlistEncoder, HardLink, compare_names, encode_id_list, mode,
};
use crate::protocol::ndx::{NDX_FLIST_EOF, NDX_FLIST_OFFSET};

/// Sub-lists are sent until this many files wait ahead of the receiver.
/// Upstream: rsync.h, MIN_FILECNT_LOOKAHEAD.
pub(super) const LOOKAHEAD: usize = 1000;

/// The io_error bit for a file that vanished, and for any other error.
pub(super) const IOERR_GENERAL: i32 = 1;
pub(super) const IOERR_VANISHED: i32 = 2;

/// The prefix a `munge symlinks` module stores before every symlink target.
pub(super) const MUNGE_PREFIX: &[u8] = b"/rsyncd-munged/";

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

/// Builds and sends the lists of one session.
pub(super) struct Lister {
    pub(super) enc: FlistEncoder,
    /// Transfer roots relative to the module root, one per distinct argument directory,
    /// as the tree reaches them (symlinks inside the module resolved).
    pub roots: Vec<Vec<u8>>,
    /// The same roots as the client named them, for messages, logs and the daemon's
    /// rules (upstream's working directory is the path it changed into).
    pub shown_roots: Vec<Vec<u8>>,
    /// The filter set of each root (daemon rules are anchored at the root's path).
    pub(super) filters: Vec<FilterSet>,
    /// The daemon's rules alone, rooted at the module (for argument paths).
    pub(super) daemon: Option<FilterSet>,
    /// The lists sent and not yet finished by the receiver, oldest first.
    pub lists: std::collections::VecDeque<Arc<SendList>>,
    /// The directories of the incremental lists, numbered as the receiver numbers them.
    dirs: DirTree,
    /// No more lists follow.
    pub eof: bool,
    pub(super) next_ndx: i32,
    /// Files in lists sent / in lists the receiver finished (upstream's file_total and
    /// file_old_total).
    pub file_total: usize,
    pub file_old_total: usize,
    /// The io_error bits so far.
    pub io_error: i32,
    /// The first index of each (dev, ino) seen, for hard links.
    pub(super) hlinks: HashMap<(u64, u64), i32>,
    /// Ids met, with their names, for the id lists (non-incremental).
    pub(super) uids: BTreeMap<u32, Option<Vec<u8>>>,
    pub(super) gids: BTreeMap<u32, Option<Vec<u8>>>,
    /// Ids whose names already rode inline (incremental).
    pub(super) sent_uids: HashSet<u32>,
    pub(super) sent_gids: HashSet<u32>,
    /// With `-R` and incremental lists: the rest of each argument's path, kept for the
    /// sub-list of the implied directory it passes through, by (root, directory).
    pub(super) relnames: HashMap<(u32, Vec<u8>), Vec<RelName>>,
    /// The directories of the list being built (see [`super::args::DirIndex`]).
    pub(super) dirs_listed: super::args::DirIndex,
    /// Sum of the sizes of regular files and symlinks listed (the `total size` statistic).
    pub total_size: u64,
}

/// The rest of a `-R` path kept for a sub-list, with its argument's name type.
pub(super) type RelName = (Vec<u8>, NameType);

/// What the sender sends of an argument (upstream's name_type).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum NameType {
    Normal,
    DotDir,
}

impl Lister {
    pub fn new(core: &Core) -> Lister {
        let inc = core.cfg.inc_recurse;
        Lister {
            enc: FlistEncoder::new(core.cfg.clone()),
            roots: Vec::new(),
            shown_roots: Vec::new(),
            filters: Vec::new(),
            daemon: None,
            lists: std::collections::VecDeque::new(),
            dirs: DirTree::default(),
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
            relnames: HashMap::new(),
            dirs_listed: super::args::DirIndex::default(),
            total_size: 0,
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
                return self.dirs.item(d).map(|i| (l, i));
            }
        }
        None
    }

    /// The receiver finished the oldest list.
    pub fn finish_first(&mut self) {
        if let Some(l) = self.lists.pop_front() {
            self.file_old_total += l.items.len();
            // Only a live list's request for its directory (the index before its first)
            // needed that directory's entry.
            if let Some(d) = l.parent {
                self.dirs.release(d);
            }
        }
    }

    /// The transfer root of an entry, from the module root, as the client named it.
    pub fn root_of(&self, it: &Item) -> &[u8] {
        self.shown_roots
            .get(it.root as usize)
            .map_or(&[][..], Vec::as_slice)
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
        self.dirs_listed.clear();
        let mut args: Vec<Vec<u8>> = args.to_vec();
        if args.is_empty() && (o.recurse || o.xfer_dirs || o.list_only) {
            args.push(b".".to_vec());
        }
        for arg in &args {
            for one in self.glob(core, &sanitize_arg(arg))? {
                self.add_arg(core, &one, &mut items)?;
            }
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
            self.dirs.add(&list.items, None);
            if !self.dirs.has_next() {
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
    /// A directory named twice in one list (overlapping arguments) gets one sub-list,
    /// announced under the first one's number, holding what each of them contributes:
    /// the receiver keeps only the first and refuses a sub-list for the others.
    /// Upstream: flist.c, send_extra_file_list() and send1extra().
    pub fn send_extra(&mut self, core: &Core, at_least: usize) -> Result<(), EngineError> {
        while !self.eof && self.file_total - self.file_old_total < at_least {
            let Some(group) = self.dirs.next_group() else {
                return self.write_eof(core);
            };
            let (Some(&d), Some(&last)) = (group.first(), group.last()) else {
                return self.write_eof(core);
            };
            let mut items = Vec::new();
            self.dirs_listed.clear();
            // A duplicate read from the same root has the same contents: read them once.
            let mut scanned: Vec<u32> = Vec::new();
            for &g in &group {
                let Some(dir) = self.dirs.item(g).cloned() else {
                    continue;
                };
                if dir.content_dir && !scanned.contains(&dir.root) {
                    scanned.push(dir.root);
                    self.scan_dir(core, dir.root, &dir.e.name, &mut items)?;
                }
                if core.opts.relative {
                    self.add_relnames(core, dir.root, &dir.e.name, &mut items)?;
                }
            }
            let mut out = Vec::new();
            core.put_ndx(NDX_FLIST_OFFSET - d as i32, &mut out);
            let list = self.finish_list(core, items, Some(d), &mut out)?;
            core.data(&out)?;
            // The sub-list's directories hang under the group's last one, as upstream's.
            self.dirs.add(&list.items, Some(last));
            self.dirs.sent(last);
            // The group's duplicates were only read for this sub-list.
            for &g in group.iter().skip(1) {
                self.dirs.release(g);
            }
            if !self.dirs.has_next() {
                self.write_eof(core)?;
            }
        }
        Ok(())
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
        let ndx_start = self.next_ndx;
        for (i, it) in items.iter_mut().enumerate() {
            self.link_hard(core, it, ndx_start + i as i32);
            let send_names = core.cfg.inc_recurse && self.note_names(core, &mut it.e);
            if !core.cfg.inc_recurse {
                self.note_ids(core, &it.e);
            }
            // -A: the ids of named ACL entries join the same registry as owners (the
            // owner's name goes first, as upstream sends it before the ACL).
            let numeric = core.policy.numeric_ids;
            let inc = core.cfg.inc_recurse;
            let (uids, gids) = (&mut self.uids, &mut self.gids);
            let (sent_uids, sent_gids) = (&mut self.sent_uids, &mut self.sent_gids);
            let mut acl_ids = |kind: IdKind, id: u32| -> Option<Vec<u8>> {
                if numeric {
                    return None;
                }
                match (kind, inc) {
                    (IdKind::User, true) => sent_uids.insert(id).then(|| user_name(id)).flatten(),
                    (IdKind::Group, true) => sent_gids.insert(id).then(|| group_name(id)).flatten(),
                    (IdKind::User, false) => {
                        uids.entry(id).or_insert_with(|| user_name(id));
                        None
                    }
                    (IdKind::Group, false) => {
                        gids.entry(id).or_insert_with(|| group_name(id));
                        None
                    }
                }
            };
            self.enc
                .encode_with_acl_ids(&it.e, ndx_start, send_names, &mut acl_ids, out)
                .map_err(|e| EngineError::fatal(e.to_string(), ExitCode::PROTOCOL))?;
            it.e.user_name = None;
            it.e.group_name = None;
            core.log.item(&crate::engine::session::ItemEvent {
                name: it.e.name.clone(),
                what: crate::engine::session::ItemWhat::Listed,
                size: it.e.size.max(0) as u64,
            });
            if mode::is_reg(it.e.mode) || mode::is_lnk(it.e.mode) {
                self.total_size += it.e.size.max(0) as u64;
            }
        }
        // Sent in the order the directories were read, as upstream sends them (a
        // hard-link follower names its leader by that position); requests then name
        // entries by their place in the sorted list, which both sides sort alike.
        // Upstream: flist.c, flist_sort_and_clean().
        items.sort_by(|a, b| {
            compare_names(&a.e.name, a.e.is_dir(), &b.e.name, b.e.is_dir(), protocol)
        });
        let ioe = if self.io_error != 0 && !core.opts.ignore_errors && core.cfg.safe_flist {
            self.io_error
        } else {
            0
        };
        self.enc.end(ioe, out);
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
            && self.sent_uids.insert(uid)
            && let Some(n) = user_name(uid)
        {
            e.user_name = Some(n);
            any = true;
        }
        if let Some(gid) = e.gid
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
        // Only the client's --numeric-ids leaves them out; with a module's `numeric ids`
        // they go empty (upstream's numeric_ids = -1 keeps the protocol), as the client
        // reads them. Upstream: flist.c, send_file_list() (`numeric_ids <= 0`).
        if core.cfg.numeric_ids {
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
        // -A sends both lists, whether or not owners travel. Upstream: uidlist.c,
        // send_id_lists().
        if core.cfg.preserve_uid || core.cfg.preserve_acls {
            encode_id_list(out, p, &named(&self.uids), core.cfg.id0_names).map_err(bad)?;
        }
        if core.cfg.preserve_gid || core.cfg.preserve_acls {
            encode_id_list(out, p, &named(&self.gids), core.cfg.id0_names).map_err(bad)?;
        }
        Ok(())
    }

    /// A name quoted for a message as upstream's full_fname() shows it from the transfer
    /// root `root` (its working directory): `"/root/name" (in module)`.
    pub fn quoted(&self, core: &Core, root: u32, path: &RelPath) -> String {
        let dir = self.roots.get(root as usize).map_or(&[][..], Vec::as_slice);
        let shown = self
            .shown_roots
            .get(root as usize)
            .map_or(&[][..], Vec::as_slice);
        let full = path.as_bytes();
        let name = if dir.is_empty() {
            full
        } else {
            full.strip_prefix(dir)
                .map(|r| r.strip_prefix(b"/").unwrap_or(r))
                .unwrap_or(full)
        };
        core.quoted_in(shown, if name.is_empty() { b"." } else { name })
    }
}

pub(super) fn show(name: &[u8]) -> String {
    String::from_utf8_lossy(name).into_owned()
}
