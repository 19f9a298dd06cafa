//! rsync's wildcard matcher (upstream: lib/wildmatch.c), shared by host patterns,
//! `auth users` and filter rules.
//!
//! Semantics, as upstream: `?` is any byte but `/`; `*` is any run of bytes without `/`;
//! `**` (two or more stars) is any run including `/`; `[...]` is a class with `!` or `^`
//! negation, `a-z` ranges, `[:alpha:]`-style named classes and `\` escapes, and never
//! matches `/`; `\x` matches `x` literally. Both strings end at their first NUL byte,
//! as the C strings upstream works on do.
//!
//! Work is bounded the way upstream bounds it: a star that runs off the end of the text
//! aborts the whole match ("abort all"), and a single `*` that reaches a `/` hands control
//! back to the nearest enclosing `**` ("abort to star-star"). The recursion upstream uses
//! for stars is an explicit stack here, so a pattern with many stars cannot exhaust the
//! thread's stack.
#![forbid(unsafe_code)]

/// Upstream's four outcomes of `dowild()`; the two aborts prune the backtracking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    NoMatch,
    Match,
    AbortAll,
    AbortToStarStar,
}

/// What a run over the star-free part of a pattern ended with.
enum Step {
    Done(Outcome),
    /// A (non-trailing) star: `next` is the pattern index after the stars and `double`
    /// says whether there were two or more.
    Star {
        next: usize,
        double: bool,
    },
}

/// One pending star: the text position it is currently trying.
struct StarFrame {
    next: usize,
    double: bool,
    at: usize,
}

/// Cuts a byte string at its first NUL, as a C string would end there.
fn c_str(s: &[u8]) -> &[u8] {
    match s.iter().position(|&b| b == 0) {
        Some(n) => &s[..n],
        None => s,
    }
}

/// Returns `true` when `pattern` matches all of `text`.
///
/// Upstream: lib/wildmatch.c, wildmatch().
pub fn wildmatch(pattern: &[u8], text: &[u8]) -> bool {
    dowild(c_str(pattern), c_str(text), false).0 == Outcome::Match
}

/// Like [`wildmatch`], but ASCII letters in both the text and the pattern are folded to
/// lower case. (3.5.0 folds the pattern too, so an upper-case `hosts deny` entry cannot
/// fail open; older releases folded only the text.)
///
/// Upstream: lib/wildmatch.c, iwildmatch().
pub fn iwildmatch(pattern: &[u8], text: &[u8]) -> bool {
    dowild(c_str(pattern), c_str(text), true).0 == Outcome::Match
}

/// Where [`wildmatch_array`] and [`litmatch_array`] anchor the pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Anchor {
    /// The pattern must match the whole joined text (upstream `where == 0`).
    Whole,
    /// The pattern must match the last `n` `/`-separated components (upstream
    /// `where == n > 0`); fewer components than `n` never match.
    TrailingComponents(usize),
    /// The pattern may match at the start or right after any `/` (upstream `where < 0`).
    AnyComponent,
}

/// Matches `pattern` against the concatenation of `pieces` (e.g. a directory, `/` and a
/// name), without the caller having to join them.
///
/// Upstream: lib/wildmatch.c, wildmatch_array().
pub fn wildmatch_array(pattern: &[u8], pieces: &[&[u8]], anchor: Anchor) -> bool {
    let pattern = c_str(pattern);
    let text = join(pieces);
    let start = match anchor {
        Anchor::TrailingComponents(n) => match trailing_components(&text, n) {
            Some(start) => start,
            None => return false,
        },
        Anchor::Whole | Anchor::AnyComponent => 0,
    };
    let mut matched = dowild(pattern, &text[start..], false).0;
    if anchor == Anchor::AnyComponent && matched != Outcome::Match && matched != Outcome::AbortAll {
        // Retry after each slash; an abort-to-star-star from one start says nothing
        // about the next, but "abort all" or a match ends the search.
        let mut found = false;
        for (i, _) in text.iter().enumerate().filter(|&(_, &b)| b == b'/') {
            matched = dowild(pattern, &text[i + 1..], false).0;
            if matched != Outcome::NoMatch && matched != Outcome::AbortToStarStar {
                found = true;
                break;
            }
        }
        if !found {
            return false;
        }
    }
    matched == Outcome::Match
}

