//! The sender's path arguments: each made safe, split into a transfer root and a name
//! (`-R` keeps the path), vetted against the daemon's rules, and listed with its implied
//! directories. Upstream: flist.c, send_file_list() (its argument loop),
//! send_implied_dirs(), path_is_daemon_excluded().

use super::Core;
use super::list::{IOERR_VANISHED, Item, Lister, NameType, show};
use crate::engine::error::EngineError;
use crate::engine::tree::RelPath;
use crate::protocol::flist::{FileEntry, mode, xmit};

impl Lister {
    /// One path argument of the first list. Upstream: the loop of send_file_list().
    pub(super) fn add_arg(
        &mut self,
        core: &Core,
        raw: &[u8],
        items: &mut Vec<Item>,
    ) -> Result<(), EngineError> {
        let o = &core.opts;
        let mut fbuf = sanitize_arg(raw);
        let (dir, mut fname, mut name_type) = if o.relative {
            split_relative(&fbuf)
        } else {
            if fbuf.is_empty() || fbuf.ends_with(b"/") {
                if fbuf == b"./" {
                    fbuf.truncate(1);
                } else {
                    fbuf.push(b'.');
                }
            } else if fbuf == b".." || fbuf.ends_with(b"/..") {
                fbuf.extend_from_slice(b"/.");
            }
            let name_type = if fbuf == b"." || fbuf.ends_with(b"/.") {
                NameType::DotDir
            } else {
                NameType::Normal
            };
            match fbuf.iter().rposition(|&b| b == b'/') {
                Some(i) => (fbuf[..i].to_vec(), fbuf[i + 1..].to_vec(), name_type),
                None => (Vec::new(), fbuf.clone(), name_type),
            }
        };
        if fname.is_empty() {
            fname = b".".to_vec();
            name_type = NameType::DotDir;
        }
        if !dir.is_empty() && self.daemon_excluded(core, &dir, false)? {
            core.error_xfer(&format!(
                "rsync: [sender] change_dir {} failed: No such file or directory (2)",
                core.quoted(&RelPath::parse(&dir).unwrap_or_else(|_| RelPath::root()))
            ));
            return Ok(());
        }
        // Upstream changes into the argument's directory first; what stops a chdir (a
        // missing component, a symlink on the way, a file) is reported as such.
        let disk_dir = match resolve_dir(core, &dir) {
            Ok(d) => d,
            Err(errno) => {
                core.error_xfer(&crate::engine::exit::syserr(
                    "sender",
                    &format!("change_dir {} failed", core.quoted_in(&[], &dir)),
                    Some(errno),
                    &"",
                ));
                return Ok(());
            }
        };
        let root = self.root_index(core, &dir, &disk_dir)?;
        let it_name = if name_type == NameType::DotDir && !o.relative {
            b".".to_vec()
        } else {
            fname.clone()
        };
        let probe = Item {
            e: FileEntry {
                name: it_name.clone(),
                ..FileEntry::default()
            },
            root,
            content_dir: false,
        };
        let path = self.disk_path(&probe)?;
        // The argument's directory is entered as upstream's chdir enters it: through a
        // link `insecure links` kept unresolved in `disk_dir` too.
        let stat = if name_type == NameType::DotDir && core.tree.options().insecure_links {
            core.tree.stat_target(&path)
        } else {
            self.stat(core, &path)
        };
        let meta = match stat {
            Ok(Some(m)) => m,
            Ok(None) => {
                self.io_error |= IOERR_VANISHED;
                core.error_xfer(&format!(
                    "rsync: [sender] link_stat {} failed: No such file or directory (2)",
                    self.quoted(core, root, &path)
                ));
                return Ok(());
            }
            Err(e) => {
                self.sys_error(core, root, &path, "link_stat", &e);
                return Ok(());
            }
        };
        // Upstream stats an argument twice (link_stat, then make_file()).
        if core.tree.options().fake_super
            && (mode::is_reg(meta.mode) || mode::is_dir(meta.mode))
            && !core.tree.is_readable(&path)
        {
            self.report_stat_xattr_denied(core, root, &path);
            self.report_stat_xattr_denied(core, root, &path);
        }
        let is_dir = mode::is_dir(meta.mode);
        let hidden = (name_type != NameType::DotDir
            && self.filters[root as usize].check_daemon(&it_name, is_dir)
                == Some(crate::engine::filter::Verdict::Excluded))
            || (o.relative && self.daemon_excluded(core, path.as_bytes(), true)?);
        if hidden {
            // What the daemon hides is reported as missing (upstream sets ENOENT).
            core.error_xfer(&format!(
                "rsync: [sender] link_stat {} failed: No such file or directory (2)",
                self.quoted(core, root, &path)
            ));
            return Ok(());
        }
        if name_type != NameType::DotDir
            && (self.filters[root as usize].is_excluded(&it_name, is_dir)
                || core.policy.locally_excluded(&it_name, is_dir))
        {
            return Ok(());
        }
        if is_dir && !o.xfer_dirs && !o.recurse {
            core.info(&format!("skipping directory {}", show(&it_name)));
            return Ok(());
        }
        let implied = o.relative && (o.implied_dirs || core.wire.protocol >= 30);
        if implied && core.cfg.inc_recurse {
            // With incremental lists each list holds one directory's entries: the first
            // component goes in this list, the rest waits in its sub-list.
            if let Some(i) = it_name.iter().position(|&b| b == b'/') {
                let first = it_name[..i].to_vec();
                let rest = it_name[i + 1..].to_vec();
                self.add_implied(core, root, first, rest, name_type, items)?;
                return Ok(());
            }
        } else if implied {
            self.implied_dirs(core, root, &it_name, items)?;
        }
        self.add_top(core, root, it_name, &meta, name_type, items)
    }

