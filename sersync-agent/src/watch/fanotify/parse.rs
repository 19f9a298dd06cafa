//! Decoding what `read(2)` returns from a fanotify group in `FAN_REPORT_DFID_NAME`
//! mode: a run of events, each a fixed header followed by information records naming
//! the directory (by file handle) and the entry. Every length comes from the kernel
//! and is checked against the buffer anyway: a malformed record ends the batch, it
//! never reads past it.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;

/// `struct fanotify_event_metadata`: event_len, vers, reserved, metadata_len, mask,
/// fd, pid.
const METADATA_LEN: usize = 24;

/// `struct fanotify_event_info_header` (type, pad, len) plus the fsid that every fid
/// record carries.
const FID_HEADER_LEN: usize = 4 + 8;

/// `struct file_handle` before its bytes: handle_bytes, handle_type.
const HANDLE_HEADER_LEN: usize = 8;

/// The kernel's `MAX_HANDLE_SZ`: no file handle is longer.
pub(super) const MAX_HANDLE_BYTES: usize = 128;

/// An opaque file handle, as `open_by_handle_at(2)` takes it back.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct Handle {
    pub(super) kind: i32,
    pub(super) bytes: Box<[u8]>,
}

/// Which object a record names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum RecordKind {
    /// The directory an entry event happened in, with the entry's name (or `.` for
    /// an event on the directory itself).
    DirName,
    /// A directory, without a name: an event on the directory itself.
    Dir,
    /// `FAN_RENAME`: where the entry was.
    OldDirName,
    /// `FAN_RENAME`: where the entry is now.
    NewDirName,
}

/// One information record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Record {
    pub(super) kind: RecordKind,
    pub(super) dir: Handle,
    /// The entry, `None` for an event on `dir` itself.
    pub(super) name: Option<OsString>,
}

/// One event: what happened (`FAN_*` bits) and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct RawEvent {
    pub(super) mask: u64,
    pub(super) records: Vec<Record>,
}

/// Why a buffer could not be decoded to its end.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(super) enum ParseError {
    #[error("fanotify metadata version {0}, expected {expected}", expected = libc::FANOTIFY_METADATA_VERSION)]
    Version(u8),
    #[error("a truncated or malformed fanotify event at byte {0}")]
    Malformed(usize),
}

/// Decodes the events of one read. Records this mode does not ask for (pidfd, error,
/// range) are skipped by their length; the events decoded before a malformed one are
/// returned with the error.
pub(super) fn parse(buf: &[u8]) -> (Vec<RawEvent>, Option<ParseError>) {
    let mut events = Vec::new();
    let mut at = 0;
    while at < buf.len() {
        match parse_event(&buf[at..], at) {
            Ok((ev, len)) => {
                events.push(ev);
                at += len;
            }
            Err(e) => return (events, Some(e)),
        }
    }
    (events, None)
}

fn parse_event(buf: &[u8], offset: usize) -> Result<(RawEvent, usize), ParseError> {
    let bad = || ParseError::Malformed(offset);
    if buf.len() < METADATA_LEN {
        return Err(bad());
    }
    let event_len = u32_at(buf, 0).ok_or_else(bad)? as usize;
    let version = buf[4];
    let metadata_len = u16_at(buf, 6).ok_or_else(bad)? as usize;
    if version != libc::FANOTIFY_METADATA_VERSION {
        return Err(ParseError::Version(version));
    }
    if metadata_len < METADATA_LEN || event_len < metadata_len || event_len > buf.len() {
        return Err(bad());
    }
    let mask = u64_at(buf, 8).ok_or_else(bad)?;
    let mut records = Vec::new();
    let mut at = metadata_len;
    while at < event_len {
        let info = &buf[at..event_len];
        if info.len() < 4 {
            return Err(ParseError::Malformed(offset + at));
        }
        let kind = info[0];
        let len = u16_at(info, 2).ok_or_else(bad)? as usize;
        if len < 4 || len > info.len() {
            return Err(ParseError::Malformed(offset + at));
        }
        if let Some(kind) = record_kind(kind) {
            let record = parse_fid(&info[..len], kind).ok_or(ParseError::Malformed(offset + at))?;
            records.push(record);
        }
        at += len;
    }
    Ok((RawEvent { mask, records }, event_len))
}

fn record_kind(t: u8) -> Option<RecordKind> {
    match t {
        libc::FAN_EVENT_INFO_TYPE_DFID_NAME => Some(RecordKind::DirName),
        libc::FAN_EVENT_INFO_TYPE_DFID => Some(RecordKind::Dir),
        libc::FAN_EVENT_INFO_TYPE_OLD_DFID_NAME => Some(RecordKind::OldDirName),
        libc::FAN_EVENT_INFO_TYPE_NEW_DFID_NAME => Some(RecordKind::NewDirName),
        _ => None,
    }
}

