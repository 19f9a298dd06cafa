//! Arbitrary bytes as rsyncd.conf (and as the files it includes): the parser must not
//! panic, loop or allocate without bound. `cargo +nightly fuzz run config_parse`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    rsyncd_rs::daemon::config::parse_for_fuzzing(data);
});
