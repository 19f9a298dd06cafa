//! The one door to the filesystem for a transfer session.
//!
//! A [`Tree`] holds a descriptor for the module root and accepts only checked
//! [`RelPath`]s. Each operation opens the entry's parent directory from the root
//! without following symlinks (see `open.rs`) and then acts on the final name with an
//! `*at()` call that does not follow it either, so no client-supplied name, planted
//! symlink or `..` can make the server create, write, delete, chmod or read anything
//! outside the root (the classes of CVE-2024-12087, CVE-2024-12088, CVE-2022-29154).
//! File data is written to a temp name beside the destination and renamed over it.
//! With `fake super`, what cannot be applied is kept in `user.rsync.%stat`.
//!
//! Everything here is reachable through safe `nix`/`xattr` calls, so the module
//! forbids `unsafe` even though the style guide would allow it.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod acls;
mod error;
mod fakesuper;
mod meta;
mod open;
mod relpath;
mod remove;
mod resolve;
mod temp;
mod xattrs;

#[cfg(test)]
mod tests_escape;
#[cfg(test)]
mod tests_fakesuper;
#[cfg(test)]
mod tests_insecure;
#[cfg(test)]
mod tests_ops;
#[cfg(test)]
mod tests_util;

use std::fs::File;
use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStringExt;
use std::path::Path;
use std::sync::atomic::AtomicBool;

use nix::dir::Dir;
use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, openat, readlinkat};
use nix::sys::stat::{Mode, SFlag, fstat, mkdirat, mknodat};
use nix::unistd::{UnlinkatFlags, linkat, symlinkat, unlinkat};

pub use error::TreeError;
pub use fakesuper::{STAT_XATTR, StatXattr, parse_stat_xattr, stat_xattr_value};
pub use meta::{AttrChanges, AttrTarget, FileKind, Meta, WantAttrs};
pub use relpath::{MAX_PATH_LEN, RelPath};
pub use temp::{TempFile, random_suffix, temp_name};
pub use xattrs::{XattrPair, XattrWant};

use fakesuper::{apply_stat_xattr, overlay_stat_xattr};
use open::{Located, is_type, pin_leaf, reopen_dir, stat_at};

/// Which path resolver a [`Tree`] uses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Resolver {
    /// `openat2` with `RESOLVE_BENEATH` where the kernel has it, else the walk.
    #[default]
    Auto,
    /// Always the component walk (for tests, and kernels whose `openat2` misbehaves).
    Walk,
}

/// How a [`Tree`] behaves; built once from the module config and session options.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TreeOptions {
    /// Store ownership, special bits, device numbers and symlinks in
    /// `user.rsync.%stat` and stand-in files instead of applying them.
    pub fake_super: bool,
    /// Follow a symlink met as a *directory component* when it leads to a directory
    /// beneath the root (`--keep-dirlinks`); absolute targets and targets climbing out
    /// are refused. The entry an operation acts on is never followed (only
    /// [`Tree::read_dir`] treats its path wholly as directories).
    pub keep_dirlinks: bool,
    /// Which resolver to use.
    pub resolver: Resolver,
    /// Files opened for reading do not update their access time (`open noatime`), where
    /// the kernel allows it (the owner or root).
    pub open_noatime: bool,
    /// `--dry-run`: every change succeeds without touching anything, as upstream's
    /// syscall wrappers do; [`Tree::set_attrs`] reports what it would change.
    pub dry_run: bool,
    /// The root is `/`, the whole filesystem as a local user's own rsync sees it (a
    /// client's sender for `-L` and `--copy-unsafe-links`; never a daemon's module): an
    /// absolute symlink target leads from the root, and `..` stops at it, as the
    /// kernel's walk does.
    pub whole_filesystem: bool,
    /// The module's `insecure links = yes`: symlinks in directory components are
    /// followed by the kernel wherever they lead, out of the root too, and operator
    /// paths resolve through links that leave it ([`Tree::resolve`] keeps such a link
    /// for the kernel to follow). The name an operation acts on is still never
    /// followed, but for [`Tree::stat_target`] and, with `follow_read_links`,
    /// [`Tree::open_read`]. Upstream: syscall.c, symlink_optout_allowed() (3.5.0).
    pub insecure_links: bool,
    /// With `insecure_links`, [`Tree::open_read`] follows a final symlink (`-L`,
    /// `--copy-unsafe-links`), as upstream's do_open_checklinks() does.
    pub follow_read_links: bool,
}

