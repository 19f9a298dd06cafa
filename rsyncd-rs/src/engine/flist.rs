//! File lists as the receiving side holds them: received, sorted, cleaned, with the
//! directory index incremental recursion refers to (upstream: flist.c recv_file_list(),
//! flist_sort_and_clean(); uidlist.c id mapping).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use super::mux::{MuxReader, ReadError};
use crate::engine::conn::ConnError;
use crate::engine::exit::{ExitCode, Origin};
use crate::engine::idmap::{NameConverter, NameMap};
use crate::protocol::Decoded;
use crate::protocol::acl::{AclError, IdKind};
use crate::protocol::codec::get_int;
use crate::protocol::flist::{
    FileEntry, FlistConfig, FlistDecoder, FlistError, FlistItem, HardLink, IOERR_VALID_MASK,
    IdList, IdListDecoder, compare_names, mark_duplicates,
};

/// The most entries one list may hold: a bound on what a peer that never ends its list
/// can make us hold. Upstream has no count limit of its own, but its `--max-alloc`
/// (default 1 GiB per allocation) stops a list at 2^27 entries, the size of the pointer
/// array it reallocates. An entry costs 232 bytes here plus its name (about 500 while the
/// list is sorted), so this is some 12-25 GiB: far above real lists, which are split per
/// directory with incremental recursion, and still millions of files without it.
pub const MAX_LIST_ENTRIES: usize = 50_000_000;

/// The most variable-length data (names, symlink targets, `--checksum` sums, inline user
/// and group names) one list may hold, so that entries inflated to MAXPATHLEN names cannot
/// multiply [`MAX_LIST_ENTRIES`] by 4 KiB: 8 GiB is an average of 170 bytes per entry at
/// the count limit, more than the full relative paths of real trees.
pub const MAX_LIST_DATA_BYTES: u64 = 8 << 30;

/// The variable-length bytes an entry holds (see [`MAX_LIST_DATA_BYTES`]).
fn entry_data_bytes(e: &FileEntry) -> u64 {
    let opt = |v: &Option<Vec<u8>>| v.as_ref().map_or(0, Vec::len);
    (e.name.len() + opt(&e.link_target) + opt(&e.checksum) + opt(&e.user_name) + opt(&e.group_name))
        as u64
}

/// Whether a list starting at `ndx_start` can take one more entry: file indexes are int32
/// on the wire and the next list starts one past the end of this one.
fn ndx_space_left(ndx_start: i32, entries: usize) -> bool {
    i64::try_from(entries)
        .map(|n| i64::from(ndx_start).saturating_add(n).saturating_add(1) < i64::from(i32::MAX))
        .unwrap_or(false)
}

/// One received file list, sorted; indexes are `ndx_start + position`.
#[derive(Debug, Clone)]
pub struct FileList {
    pub ndx_start: i32,
    pub entries: Vec<FileEntry>,
    /// Duplicates removed by cleaning stay as inactive slots so indexes do not move.
    pub active: Vec<bool>,
    /// The hard-link group of each entry (its first member's index), when linked.
    pub hlink_group: Vec<Option<i64>>,
    /// The directory this list holds the contents of (incremental recursion): its index in
    /// the directory list and its entry. The first list's parent is `.` when it has one.
    pub parent: Option<(usize, FileEntry)>,
    /// The active entries but `.`, ordered by directory: built the first time --delete
    /// asks what a directory holds (see [`FileList::names_in`]).
    by_dir: std::sync::OnceLock<Vec<u32>>,
}

