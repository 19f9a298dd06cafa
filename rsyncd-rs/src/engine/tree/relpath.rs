//! Checked relative paths: the only kind of name a [`Tree`](super::Tree) accepts.

use std::fmt;

use super::TreeError;

/// The longest path accepted, in bytes (`PATH_MAX` on Linux, counting no NUL).
pub const MAX_PATH_LEN: usize = 4096;

/// A checked relative path: not absolute, no `..`, no empty or `.` components except
/// the single path `.` (the module root), no NUL, at most [`MAX_PATH_LEN`] bytes.
///
/// Built only by [`RelPath::parse`], [`RelPath::root`], [`RelPath::parent`] and
/// [`RelPath::join`], so holding one proves the checks were made.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RelPath(Vec<u8>);

impl RelPath {
    /// Checks `bytes` and wraps them.
    ///
    /// Errors with [`TreeError::BadPath`] for an empty or over-long path, a leading `/`,
    /// a NUL byte, an empty component (`a//b`, trailing `/`), or a `.`/`..` component
    /// anywhere but the single path `.`.
    pub fn parse(bytes: &[u8]) -> Result<RelPath, TreeError> {
        let bad = |reason| Err(TreeError::bad_path(bytes, reason));
        if bytes.is_empty() {
            return bad("empty path");
        }
        if bytes.len() > MAX_PATH_LEN {
            return bad("path too long");
        }
        if bytes == b"." {
            return Ok(RelPath::root());
        }
        if bytes[0] == b'/' {
            return bad("absolute path");
        }
        if bytes.contains(&0) {
            return bad("NUL byte in path");
        }
        for comp in bytes.split(|&b| b == b'/') {
            if let Err(reason) = check_component(comp) {
                return bad(reason);
            }
        }
        Ok(RelPath(bytes.to_vec()))
    }

    /// The module root, `.`.
    pub fn root() -> RelPath {
        RelPath(b".".to_vec())
    }

    /// Whether this is the module root `.`.
    pub fn is_root(&self) -> bool {
        self.0 == b"."
    }

    /// The containing directory: `a/b` → `a`, `a` → `.`, and `None` for `.` itself.
    pub fn parent(&self) -> Option<RelPath> {
        if self.is_root() {
            return None;
        }
        match self.0.iter().rposition(|&b| b == b'/') {
            Some(i) => Some(RelPath(self.0[..i].to_vec())),
            None => Some(RelPath::root()),
        }
    }

    /// The last component (`a/b` → `b`); `.` for the root.
    pub fn file_name(&self) -> &[u8] {
        match self.0.iter().rposition(|&b| b == b'/') {
            Some(i) => &self.0[i + 1..],
            None => &self.0,
        }
    }

    /// This path with one more component. `name` must be a single component (no `/`,
    /// not empty, not `.` or `..`, no NUL) and the result must fit [`MAX_PATH_LEN`];
    /// otherwise [`TreeError::BadPath`].
    pub fn join(&self, name: &[u8]) -> Result<RelPath, TreeError> {
        if name.contains(&b'/') {
            return Err(TreeError::bad_path(name, "name contains '/'"));
        }
        if name.contains(&0) {
            return Err(TreeError::bad_path(name, "NUL byte in path"));
        }
        check_component(name).map_err(|reason| TreeError::bad_path(name, reason))?;
        if self.is_root() {
            return RelPath::parse(name);
        }
        let mut joined = Vec::with_capacity(self.0.len() + 1 + name.len());
        joined.extend_from_slice(&self.0);
        joined.push(b'/');
        joined.extend_from_slice(name);
        if joined.len() > MAX_PATH_LEN {
            return Err(TreeError::bad_path(&joined, "path too long"));
        }
        Ok(RelPath(joined))
    }

    /// The path as bytes, exactly as parsed.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The components, in order; empty for the root.
    pub fn components(&self) -> impl Iterator<Item = &[u8]> {
        let all: &[u8] = if self.is_root() { b"" } else { &self.0 };
        all.split(|&b| b == b'/').filter(|c| !c.is_empty())
    }
}

/// One component: not empty, not `.` or `..`. The caller has excluded `/` and NUL.
fn check_component(comp: &[u8]) -> Result<(), &'static str> {
    match comp {
        b"" => Err("empty path component"),
        b"." => Err("'.' component"),
        b".." => Err("'..' component"),
        _ => Ok(()),
    }
}

impl fmt::Display for RelPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(&self.0))
    }
}

impl fmt::Debug for RelPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RelPath({:?})", String::from_utf8_lossy(&self.0))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_clean_paths() {
        for ok in [
            &b"."[..],
            b"a",
            b"a/b",
            b".hidden",
            b"a/.b/c..",
            b"...",
            b"a b/\xff",
        ] {
            let p = RelPath::parse(ok).unwrap();
            assert_eq!(p.as_bytes(), ok);
        }
    }

    #[test]
    fn rejects_unsafe_paths() {
        for bad in [
            &b""[..],
            b"/",
            b"/etc/passwd",
            b"..",
            b"../x",
            b"a/..",
            b"a/../b",
            b"./a",
            b"a/.",
            b"a//b",
            b"a/",
            b"a\0b",
        ] {
            assert!(
                RelPath::parse(bad).is_err(),
                "{:?} accepted",
                String::from_utf8_lossy(bad)
            );
        }
        assert!(RelPath::parse(&[b'a'; MAX_PATH_LEN]).is_ok());
        assert!(RelPath::parse(&[b'a'; MAX_PATH_LEN + 1]).is_err());
    }

    #[test]
    fn parent_file_name_join() {
        let p = RelPath::parse(b"a/b/c").unwrap();
        assert_eq!(p.file_name(), b"c");
        assert_eq!(p.parent().unwrap().as_bytes(), b"a/b");
        let top = RelPath::parse(b"a").unwrap();
        assert!(top.parent().unwrap().is_root());
        assert!(RelPath::root().parent().is_none());
        assert_eq!(RelPath::root().join(b"x").unwrap().as_bytes(), b"x");
        assert_eq!(top.join(b"y").unwrap().as_bytes(), b"a/y");
        for bad in [&b""[..], b".", b"..", b"x/y", b"x\0"] {
            assert!(top.join(bad).is_err());
        }
        let comps: Vec<&[u8]> = p.components().collect();
        assert_eq!(comps, vec![&b"a"[..], b"b", b"c"]);
        assert_eq!(RelPath::root().components().count(), 0);
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..64)) {
            if let Ok(p) = RelPath::parse(&b) {
                let bytes = p.as_bytes();
                prop_assert!(!bytes.starts_with(b"/"));
                prop_assert!(!bytes.contains(&0));
                prop_assert!(bytes.len() <= MAX_PATH_LEN);
                prop_assert!(p.is_root() || p.components().all(|c| c != b".." && c != b"."));
                prop_assert!(bytes.split(|&c| c == b'/').all(|c| c != b".."));
                let _ = p.parent();
                let _ = p.join(&b);
            }
        }

        #[test]
        fn slash_heavy_paths_never_panic(
            parts in proptest::collection::vec(
                prop_oneof![Just(b"/".to_vec()), Just(b"..".to_vec()), Just(b".".to_vec()),
                            Just(b"a".to_vec()), Just(vec![0u8])], 0..12)
        ) {
            let b: Vec<u8> = parts.concat();
            if let Ok(p) = RelPath::parse(&b) {
                prop_assert!(p.is_root() || p.components().all(|c| c != b".." && c != b"."));
                prop_assert!(!p.as_bytes().starts_with(b"/"));
                prop_assert!(!p.as_bytes().contains(&0));
            }
        }
    }
}
