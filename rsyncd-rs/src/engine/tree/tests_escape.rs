//! Escape attempts: planted symlinks, climbing targets and directory swaps must never
//! let an operation reach outside the root. Each test snapshots the "outside" tree
//! before and after.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, symlink};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use super::tests_util::{RESOLVERS, Scratch, rp, snapshot};
use super::{AttrTarget, FileKind, Tree, TreeError, TreeOptions, WantAttrs};

/// Every operation aimed through (or at) the planted link `link`.
fn attack_through(s: &Scratch, t: &Tree, link: &str) {
    let through = |name: &str| rp(&format!("{link}/{name}"));
    let refused = |what: &str, r: Result<(), TreeError>| {
        let e = r.expect_err(what);
        assert!(e.is_confinement(), "{what} via {link}: {e:?}");
    };
    refused("mkdir", t.mkdir(&through("x"), 0o755));
    refused("mkdir new", t.mkdir(&through("newdir"), 0o755));
    refused("create_temp", t.create_temp(&through("f"), 0o644).map(drop));
    let tmp = t.create_temp(&rp("ok"), 0o644).unwrap();
    refused("commit", t.commit(tmp, &through("f")));
    refused("unlink", t.unlink(&through("f")));
    refused("rmdir", t.rmdir(&through("x")));
    refused("remove_all inside", t.remove_all(&through("x")));
    refused("open_read", t.open_read(&through("secret")).map(drop));
    refused("open_inplace", t.open_inplace(&through("secret")).map(drop));
    refused("read_dir", t.read_dir(&rp(link)).map(drop));
    refused("lstat", t.lstat(&through("secret")).map(drop));
    refused("read_link", t.read_link(&through("secret")).map(drop));
    refused("symlink", t.symlink(b"x", &through("newlink")));
    refused("mknod", t.mknod(&through("fifo"), libc::S_IFIFO | 0o644, 0));
    fs::write(s.at("ok"), b"ok").unwrap();
    refused("hard_link to", t.hard_link(&rp("ok"), &through("hl")));
    refused(
        "hard_link from",
        t.hard_link(&through("secret"), &rp("stolen")),
    );
    refused("rename to", t.rename(&rp("ok"), &through("ok")));
    refused("rename from", t.rename(&through("secret"), &rp("stolen")));
    let want = WantAttrs {
        mode: Some(0o777),
        ..WantAttrs::default()
    };
    refused(
        "set_attrs inside",
        t.set_attrs(AttrTarget::Path(&through("secret")), &want)
            .map(drop),
    );

    // On the link itself: act on the link, never on what it points to.
    let link_path = rp(link);
    // Giving the link away needs root; unprivileged, only a group we are in would do.
    let root = nix::unistd::geteuid().is_root();
    let want = WantAttrs {
        mode: Some(0o777),
        uid: Some(4321),
        gid: root.then_some(4321),
        mtime: Some((1, 0)),
        ..WantAttrs::default()
    };
    t.set_attrs(AttrTarget::Path(&link_path), &want).unwrap();
    if nix::unistd::geteuid().is_root() && !t.options().fake_super {
        assert_eq!(
            fs::symlink_metadata(s.at(link)).unwrap().uid(),
            4321,
            "lchown, not chown"
        );
    }
    assert!(matches!(
        t.open_read(&link_path),
        Err(TreeError::WrongKind { .. })
    ));
    assert!(t.open_inplace(&link_path).is_err());
    assert_eq!(
        t.lstat(&link_path).unwrap().unwrap().kind,
        FileKind::Symlink
    );
    assert_eq!(
        t.mkdir(&link_path, 0o755).unwrap_err().raw_os_error(),
        Some(libc::EEXIST)
    );
    // Replacing the link with a committed file replaces the link.
    let mut tmp = t.create_temp(&link_path, 0o644).unwrap();
    tmp.write_all(b"replaced").unwrap();
    t.commit(tmp, &link_path).unwrap();
    assert_eq!(
        t.lstat(&link_path).unwrap().unwrap().kind,
        FileKind::Regular
    );
    t.unlink(&link_path).unwrap();
}

fn plant(s: &Scratch) {
    symlink(&s.outside, s.at("evil")).unwrap();
    symlink("..", s.at("up")).unwrap();
    fs::create_dir(s.at("deep")).unwrap();
    symlink("../../outside", s.at("deep/climb")).unwrap();
}