impl FileList {
    /// The basenames of the active entries directly in `dir` (`""` for the top).
    /// Upstream finds each name by a binary search of its sorted list
    /// (flist_find_ignore_dirness()); the directory index serves the same purpose here.
    pub fn names_in<'a>(&'a self, dir: &'a [u8]) -> impl Iterator<Item = &'a [u8]> + 'a {
        let order = self.by_dir.get_or_init(|| {
            let mut order: Vec<u32> = (0..self.entries.len())
                .filter(|&i| self.active[i] && self.entries[i].name != b".")
                .map(|i| i as u32)
                .collect();
            order.sort_by(|&a, &b| {
                self.entries[a as usize]
                    .dirname()
                    .cmp(self.entries[b as usize].dirname())
            });
            order
        });
        let dir_of = |i: &u32| self.entries[*i as usize].dirname();
        let lo = order.partition_point(|i| dir_of(i) < dir);
        let hi = order.partition_point(|i| dir_of(i) <= dir);
        order[lo..hi]
            .iter()
            .map(|&i| self.entries[i as usize].basename())
    }

    /// The entry for an index in this list, if it is one of ours and active.
    pub fn get(&self, ndx: i32) -> Option<&FileEntry> {
        let i = usize::try_from(ndx.checked_sub(self.ndx_start)?).ok()?;
        if *self.active.get(i)? {
            self.entries.get(i)
        } else {
            None
        }
    }

    /// Whether `ndx` falls inside this list (active or not).
    pub fn contains(&self, ndx: i32) -> bool {
        ndx >= self.ndx_start && ((ndx - self.ndx_start) as usize) < self.entries.len()
    }

    /// The index after the last entry: the next list starts one past this (the skipped
    /// number names the next list's directory).
    pub fn end(&self) -> i32 {
        self.ndx_start + self.entries.len() as i32
    }
}

