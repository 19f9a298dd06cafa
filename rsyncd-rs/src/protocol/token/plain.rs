//! Plain (uncompressed) tokens: int32 `n > 0` is a literal run of `n` bytes, `n < 0` block
//! `-(n + 1)`, `0` the end of the file. Upstream: token.c, simple_recv_token() and
//! simple_send_token().

use super::{
    CHUNK_SIZE, Decoded, MAX_LITERAL_EVENT, MAX_PLAIN_LITERAL_RUN, Tok, TokenEvent, WireError,
};
use crate::protocol::codec::{get_int, put_int};

/// Receiver state between calls: the bytes of a literal run still to come.
#[derive(Debug, Default)]
pub(super) struct PlainDecoder {
    literal_left: u32,
}

impl PlainDecoder {
    /// Literal runs come out in pieces as their bytes arrive, each borrowed from `input`.
    /// Upstream: token.c, simple_recv_token().
    pub(super) fn decode<'a>(
        &mut self,
        input: &'a [u8],
    ) -> Result<Decoded<TokenEvent<'a>>, WireError> {
        if self.literal_left > 0 {
            if input.is_empty() {
                return Ok(Decoded::Needed(1));
            }
            let n = self.take_literal(input.len());
            return Ok(Decoded::Done {
                value: TokenEvent::Literal(input.get(..n).unwrap_or_default()),
                used: n,
            });
        }
        let value = match get_int(input) {
            Decoded::Needed(n) => return Ok(Decoded::Needed(n)),
            Decoded::Done { value, .. } => value,
        };
        let event = match u32::try_from(value) {
            Ok(0) => TokenEvent::End,
            Ok(run) => return self.start_literal(run, input),
            // -(value + 1) without overflow: i32::MIN names block 0x7fffffff.
            Err(_) => TokenEvent::Block(!(value as u32)),
        };
        Ok(Decoded::Done {
            value: event,
            used: 4,
        })
    }

    /// A literal header was read; answer with its first piece of data.
    fn start_literal<'a>(
        &mut self,
        run: u32,
        input: &'a [u8],
    ) -> Result<Decoded<TokenEvent<'a>>, WireError> {
        if run > MAX_PLAIN_LITERAL_RUN {
            return Err(WireError::TooLarge {
                what: "literal run",
                got: u64::from(run),
                limit: u64::from(MAX_PLAIN_LITERAL_RUN),
            });
        }
        let data = input.get(4..).unwrap_or_default();
        if data.is_empty() {
            // Nothing is committed until some data can go with the header.
            return Ok(Decoded::Needed(1));
        }
        self.literal_left = run;
        let n = self.take_literal(data.len());
        Ok(Decoded::Done {
            value: TokenEvent::Literal(data.get(..n).unwrap_or_default()),
            used: 4 + n,
        })
    }

    /// Counts off the next piece of the current run, given `available` bytes.
    fn take_literal(&mut self, available: usize) -> usize {
        let n = available
            .min(MAX_LITERAL_EVENT)
            .min(self.literal_left as usize);
        // n <= literal_left, which is a u32.
        self.literal_left -= n as u32;
        n
    }
}

/// Writes `data` as literal runs of at most [`CHUNK_SIZE`], then `tok`.
/// Upstream: token.c, simple_send_token().
pub(super) fn send(tok: Tok, data: &[u8], out: &mut Vec<u8>) {
    for chunk in data.chunks(CHUNK_SIZE) {
        // chunk.len() <= CHUNK_SIZE, far below i32::MAX.
        put_int(out, chunk.len() as i32);
        out.extend_from_slice(chunk);
    }
    match tok {
        Tok::DataOnly => {}
        // Indexes are at most MAX_TOKEN_INDEX, so -(index + 1) fits an int32.
        Tok::Block(index) => put_int(out, !(index as i32)),
        Tok::End => put_int(out, 0),
    }
}
