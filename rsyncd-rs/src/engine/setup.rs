//! The binary set-up after the argument list, server side: compat flags, checksum and
//! compression names, checksum seed, then multiplexed output (upstream: compat.c
//! setup_protocol(), negotiate_the_strings(); main.c start_server()).

use std::time::Duration;

use super::conn::{Conn, ConnError};
use super::exit::{ExitCode, Origin, error_line};
use crate::protocol::WireError;
use crate::protocol::codec::{get_vstring, put_int, put_varint, put_vstring};
use crate::protocol::compat::{
    CF_INC_RECURSE, CHECKSUM_NAMES, COMPRESS_NAMES, MAX_NSTR_STRLEN, choose_name,
    negotiates_strings, server_compat_flags,
};
use crate::protocol::handshake::ArgDecoder;
use crate::protocol::mux::{MsgCode, put_frame};
use crate::protocol::options::Options;

/// Inputs of the set-up.
#[derive(Debug)]
pub struct ServerSetup<'a> {
    pub protocol: i32,
    pub options: &'a Options,
    /// The module's `timeout` (0: none).
    pub module_timeout: i32,
}

/// What both sides agreed on, and the state of the multiplexed output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wire {
    pub protocol: i32,
    pub compat_flags: u32,
    pub inc_recurse: bool,
    /// The negotiated transfer checksum name, or `auto` for the one the protocol implies.
    pub checksum: String,
    /// The negotiated (or implied) compression name; `None` without compression.
    pub compression: Option<String>,
    pub seed: i32,
    /// The I/O timeout in seconds (0: none).
    pub io_timeout: i32,
}

/// Why the set-up failed.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("{0}")]
    Conn(#[from] ConnError<WireError>),
    #[error("Failed to negotiate a {0} choice.")]
    NoCommonName(&'static str),
    #[error("protocol version mismatch: {0}")]
    Protocol(i32),
}

impl SetupError {
    /// The exit code upstream ends with for this failure.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            SetupError::Conn(ConnError::Timeout) => ExitCode::TIMEOUT,
            SetupError::Conn(ConnError::Decode(_)) => ExitCode::PROTOCOL,
            SetupError::Conn(_) => ExitCode::SOCKETIO,
            SetupError::NoCommonName(_) => ExitCode::UNSUPPORTED,
            SetupError::Protocol(_) => ExitCode::PROTOCOL,
        }
    }
}

/// The one reader of a `--server` argument list, for the daemon and the remote-shell
/// server alike: parses `args` against `refusals`, and when they ask for
/// `--secluded-args` reads the rest with `read_more` (NUL-separated, an argv[0] first)
/// and parses the whole list again, the second part on top of the first, as upstream
/// does. Returns the whole list and what parsing it gave.
/// Upstream: main.c/clientserver.c, read_args() and parse_arguments() twice.
pub fn server_options<E>(
    mut args: Vec<String>,
    refusals: &crate::protocol::options::Refusals,
    read_more: impl FnOnce() -> Result<Vec<String>, E>,
) -> Result<
    (
        Vec<String>,
        Result<Options, crate::protocol::options::OptionError>,
    ),
    E,
> {
    use crate::protocol::options::parse_server_args;
    let parsed = parse_server_args(&args, refusals);
    if !parsed.as_ref().is_ok_and(|o| o.protect_args) {
        return Ok((args, parsed));
    }
    let mut rest = read_more()?;
    if !rest.is_empty() {
        rest.remove(0);
    }
    args.extend(rest);
    let parsed = parse_server_args(&args, refusals);
    Ok((args, parsed))
}

/// Why [`read_arg_list`] stopped.
#[derive(Debug)]
pub enum ArgListError {
    Conn(ConnError),
    /// More than the allowed number of arguments.
    TooMany,
}

/// Reads an argument list: words up to an empty one, NUL-separated from protocol 30 (or
/// for `--secluded-args`), newline-separated before. A word longer than `max_len` is read
/// and cut, as upstream's read_line() does; more than `max_args` words is an error.
/// Upstream: io.c, read_args().
pub fn read_arg_list(
    conn: &mut Conn,
    nul_separated: bool,
    max_len: usize,
    max_args: usize,
) -> Result<Vec<String>, ArgListError> {
    let mut args = Vec::new();
    let mut d = ArgDecoder::new(nul_separated, max_len);
    loop {
        let arg = loop {
            match conn.decode(|b| Ok::<_, std::convert::Infallible>(d.decode(b))) {
                Ok(Some(a)) => break a,
                Ok(None) => {}
                Err(e) => return Err(ArgListError::Conn(e)),
            }
        };
        if arg.is_empty() {
            return Ok(args);
        }
        if args.len() >= max_args {
            return Err(ArgListError::TooMany);
        }
        args.push(String::from_utf8_lossy(&arg).into_owned());
    }
}

