//! Encoding file-list entries as a sender does (upstream: flist.c send_file_entry(),
//! write_end_of_flist(); uidlist.c send_id_lists()).

use super::{FileEntry, FlistConfig, HardLink, mode, xmit};
use crate::protocol::WireError;
use crate::protocol::acl::{AclEncoder, AclIdNames, AclNames, IdKind};
use crate::protocol::codec::{put_int, put_longint, put_shortint, put_varint, put_varlong};
use crate::protocol::xattr::{XattrSendCache, encode_xattr_block};

/// The sender's "previous entry" state.
#[derive(Debug, Clone, Default)]
pub struct FlistEncoder {
    cfg: FlistConfig,
    name: Vec<u8>,
    mode: u32,
    mtime: i64,
    atime: i64,
    uid: u32,
    gid: u32,
    rdev: (u32, u32),
    rdev_major: u32,
    dev: i64,
    /// The xattr lists sent so far (upstream: xattrs.c, find_matching_xattr()).
    xattrs: XattrSendCache,
    /// The ACLs sent so far (upstream: acls.c, the access and default caches).
    acls: AclEncoder,
}

fn put_varint30(out: &mut Vec<u8>, protocol: i32, v: i32) {
    if protocol < 30 {
        put_int(out, v)
    } else {
        put_varint(out, v)
    }
}

fn put_varlong30(out: &mut Vec<u8>, protocol: i32, v: i64, min: u8) {
    if protocol < 30 {
        put_longint(out, v)
    } else {
        put_varlong(out, v, min)
    }
}

impl FlistEncoder {
    pub fn new(cfg: FlistConfig) -> FlistEncoder {
        let names = if cfg.inc_recurse {
            AclNames::Inline
        } else {
            AclNames::Listed
        };
        FlistEncoder {
            cfg,
            acls: AclEncoder::new(names),
            ..FlistEncoder::default()
        }
    }

    /// Appends one entry. `e.xflags` supplies the directory bits (TOP_DIR,
    /// NO_CONTENT_DIR); the others are computed here. `send_names` says whether the user
    /// and group names ride inline (first use of the id, incremental lists). `ndx_start` is
    /// the first index of the current list (a follower pointing into it is abbreviated).
    pub fn encode(
        &mut self,
        e: &FileEntry,
        ndx_start: i32,
        send_names: bool,
        out: &mut Vec<u8>,
    ) -> Result<(), WireError> {
        let mut no_names = |_: IdKind, _: u32| None;
        self.encode_with_acl_ids(e, ndx_start, send_names, &mut no_names, out)
    }

