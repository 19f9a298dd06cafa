//! The agent's configuration: sersync's `confxml.xml`, accepted unchanged, and our TOML,
//! both read into one [`AgentConfig`]. Which one a file is, is told by its content.

use std::path::PathBuf;
use std::time::Duration;

/// Everything the agent runs from, whichever file it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentConfig {
    /// The file it was read from (for messages).
    pub source: PathBuf,
    /// The watched tree (confxml `<localpath watch=...>`).
    pub watch: PathBuf,
    /// Where changes go, in the order given; at least one.
    pub remotes: Vec<RemoteTarget>,
    pub rsync: RsyncSettings,
    pub events: EventSwitches,
    /// Paths never pushed (confxml `<filter start="true">`'s excludes).
    pub filter: Vec<String>,
    pub fail_log: Option<FailLog>,
    pub crontab: Option<Crontab>,
    /// Plugins, parsed and validated; run by a later version.
    pub plugins: Vec<Plugin>,
    pub agent: AgentSettings,
    /// confxml `<debug start>`.
    pub debug: bool,
    /// confxml `<fileSystem xfs>`.
    pub xfs: bool,
    /// confxml `<host hostip port>`: kept for the plugins.
    pub host: Option<(String, u16)>,
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

/// confxml `<inotify>`: which kinds of change are acted on.
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
}

impl Default for AgentSettings {
    fn default() -> Self {
        Self {
            state_dir: PathBuf::from("/var/lib/sersync-agent"),
            coalesce: Duration::from_millis(5),
            max_paths_per_session: 5000,
        }
    }
}
