//! The client's half of the binary set-up after the argument list: the server's compat
//! flags, the checksum and compression names, the checksum seed. Upstream: compat.c,
//! setup_protocol() and negotiate_the_strings() with `am_server` off.

use super::error::ClientError;
use crate::engine::conn::{Conn, ConnError};
use crate::engine::setup::{NameError, Wire, exchange_names};
use crate::protocol::codec::{get_int, get_varint};
use crate::protocol::compat::{CF_INC_RECURSE, CF_VARINT_FLIST_FLAGS};
use crate::protocol::options::Options;

/// Runs the client's side of the set-up for `o` (the options as the server sees them)
/// over a connection whose argument list went out.
pub fn client_setup(conn: &mut Conn, protocol: i32, o: &Options) -> Result<Wire, ClientError> {
    let compat_flags = if protocol >= 30 {
        // read_varint() also reads the byte a pre-release server sends.
        let flags = conn.decode(get_varint).map_err(decode_error)?;
        flags as u32
    } else {
        0
    };
    let negotiate = compat_flags & CF_VARINT_FLIST_FLAGS != 0;
    let (checksum, compression) =
        exchange_names(conn, o, negotiate, Vec::new()).map_err(|e| match e {
            NameError::Conn(c) => decode_error(c),
            NameError::NoCommon(what, peer) => no_choice(what, &peer),
        })?;
    let seed = conn
        .decode(|b| Ok::<_, crate::protocol::WireError>(get_int(b)))
        .map_err(decode_error)?;
    Ok(Wire {
        protocol,
        compat_flags,
        inc_recurse: compat_flags & CF_INC_RECURSE != 0,
        checksum,
        compression,
        seed,
        io_timeout: 0,
    })
}

fn no_choice(what: &str, peer: &str) -> ClientError {
    ClientError::Options(format!(
        "Failed to negotiate a {what} choice (server list: {peer})"
    ))
}

fn decode_error(e: ConnError<crate::protocol::WireError>) -> ClientError {
    match e {
        ConnError::Decode(e) => ClientError::Protocol(e.to_string()),
        ConnError::Eof => ClientError::Connection(
            "connection unexpectedly closed during the protocol set-up".into(),
        ),
        ConnError::Timeout => ClientError::Timeout { what: "daemon I/O" },
        ConnError::Io(e) => ClientError::Connection(format!("connection error: {e}")),
    }
}
