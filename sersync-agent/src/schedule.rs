//! What runs on timers: sersync's crontab (a whole-tree push every `schedule` minutes,
//! with the crontabfilter's patterns) and the fail log's rewrite every `timeToExecute`.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Semaphore, watch};
use tracing::{error, info, warn};

use crate::faillog::FailLog;
use crate::push::{self, Target};

/// Every `every`, the fail log is rewritten to what still fails.
pub(crate) async fn rewrite_fail_log(
    log: Arc<FailLog>,
    every: Duration,
    mut done: watch::Receiver<bool>,
) {
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
pub(crate) async fn crontab(
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
