//! Reaching a module: the TCP connection, the `@RSYNCD:` greeting, the module line, the
//! MOTD, the password challenge and the argument list. Upstream: clientserver.c,
//! start_socket_client(), start_inband_exchange(); authenticate.c, auth_client(),
//! getpassf(); socket.c, open_socket_out().

use std::io::Read;
use std::net::{IpAddr, SocketAddr, TcpStream, ToSocketAddrs};
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::time::Duration;

use super::error::{ClientError, Refusal};
use super::url::Remote;
use crate::engine::conn::{Conn, ConnError};
use crate::protocol::auth::{OUR_DIGESTS, choose_client_digest, response};
use crate::protocol::handshake::{
    BIG_LINE_MAX, decode_line, greeting, negotiate_protocol, parse_greeting,
};

/// Where the password comes from.
#[derive(Clone, PartialEq, Eq)]
pub enum Password {
    /// The password itself (syncctl takes `RSYNC_PASSWORD` this way).
    Value(Vec<u8>),
    /// A file whose first line is the password; it must not be readable by others, and
    /// when we run as root it must be root's, as rsync insists.
    File(PathBuf),
}

impl Password {
    /// The password as rsync's client finds it: the file if one is named, else the
    /// `RSYNC_PASSWORD` environment variable, else none.
    pub fn from_file_or_env(file: Option<&std::path::Path>) -> Option<Password> {
        match file {
            Some(p) => Some(Password::File(p.to_path_buf())),
            None => std::env::var_os("RSYNC_PASSWORD").map(|v| {
                Password::Value(std::os::unix::ffi::OsStrExt::as_bytes(v.as_os_str()).to_vec())
            }),
        }
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Password::Value(_) => f.write_str("Password::Value(..)"),
            Password::File(p) => f.debug_tuple("Password::File").field(p).finish(),
        }
    }
}

/// Told of each entry as a transfer goes (a progress display).
pub type Progress = std::sync::Arc<dyn Fn(&crate::engine::session::ItemEvent) + Send + Sync>;

/// How to connect (and what to tell as a transfer goes).
#[derive(Clone)]
pub struct ConnectOptions {
    /// How long the TCP connection may take (`--contimeout`); `None` waits as the system
    /// does.
    pub connect_timeout: Option<Duration>,
    /// The longest wait for the daemon once connected (`--timeout`); `None` for none.
    pub io_timeout: Option<Duration>,
    /// The local address to connect from (`--address`).
    pub bind: Option<IpAddr>,
    pub password: Option<Password>,
    /// The highest protocol to offer (`--protocol`); the daemon may choose lower.
    pub max_protocol: i32,
    /// `RSYNC_CONNECT_PROG`: a command (run by `sh -c`, `%H` the host) whose standard
    /// input and output are the daemon connection, instead of TCP.
    pub connect_prog: Option<String>,
    /// Called for each entry a push or pull lists, sends or receives.
    pub progress: Option<Progress>,
    /// A push leaves out the names (relative to its local root) this says to, beyond its
    /// filter rules; the server is not told (see `engine::session::Policy::local_filter`).
    pub local_filter: Option<crate::engine::session::LocalFilter>,
}

impl std::fmt::Debug for ConnectOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectOptions")
            .field("connect_timeout", &self.connect_timeout)
            .field("io_timeout", &self.io_timeout)
            .field("bind", &self.bind)
            .field("password", &self.password)
            .field("max_protocol", &self.max_protocol)
            .field("connect_prog", &self.connect_prog)
            .finish_non_exhaustive()
    }
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            connect_timeout: None,
            io_timeout: None,
            bind: None,
            password: None,
            max_protocol: crate::PROTOCOL_VERSION,
            connect_prog: None,
            progress: None,
            local_filter: None,
        }
    }
}

/// A connection past the greeting: the protocol both sides speak and what the daemon
/// said before the module was opened.
#[derive(Debug)]
pub struct Greeted {
    pub conn: Conn,
    /// The `RSYNC_CONNECT_PROG` process, if that is the connection.
    pub child: Option<super::transport::ChildGuard>,
    pub protocol: i32,
    /// The daemon's auth digest list (`None` before 3.2.7).
    pub digests: Option<String>,
}

/// A module opened and its argument list sent: the binary protocol starts here.
#[derive(Debug)]
pub struct Opened {
    pub conn: Conn,
    pub child: Option<super::transport::ChildGuard>,
    pub motd: Vec<String>,
}

/// The longest a daemon's text line may be (upstream reads them into BIGPATHBUFLEN).
const LINE_MAX: usize = BIG_LINE_MAX;
/// The most MOTD lines we keep; a daemon sending more is talking nonsense.
const MAX_MOTD_LINES: usize = 10_000;

