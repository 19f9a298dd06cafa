//! Fake super round trips against what stock rsyncd 3.5.0 left on disk
//! (`testdata/captures/b-i-push-fakesuper.server-xattrs.txt`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, lchown};
use std::path::Path;

use nix::sys::stat::makedev;

use super::tests_util::{RESOLVERS, Scratch, rp};
use super::{AttrTarget, FileKind, RelPath, STAT_XATTR, Tree, TreeOptions, WantAttrs};

const CAPTURE: &str =
    include_str!("../../../testdata/captures/b-i-push-fakesuper.server-xattrs.txt");

/// The daemon that wrote the capture ran as an unprivileged user. Run as root, we
/// give our files such an owner so "owner differs" plays out the same way; run
/// unprivileged, we are that user already.
const DAEMON_UID: u32 = 65534;

/// name → (xattr value, on-disk `ls -l` mode string, size)
fn capture() -> BTreeMap<String, (String, String, u64)> {
    CAPTURE
        .lines()
        .filter(|l| l.contains('\t'))
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            let (ls, size) = f[2].split_once(' ').unwrap();
            (
                f[0].to_string(),
                (f[1].to_string(), ls.to_string(), size.parse().unwrap()),
            )
        })
        .collect()
}

fn ls_perms(ls: &str) -> u32 {
    ls[1..]
        .chars()
        .fold(0, |acc, c| (acc << 1) | u32::from(c != '-'))
}

fn raw_xattr(p: &Path) -> Option<String> {
    xattr::get(p, STAT_XATTR)
        .unwrap()
        .map(|v| String::from_utf8(v).unwrap())
}

/// Builds the capture's entries the way a receiver would: create, then set_attrs.
fn build(s: &Scratch, t: &Tree) {
    let owned_by_daemon = |rel: &str| {
        let p = if rel == "." {
            s.root.clone()
        } else {
            s.at(rel)
        };
        if nix::unistd::geteuid().is_root() {
            lchown(p, Some(DAEMON_UID), Some(DAEMON_UID)).unwrap();
        }
    };
    let root_owned = |mode: u32| WantAttrs {
        mode: Some(mode),
        uid: Some(0),
        gid: Some(0),
        ..WantAttrs::default()
    };

    owned_by_daemon(".");
    t.set_attrs(AttrTarget::Path(&RelPath::root()), &root_owned(0o755))
        .unwrap();

    let mut tmp = t.create_temp(&rp("reg"), 0o104750).unwrap();
    assert_eq!(
        tmp.file().metadata().unwrap().mode() & 0o7777,
        0o700,
        "u+rw for fake super"
    );
    tmp.write_all(b"hello").unwrap();
    let want = WantAttrs {
        mode: Some(0o4750),
        uid: Some(1),
        gid: Some(2),
        ..WantAttrs::default()
    };
    let ch = t.set_attrs(AttrTarget::Temp(&tmp), &want).unwrap();
    assert!(ch.stat_xattr && ch.owner && ch.group);
    t.commit(tmp, &rp("reg")).unwrap();

    let devices = [
        ("cdev", libc::S_IFCHR, makedev(1, 3)),
        ("bdev", libc::S_IFBLK, makedev(8, 1)),
        ("fifo", libc::S_IFIFO, 0),
    ];
    for (name, kind, rdev) in devices {
        t.mknod(&rp(name), kind | 0o644, rdev).unwrap();
        owned_by_daemon(name);
        let want = WantAttrs {
            rdev: Some(rdev),
            ..root_owned(0o644)
        };
        t.set_attrs(AttrTarget::Path(&rp(name)), &want).unwrap();
    }

    t.symlink(b"/rsyncd-munged/reg", &rp("sym")).unwrap();
    owned_by_daemon("sym");
    t.set_attrs(AttrTarget::Path(&rp("sym")), &root_owned(0o777))
        .unwrap();

    t.mkdir(&rp("d"), 0o2770).unwrap();
    owned_by_daemon("d");
    t.set_attrs(AttrTarget::Path(&rp("d")), &root_owned(0o2770))
        .unwrap();
}

#[test]
fn matches_what_stock_rsyncd_wrote() {
    for resolver in RESOLVERS {
        let s = Scratch::new();
        let t = s.tree(TreeOptions {
            fake_super: true,
            resolver,
            ..TreeOptions::default()
        });
        build(&s, &t);
        let table = capture();
        assert_eq!(table.len(), 7);
        for (name, (value, ls, size)) in table {
            let p = if name == "." {
                s.root.clone()
            } else {
                s.at(&name)
            };
            let md = fs::symlink_metadata(&p).unwrap();
            assert_eq!(raw_xattr(&p).as_deref(), Some(value.as_str()), "{name}");
            assert_eq!(md.mode() & 0o7777, ls_perms(&ls), "{name}: on-disk perms");
            let expect_dir = ls.starts_with('d');
            assert_eq!(md.is_dir(), expect_dir, "{name}");
            assert!(
                md.is_dir() || md.is_file(),
                "{name}: only files and dirs on disk"
            );
            if !expect_dir {
                assert_eq!(md.size(), size, "{name}: size");
            }
        }
        assert_eq!(fs::read(s.at("sym")).unwrap(), b"/rsyncd-munged/reg");
        assert_eq!(
            fs::metadata(s.at("reg")).unwrap().uid(),
            nix::unistd::geteuid().as_raw(),
            "fake super never chowns"
        );
    }
}

