//! File-list indexes on the wire (upstream: io.c write_ndx(), read_ndx()) and the item
//! flags that follow them (rsync.h ITEM_*).

use super::codec::{get_int, put_int};
use super::{Decoded, WireError};

/// End of a phase or of a list's requests.
pub const NDX_DONE: i32 = -1;
/// No more file lists follow (incremental recursion).
pub const NDX_FLIST_EOF: i32 = -2;
/// Delete statistics follow (protocol 31+).
pub const NDX_DEL_STATS: i32 = -3;
/// Sub-list markers are `NDX_FLIST_OFFSET - dir_index`.
pub const NDX_FLIST_OFFSET: i32 = -101;

/// The basis a transfer request names (upstream: rsync.h FNAMECMP_*): 0..=0x7f are
/// `--*-dest` directories.
pub mod basis {
    /// The destination file itself (the default, never sent).
    pub const FNAME: u8 = 0x80;
    /// The file in `--partial-dir`.
    pub const PARTIAL_DIR: u8 = 0x81;
    /// The backup copy (`--inplace` with `--backup`).
    pub const BACKUP: u8 = 0x82;
    /// A similar file (`--fuzzy`), plus N for the N-th basis directory.
    pub const FUZZY: u8 = 0x83;
}

/// Item flags (`ITEM_*`): what changed, and what the request asks for.
pub mod iflags {
    pub const REPORT_ATIME: u32 = 1 << 0;
    pub const REPORT_CHANGE: u32 = 1 << 1;
    pub const REPORT_SIZE: u32 = 1 << 2;
    pub const REPORT_TIMEFAIL: u32 = 1 << 2;
    pub const REPORT_TIME: u32 = 1 << 3;
    pub const REPORT_PERMS: u32 = 1 << 4;
    pub const REPORT_OWNER: u32 = 1 << 5;
    pub const REPORT_GROUP: u32 = 1 << 6;
    pub const REPORT_ACL: u32 = 1 << 7;
    pub const REPORT_XATTR: u32 = 1 << 8;
    pub const REPORT_CRTIME: u32 = 1 << 10;
    pub const BASIS_TYPE_FOLLOWS: u32 = 1 << 11;
    pub const XNAME_FOLLOWS: u32 = 1 << 12;
    pub const IS_NEW: u32 = 1 << 13;
    pub const LOCAL_CHANGE: u32 = 1 << 14;
    pub const TRANSFER: u32 = 1 << 15;
    /// Internal only: never on the wire.
    pub const MISSING_DATA: u32 = 1 << 16;
    pub const DELETED: u32 = 1 << 17;
    pub const MATCHED: u32 = 1 << 18;

    /// Bits that make a non-transfer record worth sending (upstream: SIGNIFICANT_ITEM_FLAGS).
    pub const SIGNIFICANT: u32 = !(BASIS_TYPE_FOLLOWS | XNAME_FOLLOWS | LOCAL_CHANGE) & 0xffff;
}

/// One direction's index codec: protocol 30+ sends differences from the previous value of
/// the same sign. Each side keeps one for what it writes and one for what it reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NdxCodec {
    protocol: i32,
    prev_positive: i32,
    prev_negative: i32,
}

impl NdxCodec {
    pub fn new(protocol: i32) -> NdxCodec {
        NdxCodec {
            protocol,
            prev_positive: -1,
            prev_negative: 1,
        }
    }

    /// Appends an index. Upstream: io.c, write_ndx().
    pub fn encode(&mut self, ndx: i32, out: &mut Vec<u8>) {
        if self.protocol < 30 {
            put_int(out, ndx);
            return;
        }
        let (diff, value) = if ndx >= 0 {
            let d = ndx.wrapping_sub(self.prev_positive);
            self.prev_positive = ndx;
            (d, ndx)
        } else if ndx == NDX_DONE {
            out.push(0);
            return;
        } else {
            out.push(0xff);
            let v = ndx.wrapping_neg();
            let d = v.wrapping_sub(self.prev_negative);
            self.prev_negative = v;
            (d, v)
        };
        if diff > 0 && diff < 0xfe {
            out.push(diff as u8);
        } else if !(0..=0x7fff).contains(&diff) {
            out.extend_from_slice(&[
                0xfe,
                ((value >> 24) as u8) | 0x80,
                value as u8,
                (value >> 8) as u8,
                (value >> 16) as u8,
            ]);
        } else {
            out.extend_from_slice(&[0xfe, (diff >> 8) as u8, diff as u8]);
        }
    }

