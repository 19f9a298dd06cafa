//! The client's errors, typed so that a caller can act on them: whether the daemon
//! refused (and why), the connection failed, the peer broke the protocol, or the transfer
//! ended partial. Each maps to the exit code the stock client ends with, and says whether
//! trying again later can help (the classes lsyncd keeps in its rsyncExitCodes table).

use crate::engine::exit::ExitCode;

use super::url::UrlError;

/// Why a daemon refused the session: its `@ERROR` line, classified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `@ERROR: Unknown module 'NAME'`.
    UnknownModule,
    /// `@ERROR: auth failed on module NAME`.
    AuthFailed,
    /// `@ERROR: access denied to NAME from HOST (ADDR)`.
    AccessDenied,
    /// `@ERROR: max connections (N) reached -- try again later`.
    MaxConnections,
    /// Any other `@ERROR` (chdir failed, protocol startup error, ...).
    Other,
}

impl Refusal {
    /// Classifies an `@ERROR` line by upstream's wording (clientserver.c).
    pub fn of_line(line: &str) -> Refusal {
        let text = line.strip_prefix("@ERROR").unwrap_or(line);
        if text.contains("Unknown module") {
            Refusal::UnknownModule
        } else if text.contains("auth failed") {
            Refusal::AuthFailed
        } else if text.contains("access denied") {
            Refusal::AccessDenied
        } else if text.contains("max connections") {
            Refusal::MaxConnections
        } else {
            Refusal::Other
        }
    }
}

/// What went wrong in a client session.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{0}")]
    Url(#[from] UrlError),
    /// The options asked for something the client does not do, or make no sense.
    #[error("{0}")]
    Options(String),
    /// The password could not be had (a file readable by others, missing, empty).
    #[error("{0}")]
    Password(String),
    #[error("failed to resolve {host}: {reason}")]
    Resolve { host: String, reason: String },
    /// No address of the host accepted the connection.
    #[error("failed to connect to {addr}: {source}")]
    Connect {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    /// A connect or I/O timeout passed.
    #[error("{what} timed out")]
    Timeout { what: &'static str },
    /// The daemon refused the session with an `@ERROR` line.
    #[error("{line}")]
    Daemon { kind: Refusal, line: String },
    /// The peer sent what the protocol does not allow, or something we cannot parse.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The connection failed or closed early.
    #[error("{0}")]
    Connection(String),
    /// A local file or directory could not be read or written.
    #[error("{0}")]
    Local(String),
    /// The session ran to its end with errors (partial transfer, vanished files, or the
    /// server's own failure): the exit code and the server's error lines.
    #[error("{}", transfer_text(*.code, .messages))]
    Transfer {
        code: ExitCode,
        messages: Vec<String>,
    },
}

fn transfer_text(code: ExitCode, messages: &[String]) -> String {
    let mut s = messages.join("\n");
    if !s.is_empty() {
        s.push('\n');
    }
    s.push_str(&format!("rsync error: {} (code {})", code.text(), code.0));
    s
}

impl ClientError {
    /// The exit code stock rsync's client ends with for this error.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            // Upstream's getpassf() ends with RERR_SYNTAX too.
            ClientError::Url(_) | ClientError::Options(_) | ClientError::Password(_) => {
                ExitCode::SYNTAX
            }
            ClientError::Daemon { .. } => ExitCode::STARTCLIENT,
            ClientError::Resolve { .. } | ClientError::Connect { .. } => ExitCode::SOCKETIO,
            ClientError::Timeout { what } if *what == "connect" => ExitCode::CONTIMEOUT,
            ClientError::Timeout { .. } => ExitCode::TIMEOUT,
            ClientError::Protocol(_) => ExitCode::PROTOCOL,
            ClientError::Connection(_) => ExitCode::STREAMIO,
            ClientError::Local(_) => ExitCode::FILEIO,
            ClientError::Transfer { code, .. } => *code,
        }
    }

    /// Whether the same session may succeed later without anyone changing a config:
    /// a network failure, a timeout, a full daemon, a partial transfer (files vanished or
    /// changed under it). Refusals by configuration (unknown module, auth, hosts deny),
    /// option and protocol errors are not.
    pub fn is_retryable(&self) -> bool {
        match self {
            ClientError::Resolve { .. }
            | ClientError::Connect { .. }
            | ClientError::Timeout { .. }
            | ClientError::Connection(_) => true,
            ClientError::Daemon { kind, .. } => *kind == Refusal::MaxConnections,
            ClientError::Transfer { code, .. } => {
                matches!(code.0, 10 | 11 | 12 | 14 | 20 | 21 | 22 | 23 | 24 | 30 | 35)
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_by_upstream_wording() {
        let cases = [
            ("@ERROR: Unknown module 'nope'", Refusal::UnknownModule),
            ("@ERROR: auth failed on module backup", Refusal::AuthFailed),
            (
                "@ERROR: access denied to backup from localhost (127.0.0.2)",
                Refusal::AccessDenied,
            ),
            (
                "@ERROR: max connections (1) reached -- try again later",
                Refusal::MaxConnections,
            ),
            ("@ERROR: chdir failed", Refusal::Other),
        ];
        for (line, want) in cases {
            assert_eq!(Refusal::of_line(line), want, "{line}");
        }
    }

    #[test]
    fn exit_codes_and_retries() {
        let daemon = |line: &str| ClientError::Daemon {
            kind: Refusal::of_line(line),
            line: line.into(),
        };
        let full = daemon("@ERROR: max connections (1) reached -- try again later");
        assert_eq!(full.exit_code(), ExitCode::STARTCLIENT);
        assert!(full.is_retryable());
        assert!(!daemon("@ERROR: auth failed on module m").is_retryable());
        assert_eq!(
            ClientError::Timeout { what: "connect" }.exit_code(),
            ExitCode::CONTIMEOUT
        );
        assert_eq!(
            ClientError::Timeout { what: "read" }.exit_code(),
            ExitCode::TIMEOUT
        );
        let partial = ClientError::Transfer {
            code: ExitCode::PARTIAL,
            messages: vec![],
        };
        assert!(partial.is_retryable());
        assert!(!ClientError::Protocol("x".into()).is_retryable());
    }
}