    /// An argument's own entry (a top directory when it is one), with its contents when
    /// they belong in this list.
    pub(super) fn add_top(
        &mut self,
        core: &Core,
        root: u32,
        name: Vec<u8>,
        meta: &crate::engine::tree::Meta,
        name_type: NameType,
        items: &mut Vec<Item>,
    ) -> Result<(), EngineError> {
        let o = &core.opts;
        let is_dir = mode::is_dir(meta.mode);
        let whole = o.recurse || (o.xfer_dirs && name_type == NameType::DotDir);
        let mut xflags = 0;
        if whole && is_dir {
            xflags |= xmit::TOP_DIR;
        }
        let Some(item) = self.make_item(core, root, name.clone(), meta, xflags, whole)? else {
            return Ok(());
        };
        let content = item.content_dir;
        items.push(item);
        if is_dir && content {
            let descend = if core.cfg.inc_recurse {
                name_type == NameType::DotDir
            } else {
                true
            };
            if descend {
                let recurse_all = o.recurse && !core.cfg.inc_recurse;
                self.scan_tree(core, root, &name, items, recurse_all)?;
            }
        }
        Ok(())
    }

    /// A path argument with its wildcards (`*`, `?`, `[`) expanded against the module,
    /// in directory order; an argument that matches nothing stays as it is.
    /// Upstream: util1.c, glob_expand() and glob_match().
    pub(super) fn glob(&mut self, core: &Core, arg: &[u8]) -> Result<Vec<Vec<u8>>, EngineError> {
        if !arg.iter().any(|b| matches!(b, b'*' | b'?' | b'[')) {
            return Ok(vec![arg.to_vec()]);
        }
        let (body, slash) = match arg.strip_suffix(b"/") {
            Some(b) => (b, true),
            None => (arg, false),
        };
        let parts: Vec<&[u8]> = body.split(|&b| b == b'/').collect();
        let mut found = Vec::new();
        self.glob_from(core, Vec::new(), &parts, slash, &mut found)?;
        if found.is_empty() {
            return Ok(vec![arg.to_vec()]);
        }
        Ok(found)
    }

