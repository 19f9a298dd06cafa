//! Every `Tree` operation on a scratch tree, with both resolvers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};

use nix::sys::stat::makedev;

use super::tests_util::{RESOLVERS, Scratch, rp};
use super::{AttrTarget, FileKind, RelPath, Tree, TreeError, TreeOptions, WantAttrs};

fn each_tree(f: impl Fn(&Scratch, &Tree)) {
    for resolver in RESOLVERS {
        let s = Scratch::new();
        let t = s.tree(TreeOptions {
            resolver,
            ..TreeOptions::default()
        });
        f(&s, &t);
    }
}

#[test]
fn mkdir_lstat_read_dir() {
    each_tree(|s, t| {
        t.mkdir(&rp("d"), 0o755).unwrap();
        t.mkdir(&rp("d/e"), 0o700).unwrap();
        fs::write(s.at("d/file"), b"x").unwrap();
        let m = t.lstat(&rp("d")).unwrap().unwrap();
        assert_eq!(m.kind, FileKind::Dir);
        assert_eq!(m.mode & 0o7777, 0o755 & !nix_umask());
        let mut names = t.read_dir(&rp("d")).unwrap();
        names.sort();
        assert_eq!(names, vec![b"e".to_vec(), b"file".to_vec()]);
        let mut top = t.read_dir(&RelPath::root()).unwrap();
        top.sort();
        assert_eq!(top, vec![b"d".to_vec()]);
        assert!(t.lstat(&rp("missing")).unwrap().is_none());
        assert!(t.lstat(&rp("missing/deeper")).unwrap().is_none());
        assert_eq!(
            t.lstat(&RelPath::root()).unwrap().unwrap().kind,
            FileKind::Dir
        );
        let again = t.mkdir(&rp("d"), 0o755).unwrap_err();
        assert_eq!(again.raw_os_error(), Some(libc::EEXIST));
        assert!(matches!(
            t.read_dir(&rp("d/file")),
            Err(TreeError::Io { .. })
        ));
    });
}

/// The process umask, read without changing it (other tests run concurrently).
fn nix_umask() -> u32 {
    let status = fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("Umask:")).unwrap();
    u32::from_str_radix(line["Umask:".len()..].trim(), 8).unwrap()
}

#[test]
fn temp_write_attrs_commit() {
    each_tree(|s, t| {
        t.mkdir(&rp("d"), 0o755).unwrap();
        let mut tmp = t.create_temp(&rp("d/f.txt"), 0o100644).unwrap();
        let name = String::from_utf8(tmp.name().to_vec()).unwrap();
        assert!(
            name.starts_with(".f.txt.") && name.len() == ".f.txt.".len() + 6,
            "{name}"
        );
        let on_disk = fs::metadata(s.at("d").join(&name)).unwrap();
        assert_eq!(on_disk.mode() & 0o7777, 0o600, "(0644 | u+w) & 0700");
        tmp.write_all(b"hello world").unwrap();
        tmp.seek(SeekFrom::Start(0)).unwrap();
        let mut back = String::new();
        tmp.read_to_string(&mut back).unwrap();
        assert_eq!(back, "hello world");
        let want = WantAttrs {
            mode: Some(0o644),
            mtime: Some((1_000_000_000, 123_456_789)),
            ..WantAttrs::default()
        };
        let ch = t.set_attrs(AttrTarget::Temp(&tmp), &want).unwrap();
        assert!(ch.mode && ch.mtime && !ch.owner);
        t.commit(tmp, &rp("d/f.txt")).unwrap();
        let mut f = t.open_read(&rp("d/f.txt")).unwrap();
        let mut body = String::new();
        f.read_to_string(&mut body).unwrap();
        assert_eq!(body, "hello world");
        let m = t.lstat(&rp("d/f.txt")).unwrap().unwrap();
        assert_eq!(
            (m.mode, m.mtime, m.mtime_nsec, m.size),
            (0o100644, 1_000_000_000, 123_456_789, 11)
        );
        assert_eq!(
            t.read_dir(&rp("d")).unwrap(),
            vec![b"f.txt".to_vec()],
            "no temp left"
        );
        // Same attributes again: nothing to do.
        let ch = t
            .set_attrs(AttrTarget::Path(&rp("d/f.txt")), &want)
            .unwrap();
        assert_eq!(ch, super::AttrChanges::default());
    });
}

#[test]
fn temp_beside_top_level_and_over_existing() {
    each_tree(|s, t| {
        fs::write(s.at("f"), b"old").unwrap();
        let mut tmp = t.create_temp(&rp("f"), 0o644).unwrap();
        tmp.write_all(b"new").unwrap();
        t.commit(tmp, &rp("f")).unwrap();
        assert_eq!(fs::read(s.at("f")).unwrap(), b"new");
        assert!(matches!(
            t.create_temp(&RelPath::root(), 0o644),
            Err(TreeError::IsRoot { .. })
        ));
    });
}

