//! The native client against a daemon that lies (issue 8's acceptance): names that lead
//! out of the destination, a symlink with a file listed below it, lengths and counts no
//! real peer sends, requests for files the client never listed, data for files it never
//! asked for. Every session must end in a clean error or a partial transfer within a few
//! seconds, without a panic, with nothing written outside the destination and nothing
//! sent that was not asked for.
//!
//! The daemon is a thread speaking just enough of protocol 31 (see `script.rs`); its file
//! lists come from the library's own encoder where that can express the lie, from bytes
//! written by hand where it cannot.

mod sandbox;
mod script;

use std::os::unix::fs::symlink as make_symlink;
use std::time::{Duration, Instant};

use rsyncd_rs::client::{
    ClientError, ConnectOptions, PullOutcome, PushOutcome, Remote, parse_options, pull, push,
};
use rsyncd_rs::engine::exit::ExitCode;
use rsyncd_rs::protocol::codec::{put_int, put_shortint, put_varint, put_varlong};
use rsyncd_rs::protocol::flist::{mode, xmit};
use rsyncd_rs::protocol::mux::{MsgCode, put_mux_header};
use rsyncd_rs::protocol::ndx::iflags;
use rsyncd_rs::protocol::sums::{SumHead, encode_sum_head};

use sandbox::Sandbox;
use script::{PROTOCOL, Peer, Scripted, T0, dir, encode_entries, encode_list, file, symlink};

/// The client's `--timeout`: a session that waits for what never comes ends after it.
const IO_TIMEOUT: Duration = Duration::from_secs(3);

/// The longest any session here may take: the timeout, the drain after an error and
/// room for a loaded machine.
const SESSION_LIMIT: Duration = Duration::from_secs(10);

fn remote(port: u16) -> Remote {
    Remote::parse(&format!("rsync://127.0.0.1:{port}/mod/"), 873).unwrap()
}

fn connect() -> ConnectOptions {
    ConnectOptions {
        connect_timeout: Some(Duration::from_secs(5)),
        io_timeout: Some(IO_TIMEOUT),
        ..ConnectOptions::default()
    }
}

fn opts(s: &str) -> rsyncd_rs::protocol::options::Options {
    parse_options(&s.split_whitespace().collect::<Vec<_>>())
        .unwrap()
        .options
}

/// A pull from a scripted daemon into the sandbox's destination: its result, how long it
/// took and what the client did; the sandbox outside the destination must be as it was.
fn pull_from(
    sb: &Sandbox,
    options: &str,
    script: impl FnOnce(&mut Peer) -> std::io::Result<()> + Send + 'static,
) -> (
    Result<PullOutcome, ClientError>,
    Duration,
    script::Transcript,
) {
    let before = sb.outside();
    let d = Scripted::start(script);
    let start = Instant::now();
    let r = pull(&remote(d.port), &connect(), &opts(options), &sb.dest());
    let took = start.elapsed();
    let t = d.finish();
    assert_eq!(
        sb.outside(),
        before,
        "written outside the destination: {r:?}"
    );
    assert!(took < SESSION_LIMIT, "took {took:?}: {r:?}");
    (r, took, t)
}

/// The error a session must have ended with, and its text.
fn refused<T: std::fmt::Debug>(what: &str, r: Result<T, ClientError>) -> (ExitCode, String) {
    match r {
        Ok(o) => panic!("{what}: the session succeeded: {o:?}"),
        Err(e) => (e.exit_code(), e.to_string()),
    }
}

/// Refused at once, by the client's own check: not by its timeout running out.
fn refused_at_once<T: std::fmt::Debug>(
    what: &str,
    r: Result<T, ClientError>,
    took: Duration,
) -> String {
    let (code, text) = refused(what, r);
    assert_ne!(code, ExitCode::TIMEOUT, "{what}: {text}");
    assert!(took < IO_TIMEOUT, "{what}: took {took:?}: {text}");
    text
}

