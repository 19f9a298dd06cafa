//! How a session ends early: the engine's error, its exit code and text for the client,
//! and the exchanges upstream's exit_cleanup() makes with the peer on the way out.

use super::exit::{ExitCode, Origin, error_line};
use super::flist::ListError;
use super::mux::{MuxReader, SharedWriter, lock};
use super::session::LogSink;
use crate::protocol::mux::MsgCode;

/// Why the receiving side stopped early.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("{0}")]
    List(#[from] ListError),
    #[error("{msg}")]
    Fatal {
        msg: String,
        code: ExitCode,
        /// Where upstream ends the session in this case, and which of its processes
        /// (for the `rsync error: ... at FILE(LINE) [ROLE=VERSION]` line).
        at: Origin,
        role: &'static str,
    },
}

impl EngineError {
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

    pub(crate) fn fatal(msg: impl Into<String>, code: ExitCode) -> EngineError {
        EngineError::Fatal {
            msg: msg.into(),
            code,
            at: Origin {
                file: "receiver.c",
                line: 868,
            },
            role: "receiver",
        }
    }

    /// The same error, placed where upstream raises it.
    pub(crate) fn at(self, file: &'static str, line: u32, who: &'static str) -> EngineError {
        match self {
            EngineError::Fatal { msg, code, .. } => EngineError::Fatal {
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
    EngineError::fatal("", code).at("io.c", 1892, role)
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
