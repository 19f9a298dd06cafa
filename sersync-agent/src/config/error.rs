//! What can be wrong with a configuration file, and where: one error type for both
//! formats, so `syncctl check` prints one table whichever file it was given.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// One thing wrong with a configuration, located in its file.
///
/// Displayed as `FILE:LINE: PLACE: PROBLEM`, e.g.
/// `confxml.xml:24: <remote>: missing attribute "name"` or
/// ``agent.toml:7: `rsync.port`: invalid value``. The line is left out when unknown.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{}: {place}: {problem}", .path.display(), LineSuffix(*.line))]
pub struct ConfigError {
    /// The file as it was named to `load`.
    pub path: PathBuf,
    /// 1-based; 0 when the place has no line (the file as a whole, a value built in code).
    pub line: u32,
    /// The element (`<remote>`) or key (`` `rsync.port` ``) at fault, as the file spells it.
    pub place: String,
    /// Which kind of fault, for callers that sort or count them.
    pub kind: ErrorKind,
    /// What is wrong, in words.
    pub problem: String,
}

/// The kinds of [`ConfigError`], split by what the operator has to do about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ErrorKind {
    /// The file could not be read.
    Io,
    /// The bytes are not well-formed XML or TOML.
    Malformed,
    /// An element, attribute or key this format does not have (a typo, most often).
    Unknown,
    /// Something required is absent.
    Missing,
    /// Something given twice that is read once (sersync would silently take one).
    Duplicate,
    /// A value of the wrong form: a boolean that is not `true`/`false`, a bad number.
    BadValue,
    /// Well-formed, but it cannot work: found by [`super::AgentConfig::validate`].
    Invalid,
}

impl ConfigError {
    /// An error at `line` of `path`.
    pub fn new(
        path: &Path,
        line: u32,
        place: impl Into<String>,
        kind: ErrorKind,
        problem: impl Into<String>,
    ) -> Self {
        Self {
            path: path.to_path_buf(),
            line,
            place: place.into(),
            kind,
            problem: problem.into(),
        }
    }
}

/// Renders `:LINE`, or nothing for line 0.
struct LineSuffix(u32);

impl fmt::Display for LineSuffix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            0 => Ok(()),
            n => write!(f, ":{n}"),
        }
    }
}

/// Every problem [`super::AgentConfig::validate`] found, in the file's order, so a
/// caller can print them all as a table instead of fixing one per run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", render_all(.0))]
pub struct Problems(pub Vec<ConfigError>);

fn render_all(all: &[ConfigError]) -> String {
    let lines: Vec<String> = all.iter().map(ToString::to_string).collect();
    lines.join("\n")
}

impl Problems {
    /// The problems, in the file's order.
    pub fn iter(&self) -> std::slice::Iter<'_, ConfigError> {
        self.0.iter()
    }
}

impl<'a> IntoIterator for &'a Problems {
    type Item = &'a ConfigError;
    type IntoIter = std::slice::Iter<'a, ConfigError>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

/// Where one setting was written: its line and its name in the file's own words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub line: u32,
    /// `<commonParams>` in confxml, `` `rsync.params` `` in TOML.
    pub place: String,
}

/// Where each setting was written, so that checks made after loading
/// ([`super::AgentConfig::validate`]) still point at a line.
///
/// Keyed by the setting's TOML path (`watch`, `rsync.params`, `filter.exclude.2`, ...)
/// whichever format the file was. Two `Origins` always compare equal: where a setting
/// was written is not part of what the configuration says, so a confxml file and its
/// TOML conversion give equal [`super::AgentConfig`]s (their `source` aside).
#[derive(Debug, Clone, Default)]
pub struct Origins(BTreeMap<String, Origin>);

impl PartialEq for Origins {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for Origins {}

impl Origins {
    /// Records that `key` was written at `line`, as `place`.
    pub fn insert(&mut self, key: impl Into<String>, line: u32, place: impl Into<String>) {
        let place = place.into();
        self.0.insert(key.into(), Origin { line, place });
    }

    /// Where `key` was written, if the reader recorded it.
    pub fn get(&self, key: &str) -> Option<&Origin> {
        self.0.get(key)
    }
}
