//! Multiplexed I/O over the connection halves: the reader separates the data stream from
//! messages, the writer frames data and messages (upstream: io.c read_a_msg(),
//! perform_io(), send_msg(), mplex_write()).

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use super::conn::{ConnError, ConnIn, ConnOut};
use crate::protocol::codec::get_int;
use crate::protocol::mux::{MsgCode, decode_mux_header, put_frame, put_mux_header};
use crate::protocol::{Decoded, WireError};

/// A message that arrived between data frames.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// Text for our log (errors, warnings, info from the peer).
    Text(MsgCode, Vec<u8>),
    /// The sender's io_error bits.
    IoError(i32),
    /// The sender could not open this index.
    NoSend(i32),
    /// The peer is exiting with this code (or asks us to, when empty).
    ErrorExit(Option<i32>),
    /// A received file (for `--remove-source-files`).
    Success(i32),
    /// A name deleted by the receiving side.
    Deleted(Vec<u8>),
    /// A daemon's `timeout`, in seconds, sent to its client from protocol 31 on; see
    /// [`adopted_io_timeout`]. Only a reader of a server takes it.
    IoTimeout(i32),
}

/// Whose output a reader reads, which decides what the peer may send. Over the
/// connection the two differ only in MSG_IO_TIMEOUT, which a daemon sends its client; the
/// sibling-only codes (MSG_REDO, MSG_STATS, MSG_LOG, ...) are refused either way.
/// Upstream: io.c, read_a_msg(), by am_server and am_generator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Peer {
    /// A client writes; we are the server.
    #[default]
    Client,
    /// A server writes; we are its client.
    Server,
}

/// The timeout a client runs with after its server sent MSG_IO_TIMEOUT `offered`, given
/// its own `ours` (0 for none): the server's when it is shorter. A server may only
/// tighten the client's timeout, and values outside 1 to 86400 seconds are ignored (they
/// would switch it off or overflow it). Upstream: io.c, read_a_msg().
pub fn adopted_io_timeout(ours: u32, offered: i32) -> u32 {
    match u32::try_from(offered) {
        Ok(t @ 1..=86_400) if ours == 0 || ours > t => t,
        _ => ours,
    }
}

/// Why reading the data stream stopped.
pub type ReadError = ConnError<WireError>;

/// The most memory messages may take while they wait for [`MuxReader::take_messages`]
/// (payload bytes plus [`MESSAGE_OVERHEAD`] each). Upstream handles each message as it
/// reads it; here they queue while a decode runs, and a file list can take long, so a peer
/// sending messages and no data could otherwise grow the queue without end. 16 MiB is
/// over 100 000 error lines. Past it, texts are dropped and counted (the count is reported
/// when the queue is taken); any other message ends the session, since a well-behaved
/// peer sends those only in reply to what we send between takes.
pub const MAX_QUEUED_MESSAGE_BYTES: usize = 16 << 20;

/// What a queued message costs besides its payload (the enum and the vector header).
const MESSAGE_OVERHEAD: usize = 64;

/// What takes one of the peer's texts: its code and its bytes.
type TextFn = dyn FnMut(MsgCode, &[u8]) + Send;

/// Where the peer's texts go as they arrive, instead of waiting in the queue.
pub struct TextSink(Box<TextFn>);

impl TextSink {
    pub fn new(f: impl FnMut(MsgCode, &[u8]) + Send + 'static) -> TextSink {
        TextSink(Box::new(f))
    }
}

impl std::fmt::Debug for TextSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TextSink")
    }
}

/// The reading side: multiplexed (frames) or raw bytes, with a data buffer decoders run on.
#[derive(Debug)]
pub struct MuxReader {
    conn: ConnIn,
    /// Who writes what we read.
    peer: Peer,
    muxed: bool,
    data: Vec<u8>,
    pos: usize,
    /// Data bytes consumed so far (for `%b` in the transfer log).
    consumed: u64,
    /// The peer sent MSG_ERROR_EXIT (with its code, if any): it sends nothing more.
    peer_exit: Option<Option<i32>>,
    /// Messages seen since the caller last took them.
    pub messages: Vec<Message>,
    /// What `messages` holds, counted as [`MAX_QUEUED_MESSAGE_BYTES`] counts it.
    queued_bytes: usize,
    /// Texts dropped because the queue was full, since the last take.
    dropped_texts: u64,
    /// Takes texts at once when set (upstream handles each message as it reads it).
    text_sink: Option<TextSink>,
    /// Flushed before every read that would wait for the peer (see
    /// [`MuxReader::flush_before_waiting`]).
    flush_on_wait: Option<SharedWriter>,
}

