//! The filter list on the wire: client to server, right after the seed, as `int32 len`
//! and `len` bytes of rule text per rule, ended by `int32 0`.
//!
//! Upstream: exclude.c, send_filter_list(), send_rules(), get_rule_prefix(),
//! recv_filter_list().

use super::parse::{BIGPATHBUFLEN, DEFAULT_CVSIGNORE};
use super::{Action, FilterError, FilterRule, MergeLines, RuleTemplate, XFlags, parse_rules, show};
use crate::protocol::Decoded;
use crate::protocol::codec::{get_int, put_int};

/// The longest rule text accepted from the wire: upstream reads each into a
/// BIGPATHBUFLEN buffer and stops with "buffer overflow in recv_rules" when it does not
/// fit with its NUL.
pub const MAX_WIRE_RULE_LEN: usize = BIGPATHBUFLEN - 1;

/// The most rules accepted in one filter list. Upstream has no limit; this bounds what a
/// peer can make us allocate (with [`MAX_WIRE_LIST_BYTES`]).
pub const MAX_WIRE_RULES: usize = 1 << 18;

/// The most rule text accepted in one filter list, in bytes.
pub const MAX_WIRE_LIST_BYTES: usize = 32 << 20;

/// Upstream's MAX_RULE_PREFIX less the space: the most prefix characters a rule may have.
const MAX_PREFIX_CHARS: usize = 15;

/// One length-prefixed rule text at the start of `buf`, or `None` for the terminating
/// zero length. Upstream: exclude.c, recv_filter_list() (the read_int() and read_sbuf()).
fn next_rule_text(buf: &[u8]) -> Result<Decoded<Option<&[u8]>>, FilterError> {
    let len = match get_int(buf) {
        Decoded::Needed(n) => return Ok(Decoded::Needed(n)),
        Decoded::Done { value: 0, used } => return Ok(Decoded::Done { value: None, used }),
        Decoded::Done { value, .. } => value,
    };
    // Upstream reads the length into an unsigned int, so a negative one is huge.
    let len = len as u32 as usize;
    if len > MAX_WIRE_RULE_LEN {
        return Err(super::too_large("filter rule", len, MAX_WIRE_RULE_LEN));
    }
    match buf.get(4..4 + len) {
        Some(text) => Ok(Decoded::Done {
            value: Some(text),
            used: 4 + len,
        }),
        None => Ok(Decoded::Needed(4 + len - buf.len())),
    }
}

/// Counts one more rule of `used` bytes against [`MAX_WIRE_RULES`] and
/// [`MAX_WIRE_LIST_BYTES`].
fn count_rule(count: &mut usize, bytes: &mut usize, used: usize) -> Result<(), FilterError> {
    *count += 1;
    *bytes += used;
    if *count > MAX_WIRE_RULES {
        return Err(super::too_large(
            "filter rule count",
            *count,
            MAX_WIRE_RULES,
        ));
    }
    if *bytes > MAX_WIRE_LIST_BYTES {
        return Err(super::too_large("filter list", *bytes, MAX_WIRE_LIST_BYTES));
    }
    Ok(())
}

/// Reads a filter list one rule at a time, parsing each as it arrives as upstream's
/// recv_filter_list() does, so that a reader drops each rule's bytes as it goes instead of
/// handing the growing list to [`decode_filter_list`] again on every frame.
#[derive(Debug, Clone)]
pub struct FilterListDecoder {
    xflags: XFlags,
    rules: Vec<FilterRule>,
    count: usize,
    bytes: usize,
}

impl FilterListDecoder {
    /// A decoder for a list sent at `protocol`.
    pub fn new(protocol: i32) -> FilterListDecoder {
        FilterListDecoder {
            xflags: if protocol >= 29 {
                XFlags::NONE
            } else {
                XFlags::OLD_PREFIXES
            },
            rules: Vec::new(),
            count: 0,
            bytes: 0,
        }
    }

    /// Decodes the next rule: `Done(None)` when one was read (drop `used` bytes and call
    /// again), `Done(Some(rules))` at the terminating zero length. Errors as
    /// [`decode_filter_list`].
    pub fn decode(&mut self, buf: &[u8]) -> Result<Decoded<Option<Vec<FilterRule>>>, FilterError> {
        let (text, used) = match next_rule_text(buf)? {
            Decoded::Needed(n) => return Ok(Decoded::Needed(n)),
            Decoded::Done { value: None, used } => {
                return Ok(Decoded::Done {
                    value: Some(std::mem::take(&mut self.rules)),
                    used,
                });
            }
            Decoded::Done {
                value: Some(text),
                used,
            } => (text, used),
        };
        count_rule(&mut self.count, &mut self.bytes, used)?;
        for rule in parse_rules(text, &RuleTemplate::EXCLUDE, self.xflags)? {
            if rule.action == Action::Clear {
                self.rules.clear();
            } else {
                self.rules.push(rule);
            }
        }
        Ok(Decoded::Done { value: None, used })
    }
}

