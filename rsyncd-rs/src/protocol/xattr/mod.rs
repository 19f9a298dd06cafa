//! Extended attributes on the wire, sans-IO: the xattr block of a file-list entry
//! (a cache index or a literal list of names with full values up to 32 bytes and MD5
//! digests of longer ones), and the exchange that fetches the long values a receiver
//! lacks (a request of element numbers on the generator's stream, a response of values
//! on the sender's).
//!
//! Every count and length from the peer is checked against rsync 3.5.0's bounds before
//! anything is allocated; older peers send anything up to int32, which the bounds refuse
//! only where 3.5.0 would too.
//!
//! Upstream: xattrs.c, send_xattr(), receive_xattr(), send_xattr_request(),
//! recv_xattr_request(); rsync.h MAX_WIRE_XATTR_* and MAX_XATTR_* (3.5.0).

use std::sync::Arc;

use md5::{Digest as _, Md5};

use super::Decoded;
use super::codec::{get_varint, put_varint};

/// The most elements one list may have (3.5.0: MAX_WIRE_XATTR_COUNT).
pub const MAX_WIRE_XATTR_COUNT: usize = 65536;
/// The longest name, its trailing NUL included (3.5.0: MAX_WIRE_XATTR_NAMELEN).
pub const MAX_WIRE_XATTR_NAMELEN: usize = 4096;
/// The largest value (3.5.0: MAX_XATTR_VALUE_BYTES).
pub const MAX_XATTR_VALUE_BYTES: usize = 128 << 20;
/// The most name and value bytes one list, or one response, may carry (3.5.0:
/// MAX_XATTR_LIST_BYTES).
pub const MAX_XATTR_LIST_BYTES: u64 = 512 << 20;
/// Values up to this length travel whole; longer ones as a digest (MAX_FULL_DATUM).
pub const MAX_FULL_DATUM: usize = 32;
/// Values a response carries: (wire number, value).
pub type XattrValues = Vec<(i32, Vec<u8>)>;

/// The digest of a long value: MD5 at protocol 30+ (upstream's `xattr_sum_len`).
pub const XATTR_DIGEST_LEN: usize = 16;

/// An element's value as the file list carries it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum XattrValue {
    /// The whole value (at most [`MAX_FULL_DATUM`] bytes in a file list; any length
    /// once fetched).
    Full(Vec<u8>),
    /// A long value: its real length and the MD5 of its bytes (XSTATE_ABBREV).
    Abbrev {
        len: u32,
        digest: [u8; XATTR_DIGEST_LEN],
    },
}

/// One name and value. The name is kept without the trailing NUL the wire adds.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct XattrItem {
    pub name: Vec<u8>,
    pub value: XattrValue,
}

impl XattrItem {
    /// The element a sender lists for `value`: whole when short, else abbreviated.
    /// Upstream: xattrs.c, rsync_xal_get().
    pub fn new(name: Vec<u8>, value: &[u8]) -> XattrItem {
        let value = if value.len() <= MAX_FULL_DATUM {
            XattrValue::Full(value.to_vec())
        } else {
            XattrValue::Abbrev {
                len: u32::try_from(value.len()).unwrap_or(u32::MAX),
                digest: xattr_digest(value),
            }
        };
        XattrItem { name, value }
    }

    /// The real length of the value.
    pub fn datum_len(&self) -> usize {
        match &self.value {
            XattrValue::Full(v) => v.len(),
            XattrValue::Abbrev { len, .. } => *len as usize,
        }
    }

    /// Whether `local` is this element's value (equal bytes, or length and digest of an
    /// abbreviated one). Upstream: xattrs.c, xattr_diff().
    pub fn value_matches(&self, local: &[u8]) -> bool {
        match &self.value {
            XattrValue::Full(v) => v.as_slice() == local,
            XattrValue::Abbrev { len, digest } => {
                *len as usize == local.len() && xattr_digest(local) == *digest
            }
        }
    }

    /// Whether only a digest travelled.
    pub fn is_abbrev(&self) -> bool {
        matches!(self.value, XattrValue::Abbrev { .. })
    }
}

/// One entry's list in wire order; an element's number (`num`, used by the exchange)
/// is its position plus one.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct XattrList(pub Vec<XattrItem>);

/// The digest of a long value (MD5; the negotiated file checksum is not used).
pub fn xattr_digest(value: &[u8]) -> [u8; XATTR_DIGEST_LEN] {
    Md5::digest(value).into()
}

/// What an entry's xattr block says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum XattrBlock {
    /// The list sent earlier under this index (0-based).
    Cached(usize),
    /// A new list; it takes the next index of the session's table.
    Literal(XattrList),
}

