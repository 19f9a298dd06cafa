//! Opening an operator's directory (the module path) without following a symlink that
//! someone else planted: each component is looked at without following it, and a symlink
//! is followed only when root or the daemon itself owns it. The admin pattern
//! `/backup -> /mnt/disk` keeps working; a link another user raced into a world-writable
//! parent does not lead the daemon elsewhere. Upstream: syscall.c,
//! open_no_attacker_symlinks(), used by util1.c change_dir() for a daemon that is not
//! chrooted.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, open, openat, readlinkat};
use nix::sys::stat::{Mode, SFlag, fstatat};

/// How many symlinks one walk may follow (the kernel's limit).
const MAX_LINKS: usize = 40;

/// Why [`open_trusted_dir`] failed.
#[derive(Debug, thiserror::Error)]
pub enum TrustedError {
    /// A symlink on the way is owned by someone else (reported as ELOOP).
    #[error("refusing to follow a symlink owned by an untrusted user")]
    Foreign,
    #[error("{0}")]
    Io(#[from] io::Error),
}

impl TrustedError {
    /// The errno a failed chdir reports.
    pub fn raw_os_error(&self) -> Option<i32> {
        match self {
            TrustedError::Foreign => Some(Errno::ELOOP as i32),
            TrustedError::Io(e) => e.raw_os_error(),
        }
    }
}

impl From<Errno> for TrustedError {
    fn from(e: Errno) -> Self {
        TrustedError::Io(e.into())
    }
}

/// Opens directory `path` (an `O_PATH` descriptor), following only the symlinks owned by
/// uid 0 or `trusted_uid`. Errors: `Foreign` for a symlink someone else owns, ELOOP for
/// too many links, and whatever opening a component gives.
pub fn open_trusted_dir(path: &Path, trusted_uid: u32) -> Result<OwnedFd, TrustedError> {
    let dir_flags = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
    let start = if path.is_absolute() { "/" } else { "." };
    let mut dir = open(start, dir_flags, Mode::empty())?;
    let mut pending: VecDeque<OsString> = components(path.as_os_str().as_bytes());
    let mut links = 0;
    while let Some(comp) = pending.pop_front() {
        let st = fstatat(&dir, comp.as_os_str(), AtFlags::AT_SYMLINK_NOFOLLOW)?;
        if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFLNK {
            if st.st_uid != 0 && st.st_uid != trusted_uid {
                return Err(TrustedError::Foreign);
            }
            links += 1;
            if links > MAX_LINKS {
                return Err(Errno::ELOOP.into());
            }
            let target = readlinkat(&dir, comp.as_os_str())?.into_vec();
            if target.first() == Some(&b'/') {
                dir = open("/", dir_flags, Mode::empty())?;
            }
            let mut rest = components(&target);
            rest.extend(pending);
            pending = rest;
            continue;
        }
        dir = openat(
            &dir,
            comp.as_os_str(),
            dir_flags | OFlag::O_NOFOLLOW,
            Mode::empty(),
        )?;
    }
    Ok(dir)
}

/// The non-empty components of a path, `.` dropped.
fn components(path: &[u8]) -> VecDeque<OsString> {
    path.split(|&b| b == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
        .map(|c| OsString::from_vec(c.to_vec()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn foreign_symlinks_are_refused_trusted_ones_followed() {
        let d = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let base = d.path();
        std::fs::create_dir(base.join("real")).unwrap_or_else(|e| panic!("{e}"));
        std::os::unix::fs::symlink(base.join("real"), base.join("mine"))
            .unwrap_or_else(|e| panic!("{e}"));
        std::os::unix::fs::symlink("real", base.join("relative")).unwrap_or_else(|e| panic!("{e}"));
        let me = nix::unistd::geteuid().as_raw();
        assert!(open_trusted_dir(&base.join("mine"), me).is_ok());
        assert!(open_trusted_dir(&base.join("relative/../real"), me).is_ok());
        // The same links, but trusted to nobody: only root's would still be followed.
        if me != 0 {
            let err = open_trusted_dir(&base.join("mine"), me + 1)
                .map(|_| ())
                .unwrap_err();
            assert_eq!(err.raw_os_error(), Some(Errno::ELOOP as i32));
        } else {
            let owner = 65534;
            std::os::unix::fs::lchown(base.join("mine"), Some(owner), Some(owner))
                .unwrap_or_else(|e| panic!("{e}"));
            let err = open_trusted_dir(&base.join("mine"), me)
                .map(|_| ())
                .unwrap_err();
            assert_eq!(err.raw_os_error(), Some(Errno::ELOOP as i32));
        }
        assert!(open_trusted_dir(&base.join("missing"), me).is_err());
    }
}
