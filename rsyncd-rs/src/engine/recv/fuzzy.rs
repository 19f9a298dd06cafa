//! `--fuzzy` (`-y`, `-yy`): a file with no basis of its own takes a similar file of its
//! destination directory (and with `-yy` of the basis directories' matching directories)
//! as the basis of its delta. Upstream: generator.c find_fuzzy() and recv_generator()'s
//! fuzzy_dirlist; util1.c find_filename_suffix() and fuzzy_distance().

use super::Shared;
use crate::engine::tree::{FileKind, RelPath};
use crate::protocol::flist::FileEntry;
use crate::protocol::ndx::basis;

/// One regular file a fuzzy search may pick.
#[derive(Debug, Clone)]
pub(super) struct Candidate {
    pub name: Vec<u8>,
    pub path: RelPath,
    pub meta: crate::engine::tree::Meta,
    /// Being transferred this session: its content is about to change (upstream's
    /// FLAG_FILE_SENT in the dirlist).
    sent: bool,
}

/// The candidates of the directory the generator is in, listed when a file of it first
/// needs them and dropped when the generator moves to another directory, as upstream's
/// fuzzy_dirlist[] is.
#[derive(Debug, Default)]
pub(super) struct FuzzyDirs {
    /// The file-list directory the generator is in.
    parent: Vec<u8>,
    /// Per search directory (destination first, then each basis directory), sorted by
    /// name; `None` until listed.
    lists: Option<Vec<Vec<Candidate>>>,
}

/// The last component of a file-list name.
fn base_name(name: &[u8]) -> &[u8] {
    match name.iter().rposition(|&b| b == b'/') {
        Some(i) => &name[i + 1..],
        None => name,
    }
}

/// The directory part of a file-list name (`.` for a top-level name).
fn dir_of(name: &[u8]) -> &[u8] {
    match name.iter().rposition(|&b| b == b'/') {
        Some(i) => &name[..i],
        None => b".",
    }
}

impl FuzzyDirs {
    /// Notes the entry the generator is at: a new directory forgets the old listings.
    /// Upstream: recv_generator() (`need_fuzzy_dirlist` when parent_dirname changes).
    pub fn enter(&mut self, name: &[u8]) {
        let dir = dir_of(name);
        if dir != self.parent.as_slice() {
            self.parent = dir.to_vec();
            self.lists = None;
        }
    }

    /// The best basis for new file `e` whose destination is `dest`, with its basis type
    /// (FNAMECMP_FUZZY, plus N for the N-th basis directory). Lists the directories on
    /// first use.
    pub fn find(&mut self, sh: &Shared, e: &FileEntry, dest: &RelPath) -> Option<(Candidate, u8)> {
        if self.lists.is_none() {
            self.lists = Some(list_dirs(sh, e, dest));
        }
        let lists = self.lists.as_ref()?;
        // The sender's name, also for a single file received under another name.
        let name = base_name(&e.name);
        let window = sh.opts.modify_window.unwrap_or(0);
        let size = e.size.max(0) as u64;
        best(lists, name, size, e.mtime, window).map(|(i, c)| (c.clone(), fuzzy_type(i)))
    }

    /// Marks file `e` as being transferred, so that it is no later
    /// file's basis (only once its directory was listed, as upstream).
    pub fn mark_sent(&mut self, e: &FileEntry) {
        let name = base_name(&e.name);
        if let Some(c) = self
            .lists
            .as_mut()
            .and_then(|l| l.first_mut())
            .and_then(|l| l.iter_mut().find(|c| c.name == name))
        {
            c.sent = true;
        }
    }
}

/// The basis type for search directory `i` (0 is the destination).
fn fuzzy_type(i: usize) -> u8 {
    basis::FUZZY.saturating_add(u8::try_from(i).unwrap_or(u8::MAX - basis::FUZZY))
}

/// How many directories `-y`/`-yy` search: the destination, and with `-yy` each basis
/// directory too. Upstream: options.c (`fuzzy_basis = basis_dir_cnt + 1`).
pub(super) fn levels(sh: &Shared) -> usize {
    match sh.opts.fuzzy {
        0 => 0,
        1 => 1,
        _ => 1 + sh.basis.dirs.len(),
    }
}

