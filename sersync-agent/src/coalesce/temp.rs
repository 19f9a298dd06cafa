//! Names of temporary files, which are never pushed: they are renamed or deleted a
//! moment later, and a remote copy would be junk (or, with deletes off, junk forever).
//!
//! The list is short on purpose: a name taken for temporary is a file never pushed,
//! so each rule matches only what its writer makes.
//!
//! | writer | name |
//! |---|---|
//! | rsync (receiver's temp file) | `.NAME.XXXXXX`, six letters or digits, not all lower case |
//! | vim, nano (swap) | `.NAME.swp`, `.swo` … `.swa`, `.swx` |
//! | vim (writability probe) | `4913`, `5036`, … (4913 + 123·k) |
//! | vim, emacs, many others (backup) | `NAME~` |
//! | emacs (auto-save, lock) | `#NAME#`, `.#NAME` |
//! | Kate | `NAME.kate-swp` |
//! | gedit and other GIO writers | `.goutputstream-XXXXXX` |
//! | JetBrains IDEs (safe write) | `NAME___jb_tmp___`, `NAME___jb_old___` |
//! | LibreOffice (lock) | `.~lock.NAME#` |

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

/// Whether a file name (one path component) is a temporary file's, per the table above.
pub fn is_temp_name(name: &OsStr) -> bool {
    let n = name.as_bytes();
    is_rsync_temp(n)
        || is_vim_swap(n)
        || is_vim_probe(n)
        || (n.len() > 1 && n.ends_with(b"~"))
        || (n.len() > 2 && n.starts_with(b"#") && n.ends_with(b"#"))
        || (n.len() > 2 && n.starts_with(b".#"))
        || n.ends_with(b".kate-swp")
        || n.starts_with(b".goutputstream-")
        || n.ends_with(b"___jb_tmp___")
        || n.ends_with(b"___jb_old___")
        || (n.starts_with(b".~lock.") && n.ends_with(b"#"))
}

/// Upstream: rsync's receiver.c, get_tmpname(): `.` + name + `.` + mkstemp's six
/// characters from `[A-Za-z0-9]`. Six lower-case letters are not taken for a temp
/// name: `.profile.backup` is a real file, and only about one rsync temp name in 180
/// looks like that (pushed then, as junk, rather than a real file lost).
fn is_rsync_temp(n: &[u8]) -> bool {
    let Some(rest) = n.strip_prefix(b".") else {
        return false;
    };
    let Some((stem, suffix)) = rest.len().checked_sub(7).map(|i| rest.split_at(i)) else {
        return false;
    };
    let Some(random) = suffix.strip_prefix(b".") else {
        return false;
    };
    !stem.is_empty()
        && random.iter().all(u8::is_ascii_alphanumeric)
        && !random.iter().all(u8::is_ascii_lowercase)
}

/// vim names its swap file `.NAME.swp`, then `.swo`, `.swn` … down to `.swa` when
/// those exist; `.swx` is its probe for whether swap files can be made at all.
fn is_vim_swap(n: &[u8]) -> bool {
    if n.len() < 6 || !n.starts_with(b".") {
        return false;
    }
    match n.last_chunk::<4>() {
        Some([b'.', b's', b'w', c]) => (b'a'..=b'p').contains(c) || *c == b'x',
        _ => false,
    }
}

/// vim checks that it may create files in a directory by creating `4913` (and
/// 4913 + 123, … while that name exists): src/bufwrite.c, buf_write().
fn is_vim_probe(n: &[u8]) -> bool {
    if n.is_empty() || n.len() > 5 || !n.iter().all(u8::is_ascii_digit) {
        return false;
    }
    let value = n.iter().fold(0u32, |acc, d| acc * 10 + u32::from(d - b'0'));
    value >= 4913 && (value - 4913) % 123 == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temporary_names() {
        for name in [
            ".report.txt.Xa9fQ2",
            ".f.ABCDEF",
            ".notes.md.swp",
            ".notes.md.swo",
            ".notes.md.swx",
            "4913",
            "5036",
            "notes.md~",
            "#notes.md#",
            ".#notes.md",
            "notes.md.kate-swp",
            ".goutputstream-8ZQ1XV",
            "Main.java___jb_tmp___",
            "Main.java___jb_old___",
            ".~lock.sheet.ods#",
        ] {
            assert!(is_temp_name(OsStr::new(name)), "{name} is temporary");
        }
    }

    #[test]
    fn real_names() {
        for name in [
            ".profile.backup",
            ".bashrc",
            "report.txt",
            ".Xa9fQ2",
            "..Xa9fQ2",
            ".f.ABCDE",
            ".f.ABCD-F",
            "notes.swp",
            "4914",
            "12",
            "~",
            "#",
            "##",
            ".#",
            "swp",
            "a.tmp",
        ] {
            assert!(!is_temp_name(OsStr::new(name)), "{name} is a real name");
        }
    }

    #[test]
    fn invalid_utf8_is_just_bytes() {
        assert!(is_temp_name(OsStr::from_bytes(b"\xff\xfe~")));
        assert!(!is_temp_name(OsStr::from_bytes(b"\xff\xfe")));
    }
}
