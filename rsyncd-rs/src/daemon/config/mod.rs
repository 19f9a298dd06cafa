//! `rsyncd.conf` into a typed [`DaemonConfig`] (upstream: params.c, loadparm.c).

#![forbid(unsafe_code)]
#![allow(dead_code)]

mod expand;
mod fs;
mod source;
mod syntax;
mod values;

pub use expand::{ExpandError, expand_vars, expand_vars_for_shell};
pub use fs::{FsIncludes, MAX_CONFIG_FILE_BYTES};
pub use source::{IncludeKind, IncludeSource, MemoryIncludes};
pub use values::SyslogFacility;
