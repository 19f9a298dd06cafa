//! From the items of the main file and its includes to a [`DaemonConfig`]: sections,
//! parameter assignment, `&include`/`&merge`, `--dparam`, errors and warnings.
//!
//! Upstream keeps one current set of values (`Vars`: globals plus module defaults) and a
//! list of modules, each a copy of the defaults at its header; `&include` saves and
//! restores `Vars` around the included files. This builder keeps the same state, so
//! the same configs mean the same things.
//!
//! Upstream: loadparm.c, do_section(), do_parameter(), set_dparams();
//! params.c, include_config(), parse_directives().

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::params::{self, Found, Globals, MarkSet, ModuleParams, Spec};
use super::source::IncludeSource;
use super::syntax::{self, Item, Problem};
use super::values::{Env, is_space, name_key, names_match};
use super::{
    ConfigError, ConfigErrors, ConfigWarning, DaemonConfig, Location, Module, WarningKind,
};

mod include;

/// How deeply `&include`/`&merge` may nest (upstream has no limit and loops forever
/// on a file that includes itself).
pub const MAX_INCLUDE_DEPTH: usize = 32;

/// How many files one load may read in all, so that includes that fan out cannot make
/// a load take unbounded time.
pub const MAX_FILES_READ: usize = 10_000;

/// The path shown for problems in `--dparam` values.
pub(crate) const DPARAM_PATH: &str = "--dparam";

/// What the parameters being read apply to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Context {
    /// The global section (before any module, after `[global]`, or at the start of an
    /// `&include`d file).
    Global,
    /// The module at this index.
    Module(usize),
    /// A section whose header was refused: its lines are checked, then dropped.
    Discard,
}

/// A `--dparam` value, checked once.
#[derive(Debug)]
struct Dparam {
    found: Found,
    value: String,
}

/// The state of one load.
pub(crate) struct Builder<'a> {
    includes: &'a dyn IncludeSource,
    env: &'a Env<'a>,
    globals: Globals,
    defaults: ModuleParams,
    modules: Vec<Module>,
    /// Module indices by [`name_key`] of the names they have had, so that finding a
    /// repeated header is not a scan of all modules. Entries go stale when a `name`
    /// line renames a module; lookups check the current name.
    module_keys: HashMap<String, Vec<usize>>,
    context: Context,
    /// Receives the parameters of a refused section, so their values are still checked.
    scratch: ModuleParams,
    /// Saved globals and defaults of the `&include`s being read.
    stack: Vec<(Globals, ModuleParams)>,
    dparams: Vec<Dparam>,
    dparams_applied: bool,
    /// The files being read, outermost first.
    reading: Vec<PathBuf>,
    files_read: usize,
    /// [`MAX_FILES_READ`] was reached and reported; further includes are skipped.
    gave_up: bool,
    /// The module whose section an `&include` interrupted, until a section header.
    interrupted_module: Option<String>,
    errors: Vec<ConfigError>,
    warnings: Vec<ConfigWarning>,
}

impl<'a> Builder<'a> {
    /// A builder that applies `dparams` as upstream's `--dparam` options.
    pub(crate) fn new(
        includes: &'a dyn IncludeSource,
        env: &'a Env<'a>,
        dparams: &[String],
    ) -> Self {
        let mut builder = Builder {
            includes,
            env,
            globals: Globals::default(),
            defaults: ModuleParams::default(),
            modules: Vec::new(),
            module_keys: HashMap::new(),
            context: Context::Global,
            scratch: ModuleParams::default(),
            stack: Vec::new(),
            dparams: Vec::new(),
            dparams_applied: false,
            reading: Vec::new(),
            files_read: 0,
            gave_up: false,
            interrupted_module: None,
            errors: Vec::new(),
            warnings: Vec::new(),
        };
        builder.check_dparams(dparams);
        builder
    }

    /// Reads `text` as the main file, found at `path`.
    pub(crate) fn read_main_text(&mut self, text: &str, path: &Path) {
        self.files_read = self.files_read.saturating_add(1);
        self.reading.push(path.to_path_buf());
        self.read_text(text, path);
        self.reading.pop();
    }

    /// Reads the main file from the include source.
    pub(crate) fn read_main_file(&mut self, path: &Path) {
        let from = Location {
            path: path.to_path_buf(),
            line: 0,
        };
        self.read_file(path, "config file", &from);
    }

