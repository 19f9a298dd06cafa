//! A scripted daemon for the hostile-server cases: one session on 127.0.0.1, spoken by
//! hand as far as a script needs. The handshake is a 3.5.0 daemon's at protocol 31 with
//! no password, no incremental recursion and no name negotiation (compat flags 0, so the
//! checksum is protocol 31's implied MD5 and file-list flags are bytes); after it, the
//! script writes MSG_DATA frames and reads the client's frames. Upstream: clientserver.c,
//! rsync_module(); compat.c, setup_protocol(); io.c, the multiplexed stream.
//!
//! The thread never panics: a script that cannot go on (the client hung up, as it should
//! when it refuses something) returns an error, which is recorded in the transcript.

use std::fmt::Display;
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::thread::JoinHandle;
use std::time::Duration;

use rsyncd_rs::protocol::checksum::{ChecksumSpec, FileSum};
use rsyncd_rs::protocol::codec::{get_int, put_int, put_shortint, put_varint, put_varlong};
use rsyncd_rs::protocol::flist::{
    FileEntry, FlistConfig, FlistDecoder, FlistEncoder, FlistItem, mode, sort_and_clean, xmit,
};
use rsyncd_rs::protocol::mux::{MsgCode, decode_mux_header, put_frame};
use rsyncd_rs::protocol::ndx::{NDX_DONE, NdxCodec, iflags};
use rsyncd_rs::protocol::request::{Request, RequestDecoder};
use rsyncd_rs::protocol::sums::{SumHead, decode_sum_head, encode_sum_head};
use rsyncd_rs::protocol::{Decoded, WireError};

/// The protocol the daemon offers (the client offers 32 and so speaks 31).
pub const PROTOCOL: i32 = 31;
/// The checksum seed the daemon sends.
pub const SEED: i32 = 0x1234_5678;
/// A modification time for listed entries.
pub const T0: i64 = 1_600_000_000;
/// How long the daemon waits for the client before it gives up on it.
const PEER_WAIT: Duration = Duration::from_secs(15);

/// What the client did in a session.
#[derive(Debug, Default)]
pub struct Transcript {
    /// The argument list it sent.
    pub args: Vec<String>,
    /// The indexes it asked for with ITEM_TRANSFER (a pull's generator).
    pub requested: Vec<i32>,
    /// Every data byte it sent after the set-up.
    pub data: Vec<u8>,
    /// It sent MSG_ERROR_EXIT.
    pub error_exit: bool,
    /// Why the script stopped early (the client hanging up is the usual reason).
    pub stopped: Option<String>,
}

/// A scripted session waiting for the client.
pub struct Scripted {
    pub port: u16,
    handle: JoinHandle<Transcript>,
}

impl Scripted {
    /// Listens on a free port of 127.0.0.1 and runs `script` on the first connection after
    /// the handshake; then reads what the client still sends until it hangs up.
    pub fn start(script: impl FnOnce(&mut Peer) -> io::Result<()> + Send + 'static) -> Scripted {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = listener.local_addr().expect("local address").port();
        let handle = std::thread::spawn(move || {
            let stream = match listener.accept() {
                Ok((s, _)) => s,
                Err(e) => {
                    return Transcript {
                        stopped: Some(format!("accept: {e}")),
                        ..Transcript::default()
                    };
                }
            };
            let mut peer = Peer::new(stream);
            if let Err(e) = peer.handshake().and_then(|()| script(&mut peer)) {
                peer.t.stopped = Some(e.to_string());
            }
            peer.drain();
            peer.t
        });
        Scripted { port, handle }
    }

    /// Waits for the session to end and returns what the client did.
    pub fn finish(self) -> Transcript {
        self.handle.join().expect("the scripted daemon's thread")
    }
}

/// The daemon's end of the connection.
pub struct Peer {
    s: TcpStream,
    /// Bytes read and not parsed yet.
    raw: Vec<u8>,
    /// The client's data stream, not consumed yet.
    data: Vec<u8>,
    requests: RequestDecoder,
    ndx_out: NdxCodec,
    hung_up: bool,
    pub t: Transcript,
}

impl Peer {
    fn new(s: TcpStream) -> Peer {
        let _ = s.set_read_timeout(Some(PEER_WAIT));
        let _ = s.set_nodelay(true);
        Peer {
            s,
            raw: Vec::new(),
            data: Vec::new(),
            requests: RequestDecoder::new(PROTOCOL),
            ndx_out: NdxCodec::new(PROTOCOL),
            hung_up: false,
            t: Transcript::default(),
        }
    }

