//! Daemon authentication digests: negotiation, challenge and response
//! (upstream: authenticate.c, compat.c negotiate_daemon_auth(), checksum.c).
//!
//! Everything here is pure: the caller supplies the random bytes, the clock, the pid and
//! the lines read from the peer, and sends what comes back.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use md4::Md4;
use md5::Md5;
use sha1::Sha1;
use sha2::{Digest as _, Sha256, Sha512};
use subtle::ConstantTimeEq as _;

use super::{Decoded, WireError};

/// A daemon-auth digest.
///
/// Upstream: checksum.c, valid_auth_checksums_items[] (strongest first), plus the
/// seeded MD4 that compat.c negotiate_daemon_auth() falls back to below protocol 30.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthDigest {
    /// SHA-512, 64 bytes.
    Sha512,
    /// SHA-256, 32 bytes.
    Sha256,
    /// SHA-1, 20 bytes.
    Sha1,
    /// MD5, 16 bytes.
    Md5,
    /// MD4 chosen by name from a digest list, 16 bytes.
    Md4,
    /// MD4 with a 4-byte little-endian zero seed hashed first (`CSUM_MD4_OLD`): what a
    /// peer that sent no digest list gets below protocol 30. Upstream still calls it
    /// "md4", so [`AuthDigest::name`] does too.
    Md4Old,
}

/// The digest list a 3.5.0 daemon built with OpenSSL puts in its greeting, strongest first.
pub const OUR_DIGESTS: &str = "sha512 sha256 sha1 md5 md4";

/// Our digests in preference order; the index is the rank.
const OUR_ORDER: [AuthDigest; 5] = [
    AuthDigest::Sha512,
    AuthDigest::Sha256,
    AuthDigest::Sha1,
    AuthDigest::Md5,
    AuthDigest::Md4,
];

/// How much of a peer's digest list is looked at; upstream copies it into a 256-byte
/// buffer (compat.c, `MAX_NSTR_STRLEN`), so anything after byte 255 is ignored.
pub const MAX_DIGEST_LIST: usize = 255;

/// The longest response line (user, space, response) a 3.5.0 daemon accepts, not
/// counting the newline or any carriage returns: its buffer is `BIGPATHBUFLEN` (5120)
/// bytes, and a line that fills all but the terminator counts as truncated.
///
/// Upstream: io.c, read_line_old(); authenticate.c, auth_server().
pub const MAX_RESPONSE_LINE: usize = 5118;

impl AuthDigest {
    /// The name used in digest lists and log lines (`Md4Old` is "md4", as upstream).
    pub const fn name(self) -> &'static str {
        match self {
            AuthDigest::Sha512 => "sha512",
            AuthDigest::Sha256 => "sha256",
            AuthDigest::Sha1 => "sha1",
            AuthDigest::Md5 => "md5",
            AuthDigest::Md4 | AuthDigest::Md4Old => "md4",
        }
    }

    /// Looks a digest up by list name, ignoring ASCII case as upstream's
    /// `get_nni_by_name()` does. "md4" gives [`AuthDigest::Md4`].
    pub fn from_name(name: &str) -> Option<AuthDigest> {
        OUR_ORDER
            .into_iter()
            .find(|d| d.name().eq_ignore_ascii_case(name))
    }

    /// Strength rank, 0 for the strongest; `Md4Old` ranks with `Md4`.
    ///
    /// Upstream: checksum.c, auth_digest_rank().
    pub const fn rank(self) -> usize {
        match self {
            AuthDigest::Sha512 => 0,
            AuthDigest::Sha256 => 1,
            AuthDigest::Sha1 => 2,
            AuthDigest::Md5 => 3,
            AuthDigest::Md4 | AuthDigest::Md4Old => 4,
        }
    }

    /// Digest length in bytes.
    pub const fn digest_len(self) -> usize {
        match self {
            AuthDigest::Sha512 => 64,
            AuthDigest::Sha256 => 32,
            AuthDigest::Sha1 => 20,
            AuthDigest::Md5 | AuthDigest::Md4 | AuthDigest::Md4Old => 16,
        }
    }

    /// Length of a challenge or response in base64 characters (no padding).
    pub const fn encoded_len(self) -> usize {
        (self.digest_len() * 8).div_ceil(6)
    }

    /// Hashes the concatenation of `parts`.
    ///
    /// Upstream: checksum.c, sum_init() / sum_update() / sum_end().
    fn hash(self, parts: &[&[u8]]) -> Vec<u8> {
        fn run<D: sha2::Digest>(mut h: D, parts: &[&[u8]]) -> Vec<u8> {
            for part in parts {
                h.update(part);
            }
            h.finalize().to_vec()
        }
        match self {
            AuthDigest::Sha512 => run(Sha512::new(), parts),
            AuthDigest::Sha256 => run(Sha256::new(), parts),
            AuthDigest::Sha1 => run(Sha1::new(), parts),
            AuthDigest::Md5 => run(Md5::new(), parts),
            AuthDigest::Md4 => run(Md4::new(), parts),
            AuthDigest::Md4Old => {
                // sum_init() with CSUM_MD4_OLD hashes the checksum seed (always 0 for
                // auth) as a little-endian int32 before anything else.
                let mut h = Md4::new();
                h.update(0i32.to_le_bytes());
                for part in parts {
                    h.update(part);
                }
                h.finalize().to_vec()
            }
        }
    }
}