impl MuxReader {
    /// Wraps the input half a client writes to (a server's reader); `muxed` says whether
    /// the peer frames its output.
    pub fn new(conn: ConnIn, muxed: bool) -> MuxReader {
        MuxReader::with_peer(conn, muxed, Peer::Client)
    }

    /// Wraps the input half `peer` writes to: [`Peer::Server`] for a client's reader.
    pub fn with_peer(conn: ConnIn, muxed: bool, peer: Peer) -> MuxReader {
        MuxReader {
            conn,
            peer,
            muxed,
            data: Vec::new(),
            pos: 0,
            consumed: 0,
            peer_exit: None,
            messages: Vec::new(),
            queued_bytes: 0,
            dropped_texts: 0,
            text_sink: None,
            flush_on_wait: None,
        }
    }

    /// Flushes `writer` whenever a read would wait for the peer, and only then: what we
    /// wrote may be what the peer waits for, but while its next input is already here
    /// our output can keep filling the buffer (upstream's io.c flushes when it would
    /// block). A sender answering many small requests then writes in large pieces.
    pub fn flush_before_waiting(&mut self, writer: SharedWriter) {
        self.flush_on_wait = Some(writer);
    }

    /// Reads more of the connection, flushing first when asked to (see
    /// [`MuxReader::flush_before_waiting`]).
    fn conn_fill(&mut self) -> Result<(), ReadError> {
        if let Some(w) = &self.flush_on_wait {
            lock(w).flush().map_err(ConnError::widen)?;
        }
        self.conn.fill().map_err(ConnError::widen)?;
        Ok(())
    }

    /// Switches between frames and raw bytes, at a frame boundary (before protocol 31 a
    /// client sends `--files-from` names unframed on a multiplexed stream).
    pub fn set_muxed(&mut self, muxed: bool) {
        self.muxed = muxed;
    }

    /// Sends the peer's texts to `sink` as they arrive rather than queueing them, so
    /// that one sent while we wait for data is not lost when the peer then goes away.
    pub fn set_text_sink(&mut self, sink: TextSink) {
        self.text_sink = Some(sink);
    }

    /// Who writes what this reader reads.
    pub fn peer(&self) -> Peer {
        self.peer
    }

    /// The input half (for timeouts).
    pub fn conn_mut(&mut self) -> &mut ConnIn {
        &mut self.conn
    }

    /// Data bytes available without reading.
    pub fn buffered(&self) -> &[u8] {
        &self.data[self.pos..]
    }

    /// Data bytes consumed since the reader was made.
    pub fn consumed(&self) -> u64 {
        self.consumed
    }

    /// Marks data bytes as consumed.
    pub fn consume(&mut self, n: usize) {
        let n = n.min(self.data.len() - self.pos);
        self.consumed += n as u64;
        self.pos += n;
        if self.pos == self.data.len() {
            self.data.clear();
            self.pos = 0;
        }
    }

    /// Whether (and with what code) the peer announced its exit with MSG_ERROR_EXIT.
    pub fn peer_exit(&self) -> Option<Option<i32>> {
        self.peer_exit
    }

