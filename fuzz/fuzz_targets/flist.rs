//! Arbitrary bytes as the file lists a sending client streams to the daemon: entries
//! decoded with FlistDecoder list after list as ListReceiver does (sub-list markers read
//! with NdxCodec under incremental recursion; the uid and gid lists after a
//! non-incremental list, both entry by entry and whole), each list then sorted and
//! cleaned. `cargo +nightly fuzz run flist`.
//!
//! Input: four configuration bytes, then the stream.
//! - byte 0: protocol 27 + b % 6;
//! - byte 1, bit 0..7: varint flags, inc_recurse, preserve uid, gid, links, devices,
//!   specials, hard links;
//! - byte 2, bit 0..7: atimes, crtimes, relative, id0 names, safe flist,
//!   delete-missing-args, munge symlinks, sanitize symlinks (munging wins);
//! - byte 3: `--checksum` length, [0, 8, 16, 20][b % 4].
//!
//! `fuzz/seed_corpora.py` writes seeds from the captured sessions.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rsyncd_rs::protocol::Decoded;
use rsyncd_rs::protocol::flist::{
    FileEntry, FlistConfig, FlistDecoder, FlistItem, IOERR_VALID_MASK, IdListDecoder, LinkTargets,
    MAXPATHLEN, decode_id_list, sort_and_clean,
};
use rsyncd_rs::protocol::ndx::{NDX_DONE, NDX_FLIST_EOF, NdxCodec};

fn config(c: &[u8; 4]) -> FlistConfig {
    let bit = |byte: u8, n: u8| byte & (1 << n) != 0;
    FlistConfig {
        protocol: 27 + i32::from(c[0] % 6),
        varint_flags: bit(c[1], 0),
        inc_recurse: bit(c[1], 1),
        preserve_uid: bit(c[1], 2),
        preserve_gid: bit(c[1], 3),
        preserve_links: bit(c[1], 4),
        preserve_devices: bit(c[1], 5),
        preserve_specials: bit(c[1], 6),
        preserve_hard_links: bit(c[1], 7),
        preserve_atimes: bit(c[2], 0),
        preserve_crtimes: bit(c[2], 1),
        relative: bit(c[2], 2),
        id0_names: bit(c[2], 3),
        safe_flist: bit(c[2], 4),
        missing_args_delete: bit(c[2], 5),
        link_targets: match (bit(c[2], 6), bit(c[2], 7)) {
            (true, _) => LinkTargets::Munged,
            (false, true) => LinkTargets::Sanitized,
            (false, false) => LinkTargets::AsSent,
        },
        flist_csum_len: [0, 8, 16, 20][usize::from(c[3] % 4)],
        preserve_xattrs: bit(c[3], 2),
        preserve_acls: bit(c[3], 3),
        acl_fake_super: bit(c[3], 4),
        numeric_ids: bit(c[3], 5),
    }
}

/// What every decoded entry must respect, whatever the input.
fn check(e: &FileEntry, cfg: &FlistConfig) {
    assert!(!e.name.is_empty() && e.name.len() < MAXPATHLEN);
    assert!(e.name.first() != Some(&b'/') || cfg.relative);
    assert!(!e.name.split(|&b| b == b'/').any(|p| p == b".."));
    assert!(e.size >= 0);
    assert!(e.mtime_nsec <= 999_999_999);
    if let Some(t) = &e.link_target {
        assert!(t.len() < MAXPATHLEN + 16);
        assert!(cfg.link_targets != LinkTargets::Sanitized || t.first() != Some(&b'/'));
    }
    if let Some(sum) = &e.checksum {
        assert_eq!(sum.len(), cfg.flist_csum_len);
    }
}

/// One id list, read entry by entry as ListReceiver does; the whole-list decoder must
/// agree. Returns false when the stream ends or is refused.
fn id_list(stream: &[u8], pos: &mut usize, cfg: &FlistConfig) -> bool {
    let whole = decode_id_list(&stream[*pos..], cfg.protocol, cfg.id0_names);
    let mut dec = IdListDecoder::new(cfg.protocol, cfg.id0_names);
    let mut at = *pos;
    loop {
        match dec.decode(&stream[at..]) {
            Ok(Decoded::Done { value, used }) => {
                assert!(used > 0 && at + used <= stream.len());
                at += used;
                if let Some(list) = value {
                    assert_eq!(
                        whole,
                        Ok(Decoded::Done {
                            value: list,
                            used: at - *pos
                        })
                    );
                    *pos = at;
                    return true;
                }
            }
            Ok(Decoded::Needed(n)) => {
                assert!(n > 0 && matches!(whole, Ok(Decoded::Needed(_))));
                return false;
            }
            Err(e) => {
                assert_eq!(whole, Err(e));
                return false;
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((head, stream)) = data.split_first_chunk::<4>() else {
        return;
    };
    let cfg = config(head);
    let mut dec = FlistDecoder::new(cfg.clone());
    let mut ndx = NdxCodec::new(cfg.protocol);
    let mut ndx_start = i32::from(cfg.inc_recurse);
    let mut pos = 0;
    loop {
        let mut entries: Vec<FileEntry> = Vec::new();
        loop {
            match dec.decode(&stream[pos..], &entries, ndx_start) {
                Ok(Decoded::Done { value, used }) => {
                    assert!(used > 0 && pos + used <= stream.len());
                    pos += used;
                    match value {
                        FlistItem::Entry(e) => {
                            check(&e, &cfg);
                            entries.push(*e);
                        }
                        FlistItem::End { io_error } => {
                            assert_eq!(io_error & !IOERR_VALID_MASK, 0);
                            break;
                        }
                    }
                }
                Ok(Decoded::Needed(n)) => {
                    assert!(n > 0);
                    return;
                }
                Err(_) => return,
            }
        }
        let n = entries.len();
        let (sorted, active) = sort_and_clean(entries, cfg.protocol);
        assert_eq!((sorted.len(), active.len()), (n, n));
        if !cfg.inc_recurse {
            for wanted in [cfg.preserve_uid, cfg.preserve_gid] {
                if wanted && !id_list(stream, &mut pos, &cfg) {
                    return;
                }
            }
            return;
        }
        ndx_start = ndx_start
            .saturating_add(i32::try_from(n).unwrap_or(i32::MAX))
            .saturating_add(1);
        // The next sub-list's marker (NDX_FLIST_OFFSET - dir), or the end of the lists.
        match ndx.decode(&stream[pos..]) {
            Ok(Decoded::Done { value, used }) => {
                pos += used;
                if value >= 0 || value == NDX_DONE || value == NDX_FLIST_EOF {
                    return;
                }
            }
            _ => return,
        }
    }
});
