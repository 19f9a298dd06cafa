//! Turning a [`RelPath`] into a directory descriptor beneath the root.
//!
//! Two resolvers give the same answers: `openat2(2)` with `RESOLVE_BENEATH` (plus
//! `RESOLVE_NO_SYMLINKS` unless `keep_dirlinks`), and, where the kernel lacks it, a
//! walk that opens one component at a time with `O_NOFOLLOW|O_DIRECTORY` from the root
//! descriptor. Either way every later operation is an `*at()` call on the descriptor
//! found, with a single final name, so swapping a directory for a symlink between two
//! operations cannot redirect the second one outside the root.
//!
//! Upstream: syscall.c, secure_relative_open() and the do_*_at() wrappers.

use std::collections::VecDeque;
use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::Ordering;

use nix::errno::Errno;
use nix::fcntl::{OFlag, OpenHow, ResolveFlag, openat, openat2, readlinkat};
use nix::sys::stat::{FileStat, Mode, SFlag, fstat, fstatat};

use super::{RelPath, Resolver, Tree, TreeError};

/// How many symlinks a `keep_dirlinks` walk may follow for one path (Linux's limit).
const MAX_SYMLINK_HOPS: u32 = 40;

/// `openat2` answers `EAGAIN` when a rename raced the lookup; retry this often.
const OPENAT2_RETRIES: u32 = 4;

/// A directory beneath the root: the root itself (borrowed) or one we opened.
#[derive(Debug)]
pub(super) enum DirFd<'a> {
    Root(BorrowedFd<'a>),
    Owned(OwnedFd),
}

impl AsFd for DirFd<'_> {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            DirFd::Root(fd) => *fd,
            DirFd::Owned(fd) => fd.as_fd(),
        }
    }
}

impl DirFd<'_> {
    /// A descriptor that outlives the tree borrow (a `dup` of the root when needed).
    pub(super) fn into_owned(self) -> std::io::Result<OwnedFd> {
        match self {
            DirFd::Root(fd) => fd.try_clone_to_owned(),
            DirFd::Owned(fd) => Ok(fd),
        }
    }
}

/// Where a path lives: the root itself, or a final name in an opened parent.
#[derive(Debug)]
pub(super) enum Located<'a> {
    Root,
    Entry { dir: DirFd<'a>, name: &'a [u8] },
}

pub(super) fn is_type(st: &FileStat, kind: SFlag) -> bool {
    st.st_mode & SFlag::S_IFMT.bits() == kind.bits()
}

/// `lstat` of one name in a directory.
pub(super) fn stat_at(dir: &impl AsFd, name: &[u8]) -> nix::Result<FileStat> {
    fstatat(dir.as_fd(), name, nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW)
}

impl Tree {
    /// The parent directory of `p` (opened under the resolver rules) and its final
    /// name, or `Located::Root` for `.`.
    pub(super) fn locate<'a>(&'a self, p: &'a RelPath) -> Result<Located<'a>, TreeError> {
        let Some(parent) = p.parent() else {
            return Ok(Located::Root);
        };
        let dir = self.open_dir_as(&parent, p)?;
        Ok(Located::Entry {
            dir,
            name: p.file_name(),
        })
    }