/// Connects to the daemon and exchanges greetings.
pub fn greet(remote: &Remote, o: &ConnectOptions) -> Result<Greeted, ClientError> {
    let (mut conn, child) = match &o.connect_prog {
        Some(prog) => {
            let (conn, child) = super::transport::connect_prog(prog, &remote.host)?;
            (conn, Some(child))
        }
        None => {
            let stream = tcp_connect(remote, o)?;
            // Every write is a whole message: Nagle's algorithm would only hold our
            // small handshake lines until an acknowledgement comes.
            let _ = stream.set_nodelay(true);
            let fd = OwnedFd::from(stream);
            let dup = fd
                .try_clone()
                .map_err(|e| ClientError::Local(format!("dup failed: {e}")))?;
            (Conn::new(fd, dup), None)
        }
    };
    conn.set_idle_timeout(o.io_timeout);
    let ours = o
        .max_protocol
        .clamp(crate::MIN_PROTOCOL_VERSION, crate::PROTOCOL_VERSION);
    conn.write_all(greeting(ours, OUR_DIGESTS).as_bytes())
        .map_err(conn_error)?;
    let line = read_line(&mut conn)?;
    let g = parse_greeting(&line).map_err(|_| {
        ClientError::Protocol(format!("server sent \"{line}\" rather than greeting"))
    })?;
    if g.protocol < crate::MIN_PROTOCOL_VERSION {
        return Err(ClientError::Protocol(format!(
            "protocol version mismatch -- is your shell clean? (server speaks {})",
            g.protocol
        )));
    }
    let protocol = negotiate_protocol(ours, g.protocol, g.sub);
    Ok(Greeted {
        conn,
        child,
        protocol,
        digests: g.digests,
    })
}

impl Greeted {
    /// Asks for the module, answers the password challenge, reads the MOTD up to
    /// `@RSYNCD: OK`, and sends the argument list (NUL-separated from protocol 30).
    pub fn open(
        mut self,
        remote: &Remote,
        password: Option<&Password>,
        args: &[String],
    ) -> Result<Opened, ClientError> {
        self.conn
            .write_all(format!("{}\n", remote.module).as_bytes())
            .map_err(conn_error)?;
        let mut motd = Vec::new();
        loop {
            let line = read_line(&mut self.conn)?;
            if let Some(challenge) = line.strip_prefix("@RSYNCD: AUTHREQD ") {
                self.authenticate(remote, password, challenge)?;
                continue;
            }
            if line == "@RSYNCD: OK" {
                break;
            }
            if line == "@RSYNCD: EXIT" {
                return Err(ClientError::Protocol(
                    "the daemon listed its modules instead of opening one".into(),
                ));
            }
            if line.starts_with("@ERROR") {
                return Err(ClientError::Daemon {
                    kind: Refusal::of_line(&line),
                    line,
                });
            }
            if motd.len() < MAX_MOTD_LINES {
                motd.push(line);
            }
        }
        let mut out = Vec::new();
        for a in args {
            out.extend_from_slice(a.as_bytes());
            out.push(if self.protocol >= 30 { 0 } else { b'\n' });
        }
        out.push(if self.protocol >= 30 { 0 } else { b'\n' });
        self.conn.write_all(&out).map_err(conn_error)?;
        Ok(Opened {
            conn: self.conn,
            child: self.child,
            motd,
        })
    }

    /// Asks for the module list (an empty module name): the lines up to
    /// `@RSYNCD: EXIT`, MOTD first, as the daemon sends them.
    pub fn list_modules(mut self) -> Result<Vec<String>, ClientError> {
        self.conn.write_all(b"\n").map_err(conn_error)?;
        let mut lines = Vec::new();
        loop {
            let line = read_line(&mut self.conn)?;
            if line == "@RSYNCD: EXIT" {
                return Ok(lines);
            }
            if line.starts_with("@ERROR") {
                return Err(ClientError::Daemon {
                    kind: Refusal::of_line(&line),
                    line,
                });
            }
            if lines.len() >= MAX_MOTD_LINES {
                return Err(ClientError::Protocol("module list too long".into()));
            }
            lines.push(line);
        }
    }

    /// Upstream: authenticate.c, auth_client().
    fn authenticate(
        &mut self,
        remote: &Remote,
        password: Option<&Password>,
        challenge: &str,
    ) -> Result<(), ClientError> {
        let user = remote
            .user
            .clone()
            .or_else(|| std::env::var("USER").ok())
            .or_else(|| std::env::var("LOGNAME").ok())
            .unwrap_or_else(|| "nobody".to_string());
        let secret = match password {
            Some(p) => read_password(p)?,
            None => {
                return Err(ClientError::Password(format!(
                    "module {} needs a password and none was given",
                    remote.module
                )));
            }
        };
        let digest = choose_client_digest(self.digests.as_deref(), self.protocol)
            .map_err(|e| ClientError::Protocol(e.client_message().to_string()))?;
        let answer = format!("{user} {}\n", response(digest, &secret, challenge));
        self.conn.write_all(answer.as_bytes()).map_err(conn_error)
    }
}

