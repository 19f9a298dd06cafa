//! Keeping every directory watched: walking a subtree (watch first, list after),
//! adding watches and healing those refused, the root's loss and return.

use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use inotify::{WatchDescriptor, WatchMask};
use tracing::{debug, info, warn};

use super::{DIR_MASK, ROOT_MASK, RootState, Watcher};
use crate::op::WatchEvent;

impl Watcher {
    /// Events were lost: make sure every directory is watched, and say "push it all".
    pub(super) fn resync(&mut self, out: &mut Vec<WatchEvent>) {
        self.moved_dirs.clear();
        // The map is rebuilt: lost IN_IGNORED and IN_MOVED_* left it stale. Adding a
        // watch to a watched inode returns its descriptor, so this is cheap, and every
        // directory comes back under its current name.
        let before = self.map.clear();
        self.watch_tree(PathBuf::new(), false, out);
        for wd in before {
            // Directories that left the tree while events were lost.
            if self.map.path_of(&wd).is_none() {
                let _ = self.inotify.watches().remove(wd);
            }
        }
        out.push(WatchEvent::Rescan {
            path: PathBuf::new(),
        });
    }

    pub(super) fn lose_root(&mut self, why: &str, now: Instant) {
        if let RootState::Gone { .. } = self.root_state {
            return;
        }
        warn!(root = %self.root.display(), why, "the watched root is gone; waiting for it to come back");
        for wd in self.map.clear() {
            let _ = self.inotify.watches().remove(wd);
        }
        self.moved_dirs.clear();
        self.unmounted.clear();
        self.unwatched.clear();
        self.next_heal = None;
        self.root_state = RootState::Gone {
            next_check: now + self.root_poll_every,
        };
    }

    pub(super) fn look_for_root(&mut self, now: Instant, out: &mut Vec<WatchEvent>) {
        let back = fs::metadata(&self.root).is_ok_and(|m| m.is_dir())
            && (!self.root_is_mount || is_mount_point(&self.root));
        if !back {
            self.root_state = RootState::Gone {
                next_check: now + self.root_poll_every,
            };
            return;
        }
        self.root_state = RootState::Watched;
        match self.inotify.watches().add(&self.root, ROOT_MASK) {
            Ok(wd) => self.map.insert(wd, Path::new("")),
            Err(e) => {
                debug!(error = %e, "the root is back but not watchable yet");
                self.root_state = RootState::Gone {
                    next_check: now + self.root_poll_every,
                };
                return;
            }
        }
        self.watch_tree(PathBuf::new(), false, out);
        info!(root = %self.root.display(), watches = self.map.len(), "the watched root is back");
        out.push(WatchEvent::Rescan {
            path: PathBuf::new(),
        });
    }

    /// Tries again the subtrees refused for lack of watches; each one watched now is
    /// rescanned, as whatever changed there meanwhile went unseen.
    pub(super) fn heal(&mut self, now: Instant, out: &mut Vec<WatchEvent>) {
        self.next_heal = None;
        for top in std::mem::take(&mut self.unwatched) {
            let is_dir = fs::symlink_metadata(self.root.join(&top)).is_ok_and(|m| m.is_dir());
            if is_dir && self.watch_tree(top.clone(), false, out) {
                info!(dir = %top.display(), "watch limit healed: rescanning");
                out.push(WatchEvent::Rescan { path: top });
            }
        }
        if !self.unwatched.is_empty() {
            self.next_heal = Some(now + self.heal_every);
        }
    }

    /// Watches `top` and every directory below it, each before listing it, so nothing
    /// created in between is missed. With `found`, reports every entry listed.
    /// Returns whether `top` itself is watched.
    pub(super) fn watch_tree(
        &mut self,
        top: PathBuf,
        found: bool,
        out: &mut Vec<WatchEvent>,
    ) -> bool {
        let mut top_watched = false;
        let mut stack = vec![top];
        let mut first = true;
        while let Some(dir) = stack.pop() {
            let watched = self.add_watch(&dir);
            if std::mem::take(&mut first) {
                top_watched = watched;
            }
            if !watched {
                continue;
            }
            let entries = match fs::read_dir(self.root.join(&dir)) {
                Ok(entries) => entries,
                Err(e) => {
                    if e.kind() != io::ErrorKind::NotFound {
                        warn!(dir = %dir.display(), error = %e, "cannot list a watched directory");
                    }
                    continue;
                }
            };
            for entry in entries.flatten() {
                let path = dir.join(entry.file_name());
                if (self.excluded)(&path) {
                    continue;
                }
                // d_type (or lstat): a symlink to a directory is not descended into.
                let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
                if found {
                    out.push(WatchEvent::Found {
                        path: path.clone(),
                        is_dir,
                    });
                }
                if is_dir {
                    stack.push(path);
                }
            }
        }
        top_watched
    }

    /// Adds (or refreshes) the watch of one directory. `false` when it vanished, is no
    /// directory, or was refused (then it is remembered for healing).
    pub(super) fn add_watch(&mut self, rel: &Path) -> bool {
        let abs = self.root.join(rel);
        let mask = if rel.as_os_str().is_empty() {
            ROOT_MASK
        } else {
            DIR_MASK
        };
        let mut raised = 0;
        loop {
            match self.try_add_watch(&abs, mask) {
                Ok(wd) => {
                    self.map.insert(wd, rel);
                    return true;
                }
                Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => {
                    // Doubling three times is 8x: if that is not enough, stop asking.
                    if raised < 3 && self.limit.raise(self.map.len()) {
                        raised += 1;
                        continue;
                    }
                    self.remember_unwatched(rel);
                    return false;
                }
                Err(e) => {
                    let kind = e.raw_os_error();
                    // Vanished, or replaced by a non-directory: events will tell.
                    if kind != Some(libc::ENOENT) && kind != Some(libc::ENOTDIR) {
                        warn!(dir = %rel.display(), error = %e, "cannot watch a directory");
                    }
                    return false;
                }
            }
        }
    }

    fn try_add_watch(&mut self, abs: &Path, mask: WatchMask) -> io::Result<WatchDescriptor> {
        #[cfg(test)]
        if self.refuse_watches > 0 {
            self.refuse_watches -= 1;
            return Err(io::Error::from_raw_os_error(libc::ENOSPC));
        }
        self.inotify.watches().add(abs, mask)
    }

    fn remember_unwatched(&mut self, rel: &Path) {
        if !self.unwatched.iter().any(|u| rel.starts_with(u)) {
            self.unwatched.retain(|u| !u.starts_with(rel));
            self.unwatched.push(rel.to_path_buf());
        }
        if self.next_heal.is_none() {
            self.next_heal = Some(Instant::now() + self.heal_every);
        }
    }
}

/// Whether `path` is the top of a mounted filesystem (its device differs from its
/// parent's). Unknown counts as no, so an unreadable parent never blocks the root.
pub(super) fn is_mount_point(path: &Path) -> bool {
    let (Ok(here), Ok(parent)) = (fs::metadata(path), fs::metadata(path.join(".."))) else {
        return false;
    };
    here.dev() != parent.dev() || here.ino() == parent.ino()
}
