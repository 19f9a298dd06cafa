//! Answering the receiver's requests: each index with its item flags, the receiver's block
//! sums, and the file sent against them. Upstream: sender.c send_files(),
//! receive_sums(); rsync.c read_ndx_and_attrs(); main.c read_final_goodbye().

use super::Core;
use super::list::{IOERR_GENERAL, IOERR_VANISHED, LOOKAHEAD, Lister};
use super::matcher::{MatchError, match_sums};
use crate::engine::error::EngineError;
use crate::engine::exit::ExitCode;
use crate::engine::itemize::{ItemizeCtx, is_significant, itemize_string};
use crate::engine::logfmt::{
    LogFileInfo, LogSessionInfo, format_log_line, mtime_string, perm_string,
};
use crate::engine::mux::{MuxReader, lock};
use crate::protocol::Decoded;
use crate::protocol::flist::{FileEntry, mode};
use crate::protocol::mux::MsgCode;
use crate::protocol::ndx::{NDX_DONE, iflags as it};
use crate::protocol::request::{Request, RequestDecoder};
use crate::protocol::sums::{BlockSum, SumHead, decode_block_sum, decode_sum_head};
use crate::protocol::token::{Compression, TokenEncoder};

struct Io<'a> {
    core: &'a Core,
    r: &'a mut MuxReader,
    requests: RequestDecoder,
}

/// A file request, as read.
#[derive(Debug)]
struct FileRequest {
    ndx: i32,
    iflags: u32,
    basis_type: Option<u8>,
    xname: Option<Vec<u8>>,
    /// The wire numbers of the long xattr values the receiver asked for (present when
    /// the request carried ITEM_REPORT_XATTR and xattrs are exchanged).
    xattr_nums: Option<Vec<i32>>,
}

impl FileRequest {
    fn echo(&self) -> Request {
        Request::File {
            ndx: self.ndx,
            iflags: self.iflags,
            basis_type: self.basis_type,
            xname: self.xname.clone(),
        }
    }
}

impl Io<'_> {
    fn fail(&self, msg: impl Into<String>) -> EngineError {
        EngineError::violation(msg).at("io.c", 1900, "sender")
    }

    fn read<T>(
        &mut self,
        f: impl FnMut(&[u8]) -> Result<Decoded<T>, crate::protocol::WireError>,
    ) -> Result<T, EngineError> {
        read_from(self.r, &*self.core.log, f)
    }

    /// Reads the next file request (`None` for NDX_DONE), answering delete statistics on
    /// the way. Upstream: rsync.c, read_ndx_and_attrs().
    fn read_request(&mut self, lists: Option<&Lister>) -> Result<Option<FileRequest>, EngineError> {
        let protocol = self.core.wire.protocol;
        loop {
            let dec = &mut self.requests;
            match read_from(self.r, &*self.core.log, |b| dec.decode(b))? {
                Request::Done => return Ok(None),
                // The receiver's deletion counts, echoed back as upstream's server sender
                // does.
                // Only a sending server echoes them (upstream: rsync.c,
                // read_ndx_and_attrs(), `am_sender && am_server`); a pushing client
                // keeps them.
                Request::DelStats(counts) => {
                    if self.core.is_server {
                        let mut out = Vec::new();
                        self.core.put_request(&Request::DelStats(counts), &mut out);
                        self.core.data(&out)?;
                    }
                }
                Request::Other(ndx) => {
                    let last = lists
                        .and_then(|l| l.lists.back())
                        .map_or(-1, |l| l.ndx_start + l.items.len() as i32 - 1);
                    return Err(self.fail(format!(
                        "Invalid file index: {ndx} ({NDX_DONE} - {last}) [sender]"
                    )));
                }
                Request::File {
                    ndx,
                    iflags,
                    basis_type,
                    xname,
                } => {
                    // The protocol-29 keep-alive: the index one past the list with
                    // ITEM_IS_NEW.
                    if protocol < 30
                        && iflags == it::IS_NEW
                        && lists
                            .and_then(|l| l.lists.back())
                            .is_some_and(|l| ndx == l.ndx_start + l.items.len() as i32)
                    {
                        continue;
                    }
                    // The request of long xattr values rides after the item; a dry run
                    // exchanges none. Upstream: sender.c, send_files() →
                    // recv_xattr_request().
                    let xattr_nums = if self.core.cfg.preserve_xattrs
                        && !self.core.opts.dry_run
                        && iflags & it::REPORT_XATTR != 0
                    {
                        Some(self.read(|b| {
                            crate::protocol::xattr::decode_xattr_request(b)
                                .map_err(crate::protocol::WireError::from)
                        })?)
                    } else {
                        None
                    };
                    return Ok(Some(FileRequest {
                        ndx,
                        iflags,
                        basis_type,
                        xname,
                        xattr_nums,
                    }));
                }
            }
        }
    }

    /// Echoes a request back before the file's data. Upstream: sender.c,
    /// write_ndx_and_attrs().
    fn write_request(
        &mut self,
        req: &FileRequest,
        xattrs: Option<&[(i32, Vec<u8>)]>,
        out: &mut Vec<u8>,
    ) {
        self.core.put_request(&req.echo(), out);
        if let Some(values) = xattrs {
            crate::protocol::xattr::encode_xattr_response(values, out);
        }
    }

    fn write_done(&mut self) -> Result<(), EngineError> {
        let mut out = Vec::new();
        self.core.put_ndx(NDX_DONE, &mut out);
        self.core.data(&out)
    }

    /// The sum head and block sums of one request, bounded as upstream's receive_sums().
    fn read_sums(&mut self) -> Result<(SumHead, Vec<BlockSum>), EngineError> {
        let protocol = self.core.wire.protocol;
        let max = self.core.sums.xfer.digest_len().min(16);
        let head = self.read(|b| decode_sum_head(b, protocol, max))?;
        let count = usize::try_from(head.count).unwrap_or(0);
        let mut sums = Vec::with_capacity(count.min(1 << 16));
        for _ in 0..count {
            sums.push(self.read(|b| decode_block_sum(b, &head))?);
        }
        Ok((head, sums))
    }
}

