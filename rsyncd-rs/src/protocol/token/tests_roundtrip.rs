//! Encoder/decoder round trips, the encoders' chunking rules, and hostile input.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use proptest::prelude::*;

use super::tests::{Basis, decode_file, record_lengths};
use super::*;

const ALL: [Compression; 5] = [
    Compression::None,
    Compression::Zlib,
    Compression::Zlibx,
    Compression::Zstd,
    Compression::Lz4,
];

/// One step of a file as the sender sees it.
#[derive(Debug, Clone)]
enum Op {
    Literal(Vec<u8>),
    /// A copy of basis block n sent as literal data (so zlib can refer back to it).
    LiteralOfBlock(u32),
    Block(u32),
}

/// A basis of `count` blocks of `blength`, partly repetitive so that matches occur.
fn basis_data(count: u32, blength: usize) -> Vec<u8> {
    let mut x = 0x1234_5678u32;
    (0..count as usize * blength)
        .map(|i| {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            if (i / 97) % 2 == 0 {
                b"abcdefgh"[i % 8]
            } else {
                (x >> 24) as u8
            }
        })
        .collect()
}

/// Per file: the new file's content and its block sequence.
type Expected = Vec<(Vec<u8>, Vec<u32>)>;

/// Encodes `files` in one session; returns the stream and, per file, the expected new
/// file and block sequence.
fn encode(
    c: Compression,
    level: Option<i32>,
    protocol: i32,
    basis: &Basis<'_>,
    files: &[Vec<Op>],
) -> (Vec<u8>, Expected) {
    let mut enc = TokenEncoder::new(c, level, protocol);
    let mut out = Vec::new();
    let mut expected = Vec::new();
    for ops in files {
        let mut file = Vec::new();
        let mut blocks = Vec::new();
        for op in ops {
            match op {
                Op::Literal(b) => {
                    enc.literal(b, &mut out).unwrap();
                    file.extend_from_slice(b);
                }
                Op::LiteralOfBlock(i) => {
                    enc.literal(basis.block(*i), &mut out).unwrap();
                    file.extend_from_slice(basis.block(*i));
                }
                Op::Block(i) => {
                    enc.block(*i, basis.block(*i), &mut out).unwrap();
                    file.extend_from_slice(basis.block(*i));
                    blocks.push(*i);
                }
            }
        }
        enc.end(&mut out).unwrap();
        expected.push((file, blocks));
    }
    (out, expected)
}

/// Decodes a session's stream with input offered `step` bytes at a time and checks it
/// against what was encoded.
fn check_round_trip(
    c: Compression,
    protocol: i32,
    basis: &Basis<'_>,
    stream: &[u8],
    expected: &[(Vec<u8>, Vec<u32>)],
    step: usize,
) -> Result<(), TestCaseError> {
    let mut dec = TokenDecoder::new(c, protocol);
    let mut pos = 0;
    for (file, blocks) in expected {
        let out = decode_file(&mut dec, stream, pos, step, Some(basis), true)
            .map_err(|e| TestCaseError::fail(format!("{c:?}: {e}")))?;
        prop_assert!(&out.file == file, "{:?}: file differs", c);
        prop_assert_eq!(&out.blocks, blocks);
        pos = out.end;
    }
    prop_assert_eq!(pos, stream.len());
    Ok(())
}

fn op_strategy(count: u32) -> impl Strategy<Value = Op> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 1..3000).prop_map(Op::Literal),
        (0..count).prop_map(Op::LiteralOfBlock),
        // Runs of consecutive blocks are the common case.
        (0..count, 1..6u32).prop_map(|(b, _)| Op::Block(b)),
        Just(Op::Block(0)),
        (0..count).prop_map(Op::Block),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn encode_then_decode_is_identity(
        files in prop::collection::vec(prop::collection::vec(op_strategy(90), 0..40), 1..4),
        step in prop_oneof![Just(usize::MAX), 1..64usize],
        protocol in prop_oneof![Just(30), Just(32)],
    ) {
        let data = basis_data(90, 300);
        let basis = Basis { data: &data, blength: 300 };
        for c in ALL {
            let (stream, expected) = encode(c, None, protocol, &basis, &files);
            check_round_trip(c, protocol, &basis, &stream, &expected, step)?;
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..4096)) {
        for c in ALL {
            drain(TokenDecoder::new(c, 32), &bytes);
        }
    }

    #[test]
    fn arbitrary_records_never_panic(
        payloads in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 1..8),
        flags in prop::collection::vec(any::<u8>(), 1..8),
    ) {
        // Well-framed records of garbage reach the decompressors themselves.
        let mut bytes = Vec::new();
        for (p, f) in payloads.iter().zip(flags.iter().cycle()) {
            bytes.extend_from_slice(&[0x40 | (p.len() >> 8) as u8, p.len() as u8]);
            bytes.extend_from_slice(p);
            bytes.push(*f);
        }
        for c in ALL {
            drain(TokenDecoder::new(c, 32), &bytes);
        }
    }
}

