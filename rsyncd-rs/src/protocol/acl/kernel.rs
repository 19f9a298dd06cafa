//! The Linux kernel's ACL xattrs (`system.posix_acl_access`, `system.posix_acl_default`)
//! and what writing a received ACL does to the mode (upstream: lib/acl.c xattr_to_acl(),
//! acl_to_xattr(); acls.c unpack_acl_entries(), pack_smb_acl(), change_sacl_perms(),
//! set_rsync_acl()).
//!
//! ```text
//! u32 version = 2
//! repeat: u16 tag, u16 perm, u32 id      (little-endian; id 0xffffffff but for USER, GROUP)
//! ```
//! in the order USER_OBJ, USER by id, GROUP_OBJ, GROUP by id, MASK, OTHER; a MASK is
//! required when there is any USER or GROUP entry.

use super::{AclError, IdAccess, IdKind, MAX_WIRE_ACL_COUNT, PERM_BITS, RsyncAcl};
use crate::protocol::flist::mode;

/// The access ACL's xattr.
pub const KERNEL_ACCESS_XATTR: &str = "system.posix_acl_access";
/// A directory's default ACL's xattr.
pub const KERNEL_DEFAULT_XATTR: &str = "system.posix_acl_default";

/// The id of entries that name no one. Upstream: ACL_UNDEFINED_ID.
pub const ACL_UNDEFINED_ID: u32 = u32::MAX;

const VERSION: u32 = 2;
const HEADER_LEN: usize = 4;
const ENTRY_LEN: usize = 8;

/// Entry tags (linux/posix_acl.h).
pub mod tag {
    pub const USER_OBJ: u16 = 0x01;
    pub const USER: u16 = 0x02;
    pub const GROUP_OBJ: u16 = 0x04;
    pub const GROUP: u16 = 0x08;
    pub const MASK: u16 = 0x10;
    pub const OTHER: u16 = 0x20;
}

/// Reads a kernel ACL xattr value into a full ACL, named entries users first, then groups,
/// by id. Perm bits are masked to 0..=7, entries with an unknown tag are skipped and of
/// duplicate slots the first (in canonical order) is kept, as 3.5.0 reads them. A value
/// that is absent means [`RsyncAcl::from_mode`] (access) or the empty ACL (default).
///
/// Errors: a value shorter than its header, not a whole number of entries, or of another
/// version ([`AclError::Corrupt`]). Nothing is allocated beyond one entry per 8 bytes of
/// `value`.
/// Upstream: lib/acl.c xattr_to_acl(), acls.c unpack_acl_entries().
pub fn decode_kernel_acl(value: &[u8]) -> Result<RsyncAcl, AclError> {
    let corrupt = AclError::Corrupt("POSIX ACL xattr");
    let (Some(header), Some(body)) = (value.first_chunk::<4>(), value.get(HEADER_LEN..)) else {
        return Err(corrupt);
    };
    if u32::from_le_bytes(*header) != VERSION || body.len() % ENTRY_LEN != 0 {
        return Err(corrupt);
    }
    let mut entries: Vec<(u16, u32, u8)> = body
        .chunks_exact(ENTRY_LEN)
        .map(|e| {
            let t = u16::from_le_bytes([e[0], e[1]]);
            let perm = (u16::from_le_bytes([e[2], e[3]]) & PERM_BITS as u16) as u8;
            let id = u32::from_le_bytes([e[4], e[5], e[6], e[7]]);
            let id = if matches!(t, tag::USER | tag::GROUP) {
                id
            } else {
                ACL_UNDEFINED_ID
            };
            (t, id, perm)
        })
        .collect();
    entries.sort_by_key(|&(t, id, _)| (t, id));
    let mut acl = RsyncAcl::default();
    for (t, id, perm) in entries {
        let slot = match t {
            tag::USER_OBJ => &mut acl.user_obj,
            tag::GROUP_OBJ => &mut acl.group_obj,
            tag::MASK => &mut acl.mask_obj,
            tag::OTHER => &mut acl.other_obj,
            tag::USER | tag::GROUP => {
                let kind = if t == tag::USER {
                    IdKind::User
                } else {
                    IdKind::Group
                };
                let perms = u32::from(perm);
                acl.names.push(IdAccess { kind, id, perms });
                continue;
            }
            _ => continue,
        };
        slot.get_or_insert(perm);
    }
    Ok(acl)
}