/// Decodes one value from the client's stream.
fn read_from<T>(
    r: &mut MuxReader,
    log: &dyn crate::engine::session::LogSink,
    f: impl FnMut(&[u8]) -> Result<Decoded<T>, crate::protocol::WireError>,
) -> Result<T, EngineError> {
    let v = r.decode_with(f).map_err(read_err)?;
    // Messages the client sends (MSG_NOOP keep-alives, MSG_ERROR_EXIT...) are handled by
    // the reader; texts went to the log. A receiving server names what it deleted.
    for m in r.take_messages() {
        if let crate::engine::mux::Message::Deleted(name) = m {
            log.item(&item(name, crate::engine::session::ItemWhat::Deleted));
        }
    }
    Ok(v)
}

fn item(
    name: Vec<u8>,
    what: crate::engine::session::ItemWhat,
) -> crate::engine::session::ItemEvent {
    crate::engine::session::ItemEvent {
        name,
        what,
        size: 0,
    }
}

fn read_err(e: crate::engine::mux::ReadError) -> EngineError {
    use crate::engine::conn::ConnError;
    match e {
        ConnError::Timeout => {
            EngineError::io("io timeout", ExitCode::TIMEOUT).at("io.c", 197, "sender")
        }
        ConnError::Eof => EngineError::io(crate::engine::error::PEER_CLOSED, ExitCode::STREAMIO)
            .at("io.c", 285, "sender"),
        ConnError::Io(e) => EngineError::io(format!("read error: {e}"), ExitCode::STREAMIO)
            .at("io.c", 285, "sender"),
        ConnError::Decode(e) => EngineError::malformed(e.to_string()).at("io.c", 1900, "sender"),
    }
}

