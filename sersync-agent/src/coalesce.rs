//! Events into operations: see `crate::op::Op`.
