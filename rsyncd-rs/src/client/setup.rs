//! The client's half of the binary set-up after the argument list: the server's compat
//! flags, the checksum and compression names, the checksum seed. Upstream: compat.c,
//! setup_protocol() and negotiate_the_strings() with `am_server` off.

use super::connect::conn_error;
use super::error::ClientError;
use crate::engine::conn::{Conn, ConnError};
use crate::engine::setup::Wire;
use crate::protocol::codec::{get_int, get_varint, get_vstring, put_vstring};
use crate::protocol::compat::{
    CF_INC_RECURSE, CF_VARINT_FLIST_FLAGS, CHECKSUM_NAMES, COMPRESS_NAMES, MAX_NSTR_STRLEN,
    choose_name,
};
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
    let compressing = o.compresses();
    let send_checksums = negotiate && o.checksum_choice.is_none();
    let send_compress = negotiate && compressing && o.compress_choice.is_none();
    let mut out = Vec::new();
    if send_checksums {
        put_vstring(&mut out, CHECKSUM_NAMES.as_bytes())
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
    }
    if send_compress {
        put_vstring(&mut out, COMPRESS_NAMES.as_bytes())
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
    }
    // Our lists go out before we read the server's, as upstream's do.
    conn.write_all(&out).map_err(conn_error)?;
    let checksum = if send_checksums {
        let peer = read_vstring(conn)?;
        choose_name(CHECKSUM_NAMES, &peer)
            .ok_or_else(|| no_choice("checksum", &peer))?
            .to_string()
    } else if let Some(c) = &o.checksum_choice {
        c.split(',').next().unwrap_or(c).to_string()
    } else {
        "auto".to_string()
    };
    let compression = if !compressing {
        None
    } else if send_compress {
        let peer = read_vstring(conn)?;
        Some(
            choose_name(COMPRESS_NAMES, &peer)
                .ok_or_else(|| no_choice("compress", &peer))?
                .to_string(),
        )
    } else if let Some(c) = &o.compress_choice {
        Some(c.clone())
    } else {
        Some("zlib".to_string())
    };
    let seed = conn
        .decode(|b| Ok::<_, crate::protocol::WireError>(get_int(b)))
        .map_err(decode_error)?;
    Ok(Wire {
        protocol,
        compat_flags,
        inc_recurse: compat_flags & CF_INC_RECURSE != 0,
        checksum,
        compression: compression.filter(|c| c != "none"),
        seed,
        io_timeout: 0,
    })
}

fn no_choice(what: &str, peer: &str) -> ClientError {
    ClientError::Options(format!(
        "Failed to negotiate a {what} choice (server list: {peer})"
    ))
}

fn read_vstring(conn: &mut Conn) -> Result<String, ClientError> {
    let bytes = conn
        .decode(|b| get_vstring(b, MAX_NSTR_STRLEN))
        .map_err(decode_error)?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
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
