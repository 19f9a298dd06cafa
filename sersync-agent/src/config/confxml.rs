//! sersync 2.5.4's `confxml.xml`, read unchanged into an [`AgentConfig`].
//!
//! sersync itself reads the file with TinyXML and ignores what it does not look for, so
//! a misspelt `<closewrite>` silently leaves a switch at its default. Here every element
//! and attribute must be one sersync has, and each error names its line.

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::time::Duration;

use roxmltree::{Document, Node};

use super::error::{ConfigError, ErrorKind, Origins};
use super::plugin::{self, SettingSpec};
use super::{
    AgentConfig, AgentSettings, Auth, Crontab, EventSwitches, FailLog, Plugin, RemoteTarget,
    RsyncSettings,
};

type Result<T> = std::result::Result<T, ConfigError>;

/// The file's text: UTF-8, or Latin-1 when the XML declaration says ISO-8859-1 (as
/// sersync's stock file does) and the bytes are not UTF-8, since an operator may
/// well have typed a Latin-1 comment into it.
pub fn decode(bytes: &[u8]) -> std::result::Result<Cow<'_, str>, String> {
    if let Ok(text) = std::str::from_utf8(bytes) {
        return Ok(Cow::Borrowed(text));
    }
    if declares_latin1(bytes) {
        // Latin-1 is the first 256 code points, byte for byte.
        return Ok(Cow::Owned(bytes.iter().map(|&b| char::from(b)).collect()));
    }
    Err("not UTF-8, and the XML declaration names no Latin-1 encoding".to_string())
}

/// Whether the `<?xml ... ?>` declaration names ISO-8859-1 by one of its aliases.
fn declares_latin1(bytes: &[u8]) -> bool {
    let Some(decl) = bytes.strip_prefix(b"<?xml") else {
        return false;
    };
    let end = decl
        .windows(2)
        .position(|w| w == b"?>")
        .unwrap_or(decl.len());
    let decl = String::from_utf8_lossy(decl.get(..end).unwrap_or_default()).to_ascii_lowercase();
    let Some(at) = decl.find("encoding") else {
        return false;
    };
    let rest = decl.get(at + "encoding".len()..).unwrap_or_default();
    let value = rest
        .trim_start_matches([' ', '\t', '\r', '\n', '='])
        .trim_start_matches(['"', '\'']);
    let name: String = value
        .chars()
        .take_while(|c| !matches!(c, '"' | '\''))
        .collect();
    matches!(
        name.as_str(),
        "iso-8859-1" | "iso8859-1" | "iso_8859-1" | "latin1" | "latin-1" | "l1"
    )
}

/// Reads confxml text; `path` names the file in errors and becomes `source`.
pub fn parse(text: &str, path: &Path) -> Result<AgentConfig> {
    let doc = Document::parse(text).map_err(|e| {
        let line = e.pos().row;
        ConfigError::new(path, line, "XML", ErrorKind::Malformed, e.to_string())
    })?;
    let reader = Reader {
        path,
        doc: &doc,
        origins: Origins::default(),
    };
    reader.head(doc.root_element())
}

/// The eight `<inotify>` switches, in the stock file's order.
const SWITCHES: [&str; 8] = [
    "delete",
    "createFolder",
    "createFile",
    "closeWrite",
    "moveFrom",
    "moveTo",
    "attrib",
    "modify",
];

struct Reader<'a, 'input> {
    path: &'a Path,
    doc: &'a Document<'input>,
    origins: Origins,
}

impl<'a, 'input> Reader<'a, 'input> {
    fn line(&self, n: Node) -> u32 {
        self.doc.text_pos_at(n.range().start).row
    }

    fn place(n: Node) -> String {
        format!("<{}>", n.tag_name().name())
    }

    fn err(&self, n: Node, kind: ErrorKind, problem: impl Into<String>) -> ConfigError {
        ConfigError::new(self.path, self.line(n), Self::place(n), kind, problem)
    }

    fn note(&mut self, key: impl Into<String>, n: Node) {
        let line = self.line(n);
        self.origins.insert(key, line, Self::place(n));
    }

