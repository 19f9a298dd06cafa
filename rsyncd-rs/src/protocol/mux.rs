//! Multiplexed I/O frames and message codes (upstream: io.c, rsync.h).
//!
//! A frame is a 4-byte little-endian header `((MPLEX_BASE + code) << 24) | len` followed by
//! `len` payload bytes.

use super::{Decoded, WireError};

/// Upstream's MPLEX_BASE: the tag byte is this plus the message code.
pub const MPLEX_BASE: u8 = 7;

/// The largest payload a frame header can describe.
pub const MAX_FRAME_LEN: usize = 0x00ff_ffff;

/// The longest text message a 3.5.0 peer accepts (BIGPATHBUFLEN on Linux); longer texts
/// make it die with "multiplexing overflow".
pub const MAX_TEXT_LEN: usize = 5119;

/// Message codes (`MSG_*` in upstream's rsync.h).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MsgCode {
    /// Data stream bytes; an empty frame is a keepalive.
    Data,
    /// A transfer error (also every error below protocol 30).
    ErrorXfer,
    /// Informational text (also warnings below protocol 30).
    Info,
    /// An error (protocol 30+).
    Error,
    /// A warning (protocol 30+).
    Warning,
    /// Receiver to generator only.
    ErrorSocket,
    /// To the daemon's log only.
    Log,
    /// Never on the socket.
    Client,
    /// Never on the socket.
    ErrorUtf8,
    /// Receiver to generator: redo this index.
    Redo,
    /// Receiver to generator: statistics.
    Stats,
    /// The sender's io_error bits.
    IoError,
    /// The daemon's timeout, in seconds (protocol 31+).
    IoTimeout,
    /// Protocol-30 keepalive.
    Noop,
    /// Synchronised error exit (protocol 31+).
    ErrorExit,
    /// A file was received (for `--remove-source-files`).
    Success,
    /// The receiving server deleted this name.
    Deleted,
    /// The sender could not open this index.
    NoSend,
}

impl MsgCode {
    /// The numeric code on the wire.
    pub fn to_wire(self) -> u8 {
        match self {
            MsgCode::Data => 0,
            MsgCode::ErrorXfer => 1,
            MsgCode::Info => 2,
            MsgCode::Error => 3,
            MsgCode::Warning => 4,
            MsgCode::ErrorSocket => 5,
            MsgCode::Log => 6,
            MsgCode::Client => 7,
            MsgCode::ErrorUtf8 => 8,
            MsgCode::Redo => 9,
            MsgCode::Stats => 10,
            MsgCode::IoError => 22,
            MsgCode::IoTimeout => 33,
            MsgCode::Noop => 42,
            MsgCode::ErrorExit => 86,
            MsgCode::Success => 100,
            MsgCode::Deleted => 101,
            MsgCode::NoSend => 102,
        }
    }

    /// The code for a numeric value; unknown values are what upstream calls an unexpected tag.
    pub fn from_wire(code: u8) -> Result<MsgCode, WireError> {
        Ok(match code {
            0 => MsgCode::Data,
            1 => MsgCode::ErrorXfer,
            2 => MsgCode::Info,
            3 => MsgCode::Error,
            4 => MsgCode::Warning,
            5 => MsgCode::ErrorSocket,
            6 => MsgCode::Log,
            7 => MsgCode::Client,
            8 => MsgCode::ErrorUtf8,
            9 => MsgCode::Redo,
            10 => MsgCode::Stats,
            22 => MsgCode::IoError,
            33 => MsgCode::IoTimeout,
            42 => MsgCode::Noop,
            86 => MsgCode::ErrorExit,
            100 => MsgCode::Success,
            101 => MsgCode::Deleted,
            102 => MsgCode::NoSend,
            other => return Err(WireError::UnknownTag(i32::from(other))),
        })
    }

    /// Whether the payload is text meant for the peer's log or terminal.
    pub fn is_text(self) -> bool {
        matches!(
            self,
            MsgCode::ErrorXfer
                | MsgCode::Info
                | MsgCode::Error
                | MsgCode::Warning
                | MsgCode::ErrorSocket
                | MsgCode::Log
                | MsgCode::Client
                | MsgCode::ErrorUtf8
                | MsgCode::Deleted
        )
    }
}

/// A decoded frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MuxHeader {
    pub code: MsgCode,
    pub len: usize,
}

/// Decodes a frame header. Upstream: io.c, read_a_msg().
pub fn decode_mux_header(buf: &[u8]) -> Result<Decoded<MuxHeader>, WireError> {
    let Some(raw) = buf.first_chunk::<4>() else {
        return Ok(Decoded::Needed(4 - buf.len()));
    };
    let word = u32::from_le_bytes(*raw);
    let tag = (word >> 24) as u8;
    let code = match tag.checked_sub(MPLEX_BASE) {
        Some(c) => MsgCode::from_wire(c)?,
        None => {
            return Err(WireError::UnknownTag(
                i32::from(tag) - i32::from(MPLEX_BASE),
            ));
        }
    };
    let len = (word & 0x00ff_ffff) as usize;
    check_payload_len(code, len)?;
    Ok(Decoded::Done {
        value: MuxHeader { code, len },
        used: 4,
    })
}

