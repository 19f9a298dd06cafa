//! The socket plugin: each change as a line to TCP listeners (`localpath/deshost`).
//!
//! sersync opened a connection per event, wrote the bare absolute path (no end of line)
//! and closed it (upstream: SocketInterface.cpp, Execute()), and used only the first
//! `<deshost>`. Ours keeps one connection per listener, to every `<deshost>`, and writes
//! a line per change, in a format of our own:
//!
//! ```text
//! EVENT TAB ABS_PATH [TAB ABS_FROM] LF
//! ```
//!
//! `EVENT` is `push`, `delete` or `rename`; `ABS_FROM` (renames only) the old name. In
//! the paths, `\` is written `\\`, a tab `\t`, a newline `\n` and a carriage return
//! `\r`; other bytes are sent as they are (file names need not be UTF-8).
//!
//! A listener that is down is retried with a backoff (0.1 s doubling to 30 s); the lines
//! for it wait in a bounded buffer of [`LISTENER_QUEUE`], beyond which they are dropped
//! and counted. A line whose write failed is sent again after reconnecting.

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use super::{Change, Context, PluginStats, absolute, is_within, next_batch};
use crate::config::SocketSettings;
use crate::op::Op;

/// Lines waiting for one listener before new ones are dropped.
pub const LISTENER_QUEUE: usize = 4096;

const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// The line for `c` (see the module's documentation).
pub fn line(root: &Path, c: &Change) -> Vec<u8> {
    use std::os::unix::ffi::OsStrExt;
    let mut out = Vec::new();
    out.extend_from_slice(c.kind.as_str().as_bytes());
    let names = std::iter::once(&c.rel).chain(c.from.as_ref());
    for rel in names {
        out.push(b'\t');
        escape(absolute(root, rel).as_os_str().as_bytes(), &mut out);
    }
    out.push(b'\n');
    out
}

fn escape(bytes: &[u8], out: &mut Vec<u8>) {
    for &b in bytes {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b => out.push(b),
        }
    }
}

/// Sends what comes in on `rx` to every listener, until it is closed and empty.
pub async fn run(settings: SocketSettings, ctx: Context, mut rx: mpsc::Receiver<Op>) {
    let mut outs = Vec::new();
    let mut tasks = Vec::new();
    for (host, port) in settings.listeners {
        let (tx, lines) = mpsc::channel(LISTENER_QUEUE);
        tasks.push(tokio::spawn(listener(
            host.clone(),
            port,
            lines,
            ctx.clone(),
        )));
        outs.push((format!("{host}:{port}"), tx, false));
    }
    let within = settings.watch.unwrap_or_else(|| ctx.root.clone());
    while let Some(ops) = next_batch(&mut rx, LISTENER_QUEUE).await {
        for op in &ops {
            let c = Change::of(op);
            if !is_within(&absolute(&ctx.root, &c.rel), &within) {
                continue;
            }
            let l = Bytes::from(line(&ctx.root, &c));
            for (name, tx, dropping) in &mut outs {
                match tx.try_send(l.clone()) {
                    Ok(()) => *dropping = false,
                    Err(_) => {
                        PluginStats::add(&ctx.stats.dropped, 1);
                        if !*dropping {
                            warn!(plugin = ctx.name, listener = %name, "listener {name} is behind ({LISTENER_QUEUE} lines waiting): lines for it are dropped");
                        }
                        *dropping = true;
                    }
                }
            }
        }
    }
    drop(outs);
    for t in tasks {
        let _ = t.await;
    }
}

