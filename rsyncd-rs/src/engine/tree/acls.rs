//! POSIX ACLs of entries beneath the root (`-A`): reading an entry's access and default
//! ACL, and bringing them to what a sender sent, as part of [`Tree::set_attrs`].
//!
//! The ACLs are the kernel's `system.posix_acl_access` / `system.posix_acl_default`
//! xattrs (or, with fake super, rsync's `user.rsync.%aacl` / `%dacl`), reached the way
//! the tree reaches every xattr: a pinned `O_NOFOLLOW` descriptor, or
//! `/proc/self/fd/DIR/NAME` with the `l` calls for what is not opened. Nothing outside
//! the module is read or written. The rules (condensing, comparing, planning a write)
//! are `protocol::acl`'s; this file only carries them out.
//!
//! Upstream: acls.c get_acl(), set_acl(); 3.5.0 lib/acl.c.

use std::fs::File;
use std::io;
use std::path::PathBuf;

use xattr::FileExt;

use super::meta::Handle as MetaHandle;
use super::{AttrTarget, RelPath, Tree, TreeError};
use crate::protocol::acl::{
    AclKind, AclWrite, FAKE_SUPER_ACCESS_XATTR, FAKE_SUPER_DEFAULT_XATTR, FileAcls,
    KERNEL_ACCESS_XATTR, KERNEL_DEFAULT_XATTR, RsyncAcl, access_acl_equal_enough,
    decode_fake_super_acl, decode_kernel_acl, default_acl_equal, fake_super_write, plan_access_acl,
    plan_default_acl,
};
use crate::protocol::flist::mode;

/// Where an ACL is kept: the kernel's xattr, or fake super's.
fn xattr_name(kind: AclKind, fake_super: bool) -> &'static str {
    match (kind, fake_super) {
        (AclKind::Access, false) => KERNEL_ACCESS_XATTR,
        (AclKind::Default, false) => KERNEL_DEFAULT_XATTR,
        (AclKind::Access, true) => FAKE_SUPER_ACCESS_XATTR,
        (AclKind::Default, true) => FAKE_SUPER_DEFAULT_XATTR,
    }
}

/// The errors that mean "no ACL here": none set, or a filesystem without ACLs (upstream
/// fakes the access ACL from the mode then, and that is not an error).
fn absent(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ENODATA | libc::ENOTSUP | libc::ENOSYS | libc::EINVAL)
    )
}

/// The entry being changed by [`Tree::set_attrs`], for xattr calls.
enum Io<'a> {
    Fd(&'a File),
    Path(PathBuf),
}

impl Io<'_> {
    fn get(&self, name: &str) -> io::Result<Option<Vec<u8>>> {
        match self {
            Io::Fd(f) => f.get_xattr(name),
            Io::Path(p) => xattr::get(p, name),
        }
    }

    fn set(&self, name: &str, value: &[u8]) -> io::Result<()> {
        match self {
            Io::Fd(f) => f.set_xattr(name, value),
            Io::Path(p) => xattr::set(p, name, value),
        }
    }

    fn remove(&self, name: &str) -> io::Result<()> {
        let r = match self {
            Io::Fd(f) => f.remove_xattr(name),
            Io::Path(p) => xattr::remove(p, name),
        };
        match r {
            Err(e) if e.raw_os_error() == Some(libc::ENODATA) => Ok(()),
            other => other,
        }
    }
}

/// Reads one ACL of an entry of mode `m`: `None` when it has none.
fn read_one(
    get: &dyn Fn(&str) -> io::Result<Option<Vec<u8>>>,
    kind: AclKind,
    fake_super: bool,
    m: u32,
    shown: &dyn std::fmt::Display,
) -> Result<Option<RsyncAcl>, TreeError> {
    let value = match get(xattr_name(kind, fake_super)) {
        Ok(v) => v,
        Err(e) if absent(&e) => None,
        Err(e) => return Err(TreeError::io("get_acl", shown, e)),
    };
    let Some(value) = value else { return Ok(None) };
    let acl = if fake_super {
        decode_fake_super_acl(&value, m)
    } else {
        decode_kernel_acl(&value).map(|mut a| {
            a.sort_names();
            a
        })
    };
    acl.map(Some).map_err(|e| {
        TreeError::io(
            "get_acl",
            shown,
            io::Error::new(io::ErrorKind::InvalidData, e.to_string()),
        )
    })
}

impl Tree {
    /// An entry's ACLs as upstream's get_acl() reads them, for an entry of mode `m`:
    /// the full access ACL (`None` when it has no extended one: the mode says it all) and,
    /// for a directory, its default ACL (`None` when it has none). With fake super they
    /// come from `user.rsync.%aacl`/`%dacl`. An entry that cannot be pinned reads as
    /// having none. Errors: a stored value that does not parse, or the kernel refusing.
    pub fn read_acls(&self, p: &RelPath, m: u32) -> Result<FileAcls, TreeError> {
        let Some(h) = self.xattr_handle(AttrTarget::Path(p))? else {
            return Ok(FileAcls::default());
        };
        let get = |name: &str| h.get(name.as_bytes());
        let fake = self.opts.fake_super;
        let access = read_one(&get, AclKind::Access, fake, m, p)?;
        let default = match mode::is_dir(m) {
            true => read_one(&get, AclKind::Default, fake, m, p)?,
            false => None,
        };
        Ok(FileAcls {
            access,
            default,
            inline_names: Vec::new(),
        })
    }

