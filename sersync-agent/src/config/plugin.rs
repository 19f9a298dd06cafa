//! The settings each of sersync's plugins takes, as one table both readers check
//! against, so a plugin written in TOML takes exactly what confxml's element would.
//!
//! A setting's key is its element path below `<plugin>`, `/`-separated, then `.` and the
//! attribute: `<localpath><deshost port>` is `localpath/deshost.port`.
//!
//! The settings are kept as written; [`typed`] reads them into what each plugin runs
//! from (and is what `validate` checks them with), [`words`] splits a command line.

mod typed;
mod words;

pub use typed::{CdnSettings, CommandSettings, Endpoint, SettingProblem, SocketSettings};
pub use words::split as split_words;

/// What a setting's value must look like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueKind {
    Text,
    /// `true` or `false`, as sersync's own booleans.
    Bool,
    /// A TCP port, checked for 1-65535 by `validate`.
    Port,
    /// A POSIX extended regex (sersync hands it to `regcomp`), compiled by `validate`.
    Regex,
    /// Whole seconds, at least 1 (our settings; sersync has no timeouts).
    Seconds,
}

/// One setting a plugin takes.
#[derive(Debug, Clone, Copy)]
pub struct SettingSpec {
    pub key: &'static str,
    pub kind: ValueKind,
    /// Whether its element may be given more than once (include patterns, hosts).
    pub repeats: bool,
}

const fn s(key: &'static str, kind: ValueKind, repeats: bool) -> SettingSpec {
    SettingSpec { key, kind, repeats }
}

use ValueKind::{Bool, Port, Regex, Seconds, Text};

/// Upstream: sersync 2.5.4's stock confxml.xml, the only description of these there is;
/// `param.batch` and `param.timeout` are ours (see `crate::plugin::command`).
const COMMAND: &[SettingSpec] = &[
    s("param.prefix", Text, false),
    s("param.suffix", Text, false),
    s("param.ignoreError", Bool, false),
    s("param.batch", Bool, false),
    s("param.timeout", Seconds, false),
    s("filter.start", Bool, false),
    s("filter/include.expression", Regex, true),
];

const SOCKET: &[SettingSpec] = &[
    s("localpath.watch", Text, false),
    s("localpath/deshost.ip", Text, true),
    s("localpath/deshost.port", Port, true),
];

const REFRESH_CDN: &[SettingSpec] = &[
    s("localpath.watch", Text, false),
    s("localpath/cdninfo.domainname", Text, false),
    s("localpath/cdninfo.port", Port, false),
    s("localpath/cdninfo.username", Text, false),
    s("localpath/cdninfo.passwd", Text, false),
    s("localpath/sendurl.base", Text, false),
    s("localpath/regexurl.regex", Bool, false),
    s("localpath/regexurl.match", Text, false),
];

/// The plugin names sersync knows.
pub const NAMES: &[&str] = &["command", "socket", "refreshCDN"];

/// The settings plugin `name` takes; `None` for a plugin sersync does not have.
pub fn specs(name: &str) -> Option<&'static [SettingSpec]> {
    match name {
        "command" => Some(COMMAND),
        "socket" => Some(SOCKET),
        "refreshCDN" => Some(REFRESH_CDN),
        _ => None,
    }
}

/// The spec of `key` among `specs`.
pub fn spec<'a>(specs: &'a [SettingSpec], key: &str) -> Option<&'a SettingSpec> {
    specs.iter().find(|s| s.key == key)
}

/// Whether `value` has the form `kind` asks for; the words saying why not if it has not.
pub fn check_value(kind: ValueKind, value: &str) -> Result<(), String> {
    match kind {
        Text | Regex => Ok(()),
        Bool => parse_bool(value).map(|_| ()),
        Port => parse_number::<u16>(value).map(|_| ()),
        Seconds => match parse_number::<u64>(value)? {
            0 => Err("0 seconds: give 1 or more".to_string()),
            _ => Ok(()),
        },
    }
}

/// sersync's booleans: exactly `true` or `false` (it compares strings).
pub fn parse_bool(value: &str) -> Result<bool, String> {
    match value {
        "true" => Ok(true),
        "false" => Ok(false),
        other => Err(format!("{other:?} is neither \"true\" nor \"false\"")),
    }
}

/// A decimal number that fits `T`.
pub fn parse_number<T: std::str::FromStr>(value: &str) -> Result<T, String> {
    // `FromStr` for integers takes a leading `+`; sersync's atoi would too, but a sign is
    // more likely a typo than intended, and "+60" reads oddly back out in TOML.
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{value:?} is not a number"));
    }
    value
        .parse()
        .map_err(|_| format!("{value:?} is out of range"))
}
