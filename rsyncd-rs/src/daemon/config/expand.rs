//! `%VAR%` references in parameter values.
//!
//! Upstream expands string parameters lazily, when the daemon first reads them, so that
//! variables set per connection (`RSYNC_USER_NAME`, `RSYNC_MODULE_PATH`, ...) can be
//! used; this module offers the same expansion to the session code, which passes a lookup
//! that sees its `RSYNC_*` values first and the process environment second.

/// Why a value meant for a shell hook could not be expanded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExpandError {
    /// A peer-influenced `%RSYNC_*%` value holds a character a shell could treat as
    /// syntax; upstream refuses to run the hook rather than risk an injection (the hook
    /// may be an access check, so skipping it is not an option either).
    #[error("refusing to run shell hook: %{name}% holds a shell metacharacter")]
    UnsafeValue {
        /// The variable's name, without the percent signs.
        name: String,
    },
    /// The expansion grew the value by more than upstream's fixed slack; upstream ends
    /// the session there.
    #[error("expanding the value would make it longer than {limit} bytes")]
    TooLong {
        /// The longest result allowed for this value.
        limit: usize,
    },
}

/// How much longer than its template an expanded hook command may be.
/// Upstream: loadparm.c, expand_vars() sizes its buffer as the template plus 2048.
const EXPANSION_SLACK: usize = 2048;

/// Bytes that make a substituted value unsafe in a shell hook, in any quoting context.
/// Quoting protects one level of shell parsing only; a hook such as
/// `sh -c '... %RSYNC_USER_NAME% ...'` parses the value a second time, bare.
const SHELL_UNSAFE: &str = "'\"`$\\;&|<>()*?[]# !~{}";

/// Expands `%NAME%` references in `value`, looking each NAME up with `lookup`.
///
/// A reference starts with `%` followed by an ASCII capital letter and runs to the next
/// `%`. A name that `lookup` does not know, a lone `%`, or `%%` is left exactly as
/// written: upstream passes raw characters through rather than risk, say, an empty path
/// component. Never fails.
///
/// Upstream: loadparm.c, expand_vars() (non-shell use). Upstream additionally ends the
/// session when the result outgrows the template by more than 2048 bytes; this function
/// does not, as nothing is gained by failing an ordinary string value.
pub fn expand_vars(value: &str, lookup: &dyn Fn(&str) -> Option<String>) -> String {
    // Without a shell context nothing can fail and there is no length limit.
    expand(value, lookup, None).unwrap_or_else(|_| value.to_owned())
}

/// Expands `%NAME%` references for a value run by `/bin/sh` (`early exec`,
/// `pre-xfer exec`, `post-xfer exec`, `name converter`).
///
/// Values of `%RSYNC_*%` variables come from the peer, so each is quoted for the shell
/// quoting context at the point of the reference (unquoted or inside `"..."`: wrapped in
/// single quotes; inside `'...'`: inserted as is), and a value holding any shell
/// metacharacter, space or control character is refused with
/// [`ExpandError::UnsafeValue`]. Other variables are inserted verbatim, as upstream
/// does. [`ExpandError::TooLong`] when the result would exceed the template's length
/// plus 2048 bytes.
///
/// Upstream: loadparm.c, expand_vars() with shell escaping, shell_unsafe_value(),
/// expand_vars_shell_escape().
pub fn expand_vars_for_shell(
    value: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<String, ExpandError> {
    expand(value, lookup, Some(QuoteTracker::default()))
}

/// The shell quoting context at the current point of a hook template.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Quote {
    #[default]
    Unquoted,
    Single,
    Double,
}

/// Follows the quoting of a template's literal characters, one at a time.
#[derive(Debug, Clone, Copy, Default)]
struct QuoteTracker {
    quote: Quote,
    /// The previous character was a backslash outside single quotes.
    escaped: bool,
}

