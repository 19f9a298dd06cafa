//! The transfer roles (generator, receiver, sender) driving `protocol` over a byte transport.
pub mod tree;
