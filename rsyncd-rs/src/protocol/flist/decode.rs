//! Decoding file-list entries (upstream: flist.c recv_file_entry(), recv_file_list();
//! uidlist.c recv_id_list()).

use super::{
    FileEntry, FlistConfig, FlistError, FlistItem, HardLink, IOERR_VALID_MASK, LinkTargets,
    MAXPATHLEN, clean_received_name, mode, xmit,
};
use crate::protocol::acl::{AclDecoder, FileAcls, IdKind};
use crate::protocol::codec::{get_int, get_longint, get_varint, get_varlong};
use crate::protocol::sanitize::{dir_depth, sanitize_path};
use crate::protocol::xattr::{XattrBlock, XattrList, decode_xattr_block};
use crate::protocol::{Decoded, WireError};
use std::sync::Arc;

/// The prefix a daemon with `munge symlinks` puts before received symlink targets.
pub const SYMLINK_PREFIX: &[u8] = b"/rsyncd-munged/";

/// The upper bound on a received nanosecond value (upstream: MAX_WIRE_NSEC).
const MAX_NSEC: i32 = 999_999_999;

/// The "previous entry" state both sides keep across the whole session.
#[derive(Debug, Clone, Default)]
struct Prev {
    name: Vec<u8>,
    mode: u32,
    mtime: i64,
    atime: i64,
    crtime: i64,
    uid: u32,
    gid: u32,
    rdev_major: u32,
    /// The whole previous device number (protocol < 28 repeats it).
    rdev: (u32, u32),
    dev: i64,
}

/// Decodes entries one at a time; state is committed only when an entry is complete, so a
/// call that answers `Needed` can be retried with more bytes.
#[derive(Debug, Clone)]
pub struct FlistDecoder {
    cfg: FlistConfig,
    prev: Prev,
    /// Every xattr list received literally, in order: a later entry names one by index
    /// (the table lives as long as the session; upstream: xattrs.c `rsync_xal_l`).
    xattr_table: Vec<Arc<XattrList>>,
    /// The ACLs received so far, by index (`-A`; upstream: acls.c, the access and default
    /// tables).
    acls: AclDecoder,
}

/// A cursor over the input that turns "not enough bytes" into an early `Needed`.
struct Cur<'a> {
    buf: &'a [u8],
    pos: usize,
}

/// Internal: either more bytes are needed, or the input is bad.
enum Stop {
    Need(usize),
    Bad(FlistError),
}

impl From<WireError> for Stop {
    fn from(e: WireError) -> Stop {
        Stop::Bad(FlistError::Wire(e))
    }
}

impl From<FlistError> for Stop {
    fn from(e: FlistError) -> Stop {
        Stop::Bad(e)
    }
}

impl<'a> Cur<'a> {
    fn rest(&self) -> &'a [u8] {
        &self.buf[self.pos.min(self.buf.len())..]
    }

    fn step<T>(&mut self, d: Decoded<T>) -> Result<T, Stop> {
        match d {
            Decoded::Done { value, used } => {
                self.pos += used;
                Ok(value)
            }
            Decoded::Needed(n) => Err(Stop::Need(n)),
        }
    }

    fn byte(&mut self) -> Result<u8, Stop> {
        match self.rest().first() {
            Some(&b) => {
                self.pos += 1;
                Ok(b)
            }
            None => Err(Stop::Need(1)),
        }
    }

    fn bytes(&mut self, n: usize) -> Result<&'a [u8], Stop> {
        let rest = self.rest();
        match rest.get(..n) {
            Some(b) => {
                self.pos += n;
                Ok(b)
            }
            None => Err(Stop::Need(n - rest.len())),
        }
    }

    fn int(&mut self) -> Result<i32, Stop> {
        let d = get_int(self.rest());
        self.step(d)
    }

    fn varint(&mut self) -> Result<i32, Stop> {
        let d = get_varint(self.rest())?;
        self.step(d)
    }

    /// varint30: an int32 before protocol 30.
    fn varint30(&mut self, protocol: i32) -> Result<i32, Stop> {
        if protocol < 30 {
            self.int()
        } else {
            self.varint()
        }
    }

    fn varlong(&mut self, min: u8) -> Result<i64, Stop> {
        let d = get_varlong(self.rest(), min)?;
        self.step(d)
    }

    fn longint(&mut self) -> Result<i64, Stop> {
        let d = get_longint(self.rest());
        self.step(d)
    }

    /// varlong30: a longint before protocol 30.
    fn varlong30(&mut self, protocol: i32, min: u8) -> Result<i64, Stop> {
        if protocol < 30 {
            self.longint()
        } else {
            self.varlong(min)
        }
    }
}

