//! `--compare-dest`, `--copy-dest` and `--link-dest`: other directories whose files count
//! as already received (compare), are copied or hard-linked from (copy, link), or serve as
//! the delta basis of a changed file. Upstream: generator.c try_dests_reg(),
//! try_dests_non(), unchanged_attrs(); main.c check_alt_basis_dirs().

use super::entry::{Found, show};
use super::generator::Generator;
use super::{RecvError, Said, Shared};
use crate::engine::tree::{AttrTarget, FileKind, Meta, RelPath, TreeError};
use crate::protocol::flist::{FileEntry, mode};
use crate::protocol::ndx::iflags as it;
use crate::protocol::options::{Info, Options};

/// Which of the three options the session uses (they cannot be mixed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AltDest {
    Compare,
    Copy,
    Link,
}

impl AltDest {
    fn option(self) -> &'static str {
        match self {
            AltDest::Compare => "--compare-dest",
            AltDest::Copy => "--copy-dest",
            AltDest::Link => "--link-dest",
        }
    }
}

/// The basis directories of a session, as module paths.
#[derive(Debug, Clone, Default)]
pub struct BasisDirs {
    pub kind: Option<AltDest>,
    pub dirs: Vec<RelPath>,
}

impl BasisDirs {
    /// Resolves the option arguments against the destination directory: a relative one
    /// from there (its leading `..` can climb to the module root, no further), an
    /// absolute one from the module root, symlinks followed while they stay in the module;
    /// warns about those that are missing or not directories, as upstream does.
    /// Upstream: main.c, sanitize_path(.., curr_dir_depth) then check_alt_basis_dirs().
    pub fn resolve(
        sh_tree: &crate::engine::tree::Tree,
        o: &Options,
        dest: &RelPath,
        warn: &dyn Fn(&str),
    ) -> BasisDirs {
        let (kind, args) = if !o.link_dest.is_empty() {
            (AltDest::Link, &o.link_dest)
        } else if !o.copy_dest.is_empty() {
            (AltDest::Copy, &o.copy_dest)
        } else if !o.compare_dest.is_empty() {
            (AltDest::Compare, &o.compare_dest)
        } else {
            return BasisDirs::default();
        };
        let mut dirs = Vec::new();
        for arg in args {
            let trimmed = if arg.len() > 1 {
                arg.trim_end_matches('/')
            } else {
                arg.as_str()
            };
            let mut parts: Vec<&[u8]> = if trimmed.starts_with('/') {
                Vec::new()
            } else {
                dest.components().collect()
            };
            for part in trimmed.as_bytes().split(|&b| b == b'/') {
                match part {
                    b"" | b"." => {}
                    b".." => {
                        parts.pop();
                    }
                    p => parts.push(p),
                }
            }
            let logical = parts
                .iter()
                .try_fold(RelPath::root(), |p, part| p.join(part))
                .unwrap_or_else(|_| RelPath::root());
            let dir = sh_tree.resolve(&logical).unwrap_or(logical);
            let shown = if trimmed.starts_with('/') {
                trimmed.to_string()
            } else {
                sanitized_relative(trimmed, dest.components().count())
            };
            // With `insecure links` a link leaving the module was kept: look through it.
            let found = if sh_tree.options().insecure_links {
                sh_tree.stat_target(&dir)
            } else {
                sh_tree.lstat(&dir)
            };
            match found {
                Ok(Some(m)) if m.kind == FileKind::Dir => {}
                Ok(Some(_)) => warn(&format!("{} arg is not a dir: {shown}", kind.option())),
                _ => warn(&format!("{} arg does not exist: {shown}", kind.option())),
            }
            dirs.push(dir);
        }
        BasisDirs {
            kind: Some(kind),
            dirs,
        }
    }

    /// The basis file for destination-relative `name` in directory `j`.
    pub fn path(&self, j: usize, name: &[u8]) -> Option<RelPath> {
        let mut p = self.dirs.get(j)?.clone();
        for part in name.split(|&b| b == b'/') {
            if !part.is_empty() && part != b"." {
                p = p.join(part).ok()?;
            }
        }
        Some(p)
    }
}

