//! Metadata read back from the tree, and applying wanted attributes in upstream's order.

use std::fmt;
use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd};

use nix::errno::Errno;
use nix::fcntl::AtFlags;
use nix::sys::stat::{
    FchmodatFlags, FileStat, Mode, UtimensatFlags, fchmod, fchmodat, fstat, futimens, utimensat,
};
use nix::sys::time::TimeSpec;
use nix::unistd::{Gid, Uid, fchown, fchownat};

use super::fakesuper::{apply_stat_xattr, overlay_stat_xattr};
use super::open::{Located, pin_leaf, reopen_dir, stat_at};
use super::{RelPath, TempFile, Tree, TreeError};

/// The permission bits `chmod` sets (upstream's `CHMOD_BITS`).
pub(super) const CHMOD_BITS: u32 = 0o7777;

/// What an entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileKind {
    /// A regular file.
    Regular,
    /// A directory.
    Dir,
    /// A symbolic link.
    Symlink,
    /// A character device.
    CharDev,
    /// A block device.
    BlockDev,
    /// A named pipe.
    Fifo,
    /// A Unix socket.
    Socket,
}

impl FileKind {
    /// The kind named by the `S_IFMT` bits of `mode`, or `None` for an unknown type.
    pub fn from_mode(mode: u32) -> Option<FileKind> {
        Some(match mode & libc::S_IFMT {
            libc::S_IFREG => FileKind::Regular,
            libc::S_IFDIR => FileKind::Dir,
            libc::S_IFLNK => FileKind::Symlink,
            libc::S_IFCHR => FileKind::CharDev,
            libc::S_IFBLK => FileKind::BlockDev,
            libc::S_IFIFO => FileKind::Fifo,
            libc::S_IFSOCK => FileKind::Socket,
            _ => return None,
        })
    }

    /// Whether entries of this kind carry a device number.
    pub fn is_device(self) -> bool {
        matches!(self, FileKind::CharDev | FileKind::BlockDev)
    }
}

/// An entry's metadata as `lstat` gives it (with fake super: as the
/// `user.rsync.%stat` xattr says for mode, rdev, uid and gid).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    /// What the entry is (taken from `mode`).
    pub kind: FileKind,
    /// The full `st_mode`, type bits included.
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Size in bytes (a symlink's target length).
    pub size: u64,
    /// Modification time, seconds.
    pub mtime: i64,
    /// Modification time, nanoseconds.
    pub mtime_nsec: u32,
    /// Access time, seconds.
    pub atime: i64,
    /// Access time, nanoseconds.
    pub atime_nsec: u32,
    /// Device number of a device node, else 0.
    pub rdev: u64,
    /// Device holding the entry.
    pub dev: u64,
    /// Inode number.
    pub ino: u64,
    /// Hard link count.
    pub nlink: u64,
}

impl Meta {
    pub(super) fn from_stat(st: &FileStat) -> Meta {
        Meta {
            // The kernel reports only the seven kinds; Regular is a placeholder never hit.
            kind: FileKind::from_mode(st.st_mode).unwrap_or(FileKind::Regular),
            mode: st.st_mode,
            uid: st.st_uid,
            gid: st.st_gid,
            size: u64::try_from(st.st_size).unwrap_or(0),
            mtime: st.st_mtime,
            mtime_nsec: u32::try_from(st.st_mtime_nsec).unwrap_or(0),
            atime: st.st_atime,
            atime_nsec: u32::try_from(st.st_atime_nsec).unwrap_or(0),
            rdev: st.st_rdev,
            dev: st.st_dev,
            ino: st.st_ino,
            #[allow(clippy::useless_conversion)] // nlink_t is u32 on some targets
            nlink: u64::from(st.st_nlink),
        }
    }
}

