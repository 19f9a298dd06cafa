//! The running agent: the watcher's events through the coalescer into one queue per
//! remote, and one pusher per remote taking batches from its queue. A remote that is down
//! or slow only holds back its own queue; a path that fails waits its own backoff while
//! the rest flows.

use std::collections::HashMap;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use rsyncd_rs::client::{ConnectOptions, Password, Remote};
use tokio::sync::{Notify, Semaphore, watch};
use tracing::{error, info, warn};

use crate::coalesce::Coalescer;
use crate::config::AgentConfig;
use crate::faillog::FailLog;
use crate::op::Op;
use crate::push::{self, Target};
use crate::queue::Queue;
use crate::status::{RemoteStatus, Status};
use crate::watch::Watcher;

/// The longest a failing path or an unreachable remote waits between attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// The wait after a refusal a retry cannot fix (bad password, unknown module): retried
/// all the same, in case the server side is fixed.
const REFUSED_BACKOFF: Duration = Duration::from_secs(60);

/// A burst is over when no change came for this long.
const QUIET: Duration = Duration::from_millis(20);
/// At a stop, the watcher's events are taken until none came for this long.
const STOP_SETTLE: Duration = Duration::from_millis(50);
/// The longest a burst holds its session back.
const MAX_GATHER: Duration = Duration::from_secs(1);

/// How the agent was asked to run (sersync's flags).
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// `-r`: push the whole tree before watching.
    pub initial_sync: bool,
    /// `-n`: sessions at once, across remotes.
    pub sessions: usize,
    /// The grace period SIGTERM gives the queues to drain.
    pub drain: Duration,
}

/// One remote's moving parts.
struct Lane {
    name: String,
    target: Arc<Target>,
    queue: Arc<Mutex<Queue>>,
    wake: Arc<Notify>,
    status: Arc<Mutex<RemoteStatus>>,
}

/// The sessions' target for each remote of `cfg`.
pub fn targets(cfg: &AgentConfig) -> Vec<(String, Target)> {
    let params: Vec<String> = cfg
        .rsync
        .params
        .split_whitespace()
        .map(String::from)
        .collect();
    cfg.remotes
        .iter()
        .map(|r| {
            let remote = Remote {
                user: cfg.rsync.auth.as_ref().map(|a| a.user.clone()),
                host: r.host.clone(),
                port: cfg.rsync.port.unwrap_or(rsyncd_rs::client::DEFAULT_PORT),
                module: r.module.clone(),
                path: String::new(),
            };
            let connect = ConnectOptions {
                connect_timeout: Some(Duration::from_secs(10)),
                io_timeout: cfg.rsync.timeout.map(Duration::from_secs),
                password: cfg
                    .rsync
                    .auth
                    .as_ref()
                    .map(|a| Password::File(a.password_file.clone())),
                ..ConnectOptions::default()
            };
            let name = format!("{}::{}", r.host, r.module);
            (
                name,
                Target {
                    remote,
                    connect,
                    params: params.clone(),
                    root: cfg.watch.clone(),
                    deletes: cfg.events.delete,
                    excluded: filter_of(cfg),
                },
            )
        })
        .collect()
}