    /// [`encode`](Self::encode), with the sender's id registry for the ids of the
    /// entry's named ACL entries (`-A`): each goes into the id lists, or its name inline
    /// the first time it is seen (incremental recursion). Upstream: acls.c,
    /// send_ida_entries() with uidlist.c add_uid()/add_gid().
    pub fn encode_with_acl_ids(
        &mut self,
        e: &FileEntry,
        ndx_start: i32,
        send_names: bool,
        acl_ids: &mut dyn AclIdNames,
        out: &mut Vec<u8>,
    ) -> Result<(), WireError> {
        let c = self.cfg.clone();
        let p = c.protocol;
        let m = e.mode;
        let mut xflags = if mode::is_dir(m) {
            if p >= 30 {
                e.xflags & (xmit::TOP_DIR | xmit::NO_CONTENT_DIR)
            } else {
                e.xflags & xmit::TOP_DIR
            }
        } else {
            0
        };
        if m == self.mode {
            xflags |= xmit::SAME_MODE;
        } else {
            self.mode = m;
        }
        let rdev = e.rdev.unwrap_or((0, 0));
        if c.preserve_devices && mode::is_device(m) {
            if p < 28 {
                if rdev == self.rdev {
                    xflags |= xmit::SAME_RDEV_PRE28;
                } else {
                    self.rdev = rdev;
                }
            } else {
                self.rdev = rdev;
                if rdev.0 == self.rdev_major {
                    xflags |= xmit::SAME_RDEV_MAJOR;
                } else {
                    self.rdev_major = rdev.0;
                }
                if p < 30 && rdev.1 <= 0xff {
                    xflags |= xmit::RDEV_MINOR_8_PRE30;
                }
            }
        } else if c.preserve_specials && mode::is_special(m) && p < 31 {
            if p < 28 {
                xflags |= xmit::SAME_RDEV_PRE28;
            } else {
                self.rdev = (self.rdev_major, 0);
                xflags |= xmit::SAME_RDEV_MAJOR;
                if p < 30 {
                    xflags |= xmit::RDEV_MINOR_8_PRE30;
                }
            }
        } else if p < 28 {
            self.rdev = (0, 0);
        }
        let uid = e.uid.unwrap_or(0);
        let gid = e.gid.unwrap_or(0);
        let mut user_name = None;
        let mut group_name = None;
        if !c.preserve_uid || (uid == self.uid && !self.name.is_empty()) {
            xflags |= xmit::SAME_UID;
        } else {
            self.uid = uid;
            if send_names && p >= 30 {
                user_name = e.user_name.as_deref();
                if user_name.is_some() {
                    xflags |= xmit::USER_NAME_FOLLOWS;
                }
            }
        }
        if !c.preserve_gid || (gid == self.gid && !self.name.is_empty()) {
            xflags |= xmit::SAME_GID;
        } else {
            self.gid = gid;
            if send_names && p >= 30 {
                group_name = e.group_name.as_deref();
                if group_name.is_some() {
                    xflags |= xmit::GROUP_NAME_FOLLOWS;
                }
            }
        }
        if e.mtime == self.mtime {
            xflags |= xmit::SAME_TIME;
        } else {
            self.mtime = e.mtime;
        }
        if e.mtime_nsec != 0 && p >= 31 {
            xflags |= xmit::MOD_NSEC;
        }
        if c.preserve_atimes && !mode::is_dir(m) {
            let a = e.atime.unwrap_or(0);
            if a == self.atime {
                xflags |= xmit::SAME_ATIME;
            } else {
                self.atime = a;
            }
        }
        if c.preserve_crtimes && e.crtime.unwrap_or(e.mtime) == e.mtime {
            xflags |= xmit::CRTIME_EQ_MTIME;
        }
        let mut follower = None;
        if c.preserve_hard_links {
            match &e.hard_link {
                Some(HardLink::First) if p >= 30 => xflags |= xmit::HLINKED | xmit::HLINK_FIRST,
                Some(HardLink::Follower(first)) if p >= 30 => {
                    xflags |= xmit::HLINKED;
                    follower = Some(*first);
                }
                Some(HardLink::DevIno { dev, .. }) if p < 30 => {
                    if *dev == self.dev {
                        if p >= 28 {
                            xflags |= xmit::SAME_DEV_PRE30;
                        }
                    } else {
                        self.dev = *dev;
                    }
                    xflags |= xmit::HLINKED;
                }
                _ => {}
            }
        }
        let l1 = self
            .name
            .iter()
            .zip(&e.name)
            .take(255)
            .take_while(|(a, b)| a == b)
            .count();
        let l2 = e.name.len() - l1;
        if l1 > 0 {
            xflags |= xmit::SAME_NAME;
        }
        if l2 > 255 {
            xflags |= xmit::LONG_NAME;
        }
        if c.varint_flags {
            put_varint(
                out,
                if xflags == 0 {
                    xmit::EXTENDED_FLAGS as i32
                } else {
                    xflags as i32
                },
            );
        } else if p >= 28 {
            if xflags == 0 && !mode::is_dir(m) {
                xflags |= xmit::TOP_DIR;
            }
            if xflags & 0xff00 != 0 || xflags == 0 {
                xflags |= xmit::EXTENDED_FLAGS;
                put_shortint(out, xflags as u16);
            } else {
                out.push(xflags as u8);
            }
        } else {
            if xflags & 0xff == 0 {
                xflags |= if mode::is_dir(m) {
                    xmit::LONG_NAME
                } else {
                    xmit::TOP_DIR
                };
            }
            out.push(xflags as u8);
        }
        if xflags & xmit::SAME_NAME != 0 {
            out.push(l1 as u8);
        }
        if xflags & xmit::LONG_NAME != 0 {
            put_varint30(out, p, l2 as i32);
        } else {
            out.push(l2 as u8);
        }
        out.extend_from_slice(&e.name[l1..]);
        self.name.clone_from(&e.name);
        if let Some(first) = follower {
            put_varint(out, first);
            if first >= ndx_start {
                // A follower's ACL and xattr blocks still travel in full.
                return self.put_xattr_block(e, acl_ids, out);
            }
        }
        put_varlong30(out, p, e.size, 3);
        if xflags & xmit::SAME_TIME == 0 {
            if p >= 30 {
                put_varlong(out, e.mtime, 4);
            } else {
                put_int(out, e.mtime as i32);
            }
        }
        if xflags & xmit::MOD_NSEC != 0 {
            put_varint(out, e.mtime_nsec as i32);
        }
        if c.preserve_crtimes && xflags & xmit::CRTIME_EQ_MTIME == 0 {
            put_varlong(out, e.crtime.unwrap_or(0), 4);
        }
        if xflags & xmit::SAME_MODE == 0 {
            put_int(out, m as i32);
        }
        if c.preserve_atimes && !mode::is_dir(m) && xflags & xmit::SAME_ATIME == 0 {
            put_varlong(out, self.atime, 4);
        }
        if c.preserve_uid && xflags & xmit::SAME_UID == 0 {
            put_varint30(out, p, uid as i32);
            if let Some(n) = user_name {
                put_name(out, n)?;
            }
        }
        if c.preserve_gid && xflags & xmit::SAME_GID == 0 {
            put_varint30(out, p, gid as i32);
            if let Some(n) = group_name {
                put_name(out, n)?;
            }
        }
        if (c.preserve_devices && mode::is_device(m))
            || (c.preserve_specials && mode::is_special(m) && p < 31)
        {
            let r = self.rdev;
            if p < 28 {
                if xflags & xmit::SAME_RDEV_PRE28 == 0 {
                    let dev = ((r.0 & 0xfff) << 8) | (r.1 & 0xff) | ((r.1 & !0xff) << 12);
                    put_int(out, dev as i32);
                }
            } else {
                if xflags & xmit::SAME_RDEV_MAJOR == 0 {
                    put_varint30(out, p, r.0 as i32);
                }
                if p >= 30 {
                    put_varint(out, r.1 as i32);
                } else if xflags & xmit::RDEV_MINOR_8_PRE30 != 0 {
                    out.push(r.1 as u8);
                } else {
                    put_int(out, r.1 as i32);
                }
            }
        }
        if c.preserve_links && mode::is_lnk(m) {
            let t = e.link_target.as_deref().unwrap_or(&[]);
            put_varint30(out, p, t.len() as i32);
            out.extend_from_slice(t);
        }
        if let Some(HardLink::DevIno { ino, .. }) = &e.hard_link
            && c.preserve_hard_links
            && p < 30
        {
            if p < 26 {
                put_int(out, self.dev as i32);
                put_int(out, *ino as i32);
            } else {
                if xflags & xmit::SAME_DEV_PRE30 == 0 {
                    put_longint(out, self.dev);
                }
                put_longint(out, *ino);
            }
        }
        if c.flist_csum_len > 0 && (mode::is_reg(m) || p < 28) {
            let zero = vec![0u8; c.flist_csum_len];
            let sum = e
                .checksum
                .as_deref()
                .filter(|_| mode::is_reg(m))
                .unwrap_or(&zero);
            let mut fixed = sum.to_vec();
            fixed.resize(c.flist_csum_len, 0);
            out.extend_from_slice(&fixed);
        }
        self.put_xattr_block(e, acl_ids, out)
    }

