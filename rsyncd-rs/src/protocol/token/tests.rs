//! Decoding the token streams of real sessions between stock rsync 3.5.0 peers
//! (`testdata/captures/b-*`, see `README-b.md` there). Offsets are raw offsets into the
//! `*-c2s.bin` files, as quoted in the `*.decoded.txt` files.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;

macro_rules! capture {
    ($name:literal) => {
        include_bytes!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/testdata/captures/",
            $name
        ))
    };
}

/// The data stream (MSG_DATA payloads) of a multiplexed capture, with a map back to raw
/// offsets.
pub(super) struct DataStream {
    pub(super) data: Vec<u8>,
    /// (raw offset of a payload, its offset in `data`, its length)
    segments: Vec<(usize, usize, usize)>,
}

impl DataStream {
    /// De-frames `raw` from the frame header at `first_frame`: each frame is a 4-byte LE
    /// header `(7 + code) << 24 | len`; only MSG_DATA (tag 7) payloads are kept.
    pub(super) fn new(raw: &[u8], first_frame: usize) -> Self {
        let mut data = Vec::new();
        let mut segments = Vec::new();
        let mut at = first_frame;
        while at + 4 <= raw.len() {
            let word = u32::from_le_bytes(raw[at..at + 4].try_into().unwrap());
            let (tag, len) = (word >> 24, (word & 0x00ff_ffff) as usize);
            let payload = &raw[at + 4..at + 4 + len];
            if tag == 7 {
                segments.push((at + 4, data.len(), len));
                data.extend_from_slice(payload);
            }
            at += 4 + len;
        }
        Self { data, segments }
    }

    /// The data-stream offset of the raw offset `raw`.
    pub(super) fn offset(&self, raw: usize) -> usize {
        let &(r, d, _) = self
            .segments
            .iter()
            .find(|&&(r, _, len)| (r..r + len).contains(&raw))
            .expect("raw offset inside a data frame");
        d + (raw - r)
    }
}

/// A basis file cut into blocks as a sum head describes it.
pub(super) struct Basis<'a> {
    pub(super) data: &'a [u8],
    pub(super) blength: usize,
}

impl Basis<'_> {
    pub(super) fn block(&self, i: u32) -> &[u8] {
        let start = i as usize * self.blength;
        &self.data[start..(start + self.blength).min(self.data.len())]
    }
}

/// What decoding one file's tokens gave.
#[derive(Debug, Default)]
pub(super) struct Outcome {
    pub(super) file: Vec<u8>,
    pub(super) blocks: Vec<u32>,
    pub(super) literal_len: usize,
    pub(super) events: usize,
    /// Stream offset just after END.
    pub(super) end: usize,
}

/// Decodes one file starting at `data[pos..]`, offering the decoder `step` more bytes
/// each time it answers Needed; matched blocks come from `basis` and are handed back.
pub(super) fn decode_file(
    dec: &mut TokenDecoder,
    data: &[u8],
    mut pos: usize,
    step: usize,
    basis: Option<&Basis<'_>>,
    feed_history: bool,
) -> Result<Outcome, WireError> {
    enum Ev {
        Lit(Vec<u8>),
        Block(u32),
        End,
    }
    let mut out = Outcome::default();
    let mut avail = step;
    loop {
        let end = pos.saturating_add(avail).min(data.len());
        let (ev, used) = match dec.decode(&data[pos..end])? {
            Decoded::Needed(n) => {
                assert!(n > 0);
                assert!(end < data.len(), "stream ended inside a file");
                avail = avail.saturating_add(step);
                continue;
            }
            Decoded::Done { value, used } => {
                let ev = match value {
                    TokenEvent::Literal(b) => {
                        assert!(b.len() <= MAX_LITERAL_EVENT);
                        Ev::Lit(b.to_vec())
                    }
                    TokenEvent::Block(i) => Ev::Block(i),
                    TokenEvent::End => Ev::End,
                };
                (ev, used)
            }
        };
        out.events += 1;
        pos += used;
        avail = step;
        match ev {
            Ev::Lit(b) => {
                out.literal_len += b.len();
                out.file.extend_from_slice(&b);
            }
            Ev::Block(i) => {
                out.blocks.push(i);
                if let Some(basis) = basis {
                    let blk = basis.block(i);
                    out.file.extend_from_slice(blk);
                    if feed_history {
                        dec.matched_block_data(blk)?;
                    }
                }
            }
            Ev::End => {
                out.end = pos;
                return Ok(out);
            }
        }
    }
}

/// rsync's xxh128 whole-file checksum: low 64 bits then high, each little-endian.
pub(super) fn xxh128(data: &[u8]) -> [u8; 16] {
    xxhash_rust::xxh3::xxh3_128(data).to_le_bytes()
}

