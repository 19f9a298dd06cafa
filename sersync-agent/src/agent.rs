//! The running agent: the watcher's events through the coalescer into one queue per
//! remote, and one pusher per remote taking batches from its queue. A remote that is down
//! or slow only holds back its own queue; a path that fails waits its own backoff while
//! the rest flows. The same operations go to the plugins that run (see [`crate::plugin`]);
//! with `-m` to one plugin alone, and nothing is pushed.

use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rsyncd_rs::client::{ConnectOptions, Password, Remote};
use tokio::sync::{Notify, Semaphore, watch};
use tracing::{error, info, warn};

use crate::coalesce::Coalescer;
use crate::config::AgentConfig;
use crate::config::WatcherKind;
use crate::faillog::FailLog;
use crate::op::Op;
use crate::plugin::{self, Plugins};
use crate::push::Target;
use crate::pusher::{Lane, initial_bar, lock, pusher, sleep_until};
use crate::queue::Queue;
use crate::schedule::{crontab, rewrite_fail_log};
use crate::status::Status;
use crate::watch::{FanWatcher, Interest, Watcher};

/// How often what was queued is made durable. A sync per batch of events made a burst's
/// writer wait on the filesystem's journal commits (on ext4, 4 times slower); a change
/// lost by a crash in this window is found again by the catch-up push at the next start.
const JOURNAL_SYNC_EVERY: Duration = Duration::from_millis(100);

/// The most events taken from the watcher at once.
const MAX_EVENTS_PER_BATCH: usize = 4096;

/// The I/O timeout of a session when the configuration sets none (sersync's reference
/// leaves `<timeout>` off; rsync's own default is to wait forever).
const SESSION_IO_TIMEOUT: Duration = Duration::from_secs(300);

/// At a stop, the watcher's events are taken until none came for this long, for at most
/// [`STOP_SETTLE_MAX`].
const STOP_SETTLE: Duration = Duration::from_millis(50);
const STOP_SETTLE_MAX: Duration = Duration::from_secs(1);

/// How the agent was asked to run (sersync's flags).
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// `-r`: push the whole tree before watching.
    pub initial_sync: bool,
    /// `-n`: sessions at once, across remotes.
    pub sessions: usize,
    /// The grace period SIGTERM gives the queues to drain.
    pub drain: Duration,
    /// `-m NAME`: run that plugin alone, on its own `localpath` where it has one; no
    /// remote, queue, push, crontab or fail log.
    pub only_plugin: Option<String>,
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
                // A session never waits forever on a daemon that stopped answering:
                // without <timeout>, the client's reads and writes give up after
                // SESSION_IO_TIMEOUT and the pusher retries.
                io_timeout: Some(
                    cfg.rsync
                        .timeout
                        .map_or(SESSION_IO_TIMEOUT, Duration::from_secs),
                ),
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
                    timeout: cfg.rsync.timeout,
                    excluded: filter_of(cfg),
                },
            )
        })
        .collect()
}

