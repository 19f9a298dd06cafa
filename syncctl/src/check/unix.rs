//! What the checks ask of the system: permission bits for another user, who listens on
//! a port.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// Access bits, as in a mode's `rwx`.
pub const R: u32 = 4;
pub const W: u32 = 2;
pub const X: u32 = 1;

/// Whether `uid` with groups `gids` has every bit of `want` on `meta`, as the kernel
/// decides for a process without capabilities (root passes, except execute needs one x
/// bit). ACLs are not looked at.
pub fn permits(meta: &std::fs::Metadata, uid: u32, gids: &[u32], want: u32) -> bool {
    let mode = meta.mode();
    if uid == 0 {
        return want & X == 0 || meta.is_dir() || mode & 0o111 != 0;
    }
    let bits = if meta.uid() == uid {
        (mode >> 6) & 7
    } else if gids.contains(&meta.gid()) {
        (mode >> 3) & 7
    } else {
        mode & 7
    };
    bits & want == want
}

/// The first directory above `path` (itself excluded) that `uid`/`gids` cannot enter.
pub fn unenterable_parent(path: &Path, uid: u32, gids: &[u32]) -> Option<std::path::PathBuf> {
    path.ancestors()
        .skip(1)
        .filter(|p| !p.as_os_str().is_empty())
        .find(|p| std::fs::metadata(p).is_ok_and(|m| !permits(&m, uid, gids, X)))
        .map(Path::to_path_buf)
}

/// Whether this process could create or write `path`: the file itself if it exists,
/// else its directory.
pub fn writable_here(path: &Path) -> Result<(), String> {
    use nix::unistd::{AccessFlags, access};
    if path.exists() {
        return access(path, AccessFlags::W_OK)
            .map_err(|e| format!("{} is not writable: {e}", path.display()));
    }
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if !dir.is_dir() {
        return Err(format!(
            "{}: its directory {} does not exist",
            path.display(),
            dir.display()
        ));
    }
    access(dir, AccessFlags::W_OK | AccessFlags::X_OK)
        .map_err(|e| format!("cannot create {} in {}: {e}", path.display(), dir.display()))
}

/// The inodes of the sockets listening on TCP `port` (any address, IPv4 or IPv6).
pub fn listening_inodes(port: u16) -> Vec<String> {
    let want = format!(":{port:04X}");
    let mut found = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for l in text.lines().skip(1) {
            let f: Vec<&str> = l.split_whitespace().collect();
            let local = f.get(1).copied().unwrap_or_default();
            if local.ends_with(&want) && f.get(3) == Some(&"0A") {
                if let Some(inode) = f.get(9) {
                    found.push((*inode).to_string());
                }
            }
        }
    }
    found
}

/// Whether process `pid` holds one of the sockets `inodes`.
pub fn holds_socket(pid: u32, inodes: &[String]) -> bool {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.filter_map(Result::ok).any(|fd| {
        std::fs::read_link(fd.path()).is_ok_and(|t| {
            let t = t.to_string_lossy();
            inodes.iter().any(|i| t == format!("socket:[{i}]"))
        })
    })
}
