//! The command plugin: a program run for each changed path, without a shell.
//!
//! sersync ran `sh -c "PREFIX ABS_PATH SUFFIX"` for each event (upstream:
//! CommandInterface.cpp, Execute()), so a file name could run shell code. Here `prefix`
//! and `suffix` were split into words when the configuration was read, and the program
//! is executed directly with `PREFIX-WORDS... ABS_PATH SUFFIX-WORDS...` as its arguments.
//! The change is also in its environment:
//!
//! | variable | value |
//! | --- | --- |
//! | `SERSYNC_EVENT` | `push`, `delete` or `rename` (`batch` in batch mode) |
//! | `SERSYNC_PATH` | the absolute path (a rename's new name) |
//! | `SERSYNC_REL` | the same, relative to the watched root (`.` for the root) |
//! | `SERSYNC_FROM`, `SERSYNC_FROM_REL` | a rename's old name, absolute and relative (renames only) |
//! | `SERSYNC_ROOT` | the watched root |
//!
//! Runs are one at a time, as sersync ran them after each event's pushes, each killed
//! (its whole process group) after `param.timeout`. Output goes to /dev/null unless the
//! agent's debug is on; then it is logged at debug. With `param.batch="true"` (ours) the
//! program runs once per batch of changes, without a path argument, with
//! `SERSYNC_EVENT=batch`, `SERSYNC_COUNT` and the absolute paths on standard input, each
//! followed by a NUL byte (a rename gives its old name and its new one).

use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::Ordering;

use regex::bytes::RegexSet;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;
use tracing::{debug, error, warn};

use super::{
    Change, ChangeKind, Context, PluginError, PluginStats, absolute, next_batch, shown_rel,
};
use crate::config::CommandSettings;
use crate::op::Op;

/// The most changes one batch-mode run is given.
const MAX_BATCH: usize = 1000;

/// The most lines of a run's output logged (in debug); the rest is read and dropped.
const MAX_LOGGED_LINES: usize = 200;

/// The environment variables a run may be given; those not set for a run are removed,
/// so none leaks from the agent's own environment.
const VARS: [&str; 7] = [
    "SERSYNC_EVENT",
    "SERSYNC_PATH",
    "SERSYNC_REL",
    "SERSYNC_FROM",
    "SERSYNC_FROM_REL",
    "SERSYNC_ROOT",
    "SERSYNC_COUNT",
];

/// The command plugin, ready to run.
#[derive(Debug)]
pub struct Runner {
    settings: CommandSettings,
    /// The include expressions, each anchored at both ends (sersync's regex_match()).
    include: Option<RegexSet>,
    ctx: Context,
}

impl Runner {
    /// # Errors
    /// An include expression does not compile (refused by `validate` already).
    pub fn new(settings: CommandSettings, ctx: Context) -> Result<Self, PluginError> {
        let include = match &settings.include {
            Some(exprs) => {
                let anchored = exprs.iter().map(|e| format!("^(?:{e})$"));
                Some(RegexSet::new(anchored).map_err(|e| PluginError::Settings {
                    plugin: ctx.name.to_string(),
                    why: e.to_string(),
                })?)
            }
            None => None,
        };
        Ok(Runner {
            settings,
            include,
            ctx,
        })
    }

    /// Runs the command for what comes in on `rx`, until it is closed and empty.
    pub async fn run(self, mut rx: mpsc::Receiver<Op>) {
        while let Some(ops) = next_batch(&mut rx, MAX_BATCH).await {
            let changes: Vec<Change> = ops
                .iter()
                .map(Change::of)
                .filter(|c| self.includes(c))
                .collect();
            if self.settings.batch {
                if !changes.is_empty() {
                    self.run_batch(&changes).await;
                }
            } else {
                for c in &changes {
                    self.run_one(c).await;
                }
            }
        }
    }

    /// Whether the filter lets `c` run the command: with the filter on, one include
    /// expression must match the whole absolute path (sersync matches `e->path`).
    fn includes(&self, c: &Change) -> bool {
        match &self.include {
            None => true,
            Some(set) => {
                let abs = absolute(&self.ctx.root, &c.rel);
                set.is_match(abs.as_os_str().as_bytes())
            }
        }
    }

