//! sersync's plugins (`command`, `socket`, `refreshCDN`), fed from the stream the
//! remotes' queues are fed from: the coalescer's operations, after the filter.
//!
//! Each plugin that runs has a task of its own and a bounded channel of
//! [`PLUGIN_QUEUE`] operations. [`Plugins::feed`] never waits: when a plugin's channel is
//! full, the operation is dropped for that plugin, counted, and a warning logged once
//! per run of drops. A slow or failing plugin therefore never holds back, or loses, a
//! push (the queues are journaled; the plugins are not: what a plugin has not done when
//! the agent stops is not done after the next start).
//!
//! Which plugins run: beside the pushes, those `<sersync><plugin start="true">` (TOML:
//! `enabled = true`) turns on; with `-m NAME` that one alone, and nothing is pushed.
//! Upstream: sersync's main.cpp, ModuleInterfaceStart(), and FileSynchronize.cpp,
//! ServerSyncThread() (which runs the plugin after each event's pushes).

pub mod cdn;
pub mod command;
pub mod socket;

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::config::{
    AgentConfig, CdnSettings, CommandSettings, PLUGIN_NAMES, SettingProblem, SocketSettings,
};
use crate::op::Op;

/// How many operations wait for one plugin before new ones are dropped for it.
pub const PLUGIN_QUEUE: usize = 1024;

/// Why the plugins could not start.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// `-m` named a plugin sersync does not have.
    #[error("-m {0}: no such plugin; -m takes one of: {names}", names = PLUGIN_NAMES.join(", "))]
    UnknownMode(String),
    /// `-m` named a plugin the configuration does not describe.
    #[error("-m {0}: the configuration has no {0} plugin to run")]
    NotConfigured(String),
    /// Settings that `validate` would have refused.
    #[error("the {plugin} plugin: {why}")]
    Settings { plugin: String, why: String },
}

impl PluginError {
    fn settings(plugin: &str, problems: Vec<SettingProblem>) -> Self {
        let why: Vec<String> = problems.into_iter().map(|p| p.why).collect();
        PluginError::Settings {
            plugin: plugin.to_string(),
            why: why.join("; "),
        }
    }
}

/// Checks a `-m` name: sersync's plugin names (its help also lists `http`, which it
/// never had: it answers "module name error", as we do).
///
/// # Errors
/// [`PluginError::UnknownMode`], listing the names there are.
pub fn check_mode(name: &str) -> Result<(), PluginError> {
    if PLUGIN_NAMES.contains(&name) {
        Ok(())
    } else {
        Err(PluginError::UnknownMode(name.to_string()))
    }
}

/// The tree `-m name` watches: the plugin's own `localpath` where it has one (socket,
/// refreshCDN), as sersync's ModuleInterfaceStart() watches `m_watch`; the agent's
/// otherwise (command, as sersync's CommandInterface takes `<sersync><localpath>`).
pub fn watch_alone(cfg: &AgentConfig, name: &str) -> PathBuf {
    let own = cfg
        .plugins
        .iter()
        .find(|p| p.name == name)
        .and_then(|p| match name {
            "socket" => SocketSettings::from_settings(&p.settings).ok()?.watch,
            "refreshCDN" => CdnSettings::from_settings(&p.settings).ok()?.watch,
            _ => None,
        });
    own.unwrap_or_else(|| cfg.watch.clone())
}

/// A plugin's counters: in the status file and the metrics, logged when it stops.
#[derive(Debug, Default)]
pub struct PluginStats {
    /// Changes carried out: commands that succeeded, lines written, URLs accepted.
    pub done: AtomicU64,
    /// Changes that failed: a command's non-zero exit or timeout, a batch of URLs given
    /// up after its last attempt.
    pub failed: AtomicU64,
    /// Changes dropped because the plugin (or one of its listeners) was behind.
    pub dropped: AtomicU64,
}

impl PluginStats {
    pub(crate) fn add(counter: &AtomicU64, n: usize) {
        counter.fetch_add(u64::try_from(n).unwrap_or(u64::MAX), Ordering::Relaxed);
    }
}

/// What a plugin's task runs with besides its own settings.
#[derive(Debug, Clone)]
pub struct Context {
    /// The plugin's name, for logs.
    pub name: &'static str,
    /// The watched tree: operations' paths are relative to it.
    pub root: PathBuf,
    /// confxml's `<debug start="true">`: commands' output is logged.
    pub debug: bool,
    pub stats: Arc<PluginStats>,
    /// Turns true when the agent stops: retries and reconnections give up.
    pub done: watch::Receiver<bool>,
}

/// What kind of change a plugin is told of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    Push,
    Delete,
    Rename,
}

impl ChangeKind {
    /// The word plugins are given (`SERSYNC_EVENT`, the socket lines).
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Push => "push",
            ChangeKind::Delete => "delete",
            ChangeKind::Rename => "rename",
        }
    }
}

