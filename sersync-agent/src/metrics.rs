//! The optional Prometheus endpoint (`[agent] metrics = "127.0.0.1:9109"`): `GET
//! /metrics` answers with the status snapshot in Prometheus' text format, from a thread of
//! its own (tiny_http), so a scrape never waits on the agent's event loop.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tracing::{info, warn};

use crate::status::{Snapshot, prometheus};

/// The running endpoint; it stops when dropped.
#[derive(Debug)]
pub struct Metrics {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Metrics {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Listens on `addr` and answers scrapes with `snapshot()`.
pub fn serve(
    addr: SocketAddr,
    snapshot: impl Fn() -> Snapshot + Send + 'static,
) -> anyhow::Result<Metrics> {
    let server = tiny_http::Server::http(addr)
        .map_err(|e| anyhow::anyhow!("metrics: cannot listen on {addr}: {e}"))?;
    info!(%addr, "serving Prometheus metrics at /metrics");
    let stop = Arc::new(AtomicBool::new(false));
    let stopping = stop.clone();
    let thread = std::thread::Builder::new()
        .name("sersync-metrics".into())
        .spawn(move || {
            while !stopping.load(Ordering::Relaxed) {
                let request = match server.recv_timeout(Duration::from_millis(200)) {
                    Ok(Some(r)) => r,
                    Ok(None) => continue,
                    Err(e) => {
                        warn!("metrics: {e}");
                        continue;
                    }
                };
                let found = request.method() == &tiny_http::Method::Get
                    && request.url().split('?').next() == Some("/metrics");
                let answer = if found {
                    let text = prometheus(&snapshot());
                    let header = tiny_http::Header::from_bytes(
                        &b"Content-Type"[..],
                        &b"text/plain; version=0.0.4; charset=utf-8"[..],
                    );
                    let mut r = tiny_http::Response::from_string(text);
                    if let Ok(h) = header {
                        r = r.with_header(h);
                    }
                    request.respond(r)
                } else {
                    request.respond(
                        tiny_http::Response::from_string("only GET /metrics here\n")
                            .with_status_code(404),
                    )
                };
                if let Err(e) = answer {
                    warn!("metrics: answering a scrape: {e}");
                }
            }
        })?;
    Ok(Metrics {
        stop,
        thread: Some(thread),
    })
}
