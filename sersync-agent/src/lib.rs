//! sersync-agent: watches a tree with inotify and pushes every change to rsync daemons
//! through the native client of `rsyncd_rs`.
//!
//! Nothing is built here yet: the watcher, coalescer, durable queue and pusher arrive with
//! their own issue (see `../shared/ARCHITECTURE.md`, "Agent").
#![forbid(unsafe_code)]
