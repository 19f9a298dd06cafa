//! The xattr block of each entry: hard-link followers carry theirs in full, and equal
//! lists travel once and then as a cache index.

use std::sync::Arc;

use super::*;
use crate::protocol::Decoded;
use crate::protocol::xattr::{XattrItem, XattrList};

fn config() -> FlistConfig {
    FlistConfig {
        protocol: 31,
        varint_flags: true,
        preserve_hard_links: true,
        preserve_xattrs: true,
        ..FlistConfig::default()
    }
}

fn file(name: &str, hard_link: Option<HardLink>, xattrs: &[(&str, usize)]) -> FileEntry {
    let items = xattrs
        .iter()
        .map(|&(n, len)| XattrItem::new(n.as_bytes().to_vec(), &vec![b'v'; len]))
        .collect();
    FileEntry {
        name: name.as_bytes().to_vec(),
        mode: mode::S_IFREG | 0o644,
        size: 3,
        mtime: 1_700_000_000,
        hard_link,
        xattrs: Some(Arc::new(XattrList(items))),
        ..FileEntry::default()
    }
}

fn decode_all(bytes: &[u8]) -> Vec<FileEntry> {
    let mut dec = FlistDecoder::new(config());
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
                used,
            }) => {
                assert_eq!(pos + used, bytes.len());
                return got;
            }
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn followers_and_repeats_keep_their_xattrs() {
    let entries = vec![
        file(
            "a",
            Some(HardLink::First),
            &[("user.x", 3), ("user.long", 40)],
        ),
        file(
            "b",
            Some(HardLink::Follower(0)),
            &[("user.x", 3), ("user.long", 40)],
        ),
        file("c", None, &[]),
        file("d", None, &[]),
    ];
    let mut enc = FlistEncoder::new(config());
    let mut out = Vec::new();
    let mut sizes = Vec::new();
    for e in &entries {
        let before = out.len();
        enc.encode(e, 0, false, &mut out).expect("encode");
        sizes.push(out.len() - before);
    }
    enc.end(0, &mut out);
    let got = decode_all(&out);
    assert_eq!(got.len(), 4);
    for (g, e) in got.iter().zip(&entries) {
        assert_eq!(g.xattrs, e.xattrs, "{}", String::from_utf8_lossy(&e.name));
    }
    // The follower names the first list by index (one byte), the second empty list too
    // (before the end marker's two zero varints).
    assert!(sizes[1] < sizes[0]);
    assert_eq!(
        out[out.len() - 3],
        2,
        "d's block is index 2 (the empty list, 1-based)"
    );
}