    /// The finished config, or every error found.
    pub(crate) fn finish(mut self) -> Result<DaemonConfig, ConfigErrors> {
        // The listener reads the global section and then applies --dparam (upstream:
        // clientserver.c, daemon_main()), so for global-only parameters they win.
        let at = dparam_location();
        for d in &self.dparams {
            match d.found {
                Found::Global(spec) => {
                    let _ = assign(spec, &mut self.globals, &d.value, self.env, &at);
                }
                Found::Local(spec) if !self.dparams_applied => {
                    let _ = assign(spec, &mut self.defaults, &d.value, self.env, &at);
                }
                Found::Local(_) => {}
            }
        }
        if !self.errors.is_empty() {
            return Err(ConfigErrors(self.errors));
        }
        let mut modules = self.modules;
        for module in &mut modules {
            module.params.inherit_late(&self.defaults);
            if let Some(name) = &module.params.name {
                module.name.clone_from(name);
            }
        }
        Ok(DaemonConfig {
            global: self.globals,
            defaults: self.defaults,
            modules,
            warnings: self.warnings,
        })
    }

    fn error(&mut self, at: &Location, key: impl Into<String>, problem: impl Into<String>) {
        self.errors.push(ConfigError {
            path: at.path.clone(),
            line: at.line,
            key: key.into(),
            problem: problem.into(),
        });
    }

    fn warn(&mut self, at: &Location, key: Option<&str>, message: impl Into<String>) {
        self.warn_as(WarningKind::Other, at, key, message);
    }

    fn warn_as(
        &mut self,
        kind: WarningKind,
        at: &Location,
        key: Option<&str>,
        message: impl Into<String>,
    ) {
        self.warnings.push(ConfigWarning {
            location: at.clone(),
            key: key.map(str::to_owned),
            message: message.into(),
            kind,
        });
    }

    fn read_text(&mut self, text: &str, path: &Path) {
        for item in syntax::lex(text) {
            let at = |line| Location {
                path: path.to_path_buf(),
                line,
            };
            match item {
                Item::Section { name, line } => self.section(&name, at(line)),
                Item::Param { name, value, line } => self.parameter(&name, &value, &at(line)),
                Item::Directive { name, value, line } => {
                    self.directive(&name, &value, &at(line));
                }
                Item::Problem { problem, line } => self.problem(problem, &at(line)),
            }
        }
    }

    fn problem(&mut self, problem: Problem, at: &Location) {
        match problem {
            Problem::NoEquals(text) => {
                let hint = match params::find(&text) {
                    Some(found) => format!(" (to set it, write `{} = <value>`)", found.name()),
                    None => String::new(),
                };
                let msg = format!("`{text}` has no `=`: line ignored, it has no effect{hint}");
                self.warn_as(WarningKind::NoEquals, at, Some(&text), msg);
            }
            Problem::EmptyName(value) => {
                self.error(at, format!("= {value}"), "the parameter name is missing");
            }
            Problem::EmptySection => {
                self.error(at, "[]", "the module name is empty");
                self.context = Context::Discard;
            }
            Problem::UnclosedSection(text) => {
                self.error(
                    at,
                    format!("[{text}"),
                    "the module header has no closing `]`",
                );
                self.context = Context::Discard;
            }
            Problem::Nul => {
                self.warn(at, None, "NUL byte: the rest of the file is ignored");
            }
        }
    }

    /// Upstream: loadparm.c, do_section() and add_a_section().
    fn section(&mut self, name: &str, at: Location) {
        self.interrupted_module = None;
        if names_match(name, "global") {
            self.context = Context::Global;
            return;
        }
        // Upstream applies --dparam when the first module header ends the global section.
        if self.context == Context::Global && self.modules.is_empty() {
            self.apply_dparams();
        }
        if name.contains('/') {
            self.error(&at, format!("[{name}]"), "a module name cannot contain `/`");
            self.context = Context::Discard;
            return;
        }
        let existing = self.find_module(name);
        if let Some(index) = existing {
            let first = self.modules.get(index).map(|m| m.location.clone());
            if let Some(first) = first {
                let msg = format!(
                    "module [{name}] was already defined at {first}: these parameters are added to it"
                );
                self.warn(&at, None, msg);
            }
            self.context = Context::Module(index);
            return;
        }
        let mut params = self.defaults.clone();
        params.name = Some(name.to_owned());
        params.unmark("name");
        let index = self.modules.len();
        self.modules.push(Module {
            name: name.to_owned(),
            params,
            location: at,
        });
        self.module_keys
            .entry(name_key(name))
            .or_default()
            .push(index);
        self.context = Context::Module(index);
    }

    /// The last module whose current name matches `name` as upstream compares them.
    ///
    /// Upstream: loadparm.c, getsectionbyname().
    fn find_module(&self, name: &str) -> Option<usize> {
        let candidates = self.module_keys.get(&name_key(name))?;
        // Not necessarily in order: a rename appends an older module's index.
        candidates
            .iter()
            .copied()
            .filter(|&i| {
                self.modules
                    .get(i)
                    .and_then(|m| m.params.name.as_deref())
                    .is_some_and(|n| names_match(n, name))
            })
            .max()
    }

