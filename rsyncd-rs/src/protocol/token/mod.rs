//! The delta token stream of one file: literal data, references to blocks of the basis
//! file, and the end marker (upstream: token.c).
//!
//! Five formats exist. Without compression a token is an int32 (`plain.rs`). With `-z`
//! every algorithm shares one flag-byte framing (`framing.rs`) and differs only in what a
//! `DEFLATED_DATA` record holds: a raw deflate stream per file (`deflate.rs`, zlib and
//! zlibx), one zstd stream per session (`zstd.rs`) or independent LZ4 blocks (`lz4.rs`).
//!
//! [`TokenDecoder`] is the receiver's half: sans-IO, it takes the bytes read so far and
//! answers one [`TokenEvent`] at a time with the number of bytes it used. Literal events
//! never carry more than [`MAX_LITERAL_EVENT`] bytes, however far a compressed record
//! inflates; the rest comes out on the next calls. [`TokenEncoder`] is the sender's half
//! and follows stock rsync's chunking and flush rules so that its output is what a stock
//! sender would have written for the same data.

mod deflate;
mod framing;
mod lz4;
mod plain;
mod zstd;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_roundtrip;

use std::fmt;

use super::{Decoded, WireError};

/// Literal data is handed to the encoders in pieces of at most this many bytes, and a
/// stock sender never writes a longer plain literal run (upstream's CHUNK_SIZE).
pub const CHUNK_SIZE: usize = 32 * 1024;

/// The most literal bytes one [`TokenEvent::Literal`] carries.
pub const MAX_LITERAL_EVENT: usize = 64 * 1024;

/// The longest plain literal run accepted. Stock senders use at most [`CHUNK_SIZE`] and
/// some third-party ones 64 KiB; the run is passed on in pieces, so the bound is only a
/// sanity check, not an allocation.
pub const MAX_PLAIN_LITERAL_RUN: u32 = 16 * 1024 * 1024;

/// The highest block index a token may name (upstream's MAX_TOKEN_INDEX in token.c).
pub const MAX_TOKEN_INDEX: u32 = 0x7fff_fffe;

/// The largest zstd window (as a power of two) the decoder accepts, and so the most
/// memory a peer can make it allocate for history (128 MiB). 27 is zstd's own default
/// limit and what `--compress-level=22` needs; every lower level needs at most 2^26.
pub const ZSTD_WINDOW_LOG_MAX: u32 = 27;

/// The compression of the token stream, negotiated once per session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Compression {
    /// Plain int32 tokens (no `-z`, or zlib at `--compress-level=0`).
    None,
    /// Raw deflate, matched blocks fed into the history (`--old-compress`).
    Zlib,
    /// Raw deflate without history feeding (`--new-compress`).
    Zlibx,
    /// One zstd stream for the whole session.
    Zstd,
    /// Independent LZ4 blocks.
    Lz4,
}

impl Compression {
    /// Parses a name as used in compression negotiation and `--compress-choice`.
    /// Upstream: compat.c, valid_compressions_items.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "none" => Some(Self::None),
            "zlib" => Some(Self::Zlib),
            "zlibx" => Some(Self::Zlibx),
            "zstd" => Some(Self::Zstd),
            "lz4" => Some(Self::Lz4),
            _ => None,
        }
    }

    /// The name used in negotiation.
    pub fn name(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Zlib => "zlib",
            Self::Zlibx => "zlibx",
            Self::Zstd => "zstd",
            Self::Lz4 => "lz4",
        }
    }
}

/// One step of a file's token stream, as the receiver applies it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenEvent<'a> {
    /// Literal bytes to append to the new file, at most [`MAX_LITERAL_EVENT`] of them.
    /// From a compressed stream this may be empty: input was used (a record that ended
    /// inside a compressed block) but produced nothing yet.
    Literal(&'a [u8]),
    /// Append block `n` of the basis file. Runs on the wire arrive as consecutive events.
    /// The index is not checked against the sum head; that is the caller's job.
    Block(u32),
    /// The file's tokens are complete; its whole-file checksum follows on the wire.
    End,
}

/// The receiver's token stream decoder. Make one per session: zstd keeps one context for
/// the whole session, while zlib/zlibx and the per-file block numbering restart after each
/// [`TokenEvent::End`].
pub struct TokenDecoder {
    inner: DecoderInner,
}

enum DecoderInner {
    Plain(plain::PlainDecoder),
    Deflate(framing::CompressedDecoder<deflate::Inflater>),
    Zstd(framing::CompressedDecoder<zstd::ZstdInflater>),
    Lz4(framing::CompressedDecoder<lz4::Lz4Inflater>),
}

