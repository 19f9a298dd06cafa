//! The checksums of the transfer: the rolling block sum (sum1), the strong block sum (sum2)
//! and the whole-file sum, with the seed rules of each digest and protocol
//! (upstream: checksum.c, lib/mdfour.c).
//!
//! Which digest a session uses is decided once, into a [`ChecksumSpec`]; everything below
//! takes that value instead of asking about protocol versions again.

use md4::Md4;
use md5::{Digest as _, Md5};
use sha1::Sha1;
use xxhash_rust::xxh3::{self, Xxh3Default};
use xxhash_rust::xxh64::{self, Xxh64};

/// The longest digest of any transfer checksum (SHA-1, 20 bytes).
/// Upstream: rsync.h, MAX_DIGEST_LEN.
pub const MAX_DIGEST_LEN: usize = 20;

/// The rolling checksum of a block: bytes are taken as **signed** chars and CHAR_OFFSET is 0;
/// `s1` is their sum, `s2` the sum of the running `s1`, and the result `s1 & 0xffff | s2 << 16`.
/// Upstream: checksum.c, get_checksum1().
pub fn rolling_checksum(block: &[u8]) -> u32 {
    Rolling::new(block).value()
}

/// The byte as upstream's `schar`, widened with sign extension into mod-2^32 arithmetic.
fn signed(b: u8) -> u32 {
    i32::from(b as i8) as u32
}

/// A rolling checksum over a window that slides one byte at a time, as the sender's search
/// does. Upstream: match.c, hash_search() (its inline s1/s2 updates).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rolling {
    s1: u32,
    s2: u32,
    len: u32,
}

impl Rolling {
    /// Starts with the sums of `window` (at most 2^32 - 1 bytes; longer windows wrap the
    /// length factor, which never happens with rsync's block sizes).
    pub fn new(window: &[u8]) -> Self {
        let (mut s1, mut s2) = (0u32, 0u32);
        for &b in window {
            s1 = s1.wrapping_add(signed(b));
            s2 = s2.wrapping_add(s1);
        }
        Rolling {
            s1,
            s2,
            len: window.len() as u32,
        }
    }

    /// Slides the window by one byte: `out` leaves at the front, `in_` enters at the back.
    pub fn roll(&mut self, out: u8, in_: u8) {
        let out = signed(out);
        self.s1 = self.s1.wrapping_sub(out).wrapping_add(signed(in_));
        self.s2 = self
            .s2
            .wrapping_sub(self.len.wrapping_mul(out))
            .wrapping_add(self.s1);
    }

    /// Drops `out` from the front without adding a byte, shrinking the window; the sender
    /// does this once the window reaches the end of the file. `out` must be the window's
    /// first byte and the window must not be empty.
    pub fn shrink(&mut self, out: u8) {
        let out = signed(out);
        self.s1 = self.s1.wrapping_sub(out);
        self.s2 = self.s2.wrapping_sub(self.len.wrapping_mul(out));
        self.len = self.len.saturating_sub(1);
    }

    /// The window's length in bytes.
    pub fn window_len(&self) -> usize {
        self.len as usize
    }

    /// The checksum of the current window, as [`rolling_checksum`] would compute it.
    pub fn value(&self) -> u32 {
        (self.s1 & 0xffff) | (self.s2 << 16)
    }
}

/// A transfer digest. Upstream: rsync.h, the CSUM_* values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChecksumKind {
    /// MD4 as protocols 27–29 use it without negotiation (CSUM_MD4_OLD): the seed is appended
    /// to each block and prepended (always, even 0) to the whole-file sum.
    Md4Old,
    /// MD4 chosen by name ("md4"): seed appended to blocks as rsync's built-in MD4 does,
    /// whole-file sum unseeded.
    Md4,
    /// MD5: the seed's place in block sums depends on CF_CHKSUM_SEED_FIX.
    Md5,
    /// XXH64, seeded for blocks, 8 bytes little-endian.
    Xxh64,
    /// XXH3 64-bit, seeded for blocks, 8 bytes little-endian.
    Xxh3,
    /// XXH3 128-bit, seeded for blocks, low then high half, each little-endian.
    Xxh128,
    /// SHA-1, seed prepended to blocks.
    Sha1,
    /// No checksum ("none"): forces whole-file transfers; the whole-file sum is one 0 byte.
    None,
}