/// The module root and every operation beneath it.
#[derive(Debug)]
pub struct Tree {
    root: OwnedFd,
    opts: TreeOptions,
    /// Whether we may give files away (`chown` to another uid).
    is_root: bool,
    /// Cleared the first time the kernel shows it has no usable `openat2`.
    use_openat2: AtomicBool,
}

/// One entry of [`Tree::read_dir_meta`].
#[derive(Debug)]
pub struct DirEntry {
    /// Its name in the directory.
    pub name: Vec<u8>,
    /// Its `lstat` (`None`: gone since the listing).
    pub meta: Result<Option<Meta>, TreeError>,
    /// With fake super: a file or directory whose `user.rsync.%stat` this process may
    /// not read (its metadata is then plain `lstat`'s).
    pub stat_xattr_denied: bool,
}

/// A directory's entries with their metadata (see [`Tree::read_dir_meta`]).
pub type DirEntries = Vec<DirEntry>;

/// The longest symlink target we read or write (`PATH_MAX`).
const MAX_LINK_LEN: usize = 4096;

impl Tree {
    /// Opens the module root `root` (an operator-trusted path, which may itself
    /// contain symlinks). Errors: `Io` when it cannot be opened as a directory.
    pub fn open(root: &Path, opts: TreeOptions) -> Result<Tree, TreeError> {
        Ok(Tree::from_fd(Tree::open_root(root)?, opts))
    }

    /// Opens the directory `root` (operator-trusted, as for [`Tree::open`]) as a root
    /// descriptor for [`Tree::from_fd`]: a daemon opens it while it may still enter the
    /// module's parents, and builds the tree once it has dropped privileges and knows
    /// the client's options. Errors: `Io` when it cannot be opened as a directory.
    pub fn open_root(root: &Path) -> Result<OwnedFd, TreeError> {
        let flags = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
        nix::fcntl::open(root, flags, Mode::empty())
            .map_err(|e| TreeError::errno("open", &root.display(), e))
    }

    /// Wraps an already-open root directory descriptor (see [`Tree::open_root`]). Whether
    /// the tree may give files away is read from the process's identity now, so build it
    /// after any privilege drop.
    pub fn from_fd(root: OwnedFd, opts: TreeOptions) -> Tree {
        Tree {
            root,
            opts,
            is_root: nix::unistd::geteuid().is_root(),
            use_openat2: AtomicBool::new(true),
        }
    }

    /// The options this tree was opened with.
    pub fn options(&self) -> &TreeOptions {
        &self.opts
    }

    /// `lstat` of `p` (a final symlink is described, not followed); `None` when it or
    /// a parent does not exist. With fake super, mode, rdev, uid and gid are those
    /// recorded in `user.rsync.%stat` (and the kind follows the recorded mode).
    ///
    /// Upstream: xattrs.c, x_lstat().
    pub fn lstat(&self, p: &RelPath) -> Result<Option<Meta>, TreeError> {
        let located = match self.locate(p) {
            Ok(l) => l,
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(e),
        };
        let (st, pinned) = match located {
            Located::Root => {
                let st = fstat(&self.root).map_err(|e| TreeError::errno("stat", p, e))?;
                let pinned = if self.opts.fake_super {
                    Some(reopen_dir(&self.root, p)?)
                } else {
                    None
                };
                (st, pinned)
            }
            Located::Entry { dir, name } => {
                let st = match stat_at(&dir, name) {
                    Ok(st) => st,
                    Err(Errno::ENOENT) => return Ok(None),
                    Err(e) => return Err(TreeError::errno("lstat", p, e)),
                };
                let pinned = if self.opts.fake_super {
                    pin_leaf(&dir, name, &st, p)?
                } else {
                    None
                };
                (st, pinned)
            }
        };
        match pinned {
            Some(f) => overlay_stat_xattr(&f, &st, p).map(Some),
            None => Ok(Some(Meta::from_stat(&st))),
        }
    }