    /// Like [`Tree::locate`] for operations that make no sense on the root.
    pub(super) fn locate_entry<'a>(
        &'a self,
        p: &'a RelPath,
        op: &'static str,
    ) -> Result<(DirFd<'a>, &'a [u8]), TreeError> {
        match self.locate(p)? {
            Located::Root => Err(TreeError::IsRoot { op }),
            Located::Entry { dir, name } => Ok((dir, name)),
        }
    }

    /// Opens the directory `p` itself (an `O_PATH` descriptor), every component
    /// resolved as a directory under the resolver rules.
    pub(super) fn open_dir(&self, p: &RelPath) -> Result<DirFd<'_>, TreeError> {
        self.open_dir_as(p, p)
    }

    /// Opens directory `dir`; errors name `shown`, the path the caller was asked for.
    fn open_dir_as(&self, dir: &RelPath, shown: &RelPath) -> Result<DirFd<'_>, TreeError> {
        if dir.is_root() {
            return Ok(DirFd::Root(self.root.as_fd()));
        }
        if self.opts.insecure_links {
            // The operator's opt-out: a plain lookup, following any symlink anywhere,
            // as a path-based call of rsync 3.2.7 would.
            let flags = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
            return openat(self.root.as_fd(), dir.as_bytes(), flags, Mode::empty())
                .map(DirFd::Owned)
                .map_err(|e| TreeError::errno("open", shown, e));
        }
        if self.opts.resolver == Resolver::Auto && self.use_openat2.load(Ordering::Relaxed) {
            if let Some(found) = self.openat2_dir(dir, shown) {
                return found.map(DirFd::Owned);
            }
        }
        if self.opts.keep_dirlinks {
            self.walk_following(dir, shown).map(DirFd::Owned)
        } else {
            self.walk_strict(dir, shown)
        }
    }

    /// One `openat2` lookup; `None` when the kernel cannot do it and the walk must.
    fn openat2_dir(&self, dir: &RelPath, shown: &RelPath) -> Option<Result<OwnedFd, TreeError>> {
        let mut resolve = ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_MAGICLINKS;
        if !self.opts.keep_dirlinks {
            resolve |= ResolveFlag::RESOLVE_NO_SYMLINKS;
        }
        let how = OpenHow::new()
            .flags(OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC)
            .resolve(resolve);
        let mut retries = 0;
        loop {
            let err = match openat2(self.root.as_fd(), dir.as_bytes(), how) {
                Ok(fd) => return Some(Ok(fd)),
                Err(e) => e,
            };
            let path = || shown.to_string();
            return Some(Err(match err {
                // A rename elsewhere in the tree raced the lookup; the kernel asks us
                // to retry. If it keeps happening, let the walk answer instead.
                Errno::EAGAIN if retries < OPENAT2_RETRIES => {
                    retries += 1;
                    continue;
                }
                Errno::EAGAIN => return None,
                // No openat2 (before Linux 5.6), or a seccomp filter hiding it.
                Errno::ENOSYS | Errno::EPERM | Errno::EINVAL | Errno::E2BIG => {
                    self.use_openat2.store(false, Ordering::Relaxed);
                    return None;
                }
                Errno::EXDEV => TreeError::Escape { path: path() },
                Errno::ELOOP if !self.opts.keep_dirlinks => {
                    TreeError::SymlinkInPath { path: path() }
                }
                e => TreeError::errno("open", shown, e),
            }));
        }
    }

    /// Component walk refusing every symlink.
    fn walk_strict(&self, dir: &RelPath, shown: &RelPath) -> Result<DirFd<'_>, TreeError> {
        let mut cur = DirFd::Root(self.root.as_fd());
        for comp in dir.components() {
            match open_subdir(&cur, comp) {
                Ok(fd) => cur = DirFd::Owned(fd),
                Err(e @ (Errno::ENOTDIR | Errno::ELOOP)) => {
                    if stat_at(&cur, comp).is_ok_and(|st| is_type(&st, SFlag::S_IFLNK)) {
                        return Err(TreeError::SymlinkInPath {
                            path: shown.to_string(),
                        });
                    }
                    return Err(TreeError::errno("open", shown, e));
                }
                Err(e) => return Err(TreeError::errno("open", shown, e)),
            }
        }
        Ok(cur)
    }

    /// Component walk for `keep_dirlinks`: a symlink met on the way is read and its
    /// (relative) target walked in its place, on a stack of held descriptors so a `..`
    /// in a target pops back to the directory we really came from and can never climb
    /// above the root.
    fn walk_following(&self, dir: &RelPath, shown: &RelPath) -> Result<OwnedFd, TreeError> {
        let mut stack: Vec<OwnedFd> = Vec::new();
        let mut queue: VecDeque<Vec<u8>> = dir.components().map(<[u8]>::to_vec).collect();
        let mut hops = MAX_SYMLINK_HOPS;
        let escape = || TreeError::Escape {
            path: shown.to_string(),
        };
        while let Some(comp) = queue.pop_front() {
            // "." and ".." only come from symlink targets; RelPath has neither.
            if comp == b"." {
                continue;
            }
            if comp == b".." {
                stack.pop().ok_or_else(escape)?;
                continue;
            }
            let cur = stack.last().map_or(self.root.as_fd(), AsFd::as_fd);
            match open_subdir(&cur, &comp) {
                Ok(fd) => stack.push(fd),
                Err(e @ (Errno::ENOTDIR | Errno::ELOOP)) => {
                    let target = match readlinkat(cur, comp.as_slice()) {
                        Ok(t) => std::os::unix::ffi::OsStringExt::into_vec(t),
                        // Not a symlink: a real non-directory in the way.
                        Err(Errno::EINVAL) => return Err(TreeError::errno("open", shown, e)),
                        Err(e) => return Err(TreeError::errno("readlink", shown, e)),
                    };
                    if target.is_empty() || target.starts_with(b"/") {
                        return Err(escape());
                    }
                    hops = hops
                        .checked_sub(1)
                        .ok_or_else(|| TreeError::errno("open", shown, Errno::ELOOP))?;
                    for part in target.split(|&b| b == b'/').rev().filter(|c| !c.is_empty()) {
                        queue.push_front(part.to_vec());
                    }
                }
                Err(e) => return Err(TreeError::errno("open", shown, e)),
            }
        }
        match stack.pop() {
            Some(fd) => Ok(fd),
            // The target led back to the root itself.
            None => self
                .root
                .try_clone()
                .map_err(|e| TreeError::io("open", shown, e)),
        }
    }
}

