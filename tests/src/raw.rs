//! A raw TCP peer for what the real client cannot do on purpose: hold a session open at a
//! chosen point, send over-long lines or garbage. It speaks the daemon handshake as a
//! 3.5.0 client does (upstream: clientserver.c start_inband_exchange()).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::Duration;

/// The md5 challenge response: base64 without padding of md5(password + challenge), as a
/// 3.5.0 client computes it (upstream: authenticate.c, generate_hash()).
pub fn md5_response(password: &str, challenge: &str) -> String {
    use base64::Engine;
    use md5::Digest;
    let mut h = md5::Md5::new();
    h.update(password.as_bytes());
    h.update(challenge.as_bytes());
    base64::engine::general_purpose::STANDARD_NO_PAD.encode(h.finalize())
}

/// A connection to a daemon on 127.0.0.1.
#[derive(Debug)]
pub struct RawClient {
    reader: BufReader<TcpStream>,
    stream: TcpStream,
}

impl RawClient {
    /// Connects, with reads timing out after `timeout`.
    pub fn connect(port: u16, timeout: Duration) -> RawClient {
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
        stream.set_read_timeout(Some(timeout)).expect("timeout");
        let reader = BufReader::new(stream.try_clone().expect("clone stream"));
        RawClient { reader, stream }
    }

    /// Sends bytes as they are.
    pub fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// Reads one `\n`-terminated line (without it); `None` at end of file, on a reset or
    /// on a timeout.
    pub fn line(&mut self) -> Option<String> {
        let mut buf = Vec::new();
        match self.reader.read_until(b'\n', &mut buf) {
            Ok(0) | Err(_) => None,
            Ok(_) => {
                if buf.last() == Some(&b'\n') {
                    buf.pop();
                }
                Some(String::from_utf8_lossy(&buf).into_owned())
            }
        }
    }

    /// Reads exactly `n` bytes (for a peer past the line-based handshake).
    pub fn read_exact(&mut self, n: usize) -> std::io::Result<Vec<u8>> {
        let mut buf = vec![0u8; n];
        self.reader.read_exact(&mut buf)?;
        Ok(buf)
    }

    /// The client's own port: with the daemon's, it names the connection in
    /// `/proc/net/tcp`.
    pub fn local_port(&self) -> u16 {
        self.stream.local_addr().expect("local address").port()
    }

    /// Reads everything until the daemon closes (or the read times out).
    pub fn rest(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        let _ = self.reader.read_to_end(&mut out);
        out
    }

    /// Whether the daemon closed the connection (end of file or reset) within the read
    /// timeout, rather than leaving it open.
    pub fn is_closed_by_peer(&mut self) -> bool {
        let mut byte = [0u8; 1];
        loop {
            match self.reader.read(&mut byte) {
                Ok(0) => return true,
                Ok(_) => continue,
                Err(e) => {
                    return !matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    );
                }
            }
        }
    }

    /// Our greeting (`@RSYNCD: 32.0 DIGESTS`); returns the daemon's greeting line.
    pub fn greet(&mut self, digests: &str) -> String {
        let greeting = self.line().expect("daemon greeting");
        self.send(format!("@RSYNCD: 32.0 {digests}\n").as_bytes())
            .expect("send greeting");
        greeting
    }

    /// Greets offering only md5, asks for `module`, answers the challenge as `user` with
    /// `password`, and returns the daemon's answer (`@RSYNCD: OK` when admitted).
    pub fn open_module(&mut self, module: &str, user: &str, password: &str) -> String {
        self.greet("md5");
        self.send(format!("{module}\n").as_bytes())
            .expect("send module");
        loop {
            let line = self.line().unwrap_or_default();
            if let Some(challenge) = line.strip_prefix("@RSYNCD: AUTHREQD ") {
                let response = md5_response(password, challenge);
                self.send(format!("{user} {response}\n").as_bytes())
                    .expect("send auth response");
                continue;
            }
            // A motd line or the answer; the answer starts with '@'.
            if line.is_empty() || line.starts_with('@') {
                return line;
            }
        }
    }

    /// Closes our side for writing (the daemon sees end of file).
    pub fn shutdown_write(&self) {
        let _ = self.stream.shutdown(Shutdown::Write);
    }
}
