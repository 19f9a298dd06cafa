//! `rsyncd.conf` into a typed [`DaemonConfig`] (upstream: params.c, loadparm.c).

#![forbid(unsafe_code)]
#![allow(dead_code)]

mod expand;
mod syntax;
mod values;

pub use expand::{ExpandError, expand_vars, expand_vars_for_shell};
pub use values::SyslogFacility;
