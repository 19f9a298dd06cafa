//! Rule text into rules: the syntax of `--filter`, `--include`, `--exclude`, merge files,
//! the daemon's `filter`/`include`/`exclude` parameters and the wire.
//!
//! Upstream: exclude.c, parse_rule_tok(), parse_filter_str(), the directory-independent
//! part of add_rule(), and the line reader of parse_filter_file().

use super::{
    Action, DaemonParam, FilterError, FilterRule, MAXPATHLEN, MergeLines, RuleFlags, RuleTemplate,
    XFlags, show,
};

/// Upstream's default `--cvs-exclude` list (default-cvsignore.h, from rsync.1.md).
pub const DEFAULT_CVSIGNORE: &[u8] = b"RCS SCCS CVS CVS.adm RCSLOG cvslog.* tags TAGS \
.make.state .nse_depinfo *~ #* .#* ,* _$* *$ *.old *.bak *.BAK *.orig *.rej .del-* *.a \
*.olb *.o *.obj *.so *.exe *.Z *.elc *.ln core .svn/ .git/ .hg/ .bzr/";

/// Upstream's BIGPATHBUFLEN on Linux: the line buffer of merge files and of the wire.
pub(crate) const BIGPATHBUFLEN: usize = MAXPATHLEN + 1024;

// Upstream's FILTRULE_* bits (rsync.h), used while parsing so the code reads like the
// flag arithmetic it mirrors; rules leave this file as `FilterRule`.
const ABS_PATH: u32 = 1 << 4;
const INCLUDE: u32 = 1 << 5;
const DIRECTORY: u32 = 1 << 6;
const WORD_SPLIT: u32 = 1 << 7;
const NO_INHERIT: u32 = 1 << 8;
const NO_PREFIXES: u32 = 1 << 9;
const MERGE_FILE: u32 = 1 << 10;
const PERDIR_MERGE: u32 = 1 << 11;
const EXCLUDE_SELF: u32 = 1 << 12;
const NEGATE: u32 = 1 << 14;
const CVS_IGNORE: u32 = 1 << 15;
const SENDER_SIDE: u32 = 1 << 16;
const RECEIVER_SIDE: u32 = 1 << 17;
const CLEAR_LIST: u32 = 1 << 18;
const PERISHABLE: u32 = 1 << 19;
const XATTR: u32 = 1 << 20;
const SIDES: u32 = SENDER_SIDE | RECEIVER_SIDE;
/// What a rule inherits from its template (upstream FILTRULES_FROM_CONTAINER).
const FROM_CONTAINER: u32 = ABS_PATH | INCLUDE | DIRECTORY | NEGATE | PERISHABLE;

/// Parses rule text as upstream's `parse_filter_str()` does with `template` and `xflags`:
/// one rule, or several when the template splits words. `!` comes back as an
/// [`Action::Clear`] rule for the caller to apply to the list it is building; a `.` merge
/// comes back unread; `e` on a merge yields the exclude of the file's name first, as
/// upstream adds it. A pattern of [`MAXPATHLEN`] bytes or more is discarded (upstream
/// "discarding over-long filter", not fatal). Text ends at a NUL byte, as a C string.
///
/// Errors carry upstream's messages.
pub fn parse_rules(
    text: &[u8],
    template: &RuleTemplate,
    xflags: XFlags,
) -> Result<Vec<FilterRule>, FilterError> {
    parse_rules_in_dir(text, template, xflags, b"")
}