    /// The program with its prefix words, its environment cleared of our variables and
    /// given the root, its output where the debug switch says.
    fn command(&self) -> Option<Command> {
        let (program, args) = self.settings.prefix.split_first()?;
        let mut cmd = Command::new(program);
        cmd.args(args);
        for v in VARS {
            cmd.env_remove(v);
        }
        cmd.env("SERSYNC_ROOT", &self.ctx.root);
        let out = || {
            if self.ctx.debug {
                Stdio::piped()
            } else {
                Stdio::null()
            }
        };
        cmd.stdin(Stdio::null())
            .stdout(out())
            .stderr(out())
            // Its own process group, so that a timeout kills what it started too.
            .process_group(0)
            .kill_on_drop(true);
        Some(cmd)
    }

    /// One run for one change: `PREFIX... ABS_PATH SUFFIX...`.
    async fn run_one(&self, c: &Change) {
        let Some(mut cmd) = self.command() else {
            return;
        };
        let abs = absolute(&self.ctx.root, &c.rel);
        cmd.arg(&abs)
            .args(&self.settings.suffix)
            .env("SERSYNC_EVENT", c.kind.as_str())
            .env("SERSYNC_PATH", &abs)
            .env("SERSYNC_REL", shown_rel(&c.rel));
        if let (ChangeKind::Rename, Some(from)) = (c.kind, &c.from) {
            cmd.env("SERSYNC_FROM", absolute(&self.ctx.root, from))
                .env("SERSYNC_FROM_REL", shown_rel(from));
        }
        let what = abs.display().to_string();
        self.finish(cmd.spawn(), None, &what, 1).await;
    }

    /// One run for a batch: the paths on standard input, NUL-terminated.
    async fn run_batch(&self, changes: &[Change]) {
        let Some(mut cmd) = self.command() else {
            return;
        };
        let mut input = Vec::new();
        for c in changes {
            let names = c.from.iter().chain(std::iter::once(&c.rel));
            for rel in names {
                input.extend_from_slice(absolute(&self.ctx.root, rel).as_os_str().as_bytes());
                input.push(0);
            }
        }
        cmd.args(&self.settings.suffix)
            .env("SERSYNC_EVENT", "batch")
            .env("SERSYNC_COUNT", OsString::from(changes.len().to_string()))
            .stdin(Stdio::piped());
        let what = format!("a batch of {} changes", changes.len());
        self.finish(cmd.spawn(), Some(input), &what, changes.len())
            .await;
    }

    /// Feeds, waits for and reports a run of `n` changes; kills it at the timeout.
    async fn finish(
        &self,
        spawned: std::io::Result<Child>,
        input: Option<Vec<u8>>,
        what: &str,
        n: usize,
    ) {
        let plugin = self.ctx.name;
        let stats = &self.ctx.stats;
        let program = self.settings.prefix.first().map_or("", String::as_str);
        let mut child = match spawned {
            Ok(c) => c,
            Err(e) => {
                PluginStats::add(&stats.failed, n);
                error!(plugin, program, "cannot run {program} for {what}: {e}");
                return;
            }
        };
        if let (Some(bytes), Some(mut stdin)) = (input, child.stdin.take()) {
            // Written beside the wait: a program that does not read its input (or exits
            // early) must not hold the agent; a closed pipe is its choice.
            tokio::spawn(async move {
                let _ = stdin.write_all(&bytes).await;
            });
        }
        let mut readers = Vec::new();
        if let Some(o) = child.stdout.take() {
            readers.push(tokio::spawn(log_lines(o, plugin, "stdout")));
        }
        if let Some(o) = child.stderr.take() {
            readers.push(tokio::spawn(log_lines(o, plugin, "stderr")));
        }
        let status = tokio::time::timeout(self.settings.timeout, child.wait()).await;
        let outcome = match status {
            Ok(Ok(st)) => Outcome::Exited(st),
            Ok(Err(e)) => Outcome::Lost(e),
            Err(_) => {
                kill_group(&child);
                let _ = child.wait().await;
                Outcome::TimedOut
            }
        };
        for r in readers {
            let _ = r.await;
        }
        match outcome {
            Outcome::Exited(st) if st.success() => {
                PluginStats::add(&stats.done, n);
                debug!(plugin, program, "{program} done for {what}");
            }
            Outcome::Exited(st) => {
                PluginStats::add(&stats.failed, n);
                let failed = stats.failed.load(Ordering::Relaxed);
                if self.settings.ignore_error {
                    debug!(plugin, program, failed, "{program} failed for {what}: {st}");
                } else {
                    error!(plugin, program, failed, "{program} failed for {what}: {st}");
                }
            }
            Outcome::TimedOut => {
                PluginStats::add(&stats.failed, n);
                let secs = self.settings.timeout.as_secs();
                warn!(
                    plugin,
                    program, "{program} killed after {secs} s for {what}"
                );
            }
            Outcome::Lost(e) => {
                PluginStats::add(&stats.failed, n);
                error!(plugin, program, "waiting for {program} ({what}): {e}");
            }
        }
    }
}

