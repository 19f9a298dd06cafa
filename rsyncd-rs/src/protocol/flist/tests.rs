//! File-list codec tests against the captured sessions (`testdata/captures/b-*`).

use super::*;
use crate::protocol::testutil::deframe;
use crate::protocol::{Decoded, WireError};
use proptest::prelude::*;

fn cfg(protocol: i32) -> FlistConfig {
    FlistConfig {
        protocol,
        varint_flags: protocol >= 30,
        inc_recurse: protocol >= 30,
        safe_flist: protocol >= 30,
        preserve_uid: true,
        preserve_gid: true,
        preserve_links: true,
        preserve_devices: true,
        preserve_specials: true,
        id0_names: protocol >= 30,
        ..FlistConfig::default()
    }
}

/// Decodes a whole list; returns the entries, the io_error and the bytes used.
fn decode_list(
    dec: &mut FlistDecoder,
    data: &[u8],
    ndx_start: i32,
) -> (Vec<FileEntry>, i32, usize) {
    let mut pos = 0;
    let mut entries = Vec::new();
    loop {
        match dec.decode(&data[pos..], &entries, ndx_start).unwrap() {
            Decoded::Done {
                value: FlistItem::Entry(e),
                used,
            } => {
                entries.push(*e);
                pos += used;
            }
            Decoded::Done {
                value: FlistItem::End { io_error },
                used,
            } => return (entries, io_error, pos + used),
            Decoded::Needed(n) => panic!("needed {n} more at {pos}"),
        }
    }
}

fn names(entries: &[FileEntry]) -> Vec<String> {
    entries
        .iter()
        .map(|e| String::from_utf8_lossy(&e.name).into_owned())
        .collect()
}

/// Re-encodes entries with the sender's rules and checks the bytes equal the capture.
fn reencode(c: FlistConfig, entries: &[FileEntry], ndx_start: i32, expected: &[u8]) {
    let mut enc = FlistEncoder::new(c.clone());
    let mut out = Vec::new();
    for e in entries {
        enc.encode(e, ndx_start, c.inc_recurse, &mut out).unwrap();
    }
    enc.end(0, &mut out);
    assert_eq!(
        out, expected,
        "re-encoded file list differs from the capture"
    );
}

#[test]
fn push_p32_first_list() {
    let c2s = include_bytes!("../../../testdata/captures/b-a-push-p32-c2s.bin");
    let data = deframe(c2s, 122);
    let mut dec = FlistDecoder::new(cfg(32));
    let (entries, io_error, used) = decode_list(&mut dec, &data, 1);
    assert_eq!(io_error, 0);
    assert_eq!(
        names(&entries),
        [".", "empty", "link", "sub", "a.txt", "big.bin"]
    );
    let dot = &entries[0];
    assert_eq!(
        (dot.mode, dot.size, dot.mtime, dot.mtime_nsec),
        (0o40755, 4096, 1_700_000_500, 123_456_789)
    );
    assert_eq!(
        (dot.uid, dot.user_name.as_deref()),
        (Some(1), Some(&b"daemon"[..]))
    );
    assert_eq!(entries[2].link_target.as_deref(), Some(&b"a.txt"[..]));
    assert_eq!((entries[2].uid, entries[2].gid), (Some(2), Some(2)));
    assert_eq!(entries[5].size, 204_800);
    assert_eq!(entries[5].mode, 0o100644);
    assert!(dot.is_content_dir(32) && entries[3].is_content_dir(32));
    reencode(cfg(32), &entries, 1, &data[..used]);
    // The sub-list follows as ndx -102 (ff 65), then one entry with the same state.
    assert_eq!(&data[used..used + 2], [0xff, 0x65]);
    let (sub, _, _) = decode_list(&mut dec, &data[used + 2..], 8);
    assert_eq!(names(&sub), ["sub/b.txt"]);
    assert_eq!(
        (sub[0].size, sub[0].mode, sub[0].uid),
        (51, 0o100644, Some(1))
    );
    let (sorted, active) = sort_and_clean(entries, 32);
    assert_eq!(
        names(&sorted),
        [".", "a.txt", "big.bin", "empty", "link", "sub"]
    );
    assert!(active.iter().all(|a| *a));
}

