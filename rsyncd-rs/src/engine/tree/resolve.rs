//! Resolving the symlinks of an operator path (the destination argument, `--backup-dir`,
//! `--partial-dir`) the way a chdir or stat through them would, without ever leaving the
//! root: stock rsyncd follows such paths through symlinks that stay inside the module
//! (its daemon exclude is name-based, not a symlink boundary), while names from the
//! file list never follow any.

use nix::errno::Errno;

use super::open::Located;
use super::{FileKind, Meta, RelPath, Tree, TreeError};

/// How many symlinks one resolution may follow (the kernel's limit).
const MAX_LINKS: usize = 40;

impl Tree {
    /// `p` with every symlink in it replaced by its target, as the kernel would resolve
    /// it, as long as every step stays beneath the root. A missing component ends the
    /// walk: the rest is appended unresolved (it may be created later). Errors: an
    /// absolute or climbing target (`Escape`), more than 40 links (`ELOOP`), or a
    /// failed `lstat`/`readlink`. With `insecure_links` a link that leaves the root is
    /// no error: `p` comes back as given, for the kernel to follow when it is opened.
    pub fn resolve(&self, p: &RelPath) -> Result<RelPath, TreeError> {
        match self.resolve_beneath(p) {
            Err(TreeError::Escape { .. }) if self.opts.insecure_links => Ok(p.clone()),
            other => other,
        }
    }

    /// What `p` leads to, a final symlink followed: `lstat` of [`Tree::resolve`]'s
    /// answer, so a target outside the root is an `Escape`. With `insecure_links` the
    /// kernel follows the links wherever they lead (a target outside the root is
    /// described without fake super's recorded attributes); `None` when nothing is
    /// there.
    pub fn stat_target(&self, p: &RelPath) -> Result<Option<Meta>, TreeError> {
        if !self.opts.insecure_links {
            return self.lstat(&self.resolve(p)?);
        }
        match self.lstat(p)? {
            Some(m) if m.kind == FileKind::Symlink => {}
            other => return Ok(other),
        }
        let Located::Entry { dir, name } = self.locate(p)? else {
            return self.lstat(p);
        };
        match nix::sys::stat::fstatat(&dir, name, nix::fcntl::AtFlags::empty()) {
            Ok(st) => Ok(Some(Meta::from_stat(&st))),
            Err(Errno::ENOENT | Errno::ENOTDIR) => Ok(None),
            Err(e) => Err(TreeError::errno("stat", p, e)),
        }
    }

    fn resolve_beneath(&self, p: &RelPath) -> Result<RelPath, TreeError> {
        let mut pending: Vec<Vec<u8>> = p.components().map(<[u8]>::to_vec).collect();
        pending.reverse();
        let mut done: Vec<Vec<u8>> = Vec::new();
        let mut links = 0;
        let mut missing = false;
        while let Some(part) = pending.pop() {
            if part == b".." {
                if done.pop().is_none() && !self.opts.whole_filesystem {
                    return Err(TreeError::Escape {
                        path: p.to_string(),
                    });
                }
                continue;
            }
            done.push(part);
            if missing {
                continue;
            }
            let here = join_all(&done)?;
            match self.lstat(&here)? {
                None => missing = true,
                Some(m) if m.kind == FileKind::Symlink => {
                    links += 1;
                    if links > MAX_LINKS {
                        return Err(TreeError::Io {
                            op: "resolve",
                            path: p.to_string(),
                            source: std::io::Error::from_raw_os_error(libc::ELOOP),
                        });
                    }
                    let target = self.read_link(&here)?;
                    done.pop();
                    if target.starts_with(b"/") {
                        if !self.opts.whole_filesystem {
                            return Err(TreeError::Escape {
                                path: p.to_string(),
                            });
                        }
                        done.clear();
                    }
                    for part in target.split(|&b| b == b'/').rev() {
                        if !part.is_empty() && part != b"." {
                            pending.push(part.to_vec());
                        }
                    }
                }
                Some(_) => {}
            }
        }
        join_all(&done)
    }
}

fn join_all(parts: &[Vec<u8>]) -> Result<RelPath, TreeError> {
    parts
        .iter()
        .try_fold(RelPath::root(), |p, part| p.join(part))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::super::TreeOptions;
    use super::*;

    #[test]
    fn follows_links_that_stay_beneath_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("public/secret")).unwrap();
        std::os::unix::fs::symlink("public/", root.join("blink")).unwrap();
        std::os::unix::fs::symlink("../public/secret", root.join("public/up")).unwrap();
        std::os::unix::fs::symlink("/etc", root.join("abs")).unwrap();
        std::os::unix::fs::symlink("../..", root.join("public/climb")).unwrap();
        std::os::unix::fs::symlink("loop", root.join("loop")).unwrap();
        let tree = Tree::open(root, TreeOptions::default()).unwrap();
        let r = |s: &str| tree.resolve(&RelPath::parse(s.as_bytes()).unwrap());
        assert_eq!(r("blink").unwrap().as_bytes(), b"public");
        assert_eq!(r("blink/secret/x").unwrap().as_bytes(), b"public/secret/x");
        assert_eq!(r("public/up").unwrap().as_bytes(), b"public/secret");
        assert_eq!(r("new/blink").unwrap().as_bytes(), b"new/blink");
        assert!(r("abs").unwrap_err().is_confinement());
        assert!(r("public/climb").unwrap_err().is_confinement());
        assert!(r("loop").is_err());
    }

    /// A tree at `/` (a local user's sender) follows absolute targets from the root and
    /// stops `..` there, as the kernel does; the same links are refused beneath any
    /// other root.
    #[test]
    fn the_whole_filesystem_follows_absolute_targets() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("a")).unwrap();
        std::fs::write(root.join("a/f"), b"x").unwrap();
        std::os::unix::fs::symlink(root.join("a/f"), root.join("abs")).unwrap();
        std::os::unix::fs::symlink("../../../../../../../../..", root.join("a/up")).unwrap();
        let whole = Tree::open(
            std::path::Path::new("/"),
            TreeOptions {
                whole_filesystem: true,
                ..TreeOptions::default()
            },
        )
        .unwrap();
        let inside = |name: &str| {
            let p = root.join(name);
            RelPath::parse(p.display().to_string().trim_start_matches('/').as_bytes()).unwrap()
        };
        let want = root.join("a/f").display().to_string();
        assert_eq!(
            whole.resolve(&inside("abs")).unwrap().as_bytes(),
            want.trim_start_matches('/').as_bytes()
        );
        assert!(whole.resolve(&inside("a/up")).unwrap().is_root());
        let confined = Tree::open(root, TreeOptions::default()).unwrap();
        assert!(
            confined
                .resolve(&RelPath::parse(b"abs").unwrap())
                .unwrap_err()
                .is_confinement()
        );
    }
}
