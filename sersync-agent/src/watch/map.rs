//! Which watched directory each watch descriptor stands for, both ways.
//!
//! inotify names only the watch an event came from; the path has to be ours. The map
//! must follow renames inside the tree, or events below a renamed directory would be
//! reported under its old name and pushes would miss them.
//!
//! The directories are a tree of nodes, each holding its parent, its own name (one
//! path component) and its watch; a path is built when asked for, by walking up. So a
//! directory costs one node, its name and a slot in each of two hash tables, whatever
//! its depth, and a rename re-links one node however much lies below it. Freed nodes
//! are reused, so churn does not grow the map.

use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasher, Hash, RandomState};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use hashbrown::HashTable;
use inotify::WatchDescriptor;

/// No node: the root's parent, the end of a list.
const NONE: u32 = u32::MAX;

/// The watched root, the empty path. Always there, never freed.
const ROOT: u32 = 0;

/// One directory, or a free slot (then `next` links the free list).
#[derive(Debug)]
struct Node<W> {
    parent: u32,
    first_child: u32,
    prev: u32,
    next: u32,
    /// One component; empty for the root (and for a free slot).
    name: Box<[u8]>,
    /// `None` for a placeholder: a directory not watched (yet) with watched ones
    /// below, as when a subtree is watched before its parent. A placeholder without
    /// children is freed.
    wd: Option<W>,
}

impl<W> Node<W> {
    fn new(name: Box<[u8]>) -> Node<W> {
        Node {
            parent: NONE,
            first_child: NONE,
            prev: NONE,
            next: NONE,
            name,
            wd: None,
        }
    }
}

/// Watch descriptors and the relative paths of the directories they watch.
///
/// Generic over the descriptor only so that tests can use plain numbers.
pub(super) struct WatchMap<W = WatchDescriptor> {
    nodes: Vec<Node<W>>,
    /// Head of the list of free slots in `nodes`.
    free: u32,
    /// Nodes with a watch, by their descriptor (hashed by the descriptor, which is
    /// stored in the node only).
    by_wd: HashTable<u32>,
    /// Nodes but the root, by (parent, name) (hashed by those, compared with the node).
    by_name: HashTable<u32>,
    /// Watches whose path another watch took over (a directory created again at the
    /// same path before the old one's IN_IGNORED): they keep the path they had, and
    /// lose no path when they go. Rare and short-lived, so a whole path each.
    displaced: HashMap<W, PathBuf>,
    /// Nodes with a watch.
    watched: usize,
    hasher: RandomState,
}

impl<W> fmt::Debug for WatchMap<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WatchMap")
            .field("watched", &self.watched)
            .field("displaced", &self.displaced.len())
            .field("nodes", &self.nodes.len())
            .finish_non_exhaustive()
    }
}

impl<W> Default for WatchMap<W> {
    fn default() -> WatchMap<W> {
        WatchMap {
            nodes: vec![Node::new(Box::default())],
            free: NONE,
            by_wd: HashTable::new(),
            by_name: HashTable::new(),
            displaced: HashMap::new(),
            watched: 0,
            hasher: RandomState::new(),
        }
    }
}

/// The components of a relative path as names (`.` is no name).
fn names(rel: &Path) -> impl Iterator<Item = &[u8]> {
    rel.components()
        .filter(|c| !matches!(c, Component::CurDir))
        .map(|c| c.as_os_str().as_bytes())
}

fn name_hash(hasher: &RandomState, parent: u32, name: &[u8]) -> u64 {
    hasher.hash_one((parent, name))
}