/// A relative path as upstream's sanitize_path() leaves it for a destination `depth`
/// levels below the module root: `.` dropped, `..` kept at the start up to `depth` times
/// and collapsed elsewhere, anything climbing further dropped.
fn sanitized_relative(arg: &str, depth: usize) -> String {
    let mut out: Vec<&str> = Vec::new();
    let mut ups = 0;
    for part in arg.split('/') {
        match part {
            "" | "." => {}
            ".." => match out.last() {
                Some(&last) if last != ".." => {
                    out.pop();
                }
                _ if ups < depth => {
                    out.push("..");
                    ups += 1;
                }
                _ => {}
            },
            p => out.push(p),
        }
    }
    if out.is_empty() {
        ".".to_string()
    } else {
        out.join("/")
    }
}

/// What trying the basis directories came to.
pub(super) enum Tried {
    /// The entry is handled (linked, copied, or already in a compare directory).
    Done,
    /// A similar file to use as the delta basis: its directory index, path and stat.
    Basis(u8, RelPath, Meta),
    /// The entry could not be hard-linked: create it, without reporting it.
    CreateQuietly,
    /// Nothing usable.
    Nothing,
}

impl Generator<'_> {
    /// The destination-relative name the basis directories are searched for.
    fn basis_name(&self, e: &FileEntry) -> Vec<u8> {
        match &self.sh.dest.solo {
            Some(solo) => solo.clone(),
            None => e.name.clone(),
        }
    }

    /// The best candidate among the basis directories: 1 a file of the same kind, 2 one
    /// that passes the quick check, 3 one whose attributes match too (then the search
    /// stops).
    fn best_basis(&self, e: &FileEntry, kind: FileKind) -> Option<(usize, RelPath, Meta, u8)> {
        let sh = self.sh;
        let name = self.basis_name(e);
        let mut best: Option<(usize, RelPath, Meta, u8)> = None;
        for j in 0..sh.basis.dirs.len() {
            let Some(path) = sh.basis.path(j, &name) else {
                continue;
            };
            let Ok(Some(m)) = sh.tree.lstat(&path) else {
                continue;
            };
            if m.kind != kind {
                continue;
            }
            let mut level = 1;
            if self.basis_quick_check(e, &path, &m) {
                level = 2;
                if unchanged_attrs(sh, e, &m) {
                    return Some((j, path, m, 3));
                }
            }
            if best.as_ref().is_none_or(|b| b.3 < level) {
                best = Some((j, path, m, level));
            }
        }
        best
    }

    fn basis_quick_check(&self, e: &FileEntry, path: &RelPath, m: &Meta) -> bool {
        let sh = self.sh;
        match m.kind {
            FileKind::Regular => self.quick_check_ok(e, path, m),
            FileKind::Dir => true,
            FileKind::Symlink => sh
                .tree
                .read_link(path)
                .is_ok_and(|t| Some(t.as_slice()) == e.link_target.as_deref()),
            FileKind::CharDev | FileKind::BlockDev => {
                let rdev = e.rdev.map_or(0, |(ma, mi)| {
                    nix::sys::stat::makedev(u64::from(ma), u64::from(mi))
                });
                m.rdev == rdev
            }
            FileKind::Fifo | FileKind::Socket => m.mode & mode::S_IFMT == e.mode & mode::S_IFMT,
        }
    }

    /// A regular file (upstream: try_dests_reg()). `existing` is the destination's own
    /// file, when there is one: then only an exact match counts.
    pub(super) fn try_dests_reg(
        &mut self,
        e: &FileEntry,
        ndx: i32,
        found: &Found,
        existing: Option<Meta>,
    ) -> Result<Tried, RecvError> {
        let sh = self.sh;
        let Some(kind) = sh.basis.kind else {
            return Ok(Tried::Nothing);
        };
        let Some((j, bpath, bmeta, level)) = self.best_basis(e, FileKind::Regular) else {
            return Ok(Tried::Nothing);
        };
        if level == 3 && kind != AltDest::Copy {
            if let Some(real) = existing {
                if kind == AltDest::Link && real.dev == bmeta.dev && real.ino == bmeta.ino {
                    return Ok(Tried::Nothing);
                }
                if let Err(err) = sh.tree.unlink(&found.path)
                    && !err.is_not_found()
                {
                    return Ok(Tried::Nothing);
                }
            }
            if kind == AltDest::Link {
                if sh.tree.hard_link(&bpath, &found.path).is_ok() {
                    if self.itemizing_twice() {
                        self.itemize(
                            e,
                            ndx,
                            Some(bmeta),
                            it::LOCAL_CHANGE | it::XNAME_FOLLOWS,
                            Some(b""),
                        )?;
                    }
                    self.hlink_leader_ready(e, ndx, &found.path)?;
                    self.uptodate(e);
                    return Ok(Tried::Done);
                }
                // Could not link (another filesystem, a limit): copy it instead.
                return self.copy_basis(e, ndx, found, &bpath, bmeta, level);
            }
            self.itemize(e, ndx, Some(bmeta), 0, None)?;
            self.uptodate(e);
            return Ok(Tried::Done);
        }
        if existing.is_some() {
            return Ok(Tried::Nothing);
        }
        if level >= 2 {
            return self.copy_basis(e, ndx, found, &bpath, bmeta, level);
        }
        Ok(Tried::Basis(u8::try_from(j).unwrap_or(0), bpath, bmeta))
    }

    /// `--copy-dest` (or a link that failed): a local copy of the basis, staged under a
    /// temporary name and renamed into place. Upstream: copy_altdest_file().
    fn copy_basis(
        &mut self,
        e: &FileEntry,
        ndx: i32,
        found: &Found,
        bpath: &RelPath,
        bmeta: Meta,
        level: u8,
    ) -> Result<Tried, RecvError> {
        let sh = self.sh;
        if !sh.opts.dry_run
            && let Err(err) = copy_file(sh, bpath, &found.path, e)
        {
            let what = format!(
                "copy_file {} => {}",
                sh.quoted(bpath),
                sh.quoted(&found.path)
            );
            sh.say(
                Said::Both,
                &crate::engine::exit::syserr("generator", &what, err.raw_os_error(), &err),
            );
            return Ok(Tried::Nothing);
        }
        self.itemize(e, ndx, Some(bmeta), it::LOCAL_CHANGE, None)?;
        let o = &sh.opts;
        let itemizing = o.itemizing() > 0;
        if (!itemizing && o.info.at_least(Info::Name, 1) && level == 2)
            || (o.info.at_least(Info::Name, 2) && level == 3)
        {
            let text = format!(
                "{}{}",
                show(&e.name),
                if level == 3 { " is uptodate" } else { "" }
            );
            sh.say(if level == 3 { Said::Client } else { Said::Both }, &text);
        }
        self.hlink_leader_ready(e, ndx, &found.path)?;
        Ok(Tried::Done)
    }

    /// A directory, symlink, device or special file (upstream: try_dests_non()).
    pub(super) fn try_dests_non(
        &mut self,
        e: &FileEntry,
        ndx: i32,
        found: &Found,
    ) -> Result<Tried, RecvError> {
        let sh = self.sh;
        let Some(kind) = sh.basis.kind else {
            return Ok(Tried::Nothing);
        };
        let Some(want) = FileKind::from_mode(e.mode) else {
            return Ok(Tried::Nothing);
        };
        let Some((j, bpath, bmeta, level)) = self.best_basis(e, want) else {
            return Ok(Tried::Nothing);
        };
        if level < 3 {
            return Ok(Tried::Basis(u8::try_from(j).unwrap_or(0), bpath, bmeta));
        }
        let mut linked = false;
        let mut cannot_link = false;
        if kind == AltDest::Link && want != FileKind::Dir {
            if sh.tree.hard_link(&bpath, &found.path).is_ok() {
                linked = true;
                self.hlink_leader_ready(e, ndx, &found.path)?;
            } else {
                cannot_link = true;
            }
        }
        if self.itemizing_twice() {
            let chg = if kind == AltDest::Compare && want != FileKind::Dir {
                0
            } else {
                it::LOCAL_CHANGE | if linked { it::XNAME_FOLLOWS } else { 0 }
            };
            let xname: Option<&[u8]> = if linked { Some(b"") } else { None };
            self.itemize(e, ndx, Some(bmeta), chg | it::MATCHED, xname)?;
        }
        if sh.opts.info.at_least(Info::Name, 2) {
            let slash = if want == FileKind::Dir { "/" } else { "" };
            sh.say(
                Said::Client,
                &format!("{}{slash} is uptodate", show(&e.name)),
            );
        }
        Ok(if cannot_link {
            Tried::CreateQuietly
        } else {
            Tried::Done
        })
    }

    /// For a symlink, device or special file the destination lacks: `None` when a basis
    /// directory settled it (linked, or matched under --compare-dest); otherwise whether to
    /// create it without reporting it, and the basis entry to itemize it against.
    pub(super) fn alt_dest_non(
        &mut self,
        e: &FileEntry,
        ndx: i32,
        found: &Found,
    ) -> Result<Option<(bool, Option<Meta>)>, RecvError> {
        if found.meta.is_some() || self.sh.basis.kind.is_none() {
            return Ok(Some((false, None)));
        }
        Ok(match self.try_dests_non(e, ndx, found)? {
            Tried::Done if self.sh.basis.kind != Some(AltDest::Copy) => None,
            Tried::Done | Tried::CreateQuietly => Some((true, None)),
            Tried::Basis(_, _, m) => Some((false, Some(m))),
            Tried::Nothing => Some((false, None)),
        })
    }

    /// `-ii` (or `-vv` with itemizing): items that did not change are shown too.
    fn itemizing_twice(&self) -> bool {
        let o = &self.sh.opts;
        o.itemizing() > 0 && (o.info.at_least(Info::Name, 2) || o.itemizing() > 1)
    }

    fn uptodate(&self, e: &FileEntry) {
        let sh = self.sh;
        let o = &sh.opts;
        let itemizing = o.itemizing() > 0;
        if o.info.at_least(Info::Name, 2) && !itemizing {
            sh.say(Said::Client, &format!("{} is uptodate", show(&e.name)));
        }
    }
}

