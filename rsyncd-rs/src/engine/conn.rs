//! A byte connection with deadlines: the one place a session reads from or writes to its
//! peer. Decoders from `protocol` run over its read buffer. It splits into an input half
//! and an output half so that the receiver (the only reader) and the generator (the only
//! writer) can run on their own threads, as rsync's two processes do.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use crate::protocol::Decoded;

/// How much is read from the socket at a time.
const READ_CHUNK: usize = 256 * 1024;

/// Reads shorter than this are acknowledged at once (see [`ConnIn::ack_now`]). A longer
/// read means data is streaming, when the kernel acknowledges every other segment anyway
/// and an acknowledgement per read only makes the client's side busier: in a 1 GiB
/// `-z` push that cost the client 0.1-0.3 s of CPU.
const QUICKACK_BELOW: usize = 16 * 1024;

/// Why reading or writing the connection failed.
#[derive(Debug, thiserror::Error)]
pub enum ConnError<E = std::convert::Infallible> {
    /// The peer closed the connection.
    #[error("connection closed by peer")]
    Eof,
    /// The deadline or the idle timeout passed.
    #[error("timeout")]
    Timeout,
    #[error("{0}")]
    Io(#[from] io::Error),
    /// The bytes did not decode.
    #[error("{0}")]
    Decode(E),
}

impl ConnError {
    /// Widens an I/O-level error into one that can also carry a decode error.
    pub fn widen<E>(self) -> ConnError<E> {
        match self {
            ConnError::Eof => ConnError::Eof,
            ConnError::Timeout => ConnError::Timeout,
            ConnError::Io(e) => ConnError::Io(e),
            ConnError::Decode(never) => match never {},
        }
    }
}

/// Deadline and idle timeout, shared by both halves' waits.
#[derive(Debug, Clone, Copy, Default)]
struct Limits {
    deadline: Option<Instant>,
    idle: Option<Duration>,
}

impl Limits {
    fn wait(&self, fd: &File, flags: PollFlags) -> Result<(), ConnError> {
        self.wait_for(fd, flags, false)
    }

    /// Like [`Limits::wait`], but waits even without a limit: after `EAGAIN` on a
    /// descriptor someone else made non-blocking (a remote shell's pipe shares its file
    /// status flags with the client that created it).
    fn wait_ready(&self, fd: &File, flags: PollFlags) -> Result<(), ConnError> {
        self.wait_for(fd, flags, true)
    }

    fn wait_for(&self, fd: &File, flags: PollFlags, always: bool) -> Result<(), ConnError> {
        let mut wait = self.idle;
        if let Some(d) = self.deadline {
            let left = d
                .checked_duration_since(Instant::now())
                .ok_or(ConnError::Timeout)?;
            wait = Some(wait.map_or(left, |w| w.min(left)));
        }
        let ms = match wait {
            Some(w) => w.as_millis().min(i32::MAX as u128) as i32,
            None if always => -1,
            None => return Ok(()),
        };
        let mut fds = [PollFd::new(fd.as_fd(), flags)];
        loop {
            let timeout = if ms < 0 {
                PollTimeout::NONE
            } else {
                PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX)
            };
            match poll(&mut fds, timeout) {
                Ok(0) => return Err(ConnError::Timeout),
                Ok(_) => return Ok(()),
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(ConnError::Io(e.into())),
            }
        }
    }
}

/// The reading half: a buffer over the input descriptor.
#[derive(Debug)]
pub struct ConnIn {
    file: File,
    /// Unconsumed bytes are `buf[pos..end]`; past `end` are stale bytes, kept so that a
    /// read does not zero 256 KiB again each time.
    buf: Vec<u8>,
    pos: usize,
    end: usize,
    limits: Limits,
    bytes: Arc<AtomicU64>,
    /// Whether the input is a TCP socket we acknowledge at once (see [`ConnIn::fill`]).
    quickack: bool,
}

/// The writing half.
#[derive(Debug)]
pub struct ConnOut {
    file: File,
    limits: Limits,
    bytes: Arc<AtomicU64>,
    /// `--bwlimit`, when set.
    rate: Option<RateLimit>,
}

/// `--bwlimit`: after each write, sleep for as long as the bytes written beyond what the
/// rate allows since the last sleep would take, once that is a tenth of a second or more;
/// writes are cut to an eighth of a second's worth so that the rate holds within a
/// write. Upstream: io.c, sleep_for_bwlimit() and bwlimit_writemax.
#[derive(Debug, Clone, Copy)]
pub struct RateLimit {
    /// Bytes per second.
    rate: u64,
    /// Bytes written and not yet paid for by sleeping or elapsed time.
    owed: u64,
    /// When `owed` was last brought up to date.
    since: Option<Instant>,
}