    fn read_more(&mut self) -> io::Result<()> {
        let mut buf = [0u8; 64 * 1024];
        let n = self.s.read(&mut buf)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the client hung up",
            ));
        }
        self.raw.extend_from_slice(&buf[..n]);
        Ok(())
    }

    /// Bytes up to `end` (which is dropped), from the unframed handshake.
    fn until(&mut self, end: u8) -> io::Result<Vec<u8>> {
        loop {
            if let Some(i) = self.raw.iter().position(|&b| b == end) {
                let mut got: Vec<u8> = self.raw.drain(..=i).collect();
                got.pop();
                return Ok(got);
            }
            self.read_more()?;
        }
    }

    /// Greeting, module, `@RSYNCD: OK`, the argument list, compat flags and seed.
    fn handshake(&mut self) -> io::Result<()> {
        self.send_raw(format!("@RSYNCD: {PROTOCOL}.0\n").as_bytes())?;
        let greeting = self.until(b'\n')?;
        if !greeting.starts_with(b"@RSYNCD: ") {
            return Err(io::Error::other("the client did not greet"));
        }
        self.until(b'\n')?;
        self.send_raw(b"@RSYNCD: OK\n")?;
        // From protocol 30 the arguments are NUL-ended; an empty one ends the list.
        loop {
            let arg = self.until(0)?;
            if arg.is_empty() {
                break;
            }
            self.t.args.push(String::from_utf8_lossy(&arg).into_owned());
        }
        let mut out = Vec::new();
        put_varint(&mut out, 0);
        put_int(&mut out, SEED);
        self.send_raw(&out)
    }

    /// Reads frames until more data arrives; the client's messages are noted or dropped.
    fn fill_data(&mut self) -> io::Result<()> {
        loop {
            let header = match decode_mux_header(&self.raw) {
                Ok(Decoded::Done { value, .. }) if self.raw.len() >= 4 + value.len => value,
                Ok(_) => {
                    self.read_more()?;
                    continue;
                }
                Err(e) => return Err(io::Error::other(format!("client frame: {e}"))),
            };
            let payload: Vec<u8> = self.raw.drain(..4 + header.len).skip(4).collect();
            match header.code {
                MsgCode::Data => {
                    self.t.data.extend_from_slice(&payload);
                    self.data.extend_from_slice(&payload);
                    if !payload.is_empty() {
                        return Ok(());
                    }
                }
                MsgCode::ErrorExit => {
                    self.t.error_exit = true;
                    return Err(io::Error::other("the client sent MSG_ERROR_EXIT"));
                }
                _ => {}
            }
        }
    }

    /// Runs a decoder over the client's data stream.
    pub fn decode<T, E: Display>(
        &mut self,
        mut f: impl FnMut(&[u8]) -> Result<Decoded<T>, E>,
    ) -> io::Result<T> {
        loop {
            match f(&self.data).map_err(|e| io::Error::other(e.to_string()))? {
                Decoded::Done { value, used } => {
                    self.data.drain(..used);
                    return Ok(value);
                }
                Decoded::Needed(_) => self.fill_data()?,
            }
        }
    }

    /// Reads the filter list a pulling client sends first (its rules, each a length and
    /// the text, then an int 0), ignores the rules, and sends `list`. Upstream: main.c,
    /// do_server_sender().
    pub fn start_pull(&mut self, list: &[u8]) -> io::Result<()> {
        loop {
            let len = self.decode(|b| Ok::<_, WireError>(get_int(b)))?;
            if len == 0 {
                break;
            }
            let n = usize::try_from(len).map_err(|_| io::Error::other("bad rule length"))?;
            if n > 4096 {
                return Err(io::Error::other(format!("filter rule of {n} bytes")));
            }
            self.decode(|b| {
                Ok::<_, WireError>(if b.len() >= n {
                    Decoded::Done { value: (), used: n }
                } else {
                    Decoded::Needed(n - b.len())
                })
            })?;
        }
        self.send_data(list)
    }

    /// Reads requests up to the first transfer request and returns its index (the
    /// others are echoed).
    pub fn await_transfer_request(&mut self) -> io::Result<i32> {
        loop {
            match self.read_request()? {
                Some((ndx, flags)) if flags & iflags::TRANSFER != 0 => return Ok(ndx),
                Some((ndx, flags)) => {
                    let mut out = self.ndx(ndx);
                    put_shortint(&mut out, flags as u16);
                    self.send_data(&out)?;
                }
                None => return Err(io::Error::other("no transfer request")),
            }
        }
    }

    /// Reads the client's data stream until `needle` went by (or the client stops).
    pub fn await_data(&mut self, needle: &[u8]) -> io::Result<()> {
        while !self.t.data.windows(needle.len()).any(|w| w == needle) {
            self.fill_data()?;
        }
        Ok(())
    }

    /// Reads a pushing client's file list (of a `-rlt` session) and returns its names
    /// in the order indexes refer to them (sorted as both sides sort).
    pub fn read_pushed_list(&mut self) -> io::Result<Vec<Vec<u8>>> {
        let mut dec = FlistDecoder::new(list_config(false));
        let mut entries: Vec<FileEntry> = Vec::new();
        while let FlistItem::Entry(e) = self.decode(|b| dec.decode(b, &entries, 0))? {
            entries.push(*e);
        }
        let (sorted, _) = sort_and_clean(entries, PROTOCOL);
        Ok(sorted.into_iter().map(|e| e.name).collect())
    }

    /// Sends a receiver's request for `ndx`: the index, `flags` and a whole-file sum head.
    /// Upstream: generator.c, recv_generator() and write_sum_head().
    pub fn request(&mut self, ndx: i32, flags: u32) -> io::Result<()> {
        let mut out = self.ndx(ndx);
        put_shortint(&mut out, flags as u16);
        encode_sum_head(&mut out, &SumHead::WHOLE_FILE, PROTOCOL);
        self.send_data(&out)
    }

    /// Reads a generator's request: `None` for NDX_DONE, else the index and item flags
    /// (its sum head and block sums are read past). Indexes asked for with ITEM_TRANSFER
    /// are recorded.
    pub fn read_request(&mut self) -> io::Result<Option<(i32, u32)>> {
        let mut dec = self.requests;
        let req = self.decode(|b| dec.decode(b))?;
        self.requests = dec;
        let (ndx, flags) = match req {
            Request::Done => return Ok(None),
            Request::File { ndx, iflags, .. } => (ndx, iflags),
            other => return Err(io::Error::other(format!("unexpected request {other:?}"))),
        };
        if flags & iflags::TRANSFER != 0 {
            let head = self.decode(|b| decode_sum_head(b, PROTOCOL, 16))?;
            let n = head.sums_wire_len();
            self.decode(|b| {
                Ok::<_, WireError>(if b.len() >= n {
                    Decoded::Done { value: (), used: n }
                } else {
                    Decoded::Needed(n - b.len())
                })
            })?;
            self.t.requested.push(ndx);
        }
        Ok(Some((ndx, flags)))
    }

    pub fn send_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.s.write_all(bytes)
    }

    /// Sends `bytes` as MSG_DATA frames.
    pub fn send_data(&mut self, bytes: &[u8]) -> io::Result<()> {
        let mut out = Vec::new();
        put_frame(&mut out, MsgCode::Data, bytes);
        self.send_raw(&out)
    }

    /// An index as this stream's next one (protocol 30's difference coding).
    pub fn ndx(&mut self, ndx: i32) -> Vec<u8> {
        let mut out = Vec::new();
        self.ndx_out.encode(ndx, &mut out);
        out
    }

    /// A sender's answer to a transfer request: the index and ITEM_TRANSFER echoed, a
    /// whole-file sum head, `content` as one literal run, the end token and the file's
    /// MD5. Upstream: sender.c, send_files().
    pub fn file_data(&mut self, ndx: i32, content: &[u8]) -> Vec<u8> {
        let mut out = self.ndx(ndx);
        put_shortint(&mut out, iflags::TRANSFER as u16);
        encode_sum_head(&mut out, &SumHead::WHOLE_FILE, PROTOCOL);
        if !content.is_empty() {
            put_int(&mut out, content.len() as i32);
            out.extend_from_slice(content);
        }
        put_int(&mut out, 0);
        out.extend_from_slice(&md5_of(content));
        out
    }

    /// Plays a sender to the end of the session: each transfer request is answered with
    /// `content(ndx)`, then `after(peer, ndx)` runs; other items are echoed; the phase ends
    /// are answered as a protocol-31 sender does (two echoes, the third NDX_DONE with the
    /// statistics, the goodbye echoed). Upstream: sender.c, send_files(); main.c,
    /// handle_stats(), read_final_goodbye().
    pub fn serve(
        &mut self,
        content: impl Fn(i32) -> Vec<u8>,
        mut after: impl FnMut(&mut Peer, i32) -> io::Result<()>,
    ) -> io::Result<()> {
        let mut dones = 0;
        loop {
            match self.read_request()? {
                None => {
                    dones += 1;
                    let mut out = self.ndx(NDX_DONE);
                    match dones {
                        1 | 2 | 4 => {}
                        3 => {
                            for _ in 0..5 {
                                put_varlong(&mut out, 0, 3);
                            }
                        }
                        // The goodbye: a sender exits here.
                        _ => {
                            self.hang_up();
                            return Ok(());
                        }
                    }
                    self.send_data(&out)?;
                }
                Some((ndx, flags)) if flags & iflags::TRANSFER != 0 => {
                    let out = self.file_data(ndx, &content(ndx));
                    self.send_data(&out)?;
                    after(self, ndx)?;
                }
                Some((ndx, flags)) => {
                    let mut out = self.ndx(ndx);
                    put_shortint(&mut out, flags as u16);
                    self.send_data(&out)?;
                }
            }
        }
    }

    /// Closes the connection now.
    pub fn hang_up(&mut self) {
        let _ = self.s.shutdown(Shutdown::Both);
        self.hung_up = true;
    }

    /// Reads what the client still sends until it hangs up, answering its MSG_ERROR_EXIT
    /// with an empty one as a stock server does (its drain then ends at once).
    fn drain(&mut self) {
        if self.hung_up {
            return;
        }
        while !self.t.error_exit {
            match self.fill_data() {
                Ok(()) => self.data.clear(),
                Err(_) => break,
            }
        }
        if self.t.error_exit {
            let mut out = Vec::new();
            put_frame(&mut out, MsgCode::ErrorExit, &[]);
            let _ = self.send_raw(&out);
            let mut rest = Vec::new();
            let _ = self.s.read_to_end(&mut rest);
        }
    }
}