/// Compares `literal` byte for byte with the concatenation of `pieces`, anchored as
/// [`wildmatch_array`] does ([`Anchor::AnyComponent`] is treated as
/// [`Anchor::Whole`], as upstream only defines this for `where >= 0`).
///
/// Upstream: lib/wildmatch.c, litmatch_array().
pub fn litmatch_array(literal: &[u8], pieces: &[&[u8]], anchor: Anchor) -> bool {
    let text = join(pieces);
    let start = match anchor {
        Anchor::TrailingComponents(n) => match trailing_components(&text, n) {
            Some(start) => start,
            None => return false,
        },
        Anchor::Whole | Anchor::AnyComponent => 0,
    };
    text[start..] == *c_str(literal)
}

/// The pieces as one text, each cut at a NUL as a C string is; a single piece (the usual
/// case) is borrowed rather than copied.
fn join<'a>(pieces: &[&'a [u8]]) -> std::borrow::Cow<'a, [u8]> {
    if let [one] = pieces {
        return std::borrow::Cow::Borrowed(c_str(one));
    }
    let mut text = Vec::with_capacity(pieces.iter().map(|p| p.len()).sum());
    for piece in pieces {
        text.extend_from_slice(c_str(piece));
    }
    std::borrow::Cow::Owned(text)
}

/// Start of the last `count` components of `text`, or `None` if it has fewer.
///
/// Upstream: lib/wildmatch.c, trailing_N_elements().
fn trailing_components(text: &[u8], count: usize) -> Option<usize> {
    if count == 0 {
        return None;
    }
    let mut left = count;
    for i in (0..text.len()).rev() {
        if text[i] == b'/' {
            left -= 1;
            if left == 0 {
                return Some(i + 1);
            }
        }
    }
    (left == 1).then_some(0)
}

/// Pattern byte at `i`, or 0 past the end (the C terminator).
fn at(p: &[u8], i: usize) -> u8 {
    p.get(i).copied().unwrap_or(0)
}

fn fold(c: u8, on: bool) -> u8 {
    if on { c.to_ascii_lowercase() } else { c }
}

/// Upstream: lib/wildmatch.c, dowild(), with its recursion on `*` turned into a stack.
/// Also returns how many times upstream would have entered `dowild()`, which tests
/// compare with upstream's own counts to show the abort rules are the same.
fn dowild(p: &[u8], t: &[u8], lower: bool) -> (Outcome, u32) {
    let mut stack: Vec<StarFrame> = Vec::new();
    let (mut pi, mut ti) = (0usize, 0usize);
    let mut entries = 0u32;
    loop {
        entries = entries.saturating_add(1);
        let mut result = match run(p, t, &mut pi, &mut ti, lower) {
            Step::Done(outcome) => outcome,
            Step::Star { next, double } => {
                if ti >= t.len() {
                    // A star with no text left to try: upstream's loop ends at once.
                    Outcome::AbortAll
                } else {
                    stack.push(StarFrame {
                        next,
                        double,
                        at: ti,
                    });
                    pi = next;
                    continue;
                }
            }
        };
        // Hand `result` to the innermost star as the result of its current try.
        loop {
            let Some(top) = stack.last_mut() else {
                return (result, entries);
            };
            if result != Outcome::NoMatch {
                if !top.double || result != Outcome::AbortToStarStar {
                    stack.pop();
                    continue;
                }
            } else if !top.double && t.get(top.at) == Some(&b'/') {
                // A single star cannot cross this slash; only a `**` further out can.
                stack.pop();
                result = Outcome::AbortToStarStar;
                continue;
            }
            top.at += 1;
            if top.at >= t.len() {
                stack.pop();
                result = Outcome::AbortAll;
                continue;
            }
            pi = top.next;
            ti = top.at;
            break;
        }
    }
}

