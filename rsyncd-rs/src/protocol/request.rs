//! What a receiver's generator sends a sender: an index with its item flags, the basis
//! type and the other name when they follow, the delete statistics, and the end of a
//! phase. Upstream: rsync.c read_ndx_and_attrs(), sender.c write_ndx_and_attrs(),
//! main.c read_del_stats().

use super::codec::{get_shortint, get_varint, get_vstring, put_shortint, put_varint, put_vstring};
use super::ndx::{NDX_DEL_STATS, NDX_DONE, NdxCodec, iflags};
use super::{Decoded, WireError};

/// The longest other name a request may carry (MAXPATHLEN).
pub const MAX_XNAME: usize = 4096;

/// One decoded request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// The end of a list's or a phase's requests (NDX_DONE).
    Done,
    /// The receiver's deletion counts: files, directories, symlinks, devices, specials.
    DelStats([i32; 5]),
    /// A negative index a sender never accepts (list markers travel the other way).
    Other(i32),
    /// A file: what changed, and what the receiver asks for.
    File {
        ndx: i32,
        iflags: u32,
        /// `ITEM_BASIS_TYPE_FOLLOWS`: which basis the receiver uses.
        basis_type: Option<u8>,
        /// `ITEM_XNAME_FOLLOWS`: the hard-link or basis name.
        xname: Option<Vec<u8>>,
    },
}

/// Decodes requests; keeps the index state of the stream.
#[derive(Debug, Clone, Copy)]
pub struct RequestDecoder {
    ndx: NdxCodec,
    protocol: i32,
}

impl RequestDecoder {
    pub fn new(protocol: i32) -> RequestDecoder {
        RequestDecoder {
            ndx: NdxCodec::new(protocol),
            protocol,
        }
    }

    /// Decodes one request; the index state changes only when a whole request was read.
    pub fn decode(&mut self, buf: &[u8]) -> Result<Decoded<Request>, WireError> {
        let mut ndx_codec = self.ndx;
        let (ndx, mut used) = match ndx_codec.decode(buf)? {
            Decoded::Needed(n) => return Ok(Decoded::Needed(n)),
            Decoded::Done { value, used } => (value, used),
        };
        let request = if ndx == NDX_DONE {
            Request::Done
        } else if ndx == NDX_DEL_STATS {
            let mut counts = [0i32; 5];
            for c in &mut counts {
                match get_varint(&buf[used..])? {
                    Decoded::Needed(n) => return Ok(Decoded::Needed(n)),
                    Decoded::Done { value, used: n } => {
                        *c = value;
                        used += n;
                    }
                }
            }
            Request::DelStats(counts)
        } else if ndx < 0 {
            Request::Other(ndx)
        } else {
            let flags = if self.protocol >= 29 {
                match get_shortint(&buf[used..]) {
                    Decoded::Needed(n) => return Ok(Decoded::Needed(n)),
                    Decoded::Done { value, used: n } => {
                        used += n;
                        u32::from(value)
                    }
                }
            } else {
                iflags::TRANSFER | iflags::MISSING_DATA
            };
            let basis_type = if flags & iflags::BASIS_TYPE_FOLLOWS != 0 {
                let Some(&b) = buf.get(used) else {
                    return Ok(Decoded::Needed(1));
                };
                used += 1;
                Some(b)
            } else {
                None
            };
            let xname = if flags & iflags::XNAME_FOLLOWS != 0 {
                match get_vstring(&buf[used..], MAX_XNAME)? {
                    Decoded::Needed(n) => return Ok(Decoded::Needed(n)),
                    Decoded::Done { value, used: n } => {
                        used += n;
                        Some(value)
                    }
                }
            } else {
                None
            };
            Request::File {
                ndx,
                iflags: flags,
                basis_type,
                xname,
            }
        };
        self.ndx = ndx_codec;
        Ok(Decoded::Done {
            value: request,
            used,
        })
    }
}

/// Decodes one name of a `--files-from` list the client forwards: bytes up to a NUL (the
/// client turns newlines into NULs), at most [`MAX_XNAME`] of them; an empty name ends
/// the list. Upstream: io.c, read_line() with RL_EOL_NULLS.
pub fn decode_files_from_name(buf: &[u8]) -> Result<Decoded<Vec<u8>>, WireError> {
    match buf.iter().position(|&c| c == 0) {
        Some(i) if i <= MAX_XNAME => Ok(Decoded::Done {
            value: buf[..i].to_vec(),
            used: i + 1,
        }),
        None if buf.len() <= MAX_XNAME => Ok(Decoded::Needed(1)),
        _ => Err(WireError::TooLarge {
            what: "files-from name",
            got: buf.len() as u64,
            limit: MAX_XNAME as u64,
        }),
    }
}