/// Decodes a whole filter list from `buf` (the data-stream bytes after the seed, already
/// taken out of their multiplex frames). Each rule is parsed as upstream's
/// recv_filter_list() does: with full prefixes from protocol 29, with the old optional
/// `+ `/`- ` prefixes before. A `!` in the list clears the rules before it; a `.` merge
/// comes back unread for the caller to resolve.
///
/// Returns [`Decoded::Needed`] until the terminating zero length is in `buf`; until then
/// the list is only walked (lengths and bounds), not parsed, so calling again as bytes
/// arrive stays cheap. A reader can also take it a rule at a time with
/// [`FilterListDecoder`]. Errors: a rule longer than [`MAX_WIRE_RULE_LEN`] (or
/// negative), more than [`MAX_WIRE_RULES`] rules or [`MAX_WIRE_LIST_BYTES`] bytes, or
/// rule text that does not parse.
pub fn decode_filter_list(
    buf: &[u8],
    protocol: i32,
) -> Result<Decoded<Vec<FilterRule>>, FilterError> {
    // The walk: lengths and bounds only.
    let (mut end, mut count, mut bytes) = (0, 0, 0);
    let bound_error = loop {
        let rest = buf.get(end..).unwrap_or_default();
        let used = match next_rule_text(rest) {
            Ok(Decoded::Needed(n)) => return Ok(Decoded::Needed(n)),
            Ok(Decoded::Done { value: None, .. }) => break None,
            Ok(Decoded::Done {
                value: Some(_),
                used,
            }) => used,
            Err(e) => break Some(e),
        };
        if let Err(e) = count_rule(&mut count, &mut bytes, used) {
            break Some(e);
        }
        end += used;
    };
    // On a bound error only the rules before it are parsed: as upstream reads and parses
    // rule after rule, an unparsable earlier rule is the error it reports.
    let mut dec = FilterListDecoder::new(protocol);
    let mut pos = 0;
    loop {
        if let Some(e) = bound_error.as_ref().filter(|_| pos >= end) {
            return Err(e.clone());
        }
        match dec.decode(buf.get(pos..).unwrap_or_default())? {
            Decoded::Done {
                value: Some(rules),
                used,
            } => {
                return Ok(Decoded::Done {
                    value: rules,
                    used: pos + used,
                });
            }
            Decoded::Done { value: None, used } => pos += used,
            // The walk above found the end.
            Decoded::Needed(n) => return Ok(Decoded::Needed(n)),
        }
    }
}

/// Whether the client sends a filter list after the seed: always to a sending server;
/// to a receiving one only for `--prune-empty-dirs` or a delete mode (before protocol
/// 29 not with `--delete-excluded`). Upstream: exclude.c, recv_filter_list()
/// (`receiver_wants_list`).
pub fn filter_list_expected(
    server_sends: bool,
    prune_empty_dirs: bool,
    delete: bool,
    delete_excluded: bool,
    protocol: i32,
) -> bool {
    server_sends || prune_empty_dirs || (delete && (!delete_excluded || protocol >= 29))
}

/// The rules a server adds after the received list when its arguments include `-C`:
/// the `:C` per-directory `.cvsignore` rule when it sends or before protocol 29, and
/// the `-C` list when it sends (a pushing client sends those itself from 29 on).
/// Upstream: exclude.c, the end of recv_filter_list().
pub fn server_cvs_rules(am_sender: bool, protocol: i32) -> Vec<FilterRule> {
    let mut texts: Vec<&[u8]> = Vec::new();
    if am_sender || protocol < 29 {
        texts.push(b":C");
    }
    if am_sender {
        texts.push(b"-C");
    }
    texts
        .into_iter()
        .flat_map(|t| parse_rules(t, &RuleTemplate::EXCLUDE, XFlags::NONE).unwrap_or_default())
        .collect()
}

/// Appends the filter list for the peer, ended by the zero length, as a client's
/// send_filter_list() does. `for_receiver` says the peer receives (we send files): rules
/// for the sender only then stay here, and a `-C` rule is sent as the default CVS
/// patterns (perishable from protocol 30); when the peer sends, receiver-only rules stay
/// here and `-C` goes as itself from protocol 29. Before protocol 29 only `+ ` can
/// prefix a rule and an exclude goes bare (or as `- ` when the pattern itself starts
/// with a prefix).
///
/// Errors: [`FilterError::TooModern`] when a rule needs modifiers the protocol lacks
/// (upstream "filter rules are too modern for remote rsync."), and
/// [`FilterError::UnexpandedMerge`] for a `.` merge rule, which must be read first.
pub fn encode_filter_list(
    rules: &[FilterRule],
    protocol: i32,
    for_receiver: bool,
    out: &mut Vec<u8>,
) -> Result<(), FilterError> {
    send_rules(rules, protocol, for_receiver, Some(out))?;
    put_int(out, 0);
    Ok(())
}

