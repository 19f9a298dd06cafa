//! The listening daemon: bind, accept, one forked process per session, signals
//! (upstream: socket.c start_accept_loop(), clientserver.c daemon_main()).
//!
//! The listener stays single-threaded so that forking is sound. Signals are blocked and
//! read from a signalfd; children unblock them before they run a session.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SigSet, SigmaskHow, Signal, kill, sigprocmask};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;
use socket2::{Domain, Protocol, Socket, Type};

use super::privileges::{Forked, fork_process};

/// Which address families to listen on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Family {
    #[default]
    Any,
    V4,
    V6,
}

/// What the listener needs to know.
#[derive(Debug, Clone)]
pub struct ListenSpec {
    pub address: Option<IpAddr>,
    pub port: u16,
    pub family: Family,
    pub backlog: i32,
    /// How long sessions may run on after SIGTERM before they are terminated.
    pub shutdown_grace: Duration,
}

/// Binds the listening sockets: the given address, or every address of the allowed
/// families (IPv6 sockets are v6-only so both can share the port).
pub fn bind(spec: &ListenSpec) -> io::Result<Vec<TcpListener>> {
    let addrs: Vec<IpAddr> = match (spec.address, spec.family) {
        (Some(a), _) => vec![a],
        (None, Family::V4) => vec![IpAddr::V4(Ipv4Addr::UNSPECIFIED)],
        (None, Family::V6) => vec![IpAddr::V6(Ipv6Addr::UNSPECIFIED)],
        (None, Family::Any) => vec![
            IpAddr::V6(Ipv6Addr::UNSPECIFIED),
            IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        ],
    };
    let mut out = Vec::new();
    let mut last_err = None;
    for ip in addrs {
        match bind_one(SocketAddr::new(ip, spec.port), spec.backlog) {
            Ok(l) => out.push(l),
            // A host without IPv6 still serves IPv4, as rsyncd does.
            Err(e) => last_err = Some(e),
        }
    }
    match (out.is_empty(), last_err) {
        (true, Some(e)) => Err(e),
        _ => Ok(out),
    }
}

fn bind_one(addr: SocketAddr, backlog: i32) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.bind(&addr.into())?;
    socket.listen(backlog.max(1))?;
    Ok(socket.into())
}

/// Blocks the signals the listener handles, so they queue for its signalfd (and stay
/// blocked only until a child calls [`unblock_signals`]).
fn handled_signals() -> SigSet {
    let mut set = SigSet::empty();
    for s in [
        Signal::SIGCHLD,
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGHUP,
    ] {
        set.add(s);
    }
    set
}

/// Restores the default signal mask in a forked session.
pub fn unblock_signals() {
    let _ = sigprocmask(SigmaskHow::SIG_UNBLOCK, Some(&handled_signals()), None);
}

