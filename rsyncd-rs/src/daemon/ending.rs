//! How a session that was accepted (`@RSYNCD: OK`) but is refused afterwards ends: what
//! reaches the client, what reaches the log, and when the connection closes. Clients
//! tell these endings apart by their exit code and last lines, so each follows upstream's
//! exit_cleanup() for the same situation (cleanup.c _exit_cleanup(), log.c log_exit(),
//! io.c noop_io_until_death()).

use std::time::{Duration, Instant};

use super::session::Session;
use crate::engine::exit::{ExitCode, Origin, error_line};
use crate::engine::setup::Wire;
use crate::protocol::Decoded;
use crate::protocol::codec::get_int;
use crate::protocol::mux::{MsgCode, decode_mux_header, put_frame};

/// Where in upstream's start-up the refusal happens; the two places end differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// In rsync_module(), right after the set-up: a refused or malformed option, or a
    /// failed `pre-xfer exec`. Upstream pauses 400 ms so the text arrives first.
    Options,
    /// In start_server(): `read only`, `write only`, and our own "not implemented yet".
    Server,
}

/// A refusal: the text for the client and the log, the exit code and upstream's origin.
#[derive(Debug, Clone)]
pub struct Refusal<'a> {
    pub text: &'a str,
    pub code: ExitCode,
    pub origin: Origin,
    pub stage: Stage,
    /// Whether the client must see the text even where upstream's message is lost (our
    /// own "not implemented yet" must never leave a client guessing).
    pub always_tell: bool,
    /// Bytes already multiplexed to the client since the set-up (for the log's count).
    pub sent: usize,
}

/// What upstream's start_server() sends before the roles start: from protocol 31 a daemon
/// with a `timeout` tells the client, which then uses the same one (MSG_IO_TIMEOUT).
/// Returns the bytes written. Upstream: main.c, start_server().
pub(super) fn start_server(s: &mut Session<'_>, wire: &Wire) -> usize {
    if wire.protocol < 31 || wire.io_timeout <= 0 {
        return 0;
    }
    let mut frame = Vec::new();
    put_frame(
        &mut frame,
        MsgCode::IoTimeout,
        &wire.io_timeout.to_le_bytes(),
    );
    match s.conn.write_all(&frame) {
        Ok(()) => frame.len(),
        Err(_) => 0,
    }
}

/// Ends the session for `r` and returns its exit code.
///
/// - A daemon that sends files (a pull) refused at [`Stage::Options`] sends only the text:
///   upstream's sender does not flush its final `rsync error:` line, and the client
///   reports the connection's end instead (exit 10).
/// - At [`Stage::Server`] a sender first reads the client's filter list, as
///   do_server_sender() is reached only after recv_filter_list(); below protocol 31 its
///   messages are never flushed, so the client sees the connection close (exit 12).
/// - Otherwise the text and the `rsync error:` line are sent (with MSG_ERROR_EXIT from
///   protocol 31); a sender then reads until the client answers or hangs up.
pub(super) fn end_session(
    s: &mut Session<'_>,
    wire: &mut Wire,
    am_sender: bool,
    r: &Refusal<'_>,
) -> ExitCode {
    let role = if am_sender { "sender" } else { "Receiver" };
    let last = error_line(r.code, r.origin, role);
    for line in r.text.lines() {
        s.log.line(line);
    }
    let mut received = 0;
    let sent = match (am_sender, r.stage) {
        (true, Stage::Options) => {
            let _ = wire.send_text(&mut s.conn, wire.error_code(), r.text);
            std::thread::sleep(Duration::from_millis(400));
            // Each line travels as one frame behind a 4-byte header.
            r.text.len() + 4 * r.text.lines().count()
        }
        (true, Stage::Server) => {
            received = read_filter_list(s, wire.protocol);
            if wire.protocol >= 31 || r.always_tell {
                wire.fatal(&mut s.conn, r.text, r.code, r.origin, role);
            }
            r.sent
        }
        (false, stage) => {
            if stage == Stage::Options {
                let _ = wire.send_text(&mut s.conn, wire.error_code(), r.text);
                std::thread::sleep(Duration::from_millis(400));
                wire.fatal(&mut s.conn, "", r.code, r.origin, role);
            } else {
                wire.fatal(&mut s.conn, r.text, r.code, r.origin, role);
            }
            0
        }
    };
    if am_sender {
        s.log.line(&format!(
            "sent {}  received {}  total size 0",
            bytes(sent),
            bytes(received)
        ));
    }
    s.log.line(last.trim_end());
    // Only a sender past recv_filter_list() has input buffers for upstream's
    // noop_io_until_death() to read with; everywhere else upstream just exits.
    if am_sender && r.stage == Stage::Server && wire.protocol >= 31 {
        drain_until_hangup(s, wire.io_timeout);
    }
    // Upstream's exit_cleanup() pauses before a server exits with an error.
    std::thread::sleep(Duration::from_millis(100));
    r.code
}

