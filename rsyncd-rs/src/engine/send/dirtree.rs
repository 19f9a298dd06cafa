//! The directory tree of incremental recursion: every directory of the lists sent, in
//! the order both sides number them, linked as parent, first child and next sibling, and
//! which one's sub-list goes next. Upstream: flist.c, add_dirs_to_tree(), the
//! FLAG_DUPLICATE marking of flist_sort_and_clean() and the walk of
//! send_extra_file_list().

use super::list::Item;

/// A directory of the tree (upstream's dir_flist entry with its DIR_* links). Links are
/// node numbers (`u32::MAX`: none), so that a huge tree's nodes stay small.
#[derive(Debug, Clone)]
struct DirNode {
    /// The directory's entry while something may still need it: until its sub-list is
    /// sent (a duplicate) or finished by the receiver (the first of a group). A tree of
    /// 200,000 directories would otherwise hold 200,000 entries for the whole session.
    item: Option<Box<Item>>,
    parent: u32,
    first_child: u32,
    next_sibling: u32,
    /// The same name as the directory before it in its list. The receiver's
    /// clean_flist() clears such an entry and refuses a sub-list for it, so its contents
    /// go in the sub-list of the first one (upstream's FLAG_DUPLICATE).
    duplicate: bool,
}

const NONE: u32 = u32::MAX;

fn link(at: Option<usize>) -> u32 {
    at.and_then(|a| u32::try_from(a).ok()).unwrap_or(NONE)
}

fn unlink(l: u32) -> Option<usize> {
    (l != NONE).then_some(l as usize)
}

#[derive(Debug, Default)]
pub(super) struct DirTree {
    nodes: Vec<DirNode>,
    /// The directory whose sub-list is due next.
    next: Option<usize>,
}

impl DirTree {
    /// How many directories are numbered.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Directory `d`'s entry, unless it was released.
    pub fn item(&self, d: usize) -> Option<&Item> {
        self.nodes.get(d).and_then(|n| n.item.as_deref())
    }

    /// Forgets directory `d`'s entry: nothing will ask for it again (its sub-list was
    /// sent and, for the first of a group, finished). Its place in the tree stays.
    pub fn release(&mut self, d: usize) {
        if let Some(n) = self.nodes.get_mut(d) {
            n.item = None;
        }
    }

    /// Whether a sub-list is still due.
    pub fn has_next(&self) -> bool {
        self.next.is_some()
    }

    /// Appends the directories of a sorted list (the contents of `parent`, or the first
    /// list) and links them as siblings. A directory named as the one before it is a
    /// duplicate: the receiver keeps the first of them.
    /// Upstream: flist.c, add_dirs_to_tree() after flist_sort_and_clean().
    pub fn add(&mut self, sorted: &[Item], parent: Option<usize>) {
        let mut prev: Option<(usize, &[u8])> = None;
        for it in sorted.iter().filter(|i| i.e.is_dir()) {
            let at = self.nodes.len();
            // Sorted, equal names are neighbours; from protocol 30 (the only one with
            // incremental lists) a directory never equals a non-directory.
            let duplicate = prev.is_some_and(|(_, name)| name == it.e.name.as_slice());
            self.nodes.push(DirNode {
                item: Some(Box::new(it.clone())),
                parent: link(parent),
                first_child: NONE,
                next_sibling: NONE,
                duplicate,
            });
            if it.e.name == b"." {
                continue;
            }
            match (prev, parent) {
                (Some((p, _)), _) => self.nodes[p].next_sibling = link(Some(at)),
                (None, Some(par)) => self.nodes[par].first_child = link(Some(at)),
                (None, None) => self.next = Some(at),
            }
            prev = Some((at, &it.e.name));
        }
    }

    /// The directories whose contents make the next sub-list: the due one and the
    /// duplicates that follow it. The sub-list is announced with the first one's number.
    /// Upstream: flist.c, send_extra_file_list() (its loop over FLAG_DUPLICATE dirs).
    pub fn next_group(&self) -> Option<Vec<usize>> {
        let first = self.next?;
        let mut group = vec![first];
        let mut at = first;
        while let Some(s) = unlink(self.nodes[at].next_sibling)
            && self.nodes[s].duplicate
        {
            group.push(s);
            at = s;
        }
        Some(group)
    }

