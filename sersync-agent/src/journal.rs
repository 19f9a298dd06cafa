//! The on-disk form of a remote's pending changes: an append-only file of one record a
//! line, replayed at start, compacted when mostly acknowledged. A record is
//! `SEQ KIND PATH[ PATH]`: `P` push, `D` delete, `M` rename (from, to), `F` the whole
//! tree mirrored (no path), `A` the acknowledgement of record SEQ (no path). Paths are
//! escaped so that any byte string fits on a line and the common ones stay readable:
//! bytes outside printable ASCII, `%` and space as `%XX`.
//!
//! Writes are buffered; [`Journal::flush`] hands them to the kernel (they outlive the
//! process) and [`Journal::sync`] makes them durable, which the agent does every 100 ms,
//! not per change. A record torn by a crash (the last line without its newline, or
//! unreadable) ends the replay there: what it described is found again by the catch-up
//! push at start.

use std::ffi::OsStr;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// One line of the journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    Push {
        seq: u64,
        path: PathBuf,
    },
    Delete {
        seq: u64,
        path: PathBuf,
    },
    Rename {
        seq: u64,
        from: PathBuf,
        to: PathBuf,
    },
    Mirror {
        seq: u64,
    },
    Ack {
        seq: u64,
    },
}

/// An open journal file, appended to.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    out: BufWriter<File>,
    /// Bytes in the file (for the compaction decision).
    len: u64,
}

impl Journal {
    /// Opens (creating) the journal at `path` and reads back its records.
    pub fn open(path: &Path) -> io::Result<(Journal, Vec<Record>)> {
        let (records, good) = match File::open(path) {
            Ok(f) => read_records(f)?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => (Vec::new(), 0),
            Err(e) => return Err(e),
        };
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        // A torn tail goes, so the next record starts on a line of its own.
        if file.metadata()?.len() > good {
            file.set_len(good)?;
        }
        let len = good;
        Ok((
            Journal {
                path: path.to_path_buf(),
                out: BufWriter::new(file),
                len,
            },
            records,
        ))
    }

    /// Appends a record (durable after the next [`Journal::sync`]).
    pub fn append(&mut self, r: &Record) -> io::Result<()> {
        let line = encode(r);
        self.len += line.len() as u64;
        self.out.write_all(&line)
    }

    /// Hands what was appended to the kernel: it then outlives the process (a SIGKILL),
    /// not the machine (see [`Journal::sync`]).
    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    /// Makes what was appended durable.
    pub fn sync(&mut self) -> io::Result<()> {
        self.out.flush()?;
        self.out.get_ref().sync_data()
    }

    /// Bytes in the file.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the file holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Replaces the file by `live` (the records still pending), written beside it, synced,
    /// then renamed over it: a crash leaves either the old file or the new one.
    pub fn rewrite(&mut self, live: &[Record]) -> io::Result<()> {
        self.out.flush()?;
        let tmp = self.path.with_extension("compact");
        let mut w = BufWriter::new(File::create(&tmp)?);
        let mut len = 0;
        for r in live {
            let line = encode(r);
            len += line.len() as u64;
            w.write_all(&line)?;
        }
        w.flush()?;
        w.get_ref().sync_data()?;
        std::fs::rename(&tmp, &self.path)?;
        if let Some(dir) = self.path.parent() {
            File::open(dir)?.sync_all()?;
        }
        let file = OpenOptions::new().append(true).open(&self.path)?;
        self.out = BufWriter::new(file);
        self.len = len;
        Ok(())
    }
}

/// The records, and the length of the file up to the end of the last good one.
fn read_records(f: File) -> io::Result<(Vec<Record>, u64)> {
    let mut out = Vec::new();
    let mut good = 0u64;
    let mut r = BufReader::new(f);
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = r.read_until(b'\n', &mut line)?;
        if n == 0 || line.last() != Some(&b'\n') {
            break;
        }
        line.pop();
        match decode(&line) {
            Some(rec) => out.push(rec),
            None => break,
        }
        good += n as u64;
    }
    Ok((out, good))
}

/// The line of a record, newline included.
pub fn encode(r: &Record) -> Vec<u8> {
    let mut out = Vec::new();
    let (seq, kind) = match r {
        Record::Push { seq, .. } => (seq, "P"),
        Record::Delete { seq, .. } => (seq, "D"),
        Record::Rename { seq, .. } => (seq, "M"),
        Record::Mirror { seq } => (seq, "F"),
        Record::Ack { seq } => (seq, "A"),
    };
    out.extend_from_slice(format!("{seq} {kind}").as_bytes());
    let paths: &[&PathBuf] = match r {
        Record::Push { path, .. } | Record::Delete { path, .. } => &[path],
        Record::Rename { from, to, .. } => &[from, to],
        Record::Ack { .. } | Record::Mirror { .. } => &[],
    };
    for p in paths {
        out.push(b' ');
        escape(p.as_os_str().as_bytes(), &mut out);
    }
    out.push(b'\n');
    out
}