/// Answers requests until the receiver's last phase ends. Upstream: sender.c, send_files().
pub(super) fn send_files(
    core: &Core,
    r: &mut MuxReader,
    lists: &mut Lister,
) -> Result<(), EngineError> {
    let protocol = core.wire.protocol;
    let mut io = Io {
        core,
        r,
        requests: RequestDecoder::new(protocol),
    };
    let compression = match &core.wire.compression {
        Some(name) => Compression::from_name(name)
            .ok_or_else(|| EngineError::unsupported(format!("unknown compress name: {name}")))?,
        None => Compression::None,
    };
    let level = match compression {
        Compression::Zlib | Compression::Zlibx if core.policy.dont_compress_all => Some(0),
        _ => core.opts.compress_level,
    };
    let mut tokens = TokenEncoder::new(compression, level, protocol);
    let max_phase = if protocol >= 29 { 2 } else { 1 };
    let mut phase = 0;
    let saved_io_error = lists.io_error;
    loop {
        if core.cfg.inc_recurse {
            lists.send_extra(core, LOOKAHEAD)?;
        }
        let Some(req) = io.read_request(Some(lists))? else {
            if core.cfg.inc_recurse && !lists.lists.is_empty() {
                lists.finish_first();
                if !lists.lists.is_empty() {
                    io.write_done()?;
                    continue;
                }
            }
            phase += 1;
            if phase > max_phase {
                break;
            }
            io.write_done()?;
            continue;
        };
        if core.cfg.inc_recurse {
            lists.send_extra(core, LOOKAHEAD)?;
        }
        let Some((_, item)) = lists.find(req.ndx) else {
            return Err(io.fail(format!(
                "rsync: refusing transfer of cleared file index {}",
                req.ndx
            )));
        };
        let item = item.clone();
        let e = &item.e;
        let xattr_values = match &req.xattr_nums {
            Some(nums) => Some(xattr_response(core, lists, &item, nums)?),
            None => None,
        };
        let xattr_values = xattr_values.as_deref();
        if req.iflags & it::TRANSFER != 0 && !mode::is_reg(e.mode) {
            return Err(io.fail(format!(
                "received request to transfer non-regular file: {} [sender]",
                req.ndx
            )));
        }
        if req.iflags & it::TRANSFER == 0 {
            core.log.item(&self::item(
                e.name.clone(),
                crate::engine::session::ItemWhat::Updated,
            ));
            maybe_log_item(core, lists.root_of(&item), e, req.iflags);
            let mut out = Vec::new();
            io.write_request(&req, xattr_values, &mut out);
            core.data(&out)?;
            continue;
        }
        if phase == 2 {
            return Err(io.fail("got transfer request in phase 2 [sender]"));
        }
        if core.opts.dry_run {
            log_item(core, lists.root_of(&item), e, &Logged::item(req.iflags));
            let mut out = Vec::new();
            io.write_request(&req, xattr_values, &mut out);
            core.data(&out)?;
            continue;
        }
        let (head, sums) = io.read_sums()?;
        let path = lists.disk_path(&item)?;
        // With -L (or -k, --copy-unsafe-links) the list may describe what a link leads
        // to (always in the module): the file is opened there.
        let o = &core.opts;
        let follows = o.copy_links || o.copy_unsafe_links || o.copy_dirlinks;
        let open_path = if follows {
            core.tree.resolve(&path).unwrap_or_else(|_| path.clone())
        } else {
            path.clone()
        };
        let mut file = match core.tree.open_read(&open_path) {
            Ok(f) => f,
            Err(err) => {
                core.log.item(&self::item(
                    e.name.clone(),
                    crate::engine::session::ItemWhat::Failed(err.to_string()),
                ));
                if err.is_not_found() {
                    lists.io_error |= IOERR_VANISHED;
                    let text = format!(
                        "file has vanished: {}",
                        lists.quoted(core, item.root, &path)
                    );
                    if protocol < 28 {
                        core.error_xfer(&text);
                    } else {
                        core.warn(&text);
                    }
                } else {
                    lists.io_error |= IOERR_GENERAL;
                    core.error_xfer(&crate::engine::exit::syserr(
                        "sender",
                        &format!(
                            "send_files failed to open {}",
                            lists.quoted(core, item.root, &path)
                        ),
                        super::errno_of(&err),
                        &err,
                    ));
                }
                if protocol >= 30 {
                    lock(&core.writer)
                        .message(MsgCode::NoSend, &req.ndx.to_le_bytes())
                        .map_err(super::write_err)?;
                }
                continue;
            }
        };
        let len = file.metadata().map(|m| m.len()).unwrap_or(0);
        let mut out = Vec::new();
        io.write_request(&req, xattr_values, &mut out);
        crate::protocol::sums::encode_sum_head(&mut out, &head, protocol);
        core.data(&out)?;
        let echoed = out.len() as u64;
        let mut streamed = 0u64;
        let result = match_sums(
            &mut file,
            len,
            &head,
            &sums,
            &core.sums.xfer,
            &mut tokens,
            &mut |b| {
                streamed += b.len() as u64;
                core.data(b).map_err(|_| MatchError::Write)
            },
        );
        let st = match result {
            Ok(st) => st,
            Err(MatchError::Read(e)) => {
                // The stream is mid-file: upstream ends the session here too.
                lists.io_error |= IOERR_GENERAL;
                return Err(EngineError::io(
                    format!(
                        "read errors mapping {}: {e}",
                        lists.quoted(core, item.root, &path)
                    ),
                    ExitCode::FILEIO,
                )
                .at("sender.c", 400, "sender"));
            }
            Err(MatchError::Wire(e)) => {
                return Err(EngineError::fatal(e.to_string(), ExitCode::PROTOCOL));
            }
            Err(MatchError::Write) => {
                return Err(
                    EngineError::io(crate::engine::error::PEER_CLOSED, ExitCode::STREAMIO)
                        .at("io.c", 285, "sender"),
                );
            }
        };
        core.log.item(&self::item(
            e.name.clone(),
            crate::engine::session::ItemWhat::Sent,
        ));
        // %b counts what we wrote for the file, %c what the receiver sent (its sums).
        let sums_read = crate::protocol::sums::SumHead::wire_len(protocol) as u64
            + sums.len() as u64 * (4 + u64::try_from(head.s2length).unwrap_or(0));
        let root = lists.root_of(&item);
        log_item(
            core,
            root,
            e,
            &Logged {
                iflags: req.iflags,
                written: echoed + streamed,
                read: sums_read,
                digest: Some(&st.digest[..st.digest_len]),
            },
        );
    }
    if lists.io_error != saved_io_error && protocol >= 30 {
        lock(&core.writer)
            .message(MsgCode::IoError, &lists.io_error.to_le_bytes())
            .map_err(super::write_err)?;
    }
    io.write_done()
}

