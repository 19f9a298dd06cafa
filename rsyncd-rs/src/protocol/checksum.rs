//! The checksums of the transfer: the rolling block sum (sum1), the strong block sum (sum2)
//! and the whole-file sum, with the seed rules of each digest and protocol
//! (upstream: checksum.c, lib/mdfour.c).
//!
//! Which digest a session uses is decided once, into a [`ChecksumSpec`]; everything below
//! takes that value instead of asking about protocol versions again.

use md4::Md4;
use md5::{Digest as _, Md5};
use sha1::Sha1;
use xxhash_rust::xxh3::{self, Xxh3Default};
use xxhash_rust::xxh64::{self, Xxh64};

/// The longest digest of any transfer checksum (SHA-1, 20 bytes).
/// Upstream: rsync.h, MAX_DIGEST_LEN.
pub const MAX_DIGEST_LEN: usize = 20;

/// The rolling checksum of a block: bytes are taken as **signed** chars and CHAR_OFFSET is 0;
/// `s1` is their sum, `s2` the sum of the running `s1`, and the result `s1 & 0xffff | s2 << 16`.
/// Upstream: checksum.c, get_checksum1().
pub fn rolling_checksum(block: &[u8]) -> u32 {
    Rolling::new(block).value()
}

/// The byte as upstream's `schar`, widened with sign extension into mod-2^32 arithmetic.
fn signed(b: u8) -> u32 {
    i32::from(b as i8) as u32
}

/// The width of the lanes [`rows_sum`] adds in, and the most rows it takes at once.
const ROW: usize = 16;
const MAX_ROWS: usize = 16;

/// `(sum(b_j), sum((n - j) * b_j))` over `c`, whole rows of [`ROW`] bytes, at most
/// [`MAX_ROWS`] of them (n = c.len()). Byte `j = ROW * k + l` has weight
/// `ROW * (rows - k) - l`: lane `l` keeps the running sum of its column (`a1`) and the
/// sum of those running sums (`a2`, which counts row k's byte `rows - k` times), so the
/// weighted sum is `ROW * sum(a2) - sum(l * a1[l])`. With at most 16 rows `a2` stays
/// within 136 * 128 in magnitude, so the lanes are i16: eight to an SSE2 register.
#[inline(always)]
fn rows_sum(c: &[u8]) -> (i32, i32) {
    let mut a1 = [0i16; ROW];
    let mut a2 = [0i16; ROW];
    for row in c.chunks_exact(ROW) {
        for l in 0..ROW {
            a1[l] += i16::from(row[l] as i8);
            a2[l] += a1[l];
        }
    }
    let (mut c1, mut c2) = (0i32, 0i32);
    for l in 0..ROW {
        c1 += i32::from(a1[l]);
        c2 += ROW as i32 * i32::from(a2[l]) - l as i32 * i32::from(a1[l]);
    }
    (c1, c2)
}

/// A rolling checksum over a window that slides one byte at a time, as the sender's search
/// does. Upstream: match.c, hash_search() (its inline s1/s2 updates).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rolling {
    s1: u32,
    s2: u32,
    len: u32,
}

impl Rolling {
    /// Starts with the sums of `window` (at most 2^32 - 1 bytes; longer windows wrap the
    /// length factor, which never happens with rsync's block sizes).
    pub fn new(window: &[u8]) -> Self {
        // Over a chunk of k bytes b_0..b_{k-1} entered with running sums s1, s2:
        // s2 += k * s1 + sum((k - j) * b_j) and s1 += sum(b_j). The chunk sums come from
        // `rows_sum`, which needs only additions the compiler vectorizes (upstream uses
        // SIMD here too); about 2.6 times the plain loop.
        let (mut s1, mut s2) = (0u32, 0u32);
        let mut add = |len: usize, (c1, c2): (i32, i32)| {
            s2 = s2
                .wrapping_add((len as u32).wrapping_mul(s1))
                .wrapping_add(c2 as u32);
            s1 = s1.wrapping_add(c1 as u32);
        };
        let mut chunks = window.chunks_exact(ROW * MAX_ROWS);
        for c in &mut chunks {
            add(c.len(), rows_sum(c));
        }
        let rest = chunks.remainder();
        let whole = rest.len() / ROW * ROW;
        add(whole, rows_sum(&rest[..whole]));
        for &b in &rest[whole..] {
            s1 = s1.wrapping_add(signed(b));
            s2 = s2.wrapping_add(s1);
        }
        Rolling {
            s1,
            s2,
            len: window.len() as u32,
        }
    }