impl ChecksumKind {
    /// Maps a negotiated or `--checksum-choice` name (any case; "xxhash" is xxh64) to a kind.
    /// "md4" is always [`ChecksumKind::Md4`]: the old variant is only ever implied.
    /// Upstream: checksum.c, parse_csum_name(); compat.c, get_nni_by_name().
    pub fn from_name(name: &str) -> Option<Self> {
        const NAMES: [(&str, ChecksumKind); 8] = [
            ("xxh128", ChecksumKind::Xxh128),
            ("xxh3", ChecksumKind::Xxh3),
            ("xxh64", ChecksumKind::Xxh64),
            ("xxhash", ChecksumKind::Xxh64),
            ("md5", ChecksumKind::Md5),
            ("md4", ChecksumKind::Md4),
            ("sha1", ChecksumKind::Sha1),
            ("none", ChecksumKind::None),
        ];
        NAMES
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|&(_, kind)| kind)
    }

    /// The digest used when no name was negotiated or chosen (or the choice was "auto"):
    /// MD5 from protocol 30 on, the old MD4 before. Protocols below 27 (whose MD4 was
    /// computed incorrectly) are not supported and get the protocol-27 form.
    /// Upstream: checksum.c, parse_csum_name() with a NULL name.
    pub fn implied(protocol: i32) -> Self {
        if protocol >= 30 {
            ChecksumKind::Md5
        } else {
            ChecksumKind::Md4Old
        }
    }

    /// The name as it appears in negotiation and `--checksum-choice`.
    pub fn name(self) -> &'static str {
        match self {
            ChecksumKind::Md4Old | ChecksumKind::Md4 => "md4",
            ChecksumKind::Md5 => "md5",
            ChecksumKind::Xxh64 => "xxh64",
            ChecksumKind::Xxh3 => "xxh3",
            ChecksumKind::Xxh128 => "xxh128",
            ChecksumKind::Sha1 => "sha1",
            ChecksumKind::None => "none",
        }
    }

    /// Length of the full digest: also the length of the whole-file sum on the wire
    /// (`xfer_sum_len`). Upstream: checksum.c, csum_len_for_type().
    pub fn digest_len(self) -> usize {
        match self {
            ChecksumKind::Md4Old | ChecksumKind::Md4 | ChecksumKind::Md5 => 16,
            ChecksumKind::Xxh64 | ChecksumKind::Xxh3 => 8,
            ChecksumKind::Xxh128 => 16,
            ChecksumKind::Sha1 => 20,
            ChecksumKind::None => 1,
        }
    }
}

/// How this session computes a checksum: the digest, the seed and the seed's placement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChecksumSpec {
    /// The digest.
    pub kind: ChecksumKind,
    /// The checksum seed both sides agreed on (0: no seed for MD4/MD5/SHA-1).
    pub seed: i32,
    /// Compat flag CF_CHKSUM_SEED_FIX: MD5 block sums put the seed first, not last.
    pub seed_fix: bool,
    /// The negotiated protocol version.
    pub protocol: i32,
}

impl ChecksumSpec {
    /// The transfer checksum of a session from the negotiated name or explicit
    /// `--checksum-choice` (`None` or "auto" when there was neither), or `None` when the
    /// name is unknown. `seed_fix` is whether CF_CHKSUM_SEED_FIX is in the compat flags.
    /// Upstream: checksum.c, parse_checksum_choice() (xfer_sum_nni).
    pub fn for_transfer(name: Option<&str>, seed: i32, protocol: i32, seed_fix: bool) -> Option<Self> {
        let kind = match name {
            None => ChecksumKind::implied(protocol),
            Some(n) if n.eq_ignore_ascii_case("auto") => ChecksumKind::implied(protocol),
            Some(n) => ChecksumKind::from_name(n)?,
        };
        Some(ChecksumSpec {
            kind,
            seed,
            seed_fix,
            protocol,
        })
    }

