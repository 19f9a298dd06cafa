//! The order of a file list, which every index refers to (upstream: flist.c f_name_cmp(),
//! flist_sort_and_clean()).

use std::cmp::Ordering;

use super::FileEntry;

/// One component of a name as the comparison sees it: a directory component (carrying a
/// trailing `/`) or the final component of a non-directory.
fn components(name: &[u8], is_dir: bool) -> impl Iterator<Item = (bool, Vec<u8>)> + '_ {
    let parts: Vec<&[u8]> = name.split(|&b| b == b'/').collect();
    let last = parts.len() - 1;
    parts.into_iter().enumerate().map(move |(i, p)| {
        let dir = i < last || is_dir;
        if dir && i == last && p == b"." {
            // The top directory "." sorts before everything.
            return (false, Vec::new());
        }
        let mut v = p.to_vec();
        if dir {
            v.push(b'/');
        }
        (dir, v)
    })
}

/// Compares two names as upstream sorts file lists: from protocol 29, component by
/// component, files before directories at the same level, a directory followed by its
/// contents; before 29, plain byte order.
pub fn compare_names(
    a: &[u8],
    a_is_dir: bool,
    b: &[u8],
    b_is_dir: bool,
    protocol: i32,
) -> Ordering {
    if protocol < 29 {
        return a.cmp(b);
    }
    let mut ca = components(a, a_is_dir);
    let mut cb = components(b, b_is_dir);
    loop {
        match (ca.next(), cb.next()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some((da, xa)), Some((db, xb))) => {
                let o = da.cmp(&db).then_with(|| xa.cmp(&xb));
                if o != Ordering::Equal {
                    return o;
                }
            }
        }
    }
}

/// Sorts a received list and marks duplicates inactive: of two entries with the same name
/// the directory is kept (it may have contents), otherwise the first one. From protocol 29
/// a directory also drops an earlier non-directory of the same name. Returns the sorted
/// entries and whether each is active; indexes refer to this order.
pub fn sort_and_clean(mut entries: Vec<FileEntry>, protocol: i32) -> (Vec<FileEntry>, Vec<bool>) {
    entries.sort_by(|x, y| compare_names(&x.name, x.is_dir(), &y.name, y.is_dir(), protocol));
    let active = mark_duplicates(&entries);
    (entries, active)
}

/// Marks duplicates in a sorted list inactive (see [`sort_and_clean`]).
pub fn mark_duplicates(entries: &[FileEntry]) -> Vec<bool> {
    let mut active = vec![true; entries.len()];
    // Same names are adjacent after sorting, except a directory and a non-directory of the
    // same name, which sort apart (files first): find those by name.
    let mut seen: std::collections::HashMap<&[u8], usize> = std::collections::HashMap::new();
    for i in 0..entries.len() {
        let name = entries[i].name.as_slice();
        match seen.get(name).copied() {
            Some(j) => {
                let (keep, drop) = if entries[i].is_dir() && !entries[j].is_dir() {
                    (i, j)
                } else {
                    (j, i)
                };
                active[drop] = false;
                seen.insert(name, keep);
            }
            None => {
                seen.insert(name, i);
            }
        }
    }
    active
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, dir: bool) -> FileEntry {
        FileEntry {
            name: name.as_bytes().to_vec(),
            mode: if dir { 0o40755 } else { 0o100644 },
            ..FileEntry::default()
        }
    }

    fn sorted(names: &[(&str, bool)], protocol: i32) -> Vec<String> {
        let list = names.iter().map(|(n, d)| entry(n, *d)).collect();
        let (s, _) = sort_and_clean(list, protocol);
        s.into_iter()
            .map(|e| String::from_utf8(e.name).unwrap())
            .collect()
    }

    #[test]
    fn order_from_the_captures() {
        // b-b-push-p29: ".", "a.txt", "big.bin", "empty", "link", "sub", "sub/b.txt".
        let names = [
            ("sub/b.txt", false),
            ("sub", true),
            ("link", false),
            ("empty", false),
            (".", true),
            ("big.bin", false),
            ("a.txt", false),
        ];
        assert_eq!(
            sorted(&names, 29),
            [".", "a.txt", "big.bin", "empty", "link", "sub", "sub/b.txt"]
        );
        // b-a-push-p32 first list: ".", "a.txt", "big.bin", "empty", "link", "sub".
        assert_eq!(
            sorted(
                &[
                    (".", true),
                    ("empty", false),
                    ("link", false),
                    ("sub", true),
                    ("a.txt", false),
                    ("big.bin", false)
                ],
                32
            ),
            [".", "a.txt", "big.bin", "empty", "link", "sub"]
        );
    }

    #[test]
    fn files_before_dirs_and_dir_slash_rule() {
        assert_eq!(sorted(&[("b", true), ("c", false)], 30), ["c", "b"]);
        // The dir "a.b" sorts before the dir "a" ('.' < '/').
        assert_eq!(sorted(&[("a", true), ("a.b", true)], 30), ["a.b", "a"]);
        assert_eq!(
            sorted(&[("a/x", false), ("a", true), ("a.b", true)], 30),
            ["a.b", "a", "a/x"]
        );
        // Before 29: plain bytes.
        assert_eq!(
            sorted(&[("b", true), ("c", false), ("a.b", true)], 28),
            ["a.b", "b", "c"]
        );
    }

    #[test]
    fn duplicates_keep_the_directory() {
        let list = vec![
            entry("x", false),
            entry("x", true),
            entry("y", false),
            entry("y", false),
        ];
        let (s, active) = sort_and_clean(list, 30);
        let kept: Vec<(String, bool)> = s
            .iter()
            .zip(&active)
            .filter(|(_, a)| **a)
            .map(|(e, _)| (String::from_utf8(e.name.clone()).unwrap(), e.is_dir()))
            .collect();
        assert_eq!(kept, [("y".to_string(), false), ("x".to_string(), true)]);
    }
}