#[test]
fn discard_and_drop_remove_the_temp() {
    each_tree(|_, t| {
        let tmp = t.create_temp(&rp("a"), 0o644).unwrap();
        t.discard(tmp);
        let tmp = t.create_temp(&rp(".b"), 0o644).unwrap();
        assert!(tmp.name().starts_with(b".b."));
        drop(tmp);
        assert!(t.read_dir(&RelPath::root()).unwrap().is_empty());
    });
}

#[test]
fn symlink_read_link_and_link_times() {
    each_tree(|s, t| {
        t.symlink(b"../../etc/passwd", &rp("l")).unwrap();
        assert_eq!(t.read_link(&rp("l")).unwrap(), b"../../etc/passwd");
        let m = t.lstat(&rp("l")).unwrap().unwrap();
        assert_eq!((m.kind, m.size), (FileKind::Symlink, 16));
        let want = WantAttrs {
            mtime: Some((12345, 0)),
            mode: Some(0o600),
            ..WantAttrs::default()
        };
        let ch = t.set_attrs(AttrTarget::Path(&rp("l")), &want).unwrap();
        assert!(ch.mtime && !ch.mode);
        assert_eq!(fs::symlink_metadata(s.at("l")).unwrap().mtime(), 12345);
        assert!(t.symlink(b"", &rp("l2")).is_err());
        assert!(t.symlink(b"a\0b", &rp("l2")).is_err());
    });
}

#[test]
fn mknod_fifo_socket_and_devices() {
    each_tree(|_, t| {
        t.mknod(&rp("p"), libc::S_IFIFO | 0o640, 0).unwrap();
        assert_eq!(t.lstat(&rp("p")).unwrap().unwrap().kind, FileKind::Fifo);
        t.mknod(&rp("s"), libc::S_IFSOCK | 0o644, 0).unwrap();
        assert_eq!(t.lstat(&rp("s")).unwrap().unwrap().kind, FileKind::Socket);
        assert!(matches!(
            t.mknod(&rp("r"), libc::S_IFREG | 0o644, 0),
            Err(TreeError::WrongKind { .. })
        ));
        if nix::unistd::geteuid().is_root() {
            t.mknod(&rp("c"), libc::S_IFCHR | 0o644, makedev(1, 3))
                .unwrap();
            let m = t.lstat(&rp("c")).unwrap().unwrap();
            assert_eq!((m.kind, m.rdev), (FileKind::CharDev, makedev(1, 3)));
            // chmod of a device goes through the no-follow path.
            let ch = t.set_attrs(
                AttrTarget::Path(&rp("c")),
                &WantAttrs {
                    mode: Some(0o600),
                    ..Default::default()
                },
            );
            assert!(ch.unwrap().mode);
            assert_eq!(
                t.lstat(&rp("c")).unwrap().unwrap().mode,
                libc::S_IFCHR | 0o600
            );
            // A fifo/device is never opened for reading.
            assert!(matches!(
                t.open_read(&rp("p")),
                Err(TreeError::WrongKind { .. })
            ));
        }
    });
}

#[test]
fn hard_link_unlink_rmdir_rename() {
    each_tree(|s, t| {
        fs::write(s.at("a"), b"data").unwrap();
        t.mkdir(&rp("d"), 0o755).unwrap();
        t.hard_link(&rp("a"), &rp("d/b")).unwrap();
        assert_eq!(t.lstat(&rp("a")).unwrap().unwrap().nlink, 2);
        t.rename(&rp("d/b"), &rp("c")).unwrap();
        assert_eq!(fs::read(s.at("c")).unwrap(), b"data");
        t.unlink(&rp("c")).unwrap();
        assert_eq!(t.lstat(&rp("a")).unwrap().unwrap().nlink, 1);
        assert!(t.unlink(&rp("d")).is_err(), "unlink refuses directories");
        t.rmdir(&rp("d")).unwrap();
        assert!(t.lstat(&rp("d")).unwrap().is_none());
        assert!(matches!(
            t.unlink(&RelPath::root()),
            Err(TreeError::IsRoot { .. })
        ));
        assert!(matches!(
            t.rmdir(&RelPath::root()),
            Err(TreeError::IsRoot { .. })
        ));
        assert!(matches!(
            t.rename(&RelPath::root(), &rp("z")),
            Err(TreeError::IsRoot { .. })
        ));
    });
}

