//! Arbitrary bytes as a sum head and the block sums after it: the head a sending peer
//! echoes before a file's tokens (what the receiver reads), and a generator's head with
//! its table (what a sender reads). Decoded heads and tables must re-encode to the bytes
//! they came from. `cargo +nightly fuzz run sum_head`.
//!
//! Input: byte 0 picks the protocol (20 + b % 13), byte 1 the transfer digest length
//! ([16, 8, 20, 1, 2, 32, 64, 0][b % 8]); the rest is the stream.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rsyncd_rs::protocol::Decoded;
use rsyncd_rs::protocol::sums::{
    MAX_SUM_COUNT, SUM_LENGTH, SumHead, decode_block_sum, decode_block_sums, decode_sum_head,
    encode_block_sums, encode_sum_head, max_block_size,
};

fuzz_target!(|data: &[u8]| {
    let Some((&[p, d], stream)) = data.split_first_chunk::<2>() else {
        return;
    };
    let protocol = 20 + i32::from(p % 13);
    let digest_len = [16, 8, 20, 1, 2, 32, 64, 0][usize::from(d % 8)];
    let (head, used) = match decode_sum_head(stream, protocol, digest_len) {
        Ok(Decoded::Done { value, used }) => (value, used),
        Ok(Decoded::Needed(n)) => {
            assert!(n > 0 && stream.len() + n == SumHead::wire_len(protocol));
            return;
        }
        Err(_) => return,
    };
    // Every limit upstream's read_sum_head() checks holds.
    assert_eq!(used, SumHead::wire_len(protocol));
    assert!((0..=MAX_SUM_COUNT).contains(&head.count));
    assert!((0..=max_block_size(protocol)).contains(&head.blength));
    assert!(head.count == 0 || head.blength > 0);
    assert!(head.s2length >= 0 && head.s2length as usize <= digest_len.min(SUM_LENGTH));
    assert!((0..=head.blength).contains(&head.remainder));
    let mut out = Vec::new();
    encode_sum_head(&mut out, &head, protocol);
    assert_eq!(out, stream[..used]);
    let _ = (head.basis_len(), head.block_len(0), head.block_offset(1));

    // The table, whole (allocated only once all of it is there) and one sum at a time.
    let rest = &stream[used..];
    let want = head.sums_wire_len();
    match decode_block_sums(rest, &head) {
        Ok(Decoded::Done { value, used: n }) => {
            assert_eq!(n, want);
            assert_eq!(value.sums.len(), head.count as usize);
            let mut again = Vec::new();
            encode_block_sums(&mut again, &value);
            assert_eq!(again, rest[..n]);
        }
        Ok(Decoded::Needed(n)) => assert_eq!(rest.len() + n, want),
        Err(e) => panic!("a valid head's table failed: {e}"),
    }
    let mut at = 0;
    for _ in 0..head.count {
        match decode_block_sum(&rest[at..], &head) {
            Ok(Decoded::Done { used, .. }) => at += used,
            Ok(Decoded::Needed(_)) => break,
            Err(e) => panic!("a valid head's block sum failed: {e}"),
        }
    }
});
