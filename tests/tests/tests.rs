//! End-to-end tests against the real rsync client (one binary: modules are declared here).
