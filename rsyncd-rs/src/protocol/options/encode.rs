//! [`Options`] back into the argument list a client sends to a server: the inverse of
//! [`parse_server_args`](super::parse_server_args) for what a client can ask of a server.
//! Upstream: options.c, server_options().
//!
//! `Options` is the server's view: `am_sender` says the server sends (a pull). Upstream
//! writes server_options() from the client's side, so its "am_sender" is our
//! `!o.am_sender`; [`Options::server_receives`] keeps that straight.

use super::table::{OPTIONS, by_long};
use super::{DeleteWhen, Options};

/// The capability letters stock rsync 3.5.0 puts after `-e.`, apart from `i` (which
/// depends on the options; see [`client_info`]). Upstream: options.c,
/// maybe_add_e_option().
pub const STOCK_CAPABILITIES: &str = "LsfxCIvu";

/// The partial directory `--delay-updates` implies; a client does not send it.
const DELAY_UPDATES_DIR: &str = ".~tmp~";

/// How many times a letter of the short-option cluster appears, by the table key of its
/// row, in upstream's order. Letters only one side uses are gated on the direction.
type Count = fn(&Options) -> usize;
static CLUSTER: &[(&str, Count)] = &[
    // Upstream caps the v's: more than nine mean nothing to a server.
    ("v", |o| usize::from(o.verbose.min(9))),
    ("q", |o| usize::from(o.quiet > 0)),
    ("make_backups=1", |o| usize::from(o.make_backups)),
    ("update_only=1", |o| usize::from(o.update_only)),
    ("dry_run=1", |o| usize::from(o.dry_run)),
    ("preserve_links=1", |o| usize::from(o.preserve_links)),
    ("xfer_dirs=2", |o| usize::from(sends_dirs(o))),
    ("keep_dirlinks=1", |o| {
        usize::from(o.server_receives() && o.keep_dirlinks)
    }),
    ("prune_empty_dirs=1", |o| {
        usize::from(o.server_receives() && o.prune_empty_dirs)
    }),
    // `-b` without `--backup-dir` implies `-O` on both sides; a client does not send it.
    ("omit_dir_times=1", |o| {
        usize::from(
            o.server_receives() && o.omit_dir_times && !(o.make_backups && o.backup_dir.is_none()),
        )
    }),
    ("omit_link_times=1", |o| {
        usize::from(o.server_receives() && o.omit_link_times)
    }),
    ("y", |o| {
        if o.server_receives() {
            usize::from(o.fuzzy.min(2))
        } else {
            0
        }
    }),
    ("copy_links=1", |o| usize::from(o.am_sender && o.copy_links)),
    ("copy_dirlinks=1", |o| {
        usize::from(o.am_sender && o.copy_dirlinks)
    }),
    // `--no-whole-file` is the default between two hosts, so only `-W` is sent.
    ("whole_file=1", |o| usize::from(o.whole_file == Some(true))),
    ("H", |o| usize::from(o.hard_links.min(2))),
    ("preserve_uid=1", |o| usize::from(o.preserve_uid)),
    ("preserve_gid=1", |o| usize::from(o.preserve_gid)),
    // `-D` stands for devices here; specials differing from it go as a long option.
    ("D", |o| usize::from(o.preserve_devices)),
    ("preserve_mtimes=1", |o| usize::from(o.preserve_mtimes)),
    ("U", |o| usize::from(o.preserve_atimes.min(2))),
    ("preserve_crtimes=1", |o| usize::from(o.preserve_crtimes)),
    ("preserve_perms=1", |o| usize::from(o.preserve_perms)),
    ("preserve_executability=1", |o| {
        usize::from(!o.preserve_perms && o.preserve_executability && o.server_receives())
    }),
    ("A", |o| usize::from(o.preserve_acls)),
    ("X", |o| usize::from(o.preserve_xattrs.min(2))),
    ("recurse=2", |o| usize::from(o.recurse)),
    ("always_checksum=1", |o| usize::from(o.always_checksum)),
    ("cvs_exclude=1", |o| usize::from(o.cvs_exclude)),
    ("ignore_times=1", |o| usize::from(o.ignore_times)),
    ("relative_paths=1", |o| usize::from(o.relative)),
    ("x", |o| usize::from(o.one_file_system.min(2))),
    ("sparse_files=1", |o| usize::from(o.sparse)),
    // Only plain zlib rides in the cluster; other choices are named below.
    ("z", |o| {
        usize::from(o.compress > 0 && matches!(o.compress_choice.as_deref(), None | Some("zlib")))
    }),
];

