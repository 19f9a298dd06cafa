//! Fake super's ACL xattrs, `user.rsync.%aacl` (access) and `user.rsync.%dacl` (a
//! directory's default): what a fake-super receiver stores instead of setting the ACL,
//! and what a fake-super sender reads instead of the real one (upstream: acls.c
//! get_rsync_acl(), set_rsync_acl() with am_root < 0; xattrs.c get_xattr_acl(),
//! set_xattr_acl(), del_def_xattr_acl()).
//!
//! ```text
//! u32 user_obj, group_obj, mask_obj, other_obj     0..=7, or 0x80 for "absent"
//! repeat: u32 id, u32 perms | 0x80000000 for a user entry
//! ```
//! little-endian, 16 + 8 N bytes.

use super::kernel::AclWrite;
use super::{AclError, AclKind, IdAccess, IdKind, NO_ENTRY, RsyncAcl};

/// The access ACL's xattr under fake super.
pub const FAKE_SUPER_ACCESS_XATTR: &str = "user.rsync.%aacl";
/// A directory's default ACL's xattr under fake super.
pub const FAKE_SUPER_DEFAULT_XATTR: &str = "user.rsync.%dacl";

/// Marks a user entry in the stored perms. Upstream: acls.c, NAME_IS_USER.
const NAME_IS_USER: u32 = 0x8000_0000;

/// Encodes an ACL as fake super stores it: the received ACL exactly as held after the
/// receiver's mask fill-in (condensed, not rebuilt from the mode), absent slots as 0x80.
pub fn encode_fake_super_acl(acl: &RsyncAcl) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + 8 * acl.names.len());
    for slot in [acl.user_obj, acl.group_obj, acl.mask_obj, acl.other_obj] {
        out.extend_from_slice(&u32::from(slot.unwrap_or(NO_ENTRY)).to_le_bytes());
    }
    for e in &acl.names {
        let user = match e.kind {
            IdKind::User => NAME_IS_USER,
            IdKind::Group => 0,
        };
        out.extend_from_slice(&e.id.to_le_bytes());
        out.extend_from_slice(&(e.perms & !NAME_IS_USER | user).to_le_bytes());
    }
    out
}

/// Decodes a stored `%aacl`/`%dacl` for an entry of mode `m`: an absent owner, group or
/// other slot takes the mode's bits (the mask stays as stored), named entries are taken
/// in the stored order. A missing xattr is the empty ACL, which the caller uses without
/// this function. Slots keep the low 8 bits of the stored word, as upstream's byte does.
///
/// Errors: a value shorter than 16 bytes or not 16 + 8 N ([`AclError::Corrupt`]; upstream
/// then fails get_acl, and a sender drops the entry without a message).
/// Upstream: acls.c, get_rsync_acl() with am_root < 0.
pub fn decode_fake_super_acl(value: &[u8], m: u32) -> Result<RsyncAcl, AclError> {
    let corrupt = AclError::Corrupt("fake-super ACL xattr");
    let Some((head, body)) = value.split_first_chunk::<16>() else {
        return Err(corrupt);
    };
    if body.len() % 8 != 0 {
        return Err(corrupt);
    }
    let word = |i: usize| u32::from_le_bytes([head[i], head[i + 1], head[i + 2], head[i + 3]]);
    let slot = |i: usize, from_mode: Option<u32>| {
        let v = word(i) as u8;
        match (v == NO_ENTRY, from_mode) {
            (false, _) => Some(v),
            (true, Some(shift)) => Some(((m >> shift) & 7) as u8),
            (true, None) => None,
        }
    };
    let names = body
        .chunks_exact(8)
        .map(|e| {
            let id = u32::from_le_bytes([e[0], e[1], e[2], e[3]]);
            let access = u32::from_le_bytes([e[4], e[5], e[6], e[7]]);
            let kind = match access & NAME_IS_USER {
                0 => IdKind::Group,
                _ => IdKind::User,
            };
            IdAccess {
                kind,
                id,
                perms: access & !NAME_IS_USER,
            }
        })
        .collect();
    Ok(RsyncAcl {
        user_obj: slot(0, Some(6)),
        group_obj: slot(4, Some(3)),
        mask_obj: slot(8, None),
        other_obj: slot(12, Some(0)),
        names,
    })
}

/// What a fake-super receiver does with a received ACL it found different: store it, or
/// for an empty default ACL remove `%dacl` (a missing one is success).
/// Upstream: acls.c set_rsync_acl(); xattrs.c del_def_xattr_acl().
pub fn fake_super_write(kind: AclKind, received: &RsyncAcl) -> AclWrite {
    if kind == AclKind::Default && received.user_obj.is_none() {
        return AclWrite::Remove;
    }
    AclWrite::Set(encode_fake_super_acl(received))
}
