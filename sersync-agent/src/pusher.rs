//! One remote's pusher: batches taken from its queue, carried out in native-client
//! sessions (`push`), the outcome acknowledged in the queue, counted in the status and
//! written to the fail log. A burst gathers before its session; a path that fails waits
//! its own backoff while the rest flows; a remote that is down holds back only itself.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::{Notify, Semaphore, watch};
use tracing::{error, warn};

use crate::faillog::FailLog;
use crate::op::Op;
use crate::push::{self, Target};
use crate::queue::Queue;
use crate::status::RemoteStatus;

/// The longest a failing path or an unreachable remote waits between attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// The wait after a refusal a retry cannot fix (bad password, unknown module): retried
/// all the same, in case the server side is fixed.
const REFUSED_BACKOFF: Duration = Duration::from_secs(60);

/// A burst is over when no change came for this long.
const QUIET: Duration = Duration::from_millis(20);
/// The longest a burst holds its session back.
const MAX_GATHER: Duration = Duration::from_millis(250);

/// One remote's moving parts.
pub(crate) struct Lane {
    pub name: String,
    pub target: Arc<Target>,
    pub queue: Arc<Mutex<Queue>>,
    pub wake: Arc<Notify>,
    pub status: Arc<Mutex<RemoteStatus>>,
}

/// The progress line of `-r`'s push on a terminal (none elsewhere).
pub(crate) fn initial_bar(initial_sync: bool, remote: &str) -> Option<indicatif::ProgressBar> {
    use std::io::IsTerminal;
    if !initial_sync || !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} {elapsed} {prefix}: {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
    );
    bar.set_prefix(format!("initial sync to {remote}"));
    bar.enable_steady_tick(Duration::from_millis(200));
    Some(bar)
}

/// Files and bytes sent so far, on `bar`.
fn progress(bar: indicatif::ProgressBar) -> rsyncd_rs::client::Progress {
    use std::sync::atomic::AtomicU64;
    let (files, bytes) = (AtomicU64::new(0), AtomicU64::new(0));
    Arc::new(move |ev: &rsyncd_rs::client::ItemEvent| {
        if ev.what == rsyncd_rs::client::ItemWhat::Sent {
            let n = files.fetch_add(1, Ordering::Relaxed) + 1;
            let b = bytes.fetch_add(ev.size, Ordering::Relaxed) + ev.size;
            bar.set_message(format!("{n} files, {}", indicatif::HumanBytes(b)));
        }
    })
}