    fn glob_from(
        &mut self,
        core: &Core,
        prefix: Vec<u8>,
        parts: &[&[u8]],
        slash: bool,
        found: &mut Vec<Vec<u8>>,
    ) -> Result<(), EngineError> {
        let Some((part, rest)) = parts.split_first() else {
            let mut done = prefix;
            if slash {
                done.push(b'/');
            }
            found.push(done);
            return Ok(());
        };
        let join = |name: &[u8]| {
            let mut p = prefix.clone();
            if !p.is_empty() {
                p.push(b'/');
            }
            p.extend_from_slice(name);
            p
        };
        if !part.iter().any(|b| matches!(b, b'*' | b'?' | b'[')) {
            return self.glob_from(core, join(part), rest, slash, found);
        }
        let dir = if prefix.is_empty() {
            RelPath::root()
        } else {
            match RelPath::parse(&prefix) {
                Ok(p) => p,
                Err(_) => return Ok(()),
            }
        };
        let Ok(entries) = core.tree.read_dir_meta(&dir) else {
            return Ok(());
        };
        for entry in entries {
            let (name, meta) = (entry.name, entry.meta);
            if !crate::wildmatch::wildmatch(part, &name) {
                continue;
            }
            let Ok(Some(meta)) = meta else { continue };
            let path = join(&name);
            // Upstream's glob stats through symlinks. One leading out of the module is
            // kept as a directory would be (it is never looked at: the chdir into it
            // fails later with ELOOP, as stock's does).
            let is_dir = mode::is_dir(meta.mode)
                || (mode::is_lnk(meta.mode)
                    && RelPath::parse(&path).is_ok_and(|p| match core.tree.resolve(&p) {
                        Ok(_) => core
                            .tree
                            .stat_target(&p)
                            .ok()
                            .flatten()
                            .is_some_and(|m| mode::is_dir(m.mode)),
                        Err(e) => e.is_confinement(),
                    }));
            if (!rest.is_empty() || slash) && !is_dir {
                continue;
            }
            if self.daemon_excluded(core, &path, false)? {
                continue;
            }
            self.glob_from(core, path, rest, slash, found)?;
        }
        Ok(())
    }

    /// With incremental lists and `-R`: lists directory `dir` (an implied one) in this
    /// list unless it already is, and keeps `rest` of the path for its sub-list.
    /// Upstream: flist.c, send_implied_dirs() with inc_recurse (the relname lists).
    pub(super) fn add_implied(
        &mut self,
        core: &Core,
        root: u32,
        dir: Vec<u8>,
        rest: Vec<u8>,
        name_type: NameType,
        items: &mut Vec<Item>,
    ) -> Result<(), EngineError> {
        let listed = self.dirs_listed.contains(items, root, &dir);
        if !listed {
            let probe = Item {
                e: FileEntry {
                    name: dir.clone(),
                    ..FileEntry::default()
                },
                root,
                content_dir: false,
            };
            let path = self.disk_path(&probe)?;
            let Ok(Some(meta)) = self.stat(core, &path) else {
                return Ok(());
            };
            if !mode::is_dir(meta.mode) {
                return Ok(());
            }
            let xflags = xmit::TOP_DIR | xmit::NO_CONTENT_DIR;
            let Some(it) = self.make_item(core, root, dir.clone(), &meta, xflags, false)? else {
                return Ok(());
            };
            items.push(it);
        }
        self.relnames
            .entry((root, dir))
            .or_default()
            .push((rest, name_type));
        Ok(())
    }

    /// The paths kept for directory `dir`'s sub-list (see [`Lister::add_implied`]): the
    /// next implied directory, or the argument itself.
    pub(super) fn add_relnames(
        &mut self,
        core: &Core,
        root: u32,
        dir: &[u8],
        items: &mut Vec<Item>,
    ) -> Result<(), EngineError> {
        let Some(names) = self.relnames.remove(&(root, dir.to_vec())) else {
            return Ok(());
        };
        for (rest, name_type) in names {
            let mut full = dir.to_vec();
            full.push(b'/');
            if let Some(i) = rest.iter().position(|&b| b == b'/') {
                full.extend_from_slice(&rest[..i]);
                self.add_implied(core, root, full, rest[i + 1..].to_vec(), name_type, items)?;
                continue;
            }
            full.extend_from_slice(&rest);
            let probe = Item {
                e: FileEntry {
                    name: full.clone(),
                    ..FileEntry::default()
                },
                root,
                content_dir: false,
            };
            let path = self.disk_path(&probe)?;
            match self.stat(core, &path) {
                Ok(Some(meta)) => self.add_top(core, root, full, &meta, name_type, items)?,
                _ => {
                    self.io_error |= IOERR_VANISHED;
                    core.warn(&format!(
                        "file has vanished: {}",
                        self.quoted(core, root, &path)
                    ));
                }
            }
        }
        Ok(())
    }

