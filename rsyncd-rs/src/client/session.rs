//! A client session past the daemon handshake: the multiplexed streams, what the server
//! says on them (kept for the caller), and the pieces of a session's end every client
//! role shares (the server's statistics, the goodbye). Upstream: main.c, client_run(),
//! handle_stats(), read_final_goodbye().

use std::sync::{Arc, Mutex};

use super::connect::{ConnectOptions, conn_error};
use super::error::ClientError;
use super::setup::client_setup;
use super::url::Remote;
use crate::engine::conn::ConnError;
use crate::engine::exit::ExitCode;
use crate::engine::mux::{Message, MuxReader, MuxWriter, Peer, TextSink};
use crate::engine::session::{ItemEvent, ItemWhat, LogSink, PeerStats};
use crate::engine::setup::Wire;
use crate::protocol::mux::MsgCode;
use crate::protocol::ndx::{NDX_DONE, NdxCodec};
use crate::protocol::options::Options;
use crate::protocol::options::{STOCK_CAPABILITIES, client_info, server_args};
use crate::protocol::{Decoded, WireError};

/// The most server lines a session keeps for its outcome (the rest are counted).
const MAX_KEPT_LINES: usize = 1000;

/// A line the server sent on the multiplexed stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerLine {
    pub code: MsgCode,
    pub text: String,
}

/// A session whose binary set-up is done.
pub struct Session {
    pub reader: MuxReader,
    pub writer: MuxWriter,
    pub wire: Wire,
    pub opts: Options,
    pub motd: Vec<String>,
    pub lines: Arc<Mutex<Vec<ServerLine>>>,
    /// The server's io_error bits (MSG_IO_ERROR, or the end of a list before 30).
    pub io_error: i32,
    /// The connection's byte counters (read, written), from after the set-up.
    pub counters: crate::engine::send::Counters,
    /// What the counters held when the set-up ended.
    pub counted_from: (u64, u64),
    /// The process at the other end of the connection (a connect program, a remote
    /// shell, a local server), reaped when the session is dropped.
    pub child: Option<super::transport::ChildGuard>,
    ndx_out: NdxCodec,
    ndx_in: NdxCodec,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("wire", &self.wire)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// Connects, opens the module with the argument list `o` encodes (`o` is the server's
    /// view: `am_sender` for a pull or a listing), and runs the set-up.
    pub fn start(
        remote: &Remote,
        c: &ConnectOptions,
        mut o: Options,
    ) -> Result<Session, ClientError> {
        let greeted = super::connect::greet(remote, c)?;
        let protocol = greeted.protocol;
        o.client_info = client_info(&o, STOCK_CAPABILITIES);
        let mut args = server_args(&o, protocol);
        args.push(".".into());
        args.push(remote.module_arg());
        let opened = greeted.open(remote, c.password.as_ref(), &args)?;
        let mut conn = opened.conn;
        let wire = client_setup(&mut conn, protocol, &o)?;
        Ok(Session::after_setup(
            conn,
            wire,
            o,
            c,
            opened.motd,
            opened.child,
        ))
    }

    /// Starts a server over a remote shell (or locally: `command` is then our own
    /// binary) with the argument list `o` encodes and `paths` after the `.`, exchanges
    /// protocol versions and runs the set-up. Upstream: main.c, do_cmd(); compat.c,
    /// setup_protocol() with `remote_protocol == 0`.
    pub fn start_shell(
        command: &[String],
        c: &ConnectOptions,
        mut o: Options,
        paths: &[String],
    ) -> Result<Session, ClientError> {
        let ours = c
            .max_protocol
            .clamp(crate::MIN_PROTOCOL_VERSION, crate::PROTOCOL_VERSION);
        o.client_info = client_info(&o, STOCK_CAPABILITIES);
        let mut argv = command.to_vec();
        argv.extend(server_args(&o, ours));
        argv.push(".".into());
        argv.extend(paths.iter().cloned());
        let (mut conn, child) = super::transport::spawn_server(&argv)?;
        conn.set_idle_timeout(c.io_timeout);
        let mut out = Vec::new();
        crate::protocol::codec::put_int(&mut out, ours);
        conn.write_all(&out).map_err(conn_error)?;
        let theirs = conn
            .decode(|b| Ok::<_, WireError>(crate::protocol::codec::get_int(b)))
            .map_err(|e| match e {
                ConnError::Eof => ClientError::Connection(
                    "connection unexpectedly closed (the remote shell or server failed)".into(),
                ),
                ConnError::Timeout => ClientError::Timeout {
                    what: "remote shell I/O",
                },
                other => ClientError::Connection(other.to_string()),
            })?;
        if !(crate::MIN_PROTOCOL_VERSION..=crate::PROTOCOL_VERSION + 10).contains(&theirs) {
            return Err(ClientError::Protocol(format!(
                "protocol version mismatch -- is your shell clean? (server sent {theirs})"
            )));
        }
        let protocol = theirs.min(ours);
        let wire = client_setup(&mut conn, protocol, &o)?;
        Ok(Session::after_setup(
            conn,
            wire,
            o,
            c,
            Vec::new(),
            Some(child),
        ))
    }