/// Runs the agent until `stop` turns true, then drains for `opts.drain`.
pub async fn run(
    cfg: AgentConfig,
    opts: RunOptions,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(&cfg.agent.state_dir)?;
    let excluded = exclusion(&cfg)?;
    let sem = Arc::new(Semaphore::new(opts.sessions.max(1)));
    let mut lanes = Vec::new();
    for (name, target) in targets(&cfg) {
        let journal = cfg.agent.state_dir.join(journal_name(&name));
        let first_run = !journal.exists();
        let queue = Queue::open(&journal, target.deletes, 200_000)?;
        info!(
            remote = %name,
            watch = %cfg.watch.display(),
            params = %cfg.rsync.params,
            deletes = target.deletes,
            pending = queue.len(),
            "pushing changes of {} to rsync://{}{}:{}/{}",
            cfg.watch.display(),
            target.remote.user.as_deref().map(|u| format!("{u}@")).unwrap_or_default(),
            target.remote.host,
            target.remote.port,
            target.remote.module,
        );
        lanes.push((
            Lane {
                name,
                target: Arc::new(target),
                queue: Arc::new(Mutex::new(queue)),
                wake: Arc::new(Notify::new()),
                status: Arc::default(),
            },
            first_run,
        ));
    }
    for p in cfg.plugins.iter().filter(|p| p.enabled) {
        warn!(plugin = %p.name, "the {} plugin is configured but not run by this version", p.name);
    }
    // Watch first, so that nothing changed during the initial push is missed.
    let ex = excluded.clone();
    let watcher = Watcher::new(&cfg.watch, move |p: &Path| ex(p))?;
    let mut events = watcher.spawn()?.events;
    for (lane, first_run) in &lanes {
        // -r pushes everything; a restart without it catches up on what changed while
        // the agent was away (rsync's quick check sends only that).
        if opts.initial_sync || !*first_run {
            lock(&lane.queue).add(Op::Mirror)?;
            lock(&lane.queue).sync()?;
        }
    }
    let (done_tx, _) = watch::channel(false);
    let mut tasks = Vec::new();
    let moves_pending = Arc::new(AtomicBool::new(false));
    let fail_log = match &cfg.fail_log {
        Some(f) => Some(Arc::new(FailLog::open(&f.path)?)),
        None => None,
    };
    if let (Some(log), Some(f)) = (&fail_log, &cfg.fail_log) {
        tasks.push(tokio::spawn(rewrite_fail_log(
            log.clone(),
            f.every,
            done_tx.subscribe(),
        )));
    }
    if let Some(c) = &cfg.crontab {
        for (lane, _) in &lanes {
            tasks.push(tokio::spawn(crontab(
                lane.name.clone(),
                lane.target.clone(),
                c.clone(),
                sem.clone(),
                done_tx.subscribe(),
            )));
        }
    }
    for (lane, _) in &lanes {
        tasks.push(tokio::spawn(pusher(
            Lane {
                name: lane.name.clone(),
                target: lane.target.clone(),
                queue: lane.queue.clone(),
                wake: lane.wake.clone(),
                status: lane.status.clone(),
            },
            cfg.agent.clone(),
            sem.clone(),
            moves_pending.clone(),
            fail_log.clone(),
            initial_bar(opts.initial_sync, &lane.name),
            done_tx.subscribe(),
        )));
        lane.wake.notify_one();
    }
    let status = Status::new(&cfg.agent.state_dir);
    let ex = excluded.clone();
    let mut coalescer = Coalescer::new(cfg.events, Box::new(move |p: &Path| ex(p)));
    let mut status_tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        let deadline = coalescer.next_deadline();
        let ops = tokio::select! {
            ev = events.recv() => match ev {
                Some(ev) => coalescer.feed(ev, Instant::now()),
                None => {
                    error!("the watcher stopped");
                    break;
                }
            },
            () = sleep_until(deadline) => coalescer.tick(Instant::now()),
            _ = status_tick.tick() => {
                status.write(lanes.iter().map(|(l, _)| (l.name.as_str(), &*l.queue, &*l.status)));
                Vec::new()
            }
            _ = stop.changed() => break,
        };
        moves_pending.store(coalescer.next_deadline().is_some(), Ordering::Relaxed);
        if ops.is_empty() {
            continue;
        }
        enqueue(&lanes, &ops);
    }
    // What was changed before the stop is pushed too: the events the watcher has read
    // (it reads the kernel's queue as they come) and the moves the coalescer holds.
    let settle_until = Instant::now() + MAX_GATHER;
    while Instant::now() < settle_until {
        match tokio::time::timeout(STOP_SETTLE, events.recv()).await {
            Ok(Some(ev)) => {
                let ops = coalescer.feed(ev, Instant::now());
                enqueue(&lanes, &ops);
            }
            Ok(None) | Err(_) => break,
        }
    }
    let ops = coalescer.tick(Instant::now() + Duration::from_secs(1));
    enqueue(&lanes, &ops);
    // Drain: the pushers finish what is queued, within the grace period.
    let _ = done_tx.send(true);
    let drained = tokio::time::timeout(opts.drain, async {
        for t in tasks {
            let _ = t.await;
        }
    })
    .await;
    status.write(
        lanes
            .iter()
            .map(|(l, _)| (l.name.as_str(), &*l.queue, &*l.status)),
    );
    if drained.is_err() {
        for (lane, _) in &lanes {
            let left = lock(&lane.queue).len();
            if left > 0 {
                warn!(remote = %lane.name, pending = left, "stopping with changes pending; they are journaled and go after the next start");
            }
        }
    }
    Ok(())
}