    /// With `-R`, the parents of a path go first as implied directories.
    /// Upstream: flist.c, send_implied_dirs().
    pub(super) fn implied_dirs(
        &mut self,
        core: &Core,
        root: u32,
        name: &[u8],
        items: &mut Vec<Item>,
    ) -> Result<(), EngineError> {
        let mut at = 0;
        while let Some(i) = name[at..].iter().position(|&b| b == b'/') {
            let part = name[..at + i].to_vec();
            at += i + 1;
            if part == b"." || self.dirs_listed.contains(items, root, &part) {
                continue;
            }
            let probe = Item {
                e: FileEntry {
                    name: part.clone(),
                    ..FileEntry::default()
                },
                root,
                content_dir: false,
            };
            let path = self.disk_path(&probe)?;
            let Ok(Some(meta)) = self.stat(core, &path) else {
                continue;
            };
            if !mode::is_dir(meta.mode) {
                continue;
            }
            let xflags = if core.wire.protocol >= 30 {
                xmit::TOP_DIR | xmit::NO_CONTENT_DIR
            } else {
                0
            };
            if let Some(it) = self.make_item(core, root, part, &meta, xflags, false)? {
                items.push(it);
            }
        }
        Ok(())
    }

    /// Whether the daemon's rules hide `path` (module-relative): any of its parent
    /// directories, or (unless `ignore_filename`) the path itself as a directory.
    /// Upstream: flist.c, path_is_daemon_excluded().
    pub(super) fn daemon_excluded(
        &mut self,
        core: &Core,
        path: &[u8],
        ignore_filename: bool,
    ) -> Result<bool, EngineError> {
        if core.policy.daemon_rules.is_empty() {
            return Ok(false);
        }
        if self.daemon.is_none() {
            self.daemon = Some(core.daemon_filters()?);
        }
        let Some(set) = &self.daemon else {
            return Ok(false);
        };
        let excluded =
            |p: &[u8]| set.check_daemon(p, true) == Some(crate::engine::filter::Verdict::Excluded);
        for (i, _) in path.iter().enumerate().skip(1).filter(|(_, b)| **b == b'/') {
            if excluded(&path[..i]) {
                return Ok(true);
            }
        }
        Ok(!ignore_filename && excluded(path))
    }

    /// The index of the transfer root the client named `shown` and the tree reaches as
    /// `disk`.
    pub(super) fn root_index(
        &mut self,
        core: &Core,
        shown: &[u8],
        disk: &[u8],
    ) -> Result<u32, EngineError> {
        if let Some(i) = self
            .roots
            .iter()
            .zip(&self.shown_roots)
            .position(|(r, s)| r == disk && s == shown)
        {
            return Ok(i as u32);
        }
        self.filters.push(core.filters_for(shown)?);
        self.roots.push(disk.to_vec());
        self.shown_roots.push(shown.to_vec());
        Ok((self.roots.len() - 1) as u32)
    }
}

/// The directories already in the list being built, by (root, name): what `-R` asks
/// before listing an implied directory. Filled lazily from the list itself, so each
/// entry is looked at once however many arguments there are (a `--files-from` list of a
/// million names).
#[derive(Debug, Default)]
pub(super) struct DirIndex {
    names: std::collections::HashSet<(u32, Vec<u8>)>,
    /// How many entries of the list are indexed.
    upto: usize,
}

impl DirIndex {
    /// Starts over for a new list.
    pub(super) fn clear(&mut self) {
        self.names.clear();
        self.upto = 0;
    }

    /// Whether `items` (the list being built) holds directory `name` under `root`.
    fn contains(&mut self, items: &[Item], root: u32, name: &[u8]) -> bool {
        for it in items.get(self.upto..).unwrap_or(&[]) {
            if it.e.is_dir() {
                self.names.insert((it.root, it.e.name.clone()));
            }
        }
        self.upto = items.len();
        self.names.contains(&(root, name.to_vec()))
    }
}

