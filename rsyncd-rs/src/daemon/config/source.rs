//! Where `&include` and `&merge` read from: the [`IncludeSource`] trait, and an
//! in-memory source for tests and for callers that hold config text already.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};

/// What a path names, as far as `&include`/`&merge` care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IncludeKind {
    /// A regular file: read as a config file.
    File,
    /// A directory: its `*.conf` (`&include`) or `*.inc` (`&merge`) entries are read.
    Directory,
    /// Anything else (device, socket, ...): refused, as upstream refuses it.
    Other,
}

/// Access to the files and directories that `&include`/`&merge` name.
///
/// Paths are passed exactly as written in the directive (a relative path is relative
/// to the daemon's working directory, as upstream's `stat()` sees it), or joined with
/// an entry name for the files of a directory.
pub trait IncludeSource {
    /// What `path` is, following symlinks the source trusts.
    /// Upstream: params.c, include_config(), the `do_stat()` call.
    fn kind(&self, path: &Path) -> io::Result<IncludeKind>;

    /// The bytes of the file at `path`.
    fn read_file(&self, path: &Path) -> io::Result<Vec<u8>>;

    /// The names of the entries of the directory at `path`, in any order. `.` and
    /// `..` may be included or not.
    fn list_dir(&self, path: &Path) -> io::Result<Vec<OsString>>;
}

/// An [`IncludeSource`] held in memory: files added by path; a directory exists when
/// a file lies in it or it was added with [`MemoryIncludes::add_dir`].
#[derive(Debug, Clone, Default)]
pub struct MemoryIncludes {
    files: BTreeMap<PathBuf, Vec<u8>>,
    dirs: BTreeSet<PathBuf>,
}

impl MemoryIncludes {
    /// An empty source: every include fails with "not found".
    pub fn new() -> Self {
        MemoryIncludes::default()
    }

    /// Adds (or replaces) a file, and the directories above it.
    pub fn add_file(&mut self, path: impl Into<PathBuf>, contents: impl Into<Vec<u8>>) {
        let path = path.into();
        if let Some(parent) = path.parent() {
            self.add_dir(parent);
        }
        self.files.insert(path, contents.into());
    }

    /// Adds a directory, and the directories above it.
    pub fn add_dir(&mut self, path: impl Into<PathBuf>) {
        let path = path.into();
        for dir in path.ancestors() {
            if !dir.as_os_str().is_empty() {
                self.dirs.insert(dir.to_path_buf());
            }
        }
    }

    /// A builder-style [`MemoryIncludes::add_file`].
    pub fn with_file(mut self, path: impl Into<PathBuf>, contents: impl Into<Vec<u8>>) -> Self {
        self.add_file(path, contents);
        self
    }
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{}: no such file or directory", path.display()),
    )
}

impl IncludeSource for MemoryIncludes {
    fn kind(&self, path: &Path) -> io::Result<IncludeKind> {
        if self.files.contains_key(path) {
            Ok(IncludeKind::File)
        } else if self.dirs.contains(path) {
            Ok(IncludeKind::Directory)
        } else {
            Err(not_found(path))
        }
    }

    fn read_file(&self, path: &Path) -> io::Result<Vec<u8>> {
        match self.files.get(path) {
            Some(bytes) => Ok(bytes.clone()),
            None if self.dirs.contains(path) => Err(io::Error::new(
                io::ErrorKind::IsADirectory,
                format!("{}: is a directory", path.display()),
            )),
            None => Err(not_found(path)),
        }
    }

    fn list_dir(&self, path: &Path) -> io::Result<Vec<OsString>> {
        if !self.dirs.contains(path) {
            return Err(not_found(path));
        }
        let children = self.files.keys().chain(self.dirs.iter());
        Ok(children
            .filter(|p| p.parent() == Some(path))
            .filter_map(|p| p.file_name().map(|n| n.to_os_string()))
            .collect())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests may panic.
mod tests {
    use super::*;

    #[test]
    fn memory_source_has_files_and_directories() {
        let mut src = MemoryIncludes::new().with_file("/etc/rsyncd.d/a.conf", "x = 1");
        src.add_dir("/etc/empty.d");
        src.add_dir("/etc/rsyncd.d/sub.conf");
        let d = Path::new("/etc/rsyncd.d");
        assert_eq!(src.kind(d).ok(), Some(IncludeKind::Directory));
        assert_eq!(src.kind(&d.join("a.conf")).ok(), Some(IncludeKind::File));
        assert!(src.kind(Path::new("/nope")).is_err());
        let mut names = src.list_dir(d).unwrap();
        names.sort();
        assert_eq!(names, ["a.conf", "sub.conf"]);
        assert_eq!(
            src.list_dir(Path::new("/etc/empty.d")).ok(),
            Some(Vec::new())
        );
        assert!(src.read_file(&d.join("sub.conf")).is_err());
        assert_eq!(
            src.read_file(&d.join("a.conf")).ok(),
            Some(b"x = 1".to_vec())
        );
    }
}
