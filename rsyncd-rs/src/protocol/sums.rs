//! The sum head and the block sums the generator sends for a basis file, and the choice of
//! block length and strong-sum length (upstream: io.c read_sum_head()/write_sum_head(),
//! generator.c sum_sizes_sqroot()/generate_and_send_sums(), sender.c receive_sums()).

use super::checksum::{ChecksumSpec, block_sum, rolling_checksum};
use super::codec::{get_int, put_int};
use super::{Decoded, WireError};

/// The default block length, and the one used for every basis up to 700² bytes.
/// Upstream: rsync.h, BLOCK_SIZE.
pub const BLOCK_SIZE: i32 = 700;

/// The largest block length from protocol 30 on. Upstream: rsync.h, MAX_BLOCK_SIZE.
pub const MAX_BLOCK_SIZE: i32 = 1 << 17;

/// The largest block length before protocol 30. Upstream: rsync.h, OLD_MAX_BLOCK_SIZE.
pub const OLD_MAX_BLOCK_SIZE: i32 = 1 << 29;

/// The longest strong sum sent per block. Upstream: rsync.h, SUM_LENGTH.
pub const SUM_LENGTH: usize = 16;

/// The strong-sum length of the first pass below protocol 27 (and the floor above it).
/// Upstream: rsync.h, SHORT_SUM_LENGTH.
pub const SHORT_SUM_LENGTH: i32 = 2;

/// Upstream: rsync.h, BLOCKSUM_BIAS.
const BLOCKSUM_BIAS: i32 = 10;

/// The most block sums we accept in one sum head.
///
/// Upstream accepts any non-negative int32 count, up to 2^31 - 1 entries (some 40 GiB of
/// sums to hold). No file size gives a tighter bound: a 2^63-byte file at the largest block
/// size would need 2^46 blocks (p ≥ 30) or 2^34 (p < 30), beyond what an int32 count holds
/// (upstream's generator falls back to whole-file for such files). So the bound is one of
/// memory: 2^24 entries, at most 320 MiB of sums (4 + 16 bytes each). A stock generator
/// with the default block size exceeds it only for bases over 2 TiB (p ≥ 30; blocks of
/// 128 KiB) or 2^48 bytes (p < 30), or with a `--block-size` below basis length / 2^24.
pub const MAX_SUM_COUNT: i32 = 1 << 24;

/// The largest block length for a protocol version.
pub fn max_block_size(protocol: i32) -> i32 {
    if protocol < 30 {
        OLD_MAX_BLOCK_SIZE
    } else {
        MAX_BLOCK_SIZE
    }
}

/// Describes the block sums that follow: how many, how long each block and each strong sum
/// is, and the length of the last block (0 when every block is full).
/// Upstream: rsync.h, struct sum_struct.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SumHead {
    /// Number of blocks.
    pub count: i32,
    /// Block length.
    pub blength: i32,
    /// Bytes of strong sum sent per block.
    pub s2length: i32,
    /// Length of the last block, 0 when `count * blength` is the basis length.
    pub remainder: i32,
}

impl SumHead {
    /// The all-zero head: no basis, the sender sends the whole file as literal data.
    /// Upstream: io.c, write_sum_head() with a NULL sum.
    pub const WHOLE_FILE: SumHead = SumHead {
        count: 0,
        blength: 0,
        s2length: 0,
        remainder: 0,
    };

    /// Bytes of a sum head on the wire: 16, or 12 below protocol 27 (no s2length).
    pub fn wire_len(protocol: i32) -> usize {
        if protocol >= 27 { 16 } else { 12 }
    }

    /// Length of block `index`, or `None` past the last block.
    pub fn block_len(&self, index: usize) -> Option<usize> {
        let count = usize::try_from(self.count).ok()?;
        if index >= count {
            return None;
        }
        let len = if index + 1 == count && self.remainder != 0 {
            self.remainder
        } else {
            self.blength
        };
        usize::try_from(len).ok()
    }

    /// Offset of block `index` in the basis file.
    pub fn block_offset(&self, index: usize) -> u64 {
        index as u64 * u64::try_from(self.blength).unwrap_or(0)
    }

    /// Length of the basis file the head describes. Upstream: sender.c, receive_sums().
    pub fn basis_len(&self) -> i64 {
        let full = i64::from(self.count) * i64::from(self.blength);
        if self.remainder != 0 {
            full - (i64::from(self.blength) - i64::from(self.remainder))
        } else {
            full
        }
    }

    /// Bytes of block sums that follow the head on the wire: `count * (4 + s2length)`.
    pub fn sums_wire_len(&self) -> usize {
        let count = usize::try_from(self.count).unwrap_or(0);
        let s2 = usize::try_from(self.s2length).unwrap_or(0);
        count.saturating_mul(4 + s2)
    }