    /// Checks `n`'s attributes against `attrs` and its children against `children`;
    /// returns the child elements (comments and blank text are no content).
    fn element(
        &self,
        n: Node<'a, 'input>,
        attrs: &[&str],
        children: &[&str],
    ) -> Result<Vec<Node<'a, 'input>>> {
        for a in n.attributes() {
            if a.namespace().is_some() || !attrs.contains(&a.name()) {
                let problem = format!("unknown attribute {:?}", a.name());
                return Err(self.err(n, ErrorKind::Unknown, problem));
            }
        }
        let mut kids = Vec::new();
        for c in n.children() {
            if c.is_element() {
                let name = c.tag_name().name();
                if c.tag_name().namespace().is_some() || !children.contains(&name) {
                    let problem = format!("unknown element inside {}", Self::place(n));
                    return Err(self.err(c, ErrorKind::Unknown, problem));
                }
                kids.push(c);
            } else if c.is_text() && !c.text().unwrap_or_default().trim().is_empty() {
                return Err(self.err(n, ErrorKind::Unknown, "unexpected text content"));
            }
        }
        Ok(kids)
    }

    /// The only `<name>` among `kids`; a second one is an error, not a silent override.
    fn one(&self, kids: &[Node<'a, 'input>], name: &str) -> Result<Option<Node<'a, 'input>>> {
        let mut found = kids.iter().filter(|k| k.tag_name().name() == name);
        let first = found.next().copied();
        if let (Some(first), Some(again)) = (first, found.next()) {
            let problem = format!("given twice (first on line {})", self.line(first));
            return Err(self.err(*again, ErrorKind::Duplicate, problem));
        }
        Ok(first)
    }

    fn all(kids: &[Node<'a, 'input>], name: &str) -> Vec<Node<'a, 'input>> {
        kids.iter()
            .filter(|k| k.tag_name().name() == name)
            .copied()
            .collect()
    }

    fn need(
        &self,
        n: Node<'a, 'input>,
        kid: Option<Node<'a, 'input>>,
        name: &str,
    ) -> Result<Node<'a, 'input>> {
        kid.ok_or_else(|| self.err(n, ErrorKind::Missing, format!("missing element <{name}>")))
    }