/// Lists the regular, non-empty files of each search directory through the tree; the
/// daemon's exclusions hold (upstream lists them with SERVER_FILTERS), the transfer's own
/// filter rules do not.
fn list_dirs(sh: &Shared, e: &FileEntry, dest: &RelPath) -> Vec<Vec<Candidate>> {
    let dir_name = dir_of(&e.name);
    let in_list_dir = sh.dest.solo.is_none() && dir_name != b".";
    let mut out = Vec::new();
    for i in 0..levels(sh) {
        let dir = if i == 0 {
            dest.parent()
        } else if in_list_dir {
            sh.basis.path(i - 1, dir_name)
        } else {
            sh.basis.dirs.get(i - 1).cloned()
        };
        out.push(dir.map(|d| list_one(sh, &d, dir_name)).unwrap_or_default());
    }
    out
}

fn list_one(sh: &Shared, dir: &RelPath, dir_name: &[u8]) -> Vec<Candidate> {
    let Ok(entries) = sh.tree.read_dir_meta(dir) else {
        return Vec::new();
    };
    let filters = sh
        .filters
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut out: Vec<Candidate> = entries
        .into_iter()
        .filter_map(|d| {
            let meta = d.meta.ok().flatten()?;
            if meta.kind != FileKind::Regular || meta.size == 0 {
                return None;
            }
            let listed = list_name(dir_name, &d.name);
            if filters.daemon_refuses(&listed, false) {
                return None;
            }
            let path = dir.join(&d.name).ok()?;
            Some(Candidate {
                name: d.name,
                path,
                meta,
                sent: false,
            })
        })
        .collect();
    // Upstream sorts its dirlist (flist_sort_and_clean()); for files of one directory
    // that is byte order, and ties go by that order below.
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// The name a file of directory `dir_name` has in the file list.
pub(super) fn list_name(dir_name: &[u8], name: &[u8]) -> Vec<u8> {
    if dir_name == b"." {
        return name.to_vec();
    }
    let mut v = dir_name.to_vec();
    v.push(b'/');
    v.extend_from_slice(name);
    v
}

/// Picks from `lists` (search directory order): the first file with the same size and
/// modification time; else the lowest distance, a later file winning a tie. Upstream:
/// generator.c, find_fuzzy().
fn best<'a>(
    lists: &'a [Vec<Candidate>],
    name: &[u8],
    size: u64,
    mtime: i64,
    window: i32,
) -> Option<(usize, &'a Candidate)> {
    let usable = |c: &&Candidate| !c.sent;
    for (i, list) in lists.iter().enumerate() {
        if let Some(c) = list
            .iter()
            .filter(usable)
            .find(|c| c.meta.size == size && same_time(c.meta.mtime, mtime, window))
        {
            return Some((i, c));
        }
    }
    let name_suf = suffix(name);
    // A distance over 25 units is no match.
    let mut lowest = 25 * UNIT;
    let mut found = None;
    for (i, list) in lists.iter().enumerate() {
        for c in list.iter().filter(usable) {
            let mut dist = distance(&c.name, name, lowest);
            // The suffixes weigh in unless the names were already too far apart.
            if dist < 0xFFFF_0000 {
                dist = dist.wrapping_add(
                    distance(suffix(&c.name), name_suf, 0xFFFF_0000).wrapping_mul(10),
                );
            }
            if dist <= lowest {
                lowest = dist;
                found = Some((i, c));
            }
        }
    }
    found
}

/// Upstream: util1.c, same_time() with no nanoseconds.
fn same_time(a: i64, b: i64, window: i32) -> bool {
    if window <= 0 {
        a == b
    } else {
        a.abs_diff(b) <= u64::from(window.unsigned_abs())
    }
}

/// The significant suffix of a file name, dot included: the last one, skipping `.bak`,
/// `.old`, `.orig` and `~N` backup endings, leading dots and a trailing `~`, and looking
/// further left past an all-digit one. Upstream: util1.c, find_filename_suffix().
pub(super) fn suffix(name: &[u8]) -> &[u8] {
    let start = name.iter().position(|&b| b != b'.').unwrap_or(name.len());
    let full = &name[start..];
    let mut len = full.len();
    let had_tilde = len > 1 && full[len - 1] == b'~';
    if had_tilde {
        len -= 1;
    }
    let mut suf: &[u8] = b"";
    // `s` is where the scan left off; the segment looked at is full[s..len].
    let mut s = len;
    while len > 1 {
        let Some(dot) = full[..s]
            .iter()
            .rposition(|&b| b == b'.')
            .filter(|&d| d > 0)
        else {
            break;
        };
        let seg_len = len - dot;
        len = dot;
        s = dot;
        // Upstream compares what follows the dot to the end of the whole name, so a
        // backup ending is skipped only when it is the last one.
        let rest = &full[dot + 1..];
        let skip = match seg_len {
            4 => rest == b"bak" || rest == b"old",
            5 => rest == b"orig",
            _ => seg_len > 2 && had_tilde && matches!(rest, [b'~', d, ..] if d.is_ascii_digit()),
        };
        if skip {
            continue;
        }
        suf = &full[dot..dot + seg_len];
        if seg_len == 1 || !suf[1..].iter().all(u8::is_ascii_digit) {
            break;
        }
        // An all-digit suffix may not be that significant: look further left.
    }
    suf
}

