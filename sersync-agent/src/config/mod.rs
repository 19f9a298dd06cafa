//! The agent's configuration: sersync's `confxml.xml`, accepted unchanged, and our TOML,
//! both read into one [`AgentConfig`]. Which one a file is, is told by its content.

mod confxml;
mod convert;
mod error;
mod plugin;
mod toml;
mod validate;

#[cfg(test)]
mod plugin_tests;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::time::Duration;

pub use convert::to_toml;
pub use error::{ConfigError, ErrorKind, Origin, Origins, Problems};
pub use plugin::{
    CdnSettings, CommandSettings, Endpoint, NAMES as PLUGIN_NAMES, SettingProblem, SettingSpec,
    SocketSettings, ValueKind, specs as plugin_settings, split_words,
};

/// Where the configuration is looked for when none is named (`sersync-agent` without
/// `-o`, `syncctl check` and `verify` without `--agent-config`), in order: sersync's own
/// default (`confxml.xml` in the working directory), an existing sersync install's file
/// (the reference deployment's path, used as it is, so that a machine that ran sersync
/// needs no edit), then the packaged TOML.
pub const DEFAULT_CONFIGS: [&str; 3] = [
    "confxml.xml",
    "/usr/local/sersync/confxml.xml",
    "/etc/sersync-agent/sersync-agent.toml",
];

/// The first of [`DEFAULT_CONFIGS`] that exists.
pub fn default_path() -> Option<PathBuf> {
    DEFAULT_CONFIGS
        .iter()
        .map(Path::new)
        .find(|p| p.exists())
        .map(Path::to_path_buf)
}

/// Reads the configuration at `path`, confxml or TOML: a file whose first character
/// other than blanks and comment lines is `<` is XML, anything else TOML. Only syntax
/// and form are checked here; [`AgentConfig::validate`] checks that it can work.
///
/// # Errors
/// The file cannot be read, or the first thing wrong in it, with its line.
pub fn load(path: &Path) -> Result<AgentConfig, ConfigError> {
    let bytes = std::fs::read(path)
        .map_err(|e| ConfigError::new(path, 0, "file", ErrorKind::Io, e.to_string()))?;
    parse(&bytes, path)
}

/// [`load`] on bytes already read; `path` names them in errors and becomes `source`.
///
/// # Errors
/// As [`load`].
pub fn parse(bytes: &[u8], path: &Path) -> Result<AgentConfig, ConfigError> {
    if looks_like_xml(bytes) {
        let text = confxml::decode(bytes)
            .map_err(|why| ConfigError::new(path, 0, "file", ErrorKind::Malformed, why))?;
        confxml::parse(&text, path)
    } else {
        let text = std::str::from_utf8(bytes).map_err(|e| {
            let line = line_of(bytes, e.valid_up_to());
            let why = "TOML must be UTF-8";
            ConfigError::new(path, line, "file", ErrorKind::Malformed, why)
        })?;
        toml::parse(text, path)
    }
}

/// Whether the first character that is not blank, and not inside a `#` comment line,
/// is `<`. TOML cannot start with `<`; confxml always does.
fn looks_like_xml(bytes: &[u8]) -> bool {
    let mut in_comment = false;
    for &b in bytes {
        match b {
            b'\n' => in_comment = false,
            _ if in_comment => {}
            b'#' => in_comment = true,
            b' ' | b'\t' | b'\r' => {}
            // A UTF-8 byte order mark, which an editor may have put before `<?xml`.
            0xEF | 0xBB | 0xBF => {}
            other => return other == b'<',
        }
    }
    false
}

/// The 1-based line holding byte `at`.
fn line_of(bytes: &[u8], at: usize) -> u32 {
    let before = bytes.get(..at).unwrap_or(bytes);
    let newlines = before.iter().filter(|&&b| b == b'\n').count();
    u32::try_from(newlines).map_or(u32::MAX, |n| n.saturating_add(1))
}

/// Everything the agent runs from, whichever file it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentConfig {
    /// The file it was read from (for messages).
    pub source: PathBuf,
    /// The watched tree (confxml `<localpath watch=...>`).
    pub watch: PathBuf,
    /// Where changes go, in the order given; at least one (checked by
    /// [`AgentConfig::validate`]) unless a plugin runs alone (`-m`).
    pub remotes: Vec<RemoteTarget>,
    pub rsync: RsyncSettings,
    pub events: EventSwitches,
    /// Paths never pushed (confxml `<filter start="true">`'s excludes).
    pub filter: Vec<String>,
    pub fail_log: Option<FailLog>,
    pub crontab: Option<Crontab>,
    /// sersync's plugins (see `crate::plugin`).
    pub plugins: Vec<Plugin>,
    pub agent: AgentSettings,
    /// confxml `<debug start>`.
    pub debug: bool,
    /// confxml `<fileSystem xfs>`.
    pub xfs: bool,
    /// confxml `<host hostip port>`: kept for the plugins.
    pub host: Option<(String, u16)>,
    /// Where each setting was written, for [`AgentConfig::validate`]'s messages. Not
    /// part of equality (see [`Origins`]).
    pub origins: Origins,
}