    /// Whether the ACLs received for an entry differ from what `p` (of mode `m` on
    /// disk) has, for an entry whose new mode is `new_mode`: upstream's set_acl() in its
    /// compare-only mode, which itemize reports as `a`. Unreadable ACLs count as
    /// different.
    pub fn acls_differ(&self, p: &RelPath, m: u32, new_mode: u32, want: &FileAcls) -> bool {
        let Ok(local) = self.read_acls(p, m) else {
            return true;
        };
        differ(&local, m, new_mode, want)
    }

    /// The ACL step of [`Tree::set_attrs`], after ownership and times and before the
    /// final chmod: brings the entry's ACLs to `want` and answers whether it wrote any.
    /// `old_mode` is the entry's mode on disk, `new_mode` the one it is getting. A write
    /// of an access ACL also sets the permission bits; the caller re-stats and chmods
    /// what still differs. Upstream: acls.c, set_acl().
    pub(super) fn apply_acls(
        &self,
        h: &MetaHandle<'_>,
        old_mode: u32,
        new_mode: u32,
        want: &FileAcls,
        shown: &dyn std::fmt::Display,
    ) -> Result<bool, TreeError> {
        let io = match h {
            MetaHandle::Fd(f) => Io::Fd(f),
            MetaHandle::At { dir, name } => match super::xattrs::proc_entry_path(dir, name) {
                Some(path) => Io::Path(path),
                // Nothing to pin it with (no procfs): skipped, as 3.5.0 skips it.
                None => return Ok(false),
            },
        };
        let fake = self.opts.fake_super;
        let get = |name: &str| io.get(name);
        let access = read_one(&get, AclKind::Access, fake, old_mode, shown)?;
        let default = match mode::is_dir(new_mode) {
            true => read_one(&get, AclKind::Default, fake, old_mode, shown)?,
            false => None,
        };
        let mut wrote = false;
        if let Some(recv) = &want.access {
            let local = access.unwrap_or_else(|| RsyncAcl::from_mode(old_mode));
            if !access_acl_equal_enough(&local, recv, new_mode) {
                let write = if fake {
                    fake_super_write(AclKind::Access, recv)
                } else {
                    let plan = plan_access_acl(recv, old_mode, new_mode)
                        .map_err(|e| invalid("set_acl_access", shown, &e.to_string()))?;
                    if let (AclWrite::Remove, Some(m)) = (&plan.write, plan.chmod) {
                        // The mode first, so the group bits never stand for an old mask.
                        h.chmod(m)
                            .map_err(|e| TreeError::errno("chmod", shown, e))?;
                    }
                    plan.write
                };
                let name = xattr_name(AclKind::Access, fake);
                let op = if fake {
                    "set_xattr_acl_access"
                } else {
                    "set_acl_access"
                };
                carry_out(&io, name, &write).map_err(|e| TreeError::io(op, shown, e))?;
                wrote = true;
            }
        }
        if let Some(recv) = want.default.as_ref().filter(|_| mode::is_dir(new_mode)) {
            let local = default.unwrap_or_default();
            if !default_acl_equal(&local, recv) {
                let write = if fake {
                    fake_super_write(AclKind::Default, recv)
                } else {
                    plan_default_acl(recv)
                        .map_err(|e| invalid("set_acl_default", shown, &e.to_string()))?
                };
                let name = xattr_name(AclKind::Default, fake);
                let op = match (&write, fake) {
                    (AclWrite::Remove, _) => "delete_def_acl",
                    (AclWrite::Set(_), false) => "set_acl_default",
                    (AclWrite::Set(_), true) => "set_xattr_acl_default",
                };
                carry_out(&io, name, &write).map_err(|e| TreeError::io(op, shown, e))?;
                wrote = true;
            }
        }
        Ok(wrote)
    }
}

fn carry_out(io: &Io<'_>, name: &str, write: &AclWrite) -> io::Result<()> {
    match write {
        AclWrite::Set(v) => io.set(name, v),
        AclWrite::Remove => io.remove(name),
    }
}

fn invalid(op: &'static str, shown: &dyn std::fmt::Display, text: &str) -> TreeError {
    TreeError::io(
        op,
        shown,
        io::Error::new(io::ErrorKind::InvalidInput, text.to_string()),
    )
}

/// Whether `want` differs from the `local` ACLs of an entry of mode `m` getting
/// `new_mode`. Upstream: acls.c, set_acl() with a NULL name.
fn differ(local: &FileAcls, m: u32, new_mode: u32, want: &FileAcls) -> bool {
    if let Some(recv) = &want.access {
        let local = local
            .access
            .clone()
            .unwrap_or_else(|| RsyncAcl::from_mode(m));
        if !access_acl_equal_enough(&local, recv, new_mode) {
            return true;
        }
    }
    if mode::is_dir(new_mode)
        && let Some(recv) = &want.default
    {
        let local = local.default.clone().unwrap_or_default();
        if !default_acl_equal(&local, recv) {
            return true;
        }
    }
    false
}