#[test]
fn lstat_and_read_link_report_the_recorded_values() {
    let s = Scratch::new();
    let t = s.tree(TreeOptions {
        fake_super: true,
        ..TreeOptions::default()
    });
    build(&s, &t);
    let meta = |p: &str| t.lstat(&rp(p)).unwrap().unwrap();
    let root = t.lstat(&RelPath::root()).unwrap().unwrap();
    assert_eq!(
        (root.kind, root.mode, root.uid, root.gid),
        (FileKind::Dir, 0o40755, 0, 0)
    );
    let reg = meta("reg");
    assert_eq!(
        (reg.kind, reg.mode, reg.uid, reg.gid, reg.size),
        (FileKind::Regular, 0o104750, 1, 2, 5)
    );
    let c = meta("cdev");
    assert_eq!(
        (c.kind, c.mode, c.rdev),
        (FileKind::CharDev, 0o20644, makedev(1, 3))
    );
    let b = meta("bdev");
    assert_eq!((b.kind, b.rdev), (FileKind::BlockDev, makedev(8, 1)));
    assert_eq!(meta("fifo").kind, FileKind::Fifo);
    let l = meta("sym");
    assert_eq!((l.kind, l.mode, l.size), (FileKind::Symlink, 0o120777, 18));
    assert_eq!(t.read_link(&rp("sym")).unwrap(), b"/rsyncd-munged/reg");
    let d = meta("d");
    assert_eq!((d.kind, d.mode), (FileKind::Dir, 0o42770));
    // Setting the same attributes again changes nothing.
    let want = WantAttrs {
        mode: Some(0o4750),
        uid: Some(1),
        gid: Some(2),
        ..WantAttrs::default()
    };
    assert_eq!(
        t.set_attrs(AttrTarget::Path(&rp("reg")), &want).unwrap(),
        Default::default()
    );
}

#[test]
fn xattr_removed_once_disk_agrees_and_updated_when_not() {
    for resolver in RESOLVERS {
        let s = Scratch::new();
        let t = s.tree(TreeOptions {
            fake_super: true,
            resolver,
            ..TreeOptions::default()
        });
        let me = nix::unistd::geteuid().as_raw();
        let my_gid = nix::unistd::getegid().as_raw();
        let mut tmp = t.create_temp(&rp("f"), 0o100644).unwrap();
        tmp.write_all(b"x").unwrap();
        let odd = WantAttrs {
            mode: Some(0o6755),
            uid: Some(me + 1),
            gid: Some(my_gid),
            ..WantAttrs::default()
        };
        t.set_attrs(AttrTarget::Temp(&tmp), &odd).unwrap();
        t.commit(tmp, &rp("f")).unwrap();
        let value = raw_xattr(&s.at("f")).unwrap();
        assert_eq!(value, format!("106755 0,0 {}:{my_gid}", me + 1));
        assert_eq!(fs::metadata(s.at("f")).unwrap().mode() & 0o7777, 0o755);

        // Only the mode changes: the xattr is rewritten.
        let newer = WantAttrs {
            mode: Some(0o4711),
            ..odd
        };
        let ch = t.set_attrs(AttrTarget::Path(&rp("f")), &newer).unwrap();
        assert!(ch.mode && ch.stat_xattr && !ch.owner);
        assert_eq!(
            raw_xattr(&s.at("f")).unwrap(),
            format!("104711 0,0 {}:{my_gid}", me + 1)
        );

        // Plain mode and our own owner: nothing left to record, the xattr goes.
        let plain = WantAttrs {
            mode: Some(0o644),
            uid: Some(me),
            gid: Some(my_gid),
            ..WantAttrs::default()
        };
        let ch = t.set_attrs(AttrTarget::Path(&rp("f")), &plain).unwrap();
        assert!(ch.stat_xattr && ch.owner && ch.mode);
        assert_eq!(raw_xattr(&s.at("f")), None);
        let m = t.lstat(&rp("f")).unwrap().unwrap();
        assert_eq!((m.mode, m.uid), (0o100644, me));
    }
}

#[test]
fn corrupt_xattr_is_an_error_not_a_guess() {
    let s = Scratch::new();
    let t = s.tree(TreeOptions {
        fake_super: true,
        ..TreeOptions::default()
    });
    fs::write(s.at("f"), b"").unwrap();
    xattr::set(s.at("f"), STAT_XATTR, b"garbage").unwrap();
    let e = t.lstat(&rp("f")).unwrap_err();
    assert!(
        matches!(e, super::TreeError::CorruptStatXattr { .. }),
        "{e:?}"
    );
}
