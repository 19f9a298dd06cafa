//! Parsing a server argument list (popt's rules: bundled short flags, `--name=value` or
//! `--name value`, options anywhere) and the implications upstream applies afterwards.

use super::table::{ArgKind, OPTIONS, by_long, by_short};
use super::{DeleteWhen, FilterArg, OptionError, Options, Refusals};

/// Parses the argument list a client sent to a server (without upstream's argv\[0\]).
/// `refusals` come from the module's `refuse options`. Upstream: options.c,
/// parse_arguments().
pub fn parse_server_args(args: &[String], refusals: &Refusals) -> Result<Options, OptionError> {
    let mut o = Options::default();
    let mut state = Implied::default();
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        i += 1;
        if arg == "--" {
            o.args.extend(args[i..].iter().cloned());
            break;
        }
        if let Some(body) = arg.strip_prefix("--") {
            let (name, inline) = match body.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (body, None),
            };
            let row = by_long(name).ok_or_else(|| bad_option(arg, "unknown option"))?;
            let value = match (OPTIONS[row].arg, inline) {
                (ArgKind::Flag, Some(_)) => {
                    return Err(bad_option(arg, "option does not take an argument"));
                }
                (ArgKind::Flag, None) => None,
                (_, Some(v)) => Some(v),
                (_, None) => {
                    let v = args
                        .get(i)
                        .ok_or_else(|| bad_option(arg, "missing argument"))?;
                    i += 1;
                    Some(v.clone())
                }
            };
            apply(&mut o, &mut state, refusals, row, value)?;
        } else if arg.len() > 1 && arg.starts_with('-') {
            let letters: Vec<char> = arg[1..].chars().collect();
            let mut j = 0;
            while j < letters.len() {
                let c = letters[j];
                j += 1;
                let row =
                    by_short(c).ok_or_else(|| bad_option(&format!("-{c}"), "unknown option"))?;
                let value = if OPTIONS[row].arg == ArgKind::Flag {
                    None
                } else if j < letters.len() {
                    let v: String = letters[j..].iter().collect();
                    j = letters.len();
                    Some(v)
                } else {
                    let v = args
                        .get(i)
                        .ok_or_else(|| bad_option(&format!("-{c}"), "missing argument"))?;
                    i += 1;
                    Some(v.clone())
                };
                apply(&mut o, &mut state, refusals, row, value)?;
            }
        } else {
            o.args.push(arg.clone());
        }
    }
    finish(&mut o, &state, refusals)?;
    Ok(o)
}

/// Values that only matter while parsing.
#[derive(Default)]
struct Implied {
    delete_mode: bool,
    delete_before: bool,
    delete_during: u8,
    delete_after: bool,
    xfer_dirs: Option<u8>,
    recurse_level: u8,
    /// `-R` or `--no-relative`, when given.
    relative: Option<bool>,
}

fn bad_option(opt: &str, why: &str) -> OptionError {
    // popt's message, prefixed as upstream does on a server.
    OptionError::Invalid(format!("on remote machine: {opt}: {why}"))
}

fn refused(row: usize) -> OptionError {
    let o = &OPTIONS[row];
    OptionError::Refused {
        long: o.long.map_or_else(
            || o.short.map(String::from).unwrap_or_default(),
            str::to_string,
        ),
        short: o.short,
    }
}

fn int_arg(v: &str, opt: &str) -> Result<i32, OptionError> {
    v.trim()
        .parse::<i32>()
        .map_err(|_| bad_option(&format!("--{opt}={v}"), "invalid numeric value"))
}

