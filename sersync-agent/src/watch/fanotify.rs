//! The fanotify watcher: one `FAN_MARK_FILESYSTEM` mark on the filesystem holding the
//! watched root, events reported as (directory file handle, entry name), directories
//! resolved to paths through the root's descriptor. No watch per directory, so no
//! `max_user_watches`, nothing to set up before the first event, and nothing to walk
//! when a directory is created or renamed.
//!
//! What it guarantees, as the inotify watcher does:
//! - every change under the root is reported, with its path as it is when read;
//! - when events may have been lost (queue overflow, an unreadable batch, the root gone
//!   and back) it says so as [`WatchEvent::Rescan`].
//!
//! What differs, because of how fanotify reports:
//! - the whole filesystem is marked: an event outside the root costs a hash lookup
//!   (its directory's handle is cached as "outside") and is dropped; the kernel drops
//!   the kinds of event the switches do not ask for (`modify`, `attrib`);
//! - the kernel merges events on the same entry while they wait, so one event may say
//!   "created and deleted": the entry's state when read decides the order;
//! - a directory is resolved when its event is read, so an event queued before a
//!   rename that is read after it carries the new name (the rename follows, and the
//!   remote converges the same);
//! - other filesystems mounted below the root are not seen (logged at start).
//!
//! Needs Linux 5.9 (`FAN_REPORT_DFID_NAME`), `FAN_RENAME` (5.17) for renames to be
//! seen as renames (before, as a removal and a creation), and root: CAP_SYS_ADMIN for
//! the filesystem mark, CAP_DAC_READ_SEARCH for `open_by_handle_at`.

mod parse;
mod sys;

use std::collections::HashMap;
use std::fs;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{OFlag, open};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::fanotify::{EventFFlags, Fanotify, InitFlags, MarkFlags, MaskFlags};
use nix::sys::stat::Mode;
use tracing::{debug, info, warn};

use super::tree::is_mount_point;
use super::{EventSource, READ_BUFFER, READS_PER_CALL, ROOT_POLL_EVERY, RootState, WatchError};
use crate::op::WatchEvent;
use parse::{Handle, RawEvent, RecordKind};

/// Resolved directories remembered; past this the cache starts over (a tree with
/// more busy directories than this pays one `open_by_handle_at` per miss).
const CACHE_MAX: usize = 65_536;

/// Which optional kinds of event are wanted (the rest the kernel never queues).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Interest {
    /// Writes as they happen (`FAN_MODIFY`), not only the close after them.
    pub modify: bool,
    /// Metadata changes (`FAN_ATTRIB`).
    pub attrib: bool,
}

/// Where a directory handle leads.
#[derive(Debug, Clone)]
enum Place {
    /// Below the root (and not excluded), at this path relative to it.
    Inside(PathBuf),
    /// Elsewhere on the filesystem, or in an excluded subtree.
    Outside,
}

/// What is open while the root is watched.
struct Marked {
    group: Fanotify,
    /// The root, open: the mount handles are opened through (`fanotify_mark` takes
    /// no `O_PATH` descriptor).
    root_fd: OwnedFd,
    /// The root's (device, inode) when marked: a change means it was replaced.
    root_id: (u64, u64),
    /// The root's absolute path without symlinks, as `/proc/self/fd` reports paths.
    root_abs: PathBuf,
}

/// A fanotify watcher of one tree.
pub struct FanWatcher {
    root: PathBuf,
    excluded: Box<dyn Fn(&Path) -> bool + Send>,
    interest: Interest,
    marked: Option<Marked>,
    root_state: RootState,
    root_is_mount: bool,
    next_root_check: Instant,
    /// Whether the kernel reports renames whole (`FAN_RENAME`).
    renames: bool,
    cache: HashMap<Handle, Place>,
    next_cookie: u32,
    overflows: u64,
    buf: Vec<u8>,
}

impl std::fmt::Debug for FanWatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FanWatcher")
            .field("root", &self.root)
            .field("root_state", &self.root_state)
            .field("renames", &self.renames)
            .field("cached", &self.cache.len())
            .finish_non_exhaustive()
    }
}

