//! The sum head and the block sums the generator sends for a basis file, and the choice of
//! block length and strong-sum length (upstream: io.c read_sum_head()/write_sum_head(),
//! generator.c sum_sizes_sqroot()/generate_and_send_sums(), sender.c receive_sums()).

use std::io::{self, Read};

use super::checksum::{block_sum, rolling_checksum, ChecksumSpec};
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
        if protocol >= 27 {
            16
        } else {
            12
        }
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
            full - i64::from(self.blength - self.remainder)
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
            return Err(too_large("sum head count", self.count, MAX_SUM_COUNT as usize));
        }
        if self.blength < 0 {
            return Err(malformed("sum head block length (negative)"));
        }
        if self.blength > max_blength {
            return Err(too_large("sum head block length", self.blength, max_blength as usize));
        }
        if self.count > 0 && self.blength == 0 {
            return Err(malformed("sum head block length (zero with blocks)"));
        }
        if self.s2length < 0 {
            return Err(malformed("sum head checksum length (negative)"));
        }
        if self.s2length as usize > max_s2 {
            return Err(too_large("sum head checksum length", self.s2length, max_s2));
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

fn too_large(what: &'static str, got: i32, limit: usize) -> WireError {
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
/// [`SumHead::validate`] would refuse for its count or s2length.
/// Upstream: sender.c, receive_sums().
pub fn decode_block_sums(buf: &[u8], head: &SumHead) -> Result<Decoded<BlockSums>, WireError> {
    let s2 = s2_len(head)?;
    let count = usize::try_from(head.count)
        .ok()
        .filter(|&c| c <= MAX_SUM_COUNT as usize)
        .ok_or(too_large("sum head count", head.count, MAX_SUM_COUNT as usize))?;
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
    let s2 = usize::try_from(sums.head.s2length).unwrap_or(0).min(SUM_LENGTH);
    out.reserve(sums.sums.len() * (4 + s2));
    for s in &sums.sums {
        out.extend_from_slice(&s.sum1.to_le_bytes());
        out.extend_from_slice(&s.sum2[..s2]);
    }
}

/// Computes the block sums of a basis read from `data` (give it a buffered reader; each
/// block is one `read` at least) as described by `head`. A basis shorter than the head
/// says is padded with zeros, as upstream's map_ptr() does when a file shrinks mid-transfer;
/// other read errors are returned. Fails with `InvalidInput` for a head that describes no
/// valid table (negative count, zero block length with blocks, s2length over 16).
/// Upstream: generator.c, generate_and_send_sums().
pub fn compute_block_sums(
    head: &SumHead,
    spec: &ChecksumSpec,
    data: &mut impl Read,
) -> io::Result<BlockSums> {
    let invalid = |what| io::Error::new(io::ErrorKind::InvalidInput, what);
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
        read_or_zero(data, block)?;
        sums.push(BlockSum::compute(spec, block, s2));
    }
    Ok(BlockSums { head: *head, sums })
}

/// Fills `buf` from `data`, zero-filling whatever is left when the data ends early.
fn read_or_zero(data: &mut impl Read, buf: &mut [u8]) -> io::Result<()> {
    let mut filled = 0;
    while filled < buf.len() {
        match data.read(&mut buf[filled..]) {
            Ok(0) => {
                buf[filled..].fill(0);
                break;
            }
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