impl RateLimit {
    /// A limit of `kib_per_sec` KiB/s (`--bwlimit`'s unit); 0 means none.
    pub fn kib_per_sec(kib_per_sec: u64) -> Option<RateLimit> {
        (kib_per_sec > 0).then(|| RateLimit {
            rate: kib_per_sec.saturating_mul(1024),
            owed: 0,
            since: None,
        })
    }

    /// The most one write may carry (upstream: bwlimit * 128 bytes, at least 512).
    fn write_max(&self) -> usize {
        usize::try_from((self.rate / 8).max(512)).unwrap_or(usize::MAX)
    }

    /// Accounts `n` bytes just written; returns how long to sleep.
    fn after_write(&mut self, n: usize, now: Instant) -> Option<Duration> {
        self.owed = self.owed.saturating_add(n as u64);
        if let Some(since) = self.since {
            let paid = (now.duration_since(since).as_micros() as u64).saturating_mul(self.rate)
                / 1_000_000;
            self.owed = self.owed.saturating_sub(paid);
        }
        self.since = Some(now);
        let sleep = Duration::from_micros(self.owed.saturating_mul(1_000_000) / self.rate);
        (sleep >= Duration::from_millis(100)).then_some(sleep)
    }
}

/// A connection to the peer: an input and an output descriptor (the same socket twice, or
/// standard input and output).
#[derive(Debug)]
pub struct Conn {
    pub rx: ConnIn,
    pub tx: ConnOut,
}

impl Conn {
    /// Wraps the two descriptors.
    pub fn new(input: OwnedFd, output: OwnedFd) -> Conn {
        Conn {
            rx: ConnIn {
                file: File::from(input),
                buf: Vec::new(),
                pos: 0,
                end: 0,
                limits: Limits::default(),
                bytes: Arc::new(AtomicU64::new(0)),
                quickack: true,
            },
            tx: ConnOut {
                file: File::from(output),
                limits: Limits::default(),
                bytes: Arc::new(AtomicU64::new(0)),
                rate: None,
            },
        }
    }

    /// Hands the connection (with anything already buffered, its limits and counters) on,
    /// leaving in its place duplicates of the same descriptors with an empty buffer. Unlike
    /// opening `/dev/null`, this works inside a chroot.
    pub fn take(&mut self) -> io::Result<Conn> {
        let rx_copy = self.rx.file.try_clone()?;
        let tx_copy = self.tx.file.try_clone()?;
        let rx = ConnIn {
            file: std::mem::replace(&mut self.rx.file, rx_copy),
            buf: std::mem::take(&mut self.rx.buf),
            pos: std::mem::take(&mut self.rx.pos),
            end: std::mem::take(&mut self.rx.end),
            limits: self.rx.limits,
            bytes: self.rx.bytes.clone(),
            quickack: self.rx.quickack,
        };
        let tx = ConnOut {
            file: std::mem::replace(&mut self.tx.file, tx_copy),
            limits: self.tx.limits,
            bytes: self.tx.bytes.clone(),
            rate: self.tx.rate,
        };
        Ok(Conn { rx, tx })
    }

    /// Sets (or clears) an absolute deadline for every read and write from now on.
    pub fn set_deadline(&mut self, deadline: Option<Instant>) {
        self.rx.limits.deadline = deadline;
        self.tx.limits.deadline = deadline;
    }

    /// Sets (or clears) the longest time a single read or write may wait.
    pub fn set_idle_timeout(&mut self, timeout: Option<Duration>) {
        self.rx.limits.idle = timeout;
        self.tx.limits.idle = timeout;
    }

    /// Counters that stay valid after the halves are moved to other threads.
    pub fn counters(&self) -> (Arc<AtomicU64>, Arc<AtomicU64>) {
        (self.rx.bytes.clone(), self.tx.bytes.clone())
    }

    pub fn buffered(&self) -> &[u8] {
        self.rx.buffered()
    }

    pub fn consume(&mut self, n: usize) {
        self.rx.consume(n);
    }

    pub fn fill(&mut self) -> Result<usize, ConnError> {
        self.rx.fill()
    }

