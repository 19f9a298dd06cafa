//! The `@RSYNCD:` text handshake: greeting, protocol choice, module request lines and the
//! daemon argument list (upstream: clientserver.c exchange_protocols(), start_daemon();
//! io.c read_line_old(), read_args()).

use super::{Decoded, WireError};

/// The buffer upstream reads the greeting and the module line into (`line[1024]` in
/// start_daemon()); a line that fills it ends the session.
pub const DAEMON_LINE_MAX: usize = 1024;

/// Upstream's BIGPATHBUFLEN: the buffer for auth responses and arguments.
pub const BIG_LINE_MAX: usize = 5120;

/// Upstream's MAX_DAEMON_ARGS: more arguments than this end the session.
pub const MAX_DAEMON_ARGS: usize = 16_000;

/// The sub-protocol of released versions.
pub const SUBPROTOCOL_VERSION: i32 = 0;

/// Formats our greeting line. Upstream: compat.c, output_daemon_greeting().
pub fn greeting(protocol: i32, digests: &str) -> String {
    format!("@RSYNCD: {protocol}.{SUBPROTOCOL_VERSION} {digests}\n")
}

/// What the peer's greeting said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerGreeting {
    pub protocol: i32,
    pub sub: i32,
    /// The daemon-auth digest names, or `None` when the peer sent no list (before 3.2.7).
    pub digests: Option<String>,
}

/// Why a greeting was refused; each maps to the `@ERROR` line upstream sends.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GreetingError {
    #[error("protocol startup error")]
    Startup,
    #[error("your client omitted the subprotocol value: {0}")]
    NoSubprotocol(String),
    #[error("your client omitted the digest name list: {0}")]
    NoDigestList(String),
}

/// Parses a greeting line (without its newline) as the daemon does.
/// Upstream: clientserver.c, exchange_protocols().
pub fn parse_greeting(line: &str) -> Result<PeerGreeting, GreetingError> {
    let rest = line
        .strip_prefix("@RSYNCD: ")
        .ok_or(GreetingError::Startup)?;
    // sscanf("%d.%d") semantics: leading spaces, an optional sign, digits.
    let rest = rest.trim_start();
    let (protocol, after) = scan_int(rest).ok_or(GreetingError::Startup)?;
    let (sub, after_sub) = match after.strip_prefix('.').and_then(scan_int) {
        Some((sub, tail)) => (Some(sub), tail),
        None => (None, after),
    };
    let sub = match sub {
        Some(s) => s,
        None if protocol >= 30 => return Err(GreetingError::NoSubprotocol(line.to_string())),
        None => 0,
    };
    // Upstream looks for the first space after the fixed prefix "@RSYNCD: " and takes the
    // rest of the line as the digest list.
    let _ = after_sub;
    let digests = line
        .get(9..)
        .and_then(|s| s.find(' ').map(|i| s[i + 1..].to_string()));
    if digests.is_none() && protocol > 31 {
        return Err(GreetingError::NoDigestList(line.to_string()));
    }
    Ok(PeerGreeting {
        protocol,
        sub,
        digests,
    })
}

/// Reads a decimal integer the way `%d` does; returns it and the rest of the string.
fn scan_int(s: &str) -> Option<(i32, &str)> {
    let s = s.trim_start();
    let bytes = s.as_bytes();
    let mut end = usize::from(matches!(bytes.first(), Some(b'+' | b'-')));
    let digits_start = end;
    while bytes.get(end).is_some_and(u8::is_ascii_digit) {
        end += 1;
    }
    if end == digits_start {
        return None;
    }
    // Out-of-range values saturate rather than wrap; either way the protocol check rejects them.
    let value = s[..end].parse::<i64>().map_or(i32::MAX, |v| {
        v.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32
    });
    Some((value, &s[end..]))
}

/// The protocol both sides use, computed from each side's version and sub-version.
/// Upstream: clientserver.c, exchange_protocols().
pub fn negotiate_protocol(ours: i32, peer: i32, peer_sub: i32) -> i32 {
    if ours > peer {
        if peer_sub != 0 { peer - 1 } else { peer }
    } else if ours == peer && peer_sub != SUBPROTOCOL_VERSION {
        ours - 1
    } else {
        ours
    }
}

/// Why a handshake line could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LineError {
    #[error("line contains a NUL byte")]
    Nul,
    #[error("line longer than {0} bytes")]
    TooLong(usize),
}