/// Applies one option occurrence. Upstream: options.c, the parse_arguments() switch and
/// popt's table assignments.
fn apply(
    o: &mut Options,
    st: &mut Implied,
    refusals: &Refusals,
    row: usize,
    value: Option<String>,
) -> Result<(), OptionError> {
    if refusals.is_refused(row) {
        return Err(refused(row));
    }
    let def = &OPTIONS[row];
    let v = value.unwrap_or_default();
    let name = def.long.unwrap_or("");
    match def.key {
        "OPT_SERVER" => o.server = true,
        "OPT_SENDER" => o.am_sender = true,
        "v" => o.verbose = o.verbose.saturating_add(1),
        "verbose=0" => o.verbose = 0,
        "q" => o.quiet = o.quiet.saturating_add(1),
        "do_stats=1" => o.stats = true,
        "dry_run=1" => o.dry_run = true,
        "a" => {
            if let Some(r) = refusals.refused_short("rdlptgoD") {
                return Err(refused(r));
            }
            if st.recurse_level == 0 {
                st.recurse_level = 1;
            }
            o.preserve_links = true;
            o.preserve_perms = true;
            o.preserve_mtimes = true;
            o.preserve_gid = true;
            o.preserve_uid = true;
            o.preserve_devices = true;
            o.preserve_specials = true;
        }
        "recurse=2" => st.recurse_level = 2,
        "recurse=0" => st.recurse_level = 0,
        "allow_inc_recurse=1" => o.allow_inc_recurse = true,
        "allow_inc_recurse=0" => o.allow_inc_recurse = false,
        "xfer_dirs=2" => st.xfer_dirs = Some(2),
        "xfer_dirs=0" => st.xfer_dirs = Some(0),
        "xfer_dirs=4" => st.xfer_dirs = Some(4),
        "preserve_perms=1" => o.preserve_perms = true,
        "preserve_perms=0" => o.preserve_perms = false,
        "preserve_executability=1" => o.preserve_executability = true,
        "A" => {
            o.preserve_acls = true;
            o.preserve_perms = true;
        }
        "preserve_acls=0" => o.preserve_acls = false,
        "X" => o.preserve_xattrs = o.preserve_xattrs.saturating_add(1),
        "preserve_xattrs=0" => o.preserve_xattrs = 0,
        "preserve_mtimes=1" => o.preserve_mtimes = true,
        "preserve_mtimes=0" => o.preserve_mtimes = false,
        "U" => o.preserve_atimes = o.preserve_atimes.saturating_add(1),
        "preserve_atimes=0" => o.preserve_atimes = 0,
        "preserve_crtimes=1" => o.preserve_crtimes = true,
        "preserve_crtimes=0" => o.preserve_crtimes = false,
        "omit_dir_times=1" => o.omit_dir_times = true,
        "omit_dir_times=0" => o.omit_dir_times = false,
        "omit_link_times=1" => o.omit_link_times = true,
        "omit_link_times=0" => o.omit_link_times = false,
        "OPT_MODIFY_WINDOW" => o.modify_window = Some(int_arg(&v, name)?),
        "am_root=2" => o.super_mode = Some(2),
        "am_root=0" => o.super_mode = Some(0),
        "am_root=-1" => o.super_mode = Some(-1),
        "preserve_uid=1" => o.preserve_uid = true,
        "preserve_uid=0" => o.preserve_uid = false,
        "preserve_gid=1" => o.preserve_gid = true,
        "preserve_gid=0" => o.preserve_gid = false,
        "D" => {
            o.preserve_devices = true;
            o.preserve_specials = true;
        }
        "OPT_NO_D" => {
            o.preserve_devices = false;
            o.preserve_specials = false;
        }
        "preserve_devices=1" => o.preserve_devices = true,
        "preserve_devices=0" => o.preserve_devices = false,
        "copy_devices=1" => o.copy_devices = true,
        "write_devices=1" => o.write_devices = true,
        "write_devices=0" => o.write_devices = false,
        "preserve_specials=1" => o.preserve_specials = true,
        "preserve_specials=0" => o.preserve_specials = false,
        "preserve_links=1" => o.preserve_links = true,
        "preserve_links=0" => o.preserve_links = false,
        "copy_links=1" => o.copy_links = true,
        "copy_unsafe_links=1" => o.copy_unsafe_links = true,
        "safe_symlinks=1" => o.safe_links = true,
        "munge_symlinks=1" => o.munge_links = true,
        "munge_symlinks=0" => o.munge_links = false,
        "copy_dirlinks=1" => o.copy_dirlinks = true,
        "keep_dirlinks=1" => o.keep_dirlinks = true,
        "H" => o.hard_links = o.hard_links.saturating_add(1),
        "preserve_hard_links=0" => o.hard_links = 0,
        "relative_paths=1" => st.relative = Some(true),
        "relative_paths=0" => st.relative = Some(false),
        "implied_dirs=1" => o.implied_dirs = true,
        "implied_dirs=0" => o.implied_dirs = false,
        "OPT_CHMOD" => o.chmod.push(v),
        "ignore_times=1" => o.ignore_times = true,
        "size_only=1" => o.size_only = true,
        "x" => o.one_file_system = o.one_file_system.saturating_add(1),
        "one_file_system=0" => o.one_file_system = 0,
        "update_only=1" => o.update_only = true,
        "ignore_non_existing=1" => o.ignore_non_existing = true,
        "ignore_existing=1" => o.ignore_existing = true,
        "OPT_MAX_SIZE" => o.max_size = Some(size_arg(&v, 'b', name)?),
        "OPT_MIN_SIZE" => o.min_size = Some(size_arg(&v, 'b', name)?),
        "sparse_files=1" => o.sparse = true,
        "sparse_files=0" => o.sparse = false,
        "preallocate_files=1" => o.preallocate = true,
        "inplace=1" => o.inplace = true,
        "inplace=0" => o.inplace = false,
        // On a server each --append counts up (2 = --append-verify).
        "OPT_APPEND" => o.append_mode = o.append_mode.saturating_add(1),
        "append_mode=2" => o.append_mode = 2,
        "append_mode=0" => o.append_mode = 0,
        "delete_mode=1" => st.delete_mode = true,
        "delete_before=1" => st.delete_before = true,
        "delete_during=1" => st.delete_during = 1,
        "delete_during=2" => st.delete_during = 2,
        "delete_after=1" => st.delete_after = true,
        "delete_excluded=1" => o.delete_excluded = true,
        "missing_args|=2" => o.missing_args |= 2,
        "missing_args|=1" => o.missing_args |= 1,
        "remove_source_files=2" => o.remove_source_files = 2,
        "remove_source_files=1" => o.remove_source_files = 1,
        "force_delete=1" => o.force_delete = true,
        "force_delete=0" => o.force_delete = false,
        "ignore_errors=1" => o.ignore_errors = true,
        "ignore_errors=0" => o.ignore_errors = false,
        "max_delete" => o.max_delete = Some(int_arg(&v, name)?),
        "F" => o.f_option = o.f_option.saturating_add(1),
        "OPT_FILTER" => o.filters.push(FilterArg::Filter(v)),
        "OPT_EXCLUDE" => o.filters.push(FilterArg::Exclude(v)),
        "OPT_INCLUDE" => o.filters.push(FilterArg::Include(v)),
        "OPT_EXCLUDE_FROM" => o.filters.push(FilterArg::ExcludeFrom(v)),
        "OPT_INCLUDE_FROM" => o.filters.push(FilterArg::IncludeFrom(v)),
        "cvs_exclude=1" => o.cvs_exclude = true,
        "whole_file=1" => o.whole_file = Some(true),
        "whole_file=0" => o.whole_file = Some(false),
        "always_checksum=1" => o.always_checksum = true,
        "always_checksum=0" => o.always_checksum = false,
        "checksum_choice" => o.checksum_choice = Some(v),
        "OPT_BLOCK_SIZE" => {
            // Upstream: MAX_BLOCK_SIZE (the protocol is 30 or later when this matters).
            let size = size_arg_bounded(&v, 'b', name, 0, Some(1 << 17), false)?;
            o.block_size = Some(size as u32);
        }
        "OPT_COMPARE_DEST" => o.compare_dest.push(v),
        "OPT_COPY_DEST" => o.copy_dest.push(v),
        "OPT_LINK_DEST" => o.link_dest.push(v),
        "y" => o.fuzzy = o.fuzzy.saturating_add(1),
        "fuzzy_basis=0" => o.fuzzy = 0,
        "z" => o.compress = o.compress.saturating_add(1),
        "OPT_OLD_COMPRESS" => o.compress_choice = Some("zlib".into()),
        "OPT_NEW_COMPRESS" => o.compress_choice = Some("zlibx".into()),
        "OPT_NO_COMPRESS" => {
            o.compress = 0;
            o.compress_choice = None;
        }
        "compress_choice" => o.compress_choice = Some(v),
        "skip_compress" => o.skip_compress = Some(v),
        "do_compression_level" => o.compress_level = Some(int_arg(&v, name)?),
        "P" => {
            o.progress = true;
            o.keep_partial = true;
        }
        "do_progress=1" => o.progress = true,
        "do_progress=0" => o.progress = false,
        "keep_partial=1" => o.keep_partial = true,
        "keep_partial=0" => o.keep_partial = false,
        "partial_dir" => o.partial_dir = Some(v),
        "delay_updates=1" => o.delay_updates = true,
        "delay_updates=0" => o.delay_updates = false,
        "prune_empty_dirs=1" => o.prune_empty_dirs = true,
        "prune_empty_dirs=0" => o.prune_empty_dirs = false,
        "stdout_format" => o.stdout_format = Some(v),
        "i" => o.itemize_changes = o.itemize_changes.saturating_add(1),
        "itemize_changes=0" => o.itemize_changes = 0,
        "OPT_BWLIMIT" => {
            let size = size_arg_bounded(&v, 'K', name, 512, None, true)?;
            o.bwlimit = Some(((size + 512) / 1024) as u64).filter(|&k| k > 0);
        }
        "bwlimit=0" => o.bwlimit = None,
        "make_backups=1" => o.make_backups = true,
        "make_backups=0" => o.make_backups = false,
        "backup_dir" => o.backup_dir = Some(v),
        "backup_suffix" => o.backup_suffix = Some(v),
        "list_only=2" => o.list_only = true,
        "files_from" => o.files_from = Some(v),
        "eol_nulls=1" => o.from0 = true,
        "eol_nulls=0" => o.from0 = false,
        "protect_args=1" => o.protect_args = true,
        "protect_args=0" => o.protect_args = false,
        "numeric_ids=1" => o.numeric_ids = true,
        "numeric_ids=0" => o.numeric_ids = false,
        "OPT_USERMAP" => {
            o.usermap = Some(v);
            o.preserve_uid = true;
        }
        "OPT_GROUPMAP" => {
            o.groupmap = Some(v);
            o.preserve_gid = true;
        }
        "OPT_CHOWN" => {
            let (user, group) = v.split_once(':').unwrap_or((v.as_str(), ""));
            if !user.is_empty() {
                o.usermap = Some(format!("*:{user}"));
                o.preserve_uid = true;
            }
            if !group.is_empty() {
                o.groupmap = Some(format!("*:{group}"));
                o.preserve_gid = true;
            }
        }
        "io_timeout" => o.io_timeout = Some(int_arg(&v, name)?),
        "io_timeout=0" => o.io_timeout = Some(0),
        "do_fsync=1" => o.fsync = true,
        "tmpdir" => o.temp_dir = Some(v),
        "checksum_seed" => o.checksum_seed = Some(int_arg(&v, name)?),
        "protocol_version" => o.protocol = Some(int_arg(&v, name)?),
        "mkpath_dest_arg=1" => o.mkpath = true,
        "mkpath_dest_arg=0" => o.mkpath = false,
        "use_qsort=1" => o.use_qsort = true,
        "shell_cmd" => {
            // On a server, `-e` carries the capability letters: `-e.iLsfxCIvu`.
            o.client_info = match v.find('.') {
                Some(dot) => v[dot + 1..].to_string(),
                None => v,
            };
        }
        "OPT_INFO" => o.info.apply_user(&v),
        "h" => o.human_readable = o.human_readable.saturating_add(1),
        "human_readable=0" => o.human_readable = 0,
        // Accepted and without effect on a server.
        "OPT_DEBUG"
        | "OPT_STDERR"
        | "msgs2stderr=1"
        | "msgs2stderr=0"
        | "output_motd=1"
        | "output_motd=0"
        | "copy_as"
        | "trust_sender=1"
        | "connect_timeout"
        | "connect_timeout=0"
        | "allow_8bit_chars=1"
        | "allow_8bit_chars=0"
        | "blocking_io=1"
        | "blocking_io=0"
        | "outbuf_mode"
        | "max_alloc_arg"
        | "do_compression_threads"
        | "OPT_OLD_ARGS"
        | "old_style_args=0"
        | "insecure_links=0"
        | "drop_devices=1"
        | "drop_devices=0"
        | "confine_root"
        | "OPT_STOP_AFTER"
        | "OPT_STOP_AT"
        | "OPT_READ_BATCH"
        | "OPT_WRITE_BATCH"
        | "OPT_ONLY_WRITE_BATCH" => {}
        _ => return Err(bad_option(&format!("--{name}"), "unknown option")),
    }
    Ok(())
}

