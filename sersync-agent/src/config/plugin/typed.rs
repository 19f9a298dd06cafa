//! Each plugin's settings, as written, read into what it runs from. `validate` reports
//! what these refuse, and the running plugins are built from them, so what
//! `syncctl check` accepts is exactly what runs.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use super::{parse_bool, parse_number, words};

/// Something wrong with a plugin's settings: at one setting (its index in
/// [`crate::config::Plugin::settings`]) or, with `None`, the plugin as a whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingProblem {
    pub setting: Option<usize>,
    pub why: String,
}

/// The command plugin: a program run for each change (or each batch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandSettings {
    /// `param.prefix` split into words: the program, then its first arguments.
    pub prefix: Vec<String>,
    /// `param.suffix` split into words: arguments after the path.
    pub suffix: Vec<String>,
    /// `param.ignoreError`: a failing run is logged at debug rather than as an error.
    pub ignore_error: bool,
    /// With `filter.start="true"`, the `filter/include.expression`s: only a path one of
    /// them matches whole runs the command. `None` when the filter is off.
    pub include: Option<Vec<String>>,
    /// `param.batch` (ours): one run per batch, the paths on standard input.
    pub batch: bool,
    /// `param.timeout` (ours): a run still going after this is killed.
    pub timeout: Duration,
}

/// A run's time limit when `param.timeout` is not given.
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// The socket plugin: listeners each change is sent to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketSettings {
    /// `localpath.watch`: the tree `-m socket` watches; only changes below it are sent.
    pub watch: Option<PathBuf>,
    /// Each `localpath/deshost`'s `ip` and `port`.
    pub listeners: Vec<(String, u16)>,
}

/// The refreshCDN plugin: changed paths as CDN URLs, posted to the CDN's interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CdnSettings {
    /// `localpath.watch` (without a trailing `/`): the tree `-m refreshCDN` watches, and
    /// what is cut off a path before `sendurl.base` is put before it.
    pub watch: Option<PathBuf>,
    /// Where the URLs are posted: `cdninfo.domainname` and `cdninfo.port`.
    pub endpoint: Endpoint,
    /// `cdninfo.username` and `cdninfo.passwd`, sent as sersync sent them.
    pub user: String,
    pub password: String,
    /// `sendurl.base`: what each URL starts with.
    pub base: String,
    /// With `regexurl.regex="true"`, `regexurl.match`: searched in the absolute path;
    /// its first group and what follows the match make the URL's end.
    pub regex: Option<String>,
}

/// A plain-HTTP address: `http://HOST:PORT/PATH`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
    /// The request target, starting with `/`.
    pub path: String,
}

/// The path sersync's refreshCDN requested (ChinaCache's interface).
const CDN_PATH: &str = "/index.jsp";

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "http://[{}]:{}{}", self.host, self.port, self.path)
        } else {
            write!(f, "http://{}:{}{}", self.host, self.port, self.path)
        }
    }
}

/// The settings as written, looked up by key.
struct View<'a>(&'a [(String, String)]);

impl<'a> View<'a> {
    fn one(&self, key: &str) -> Option<(usize, &'a str)> {
        self.all(key).into_iter().next()
    }

    fn all(&self, key: &str) -> Vec<(usize, &'a str)> {
        self.0
            .iter()
            .enumerate()
            .filter(|(_, (k, _))| k == key)
            .map(|(i, (_, v))| (i, v.as_str()))
            .collect()
    }

    /// A boolean setting (already checked for form by the readers), `false` if absent.
    fn flag(&self, key: &str) -> bool {
        self.one(key)
            .is_some_and(|(_, v)| parse_bool(v).unwrap_or(false))
    }

    /// `localpath.watch`, which must be absolute; a trailing `/` is dropped, as
    /// sersync's SplitLastSlash() does.
    fn watch(&self, problems: &mut Vec<SettingProblem>) -> Option<PathBuf> {
        let (i, w) = self.one("localpath.watch")?;
        if !w.starts_with('/') {
            problems.push(at(i, format!("{w:?} is not an absolute path")));
            return None;
        }
        let trimmed = w.trim_end_matches('/');
        Some(PathBuf::from(if trimmed.is_empty() {
            "/"
        } else {
            trimmed
        }))
    }
}

