//! The ACL blocks of a file-list entry (upstream: acls.c send_acl(), receive_acl()).
//!
//! After an entry's other fields, every entry but a symlink carries its access ACL, and a
//! directory its default ACL after it. Each block is `varint ndx+1` naming an ACL of the
//! same kind sent before, or `0` and the ACL itself:
//!
//! ```text
//! byte flags                  XMIT_USER_OBJ 1, GROUP_OBJ 2, MASK_OBJ 4, OTHER_OBJ 8, NAME_LIST 16
//! [varint perms] x4           for each slot flagged, in that order
//! [varint count, count x {    when NAME_LIST (count 1..=65536)
//!     varint id
//!     varint perms<<2 | is_user<<1 | name_follows
//!     [byte len, name]        when name_follows
//! }]
//! ```
//!
//! Both sides keep two append-only lists (access, default) for the whole session, so an
//! index means the same ACL to both.

use std::collections::HashMap;

use super::{AclError, AclKind, IdAccess, IdKind, MAX_WIRE_ACL_COUNT, PERM_BITS, RsyncAcl};
use crate::protocol::codec::{get_varint, put_varint};
use crate::protocol::flist::mode;
use crate::protocol::{Decoded, WireError};

/// `flags` bits of a literal ACL. Upstream: acls.c, XMIT_*.
pub mod xmit {
    pub const USER_OBJ: u8 = 0x01;
    pub const GROUP_OBJ: u8 = 0x02;
    pub const MASK_OBJ: u8 = 0x04;
    pub const OTHER_OBJ: u8 = 0x08;
    pub const NAME_LIST: u8 = 0x10;
}

/// Low bits of a named entry's perms varint. Upstream: acls.c, XFLAG_*.
const XFLAG_NAME_FOLLOWS: u32 = 0x1;
const XFLAG_NAME_IS_USER: u32 = 0x2;

/// How the sender makes named entries' ids known to the receiver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AclNames {
    /// `--numeric-ids`: ids only, and they go into no id list.
    Numeric,
    /// Not incremental: ids only here; each id goes into the uid/gid lists sent after the
    /// file list.
    Listed,
    /// Incremental recursion without `--numeric-ids`: an id's name goes inline the first
    /// time the id is seen.
    Inline,
}

/// The sender's record of ids (its uid and gid lists). Upstream: uidlist.c, add_uid() and
/// add_gid().
pub trait AclIdNames {
    /// Records `id`; its name when this is the first time the id is seen (and it has one),
    /// `None` afterwards.
    fn first_name(&mut self, kind: IdKind, id: u32) -> Option<Vec<u8>>;
}

impl<F: FnMut(IdKind, u32) -> Option<Vec<u8>>> AclIdNames for F {
    fn first_name(&mut self, kind: IdKind, id: u32) -> Option<Vec<u8>> {
        self(kind, id)
    }
}

/// The receiver's id mapping for named entries. Upstream: acls.c recv_ida_entries() with
/// uidlist.c recv_user_name(), recv_group_name(), match_uid(), match_gid().
pub trait AclIdMap {
    /// The local id for a named entry: `name` is the name sent inline with it, if any. The
    /// caller decides what an entry without a name maps to (incremental recursion and
    /// `--numeric-ids` decide, and 3.5.0 differs from earlier versions for users); a
    /// non-incremental receiver keeps the id and maps the whole table with
    /// [`AclDecoder::map_ids`] once the id lists are in.
    fn map_id(&mut self, kind: IdKind, id: u32, name: Option<&[u8]>) -> u32;
}

impl<F: FnMut(IdKind, u32, Option<&[u8]>) -> u32> AclIdMap for F {
    fn map_id(&mut self, kind: IdKind, id: u32, name: Option<&[u8]>) -> u32 {
        self(kind, id, name)
    }
}

/// One append-only list of ACLs sent, with an index to find an identical one.
#[derive(Debug, Clone, Default)]
struct SendCache {
    index: HashMap<RsyncAcl, usize>,
}

impl SendCache {
    /// The index of an identical ACL sent before, or `None` after recording it as the next.
    /// Upstream's search (find_matching_rsync_acl()) walks the list from its last hit, but
    /// an ACL is added only when no match exists, so each is there once and any search
    /// finds the same index.
    fn find_or_add(&mut self, acl: &RsyncAcl) -> Option<usize> {
        if let Some(&i) = self.index.get(acl) {
            return Some(i);
        }
        let next = self.index.len();
        self.index.insert(acl.clone(), next);
        None
    }
}

/// The sender's half: writes an entry's ACL blocks and keeps the two caches.
/// Upstream: acls.c, send_acl().
#[derive(Debug, Clone)]
pub struct AclEncoder {
    names: AclNames,
    access: SendCache,
    default: SendCache,
}

