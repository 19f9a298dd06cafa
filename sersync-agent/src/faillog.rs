//! sersync's `failLog`: a shell script of the pushes that failed, each as `#errno STATUS`
//! (the wait status sersync's `system()` returned: the rsync exit code times 256), the
//! rsync command that would do it by hand, and a blank line. sersync replays the file
//! every `timeToExecute` minutes and empties it. The agent retries failures itself (with
//! backoff, from its journal), so here the file is what an operator reads: a failure is
//! appended when it happens, and every `timeToExecute` the file is rewritten to hold what
//! still fails, nothing once everything went through. The commands pass each path as one
//! quoted word (sersync's own escaped only `$`).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::push::Target;

/// The failures now outstanding, by (remote, path): the entry written for each.
#[derive(Debug)]
pub struct FailLog {
    path: PathBuf,
    entries: Mutex<BTreeMap<(String, PathBuf), String>>,
}

impl FailLog {
    /// The log at `path`, created if missing (an existing one is kept until the first
    /// rewrite, as sersync keeps it).
    pub fn open(path: &Path) -> std::io::Result<FailLog> {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        Ok(FailLog {
            path: path.to_path_buf(),
            entries: Mutex::default(),
        })
    }

    /// Records that pushing `path` to `remote` failed with rsync exit `code`.
    pub fn failed(&self, remote: &str, t: &Target, path: &Path, code: i32) {
        let entry = format!(
            "#errno {}\n{}\n\n",
            code.saturating_mul(256),
            command(t, path)
        );
        let mut e = self.lock();
        let key = (remote.to_string(), path.to_path_buf());
        if e.get(&key) == Some(&entry) {
            return;
        }
        e.insert(key, entry.clone());
        drop(e);
        if let Ok(mut f) = std::fs::OpenOptions::new().append(true).open(&self.path) {
            let _ = f.write_all(entry.as_bytes());
        }
    }

    /// Records that `path` went through to `remote`.
    pub fn succeeded(&self, remote: &str, path: &Path) {
        self.lock()
            .remove(&(remote.to_string(), path.to_path_buf()));
    }

    /// Rewrites the file to hold what still fails.
    pub fn rewrite(&self) -> std::io::Result<()> {
        let text: String = self.lock().values().cloned().collect();
        let tmp = self.path.with_extension("tmp");
        std::fs::write(&tmp, text)?;
        std::fs::rename(&tmp, &self.path)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<(String, PathBuf), String>> {
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The rsync command line that pushes `path` as the agent does, in sersync's order.
pub fn command(t: &Target, path: &Path) -> String {
    let name = if path.as_os_str().is_empty() {
        "./".to_string()
    } else {
        format!("./{}", path.display())
    };
    let mut c = format!(
        "cd {} && rsync {} -R {}",
        quote(&t.root.display().to_string()),
        t.params.join(" "),
        quote(&name)
    );
    if t.remote.port != rsyncd_rs::client::DEFAULT_PORT {
        c.push_str(&format!(" --port={}", t.remote.port));
    }
    if let Some(secs) = t.timeout {
        c.push_str(&format!(" --timeout={secs}"));
    }
    let user = t
        .remote
        .user
        .as_deref()
        .map(|u| format!("{u}@"))
        .unwrap_or_default();
    c.push_str(&format!(" {user}{}::{}", t.remote.host, t.remote.module));
    if let Some(rsyncd_rs::client::Password::File(p)) = &t.connect.password {
        c.push_str(&format!(
            " --password-file={}",
            quote(&p.display().to_string())
        ));
    }
    c
}

/// `s` as one word for `sh`.
fn quote(s: &str) -> String {
    if s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"/._-+=:@,".contains(&b))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_one_shell_word_whatever_they_hold() {
        assert_eq!(quote("./a/b.txt"), "./a/b.txt");
        assert_eq!(quote("./it's $x `y`"), r"'./it'\''s $x `y`'");
    }
}
