//! Temp files beside their destination, then a rename over it.
//!
//! Upstream: receiver.c, get_tmpname() and open_tmpfile(); util1.c, robust_rename().

use std::fmt;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::fd::{AsFd, OwnedFd};

use nix::errno::Errno;
use nix::fcntl::{OFlag, openat, renameat};
use nix::sys::stat::{Mode, fchmod};
use nix::unistd::{UnlinkatFlags, unlinkat};

use super::{RelPath, Tree, TreeError};

/// `NAME_MAX` on Linux.
const NAME_MAX: usize = 255;

/// The `.XXXXXX` part of a temp name.
const SUFFIX_LEN: usize = 7;

/// The longest basename part: the name must fit `NAME_MAX` with the leading dot and
/// the suffix, and upstream's buffer arithmetic leaves one byte more for its NUL.
const MAX_BASE: usize = NAME_MAX - 1 - SUFFIX_LEN - 1;

/// How many random names to try before giving up (upstream's mkstemp loop).
const CREATE_TRIES: usize = 100;

/// The characters of the random suffix, as mkstemp uses them.
const LETTERS: &[u8; 62] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

/// The temp name for a file called `basename`, with the 6-byte `random` suffix:
/// `.` + basename + `.` + random, where a leading dot of the basename is not doubled,
/// one trailing dot is dropped, and the basename is cut to keep the whole name within
/// `NAME_MAX` (never in the middle of a multi-byte character).
///
/// Upstream: receiver.c, get_tmpname() (without `--temp-dir`).
pub fn temp_name(basename: &[u8], random: &[u8; 6]) -> Vec<u8> {
    let f = basename.strip_prefix(b".").unwrap_or(basename);
    let mut take = f.len().min(MAX_BASE);
    // Cutting into a run of high-bit bytes may split a character: drop the whole run.
    if f.get(take).is_some_and(|&b| b & 0x80 != 0) {
        while take > 0 && f[take - 1] & 0x80 != 0 {
            take -= 1;
        }
    }
    let mut base = &f[..take];
    if let Some(trimmed) = base.strip_suffix(b".") {
        base = trimmed;
    }
    let mut name = Vec::with_capacity(1 + base.len() + SUFFIX_LEN);
    // With nothing left of the basename, upstream's dot-trimming eats the leading dot.
    if !base.is_empty() {
        name.push(b'.');
        name.extend_from_slice(base);
    }
    name.push(b'.');
    name.extend_from_slice(random);
    name
}

/// Six random characters from mkstemp's alphabet.
pub fn random_suffix() -> io::Result<[u8; 6]> {
    let mut raw = [0u8; 6];
    getrandom::fill(&mut raw).map_err(|e| io::Error::other(e.to_string()))?;
    Ok(raw.map(|b| LETTERS[usize::from(b) % LETTERS.len()]))
}

/// A temp file being written beside its destination. Dropping it (or
/// [`Tree::discard`]) removes it; [`Tree::commit`] renames it into place.
#[derive(Debug)]
pub struct TempFile {
    file: File,
    /// The directory it was created in (held, so later renames of the path do not
    /// move where we unlink or rename from).
    dir: OwnedFd,
    name: Vec<u8>,
    /// For messages: the directory's path as given, then the temp name.
    shown: String,
    /// Still ours to unlink on drop.
    armed: bool,
}

impl TempFile {
    /// The open file, for writing the data.
    pub fn file(&self) -> &File {
        &self.file
    }

    /// The open file, mutably.
    pub fn file_mut(&mut self) -> &mut File {
        &mut self.file
    }

    /// The temp file's own name (no directory).
    pub fn name(&self) -> &[u8] {
        &self.name
    }

    pub(super) fn display(&self) -> impl fmt::Display + '_ {
        &self.shown
    }
}

impl Write for TempFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl Read for TempFile {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.file.read(buf)
    }
}

impl Seek for TempFile {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        self.file.seek(pos)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if self.armed {
            // Nothing useful to do with a failure here; the name is ours, in our dir.
            let _ = unlinkat(&self.dir, self.name.as_slice(), UnlinkatFlags::NoRemoveDir);
        }
    }
}