/// Upstream: exclude.c, send_rules(). With `out` as `None` the rules are only checked
/// (upstream's `f_out == -2`).
fn send_rules(
    rules: &[FilterRule],
    protocol: i32,
    am_sender: bool,
    mut out: Option<&mut Vec<u8>>,
) -> Result<(), FilterError> {
    for rule in rules {
        let (s, r) = (rule.flags.sender_side, rule.flags.receiver_side);
        // A rule for this side only is applied here and not sent.
        let stays_here = s != r && s == am_sender;
        if stays_here || rule.action == Action::Clear {
            continue;
        }
        if let Action::Merge(_) = rule.action {
            return Err(FilterError::UnexpandedMerge {
                rule: show(&rule.pattern),
            });
        }
        if rule.is_cvs_list() {
            let cvs = cvs_rules(rule, protocol);
            if am_sender || protocol < 29 {
                send_rules(&cvs, protocol, am_sender, out.as_deref_mut())?;
                continue;
            }
            send_rules(&cvs, protocol, am_sender, None)?;
        }
        let prefix = rule_prefix(rule, protocol, am_sender).ok_or(FilterError::TooModern)?;
        let Some(out) = out.as_deref_mut() else {
            continue;
        };
        let len = prefix.len() + rule.pattern.len() + usize::from(rule.flags.dir_only);
        if len == 0 {
            continue;
        }
        let len = i32::try_from(len)
            .map_err(|_| super::too_large("filter rule", len, MAX_WIRE_RULE_LEN))?;
        put_int(out, len);
        out.extend_from_slice(&prefix);
        out.extend_from_slice(&rule.pattern);
        if rule.flags.dir_only {
            out.push(b'/');
        }
    }
    Ok(())
}

/// The rules a `-C` rule stands for: the default CVS list, with the `-C` rule as their
/// template, perishable from protocol 30. (Upstream also reads `$HOME/.cvsignore` and
/// `$CVSIGNORE` on the side that parses the `-C`.)
///
/// Upstream: exclude.c, get_cvs_excludes().
pub fn cvs_rules(rule: &FilterRule, protocol: i32) -> Vec<FilterRule> {
    let mut template = RuleTemplate {
        include: rule.is_include(),
        no_prefixes: true,
        flags: rule.flags,
    };
    template.flags.perishable |= protocol >= 30;
    // The default list always parses; an error here would be a bug in the constant.
    parse_rules(DEFAULT_CVSIGNORE, &template, XFlags::NONE).unwrap_or_default()
}

/// The text before a rule's pattern on the wire, space included (empty for a bare
/// exclude before protocol 29), or `None` when the protocol cannot express the rule.
///
/// Upstream: exclude.c, get_rule_prefix() with `for_xfer` set.
pub fn rule_prefix(rule: &FilterRule, protocol: i32, am_sender: bool) -> Option<Vec<u8>> {
    let f = &rule.flags;
    let mut legal = if protocol < 29 { 1 } else { MAX_PREFIX_CHARS };
    let mut op = Vec::with_capacity(MAX_PREFIX_CHARS + 1);
    let p = &rule.pattern;
    if let Action::DirMerge(_) = rule.action {
        if legal == 1 {
            return None;
        }
        op.push(b':');
    } else if rule.is_include() {
        op.push(b'+');
    } else if legal != 1 || (matches!(p.first(), Some(b'-' | b'+')) && p.get(1) == Some(&b' ')) {
        op.push(b'-');
    } else {
        legal = 0;
    }
    if f.abs_path {
        op.push(b'/');
    }
    if f.negate {
        op.push(b'!');
    }
    if f.cvs {
        op.push(b'C');
    } else {
        if f.no_inherit {
            op.push(b'n');
        }
        if f.word_split {
            op.push(b'w');
        }
        match rule.action {
            Action::Merge(MergeLines::Includes) | Action::DirMerge(MergeLines::Includes) => {
                op.push(b'+')
            }
            Action::Merge(MergeLines::Excludes) | Action::DirMerge(MergeLines::Excludes) => {
                op.push(b'-')
            }
            _ => {}
        }
    }
    if f.exclude_self {
        op.push(b'e');
    }
    if f.xattr {
        op.push(b'x');
    }
    if f.sender_side && protocol >= 29 {
        op.push(b's');
    }
    if f.receiver_side && protocol >= 29 {
        op.push(b'r');
    }
    if f.perishable {
        if protocol >= 30 {
            op.push(b'p');
        } else if am_sender {
            return None;
        }
    }
    if op.len() > legal {
        return None;
    }
    if legal > 0 {
        op.push(b' ');
    }
    Some(op)
}
