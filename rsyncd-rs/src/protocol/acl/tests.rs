//! The wire codec and the condense/rebuild rules, against bytes captured from stock rsync
//! 3.5.0 and vectors built by hand from the spec (`notes/xattr-acl-wire.md` §7).

use std::collections::HashSet;

use super::wire::{AclDecoder, AclEncoder, AclNames, EntryAcls};
use super::*;
use crate::protocol::Decoded;

/// Bytes from a hex string with spaces.
pub(super) fn h(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn user(id: u32, perms: u32) -> IdAccess {
    IdAccess {
        kind: IdKind::User,
        id,
        perms,
    }
}

fn group(id: u32, perms: u32) -> IdAccess {
    IdAccess {
        kind: IdKind::Group,
        id,
        perms,
    }
}

/// The sender's uid/gid record: every id has the name `cloudsdk`, given the first time.
fn first_names() -> impl FnMut(IdKind, u32) -> Option<Vec<u8>> {
    let mut seen = HashSet::new();
    move |kind, id| seen.insert((kind, id)).then(|| b"cloudsdk".to_vec())
}

fn no_names(_: IdKind, _: u32) -> Option<Vec<u8>> {
    None
}

fn same_id(_: IdKind, id: u32, _: Option<&[u8]>) -> u32 {
    id
}

const DIR: u32 = 0o40755;
const CLOUDSDK: &str = "08 63 6c 6f 75 64 73 64 6b";

// The source tree of both captures: `.` (0755, no ACL), `f` (0664, `setfacl -m
// u:1000:rw-`), `g` (0650 after `setfacl -m g:1000:r-x,u:1000:r--` on 0640), `plain`
// (0644), `d` (0755, `setfacl -d -m u:1000:rwx`). uid and gid 1000 are `cloudsdk`.
// The kernel values are `getfattr -e hex` of the files stock 3.5.0 wrote on the receiving
// side (its lib/acl.c serializer).
const F_KERNEL: &str = "02000000 01000600ffffffff 02000600e8030000 04000600ffffffff \
                        10000600ffffffff 20000400ffffffff";
const G_KERNEL: &str = "02000000 01000600ffffffff 02000400e8030000 04000400ffffffff \
                        08000500e8030000 10000500ffffffff 20000000ffffffff";
const D_DEFAULT_KERNEL: &str = "02000000 01000700ffffffff 02000700e8030000 \
                                04000500ffffffff 10000700ffffffff 20000500ffffffff";

// `getfattr -e hex` of what stock 3.5.0 stored for `f`, `g` and `d` (its default ACL) in a
// daemon module with `fake super = yes`, from the same push.
const F_AACL: &str = "80000000 80000000 06000000 80000000 e8030000 06000080";
const G_AACL: &str = "80000000 04000000 05000000 80000000 e8030000 04000080 e8030000 05000000";
const D_DACL: &str = "07000000 05000000 07000000 05000000 e8030000 07000080";

/// The entries in the order stock's sender sent them: name, mode, access, default.
fn captured_tree() -> Vec<(&'static str, u32, Option<RsyncAcl>, Option<RsyncAcl>)> {
    let k = |s| decode_kernel_acl(&h(s)).unwrap();
    vec![
        (".", DIR, None, None),
        ("f", 0o100664, Some(k(F_KERNEL)), None),
        ("g", 0o100650, Some(k(G_KERNEL)), None),
        ("plain", 0o100644, None, None),
        ("d", DIR, None, Some(k(D_DEFAULT_KERNEL))),
    ]
}

/// The ACL blocks of each entry, cut from the client's side of `rsync -rA src/
/// rsync://127.0.0.1:PORT/m/` (stock 3.5.0 client and daemon, protocol 32) recorded
/// through `shared/protocol/tools/capture.py`: incremental recursion, so names go inline
/// the first time an id is seen.
fn captured_inc() -> Vec<Vec<u8>> {
    vec![
        h("00 00 00 00"),
        h(&format!("00 10 01 83 e8 1b {CLOUDSDK}")),
        h(&format!("00 12 04 02 83 e8 12 83 e8 15 {CLOUDSDK}")),
        h("01"),
        h("01 00 1f 07 05 07 05 01 83 e8 1e"),
    ]
}

/// The same push with `--no-inc-recursive`: no names inline (the uid and gid lists after
/// the file list carry `cloudsdk`).
fn captured_no_inc() -> Vec<Vec<u8>> {
    vec![
        h("00 00 00 00"),
        h("00 10 01 83 e8 1a"),
        h("00 12 04 02 83 e8 12 83 e8 14"),
        h("01"),
        h("01 00 1f 07 05 07 05 01 83 e8 1e"),
    ]
}

#[test]
fn encoder_sends_what_stock_sent_with_incremental_recursion() {
    let mut enc = AclEncoder::new(AclNames::Inline);
    let mut names = first_names();
    for ((name, m, access, default), want) in captured_tree().into_iter().zip(captured_inc()) {
        let mut out = Vec::new();
        enc.encode(m, access.as_ref(), default.as_ref(), &mut names, &mut out)
            .unwrap();
        assert_eq!(out, want, "{name}");
    }
}

#[test]
fn encoder_sends_what_stock_sent_without_incremental_recursion() {
    let mut enc = AclEncoder::new(AclNames::Listed);
    let mut recorded = Vec::new();
    let mut names = |kind, id| {
        recorded.push((kind, id));
        Some(b"cloudsdk".to_vec())
    };
    for ((name, m, access, default), want) in captured_tree().into_iter().zip(captured_no_inc()) {
        let mut out = Vec::new();
        enc.encode(m, access.as_ref(), default.as_ref(), &mut names, &mut out)
            .unwrap();
        assert_eq!(out, want, "{name}");
    }
    // Every literal's ids went to the id lists (only literals: `d`'s default was one).
    assert_eq!(
        recorded,
        [
            (IdKind::User, 1000),
            (IdKind::User, 1000),
            (IdKind::Group, 1000),
            (IdKind::User, 1000)
        ]
    );
}

#[test]
fn decoder_reads_what_stock_sent() {
    let mut dec = AclDecoder::new(false);
    let mut seen = Vec::new();
    let mut map = |kind, id, name: Option<&[u8]>| {
        seen.push((kind, id, name.map(<[u8]>::to_vec)));
        id + 1
    };
    let mut got = Vec::new();
    for ((name, m, ..), bytes) in captured_tree().into_iter().zip(captured_inc()) {
        match dec.decode(&bytes, m, &mut map).unwrap() {
            Decoded::Done { value, used } => {
                assert_eq!(used, bytes.len(), "{name}");
                got.push(value.unwrap());
            }
            other => panic!("{name}: {other:?}"),
        }
    }
    let e = |access, default| EntryAcls { access, default };
    assert_eq!(
        got,
        [
            e(0, Some(0)),
            e(1, None),
            e(2, None),
            e(0, None),
            e(0, Some(1))
        ]
    );
    let cloudsdk = Some(b"cloudsdk".to_vec());
    assert_eq!(
        seen,
        [
            (IdKind::User, 1000, cloudsdk.clone()),
            (IdKind::User, 1000, None),
            (IdKind::Group, 1000, cloudsdk),
            (IdKind::User, 1000, None),
        ]
    );
    assert_eq!(dec.access_acl(0), Some(&RsyncAcl::default()));
    // `f`: the mask was stripped and is filled in from the mode's group bits.
    let f = RsyncAcl {
        mask_obj: Some(6),
        names: vec![user(1001, 6)],
        ..RsyncAcl::default()
    };
    assert_eq!(dec.access_acl(1), Some(&f));
    let g = RsyncAcl {
        group_obj: Some(4),
        mask_obj: Some(5),
        names: vec![user(1001, 4), group(1001, 5)],
        ..RsyncAcl::default()
    };
    assert_eq!(dec.access_acl(2), Some(&g));
    let d = RsyncAcl {
        user_obj: Some(7),
        group_obj: Some(5),
        mask_obj: Some(7),
        other_obj: Some(5),
        names: vec![user(1001, 7)],
    };
    assert_eq!(dec.default_acl(1), Some(&d));
    assert_eq!(dec.access_acl(3), None);
    // What fake super stores for them is what stock's `fs` module stored.
    let mut fs = AclDecoder::new(true);
    for ((_, m, ..), bytes) in captured_tree().into_iter().zip(captured_no_inc()) {
        fs.decode(&bytes, m, &mut same_id).unwrap();
    }
    let stored = |a: Option<&RsyncAcl>| encode_fake_super_acl(a.unwrap());
    assert_eq!(stored(fs.access_acl(1)), h(F_AACL));
    assert_eq!(stored(fs.access_acl(2)), h(G_AACL));
    assert_eq!(stored(fs.default_acl(1)), h(D_DACL));
}

#[test]
fn non_incremental_ids_are_mapped_afterwards() {
    let mut dec = AclDecoder::new(false);
    for ((_, m, ..), bytes) in captured_tree().into_iter().zip(captured_no_inc()) {
        dec.decode(&bytes, m, &mut same_id).unwrap();
    }
    dec.map_ids(|kind, id| match kind {
        IdKind::User => id + 1,
        IdKind::Group => id + 2,
    });
    assert_eq!(
        dec.access_acl(2).unwrap().names,
        [user(1001, 4), group(1002, 5)]
    );
    assert_eq!(dec.default_acl(1).unwrap().names, [user(1001, 7)]);
}

#[test]
fn an_acl_the_mode_implies_is_flags_zero_then_an_index() {
    // A file 0640 with no ACL: all four slots stripped, no names.
    let mut enc = AclEncoder::new(AclNames::Numeric);
    let mut out = Vec::new();
    let m = 0o100640;
    enc.encode(m, None, None, &mut no_names, &mut out).unwrap();
    assert_eq!(out, [0x00, 0x00]);
    // The same ACL read from disk, and on a file of another mode: the same stripped ACL.
    out.clear();
    let acl = RsyncAcl::from_mode(0o100600);
    enc.encode(0o100600, Some(&acl), None, &mut no_names, &mut out)
        .unwrap();
    assert_eq!(out, [0x01]);
    // A directory's access ACL hits too; its default cache is separate and starts empty.
    out.clear();
    enc.encode(DIR, None, None, &mut no_names, &mut out)
        .unwrap();
    assert_eq!(out, [0x01, 0x00, 0x00]);
    out.clear();
    enc.encode(
        DIR,
        None,
        Some(&RsyncAcl::default()),
        &mut no_names,
        &mut out,
    )
    .unwrap();
    assert_eq!(out, [0x01, 0x01]);
    // A symlink has no ACL blocks.
    out.clear();
    enc.encode(0o120777, None, None, &mut no_names, &mut out)
        .unwrap();
    assert!(out.is_empty());
}

#[test]
fn a_second_literal_gets_the_next_index() {
    // A file with a named group (0660 with group:50:rw- and mask rw-) after a plain one.
    let mut enc = AclEncoder::new(AclNames::Numeric);
    let mut dec = AclDecoder::new(false);
    let acl = RsyncAcl {
        mask_obj: Some(6),
        names: vec![group(50, 6)],
        ..RsyncAcl::from_mode(0o660)
    };
    let mut out = Vec::new();
    enc.encode(0o100644, None, None, &mut no_names, &mut out)
        .unwrap();
    enc.encode(0o100660, Some(&acl), None, &mut no_names, &mut out)
        .unwrap();
    enc.encode(0o100660, Some(&acl), None, &mut no_names, &mut out)
        .unwrap();
    // perms 6 << 2, group, no name: 0x18.
    assert_eq!(out, h("00 00  00 10 01 32 18  02"));
    let mut at = 0;
    let mut got = Vec::new();
    for m in [0o100644, 0o100660, 0o100660] {
        let Decoded::Done { value, used } = dec.decode(&out[at..], m, &mut same_id).unwrap() else {
            panic!()
        };
        at += used;
        got.push(value.unwrap().access);
    }
    assert_eq!(got, [0, 1, 1]);
}

#[test]
fn names_inline_only_when_asked_and_only_the_first_time() {
    let acl = RsyncAcl {
        mask_obj: Some(7),
        names: vec![user(0x8000_0000, 7), group(1000, 5)],
        ..RsyncAcl::from_mode(0o770)
    };
    let encode = |names| {
        let mut enc = AclEncoder::new(names);
        let mut out = Vec::new();
        let mut reg = first_names();
        enc.encode(0o100770, Some(&acl), None, &mut reg, &mut out)
            .unwrap();
        out
    };
    // An id of 2^31 takes five bytes; 7 << 2 | user | name = 0x1f, then 5 << 2 | name.
    let inline = format!("00 10 02 f0 00 00 00 80 1f {CLOUDSDK} 83 e8 15 {CLOUDSDK}");
    assert_eq!(encode(AclNames::Inline), h(&inline));
    assert_eq!(
        encode(AclNames::Listed),
        h("00 10 02 f0 00 00 00 80 1e 83 e8 14")
    );
    assert_eq!(
        encode(AclNames::Numeric),
        h("00 10 02 f0 00 00 00 80 1e 83 e8 14")
    );
    // A name over 255 bytes is left to the id rather than put the stream out of step.
    let mut enc = AclEncoder::new(AclNames::Inline);
    let mut out = Vec::new();
    let mut long = |_, _| Some(vec![b'x'; 256]);
    enc.encode(0o100770, Some(&acl), None, &mut long, &mut out)
        .unwrap();
    assert_eq!(out, h("00 10 02 f0 00 00 00 80 1e 83 e8 14"));
}

#[test]
fn a_directory_default_acl_goes_unstripped_and_gets_a_mask() {
    // default: user::rwx group::--x other::--- group:7:r--, and no mask (a hostile or
    // old sender): the receiver's mask is the OR of the named perms and the group entry.
    let bytes = h("00 00  00 1b 07 01 00 01 07 10");
    let mut dec = AclDecoder::new(false);
    let Decoded::Done { value, used } = dec.decode(&bytes, DIR, &mut same_id).unwrap() else {
        panic!()
    };
    assert_eq!(used, bytes.len());
    let d = dec.default_acl(value.unwrap().default.unwrap()).unwrap();
    assert_eq!(d.mask_obj, Some(5));
    assert_eq!(d.names, [group(7, 4)]);
}

#[test]
fn bad_indexes_are_refused_with_stocks_words() {
    let mut dec = AclDecoder::new(false);
    let err = dec.decode(&[0x01], 0o100644, &mut same_id).unwrap_err();
    assert_eq!(
        err.to_string(),
        "recv_acl_index: ACL_TYPE_ACCESS ACL index 1 > 0"
    );
    assert_eq!(err.exit_code(), 12);
    let err = dec
        .decode(&[0x00, 0x00, 0x02], DIR, &mut same_id)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "recv_acl_index: ACL_TYPE_DEFAULT ACL index 2 > 0"
    );
    let err = dec
        .decode(&h("f0 ff ff ff ff"), 0o100644, &mut same_id)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "recv_acl_index: ACL_TYPE_ACCESS ACL index -1 > 0"
    );
    // Nothing of a refused entry joined the tables.
    assert_eq!(dec.access_acl(0), None);
}

