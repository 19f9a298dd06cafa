//! syncctl: the operator's tool beside rsyncd-rs and sersync-agent. Today it drives the
//! native client (`ls`); `check`, `verify` and `demo` arrive with their own issues.
//! Everything here is presentation: the work is done by the `rsyncd_rs` library.
#![forbid(unsafe_code)]

pub mod check;
pub mod cli;
pub mod demo;
pub mod ls;
pub mod remote;
pub mod transfer;
pub mod verify;
