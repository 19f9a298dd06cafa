//! The optional Prometheus endpoint (`[agent] metrics = "127.0.0.1:9109"`): `GET
//! /metrics` answers with the status snapshot in Prometheus' text format (hyper, HTTP/1.1,
//! on the agent's runtime; each scrape reads the queues' counters, never waits on the
//! event loop).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use tokio::sync::watch;
use tracing::{info, warn};

use crate::status::{Snapshot, prometheus};

/// Listens on `addr` (bound before this returns, so a taken port is an error at start)
/// and answers scrapes with `snapshot()` until `done` turns true.
pub async fn serve(
    addr: SocketAddr,
    snapshot: impl Fn() -> Snapshot + Send + Sync + 'static,
    mut done: watch::Receiver<bool>,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("metrics: cannot listen on {addr}: {e}"))?;
    info!(%addr, "serving Prometheus metrics at /metrics");
    let snapshot = Arc::new(snapshot);
    Ok(tokio::spawn(async move {
        loop {
            let stream = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        warn!("metrics: accept failed: {e}");
                        continue;
                    }
                },
                _ = done.changed() => return,
            };
            let snapshot = snapshot.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let snapshot = snapshot.clone();
                    async move { Ok::<_, Infallible>(answer(&req, || snapshot())) }
                });
                let io = hyper_util::rt::TokioIo::new(stream);
                if let Err(e) = hyper::server::conn::http1::Builder::new()
                    .serve_connection(io, service)
                    .await
                {
                    warn!("metrics: {e}");
                }
            });
        }
    }))
}

/// The answer to one request: the metrics for `GET /metrics`, 404 otherwise.
fn answer(req: &Request<Incoming>, snapshot: impl Fn() -> Snapshot) -> Response<Full<Bytes>> {
    let mut r = if req.method() == Method::GET && req.uri().path() == "/metrics" {
        let mut r = Response::new(Full::new(Bytes::from(prometheus(&snapshot()))));
        r.headers_mut().insert(
            hyper::header::CONTENT_TYPE,
            hyper::header::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        );
        r
    } else {
        let mut r = Response::new(Full::new(Bytes::from_static(b"only GET /metrics here\n")));
        *r.status_mut() = StatusCode::NOT_FOUND;
        r
    };
    r.headers_mut().insert(
        hyper::header::CACHE_CONTROL,
        hyper::header::HeaderValue::from_static("no-store"),
    );
    r
}