    /// Checks the limits a receiving sender enforces, with `max_digest_len` the transfer
    /// digest's length. Upstream: io.c, read_sum_head().
    pub fn validate(&self, protocol: i32, max_digest_len: usize) -> Result<(), WireError> {
        let max_blength = max_block_size(protocol);
        let max_s2 = max_digest_len.min(SUM_LENGTH);
        if self.count < 0 {
            return Err(malformed("sum head count (negative)"));
        }
        if self.count > MAX_SUM_COUNT {
            return Err(too_large("sum head count", self.count, MAX_SUM_COUNT));
        }
        if self.blength < 0 {
            return Err(malformed("sum head block length (negative)"));
        }
        if self.blength > max_blength {
            return Err(too_large(
                "sum head block length",
                self.blength,
                max_blength,
            ));
        }
        if self.count > 0 && self.blength == 0 {
            return Err(malformed("sum head block length (zero with blocks)"));
        }
        if self.s2length < 0 {
            return Err(malformed("sum head checksum length (negative)"));
        }
        if self.s2length as usize > max_s2 {
            return Err(too_large(
                "sum head checksum length",
                self.s2length,
                max_s2 as i32,
            ));
        }
        if self.remainder < 0 || self.remainder > self.blength {
            return Err(malformed("sum head remainder"));
        }
        Ok(())
    }
}

fn malformed(what: &'static str) -> WireError {
    WireError::Malformed { what }
}

fn too_large(what: &'static str, got: i32, limit: i32) -> WireError {
    WireError::TooLarge {
        what,
        got: got as u64,
        limit: limit as u64,
    }
}

/// Decodes and checks a sum head (see [`SumHead::validate`] for the limits; s2length may not
/// exceed `max_digest_len` nor 16). Below protocol 27 the head has no s2length and it is 2.
/// Upstream: io.c, read_sum_head().
pub fn decode_sum_head(
    buf: &[u8],
    protocol: i32,
    max_digest_len: usize,
) -> Result<Decoded<SumHead>, WireError> {
    let len = SumHead::wire_len(protocol);
    if buf.len() < len {
        return Ok(Decoded::Needed(len - buf.len()));
    }
    let mut ints = [0i32; 4];
    for (i, v) in ints.iter_mut().take(len / 4).enumerate() {
        match get_int(buf.get(i * 4..).unwrap_or(&[])) {
            Decoded::Done { value, .. } => *v = value,
            Decoded::Needed(n) => return Ok(Decoded::Needed(n)),
        }
    }
    let head = match ints {
        [count, blength, s2length, remainder] if protocol >= 27 => SumHead {
            count,
            blength,
            s2length,
            remainder,
        },
        [count, blength, remainder, _] => SumHead {
            count,
            blength,
            s2length: SHORT_SUM_LENGTH,
            remainder,
        },
    };
    head.validate(protocol, max_digest_len)?;
    Ok(Decoded::Done {
        value: head,
        used: len,
    })
}

/// Appends a sum head (without s2length below protocol 27). Upstream: io.c, write_sum_head().
pub fn encode_sum_head(out: &mut Vec<u8>, head: &SumHead, protocol: i32) {
    put_int(out, head.count);
    put_int(out, head.blength);
    if protocol >= 27 {
        put_int(out, head.s2length);
    }
    put_int(out, head.remainder);
}

/// Chooses the sum head for a basis of `file_len` bytes: block length about √len in
/// multiples of 8 (700 up to 700² bytes, at most [`max_block_size`]) unless `block_size`
/// (`--block-size`) is given, and a strong-sum length that grows with the file, 2 to
/// min(16, `digest_len`) bytes; `redo` (the second pass after a failed verification)
/// uses the full min(16, `digest_len`).
///
/// Returns `None` where upstream's count goes to -1 and the generator falls back to a
/// whole-file transfer: a negative length, or more than 2^31 - 1 blocks. Also `None` for a
/// `block_size` above the protocol's maximum, which upstream's option parser refuses.
/// Upstream: generator.c, sum_sizes_sqroot().
pub fn sum_sizes(
    file_len: i64,
    protocol: i32,
    block_size: Option<u32>,
    digest_len: usize,
    redo: bool,
) -> Option<SumHead> {
    if file_len < 0 {
        return None;
    }
    let max_blength = i64::from(max_block_size(protocol));
    let blength = match block_size.filter(|&b| b > 0) {
        Some(b) => Some(i64::from(b)).filter(|&b| b <= max_blength)?,
        None if file_len <= i64::from(BLOCK_SIZE * BLOCK_SIZE) => i64::from(BLOCK_SIZE),
        None => sqrt_block_len(file_len, max_blength),
    };
    let max_s2 = digest_len.min(SUM_LENGTH) as i32;
    let s2length = if protocol < 27 {
        // The fixed csum_length: 2 on the first pass, 16 on the redo pass.
        if redo {
            SUM_LENGTH as i32
        } else {
            SHORT_SUM_LENGTH
        }
    } else if redo {
        max_s2
    } else {
        // Bits wanted: BIAS + 2*log2(len) - log2(blength); minus the 32 of sum1, in bytes.
        let mut b = BLOCKSUM_BIAS + 2 * (63 - file_len.max(1).leading_zeros() as i32);
        let mut c = blength;
        while b > 0 && c >> 1 != 0 {
            c >>= 1;
            b -= 1;
        }
        ((b + 1 - 32 + 7) / 8).max(SHORT_SUM_LENGTH).min(max_s2)
    };
    let remainder = file_len % blength;
    let count = file_len / blength + i64::from(remainder != 0);
    Some(SumHead {
        count: i32::try_from(count).ok()?,
        blength: i32::try_from(blength).ok()?,
        s2length,
        remainder: i32::try_from(remainder).ok()?,
    })
}

