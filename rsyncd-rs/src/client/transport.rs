//! The ways to the other side besides TCP: a program whose standard input and output are
//! the daemon connection (`RSYNC_CONNECT_PROG`), and a server started over a remote
//! shell (`-e ssh`) or locally (a local copy). Upstream: main.c, do_cmd() and
//! piped_child(); socket.c, sock_exec().

use std::net::{TcpListener, TcpStream};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::error::ClientError;
use crate::engine::conn::Conn;

/// A started helper process, reaped when dropped (after its connection closed, it ends;
/// one that does not within a few seconds is killed).
#[derive(Debug)]
pub struct ChildGuard(Option<Child>);

impl ChildGuard {
    /// Waits for the child (our side of its connection closed: it is ending) and returns
    /// its exit code; `None` if a signal ended it, or if it was still running after a
    /// minute and was killed.
    pub fn wait(mut self) -> Option<i32> {
        let mut child = self.0.take()?;
        reap(&mut child, Duration::from_secs(60))
    }
}

/// Waits up to `limit` for `child`, then kills it.
fn reap(child: &mut Child, limit: Duration) -> Option<i32> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        match child.try_wait() {
            Ok(Some(status)) => return status.code(),
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(_) => return None,
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            reap(&mut child, Duration::from_secs(5));
        }
    }
}

/// Runs `sh -c PROG` (with `%H` replaced by `host`) on a connected pair of loopback TCP
/// sockets, as upstream's socketpair_tcp() makes them, so that a daemon run this way
/// sees a peer address (127.0.0.1) its `hosts allow` can judge: the daemon connection
/// of `RSYNC_CONNECT_PROG`. Upstream: socket.c, sock_exec().
pub fn connect_prog(prog: &str, host: &str) -> Result<(Conn, ChildGuard), ClientError> {
    let command = prog.replace("%H", host);
    let (ours, theirs) =
        tcp_pair().map_err(|e| ClientError::Local(format!("socketpair_tcp failed: {e}")))?;
    let theirs_out = theirs
        .try_clone()
        .map_err(|e| ClientError::Local(format!("dup failed: {e}")))?;
    let child = Command::new("sh")
        .arg("-c")
        .arg(&command)
        .stdin(Stdio::from(OwnedFd::from(theirs)))
        .stdout(Stdio::from(OwnedFd::from(theirs_out)))
        .spawn()
        .map_err(|e| ClientError::Connect {
            addr: format!("RSYNC_CONNECT_PROG {command}"),
            source: e,
        })?;
    Ok((conn_over(ours)?, ChildGuard(Some(child))))
}

/// Starts `argv` with its standard input and output on a socket pair (standard error
/// stays ours, as rsync's remote shell's does).
pub fn spawn_server(argv: &[String]) -> Result<(Conn, ChildGuard), ClientError> {
    let (program, args) = argv
        .split_first()
        .ok_or_else(|| ClientError::Options("empty remote shell command".into()))?;
    let (ours, theirs) =
        UnixStream::pair().map_err(|e| ClientError::Local(format!("socketpair failed: {e}")))?;
    let theirs_out = theirs
        .try_clone()
        .map_err(|e| ClientError::Local(format!("dup failed: {e}")))?;
    let child = Command::new(program)
        .args(args)
        .stdin(Stdio::from(OwnedFd::from(theirs)))
        .stdout(Stdio::from(OwnedFd::from(theirs_out)))
        .spawn()
        .map_err(|e| ClientError::Connect {
            addr: format!("remote shell {program}"),
            source: e,
        })?;
    Ok((conn_over(ours)?, ChildGuard(Some(child))))
}

/// Two connected TCP sockets on 127.0.0.1.
fn tcp_pair() -> std::io::Result<(TcpStream, TcpStream)> {
    let listener = TcpListener::bind(("127.0.0.1", 0))?;
    let ours = TcpStream::connect(listener.local_addr()?)?;
    let mine = ours.local_addr()?;
    // Another local process may connect to the port in between: only our own
    // connection becomes the daemon's (the listener is closed once it is found).
    let theirs = loop {
        let (s, from) = listener.accept()?;
        if from == mine {
            break s;
        }
    };
    let _ = ours.set_nodelay(true);
    Ok((ours, theirs))
}

fn conn_over(s: impl Into<OwnedFd>) -> Result<Conn, ClientError> {
    let fd: OwnedFd = s.into();
    let dup = fd
        .try_clone()
        .map_err(|e| ClientError::Local(format!("dup failed: {e}")))?;
    Ok(Conn::new(fd, dup))
}