/// Why a list could not be received.
#[derive(Debug, thiserror::Error)]
pub enum ListError {
    #[error("{0}")]
    Read(#[from] ReadError),
    #[error("{0}")]
    Flist(#[from] FlistError),
    #[error("ABORTING due to invalid path from sender: {0}")]
    OutsideDir(String),
    #[error("file list too long")]
    TooLong,
    /// What upstream refuses with a message of its own: the message, the exit code, and
    /// where upstream ends the session (file, line and process).
    #[error("{msg}")]
    Fatal {
        msg: String,
        code: ExitCode,
        at: Origin,
        role: &'static str,
    },
}

impl ListError {
    fn fatal(
        msg: String,
        code: ExitCode,
        file: &'static str,
        line: u32,
        role: &'static str,
    ) -> ListError {
        ListError::Fatal {
            msg,
            code,
            at: Origin { file, line },
            role,
        }
    }
}

impl From<ConnError<FlistError>> for ListError {
    fn from(e: ConnError<FlistError>) -> ListError {
        match e {
            ConnError::Decode(f) => ListError::Flist(f),
            ConnError::Eof => ListError::Read(ConnError::Eof),
            ConnError::Timeout => ListError::Read(ConnError::Timeout),
            ConnError::Io(io) => ListError::Read(ConnError::Io(io)),
        }
    }
}

/// Upstream ends the session on a name that would overflow its path buffer with the
/// guard's line and overflow_exit()'s, exit code 22, from the process reading the list
/// (the unforked "Receiver" for the first list, the "receiver" for sub-lists).
fn overflow_exit(e: ConnError<FlistError>, sub_list: bool) -> ListError {
    match e {
        // A bad ACL block ends the session with upstream's text and code (12 for a bad
        // index or perms, 2 for a count out of bounds). Upstream: acls.c,
        // recv_rsync_acl(), recv_acl_access(); io.c read_varint_bounded().
        ConnError::Decode(FlistError::Acl(a)) => {
            let role = if sub_list { "receiver" } else { "Receiver" };
            let code = match a.exit_code() {
                2 => ExitCode::PROTOCOL,
                _ => ExitCode::STREAMIO,
            };
            let (msg, file, line) = match &a {
                AclError::BadIndex { .. } => (a.to_string(), "acls.c", 971),
                AclError::CountOutOfRange(_) => (format!("{a} [{role}]"), "io.c", 2068),
                _ => (a.to_string(), "acls.c", 921),
            };
            ListError::fatal(msg, code, file, line, role)
        }
        ConnError::Decode(o @ FlistError::NameOverflow { .. }) => {
            let role = if sub_list { "receiver" } else { "Receiver" };
            ListError::fatal(
                format!(
                    "{o} [{role}]\n[{role}] buffer overflow: recv_file_entry (file=flist.c, line=823)"
                ),
                ExitCode::MALLOC,
                "util2.c",
                129,
                role,
            )
        }
        other => other.into(),
    }
}

/// Maps the sender's ids to ours by name (upstream: uidlist.c recv_add_id()).
#[derive(Debug, Default, Clone)]
pub struct IdMap {
    uids: HashMap<u32, u32>,
    gids: HashMap<u32, u32>,
    /// `--usermap`/`--groupmap` rules, tried before names.
    pub user_map: Option<NameMap>,
    pub group_map: Option<NameMap>,
    /// Names are looked up locally (not with `--numeric-ids`).
    pub by_name: bool,
    /// The module's `name converter`, asked instead of the system's user database.
    pub converter: Option<Arc<Mutex<NameConverter>>>,
    /// Messages for the client and the log from lookups since they were last taken.
    pub errors: Vec<String>,
}

impl IdMap {
    /// Records a name the sender gave for a uid; returns our uid for it.
    pub fn add_user(&mut self, id: u32, name: &[u8]) -> u32 {
        if let Some(&local) = self.uids.get(&id) {
            return local;
        }
        let local = self.map_user(id, name).unwrap_or_else(|| {
            self.by_name(id, name, "usr", |n| {
                uzers::get_user_by_name(n).map(|u| u.uid())
            })
        });
        *self.uids.entry(id).or_insert(local)
    }

    /// Records a name the sender gave for a gid; returns our gid for it.
    pub fn add_group(&mut self, id: u32, name: &[u8]) -> u32 {
        if let Some(&local) = self.gids.get(&id) {
            return local;
        }
        let local = self.map_group(id, name).unwrap_or_else(|| {
            self.by_name(id, name, "grp", |n| {
                uzers::get_group_by_name(n).map(|g| g.gid())
            })
        });
        *self.gids.entry(id).or_insert(local)
    }

    /// The local id of a sender's named, non-root id: from the name converter when the
    /// module has one, else from the system; the sender's id when neither knows the name.
    /// Upstream: uidlist.c, recv_add_id() with user_to_uid()/group_to_gid().
    fn by_name(&mut self, id: u32, name: &[u8], cmd: &str, system: fn(&str) -> Option<u32>) -> u32 {
        if !self.by_name || name.is_empty() || id == 0 {
            return id;
        }
        if let Some(cvt) = &self.converter {
            let answer = cvt
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .id_of(cmd, name);
            return match answer {
                Ok(found) => found.unwrap_or(id),
                Err(message) => {
                    self.errors.push(message);
                    id
                }
            };
        }
        std::str::from_utf8(name)
            .ok()
            .and_then(system)
            .unwrap_or(id)
    }

    /// The id a `--usermap`/`--chown` rule gives.
    fn map_user(&self, id: u32, name: &[u8]) -> Option<u32> {
        self.user_map.as_ref().and_then(|m| m.lookup(id, name))
    }

    /// The id a `--groupmap`/`--chown` rule gives.
    fn map_group(&self, id: u32, name: &[u8]) -> Option<u32> {
        self.group_map.as_ref().and_then(|m| m.lookup(id, name))
    }

    /// Our uid for the sender's (an id without a name is mapped by the rules alone).
    pub fn uid(&self, id: u32) -> u32 {
        self.uids
            .get(&id)
            .copied()
            .unwrap_or_else(|| self.map_user(id, b"").unwrap_or(id))
    }

    /// Our gid for the sender's.
    pub fn gid(&self, id: u32) -> u32 {
        self.gids
            .get(&id)
            .copied()
            .unwrap_or_else(|| self.map_group(id, b"").unwrap_or(id))
    }

    /// Whether ids are translated at all.
    pub fn active(&self) -> bool {
        self.by_name || self.user_map.is_some() || self.group_map.is_some()
    }
}

impl std::fmt::Debug for ListReceiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ListReceiver")
            .field("next_ndx", &self.next_ndx)
            .field("dirs", &self.dirs.len())
            .field("io_error", &self.io_error)
            .finish_non_exhaustive()
    }
}