/// The largest multiple of 8 whose square does not exceed `len`, built bit by bit from the
/// power of two near √len, at least 700 and at most `max`.
fn sqrt_block_len(len: i64, max: i64) -> i64 {
    let mut c: i64 = 1;
    let mut l = len >> 2;
    while l != 0 {
        c <<= 1;
        l >>= 2;
    }
    if c >= max {
        return max;
    }
    let mut blength = 0;
    while c >= 8 {
        blength |= c;
        if len < blength * blength {
            blength &= !c;
        }
        c >>= 1;
    }
    blength.max(i64::from(BLOCK_SIZE))
}

/// One block's sums: the rolling `sum1` and the first `s2length` bytes of the strong sum
/// (the rest of `sum2` is zero).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BlockSum {
    /// Rolling checksum (§6.1 of TRANSFER.md).
    pub sum1: u32,
    /// Strong checksum prefix.
    pub sum2: [u8; SUM_LENGTH],
}

impl BlockSum {
    /// Computes the sums of one block, keeping `s2length` (at most 16) bytes of the strong
    /// sum. Upstream: generator.c, generate_and_send_sums() (one iteration).
    pub fn compute(spec: &ChecksumSpec, block: &[u8], s2length: usize) -> Self {
        let strong = block_sum(spec, block);
        let mut sum2 = [0u8; SUM_LENGTH];
        let n = s2length.min(SUM_LENGTH).min(strong.len());
        sum2[..n].copy_from_slice(&strong[..n]);
        BlockSum {
            sum1: rolling_checksum(block),
            sum2,
        }
    }
}

/// A sum head with its block sums: what the generator sends for one basis file.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BlockSums {
    /// The head the sums were sent under.
    pub head: SumHead,
    /// One entry per block, in basis order.
    pub sums: Vec<BlockSum>,
}

/// The s2length of a head as a usize, refusing what no valid head carries.
fn s2_len(head: &SumHead) -> Result<usize, WireError> {
    usize::try_from(head.s2length)
        .ok()
        .filter(|&n| n <= SUM_LENGTH)
        .ok_or(malformed("sum head checksum length"))
}

/// Decodes one block's sums (int32 sum1, then `head.s2length` bytes).
/// Upstream: sender.c, receive_sums() (one iteration).
pub fn decode_block_sum(buf: &[u8], head: &SumHead) -> Result<Decoded<BlockSum>, WireError> {
    let s2 = s2_len(head)?;
    let Some((sum1, rest)) = buf.split_first_chunk::<4>() else {
        return Ok(Decoded::Needed(4 + s2 - buf.len()));
    };
    let Some(strong) = rest.get(..s2) else {
        return Ok(Decoded::Needed(s2 - rest.len()));
    };
    let mut sum = BlockSum {
        sum1: u32::from_le_bytes(*sum1),
        sum2: [0; SUM_LENGTH],
    };
    sum.sum2[..s2].copy_from_slice(strong);
    Ok(Decoded::Done {
        value: sum,
        used: 4 + s2,
    })
}

/// Decodes all `head.count` block sums that follow a sum head, once all of them are in
/// `buf` (`Needed` tells exactly how many bytes are missing). Refuses a head that
/// [`SumHead::validate`] would refuse for its count or s2length. To avoid buffering a large
/// table whole, a caller can instead loop [`decode_block_sum`] as bytes arrive.
/// Upstream: sender.c, receive_sums().
pub fn decode_block_sums(buf: &[u8], head: &SumHead) -> Result<Decoded<BlockSums>, WireError> {
    let s2 = s2_len(head)?;
    let count = usize::try_from(head.count)
        .ok()
        .filter(|&c| c <= MAX_SUM_COUNT as usize)
        .ok_or(too_large("sum head count", head.count, MAX_SUM_COUNT))?;
    let total = count * (4 + s2);
    if buf.len() < total {
        return Ok(Decoded::Needed(total - buf.len()));
    }
    let mut sums = Vec::with_capacity(count);
    let mut used = 0;
    while sums.len() < count {
        match decode_block_sum(buf.get(used..).unwrap_or(&[]), head)? {
            Decoded::Done { value, used: n } => {
                sums.push(value);
                used += n;
            }
            Decoded::Needed(n) => return Ok(Decoded::Needed(n)),
        }
    }
    Ok(Decoded::Done {
        value: BlockSums { head: *head, sums },
        used,
    })
}

