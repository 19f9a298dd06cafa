//! Turning one parameter's raw text into its typed value.
//!
//! Each parser has the same shape so the parameter table can hold it: the raw value
//! (already trimmed by the syntax layer), the environment lookup used for non-string
//! values, and a problem text for the error on failure.

use super::expand::expand_vars;

/// The environment lookup used to expand `%VAR%` in non-string values at load time.
pub(crate) type Env<'a> = dyn Fn(&str) -> Option<String> + 'a;

/// A parser for one kind of parameter value.
pub(crate) type Parser<T> = fn(&str, &Env<'_>) -> Result<T, String>;

/// The syslog facility named by `syslog facility`.
///
/// Upstream: loadparm.c, enum_syslog_facility (the names) and do_parameter() (which
/// also takes a positive number as a raw facility code).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SyslogFacility {
    /// `auth`, or its old name `security`.
    Auth,
    /// `authpriv`.
    AuthPriv,
    /// `cron`.
    Cron,
    /// `daemon`, the default.
    Daemon,
    /// `ftp`.
    Ftp,
    /// `kern`.
    Kern,
    /// `lpr`.
    Lpr,
    /// `mail`.
    Mail,
    /// `news`.
    News,
    /// `syslog`.
    Syslog,
    /// `user`.
    User,
    /// `uucp`.
    Uucp,
    /// `local0` to `local7`: the number (0..=7).
    Local(u8),
    /// A positive number given instead of a name, passed to syslog as is.
    Code(i32),
}

impl SyslogFacility {
    /// The names upstream accepts, in its order (`security` is an alias of `auth`).
    pub const NAMES: [&'static str; 21] = [
        "auth", "authpriv", "cron", "daemon", "ftp", "kern", "lpr", "mail", "news", "security",
        "syslog", "user", "uucp", "local0", "local1", "local2", "local3", "local4", "local5",
        "local6", "local7",
    ];

    /// The facility a name stands for, compared without regard to ASCII case.
    pub fn from_name(name: &str) -> Option<SyslogFacility> {
        let lower = name.to_ascii_lowercase();
        let facility = match lower.as_str() {
            "auth" | "security" => SyslogFacility::Auth,
            "authpriv" => SyslogFacility::AuthPriv,
            "cron" => SyslogFacility::Cron,
            "daemon" => SyslogFacility::Daemon,
            "ftp" => SyslogFacility::Ftp,
            "kern" => SyslogFacility::Kern,
            "lpr" => SyslogFacility::Lpr,
            "mail" => SyslogFacility::Mail,
            "news" => SyslogFacility::News,
            "syslog" => SyslogFacility::Syslog,
            "user" => SyslogFacility::User,
            "uucp" => SyslogFacility::Uucp,
            _ => {
                let n = lower.strip_prefix("local")?;
                let digit = match n.as_bytes() {
                    [d @ b'0'..=b'7'] => d - b'0',
                    _ => return None,
                };
                SyslogFacility::Local(digit)
            }
        };
        Some(facility)
    }

    /// The value to hand to `openlog(3)`.
    pub fn code(self) -> libc::c_int {
        match self {
            SyslogFacility::Auth => libc::LOG_AUTH,
            SyslogFacility::AuthPriv => libc::LOG_AUTHPRIV,
            SyslogFacility::Cron => libc::LOG_CRON,
            SyslogFacility::Daemon => libc::LOG_DAEMON,
            SyslogFacility::Ftp => libc::LOG_FTP,
            SyslogFacility::Kern => libc::LOG_KERN,
            SyslogFacility::Lpr => libc::LOG_LPR,
            SyslogFacility::Mail => libc::LOG_MAIL,
            SyslogFacility::News => libc::LOG_NEWS,
            SyslogFacility::Syslog => libc::LOG_SYSLOG,
            SyslogFacility::User => libc::LOG_USER,
            SyslogFacility::Uucp => libc::LOG_UUCP,
            SyslogFacility::Local(n) => libc::LOG_LOCAL0 + (libc::c_int::from(n.min(7)) << 3),
            SyslogFacility::Code(code) => code,
        }
    }
}

/// `true` for the characters C's `isspace()` accepts in the "C" locale.
pub(crate) fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\u{0b}' | '\u{0c}' | '\r')
}

