//! The PROXY protocol header (HAProxy's v1 text line or v2 binary block) that a load
//! balancer sends before the rsync greeting when `proxy protocol = yes`; it carries the
//! real client's address (upstream: clientname.c read_proxy_protocol_header(),
//! valid_ipaddr()).
//!
//! Sans-IO: [`decode_proxy_header`] gets the bytes read so far and answers "need more" or
//! "done, used n", consuming exactly what upstream's reads consume so the greeting that
//! follows is left in the buffer.
//!
//! This is a wire codec and belongs with the others in `protocol`; it lives here until
//! that module can take it, since only the daemon reads it.

use std::net::IpAddr;

use crate::protocol::Decoded;

/// The v2 signature. Upstream: clientname.c, proxyv2sig.
const V2_SIG: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";
/// Signature, version/command, family and the 16-bit length.
const V2_HEADER_LEN: usize = 16;
/// Upstream reads a v2 header into a union whose largest member (two 108-byte unix
/// paths after the fixed part) bounds the address block.
const V2_MAX_LEN: usize = V2_HEADER_LEN + 216;
/// Upstream's v1 line buffer: at most 107 bytes up to and including the `\n`.
const V1_MAX_LEN: usize = 107;

const CMD_LOCAL: u8 = 0;
const CMD_PROXY: u8 = 1;
const FAM_TCP4: u8 = 0x11;
const FAM_TCP6: u8 = 0x21;

/// What a valid header says about the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProxySource {
    /// The proxied client's address, as the header wrote it (v1) or as text (v2).
    Address {
        text: String,
        /// The address parsed, when Rust's parser agrees with upstream's looser check.
        ip: Option<IpAddr>,
    },
    /// `UNKNOWN` (v1), `LOCAL` or an unsupported family (v2): keep the socket's address.
    KeepSocketAddress,
}

/// Why a header was refused; upstream closes the connection without a word.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ProxyError {
    #[error("no PROXY protocol header")]
    Missing,
    #[error("malformed PROXY protocol v1 line")]
    MalformedV1,
    #[error("malformed PROXY protocol v2 header")]
    MalformedV2,
}

/// Decodes a PROXY header at the start of `buf`. Upstream: clientname.c,
/// read_proxy_protocol_header().
pub fn decode_proxy_header(buf: &[u8]) -> Result<Decoded<ProxySource>, ProxyError> {
    // Upstream always reads the signature's length first.
    let Some(first) = buf.get(..V2_SIG.len()) else {
        return Ok(Decoded::Needed(V2_SIG.len() - buf.len()));
    };
    if first == V2_SIG {
        decode_v2(buf)
    } else if first.starts_with(b"PROXY") {
        decode_v1(buf)
    } else {
        Err(ProxyError::Missing)
    }
}

fn decode_v2(buf: &[u8]) -> Result<Decoded<ProxySource>, ProxyError> {
    let Some(head) = buf.get(..V2_HEADER_LEN) else {
        return Ok(Decoded::Needed(V2_HEADER_LEN - buf.len()));
    };
    let (ver, cmd, fam) = (head[12] >> 4, head[12] & 0x0f, head[13]);
    let size = usize::from(u16::from_be_bytes([head[14], head[15]]));
    if ver != 2 || V2_HEADER_LEN + size > V2_MAX_LEN {
        return Err(ProxyError::MalformedV2);
    }
    let used = V2_HEADER_LEN + size;
    let Some(addr) = buf.get(V2_HEADER_LEN..used) else {
        return Ok(Decoded::Needed(used - buf.len()));
    };
    let value = match (cmd, fam) {
        (CMD_PROXY, FAM_TCP4) => {
            let src: [u8; 4] = addr
                .get(..4)
                .filter(|_| size == 12)
                .and_then(|a| a.try_into().ok())
                .ok_or(ProxyError::MalformedV2)?;
            address(IpAddr::from(src))
        }
        (CMD_PROXY, FAM_TCP6) => {
            let src: [u8; 16] = addr
                .get(..16)
                .filter(|_| size == 36)
                .and_then(|a| a.try_into().ok())
                .ok_or(ProxyError::MalformedV2)?;
            address(IpAddr::from(src))
        }
        // An unsupported family is accepted and the socket's address used, as upstream.
        (CMD_PROXY, _) | (CMD_LOCAL, _) => ProxySource::KeepSocketAddress,
        _ => return Err(ProxyError::MalformedV2),
    };
    Ok(Decoded::Done { value, used })
}