/// Python's `random.Random(seed)`, to rebuild the files README-b.md describes.
struct Mt {
    state: [u32; 624],
    index: usize,
}

impl Mt {
    /// Python seeds an int with init_by_array over its 32-bit words.
    fn python(seed: u32) -> Self {
        let mut mt = [0u32; 624];
        mt[0] = 19_650_218;
        for i in 1..624 {
            mt[i] = 1_812_433_253u32
                .wrapping_mul(mt[i - 1] ^ (mt[i - 1] >> 30))
                .wrapping_add(i as u32);
        }
        let (mut i, mut j) = (1usize, 0u32);
        for _ in 0..624 {
            mt[i] = (mt[i] ^ (mt[i - 1] ^ (mt[i - 1] >> 30)).wrapping_mul(1_664_525))
                .wrapping_add(seed)
                .wrapping_add(j);
            i += 1;
            j = 0;
            if i >= 624 {
                mt[0] = mt[623];
                i = 1;
            }
        }
        for _ in 0..623 {
            mt[i] = (mt[i] ^ (mt[i - 1] ^ (mt[i - 1] >> 30)).wrapping_mul(1_566_083_941))
                .wrapping_sub(i as u32);
            i += 1;
            if i >= 624 {
                mt[0] = mt[623];
                i = 1;
            }
        }
        mt[0] = 0x8000_0000;
        Self {
            state: mt,
            index: 624,
        }
    }

    fn next_u32(&mut self) -> u32 {
        if self.index >= 624 {
            for i in 0..624 {
                let y = (self.state[i] & 0x8000_0000) | (self.state[(i + 1) % 624] & 0x7fff_ffff);
                let mag = if y & 1 == 1 { 0x9908_b0df } else { 0 };
                self.state[i] = self.state[(i + 397) % 624] ^ (y >> 1) ^ mag;
            }
            self.index = 0;
        }
        let mut y = self.state[self.index];
        self.index += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^ (y >> 18)
    }

    /// `bytes(r.getrandbits(8) for _ in range(n))`, how the captures' binaries were made.
    fn bytes(seed: u32, n: usize) -> Vec<u8> {
        let mut mt = Self::python(seed);
        (0..n).map(|_| (mt.next_u32() >> 24) as u8).collect()
    }
}

/// comp.txt as the push captures carry it (the basis of the compressed deltas).
pub(super) fn comp_txt() -> Vec<u8> {
    let s = DataStream::new(capture!("b-d-push-zlib-c2s.bin"), 139);
    let mut dec = TokenDecoder::new(Compression::Zlib, 32);
    decode_file(&mut dec, &s.data, s.offset(204), usize::MAX, None, true)
        .unwrap()
        .file
}

/// b-c-delta-p32 (§5.6): plain tokens, 1 MiB basis with blocks 512..=515 replaced.
#[test]
fn plain_delta_capture_rebuilds_the_file() {
    let s = DataStream::new(capture!("b-c-delta-p32-c2s.bin"), 122);
    let old = Mt::bytes(777, 1 << 20);
    let basis = Basis {
        data: &old,
        blength: 1024,
    };
    for step in [usize::MAX, 3, 1000] {
        let mut dec = TokenDecoder::new(Compression::None, 32);
        let out = decode_file(&mut dec, &s.data, s.offset(186), step, Some(&basis), true).unwrap();
        let expected: Vec<u32> = (0..512).chain(516..1024).collect();
        assert_eq!(out.blocks, expected);
        assert_eq!(out.literal_len, 4096);
        assert_eq!(out.end, s.offset(8370));
        let mut new = old.clone();
        new[524_288..524_288 + 4096].copy_from_slice(&Mt::bytes(999, 4096));
        assert_eq!(out.file.len(), 1 << 20);
        assert!(out.file == new, "rebuilt file differs");
        assert_eq!(s.data[out.end..out.end + 16], xxh128(&out.file));
    }
}

/// b-a-push-p32: four new files in one session, plain literal runs of 32768.
#[test]
fn plain_push_capture_gives_each_file() {
    let s = DataStream::new(capture!("b-a-push-p32-c2s.bin"), 122);
    let mut dec = TokenDecoder::new(Compression::None, 32);
    let files = [
        (350, 370, Some(b"hello rsync\n".to_vec()), 12),
        (405, 205_257, Some(Mt::bytes(12345, 204_800)), 204_800),
        (205_292, 205_296, Some(Vec::new()), 0),
        (205_341, 205_400, None, 51),
    ];
    for (tokens, sum, content, len) in files {
        let out = decode_file(&mut dec, &s.data, s.offset(tokens), 4096, None, true).unwrap();
        assert_eq!(out.end, s.offset(sum));
        assert!(out.blocks.is_empty());
        assert_eq!(out.file.len(), len);
        if let Some(content) = content {
            assert!(out.file == content, "file at {tokens} differs");
        }
        assert_eq!(s.data[out.end..out.end + 16], xxh128(&out.file));
    }
}