/// Receives file lists: the decoder state shared by all lists of a session, the directory
/// index for incremental recursion, and id names.
pub struct ListReceiver {
    decoder: FlistDecoder,
    /// Every directory entry received so far, in the order sub-lists refer to them: each
    /// list's directories in list order, duplicates included (upstream appends each one to
    /// dir_flist as it arrives, before cleaning).
    pub dirs: Vec<FileEntry>,
    /// Which of `dirs` survived cleaning (a removed duplicate keeps its index).
    dir_active: Vec<bool>,
    /// Which of `dirs` already had their sub-list.
    got_list: Vec<bool>,
    /// Hard-link groups met in lists so far (incremental recursion): a later list may
    /// refer back to these only. Upstream: hlink.c, prior_hlinks.
    hlink_groups: HashSet<i64>,
    next_ndx: i32,
    pub ids: IdMap,
    /// Names map to local ids (not with `--numeric-ids`).
    /// The sender's io_error bits, accumulated.
    pub io_error: i32,
    /// Mode changes applied to every received entry but symlinks: the module's `incoming
    /// chmod` (upstream appends it to `chmod_modes`, which recv_file_entry() applies).
    /// Upstream also feeds the changed mode to the next entry's XMIT_SAME_MODE, which
    /// differs from this only for a chmod that is not idempotent (`+x` rules are).
    pub chmod: Option<crate::engine::chmod::ChmodRules>,
    /// Names a receiving client refuses to be sent (what its own rules exclude, as the
    /// sender should have applied them): such an entry ends the session. Upstream:
    /// flist.c, recv_file_entry(), "rejecting excluded file-list name" (3.2.5+).
    pub refuse: Option<Refuse>,
}

/// See [`ListReceiver::refuse`]: the name and whether it is a directory.
pub type Refuse = Box<dyn Fn(&[u8], bool) -> bool + Send>;

impl ListReceiver {
    pub fn new(cfg: FlistConfig, map_names: bool) -> ListReceiver {
        let first_ndx = if cfg.inc_recurse { 1 } else { 0 };
        ListReceiver {
            decoder: FlistDecoder::new(cfg),
            dirs: Vec::new(),
            dir_active: Vec::new(),
            got_list: Vec::new(),
            hlink_groups: HashSet::new(),
            next_ndx: first_ndx,
            ids: IdMap {
                by_name: map_names,
                ..IdMap::default()
            },
            io_error: 0,
            chmod: None,
            refuse: None,
        }
    }

    pub fn config(&self) -> &FlistConfig {
        self.decoder.config()
    }