impl Default for AclEncoder {
    /// Ids travel in the id lists (a non-incremental list).
    fn default() -> AclEncoder {
        AclEncoder::new(AclNames::Listed)
    }
}

impl AclEncoder {
    /// An encoder for a session whose ids travel as `names` says.
    pub fn new(names: AclNames) -> AclEncoder {
        AclEncoder {
            names,
            access: SendCache::default(),
            default: SendCache::default(),
        }
    }

    /// Appends the ACL blocks of an entry of wire mode `m` (after `--chmod` and fake
    /// super's `%stat`): `access` is the full access ACL as read (`None` when none was
    /// read: the mode's is sent), `default` a directory's default ACL (`None` or empty
    /// when it has none). The access ACL is condensed against `m` here. A symlink has no
    /// ACL blocks and nothing is written.
    ///
    /// Errors (nothing is appended and no cache changes): more than 65,536 named entries,
    /// which a 3.5.0 receiver would refuse.
    pub fn encode(
        &mut self,
        m: u32,
        access: Option<&RsyncAcl>,
        default: Option<&RsyncAcl>,
        ids: &mut dyn AclIdNames,
        out: &mut Vec<u8>,
    ) -> Result<(), AclError> {
        if mode::is_lnk(m) {
            return Ok(());
        }
        let access = match access {
            Some(a) => a.strip_access(m),
            None => RsyncAcl::from_mode(m).strip_access(m),
        };
        let empty = RsyncAcl::default();
        let default = mode::is_dir(m).then(|| default.unwrap_or(&empty));
        for acl in std::iter::once(&access).chain(default) {
            if acl.names.len() > MAX_WIRE_ACL_COUNT {
                return Err(AclError::CountOutOfRange(acl.names.len() as i64));
            }
        }
        self.encode_block(&access, AclKind::Access, ids, out);
        if let Some(d) = default {
            self.encode_block(d, AclKind::Default, ids, out);
        }
        Ok(())
    }

    /// Upstream: acls.c, send_rsync_acl().
    fn encode_block(
        &mut self,
        acl: &RsyncAcl,
        kind: AclKind,
        ids: &mut dyn AclIdNames,
        out: &mut Vec<u8>,
    ) {
        let cache = match kind {
            AclKind::Access => &mut self.access,
            AclKind::Default => &mut self.default,
        };
        if let Some(i) = cache.find_or_add(acl) {
            put_varint(out, (i as i32).wrapping_add(1));
            return;
        }
        put_varint(out, 0);
        let slots = [
            (acl.user_obj, xmit::USER_OBJ),
            (acl.group_obj, xmit::GROUP_OBJ),
            (acl.mask_obj, xmit::MASK_OBJ),
            (acl.other_obj, xmit::OTHER_OBJ),
        ];
        let mut flags = slots
            .iter()
            .filter(|(v, _)| v.is_some())
            .fold(0, |f, (_, bit)| f | bit);
        if !acl.names.is_empty() {
            flags |= xmit::NAME_LIST;
        }
        out.push(flags);
        for v in slots.iter().filter_map(|(v, _)| *v) {
            put_varint(out, i32::from(v));
        }
        if !acl.names.is_empty() {
            self.encode_names(&acl.names, ids, out);
        }
    }

    /// Upstream: acls.c, send_ida_entries().
    fn encode_names(&self, names: &[IdAccess], ids: &mut dyn AclIdNames, out: &mut Vec<u8>) {
        put_varint(out, names.len() as i32);
        for e in names {
            let mut xbits = e.perms << 2;
            if e.kind == IdKind::User {
                xbits |= XFLAG_NAME_IS_USER;
            }
            let name = match self.names {
                AclNames::Numeric => None,
                AclNames::Listed | AclNames::Inline => ids.first_name(e.kind, e.id),
            };
            put_varint(out, e.id as i32);
            // Upstream writes the length as a byte but all of the name, so a name over
            // 255 bytes would put the stream out of step; such a name is left to the id.
            match name.filter(|n| self.names == AclNames::Inline && n.len() <= 255) {
                Some(n) => {
                    put_varint(out, (xbits | XFLAG_NAME_FOLLOWS) as i32);
                    out.push(n.len() as u8);
                    out.extend_from_slice(&n);
                }
                None => put_varint(out, xbits as i32),
            }
        }
    }
}

/// Where an entry's ACLs are in the receiver's tables: what upstream keeps in the file
/// entry (F_ACL, F_DIR_DEFACL).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryAcls {
    /// Index into the access table ([`AclDecoder::access_acl`]).
    pub access: usize,
    /// Index into the default table, for a directory.
    pub default: Option<usize>,
}