/// b-d-push-zlib: one 13543-byte record, then END.
#[test]
fn zlib_push_capture_inflates_to_comp_txt() {
    let s = DataStream::new(capture!("b-d-push-zlib-c2s.bin"), 139);
    assert_eq!(s.data[s.offset(204)..s.offset(204) + 2], [0x74, 0xe7]);
    for step in [usize::MAX, 1, 5000] {
        let mut dec = TokenDecoder::new(Compression::Zlib, 32);
        let out = decode_file(&mut dec, &s.data, s.offset(204), step, None, true).unwrap();
        assert_eq!(out.file.len(), 122_356);
        assert_eq!(out.end, s.offset(13_750));
        assert_eq!(s.data[out.end..out.end + 16], xxh128(&out.file));
    }
}

/// b-d-delta-zlib (§7.2/7.3): `c0 56 00`, 99 bytes of deflate, `c2 56 00`, END; the
/// literal refers back into matched data, so it inflates only with history feeding.
#[test]
fn zlib_delta_capture_needs_history_feeding() {
    let old = comp_txt();
    let basis = Basis {
        data: &old,
        blength: 700,
    };
    let s = DataStream::new(capture!("b-d-delta-zlib-c2s.bin"), 139);
    let at = s.offset(204);
    assert_eq!(s.data[at..at + 3], [0xc0, 0x56, 0x00]);
    for step in [usize::MAX, 1, 2] {
        let mut dec = TokenDecoder::new(Compression::Zlib, 32);
        let out = decode_file(&mut dec, &s.data, at, step, Some(&basis), true).unwrap();
        check_comp_delta(&out, &s.data, s.offset(312));
    }
    // Without the matched data in its history the inflater cannot resolve the literal.
    let mut dec = TokenDecoder::new(Compression::Zlib, 32);
    match decode_file(&mut dec, &s.data, at, usize::MAX, Some(&basis), false) {
        Err(_) => {}
        Ok(out) => assert_ne!(s.data[out.end..out.end + 16], xxh128(&out.file)),
    }
}

/// b-d-delta-zlibx: the same delta, 163 bytes of deflate, no history feeding.
#[test]
fn zlibx_delta_capture_rebuilds_the_file() {
    let old = comp_txt();
    let basis = Basis {
        data: &old,
        blength: 700,
    };
    let s = DataStream::new(capture!("b-d-delta-zlibx-c2s.bin"), 138);
    let at = s.offset(203);
    assert_eq!(s.data[at + 3..at + 5], [0x40, 163]);
    for step in [usize::MAX, 1] {
        let mut dec = TokenDecoder::new(Compression::Zlibx, 32);
        let out = decode_file(&mut dec, &s.data, at, step, Some(&basis), true).unwrap();
        check_comp_delta(&out, &s.data, s.offset(375));
    }
}

/// The compressed deltas: blocks 0..=86 and 88..=174 of comp.txt (blength 700, last
/// block 556 bytes), one literal stretch of 880 bytes, 122536 bytes in all.
fn check_comp_delta(out: &Outcome, data: &[u8], sum_at: usize) {
    let expected: Vec<u32> = (0..=86).chain(88..=174).collect();
    assert_eq!(out.blocks, expected);
    assert_eq!(out.literal_len, 122_536 - (173 * 700 + 556));
    assert_eq!(out.file.len(), 122_536);
    assert_eq!(out.end, sum_at);
    assert_eq!(data[out.end..out.end + 16], xxh128(&out.file));
}

/// b-d-push-zstd and b-d-push-z-default: records of 16383 and 1477 bytes of one zstd
/// stream, then END.
#[test]
fn zstd_push_captures_decompress_to_comp_txt() {
    let comp = comp_txt();
    let cases: [(&[u8], usize, usize, usize); 2] = [
        (capture!("b-d-push-zstd-c2s.bin"), 146, 211, 18_076),
        (capture!("b-d-push-z-default-c2s.bin"), 144, 209, 18_074),
    ];
    for (raw, frame, tokens, sum) in cases {
        let s = DataStream::new(raw, frame);
        for step in [usize::MAX, 1, 999] {
            let mut dec = TokenDecoder::new(Compression::Zstd, 32);
            let out = decode_file(&mut dec, &s.data, s.offset(tokens), step, None, true).unwrap();
            assert!(out.file == comp, "zstd capture differs from comp.txt");
            assert_eq!(out.end, s.offset(sum));
            assert_eq!(s.data[out.end..out.end + 16], xxh128(&out.file));
        }
    }
}

