//! zstd: one compression stream for the whole session (a single frame that is never
//! ended), flushed at the end of every literal stretch; matched data is not fed.
//! Upstream: token.c, send_zstd_token() and recv_zstd_token().

use ::zstd::zstd_safe::zstd_sys::ZSTD_EndDirective;
use ::zstd::zstd_safe::{CCtx, CParameter, DCtx, DParameter, InBuffer, OutBuffer};

use super::framing::{Deflate, Inflate, MAX_DATA_COUNT};
use super::{MAX_LITERAL_EVENT, WireError, deflate::put_record, malformed};

/// zstd's default level (ZSTD_CLEVEL_DEFAULT), which rsync also uses for level 0.
const DEFAULT_LEVEL: i32 = 3;

/// The receiver's decompression context, created on the first record.
pub(super) struct ZstdInflater {
    dctx: Option<DCtx<'static>>,
    window_log_max: u32,
    record: Vec<u8>,
    record_pos: usize,
    out: Vec<u8>,
    /// The last call filled the output, so zstd may still hold decoded bytes.
    is_out_full: bool,
}

impl ZstdInflater {
    pub(super) fn new(window_log_max: u32) -> Self {
        Self {
            dctx: None,
            window_log_max,
            record: Vec::with_capacity(MAX_DATA_COUNT),
            record_pos: 0,
            out: vec![0; MAX_LITERAL_EVENT],
            is_out_full: false,
        }
    }

    /// Takes effect only before the first record.
    pub(super) fn set_window_log_max(&mut self, window_log: u32) {
        self.window_log_max = window_log;
    }

    fn context(&mut self) -> Result<&mut DCtx<'static>, WireError> {
        if self.dctx.is_none() {
            let mut dctx = DCtx::try_create().ok_or(malformed("zstd context allocation failed"))?;
            dctx.set_parameter(DParameter::WindowLogMax(self.window_log_max))
                .map_err(|_| malformed("zstd window limit refused"))?;
            self.dctx = Some(dctx);
        }
        self.dctx.as_mut().ok_or(malformed("zstd context missing"))
    }
}

impl Inflate for ZstdInflater {
    fn accept(&mut self, payload: &[u8]) -> Result<(), WireError> {
        self.record.clear();
        self.record.extend_from_slice(payload);
        self.record_pos = 0;
        Ok(())
    }

    fn has_pending(&self) -> bool {
        self.record_pos < self.record.len() || self.is_out_full
    }

    fn produce(&mut self) -> Result<usize, WireError> {
        self.context()?;
        let Self {
            dctx: Some(dctx),
            record,
            record_pos,
            out,
            ..
        } = self
        else {
            return Err(malformed("zstd context missing"));
        };
        let mut input = InBuffer::around(record.get(*record_pos..).unwrap_or_default());
        let mut output = OutBuffer::around(out.as_mut_slice());
        dctx.decompress_stream(&mut output, &mut input)
            .map_err(|_| malformed("compressed token data does not decompress (zstd)"))?;
        let (used, made) = (input.pos(), output.pos());
        self.record_pos += used;
        self.is_out_full = made == self.out.len();
        if used == 0 && made == 0 && self.has_pending() {
            return Err(malformed("zstd made no progress on token data"));
        }
        Ok(made)
    }

    fn output(&self, n: usize) -> &[u8] {
        self.out.get(..n).unwrap_or_default()
    }

    fn end_of_file(&mut self) {
        // The context lives on for the next file.
        self.record.clear();
        self.record_pos = 0;
    }
}

impl std::fmt::Debug for ZstdInflater {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZstdInflater")
            .field("window_log_max", &self.window_log_max)
            .field("record_pos", &self.record_pos)
            .finish_non_exhaustive()
    }
}

/// The sender's compression context, created on the first literal data.
pub(super) struct ZstdDeflater {
    cctx: Option<CCtx<'static>>,
    level: i32,
    record: Vec<u8>,
}

impl ZstdDeflater {
    /// `level` as the user gave it: `None` or 0 for the default, clamped to zstd's range.
    pub(super) fn new(level: Option<i32>) -> Self {
        let level = match level {
            None | Some(0) => DEFAULT_LEVEL,
            Some(l) => l.clamp(
                ::zstd::zstd_safe::min_c_level(),
                ::zstd::zstd_safe::max_c_level(),
            ),
        };
        Self {
            cctx: None,
            level,
            record: vec![0; MAX_DATA_COUNT],
        }
    }

    fn context(&mut self) -> Result<&mut CCtx<'static>, WireError> {
        if self.cctx.is_none() {
            let mut cctx = CCtx::try_create().ok_or(malformed("zstd context allocation failed"))?;
            cctx.set_parameter(CParameter::CompressionLevel(self.level))
                .map_err(|_| malformed("zstd level refused"))?;
            self.cctx = Some(cctx);
        }
        self.cctx.as_mut().ok_or(malformed("zstd context missing"))
    }
}

impl Deflate for ZstdDeflater {
    fn start_file(&mut self) {}

    /// Records are written whenever a call produced output: in practice when zstd's
    /// internal block fills or at the flush. Upstream: token.c, send_zstd_token().
    fn stretch(
        &mut self,
        data: &[u8],
        ends_stretch: bool,
        out: &mut Vec<u8>,
    ) -> Result<(), WireError> {
        let directive = if ends_stretch {
            ZSTD_EndDirective::ZSTD_e_flush
        } else {
            ZSTD_EndDirective::ZSTD_e_continue
        };
        self.context()?;
        let Self {
            cctx: Some(cctx),
            record,
            ..
        } = self
        else {
            return Err(malformed("zstd context missing"));
        };
        let mut input = InBuffer::around(data);
        loop {
            let mut output = OutBuffer::around(record.as_mut_slice());
            let left = cctx
                .compress_stream2(&mut output, &mut input, directive)
                .map_err(|_| malformed("zstd compression failed"))?;
            let made = output.pos();
            if made > 0 {
                put_record(out, record.get(..made).unwrap_or_default());
            }
            let is_finished = if ends_stretch {
                left == 0
            } else {
                input.pos() == data.len()
            };
            if is_finished {
                return Ok(());
            }
        }
    }
}

impl std::fmt::Debug for ZstdDeflater {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZstdDeflater")
            .field("level", &self.level)
            .finish_non_exhaustive()
    }
}
