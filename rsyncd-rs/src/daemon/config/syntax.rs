//! The lexical layer: one file's text into section headers, `name = value` lines and
//! `&` directives, each with the line it starts on.
//!
//! The rules follow upstream's reader character by character (leading whitespace, `#`
//! and `;` comments, `\` continuations, whitespace folding in names, only the first `=`
//! counting), except that problems are returned as items instead of ending the parse, so
//! the caller can report every bad line.
//!
//! Upstream: params.c, Parse(), Section(), Parameter(), Continuation().

use super::values::is_space;

/// One thing read from a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Item {
    /// `[name]`, with the name's whitespace folded to single spaces and trimmed.
    Section { name: String, line: u32 },
    /// `name = value`; the name is folded like a section name, the value trimmed.
    Param {
        name: String,
        value: String,
        line: u32,
    },
    /// `&name value` or `&name = value`.
    Directive {
        name: String,
        value: String,
        line: u32,
    },
    /// Something upstream would skip or refuse.
    Problem { problem: Problem, line: u32 },
}

/// A line the reader could not make sense of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Problem {
    /// A line with no `=`: upstream ignores it ("badly formed line"). Holds the text.
    NoEquals(String),
    /// A line starting with `=`: upstream refuses the whole file. Holds the value.
    EmptyName(String),
    /// `[]`: upstream refuses the whole file.
    EmptySection,
    /// A `[` header with no `]` on its line: upstream refuses the whole file.
    UnclosedSection(String),
    /// A NUL byte: the text from there on is ignored.
    Nul,
}

/// Reads `text` into items, in order. The result has at most one item per line.
pub(crate) fn lex(text: &str) -> Vec<Item> {
    let mut items = Vec::new();
    // Upstream treats a NUL as the end of the file in most places (and in others
    // resumes oddly after it); here it simply ends the file, with a warning.
    let text = match text.find('\0') {
        Some(at) => {
            let line = line_of(text, at);
            items.extend(Reader::new(&text[..at]).items());
            items.push(Item::Problem {
                problem: Problem::Nul,
                line,
            });
            return items;
        }
        None => text,
    };
    items.extend(Reader::new(text).items());
    items
}

/// The 1-based line number of byte offset `at`.
fn line_of(text: &str, at: usize) -> u32 {
    let newlines = text.as_bytes()[..at.min(text.len())]
        .iter()
        .filter(|b| **b == b'\n')
        .count();
    u32::try_from(newlines)
        .unwrap_or(u32::MAX)
        .saturating_add(1)
}

/// A `getc()`-style cursor that counts lines.
struct Reader<'a> {
    chars: std::str::Chars<'a>,
    line: u32,
}

impl<'a> Reader<'a> {
    fn new(text: &'a str) -> Self {
        Reader {
            chars: text.chars(),
            line: 1,
        }
    }

    fn getc(&mut self) -> Option<char> {
        let c = self.chars.next();
        if c == Some('\n') {
            self.line = self.line.saturating_add(1);
        }
        c
    }

    /// Skips whitespace other than newlines. Upstream: params.c, EatWhitespace().
    fn eat_whitespace(&mut self) -> Option<char> {
        loop {
            match self.getc() {
                Some(c) if is_space(c) && c != '\n' => {}
                other => return other,
            }
        }
    }

    /// Skips to the end of the line. Upstream: params.c, EatComment().
    fn eat_comment(&mut self) {
        while !matches!(self.getc(), Some('\n') | None) {}
    }

    fn items(mut self) -> Vec<Item> {
        let mut items = Vec::new();
        let mut c = self.eat_whitespace();
        while let Some(first) = c {
            let line = self.line;
            match first {
                '\n' => {}
                ';' | '#' => self.eat_comment(),
                '[' => items.push(self.section(line)),
                // A backslash at the start of a line is dropped; the rest of the line
                // is read as if it were not there.
                '\\' => {}
                _ => items.push(self.parameter(first, line)),
            }
            c = self.eat_whitespace();
        }
        items
    }

