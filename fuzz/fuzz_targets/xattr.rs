//! Arbitrary bytes as an xattr block, request and response (the receiver's and the
//! sender's reads of `-X` data): decoding never panics, never reads past the input, and a
//! decoded literal list encodes back to the bytes it came from. `cargo +nightly fuzz run
//! xattr`.
//!
//! Input: byte 0 is how many lists the session's table holds; the rest is the stream.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rsyncd_rs::protocol::Decoded;
use rsyncd_rs::protocol::xattr::{
    XattrBlock, decode_xattr_block, decode_xattr_request, decode_xattr_response,
    encode_xattr_block,
};

fuzz_target!(|data: &[u8]| {
    let Some((&cached, stream)) = data.split_first() else {
        return;
    };
    if let Ok(Decoded::Done { value, used }) = decode_xattr_block(stream, usize::from(cached)) {
        assert!(used <= stream.len());
        if let XattrBlock::Literal(list) = value {
            let mut out = Vec::new();
            encode_xattr_block(None, &list, &mut out);
            // Varints have one shortest form, which is the one we write; the peer's may
            // be longer, so only the decoded list must agree.
            match decode_xattr_block(&out, 0) {
                Ok(Decoded::Done { value: XattrBlock::Literal(again), used }) => {
                    assert_eq!(used, out.len());
                    assert_eq!(again, list);
                }
                other => panic!("re-encoded list does not decode: {other:?}"),
            }
        }
    }
    if let Ok(Decoded::Done { used, .. }) = decode_xattr_request(stream) {
        assert!(used <= stream.len());
    }
    if let Ok(Decoded::Done { used, .. }) = decode_xattr_response(stream) {
        assert!(used <= stream.len());
    }
});
