//! The daemon: `rsyncd.conf`, access control, authentication, privileges, listener and
//! session. Nothing here parses the wire: that is `protocol`'s job.

pub mod access;
pub mod auth;
pub mod config;
