//! The directory a hostile-server case pulls into: the destination, with a sibling
//! directory and a file beside it for a lie to aim at, and a snapshot of everything but
//! the destination to show that nothing outside it changed.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// A temporary directory holding the destination, a sibling directory with a file and a
/// file beside them: what a hostile name or symlink would reach.
pub struct Sandbox {
    tmp: tempfile::TempDir,
}

impl Sandbox {
    pub fn new() -> Sandbox {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir(tmp.path().join("dest")).unwrap();
        std::fs::create_dir(tmp.path().join("sibling")).unwrap();
        std::fs::write(tmp.path().join("sibling/keep.txt"), "keep\n").unwrap();
        std::fs::write(tmp.path().join("beside.txt"), "beside\n").unwrap();
        Sandbox { tmp }
    }

    pub fn root(&self) -> &Path {
        self.tmp.path()
    }

    pub fn dest(&self) -> PathBuf {
        self.root().join("dest")
    }

    /// Everything in the temporary directory but the destination: each path with its
    /// type, mode, modification time and content or target. The root itself is in it, so
    /// that even a file created there and removed again shows.
    pub fn outside(&self) -> Vec<String> {
        let mut out = Vec::new();
        walk(self.root(), self.root(), &self.dest(), &mut out);
        out.sort();
        out
    }
}

fn walk(root: &Path, p: &Path, skip: &Path, out: &mut Vec<String>) {
    // The destination's own times and mode are the transfer root's to set.
    if p == skip {
        return;
    }
    let m = std::fs::symlink_metadata(p).unwrap();
    let what = if m.file_type().is_symlink() {
        format!("-> {}", std::fs::read_link(p).unwrap().display())
    } else if m.is_file() {
        format!(
            "file {:?}",
            String::from_utf8_lossy(&std::fs::read(p).unwrap())
        )
    } else if m.is_dir() {
        "dir".to_string()
    } else {
        "other".to_string()
    };
    let rel = p.strip_prefix(root).unwrap().display().to_string();
    out.push(format!(
        "/{rel} {:o} {}.{} {what}",
        m.mode(),
        m.mtime(),
        m.mtime_nsec()
    ));
    if m.is_dir() {
        for e in std::fs::read_dir(p).unwrap() {
            walk(root, &e.unwrap().path(), skip, out);
        }
    }
}
