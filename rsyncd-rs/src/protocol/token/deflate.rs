//! zlib and zlibx: one raw deflate stream per file inside `DEFLATED_DATA` records.
//!
//! Each literal stretch ends with a sync flush whose last four bytes (`00 00 ff ff`, the
//! LEN/NLEN of an empty stored block) are not sent; the receiver supplies them itself
//! before the next token. zlib (old) also keeps the two histories in step over matched
//! blocks: the sender runs each block through its compressor and discards the output, the
//! receiver inflates the block as fabricated stored blocks. zlibx skips both.
//! Upstream: token.c, send_deflated_token(), recv_deflated_token(), see_deflate_token().

use flate2::{Compress, Compression as Level, Decompress, FlushCompress, FlushDecompress, Status};

use super::framing::{DEFLATED_DATA, Deflate, Inflate, MAX_DATA_COUNT};
use super::{CHUNK_SIZE, MAX_LITERAL_EVENT, WireError, malformed};

/// The four bytes a sender trims from the end of every sync flush.
const SYNC_MARKER: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// The largest stored block, and so the piece size for feeding matched data.
const MAX_STORED: usize = 0xffff;

/// zlib's own default level (upstream maps Z_DEFAULT_COMPRESSION to 6).
const DEFAULT_LEVEL: u32 = 6;

/// Matched data of at most one stored block in the history, as stock does it: protocol
/// 31 fixed a bug that fed the first piece of a long block over and over.
fn history_pieces(data: &[u8], protocol: i32) -> impl Iterator<Item = &[u8]> {
    let mut offset = 0;
    let mut left = data.len();
    std::iter::from_fn(move || {
        if left == 0 {
            return None;
        }
        let n = left.min(MAX_STORED);
        let piece = data.get(offset..offset + n);
        left -= n;
        if protocol >= 31 {
            offset += n;
        }
        piece
    })
}

/// The receiver's inflater for one session, reset after each file.
pub(super) struct Inflater {
    inflate: Decompress,
    is_zlib: bool,
    protocol: i32,
    /// The current record's payload and how much of it the inflater has taken.
    record: Vec<u8>,
    record_pos: usize,
    out: Vec<u8>,
    /// Data arrived since the last sync marker (upstream's r_inflated state).
    is_stretch_open: bool,
}

/// One inflate call: bytes consumed, bytes produced, zlib's status.
fn inflate_step(
    z: &mut Decompress,
    input: &[u8],
    output: &mut [u8],
    flush: FlushDecompress,
) -> Result<(usize, usize), WireError> {
    let (in0, out0) = (z.total_in(), z.total_out());
    let status = z
        .decompress(input, output, flush)
        .map_err(|_| malformed("compressed token data does not inflate"))?;
    if status == Status::StreamEnd {
        // Upstream treats Z_STREAM_END as an error too: the stream of a file never ends.
        return Err(malformed("compressed token data ends the deflate stream"));
    }
    // Both deltas are bounded by the slice lengths.
    Ok((
        (z.total_in() - in0) as usize,
        (z.total_out() - out0) as usize,
    ))
}

impl Inflater {
    /// `is_zlib` selects zlib (history feeding) over zlibx.
    pub(super) fn new(is_zlib: bool, protocol: i32) -> Self {
        Self {
            inflate: Decompress::new(false),
            is_zlib,
            protocol,
            record: Vec::with_capacity(MAX_DATA_COUNT),
            record_pos: 0,
            out: vec![0; MAX_LITERAL_EVENT],
            is_stretch_open: false,
        }
    }

    /// Inflates all of `bytes` (stored-block pieces), discarding the output.
    fn inflate_discard(&mut self, bytes: &[u8]) -> Result<(), WireError> {
        let mut pos = 0;
        loop {
            let rest = bytes.get(pos..).unwrap_or_default();
            let (used, made) = inflate_step(
                &mut self.inflate,
                rest,
                &mut self.out,
                FlushDecompress::Sync,
            )?;
            pos += used;
            if pos >= bytes.len() && made < self.out.len() {
                return Ok(());
            }
            if used == 0 && made == 0 {
                return Err(malformed("inflater made no progress on matched data"));
            }
        }
    }