impl QuoteTracker {
    fn feed(&mut self, c: char) {
        match self.quote {
            // Inside '...' nothing is special, not even a backslash.
            Quote::Single => {
                if c == '\'' {
                    self.quote = Quote::Unquoted;
                }
            }
            _ if self.escaped => self.escaped = false,
            _ if c == '\\' => self.escaped = true,
            // A single quote inside "..." is literal and must not open a '...' run.
            Quote::Double => {
                if c == '"' {
                    self.quote = Quote::Unquoted;
                }
            }
            Quote::Unquoted => match c {
                '\'' => self.quote = Quote::Single,
                '"' => self.quote = Quote::Double,
                _ => {}
            },
        }
    }
}

/// The shared walk over `value`; `shell` is `Some` for hook commands.
fn expand(
    value: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    mut shell: Option<QuoteTracker>,
) -> Result<String, ExpandError> {
    if !value.contains('%') {
        return Ok(value.to_owned());
    }
    let limit = value.len().saturating_add(EXPANSION_SLACK);
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(c) = rest.chars().next() {
        if let Some((name, after)) = reference_at(rest) {
            if let Some(found) = lookup(name) {
                let text = match &shell {
                    Some(tracker) if name.starts_with("RSYNC_") => {
                        if found.chars().any(is_shell_unsafe) {
                            return Err(ExpandError::UnsafeValue {
                                name: name.to_owned(),
                            });
                        }
                        quote_for_shell(&found, tracker.quote)
                    }
                    _ => found,
                };
                out.push_str(&text);
                if shell.is_some() && out.len() > limit {
                    return Err(ExpandError::TooLong { limit });
                }
                rest = after;
                continue;
            }
        }
        // A literal character, including the `%` of an unknown reference: the name
        // that follows is then scanned as ordinary text, as upstream does.
        if let Some(tracker) = shell.as_mut() {
            tracker.feed(c);
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    Ok(out)
}

/// If `s` starts with a reference `%NAME%`, returns NAME and the text after it.
fn reference_at(s: &str) -> Option<(&str, &str)> {
    let inner = s.strip_prefix('%')?;
    if !inner.starts_with(|c: char| c.is_ascii_uppercase()) {
        return None;
    }
    let end = inner.find('%')?;
    Some((&inner[..end], &inner[end + 1..]))
}

fn is_shell_unsafe(c: char) -> bool {
    SHELL_UNSAFE.contains(c) || c < '\u{20}' || c == '\u{7f}'
}

/// Quotes `value` for insertion at a point of a shell command in `quote` context.
/// Values reaching here are already free of quotes and backslashes; the escaping is kept
/// complete anyway so that this function is correct on its own.
fn quote_for_shell(value: &str, quote: Quote) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    // Inside "..." the result is both backslash-escaped and wrapped in '...': the wrap
    // is redundant for one shell, but protects the value when a hook hands the word to
    // a second shell (`sh -c "... %RSYNC_USER_NAME% ..."`).
    let wrap = quote != Quote::Single;
    if wrap {
        out.push('\'');
    }
    for c in value.chars() {
        match c {
            '\\' | '"' | '`' | '$' if quote == Quote::Double => {
                out.push('\\');
                out.push(c);
            }
            '\'' => out.push_str("'\\''"),
            _ => out.push(c),
        }
    }
    if wrap {
        out.push('\'');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "HOME" => Some("/home/me".into()),
            "RSYNC_USER_NAME" => Some("alice".into()),
            "RSYNC_EVIL" => Some("x; rm -rf /".into()),
            "RSYNC_QUOTE" => Some("it's".into()),
            "RSYNC_LONG" => Some("y".repeat(3000)),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn known_names_are_replaced() {
        assert_eq!(
            expand_vars("/home/%RSYNC_USER_NAME%/x", &env),
            "/home/alice/x"
        );
        assert_eq!(expand_vars("%HOME%%HOME%", &env), "/home/me/home/me");
        assert_eq!(expand_vars("a%EMPTY%b", &env), "ab");
    }

    #[test]
    fn unknown_and_malformed_references_stay_raw() {
        for raw in [
            "%NOPE%",
            "100%",
            "%%",
            "50%% off",
            "%lower%",
            "%1ABC%",
            "%UNCLOSED",
            "plain",
            "",
        ] {
            assert_eq!(expand_vars(raw, &env), raw, "{raw}");
        }
    }

    #[test]
    fn unknown_reference_closing_percent_can_open_the_next() {
        // The `%` closing an unknown name is scanned again as a possible opener.
        assert_eq!(expand_vars("%NOPE%HOME%", &env), "%NOPE/home/me");
    }

    #[test]
    fn names_may_hold_any_character_after_a_capital() {
        let lookup = |n: &str| (n == "A b-c").then(|| "v".to_owned());
        assert_eq!(expand_vars("[%A b-c%]", &lookup), "[v]");
    }

    #[test]
    fn plain_expansion_never_quotes() {
        assert_eq!(expand_vars("%RSYNC_EVIL%", &env), "x; rm -rf /");
    }

    #[test]
    fn shell_expansion_quotes_by_context() {
        let e = |s| expand_vars_for_shell(s, &env);
        assert_eq!(e("echo %RSYNC_USER_NAME%"), Ok("echo 'alice'".into()));
        assert_eq!(e("echo '%RSYNC_USER_NAME%'"), Ok("echo 'alice'".into()));
        assert_eq!(
            e("echo \"%RSYNC_USER_NAME%\""),
            Ok("echo \"'alice'\"".into())
        );
        // After a closed quote the context is unquoted again.
        assert_eq!(e("'a' %RSYNC_USER_NAME%"), Ok("'a' 'alice'".into()));
        // A single quote inside "..." does not open a '...' run.
        assert_eq!(
            e("\"it's\" %RSYNC_USER_NAME%"),
            Ok("\"it's\" 'alice'".into())
        );
        // An escaped quote does not open a quoted run.
        assert_eq!(e("\\' %RSYNC_USER_NAME%"), Ok("\\' 'alice'".into()));
    }

    #[test]
    fn shell_expansion_leaves_other_variables_alone() {
        assert_eq!(
            expand_vars_for_shell("cd %HOME% && %NOPE%", &env),
            Ok("cd /home/me && %NOPE%".into())
        );
    }

    #[test]
    fn shell_expansion_refuses_metacharacters() {
        assert_eq!(
            expand_vars_for_shell("echo %RSYNC_EVIL%", &env),
            Err(ExpandError::UnsafeValue {
                name: "RSYNC_EVIL".into()
            })
        );
        assert!(expand_vars_for_shell("echo %RSYNC_QUOTE%", &env).is_err());
        for bad in ["a b", "a\tb", "a\u{7f}", "~root", "{a,b}", "!x", "#"] {
            let lookup = |n: &str| (n == "RSYNC_X").then(|| bad.to_owned());
            assert!(
                expand_vars_for_shell("%RSYNC_X%", &lookup).is_err(),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn shell_expansion_has_a_length_limit() {
        assert_eq!(
            expand_vars_for_shell("%RSYNC_LONG%", &env),
            Err(ExpandError::TooLong { limit: 12 + 2048 })
        );
        assert_eq!(expand_vars("%RSYNC_LONG%", &env).len(), 3000);
    }

    #[test]
    fn quoting_escapes_every_context() {
        assert_eq!(quote_for_shell("a'b", Quote::Unquoted), "'a'\\''b'");
        assert_eq!(quote_for_shell("a'b", Quote::Single), "a'\\''b");
        assert_eq!(quote_for_shell("a$\"b", Quote::Double), "'a\\$\\\"b'");
    }

    proptest! {
        #[test]
        fn expansion_never_panics(s in ".{0,200}") {
            let lookup = |n: &str| (n.len() % 2 == 0).then(|| n.to_lowercase());
            let _ = expand_vars(&s, &lookup);
            let _ = expand_vars_for_shell(&s, &lookup);
        }

        #[test]
        fn without_known_names_the_value_is_unchanged(s in ".{0,200}") {
            let none = |_: &str| None;
            prop_assert_eq!(expand_vars(&s, &none), s.clone());
            prop_assert_eq!(expand_vars_for_shell(&s, &none), Ok(s));
        }
    }
}