/// The record of a line (without its newline), or `None` when it is not one.
pub fn decode(line: &[u8]) -> Option<Record> {
    let mut parts = line.split(|b| *b == b' ');
    let seq: u64 = std::str::from_utf8(parts.next()?).ok()?.parse().ok()?;
    let kind = parts.next()?;
    let mut path =
        || -> Option<PathBuf> { Some(PathBuf::from(OsStr::from_bytes(&unescape(parts.next()?)?))) };
    let r = match kind {
        b"P" => Record::Push { seq, path: path()? },
        b"D" => Record::Delete { seq, path: path()? },
        b"M" => {
            let from = path()?;
            let to = path()?;
            Record::Rename { seq, from, to }
        }
        b"A" => Record::Ack { seq },
        b"F" => Record::Mirror { seq },
        _ => return None,
    };
    parts.next().is_none().then_some(r)
}

fn escape(bytes: &[u8], out: &mut Vec<u8>) {
    if bytes.is_empty() {
        // The root: a lone `.` (a path that is `.` itself is escaped).
        out.push(b'.');
        return;
    }
    if bytes == b"." {
        out.extend_from_slice(b"%2E");
        return;
    }
    for &b in bytes {
        if b.is_ascii_graphic() && b != b'%' {
            out.push(b);
        } else {
            out.extend_from_slice(format!("%{b:02X}").as_bytes());
        }
    }
}

fn unescape(s: &[u8]) -> Option<Vec<u8>> {
    if s == b"." {
        return Some(Vec::new());
    }
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while let Some(&b) = s.get(i) {
        if b == b'%' {
            let hex = std::str::from_utf8(s.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(b: &[u8]) -> PathBuf {
        PathBuf::from(OsStr::from_bytes(b))
    }

    #[test]
    fn records_survive_any_path_bytes() {
        let odd = p(b"dir/with space/new\nline/%/\xff\x01");
        for r in [
            Record::Push {
                seq: 5,
                path: p(b"."),
            },
            Record::Push {
                seq: 1,
                path: odd.clone(),
            },
            Record::Delete {
                seq: 2,
                path: p(b""),
            },
            Record::Rename {
                seq: 3,
                from: odd.clone(),
                to: p(b"x"),
            },
            Record::Mirror { seq: 4 },
            Record::Ack { seq: u64::MAX },
        ] {
            let line = encode(&r);
            assert_eq!(line.iter().filter(|b| **b == b'\n').count(), 1);
            assert_eq!(decode(&line[..line.len() - 1]), Some(r));
        }
        assert_eq!(decode(b"1 P a b"), None);
        assert_eq!(decode(b"x P a"), None);
        assert_eq!(decode(b"1 P %G1"), None);
    }

    #[test]
    fn a_torn_last_line_ends_the_replay_and_rewrite_keeps_the_live_records() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        let (mut j, recs) = Journal::open(&path).unwrap();
        assert!(recs.is_empty());
        j.append(&Record::Push {
            seq: 1,
            path: p(b"a"),
        })
        .unwrap();
        j.append(&Record::Ack { seq: 1 }).unwrap();
        j.sync().unwrap();
        drop(j);
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"2 P half")
            .unwrap();
        let (mut j, recs) = Journal::open(&path).unwrap();
        assert_eq!(recs.len(), 2);
        j.append(&Record::Push {
            seq: 2,
            path: p(b"c"),
        })
        .unwrap();
        j.sync().unwrap();
        drop(j);
        let (mut j, recs) = Journal::open(&path).unwrap();
        assert_eq!(
            recs.last(),
            Some(&Record::Push {
                seq: 2,
                path: p(b"c")
            })
        );
        j.rewrite(&[Record::Push {
            seq: 3,
            path: p(b"b"),
        }])
        .unwrap();
        j.append(&Record::Ack { seq: 3 }).unwrap();
        j.sync().unwrap();
        let (_, recs) = Journal::open(&path).unwrap();
        assert_eq!(
            recs,
            vec![
                Record::Push {
                    seq: 3,
                    path: p(b"b")
                },
                Record::Ack { seq: 3 }
            ]
        );
    }

    proptest::proptest! {
        /// Any line decodes to a record or to nothing, without panicking; any record
        /// survives its line.
        #[test]
        fn any_line_decodes_safely(line in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64)) {
            let _ = decode(&line);
        }

        #[test]
        fn records_round_trip(
            seq in proptest::prelude::any::<u64>(),
            a in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..32),
            b in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..32),
            kind in 0u8..5,
        ) {
            let (a, b) = (p(&a), p(&b));
            let r = match kind {
                0 => Record::Push { seq, path: a },
                1 => Record::Delete { seq, path: a },
                2 => Record::Rename { seq, from: a, to: b },
                3 => Record::Mirror { seq },
                _ => Record::Ack { seq },
            };
            let line = encode(&r);
            proptest::prop_assert_eq!(decode(&line[..line.len() - 1]), Some(r));
        }
    }
}