impl std::fmt::Display for AuthDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The peer's digest list named nothing we support.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no daemon-auth digest in common with the peer's list {peer_list:?}")]
pub struct NoCommonDigest {
    /// The list as the peer sent it (after upstream's 255-byte cut).
    pub peer_list: String,
}

impl NoCommonDigest {
    /// The line a daemon sends before exiting with code 4 (RERR_UNSUPPORTED). It names
    /// the daemon's own list, not the client's.
    ///
    /// Upstream: compat.c, negotiate_daemon_auth().
    pub fn daemon_error_line(&self) -> String {
        format!(
            "@ERROR: your client does not support one of our daemon-auth checksums: {OUR_DIGESTS}\n"
        )
    }

    /// The first line a client prints before exiting with code 4.
    ///
    /// Upstream: compat.c, recv_negotiate_str().
    pub fn client_message(&self) -> &'static str {
        "Failed to negotiate a daemon auth checksum choice."
    }
}

/// Chooses the auth digest, daemon side: from the client's greeting list (`None` when
/// its greeting had none), the name that ranks best in **our** order; without a list,
/// `md5` from protocol 30 on, else the seeded `md4` ([`AuthDigest::Md4Old`]). Names are
/// space-separated and matched ignoring ASCII case.
///
/// `protocol` is the negotiated protocol version. An empty list is an error, as upstream.
///
/// Upstream: compat.c, negotiate_daemon_auth() and parse_negotiate_str().
pub fn choose_digest(peer_list: Option<&str>, protocol: i32) -> Result<AuthDigest, NoCommonDigest> {
    let Some(list) = peer_list else {
        return Ok(if protocol >= 30 {
            AuthDigest::Md5
        } else {
            AuthDigest::Md4Old
        });
    };
    let bytes = list.as_bytes();
    let bytes = &bytes[..bytes.len().min(MAX_DIGEST_LIST)];
    let bytes = bytes.split(|&b| b == 0).next().unwrap_or_default();
    bytes
        .split(|&b| b == b' ')
        .filter_map(|name| {
            OUR_ORDER
                .into_iter()
                .find(|d| d.name().as_bytes().eq_ignore_ascii_case(name))
        })
        .min_by_key(|d| d.rank())
        .ok_or_else(|| NoCommonDigest {
            peer_list: String::from_utf8_lossy(bytes).into_owned(),
        })
}