/// [`parse_rules`] for rules read in a directory: with `xflags.anchored2abs` (or
/// `abs_if_slash`) a leading `/` anchors at `anchor_dir`, the directory's path from the
/// module root without leading or trailing slash (empty for the module root). Upstream
/// builds this prefix from `dirbuf` in add_rule().
pub fn parse_rules_in_dir(
    text: &[u8],
    template: &RuleTemplate,
    xflags: XFlags,
    anchor_dir: &[u8],
) -> Result<Vec<FilterRule>, FilterError> {
    let text = match text.iter().position(|&b| b == 0) {
        Some(n) => &text[..n],
        None => text,
    };
    let tbits = template_bits(template);
    let mut out = Vec::new();
    let mut pos = 0;
    while let Some((bits, pat)) = parse_rule_tok(text, &mut pos, tbits, xflags)? {
        if pat.len() >= MAXPATHLEN {
            tracing::warn!(len = pat.len(), "discarding over-long filter");
            continue;
        }
        if bits & CLEAR_LIST != 0 {
            out.push(FilterRule::new(Action::Clear, b""));
            continue;
        }
        let mut bits = bits;
        let mut pat = pat;
        if bits & MERGE_FILE != 0 {
            if pat.is_empty() {
                pat = b".cvsignore";
            }
            if bits & EXCLUDE_SELF != 0 {
                let base = match pat.iter().rposition(|&b| b == b'/') {
                    Some(i) => &pat[i + 1..],
                    None => pat,
                };
                add_rule(&mut out, base, 0, XFlags::NONE, anchor_dir);
                bits &= !EXCLUDE_SELF;
            }
            if bits & PERDIR_MERGE == 0 {
                // Upstream reads the file here; the caller does, with the rule as the
                // template of the file's rules.
                out.push(to_rule(bits, pat.to_vec()));
                continue;
            }
        }
        add_rule(&mut out, pat, bits, xflags, anchor_dir);
    }
    Ok(out)
}

/// The rules in a merge file's contents: each line (each word with a word-splitting
/// template) parsed as [`parse_rules_in_dir`] does. Errors name `location` and the line
/// instead of echoing the text, because the peer may choose which file is read.
///
/// Upstream: exclude.c, parse_filter_file().
pub fn parse_rule_file(
    contents: &[u8],
    template: &RuleTemplate,
    xflags: XFlags,
    anchor_dir: &[u8],
    eol_nulls: bool,
    location: &str,
) -> Result<Vec<FilterRule>, FilterError> {
    let mut out = Vec::new();
    for (line, text) in split_rule_file(contents, template.flags.word_split, eol_nulls) {
        let rules = parse_rules_in_dir(text, template, xflags, anchor_dir).map_err(|e| {
            if line == 0 {
                e.from_file(location)
            } else {
                e.from_file(&format!("{location} line {line}"))
            }
        })?;
        out.extend(rules);
    }
    Ok(out)
}

/// The rules of one daemon parameter (or one line of an `include from`/`exclude from`
/// file), with the template and flags upstream's rsync_module() uses. The daemon parses
/// these before it knows whether it sends, so rules for the sender only (`H`, `S`,
/// `-s`) are dropped and receiver-only rules (`P`, `R`) are kept, whichever way the
/// transfer goes.
pub fn parse_daemon_param(param: DaemonParam, text: &[u8]) -> Result<Vec<FilterRule>, FilterError> {
    let xflags = XFlags {
        abs_if_slash: true,
        dir2wild3: true,
        old_prefixes: param != DaemonParam::Filter,
        ..XFlags::NONE
    };
    let template = match param {
        DaemonParam::Filter | DaemonParam::Exclude => RuleTemplate::EXCLUDE.word_split(),
        DaemonParam::Include => RuleTemplate::INCLUDE.word_split(),
        DaemonParam::IncludeFrom => RuleTemplate::INCLUDE,
        DaemonParam::ExcludeFrom => RuleTemplate::EXCLUDE,
    };
    parse_rules(text, &template, xflags)
}

