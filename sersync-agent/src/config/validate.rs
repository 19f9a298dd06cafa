//! Checks that a loaded configuration can work, beyond its syntax: what `syncctl check`
//! reports, all at once, each at its line.

use rsyncd_rs::client::{ClientError, Password, parse_options, read_password};

use super::AgentConfig;
use super::error::{ConfigError, ErrorKind, Problems};
use super::plugin::{
    self, CdnSettings, CommandSettings, SettingProblem, SocketSettings, ValueKind,
};

impl AgentConfig {
    /// Checks what syntax cannot, for the pushes and the plugins `<sersync><plugin
    /// start="true">` turns on: [`AgentConfig::validate_for`] with no `-m`.
    ///
    /// # Errors
    /// As [`AgentConfig::validate_for`].
    pub fn validate(&self) -> Result<(), Problems> {
        self.validate_for(None)
    }

    /// Checks what syntax cannot: the watch path is absolute; there is a remote; the
    /// rsync params are options our client carries out; the filter expressions compile;
    /// the password file (with auth on) is there and not readable by others, as rsync
    /// insists; ports are 1-65535; every plugin's settings read (see
    /// [`super::CommandSettings`] and its siblings), and a plugin that runs beside the
    /// pushes watches the agent's tree or a part of it.
    ///
    /// With `only_plugin` (`-m NAME`) nothing is pushed, so the remotes and the rsync
    /// settings are not checked (sersync's `-m` never reads them), but that plugin must
    /// be configured.
    ///
    /// Touches the filesystem (the password file) but nothing else.
    ///
    /// # Errors
    /// Every problem found, in the file's order (those without a line last).
    pub fn validate_for(&self, only_plugin: Option<&str>) -> Result<(), Problems> {
        let mut found = Vec::new();
        let mut problem = |key: &str, why: String| {
            found.push(self.problem_at(key, why));
        };
        if !self.watch.is_absolute() {
            let why = format!("{} is not an absolute path", self.watch.display());
            problem("watch", why);
        }
        if only_plugin.is_none() {
            self.check_pushes(&mut problem);
        }
        if matches!(self.host, Some((_, 0))) {
            problem("host.port", "port 0: ports are 1-65535".to_string());
        }
        for (i, expr) in self.filter.iter().enumerate() {
            if let Err(why) = check_regex(expr) {
                problem(&format!("filter.exclude.{i}"), why);
            }
        }
        for (i, p) in self.plugins.iter().enumerate() {
            let runs = match only_plugin {
                Some(name) => p.name == name,
                None => p.enabled,
            };
            self.check_plugin(i, p, runs && only_plugin.is_none(), &mut problem);
        }
        if let Some(name) = only_plugin {
            if !self.plugins.iter().any(|p| p.name == name) {
                let why = format!(
                    "-m {name}: the configuration has no {name} plugin to run \
                     (<plugin name=\"{name}\"> in confxml, [[plugin]] in TOML)"
                );
                problem("plugin", why);
            }
        }
        if found.is_empty() {
            return Ok(());
        }
        found.sort_by_key(|e| if e.line == 0 { u32::MAX } else { e.line });
        Err(Problems(found))
    }

    /// What only pushing needs: a remote, and rsync settings our client can carry out.
    fn check_pushes(&self, problem: &mut impl FnMut(&str, String)) {
        if self.remotes.is_empty() {
            let why = "no remote to push to (<remote> in confxml, commented-out ones do \
                       not count; [[remote]] in TOML)";
            problem("remotes", why.to_string());
        }
        if let Err(why) = check_params(&self.rsync.params) {
            problem("rsync.params", why);
        }
        if let Some(auth) = &self.rsync.auth {
            let file = Password::File(auth.password_file.clone());
            if let Err(e) = read_password(&file) {
                problem("rsync.password_file", e.to_string());
            }
        }
        if self.rsync.ssh {
            // sersync's own ssh mode cannot work either: it adds --port and
            // --password-file to an ssh transfer, which rsync refuses.
            problem(
                "rsync.ssh",
                "pushing over ssh is not supported by this version: push to an rsync daemon"
                    .to_string(),
            );
        }
        if self.rsync.port == Some(0) {
            problem("rsync.port", "port 0: ports are 1-65535".to_string());
        }
    }

