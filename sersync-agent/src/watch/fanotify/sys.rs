//! The two system calls behind fanotify's file handles that neither nix nor rustix
//! wraps: `name_to_handle_at(2)` and `open_by_handle_at(2)`. The only `unsafe` in the
//! agent (see docs/ARCHITECTURE.md, "Where unsafe lives"), behind safe functions.
#![allow(unsafe_code)]

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use super::parse::{Handle, MAX_HANDLE_BYTES};

/// `struct file_handle` with room for the longest handle, 4-byte aligned as the
/// kernel's struct is: header words, then the handle's bytes.
struct HandleBuf {
    words: [u32; 2 + MAX_HANDLE_BYTES / 4],
}

impl HandleBuf {
    fn empty() -> Self {
        let mut buf = HandleBuf {
            words: [0; 2 + MAX_HANDLE_BYTES / 4],
        };
        buf.words[0] = MAX_HANDLE_BYTES as u32;
        buf
    }

    fn of(handle: &Handle) -> io::Result<Self> {
        if handle.bytes.len() > MAX_HANDLE_BYTES {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        }
        let mut buf = HandleBuf::empty();
        buf.words[0] = handle.bytes.len() as u32;
        buf.words[1] = u32::from_ne_bytes(handle.kind.to_ne_bytes());
        for (i, chunk) in handle.bytes.chunks(4).enumerate() {
            let mut word = [0u8; 4];
            word[..chunk.len()].copy_from_slice(chunk);
            buf.words[2 + i] = u32::from_ne_bytes(word);
        }
        Ok(buf)
    }

    fn handle(&self) -> Handle {
        let len = (self.words[0] as usize).min(MAX_HANDLE_BYTES);
        let bytes: Vec<u8> = self.words[2..]
            .iter()
            .flat_map(|w| w.to_ne_bytes())
            .take(len)
            .collect();
        Handle {
            kind: i32::from_ne_bytes(self.words[1].to_ne_bytes()),
            bytes: bytes.into(),
        }
    }

    fn as_mut_ptr(&mut self) -> *mut libc::file_handle {
        self.words.as_mut_ptr().cast()
    }
}

/// The file handle of `path` (not following a final symlink is not wanted here: the
/// watched root may be one).
pub(super) fn handle_of(path: &Path) -> io::Result<Handle> {
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    let mut buf = HandleBuf::empty();
    let mut mount_id: libc::c_int = 0;
    // SAFETY: `c` is a NUL-terminated string alive for the call; `buf` is a 4-byte
    // aligned `struct file_handle` whose `handle_bytes` says how much room follows
    // the header (MAX_HANDLE_BYTES, the most the kernel writes); `mount_id` is a
    // valid `int` to write.
    let rc = unsafe {
        libc::name_to_handle_at(
            libc::AT_FDCWD,
            c.as_ptr(),
            buf.as_mut_ptr(),
            &mut mount_id,
            libc::AT_SYMLINK_FOLLOW,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(buf.handle())
}

/// Opens the object `handle` names on the filesystem of `mount` as an `O_PATH`
/// descriptor (needs CAP_DAC_READ_SEARCH).
pub(super) fn open_by_handle(mount: BorrowedFd<'_>, handle: &Handle) -> io::Result<OwnedFd> {
    let mut buf = HandleBuf::of(handle)?;
    // SAFETY: `buf` is a 4-byte aligned `struct file_handle` whose `handle_bytes`
    // (at most MAX_HANDLE_BYTES) matches the bytes that follow it; the kernel only
    // reads it. `mount` is an open descriptor borrowed for the call.
    let fd = unsafe {
        libc::open_by_handle_at(
            mount.as_raw_fd(),
            buf.as_mut_ptr(),
            libc::O_PATH | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by the kernel, is open and owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_handle_round_trips_through_the_buffer() -> io::Result<()> {
        let h = Handle {
            kind: 0x81,
            bytes: (1..=13u8).collect::<Vec<_>>().into(),
        };
        assert_eq!(HandleBuf::of(&h)?.handle(), h);
        let too_long = Handle {
            kind: 1,
            bytes: vec![0; MAX_HANDLE_BYTES + 1].into(),
        };
        assert!(HandleBuf::of(&too_long).is_err());
        Ok(())
    }
}
