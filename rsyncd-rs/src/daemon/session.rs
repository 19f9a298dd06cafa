//! One daemon session, from the first byte to the hand-off to the engine: greeting,
//! module request, access and auth checks, privileges, then the argument list
//! (upstream: clientserver.c start_daemon(), rsync_module()).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::access::{ClientAddr, HostName, SystemResolver, UNKNOWN, proxy_peer_allowed_with};
use super::config::{DaemonConfig, Module};
use super::log::{DaemonLog, SharedLog, sys_error, target_for};
use super::module::{ModuleSession, open_module};
use super::proxy::{ProxySource, decode_proxy_header};
use crate::engine::conn::{Conn, ConnError};
use crate::engine::exit::{ExitCode, Origin, error_line};
use crate::protocol::handshake::{
    self, DAEMON_LINE_MAX, GreetingError, ModuleRequest, decode_line, greeting, negotiate_protocol,
    parse_greeting, parse_module_request,
};
use crate::protocol::{auth::OUR_DIGESTS, handshake::PeerGreeting};

/// How a session's connection reached us.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionKind {
    /// A child of our own listener.
    Listener,
    /// A socket on standard input (inetd, systemd `Accept=yes`, `RSYNC_CONNECT_PROG`).
    Socket,
    /// `--server --daemon` over a remote shell's standard input and output.
    RemoteShell,
}

/// What every session is started with.
#[derive(Debug, Clone)]
pub struct SessionSetup {
    pub config_path: PathBuf,
    pub dparams: Vec<String>,
    /// `--log-file` from the command line, overriding `log file`.
    pub log_file: Option<PathBuf>,
    pub kind: SessionKind,
    /// `--bwlimit` of the daemon command line (KiB/s).
    pub bwlimit: Option<u64>,
    /// `--log-file-format` of the daemon command line.
    pub log_file_format: Option<String>,
}

/// Upstream's DAEMON_HANDSHAKE_TIMEOUT: the longest any handshake phase may take.
const HANDSHAKE_TIMEOUT_MAX: i32 = 60;

/// The handshake bound for a `timeout` value: that value if positive and at most 60 s.
pub fn handshake_timeout(timeout: i32) -> Duration {
    let secs = if timeout <= 0 || timeout > HANDSHAKE_TIMEOUT_MAX {
        HANDSHAKE_TIMEOUT_MAX
    } else {
        timeout
    };
    Duration::from_secs(secs as u64)
}

/// The peer as the logs and access checks see it.
#[derive(Debug, Clone)]
pub struct Peer {
    pub addr: String,
    pub ip: Option<IpAddr>,
    pub host: HostName,
}

/// Runs a session to its end; returns the process exit code.
pub fn serve(
    setup: &SessionSetup,
    input: OwnedFd,
    output: OwnedFd,
    peer: Option<SocketAddr>,
) -> i32 {
    let config = match DaemonConfig::load(&setup.config_path, &setup.dparams) {
        Ok(c) => c,
        Err(errors) => {
            // Nothing can be logged where the operator asked (the config says where); tell
            // syslog, and close: upstream exits with RERR_SYNTAX without a word to the client.
            let mut log = DaemonLog::open(&target_for("", libc::LOG_DAEMON, "rsyncd"))
                .unwrap_or_else(|_| DaemonLog::nowhere());
            log.line(&format!(
                "Failed to parse config file: {}",
                setup.config_path.display()
            ));
            for e in errors.0 {
                log.line(&e.to_string());
            }
            return ExitCode::SYNTAX.0;
        }
    };
    let mut session = match Session::new(setup, config, Conn::new(input, output), peer) {
        Ok(s) => s,
        Err(code) => return code.0,
    };
    let code = match session.run() {
        Ok(code) | Err(code) => code,
    };
    session.log_close(code);
    code.0
}

/// The state of a session before the engine takes over.
pub(super) struct Session<'a> {
    pub setup: &'a SessionSetup,
    pub config: DaemonConfig,
    pub conn: Conn,
    pub log: SharedLog,
    pub peer: Peer,
    pub protocol: i32,
    pub peer_greeting: Option<PeerGreeting>,
    /// Set once a module was chosen, for the closing log line.
    pub module_name: Option<String>,
    pub user: Option<String>,
    /// The reverse-lookup result, once looked up.
    resolved: Option<String>,
}