/// Splits a merge file's contents into rule texts with their 1-based line numbers (0
/// when `word_split`, as upstream then counts tokens, not lines). Lines end at `\n`, `\r`
/// or `\r\n` (at NUL with `eol_nulls`, upstream `--from0`); with `word_split` at any
/// whitespace too. Empty entries are skipped, and so are lines starting with `;` or `#`
/// when not word-splitting. A line longer than upstream's buffer is dropped (upstream
/// "discarding over-long filter").
///
/// Upstream: exclude.c, parse_filter_file().
pub fn split_rule_file(contents: &[u8], word_split: bool, eol_nulls: bool) -> Vec<(u32, &[u8])> {
    let mut out = Vec::new();
    let mut line_no = 0u32;
    let mut start = 0usize;
    let mut i = 0usize;
    while i < contents.len() {
        let c = contents[i];
        let ends = if eol_nulls {
            c == 0
        } else {
            c == b'\n' || c == b'\r'
        };
        if ends || (word_split && is_space(c)) {
            line_no = line_no.saturating_add(1);
            keep_line(&mut out, &contents[start..i], line_no, word_split);
            // CRLF is one line end, not two.
            if ends && c == b'\r' && !eol_nulls && contents.get(i + 1) == Some(&b'\n') {
                i += 1;
            }
            start = i + 1;
        }
        i += 1;
    }
    if start < contents.len() {
        line_no = line_no.saturating_add(1);
        keep_line(&mut out, &contents[start..], line_no, word_split);
    }
    out
}

/// Adds one line (or word) of a merge file unless it is empty, a comment or too long.
fn keep_line<'a>(out: &mut Vec<(u32, &'a [u8])>, line: &'a [u8], line_no: u32, word_split: bool) {
    if line.len() > BIGPATHBUFLEN - 1 {
        tracing::warn!(len = line.len(), "discarding over-long filter");
        return;
    }
    let comment = !word_split && matches!(line.first(), Some(b';' | b'#'));
    if !line.is_empty() && !comment {
        out.push((if word_split { 0 } else { line_no }, line));
    }
}

/// C's isspace() in the C locale.
fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// The byte at `i`, or 0 past the end (the C terminator).
fn at(s: &[u8], i: usize) -> u8 {
    s.get(i).copied().unwrap_or(0)
}

/// Upstream's rule_strcmp(): the long rule name `word` at `s`, ended by whitespace, `_`,
/// the end, or a `,` (which starts modifiers). Returns where upstream leaves its pointer:
/// on the last letter of the name, or on the comma.
fn rule_strcmp(text: &[u8], s: usize, word: &[u8]) -> Option<usize> {
    if text.get(s..s + word.len()) != Some(word) {
        return None;
    }
    let next = at(text, s + word.len());
    if is_space(next) || next == b'_' || next == 0 {
        Some(s + word.len() - 1)
    } else if next == b',' {
        Some(s + word.len())
    } else {
        None
    }
}