/// One edit of the distance.
const UNIT: u32 = 1 << 16;

/// A Levenshtein distance in units of [`UNIT`], where a changed or inserted byte also
/// adds its value as a minor part, so names that differ by a nearby character are
/// closer. Over `upper` by length alone: `0xFFFF_0001`. Upstream: util1.c,
/// fuzzy_distance().
pub(super) fn distance(s1: &[u8], s2: &[u8], upper: u32) -> u32 {
    let diff = s1.len().abs_diff(s2.len()) as u64;
    if diff * u64::from(UNIT) > u64::from(upper) {
        return 0xFFFF * UNIT + 1;
    }
    if s1.is_empty() || s2.is_empty() {
        let s = if s1.is_empty() { s2 } else { s1 };
        // Upstream sums plain (signed) chars here.
        let cost: i32 = s.iter().map(|&b| i32::from(b as i8)).sum();
        return (s.len() as u32)
            .wrapping_mul(UNIT)
            .wrapping_add_signed(cost);
    }
    let mut a: Vec<u32> = (1..=s2.len() as u32).map(|i| i * UNIT).collect();
    for (i1, &c1) in s1.iter().enumerate() {
        let mut diag = i1 as u32 * UNIT;
        let mut above = (i1 as u32 + 1) * UNIT;
        for (slot, &c2) in a.iter_mut().zip(s2) {
            let left = *slot;
            let cost = match i32::from(c1) - i32::from(c2) {
                0 => 0,
                d => UNIT + d.unsigned_abs(),
            };
            let diag_inc = diag.wrapping_add(cost);
            let left_inc = left.wrapping_add(UNIT + u32::from(c1));
            let above_inc = above.wrapping_add(UNIT + u32::from(c2));
            above = if left < above {
                left_inc.min(diag_inc)
            } else {
                above_inc.min(diag_inc)
            };
            *slot = above;
            diag = left;
        }
    }
    a.last().copied().unwrap_or(0)
}

