//! Building trees and comparing them: names, types, content, modes, times, owners,
//! symlink targets and xattrs.

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

/// One entry as the comparison sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// `f` file, `d` directory, `l` symlink, `c`/`b` device, `p` fifo, `s` socket.
    pub kind: char,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// Modification time; directories' times are compared too.
    pub mtime: i64,
    pub size: u64,
    /// File content (or symlink target).
    pub content: Vec<u8>,
    /// Extended attributes in the `user.` namespace, sorted.
    pub xattrs: Vec<(String, Vec<u8>)>,
    pub nlink: u64,
    pub ino: u64,
}

/// What to compare.
#[derive(Debug, Clone, Copy)]
pub struct Compare {
    pub mtime: bool,
    pub dir_mtime: bool,
    pub owner: bool,
    pub xattrs: bool,
    pub mode: bool,
}

impl Compare {
    /// Everything.
    pub const ALL: Compare = Compare {
        mtime: true,
        dir_mtime: true,
        owner: true,
        xattrs: true,
        mode: true,
    };

    /// Everything but the xattrs: for pushes without `-o`/`-g` under `fake super`, where
    /// stock stores uninitialised ids in `user.rsync.%stat` (an upstream bug: receiver.c
    /// reads F_OWNER without uid_ndx), so its xattrs are garbage that ours need not copy.
    pub const WITHOUT_XATTRS: Compare = Compare {
        xattrs: false,
        ..Compare::ALL
    };
}

