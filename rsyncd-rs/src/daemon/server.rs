//! After `@RSYNCD: OK`: the argument list, the module's option policy, the binary set-up
//! and the hand-off to the engine (upstream: clientserver.c rsync_module() from read_args()
//! on; main.c start_server()).

use super::config::Module;
use super::ending::{Refusal, Stage, end_session, start_server};
use super::module::ModuleSession;
use super::session::Session;
use crate::engine::conn::ConnError;
use crate::engine::exit::{ExitCode, Origin};
use crate::engine::setup::{
    ArgListError, ServerSetup, read_arg_list, server_options, setup_protocol,
};
use crate::protocol::handshake::{BIG_LINE_MAX, MAX_DAEMON_ARGS};
use crate::protocol::options::{Options, Refusals};

/// Reads the argument list; `nul_separated` from protocol 30. Upstream: io.c, read_args().
fn read_args(s: &mut Session<'_>, nul_separated: bool) -> Result<Vec<String>, ExitCode> {
    match read_arg_list(
        &mut s.conn,
        nul_separated,
        BIG_LINE_MAX,
        MAX_DAEMON_ARGS - 2,
    ) {
        Ok(args) => Ok(args),
        Err(ArgListError::Conn(e @ (ConnError::Timeout | ConnError::Io(_)))) => {
            Err(s.read_failed(&e))
        }
        Err(ArgListError::Conn(_)) => Err(ExitCode::SOCKETIO),
        Err(ArgListError::TooMany) => {
            s.log.line("too many daemon arguments");
            Err(ExitCode::PROTOCOL)
        }
    }
}

/// Undoes the backslash escaping a 3.5.0 client applies to option values (`safe_arg`).
/// Upstream: io.c, unbackslash_arg().
fn unbackslash(arg: &str) -> String {
    let mut out = String::with_capacity(arg.len());
    let mut chars = arg.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(next) = chars.next() {
                out.push(next);
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Everything after `@RSYNCD: OK`.
pub(super) fn run(
    s: &mut Session<'_>,
    m: &Module,
    mut ms: ModuleSession,
) -> Result<ExitCode, ExitCode> {
    let nul = s.protocol >= 30;
    let raw = read_args(s, nul)?;
    // Option values were escaped by the client; paths after "." are left as they are.
    let mut seen_dot = false;
    let args: Vec<String> = raw
        .into_iter()
        .map(|a| {
            if seen_dot {
                a
            } else {
                seen_dot = a == ".";
                unbackslash(&a)
            }
        })
        .collect();
    let refusals = Refusals::for_daemon(m.params.refuse_options.as_deref().unwrap_or(""));
    for token in &refusals.unmatched {
        s.log
            .line(&format!("No match for refuse-options string \"{token}\""));
    }
    let (args, parsed) = server_options(args, &refusals, || read_args(s, true))?;
    s.conn.set_deadline(None);

    let request = request_text(&args, &m.name);
    let am_sender = parsed
        .as_ref()
        .map(|o| o.am_sender)
        .unwrap_or_else(|_| args.iter().any(|a| a == "--sender"));
    // A sender's paths are expanded against the module before the hooks see them
    // (upstream's glob_expand_module() in rsync_module()); a receiver's are not.
    let mut hook_args = vec!["rsyncd".to_string()];
    match args.iter().position(|a| a == ".") {
        Some(dot) if am_sender => {
            hook_args.extend(args[..=dot].iter().cloned());
            for a in &args[dot + 1..] {
                for p in super::transfer::module_args(a, &m.name) {
                    hook_args.push(String::from_utf8_lossy(&p).into_owned());
                }
            }
        }
        _ => hook_args.extend(args.iter().cloned()),
    }
    let hook_error = ms.hooks.finish_pre_xfer(&request, &hook_args);
    ms.hooks.feed_name_converter(&request, &hook_args);

    let who = s
        .user
        .clone()
        .filter(|u| !u.is_empty())
        .map(|u| format!("{u}@"))
        .unwrap_or_default();
    s.log.line(&format!(
        "rsync {} {request} from {who}{} ({})",
        if am_sender { "on" } else { "to" },
        s.peer.host,
        s.peer.addr
    ));

    let options = parsed
        .as_ref()
        .ok()
        .cloned()
        .unwrap_or_else(|| fallback_options(&args, am_sender));
    let timeout = m.params.timeout;
    let mut wire = setup_protocol(
        &mut s.conn,
        &ServerSetup {
            protocol: s.protocol,
            options: &options,
            module_timeout: timeout,
        },
    )
    .map_err(|e| {
        s.log.line(&format!("protocol set-up failed: {e}"));
        e.exit_code()
    })?;

    if let Some(err) = hook_error {
        return Err(end_session(s, &mut wire, am_sender, &options_stage(&err)));
    }
    let mut options = match parsed {
        Ok(o) => o,
        Err(e) => {
            let text = format!("rsync: {e}\n");
            return Err(end_session(s, &mut wire, am_sender, &options_stage(&text)));
        }
    };
    // A `fake super` module never lets a client move rsync's own `user.rsync.%…`
    // attributes: -XX is quietly -X there. Upstream: clientserver.c, rsync_module().
    if ms.fake_super && options.preserve_xattrs > 1 {
        options.preserve_xattrs = 1;
    }
    // What this server cannot do is refused with the options, as a stock build without
    // the feature refuses it.
    if let Some(text) = crate::engine::unsupported::check(&options) {
        return Err(end_session(s, &mut wire, am_sender, &options_stage(&text)));
    }
    if let Some(text) = crate::engine::unsupported::check_protocol(&options, wire.protocol) {
        let refusal = Refusal {
            code: ExitCode::PROTOCOL,
            origin: Origin {
                file: "compat.c",
                // Upstream's -A check comes seven lines before its -X check.
                line: if options.preserve_acls { 610 } else { 617 },
            },
            ..options_stage(&text)
        };
        return Err(end_session(s, &mut wire, am_sender, &refusal));
    }
    let sent = start_server(s, &wire);
    let server_stage = |text: &'static str, line: u32| Refusal {
        text,
        code: ExitCode::SYNTAX,
        origin: Origin {
            file: "main.c",
            line,
        },
        stage: Stage::Server,
        always_tell: false,
        sent,
    };
    // Upstream: main.c, do_server_recv() and do_server_sender().
    let refusal = if !options.am_sender && ms.is_read_only {
        Some(server_stage("ERROR: module is read only\n", 1185))
    } else if options.am_sender && ms.is_write_only {
        Some(server_stage("ERROR: module is write only\n", 951))
    } else if options.am_sender && options.remove_source_files > 0 && ms.is_read_only {
        let text = if options.remove_source_files == 1 {
            "ERROR: --remove-source-files cannot be used with a read-only module\n"
        } else {
            "ERROR: --remove-sent-files cannot be used with a read-only module\n"
        };
        Some(server_stage(text, 954))
    } else {
        None
    };
    if let Some(r) = refusal {
        return Err(end_session(s, &mut wire, options.am_sender, &r));
    }
    // Resolved once; the roles read it and never change it.
    let options = options.for_session(wire.protocol, Some(m.params.max_verbosity));
    if options.am_sender {
        super::transfer::send(s, m, ms, options, wire)
    } else {
        super::transfer::receive(s, m, ms, options, wire)
    }
}

/// A refused option or a failed `pre-xfer exec`. Upstream: clientserver.c, rsync_module().
fn options_stage(text: &str) -> Refusal<'_> {
    Refusal {
        text,
        code: ExitCode::UNSUPPORTED,
        origin: Origin {
            file: "clientserver.c",
            line: 1267,
        },
        stage: Stage::Options,
        always_tell: false,
        sent: 0,
    }
}