impl Options {
    /// Whether the server receives: the client sends (a push).
    pub fn server_receives(&self) -> bool {
        !self.am_sender
    }
}

/// Whether `-d` goes in the cluster. Upstream sends it for an explicit `--dirs` and for
/// the directories a listing or a `--delete` without `-r` needs; `--files-from` implies
/// it on the server, so it is left out there.
fn sends_dirs(o: &Options) -> bool {
    o.xfer_dirs && !o.recurse && o.files_from.is_none()
}

/// The letter the option table gives the row with `key`.
fn letter(key: &str) -> Option<char> {
    OPTIONS.iter().find(|d| d.key == key).and_then(|d| d.short)
}

/// `--name`, a name the option table (and so the parser) knows.
fn long(name: &'static str) -> String {
    debug_assert!(by_long(name).is_some(), "--{name} is not in the table");
    format!("--{name}")
}

/// `--name=value`.
fn long_eq(name: &'static str, value: impl std::fmt::Display) -> String {
    format!("{}={value}", long(name))
}

/// The capability letters a client sends for `o` after `-e.`: `i` first when it wants
/// incremental recursion, then `capabilities` (any `i` in it is dropped). Upstream:
/// compat.c, set_allow_inc_recurse() on the client, and options.c,
/// maybe_add_e_option().
pub fn client_info(o: &Options, capabilities: &str) -> String {
    // A receiving client that deletes before or after, delays updates or prunes
    // directories needs the whole list first.
    let needs_whole_list = o.am_sender
        && (matches!(o.delete, DeleteWhen::Before | DeleteWhen::After)
            || o.delay_updates
            || o.prune_empty_dirs);
    let inc = o.allow_inc_recurse && o.recurse && !o.use_qsort && !needs_whole_list;
    let rest = capabilities.chars().filter(|&c| c != 'i');
    if inc {
        std::iter::once('i').chain(rest).collect()
    } else {
        rest.collect()
    }
}

/// The argument list a client sends to a server for `o`, in the order and spelling of
/// stock rsync 3.5.0: `--server`, `--sender` for a pull, the short-option cluster with
/// the capability letters (`o.client_info`, sent as `-e.LETTERS` from protocol 30 on),
/// the long options, then `o.args` (`.` and the paths) as they are.
///
/// `protocol` is the protocol known when the list is sent: the negotiated one on a
/// daemon connection, the client's own (or its `--protocol`) over a remote shell.
///
/// The list is raw, as a daemon reads it; a remote shell needs each argument quoted.
/// Not sent, as stock does not send them: filter rules (they go on the wire), `--chmod`,
/// `--progress` and other options the client applies itself. Not expressible here:
/// `--secluded-args` (the list would end early and the rest go on the wire), `--iconv`,
/// user `--info` words and `--remote-option`.
///
/// Upstream: options.c, server_options().
pub fn server_args(o: &Options, protocol: i32) -> Vec<String> {
    let mut args = vec![long("server")];
    if o.am_sender {
        args.push(long("sender"));
    }
    let cluster = cluster(o, protocol);
    if cluster.len() > 1 {
        args.push(cluster);
    }
    push_listing_and_compression(o, &mut args);
    push_transfer(o, &mut args);
    push_receiver_side(o, &mut args);
    push_tail(o, protocol, &mut args);
    args.extend(o.args.iter().cloned());
    args
}

/// `-` and the short options, then `e.` and the capability letters from protocol 30 on.
fn cluster(o: &Options, protocol: i32) -> String {
    let mut s = String::from("-");
    for (key, count) in CLUSTER {
        if let Some(c) = letter(key) {
            s.extend(std::iter::repeat_n(c, count(o)));
        }
    }
    // Before protocol 30 there is no `-e` capability string.
    if protocol >= 30
        && let Some(e) = letter("shell_cmd")
    {
        s.push(e);
        s.push('.');
        s.push_str(&o.client_info);
    }
    s
}

/// What the itemizing client tells a receiving server about its output format: only
/// whether it has `%i` (`%i%I` for `-ii`) or `%o`. Upstream: the `stdout_format` branch
/// of server_options().
fn log_format(o: &Options) -> Option<String> {
    match o.itemizing() {
        2 => Some("%i%I".into()),
        1 => Some("%i".into()),
        _ => o.stdout_format.clone(),
    }
}

