//! `max connections`: one record lock per session in the `lock file`, as rsyncd does
//! (upstream: connection.c claim_connection()). The kernel drops a record lock when its
//! process exits, so a crashed session never keeps its slot.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Bytes per slot in the lock file (upstream locks 4-byte records).
const SLOT_LEN: i64 = 4;

/// A claimed connection slot; dropping it (or exiting) releases it.
#[derive(Debug)]
pub struct ConnectionSlot {
    _file: File,
    pub slot: u32,
}

/// The outcome of trying to claim a slot.
#[derive(Debug)]
pub enum Claim {
    /// A slot was free (or there is no limit).
    Granted(Option<ConnectionSlot>),
    /// Every slot is held by another session.
    Full,
}

/// Claims one of `max` slots in `lock_file`; `max <= 0` means unlimited.
pub fn claim_connection(lock_file: &Path, max: i32) -> io::Result<Claim> {
    if max <= 0 {
        return Ok(Claim::Granted(None));
    }
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(lock_file)?;
    for slot in 0..max as u32 {
        if try_lock(&file, i64::from(slot) * SLOT_LEN)? {
            return Ok(Claim::Granted(Some(ConnectionSlot { _file: file, slot })));
        }
    }
    Ok(Claim::Full)
}

/// Tries a non-blocking write lock on one record. Upstream: util1.c, lock_range().
fn try_lock(file: &File, offset: i64) -> io::Result<bool> {
    let lock = libc::flock {
        l_type: libc::F_WRLCK as libc::c_short,
        l_whence: libc::SEEK_SET as libc::c_short,
        l_start: offset,
        l_len: SLOT_LEN,
        l_pid: 0,
    };
    match nix::fcntl::fcntl(file, nix::fcntl::FcntlArg::F_SETLK(&lock)) {
        Ok(_) => Ok(true),
        Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::EACCES) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unlimited_needs_no_file() {
        assert!(matches!(
            claim_connection(Path::new("/nonexistent/x.lock"), 0).unwrap(),
            Claim::Granted(None)
        ));
    }
}