/// The progress line of `-r`'s push on a terminal (none elsewhere).
fn initial_bar(initial_sync: bool, remote: &str) -> Option<indicatif::ProgressBar> {
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

/// Puts `ops` in every remote's queue, journaled, and wakes the pushers.
fn enqueue(lanes: &[(Lane, bool)], ops: &[Op]) {
    if ops.is_empty() {
        return;
    }
    tracing::debug!(?ops, "queued");
    for (lane, _) in lanes {
        let mut q = lock(&lane.queue);
        for op in ops {
            if let Err(e) = q.add(op.clone()) {
                error!(remote = %lane.name, "journal write failed: {e}");
            }
        }
        if let Err(e) = q.sync() {
            error!(remote = %lane.name, "journal sync failed: {e}");
        }
        drop(q);
        lane.wake.notify_one();
    }
}

/// One remote's pusher: batches from its queue, one session set at a time.
async fn pusher(
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
    let mut idle = true;
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
            idle = true;
            tokio::select! {
                () = lane.wake.notified() => {}
                () = sleep_until(next_retry) => {}
                _ = draining.changed() => {}
            }
            continue;
        }
        if !gathered && !is_draining && batch.len() < settings.max_paths_per_session {
            gather(&lane.queue, &settings, idle, &moves_pending).await;
            idle = false;
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

/// Every `every`, the fail log is rewritten to what still fails.
async fn rewrite_fail_log(log: Arc<FailLog>, every: Duration, mut done: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                if let Err(e) = log.rewrite() {
                    warn!("fail log rewrite failed: {e}");
                }
            }
            _ = done.changed() => return,
        }
    }
}

/// sersync's crontab: every `c.every`, the whole tree in one session, with the
/// crontabfilter's excludes (the first one `c.every` after the start, as sersync's).
async fn crontab(
    name: String,
    target: Arc<Target>,
    c: crate::config::Crontab,
    sem: Arc<Semaphore>,
    mut done: watch::Receiver<bool>,
) {
    let every = c.every.max(Duration::from_secs(1));
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = done.changed() => return,
        }
        let Ok(_permit) = sem.acquire().await else {
            return;
        };
        let t = target.clone();
        let excludes = c.excludes.clone();
        match tokio::task::spawn_blocking(move || push::full_sync(&t, &excludes)).await {
            Ok(r) if r.error.is_none() && r.failed.is_empty() => {
                info!(remote = %name, bytes = r.bytes_written, "crontab full sync done");
            }
            Ok(r) => {
                let why = r
                    .error
                    .map(|e| e.to_string())
                    .or_else(|| r.failed.first().map(|(_, w)| w.clone()))
                    .unwrap_or_default();
                warn!(remote = %name, "crontab full sync failed: {why}");
            }
            Err(e) => error!(remote = %name, "crontab task failed: {e}"),
        }
    }
}

/// Lets a burst gather before its session: a change after a quiet spell waits
/// `coalesce` for company; while changes keep coming, the session waits for a pause of
/// [`QUIET`] in them, at most [`MAX_GATHER`], or until a session's worth is pending. A
/// single change goes in milliseconds, a burst of thousands in a few sessions.
///
/// A move the coalescer still holds (a rename's first half, waiting for its second)
/// holds the session too: sent before it, the moved file would go as new data.
async fn gather(
    queue: &Mutex<Queue>,
    settings: &crate::config::AgentSettings,
    idle: bool,
    moves_pending: &AtomicBool,
) {
    let started = Instant::now();
    let mut seen = lock(queue).adds();
    let mut wait = if idle { settings.coalesce } else { QUIET };
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

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The journal file of a remote: its name with anything but letters, digits, `.`, `-`
/// and `_` replaced.
pub fn journal_name(remote: &str) -> String {
    let safe: String = remote
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{safe}.journal")
}

/// The filter as the client's local filter (`None` without one; expressions that do not
/// compile were refused by `validate`).
fn filter_of(cfg: &AgentConfig) -> Option<rsyncd_rs::client::LocalFilter> {
    if cfg.filter.is_empty() {
        return None;
    }
    let f = exclusion(cfg).ok()?;
    Some(rsyncd_rs::client::LocalFilter(Arc::new(
        move |name: &[u8], _| f(Path::new(std::ffi::OsStr::from_bytes(name))),
    )))
}

/// Whether a path relative to the watched root is never pushed.
type Excluded = Arc<dyn Fn(&Path) -> bool + Send + Sync>;

/// The filter's excludes as one predicate on relative paths: as sersync matches them,
/// each expression against the whole path relative to the watched root (`(.*)\.gz`
/// excludes `x.gz` and `sub/x.gz`, not `x.gz.bak`; `^info/*` excludes `info`, not
/// `sub/info/a`).
fn exclusion(cfg: &AgentConfig) -> anyhow::Result<Excluded> {
    let set = regex::RegexSet::new(cfg.filter.iter().map(|e| format!("^(?:{e})$")))?;
    Ok(Arc::new(move |p: &Path| {
        !set.is_empty() && set.is_match(&p.to_string_lossy())
    }))
}
