//! The flag-byte framing every compressed token stream shares, and the decode/encode
//! loops built on it; each algorithm only supplies what goes inside `DEFLATED_DATA`.
//! Upstream: token.c, the flag definitions, recv_compressed_token_num() and the run
//! coding at the top of each send_*_token().

use super::{Decoded, MAX_TOKEN_INDEX, Tok, TokenEvent, WireError, malformed};
use crate::protocol::codec::{get_int, get_shortint, put_int};

/// End of the file's tokens.
pub(super) const END_FLAG: u8 = 0x00;
/// One block; int32 index follows.
pub(super) const TOKEN_LONG: u8 = 0x20;
/// A run of blocks; int32 index and a 16-bit run length follow.
pub(super) const TOKENRUN_LONG: u8 = 0x21;
/// Compressed data; the low 6 bits are the high bits of a 14-bit length, one byte follows.
pub(super) const DEFLATED_DATA: u8 = 0x40;
/// One block, previous + the low 6 bits.
pub(super) const TOKEN_REL: u8 = 0x80;
/// A run starting at previous + the low 6 bits; a 16-bit run length follows.
pub(super) const TOKENRUN_REL: u8 = 0xc0;

/// The largest `DEFLATED_DATA` payload (14 bits).
pub(super) const MAX_DATA_COUNT: usize = 16383;

/// One framed record, parsed but not yet applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Record<'a> {
    /// A `DEFLATED_DATA` payload.
    Data(&'a [u8]),
    /// `END_FLAG`.
    End,
    /// Blocks `first ..= first + extra`.
    Blocks { first: u32, extra: u32 },
}

/// Parses the record at the start of `input`. `previous` is the last block named in this
/// file (0 at its start), the base of the relative forms.
/// Upstream: token.c, recv_deflated_token() (flag dispatch) and recv_compressed_token_num().
///
/// Upstream treats every flag 0x01..=0x3f as TOKEN_LONG (odd ones as TOKENRUN_LONG);
/// stock senders write only 0x20 and 0x21, so the others are refused here.
pub(super) fn parse_record(input: &[u8], previous: u32) -> Result<Decoded<Record<'_>>, WireError> {
    let Some(&flag) = input.first() else {
        return Ok(Decoded::Needed(1));
    };
    if flag & 0xc0 == DEFLATED_DATA {
        let Some(&lo) = input.get(1) else {
            return Ok(Decoded::Needed(1));
        };
        let len = (usize::from(flag & 0x3f) << 8) | usize::from(lo);
        let Some(payload) = input.get(2..2 + len) else {
            return Ok(Decoded::Needed(2 + len - input.len()));
        };
        return Ok(Decoded::Done {
            value: Record::Data(payload),
            used: 2 + len,
        });
    }
    if flag == END_FLAG {
        return Ok(Decoded::Done {
            value: Record::End,
            used: 1,
        });
    }
    let (first, has_run, at) = if flag & TOKEN_REL != 0 {
        let first = previous
            .checked_add(u32::from(flag & 0x3f))
            .filter(|&b| b <= MAX_TOKEN_INDEX)
            .ok_or(malformed("compressed token: block index out of range"))?;
        (first, flag & 0x40 != 0, 1)
    } else if flag == TOKEN_LONG || flag == TOKENRUN_LONG {
        let raw = match get_int(input.get(1..).unwrap_or_default()) {
            Decoded::Done { value, .. } => value,
            Decoded::Needed(n) => return Ok(Decoded::Needed(n)),
        };
        let first = u32::try_from(raw)
            .ok()
            .filter(|&b| b <= MAX_TOKEN_INDEX)
            .ok_or(malformed("compressed token: block index out of range"))?;
        (first, flag == TOKENRUN_LONG, 5)
    } else {
        return Err(malformed("compressed token: unknown flag byte"));
    };
    if !has_run {
        return Ok(Decoded::Done {
            value: Record::Blocks { first, extra: 0 },
            used: at,
        });
    }
    let extra = match get_shortint(input.get(at..).unwrap_or_default()) {
        Decoded::Done { value, .. } => u32::from(value),
        Decoded::Needed(n) => return Ok(Decoded::Needed(n)),
    };
    if extra == 0 || first > MAX_TOKEN_INDEX - extra {
        return Err(malformed("compressed token: bad run length"));
    }
    Ok(Decoded::Done {
        value: Record::Blocks { first, extra },
        used: at + 2,
    })
}