impl<'a> Session<'a> {
    fn new(
        setup: &'a SessionSetup,
        config: DaemonConfig,
        conn: Conn,
        peer: Option<SocketAddr>,
    ) -> Result<Self, ExitCode> {
        let target = match &setup.log_file {
            Some(p) => super::log::LogTarget::File(p.clone()),
            None => target_for(
                config.defaults.log_file.as_deref().unwrap_or(""),
                config.defaults.syslog_facility.code(),
                &config.defaults.syslog_tag,
            ),
        };
        let log = SharedLog::new(DaemonLog::open(&target).unwrap_or_else(|_| DaemonLog::nowhere()));
        let (addr, ip) = peer_address(setup.kind, peer);
        Ok(Session {
            setup,
            config,
            conn,
            log,
            peer: Peer {
                addr,
                ip,
                host: HostName::Undetermined,
            },
            protocol: crate::PROTOCOL_VERSION,
            peer_greeting: None,
            module_name: None,
            user: None,
            resolved: None,
        })
    }

    fn is_listener_child(&self) -> bool {
        self.setup.kind != SessionKind::RemoteShell
    }

    /// Sends a text line (handshake phase).
    pub fn send_line(&mut self, text: &str) -> Result<(), ExitCode> {
        self.conn
            .write_all(text.as_bytes())
            .map_err(|_| ExitCode::SOCKETIO)
    }

    /// Sends `@ERROR: ...` and ends the session with code 5 (the client's view) — our own
    /// exit code is what upstream's daemon child exits with.
    pub fn fail(&mut self, message: &str) -> ExitCode {
        let _ = self.send_line(&format!("@ERROR: {message}\n"));
        ExitCode::STARTCLIENT
    }

    /// Reads a handshake line of at most `limit` bytes.
    pub fn read_line(&mut self, limit: usize) -> Result<String, ExitCode> {
        match self.conn.decode(|b| decode_line(b, limit)) {
            Ok(line) => Ok(line),
            Err(e) => Err(self.read_failed(&e)),
        }
    }

    /// Logs a failed handshake read as upstream does and gives the exit code: the
    /// handshake deadline (io.c, handshake_poll_timeout_ms()) and a read error other
    /// than end of file (io.c, safe_read()) are logged; end of file and a malformed line
    /// end the session quietly, as upstream's read_line_old() callers do. Before the
    /// argument list is read upstream's role name is "Receiver".
    pub fn read_failed<E>(&mut self, e: &ConnError<E>) -> ExitCode {
        let (lines, code) = match e {
            ConnError::Timeout => (
                vec![
                    "[Receiver] daemon handshake timeout -- exiting".to_string(),
                    error_line(
                        ExitCode::TIMEOUT,
                        Origin {
                            file: "io.c",
                            line: 156,
                        },
                        "Receiver",
                    ),
                ],
                ExitCode::TIMEOUT,
            ),
            ConnError::Io(io) => {
                let errno = io.raw_os_error().unwrap_or(0);
                let desc = crate::engine::exit::strerror(errno);
                (
                    vec![
                        format!(
                            "rsync: [Receiver] safe_read failed to read 1 bytes: {desc} ({errno})"
                        ),
                        error_line(
                            ExitCode::STREAMIO,
                            Origin {
                                file: "io.c",
                                line: 340,
                            },
                            "Receiver",
                        ),
                    ],
                    ExitCode::STREAMIO,
                )
            }
            ConnError::Eof => (Vec::new(), ExitCode::SOCKETIO),
            ConnError::Decode(_) => (Vec::new(), ExitCode::PROTOCOL),
        };
        for line in lines {
            self.log.line(line.trim_end());
        }
        code
    }

