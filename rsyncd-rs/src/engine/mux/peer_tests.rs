//! What a reader accepts from a client and from a server, code by code, with bytes from
//! the captures where a session sent them.

use super::*;
use crate::protocol::mux::MPLEX_BASE;

/// What a reader of `peer` makes of `frame` followed by a data frame: the messages
/// it queued, or upstream's words for why it stopped.
fn read_one(frame: &[u8], peer: Peer) -> Result<Vec<Message>, String> {
    let mut wire = frame.to_vec();
    wire.extend_from_slice(&[1, 0, 0, 7, b'x']);
    let mut r = reader_from(wire, true, peer);
    match r.fill() {
        Ok(()) => Ok(r.take_messages()),
        Err(ConnError::Decode(e)) => Err(e.to_string()),
        Err(e) => Err(format!("{e:?}")),
    }
}

fn capture(bytes: &'static [u8], at: usize, len: usize) -> &'static [u8] {
    &bytes[at..at + len]
}

/// Every code, legal and not, from a client and from a server. Upstream: io.c,
/// read_a_msg(): over the connection only a client takes MSG_IO_TIMEOUT, and neither
/// side takes what rsync's processes send each other over their pipes.
#[test]
fn each_code_from_each_side() {
    let readonly = include_bytes!("../../../testdata/captures/a-readonly.s2c.bin");
    let readonly_c2s = include_bytes!("../../../testdata/captures/a-readonly.c2s.bin");
    let push = include_bytes!("../../../testdata/captures/b-a-push-p32-s2c.bin");
    let deleted = include_bytes!("../../../testdata/captures/b-g-push-delete-s2c.bin");
    let timeout = include_bytes!("../../../testdata/captures/a-timeout.s2c.bin");
    let text = |code, t: &str| Ok(vec![Message::Text(code, t.as_bytes().to_vec())]);
    let both = |m: Message| (Ok(vec![m.clone()]), Ok(vec![m]));
    type Expect = Result<Vec<Message>, String>;
    let refused = |e: &str| -> (Expect, Expect) { (Err(e.into()), Err(e.into())) };
    let cases: Vec<(&str, &[u8], (Expect, Expect))> = vec![
        ("keepalive", &[0, 0, 0, 7], (Ok(vec![]), Ok(vec![]))),
        (
            "MSG_ERROR_XFER",
            b"\x06\x00\x00\x08oops!\n",
            (
                text(MsgCode::ErrorXfer, "oops!\n"),
                text(MsgCode::ErrorXfer, "oops!\n"),
            ),
        ),
        // b-a-push-p32 s2c@95: "created directory a".
        (
            "MSG_INFO",
            capture(push, 95, 24),
            (
                text(MsgCode::Info, "created directory a\n"),
                text(MsgCode::Info, "created directory a\n"),
            ),
        ),
        // a-readonly s2c@152.
        (
            "MSG_ERROR",
            capture(readonly, 152, 31),
            (
                text(MsgCode::Error, "ERROR: module is read only\n"),
                text(MsgCode::Error, "ERROR: module is read only\n"),
            ),
        ),
        (
            "MSG_WARNING",
            b"\x03\x00\x00\x0bhm\n",
            (
                text(MsgCode::Warning, "hm\n"),
                text(MsgCode::Warning, "hm\n"),
            ),
        ),
        (
            "MSG_IO_ERROR",
            &[4, 0, 0, 0x1d, 1, 0, 0, 0],
            both(Message::IoError(1)),
        ),
        (
            "MSG_NOOP",
            &[0, 0, 0, 0x31],
            both(Message::Text(MsgCode::Noop, vec![])),
        ),
        // b-g-push-delete s2c@95: the receiving server deleted `empty`.
        (
            "MSG_DELETED",
            capture(deleted, 95, 9),
            both(Message::Deleted(b"empty".to_vec())),
        ),
        (
            "MSG_SUCCESS",
            &[4, 0, 0, 0x6b, 5, 0, 0, 0],
            both(Message::Success(5)),
        ),
        (
            "MSG_NO_SEND",
            &[4, 0, 0, 0x6d, 7, 0, 0, 0],
            both(Message::NoSend(7)),
        ),
        // a-readonly: the server's exit code 1 (s2c@264), the client's empty reply
        // (c2s@276).
        (
            "MSG_ERROR_EXIT 1",
            capture(readonly, 264, 8),
            both(Message::ErrorExit(Some(1))),
        ),
        (
            "MSG_ERROR_EXIT",
            capture(readonly_c2s, 276, 4),
            both(Message::ErrorExit(None)),
        ),
        // a-timeout s2c@152: the daemon's `timeout = 600`.
        (
            "MSG_IO_TIMEOUT",
            capture(timeout, 152, 8),
            (
                Err("invalid multi-message 33:4".into()),
                Ok(vec![Message::IoTimeout(600)]),
            ),
        ),
        (
            "MSG_ERROR_SOCKET",
            b"\x03\x00\x00\x0cab\n",
            refused("invalid multi-message 5:3"),
        ),
        (
            "MSG_LOG",
            b"\x03\x00\x00\x0dab\n",
            refused("invalid multi-message 6:3"),
        ),
        (
            "MSG_CLIENT",
            b"\x03\x00\x00\x0eab\n",
            refused("invalid multi-message 7:3"),
        ),
        (
            "MSG_ERROR_UTF8",
            b"\x03\x00\x00\x0fab\n",
            refused("invalid multi-message 8:3"),
        ),
        (
            "MSG_REDO",
            &[4, 0, 0, 0x10, 0, 0, 0, 0],
            refused("invalid multi-message 9:4"),
        ),
        (
            "MSG_STATS",
            &[8, 0, 0, 0x11, 0, 0, 0, 0, 0, 0, 0, 0],
            refused("invalid multi-message 10:8"),
        ),
        ("code 11", &[0, 0, 0, 0x12], refused("unexpected tag 11")),
        ("code 200", &[0, 0, 0, 0xcf], refused("unexpected tag 200")),
        (
            "below MPLEX_BASE",
            &[0, 0, 0, 3],
            refused("unexpected tag -4"),
        ),
        (
            "MSG_IO_ERROR of 3",
            &[3, 0, 0, 0x1d, 1, 0, 0],
            refused("invalid multi-message 22:3"),
        ),
        (
            "MSG_IO_TIMEOUT of 5",
            &[5, 0, 0, 0x28, 1, 0, 0, 0, 0],
            refused("invalid multi-message 33:5"),
        ),
        (
            "MSG_NOOP of 1",
            &[1, 0, 0, 0x31, 0],
            refused("invalid multi-message 42:1"),
        ),
        (
            "MSG_ERROR_EXIT of 2",
            &[2, 0, 0, 0x5d, 1, 0],
            refused("invalid multi-message 86:2"),
        ),
        // The local-server form (index, device, inode) never crosses a connection.
        (
            "MSG_SUCCESS of 20",
            &[20, 0, 0, 0x6b],
            refused("invalid multi-message 100:20"),
        ),
        (
            "MSG_INFO of 5120",
            &[0x00, 0x14, 0, 0x09],
            refused("multiplexing overflow 2:5120"),
        ),
        (
            "MSG_DELETED of 5120",
            &[0x00, 0x14, 0, 0x6c],
            refused("multiplexing overflow 101:5120"),
        ),
    ];
    for (name, frame, (from_client, from_server)) in cases {
        assert_eq!(
            read_one(frame, Peer::Client),
            from_client,
            "{name} from a client"
        );
        assert_eq!(
            read_one(frame, Peer::Server),
            from_server,
            "{name} from a server"
        );
    }
}

#[test]
fn the_direction_is_chosen_at_construction() {
    assert_eq!(reader_over(Vec::new(), true).peer(), Peer::Client);
    assert_eq!(
        reader_from(Vec::new(), true, Peer::Server).peer(),
        Peer::Server
    );
}

#[test]
fn a_server_may_only_shorten_the_timeout() {
    assert_eq!(adopted_io_timeout(0, 600), 600);
    assert_eq!(adopted_io_timeout(30, 600), 30);
    assert_eq!(adopted_io_timeout(900, 600), 600);
    for bad in [0, -1, 86_401, i32::MAX, i32::MIN] {
        assert_eq!(adopted_io_timeout(0, bad), 0, "{bad}");
        assert_eq!(adopted_io_timeout(30, bad), 30, "{bad}");
    }
    assert_eq!(adopted_io_timeout(0, 86_400), 86_400);
}

#[test]
fn a_flood_of_timeouts_from_a_server_is_bounded() {
    let mut wire = Vec::new();
    for _ in 0..MAX_QUEUED_MESSAGE_BYTES / MESSAGE_OVERHEAD {
        put_frame(&mut wire, MsgCode::IoTimeout, &60i32.to_le_bytes());
    }
    put_frame(&mut wire, MsgCode::Data, b"x");
    let mut r = reader_from(wire, true, Peer::Server);
    assert!(matches!(
        r.fill(),
        Err(ConnError::Decode(WireError::TooLarge { .. }))
    ));
}

/// Frames with mostly real tags and any stated length, their payloads any length.
fn arb_stream() -> impl proptest::strategy::Strategy<Value = Vec<u8>> {
    use proptest::prelude::*;
    let real = [
        0u8, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 22, 33, 42, 86, 100, 101, 102,
    ]
    .map(|c| c + MPLEX_BASE);
    let tag = prop_oneof![3 => prop::sample::select(real.to_vec()), 1 => any::<u8>()];
    let len = prop_oneof![Just(0u32), Just(4), Just(8), 0..48u32];
    let frame =
        (tag, len, prop::collection::vec(any::<u8>(), 0..48)).prop_map(|(tag, len, payload)| {
            let mut out = ((u32::from(tag) << 24) | len).to_le_bytes().to_vec();
            out.extend_from_slice(&payload);
            out
        });
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..256),
        prop::collection::vec(frame, 0..12).prop_map(|f| f.concat()),
    ]
}

proptest::proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in arb_stream(), server in proptest::bool::ANY) {
        let peer = if server { Peer::Server } else { Peer::Client };
        let mut r = reader_from(bytes, true, peer);
        // Each fill takes at least a header, so the end of the input ends the loop.
        while r.fill().is_ok() {
            r.consume(r.buffered().len());
            drop(r.take_messages());
        }
    }
}