fn push_listing_and_compression(o: &Options, args: &mut Vec<String>) {
    if o.list_only {
        args.push(long("list-only"));
    }
    // A `--delete` with `-d` alone needs a server that knows `--no-r`.
    if o.xfer_dirs && !o.recurse && o.deletes() && o.server_receives() {
        args.push(long("no-r"));
    }
    if let Some(level) = o.compress_level
        && o.compress_choice.as_deref() != Some("none")
    {
        args.push(long_eq("compress-level", level));
    }
    if o.preserve_devices && !o.preserve_specials {
        args.push(long("no-specials"));
    } else if !o.preserve_devices && o.preserve_specials {
        args.push(long("specials"));
    }
    if o.server_receives()
        && let Some(f) = log_format(o)
    {
        // `--log-format`, not `--out-format`, for old servers.
        args.push(long_eq("log-format", f));
    }
    if let (Some(n), Some(b)) = (o.block_size.filter(|&n| n > 0), letter("OPT_BLOCK_SIZE")) {
        args.push(format!("-{b}{n}"));
    }
    if let Some(t) = o.io_timeout.filter(|&t| t != 0) {
        args.push(long_eq("timeout", t));
    }
    if let Some(k) = o.bwlimit {
        // In KiB, which is the server's default unit.
        args.push(long_eq("bwlimit", k));
    }
    if let Some(dir) = &o.backup_dir {
        args.push(long("backup-dir"));
        args.push(dir.clone());
    }
    let default_suffix = if o.backup_dir.is_some() { "" } else { "~" };
    if let Some(s) = o.backup_suffix.as_deref().filter(|&s| s != default_suffix) {
        args.push(long_eq("suffix", s));
    }
    if let Some(c) = &o.checksum_choice {
        args.push(long_eq("checksum-choice", c));
    }
    match o.compress_choice.as_deref() {
        Some("zlibx") => args.push(long("new-compress")),
        // With `-z` in the cluster; an old server knows this spelling.
        Some("zlib") if o.compress > 0 => args.push(long("old-compress")),
        Some(c) => args.push(long_eq("compress-choice", c)),
        None => {}
    }
}

/// What only a receiving server needs (deletion, sizes, the sender's stats), or for a
/// sending server, the suffixes not to compress.
fn push_transfer(o: &Options, args: &mut Vec<String>) {
    if o.am_sender {
        if let Some(s) = &o.skip_compress {
            args.push(long_eq("skip-compress", s));
        }
    } else {
        match o.max_delete {
            // The server reads any other negative value as 0.
            Some(0) => args.push(long_eq("max-delete", -1)),
            Some(n) if n > 0 => args.push(long_eq("max-delete", n)),
            _ => {}
        }
        if let Some(n) = o.min_size {
            args.push(long_eq("min-size", n));
        }
        if let Some(n) = o.max_size {
            args.push(long_eq("max-size", n));
        }
        match o.delete {
            DeleteWhen::Never => {}
            DeleteWhen::Before => args.push(long("delete-before")),
            DeleteWhen::Delay => args.push(long("delete-delay")),
            // A plain `--delete` lets the server choose by protocol; `--delete-excluded`
            // alone implies it.
            DeleteWhen::During if o.delete_when_default => {
                if !o.delete_excluded {
                    args.push(long("delete"));
                }
            }
            DeleteWhen::During => args.push(long("delete-during")),
            DeleteWhen::After => args.push(long("delete-after")),
        }
        if o.delete_excluded {
            args.push(long("delete-excluded"));
        }
        if o.force_delete {
            args.push(long("force"));
        }
        if o.super_mode == Some(2) {
            args.push(long("super"));
        }
        if o.size_only {
            args.push(long("size-only"));
        }
        if o.stats {
            args.push(long("stats"));
        }
    }
    // The sender handles `--ignore-missing-args` alone; deleting needs both sides.
    if o.missing_args == 2 {
        args.push(long("delete-missing-args"));
    } else if o.missing_args == 1 && o.am_sender {
        args.push(long("ignore-missing-args"));
    }
    if o.server_receives()
        && let Some(w) = o.modify_window
    {
        match letter("OPT_MODIFY_WINDOW") {
            Some(at) if w < 0 => args.push(format!("-{at}{w}")),
            _ => args.push(long_eq("modify-window", w)),
        }
    }
    if let Some(seed) = o.checksum_seed.filter(|&s| s != 0) {
        args.push(long_eq("checksum-seed", seed));
    }
}