/// The values a receiver asked for, in wire order, each re-read from disk now (by its
/// local name); one that cannot be re-read goes as an empty value. Asking for an element
/// that does not exist or was sent whole is a protocol error. Upstream: xattrs.c,
/// recv_xattr_request() and send_xattr_request() on the sender.
fn xattr_response(
    core: &Core,
    lists: &Lister,
    item: &super::list::Item,
    nums: &[i32],
) -> Result<Vec<(i32, Vec<u8>)>, EngineError> {
    let name = String::from_utf8_lossy(&item.e.name).into_owned();
    let Some(list) = &item.e.xattrs else {
        return Err(EngineError::fatal(
            "recv_xattr_request: internal data error!",
            ExitCode::PROTOCOL,
        ));
    };
    let mut wanted: Vec<i32> = Vec::with_capacity(nums.len());
    let mut seen = std::collections::HashSet::with_capacity(nums.len());
    for &num in nums {
        let x = usize::try_from(num)
            .ok()
            .and_then(|n| n.checked_sub(1))
            .and_then(|i| list.0.get(i));
        let Some(x) = x else {
            return Err(EngineError::fatal(
                format!("[sender] could not find xattr #{num} for {name}"),
                ExitCode::PROTOCOL,
            ));
        };
        if !x.is_abbrev() || !seen.insert(num) {
            return Err(EngineError::fatal(
                format!(
                    "[sender] internal abbrev error on {name} ({}, len={})!",
                    String::from_utf8_lossy(&x.name),
                    x.datum_len()
                ),
                ExitCode::PROTOCOL,
            ));
        }
        wanted.push(num);
    }
    wanted.sort_unstable();
    let path = lists.disk_path(item)?;
    let mut out = Vec::with_capacity(wanted.len());
    for num in wanted {
        let Some(x) = usize::try_from(num - 1).ok().and_then(|i| list.0.get(i)) else {
            continue;
        };
        let local = core.with_xattr_rules(|r| r.sender_local_name(&x.name));
        let value = match core.tree.get_xattr(&path, &local) {
            Ok(Some(v)) => v,
            _ => {
                core.error_xfer(&format!(
                    "failed to re-read xattr {} for {}",
                    String::from_utf8_lossy(&local),
                    lists.quoted(core, item.root, &path)
                ));
                Vec::new()
            }
        };
        out.push((num, value));
    }
    Ok(out)
}

