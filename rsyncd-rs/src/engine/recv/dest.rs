//! Where received files go: the destination argument resolved inside the module, created
//! when the transfer needs a directory (upstream: main.c get_local_name()).

use super::{Policy, RecvError, Said};
use crate::engine::exit::ExitCode;
use crate::engine::flist::FileList;
use crate::engine::tree::{FileKind, RelPath, Tree};
use crate::protocol::options::Options;

/// The destination of a receiving session.
#[derive(Debug, Clone)]
pub struct Destination {
    /// The directory entries are placed in (relative to the module root).
    pub root: RelPath,
    /// A single file transferred under another name: its name inside `root`.
    pub solo: Option<Vec<u8>>,
    /// The root was created by this session (the `.` entry then counts as new).
    pub created: bool,
}

impl Destination {
    /// The path of a file-list entry at the destination.
    pub fn path_of(&self, name: &[u8]) -> Result<RelPath, crate::engine::tree::TreeError> {
        if let Some(solo) = &self.solo {
            return self.root.join(solo);
        }
        if name == b"." {
            return Ok(self.root.clone());
        }
        let mut p = self.root.clone();
        for part in name.split(|&b| b == b'/') {
            p = p.join(part)?;
        }
        Ok(p)
    }

    /// Resolves the destination argument as upstream's get_local_name() does: an existing
    /// directory is used as is; a transfer of several entries (or an argument ending in
    /// `/`) creates the directory; a single non-directory goes to the named path.
    pub fn prepare(
        tree: &Tree,
        arg: Option<&[u8]>,
        first: &FileList,
        opts: &Options,
        policy: &Policy,
        say: &dyn Fn(Said, &str),
    ) -> Result<Destination, RecvError> {
        let raw = arg.unwrap_or(b"");
        let trailing_slash = raw.ends_with(b"/");
        let path = sanitize(raw);
        let shown = match (
            path.is_root(),
            policy.show_absolute_args && raw.starts_with(b"/"),
        ) {
            (true, false) => ".".to_string(),
            (_, true) => format!("/{}", String::from_utf8_lossy(path.as_bytes())),
            (false, false) => String::from_utf8_lossy(path.as_bytes()).into_owned(),
        };
        let meta = tree.lstat(&path).map_err(|e| {
            RecvError::fatal(
                format!("ERROR: cannot stat destination {shown}: {e}"),
                ExitCode::FILESELECT,
            )
        })?;
        let total = first.active.iter().filter(|a| **a).count();
        if let Some(m) = meta {
            if m.kind == FileKind::Dir {
                return Ok(Destination {
                    root: path,
                    solo: None,
                    created: false,
                });
            }
            if total > 1 {
                return Err(RecvError::fatal(
                    "ERROR: destination must be a directory when copying more than 1 file",
                    ExitCode::FILESELECT,
                ));
            }
            if first.entries.first().is_some_and(|e| e.is_dir()) {
                return Err(RecvError::fatal(
                    "ERROR: cannot overwrite non-directory with a directory",
                    ExitCode::FILESELECT,
                ));
            }
        }
        if total > 1 || trailing_slash || path.is_root() {
            if meta.is_some() {
                return Err(RecvError::fatal(
                    "ERROR: destination path is not a directory",
                    ExitCode::SYNTAX,
                ));
            }
            if opts.mkpath {
                make_parents(tree, &path).map_err(|e| {
                    RecvError::fatal(format!("mkdir {shown} failed: {e}"), ExitCode::FILEIO)
                })?;
            }
            tree.mkdir(&path, 0o777).map_err(|e| {
                RecvError::fatal(format!("mkdir \"{shown}\" failed: {e}"), ExitCode::FILEIO)
            })?;
            if opts.verbose > 0
                || opts.itemize_changes > 0
                || opts
                    .stdout_format
                    .as_deref()
                    .is_some_and(|f| f.contains("%i"))
            {
                say(Said::Both, &format!("created directory {shown}"));
            }
            return Ok(Destination {
                root: path,
                solo: None,
                created: true,
            });
        }
        // A single file under the given name, in its parent directory.
        let parent = path.parent().unwrap_or_else(RelPath::root);
        if opts.mkpath {
            make_parents(tree, &path).map_err(|e| {
                RecvError::fatal(format!("mkdir {shown} failed: {e}"), ExitCode::FILEIO)
            })?;
        }
        Ok(Destination {
            root: parent,
            solo: Some(path.file_name().to_vec()),
            created: false,
        })
    }
}

/// `--mkpath`: creates the missing parents of `path`.
fn make_parents(tree: &Tree, path: &RelPath) -> Result<(), crate::engine::tree::TreeError> {
    let mut cur = RelPath::root();
    let parts: Vec<Vec<u8>> = path.components().map(<[u8]>::to_vec).collect();
    for part in parts.iter().take(parts.len().saturating_sub(1)) {
        cur = cur.join(part)?;
        if tree.lstat(&cur)?.is_none() {
            tree.mkdir(&cur, 0o777)?;
        }
    }
    Ok(())
}

/// Makes a client path safe inside the module: leading `/` and `..` that would climb out
/// are dropped, `.` and empty components removed (upstream: util1.c, sanitize_path() with
/// depth 0, as a daemon applies it to every path argument).
pub fn sanitize(raw: &[u8]) -> RelPath {
    let mut parts: Vec<&[u8]> = Vec::new();
    for part in raw.split(|&b| b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    if parts.is_empty() {
        return RelPath::root();
    }
    RelPath::parse(&parts.join(&b'/')).unwrap_or_else(|_| RelPath::root())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitizing() {
        assert!(sanitize(b"").is_root());
        assert!(sanitize(b"/").is_root());
        assert!(sanitize(b"../../").is_root());
        assert_eq!(sanitize(b"/a/../../b/./c/").as_bytes(), b"b/c");
        assert_eq!(sanitize(b"x/y").as_bytes(), b"x/y");
    }
}