    /// Length of the full digest of this spec's kind.
    pub fn digest_len(&self) -> usize {
        self.kind.digest_len()
    }
}

/// The spec for `--checksum` file-list sums: the file checksum name (negotiated, or the part
/// after the comma of `--checksum-choice=X,Y`; `None`/"auto" for the implied one), never
/// seeded. Below protocol 30 the implied MD4 is plain MD4 of the file, so it maps to
/// [`ChecksumKind::Md4`] with seed 0. Returns `None` for an unknown name.
/// Upstream: checksum.c, file_checksum() with file_sum_nni.
pub fn file_checksum_spec(name: Option<&str>, protocol: i32) -> Option<ChecksumSpec> {
    let mut spec = ChecksumSpec::for_transfer(name, 0, protocol, true)?;
    if spec.kind == ChecksumKind::Md4Old {
        spec.kind = ChecksumKind::Md4;
    }
    Some(spec)
}

/// A digest value: up to [`MAX_DIGEST_LEN`] bytes without allocating. Dereferences to the
/// digest's bytes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Digest {
    bytes: [u8; MAX_DIGEST_LEN],
    len: u8,
}

impl Digest {
    fn from_slice(b: &[u8]) -> Self {
        let mut bytes = [0u8; MAX_DIGEST_LEN];
        let len = b.len().min(MAX_DIGEST_LEN);
        bytes[..len].copy_from_slice(&b[..len]);
        Digest {
            bytes,
            len: len as u8,
        }
    }

    fn from_u64(v: u64) -> Self {
        Self::from_slice(&v.to_le_bytes())
    }

    /// XXH3-128 as upstream writes it: low 64 bits little-endian, then the high 64 bits.
    fn from_u128(v: u128) -> Self {
        // A u128 in little-endian order is exactly low64 LE followed by high64 LE.
        Self::from_slice(&v.to_le_bytes())
    }
}

impl std::ops::Deref for Digest {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

impl AsRef<[u8]> for Digest {
    fn as_ref(&self) -> &[u8] {
        self
    }
}

impl std::fmt::Debug for Digest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Digest(")?;
        for b in self.iter() {
            write!(f, "{b:02x}")?;
        }
        write!(f, ")")
    }
}

/// The strong checksum of one block, full length (callers send the first `s2length` bytes).
///
/// Seed placement (`s` = the seed as 4 little-endian bytes, only when the seed is not 0):
/// MD4 (both kinds) `block ‖ s`; MD5 `s ‖ block` with CF_CHKSUM_SEED_FIX, else `block ‖ s`;
/// SHA-1 `s ‖ block`. The xxhash kinds always take the seed as their own seed parameter,
/// sign-extended to 64 bits as C converts an `int`. "none" gives one 0 byte (upstream never
/// computes block sums for it: it forces whole-file transfers).
/// Upstream: checksum.c, get_checksum2().
pub fn block_sum(spec: &ChecksumSpec, block: &[u8]) -> Digest {
    let seed = (spec.seed != 0).then(|| spec.seed.to_le_bytes());
    let seed = seed.as_ref().map_or(&[][..], |s| &s[..]);
    let xxh_seed = i64::from(spec.seed) as u64;
    match spec.kind {
        ChecksumKind::Md4Old | ChecksumKind::Md4 => digest_of::<Md4>(&[block, seed]),
        ChecksumKind::Md5 if spec.seed_fix => digest_of::<Md5>(&[seed, block]),
        ChecksumKind::Md5 => digest_of::<Md5>(&[block, seed]),
        ChecksumKind::Sha1 => digest_of::<Sha1>(&[seed, block]),
        ChecksumKind::Xxh64 => Digest::from_u64(xxh64::xxh64(block, xxh_seed)),
        ChecksumKind::Xxh3 => Digest::from_u64(xxh3::xxh3_64_with_seed(block, xxh_seed)),
        ChecksumKind::Xxh128 => Digest::from_u128(xxh3::xxh3_128_with_seed(block, xxh_seed)),
        ChecksumKind::None => Digest::from_slice(&[0]),
    }
}

