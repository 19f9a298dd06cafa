//! Events into operations: sersync's inotify switches, the filter, temporary files,
//! and rename pairing. A pure state machine: events and time in, [`Op`]s out, no
//! filesystem, no clock of its own.
//!
//! It does not deduplicate across time: the per-remote queue keeps one entry per
//! path. Within one call, an op identical to an earlier one (or a plain push of a path
//! already pushed recursively) is dropped, unless a delete or rename came in between.
//!
//! Upstream: sersync's `Inotify.cpp` and `ThreadPool` (which switch turns which event
//! into an rsync call); the temp-file and editor-save rules are ours.

mod temp;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::config::EventSwitches;
use crate::op::{Op, WatchEvent};
pub use temp::is_temp_name;

/// How long an IN_MOVED_FROM waits for its IN_MOVED_TO before it counts as a move
/// out of the tree. The kernel queues the two back to back, so this only covers a
/// read or a channel hand-off between them; taking a late pair for a move out costs
/// a delete and a push instead of a rename, never a lost change.
pub const MOVE_PAIR_WINDOW: Duration = Duration::from_millis(10);

/// An IN_MOVED_FROM still waiting for its other half.
#[derive(Debug)]
struct PendingMove {
    cookie: u32,
    from: PathBuf,
    deadline: Instant,
}

/// Turns [`WatchEvent`]s into [`Op`]s. Feed it events with the time they were seen;
/// call [`tick`](Self::tick) at [`next_deadline`](Self::next_deadline).
pub struct Coalescer {
    switches: EventSwitches,
    excluded: Box<dyn Fn(&Path) -> bool + Send>,
    moves: Vec<PendingMove>,
}

impl fmt::Debug for Coalescer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Coalescer")
            .field("switches", &self.switches)
            .field("moves", &self.moves)
            .finish_non_exhaustive()
    }
}

impl Coalescer {
    /// `excluded` is asked about paths relative to the root, and about each of their
    /// ancestors: an excluded directory hides everything below it.
    pub fn new(switches: EventSwitches, excluded: Box<dyn Fn(&Path) -> bool + Send>) -> Self {
        Self {
            switches,
            excluded,
            moves: Vec::new(),
        }
    }

    /// The operations one event calls for (moves out of the tree that expired by
    /// `now` come first, as they happened first).
    pub fn feed(&mut self, ev: WatchEvent, now: Instant) -> Vec<Op> {
        self.feed_all([ev], now)
    }

    /// [`feed`](Self::feed) for a batch, collapsing the redundant across it.
    pub fn feed_all(&mut self, evs: impl IntoIterator<Item = WatchEvent>, now: Instant) -> Vec<Op> {
        let mut ops = Vec::new();
        for ev in evs {
            // Pair before expiring: a late IN_MOVED_TO still makes a rename.
            let paired = match &ev {
                WatchEvent::MovedTo { cookie, .. } => self.take_move(*cookie),
                _ => None,
            };
            self.expire(now, &mut ops);
            self.apply(ev, paired, now, &mut ops);
        }
        collapse(ops)
    }

    /// The operations due by `now`: moves out of the tree whose pairing window ended.
    pub fn tick(&mut self, now: Instant) -> Vec<Op> {
        let mut ops = Vec::new();
        self.expire(now, &mut ops);
        collapse(ops)
    }