/// Case 1: names with `..` or absolute names end the pull before anything is asked for;
/// with `-R` an absolute name is made relative and lands inside the destination.
#[test]
fn pull_refuses_names_that_lead_out_of_the_destination() {
    for relative in [false, true] {
        let sb = Sandbox::new();
        let absolute = format!("{}/escape.txt", sb.root().display());
        let mut names = vec![
            "../escape.txt",
            "a/../../escape.txt",
            "a/../../sibling/keep.txt",
            "./../beside.txt",
        ];
        if !relative {
            names.push(absolute.as_str());
        }
        for name in names {
            let what = format!("{name} relative={relative}");
            let list = encode_list(&[dir("."), file(name, 6)], relative);
            let options = if relative { "-rltR" } else { "-rlt" };
            let (r, took, t) = pull_from(&sb, options, move |p| {
                p.start_pull(&list)?;
                p.serve(|_| b"pwned\n".to_vec(), |_, _| Ok(()))
            });
            let text = refused_at_once(&what, r, took);
            assert!(text.contains("unsafe pathname"), "{what}: {text}");
            assert!(
                t.requested.is_empty(),
                "{what}: asked for {:?}",
                t.requested
            );
        }
    }
    // With -R, stock's clean_fname() makes an absolute name relative: it is received below
    // the destination, with the directories leading to it.
    let sb = Sandbox::new();
    let absolute = format!("{}/escape.txt", sb.root().display());
    let mut entries = vec![dir(".")];
    let mut at = String::new();
    for part in sb.root().iter().skip(1) {
        at = format!("{at}/{}", part.to_str().unwrap());
        entries.push(dir(&at));
    }
    entries.push(file(&absolute, 6));
    let list = encode_list(&entries, true);
    let (r, _, _) = pull_from(&sb, "-rltR", move |p| {
        p.start_pull(&list)?;
        p.serve(|_| b"pwned\n".to_vec(), |_, _| Ok(()))
    });
    let o = r.unwrap();
    assert_eq!(o.code, ExitCode::OK, "{:?}", o.lines);
    let inside = sb.dest().join(absolute.trim_start_matches('/'));
    assert_eq!(std::fs::read(inside).unwrap(), b"pwned\n");
}

/// Case 2: a symlink leading out of the destination, then a file listed below it in the
/// same list. The link may be made (stock makes it: it is the server's to send), but the
/// file is not even asked for, and the transfer is partial.
#[test]
fn pull_writes_nothing_through_a_symlink_it_was_sent() {
    let sb = Sandbox::new();
    let sibling = sb.root().join("sibling").display().to_string();
    for target in ["..", "../sibling", sibling.as_str(), "../beside.txt"] {
        for below in ["link/pwned.txt", "link/keep.txt", "link/sibling/keep.txt"] {
            let what = format!("link -> {target}, then {below}");
            let list = encode_list(&[dir("."), symlink("link", target), file(below, 6)], false);
            let (r, _, t) = pull_from(&sb, "-rlt", move |p| {
                p.start_pull(&list)?;
                p.serve(|_| b"pwned\n".to_vec(), |_, _| Ok(()))
            });
            assert!(
                t.requested.is_empty(),
                "{what}: asked for {:?}",
                t.requested
            );
            let o = r.unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_eq!(o.code, ExitCode::PARTIAL, "{what}: {:?}", o.lines);
            std::fs::remove_dir_all(sb.dest()).unwrap();
            std::fs::create_dir(sb.dest()).unwrap();
        }
    }
}

/// Case 2, across sessions: the symlink is already in the destination (an earlier pull
/// made it) and this list names a file below it. Alone, the file is not asked for; with
/// the directory listed too, the link is replaced by a directory (as stock replaces it)
/// and the file lands in that.
#[test]
fn pull_writes_nothing_through_a_symlink_already_in_the_destination() {
    let sb = Sandbox::new();
    for with_dir in [false, true] {
        make_symlink("../sibling", sb.dest().join("link")).unwrap();
        let mut entries = vec![dir(".")];
        if with_dir {
            entries.push(dir("link"));
        }
        entries.push(file("link/keep.txt", 6));
        let list = encode_list(&entries, false);
        let what = format!("with the directory listed: {with_dir}");
        let (r, _, t) = pull_from(&sb, "-rlt", move |p| {
            p.start_pull(&list)?;
            p.serve(|_| b"pwned\n".to_vec(), |_, _| Ok(()))
        });
        let o = r.unwrap_or_else(|e| panic!("{what}: {e}"));
        let link = sb.dest().join("link");
        if with_dir {
            assert_eq!(o.code, ExitCode::OK, "{what}: {:?}", o.lines);
            assert!(std::fs::symlink_metadata(&link).unwrap().is_dir(), "{what}");
            assert_eq!(std::fs::read(link.join("keep.txt")).unwrap(), b"pwned\n");
        } else {
            assert!(
                t.requested.is_empty(),
                "{what}: asked for {:?}",
                t.requested
            );
            assert_eq!(o.code, ExitCode::PARTIAL, "{what}: {:?}", o.lines);
        }
        std::fs::remove_dir_all(sb.dest()).unwrap();
        std::fs::create_dir(sb.dest()).unwrap();
    }
}

