//! How a session ends early: the engine's error, its exit code and text for the client,
//! and the exchanges upstream's exit_cleanup() makes with the peer on the way out.

use super::exit::{ExitCode, Origin, error_line};
use super::flist::ListError;
use super::mux::{MuxReader, SharedWriter, lock};
use super::session::LogSink;
use crate::protocol::mux::MsgCode;

/// Who or what ended a session, which decides its exit code and how it ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The peer's bytes do not parse (exit 2, RERR_PROTOCOL).
    Malformed,
    /// The peer's request parses but is not allowed now or here: an index past the
    /// list, a name outside its directory, an option the module refuses; its exit code
    /// is upstream's for the case (2, 1, 3, 4...).
    Violation,
    /// Something this side does not support (exit 4, RERR_UNSUPPORTED).
    Unsupported,
    /// The connection or the filesystem failed (exit 10, 11, 12 or 30).
    Io,
    /// The peer ended the session itself (MSG_ERROR_EXIT), with its own code.
    PeerExited,
}

impl Fault {
    /// The fault an upstream exit code stands for, for errors made from a code.
    fn of(code: ExitCode) -> Fault {
        match code {
            ExitCode::UNSUPPORTED => Fault::Unsupported,
            ExitCode::SOCKETIO
            | ExitCode::FILEIO
            | ExitCode::STREAMIO
            | ExitCode::TIMEOUT
            | ExitCode::IPC
            | ExitCode::CRASHED => Fault::Io,
            _ => Fault::Violation,
        }
    }
}

/// Why a session (a role) stopped early.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("{0}")]
    List(#[from] ListError),
    #[error("{msg}")]
    Fatal {
        fault: Fault,
        msg: String,
        code: ExitCode,
        /// Where upstream ends the session in this case, and which of its processes
        /// (for the `rsync error: ... at FILE(LINE) [ROLE=VERSION]` line).
        at: Origin,
        role: &'static str,
    },
}

impl EngineError {
    /// The exit code the session ends with: the one place faults become codes.
    pub fn code(&self) -> ExitCode {
        match self {
            EngineError::List(ListError::Flist(
                crate::protocol::flist::FlistError::UnsafeName(_),
            )) => ExitCode::UNSUPPORTED,
            EngineError::List(ListError::OutsideDir(_)) => ExitCode::UNSUPPORTED,
            EngineError::List(ListError::Read(crate::engine::conn::ConnError::Timeout)) => {
                ExitCode::TIMEOUT
            }
            EngineError::List(ListError::Read(crate::engine::conn::ConnError::Decode(_))) => {
                ExitCode::PROTOCOL
            }
            EngineError::List(ListError::Read(_)) => ExitCode::STREAMIO,
            EngineError::List(ListError::Fatal { code, .. }) => *code,
            EngineError::List(_) => ExitCode::PROTOCOL,
            EngineError::Fatal { code, .. } => *code,
        }
    }

    /// Who or what is at fault.
    pub fn fault(&self) -> Fault {
        use crate::engine::conn::ConnError;
        match self {
            EngineError::Fatal { fault, .. } => *fault,
            EngineError::List(ListError::Read(ConnError::Decode(_))) => Fault::Malformed,
            EngineError::List(ListError::Read(_)) => Fault::Io,
            EngineError::List(ListError::Flist(crate::protocol::flist::FlistError::Wire(_))) => {
                Fault::Malformed
            }
            EngineError::List(_) => match self.code() {
                ExitCode::PROTOCOL => Fault::Violation,
                code => Fault::of(code),
            },
        }
    }

    /// An error upstream ends the session with `code` for; the fault follows the code.
    pub(crate) fn fatal(msg: impl Into<String>, code: ExitCode) -> EngineError {
        EngineError::with_fault(Fault::of(code), msg, code)
    }

    fn with_fault(fault: Fault, msg: impl Into<String>, code: ExitCode) -> EngineError {
        EngineError::Fatal {
            fault,
            msg: msg.into(),
            code,
            at: Origin {
                file: "receiver.c",
                line: 868,
            },
            role: "receiver",
        }
    }

    /// The peer's bytes do not parse (exit 2).
    pub(crate) fn malformed(msg: impl Into<String>) -> EngineError {
        EngineError::with_fault(Fault::Malformed, msg, ExitCode::PROTOCOL)
    }

