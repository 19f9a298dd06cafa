//! The reference deployment's files (`tests/fixtures/seed/`, copied unchanged from
//! `shared/fixtures/seed/`) turned into a runnable config: only addresses and paths change.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use tempfile::TempDir;

/// The seed files, as shipped with the reference deployment.
pub fn seed_file(name: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/seed")
        .join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("reading {}: {e}", p.display()))
}

/// The group nobody's processes use on this system (Debian: nogroup; RHEL: nobody).
pub fn nobody_group() -> &'static str {
    if uzers_group_exists("nogroup") {
        "nogroup"
    } else {
        "nobody"
    }
}

fn uzers_group_exists(name: &str) -> bool {
    std::fs::read_to_string("/etc/group")
        .is_ok_and(|g| g.lines().any(|l| l.split(':').next() == Some(name)))
}

/// A scratch directory holding a config derived from the seed, its module directory, the
/// secrets file and the client's password file.
#[derive(Debug)]
pub struct Fixture {
    dir: TempDir,
    conf: String,
}

impl Fixture {
    /// The reference rsyncd.conf with only addresses and paths changed: the client network
    /// `10.0.0.0/24` becomes `127.0.0.1/32`, paths point into the scratch directory, the
    /// module runs as nobody (the reference's `rsync` user does not exist here), and the
    /// pid and lock files are the scratch directory's own. Not root: no uid/gid lines.
    pub fn seed() -> Fixture {
        let dir = tempfile::Builder::new()
            .prefix("rsyncd-rs-e2e")
            .tempdir()
            .expect("scratch dir");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod scratch");
        let d = dir.path().to_path_buf();
        let mut conf = String::new();
        for line in seed_file("rsyncd.conf").lines() {
            let rewritten = match line.split_once('=').map(|(k, v)| (k.trim(), v.trim())) {
                Some(("uid", _)) if crate::is_root() => "uid = nobody".to_string(),
                Some(("gid", _)) if crate::is_root() => format!("gid = {}", nobody_group()),
                Some(("uid" | "gid", _)) => continue,
                Some(("hosts allow", "10.0.0.0/24")) => "hosts allow = 127.0.0.1/32".to_string(),
                Some(("secrets file", _)) => {
                    format!("secrets file = {}", d.join("rsync.password").display())
                }
                Some(("log file", _)) => format!(
                    "log file = {}\npid file = {}\nlock file = {}",
                    d.join("rsyncd.log").display(),
                    d.join("rsyncd.pid").display(),
                    d.join("rsyncd.lock").display()
                ),
                Some(("path", "/backup")) => format!("path = {}", d.join("backup").display()),
                _ => line.to_string(),
            };
            conf.push_str(&rewritten);
            conf.push('\n');
        }
        let f = Fixture { dir, conf };
        f.make_module_dir("backup");
        write_private(
            &d.join("rsync.password"),
            &seed_file("rsync.password.server"),
        );
        write_private(
            &d.join("rsync.password.client"),
            &seed_file("rsync.password.client"),
        );
        f.write();
        f
    }

    /// The scratch directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Creates `dir/NAME`, owned by nobody when root (the module's user must write it).
    pub fn make_module_dir(&self, name: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::create_dir_all(&p).expect("module dir");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755))
            .expect("chmod module dir");
        if crate::is_root() {
            let nobody = nix::unistd::User::from_name("nobody")
                .ok()
                .flatten()
                .expect("user nobody");
            nix::unistd::chown(&p, Some(nobody.uid), None).expect("chown module dir");
        }
        p
    }

    /// The module directory of the reference module.
    pub fn module_dir(&self) -> PathBuf {
        self.dir.path().join("backup")
    }

    pub fn conf_path(&self) -> PathBuf {
        self.dir.path().join("rsyncd.conf")
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("rsyncd.log")
    }

    pub fn secrets_path(&self) -> PathBuf {
        self.dir.path().join("rsync.password")
    }

    /// The client's password file (mode 600, as rsync demands).
    pub fn password_file(&self) -> PathBuf {
        self.dir.path().join("rsync.password.client")
    }

    /// Writes a second client password file with `password`.
    pub fn password_file_with(&self, name: &str, password: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        write_private(&p, &format!("{password}\n"));
        p
    }

    /// The config text as it is now.
    pub fn conf(&self) -> &str {
        &self.conf
    }

    /// Replaces the whole config text.
    pub fn set_conf(&mut self, text: &str) {
        self.conf = text.to_string();
        self.write();
    }

    /// Sets a global parameter: replaces its line, or adds it before the first module.
    pub fn set_global(&mut self, key: &str, value: &str) {
        let mut out = String::new();
        let mut done = false;
        let mut in_global = true;
        for line in self.conf.lines() {
            if line.trim_start().starts_with('[') {
                if !done {
                    out.push_str(&format!("{key} = {value}\n"));
                    done = true;
                }
                in_global = false;
            }
            if in_global && line.split_once('=').is_some_and(|(k, _)| k.trim() == key) {
                if !done {
                    out.push_str(&format!("{key} = {value}\n"));
                    done = true;
                }
                continue;
            }
            out.push_str(line);
            out.push('\n');
        }
        if !done {
            out.push_str(&format!("{key} = {value}\n"));
        }
        self.set_conf(&out);
    }

    /// Appends a module section.
    pub fn add_module(&mut self, name: &str, params: &[(&str, &str)]) {
        let mut text = self.conf.clone();
        text.push_str(&format!("[{name}]\n"));
        for (k, v) in params {
            text.push_str(&format!("{k} = {v}\n"));
        }
        self.set_conf(&text);
    }

    /// Sets a parameter inside the section of `module` (added at its end).
    pub fn set_module(&mut self, module: &str, key: &str, value: &str) {
        let mut out = String::new();
        let mut in_module = false;
        let header = format!("[{module}]");
        for line in self.conf.lines() {
            if line.trim_start().starts_with('[') {
                if in_module {
                    out.push_str(&format!("{key} = {value}\n"));
                }
                in_module = line.trim() == header;
            } else if in_module && line.split_once('=').is_some_and(|(k, _)| k.trim() == key) {
                continue;
            }
            out.push_str(line);
            out.push('\n');
        }
        if in_module {
            out.push_str(&format!("{key} = {value}\n"));
        }
        self.set_conf(&out);
    }

    fn write(&self) {
        std::fs::write(self.conf_path(), &self.conf).expect("write rsyncd.conf");
    }
}

/// Writes a file with mode 0600.
pub fn write_private(path: &Path, text: &str) {
    std::fs::write(path, text).expect("write private file");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).expect("chmod 600");
}
