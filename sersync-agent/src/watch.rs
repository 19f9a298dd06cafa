//! The recursive inotify watcher: one watch per directory of the tree, events turned
//! into [`WatchEvent`]s with paths relative to the root.
//!
//! What it guarantees, because a change it misses is a change never pushed:
//! - a new directory is watched first and listed after, so whatever was created in it
//!   before the watch existed is reported as [`WatchEvent::Found`];
//! - a directory renamed inside the tree keeps its watches under its new name;
//! - whenever events may have been lost (queue overflow, a watch refused for lack of
//!   `max_user_watches`, the root gone and back) it says so as [`WatchEvent::Rescan`].
//!
//! Upstream: sersync's `Inotify.cpp` (its `IN_*` mask and its per-directory watches);
//! the overflow, watch-limit and root-loss handling are ours.

mod fanotify;
mod limit;
mod map;
#[cfg(test)]
mod tests;
mod tree;

use std::ffi::OsString;
use std::fmt;
use std::fs;
use std::io;
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use inotify::{EventMask, Inotify, WatchDescriptor, WatchMask};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use crate::op::WatchEvent;
pub use fanotify::{FanWatcher, Interest};
use limit::WatchLimit;
use map::WatchMap;
use tree::is_mount_point;

/// A directory's events, sersync's set plus what keeping the map right needs
/// (`*_SELF`). `ONLYDIR`/`DONT_FOLLOW`: a name that became a file or a symlink between
/// the event and the watch is not watched; `EXCL_UNLINK`: no events from files
/// already unlinked but still open.
const DIR_MASK: WatchMask = WatchMask::CLOSE_WRITE
    .union(WatchMask::CREATE)
    .union(WatchMask::MODIFY)
    .union(WatchMask::ATTRIB)
    .union(WatchMask::DELETE)
    .union(WatchMask::MOVED_FROM)
    .union(WatchMask::MOVED_TO)
    .union(WatchMask::DELETE_SELF)
    .union(WatchMask::MOVE_SELF)
    .union(WatchMask::ONLYDIR)
    .union(WatchMask::DONT_FOLLOW)
    .union(WatchMask::EXCL_UNLINK);

/// The root may be given as a symlink to the tree: follow it there, only there.
const ROOT_MASK: WatchMask = DIR_MASK.difference(WatchMask::DONT_FOLLOW);

/// How long a directory's IN_MOVED_FROM waits for its IN_MOVED_TO before the
/// directory counts as moved out of the tree. The kernel queues the two back to back;
/// the wait only covers a read that ends between them.
const MOVE_PAIR_WINDOW: Duration = Duration::from_millis(10);

/// How often a vanished root is looked for.
const ROOT_POLL_EVERY: Duration = Duration::from_millis(500);

/// How often watches refused for lack of `max_user_watches` are tried again.
const HEAL_EVERY: Duration = Duration::from_secs(10);

/// Big enough for hundreds of events per read (each is 16 bytes plus its name).
const READ_BUFFER: usize = 64 * 1024;

/// Reads per call before returning what we have, so a busy tree cannot starve the
/// housekeeping (moved directories, healing, the root).
const READS_PER_CALL: usize = 16;

/// How many events the thread of [`Watcher::spawn`] may queue ahead of its consumer.
/// When it is full the thread stops reading, the kernel queue fills, and an overflow
/// turns into a rescan: slow, but nothing is lost.
pub const CHANNEL_CAPACITY: usize = 65_536;