impl<W: Eq + Hash> WatchMap<W> {
    /// Records that `wd` watches `rel`. Adding a watch for an inode already watched
    /// returns its old descriptor, so a descriptor seen again at a new path moves there.
    /// A descriptor that held `rel` until now keeps it as its own path until it is
    /// removed (see [`WatchMap::remove_wd`]).
    pub(super) fn insert(&mut self, wd: W, rel: &Path) {
        let target = self.lookup(rel);
        if let Some(i) = self.find_wd(&wd) {
            if Some(i) == target {
                return;
            }
            self.take_wd(i);
            self.prune(i);
        } else {
            self.displaced.remove(&wd);
        }
        let i = self.ensure(names(rel));
        if let Some(old) = self.take_wd(i) {
            self.displaced.insert(old, rel.to_path_buf());
        }
        self.set_wd(i, wd);
    }

    /// The path `wd` watches, built from the tree.
    pub(super) fn path_of(&self, wd: &W) -> Option<PathBuf> {
        match self.find_wd(wd) {
            Some(i) => Some(self.path(i)),
            None => self.displaced.get(wd).cloned(),
        }
    }

    /// The watch of `rel`, if it has one (a placeholder has none).
    pub(super) fn wd_of(&self, rel: &Path) -> Option<&W> {
        self.lookup(rel).and_then(|i| self.node(i).wd.as_ref())
    }

    /// Watches recorded, displaced ones included: each is a watch in the kernel.
    pub(super) fn len(&self) -> usize {
        self.watched + self.displaced.len()
    }

    /// Forgets `wd` (the kernel dropped it: IN_IGNORED). The path is released only if
    /// it still belongs to `wd`: a directory created again at the same path may already
    /// hold a newer watch.
    pub(super) fn remove_wd(&mut self, wd: &W) -> Option<PathBuf> {
        let Some(i) = self.find_wd(wd) else {
            return self.displaced.remove(wd);
        };
        let rel = self.path(i);
        self.take_wd(i);
        self.prune(i);
        Some(rel)
    }

    /// Moves `from` and every watched directory below it to `to` (a rename inside the
    /// tree: the watches follow the inodes, only our names for them change). Where a
    /// moved directory lands on a watched path, the watch there is displaced, as by
    /// [`WatchMap::insert`].
    pub(super) fn rename_subtree(&mut self, from: &Path, to: &Path) {
        let Some(src) = self.lookup(from) else {
            return;
        };
        let src = if src == ROOT {
            match self.detach_root() {
                Some(src) => src,
                None => return,
            }
        } else {
            let parent = self.node(src).parent;
            self.unlink(src);
            self.prune(parent);
            src
        };
        // Only now: `to` may lie below `from`, and its parents were then detached.
        let mut to_names: Vec<&[u8]> = names(to).collect();
        let Some(name) = to_names.pop() else {
            self.merge(src, ROOT);
            return;
        };
        let parent = self.ensure(to_names.into_iter());
        match self.child(parent, name) {
            Some(there) => self.merge(src, there),
            None => self.link(src, parent, name.into()),
        }
    }

    /// Forgets `top` and every watched directory below it, returning their descriptors
    /// so the caller can remove the watches (a directory moved out of the tree).
    pub(super) fn take_subtree(&mut self, top: &Path) -> Vec<W> {
        let mut taken = Vec::new();
        let Some(top) = self.lookup(top) else {
            return taken;
        };
        let mut stack = Vec::new();
        if top == ROOT {
            taken.extend(self.take_wd(ROOT));
            stack.extend(self.children(ROOT));
            self.node_mut(ROOT).first_child = NONE;
        } else {
            let parent = self.node(top).parent;
            self.unlink(top);
            self.prune(parent);
            stack.push(top);
        }
        while let Some(i) = stack.pop() {
            taken.extend(self.take_wd(i));
            stack.extend(self.children(i));
            self.forget_name(i);
            self.release(i);
        }
        taken
    }

    /// Forgets everything (the root is gone), returning the descriptors.
    pub(super) fn clear(&mut self) -> Vec<W> {
        let mut all: Vec<W> = self.nodes.iter_mut().filter_map(|n| n.wd.take()).collect();
        all.extend(self.displaced.drain().map(|(wd, _)| wd));
        self.nodes.truncate(1);
        self.node_mut(ROOT).first_child = NONE;
        self.free = NONE;
        self.by_wd.clear();
        self.by_name.clear();
        self.watched = 0;
        all
    }

