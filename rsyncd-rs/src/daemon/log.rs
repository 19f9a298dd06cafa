//! The daemon's log: `log file` in rsyncd's line format, or syslog when unset
//! (upstream: log.c logit(), log_init(), log_formatted()).

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Where log lines go.
enum Sink {
    File {
        file: File,
        path: PathBuf,
    },
    Syslog {
        logger: syslog::Logger<syslog::LoggerBackend, syslog::Formatter3164>,
        facility: i32,
    },
    /// Neither could be opened (no syslog socket); lines are dropped.
    Nowhere,
}

/// The daemon's log writer.
pub struct DaemonLog {
    sink: Sink,
}

impl std::fmt::Debug for DaemonLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.sink {
            Sink::File { path, .. } => write!(f, "DaemonLog(file {})", path.display()),
            Sink::Syslog { facility, .. } => write!(f, "DaemonLog(syslog {facility})"),
            Sink::Nowhere => write!(f, "DaemonLog(nowhere)"),
        }
    }
}

/// Which destination a log should use: a file, or syslog with a facility and tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogTarget {
    File(PathBuf),
    /// Syslog, with the facility code (as `openlog(3)` takes it) and the tag.
    Syslog {
        facility: i32,
        tag: String,
    },
}

impl DaemonLog {
    /// Opens the target. A log file is opened for appending, created 0644. A symlink in
    /// its place is followed only when root or this process owns it (upstream refuses
    /// links an attacker could plant, and accepts e.g. `/dev/stderr`).
    pub fn open(target: &LogTarget) -> io::Result<DaemonLog> {
        let sink = match target {
            LogTarget::File(path) => {
                let trusted_link = std::fs::symlink_metadata(path).is_ok_and(|m| {
                    use std::os::unix::fs::MetadataExt;
                    m.file_type().is_symlink()
                        && (m.uid() == 0 || m.uid() == nix::unistd::geteuid().as_raw())
                });
                let nofollow = if trusted_link { 0 } else { libc::O_NOFOLLOW };
                let file = OpenOptions::new()
                    .append(true)
                    .create(true)
                    .mode(0o644)
                    .custom_flags(nofollow | libc::O_CLOEXEC)
                    .open(path)?;
                Sink::File {
                    file,
                    path: path.clone(),
                }
            }
            LogTarget::Syslog { facility, tag } => {
                let formatter = syslog::Formatter3164 {
                    facility: facility_for(*facility),
                    hostname: None,
                    process: tag.clone(),
                    pid: std::process::id(),
                };
                match syslog::unix(formatter) {
                    Ok(logger) => Sink::Syslog {
                        logger,
                        facility: *facility,
                    },
                    Err(_) => Sink::Nowhere,
                }
            }
        };
        Ok(DaemonLog { sink })
    }

    /// A log that drops everything (for tests and for `--server` sessions without a log).
    pub fn nowhere() -> DaemonLog {
        DaemonLog {
            sink: Sink::Nowhere,
        }
    }

    /// Whether this log already writes to `target` (so a module with the same `log file`
    /// keeps the open one, as upstream's log_init(1) does).
    pub fn is_target(&self, target: &LogTarget) -> bool {
        match (&self.sink, target) {
            (Sink::File { path, .. }, LogTarget::File(p)) => path == p,
            (Sink::Syslog { facility, .. }, LogTarget::Syslog { facility: f, .. }) => facility == f,
            _ => false,
        }
    }

    /// Writes one message as `YYYY/MM/DD HH:MM:SS [PID] message`, control characters
    /// escaped as `\#ooo` so a peer-chosen name cannot forge lines.
    pub fn line(&mut self, message: &str) {
        let message = message.strip_suffix('\n').unwrap_or(message);
        let escaped = escape_controls(message);
        match &mut self.sink {
            Sink::File { file, .. } => {
                let stamp = chrono::Local::now().format("%Y/%m/%d %H:%M:%S");
                let text = format!("{stamp} [{}] {escaped}\n", std::process::id());
                // A full disk must not end the session; the line is lost, as in upstream.
                let _ = file.write_all(text.as_bytes());
            }
            Sink::Syslog { logger, .. } => {
                let _ = logger.info(escaped);
            }
            Sink::Nowhere => {}
        }
    }
}

/// A failed system call as upstream's rsyserr() logs it: `rsync: [ROLE] WHAT: STRERROR
/// (ERRNO)`. Before the argument list is read the role is "Receiver".
/// Upstream: log.c, rsyserr().
pub fn sys_error(role: &str, what: &str, errno: i32) -> String {
    let desc = crate::engine::exit::strerror(errno);
    format!("rsync: [{role}] {what}: {desc} ({errno})")
}

/// [`sys_error`] for an I/O error, in the role a session has before its arguments.
pub fn io_error(what: &str, e: &io::Error) -> String {
    sys_error("Receiver", what, e.raw_os_error().unwrap_or(0))
}

