//! `rsyncd-rs`: the daemon binary, a thin layer over the `rsyncd_rs` library.

fn main() {}