/// One-shot digest of the concatenation of `parts`.
fn digest_of<D: md5::Digest>(parts: &[&[u8]]) -> Digest {
    let mut d = D::new();
    for p in parts {
        d.update(p);
    }
    Digest::from_slice(&d.finalize())
}

/// An incremental whole-file checksum, fed with every byte of the file in order (by the
/// sender as it reads, by the receiver as it writes). Never seeded except
/// [`ChecksumKind::Md4Old`], which starts with the seed's 4 bytes even when it is 0.
/// Upstream: checksum.c, sum_init(), sum_update(), sum_end().
pub struct FileSum {
    state: FileSumState,
}

enum FileSumState {
    Md4(Md4),
    Md5(Md5),
    Sha1(Sha1),
    Xxh64(Xxh64),
    // Boxed: the XXH3 state is several hundred bytes, the others a few dozen.
    Xxh3(Box<Xxh3Default>),
    Xxh128(Box<Xxh3Default>),
    None,
}

impl FileSum {
    /// Starts a whole-file sum for `spec`.
    pub fn new(spec: &ChecksumSpec) -> Self {
        let state = match spec.kind {
            ChecksumKind::Md4Old => {
                let mut m = Md4::new();
                m.update(spec.seed.to_le_bytes());
                FileSumState::Md4(m)
            }
            ChecksumKind::Md4 => FileSumState::Md4(Md4::new()),
            ChecksumKind::Md5 => FileSumState::Md5(Md5::new()),
            ChecksumKind::Sha1 => FileSumState::Sha1(Sha1::new()),
            ChecksumKind::Xxh64 => FileSumState::Xxh64(Xxh64::new(0)),
            ChecksumKind::Xxh3 => FileSumState::Xxh3(Box::default()),
            ChecksumKind::Xxh128 => FileSumState::Xxh128(Box::default()),
            ChecksumKind::None => FileSumState::None,
        };
        FileSum { state }
    }

    /// Feeds the next bytes of the file.
    pub fn update(&mut self, data: &[u8]) {
        match &mut self.state {
            FileSumState::Md4(m) => m.update(data),
            FileSumState::Md5(m) => m.update(data),
            FileSumState::Sha1(m) => m.update(data),
            FileSumState::Xxh64(x) => x.update(data),
            FileSumState::Xxh3(x) | FileSumState::Xxh128(x) => x.update(data),
            FileSumState::None => {}
        }
    }

    /// The digest, full length (`xfer_sum_len` bytes; one 0 byte for "none").
    pub fn finish(self) -> Digest {
        match self.state {
            FileSumState::Md4(m) => Digest::from_slice(&m.finalize()),
            FileSumState::Md5(m) => Digest::from_slice(&m.finalize()),
            FileSumState::Sha1(m) => Digest::from_slice(&m.finalize()),
            FileSumState::Xxh64(x) => Digest::from_u64(x.digest()),
            FileSumState::Xxh3(x) => Digest::from_u64(x.digest()),
            FileSumState::Xxh128(x) => Digest::from_u128(x.digest128()),
            FileSumState::None => Digest::from_slice(&[0]),
        }
    }
}

impl std::fmt::Debug for FileSum {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.state {
            FileSumState::Md4(_) => "md4",
            FileSumState::Md5(_) => "md5",
            FileSumState::Sha1(_) => "sha1",
            FileSumState::Xxh64(_) => "xxh64",
            FileSumState::Xxh3(_) => "xxh3",
            FileSumState::Xxh128(_) => "xxh128",
            FileSumState::None => "none",
        };
        f.debug_struct("FileSum").field("kind", &kind).finish()
    }
}
