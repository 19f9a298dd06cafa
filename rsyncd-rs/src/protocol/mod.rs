//! The rsync wire protocol, sans-IO: every decoder takes bytes already read and answers
//! "need more" or "done, used n"; nothing here opens a socket or a file.
#![forbid(unsafe_code)]

pub mod acl;
pub mod auth;
pub mod checksum;
pub mod codec;
pub mod compat;
pub mod filter;
pub mod flist;
pub mod handshake;
pub mod mux;
pub mod ndx;
pub mod options;
pub mod request;
pub mod sanitize;
pub mod stats;
pub mod sums;
#[cfg(test)]
pub mod testutil;
pub mod token;
pub mod xattr;

/// The outcome of a sans-IO decode step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded<T> {
    /// At least this many more bytes are needed before the value can be decoded.
    Needed(usize),
    /// The value, and how many bytes of the input it used.
    Done { value: T, used: usize },
}

impl<T> Decoded<T> {
    /// Maps the decoded value, keeping `used`.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Decoded<U> {
        match self {
            Decoded::Needed(n) => Decoded::Needed(n),
            Decoded::Done { value, used } => Decoded::Done {
                value: f(value),
                used,
            },
        }
    }
}

/// Bytes from the peer that do not parse, or parse to something not allowed here.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum WireError {
    /// The bytes do not form a valid value of the expected type.
    #[error("malformed {what}")]
    Malformed { what: &'static str },
    /// A length or count exceeds the bound this implementation accepts.
    #[error("{what} of {got} exceeds the limit of {limit}")]
    TooLarge {
        what: &'static str,
        got: u64,
        limit: u64,
    },
    /// A multiplex frame carries a message code that does not exist.
    #[error("unexpected tag {0}")]
    UnknownTag(i32),
    /// A multiplexed message of a size its code does not allow, or one this side never
    /// takes from its peer (upstream: "invalid multi-message CODE:LEN").
    #[error("invalid multi-message {code}:{len}")]
    InvalidMessage { code: u8, len: usize },
    /// A text message longer than a reader holds (upstream: "multiplexing overflow
    /// CODE:LEN").
    #[error("multiplexing overflow {code}:{len}")]
    Overflow { code: u8, len: usize },
    /// Extended-attribute data that breaks the codec's rules or bounds.
    #[error("{0}")]
    Xattr(#[from] xattr::XattrError),
}