impl TokenDecoder {
    /// A decoder for `compression` as spoken at `protocol` (which only matters for zlib's
    /// history feeding of matched blocks longer than 65535 bytes).
    pub fn new(compression: Compression, protocol: i32) -> Self {
        use framing::CompressedDecoder as C;
        let inner = match compression {
            Compression::None => DecoderInner::Plain(plain::PlainDecoder::default()),
            Compression::Zlib => {
                DecoderInner::Deflate(C::new(deflate::Inflater::new(true, protocol)))
            }
            Compression::Zlibx => {
                DecoderInner::Deflate(C::new(deflate::Inflater::new(false, protocol)))
            }
            Compression::Zstd => {
                DecoderInner::Zstd(C::new(zstd::ZstdInflater::new(ZSTD_WINDOW_LOG_MAX)))
            }
            Compression::Lz4 => DecoderInner::Lz4(C::new(lz4::Lz4Inflater::new())),
        };
        Self { inner }
    }

    /// Lowers the zstd window limit (see [`ZSTD_WINDOW_LOG_MAX`]) for a daemon that
    /// wants to spend less memory per session; streams needing more are then refused.
    /// Has no effect for other compressions.
    pub fn with_zstd_window_log_max(mut self, window_log: u32) -> Self {
        if let DecoderInner::Zstd(d) = &mut self.inner {
            d.codec_mut().set_window_log_max(window_log);
        }
        self
    }

    /// Decodes the next event from `input`, the stream bytes not yet used. Returns
    /// [`Decoded::Needed`] when `input` holds no complete event; then call again with the
    /// same bytes and more. After [`Decoded::Done`], drop `used` bytes before the next
    /// call (`used` may be 0 when the event came from data decompressed earlier).
    ///
    /// Upstream: token.c, recv_token().
    ///
    /// # Errors
    /// [`WireError::Malformed`] for an unknown flag byte, a block index beyond
    /// [`MAX_TOKEN_INDEX`], an empty run, or compressed data that does not decompress;
    /// [`WireError::TooLarge`] for a plain literal run over [`MAX_PLAIN_LITERAL_RUN`] or a
    /// compressed record that inflates beyond its bound. The decoder is unusable after an
    /// error.
    pub fn decode<'a>(&'a mut self, input: &'a [u8]) -> Result<Decoded<TokenEvent<'a>>, WireError> {
        match &mut self.inner {
            DecoderInner::Plain(d) => d.decode(input),
            DecoderInner::Deflate(d) => d.decode(input),
            DecoderInner::Zstd(d) => d.decode(input),
            DecoderInner::Lz4(d) => d.decode(input),
        }
    }

    /// Hands back the basis bytes of the block just returned as [`TokenEvent::Block`].
    /// zlib (old) needs them in the inflater's history because later literals may refer
    /// to them; the other formats ignore the call. With zlib, call it after every `Block`
    /// event and before the next [`decode`](Self::decode); a receiver discarding the file
    /// may pass zeros of the block's length.
    ///
    /// Upstream: token.c, see_token() and see_deflate_token().
    ///
    /// # Errors
    /// [`WireError::Malformed`] when called while literal data is still being inflated
    /// (not right after a `Block` event).
    pub fn matched_block_data(&mut self, data: &[u8]) -> Result<(), WireError> {
        match &mut self.inner {
            DecoderInner::Deflate(d) => d.codec_mut().see_block(data),
            _ => Ok(()),
        }
    }
}

impl fmt::Debug for TokenDecoder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match &self.inner {
            DecoderInner::Plain(_) => "plain",
            DecoderInner::Deflate(_) => "deflate",
            DecoderInner::Zstd(_) => "zstd",
            DecoderInner::Lz4(_) => "lz4",
        };
        f.debug_struct("TokenDecoder")
            .field("kind", &kind)
            .finish_non_exhaustive()
    }
}

/// What a single upstream send_token() call ends with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tok {
    /// Literal data only, more follows (upstream's token -2).
    DataOnly,
    /// A matched block.
    Block(u32),
    /// The end of the file (upstream's token -1).
    End,
}

/// The sender's token stream encoder. Make one per session (zstd keeps its context
/// across files). For each file call [`literal`](Self::literal) and
/// [`block`](Self::block) in file order, then [`end`](Self::end).
pub struct TokenEncoder {
    /// Literal bytes not yet encoded: at most [`CHUNK_SIZE`]. Holding back the last
    /// piece lets it travel with the following token, as upstream's match.c does.
    pending: Vec<u8>,
    inner: EncoderInner,
}