impl FanWatcher {
    /// Marks the filesystem of `root` and reports what changes below it, except below
    /// directories `excluded` (given paths relative to `root`) says to skip.
    ///
    /// Errors name what is missing: root, a kernel with `FAN_REPORT_DFID_NAME`, a
    /// filesystem that reports file handles.
    pub fn new(
        root: &Path,
        interest: Interest,
        excluded: impl Fn(&Path) -> bool + Send + 'static,
    ) -> Result<FanWatcher, WatchError> {
        let mut w = FanWatcher {
            root: root.to_path_buf(),
            excluded: Box::new(excluded),
            interest,
            marked: None,
            root_state: RootState::Watched,
            root_is_mount: is_mount_point(root),
            next_root_check: Instant::now() + ROOT_POLL_EVERY,
            renames: true,
            cache: HashMap::new(),
            next_cookie: 1,
            overflows: 0,
            buf: vec![0; READ_BUFFER],
        };
        w.mark()?;
        info!(
            root = %root.display(),
            renames = w.renames,
            "watching the whole filesystem with fanotify"
        );
        w.warn_about_submounts();
        Ok(w)
    }

    /// Whether the root is watched now (a mark in place).
    pub fn is_watching(&self) -> bool {
        self.marked.is_some()
    }

    fn mask(&self) -> u64 {
        let mut m = libc::FAN_CREATE
            | libc::FAN_DELETE
            | libc::FAN_CLOSE_WRITE
            | libc::FAN_DELETE_SELF
            | libc::FAN_MOVE_SELF
            | libc::FAN_ONDIR;
        m |= if self.renames {
            libc::FAN_RENAME
        } else {
            libc::FAN_MOVED_FROM | libc::FAN_MOVED_TO
        };
        if self.interest.modify {
            m |= libc::FAN_MODIFY;
        }
        if self.interest.attrib {
            m |= libc::FAN_ATTRIB;
        }
        m
    }

    /// Opens a group and marks the root's filesystem; seeds the cache with the root.
    fn mark(&mut self) -> Result<(), WatchError> {
        let root_err = |source: io::Error| WatchError::Root {
            path: self.root.clone(),
            source,
        };
        let root_fd = open(
            &self.root,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| root_err(e.into()))?;
        let md = nix::sys::stat::fstat(root_fd.as_fd()).map_err(|e| root_err(e.into()))?;
        let root_abs = fs::canonicalize(&self.root).map_err(root_err)?;
        let flags = InitFlags::from_bits_retain(
            libc::FAN_CLASS_NOTIF
                | libc::FAN_CLOEXEC
                | libc::FAN_NONBLOCK
                | libc::FAN_REPORT_DFID_NAME,
        );
        let group = Fanotify::init(flags, EventFFlags::O_RDONLY).map_err(|e| match e {
            Errno::EPERM => WatchError::Fanotify(
                "fanotify mode needs root (CAP_SYS_ADMIN): run the agent as root, or use inotify"
                    .into(),
            ),
            Errno::EINVAL => WatchError::Fanotify(format!(
                "fanotify mode needs Linux 5.9 or later (FAN_REPORT_DFID_NAME); this kernel is {}",
                kernel_release()
            )),
            Errno::ENOSYS => WatchError::Fanotify(
                "this kernel has no fanotify (CONFIG_FANOTIFY): use inotify".into(),
            ),
            e => WatchError::Init(e.into()),
        })?;
        let mark = |mask: u64| {
            group.mark(
                MarkFlags::FAN_MARK_ADD | MarkFlags::from_bits_retain(libc::FAN_MARK_FILESYSTEM),
                MaskFlags::from_bits_retain(mask),
                root_fd.as_fd(),
                None::<&Path>,
            )
        };
        let mut marked = mark(self.mask());
        if marked == Err(Errno::EINVAL) && self.renames {
            debug!("no FAN_RENAME (Linux < 5.17): renames are seen as a removal and a creation");
            self.renames = false;
            marked = mark(self.mask());
        }
        marked.map_err(|e| match e {
            Errno::EPERM => WatchError::Fanotify(
                "fanotify mode needs root (CAP_SYS_ADMIN) to watch a whole filesystem".into(),
            ),
            Errno::ENODEV | Errno::EOPNOTSUPP | Errno::EXDEV | Errno::EINVAL => {
                WatchError::Fanotify(format!(
                    "the filesystem of {} cannot report file handles to fanotify ({e}; e.g. \
                     overlayfs, FUSE, NFS): use inotify mode",
                    self.root.display()
                ))
            }
            e => WatchError::Root {
                path: self.root.clone(),
                source: e.into(),
            },
        })?;
        // Resolving needs CAP_DAC_READ_SEARCH and a filesystem that decodes handles:
        // try it on the root now rather than fail on every event later.
        let handle = sys::handle_of(&self.root).map_err(|e| {
            WatchError::Fanotify(format!(
                "the filesystem of {} gives no file handles ({e}): use inotify mode",
                self.root.display()
            ))
        })?;
        sys::open_by_handle(root_fd.as_fd(), &handle).map_err(|e| {
            WatchError::Fanotify(if e.raw_os_error() == Some(libc::EPERM) {
                "fanotify mode needs root (CAP_DAC_READ_SEARCH) to open file handles".into()
            } else {
                format!(
                    "cannot open file handles on the filesystem of {} ({e}): use inotify mode",
                    self.root.display()
                )
            })
        })?;
        self.cache.clear();
        self.cache.insert(handle, Place::Inside(PathBuf::new()));
        self.marked = Some(Marked {
            group,
            root_fd,
            root_id: (md.st_dev, md.st_ino),
            root_abs,
        });
        Ok(())
    }