    /// Reads a section header after its `[`.
    fn section(&mut self, line: u32) -> Item {
        let mut name = String::new();
        let mut c = self.eat_whitespace();
        loop {
            match c {
                Some(']') => {
                    self.eat_comment();
                    let name = name.trim_end_matches(' ').to_owned();
                    if name.is_empty() {
                        return problem(Problem::EmptySection, line);
                    }
                    return Item::Section { name, line };
                }
                Some('\n') if strip_continuation(&mut name).is_some() => c = self.getc(),
                Some('\n') | None => {
                    let text = name.trim_end_matches(' ').to_owned();
                    return problem(Problem::UnclosedSection(text), line);
                }
                Some(ch) if is_space(ch) => {
                    push_folded_space(&mut name);
                    c = self.eat_whitespace();
                }
                Some(ch) => {
                    name.push(ch);
                    c = self.getc();
                }
            }
        }
    }

    /// Reads a parameter line or directive whose first character is `first`.
    fn parameter(&mut self, first: char, line: u32) -> Item {
        let is_directive = first == '&';
        let mut name = String::new();
        let mut c = Some(first);
        loop {
            match c {
                Some('=') => {
                    c = self.eat_whitespace();
                    break;
                }
                Some('\n') if strip_continuation(&mut name).is_some() => c = self.getc(),
                Some('\n') | None => {
                    let text = name.trim_end_matches(' ').to_owned();
                    return problem(Problem::NoEquals(text), line);
                }
                // A directive's name ends at its first space or tab; an `=` may follow.
                Some(' ' | '\t') if is_directive => {
                    c = self.eat_whitespace();
                    if c == Some('=') {
                        c = self.eat_whitespace();
                    }
                    break;
                }
                Some(ch) if is_space(ch) => {
                    push_folded_space(&mut name);
                    c = self.eat_whitespace();
                }
                Some(ch) => {
                    name.push(ch);
                    c = self.getc();
                }
            }
        }
        let value = self.value(c);
        let name = name.trim_end_matches(' ').to_owned();
        if name.is_empty() {
            problem(Problem::EmptyName(value), line)
        } else if is_directive {
            Item::Directive { name, value, line }
        } else {
            Item::Param { name, value, line }
        }
    }

    /// Reads a value from its first character `c` to the end of its (continued) line.
    fn value(&mut self, mut c: Option<char>) -> String {
        let mut value = String::new();
        // Text before a continuation is kept as written, trailing spaces included;
        // only whitespace after the last continuation is trimmed.
        let mut kept = 0;
        loop {
            match c {
                None => break,
                // Dropped anywhere in a value, so CRLF files read like LF files.
                Some('\r') => c = self.getc(),
                Some('\n') => match strip_continuation(&mut value) {
                    Some(len) => {
                        kept = len;
                        c = self.getc();
                    }
                    None => break,
                },
                Some(ch) => {
                    value.push(ch);
                    c = self.getc();
                }
            }
        }
        let trimmed = value.trim_end_matches(is_space).len().max(kept);
        value.truncate(trimmed);
        value
    }
}

fn problem(problem: Problem, line: u32) -> Item {
    Item::Problem { problem, line }
}

/// Folds a run of whitespace in a name into one space (none at the start).
fn push_folded_space(name: &mut String) {
    if !name.is_empty() && !name.ends_with(' ') {
        name.push(' ');
    }
}