    /// Upstream: loadparm.c, do_parameter().
    fn parameter(&mut self, name: &str, value: &str, at: &Location) {
        let Some(found) = params::find(name) else {
            let hint = params::suggestion(name)
                .map(|real| format!(" (did you mean `{real}`?)"))
                .unwrap_or_default();
            self.warn_as(
                WarningKind::UnknownParameter,
                at,
                Some(name),
                format!("unknown parameter `{name}` ignored{hint}"),
            );
            return;
        };
        if self.context == Context::Global {
            if let Some(module) = self.interrupted_module.take() {
                let msg = format!(
                    "`{}` follows an `&include` inside module [{module}]: as upstream, it \
                     applies to the global section (defaults for later modules), not to \
                     [{module}]",
                    found.name()
                );
                self.warn(at, Some(found.name()), msg);
            }
        }
        let env = self.env;
        let result = match found {
            Found::Global(spec) => match self.context {
                Context::Global => assign(spec, &mut self.globals, value, env, at),
                Context::Module(_) | Context::Discard => {
                    let msg = format!(
                        "`{}` is a global parameter: ignored inside a module section",
                        spec.name
                    );
                    self.warn(at, Some(spec.name), msg);
                    Ok(())
                }
            },
            Found::Local(spec) => {
                let target = match self.context {
                    Context::Global => &mut self.defaults,
                    Context::Module(i) => match self.modules.get_mut(i) {
                        Some(module) => &mut module.params,
                        None => &mut self.scratch,
                    },
                    Context::Discard => &mut self.scratch,
                };
                assign(spec, target, value, env, at)
            }
        };
        match result {
            Err(e) => self.errors.push(e),
            // A `name` line renames the module: index it under its new name as well.
            Ok(()) if found.name() == "name" => {
                if let Context::Module(i) = self.context {
                    let entry = self.module_keys.entry(name_key(value)).or_default();
                    if entry.last() != Some(&i) {
                        entry.push(i);
                    }
                }
            }
            Ok(()) => {}
        }
    }

    /// Upstream: params.c, parse_directives().
    fn directive(&mut self, name: &str, value: &str, at: &Location) {
        let separate = if name.eq_ignore_ascii_case("&include") {
            true
        } else if name.eq_ignore_ascii_case("&merge") {
            false
        } else {
            self.error(
                at,
                name,
                "unknown directive (there are `&include` and `&merge`)",
            );
            return;
        };
        if value.is_empty() {
            self.error(at, name, "no file or directory given");
            return;
        }
        self.include(Path::new(value), separate, name, at);
    }

    /// Checks each `--dparam=NAME=VALUE` once, keeping the good ones.
    ///
    /// Upstream: options.c (the `=` check) and loadparm.c, set_dparams(1).
    fn check_dparams(&mut self, dparams: &[String]) {
        let at = dparam_location();
        for raw in dparams {
            let Some((name, value)) = raw.split_once('=') else {
                self.error(&at, raw.as_str(), "the value has no `=` (use NAME=VALUE)");
                continue;
            };
            // Upstream skips whitespace after the `=` but keeps any at the end.
            let value = value.trim_start_matches(is_space);
            let Some(found) = params::find(name) else {
                let hint = params::suggestion(name)
                    .map(|real| format!(" (did you mean `{real}`?)"))
                    .unwrap_or_default();
                self.error(&at, name.trim(), format!("unknown parameter{hint}"));
                continue;
            };
            let check = match found {
                Found::Global(spec) => assign(spec, &mut Globals::default(), value, self.env, &at),
                Found::Local(spec) => {
                    assign(spec, &mut ModuleParams::default(), value, self.env, &at)
                }
            };
            match check {
                Ok(()) => self.dparams.push(Dparam {
                    found,
                    value: value.to_owned(),
                }),
                Err(e) => self.errors.push(e),
            }
        }
    }

    /// Applies the checked `--dparam` values to the globals and defaults.
    ///
    /// Upstream: loadparm.c, set_dparams(0).
    fn apply_dparams(&mut self) {
        let at = dparam_location();
        for d in &self.dparams {
            // Already checked: these cannot fail.
            let _ = match d.found {
                Found::Global(spec) => assign(spec, &mut self.globals, &d.value, self.env, &at),
                Found::Local(spec) => assign(spec, &mut self.defaults, &d.value, self.env, &at),
            };
        }
        self.dparams_applied = true;
    }
}

fn dparam_location() -> Location {
    Location {
        path: PathBuf::from(DPARAM_PATH),
        line: 0,
    }
}

/// Parses `value` for `spec` into `target` and records where it was set.
fn assign<T: MarkSet>(
    spec: &Spec<T>,
    target: &mut T,
    value: &str,
    env: &Env<'_>,
    at: &Location,
) -> Result<(), ConfigError> {
    match (spec.set)(target, value, env) {
        Ok(()) => {
            target.mark_set(spec.name, at.clone());
            Ok(())
        }
        Err(problem) => Err(ConfigError {
            path: at.path.clone(),
            line: at.line,
            key: spec.name.to_owned(),
            problem,
        }),
    }
}