#[test]
fn push_p29_raw_list_and_id_lists() {
    let c2s = include_bytes!("../../../testdata/captures/b-b-push-p29-c2s.bin");
    let data = &c2s[80..];
    let mut c = cfg(29);
    c.id0_names = false;
    let mut dec = FlistDecoder::new(c.clone());
    let (entries, _, used) = decode_list(&mut dec, data, 0);
    assert_eq!(
        names(&entries),
        [".", "empty", "link", "sub", "a.txt", "big.bin", "sub/b.txt"]
    );
    assert_eq!(entries[3].xflags, xmit::EXTENDED_FLAGS);
    reencode(c.clone(), &entries, 0, &data[..used]);
    let Decoded::Done {
        value: uids,
        used: u1,
    } = decode_id_list(&data[used..], 29, false).unwrap()
    else {
        panic!("uid list")
    };
    assert_eq!(uids, [(2, b"bin".to_vec()), (1, b"daemon".to_vec())]);
    let Decoded::Done {
        value: gids,
        used: u2,
    } = decode_id_list(&data[used + u1..], 29, false).unwrap()
    else {
        panic!("gid list")
    };
    assert_eq!(gids, uids);
    let mut out = Vec::new();
    encode_id_list(&mut out, 29, &uids, false).unwrap();
    assert_eq!(out, &data[used..used + u1]);
    // Then the protocol-29 io_error int32.
    assert_eq!(&data[used + u1 + u2..used + u1 + u2 + 4], [0, 0, 0, 0]);
}

#[test]
fn push_p27_one_byte_flags() {
    let c2s = include_bytes!("../../../testdata/captures/b-h-push-p27-c2s.bin");
    let data = &c2s[82..];
    let mut c = cfg(27);
    c.id0_names = false;
    let mut dec = FlistDecoder::new(c.clone());
    let (entries, _, used) = decode_list(&mut dec, data, 0);
    assert_eq!(
        names(&entries),
        [".", "empty", "link", "sub", "a.txt", "sub/b.txt"]
    );
    assert_eq!(entries[3].xflags, xmit::LONG_NAME);
    reencode(c, &entries, 0, &data[..used]);
}

#[test]
fn hard_links_p32_abbreviated_follower() {
    let c2s = include_bytes!("../../../testdata/captures/b-e-push-hardlinks-c2s.bin");
    let data = deframe(c2s, 123);
    let mut c = cfg(32);
    c.preserve_hard_links = true;
    let mut dec = FlistDecoder::new(c.clone());
    let (entries, _, used) = decode_list(&mut dec, &data, 1);
    assert_eq!(names(&entries), [".", "x", "z", "y"]);
    assert_eq!(entries[1].hard_link, Some(HardLink::First));
    assert_eq!(entries[3].hard_link, Some(HardLink::Follower(2)));
    assert_eq!((entries[3].size, entries[3].mode), (20, 0o100644));
    reencode(c, &entries, 1, &data[..used]);
}