/// The watcher could not start or cannot go on; everything else is logged and healed.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// `inotify_init1` failed (typically `fs.inotify.max_user_instances`).
    #[error("cannot create an inotify instance: {0}")]
    Init(#[source] io::Error),
    /// The root is not a directory we can watch.
    #[error("cannot watch {}: {source}", .path.display())]
    Root { path: PathBuf, source: io::Error },
    /// Reading or waiting on the inotify descriptor failed.
    #[error("reading inotify events: {0}")]
    Read(#[source] io::Error),
    /// The thread of [`spawn`] could not be started.
    #[error("cannot start the watcher thread: {0}")]
    Thread(#[source] io::Error),
    /// Fanotify mode cannot run here; the words say what is missing.
    #[error("{0}")]
    Fanotify(String),
}

/// A watcher [`spawn`] can run: inotify's [`Watcher`] or fanotify's [`FanWatcher`].
pub trait EventSource: Send + 'static {
    /// Waits up to `timeout` for events; an empty batch means none came.
    fn next_events_timeout(&mut self, timeout: Duration) -> Result<Vec<WatchEvent>, WatchError>;

    /// Kernel watches held now (directories for inotify, filesystem marks for
    /// fanotify) and queue overflows so far.
    fn counts(&self) -> (usize, u64);
}

/// Runs `source` on a thread of its own, so a tokio consumer can await events (with
/// a timeout) on a channel. The thread ends when the receiver is dropped.
pub fn spawn(mut source: impl EventSource) -> Result<WatchThread, WatchError> {
    use std::sync::atomic::Ordering;
    let (tx, events) = mpsc::channel(CHANNEL_CAPACITY);
    let stats = std::sync::Arc::new(WatchStats::default());
    let counts = stats.clone();
    let thread = std::thread::Builder::new()
        .name("sersync-watch".into())
        .spawn(move || {
            loop {
                if tx.is_closed() {
                    return Ok(());
                }
                let batch = match source.next_events_timeout(Duration::from_millis(500)) {
                    Ok(batch) => batch,
                    Err(e) => {
                        tracing::error!(error = %e, "the watcher stopped");
                        return Err(e);
                    }
                };
                let (watches, overflows) = source.counts();
                counts.watches.store(watches, Ordering::Relaxed);
                counts.overflows.store(overflows, Ordering::Relaxed);
                for ev in batch {
                    if tx.blocking_send(ev).is_err() {
                        return Ok(());
                    }
                }
            }
        })
        .map_err(WatchError::Thread)?;
    Ok(WatchThread {
        events,
        stats,
        thread,
    })
}

/// A regular file's close-write is to come; anything else is complete now. A new
/// hard link (more than one link at creation) is a complete file too.
fn file_created(root: &Path, path: PathBuf) -> WatchEvent {
    match fs::symlink_metadata(root.join(&path)) {
        Ok(md) if !md.file_type().is_file() || md.nlink() > 1 => {
            WatchEvent::CreateComplete { path }
        }
        // Gone already (its delete follows), or a fresh regular file.
        _ => WatchEvent::Create {
            path,
            is_dir: false,
        },
    }
}

/// A directory whose IN_MOVED_FROM has not met its IN_MOVED_TO yet.
#[derive(Debug)]
struct MovedDir {
    cookie: u32,
    rel: PathBuf,
    /// Its watch: a directory made again at `rel` meanwhile holds another.
    wd: Option<WatchDescriptor>,
    deadline: Instant,
}

/// One event copied out of the read buffer, so handling it may add watches.
#[derive(Debug)]
struct RawEvent {
    wd: WatchDescriptor,
    mask: EventMask,
    cookie: u32,
    name: Option<OsString>,
}

/// Where the root stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RootState {
    Watched,
    /// Deleted, moved away or unmounted: looked for again at `next_check`.
    Gone {
        next_check: Instant,
    },
}

/// A recursive inotify watcher of one tree.
pub struct Watcher {
    inotify: Inotify,
    root: PathBuf,
    excluded: Box<dyn Fn(&Path) -> bool + Send>,
    map: WatchMap,
    root_state: RootState,
    /// The root was a mount point: after an unmount, wait for it to be one again
    /// rather than take the empty directory beneath for the tree.
    root_is_mount: bool,
    moved_dirs: Vec<MovedDir>,
    /// Watches that reported IN_UNMOUNT: their IN_IGNORED does not mean "deleted".
    unmounted: Vec<WatchDescriptor>,
    /// Tops of subtrees left unwatched for lack of watches, and when to try again.
    unwatched: Vec<PathBuf>,
    next_heal: Option<Instant>,
    limit: WatchLimit,
    root_poll_every: Duration,
    heal_every: Duration,
    buf: Vec<u8>,
    /// Tests: refuse this many watch additions with ENOSPC, as the kernel does when
    /// `max_user_watches` is reached (a limit we must not lower on a shared machine).
    #[cfg(test)]
    refuse_watches: u32,
    /// Kernel queue overflows seen.
    overflows: u64,
}

impl EventSource for Watcher {
    fn next_events_timeout(&mut self, timeout: Duration) -> Result<Vec<WatchEvent>, WatchError> {
        Watcher::next_events_timeout(self, timeout)
    }

    fn counts(&self) -> (usize, u64) {
        (self.map.len(), self.overflows)
    }
}