#[test]
fn remove_all_deletes_a_tree_without_following_links() {
    each_tree(|s, t| {
        for d in ["top", "top/a", "top/a/b", "top/c"] {
            t.mkdir(&rp(d), 0o755).unwrap();
        }
        fs::write(s.at("top/a/b/f"), b"1").unwrap();
        fs::write(s.at("top/g"), b"2").unwrap();
        std::os::unix::fs::symlink(&s.outside, s.at("top/a/out")).unwrap();
        std::os::unix::fs::symlink(s.outside.join("secret"), s.at("top/c/sec")).unwrap();
        let before = super::tests_util::snapshot(&s.outside);
        t.remove_all(&rp("top")).unwrap();
        assert!(t.lstat(&rp("top")).unwrap().is_none());
        assert_eq!(super::tests_util::snapshot(&s.outside), before);
        fs::write(s.at("plain"), b"x").unwrap();
        t.remove_all(&rp("plain")).unwrap();
        assert!(matches!(
            t.remove_all(&RelPath::root()),
            Err(TreeError::IsRoot { .. })
        ));
    });
}

#[test]
fn open_inplace_keeps_data_and_creates() {
    each_tree(|s, t| {
        fs::write(s.at("f"), b"0123456789").unwrap();
        let mut f = t.open_inplace(&rp("f")).unwrap();
        f.seek(SeekFrom::Start(2)).unwrap();
        f.write_all(b"ab").unwrap();
        drop(f);
        assert_eq!(fs::read(s.at("f")).unwrap(), b"01ab456789");
        let mut n = t.open_inplace(&rp("new")).unwrap();
        n.write_all(b"n").unwrap();
        assert_eq!(fs::read(s.at("new")).unwrap(), b"n");
        t.mkdir(&rp("d"), 0o755).unwrap();
        assert!(matches!(
            t.open_inplace(&rp("d")),
            Err(TreeError::Io { .. })
        ));
        assert!(matches!(
            t.open_read(&rp("d")),
            Err(TreeError::WrongKind { .. })
        ));
    });
}

#[test]
fn chmod_after_chown_keeps_setuid() {
    if !nix::unistd::geteuid().is_root() {
        return;
    }
    each_tree(|s, t| {
        for target in ["temp", "path"] {
            let want = WantAttrs {
                mode: Some(0o4750),
                uid: Some(1),
                gid: Some(2),
                mtime: Some((777, 0)),
                ..WantAttrs::default()
            };
            let dest = rp("suid");
            if target == "temp" {
                let tmp = t.create_temp(&dest, 0o104750).unwrap();
                let ch = t.set_attrs(AttrTarget::Temp(&tmp), &want).unwrap();
                assert!(ch.owner && ch.group && ch.mode && ch.mtime);
                t.commit(tmp, &dest).unwrap();
            } else {
                // Already setuid and root-owned: the chown clears the bit, chmod restores it.
                fs::write(s.at("suid"), b"x").unwrap();
                std::os::unix::fs::chown(s.at("suid"), Some(0), Some(0)).unwrap();
                fs::set_permissions(s.at("suid"), fs::Permissions::from_mode(0o4750)).unwrap();
                let ch = t.set_attrs(AttrTarget::Path(&dest), &want).unwrap();
                assert!(ch.owner && ch.group);
            }
            let md = fs::metadata(s.at("suid")).unwrap();
            assert_eq!(
                (md.mode() & 0o7777, md.uid(), md.gid(), md.mtime()),
                (0o4750, 1, 2, 777),
                "{target}"
            );
            fs::remove_file(s.at("suid")).unwrap();
        }
    });
}

#[test]
fn set_attrs_on_root_and_atime() {
    each_tree(|s, t| {
        let want = WantAttrs {
            mode: Some(0o751),
            atime: Some((5, 6)),
            mtime: Some((7, 8)),
            ..Default::default()
        };
        let ch = t
            .set_attrs(AttrTarget::Path(&RelPath::root()), &want)
            .unwrap();
        assert!(ch.mode && ch.atime && ch.mtime);
        let md = fs::metadata(&s.root).unwrap();
        assert_eq!(
            (md.mode() & 0o7777, md.atime(), md.atime_nsec(), md.mtime()),
            (0o751, 5, 6, 7)
        );
    });
}

#[test]
fn errors_say_what_and_where() {
    each_tree(|_, t| {
        let e = t.open_read(&rp("nope/x")).unwrap_err();
        assert!(e.is_not_found(), "{e}");
        assert!(e.to_string().contains("nope/x"), "{e}");
        assert!(
            RelPath::parse(b"../x")
                .unwrap_err()
                .to_string()
                .contains("..")
        );
    });
}

#[test]
fn auto_uses_openat2_where_the_kernel_has_it() {
    let s = Scratch::new();
    let t = s.tree(TreeOptions::default());
    t.mkdir(&rp("d"), 0o755).unwrap();
    t.mkdir(&rp("d/e"), 0o755).unwrap();
    if !t.use_openat2.load(std::sync::atomic::Ordering::Relaxed) {
        let how = nix::fcntl::OpenHow::new().flags(nix::fcntl::OFlag::O_PATH);
        let probe = nix::fcntl::openat2(nix::fcntl::AT_FDCWD, "/", how);
        assert!(
            probe.is_err(),
            "openat2 works but the tree stopped using it"
        );
    }
}