/// Chooses the auth digest, client side, when `@RSYNCD: AUTHREQD` arrives: the same
/// rule applied to the server's greeting list (`None` when it sent none).
///
/// Upstream: compat.c, negotiate_daemon_auth() with `am_client`, recv_negotiate_str().
pub fn choose_client_digest(
    server_list: Option<&str>,
    protocol: i32,
) -> Result<AuthDigest, NoCommonDigest> {
    choose_digest(server_list, protocol)
}

/// Builds the challenge the daemon sends after `@RSYNCD: AUTHREQD `: the digest of the
/// 32 random bytes followed by a 32-byte block holding the client's address (its first
/// 16 bytes, NUL-padded), then `tv_sec`, `tv_usec` and `pid` as little-endian int32s and
/// four zero bytes; base64 without padding.
///
/// Upstream: authenticate.c, gen_challenge().
pub fn make_challenge(
    digest: AuthDigest,
    random: &[u8; 32],
    client_addr: &str,
    tv_sec: i32,
    tv_usec: i32,
    pid: i32,
) -> String {
    let mut block = [0u8; 32];
    let addr = client_addr.as_bytes();
    let addr = addr.split(|&b| b == 0).next().unwrap_or_default();
    let n = addr.len().min(16);
    block[..n].copy_from_slice(&addr[..n]);
    block[16..20].copy_from_slice(&tv_sec.to_le_bytes());
    block[20..24].copy_from_slice(&tv_usec.to_le_bytes());
    block[24..28].copy_from_slice(&pid.to_le_bytes());
    STANDARD_NO_PAD.encode(digest.hash(&[random, &block]))
}

/// The response to `challenge`: base64 (no padding) of the digest of the password
/// followed by the challenge text. Both end at a NUL, as upstream hashes C strings.
///
/// Upstream: authenticate.c, generate_hash().
pub fn response(digest: AuthDigest, password: &[u8], challenge: &str) -> String {
    let password = password.split(|&b| b == 0).next().unwrap_or_default();
    let challenge = challenge
        .as_bytes()
        .split(|&b| b == 0)
        .next()
        .unwrap_or_default();
    STANDARD_NO_PAD.encode(digest.hash(&[password, challenge]))
}