    /// Reads until more data bytes are available (messages are queued on the way). After
    /// the peer's MSG_ERROR_EXIT no data will come: that read returns, and the next one
    /// fails as if the connection had closed.
    pub fn fill(&mut self) -> Result<(), ReadError> {
        if self.peer_exit.is_some() {
            return Err(ConnError::Eof);
        }
        if self.pos > 0 {
            self.data.drain(..self.pos);
            self.pos = 0;
        }
        if !self.muxed {
            if self.conn.buffered().is_empty() {
                self.conn_fill()?;
            }
            let n = self.conn.buffered().len();
            self.data.extend_from_slice(self.conn.buffered());
            self.conn.consume(n);
            return Ok(());
        }
        loop {
            let header = loop {
                match decode_mux_header(self.conn.buffered()).map_err(ConnError::Decode)? {
                    Decoded::Done { value, used } => {
                        self.conn.consume(used);
                        break value;
                    }
                    Decoded::Needed(_) => self.conn_fill()?,
                }
            };
            while self.conn.buffered().len() < header.len {
                self.conn_fill()?;
            }
            if header.code == MsgCode::Data {
                self.data
                    .extend_from_slice(&self.conn.buffered()[..header.len]);
                self.conn.consume(header.len);
                // An empty frame is a keepalive: keep reading.
                if header.len > 0 {
                    return Ok(());
                }
                continue;
            }
            let payload = self.conn.buffered()[..header.len].to_vec();
            self.conn.consume(header.len);
            let message =
                parse_message(self.peer, header.code, payload).map_err(ConnError::Decode)?;
            if let (Message::Text(code, text), Some(sink)) = (&message, &mut self.text_sink) {
                (sink.0)(*code, text);
                continue;
            }
            if let Message::ErrorExit(code) = message {
                self.peer_exit = Some(code);
                self.messages.push(message);
                return Ok(());
            }
            self.queue(message, header.len)?;
        }
    }

    /// Queues a message within [`MAX_QUEUED_MESSAGE_BYTES`].
    fn queue(&mut self, message: Message, payload_len: usize) -> Result<(), ReadError> {
        let cost = payload_len + MESSAGE_OVERHEAD;
        if self.queued_bytes + cost > MAX_QUEUED_MESSAGE_BYTES {
            if let Message::Text(..) | Message::Deleted(_) = message {
                self.dropped_texts += 1;
                return Ok(());
            }
            return Err(ConnError::Decode(WireError::TooLarge {
                what: "queued multiplexed messages",
                got: (self.queued_bytes + cost) as u64,
                limit: MAX_QUEUED_MESSAGE_BYTES as u64,
            }));
        }
        self.queued_bytes += cost;
        self.messages.push(message);
        Ok(())
    }

    /// Runs a decoder over the data stream, reading until it is satisfied.
    pub fn decode<T>(
        &mut self,
        mut f: impl FnMut(&[u8]) -> Result<Decoded<T>, WireError>,
    ) -> Result<T, ReadError> {
        loop {
            match f(self.buffered()).map_err(ConnError::Decode)? {
                Decoded::Done { value, used } => {
                    self.consume(used);
                    return Ok(value);
                }
                Decoded::Needed(_) => self.fill()?,
            }
        }
    }

    /// Like [`MuxReader::decode`] for decoders with their own error type.
    pub fn decode_with<T, E>(
        &mut self,
        mut f: impl FnMut(&[u8]) -> Result<Decoded<T>, E>,
    ) -> Result<T, ConnError<E>> {
        loop {
            match f(self.buffered()).map_err(ConnError::Decode)? {
                Decoded::Done { value, used } => {
                    self.consume(used);
                    return Ok(value);
                }
                Decoded::Needed(_) => self.fill().map_err(|e| match e {
                    ConnError::Eof => ConnError::Eof,
                    ConnError::Timeout => ConnError::Timeout,
                    ConnError::Io(io) => ConnError::Io(io),
                    ConnError::Decode(w) => ConnError::Io(std::io::Error::other(w.to_string())),
                })?,
            }
        }
    }

    /// Reads exactly `n` data bytes.
    pub fn read_exact(&mut self, n: usize) -> Result<Vec<u8>, ReadError> {
        while self.buffered().len() < n {
            self.fill()?;
        }
        let out = self.buffered()[..n].to_vec();
        self.consume(n);
        Ok(out)
    }

    /// Takes the queued messages; texts dropped because the queue was full are reported
    /// by one more text at the end.
    pub fn take_messages(&mut self) -> Vec<Message> {
        let mut messages = std::mem::take(&mut self.messages);
        if self.dropped_texts > 0 {
            messages.push(Message::Text(
                MsgCode::Warning,
                format!(
                    "{} messages from the peer were dropped: more than {} bytes of them were waiting",
                    self.dropped_texts, MAX_QUEUED_MESSAGE_BYTES
                )
                .into_bytes(),
            ));
        }
        self.queued_bytes = 0;
        self.dropped_texts = 0;
        messages
    }
}

