//! The inotify watcher: see `crate::op::WatchEvent`.
