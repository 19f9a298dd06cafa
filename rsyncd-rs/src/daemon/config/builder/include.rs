//! `&include` and `&merge`: reading other files into the load, with upstream's saving
//! and restoring of the globals and defaults around `&include`.
//!
//! Upstream: params.c, include_config(); loadparm.c, do_section() for "]push",
//! "]reset" and "]pop".

use std::borrow::Cow;
use std::path::Path;

use super::super::source::IncludeKind;
use super::{Builder, Context, Location, MAX_FILES_READ, MAX_INCLUDE_DEPTH};

impl Builder<'_> {
    /// Reads the file, or the matching files of the directory, at `target`.
    /// `separate` is `&include` (own scope) as opposed to `&merge`.
    ///
    /// Upstream: params.c, include_config().
    pub(super) fn include(
        &mut self,
        target: &Path,
        separate: bool,
        directive: &str,
        at: &Location,
    ) {
        let kind = match self.includes.kind(target) {
            Ok(kind) => kind,
            Err(e) => {
                let msg = format!("unable to stat `{}`: {e}", target.display());
                return self.error(at, directive, msg);
            }
        };
        match kind {
            IncludeKind::File => {
                let before = self.enter_include(separate);
                self.read_file(target, directive, at);
                self.leave_include(separate, before);
            }
            IncludeKind::Directory => self.include_dir(target, separate, directive, at),
            IncludeKind::Other => {
                let msg = format!("`{}` is not a regular file or directory", target.display());
                self.error(at, directive, msg);
            }
        }
    }

    /// `&include` reads a directory's `*.conf` files, `&merge` its `*.inc` files, in
    /// byte order of their names; each `*.conf` file starts from the same saved state.
    fn include_dir(&mut self, dir: &Path, separate: bool, directive: &str, at: &Location) {
        let names = match self.includes.list_dir(dir) {
            Ok(names) => names,
            Err(e) => {
                let msg = format!("unable to open config dir `{}`: {e}", dir.display());
                return self.error(at, directive, msg);
            }
        };
        let suffix: &[u8] = if separate { b".conf" } else { b".inc" };
        let mut names: Vec<_> = names
            .into_iter()
            .filter(|n| n.as_encoded_bytes().ends_with(suffix))
            .collect();
        names.sort();
        let mut before = None;
        for (j, name) in names.iter().enumerate() {
            let file = dir.join(name);
            if j == 0 {
                before = Some(self.enter_include(separate));
            } else if separate {
                self.restore_saved(false);
            }
            match self.includes.kind(&file) {
                Ok(IncludeKind::File) => self.read_file(&file, directive, at),
                // Upstream opens it anyway and reads nothing from a directory.
                _ => {
                    let msg = format!("`{}` is not a regular file: skipped", file.display());
                    self.warn(at, Some(directive), msg);
                }
            }
        }
        if let Some(before) = before {
            self.leave_include(separate, before);
        }
    }

    /// Saves the globals and defaults before an `&include`d file; returns the context
    /// to restore. `&merge` saves nothing and changes nothing.
    fn enter_include(&mut self, separate: bool) -> Context {
        let before = self.context;
        if separate {
            self.stack
                .push((self.globals.clone(), self.defaults.clone()));
            self.context = Context::Global;
        }
        before
    }

    /// Restores the state saved by [`Builder::enter_include`]. As upstream, the parent
    /// file then continues in the global section, even if the `&include` stood inside
    /// a module section; that surprise is warned about at the next parameter.
    fn leave_include(&mut self, separate: bool, before: Context) {
        if !separate {
            return;
        }
        self.restore_saved(true);
        if let Context::Module(i) = before {
            self.interrupted_module = self.modules.get(i).map(|m| m.name.clone());
        }
    }

    /// Upstream: loadparm.c, do_section() for "]pop" (`pop`) and "]reset".
    fn restore_saved(&mut self, pop: bool) {
        let saved = if pop {
            self.stack.pop()
        } else {
            self.stack.last().cloned()
        };
        if let Some((globals, defaults)) = saved {
            self.globals = globals;
            self.defaults = defaults;
        }
        self.context = Context::Global;
    }

    /// Reads and parses one file; problems opening it are reported at `from`.
    pub(super) fn read_file(&mut self, path: &Path, key: &str, from: &Location) {
        if self.reading.len() >= MAX_INCLUDE_DEPTH {
            let msg = format!("includes are nested more than {MAX_INCLUDE_DEPTH} deep");
            return self.error(from, key, msg);
        }
        if self.reading.iter().any(|p| p == path) {
            let msg = format!("`{}` includes itself", path.display());
            return self.error(from, key, msg);
        }
        if self.files_read >= MAX_FILES_READ {
            if !self.gave_up {
                self.gave_up = true;
                let msg =
                    format!("more than {MAX_FILES_READ} config files read: stopped including");
                self.error(from, key, msg);
            }
            return;
        }
        self.files_read += 1;
        let bytes = match self.includes.read_file(path) {
            Ok(bytes) => bytes,
            Err(e) => {
                let msg = format!("unable to read `{}`: {e}", path.display());
                return self.error(from, key, msg);
            }
        };
        let text = self.decode(path, &bytes);
        self.reading.push(path.to_path_buf());
        self.read_text(&text, path);
        self.reading.pop();
    }

    /// The file's text; bytes that are not UTF-8 become U+FFFD, with a warning.
    fn decode<'b>(&mut self, path: &Path, bytes: &'b [u8]) -> Cow<'b, str> {
        if let Err(e) = std::str::from_utf8(bytes) {
            let before = bytes.get(..e.valid_up_to()).unwrap_or_default();
            let newlines = before.iter().filter(|b| **b == b'\n').count();
            let at = Location {
                path: path.to_path_buf(),
                line: u32::try_from(newlines)
                    .unwrap_or(u32::MAX)
                    .saturating_add(1),
            };
            self.warn(
                &at,
                None,
                "text is not UTF-8: invalid bytes replaced by U+FFFD",
            );
        }
        String::from_utf8_lossy(bytes)
    }
}