/// Where a chdir into `dir` (module-relative) leads, with symlinks inside the module
/// followed as a chdir follows them; or why it fails, as an errno: ENOENT for a missing
/// component, ELOOP for a symlink that leads out of the module (the confined resolver
/// follows none), ENOTDIR for a file on the way.
fn resolve_dir(core: &Core, dir: &[u8]) -> Result<Vec<u8>, i32> {
    let mut at: Vec<u8> = Vec::new();
    for part in dir.split(|&b| b == b'/').filter(|p| !p.is_empty()) {
        if !at.is_empty() {
            at.push(b'/');
        }
        at.extend_from_slice(part);
        let p = RelPath::parse(&at).map_err(|_| 2)?;
        match core.tree.lstat(&p) {
            Ok(Some(m)) if mode::is_dir(m.mode) => {}
            Ok(Some(m)) if mode::is_lnk(m.mode) => {
                // `insecure links`: a link leaving the module comes back unresolved.
                let target = core.tree.resolve(&p).map_err(|_| 40)?;
                match core.tree.stat_target(&target) {
                    Ok(Some(t)) if mode::is_dir(t.mode) => at = target.as_bytes().to_vec(),
                    Ok(Some(_)) => return Err(20),
                    _ => return Err(2),
                }
            }
            Ok(Some(_)) => return Err(20),
            Ok(None) => return Err(2),
            Err(e) => return Err(super::errno_of(&e).unwrap_or(2)),
        }
    }
    Ok(at)
}

/// A path argument made safe as upstream's sanitize_path() with SP_KEEP_DOT_DIRS: no
/// leading slash, `..` never climbs above the start, `.` components and a trailing slash
/// kept.
pub fn sanitize_arg(arg: &[u8]) -> Vec<u8> {
    let mut parts: Vec<&[u8]> = Vec::new();
    let mut dotdot_floor = 0;
    for part in arg.split(|&b| b == b'/') {
        match part {
            b"" => {}
            b".." => {
                if parts.len() > dotdot_floor {
                    parts.pop();
                } else {
                    dotdot_floor = parts.len();
                }
            }
            p => parts.push(p),
        }
    }
    let mut out = parts.join(&b'/');
    if arg.ends_with(b"/") && !out.is_empty() {
        out.push(b'/');
    }
    out
}

/// Splits a `-R` argument at its `/./` marker into the part that stays behind (the
/// transfer root) and the part that is sent, as upstream's send_file_list() does.
fn split_relative(fbuf: &[u8]) -> (Vec<u8>, Vec<u8>, NameType) {
    let (dir, rest) = match fbuf.windows(3).position(|w| w == b"/./") {
        Some(i) => (fbuf[..i].to_vec(), &fbuf[i + 3..]),
        None => match fbuf.strip_prefix(b"./") {
            Some(r) => (Vec::new(), r),
            None => (Vec::new(), fbuf),
        },
    };
    let mut parts: Vec<&[u8]> = Vec::new();
    for p in rest.split(|&b| b == b'/') {
        if !p.is_empty() && p != b"." {
            parts.push(p);
        }
    }
    let name = parts.join(&b'/');
    if name.is_empty() {
        (dir, b".".to_vec(), NameType::DotDir)
    } else {
        (dir, name, NameType::Normal)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    pub(super) fn sanitizing_arguments() {
        assert_eq!(sanitize_arg(b"/"), b"");
        assert_eq!(sanitize_arg(b"/sub/"), b"sub/");
        assert_eq!(sanitize_arg(b"../../etc/passwd"), b"etc/passwd");
        assert_eq!(sanitize_arg(b"a/../../b"), b"b");
        assert_eq!(sanitize_arg(b"a/./b"), b"a/./b");
    }

    #[test]
    pub(super) fn relative_split() {
        assert_eq!(split_relative(b"a/b/c").1, b"a/b/c");
        let (d, n, _) = split_relative(b"a/./b/c");
        assert_eq!((d.as_slice(), n.as_slice()), (&b"a"[..], &b"b/c"[..]));
        assert_eq!(split_relative(b"").2, NameType::DotDir);
    }
}