    /// Other filesystems mounted below the root are outside the mark: say which.
    fn warn_about_submounts(&self) {
        let Some(m) = &self.marked else { return };
        let Ok(text) = fs::read_to_string("/proc/self/mountinfo") else {
            return;
        };
        for line in text.lines() {
            let Some(point) = line.split(' ').nth(4) else {
                continue;
            };
            let point = PathBuf::from(unescape_mount_path(point));
            if point != m.root_abs && point.starts_with(&m.root_abs) {
                let same = fs::metadata(&point).is_ok_and(|md| md.dev() == m.root_id.0);
                if !same {
                    warn!(
                        mount = %point.display(),
                        "another filesystem is mounted below the watched root: fanotify mode \
                         does not see its changes (use inotify mode to watch across mounts)"
                    );
                }
            }
        }
    }

    fn read_available(&mut self, out: &mut Vec<WatchEvent>) -> Result<(), WatchError> {
        for _ in 0..READS_PER_CALL {
            let Some(m) = &self.marked else { return Ok(()) };
            let n = match nix::unistd::read(m.group.as_fd(), &mut self.buf) {
                Ok(0) | Err(Errno::EAGAIN) => return Ok(()),
                Ok(n) => n,
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(WatchError::Read(e.into())),
            };
            let (events, err) = parse::parse(&self.buf[..n]);
            for ev in events {
                self.handle(ev, out);
            }
            if let Some(e) = err {
                warn!(error = %e, "unreadable fanotify events: rescanning the whole tree");
                self.rescan(out);
            }
        }
        Ok(())
    }

    fn rescan(&mut self, out: &mut Vec<WatchEvent>) {
        self.forget_paths();
        out.push(WatchEvent::Rescan {
            path: PathBuf::new(),
        });
    }

    /// Directories may have moved: keep only the root's entry.
    fn forget_paths(&mut self) {
        self.cache
            .retain(|_, p| matches!(p, Place::Inside(rel) if rel.as_os_str().is_empty()));
    }

    fn cookie(&mut self) -> u32 {
        self.next_cookie = self.next_cookie.wrapping_add(1).max(1);
        self.next_cookie
    }