/// Compares two responses in time that does not depend on where they differ (it does
/// depend on whether the lengths differ, which the digest already makes public).
pub fn responses_equal(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

/// Reads the client's response line (`user response\n`) as the daemon does: carriage
/// returns anywhere are dropped, a NUL byte or more than [`MAX_RESPONSE_LINE`] other
/// bytes before the newline is an error. The value excludes the newline; `used` counts
/// it.
///
/// Upstream: io.c, read_line_old() as called by authenticate.c, auth_server().
pub fn decode_response_line(buf: &[u8]) -> Result<Decoded<Vec<u8>>, WireError> {
    let mut line = Vec::new();
    for (i, &b) in buf.iter().enumerate() {
        match b {
            b'\n' => {
                return Ok(Decoded::Done {
                    value: line,
                    used: i + 1,
                });
            }
            b'\r' => {}
            0 => {
                return Err(WireError::Malformed {
                    what: "auth response line (NUL byte)",
                });
            }
            _ => {
                if line.len() == MAX_RESPONSE_LINE {
                    return Err(WireError::TooLarge {
                        what: "auth response line",
                        got: MAX_RESPONSE_LINE as u64 + 1,
                        limit: MAX_RESPONSE_LINE as u64,
                    });
                }
                line.push(b);
            }
        }
    }
    Ok(Decoded::Needed(1))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn digests_match_standard_vectors() {
        // RFC 1320, RFC 1321, FIPS 180 "abc" vectors.
        let cases = [
            (AuthDigest::Md4, "a448017aaf21d8525fc10ae87aa6729d"),
            (AuthDigest::Md5, "900150983cd24fb0d6963f7d28e17f72"),
            (AuthDigest::Sha1, "a9993e364706816aba3e25717850c26c9cd0d89d"),
            (
                AuthDigest::Sha256,
                "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
            ),
            (
                AuthDigest::Sha512,
                "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a\
                 2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f",
            ),
        ];
        for (digest, want) in cases {
            let want = STANDARD_NO_PAD.encode(hex(want));
            assert_eq!(response(digest, b"ab", "c"), want, "{digest}");
            assert_eq!(response(digest, b"abc", ""), want, "{digest}");
            assert_eq!(want.len(), digest.encoded_len());
        }
        // RFC 1320: MD4("") and MD4("message digest").
        assert_eq!(
            AuthDigest::Md4.hash(&[b""]),
            hex("31d6cfe0d16ae931b73c59d7e0c089c0")
        );
        assert_eq!(
            AuthDigest::Md4.hash(&[b"message ", b"digest"]),
            hex("d9130a8164549fe818874806e1c7014b")
        );
        // md4-old is plain MD4 with four zero bytes in front.
        assert_eq!(
            AuthDigest::Md4Old.hash(&[b"abc"]),
            AuthDigest::Md4.hash(&[&[0, 0, 0, 0], b"abc"])
        );
    }

    /// (challenge, password, digest, response), copied from the captures.
    const CAPTURED: &[(&str, &[u8], AuthDigest, &str)] = &[
        // a-fake-auth-p29: server 29.0 without a list; c2s@48.
        (
            "AAAAAAAAAAAAAAAAAAAAAA",
            b"1",
            AuthDigest::Md4Old,
            "RoU2ksjLaFP7SIrPV2dG/g",
        ),
        // a-fake-auth-p30: server 30.0 without a list.
        (
            "AAAAAAAAAAAAAAAAAAAAAA",
            b"1",
            AuthDigest::Md5,
            "MgQhQAKIr95PSAvm4mKDPw",
        ),
        // a-oldclient-p29-md4 / a-oldclient-p30-md5 (scripted clients, accepted).
        (
            "xC3rRZb8swVhGqlpzAJAcg",
            b"1",
            AuthDigest::Md4Old,
            "ExS1VYMoi8ODPPGTqU/xmw",
        ),
        (
            "wdxR1ZrnVMQOGjtx112XKA",
            b"1",
            AuthDigest::Md5,
            "JGEkSegUooQY5mS1l2OizA",
        ),
        // a-push-p32 s2c@116 / c2s@61.
        (
            "X+DMRXqUcaj56Tp6C1cBNsPUdIr8WY2JTVjUVq+ty6jJgNHW12QeUSZp3e1rnotRd8TVw4nR7nZj9AcmiQwWuA",
            b"1",
            AuthDigest::Sha512,
            "y88t/x3HBXxIvgEItvcgitCb85d7xehtFRQ8X6NeYbQPaS/Ja18rZ3in1PPILGNu5iHB2Vc+307D7pkQ1pGYUQ",
        ),
        // a-push-p30.
        (
            "SGgOWHem5f8Z2RrHfYtvgSYDnhYonCTzkGcISB6kt278xbdsUnopL41gGTAAD2J9LtEEG9cVaT6CYYLQyAvbFg",
            b"1",
            AuthDigest::Sha512,
            "5n/t2nkGsLKqVGA6dtib7Ds9zvtecsm73wxAOdKNFGyfH7G6RtX1klEALwaENSl0DgeO6DHEHnHl1ONmetyoig",
        ),
        // a-push-p29.
        (
            "/D06gBp+79w+7gLA39tn8lNGFAuASTIB/EqbQWFBKVF2bdKCeqpkDB5VeRq58jZdFyitKVWa9xWTrz6n++xNkg",
            b"1",
            AuthDigest::Sha512,
            "02reSWtJdCqGfx+IZFrUGeq6ZLEEx8kuRucPFVaNH5ufCvCsQ82z5ILUIaRgA8B5+z+ONzURbsWNulqbWGHk3A",
        ),
        // a-push-p27.
        (
            "IG9V3Djfd2EPlRbRVH2QoSK/PPgLVY+EfvlTrCpEoMwUGCGViJRfqBwFAShLaha/FOtziDNTuLWg4cv7kDkWVg",
            b"1",
            AuthDigest::Sha512,
            "zA1VpPTkGg+p2DecxdhN0Vd633bDCwtTDG+kbLcwJB5J/KCg/bPFEq/u6OjLrgiGW8XM1PVbW8JPAaER1vcgDQ",
        ),
        // a-authfail: the client used the password "wrong".
        (
            "OGBk297gS/3qpiz8oqtMfRM3urYUCToAZPVeXN1xSKOdS/YPjudBqZ/xSxPcPQsaT9TH1zN60NkZbilFFV9fCg",
            b"wrong",
            AuthDigest::Sha512,
            "FD1ReoejwcPFq9I81kQLREF+pfzxlv0OvlnV/4r5N1kYnC33qS/3J61MxVkN39s8TH9UKdMxglqLKZGV9fnOng",
        ),
    ];

    #[test]
    fn captured_responses() {
        for &(challenge, password, digest, want) in CAPTURED {
            assert_eq!(challenge.len(), digest.encoded_len());
            let got = response(digest, password, challenge);
            assert_eq!(got, want, "{digest} {challenge}");
            assert!(responses_equal(&got, want));
        }
        // The authfail response is not what the right password gives.
        let (challenge, _, digest, bad) = CAPTURED[8];
        assert!(!responses_equal(&response(digest, b"1", challenge), bad));
    }

    #[test]
    fn choosing() {
        let ours = Some(OUR_DIGESTS);
        // The push captures: 3.5.0 on both ends agree on sha512 at any protocol.
        for proto in [27, 29, 30, 32] {
            assert_eq!(choose_digest(ours, proto), Ok(AuthDigest::Sha512));
        }
        assert_eq!(choose_digest(None, 30), Ok(AuthDigest::Md5));
        assert_eq!(choose_digest(None, 31), Ok(AuthDigest::Md5));
        assert_eq!(choose_digest(None, 29), Ok(AuthDigest::Md4Old));
        assert_eq!(choose_digest(None, 27), Ok(AuthDigest::Md4Old));
        // Our order wins over the peer's.
        assert_eq!(
            choose_digest(Some("md4 sha1 md5"), 31),
            Ok(AuthDigest::Sha1)
        );
        assert_eq!(choose_digest(Some("  MD5  xxh  "), 31), Ok(AuthDigest::Md5));
        assert_eq!(choose_digest(Some("md4"), 29), Ok(AuthDigest::Md4));
        assert!(choose_digest(Some(""), 31).is_err());
        assert!(choose_digest(Some("md4\tmd5"), 31).is_err());
        // Only the first 255 bytes count.
        let long = format!("{} md5", "x".repeat(252));
        assert!(choose_digest(Some(&long), 31).is_err());
        let long = format!("{} md5", "x".repeat(251));
        assert_eq!(choose_digest(Some(&long), 31), Ok(AuthDigest::Md5));
        let err = choose_digest(Some("foo"), 31).unwrap_err();
        assert_eq!(
            err.daemon_error_line(),
            "@ERROR: your client does not support one of our daemon-auth checksums: \
             sha512 sha256 sha1 md5 md4\n"
        );
        assert_eq!(
            choose_client_digest(Some(OUR_DIGESTS), 32),
            Ok(AuthDigest::Sha512)
        );
    }

    #[test]
    fn names_and_ranks() {
        assert_eq!(AuthDigest::Md4Old.name(), "md4");
        assert_eq!(AuthDigest::from_name("SHA256"), Some(AuthDigest::Sha256));
        assert_eq!(AuthDigest::from_name("md4"), Some(AuthDigest::Md4));
        assert_eq!(AuthDigest::from_name("sha384"), None);
        let names: Vec<_> = OUR_ORDER.iter().map(|d| d.name()).collect();
        assert_eq!(names.join(" "), OUR_DIGESTS);
        assert!(OUR_ORDER.windows(2).all(|w| w[0].rank() < w[1].rank()));
    }

    #[test]
    fn challenge_layout() {
        let random = [7u8; 32];
        let got = make_challenge(AuthDigest::Sha512, &random, "127.0.0.1", 1, 2, 3);
        assert_eq!(got.len(), 86);
        let mut block = [0u8; 32];
        block[..9].copy_from_slice(b"127.0.0.1");
        block[16] = 1;
        block[20] = 2;
        block[24] = 3;
        let mut input = random.to_vec();
        input.extend_from_slice(&block);
        assert_eq!(got, STANDARD_NO_PAD.encode(sha512_of(&input)));
        // Only 16 address bytes are used.
        let v6 = "2001:db8:aaaa:bbbb::1";
        assert_eq!(
            make_challenge(AuthDigest::Md5, &random, v6, -1, 0, 9),
            make_challenge(AuthDigest::Md5, &random, &v6[..16], -1, 0, 9)
        );
        assert_eq!(
            make_challenge(AuthDigest::Md4Old, &random, "", 0, 0, 0).len(),
            22
        );
        assert_eq!(
            make_challenge(AuthDigest::Sha1, &random, "", 0, 0, 0).len(),
            27
        );
        assert_eq!(
            make_challenge(AuthDigest::Sha256, &random, "", 0, 0, 0).len(),
            43
        );
    }

    fn sha512_of(input: &[u8]) -> Vec<u8> {
        Sha512::digest(input).to_vec()
    }

    #[test]
    fn response_lines() {
        assert_eq!(
            decode_response_line(b"rsync_backup abc\r\nnext"),
            Ok(Decoded::Done {
                value: b"rsync_backup abc".to_vec(),
                used: 18
            })
        );
        assert_eq!(decode_response_line(b"user ab"), Ok(Decoded::Needed(1)));
        assert!(decode_response_line(b"us\0er x\n").is_err());
        let mut max = vec![b'a'; MAX_RESPONSE_LINE];
        max.push(b'\n');
        assert!(matches!(
            decode_response_line(&max),
            Ok(Decoded::Done { used, .. }) if used == MAX_RESPONSE_LINE + 1
        ));
        let mut over = vec![b'a'; MAX_RESPONSE_LINE + 1];
        over.push(b'\n');
        assert!(decode_response_line(&over).is_err());
        // Carriage returns do not count towards the limit.
        let mut crs = vec![b'\r'; 10_000];
        crs.extend_from_slice(b"u r\n");
        assert!(
            matches!(decode_response_line(&crs), Ok(Decoded::Done { value, .. }) if value == b"u r")
        );
    }

    proptest! {
        #[test]
        fn response_line_never_panics(b in proptest::collection::vec(any::<u8>(), 0..256)) {
            if let Ok(Decoded::Done { value, used }) = decode_response_line(&b) {
                prop_assert!(value.len() <= MAX_RESPONSE_LINE && used <= b.len());
            }
        }

        #[test]
        fn response_lines_round_trip(user in "[a-z_][a-z0-9_.-]{0,30}", pw in proptest::collection::vec(any::<u8>(), 0..40), ch in "[A-Za-z0-9+/]{22,86}", crlf: bool) {
            // What a client writes after the challenge, as the daemon reads it back.
            for d in OUR_ORDER.into_iter().chain([AuthDigest::Md4Old]) {
                let text = format!("{user} {}", response(d, &pw, &ch));
                let line = format!("{text}{}", if crlf { "\r\n" } else { "\n" });
                prop_assert_eq!(
                    decode_response_line(line.as_bytes()),
                    Ok(Decoded::Done { value: text.into_bytes(), used: line.len() })
                );
            }
        }

        #[test]
        fn digest_list_never_panics(s in ".{0,300}", proto in 20i32..40) {
            let _ = choose_digest(Some(&s), proto);
        }

        #[test]
        fn responses_have_fixed_length(pw in proptest::collection::vec(any::<u8>(), 0..80), ch in "[A-Za-z0-9+/]{0,90}") {
            for d in OUR_ORDER.into_iter().chain([AuthDigest::Md4Old]) {
                prop_assert_eq!(response(d, &pw, &ch).len(), d.encoded_len());
            }
        }
    }
}