/// Whether an alternate file's attributes already are what the entry asks for (then
/// linking it, or counting it as received, changes nothing). Upstream: unchanged_attrs().
fn unchanged_attrs(sh: &Shared, e: &FileEntry, m: &Meta) -> bool {
    let o = &sh.opts;
    let is_link = mode::is_lnk(e.mode);
    if o.preserve_mtimes && !(is_link && o.omit_link_times) && super::entry::mtime_differs(m, e, 0)
    {
        return false;
    }
    if !is_link {
        let perms_differ = if o.preserve_perms {
            m.mode & 0o7777 != e.mode & 0o7777
        } else if o.preserve_executability {
            (m.mode & 0o111 != 0) != (e.mode & 0o111 != 0)
        } else {
            false
        };
        if perms_differ {
            return false;
        }
    }
    let owner_differs = sh.policy.am_root && o.preserve_uid && e.uid.is_some_and(|u| u != m.uid);
    let group_differs = o.preserve_gid && e.gid.is_some_and(|g| g != m.gid && sh.may_set_group(g));
    !(owner_differs || group_differs)
}

/// Copies `from` to `to` through a temporary file, with the entry's attributes.
fn copy_file(sh: &Shared, from: &RelPath, to: &RelPath, e: &FileEntry) -> Result<(), TreeError> {
    let mut src = sh.tree.open_read(from)?;
    let mut tmp = sh.tree.create_temp(to, 0o600)?;
    std::io::copy(&mut src, tmp.file_mut()).map_err(|source| TreeError::Io {
        op: "copy",
        path: to.to_string(),
        source,
    })?;
    let want = super::entry::want_attrs(sh, e);
    sh.tree.set_attrs(AttrTarget::Temp(&tmp), &want)?;
    sh.tree.commit(tmp, to)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_basis_dirs_are_shown_as_upstream_sanitizes_them() {
        assert_eq!(sanitized_relative("../../x", 1), "../x");
        assert_eq!(sanitized_relative("../00", 1), "../00");
        assert_eq!(sanitized_relative("a/../../b", 0), "b");
        assert_eq!(sanitized_relative("./", 2), ".");
    }
}
