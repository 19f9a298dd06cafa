//! Extended attributes of entries beneath the root (`-X`): listing, reading, and
//! bringing an entry's set in line with a wanted one.
//!
//! Regular files and directories are opened with `O_NOFOLLOW` (checked to be the inode
//! `lstat` saw) and handled through the descriptor (`f*xattr`). Symlinks, devices,
//! fifos and sockets are never opened (opening a device can have effects; a symlink
//! cannot be opened without following it); they are reached as
//! `/proc/self/fd/DIR/NAME` with the `l*xattr` calls, where DIR is the descriptor of the
//! parent this tree resolved under its confinement rules. That is safe because the
//! kernel resolves `/proc/self/fd/DIR` to the very directory the descriptor holds (no
//! path is looked up again, so nothing renamed or planted on the way matters), NAME is
//! one checked component (no `/`, never `..`), and the `l` calls act on NAME itself
//! without following it: the same guarantee as the tree's `*at()` calls. Without
//! `/proc` (a chroot) such entries are skipped, as rsync 3.5.0 skips an entry it
//! cannot pin.
//!
//! Upstream: xattrs.c, rsync_xal_get(), rsync_xal_set(); 3.5.0's fd-based variants.

use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use nix::sys::stat::{Mode, SFlag, fchmod, fstat};
use xattr::FileExt;

use super::open::{Located, is_type, pin_leaf, reopen_dir, stat_at};
use super::{AttrTarget, RelPath, Tree, TreeError};

/// The most bytes of names `listxattr` may return, and of one value (Linux's limits:
/// XATTR_LIST_MAX and XATTR_SIZE_MAX are both 64 KiB; 3.5.0 bounds a value at 128 MiB).
const MAX_VALUE: usize = 128 << 20;

/// An entry opened for xattr work.
pub(super) enum Handle {
    Fd(File),
    /// `/proc/self/fd/DIR/NAME`; the directory descriptor is kept open with it.
    Proc {
        path: PathBuf,
        _dir: std::os::fd::OwnedFd,
    },
}

/// One name and its value.
pub type XattrPair = (Vec<u8>, Vec<u8>);

/// What [`Tree::apply_xattrs`] is asked to make true.
#[derive(Debug, Default)]
pub struct XattrWant {
    /// Names with the value they must have; `None`: keep whatever value is there.
    pub items: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

fn not_supported(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOTSUP))
}

impl Handle {
    fn list(&self) -> io::Result<Vec<Vec<u8>>> {
        let names: Vec<Vec<u8>> = match self {
            Handle::Fd(f) => f.list_xattr()?.map(|n| n.as_bytes().to_vec()).collect(),
            Handle::Proc { path, .. } => {
                xattr::list(path)?.map(|n| n.as_bytes().to_vec()).collect()
            }
        };
        Ok(names)
    }

    pub(super) fn get(&self, name: &[u8]) -> io::Result<Option<Vec<u8>>> {
        let name = OsStr::from_bytes(name);
        let v = match self {
            Handle::Fd(f) => f.get_xattr(name)?,
            Handle::Proc { path, .. } => xattr::get(path, name)?,
        };
        match v {
            Some(v) if v.len() > MAX_VALUE => Err(io::Error::from_raw_os_error(libc::E2BIG)),
            v => Ok(v),
        }
    }

    fn set(&self, name: &[u8], value: &[u8]) -> io::Result<()> {
        let name = OsStr::from_bytes(name);
        match self {
            Handle::Fd(f) => f.set_xattr(name, value),
            Handle::Proc { path, .. } => xattr::set(path, name, value),
        }
    }

    fn remove(&self, name: &[u8]) -> io::Result<()> {
        let name = OsStr::from_bytes(name);
        match self {
            Handle::Fd(f) => f.remove_xattr(name),
            Handle::Proc { path, .. } => xattr::remove(path, name),
        }
    }
}

/// `/proc/self/fd/DIR/NAME`: the entry `name` of the held directory `dir`, for the
/// `l*xattr` calls, which take no descriptor. `None` where `/proc` is not procfs: in a
/// chroot into a module, `/proc` would be the module's own (a client could have pushed
/// `proc/self/fd/N` as a link to any directory), so it is never trusted unless the
/// kernel says it is procfs.
pub(super) fn proc_entry_path(dir: &impl AsRawFd, name: &[u8]) -> Option<PathBuf> {
    use nix::sys::statfs::{PROC_SUPER_MAGIC, statfs};
    let fds = "/proc/self/fd";
    if !statfs(fds).is_ok_and(|fs| fs.filesystem_type() == PROC_SUPER_MAGIC) {
        return None;
    }
    let mut path = PathBuf::from(format!("{fds}/{}", dir.as_raw_fd()));
    path.push(OsStr::from_bytes(name));
    Some(path)
}

impl Tree {
    /// Opens `target` for xattr work; `None` when it cannot be pinned (no `/proc` for a
    /// symlink or device) and must be skipped.
    pub(super) fn xattr_handle(&self, target: AttrTarget<'_>) -> Result<Option<Handle>, TreeError> {
        let p = match target {
            AttrTarget::Temp(tmp) => {
                let f = tmp
                    .file()
                    .try_clone()
                    .map_err(|e| TreeError::io("dup", &tmp.display(), e))?;
                return Ok(Some(Handle::Fd(f)));
            }
            AttrTarget::Path(p) => p,
        };
        let (dir, name) = match self.locate(p)? {
            Located::Root => return Ok(Some(Handle::Fd(reopen_dir(&self.root, p)?))),
            Located::Entry { dir, name } => (dir, name),
        };
        let st = stat_at(&dir, name).map_err(|e| TreeError::errno("lstat", p, e))?;
        if (is_type(&st, SFlag::S_IFREG) || is_type(&st, SFlag::S_IFDIR))
            && let Some(f) = pin_leaf(&dir, name, &st, p)?
        {
            return Ok(Some(Handle::Fd(f)));
        }
        let dir = dir.into_owned().map_err(|e| TreeError::io("dup", p, e))?;
        let Some(path) = proc_entry_path(&dir, name) else {
            return Ok(None);
        };
        Ok(Some(Handle::Proc { path, _dir: dir }))
    }