fn address(ip: IpAddr) -> ProxySource {
    ProxySource::Address {
        text: ip.to_string(),
        ip: Some(ip),
    }
}

fn decode_v1(buf: &[u8]) -> Result<Decoded<ProxySource>, ProxyError> {
    // When the first read already holds a `\n` (before any NUL: upstream uses C string
    // calls), the line is those bytes; otherwise upstream reads one byte at a time.
    let used = if c_str(&buf[..V2_SIG.len()]).contains(&b'\n') {
        V2_SIG.len()
    } else {
        let rest = &buf[V2_SIG.len()..];
        match rest.iter().position(|b| *b == b'\n') {
            Some(i) if V2_SIG.len() + i < V1_MAX_LEN => V2_SIG.len() + i + 1,
            Some(_) => return Err(ProxyError::MalformedV1),
            None if buf.len() >= V1_MAX_LEN => return Err(ProxyError::MalformedV1),
            None => return Ok(Decoded::Needed(1)),
        }
    };
    let value = parse_v1_line(c_str(&buf[..used])).ok_or(ProxyError::MalformedV1)?;
    Ok(Decoded::Done { value, used })
}

/// `PROXY TCP4|TCP6 SRC DST SPORT DPORT\r\n`, or `PROXY UNKNOWN...`.
fn parse_v1_line(line: &[u8]) -> Option<ProxySource> {
    // The first `\r` must be followed by `\n` and the end of the line.
    let cr = line.iter().position(|b| *b == b'\r')?;
    if line.get(cr + 1..) != Some(b"\n".as_slice()) {
        return None;
    }
    let rest = line.get(..cr)?.strip_prefix(b"PROXY")?;
    let rest = strip_one_space(rest)?;
    let rest = if let Some(r) = rest
        .strip_prefix(b"TCP4")
        .or_else(|| rest.strip_prefix(b"TCP6"))
    {
        r
    } else if rest.starts_with(b"UNKNOWN") {
        return Some(ProxySource::KeepSocketAddress);
    } else {
        return None;
    };
    let rest = strip_one_space(rest)?;
    let (src, rest) = split_at_space(rest)?;
    let src_ip = valid_ipaddr(src)?;
    let (dst, rest) = split_at_space(rest)?;
    valid_ipaddr(dst)?;
    let (sport, dport) = split_at_space(rest)?;
    if !is_nonzero_port(sport) || !is_nonzero_port(dport) {
        return None;
    }
    Some(ProxySource::Address {
        text: String::from_utf8_lossy(src).into_owned(),
        ip: src_ip,
    })
}

fn c_str(b: &[u8]) -> &[u8] {
    b.split(|c| *c == 0).next().unwrap_or_default()
}

/// C's isspace(): space, `\t`, `\n`, `\v`, `\f`, `\r`.
fn is_c_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

fn strip_one_space(b: &[u8]) -> Option<&[u8]> {
    match b.split_first() {
        Some((first, rest)) if is_c_space(*first) => Some(rest),
        _ => None,
    }
}

fn split_at_space(b: &[u8]) -> Option<(&[u8], &[u8])> {
    let i = b.iter().position(|c| *c == b' ')?;
    Some((&b[..i], &b[i + 1..]))
}

/// strtol(s, &end, 10) with `*end == '\0'` and a non-zero result: optional leading
/// spaces and sign, then digits to the end. Overflow saturates, so it stays non-zero.
fn is_nonzero_port(s: &[u8]) -> bool {
    let s = &s[s.iter().take_while(|b| is_c_space(**b)).count()..];
    let digits = s
        .strip_prefix(b"+")
        .or_else(|| s.strip_prefix(b"-"))
        .unwrap_or(s);
    !digits.is_empty() && digits.iter().all(u8::is_ascii_digit) && digits.iter().any(|d| *d != b'0')
}

/// C's strtol() over `s` in base 10: the value and how many bytes it used (0 when there
/// are no digits). Only the range 0..=255 matters to the caller, so larger values are
/// clamped.
fn c_strtol(s: &[u8]) -> (i64, usize) {
    let mut i = s.iter().take_while(|b| is_c_space(**b)).count();
    let negative = match s.get(i) {
        Some(b'-') => {
            i += 1;
            true
        }
        Some(b'+') => {
            i += 1;
            false
        }
        _ => false,
    };
    let start = i;
    let mut n: i64 = 0;
    while let Some(d) = s.get(i).filter(|d| d.is_ascii_digit()) {
        n = (n * 10 + i64::from(d - b'0')).min(1 << 40);
        i += 1;
    }
    if i == start {
        return (0, 0);
    }
    (if negative { -n } else { n }, i)
}