/// Upstream: exclude.c, parse_rule_tok(). Returns the rule's bits and its pattern, and
/// moves `pos` past it; `None` when no rule is left.
fn parse_rule_tok<'a>(
    text: &'a [u8],
    pos: &mut usize,
    tbits: u32,
    xflags: XFlags,
) -> Result<Option<(u32, &'a [u8])>, FilterError> {
    let mut s = *pos;
    if tbits & WORD_SPLIT != 0 {
        while is_space(at(text, s)) {
            s += 1;
        }
        *pos = s;
    }
    if at(text, s) == 0 {
        return Ok(None);
    }
    let start = s;
    let whole = || show(text.get(start..).unwrap_or_default());
    let mut bits = tbits & FROM_CONTAINER;

    if tbits & NO_PREFIXES != 0 {
        if at(text, s) == b'!' && tbits & CVS_IGNORE != 0 {
            bits |= CLEAR_LIST; // Tentative, as upstream: only a lone "!" clears.
        }
    } else if xflags.old_prefixes {
        match (at(text, s), at(text, s + 1)) {
            (b'-', b' ') => {
                bits &= !INCLUDE;
                s += 2;
            }
            (b'+', b' ') => {
                bits |= INCLUDE;
                s += 2;
            }
            (b'!', _) => bits |= CLEAR_LIST,
            _ => {}
        }
    } else {
        let long = |word: &[u8], ch: u8| rule_strcmp(text, s, word).map(|n| (n, ch));
        let found = match at(text, s) {
            b'c' => long(b"clear", b'!'),
            b'd' => long(b"dir-merge", b':'),
            b'e' => long(b"exclude", b'-'),
            b'h' => long(b"hide", b'H'),
            b'i' => long(b"include", b'+'),
            b'm' => long(b"merge", b'.'),
            b'p' => long(b"protect", b'P'),
            b'r' => long(b"risk", b'R'),
            b's' => long(b"show", b'S'),
            c => Some((if at(text, s + 1) == b',' { s + 1 } else { s }, c)),
        };
        let Some((next, ch)) = found else {
            return Err(FilterError::UnknownRule { rule: whole() });
        };
        s = next;
        let mut side_given = false;
        match ch {
            b':' => bits |= PERDIR_MERGE | MERGE_FILE,
            b'.' => bits |= MERGE_FILE,
            b'+' => bits |= INCLUDE,
            b'-' => {}
            b'S' | b'H' => {
                bits |= SENDER_SIDE | if ch == b'S' { INCLUDE } else { 0 };
                side_given = true;
            }
            b'R' | b'P' => {
                bits |= RECEIVER_SIDE | if ch == b'R' { INCLUDE } else { 0 };
                side_given = true;
            }
            b'!' => bits |= CLEAR_LIST,
            _ => return Err(FilterError::UnknownRule { rule: whole() }),
        }
        if ch != b'!' {
            loop {
                s += 1;
                let c = at(text, s);
                if c == 0 || c == b' ' || c == b'_' {
                    break;
                }
                if tbits & WORD_SPLIT != 0 && is_space(c) {
                    s -= 1;
                    break;
                }
                bits =
                    modifier(bits, c, side_given).ok_or_else(|| FilterError::InvalidModifier {
                        detail: format!(" '{}' at position {}", char::from(c), s - start),
                        rule: whole(),
                    })?;
            }
        }
        if at(text, s) != 0 {
            s += 1;
        }
    }

    if tbits & SIDES != 0 {
        if bits & SIDES != 0 {
            return Err(FilterError::SidedRuleInSidedMerge { rule: whole() });
        }
        bits |= tbits & SIDES;
    }

    let rest = text.get(s..).unwrap_or_default();
    let len = if tbits & WORD_SPLIT != 0 {
        rest.iter().position(|&c| is_space(c)).unwrap_or(rest.len())
    } else {
        rest.len()
    };

    if bits & CLEAR_LIST != 0 {
        if tbits & NO_PREFIXES == 0 && !xflags.old_prefixes && len > 0 {
            return Err(FilterError::ClearWithText { rule: whole() });
        }
        if len > 1 {
            bits &= !CLEAR_LIST;
        }
    } else if len == 0 && bits & CVS_IGNORE == 0 {
        return Err(FilterError::UnexpectedEnd { rule: whole() });
    }

    if xflags.delete_excluded && bits & (SIDES | MERGE_FILE | PERDIR_MERGE) == 0 {
        bits |= SENDER_SIDE;
    }

    *pos = s + len;
    Ok(Some((bits, &rest[..len])))
}

/// One modifier letter after a rule's prefix; `None` if it is not allowed there.
fn modifier(bits: u32, c: u8, side_given: bool) -> Option<u32> {
    let merge = bits & MERGE_FILE != 0;
    let prefixed_merge = merge && bits & NO_PREFIXES == 0;
    Some(match c {
        b'-' if prefixed_merge => bits | NO_PREFIXES,
        b'+' if prefixed_merge => bits | NO_PREFIXES | INCLUDE,
        b'/' => bits | ABS_PATH,
        // Negation goes with a pattern, so it is no use as a merge file's default.
        b'!' if !merge => bits | NEGATE,
        b'C' if bits & NO_PREFIXES == 0 && !side_given => {
            bits | NO_PREFIXES | WORD_SPLIT | NO_INHERIT | CVS_IGNORE
        }
        b'e' if merge => bits | EXCLUDE_SELF,
        b'n' if merge => bits | NO_INHERIT,
        b'p' => bits | PERISHABLE,
        b'r' if !side_given => bits | RECEIVER_SIDE,
        b's' if !side_given => bits | SENDER_SIDE,
        b'w' if merge => bits | WORD_SPLIT,
        b'x' => bits | XATTR,
        _ => return None,
    })
}

