//! A pulling client that breaks the protocol: a scripted protocol-32 client asks the
//! daemon's sender for what no stock client asks (an index past the list, a directory's
//! data, a sum head of a billion blocks, a `--files-from` name that never ends, garbage
//! in place of a request). Each session must end with an error in the daemon's log and
//! the connection closed, never a panic or a session left running.

use std::io;
use std::time::{Duration, Instant};

use e2e::fixture::seed_file;
use e2e::raw::RawClient;
use e2e::tree::write_file;
use e2e::{Daemon, Fixture, Server, children};
use rsyncd_rs::protocol::codec::{get_int, get_varint, get_vstring, put_int, put_vstring};
use rsyncd_rs::protocol::mux::{MsgCode, put_frame};
use rsyncd_rs::protocol::ndx::{NdxCodec, iflags};
use rsyncd_rs::protocol::{Decoded, WireError};

use crate::push::T0;

/// What the client sends after the protocol set-up.
#[derive(Debug, Clone, Copy)]
enum Attack {
    /// A transfer request for an index no list holds.
    IndexPastTheList,
    /// A transfer request for the directory `.` (index 0 of a non-incremental list).
    DataOfADirectory,
    /// A transfer request for the file with a sum head claiming 2^30 blocks.
    HugeSumHead,
    /// A `--files-from` name of 64 KiB without its terminating NUL.
    EndlessFilesFromName,
    /// Bytes that are not a request at all.
    Garbage,
}

/// Logs in, sends a pull's arguments (no incremental recursion: the list is one list
/// with `.` at 0 and `file` at 1), does the set-up, and sends the filter list's end.
fn start(port: u16, files_from: bool) -> io::Result<RawClient> {
    let mut raw = RawClient::connect(port, Duration::from_secs(10));
    let password = seed_file("rsync.password.client");
    assert_eq!(
        raw.open_module("backup", "rsync_backup", password.trim()),
        "@RSYNCD: OK"
    );
    let mut args = vec!["--server", "--sender", "-lre.LsfxCIvu"];
    if files_from {
        args.extend(["--files-from=-", "--from0"]);
    }
    args.extend([".", "backup/"]);
    let mut out = Vec::new();
    for arg in args {
        out.extend_from_slice(arg.as_bytes());
        out.push(0);
    }
    out.push(0);
    put_vstring(&mut out, b"md5").map_err(io::Error::other)?;
    raw.send(&out)?;
    unmuxed(&mut raw, get_varint)?;
    unmuxed(&mut raw, |b| get_vstring(b, 256))?;
    unmuxed(&mut raw, |b| Ok(get_int(b)))?;
    // The (empty) filter list, multiplexed from protocol 30.
    let mut end = Vec::new();
    put_int(&mut end, 0);
    let mut frame = Vec::new();
    put_frame(&mut frame, MsgCode::Data, &end);
    raw.send(&frame)?;
    Ok(raw)
}

fn unmuxed<T>(
    raw: &mut RawClient,
    mut f: impl FnMut(&[u8]) -> Result<Decoded<T>, WireError>,
) -> io::Result<T> {
    let mut buf = Vec::new();
    loop {
        match f(&buf).map_err(io::Error::other)? {
            Decoded::Done { value, .. } => return Ok(value),
            Decoded::Needed(n) => buf.extend(raw.read_exact(n)?),
        }
    }
}

/// Sends `data` as multiplexed data.
fn send_data(raw: &mut RawClient, data: &[u8]) -> io::Result<()> {
    let mut frame = Vec::new();
    put_frame(&mut frame, MsgCode::Data, data);
    raw.send(&frame)
}

/// A transfer request for `ndx` (protocol 32: index, then item flags).
fn request(ndx: i32) -> Vec<u8> {
    let mut out = Vec::new();
    NdxCodec::new(32).encode(ndx, &mut out);
    out.extend_from_slice(&(iflags::TRANSFER as u16).to_le_bytes());
    out
}

fn attack(raw: &mut RawClient, a: Attack) -> io::Result<()> {
    match a {
        Attack::IndexPastTheList => send_data(raw, &request(9999)),
        Attack::DataOfADirectory => send_data(raw, &request(0)),
        Attack::HugeSumHead => {
            let mut out = request(1);
            for v in [1 << 30, 700, 16, 0] {
                put_int(&mut out, v);
            }
            send_data(raw, &out)
        }
        Attack::EndlessFilesFromName => {
            // Protocol 32 forwards the names multiplexed.
            let name = vec![b'a'; 64 * 1024];
            for chunk in name.chunks(16 * 1024) {
                send_data(raw, chunk)?;
            }
            Ok(())
        }
        Attack::Garbage => send_data(raw, &[0xfe, 0xff, 0xff, 0x7f, 0x13, 0x37]),
    }
}

#[test]
fn a_hostile_pulling_client_gets_an_error_and_a_closed_connection() {
    let mut f = Fixture::seed();
    f.set_module("backup", "timeout", "5");
    write_file(&f.module_dir(), "file", &vec![7u8; 100_000], 0o644, T0);
    let d = Daemon::start(Server::Ours, &f);
    for a in [
        Attack::IndexPastTheList,
        Attack::DataOfADirectory,
        Attack::HugeSumHead,
        Attack::EndlessFilesFromName,
        Attack::Garbage,
    ] {
        let from = d.log().len();
        let files_from = matches!(a, Attack::EndlessFilesFromName);
        let mut raw = start(d.port, files_from).expect("set-up");
        attack(&mut raw, a).expect("send the attack");
        // The error is logged at once; then, as upstream's noop_io_until_death(), the
        // session waits for the client to hang up (a stock client does on the error).
        let deadline = Instant::now() + Duration::from_secs(3);
        while !d.log_since(from).contains("rsync error: ") && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        drop(raw);
        let deadline = Instant::now() + Duration::from_secs(2);
        while !children(d.pid()).is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(
            children(d.pid()).is_empty(),
            "{a:?}: the session outlived its client"
        );
        let log = d.log_since(from);
        assert!(!log.contains("panicked"), "{a:?}: {log}");
        assert!(
            log.contains("rsync error: "),
            "{a:?}: no error was logged:\n{log}"
        );
    }
}