/// What upstream logs as the request: the path arguments after `.`, space-separated.
fn request_text(args: &[String], module: &str) -> String {
    let paths: Vec<&str> = match args.iter().position(|a| a == ".") {
        Some(i) => args[i + 1..].iter().map(String::as_str).collect(),
        None => Vec::new(),
    };
    if paths.is_empty() {
        format!("{module}/")
    } else {
        paths.join(" ")
    }
}

/// When parsing failed, the set-up still has to happen so the error can be multiplexed:
/// use what can be read of the list (the capability letters, compression).
fn fallback_options(args: &[String], am_sender: bool) -> Options {
    let mut o = Options {
        am_sender,
        ..Options::default()
    };
    for a in args {
        if let Some(flags) = a.strip_prefix('-').filter(|f| !f.starts_with('-')) {
            if let Some(i) = flags.find('e') {
                o.client_info = flags[i + 1..]
                    .trim_start_matches(|c: char| c != '.')
                    .trim_start_matches('.')
                    .to_string();
            }
            if flags.split('e').next().is_some_and(|f| f.contains('z')) {
                o.compress = 1;
            }
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unbackslash_undoes_safe_arg() {
        assert_eq!(unbackslash(r"--filter=-\ \*.o"), "--filter=- *.o");
        assert_eq!(unbackslash(r"a\\b"), r"a\b");
    }

    #[test]
    fn request_is_the_paths() {
        let args: Vec<String> = ["--server", "-r", ".", "backup/"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(request_text(&args, "backup"), "backup/");
        let o = fallback_options(&["--server".into(), "-ulogDtprRze.iLsfxCIvu".into()], false);
        assert_eq!(o.client_info, "iLsfxCIvu");
        assert_eq!(o.compress, 1);
    }
}
