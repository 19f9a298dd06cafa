//! Checks that a loaded configuration can work, beyond its syntax: what `syncctl check`
//! reports, all at once, each at its line.

use rsyncd_rs::client::{ClientError, Password, parse_options, read_password};

use super::AgentConfig;
use super::error::{ConfigError, ErrorKind, Problems};
use super::plugin::{self, ValueKind};

impl AgentConfig {
    /// Checks what syntax cannot: the watch path is absolute; the rsync params are
    /// options our client carries out; the filter expressions compile; the password
    /// file (with auth on) is there and not readable by others, as rsync insists; ports
    /// are 1-65535.
    ///
    /// Touches the filesystem (the password file) but nothing else.
    ///
    /// # Errors
    /// Every problem found, in the file's order (those without a line last).
    pub fn validate(&self) -> Result<(), Problems> {
        let mut found = Vec::new();
        let mut problem = |key: &str, why: String| {
            found.push(self.problem_at(key, why));
        };
        if !self.watch.is_absolute() {
            let why = format!("{} is not an absolute path", self.watch.display());
            problem("watch", why);
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
        if matches!(self.host, Some((_, 0))) {
            problem("host.port", "port 0: ports are 1-65535".to_string());
        }
        for (i, expr) in self.filter.iter().enumerate() {
            if let Err(why) = check_regex(expr) {
                problem(&format!("filter.exclude.{i}"), why);
            }
        }
        for (i, p) in self.plugins.iter().enumerate() {
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
        }
        if found.is_empty() {
            return Ok(());
        }
        found.sort_by_key(|e| if e.line == 0 { u32::MAX } else { e.line });
        Err(Problems(found))
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