/// Runs the agent until `stop` turns true, then drains for `opts.drain`.
pub async fn run(
    mut cfg: AgentConfig,
    opts: RunOptions,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    if let Some(name) = &opts.only_plugin {
        plugin::check_mode(name)?;
        cfg.watch = plugin::watch_alone(&cfg, name);
    }
    let pushing = opts.only_plugin.is_none();
    std::fs::create_dir_all(&cfg.agent.state_dir)?;
    let excluded = exclusion(&cfg)?;
    let sem = Arc::new(Semaphore::new(opts.sessions.max(1)));
    let mut lanes = Vec::new();
    for (name, target) in targets(&cfg).into_iter().filter(|_| pushing) {
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
    // Watch first, so that nothing changed during the initial push is missed.
    let ex = excluded.clone();
    let watching = match cfg.agent.watcher {
        WatcherKind::Inotify => Watcher::new(&cfg.watch, move |p: &Path| ex(p))?.spawn()?,
        WatcherKind::Fanotify => {
            let interest = Interest {
                modify: cfg.events.modify,
                attrib: cfg.events.attrib,
            };
            crate::watch::spawn(FanWatcher::new(&cfg.watch, interest, move |p: &Path| {
                ex(p)
            })?)?
        }
    };
    let watch_stats = watching.stats.clone();
    let mut events = watching.events;
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
    let fail_log = match cfg.fail_log.as_ref().filter(|_| pushing) {
        Some(f) => Some(Arc::new(FailLog::open(&f.path)?)),
        None => None,
    };
    let (mut plugins, plugin_tasks) =
        Plugins::start(&cfg, opts.only_plugin.as_deref(), &done_tx.subscribe())?;
    let plugin_aborts: Vec<_> = plugin_tasks.iter().map(|t| t.abort_handle()).collect();
    tasks.extend(plugin_tasks);
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
    let plugin_stats = plugins.stats();
    let metrics = match cfg.agent.metrics {
        Some(addr) => {
            let lanes: Vec<_> = lanes
                .iter()
                .map(|(l, _)| (l.name.clone(), l.queue.clone(), l.status.clone()))
                .collect();
            let stats = watch_stats.clone();
            let plugin_stats = plugin_stats.clone();
            Some(
                crate::metrics::serve(
                    addr,
                    move || {
                        crate::status::snapshot(
                            &stats,
                            lanes.iter().map(|(n, q, s)| (n.as_str(), &**q, &**s)),
                            &plugin_stats,
                        )
                    },
                    done_tx.subscribe(),
                )
                .await?,
            )
        }
        None => None,
    };
    let ex = excluded.clone();
    let mut coalescer = Coalescer::new(cfg.events, Box::new(move |p: &Path| ex(p)));
    let mut status_tick = tokio::time::interval(Duration::from_millis(500));
    let mut sync_tick = tokio::time::interval(JOURNAL_SYNC_EVERY);
    loop {
        let deadline = coalescer.next_deadline();
        let ops = tokio::select! {
            ev = events.recv() => match ev {
                Some(ev) => {
                    // What else the watcher has read goes in the same batch: one journal
                    // sync per batch, not per event.
                    let now = Instant::now();
                    let mut ops = coalescer.feed(ev, now);
                    for _ in 0..MAX_EVENTS_PER_BATCH {
                        match events.try_recv() {
                            Ok(ev) => ops.extend(coalescer.feed(ev, now)),
                            Err(_) => break,
                        }
                    }
                    ops
                }
                None => {
                    error!("the watcher stopped");
                    break;
                }
            },
            () = sleep_until(deadline) => coalescer.tick(Instant::now()),
            _ = sync_tick.tick() => {
                sync_journals(&lanes);
                Vec::new()
            }
            _ = status_tick.tick() => {
                status.write(&watch_stats, lanes.iter().map(|(l, _)| (l.name.as_str(), &*l.queue, &*l.status)), &plugin_stats);
                Vec::new()
            }
            _ = stop.changed() => break,
        };
        moves_pending.store(coalescer.next_deadline().is_some(), Ordering::Relaxed);
        if ops.is_empty() {
            continue;
        }
        enqueue(&lanes, &mut plugins, &ops);
    }
    // What was changed before the stop is pushed too: the events the watcher has read
    // (it reads the kernel's queue as they come) and the moves the coalescer holds.
    let settle_until = Instant::now() + STOP_SETTLE_MAX;
    while Instant::now() < settle_until {
        match tokio::time::timeout(STOP_SETTLE, events.recv()).await {
            Ok(Some(ev)) => {
                let ops = coalescer.feed(ev, Instant::now());
                enqueue(&lanes, &mut plugins, &ops);
            }
            Ok(None) | Err(_) => break,
        }
    }
    let ops = coalescer.tick(Instant::now() + Duration::from_secs(1));
    enqueue(&lanes, &mut plugins, &ops);
    sync_journals(&lanes);
    // Drain: the pushers and the plugins finish what is queued, within the grace
    // period; plugins still at work after it are stopped (their changes are not
    // journaled).
    let plugin_totals = plugins.close();
    let _ = done_tx.send(true);
    if let Some(m) = metrics {
        let _ = m.await;
    }
    let drained = tokio::time::timeout(opts.drain, async {
        for t in tasks {
            let _ = t.await;
        }
    })
    .await;
    for t in plugin_aborts {
        t.abort();
    }
    plugin::log_totals(&plugin_totals);
    status.write(
        &watch_stats,
        lanes
            .iter()
            .map(|(l, _)| (l.name.as_str(), &*l.queue, &*l.status)),
        &plugin_totals,
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

/// Makes every queue's journal durable (see [`JOURNAL_SYNC_EVERY`]).
fn sync_journals(lanes: &[(Lane, bool)]) {
    for (lane, _) in lanes {
        if let Err(e) = lock(&lane.queue).sync() {
            error!(remote = %lane.name, "journal sync failed: {e}");
        }
    }
}

/// Puts `ops` in every remote's queue, journaled (durable at the next
/// [`sync_journals`]), wakes the pushers, and offers them to the plugins.
fn enqueue(lanes: &[(Lane, bool)], plugins: &mut Plugins, ops: &[Op]) {
    if ops.is_empty() {
        return;
    }
    tracing::debug!(?ops, "queued");
    plugins.feed(ops);
    for (lane, _) in lanes {
        let mut q = lock(&lane.queue);
        for op in ops {
            if let Err(e) = q.add(op.clone()) {
                error!(remote = %lane.name, "journal write failed: {e}");
            }
        }
        if let Err(e) = q.flush() {
            error!(remote = %lane.name, "journal write failed: {e}");
        }
        drop(q);
        lane.wake.notify_one();
    }
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
