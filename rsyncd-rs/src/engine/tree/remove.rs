//! Recursive delete beneath the root, never following a link.
//!
//! Upstream: delete.c, delete_item() and delete_dir_contents() (`--delete` with
//! `--force` semantics for non-empty directories).

use std::os::fd::AsFd;

use nix::dir::Dir;
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::{Mode, SFlag};
use nix::unistd::{UnlinkatFlags, unlinkat};

use super::open::{is_type, stat_at};
use super::{RelPath, Tree, TreeError};

/// One directory being emptied: its open handle, the names still to remove, and its
/// own name in the directory above (`None` for the top, removed by the caller).
struct Level {
    dir: Dir,
    pending: Vec<Vec<u8>>,
    name: Option<Vec<u8>>,
}

impl Tree {
    /// Removes `p`: a non-directory (a symlink included) is unlinked; a directory is
    /// emptied depth-first and removed. Every subdirectory is opened with
    /// `O_NOFOLLOW|O_DIRECTORY` relative to its parent's descriptor, so a directory
    /// swapped for a symlink mid-way makes the delete fail instead of following it.
    ///
    /// Errors: `IsRoot` for `.`, resolver refusals, `Io` for the first failure (what
    /// was removed before it stays removed).
    pub fn remove_all(&self, p: &RelPath) -> Result<(), TreeError> {
        if self.opts.dry_run {
            return Ok(());
        }
        let (parent, name) = self.locate_entry(p, "delete")?;
        let st = stat_at(&parent, name).map_err(|e| TreeError::errno("lstat", p, e))?;
        if !is_type(&st, SFlag::S_IFDIR) {
            return unlinkat(&parent, name, UnlinkatFlags::NoRemoveDir)
                .map_err(|e| TreeError::errno("unlink", p, e));
        }
        let top = open_listing(&parent, name).map_err(|e| TreeError::errno("opendir", p, e))?;
        let mut levels = vec![top];
        let mut trail: Vec<Vec<u8>> = Vec::new();
        let shown = |trail: &[Vec<u8>], leaf: &[u8]| {
            let mut s = p.to_string();
            for part in trail.iter().map(Vec::as_slice).chain([leaf]) {
                s.push('/');
                s.push_str(&String::from_utf8_lossy(part));
            }
            s
        };
        while let Some(level) = levels.last_mut() {
            let Some(entry) = level.pending.pop() else {
                let done = levels.pop();
                if let (Some(above), Some(done)) = (levels.last(), done) {
                    let name = done.name.unwrap_or_default();
                    trail.pop();
                    unlinkat(&above.dir, name.as_slice(), UnlinkatFlags::RemoveDir)
                        .map_err(|e| TreeError::errno("rmdir", &shown(&trail, &name), e))?;
                }
                continue;
            };
            let st = match stat_at(&level.dir, &entry) {
                Ok(st) => st,
                Err(Errno::ENOENT) => continue,
                Err(e) => return Err(TreeError::errno("lstat", &shown(&trail, &entry), e)),
            };
            if is_type(&st, SFlag::S_IFDIR) {
                let mut sub = open_listing(&level.dir, &entry)
                    .map_err(|e| TreeError::errno("opendir", &shown(&trail, &entry), e))?;
                trail.push(entry.clone());
                sub.name = Some(entry);
                levels.push(sub);
            } else {
                unlinkat(&level.dir, entry.as_slice(), UnlinkatFlags::NoRemoveDir)
                    .map_err(|e| TreeError::errno("unlink", &shown(&trail, &entry), e))?;
            }
        }
        unlinkat(&parent, name, UnlinkatFlags::RemoveDir)
            .map_err(|e| TreeError::errno("rmdir", p, e))
    }
}

/// Opens subdirectory `name` of `dir` (refusing a symlink) and lists it.
fn open_listing(dir: &impl AsFd, name: &[u8]) -> nix::Result<Level> {
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let fd = nix::fcntl::openat(dir.as_fd(), name, flags, Mode::empty())?;
    let mut listing = Dir::from_fd(fd)?;
    let pending = list_names(&mut listing)?;
    Ok(Level {
        dir: listing,
        pending,
        name: None,
    })
}

/// The names in an open directory, without `.` and `..`.
pub(super) fn list_names(dir: &mut Dir) -> nix::Result<Vec<Vec<u8>>> {
    let mut names = Vec::new();
    for entry in dir.iter() {
        let name = entry?.file_name().to_bytes().to_vec();
        if name != b"." && name != b".." {
            names.push(name);
        }
    }
    Ok(names)
}