#[test]
fn planted_symlinks_are_never_followed() {
    for resolver in RESOLVERS {
        let s = Scratch::new();
        plant(&s);
        let before = snapshot(&s.outside);
        let t = s.tree(TreeOptions {
            resolver,
            ..TreeOptions::default()
        });
        for link in ["evil", "up", "deep/climb"] {
            attack_through(&s, &t, link);
            assert_eq!(snapshot(&s.outside), before, "{resolver:?} {link}");
        }
        // remove_all on a link removes the link only.
        symlink(&s.outside, s.at("evil2")).unwrap();
        t.remove_all(&rp("evil2")).unwrap();
        assert!(fs::symlink_metadata(s.at("evil2")).is_err());
        assert_eq!(snapshot(&s.outside), before, "{resolver:?}");
    }
}

#[test]
fn fake_super_standins_do_not_follow_a_planted_name() {
    for resolver in RESOLVERS {
        let s = Scratch::new();
        plant(&s);
        let before = snapshot(&s.outside);
        let t = s.tree(TreeOptions {
            resolver,
            fake_super: true,
            ..TreeOptions::default()
        });
        symlink(s.outside.join("secret"), s.at("plant")).unwrap();
        let exists = |r: Result<(), TreeError>| {
            assert_eq!(r.unwrap_err().raw_os_error(), Some(libc::EEXIST))
        };
        exists(t.symlink(b"target", &rp("plant")));
        exists(t.mknod(&rp("plant"), libc::S_IFCHR | 0o644, 0));
        // A real symlink under fake super still reads as a link, and lstat is not faked.
        assert_eq!(
            t.read_link(&rp("plant")).unwrap(),
            s.outside.join("secret").as_os_str().as_encoded_bytes()
        );
        assert_eq!(
            t.lstat(&rp("plant")).unwrap().unwrap().kind,
            FileKind::Symlink
        );
        let want = WantAttrs {
            mode: Some(0o4777),
            uid: Some(7),
            ..WantAttrs::default()
        };
        t.set_attrs(AttrTarget::Path(&rp("plant")), &want).unwrap();
        attack_through(&s, &t, "evil");
        assert_eq!(snapshot(&s.outside), before, "{resolver:?}");
    }
}

#[test]
fn keep_dirlinks_follows_inside_links_only() {
    for resolver in RESOLVERS {
        let s = Scratch::new();
        plant(&s);
        fs::create_dir(s.at("real")).unwrap();
        symlink("real", s.at("inlink")).unwrap();
        symlink("deep/../real", s.at("dotted")).unwrap();
        symlink("../real", s.at("deep/back")).unwrap();
        symlink("inlink", s.at("chained")).unwrap();
        symlink(s.at("real"), s.at("abs_in")).unwrap();
        let before = snapshot(&s.outside);
        let t = s.tree(TreeOptions {
            resolver,
            keep_dirlinks: true,
            ..TreeOptions::default()
        });

        for (i, via) in ["inlink", "dotted", "deep/back", "chained"]
            .iter()
            .enumerate()
        {
            let dir = rp(&format!("{via}/x{i}"));
            t.mkdir(&dir, 0o755).unwrap();
            let f = rp(&format!("{via}/f{i}"));
            let mut tmp = t.create_temp(&f, 0o644).unwrap();
            tmp.write_all(b"in").unwrap();
            t.commit(tmp, &f).unwrap();
            assert!(
                s.at("real").join(format!("x{i}")).is_dir(),
                "{resolver:?} {via}"
            );
            assert_eq!(fs::read(s.at("real").join(format!("f{i}"))).unwrap(), b"in");
            assert!(
                t.read_dir(&rp(via))
                    .unwrap()
                    .contains(&format!("f{i}").into_bytes())
            );
        }
        // The final component is still never followed.
        assert_eq!(
            t.lstat(&rp("inlink")).unwrap().unwrap().kind,
            FileKind::Symlink
        );

        for bad in ["evil", "up", "deep/climb", "abs_in"] {
            let e = t.mkdir(&rp(&format!("{bad}/x")), 0o755).unwrap_err();
            assert!(
                matches!(e, TreeError::Escape { .. }),
                "{resolver:?} {bad}: {e:?}"
            );
            let e = t.create_temp(&rp(&format!("{bad}/f")), 0o644).unwrap_err();
            assert!(e.is_confinement(), "{resolver:?} {bad}: {e:?}");
            assert!(t.open_read(&rp(&format!("{bad}/secret"))).is_err());
            assert!(t.unlink(&rp(&format!("{bad}/f"))).is_err());
        }
        assert_eq!(snapshot(&s.outside), before, "{resolver:?}");
    }
}

