//! `rsyncd.conf` into a typed [`DaemonConfig`] (upstream: params.c, loadparm.c).
//!
//! The file is read as upstream reads it: global parameters before the first
//! `[module]` header, module sections, `[global]` to go back to the defaults, `#`/`;`
//! comments, `\` continuations, `&include`/`&merge`, `--dparam` overrides. Where
//! upstream shrugs at a bad value (an integer that is not one, a boolean that is not a
//! boolean) this parser refuses the config, naming file, line and parameter of every
//! such line at once; what upstream ignores (unknown parameters, lines without `=`,
//! global parameters in a module) comes back as a [`ConfigWarning`].
//!
//! String values stay raw: `%VAR%` references are expanded by the session, with
//! [`expand_vars`] or [`expand_vars_for_shell`], when it uses them.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod builder;
mod expand;
mod fs;
mod params;
mod source;
mod syntax;
mod values;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_include;
#[cfg(test)]
mod tests_params;

use std::fmt;
use std::path::{Path, PathBuf};

pub use builder::{MAX_FILES_READ, MAX_INCLUDE_DEPTH};
pub use expand::{ExpandError, expand_vars, expand_vars_for_shell};
pub use fs::{FsIncludes, MAX_CONFIG_FILE_BYTES};
pub use params::{
    DEFAULT_DONT_COMPRESS, DEFAULT_LOCK_FILE, DEFAULT_LOG_FORMAT, DEFAULT_SYSLOG_TAG, Globals,
    ModuleParams,
};
pub use source::{IncludeKind, IncludeSource, MemoryIncludes};
pub use values::SyslogFacility;

/// The whole daemon configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaemonConfig {
    /// The global-only parameters.
    pub global: Globals,
    /// The module parameters as the global section(s) left them: what upstream uses
    /// when no module is selected (the daemon's own `log file`, `syslog facility`,
    /// ...). Each module started from the defaults in force at its header.
    pub defaults: ModuleParams,
    /// The modules, in the order their headers first appear.
    pub modules: Vec<Module>,
    /// What was ignored, and why.
    pub warnings: Vec<ConfigWarning>,
}

/// One `[module]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Module {
    /// The name clients ask for: the header's name with its whitespace folded, or the
    /// value of a `name` parameter inside the section, which upstream lets rename it.
    pub name: String,
    /// The module's parameters: the defaults in force at its header plus its own
    /// lines. A string parameter still unset then takes the value of
    /// [`DaemonConfig::defaults`] (the defaults at the end of the file), as upstream's
    /// accessors fall back on the final global value.
    pub params: ModuleParams,
    /// Where the module's header first appears.
    pub location: Location,
}

impl Module {
    /// The parameters with a value from the configuration, with the place it was set:
    /// in the module's own section, or in a global section it inherited from (compare
    /// with [`Module::location`] to tell). The `name` implied by the header is not
    /// listed.
    pub fn explicitly_set(&self) -> impl Iterator<Item = (&'static str, &Location)> {
        self.params.explicitly_set()
    }
}

/// A place in a config file.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Location {
    /// The file, as given to the parser or named by `&include`/`&merge`
    /// (`--dparam` for command-line values).
    pub path: PathBuf,
    /// The 1-based line; for a continued line, the first. 0 for a whole file or for
    /// `--dparam`.
    pub line: u32,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.path.display(), self.line)
    }
}

/// A line the daemon must not start with: a bad value, a broken header, a failed
/// include.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}:{line}: `{key}`: {problem}", .path.display())]
pub struct ConfigError {
    /// The file (`--dparam` for a command-line value).
    pub path: PathBuf,
    /// The 1-based line (0: the whole file, or `--dparam`).
    pub line: u32,
    /// The parameter's canonical name, or the header or directive at fault.
    pub key: String,
    /// What is wrong, in words.
    pub problem: String,
}

/// Every error of one load; never empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    /// One error per line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// Something the daemon ignores, as upstream does, but the operator should hear about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigWarning {
    /// Where.
    pub location: Location,
    /// The parameter (or line text) concerned, if any.
    pub key: Option<String>,
    /// What was ignored and why.
    pub message: String,
    /// Which kind of thing was ignored, for callers that judge it (`syncctl check`).
    pub kind: WarningKind,
}

