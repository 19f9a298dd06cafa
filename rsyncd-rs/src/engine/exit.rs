//! rsync's exit codes and the `rsync error:` line (upstream: errcode.h, log.c rerr_names,
//! log_exit()).

/// The version stock clients see in error lines and greetings: we speak as rsync 3.5.0.
pub const RSYNC_COMPAT_VERSION: &str = "3.5.0";

/// An rsync exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ExitCode(pub i32);

impl ExitCode {
    pub const OK: ExitCode = ExitCode(0);
    pub const SYNTAX: ExitCode = ExitCode(1);
    pub const PROTOCOL: ExitCode = ExitCode(2);
    pub const FILESELECT: ExitCode = ExitCode(3);
    pub const UNSUPPORTED: ExitCode = ExitCode(4);
    pub const STARTCLIENT: ExitCode = ExitCode(5);
    pub const SOCKETIO: ExitCode = ExitCode(10);
    pub const FILEIO: ExitCode = ExitCode(11);
    pub const STREAMIO: ExitCode = ExitCode(12);
    pub const MESSAGEIO: ExitCode = ExitCode(13);
    pub const IPC: ExitCode = ExitCode(14);
    pub const CRASHED: ExitCode = ExitCode(15);
    pub const TERMINATED: ExitCode = ExitCode(16);
    pub const SIGNAL1: ExitCode = ExitCode(19);
    pub const SIGNAL: ExitCode = ExitCode(20);
    pub const WAITCHILD: ExitCode = ExitCode(21);
    pub const MALLOC: ExitCode = ExitCode(22);
    pub const PARTIAL: ExitCode = ExitCode(23);
    pub const VANISHED: ExitCode = ExitCode(24);
    pub const DEL_LIMIT: ExitCode = ExitCode(25);
    pub const TIMEOUT: ExitCode = ExitCode(30);
    pub const CONTIMEOUT: ExitCode = ExitCode(35);

    /// The text upstream prints for this code.
    pub fn text(self) -> &'static str {
        match self.0 {
            0 => "success",
            1 => "syntax or usage error",
            2 => "protocol incompatibility",
            3 => "errors selecting input/output files, dirs",
            4 => "requested action not supported",
            5 => "error starting client-server protocol",
            6 => "daemon unable to append to log-file",
            10 => "error in socket IO",
            11 => "error in file IO",
            12 => "error in rsync protocol data stream",
            13 => "errors with program diagnostics",
            14 => "error in IPC code",
            15 => "sibling process crashed",
            16 => "sibling process terminated abnormally",
            19 => "received SIGUSR1",
            20 => "received SIGINT, SIGTERM, or SIGHUP",
            21 => "waitpid() failed",
            22 => "error allocating core memory buffers",
            23 => "some files/attrs were not transferred (see previous errors)",
            24 => "some files vanished before they could be transferred",
            25 => "the --max-delete limit stopped deletions",
            30 => "timeout in data send/receive",
            35 => "timeout waiting for daemon connection",
            124 => "remote shell failed",
            125 => "remote shell killed",
            126 => "remote command could not be run",
            127 => "remote command not found",
            _ => "unexplained error",
        }
    }
}

/// Where an error was raised, in upstream's terms (`main.c(1185)`): stock clients show it,
/// so we name the upstream source position of the equivalent check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Origin {
    pub file: &'static str,
    pub line: u32,
}

/// The `rsync error: ...` line (with its newline). Upstream: log.c, log_exit().
pub fn error_line(code: ExitCode, origin: Origin, role: &str) -> String {
    format!(
        "rsync error: {} (code {}) at {}({}) [{}={}]\n",
        code.text(),
        code.0,
        origin.file,
        origin.line,
        role,
        RSYNC_COMPAT_VERSION
    )
}

/// A system-call failure as upstream's rsyserr() words it:
/// `rsync: [ROLE] WHAT: STRERROR (ERRNO)`. An error without an errno (a refusal of our
/// own) keeps its own text in place of the strerror part.
pub fn syserr(
    role: &str,
    what: &str,
    errno: Option<i32>,
    fallback: &dyn std::fmt::Display,
) -> String {
    match errno {
        Some(n) => format!("rsync: [{role}] {what}: {} ({n})", strerror(n)),
        None => format!("rsync: [{role}] {what}: {fallback}"),
    }
}

/// The C library's text for an errno, as upstream's strerror() gives it.
pub fn strerror(n: i32) -> String {
    let text = std::io::Error::from_raw_os_error(n).to_string();
    match text.rfind(" (os error ") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syserr_reads_like_rsyserr() {
        assert_eq!(
            syserr("Receiver", "mkdir \"a\" failed", Some(2), &""),
            "rsync: [Receiver] mkdir \"a\" failed: No such file or directory (2)"
        );
        assert_eq!(
            syserr("generator", "x", None, &"refused"),
            "rsync: [generator] x: refused"
        );
    }

    #[test]
    fn lines_as_captured() {
        // a-readonly s2c: the second MSG_ERROR.
        assert_eq!(
            error_line(
                ExitCode::SYNTAX,
                Origin {
                    file: "main.c",
                    line: 1185
                },
                "Receiver"
            ),
            "rsync error: syntax or usage error (code 1) at main.c(1185) [Receiver=3.5.0]\n"
        );
        assert_eq!(
            error_line(
                ExitCode::UNSUPPORTED,
                Origin {
                    file: "clientserver.c",
                    line: 1267
                },
                "Receiver"
            ),
            "rsync error: requested action not supported (code 4) at clientserver.c(1267) [Receiver=3.5.0]\n"
        );
    }
}