    fn run(&mut self) -> Result<ExitCode, ExitCode> {
        if self.is_listener_child() {
            let t = handshake_timeout(self.config.defaults.timeout);
            self.conn.set_deadline(Some(Instant::now() + t));
        }
        if self.config.global.proxy_protocol {
            self.read_proxy_header()?;
        }
        self.resolve_host();
        self.apply_daemon_identity()?;
        self.log.line(&format!(
            "connect from {} ({})",
            self.peer.host, self.peer.addr
        ));
        self.exchange_protocols()?;
        let mut line = self.read_line(DAEMON_LINE_MAX)?;
        let mut request =
            parse_module_request(&line).map_err(|_| self.fail("invalid early_input length"))?;
        let mut early_input = None;
        if let ModuleRequest::EarlyInput(len) = request {
            early_input = match self.conn.read_exact(len) {
                Ok(bytes) => Some(bytes),
                Err(e) => return Err(self.read_failed(&e)),
            };
            line = self.read_line(DAEMON_LINE_MAX)?;
            request =
                parse_module_request(&line).map_err(|_| self.fail("invalid early_input length"))?;
        }
        match request {
            ModuleRequest::List => {
                self.log.line(&format!(
                    "module-list request from {} ({})",
                    self.peer.host, self.peer.addr
                ));
                self.send_listing()?;
                Ok(ExitCode::OK)
            }
            ModuleRequest::UnknownCommand(cmd) => {
                Err(self.fail(&format!("Unknown command '{cmd}'")))
            }
            ModuleRequest::EarlyInput(_) => Err(self.fail("invalid early_input length")),
            ModuleRequest::Module(name) => {
                let Some(module) = self.config.module(&name).cloned() else {
                    self.log.line(&format!(
                        "unknown module '{name}' tried from {} ({})",
                        self.peer.host, self.peer.addr
                    ));
                    return Err(self.fail(&format!("Unknown module '{name}'")));
                };
                self.module_name = Some(module.name.clone());
                let ms: ModuleSession = open_module(self, &module, early_input)?;
                super::server::run(self, &module, ms)
            }
        }
    }

    /// With `proxy protocol`, the direct peer must be a trusted proxy and send a valid
    /// PROXY header; its address then replaces the socket's everywhere. Anything else
    /// closes the connection without a word, as upstream: clientserver.c, start_daemon()
    /// and proxy_peer_allowed().
    fn read_proxy_header(&mut self) -> Result<(), ExitCode> {
        let direct = ClientAddr::from(self.peer.ip.unwrap_or(Ipv4Addr::UNSPECIFIED.into()));
        let trusted = proxy_peer_allowed_with(
            &direct,
            self.config.global.proxy_protocol_hosts.as_deref(),
            &SystemResolver,
        );
        if !trusted {
            self.log.line(&format!(
                "proxy protocol rejected from untrusted peer {} ({})",
                self.peer.host, self.peer.addr
            ));
            return Err(ExitCode::STARTCLIENT);
        }
        match self.conn.decode(decode_proxy_header) {
            Ok(ProxySource::Address { text, ip }) => {
                self.peer.addr = text;
                self.peer.ip = ip;
                Ok(())
            }
            Ok(ProxySource::KeepSocketAddress) => Ok(()),
            Err(ConnError::Timeout) => Err(ExitCode::TIMEOUT),
            Err(ConnError::Decode(_)) => Err(ExitCode::STARTCLIENT),
            Err(_) => Err(ExitCode::SOCKETIO),
        }
    }

    /// Reverse lookup before any chroot, as upstream does, when any module wants it; the
    /// name is shown only when the global setting asks for it.
    fn resolve_host(&mut self) {
        let wanted = self.config.defaults.reverse_lookup
            || self
                .config
                .modules
                .iter()
                .any(|m: &Module| m.params.reverse_lookup);
        if wanted {
            let name = self.lookup_host();
            if self.config.defaults.reverse_lookup {
                self.peer.host = HostName::Name(name);
            }
        }
    }

    /// The peer's name by reverse lookup (cached), or UNKNOWN, logging why as upstream.
    pub fn lookup_host(&mut self) -> String {
        if let Some(name) = &self.resolved {
            return name.clone();
        }
        let name = match self.peer.ip {
            Some(ip) => match super::access::reverse_lookup(ip) {
                Ok(name) => name,
                Err(why) => {
                    self.log.line(&why);
                    UNKNOWN.to_string()
                }
            },
            None => UNKNOWN.to_string(),
        };
        self.resolved = Some(name.clone());
        name
    }

    /// `daemon chroot`, `daemon gid`, `daemon uid`: applied to every session before the
    /// greeting. Upstream: clientserver.c, start_daemon().
    fn apply_daemon_identity(&mut self) -> Result<(), ExitCode> {
        let g = self.config.global.clone();
        if let Some(dir) = g.daemon_chroot.as_deref().filter(|d| !d.is_empty()) {
            if let Err(e) = super::privileges::chroot_to(std::path::Path::new(dir)) {
                let what = format!("daemon chroot(\"{dir}\") failed");
                self.log.line(&sys_error("Receiver", &what, e.errno()));
                return Err(ExitCode::FILEIO);
            }
        }
        if let Some(name) = g.daemon_gid.as_deref().filter(|d| !d.is_empty()) {
            let Some(gid) = super::privileges::group_to_gid(name) else {
                self.log.line(&format!("Invalid daemon gid: {name}"));
                return Err(ExitCode::FILEIO);
            };
            if let Err(e) = nix::unistd::setgid(gid) {
                let what = format!("Unable to set group to daemon gid {gid}");
                self.log.line(&sys_error("Receiver", &what, e as i32));
                return Err(ExitCode::FILEIO);
            }
        }
        if let Some(name) = g.daemon_uid.as_deref().filter(|d| !d.is_empty()) {
            let Some(uid) = super::privileges::user_to_uid(name) else {
                self.log.line(&format!("Invalid daemon uid: {name}"));
                return Err(ExitCode::FILEIO);
            };
            if let Err(e) = nix::unistd::setuid(uid) {
                let what = format!("Unable to set user to daemon uid {uid}");
                self.log.line(&sys_error("Receiver", &what, e as i32));
                return Err(ExitCode::FILEIO);
            }
        }
        Ok(())
    }