impl Tree {
    /// Creates a temp file for `beside` in `beside`'s directory, named per
    /// [`temp_name`], with `O_EXCL|O_NOFOLLOW`, and permissions
    /// `(mode | u+w) & 0700` (`| u+rw` with fake super) so nobody else can open it
    /// before the real mode is set.
    ///
    /// Errors: `IsRoot` for `.`, resolver refusals for the directory, `Io`.
    ///
    /// Upstream: receiver.c, open_tmpfile(); syscall.c, do_mkstemp_atfd().
    pub fn create_temp(&self, beside: &RelPath, mode: u32) -> Result<TempFile, TreeError> {
        if self.opts.dry_run {
            return Err(TreeError::DryRun {
                op: "create a temporary file",
            });
        }
        let (dir, base) = self.locate_entry(beside, "create temp file")?;
        let added = if self.opts.fake_super { 0o600 } else { 0o200 };
        let perms = Mode::from_bits_truncate((mode | added) & 0o700);
        let flags =
            OFlag::O_RDWR | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let mut last = Errno::EEXIST;
        for _ in 0..CREATE_TRIES {
            let random = random_suffix().map_err(|e| TreeError::io("mkstemp", beside, e))?;
            let name = temp_name(base, &random);
            match openat(dir.as_fd(), name.as_slice(), flags, perms) {
                Ok(fd) => {
                    let parent = beside.parent().unwrap_or_else(RelPath::root);
                    let shown = format!("{parent}/{}", String::from_utf8_lossy(&name));
                    let dir = dir
                        .into_owned()
                        .map_err(|e| TreeError::io("mkstemp", beside, e))?;
                    let tmp = TempFile {
                        file: File::from(fd),
                        dir,
                        name,
                        shown,
                        armed: true,
                    };
                    // The umask may have narrowed the mode; set it exactly.
                    fchmod(&tmp.file, perms)
                        .map_err(|e| TreeError::errno("chmod", &tmp.shown, e))?;
                    return Ok(tmp);
                }
                Err(Errno::EEXIST) => last = Errno::EEXIST,
                Err(e) => return Err(TreeError::errno("mkstemp", beside, e)),
            }
        }
        Err(TreeError::errno("mkstemp", beside, last))
    }

    /// Renames the temp file over `to` (replacing a file or symlink there, never
    /// following it). `to`'s directory is resolved afresh, so a directory swapped for a
    /// symlink since [`Tree::create_temp`] is refused, not followed. On error the temp
    /// file is removed.
    ///
    /// Upstream: util1.c, robust_rename().
    pub fn commit(&self, mut tmp: TempFile, to: &RelPath) -> Result<(), TreeError> {
        let (dir, name) = self.locate_entry(to, "rename")?;
        let rename = || renameat(&tmp.dir, tmp.name.as_slice(), &dir, name);
        match rename() {
            Ok(()) => {}
            // A running executable cannot be replaced in place; unlink it first.
            Err(Errno::ETXTBSY) => {
                unlinkat(&dir, name, UnlinkatFlags::NoRemoveDir)
                    .map_err(|e| TreeError::errno("unlink", to, e))?;
                rename().map_err(|e| TreeError::errno("rename", to, e))?;
            }
            Err(e) => return Err(TreeError::errno("rename", to, e)),
        }
        tmp.armed = false;
        Ok(())
    }

    /// Removes the temp file (the same as dropping it).
    pub fn discard(&self, tmp: TempFile) {
        drop(tmp);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const R: &[u8; 6] = b"AbC123";

    #[test]
    fn plain_name_gets_dot_and_suffix() {
        assert_eq!(temp_name(b"a.txt", R), b".a.txt.AbC123");
    }

    #[test]
    fn leading_dot_is_not_doubled() {
        assert_eq!(temp_name(b".bashrc", R), b".bashrc.AbC123");
    }

    #[test]
    fn one_trailing_dot_is_dropped() {
        assert_eq!(temp_name(b"foo.", R), b".foo.AbC123");
        assert_eq!(temp_name(b"foo..", R), b".foo..AbC123");
    }

    #[test]
    fn long_names_fit_name_max() {
        let long = vec![b'x'; 300];
        let name = temp_name(&long, R);
        assert!(name.len() <= NAME_MAX);
        assert_eq!(name.len(), 1 + MAX_BASE + SUFFIX_LEN);
        assert_eq!(&name[..3], b".xx");
        assert!(name.ends_with(b".AbC123"));
        // Exactly at the limit: nothing is cut.
        let fits = vec![b'y'; MAX_BASE];
        assert_eq!(temp_name(&fits, R).len(), 1 + MAX_BASE + SUFFIX_LEN);
        // A dot left at the cut point is dropped like any trailing dot.
        let mut dotted = vec![b'z'; MAX_BASE - 1];
        dotted.extend_from_slice(b".tail");
        assert_eq!(temp_name(&dotted, R).len(), 1 + (MAX_BASE - 1) + SUFFIX_LEN);
    }

    #[test]
    fn cut_never_splits_a_multibyte_character() {
        // 'é' is two bytes; an odd cut point would split one.
        let mut name = b"a".to_vec();
        for _ in 0..200 {
            name.extend_from_slice("é".as_bytes());
        }
        let tmp = temp_name(&name, R);
        let base = &tmp[1..tmp.len() - SUFFIX_LEN];
        assert!(std::str::from_utf8(base).is_ok());
        assert_eq!(base, b"a");
        // All high-bit after a leading dot: only the suffix is left.
        let mut weird = b".".to_vec();
        weird.extend(std::iter::repeat_n(0xC3u8, 300));
        assert_eq!(temp_name(&weird, R), b".AbC123");
    }

    #[test]
    fn suffix_uses_mkstemp_letters() {
        let s = random_suffix().unwrap();
        assert!(s.iter().all(|b| b.is_ascii_alphanumeric()));
    }
}