/// b-d-push-lz4: eleven independent blocks (16383 + 16383 + 2 input bytes per 32 KiB).
#[test]
fn lz4_push_capture_decompresses_to_comp_txt() {
    let comp = comp_txt();
    let s = DataStream::new(capture!("b-d-push-lz4-c2s.bin"), 145);
    for step in [usize::MAX, 1, 7000] {
        let mut dec = TokenDecoder::new(Compression::Lz4, 32);
        let out = decode_file(&mut dec, &s.data, s.offset(210), step, None, true).unwrap();
        assert!(out.file == comp, "lz4 capture differs from comp.txt");
        assert_eq!(out.end, s.offset(53_074));
        assert_eq!(s.data[out.end..out.end + 16], xxh128(&out.file));
    }
}

/// Our encoder writes b-c-delta-p32's token stream byte for byte.
#[test]
fn plain_encoder_matches_the_capture() {
    let s = DataStream::new(capture!("b-c-delta-p32-c2s.bin"), 122);
    let old = Mt::bytes(777, 1 << 20);
    let mut enc = TokenEncoder::new(Compression::None, None, 32);
    let mut out = Vec::new();
    for b in 0..512u32 {
        enc.block(b, &old[b as usize * 1024..][..1024], &mut out)
            .unwrap();
    }
    enc.literal(&Mt::bytes(999, 4096), &mut out).unwrap();
    for b in 516..1024u32 {
        enc.block(b, &old[b as usize * 1024..][..1024], &mut out)
            .unwrap();
    }
    enc.end(&mut out).unwrap();
    assert!(out[..] == s.data[s.offset(186)..s.offset(8370)]);
}

/// Our encoder writes big.bin of b-a-push-p32 as stock did: runs of 32768, then 8192.
#[test]
fn plain_encoder_matches_the_push_capture() {
    let s = DataStream::new(capture!("b-a-push-p32-c2s.bin"), 122);
    let mut enc = TokenEncoder::new(Compression::None, None, 32);
    let mut out = Vec::new();
    // Hand the data over in odd pieces: the chunking must not depend on them.
    for piece in Mt::bytes(12345, 204_800).chunks(10_000) {
        enc.literal(piece, &mut out).unwrap();
    }
    enc.end(&mut out).unwrap();
    assert!(out[..] == s.data[s.offset(405)..s.offset(205_257)]);
}

/// The run coding of our compressed encoders matches b-d-delta-zlib's framing, and
/// the lz4 encoder cuts comp.txt into the capture's eleven records.
#[test]
fn compressed_encoders_frame_like_the_captures() {
    let old = comp_txt();
    let s = DataStream::new(capture!("b-d-delta-zlib-c2s.bin"), 139);
    let mut dec = TokenDecoder::new(Compression::Zlib, 32);
    let basis = Basis {
        data: &old,
        blength: 700,
    };
    let new = decode_file(
        &mut dec,
        &s.data,
        s.offset(204),
        usize::MAX,
        Some(&basis),
        true,
    )
    .unwrap()
    .file;
    for c in [
        Compression::Zlib,
        Compression::Zlibx,
        Compression::Zstd,
        Compression::Lz4,
    ] {
        let mut enc = TokenEncoder::new(c, None, 32);
        let mut out = Vec::new();
        for b in 0..=86u32 {
            enc.block(b, basis.block(b), &mut out).unwrap();
        }
        enc.literal(&new[87 * 700..87 * 700 + 880], &mut out)
            .unwrap();
        for b in 88..=174u32 {
            enc.block(b, basis.block(b), &mut out).unwrap();
        }
        enc.end(&mut out).unwrap();
        assert_eq!(out[..3], [0xc0, 0x56, 0x00], "{c:?}");
        assert_eq!(out[out.len() - 4..], [0xc2, 0x56, 0x00, 0x00], "{c:?}");
        let mut dec = TokenDecoder::new(c, 32);
        let got = decode_file(&mut dec, &out, 0, usize::MAX, Some(&basis), true).unwrap();
        assert!(got.file == new, "{c:?} round trip differs");
    }

    let mut enc = TokenEncoder::new(Compression::Lz4, None, 32);
    let mut out = Vec::new();
    enc.literal(&old, &mut out).unwrap();
    enc.end(&mut out).unwrap();
    let records = record_lengths(&out);
    assert_eq!(records.len(), 11);
}

/// The payload lengths of the DEFLATED_DATA records of a stream without tokens.
pub(super) fn record_lengths(stream: &[u8]) -> Vec<usize> {
    let mut lens = Vec::new();
    let mut at = 0;
    while stream[at] != 0 {
        assert_eq!(stream[at] & 0xc0, 0x40, "only data records expected");
        let n = ((stream[at] as usize & 0x3f) << 8) | stream[at + 1] as usize;
        lens.push(n);
        at += 2 + n;
    }
    assert_eq!(at + 1, stream.len());
    lens
}