    /// Opens a regular file for reading, never following a final symlink. Errors:
    /// `WrongKind` for anything but a regular file, resolver refusals, `Io`.
    ///
    /// Upstream: syscall.c, do_open_at() / secure_relative_open().
    pub fn open_read(&self, p: &RelPath) -> Result<File, TreeError> {
        let (dir, name) = self.locate_entry(p, "open")?;
        // O_NONBLOCK: a fifo planted under the name must not hang us.
        let mut flags = OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_NOCTTY;
        if !(self.opts.insecure_links && self.opts.follow_read_links) {
            flags |= OFlag::O_NOFOLLOW;
        }
        let file = if self.opts.open_noatime {
            // O_NOATIME needs the owner or CAP_FOWNER; without, open as usual.
            match self.open_regular(&dir, name, flags | OFlag::O_NOATIME, p) {
                Err(e) if e.raw_os_error() == Some(Errno::EPERM as i32) => {
                    self.open_regular(&dir, name, flags, p)?
                }
                other => other?,
            }
        } else {
            self.open_regular(&dir, name, flags, p)?
        };
        clear_nonblock(&file).map_err(|e| TreeError::errno("fcntl", p, e))?;
        Ok(file)
    }

    /// Whether the symlink `p` leads to a directory, wherever that is, as the kernel
    /// resolves it: one bit about a target that may lie outside the root, and nothing
    /// else of it. `-k` needs it to do what stock does with a link to a directory it
    /// will then refuse to list (upstream stats through the link, outside too).
    pub fn link_leads_to_directory(&self, p: &RelPath) -> bool {
        let Ok(Located::Entry { dir, name }) = self.locate(p) else {
            return false;
        };
        nix::sys::stat::fstatat(&dir, name, AtFlags::empty())
            .is_ok_and(|st| is_type(&st, SFlag::S_IFDIR))
    }

    /// Whether this process may read `p` (a final symlink is not followed), as
    /// access(2) with the effective ids answers (`ignore nonreadable`).
    pub fn is_readable(&self, p: &RelPath) -> bool {
        let flags = AtFlags::AT_SYMLINK_NOFOLLOW | AtFlags::AT_EACCESS;
        match self.locate(p) {
            Ok(Located::Root) => {
                nix::unistd::faccessat(&self.root, ".", nix::unistd::AccessFlags::R_OK, flags)
                    .is_ok()
            }
            Ok(Located::Entry { dir, name }) => {
                nix::unistd::faccessat(&dir, name, nix::unistd::AccessFlags::R_OK, flags).is_ok()
            }
            Err(_) => false,
        }
    }

    /// Opens `p` for `--inplace` writing: `O_WRONLY`, no `O_TRUNC`, created `0600` if
    /// absent, never following a final symlink. Errors: `WrongKind` unless a regular
    /// file, resolver refusals, `Io`.
    pub fn open_inplace(&self, p: &RelPath) -> Result<File, TreeError> {
        if self.opts.dry_run {
            return Err(TreeError::DryRun {
                op: "open for writing",
            });
        }
        let (dir, name) = self.locate_entry(p, "open")?;
        let flags = OFlag::O_WRONLY
            | OFlag::O_CREAT
            | OFlag::O_NOFOLLOW
            | OFlag::O_NONBLOCK
            | OFlag::O_NOCTTY;
        let file = self.open_regular(&dir, name, flags, p)?;
        clear_nonblock(&file).map_err(|e| TreeError::errno("fcntl", p, e))?;
        Ok(file)
    }