    /// Receives one list; `parent` is the directory index of a sub-list (`None` for the
    /// first list). Upstream: flist.c, recv_file_list().
    pub fn receive(
        &mut self,
        r: &mut MuxReader,
        parent: Option<usize>,
    ) -> Result<Arc<FileList>, ListError> {
        let cfg = self.decoder.config().clone();
        if let Some(d) = parent {
            self.claim_dir(d)?;
        }
        let ndx_start = self.next_ndx;
        let mut entries: Vec<FileEntry> = Vec::new();
        let mut data_bytes = 0u64;
        let io_error = loop {
            let dec = &mut self.decoder;
            let item = r
                .decode_with(|b| dec.decode(b, &entries, ndx_start))
                .map_err(|e| overflow_exit(e, parent.is_some()))?;
            match item {
                FlistItem::End { io_error } => break io_error,
                FlistItem::Entry(mut e) => {
                    data_bytes += entry_data_bytes(&e);
                    if entries.len() >= MAX_LIST_ENTRIES
                        || data_bytes > MAX_LIST_DATA_BYTES
                        || !ndx_space_left(ndx_start, entries.len())
                    {
                        return Err(ListError::TooLong);
                    }
                    if let Some(refuse) = &self.refuse
                        && e.name != b"."
                        && refuse(&e.name, e.is_dir())
                    {
                        return Err(ListError::fatal(
                            format!(
                                "ERROR: rejecting excluded file-list name: {}",
                                String::from_utf8_lossy(&e.name)
                            ),
                            ExitCode::UNSUPPORTED,
                            "flist.c",
                            1141,
                            "receiver",
                        ));
                    }
                    if let Some(c) = &self.chmod
                        && e.mode != 0
                        && !crate::protocol::flist::mode::is_lnk(e.mode)
                    {
                        e.mode = c.apply(e.mode);
                    }
                    entries.push(*e);
                }
            }
        };
        self.io_error |= io_error & IOERR_VALID_MASK;
        if let Some(d) = parent {
            let dir = self.dirs[d].name.clone();
            for e in &entries {
                if e.dirname() != dir.as_slice() && !(dir == b"." && e.dirname().is_empty()) {
                    return Err(ListError::OutsideDir(
                        String::from_utf8_lossy(&e.name).into_owned(),
                    ));
                }
            }
        }
        // Names that rode inline with the entries (incremental recursion): the first
        // entry with an id carries its name, later ones map through what it recorded.
        let active = self.ids.active();
        for e in &mut entries {
            // -A: names of ACL ids that came inline join the same registry.
            if let Some(acls) = &e.acls
                && !acls.inline_names.is_empty()
            {
                for (kind, id, name) in &acls.inline_names {
                    match kind {
                        IdKind::User => self.ids.add_user(*id, name),
                        IdKind::Group => self.ids.add_group(*id, name),
                    };
                }
            }
            // 3.5.0 maps user and group ids alike here (3.2.7 left a non-root
            // receiver's user ids alone, its bug #618). Upstream: acls.c,
            // recv_ida_entries().
            if cfg.inc_recurse && active {
                self.map_acl_ids(e);
            }
            if let Some(uid) = e.uid {
                if let Some(name) = e.user_name.take() {
                    self.ids.add_user(uid, &name);
                }
                if cfg.inc_recurse && active {
                    e.uid = Some(self.ids.uid(uid));
                }
            }
            if let Some(gid) = e.gid {
                if let Some(name) = e.group_name.take() {
                    self.ids.add_group(gid, &name);
                }
                if cfg.inc_recurse && active {
                    e.gid = Some(self.ids.gid(gid));
                }
            }
        }
        if !cfg.inc_recurse {
            self.receive_id_lists(r, &cfg, &mut entries)?;
        }
        // Hard-link groups are numbered by the sender's unsorted positions: fix them now.
        let groups: Vec<Option<i64>> = entries
            .iter()
            .enumerate()
            .map(|(i, e)| match &e.hard_link {
                Some(HardLink::First) => Some(i64::from(ndx_start) + i as i64),
                Some(HardLink::Follower(first)) => Some(i64::from(*first)),
                Some(HardLink::DevIno { dev, ino }) => Some(dev.wrapping_mul(1 << 32) ^ ino),
                None => None,
            })
            .collect();
        let (sorted, hlink_group) = sort_with(entries, groups, cfg.protocol);
        let active = mark_duplicates(&sorted);
        if cfg.inc_recurse && cfg.preserve_hard_links {
            self.check_hlink_groups(ndx_start, &sorted, &active, &hlink_group)?;
        }
        if cfg.protocol < 30 {
            let mut io = [0u8; 4];
            let v = r.read_exact(4)?;
            io.copy_from_slice(&v);
            if let Decoded::Done { value, .. } = get_int(&io) {
                self.io_error |= value & IOERR_VALID_MASK;
            }
        }
        if cfg.inc_recurse {
            for (e, a) in sorted.iter().zip(&active) {
                if e.is_dir() {
                    self.dirs.push(e.clone());
                    self.dir_active.push(*a);
                    self.got_list.push(false);
                }
            }
        }
        // ndx_space_left() kept this within int32.
        self.next_ndx = ndx_start
            .saturating_add(sorted.len() as i32)
            .saturating_add(1);
        let parent_entry =
            match parent {
                Some(d) => Some((d, self.dirs[d].clone())),
                None if cfg.inc_recurse => sorted
                    .first()
                    .filter(|e| e.name == b"." && e.is_dir())
                    .map(|e| {
                        if let Some(g) = self.got_list.first_mut() {
                            *g = true;
                        }
                        (0, e.clone())
                    }),
                None => None,
            };
        Ok(Arc::new(FileList {
            ndx_start,
            entries: sorted,
            active,
            hlink_group,
            parent: parent_entry,
            by_dir: std::sync::OnceLock::new(),
        }))
    }

