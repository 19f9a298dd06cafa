//! The refreshCDN plugin: changed paths as CDN URLs, posted to the CDN's refresh
//! interface over plain HTTP/1.1, a request per batch.
//!
//! The URLs are built as sersync builds them (upstream: CdnRefreshInterface.cpp,
//! PackagePath()): `sendurl.base`, then either the path below `localpath.watch` or, with
//! `regexurl regex="true"`, the first group of `regexurl.match` searched in the absolute
//! path followed by what comes after the match. A directory's URL ends in `/` and goes
//! as `dirs`, a file's as `urls`. Unlike sersync, the path part is percent-encoded
//! (a space is `%20`): sersync pasted it raw into its request line.
//!
//! sersync sent one `HEAD /index.jsp?user=U&pswd=P&ok=ok&urls=URL` per event
//! (ChinaCache's interface, its credentials in the query). We send one POST per batch to
//! the same path with the same parameters as an `application/x-www-form-urlencoded`
//! body, `urls` and `dirs` repeated once per URL: a form, because those are form
//! parameters that such an interface reads from a query or a form alike, and a body
//! keeps the password out of request lines that proxies log. A 2xx answer is success;
//! anything else, or no answer in 10 s, is tried again after 0.5 s, doubling, up to
//! [`MAX_ATTEMPTS`] times; a 4xx other than 408 and 429 is not retried. A batch given up
//! is logged and counted as failed.

use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::{CONTENT_TYPE, HOST, USER_AGENT};
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tracing::{debug, error, warn};

use super::{
    Change, ChangeKind, Context, PluginError, PluginStats, absolute, is_within, next_batch,
};
use crate::config::CdnSettings;
use crate::op::Op;

/// The most changes one request carries.
const MAX_BATCH: usize = 100;

/// Attempts per batch before it is given up.
pub const MAX_ATTEMPTS: u32 = 5;

const FIRST_RETRY: Duration = Duration::from_millis(500);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The most of an answer's body read (for the debug log).
const MAX_ANSWER: usize = 64 * 1024;

