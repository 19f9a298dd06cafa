//! `pid file`: written by the listening daemon, locked while it runs, removed when it stops
//! (upstream: clientserver.c create_pid_file()).

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// The pid file of a running daemon; dropping it removes the file.
#[derive(Debug)]
pub struct PidFile {
    path: PathBuf,
    owner: u32,
    _file: File,
}

impl PidFile {
    /// Creates (or takes over) the file, refusing to follow a symlink in its place, locks
    /// its first bytes so a second daemon fails, and writes our pid.
    pub fn create(path: &Path) -> io::Result<PidFile> {
        // A leftover that is not a regular file (a planted link or directory) goes first.
        if let Ok(meta) = std::fs::symlink_metadata(path)
            && !meta.file_type().is_file()
        {
            std::fs::remove_file(path)?;
        }
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o664)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(path)
            .map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("failed to create pid file {}: {e}", path.display()),
                )
            })?;
        let lock = libc::flock {
            l_type: libc::F_WRLCK as libc::c_short,
            l_whence: libc::SEEK_SET as libc::c_short,
            l_start: 0,
            l_len: 4,
            l_pid: 0,
        };
        nix::fcntl::fcntl(&file, nix::fcntl::FcntlArg::F_SETLK(&lock)).map_err(|e| {
            io::Error::other(format!("failed to lock pid file {}: {e}", path.display()))
        })?;
        file.set_len(0)?;
        writeln!(file, "{}", std::process::id())?;
        Ok(PidFile {
            path: path.to_path_buf(),
            owner: std::process::id(),
            _file: file,
        })
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        // Only the daemon that wrote it removes it, never a forked session.
        if std::process::id() == self.owner {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_and_removes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rsyncd.pid");
        {
            let _p = PidFile::create(&path).unwrap();
            assert_eq!(
                std::fs::read_to_string(&path).unwrap(),
                format!("{}\n", std::process::id())
            );
        }
        assert!(!path.exists());
    }

    #[test]
    fn replaces_a_planted_symlink() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("victim");
        std::fs::write(&target, "keep").unwrap();
        let path = dir.path().join("rsyncd.pid");
        std::os::unix::fs::symlink(&target, &path).unwrap();
        let _p = PidFile::create(&path).unwrap();
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep");
    }
}
