//! What can go wrong beneath a module root, split by who is at fault.

use std::{fmt, io};

use nix::errno::Errno;

/// An error from a [`Tree`](super::Tree) operation.
///
/// `BadPath` is the peer's fault (a name that does not parse); `SymlinkInPath`,
/// `Escape`, `WrongKind` and `IsRoot` are refusals of something that parsed but is not
/// allowed; `CorruptStatXattr` is bad data on disk; `Io` is the kernel saying no.
#[derive(Debug, thiserror::Error)]
pub enum TreeError {
    /// A dry run asked for something that only makes sense when writing (a caller bug:
    /// a dry run transfers no data).
    #[error("cannot {op} in a dry run")]
    DryRun {
        /// What was attempted.
        op: &'static str,
    },
    /// The name is not a clean relative path (absolute, `..`, NUL, empty component…).
    #[error("invalid path {path:?}: {reason}")]
    BadPath {
        /// The offending name, lossily decoded.
        path: String,
        /// Which rule it broke.
        reason: &'static str,
    },
    /// A directory component of the path is a symlink, and following it is not allowed
    /// (or, with `keep_dirlinks`, it does not lead to a directory beneath the root).
    #[error("{path}: a directory component is a symlink")]
    SymlinkInPath {
        /// The path being resolved.
        path: String,
    },
    /// Resolving the path would leave the module root (absolute or climbing symlink).
    #[error("{path}: resolves outside the module root")]
    Escape {
        /// The path being resolved.
        path: String,
    },
    /// The entry exists but is not the kind the operation needs.
    #[error("{path}: not a {expected}")]
    WrongKind {
        /// The path named.
        path: String,
        /// What the operation needed ("regular file", "directory", …).
        expected: &'static str,
    },
    /// The operation cannot act on the module root itself (unlink, rename, temp beside…).
    #[error("{op}: not allowed on the module root")]
    IsRoot {
        /// The operation refused.
        op: &'static str,
    },
    /// A `user.rsync.%stat` value that does not parse as `"%o %u,%u %u:%u"`.
    #[error("corrupt user.rsync.%stat xattr on {path}: {value:?}")]
    CorruptStatXattr {
        /// The entry carrying it.
        path: String,
        /// The stored value, lossily decoded.
        value: String,
    },
    /// A system call failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// The operation, named as upstream's messages name it (`mkdir`, `rename`, …).
        op: &'static str,
        /// The path it was applied to.
        path: String,
        /// The kernel's answer.
        #[source]
        source: io::Error,
    },
}

impl TreeError {
    /// The operation that failed, for an I/O error.
    pub fn op(&self) -> Option<&'static str> {
        match self {
            TreeError::Io { op, .. } => Some(op),
            _ => None,
        }
    }

    pub(super) fn bad_path(bytes: &[u8], reason: &'static str) -> TreeError {
        TreeError::BadPath {
            path: String::from_utf8_lossy(bytes).into_owned(),
            reason,
        }
    }

    pub(super) fn errno(op: &'static str, path: &dyn fmt::Display, e: Errno) -> TreeError {
        TreeError::io(op, path, io::Error::from(e))
    }

    pub(super) fn io(op: &'static str, path: &dyn fmt::Display, source: io::Error) -> TreeError {
        TreeError::Io {
            op,
            path: path.to_string(),
            source,
        }
    }

    /// The `errno` behind an `Io` error, if that is what this is.
    pub fn raw_os_error(&self) -> Option<i32> {
        match self {
            TreeError::Io { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }

    /// Whether the entry (or one of its parents) does not exist.
    pub fn is_not_found(&self) -> bool {
        self.raw_os_error() == Some(libc::ENOENT)
    }

    /// Whether this is a refusal to leave the root or follow a symlinked directory.
    pub fn is_confinement(&self) -> bool {
        matches!(
            self,
            TreeError::SymlinkInPath { .. } | TreeError::Escape { .. }
        )
    }
}
