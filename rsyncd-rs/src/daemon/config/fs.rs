//! The real [`IncludeSource`]: config files and directories on disk, opened so that a
//! symlink planted by another user cannot redirect the daemon's config reads.
//!
//! Upstream: syscall.c, open_no_attacker_symlinks() (used by params.c, OpenConfFile()).

use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path};

use nix::dir::Dir;
use nix::fcntl::{AT_FDCWD, AtFlags, OFlag, openat, readlinkat};
use nix::sys::stat::{FileStat, Mode, fstat, fstatat};
use nix::unistd::geteuid;

use super::source::{IncludeKind, IncludeSource};

/// The largest config file read; a bigger one is refused rather than loaded.
pub const MAX_CONFIG_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// How many symlinks one path may pass through (upstream uses the same bound).
const MAX_SYMLINKS: u32 = 40;

/// Reads config files from the filesystem.
///
/// Every path is walked one component at a time without following symlinks
/// implicitly; a symlink is followed only when it is owned by root or by the daemon's
/// effective user, as upstream does for its config file, so a link planted in a
/// writable directory cannot point the daemon at another file.
#[derive(Debug, Clone, Copy, Default)]
pub struct FsIncludes;

impl IncludeSource for FsIncludes {
    fn kind(&self, path: &Path) -> io::Result<IncludeKind> {
        let fd = open_trusted(path, OFlag::O_PATH)?;
        let st = fstat(&fd)?;
        Ok(match file_type(&st) {
            libc::S_IFREG => IncludeKind::File,
            libc::S_IFDIR => IncludeKind::Directory,
            _ => IncludeKind::Other,
        })
    }

    fn read_file(&self, path: &Path) -> io::Result<Vec<u8>> {
        // Non-blocking, so that a FIFO in an include directory cannot hang the load.
        let fd = open_trusted(path, OFlag::O_RDONLY | OFlag::O_NONBLOCK)?;
        let st = fstat(&fd)?;
        if file_type(&st) != libc::S_IFREG {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{}: not a regular file", path.display()),
            ));
        }
        let mut bytes = Vec::new();
        File::from(fd)
            .take(MAX_CONFIG_FILE_BYTES + 1)
            .read_to_end(&mut bytes)?;
        if bytes.len() as u64 > MAX_CONFIG_FILE_BYTES {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{}: larger than {MAX_CONFIG_FILE_BYTES} bytes",
                    path.display()
                ),
            ));
        }
        Ok(bytes)
    }

    fn list_dir(&self, path: &Path) -> io::Result<Vec<OsString>> {
        let fd = open_trusted(path, OFlag::O_RDONLY | OFlag::O_DIRECTORY)?;
        let mut dir = Dir::from_fd(fd)?;
        let mut names = Vec::new();
        for entry in dir.iter() {
            let entry = entry?;
            names.push(OsStr::from_bytes(entry.file_name().to_bytes()).to_os_string());
        }
        Ok(names)
    }
}

fn file_type(st: &FileStat) -> libc::mode_t {
    st.st_mode & libc::S_IFMT
}

fn open_root() -> io::Result<OwnedFd> {
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
    Ok(openat(AT_FDCWD, "/", flags, Mode::empty())?)
}

/// Pushes the components of `path` to the front of `pending`, in order.
/// Returns whether `path` is absolute.
fn push_front_components(path: &Path, pending: &mut VecDeque<OsString>) -> bool {
    let mut absolute = false;
    let mut parts = Vec::new();
    for c in path.components() {
        match c {
            Component::RootDir => absolute = true,
            Component::CurDir | Component::Prefix(_) => {}
            Component::ParentDir => parts.push(OsString::from("..")),
            Component::Normal(name) => parts.push(name.to_os_string()),
        }
    }
    for part in parts.into_iter().rev() {
        pending.push_front(part);
    }
    absolute
}