/// The receiver's half: reads an entry's ACL blocks into two append-only tables.
/// Upstream: acls.c, receive_acl().
#[derive(Debug, Clone)]
pub struct AclDecoder {
    check_perms: bool,
    access: Vec<RsyncAcl>,
    default: Vec<RsyncAcl>,
}

/// A block as parsed, before its ids are mapped and it joins a table.
enum Block {
    Index(usize),
    Literal(RsyncAcl, Vec<Option<Vec<u8>>>),
}

/// Internal: more bytes are needed, or the input is bad.
enum Stop {
    Need(usize),
    Bad(AclError),
}

impl From<WireError> for Stop {
    fn from(e: WireError) -> Stop {
        Stop::Bad(AclError::Wire(e))
    }
}

impl From<AclError> for Stop {
    fn from(e: AclError) -> Stop {
        Stop::Bad(e)
    }
}

/// A cursor over the input that turns "not enough bytes" into an early `Need`.
struct Cur<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cur<'a> {
    fn rest(&self) -> &'a [u8] {
        self.buf.get(self.pos..).unwrap_or_default()
    }

    fn byte(&mut self) -> Result<u8, Stop> {
        let b = *self.rest().first().ok_or(Stop::Need(1))?;
        self.pos += 1;
        Ok(b)
    }

    fn bytes(&mut self, n: usize) -> Result<&'a [u8], Stop> {
        let rest = self.rest();
        let b = rest.get(..n).ok_or_else(|| Stop::Need(n - rest.len()))?;
        self.pos += n;
        Ok(b)
    }

    fn varint(&mut self) -> Result<i32, Stop> {
        match get_varint(self.rest())? {
            Decoded::Done { value, used } => {
                self.pos += used;
                Ok(value)
            }
            Decoded::Needed(n) => Err(Stop::Need(n)),
        }
    }
}

impl AclDecoder {
    /// A decoder for a session. `fake_super` (am_root < 0) accepts perm bits outside
    /// 0..=7, as upstream stores them in `%aacl`/`%dacl` unchecked; everyone else refuses
    /// them.
    pub fn new(fake_super: bool) -> AclDecoder {
        AclDecoder {
            check_perms: !fake_super,
            access: Vec::new(),
            default: Vec::new(),
        }
    }

    /// Decodes the ACL blocks of an entry of received mode `m` (the access block, and the
    /// default block when `m` is a directory; nothing for a symlink, which the caller
    /// need not call for). Literal ACLs get their ids from `ids`, their mask filled in
    /// ([`RsyncAcl::fill_received_mask`]) and join the tables; nothing changes, and `ids`
    /// is not called, unless the whole of both blocks is in `buf`, so a call that answers
    /// `Needed` can be repeated with more bytes.
    ///
    /// Errors: an index past the table ([`AclError::BadIndex`]), perm bits out of range
    /// ([`AclError::ValueOutOfRange`]), a count over 65,536, a malformed varint.
    pub fn decode(
        &mut self,
        buf: &[u8],
        m: u32,
        ids: &mut dyn AclIdMap,
    ) -> Result<Decoded<Option<EntryAcls>>, AclError> {
        if mode::is_lnk(m) {
            return Ok(Decoded::Done {
                value: None,
                used: 0,
            });
        }
        let mut cur = Cur { buf, pos: 0 };
        let parsed = (|| -> Result<_, Stop> {
            let access = self.parse_block(&mut cur, AclKind::Access)?;
            let default = match mode::is_dir(m) {
                true => Some(self.parse_block(&mut cur, AclKind::Default)?),
                false => None,
            };
            Ok((access, default))
        })();
        let (access, default) = match parsed {
            Ok(blocks) => blocks,
            Err(Stop::Need(n)) => return Ok(Decoded::Needed(n.max(1))),
            Err(Stop::Bad(e)) => return Err(e),
        };
        let access = self.commit(access, AclKind::Access, m, ids);
        let default = default.map(|d| self.commit(d, AclKind::Default, m, ids));
        Ok(Decoded::Done {
            value: Some(EntryAcls { access, default }),
            used: cur.pos,
        })
    }

    /// An access ACL received, as held after the mask fill-in.
    pub fn access_acl(&self, index: usize) -> Option<&RsyncAcl> {
        self.access.get(index)
    }

    /// A default ACL received.
    pub fn default_acl(&self, index: usize) -> Option<&RsyncAcl> {
        self.default.get(index)
    }

    /// Maps every named id in both tables, once the id lists after a non-incremental
    /// file list are in (unless `--numeric-ids` without `--usermap`/`--groupmap`).
    /// Upstream: acls.c, match_acl_ids().
    pub fn map_ids(&mut self, mut f: impl FnMut(IdKind, u32) -> u32) {
        for acl in self.access.iter_mut().chain(self.default.iter_mut()) {
            acl.map_ids(&mut f);
        }
    }