    /// Plugin `i`'s settings: each value's form, then what the plugin reads them into.
    /// Every plugin present is checked, as `-m` may run any of them; `beside_pushes`
    /// (turned on in `<sersync>`) adds that its `localpath` is the agent's tree or
    /// inside it: sersync then watched the plugin's path instead, and the agent watches
    /// one tree for both.
    fn check_plugin(
        &self,
        i: usize,
        p: &super::Plugin,
        beside_pushes: bool,
        problem: &mut impl FnMut(&str, String),
    ) {
        let specs = plugin::specs(&p.name).unwrap_or_default();
        for (j, (key, value)) in p.settings.iter().enumerate() {
            let at = format!("plugin.{i}.setting.{j}");
            match plugin::spec(specs, key).map(|s| s.kind) {
                Some(ValueKind::Regex) => {
                    if let Err(why) = check_regex(value) {
                        problem(&at, why);
                    }
                }
                Some(ValueKind::Port) if value == "0" => {
                    problem(&at, "port 0: ports are 1-65535".to_string());
                }
                _ => {}
            }
        }
        let watch = match p.name.as_str() {
            "command" => CommandSettings::from_settings(&p.settings).map(|_| None),
            "socket" => SocketSettings::from_settings(&p.settings).map(|s| s.watch),
            "refreshCDN" => CdnSettings::from_settings(&p.settings).map(|s| s.watch),
            _ => Ok(None),
        };
        match watch {
            Ok(Some(w)) if beside_pushes && !w.starts_with(&self.watch) => {
                let why = format!(
                    "the {} plugin watches {}, outside the agent's tree {}: when it runs \
                     beside the pushes it sees the agent's tree only (make them the same, \
                     or run it alone with -m {})",
                    p.name,
                    w.display(),
                    self.watch.display(),
                    p.name
                );
                let key = setting_key(i, p, "localpath.watch");
                problem(&key, why);
            }
            Ok(_) => {}
            Err(problems) => {
                for SettingProblem { setting, why } in problems {
                    let key = match setting {
                        Some(j) => format!("plugin.{i}.setting.{j}"),
                        None => format!("plugin.{i}"),
                    };
                    problem(&key, format!("{} plugin: {why}", p.name));
                }
            }
        }
    }

    /// A problem with the setting `key` (an [`super::Origins`] key), at its line.
    fn problem_at(&self, key: &str, why: String) -> ConfigError {
        let (line, place) = match self.origins.get(key) {
            Some(o) => (o.line, o.place.clone()),
            None => (0, format!("`{key}`")),
        };
        ConfigError::new(&self.source, line, place, ErrorKind::Invalid, why)
    }
}

/// sersync pastes `commonParams` into an rsync command line, so it is split on blanks
/// the same way (no quoting) and read with rsync's option table.
fn check_params(params: &str) -> Result<(), String> {
    let words: Vec<&str> = params.split_whitespace().collect();
    match parse_options(&words) {
        Ok(_) => Ok(()),
        Err(ClientError::Options(text)) => Err(format!("not usable by the agent: {text}")),
        Err(other) => Err(other.to_string()),
    }
}

/// sersync hands filter expressions to glibc's `regcomp(REG_EXTENDED)`; we use the
/// `regex` crate. Both refuse `*.php` and `a{`; the crate also refuses glibc's `a{,2}`,
/// reported here rather than met at the first event. Some that compile in both mean
/// other things: `[\.]` also matches a backslash to POSIX, and `\d` is a digit here
/// but a plain `d` to glibc.
fn check_regex(expr: &str) -> Result<(), String> {
    match regex::Regex::new(expr) {
        Ok(_) => Ok(()),
        Err(e) => {
            // The crate's message spans lines (pattern, caret, error); the last says why.
            let text = e.to_string();
            let why = text.lines().last().unwrap_or_default().trim().to_string();
            let why = why.strip_prefix("error: ").unwrap_or(&why).to_string();
            Err(format!("{expr:?} is not a regex the agent can use: {why}"))
        }
    }
}

/// The [`super::Origins`] key of plugin `i`'s setting `key`, or of the plugin itself.
fn setting_key(i: usize, p: &super::Plugin, key: &str) -> String {
    match p.settings.iter().position(|(k, _)| k == key) {
        Some(j) => format!("plugin.{i}.setting.{j}"),
        None => format!("plugin.{i}"),
    }
}
