//! Arbitrary bytes as a PROXY protocol header (v1 line or v2 block), as a daemon with
//! `proxy protocol = yes` reads it first. `cargo +nightly fuzz run proxy_header`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = rsyncd_rs::daemon::proxy::decode_proxy_header(data);
});