/// A hand-written list entry: `flags` as one byte, a new name of `name_len` bytes (LONG_NAME
/// when it does not fit a byte) with `name` after it.
fn raw_entry_head(flags: u32, name_len: i32, name: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    if !(0..=255).contains(&name_len) {
        out.push((flags | xmit::LONG_NAME) as u8);
        put_varint(&mut out, name_len);
    } else {
        out.push(flags as u8);
        out.push(name_len as u8);
    }
    out.extend_from_slice(name);
    out
}

/// A symlink entry whose target length is `len` (no target bytes follow).
fn raw_symlink_with_target_len(len: i32) -> Vec<u8> {
    let mut out = raw_entry_head(xmit::TOP_DIR, 4, b"link");
    put_varlong(&mut out, 4, 3);
    put_varlong(&mut out, T0, 4);
    put_int(&mut out, (mode::S_IFLNK | 0o777) as i32);
    put_varint(&mut out, len);
    out
}

/// Pulls from a daemon that sends `.` and then `rest` as the file list, and keeps the
/// connection open: the client must refuse what it read, not wait for what was promised.
fn pull_bad_list(what: &str, rest: Vec<u8>) -> String {
    let sb = Sandbox::new();
    let (r, took, t) = pull_from(&sb, "-rlt", move |p| {
        let mut list = encode_entries(&[dir(".")], false);
        list.extend_from_slice(&rest);
        p.start_pull(&list)?;
        p.serve(|_| b"pwned\n".to_vec(), |_, _| Ok(()))
    });
    assert!(
        t.requested.is_empty(),
        "{what}: asked for {:?}",
        t.requested
    );
    refused_at_once(what, r, took)
}

/// Case 3, the file list: lengths that would have the client wait for (or hold)
/// gigabytes are refused as soon as they are read.
#[test]
fn pull_refuses_oversized_lengths_in_the_file_list() {
    let text = pull_bad_list("name length 2^31-1", raw_entry_head(0, i32::MAX, b""));
    assert!(text.contains("overflow"), "{text}");
    let text = pull_bad_list("name length -1", raw_entry_head(0, -1, b""));
    assert!(text.contains("overflow"), "{text}");
    // A kept prefix longer than the previous name (`.`).
    let mut same_name = vec![xmit::SAME_NAME as u8, 255, 1];
    same_name.extend_from_slice(b"x");
    pull_bad_list("a prefix of 255 bytes of a 1-byte name", same_name);
    let text = pull_bad_list(
        "symlink target of 2^31-1 bytes",
        raw_symlink_with_target_len(i32::MAX),
    );
    assert!(text.contains("symlink target"), "{text}");
    pull_bad_list(
        "symlink target of -2 bytes",
        raw_symlink_with_target_len(-2),
    );
    let text = pull_bad_list(
        "a negative file length",
        encode_entries(&[file("neg", -1)], false),
    );
    assert!(text.contains("negative file length"), "{text}");
}