    fn after_setup(
        conn: crate::engine::conn::Conn,
        mut wire: Wire,
        o: Options,
        c: &ConnectOptions,
        motd: Vec<String>,
        child: Option<super::transport::ChildGuard>,
    ) -> Session {
        let mut conn = conn;
        let protocol = wire.protocol;
        conn.tx.set_rate_limit(
            o.bwlimit
                .and_then(crate::engine::conn::RateLimit::kib_per_sec),
        );
        wire.io_timeout = c
            .io_timeout
            .map_or(0, |t| t.as_secs().clamp(1, i32::MAX as u64) as i32);
        let counters = conn.counters();
        let load = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
        let counted_from = (load(&counters.0), load(&counters.1));
        let (rx, tx) = conn.into_halves();
        // The server frames its output from protocol 23, a client from 30.
        let mut reader = MuxReader::with_peer(rx, true, Peer::Server);
        let lines: Arc<Mutex<Vec<ServerLine>>> = Arc::default();
        let sink = lines.clone();
        reader.set_text_sink(TextSink::new(move |code, text| {
            if code == MsgCode::Noop {
                return;
            }
            let mut l = sink
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if l.len() < MAX_KEPT_LINES {
                l.push(ServerLine {
                    code,
                    text: String::from_utf8_lossy(text).trim_end().to_string(),
                });
            }
        }));
        let writer = MuxWriter::new(tx, protocol >= 30, protocol);
        Session {
            reader,
            writer,
            wire,
            opts: o,
            motd,
            lines,
            io_error: 0,
            counters,
            counted_from,
            child,
            ndx_out: NdxCodec::new(protocol),
            ndx_in: NdxCodec::new(protocol),
        }
    }

    pub fn protocol(&self) -> i32 {
        self.wire.protocol
    }

    /// Appends an index to the data stream.
    pub fn write_ndx(&mut self, ndx: i32) -> Result<(), ClientError> {
        let mut out = Vec::new();
        self.ndx_out.encode(ndx, &mut out);
        self.writer.data(&out).map_err(conn_error)
    }

    pub fn flush(&mut self) -> Result<(), ClientError> {
        self.writer.flush().map_err(conn_error)
    }

    /// Reads one index from the server.
    pub fn read_ndx(&mut self) -> Result<i32, ClientError> {
        let codec = &mut self.ndx_in;
        let ndx = self
            .reader
            .decode(|b| codec.decode(b))
            .map_err(|e| self.read_error(e))?;
        self.check_messages()?;
        Ok(ndx)
    }

    /// Reads an index that must be NDX_DONE.
    pub fn expect_done(&mut self, when: &str) -> Result<(), ClientError> {
        match self.read_ndx()? {
            NDX_DONE => Ok(()),
            other => Err(ClientError::Protocol(format!(
                "expected the end of a phase {when}, got index {other}"
            ))),
        }
    }

    /// Runs a decoder over the data stream.
    pub fn decode<T>(
        &mut self,
        f: impl FnMut(&[u8]) -> Result<Decoded<T>, WireError>,
    ) -> Result<T, ClientError> {
        let v = self.reader.decode(f).map_err(|e| self.read_error(e))?;
        self.check_messages()?;
        Ok(v)
    }

    /// Acts on the server's queued messages: an error exit ends the session.
    fn check_messages(&mut self) -> Result<(), ClientError> {
        for m in self.reader.take_messages() {
            match m {
                Message::ErrorExit(code) => {
                    return Err(self.server_failed(code.map_or(ExitCode::PARTIAL, ExitCode)));
                }
                Message::IoError(bits) => self.io_error |= bits,
                _ => {}
            }
        }
        Ok(())
    }