/// The password: a value as given, or a file's first line. Upstream: authenticate.c,
/// getpassf(): the file must not be other-accessible, and root's must be root's.
pub fn read_password(p: &Password) -> Result<Vec<u8>, ClientError> {
    let path = match p {
        Password::Value(v) => return Ok(v.clone()),
        Password::File(path) => path,
    };
    use std::os::unix::fs::MetadataExt;
    let shown = path.display();
    let mut f = std::fs::File::open(path)
        .map_err(|e| ClientError::Password(format!("could not open password file {shown}: {e}")))?;
    let meta = f
        .metadata()
        .map_err(|e| ClientError::Password(format!("stat {shown}: {e}")))?;
    if meta.mode() & 0o006 != 0 {
        return Err(ClientError::Password(format!(
            "password file {shown} must not be other-accessible"
        )));
    }
    if nix::unistd::geteuid().is_root() && meta.uid() != 0 {
        return Err(ClientError::Password(format!(
            "password file {shown} must be owned by root when running as root"
        )));
    }
    // Upstream reads one buffer's worth and stops at the first line end.
    let mut buf = vec![0u8; 512];
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => {
                return Err(ClientError::Password(format!("reading {shown}: {e}")));
            }
        }
    }
    buf.truncate(n);
    let end = buf
        .iter()
        .position(|&b| b == b'\n' || b == b'\r')
        .unwrap_or(buf.len());
    buf.truncate(end);
    Ok(buf)
}

/// Connects to the first address of the host that answers. Upstream: socket.c,
/// open_socket_out().
fn tcp_connect(remote: &Remote, o: &ConnectOptions) -> Result<TcpStream, ClientError> {
    let addrs: Vec<SocketAddr> = (remote.host.as_str(), remote.port)
        .to_socket_addrs()
        .map_err(|e| ClientError::Resolve {
            host: remote.host.clone(),
            reason: e.to_string(),
        })?
        .filter(|a| o.bind.is_none_or(|b| b.is_ipv4() == a.is_ipv4()))
        .collect();
    let mut last = None;
    for addr in addrs {
        match connect_one(addr, o) {
            Ok(s) => return Ok(s),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| ClientError::Resolve {
        host: remote.host.clone(),
        reason: "no usable address".into(),
    }))
}

fn connect_one(addr: SocketAddr, o: &ConnectOptions) -> Result<TcpStream, ClientError> {
    use socket2::{Domain, Socket, Type};
    let fail = |source: std::io::Error| ClientError::Connect {
        addr: addr.to_string(),
        source,
    };
    let sock = Socket::new(Domain::for_address(addr), Type::STREAM, None).map_err(fail)?;
    if let Some(b) = o.bind {
        sock.bind(&SocketAddr::new(b, 0).into()).map_err(fail)?;
    }
    let done = match o.connect_timeout {
        Some(t) => sock.connect_timeout(&addr.into(), t),
        None => sock.connect(&addr.into()),
    };
    match done {
        Ok(()) => Ok(sock.into()),
        Err(e) if e.kind() == std::io::ErrorKind::TimedOut && o.connect_timeout.is_some() => {
            Err(ClientError::Timeout { what: "connect" })
        }
        Err(e) => Err(fail(e)),
    }
}

/// One `\n`-ended line of the daemon's text phase.
fn read_line(conn: &mut Conn) -> Result<String, ClientError> {
    conn.decode(|b| decode_line(b, LINE_MAX))
        .map_err(|e| match e {
            ConnError::Decode(e) => ClientError::Protocol(format!("daemon line: {e}")),
            ConnError::Eof => ClientError::Connection(
                "connection closed by the daemon during the handshake".into(),
            ),
            ConnError::Timeout => ClientError::Timeout { what: "daemon I/O" },
            ConnError::Io(e) => ClientError::Connection(format!("connection error: {e}")),
        })
}

/// A connection failure, as the client reports it.
pub(crate) fn conn_error(e: ConnError) -> ClientError {
    match e {
        ConnError::Timeout => ClientError::Timeout { what: "daemon I/O" },
        ConnError::Eof => ClientError::Connection("connection unexpectedly closed".into()),
        ConnError::Io(e) => ClientError::Connection(format!("connection error: {e}")),
        ConnError::Decode(never) => match never {},
    }
}