/// Whether incremental recursion may be used (upstream: compat.c, set_allow_inc_recurse()).
fn allow_inc_recurse(o: &Options) -> bool {
    if !o.recurse || o.use_qsort || !o.allow_inc_recurse {
        return false;
    }
    if !o.am_sender
        && (matches!(
            o.delete,
            crate::protocol::options::DeleteWhen::Before
                | crate::protocol::options::DeleteWhen::After
        ) || o.delay_updates
            || o.prune_empty_dirs)
    {
        return false;
    }
    o.client_info.contains('i')
}

/// Runs the server side of the set-up and starts multiplexed output.
pub fn setup_protocol(conn: &mut Conn, s: &ServerSetup<'_>) -> Result<Wire, SetupError> {
    if s.protocol < crate::MIN_PROTOCOL_VERSION || s.protocol > crate::PROTOCOL_VERSION {
        return Err(SetupError::Protocol(s.protocol));
    }
    let o = s.options;
    let mut out = Vec::new();
    let mut compat_flags = 0;
    let mut negotiate = false;
    if s.protocol >= 30 {
        // A bare --delete means --delete-during at 30+, which keeps incremental recursion.
        compat_flags = server_compat_flags(&o.client_info, allow_inc_recurse(o));
        negotiate = negotiates_strings(&o.client_info);
        if o.client_info.contains('V') {
            out.push(compat_flags as u8);
        } else {
            put_varint(&mut out, compat_flags as i32);
        }
    }
    let (checksum, compression) = exchange_names(conn, o, negotiate, out).map_err(|e| match e {
        NameError::Conn(c) => SetupError::Conn(c),
        NameError::NoCommon(what, _) => SetupError::NoCommonName(what),
    })?;
    let seed = o
        .checksum_seed
        .filter(|s| *s != 0)
        .unwrap_or_else(default_seed);
    let mut out = Vec::new();
    put_int(&mut out, seed);
    conn.write_all(&out)
        .map_err(|e| SetupError::Conn(e.widen()))?;
    let io_timeout = o.io_timeout.unwrap_or(0).max(0);
    let io_timeout = match (s.module_timeout, io_timeout) {
        (m, 0) if m > 0 => m,
        (m, c) if m > 0 && m < c => m,
        (_, c) => c,
    };
    if io_timeout > 0 {
        conn.set_idle_timeout(Some(Duration::from_secs(io_timeout as u64)));
    }
    Ok(Wire {
        protocol: s.protocol,
        compat_flags,
        inc_recurse: compat_flags & CF_INC_RECURSE != 0,
        checksum,
        compression,
        seed,
        io_timeout,
    })
}