    /// Puts a matched block into the history as stored blocks (zlib only).
    /// Upstream: token.c, see_deflate_token().
    pub(super) fn see_block(&mut self, data: &[u8]) -> Result<(), WireError> {
        if !self.is_zlib {
            return Ok(());
        }
        if self.is_stretch_open || self.has_pending() {
            return Err(malformed(
                "matched block data while literal data is inflating",
            ));
        }
        for piece in history_pieces(data, self.protocol) {
            // piece.len() <= 0xffff.
            let [lo, hi] = (piece.len() as u16).to_le_bytes();
            self.inflate_discard(&[0, lo, hi, !lo, !hi])?;
            self.inflate_discard(piece)?;
        }
        Ok(())
    }
}

impl Inflate for Inflater {
    fn accept(&mut self, payload: &[u8]) -> Result<(), WireError> {
        self.record.clear();
        self.record.extend_from_slice(payload);
        self.record_pos = 0;
        self.is_stretch_open = true;
        Ok(())
    }

    fn has_pending(&self) -> bool {
        self.record_pos < self.record.len()
    }

    fn produce(&mut self) -> Result<usize, WireError> {
        let rest = self.record.get(self.record_pos..).unwrap_or_default();
        let (used, made) = inflate_step(
            &mut self.inflate,
            rest,
            &mut self.out,
            FlushDecompress::None,
        )?;
        self.record_pos += used;
        if used == 0 && made == 0 {
            return Err(malformed("inflater made no progress on token data"));
        }
        Ok(made)
    }

    fn output(&self, n: usize) -> &[u8] {
        self.out.get(..n).unwrap_or_default()
    }

    /// Upstream: the r_inflated branch of recv_deflated_token().
    fn end_of_stretch(&mut self) -> Result<usize, WireError> {
        if !self.is_stretch_open {
            return Ok(0);
        }
        let (_, made) = inflate_step(&mut self.inflate, &[], &mut self.out, FlushDecompress::Sync)?;
        if made > 0 {
            return Ok(made);
        }
        // The inflater now waits inside the empty stored block the sender trimmed.
        let (used, made) = inflate_step(
            &mut self.inflate,
            &SYNC_MARKER,
            &mut self.out,
            FlushDecompress::Sync,
        )?;
        if used != SYNC_MARKER.len() || made != 0 {
            return Err(malformed("compressed token data lost sync"));
        }
        self.is_stretch_open = false;
        Ok(0)
    }

    fn end_of_file(&mut self) {
        self.inflate.reset(false);
        self.record.clear();
        self.record_pos = 0;
        self.is_stretch_open = false;
    }
}

impl std::fmt::Debug for Inflater {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inflater")
            .field("is_zlib", &self.is_zlib)
            .field("record_pos", &self.record_pos)
            .field("is_stretch_open", &self.is_stretch_open)
            .finish_non_exhaustive()
    }
}

/// The sender's deflater for one session, reset at the start of each file.
#[derive(Debug)]
pub(super) struct Deflater {
    deflate: Compress,
    is_zlib: bool,
    protocol: i32,
    /// Upstream's obuf without the two flag bytes: one record's worth.
    record: Vec<u8>,
    /// Where history-feeding output goes to be discarded.
    scratch: Vec<u8>,
}

/// One deflate call: bytes consumed, bytes produced.
fn deflate_step(
    z: &mut Compress,
    input: &[u8],
    output: &mut [u8],
    flush: FlushCompress,
) -> Result<(usize, usize), WireError> {
    let (in0, out0) = (z.total_in(), z.total_out());
    z.compress(input, output, flush)
        .map_err(|_| malformed("deflate failed"))?;
    Ok((
        (z.total_in() - in0) as usize,
        (z.total_out() - out0) as usize,
    ))
}

/// Appends one `DEFLATED_DATA` record of `payload` (at most [`MAX_DATA_COUNT`] bytes).
pub(super) fn put_record(out: &mut Vec<u8>, payload: &[u8]) {
    let n = payload.len();
    out.push(DEFLATED_DATA | (n >> 8) as u8);
    out.push(n as u8);
    out.extend_from_slice(payload);
}