/// Whether `s` is an IPv4 or IPv6 address as upstream's hand-written check decides
/// (no scope id); `Some(parsed)` when valid, where `parsed` is `None` if the text is
/// valid to upstream but not to Rust's stricter parser (e.g. `010.1.2.3`).
/// Upstream: clientname.c, valid_ipaddr() with allow_scope false.
fn valid_ipaddr(s: &[u8]) -> Option<Option<IpAddr>> {
    let parsed = || std::str::from_utf8(s).ok().and_then(|t| t.parse().ok());
    if !s.contains(&b':') {
        let (octets, rest) = ipv4_octets(s)?;
        return rest.is_empty().then_some(Some(IpAddr::from(octets)));
    }
    let mut i = 0;
    let mut saw_double_colon = false;
    if s.first() == Some(&b':') {
        if s.get(1) != Some(&b':') {
            return None;
        }
        saw_double_colon = true;
        i = 2;
    }
    for count in 0..8 {
        let rest = &s[i..];
        if rest.is_empty() {
            return saw_double_colon.then(parsed);
        }
        if !rest.contains(&b':') && rest.contains(&b'.') {
            if (!saw_double_colon && count != 6) || (saw_double_colon && count > 6) {
                return None;
            }
            let (_, tail) = ipv4_octets(rest)?;
            return tail.is_empty().then(parsed);
        }
        let hex = rest.iter().take_while(|b| b.is_ascii_hexdigit()).count();
        if hex == 0 || hex > 4 {
            return None;
        }
        i += hex;
        if s.get(i) == Some(&b':') {
            i += 1;
            match s.get(i) {
                None => return None,
                Some(b':') => {
                    if saw_double_colon {
                        return None;
                    }
                    saw_double_colon = true;
                    i += 1;
                }
                Some(_) => {}
            }
        }
    }
    (i == s.len()).then(parsed)
}