fn at(setting: usize, why: String) -> SettingProblem {
    SettingProblem {
        setting: Some(setting),
        why,
    }
}

fn whole(why: impl Into<String>) -> SettingProblem {
    SettingProblem {
        setting: None,
        why: why.into(),
    }
}

fn done<T>(value: T, problems: Vec<SettingProblem>) -> Result<T, Vec<SettingProblem>> {
    if problems.is_empty() {
        Ok(value)
    } else {
        Err(problems)
    }
}

impl CommandSettings {
    /// Reads the command plugin's settings.
    ///
    /// # Errors
    /// No `param.prefix`, a prefix or suffix that does not split into words (see
    /// [`words::split`]), or a filter turned on with no include expression.
    pub fn from_settings(settings: &[(String, String)]) -> Result<Self, Vec<SettingProblem>> {
        let v = View(settings);
        let mut problems = Vec::new();
        let mut split = |key: &str| match v.one(key) {
            Some((i, text)) => words::split(text).unwrap_or_else(|why| {
                problems.push(at(i, why));
                Vec::new()
            }),
            None => Vec::new(),
        };
        let prefix = split("param.prefix");
        let suffix = split("param.suffix");
        if prefix.is_empty() && problems.is_empty() {
            let why = match v.one("param.prefix") {
                Some(_) => "`param.prefix` names no program to run",
                None => "no `param.prefix`: the program to run for each change",
            };
            problems.push(whole(why));
        }
        let include = v.flag("filter.start").then(|| {
            v.all("filter/include.expression")
                .into_iter()
                .map(|(_, e)| e.to_string())
                .collect::<Vec<_>>()
        });
        if include.as_ref().is_some_and(Vec::is_empty) {
            let (i, _) = v.one("filter.start").unwrap_or((0, ""));
            let why = "the filter is on with no <include>: the command would never run";
            problems.push(at(i, why.to_string()));
        }
        let timeout = v
            .one("param.timeout")
            .and_then(|(_, t)| parse_number::<u64>(t).ok())
            .map_or(DEFAULT_COMMAND_TIMEOUT, Duration::from_secs);
        let settings = CommandSettings {
            prefix,
            suffix,
            ignore_error: v.flag("param.ignoreError"),
            include,
            batch: v.flag("param.batch"),
            timeout,
        };
        done(settings, problems)
    }
}

impl SocketSettings {
    /// Reads the socket plugin's settings.
    ///
    /// # Errors
    /// A relative `localpath.watch`; no `<deshost>`, or one without both `ip` and `port`.
    pub fn from_settings(settings: &[(String, String)]) -> Result<Self, Vec<SettingProblem>> {
        let v = View(settings);
        let mut problems = Vec::new();
        let watch = v.watch(&mut problems);
        let ips = v.all("localpath/deshost.ip");
        let ports = v.all("localpath/deshost.port");
        if ips.is_empty() && ports.is_empty() {
            problems.push(whole("no <deshost ip port> to send changes to"));
        } else if ips.len() != ports.len() {
            let (i, _) = ips.first().or(ports.first()).copied().unwrap_or((0, ""));
            problems.push(at(i, "each <deshost> needs both ip and port".to_string()));
        }
        let listeners = ips
            .iter()
            .zip(&ports)
            .map(|(&(_, ip), &(_, port))| (ip.to_string(), parse_number(port).unwrap_or(0)))
            .collect();
        done(SocketSettings { watch, listeners }, problems)
    }
}

