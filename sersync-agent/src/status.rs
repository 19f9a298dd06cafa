//! What `sersync-agent status` shows: the running agent writes, twice a second, one JSON
//! file in its state directory (written beside and renamed over, so a reader never sees
//! half of it); `status` reads it and says how old it is.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::queue::Queue;

/// The status file's name in the state directory.
pub const STATUS_FILE: &str = "status.json";

/// One remote's counters, kept by its pusher.
#[derive(Debug, Clone, Default)]
pub struct RemoteStatus {
    pub sessions: u64,
    /// Bytes the sessions sent.
    pub bytes_sent: u64,
    /// Changes carried out (acknowledged in the queue).
    pub changes_pushed: u64,
    /// Sessions that failed as a whole and can be retried (down, timed out, closed).
    pub session_errors: u64,
    /// Sessions refused in a way a retry cannot fix (auth, unknown module).
    pub refusals: u64,
    /// Paths that failed in a session that went through.
    pub path_failures: u64,
    pub last_success: Option<SystemTime>,
    pub last_failure: Option<(SystemTime, String)>,
}

impl RemoteStatus {
    pub fn succeeded(&mut self, at: SystemTime) {
        self.last_success = Some(at);
    }

    pub fn failed(&mut self, at: SystemTime, why: String) {
        self.last_failure = Some((at, why));
    }
}

/// The file's content.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Snapshot {
    pub pid: u32,
    /// Unix time it was written.
    pub written: u64,
    /// Kernel watches: one per directory with inotify, one filesystem mark with
    /// fanotify.
    pub watches: usize,
    /// Kernel queue overflows since the start (each healed by a rescan).
    pub overflows: u64,
    pub remotes: Vec<RemoteSnapshot>,
    /// The plugins that run, with their counters (none in older status files).
    #[serde(default)]
    pub plugins: Vec<PluginSnapshot>,
}

/// One running plugin's counters.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PluginSnapshot {
    pub plugin: String,
    /// Changes carried out: commands that succeeded, lines written, URLs accepted.
    pub done: u64,
    /// Commands that failed or timed out, URLs given up after their last attempt.
    pub failed: u64,
    /// Changes dropped because the plugin was behind.
    pub dropped: u64,
}

