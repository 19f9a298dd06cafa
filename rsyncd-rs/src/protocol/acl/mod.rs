//! POSIX ACLs for `-A` (upstream: acls.c, lib/acl.c), as data: the in-memory rsync ACL,
//! the rules that condense it against a mode and rebuild it, the wire codec of a file-list
//! entry's ACL blocks ([`wire`]), the kernel's `system.posix_acl_*` value and the mode a
//! write leaves ([`kernel`]), and fake super's `user.rsync.%aacl`/`%dacl` ([`fake_super`]).
//!
//! Nothing here touches a file: the engine reads and writes the xattrs through its tree and
//! hands the values over.

pub mod fake_super;
pub mod kernel;
pub mod wire;

#[cfg(test)]
mod tests;

pub use fake_super::{
    FAKE_SUPER_ACCESS_XATTR, FAKE_SUPER_DEFAULT_XATTR, decode_fake_super_acl,
    encode_fake_super_acl, fake_super_write,
};
pub use kernel::{
    ACL_UNDEFINED_ID, AccessAclPlan, AclWrite, KERNEL_ACCESS_XATTR, KERNEL_DEFAULT_XATTR,
    decode_kernel_acl, encode_kernel_acl, plan_access_acl, plan_default_acl,
};
pub use wire::{AclDecoder, AclEncoder, AclIdMap, AclIdNames, AclNames, EntryAcls};

use super::WireError;
use super::flist::mode;

/// A slot's "absent" value where upstream stores slots as bytes (the fake-super format).
/// Upstream: acls.c, NO_ENTRY.
pub const NO_ENTRY: u8 = 0x80;

/// The most named entries one received ACL may carry (3.5.0: MAX_WIRE_ACL_COUNT; earlier
/// versions have no bound, but no Linux filesystem stores an ACL this long).
pub const MAX_WIRE_ACL_COUNT: usize = 65_536;

/// The perm bits of an entry: r=4, w=2, x=1. Upstream: SMB_ACL_VALID_OBJ_BITS.
pub const PERM_BITS: u32 = 7;

/// Which of an entry's two ACLs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AclKind {
    /// The access ACL every non-symlink entry has.
    Access,
    /// A directory's default ACL (what new entries inside inherit).
    Default,
}

impl std::fmt::Display for AclKind {
    /// Upstream's names (acls.c str_acl_type()), as its messages print them.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AclKind::Access => "ACL_TYPE_ACCESS",
            AclKind::Default => "ACL_TYPE_DEFAULT",
        })
    }
}

/// Whether a named entry names a user or a group. Users order before groups, as upstream
/// sorts them on Linux (acls.c id_access_sorter()).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IdKind {
    User,
    Group,
}

/// A named entry: `user:ID:PERMS` or `group:ID:PERMS`. Upstream: acls.c, id_access (with
/// NAME_IS_USER as `kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IdAccess {
    pub kind: IdKind,
    pub id: u32,
    /// 0..=7, except in an ACL a fake-super receiver took unchecked (up to 30 bits).
    pub perms: u32,
}

/// An ACL as rsync holds it: four optional slots and the named entries. Upstream: acls.c,
/// struct rsync_acl, with `None` for NO_ENTRY.
///
/// A *full* ACL (read from disk) has `user_obj`, `group_obj` and `other_obj`; a *condensed*
/// one (as sent, [`strip_access`](RsyncAcl::strip_access)) leaves out what the mode
/// carries. `Default` is the empty ACL: nothing at all (a directory without a default ACL).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct RsyncAcl {
    pub user_obj: Option<u8>,
    pub group_obj: Option<u8>,
    pub mask_obj: Option<u8>,
    pub other_obj: Option<u8>,
    /// Users first, then groups, each by ascending id when read locally
    /// ([`sort_names`](RsyncAcl::sort_names)); as sent when received.
    pub names: Vec<IdAccess>,
}