/// `-X` (case 3 for xattrs): an xattr block whose count, value length, name or cache
/// index breaks rsync 3.5.0's bounds ends the pull as soon as it is read, nothing is
/// asked for and nothing is written outside the destination (the sandbox's check).
#[test]
fn pull_refuses_hostile_xattr_blocks() {
    fn entry_with(block: &[u8]) -> Vec<u8> {
        let mut out = raw_entry_head(xmit::TOP_DIR, 4, b"evil");
        put_varlong(&mut out, 6, 3);
        put_varlong(&mut out, T0, 4);
        put_int(&mut out, (mode::S_IFREG | 0o644) as i32);
        out.extend_from_slice(block);
        out
    }
    let element = |name: &[u8], name_len: i32, datum_len: i32| {
        let mut b = vec![0, 1];
        put_varint(&mut b, name_len);
        put_varint(&mut b, datum_len);
        b.extend_from_slice(name);
        b
    };
    let mut too_many = vec![0];
    put_varint(&mut too_many, 65_537);
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("a count of 65537", too_many, "count out of range"),
        (
            "a value of 128 MiB + 1",
            element(b"user.x\0", 7, (128 << 20) + 1),
            "per-value limit",
        ),
        (
            "a name of 4097 bytes",
            element(b"", 4097, 0),
            "name_len out of range",
        ),
        (
            "a name without its NUL",
            element(b"user.x", 6, 0),
            "missing trailing",
        ),
        (
            "a name with an inner NUL (../x then user.x)",
            element(b"../x\0user.x\0", 12, 0),
            "Invalid xattr name",
        ),
        ("a cache index past the table", vec![5], "out of range"),
    ];
    for (what, block, expect) in cases {
        let sb = Sandbox::new();
        let (r, took, t) = pull_from(&sb, "-rltX", move |p| {
            let mut enc = rsyncd_rs::protocol::flist::FlistEncoder::new(
                rsyncd_rs::protocol::flist::FlistConfig {
                    preserve_xattrs: true,
                    ..script::list_config(false)
                },
            );
            let mut list = Vec::new();
            enc.encode(&dir("."), 0, false, &mut list)
                .expect("encode .");
            list.extend_from_slice(&entry_with(&block));
            p.start_pull(&list)?;
            p.serve(|_| b"pwned\n".to_vec(), |_, _| Ok(()))
        });
        assert!(
            t.requested.is_empty(),
            "{what}: asked for {:?}",
            t.requested
        );
        let text = refused_at_once(what, r, took);
        assert!(text.contains(expect), "{what}: {text}");
        assert!(!sb.dest().join("evil").exists(), "{what}: wrote the file");
    }
}

/// `-A`: an ACL block with perms outside 0..7, a named-entry count past 3.5.0's bound or
/// a cache index past the table ends the pull as soon as it is read, with stock's words;
/// nothing is asked for and nothing is written.
#[test]
fn pull_refuses_hostile_acl_blocks() {
    fn entry_with(block: &[u8]) -> Vec<u8> {
        let mut out = raw_entry_head(xmit::TOP_DIR, 4, b"evil");
        put_varlong(&mut out, 6, 3);
        put_varlong(&mut out, T0, 4);
        put_int(&mut out, (mode::S_IFREG | 0o644) as i32);
        out.extend_from_slice(block);
        out
    }
    let mut too_many = vec![0, 0x10];
    put_varint(&mut too_many, 65_537);
    let mut bad_named = vec![0, 0x10, 1];
    put_varint(&mut bad_named, 1000);
    put_varint(&mut bad_named, (9 << 2) | 2);
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "a group entry of 8",
            vec![0, 0x02, 8],
            "recv_acl_access: value out of range: 8",
        ),
        (
            "a named entry of 9",
            bad_named,
            "recv_acl_access: value out of range: 9",
        ),
        ("a count of 65537", too_many, "ACL count out of range"),
        (
            "a cache index past the table",
            vec![6],
            "recv_acl_index: ACL_TYPE_ACCESS ACL index 6 > 1",
        ),
    ];
    for (what, block, expect) in cases {
        let sb = Sandbox::new();
        let (r, took, t) = pull_from(&sb, "-rltA", move |p| {
            let mut enc = rsyncd_rs::protocol::flist::FlistEncoder::new(
                rsyncd_rs::protocol::flist::FlistConfig {
                    preserve_acls: true,
                    ..script::list_config(false)
                },
            );
            let mut list = Vec::new();
            enc.encode(&dir("."), 0, false, &mut list)
                .expect("encode .");
            list.extend_from_slice(&entry_with(&block));
            p.start_pull(&list)?;
            p.serve(|_| b"pwned\n".to_vec(), |_, _| Ok(()))
        });
        assert!(
            t.requested.is_empty(),
            "{what}: asked for {:?}",
            t.requested
        );
        let text = refused_at_once(what, r, took);
        assert!(text.contains(expect), "{what}: {text}");
        assert!(!sb.dest().join("evil").exists(), "{what}: wrote the file");
    }
}