/// One rsync daemon module changes are pushed to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteTarget {
    /// Host name or address (confxml `<remote ip>`).
    pub host: String,
    /// Module name (confxml `<remote name>`).
    pub module: String,
}

/// How the pushes are made (confxml `<rsync>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RsyncSettings {
    /// rsync options as written (`<commonParams params>`), e.g. `-artuz`.
    pub params: String,
    /// `<auth start="true" users passwordfile>`.
    pub auth: Option<Auth>,
    /// `<userDefinedPort start="true" port>`.
    pub port: Option<u16>,
    /// `<timeout start="true" time>`, seconds.
    pub timeout: Option<u64>,
    /// `<ssh start>`: push over ssh instead of to a daemon.
    pub ssh: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Auth {
    pub user: String,
    pub password_file: PathBuf,
}

/// confxml `<inotify>`: which kinds of change are acted on. The default is sersync's
/// stock file, so an omitted switch means what it would have in sersync's example.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventSwitches {
    pub delete: bool,
    pub create_folder: bool,
    pub create_file: bool,
    pub close_write: bool,
    pub move_from: bool,
    pub move_to: bool,
    pub attrib: bool,
    pub modify: bool,
}

impl Default for EventSwitches {
    fn default() -> Self {
        Self {
            delete: true,
            create_folder: true,
            create_file: false,
            close_write: true,
            move_from: true,
            move_to: true,
            attrib: false,
            modify: false,
        }
    }
}

/// confxml `<failLog path timeToExecute>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailLog {
    pub path: PathBuf,
    /// How often what still fails is run again.
    pub every: Duration,
}

/// confxml `<crontab start="true" schedule>`: a periodic full sync.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Crontab {
    pub every: Duration,
    /// `<crontabfilter start="true">`'s excludes (rsync patterns).
    pub excludes: Vec<String>,
}

/// A plugin element (confxml `<plugin name=...>`), with its settings as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plugin {
    /// `command`, `socket` or `refreshCDN`.
    pub name: String,
    /// `<sersync><plugin start="true" name=...>` turns it on for the main watch.
    pub enabled: bool,
    /// The plugin's own elements, flattened: (`element.attribute`, value).
    pub settings: Vec<(String, String)>,
}

/// What only our TOML sets (confxml gets the defaults).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentSettings {
    /// The journal of pending changes, one file per remote.
    pub state_dir: PathBuf,
    /// How long the first change of a burst waits for others before a session starts.
    pub coalesce: Duration,
    /// The most paths one session carries.
    pub max_paths_per_session: usize,
    /// Where to serve Prometheus metrics (`GET /metrics`); off when `None`.
    pub metrics: Option<std::net::SocketAddr>,
    /// How the tree is watched.
    pub watcher: WatcherKind,
}

/// How the tree is watched (`[agent] watcher`, `--watcher`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WatcherKind {
    /// One inotify watch per directory: any kernel, any user, any filesystem, up to
    /// `fs.inotify.max_user_watches` directories.
    #[default]
    Inotify,
    /// One fanotify mark on the root's filesystem: no per-directory watches and no
    /// limit on their number; Linux 5.9+, root, a filesystem with file handles.
    Fanotify,
}

impl WatcherKind {
    /// The name as the config and the command line spell it.
    pub fn name(self) -> &'static str {
        match self {
            WatcherKind::Inotify => "inotify",
            WatcherKind::Fanotify => "fanotify",
        }
    }
}

impl std::str::FromStr for WatcherKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "inotify" => Ok(WatcherKind::Inotify),
            "fanotify" => Ok(WatcherKind::Fanotify),
            _ => Err(format!("`{s}` is not a watcher: inotify or fanotify")),
        }
    }
}

impl Default for AgentSettings {
    fn default() -> Self {
        Self {
            state_dir: PathBuf::from("/var/lib/sersync-agent"),
            coalesce: Duration::from_millis(5),
            max_paths_per_session: 5000,
            metrics: None,
            watcher: WatcherKind::Inotify,
        }
    }
}