/// Appends the block sums (not the head: see [`encode_sum_head`]), `s2length` strong bytes
/// each. Upstream: generator.c, generate_and_send_sums().
pub fn encode_block_sums(out: &mut Vec<u8>, sums: &BlockSums) {
    let s2 = usize::try_from(sums.head.s2length)
        .unwrap_or(0)
        .min(SUM_LENGTH);
    out.reserve(sums.sums.len() * (4 + s2));
    for s in &sums.sums {
        out.extend_from_slice(&s.sum1.to_le_bytes());
        out.extend_from_slice(&s.sum2[..s2]);
    }
}

/// Why [`compute_block_sums`] stopped: the head describes no valid table, or `fill` failed.
#[derive(Debug, PartialEq, Eq)]
pub enum BlockSumsError<E> {
    /// Negative count or block length, zero block length with blocks, s2length over 16.
    InvalidHead(&'static str),
    Fill(E),
}

/// Computes the block sums of a basis as described by `head`; `fill` puts the next block's
/// bytes into the buffer it is given (the caller reads the basis: this module does no
/// I/O). Upstream: generator.c, generate_and_send_sums().
pub fn compute_block_sums<E>(
    head: &SumHead,
    spec: &ChecksumSpec,
    mut fill: impl FnMut(&mut [u8]) -> Result<(), E>,
) -> Result<BlockSums, BlockSumsError<E>> {
    let invalid = BlockSumsError::InvalidHead;
    let count = usize::try_from(head.count).map_err(|_| invalid("negative block count"))?;
    let s2 = s2_len(head).map_err(|_| invalid("strong sum length out of range"))?;
    let blength = usize::try_from(head.blength).map_err(|_| invalid("negative block length"))?;
    if count > 0 && blength == 0 {
        return Err(invalid("zero block length"));
    }
    let mut buf = vec![0u8; blength];
    let mut sums = Vec::with_capacity(count.min(MAX_SUM_COUNT as usize));
    for i in 0..count {
        let n = head.block_len(i).unwrap_or(blength).min(blength);
        let block = &mut buf[..n];
        fill(block).map_err(BlockSumsError::Fill)?;
        sums.push(BlockSum::compute(spec, block, s2));
    }
    Ok(BlockSums { head: *head, sums })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::protocol::checksum::FileSum;
    use crate::protocol::checksum::tests::{Capture, Stream, apply_tokens, hex, int_at, push};
    use proptest::prelude::*;

    /// The bytes of Python's `random.Random(seed)` drawn as `getrandbits(8)` one at a time,
    /// which is how the captures' basis files were made (README-b.md): MT19937 seeded by
    /// init_by_array([seed]), each byte the top 8 bits of one output.
    fn python_random_bytes(seed: u32, n: usize) -> Vec<u8> {
        const N: usize = 624;
        let mut mt = [0u32; N];
        mt[0] = 19_650_218;
        for i in 1..N {
            mt[i] = 1_812_433_253u32
                .wrapping_mul(mt[i - 1] ^ (mt[i - 1] >> 30))
                .wrapping_add(i as u32);
        }
        let mix = |mt: &mut [u32; N], i: usize, mul: u32| {
            mt[i] ^ (mt[i - 1] ^ (mt[i - 1] >> 30)).wrapping_mul(mul)
        };
        let mut i = 1;
        for _ in 0..N {
            mt[i] = mix(&mut mt, i, 1_664_525).wrapping_add(seed);
            i += 1;
            if i >= N {
                mt[0] = mt[N - 1];
                i = 1;
            }
        }
        for _ in 0..N - 1 {
            mt[i] = mix(&mut mt, i, 1_566_083_941).wrapping_sub(i as u32);
            i += 1;
            if i >= N {
                mt[0] = mt[N - 1];
                i = 1;
            }
        }
        mt[0] = 0x8000_0000;
        let mut out = Vec::with_capacity(n);
        let mut k = N;
        while out.len() < n {
            if k == N {
                for j in 0..N {
                    let y = (mt[j] & 0x8000_0000) | (mt[(j + 1) % N] & 0x7fff_ffff);
                    mt[j] = mt[(j + 397) % N] ^ (y >> 1) ^ if y & 1 != 0 { 0x9908_b0df } else { 0 };
                }
                k = 0;
            }
            let mut y = mt[k];
            k += 1;
            y ^= y >> 11;
            y ^= (y << 7) & 0x9d2c_5680;
            y ^= (y << 15) & 0xefc6_0000;
            y ^= y >> 18;
            out.push((y >> 24) as u8);
        }
        out
    }

    /// Inflates raw deflate data that ended with a sync flush whose `00 00 ff ff` was dropped.
    fn inflate(data: &[u8], max: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(max);
        let input = [data, &[0, 0, 0xff, 0xff]].concat();
        let mut z = flate2::Decompress::new(false);
        z.decompress_vec(&input, &mut out, flate2::FlushDecompress::Sync)
            .unwrap();
        out
    }

    /// comp.txt (122 356 bytes) and its whole-file sum, from the one-record zlib push
    /// b-d-push-zlib: c2s@204 DEFLATED_DATA, @13749 END_FLAG, @13750 the xxh128.
    fn comp_txt() -> (Vec<u8>, Vec<u8>) {
        let (c2s, _) = push!("b-d-push-zlib");
        let s = Stream::new(c2s, Some(139));
        let p = s.at(204);
        let len = (usize::from(s.data[p] & 0x3f) << 8) | usize::from(s.data[p + 1]);
        let file = inflate(&s.data[p + 2..p + 2 + len], 122_356);
        assert_eq!(s.data[p + 2 + len], 0, "END_FLAG");
        (file, s.data[s.at(13750)..s.at(13750) + 16].to_vec())
    }

    fn head(count: i32, blength: i32, s2length: i32, remainder: i32) -> SumHead {
        SumHead {
            count,
            blength,
            s2length,
            remainder,
        }
    }

    #[test]
    fn block_sizes() {
        let h = |c, b, s, r| Some(head(c, b, s, r));
        // (file length, protocol, --block-size, digest length, redo, expected head)
        #[rustfmt::skip]
        let cases = [
            // TRANSFER.md 4.5's examples, each confirmed by a capture's sum head.
            (1_048_576, 32, None, 16, false, h(1024, 1024, 2, 0)),
            (122_356, 32, None, 16, false, h(175, 700, 2, 556)),
            (65_836, 29, None, 16, false, h(95, 700, 2, 36)),
            // sqrt(1e9) = 31622.8: the largest multiple of 8 below is 31616; 54 bits: 3 bytes.
            (1_000_000_000, 31, None, 16, false, h(31630, 31616, 3, 17536)),
            (0, 32, None, 16, false, h(0, 700, 2, 0)),
            // The redo pass sends full sums, never longer than the digest.
            (65_836, 32, None, 16, true, h(95, 700, 16, 36)),
            (65_836, 32, None, 8, true, h(95, 700, 8, 36)),
            (65_836, 26, None, 16, true, h(95, 700, 16, 36)),
            // Block length caps: 2^17 from protocol 30, 2^29 before.
            (1 << 40, 30, None, 16, false, h(1 << 23, 1 << 17, 6, 0)),
            (1 << 40, 29, None, 16, false, h(1 << 20, 1 << 20, 5, 0)),
            (1 << 58, 29, None, 20, false, h(1 << 29, 1 << 29, 9, 0)),
            // Too many blocks for an int32 count, or a negative length: whole file instead.
            (1 << 62, 29, None, 16, false, None),
            (1 << 50, 32, None, 16, false, None),
            (-1, 32, None, 16, false, None),
            // --block-size wins, within the protocol's maximum.
            (10_000, 32, Some(4096), 16, false, h(3, 4096, 2, 1808)),
            (10_000, 32, Some(1 << 18), 16, false, None),
            (10_000, 29, Some(1 << 18), 16, false, h(1, 1 << 18, 2, 10_000)),
        ];
        for (len, p, bs, d, redo, want) in cases {
            assert_eq!(
                sum_sizes(len, p, bs, d, redo),
                want,
                "{len} p{p} {bs:?} {d} {redo}"
            );
        }
    }

    #[test]
    fn sum_head_limits() {
        let ok = |h: SumHead, p: i32, d: usize| h.validate(p, d).is_ok();
        assert!(ok(SumHead::WHOLE_FILE, 32, 16));
        assert!(ok(head(0, 0, 0, 0), 27, 1));
        assert!(ok(
            head(1, OLD_MAX_BLOCK_SIZE, 16, OLD_MAX_BLOCK_SIZE),
            29,
            16
        ));
        assert!(!ok(head(1, MAX_BLOCK_SIZE + 1, 2, 0), 30, 16));
        assert!(!ok(head(-1, 700, 2, 0), 32, 16));
        assert!(!ok(head(MAX_SUM_COUNT + 1, 700, 2, 0), 32, 16));
        assert!(!ok(head(1, 0, 2, 0), 32, 16));
        assert!(!ok(head(1, -700, 2, 0), 32, 16));
        assert!(!ok(head(1, 700, 9, 0), 32, 8));
        assert!(!ok(head(1, 700, 17, 0), 32, 20));
        assert!(!ok(head(1, 700, -1, 0), 32, 16));
        assert!(!ok(head(1, 700, 2, 701), 32, 16));
        assert!(!ok(head(1, 700, 2, -1), 32, 16));
        // Helpers stay panic-free on heads that fail validation (a proptest once found
        // blength - remainder overflowing).
        let bad = head(i32::MAX, i32::MIN, i32::MIN, i32::MAX);
        let _ = (
            bad.basis_len(),
            bad.block_len(0),
            bad.sums_wire_len(),
            bad.block_offset(9),
        );
        // Below protocol 27 the head has three ints and s2length is 2.
        let old = [2, 0, 0, 0, 0, 2, 0, 0, 5, 0, 0, 0];
        let want = Decoded::Done {
            value: head(2, 512, 2, 5),
            used: 12,
        };
        assert_eq!(decode_sum_head(&old, 26, 16), Ok(want));
        let big = [0, 0, 0, 0x7f, 0, 4, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0];
        assert!(matches!(
            decode_sum_head(&big, 32, 16),
            Err(WireError::TooLarge { .. })
        ));
    }

    /// Every sum head and block sum the generator sent in the delta captures, recomputed from
    /// the regenerated basis; and for plain token streams the new file, rebuilt from basis
    /// and tokens, against the whole-file sum that follows it. Columns: capture, first mux
    /// header of s2c and of c2s, seed offset in s2c, name, protocol, sum head offsets in s2c
    /// (generator) and c2s (the sender's echo; `None` for compressed tokens), basis.
    #[test]
    fn captured_deltas() {
        let sdelta = python_random_bytes(31337, 65_836);
        let (comp, _) = comp_txt();
        let delta = python_random_bytes(777, 1 << 20);
        type Case<'a> = (
            Capture,
            usize,
            Option<usize>,
            usize,
            Option<&'a str>,
            i32,
            usize,
            Option<usize>,
            &'a [u8],
        );
        #[rustfmt::skip]
        let cases: [Case; 6] = [
            (push!("b-c-delta-p32"), 95, Some(122), 91, Some("xxh128"), 32, 102, Some(170), &delta),
            (push!("b-c-delta-p30"), 95, Some(124), 91, Some("xxh128"), 30, 102, Some(170), &sdelta),
            (push!("b-c-delta-p31-md5"), 59, Some(115), 55, Some("md5"), 31, 66, Some(161), &sdelta),
            (push!("b-c-delta-p29"), 57, None, 53, None, 29, 67, Some(128), &sdelta),
            (push!("b-d-delta-zlib"), 95, None, 91, Some("xxh128"), 32, 102, None, &comp),
            (push!("b-d-delta-zlibx"), 95, None, 91, Some("xxh128"), 32, 102, None, &comp),
        ];
        let (mut blocks, mut files) = (0, 0);
        for ((c2s, s2c), s2c_mux, c2s_mux, seed_at, name, protocol, at, echo, basis) in cases {
            // Compat flags 0x1ff include CF_CHKSUM_SEED_FIX; protocol 29 has none.
            let seed = int_at(s2c, seed_at);
            let spec = ChecksumSpec::for_transfer(name, seed, protocol, true).unwrap();
            let s = Stream::new(s2c, Some(s2c_mux));
            let wire = &s.data[s.at(at)..];
            let Ok(Decoded::Done { value: h, used }) = decode_sum_head(wire, protocol, 16) else {
                panic!("sum head of p{protocol} @{at}");
            };
            let chosen = sum_sizes(basis.len() as i64, protocol, None, spec.digest_len(), false);
            assert_eq!(Some(h), chosen, "p{protocol} @{at}");
            let Ok(Decoded::Done {
                value: got,
                used: n,
            }) = decode_block_sums(&wire[used..], &h)
            else {
                panic!("block sums of p{protocol} @{at}");
            };
            let computed = compute_block_sums(&h, &spec, from_slice(basis)).unwrap();
            assert_eq!(got, computed, "p{protocol} @{at}");
            // Our encoders give back the generator's bytes.
            let mut out = Vec::new();
            encode_sum_head(&mut out, &h, protocol);
            encode_block_sums(&mut out, &computed);
            assert_eq!(out, wire[..used + n]);
            blocks += got.sums.len();
            let Some(echo) = echo else { continue };
            let c = Stream::new(c2s, c2s_mux);
            let pos = c.at(echo);
            assert_eq!(c.data[pos..pos + 16], wire[..16], "echo of p{protocol}");
            let (file, end) = apply_tokens(&c.data, pos + 16, basis, h.blength as usize);
            assert_eq!(file.len(), basis.len());
            let mut sum = FileSum::new(&spec);
            sum.update(&file);
            assert_eq!(&*sum.finish(), &c.data[end..end + 16], "p{protocol}");
            files += 1;
        }
        assert_eq!(int_at(push!("b-c-delta-p32").1, 91), 0x6b0e_672f);
        assert_eq!((blocks, files), (1024 + 3 * 95 + 2 * 175, 4));
    }