/// Appends a request as a generator writes it (and as a sender echoes a file's before
/// its data). Upstream: sender.c write_ndx_and_attrs(), main.c write_del_stats().
///
/// # Errors
/// A name longer than a vstring holds.
pub fn encode_request(
    ndx_codec: &mut NdxCodec,
    protocol: i32,
    r: &Request,
    out: &mut Vec<u8>,
) -> Result<(), WireError> {
    match r {
        Request::Done => ndx_codec.encode(NDX_DONE, out),
        Request::Other(n) => ndx_codec.encode(*n, out),
        Request::DelStats(counts) => {
            ndx_codec.encode(NDX_DEL_STATS, out);
            for c in counts {
                put_varint(out, *c);
            }
        }
        Request::File {
            ndx,
            iflags: flags,
            basis_type,
            xname,
        } => {
            ndx_codec.encode(*ndx, out);
            if protocol < 29 {
                return Ok(());
            }
            put_shortint(out, *flags as u16);
            if let Some(t) = basis_type {
                out.push(*t);
            }
            if let Some(x) = xname {
                put_vstring(out, x)?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn one(protocol: i32, bytes: &[u8]) -> Request {
        match RequestDecoder::new(protocol).decode(bytes) {
            Ok(Decoded::Done { value, used }) => {
                assert_eq!(used, bytes.len());
                value
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn known_bytes() {
        // Protocol 31: index 5 (a difference of 6 from -1), ITEM_TRANSFER|REPORT_TIME.
        assert_eq!(
            one(31, &[0x06, 0x08, 0x80]),
            Request::File {
                ndx: 5,
                iflags: 0x8008,
                basis_type: None,
                xname: None
            }
        );
        assert_eq!(one(31, &[0x00]), Request::Done);
        // NDX_DEL_STATS is 0xff then the difference 3 - 1 = 2.
        assert_eq!(
            one(31, &[0xff, 0x02, 1, 2, 0, 0, 0]),
            Request::DelStats([1, 2, 0, 0, 0])
        );
        // Protocol 28: a plain int, and no flags.
        assert_eq!(
            one(28, &[7, 0, 0, 0]),
            Request::File {
                ndx: 7,
                iflags: iflags::TRANSFER | iflags::MISSING_DATA,
                basis_type: None,
                xname: None
            }
        );
    }

    fn request() -> impl Strategy<Value = Request> {
        prop_oneof![
            Just(Request::Done),
            proptest::array::uniform5(0i32..1_000_000).prop_map(Request::DelStats),
            (
                0i32..i32::MAX,
                any::<u16>(),
                any::<u8>(),
                proptest::collection::vec(any::<u8>(), 0..300)
            )
                .prop_map(|(ndx, f, t, x)| {
                    let f = u32::from(f);
                    Request::File {
                        ndx,
                        iflags: f,
                        basis_type: (f & iflags::BASIS_TYPE_FOLLOWS != 0).then_some(t),
                        xname: (f & iflags::XNAME_FOLLOWS != 0).then_some(x),
                    }
                }),
        ]
    }

    #[test]
    fn files_from_names() {
        assert_eq!(
            decode_files_from_name(b"a/b\0c\0"),
            Ok(Decoded::Done {
                value: b"a/b".to_vec(),
                used: 4
            })
        );
        assert_eq!(decode_files_from_name(b"abc"), Ok(Decoded::Needed(1)));
        assert!(decode_files_from_name(&vec![b'a'; MAX_XNAME + 1]).is_err());
    }

    proptest! {
        #[test]
        fn round_trips(rs in proptest::collection::vec(request(), 1..20), protocol in 29i32..=32) {
            let mut enc = NdxCodec::new(protocol);
            let mut bytes = Vec::new();
            for r in &rs {
                encode_request(&mut enc, protocol, r, &mut bytes).unwrap();
            }
            let mut dec = RequestDecoder::new(protocol);
            let mut at = 0;
            for r in &rs {
                match dec.decode(&bytes[at..]).unwrap() {
                    Decoded::Done { value, used } => {
                        prop_assert_eq!(&value, r);
                        at += used;
                    }
                    Decoded::Needed(_) => prop_assert!(false, "short"),
                }
            }
            prop_assert_eq!(at, bytes.len());
        }

        #[test]
        fn split_input_gives_the_same(r in request(), cut in 0usize..400, protocol in 29i32..=32) {
            let mut bytes = Vec::new();
            encode_request(&mut NdxCodec::new(protocol), protocol, &r, &mut bytes).unwrap();
            let cut = cut.min(bytes.len());
            let mut dec = RequestDecoder::new(protocol);
            if cut < bytes.len() {
                prop_assert!(matches!(dec.decode(&bytes[..cut]).unwrap(), Decoded::Needed(_)));
            }
            prop_assert_eq!(dec.decode(&bytes).unwrap(), Decoded::Done { value: r, used: bytes.len() });
        }

        #[test]
        fn arbitrary_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..512), protocol in 27i32..=32) {
            let mut dec = RequestDecoder::new(protocol);
            let mut at = 0;
            while at < b.len() {
                match dec.decode(&b[at..]) {
                    Ok(Decoded::Done { used, .. }) => at += used.max(1),
                    _ => break,
                }
            }
        }
    }
}
