//! `fake super`: what a non-root receiver cannot apply goes into `user.rsync.%stat`.
//!
//! The value is ASCII `"%o %u,%u %u:%u"` — MODE (octal, type bits included),
//! MAJOR,MINOR of the device number, UID:GID. It is written only when the file on disk
//! differs from what was wanted and removed when they agree. On disk the entry keeps
//! the wanted permission bits without setuid/setgid/sticky, plus owner `rw` (`rwx` for
//! directories); devices, fifos, sockets and symlinks are regular stand-in files.
//!
//! Upstream: xattrs.c, set_stat_xattr() and get_stat_xattr().

use std::fmt;
use std::fs::File;
use std::io;

use nix::sys::stat::{FileStat, Mode, fchmod, major, makedev, minor};
use xattr::FileExt;

use super::TreeError;
use super::meta::{CHMOD_BITS, FileKind, Meta, WantAttrs};

/// The xattr name, as stock rsync spells it.
pub const STAT_XATTR: &str = "user.rsync.%stat";

/// One parsed `user.rsync.%stat` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatXattr {
    /// Full mode, type bits included.
    pub mode: u32,
    /// Device major number (0 unless a device).
    pub rdev_major: u32,
    /// Device minor number.
    pub rdev_minor: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
}

impl StatXattr {
    /// The device number as `st_rdev` holds it.
    pub fn rdev(&self) -> u64 {
        makedev(u64::from(self.rdev_major), u64::from(self.rdev_minor))
    }

    /// The value as stock rsync writes it.
    pub fn value(&self) -> String {
        stat_xattr_value(
            self.mode,
            self.rdev_major,
            self.rdev_minor,
            self.uid,
            self.gid,
        )
    }
}

/// Formats a `user.rsync.%stat` value: `"%o %u,%u %u:%u"`, e.g. `"104750 0,0 1:2"`.
pub fn stat_xattr_value(mode: u32, rdev_major: u32, rdev_minor: u32, uid: u32, gid: u32) -> String {
    format!("{mode:o} {rdev_major},{rdev_minor} {uid}:{gid}")
}

/// Parses a `user.rsync.%stat` value; `None` unless it is exactly the stock format
/// (one trailing NUL is tolerated) with a known file type in MODE.
pub fn parse_stat_xattr(value: &[u8]) -> Option<StatXattr> {
    let value = value.strip_suffix(b"\0").unwrap_or(value);
    let text = std::str::from_utf8(value).ok()?;
    let (mode, rest) = text.split_once(' ')?;
    let (rdev, owner) = rest.split_once(' ')?;
    let (rdev_major, rdev_minor) = rdev.split_once(',')?;
    let (uid, gid) = owner.split_once(':')?;
    let digits = |s: &str, radix: u32| {
        let all_digits = !s.is_empty() && s.chars().all(|c| c.is_digit(radix));
        all_digits
            .then(|| u32::from_str_radix(s, radix).ok())
            .flatten()
    };
    let mode = digits(mode, 8)?;
    if mode > 0o177_777 {
        return None;
    }
    FileKind::from_mode(mode)?;
    Some(StatXattr {
        mode,
        rdev_major: digits(rdev_major, 10)?,
        rdev_minor: digits(rdev_minor, 10)?,
        uid: digits(uid, 10)?,
        gid: digits(gid, 10)?,
    })
}

/// Reads and parses the xattr; `None` when absent or when the filesystem has no
/// user xattrs.
pub(super) fn read_stat_xattr(
    file: &File,
    shown: &dyn fmt::Display,
) -> Result<Option<StatXattr>, TreeError> {
    let raw = match file.get_xattr(STAT_XATTR) {
        Ok(raw) => raw,
        Err(e) if is_unsupported(&e) => None,
        Err(e) => return Err(TreeError::io("getxattr", shown, e)),
    };
    let Some(raw) = raw else {
        return Ok(None);
    };
    match parse_stat_xattr(&raw) {
        Some(x) => Ok(Some(x)),
        None => Err(TreeError::CorruptStatXattr {
            path: shown.to_string(),
            value: String::from_utf8_lossy(&raw).into_owned(),
        }),
    }
}

fn is_unsupported(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOTSUP | libc::ENODATA))
}

/// `st` with mode, rdev, uid and gid replaced by the xattr's, when there is one.
pub(super) fn overlay_stat_xattr(
    file: &File,
    st: &FileStat,
    shown: &dyn fmt::Display,
) -> Result<Meta, TreeError> {
    let mut meta = Meta::from_stat(st);
    if let Some(x) = read_stat_xattr(file, shown)? {
        meta.mode = x.mode;
        meta.kind = FileKind::from_mode(x.mode).unwrap_or(meta.kind);
        meta.rdev = x.rdev();
        meta.uid = x.uid;
        meta.gid = x.gid;
    }
    Ok(meta)
}

