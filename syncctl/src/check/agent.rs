//! The agent's config on its own (confxml.xml or TOML, read by the agent's loader and
//! `validate()`), then the watched tree, the password file, the remotes' names and the
//! inotify budget.

use std::net::ToSocketAddrs;
use std::path::{Path, PathBuf};

use sersync_agent::config::{self, AgentConfig, ConfigError, WatcherKind};

use super::{Report, at};

/// An agent config that loaded, for the cross checks and `--remote`.
#[derive(Debug)]
pub struct Agent {
    pub path: PathBuf,
    pub config: AgentConfig,
}

/// The port the agent pushes to.
pub fn port_of(c: &AgentConfig) -> u16 {
    c.rsync.port.unwrap_or(rsyncd_rs::client::DEFAULT_PORT)
}

/// `FILE:LINE` of the setting `key` (an `Origins` key), else the file.
pub fn place(c: &AgentConfig, key: &str) -> String {
    at(&c.source, c.origins.get(key).map_or(0, |o| o.line))
}

/// Checks the agent config at `path`; `None` when it does not load.
pub fn check(path: &Path, r: &mut Report) -> Option<Agent> {
    let target = path.display().to_string();
    let c = match config::load(path) {
        Ok(c) => c,
        Err(e) => {
            r.fail("agent syntax", &target, e.to_string());
            return None;
        }
    };
    r.ok(
        "agent syntax",
        &target,
        format!("{} remote(s)", c.remotes.len()),
    );
    let problems = match c.validate() {
        Ok(()) => Vec::new(),
        Err(p) => p.0,
    };
    // Each problem under the check its setting belongs to.
    let mut by_check: Vec<(&str, &ConfigError)> = Vec::new();
    for e in &problems {
        by_check.push((check_of(&c, e), e));
    }
    for (check, e) in &by_check {
        r.fail(check, &target, e.to_string());
    }
    let failed = |name: &str| by_check.iter().any(|(c, _)| *c == name);

    check_watch(&c, r);
    if let Some(auth) = &c.rsync.auth {
        if !failed("password file") {
            let file = &auth.password_file;
            let mode = super::server::mode_of(file);
            let where_ = place(&c, "rsync.password_file");
            if mode == "0600" || mode == "0400" {
                r.ok(
                    "password file",
                    file.display().to_string(),
                    format!("{where_}: mode {mode}"),
                );
            } else {
                r.warn(
                    "password file",
                    file.display().to_string(),
                    format!("{where_}: mode {mode}: make it 600"),
                );
            }
        }
    }
    for (i, remote) in c.remotes.iter().enumerate() {
        let where_ = place(&c, &format!("remote.{i}"));
        let t = format!("{}::{}", remote.host, remote.module);
        match (remote.host.as_str(), port_of(&c)).to_socket_addrs() {
            Ok(mut addrs) => match addrs.next() {
                Some(a) => r.ok("remote resolves", t, format!("{where_}: {}", a.ip())),
                None => r.fail("remote resolves", t, format!("{where_}: no address")),
            },
            Err(e) => r.fail(
                "remote resolves",
                t,
                format!("{where_}: {}: {e}", remote.host),
            ),
        }
    }
    if !c.filter.is_empty() && !failed("filters") {
        r.ok(
            "filters",
            &target,
            format!("{} expression(s) compile", c.filter.len()),
        );
    }
    if c.events.delete && c.filter.is_empty() {
        r.warn(
            "deletes",
            &target,
            format!(
                "{}: deletes are on with no excludes: whatever goes locally (editor temporaries \
                 too, or the whole tree if the watch is emptied) is deleted on every remote",
                at(&c.source, 0)
            ),
        );
    }
    Some(Agent {
        path: path.to_path_buf(),
        config: c,
    })
}