/// Writes an ACL as the kernel's xattr value, in canonical order: owner, group and other
/// entries always (an absent slot as no perms, as upstream packs them), a mask when
/// there is one.
///
/// Errors ([`AclError::Invalid`], where the kernel would answer EINVAL): perm bits over 7,
/// the same id twice for users or for groups, named entries without a mask, more than
/// 65,536 named entries.
/// Upstream: acls.c pack_smb_acl(), lib/acl.c acl_to_xattr().
pub fn encode_kernel_acl(acl: &RsyncAcl) -> Result<Vec<u8>, AclError> {
    if acl.names.len() > MAX_WIRE_ACL_COUNT {
        return Err(AclError::Invalid("too many entries"));
    }
    if !acl.names.is_empty() && acl.mask_obj.is_none() {
        return Err(AclError::Invalid("named entries without a mask"));
    }
    let slot = |t: u16, v: Option<u8>| (t, ACL_UNDEFINED_ID, u32::from(v.unwrap_or(0)));
    let mut entries = vec![
        slot(tag::USER_OBJ, acl.user_obj),
        slot(tag::GROUP_OBJ, acl.group_obj),
        slot(tag::OTHER, acl.other_obj),
    ];
    if acl.mask_obj.is_some() {
        entries.push(slot(tag::MASK, acl.mask_obj));
    }
    entries.extend(acl.names.iter().map(|e| {
        let t = match e.kind {
            IdKind::User => tag::USER,
            IdKind::Group => tag::GROUP,
        };
        (t, e.id, e.perms)
    }));
    entries.sort_by_key(|&(t, id, _)| (t, id));
    let mut out = Vec::with_capacity(HEADER_LEN + ENTRY_LEN * entries.len());
    out.extend_from_slice(&VERSION.to_le_bytes());
    for (i, &(t, id, perm)) in entries.iter().enumerate() {
        if perm & !PERM_BITS != 0 {
            return Err(AclError::Invalid("perm bits out of range"));
        }
        if i > 0 && entries[i - 1].0 == t && entries[i - 1].1 == id {
            return Err(AclError::Invalid("duplicate entry"));
        }
        out.extend_from_slice(&t.to_le_bytes());
        out.extend_from_slice(&(perm as u16).to_le_bytes());
        out.extend_from_slice(&id.to_le_bytes());
    }
    Ok(out)
}

/// What to do with an ACL xattr.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AclWrite {
    /// Set the xattr to this value.
    Set(Vec<u8>),
    /// Remove the xattr; one that is not there is success.
    Remove,
}

/// How to bring an entry's access ACL and mode to what was received (the caller has
/// found them different with [`access_acl_equal_enough`](super::access_acl_equal_enough)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessAclPlan {
    /// The full ACL the entry ends with.
    pub acl: RsyncAcl,
    /// [`AclWrite::Set`] when the ACL has a mask or named entries: write it first; the
    /// kernel sets the permission bits from it. [`AclWrite::Remove`] when the mode says it
    /// all: chmod first (when `chmod` says so), then remove, so that the group bits never
    /// stand for an old mask without it.
    pub write: AclWrite,
    /// The mode once the write is done (what upstream's change_sacl_perms() returns):
    /// the old mode's type and special bits with the ACL's permission bits after a set,
    /// the old mode after a removal. The kernel may also drop setgid; restat to be sure.
    pub mode_after_write: u32,
    /// The mode to chmod to, when the permission or special bits still differ from the
    /// new mode. Upstream: rsync.c set_file_attrs() after set_acl().
    pub chmod: Option<u32>,
}

/// Plans the write of a received access ACL (condensed, as held in the receiver's table)
/// on an entry whose mode is `old_mode` on disk and is to become `new_mode`. Owner,
/// other, an absent group entry and the mask come from `new_mode`, except that the
/// group and other bits count as none for the ACL write when a directory's sticky bit is
/// being set or a file's setuid/setgid bit cleared (the chmod after it gives the real
/// bits), so that no one gains access before the special bit has changed.
///
/// Errors: an ACL the kernel would refuse ([`encode_kernel_acl`]).
/// Upstream: acls.c set_rsync_acl(), change_sacl_perms().
pub fn plan_access_acl(
    received: &RsyncAcl,
    old_mode: u32,
    new_mode: u32,
) -> Result<AccessAclPlan, AclError> {
    const SUID: u32 = 0o4000;
    const SGID: u32 = 0o2000;
    const SVTX: u32 = 0o1000;
    let going_off = |bit: u32| old_mode & bit != 0 && new_mode & bit == 0;
    let unsafe_window = if mode::is_dir(new_mode) {
        new_mode & SVTX != 0 && old_mode & SVTX == 0
    } else {
        going_off(SUID) || going_off(SGID)
    };
    let acl_mode = if unsafe_window {
        new_mode & !0o077
    } else {
        new_mode
    };
    let acl = received.expand_access(acl_mode);
    let (write, mode_after_write) = if acl.is_extended() {
        let perms = acl.perms_mode().unwrap_or(acl_mode & 0o777);
        let value = encode_kernel_acl(&acl)?;
        (AclWrite::Set(value), (old_mode & !0o777) | perms)
    } else {
        (AclWrite::Remove, old_mode)
    };
    let chmod = ((mode_after_write ^ new_mode) & 0o7777 != 0).then_some(new_mode);
    // After a removal the chmod alone speaks (a group entry sent without a mask, which
    // no stock sender sends, is lost with it).
    let acl = match (&write, unsafe_window) {
        (AclWrite::Remove, _) => RsyncAcl::from_mode(new_mode),
        (AclWrite::Set(_), true) => received.expand_access(new_mode),
        (AclWrite::Set(_), false) => acl,
    };
    Ok(AccessAclPlan {
        acl,
        write,
        mode_after_write,
        chmod,
    })
}

/// Plans the write of a received default ACL on a directory: removal when it is empty
/// (no owner entry: the sender's directory has none), else the value, slots verbatim
/// (the mode does not touch a default ACL).
///
/// Errors: an ACL the kernel would refuse ([`encode_kernel_acl`]).
/// Upstream: acls.c, set_rsync_acl() for ACL_TYPE_DEFAULT.
pub fn plan_default_acl(received: &RsyncAcl) -> Result<AclWrite, AclError> {
    if received.user_obj.is_none() {
        return Ok(AclWrite::Remove);
    }
    Ok(AclWrite::Set(encode_kernel_acl(received)?))
}
