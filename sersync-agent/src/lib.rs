//! sersync-agent: watches a tree with inotify and pushes every change to rsync daemons
//! through the native client of `rsyncd_rs`, never losing one.
//!
//! The flow, one module a step (see `../shared/ARCHITECTURE.md`, "Agent"):
//! `watch` (inotify, recursive, scans new directories) → `coalesce` (events into
//! [`op::Op`]s: the inotify switches, filters, move pairing) → `queue` (one durable,
//! deduplicating queue per remote) → `push` (native-client sessions, many paths each).
//! The same operations feed sersync's plugins (`plugin`), beside the queues or alone.
#![deny(unsafe_code)]

pub mod agent;
pub mod coalesce;
pub mod config;
pub mod faillog;
pub mod journal;
pub mod metrics;
pub mod op;
pub mod plugin;
pub mod push;
mod pusher;
pub mod queue;
mod schedule;
pub mod status;
pub mod watch;