    fn open_regular(
        &self,
        dir: &impl AsFd,
        name: &[u8],
        flags: OFlag,
        p: &RelPath,
    ) -> Result<File, TreeError> {
        let fd = match openat(
            dir.as_fd(),
            name,
            flags | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o600),
        ) {
            Ok(fd) => fd,
            Err(Errno::ELOOP) => {
                return Err(TreeError::WrongKind {
                    path: p.to_string(),
                    expected: "regular file",
                });
            }
            Err(e) => return Err(TreeError::errno("open", p, e)),
        };
        let st = fstat(&fd).map_err(|e| TreeError::errno("fstat", p, e))?;
        if !is_type(&st, SFlag::S_IFREG) {
            return Err(TreeError::WrongKind {
                path: p.to_string(),
                expected: "regular file",
            });
        }
        Ok(File::from(fd))
    }

    /// The names in directory `p` (without `.` and `..`), in directory order.
    /// `p` itself is resolved like a directory component: a symlink is refused, or
    /// with `keep_dirlinks` followed when it leads to a directory beneath the root.
    /// Errors: resolver refusals, `Io`.
    pub fn read_dir(&self, p: &RelPath) -> Result<Vec<Vec<u8>>, TreeError> {
        let dir = self.open_dir(p)?;
        let listing = reopen_dir(&dir, p)?;
        let mut listing =
            Dir::from_fd(OwnedFd::from(listing)).map_err(|e| TreeError::errno("opendir", p, e))?;
        remove::list_names(&mut listing).map_err(|e| TreeError::errno("readdir", p, e))
    }

    /// The entries of directory `p` with their `lstat` (as [`Tree::lstat`] gives it,
    /// fake super included), the directory opened once: what a sender's scan needs.
    /// An entry gone between the listing and its `lstat` is `Ok(None)`.
    pub fn read_dir_meta(&self, p: &RelPath) -> Result<DirEntries, TreeError> {
        let dir = self.open_dir(p)?;
        let listing = reopen_dir(&dir, p)?;
        let mut listing =
            Dir::from_fd(OwnedFd::from(listing)).map_err(|e| TreeError::errno("opendir", p, e))?;
        let names =
            remove::list_names(&mut listing).map_err(|e| TreeError::errno("readdir", p, e))?;
        let mut out = Vec::with_capacity(names.len());
        for name in names {
            let mut stat_xattr_denied = false;
            let meta = match stat_at(&dir, &name) {
                Ok(st) if self.opts.fake_super => match p.join(&name) {
                    Ok(child) => match pin_leaf(&dir, &name, &st, &child) {
                        Ok(Some(f)) => overlay_stat_xattr(&f, &st, &child).map(Some),
                        Ok(None) => {
                            // A file or directory pin_leaf could not open: its xattr
                            // cannot be read either.
                            stat_xattr_denied =
                                is_type(&st, SFlag::S_IFREG) || is_type(&st, SFlag::S_IFDIR);
                            Ok(Some(Meta::from_stat(&st)))
                        }
                        Err(e) => Err(e),
                    },
                    Err(e) => Err(e),
                },
                Ok(st) => Ok(Some(Meta::from_stat(&st))),
                Err(Errno::ENOENT) => Ok(None),
                Err(e) => Err(TreeError::errno(
                    "lstat",
                    &String::from_utf8_lossy(&name),
                    e,
                )),
            };
            out.push(DirEntry {
                name,
                meta,
                stat_xattr_denied,
            });
        }
        Ok(out)
    }

    /// The target of symlink `p`. With fake super, the content of its stand-in file
    /// (a real symlink is still read as one).
    ///
    /// Upstream: syscall.c, do_readlink_atfd().
    pub fn read_link(&self, p: &RelPath) -> Result<Vec<u8>, TreeError> {
        let (dir, name) = self.locate_entry(p, "readlink")?;
        if self.opts.fake_super {
            let flags = OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_NOCTTY;
            match self.open_regular(&dir, name, flags, p) {
                Ok(file) => {
                    let mut target = Vec::new();
                    file.take(MAX_LINK_LEN as u64 + 1)
                        .read_to_end(&mut target)
                        .map_err(|e| TreeError::io("readlink", p, e))?;
                    if target.len() > MAX_LINK_LEN {
                        return Err(TreeError::errno("readlink", p, Errno::ENAMETOOLONG));
                    }
                    return Ok(target);
                }
                // A real symlink: fall through and read it as one.
                Err(TreeError::WrongKind { .. }) if self.is_symlink(&dir, name) => {}
                Err(e) => return Err(e),
            }
        }
        readlinkat(&dir, name)
            .map(OsStringExt::into_vec)
            .map_err(|e| TreeError::errno("readlink", p, e))
    }

    fn is_symlink(&self, dir: &impl AsFd, name: &[u8]) -> bool {
        stat_at(dir, name).is_ok_and(|st| is_type(&st, SFlag::S_IFLNK))
    }

    /// Creates directory `p` with permissions `mode & 07777` (owner `rwx` added with
    /// fake super); the process umask applies as with mkdir(2).
    ///
    /// Upstream: syscall.c, do_mkdir_at().
    pub fn mkdir(&self, p: &RelPath, mode: u32) -> Result<(), TreeError> {
        if self.opts.dry_run {
            return Ok(());
        }
        let (dir, name) = self.locate_entry(p, "mkdir")?;
        let added = if self.opts.fake_super { 0o700 } else { 0 };
        mkdirat(
            &dir,
            name,
            Mode::from_bits_truncate((mode & 0o7777) | added),
        )
        .map_err(|e| TreeError::errno("mkdir", p, e))
    }

    /// Creates symlink `p` → `target` (stored verbatim, never resolved). With fake
    /// super: a regular file holding the target, recorded as `120777`. Like
    /// symlink(2) it fails with `EEXIST` when `p` exists (fake super too: a planted
    /// name is never opened). Errors: `BadPath` for an empty target or one with NUL.
    ///
    /// Upstream: syscall.c, do_symlink_at().
    pub fn symlink(&self, target: &[u8], p: &RelPath) -> Result<(), TreeError> {
        if self.opts.dry_run {
            return Ok(());
        }
        if target.is_empty() || target.len() > MAX_LINK_LEN || target.contains(&0) {
            return Err(TreeError::bad_path(target, "unusable symlink target"));
        }
        let (dir, name) = self.locate_entry(p, "symlink")?;
        if self.opts.fake_super {
            return self.create_standin(&dir, name, libc::S_IFLNK | 0o777, 0, target, p);
        }
        symlinkat(target, &dir, name).map_err(|e| TreeError::errno("symlink", p, e))
    }

    /// Creates device, fifo or socket `p` (`mode` includes the type bits). With fake
    /// super: an empty regular file with the mode and `rdev` recorded.
    /// Errors: `WrongKind` when `mode` names another type; `EEXIST` when `p` exists.
    ///
    /// Upstream: syscall.c, do_mknod_at().
    pub fn mknod(&self, p: &RelPath, mode: u32, rdev: u64) -> Result<(), TreeError> {
        if self.opts.dry_run {
            return Ok(());
        }
        let kind = FileKind::from_mode(mode);
        let special = matches!(
            kind,
            Some(FileKind::CharDev | FileKind::BlockDev | FileKind::Fifo | FileKind::Socket)
        );
        if !special {
            return Err(TreeError::WrongKind {
                path: p.to_string(),
                expected: "device, fifo or socket",
            });
        }
        let (dir, name) = self.locate_entry(p, "mknod")?;
        if self.opts.fake_super {
            return self.create_standin(&dir, name, mode, rdev, b"", p);
        }
        let kind = SFlag::from_bits_truncate(mode & libc::S_IFMT);
        let rdev = if kind == SFlag::S_IFCHR || kind == SFlag::S_IFBLK {
            rdev
        } else {
            0
        };
        mknodat(
            &dir,
            name,
            kind,
            Mode::from_bits_truncate(mode & 0o7777),
            rdev,
        )
        .map_err(|e| TreeError::errno("mknod", p, e))
    }

    /// A fake-super stand-in: a new `0600` regular file with `content`, then the
    /// xattr recording `mode` and `rdev`. Removed again if any step fails.
    fn create_standin(
        &self,
        dir: &impl AsFd,
        name: &[u8],
        mode: u32,
        rdev: u64,
        content: &[u8],
        p: &RelPath,
    ) -> Result<(), TreeError> {
        use std::io::Write;
        let flags =
            OFlag::O_RDWR | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let fd = openat(dir.as_fd(), name, flags, Mode::from_bits_truncate(0o600))
            .map_err(|e| TreeError::errno("create", p, e))?;
        let mut file = File::from(fd);
        let want = WantAttrs {
            mode: Some(mode & 0o7777),
            rdev: Some(rdev),
            ..WantAttrs::default()
        };
        let done = file
            .write_all(content)
            .map_err(|e| TreeError::io("write", p, e))
            .and_then(|()| apply_stat_xattr(&file, Some(mode & libc::S_IFMT), &want, p));
        if let Err(e) = done {
            let _ = unlinkat(dir, name, UnlinkatFlags::NoRemoveDir);
            return Err(e);
        }
        Ok(())
    }

    /// Makes `new` a hard link to `existing` (a symlink is linked itself, not its
    /// target).
    ///
    /// Upstream: syscall.c, do_link_at().
    pub fn hard_link(&self, existing: &RelPath, new: &RelPath) -> Result<(), TreeError> {
        if self.opts.dry_run {
            return Ok(());
        }
        let (odir, oname) = self.locate_entry(existing, "link")?;
        let (ndir, nname) = self.locate_entry(new, "link")?;
        linkat(&odir, oname, &ndir, nname, AtFlags::empty())
            .map_err(|e| TreeError::errno("link", new, e))
    }

    /// Removes the non-directory `p` (a symlink itself, never its target).
    ///
    /// Upstream: syscall.c, do_unlink_at().
    pub fn unlink(&self, p: &RelPath) -> Result<(), TreeError> {
        if self.opts.dry_run {
            return Ok(());
        }
        let (dir, name) = self.locate_entry(p, "unlink")?;
        unlinkat(&dir, name, UnlinkatFlags::NoRemoveDir)
            .map_err(|e| TreeError::errno("unlink", p, e))
    }

    /// Removes the empty directory `p`.
    ///
    /// Upstream: syscall.c, do_rmdir_at().
    pub fn rmdir(&self, p: &RelPath) -> Result<(), TreeError> {
        if self.opts.dry_run {
            return Ok(());
        }
        let (dir, name) = self.locate_entry(p, "rmdir")?;
        unlinkat(&dir, name, UnlinkatFlags::RemoveDir).map_err(|e| TreeError::errno("rmdir", p, e))
    }

    /// Renames `from` to `to`, both beneath the root; a symlink at either end is
    /// renamed or replaced itself.
    ///
    /// Upstream: syscall.c, do_rename_at().
    pub fn rename(&self, from: &RelPath, to: &RelPath) -> Result<(), TreeError> {
        if self.opts.dry_run {
            return Ok(());
        }
        let (fdir, fname) = self.locate_entry(from, "rename")?;
        let (tdir, tname) = self.locate_entry(to, "rename")?;
        nix::fcntl::renameat(&fdir, fname, &tdir, tname)
            .map_err(|e| TreeError::errno("rename", to, e))
    }
}

/// Regular files ignore `O_NONBLOCK` on Linux, but callers should not inherit it.
fn clear_nonblock(file: &File) -> nix::Result<()> {
    use nix::fcntl::{FcntlArg, fcntl};
    let flags = OFlag::from_bits_truncate(fcntl(file, FcntlArg::F_GETFL)?);
    fcntl(file, FcntlArg::F_SETFL(flags - OFlag::O_NONBLOCK)).map(drop)
}
