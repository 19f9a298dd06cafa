//! Finding the receiver's blocks in the file being sent: the rolling-sum search that
//! turns a file into literal data and block references. Upstream: match.c, match_sums()
//! and hash_search().
//!
//! Unlike upstream's chained weak-sum table, the blocks are found by their full
//! (weak, strong, length) key: whatever sums a client sends, each offset whose weak sum
//! is known costs one strong sum and one lookup, never a walk over every block that
//! shares the weak sum (the quadratic class of CVE-2026-70453). A client can still
//! make weak sums collide at every offset without strong matches; those false alarms are
//! budgeted, and once the budget is spent the rest of the file goes as literal data,
//! which is always correct.

use std::collections::{HashMap, HashSet};
use std::io::Read;

use crate::protocol::WireError;
use crate::protocol::checksum::{ChecksumSpec, FileSum, Rolling, block_sum};
use crate::protocol::sums::{BlockSum, SumHead};
use crate::protocol::token::TokenEncoder;

/// How much of the file is read at a time.
const READ_SIZE: usize = 256 * 1024;

/// Literal data is handed to the encoder once this much is pending (upstream's
/// CHUNK_SIZE), so the window held stays bounded.
const LITERAL_FLUSH: usize = 32 * 1024;

/// What a file's matching produced.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct MatchStats {
    pub literal: u64,
    pub matched: u64,
    /// Bytes read from the file.
    pub read: u64,
    /// Bytes of token stream and checksum handed to `emit`.
    pub written: u64,
    /// The whole-file checksum sent after the tokens.
    pub digest: [u8; 32],
    pub digest_len: usize,
}

/// The receiver's blocks, indexed for the search.
struct BlockIndex<'a> {
    sums: &'a [BlockSum],
    s2len: usize,
    /// A bit per hashed weak sum: most offsets are turned away here.
    bits: Vec<u64>,
    mask: u32,
    weak: HashSet<u32>,
    /// (weak, strong prefix, length) → the first block with those sums.
    strong: HashMap<(u32, [u8; 16], u32), u32>,
}

impl<'a> BlockIndex<'a> {
    fn new(head: &SumHead, sums: &'a [BlockSum]) -> Self {
        let s2len = usize::try_from(head.s2length).unwrap_or(0).min(16);
        let nbits = (sums.len() * 8).next_power_of_two().max(1 << 16);
        let mut bits = vec![0u64; nbits / 64];
        let mask = (nbits - 1) as u32;
        let mut weak = HashSet::with_capacity(sums.len());
        let mut strong = HashMap::with_capacity(sums.len());
        for (i, s) in sums.iter().enumerate() {
            let len = head.block_len(i).unwrap_or(0) as u32;
            weak.insert(s.sum1);
            let b = bit(s.sum1, mask);
            bits[(b / 64) as usize] |= 1 << (b % 64);
            strong.entry((s.sum1, s.sum2, len)).or_insert(i as u32);
        }
        BlockIndex {
            sums,
            s2len,
            bits,
            mask,
            weak,
            strong,
        }
    }

    /// Whether some block may have weak sum `sum1`.
    fn may_hold(&self, sum1: u32) -> bool {
        let b = bit(sum1, self.mask);
        self.bits[(b / 64) as usize] & (1 << (b % 64)) != 0 && self.weak.contains(&sum1)
    }

    /// The block whose sums match the window (`want` first when it does too).
    fn find(
        &self,
        spec: &ChecksumSpec,
        sum1: u32,
        window: &[u8],
        want: Option<u32>,
    ) -> Option<u32> {
        let digest = block_sum(spec, window);
        let mut sum2 = [0u8; 16];
        let n = self.s2len.min(digest.len());
        sum2[..n].copy_from_slice(&digest[..n]);
        let len = window.len() as u32;
        let found = *self.strong.get(&(sum1, sum2, len))?;
        // Prefer the block right after the last match: the receiver then copies one run.
        if let Some(w) = want
            && let Some(ws) = self.sums.get(w as usize)
            && ws.sum1 == sum1
            && ws.sum2 == sum2
        {
            return Some(w);
        }
        Some(found)
    }
}