#[test]
fn perms_out_of_range_are_refused_unless_fake_super() {
    let slot = h("00 02 08");
    let named = h("00 10 01 05 22");
    for (bytes, shown) in [(&slot, "8"), (&named, "8")] {
        let err = AclDecoder::new(false)
            .decode(bytes, 0o100644, &mut same_id)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("recv_acl_access: value out of range: {shown}")
        );
    }
    let mut fs = AclDecoder::new(true);
    fs.decode(&slot, 0o100644, &mut same_id).unwrap();
    fs.decode(&named, 0o100644, &mut same_id).unwrap();
    assert_eq!(fs.access_acl(0).unwrap().group_obj, Some(8));
    assert_eq!(fs.access_acl(1).unwrap().names, [user(5, 8)]);
    // A fake-super receiver keeps a slot's low byte; 0x80 there reads as absent.
    let mut fs = AclDecoder::new(true);
    fs.decode(&h("00 02 81 80"), 0o100644, &mut same_id)
        .unwrap();
    assert_eq!(fs.access_acl(0).unwrap().group_obj, None);
}

#[test]
fn the_count_is_bounded_before_anything_is_allocated() {
    // 65537 named entries.
    let err = AclDecoder::new(false)
        .decode(&h("00 10 c1 01 00"), 0o100644, &mut same_id)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "wire value ACL count out of range: 65537 not in [0,65536]"
    );
    assert_eq!(err.exit_code(), 2);
    let err = AclDecoder::new(false)
        .decode(&h("00 10 f0 ff ff ff ff"), 0o100644, &mut same_id)
        .unwrap_err();
    assert!(matches!(err, AclError::CountOutOfRange(-1)));
    // 65536 entries: at least two bytes each are asked for before a table is made.
    assert_eq!(
        AclDecoder::new(false).decode(&h("00 10 c1 00 00"), 0o100644, &mut same_id),
        Ok(Decoded::Needed(2 * 65_536))
    );
}