/// The plugins' counters, by name.
pub type PluginCounters = [(&'static str, std::sync::Arc<crate::plugin::PluginStats>)];

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RemoteSnapshot {
    pub remote: String,
    pub pending: usize,
    /// Seconds the oldest pending change has waited.
    pub oldest_pending_secs: Option<f64>,
    pub sessions: u64,
    pub bytes_sent: u64,
    pub changes_pushed: u64,
    pub session_errors: u64,
    pub refusals: u64,
    pub path_failures: u64,
    pub last_success: Option<u64>,
    pub last_failure: Option<u64>,
    pub last_failure_reason: Option<String>,
}

/// The writer of the status file.
#[derive(Debug)]
pub struct Status {
    path: PathBuf,
}

impl Status {
    pub fn new(state_dir: &Path) -> Status {
        Status {
            path: state_dir.join(STATUS_FILE),
        }
    }

    /// Writes the status of each (name, queue, counters) and of the plugins.
    pub fn write<'a>(
        &self,
        watch: &crate::watch::WatchStats,
        lanes: impl Iterator<Item = (&'a str, &'a Mutex<Queue>, &'a Mutex<RemoteStatus>)>,
        plugins: &PluginCounters,
    ) {
        let snap = snapshot(watch, lanes, plugins);
        let tmp = self.path.with_extension("json.tmp");
        let Ok(text) = serde_json::to_vec_pretty(&snap) else {
            return;
        };
        if std::fs::write(&tmp, text).is_ok() {
            let _ = std::fs::rename(&tmp, &self.path);
        }
    }
}

/// The status now of each (name, queue, counters) and of the plugins.
pub fn snapshot<'a>(
    watch: &crate::watch::WatchStats,
    lanes: impl Iterator<Item = (&'a str, &'a Mutex<Queue>, &'a Mutex<RemoteStatus>)>,
    plugins: &PluginCounters,
) -> Snapshot {
    let now = Instant::now();
    let remotes = lanes
        .map(|(name, q, st)| {
            let (pending, oldest) = {
                let q = q.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                (q.len(), q.oldest())
            };
            let st = st
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone();
            RemoteSnapshot {
                remote: name.to_string(),
                pending,
                oldest_pending_secs: oldest.map(|o| now.duration_since(o).as_secs_f64()),
                sessions: st.sessions,
                bytes_sent: st.bytes_sent,
                changes_pushed: st.changes_pushed,
                session_errors: st.session_errors,
                refusals: st.refusals,
                path_failures: st.path_failures,
                last_success: st.last_success.map(unix),
                last_failure: st.last_failure.as_ref().map(|(t, _)| unix(*t)),
                last_failure_reason: st.last_failure.map(|(_, why)| why),
            }
        })
        .collect();
    Snapshot {
        pid: std::process::id(),
        written: unix(SystemTime::now()),
        watches: watch.watches.load(std::sync::atomic::Ordering::Relaxed),
        overflows: watch.overflows.load(std::sync::atomic::Ordering::Relaxed),
        remotes,
        plugins: plugins
            .iter()
            .map(|(name, st)| {
                let n =
                    |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
                PluginSnapshot {
                    plugin: (*name).to_string(),
                    done: n(&st.done),
                    failed: n(&st.failed),
                    dropped: n(&st.dropped),
                }
            })
            .collect(),
    }
}

/// The snapshot in Prometheus' text format (version 0.0.4).
pub fn prometheus(s: &Snapshot) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, rows: &[(Option<&str>, f64)]| {
        let _ = writeln!(out, "# HELP sersync_agent_{name} {help}");
        let _ = writeln!(out, "# TYPE sersync_agent_{name} {kind}");
        for (remote, v) in rows {
            match remote {
                Some(r) => {
                    let r = r.replace('\\', "\\\\").replace('"', "\\\"");
                    let _ = writeln!(out, "sersync_agent_{name}{{remote=\"{r}\"}} {v}");
                }
                None => {
                    let _ = writeln!(out, "sersync_agent_{name} {v}");
                }
            }
        }
    };
    metric(
        "watches",
        "gauge",
        "Kernel watches: one per directory (inotify) or one filesystem mark (fanotify).",
        &[(None, s.watches as f64)],
    );
    metric(
        "overflows_total",
        "counter",
        "Kernel queue overflows, each healed by a rescan.",
        &[(None, s.overflows as f64)],
    );
    type Field = fn(&RemoteSnapshot) -> f64;
    let per_remote: [(&str, &str, &str, Field); 9] = [
        ("pending", "gauge", "Changes queued for the remote.", |r| {
            r.pending as f64
        }),
        (
            "oldest_pending_seconds",
            "gauge",
            "Age of the oldest queued change (0 when none).",
            |r| r.oldest_pending_secs.unwrap_or(0.0),
        ),
        (
            "changes_pushed_total",
            "counter",
            "Changes carried out.",
            |r| r.changes_pushed as f64,
        ),
        ("sessions_total", "counter", "rsync sessions run.", |r| {
            r.sessions as f64
        }),
        (
            "bytes_sent_total",
            "counter",
            "Bytes the sessions sent.",
            |r| r.bytes_sent as f64,
        ),
        (
            "session_errors_total",
            "counter",
            "Sessions that failed and are retried (remote down, timeout).",
            |r| r.session_errors as f64,
        ),
        (
            "refusals_total",
            "counter",
            "Sessions refused in a way a retry cannot fix (auth, unknown module).",
            |r| r.refusals as f64,
        ),
        (
            "path_failures_total",
            "counter",
            "Paths that failed in a session that went through.",
            |r| r.path_failures as f64,
        ),
        (
            "last_success_timestamp_seconds",
            "gauge",
            "Unix time of the last session that went through (0: never).",
            |r| r.last_success.unwrap_or(0) as f64,
        ),
    ];
    for (name, kind, help, field) in per_remote {
        let rows: Vec<(Option<&str>, f64)> = s
            .remotes
            .iter()
            .map(|r| (Some(r.remote.as_str()), field(r)))
            .collect();
        metric(name, kind, help, &rows);
    }
    if !s.plugins.is_empty() {
        let name = "sersync_agent_plugin_changes_total";
        let _ = writeln!(
            out,
            "# HELP {name} Changes a plugin carried out, failed, or dropped for being behind."
        );
        let _ = writeln!(out, "# TYPE {name} counter");
        for p in &s.plugins {
            for (outcome, v) in [
                ("done", p.done),
                ("failed", p.failed),
                ("dropped", p.dropped),
            ] {
                let _ = writeln!(
                    out,
                    "{name}{{plugin=\"{}\",outcome=\"{outcome}\"}} {v}",
                    p.plugin
                );
            }
        }
    }
    out
}

/// Reads the status file of the agent whose state directory is `state_dir`.
pub fn read(state_dir: &Path) -> std::io::Result<Snapshot> {
    let text = std::fs::read(state_dir.join(STATUS_FILE))?;
    serde_json::from_slice(&text).map_err(std::io::Error::other)
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plugins_are_counted_by_outcome_in_the_metrics() {
        let snap = Snapshot {
            pid: 1,
            written: 0,
            watches: 1,
            overflows: 0,
            remotes: Vec::new(),
            plugins: vec![PluginSnapshot {
                plugin: "socket".into(),
                done: 3,
                failed: 1,
                dropped: 0,
            }],
        };
        let text = prometheus(&snap);
        for line in [
            "# TYPE sersync_agent_plugin_changes_total counter",
            "sersync_agent_plugin_changes_total{plugin=\"socket\",outcome=\"done\"} 3",
            "sersync_agent_plugin_changes_total{plugin=\"socket\",outcome=\"failed\"} 1",
            "sersync_agent_plugin_changes_total{plugin=\"socket\",outcome=\"dropped\"} 0",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in {text}");
        }
        // An old status file, written before plugins were counted, still reads.
        let old = r#"{"pid":1,"written":0,"watches":2,"overflows":0,"remotes":[]}"#;
        let read: Snapshot = serde_json::from_str(old).unwrap();
        assert!(read.plugins.is_empty());
    }
}