proptest! {
    // Runs of up to 70000 blocks are slow to expand one event at a time.
    #![proptest_config(ProptestConfig { cases: 6, ..ProptestConfig::default() })]

    #[test]
    fn runs_of_blocks_round_trip(
        starts in prop::collection::vec((0u32..200_000, 1u32..70_000, any::<bool>()), 1..3),
    ) {
        // Block data is irrelevant here; only the run and relative coding is exercised.
        let basis = Basis { data: &[], blength: 0 };
        let mut ops = Vec::new();
        for (start, len, gap) in starts {
            ops.extend((start..start + len).map(Op::Block));
            if gap {
                ops.push(Op::Literal(vec![1, 2, 3]));
            }
        }
        for c in ALL {
            let (stream, expected) = encode(c, None, 32, &basis, std::slice::from_ref(&ops));
            check_round_trip(c, 32, &basis, &stream, &expected, usize::MAX)?;
        }
    }
}

/// Decodes `bytes` until they run out or an error; every event must be bounded, and the
/// decoder's own buffers must stay within their fixed sizes.
fn drain(mut dec: TokenDecoder, bytes: &[u8]) {
    let mut pos = 0;
    let mut idle = 0;
    loop {
        match dec.decode(&bytes[pos..]) {
            Err(_) | Ok(Decoded::Needed(_)) => return,
            Ok(Decoded::Done { value, used }) => {
                if let TokenEvent::Literal(b) = value {
                    assert!(b.len() <= MAX_LITERAL_EVENT);
                }
                // Events without input come only from held output or runs of blocks.
                idle = if used == 0 { idle + 1 } else { 0 };
                assert!(idle <= 70_000, "no progress");
                pos += used;
                let _ = dec.matched_block_data(&[7; 100]);
            }
        }
    }
}

/// A literal that repeats a matched block compresses to a back-reference under zlib and
/// decodes only because the receiver fed the block into its history.
#[test]
fn zlib_literal_refers_to_matched_data() {
    let data = basis_data(4, 3000);
    let basis = Basis {
        data: &data,
        blength: 3000,
    };
    let files = vec![vec![Op::Block(1), Op::LiteralOfBlock(1), Op::Block(3)]];
    let (zlib, expected) = encode(Compression::Zlib, None, 32, &basis, &files);
    let (zlibx, _) = encode(Compression::Zlibx, None, 32, &basis, &files);
    assert!(
        zlib.len() + 100 < zlibx.len(),
        "zlib {} zlibx {}",
        zlib.len(),
        zlibx.len()
    );
    check_round_trip(Compression::Zlib, 32, &basis, &zlib, &expected, usize::MAX).unwrap();
    let mut dec = TokenDecoder::new(Compression::Zlib, 32);
    match decode_file(&mut dec, &zlib, 0, usize::MAX, Some(&basis), false) {
        Err(_) => {}
        Ok(out) => assert!(out.file != expected[0].0),
    }
}

/// Blocks over 65535 bytes go into the history in pieces; before protocol 31 both sides
/// repeat the first piece instead of advancing.
#[test]
fn zlib_long_blocks_round_trip_at_both_protocols() {
    let data = basis_data(3, 70_000);
    let basis = Basis {
        data: &data,
        blength: 70_000,
    };
    let files = vec![vec![
        Op::Block(0),
        Op::LiteralOfBlock(0),
        Op::Block(2),
        Op::LiteralOfBlock(1),
    ]];
    for protocol in [30, 31] {
        let (stream, expected) = encode(Compression::Zlib, None, protocol, &basis, &files);
        check_round_trip(
            Compression::Zlib,
            protocol,
            &basis,
            &stream,
            &expected,
            1000,
        )
        .unwrap();
    }
}