/// Partial files, links, ids, and what only a receiving server needs to place files.
fn push_receiver_side(o: &Options, args: &mut Vec<String>) {
    if o.server_receives() {
        if let Some(dir) = &o.partial_dir {
            if !(o.delay_updates && dir == DELAY_UPDATES_DIR) {
                args.push(long("partial-dir"));
                args.push(dir.clone());
            }
            if o.delay_updates {
                args.push(long("delay-updates"));
            }
        } else if o.keep_partial {
            args.push(long("partial"));
        }
    }
    if o.ignore_errors {
        args.push(long("ignore-errors"));
    }
    if o.copy_unsafe_links {
        args.push(long("copy-unsafe-links"));
    }
    if o.safe_links {
        args.push(long("safe-links"));
    }
    if o.numeric_ids {
        args.push(long("numeric-ids"));
    }
    if o.use_qsort {
        // Stock 3.5.0 sends `--use-qsort`, which no rsync accepts; the option's name is
        // `--qsort`.
        args.push(long("qsort"));
    }
    if o.server_receives() {
        if let Some(m) = &o.usermap {
            args.push(long_eq("usermap", m));
        }
        if let Some(m) = &o.groupmap {
            args.push(long_eq("groupmap", m));
        }
        if o.ignore_existing {
            args.push(long("ignore-existing"));
        }
        // `--existing`, not `--ignore-non-existing`, for old servers.
        if o.ignore_non_existing {
            args.push(long("existing"));
        }
        if let Some(dir) = &o.temp_dir {
            args.push(long("temp-dir"));
            args.push(dir.clone());
        }
        if o.fsync {
            args.push(long("fsync"));
        }
        for (name, dirs) in [
            ("compare-dest", &o.compare_dest),
            ("copy-dest", &o.copy_dest),
            ("link-dest", &o.link_dest),
        ] {
            for d in dirs {
                args.push(long(name));
                args.push(d.clone());
            }
        }
    }
}

/// Appending, the files-from list, implied directories and the one-sided device,
/// removal and path options.
fn push_tail(o: &Options, protocol: i32, args: &mut Vec<String>) {
    if o.append_mode > 0 {
        // Each `--append` counts up on a server: two mean `--append-verify`.
        for _ in 0..o.append_mode.min(2) {
            args.push(long("append"));
        }
    } else if o.inplace {
        args.push(long("inplace"));
        // Older servers mishandled `--inplace --sparse` without this.
        if o.sparse && o.whole_file == Some(false) && o.server_receives() {
            args.push(long("no-W"));
        }
    }
    match o.files_from.as_deref() {
        // The client streams the names, NUL-terminated.
        Some("-") => {
            args.push(long_eq("files-from", "-"));
            args.push(long("from0"));
        }
        Some(path) => {
            args.push(long("files-from"));
            args.push(path.to_string());
            if o.from0 {
                args.push(long("from0"));
            }
        }
        None => {}
    }
    if o.files_from.is_some() && !o.relative {
        // `--files-from` implies `-R` on the server.
        args.push(long("no-relative"));
    }
    // A receiving server older than protocol 30 may not know the option.
    if o.relative && !o.implied_dirs && (o.am_sender || protocol >= 30) {
        args.push(long("no-implied-dirs"));
    }
    if o.write_devices && o.server_receives() {
        args.push(long("write-devices"));
    }
    match o.remove_source_files {
        0 => {}
        1 => args.push(long("remove-source-files")),
        _ => args.push(long("remove-sent-files")),
    }
    if o.copy_devices && o.am_sender {
        args.push(long("copy-devices"));
    }
    if o.preallocate && o.server_receives() {
        args.push(long("preallocate"));
    }
    if o.mkpath && o.server_receives() {
        args.push(long("mkpath"));
    }
    // Stock says this only by leaving `i` out of the capability letters; saying it too
    // keeps the option when the letters were chosen apart from it. Protocol 30 brought
    // incremental recursion, and the option with it.
    if !o.allow_inc_recurse && protocol >= 30 {
        args.push(long("no-inc-recursive"));
    }
}

#[cfg(test)]
mod tests;