/// The kinds of [`ConfigWarning`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WarningKind {
    /// A line with no `=` (upstream ignores it as badly formed); the key is its text.
    NoEquals,
    /// A parameter name upstream does not know (a typo, most often); the key is the name.
    UnknownParameter,
    /// Anything else: a global parameter in a module, a value replaced, an include.
    Other,
}

impl fmt::Display for ConfigWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.location, self.message)
    }
}

impl DaemonConfig {
    /// Parses `text` as if read from `path`; `&include`/`&merge` are resolved through
    /// `includes`, and `dparams` (`NAME=VALUE`, from `--dparam`) override the global
    /// section. `%VAR%` in non-string values is expanded from the process environment
    /// now, as upstream does; string values are kept raw.
    ///
    /// Errors: every bad line, include and `--dparam` value, together.
    ///
    /// Upstream: loadparm.c, lp_load().
    pub fn parse(
        text: &str,
        path: &Path,
        includes: &dyn IncludeSource,
        dparams: &[String],
    ) -> Result<DaemonConfig, ConfigErrors> {
        Self::parse_with_env(text, path, includes, dparams, &process_env)
    }

    /// [`DaemonConfig::parse`] with `env` in place of the process environment.
    pub fn parse_with_env(
        text: &str,
        path: &Path,
        includes: &dyn IncludeSource,
        dparams: &[String],
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<DaemonConfig, ConfigErrors> {
        let mut builder = builder::Builder::new(includes, env, dparams);
        builder.read_main_text(text, path);
        builder.finish()
    }

    /// Reads `path` from disk and parses it, includes too (through [`FsIncludes`],
    /// which refuses symlinks owned by other users, as upstream does).
    ///
    /// Errors: as [`DaemonConfig::parse`], plus a file that cannot be read (at line 0).
    pub fn load(path: &Path, dparams: &[String]) -> Result<DaemonConfig, ConfigErrors> {
        let env: &dyn Fn(&str) -> Option<String> = &process_env;
        let mut builder = builder::Builder::new(&FsIncludes, env, dparams);
        builder.read_main_file(path);
        builder.finish()
    }

    /// The module a client asks for by `name`: an exact, case-sensitive match, the last
    /// one winning, as upstream's lookup does.
    ///
    /// Upstream: loadparm.c, lp_number().
    pub fn module(&self, name: &str) -> Option<&Module> {
        self.modules.iter().rev().find(|m| m.name == name)
    }
}

impl Globals {
    /// The global-only parameter names, in upstream's table order.
    pub fn names() -> impl Iterator<Item = &'static str> {
        params::GLOBAL_PARAMS.iter().map(|s| s.name)
    }
}

impl ModuleParams {
    /// The module parameter names, in upstream's table order.
    pub fn names() -> impl Iterator<Item = &'static str> {
        params::LOCAL_PARAMS.iter().map(|s| s.name)
    }
}

/// Looks a variable up in the process environment; names the OS cannot hold are unset.
fn process_env(name: &str) -> Option<String> {
    if name.is_empty() || name.contains(['=', '\0']) {
        return None;
    }
    std::env::var(name).ok()
}

/// Feeds arbitrary bytes to the parser (and to the `%VAR%` expanders), for fuzzing:
/// nothing may panic, loop or allocate without bound. The input also serves as an
/// include file and a directory entry, so include handling is exercised.
pub fn parse_for_fuzzing(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let includes = MemoryIncludes::new()
        .with_file("/fuzz/rsyncd.conf", data.to_vec())
        .with_file("/fuzz/rsyncd.d/a.conf", data.to_vec())
        .with_file("/fuzz/rsyncd.d/b.inc", data.to_vec());
    let dparams: Vec<String> = text.lines().take(2).map(str::to_owned).collect();
    let env = |name: &str| (name.len() < 8).then(|| name.repeat(3));
    let _ = DaemonConfig::parse_with_env(
        &text,
        Path::new("/fuzz/rsyncd.conf"),
        &includes,
        &dparams,
        &env,
    );
    let _ = expand_vars(&text, &env);
    let _ = expand_vars_for_shell(&text, &env);
}
