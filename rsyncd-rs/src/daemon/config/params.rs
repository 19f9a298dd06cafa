//! The parameter table: every parameter of upstream's `daemon-parm.txt`, its canonical
//! name, its type and default, and whether it is global-only or per module.
//!
//! Each struct is declared once, by `param_struct!`, which also builds the table the
//! parser looks names up in, so a field cannot exist without its name and parser.
//!
//! Upstream: daemon-parm.txt (turned into loadparm.c's parm_table by daemon-parm.awk).

use std::collections::BTreeMap;

use super::Location;
use super::values::{self, Env, Parser, SyslogFacility, names_match};

/// Files rsync does not compress by default. Upstream: default-dont-compress.h.
pub const DEFAULT_DONT_COMPRESS: &str = "*.3g2 *.3gp *.7z *.aac *.ace *.apk *.avi *.bz2 *.deb \
*.dmg *.ear *.f4v *.flac *.flv *.gpg *.gz *.iso *.jar *.jpeg *.jpg *.lrz *.lz *.lz4 *.lzma *.lzo \
*.m1a *.m1v *.m2a *.m2ts *.m2v *.m4a *.m4b *.m4p *.m4r *.m4v *.mka *.mkv *.mov *.mp1 *.mp2 *.mp3 \
*.mp4 *.mpa *.mpeg *.mpg *.mpv *.mts *.odb *.odf *.odg *.odi *.odm *.odp *.ods *.odt *.oga *.ogg \
*.ogm *.ogv *.ogx *.opus *.otg *.oth *.otp *.ots *.ott *.oxt *.png *.qt *.rar *.rpm *.rz *.rzip \
*.spx *.squashfs *.sxc *.sxd *.sxg *.sxm *.sxw *.sz *.tbz *.tbz2 *.tgz *.tlz *.ts *.txz *.tzo \
*.vob *.war *.webm *.webp *.xz *.z *.zip *.zst";

/// Where `max connections` is counted when `lock file` is not set. Upstream: rsync.h.
pub const DEFAULT_LOCK_FILE: &str = "/var/run/rsyncd.lock";

/// The default `log format`. Upstream: daemon-parm.txt.
pub const DEFAULT_LOG_FORMAT: &str = "%o %h [%a] %m (%u) %f %l";

/// The default `syslog tag`. Upstream: daemon-parm.txt.
pub const DEFAULT_SYSLOG_TAG: &str = "rsyncd";