/// `N bytes` with upstream's thousands separators (do_big_num()).
fn bytes(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    format!("{out} bytes")
}

/// Reads the filter list a client sends a sending server (a 4-byte length and that many
/// bytes per rule, until a zero length), demultiplexing from protocol 30; returns the bytes
/// read. Stops quietly on anything unexpected: the session is ending anyway.
/// Upstream: exclude.c, recv_filter_list().
fn read_filter_list(s: &mut Session<'_>, protocol: i32) -> usize {
    let muxed = protocol >= 30;
    let mut data: Vec<u8> = Vec::new();
    let mut read = 0usize;
    s.conn
        .set_deadline(Some(Instant::now() + Duration::from_secs(10)));
    loop {
        match get_int(&data) {
            Decoded::Done { value: 0, .. } => return read,
            Decoded::Done { value, .. } => {
                // Upstream refuses rules longer than MAXPATHLEN*2+... anyway.
                let Ok(len) = usize::try_from(value) else {
                    return read;
                };
                if len > 1 << 16 {
                    return read;
                }
                while data.len() < 4 + len {
                    match next_data(s, muxed, &mut read) {
                        Some(more) => data.extend_from_slice(&more),
                        None => return read,
                    }
                }
                data.drain(..4 + len);
            }
            Decoded::Needed(_) => match next_data(s, muxed, &mut read) {
                Some(more) => data.extend_from_slice(&more),
                None => return read,
            },
        }
    }
}

/// The next piece of the client's data stream, counting every byte read.
fn next_data(s: &mut Session<'_>, muxed: bool, read: &mut usize) -> Option<Vec<u8>> {
    if !muxed {
        if s.conn.buffered().is_empty() {
            s.conn.fill().ok()?;
        }
        let piece = s.conn.buffered().to_vec();
        s.conn.consume(piece.len());
        *read += piece.len();
        return Some(piece);
    }
    loop {
        let header = s.conn.decode(decode_mux_header).ok()?;
        let payload = s.conn.read_exact(header.len).ok()?;
        *read += 4 + header.len;
        if header.code == MsgCode::Data && !payload.is_empty() {
            return Some(payload);
        }
    }
}

/// Reads and drops the client's multiplexed input until it answers our MSG_ERROR_EXIT
/// with its own (upstream's read_a_msg() exits on it) or hangs up; at most `timeout`
/// seconds (60 when unset). Upstream: io.c, noop_io_until_death().
fn drain_until_hangup(s: &mut Session<'_>, timeout: i32) {
    let secs = if timeout > 0 { timeout as u64 } else { 60 };
    s.conn
        .set_deadline(Some(Instant::now() + Duration::from_secs(secs)));
    while let Ok(header) = s.conn.decode(decode_mux_header) {
        if header.code == MsgCode::ErrorExit || s.conn.read_exact(header.len).is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_counts_as_upstream_prints_them() {
        assert_eq!(bytes(0), "0 bytes");
        assert_eq!(bytes(62), "62 bytes");
        assert_eq!(bytes(1234), "1,234 bytes");
        assert_eq!(bytes(1_234_567), "1,234,567 bytes");
    }
}