    fn node(&self, i: u32) -> &Node<W> {
        &self.nodes[i as usize]
    }

    fn node_mut(&mut self, i: u32) -> &mut Node<W> {
        &mut self.nodes[i as usize]
    }

    fn find_wd(&self, wd: &W) -> Option<u32> {
        let hash = self.hasher.hash_one(wd);
        let nodes = &self.nodes;
        self.by_wd
            .find(hash, |&i| nodes[i as usize].wd.as_ref() == Some(wd))
            .copied()
    }

    fn child(&self, parent: u32, name: &[u8]) -> Option<u32> {
        let hash = name_hash(&self.hasher, parent, name);
        let nodes = &self.nodes;
        self.by_name
            .find(hash, |&i| {
                let n = &nodes[i as usize];
                n.parent == parent && *n.name == *name
            })
            .copied()
    }

    fn lookup(&self, rel: &Path) -> Option<u32> {
        names(rel).try_fold(ROOT, |at, name| self.child(at, name))
    }

    /// The node of a path, with placeholders for the directories missing on the way.
    fn ensure<'a>(&mut self, path: impl Iterator<Item = &'a [u8]>) -> u32 {
        let mut at = ROOT;
        for name in path {
            at = match self.child(at, name) {
                Some(next) => next,
                None => {
                    let i = self.alloc();
                    self.link(i, at, name.into());
                    i
                }
            };
        }
        at
    }

    fn path(&self, mut i: u32) -> PathBuf {
        let mut parts = Vec::new();
        while i != ROOT && i != NONE {
            let n = self.node(i);
            parts.push(&*n.name);
            i = n.parent;
        }
        let len = parts.iter().map(|p| p.len() + 1).sum();
        let mut path = PathBuf::with_capacity(len);
        for part in parts.iter().rev() {
            path.push(std::ffi::OsStr::from_bytes(part));
        }
        path
    }

    fn children(&self, parent: u32) -> Vec<u32> {
        let mut out = Vec::new();
        let mut c = self.node(parent).first_child;
        while c != NONE {
            out.push(c);
            c = self.node(c).next;
        }
        out
    }

    fn set_wd(&mut self, i: u32, wd: W) {
        let hash = self.hasher.hash_one(&wd);
        self.node_mut(i).wd = Some(wd);
        let (nodes, hasher) = (&self.nodes, &self.hasher);
        self.by_wd.insert_unique(hash, i, |&j| {
            nodes[j as usize]
                .wd
                .as_ref()
                .map_or(0, |wd| hasher.hash_one(wd))
        });
        self.watched += 1;
    }

    fn take_wd(&mut self, i: u32) -> Option<W> {
        let wd = self.node_mut(i).wd.take()?;
        let hash = self.hasher.hash_one(&wd);
        if let Ok(entry) = self.by_wd.find_entry(hash, |&j| j == i) {
            entry.remove();
        }
        self.watched -= 1;
        Some(wd)
    }

    /// A slot for a new node, reusing a freed one first.
    fn alloc(&mut self) -> u32 {
        if self.free != NONE {
            let i = self.free;
            self.free = self.node(i).next;
            *self.node_mut(i) = Node::new(Box::default());
            return i;
        }
        // As `Vec::push` on capacity overflow: 2^32 nodes would take some 200 GiB, so
        // memory runs out long before the indices do.
        let Some(i) = u32::try_from(self.nodes.len()).ok().filter(|&i| i != NONE) else {
            panic!("more than 2^32 directories in the watch map");
        };
        self.nodes.push(Node::new(Box::default()));
        i
    }

    /// Puts a freed node on the free list; its links and name must be gone already.
    fn release(&mut self, i: u32) {
        let free = self.free;
        *self.node_mut(i) = Node::new(Box::default());
        self.node_mut(i).next = free;
        self.free = i;
    }

    /// Makes `i` (detached) the child `name` of `parent`.
    fn link(&mut self, i: u32, parent: u32, name: Box<[u8]>) {
        let first = self.node(parent).first_child;
        let hash = name_hash(&self.hasher, parent, &name);
        let n = self.node_mut(i);
        n.parent = parent;
        n.prev = NONE;
        n.next = first;
        n.name = name;
        if first != NONE {
            self.node_mut(first).prev = i;
        }
        self.node_mut(parent).first_child = i;
        let (nodes, hasher) = (&self.nodes, &self.hasher);
        self.by_name.insert_unique(hash, i, |&j| {
            let n = &nodes[j as usize];
            name_hash(hasher, n.parent, &n.name)
        });
    }

    /// Detaches `i` from its parent (its subtree stays below it).
    fn unlink(&mut self, i: u32) {
        self.forget_name(i);
        let Node {
            parent, prev, next, ..
        } = *self.node(i);
        if prev != NONE {
            self.node_mut(prev).next = next;
        } else if parent != NONE {
            self.node_mut(parent).first_child = next;
        }
        if next != NONE {
            self.node_mut(next).prev = prev;
        }
        let n = self.node_mut(i);
        n.parent = NONE;
        n.prev = NONE;
        n.next = NONE;
    }

    /// Removes `i` from `by_name`, where it is while it has a parent.
    fn forget_name(&mut self, i: u32) {
        let n = self.node(i);
        if n.parent == NONE {
            return;
        }
        let hash = name_hash(&self.hasher, n.parent, &n.name);
        if let Ok(entry) = self.by_name.find_entry(hash, |&j| j == i) {
            entry.remove();
        }
    }

    /// Frees `i` and then its parents, as long as they are placeholders with nothing
    /// below them.
    fn prune(&mut self, mut i: u32) {
        while i != ROOT && i != NONE {
            let n = self.node(i);
            if n.wd.is_some() || n.first_child != NONE {
                return;
            }
            let parent = n.parent;
            self.unlink(i);
            self.release(i);
            i = parent;
        }
    }

    /// Moves the root's watch and children to a new detached node (renaming the
    /// root's whole tree); `None` if there is nothing to move.
    fn detach_root(&mut self) -> Option<u32> {
        let root = self.node(ROOT);
        if root.wd.is_none() && root.first_child == NONE {
            return None;
        }
        let top = self.alloc();
        if let Some(wd) = self.take_wd(ROOT) {
            self.set_wd(top, wd);
        }
        self.adopt_children(ROOT, top);
        Some(top)
    }

    /// Re-links every child of `from` below `to`, which has none.
    fn adopt_children(&mut self, from: u32, to: u32) {
        for c in self.children(from) {
            self.unlink(c);
            let name = std::mem::take(&mut self.node_mut(c).name);
            self.link(c, to, name);
        }
    }

    /// Lays the detached subtree `src` over the node `dst`: where both have a node for
    /// the same path, the moved watch wins and the other is displaced.
    fn merge(&mut self, src: u32, dst: u32) {
        let mut stack = vec![(src, dst)];
        while let Some((src, dst)) = stack.pop() {
            if let Some(wd) = self.take_wd(src) {
                if let Some(old) = self.take_wd(dst) {
                    self.displaced.insert(old, self.path(dst));
                }
                self.set_wd(dst, wd);
            }
            for c in self.children(src) {
                self.unlink(c);
                let name = std::mem::take(&mut self.node_mut(c).name);
                match self.child(dst, &name) {
                    Some(there) => stack.push((c, there)),
                    None => self.link(c, dst, name),
                }
            }
            self.release(src);
        }
    }
}

#[cfg(test)]
mod tests;