/// The whole-file sum protocol 31 implies without negotiation (MD5, unseeded).
pub fn md5_of(content: &[u8]) -> Vec<u8> {
    let spec = ChecksumSpec::for_transfer(None, SEED, PROTOCOL, false).expect("md5");
    let mut sum = FileSum::new(&spec);
    sum.update(content);
    sum.finish().to_vec()
}

/// The file-list settings of a `-rlt` session (with `-R` when `relative`).
pub fn list_config(relative: bool) -> FlistConfig {
    FlistConfig {
        protocol: PROTOCOL,
        safe_flist: true,
        preserve_links: true,
        relative,
        ..FlistConfig::default()
    }
}

/// A list as a sender encodes it, with its end.
pub fn encode_list(entries: &[FileEntry], relative: bool) -> Vec<u8> {
    let mut out = encode_entries(entries, relative);
    // The end of a list without an I/O error is one 0 byte whatever the encoder's state.
    out.push(0);
    out
}

/// Entries as a sender encodes them, without the list's end (for a list that goes on
/// with bytes written by hand).
pub fn encode_entries(entries: &[FileEntry], relative: bool) -> Vec<u8> {
    let mut enc = FlistEncoder::new(list_config(relative));
    let mut out = Vec::new();
    for e in entries {
        enc.encode(e, 0, false, &mut out).expect("encode an entry");
    }
    out
}

pub fn dir(name: &str) -> FileEntry {
    FileEntry {
        name: name.as_bytes().to_vec(),
        mode: mode::S_IFDIR | 0o755,
        mtime: T0,
        xflags: if name == "." { xmit::TOP_DIR } else { 0 },
        ..FileEntry::default()
    }
}

pub fn file(name: &str, size: i64) -> FileEntry {
    FileEntry {
        name: name.as_bytes().to_vec(),
        mode: mode::S_IFREG | 0o644,
        size,
        mtime: T0,
        ..FileEntry::default()
    }
}

pub fn symlink(name: &str, target: &str) -> FileEntry {
    FileEntry {
        name: name.as_bytes().to_vec(),
        mode: mode::S_IFLNK | 0o777,
        size: target.len() as i64,
        mtime: T0,
        link_target: Some(target.as_bytes().to_vec()),
        ..FileEntry::default()
    }
}
