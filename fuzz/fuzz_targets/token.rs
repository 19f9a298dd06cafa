//! Arbitrary bytes as the token stream of a file transfer, for each compression, read as
//! the receiver does: the stream is offered in growing pieces (what has arrived so far),
//! every matched block is handed back with `matched_block_data` (zlib feeds it into its
//! history), and after each file's END the whole-file checksum is skipped and the next
//! file follows on the same decoder. `cargo +nightly fuzz run token`.
//!
//! Input: byte 0 picks the compression ([none, zlib, zlibx, zstd, lz4][b % 5]) and the
//! protocol (29 + b / 5 % 4); byte 1 the block length handed back
//! ([0, 1, 700, 1024, 4096, 65535, 65536, 131072][b % 8]); byte 2 the piece size
//! ([1, 2, 3, 7, 64, 1000, 16384, all][b % 8]); byte 3 the checksum length after END
//! ([16, 0, 8, 20][b % 4]). The rest is the stream.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rsyncd_rs::protocol::Decoded;
use rsyncd_rs::protocol::token::{Compression, MAX_LITERAL_EVENT, TokenDecoder, TokenEvent};

/// Work limits per input, so that long runs of blocks or highly compressed data stay
/// quick (the decoder itself bounds only each event).
const MAX_EVENTS: usize = 100_000;
const MAX_OUTPUT: usize = 16 << 20;

fuzz_target!(|data: &[u8]| {
    let Some((c, stream)) = data.split_first_chunk::<4>() else {
        return;
    };
    let compression = [
        Compression::None,
        Compression::Zlib,
        Compression::Zlibx,
        Compression::Zstd,
        Compression::Lz4,
    ][usize::from(c[0] % 5)];
    let protocol = 29 + i32::from(c[0] / 5 % 4);
    let blength = [0, 1, 700, 1024, 4096, 65535, 65536, 131072][usize::from(c[1] % 8)];
    let step = [1, 2, 3, 7, 64, 1000, 16384, usize::MAX][usize::from(c[2] % 8)];
    let sum_len = [16, 0, 8, 20][usize::from(c[3] % 4)];
    let block = vec![0x5au8; blength];

    let mut dec = TokenDecoder::new(compression, protocol);
    let (mut pos, mut avail): (usize, usize) = (0, step);
    let (mut events, mut output, mut idle) = (0usize, 0usize, 0usize);
    while events < MAX_EVENTS && output < MAX_OUTPUT {
        let end = pos.saturating_add(avail).min(stream.len());
        let (is_block, is_end, used) = match dec.decode(&stream[pos..end]) {
            Ok(Decoded::Done { value, used }) => {
                assert!(used <= end - pos);
                match value {
                    TokenEvent::Literal(b) => {
                        assert!(b.len() <= MAX_LITERAL_EVENT);
                        output += b.len();
                        (false, false, used)
                    }
                    TokenEvent::Block(_) => (true, false, used),
                    TokenEvent::End => (false, true, used),
                }
            }
            Ok(Decoded::Needed(n)) => {
                assert!(n > 0);
                if end == stream.len() {
                    return;
                }
                avail = avail.saturating_add(step);
                continue;
            }
            Err(_) => return,
        };
        events += 1;
        pos += used;
        avail = step;
        // Events that take no input come from held output or runs, which are bounded.
        idle = if used == 0 { idle + 1 } else { 0 };
        assert!(idle <= 70_000, "no progress");
        if is_block {
            output += blength;
            if dec.matched_block_data(&block).is_err() {
                return;
            }
        }
        if is_end {
            pos = pos.saturating_add(sum_len).min(stream.len());
        }
    }
});