/// Matches from `p[*pi..]` against `t[*ti..]` until the pattern ends, a result is
/// known, or a star needs trying at several positions.
fn run(p: &[u8], t: &[u8], pi: &mut usize, ti: &mut usize, lower: bool) -> Step {
    loop {
        let Some(&p_ch) = p.get(*pi) else {
            let outcome = if *ti >= t.len() {
                Outcome::Match
            } else {
                Outcome::NoMatch
            };
            return Step::Done(outcome);
        };
        let Some(&raw_t) = t.get(*ti) else {
            if p_ch != b'*' {
                return Step::Done(Outcome::AbortAll);
            }
            return star(p, t, pi, *ti);
        };
        let t_ch = fold(raw_t, lower);
        match p_ch {
            b'\\' => {
                *pi += 1;
                if t_ch != fold(at(p, *pi), lower) {
                    return Step::Done(Outcome::NoMatch);
                }
            }
            b'?' => {
                if t_ch == b'/' {
                    return Step::Done(Outcome::NoMatch);
                }
            }
            b'*' => return star(p, t, pi, *ti),
            b'[' => match class(p, pi, t_ch, lower) {
                Ok(true) => {}
                Ok(false) => return Step::Done(Outcome::NoMatch),
                Err(outcome) => return Step::Done(outcome),
            },
            _ => {
                if t_ch != fold(p_ch, lower) {
                    return Step::Done(Outcome::NoMatch);
                }
            }
        }
        *pi += 1;
        *ti += 1;
    }
}

/// Handles the star(s) at `p[*pi]`: a trailing star is decided here, any other is
/// returned for the caller to try at each text position.
fn star(p: &[u8], t: &[u8], pi: &mut usize, ti: usize) -> Step {
    let first = *pi;
    while at(p, *pi) == b'*' {
        *pi += 1;
    }
    let double = *pi - first > 1;
    if *pi >= p.len() {
        // A trailing `**` matches everything; a trailing `*` only if no slash is left.
        let ok = double || !t[ti.min(t.len())..].contains(&b'/');
        return Step::Done(if ok { Outcome::Match } else { Outcome::NoMatch });
    }
    Step::Star { next: *pi, double }
}

/// Matches one bracket class starting at `p[*pi] == '['` against `t_ch`, leaving `*pi`
/// on its closing `]`. `Err` carries upstream's "abort all" for a malformed class.
fn class(p: &[u8], pi: &mut usize, t_ch: u8, lower: bool) -> Result<bool, Outcome> {
    *pi += 1;
    let mut p_ch = at(p, *pi);
    if p_ch == b'^' {
        p_ch = b'!';
    }
    let negated = p_ch == b'!';
    if negated {
        *pi += 1;
        p_ch = at(p, *pi);
    }
    let mut prev_ch = 0u8;
    let mut matched = false;
    loop {
        if p_ch == 0 {
            return Err(Outcome::AbortAll);
        }
        if p_ch == b'\\' {
            *pi += 1;
            p_ch = at(p, *pi);
            if p_ch == 0 {
                return Err(Outcome::AbortAll);
            }
            p_ch = fold(p_ch, lower);
            matched |= t_ch == p_ch;
        } else if p_ch == b'-' && prev_ch != 0 && !matches!(at(p, *pi + 1), 0 | b']') {
            *pi += 1;
            p_ch = at(p, *pi);
            if p_ch == b'\\' {
                *pi += 1;
                p_ch = at(p, *pi);
                if p_ch == 0 {
                    return Err(Outcome::AbortAll);
                }
            }
            p_ch = fold(p_ch, lower);
            matched |= (prev_ch..=p_ch).contains(&t_ch);
            // A range cannot be the low end of another range.
            p_ch = 0;
        } else if p_ch == b'[' && at(p, *pi + 1) == b':' {
            let start = *pi + 2;
            let mut end = start;
            while !matches!(at(p, end), 0 | b']') {
                end += 1;
            }
            if at(p, end) == 0 {
                return Err(Outcome::AbortAll);
            }
            if end == start || at(p, end - 1) != b':' {
                // No ":]": the '[' is an ordinary member of the set.
                p_ch = b'[';
                matched |= t_ch == p_ch;
            } else {
                *pi = end;
                matched |= named_class(&p[start..end - 1], t_ch)?;
                p_ch = 0;
            }
        } else {
            p_ch = fold(p_ch, lower);
            matched |= t_ch == p_ch;
        }
        prev_ch = p_ch;
        *pi += 1;
        p_ch = at(p, *pi);
        if p_ch == b']' {
            break;
        }
    }
    Ok(matched != negated && t_ch != b'/')
}