    pub fn decode<T, E>(
        &mut self,
        f: impl FnMut(&[u8]) -> Result<Decoded<T>, E>,
    ) -> Result<T, ConnError<E>> {
        self.rx.decode(f)
    }

    pub fn read_exact(&mut self, n: usize) -> Result<Vec<u8>, ConnError> {
        self.rx.read_exact(n)
    }

    pub fn write_all(&mut self, data: &[u8]) -> Result<(), ConnError> {
        self.tx.write_all(data)
    }

    /// Closes both descriptors in this process (a forked parent that must not keep the
    /// peer's connection open), leaving `/dev/null` in their place.
    pub fn close(&mut self) {
        if let Ok(null) = File::options().read(true).write(true).open("/dev/null") {
            if let Ok(copy) = null.try_clone() {
                self.rx.file = copy;
            }
            self.tx.file = null;
        }
        self.rx.buf.clear();
        self.rx.pos = 0;
        self.rx.end = 0;
    }

    /// Splits into the reading and the writing half.
    pub fn into_halves(self) -> (ConnIn, ConnOut) {
        (self.rx, self.tx)
    }
}

impl ConnIn {
    /// Bytes read from the descriptor so far.
    pub fn total_read(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }
}

impl ConnIn {
    /// The bytes read but not yet consumed.
    pub fn buffered(&self) -> &[u8] {
        &self.buf[self.pos..self.end]
    }

    /// Marks `n` buffered bytes as consumed.
    pub fn consume(&mut self, n: usize) {
        self.pos = (self.pos + n).min(self.end);
        if self.pos == self.end {
            self.pos = 0;
            self.end = 0;
        }
    }

    /// Sets the idle timeout of this half.
    pub fn set_idle_timeout(&mut self, timeout: Option<Duration>) {
        self.limits.idle = timeout;
    }

    /// Sets the deadline of this half.
    pub fn set_deadline(&mut self, deadline: Option<Instant>) {
        self.limits.deadline = deadline;
    }

    /// Reads more bytes into the buffer; returns how many (never 0: EOF is an error).
    pub fn fill(&mut self) -> Result<usize, ConnError> {
        self.limits.wait(&self.file, PollFlags::POLLIN)?;
        if self.pos > 0 {
            self.buf.copy_within(self.pos..self.end, 0);
            self.end -= self.pos;
            self.pos = 0;
        }
        if self.buf.len() < self.end + READ_CHUNK {
            self.buf.resize(self.end + READ_CHUNK, 0);
        }
        let got = loop {
            match self.file.read(&mut self.buf[self.end..]) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.limits.wait_ready(&self.file, PollFlags::POLLIN)?;
                    continue;
                }
                Err(e) => return Err(ConnError::Io(e)),
            }
        };
        self.end += got;
        if got == 0 {
            return Err(ConnError::Eof);
        }
        self.bytes.fetch_add(got as u64, Ordering::Relaxed);
        if got < QUICKACK_BELOW {
            self.ack_now();
        }
        Ok(got)
    }

    /// Acknowledges what was just read at once. The client writes its arguments, its
    /// checksum list and its goodbye as small writes that Nagle's algorithm holds back
    /// until the previous one is acknowledged, and a delayed acknowledgement costs each
    /// of those waits 40 ms: three of them made a one-file push take 130 ms on loopback
    /// rather than 10. The option does not stick (the kernel goes back to delaying), so
    /// it is set after every short read; on a pipe or a Unix socket it fails once and is
    /// not tried again.
    fn ack_now(&mut self) {
        if self.quickack
            && socket2::SockRef::from(&self.file)
                .set_tcp_quickack(true)
                .is_err()
        {
            self.quickack = false;
        }
    }

    /// Runs a sans-IO decoder over the buffer, reading more until it is satisfied.
    pub fn decode<T, E>(
        &mut self,
        mut f: impl FnMut(&[u8]) -> Result<Decoded<T>, E>,
    ) -> Result<T, ConnError<E>> {
        loop {
            match f(self.buffered()).map_err(ConnError::Decode)? {
                Decoded::Done { value, used } => {
                    self.consume(used);
                    return Ok(value);
                }
                Decoded::Needed(_) => {
                    self.fill().map_err(ConnError::widen)?;
                }
            }
        }
    }

    /// Reads exactly `n` bytes.
    pub fn read_exact(&mut self, n: usize) -> Result<Vec<u8>, ConnError> {
        while self.buffered().len() < n {
            self.fill()?;
        }
        let out = self.buffered()[..n].to_vec();
        self.consume(n);
        Ok(out)
    }
}