/// Every level gives a stream the default decoder reads.
#[test]
fn levels_round_trip() {
    let data = basis_data(8, 5000);
    let basis = Basis {
        data: &data,
        blength: 5000,
    };
    let files = vec![vec![
        Op::Block(0),
        Op::LiteralOfBlock(0),
        Op::Literal(data[..40_000].to_vec()),
        Op::Block(7),
    ]];
    for (c, levels) in [
        (Compression::Zlib, vec![-1, 0, 1, 9, 42]),
        (Compression::Zlibx, vec![0, 6]),
        (Compression::Zstd, vec![-5, 0, 1, 19, 99]),
    ] {
        for level in levels {
            let (stream, expected) = encode(c, Some(level), 32, &basis, &files);
            check_round_trip(c, 32, &basis, &stream, &expected, usize::MAX).unwrap();
        }
    }
}

/// Plain literal runs are at most 32768 bytes; longer runs from other senders decode.
#[test]
fn plain_chunking() {
    let mut enc = TokenEncoder::new(Compression::None, None, 32);
    let mut out = Vec::new();
    enc.literal(&[9; 100_000], &mut out).unwrap();
    enc.end(&mut out).unwrap();
    let mut runs = Vec::new();
    let mut at = 0;
    loop {
        let n = i32::from_le_bytes(out[at..at + 4].try_into().unwrap());
        if n == 0 {
            break;
        }
        runs.push(n);
        at += 4 + n as usize;
    }
    assert_eq!(runs, [32768, 32768, 32768, 1696]);

    let mut long = 70_000i32.to_le_bytes().to_vec();
    long.extend_from_slice(&[5; 70_000]);
    long.extend_from_slice(&[0xfe, 0xff, 0xff, 0xff, 0, 0, 0, 0]);
    let mut dec = TokenDecoder::new(Compression::None, 32);
    let out = decode_file(&mut dec, &long, 0, usize::MAX, None, true).unwrap();
    assert_eq!((out.literal_len, out.blocks), (70_000, vec![1]));

    let mut huge = (MAX_PLAIN_LITERAL_RUN + 1).to_le_bytes().to_vec();
    huge.push(0);
    assert!(matches!(
        TokenDecoder::new(Compression::None, 32).decode(&huge),
        Err(WireError::TooLarge { .. })
    ));
}

/// zlib output leaves in records of at most 16383 bytes; incompressible data needs
/// several, and the trimmed sync marker still lets the receiver continue.
#[test]
fn deflate_records_are_bounded() {
    let mut x = 99u32;
    let noise: Vec<u8> = (0..200_000)
        .map(|_| {
            x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (x >> 24) as u8
        })
        .collect();
    for c in [Compression::Zlib, Compression::Zstd, Compression::Lz4] {
        let mut enc = TokenEncoder::new(c, None, 32);
        let mut out = Vec::new();
        enc.literal(&noise, &mut out).unwrap();
        enc.end(&mut out).unwrap();
        let lens = record_lengths(&out);
        assert!(lens.iter().all(|&n| n <= 16383), "{c:?}");
        let mut dec = TokenDecoder::new(c, 32);
        let got = decode_file(&mut dec, &out, 0, 777, None, true).unwrap();
        assert!(got.file == noise, "{c:?}");
    }
}

/// lz4 takes at most 16383 input bytes per block: a 32768-byte piece is 16383 + 16383 + 2.
#[test]
fn lz4_chunking() {
    let text: Vec<u8> = b"the quick brown fox "
        .iter()
        .copied()
        .cycle()
        .take(32_768)
        .collect();
    let mut enc = TokenEncoder::new(Compression::Lz4, None, 32);
    let mut out = Vec::new();
    enc.literal(&text, &mut out).unwrap();
    enc.end(&mut out).unwrap();
    let lens = record_lengths(&out);
    assert_eq!(lens.len(), 3);
    let mut dec = TokenDecoder::new(Compression::Lz4, 32);
    let mut sizes = Vec::new();
    let mut at = 0;
    while let Decoded::Done {
        value: TokenEvent::Literal(b),
        used,
    } = dec.decode(&out[at..]).unwrap()
    {
        sizes.push(b.len());
        at += used;
    }
    assert_eq!(sizes, [16383, 16383, 2]);
}

/// A record that inflates to megabytes comes out in bounded pieces.
#[test]
fn inflation_is_bounded_per_event() {
    let zeros = vec![0u8; 8 << 20];
    for c in [Compression::Zlib, Compression::Zstd] {
        let mut enc = TokenEncoder::new(c, Some(9), 32);
        let mut out = Vec::new();
        enc.literal(&zeros, &mut out).unwrap();
        enc.end(&mut out).unwrap();
        let mut dec = TokenDecoder::new(c, 32);
        let got = decode_file(&mut dec, &out, 0, usize::MAX, None, true).unwrap();
        assert_eq!(got.file.len(), zeros.len());
        assert!(got.events > zeros.len() / MAX_LITERAL_EVENT);
    }
}