/// Why one attempt failed.
#[derive(Debug, thiserror::Error)]
pub enum PostError {
    #[error("cannot connect: {0}")]
    Connect(std::io::Error),
    #[error("{0}")]
    Http(#[from] hyper::Error),
    #[error("the request could not be built: {0}")]
    Request(#[from] hyper::http::Error),
    #[error("no answer in {} s", REQUEST_TIMEOUT.as_secs())]
    Timeout,
    #[error("answered {0}")]
    Status(StatusCode),
}

impl PostError {
    /// Whether trying again may help: not for a client error the interface will give
    /// again (a bad password, a refused URL).
    fn is_retryable(&self) -> bool {
        match self {
            PostError::Status(s) if s.is_client_error() => {
                *s == StatusCode::REQUEST_TIMEOUT || *s == StatusCode::TOO_MANY_REQUESTS
            }
            PostError::Request(_) => false,
            _ => true,
        }
    }
}

/// The refreshCDN plugin, ready to run.
#[derive(Debug)]
pub struct Refresher {
    settings: CdnSettings,
    regex: Option<regex::Regex>,
    ctx: Context,
}

impl Refresher {
    /// # Errors
    /// `regexurl.match` does not compile (refused by `validate` already).
    pub fn new(settings: CdnSettings, ctx: Context) -> Result<Self, PluginError> {
        let regex = match &settings.regex {
            Some(r) => Some(regex::Regex::new(r).map_err(|e| PluginError::Settings {
                plugin: ctx.name.to_string(),
                why: e.to_string(),
            })?),
            None => None,
        };
        Ok(Refresher {
            settings,
            regex,
            ctx,
        })
    }

    /// Posts what comes in on `rx`, a request per batch, until it is closed and empty.
    pub async fn run(mut self, mut rx: mpsc::Receiver<Op>) {
        while let Some(ops) = next_batch(&mut rx, MAX_BATCH).await {
            let changes: Vec<Change> = ops.iter().map(Change::of).collect();
            let (urls, dirs) = self.urls(&changes);
            let n = urls.len() + dirs.len();
            if n == 0 {
                continue;
            }
            let body = self.form(&urls, &dirs);
            match self.post_with_retries(Bytes::from(body)).await {
                Ok(()) => {
                    PluginStats::add(&self.ctx.stats.done, n);
                    debug!(plugin = self.ctx.name, urls = n, "CDN refresh sent");
                }
                Err(e) => {
                    PluginStats::add(&self.ctx.stats.failed, n);
                    error!(
                        plugin = self.ctx.name,
                        endpoint = %self.settings.endpoint,
                        urls = n,
                        "CDN refresh given up: {e}"
                    );
                }
            }
        }
    }

    /// The URLs (files) and directory URLs of `changes`, each once, in order. A rename
    /// refreshes its old name and its new one; a path outside `localpath.watch`, or one
    /// `regexurl.match` does not find, has none.
    pub fn urls(&self, changes: &[Change]) -> (Vec<String>, Vec<String>) {
        let mut urls = Vec::new();
        let mut dirs = Vec::new();
        for c in changes {
            let is_dir = c.is_dir.unwrap_or_else(|| {
                // A push or a rename's new name is there to look at; a deletion is not.
                c.kind != ChangeKind::Delete
                    && std::fs::symlink_metadata(absolute(&self.ctx.root, &c.rel))
                        .is_ok_and(|m| m.is_dir())
            });
            for rel in std::iter::once(&c.rel).chain(c.from.as_ref()) {
                let Some(url) = self.url_of(&absolute(&self.ctx.root, rel)) else {
                    continue;
                };
                let (list, url) = if is_dir {
                    (&mut dirs, format!("{url}/"))
                } else {
                    (&mut urls, url)
                };
                if !list.contains(&url) {
                    list.push(url);
                }
            }
        }
        (urls, dirs)
    }

    /// The URL of the absolute path `abs` (without a directory's `/`).
    fn url_of(&self, abs: &Path) -> Option<String> {
        let base = &self.settings.base;
        match &self.regex {
            Some(re) => {
                let text = abs.to_string_lossy();
                let caps = re.captures(&text)?;
                let end = caps.get(0)?.end();
                let group = caps.get(1).map_or("", |g| g.as_str());
                let rest = text.get(end..).unwrap_or_default();
                let mut url = base.clone();
                encode_path(group.as_bytes(), &mut url);
                encode_path(rest.as_bytes(), &mut url);
                Some(url)
            }
            None => {
                let watch = self.settings.watch.as_deref().unwrap_or(&self.ctx.root);
                if !is_within(abs, watch) {
                    return None;
                }
                let below = abs.strip_prefix(watch).ok()?;
                let mut url = base.clone();
                if !below.as_os_str().is_empty() {
                    url.push('/');
                    encode_path(below.as_os_str().as_bytes(), &mut url);
                }
                Some(url)
            }
        }
    }

    /// The request's body: sersync's parameters, then a `urls` or `dirs` per URL.
    pub fn form(&self, urls: &[String], dirs: &[String]) -> String {
        let s = &self.settings;
        let mut pairs: Vec<(&str, &str)> =
            vec![("user", &s.user), ("pswd", &s.password), ("ok", "ok")];
        pairs.extend(urls.iter().map(|u| ("urls", u.as_str())));
        pairs.extend(dirs.iter().map(|d| ("dirs", d.as_str())));
        let encoded: Vec<String> = pairs
            .iter()
            .map(|(k, v)| format!("{}={}", form_encode(k), form_encode(v)))
            .collect();
        encoded.join("&")
    }

    async fn post_with_retries(&mut self, body: Bytes) -> Result<(), PostError> {
        let mut wait = FIRST_RETRY;
        let mut attempt = 1;
        loop {
            let result = match tokio::time::timeout(REQUEST_TIMEOUT, self.post(body.clone())).await
            {
                Ok(r) => r,
                Err(_) => Err(PostError::Timeout),
            };
            let e = match result {
                Ok(()) => return Ok(()),
                Err(e) => e,
            };
            if attempt >= MAX_ATTEMPTS || !e.is_retryable() || *self.ctx.done.borrow() {
                return Err(e);
            }
            warn!(
                plugin = self.ctx.name,
                endpoint = %self.settings.endpoint,
                attempt,
                "CDN refresh failed: {e}; trying again in {} ms",
                wait.as_millis()
            );
            let stopping = tokio::select! {
                () = tokio::time::sleep(wait) => false,
                changed = self.ctx.done.changed() => changed.is_err() || *self.ctx.done.borrow(),
            };
            if stopping {
                return Err(e);
            }
            wait *= 2;
            attempt += 1;
        }
    }

    /// One attempt: a connection, a POST, the answer's status.
    async fn post(&self, body: Bytes) -> Result<(), PostError> {
        let ep = &self.settings.endpoint;
        let stream = TcpStream::connect((ep.host.as_str(), ep.port))
            .await
            .map_err(PostError::Connect)?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        let conn = tokio::spawn(conn);
        let host = match (ep.host.contains(':'), ep.port) {
            (false, 80) => ep.host.clone(),
            (false, p) => format!("{}:{p}", ep.host),
            (true, 80) => format!("[{}]", ep.host),
            (true, p) => format!("[{}]:{p}", ep.host),
        };
        let req = Request::post(ep.path.as_str())
            .header(HOST, host)
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(
                USER_AGENT,
                concat!("sersync-agent/", env!("CARGO_PKG_VERSION")),
            )
            .body(Full::new(body))?;
        let answer = sender.send_request(req).await;
        let result = match answer {
            Ok(resp) => {
                let status = resp.status();
                let text = Limited::new(resp.into_body(), MAX_ANSWER)
                    .collect()
                    .await
                    .map(|b| b.to_bytes())
                    .unwrap_or_default();
                debug!(
                    plugin = self.ctx.name,
                    %status,
                    answer = %String::from_utf8_lossy(&text),
                    "CDN interface answered"
                );
                if status.is_success() {
                    Ok(())
                } else {
                    Err(PostError::Status(status))
                }
            }
            Err(e) => Err(PostError::Http(e)),
        };
        drop(sender);
        conn.abort();
        result
    }
}

/// Appends `bytes` (a path) percent-encoded: all but unreserved characters, `/` and the
/// sub-delimiters a path may hold.
fn encode_path(bytes: &[u8], out: &mut String) {
    for &b in bytes {
        if b.is_ascii_alphanumeric() || b"-._~/!$&'()*+,;=:@".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
}

/// `application/x-www-form-urlencoded`: a space is `+`, all but `*-._` and
/// alphanumerics percent-encoded.
fn form_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for &b in text.as_bytes() {
        match b {
            b' ' => out.push('+'),
            b if b.is_ascii_alphanumeric() || b"*-._".contains(&b) => out.push(char::from(b)),
            b => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpListener;
    use std::path::PathBuf;
    use std::sync::Arc;
    use std::sync::atomic::Ordering;

    use tokio::sync::watch;

    use super::*;
    use crate::config::Endpoint;

    fn refresher(root: &Path, watch: Option<&str>, regex: Option<&str>, port: u16) -> Refresher {
        let settings = CdnSettings {
            watch: watch.map(PathBuf::from),
            endpoint: Endpoint {
                host: "127.0.0.1".into(),
                port,
                path: "/index.jsp".into(),
            },
            user: "u".into(),
            password: "p w&".into(),
            base: "http://pic.example/cms".into(),
            regex: regex.map(String::from),
        };
        let (tx, done) = watch::channel(false);
        // The sender lives as long as the test: the plugin is never told to stop.
        std::mem::forget(tx);
        let ctx = Context {
            name: "refreshCDN",
            root: root.to_path_buf(),
            debug: false,
            stats: Arc::new(PluginStats::default()),
            done,
        };
        Refresher::new(settings, ctx).unwrap()
    }

    /// Runs `r` over deletions of `paths` until it has handled them all.
    fn run_deletes(r: Refresher, paths: &[&str]) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let (tx, rx) = mpsc::channel(paths.len().max(1));
            for p in paths {
                tx.send(Op::Delete { path: p.into() }).await.unwrap();
            }
            drop(tx);
            r.run(rx).await;
        });
    }

    fn push(p: &str) -> Change {
        Change::of(&Op::Push {
            path: p.into(),
            recursive: false,
        })
    }

    #[test]
    fn urls_as_sersync_builds_them() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("img")).unwrap();
        let root = d.path();
        let r = refresher(root, None, None, 1);
        let changes = [
            push("a b.jpg"),
            push("img"),
            Change::of(&Op::Delete {
                path: "gone.css".into(),
            }),
            Change::of(&Op::Rename {
                from: "old".into(),
                to: "new".into(),
            }),
            Change::of(&Op::Mirror),
            push("a b.jpg"),
        ];
        let (urls, dirs) = r.urls(&changes);
        let base = "http://pic.example/cms";
        assert_eq!(
            urls,
            [
                format!("{base}/a%20b.jpg"),
                format!("{base}/gone.css"),
                format!("{base}/new"),
                format!("{base}/old"),
            ]
        );
        assert_eq!(dirs, [format!("{base}/img/"), format!("{base}/")]);