    /// How many ACLs each table holds: a point to go back to with [`rollback`](Self::rollback)
    /// when the entry these blocks belong to turns out to be incomplete.
    pub fn mark(&self) -> (usize, usize) {
        (self.access.len(), self.default.len())
    }

    /// Forgets the ACLs added since `mark` (the caller decodes the entry again once more
    /// bytes are in).
    pub fn rollback(&mut self, mark: (usize, usize)) {
        self.access.truncate(mark.0);
        self.default.truncate(mark.1);
    }

    fn table(&self, kind: AclKind) -> &[RsyncAcl] {
        match kind {
            AclKind::Access => &self.access,
            AclKind::Default => &self.default,
        }
    }

    fn commit(&mut self, block: Block, kind: AclKind, m: u32, ids: &mut dyn AclIdMap) -> usize {
        let (mut acl, names) = match block {
            Block::Index(i) => return i,
            Block::Literal(acl, names) => (acl, names),
        };
        for (e, name) in acl.names.iter_mut().zip(&names) {
            e.id = ids.map_id(e.kind, e.id, name.as_deref());
        }
        acl.fill_received_mask(kind, m);
        let table = match kind {
            AclKind::Access => &mut self.access,
            AclKind::Default => &mut self.default,
        };
        table.push(acl);
        table.len() - 1
    }

    /// Upstream: acls.c, recv_rsync_acl().
    fn parse_block(&self, cur: &mut Cur<'_>, kind: AclKind) -> Result<Block, Stop> {
        let ndx = cur.varint()?;
        let count = self.table(kind).len();
        let Ok(ndx_plus_1) = usize::try_from(ndx) else {
            return Err(Stop::Bad(AclError::BadIndex { kind, ndx, count }));
        };
        if ndx_plus_1 > count {
            return Err(Stop::Bad(AclError::BadIndex { kind, ndx, count }));
        }
        if ndx_plus_1 != 0 {
            return Ok(Block::Index(ndx_plus_1 - 1));
        }
        let flags = cur.byte()?;
        let mut acl = RsyncAcl::default();
        let slots = [
            (xmit::USER_OBJ, &mut acl.user_obj),
            (xmit::GROUP_OBJ, &mut acl.group_obj),
            (xmit::MASK_OBJ, &mut acl.mask_obj),
            (xmit::OTHER_OBJ, &mut acl.other_obj),
        ];
        for (bit, slot) in slots {
            if flags & bit != 0 {
                *slot = self.slot_value(cur.varint()? as u32)?;
            }
        }
        let mut names = Vec::new();
        if flags & xmit::NAME_LIST != 0 {
            (acl.names, names) = self.parse_names(cur)?;
        }
        Ok(Block::Literal(acl, names))
    }

    /// A slot's value, checked (0..=7) unless fake super. Upstream keeps a slot in a byte,
    /// so a fake-super receiver keeps the low 8 bits, and 0x80 among them reads as absent.
    fn slot_value(&self, v: u32) -> Result<Option<u8>, Stop> {
        if self.check_perms && v & !PERM_BITS != 0 {
            return Err(Stop::Bad(AclError::ValueOutOfRange(v)));
        }
        let b = v as u8;
        Ok((b != super::NO_ENTRY).then_some(b))
    }

    /// Upstream: acls.c, recv_ida_entries().
    #[allow(clippy::type_complexity)]
    fn parse_names(
        &self,
        cur: &mut Cur<'_>,
    ) -> Result<(Vec<IdAccess>, Vec<Option<Vec<u8>>>), Stop> {
        let count = cur.varint()?;
        let count = usize::try_from(count)
            .ok()
            .filter(|&c| c <= MAX_WIRE_ACL_COUNT)
            .ok_or(Stop::Bad(AclError::CountOutOfRange(i64::from(count))))?;
        // Each entry takes at least two bytes: wait for them before allocating.
        let rest = cur.rest().len();
        if rest < 2 * count {
            return Err(Stop::Need(2 * count - rest));
        }
        let mut entries = Vec::with_capacity(count);
        let mut names = Vec::with_capacity(count);
        for _ in 0..count {
            let id = cur.varint()? as u32;
            let xbits = cur.varint()? as u32;
            let perms = xbits >> 2;
            if self.check_perms && perms & !PERM_BITS != 0 {
                return Err(Stop::Bad(AclError::ValueOutOfRange(perms)));
            }
            let kind = match xbits & XFLAG_NAME_IS_USER {
                0 => IdKind::Group,
                _ => IdKind::User,
            };
            let name = match xbits & XFLAG_NAME_FOLLOWS {
                0 => None,
                _ => {
                    let len = usize::from(cur.byte()?);
                    Some(cur.bytes(len)?.to_vec())
                }
            };
            entries.push(IdAccess { kind, id, perms });
            names.push(name);
        }
        Ok((entries, names))
    }
}