fn finish<T>(r: Result<T, Stop>, used: usize) -> Result<Decoded<T>, FlistError> {
    match r {
        Ok(value) => Ok(Decoded::Done { value, used }),
        Err(Stop::Need(n)) => Ok(Decoded::Needed(n.max(1))),
        Err(Stop::Bad(e)) => Err(e),
    }
}

impl FlistDecoder {
    /// A decoder for a session with this configuration.
    pub fn new(cfg: FlistConfig) -> FlistDecoder {
        FlistDecoder {
            acls: AclDecoder::new(cfg.acl_fake_super),
            cfg,
            prev: Prev::default(),
            xattr_table: Vec::new(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &FlistConfig {
        &self.cfg
    }

    /// Decodes the next entry or the end of the list. `current` holds the entries of the
    /// list being received so far and `ndx_start` its first index: a hard-link follower
    /// pointing into it copies the first member's attributes.
    pub fn decode(
        &mut self,
        buf: &[u8],
        current: &[FileEntry],
        ndx_start: i32,
    ) -> Result<Decoded<FlistItem>, FlistError> {
        let mut cur = Cur { buf, pos: 0 };
        let mut prev = self.prev.clone();
        let mut new_xattrs = None;
        // The ACL tables grow as blocks are read: an entry cut short (or refused) takes
        // back what its blocks added, and is read again whole.
        let mut acls = std::mem::replace(&mut self.acls, AclDecoder::new(false));
        let mark = acls.mark();
        let r = self.decode_inner(
            &mut cur,
            &mut prev,
            current,
            ndx_start,
            &mut new_xattrs,
            &mut acls,
        );
        let used = cur.pos;
        let out = finish(r, used);
        if !matches!(out, Ok(Decoded::Done { .. })) {
            acls.rollback(mark);
        }
        self.acls = acls;
        let out = out?;
        if let Decoded::Done {
            value: FlistItem::Entry(_),
            ..
        } = &out
        {
            self.prev = prev;
            if let Some(list) = new_xattrs {
                self.xattr_table.push(list);
            }
        }
        Ok(out)
    }

    fn read_flags(&self, cur: &mut Cur<'_>) -> Result<Option<u32>, Stop> {
        let c = &self.cfg;
        if c.varint_flags {
            let f = cur.varint()? as u32;
            return Ok(if f == 0 { None } else { Some(f) });
        }
        let mut f = u32::from(cur.byte()?);
        if f == 0 {
            return Ok(None);
        }
        if c.protocol >= 28 && f & xmit::EXTENDED_FLAGS != 0 {
            f |= u32::from(cur.byte()?) << 8;
        }
        Ok(Some(f))
    }

    fn decode_inner(
        &self,
        cur: &mut Cur<'_>,
        prev: &mut Prev,
        current: &[FileEntry],
        ndx_start: i32,
        new_xattrs: &mut Option<Arc<XattrList>>,
        acls: &mut AclDecoder,
    ) -> Result<FlistItem, Stop> {
        let c = &self.cfg;
        let p = c.protocol;
        let Some(xflags) = self.read_flags(cur)? else {
            // End of list: varint mode carries the io_error after the zero.
            let io_error = if c.varint_flags {
                cur.varint()? & IOERR_VALID_MASK
            } else {
                0
            };
            return Ok(FlistItem::End { io_error });
        };
        if !c.varint_flags && xflags == xmit::EXTENDED_FLAGS | xmit::IO_ERROR_ENDLIST {
            if !c.safe_flist {
                return Err(FlistError::BadFlags(xflags).into());
            }
            let io_error = cur.varint()? & IOERR_VALID_MASK;
            return Ok(FlistItem::End { io_error });
        }

        let l1 = if xflags & xmit::SAME_NAME != 0 {
            usize::from(cur.byte()?)
        } else {
            0
        };
        let l2 = if xflags & xmit::LONG_NAME != 0 {
            cur.varint30(p)?
        } else {
            i32::from(cur.byte()?)
        };
        // Upstream compares as ints, so a negative length passes its check and fails
        // later; refusing it here with the same words is the safe reading.
        let Some(l2) = usize::try_from(l2).ok().filter(|&n| n < MAXPATHLEN - l1) else {
            return Err(FlistError::NameOverflow {
                xflags,
                l1,
                l2: i64::from(l2),
                lastname: String::from_utf8_lossy(&prev.name).into_owned(),
            }
            .into());
        };
        // Upstream keeps what there is of a shorter previous name, leaving a NUL that cuts
        // the name short; a prefix longer than the previous name is refused instead.
        if l1 > prev.name.len() {
            return Err(FlistError::Wire(WireError::Malformed {
                what: "file name prefix length",
            })
            .into());
        }
        let mut raw_name = prev.name[..l1].to_vec();
        raw_name.extend_from_slice(cur.bytes(l2)?);
        prev.name.clone_from(&raw_name);
        let name = clean_received_name(&raw_name, c.relative)?;

        let mut e = FileEntry {
            name,
            xflags,
            ..FileEntry::default()
        };

        if c.preserve_hard_links
            && p >= 30
            && xflags & xmit::HLINKED != 0
            && xflags & xmit::HLINK_FIRST == 0
        {
            let first = cur.varint()?;
            let limit = ndx_start.saturating_add(i32::try_from(current.len()).unwrap_or(i32::MAX));
            if first < 0 || first >= limit {
                return Err(FlistError::BadHardLink(first).into());
            }
            e.hard_link = Some(HardLink::Follower(first));
            if first >= ndx_start {
                let f = &current[(first - ndx_start) as usize];
                e.size = f.size;
                e.mtime = f.mtime;
                e.mtime_nsec = f.mtime_nsec;
                e.mode = f.mode;
                e.atime = f.atime;
                e.crtime = f.crtime;
                e.uid = f.uid;
                e.gid = f.gid;
                e.rdev = f.rdev;
                e.link_target.clone_from(&f.link_target);
                e.checksum.clone_from(&f.checksum);
                prev.mode = f.mode;
                prev.mtime = f.mtime;
                if let Some(u) = f.uid {
                    prev.uid = u;
                }
                if let Some(g) = f.gid {
                    prev.gid = g;
                }
                if let Some(a) = f.atime {
                    prev.atime = a;
                }
                // A follower's ACL and xattr blocks still travel in full.
                self.read_xattr_block(cur, &mut e, new_xattrs, acls)?;
                self.check_entry(&e)?;
                return Ok(FlistItem::Entry(Box::new(e)));
            }
        }

        e.size = cur.varlong30(p, 3)?;
        if e.size < 0 {
            return Err(FlistError::Wire(WireError::Malformed {
                what: "negative file length",
            })
            .into());
        }
        if xflags & xmit::SAME_TIME == 0 {
            prev.mtime = if p >= 30 {
                cur.varlong(4)?
            } else {
                i64::from(cur.int()? as u32)
            };
        }
        e.mtime = prev.mtime;
        if xflags & xmit::MOD_NSEC != 0 {
            let n = cur.varint()?;
            if !(0..=MAX_NSEC).contains(&n) {
                return Err(FlistError::Wire(WireError::Malformed {
                    what: "modtime_nsec",
                })
                .into());
            }
            e.mtime_nsec = n as u32;
        }
        if c.preserve_crtimes {
            if xflags & xmit::CRTIME_EQ_MTIME == 0 {
                prev.crtime = cur.varlong(4)?;
            } else {
                prev.crtime = e.mtime;
            }
            e.crtime = Some(prev.crtime);
        }
        if xflags & xmit::SAME_MODE == 0 {
            prev.mode = cur.int()? as u32;
        }
        e.mode = prev.mode;
        if !(mode::is_valid_type(e.mode) || (e.mode == 0 && c.missing_args_delete)) {
            return Err(FlistError::BadMode {
                mode: e.mode,
                name: String::from_utf8_lossy(&e.name).into_owned(),
            }
            .into());
        }
        if c.preserve_atimes && !mode::is_dir(e.mode) {
            if xflags & xmit::SAME_ATIME == 0 {
                prev.atime = cur.varlong(4)?;
            }
            e.atime = Some(prev.atime);
        }
        if c.preserve_uid {
            if xflags & xmit::SAME_UID == 0 {
                prev.uid = cur.varint30(p)? as u32;
                if p >= 30 && xflags & xmit::USER_NAME_FOLLOWS != 0 {
                    let len = usize::from(cur.byte()?);
                    e.user_name = Some(cur.bytes(len)?.to_vec());
                }
            }
            e.uid = Some(prev.uid);
        }
        if c.preserve_gid {
            if xflags & xmit::SAME_GID == 0 {
                prev.gid = cur.varint30(p)? as u32;
                if p >= 30 && xflags & xmit::GROUP_NAME_FOLLOWS != 0 {
                    let len = usize::from(cur.byte()?);
                    e.group_name = Some(cur.bytes(len)?.to_vec());
                }
            }
            e.gid = Some(prev.gid);
        }
        let is_dev = mode::is_device(e.mode);
        if (c.preserve_devices && is_dev)
            || (c.preserve_specials && mode::is_special(e.mode) && p < 31)
        {
            if p < 28 {
                if xflags & xmit::SAME_RDEV_PRE28 == 0 {
                    // Old peers send the sender's dev_t as an int32 (Linux's layout).
                    let rdev = cur.int()? as u32;
                    prev.rdev = (
                        (rdev >> 8) & 0xfff,
                        (rdev & 0xff) | ((rdev >> 12) & 0xfff00),
                    );
                }
                e.rdev = Some(prev.rdev);
            } else {
                if xflags & xmit::SAME_RDEV_MAJOR == 0 {
                    prev.rdev_major = cur.varint30(p)? as u32;
                }
                let minor = if p >= 30 {
                    cur.varint()? as u32
                } else if xflags & xmit::RDEV_MINOR_8_PRE30 != 0 {
                    u32::from(cur.byte()?)
                } else {
                    cur.int()? as u32
                };
                e.rdev = Some((prev.rdev_major, minor));
                prev.rdev = (prev.rdev_major, minor);
            }
            e.size = 0;
        } else if is_dev {
            e.rdev = Some((0, 0));
            e.size = 0;
        }
        if mode::is_lnk(e.mode) {
            if c.preserve_links {
                let len = cur.varint30(p)?;
                let len = usize::try_from(len)
                    .ok()
                    .filter(|l| *l < MAXPATHLEN)
                    .ok_or(Stop::Bad(FlistError::Wire(WireError::TooLarge {
                        what: "symlink target",
                        got: len as u64,
                        limit: MAXPATHLEN as u64,
                    })))?;
                let target = cur.bytes(len)?;
                e.link_target = Some(match c.link_targets {
                    LinkTargets::AsSent => target.to_vec(),
                    LinkTargets::Munged => [SYMLINK_PREFIX, target].concat(),
                    // Upstream leaves an empty target alone (sanitizing would make it ".").
                    LinkTargets::Sanitized if target.is_empty() => Vec::new(),
                    // At the depth of this entry's own directory. Stock 3.5.0 uses the
                    // depth of the last name that had a directory part, so a top-level
                    // link listed after `a/b/f` (a second argument, no incremental
                    // recursion) may climb two levels out; see ARCHITECTURE.md.
                    LinkTargets::Sanitized => sanitize_path(target, dir_depth(&e.name)),
                });
            } else {
                e.link_target = Some(Vec::new());
            }
        }
        if c.preserve_hard_links {
            let hlinked = xflags & xmit::HLINKED != 0 || (p < 28 && mode::is_reg(e.mode));
            if p >= 30 {
                if xflags & xmit::HLINKED != 0 && xflags & xmit::HLINK_FIRST != 0 {
                    e.hard_link = Some(HardLink::First);
                }
            } else if hlinked {
                let (dev, ino) = if p < 26 {
                    (i64::from(cur.int()?), i64::from(cur.int()?))
                } else {
                    if xflags & xmit::SAME_DEV_PRE30 == 0 {
                        prev.dev = cur.longint()?;
                    }
                    (prev.dev, cur.longint()?)
                };
                e.hard_link = Some(HardLink::DevIno { dev, ino });
            }
        }
        if c.flist_csum_len > 0 && (mode::is_reg(e.mode) || p < 28) {
            let sum = cur.bytes(c.flist_csum_len)?;
            if mode::is_reg(e.mode) {
                e.checksum = Some(sum.to_vec());
            }
        }
        self.read_xattr_block(cur, &mut e, new_xattrs, acls)?;
        self.check_entry(&e)?;
        Ok(FlistItem::Entry(Box::new(e)))
    }

    /// The entry's ACL and xattr blocks, which every entry carries when the options are
    /// on. Upstream: flist.c, recv_file_list() → receive_acl(), receive_xattr().
    fn read_xattr_block(
        &self,
        cur: &mut Cur<'_>,
        e: &mut FileEntry,
        new_xattrs: &mut Option<Arc<XattrList>>,
        acls: &mut AclDecoder,
    ) -> Result<(), Stop> {
        // The ACL blocks (-A, not for symlinks) come first. Ids stay the sender's here;
        // names sent inline go with the entry to the receiver's id registry.
        // Upstream: flist.c, recv_file_list() → receive_acl().
        if self.cfg.preserve_acls && !mode::is_lnk(e.mode) {
            let mut names = Vec::new();
            let mut note = |kind: IdKind, id: u32, name: Option<&[u8]>| {
                if let Some(n) = name {
                    names.push((kind, id, n.to_vec()));
                }
                id
            };
            let d = acls
                .decode(cur.rest(), e.mode, &mut note)
                .map_err(FlistError::from)?;
            if let Some(found) = cur.step(d)? {
                let access = acls.access_acl(found.access).cloned();
                let default = found.default.and_then(|i| acls.default_acl(i).cloned());
                e.acls = Some(Arc::new(FileAcls {
                    access,
                    default,
                    inline_names: names,
                }));
            }
        }
        if self.cfg.preserve_xattrs {
            let d =
                decode_xattr_block(cur.rest(), self.xattr_table.len()).map_err(FlistError::from)?;
            e.xattrs = Some(match cur.step(d)? {
                XattrBlock::Cached(n) => match self.xattr_table.get(n) {
                    Some(list) => Arc::clone(list),
                    None => {
                        let len = self.xattr_table.len();
                        let got = n as i64 + 1;
                        let e = crate::protocol::xattr::XattrError::IndexOutOfRange { got, len };
                        return Err(FlistError::from(e).into());
                    }
                },
                XattrBlock::Literal(list) => {
                    let list = Arc::new(list);
                    *new_xattrs = Some(Arc::clone(&list));
                    list
                }
            });
        }
        Ok(())
    }

    /// Checks that hold for every entry, whatever its encoding.
    fn check_entry(&self, e: &FileEntry) -> Result<(), FlistError> {
        if e.name == b"." && !e.is_dir() {
            return Err(FlistError::DotNotDir(".".into()));
        }
        Ok(())
    }
}

/// An id list: ids and the names the sender gave them.
pub type IdList = Vec<(u32, Vec<u8>)>;

/// The most ids one id list may carry. Upstream has no limit; a sender lists only the ids
/// its file list uses, so a real list is far shorter than this (a million users), and the
/// bound keeps what a peer can make us hold to about 260 MiB (names are at most 255 bytes).
pub const MAX_ID_LIST_ENTRIES: usize = 1 << 20;

/// One step of an id list, borrowed from the input.
enum IdStep<'a> {
    /// An id and its name.
    Id(u32, &'a [u8]),
    /// The terminating id 0, with the name of id 0 when `id0_names`.
    End(Option<&'a [u8]>),
}

fn id_step<'a>(cur: &mut Cur<'a>, protocol: i32, id0_names: bool) -> Result<IdStep<'a>, Stop> {
    let id = cur.varint30(protocol)?;
    if id == 0 {
        if !id0_names {
            return Ok(IdStep::End(None));
        }
        let len = usize::from(cur.byte()?);
        return Ok(IdStep::End(Some(cur.bytes(len)?)));
    }
    let len = usize::from(cur.byte()?);
    Ok(IdStep::Id(id as u32, cur.bytes(len)?))
}

fn too_many_ids(got: usize) -> FlistError {
    FlistError::Wire(WireError::TooLarge {
        what: "id list",
        got: got as u64,
        limit: MAX_ID_LIST_ENTRIES as u64,
    })
}

/// Reads an id list one id at a time, so that a reader can drop each entry's bytes as it
/// goes instead of decoding the whole list again every time more bytes arrive.
/// Upstream: uidlist.c, recv_id_list().
#[derive(Debug, Clone)]
pub struct IdListDecoder {
    protocol: i32,
    id0_names: bool,
    list: IdList,
}

impl IdListDecoder {
    /// A decoder for one list (uid or gid); `id0_names` is CF_ID0_NAMES.
    pub fn new(protocol: i32, id0_names: bool) -> IdListDecoder {
        IdListDecoder {
            protocol,
            id0_names,
            list: Vec::new(),
        }
    }

    /// Decodes the next entry: `Done(None)` when an id was taken (drop `used` bytes and
    /// call again), `Done(Some(list))` at the end of the list. More than
    /// [`MAX_ID_LIST_ENTRIES`] ids are refused.
    pub fn decode(&mut self, buf: &[u8]) -> Result<Decoded<Option<IdList>>, FlistError> {
        let mut cur = Cur { buf, pos: 0 };
        let r = id_step(&mut cur, self.protocol, self.id0_names);
        let used = cur.pos;
        let step = match finish(r, used)? {
            Decoded::Needed(n) => return Ok(Decoded::Needed(n)),
            Decoded::Done { value, .. } => value,
        };
        let value = match step {
            IdStep::Id(id, name) => {
                if self.list.len() >= MAX_ID_LIST_ENTRIES {
                    return Err(too_many_ids(self.list.len() + 1));
                }
                self.list.push((id, name.to_vec()));
                None
            }
            IdStep::End(name0) => {
                if let Some(name) = name0 {
                    self.list.push((0, name.to_vec()));
                }
                Some(std::mem::take(&mut self.list))
            }
        };
        Ok(Decoded::Done { value, used })
    }
}

/// Decodes one id list (uid or gid) sent after a non-incremental file list: pairs of id
/// and name, ended by id 0 (followed by the name of id 0 when `id0_names`); at most
/// [`MAX_ID_LIST_ENTRIES`] ids. The list is only walked, without copying anything, until
/// all of it is in `buf`, so calling again as bytes arrive stays cheap; a reader can also
/// take it an entry at a time with [`IdListDecoder`].
/// Upstream: uidlist.c, recv_id_list().
pub fn decode_id_list(
    buf: &[u8],
    protocol: i32,
    id0_names: bool,
) -> Result<Decoded<IdList>, FlistError> {
    let mut cur = Cur { buf, pos: 0 };
    let scan = (|| -> Result<(), Stop> {
        let mut ids = 0usize;
        loop {
            match id_step(&mut cur, protocol, id0_names)? {
                IdStep::End(_) => return Ok(()),
                IdStep::Id(..) => {
                    ids += 1;
                    if ids > MAX_ID_LIST_ENTRIES {
                        return Err(Stop::Bad(too_many_ids(ids)));
                    }
                }
            }
        }
    })();
    if let Decoded::Needed(n) = finish(scan, cur.pos)? {
        return Ok(Decoded::Needed(n));
    }
    let mut dec = IdListDecoder::new(protocol, id0_names);
    let mut pos = 0;
    loop {
        match dec.decode(buf.get(pos..).unwrap_or_default())? {
            Decoded::Done {
                value: Some(list),
                used,
            } => {
                return Ok(Decoded::Done {
                    value: list,
                    used: pos + used,
                });
            }
            Decoded::Done { value: None, used } => pos += used,
            // The walk above found the whole list.
            Decoded::Needed(n) => return Ok(Decoded::Needed(n)),
        }
    }
}