    fn handle(&mut self, ev: RawEvent, out: &mut Vec<WatchEvent>) {
        let m = ev.mask;
        if m & libc::FAN_Q_OVERFLOW != 0 {
            self.overflows += 1;
            warn!(
                "fanotify queue overflowed: events were lost, rescanning the whole tree \
                 (raise fs.fanotify.max_queued_events if this repeats)"
            );
            self.rescan(out);
            return;
        }
        let is_dir = m & libc::FAN_ONDIR != 0;
        if m & libc::FAN_RENAME != 0 {
            let side = |kind| ev.records.iter().find(|r| r.kind == kind);
            let from = side(RecordKind::OldDirName).and_then(|r| self.entry_path(r));
            let to = side(RecordKind::NewDirName).and_then(|r| self.entry_path(r));
            let cookie = self.cookie();
            if let Some(path) = from {
                out.push(WatchEvent::MovedFrom {
                    path,
                    cookie,
                    is_dir,
                });
            }
            if let Some(path) = to {
                out.push(WatchEvent::MovedTo {
                    path,
                    cookie,
                    is_dir,
                });
            }
            if is_dir {
                self.forget_paths();
            }
            return;
        }
        let Some(rec) = ev
            .records
            .iter()
            .find(|r| matches!(r.kind, RecordKind::DirName | RecordKind::Dir))
        else {
            return;
        };
        let Some(dir) = self.resolve(&rec.dir) else {
            return;
        };
        let Some(name) = &rec.name else {
            // An event on a directory itself: its parent reports entry changes, so
            // only the root's loss and attribute changes matter.
            if m & (libc::FAN_DELETE_SELF | libc::FAN_MOVE_SELF) != 0 {
                if dir.as_os_str().is_empty() {
                    self.next_root_check = Instant::now();
                }
            } else if m & libc::FAN_ATTRIB != 0 {
                out.push(WatchEvent::Attrib {
                    path: dir,
                    is_dir: true,
                });
            }
            return;
        };
        let path = dir.join(name);
        self.entry_event(m, path, is_dir, out);
    }

    /// An event on the entry `path`, possibly several merged while queued.
    fn entry_event(&mut self, m: u64, path: PathBuf, is_dir: bool, out: &mut Vec<WatchEvent>) {
        let created = m & (libc::FAN_CREATE | libc::FAN_MOVED_TO) != 0;
        let removed = m & (libc::FAN_DELETE | libc::FAN_MOVED_FROM) != 0;
        if is_dir && m & (libc::FAN_MOVED_FROM | libc::FAN_MOVED_TO) != 0 {
            self.forget_paths();
        }
        let exists = match (created, removed) {
            (true, true) => fs::symlink_metadata(self.root.join(&path)).is_ok(),
            (_, removed) => !removed,
        };
        if !exists {
            // Whatever was written to it first is moot now.
            if m & libc::FAN_DELETE == 0 && !created {
                let cookie = self.cookie();
                out.push(WatchEvent::MovedFrom {
                    path,
                    cookie,
                    is_dir,
                });
            } else {
                out.push(WatchEvent::Delete { path, is_dir });
            }
            return;
        }
        if removed {
            out.push(WatchEvent::Delete {
                path: path.clone(),
                is_dir,
            });
        }
        if m & libc::FAN_CREATE != 0 {
            out.push(if is_dir {
                WatchEvent::Create {
                    path: path.clone(),
                    is_dir,
                }
            } else {
                super::file_created(&self.root, path.clone())
            });
        } else if m & libc::FAN_MOVED_TO != 0 {
            let cookie = self.cookie();
            out.push(WatchEvent::MovedTo {
                path: path.clone(),
                cookie,
                is_dir,
            });
        }
        if m & libc::FAN_CLOSE_WRITE != 0 {
            out.push(WatchEvent::CloseWrite { path: path.clone() });
        } else if m & libc::FAN_MODIFY != 0 {
            out.push(WatchEvent::Modify { path: path.clone() });
        }
        if m & libc::FAN_ATTRIB != 0 {
            out.push(WatchEvent::Attrib { path, is_dir });
        }
    }

    /// The path of a rename's side, `None` when that side is outside the tree.
    fn entry_path(&mut self, rec: &parse::Record) -> Option<PathBuf> {
        let dir = self.resolve(&rec.dir)?;
        Some(dir.join(rec.name.as_ref()?))
    }