/// Opens `path` with `leaf_flags` for its last component, following only symlinks
/// owned by root or the effective user.
///
/// Upstream: syscall.c, ona_open().
fn open_trusted(path: &Path, leaf_flags: OFlag) -> io::Result<OwnedFd> {
    if path.as_os_str().is_empty() {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "empty path"));
    }
    let trusted_uid = geteuid().as_raw();
    let mut pending = VecDeque::new();
    // `None` stands for the working directory.
    let mut dir: Option<OwnedFd> = None;
    if push_front_components(path, &mut pending) {
        dir = Some(open_root()?);
    }
    let mut links_left = MAX_SYMLINKS;
    while let Some(name) = pending.pop_front() {
        let at: BorrowedFd<'_> = dir.as_ref().map_or(AT_FDCWD, |d| d.as_fd());
        let st = fstatat(at, name.as_os_str(), AtFlags::AT_SYMLINK_NOFOLLOW)?;
        if file_type(&st) == libc::S_IFLNK {
            if st.st_uid != 0 && st.st_uid != trusted_uid {
                return Err(io::Error::new(
                    io::ErrorKind::PermissionDenied,
                    format!(
                        "{}: refusing to follow symlink `{}` owned by uid {} (not root or the daemon's user)",
                        path.display(),
                        name.to_string_lossy(),
                        st.st_uid
                    ),
                ));
            }
            links_left = links_left.checked_sub(1).ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("{}: too many levels of symbolic links", path.display()),
                )
            })?;
            let target = readlinkat(at, name.as_os_str())?;
            if push_front_components(Path::new(&target), &mut pending) {
                dir = Some(open_root()?);
            }
            continue;
        }
        let flags = if pending.is_empty() {
            leaf_flags
        } else {
            OFlag::O_RDONLY | OFlag::O_DIRECTORY
        };
        let fd = openat(
            at,
            name.as_os_str(),
            flags | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )?;
        if pending.is_empty() {
            return Ok(fd);
        }
        dir = Some(fd);
    }
    // The path named a directory without a final name ("/", ".", or a link to one).
    let at = dir.as_ref().map_or(AT_FDCWD, |d| d.as_fd());
    Ok(openat(
        at,
        ".",
        leaf_flags | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests may panic.
mod tests {
    use super::*;

    #[test]
    fn reads_files_and_directories() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("rsyncd.d");
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("a.conf"), "x = 1\n").unwrap();
        std::fs::create_dir(dir.join("sub.conf")).unwrap();
        let src = FsIncludes;
        assert_eq!(src.kind(&dir).unwrap(), IncludeKind::Directory);
        assert_eq!(src.kind(&dir.join("a.conf")).unwrap(), IncludeKind::File);
        assert_eq!(src.kind(Path::new("/")).unwrap(), IncludeKind::Directory);
        assert_eq!(
            src.kind(Path::new("/dev/null")).unwrap(),
            IncludeKind::Other
        );
        assert!(src.kind(&dir.join("missing")).is_err());
        assert_eq!(src.read_file(&dir.join("a.conf")).unwrap(), b"x = 1\n");
        assert!(src.read_file(&dir.join("sub.conf")).is_err());
        assert!(src.read_file(Path::new("/dev/null")).is_err());
        let mut names = src.list_dir(&dir).unwrap();
        names.retain(|n| n != "." && n != "..");
        names.sort();
        assert_eq!(names, ["a.conf", "sub.conf"]);
    }

    #[test]
    fn follows_own_symlinks() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("real.conf"), "y = 2\n").unwrap();
        std::os::unix::fs::symlink("real.conf", tmp.path().join("link.conf")).unwrap();
        std::os::unix::fs::symlink(tmp.path(), tmp.path().join("loop")).unwrap();
        let via = tmp.path().join("loop/loop/link.conf");
        assert_eq!(FsIncludes.read_file(&via).unwrap(), b"y = 2\n");
        std::os::unix::fs::symlink("self", tmp.path().join("self")).unwrap();
        assert!(FsIncludes.read_file(&tmp.path().join("self")).is_err());
    }

    #[test]
    fn refuses_symlinks_of_other_users() {
        // Only root can give a symlink to another user; elsewhere there is nothing to test.
        if !geteuid().is_root() {
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("real.conf"), "y = 2\n").unwrap();
        let link = tmp.path().join("planted.conf");
        std::os::unix::fs::symlink("real.conf", &link).unwrap();
        let nobody = Some(nix::unistd::Uid::from_raw(65534));
        nix::unistd::fchownat(AT_FDCWD, &link, nobody, None, AtFlags::AT_SYMLINK_NOFOLLOW).unwrap();
        let err = FsIncludes.read_file(&link).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::PermissionDenied);
        assert!(FsIncludes.kind(&link).is_err());
        // The same link as a directory component is refused too.
        let dirlink = tmp.path().join("planted.d");
        std::os::unix::fs::symlink(tmp.path(), &dirlink).unwrap();
        nix::unistd::fchownat(
            AT_FDCWD,
            &dirlink,
            nobody,
            None,
            AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .unwrap();
        assert!(FsIncludes.read_file(&dirlink.join("real.conf")).is_err());
    }
}