#[test]
fn directory_swapped_after_temp_creation_is_not_followed() {
    for resolver in RESOLVERS {
        let s = Scratch::new();
        let before = snapshot(&s.outside);
        let t = s.tree(TreeOptions {
            resolver,
            ..TreeOptions::default()
        });
        t.mkdir(&rp("d"), 0o755).unwrap();
        let mut tmp = t.create_temp(&rp("d/f"), 0o644).unwrap();
        tmp.write_all(b"payload").unwrap();
        // Swap: the directory moves aside and a symlink to outside takes its name.
        fs::rename(s.at("d"), s.at("d.moved")).unwrap();
        symlink(&s.outside, s.at("d")).unwrap();
        let want = WantAttrs {
            mode: Some(0o644),
            ..WantAttrs::default()
        };
        t.set_attrs(AttrTarget::Temp(&tmp), &want).unwrap();
        let e = t.commit(tmp, &rp("d/f")).unwrap_err();
        assert!(e.is_confinement(), "{e:?}");
        assert_eq!(snapshot(&s.outside), before, "{resolver:?}");
        assert!(
            fs::read_dir(s.at("d.moved")).unwrap().next().is_none(),
            "temp cleaned up"
        );
    }
}

#[test]
fn racing_directory_symlink_swaps_never_escape() {
    for resolver in RESOLVERS {
        let s = Scratch::new();
        let t = s.tree(TreeOptions {
            resolver,
            ..TreeOptions::default()
        });
        fs::create_dir(s.at("d_real")).unwrap();
        symlink(&s.outside, s.at("d_link")).unwrap();
        let before = snapshot(&s.outside);
        let stop = Arc::new(AtomicBool::new(false));
        let flipper = {
            let (stop, root) = (Arc::clone(&stop), s.root.clone());
            std::thread::spawn(move || {
                let (d, real, link) = (root.join("d"), root.join("d_real"), root.join("d_link"));
                while !stop.load(Ordering::Relaxed) {
                    for (from, to) in [(&real, &d), (&d, &real), (&link, &d), (&d, &link)] {
                        let _ = fs::rename(from, to);
                        std::thread::yield_now();
                    }
                }
            })
        };
        let want = WantAttrs {
            mode: Some(0o777),
            mtime: Some((1, 0)),
            ..WantAttrs::default()
        };
        let (mut committed, mut refused) = (0, 0);
        // Run until both outcomes were seen often enough (the flipper's schedule is
        // up to the OS), within a time budget.
        let started = std::time::Instant::now();
        let mut i = 0;
        while (committed < 50 || refused < 50)
            && started.elapsed() < std::time::Duration::from_secs(5)
        {
            i += 1;
            let _ = t.mkdir(&rp(&format!("d/x{i}")), 0o755);
            match t.create_temp(&rp(&format!("d/f{i}")), 0o644) {
                Ok(mut tmp) => {
                    let _ = tmp.write_all(b"race");
                    match t.commit(tmp, &rp(&format!("d/f{i}"))) {
                        Ok(()) => committed += 1,
                        Err(e) if e.is_confinement() => refused += 1,
                        Err(_) => {}
                    }
                }
                Err(e) if e.is_confinement() => refused += 1,
                Err(_) => {}
            }
            let _ = t.set_attrs(AttrTarget::Path(&rp("d/secret")), &want);
            let _ = t.set_attrs(AttrTarget::Path(&rp("d/x")), &want);
            let _ = t.unlink(&rp("d/f"));
            let _ = t.unlink(&rp("d/secret"));
            let _ = t
                .open_inplace(&rp("d/secret"))
                .map(|mut f| f.write_all(b"pwned"));
            let _ = t.remove_all(&rp("d/x"));
            let _ = t.symlink(b"y", &rp(&format!("d/l{i}")));
        }
        stop.store(true, Ordering::Relaxed);
        flipper.join().unwrap();
        assert_eq!(snapshot(&s.outside), before, "{resolver:?}");
        eprintln!("{resolver:?}: {committed} commits landed, {refused} refused mid-race");
    }
}
