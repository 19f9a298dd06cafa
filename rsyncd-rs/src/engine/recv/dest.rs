//! Where received files go: the destination argument resolved inside the module, created
//! when the transfer needs a directory (upstream: main.c get_local_name()).

use super::{Policy, RecvError, Said};
use crate::engine::exit::{ExitCode, syserr};
use crate::engine::flist::FileList;
use crate::engine::tree::{FileKind, RelPath, Tree};
use crate::protocol::options::{Info, Options};

/// The destination of a receiving session.
#[derive(Debug, Clone)]
pub struct Destination {
    /// The directory entries are placed in (relative to the module root), with symlinks
    /// in the destination argument resolved (they are followed while they stay in the
    /// module, as a chdir through them would).
    pub root: RelPath,
    /// The same as the client named it: what the daemon's rules and `%f` see (upstream's
    /// exclude is name-based, so a symlinked alias is judged by its own name).
    pub logical: RelPath,
    /// A single file transferred under another name: its name inside `root`.
    pub solo: Option<Vec<u8>>,
    /// The root was created by this session (the `.` entry then counts as new).
    pub created: bool,
    /// A dry run would have created the root (or a --mkpath parent): nothing below it
    /// exists, so nothing is looked at or deleted (upstream: `dry_run > 1`).
    pub dry_missing: bool,
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

    /// A module path relative to the destination directory (`None` when outside it).
    pub fn relative<'a>(&self, p: &'a RelPath) -> Option<&'a [u8]> {
        if self.root.is_root() {
            return Some(p.as_bytes());
        }
        p.as_bytes()
            .strip_prefix(self.root.as_bytes())?
            .strip_prefix(b"/")
    }

    /// Resolves the destination argument as upstream's get_local_name() does: an existing
    /// directory is used as is; a transfer of several entries (or an argument ending in
    /// `/`) creates the directory; a single non-directory goes to the named path.
    /// `refused` is the daemon's exclusion test (a destination it excludes is refused).
    pub fn prepare(
        tree: &Tree,
        arg: Option<&[u8]>,
        first: &FileList,
        opts: &Options,
        policy: &Policy,
        refused: &dyn Fn(&[u8], bool) -> bool,
        say: &dyn Fn(Said, &str),
    ) -> Result<Destination, RecvError> {
        const WHO: &str = "Receiver";
        // A listing touches nothing: the transfer stays at the module root.
        if opts.list_only {
            return Ok(Destination {
                root: RelPath::root(),
                logical: RelPath::root(),
                solo: None,
                created: false,
                dry_missing: false,
            });
        }
        let fail = |msg: String, code: ExitCode, line: u32| {
            RecvError::fatal(msg, code).at("main.c", line, WHO)
        };
        let raw = arg.unwrap_or(b"");
        let trailing_slash = raw.ends_with(b"/");
        let logical = sanitize(raw);
        let shown = match policy.dest_shown.clone() {
            Some(given) => given,
            None => derived_name(&logical, policy.show_absolute_args && raw.starts_with(b"/")),
        };
        let quoted = policy.full_fname(&shown);
        if !logical.is_root()
            && (refused(logical.as_bytes(), false) || refused(logical.as_bytes(), true))
        {
            return Err(fail(
                format!(
                    "ERROR: daemon has excluded destination \"{}\"",
                    show_arg(raw)
                ),
                ExitCode::FILESELECT,
                735,
            ));
        }
        let stat = |p: &RelPath, line: u32| {
            tree.lstat(p).map_err(|e| {
                fail(
                    syserr(
                        WHO,
                        &format!("ERROR: cannot stat destination {quoted}"),
                        e.raw_os_error(),
                        &e,
                    ),
                    ExitCode::FILESELECT,
                    line,
                )
            })
        };
        let path = tree.resolve(&logical).unwrap_or_else(|_| logical.clone());
        let total = first.active.iter().filter(|a| **a).count();
        let mut meta = stat(&path, 789)?;
        if tree.options().insecure_links && meta.is_some_and(|m| m.kind == FileKind::Symlink) {
            // The module's `insecure links`: a link leaving the module was kept
            // unresolved; the destination is what it leads to.
            meta = tree.stat_target(&path).ok().flatten().or(meta);
        }
        let mkdir_failed = |e: crate::engine::tree::TreeError| {
            fail(
                syserr(WHO, &format!("mkdir {quoted} failed"), e.raw_os_error(), &e),
                ExitCode::FILEIO,
                808,
            )
        };
        if opts.mkpath
            && meta.is_none()
            && (path.parent().is_some_and(|p| !p.is_root()) || total > 1)
        {
            let whole = total > 1 && !trailing_slash;
            let made = make_parents(tree, &path, whole).map_err(mkdir_failed)?;
            if made > 0 && (opts.info.at_least(Info::Name, 1) || itemizing(opts)) {
                let named = if total == 1 || trailing_slash {
                    shown.rsplit_once('/').map_or(shown.as_str(), |(d, _)| d)
                } else {
                    shown.as_str()
                };
                say(
                    Said::Both,
                    &format!(
                        "created {made} director{} for {named}",
                        if made == 1 { "y" } else { "ies" }
                    ),
                );
                meta = stat(&path, 789)?;
            }
        }
        if let Some(m) = meta {
            if m.kind == FileKind::Dir {
                return Ok(Destination {
                    root: path,
                    logical,
                    solo: None,
                    created: false,
                    dry_missing: false,
                });
            }
            if total > 1 {
                return Err(fail(
                    "ERROR: destination must be a directory when copying more than 1 file".into(),
                    ExitCode::FILESELECT,
                    777,
                ));
            }
            if first.entries.first().is_some_and(|e| e.is_dir()) {
                return Err(fail(
                    "ERROR: cannot overwrite non-directory with a directory".into(),
                    ExitCode::FILESELECT,
                    783,
                ));
            }
        }
        if total > 1 || trailing_slash || path.is_root() {
            if meta.is_some() {
                return Err(fail(
                    "ERROR: destination path is not a directory".into(),
                    ExitCode::SYNTAX,
                    801,
                ));
            }
            tree.mkdir(&path, 0o777).map_err(mkdir_failed)?;
            if opts.info.at_least(Info::Name, 1) || itemizing(opts) {
                say(Said::Both, &format!("created directory {shown}"));
            }
            return Ok(Destination {
                root: path,
                logical,
                solo: None,
                created: true,
                // A dry run made nothing: everything below counts as missing.
                dry_missing: opts.dry_run,
            });
        }
        // A single file under the given name, in its parent directory (a symlink by that
        // name is replaced, not written through).
        let logical_parent = logical.parent().unwrap_or_else(RelPath::root);
        let parent = tree
            .resolve(&logical_parent)
            .unwrap_or_else(|_| logical_parent.clone());
        let dry_missing = opts.dry_run && opts.mkpath && stat(&parent, 789)?.is_none();
        Ok(Destination {
            root: parent,
            logical: logical_parent,
            solo: Some(logical.file_name().to_vec()),
            created: false,
            dry_missing,
        })
    }
}