    /// The sub-list of a group is sent; `last` is the group's last directory, which the
    /// sub-list's directories were added under. The next one due is depth first: its
    /// first child, else the next sibling of it or of its nearest ancestor that has one.
    pub fn sent(&mut self, last: usize) {
        self.next = match self.nodes.get(last).and_then(|n| unlink(n.first_child)) {
            Some(c) => Some(c),
            None => {
                let mut at = last;
                loop {
                    let Some(n) = self.nodes.get(at) else {
                        break None;
                    };
                    if let Some(s) = unlink(n.next_sibling) {
                        break Some(s);
                    }
                    match unlink(n.parent) {
                        Some(p) => at = p,
                        None => break None,
                    }
                }
            }
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::flist::FileEntry;

    fn dir(name: &str, root: u32) -> Item {
        Item {
            e: FileEntry {
                name: name.as_bytes().to_vec(),
                mode: 0o040_755,
                ..FileEntry::default()
            },
            root,
            content_dir: true,
        }
    }

    fn file(name: &str) -> Item {
        Item {
            e: FileEntry {
                name: name.as_bytes().to_vec(),
                mode: 0o100_644,
                ..FileEntry::default()
            },
            root: 0,
            content_dir: false,
        }
    }

    fn names(t: &DirTree, group: &[usize]) -> Vec<String> {
        group
            .iter()
            .map(|&d| String::from_utf8_lossy(&t.item(d).unwrap().e.name).into_owned())
            .collect()
    }

    /// `-R ./ a`: the first list holds `.`, `a` (read from `.`), `a` (the argument) and
    /// `x`. The receiver clears the second `a` (directory 2): one sub-list, numbered 1,
    /// holds both `a`s, and none is announced for 2.
    #[test]
    fn a_duplicate_directory_goes_in_the_first_ones_sub_list() {
        let mut t = DirTree::default();
        t.add(&[dir(".", 0), dir("a", 0), dir("a", 0), dir("x", 0)], None);
        assert_eq!(t.len(), 4);
        let g = t.next_group().unwrap();
        assert_eq!(g, vec![1, 2]);
        t.add(&[file("a/f")], Some(2));
        t.sent(2);
        assert_eq!(t.next_group().unwrap(), vec![3]);
        t.sent(3);
        assert!(!t.has_next());
    }

    /// A group's sub-directories hang under its last directory, and the walk goes into
    /// them before the group's next sibling, as upstream's does.
    #[test]
    fn a_groups_children_come_before_its_next_sibling() {
        let mut t = DirTree::default();
        t.add(&[dir("a", 0), dir("a", 1), dir("a", 1), dir("b", 0)], None);
        let g = t.next_group().unwrap();
        assert_eq!(names(&t, &g), ["a", "a", "a"]);
        assert_eq!(g, vec![0, 1, 2]);
        t.add(&[dir("a/c", 0), file("a/f"), dir("a/c", 1)], Some(2));
        t.sent(2);
        // a/c twice (from two roots): one group, numbered 4 (the first a/c).
        let g = t.next_group().unwrap();
        assert_eq!(g, vec![4, 5]);
        t.sent(5);
        assert_eq!(t.next_group().unwrap(), vec![3]);
        t.sent(3);
        assert!(!t.has_next());
    }

    /// A released directory keeps its place: the walk goes on through it.
    #[test]
    fn released_directories_keep_the_walk() {
        let mut t = DirTree::default();
        t.add(&[dir("a", 0), dir("b", 0)], None);
        assert_eq!(t.next_group().unwrap(), vec![0]);
        t.add(&[dir("a/c", 0)], Some(0));
        t.sent(0);
        t.release(0);
        assert!(t.item(0).is_none());
        assert_eq!(names(&t, &t.next_group().unwrap()), ["a/c"]);
        t.sent(2);
        t.release(2);
        assert_eq!(names(&t, &t.next_group().unwrap()), ["b"]);
        t.sent(1);
        assert!(!t.has_next());
    }

    /// Distinct names are never grouped, and `.` is numbered but never due.
    #[test]
    fn distinct_directories_each_get_a_sub_list() {
        let mut t = DirTree::default();
        t.add(&[dir(".", 0), dir(".", 0), dir("a", 0), dir("b", 0)], None);
        assert_eq!(t.next_group().unwrap(), vec![2]);
        t.sent(2);
        assert_eq!(t.next_group().unwrap(), vec![3]);
        t.sent(3);
        assert!(!t.has_next());
    }
}