/// The implications upstream applies after the loop, for a server.
fn finish(o: &mut Options, st: &Implied, refusals: &Refusals) -> Result<(), OptionError> {
    o.info.apply_verbosity(o.verbose);
    if let Some(choice) = &o.compress_choice {
        if choice.eq_ignore_ascii_case("auto") {
            o.compress_choice = None;
        }
    } else if o.compress > 1 {
        o.compress_choice = Some("zlibx".into());
    }
    if let Some(c) = &o.checksum_choice
        && (c.eq_ignore_ascii_case("auto") || c.eq_ignore_ascii_case("auto,auto"))
    {
        o.checksum_choice = None;
    }
    if (o.compresses() || o.compress_level.is_some())
        && let Some(r) = refusals.refused_key("z")
    {
        return Err(refused(r));
    }
    let mut recurse = st.recurse_level;
    let mut xfer_dirs = st.xfer_dirs;
    if o.files_from.is_some() {
        if recurse == 1 {
            recurse = 0;
        }
        if xfer_dirs.is_none() {
            xfer_dirs = Some(1);
        }
    }
    if xfer_dirs.is_some_and(|x| x >= 4) {
        o.old_dirs = true;
        recurse = 1;
        xfer_dirs = Some(1);
    } else if recurse > 0 {
        xfer_dirs = Some(1);
    }
    o.recurse = recurse > 0;
    o.xfer_dirs = match xfer_dirs {
        Some(x) => x > 0,
        None => o.list_only,
    };
    // Names from a file are relative unless the client says otherwise.
    o.relative = st.relative.unwrap_or(o.files_from.is_some());
    if !o.relative {
        o.implied_dirs = false;
    }
    let whens =
        u8::from(st.delete_before) + u8::from(st.delete_during > 0) + u8::from(st.delete_after);
    if whens > 1 {
        return Err(OptionError::Invalid(
            "You may not combine multiple --delete-WHEN options.".into(),
        ));
    }
    o.delete = if st.delete_before {
        DeleteWhen::Before
    } else if st.delete_during == 1 {
        DeleteWhen::During
    } else if st.delete_during == 2 {
        DeleteWhen::Delay
    } else if st.delete_after {
        DeleteWhen::After
    } else if st.delete_mode || o.delete_excluded {
        // The protocol decides between before and during later (setup), unless one is refused.
        let before = refusals.refused_key("delete_before=1");
        let during = refusals.refused_key("delete_during=1");
        match (before, during) {
            (Some(b), Some(_)) => return Err(refused(b)),
            (Some(_), None) => DeleteWhen::During,
            (None, Some(_)) => DeleteWhen::Before,
            (None, None) => {
                o.delete_when_default = true;
                DeleteWhen::During
            }
        }
    } else {
        DeleteWhen::Never
    };
    if !o.xfer_dirs && o.deletes() {
        return Err(OptionError::Invalid(
            "--delete does not work without --recursive (-r) or --dirs (-d).".into(),
        ));
    }
    if o.missing_args == 3 {
        o.missing_args = 2;
    }
    if let Some(r) = refusals.refused_key("delete_mode=1")
        && (o.deletes() || o.missing_args == 2 || (o.remove_source_files > 0 && o.am_sender))
    {
        return Err(refused(r));
    }
    if let Some(m) = o.max_delete
        && m < 0
        && m != i32::MIN
    {
        o.max_delete = Some(0);
    }
    if o.backup_dir.is_some() {
        o.make_backups = true;
    }
    if let Some(s) = &o.backup_suffix
        && s.contains('/')
    {
        return Err(OptionError::Invalid(format!(
            "--suffix cannot contain slashes: {s}"
        )));
    }
    // Upstream refuses mixed basis-dir kinds and more than 20 of them as it parses them.
    let kinds = [
        ("--link-dest", o.link_dest.len()),
        ("--copy-dest", o.copy_dest.len()),
        ("--compare-dest", o.compare_dest.len()),
    ];
    let used: Vec<_> = kinds.iter().filter(|(_, n)| *n > 0).collect();
    if let [first, second, ..] = used.as_slice() {
        return Err(OptionError::Invalid(format!(
            "ERROR: the {} option conflicts with the {} option",
            second.0, first.0
        )));
    }
    if let Some((name, n)) = used.first()
        && *n > 20
    {
        return Err(OptionError::Invalid(format!(
            "ERROR: at most 20 {name} args may be specified"
        )));
    }
    if o.make_backups && o.backup_dir.is_none() {
        if o.backup_suffix.as_deref() == Some("") && !o.am_sender {
            return Err(OptionError::Invalid(
                "--suffix cannot be empty without a --backup-dir".into(),
            ));
        }
        // Backups beside the files change the directories after their times were set.
        o.omit_dir_times = true;
    }
    if o.append_mode > 0 || o.write_devices {
        if o.append_mode > 0 && o.whole_file == Some(true) {
            return Err(OptionError::Invalid(
                "--append cannot be used with --whole-file".into(),
            ));
        }
        if let Some(r) = refusals.refused_key("inplace=1") {
            return Err(refused(r));
        }
        o.inplace = true;
    }
    if o.delay_updates && o.partial_dir.is_none() {
        o.partial_dir = Some(".~tmp~".into());
    }
    if o.inplace {
        if o.partial_dir.is_some() {
            return Err(OptionError::Invalid(format!(
                "--{} cannot be used with --{}",
                if o.append_mode > 0 {
                    "append"
                } else {
                    "inplace"
                },
                if o.delay_updates {
                    "delay-updates"
                } else {
                    "partial-dir"
                }
            )));
        }
        if let Some(r) = refusals.refused_key("keep_partial=1") {
            return Err(refused(r));
        }
        o.keep_partial = false;
    } else if let Some(dir) = o.partial_dir.clone() {
        if dir.is_empty() || dir == "." {
            o.partial_dir = None;
            if let Some(r) = refusals.refused_key("keep_partial=1") {
                return Err(refused(r));
            }
        }
        o.keep_partial = true;
    }
    if o.super_mode == Some(-1) && o.preserve_xattrs > 1 {
        return Err(OptionError::Invalid(
            "--fake-super conflicts with -XX".into(),
        ));
    }
    Ok(())
}

