//! Shared fixtures for the tree tests: a scratch module root beside an "outside"
//! directory whose state must never change.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::{RelPath, Resolver, Tree, TreeOptions};

/// Both resolvers, so every behaviour is checked with openat2 and with the walk.
pub(super) const RESOLVERS: [Resolver; 2] = [Resolver::Auto, Resolver::Walk];

pub(super) fn rp(s: &str) -> RelPath {
    RelPath::parse(s.as_bytes()).unwrap()
}

/// A scratch directory holding `root/` (the module) and `outside/` (a sentinel tree
/// with a file `secret`, a file `f`, a directory `x` and a file `x/inner`).
pub(super) struct Scratch {
    _dir: tempfile::TempDir,
    pub(super) root: PathBuf,
    pub(super) outside: PathBuf,
}

impl Scratch {
    pub(super) fn new() -> Scratch {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        let outside = dir.path().join("outside");
        fs::create_dir(&root).unwrap();
        fs::create_dir(&outside).unwrap();
        fs::write(outside.join("secret"), b"top secret").unwrap();
        fs::write(outside.join("f"), b"outside f").unwrap();
        fs::create_dir(outside.join("x")).unwrap();
        fs::write(outside.join("x/inner"), b"inner").unwrap();
        Scratch {
            _dir: dir,
            root,
            outside,
        }
    }

    pub(super) fn tree(&self, opts: TreeOptions) -> Tree {
        Tree::open(&self.root, opts).unwrap()
    }

    pub(super) fn at(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }
}

/// Everything observable about a directory tree: kind, mode, owner, size, times,
/// content or link target, per path.
pub(super) type Snapshot = BTreeMap<PathBuf, (u32, u32, u32, u64, i64, i64, Vec<u8>)>;

pub(super) fn snapshot(top: &Path) -> Snapshot {
    let mut out = Snapshot::new();
    let mut todo = vec![top.to_path_buf()];
    while let Some(p) = todo.pop() {
        let md = fs::symlink_metadata(&p).unwrap();
        let body = if md.file_type().is_symlink() {
            fs::read_link(&p)
                .unwrap()
                .into_os_string()
                .into_encoded_bytes()
        } else if md.is_file() {
            fs::read(&p).unwrap()
        } else {
            Vec::new()
        };
        if md.is_dir() {
            for e in fs::read_dir(&p).unwrap() {
                todo.push(e.unwrap().path());
            }
        }
        let key = p.strip_prefix(top).unwrap().to_path_buf();
        out.insert(
            key,
            (
                md.mode(),
                md.uid(),
                md.gid(),
                md.size(),
                md.mtime(),
                md.mtime_nsec(),
                body,
            ),
        );
    }
    out
}
