//! Paths from a peer confined the way a daemon that is not chrooted at its module root
//! confines them (upstream: util1.c, sanitize_path(), called with the path edited in
//! place, as flist.c recv_file_entry() does for a received symlink target).

/// Makes `path` relative and keeps it from climbing above a point `depth` directories up:
/// leading and repeated slashes and `.` components are dropped, `..` cancels the name
/// before it, and a `..` with nothing before it to cancel is kept only while fewer than
/// `depth` have been kept at the start (then dropped). Each kept name keeps the slash
/// that followed it, so a trailing slash survives. An empty result becomes `.`.
///
/// A leading slash does not reset `depth`: upstream's in-place call skips the part of
/// sanitize_path() that roots an absolute path, so `/../x` at depth 1 is `../x`.
/// The result is never longer than `path` (or 1 byte, for `.`).
///
/// Upstream: util1.c, sanitize_path(p, p, "", depth, SP_DEFAULT).
pub fn sanitize_path(path: &[u8], depth: usize) -> Vec<u8> {
    let mut out: Vec<u8> = Vec::with_capacity(path.len().max(1));
    // `out[..floor]` holds the `..` components kept at the start; nothing cancels them.
    let mut floor = 0;
    let mut ups_left = depth;
    let mut rest = path;
    while let Some((&first, after)) = rest.split_first() {
        if first == b'/' {
            rest = after;
            continue;
        }
        let (name, slash, next) = match rest.iter().position(|&b| b == b'/') {
            Some(i) => (&rest[..i], true, &rest[i + 1..]),
            None => (rest, false, &[][..]),
        };
        rest = next;
        match name {
            b"." => {}
            b".." if out.len() > floor => {
                // Drop the last kept name and its slash (one always follows it: a name
                // came after it).
                let kept = &out[floor..out.len() - 1];
                let cut = kept.iter().rposition(|&b| b == b'/').map_or(0, |i| i + 1);
                out.truncate(floor + cut);
            }
            b".." if ups_left > 0 => {
                ups_left -= 1;
                out.extend_from_slice(b"..");
                if slash {
                    out.push(b'/');
                }
                floor = out.len();
            }
            b".." => {}
            _ => {
                out.extend_from_slice(name);
                if slash {
                    out.push(b'/');
                }
            }
        }
    }
    if out.is_empty() {
        out.push(b'.');
    }
    out
}

/// How many directories deep a cleaned file-list name lies below the transfer root: the
/// number of names in its directory part (`a/b/link` is 2, `link` is 0). The names a
/// decoder hands on have no empty, `.` or `..` components.
///
/// Upstream: util1.c, count_dir_elements() of the name's directory.
pub fn dir_depth(name: &[u8]) -> usize {
    name.iter().filter(|&&b| b == b'/').count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn s(path: &str, depth: usize) -> String {
        String::from_utf8(sanitize_path(path.as_bytes(), depth)).unwrap()
    }

    /// What stock rsyncd 3.5.0 (`use chroot = no`, `munge symlinks = no`) stored for
    /// symlinks pushed with these targets at these depths.
    #[test]
    fn stock_daemon_results() {
        let cases = [
            ("/tmp/x", 0, "tmp/x"),
            ("../../above/a_file", 0, "above/a_file"),
            ("a//b/./c", 0, "a/b/c"),
            ("/", 0, "."),
            ("/../x", 0, "x"),
            ("..", 0, "."),
            ("d1/../../x", 0, "x"),
            ("../../x", 1, "../x"),
            ("../../../x", 2, "../../x"),
            ("../../x", 2, "../../x"),
            ("./x", 1, "x"),
            ("../", 1, "../"),
        ];
        for (path, depth, want) in cases {
            assert_eq!(s(path, depth), want, "{path:?} at depth {depth}");
        }
    }

    #[test]
    fn dot_dots_climb_only_at_the_start_and_only_depth_times() {
        assert_eq!(s("a/b/..", 0), "a/");
        assert_eq!(s("a/..", 0), ".");
        assert_eq!(s("a/../..", 1), "..");
        assert_eq!(s("a/../../x", 1), "../x");
        assert_eq!(s("../a/../../b", 2), "../../b");
        assert_eq!(s("../a/../../../b", 2), "../../b");
        assert_eq!(s("../..", 1), "../");
        assert_eq!(s("/../x", 1), "../x");
        assert_eq!(s("x/../../y/", 3), "../y/");
    }

    #[test]
    fn names_that_only_look_like_dots_are_names() {
        assert_eq!(s("...", 0), "...");
        assert_eq!(s("..x/.y/x..", 0), "..x/.y/x..");
        assert_eq!(s("./.", 0), ".");
        assert_eq!(s("", 0), ".");
        assert_eq!(s("a/", 0), "a/");
        assert_eq!(s("a//", 0), "a/");
        assert_eq!(s("//a//b", 0), "a/b");
    }

    #[test]
    fn depths() {
        assert_eq!(dir_depth(b"link"), 0);
        assert_eq!(dir_depth(b"a/link"), 1);
        assert_eq!(dir_depth(b"a/b/link"), 2);
    }

    /// How many directories above its start a relative path leads at its highest point
    /// (`None` for an absolute path).
    fn climb(path: &[u8]) -> Option<usize> {
        if path.first() == Some(&b'/') {
            return None;
        }
        let (mut level, mut lowest) = (0i64, 0i64);
        for part in path.split(|&b| b == b'/') {
            match part {
                b".." => level -= 1,
                b"" | b"." => {}
                _ => level += 1,
            }
            lowest = lowest.min(level);
        }
        Some(lowest.unsigned_abs() as usize)
    }

    /// Paths made of the parts that matter (slashes, `.`, `..`, names), often.
    fn arb_path() -> impl Strategy<Value = Vec<u8>> {
        let part = prop_oneof![
            Just(b"/".to_vec()),
            Just(b".".to_vec()),
            Just(b"..".to_vec()),
            Just(b"a".to_vec()),
            Just(b"...".to_vec()),
            prop::collection::vec(any::<u8>(), 0..4),
        ];
        prop::collection::vec(part, 0..24).prop_map(|parts| parts.concat())
    }

    proptest! {
        #[test]
        fn never_absolute_and_never_above_its_depth(p in arb_path(), depth in 0usize..5) {
            let out = sanitize_path(&p, depth);
            prop_assert!(!out.is_empty());
            prop_assert!(out.len() <= p.len().max(1));
            let up = climb(&out);
            prop_assert!(up.is_some(), "absolute: {:?}", String::from_utf8_lossy(&out));
            prop_assert!(up.unwrap_or(usize::MAX) <= depth, "{:?} at depth {depth} gave {:?}",
                String::from_utf8_lossy(&p), String::from_utf8_lossy(&out));
        }

        #[test]
        fn arbitrary_bytes_never_panic(p in prop::collection::vec(any::<u8>(), 0..64), depth in 0usize..8) {
            let _ = sanitize_path(&p, depth);
        }

        #[test]
        fn sanitizing_twice_changes_nothing(p in arb_path(), depth in 0usize..5) {
            let once = sanitize_path(&p, depth);
            prop_assert_eq!(sanitize_path(&once, depth), once.clone());
        }

        #[test]
        fn a_path_inside_keeps_its_names(names in prop::collection::vec("[a-z]{1,4}", 1..6)) {
            let p = names.join("/");
            prop_assert_eq!(sanitize_path(p.as_bytes(), 0), p.into_bytes());
        }
    }
}
