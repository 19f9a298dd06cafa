//! The command plugin's `prefix` and `suffix` split into words once, at load time, with
//! the POSIX shell's quoting rules, so that the command runs without a shell.
//!
//! sersync pasted them into `sh -c` with the file name between; we run the program
//! directly. What a shell would have expanded or interpreted (`$VAR`, `` `cmd` ``, `|`,
//! `>`, `;`, globs, `~`) cannot mean the same thing here, so it is refused unless quoted,
//! rather than passed on as a literal word nobody intended.

/// Characters that make a shell do something other than build a word: refused unquoted.
const SPECIAL: &[char] = &['|', '&', ';', '<', '>', '(', ')', '$', '`', '*', '?', '['];

/// Splits `text` into words as `sh` would: blanks separate words; `'...'` is literal;
/// `"..."` is literal but for `\` before `$`, `` ` ``, `"`, `\` and a newline; a `\`
/// outside quotes takes the next character literally (a `\` before a newline joins the
/// lines).
///
/// # Errors
/// An unterminated quote, a trailing `\`, or an unquoted character the shell would have
/// interpreted (see [`SPECIAL`], and `~` or `#` starting a word): the words saying what.
pub fn split(text: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    // The word being built; `None` between words (an empty quoted word is `Some("")`).
    let mut word: Option<String> = None;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' | '\n' => words.extend(word.take()),
            '\'' => {
                let w = word.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => w.push(c),
                        None => return Err(format!("unterminated ' in {text:?}")),
                    }
                }
            }
            '"' => {
                let w = word.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some('\n') => {}
                            Some(c @ ('$' | '`' | '"' | '\\')) => w.push(c),
                            Some(c) => {
                                w.push('\\');
                                w.push(c);
                            }
                            None => return Err(format!("unterminated \" in {text:?}")),
                        },
                        Some(c @ ('$' | '`')) => return Err(interpreted(c, text)),
                        Some(c) => w.push(c),
                        None => return Err(format!("unterminated \" in {text:?}")),
                    }
                }
            }
            '\\' => match chars.next() {
                Some('\n') => {}
                Some(c) => word.get_or_insert_with(String::new).push(c),
                None => return Err(format!("a lone \\ ends {text:?}")),
            },
            '~' | '#' if word.is_none() => return Err(interpreted(c, text)),
            c if SPECIAL.contains(&c) => return Err(interpreted(c, text)),
            c => word.get_or_insert_with(String::new).push(c),
        }
    }
    words.extend(word);
    Ok(words)
}

fn interpreted(c: char, text: &str) -> String {
    format!(
        "{c:?} in {text:?} would be interpreted by a shell, and the agent runs the command \
         without one: quote it to mean the character, or put the shell line in a script"
    )
}

#[cfg(test)]
mod tests {
    use super::split;

    #[test]
    fn splits_as_the_shell_does() {
        let cases: &[(&str, &[&str])] = &[
            ("", &[]),
            ("  /bin/sh  ", &["/bin/sh"]),
            (
                "/opt/x.sh -v\t--to dst",
                &["/opt/x.sh", "-v", "--to", "dst"],
            ),
            ("'a b' \"c d\"", &["a b", "c d"]),
            ("a'b'\"c\"d", &["abcd"]),
            ("'' x", &["", "x"]),
            (r"a\ b", &["a b"]),
            (r#""a\"b\\c\d""#, &[r#"a"b\c\d"#]),
            (r"'a\b'", &[r"a\b"]),
            ("a\\\nb", &["ab"]),
            (
                "'$HOME' '*.php' '|' \"a;b\" \"x>y\"",
                &["$HOME", "*.php", "|", "a;b", "x>y"],
            ),
            (r"\$x \* a~ a#", &["$x", "*", "a~", "a#"]),
            ("'~' \"#\"", &["~", "#"]),
        ];
        for (text, want) in cases {
            let got = split(text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
            assert_eq!(got, *want, "{text:?}");
        }
    }

    #[test]
    fn refuses_what_a_shell_would_interpret() {
        for text in [
            "cd /x && ./run",
            "a | b",
            "a; b",
            "a > log",
            "a < in",
            "$HOME/x",
            "\"$HOME\"",
            "`id`",
            "\"`id`\"",
            "$(id)",
            "*.sh",
            "a?",
            "[ab]",
            "~/x",
            "# note",
            "(a)",
        ] {
            let e = split(text).unwrap_err();
            assert!(e.contains("without one"), "{text:?}: {e}");
        }
    }

    #[test]
    fn refuses_unterminated_quotes() {
        for text in ["'a", "\"a", "a\\", "\"a\\"] {
            assert!(split(text).is_err(), "{text:?}");
        }
    }
}