impl fmt::Debug for Watcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Watcher")
            .field("root", &self.root)
            .field("watches", &self.map.len())
            .field("root_state", &self.root_state)
            .field("unwatched", &self.unwatched)
            .finish_non_exhaustive()
    }
}

/// What the watcher counts, for `status` (updated by its thread).
#[derive(Debug, Default)]
pub struct WatchStats {
    /// Directories watched now.
    pub watches: std::sync::atomic::AtomicUsize,
    /// Kernel queue overflows since the start (each healed by a rescan).
    pub overflows: std::sync::atomic::AtomicU64,
}

/// The watcher running on a thread of its own ([`Watcher::spawn`]).
#[derive(Debug)]
pub struct WatchThread {
    /// The events, in order. `None` once the thread ended: see `thread`'s result.
    pub events: mpsc::Receiver<WatchEvent>,
    /// Its counters.
    pub stats: std::sync::Arc<WatchStats>,
    /// Ends with `Ok` when `events` is dropped, with the error that stopped it otherwise.
    pub thread: JoinHandle<Result<(), WatchError>>,
}

impl Watcher {
    /// Watches `root` and every directory below it, except those `excluded` (given
    /// paths relative to `root`) says to skip. Symlinks are not followed, but for the
    /// root itself. Nothing is reported for what exists already.
    ///
    /// Errors: no inotify instance, or `root` cannot be watched.
    pub fn new(
        root: &Path,
        excluded: impl Fn(&Path) -> bool + Send + 'static,
    ) -> Result<Watcher, WatchError> {
        let inotify = Inotify::init().map_err(WatchError::Init)?;
        let mut watcher = Watcher {
            inotify,
            root: root.to_path_buf(),
            excluded: Box::new(excluded),
            map: WatchMap::default(),
            root_state: RootState::Watched,
            root_is_mount: is_mount_point(root),
            moved_dirs: Vec::new(),
            unmounted: Vec::new(),
            unwatched: Vec::new(),
            next_heal: None,
            limit: WatchLimit::system(),
            root_poll_every: ROOT_POLL_EVERY,
            heal_every: HEAL_EVERY,
            buf: vec![0; READ_BUFFER],
            overflows: 0,
            #[cfg(test)]
            refuse_watches: 0,
        };
        // The root is added alone first so that its failure is an error, not a log.
        let mut added = watcher.inotify.watches().add(root, ROOT_MASK);
        if added
            .as_ref()
            .is_err_and(|e| e.raw_os_error() == Some(libc::ENOSPC))
            && watcher.limit.raise(0)
        {
            added = watcher.inotify.watches().add(root, ROOT_MASK);
        }
        let wd = added.map_err(|source| WatchError::Root {
            path: root.to_path_buf(),
            source,
        })?;
        watcher.map.insert(wd, Path::new(""));
        let mut ignored = Vec::new();
        watcher.watch_tree(PathBuf::new(), false, &mut ignored);
        info!(root = %root.display(), watches = watcher.map.len(), "watching");
        Ok(watcher)
    }

    /// Blocks until there is at least one event.
    pub fn next_events(&mut self) -> Result<Vec<WatchEvent>, WatchError> {
        loop {
            let events = self.next_events_timeout(Duration::from_secs(3600))?;
            if !events.is_empty() {
                return Ok(events);
            }
        }
    }

    /// Waits up to `timeout` for events; an empty batch means none came.
    pub fn next_events_timeout(
        &mut self,
        timeout: Duration,
    ) -> Result<Vec<WatchEvent>, WatchError> {
        let deadline = Instant::now() + timeout;
        let mut out = Vec::new();
        loop {
            // Read what is queued before expiring moves, so that a directory's
            // IN_MOVED_TO already in the queue is never taken for a move out.
            self.read_available(&mut out)?;
            let now = Instant::now();
            self.housekeeping(now, &mut out);
            if !out.is_empty() || now >= deadline {
                return Ok(out);
            }
            let until = self.next_wakeup().map_or(deadline, |w| w.min(deadline));
            self.wait_readable(until.saturating_duration_since(now))?;
        }
    }

    /// Runs the watcher on a thread of its own ([`spawn`]).
    pub fn spawn(self) -> Result<WatchThread, WatchError> {
        spawn(self)
    }

    /// How many directories are watched now.
    pub fn watch_count(&self) -> usize {
        self.map.len()
    }