/// One operation as the plugins see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub kind: ChangeKind,
    /// Relative to the watched root (`""` is the root); for a rename, the new name.
    pub rel: PathBuf,
    /// A rename's old name, relative.
    pub from: Option<PathBuf>,
    /// Whether it is a directory, when the operation says (a recursive push, the whole
    /// tree); `None` when it does not.
    pub is_dir: Option<bool>,
}

impl Change {
    /// The change `op` stands for. The whole tree (`-r`'s mirror, a rescan of the root)
    /// is a push of the root directory.
    pub fn of(op: &Op) -> Change {
        let (kind, rel, from, is_dir) = match op {
            Op::Push { path, recursive } => (
                ChangeKind::Push,
                path.clone(),
                None,
                recursive.then_some(true),
            ),
            Op::Delete { path } => (ChangeKind::Delete, path.clone(), None, None),
            Op::Rename { from, to } => (ChangeKind::Rename, to.clone(), Some(from.clone()), None),
            Op::Mirror => (ChangeKind::Push, PathBuf::new(), None, Some(true)),
        };
        Change {
            kind,
            rel,
            from,
            is_dir,
        }
    }
}

/// `rel` below `root`, the root itself for `""`.
pub fn absolute(root: &Path, rel: &Path) -> PathBuf {
    if rel.as_os_str().is_empty() {
        root.to_path_buf()
    } else {
        root.join(rel)
    }
}

/// `rel` as the plugins write it: `.` for the root.
pub fn shown_rel(rel: &Path) -> &Path {
    if rel.as_os_str().is_empty() {
        Path::new(".")
    } else {
        rel
    }
}

/// Whether `path` is `dir` or below it, by bytes (`/w` is not below `/w2`).
pub fn is_within(path: &Path, dir: &Path) -> bool {
    path.starts_with(dir) || dir.as_os_str().as_bytes() == b"/"
}

/// The next operations for a plugin: waits for one, then takes what else is waiting,
/// up to `max`. `None` once the channel is closed and empty.
pub async fn next_batch(rx: &mut mpsc::Receiver<Op>, max: usize) -> Option<Vec<Op>> {
    let first = rx.recv().await?;
    let mut batch = vec![first];
    while batch.len() < max {
        match rx.try_recv() {
            Ok(op) => batch.push(op),
            Err(_) => break,
        }
    }
    Some(batch)
}

/// Where a plugin's operations go in.
#[derive(Debug)]
struct Feed {
    name: &'static str,
    tx: mpsc::Sender<Op>,
    stats: Arc<PluginStats>,
    /// Whether the last operation offered was dropped (a warning per run of drops).
    dropping: bool,
}

/// The running plugins' inlets. Dropping it closes their channels: each finishes what
/// it holds and stops.
#[derive(Debug, Default)]
pub struct Plugins {
    feeds: Vec<Feed>,
}

impl Plugins {
    /// Starts the plugins that run (`only`, from `-m`, or those turned on), each a task
    /// on the current runtime, watching `cfg.watch`; their handles are returned for the
    /// agent to wait on (and abort after its drain).
    ///
    /// # Errors
    /// `only` is not configured, or a plugin's settings do not read (what `validate`
    /// refuses).
    pub fn start(
        cfg: &AgentConfig,
        only: Option<&str>,
        done: &watch::Receiver<bool>,
    ) -> Result<(Plugins, Vec<JoinHandle<()>>), PluginError> {
        if let Some(name) = only {
            check_mode(name)?;
            if !cfg.plugins.iter().any(|p| p.name == name) {
                return Err(PluginError::NotConfigured(name.to_string()));
            }
        }
        let mut plugins = Plugins::default();
        let mut tasks = Vec::new();
        for p in &cfg.plugins {
            let runs = match only {
                Some(name) => p.name == name,
                None => p.enabled,
            };
            if !runs {
                continue;
            }
            let (tx, rx) = mpsc::channel(PLUGIN_QUEUE);
            let stats = Arc::new(PluginStats::default());
            let Some(&name) = PLUGIN_NAMES.iter().find(|&&n| n == p.name) else {
                return Err(PluginError::UnknownMode(p.name.clone()));
            };
            let ctx = Context {
                name,
                root: cfg.watch.clone(),
                debug: cfg.debug,
                stats: stats.clone(),
                done: done.clone(),
            };
            let task = match name {
                "command" => {
                    let s = CommandSettings::from_settings(&p.settings)
                        .map_err(|e| PluginError::settings(name, e))?;
                    let runner = command::Runner::new(s, ctx)?;
                    tokio::spawn(runner.run(rx))
                }
                "socket" => {
                    let s = SocketSettings::from_settings(&p.settings)
                        .map_err(|e| PluginError::settings(name, e))?;
                    tokio::spawn(socket::run(s, ctx, rx))
                }
                _ => {
                    let s = CdnSettings::from_settings(&p.settings)
                        .map_err(|e| PluginError::settings(name, e))?;
                    let refresher = cdn::Refresher::new(s, ctx)?;
                    tokio::spawn(refresher.run(rx))
                }
            };
            info!(plugin = name, watch = %cfg.watch.display(), "the {name} plugin runs");
            tasks.push(task);
            plugins.feeds.push(Feed {
                name,
                tx,
                stats,
                dropping: false,
            });
        }
        Ok((plugins, tasks))
    }