/// Four dot-separated numbers of at most three characters (as strtol reads them), and
/// what follows.
fn ipv4_octets(mut s: &[u8]) -> Option<([u8; 4], &[u8])> {
    let mut octets = [0u8; 4];
    for (i, octet) in octets.iter_mut().enumerate() {
        if i > 0 {
            s = s.strip_prefix(b".")?;
        }
        let (n, used) = c_strtol(s);
        if used == 0 || used > 3 || !(0..=255).contains(&n) {
            return None;
        }
        *octet = u8::try_from(n).ok()?;
        s = &s[used..];
    }
    Some((octets, s))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn v1(line: &str) -> Vec<u8> {
        format!("PROXY {line}\r\n").into_bytes()
    }

    fn v2(cmd: u8, fam: u8, addr: &[u8]) -> Vec<u8> {
        let mut b = V2_SIG.to_vec();
        b.extend_from_slice(&[(2 << 4) | cmd, fam]);
        b.extend_from_slice(&(addr.len() as u16).to_be_bytes());
        b.extend_from_slice(addr);
        b
    }

    fn done(buf: &[u8]) -> Result<ProxySource, ProxyError> {
        match decode_proxy_header(buf)? {
            Decoded::Done { value, used } => {
                assert_eq!(used, buf.len(), "{buf:?}");
                Ok(value)
            }
            Decoded::Needed(_) => panic!("needs more: {buf:?}"),
        }
    }

    fn addr(text: &str) -> ProxySource {
        ProxySource::Address {
            text: text.into(),
            ip: text.parse().ok(),
        }
    }

    // The cases of upstream's testsuite/daemon-proxy-protocol_test.py.
    #[test]
    fn v1_lines() {
        assert_eq!(
            done(&v1("TCP4 10.1.2.3 127.0.0.1 40000 873")),
            Ok(addr("10.1.2.3"))
        );
        assert_eq!(
            done(&v1("TCP6 fd00::1234 ::1 40000 873")),
            Ok(addr("fd00::1234"))
        );
        assert_eq!(done(&v1("UNKNOWN")), Ok(ProxySource::KeepSocketAddress));
        for bad in [
            "TCP4 10.1.2.3",
            "TCP9 10.1.2.3 127.0.0.1 40000 873",
            "TCP4 10.1.2.3 127.0.0.1 abc 873",
            "TCP4 10.1.2.3 127.0.0.1 0 873",
            "TCP4 10.1.2.300 127.0.0.1 1 873",
            "TCP4 10.1.2.3 127.0.0.1 1 873 ",
        ] {
            assert!(done(&v1(bad)).is_err(), "{bad}");
        }
        let long = [b"PROXY TCP4 ".as_slice(), &[b'1'; 200]].concat();
        assert_eq!(decode_proxy_header(&long), Err(ProxyError::MalformedV1));
        assert_eq!(
            decode_proxy_header(b"GET / HTTP/1.0\r\n\r\n"),
            Err(ProxyError::Missing)
        );
    }

    #[test]
    fn v1_leaves_the_greeting() {
        let mut b = v1("TCP4 10.1.2.3 127.0.0.1 40000 873");
        let len = b.len();
        b.extend_from_slice(b"@RSYNCD: 30.0\n");
        assert_eq!(
            decode_proxy_header(&b),
            Ok(Decoded::Done {
                value: addr("10.1.2.3"),
                used: len
            })
        );
    }

    #[test]
    fn v2_blocks() {
        let ip4 = [[10, 9, 8, 7], [127, 0, 0, 1]].concat();
        let ip4 = [
            ip4.as_slice(),
            &40000u16.to_be_bytes(),
            &873u16.to_be_bytes(),
        ]
        .concat();
        assert_eq!(done(&v2(CMD_PROXY, FAM_TCP4, &ip4)), Ok(addr("10.9.8.7")));
        let mut ip6 = "fd00::abcd"
            .parse::<std::net::Ipv6Addr>()
            .unwrap()
            .octets()
            .to_vec();
        ip6.extend_from_slice(&std::net::Ipv6Addr::LOCALHOST.octets());
        ip6.extend_from_slice(&[0, 1, 0, 2]);
        assert_eq!(done(&v2(CMD_PROXY, FAM_TCP6, &ip6)), Ok(addr("fd00::abcd")));
        assert_eq!(
            done(&v2(CMD_LOCAL, 0, b"")),
            Ok(ProxySource::KeepSocketAddress)
        );
        assert_eq!(
            done(&v2(CMD_PROXY, 0x31, &[0; 4])),
            Ok(ProxySource::KeepSocketAddress)
        );
        let mut bad_ver = v2(CMD_PROXY, FAM_TCP4, &[0; 12]);
        bad_ver[12] = (3 << 4) | CMD_PROXY;
        assert!(decode_proxy_header(&bad_ver).is_err());
        let mut oversize = V2_SIG.to_vec();
        oversize.extend_from_slice(&[0x21, FAM_TCP4, 0x10, 0x00]);
        assert!(decode_proxy_header(&oversize).is_err());
        assert!(done(&v2(CMD_PROXY, FAM_TCP4, &[0; 8])).is_err());
        assert!(done(&v2(7, FAM_TCP4, &[0; 12])).is_err());
    }

    #[test]
    fn addresses_as_upstream_checks_them() {
        for ok in [
            "1.2.3.4",
            "010.1.2.3",
            "::",
            "::1",
            "fe80::1",
            "1:2:3:4:5:6:7:8",
            "::ffff:1.2.3.4",
            "1:2:3:4:5:6:1.2.3.4",
        ] {
            assert!(valid_ipaddr(ok.as_bytes()).is_some(), "{ok}");
        }
        for bad in [
            "",
            "1.2.3",
            "1.2.3.4.",
            "256.1.1.1",
            "1:2",
            ":1",
            "1::2::3",
            "12345::",
            "1:",
            "fe80::1%eth0",
            "1:2:3:4:5:1.2.3.4",
        ] {
            assert!(valid_ipaddr(bad.as_bytes()).is_none(), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn never_panics(b in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = decode_proxy_header(&b);
        }

        #[test]
        fn a_prefix_never_decodes_differently(split in 0usize..60) {
            let full = v1("TCP4 10.1.2.3 127.0.0.1 40000 873");
            let cut = &full[..split.min(full.len())];
            match decode_proxy_header(cut) {
                Ok(Decoded::Needed(_)) => {}
                other => prop_assert_eq!(other, decode_proxy_header(&full)),
            }
        }
    }
}
