//! Arbitrary bytes as the filter list a client sends after the seed: the whole-list
//! decoder and the rule-at-a-time one (fed in pieces) must agree; a decoded list is
//! encoded again for both directions and, when the protocol can say it, decodes again.
//! `cargo +nightly fuzz run filter_list`.
//!
//! Input: byte 0 picks the protocol (26 + b % 7), byte 1 the piece size
//! ([1, 3, 64, all][b % 4]); the rest is the list.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rsyncd_rs::protocol::Decoded;
use rsyncd_rs::protocol::filter::{FilterListDecoder, decode_filter_list, encode_filter_list};

fuzz_target!(|data: &[u8]| {
    let Some((&[p, s], list)) = data.split_first_chunk::<2>() else {
        return;
    };
    let protocol = 26 + i32::from(p % 7);
    let step = [1, 3, 64, usize::MAX][usize::from(s % 4)];
    let whole = decode_filter_list(list, protocol);

    let mut dec = FilterListDecoder::new(protocol);
    let (mut pos, mut avail): (usize, usize) = (0, step);
    let stepped = loop {
        let end = pos.saturating_add(avail).min(list.len());
        match dec.decode(&list[pos..end]) {
            Ok(Decoded::Done { value: None, used }) => {
                assert!(used > 0);
                pos += used;
                avail = step;
            }
            Ok(Decoded::Done {
                value: Some(rules),
                used,
            }) => {
                break Ok(Decoded::Done {
                    value: rules,
                    used: pos + used,
                });
            }
            Ok(Decoded::Needed(n)) => {
                assert!(n > 0);
                if end == list.len() {
                    break Ok(Decoded::Needed(n));
                }
                avail = avail.saturating_add(step);
            }
            Err(e) => break Err(e),
        }
    };
    match (&whole, &stepped) {
        // Before the end of the list only the rule-at-a-time decoder parses.
        (Ok(Decoded::Needed(_)), Ok(Decoded::Needed(_)) | Err(_)) => {}
        _ => assert_eq!(whole, stepped),
    }
    if let Ok(Decoded::Done { value: rules, .. }) = whole {
        for for_receiver in [false, true] {
            let mut out = Vec::new();
            if encode_filter_list(&rules, protocol, for_receiver, &mut out).is_ok() {
                let _ = decode_filter_list(&out, protocol);
            }
        }
    }
});
