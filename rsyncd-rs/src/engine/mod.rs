//! The transfer roles (generator, receiver, sender) driving `protocol` over a byte
//! transport, and the connection, set-up and exit codes they share.

pub mod chmod;
pub mod conn;
pub mod exit;
pub mod filter;
pub mod mux;
pub mod setup;
pub mod tree;