/// Reads the client's goodbye. Upstream: main.c, read_final_goodbye().
pub(super) fn read_final_goodbye(core: &Core, r: &mut MuxReader) -> Result<(), EngineError> {
    let protocol = core.wire.protocol;
    let mut io = Io {
        core,
        r,
        requests: RequestDecoder::new(protocol),
    };
    let ndx = |r: Option<FileRequest>| r.map_or(NDX_DONE, |r| r.ndx);
    let mut i = if protocol < 29 {
        io.read(|b| Ok(crate::protocol::codec::get_int(b)))?
    } else {
        ndx(io.read_request(None)?)
    };
    if protocol >= 31 && i == NDX_DONE {
        io.write_done()?;
        lock(&core.writer).flush().map_err(super::write_err)?;
        i = ndx(io.read_request(None)?);
    }
    if i != NDX_DONE {
        return Err(io.fail(format!("Invalid packet at end of run ({i}) [sender]")));
    }
    Ok(())
}

/// What a transfer-log line says of one item beyond its entry.
#[derive(Debug, Clone, Copy)]
struct Logged<'a> {
    iflags: u32,
    /// `%b`: bytes written for it.
    written: u64,
    /// `%c`: bytes read for it (the receiver's sums).
    read: u64,
    /// The whole-file checksum sent, for `%C`.
    digest: Option<&'a [u8]>,
}

impl Logged<'_> {
    fn item(iflags: u32) -> Self {
        Logged {
            iflags,
            written: 0,
            read: 0,
            digest: None,
        }
    }
}

/// A non-transfer item worth a log line (upstream: log.c, maybe_log_item()).
fn maybe_log_item(core: &Core, root: &[u8], e: &FileEntry, iflags: u32) {
    let Some(fmt) = core.policy.transfer_log_format.as_deref() else {
        return;
    };
    if fmt.contains("%i") && is_significant(iflags) {
        core.log
            .line(&format_line(core, fmt, root, e, &Logged::item(iflags)));
    }
}

/// The transfer log line of a sent file (upstream: log.c, log_item()).
fn log_item(core: &Core, root: &[u8], e: &FileEntry, what: &Logged<'_>) {
    if let Some(fmt) = core.policy.transfer_log_format.as_deref() {
        core.log.line(&format_line(core, fmt, root, e, what));
    }
}

/// Upstream: log.c, log_formatted(), for the sending side: `%n` is the name under the
/// transfer root, `%f` the path from the module root (`sub/.` for the root itself).
fn format_line(core: &Core, fmt: &str, root: &[u8], e: &FileEntry, what: &Logged<'_>) -> String {
    let p = &core.policy;
    let show = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let name = if e.is_dir() {
        format!("{}/", show(&e.name))
    } else {
        show(&e.name)
    };
    let full = if root.is_empty() {
        show(&e.name)
    } else {
        format!("{}/{}", show(root), show(&e.name))
    };
    let link = match &e.link_target {
        Some(t) if mode::is_lnk(e.mode) => format!(" -> {}", show(t)),
        _ => String::new(),
    };
    let item = itemize_string(
        what.iflags,
        e.mode,
        ItemizeCtx {
            sending: true,
            preserve_mtimes: core.opts.preserve_mtimes,
            symlink_times: true,
        },
    );
    let (perms, mtime) = (perm_string(e.mode), mtime_string(e.mtime));
    let checksum = crate::engine::logfmt::checksum_field(
        core.sums.file,
        core.sums.xfer,
        e,
        what.iflags,
        what.digest,
    );
    let transferred = what.iflags & it::TRANSFER != 0;
    format_log_line(
        fmt,
        &LogSessionInfo {
            host: &p.log_host,
            addr: &p.log_addr,
            module: &p.log_module,
            module_path: &p.log_module_path,
            user: &p.log_user,
        },
        &LogFileInfo {
            operation: "send",
            name: &name,
            full_name: &full,
            link: &link,
            length: e.size,
            bytes: if transferred {
                i64::try_from(what.written).unwrap_or(i64::MAX)
            } else {
                0
            },
            checksum_bytes: if transferred {
                i64::try_from(what.read).unwrap_or(i64::MAX)
            } else {
                0
            },
            itemize: &item,
            perms: &perms,
            mtime: &mtime,
            uid: e.uid.unwrap_or(0),
            gid: e.gid,
            checksum: &checksum,
        },
    )
}