/// A message frame's payload (its size already checked by the header decoder) as what
/// `peer` may send. Upstream: io.c, read_a_msg().
fn parse_message(peer: Peer, code: MsgCode, payload: Vec<u8>) -> Result<Message, WireError> {
    let refused = WireError::InvalidMessage {
        code: code.to_wire(),
        len: payload.len(),
    };
    let int = |p: &[u8]| match get_int(p) {
        Decoded::Done { value, .. } => Ok(value),
        Decoded::Needed(_) => Err(WireError::Malformed {
            what: "message payload",
        }),
    };
    Ok(match code {
        MsgCode::IoError => Message::IoError(int(&payload)?),
        MsgCode::NoSend => Message::NoSend(int(&payload)?),
        MsgCode::Success => Message::Success(int(&payload)?),
        MsgCode::ErrorExit => Message::ErrorExit(if payload.is_empty() {
            None
        } else {
            Some(int(&payload)?)
        }),
        MsgCode::Deleted => Message::Deleted(payload),
        MsgCode::Noop => Message::Text(MsgCode::Noop, Vec::new()),
        MsgCode::ErrorXfer | MsgCode::Info | MsgCode::Error | MsgCode::Warning => {
            Message::Text(code, payload)
        }
        // A daemon tells its client; a client never tells a server.
        MsgCode::IoTimeout if peer == Peer::Server => Message::IoTimeout(int(&payload)?),
        // Codes only rsync's own processes exchange over their pipes, and the timeout
        // from a client. (Data frames never get here.)
        MsgCode::IoTimeout
        | MsgCode::Redo
        | MsgCode::Stats
        | MsgCode::Log
        | MsgCode::Client
        | MsgCode::ErrorSocket
        | MsgCode::ErrorUtf8
        | MsgCode::Data => return Err(refused),
    })
}

/// How much data is gathered before a frame goes out.
const DATA_FRAME: usize = 32 * 1024;

/// The writing side: data is buffered into MSG_DATA frames, messages go out at once.
#[derive(Debug)]
pub struct MuxWriter {
    conn: ConnOut,
    muxed: bool,
    buf: Vec<u8>,
    protocol: i32,
    last_write: Instant,
    /// Where texts go on a client: to its user, never to the server.
    local_texts: Option<TextSink>,
}

impl MuxWriter {
    pub fn new(conn: ConnOut, muxed: bool, protocol: i32) -> MuxWriter {
        MuxWriter {
            conn,
            muxed,
            buf: Vec::with_capacity(DATA_FRAME + 8),
            protocol,
            last_write: Instant::now(),
            local_texts: None,
        }
    }

    /// A client's writer: the texts the roles address to "the client" (name lines,
    /// errors, warnings) go to `sink`, which stands for the client's terminal, instead of
    /// onto the wire. Upstream's client roles print them with rprintf().
    pub fn keep_texts_local(&mut self, sink: TextSink) {
        self.local_texts = Some(sink);
    }

    /// See [`ConnOut::send_at_once`].
    pub fn send_at_once(&self) {
        self.conn.send_at_once();
    }

    /// Appends data-stream bytes.
    pub fn data(&mut self, bytes: &[u8]) -> Result<(), ConnError> {
        self.buf.extend_from_slice(bytes);
        if self.buf.len() >= DATA_FRAME {
            self.flush()?;
        }
        Ok(())
    }