/// The attributes a transfer wants an entry to end up with; `None` leaves one alone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WantAttrs {
    /// Permission bits (`0o7777`); type bits, if present, are ignored: the kind was
    /// fixed when the entry was created.
    pub mode: Option<u32>,
    /// Owner; applied only when running as root (or recorded, with fake super).
    pub uid: Option<u32>,
    /// Group; the caller passes it only when it may be set (upstream's
    /// `FLAG_SKIP_GROUP` check), else the `chown` fails with `EPERM`.
    pub gid: Option<u32>,
    /// Modification time (seconds, nanoseconds).
    pub mtime: Option<(i64, u32)>,
    /// Access time (seconds, nanoseconds).
    pub atime: Option<(i64, u32)>,
    /// Device number; only used with fake super (a real node's is fixed at `mknod`).
    pub rdev: Option<u64>,
    /// ACLs as received (`-A`), applied after ownership and times and before the final
    /// chmod; `None` leaves them alone.
    pub acls: Option<std::sync::Arc<crate::protocol::acl::FileAcls>>,
}

/// What [`Tree::set_attrs`] changed (upstream's `UPDATED_*` bits).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AttrChanges {
    /// The owner differed (and was set, or recorded with fake super).
    pub owner: bool,
    /// The group differed (and was set, or recorded).
    pub group: bool,
    /// The modification time was set.
    pub mtime: bool,
    /// The access time was set.
    pub atime: bool,
    /// The permissions differed (and were set, or recorded).
    pub mode: bool,
    /// The `user.rsync.%stat` xattr was written or removed.
    pub stat_xattr: bool,
    /// An ACL was written or removed (`-A`).
    pub acl: bool,
    /// The mode the entry had once its ACLs were set, before the final chmod (what
    /// upstream's set_acl() leaves in its stat), when an ACL was written.
    pub mode_after_acl: Option<u32>,
    /// Times were wanted but the filesystem would not set them (upstream's
    /// `FLAG_TIME_FAILED`).
    pub time_failed: bool,
}

impl AttrChanges {
    /// Something was changed (upstream's set_file_attrs() returning "updated").
    pub fn any(&self) -> bool {
        self.owner
            || self.group
            || self.mtime
            || self.atime
            || self.mode
            || self.stat_xattr
            || self.acl
    }
}

/// What [`Tree::set_attrs`] works on.
#[derive(Debug, Clone, Copy)]
pub enum AttrTarget<'a> {
    /// An entry by path; a final symlink is acted on itself, never followed.
    Path(&'a RelPath),
    /// An open temp file, through its descriptor (before [`Tree::commit`]).
    Temp(&'a TempFile),
}

/// The entry being changed: an open descriptor, or a name in a directory for the kinds
/// we do not open (symlinks, devices, fifos, sockets).
pub(super) enum Handle<'a> {
    Fd(&'a File),
    At { dir: BorrowedFd<'a>, name: &'a [u8] },
}

impl Handle<'_> {
    fn stat(&self) -> nix::Result<FileStat> {
        match self {
            Handle::Fd(f) => fstat(f),
            Handle::At { dir, name } => stat_at(dir, name),
        }
    }

    fn chown(&self, uid: Option<u32>, gid: Option<u32>) -> nix::Result<()> {
        let (uid, gid) = (uid.map(Uid::from_raw), gid.map(Gid::from_raw));
        match self {
            Handle::Fd(f) => fchown(f, uid, gid),
            Handle::At { dir, name } => {
                fchownat(dir, *name, uid, gid, AtFlags::AT_SYMLINK_NOFOLLOW)
            }
        }
    }

    fn set_times(&self, atime: &TimeSpec, mtime: &TimeSpec) -> nix::Result<()> {
        match self {
            Handle::Fd(f) => futimens(f, atime, mtime),
            Handle::At { dir, name } => {
                utimensat(dir, *name, atime, mtime, UtimensatFlags::NoFollowSymlink)
            }
        }
    }

    /// `chmod` without following a final symlink. For a name, the C library does it
    /// through an `O_PATH` descriptor (glibc ≥ 2.32 via `/proc/self/fd`, `fchmodat2`
    /// on newer kernels); without those it answers `EOPNOTSUPP`, which we pass on.
    pub(super) fn chmod(&self, perms: u32) -> nix::Result<()> {
        let mode = Mode::from_bits_truncate(perms & CHMOD_BITS);
        match self {
            Handle::Fd(f) => fchmod(f, mode),
            Handle::At { dir, name } => fchmodat(dir, *name, mode, FchmodatFlags::NoFollowSymlink),
        }
    }
}

