//! The server's argument list into one [`Options`] value (upstream: options.c
//! parse_arguments(), as run with `--server`). This is the only reader of client flags;
//! everything downstream takes `&Options`.

mod encode;
mod info;
mod parse;
pub mod refuse;
pub mod table;

pub use encode::{STOCK_CAPABILITIES, client_info, server_args};
pub use info::{Info, InfoLevels};
pub use parse::parse_server_args;

/// A limit as upstream's error texts show it: `do_big_num(n, 3)`, units of 1024 above
/// 1023 (`128.00K`), else the plain number.
pub fn big_num_units(n: i64) -> String {
    if n.abs() >= 1024 {
        let mut d = n as f64 / 1024.0;
        let mut unit = 'K';
        for u in ['M', 'G', 'T', 'P'] {
            if d.abs() < 1024.0 {
                break;
            }
            d /= 1024.0;
            unit = u;
        }
        format!("{d:.2}{unit}")
    } else {
        n.to_string()
    }
}
pub use refuse::Refusals;

/// Which `--delete-WHEN` applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeleteWhen {
    #[default]
    Never,
    Before,
    During,
    Delay,
    After,
}

/// A filter rule given as an option, in order (`--filter`, `--exclude`, `--include`, `-F`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FilterArg {
    Filter(String),
    Exclude(String),
    Include(String),
    ExcludeFrom(String),
    IncludeFrom(String),
}

/// Everything a session does, as the client asked (before module policy is applied).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// `--server` was given.
    pub server: bool,
    /// `--sender`: this side sends (a pull from the daemon).
    pub am_sender: bool,
    pub verbose: u8,
    pub quiet: u8,
    /// `--info` levels (from `-v` and the client's `--info=` words).
    pub info: InfoLevels,
    pub dry_run: bool,
    pub recurse: bool,
    /// Upstream's xfer_dirs after implications (1 = transfer directories).
    pub xfer_dirs: bool,
    /// `--old-dirs`: adds the `- /*/*` rule.
    pub old_dirs: bool,
    pub allow_inc_recurse: bool,
    pub preserve_links: bool,
    pub preserve_perms: bool,
    pub preserve_executability: bool,
    pub preserve_acls: bool,
    pub preserve_xattrs: u8,
    pub preserve_mtimes: bool,
    pub preserve_atimes: u8,
    pub preserve_crtimes: bool,
    pub omit_dir_times: bool,
    pub omit_link_times: bool,
    pub modify_window: Option<i32>,
    /// `--super` (2), `--no-super` (0) or `--fake-super` (-1), when given.
    pub super_mode: Option<i8>,
    pub preserve_uid: bool,
    pub preserve_gid: bool,
    pub preserve_devices: bool,
    pub preserve_specials: bool,
    pub copy_devices: bool,
    pub write_devices: bool,
    pub copy_links: bool,
    pub copy_unsafe_links: bool,
    pub safe_links: bool,
    pub munge_links: bool,
    pub copy_dirlinks: bool,
    pub keep_dirlinks: bool,
    pub hard_links: u8,
    pub relative: bool,
    pub implied_dirs: bool,
    pub chmod: Vec<String>,
    pub ignore_times: bool,
    pub size_only: bool,
    pub one_file_system: u8,
    pub update_only: bool,
    pub ignore_non_existing: bool,
    pub ignore_existing: bool,
    pub max_size: Option<i64>,
    pub min_size: Option<i64>,
    pub sparse: bool,
    pub preallocate: bool,
    pub inplace: bool,
    /// 0 none, 1 `--append`, 2 `--append-verify`.
    pub append_mode: u8,
    pub delete: DeleteWhen,
    /// `--delete` without a `--delete-WHEN`: the protocol decides (before below 30).
    pub delete_when_default: bool,
    pub delete_excluded: bool,
    /// Bit 1 ignore, bit 2 delete missing args (upstream's missing_args).
    pub missing_args: u8,
    pub remove_source_files: u8,
    pub force_delete: bool,
    pub ignore_errors: bool,
    pub max_delete: Option<i32>,
    pub filters: Vec<FilterArg>,
    /// Number of `-F` given.
    pub f_option: u8,
    pub cvs_exclude: bool,
    pub whole_file: Option<bool>,
    pub always_checksum: bool,
    pub checksum_choice: Option<String>,
    pub block_size: Option<u32>,
    pub compare_dest: Vec<String>,
    pub copy_dest: Vec<String>,
    pub link_dest: Vec<String>,
    pub fuzzy: u8,
    /// `-z` given (count).
    pub compress: u8,
    pub compress_choice: Option<String>,
    pub compress_level: Option<i32>,
    pub skip_compress: Option<String>,
    pub progress: bool,
    pub keep_partial: bool,
    pub partial_dir: Option<String>,
    pub delay_updates: bool,
    pub prune_empty_dirs: bool,
    /// `--log-format`/`--out-format` (sent by a pushing client for `%i` itemizing).
    pub stdout_format: Option<String>,
    pub itemize_changes: u8,
    pub bwlimit: Option<u64>,
    pub make_backups: bool,
    pub backup_dir: Option<String>,
    pub backup_suffix: Option<String>,
    pub list_only: bool,
    /// How numbers are shown: 0 plain, 1 with thousands separators (the default), 2 and
    /// 3 with K/M/G units of 1000 or 1024 (`-h`, `-hh`).
    pub human_readable: u8,
    pub files_from: Option<String>,
    pub from0: bool,
    pub protect_args: bool,
    pub numeric_ids: bool,
    pub usermap: Option<String>,
    pub groupmap: Option<String>,
    pub io_timeout: Option<i32>,
    pub fsync: bool,
    pub temp_dir: Option<String>,
    pub checksum_seed: Option<i32>,
    pub protocol: Option<i32>,
    pub mkpath: bool,
    pub use_qsort: bool,
    pub stats: bool,
    /// The capability letters after `-e.` (upstream's client_info).
    pub client_info: String,
    /// Arguments after the options, `.` included.
    pub args: Vec<String>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            server: false,
            am_sender: false,
            verbose: 0,
            quiet: 0,
            info: InfoLevels::default(),
            dry_run: false,
            recurse: false,
            xfer_dirs: false,
            old_dirs: false,
            allow_inc_recurse: true,
            preserve_links: false,
            preserve_perms: false,
            preserve_executability: false,
            preserve_acls: false,
            preserve_xattrs: 0,
            preserve_mtimes: false,
            preserve_atimes: 0,
            preserve_crtimes: false,
            omit_dir_times: false,
            omit_link_times: false,
            modify_window: None,
            super_mode: None,
            preserve_uid: false,
            preserve_gid: false,
            preserve_devices: false,
            preserve_specials: false,
            copy_devices: false,
            write_devices: false,
            copy_links: false,
            copy_unsafe_links: false,
            safe_links: false,
            munge_links: false,
            copy_dirlinks: false,
            keep_dirlinks: false,
            hard_links: 0,
            relative: false,
            implied_dirs: true,
            chmod: Vec::new(),
            ignore_times: false,
            size_only: false,
            one_file_system: 0,
            update_only: false,
            ignore_non_existing: false,
            ignore_existing: false,
            max_size: None,
            min_size: None,
            sparse: false,
            preallocate: false,
            inplace: false,
            append_mode: 0,
            delete: DeleteWhen::Never,
            delete_when_default: false,
            delete_excluded: false,
            missing_args: 0,
            remove_source_files: 0,
            force_delete: false,
            ignore_errors: false,
            max_delete: None,
            filters: Vec::new(),
            f_option: 0,
            cvs_exclude: false,
            whole_file: None,
            always_checksum: false,
            checksum_choice: None,
            block_size: None,
            compare_dest: Vec::new(),
            copy_dest: Vec::new(),
            link_dest: Vec::new(),
            fuzzy: 0,
            compress: 0,
            compress_choice: None,
            compress_level: None,
            skip_compress: None,
            progress: false,
            keep_partial: false,
            partial_dir: None,
            delay_updates: false,
            prune_empty_dirs: false,
            stdout_format: None,
            itemize_changes: 0,
            bwlimit: None,
            make_backups: false,
            backup_dir: None,
            backup_suffix: None,
            list_only: false,
            human_readable: 1,
            files_from: None,
            from0: false,
            protect_args: false,
            numeric_ids: false,
            usermap: None,
            groupmap: None,
            io_timeout: None,
            fsync: false,
            temp_dir: None,
            checksum_seed: None,
            protocol: None,
            mkpath: false,
            use_qsort: false,
            stats: false,
            client_info: String::new(),
            args: Vec::new(),
        }
    }
}