/// How a run ended.
enum Outcome {
    Exited(ExitStatus),
    TimedOut,
    Lost(std::io::Error),
}

/// Kills the process group a run leads (it was made its leader at spawn).
fn kill_group(child: &Child) {
    use nix::sys::signal::{Signal, killpg};
    use nix::unistd::Pid;
    if let Some(pid) = child.id().and_then(|p| i32::try_from(p).ok()) {
        let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
    }
}

/// Logs a run's output at debug, line by line, up to [`MAX_LOGGED_LINES`].
async fn log_lines(out: impl AsyncRead + Unpin, plugin: &'static str, stream: &'static str) {
    let mut reader = BufReader::new(out);
    let mut line = Vec::new();
    let mut logged = 0;
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => break,
            Ok(_) if logged < MAX_LOGGED_LINES => {
                logged += 1;
                let text = String::from_utf8_lossy(&line);
                debug!(plugin, stream, "{}", text.trim_end_matches('\n'));
            }
            Ok(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use tokio::sync::watch;

    use super::*;
    use crate::plugin::PluginStats;

    fn runner(dir: &Path, prefix: &[&str], tweak: impl FnOnce(&mut CommandSettings)) -> Runner {
        let mut s = CommandSettings {
            prefix: prefix.iter().map(|s| s.to_string()).collect(),
            suffix: vec!["--end".into()],
            ignore_error: false,
            include: None,
            batch: false,
            timeout: Duration::from_secs(10),
        };
        tweak(&mut s);
        let (_tx, done) = watch::channel(false);
        let ctx = Context {
            name: "command",
            root: dir.to_path_buf(),
            debug: false,
            stats: Arc::new(PluginStats::default()),
            done,
        };
        Runner::new(s, ctx).unwrap()
    }

    /// Runs `ops` through `r` to the end; its counters (done, failed).
    fn run(r: Runner, ops: Vec<Op>) -> (u64, u64) {
        let stats = r.ctx.stats.clone();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let (tx, rx) = mpsc::channel(16);
            for op in ops {
                tx.send(op).await.unwrap();
            }
            drop(tx);
            r.run(rx).await;
        });
        (
            stats.done.load(Ordering::Relaxed),
            stats.failed.load(Ordering::Relaxed),
        )
    }

    /// A script that appends its arguments and environment to `log`, one record a run.
    fn recorder(dir: &Path) -> (PathBuf, PathBuf) {
        let script = dir.join("rec.sh");
        let log = dir.join("rec.log");
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\nfor a in \"$@\"; do printf '[%s]' \"$a\"; done >> {log}\n\
                 printf ' %s|%s|%s|%s|%s\\n' \"$SERSYNC_EVENT\" \"$SERSYNC_PATH\" \"$SERSYNC_REL\" \
                 \"$SERSYNC_FROM\" \"$SERSYNC_FROM_REL\" >> {log}\n",
                log = log.display()
            ),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        (script, log)
    }

    #[test]
    fn each_change_runs_with_path_argument_and_environment() {
        let d = tempfile::tempdir().unwrap();
        let (script, log) = recorder(d.path());
        let r = runner(d.path(), &[script.to_str().unwrap(), "first"], |_| {});
        let ops = vec![
            Op::Push {
                path: "a b".into(),
                recursive: false,
            },
            Op::Delete {
                path: "sub/c".into(),
            },
            Op::Rename {
                from: "x".into(),
                to: "y".into(),
            },
        ];
        assert_eq!(run(r, ops), (3, 0));
        let root = d.path().display();
        let want = format!(
            "[first][{root}/a b][--end] push|{root}/a b|a b||\n\
             [first][{root}/sub/c][--end] delete|{root}/sub/c|sub/c||\n\
             [first][{root}/y][--end] rename|{root}/y|y|{root}/x|x\n"
        );
        assert_eq!(std::fs::read_to_string(log).unwrap(), want);
    }

    #[test]
    fn the_filter_matches_whole_absolute_paths() {
        let d = tempfile::tempdir().unwrap();
        let (script, log) = recorder(d.path());
        let r = runner(d.path(), &[script.to_str().unwrap()], |s| {
            s.include = Some(vec![r"(.*)\.php".into()]);
        });
        let ops = vec![
            Op::Push {
                path: "a.php".into(),
                recursive: false,
            },
            Op::Push {
                path: "a.php.bak".into(),
                recursive: false,
            },
            Op::Push {
                path: "sub/b.php".into(),
                recursive: false,
            },
        ];
        assert_eq!(run(r, ops), (2, 0));
        let text = std::fs::read_to_string(log).unwrap();
        assert_eq!(text.lines().count(), 2, "{text}");
        assert!(!text.contains(".bak"), "{text}");
    }

    #[test]
    fn failures_and_timeouts_are_counted() {
        let d = tempfile::tempdir().unwrap();
        let op = || Op::Push {
            path: "f".into(),
            recursive: false,
        };
        assert_eq!(
            run(runner(d.path(), &["/bin/false"], |_| {}), vec![op()]),
            (0, 1)
        );
        let ignored = runner(d.path(), &["/bin/false"], |s| s.ignore_error = true);
        assert_eq!(run(ignored, vec![op()]), (0, 1));
        let missing = runner(d.path(), &["/nonexistent/program"], |_| {});
        assert_eq!(run(missing, vec![op()]), (0, 1));
        // A child of the program holds on too: the whole group is killed.
        let slow = runner(
            d.path(),
            &["/bin/sh", "-c", "sleep 30 & sleep 30", "sh"],
            |s| {
                s.timeout = Duration::from_millis(300);
            },
        );
        let started = Instant::now();
        assert_eq!(run(slow, vec![op()]), (0, 1));
        assert!(started.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn batch_mode_gives_paths_on_stdin() {
        let d = tempfile::tempdir().unwrap();
        let out = d.path().join("stdin");
        let script = format!(
            "cat > {}; echo \"$SERSYNC_EVENT $SERSYNC_COUNT $#\" >> {}",
            out.display(),
            out.with_extension("env").display()
        );
        let r = runner(d.path(), &["/bin/sh", "-c", &script, "sh"], |s| {
            s.batch = true
        });
        let ops = vec![
            Op::Push {
                path: "a\nb".into(),
                recursive: false,
            },
            Op::Rename {
                from: "x".into(),
                to: "y".into(),
            },
        ];
        assert_eq!(run(r, ops), (2, 0));
        let root = d.path().display();
        let want = format!("{root}/a\nb\0{root}/x\0{root}/y\0");
        assert_eq!(std::fs::read_to_string(&out).unwrap(), want);
        let env = std::fs::read_to_string(out.with_extension("env")).unwrap();
        assert_eq!(env, "batch 2 1\n", "one argument: the suffix");
    }
}