/// Accepts connections until SIGTERM/SIGINT/SIGHUP, running `session` in a forked child
/// for each. `session` gets the connected socket and returns the child's exit code.
/// `on_event` receives log lines for the daemon log.
pub fn accept_loop(
    listeners: Vec<TcpListener>,
    spec: &ListenSpec,
    mut session: impl FnMut(TcpStream) -> i32,
    mut on_event: impl FnMut(&str),
) -> io::Result<()> {
    let signals = handled_signals();
    sigprocmask(SigmaskHow::SIG_BLOCK, Some(&signals), None).map_err(io::Error::from)?;
    let sigfd = SignalFd::with_flags(&signals, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
        .map_err(io::Error::from)?;
    for l in &listeners {
        l.set_nonblocking(true)?;
    }
    let mut children: Vec<Pid> = Vec::new();
    loop {
        let mut fds: Vec<PollFd<'_>> = listeners
            .iter()
            .map(|l| PollFd::new(l.as_fd(), PollFlags::POLLIN))
            .collect();
        fds.push(PollFd::new(sigfd.as_fd(), PollFlags::POLLIN));
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
        let ready: Vec<bool> = fds
            .iter()
            .map(|f| f.revents().is_some_and(|r| r.intersects(PollFlags::POLLIN)))
            .collect();
        drop(fds);
        if ready.last().copied().unwrap_or(false) && drain_signals(&sigfd, &mut children)? {
            on_event("got a termination signal: no longer accepting connections");
            drop(listeners);
            return shut_down(&sigfd, children, spec.shutdown_grace, on_event);
        }
        for (l, _) in listeners.iter().zip(&ready).filter(|(_, r)| **r) {
            let stream = match l.accept() {
                Ok((s, _)) => s,
                Err(e)
                    if e.kind() == io::ErrorKind::WouldBlock
                        || e.kind() == io::ErrorKind::Interrupted =>
                {
                    continue;
                }
                Err(e) => {
                    on_event(&format!("accept failed: {e}"));
                    continue;
                }
            };
            match fork_process() {
                Ok(Forked::Child) => {
                    unblock_signals();
                    drop(sigfd);
                    drop(listeners);
                    let _ = stream.set_nonblocking(false);
                    let code = session(stream);
                    std::process::exit(code);
                }
                Ok(Forked::Parent(pid)) => children.push(pid),
                Err(e) => on_event(&format!("fork failed: {e}")),
            }
        }
    }
}

/// Reads pending signals; returns true when a termination signal arrived. Reaps children.
fn drain_signals(sigfd: &SignalFd, children: &mut Vec<Pid>) -> io::Result<bool> {
    let mut terminate = false;
    while let Some(info) = sigfd.read_signal().map_err(io::Error::from)? {
        if info.ssi_signo != Signal::SIGCHLD as u32 {
            terminate = true;
        }
    }
    reap(children);
    Ok(terminate)
}

fn reap(children: &mut Vec<Pid>) {
    loop {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, _) | WaitStatus::Signaled(pid, _, _)) => {
                children.retain(|c| *c != pid)
            }
            Ok(WaitStatus::StillAlive) | Err(_) => break,
            Ok(_) => {}
        }
    }
}

/// Lets running sessions finish for `grace`, then terminates the rest.
fn shut_down(
    sigfd: &SignalFd,
    mut children: Vec<Pid>,
    grace: Duration,
    mut on_event: impl FnMut(&str),
) -> io::Result<()> {
    let deadline = Instant::now() + grace;
    let mut terminated = false;
    reap(&mut children);
    while !children.is_empty() {
        let now = Instant::now();
        if now >= deadline && !terminated {
            on_event(&format!(
                "terminating {} session(s) still running after the grace period",
                children.len()
            ));
            for c in &children {
                let _ = kill(*c, Signal::SIGTERM);
            }
            terminated = true;
        }
        let wait = if terminated {
            Duration::from_secs(5)
        } else {
            deadline - now
        };
        let mut fds = [PollFd::new(sigfd.as_fd(), PollFlags::POLLIN)];
        let ms =
            PollTimeout::try_from(wait.as_millis().min(60_000) as i32).unwrap_or(PollTimeout::MAX);
        match poll(&mut fds, ms) {
            Ok(0) if terminated => {
                for c in &children {
                    let _ = kill(*c, Signal::SIGKILL);
                }
                reap(&mut children);
                break;
            }
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
        while let Ok(Some(_)) = sigfd.read_signal() {}
        reap(&mut children);
    }
    Ok(())
}

/// Whether standard input is a socket (inetd, systemd `Accept=yes`, `RSYNC_CONNECT_PROG`).
pub fn stdin_is_socket() -> bool {
    nix::sys::stat::fstat(std::io::stdin().as_fd())
        .map(|st| st.st_mode & libc::S_IFMT == libc::S_IFSOCK)
        .unwrap_or(false)
}

/// Duplicates a descriptor so a socket can serve as both input and output of a connection.
pub fn dup_fd(fd: impl AsFd) -> io::Result<OwnedFd> {
    fd.as_fd().try_clone_to_owned()
}