    /// Greeting both ways, motd, protocol choice. Upstream: clientserver.c,
    /// exchange_protocols().
    fn exchange_protocols(&mut self) -> Result<(), ExitCode> {
        let mut out = greeting(crate::PROTOCOL_VERSION, OUR_DIGESTS).into_bytes();
        if let Some(motd) = self
            .config
            .global
            .motd_file
            .as_deref()
            .filter(|m| !m.is_empty())
        {
            if let Some(text) = read_motd(motd) {
                out.extend_from_slice(&text);
            }
            out.push(b'\n');
        }
        self.conn.write_all(&out).map_err(|_| ExitCode::SOCKETIO)?;
        let line = self.read_line(DAEMON_LINE_MAX)?;
        let g = match parse_greeting(&line) {
            Ok(g) => g,
            Err(
                e @ (GreetingError::Startup
                | GreetingError::NoSubprotocol(_)
                | GreetingError::NoDigestList(_)),
            ) => {
                return Err(self.fail(&e.to_string()));
            }
        };
        self.protocol = negotiate_protocol(crate::PROTOCOL_VERSION, g.protocol, g.sub);
        self.peer_greeting = Some(g);
        Ok(())
    }

    /// The module listing. Upstream: clientserver.c, send_listing().
    fn send_listing(&mut self) -> Result<(), ExitCode> {
        let mut text = String::new();
        for m in self.config.modules.iter().filter(|m| m.params.list) {
            text.push_str(&handshake::listing_line(
                &m.name,
                m.params.comment.as_deref().unwrap_or(""),
            ));
        }
        if self.protocol >= 25 {
            text.push_str("@RSYNCD: EXIT\n");
        }
        self.send_line(&text)
    }

    /// The closing log line: who, which module, how it ended.
    fn log_close(&mut self, code: ExitCode) {
        let outcome = if code == ExitCode::OK {
            "ok".to_string()
        } else {
            format!("{} (code {})", code.text(), code.0)
        };
        let module = self.module_name.clone().unwrap_or_else(|| "-".to_string());
        let user = self
            .user
            .clone()
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| "-".to_string());
        self.log.line(&format!(
            "session end: {} ({}) module {module} user {user}: {outcome}",
            self.peer.host, self.peer.addr
        ));
    }
}

/// The peer's address as upstream reports it: the socket peer, or for a remote-shell
/// session the first word of `SSH_CONNECTION` (and friends), else `0.0.0.0`.
/// Upstream: clientname.c, client_addr().
fn peer_address(kind: SessionKind, peer: Option<SocketAddr>) -> (String, Option<IpAddr>) {
    if kind == SessionKind::RemoteShell {
        for var in ["REMOTE_HOST", "SSH_CONNECTION", "SSH_CLIENT", "SSH2_CLIENT"] {
            if let Ok(v) = std::env::var(var) {
                let first = v.split(' ').next().unwrap_or("");
                if let Ok(ip) = first.parse::<IpAddr>() {
                    return (ip.to_string(), Some(ip));
                }
            }
        }
    }
    match peer {
        Some(sa) => {
            let ip = match sa.ip() {
                IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
                v4 => v4,
            };
            (ip.to_string(), Some(ip))
        }
        None => (Ipv4Addr::UNSPECIFIED.to_string(), None),
    }
}

/// Reads the motd, refusing a symlink (its bytes go to every client).
fn read_motd(path: &str) -> Option<Vec<u8>> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .ok()?;
    let mut buf = Vec::new();
    // A motd is a few lines; anything past 64 KiB is not sent.
    f.by_ref().take(64 * 1024).read_to_end(&mut buf).ok()?;
    Some(buf)
}