/// The check a `validate()` problem belongs to, told by the setting it was found at.
fn check_of(c: &AgentConfig, e: &ConfigError) -> &'static str {
    let is = |key: &str| {
        c.origins
            .get(key)
            .is_some_and(|o| o.line == e.line && o.place == e.place)
    };
    if is("watch") {
        "watch path"
    } else if is("rsync.password_file") {
        "password file"
    } else if is("rsync.params") {
        "rsync params"
    } else if (0..c.filter.len()).any(|i| is(&format!("filter.exclude.{i}"))) {
        "filters"
    } else {
        "agent config"
    }
}

fn check_watch(c: &AgentConfig, r: &mut Report) {
    let where_ = place(c, "watch");
    let t = c.watch.display().to_string();
    if !c.watch.is_dir() {
        r.fail("watch path", t, format!("{where_}: no such directory"));
        return;
    }
    r.ok("watch path", &t, format!("{where_}: exists"));
    if c.agent.watcher == WatcherKind::Fanotify {
        check_fanotify(&c.watch, &t, r);
        return;
    }
    let limit = std::fs::read_to_string("/proc/sys/fs/inotify/max_user_watches")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok());
    let Some(limit) = limit else {
        r.warn(
            "inotify watches",
            t,
            "cannot read fs.inotify.max_user_watches",
        );
        return;
    };
    let dirs = count_dirs(&c.watch, limit + 1);
    let detail = format!("{dirs} directories to watch, fs.inotify.max_user_watches = {limit}");
    if dirs > limit {
        r.fail(
            "inotify watches",
            t,
            format!(
                "{detail}: raise it (sysctl), or watch with fanotify \
                 ([agent] watcher = \"fanotify\": no watch per directory)"
            ),
        );
    } else if dirs > limit / 2 {
        r.warn(
            "inotify watches",
            t,
            format!("{detail}: over half, shared with every other watcher"),
        );
    } else {
        r.ok("inotify watches", t, detail);
    }
}

/// Fanotify mode's needs, as far as this machine can tell: the kernel, a filesystem
/// that reports file handles, and root (the agent's, which is usually not syncctl's).
fn check_fanotify(watch: &Path, t: &str, r: &mut Report) {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let release = release.trim();
    let version: Vec<u32> = release
        .split(|ch: char| !ch.is_ascii_digit())
        .take(2)
        .filter_map(|n| n.parse().ok())
        .collect();
    if version.len() == 2 && (version[0], version[1]) < (5, 9) {
        r.fail(
            "fanotify",
            t,
            format!("Linux {release}: fanotify mode needs 5.9 or later (FAN_REPORT_DFID_NAME)"),
        );
        return;
    }
    use nix::sys::statfs::{FUSE_SUPER_MAGIC, NFS_SUPER_MAGIC, OVERLAYFS_SUPER_MAGIC, statfs};
    match statfs(watch) {
        Ok(fs) => {
            let kind = fs.filesystem_type();
            let without_handles = [
                (OVERLAYFS_SUPER_MAGIC, "overlayfs"),
                (FUSE_SUPER_MAGIC, "FUSE"),
                (NFS_SUPER_MAGIC, "NFS"),
            ];
            if let Some((_, name)) = without_handles.iter().find(|(m, _)| *m == kind) {
                r.fail(
                    "fanotify",
                    t,
                    format!("on {name}, which cannot report file handles to fanotify: use inotify"),
                );
                return;
            }
        }
        Err(e) => {
            r.warn("fanotify", t, format!("cannot tell the filesystem: {e}"));
            return;
        }
    }
    if !nix::unistd::geteuid().is_root() {
        r.warn(
            "fanotify",
            t,
            format!("Linux {release}; the agent must run as root in fanotify mode"),
        );
    } else {
        r.ok(
            "fanotify",
            t,
            format!(
                "Linux {release}, a filesystem with file handles, root: one mark, no watch limit"
            ),
        );
    }
}

/// Directories at and under `root` (symlinks not followed), counting no further than
/// `cap`.
fn count_dirs(root: &Path, cap: u64) -> u64 {
    let mut n = 0;
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        n += 1;
        if n >= cap {
            return n;
        }
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.filter_map(Result::ok) {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(e.path());
            }
        }
    }
    n
}