/// Equality that ignores ASCII case and all whitespace, used for parameter names,
/// section names and boolean words.
///
/// Upstream: loadparm.c, strwiEQ().
pub(crate) fn names_match(a: &str, b: &str) -> bool {
    let mut a = a.chars().filter(|c| !is_space(*c));
    let mut b = b.chars().filter(|c| !is_space(*c));
    loop {
        match (a.next(), b.next()) {
            (None, None) => return true,
            (Some(x), Some(y)) if x.eq_ignore_ascii_case(&y) => {}
            _ => return false,
        }
    }
}

/// The form of a name that [`names_match`] compares: ASCII lower case, no whitespace.
pub(crate) fn name_key(name: &str) -> String {
    name.chars()
        .filter(|c| !is_space(*c))
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// A string parameter with no default: kept raw, `%VAR%` expanded later by callers.
pub(crate) fn string(value: &str, _: &Env<'_>) -> Result<Option<String>, String> {
    Ok(Some(value.to_owned()))
}

/// A string parameter with a built-in default.
pub(crate) fn text(value: &str, _: &Env<'_>) -> Result<String, String> {
    Ok(value.to_owned())
}

/// A path parameter: a string whose trailing slashes are dropped (but `/` stays `/`).
///
/// Upstream: loadparm.c, do_parameter(), case P_PATH.
pub(crate) fn path(value: &str, _: &Env<'_>) -> Result<Option<String>, String> {
    let trimmed = value.trim_end_matches('/');
    let kept = if trimmed.is_empty() && !value.is_empty() {
        "/"
    } else {
        trimmed
    };
    Ok(Some(kept.to_owned()))
}

/// An integer parameter: optional sign and decimal digits, within `i32`.
///
/// Stricter than upstream's `atoi()`, which reads `10m` as 10 and `ten` as 0: a typo
/// here must stop the daemon rather than silently change a limit.
pub(crate) fn integer(value: &str, env: &Env<'_>) -> Result<i32, String> {
    let expanded = expand_vars(value, env);
    let digits = expanded
        .strip_prefix(['+', '-'])
        .unwrap_or(expanded.as_str());
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("`{expanded}` is not an integer"));
    }
    expanded
        .parse::<i32>()
        .map_err(|_| format!("`{expanded}` is out of range"))
}

/// The `port` parameter: an integer from 0 (use the default, 873) to 65535.
pub(crate) fn port(value: &str, env: &Env<'_>) -> Result<u16, String> {
    let n = integer(value, env)?;
    u16::try_from(n).map_err(|_| format!("`{n}` is not a TCP port (0 to 65535)"))
}

/// The words a boolean accepts, compared as upstream compares names.
const TRUE_WORDS: [&str; 3] = ["yes", "true", "1"];
const FALSE_WORDS: [&str; 3] = ["no", "false", "0"];

/// A boolean parameter: yes/no, true/false or 1/0, in any case.
///
/// Upstream: loadparm.c, set_boolean(), which logs a bad word and keeps the old value;
/// here it is an error.
pub(crate) fn boolean(value: &str, env: &Env<'_>) -> Result<bool, String> {
    let expanded = expand_vars(value, env);
    let is = |words: &[&str]| words.iter().any(|w| names_match(&expanded, w));
    if is(&TRUE_WORDS) {
        Ok(true)
    } else if is(&FALSE_WORDS) {
        Ok(false)
    } else {
        Err(format!(
            "`{expanded}` is not a boolean (use yes/no, true/false or 1/0)"
        ))
    }
}

/// A three-state boolean: a boolean, or `unset`/`-1` for "not set" (`None`).
pub(crate) fn bool3(value: &str, env: &Env<'_>) -> Result<Option<bool>, String> {
    let expanded = expand_vars(value, env);
    if names_match(&expanded, "unset") || names_match(&expanded, "-1") {
        return Ok(None);
    }
    boolean(&expanded, &|_: &str| None).map(Some).map_err(|_| {
        format!("`{expanded}` is not a boolean (use yes/no, true/false, 1/0 or unset)")
    })
}