impl Options {
    /// Whether any deletion was asked for.
    pub fn deletes(&self) -> bool {
        self.delete != DeleteWhen::Never
    }

    /// The options a session runs with, resolved once: what depends on the negotiated
    /// protocol, and what the client may ask the server to report capped by the module's
    /// `max verbosity` (`None` outside a daemon). Nothing changes them afterwards.
    pub fn for_session(mut self, protocol: i32, max_verbosity: Option<i32>) -> Options {
        self.apply_protocol(protocol);
        if let Some(level) = max_verbosity {
            self.info.limit(level);
        }
        self
    }

    /// Resolves what depends on the negotiated protocol. Upstream: compat.c,
    /// setup_protocol().
    fn apply_protocol(&mut self, protocol: i32) {
        if self.delete_when_default && protocol < 30 {
            self.delete = DeleteWhen::Before;
        }
        if protocol < 30 && self.append_mode == 1 {
            self.append_mode = 2;
        }
    }

    /// Whether compression is on, by `-z` or by a named choice.
    pub fn compresses(&self) -> bool {
        self.compress > 0 || self.compress_choice.as_deref().is_some_and(|c| c != "none")
    }

    /// The arguments after the `.` marker: the paths, each `module/path` as sent.
    /// Upstream's `stdout_format_has_i`: 0 when the client does not itemize, 1 for `-i`
    /// (or an `--out-format` with `%i`), 2 for `-ii`, which a client asks of a server as
    /// `--log-format=%i%I`. Upstream: options.c, after parsing.
    pub fn itemizing(&self) -> u8 {
        match self.stdout_format.as_deref() {
            Some(f) if self.server && f.contains("%I") => 2,
            Some(f) if f.contains("%i") => self.itemize_changes | 1,
            Some(_) => 0,
            None => self.itemize_changes,
        }
    }

    pub fn paths(&self) -> &[String] {
        match self.args.iter().position(|a| a == ".") {
            Some(i) => &self.args[i + 1..],
            None => &self.args,
        }
    }
}

/// Why an argument list was not accepted; `Display` is the text the client is sent
/// (after `rsync: `).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OptionError {
    /// The module refuses this option. Upstream: options.c, create_refuse_error().
    #[error("The server is configured to refuse --{long}{}", short.map(|c| format!(" (-{c})")).unwrap_or_default())]
    Refused { long: String, short: Option<char> },
    /// Any other parse error; the text follows upstream's wording.
    #[error("{0}")]
    Invalid(String),
}
