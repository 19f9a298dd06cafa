//! One remote's pending changes: deduplicated by path (a file written a thousand times is
//! one entry), journaled so that a crash or restart loses none, taken in batches by the
//! pusher and acknowledged by sequence number, so that a path changed again while its
//! session ran stays pending.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::journal::{Journal, Record};
use crate::op::Op;

/// Journals bigger than this are compacted once mostly acknowledged.
const COMPACT_AT: u64 = 1 << 20;

/// A pending entry, keyed by its path (a rename by its new path).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    seq: u64,
    what: What,
    /// When the path first became pending (for `status`).
    since: Instant,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum What {
    Push,
    /// The whole tree, mirrored (kept at the root's key).
    Mirror,
    Delete,
    Rename {
        from: PathBuf,
    },
}

/// An operation taken for a session, with what acknowledges it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Taken {
    pub seq: u64,
    pub op: Op,
}

/// One remote's queue.
#[derive(Debug)]
pub struct Queue {
    journal: Journal,
    pending: BTreeMap<PathBuf, Entry>,
    next_seq: u64,
    /// Deletes are on: renames keep their old path, deletions are queued.
    deletes: bool,
    /// Past this many entries, pushes are folded into their top directories.
    max_pending: usize,
    unsynced: bool,
    /// Changes added since the queue was opened (the pusher watches it to tell a burst
    /// that goes on from one that has ended).
    adds: u64,
}

impl Queue {
    /// Opens the queue journaled at `path`, with what it held when last closed (or
    /// killed) pending again.
    pub fn open(path: &Path, deletes: bool, max_pending: usize) -> io::Result<Queue> {
        let (journal, records) = Journal::open(path)?;
        let mut q = Queue {
            journal,
            pending: BTreeMap::new(),
            next_seq: 1,
            deletes,
            max_pending: max_pending.max(16),
            unsynced: false,
            adds: 0,
        };
        // The paths each sequence number was given to, for the acknowledgements.
        let mut paths_of: std::collections::HashMap<u64, Vec<PathBuf>> = Default::default();
        for r in records {
            q.next_seq = q.next_seq.max(seq_of(&r) + 1);
            match &r {
                Record::Push { seq, path } | Record::Delete { seq, path } => {
                    paths_of.entry(*seq).or_default().push(path.clone());
                }
                Record::Rename { seq, from, to } => {
                    paths_of
                        .entry(*seq)
                        .or_default()
                        .extend([from.clone(), to.clone()]);
                }
                Record::Mirror { seq } => paths_of.entry(*seq).or_default().push(PathBuf::new()),
                Record::Ack { .. } => {}
            }
            match r {
                Record::Ack { seq } => {
                    for p in paths_of.remove(&seq).unwrap_or_default() {
                        if q.pending.get(&p).is_some_and(|e| e.seq == seq) {
                            q.pending.remove(&p);
                        }
                    }
                }
                Record::Push { seq, path } => q.apply(
                    seq,
                    Op::Push {
                        path,
                        recursive: true,
                    },
                ),
                Record::Delete { seq, path } => q.apply(seq, Op::Delete { path }),
                Record::Rename { seq, from, to } => q.apply(seq, Op::Rename { from, to }),
                Record::Mirror { seq } => q.apply(seq, Op::Mirror),
            }
        }
        Ok(q)
    }

    /// Adds a change (journaled; durable after the next [`Queue::sync`]).
    pub fn add(&mut self, op: Op) -> io::Result<()> {
        let op = match op {
            Op::Rename { to, .. } if !self.deletes => Op::Push {
                path: to,
                recursive: true,
            },
            Op::Delete { .. } if !self.deletes => return Ok(()),
            op => op,
        };
        let seq = self.next_seq;
        self.next_seq += 1;
        let rec = match &op {
            Op::Push { path, .. } => Record::Push {
                seq,
                path: path.clone(),
            },
            Op::Delete { path } => Record::Delete {
                seq,
                path: path.clone(),
            },
            Op::Rename { from, to } => Record::Rename {
                seq,
                from: from.clone(),
                to: to.clone(),
            },
            Op::Mirror => Record::Mirror { seq },
        };
        self.journal.append(&rec)?;
        self.unsynced = true;
        self.adds += 1;
        self.apply(seq, op);
        if self.pending.len() > self.max_pending {
            self.fold()?;
        }
        Ok(())
    }

