//! Unit tests of the watch map, and a proptest that runs it beside the two maps of whole
//! paths it replaced (kept here as the model): random operations must leave both
//! saying the same.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use proptest::prelude::*;

use super::*;

/// The map as it was, two maps of whole paths: the behaviour to keep.
#[derive(Debug, Default)]
struct Model {
    by_wd: HashMap<u32, PathBuf>,
    by_path: BTreeMap<PathBuf, u32>,
}

impl Model {
    fn insert(&mut self, wd: u32, rel: PathBuf) {
        if let Some(old) = self.by_wd.insert(wd, rel.clone()) {
            if old != rel && self.by_path.get(&old) == Some(&wd) {
                self.by_path.remove(&old);
            }
        }
        self.by_path.insert(rel, wd);
    }

    fn remove_wd(&mut self, wd: u32) -> Option<PathBuf> {
        let rel = self.by_wd.remove(&wd)?;
        if self.by_path.get(&rel) == Some(&wd) {
            self.by_path.remove(&rel);
        }
        Some(rel)
    }

    fn rename_subtree(&mut self, from: &Path, to: &Path) {
        for (old, wd) in self.take_range(from) {
            let new = match old.strip_prefix(from) {
                Ok(rest) if rest.as_os_str().is_empty() => to.to_path_buf(),
                Ok(rest) => to.join(rest),
                Err(_) => continue,
            };
            self.insert(wd, new);
        }
    }

    fn take_subtree(&mut self, top: &Path) -> Vec<u32> {
        let taken = self.take_range(top);
        taken
            .into_iter()
            .map(|(_, wd)| {
                self.by_wd.remove(&wd);
                wd
            })
            .collect()
    }

    fn clear(&mut self) -> Vec<u32> {
        self.by_path.clear();
        self.by_wd.drain().map(|(wd, _)| wd).collect()
    }