/// If `buf`'s last non-whitespace character is a `\`, cuts `buf` just before it and
/// returns the new length: the line continues on the next one.
fn strip_continuation(buf: &mut String) -> Option<usize> {
    let len = buf.trim_end_matches(is_space).strip_suffix('\\')?.len();
    buf.truncate(len);
    Some(len)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn param(name: &str, value: &str, line: u32) -> Item {
        Item::Param {
            name: name.into(),
            value: value.into(),
            line,
        }
    }

    fn section(name: &str, line: u32) -> Item {
        Item::Section {
            name: name.into(),
            line,
        }
    }

    #[test]
    fn sections_and_parameters() {
        let text = "a = 1\n[mod]\n  b   c =  x  y  \n";
        assert_eq!(
            lex(text),
            [
                param("a", "1", 1),
                section("mod", 2),
                param("b c", "x  y", 3)
            ]
        );
    }

    #[test]
    fn comments_and_blank_lines() {
        let text = "# c\n  ; c\n\n \t \nx = a # not a comment ; nor this\n#y = 1\n";
        assert_eq!(lex(text), [param("x", "a # not a comment ; nor this", 5)]);
    }

    #[test]
    fn a_comment_does_not_continue() {
        assert_eq!(lex("# c \\\nx = 1\n"), [param("x", "1", 2)]);
    }

    #[test]
    fn only_the_first_equals_sign_counts() {
        assert_eq!(lex("a = b = c\n"), [param("a", "b = c", 1)]);
        assert_eq!(lex("a=\n"), [param("a", "", 1)]);
        assert_eq!(lex("a =[x];y\n"), [param("a", "[x];y", 1)]);
    }

    #[test]
    fn continuation_lines() {
        assert_eq!(
            lex("a = one \\\n  two\nb = 3\n"),
            [param("a", "one   two", 1), param("b", "3", 3)]
        );
        assert_eq!(lex("a = x\\  \ny\n"), [param("a", "xy", 1)]);
        assert_eq!(
            lex("max \\\nconnections = 4\n"),
            [param("max connections", "4", 1)]
        );
        assert_eq!(lex("a = \\\n\\\nz\n"), [param("a", "z", 1)]);
        // Spaces before a continuation stay even when nothing follows.
        assert_eq!(lex("a = x  \\\n   \n"), [param("a", "x  ", 1)]);
        // A backslash inside a value is just a character.
        assert_eq!(lex("a = c:\\dir\\x\n"), [param("a", "c:\\dir\\x", 1)]);
        assert_eq!(lex("[mo\\\n  d]\n"), [section("mo d", 1)]);
    }

    #[test]
    fn carriage_returns_are_dropped() {
        assert_eq!(
            lex("a = 1\r\n[m]\r\nb = x\ry\r\n"),
            [param("a", "1", 1), section("m", 2), param("b", "xy", 3)]
        );
    }

    #[test]
    fn section_names_fold_whitespace_and_ignore_the_rest_of_the_line() {
        assert_eq!(
            lex("[  my \t module ] trailing junk\n"),
            [section("my module", 1)]
        );
    }

    #[test]
    fn a_leading_backslash_is_ignored() {
        assert_eq!(lex("\\ a = 1\n\\\n"), [param("a", "1", 1)]);
    }

    #[test]
    fn directives() {
        let dir = |name: &str, value: &str| Item::Directive {
            name: name.into(),
            value: value.into(),
            line: 1,
        };
        assert_eq!(lex("&include /etc/x\n"), [dir("&include", "/etc/x")]);
        assert_eq!(lex("&merge = /etc/y \n"), [dir("&merge", "/etc/y")]);
        assert_eq!(lex("&include=/z\n"), [dir("&include", "/z")]);
        assert_eq!(lex("&include a b\n"), [dir("&include", "a b")]);
    }

    #[test]
    fn problems() {
        let p = |problem, line| Item::Problem { problem, line };
        assert_eq!(
            lex("ignore errors\nx = 1\n"),
            [
                p(Problem::NoEquals("ignore errors".into()), 1),
                param("x", "1", 2)
            ]
        );
        assert_eq!(lex("at eof"), [p(Problem::NoEquals("at eof".into()), 1)]);
        assert_eq!(lex("= v\n"), [p(Problem::EmptyName("v".into()), 1)]);
        assert_eq!(
            lex("[]\n[ ]\n"),
            [p(Problem::EmptySection, 1), p(Problem::EmptySection, 2)]
        );
        assert_eq!(
            lex("[mod\nx = 1\n"),
            [
                p(Problem::UnclosedSection("mod".into()), 1),
                param("x", "1", 2)
            ]
        );
        assert_eq!(lex("[mod"), [p(Problem::UnclosedSection("mod".into()), 1)]);
        assert_eq!(
            lex("a = 1\nb = 2\0c = 3\n"),
            [param("a", "1", 1), param("b", "2", 2), p(Problem::Nul, 2)]
        );
    }

    #[test]
    fn lines_count_across_continuations() {
        assert_eq!(
            lex("a = 1 \\\n2\n\nb = 3\n"),
            [param("a", "1 2", 1), param("b", "3", 4)]
        );
    }
}
