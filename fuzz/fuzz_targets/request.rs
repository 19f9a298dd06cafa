//! Arbitrary bytes as the requests a receiver sends a sender (a pull's client is the
//! peer): each decoded request sequence, encoded again, decodes to the same sequence,
//! and no input makes the decoder panic or hold more than one bounded name.
//! `cargo +nightly fuzz run request`.
//!
//! Input: byte 0 picks the protocol (27 + b % 6); the rest is the stream.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rsyncd_rs::protocol::Decoded;
use rsyncd_rs::protocol::ndx::NdxCodec;
use rsyncd_rs::protocol::request::{MAX_XNAME, Request, RequestDecoder, encode_request};

fuzz_target!(|data: &[u8]| {
    let Some((&p, stream)) = data.split_first() else {
        return;
    };
    let protocol = 27 + i32::from(p % 6);
    let mut dec = RequestDecoder::new(protocol);
    let mut requests = Vec::new();
    let mut pos = 0;
    while let Ok(Decoded::Done { value, used }) = dec.decode(&stream[pos..]) {
        assert!(used > 0 && pos + used <= stream.len());
        if let Request::File { xname: Some(x), .. } = &value {
            assert!(x.len() <= MAX_XNAME);
        }
        pos += used;
        requests.push(value);
    }
    let mut enc = NdxCodec::new(protocol);
    let mut out = Vec::new();
    for r in &requests {
        encode_request(&mut enc, protocol, r, &mut out).expect("bounded names encode");
    }
    let mut again = RequestDecoder::new(protocol);
    let mut at = 0;
    for r in &requests {
        match again.decode(&out[at..]) {
            Ok(Decoded::Done { value, used }) => {
                assert_eq!(&value, r);
                at += used;
            }
            other => panic!("re-encoded request {r:?} does not decode: {other:?}"),
        }
    }
    assert_eq!(at, out.len());
});
