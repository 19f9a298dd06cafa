//! The daemon: `rsyncd.conf`, access control, authentication, privileges, listener and
//! session. Nothing here parses the wire: that is `protocol`'s job.

pub mod access;
pub mod auth;
pub mod config;
mod ending;
pub mod exec;
pub mod limits;
pub mod listener;
pub mod log;
pub mod module;
pub mod pidfile;
pub mod privileges;
pub mod proxy;
mod server;
pub mod session;
pub mod startup;
mod transfer;
pub mod trusted;