    /// The peer asked for what is not allowed (exit 2, upstream's protocol error).
    pub(crate) fn violation(msg: impl Into<String>) -> EngineError {
        EngineError::with_fault(Fault::Violation, msg, ExitCode::PROTOCOL)
    }

    /// Something this side does not support (exit 4).
    pub(crate) fn unsupported(msg: impl Into<String>) -> EngineError {
        EngineError::with_fault(Fault::Unsupported, msg, ExitCode::UNSUPPORTED)
    }

    /// The connection or a file failed, ending the session with `code` (10, 11, 12, 30).
    pub(crate) fn io(msg: impl Into<String>, code: ExitCode) -> EngineError {
        EngineError::with_fault(Fault::Io, msg, code)
    }

    /// The same error, placed where upstream raises it.
    pub(crate) fn at(self, file: &'static str, line: u32, who: &'static str) -> EngineError {
        match self {
            EngineError::Fatal {
                fault, msg, code, ..
            } => EngineError::Fatal {
                fault,
                msg,
                code,
                at: Origin { file, line },
                role: who,
            },
            other => other,
        }
    }

    /// What the client is told: the message (if any), then the `rsync error:` line.
    pub(crate) fn client_text(&self) -> String {
        let (msg, at, role) = match self {
            EngineError::Fatal { msg, at, role, .. }
            | EngineError::List(ListError::Fatal { msg, at, role, .. }) => {
                (msg.clone(), *at, *role)
            }
            EngineError::List(e) => (
                e.to_string(),
                Origin {
                    file: "flist.c",
                    line: 2724,
                },
                "receiver",
            ),
        };
        let mut text = msg;
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str(&error_line(self.code(), at, role));
        text
    }
}

/// Tells the client (and the log) why the session ends, as upstream's exit_cleanup() does
/// on a server: the message, the `rsync error:` line, and MSG_ERROR_EXIT from protocol 31
/// (or from the forked receiver at any protocol). Returns whether MSG_ERROR_EXIT went out,
/// in which case upstream waits for the client to hang up.
fn report_fatal(
    writer: &SharedWriter,
    log: &dyn LogSink,
    protocol: i32,
    err: &EngineError,
) -> bool {
    let text = err.client_text();
    for line in text.lines() {
        log.line(line);
    }
    let mut w = lock(writer);
    let _ = w.text(MsgCode::Error, &text);
    let code = err.code();
    let role = match err {
        EngineError::Fatal { role, .. } | EngineError::List(ListError::Fatal { role, .. }) => *role,
        EngineError::List(_) => "receiver",
    };
    let exit_msg = !matches!(
        code,
        ExitCode::SOCKETIO | ExitCode::STREAMIO | ExitCode::TIMEOUT
    ) && (protocol >= 31 || role == "receiver");
    if exit_msg {
        let _ = w.message(MsgCode::ErrorExit, &err.code().0.to_le_bytes());
    }
    let _ = w.flush();
    exit_msg
}

/// The error text of a read that met the end of the client's stream.
pub(crate) const PEER_CLOSED: &str = "connection unexpectedly closed";

/// Whether the session ended because the client's side of the connection closed.
fn is_eof(e: &EngineError) -> bool {
    use crate::engine::conn::ConnError;
    match e {
        EngineError::List(ListError::Read(ConnError::Eof)) => true,
        EngineError::Fatal { code, msg, .. } => *code == ExitCode::STREAMIO && msg == PEER_CLOSED,
        _ => false,
    }
}

/// The client ended the session with MSG_ERROR_EXIT (it printed its own error): answer
/// it as upstream's read_a_msg() does (from protocol 31), log the `rsync error:` line
/// with the client's code, and tell the client nothing else.
fn peer_exited(
    writer: &SharedWriter,
    log: &dyn LogSink,
    protocol: i32,
    err: &EngineError,
    code: Option<i32>,
) -> EngineError {
    // Before the file list is in, upstream's receiver has not forked yet.
    let role = match err {
        EngineError::List(_) => "Receiver",
        EngineError::Fatal { .. } => "receiver",
    };
    let code = ExitCode(code.unwrap_or(0));
    if protocol >= 31 {
        let mut w = lock(writer);
        let payload = if role == "receiver" {
            code.0.to_le_bytes().to_vec()
        } else {
            Vec::new()
        };
        let _ = w.message(MsgCode::ErrorExit, &payload);
        let _ = w.flush();
    }
    if code != ExitCode::OK {
        let at = Origin {
            file: "io.c",
            line: 1892,
        };
        log.line(error_line(code, at, role).trim_end());
    }
    EngineError::with_fault(Fault::PeerExited, "", code).at("io.c", 1892, role)
}