/// One row of a parameter table.
#[derive(Debug)]
pub(crate) struct Spec<T> {
    /// The canonical name, as the manual spells it.
    pub(crate) name: &'static str,
    /// Parses a raw value and stores it into the parameter's field.
    pub(crate) set: fn(&mut T, &str, &Env<'_>) -> Result<(), String>,
    /// Gives the field the value of the same field of the final defaults if it has
    /// none; returns whether it did. See [`LateDefault`].
    pub(crate) inherit_late: fn(&mut T, &T) -> bool,
}

/// How a module's field falls back on the defaults as they stand at the end of the
/// file. Upstream's accessors return a module's string value if it has one and
/// otherwise the global one *as finally loaded* (loadparm.c, FN_LOCAL_STRING), so a
/// string parameter that was unset when a module's header was read still picks up a
/// value set in a later `[global]` section. Other types were copied at the header
/// and never look again.
pub(crate) trait LateDefault {
    /// Takes `last`'s value if `self` has none; returns whether it did.
    fn inherit_late(&mut self, last: &Self) -> bool;
}

impl LateDefault for Option<String> {
    fn inherit_late(&mut self, last: &Self) -> bool {
        if self.is_none() && last.is_some() {
            self.clone_from(last);
            return true;
        }
        false
    }
}

macro_rules! copied_at_header {
    ($($t:ty),*) => {
        $(impl LateDefault for $t {
            fn inherit_late(&mut self, _: &Self) -> bool {
                false
            }
        })*
    };
}

// Integers, booleans, the facility, and the strings with a built-in default (never
// unset) are fixed when the module's header is read.
copied_at_header!(bool, Option<bool>, i32, u16, String, SyslogFacility);

/// A parameter struct that records which parameters were given a value, and where.
pub(crate) trait MarkSet {
    /// Records that the parameter with canonical `name` was set at `at`.
    fn mark_set(&mut self, name: &'static str, at: Location);
}

/// Stores `parse(value)` into a field; the table's setters are built from this.
fn store<T>(field: &mut T, parse: Parser<T>, value: &str, env: &Env<'_>) -> Result<(), String> {
    *field = parse(value, env)?;
    Ok(())
}

macro_rules! param_struct {
    (
        $(#[$meta:meta])*
        pub struct $name:ident in $table:ident {
            $(
                $(#[$fmeta:meta])*
                $field:ident: $ty:ty = $default:expr, $label:literal, $parse:path;
            )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct $name {
            $( $(#[$fmeta])* pub $field: $ty, )*
            /// Canonical names of the parameters given a value, and where.
            set_at: BTreeMap<&'static str, Location>,
        }

        impl Default for $name {
            /// Upstream's defaults, with nothing marked as explicitly set.
            fn default() -> Self {
                Self { $( $field: $default, )* set_at: BTreeMap::new() }
            }
        }

        impl $name {
            /// The parameters that were given a value in the configuration (or by
            /// `--dparam`), by canonical name, with the place of the last assignment,
            /// in alphabetical order.
            pub fn explicitly_set(&self) -> impl Iterator<Item = (&'static str, &Location)> {
                self.set_at.iter().map(|(name, at)| (*name, at))
            }

            /// Where the parameter with canonical `name` was last set, if it was.
            pub fn set_location(&self, name: &str) -> Option<&Location> {
                self.set_at.get(name)
            }
        }

        impl MarkSet for $name {
            fn mark_set(&mut self, name: &'static str, at: Location) {
                self.set_at.insert(name, at);
            }
        }

        /// The parameters stored in this struct, in upstream's table order.
        pub(crate) static $table: &[Spec<$name>] = &[
            $(
                Spec {
                    name: $label,
                    set: |p: &mut $name, v: &str, env: &Env<'_>| store(&mut p.$field, $parse, v, env),
                    inherit_late: |p: &mut $name, last: &$name| p.$field.inherit_late(&last.$field),
                },
            )*
        ];
    };
}

param_struct! {
    /// The global-only parameters: those that configure the listening daemon itself.
    /// Upstream ignores them (with a warning) inside a module section.
    pub struct Globals in GLOBAL_PARAMS {
        /// `address`: the address to listen on (the `--address` option wins).
        address: Option<String> = None, "address", values::string;
        /// `daemon chroot`: a directory to chroot into before anything else.
        daemon_chroot: Option<String> = None, "daemon chroot", values::string;
        /// `daemon gid`: the group the daemon runs as.
        daemon_gid: Option<String> = None, "daemon gid", values::string;
        /// `daemon uid`: the user the daemon runs as.
        daemon_uid: Option<String> = None, "daemon uid", values::string;
        /// `motd file`: a file sent to every client that connects.
        motd_file: Option<String> = None, "motd file", values::string;
        /// `pid file`: where the daemon writes (and locks) its process id.
        pid_file: Option<String> = None, "pid file", values::string;
        /// `proxy protocol hosts`: the proxies trusted to send a PROXY header.
        proxy_protocol_hosts: Option<String> = None, "proxy protocol hosts", values::string;
        /// `socket options`: setsockopt() settings for each connection.
        socket_options: Option<String> = None, "socket options", values::string;
        /// `listen backlog`: the listen(2) backlog.
        listen_backlog: i32 = 5, "listen backlog", values::integer;
        /// `port`: the TCP port to listen on; 0 means the default, 873 (`--port` wins).
        port: u16 = 0, "port", values::port;
        /// `proxy protocol`: expect a PROXY protocol header on each connection.
        proxy_protocol: bool = false, "proxy protocol", values::boolean;
    }
}

param_struct! {
    /// The per-module ("local") parameters. Set in the global section they become the
    /// defaults of the modules that follow.
    ///
    /// String values are kept raw: callers expand `%VAR%` with
    /// [`expand_vars`](super::expand_vars) (or
    /// [`expand_vars_for_shell`](super::expand_vars_for_shell) for the four hook
    /// commands) when they use them, as upstream does.
    pub struct ModuleParams in LOCAL_PARAMS {
        /// `auth digest`: the digests allowed for authentication.
        auth_digest: Option<String> = None, "auth digest", values::string;
        /// `auth users`: who may use the module, and how.
        auth_users: Option<String> = None, "auth users", values::string;
        /// `charset`: the character set of the module's file names.
        charset: Option<String> = None, "charset", values::string;
        /// `comment`: shown next to the module name in module listings.
        comment: Option<String> = None, "comment", values::string;
        /// `dont compress`: patterns of files sent without compression.
        dont_compress: String = DEFAULT_DONT_COMPRESS.to_owned(), "dont compress", values::text;
        /// `early exec`: a command run before the client's arguments are read.
        early_exec: Option<String> = None, "early exec", values::string;
        /// `exclude`: exclude patterns the daemon applies.
        exclude: Option<String> = None, "exclude", values::string;
        /// `exclude from`: a file of exclude patterns.
        exclude_from: Option<String> = None, "exclude from", values::string;
        /// `filter`: filter rules the daemon applies.
        filter: Option<String> = None, "filter", values::string;
        /// `gid`: the group (or groups) transfers run as.
        gid: Option<String> = None, "gid", values::string;
        /// `hosts allow`: the hosts that may connect.
        hosts_allow: Option<String> = None, "hosts allow", values::string;
        /// `hosts deny`: the hosts that may not connect.
        hosts_deny: Option<String> = None, "hosts deny", values::string;
        /// `include`: include patterns the daemon applies.
        include: Option<String> = None, "include", values::string;
        /// `include from`: a file of include patterns.
        include_from: Option<String> = None, "include from", values::string;
        /// `incoming chmod`: permission changes applied to received files.
        incoming_chmod: Option<String> = None, "incoming chmod", values::string;
        /// `lock file`: the file used to count `max connections`.
        lock_file: String = DEFAULT_LOCK_FILE.to_owned(), "lock file", values::text;
        /// `log file`: the daemon's log file (syslog when unset or empty).
        log_file: Option<String> = None, "log file", values::string;
        /// `log format`: the format of transfer log lines.
        log_format: String = DEFAULT_LOG_FORMAT.to_owned(), "log format", values::text;
        /// `name`: the module's name. A module section starts with its header's name; a
        /// `name` line inside the section renames the module, as upstream allows.
        name: Option<String> = None, "name", values::string;
        /// `name converter`: a program mapping user and group names to ids.
        name_converter: Option<String> = None, "name converter", values::string;
        /// `outgoing chmod`: permission changes applied to sent files.
        outgoing_chmod: Option<String> = None, "outgoing chmod", values::string;
        /// `post-xfer exec`: a command run after the transfer.
        post_xfer_exec: Option<String> = None, "post-xfer exec", values::string;
        /// `pre-xfer exec`: a command run before the transfer, which may refuse it.
        pre_xfer_exec: Option<String> = None, "pre-xfer exec", values::string;
        /// `refuse options`: client options the module refuses.
        refuse_options: Option<String> = None, "refuse options", values::string;
        /// `secrets file`: the user:password file for `auth users`.
        secrets_file: Option<String> = None, "secrets file", values::string;
        /// `syslog tag`: the tag of syslog messages.
        syslog_tag: String = DEFAULT_SYSLOG_TAG.to_owned(), "syslog tag", values::text;
        /// `uid`: the user transfers run as.
        uid: Option<String> = None, "uid", values::string;
        /// `path`: the module's directory (trailing slashes removed).
        path: Option<String> = None, "path", values::path;
        /// `temp dir`: a directory for temporary files (trailing slashes removed).
        temp_dir: Option<String> = None, "temp dir", values::path;
        /// `max connections`: the most simultaneous connections; 0 or less: no limit.
        max_connections: i32 = 0, "max connections", values::integer;
        /// `max verbosity`: the highest verbosity a client may ask for.
        max_verbosity: i32 = 1, "max verbosity", values::integer;
        /// `timeout`: the I/O timeout in seconds; 0: none.
        timeout: i32 = 0, "timeout", values::integer;
        /// `syslog facility`: the facility used when logging to syslog.
        syslog_facility: SyslogFacility = SyslogFacility::Daemon, "syslog facility", values::facility;
        /// `fake super`: store privileged attributes in extended attributes.
        fake_super: bool = false, "fake super", values::boolean;
        /// `forward lookup`: check a host name in `hosts allow/deny` by resolving it.
        forward_lookup: bool = true, "forward lookup", values::boolean;
        /// `ignore errors`: delete even after I/O errors.
        ignore_errors: bool = false, "ignore errors", values::boolean;
        /// `ignore nonreadable`: hide files the daemon cannot read.
        ignore_nonreadable: bool = false, "ignore nonreadable", values::boolean;
        /// `insecure links`: follow symlinks without the ownership checks.
        insecure_links: bool = false, "insecure links", values::boolean;
        /// `list`: show the module in module listings.
        list: bool = true, "list", values::boolean;
        /// `read only`: refuse uploads.
        read_only: bool = true, "read only", values::boolean;
        /// `reverse lookup`: look up the client's host name.
        reverse_lookup: bool = true, "reverse lookup", values::boolean;
        /// `strict modes`: refuse a secrets file that others can read.
        strict_modes: bool = true, "strict modes", values::boolean;
        /// `transfer logging`: log each transferred file.
        transfer_logging: bool = false, "transfer logging", values::boolean;
        /// `write only`: refuse downloads.
        write_only: bool = false, "write only", values::boolean;
        /// `munge symlinks`: `None` until set; the default then depends on chroot.
        munge_symlinks: Option<bool> = None, "munge symlinks", values::bool3;
        /// `numeric ids`: `None` until set; the default then depends on chroot.
        numeric_ids: Option<bool> = None, "numeric ids", values::bool3;
        /// `open noatime`: `None` until set (then the client decides).
        open_noatime: Option<bool> = None, "open noatime", values::bool3;
        /// `use chroot`: `None` until set (try a chroot, carry on if it fails).
        use_chroot: Option<bool> = None, "use chroot", values::bool3;
    }
}

impl ModuleParams {
    /// Fills the string parameters this module never got a value for from the final
    /// `defaults`, with their locations. See [`LateDefault`].
    pub(crate) fn inherit_late(&mut self, defaults: &ModuleParams) {
        for spec in LOCAL_PARAMS {
            if (spec.inherit_late)(self, defaults) {
                if let Some(at) = defaults.set_at.get(spec.name) {
                    self.set_at.insert(spec.name, at.clone());
                }
            }
        }
    }

    /// Forgets that the parameter with canonical `name` was set (for the `name` a
    /// module inherits from the defaults and its header replaces).
    pub(crate) fn unmark(&mut self, name: &str) {
        self.set_at.remove(name);
    }
}

/// A parameter found by name.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Found {
    /// A global-only parameter.
    Global(&'static Spec<Globals>),
    /// A module parameter.
    Local(&'static Spec<ModuleParams>),
}

impl Found {
    /// The canonical name.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Found::Global(spec) => spec.name,
            Found::Local(spec) => spec.name,
        }
    }
}

/// Finds a parameter by name, ignoring case and whitespace as upstream does.
///
/// Upstream: loadparm.c, map_parameter().
pub(crate) fn find(name: &str) -> Option<Found> {
    if let Some(spec) = GLOBAL_PARAMS.iter().find(|s| names_match(s.name, name)) {
        return Some(Found::Global(spec));
    }
    LOCAL_PARAMS
        .iter()
        .find(|s| names_match(s.name, name))
        .map(Found::Local)
}

/// Names operators use that upstream does not recognise, with the one it does.
/// `daemon-parm.txt` lists `bind_address|address` and `rsync_port|port`, but only the
/// second of each pair becomes a parameter name.
const NOT_NAMES: [(&str, &str); 2] = [("bind address", "address"), ("rsync port", "port")];

/// The parameter an unrecognised name was probably meant to be, for the warning.
pub(crate) fn suggestion(name: &str) -> Option<&'static str> {
    let by_alias = NOT_NAMES
        .iter()
        .find(|(alias, _)| names_match(alias, name))
        .map(|(_, real)| *real);
    // `max_connections` and `post_xfer exec` are common spellings too.
    by_alias.or_else(|| {
        let spaced: String = name
            .chars()
            .map(|c| if c == '_' || c == '-' { ' ' } else { c })
            .collect();
        GLOBAL_PARAMS
            .iter()
            .map(|s| s.name)
            .chain(LOCAL_PARAMS.iter().map(|s| s.name))
            .find(|real| names_match(&real.replace('-', " "), &spaced))
    })
}