/// Case 3, sizes no file has: three files of 2^63-1 bytes each (their sum overflows 64
/// bits). The client asks for them and gets six bytes each.
#[test]
fn pull_survives_sizes_that_overflow_a_sum() {
    let sb = Sandbox::new();
    let entries = [
        dir("."),
        file("a", i64::MAX),
        file("b", i64::MAX),
        file("c", i64::MAX),
    ];
    let list = encode_list(&entries, false);
    let (r, _, t) = pull_from(&sb, "-rlt", move |p| {
        p.start_pull(&list)?;
        p.serve(|_| b"pwned\n".to_vec(), |_, _| Ok(()))
    });
    let o = r.unwrap();
    assert_eq!(o.code, ExitCode::OK, "{:?}", o.lines);
    assert_eq!(t.requested, [1, 2, 3]);
    assert!(o.total_size >= i64::MAX as u64, "{}", o.total_size);
    for name in ["a", "b", "c"] {
        assert_eq!(std::fs::read(sb.dest().join(name)).unwrap(), b"pwned\n");
    }
}

/// Pulls a list of `.` and one file `f` from a daemon that answers the client's request
/// for it with `reply(peer, ndx)` instead of its data, then keeps the connection open.
fn pull_bad_reply(what: &str, reply: fn(&mut Peer, i32) -> Vec<u8>) -> String {
    let sb = Sandbox::new();
    let list = encode_list(&[dir("."), file("f", 6)], false);
    let (r, took, _) = pull_from(&sb, "-rlt", move |p| {
        p.start_pull(&list)?;
        let ndx = p.await_transfer_request()?;
        let out = reply(p, ndx);
        p.send_data(&out)?;
        p.serve(|_| b"pwned\n".to_vec(), |_, _| Ok(()))
    });
    assert!(!sb.dest().join("f").exists(), "{what}");
    refused_at_once(what, r, took)
}

/// The start of a reply: the index and ITEM_TRANSFER echoed.
fn echo(p: &mut Peer, ndx: i32, flags: u32) -> Vec<u8> {
    let mut out = p.ndx(ndx);
    put_shortint(&mut out, flags as u16);
    out
}

/// Case 3, the file's data: sum heads with absurd counts and lengths, a literal run of
/// 2 GiB, a block past the sum head, an other-name of 32 KiB, a fuzzy basis. Each is
/// refused as it is read; the file is not created.
#[test]
fn pull_refuses_absurd_sum_heads_and_tokens() {
    let text = pull_bad_reply("sum head of 2^31-1 blocks", |p, ndx| {
        let mut out = echo(p, ndx, iflags::TRANSFER);
        let head = SumHead {
            count: i32::MAX,
            blength: 700,
            s2length: 16,
            remainder: 0,
        };
        encode_sum_head(&mut out, &head, PROTOCOL);
        out
    });
    assert!(text.contains("sum head count"), "{text}");
    let text = pull_bad_reply("sum head blocks of 2^31-1 bytes", |p, ndx| {
        let mut out = echo(p, ndx, iflags::TRANSFER);
        let head = SumHead {
            count: 2,
            blength: i32::MAX,
            s2length: 16,
            remainder: 0,
        };
        encode_sum_head(&mut out, &head, PROTOCOL);
        out
    });
    assert!(text.contains("block length"), "{text}");
    let text = pull_bad_reply("a literal run of 2^31-1 bytes", |p, ndx| {
        let mut out = echo(p, ndx, iflags::TRANSFER);
        encode_sum_head(&mut out, &SumHead::WHOLE_FILE, PROTOCOL);
        put_int(&mut out, i32::MAX);
        out.extend_from_slice(b"pwned\n");
        out
    });
    assert!(text.contains("literal run"), "{text}");
    pull_bad_reply("block 2^31-1 of no basis", |p, ndx| {
        let mut out = echo(p, ndx, iflags::TRANSFER);
        encode_sum_head(&mut out, &SumHead::WHOLE_FILE, PROTOCOL);
        put_int(&mut out, i32::MIN);
        out
    });
    pull_bad_reply("an other-name of 32 KiB", |p, ndx| {
        let mut out = echo(p, ndx, iflags::TRANSFER | iflags::XNAME_FOLLOWS);
        out.extend_from_slice(&[0xff, 0xff]);
        out
    });
    pull_bad_reply("a fuzzy basis", |p, ndx| {
        let mut out = echo(p, ndx, iflags::TRANSFER | iflags::BASIS_TYPE_FOLLOWS);
        out.push(0x83);
        encode_sum_head(&mut out, &SumHead::WHOLE_FILE, PROTOCOL);
        out
    });
}

