//! Arbitrary bytes as what a client sends before `@RSYNCD: OK`: greeting and module
//! lines, daemon arguments (both separators), and the auth response line. Each reader
//! runs on the input as one buffer and, like a session, on what follows each decoded
//! line. `cargo +nightly fuzz run handshake`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rsyncd_rs::protocol::Decoded;
use rsyncd_rs::protocol::auth::decode_response_line;
use rsyncd_rs::protocol::handshake::{
    ArgDecoder, BIG_LINE_MAX, DAEMON_LINE_MAX, decode_arg, decode_line, parse_greeting,
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

    // The argument list, both before protocol 30 (newlines) and from it on (NULs); the
    // streaming ArgDecoder, fed in small pieces, gives the same arguments.
    for nul_separated in [false, true] {
        let mut rest = data;
        let mut args = Vec::new();
        while let Decoded::Done { value, used } = decode_arg(rest, nul_separated, BIG_LINE_MAX) {
            if value.is_empty() || used == 0 || used > rest.len() {
                break;
            }
            args.push(value);
            rest = &rest[used..];
        }
        let mut dec = ArgDecoder::new(nul_separated, BIG_LINE_MAX);
        let mut streamed = Vec::new();
        let mut pos = 0;
        while pos < data.len() {
            let end = (pos + 7).min(data.len());
            let Decoded::Done { value, used } = dec.decode(&data[pos..end]) else {
                unreachable!("ArgDecoder was offered bytes");
            };
            assert!(used > 0 && pos + used <= end);
            pos += used;
            match value {
                Some(arg) if arg.is_empty() => break,
                Some(arg) => streamed.push(arg),
                None => {}
            }
        }
        assert_eq!(streamed, args);
    }
});