/// Why the name exchange failed.
#[derive(Debug)]
pub enum NameError {
    Conn(ConnError<WireError>),
    /// No name both ends know: which choice, and the peer's list.
    NoCommon(&'static str, String),
}

/// Sends `before` and our name lists (both ends send theirs before reading the other's,
/// so neither waits), reads the peer's, and returns the transfer checksum and the
/// compression both ends use: the same at either end of the connection.
/// Upstream: compat.c, negotiate_the_strings().
pub fn exchange_names(
    conn: &mut Conn,
    o: &Options,
    negotiate: bool,
    mut before: Vec<u8>,
) -> Result<(String, Option<String>), NameError> {
    let (send_checksums, send_compress, lists) =
        offered_names(o, negotiate).map_err(|e| NameError::Conn(ConnError::Decode(e)))?;
    before.extend(lists);
    conn.write_all(&before)
        .map_err(|e| NameError::Conn(e.widen()))?;
    let mut read = |wanted: bool| -> Result<Option<String>, NameError> {
        if !wanted {
            return Ok(None);
        }
        let bytes = conn
            .decode(|b| get_vstring(b, MAX_NSTR_STRLEN))
            .map_err(NameError::Conn)?;
        Ok(Some(String::from_utf8_lossy(&bytes).into_owned()))
    };
    let peer_checksums = read(send_checksums)?;
    let peer_compress = read(send_compress)?;
    agreed_names(o, peer_checksums.as_deref(), peer_compress.as_deref())
        .map_err(|(what, peer)| NameError::NoCommon(what, peer))
}

/// Our checksum and compression name lists for `o` when names are negotiated, which
/// both ends send before reading the other's: whether each goes out, and their bytes.
/// Upstream: compat.c, negotiate_the_strings().
pub fn offered_names(o: &Options, negotiate: bool) -> Result<(bool, bool, Vec<u8>), WireError> {
    let send_checksums = negotiate && o.checksum_choice.is_none();
    let send_compress = negotiate && o.compresses() && o.compress_choice.is_none();
    let mut out = Vec::new();
    if send_checksums {
        put_vstring(&mut out, CHECKSUM_NAMES.as_bytes())?;
    }
    if send_compress {
        put_vstring(&mut out, COMPRESS_NAMES.as_bytes())?;
    }
    Ok((send_checksums, send_compress, out))
}

/// The transfer checksum and the compression both ends use, from the peer's lists where
/// they were exchanged (`None` otherwise): the best of ours in the peer's list, the
/// explicit choice, or what the protocol implies (`auto`, plain zlib). The compression
/// is `None` without compression. Errors: which choice failed, and the peer's list.
pub fn agreed_names(
    o: &Options,
    peer_checksums: Option<&str>,
    peer_compress: Option<&str>,
) -> Result<(String, Option<String>), (&'static str, String)> {
    let checksum = match (peer_checksums, &o.checksum_choice) {
        (Some(peer), _) => choose_name(CHECKSUM_NAMES, peer)
            .ok_or_else(|| ("checksum", peer.to_string()))?
            .to_string(),
        (None, Some(c)) => c.split(',').next().unwrap_or(c).to_string(),
        // Nothing negotiated: md5 from protocol 30, the seeded old MD4 before.
        (None, None) => "auto".to_string(),
    };
    let compression = if !o.compresses() {
        None
    } else {
        match (peer_compress, &o.compress_choice) {
            (Some(peer), _) => Some(
                choose_name(COMPRESS_NAMES, peer)
                    .ok_or_else(|| ("compress", peer.to_string()))?
                    .to_string(),
            ),
            (None, Some(c)) => Some(c.clone()),
            (None, None) => Some("zlib".to_string()),
        }
    };
    Ok((checksum, compression.filter(|c| c != "none")))
}

/// `time() ^ (pid << 6)`, as upstream seeds when the client gave no `--checksum-seed`.
fn default_seed() -> i32 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    (now as i32) ^ ((std::process::id() as i32) << 6)
}

impl Wire {
    /// The message code for an error text at this protocol: below 30 errors travel as
    /// MSG_ERROR_XFER. Upstream: log.c, rwrite().
    pub fn error_code(&self) -> MsgCode {
        if self.protocol >= 30 {
            MsgCode::Error
        } else {
            MsgCode::ErrorXfer
        }
    }

    /// Sends a text message, split into lines a 3.5.0 peer accepts.
    pub fn send_text(&self, conn: &mut Conn, code: MsgCode, text: &str) -> Result<(), ConnError> {
        let mut out = Vec::new();
        for line in text.split_inclusive('\n') {
            for piece in line.as_bytes().chunks(crate::protocol::mux::MAX_TEXT_LEN) {
                put_frame(&mut out, code, piece);
            }
        }
        conn.write_all(&out)
    }

    /// Ends the session on an error as upstream's exit_cleanup() does on a server during
    /// set-up: the message, the `rsync error:` line, MSG_ERROR_EXIT (protocol 31+). The
    /// client's input is not read (upstream has not started reading it either), so the
    /// close may reset the connection, exactly as with stock rsyncd.
    pub fn fatal(
        &mut self,
        conn: &mut Conn,
        text: &str,
        code: ExitCode,
        origin: Origin,
        role: &str,
    ) {
        let mut full = text.to_string();
        if !full.is_empty() && !full.ends_with('\n') {
            full.push('\n');
        }
        full.push_str(&error_line(code, origin, role));
        let _ = self.send_text(conn, self.error_code(), &full);
        if self.protocol >= 31 {
            let mut out = Vec::new();
            put_frame(&mut out, MsgCode::ErrorExit, &code.0.to_le_bytes());
            let _ = conn.write_all(&out);
        }
    }
}