/// The directory-independent part of upstream's add_rule(): drop a rule meant for the
/// other side, turn a trailing `/` into dir-only, mark absolute-path rules (prefixing
/// `/anchor_dir` to a leading slash), and give daemon dir excludes their `/***`.
fn add_rule(out: &mut Vec<FilterRule>, pat: &[u8], mut bits: u32, xflags: XFlags, dir: &[u8]) {
    let dir_flags = xflags.anchored2abs || xflags.abs_if_slash;
    let other_side = if xflags.am_sender {
        RECEIVER_SIDE
    } else {
        SENDER_SIDE
    };
    if dir_flags && bits & SIDES == other_side {
        return;
    }
    let mut pat = pat;
    if pat.len() > 1 && pat.last() == Some(&b'/') {
        pat = &pat[..pat.len() - 1];
        bits |= DIRECTORY;
    }
    let has_slash = pat.contains(&b'/');
    let leading = pat.first() == Some(&b'/');
    let mut pattern = Vec::with_capacity(pat.len() + dir.len() + 5);
    if bits & (ABS_PATH | MERGE_FILE) == 0
        && ((dir_flags && leading) || (xflags.abs_if_slash && has_slash))
    {
        bits |= ABS_PATH;
        if leading && !dir.is_empty() {
            pattern.push(b'/');
            pattern.extend_from_slice(dir);
        }
    }
    pattern.extend_from_slice(pat);
    if xflags.dir2wild3 && bits & DIRECTORY != 0 && bits & INCLUDE == 0 {
        bits &= !DIRECTORY;
        pattern.extend_from_slice(b"/***");
    }
    out.push(to_rule(bits, pattern));
}

fn template_bits(t: &RuleTemplate) -> u32 {
    let f = &t.flags;
    [
        (t.include, INCLUDE),
        (t.no_prefixes, NO_PREFIXES),
        (f.abs_path, ABS_PATH),
        (f.negate, NEGATE),
        (f.dir_only, DIRECTORY),
        (f.word_split, WORD_SPLIT),
        (f.no_inherit, NO_INHERIT),
        (f.cvs, CVS_IGNORE),
        (f.sender_side, SENDER_SIDE),
        (f.receiver_side, RECEIVER_SIDE),
        (f.perishable, PERISHABLE),
        (f.xattr, XATTR),
    ]
    .iter()
    .filter(|(on, _)| *on)
    .fold(0, |acc, (_, bit)| acc | bit)
}

fn to_rule(bits: u32, pattern: Vec<u8>) -> FilterRule {
    let on = |bit: u32| bits & bit != 0;
    let action = if on(MERGE_FILE) {
        let lines = match (on(NO_PREFIXES), on(INCLUDE)) {
            (false, _) => MergeLines::Prefixed,
            (true, true) => MergeLines::Includes,
            (true, false) => MergeLines::Excludes,
        };
        if on(PERDIR_MERGE) {
            Action::DirMerge(lines)
        } else {
            Action::Merge(lines)
        }
    } else {
        Action::from_sides(on(INCLUDE), on(SENDER_SIDE), on(RECEIVER_SIDE))
    };
    FilterRule {
        pattern,
        action,
        flags: RuleFlags {
            abs_path: on(ABS_PATH),
            negate: on(NEGATE),
            dir_only: on(DIRECTORY),
            word_split: on(WORD_SPLIT),
            no_inherit: on(NO_INHERIT),
            cvs: on(CVS_IGNORE),
            exclude_self: on(EXCLUDE_SELF),
            sender_side: on(SENDER_SIDE),
            receiver_side: on(RECEIVER_SIDE),
            perishable: on(PERISHABLE),
            xattr: on(XATTR),
        },
    }
}