    /// Slides the window by one byte: `out` leaves at the front, `in_` enters at the back.
    pub fn roll(&mut self, out: u8, in_: u8) {
        let out = signed(out);
        self.s1 = self.s1.wrapping_sub(out).wrapping_add(signed(in_));
        self.s2 = self
            .s2
            .wrapping_sub(self.len.wrapping_mul(out))
            .wrapping_add(self.s1);
    }

    /// Drops `out` from the front without adding a byte, shrinking the window; the sender
    /// does this once the window reaches the end of the file. `out` must be the window's
    /// first byte and the window must not be empty.
    pub fn shrink(&mut self, out: u8) {
        let out = signed(out);
        self.s1 = self.s1.wrapping_sub(out);
        self.s2 = self.s2.wrapping_sub(self.len.wrapping_mul(out));
        self.len = self.len.saturating_sub(1);
    }

    /// The window's length in bytes.
    pub fn window_len(&self) -> usize {
        self.len as usize
    }

    /// The checksum of the current window, as [`rolling_checksum`] would compute it.
    pub fn value(&self) -> u32 {
        (self.s1 & 0xffff) | (self.s2 << 16)
    }
}

/// A transfer digest. Upstream: rsync.h, the CSUM_* values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChecksumKind {
    /// MD4 as protocols 27–29 use it without negotiation (CSUM_MD4_OLD): the seed is appended
    /// to each block and prepended (always, even 0) to the whole-file sum.
    Md4Old,
    /// MD4 chosen by name ("md4"): whole-file sum unseeded, seed appended to blocks as
    /// rsync's built-in MD4 does. That is what stock 3.5.0 on OpenSSL 3 (no MD4 by default)
    /// computes; a build whose OpenSSL provides MD4 prepends the seed instead.
    Md4,
    /// MD5: the seed's place in block sums depends on CF_CHKSUM_SEED_FIX.
    Md5,
    /// XXH64, seeded for blocks, 8 bytes little-endian.
    Xxh64,
    /// XXH3 64-bit, seeded for blocks, 8 bytes little-endian.
    Xxh3,
    /// XXH3 128-bit, seeded for blocks, low then high half, each little-endian.
    Xxh128,
    /// SHA-1, seed prepended to blocks.
    Sha1,
    /// No checksum ("none"): forces whole-file transfers; the whole-file sum is one 0 byte.
    None,
}

impl ChecksumKind {
    /// Maps a negotiated or `--checksum-choice` name (any case; "xxhash" is xxh64) to a kind.
    /// "md4" is always [`ChecksumKind::Md4`]: the old variant is only ever implied.
    /// Upstream: checksum.c, parse_csum_name(); compat.c, get_nni_by_name().
    pub fn from_name(name: &str) -> Option<Self> {
        const NAMES: [(&str, ChecksumKind); 8] = [
            ("xxh128", ChecksumKind::Xxh128),
            ("xxh3", ChecksumKind::Xxh3),
            ("xxh64", ChecksumKind::Xxh64),
            ("xxhash", ChecksumKind::Xxh64),
            ("md5", ChecksumKind::Md5),
            ("md4", ChecksumKind::Md4),
            ("sha1", ChecksumKind::Sha1),
            ("none", ChecksumKind::None),
        ];
        NAMES
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|&(_, kind)| kind)
    }

    /// The digest used when no name was negotiated or chosen (or the choice was "auto"):
    /// MD5 from protocol 30 on, the old MD4 before. Protocols below 27 (whose MD4 was
    /// computed incorrectly) are not supported and get the protocol-27 form.
    /// Upstream: checksum.c, parse_csum_name() with a NULL name.
    pub fn implied(protocol: i32) -> Self {
        if protocol >= 30 {
            ChecksumKind::Md5
        } else {
            ChecksumKind::Md4Old
        }
    }

    /// The name as it appears in negotiation and `--checksum-choice`.
    pub fn name(self) -> &'static str {
        match self {
            ChecksumKind::Md4Old | ChecksumKind::Md4 => "md4",
            ChecksumKind::Md5 => "md5",
            ChecksumKind::Xxh64 => "xxh64",
            ChecksumKind::Xxh3 => "xxh3",
            ChecksumKind::Xxh128 => "xxh128",
            ChecksumKind::Sha1 => "sha1",
            ChecksumKind::None => "none",
        }
    }

    /// Length of the full digest: also the length of the whole-file sum on the wire
    /// (`xfer_sum_len`). Upstream: checksum.c, csum_len_for_type().
    pub fn digest_len(self) -> usize {
        match self {
            ChecksumKind::Md4Old | ChecksumKind::Md4 | ChecksumKind::Md5 => 16,
            ChecksumKind::Xxh64 | ChecksumKind::Xxh3 => 8,
            ChecksumKind::Xxh128 => 16,
            ChecksumKind::Sha1 => 20,
            ChecksumKind::None => 1,
        }
    }
}

