//! Which watched directory each watch descriptor stands for, both ways.
//!
//! inotify names only the watch an event came from; the path has to be ours. The map
//! must follow renames inside the tree, or events below a renamed directory would be
//! reported under its old name and pushes would miss them.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use inotify::WatchDescriptor;

/// Watch descriptors and the relative paths of the directories they watch.
#[derive(Debug, Default)]
pub(super) struct WatchMap {
    by_wd: HashMap<WatchDescriptor, PathBuf>,
    /// Ordered by components, so a directory's descendants follow it contiguously
    /// (`a`, `a/b`, `a/b/c`, then `a0`): a subtree is one range.
    by_path: BTreeMap<PathBuf, WatchDescriptor>,
}

impl WatchMap {
    /// Records that `wd` watches `rel`. Adding a watch for an inode already watched
    /// returns its old descriptor, so a descriptor seen again at a new path moves there.
    pub(super) fn insert(&mut self, wd: WatchDescriptor, rel: PathBuf) {
        if let Some(old) = self.by_wd.insert(wd.clone(), rel.clone()) {
            if old != rel && self.by_path.get(&old) == Some(&wd) {
                self.by_path.remove(&old);
            }
        }
        self.by_path.insert(rel, wd);
    }

    pub(super) fn path_of(&self, wd: &WatchDescriptor) -> Option<&Path> {
        self.by_wd.get(wd).map(PathBuf::as_path)
    }

    pub(super) fn wd_of(&self, rel: &Path) -> Option<&WatchDescriptor> {
        self.by_path.get(rel)
    }

    pub(super) fn len(&self) -> usize {
        self.by_wd.len()
    }

    /// Forgets `wd` (the kernel dropped it: IN_IGNORED). The path is released only if
    /// it still belongs to `wd`: a directory created again at the same path may already
    /// hold a newer watch.
    pub(super) fn remove_wd(&mut self, wd: &WatchDescriptor) -> Option<PathBuf> {
        let rel = self.by_wd.remove(wd)?;
        if self.by_path.get(&rel) == Some(wd) {
            self.by_path.remove(&rel);
        }
        Some(rel)
    }

    /// Moves `from` and every watched directory below it to `to` (a rename inside the
    /// tree: the watches follow the inodes, only our names for them change).
    pub(super) fn rename_subtree(&mut self, from: &Path, to: &Path) {
        for (old, wd) in self.take_range(from) {
            let new = match old.strip_prefix(from) {
                Ok(rest) if rest.as_os_str().is_empty() => to.to_path_buf(),
                Ok(rest) => to.join(rest),
                Err(_) => continue,
            };
            self.insert(wd, new);
        }
    }

    /// Forgets `top` and every watched directory below it, returning their descriptors
    /// so the caller can remove the watches (a directory moved out of the tree).
    pub(super) fn take_subtree(&mut self, top: &Path) -> Vec<WatchDescriptor> {
        let taken = self.take_range(top);
        taken
            .into_iter()
            .map(|(_, wd)| {
                self.by_wd.remove(&wd);
                wd
            })
            .collect()
    }

    /// Forgets everything (the root is gone), returning the descriptors.
    pub(super) fn clear(&mut self) -> Vec<WatchDescriptor> {
        self.by_path.clear();
        self.by_wd.drain().map(|(wd, _)| wd).collect()
    }

    /// Removes the `by_path` entries of `top`'s subtree; `by_wd` is left to the caller.
    fn take_range(&mut self, top: &Path) -> Vec<(PathBuf, WatchDescriptor)> {
        let keys: Vec<PathBuf> = self
            .by_path
            .range(top.to_path_buf()..)
            .take_while(|(p, _)| p.starts_with(top))
            .map(|(p, _)| p.clone())
            .collect();
        keys.into_iter()
            .filter_map(|k| self.by_path.remove(&k).map(|wd| (k, wd)))
            .collect()
    }
}