/// Decodes one `\n`-terminated handshake line: every `\r` is dropped, a NUL byte or a line
/// that fills a buffer of `limit` bytes is an error. Upstream: io.c, read_line_old().
pub fn decode_line(buf: &[u8], limit: usize) -> Result<Decoded<String>, LineError> {
    let mut line = Vec::new();
    for (i, &b) in buf.iter().enumerate() {
        match b {
            b'\n' => {
                return Ok(Decoded::Done {
                    value: String::from_utf8_lossy(&line).into_owned(),
                    used: i + 1,
                });
            }
            0 => return Err(LineError::Nul),
            b'\r' => {}
            _ => {
                line.push(b);
                if line.len() >= limit.saturating_sub(1) {
                    return Err(LineError::TooLong(limit));
                }
            }
        }
    }
    Ok(Decoded::Needed(1))
}

/// Decodes one argument of the daemon argument list: terminated by NUL (protocol 30+) or by
/// `\r`/`\n` (older); an over-long argument is truncated to `limit - 1` bytes as upstream's
/// read_line() does. Upstream: io.c, read_line() with RL_EOL_NULLS.
pub fn decode_arg(buf: &[u8], nul_separated: bool, limit: usize) -> Decoded<Vec<u8>> {
    let end = if nul_separated {
        buf.iter().position(|&b| b == 0)
    } else {
        buf.iter().position(|&b| b == b'\n' || b == b'\r')
    };
    match end {
        Some(i) => {
            let keep = i.min(limit.saturating_sub(1));
            Decoded::Done {
                value: buf[..keep].to_vec(),
                used: i + 1,
            }
        }
        None => Decoded::Needed(1),
    }
}

/// Reads one argument of the daemon argument list as upstream's read_line() does, bytes
/// as they come: what goes past `limit - 1` bytes is read and dropped, so an argument that
/// never ends costs no memory. (Handing [`decode_arg`] a growing buffer instead keeps all
/// of such an argument, and scans it again on every read, until the session's deadline.)
/// Upstream: io.c, read_line() with and without RL_EOL_NULLS.
#[derive(Debug, Clone)]
pub struct ArgDecoder {
    nul_separated: bool,
    limit: usize,
    arg: Vec<u8>,
}

impl ArgDecoder {
    /// A decoder for one list: NUL-separated from protocol 30, else by `\r`/`\n`.
    pub fn new(nul_separated: bool, limit: usize) -> ArgDecoder {
        ArgDecoder {
            nul_separated,
            limit,
            arg: Vec::new(),
        }
    }

    /// Takes bytes of the current argument: `Done(Some(arg))` at its terminator (an empty
    /// argument ends the list), `Done(None)` when all of `buf` was taken without one (call
    /// again with what follows).
    pub fn decode(&mut self, buf: &[u8]) -> Decoded<Option<Vec<u8>>> {
        if buf.is_empty() {
            return Decoded::Needed(1);
        }
        let end = if self.nul_separated {
            buf.iter().position(|&b| b == 0)
        } else {
            buf.iter().position(|&b| b == b'\n' || b == b'\r')
        };
        let text = &buf[..end.unwrap_or(buf.len())];
        let room = self.limit.saturating_sub(1).saturating_sub(self.arg.len());
        self.arg.extend_from_slice(&text[..text.len().min(room)]);
        match end {
            Some(i) => Decoded::Done {
                value: Some(std::mem::take(&mut self.arg)),
                used: i + 1,
            },
            None => Decoded::Done {
                value: None,
                used: buf.len(),
            },
        }
    }
}

/// What the client asked for after the greeting. Upstream: clientserver.c, start_daemon().
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModuleRequest {
    /// An empty line or `#list`: the module listing.
    List,
    /// `#early_input=N`: N raw bytes follow, then the real request line.
    EarlyInput(usize),
    /// Any other `#` line.
    UnknownCommand(String),
    /// A module name.
    Module(String),
}

/// Upstream's limit on early input (BIGPATHBUFLEN).
pub const EARLY_INPUT_MAX: usize = BIG_LINE_MAX;