    /// comp.txt's sum is the same in every push of it although each session had its own
    /// seed: whole-file sums are unseeded for xxh128. The zlibx delta (no history feeding)
    /// rebuilds the changed file: blocks 0..=86, 163 bytes of deflate, blocks 88..=174.
    #[test]
    fn whole_file_sums_of_comp_txt() {
        let (comp, want) = comp_txt();
        let spec = ChecksumSpec::for_transfer(Some("xxh128"), 0x1234, 32, true).unwrap();
        let sum = |data: &[u8]| {
            let mut f = FileSum::new(&spec);
            f.update(data);
            f.finish().to_vec()
        };
        assert_eq!(sum(&comp), want);
        for ((c2s, _), at) in [
            (push!("b-d-push-lz4"), 53074),
            (push!("b-d-push-zstd"), 18076),
            (push!("b-d-push-z-default"), 18074),
        ] {
            assert_eq!(c2s[at..at + 16], want[..]);
        }
        let (c2s, _) = push!("b-d-delta-zlibx");
        let s = Stream::new(c2s, Some(138));
        let p = s.at(203);
        assert_eq!(s.data[p..p + 5], [0xc0, 0x56, 0x00, 0x40, 0xa3]);
        let literal = inflate(&s.data[p + 5..p + 5 + 163], 1000);
        assert_eq!(s.data[p + 168..p + 172], [0xc2, 0x56, 0x00, 0x00]);
        let file = [&comp[..87 * 700], &literal, &comp[88 * 700..]].concat();
        assert_eq!(file.len(), 122_536);
        assert_eq!(sum(&file), s.data[p + 172..p + 188]);
    }

