//! What flows between the steps: the watcher's events and the operations a remote is
//! asked to do. Paths are relative to the watched root: never empty but for the root
//! itself (`""`), never absolute, never with `..`.

use std::path::PathBuf;

/// What the watcher saw, already relative to the watched root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchEvent {
    /// A file opened for writing was closed (IN_CLOSE_WRITE).
    CloseWrite { path: PathBuf },
    /// An entry was created (IN_CREATE); a new directory is already watched, and what
    /// the scan after adding its watch found follows as `Found` events.
    Create { path: PathBuf, is_dir: bool },
    /// An entry created whole (IN_CREATE), that no IN_CLOSE_WRITE will follow: a
    /// symlink, fifo, socket or device node, or a new hard link to a file. Emitted
    /// instead of `Create`, so that `Create { is_dir: false }` means "a regular file,
    /// its close-write is to come".
    CreateComplete { path: PathBuf },
    /// A file's content changed (IN_MODIFY); it may still be open.
    Modify { path: PathBuf },
    /// Metadata changed (IN_ATTRIB).
    Attrib { path: PathBuf, is_dir: bool },
    /// An entry was deleted (IN_DELETE).
    Delete { path: PathBuf, is_dir: bool },
    /// The first half of a rename (IN_MOVED_FROM), or a move out of the tree.
    MovedFrom {
        path: PathBuf,
        cookie: u32,
        is_dir: bool,
    },
    /// The second half of a rename (IN_MOVED_TO), or a move into the tree.
    MovedTo {
        path: PathBuf,
        cookie: u32,
        is_dir: bool,
    },
    /// An entry found by scanning a directory just watched (it may have appeared before
    /// the watch existed).
    Found { path: PathBuf, is_dir: bool },
    /// Events under `path` may have been lost (queue overflow, a watch that could not be
    /// added, the root coming back): push the subtree again.
    Rescan { path: PathBuf },
}

/// What a remote is asked to do.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Op {
    /// Send `path` as it is now: a file, a symlink, or a directory (its own attributes,
    /// and with `recursive` everything below it).
    Push { path: PathBuf, recursive: bool },
    /// `path` is gone locally: remove it remotely (only when deletes are on).
    Delete { path: PathBuf },
    /// `from` was renamed to `to` locally: with deletes on, the remote renames it
    /// without resending its data where it can; with deletes off this is a push of `to`.
    Rename { from: PathBuf, to: PathBuf },
    /// The whole tree (`-r`, the catch-up after a restart): with deletes on, the remote
    /// is made its mirror, what is not in the tree deleted, as sersync's `-r` does.
    Mirror,
}