/// Classifies a request line.
pub fn parse_module_request(line: &str) -> Result<ModuleRequest, WireError> {
    if line.is_empty() || line == "#list" {
        return Ok(ModuleRequest::List);
    }
    if let Some(n) = line.strip_prefix("#early_input=") {
        // strtol semantics: leading digits, anything else stops the number.
        let digits: String = n
            .trim_start()
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        let len = digits.parse::<usize>().unwrap_or(0);
        if len == 0 || len > EARLY_INPUT_MAX {
            return Err(WireError::Malformed {
                what: "early_input length",
            });
        }
        return Ok(ModuleRequest::EarlyInput(len));
    }
    if line.starts_with('#') {
        return Ok(ModuleRequest::UnknownCommand(line.to_string()));
    }
    Ok(ModuleRequest::Module(line.to_string()))
}

/// Formats one line of the module listing. Upstream: clientserver.c, send_listing().
pub fn listing_line(name: &str, comment: &str) -> String {
    format!("{name:<15}\t{comment}\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn greetings_from_captures() {
        let g = parse_greeting("@RSYNCD: 32.0 sha512 sha256 sha1 md5 md4").unwrap();
        assert_eq!(
            g,
            PeerGreeting {
                protocol: 32,
                sub: 0,
                digests: Some("sha512 sha256 sha1 md5 md4".into())
            }
        );
        let g = parse_greeting("@RSYNCD: 27.0 sha512 sha256 sha1 md5 md4").unwrap();
        assert_eq!(g.protocol, 27);
        // rsync 3.1.2 sends no digest list.
        let g = parse_greeting("@RSYNCD: 31.0").unwrap();
        assert_eq!(
            g,
            PeerGreeting {
                protocol: 31,
                sub: 0,
                digests: None
            }
        );
        let g = parse_greeting("@RSYNCD: 29").unwrap();
        assert_eq!(g.sub, 0);
        assert_eq!(
            greeting(32, "sha512 sha256 sha1 md5 md4"),
            "@RSYNCD: 32.0 sha512 sha256 sha1 md5 md4\n"
        );
    }

    #[test]
    fn bad_greetings() {
        assert_eq!(parse_greeting("hello"), Err(GreetingError::Startup));
        assert_eq!(parse_greeting("@RSYNCD: x"), Err(GreetingError::Startup));
        assert!(matches!(
            parse_greeting("@RSYNCD: 31"),
            Err(GreetingError::NoSubprotocol(_))
        ));
        assert!(matches!(
            parse_greeting("@RSYNCD: 32.0"),
            Err(GreetingError::NoDigestList(_))
        ));
    }

    #[test]
    fn protocol_choice() {
        assert_eq!(negotiate_protocol(32, 32, 0), 32);
        assert_eq!(negotiate_protocol(32, 31, 0), 31);
        assert_eq!(negotiate_protocol(32, 27, 0), 27);
        assert_eq!(negotiate_protocol(32, 33, 0), 32);
        assert_eq!(negotiate_protocol(32, 31, 1), 30);
        assert_eq!(negotiate_protocol(32, 32, 1), 31);
    }

    #[test]
    fn lines() {
        assert_eq!(
            decode_line(b"backup\r\nx", 1024),
            Ok(Decoded::Done {
                value: "backup".into(),
                used: 8
            })
        );
        assert_eq!(decode_line(b"back", 1024), Ok(Decoded::Needed(1)));
        assert_eq!(decode_line(b"a\0\n", 1024), Err(LineError::Nul));
        assert_eq!(
            decode_line(&[b'a'; 2000], 1024),
            Err(LineError::TooLong(1024))
        );
        assert_eq!(
            decode_arg(b"--server\0-x\0", true, 5120),
            Decoded::Done {
                value: b"--server".to_vec(),
                used: 9
            }
        );
        assert_eq!(
            decode_arg(b"--server\n", false, 5120),
            Decoded::Done {
                value: b"--server".to_vec(),
                used: 9
            }
        );
        assert_eq!(
            decode_arg(b"abcdef\0", true, 4),
            Decoded::Done {
                value: b"abc".to_vec(),
                used: 7
            }
        );
    }

    #[test]
    fn requests() {
        assert_eq!(parse_module_request(""), Ok(ModuleRequest::List));
        assert_eq!(parse_module_request("#list"), Ok(ModuleRequest::List));
        assert_eq!(
            parse_module_request("#early_input=12"),
            Ok(ModuleRequest::EarlyInput(12))
        );
        assert!(parse_module_request("#early_input=0").is_err());
        assert!(parse_module_request("#early_input=99999").is_err());
        assert_eq!(
            parse_module_request("#foo"),
            Ok(ModuleRequest::UnknownCommand("#foo".into()))
        );
        assert_eq!(
            parse_module_request("backup"),
            Ok(ModuleRequest::Module("backup".into()))
        );
        assert_eq!(
            listing_line("open", "public read-only"),
            "open           \tpublic read-only\n"
        );
    }

    /// Runs an [`ArgDecoder`] over `b` offered in pieces of `step` bytes; returns the
    /// arguments it completed and the bytes they used.
    fn stepped_args(b: &[u8], nul: bool, limit: usize, step: usize) -> (Vec<Vec<u8>>, usize) {
        let mut dec = ArgDecoder::new(nul, limit);
        let (mut args, mut pos, mut done) = (Vec::new(), 0, 0);
        while pos < b.len() {
            let end = (pos + step).min(b.len());
            match dec.decode(&b[pos..end]) {
                Decoded::Done { value, used } => {
                    assert!(used > 0 && pos + used <= end);
                    pos += used;
                    if let Some(arg) = value {
                        assert!(arg.len() < limit.max(1));
                        args.push(arg);
                        done = pos;
                    }
                }
                Decoded::Needed(_) => unreachable!("input was offered"),
            }
        }
        (args, done)
    }

    proptest! {
        #[test]
        fn greeting_round_trips(protocol in 0i32..100, digests in "[a-z0-9 ]{0,40}") {
            let line = greeting(protocol, &digests);
            let Ok(Decoded::Done { value, used }) = decode_line(line.as_bytes(), DAEMON_LINE_MAX) else {
                return Err(TestCaseError::fail("greeting line does not decode"));
            };
            prop_assert_eq!(used, line.len());
            prop_assert_eq!(
                parse_greeting(&value),
                Ok(PeerGreeting { protocol, sub: 0, digests: Some(digests) })
            );
        }

        #[test]
        fn args_round_trip(args in proptest::collection::vec("[^\\x00\\n\\r]{1,20}", 0..8), nul: bool, step in 1usize..40) {
            // A client's list: each argument and its separator, an empty one at the end.
            let sep = if nul { 0u8 } else { b'\n' };
            let mut wire = Vec::new();
            for a in &args {
                wire.extend_from_slice(a.as_bytes());
                wire.push(sep);
            }
            wire.push(sep);
            let mut pos = 0;
            let mut got = Vec::new();
            while let Decoded::Done { value, used } = decode_arg(&wire[pos..], nul, BIG_LINE_MAX) {
                pos += used;
                if value.is_empty() {
                    break;
                }
                got.push(String::from_utf8(value).unwrap());
            }
            prop_assert_eq!(&got, &args);
            prop_assert_eq!(pos, wire.len());
            let (stepped, used) = stepped_args(&wire, nul, BIG_LINE_MAX, step);
            let mut want: Vec<Vec<u8>> = args.iter().map(|a| a.clone().into_bytes()).collect();
            want.push(Vec::new());
            prop_assert_eq!(stepped, want);
            prop_assert_eq!(used, wire.len());
        }

        #[test]
        fn arg_decoder_is_decode_arg_without_the_buffer(
            b in proptest::collection::vec(prop_oneof![Just(0u8), Just(b'\n'), Just(b'\r'), any::<u8>()], 0..300),
            nul: bool,
            limit in 0usize..40,
            step in 1usize..50,
        ) {
            // The same arguments (truncated alike), whatever the pieces the bytes come in.
            let mut want = Vec::new();
            let mut pos = 0;
            while let Decoded::Done { value, used } = decode_arg(&b[pos..], nul, limit) {
                want.push(value);
                pos += used;
            }
            prop_assert_eq!(stepped_args(&b, nul, limit, step), (want, pos));
        }

        #[test]
        fn handshake_reader_never_panics(b in proptest::collection::vec(any::<u8>(), 0..2048)) {
            if let Ok(Decoded::Done { value, .. }) = decode_line(&b, DAEMON_LINE_MAX) {
                let _ = parse_greeting(&value);
                let _ = parse_module_request(&value);
            }
            let _ = decode_arg(&b, true, BIG_LINE_MAX);
            let _ = decode_arg(&b, false, BIG_LINE_MAX);
        }

        #[test]
        fn any_greeting_text_never_panics(s in ".{0,200}") {
            let _ = parse_greeting(&s);
            let _ = parse_greeting(&format!("@RSYNCD: {s}"));
        }
    }
}