/// The algorithm-specific half of a compressed decoder: it takes `DEFLATED_DATA`
/// payloads and yields their decompressed bytes in bounded pieces.
pub(super) trait Inflate {
    /// Takes one record's payload; called only when [`has_pending`](Self::has_pending)
    /// is false.
    fn accept(&mut self, payload: &[u8]) -> Result<(), WireError>;
    /// Whether accepted input remains to be decompressed.
    fn has_pending(&self) -> bool;
    /// Decompresses the next piece into the output buffer and returns its length
    /// (possibly 0).
    fn produce(&mut self) -> Result<usize, WireError>;
    /// The first `n` bytes of the output buffer.
    fn output(&self, n: usize) -> &[u8];
    /// A token or END follows data: returns the length of any output still held back,
    /// or 0 once the stretch is closed (zlib restores the trimmed sync marker here).
    fn end_of_stretch(&mut self) -> Result<usize, WireError> {
        Ok(0)
    }
    /// END_FLAG was read.
    fn end_of_file(&mut self);
}

/// A receiver for the flag-byte framing over one [`Inflate`].
/// Upstream: token.c, recv_deflated_token(), recv_zstd_token(), recv_compressed_token().
#[derive(Debug)]
pub(super) struct CompressedDecoder<I> {
    codec: I,
    /// The last block returned in this file (upstream's rx_token).
    last_block: u32,
    /// Blocks of the current run still to return (upstream's rx_run).
    run_left: u32,
}

impl<I: Inflate> CompressedDecoder<I> {
    pub(super) fn new(codec: I) -> Self {
        Self {
            codec,
            last_block: 0,
            run_left: 0,
        }
    }

    pub(super) fn codec_mut(&mut self) -> &mut I {
        &mut self.codec
    }

    /// See [`super::TokenDecoder::decode`].
    pub(super) fn decode<'a>(
        &'a mut self,
        input: &'a [u8],
    ) -> Result<Decoded<TokenEvent<'a>>, WireError> {
        if self.run_left > 0 {
            // parse_record checked that the whole run stays within MAX_TOKEN_INDEX.
            self.run_left -= 1;
            self.last_block += 1;
            return Ok(Decoded::Done {
                value: TokenEvent::Block(self.last_block),
                used: 0,
            });
        }
        let mut used = 0;
        loop {
            if self.codec.has_pending() {
                let n = self.codec.produce()?;
                if n > 0 {
                    return Ok(done(TokenEvent::Literal(self.codec.output(n)), used));
                }
                continue;
            }
            let rest = input.get(used..).unwrap_or_default();
            let (record, len) = match parse_record(rest, self.last_block)? {
                Decoded::Done { value, used } => (value, used),
                // Records already used produced nothing visible; report them consumed.
                Decoded::Needed(_) if used > 0 => return Ok(done(TokenEvent::Literal(&[]), used)),
                Decoded::Needed(n) => return Ok(Decoded::Needed(n)),
            };
            if let Record::Data(payload) = record {
                self.codec.accept(payload)?;
                used += len;
                continue;
            }
            let held = self.codec.end_of_stretch()?;
            if held > 0 {
                // The flag stays unread until the held-back output is out.
                return Ok(done(TokenEvent::Literal(self.codec.output(held)), used));
            }
            used += len;
            return Ok(done(self.apply(record), used));
        }
    }

    /// Applies an END or block record to the per-file state.
    fn apply(&mut self, record: Record<'_>) -> TokenEvent<'static> {
        match record {
            Record::Blocks { first, extra } => {
                self.last_block = first;
                self.run_left = extra;
                TokenEvent::Block(first)
            }
            Record::End | Record::Data(_) => {
                self.codec.end_of_file();
                self.last_block = 0;
                self.run_left = 0;
                TokenEvent::End
            }
        }
    }
}

