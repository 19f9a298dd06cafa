//! Our TOML format (see `packaging/sersync-agent.toml` for every key, commented).
//!
//! The file is read into serde structs that mirror it and refuse unknown keys, then
//! turned into an [`AgentConfig`]. Values whose checks come after serde keep their
//! spans, so those errors point at a line too.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ::toml::Spanned;
use serde::Deserialize;

use super::error::{ConfigError, ErrorKind, Origins};
use super::plugin;
use super::{
    AgentConfig, AgentSettings, Auth, Crontab, EventSwitches, FailLog, Plugin, RemoteTarget,
    RsyncSettings,
};

type Result<T> = std::result::Result<T, ConfigError>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    watch: Spanned<PathBuf>,
    #[serde(default)]
    debug: bool,
    #[serde(default)]
    xfs: bool,
    host: Option<Host>,
    #[serde(default)]
    remote: Vec<Spanned<Remote>>,
    rsync: Rsync,
    #[serde(default)]
    events: Events,
    #[serde(default)]
    filter: Filter,
    fail_log: Option<FailLogFile>,
    crontab: Option<CrontabFile>,
    #[serde(default)]
    plugin: Vec<PluginFile>,
    #[serde(default)]
    agent: Agent,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Host {
    ip: String,
    port: Spanned<u16>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Remote {
    host: String,
    module: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Rsync {
    params: Spanned<String>,
    user: Option<Spanned<String>>,
    password_file: Option<Spanned<PathBuf>>,
    port: Option<Spanned<u16>>,
    timeout: Option<u64>,
    #[serde(default)]
    ssh: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct Events {
    delete: bool,
    create_folder: bool,
    create_file: bool,
    close_write: bool,
    move_from: bool,
    move_to: bool,
    attrib: bool,
    modify: bool,
}

impl Default for Events {
    fn default() -> Self {
        let d = EventSwitches::default();
        Self {
            delete: d.delete,
            create_folder: d.create_folder,
            create_file: d.create_file,
            close_write: d.close_write,
            move_from: d.move_from,
            move_to: d.move_to,
            attrib: d.attrib,
            modify: d.modify,
        }
    }
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Filter {
    #[serde(default)]
    exclude: Vec<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FailLogFile {
    path: PathBuf,
    retry_minutes: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CrontabFile {
    every_minutes: u64,
    #[serde(default)]
    exclude: Vec<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PluginFile {
    name: Spanned<String>,
    #[serde(default)]
    enabled: bool,
    #[serde(default)]
    settings: BTreeMap<Spanned<String>, Spanned<SettingValue>>,
}

/// A plugin setting: one value, or a list for one that repeats (include patterns).
#[derive(Deserialize)]
#[serde(untagged)]
enum SettingValue {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct Agent {
    state_dir: PathBuf,
    coalesce_ms: u64,
    max_paths_per_session: usize,
    metrics: Option<std::net::SocketAddr>,
    watcher: super::WatcherKind,
}

impl Default for Agent {
    fn default() -> Self {
        let d = AgentSettings::default();
        Self {
            state_dir: d.state_dir,
            coalesce_ms: u64::try_from(d.coalesce.as_millis()).unwrap_or(u64::MAX),
            max_paths_per_session: d.max_paths_per_session,
            metrics: d.metrics,
            watcher: d.watcher,
        }
    }
}

/// Reads our TOML; `path` names the file in errors and becomes `source`.
pub fn parse(text: &str, path: &Path) -> Result<AgentConfig> {
    let file: File = ::toml::from_str(text).map_err(|e| from_toml_error(&e, text, path))?;
    Build {
        text,
        path,
        origins: Origins::default(),
    }
    .config(file)
}

/// Turns toml's error, which has a span but no key path, into one naming line and key.
fn from_toml_error(e: &::toml::de::Error, text: &str, path: &Path) -> ConfigError {
    let at = e.span().map_or(0, |s| s.start);
    let message = e.message().trim();
    let kind = if message.starts_with("unknown field") {
        ErrorKind::Unknown
    } else if message.starts_with("missing field") {
        ErrorKind::Missing
    } else if message.starts_with("invalid") {
        ErrorKind::BadValue
    } else {
        ErrorKind::Malformed
    };
    let line = if e.span().is_some() {
        line_at(text, at)
    } else {
        0
    };
    ConfigError::new(path, line, key_at(text, at), kind, message)
}

/// The 1-based line of byte `at`.
fn line_at(text: &str, at: usize) -> u32 {
    super::line_of(text.as_bytes(), at)
}

/// The dotted key written at byte `at`: the table header in force, then the key of the
/// nearest `key =` line at or above `at`. Rough, but TOML errors only need a pointer.
fn key_at(text: &str, at: usize) -> String {
    let line_end = text
        .get(at..)
        .and_then(|rest| rest.find('\n'))
        .map_or(text.len(), |n| at + n);
    let upto = text.get(..line_end).unwrap_or(text);
    let mut key: Option<&str> = None;
    let mut table = "";
    for line in upto.lines().rev() {
        let line = line.trim();
        if line.starts_with('[') {
            table = line.trim_matches(|c| c == '[' || c == ']').trim();
            break;
        }
        if key.is_none() && !line.starts_with('#') {
            if let Some((lhs, _)) = line.split_once('=') {
                key = Some(lhs.trim());
            }
        }
    }
    let full = match (table, key) {
        ("", Some(k)) => k.to_string(),
        (t, Some(k)) => format!("{t}.{k}"),
        ("", None) => "file".to_string(),
        (t, None) => t.to_string(),
    };
    format!("`{full}`")
}

/// The conversion from the serde structs, recording where each setting was.
struct Build<'a> {
    text: &'a str,
    path: &'a Path,
    origins: Origins,
}

impl Build<'_> {
    fn line<T>(&self, v: &Spanned<T>) -> u32 {
        line_at(self.text, v.span().start)
    }

    fn note<T>(&mut self, key: String, v: &Spanned<T>) {
        let line = self.line(v);
        self.origins.insert(key.clone(), line, format!("`{key}`"));
    }

    fn err<T>(&self, v: &Spanned<T>, key: &str, kind: ErrorKind, why: String) -> ConfigError {
        ConfigError::new(self.path, self.line(v), format!("`{key}`"), kind, why)
    }

    fn config(mut self, f: File) -> Result<AgentConfig> {
        self.note("watch".into(), &f.watch);
        // None is a problem for `validate`, not here: `-m PLUGIN` pushes nowhere.
        self.origins.insert("remotes", 0, "`remote`");
        let mut remotes = Vec::new();
        for (i, r) in f.remote.into_iter().enumerate() {
            self.note(format!("remote.{i}"), &r);
            let r = r.into_inner();
            remotes.push(RemoteTarget {
                host: r.host,
                module: r.module,
            });
        }
        let host = match f.host {
            Some(h) => {
                self.note("host.port".into(), &h.port);
                Some((h.ip, h.port.into_inner()))
            }
            None => None,
        };
        let rsync = self.rsync(f.rsync)?;
        let filter = self.patterns("filter.exclude", f.filter.exclude);
        let crontab = f.crontab.map(|c| Crontab {
            every: minutes(c.every_minutes),
            excludes: self.patterns("crontab.exclude", c.exclude),
        });
        let plugins = self.plugins(f.plugin)?;
        let e = f.events;
        Ok(AgentConfig {
            source: self.path.to_path_buf(),
            watch: f.watch.into_inner(),
            remotes,
            rsync,
            events: EventSwitches {
                delete: e.delete,
                create_folder: e.create_folder,
                create_file: e.create_file,
                close_write: e.close_write,
                move_from: e.move_from,
                move_to: e.move_to,
                attrib: e.attrib,
                modify: e.modify,
            },
            filter,
            fail_log: f.fail_log.map(|l| FailLog {
                path: l.path,
                every: minutes(l.retry_minutes),
            }),
            crontab,
            plugins,
            agent: AgentSettings {
                state_dir: f.agent.state_dir,
                coalesce: Duration::from_millis(f.agent.coalesce_ms),
                max_paths_per_session: f.agent.max_paths_per_session,
                metrics: f.agent.metrics,
                watcher: f.agent.watcher,
            },
            debug: f.debug,
            xfs: f.xfs,
            host,
            origins: self.origins,
        })
    }

    fn rsync(&mut self, r: Rsync) -> Result<RsyncSettings> {
        self.note("rsync.params".into(), &r.params);
        if let Some(p) = &r.port {
            self.note("rsync.port".into(), p);
        }
        let auth = match (r.user, r.password_file) {
            (Some(user), Some(file)) => {
                self.note("rsync.password_file".into(), &file);
                Some(Auth {
                    user: user.into_inner(),
                    password_file: file.into_inner(),
                })
            }
            (Some(user), None) => {
                let why = "a user needs `password_file` too".to_string();
                return Err(self.err(&user, "rsync.user", ErrorKind::Missing, why));
            }
            (None, Some(file)) => {
                let why = "a password file needs `user` too".to_string();
                return Err(self.err(&file, "rsync.password_file", ErrorKind::Missing, why));
            }
            (None, None) => None,
        };
        Ok(RsyncSettings {
            params: r.params.into_inner(),
            auth,
            port: r.port.map(Spanned::into_inner),
            timeout: r.timeout,
            ssh: r.ssh,
        })
    }

    fn patterns(&mut self, key: &str, list: Vec<Spanned<String>>) -> Vec<String> {
        let mut out = Vec::new();
        for (i, p) in list.into_iter().enumerate() {
            self.note(format!("{key}.{i}"), &p);
            out.push(p.into_inner());
        }
        out
    }

    fn plugins(&mut self, list: Vec<PluginFile>) -> Result<Vec<Plugin>> {
        let mut out: Vec<Plugin> = Vec::new();
        for (i, p) in list.into_iter().enumerate() {
            let name = p.name.get_ref().as_str();
            let Some(specs) = plugin::specs(name) else {
                let why = format!("no plugin is called {name:?}");
                return Err(self.err(&p.name, "plugin.name", ErrorKind::BadValue, why));
            };
            if out.iter().any(|q| q.name == name) {
                let why = format!("plugin {name:?} is given twice");
                return Err(self.err(&p.name, "plugin.name", ErrorKind::Duplicate, why));
            }
            let line = self.line(&p.name);
            self.origins.insert(format!("plugin.{i}"), line, "`plugin`");
            let mut settings = Vec::new();
            for (key, value) in &p.settings {
                let shown = format!("plugin.settings.{}", key.get_ref());
                let Some(spec) = plugin::spec(specs, key.get_ref()) else {
                    let why = format!("plugin {name:?} has no such setting");
                    return Err(self.err(key, &shown, ErrorKind::Unknown, why));
                };
                let values = match value.get_ref() {
                    SettingValue::One(v) => vec![v.clone()],
                    SettingValue::Many(vs) if spec.repeats => vs.clone(),
                    SettingValue::Many(_) => {
                        let why = "takes one value, not a list".to_string();
                        return Err(self.err(value, &shown, ErrorKind::BadValue, why));
                    }
                };
                for v in values {
                    plugin::check_value(spec.kind, &v)
                        .map_err(|why| self.err(value, &shown, ErrorKind::BadValue, why))?;
                    let line = self.line(value);
                    let at = format!("plugin.{i}.setting.{}", settings.len());
                    self.origins.insert(at, line, format!("`{shown}`"));
                    settings.push((key.get_ref().clone(), v));
                }
            }
            out.push(Plugin {
                name: name.to_string(),
                enabled: p.enabled,
                settings,
            });
        }
        Ok(out)
    }
}

fn minutes(n: u64) -> Duration {
    Duration::from_secs(n.saturating_mul(60))
}