enum EncoderInner {
    Plain,
    Deflate(framing::CompressedEncoder<deflate::Deflater>),
    Zstd(framing::CompressedEncoder<zstd::ZstdDeflater>),
    Lz4(framing::CompressedEncoder<lz4::Lz4Deflater>),
}

impl TokenEncoder {
    /// An encoder for `compression` at `level` (`None` for the algorithm's default: zlib
    /// 6, zstd 3; clamped to the algorithm's range; lz4 has no levels). zlib at level 0
    /// writes stored blocks; switching to plain tokens for `--compress-level=0` is the
    /// option layer's decision. `protocol` matters only for zlib's history feeding.
    pub fn new(compression: Compression, level: Option<i32>, protocol: i32) -> Self {
        use framing::CompressedEncoder as C;
        let inner = match compression {
            Compression::None => EncoderInner::Plain,
            Compression::Zlib => {
                EncoderInner::Deflate(C::new(deflate::Deflater::new(level, true, protocol)))
            }
            Compression::Zlibx => {
                EncoderInner::Deflate(C::new(deflate::Deflater::new(level, false, protocol)))
            }
            Compression::Zstd => EncoderInner::Zstd(C::new(zstd::ZstdDeflater::new(level))),
            Compression::Lz4 => EncoderInner::Lz4(C::new(lz4::Lz4Deflater::new())),
        };
        Self {
            pending: Vec::with_capacity(CHUNK_SIZE),
            inner,
        }
    }

    /// Appends literal data of the current file. Output is written in whole pieces of
    /// [`CHUNK_SIZE`] as they complete; the last piece waits for the next token.
    ///
    /// # Errors
    /// Only if the compressor fails, which stock zlib/zstd/lz4 do not for valid input.
    pub fn literal(&mut self, mut data: &[u8], out: &mut Vec<u8>) -> Result<(), WireError> {
        while !data.is_empty() {
            if self.pending.len() == CHUNK_SIZE {
                self.send(Tok::DataOnly, &[], out)?;
            }
            let take = data.len().min(CHUNK_SIZE - self.pending.len());
            let (now, rest) = data.split_at(take);
            self.pending.extend_from_slice(now);
            data = rest;
        }
        Ok(())
    }

    /// Appends a reference to block `index` of the basis; `block_data` is the block's
    /// content, which zlib (old) feeds into the compressor's history (others ignore it).
    ///
    /// # Errors
    /// [`WireError::TooLarge`] for an index over [`MAX_TOKEN_INDEX`]; compressor failures.
    pub fn block(
        &mut self,
        index: u32,
        block_data: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), WireError> {
        if index > MAX_TOKEN_INDEX {
            return Err(WireError::TooLarge {
                what: "block index",
                got: u64::from(index),
                limit: u64::from(MAX_TOKEN_INDEX),
            });
        }
        self.send(Tok::Block(index), block_data, out)
    }

    /// Ends the current file's tokens; the next call starts a new file.
    ///
    /// # Errors
    /// Compressor failures only.
    pub fn end(&mut self, out: &mut Vec<u8>) -> Result<(), WireError> {
        self.send(Tok::End, &[], out)
    }

    /// Encodes the pending literal followed by `tok`, as one upstream send_token() call.
    /// Upstream: token.c, send_token().
    fn send(&mut self, tok: Tok, block_data: &[u8], out: &mut Vec<u8>) -> Result<(), WireError> {
        let data = std::mem::take(&mut self.pending);
        let result = match &mut self.inner {
            EncoderInner::Plain => {
                plain::send(tok, &data, out);
                Ok(())
            }
            EncoderInner::Deflate(e) => e.send(tok, &data, block_data, out),
            EncoderInner::Zstd(e) => e.send(tok, &data, block_data, out),
            EncoderInner::Lz4(e) => e.send(tok, &data, block_data, out),
        };
        self.pending = data;
        self.pending.clear();
        result
    }
}

impl fmt::Debug for TokenEncoder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match &self.inner {
            EncoderInner::Plain => "plain",
            EncoderInner::Deflate(_) => "deflate",
            EncoderInner::Zstd(_) => "zstd",
            EncoderInner::Lz4(_) => "lz4",
        };
        f.debug_struct("TokenEncoder")
            .field("kind", &kind)
            .field("pending", &self.pending.len())
            .finish_non_exhaustive()
    }
}

/// A peer-data error with a fixed description.
fn malformed(what: &'static str) -> WireError {
    WireError::Malformed { what }
}