/// A fid record: header, fsid, `struct file_handle`, then for the named kinds a
/// NUL-terminated name padded to the record's length.
fn parse_fid(rec: &[u8], kind: RecordKind) -> Option<Record> {
    let handle_at = FID_HEADER_LEN;
    let handle_bytes = u32_at(rec, handle_at)? as usize;
    let handle_kind = i32::from_ne_bytes(rec.get(handle_at + 4..handle_at + 8)?.try_into().ok()?);
    if handle_bytes > MAX_HANDLE_BYTES {
        return None;
    }
    let start = handle_at + HANDLE_HEADER_LEN;
    let end = start.checked_add(handle_bytes)?;
    let bytes = rec.get(start..end)?;
    let name = match kind {
        RecordKind::Dir => None,
        _ => {
            let rest = rec.get(end..)?;
            let nul = rest.iter().position(|&b| b == 0)?;
            let name = &rest[..nul];
            if name.is_empty() || name == b"." {
                None
            } else if name.contains(&b'/') || name == b".." {
                // Never a single entry of a directory: refuse rather than join it.
                return None;
            } else {
                Some(OsString::from_vec(name.to_vec()))
            }
        }
    };
    Some(Record {
        kind,
        dir: Handle {
            kind: handle_kind,
            bytes: bytes.into(),
        },
        name,
    })
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_ne_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A record to lay out: its type, the directory's handle, the entry's name.
    type Rec<'a> = (u8, &'a [u8], Option<&'a [u8]>);

    /// One event as the kernel lays it out.
    fn event(mask: u64, records: &[Rec<'_>]) -> Vec<u8> {
        let mut body = Vec::new();
        for (kind, handle, name) in records {
            let mut rec = vec![*kind, 0, 0, 0];
            rec.extend_from_slice(&[7; 8]); // fsid
            rec.extend_from_slice(&(handle.len() as u32).to_ne_bytes());
            rec.extend_from_slice(&1i32.to_ne_bytes());
            rec.extend_from_slice(handle);
            if let Some(name) = name {
                rec.extend_from_slice(name);
                rec.push(0);
            }
            while rec.len() % 4 != 0 {
                rec.push(0);
            }
            let len = rec.len() as u16;
            rec[2..4].copy_from_slice(&len.to_ne_bytes());
            body.extend(rec);
        }
        let mut ev = Vec::new();
        ev.extend_from_slice(&((METADATA_LEN + body.len()) as u32).to_ne_bytes());
        ev.push(libc::FANOTIFY_METADATA_VERSION);
        ev.push(0);
        ev.extend_from_slice(&(METADATA_LEN as u16).to_ne_bytes());
        ev.extend_from_slice(&mask.to_ne_bytes());
        ev.extend_from_slice(&(-1i32).to_ne_bytes());
        ev.extend_from_slice(&42i32.to_ne_bytes());
        ev.extend(body);
        ev
    }

    #[test]
    fn decodes_entry_self_and_rename_events() {
        let mut buf = event(
            libc::FAN_CREATE,
            &[(libc::FAN_EVENT_INFO_TYPE_DFID_NAME, b"dirA", Some(b"file"))],
        );
        buf.extend(event(
            libc::FAN_ATTRIB | libc::FAN_ONDIR,
            &[(libc::FAN_EVENT_INFO_TYPE_DFID_NAME, b"dirB", Some(b"."))],
        ));
        buf.extend(event(
            libc::FAN_RENAME,
            &[
                (libc::FAN_EVENT_INFO_TYPE_OLD_DFID_NAME, b"old", Some(b"a")),
                (libc::FAN_EVENT_INFO_TYPE_NEW_DFID_NAME, b"new", Some(b"b")),
            ],
        ));
        buf.extend(event(libc::FAN_Q_OVERFLOW, &[]));
        let (events, err) = parse(&buf);
        assert_eq!(err, None);
        assert_eq!(events.len(), 4);
        assert_eq!(events[0].records[0].name, Some("file".into()));
        assert_eq!(&*events[0].records[0].dir.bytes, b"dirA");
        assert_eq!(events[1].records[0].name, None);
        assert_eq!(events[2].records[0].kind, RecordKind::OldDirName);
        assert_eq!(events[2].records[1].name, Some("b".into()));
        assert_eq!(events[3].mask, libc::FAN_Q_OVERFLOW);
    }

    #[test]
    fn refuses_names_that_are_not_one_entry() {
        for bad in [&b"a/b"[..], b".."] {
            let buf = event(
                libc::FAN_CREATE,
                &[(libc::FAN_EVENT_INFO_TYPE_DFID_NAME, b"d", Some(bad))],
            );
            let (events, err) = parse(&buf);
            assert!(events.is_empty());
            assert_eq!(err, Some(ParseError::Malformed(METADATA_LEN)));
        }
    }

    #[test]
    fn a_truncated_event_keeps_those_before_it() {
        let mut buf = event(
            libc::FAN_DELETE,
            &[(libc::FAN_EVENT_INFO_TYPE_DFID_NAME, b"d", Some(b"x"))],
        );
        let whole = buf.len();
        buf.extend(event(
            libc::FAN_DELETE,
            &[(libc::FAN_EVENT_INFO_TYPE_DFID_NAME, b"d", Some(b"y"))],
        ));
        buf.truncate(buf.len() - 3);
        let (events, err) = parse(&buf);
        assert_eq!(events.len(), 1);
        assert_eq!(err, Some(ParseError::Malformed(whole)));
    }

    proptest! {
        /// Whatever the bytes, decoding ends without a panic and without reading
        /// past the buffer.
        #[test]
        fn arbitrary_bytes_never_panic(buf in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse(&buf);
        }

        /// Valid events with corrupted bytes anywhere: still no panic.
        #[test]
        fn corrupted_events_never_panic(at in 0usize..80, byte in any::<u8>()) {
            let mut buf = event(
                libc::FAN_CREATE,
                &[(libc::FAN_EVENT_INFO_TYPE_DFID_NAME, b"0123456789", Some(b"name"))],
            );
            if at < buf.len() {
                buf[at] = byte;
            }
            let _ = parse(&buf);
        }
    }
}