        // Below a plugin watch inside the tree: the path below it; outside: none.
        let r = refresher(root, Some(&format!("{}/img", root.display())), None, 1);
        let (urls, _) = r.urls(&[push("img/x.png"), push("y.png")]);
        assert_eq!(urls, [format!("{base}/x.png")]);

        // sersync's regex mode: the first group, then what follows the match.
        let r = refresher(root, None, Some(r"/(img)/"), 1);
        let (urls, _) = r.urls(&[push("img/x.png"), push("y.png")]);
        assert_eq!(urls, [format!("{base}imgx.png")]);
    }

    #[test]
    fn the_form_escapes_every_value() {
        let d = tempfile::tempdir().unwrap();
        let r = refresher(d.path(), None, None, 1);
        let body = r.form(&["http://x/a%20b?c".into()], &["http://x/d/".into()]);
        assert_eq!(
            body,
            "user=u&pswd=p+w%26&ok=ok&urls=http%3A%2F%2Fx%2Fa%2520b%3Fc&dirs=http%3A%2F%2Fx%2Fd%2F"
        );
    }

    /// Answers each request on `l` with the next of `statuses`; the requests' heads and
    /// bodies.
    fn serve(l: TcpListener, statuses: Vec<u16>) -> std::thread::JoinHandle<Vec<(String, String)>> {
        std::thread::spawn(move || {
            let mut seen = Vec::new();
            for status in statuses {
                let (mut s, _) = l.accept().unwrap();
                let mut reader = BufReader::new(s.try_clone().unwrap());
                let mut head = String::new();
                let mut len = 0;
                loop {
                    let mut line = String::new();
                    reader.read_line(&mut line).unwrap();
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        len = v.trim().parse().unwrap();
                    }
                    if line == "\r\n" {
                        break;
                    }
                    head.push_str(&line);
                }
                let mut body = vec![0; len];
                reader.read_exact(&mut body).unwrap();
                seen.push((head, String::from_utf8(body).unwrap()));
                write!(
                    s,
                    "HTTP/1.1 {status} X\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
                )
                .unwrap();
            }
            seen
        })
    }

    #[test]
    fn a_batch_is_posted_again_after_a_500() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let server = serve(l, vec![500, 200]);
        let d = tempfile::tempdir().unwrap();
        let r = refresher(d.path(), None, None, port);
        let stats = r.ctx.stats.clone();
        run_deletes(r, &["a.jpg", "b.jpg"]);
        let seen = server.join().unwrap();
        assert_eq!(seen.len(), 2);
        assert_eq!(seen[0].1, seen[1].1, "the same batch again");
        assert!(
            seen[0].0.starts_with("POST /index.jsp HTTP/1.1\r\n"),
            "{}",
            seen[0].0
        );
        assert!(
            seen[0]
                .0
                .to_ascii_lowercase()
                .contains("content-type: application/x-www-form-urlencoded"),
            "{}",
            seen[0].0
        );
        assert!(seen[0].1.ends_with("&urls=http%3A%2F%2Fpic.example%2Fcms%2Fa.jpg&urls=http%3A%2F%2Fpic.example%2Fcms%2Fb.jpg"), "{}", seen[0].1);
        assert_eq!(stats.done.load(Ordering::Relaxed), 2);
        assert_eq!(stats.failed.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn a_client_error_is_not_retried() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let server = serve(l, vec![403]);
        let d = tempfile::tempdir().unwrap();
        let r = refresher(d.path(), None, None, port);
        let stats = r.ctx.stats.clone();
        run_deletes(r, &["a.jpg"]);
        assert_eq!(server.join().unwrap().len(), 1);
        assert_eq!(stats.failed.load(Ordering::Relaxed), 1);
    }
}