    /// The path below the root of the directory `handle` names; `None` when it is
    /// outside the root, excluded, or gone.
    fn resolve(&mut self, handle: &Handle) -> Option<PathBuf> {
        if let Some(place) = self.cache.get(handle) {
            return match place {
                Place::Inside(rel) => Some(rel.clone()),
                Place::Outside => None,
            };
        }
        let m = self.marked.as_ref()?;
        let fd = match sys::open_by_handle(m.root_fd.as_fd(), handle) {
            Ok(fd) => fd,
            Err(e) => {
                // ESTALE/ENOENT: deleted since; its parent reports the deletion.
                if !matches!(e.raw_os_error(), Some(libc::ESTALE | libc::ENOENT)) {
                    debug!(error = %e, "cannot resolve a directory handle");
                }
                return None;
            }
        };
        // Deleted but still cached by the kernel: no path to report.
        if nix::sys::stat::fstat(fd.as_fd()).is_ok_and(|st| st.st_nlink == 0) {
            return None;
        }
        let abs = fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())).ok()?;
        let place = match abs.strip_prefix(&m.root_abs) {
            Ok(rel) if !self.excluded_dir(rel) => Place::Inside(rel.to_path_buf()),
            _ => Place::Outside,
        };
        if self.cache.len() >= CACHE_MAX {
            self.forget_paths();
            self.cache.retain(|_, p| matches!(p, Place::Inside(_)));
        }
        let found = match &place {
            Place::Inside(rel) => Some(rel.clone()),
            Place::Outside => None,
        };
        self.cache.insert(handle.clone(), place);
        found
    }

    /// Whether `rel` or a directory above it is excluded.
    fn excluded_dir(&self, rel: &Path) -> bool {
        let mut prefix = PathBuf::new();
        rel.components().any(|c| {
            prefix.push(c);
            (self.excluded)(&prefix)
        })
    }

    /// Time-driven work: is the root still the one marked, or back?
    fn housekeeping(&mut self, now: Instant, out: &mut Vec<WatchEvent>) {
        if now < self.next_root_check {
            return;
        }
        self.next_root_check = now + ROOT_POLL_EVERY;
        match self.root_state {
            RootState::Watched => {
                let same = self.marked.as_ref().is_some_and(|m| {
                    fs::metadata(&self.root)
                        .is_ok_and(|md| md.is_dir() && (md.dev(), md.ino()) == m.root_id)
                });
                if !same {
                    warn!(root = %self.root.display(), "the watched root is gone; waiting for it to come back");
                    self.marked = None;
                    self.cache.clear();
                    self.root_state = RootState::Gone {
                        next_check: self.next_root_check,
                    };
                }
            }
            RootState::Gone { .. } => {
                let back = fs::metadata(&self.root).is_ok_and(|m| m.is_dir())
                    && (!self.root_is_mount || is_mount_point(&self.root));
                if !back {
                    return;
                }
                match self.mark() {
                    Ok(()) => {
                        info!(root = %self.root.display(), "the watched root is back");
                        self.root_state = RootState::Watched;
                        out.push(WatchEvent::Rescan {
                            path: PathBuf::new(),
                        });
                    }
                    Err(e) => debug!(error = %e, "the root is back but not watchable yet"),
                }
            }
        }
    }

    fn wait_readable(&self, wait: Duration) -> Result<(), WatchError> {
        let ms = wait.as_millis().saturating_add(1).min(i32::MAX as u128);
        let timeout = PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX);
        let Some(m) = &self.marked else {
            std::thread::sleep(wait);
            return Ok(());
        };
        let mut fds = [PollFd::new(m.group.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, timeout) {
            Ok(_) | Err(Errno::EINTR) => Ok(()),
            Err(e) => Err(WatchError::Read(e.into())),
        }
    }
}

impl EventSource for FanWatcher {
    fn next_events_timeout(&mut self, timeout: Duration) -> Result<Vec<WatchEvent>, WatchError> {
        let deadline = Instant::now() + timeout;
        let mut out = Vec::new();
        loop {
            self.read_available(&mut out)?;
            let now = Instant::now();
            self.housekeeping(now, &mut out);
            if !out.is_empty() || now >= deadline {
                return Ok(out);
            }
            let until = self.next_root_check.min(deadline);
            self.wait_readable(until.saturating_duration_since(now))?;
        }
    }

    fn counts(&self) -> (usize, u64) {
        (usize::from(self.marked.is_some()), self.overflows)
    }
}

/// `uname -r`, for the error that says the kernel is too old.
fn kernel_release() -> String {
    fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|r| r.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape_mount_path(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests;