/// Opens a real subdirectory, never following a symlink.
fn open_subdir(dir: &impl AsFd, name: &[u8]) -> nix::Result<OwnedFd> {
    let flags = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    openat(dir.as_fd(), name, flags, Mode::empty())
}

/// Opens a regular file or directory for fd-based metadata work (xattrs, fchmod),
/// never following a symlink, and checks it is the inode `st` described. Returns
/// `None` for other kinds (devices are never opened) or when we may not read it.
pub(super) fn pin_leaf(
    dir: &impl AsFd,
    name: &[u8],
    st: &FileStat,
    shown: &dyn std::fmt::Display,
) -> Result<Option<File>, TreeError> {
    let mut flags = OFlag::O_RDONLY
        | OFlag::O_NOFOLLOW
        | OFlag::O_NONBLOCK
        | OFlag::O_NOCTTY
        | OFlag::O_CLOEXEC;
    if is_type(st, SFlag::S_IFDIR) {
        flags |= OFlag::O_DIRECTORY;
    } else if !is_type(st, SFlag::S_IFREG) {
        return Ok(None);
    }
    let fd = match openat(dir.as_fd(), name, flags, Mode::empty()) {
        Ok(fd) => fd,
        Err(Errno::EACCES | Errno::EPERM) => return Ok(None),
        Err(e) => return Err(TreeError::errno("open", shown, e)),
    };
    let now = fstat(&fd).map_err(|e| TreeError::errno("fstat", shown, e))?;
    if now.st_dev != st.st_dev || now.st_ino != st.st_ino {
        // Replaced between the lstat and the open: refuse rather than guess.
        return Err(TreeError::errno("open", shown, Errno::EAGAIN));
    }
    Ok(Some(File::from(fd)))
}

/// Reopens the root for reading (listing, xattrs, fchmod).
pub(super) fn reopen_dir(
    dir: &impl AsFd,
    shown: &dyn std::fmt::Display,
) -> Result<File, TreeError> {
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
    openat(dir.as_fd(), ".", flags, Mode::empty())
        .map(File::from)
        .map_err(|e| TreeError::errno("opendir", shown, e))
}
