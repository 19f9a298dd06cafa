//! Arbitrary bytes as what a client sends before `@RSYNCD: OK`: greeting and module
//! lines, daemon arguments (both separators), and the auth response line. Each reader
//! runs on the input as one buffer and, like a session, on what follows each decoded
//! line. `cargo +nightly fuzz run handshake`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rsyncd_rs::protocol::Decoded;
use rsyncd_rs::protocol::auth::decode_response_line;
use rsyncd_rs::protocol::handshake::{
    BIG_LINE_MAX, DAEMON_LINE_MAX, decode_arg, decode_line, parse_greeting,
    parse_module_request,
};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = parse_greeting(&text);
    let _ = parse_module_request(&text);
    let _ = decode_response_line(data);

    // Greeting, then module requests, line after line, as a session reads them.
    let mut rest = data;
    while let Ok(Decoded::Done { value, used }) = decode_line(rest, DAEMON_LINE_MAX) {
        let _ = parse_greeting(&value);
        let _ = parse_module_request(&value);
        if used == 0 || used > rest.len() {
            break;
        }
        rest = &rest[used..];
    }

    // The argument list, both before protocol 30 (newlines) and from it on (NULs).
    for nul_separated in [false, true] {
        let mut rest = data;
        while let Decoded::Done { value, used } = decode_arg(rest, nul_separated, BIG_LINE_MAX) {
            if value.is_empty() || used == 0 || used > rest.len() {
                break;
            }
            rest = &rest[used..];
        }
    }
});