impl CdnSettings {
    /// Reads the refreshCDN plugin's settings.
    ///
    /// # Errors
    /// A relative `localpath.watch`; no `cdninfo.domainname` or one that is not plain
    /// HTTP; no `sendurl.base`; `regexurl.regex="true"` without a `regexurl.match` that
    /// compiles.
    pub fn from_settings(settings: &[(String, String)]) -> Result<Self, Vec<SettingProblem>> {
        let v = View(settings);
        let mut problems = Vec::new();
        let watch = v.watch(&mut problems);
        let port = v
            .one("localpath/cdninfo.port")
            .and_then(|(_, p)| parse_number(p).ok());
        let endpoint = match v.one("localpath/cdninfo.domainname") {
            Some((i, d)) => endpoint(d, port)
                .map_err(|why| problems.push(at(i, why)))
                .ok(),
            None => {
                problems.push(whole("no <cdninfo domainname>: where to send the URLs"));
                None
            }
        };
        let base = match v.one("localpath/sendurl.base") {
            Some((_, b)) => b.to_string(),
            None => {
                problems.push(whole("no <sendurl base>: what the URLs start with"));
                String::new()
            }
        };
        let regex = if v.flag("localpath/regexurl.regex") {
            match v.one("localpath/regexurl.match") {
                Some((i, m)) => {
                    if let Err(e) = regex::Regex::new(m) {
                        let why = e.to_string();
                        let why = why.lines().last().unwrap_or_default().trim();
                        problems.push(at(i, format!("{m:?} is not a regex: {why}")));
                    }
                    Some(m.to_string())
                }
                None => {
                    let why = "regexurl regex=\"true\" needs a match expression";
                    problems.push(whole(why));
                    None
                }
            }
        } else {
            None
        };
        let get = |key: &str| v.one(key).map(|(_, s)| s.to_string()).unwrap_or_default();
        let Some(endpoint) = endpoint else {
            return Err(problems);
        };
        let settings = CdnSettings {
            watch,
            endpoint,
            user: get("localpath/cdninfo.username"),
            password: get("localpath/cdninfo.passwd"),
            base,
            regex,
        };
        done(settings, problems)
    }
}

/// `cdninfo.domainname` as sersync took it (a host name; the request goes to
/// `/index.jsp` on `port`, 80 if not given), or, ours, an `http://` URL naming host, port
/// and path.
fn endpoint(domain: &str, port: Option<u16>) -> Result<Endpoint, String> {
    let lower = domain.to_ascii_lowercase();
    if lower.starts_with("https://") {
        return Err(format!(
            "{domain:?}: https is not supported: the agent posts to the CDN interface over \
             plain http:// only (put a local TLS proxy in front of it)"
        ));
    }
    let (authority, path) = match lower.strip_prefix("http://") {
        Some(_) => {
            let rest = domain.get("http://".len()..).unwrap_or_default();
            match rest.find('/') {
                Some(slash) => (
                    rest.get(..slash).unwrap_or_default(),
                    rest.get(slash..).unwrap_or("/").to_string(),
                ),
                None => (rest, "/".to_string()),
            }
        }
        None if domain.contains("://") => {
            return Err(format!(
                "{domain:?}: only http:// URLs (or a host name) are supported"
            ));
        }
        None if domain.contains('/') => {
            return Err(format!(
                "{domain:?} is neither a host name nor an http:// URL"
            ));
        }
        None => (domain, CDN_PATH.to_string()),
    };
    if authority.contains('@') {
        return Err(format!(
            "{domain:?}: credentials go in username and passwd, not the URL"
        ));
    }
    let (host, given_port) = split_authority(authority)
        .ok_or_else(|| format!("{domain:?}: not a host, or host:port"))?;
    if host.is_empty() {
        return Err(format!("{domain:?} names no host"));
    }
    let port = given_port.or(port).unwrap_or(80);
    if port == 0 {
        return Err("port 0: ports are 1-65535".to_string());
    }
    Ok(Endpoint {
        host: host.to_string(),
        port,
        path,
    })
}