/// Why xattr bytes were refused. The texts follow rsync 3.5.0's where it has one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum XattrError {
    #[error("malformed varint in xattr data")]
    Varint,
    #[error("receive_xattr: xa index {got} out of range (table holds {len})")]
    IndexOutOfRange { got: i64, len: usize },
    #[error("wire value xattr count out of range: {0} (max {MAX_WIRE_XATTR_COUNT})")]
    Count(i64),
    #[error("wire size xattr name_len out of range: {0} (1..{MAX_WIRE_XATTR_NAMELEN})")]
    NameLen(i64),
    #[error("wire size xattr datum_len out of range: {0}")]
    DatumLen(i64),
    #[error("xattr datum_len exceeds per-value limit [{0}]")]
    ValueTooLarge(i64),
    #[error("xattr list exceeds per-file limit [{0}]")]
    ListTooLarge(u64),
    #[error("Invalid xattr name received (missing trailing \\0).")]
    MissingNul,
    #[error("Invalid xattr name received (empty, or an inner \\0).")]
    BadName,
    #[error("xattr rel_pos accumulation overflow")]
    RelPosOverflow,
    #[error("xattr request lists more than {MAX_WIRE_XATTR_COUNT} elements")]
    TooManyRequested,
}

/// A cursor that turns "not enough bytes" into a `Needed` answer.
struct Cur<'a> {
    buf: &'a [u8],
    pos: usize,
}

enum Stop {
    Need(usize),
    Bad(XattrError),
}

impl From<XattrError> for Stop {
    fn from(e: XattrError) -> Stop {
        Stop::Bad(e)
    }
}

impl<'a> Cur<'a> {
    fn rest(&self) -> &'a [u8] {
        self.buf.get(self.pos..).unwrap_or_default()
    }

    fn varint(&mut self) -> Result<i32, Stop> {
        match get_varint(self.rest()).map_err(|_| Stop::Bad(XattrError::Varint))? {
            Decoded::Done { value, used } => {
                self.pos += used;
                Ok(value)
            }
            Decoded::Needed(n) => Err(Stop::Need(n)),
        }
    }

    fn bytes(&mut self, n: usize) -> Result<&'a [u8], Stop> {
        let rest = self.rest();
        match rest.get(..n) {
            Some(b) => {
                self.pos += n;
                Ok(b)
            }
            None => Err(Stop::Need(n - rest.len())),
        }
    }
}

fn finish<T>(r: Result<T, Stop>, used: usize) -> Result<Decoded<T>, XattrError> {
    match r {
        Ok(value) => Ok(Decoded::Done { value, used }),
        Err(Stop::Need(n)) => Ok(Decoded::Needed(n.max(1))),
        Err(Stop::Bad(e)) => Err(e),
    }
}

/// Decodes one entry's xattr block; `cached` is how many lists the session's table
/// holds. Nothing is allocated for a length or count before it is checked.
/// Upstream: xattrs.c, receive_xattr().
pub fn decode_xattr_block(buf: &[u8], cached: usize) -> Result<Decoded<XattrBlock>, XattrError> {
    let mut cur = Cur { buf, pos: 0 };
    let r = block(&mut cur, cached);
    finish(r, cur.pos)
}

fn block(cur: &mut Cur<'_>, cached: usize) -> Result<XattrBlock, Stop> {
    let ndx = cur.varint()?;
    if ndx != 0 {
        let got = i64::from(ndx);
        return match usize::try_from(ndx) {
            Ok(n) if n <= cached => Ok(XattrBlock::Cached(n - 1)),
            _ => Err(XattrError::IndexOutOfRange { got, len: cached }.into()),
        };
    }
    let count = cur.varint()?;
    let count = usize::try_from(count)
        .ok()
        .filter(|&c| c <= MAX_WIRE_XATTR_COUNT)
        .ok_or(XattrError::Count(i64::from(count)))?;
    // Capacity grows with what arrives, never with what a count claims.
    let mut items = Vec::with_capacity(count.min(64));
    let mut total: u64 = 0;
    for _ in 0..count {
        let name_len = cur.varint()?;
        let name_len = usize::try_from(name_len)
            .ok()
            .filter(|&n| (1..=MAX_WIRE_XATTR_NAMELEN).contains(&n))
            .ok_or(XattrError::NameLen(i64::from(name_len)))?;
        let datum_len = cur.varint()?;
        let datum =
            usize::try_from(datum_len).map_err(|_| XattrError::DatumLen(i64::from(datum_len)))?;
        if datum > MAX_XATTR_VALUE_BYTES {
            return Err(XattrError::ValueTooLarge(i64::from(datum_len)).into());
        }
        total += (name_len + datum) as u64;
        if total > MAX_XATTR_LIST_BYTES {
            return Err(XattrError::ListTooLarge(total).into());
        }
        let raw = cur.bytes(name_len)?;
        let Some((&0, name)) = raw.split_last() else {
            return Err(XattrError::MissingNul.into());
        };
        if name.is_empty() || name.contains(&0) {
            return Err(XattrError::BadName.into());
        }
        let value = if datum <= MAX_FULL_DATUM {
            XattrValue::Full(cur.bytes(datum)?.to_vec())
        } else {
            let mut digest = [0u8; XATTR_DIGEST_LEN];
            digest.copy_from_slice(cur.bytes(XATTR_DIGEST_LEN)?);
            XattrValue::Abbrev {
                len: datum as u32,
                digest,
            }
        };
        items.push(XattrItem {
            name: name.to_vec(),
            value,
        });
    }
    Ok(XattrBlock::Literal(XattrList(items)))
}