    /// The server's error lines so far.
    pub fn error_lines(&self) -> Vec<String> {
        self.lines
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .filter(|l| {
                matches!(
                    l.code,
                    MsgCode::Error | MsgCode::ErrorXfer | MsgCode::Warning
                )
            })
            .map(|l| l.text.clone())
            .collect()
    }

    fn server_failed(&self, code: ExitCode) -> ClientError {
        ClientError::Transfer {
            code,
            messages: self.error_lines(),
        }
    }

    /// A read that failed: the server's own account of why, when it gave one.
    pub fn read_error(&self, e: ConnError<WireError>) -> ClientError {
        if let Some(code) = self.reader.peer_exit() {
            return self.server_failed(code.map_or(ExitCode::PARTIAL, ExitCode));
        }
        match e {
            ConnError::Decode(w) => ClientError::Protocol(w.to_string()),
            ConnError::Eof => {
                let lines = self.error_lines();
                if lines.is_empty() {
                    ClientError::Connection("connection unexpectedly closed".into())
                } else {
                    // The server said why before it closed (a fatal error: exit 12 as
                    // stock's client reports it).
                    ClientError::Transfer {
                        code: ExitCode::STREAMIO,
                        messages: lines,
                    }
                }
            }
            ConnError::Timeout => ClientError::Timeout { what: "daemon I/O" },
            ConnError::Io(e) => ClientError::Connection(format!("connection error: {e}")),
        }
    }

    /// The sending server's statistics. Upstream: main.c, handle_stats() on a receiving
    /// client.
    pub fn read_stats(&mut self) -> Result<PeerStats, ClientError> {
        let protocol = self.wire.protocol;
        self.decode(|b| crate::protocol::stats::decode_stats(b, protocol))
    }

    /// The end of a session whose server sent: after its statistics, our goodbye, and
    /// from protocol 31 its echo and our last one. Upstream: main.c, do_recv() and
    /// read_final_goodbye() as a receiving client.
    pub fn goodbye_as_receiver(&mut self) -> Result<(), ClientError> {
        let protocol = self.wire.protocol;
        if protocol >= 31 {
            // The server's echo of the late-delete NDX_DONE we sent with the phase ends.
            self.flush()?;
            self.expect_done("at the goodbye")?;
        }
        if protocol >= 24 {
            self.write_ndx(NDX_DONE)?;
        }
        self.flush()
    }

    /// The exit code the session ends with: partial when the server reported errors.
    pub fn outcome_code(&self) -> ExitCode {
        let io_error = self.io_error;
        let lines = self
            .lines
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if io_error & 2 != 0
            && !lines
                .iter()
                .any(|l| l.code != MsgCode::Warning && l.code != MsgCode::Info)
        {
            ExitCode::VANISHED
        } else if io_error != 0
            || lines
                .iter()
                .any(|l| matches!(l.code, MsgCode::Error | MsgCode::ErrorXfer))
        {
            ExitCode::PARTIAL
        } else {
            ExitCode::OK
        }
    }
}

/// The other side of a session: a daemon's module, or a server started by a command
/// (a remote shell's `ssh HOST rsync`, our own binary for a local copy) with the path on
/// its side.
#[derive(Debug, Clone, Copy)]
pub enum Endpoint<'a> {
    Daemon(&'a Remote),
    Shell {
        command: &'a [String],
        path: &'a str,
    },
}

impl Endpoint<'_> {
    /// Starts the session: `o` is the server's view of the options.
    pub(super) fn open(self, c: &ConnectOptions, o: Options) -> Result<Session, ClientError> {
        match self {
            Endpoint::Daemon(remote) => {
                if remote.module.is_empty() {
                    return Err(ClientError::Options(
                        "a transfer needs a module name".into(),
                    ));
                }
                Session::start(remote, c, o)
            }
            Endpoint::Shell { command, path } => {
                Session::start_shell(command, c, o, &[path.to_string()])
            }
        }
    }
}

/// Lines our roles address to the user, and what became of each entry, kept for the
/// outcome.
#[derive(Default)]
pub(super) struct Collected(
    Mutex<Vec<ServerLine>>,
    Mutex<std::collections::BTreeMap<Vec<u8>, ItemWhat>>,
    Option<super::connect::Progress>,
);

