//! Where a merge file named by a rule lives, as a path from the module root.
//!
//! Upstream: exclude.c, parse_merge_name() and set_filter_dir() with util1.c
//! sanitize_path()/clean_fname(), as a daemon runs them: a leading `/` means the module
//! root and `..` never climbs above it.

use super::MAXPATHLEN;

/// Cleans a path relative to the module root: drops empty and `.` components, applies
/// `..` (never above the root) and leading slashes. The result has no leading or
/// trailing slash; the module root itself is the empty path.
pub fn clean_module_path(path: &[u8]) -> Vec<u8> {
    let mut parts: Vec<&[u8]> = Vec::new();
    for part in path.split(|&c| c == b'/') {
        match part {
            b"" | b"." => {}
            b".." => {
                parts.pop();
            }
            _ => parts.push(part),
        }
    }
    parts.join(&b'/')
}

/// `dir` and `name` joined with a slash (just `name` when `dir` is the root).
pub fn join_path(dir: &[u8], name: &[u8]) -> Vec<u8> {
    if dir.is_empty() {
        return name.to_vec();
    }
    let mut out = Vec::with_capacity(dir.len() + 1 + name.len());
    out.extend_from_slice(dir);
    out.push(b'/');
    out.extend_from_slice(name);
    out
}

/// The module path of a merge file named `name` by a rule read while the process works
/// in `cwd` and the filter code's current directory is `dir` (both module paths): a
/// leading `/` starts at the module root, a name with a slash starts at `dir`, a plain
/// name at `cwd` (upstream opens it relative to the working directory). `None` when the
/// result would not fit upstream's MAXPATHLEN ("merge-file name overflows").
pub fn resolve_merge_name(name: &[u8], cwd: &[u8], dir: &[u8]) -> Option<Vec<u8>> {
    let joined = if name.first() == Some(&b'/') {
        name.to_vec()
    } else if name.contains(&b'/') {
        join_path(dir, name)
    } else {
        join_path(cwd, name)
    };
    let path = clean_module_path(&joined);
    (path.len() < MAXPATHLEN).then_some(path)
}

/// Whether `dir` is `of` or one of its ancestors (component-wise; the root is the
/// ancestor of everything).
pub fn is_ancestor_or_self(dir: &[u8], of: &[u8]) -> bool {
    dir.is_empty() || of == dir || (of.starts_with(dir) && of.get(dir.len()) == Some(&b'/'))
}

/// The directories from `top` down to the parent of `dir`, `top` first: the places a
/// per-directory merge file named with a path is first looked for (upstream's
/// parent_dirscan in setup_merge_file()). Empty unless `top` is an ancestor of `dir`.
pub fn dirs_between(top: &[u8], dir: &[u8]) -> Vec<Vec<u8>> {
    if !is_ancestor_or_self(top, dir) || top == dir {
        return Vec::new();
    }
    let rest = if top.is_empty() {
        dir
    } else {
        dir.get(top.len() + 1..).unwrap_or_default()
    };
    let mut out = vec![top.to_vec()];
    let mut cur = top.to_vec();
    let comps: Vec<&[u8]> = rest.split(|&c| c == b'/').collect();
    // The last component is `dir` itself, which the normal per-directory load reads.
    for comp in comps.iter().take(comps.len().saturating_sub(1)) {
        cur = join_path(&cur, comp);
        out.push(cur.clone());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cleans_and_clamps_at_the_module_root() {
        let cases: &[(&[u8], &[u8])] = &[
            (b"", b""),
            (b"/", b""),
            (b"/.rsync-filter", b".rsync-filter"),
            (b"a//b/./c/", b"a/b/c"),
            (b"a/../../b", b"b"),
            (b"../../x", b"x"),
            (b"./a/..", b""),
        ];
        for (input, want) in cases {
            assert_eq!(
                clean_module_path(input),
                *want,
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn resolves_like_parse_merge_name() {
        // (name, cwd, dir, module path)
        type Case<'a> = (&'a [u8], &'a [u8], &'a [u8], &'a [u8]);
        let cases: &[Case] = &[
            (b".rules", b"a", b"a/sub", b"a/.rules"),
            (b"x/.rules", b"a", b"a/sub", b"a/sub/x/.rules"),
            (b"../.rules", b"a", b"a/sub", b"a/.rules"),
            (b"/.rsync-filter", b"a", b"a/sub", b".rsync-filter"),
            (b"/etc/passwd", b"", b"", b"etc/passwd"),
            (b"../../../../etc/passwd", b"", b"d", b"etc/passwd"),
        ];
        for (name, cwd, dir, want) in cases {
            assert_eq!(resolve_merge_name(name, cwd, dir).as_deref(), Some(*want));
        }
        assert_eq!(resolve_merge_name(&[b'a'; MAXPATHLEN], b"", b""), None);
    }

    #[test]
    fn lists_the_parent_directories_to_scan() {
        let v = |s: &[&str]| s.iter().map(|x| x.as_bytes().to_vec()).collect::<Vec<_>>();
        assert_eq!(dirs_between(b"", b"a/b/c"), v(&["", "a", "a/b"]));
        assert_eq!(dirs_between(b"a", b"a/b/c"), v(&["a", "a/b"]));
        assert_eq!(dirs_between(b"a/b/c", b"a/b/c"), v(&[]));
        assert_eq!(dirs_between(b"", b""), v(&[]));
        assert_eq!(dirs_between(b"x", b"a/b"), v(&[]));
        assert_eq!(dirs_between(b"a/b", b"a/bc"), v(&[]));
    }
}