/// Case 3, the largest sum head upstream allows: 2^24 blocks of 128 KiB (2 TiB of a basis
/// the client does not have) and its last block referred to. The client takes the block
/// as zeros, as stock does, holding one block, not the head's worth; the checksum fails
/// and the file is asked for again and received.
#[test]
fn pull_holds_one_block_of_the_largest_sum_head() {
    let sb = Sandbox::new();
    let list = encode_list(&[dir("."), file("f", 6)], false);
    let (r, took, t) = pull_from(&sb, "-rlt", move |p| {
        p.start_pull(&list)?;
        let ndx = p.await_transfer_request()?;
        let mut out = echo(p, ndx, iflags::TRANSFER);
        let head = SumHead {
            count: 1 << 24,
            blength: 1 << 17,
            s2length: 16,
            remainder: 0,
        };
        encode_sum_head(&mut out, &head, PROTOCOL);
        put_int(&mut out, -(1 << 24));
        put_int(&mut out, 0);
        out.extend_from_slice(&[0; 16]);
        p.send_data(&out)?;
        p.serve(|_| b"pwned\n".to_vec(), |_, _| Ok(()))
    });
    let o = r.unwrap();
    assert_eq!(o.code, ExitCode::OK, "{:?}", o.lines);
    assert_eq!(t.requested, [1, 1], "the redo pass");
    assert_eq!(std::fs::read(sb.dest().join("f")).unwrap(), b"pwned\n");
    assert!(took < IO_TIMEOUT, "{took:?}");
}

/// Pulls from a daemon that sends the raw bytes `frames` once the filter list is read.
fn pull_bad_frames(frames: Vec<u8>) -> (Result<PullOutcome, ClientError>, Duration) {
    let sb = Sandbox::new();
    let (r, took, _) = pull_from(&sb, "-rlt", move |p| {
        p.start_pull(&[])?;
        p.send_raw(&frames)
    });
    (r, took)
}

/// Case 3, the frames: a text longer than a reader holds, a code that does not exist and a
/// fixed-size message of the wrong size are refused from the header; a data frame that
/// promises 16 MiB and stops waits no longer than the timeout.
#[test]
fn pull_refuses_oversized_frames() {
    for (what, code, len) in [
        ("MSG_INFO of 16 MiB", 7 + 2, 0x00ff_ffff),
        ("MSG_ERROR of 5120 bytes", 7 + 3, 5120),
        ("MSG_DELETED of 16 MiB", 7 + 101, 0x00ff_ffff),
        ("unknown code 50", 7 + 50, 4),
        ("MSG_IO_ERROR of 1000 bytes", 7 + 22, 1000),
    ] {
        let word: u32 = (code << 24) | len;
        let (r, took) = pull_bad_frames(word.to_le_bytes().to_vec());
        refused_at_once(what, r, took);
    }
    let mut frames = Vec::new();
    put_mux_header(&mut frames, MsgCode::Data, 0x00ff_ffff);
    frames.extend_from_slice(&[1; 10]);
    let (r, took) = pull_bad_frames(frames);
    let (code, text) = refused("a data frame cut short", r);
    assert_eq!(code, ExitCode::TIMEOUT, "{text}");
    assert!(took >= IO_TIMEOUT, "{took:?}");
}

/// The marker the pushed file holds: a data stream with it carried the file.
const SECRET: &[u8] = b"SECRET-CONTENT-0x5ec7e7";

/// Pushes a tree of `secret.txt` to a daemon whose receiver reads the list and then asks
/// for `pick(names)` with `flags`; returns the result, its time and what the client sent.
fn push_to(
    flags: u32,
    pick: fn(&[Vec<u8>]) -> i32,
) -> (
    Result<PushOutcome, ClientError>,
    Duration,
    script::Transcript,
) {
    let src = tempfile::tempdir().unwrap();
    std::fs::write(src.path().join("secret.txt"), SECRET).unwrap();
    let d = Scripted::start(move |p| {
        let names = p.read_pushed_list()?;
        p.request(pick(&names), flags)?;
        p.await_data(SECRET)?;
        p.hang_up();
        Ok(())
    });
    let start = Instant::now();
    let r = push(
        &remote(d.port),
        &connect(),
        &opts("-rlt"),
        src.path(),
        &["./"],
    );
    let took = start.elapsed();
    let t = d.finish();
    assert!(took < SESSION_LIMIT, "took {took:?}: {r:?}");
    (r, took, t)
}