impl Deflater {
    /// `level` as the user gave it (`None` or negative for 6, clamped to 0..=9).
    pub(super) fn new(level: Option<i32>, is_zlib: bool, protocol: i32) -> Self {
        let level = match level {
            Some(l) if l >= 0 => l.unsigned_abs().min(9),
            _ => DEFAULT_LEVEL,
        };
        Self {
            deflate: Compress::new(Level::new(level), false),
            is_zlib,
            protocol,
            record: vec![0; MAX_DATA_COUNT],
            // Upstream's AVAIL_OUT_SIZE(CHUNK_SIZE).
            scratch: vec![0; CHUNK_SIZE * 1001 / 1000 + 16],
        }
    }

    /// Deflates `input` into `record[*fill..]` until the input is used up (and, when
    /// flushing, the flush is complete) or the record is full.
    fn fill_record(
        &mut self,
        input: &mut &[u8],
        fill: &mut usize,
        flush: FlushCompress,
    ) -> Result<(), WireError> {
        loop {
            let room = self.record.get_mut(*fill..).unwrap_or_default();
            let (used, made) = deflate_step(&mut self.deflate, input, room, flush)?;
            *input = input.get(used..).unwrap_or_default();
            *fill += made;
            if *fill == MAX_DATA_COUNT || input.is_empty() {
                return Ok(());
            }
            if used == 0 && made == 0 {
                return Err(malformed("deflate made no progress"));
            }
        }
    }
}

impl Deflate for Deflater {
    fn start_file(&mut self) {
        self.deflate.reset();
    }

    /// Input goes in [`CHUNK_SIZE`] pieces; output leaves in records of up to
    /// [`MAX_DATA_COUNT`]. While flushing, the last four bytes of a full record are held
    /// back and start the next one, so that the final four (the sync marker) can be
    /// dropped. Upstream: token.c, the data loop of send_deflated_token().
    fn stretch(
        &mut self,
        data: &[u8],
        ends_stretch: bool,
        out: &mut Vec<u8>,
    ) -> Result<(), WireError> {
        let mut left = data;
        let mut input: &[u8] = &[];
        // Upstream starts with avail_out == 0, i.e. a "full" record to be reset.
        let mut fill = MAX_DATA_COUNT;
        let mut is_flushing = false;
        loop {
            if input.is_empty() && !left.is_empty() {
                let (now, rest) = left.split_at(left.len().min(CHUNK_SIZE));
                input = now;
                left = rest;
            }
            if fill == MAX_DATA_COUNT {
                fill = 0;
                if is_flushing {
                    self.record.copy_within(MAX_DATA_COUNT - 4.., 0);
                    fill = 4;
                }
            }
            is_flushing |= left.is_empty() && ends_stretch;
            let flush = if is_flushing {
                FlushCompress::Sync
            } else {
                FlushCompress::None
            };
            self.fill_record(&mut input, &mut fill, flush)?;
            let is_last = left.is_empty() && fill < MAX_DATA_COUNT;
            if left.is_empty() || fill == MAX_DATA_COUNT {
                let mut n = fill;
                if is_flushing {
                    n = fill
                        .checked_sub(4)
                        .ok_or(malformed("deflate sync flush too short"))?;
                    if is_last && self.record.get(n..fill) != Some(&SYNC_MARKER[..]) {
                        return Err(malformed("deflate sync flush without a sync marker"));
                    }
                }
                if n > 0 {
                    put_record(out, self.record.get(..n).unwrap_or_default());
                }
            }
            if is_last {
                return Ok(());
            }
        }
    }

    /// Runs a matched block through the compressor so that later literals may refer to
    /// it, discarding the output (zlib only). Stock rsync's bundled zlib has an
    /// insert-only flush for this; with any other zlib it does a sync flush and drops the
    /// output, as here. Upstream: token.c, the end of send_deflated_token().
    fn after_block(&mut self, block_data: &[u8]) -> Result<(), WireError> {
        if !self.is_zlib {
            return Ok(());
        }
        for piece in history_pieces(block_data, self.protocol) {
            let mut input = piece;
            loop {
                let (used, made) = deflate_step(
                    &mut self.deflate,
                    input,
                    &mut self.scratch,
                    FlushCompress::Sync,
                )?;
                input = input.get(used..).unwrap_or_default();
                if input.is_empty() && made < self.scratch.len() {
                    break;
                }
                if used == 0 && made == 0 {
                    return Err(malformed("deflate made no progress on matched data"));
                }
            }
        }
        Ok(())
    }
}