/// How this session computes a checksum: the digest, the seed and the seed's placement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChecksumSpec {
    /// The digest.
    pub kind: ChecksumKind,
    /// The checksum seed both sides agreed on (0: no seed for MD4/MD5/SHA-1).
    pub seed: i32,
    /// Compat flag CF_CHKSUM_SEED_FIX: MD5 block sums put the seed first, not last.
    pub seed_fix: bool,
    /// The negotiated protocol version.
    pub protocol: i32,
}

impl ChecksumSpec {
    /// The transfer checksum of a session from the negotiated name or explicit
    /// `--checksum-choice` (`None` or "auto" when there was neither), or `None` when the
    /// name is unknown. `seed_fix` is whether CF_CHKSUM_SEED_FIX is in the compat flags.
    /// Upstream: checksum.c, parse_checksum_choice() (xfer_sum_nni).
    pub fn for_transfer(
        name: Option<&str>,
        seed: i32,
        protocol: i32,
        seed_fix: bool,
    ) -> Option<Self> {
        let kind = match name {
            None => ChecksumKind::implied(protocol),
            Some(n) if n.eq_ignore_ascii_case("auto") => ChecksumKind::implied(protocol),
            Some(n) => ChecksumKind::from_name(n)?,
        };
        Some(ChecksumSpec {
            kind,
            seed,
            seed_fix,
            protocol,
        })
    }

    /// Length of the full digest of this spec's kind.
    pub fn digest_len(&self) -> usize {
        self.kind.digest_len()
    }
}

/// The spec for `--checksum` file-list sums: the file checksum name (negotiated, or the part
/// after the comma of `--checksum-choice=X,Y`; `None`/"auto" for the implied one), never
/// seeded. Below protocol 30 the implied MD4 is plain MD4 of the file, so it maps to
/// [`ChecksumKind::Md4`] with seed 0. Returns `None` for an unknown name.
/// Upstream: checksum.c, file_checksum() with file_sum_nni.
pub fn file_checksum_spec(name: Option<&str>, protocol: i32) -> Option<ChecksumSpec> {
    let mut spec = ChecksumSpec::for_transfer(name, 0, protocol, true)?;
    if spec.kind == ChecksumKind::Md4Old {
        spec.kind = ChecksumKind::Md4;
    }
    Some(spec)
}

/// A digest value: up to [`MAX_DIGEST_LEN`] bytes without allocating. Dereferences to the
/// digest's bytes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Digest {
    bytes: [u8; MAX_DIGEST_LEN],
    len: u8,
}

impl Digest {
    fn from_slice(b: &[u8]) -> Self {
        let mut bytes = [0u8; MAX_DIGEST_LEN];
        let len = b.len().min(MAX_DIGEST_LEN);
        bytes[..len].copy_from_slice(&b[..len]);
        Digest {
            bytes,
            len: len as u8,
        }
    }

    fn from_u64(v: u64) -> Self {
        Self::from_slice(&v.to_le_bytes())
    }

    /// XXH3-128 as upstream writes it: low 64 bits little-endian, then the high 64 bits.
    fn from_u128(v: u128) -> Self {
        // A u128 in little-endian order is exactly low64 LE followed by high64 LE.
        Self::from_slice(&v.to_le_bytes())
    }
}

impl std::ops::Deref for Digest {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

impl AsRef<[u8]> for Digest {
    fn as_ref(&self) -> &[u8] {
        self
    }
}

impl std::fmt::Debug for Digest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Digest(")?;
        for b in self.iter() {
            write!(f, "{b:02x}")?;
        }
        write!(f, ")")
    }
}