/// `[:name:]` classes in the C locale; an unknown name aborts the whole match.
fn named_class(name: &[u8], c: u8) -> Result<bool, Outcome> {
    Ok(match name {
        b"alnum" => c.is_ascii_alphanumeric(),
        b"alpha" => c.is_ascii_alphabetic(),
        b"blank" => c == b' ' || c == b'\t',
        b"cntrl" => c.is_ascii_control(),
        b"digit" => c.is_ascii_digit(),
        b"graph" => c.is_ascii_graphic(),
        b"lower" => c.is_ascii_lowercase(),
        b"print" => c == b' ' || c.is_ascii_graphic(),
        b"punct" => c.is_ascii_punctuation(),
        // C's isspace() includes the vertical tab, which Rust's is_ascii_whitespace omits.
        b"space" => matches!(c, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r'),
        b"upper" => c.is_ascii_uppercase(),
        b"xdigit" => c.is_ascii_hexdigit(),
        _ => return Err(Outcome::AbortAll),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Splits one line of upstream's wildtest.txt into (expected, text, pattern):
    /// two 0/1 flags, then two strings, bare or quoted with ', " or `.
    fn parse_case(line: &str) -> Option<(bool, String, String)> {
        let line = line.trim_end_matches(['\n', '\r']);
        if line.is_empty() || line.starts_with('#') {
            return None;
        }
        let mut rest = line;
        let mut flags = [false; 2];
        for flag in &mut flags {
            *flag = rest.starts_with('1');
            rest = rest.get(1..)?.trim_start_matches([' ', '\t']);
        }
        let mut strings = Vec::new();
        for _ in 0..2 {
            let first = rest.chars().next()?;
            let (s, after) = if matches!(first, '\'' | '"' | '`') {
                let end = rest[1..].find(first)? + 1;
                (&rest[1..end], &rest[end + 1..])
            } else {
                let end = rest.find([' ', '\t']).unwrap_or(rest.len());
                (&rest[..end], &rest[end..])
            };
            strings.push(s.to_string());
            rest = after.trim_start_matches([' ', '\t']);
        }
        Some((flags[0], strings[0].clone(), strings[1].clone()))
    }

    const WILDTEST: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../ext/rsync-v3.5.0/wildtest.txt"
    );

    #[test]
    fn upstream_wildtest_table() {
        let Ok(bytes) = std::fs::read(WILDTEST) else {
            eprintln!("skipping: {WILDTEST} not present (covered by own_cases too)");
            return;
        };
        let text = String::from_utf8_lossy(&bytes);
        let mut count = 0;
        for (n, line) in text.lines().enumerate() {
            let Some((expect, t, p)) = parse_case(line) else {
                continue;
            };
            count += 1;
            assert_eq!(
                wildmatch(p.as_bytes(), t.as_bytes()),
                expect,
                "wildtest.txt line {}: text {t:?} pattern {p:?}",
                n + 1
            );
            // Upstream also runs the table with the text cut into pieces, with empty
            // pieces between; the joined result must not change.
            for width in 1..=3 {
                let mut pieces: Vec<&[u8]> = vec![b""];
                for chunk in t.as_bytes().chunks(width) {
                    pieces.push(chunk);
                    pieces.push(b"");
                }
                assert_eq!(
                    wildmatch_array(p.as_bytes(), &pieces, Anchor::Whole),
                    expect,
                    "wildtest.txt line {} in pieces of {width}",
                    n + 1
                );
            }
        }
        assert!(count >= 144, "parsed only {count} cases");
    }

    /// Our own cases: (text, pattern, expected).
    const OWN: &[(&str, &str, bool)] = &[
        ("foo", "f?o", true),
        ("f/o", "f?o", false),
        ("a/b/c", "a/*", false),
        ("a/b/c", "a/**", true),
        ("a/b", "a*b", false),
        ("a/b", "a**b", true),
        ("abc", "[!b]bc", true),
        ("bbc", "[^b]bc", false),
        ("x-y", "x[+--]y", true),
        ("Q", "[[:upper:]]", true),
        ("q", "[[:upper:]]", false),
        ("\x0b", "[[:space:]]", true),
        ("\x7f", "[[:cntrl:]]", true),
        ("a", "[[:nosuch:]]", false),
        ("*", "\\*", true),
        ("x", "\\", false),
        ("a]", "a]", true),
        ("ab", "a[b", false),
        ("", "*", true),
        ("", "**", true),
        ("", "?", false),
        ("/", "*", false),
        ("/", "**", true),
    ];

    #[test]
    fn own_cases() {
        for &(t, p, expect) in OWN {
            assert_eq!(wildmatch(p.as_bytes(), t.as_bytes()), expect, "{t:?} {p:?}");
        }
    }

    #[test]
    fn case_folding_covers_pattern_and_text() {
        // 3.5.0's t_iwildmatch cases, restated.
        assert!(iwildmatch(b"*.EXAMPLE.COM", b"foo.example.com"));
        assert!(iwildmatch(b"*.example.com", b"FOO.EXAMPLE.COM"));
        assert!(iwildmatch(b"[A-Z]bc", b"abc"));
        assert!(iwildmatch(b"[ABC]xy", b"bxy"));
        assert!(iwildmatch(b"[\\A]bc", b"abc"));
        assert!(!iwildmatch(b"[A-Z]bc", b"5bc"));
        assert!(!iwildmatch(b"ABC", b"abd"));
        assert!(!wildmatch(b"ABC", b"abc"));
    }

    #[test]
    fn nul_ends_both_strings() {
        assert!(wildmatch(b"ab\0zzz", b"ab"));
        assert!(wildmatch(b"ab", b"ab\0yyy"));
    }

    #[test]
    fn entry_counts_equal_upstream() {
        // `wildtest -i` on 3.5.0's own recursion cases gives these dowild() counts.
        let cases: &[(&str, &str, u32)] = &[
            (
                "-adobe-courier-bold-o-normal--12-120-75-75-m-70-iso8859-1",
                "-*-*-*-*-*-*-12-*-*-*-m-*-*-*",
                51,
            ),
            (
                "-adobe-courier-bold-o-normal--12-120-75-75-X-70-iso8859-1",
                "-*-*-*-*-*-*-12-*-*-*-m-*-*-*",
                54,
            ),
            (
                "-adobe-courier-bold-o-normal--12-120-75-75-/-70-iso8859-1",
                "-*-*-*-*-*-*-12-*-*-*-m-*-*-*",
                41,
            ),
            (
                "/adobe/courier/bold/o/normal//12/120/75/75/m/70/iso8859/1",
                "/*/*/*/*/*/*/12/*/*/*/m/*/*/*",
                51,
            ),
            (
                "/adobe/courier/bold/o/normal//12/120/75/75/X/70/iso8859/1",
                "/*/*/*/*/*/*/12/*/*/*/m/*/*/*",
                40,
            ),
            (
                "abcd/abcdefg/abcdefghijk/abcdefghijklmnop.txt",
                "**/*a*b*g*n*t",
                66,
            ),
            (
                "abcd/abcdefg/abcdefghijk/abcdefghijklmnop.txtz",
                "**/*a*b*g*n*t",
                67,
            ),
        ];
        for &(t, p, want) in cases {
            assert_eq!(dowild(p.as_bytes(), t.as_bytes(), false).1, want, "{p}");
        }
    }

    #[test]
    fn hostile_patterns_stay_cheap() {
        let text = vec![b'a'; 20_000];
        let mut pattern = b"*a".repeat(5_000);
        pattern.push(b'b');
        let (outcome, entries) = dowild(&pattern, &text, false);
        assert_ne!(outcome, Outcome::Match);
        assert!(entries < 100_000, "{entries} entries");

        let text = b"a/".repeat(5_000);
        let mut pattern = b"**".to_vec();
        pattern.extend(b"*a".repeat(2_000));
        pattern.push(b'x');
        let (outcome, entries) = dowild(&pattern, &text, false);
        assert_ne!(outcome, Outcome::Match);
        assert!(entries < 1_000_000, "{entries} entries");

        // Many stars must not recurse on the thread stack.
        let pattern = b"*x".repeat(200_000);
        assert!(!wildmatch(&pattern, &b"x".repeat(100)));
    }

    #[test]
    fn array_anchors() {
        let pieces: &[&[u8]] = &[b"dir/sub", b"/", b"file.txt"];
        assert!(wildmatch_array(b"dir/*/file.txt", pieces, Anchor::Whole));
        assert!(wildmatch_array(
            b"*.txt",
            pieces,
            Anchor::TrailingComponents(1)
        ));
        assert!(wildmatch_array(
            b"sub/*.txt",
            pieces,
            Anchor::TrailingComponents(2)
        ));
        assert!(!wildmatch_array(
            b"*.txt",
            pieces,
            Anchor::TrailingComponents(4)
        ));
        assert!(wildmatch_array(
            b"x/y/z",
            &[b"x/y/z"],
            Anchor::TrailingComponents(3)
        ));
        assert!(wildmatch_array(
            b"sub/file.txt",
            pieces,
            Anchor::AnyComponent
        ));
        assert!(!wildmatch_array(
            b"ub/file.txt",
            pieces,
            Anchor::AnyComponent
        ));
        assert!(litmatch_array(
            b"file.txt",
            pieces,
            Anchor::TrailingComponents(1)
        ));
        assert!(litmatch_array(b"dir/sub/file.txt", pieces, Anchor::Whole));
        assert!(!litmatch_array(b"sub/file.txt", pieces, Anchor::Whole));
    }

    proptest! {
        #[test]
        fn never_panics(p in proptest::collection::vec(any::<u8>(), 0..64),
                        t in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = wildmatch(&p, &t);
            let _ = iwildmatch(&p, &t);
            let _ = wildmatch_array(&p, &[&t, b"/", &t], Anchor::AnyComponent);
            let _ = wildmatch_array(&p, &[&t], Anchor::TrailingComponents(2));
        }

        #[test]
        fn never_panics_on_pattern_alphabet(
            p in "[*?\\[\\]!^:a-c/\\\\-]{0,24}",
            t in "[a-c/\\[\\]:-]{0,24}",
        ) {
            let _ = wildmatch(p.as_bytes(), t.as_bytes());
            let _ = iwildmatch(p.as_bytes(), t.as_bytes());
        }

        #[test]
        fn pieces_join(p in "[*?a-c/\\[\\]!]{0,12}", t in "[a-c/]{0,16}", cut in 0usize..17) {
            let cut = cut.min(t.len());
            let (a, b) = t.as_bytes().split_at(cut);
            prop_assert_eq!(
                wildmatch_array(p.as_bytes(), &[a, b], Anchor::Whole),
                wildmatch(p.as_bytes(), t.as_bytes())
            );
        }
    }
}