/// The prefilter bit of a weak sum (its halves mixed, as the low bits of s1 alone are
/// weak for short blocks).
fn bit(sum1: u32, mask: u32) -> u32 {
    (sum1 ^ (sum1 >> 16).wrapping_mul(0x9e37)) & mask
}

/// Sends `file` (of `len` bytes) as tokens against the receiver's `head`/`sums`, then the
/// whole-file checksum. `emit` gets encoded bytes as they are ready.
pub(super) fn match_sums(
    file: &mut impl Read,
    len: u64,
    head: &SumHead,
    sums: &[BlockSum],
    spec: &ChecksumSpec,
    enc: &mut TokenEncoder,
    emit: &mut dyn FnMut(&[u8]) -> Result<(), MatchError>,
) -> Result<MatchStats, MatchError> {
    let mut st = MatchStats::default();
    let mut whole = FileSum::new(spec);
    let mut out = Vec::with_capacity(64 * 1024);
    let mut win = Window::default();
    if len > 0 && !sums.is_empty() && head.blength > 0 {
        let idx = BlockIndex::new(head, sums);
        search(
            file, len, head, &idx, spec, enc, &mut win, &mut whole, &mut st, &mut out, emit,
        )?;
    } else {
        // No basis: the whole file is literal data.
        loop {
            win.buf.clear();
            win.base = st.read;
            // Only what the file held when opened is sent (upstream maps st_size), and a
            // small file costs a small read.
            let want = (len - st.read).min(READ_SIZE as u64) as usize;
            let n = if want == 0 { 0 } else { win.fill(file, want)? };
            if n == 0 {
                break;
            }
            st.read += n as u64;
            whole.update(&win.buf);
            enc.literal(&win.buf, &mut out)?;
            st.literal += n as u64;
            flush(&mut out, emit)?;
        }
    }
    enc.end(&mut out)?;
    let digest = whole.finish();
    let n = spec.digest_len().min(digest.len()).min(32);
    out.extend_from_slice(&digest[..n]);
    st.digest[..n].copy_from_slice(&digest[..n]);
    st.digest_len = n;
    flush(&mut out, emit)?;
    Ok(st)
}

fn flush(
    out: &mut Vec<u8>,
    emit: &mut dyn FnMut(&[u8]) -> Result<(), MatchError>,
) -> Result<(), MatchError> {
    if !out.is_empty() {
        emit(out)?;
        out.clear();
    }
    Ok(())
}

/// The part of the file held: `buf` starts at file offset `base`.
#[derive(Default)]
struct Window {
    buf: Vec<u8>,
    base: u64,
    eof: bool,
}

impl Window {
    /// Reads up to `n` more bytes onto the end of the buffer.
    fn fill(&mut self, file: &mut impl Read, n: usize) -> Result<usize, MatchError> {
        if self.eof {
            return Ok(0);
        }
        // Read into the spare capacity (no zeroing first): take() stops at `n` without a
        // further read, and read_to_end() retries interrupted reads.
        let start = self.buf.len();
        self.buf.reserve(n);
        let got = match file.take(n as u64).read_to_end(&mut self.buf) {
            Ok(got) => got,
            Err(e) => {
                self.buf.truncate(start);
                return Err(MatchError::Read(e));
            }
        };
        if got < n {
            self.eof = true;
        }
        Ok(got)
    }

    /// The bytes at file offsets `[from, to)`, which must be held.
    fn slice(&self, from: u64, to: u64) -> &[u8] {
        let a = (from - self.base) as usize;
        let b = (to - self.base) as usize;
        &self.buf[a..b]
    }
}