/// `host`, `host:port`, `[v6]` or `[v6]:port`.
fn split_authority(a: &str) -> Option<(&str, Option<u16>)> {
    let (host, port) = match a.strip_prefix('[') {
        Some(rest) => {
            let (host, after) = rest.split_once(']')?;
            (host, after.strip_prefix(':'))
        }
        None => match a.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (a, None),
        },
    };
    let port = match port {
        Some(p) => Some(parse_number::<u16>(p).ok()?),
        None => None,
    };
    Some((host, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn command_splits_prefix_and_suffix() {
        let c = CommandSettings::from_settings(&settings(&[
            ("filter.start", "true"),
            ("filter/include.expression", r"(.*)\.php"),
            ("param.prefix", "/opt/hook 'a b'"),
            ("param.suffix", "--end"),
            ("param.timeout", "5"),
        ]))
        .unwrap();
        assert_eq!(c.prefix, ["/opt/hook", "a b"]);
        assert_eq!(c.suffix, ["--end"]);
        assert_eq!(c.include, Some(vec![r"(.*)\.php".to_string()]));
        assert_eq!(c.timeout, Duration::from_secs(5));
        assert!(!c.ignore_error && !c.batch);
    }

    #[test]
    fn command_problems() {
        let e = CommandSettings::from_settings(&settings(&[("param.suffix", "")])).unwrap_err();
        assert_eq!(e[0].setting, None);
        let e =
            CommandSettings::from_settings(&settings(&[("param.prefix", "a | b")])).unwrap_err();
        assert_eq!(e[0].setting, Some(0));
        let e = CommandSettings::from_settings(&settings(&[
            ("filter.start", "true"),
            ("param.prefix", "/bin/true"),
        ]))
        .unwrap_err();
        assert!(e[0].why.contains("never run"), "{e:?}");
    }

    #[test]
    fn socket_pairs_hosts_and_ports() {
        let s = SocketSettings::from_settings(&settings(&[
            ("localpath.watch", "/w/"),
            ("localpath/deshost.ip", "127.0.0.1"),
            ("localpath/deshost.ip", "::1"),
            ("localpath/deshost.port", "8009"),
            ("localpath/deshost.port", "8010"),
        ]))
        .unwrap();
        assert_eq!(s.watch, Some(PathBuf::from("/w")));
        assert_eq!(
            s.listeners,
            [("127.0.0.1".to_string(), 8009), ("::1".to_string(), 8010)]
        );
        let e = SocketSettings::from_settings(&settings(&[("localpath.watch", "w")]));
        assert_eq!(e.unwrap_err().len(), 2, "relative watch, no deshost");
    }

    #[test]
    fn cdn_endpoint_forms() {
        let cases: &[(&str, Option<u16>, Result<&str, &str>)] = &[
            (
                "ccms.chinacache.com",
                Some(80),
                Ok("http://ccms.chinacache.com:80/index.jsp"),
            ),
            (
                "127.0.0.1",
                Some(8080),
                Ok("http://127.0.0.1:8080/index.jsp"),
            ),
            (
                "http://cdn.example/api/refresh?x=1",
                None,
                Ok("http://cdn.example:80/api/refresh?x=1"),
            ),
            (
                "http://cdn.example:81",
                Some(80),
                Ok("http://cdn.example:81/"),
            ),
            ("http://[::1]:81/r", None, Ok("http://[::1]:81/r")),
            ("https://cdn.example/", None, Err("https is not supported")),
            ("HTTPS://cdn.example/", None, Err("https is not supported")),
            ("ftp://cdn.example/", None, Err("only http://")),
            ("http://u:p@cdn.example/", None, Err("credentials")),
            ("http://cdn.example:x/", None, Err("not a host")),
            ("cdn.example/x", None, Err("neither")),
        ];
        for (domain, port, want) in cases {
            let got = endpoint(domain, *port).map(|e| e.to_string());
            match (got, want) {
                (Ok(g), Ok(w)) => assert_eq!(&g, w, "{domain}"),
                (Err(g), Err(w)) => assert!(g.contains(w), "{domain}: {g}"),
                (g, w) => panic!("{domain}: got {g:?}, want {w:?}"),
            }
        }
    }

    #[test]
    fn cdn_settings() {
        let c = CdnSettings::from_settings(&settings(&[
            ("localpath.watch", "/data/site/"),
            ("localpath/cdninfo.domainname", "cdn.example"),
            ("localpath/cdninfo.passwd", "pw"),
            ("localpath/cdninfo.port", "8080"),
            ("localpath/cdninfo.username", "u"),
            ("localpath/regexurl.match", "site(/.*)"),
            ("localpath/regexurl.regex", "true"),
            ("localpath/sendurl.base", "http://pic.example"),
        ]))
        .unwrap();
        assert_eq!(c.watch, Some(PathBuf::from("/data/site")));
        assert_eq!(c.endpoint.to_string(), "http://cdn.example:8080/index.jsp");
        assert_eq!((c.user.as_str(), c.password.as_str()), ("u", "pw"));
        assert_eq!(c.regex.as_deref(), Some("site(/.*)"));
        let e = CdnSettings::from_settings(&settings(&[
            ("localpath/cdninfo.domainname", "https://cdn.example"),
            ("localpath/regexurl.match", "a("),
            ("localpath/regexurl.regex", "true"),
        ]))
        .unwrap_err();
        assert_eq!(e.len(), 3, "{e:?}");
    }
}