/// One remote's pusher: batches from its queue, one session set at a time.
pub(crate) async fn pusher(
    lane: Lane,
    settings: crate::config::AgentSettings,
    sem: Arc<Semaphore>,
    moves_pending: Arc<AtomicBool>,
    fail_log: Option<Arc<FailLog>>,
    mut bar: Option<indicatif::ProgressBar>,
    mut draining: watch::Receiver<bool>,
) {
    let mut remote_backoff: Option<Duration> = None;
    let mut retry_at: HashMap<PathBuf, (Instant, Duration)> = HashMap::new();
    let mut gathered = false;
    loop {
        let is_draining = *draining.borrow();
        let now = Instant::now();
        let batch = {
            let q = lock(&lane.queue);
            q.take_where(settings.max_paths_per_session, |p| {
                retry_at.get(p).is_none_or(|(at, _)| *at <= now)
            })
        };
        if batch.is_empty() {
            if is_draining {
                return;
            }
            let next_retry = retry_at.values().map(|(at, _)| *at).min();
            tokio::select! {
                () = lane.wake.notified() => {}
                () = sleep_until(next_retry) => {}
                _ = draining.changed() => {}
            }
            continue;
        }
        if !gathered && !is_draining && batch.len() < settings.max_paths_per_session {
            gather(&lane.queue, &settings, &moves_pending).await;
            gathered = true;
            continue;
        }
        gathered = false;
        let Ok(_permit) = sem.acquire().await else {
            return;
        };
        let mirror = batch.iter().any(|t| t.op == Op::Mirror);
        let target = match (&bar, mirror) {
            (Some(b), true) => {
                let mut t = (*lane.target).clone();
                t.connect.progress = Some(progress(b.clone()));
                Arc::new(t)
            }
            _ => lane.target.clone(),
        };
        let started = SystemTime::now();
        tracing::debug!(remote = %lane.name, ops = batch.len(), "batch");
        let report = match tokio::task::spawn_blocking(move || push::run(&target, &batch)).await {
            Ok(r) => r,
            Err(e) => {
                error!(remote = %lane.name, "session task failed: {e}");
                continue;
            }
        };
        if mirror && let Some(b) = bar.take() {
            b.finish_and_clear();
        }
        // Counted before the queue shrinks, so a status showing nothing pending shows
        // the batch's sessions too.
        {
            let mut st = lock(&lane.status);
            st.sessions += report.sessions as u64;
            st.bytes_sent += report.bytes_written;
            st.changes_pushed += report.done.len() as u64;
            st.path_failures += report.failed.len() as u64 * u64::from(report.error.is_none());
            match &report.error {
                Some(e) if e.is_retryable() => st.session_errors += 1,
                Some(_) => st.refusals += 1,
                None => {}
            }
            if let Some(e) = &report.error {
                st.failed(started, e.to_string());
            } else {
                match report.failed.first() {
                    Some((_, why)) => st.failed(started, why.clone()),
                    None => st.succeeded(started),
                }
            }
        }
        if let Err(e) = lock(&lane.queue).done(&report.done) {
            error!(remote = %lane.name, "journal write failed: {e}");
        }
        for tk in &report.done {
            retry_at.remove(op_path(&tk.op));
            if let Some(log) = &fail_log {
                log.succeeded(&lane.name, op_path(&tk.op));
            }
        }
        if let Some(log) = &fail_log {
            let code = report.error.as_ref().map_or(23, |e| e.exit_code().0);
            for (tk, _) in &report.failed {
                log.failed(&lane.name, &lane.target, op_path(&tk.op), code);
            }
        }
        if let Some(e) = &report.error {
            let wait = if e.is_retryable() {
                next_backoff(remote_backoff)
            } else {
                REFUSED_BACKOFF
            };
            remote_backoff = Some(wait);
            if e.is_retryable() {
                warn!(remote = %lane.name, retry_in = ?wait, "push failed: {e}");
            } else {
                error!(remote = %lane.name, retry_in = ?wait, "push refused, retrying anyway: {e}");
            }
            if is_draining {
                return;
            }
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                _ = draining.changed() => {}
            }
            continue;
        }
        remote_backoff = None;
        for why in &report.warnings {
            warn!(remote = %lane.name, "{why}");
        }
        for (tk, why) in &report.failed {
            let path = op_path(&tk.op).to_path_buf();
            let wait = next_backoff(retry_at.get(&path).map(|(_, d)| *d));
            warn!(remote = %lane.name, path = %path.display(), retry_in = ?wait, "{why}");
            retry_at.insert(path, (Instant::now() + wait, wait));
        }
    }
}

/// Lets a burst gather before its session: a change waits `coalesce` for company; while
/// changes keep coming, the session waits for a pause of [`QUIET`] in them, at most
/// [`MAX_GATHER`], or until a session's worth is pending. A single change goes in
/// milliseconds; a burst of thousands goes in a few sessions that overlap its writing.
///
/// A move the coalescer still holds (a rename's first half, waiting for its second)
/// holds the session too: sent before it, the moved file would go as new data.
async fn gather(
    queue: &Mutex<Queue>,
    settings: &crate::config::AgentSettings,
    moves_pending: &AtomicBool,
) {
    let started = Instant::now();
    let mut seen = lock(queue).adds();
    let mut wait = settings.coalesce;
    while started.elapsed() < MAX_GATHER {
        tokio::time::sleep(wait).await;
        wait = QUIET;
        let q = lock(queue);
        if q.len() >= settings.max_paths_per_session {
            return;
        }
        if q.adds() == seen && !moves_pending.load(Ordering::Relaxed) {
            return;
        }
        if q.adds() == seen {
            // Only a move is awaited: look again soon.
            wait = settings.coalesce;
        }
        seen = q.adds();
    }
}

fn next_backoff(prev: Option<Duration>) -> Duration {
    prev.map_or(Duration::from_millis(500), |d| (d * 2).min(MAX_BACKOFF))
}

fn op_path(op: &Op) -> &Path {
    match op {
        Op::Push { path, .. } | Op::Delete { path } => path,
        Op::Rename { to, .. } => to,
        Op::Mirror => Path::new(""),
    }
}

pub(crate) async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