    /// Marks directory `d` as having its sub-list, refusing an index past the directories
    /// received, a duplicate that cleaning removed, and a second list for the same
    /// directory. Upstream: flist.c, recv_file_list() with `dir_ndx >= 0`.
    fn claim_dir(&mut self, d: usize) -> Result<(), ListError> {
        // Sub-lists arrive in the forked receiver (recv_additional_file_list()'s case says
        // otherwise where it calls this).
        let refused = |msg: String, line: u32| {
            Err(ListError::fatal(
                msg,
                ExitCode::PROTOCOL,
                "flist.c",
                line,
                "receiver",
            ))
        };
        let Some(&active) = self.dir_active.get(d) else {
            let used = self.dirs.len();
            return refused(
                format!("rsync: refusing invalid dir_ndx {d} >= {used}"),
                2908,
            );
        };
        if !active {
            return refused(
                format!("rsync: refusing flist for cleared dir_ndx {d}"),
                2920,
            );
        }
        match self.got_list.get_mut(d) {
            Some(got) if !*got => {
                *got = true;
                Ok(())
            }
            _ => refused(
                format!("rsync: refusing malicious duplicate flist for dir {d}"),
                2924,
            ),
        }
    }

    /// Refuses a hard link that refers back to a group no earlier list started (upstream's
    /// generator checks this as it matches the list's groups; group 0 is no index at all
    /// with incremental recursion, which its hash table refuses first), then records this
    /// list's groups. Upstream: hlink.c, match_gnums().
    fn check_hlink_groups(
        &mut self,
        ndx_start: i32,
        entries: &[FileEntry],
        active: &[bool],
        groups: &[Option<i64>],
    ) -> Result<(), ListError> {
        let linked = || {
            entries
                .iter()
                .zip(active)
                .zip(groups)
                .filter(|((e, a), _)| **a && !e.is_dir())
                .filter_map(|(_, g)| *g)
        };
        // Upstream walks the groups in ascending order: the lowest bad one is reported.
        let bad = linked()
            .filter(|g| *g == 0 || (*g < i64::from(ndx_start) && !self.hlink_groups.contains(g)))
            .min();
        match bad {
            Some(0) => {
                return Err(ListError::fatal(
                    "Internal hashtable error: illegal key supplied!".into(),
                    ExitCode::MESSAGEIO,
                    "hashtable.c",
                    98,
                    "generator",
                ));
            }
            Some(g) => {
                return Err(ListError::fatal(
                    format!("hard-link gnum {g} precedes flist start {ndx_start}"),
                    ExitCode::PROTOCOL,
                    "hlink.c",
                    141,
                    "generator",
                ));
            }
            None => {}
        }
        let new: Vec<i64> = linked().collect();
        self.hlink_groups.extend(new);
        Ok(())
    }

    /// The uid and gid lists after a non-incremental list. Upstream: uidlist.c,
    /// recv_id_list().
    fn receive_id_lists(
        &mut self,
        r: &mut MuxReader,
        cfg: &FlistConfig,
        entries: &mut [FileEntry],
    ) -> Result<(), ListError> {
        // -A sends both lists even without -o/-g (its named entries' ids are in them);
        // the client's --numeric-ids sends none (a module's `numeric ids` still does:
        // upstream's numeric_ids = -1).
        let lists = !cfg.numeric_ids;
        if lists && (cfg.preserve_uid || cfg.preserve_acls) {
            for (id, name) in &receive_id_list(r, cfg)? {
                self.ids.add_user(*id, name);
            }
        }
        if lists && (cfg.preserve_gid || cfg.preserve_acls) {
            for (id, name) in &receive_id_list(r, cfg)? {
                self.ids.add_group(*id, name);
            }
        }
        if self.ids.active() {
            for e in entries.iter_mut() {
                // Upstream: acls.c, match_acl_ids() (before owners and groups).
                self.map_acl_ids(e);
                e.uid = e.uid.map(|u| self.ids.uid(u));
                e.gid = e.gid.map(|g| self.ids.gid(g));
            }
        }
        Ok(())
    }
}

impl ListReceiver {
    /// Maps the ids of an entry's named ACL entries to ours (a new copy only when one
    /// changes). Upstream: uidlist.c, match_uid() and match_gid().
    fn map_acl_ids(&self, e: &mut FileEntry) {
        let Some(acls) = &e.acls else { return };
        let map = |kind: IdKind, id: u32| match kind {
            IdKind::User => self.ids.uid(id),
            IdKind::Group => self.ids.gid(id),
        };
        let named = acls.access.iter().chain(acls.default.iter());
        if named
            .flat_map(|a| a.names.iter())
            .any(|n| map(n.kind, n.id) != n.id)
        {
            e.acls = Some(Arc::new(acls.mapped(map)));
        }
    }
}