/// The strong checksum of one block, full length (callers send the first `s2length` bytes).
///
/// Seed placement (`s` = the seed as 4 little-endian bytes, only when the seed is not 0):
/// MD4 (both kinds) `block ‖ s`; MD5 `s ‖ block` with CF_CHKSUM_SEED_FIX, else `block ‖ s`;
/// SHA-1 `s ‖ block`. The xxhash kinds always take the seed as their own seed parameter,
/// sign-extended to 64 bits as C converts an `int`. "none" gives one 0 byte (upstream never
/// computes block sums for it: it forces whole-file transfers).
/// Upstream: checksum.c, get_checksum2().
pub fn block_sum(spec: &ChecksumSpec, block: &[u8]) -> Digest {
    let seed = (spec.seed != 0).then(|| spec.seed.to_le_bytes());
    let seed = seed.as_ref().map_or(&[][..], |s| &s[..]);
    let xxh_seed = i64::from(spec.seed) as u64;
    match spec.kind {
        ChecksumKind::Md4Old | ChecksumKind::Md4 => digest_of::<Md4>(&[block, seed]),
        ChecksumKind::Md5 if spec.seed_fix => digest_of::<Md5>(&[seed, block]),
        ChecksumKind::Md5 => digest_of::<Md5>(&[block, seed]),
        ChecksumKind::Sha1 => digest_of::<Sha1>(&[seed, block]),
        ChecksumKind::Xxh64 => Digest::from_u64(xxh64::xxh64(block, xxh_seed)),
        ChecksumKind::Xxh3 => Digest::from_u64(xxh3::xxh3_64_with_seed(block, xxh_seed)),
        ChecksumKind::Xxh128 => Digest::from_u128(xxh3::xxh3_128_with_seed(block, xxh_seed)),
        ChecksumKind::None => Digest::from_slice(&[0]),
    }
}

/// One-shot digest of the concatenation of `parts`.
fn digest_of<D: md5::Digest>(parts: &[&[u8]]) -> Digest {
    let mut d = D::new();
    for p in parts {
        d.update(p);
    }
    Digest::from_slice(&d.finalize())
}

/// An incremental whole-file checksum, fed with every byte of the file in order (by the
/// sender as it reads, by the receiver as it writes). Never seeded except
/// [`ChecksumKind::Md4Old`], which starts with the seed's 4 bytes even when it is 0.
/// Upstream: checksum.c, sum_init(), sum_update(), sum_end().
pub struct FileSum {
    state: FileSumState,
}

enum FileSumState {
    Md4(Md4),
    Md5(Md5),
    Sha1(Sha1),
    Xxh64(Xxh64),
    // Boxed: the XXH3 state is several hundred bytes, the others a few dozen.
    Xxh3(Box<Xxh3Default>),
    Xxh128(Box<Xxh3Default>),
    None,
}

impl FileSum {
    /// Starts a whole-file sum for `spec`.
    pub fn new(spec: &ChecksumSpec) -> Self {
        let state = match spec.kind {
            ChecksumKind::Md4Old => {
                let mut m = Md4::new();
                m.update(spec.seed.to_le_bytes());
                FileSumState::Md4(m)
            }
            ChecksumKind::Md4 => FileSumState::Md4(Md4::new()),
            ChecksumKind::Md5 => FileSumState::Md5(Md5::new()),
            ChecksumKind::Sha1 => FileSumState::Sha1(Sha1::new()),
            ChecksumKind::Xxh64 => FileSumState::Xxh64(Xxh64::new(0)),
            ChecksumKind::Xxh3 => FileSumState::Xxh3(Box::default()),
            ChecksumKind::Xxh128 => FileSumState::Xxh128(Box::default()),
            ChecksumKind::None => FileSumState::None,
        };
        FileSum { state }
    }

    /// Feeds the next bytes of the file.
    pub fn update(&mut self, data: &[u8]) {
        match &mut self.state {
            FileSumState::Md4(m) => m.update(data),
            FileSumState::Md5(m) => m.update(data),
            FileSumState::Sha1(m) => m.update(data),
            FileSumState::Xxh64(x) => x.update(data),
            FileSumState::Xxh3(x) | FileSumState::Xxh128(x) => x.update(data),
            FileSumState::None => {}
        }
    }