/// `syslog facility`: a facility name, or a positive number used as a raw code.
pub(crate) fn facility(value: &str, env: &Env<'_>) -> Result<SyslogFacility, String> {
    let expanded = expand_vars(value, env);
    if let Some(f) = SyslogFacility::from_name(&expanded) {
        return Ok(f);
    }
    match integer(&expanded, &|_: &str| None) {
        Ok(code) if code > 0 => Ok(SyslogFacility::Code(code)),
        _ => Err(format!(
            "`{expanded}` is not a syslog facility (one of {})",
            SyslogFacility::NAMES.join(", ")
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn names_ignore_case_and_whitespace() {
        assert!(names_match("max connections", "MaxConnections"));
        assert!(names_match("max connections", " max\tconn ections "));
        assert!(!names_match("max connections", "max_connections"));
        assert!(!names_match("post-xfer exec", "postxfer exec"));
        assert!(!names_match("list", "lists"));
        assert!(names_match("", " "));
        for (a, b) in [
            ("My Mod", "mymod"),
            ("a b", "A\tB "),
            ("x", "y"),
            ("é", "É"),
        ] {
            assert_eq!(names_match(a, b), name_key(a) == name_key(b), "{a} {b}");
        }
    }

    #[test]
    fn booleans() {
        for (word, want) in [
            ("yes", true),
            ("YES", true),
            ("True", true),
            ("1", true),
            ("y e s", true),
            ("no", false),
            ("FALSE", false),
            ("0", false),
        ] {
            assert_eq!(boolean(word, &no_env), Ok(want), "{word}");
        }
        for bad in ["", "on", "off", "y", "2", "unset", "-1", "yes please"] {
            assert!(boolean(bad, &no_env).is_err(), "{bad}");
        }
    }

    #[test]
    fn three_state_booleans() {
        assert_eq!(bool3("yes", &no_env), Ok(Some(true)));
        assert_eq!(bool3("0", &no_env), Ok(Some(false)));
        assert_eq!(bool3("Unset", &no_env), Ok(None));
        assert_eq!(bool3("-1", &no_env), Ok(None));
        assert!(bool3("maybe", &no_env).is_err());
    }

    #[test]
    fn integers_are_strict() {
        assert_eq!(integer("42", &no_env), Ok(42));
        assert_eq!(integer("+7", &no_env), Ok(7));
        assert_eq!(integer("-3", &no_env), Ok(-3));
        assert_eq!(integer("007", &no_env), Ok(7));
        for bad in ["", "ten", "10m", "1 0", "0x10", "+", "-", "99999999999"] {
            assert!(integer(bad, &no_env).is_err(), "{bad}");
        }
    }

    #[test]
    fn non_string_values_expand_the_environment() {
        let env = |n: &str| (n == "T").then(|| "30".to_owned());
        assert_eq!(integer("%T%", &env), Ok(30));
        let env = |n: &str| (n == "B").then(|| "yes".to_owned());
        assert_eq!(boolean("%B%", &env), Ok(true));
        assert!(integer("%UNKNOWN%", &no_env).is_err());
    }

    #[test]
    fn ports() {
        assert_eq!(port("873", &no_env), Ok(873));
        assert_eq!(port("0", &no_env), Ok(0));
        assert!(port("65536", &no_env).is_err());
        assert!(port("-1", &no_env).is_err());
    }

    #[test]
    fn paths_lose_trailing_slashes() {
        assert_eq!(path("/backup/", &no_env), Ok(Some("/backup".into())));
        assert_eq!(path("/a//", &no_env), Ok(Some("/a".into())));
        assert_eq!(path("/", &no_env), Ok(Some("/".into())));
        assert_eq!(path("///", &no_env), Ok(Some("/".into())));
        assert_eq!(path("", &no_env), Ok(Some(String::new())));
    }

    #[test]
    fn facilities() {
        for name in SyslogFacility::NAMES {
            assert!(facility(name, &no_env).is_ok(), "{name}");
        }
        assert_eq!(facility("LOCAL5", &no_env), Ok(SyslogFacility::Local(5)));
        assert_eq!(facility("security", &no_env), Ok(SyslogFacility::Auth));
        assert_eq!(facility("24", &no_env), Ok(SyslogFacility::Code(24)));
        for bad in ["", "local8", "locall", "deamon", "0", "-3", "3x"] {
            assert!(facility(bad, &no_env).is_err(), "{bad}");
        }
        assert_eq!(SyslogFacility::Daemon.code(), libc::LOG_DAEMON);
        assert_eq!(SyslogFacility::Local(3).code(), libc::LOG_LOCAL3);
        assert_eq!(SyslogFacility::Local(7).code(), libc::LOG_LOCAL7);
    }
}