    fn next_wakeup(&self) -> Option<Instant> {
        let moves = self.moved_dirs.iter().map(|m| m.deadline).min();
        let root = match self.root_state {
            RootState::Gone { next_check } => Some(next_check),
            RootState::Watched => None,
        };
        [moves, root, self.next_heal].into_iter().flatten().min()
    }

    /// Waits until the descriptor is readable or `wait` passed.
    fn wait_readable(&self, wait: Duration) -> Result<(), WatchError> {
        // Round up so that we never spin on a deadline a few microseconds away.
        let ms = wait.as_millis().saturating_add(1).min(i32::MAX as u128);
        let timeout = PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX);
        let mut fds = [PollFd::new(self.inotify.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, timeout) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => Ok(()),
            Err(e) => Err(WatchError::Read(e.into())),
        }
    }

    /// Reads and handles whatever the kernel has queued, without blocking.
    fn read_available(&mut self, out: &mut Vec<WatchEvent>) -> Result<(), WatchError> {
        for _ in 0..READS_PER_CALL {
            let mut buf = std::mem::take(&mut self.buf);
            let raw: Vec<RawEvent> = match self.inotify.read_events(&mut buf) {
                Ok(events) => events
                    .map(|e| RawEvent {
                        wd: e.wd,
                        mask: e.mask,
                        cookie: e.cookie,
                        name: e.name.map(OsString::from),
                    })
                    .collect(),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => Vec::new(),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {
                    self.buf = buf;
                    continue;
                }
                Err(e) => {
                    self.buf = buf;
                    return Err(WatchError::Read(e));
                }
            };
            self.buf = buf;
            if raw.is_empty() {
                return Ok(());
            }
            let now = Instant::now();
            for ev in raw {
                self.handle(ev, now, out);
            }
        }
        Ok(())
    }

    /// Turns one kernel event into ours, keeping the watches and the map right.
    fn handle(&mut self, ev: RawEvent, now: Instant, out: &mut Vec<WatchEvent>) {
        if ev.mask.contains(EventMask::Q_OVERFLOW) {
            self.overflows += 1;
            warn!(
                "inotify queue overflowed: events were lost, rescanning the whole tree \
                 (raise fs.inotify.max_queued_events if this repeats)"
            );
            self.resync(out);
            return;
        }
        let Some(dir) = self.map.path_of(&ev.wd) else {
            // A watch already dropped (moved out, root lost): its late events are moot.
            return;
        };
        let is_root = dir.as_os_str().is_empty();
        if ev.mask.contains(EventMask::UNMOUNT) {
            if is_root {
                self.lose_root("unmounted", now);
            } else {
                self.unmounted.push(ev.wd);
            }
            return;
        }
        if ev.mask.contains(EventMask::IGNORED) {
            self.watch_dropped(&ev.wd, &dir, is_root, now, out);
            return;
        }
        let Some(name) = ev.name else {
            // An event on a watched directory itself. Its parent reports the same
            // change by name, so only the root's own matter.
            if is_root {
                if ev
                    .mask
                    .intersects(EventMask::DELETE_SELF | EventMask::MOVE_SELF)
                {
                    self.lose_root("deleted or moved away", now);
                } else if ev.mask.contains(EventMask::ATTRIB) {
                    out.push(WatchEvent::Attrib {
                        path: PathBuf::new(),
                        is_dir: true,
                    });
                }
            }
            return;
        };
        let path = dir.join(name);
        let is_dir = ev.mask.contains(EventMask::ISDIR);
        let m = ev.mask;
        if m.contains(EventMask::CREATE) {
            if is_dir {
                out.push(WatchEvent::Create {
                    path: path.clone(),
                    is_dir,
                });
                if !(self.excluded)(&path) {
                    self.watch_tree(path, true, out);
                }
            } else {
                out.push(self.file_created(path));
            }
        } else if m.contains(EventMask::CLOSE_WRITE) {
            out.push(WatchEvent::CloseWrite { path });
        } else if m.contains(EventMask::MODIFY) {
            out.push(WatchEvent::Modify { path });
        } else if m.contains(EventMask::ATTRIB) {
            out.push(WatchEvent::Attrib { path, is_dir });
        } else if m.contains(EventMask::DELETE) {
            // A directory's own watch reports IN_IGNORED; the map is fixed there.
            out.push(WatchEvent::Delete { path, is_dir });
        } else if m.contains(EventMask::MOVED_FROM) {
            if let Some(wd) = self.map.wd_of(&path).filter(|_| is_dir) {
                self.moved_dirs.push(MovedDir {
                    cookie: ev.cookie,
                    rel: path.clone(),
                    wd: Some(wd.clone()),
                    deadline: now + MOVE_PAIR_WINDOW,
                });
            }
            out.push(WatchEvent::MovedFrom {
                path,
                cookie: ev.cookie,
                is_dir,
            });
        } else if m.contains(EventMask::MOVED_TO) {
            out.push(WatchEvent::MovedTo {
                path: path.clone(),
                cookie: ev.cookie,
                is_dir,
            });
            if is_dir {
                self.dir_moved_to(path, ev.cookie, out);
            }
        }
    }

    fn file_created(&self, path: PathBuf) -> WatchEvent {
        file_created(&self.root, path)
    }

    /// A directory arrived at `to`: renamed inside the tree (its watches follow it), or
    /// moved in from outside (watch it and list it).
    fn dir_moved_to(&mut self, to: PathBuf, cookie: u32, out: &mut Vec<WatchEvent>) {
        let from = self
            .moved_dirs
            .iter()
            .position(|m| m.cookie == cookie)
            .map(|i| self.moved_dirs.swap_remove(i).rel);
        if (self.excluded)(&to) {
            if let Some(from) = from {
                self.unwatch_subtree(&from);
            }
            return;
        }
        let Some(from) = from else {
            self.watch_tree(to, true, out);
            return;
        };
        let expected = self.map.wd_of(&from).cloned();
        self.map.rename_subtree(&from, &to);
        // Check the top directory is the inode our map says: if `from` was replaced
        // between its IN_CREATE and our watch, the map moved the wrong one.
        let actual = self.inotify.watches().add(self.root.join(&to), DIR_MASK);
        match actual {
            Ok(wd) if Some(&wd) == expected.as_ref() => {}
            Ok(_) | Err(_) => {
                debug!(from = %from.display(), to = %to.display(), "renamed directory re-listed");
                self.watch_tree(to, true, out);
            }
        }
    }

    /// Drops the watches of a subtree that left the tree (or became excluded).
    fn unwatch_subtree(&mut self, top: &Path) {
        for wd in self.map.take_subtree(top) {
            // EINVAL: the kernel dropped it already; its IN_IGNORED is ignored.
            let _ = self.inotify.watches().remove(wd);
        }
    }

    /// The kernel dropped a watch: the directory was deleted, or its filesystem
    /// unmounted (then the directory beneath is watched again and pushed).
    fn watch_dropped(
        &mut self,
        wd: &WatchDescriptor,
        dir: &Path,
        is_root: bool,
        now: Instant,
        out: &mut Vec<WatchEvent>,
    ) {
        if is_root {
            self.lose_root("no longer watchable", now);
            return;
        }
        self.map.remove_wd(wd);
        if let Some(i) = self.unmounted.iter().position(|u| u == wd) {
            self.unmounted.swap_remove(i);
            if self.watch_tree(dir.to_path_buf(), false, out) {
                out.push(WatchEvent::Rescan {
                    path: dir.to_path_buf(),
                });
            }
        }
    }

    /// Time-driven work: the root's return, healing refused watches, moves out.
    fn housekeeping(&mut self, now: Instant, out: &mut Vec<WatchEvent>) {
        if let RootState::Gone { next_check } = self.root_state {
            if now >= next_check {
                self.look_for_root(now, out);
            }
            return;
        }
        let mut i = 0;
        while i < self.moved_dirs.len() {
            if self.moved_dirs[i].deadline <= now {
                let gone = self.moved_dirs.swap_remove(i);
                debug!(dir = %gone.rel.display(), "directory moved out of the tree");
                // A directory made again at the same name meanwhile shares the path
                // in the map with what moved out: drop both, watch what is there now,
                // and push it (its events may have gone to the old watches).
                let replaced = self.map.wd_of(&gone.rel) != gone.wd.as_ref();
                self.unwatch_subtree(&gone.rel);
                if replaced {
                    if let Some(wd) = gone.wd {
                        self.map.remove_wd(&wd);
                        let _ = self.inotify.watches().remove(wd);
                    }
                    if self.watch_tree(gone.rel.clone(), false, out) {
                        out.push(WatchEvent::Rescan { path: gone.rel });
                    }
                }
            } else {
                i += 1;
            }
        }
        if self.next_heal.is_some_and(|t| now >= t) {
            self.heal(now, out);
        }
    }
}
