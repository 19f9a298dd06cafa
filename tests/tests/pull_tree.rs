//! The module tree the pulls read, and the checks that compare a pull with it.

use std::path::Path;

use e2e::Fixture;
use e2e::tree::{
    Compare, diff_snapshots, hard_link_groups, pseudo_random, sample_tree, snapshot, write_file,
};

use crate::pull::Pulled;
use crate::push::{T0, fix_dir_times, symlink};

/// The user and group every pull tree names besides root and nobody: Debian's `daemon`
/// user (1) and `bin` group (2).
pub(crate) const DAEMON_BIN: (u32, u32) = (1, 2);

/// An id pair no name belongs to.
pub(crate) const NAMELESS: (u32, u32) = (4242, 4343);

fn chown(p: &Path, (uid, gid): (u32, u32)) {
    std::os::unix::fs::lchown(p, Some(uid), Some(gid)).expect("lchown");
}

/// The module tree the pulls read: the reference captures' sample tree and what else a
/// backup holds: files of several sizes (empty, one block, many blocks, 100 KiB and
/// 300 KiB of random data, a compressible log), nested and empty directories, odd modes
/// (0604, setuid, a sticky directory), owners by name and by bare id, hard links within
/// and across directories, symlinks to a file, to a directory and to nothing, a device
/// and a fifo, names with spaces and non-ASCII letters; every time fixed. Everything is
/// readable by the daemon's user (nobody).
pub(crate) fn pull_tree(root: &Path) {
    sample_tree(root);
    write_file(root, "empty", b"", 0o644, T0);
    write_file(root, "tiny", b"0123456789", 0o644, T0 + 1);
    write_file(root, "one-block.dat", &pseudo_random(700, 1), 0o644, T0 + 2);
    write_file(
        root,
        "blocks.dat",
        &pseudo_random(300_000, 2),
        0o644,
        T0 + 3,
    );
    write_file(
        root,
        "text.log",
        &b"a line of a log, compressible\n".repeat(2000),
        0o644,
        T0 + 4,
    );
    write_file(root, "keep.log", b"kept\n", 0o644, T0 + 5);
    write_file(root, "odd-mode", b"odd\n", 0o604, T0 + 6);
    write_file(root, "setuid.sh", b"#!/bin/sh\n", 0o4755, T0 + 7);
    write_file(root, "exec.sh", b"#!/bin/sh\necho hi\n", 0o755, T0 + 8);
    write_file(root, "name with spaces.txt", b"spaces\n", 0o644, T0 + 9);
    write_file(
        root,
        "\u{fc}n\u{ef}c\u{f6}d\u{e9}.txt",
        b"utf-8\n",
        0o644,
        T0 + 10,
    );
    write_file(root, "sub/other.txt", b"other\n", 0o644, T0 + 11);
    write_file(root, "sub/dir/deep.txt", b"deep\n", 0o644, T0 + 12);
    write_file(root, "sub/dir/more/x.txt", b"x\n", 0o644, T0 + 13);
    write_file(root, "sub/dir/more/x.log", b"x log\n", 0o644, T0 + 13);
    write_file(root, "a/b/c/file.txt", b"abc\n", 0o644, T0 + 14);
    write_file(root, "a/b/side.txt", b"side\n", 0o644, T0 + 15);
    std::fs::create_dir_all(root.join("empty-dir")).expect("mkdir");
    write_file(root, "sticky/f", b"in a sticky dir\n", 0o644, T0 + 16);
    std::fs::set_permissions(
        root.join("sticky"),
        std::os::unix::fs::PermissionsExt::from_mode(0o1777),
    )
    .expect("chmod");
    write_file(root, "owned/daemon.txt", b"daemon's\n", 0o644, T0 + 17);
    write_file(
        root,
        "owned/nameless.txt",
        b"nobody's name\n",
        0o644,
        T0 + 18,
    );
    write_file(root, "owned/nobody-only.txt", b"private\n", 0o600, T0 + 19);
    chown(&root.join("owned/daemon.txt"), DAEMON_BIN);
    chown(&root.join("owned/nameless.txt"), NAMELESS);
    let nobody = nix::unistd::User::from_name("nobody")
        .ok()
        .flatten()
        .expect("user nobody");
    chown(
        &root.join("owned/nobody-only.txt"),
        (nobody.uid.as_raw(), nobody.gid.as_raw()),
    );
    chown(&root.join("owned"), DAEMON_BIN);
    write_file(root, "hl/one", b"linked\n", 0o644, T0 + 20);
    std::fs::hard_link(root.join("hl/one"), root.join("hl/two")).expect("hard link");
    std::fs::hard_link(root.join("hl/one"), root.join("hl/three")).expect("hard link");
    std::fs::hard_link(root.join("hl/one"), root.join("sub/linked-one")).expect("hard link");
    symlink("dir1", &root.join("link-dir"));
    symlink("no-such-file", &root.join("dangling"));
    symlink("../other.txt", &root.join("sub/dir/up-link"));
    symlink("/rsyncd-munged/1.txt", &root.join("munged-link"));
    std::fs::create_dir_all(root.join("dev")).expect("mkdir");
    nix::sys::stat::mknod(
        &root.join("dev/null-copy"),
        nix::sys::stat::SFlag::S_IFCHR,
        nix::sys::stat::Mode::from_bits_truncate(0o666),
        nix::sys::stat::makedev(1, 3),
    )
    .expect("mknod");
    nix::unistd::mkfifo(
        &root.join("dev/fifo"),
        nix::sys::stat::Mode::from_bits_truncate(0o644),
    )
    .expect("mkfifo");
    e2e::tree::set_mtime(&root.join("dev/null-copy"), T0);
    e2e::tree::set_mtime(&root.join("dev/fifo"), T0);
    fix_dir_times(root, T0 + 100);
}

/// The reference config with the pull tree in its module.
pub(crate) fn reference_module(f: &mut Fixture) {
    pull_tree(&f.module_dir());
}

/// Stock's pull took the whole module: its destination equals the module tree, but for
/// `munged-link`. With `use chroot = no`, `munge symlinks` defaults to yes, and a
/// munging sender strips the `/rsyncd-munged/` prefix from the targets it sends.
pub(crate) fn is_a_copy_of_the_module(sides: &[Pulled; 2]) -> Vec<String> {
    let stock = &sides[0];
    let mut module = snapshot(&stock.module_dir);
    if let Some(link) = module.get_mut("munged-link") {
        link.content = b"1.txt".to_vec();
    }
    diff_snapshots(&module, &stock.tree, Compare::ALL, "module", "stock's pull")
        .into_iter()
        .map(|d| format!("not a copy of the module: {d}"))
        .collect()
}

/// Stock's pull made hard links (the groups are compared for every case).
pub(crate) fn made_hard_links(sides: &[Pulled; 2]) -> Vec<String> {
    if hard_link_groups(&sides[0].tree).is_empty() {
        vec!["stock made no hard links".to_string()]
    } else {
        Vec::new()
    }
}
