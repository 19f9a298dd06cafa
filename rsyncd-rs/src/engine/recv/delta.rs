//! Rebuilding one file from the sender's token stream and the basis file, checking the
//! whole-file checksum (upstream: receiver.c receive_data()).

use std::fs::File;
use std::io::{self, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;

use crate::engine::mux::{MuxReader, ReadError};
use crate::protocol::checksum::{ChecksumSpec, FileSum};
use crate::protocol::sums::SumHead;
use crate::protocol::token::{TokenDecoder, TokenEvent};

/// Where rebuilt bytes go: a buffered writer that can leave holes (`--sparse`) and, for
/// `--inplace`, skip blocks that are already in place.
pub(super) struct Output<'a> {
    file: &'a mut File,
    buf: Vec<u8>,
    /// The offset the next byte lands at.
    pos: u64,
    /// Where the file's own descriptor is (after flushed writes and seeks).
    file_pos: u64,
    sparse: bool,
}

/// How much is gathered before a write.
const WRITE_BUF: usize = 256 * 1024;

impl<'a> Output<'a> {
    pub fn new(file: &'a mut File, sparse: bool) -> Output<'a> {
        Output {
            file,
            buf: Vec::with_capacity(WRITE_BUF),
            pos: 0,
            file_pos: 0,
            sparse,
        }
    }

    /// The offset the next byte lands at: how much of the file was written so far.
    pub fn pos(&self) -> u64 {
        self.pos
    }

    pub fn write(&mut self, data: &[u8]) -> io::Result<()> {
        self.buf.extend_from_slice(data);
        self.pos += data.len() as u64;
        if self.buf.len() >= WRITE_BUF {
            self.flush()?;
        }
        Ok(())
    }

    /// Advances without writing (an in-place block already holds these bytes).
    pub fn skip(&mut self, n: u64) -> io::Result<()> {
        self.flush()?;
        self.pos += n;
        Ok(())
    }

    pub fn flush(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let start = self.pos - self.buf.len() as u64;
        if start != self.file_pos {
            self.file.seek(SeekFrom::Start(start))?;
            self.file_pos = start;
        }
        if self.sparse {
            write_sparse(self.file, &self.buf, &mut self.file_pos)?;
        } else {
            self.file.write_all(&self.buf)?;
            self.file_pos += self.buf.len() as u64;
        }
        self.buf.clear();
        Ok(())
    }

    /// Flushes and sets the file's length to what was written (holes at the end and an
    /// in-place file that shrank need it). Upstream: receiver.c, the ftruncate at the end.
    pub fn finish(mut self, truncate: bool) -> io::Result<u64> {
        self.flush()?;
        if truncate || self.sparse {
            self.file.set_len(self.pos)?;
        }
        Ok(self.pos)
    }
}

/// Writes `data`, turning runs of zeros into holes. Upstream: fileio.c, write_sparse().
/// A run of zero chunks is skipped with one seek.
fn write_sparse(file: &mut File, data: &[u8], pos: &mut u64) -> io::Result<()> {
    const CHUNK: usize = 1024;
    let mut hole = 0i64;
    for chunk in data.chunks(CHUNK) {
        if chunk.iter().all(|&b| b == 0) {
            hole += chunk.len() as i64;
        } else {
            if hole > 0 {
                file.seek(SeekFrom::Current(hole))?;
                hole = 0;
            }
            file.write_all(chunk)?;
        }
        *pos += chunk.len() as u64;
    }
    if hole > 0 {
        file.seek(SeekFrom::Current(hole))?;
    }
    Ok(())
}

/// What receiving one file's data produced.
#[derive(Debug, Default)]
pub(super) struct Received {
    /// The whole-file checksum matched.
    pub verified: bool,
    /// The sender's whole-file checksum.
    pub sum: Vec<u8>,
    /// `--delay-updates`: staged in the partial dir, put in place at the end.
    pub delayed: bool,
    pub literal_bytes: u64,
    pub matched_bytes: u64,
    pub length: u64,
}

/// Why a file's data could not be received.
#[derive(Debug, thiserror::Error)]
pub(super) enum DeltaError {
    #[error("{0}")]
    Read(#[from] ReadError),
    #[error("write failed: {0}")]
    Write(io::Error),
    #[error("invalid block index {0} (count {1})")]
    BadBlock(u32, i32),
    #[error("read of the basis failed: {0}")]
    Basis(io::Error),
}

/// How a file is rebuilt.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Rebuild {
    /// Writing into the destination itself: blocks already in place are skipped.
    pub inplace: bool,
    /// `--append`: this many leading bytes of the basis stay as they are and the sender's
    /// data follows them.
    pub keep: u64,
    /// `--append-verify`: the kept bytes count towards the whole-file checksum.
    pub verify_kept: bool,
}

/// The length `--append` keeps: what the sum head covered (upstream: receiver.c,
/// receive_data(), `sum.flength` recomputed from count, blength and remainder).
pub(super) fn append_len(head: &SumHead) -> u64 {
    let blocks = u64::try_from(head.count).unwrap_or(0) * u64::try_from(head.blength).unwrap_or(0);
    if head.remainder != 0 {
        blocks - u64::try_from(head.blength - head.remainder).unwrap_or(0)
    } else {
        blocks
    }
}

/// Feeds the first `len` bytes of `basis` to the whole-file checksum.
fn sum_prefix(basis: &File, len: u64, sum: &mut FileSum) -> io::Result<()> {
    let mut buf = vec![0u8; 256 * 1024];
    let mut at = 0u64;
    while at < len {
        let n = usize::try_from((len - at).min(buf.len() as u64)).unwrap_or(buf.len());
        read_full_at(basis, &mut buf[..n], at)?;
        sum.update(&buf[..n]);
        at += n as u64;
    }
    Ok(())
}

/// Reads the token stream of one file into `out`, copying matched blocks from `basis`, and
/// compares the checksum that follows. In place, a block whose basis offset is where it
/// would be written is skipped. Upstream: receiver.c, receive_data().
#[allow(clippy::too_many_arguments)]
pub(super) fn receive_data(
    r: &mut MuxReader,
    dec: &mut TokenDecoder,
    head: &SumHead,
    spec: &ChecksumSpec,
    basis: Option<&File>,
    out: &mut Output<'_>,
    how: Rebuild,
) -> Result<Received, DeltaError> {
    let mut sum = FileSum::new(spec);
    let mut got = Received::default();
    if how.keep > 0 {
        if how.verify_kept {
            let basis = basis
                .ok_or_else(|| DeltaError::Basis(io::Error::other("no basis file to append to")))?;
            sum_prefix(basis, how.keep, &mut sum).map_err(DeltaError::Basis)?;
        }
        out.skip(how.keep).map_err(DeltaError::Write)?;
    }
    let inplace = how.inplace;
    // Sized when a block is first matched (never beyond the sum head's block length,
    // which decode_sum_head() bounds as upstream does).
    let mut block: Vec<u8> = Vec::new();
    loop {
        let step = next_token(r, dec, |ev| match ev {
            TokenEvent::Literal(data) => {
                sum.update(data);
                got.literal_bytes += data.len() as u64;
                out.write(data)
                    .map(|()| Step::Continue)
                    .map_err(DeltaError::Write)
            }
            TokenEvent::Block(i) => Ok(Step::Block(i)),
            TokenEvent::End => Ok(Step::End),
        })?;
        match step {
            Step::Continue => {}
            Step::End => break,
            Step::Block(i) => {
                let len = head
                    .block_len(i as usize)
                    .ok_or(DeltaError::BadBlock(i, head.count))?;
                let offset = head.block_offset(i as usize);
                if block.len() < len {
                    block.resize(len, 0);
                }
                let data = &mut block[..len];
                match basis {
                    Some(f) => read_full_at(f, data, offset).map_err(DeltaError::Basis)?,
                    // No basis but a block reference: zeros, and the checksum will fail.
                    None => data.fill(0),
                }
                dec.matched_block_data(data).map_err(wire_err)?;
                sum.update(data);
                if inplace && offset == out.pos {
                    out.skip(len as u64).map_err(DeltaError::Write)?;
                } else {
                    out.write(data).map_err(DeltaError::Write)?;
                }
                got.matched_bytes += len as u64;
            }
        }
    }
    let want = sum.finish();
    let theirs = r.read_exact(want.len())?;
    got.verified = theirs.as_slice() == &*want;
    got.sum = theirs;
    got.length = got.literal_bytes + got.matched_bytes;
    Ok(got)
}

/// Reads exactly `buf.len()` bytes at `offset`; a basis that shrank reads as zeros (as
/// upstream's map_ptr() does), which the checksum then catches.
fn read_full_at(f: &File, buf: &mut [u8], offset: u64) -> io::Result<()> {
    let mut done = 0;
    while done < buf.len() {
        match f.read_at(&mut buf[done..], offset + done as u64) {
            Ok(0) => {
                buf[done..].fill(0);
                return Ok(());
            }
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// What to do after one token event.
enum Step {
    Continue,
    Block(u32),
    End,
}

fn wire_err(e: crate::protocol::WireError) -> DeltaError {
    DeltaError::Read(crate::engine::conn::ConnError::Decode(e))
}

/// Decodes the next token event from the data stream and hands it to `f` while its bytes
/// are still borrowed from the decoder or the buffer.
fn next_token(
    r: &mut MuxReader,
    dec: &mut TokenDecoder,
    mut f: impl FnMut(TokenEvent<'_>) -> Result<Step, DeltaError>,
) -> Result<Step, DeltaError> {
    loop {
        match dec.decode(r.buffered()).map_err(wire_err)? {
            crate::protocol::Decoded::Done { value, used } => {
                let step = f(value)?;
                r.consume(used);
                return Ok(step);
            }
            crate::protocol::Decoded::Needed(_) => r.fill()?,
        }
    }
}

/// Reads and discards one file's data (when it cannot be written anywhere).
/// Upstream: receiver.c, discard_receive_data().
pub(super) fn discard_data(
    r: &mut MuxReader,
    dec: &mut TokenDecoder,
    head: &SumHead,
    spec: &ChecksumSpec,
) -> Result<(), DeltaError> {
    let mut block: Vec<u8> = Vec::new();
    loop {
        let step = next_token(r, dec, |ev| {
            Ok(match ev {
                TokenEvent::Literal(_) => Step::Continue,
                TokenEvent::Block(i) => Step::Block(i),
                TokenEvent::End => Step::End,
            })
        })?;
        match step {
            Step::Continue => {}
            Step::End => break,
            Step::Block(i) => {
                let len = head
                    .block_len(i as usize)
                    .ok_or(DeltaError::BadBlock(i, head.count))?;
                if block.len() < len {
                    block.resize(len, 0);
                }
                dec.matched_block_data(&block[..len]).map_err(wire_err)?;
            }
        }
    }
    r.read_exact(spec.digest_len().max(1))?;
    Ok(())
}
