//! Arbitrary bytes as a stream of file-list indexes (the receiver's and the generator's
//! reads): each decoded index sequence, encoded again by a fresh encoder, decodes to the
//! same sequence. `cargo +nightly fuzz run ndx`.
//!
//! Input: byte 0 picks the protocol (27 + b % 6); the rest is the stream.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rsyncd_rs::protocol::Decoded;
use rsyncd_rs::protocol::ndx::NdxCodec;

fuzz_target!(|data: &[u8]| {
    let Some((&p, stream)) = data.split_first() else {
        return;
    };
    let protocol = 27 + i32::from(p % 6);
    let mut dec = NdxCodec::new(protocol);
    let mut values = Vec::new();
    let mut pos = 0;
    while let Ok(Decoded::Done { value, used }) = dec.decode(&stream[pos..]) {
        assert!(used > 0 && pos + used <= stream.len());
        pos += used;
        values.push(value);
    }
    let mut enc = NdxCodec::new(protocol);
    let mut out = Vec::new();
    for &v in &values {
        enc.encode(v, &mut out);
    }
    let mut again = NdxCodec::new(protocol);
    let mut at = 0;
    for &v in &values {
        match again.decode(&out[at..]) {
            Ok(Decoded::Done { value, used }) => {
                assert_eq!(value, v);
                at += used;
            }
            other => panic!("re-encoded index {v} does not decode: {other:?}"),
        }
    }
    assert_eq!(at, out.len());
});