    /// The digest, full length (`xfer_sum_len` bytes; one 0 byte for "none").
    pub fn finish(self) -> Digest {
        match self.state {
            FileSumState::Md4(m) => Digest::from_slice(&m.finalize()),
            FileSumState::Md5(m) => Digest::from_slice(&m.finalize()),
            FileSumState::Sha1(m) => Digest::from_slice(&m.finalize()),
            FileSumState::Xxh64(x) => Digest::from_u64(x.digest()),
            FileSumState::Xxh3(x) => Digest::from_u64(x.digest()),
            FileSumState::Xxh128(x) => Digest::from_u128(x.digest128()),
            FileSumState::None => Digest::from_slice(&[0]),
        }
    }
}

impl std::fmt::Debug for FileSum {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.state {
            FileSumState::Md4(_) => "md4",
            FileSumState::Md5(_) => "md5",
            FileSumState::Sha1(_) => "sha1",
            FileSumState::Xxh64(_) => "xxh64",
            FileSumState::Xxh3(_) => "xxh3",
            FileSumState::Xxh128(_) => "xxh128",
            FileSumState::None => "none",
        };
        f.debug_struct("FileSum").field("kind", &kind).finish()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) mod tests {
    //! Known-answer vectors, property tests of the rolling sum, and whole-file sums
    //! recomputed from the literal data of real sessions. The capture helpers are shared
    //! with `sums`' tests.
    use super::ChecksumKind::{Md4, Md4Old, Md5, Sha1, Xxh3, Xxh64, Xxh128};
    use super::*;
    use crate::protocol::Decoded;
    use crate::protocol::mux::{MsgCode, decode_mux_header};
    use proptest::prelude::*;

    pub(crate) fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// A capture's raw streams: the sender's data direction, then s2c (where the seed is).
    pub(crate) type Capture = (&'static [u8], &'static [u8]);

    /// The streams of a push capture (the client sends data, c2s).
    macro_rules! push {
        ($name:literal) => {
            (
                include_bytes!(concat!("../../testdata/captures/", $name, "-c2s.bin")).as_slice(),
                include_bytes!(concat!("../../testdata/captures/", $name, "-s2c.bin")).as_slice(),
            )
        };
    }
    /// The streams of a pull capture (the server sends data, s2c).
    macro_rules! pull {
        ($name:literal) => {{
            let s2c = include_bytes!(concat!("../../testdata/captures/", $name, "-s2c.bin"));
            (s2c.as_slice(), s2c.as_slice())
        }};
    }
    pub(crate) use push;

    /// One direction's data stream, with a map from raw capture offsets to data offsets.
    pub(crate) struct Stream {
        pub(crate) data: Vec<u8>,
        /// (raw offset, data offset) where each run of contiguous data starts.
        segs: Vec<(usize, usize)>,
    }

    impl Stream {
        /// The data of `raw`: demultiplexed from the header at `mux`, or all of it.
        pub(crate) fn new(raw: &[u8], mux: Option<usize>) -> Self {
            mux.map_or_else(|| Self::plain(raw, 0), |first| Self::demux(raw, first))
        }

        /// A stream that is not multiplexed, from raw offset `start`.
        pub(crate) fn plain(raw: &[u8], start: usize) -> Self {
            Stream {
                data: raw[start..].to_vec(),
                segs: vec![(start, 0)],
            }
        }

        /// The MSG_DATA payloads of a multiplexed stream whose first header is at `first`.
        pub(crate) fn demux(raw: &[u8], first: usize) -> Self {
            let (mut data, mut segs, mut pos) = (Vec::new(), Vec::new(), first);
            while let Ok(Decoded::Done { value: h, used }) = decode_mux_header(&raw[pos..]) {
                let (start, end) = (pos + used, pos + used + h.len);
                if h.code == MsgCode::Data {
                    segs.push((start, data.len()));
                    data.extend_from_slice(&raw[start..end.min(raw.len())]);
                }
                pos = end;
            }
            Stream { data, segs }
        }

        /// The data offset of raw offset `off` (which must lie in a data payload).
        pub(crate) fn at(&self, off: usize) -> usize {
            let &(raw, data) = self.segs.iter().rev().find(|s| s.0 <= off).unwrap();
            data + off - raw
        }
    }

    pub(crate) fn int_at(b: &[u8], pos: usize) -> i32 {
        i32::from_le_bytes(b[pos..pos + 4].try_into().unwrap())
    }

    /// Rebuilds a file from a plain token stream starting at `pos` (just after the sum
    /// head): literal runs, and matches copied from `basis` in `blength` blocks. Returns the
    /// file and the position after the end token, where the whole-file sum starts.
    pub(crate) fn apply_tokens(
        d: &[u8],
        mut pos: usize,
        basis: &[u8],
        blength: usize,
    ) -> (Vec<u8>, usize) {
        let mut out = Vec::new();
        loop {
            let t = int_at(d, pos);
            pos += 4;
            match t {
                0 => return (out, pos),
                n if n > 0 => {
                    out.extend_from_slice(&d[pos..pos + n as usize]);
                    pos += n as usize;
                }
                n => {
                    let start = (-(n + 1)) as usize * blength;
                    out.extend_from_slice(&basis[start..(start + blength).min(basis.len())]);
                }
            }
        }
    }

    fn spec(kind: ChecksumKind, seed: i32) -> ChecksumSpec {
        ChecksumSpec {
            kind,
            seed,
            seed_fix: true,
            protocol: 32,
        }
    }

    fn whole(kind: ChecksumKind, seed: i32, data: &[u8]) -> Vec<u8> {
        let mut f = FileSum::new(&spec(kind, seed));
        f.update(data);
        f.finish().to_vec()
    }

    #[test]
    fn known_answers() {
        let long =
            b"12345678901234567890123456789012345678901234567890123456789012345678901234567890";
        // RFC 1320 and RFC 1321 appendix A.5, FIPS 180 / RFC 3174, and xxHash's reference
        // values (XXH64, XXH3_64bits, XXH3_128bits) stored little-endian, low half first.
        #[rustfmt::skip]
        let cases: [(ChecksumKind, &[u8], &str); 13] = [
            (Md4, b"", "31d6cfe0d16ae931b73c59d7e0c089c0"),
            (Md4, b"abc", "a448017aaf21d8525fc10ae87aa6729d"),
            (Md4, b"message digest", "d9130a8164549fe818874806e1c7014b"),
            (Md4, long, "e33b4ddc9c38f2199c3e7b164fcc0536"),
            (Md5, b"", "d41d8cd98f00b204e9800998ecf8427e"),
            (Md5, b"abc", "900150983cd24fb0d6963f7d28e17f72"),
            (Md5, b"message digest", "f96b697d7cb7938d525a2f31aaf161d0"),
            (Md5, long, "57edf4a22be3c955ac49da2e2107b67a"),
            (Sha1, b"abc", "a9993e364706816aba3e25717850c26c9cd0d89d"),
            (Xxh64, b"", "99e9d85137db46ef"),
            (Xxh64, b"abc", "990977adf52cbc44"),
            (Xxh3, b"", "c294d3380580062d"),
            // XXH3_128("") = 99aa06d3014798d8_6001c324468d497f; also the sum of the empty
            // file in b-a-push-p32 c2s@205296.
            (Xxh128, b"", "7f498d4624c30160d8984701d306aa99"),
        ];
        for (kind, msg, want) in cases {
            assert_eq!(whole(kind, 0, msg), hex(want), "{kind:?} {msg:?}");
            assert_eq!(block_sum(&spec(kind, 0), msg).to_vec(), hex(want));
        }
        assert_eq!(whole(ChecksumKind::None, 0, b"x"), [0]);
    }

    #[test]
    fn upstream_xxh3_self_test() {
        // checksum.c, verify_digest(): four updates of a patterned buffer.
        let buf: Vec<u8> = (0..32816).map(|j| b' ' + (j % 96) as u8).collect();
        let mut f = FileSum::new(&spec(ChecksumKind::Xxh3, 0));
        for n in [32816, 31152, 32474, 9322] {
            f.update(&buf[..n]);
        }
        assert_eq!(f.finish().to_vec(), 0xadbcf16d4678d1de_u64.to_le_bytes());
    }

    #[test]
    fn seed_placement() {
        let (block, seed) = (b"some block data".as_slice(), 0x6b0e672f_i32);
        let s = seed.to_le_bytes();
        let (seeded_last, seeded_first) = ([block, &s].concat(), [&s, block].concat());
        let md4_old = ChecksumSpec::for_transfer(None, seed, 29, false).unwrap();
        let md5 = ChecksumSpec::for_transfer(Some("auto"), seed, 31, true).unwrap();
        assert_eq!((md4_old.kind, md5.kind), (Md4Old, Md5));
        // (spec, the digest computed plainly, over what)
        #[rustfmt::skip]
        let cases = [
            (md4_old, Md4, &seeded_last),
            (ChecksumSpec { seed: 0, ..md4_old }, Md4, &block.to_vec()),
            (spec(Md4, seed), Md4, &seeded_last),
            (md5, Md5, &seeded_first),
            (ChecksumSpec { seed_fix: false, ..md5 }, Md5, &seeded_last),
            (spec(Sha1, seed), Sha1, &seeded_first),
        ];
        for (spec, plain, input) in cases {
            assert_eq!(block_sum(&spec, block).to_vec(), whole(plain, 0, input));
        }
        // Whole-file sums: only the old MD4 is seeded, first, even with seed 0.
        assert_eq!(whole(Md4Old, seed, block), whole(Md4, 0, &seeded_first));
        assert_eq!(
            whole(Md4Old, 0, block),
            whole(Md4, 0, &[&[0; 4], block].concat())
        );
        for kind in [Md4, Md5, Sha1, Xxh64, Xxh3, Xxh128] {
            assert_eq!(whole(kind, seed, block), whole(kind, 0, block));
        }
        // xxhash: the C int seed converts to a 64-bit unsigned seed by sign extension.
        let neg = block_sum(&spec(Xxh64, -2), block);
        assert_eq!(
            neg.to_vec(),
            xxh64::xxh64(block, u64::MAX - 1).to_le_bytes()
        );
        let x3 = block_sum(&spec(Xxh3, seed), block);
        assert_eq!(
            x3.to_vec(),
            xxh3::xxh3_64_with_seed(block, seed as u64).to_le_bytes()
        );
    }

    #[test]
    fn names_and_specs() {
        for kind in [Md4, Md5, Xxh64, Xxh3, Xxh128, Sha1, ChecksumKind::None] {
            assert_eq!(ChecksumKind::from_name(kind.name()), Some(kind));
            assert_eq!(whole(kind, 7, b"abc").len(), kind.digest_len());
        }
        assert_eq!(ChecksumKind::from_name("XXHASH"), Some(Xxh64));
        assert_eq!(ChecksumKind::from_name("sha256"), None);
        let kind =
            |name, protocol| ChecksumSpec::for_transfer(name, 1, protocol, true).map(|s| s.kind);
        assert_eq!(kind(Some("blake3"), 32), None);
        assert_eq!(kind(None, 30), Some(Md5));
        assert_eq!(kind(None, 27), Some(Md4Old));
        assert_eq!(kind(Some("md4"), 29), Some(Md4));
        // --checksum sums: the old MD4 becomes plain unseeded MD4.
        let fs = file_checksum_spec(None, 29).unwrap();
        assert_eq!((fs.kind, fs.seed), (Md4, 0));
        assert_eq!(
            file_checksum_spec(Some("xxh3"), 32).map(|s| s.kind),
            Some(Xxh3)
        );
    }

    /// The whole-file sum after each new file's literal data in real sessions. Each entry:
    /// capture (sender's stream, s2c), first mux header of the sender's stream (`None`:
    /// not multiplexed), the seed's offset in s2c, digest name, protocol, sum heads.
    #[test]
    fn whole_file_sums_of_captured_new_files() {
        type Case = (
            Capture,
            Option<usize>,
            usize,
            Option<&'static str>,
            i32,
            &'static [usize],
        );
        #[rustfmt::skip]
        let cases: [Case; 6] = [
            (push!("b-a-push-p32"), Some(122), 91, Some("xxh128"), 32, &[334, 389, 205276, 205325]),
            (pull!("b-f-pull-p32"), Some(95), 91, Some("xxh128"), 32, &[295, 350, 205237, 205286]),
            (push!("b-h-push-p30"), Some(124), 91, Some("xxh128"), 30, &[291, 346, 395]),
            (push!("b-b-push-p29"), None, 53, None, 29, &[301, 359, 205229, 205283]),
            (push!("b-h-push-p28"), None, 53, None, 28, &[278, 334, 374]),
            (push!("b-h-push-p27"), None, 53, None, 27, &[280, 336, 376]),
        ];
        let mut files = 0;
        for ((sender, s2c), mux, seed_at, name, protocol, heads) in cases {
            let stream = Stream::new(sender, mux);
            let spec =
                ChecksumSpec::for_transfer(name, int_at(s2c, seed_at), protocol, true).unwrap();
            for &head in heads {
                let pos = stream.at(head);
                assert_eq!(stream.data[pos..pos + 16], [0; 16], "p{protocol} @{head}");
                let (file, end) = apply_tokens(&stream.data, pos + 16, &[], 0);
                let mut sum = FileSum::new(&spec);
                // Uneven pieces, as a receiver would feed them.
                file.chunks(1000).for_each(|piece| sum.update(piece));
                let want = &stream.data[end..end + spec.digest_len()];
                assert_eq!(&*sum.finish(), want, "p{protocol} @{head}");
                files += 1;
            }
        }
        assert_eq!(files, 21);
    }

    /// Python-style reference: signed bytes, wide arithmetic, truncated at the end.
    fn reference_sum1(b: &[u8]) -> u32 {
        let n = b.len() as i64;
        let s1: i64 = b.iter().map(|&x| i64::from(x as i8)).sum();
        let s2: i64 = b
            .iter()
            .enumerate()
            .map(|(i, &x)| (n - i as i64) * i64::from(x as i8))
            .sum();
        ((s1 as u32) & 0xffff) | ((s2 as u32) << 16)
    }

    #[test]
    fn rolling_sum_signed_bytes() {
        assert_eq!(rolling_checksum(&[0x80]), 0xff80_ff80);
        assert_eq!(rolling_checksum(&[1, 2, 3]), 6 | (10 << 16));
        assert_eq!(rolling_checksum(&[]), 0);
    }

    #[test]
    fn rolling_sum_of_extreme_bytes_at_every_length() {
        // The lanes' bounds: the largest and smallest signed bytes fill every lane.
        for n in 0..=2 * ROW * MAX_ROWS + ROW + 3 {
            for b in [0x7f, 0x80, 0xff] {
                let block = vec![b; n];
                assert_eq!(
                    rolling_checksum(&block),
                    reference_sum1(&block),
                    "{n} x {b:#x}"
                );
            }
        }
    }

    proptest! {
        #[test]
        fn rolling_sum_matches_direct_computation(b in proptest::collection::vec(any::<u8>(), 0..2000)) {
            prop_assert_eq!(rolling_checksum(&b), reference_sum1(&b));
        }

        #[test]
        fn roll_and_shrink_match_recomputation(
            b in proptest::collection::vec(any::<u8>(), 1..600),
            k in 1usize..100,
        ) {
            let k = k.min(b.len());
            let mut r = Rolling::new(&b[..k]);
            for start in 1..=b.len() - k {
                r.roll(b[start - 1], b[start + k - 1]);
                prop_assert_eq!(r.value(), rolling_checksum(&b[start..start + k]));
            }
            // At the end of the file the window shrinks from the front.
            let tail = b.len() - k;
            for start in tail..b.len() {
                r.shrink(b[start]);
                prop_assert_eq!(r.window_len(), b.len() - start - 1);
                prop_assert_eq!(r.value(), rolling_checksum(&b[start + 1..]));
            }
        }

        #[test]
        fn file_sum_is_independent_of_update_sizes(
            b in proptest::collection::vec(any::<u8>(), 0..3000),
            cut in proptest::collection::vec(0usize..3000, 0..6),
            seed in any::<i32>(),
        ) {
            for kind in [Md4Old, Md4, Md5, Xxh64, Xxh3, Xxh128, Sha1] {
                let mut cuts: Vec<usize> = cut.iter().map(|&c| c.min(b.len())).collect();
                cuts.sort_unstable();
                let mut f = FileSum::new(&spec(kind, seed));
                let mut prev = 0;
                for c in cuts.into_iter().chain([b.len()]) {
                    f.update(&b[prev..c]);
                    prev = c;
                }
                prop_assert_eq!(f.finish().to_vec(), whole(kind, seed, &b));
            }
        }
    }
}
