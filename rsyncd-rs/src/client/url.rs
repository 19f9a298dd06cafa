//! Where a daemon and its module are: `rsync://[user@]host[:port]/module[/path]` or
//! rsync's `[user@]host::module[/path]`. Upstream: main.c, check_for_hostspec() and
//! parse_hostspec().

/// The port rsync daemons listen on (RSYNC_PORT).
pub const DEFAULT_PORT: u16 = 873;

/// A module (and a path in it) on a daemon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remote {
    /// The user to authenticate as, if the address names one.
    pub user: Option<String>,
    /// A host name or address; an IPv6 address without its brackets.
    pub host: String,
    pub port: u16,
    /// The module name; empty asks the daemon for its module list.
    pub module: String,
    /// The path inside the module, as written (no leading `/`; may end in `/`).
    pub path: String,
}

/// Why an address could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error("not a daemon address (rsync://host/module or host::module): {0}")]
    NotDaemon(String),
    #[error("no host in {0}")]
    NoHost(String),
    #[error("bad port in {0}")]
    BadPort(String),
    #[error("unclosed [ in {0}")]
    Bracket(String),
    #[error("the remote path must start with a module name: {0}")]
    AbsolutePath(String),
}

impl Remote {
    /// Parses either form; `default_port` applies where the address gives none (`--port`).
    pub fn parse(text: &str, default_port: u16) -> Result<Remote, UrlError> {
        if let Some(rest) = text.strip_prefix("rsync://") {
            let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
            let (user, hostport) = split_user(authority);
            let (host, port) = split_port(hostport, text)?;
            return Remote::build(user, host, port.unwrap_or(default_port), path, text);
        }
        let Some((authority, path)) = split_double_colon(text) else {
            return Err(UrlError::NotDaemon(text.to_string()));
        };
        let (user, host) = split_user(authority);
        let host = unbracket(host, text)?;
        Remote::build(user, host, default_port, path, text)
    }

    fn build(
        user: Option<&str>,
        host: &str,
        port: u16,
        path: &str,
        text: &str,
    ) -> Result<Remote, UrlError> {
        if host.is_empty() {
            return Err(UrlError::NoHost(text.to_string()));
        }
        if path.starts_with('/') {
            return Err(UrlError::AbsolutePath(text.to_string()));
        }
        let (module, rest) = path.split_once('/').unwrap_or((path, ""));
        Ok(Remote {
            user: user.map(str::to_string),
            host: host.to_string(),
            port,
            module: module.to_string(),
            path: rest.to_string(),
        })
    }

    /// The `module/path` argument the daemon gets (upstream sends `module/` for a bare
    /// module name).
    pub fn module_arg(&self) -> String {
        format!("{}/{}", self.module, self.path)
    }

    /// The address as an `rsync://` URL (no password, which never rides in one).
    pub fn url(&self) -> String {
        let user = self
            .user
            .as_deref()
            .map(|u| format!("{u}@"))
            .unwrap_or_default();
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        format!("rsync://{user}{host}:{}/{}", self.port, self.module_arg())
    }
}

/// `user@host` → (`user`, `host`); the last `@` separates, as a user name may hold one.
fn split_user(authority: &str) -> (Option<&str>, &str) {
    match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    }
}

/// `host:port`, `[v6]:port`, `host`, `[v6]`.
fn split_port<'a>(hostport: &'a str, text: &str) -> Result<(&'a str, Option<u16>), UrlError> {
    let (host, port) = if let Some(inner) = hostport.strip_prefix('[') {
        let (h, after) = inner
            .split_once(']')
            .ok_or_else(|| UrlError::Bracket(text.to_string()))?;
        (h, after.strip_prefix(':'))
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        }
    };
    let port = match port {
        None | Some("") => None,
        Some(p) => Some(
            p.parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| UrlError::BadPort(text.to_string()))?,
        ),
    };
    Ok((host, port))
}

/// The first `::` outside brackets splits `host::path`.
fn split_double_colon(text: &str) -> Option<(&str, &str)> {
    let mut depth = 0;
    let bytes = text.as_bytes();
    for i in 0..bytes.len() {
        match bytes[i] {
            b'[' => depth += 1,
            b']' => depth -= 1,
            b':' if depth == 0 && bytes.get(i + 1) == Some(&b':') => {
                return Some((&text[..i], &text[i + 2..]));
            }
            b'/' if depth == 0 => return None,
            _ => {}
        }
    }
    None
}

fn unbracket<'a>(host: &'a str, text: &str) -> Result<&'a str, UrlError> {
    match host.strip_prefix('[') {
        Some(inner) => inner
            .strip_suffix(']')
            .ok_or_else(|| UrlError::Bracket(text.to_string())),
        None => Ok(host),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn r(user: Option<&str>, host: &str, port: u16, module: &str, path: &str) -> Remote {
        Remote {
            user: user.map(str::to_string),
            host: host.into(),
            port,
            module: module.into(),
            path: path.into(),
        }
    }

    #[test]
    fn both_forms() {
        let cases = [
            ("rsync://h/m", r(None, "h", 873, "m", "")),
            (
                "rsync://u@h:8730/m/a/b/",
                r(Some("u"), "h", 8730, "m", "a/b/"),
            ),
            ("rsync://[::1]:99/m/x", r(None, "::1", 99, "m", "x")),
            ("rsync://[::1]/m", r(None, "::1", 873, "m", "")),
            ("rsync://h", r(None, "h", 873, "", "")),
            ("rsync://h/", r(None, "h", 873, "", "")),
            (
                "rsync_backup@10.0.0.2::backup",
                r(Some("rsync_backup"), "10.0.0.2", 873, "backup", ""),
            ),
            ("h::backup/dir/", r(None, "h", 873, "backup", "dir/")),
            ("[fe80::1]::m/p", r(None, "fe80::1", 873, "m", "p")),
            ("a@b@h::m", r(Some("a@b"), "h", 873, "m", "")),
        ];
        for (text, want) in cases {
            assert_eq!(Remote::parse(text, 873).as_ref(), Ok(&want), "{text}");
        }
        assert_eq!(Remote::parse("h::m", 874).map(|r| r.port), Ok(874));
    }

    #[test]
    fn refusals() {
        for bad in [
            "/local/path",
            "host:path",
            "dir/h::m",
            "rsync://:80/m",
            "rsync://h:x/m",
            "rsync://h:0/m",
            "rsync://[::1/m",
            "h::/abs",
            "rsync://h//abs",
        ] {
            assert!(Remote::parse(bad, 873).is_err(), "{bad}");
        }
    }

    #[test]
    fn url_round_trips() {
        for text in [
            "rsync://u@h:8730/m/a/b/",
            "rsync://[::1]:99/m/x",
            "rsync://h:873/m/",
        ] {
            let a = Remote::parse(text, 873).unwrap();
            assert_eq!(Remote::parse(&a.url(), 1).unwrap(), a);
        }
    }

    proptest! {
        #[test]
        fn never_panics(s in ".{0,80}") {
            let _ = Remote::parse(&s, 873);
        }
    }
}
