//! Arbitrary bytes as what the client reads from its user and from a daemon's text
//! phase: the words of an rsync command line (NUL-separated), an address, a refusal
//! line. `cargo +nightly fuzz run client_args`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rsyncd_rs::client::{Refusal, Remote, parse_command_line};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = Remote::parse(&text, 873);
    let _ = Refusal::of_line(&text);
    let words: Vec<&str> = text.split('\0').collect();
    if let Ok((args, paths)) = parse_command_line(&words) {
        // Whatever parses encodes back into a server argument list.
        let _ = rsyncd_rs::protocol::options::server_args(&args.options, 32);
        let _ = paths.len();
    }
});