/// Upstream: match.c, hash_search().
#[allow(clippy::too_many_arguments)]
fn search(
    file: &mut impl Read,
    len: u64,
    head: &SumHead,
    idx: &BlockIndex<'_>,
    spec: &ChecksumSpec,
    enc: &mut TokenEncoder,
    win: &mut Window,
    whole: &mut FileSum,
    st: &mut MatchStats,
    out: &mut Vec<u8>,
    emit: &mut dyn FnMut(&[u8]) -> Result<(), MatchError>,
) -> Result<(), MatchError> {
    let blength = u64::try_from(head.blength).unwrap_or(0);
    // False alarms allowed before the search gives up (see the module comment).
    let mut budget: u64 = 4096 + len / 256;
    let mut offset: u64 = 0;
    let mut want: Option<u32> = None;
    let mut rolling: Option<Rolling> = None;
    let mut searching = true;
    // Literal bytes [last_match, offset) are sent (and hashed) up to `sent_upto`.
    let mut sent_upto: u64 = 0;
    loop {
        // Keep [last unsent literal, offset + blength) in the window.
        let need_end = (offset + blength + 1).min(len);
        while win.base + (win.buf.len() as u64) < need_end && !win.eof {
            let keep_from = sent_upto.min(offset);
            // What is sent and searched goes once it is a read's worth, so the window
            // stays near upstream's (a read plus a block or two).
            if keep_from > win.base + READ_SIZE as u64 {
                let drop = (keep_from - win.base) as usize;
                win.buf.drain(..drop);
                win.base += drop as u64;
            }
            let held_to = win.base + win.buf.len() as u64;
            let want = (len.saturating_sub(held_to)).min(READ_SIZE as u64) as usize;
            let n = if want == 0 { 0 } else { win.fill(file, want)? };
            st.read += n as u64;
            if n == 0 {
                break;
            }
        }
        let avail_end = (win.base + win.buf.len() as u64).min(len);
        if offset >= avail_end {
            break;
        }
        let k = (avail_end - offset).min(blength);
        if !searching || k == 0 {
            offset = avail_end;
            send_literal(win, enc, whole, st, out, &mut sent_upto, offset)?;
            flush(out, emit)?;
            continue;
        }
        let r = match rolling.as_mut() {
            Some(r) if r.window_len() as u64 == k => r,
            _ => rolling.insert(Rolling::new(win.slice(offset, offset + k))),
        };
        let sum1 = r.value();
        let mut matched = None;
        if idx.may_hold(sum1) {
            matched = idx.find(spec, sum1, win.slice(offset, offset + k), want);
            if matched.is_none() {
                budget = budget.saturating_sub(1);
                if budget == 0 {
                    searching = false;
                }
            }
        }
        if let Some(i) = matched {
            send_literal(win, enc, whole, st, out, &mut sent_upto, offset)?;
            let block = win.slice(offset, offset + k);
            whole.update(block);
            enc.block(i, block, out)?;
            st.matched += k;
            offset += k;
            sent_upto = offset;
            want = Some(i + 1);
            rolling = None;
            flush(out, emit)?;
            continue;
        }
        // Roll one byte forward.
        let out_byte = win.slice(offset, offset + 1)[0];
        if offset + k < len && offset + k < win.base + (win.buf.len() as u64) {
            let in_byte = win.slice(offset + k, offset + k + 1)[0];
            r.roll(out_byte, in_byte);
        } else {
            r.shrink(out_byte);
        }
        offset += 1;
        if offset - sent_upto >= LITERAL_FLUSH as u64 {
            send_literal(win, enc, whole, st, out, &mut sent_upto, offset)?;
            flush(out, emit)?;
        }
    }
    send_literal(
        win,
        enc,
        whole,
        st,
        out,
        &mut sent_upto,
        len.min(win.base + win.buf.len() as u64),
    )?;
    Ok(())
}

/// Sends the literal bytes from `*sent_upto` to `to`.
fn send_literal(
    win: &Window,
    enc: &mut TokenEncoder,
    whole: &mut FileSum,
    st: &mut MatchStats,
    out: &mut Vec<u8>,
    sent_upto: &mut u64,
    to: u64,
) -> Result<(), MatchError> {
    if to <= *sent_upto {
        return Ok(());
    }
    let data = win.slice(*sent_upto, to);
    whole.update(data);
    enc.literal(data, out)?;
    st.literal += data.len() as u64;
    *sent_upto = to;
    Ok(())
}