/// Reads a whole tree (the root itself is the entry ".").
pub fn snapshot(root: &Path) -> BTreeMap<String, Entry> {
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

fn walk(root: &Path, p: &Path, out: &mut BTreeMap<String, Entry>) {
    let meta = match std::fs::symlink_metadata(p) {
        Ok(m) => m,
        // Gone while the tree is read (a receiver's temporary file renamed into place):
        // what is compared is what stays.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
        Err(e) => panic!("lstat {}: {e}", p.display()),
    };
    let ft = meta.file_type();
    use std::os::unix::fs::FileTypeExt;
    let kind = if ft.is_dir() {
        'd'
    } else if ft.is_symlink() {
        'l'
    } else if ft.is_file() {
        'f'
    } else if ft.is_char_device() {
        'c'
    } else if ft.is_block_device() {
        'b'
    } else if ft.is_fifo() {
        'p'
    } else {
        's'
    };
    let content = match kind {
        'f' => std::fs::read(p).unwrap_or_default(),
        'l' => std::fs::read_link(p)
            .map(|t| t.into_os_string().into_encoded_bytes())
            .unwrap_or_default(),
        _ => Vec::new(),
    };
    let mut xattrs: Vec<(String, Vec<u8>)> = if kind == 'l' {
        Vec::new()
    } else {
        xattr::list(p)
            .map(|names| {
                names
                    .filter_map(|n| {
                        let name = n.to_string_lossy().into_owned();
                        name.starts_with("user.")
                            .then(|| (name, xattr::get(p, &n).ok().flatten().unwrap_or_default()))
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    xattrs.sort();
    let rel = p
        .strip_prefix(root)
        .map_or_else(|_| ".".to_string(), |r| r.to_string_lossy().into_owned());
    let rel = if rel.is_empty() { ".".to_string() } else { rel };
    out.insert(
        rel,
        Entry {
            kind,
            mode: meta.permissions().mode() & 0o7777,
            uid: meta.uid(),
            gid: meta.gid(),
            mtime: meta.mtime(),
            size: if kind == 'd' { 0 } else { meta.len() },
            content,
            xattrs,
            nlink: meta.nlink(),
            ino: meta.ino(),
        },
    );
    if kind == 'd' {
        let mut names: Vec<_> = std::fs::read_dir(p)
            .expect("read_dir")
            .filter_map(Result::ok)
            .map(|e| e.path())
            .collect();
        names.sort();
        for n in names {
            walk(root, &n, out);
        }
    }
}

/// A tree as [`snapshot`] read it.
pub type Snapshot = BTreeMap<String, Entry>;

/// Compares two trees; returns a line per difference (empty when equal).
pub fn diff_trees(a: &Path, b: &Path, what: Compare) -> Vec<String> {
    diff_snapshots(
        &snapshot(a),
        &snapshot(b),
        what,
        &a.display().to_string(),
        &b.display().to_string(),
    )
}

/// Compares two snapshots (named `a_name` and `b_name` in the result); returns a line per
/// difference (empty when equal).
pub fn diff_snapshots(
    sa: &Snapshot,
    sb: &Snapshot,
    what: Compare,
    a_name: &str,
    b_name: &str,
) -> Vec<String> {
    let mut diffs = Vec::new();
    for name in sa
        .keys()
        .chain(sb.keys())
        .collect::<std::collections::BTreeSet<_>>()
    {
        match (sa.get(name), sb.get(name)) {
            (Some(x), Some(y)) => {
                let mut d = Vec::new();
                if x.kind != y.kind {
                    d.push(format!("type {} vs {}", x.kind, y.kind));
                }
                if x.content != y.content {
                    d.push(format!(
                        "content ({} vs {} bytes)",
                        x.content.len(),
                        y.content.len()
                    ));
                }
                if what.mode && x.kind != 'l' && x.mode != y.mode {
                    d.push(format!("mode {:o} vs {:o}", x.mode, y.mode));
                }
                let times = if x.kind == 'd' {
                    what.dir_mtime
                } else {
                    what.mtime && x.kind != 'l'
                };
                if times && x.mtime != y.mtime {
                    d.push(format!("mtime {} vs {}", x.mtime, y.mtime));
                }
                if what.owner && (x.uid, x.gid) != (y.uid, y.gid) {
                    d.push(format!("owner {}:{} vs {}:{}", x.uid, x.gid, y.uid, y.gid));
                }
                if what.xattrs && x.xattrs != y.xattrs {
                    d.push(format!(
                        "xattrs {:?} vs {:?}",
                        show_xattrs(&x.xattrs),
                        show_xattrs(&y.xattrs)
                    ));
                }
                if !d.is_empty() {
                    diffs.push(format!("{name}: {}", d.join(", ")));
                }
            }
            (Some(_), None) => diffs.push(format!("{name}: only in {a_name}")),
            (None, Some(_)) => diffs.push(format!("{name}: only in {b_name}")),
            (None, None) => {}
        }
    }
    diffs
}

/// The groups of names that are hard links of one another (two names or more sharing an
/// inode), each sorted, for comparing what `-H` made of a tree.
pub fn hard_link_groups(s: &Snapshot) -> Vec<Vec<String>> {
    let mut by_ino: BTreeMap<u64, Vec<String>> = BTreeMap::new();
    for (name, e) in s {
        if e.kind != 'd' {
            by_ino.entry(e.ino).or_default().push(name.clone());
        }
    }
    let mut groups: Vec<Vec<String>> = by_ino.into_values().filter(|g| g.len() > 1).collect();
    groups.sort();
    groups
}

/// `len` deterministic pseudo-random bytes (a linear congruential generator from `seed`):
/// incompressible enough that rsync's delta and compression have real work.
pub fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed;
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        x = x
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        out.extend_from_slice(&(x >> 32).to_le_bytes()[..4]);
    }
    out.truncate(len);
    out
}

fn show_xattrs(x: &[(String, Vec<u8>)]) -> Vec<String> {
    x.iter()
        .map(|(k, v)| format!("{k}={}", String::from_utf8_lossy(v)))
        .collect()
}

/// Panics with the differences when the trees differ.
pub fn assert_trees_equal(a: &Path, b: &Path, what: Compare) {
    let d = diff_trees(a, b, what);
    assert!(d.is_empty(), "trees differ:\n  {}", d.join("\n  "));
}

/// Writes a file with a mode and an mtime, creating parents.
pub fn write_file(root: &Path, rel: &str, content: &[u8], mode: u32, mtime: i64) {
    let p = root.join(rel);
    if let Some(parent) = p.parent() {
        std::fs::create_dir_all(parent).expect("mkdir -p");
    }
    std::fs::write(&p, content).expect("write file");
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).expect("chmod");
    set_mtime(&p, mtime);
}

/// Sets a path's mtime (not following symlinks).
pub fn set_mtime(p: &Path, mtime: i64) {
    let ts = nix::sys::time::TimeSpec::new(mtime, 0);
    nix::sys::stat::utimensat(
        nix::fcntl::AT_FDCWD,
        p,
        &ts,
        &ts,
        nix::sys::stat::UtimensatFlags::NoFollowSymlink,
    )
    .expect("utimensat");
}

/// The sample tree of the reference captures: files, a subdirectory, a symlink.
pub fn sample_tree(root: &Path) {
    std::fs::create_dir_all(root).expect("mkdir");
    write_file(root, "1.txt", b"test sersync\n", 0o644, 1_700_000_000);
    write_file(
        root,
        "2.txt",
        b"hello rsync protocol\n",
        0o644,
        1_700_000_000,
    );
    write_file(
        root,
        "dir1/a.txt",
        &b"alpha\n".repeat(10),
        0o644,
        1_700_000_000,
    );
    let mut big = Vec::with_capacity(102_400);
    let mut x: u32 = 20_240_101;
    for _ in 0..102_400 {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        big.push((x >> 16) as u8);
    }
    write_file(root, "random.bin", &big, 0o644, 1_700_000_000);
    std::os::unix::fs::symlink("1.txt", root.join("link-to-1")).expect("symlink");
    set_mtime(&root.join("link-to-1"), 1_700_000_000);
    set_mtime(&root.join("dir1"), 1_700_000_100);
    set_mtime(root, 1_700_000_100);
}