/// Maps a facility code to the syslog crate's; a code it does not know falls back to
/// `daemon`.
fn facility_for(code: i32) -> syslog::Facility {
    use syslog::Facility as F;
    [
        F::LOG_KERN,
        F::LOG_USER,
        F::LOG_MAIL,
        F::LOG_DAEMON,
        F::LOG_AUTH,
        F::LOG_SYSLOG,
        F::LOG_LPR,
        F::LOG_NEWS,
        F::LOG_UUCP,
        F::LOG_CRON,
        F::LOG_AUTHPRIV,
        F::LOG_FTP,
        F::LOG_LOCAL0,
        F::LOG_LOCAL1,
        F::LOG_LOCAL2,
        F::LOG_LOCAL3,
        F::LOG_LOCAL4,
        F::LOG_LOCAL5,
        F::LOG_LOCAL6,
        F::LOG_LOCAL7,
    ]
    .into_iter()
    .find(|f| *f as i32 == code)
    .unwrap_or(F::LOG_DAEMON)
}

/// Escapes control characters (and C1 controls) as upstream's filtered_fwrite() does;
/// a literal `\#ddd` in the input is escaped too, so escapes cannot be forged.
pub fn escape_controls(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = String::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let forged = b == b'\\'
            && bytes.get(i + 1) == Some(&b'#')
            && bytes
                .get(i + 2..i + 5)
                .is_some_and(|d| d.iter().all(u8::is_ascii_digit));
        if forged || (b != b'\t' && (b < b' ' || b == 0x7f)) {
            out.push_str(&format!("\\#{b:03o}"));
            i += 1;
            continue;
        }
        // Whole characters are copied; C1 controls (U+0080..U+009F) are escaped bytewise.
        let ch_len = utf8_len(b);
        match s.get(i..i + ch_len) {
            Some(ch)
                if ch
                    .chars()
                    .next()
                    .is_some_and(|c| ('\u{80}'..='\u{9f}').contains(&c)) =>
            {
                for &cb in ch.as_bytes() {
                    out.push_str(&format!("\\#{cb:03o}"));
                }
            }
            Some(ch) => out.push_str(ch),
            None => out.push(char::REPLACEMENT_CHARACTER),
        }
        i += ch_len.max(1);
    }
    out
}

fn utf8_len(first: u8) -> usize {
    match first {
        0x00..=0x7f => 1,
        0xc0..=0xdf => 2,
        0xe0..=0xef => 3,
        0xf0..=0xf7 => 4,
        _ => 1,
    }
}

/// A daemon log shared with the transfer threads.
#[derive(Debug, Clone)]
pub struct SharedLog(std::sync::Arc<std::sync::Mutex<DaemonLog>>);

impl SharedLog {
    pub fn new(log: DaemonLog) -> SharedLog {
        SharedLog(std::sync::Arc::new(std::sync::Mutex::new(log)))
    }

    /// Writes one line (see [`DaemonLog::line`]).
    pub fn line(&self, message: &str) {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .line(message);
    }

    /// Whether the log already writes to `target`.
    pub fn is_target(&self, target: &LogTarget) -> bool {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .is_target(target)
    }

    /// Replaces the destination (a module's own `log file`).
    pub fn replace(&self, log: DaemonLog) {
        *self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = log;
    }
}

impl crate::engine::session::LogSink for SharedLog {
    fn line(&self, text: &str) {
        SharedLog::line(self, text);
    }
}

/// The log target for a `log file` value: empty means syslog.
pub fn target_for(log_file: &str, facility: i32, tag: &str) -> LogTarget {
    if log_file.is_empty() {
        LogTarget::Syslog {
            facility,
            tag: tag.to_string(),
        }
    } else {
        LogTarget::File(Path::new(log_file).to_path_buf())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_errors_as_rsyserr() {
        assert_eq!(
            sys_error("Receiver", "chdir /x failed", 2),
            "rsync: [Receiver] chdir /x failed: No such file or directory (2)"
        );
    }

    #[test]
    fn controls_are_escaped() {
        assert_eq!(escape_controls("a\nb\tc"), "a\\#012b\tc");
        assert_eq!(escape_controls("x\\#123"), "x\\#134#123");
        assert_eq!(escape_controls("caf\u{e9}"), "caf\u{e9}");
        assert_eq!(escape_controls("\u{85}"), "\\#302\\#205");
    }

    #[test]
    fn file_log_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rsyncd.log");
        let mut log = DaemonLog::open(&LogTarget::File(path.clone())).unwrap();
        log.line("connect from localhost (127.0.0.1)\n");
        let text = std::fs::read_to_string(&path).unwrap();
        let line = text.lines().next().unwrap();
        assert!(
            line.ends_with(&format!(
                "[{}] connect from localhost (127.0.0.1)",
                std::process::id()
            )),
            "{line}"
        );
        assert_eq!(&line[4..5], "/");
        assert!(log.is_target(&LogTarget::File(path)));
    }
}
