//! `early exec`, `pre-xfer exec` and `post-xfer exec` (upstream: clientserver.c
//! start_pre_exec(), write_pre_exec_args(), finish_pre_exec(), and the post-xfer fork in
//! rsync_module()).

use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use nix::unistd::Pid;

use super::config::{ExpandError, ModuleParams, expand_vars_for_shell};
use super::log::io_error;
use super::privileges::{Forked, fork_process};
use super::session::Session;
use crate::engine::exit::{ExitCode, Origin, error_line};
use crate::engine::idmap::NameConverter;

/// A hook command that could not be expanded, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookExpandError {
    /// The command as configured, before expansion.
    pub template: String,
    pub error: ExpandError,
}

impl HookExpandError {
    /// The lines upstream logs before it ends the session, and its exit code. The client
    /// gets no `@ERROR` line (it reports "didn't get server startup line"), as upstream:
    /// loadparm.c, expand_vars() logs with rprintf(FLOG) and calls exit_cleanup() while
    /// the connection is still in its text phase.
    pub fn log_lines(&self) -> (Vec<String>, ExitCode) {
        let (first, code, line) = match &self.error {
            ExpandError::UnsafeValue { .. } => (self.error.to_string(), ExitCode::UNSUPPORTED, 273),
            ExpandError::TooLong { .. } => (
                format!(
                    "Overflowed buf in expand_vars() trying to expand: {}",
                    self.template
                ),
                ExitCode::MALLOC,
                318,
            ),
        };
        // Before the argument list is read the daemon's role is upstream's "Receiver".
        let origin = Origin {
            file: "loadparm.c",
            line,
        };
        let last = error_line(code, origin, "Receiver").trim_end().to_string();
        (vec![first, last], code)
    }
}

/// The exec hooks of a module, expanded, and the running pre-xfer command.
#[derive(Debug, Default)]
pub struct Hooks {
    early: Option<String>,
    pre: Option<String>,
    post: Option<String>,
    namecvt: Option<String>,
    env: Vec<(String, String)>,
    pre_child: Option<PreXfer>,
    /// The forked name-converter helper, waiting for the request like `pre_child`.
    namecvt_child: Option<PreXfer>,
    /// The name converter, once it has its request.
    name_converter: Option<NameConverter>,
}

/// A forked helper waiting for the request on a pipe before it runs `pre-xfer exec`.
#[derive(Debug)]
struct PreXfer {
    pid: Pid,
    args_out: File,
    output_in: File,
}

