//! The ACL blocks of each entry: before the xattr block, none for a symlink, a default
//! block for a directory, in full for hard-link followers, and an entry cut short
//! anywhere leaves the decoder's ACL tables as they were.

use std::sync::Arc;

use super::*;
use crate::protocol::Decoded;
use crate::protocol::acl::{FileAcls, IdAccess, IdKind, RsyncAcl};
use crate::protocol::xattr::{XattrItem, XattrList};

fn config() -> FlistConfig {
    FlistConfig {
        protocol: 31,
        varint_flags: true,
        preserve_hard_links: true,
        preserve_links: true,
        preserve_xattrs: true,
        preserve_acls: true,
        ..FlistConfig::default()
    }
}

fn named(perms: u32) -> RsyncAcl {
    RsyncAcl {
        user_obj: Some(6),
        group_obj: Some(4),
        mask_obj: Some(6),
        other_obj: Some(0),
        names: vec![IdAccess {
            kind: IdKind::User,
            id: 65534,
            perms,
        }],
    }
}

fn entry(name: &str, m: u32, acls: Option<FileAcls>, hard_link: Option<HardLink>) -> FileEntry {
    FileEntry {
        name: name.as_bytes().to_vec(),
        mode: m,
        size: if mode::is_reg(m) { 3 } else { 0 },
        mtime: 1_700_000_000,
        hard_link,
        link_target: mode::is_lnk(m).then(|| b"a".to_vec()),
        xattrs: Some(Arc::new(XattrList(vec![XattrItem::new(
            b"user.x".to_vec(),
            b"v",
        )]))),
        acls: acls.map(Arc::new),
        ..FileEntry::default()
    }
}

fn entries() -> Vec<FileEntry> {
    let full = |a: RsyncAcl, d: Option<RsyncAcl>| {
        Some(FileAcls {
            access: Some(a),
            default: d,
            inline_names: Vec::new(),
        })
    };
    vec![
        entry(
            "a",
            mode::S_IFREG | 0o660,
            full(named(6), None),
            Some(HardLink::First),
        ),
        entry(
            "b",
            mode::S_IFREG | 0o660,
            full(named(6), None),
            Some(HardLink::Follower(0)),
        ),
        entry(
            "d",
            mode::S_IFDIR | 0o750,
            full(RsyncAcl::from_mode(0o750), Some(named(7))),
            None,
        ),
        entry("l", mode::S_IFLNK | 0o777, None, None),
        entry("p", mode::S_IFREG | 0o644, None, None),
    ]
}

fn decode_all(dec: &mut FlistDecoder, bytes: &[u8]) -> Vec<FileEntry> {
    let (mut pos, mut got) = (0, Vec::new());
    loop {
        match dec.decode(&bytes[pos..], &got, 0) {
            Ok(Decoded::Done {
                value: FlistItem::Entry(e),
                used,
            }) => {
                pos += used;
                got.push(*e);
            }
            Ok(Decoded::Done {
                value: FlistItem::End { .. },
                ..
            }) => return got,
            other => panic!("{other:?}"),
        }
    }
}

fn encoded() -> Vec<u8> {
    let mut enc = FlistEncoder::new(config());
    let mut out = Vec::new();
    for e in &entries() {
        enc.encode(e, 0, false, &mut out).expect("encode");
    }
    enc.end(0, &mut out);
    out
}

#[test]
fn blocks_travel_condensed_and_in_order() {
    let got = decode_all(&mut FlistDecoder::new(config()), &encoded());
    assert_eq!(got.len(), 5);
    // Condensed by the sender, the mask filled in again by the receiver.
    let mut stripped = named(6).strip_access(0o100660);
    stripped.fill_received_mask(crate::protocol::acl::AclKind::Access, 0o100660);
    assert_eq!(got[0].acls.as_ref().unwrap().access, Some(stripped.clone()));
    // The follower carries its blocks too (the same, by cache index).
    assert_eq!(got[1].acls.as_ref().unwrap().access, Some(stripped));
    let d = got[2].acls.as_ref().unwrap();
    assert_eq!(
        d.default,
        Some(named(7)),
        "a default ACL is sent unstripped"
    );
    assert_eq!(d.access, Some(RsyncAcl::default()));
    assert!(got[3].acls.is_none(), "a symlink has no ACL blocks");
    assert_eq!(got[4].acls.as_ref().unwrap().default, None);
    for (g, e) in got.iter().zip(entries()) {
        assert_eq!(g.xattrs, e.xattrs, "the xattr block follows the ACL blocks");
    }
}

#[test]
fn a_cut_entry_leaves_the_tables_alone() {
    let bytes = encoded();
    let whole = decode_all(&mut FlistDecoder::new(config()), &bytes);
    // Feed the bytes a growing prefix at a time: every Needed is followed by a retry
    // with more, and the result must be what one whole buffer gives.
    let mut dec = FlistDecoder::new(config());
    let (mut pos, mut got) = (0usize, Vec::new());
    let mut avail = 1usize;
    loop {
        let end = (pos + avail).min(bytes.len());
        match dec.decode(&bytes[pos..end], &got, 0).expect("decode") {
            Decoded::Needed(_) => avail += 1,
            Decoded::Done {
                value: FlistItem::Entry(e),
                used,
            } => {
                pos += used;
                got.push(*e);
                avail = 1;
            }
            Decoded::Done {
                value: FlistItem::End { .. },
                ..
            } => break,
        }
    }
    assert_eq!(got, whole);
}

#[test]
fn a_bad_cache_index_is_refused() {
    // A first entry whose access block names ACL 5 of none.
    let mut enc = FlistEncoder::new(FlistConfig {
        preserve_acls: false,
        preserve_xattrs: false,
        ..config()
    });
    let mut out = Vec::new();
    enc.encode(
        &entry("a", mode::S_IFREG | 0o644, None, None),
        0,
        false,
        &mut out,
    )
    .unwrap();
    out.push(6);
    let mut dec = FlistDecoder::new(config());
    let e = dec.decode(&out, &[], 0).unwrap_err();
    assert!(matches!(e, FlistError::Acl(_)), "{e:?}");
    assert!(e.to_string().contains("recv_acl_index"), "{e}");
}