fn done(value: TokenEvent<'_>, used: usize) -> Decoded<TokenEvent<'_>> {
    Decoded::Done { value, used }
}

/// The algorithm-specific half of a compressed encoder.
pub(super) trait Deflate {
    /// The first send of a file (zlib resets its stream here).
    fn start_file(&mut self);
    /// Compresses one literal stretch and writes `DEFLATED_DATA` records; `ends_stretch`
    /// is true when a token follows (flush), false when more literal data follows.
    fn stretch(
        &mut self,
        data: &[u8],
        ends_stretch: bool,
        out: &mut Vec<u8>,
    ) -> Result<(), WireError>;
    /// A matched block was sent (zlib feeds it into the history).
    fn after_block(&mut self, _block_data: &[u8]) -> Result<(), WireError> {
        Ok(())
    }
}

/// Where the previous send left the run coder (upstream's last_token: -1, -2 or a block).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Last {
    FileStart,
    DataOnly,
    Block(u32),
}

/// A sender for the flag-byte framing over one [`Deflate`].
/// Upstream: token.c, send_deflated_token(), send_zstd_token(), send_compressed_token().
#[derive(Debug)]
pub(super) struct CompressedEncoder<D> {
    coder: D,
    last: Last,
    /// First block of the run being collected (valid when `last` is a block).
    run_start: u32,
    /// Last block of the previous run written, the base of the relative forms.
    last_run_end: u32,
    /// Data went out without a flush; the next token must flush it.
    flush_pending: bool,
}

impl<D: Deflate> CompressedEncoder<D> {
    pub(super) fn new(coder: D) -> Self {
        Self {
            coder,
            last: Last::FileStart,
            run_start: 0,
            last_run_end: 0,
            flush_pending: false,
        }
    }

    /// One upstream send_*_token() call: the literal `data`, then `tok`.
    pub(super) fn send(
        &mut self,
        tok: Tok,
        data: &[u8],
        block_data: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), WireError> {
        self.code_runs(tok, !data.is_empty(), out);
        if !data.is_empty() || self.flush_pending {
            self.coder.stretch(data, tok != Tok::DataOnly, out)?;
            self.flush_pending = tok == Tok::DataOnly;
        }
        match tok {
            Tok::End => out.push(END_FLAG),
            Tok::Block(_) => self.coder.after_block(block_data)?,
            Tok::DataOnly => {}
        }
        Ok(())
    }

    /// Collects consecutive blocks into runs of up to 65536 and writes the previous run
    /// when this call cannot extend it.
    fn code_runs(&mut self, tok: Tok, has_data: bool, out: &mut Vec<u8>) {
        let start = match tok {
            Tok::Block(b) => b,
            Tok::DataOnly | Tok::End => 0,
        };
        match self.last {
            Last::FileStart => {
                self.coder.start_file();
                self.last_run_end = 0;
                self.flush_pending = false;
                self.run_start = start;
            }
            Last::DataOnly => self.run_start = start,
            Last::Block(last) => {
                let extends = matches!(tok, Tok::Block(b)
                    if !has_data
                        && Some(b) == last.checked_add(1)
                        && u64::from(b) < u64::from(self.run_start) + 65536);
                if !extends {
                    self.write_run(last, out);
                    self.run_start = start;
                }
            }
        }
        self.last = match tok {
            Tok::DataOnly => Last::DataOnly,
            Tok::Block(b) => Last::Block(b),
            Tok::End => Last::FileStart,
        };
    }

    /// Writes the run `run_start ..= last`.
    fn write_run(&mut self, last: u32, out: &mut Vec<u8>) {
        let rel = i64::from(self.run_start) - i64::from(self.last_run_end);
        let extra = last - self.run_start;
        if (0..=63).contains(&rel) {
            let base = if extra == 0 { TOKEN_REL } else { TOKENRUN_REL };
            out.push(base + rel as u8);
        } else {
            out.push(if extra == 0 {
                TOKEN_LONG
            } else {
                TOKENRUN_LONG
            });
            // Block indexes are at most MAX_TOKEN_INDEX, so they fit an int32.
            put_int(out, self.run_start as i32);
        }
        if extra != 0 {
            out.extend_from_slice(&(extra as u16).to_le_bytes());
        }
        self.last_run_end = last;
    }
}