/// Where the receiver finds the basis a request named with a fuzzy type: `xname` in the
/// directory of `dest` (type FNAMECMP_FUZZY) or in a basis directory's matching
/// directory. The name comes from the peer: like upstream's sanitize_path() on it, `..`
/// climbs only within the name and `.`, empty and leading-`/` parts go; what remains is
/// joined below the search directory and is reached through the tree, inside the module.
/// `None` when the name is empty after that or the type names no basis directory.
pub(super) fn basis_for(search_dir: Option<RelPath>, xname: &[u8]) -> Option<RelPath> {
    let clean = super::dest::sanitize(xname);
    if clean.is_root() {
        return None;
    }
    clean
        .as_bytes()
        .split(|&b| b == b'/')
        .try_fold(search_dir?, |p, part| p.join(part).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cand(name: &str, size: u64, mtime: i64) -> Candidate {
        Candidate {
            name: name.as_bytes().to_vec(),
            path: RelPath::parse(name.as_bytes()).unwrap(),
            meta: crate::engine::tree::Meta {
                size,
                mtime,
                ..test_meta()
            },
            sent: false,
        }
    }

    fn test_meta() -> crate::engine::tree::Meta {
        crate::engine::tree::Meta {
            kind: FileKind::Regular,
            mode: 0o100644,
            uid: 0,
            gid: 0,
            size: 0,
            mtime: 0,
            mtime_nsec: 0,
            atime: 0,
            atime_nsec: 0,
            rdev: 0,
            dev: 0,
            ino: 0,
            nlink: 1,
        }
    }

    #[test]
    fn suffixes() {
        for (name, want) in [
            ("report-2024.csv", ".csv"),
            ("a.tar.gz", ".gz"),
            ("noext", ""),
            (".bashrc", ""),
            ("..x.y", ".y"),
            ("x.txt.bak", ".txt"),
            ("x.txt.old", ".txt"),
            ("x.c.orig", ".c"),
            // A backup ending in the middle is not skipped (upstream compares to the end).
            ("x.bak.txt", ".txt"),
            ("x.c~", ".c"),
            ("x.c.~2~", ".c"),
            ("log.2024", ".2024"),
            ("log.txt.1", ".txt"),
            ("a.b.", "."),
        ] {
            assert_eq!(
                String::from_utf8_lossy(suffix(name.as_bytes())),
                want,
                "{name}"
            );
        }
    }

    #[test]
    fn distances() {
        assert_eq!(distance(b"abc", b"abc", 25 * UNIT), 0);
        // One substitution: a unit plus the byte difference.
        assert_eq!(distance(b"abc", b"abd", 25 * UNIT), UNIT + 1);
        assert_eq!(distance(b"abd", b"abc", 25 * UNIT), UNIT + 1);
        // One insertion: a unit plus the inserted byte.
        assert_eq!(distance(b"abc", b"abcd", 25 * UNIT), UNIT + u32::from(b'd'));
        // Too different in length to beat the limit.
        assert_eq!(distance(b"a", b"abcdef", 2 * UNIT), 0xFFFF_0001);
        assert_eq!(distance(b"", b"ab", 25 * UNIT), 2 * UNIT + 97 + 98);
        assert_eq!(distance(b"", b"", 25 * UNIT), 0);
    }

    #[test]
    fn same_size_and_time_wins_over_a_closer_name() {
        let lists = vec![vec![
            cand("b.dat", 10, 5),
            cand("report-2024.csv", 99, 1),
            cand("zzz", 100, 7),
        ]];
        let (i, c) = best(&lists, b"report-2025.csv", 100, 7, 0).unwrap();
        assert_eq!((i, c.name.as_slice()), (0, &b"zzz"[..]));
        let (_, c) = best(&lists, b"report-2025.csv", 100, 8, 0).unwrap();
        assert_eq!(c.name, b"report-2024.csv");
        // A window lets a second's difference match.
        let (_, c) = best(&lists, b"report-2025.csv", 100, 8, 1).unwrap();
        assert_eq!(c.name, b"zzz");
    }

    #[test]
    fn far_names_and_sent_files_are_no_match() {
        let mut lists = vec![vec![cand("completely-different-name.bin", 10, 5)]];
        assert!(best(&lists, b"x.txt", 1, 1, 0).is_none());
        lists[0].push(cand("x.txx", 10, 5));
        assert_eq!(best(&lists, b"x.txt", 1, 1, 0).unwrap().1.name, b"x.txx");
        lists[0][1].sent = true;
        assert!(best(&lists, b"x.txt", 1, 1, 0).is_none());
    }

    #[test]
    fn suffix_match_counts_and_basis_dirs_come_after() {
        // Same distance by name; the matching suffix decides.
        let lists = vec![vec![cand("data.csv", 1, 1), cand("data.xyz", 1, 1)]];
        assert_eq!(
            best(&lists, b"data.cs", 9, 9, 0).unwrap().1.name,
            b"data.csv"
        );
        // A size/time match in the destination beats one in a basis directory; in a basis
        // directory it beats a name match in the destination.
        let lists = vec![
            vec![cand("y.dat", 5, 5)],
            vec![cand("x.dat", 100, 7), cand("y.dat", 100, 7)],
        ];
        let (i, c) = best(&lists, b"y.dat", 100, 7, 0).unwrap();
        assert_eq!((i, c.name.as_slice()), (1, &b"x.dat"[..]));
        assert_eq!(fuzzy_type(i), basis::FUZZY + 1);
        // With equal distances the later one wins (upstream's `<=`).
        let (i, _) = best(&lists, b"y.dat", 1, 1, 0).unwrap();
        assert_eq!(i, 1);
    }

    #[test]
    fn a_peer_named_basis_stays_below_its_directory() {
        let dir = Some(RelPath::parse(b"dest/sub").unwrap());
        let p = |x: &[u8]| basis_for(dir.clone(), x).map(|p| p.as_bytes().to_vec());
        assert_eq!(p(b"a.dat"), Some(b"dest/sub/a.dat".to_vec()));
        assert_eq!(
            p(b"../../../etc/passwd"),
            Some(b"dest/sub/etc/passwd".to_vec())
        );
        assert_eq!(p(b"/etc/shadow"), Some(b"dest/sub/etc/shadow".to_vec()));
        assert_eq!(p(b"a/../../b"), Some(b"dest/sub/b".to_vec()));
        assert_eq!(p(b".."), None);
        assert_eq!(p(b""), None);
        assert_eq!(basis_for(None, b"a"), None);
    }
}
