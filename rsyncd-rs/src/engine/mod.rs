//! The transfer roles (generator, receiver, sender) driving `protocol` over a byte
//! transport, and the connection, set-up, filters and exit codes they share.

pub mod chmod;
pub mod conn;
pub mod error;
pub mod exit;
pub mod filter;
pub mod flist;
pub mod idmap;
pub mod itemize;
pub mod logfmt;
pub mod mux;
pub mod recv;
pub mod send;
pub mod session;
pub mod setup;
pub mod tree;
pub mod unsupported;
pub mod xattrs;