fn index_of(names: &[Vec<u8>], name: &[u8]) -> i32 {
    names.iter().position(|n| n == name).unwrap() as i32
}

/// Case 4: a receiver asking for what the client never listed (an index past the list,
/// a negative one, the directory `.`) ends the push with a protocol error, and the file's
/// content is never sent. A request for the file itself does get it.
#[test]
fn push_sends_nothing_that_was_not_listed() {
    let (r, _, t) = push_to(iflags::TRANSFER, |n| index_of(n, b"secret.txt"));
    assert!(
        t.data.windows(SECRET.len()).any(|w| w == SECRET),
        "the control request got no data: {r:?} {t:?}"
    );
    for (what, pick) in [
        (
            "an index past the list",
            (|n| n.len() as i32) as fn(&[Vec<u8>]) -> i32,
        ),
        ("index 1000", |_| 1000),
        ("index 2^31-1", |_| i32::MAX),
        ("index -50", |_| -50),
        ("index -2 (the end of the lists)", |_| -2),
        ("the directory .", |n| index_of(n, b".")),
    ] {
        let (r, took, t) = push_to(iflags::TRANSFER, pick);
        let text = refused_at_once(what, r, took);
        assert!(text.contains("(code 2)"), "{what}: {text}");
        assert!(
            !t.data.windows(SECRET.len()).any(|w| w == SECRET),
            "{what}: the file was sent"
        );
    }
}

/// Case 5: data for a file the client did not ask for (it holds it already, up to date)
/// sent after the one it asked for, before any request, or twice; data for a file below
/// a symlink; data for an index past the list.
#[test]
fn pull_refuses_data_that_was_not_asked_for() {
    type After = fn(&mut Peer, i32) -> std::io::Result<()>;
    let cases: [(&str, bool, After); 3] = [
        ("after the requested file", false, |p, _| {
            let out = p.file_data(2, b"EVIL\n");
            p.send_data(&out)
        }),
        ("before any request", true, |_, _| Ok(())),
        ("the requested file twice", false, |p, ndx| {
            let out = p.file_data(ndx, b"EVIL!\n");
            p.send_data(&out)
        }),
    ];
    for (what, up_front, after) in cases {
        let sb = Sandbox::new();
        let mine = sb.dest().join("b.txt");
        std::fs::write(&mine, "mine\n").unwrap();
        std::fs::File::options()
            .write(true)
            .open(&mine)
            .unwrap()
            .set_modified(std::time::UNIX_EPOCH + Duration::from_secs(T0 as u64))
            .unwrap();
        let list = encode_list(&[dir("."), file("a.txt", 6), file("b.txt", 5)], false);
        let (r, took, t) = pull_from(&sb, "-rlt", move |p| {
            p.start_pull(&list)?;
            if up_front {
                let out = p.file_data(2, b"EVIL\n");
                p.send_data(&out)?;
            }
            p.serve(|_| b"pwned\n".to_vec(), after)
        });
        // b.txt is up to date: a client that asked for it would be right to take it.
        assert!(!t.requested.contains(&2), "{what}: {:?}", t.requested);
        assert_eq!(std::fs::read(&mine).unwrap(), b"mine\n", "{what}");
        let a = std::fs::read(sb.dest().join("a.txt")).unwrap_or_default();
        assert!(a.is_empty() || a == b"pwned\n", "{what}: {a:?}");
        refused_at_once(what, r, took);
    }
}

/// Case 5, where asking was not possible: data for an index past the list, and for a
/// file listed below a symlink of the same list (which the generator would not ask for).
#[test]
fn pull_refuses_data_for_what_it_could_not_ask_for() {
    for (what, ndx) in [
        ("an index past the list", 99),
        ("a file below a symlink", 2),
    ] {
        let sb = Sandbox::new();
        let entries = [
            dir("."),
            symlink("link", "../sibling"),
            file("link/keep.txt", 5),
        ];
        let list = encode_list(&entries, false);
        let (r, took, t) = pull_from(&sb, "-rlt", move |p| {
            p.start_pull(&list)?;
            let out = p.file_data(ndx, b"EVIL\n");
            p.send_data(&out)?;
            p.serve(|_| b"pwned\n".to_vec(), |_, _| Ok(()))
        });
        assert!(t.requested.is_empty(), "{what}: {:?}", t.requested);
        refused_at_once(what, r, took);
    }
}

