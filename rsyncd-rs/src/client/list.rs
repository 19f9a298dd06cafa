//! Listing a remote tree: what `rsync [-r] [-c] --list-only rsync://host/module/path`
//! shows, as values. The server sends its file list; we ask for no file and walk the
//! phases to the goodbye. Upstream: generator.c, generate_files() with `list_only`.

use super::connect::ConnectOptions;
use super::error::ClientError;
use super::session::{ServerLine, Session};
use super::url::Remote;
use crate::engine::exit::ExitCode;
use crate::engine::flist::ListReceiver;
use crate::engine::session::PeerStats;
use crate::engine::session::{Sums, flist_config};
use crate::protocol::flist::{FileEntry, LinkTargets};
use crate::protocol::ndx::NDX_DONE;
use crate::protocol::options::Options;

/// What to list.
#[derive(Debug, Clone, Default)]
pub struct ListOptions {
    /// The whole tree below the path (`-r`), not only its top level.
    pub recursive: bool,
    /// Ask the server for each file's strong checksum (`-c`).
    pub checksum: bool,
    /// The checksum to use instead of the negotiated one (`--checksum-choice`: `md5`,
    /// `xxh128`, `sha1`...), so that sums compare with a local tool's.
    pub checksum_choice: Option<String>,
    /// Ask for owners and groups (`-o -g`), as names mapped to local ids unless
    /// `numeric_ids`.
    pub owners: bool,
    pub numeric_ids: bool,
}

/// A listed tree.
#[derive(Debug, Clone)]
pub struct Listing {
    /// The entries in the server's (rsync's) order; names relative to the listed path.
    pub entries: Vec<FileEntry>,
    /// The checksum `-c` sums are in (`md5`, `xxh128`, ...), when asked for.
    pub checksum_name: Option<String>,
    pub stats: PeerStats,
    pub motd: Vec<String>,
    /// What the server said on the way (errors, warnings).
    pub lines: Vec<ServerLine>,
    /// Ok, or partial (23/24) when the server could not read everything.
    pub code: ExitCode,
}

/// How rsync's listings show an entry's mode (`drwxr-xr-x`), time
/// (`2026/12/05 07:00:00`) and name (`name -> target` for a symlink).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shown {
    pub mode: String,
    pub mtime: String,
    pub name: String,
}

impl Shown {
    pub fn of(e: &FileEntry) -> Shown {
        use crate::protocol::flist::mode;
        let name = String::from_utf8_lossy(&e.name).into_owned();
        let name = match &e.link_target {
            Some(t) if mode::is_lnk(e.mode) => format!("{name} -> {}", String::from_utf8_lossy(t)),
            _ => name,
        };
        Shown {
            mode: format!(
                "{}{}",
                mode::type_char(e.mode),
                crate::engine::logfmt::perm_string(e.mode)
            ),
            mtime: crate::engine::logfmt::mtime_string(e.mtime).replace('-', " "),
            name,
        }
    }
}

/// Lists `remote` (its module and path). Upstream: main.c, client_run() with
/// `list_only`.
pub fn list(remote: &Remote, c: &ConnectOptions, l: &ListOptions) -> Result<Listing, ClientError> {
    if remote.module.is_empty() {
        return Err(ClientError::Options(
            "a listing needs a module name (syncctl ls lists the modules without one)".into(),
        ));
    }
    let mut o = Options {
        am_sender: true,
        list_only: true,
        recurse: l.recursive,
        xfer_dirs: !l.recursive,
        allow_inc_recurse: false,
        preserve_links: true,
        preserve_perms: true,
        preserve_mtimes: true,
        preserve_devices: true,
        preserve_specials: true,
        preserve_uid: l.owners,
        preserve_gid: l.owners,
        numeric_ids: l.numeric_ids,
        always_checksum: l.checksum,
        checksum_choice: l.checksum_choice.clone(),
        ..Options::default()
    };
    o.args.clear();
    let mut s = Session::start(remote, c, o)?;
    // The filter list: none. Upstream: exclude.c, send_filter_list() (a receiving client
    // always sends one).
    let mut out = Vec::new();
    crate::protocol::filter::encode_filter_list(&[], s.protocol(), false, &mut out)
        .map_err(|e| ClientError::Protocol(e.to_string()))?;
    s.writer.data(&out).map_err(super::connect::conn_error)?;
    s.flush()?;

    let sums =
        Sums::for_session(&s.opts, &s.wire).map_err(|e| ClientError::Protocol(e.to_string()))?;
    let cfg = flist_config(&s.opts, &s.wire, &sums, LinkTargets::AsSent);
    let mut lists = ListReceiver::new(cfg, !l.numeric_ids);
    let first = lists
        .receive(&mut s.reader, None)
        .map_err(|e| ClientError::Protocol(format!("file list: {e}")))?;
    s.io_error |= lists.io_error;
    let entries: Vec<FileEntry> = first
        .entries
        .iter()
        .zip(&first.active)
        .filter(|(_, a)| **a)
        .map(|(e, _)| e.clone())
        .collect();
    // An empty list ends the session at once (upstream's sender sends nothing more).
    let stats = if entries.is_empty() {
        PeerStats::default()
    } else {
        walk_phases(&mut s)?
    };
    let code = s.outcome_code();
    let lines = s
        .lines
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    Ok(Listing {
        entries,
        checksum_name: l
            .checksum
            .then(|| sums.file.map(|f| f.kind.name().to_string()))
            .flatten(),
        stats,
        motd: std::mem::take(&mut s.motd),
        lines,
        code,
    })
}

/// The phases of a generator that asks for nothing, the server's statistics and the
/// goodbye. Upstream: generator.c, generate_files(); sender.c, send_files().
fn walk_phases(s: &mut Session) -> Result<PeerStats, ClientError> {
    let protocol = s.protocol();
    s.write_ndx(NDX_DONE)?;
    s.flush()?;
    s.expect_done("after the transfer phase")?;
    // The redo phase's end; from 29 the delay-updates phase's end follows at once, and
    // from 31 the late-delete one.
    let more = match protocol {
        ..29 => 1,
        29 | 30 => 2,
        _ => 3,
    };
    for _ in 0..more {
        s.write_ndx(NDX_DONE)?;
    }
    s.flush()?;
    if protocol >= 29 {
        s.expect_done("after the redo phase")?;
    }
    s.expect_done("at the end of the transfer")?;
    let stats = s.read_stats()?;
    s.goodbye_as_receiver()?;
    Ok(stats)
}