    /// Sends buffered data.
    pub fn flush(&mut self) -> Result<(), ConnError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        if self.muxed {
            // Frames of at most 32 KiB, as upstream writes them: a reader that takes a
            // frame whole (ours) would otherwise see nothing of a file's data until the
            // whole of a large frame arrived, which under --bwlimit is seconds. Headers
            // and payloads go out together by writev, without copying the payloads.
            let headers: Vec<[u8; 4]> = self
                .buf
                .chunks(DATA_FRAME)
                .map(|chunk| {
                    let mut h = Vec::with_capacity(4);
                    put_mux_header(&mut h, MsgCode::Data, chunk.len());
                    let mut a = [0u8; 4];
                    a.copy_from_slice(&h);
                    a
                })
                .collect();
            let mut slices: Vec<std::io::IoSlice<'_>> = headers
                .iter()
                .zip(self.buf.chunks(DATA_FRAME))
                .flat_map(|(h, c)| [std::io::IoSlice::new(h), std::io::IoSlice::new(c)])
                .collect();
            // The kernel takes at most IOV_MAX (1024) pieces a call.
            for group in slices.chunks_mut(512) {
                self.conn.write_all_vectored(group)?;
            }
        } else {
            self.conn.write_all(&self.buf)?;
        }
        self.buf.clear();
        self.last_write = Instant::now();
        Ok(())
    }

    /// Sends a message frame at once, ahead of data still buffered (upstream keeps messages
    /// in their own buffer and writes it first, which is where clients expect e.g. a
    /// generator's name lines). Without multiplexing the message cannot be sent and is
    /// dropped.
    pub fn message(&mut self, code: MsgCode, payload: &[u8]) -> Result<(), ConnError> {
        if !self.muxed {
            return Ok(());
        }
        let mut out = Vec::new();
        put_frame(&mut out, code, payload);
        self.conn.write_all(&out)?;
        self.last_write = Instant::now();
        Ok(())
    }

    /// Sends text for the peer's terminal, as the right code for the protocol (errors are
    /// MSG_ERROR_XFER and warnings MSG_INFO below 30), split to the size a peer accepts.
    pub fn text(&mut self, code: MsgCode, text: &str) -> Result<(), ConnError> {
        if let Some(sink) = &mut self.local_texts {
            (sink.0)(code, text.as_bytes());
            return Ok(());
        }
        let code = match (code, self.protocol < 30) {
            (MsgCode::Error, true) => MsgCode::ErrorXfer,
            (MsgCode::Warning, true) => MsgCode::Info,
            (c, _) => c,
        };
        for line in text.split_inclusive('\n') {
            for piece in line.as_bytes().chunks(crate::protocol::mux::MAX_TEXT_LEN) {
                self.message(code, piece)?;
            }
        }
        Ok(())
    }

    /// Sends a keepalive (an empty MSG_DATA) if nothing was written for `idle`.
    pub fn keepalive_if_idle(&mut self, idle: std::time::Duration) -> Result<(), ConnError> {
        if self.muxed && self.last_write.elapsed() >= idle {
            self.flush()?;
            let mut out = Vec::new();
            put_mux_header(&mut out, MsgCode::Data, 0);
            self.conn.write_all(&out)?;
            self.last_write = Instant::now();
        }
        Ok(())
    }
}

/// The writer shared by the generator and the receiver (who only sends messages).
pub type SharedWriter = Arc<Mutex<MuxWriter>>;

/// Locks the shared writer; a poisoned lock (a panicked thread) still yields the writer,
/// since frames are written whole under the lock.
pub fn lock(w: &SharedWriter) -> MutexGuard<'_, MuxWriter> {
    w.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A reader (multiplexed or not) whose peer writes `bytes` and hangs up, for tests.
#[cfg(test)]
pub(crate) fn reader_over(bytes: Vec<u8>, muxed: bool) -> MuxReader {
    reader_from(bytes, muxed, Peer::Client)
}