    /// Decodes an index; the state changes only when a whole index was read.
    /// Upstream: io.c, read_ndx().
    pub fn decode(&mut self, buf: &[u8]) -> Result<Decoded<i32>, WireError> {
        if self.protocol < 30 {
            return Ok(get_int(buf));
        }
        let Some(&b0) = buf.first() else {
            return Ok(Decoded::Needed(1));
        };
        if b0 == 0 {
            return Ok(Decoded::Done {
                value: NDX_DONE,
                used: 1,
            });
        }
        let (negative, mut pos) = if b0 == 0xff { (true, 1) } else { (false, 0) };
        let Some(&b) = buf.get(pos) else {
            return Ok(Decoded::Needed(1));
        };
        pos += 1;
        let prev = if negative {
            self.prev_negative
        } else {
            self.prev_positive
        };
        let num = if b == 0xfe {
            let Some(&[hi, lo]) = buf
                .get(pos..pos + 2)
                .and_then(|s| <&[u8; 2]>::try_from(s).ok())
            else {
                return Ok(Decoded::Needed(pos + 2 - buf.len()));
            };
            pos += 2;
            if hi & 0x80 != 0 {
                let Some(&[b2, b3]) = buf
                    .get(pos..pos + 2)
                    .and_then(|s| <&[u8; 2]>::try_from(s).ok())
                else {
                    return Ok(Decoded::Needed(pos + 2 - buf.len()));
                };
                pos += 2;
                i32::from_le_bytes([lo, b2, b3, hi & 0x7f])
            } else {
                relative(prev, i32::from(hi) << 8 | i32::from(lo))?
            }
        } else {
            relative(prev, i32::from(b))?
        };
        if negative {
            self.prev_negative = num;
        } else {
            self.prev_positive = num;
        }
        Ok(Decoded::Done {
            value: if negative { num.wrapping_neg() } else { num },
            used: pos,
        })
    }
}

/// A difference from the previous index. Indexes are int32 and upstream's writer falls
/// back to the absolute form long before a difference could leave that range, so a sum
/// that overflows is refused rather than wrapped (upstream's read_ndx() would wrap, even
/// to INT_MIN, whose negation no writer can send back).
fn relative(prev: i32, diff: i32) -> Result<i32, WireError> {
    prev.checked_add(diff).ok_or(WireError::Malformed {
        what: "file index (overflow)",
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn enc(seq: &[i32]) -> Vec<u8> {
        let mut c = NdxCodec::new(32);
        let mut out = Vec::new();
        for &n in seq {
            c.encode(n, &mut out);
        }
        out
    }

    #[test]
    fn vectors_from_captures() {
        // b-a-push-p32 c2s@291: -102 first negative; @318 -2 after it (absolute form).
        assert_eq!(enc(&[-102]), [0xff, 0x65]);
        assert_eq!(
            enc(&[-102, -2]),
            [0xff, 0x65, 0xff, 0xfe, 0x80, 0x02, 0x00, 0x00]
        );
        assert_eq!(enc(&[-2]), [0xff, 0x01]);
        assert_eq!(enc(&[-3]), [0xff, 0x02]);
        assert_eq!(enc(&[0, 2, 3]), [0x01, 0x02, 0x01]);
        assert_eq!(enc(&[NDX_DONE]), [0x00]);
        let mut c = NdxCodec::new(29);
        let mut out = Vec::new();
        c.encode(0, &mut out);
        assert_eq!(out, [0, 0, 0, 0]);
    }

    /// Found by the ndx fuzz target: the absolute form sets the previous negative index to
    /// 0x7fffffff, and a difference of 1 after it wrapped to i32::MIN, a value no encoder
    /// can write back (its negation overflows).
    #[test]
    fn differences_that_overflow_are_refused() {
        let mut d = NdxCodec::new(30);
        let b = [0xff, 0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01];
        assert_eq!(
            d.decode(&b),
            Ok(Decoded::Done {
                value: -i32::MAX,
                used: 6
            })
        );
        assert!(d.decode(&b[6..]).is_err());
        // The same on the positive side, with the two-byte difference form.
        let mut d = NdxCodec::new(31);
        let b = [0xfe, 0xff, 0xff, 0xff, 0xff, 0xfe, 0x00, 0x01];
        assert_eq!(
            d.decode(&b),
            Ok(Decoded::Done {
                value: i32::MAX,
                used: 5
            })
        );
        assert!(d.decode(&b[5..]).is_err());
    }

    proptest! {
        #[test]
        fn round_trips(seq in prop::collection::vec(prop_oneof![-200_000i32..200_000, Just(-1)], 1..50), protocol in 29i32..=32) {
            let mut e = NdxCodec::new(protocol);
            let mut out = Vec::new();
            for &n in &seq { e.encode(n, &mut out); }
            let mut d = NdxCodec::new(protocol);
            let mut pos = 0;
            for &n in &seq {
                match d.decode(&out[pos..]).unwrap() {
                    Decoded::Done { value, used } => { prop_assert_eq!(value, n); pos += used; }
                    Decoded::Needed(_) => prop_assert!(false, "short"),
                }
            }
            prop_assert_eq!(pos, out.len());
        }

        #[test]
        fn never_panics(b in prop::collection::vec(any::<u8>(), 0..64), protocol in 27i32..=32) {
            // A stream of indexes, as the receiver reads them: the state carries over.
            let mut d = NdxCodec::new(protocol);
            let mut pos = 0;
            let mut values = Vec::new();
            while let Ok(Decoded::Done { value, used }) = d.decode(&b[pos..]) {
                prop_assert!(used > 0 && pos + used <= b.len());
                pos += used;
                values.push(value);
            }
            // Whatever was decoded, an encoder can write back.
            let mut e = NdxCodec::new(protocol);
            let mut out = Vec::new();
            for &v in &values {
                e.encode(v, &mut out);
            }
            let mut again = NdxCodec::new(protocol);
            let mut at = 0;
            for &v in &values {
                let Ok(Decoded::Done { value, used }) = again.decode(&out[at..]) else {
                    return Err(TestCaseError::fail("re-encoded index does not decode"));
                };
                prop_assert_eq!(value, v);
                at += used;
            }
        }
    }
}