    /// When [`tick`](Self::tick) has something to do; `None` while nothing waits.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.moves.iter().map(|m| m.deadline).min()
    }

    fn take_move(&mut self, cookie: u32) -> Option<PathBuf> {
        let i = self.moves.iter().position(|m| m.cookie == cookie)?;
        Some(self.moves.remove(i).from)
    }

    /// An IN_MOVED_FROM never paired: the entry left the tree.
    fn expire(&mut self, now: Instant, ops: &mut Vec<Op>) {
        let (due, waiting) = std::mem::take(&mut self.moves)
            .into_iter()
            .partition::<Vec<_>, _>(|m| m.deadline <= now);
        self.moves = waiting;
        for m in due {
            if self.switches.move_from {
                self.delete(m.from, ops);
            }
        }
    }

    fn apply(&mut self, ev: WatchEvent, paired: Option<PathBuf>, now: Instant, ops: &mut Vec<Op>) {
        let sw = self.switches;
        match ev {
            WatchEvent::CloseWrite { path } if sw.close_write => self.push(path, false, ops),
            WatchEvent::Create { path, is_dir: true } if sw.create_folder => {
                self.push(path, true, ops)
            }
            WatchEvent::Create {
                path,
                is_dir: false,
            } if sw.create_file => self.push(path, false, ops),
            // No close-write will come: with either create switch on it is pushed now.
            WatchEvent::CreateComplete { path } if sw.create_file || sw.create_folder => {
                self.push(path, false, ops)
            }
            WatchEvent::Modify { path } if sw.modify => self.push(path, false, ops),
            WatchEvent::Attrib { path, .. } if sw.attrib => self.push(path, false, ops),
            WatchEvent::Delete { path, .. } => self.delete(path, ops),
            WatchEvent::MovedFrom { path, cookie, .. } => self.moves.push(PendingMove {
                cookie,
                from: path,
                deadline: now + MOVE_PAIR_WINDOW,
            }),
            WatchEvent::MovedTo { path, is_dir, .. } => match paired {
                Some(from) => self.renamed(from, path, is_dir, ops),
                // Moved in from outside the tree.
                None if sw.move_to => self.push(path, is_dir, ops),
                None => {}
            },
            // Whatever the switches: it exists and nothing else will report it. Not
            // recursive, as the watcher reports each entry of a directory it lists.
            WatchEvent::Found { path, .. } => self.push(path, false, ops),
            WatchEvent::Rescan { path } => self.push(path, true, ops),
            WatchEvent::CloseWrite { .. }
            | WatchEvent::Create { .. }
            | WatchEvent::CreateComplete { .. }
            | WatchEvent::Modify { .. }
            | WatchEvent::Attrib { .. } => {}
        }
    }

    /// A rename inside the tree. A side that is excluded or a temporary name is not
    /// there for the remote: renaming from it is a new file (an editor's save: write
    /// `.f.swp`, rename to `f`), renaming onto it is a removal.
    fn renamed(&mut self, from: PathBuf, to: PathBuf, is_dir: bool, ops: &mut Vec<Op>) {
        let sw = self.switches;
        match (self.is_hidden(&from), self.is_hidden(&to)) {
            (true, true) => {}
            // Pushed with either switch: with close_write on, the temp file's own
            // close-write was dropped, and this rename is the only trace of the save.
            (true, false) if sw.move_to || sw.close_write => self.push(to, is_dir, ops),
            (true, false) => {}
            (false, true) if sw.move_from => self.delete(from, ops),
            (false, true) => {}
            (false, false) => match (sw.move_from, sw.move_to) {
                (true, true) => ops.push(Op::Rename { from, to }),
                (false, true) => self.push(to, is_dir, ops),
                (true, false) => self.delete(from, ops),
                (false, false) => {}
            },
        }
    }

    fn push(&self, path: PathBuf, recursive: bool, ops: &mut Vec<Op>) {
        if !self.is_hidden(&path) {
            ops.push(Op::Push { path, recursive });
        }
    }

    fn delete(&self, path: PathBuf, ops: &mut Vec<Op>) {
        if self.switches.delete && !self.is_hidden(&path) {
            ops.push(Op::Delete { path });
        }
    }

    /// Excluded (the path or an ancestor), or a temporary file's name.
    fn is_hidden(&self, path: &Path) -> bool {
        if path.file_name().is_some_and(is_temp_name) {
            return true;
        }
        let mut prefix = PathBuf::new();
        path.components().any(|c| {
            prefix.push(c);
            (self.excluded)(&prefix)
        })
    }
}

/// Drops ops that repeat an earlier one of the same batch, or plain pushes of a path
/// already pushed recursively. A delete or rename resets what counts as earlier, as
/// it may have changed what an op means; it is itself dropped only right after its
/// twin.
fn collapse(ops: Vec<Op>) -> Vec<Op> {
    let mut kept: Vec<Op> = Vec::with_capacity(ops.len());
    // Paths pushed since the last delete or rename, and whether recursively.
    let mut pushed: HashMap<PathBuf, bool> = HashMap::new();
    for op in ops {
        match &op {
            Op::Push { path, recursive } => {
                if pushed.get(path).is_some_and(|&before| before || !recursive) {
                    continue;
                }
                pushed.insert(path.clone(), *recursive);
            }
            Op::Delete { .. } | Op::Rename { .. } | Op::Mirror => {
                if kept.last() == Some(&op) {
                    continue;
                }
                pushed.clear();
            }
        }
        kept.push(op);
    }
    kept
}