/// [`reader_over`] for a reader of `peer`.
#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) fn reader_from(bytes: Vec<u8>, muxed: bool, peer: Peer) -> MuxReader {
    use std::io::Write;
    let (ours, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
    std::thread::spawn(move || {
        let mut theirs = theirs;
        let _ = theirs.write_all(&bytes);
    });
    let input = std::os::fd::OwnedFd::from(ours);
    let output = input.try_clone().unwrap();
    let (rx, _) = super::conn::Conn::new(input, output).into_halves();
    MuxReader::with_peer(rx, muxed, peer)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A large piece of data goes out in frames of at most 32 KiB, as upstream writes
    /// them: a reader that takes frames whole sees the first bytes without waiting for
    /// the rest.
    #[test]
    fn data_frames_are_at_most_32_kib() {
        use std::io::Read;
        let (ours, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
        let out = std::os::fd::OwnedFd::from(ours);
        let (_, tx) = super::super::conn::Conn::new(out.try_clone().unwrap(), out).into_halves();
        let mut w = MuxWriter::new(tx, true, 31);
        let data = vec![7u8; 100_000];
        let reader = std::thread::spawn(move || {
            let mut theirs = theirs;
            let mut got = Vec::new();
            theirs.read_to_end(&mut got).unwrap();
            got
        });
        w.data(&data).unwrap();
        w.flush().unwrap();
        drop(w);
        let wire = reader.join().unwrap();
        let mut rest = &wire[..];
        let mut total = 0;
        while !rest.is_empty() {
            let Decoded::Done { value: h, used } = decode_mux_header(rest).unwrap() else {
                panic!("short header");
            };
            assert_eq!(h.code, MsgCode::Data);
            assert!(h.len <= DATA_FRAME, "a frame of {} bytes", h.len);
            total += h.len;
            rest = &rest[used + h.len..];
        }
        assert_eq!(total, data.len());
    }

    #[test]
    fn messages_queue_until_taken() {
        let mut wire = Vec::new();
        put_frame(&mut wire, MsgCode::Info, b"hello\n");
        put_frame(&mut wire, MsgCode::IoError, &1i32.to_le_bytes());
        put_frame(&mut wire, MsgCode::Data, b"abc");
        let mut r = reader_over(wire, true);
        r.fill().unwrap();
        assert_eq!(r.buffered(), b"abc");
        assert_eq!(
            r.take_messages(),
            [
                Message::Text(MsgCode::Info, b"hello\n".to_vec()),
                Message::IoError(1)
            ]
        );
        assert!(r.take_messages().is_empty());
    }

    #[test]
    fn a_text_sink_takes_texts_as_they_arrive() {
        // A text and then the end of the stream, with no data: the text must not wait in
        // the queue for a decode that never completes.
        let mut wire = Vec::new();
        put_frame(&mut wire, MsgCode::Info, b"MARKER\n");
        put_frame(&mut wire, MsgCode::Noop, b"");
        let mut r = reader_over(wire, true);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let into = seen.clone();
        r.set_text_sink(TextSink::new(move |code, text| {
            into.lock().unwrap().push((code, text.to_vec()));
        }));
        assert!(matches!(r.fill(), Err(ConnError::Eof)));
        assert_eq!(
            *seen.lock().unwrap(),
            [
                (MsgCode::Info, b"MARKER\n".to_vec()),
                (MsgCode::Noop, Vec::new())
            ]
        );
        assert!(r.take_messages().is_empty());
    }

    #[test]
    fn a_flood_of_texts_is_dropped_past_the_bound() {
        // 20 MiB of warnings before any data: the queue keeps 16 MiB and counts the rest.
        let text = vec![b'w'; 5000];
        let n = (20 << 20) / text.len();
        let mut wire = Vec::new();
        for _ in 0..n {
            put_frame(&mut wire, MsgCode::Warning, &text);
        }
        put_frame(&mut wire, MsgCode::Data, b"x");
        let mut r = reader_over(wire, true);
        r.fill().unwrap();
        assert_eq!(r.buffered(), b"x");
        let kept = r.messages.len();
        assert!(kept * (text.len() + MESSAGE_OVERHEAD) <= MAX_QUEUED_MESSAGE_BYTES);
        let taken = r.take_messages();
        assert_eq!(taken.len(), kept + 1);
        let Some(Message::Text(MsgCode::Warning, last)) = taken.last() else {
            panic!("no drop notice");
        };
        let last = String::from_utf8_lossy(last);
        assert!(
            last.starts_with(&format!("{} messages", n - kept)),
            "{last}"
        );
    }

    #[test]
    fn a_flood_of_other_messages_ends_the_session() {
        let mut wire = Vec::new();
        for i in 0..MAX_QUEUED_MESSAGE_BYTES / MESSAGE_OVERHEAD {
            put_frame(&mut wire, MsgCode::NoSend, &(i as i32).to_le_bytes());
        }
        put_frame(&mut wire, MsgCode::Data, b"x");
        let mut r = reader_over(wire, true);
        assert!(matches!(
            r.fill(),
            Err(ConnError::Decode(WireError::TooLarge { .. }))
        ));
    }
}

#[cfg(test)]
mod peer_tests;
