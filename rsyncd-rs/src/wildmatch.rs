//! rsync's wildcard matcher (upstream: lib/wildmatch.c), shared by host patterns,
//! `auth users` and filter rules.
#![forbid(unsafe_code)]