/// Flag bytes and indexes a stock sender never writes are refused.
#[test]
fn hostile_framing_is_refused() {
    let bad: [&[u8]; 7] = [
        &[0x01],                               // not TOKEN_LONG/TOKENRUN_LONG
        &[0x3f],                               // likewise
        &[0x20, 0xff, 0xff, 0xff, 0xff],       // negative block index
        &[0x20, 0xff, 0xff, 0xff, 0x7f],       // index 0x7fffffff > MAX_TOKEN_INDEX
        &[0xc0, 0x00, 0x00],                   // run of zero
        &[0x21, 0xfe, 0xff, 0xff, 0x7f, 1, 0], // run past MAX_TOKEN_INDEX
        &[0x40, 0x03, 1, 2, 3, 0x00],          // garbage data then END
    ];
    for c in [
        Compression::Zlib,
        Compression::Zlibx,
        Compression::Zstd,
        Compression::Lz4,
    ] {
        for b in bad {
            let mut dec = TokenDecoder::new(c, 32);
            let mut pos = 0;
            let err = loop {
                match dec.decode(&b[pos..]) {
                    Err(e) => break Some(e),
                    Ok(Decoded::Needed(_)) => break None,
                    Ok(Decoded::Done { used, .. }) => pos += used,
                }
            };
            assert!(err.is_some(), "{c:?} accepted {b:02x?}");
        }
    }
}

/// A zstd frame asking for a 1 GiB window is refused before anything is allocated.
#[test]
fn zstd_window_is_limited() {
    let frame = [0x28, 0xb5, 0x2f, 0xfd, 0x00, 20 << 3, 0x01, 0x00, 0x00];
    let mut rec = vec![0x40, frame.len() as u8];
    rec.extend_from_slice(&frame);
    let mut dec = TokenDecoder::new(Compression::Zstd, 32);
    assert!(dec.decode(&rec).is_err());
    // A lowered limit refuses what the default accepts.
    let frame = [0x28, 0xb5, 0x2f, 0xfd, 0x00, 13 << 3, 0x01, 0x00, 0x00];
    let mut rec = vec![0x40, frame.len() as u8];
    rec.extend_from_slice(&frame);
    let mut dec = TokenDecoder::new(Compression::Zstd, 32);
    assert!(dec.decode(&rec).is_ok());
    let mut dec = TokenDecoder::new(Compression::Zstd, 32).with_zstd_window_log_max(20);
    assert!(dec.decode(&rec).is_err());
}

#[test]
fn names_round_trip() {
    for c in ALL {
        assert_eq!(Compression::from_name(c.name()), Some(c));
    }
    assert_eq!(Compression::from_name("gzip"), None);
}

/// After literal data sent without a flush, a token with no new data still flushes: lz4
/// then writes an empty block, as upstream's LZ4_compress_default of 0 bytes does.
#[test]
fn flush_pending_without_new_data() {
    let data = basis_data(2, 100);
    let basis = Basis {
        data: &data,
        blength: 100,
    };
    for c in ALL {
        let mut enc = TokenEncoder::new(c, None, 32);
        let mut out = Vec::new();
        // Exactly two chunks: the first goes out data-only, the second with the token.
        enc.literal(&[3; 2 * CHUNK_SIZE], &mut out).unwrap();
        enc.block(1, basis.block(1), &mut out).unwrap();
        enc.end(&mut out).unwrap();
        let expected = vec![(
            [vec![3; 2 * CHUNK_SIZE], data[100..].to_vec()].concat(),
            vec![1],
        )];
        check_round_trip(c, 32, &basis, &out, &expected, 100).unwrap();
    }
    let mut lz4 = framing::CompressedEncoder::new(lz4::Lz4Deflater::new());
    let mut out = Vec::new();
    lz4.send(Tok::DataOnly, b"abc", &[], &mut out).unwrap();
    lz4.send(Tok::Block(0), &[], &[], &mut out).unwrap();
    lz4.send(Tok::End, &[], &[], &mut out).unwrap();
    // The empty block, TOKEN_REL for block 0, END_FLAG.
    assert_eq!(out[out.len() - 5..], [0x40, 0x01, 0x00, 0x80, 0x00]);
}