impl ConnOut {
    /// Writes all of `data`.
    pub fn write_all(&mut self, data: &[u8]) -> Result<(), ConnError> {
        let mut rest = data;
        while !rest.is_empty() {
            self.limits.wait(&self.file, PollFlags::POLLOUT)?;
            let most = self
                .rate
                .map_or(rest.len(), |r| r.write_max().min(rest.len()));
            match self.file.write(&rest[..most]) {
                Ok(0) => return Err(ConnError::Eof),
                Ok(n) => {
                    self.bytes.fetch_add(n as u64, Ordering::Relaxed);
                    rest = &rest[n..];
                    if let Some(pause) = self
                        .rate
                        .as_mut()
                        .and_then(|r| r.after_write(n, Instant::now()))
                    {
                        std::thread::sleep(pause);
                        if let Some(r) = self.rate.as_mut() {
                            // What the sleep paid for is gone; what it overslept is not owed.
                            r.owed = 0;
                            r.since = Some(Instant::now());
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.limits.wait_ready(&self.file, PollFlags::POLLOUT)?;
                }
                Err(e) => return Err(ConnError::Io(e)),
            }
        }
        Ok(())
    }

    /// Writes all of `bufs` in as few system calls as the kernel takes (`writev`), so
    /// that frame headers and payloads need not be copied into one buffer first. Under
    /// a rate limit the pieces go one by one through [`ConnOut::write_all`].
    pub fn write_all_vectored(
        &mut self,
        mut bufs: &mut [io::IoSlice<'_>],
    ) -> Result<(), ConnError> {
        if self.rate.is_some() {
            for b in bufs.iter() {
                self.write_all(b)?;
            }
            return Ok(());
        }
        while !bufs.is_empty() {
            self.limits.wait(&self.file, PollFlags::POLLOUT)?;
            match self.file.write_vectored(bufs) {
                Ok(0) => return Err(ConnError::Eof),
                Ok(n) => {
                    self.bytes.fetch_add(n as u64, Ordering::Relaxed);
                    io::IoSlice::advance_slices(&mut bufs, n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.limits.wait_ready(&self.file, PollFlags::POLLOUT)?;
                }
                Err(e) => return Err(ConnError::Io(e)),
            }
        }
        Ok(())
    }

    /// Sets the idle timeout of this half.
    pub fn set_idle_timeout(&mut self, timeout: Option<Duration>) {
        self.limits.idle = timeout;
    }

    /// Limits the rate of what this half writes (`--bwlimit`).
    pub fn set_rate_limit(&mut self, rate: Option<RateLimit>) {
        self.rate = rate;
    }

    /// Sends each write at once (`TCP_NODELAY`) for a writer that gathers its output
    /// itself and writes only when it is about to wait for the peer: Nagle's algorithm
    /// would hold the last small piece until the previous one is acknowledged, which a
    /// peer delaying its acknowledgements makes 40 ms. Not a socket: nothing to do.
    pub fn send_at_once(&self) {
        let _ = socket2::SockRef::from(&self.file).set_tcp_nodelay(true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Time goes in as values: writes at given instants, the sleeps the limit asks for.
    #[test]
    fn rate_limit_sleeps_for_what_was_written_too_fast() {
        let t0 = Instant::now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        // 100 KiB/s: 10 KiB is 100 ms of budget.
        let mut r = RateLimit::kib_per_sec(100).unwrap();
        assert_eq!(r.write_max(), 100 * 1024 / 8);
        // 5 KiB at once: 50 ms owed, under the 100 ms threshold.
        assert_eq!(r.after_write(5 * 1024, ms(0)), None);
        // 5 KiB more at once: 100 ms owed, sleep it.
        assert_eq!(
            r.after_write(5 * 1024, ms(0)),
            Some(Duration::from_millis(100))
        );
        // Written slowly enough, nothing is owed.
        let mut r = RateLimit::kib_per_sec(100).unwrap();
        for i in 0..20 {
            assert_eq!(r.after_write(1024, ms(i * 10)), None, "write {i}");
        }
        // A large burst after idling long still sleeps for its excess.
        let mut r = RateLimit::kib_per_sec(1).unwrap();
        assert_eq!(r.write_max(), 512);
        assert_eq!(r.after_write(512, ms(0)), Some(Duration::from_millis(500)));
        assert!(RateLimit::kib_per_sec(0).is_none());
    }
}