#[test]
fn every_prefix_asks_for_more_and_changes_nothing() {
    let all: Vec<u8> = captured_inc().concat();
    let entries = captured_tree();
    for cut in 0..all.len() {
        let mut dec = AclDecoder::new(false);
        let calls = std::cell::Cell::new(0);
        let mut map = |_, id, _: Option<&[u8]>| {
            calls.set(calls.get() + 1);
            id
        };
        let mut at = 0;
        for (i, (_, m, ..)) in entries.iter().enumerate() {
            let before = calls.get();
            match dec.decode(&all[at..cut], *m, &mut map).unwrap() {
                Decoded::Done { used, .. } => at += used,
                Decoded::Needed(n) => {
                    assert!(n >= 1 && cut + n <= all.len(), "cut {cut}");
                    assert_eq!(calls.get(), before);
                    // What is in the tables is what the whole entries before made.
                    let len = i.min(3);
                    assert!(dec.access_acl(len).is_none());
                    assert!(len == 0 || dec.access_acl(len - 1).is_some());
                    break;
                }
            }
        }
        assert!(at <= cut);
    }
}

#[test]
fn too_many_names_are_not_sent() {
    let acl = RsyncAcl {
        mask_obj: Some(7),
        names: (0..=65_536).map(|id| user(id, 7)).collect(),
        ..RsyncAcl::from_mode(0o770)
    };
    let mut enc = AclEncoder::new(AclNames::Numeric);
    let mut out = Vec::new();
    assert!(
        enc.encode(0o100770, Some(&acl), None, &mut no_names, &mut out)
            .is_err()
    );
    assert!(out.is_empty());
    // The cache did not take it: the next literal is still index 0's.
    enc.encode(0o100644, None, None, &mut no_names, &mut out)
        .unwrap();
    assert_eq!(out, [0x00, 0x00]);
}

mod props;
mod rules;
