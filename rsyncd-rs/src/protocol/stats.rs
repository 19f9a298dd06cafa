//! The statistics a sending server sends its receiving client at the end of a transfer:
//! bytes it read and wrote, the total size, and from protocol 29 the file list's build
//! and transfer times in milliseconds; `varlong30` integers (a longint before 30).
//! Upstream: main.c, handle_stats().

use super::codec::{get_longint, get_varlong, put_longint, put_varlong};
use super::{Decoded, WireError};

/// See the module's documentation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TransferStats {
    /// Bytes the sending server read.
    pub read: i64,
    /// Bytes the sending server wrote.
    pub written: i64,
    pub total_size: i64,
    pub flist_build_ms: i64,
    pub flist_xfer_ms: i64,
}

impl TransferStats {
    fn fields(&self, protocol: i32) -> &'static [fn(&TransferStats) -> i64] {
        const ALL: [fn(&TransferStats) -> i64; 5] = [
            |s| s.read,
            |s| s.written,
            |s| s.total_size,
            |s| s.flist_build_ms,
            |s| s.flist_xfer_ms,
        ];
        if protocol >= 29 { &ALL } else { &ALL[..3] }
    }
}

/// Appends `s` as `protocol` sends it.
pub fn encode_stats(s: &TransferStats, protocol: i32, out: &mut Vec<u8>) {
    for field in s.fields(protocol) {
        if protocol < 30 {
            put_longint(out, field(s));
        } else {
            put_varlong(out, field(s), 3);
        }
    }
}

/// Decodes the statistics from `buf`.
pub fn decode_stats(buf: &[u8], protocol: i32) -> Result<Decoded<TransferStats>, WireError> {
    let n = if protocol >= 29 { 5 } else { 3 };
    let mut values = [0i64; 5];
    let mut used = 0;
    for v in values.iter_mut().take(n) {
        let rest = buf.get(used..).unwrap_or_default();
        let got = if protocol < 30 {
            get_longint(rest)
        } else {
            get_varlong(rest, 3)?
        };
        match got {
            Decoded::Done { value, used: u } => {
                *v = value;
                used += u;
            }
            Decoded::Needed(k) => return Ok(Decoded::Needed(k)),
        }
    }
    let [read, written, total_size, flist_build_ms, flist_xfer_ms] = values;
    Ok(Decoded::Done {
        value: TransferStats {
            read,
            written,
            total_size,
            flist_build_ms,
            flist_xfer_ms,
        },
        used,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn round_trips_at_every_protocol(
            read in 0i64..1 << 40, written in 0i64..1 << 40, total in 0i64..1 << 50,
            build in 0i64..1 << 20, xfer in 0i64..1 << 20, protocol in 27i32..=32,
        ) {
            let mut s = TransferStats { read, written, total_size: total, flist_build_ms: build, flist_xfer_ms: xfer };
            if protocol < 29 {
                s.flist_build_ms = 0;
                s.flist_xfer_ms = 0;
            }
            let mut out = Vec::new();
            encode_stats(&s, protocol, &mut out);
            prop_assert_eq!(decode_stats(&out, protocol).unwrap(), Decoded::Done { value: s, used: out.len() });
            // Any prefix asks for more.
            for cut in 0..out.len() {
                prop_assert!(matches!(decode_stats(&out[..cut], protocol), Ok(Decoded::Needed(_))));
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..64), protocol in 27i32..=32) {
            let _ = decode_stats(&b, protocol);
        }
    }
}
