//! Process identity: user and group lookup, dropping to a module's uid/gid, chroot, and
//! the process primitives of the listener (fork, detaching).
//! Upstream: clientserver.c rsync_module() (groups, setgid, setuid, chroot),
//! become_daemon().
//!
//! This is one of the two places `unsafe` is allowed: `fork` is unsafe in a process with
//! several threads, and the listener calls it before any thread exists.

use std::ffi::CString;
use std::io;
use std::path::Path;

use nix::unistd::{self, ForkResult, Gid, Pid, Uid};

/// Whether this process runs as root.
pub fn running_as_root() -> bool {
    Uid::effective().is_root()
}

/// A user name or number to a uid. Upstream: uidlist.c, user_to_uid() (names first,
/// then digits).
pub fn user_to_uid(name: &str) -> Option<Uid> {
    if let Some(user) = uzers::get_user_by_name(name) {
        return Some(Uid::from_raw(user.uid()));
    }
    name.parse::<u32>().ok().map(Uid::from_raw)
}

/// A group name or number to a gid. Upstream: uidlist.c, group_to_gid().
pub fn group_to_gid(name: &str) -> Option<Gid> {
    if let Some(group) = uzers::get_group_by_name(name) {
        return Some(Gid::from_raw(group.gid()));
    }
    name.parse::<u32>().ok().map(Gid::from_raw)
}

/// Every group of the user with `uid` (for `gid = *`), primary group first.
pub fn all_groups_of(uid: Uid) -> io::Result<Vec<Gid>> {
    let user = uzers::get_user_by_uid(uid.as_raw())
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "getpwuid failed"))?;
    let name = CString::new(user.name().as_encoded_bytes()).map_err(io::Error::other)?;
    let primary = Gid::from_raw(user.primary_group_id());
    let mut groups = unistd::getgrouplist(&name, primary).map_err(io::Error::from)?;
    groups.retain(|g| *g != primary);
    groups.insert(0, primary);
    Ok(groups)
}

/// Which step of dropping privileges failed; the text is upstream's `@ERROR` wording.
#[derive(Debug, thiserror::Error)]
pub enum DropError {
    #[error("chroot failed")]
    Chroot(#[source] nix::Error),
    #[error("setgid failed")]
    Setgid(#[source] nix::Error),
    #[error("setgroups failed")]
    Setgroups(#[source] nix::Error),
    #[error("setuid failed")]
    Setuid(#[source] nix::Error),
}

impl DropError {
    /// The errno of the failed call, for the log line.
    pub fn errno(&self) -> i32 {
        match self {
            DropError::Chroot(e)
            | DropError::Setgid(e)
            | DropError::Setgroups(e)
            | DropError::Setuid(e) => *e as i32,
        }
    }
}

/// Changes root to `dir` and the working directory to its `/`.
pub fn chroot_to(dir: &Path) -> Result<(), DropError> {
    unistd::chroot(dir).map_err(DropError::Chroot)?;
    unistd::chdir("/").map_err(DropError::Chroot)
}

/// Sets gid and supplementary groups (the first of `gids` is the primary), then the uid,
/// in that order, so that nothing is left to a process that could regain root.
pub fn drop_to(uid: Option<Uid>, gids: &[Gid]) -> Result<(), DropError> {
    if let Some(&primary) = gids.first() {
        unistd::setgid(primary).map_err(DropError::Setgid)?;
        unistd::setgroups(gids).map_err(DropError::Setgroups)?;
    }
    if let Some(uid) = uid {
        unistd::setuid(uid).map_err(DropError::Setuid)?;
        unistd::seteuid(uid).map_err(DropError::Setuid)?;
        // A root process that asked for a non-root uid must not be able to go back.
        if !uid.is_root() && unistd::setuid(Uid::from_raw(0)).is_ok() {
            return Err(DropError::Setuid(nix::Error::EPERM));
        }
    }
    Ok(())
}

/// The two sides of a fork.
#[derive(Debug)]
pub enum Forked {
    Parent(Pid),
    Child,
}

/// Forks the process.
///
/// The caller must be single-threaded: the listener calls this before it (or anything it
/// links) starts a thread, and sessions only start threads after they were forked.
pub fn fork_process() -> io::Result<Forked> {
    // SAFETY: fork is unsafe only when other threads exist (the child would inherit locks
    // they hold). The listener process never starts a thread, so the child gets a
    // consistent copy of the only thread there is.
    match unsafe { unistd::fork() }.map_err(io::Error::from)? {
        ForkResult::Parent { child } => Ok(Forked::Parent(child)),
        ForkResult::Child => Ok(Forked::Child),
    }
}

/// Detaches from the terminal as rsyncd does: fork (the launcher exits 0), start a new
/// session, and point standard input, output and error at `/dev/null`.
/// Returns in the detached child only. Upstream: clientserver.c, become_daemon().
pub fn become_daemon() -> io::Result<()> {
    match fork_process()? {
        Forked::Parent(_) => std::process::exit(0),
        Forked::Child => {}
    }
    unistd::setsid().map_err(io::Error::from)?;
    redirect_stdio_to_null(true)
}

/// Points standard input (when `include_stdin`), output and error at `/dev/null`.
pub fn redirect_stdio_to_null(include_stdin: bool) -> io::Result<()> {
    let null = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")?;
    if include_stdin {
        unistd::dup2_stdin(&null).map_err(io::Error::from)?;
    }
    unistd::dup2_stdout(&null).map_err(io::Error::from)?;
    unistd::dup2_stderr(&null).map_err(io::Error::from)?;
    Ok(())
}