    fn take_range(&mut self, top: &Path) -> Vec<(PathBuf, u32)> {
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

impl<W: Eq + Hash> WatchMap<W> {
    /// The structure is sound: links agree, both tables hold exactly the nodes
    /// they should, no placeholder is left without children, no slot is lost.
    fn check(&self) {
        let mut live = 0;
        let mut stack = vec![ROOT];
        while let Some(i) = stack.pop() {
            live += 1;
            let n = self.node(i);
            if i != ROOT {
                assert!(n.wd.is_some() || n.first_child != NONE, "bare placeholder");
                assert_eq!(self.child(n.parent, &n.name), Some(i));
            }
            if let Some(wd) = &n.wd {
                assert_eq!(self.find_wd(wd), Some(i));
            }
            let mut prev = NONE;
            for c in self.children(i) {
                assert_eq!(self.node(c).parent, i);
                assert_eq!(self.node(c).prev, prev);
                prev = c;
                stack.push(c);
            }
        }
        let mut free = 0;
        let mut f = self.free;
        while f != NONE {
            free += 1;
            f = self.node(f).next;
        }
        assert_eq!(live + free, self.nodes.len(), "slots lost");
        assert_eq!(self.by_name.len(), live - 1);
        assert_eq!(self.by_wd.len(), self.watched);
    }
}

fn p(s: &str) -> PathBuf {
    PathBuf::from(s)
}

fn sorted(mut v: Vec<u32>) -> Vec<u32> {
    v.sort_unstable();
    v
}

#[test]
fn paths_are_built_from_the_names() {
    let mut m = WatchMap::default();
    m.insert(1, Path::new(""));
    m.insert(2, Path::new("a"));
    m.insert(3, Path::new("a/b"));
    m.insert(4, Path::new("a/b/c"));
    assert_eq!(m.path_of(&1), Some(p("")));
    assert_eq!(m.path_of(&4), Some(p("a/b/c")));
    assert_eq!(m.wd_of(Path::new("a/b")), Some(&3));
    assert_eq!(m.wd_of(Path::new("a/x")), None);
    assert_eq!(m.len(), 4);
    m.check();
}

#[test]
fn a_rename_moves_the_subtree_and_nothing_else() {
    let mut m = WatchMap::default();
    for (wd, rel) in [(1, ""), (2, "a"), (3, "a/b"), (4, "a/b/c"), (5, "a0")] {
        m.insert(wd, Path::new(rel));
    }
    m.rename_subtree(Path::new("a"), Path::new("a0/z"));
    assert_eq!(m.path_of(&2), Some(p("a0/z")));
    assert_eq!(m.path_of(&4), Some(p("a0/z/b/c")));
    assert_eq!(m.path_of(&5), Some(p("a0")));
    assert_eq!(m.wd_of(Path::new("a")), None);
    m.check();
}

#[test]
fn a_subtree_watched_before_its_parent_gets_placeholders_that_go_with_it() {
    let mut m = WatchMap::default();
    m.insert(7, Path::new("x/y/z"));
    assert_eq!(m.wd_of(Path::new("x/y")), None);
    assert_eq!(m.len(), 1);
    m.insert(8, Path::new("x"));
    assert_eq!(m.path_of(&7), Some(p("x/y/z")));
    assert_eq!(sorted(m.take_subtree(Path::new("x/y"))), vec![7]);
    assert_eq!(m.nodes.len() - 1, 3, "x, y, z: no more");
    m.check();
    assert_eq!(m.remove_wd(&8), Some(p("x")));
    m.check();
    // Everything is free again but the root.
    m.insert(9, Path::new("q"));
    assert_eq!(m.nodes.len(), 4, "a freed slot is reused");
}

#[test]
fn a_path_taken_by_a_new_watch_stays_the_old_ones_until_it_goes() {
    let mut m = WatchMap::default();
    m.insert(1, Path::new("d"));
    // Deleted and made again before the old watch's IN_IGNORED was read.
    m.insert(2, Path::new("d"));
    assert_eq!(m.wd_of(Path::new("d")), Some(&2));
    assert_eq!(m.path_of(&1), Some(p("d")));
    assert_eq!(m.len(), 2);
    assert_eq!(m.remove_wd(&1), Some(p("d")));
    assert_eq!(m.wd_of(Path::new("d")), Some(&2), "the new watch keeps it");
    m.check();
}

#[test]
fn churn_does_not_grow_the_map() {
    let mut m = WatchMap::default();
    m.insert(0, Path::new(""));
    let mut wd = 1;
    for round in 0..50 {
        for i in 0..100 {
            m.insert(wd, &Path::new("top").join(format!("r{round}/d{i}")));
            wd += 1;
        }
        m.take_subtree(Path::new("top"));
    }
    // The root, `top`, a round's directory and its 100.
    assert!(m.nodes.len() <= 103, "{} slots", m.nodes.len());
    m.check();
}

#[derive(Debug, Clone)]
enum Op {
    Insert(u32, PathBuf),
    RemoveWd(u32),
    Rename(PathBuf, PathBuf),
    Take(PathBuf),
    Clear,
}

/// Paths from a small alphabet, so that operations meet each other's paths.
fn rel() -> impl Strategy<Value = PathBuf> {
    proptest::collection::vec(prop_oneof![Just("a"), Just("b"), Just("c")], 0..4)
        .prop_map(|names| names.iter().collect())
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..12u32, rel()).prop_map(|(wd, r)| Op::Insert(wd, r)),
        2 => (0..12u32).prop_map(Op::RemoveWd),
        3 => (rel(), rel()).prop_map(|(f, t)| Op::Rename(f, t)),
        1 => rel().prop_map(Op::Take),
        1 => Just(Op::Clear),
    ]
}

fn all_rels() -> Vec<PathBuf> {
    let mut out = vec![PathBuf::new()];
    let mut level = vec![PathBuf::new()];
    for _ in 0..3 {
        level = level
            .iter()
            .flat_map(|p| ["a", "b", "c"].map(|n| p.join(n)))
            .collect();
        out.extend(level.iter().cloned());
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]
    #[test]
    fn agrees_with_the_two_map_model(ops in proptest::collection::vec(op(), 0..40)) {
        let mut map = WatchMap::default();
        let mut model = Model::default();
        let rels = all_rels();
        for op in ops {
            match op {
                Op::Insert(wd, r) => {
                    map.insert(wd, &r);
                    model.insert(wd, r);
                }
                Op::RemoveWd(wd) => {
                    prop_assert_eq!(map.remove_wd(&wd), model.remove_wd(wd));
                }
                Op::Rename(from, to) => {
                    map.rename_subtree(&from, &to);
                    model.rename_subtree(&from, &to);
                }
                Op::Take(top) => {
                    prop_assert_eq!(
                        sorted(map.take_subtree(&top)),
                        sorted(model.take_subtree(&top))
                    );
                }
                Op::Clear => {
                    prop_assert_eq!(sorted(map.clear()), sorted(model.clear()));
                }
            }
            map.check();
            prop_assert_eq!(map.len(), model.by_wd.len());
            for wd in 0..12 {
                prop_assert_eq!(map.path_of(&wd), model.by_wd.get(&wd).cloned());
            }
            for r in &rels {
                prop_assert_eq!(map.wd_of(r), model.by_path.get(r));
            }
        }
    }
}