/// Reads one id list an entry at a time (each entry's bytes are dropped as it is read,
/// rather than the growing list being decoded again as each frame arrives).
fn receive_id_list(r: &mut MuxReader, cfg: &FlistConfig) -> Result<IdList, ListError> {
    let mut dec = IdListDecoder::new(cfg.protocol, cfg.id0_names);
    loop {
        if let Some(list) = r.decode_with(|b| dec.decode(b))? {
            return Ok(list);
        }
    }
}

/// Sorts entries into list order, carrying a value per entry along.
fn sort_with<T: Copy>(
    entries: Vec<FileEntry>,
    extra: Vec<T>,
    protocol: i32,
) -> (Vec<FileEntry>, Vec<T>) {
    let mut order: Vec<usize> = (0..entries.len()).collect();
    order.sort_by(|&a, &b| {
        let (x, y) = (&entries[a], &entries[b]);
        compare_names(&x.name, x.is_dir(), &y.name, y.is_dir(), protocol)
    });
    let mut slots: Vec<Option<FileEntry>> = entries.into_iter().map(Some).collect();
    let mut sorted = Vec::with_capacity(slots.len());
    let mut sorted_extra = Vec::with_capacity(slots.len());
    for i in order {
        if let Some(e) = slots[i].take() {
            sorted.push(e);
            sorted_extra.push(extra[i]);
        }
    }
    (sorted, sorted_extra)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::mux::reader_over;

    fn cfg29() -> FlistConfig {
        FlistConfig {
            protocol: 29,
            preserve_uid: true,
            preserve_gid: true,
            preserve_links: true,
            preserve_devices: true,
            preserve_specials: true,
            ..FlistConfig::default()
        }
    }

    #[test]
    fn p29_list_with_id_lists_from_the_capture() {
        let c2s = include_bytes!("../../testdata/captures/b-b-push-p29-c2s.bin");
        let mut r = reader_over(c2s[80..].to_vec(), false);
        let mut lists = ListReceiver::new(cfg29(), false);
        let list = lists.receive(&mut r, None).unwrap();
        assert_eq!(list.entries.len(), 7);
        assert_eq!((list.ndx_start, list.end()), (0, 7));
        // The id lists and the io_error int32 were read: what follows is the transfer.
        assert_eq!(lists.io_error, 0);
    }

    #[test]
    fn endless_id_list_is_refused() {
        let mut bytes = Vec::new();
        // An empty list (protocol 29: one zero flag byte) ...
        bytes.push(0);
        // ... then uid 1 named "" over and over, never ending.
        for _ in 0..=crate::protocol::flist::MAX_ID_LIST_ENTRIES {
            bytes.extend_from_slice(&[1, 0, 0, 0, 0]);
        }
        let mut r = reader_over(bytes, false);
        let mut lists = ListReceiver::new(cfg29(), false);
        match lists.receive(&mut r, None) {
            Err(ListError::Flist(FlistError::Wire(e))) => {
                assert!(e.to_string().starts_with("id list of "), "{e}");
            }
            other => panic!("{other:?}"),
        }
    }

    fn cfg30_inc() -> FlistConfig {
        FlistConfig {
            protocol: 30,
            inc_recurse: true,
            ..FlistConfig::default()
        }
    }

    /// Entries encoded as one list (protocol 30, incremental), ended.
    fn encoded(cfg: &FlistConfig, entries: &[FileEntry], ndx_start: i32) -> Vec<u8> {
        let mut enc = crate::protocol::flist::FlistEncoder::new(cfg.clone());
        let mut out = Vec::new();
        for e in entries {
            enc.encode(e, ndx_start, false, &mut out).unwrap();
        }
        enc.end(0, &mut out);
        out
    }

    fn dir(name: &str) -> FileEntry {
        FileEntry {
            name: name.as_bytes().to_vec(),
            mode: 0o40755,
            xflags: crate::protocol::flist::xmit::TOP_DIR,
            ..FileEntry::default()
        }
    }

    fn file(name: &str) -> FileEntry {
        FileEntry {
            name: name.as_bytes().to_vec(),
            mode: 0o100644,
            size: 100,
            ..FileEntry::default()
        }
    }

    #[test]
    fn duplicate_directories_keep_their_directory_index() {
        // "d" twice and a file: both "d"s get a directory index (0 and 1), as upstream's
        // dir_flist holds every directory received; cleaning drops the second.
        let cfg = cfg30_inc();
        let first = encoded(&cfg, &[dir("d"), dir("d"), file("f")], 1);
        let sub = encoded(&cfg, &[file("d/x")], 5);
        let mut bytes = first;
        bytes.extend_from_slice(&sub);
        let mut r = reader_over(bytes, false);
        let mut lists = ListReceiver::new(cfg, false);
        let list = lists.receive(&mut r, None).unwrap();
        // Files sort before directories: "f", "d", "d".
        assert_eq!(list.entries[0].name, b"f");
        assert_eq!(list.active, [true, true, false]);
        assert_eq!(lists.dirs.len(), 2);
        match lists.receive(&mut r, Some(1)) {
            Err(ListError::Fatal { msg, at, .. }) => {
                assert_eq!(msg, "rsync: refusing flist for cleared dir_ndx 1");
                assert_eq!(at.line, 2920);
            }
            other => panic!("{other:?}"),
        }
        match lists.receive(&mut r, Some(2)) {
            Err(ListError::Fatal { msg, .. }) => {
                assert_eq!(msg, "rsync: refusing invalid dir_ndx 2 >= 2");
            }
            other => panic!("{other:?}"),
        }
        // The surviving "d" takes its list, once.
        let sub = lists.receive(&mut r, Some(0)).unwrap();
        assert_eq!(sub.ndx_start, 5);
        assert_eq!(sub.entries[0].name, b"d/x");
        match lists.receive(&mut r, Some(0)) {
            Err(ListError::Fatal { msg, at, .. }) => {
                assert_eq!(msg, "rsync: refusing malicious duplicate flist for dir 0");
                assert_eq!(at.line, 2924);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn hard_links_refer_back_only_to_groups_already_started() {
        use crate::protocol::flist::HardLink;
        let cfg = FlistConfig {
            preserve_hard_links: true,
            ..cfg30_inc()
        };
        let linked = |name: &str, h: HardLink| FileEntry {
            hard_link: Some(h),
            ..file(name)
        };
        // First list (indexes 1, 2): "d", and "f" starting group 2. Sub-lists start at 4.
        let first = encoded(&cfg, &[dir("d"), linked("f", HardLink::First)], 1);
        let run = |sub: &[FileEntry]| {
            let mut bytes = first.clone();
            bytes.extend_from_slice(&encoded(&cfg, sub, 4));
            let mut r = reader_over(bytes, false);
            let mut lists = ListReceiver::new(cfg.clone(), false);
            lists.receive(&mut r, None).unwrap();
            lists.receive(&mut r, Some(0))
        };
        assert!(run(&[linked("d/h", HardLink::Follower(2))]).is_ok());
        match run(&[linked("d/h", HardLink::Follower(1))]) {
            Err(ListError::Fatal {
                msg,
                code,
                at,
                role,
            }) => {
                assert_eq!(msg, "hard-link gnum 1 precedes flist start 4");
                assert_eq!(
                    (code, at.file, at.line, role),
                    (ExitCode::PROTOCOL, "hlink.c", 141, "generator")
                );
            }
            other => panic!("{other:?}"),
        }
        match run(&[linked("d/h", HardLink::Follower(0))]) {
            Err(ListError::Fatal { msg, code, .. }) => {
                assert_eq!(msg, "Internal hashtable error: illegal key supplied!");
                assert_eq!(code, ExitCode::MESSAGEIO);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn indexes_stay_within_int32() {
        assert!(ndx_space_left(1, 0));
        assert!(ndx_space_left(i32::MAX - 2, 0));
        assert!(!ndx_space_left(i32::MAX - 1, 0));
        assert!(!ndx_space_left(1, i32::MAX as usize));
        assert!(!ndx_space_left(0, usize::MAX));
        assert!(!ndx_space_left(i32::MAX, i64::MAX as usize));
        let e = FileEntry {
            name: b"abc".to_vec(),
            link_target: Some(vec![0; 10]),
            checksum: Some(vec![0; 16]),
            user_name: Some(b"u".to_vec()),
            ..FileEntry::default()
        };
        assert_eq!(entry_data_bytes(&e), 30);
    }
}