    /// Appends the entry's ACL and xattr blocks, which every entry carries when the
    /// options are on. Upstream: flist.c, send_file_name() → send_acl(), send_xattr().
    fn put_xattr_block(
        &mut self,
        e: &FileEntry,
        acl_ids: &mut dyn AclIdNames,
        out: &mut Vec<u8>,
    ) -> Result<(), WireError> {
        // The ACL blocks (-A, not for symlinks) go first. Upstream: flist.c,
        // send_file_name() → send_acl().
        if self.cfg.preserve_acls {
            let acls = e.acls.as_deref();
            let access = acls.and_then(|a| a.access.as_ref());
            let default = acls.and_then(|a| a.default.as_ref());
            self.acls
                .encode(e.mode, access, default, acl_ids, out)
                .map_err(|_| WireError::TooLarge {
                    what: "ACL entry count",
                    got: access.map_or(0, |a| a.names.len()) as u64,
                    limit: crate::protocol::acl::MAX_WIRE_ACL_COUNT as u64,
                })?;
        }
        if self.cfg.preserve_xattrs {
            // Every entry carries a block; one with nothing read sends the empty list.
            let list = e.xattrs.clone().unwrap_or_default();
            let cached = self.xattrs.lookup_or_insert(&list);
            encode_xattr_block(cached, &list, out);
        }
        Ok(())
    }

    /// Appends the end of a list. Upstream: flist.c, write_end_of_flist().
    pub fn end(&self, io_error: i32, out: &mut Vec<u8>) {
        if self.cfg.varint_flags {
            put_varint(out, 0);
            put_varint(out, io_error);
        } else if io_error != 0 && self.cfg.safe_flist {
            put_shortint(out, (xmit::EXTENDED_FLAGS | xmit::IO_ERROR_ENDLIST) as u16);
            put_varint(out, io_error);
        } else {
            out.push(0);
        }
    }
}

fn put_name(out: &mut Vec<u8>, name: &[u8]) -> Result<(), WireError> {
    let len = u8::try_from(name.len()).map_err(|_| WireError::TooLarge {
        what: "id name",
        got: name.len() as u64,
        limit: 255,
    })?;
    out.push(len);
    out.extend_from_slice(name);
    Ok(())
}

/// Appends one id list (`id`, name pairs ended by id 0, then id 0's name with
/// `id0_names`). Upstream: uidlist.c, send_one_list().
pub fn encode_id_list(
    out: &mut Vec<u8>,
    protocol: i32,
    ids: &[(u32, Vec<u8>)],
    id0_names: bool,
) -> Result<(), WireError> {
    for (id, name) in ids.iter().filter(|(id, _)| *id != 0) {
        put_varint30(out, protocol, *id as i32);
        put_name(out, name)?;
    }
    put_varint30(out, protocol, 0);
    if id0_names {
        let zero = ids
            .iter()
            .find(|(id, _)| *id == 0)
            .map_or(&[][..], |(_, n)| n.as_slice());
        put_name(out, zero)?;
    }
    Ok(())
}
