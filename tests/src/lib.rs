//! Harness for the end-to-end tests: starts daemons (rsyncd-rs, or stock `rsync --daemon`
//! for comparison) on loopback from configs derived from the reference fixtures, builds
//! trees, runs the real `rsync` client and compares trees.