impl Tree {
    /// Applies `want` in upstream's order: owner (only when root, never with fake
    /// super), then the fake-super `user.rsync.%stat` xattr, then mtime/atime, then
    /// permissions last so the setuid/setgid bits a `chown` cleared come back.
    ///
    /// A path target is never followed: a symlink gets `lchown`/`lutimes` and no
    /// `chmod` (Linux has none for links). Errors with the step that failed; a
    /// filesystem that cannot set a symlink's times is reported in
    /// [`AttrChanges::time_failed`] instead.
    ///
    /// Upstream: rsync.c, set_file_attrs().
    pub fn set_attrs(
        &self,
        target: AttrTarget<'_>,
        want: &WantAttrs,
    ) -> Result<AttrChanges, TreeError> {
        // A dry run did not create the entry: everything would change (upstream's
        // set_file_attrs() returns "updated" without looking).
        if self.opts.dry_run
            && let AttrTarget::Path(p) = target
            && self.lstat(p)?.is_none()
        {
            return Ok(AttrChanges {
                mtime: want.mtime.is_some(),
                mode: want.mode.is_some(),
                ..AttrChanges::default()
            });
        }
        match target {
            AttrTarget::Temp(tmp) => self.apply_attrs(Handle::Fd(tmp.file()), &tmp.display(), want),
            AttrTarget::Path(p) => match self.locate(p)? {
                Located::Root => {
                    let f = reopen_dir(&self.root, p)?;
                    self.apply_attrs(Handle::Fd(&f), p, want)
                }
                Located::Entry { dir, name } => {
                    let st = stat_at(&dir, name).map_err(|e| TreeError::errno("lstat", p, e))?;
                    match pin_leaf(&dir, name, &st, p)? {
                        Some(f) => self.apply_attrs(Handle::Fd(&f), p, want),
                        None => self.apply_attrs(
                            Handle::At {
                                dir: dir.as_fd(),
                                name,
                            },
                            p,
                            want,
                        ),
                    }
                }
            },
        }
    }

