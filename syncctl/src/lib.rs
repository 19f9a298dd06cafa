//! syncctl: validates daemon and agent configurations (`check`), runs the touch-and-compare
//! test against live systems (`verify`) and runs everything on loopback (`demo`).
//!
//! Nothing is built here yet: each command arrives with its own issue.
#![forbid(unsafe_code)]
