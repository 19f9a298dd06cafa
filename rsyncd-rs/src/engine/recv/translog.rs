//! The daemon's transfer log (`transfer logging` with `log format`): one line per received,
//! deleted or (with `%i`) changed entry. Upstream: log.c, log_item() and log_formatted().

use super::Shared;
use super::entry::{item_ctx, show};
use crate::engine::itemize::itemize_string;
use crate::engine::logfmt::{
    LogFileInfo, LogSessionInfo, format_log_line, mtime_string, perm_string,
};
use crate::protocol::flist::{FileEntry, mode};

/// What is being logged about an entry, beyond the entry itself.
#[derive(Debug, Clone, Copy)]
pub(super) struct Logged<'a> {
    /// `%o`: "recv" or "del.".
    pub op: &'static str,
    pub iflags: u32,
    /// The hard-link leader an entry was linked to.
    pub hlink: Option<&'a [u8]>,
    /// `%b`: bytes this entry's data took on the wire.
    pub bytes: u64,
    /// The sender's whole-file checksum of a transferred file.
    pub sum: Option<&'a [u8]>,
}

impl Logged<'_> {
    /// A received entry with nothing transferred.
    pub fn recv() -> Self {
        Logged {
            op: "recv",
            iflags: 0,
            hlink: None,
            bytes: 0,
            sum: None,
        }
    }
}

/// Writes the transfer-log line for `e`.
pub(super) fn line(sh: &Shared, fmt: &str, e: &FileEntry, what: &Logged<'_>) {
    sh.log.line(&format(sh, fmt, e, what));
}

/// Expands `fmt` for `e` (upstream: log.c, log_formatted()).
pub(super) fn format(sh: &Shared, fmt: &str, e: &FileEntry, what: &Logged<'_>) -> String {
    let p = &sh.policy;
    let name = if e.is_dir() && !e.name.ends_with(b"/") {
        format!("{}/", show(&e.name))
    } else {
        show(&e.name)
    };
    let link = match (what.hlink, &e.link_target) {
        (Some(h), _) if !h.is_empty() => format!(" => {}", show(h)),
        (_, Some(t)) if mode::is_lnk(e.mode) => format!(" -> {}", show(t)),
        _ => String::new(),
    };
    let item = itemize_string(what.iflags, e.mode, item_ctx(sh));
    // %f is the name relative to the module (upstream joins the current directory past the
    // module path): a destination subdirectory shows, a solo file's new name does not.
    // Unlike %n, directories get no trailing slash.
    let plain = show(&e.name);
    let plain = plain.strip_suffix('/').unwrap_or(&plain);
    let full = if sh.dest.logical.is_root() {
        plain.to_string()
    } else {
        format!("{}/{plain}", show(sh.dest.logical.as_bytes()))
    };
    let (perms, mtime) = (perm_string(e.mode), mtime_string(e.mtime));
    let checksum =
        crate::engine::logfmt::checksum_field(sh.sums.file, sh.sums.xfer, e, what.iflags, what.sum);
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
            operation: what.op,
            name: &name,
            full_name: &full,
            link: &link,
            length: e.size,
            bytes: i64::try_from(what.bytes).unwrap_or(i64::MAX),
            checksum_bytes: 0,
            itemize: &item,
            perms: &perms,
            mtime: &mtime,
            uid: e.uid.unwrap_or(0),
            gid: e.gid,
            checksum: &checksum,
        },
    )
}