    /// Recorded from stock rsync 3.5.0 (OpenSSL 3 build) through a remote-shell pipe, not
    /// kept in testdata: `rsync -a --no-whole-file --checksum-choice=NAME --checksum-seed=S`
    /// pushing Random(5)'s 65 836 bytes with bytes 30000..31000 zeroed over the original;
    /// for MD5 without CF_CHKSUM_SEED_FIX the server's `-e` letters lost `C` and `v` (no
    /// negotiation: implied md5). Kept: the sum2 of the first 4 of 95 blocks, and the new
    /// file's whole-file sum. This pins what the b-* captures lack: negotiated md4 (seed
    /// appended, as rsync's built-in MD4 does when OpenSSL 3 has no MD4), sha1, xxh64, xxh3,
    /// MD5 with the seed appended, and a negative seed (sign-extended for xxhash).
    #[test]
    fn negotiated_digests_from_stock_rsync() {
        let basis = python_random_bytes(5, 65_836);
        let mut new = basis.clone();
        new[30_000..31_000].fill(0);
        let h = head(95, 700, 2, 36);
        let sha1 = "7a45d867a0dda785f66628ac6d1480f6fd74bed2";
        let md5 = "c3b8d34d743c0d6c180f4a99cc64ad82";
        #[rustfmt::skip]
        let cases = [
            (Some("md4"), -5, true, "dfafdc189fd3de93", "7c515aebfb4f7ccdbbb3df8f0324c8c2"),
            (Some("sha1"), 305_419_896, true, "359dc1580efe7894", sha1),
            (Some("xxh64"), -5, true, "49126645efad9235", "6761b23e46fd5bb0"),
            (Some("xxh3"), -5, true, "19dfbdb676ab4c5e", "158800d13cc5258c"),
            (Some("xxh128"), -5, true, "19dfbdb676ab4c5e", "158800d13cc5258c22363407fef1543b"),
            (Some("md5"), -5, true, "62edeab706ee3e0c", md5),
            (None, 305_419_896, false, "51f38477413395b3", md5),
        ];
        for (name, seed, seed_fix, want, whole) in cases {
            let spec = ChecksumSpec::for_transfer(name, seed, 32, seed_fix).unwrap();
            let got = compute_block_sums(&h, &spec, from_slice(&basis)).unwrap();
            let sum1: Vec<u32> = got.sums[..4].iter().map(|s| s.sum1).collect();
            assert_eq!(sum1, [0x6c05_092a, 0x5beb_0954, 0xce8b_05a3, 0x5d18_ffc4]);
            let sum2: Vec<u8> = got.sums[..4]
                .iter()
                .flat_map(|s| s.sum2[..2].to_vec())
                .collect();
            assert_eq!(sum2, hex(want), "{name:?}");
            let mut f = FileSum::new(&spec);
            f.update(&new);
            assert_eq!(f.finish().to_vec(), hex(whole), "{name:?}");
        }
    }