impl Hooks {
    /// Expands the module's hook commands. A `%RSYNC_*%` value that is unsafe in a shell
    /// makes upstream refuse the session, and so do we: the error says which command.
    pub fn from_module(
        p: &ModuleParams,
        vars: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Hooks, HookExpandError> {
        let expand = |v: &Option<String>| -> Result<Option<String>, HookExpandError> {
            match v.as_deref().filter(|c| !c.trim().is_empty()) {
                Some(c) => {
                    expand_vars_for_shell(c, vars)
                        .map(Some)
                        .map_err(|error| HookExpandError {
                            template: c.to_string(),
                            error,
                        })
                }
                None => Ok(None),
            }
        };
        // Upstream's escape hatch for running a config without its hooks.
        if std::env::var_os("RSYNC_NO_XFER_EXEC").is_some() {
            return Ok(Hooks::default());
        }
        Ok(Hooks {
            early: expand(&p.early_exec)?,
            pre: expand(&p.pre_xfer_exec)?,
            post: expand(&p.post_xfer_exec)?,
            namecvt: expand(&p.name_converter)?,
            env: Vec::new(),
            pre_child: None,
            namecvt_child: None,
            name_converter: None,
        })
    }

    /// Whether any hook (or a name converter) is configured.
    pub fn any(&self) -> bool {
        self.early.is_some() || self.pre.is_some() || self.post.is_some() || self.namecvt.is_some()
    }

    /// Runs what must happen before privileges are dropped: the post-xfer fork (this
    /// process becomes the waiting parent, the session continues in the child), the early
    /// exec, and the start of the pre-xfer command.
    pub(super) fn start(
        &mut self,
        s: &mut Session<'_>,
        module: &str,
        module_path: &Path,
        user: &str,
        early_input: Option<&[u8]>,
    ) -> Result<(), ExitCode> {
        if !self.any() {
            return Ok(());
        }
        self.env = vec![
            ("RSYNC_MODULE_NAME".into(), module.into()),
            (
                "RSYNC_MODULE_PATH".into(),
                module_path.display().to_string(),
            ),
            ("RSYNC_HOST_ADDR".into(), s.peer.addr.clone()),
            ("RSYNC_HOST_NAME".into(), s.peer.host.to_string()),
            ("RSYNC_USER_NAME".into(), user.into()),
            ("RSYNC_PID".into(), std::process::id().to_string()),
        ];
        if let Some(post) = self.post.clone() {
            match fork_process() {
                Ok(Forked::Parent(child)) => {
                    s.conn.close();
                    let status = nix::sys::wait::waitpid(child, None);
                    let (raw, code) = match status {
                        Ok(nix::sys::wait::WaitStatus::Exited(_, c)) => (c << 8, c),
                        Ok(nix::sys::wait::WaitStatus::Signaled(_, sig, _)) => (sig as i32, -1),
                        _ => (-1, -1),
                    };
                    let result = self
                        .command(&post)
                        .env("RSYNC_RAW_STATUS", raw.to_string())
                        .env("RSYNC_EXIT_STATUS", code.to_string())
                        .status();
                    let exit = match result {
                        Ok(st) => st.code().unwrap_or(-1),
                        Err(_) => -1,
                    };
                    std::process::exit(exit);
                }
                Ok(Forked::Child) => {}
                Err(e) => {
                    s.log.line(&io_error("fork failed", &e));
                    return Err(s.fail("fork failed"));
                }
            }
        }
        if let Some(early) = self.early.clone() {
            // Upstream's helper child reads the request ("(NONE)") and the empty argument
            // list from the pipe itself, so the command gets only --early-input's bytes
            // on its standard input. Upstream: clientserver.c, start_pre_exec() and
            // write_pre_exec_args() with exec_type 1.
            let stdin = early_input.unwrap_or_default().to_vec();
            let ok = self
                .command(&early)
                .env("RSYNC_REQUEST", "(NONE)")
                .stdin(Stdio::piped())
                .spawn()
                .and_then(|mut child| {
                    if let Some(mut w) = child.stdin.take() {
                        let _ = w.write_all(&stdin);
                    }
                    child.wait()
                });
            match ok {
                Ok(st) if st.success() => {}
                Ok(_) | Err(_) => {
                    s.log.line("early exec failed");
                    return Err(s.fail("early exec failed"));
                }
            }
        }
        if let Some(pre) = self.pre.clone() {
            match self.spawn_helper(&pre) {
                Ok(child) => self.pre_child = Some(child),
                Err(e) => {
                    s.log
                        .line(&io_error("pre-xfer exec preparation failed", &e));
                    return Err(s.fail("pre-xfer exec preparation failed"));
                }
            }
        }
        // Started now, while the session may still see the whole system (before any
        // chroot), so that names resolve as outside it. Upstream: rsync_module().
        if let Some(cvt) = self.namecvt.clone() {
            match self.spawn_helper(&cvt) {
                Ok(child) => self.namecvt_child = Some(child),
                Err(e) => {
                    s.log
                        .line(&io_error("name-converter exec preparation failed", &e));
                    return Err(s.fail("name-converter exec preparation failed"));
                }
            }
        }
        Ok(())
    }

    /// Gives the name converter the request and arguments (as the pre-xfer command gets
    /// them), after which the same pipe carries its lookups. Upstream:
    /// write_pre_exec_args() with exec_type 2.
    pub fn feed_name_converter(&mut self, request: &str, args: &[String]) {
        let Some(PreXfer {
            pid: _,
            mut args_out,
            output_in,
        }) = self.namecvt_child.take()
        else {
            return;
        };
        if args_out.write_all(&pre_exec_input(request, args)).is_ok() {
            self.name_converter = Some(NameConverter::new(args_out, output_in));
        }
    }

    /// The running name converter, for the transfer.
    pub fn take_name_converter(&mut self) -> Option<NameConverter> {
        self.name_converter.take()
    }

    /// Feeds the request and arguments to the pre-xfer command and waits for it. Returns
    /// the message to send the client when it failed. Upstream: clientserver.c,
    /// write_pre_exec_args() and finish_pre_exec().
    pub fn finish_pre_xfer(&mut self, request: &str, args: &[String]) -> Option<String> {
        let PreXfer {
            pid,
            mut args_out,
            mut output_in,
        } = self.pre_child.take()?;
        let _ = args_out.write_all(&pre_exec_input(request, args));
        drop(args_out);
        let mut output = Vec::new();
        // Upstream keeps at most one buffer's worth of the hook's output.
        let _ = Read::by_ref(&mut output_in)
            .take(5119)
            .read_to_end(&mut output);
        let status = nix::sys::wait::waitpid(pid, None);
        let text = String::from_utf8_lossy(&output).replace("\r\n", "\n");
        match status {
            Ok(nix::sys::wait::WaitStatus::Exited(_, 0)) => None,
            Ok(nix::sys::wait::WaitStatus::Exited(_, c)) => Some(format!(
                "pre-xfer exec returned failure ({}){}\n{text}",
                c << 8,
                if text.is_empty() { "" } else { ":" }
            )),
            _ => Some(format!(
                "pre-xfer exec returned failure (-1){}\n{text}",
                if text.is_empty() { "" } else { ":" }
            )),
        }
    }

    /// Forks the helper that waits for the request: it reads the NUL-separated request and
    /// arguments (one byte at a time: what follows them is the command's input), puts them
    /// in RSYNC_REQUEST and RSYNC_ARG0.., and runs the command with that pipe as its
    /// standard input and its standard output piped back. The pre-xfer command finds its
    /// input at an end; the name converter gets its lookups there. Upstream:
    /// clientserver.c, start_pre_exec().
    fn spawn_helper(&self, cmd: &str) -> std::io::Result<PreXfer> {
        let (args_in, args_out) = nix::unistd::pipe()?;
        let (output_in, output_out) = nix::unistd::pipe()?;
        match fork_process()? {
            Forked::Parent(pid) => Ok(PreXfer {
                pid,
                args_out: File::from(args_out),
                output_in: File::from(output_in),
            }),
            Forked::Child => {
                drop(args_out);
                drop(output_in);
                let mut reader = File::from(args_in);
                let Some(words) = read_pre_exec_words(&mut reader) else {
                    std::process::exit(1);
                };
                let mut words = words.into_iter();
                let mut c = self.command(cmd);
                c.env("RSYNC_REQUEST", words.next().unwrap_or_default());
                for (i, w) in words.enumerate() {
                    c.env(format!("RSYNC_ARG{i}"), w);
                }
                c.stdin(Stdio::from(reader)).stdout(Stdio::from(output_out));
                let code = match c.status() {
                    Ok(st) => st.code().unwrap_or(1),
                    Err(_) => 1,
                };
                std::process::exit(code);
            }
        }
    }

    fn command(&self, cmd: &str) -> Command {
        let shell = std::env::var("RSYNC_SHELL").unwrap_or_else(|_| "/bin/sh".to_string());
        let mut c = Command::new(shell);
        c.arg("-c").arg(cmd);
        for (k, v) in &self.env {
            c.env(k, v);
        }
        c
    }
}

/// The request and arguments as a helper reads them: each NUL-terminated, then an empty
/// word. Upstream: clientserver.c, write_pre_exec_args().
fn pre_exec_input(request: &str, args: &[String]) -> Vec<u8> {
    let mut input = Vec::new();
    for w in std::iter::once(request).chain(args.iter().map(String::as_str)) {
        input.extend_from_slice(w.as_bytes());
        input.push(0);
    }
    input.push(0);
    input
}

/// Reads the words [`pre_exec_input`] wrote, and not a byte more, at most 1 MiB of them.
/// `None` when the pipe ends first.
fn read_pre_exec_words(r: &mut impl Read) -> Option<Vec<String>> {
    let mut words = Vec::new();
    let mut word = Vec::new();
    let mut total = 0usize;
    let mut byte = [0u8; 1];
    loop {
        match r.read(&mut byte) {
            Ok(1) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            _ => return None,
        }
        total += 1;
        if total > 1 << 20 {
            return None;
        }
        if byte[0] != 0 {
            word.push(byte[0]);
            continue;
        }
        // The empty word after the request ends the list.
        if word.is_empty() && !words.is_empty() {
            return Some(words);
        }
        words.push(String::from_utf8_lossy(&std::mem::take(&mut word)).into_owned());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pre_exec_words_stop_at_their_end() {
        let args = [
            "rsyncd".to_string(),
            "--server".to_string(),
            ".".to_string(),
        ];
        let mut input = pre_exec_input("mod/", &args);
        input.extend_from_slice(b"usr alice\n");
        let mut r = &input[..];
        assert_eq!(
            read_pre_exec_words(&mut r),
            Some(vec![
                "mod/".to_string(),
                "rsyncd".to_string(),
                "--server".to_string(),
                ".".to_string()
            ])
        );
        // What follows is left for the converter.
        assert_eq!(r, b"usr alice\n");
        assert_eq!(read_pre_exec_words(&mut &b"mod/\0rsyncd\0"[..]), None);
    }
}