/// Parses a size with an optional suffix (K, M, G, T, P in either case; `B` after it for
/// 1000s, `iB` for 1024s; a trailing `+1`/`-1`), bounded by `min` (0 also allowed with
/// `unlimited_0`) and `max` (when given). The error text is upstream's:
/// `--OPT=ARG is invalid`, or `is too large (max: N)` / `is too small (min: N)`.
/// Upstream: options.c, parse_size_arg().
fn size_arg_bounded(
    arg: &str,
    default_suffix: char,
    opt: &str,
    min: i64,
    max: Option<i64>,
    unlimited_0: bool,
) -> Result<i64, OptionError> {
    let fail = |err: &str, limit: Option<(&str, i64)>| {
        let mut text = format!("--{opt}={arg} is {err}");
        if let Some((which, n)) = limit {
            text.push_str(&format!(
                " ({which}: {}{})",
                crate::protocol::options::big_num_units(n),
                if unlimited_0 && which == "min" {
                    " or 0 for unlimited"
                } else {
                    ""
                }
            ));
        }
        text.truncate(198);
        OptionError::Invalid(text)
    };
    let size_max = max.unwrap_or(i64::MAX / 2);
    let bytes = arg.as_bytes();
    let mut at = bytes.iter().take_while(|b| b.is_ascii_digit()).count();
    if bytes.get(at) == Some(&b'.') {
        at += 1;
        at += bytes[at..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
    }
    let suffix = match bytes.get(at) {
        Some(&c) if c != b'+' && c != b'-' => {
            at += 1;
            c
        }
        _ => default_suffix as u8,
    };
    let reps = match suffix.to_ascii_lowercase() {
        b'b' => 0,
        b'k' => 1,
        b'm' => 2,
        b'g' => 3,
        b't' => 4,
        b'p' => 5,
        _ => return Err(fail("invalid", None)),
    };
    let rest = &bytes[at..];
    let (mult, rest): (i64, &[u8]) = match rest {
        [b'b' | b'B', tail @ ..] => (1000, tail),
        [] | [b'+' | b'-', ..] => (1024, rest),
        [a, b, tail @ ..] if a.eq_ignore_ascii_case(&b'i') && b.eq_ignore_ascii_case(&b'b') => {
            (1024, tail)
        }
        _ => return Err(fail("invalid", None)),
    };
    let too_large = || fail("too large", max.map(|m| ("max", m)));
    let mut unit: i64 = 1;
    for _ in 0..reps {
        if unit > size_max / mult {
            return Err(too_large());
        }
        unit *= mult;
    }
    // strtod() of the leading number (digits and one '.').
    let num_len = arg.len()
        - arg
            .trim_start_matches(|c: char| c.is_ascii_digit() || c == '.')
            .len();
    let dsize: f64 = arg[..num_len].parse().unwrap_or(0.0);
    if !dsize.is_finite()
        || dsize > size_max as f64 / unit as f64
        || (max.is_none() && dsize >= size_max as f64 / unit as f64)
    {
        return Err(too_large());
    }
    let mut size = (dsize * unit as f64) as i64;
    let rest = match rest {
        [b'+', b'1', tail @ ..] if at > 0 => {
            if size == size_max {
                return Err(too_large());
            }
            size += 1;
            tail
        }
        [b'-', b'1', tail @ ..] => {
            size -= 1;
            tail
        }
        other => other,
    };
    if !rest.is_empty() {
        return Err(fail("invalid", None));
    }
    if size < 0 || max.is_some_and(|m| size > m) {
        return Err(too_large());
    }
    if size < min && !(unlimited_0 && size == 0) {
        return Err(fail("too small", Some(("min", min))));
    }
    Ok(size)
}

/// [`size_arg_bounded`] without bounds (`--max-size`, `--min-size`).
fn size_arg(arg: &str, default_suffix: char, opt: &str) -> Result<i64, OptionError> {
    size_arg_bounded(arg, default_suffix, opt, 0, None, false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn args(s: &[&str]) -> Vec<String> {
        s.iter().map(|a| a.to_string()).collect()
    }

    #[test]
    fn reference_push_arguments() {
        // a-push-p32: --server -ulogDtprRze.iLsfxCIvu --delete . backup/
        let o = parse_server_args(
            &args(&[
                "--server",
                "-ulogDtprRze.iLsfxCIvu",
                "--delete",
                ".",
                "backup/",
            ]),
            &Refusals::for_daemon(""),
        )
        .unwrap();
        assert!(o.server && !o.am_sender);
        assert!(o.update_only && o.preserve_links && o.preserve_uid && o.preserve_gid);
        assert!(o.preserve_devices && o.preserve_specials && o.preserve_mtimes && o.preserve_perms);
        assert!(o.recurse && o.xfer_dirs && o.relative && o.compress == 1);
        assert_eq!(o.client_info, "iLsfxCIvu");
        assert_eq!(o.delete, DeleteWhen::During);
        assert_eq!(o.paths(), ["backup/"]);
    }

    #[test]
    fn files_from_implies_relative() {
        let parse = |a: &[&str]| parse_server_args(&args(a), &Refusals::none()).unwrap();
        let o = parse(&["--server", "--sender", "-r", "--files-from=-", ".", "m/"]);
        assert!(o.relative && o.implied_dirs);
        // As stock sends `rsync -rt --no-relative --files-from=F host:src/ dst`.
        let o = parse(&[
            "--server",
            "--sender",
            "-tre.iLsfxCIvu",
            "--files-from=-",
            "--from0",
            "--no-relative",
            ".",
            "src/",
        ]);
        assert!(!o.relative && !o.implied_dirs);
        assert!(!parse(&["--server", "--sender", "-r", ".", "m/"]).relative);
    }

    #[test]
    fn pull_and_list_only() {
        let o = parse_server_args(
            &args(&[
                "--server",
                "--sender",
                "-de.LsfxCIvu",
                "--list-only",
                ".",
                "open/",
            ]),
            &Refusals::none(),
        )
        .unwrap();
        assert!(o.am_sender && o.list_only && o.xfer_dirs && !o.recurse);
        assert_eq!(o.client_info, "LsfxCIvu");
    }

    #[test]
    fn refusals_give_upstream_text() {
        let err = parse_server_args(
            &args(&[
                "--server",
                "-logDtpre.iLsfxCIvu",
                "--delete",
                ".",
                "refusing/",
            ]),
            &Refusals::for_daemon("delete"),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "The server is configured to refuse --delete"
        );
        let err = parse_server_args(
            &args(&["--server", "-rz", ".", "m/"]),
            &Refusals::for_daemon("compress"),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "The server is configured to refuse --compress (-z)"
        );
        let err = parse_server_args(
            &args(&["--server", "-r", "--new-compress", ".", "m/"]),
            &Refusals::for_daemon("z"),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "The server is configured to refuse --compress (-z)"
        );
        let err = parse_server_args(
            &args(&["--server", "-r", "--log-file=/x", ".", "m/"]),
            &Refusals::for_daemon(""),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "The server is configured to refuse --log-file"
        );
    }

    #[test]
    fn values_and_errors() {
        let o = parse_server_args(
            &args(&[
                "--server",
                "-rB2048",
                "--max-size=1.5K",
                "--timeout",
                "30",
                "--compress-level=3",
                ".",
                "m/",
            ]),
            &Refusals::none(),
        )
        .unwrap();
        assert_eq!(o.block_size, Some(2048));
        assert_eq!(o.max_size, Some(1536));
        assert_eq!(o.io_timeout, Some(30));
        assert_eq!(o.compress_level, Some(3));
        assert!(parse_server_args(&args(&["--server", "--bogus"]), &Refusals::none()).is_err());
        assert!(parse_server_args(&args(&["--server", "--timeout"]), &Refusals::none()).is_err());
        assert!(
            parse_server_args(
                &args(&["--server", "-d", "--delete-before", "--delete-after"]),
                &Refusals::none()
            )
            .is_err()
        );
        assert!(
            parse_server_args(&args(&["--server", "--delete", "."]), &Refusals::none()).is_err()
        );
        assert_eq!(size_arg("10M", 'b', "x"), Ok(10 << 20));
        assert_eq!(size_arg("1KB", 'b', "x"), Ok(1000));
        assert_eq!(size_arg("1k+1", 'b', "x"), Ok(1025));
        assert!(size_arg("x", 'b', "x").is_err());
        // The client sends --bwlimit in KiB without a suffix; the default suffix is 'K'.
        assert_eq!(
            size_arg_bounded("102400", 'K', "bwlimit", 512, None, true),
            Ok(100 << 20)
        );
        assert_eq!(
            size_arg_bounded("0", 'K', "bwlimit", 512, None, true),
            Ok(0)
        );
        assert_eq!(
            size_arg_bounded("100", 'b', "bwlimit", 512, None, true),
            Err(OptionError::Invalid(
                "--bwlimit=100 is too small (min: 512 or 0 for unlimited)".into()
            ))
        );
        assert_eq!(
            size_arg_bounded("1m", 'b', "block-size", 0, Some(1 << 17), false),
            Err(OptionError::Invalid(
                "--block-size=1m is too large (max: 128.00K)".into()
            ))
        );
        assert_eq!(
            size_arg("99999999999999999999", 'b', "max-size"),
            Err(OptionError::Invalid(
                "--max-size=99999999999999999999 is too large".into()
            ))
        );
        assert_eq!(
            size_arg("12q", 'b', "max-size"),
            Err(OptionError::Invalid("--max-size=12q is invalid".into()))
        );
    }

    /// Argument lists a client could send: real option names (with and without values,
    /// inline or separate), bundles of short letters, numbers and sizes, and noise.
    fn arb_args() -> impl Strategy<Value = Vec<String>> {
        let long = prop::sample::select(
            super::super::table::OPTIONS
                .iter()
                .filter_map(|o| o.long)
                .collect::<Vec<_>>(),
        );
        let arg = prop_oneof![
            long.clone().prop_map(|l| format!("--{l}")),
            (long, "[-+0-9a-zA-Z.,=*]{0,12}").prop_map(|(l, v)| format!("--{l}={v}")),
            "-[a-zA-Z0-9.]{1,16}",
            "-e\\.[a-zA-Z]{0,12}",
            "[0-9]{1,25}[kKmMgGtTpPbB]?[+-]?[0-9]?",
            Just(".".to_string()),
            Just("--".to_string()),
            ".{0,12}",
        ];
        prop::collection::vec(arg, 0..12).prop_map(|mut v| {
            v.insert(0, "--server".to_string());
            v
        })
    }

    proptest! {
        #[test]
        fn arbitrary_arguments_never_panic(args in arb_args(), refuse in "[-a-z*?! ]{0,30}") {
            let _ = parse_server_args(&args, &Refusals::for_daemon(&refuse));
            let _ = parse_server_args(&args, &Refusals::none());
        }

        #[test]
        fn sizes_never_panic(v in "[0-9.]{0,30}[a-zA-Z]{0,3}[+-]?[0-9]{0,3}", suffix in prop::sample::select(vec!['b', 'k', 'm'])) {
            let _ = size_arg(&v, suffix, "--max-size");
        }
    }
}