/// One listener's connection: lines written in order, reconnecting as needed, until
/// its channel is closed and empty, or the agent stops while it is unreachable.
async fn listener(host: String, port: u16, mut lines: mpsc::Receiver<Bytes>, mut ctx: Context) {
    let name = format!("{host}:{port}");
    let plugin = ctx.name;
    let mut conn: Option<TcpStream> = None;
    let mut backoff = BACKOFF_MIN;
    let mut pending: Option<Bytes> = None;
    let mut down_since_logged = false;
    loop {
        let l = match pending.take() {
            Some(l) => l,
            None => match lines.recv().await {
                Some(l) => l,
                None => break,
            },
        };
        if conn.as_ref().is_some_and(|s| !is_open(s)) {
            debug!(plugin, listener = %name, "connection closed by the listener");
            conn = None;
        }
        if conn.is_none() {
            let connected =
                tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect((host.as_str(), port)))
                    .await;
            match connected {
                Ok(Ok(s)) => {
                    info!(plugin, listener = %name, "connected to {name}");
                    backoff = BACKOFF_MIN;
                    down_since_logged = false;
                    conn = Some(s);
                }
                failed => {
                    let why = match failed {
                        Ok(Err(e)) => e.to_string(),
                        _ => "timed out".to_string(),
                    };
                    if !down_since_logged {
                        warn!(plugin, listener = %name, "cannot connect to {name}: {why}; retrying");
                        down_since_logged = true;
                    }
                    pending = Some(l);
                    if *ctx.done.borrow() {
                        break;
                    }
                    let stopping = tokio::select! {
                        () = tokio::time::sleep(backoff) => false,
                        changed = ctx.done.changed() => changed.is_err() || *ctx.done.borrow(),
                    };
                    if stopping {
                        break;
                    }
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                    continue;
                }
            }
        }
        let Some(stream) = conn.as_mut() else {
            pending = Some(l);
            continue;
        };
        match tokio::time::timeout(WRITE_TIMEOUT, stream.write_all(&l)).await {
            Ok(Ok(())) => PluginStats::add(&ctx.stats.done, 1),
            failed => {
                let why = match failed {
                    Ok(Err(e)) => e.to_string(),
                    _ => "timed out".to_string(),
                };
                warn!(plugin, listener = %name, "writing to {name}: {why}; reconnecting");
                conn = None;
                pending = Some(l);
            }
        }
    }
    // Given up at the stop with the listener down: what is left is dropped.
    let left = usize::from(pending.is_some()) + lines.len();
    if left > 0 {
        PluginStats::add(&ctx.stats.dropped, left);
        warn!(plugin, listener = %name, dropped = left, "stopping with lines for {name} unsent");
    }
}

/// Whether a connection still looks open: a listener that closed it reads as end of
/// file (what it sends us is read and ignored).
fn is_open(s: &TcpStream) -> bool {
    let mut buf = [0u8; 512];
    loop {
        match s.try_read(&mut buf) {
            Ok(0) => return false,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return true,
            Err(_) => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader};
    use std::net::TcpListener;
    use std::path::PathBuf;
    use std::sync::Arc;
    use std::sync::atomic::Ordering;

    use tokio::sync::watch;

    use super::*;
    use crate::plugin::{ChangeKind, PluginStats};

    #[test]
    fn lines_escape_what_would_break_them() {
        let c = Change {
            kind: ChangeKind::Rename,
            rel: "new\tname\nx\\".into(),
            from: Some("old".into()),
            is_dir: None,
        };
        assert_eq!(
            line(Path::new("/w"), &c),
            b"rename\t/w/new\\tname\\nx\\\\\t/w/old\n".to_vec()
        );
        let c = Change::of(&Op::Delete { path: "d".into() });
        assert_eq!(line(Path::new("/w"), &c), b"delete\t/w/d\n".to_vec());
    }

    #[test]
    fn lines_reach_a_listener_across_a_reconnection() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let settings = SocketSettings {
            watch: None,
            listeners: vec![("127.0.0.1".into(), port)],
        };
        let (_done_tx, done) = watch::channel(false);
        let stats = Arc::new(PluginStats::default());
        let ctx = Context {
            name: "socket",
            root: PathBuf::from("/w"),
            debug: false,
            stats: stats.clone(),
            done,
        };
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let (tx, rx) = mpsc::channel(16);
        let task = rt.spawn(run(settings, ctx, rx));
        let push = |p: &str| Op::Push {
            path: p.into(),
            recursive: false,
        };
        tx.blocking_send(push("a")).unwrap();
        // The first connection gets one line, then the listener closes it.
        let (s, _) = l.accept().unwrap();
        let mut first = String::new();
        BufReader::new(&s).read_line(&mut first).unwrap();
        assert_eq!(first, "push\t/w/a\n");
        drop(s);
        std::thread::sleep(Duration::from_millis(100));
        tx.blocking_send(push("b")).unwrap();
        let (s, _) = l.accept().unwrap();
        let mut second = String::new();
        BufReader::new(&s).read_line(&mut second).unwrap();
        assert_eq!(second, "push\t/w/b\n");
        drop(tx);
        rt.block_on(task).unwrap();
        assert_eq!(stats.done.load(Ordering::Relaxed), 2);
    }
}
