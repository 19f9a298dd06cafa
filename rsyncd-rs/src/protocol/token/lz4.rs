//! lz4: every `DEFLATED_DATA` record is an independent LZ4 block of at most
//! [`MAX_DATA_COUNT`] input bytes, with no history across records; matched data is not
//! fed. Upstream: token.c, send_compressed_token() and recv_compressed_token().

use lz4_flex::block::{compress_into, decompress_into, get_maximum_output_size};

use super::framing::{Deflate, Inflate, MAX_DATA_COUNT};
use super::{CHUNK_SIZE, WireError, deflate::put_record, malformed};

/// The most one record may decompress to: upstream's buffer of
/// `MAX(LZ4_compressBound(CHUNK_SIZE), MAX_DATA_COUNT + 2)` bytes.
const MAX_BLOCK_OUTPUT: usize = CHUNK_SIZE + CHUNK_SIZE / 255 + 16;

/// The receiver's side: one decompressed record at a time.
#[derive(Debug)]
pub(super) struct Lz4Inflater {
    out: Vec<u8>,
    /// Bytes of `out` decompressed but not yet handed out.
    ready: Option<usize>,
}

impl Lz4Inflater {
    pub(super) fn new() -> Self {
        Self {
            out: vec![0; MAX_BLOCK_OUTPUT],
            ready: None,
        }
    }
}

impl Inflate for Lz4Inflater {
    fn accept(&mut self, payload: &[u8]) -> Result<(), WireError> {
        let n = decompress_into(payload, &mut self.out)
            .map_err(|_| malformed("compressed token data does not decompress (lz4)"))?;
        self.ready = Some(n);
        Ok(())
    }

    fn has_pending(&self) -> bool {
        self.ready.is_some()
    }

    fn produce(&mut self) -> Result<usize, WireError> {
        Ok(self.ready.take().unwrap_or(0))
    }

    fn output(&self, n: usize) -> &[u8] {
        self.out.get(..n).unwrap_or_default()
    }

    fn end_of_file(&mut self) {
        self.ready = None;
    }
}

/// The sender's side.
#[derive(Debug)]
pub(super) struct Lz4Deflater {
    block: Vec<u8>,
}

impl Lz4Deflater {
    pub(super) fn new() -> Self {
        Self {
            block: vec![0; get_maximum_output_size(MAX_DATA_COUNT)],
        }
    }
}

impl Deflate for Lz4Deflater {
    fn start_file(&mut self) {}

    /// Takes up to [`MAX_DATA_COUNT`] input bytes per block and halves the piece until
    /// its block fits one record. A stretch ended by a token after data-only sends goes
    /// out as an empty block, as upstream does. Upstream: token.c, send_compressed_token().
    fn stretch(
        &mut self,
        data: &[u8],
        _ends_stretch: bool,
        out: &mut Vec<u8>,
    ) -> Result<(), WireError> {
        let mut left = data;
        loop {
            let mut take = left.len().min(MAX_DATA_COUNT);
            let size = loop {
                let piece = left.get(..take).unwrap_or_default();
                let size = compress_into(piece, &mut self.block)
                    .map_err(|_| malformed("lz4 compression failed"))?;
                if size <= MAX_DATA_COUNT {
                    break size;
                }
                take /= 2;
            };
            if size == 0 {
                return Err(malformed("lz4 compression produced nothing"));
            }
            put_record(out, self.block.get(..size).unwrap_or_default());
            left = left.get(take..).unwrap_or_default();
            if left.is_empty() {
                return Ok(());
            }
        }
    }
}