    /// Hands the changes added so far to the kernel (they outlive a killed agent).
    pub fn flush(&mut self) -> io::Result<()> {
        self.journal.flush()
    }

    /// Makes the changes added so far durable.
    pub fn sync(&mut self) -> io::Result<()> {
        if self.unsynced {
            self.journal.sync()?;
            self.unsynced = false;
        }
        Ok(())
    }

    /// How many changes were added since the queue was opened.
    pub fn adds(&self) -> u64 {
        self.adds
    }

    /// How many paths are pending.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// When the oldest pending change was made (since this start, for replayed ones).
    pub fn oldest(&self) -> Option<Instant> {
        self.pending.values().map(|e| e.since).min()
    }

    /// Up to `max` pending operations, in path order; they stay pending until
    /// [`Queue::done`] acknowledges them.
    pub fn take(&self, max: usize) -> Vec<Taken> {
        self.take_where(max, |_| true)
    }

    /// [`Queue::take`] of the paths `due` accepts (a path that failed waits its turn).
    pub fn take_where(&self, max: usize, due: impl Fn(&Path) -> bool) -> Vec<Taken> {
        self.pending
            .iter()
            .filter(|(p, _)| due(p))
            .take(max)
            .map(|(path, e)| Taken {
                seq: e.seq,
                op: match &e.what {
                    What::Push => Op::Push {
                        path: path.clone(),
                        recursive: true,
                    },
                    What::Mirror => Op::Mirror,
                    What::Delete => Op::Delete { path: path.clone() },
                    What::Rename { from } => Op::Rename {
                        from: from.clone(),
                        to: path.clone(),
                    },
                },
            })
            .collect()
    }

    /// Acknowledges operations a session carried out: each leaves the queue unless its
    /// path changed again since it was taken.
    pub fn done(&mut self, taken: &[Taken]) -> io::Result<()> {
        for t in taken {
            let root = PathBuf::new();
            let path = match &t.op {
                Op::Push { path, .. } | Op::Delete { path } => path,
                Op::Rename { to, .. } => to,
                Op::Mirror => &root,
            };
            if self.pending.get(path).is_some_and(|e| e.seq == t.seq) {
                self.pending.remove(path);
                self.journal.append(&Record::Ack { seq: t.seq })?;
                self.unsynced = true;
            }
        }
        self.sync()?;
        if self.journal.len() > COMPACT_AT && (self.pending.len() as u64) * 256 < self.journal.len()
        {
            let live = self.live_records();
            self.journal.rewrite(&live)?;
        }
        Ok(())
    }