/// Why sending a file's data stopped.
#[derive(Debug, thiserror::Error)]
pub(super) enum MatchError {
    #[error("read error: {0}")]
    Read(std::io::Error),
    #[error("{0}")]
    Wire(#[from] WireError),
    #[error("write failed")]
    Write,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Decoded;
    use crate::protocol::checksum::ChecksumKind;
    use crate::protocol::token::{Compression, TokenDecoder, TokenEvent};

    fn spec() -> ChecksumSpec {
        ChecksumSpec::for_transfer(Some(ChecksumKind::Md5.name()), 0, 31, true).unwrap()
    }

    /// Applies an encoded token stream to `basis` as a receiver would.
    fn rebuild(stream: &[u8], basis: &[u8], head: &SumHead) -> (Vec<u8>, usize) {
        let mut d = TokenDecoder::new(Compression::None, 31);
        let mut out = Vec::new();
        let mut used = 0;
        loop {
            match d.decode(&stream[used..]).unwrap() {
                Decoded::Done { value, used: n } => {
                    used += n;
                    match value {
                        TokenEvent::Literal(b) => out.extend_from_slice(b),
                        TokenEvent::Block(i) => {
                            let off = head.block_offset(i as usize) as usize;
                            let l = head.block_len(i as usize).unwrap();
                            out.extend_from_slice(&basis[off..off + l]);
                        }
                        TokenEvent::End => return (out, used),
                    }
                }
                Decoded::Needed(_) => panic!("truncated stream"),
            }
        }
    }

    fn run(new: &[u8], basis: &[u8], blength: i32) -> (Vec<u8>, MatchStats) {
        let count = basis.len().div_ceil(blength as usize) as i32;
        let head = SumHead {
            count,
            blength,
            s2length: 16,
            remainder: (basis.len() % blength as usize) as i32,
        };
        let s = spec();
        let mut sums = Vec::new();
        for i in 0..count as usize {
            let off = head.block_offset(i) as usize;
            let l = head.block_len(i).unwrap();
            sums.push(BlockSum::compute(&s, &basis[off..off + l], 16));
        }
        let mut enc = TokenEncoder::new(Compression::None, None, 31);
        let mut stream = Vec::new();
        let st = match_sums(
            &mut &new[..],
            new.len() as u64,
            &head,
            &sums,
            &s,
            &mut enc,
            &mut |b| {
                stream.extend_from_slice(b);
                Ok(())
            },
        )
        .unwrap();
        let (rebuilt, used) = rebuild(&stream, basis, &head);
        assert_eq!(&stream[used..], &*{
            let mut f = FileSum::new(&s);
            f.update(new);
            f.finish()
        });
        (rebuilt, st)
    }

    fn data(len: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    #[test]
    fn unchanged_file_is_all_blocks() {
        let basis = data(100_000, 1);
        let (got, st) = run(&basis, &basis, 700);
        assert_eq!(got, basis);
        assert_eq!(st.literal, 0);
        assert_eq!(st.matched, 100_000);
    }

    #[test]
    fn changed_regions_are_literal() {
        let basis = data(300_000, 2);
        let mut new = basis.clone();
        new[1000..1010].copy_from_slice(b"0123456789");
        new.splice(150_000..150_000, b"inserted".iter().copied());
        new.truncate(290_000);
        let (got, st) = run(&new, &basis, 1000);
        assert_eq!(got, new);
        assert!(st.literal < 5000, "literal {}", st.literal);
    }

    #[test]
    fn no_basis_and_empty_file() {
        let new = data(70_000, 3);
        let (got, st) = run(&new, &[], 700);
        assert_eq!(got, new);
        assert_eq!(st.literal, 70_000);
        let (got, _) = run(&[], &data(5000, 4), 700);
        assert!(got.is_empty());
    }

    #[test]
    fn repetitive_data_stays_linear() {
        // Every block of the basis has the same sums, and every window of the new file
        // shares the weak sum: the search must neither stall nor lose data.
        let basis = vec![0u8; 1 << 20];
        let mut new = vec![0u8; 1 << 20];
        new[500_000] = 1;
        let t = std::time::Instant::now();
        let (got, _) = run(&new, &basis, 1024);
        assert_eq!(got, new);
        assert!(t.elapsed() < std::time::Duration::from_secs(20));
    }
}