/// A server that ignores the client's `--exclude`: a name the client's own rules exclude
/// ends the pull before anything is asked for, as stock's client refuses it since 3.2.5
/// (CVE-2022-29154's class: a server choosing what the client writes).
#[test]
fn pull_refuses_names_its_own_rules_exclude() {
    let sb = Sandbox::new();
    let list = encode_list(
        &[dir("."), file("keep.txt", 5), file("secret.log", 6)],
        false,
    );
    let (r, took, t) = pull_from(&sb, "-rlt --exclude=*.log", move |p| {
        p.start_pull(&list)?;
        p.serve(|_| b"pwned\n".to_vec(), |_, _| Ok(()))
    });
    let text = refused_at_once("excluded name", r, took);
    assert!(
        text.contains("rejecting excluded file-list name: secret.log"),
        "{text}"
    );
    assert!(t.requested.is_empty(), "asked for {:?}", t.requested);
    assert!(!sb.dest().join("secret.log").exists());
}

/// A fuzzy basis renamed by the server: the client's generator names a similar file of
/// the destination (`-y`), the server answers naming a file outside it as the basis and
/// a block of it as the data. The name is taken as upstream's sanitize_path() leaves it,
/// below the destination, where no such file is: nothing outside is read, and the file
/// does not come out with the outside file's content.
#[test]
fn pull_reads_no_fuzzy_basis_outside_the_destination() {
    use rsyncd_rs::protocol::codec::put_vstring;
    for case in ["../beside.txt", "../sibling/keep.txt", "ABSOLUTE"] {
        let sb = Sandbox::new();
        let xname = match case {
            "ABSOLUTE" => format!("{}/beside.txt", sb.root().display()),
            c => c.to_string(),
        };
        std::fs::write(sb.dest().join("cand.txt"), "candidate\n").unwrap();
        let stolen: &[u8] = if xname.contains("keep") {
            b"keep\n"
        } else {
            b"beside\n"
        };
        let list = encode_list(&[dir("."), file("cand2.txt", stolen.len() as i64)], false);
        let shown = xname.clone();
        let (r, _, t) = pull_from(&sb, "-rlt -y", move |p| {
            p.start_pull(&list)?;
            let ndx = loop {
                match p.read_request()? {
                    Some((n, f)) if f & iflags::TRANSFER != 0 => {
                        if f & iflags::XNAME_FOLLOWS == 0 {
                            return Err(std::io::Error::other("no fuzzy basis asked for"));
                        }
                        break n;
                    }
                    Some((n, f)) => {
                        let mut out = p.ndx(n);
                        put_shortint(&mut out, f as u16);
                        p.send_data(&out)?;
                    }
                    None => return Err(std::io::Error::other("no transfer request")),
                }
            };
            let mut out = p.ndx(ndx);
            let f = iflags::TRANSFER | iflags::BASIS_TYPE_FOLLOWS | iflags::XNAME_FOLLOWS;
            put_shortint(&mut out, f as u16);
            out.push(rsyncd_rs::protocol::ndx::basis::FUZZY);
            put_vstring(&mut out, xname.as_bytes()).unwrap();
            let head = SumHead {
                count: 1,
                blength: stolen.len() as i32,
                s2length: 16,
                remainder: 0,
            };
            encode_sum_head(&mut out, &head, PROTOCOL);
            // Block 0 of the basis, then the end.
            put_int(&mut out, -1);
            put_int(&mut out, 0);
            out.extend_from_slice(&script::md5_of(stolen));
            p.send_data(&out)?;
            p.serve(|_| b"x".to_vec(), |_, _| Ok(()))
        });
        assert!(
            t.stopped.is_none() || r.is_err(),
            "{shown}: {:?}",
            t.stopped
        );
        let got = std::fs::read(sb.dest().join("cand2.txt")).unwrap_or_default();
        assert_ne!(
            got, stolen,
            "{shown}: the outside file was the basis: {r:?}"
        );
        eprintln!("{shown}: {r:?}");
    }
}