    /// Puts `op` with sequence number `seq` in the pending set.
    fn apply(&mut self, seq: u64, op: Op) {
        let now = Instant::now();
        let since = |q: &Queue, p: &Path| q.pending.get(p).map_or(now, |e| e.since);
        match op {
            Op::Push { path, .. } => {
                // A push of a path being renamed to stays that rename (it sends the
                // path's present state anyway).
                let what = match self.pending.get(&path) {
                    Some(Entry {
                        what: w @ (What::Rename { .. } | What::Mirror),
                        ..
                    }) => w.clone(),
                    _ => What::Push,
                };
                let since = since(self, &path);
                self.pending.insert(path, Entry { seq, what, since });
            }
            Op::Mirror => {
                let path = PathBuf::new();
                let since = since(self, &path);
                self.pending.insert(
                    path,
                    Entry {
                        seq,
                        what: What::Mirror,
                        since,
                    },
                );
            }
            Op::Delete { path } => {
                self.remove_below(&path);
                let since = since(self, &path);
                self.pending.insert(
                    path,
                    Entry {
                        seq,
                        what: What::Delete,
                        since,
                    },
                );
            }
            Op::Rename { from, to } => {
                // What was pending under the old name is the new name's now, and the
                // new name's whole subtree goes with the rename.
                let mut from_basis = from.clone();
                if let Some(old) = self.pending.remove(&from) {
                    match old.what {
                        // Renamed twice before a session: the remote still has the first
                        // name (the basis), and it must go too.
                        What::Rename { from: first } => from_basis = first,
                        What::Push | What::Delete | What::Mirror => {}
                    }
                }
                self.remove_below(&from);
                self.remove_below(&to);
                if from_basis != from && self.deletes {
                    // The intermediate name may exist remotely if an earlier session
                    // made it; it is gone locally either way.
                    self.pending.insert(
                        from.clone(),
                        Entry {
                            seq,
                            what: What::Delete,
                            since: now,
                        },
                    );
                }
                let since = since(self, &to);
                self.pending.insert(
                    to,
                    Entry {
                        seq,
                        what: What::Rename { from: from_basis },
                        since,
                    },
                );
            }
        }
    }

    /// Drops the entries strictly below `dir`.
    fn remove_below(&mut self, dir: &Path) {
        let below: Vec<PathBuf> = self
            .pending
            .range(dir.to_path_buf()..)
            .skip_while(|(p, _)| p.as_path() == dir)
            .take_while(|(p, _)| p.starts_with(dir))
            .map(|(p, _)| p.clone())
            .collect();
        for p in below {
            self.pending.remove(&p);
        }
    }

    /// Bounds memory through a long outage: the pushes are folded into pushes of their
    /// top-level directories (one session sends what changed below them, by rsync's quick
    /// check), and past that into one push of the whole tree.
    fn fold(&mut self) -> io::Result<()> {
        let mut folded: BTreeMap<PathBuf, Entry> = BTreeMap::new();
        for (path, e) in std::mem::take(&mut self.pending) {
            let key = match e.what {
                What::Push => path
                    .components()
                    .next()
                    .map_or(PathBuf::new(), |c| PathBuf::from(c.as_os_str())),
                _ => path,
            };
            let entry = folded.entry(key).or_insert(e.clone());
            entry.since = entry.since.min(e.since);
        }
        if folded.len() > self.max_pending / 2 {
            let since = folded
                .values()
                .map(|e| e.since)
                .min()
                .unwrap_or_else(Instant::now);
            folded.retain(|_, e| !matches!(e.what, What::Push));
            folded.insert(
                PathBuf::new(),
                Entry {
                    seq: 0,
                    what: What::Push,
                    since,
                },
            );
        }
        // Every folded entry gets a fresh number, journaled as such.
        for e in folded.values_mut() {
            e.seq = self.next_seq;
            self.next_seq += 1;
        }
        self.pending = folded;
        let live = self.live_records();
        self.journal.rewrite(&live)?;
        self.unsynced = false;
        Ok(())
    }

    fn live_records(&self) -> Vec<Record> {
        self.take(usize::MAX)
            .into_iter()
            .map(|t| match t.op {
                Op::Push { path, .. } => Record::Push { seq: t.seq, path },
                Op::Delete { path } => Record::Delete { seq: t.seq, path },
                Op::Mirror => Record::Mirror { seq: t.seq },
                Op::Rename { from, to } => Record::Rename {
                    seq: t.seq,
                    from,
                    to,
                },
            })
            .collect()
    }
}

fn seq_of(r: &Record) -> u64 {
    match r {
        Record::Push { seq, .. }
        | Record::Delete { seq, .. }
        | Record::Rename { seq, .. }
        | Record::Mirror { seq }
        | Record::Ack { seq } => *seq,
    }
}

#[cfg(test)]
mod tests;