    fn apply_attrs(
        &self,
        h: Handle<'_>,
        shown: &dyn fmt::Display,
        want: &WantAttrs,
    ) -> Result<AttrChanges, TreeError> {
        let fake = self.opts.fake_super;
        let mut st = h.stat().map_err(|e| TreeError::errno("stat", shown, e))?;
        let before = match (&h, fake) {
            (Handle::Fd(f), true) => overlay_stat_xattr(f, &st, shown)?,
            _ => Meta::from_stat(&st),
        };
        if self.opts.dry_run {
            return Ok(self.would_change(&before, want));
        }
        let mut changes = AttrChanges::default();

        let new_uid = want
            .uid
            .filter(|&u| u != before.uid && (self.is_root || fake));
        let new_gid = want.gid.filter(|&g| g != before.gid);
        changes.owner = new_uid.is_some();
        changes.group = new_gid.is_some();
        if !fake && (new_uid.is_some() || new_gid.is_some()) {
            h.chown(new_uid, new_gid)
                .map_err(|e| TreeError::errno("chown", shown, e))?;
            // chown clears setuid/setgid; re-stat so the chmod below restores them.
            st = h.stat().map_err(|e| TreeError::errno("stat", shown, e))?;
        }

        if fake {
            if let Handle::Fd(f) = h {
                changes.stat_xattr = apply_stat_xattr(f, None, want, shown)?;
            }
        }

        self.apply_times(&h, &st, want, shown, &mut changes)?;

        // ACLs after ownership and times, before the final chmod; a failure is
        // reported once the chmod is done (upstream goes on after set_acl() fails).
        let mut acl_error = None;
        if let Some(acls) = &want.acls
            && st.st_mode & libc::S_IFMT != libc::S_IFLNK
        {
            let old_mode = if fake { before.mode } else { st.st_mode };
            let new_mode = (old_mode & !CHMOD_BITS) | want.mode.unwrap_or(old_mode) & CHMOD_BITS;
            match self.apply_acls(&h, old_mode, new_mode, acls, shown) {
                Ok(wrote) => changes.acl = wrote,
                Err(e) => acl_error = Some(e),
            }
            if !fake {
                // Writing an access ACL sets the permission bits too.
                st = h.stat().map_err(|e| TreeError::errno("stat", shown, e))?;
                if changes.acl {
                    changes.mode_after_acl = Some(st.st_mode);
                }
            }
        }

        if let Some(perms) = want.mode {
            // With fake super the comparison is against the recorded mode, which the
            // xattr step above has already brought up to date.
            let cur = if fake { before.mode } else { st.st_mode };
            let is_link = st.st_mode & libc::S_IFMT == libc::S_IFLNK;
            if cur & CHMOD_BITS != perms & CHMOD_BITS && !is_link {
                if !fake {
                    h.chmod(perms)
                        .map_err(|e| TreeError::errno("chmod", shown, e))?;
                }
                changes.mode = true;
            }
        }
        if let Some(e) = acl_error {
            return Err(e);
        }
        Ok(changes)
    }

    /// What [`Tree::set_attrs`] would change, for a dry run.
    fn would_change(&self, before: &Meta, want: &WantAttrs) -> AttrChanges {
        let fake = self.opts.fake_super;
        let differs =
            |want: Option<(i64, u32)>, sec: i64, nsec: u32| want.is_some_and(|w| w != (sec, nsec));
        AttrChanges {
            owner: want
                .uid
                .is_some_and(|u| u != before.uid && (self.is_root || fake)),
            group: want.gid.is_some_and(|g| g != before.gid),
            mtime: differs(want.mtime, before.mtime, before.mtime_nsec),
            atime: differs(want.atime, before.atime, before.atime_nsec),
            mode: want.mode.is_some_and(|m| {
                m & CHMOD_BITS != before.mode & CHMOD_BITS && before.kind != FileKind::Symlink
            }),
            ..AttrChanges::default()
        }
    }

    fn apply_times(
        &self,
        h: &Handle<'_>,
        st: &FileStat,
        want: &WantAttrs,
        shown: &dyn fmt::Display,
        changes: &mut AttrChanges,
    ) -> Result<(), TreeError> {
        let differs = |want: Option<(i64, u32)>, sec: i64, nsec: i64| {
            want.filter(|&(s, n)| (s, i64::from(n)) != (sec, nsec))
        };
        let mtime = differs(want.mtime, st.st_mtime, st.st_mtime_nsec);
        let atime = differs(want.atime, st.st_atime, st.st_atime_nsec);
        if mtime.is_none() && atime.is_none() {
            return Ok(());
        }
        let spec = |t: Option<(i64, u32)>| {
            t.map_or(TimeSpec::UTIME_OMIT, |(s, n)| {
                TimeSpec::new(s, i64::from(n))
            })
        };
        match h.set_times(&spec(atime), &spec(mtime)) {
            Ok(()) => {
                changes.mtime = mtime.is_some();
                changes.atime = atime.is_some();
            }
            Err(Errno::EOPNOTSUPP | Errno::ENOSYS)
                if (st.st_mode & libc::S_IFMT) == libc::S_IFLNK =>
            {
                changes.time_failed = true;
            }
            Err(e) => return Err(TreeError::errno("utimes", shown, e)),
        }
        Ok(())
    }
}