/// How a session that failed with `err` ends, in the role that notices (`generator`
/// for a receiving session, `sender` for a sending one): the client's MSG_ERROR_EXIT is
/// answered, a connection the client dropped is logged as upstream logs it, and any
/// other error is reported and the client's remaining input drained. Returns the error
/// the session ends with. Upstream: cleanup.c, exit_cleanup(), and io.c.
pub(crate) fn end_failed_session(
    reader: &mut MuxReader,
    writer: &SharedWriter,
    log: &dyn LogSink,
    wire: (i32, i32),
    role: &'static str,
    err: EngineError,
) -> EngineError {
    let (protocol, io_timeout) = wire;
    if let Some(code) = reader.peer_exit() {
        return peer_exited(writer, log, protocol, &err, code);
    }
    if is_eof(&err) {
        // The client went away (killed, or its connection dropped).
        let got = reader.conn_mut().total_read();
        let text =
            format!("rsync: connection unexpectedly closed ({got} bytes received so far) [{role}]");
        log.line(&text);
        let at = Origin {
            file: "io.c",
            line: 285,
        };
        log.line(error_line(ExitCode::STREAMIO, at, role).trim_end());
        return EngineError::fatal(text, ExitCode::STREAMIO).at("io.c", 285, role);
    }
    if report_fatal(writer, log, protocol, &err) {
        drain(reader, writer, io_timeout);
    }
    err
}

/// Reads and drops what the client still sends until it hangs up or answers our
/// MSG_ERROR_EXIT with an empty one, which is returned before we go (at most a minute of
/// silence, or the session's `timeout` when shorter), so that the client reads our error
/// instead of a reset connection.
/// Upstream: io.c, noop_io_until_death() and read_a_msg() for MSG_ERROR_EXIT.
fn drain(reader: &mut MuxReader, writer: &SharedWriter, io_timeout: i32) {
    let idle = u64::try_from(io_timeout)
        .ok()
        .filter(|&t| t > 0)
        .map_or(60, |t| t.min(60));
    reader
        .conn_mut()
        .set_idle_timeout(Some(std::time::Duration::from_secs(idle)));
    loop {
        if let Some(code) = reader.peer_exit() {
            if code.is_none() {
                let mut w = lock(writer);
                let _ = w.message(MsgCode::ErrorExit, &[]);
                let _ = w.flush();
            }
            return;
        }
        if reader.fill().is_err() {
            return;
        }
        let n = reader.buffered().len();
        reader.consume(n);
        drop(reader.take_messages());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::conn::ConnError;

    #[test]
    fn each_fault_has_its_exit_code() {
        assert_eq!(EngineError::malformed("x").code(), ExitCode::PROTOCOL);
        assert_eq!(EngineError::violation("x").code(), ExitCode::PROTOCOL);
        assert_eq!(EngineError::unsupported("x").code(), ExitCode::UNSUPPORTED);
        assert_eq!(EngineError::io("x", ExitCode::TIMEOUT).fault(), Fault::Io);
        // Errors made from an upstream code get the fault the code stands for.
        assert_eq!(
            EngineError::fatal("x", ExitCode::STREAMIO).fault(),
            Fault::Io
        );
        assert_eq!(
            EngineError::fatal("x", ExitCode::UNSUPPORTED).fault(),
            Fault::Unsupported
        );
        assert_eq!(
            EngineError::fatal("x", ExitCode::SYNTAX).fault(),
            Fault::Violation
        );
        // A list that does not decode is the peer's malformed bytes; a closed
        // connection while reading it is I/O.
        let bad = crate::protocol::WireError::Malformed { what: "x" };
        assert_eq!(
            EngineError::List(ListError::Read(ConnError::Decode(bad))).fault(),
            Fault::Malformed
        );
        assert_eq!(
            EngineError::List(ListError::Read(ConnError::Eof)).fault(),
            Fault::Io
        );
        // The placement moves, the fault stays.
        let placed = EngineError::malformed("x").at("io.c", 1, "sender");
        assert_eq!(placed.fault(), Fault::Malformed);
    }
}