impl std::fmt::Debug for Collected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Collected")
    }
}

impl Collected {
    /// The lines so far.
    pub(super) fn lines(&self) -> Vec<ServerLine> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    pub(super) fn push(&self, code: MsgCode, text: &str) {
        let mut l = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if l.len() < 10_000 {
            for line in text.lines() {
                l.push(ServerLine {
                    code,
                    text: line.to_string(),
                });
            }
        }
    }
}

impl LogSink for Collected {
    fn line(&self, _text: &str) {
        // The roles' daemon-log lines ("receiving file list", ...) have no reader here.
    }

    fn item(&self, ev: &ItemEvent) {
        if let Some(p) = &self.2 {
            p(ev);
        }
        let mut m = self
            .1
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // What says most about an entry stays: a failure over a send over an update over
        // a deletion over being listed.
        let rank = |w: &ItemWhat| match w {
            ItemWhat::Failed(_) => 4,
            ItemWhat::Sent => 3,
            ItemWhat::Updated => 2,
            ItemWhat::Deleted => 1,
            ItemWhat::Listed => 0,
        };
        match m.get(&ev.name) {
            Some(old) if rank(old) >= rank(&ev.what) => {}
            _ => {
                m.insert(ev.name.clone(), ev.what.clone());
            }
        }
    }
}

impl Collected {
    /// A collector the writer's local texts go to (see [`MuxWriter::keep_texts_local`]),
    /// telling `progress` of each entry too.
    pub(super) fn kept_from(
        writer: &mut MuxWriter,
        progress: Option<super::connect::Progress>,
    ) -> Arc<Collected> {
        let ours = Arc::new(Collected::with_progress(progress));
        let sink = ours.clone();
        writer.keep_texts_local(TextSink::new(move |code, text| {
            sink.push(code, &String::from_utf8_lossy(text));
        }));
        ours
    }

    /// A collector that also tells `progress` of each entry.
    pub(super) fn with_progress(progress: Option<super::connect::Progress>) -> Collected {
        Collected(Mutex::default(), Mutex::default(), progress)
    }

    /// Marks the entries the error lines among `lines` name as failed, with the line as
    /// the reason: a receiving server tells what it could not do only as text (see
    /// [`super::blame`]). `dest` is the destination directory the client asked for.
    pub(super) fn blame(&self, lines: &[ServerLine], dest: &str) {
        let mut m = self
            .1
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for l in lines {
            if !matches!(l.code, MsgCode::Error | MsgCode::ErrorXfer) {
                continue;
            }
            if let Some(name) = super::blame::blamed(&l.text, dest, &m).map(<[u8]>::to_vec)
                && !matches!(m.get(&name), Some(ItemWhat::Failed(_)))
            {
                m.insert(name, ItemWhat::Failed(l.text.clone()));
            }
        }
    }

    /// What became of each entry, by name.
    pub(super) fn items(&self) -> Vec<(Vec<u8>, ItemWhat)> {
        self.1
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

/// The end every client transfer shares: the server's lines and ours in one list, the
/// exit code (the remote shell's own failure, or partial when errors were reported on a
/// session that otherwise ended well), or the typed error of a session that failed.
pub(super) fn finish<T>(
    result: Result<T, crate::engine::error::EngineError>,
    server_code: Option<i32>,
    server_lines: &Mutex<Vec<ServerLine>>,
    ours: &Collected,
) -> Result<(T, impl Fn(ExitCode) -> ExitCode, Vec<ServerLine>), ClientError> {
    let mut lines = server_lines
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    lines.extend(ours.lines());
    let errors = lines
        .iter()
        .any(|l| matches!(l.code, MsgCode::Error | MsgCode::ErrorXfer));
    match result {
        Ok(out) => {
            let code = move |engine: ExitCode| match (engine, server_code) {
                (ExitCode::OK, Some(c)) if c != 0 => ExitCode(c),
                (ExitCode::OK, _) if errors => ExitCode::PARTIAL,
                (c, _) => c,
            };
            Ok((out, code, lines))
        }
        Err(e) => Err(ClientError::Transfer {
            code: e.code(),
            messages: lines
                .iter()
                .map(|l| l.text.clone())
                .chain(std::iter::once(e.to_string()))
                .collect(),
        }),
    }
}