    /// Fills blocks from `data` in turn, with zeros past its end (as the generator's
    /// reader pads a basis that shrank).
    fn from_slice(mut data: &[u8]) -> impl FnMut(&mut [u8]) -> Result<(), ()> + '_ {
        move |block: &mut [u8]| {
            let n = block.len().min(data.len());
            block[..n].copy_from_slice(&data[..n]);
            block[n..].fill(0);
            data = &data[n..];
            Ok(())
        }
    }

    #[test]
    fn short_basis_is_zero_filled() {
        let spec = ChecksumSpec::for_transfer(Some("md5"), 9, 32, true).unwrap();
        let h = head(2, 700, 16, 100);
        let sums = compute_block_sums(&h, &spec, from_slice(&[1u8; 750])).unwrap();
        let mut last = [0u8; 100];
        last[..50].fill(1);
        assert_eq!(sums.sums[1], BlockSum::compute(&spec, &last, 16));
        assert!(compute_block_sums(&head(1, 0, 2, 0), &spec, from_slice(&[])).is_err());
    }

    fn valid_head() -> impl Strategy<Value = (SumHead, i32)> {
        (27..=32i32, 0..=MAX_SUM_COUNT, 0..=16i32).prop_flat_map(|(p, count, s2)| {
            let min = i32::from(count > 0);
            (min..=max_block_size(p)).prop_flat_map(move |bl| {
                (0..=bl).prop_map(move |rem| (head(count, bl, s2, rem), p))
            })
        })
    }

    proptest! {
        #[test]
        fn sum_head_round_trips((h, p) in valid_head(), cut in 0usize..16) {
            let mut buf = Vec::new();
            encode_sum_head(&mut buf, &h, p);
            prop_assert_eq!(decode_sum_head(&buf, p, 16), Ok(Decoded::Done { value: h, used: 16 }));
            prop_assert_eq!(decode_sum_head(&buf[..cut], p, 16), Ok(Decoded::Needed(16 - cut)));
        }

        #[test]
        fn old_sum_head_round_trips((h, _) in valid_head(), p in 20..27i32, cut in 0usize..12) {
            // Below protocol 27 there is no s2length on the wire: it is always 2.
            let h = SumHead { s2length: SHORT_SUM_LENGTH, blength: h.blength.min(max_block_size(p)), remainder: h.remainder.min(h.blength.min(max_block_size(p))), ..h };
            let mut buf = Vec::new();
            encode_sum_head(&mut buf, &h, p);
            prop_assert_eq!(buf.len(), SumHead::wire_len(p));
            prop_assert_eq!(decode_sum_head(&buf, p, 16), Ok(Decoded::Done { value: h, used: 12 }));
            prop_assert_eq!(decode_sum_head(&buf[..cut], p, 16), Ok(Decoded::Needed(12 - cut)));
        }

        #[test]
        fn block_sums_after_a_valid_head_never_panic((h, p) in valid_head(), d in 1usize..=64, b in proptest::collection::vec(any::<u8>(), 0..400)) {
            // Whatever follows a head that passed validation is taken or waited for, never
            // read past; the table is allocated only once all of it is there.
            let mut wire = Vec::new();
            encode_sum_head(&mut wire, &h, p);
            wire.extend_from_slice(&b);
            let Ok(Decoded::Done { value: head, used }) = decode_sum_head(&wire, p, d) else {
                return Ok(());
            };
            match decode_block_sums(&wire[used..], &head) {
                Ok(Decoded::Done { value, used: n }) => {
                    prop_assert_eq!(value.sums.len(), head.count as usize);
                    prop_assert_eq!(n, head.sums_wire_len());
                }
                Ok(Decoded::Needed(n)) => prop_assert_eq!(n, head.sums_wire_len() - b.len()),
                Err(e) => prop_assert!(false, "{e}"),
            }
        }

        #[test]
        fn chosen_heads_are_valid(len in 0i64..1 << 44, p in 27..=32i32, d in prop::sample::select(vec![8usize, 16, 20]), redo: bool) {
            let h = sum_sizes(len, p, None, d, redo).unwrap();
            prop_assert_eq!(h.basis_len(), len);
            prop_assert!(h.validate(p, d).is_ok() || h.count > MAX_SUM_COUNT);
        }

        #[test]
        fn decoders_never_panic(b in proptest::collection::vec(any::<u8>(), 0..128), p in 0..40i32, d in 0usize..32, f in any::<[i32; 4]>()) {
            let _ = decode_sum_head(&b, p, d);
            let h = head(f[0], f[1], f[2], f[3]);
            let _ = decode_block_sums(&b, &h);
            let _ = decode_block_sum(&b, &h);
            let _ = (h.block_len(0), h.sums_wire_len(), h.basis_len());
        }

        #[test]
        fn block_sums_split_anywhere(sums in proptest::collection::vec((any::<u32>(), any::<[u8; 3]>()), 0..20), cut in 0usize..200) {
            let h = head(sums.len() as i32, 700, 3, 0);
            let sums: Vec<BlockSum> = sums.into_iter().map(|(sum1, s)| {
                let mut sum2 = [0; SUM_LENGTH];
                sum2[..3].copy_from_slice(&s);
                BlockSum { sum1, sum2 }
            }).collect();
            let table = BlockSums { head: h, sums };
            let mut buf = Vec::new();
            encode_block_sums(&mut buf, &table);
            let cut = cut.min(buf.len());
            let whole = decode_block_sums(&buf, &h);
            prop_assert_eq!(whole, Ok(Decoded::Done { value: table, used: buf.len() }));
            if cut < buf.len() {
                prop_assert_eq!(decode_block_sums(&buf[..cut], &h), Ok(Decoded::Needed(buf.len() - cut)));
            }
        }
    }
}