/// The size rules a 3.5.0 reader enforces, with its words for a breach. Upstream: io.c,
/// read_a_msg().
fn check_payload_len(code: MsgCode, len: usize) -> Result<(), WireError> {
    let fixed = match code {
        MsgCode::Data => return Ok(()),
        MsgCode::IoError
        | MsgCode::IoTimeout
        | MsgCode::Redo
        | MsgCode::NoSend
        | MsgCode::Success => len == 4,
        MsgCode::Stats => len == 8,
        MsgCode::Noop => len == 0,
        MsgCode::ErrorExit => len == 0 || len == 4,
        // Texts and deleted names are read into a fixed buffer.
        _ if len > MAX_TEXT_LEN => {
            return Err(WireError::Overflow {
                code: code.to_wire(),
                len,
            });
        }
        _ => true,
    };
    if fixed {
        Ok(())
    } else {
        Err(WireError::InvalidMessage {
            code: code.to_wire(),
            len,
        })
    }
}

/// Appends a frame header for `len` payload bytes of `code`.
pub fn put_mux_header(out: &mut Vec<u8>, code: MsgCode, len: usize) {
    debug_assert!(len <= MAX_FRAME_LEN);
    let word = (u32::from(MPLEX_BASE + code.to_wire()) << 24) | (len as u32 & 0x00ff_ffff);
    out.extend_from_slice(&word.to_le_bytes());
}

/// Appends a whole frame. Payloads longer than a frame can hold are split into frames.
pub fn put_frame(out: &mut Vec<u8>, code: MsgCode, payload: &[u8]) {
    if payload.is_empty() {
        put_mux_header(out, code, 0);
        return;
    }
    for chunk in payload.chunks(MAX_FRAME_LEN) {
        put_mux_header(out, code, chunk.len());
        out.extend_from_slice(chunk);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn headers_from_captures() {
        // a-push-p32 c2s@251: MSG_DATA, 131 bytes.
        assert_eq!(
            decode_mux_header(&[0x83, 0, 0, 0x07]),
            Ok(Decoded::Done {
                value: MuxHeader {
                    code: MsgCode::Data,
                    len: 131
                },
                used: 4
            })
        );
        // a-timeout s2c@152: MSG_IO_TIMEOUT, 4 bytes.
        assert_eq!(
            decode_mux_header(&[0x04, 0, 0, 0x28]),
            Ok(Decoded::Done {
                value: MuxHeader {
                    code: MsgCode::IoTimeout,
                    len: 4
                },
                used: 4
            })
        );
        // a-refused: the client's empty MSG_ERROR_EXIT.
        assert_eq!(
            decode_mux_header(&[0, 0, 0, 0x5d]),
            Ok(Decoded::Done {
                value: MuxHeader {
                    code: MsgCode::ErrorExit,
                    len: 0
                },
                used: 4
            })
        );
        let mut out = Vec::new();
        put_mux_header(&mut out, MsgCode::Data, 131);
        assert_eq!(out, [0x83, 0, 0, 0x07]);
    }

    #[test]
    fn bad_headers_are_errors() {
        assert!(decode_mux_header(&[0, 0, 0, 0x06]).is_err());
        assert!(decode_mux_header(&[0, 0, 0, 0x7f]).is_err());
        assert!(decode_mux_header(&[3, 0, 0, 0x28]).is_err());
        assert!(decode_mux_header(&[0, 0x20, 0, 0x0a]).is_err());
        // Upstream's words: a code that does not exist, a fixed size broken, a text too
        // long for the reader's buffer.
        let err = |b: [u8; 4]| decode_mux_header(&b).unwrap_err().to_string();
        assert_eq!(err([0, 0, 0, 7 + 50]), "unexpected tag 50");
        assert_eq!(err([0, 0, 0, 6]), "unexpected tag -1");
        assert_eq!(err([3, 0, 0, 7 + 33]), "invalid multi-message 33:3");
        assert_eq!(err([1, 0, 0, 7 + 42]), "invalid multi-message 42:1");
        assert_eq!(err([0x00, 0x14, 0, 7 + 2]), "multiplexing overflow 2:5120");
        assert_eq!(
            err([0x00, 0x14, 0, 7 + 101]),
            "multiplexing overflow 101:5120"
        );
    }

    proptest! {
        #[test]
        fn header_round_trips(code in prop::sample::select(vec![0u8, 1, 2, 3, 4, 22, 33, 42, 86, 100, 101, 102]), len in 0usize..5000) {
            let code = MsgCode::from_wire(code).unwrap();
            let mut out = Vec::new();
            put_mux_header(&mut out, code, len);
            if let Ok(Decoded::Done { value, .. }) = decode_mux_header(&out) {
                prop_assert_eq!(value, MuxHeader { code, len });
            }
        }

        #[test]
        fn frames_round_trip(payload in proptest::collection::vec(any::<u8>(), 0..3000), text: bool) {
            let code = if text { MsgCode::Info } else { MsgCode::Data };
            let mut out = Vec::new();
            put_frame(&mut out, code, &payload);
            let mut pos = 0;
            let mut got = Vec::new();
            while pos < out.len() {
                let Ok(Decoded::Done { value, used }) = decode_mux_header(&out[pos..]) else {
                    return Err(TestCaseError::fail("frame header does not decode"));
                };
                prop_assert_eq!(value.code, code);
                pos += used;
                got.extend_from_slice(&out[pos..pos + value.len]);
                pos += value.len;
            }
            prop_assert_eq!(got, payload);
        }

        #[test]
        fn never_panics(b in proptest::collection::vec(any::<u8>(), 0..8)) {
            // Whatever the header says, the length is one a reader may wait for: a whole
            // frame for data, a bounded text, or the exact size of a fixed message.
            if let Ok(Decoded::Done { value, used }) = decode_mux_header(&b) {
                prop_assert_eq!(used, 4);
                prop_assert!(value.len <= MAX_FRAME_LEN);
                if value.code != MsgCode::Data {
                    prop_assert!(value.len <= MAX_TEXT_LEN);
                }
            }
        }
    }
}