    fn attr(&self, n: Node<'a, 'input>, name: &str) -> Result<&'a str> {
        n.attribute(name).ok_or_else(|| {
            let problem = format!("missing attribute {name:?}");
            self.err(n, ErrorKind::Missing, problem)
        })
    }

    fn bad_value(&self, n: Node, name: &str, why: String) -> ConfigError {
        self.err(n, ErrorKind::BadValue, format!("attribute {name:?}: {why}"))
    }

    fn bool_attr(&self, n: Node<'a, 'input>, name: &str) -> Result<bool> {
        let v = self.attr(n, name)?;
        plugin::parse_bool(v).map_err(|why| self.bad_value(n, name, why))
    }

    fn num_attr<T: std::str::FromStr>(&self, n: Node<'a, 'input>, name: &str) -> Result<T> {
        let v = self.attr(n, name)?;
        plugin::parse_number(v).map_err(|why| self.bad_value(n, name, why))
    }

    /// `<start="..">` of an optional switch element, false when the element is absent.
    fn switch(&self, n: Option<Node<'a, 'input>>) -> Result<bool> {
        match n {
            Some(n) => {
                self.element(n, &["start"], &[])?;
                self.bool_attr(n, "start")
            }
            None => Ok(false),
        }
    }

    /// `<head>`: the whole file.
    fn head(mut self, root: Node<'a, 'input>) -> Result<AgentConfig> {
        if root.tag_name().name() != "head" {
            let problem = "the root element must be <head>";
            return Err(self.err(root, ErrorKind::Unknown, problem));
        }
        // `version` says which sersync wrote the file; every 2.x file reads the same, so
        // it is accepted and not kept.
        let kids = self.element(
            root,
            &["version"],
            &[
                "host",
                "debug",
                "fileSystem",
                "filter",
                "inotify",
                "sersync",
                "plugin",
            ],
        )?;
        let host = match self.one(&kids, "host")? {
            Some(h) => {
                self.element(h, &["hostip", "port"], &[])?;
                self.note("host.port", h);
                Some((
                    self.attr(h, "hostip")?.to_string(),
                    self.num_attr(h, "port")?,
                ))
            }
            None => None,
        };
        let debug = self.switch(self.one(&kids, "debug")?)?;
        let xfs = match self.one(&kids, "fileSystem")? {
            Some(f) => {
                self.element(f, &["xfs"], &[])?;
                self.bool_attr(f, "xfs")?
            }
            None => false,
        };
        let filter = match self.one(&kids, "filter")? {
            Some(f) => self.filter(f, "filter.exclude")?,
            None => Vec::new(),
        };
        let events = match self.one(&kids, "inotify")? {
            Some(i) => self.inotify(i)?,
            None => EventSwitches::default(),
        };
        let sersync = self.need(root, self.one(&kids, "sersync")?, "sersync")?;
        let main = self.sersync(sersync)?;
        let plugins = self.plugins(&Self::all(&kids, "plugin"), main.plugin)?;
        Ok(AgentConfig {
            source: self.path.to_path_buf(),
            watch: main.watch,
            remotes: main.remotes,
            rsync: main.rsync,
            events,
            filter,
            fail_log: main.fail_log,
            crontab: main.crontab,
            plugins,
            agent: AgentSettings::default(),
            debug,
            xfs,
            host,
            origins: self.origins,
        })
    }

    /// `<filter start>` or `<crontabfilter start>` with `<exclude expression>`s: the
    /// expressions when it is on, none when off.
    fn filter(&mut self, f: Node<'a, 'input>, key: &str) -> Result<Vec<String>> {
        let kids = self.element(f, &["start"], &["exclude"])?;
        let on = self.bool_attr(f, "start")?;
        let mut out = Vec::new();
        for ex in kids {
            self.element(ex, &["expression"], &[])?;
            let expr = self.attr(ex, "expression")?;
            if on {
                self.note(format!("{key}.{}", out.len()), ex);
                out.push(expr.to_string());
            }
        }
        Ok(out)
    }

    fn inotify(&self, i: Node<'a, 'input>) -> Result<EventSwitches> {
        let kids = self.element(i, &[], &SWITCHES)?;
        let defaults = EventSwitches::default();
        let get = |name: &str, default: bool| -> Result<bool> {
            match self.one(&kids, name)? {
                Some(n) => self.switch(Some(n)),
                None => Ok(default),
            }
        };
        Ok(EventSwitches {
            delete: get("delete", defaults.delete)?,
            create_folder: get("createFolder", defaults.create_folder)?,
            create_file: get("createFile", defaults.create_file)?,
            close_write: get("closeWrite", defaults.close_write)?,
            move_from: get("moveFrom", defaults.move_from)?,
            move_to: get("moveTo", defaults.move_to)?,
            attrib: get("attrib", defaults.attrib)?,
            modify: get("modify", defaults.modify)?,
        })
    }

    /// `<sersync>`: the main watch, where it goes and how.
    fn sersync(&mut self, s: Node<'a, 'input>) -> Result<Main<'a, 'input>> {
        let kids = self.element(
            s,
            &[],
            &["localpath", "rsync", "failLog", "crontab", "plugin"],
        )?;
        let local = self.need(s, self.one(&kids, "localpath")?, "localpath")?;
        let rkids = self.element(local, &["watch"], &["remote"])?;
        let watch = PathBuf::from(self.attr(local, "watch")?);
        self.note("watch", local);
        let mut remotes = Vec::new();
        for r in rkids {
            self.element(r, &["ip", "name"], &[])?;
            let host = self.attr(r, "ip")?.to_string();
            let module = self.attr(r, "name")?.to_string();
            self.note(format!("remote.{}", remotes.len()), r);
            remotes.push(RemoteTarget { host, module });
        }
        // None is a problem for `validate`, not here: `-m PLUGIN` pushes nowhere.
        self.note("remotes", local);
        let rsync = self.need(s, self.one(&kids, "rsync")?, "rsync")?;
        let rsync = self.rsync(rsync)?;
        let fail_log = match self.one(&kids, "failLog")? {
            Some(f) => {
                self.element(f, &["path", "timeToExecute"], &[])?;
                let path = PathBuf::from(self.attr(f, "path")?);
                let minutes: u64 = self.num_attr(f, "timeToExecute")?;
                let every = minutes_to_duration(minutes);
                Some(FailLog { path, every })
            }
            None => None,
        };
        let crontab = match self.one(&kids, "crontab")? {
            Some(c) => self.crontab(c)?,
            None => None,
        };
        let plugin = match self.one(&kids, "plugin")? {
            Some(p) => {
                self.element(p, &["start", "name"], &[])?;
                let on = self.bool_attr(p, "start")?;
                let name = self.attr(p, "name")?;
                if plugin::specs(name).is_none() {
                    let problem = format!("no plugin is called {name:?}");
                    return Err(self.bad_value(p, "name", problem));
                }
                on.then(|| (name.to_string(), p))
            }
            None => None,
        };
        Ok(Main {
            watch,
            remotes,
            rsync,
            fail_log,
            crontab,
            plugin,
        })
    }

    fn rsync(&mut self, r: Node<'a, 'input>) -> Result<RsyncSettings> {
        let kids = self.element(
            r,
            &[],
            &["commonParams", "auth", "userDefinedPort", "timeout", "ssh"],
        )?;
        let common = self.need(r, self.one(&kids, "commonParams")?, "commonParams")?;
        self.element(common, &["params"], &[])?;
        let params = self.attr(common, "params")?.to_string();
        self.note("rsync.params", common);
        let auth = match self.one(&kids, "auth")? {
            Some(a) => {
                self.element(a, &["start", "users", "passwordfile"], &[])?;
                if self.bool_attr(a, "start")? {
                    self.note("rsync.password_file", a);
                    Some(Auth {
                        user: self.attr(a, "users")?.to_string(),
                        password_file: PathBuf::from(self.attr(a, "passwordfile")?),
                    })
                } else {
                    None
                }
            }
            None => None,
        };
        let port = match self.one(&kids, "userDefinedPort")? {
            Some(p) => {
                self.element(p, &["start", "port"], &[])?;
                let on = self.bool_attr(p, "start")?;
                let port: u16 = self.num_attr(p, "port")?;
                self.note("rsync.port", p);
                on.then_some(port)
            }
            None => None,
        };
        let timeout = match self.one(&kids, "timeout")? {
            Some(t) => {
                self.element(t, &["start", "time"], &[])?;
                let on = self.bool_attr(t, "start")?;
                let secs: u64 = self.num_attr(t, "time")?;
                on.then_some(secs)
            }
            None => None,
        };
        let ssh = self.switch(self.one(&kids, "ssh")?)?;
        Ok(RsyncSettings {
            params,
            auth,
            port,
            timeout,
            ssh,
        })
    }

    fn crontab(&mut self, c: Node<'a, 'input>) -> Result<Option<Crontab>> {
        let kids = self.element(c, &["start", "schedule"], &["crontabfilter"])?;
        let on = self.bool_attr(c, "start")?;
        let minutes: u64 = self.num_attr(c, "schedule")?;
        let excludes = match self.one(&kids, "crontabfilter")? {
            Some(f) => self.filter(f, "crontab.exclude")?,
            None => Vec::new(),
        };
        Ok(on.then(|| Crontab {
            every: minutes_to_duration(minutes),
            excludes,
        }))
    }

    /// The top-level `<plugin name>` elements; `enabled` is the one `<sersync><plugin
    /// start="true">` names.
    fn plugins(
        &mut self,
        nodes: &[Node<'a, 'input>],
        enabled: Option<(String, Node<'a, 'input>)>,
    ) -> Result<Vec<Plugin>> {
        let mut out: Vec<Plugin> = Vec::new();
        for &p in nodes {
            let name = self.attr(p, "name")?;
            let Some(specs) = plugin::specs(name) else {
                let problem = format!("no plugin is called {name:?}");
                return Err(self.bad_value(p, "name", problem));
            };
            if out.iter().any(|q| q.name == name) {
                let problem = format!("plugin {name:?} is given twice");
                return Err(self.err(p, ErrorKind::Duplicate, problem));
            }
            let mut found = Vec::new();
            self.plugin_element(p, "", specs, &mut found)?;
            // Sorted by key (stably: repeats keep their order) so the TOML form, a table,
            // reads back to the same list.
            found.sort_by(|a, b| a.0.cmp(&b.0));
            let index = out.len();
            self.note(format!("plugin.{index}"), p);
            let mut settings = Vec::new();
            for (j, (key, value, node)) in found.into_iter().enumerate() {
                self.note(format!("plugin.{index}.setting.{j}"), node);
                settings.push((key, value));
            }
            let is_enabled = enabled.as_ref().is_some_and(|(n, _)| n == name);
            out.push(Plugin {
                name: name.to_string(),
                enabled: is_enabled,
                settings,
            });
        }
        if let Some((name, node)) = enabled {
            if !out.iter().any(|p| p.name == name) {
                let problem =
                    format!("turns on plugin {name:?}, which has no <plugin name={name:?}>");
                return Err(self.err(node, ErrorKind::Missing, problem));
            }
        }
        Ok(out)
    }

    /// One element inside a plugin, at `prefix` (its element path), checked against the
    /// plugin's table; its settings go to `found`.
    fn plugin_element(
        &self,
        n: Node<'a, 'input>,
        prefix: &str,
        specs: &[SettingSpec],
        found: &mut Vec<(String, String, Node<'a, 'input>)>,
    ) -> Result<()> {
        let at = |name: &str| match prefix {
            "" => name.to_string(),
            p => format!("{p}/{name}"),
        };
        let attrs: Vec<&str> = specs
            .iter()
            .filter_map(|s| s.key.strip_prefix(prefix)?.strip_prefix('.'))
            .collect();
        // `name` on the plugin element itself is the plugin's name, not a setting.
        let attrs = if prefix.is_empty() {
            vec!["name"]
        } else {
            attrs
        };
        let below = match prefix {
            "" => String::new(),
            p => format!("{p}/"),
        };
        let children: Vec<&str> = specs
            .iter()
            .filter_map(|s| s.key.strip_prefix(below.as_str()))
            .filter_map(|rest| rest.split(['/', '.']).next())
            .collect();
        let kids = self.element(n, &attrs, &children)?;
        if !prefix.is_empty() {
            for a in n.attributes() {
                let key = format!("{prefix}.{}", a.name());
                if let Some(spec) = plugin::spec(specs, &key) {
                    plugin::check_value(spec.kind, a.value())
                        .map_err(|why| self.bad_value(n, a.name(), why))?;
                    found.push((key, a.value().to_string(), n));
                }
            }
        }
        let mut seen: Vec<&str> = Vec::new();
        for kid in kids {
            let name = kid.tag_name().name();
            let path = at(name);
            let repeats = specs
                .iter()
                .any(|s| s.repeats && s.key.starts_with(&format!("{path}.")));
            if seen.contains(&name) && !repeats {
                let problem = format!("<{name}> may be given once here");
                return Err(self.err(kid, ErrorKind::Duplicate, problem));
            }
            seen.push(name);
            self.plugin_element(kid, &path, specs, found)?;
        }
        Ok(())
    }
}

/// What `<sersync>` holds besides the top level.
struct Main<'a, 'input> {
    watch: PathBuf,
    remotes: Vec<RemoteTarget>,
    rsync: RsyncSettings,
    fail_log: Option<FailLog>,
    crontab: Option<Crontab>,
    /// The plugin `<sersync><plugin start="true">` turns on, and where it did.
    plugin: Option<(String, Node<'a, 'input>)>,
}

fn minutes_to_duration(minutes: u64) -> Duration {
    Duration::from_secs(minutes.saturating_mul(60))
}