/// Appends an xattr block: `cached` is the 0-based index of an identical list sent
/// before, else the list goes literally. Upstream: xattrs.c, send_xattr().
pub fn encode_xattr_block(cached: Option<usize>, list: &XattrList, out: &mut Vec<u8>) {
    if let Some(ndx) = cached {
        put_varint(out, i32::try_from(ndx + 1).unwrap_or(i32::MAX));
        return;
    }
    put_varint(out, 0);
    put_varint(out, list.0.len() as i32);
    for item in &list.0 {
        put_varint(out, (item.name.len() + 1) as i32);
        put_varint(out, item.datum_len() as i32);
        out.extend_from_slice(&item.name);
        out.push(0);
        match &item.value {
            XattrValue::Full(v) => out.extend_from_slice(v),
            XattrValue::Abbrev { digest, .. } => out.extend_from_slice(digest),
        }
    }
}

/// The sender's table of lists already sent: an identical list goes as its index.
#[derive(Debug, Clone, Default)]
pub struct XattrSendCache {
    seen: std::collections::HashMap<Arc<XattrList>, usize>,
}

impl XattrSendCache {
    /// The index of an identical earlier list, or `None` after recording `list` under
    /// the next index (it must then be sent literally).
    pub fn lookup_or_insert(&mut self, list: &Arc<XattrList>) -> Option<usize> {
        if let Some(&n) = self.seen.get(list) {
            return Some(n);
        }
        let n = self.seen.len();
        self.seen.insert(Arc::clone(list), n);
        None
    }
}

/// Appends a request for the values of elements `nums` (wire numbers, in the order the
/// receiver lists them), ended by 0. Upstream: xattrs.c, send_xattr_request() as the
/// generator writes it.
pub fn encode_xattr_request(nums: &[i32], out: &mut Vec<u8>) {
    let mut prev = 0i32;
    for &n in nums {
        put_varint(out, n.wrapping_sub(prev));
        prev = n;
    }
    out.push(0);
}

/// Decodes a request: the element numbers it names, deltas accumulated (they may be
/// negative), up to the closing 0. Upstream: xattrs.c, recv_xattr_request().
pub fn decode_xattr_request(buf: &[u8]) -> Result<Decoded<Vec<i32>>, XattrError> {
    let mut cur = Cur { buf, pos: 0 };
    let r = request(&mut cur);
    finish(r, cur.pos)
}

fn request(cur: &mut Cur<'_>) -> Result<Vec<i32>, Stop> {
    let mut nums = Vec::new();
    let mut num = 0i32;
    loop {
        let delta = cur.varint()?;
        if delta == 0 {
            return Ok(nums);
        }
        num = num.checked_add(delta).ok_or(XattrError::RelPosOverflow)?;
        if nums.len() >= MAX_WIRE_XATTR_COUNT {
            return Err(XattrError::TooManyRequested.into());
        }
        nums.push(num);
    }
}

/// Appends a response: each requested element's number (ascending) and its value as
/// re-read, ended by 0. Upstream: xattrs.c, send_xattr_request() as the sender writes
/// it.
pub fn encode_xattr_response(values: &[(i32, Vec<u8>)], out: &mut Vec<u8>) {
    let mut prev = 0i32;
    for (n, v) in values {
        put_varint(out, n.wrapping_sub(prev));
        prev = *n;
        put_varint(out, v.len() as i32);
        out.extend_from_slice(v);
    }
    out.push(0);
}

/// Decodes a response: (element number, value) pairs. Each value is checked against
/// [`MAX_XATTR_VALUE_BYTES`] and the whole against [`MAX_XATTR_LIST_BYTES`] before it
/// is read. Upstream: xattrs.c, recv_xattr_request() on the receiver.
pub fn decode_xattr_response(buf: &[u8]) -> Result<Decoded<XattrValues>, XattrError> {
    let mut cur = Cur { buf, pos: 0 };
    let r = response(&mut cur);
    finish(r, cur.pos)
}

fn response(cur: &mut Cur<'_>) -> Result<XattrValues, Stop> {
    let mut out = Vec::new();
    let mut num = 0i32;
    let mut total = 0u64;
    loop {
        let delta = cur.varint()?;
        if delta == 0 {
            return Ok(out);
        }
        num = num.checked_add(delta).ok_or(XattrError::RelPosOverflow)?;
        if out.len() >= MAX_WIRE_XATTR_COUNT {
            return Err(XattrError::TooManyRequested.into());
        }
        let len = cur.varint()?;
        let n = usize::try_from(len).map_err(|_| XattrError::DatumLen(i64::from(len)))?;
        if n > MAX_XATTR_VALUE_BYTES {
            return Err(XattrError::ValueTooLarge(i64::from(len)).into());
        }
        total += n as u64;
        if total > MAX_XATTR_LIST_BYTES {
            return Err(XattrError::ListTooLarge(total).into());
        }
        out.push((num, cur.bytes(n)?.to_vec()));
    }
}

#[cfg(test)]
mod tests;
