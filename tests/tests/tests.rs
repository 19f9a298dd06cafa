//! End-to-end tests against the real rsync client (one binary: modules are declared here).
//!
//! Most cases are differential: the same fixture change and the same stock client command
//! run against stock `rsync --daemon` and against rsyncd-rs, and the client's exit code
//! and messages, and the daemon's operational log lines, must agree.

// Tests: a failed expectation is a panic.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod access;
mod acls;
mod agent;
mod agent_ops;
mod agent_plugins;
mod agent_scale;
mod auth;
mod bad_input;
mod check;
mod client_hostile;
mod client_list;
mod client_transfer;
mod compat;
mod insecure_links;
mod list_content;
mod listing;
mod module_root;
mod overlap;
mod process;
mod pull;
mod pull_compat;
mod pull_hostile;
mod pull_module;
mod pull_options;
mod pull_safety;
mod pull_tree;
mod push;
mod push_compat;
mod push_fuzzy;
mod push_options;
mod push_safety;
mod push_symlinks;
mod rpm;
mod session_end;
mod verify;
mod xattrs;
