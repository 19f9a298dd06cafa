//! `fs.inotify.max_user_watches`: what to do when a watch is refused for lack of them.
//!
//! A directory without a watch is a directory whose changes are lost, so running out
//! of watches is not a warning to ignore. As root we raise the limit ourselves (sersync
//! asks its users to do it by hand); otherwise we say exactly what to run.

use std::fs;
use std::io;
use std::path::PathBuf;

use tracing::{error, warn};

/// The system's limit on inotify watches per user.
pub(super) const MAX_USER_WATCHES: &str = "/proc/sys/fs/inotify/max_user_watches";

/// What to say whenever the limit is in the way: fanotify mode has no such limit.
pub(super) const FANOTIFY_HINT: &str = "a tree this large is better watched in fanotify mode: \
    `watcher = \"fanotify\"` in [agent] or `--watcher fanotify` (Linux 5.9+, as root), one \
    mark for the whole filesystem and no watch per directory";

/// Used when the limit cannot even be read: the value the kernel picks for machines
/// with plenty of memory since 5.11.
const FALLBACK_SUGGESTION: u64 = 1_048_576;

/// Where the watch limit lives and whether we may change it.
#[derive(Debug, Clone)]
pub(super) struct WatchLimit {
    pub(super) file: PathBuf,
    pub(super) may_raise: bool,
}

impl WatchLimit {
    /// The real sysctl; raised only when we run as root.
    pub(super) fn system() -> Self {
        Self {
            file: PathBuf::from(MAX_USER_WATCHES),
            may_raise: nix::unistd::geteuid().is_root(),
        }
    }

    /// Doubles the limit. `true` when it was raised (the caller retries the watch);
    /// `false` after logging what the administrator should run.
    pub(super) fn raise(&self, watches_held: usize) -> bool {
        let current = self.read();
        let wanted = match current {
            Ok(n) => n.saturating_mul(2).max(1),
            Err(_) => FALLBACK_SUGGESTION,
        };
        if self.may_raise {
            match fs::write(&self.file, format!("{wanted}\n")) {
                Ok(()) => {
                    warn!(
                        from = current.ok(),
                        to = wanted,
                        file = %self.file.display(),
                        "out of inotify watches: raised fs.inotify.max_user_watches \
                         ({FANOTIFY_HINT})"
                    );
                    return true;
                }
                Err(e) => {
                    error!(file = %self.file.display(), error = %e, "cannot raise the inotify watch limit");
                }
            }
        }
        error!(
            watches_held,
            limit = current.ok(),
            "out of inotify watches: changes below the directories not watched are \
             pushed again once it is fixed; run `sysctl fs.inotify.max_user_watches={wanted}` \
             ({FANOTIFY_HINT})"
        );
        false
    }

    fn read(&self) -> io::Result<u64> {
        let text = fs::read_to_string(&self.file)?;
        text.trim()
            .parse()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_doubles_the_limit_in_the_file() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let file = dir.path().join("max_user_watches");
        fs::write(&file, "8192\n")?;
        let limit = WatchLimit {
            file: file.clone(),
            may_raise: true,
        };
        assert!(limit.raise(8192));
        assert_eq!(fs::read_to_string(&file)?, "16384\n");
        Ok(())
    }

    #[test]
    fn others_leave_the_file_alone() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let file = dir.path().join("max_user_watches");
        fs::write(&file, "8192\n")?;
        let limit = WatchLimit {
            file: file.clone(),
            may_raise: false,
        };
        assert!(!limit.raise(8192));
        assert_eq!(fs::read_to_string(&file)?, "8192\n");
        Ok(())
    }
}