/// Brings `file` and its xattr in line with `want`: on-disk permissions become the
/// wanted ones without special bits plus owner access, and the xattr records what the
/// disk cannot hold. `kind` overrides the recorded file type (for a new stand-in);
/// otherwise the recorded one (or the real one) is kept. Fields `want` leaves `None`
/// keep their recorded (or real) values. Returns whether the xattr was written or
/// removed.
///
/// Upstream: xattrs.c, set_stat_xattr().
pub(super) fn apply_stat_xattr(
    file: &File,
    kind: Option<u32>,
    want: &WantAttrs,
    shown: &dyn fmt::Display,
) -> Result<bool, TreeError> {
    let real = nix::sys::stat::fstat(file).map_err(|e| TreeError::errno("fstat", shown, e))?;
    let stored = read_stat_xattr(file, shown)?;
    let base_mode = stored.map_or(real.st_mode, |x| x.mode);
    let ftype = kind.unwrap_or(base_mode) & libc::S_IFMT;
    let fmode = ftype | (want.mode.unwrap_or(base_mode) & CHMOD_BITS);
    let uid = want.uid.or(stored.map(|x| x.uid)).unwrap_or(real.st_uid);
    let gid = want.gid.or(stored.map(|x| x.gid)).unwrap_or(real.st_gid);
    let is_dev = |mode: u32| FileKind::from_mode(mode).is_some_and(FileKind::is_device);
    let rdev = if is_dev(fmode) {
        want.rdev.or(stored.map(|x| x.rdev())).unwrap_or(0)
    } else {
        0
    };

    // Drop the special bits and make sure the copying user can use the entry.
    let real_type = real.st_mode & libc::S_IFMT;
    let owner_bits = if real_type == libc::S_IFDIR {
        0o700
    } else {
        0o600
    };
    let disk_mode = real_type | (fmode & 0o777) | owner_bits;
    if real.st_mode & (libc::S_IFMT | CHMOD_BITS) != disk_mode {
        fchmod(file, Mode::from_bits_truncate(disk_mode & CHMOD_BITS))
            .map_err(|e| TreeError::errno("chmod", shown, e))?;
    }
    let real_rdev = if is_dev(real.st_mode) {
        real.st_rdev
    } else {
        0
    };

    if disk_mode == fmode && real_rdev == rdev && real.st_uid == uid && real.st_gid == gid {
        if stored.is_none() {
            return Ok(false);
        }
        file.remove_xattr(STAT_XATTR)
            .map_err(|e| TreeError::io("removexattr", shown, e))?;
        return Ok(true);
    }
    let wanted = StatXattr {
        mode: fmode,
        rdev_major: u32::try_from(major(rdev)).unwrap_or(u32::MAX),
        rdev_minor: u32::try_from(minor(rdev)).unwrap_or(u32::MAX),
        uid,
        gid,
    };
    if stored == Some(wanted) {
        return Ok(false);
    }
    file.set_xattr(STAT_XATTR, wanted.value().as_bytes())
        .map_err(|e| TreeError::io("setxattr", shown, e))?;
    Ok(true)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// What stock rsyncd 3.5.0 wrote (name, xattr value, `ls -l` mode, size).
    const CAPTURE: &str =
        include_str!("../../../testdata/captures/b-i-push-fakesuper.server-xattrs.txt");

    #[test]
    fn capture_values_parse_and_format_back() {
        let mut seen = 0;
        for line in CAPTURE.lines().filter(|l| l.contains('\t')) {
            let value = line.split('\t').nth(1).unwrap();
            let parsed = parse_stat_xattr(value.as_bytes()).unwrap();
            assert_eq!(parsed.value(), value);
            seen += 1;
        }
        assert_eq!(seen, 7);
    }

    #[test]
    fn capture_values_mean_what_the_table_says() {
        let x = parse_stat_xattr(b"104750 0,0 1:2").unwrap();
        assert_eq!((x.mode, x.uid, x.gid, x.rdev()), (0o104_750, 1, 2, 0));
        let c = parse_stat_xattr(b"20644 1,3 0:0").unwrap();
        assert_eq!(FileKind::from_mode(c.mode), Some(FileKind::CharDev));
        assert_eq!((major(c.rdev()), minor(c.rdev())), (1, 3));
        let b = parse_stat_xattr(b"60644 8,1 0:0").unwrap();
        assert_eq!(FileKind::from_mode(b.mode), Some(FileKind::BlockDev));
        assert_eq!(stat_xattr_value(0o120_777, 0, 0, 0, 0), "120777 0,0 0:0");
        assert_eq!(stat_xattr_value(0o42_770, 0, 0, 0, 0), "42770 0,0 0:0");
    }

    #[test]
    fn rejects_malformed_values() {
        for bad in [
            &b""[..],
            b"104750",
            b"104750 0,0 1",
            b"104750 0 1:2",
            b"10475x 0,0 1:2",
            b"-1 0,0 1:2",
            b"104750 0,0 1:2 extra",
            b"104750  0,0 1:2",
            b"774750 0,0 1:2",
            b"1777777 0,0 0:0",
            b"104750 0,0 1:99999999999",
        ] {
            assert!(
                parse_stat_xattr(bad).is_none(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        assert!(parse_stat_xattr(b"100644 0,0 0:0\0").is_some());
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_never_panic(b in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..40)) {
            let _ = parse_stat_xattr(&b);
        }

        #[test]
        fn format_then_parse_is_identity(
            perms in 0u32..0o10000,
            kind in proptest::sample::select(vec![
                libc::S_IFREG, libc::S_IFDIR, libc::S_IFLNK, libc::S_IFCHR,
                libc::S_IFBLK, libc::S_IFIFO, libc::S_IFSOCK]),
            maj in proptest::prelude::any::<u32>(), min in proptest::prelude::any::<u32>(),
            uid in proptest::prelude::any::<u32>(), gid in proptest::prelude::any::<u32>(),
        ) {
            let v = stat_xattr_value(kind | perms, maj, min, uid, gid);
            let x = parse_stat_xattr(v.as_bytes()).unwrap();
            proptest::prop_assert_eq!(x, StatXattr { mode: kind | perms, rdev_major: maj, rdev_minor: min, uid, gid });
        }
    }
}
