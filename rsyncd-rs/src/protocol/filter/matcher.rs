//! One include/exclude rule against one name.
//!
//! Upstream: exclude.c, the pattern analysis at the end of add_rule() (FILTRULE_WILD,
//! WILD2, WILD2_PREFIX, WILD3_SUFFIX, slash_cnt) and rule_matches().

use super::FilterRule;
use crate::wildmatch::{Anchor, litmatch_array, wildmatch_array};

/// What is being matched (upstream NAME_IS_FILE, NAME_IS_DIR, NAME_IS_XATTR).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameKind {
    /// Anything that is not a directory: file, symlink, device, special.
    File,
    Dir,
    /// An extended attribute's name (matched only by `x` rules).
    Xattr,
}

impl NameKind {
    /// `Dir` or `File`.
    pub fn of(is_dir: bool) -> NameKind {
        if is_dir {
            NameKind::Dir
        } else {
            NameKind::File
        }
    }
}

/// An include/exclude rule ready to match: its pattern analysed once, as upstream's
/// add_rule() does when it stores a rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompiledRule {
    pattern: Vec<u8>,
    include: bool,
    negate: bool,
    dir_only: bool,
    abs_path: bool,
    perishable: bool,
    xattr: bool,
    sender_side: bool,
    receiver_side: bool,
    /// `*`, `?` or `[` occur: match with wildmatch, else compare literally.
    wild: bool,
    /// `**` occurs: the pattern can match across `/`.
    wild2: bool,
    /// The pattern starts with `**`.
    wild2_prefix: bool,
    /// The pattern ends with `***`: it also matches the directory itself.
    wild3_suffix: bool,
    /// Slashes in the pattern (a leading one included, a trailing one not).
    slash_cnt: usize,
}

impl CompiledRule {
    /// Analyses an include/exclude rule's pattern. (Merge rules and `-C` are handled by
    /// the list that holds them; compiling one gives a rule that matches by its pattern.)
    pub fn new(rule: &FilterRule) -> CompiledRule {
        let p = &rule.pattern;
        let wild = p.iter().any(|&c| matches!(c, b'*' | b'[' | b'?'));
        let wild2 = wild && p.windows(2).any(|w| w == b"**");
        CompiledRule {
            pattern: p.clone(),
            include: rule.is_include(),
            negate: rule.flags.negate,
            dir_only: rule.flags.dir_only,
            abs_path: rule.flags.abs_path,
            perishable: rule.flags.perishable,
            xattr: rule.flags.xattr,
            sender_side: rule.flags.sender_side,
            receiver_side: rule.flags.receiver_side,
            wild,
            wild2,
            wild2_prefix: wild2 && p.starts_with(b"**"),
            wild3_suffix: wild2 && p.ends_with(b"***"),
            slash_cnt: p.iter().filter(|&&c| c == b'/').count(),
        }
    }

    /// Whether a match includes rather than excludes.
    pub fn is_include(&self) -> bool {
        self.include
    }

    /// The `p` modifier: skipped inside a directory being deleted.
    /// Whether it matches xattr names (the `x` modifier) rather than file names.
    pub fn is_xattr(&self) -> bool {
        self.xattr
    }

    pub fn is_perishable(&self) -> bool {
        self.perishable
    }

    /// The `s` and `r` flags, in that order.
    pub fn sides(&self) -> (bool, bool) {
        (self.sender_side, self.receiver_side)
    }

    /// The stored pattern (with any directory prefix or `/***` the parser added).
    pub fn pattern(&self) -> &[u8] {
        &self.pattern
    }

    /// Whether the rule takes effect for `fname` (a path relative to the transfer root,
    /// or to the filesystem root if it starts with `/`). `abs_prefix` is the current
    /// directory's path from the module root (empty at the module root), which rules
    /// with the `/` modifier match in front of the name.
    ///
    /// Patterns without a slash or `**` match the last component only; with a slash
    /// but no `**`, the last slash-count-plus-one components; a leading `/` anchors at
    /// the start; a `**` that does not start the pattern may match after any slash.
    /// Dir-only rules never match a non-directory, which a negated rule counts as a
    /// match.
    ///
    /// Upstream: exclude.c, rule_matches().
    pub fn matches(&self, fname: &[u8], kind: NameKind, abs_prefix: &[u8]) -> bool {
        let ret_match = !self.negate;
        let rooted = fname.first() == Some(&b'/');
        let mut name = if rooted { &fname[1..] } else { fname };
        if name.is_empty() || (kind == NameKind::Xattr) != self.xattr {
            return false;
        }

        // At most four pieces, kept on the stack: this runs for every rule and name.
        let mut pieces: [&[u8]; 4] = [b""; 4];
        let mut n = 0;
        if self.slash_cnt == 0 && !self.wild2 {
            if let Some(i) = name.iter().rposition(|&c| c == b'/') {
                name = &name[i + 1..];
            }
        } else if self.abs_path && !rooted && !abs_prefix.is_empty() {
            pieces[0] = abs_prefix;
            pieces[1] = b"/";
            n = 2;
        } else if self.wild2_prefix && !rooted {
            // Lets "**/" match at the start of the name.
            pieces[0] = b"/";
            n = 1;
        }
        pieces[n] = name;
        n += 1;
        if kind == NameKind::Dir {
            // Lets a trailing "/***" match the directory itself.
            if self.wild3_suffix {
                pieces[n] = b"/";
                n += 1;
            }
        } else if self.dir_only {
            return !ret_match;
        }
        let strings = &pieces[..n];

        let (pattern, anchored) = match self.pattern.strip_prefix(b"/") {
            Some(rest) => (rest, true),
            None => (&self.pattern[..], false),
        };
        let anchor = if !anchored && self.slash_cnt > 0 && !self.wild2 {
            Anchor::TrailingComponents(self.slash_cnt + 1)
        } else if !anchored && !self.wild2_prefix && self.wild2 {
            Anchor::AnyComponent
        } else {
            Anchor::Whole
        };

        let hit = if self.wild {
            wildmatch_array(pattern, strings, anchor)
        } else if strings.len() > 1 {
            litmatch_array(pattern, strings, anchor)
        } else if anchored {
            name == pattern
        } else {
            // The literal fast path: the name ends with the pattern at a component
            // boundary.
            name.ends_with(pattern)
                && (name.len() == pattern.len() || name[name.len() - pattern.len() - 1] == b'/')
        };
        if hit { ret_match } else { !ret_match }
    }
}