    /// Every xattr of `p` (a final symlink's own, never its target's), in the order
    /// the kernel lists them. A filesystem without xattrs gives an empty list, as does
    /// an entry that cannot be pinned. A name that vanishes between listing and reading
    /// is left out. Upstream: xattrs.c, rsync_xal_get().
    pub fn list_xattrs(&self, p: &RelPath) -> Result<Vec<XattrPair>, TreeError> {
        let Some(h) = self.xattr_handle(AttrTarget::Path(p))? else {
            return Ok(Vec::new());
        };
        let names = match h.list() {
            Ok(n) => n,
            Err(e) if not_supported(&e) => return Ok(Vec::new()),
            Err(e) => return Err(TreeError::io("llistxattr", p, e)),
        };
        let mut out = Vec::with_capacity(names.len());
        for name in names {
            match h.get(&name) {
                Ok(Some(v)) => out.push((name, v)),
                Ok(None) => {}
                Err(e) if e.raw_os_error() == Some(libc::ENODATA) => {}
                Err(e) => return Err(TreeError::io("lgetxattr", p, e)),
            }
        }
        Ok(out)
    }

    /// The value of xattr `name` of `p` (`None` when absent or unreadable as such).
    pub fn get_xattr(&self, p: &RelPath, name: &[u8]) -> Result<Option<Vec<u8>>, TreeError> {
        let Some(h) = self.xattr_handle(AttrTarget::Path(p))? else {
            return Ok(None);
        };
        match h.get(name) {
            Ok(v) => Ok(v),
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENODATA | libc::ENOTSUP)) => Ok(None),
            Err(e) => Err(TreeError::io("lgetxattr", p, e)),
        }
    }

    /// Makes `target`'s xattrs `want`: each listed name gets its value (unless it has it
    /// already), and each present name `may_remove` allows and `want` lacks is removed.
    /// A non-root process without write access to a file or directory gets `u+w` for the
    /// while (rsync 3.2+). Returns whether anything changed; a dry run changes nothing.
    /// An entry that cannot be pinned is skipped (`Ok(false)`).
    ///
    /// Upstream: xattrs.c, set_xattr() and rsync_xal_set().
    pub fn apply_xattrs(
        &self,
        target: AttrTarget<'_>,
        want: &XattrWant,
        may_remove: &dyn Fn(&[u8]) -> bool,
    ) -> Result<bool, TreeError> {
        if self.opts.dry_run {
            return Ok(false);
        }
        let shown: String = match target {
            AttrTarget::Path(p) => p.to_string(),
            AttrTarget::Temp(t) => t.display().to_string(),
        };
        let Some(h) = self.xattr_handle(target)? else {
            return Ok(false);
        };
        let current = match h.list() {
            Ok(n) => n,
            Err(e) if not_supported(&e) && want.items.is_empty() => return Ok(false),
            Err(e) => return Err(TreeError::io("llistxattr", &shown, e)),
        };
        let mut writable = WriteAccess::new(&h, self.is_root);
        let mut changed = false;
        for (name, value) in &want.items {
            let Some(value) = value else { continue };
            if current.contains(name) && h.get(name).ok().flatten().as_ref() == Some(value) {
                continue;
            }
            writable
                .retry(&h, |h| h.set(name, value))
                .map_err(|e| TreeError::io("lsetxattr", &shown, e))?;
            changed = true;
        }
        for name in &current {
            if !may_remove(name) || want.items.iter().any(|(n, _)| n == name) {
                continue;
            }
            match writable.retry(&h, |h| h.remove(name)) {
                Ok(()) => changed = true,
                Err(e) if e.raw_os_error() == Some(libc::ENODATA) => {}
                Err(e) => return Err(TreeError::io("lremovexattr", &shown, e)),
            }
        }
        writable.restore(&h);
        Ok(changed)
    }
}

/// The temporary `u+w` a non-root process needs to change the xattrs of a file it
/// owns but may not write (upstream 3.2+: set_xattr()).
struct WriteAccess {
    may_try: bool,
    saved: Option<u32>,
}

impl WriteAccess {
    fn new(h: &Handle, is_root: bool) -> WriteAccess {
        WriteAccess {
            may_try: !is_root && matches!(h, Handle::Fd(_)),
            saved: None,
        }
    }

    fn retry(&mut self, h: &Handle, op: impl Fn(&Handle) -> io::Result<()>) -> io::Result<()> {
        match op(h) {
            Err(e)
                if self.may_try
                    && self.saved.is_none()
                    && e.raw_os_error() == Some(libc::EACCES) =>
            {
                let Handle::Fd(f) = h else { return Err(e) };
                let st = fstat(f.as_fd()).map_err(io::Error::from)?;
                fchmod(
                    f.as_fd(),
                    Mode::from_bits_truncate((st.st_mode | 0o200) & 0o7777),
                )
                .map_err(|_| e)?;
                self.saved = Some(st.st_mode & 0o7777);
                op(h)
            }
            other => other,
        }
    }

    fn restore(&self, h: &Handle) {
        if let (Some(mode), Handle::Fd(f)) = (self.saved, h) {
            let _ = fchmod(f.as_fd(), Mode::from_bits_truncate(mode));
        }
    }
}
