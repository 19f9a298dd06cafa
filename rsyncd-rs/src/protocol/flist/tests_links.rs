//! What the decoder makes of received symlink targets: kept, munged, or sanitized at the
//! depth of the link's own directory.

use super::*;
use crate::protocol::Decoded;
use proptest::prelude::*;

fn config(link_targets: LinkTargets) -> FlistConfig {
    FlistConfig {
        protocol: 31,
        varint_flags: true,
        inc_recurse: true,
        safe_flist: true,
        preserve_links: true,
        link_targets,
        ..FlistConfig::default()
    }
}

fn link(name: &str, target: &[u8]) -> FileEntry {
    FileEntry {
        name: name.as_bytes().to_vec(),
        mode: mode::S_IFLNK | 0o777,
        mtime: 1_700_000_000,
        link_target: Some(target.to_vec()),
        ..FileEntry::default()
    }
}

/// Encodes `entries` as one list and decodes it with `link_targets`.
fn round_trip(entries: &[FileEntry], link_targets: LinkTargets) -> Vec<FileEntry> {
    let mut enc = FlistEncoder::new(config(LinkTargets::AsSent));
    let mut out = Vec::new();
    for e in entries {
        enc.encode(e, 1, false, &mut out).expect("encode");
    }
    enc.end(0, &mut out);
    let mut dec = FlistDecoder::new(config(link_targets));
    let (mut pos, mut got) = (0, Vec::new());
    loop {
        match dec.decode(&out[pos..], &got, 1).expect("decode") {
            Decoded::Done {
                value: FlistItem::Entry(e),
                used,
            } => {
                got.push(*e);
                pos += used;
            }
            Decoded::Done { .. } => return got,
            Decoded::Needed(n) => panic!("needed {n} more at {pos}"),
        }
    }
}

fn targets(entries: &[FileEntry]) -> Vec<String> {
    entries
        .iter()
        .map(|e| String::from_utf8_lossy(e.link_target.as_deref().unwrap_or_default()).into_owned())
        .collect()
}

/// The links of rsync's `variety` test and stock rsyncd's results for them
/// (`use chroot = no`, `munge symlinks = no`).
fn sample() -> Vec<FileEntry> {
    vec![
        link("abs", b"/tmp/x"),
        link("up2", b"../../above/a_file"),
        link("dots", b"a//b/./c"),
        link("inside", b"dir/file"),
        link("empty", b""),
        link("d1/up2", b"../../x"),
        link("d1/d2/up3", b"../../../x"),
        link("d1/d2/abs-up", b"/../x"),
    ]
}

#[test]
fn a_non_chrooted_daemon_sanitizes_at_the_links_depth() {
    assert_eq!(
        targets(&round_trip(&sample(), LinkTargets::Sanitized)),
        [
            "tmp/x",
            "above/a_file",
            "a/b/c",
            "dir/file",
            "",
            "../x",
            "../../x",
            "../x"
        ]
    );
}

#[test]
fn munging_and_keeping_leave_the_target_alone() {
    let sent = targets(&sample());
    assert_eq!(targets(&round_trip(&sample(), LinkTargets::AsSent)), sent);
    let munged: Vec<String> = sent.iter().map(|t| format!("/rsyncd-munged/{t}")).collect();
    assert_eq!(targets(&round_trip(&sample(), LinkTargets::Munged)), munged);
}

/// How many directories above its own a link's target leads at its highest point
/// (`None` when it is absolute).
fn climb(target: &[u8]) -> Option<usize> {
    if target.first() == Some(&b'/') {
        return None;
    }
    let (mut level, mut lowest) = (0i64, 0i64);
    for part in target.split(|&b| b == b'/') {
        match part {
            b".." => level -= 1,
            b"" | b"." => {}
            _ => level += 1,
        }
        lowest = lowest.min(level);
    }
    Some(lowest.unsigned_abs() as usize)
}

fn arb_link() -> impl Strategy<Value = FileEntry> {
    let part = prop_oneof![
        Just("/"),
        Just("//"),
        Just("."),
        Just(".."),
        Just("x"),
        Just("tmp")
    ];
    (
        "[a-c]{1,2}(/[a-c]{1,2}){0,3}",
        prop::collection::vec(part, 1..12),
    )
        .prop_map(|(name, parts)| link(&name, parts.concat().as_bytes()))
}

proptest! {
    /// Whatever a client sends, a sanitized target is relative and leads no higher than
    /// the transfer root, and stays within MAXPATHLEN.
    #[test]
    fn sanitized_targets_stay_below_the_transfer_root(entries in prop::collection::vec(arb_link(), 1..8)) {
        for e in round_trip(&entries, LinkTargets::Sanitized) {
            let t = e.link_target.unwrap_or_default();
            let depth = e.name.iter().filter(|&&b| b == b'/').count();
            prop_assert!(t.len() < MAXPATHLEN);
            prop_assert!(climb(&t).is_some_and(|up| up <= depth),
                "{} -> {}", String::from_utf8_lossy(&e.name), String::from_utf8_lossy(&t));
        }
    }
}