#[test]
fn hard_links_p29_dev_ino() {
    let c2s = include_bytes!("../../../testdata/captures/b-e-push-hardlinks-p29-c2s.bin");
    let mut c = cfg(29);
    c.preserve_hard_links = true;
    c.id0_names = false;
    // The list starts right after the (empty) argument terminator; find it from the decode.
    let decoded = include_str!("../../../testdata/captures/b-e-push-hardlinks-p29.decoded.txt");
    let start: usize = decoded
        .lines()
        .find(|l| l.trim_start().starts_with("@") && l.contains("#0 "))
        .and_then(|l| l.trim_start()[1..].split(':').next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    let data = &c2s[start..];
    let mut dec = FlistDecoder::new(c.clone());
    let (entries, _, used) = decode_list(&mut dec, data, 0);
    let linked: Vec<_> = entries.iter().filter_map(|e| e.hard_link.clone()).collect();
    assert!(linked.len() >= 2, "{entries:?}");
    assert!(
        matches!(
            linked[0],
            HardLink::DevIno {
                dev: 65025,
                ino: 10_012_970
            }
        ),
        "{linked:?}"
    );
    reencode(c, &entries, 0, &data[..used]);
}

#[test]
fn devices_and_specials() {
    let c2s = include_bytes!("../../../testdata/captures/b-i-push-fakesuper-c2s.bin");
    let data = deframe(c2s, 114);
    let mut dec = FlistDecoder::new(cfg(32));
    let (entries, _, used) = decode_list(&mut dec, &data, 1);
    assert_eq!(
        names(&entries),
        [".", "cdev", "reg", "fifo", "bdev", "sym", "d"]
    );
    assert_eq!(entries[1].rdev, Some((1, 3)));
    assert_eq!(entries[4].rdev, Some((8, 1)));
    assert_eq!(entries[3].rdev, None);
    assert_eq!(entries[2].mode, 0o104750);
    reencode(cfg(32), &entries, 1, &data[..used]);
}

#[test]
fn hostile_entries_are_refused() {
    let mut dec = FlistDecoder::new(cfg(32));
    // xflags 0x04, name "../x", then size etc.
    let mut bad = vec![0x04, 4];
    bad.extend_from_slice(b"../x");
    bad.extend_from_slice(&[0, 0, 0]);
    assert!(matches!(
        dec.decode(&bad, &[], 1),
        Err(FlistError::UnsafeName(_))
    ));
    let mut abs = vec![0x04, 2];
    abs.extend_from_slice(b"/x");
    assert!(matches!(
        dec.decode(&abs, &[], 1),
        Err(FlistError::UnsafeName(_))
    ));
    // "." that is not a directory.
    let mut enc = FlistEncoder::new(cfg(32));
    let mut out = Vec::new();
    let e = FileEntry {
        name: b".".to_vec(),
        mode: 0o100644,
        ..FileEntry::default()
    };
    enc.encode(&e, 1, false, &mut out).unwrap();
    assert!(matches!(
        FlistDecoder::new(cfg(32)).decode(&out, &[], 1),
        Err(FlistError::DotNotDir(_))
    ));
    // A hard-link reference past the list.
    let mut c = cfg(32);
    c.preserve_hard_links = true;
    let mut hl = vec![0x82, 0x02, 1, b'y', 9];
    hl.push(0);
    assert!(matches!(
        FlistDecoder::new(c).decode(&hl, &[], 1),
        Err(FlistError::BadHardLink(9))
    ));
}

#[test]
fn an_overlong_name_is_upstreams_overflow() {
    // XMIT_LONG_NAME|SAME_UID|SAME_GID, then a varint length of 0x7fffff (upstream's
    // recv_file_entry() guard, as rsync's proto-sender-selftest sends it at protocol 30).
    let bad = [0x58, 0xe0, 0xff, 0xff, 0x7f, b'x', b'x'];
    let err = FlistDecoder::new(cfg(30)).decode(&bad, &[], 0).unwrap_err();
    assert_eq!(
        err.to_string(),
        "overflow: xflags=0x58 l1=0 l2=8388607 lastname="
    );
    // MAXPATHLEN (varint 0x1000) is refused; one less is read (and then wants more).
    let at_limit = [0x58, 0x90, 0x00];
    assert!(matches!(
        FlistDecoder::new(cfg(30)).decode(&at_limit, &[], 0),
        Err(FlistError::NameOverflow { l2: 4096, .. })
    ));
    let mut fits = vec![0x58, 0x8f, 0xff];
    fits.extend(std::iter::repeat_n(b'a', 4095));
    assert!(matches!(
        FlistDecoder::new(cfg(30)).decode(&fits, &[], 0),
        Ok(Decoded::Needed(_))
    ));
}

fn arb_entry() -> impl Strategy<Value = FileEntry> {
    (
        "[a-z]{1,8}(/[a-z]{1,8}){0,2}",
        prop::sample::select(vec![
            0o100644u32,
            0o100755,
            0o40755,
            0o120777,
            0o20644,
            0o10644,
        ]),
        0i64..1 << 40,
        0i64..1 << 33,
        0u32..1_000_000_000,
        0u32..70_000,
        0u32..70_000,
    )
        .prop_map(|(name, mode, size, mtime, nsec, uid, gid)| FileEntry {
            name: name.into_bytes(),
            mode,
            size: if mode::is_reg(mode) { size } else { 0 },
            mtime,
            mtime_nsec: nsec,
            uid: Some(uid),
            gid: Some(gid),
            rdev: mode::is_device(mode).then_some((uid % 4096, gid)),
            link_target: mode::is_lnk(mode).then(|| b"target".to_vec()),
            ..FileEntry::default()
        })
}

proptest! {
    #[test]
    fn encode_then_decode_is_identity(entries in prop::collection::vec(arb_entry(), 1..20), protocol in 27i32..=32) {
        let c = cfg(protocol);
        let mut enc = FlistEncoder::new(c.clone());
        let mut out = Vec::new();
        for e in &entries {
            enc.encode(e, 1, false, &mut out).unwrap();
        }
        enc.end(0, &mut out);
        let mut dec = FlistDecoder::new(c);
        let (got, _, used) = decode_list(&mut dec, &out, 1);
        prop_assert_eq!(used, out.len());
        for (g, e) in got.iter().zip(&entries) {
            prop_assert_eq!(&g.name, &e.name);
            prop_assert_eq!(g.mode, e.mode);
            prop_assert_eq!(g.size, e.size);
            if protocol >= 30 { prop_assert_eq!(g.mtime, e.mtime); } else { prop_assert_eq!(g.mtime, e.mtime & 0xffff_ffff); }
            prop_assert_eq!(g.uid, e.uid);
            prop_assert_eq!(g.gid, e.gid);
            prop_assert_eq!(&g.link_target, &e.link_target);
            if mode::is_device(e.mode) { prop_assert_eq!(g.rdev, e.rdev); }
            if protocol >= 31 { prop_assert_eq!(g.mtime_nsec, e.mtime_nsec); }
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(b in prop::collection::vec(any::<u8>(), 0..256), protocol in 27i32..=32) {
        let mut c = cfg(protocol);
        c.preserve_hard_links = true;
        c.preserve_atimes = true;
        c.flist_csum_len = 16;
        let mut dec = FlistDecoder::new(c);
        let mut pos = 0;
        let mut entries = Vec::new();
        while pos < b.len() {
            match dec.decode(&b[pos..], &entries, 1) {
                Ok(Decoded::Done { value: FlistItem::Entry(e), used }) => { entries.push(*e); pos += used; }
                _ => break,
            }
        }
        let _ = decode_id_list(&b, protocol, true);
    }

    #[test]
    fn split_input_gives_the_same_result(entries in prop::collection::vec(arb_entry(), 1..5), cut in 0usize..64) {
        let c = cfg(32);
        let mut enc = FlistEncoder::new(c.clone());
        let mut out = Vec::new();
        for e in &entries { enc.encode(e, 1, false, &mut out).unwrap(); }
        let cut = cut.min(out.len());
        let mut dec = FlistDecoder::new(c);
        // A prefix either decodes a whole first entry or asks for more; never an error.
        match dec.decode(&out[..cut], &[], 1) {
            Ok(Decoded::Needed(_)) => {}
            Ok(Decoded::Done { used, .. }) => prop_assert!(used <= cut),
            Err(e) => prop_assert!(false, "{e}"),
        }
    }
}

/// A session's file-list settings, any combination (the decoder must cope with all of
/// them, even those no peer negotiates).
fn arb_config() -> impl Strategy<Value = FlistConfig> {
    (
        20i32..=32,
        any::<[bool; 17]>(),
        prop::sample::select(vec![0usize, 2, 16, 20, 32, 64]),
    )
        .prop_map(|(protocol, f, csum)| FlistConfig {
            protocol,
            varint_flags: f[0],
            inc_recurse: f[1],
            safe_flist: f[2],
            preserve_uid: f[3],
            preserve_gid: f[4],
            preserve_links: f[5],
            preserve_devices: f[6],
            preserve_specials: f[7],
            preserve_hard_links: f[8],
            preserve_atimes: f[9],
            preserve_crtimes: f[10],
            relative: f[11],
            flist_csum_len: csum,
            id0_names: f[12],
            missing_args_delete: f[13],
            link_targets: match (f[14], f[15]) {
                (true, _) => LinkTargets::Munged,
                (false, true) => LinkTargets::Sanitized,
                (false, false) => LinkTargets::AsSent,
            },
            preserve_xattrs: f[16],
            // ACL blocks change what the receiver holds (condensed), so they have their
            // own tests (tests_acls.rs).
            preserve_acls: false,
            acl_fake_super: false,
            numeric_ids: false,
        })
}

/// Everything an entry carries at `protocol` when every preserve option is on: long names,
/// devices, symlinks, atimes, crtimes, `--checksum` sums, inline names and hard links.
fn arb_full_entry(protocol: i32) -> impl Strategy<Value = FileEntry> {
    let name = prop_oneof![
        4 => "[a-z]{1,8}(/[a-z]{1,8}){0,2}",
        1 => "[a-z]{250,300}",
    ];
    let mode = prop::sample::select(vec![
        0o100644u32,
        0o104750,
        0o40755,
        0o120777,
        0o20644,
        0o60640,
    ]);
    let times = (
        0i64..1 << 31,
        0u32..1_000_000_000,
        0i64..1 << 33,
        prop::option::of(0i64..1 << 33),
    );
    let ids = (
        any::<u32>(),
        any::<u32>(),
        prop::option::of("[a-z]{1,12}"),
        prop::option::of("[a-z]{1,12}"),
    );
    let rest = (
        0i64..1 << 40,
        (0u32..4096, 0u32..1 << 20),
        prop::collection::vec(any::<u8>(), 0..300),
        any::<[u8; 16]>(),
        0u8..3,
        (any::<i64>(), any::<i64>()),
    );
    // A few lists, so that later entries name earlier ones by cache index.
    let xattrs = prop::sample::select(vec![
        vec![],
        vec![("user.a", 3usize)],
        vec![("security.selinux", 20), ("user.long", 200)],
        vec![("trusted.x", 0), ("user.a", 33), ("user.b", 32)],
    ]);
    (name, mode, times, ids, (rest, xattrs)).prop_map(
        move |(name, mode, times, ids, (rest, xattrs))| {
            let (mtime, nsec, atime, crtime) = times;
            let (uid, gid, user, group) = ids;
            let (size, rdev, target, sum, link, (dev, ino)) = rest;
            let hard_link = match (link, protocol >= 30) {
                (1, true) => Some(HardLink::First),
                (1 | 2, false) if protocol >= 28 => Some(HardLink::DevIno { dev, ino }),
                _ => None,
            };
            FileEntry {
                name: name.into_bytes(),
                mode,
                size: if mode::is_reg(mode) { size } else { 0 },
                mtime,
                mtime_nsec: if protocol >= 31 { nsec } else { 0 },
                atime: (!mode::is_dir(mode)).then_some(atime),
                crtime: Some(crtime.unwrap_or(mtime)),
                uid: Some(uid),
                gid: Some(gid),
                user_name: user.map(String::into_bytes),
                group_name: group.map(String::into_bytes),
                rdev: mode::is_device(mode).then_some(rdev),
                link_target: mode::is_lnk(mode).then_some(target),
                hard_link,
                checksum: mode::is_reg(mode).then(|| sum.to_vec()),
                xflags: 0,
                xattrs: (protocol >= 30).then(|| {
                    let items = xattrs
                        .iter()
                        .map(|&(n, len)| {
                            crate::protocol::xattr::XattrItem::new(n.into(), &vec![b'v'; len])
                        })
                        .collect();
                    std::sync::Arc::new(crate::protocol::xattr::XattrList(items))
                }),
                acls: None,
            }
        },
    )
}

/// Every preserve option the protocol allows: like upstream, atimes need protocol 30 and
/// crtimes the varint flags (their XMIT bits do not fit 16 bits).
fn full_config(protocol: i32, varint_flags: bool, inc_recurse: bool) -> FlistConfig {
    let varint_flags = varint_flags && protocol >= 30;
    FlistConfig {
        protocol,
        varint_flags,
        inc_recurse: inc_recurse && protocol >= 30,
        safe_flist: protocol >= 30,
        preserve_uid: true,
        preserve_gid: true,
        preserve_links: true,
        preserve_devices: true,
        preserve_specials: true,
        preserve_hard_links: protocol >= 28,
        preserve_atimes: protocol >= 30,
        preserve_crtimes: varint_flags,
        flist_csum_len: 16,
        id0_names: protocol >= 30,
        preserve_xattrs: protocol >= 30,
        ..FlistConfig::default()
    }
}

fn arb_full_list() -> impl Strategy<Value = (i32, bool, bool, Vec<FileEntry>)> {
    (27i32..=32, any::<bool>(), any::<bool>()).prop_flat_map(|(p, v, inc)| {
        (
            Just(p),
            Just(v),
            Just(inc),
            prop::collection::vec(arb_full_entry(p), 1..12),
        )
    })
}

/// The id lists of a session: ids with names, id 0 maybe among them.
fn arb_ids() -> impl Strategy<Value = Vec<(u32, Vec<u8>)>> {
    prop::collection::vec(
        (
            prop_oneof![Just(0u32), any::<u32>()],
            prop::collection::vec(any::<u8>(), 0..=255),
        ),
        0..20,
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn full_entries_round_trip((protocol, varint, inc, entries) in arb_full_list()) {
        let c = full_config(protocol, varint, inc);
        let send_names = c.inc_recurse;
        let (c_atimes, c_crtimes) = (c.preserve_atimes, c.preserve_crtimes);
        let mut enc = FlistEncoder::new(c.clone());
        let mut out = Vec::new();
        for e in &entries {
            enc.encode(e, 1, send_names, &mut out).unwrap();
        }
        enc.end(0, &mut out);
        let mut dec = FlistDecoder::new(c);
        let (got, io_error, used) = decode_list(&mut dec, &out, 1);
        prop_assert_eq!((used, io_error, got.len()), (out.len(), 0, entries.len()));
        let mut prev_ids: Option<(u32, u32)> = None;
        for (g, e) in got.iter().zip(&entries) {
            let mut want = e.clone();
            // Inline names ride only with an id that changed, in incremental lists.
            let (uid, gid) = (e.uid.unwrap_or(0), e.gid.unwrap_or(0));
            if !send_names || prev_ids.is_some_and(|(u, _)| u == uid) {
                want.user_name = None;
            }
            if !send_names || prev_ids.is_some_and(|(_, g)| g == gid) {
                want.group_name = None;
            }
            prev_ids = Some((uid, gid));
            want.xflags = g.xflags;
            if !c_atimes {
                want.atime = None;
            }
            if !c_crtimes {
                want.crtime = None;
            }
            prop_assert_eq!(g, &want);
        }
    }

    #[test]
    fn id_lists_round_trip(ids in arb_ids(), protocol in 27i32..=32, id0_names: bool, cut in 0usize..4000) {
        let mut out = Vec::new();
        encode_id_list(&mut out, protocol, &ids, id0_names).unwrap();
        let mut want: Vec<(u32, Vec<u8>)> = ids.iter().filter(|(id, _)| *id != 0).cloned().collect();
        if id0_names {
            let zero = ids.iter().find(|(id, _)| *id == 0).map(|(_, n)| n.clone());
            want.push((0, zero.unwrap_or_default()));
        }
        prop_assert_eq!(
            decode_id_list(&out, protocol, id0_names),
            Ok(Decoded::Done { value: want, used: out.len() })
        );
        let cut = cut.min(out.len());
        if cut < out.len() {
            match decode_id_list(&out[..cut], protocol, id0_names) {
                Ok(Decoded::Needed(n)) => prop_assert!(n > 0 && cut + n <= out.len()),
                other => prop_assert!(false, "{other:?}"),
            }
        }
    }

    #[test]
    fn any_config_never_panics(c in arb_config(), b in prop::collection::vec(any::<u8>(), 0..512)) {
        // Lists one after another, as a session receives them (the decoder's state carries
        // over), then the id lists.
        let mut dec = FlistDecoder::new(c.clone());
        let mut pos = 0;
        let mut entries = Vec::new();
        while pos < b.len() {
            match dec.decode(&b[pos..], &entries, 1) {
                Ok(Decoded::Done { value, used }) => {
                    prop_assert!(used > 0 && pos + used <= b.len());
                    pos += used;
                    match value {
                        FlistItem::Entry(e) => {
                            prop_assert!(e.name.len() < MAXPATHLEN);
                            prop_assert!(e.link_target.as_ref().is_none_or(|t| t.len() < MAXPATHLEN + 16));
                            entries.push(*e);
                        }
                        FlistItem::End { io_error } => {
                            prop_assert_eq!(io_error & !IOERR_VALID_MASK, 0);
                            entries.clear();
                        }
                    }
                }
                _ => break,
            }
        }
        let _ = decode_id_list(&b[pos..], c.protocol, c.id0_names);
    }

    #[test]
    fn id_list_decoders_agree(b in prop::collection::vec(any::<u8>(), 0..300), protocol in 27i32..=32, id0_names: bool) {
        // Entry by entry gives what the whole-list decoder gives.
        let whole = decode_id_list(&b, protocol, id0_names);
        let mut dec = IdListDecoder::new(protocol, id0_names);
        let mut pos = 0;
        let stepped = loop {
            match dec.decode(&b[pos..]) {
                Ok(Decoded::Done { value: Some(list), used }) => {
                    break Ok(Decoded::Done { value: list, used: pos + used });
                }
                Ok(Decoded::Done { value: None, used }) => pos += used,
                Ok(Decoded::Needed(_)) => break Ok(Decoded::Needed(0)),
                Err(e) => break Err(e),
            }
        };
        match (&whole, &stepped) {
            (Ok(Decoded::Needed(_)), Ok(Decoded::Needed(_))) => {}
            _ => prop_assert_eq!(whole, stepped),
        }
    }
}

#[test]
fn id_lists_are_bounded() {
    // MAX_ID_LIST_ENTRIES ids of one byte each and no end: refused before the end arrives.
    let mut b = Vec::with_capacity(3 * (MAX_ID_LIST_ENTRIES + 1));
    for _ in 0..=MAX_ID_LIST_ENTRIES {
        b.extend_from_slice(&[1, 0]);
    }
    assert!(matches!(
        decode_id_list(&b, 32, false),
        Err(FlistError::Wire(WireError::TooLarge {
            what: "id list",
            ..
        }))
    ));
    let mut dec = IdListDecoder::new(32, false);
    let mut pos = 0;
    let err = loop {
        match dec.decode(&b[pos..]) {
            Ok(Decoded::Done { value: None, used }) => pos += used,
            other => break other,
        }
    };
    assert!(err.is_err(), "{err:?}");
    assert_eq!(pos, 2 * MAX_ID_LIST_ENTRIES);
}
