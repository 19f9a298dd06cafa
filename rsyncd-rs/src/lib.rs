//! rsyncd-rs: an rsync daemon that stock `rsync` clients cannot tell from `rsync --daemon`,
//! and the rsync protocol engine it is built on.
//!
//! Layers, each depending only on those above it (see `docs/ARCHITECTURE.md`):
//! - [`protocol`]: the wire, sans-IO (codecs, handshake, digests, negotiation).
//! - [`engine`]: the transfer roles driving `protocol` over a byte transport.
//! - [`daemon`]: `rsyncd.conf`, access control, authentication, privileges, the listener
//!   and the session that ties them to the engine.

pub mod client;
pub mod daemon;
pub mod engine;
pub mod protocol;
pub mod shell;
pub mod version;
pub mod wildmatch;

/// The version this build reports in `--version` and in log lines.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The newest protocol version this implementation speaks.
pub const PROTOCOL_VERSION: i32 = 32;

/// The oldest protocol version this implementation speaks.
pub const MIN_PROTOCOL_VERSION: i32 = 27;