    /// Whether no plugin runs.
    pub fn is_empty(&self) -> bool {
        self.feeds.is_empty()
    }

    /// Offers `ops` to every plugin without waiting: what a full channel cannot take is
    /// dropped for that plugin and counted.
    pub fn feed(&mut self, ops: &[Op]) {
        for f in &mut self.feeds {
            for op in ops {
                match f.tx.try_send(op.clone()) {
                    Ok(()) => f.dropping = false,
                    Err(_) => {
                        PluginStats::add(&f.stats.dropped, 1);
                        if !f.dropping {
                            warn!(
                                plugin = f.name,
                                dropped = f.stats.dropped.load(Ordering::Relaxed),
                                "the {} plugin is behind ({PLUGIN_QUEUE} changes waiting): \
                                 changes are dropped for it until it catches up; pushes go on",
                                f.name
                            );
                        }
                        f.dropping = true;
                    }
                }
            }
        }
    }

    /// The counters of the plugins that run.
    pub fn stats(&self) -> Vec<(&'static str, Arc<PluginStats>)> {
        self.feeds
            .iter()
            .map(|f| (f.name, f.stats.clone()))
            .collect()
    }

    /// Closes the plugins' channels (they finish what they hold), keeping the counters.
    pub fn close(&mut self) -> Vec<(&'static str, Arc<PluginStats>)> {
        self.feeds.drain(..).map(|f| (f.name, f.stats)).collect()
    }
}

/// Logs each plugin's counters (at the stop).
pub fn log_totals(totals: &[(&'static str, Arc<PluginStats>)]) {
    for (name, s) in totals {
        info!(
            plugin = name,
            done = s.done.load(Ordering::Relaxed),
            failed = s.failed.load(Ordering::Relaxed),
            dropped = s.dropped.load(Ordering::Relaxed),
            "the {name} plugin stopped"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(plugins: &str) -> AgentConfig {
        let text = format!("watch = '/w'\n[rsync]\nparams = '-a'\n{plugins}");
        crate::config::parse(text.as_bytes(), Path::new("t.toml")).unwrap()
    }

    const SLOW: &str = "[[plugin]]\nname = 'command'\nenabled = true\n\
                        [plugin.settings]\n'param.prefix' = '/bin/true'\n";

    #[test]
    fn changes_of_ops() {
        let c = Change::of(&Op::Rename {
            from: "a".into(),
            to: "b".into(),
        });
        assert_eq!(
            (c.kind, c.rel, c.from),
            (
                ChangeKind::Rename,
                PathBuf::from("b"),
                Some(PathBuf::from("a"))
            )
        );
        let c = Change::of(&Op::Mirror);
        assert_eq!(
            (c.kind, c.rel, c.is_dir),
            (ChangeKind::Push, PathBuf::new(), Some(true))
        );
        assert_eq!(
            absolute(Path::new("/w"), Path::new("")),
            PathBuf::from("/w")
        );
        assert_eq!(shown_rel(Path::new("")), Path::new("."));
        assert!(is_within(Path::new("/w/a"), Path::new("/w")));
        assert!(!is_within(Path::new("/w2/a"), Path::new("/w")));
        assert!(is_within(Path::new("/w2/a"), Path::new("/")));
    }

    #[test]
    fn unknown_and_unconfigured_modes_are_refused() {
        let e = check_mode("http").unwrap_err().to_string();
        assert_eq!(
            e,
            "-m http: no such plugin; -m takes one of: command, socket, refreshCDN"
        );
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let _g = rt.enter();
        let (_tx, done) = watch::channel(false);
        let e = Plugins::start(&cfg(""), Some("socket"), &done).unwrap_err();
        assert!(matches!(e, PluginError::NotConfigured(_)), "{e}");
        let (p, tasks) = Plugins::start(
            &cfg(SLOW.replace("true\n[", "false\n[").as_str()),
            None,
            &done,
        )
        .unwrap();
        assert!(p.is_empty() && tasks.is_empty(), "not turned on, not run");
    }

    #[test]
    fn a_full_plugin_drops_and_counts_without_waiting() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        // Started but never polled (the runtime is not driven): nothing is taken out.
        let _g = rt.enter();
        let (_tx, done) = watch::channel(false);
        let (mut p, _tasks) = Plugins::start(&cfg(SLOW), None, &done).unwrap();
        let ops: Vec<Op> = (0..PLUGIN_QUEUE + 10)
            .map(|i| Op::Delete {
                path: format!("f{i}").into(),
            })
            .collect();
        p.feed(&ops);
        let totals = p.close();
        assert_eq!(totals[0].1.dropped.load(Ordering::Relaxed), 10);
    }
}