/// The destination's name in messages: module-relative, `.` for the root, absolute when
/// the daemon is chrooted at the module root and the client gave it so.
fn derived_name(path: &RelPath, absolute: bool) -> String {
    match (path.is_root(), absolute) {
        (true, false) => ".".to_string(),
        (_, true) => format!("/{}", String::from_utf8_lossy(path.as_bytes())),
        (false, false) => String::from_utf8_lossy(path.as_bytes()).into_owned(),
    }
}

/// Whether the client itemizes (`-i` or a `--out-format` with `%i`).
fn itemizing(opts: &Options) -> bool {
    opts.itemizing() > 0
}

fn show_arg(raw: &[u8]) -> String {
    String::from_utf8_lossy(raw).into_owned()
}

/// `--mkpath`: creates the missing directories of `path` (all of it with `whole`, else
/// its parents) and returns how many it made. Upstream: util1.c, make_path().
fn make_parents(
    tree: &Tree,
    path: &RelPath,
    whole: bool,
) -> Result<usize, crate::engine::tree::TreeError> {
    let mut cur = RelPath::root();
    let parts: Vec<Vec<u8>> = path.components().map(<[u8]>::to_vec).collect();
    let upto = if whole {
        parts.len()
    } else {
        parts.len().saturating_sub(1)
    };
    let mut made = 0;
    for part in parts.iter().take(upto) {
        cur = cur.join(part)?;
        if tree.lstat(&cur)?.is_none() {
            tree.mkdir(&cur, 0o777)?;
            made += 1;
        }
    }
    Ok(made)
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