/// Why ACL bytes were refused, from the peer or from a local xattr.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AclError {
    #[error("{0}")]
    Wire(#[from] WireError),
    /// An index past the ACLs received so far (or negative). Upstream: acls.c
    /// recv_rsync_acl(), RERR_STREAMIO.
    #[error("recv_acl_index: {kind} ACL index {ndx} > {count}")]
    BadIndex {
        kind: AclKind,
        ndx: i32,
        count: usize,
    },
    /// Perm bits outside 0..=7 from a peer, for a receiver that is not fake super.
    /// Upstream: acls.c recv_acl_access(), RERR_STREAMIO.
    #[error("recv_acl_access: value out of range: {0:x}")]
    ValueOutOfRange(u32),
    /// A named-entry count outside 0..=65536. Upstream 3.5.0: io.c read_varint_bounded(),
    /// RERR_PROTOCOL (its message ends with the role, which the caller adds).
    #[error("wire value ACL count out of range: {0} not in [0,{max}]", max = MAX_WIRE_ACL_COUNT)]
    CountOutOfRange(i64),
    /// A local xattr value (kernel or fake-super format) that does not parse.
    #[error("corrupt {0}")]
    Corrupt(&'static str),
    /// An ACL the kernel would refuse (EINVAL), or one we cannot send.
    #[error("invalid ACL: {0}")]
    Invalid(&'static str),
}

impl AclError {
    /// The exit code upstream ends with for this error from the peer: RERR_STREAMIO (12)
    /// for a bad index or value or an overlong varint, RERR_PROTOCOL (2) for the count
    /// bound; local format errors are counted per file (RERR_PARTIAL, 23) and the
    /// transfer goes on.
    pub fn exit_code(&self) -> i32 {
        match self {
            AclError::BadIndex { .. } | AclError::ValueOutOfRange(_) | AclError::Wire(_) => 12,
            AclError::CountOutOfRange(_) => 2,
            AclError::Corrupt(_) | AclError::Invalid(_) => 23,
        }
    }
}

fn owner_bits(m: u32) -> u8 {
    ((m >> 6) & 7) as u8
}

fn group_bits(m: u32) -> u8 {
    ((m >> 3) & 7) as u8
}

fn other_bits(m: u32) -> u8 {
    (m & 7) as u8
}

impl RsyncAcl {
    /// The ACL a mode alone means: owner, group and other from its bits, no mask, no
    /// names. What an entry without an explicit access ACL has (no `system.posix_acl_access`,
    /// a filesystem without ACLs, a device sent without `-D`).
    /// Upstream: acls.c, rsync_acl_fake_perms().
    pub fn from_mode(m: u32) -> RsyncAcl {
        RsyncAcl {
            user_obj: Some(owner_bits(m)),
            group_obj: Some(group_bits(m)),
            mask_obj: None,
            other_obj: Some(other_bits(m)),
            names: Vec::new(),
        }
    }

    /// Whether nothing is set: a default ACL that is not there.
    pub fn is_empty(&self) -> bool {
        *self == RsyncAcl::default()
    }

    /// Whether the ACL says more than a mode can: a mask or named entries.
    pub fn is_extended(&self) -> bool {
        self.mask_obj.is_some() || !self.names.is_empty()
    }

    /// Orders the named entries users first, then groups, each by ascending id, as
    /// upstream does after reading an ACL on Linux (acls.c id_access_sorter()); the order
    /// is part of what the sender's cache and the receiver's comparison look at.
    pub fn sort_names(&mut self) {
        self.names.sort_by_key(|e| (e.kind, e.id));
    }

    /// The condensed access ACL the sender sends for an entry of wire mode `m`: owner and
    /// other always go (the mode carries them), the group entry goes when there is no
    /// mask or it equals the mode's group bits, and the mask goes when there are named
    /// entries and it equals the group bits (on Linux the group bits *are* the mask). A
    /// mask without named entries stays. Default ACLs are never stripped.
    /// Upstream: acls.c, rsync_acl_strip_perms().
    pub fn strip_access(&self, m: u32) -> RsyncAcl {
        let group = group_bits(m);
        let mut out = RsyncAcl {
            user_obj: None,
            other_obj: None,
            ..self.clone()
        };
        match self.mask_obj {
            None => out.group_obj = None,
            Some(mask) => {
                if self.group_obj == Some(group) {
                    out.group_obj = None;
                }
                if !self.names.is_empty() && mask == group {
                    out.mask_obj = None;
                }
            }
        }
        out
    }

    /// The receiver's fill-in after a literal ACL: named entries need a mask, so a missing
    /// one becomes the entry's group bits (access; `m` is the entry's received mode) or the
    /// OR of every named entry's perms and the group entry (default). The result is what
    /// the receiver's table and fake super's `%aacl`/`%dacl` hold.
    /// Upstream: acls.c, recv_rsync_acl() (not macOS).
    pub fn fill_received_mask(&mut self, kind: AclKind, m: u32) {
        if self.names.is_empty() || self.mask_obj.is_some() {
            return;
        }
        // Upstream gathers these in a byte and clears NO_ENTRY's bit, which only matters
        // for the unchecked values of a fake-super receiver.
        self.mask_obj = Some(match kind {
            AclKind::Access => group_bits(m),
            AclKind::Default => {
                let named = self.names.iter().fold(0u32, |acc, e| acc | e.perms) as u8;
                (named | self.group_obj.unwrap_or(0)) & !NO_ENTRY
            }
        });
    }

    /// The full access ACL a received (condensed) one stands for on an entry of mode `m`:
    /// owner and other from the mode, the group entry as sent or else from the mode's
    /// group bits, and a mask (when there is one) from the group bits. This is what the
    /// file has once the ACL and the mode are both set.
    /// Upstream: acls.c, pack_smb_acl() then change_sacl_perms().
    pub fn expand_access(&self, m: u32) -> RsyncAcl {
        RsyncAcl {
            user_obj: Some(owner_bits(m)),
            group_obj: Some(self.group_obj.unwrap_or(group_bits(m))),
            mask_obj: self.mask_obj.map(|_| group_bits(m)),
            other_obj: Some(other_bits(m)),
            names: self.names.clone(),
        }
    }

    /// The permission bits a full ACL gives the file: owner, mask (or group when there is
    /// no mask), other. `None` when a slot it needs is missing.
    /// Upstream: acls.c, rsync_acl_get_perms().
    pub fn perms_mode(&self) -> Option<u32> {
        let user = u32::from(self.user_obj?);
        let group = u32::from(self.mask_obj.or(self.group_obj)?);
        let other = u32::from(self.other_obj?);
        Some((user & 7) << 6 | (group & 7) << 3 | (other & 7))
    }

    /// Replaces every named entry's id, as the receiver does once the id lists after a
    /// non-incremental file list are known. Upstream: acls.c, match_racl_ids().
    pub fn map_ids(&mut self, mut f: impl FnMut(IdKind, u32) -> u32) {
        for e in &mut self.names {
            e.id = f(e.kind, e.id);
        }
    }
}

/// Whether the local access ACL (full, as read) already is what a received one (condensed,
/// as held in the receiver's table after the mask fill-in) asks for on an entry whose new
/// mode is `m`: both have a mask or neither does; with a
/// mask, the group entries agree (an absent received group entry meaning the mode's group
/// bits); the named entries are the same, in the same order. Mask values and the owner
/// and other slots are not compared: the chmod sets them. `false` means write it.
/// Upstream: acls.c, rsync_acl_equal_enough().
pub fn access_acl_equal_enough(local: &RsyncAcl, received: &RsyncAcl, m: u32) -> bool {
    if local.mask_obj.is_some() != received.mask_obj.is_some() {
        return false;
    }
    if local.mask_obj.is_some() {
        let want = received.group_obj.unwrap_or(group_bits(m));
        if local.group_obj != Some(want) {
            return false;
        }
    }
    local.names == received.names
}

/// Whether a directory's local default ACL (empty when it has none) is exactly the
/// received one: all four slots and the named entries in order. `false` means write it,
/// or remove it when the received one is empty. Upstream: acls.c, rsync_acl_equal().
pub fn default_acl_equal(local: &RsyncAcl, received: &RsyncAcl) -> bool {
    local == received
}

/// An entry's ACLs as a file list carries them.
///
/// On the sender, `access` is the full access ACL as read (`None`: none was read, the
/// mode's is sent) and `default` a directory's default ACL (`None`: it has none). On the
/// receiver, `access` is the condensed ACL as received (mask filled in) and `default` the
/// default ACL as received, for a directory (empty: remove it); their named ids are the
/// sender's until the receiver maps them, and `inline_names` are the names that rode
/// inline with them (incremental recursion), for the receiver's id registry.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FileAcls {
    pub access: Option<RsyncAcl>,
    pub default: Option<RsyncAcl>,
    pub inline_names: Vec<(IdKind, u32, Vec<u8>)>,
}

impl FileAcls {
    /// The same ACLs with every named id mapped by `f` (the receiver's id mapping).
    pub fn mapped(&self, mut f: impl FnMut(IdKind, u32) -> u32) -> FileAcls {
        let mut out = FileAcls {
            access: self.access.clone(),
            default: self.default.clone(),
            inline_names: Vec::new(),
        };
        for acl in out.access.iter_mut().chain(out.default.iter_mut()) {
            acl.map_ids(&mut f);
        }
        out
    }
}

/// Whether an entry of this mode carries ACL blocks on the wire: every type but symlinks.
pub fn has_acl_blocks(m: u32) -> bool {
    !mode::is_lnk(m)
}
