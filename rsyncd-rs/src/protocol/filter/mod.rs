//! Filter rules (upstream: exclude.c): their text syntax, the filter list on the wire, and
//! the match of one rule against one name.
//!
//! Everything here is a pure function of bytes. Reading merge files, the per-directory
//! merge state and the lists a session keeps live in `engine::filter`.
//!
//! A rule is kept the way upstream keeps it after `parse_rule_tok()` and `add_rule()`: an
//! include/exclude with side flags, a trailing `/` turned into [`RuleFlags::dir_only`], and
//! the daemon's transformations (`XFLG_ABS_IF_SLASH`, `XFLG_DIR2WILD3`) already applied.
//! The side-specific forms are spelt out in [`Action`] (`P` is an exclude for the receiver
//! only, so `P foo` and `-r foo` parse to the same rule, as upstream).

mod matcher;
mod merge_name;
mod parse;
mod wire;

#[cfg(test)]
mod matcher_tests;
#[cfg(test)]
mod parse_tests;
#[cfg(test)]
mod wire_tests;

pub use matcher::{CompiledRule, NameKind};
pub use merge_name::{
    clean_module_path, dirs_between, is_ancestor_or_self, join_path, resolve_merge_name,
};
pub use parse::{
    DEFAULT_CVSIGNORE, parse_daemon_param, parse_rule_file, parse_rules, parse_rules_in_dir,
    split_rule_file,
};
pub use wire::{
    FilterListDecoder, MAX_WIRE_LIST_BYTES, MAX_WIRE_RULE_LEN, MAX_WIRE_RULES, cvs_rules,
    decode_filter_list, encode_filter_list, filter_list_expected, rule_prefix, server_cvs_rules,
};

/// Upstream's MAXPATHLEN on Linux: a pattern this long or longer is discarded.
pub use super::flist::MAXPATHLEN;

/// How a merge file's lines are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MergeLines {
    /// Each line is a full rule with its own prefix (`merge FILE`).
    Prefixed,
    /// Each line is an include pattern (the `+` modifier).
    Includes,
    /// Each line is an exclude pattern (the `-` modifier, or `C`).
    Excludes,
}

/// What a rule does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// `+`: include for both sides.
    Include,
    /// `-`: exclude for both sides.
    Exclude,
    /// `P` (= `-r`): exclude for the receiver only, protecting from deletion.
    Protect,
    /// `R` (= `+r`): include for the receiver only, putting at risk of deletion.
    Risk,
    /// `H` (= `-s`): exclude for the sender only, hiding from the file list.
    Hide,
    /// `S` (= `+s`): include for the sender only.
    Show,
    /// `!`: clears the current list. Never stored in a list, never on the wire.
    Clear,
    /// `.`: a file merged once, where the rule stands.
    Merge(MergeLines),
    /// `:`: a file looked for in every directory of the walk.
    DirMerge(MergeLines),
}

impl Action {
    /// The include/exclude action for an include bit and the two side flags, as upstream
    /// stores it (both sides or neither is a plain include/exclude).
    pub fn from_sides(include: bool, sender_side: bool, receiver_side: bool) -> Action {
        match (include, sender_side, receiver_side) {
            (true, true, false) => Action::Show,
            (false, true, false) => Action::Hide,
            (true, false, true) => Action::Risk,
            (false, false, true) => Action::Protect,
            (true, _, _) => Action::Include,
            (false, _, _) => Action::Exclude,
        }
    }

    /// Upstream's FILTRULE_INCLUDE: a match includes (or, for a merge, lines include).
    pub fn is_include(self) -> bool {
        matches!(
            self,
            Action::Include
                | Action::Risk
                | Action::Show
                | Action::Merge(MergeLines::Includes)
                | Action::DirMerge(MergeLines::Includes)
        )
    }

    /// Whether this is a merge or dir-merge rule (upstream FILTRULE_MERGE_FILE).
    pub fn is_merge(self) -> bool {
        matches!(self, Action::Merge(_) | Action::DirMerge(_))
    }
}

/// A rule's modifiers (upstream's FILTRULE_* bits that the syntax can set).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct RuleFlags {
    /// The `/` modifier (FILTRULE_ABS_PATH): match against the path from the module root
    /// (the absolute path outside a daemon), not from the transfer root. The daemon's own
    /// rules get it when they contain a slash; per-directory rules when they start with one.
    pub abs_path: bool,
    /// `!`: the rule takes effect when the pattern does not match.
    pub negate: bool,
    /// A trailing `/` on the pattern: only directories match (FILTRULE_DIRECTORY).
    pub dir_only: bool,
    /// `w`: a merge file's rules are split on whitespace.
    pub word_split: bool,
    /// `n`: a per-directory merge file's rules are not inherited by subdirectories.
    pub no_inherit: bool,
    /// `C`: CVS-ignore style (on `-`/`+`: consult the global CVS list; on a merge: read
    /// as `.cvsignore`).
    pub cvs: bool,
    /// `e`: exclude the merge file itself (consumed by the parser, which adds the rule).
    pub exclude_self: bool,
    /// `s`: applies to the sending side.
    pub sender_side: bool,
    /// `r`: applies to the receiving side.
    pub receiver_side: bool,
    /// `p`: ignored inside a directory that is being deleted.
    pub perishable: bool,
    /// `x`: matches xattr names instead of file names.
    pub xattr: bool,
}

/// One filter rule.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FilterRule {
    /// The pattern (or merge-file name) without its trailing `/`, as bytes.
    pub pattern: Vec<u8>,
    pub action: Action,
    pub flags: RuleFlags,
}

impl FilterRule {
    /// A rule with no modifiers.
    pub fn new(action: Action, pattern: &[u8]) -> FilterRule {
        let mut rule = FilterRule {
            pattern: pattern.to_vec(),
            action,
            flags: RuleFlags::default(),
        };
        rule.normalize_sides();
        rule
    }

    /// Keeps [`Action`] and the side flags telling the same story: `P` sets
    /// `receiver_side`, and an exclude with only `receiver_side` is `P`.
    pub(crate) fn normalize_sides(&mut self) {
        match self.action {
            Action::Protect | Action::Risk => self.flags.receiver_side = true,
            Action::Hide | Action::Show => self.flags.sender_side = true,
            _ => {}
        }
        if !self.action.is_merge() && self.action != Action::Clear {
            self.action = Action::from_sides(
                self.action.is_include(),
                self.flags.sender_side,
                self.flags.receiver_side,
            );
        }
    }

    /// Whether a match includes (FILTRULE_INCLUDE).
    pub fn is_include(&self) -> bool {
        self.action.is_include()
    }

    /// The `-C` rule: consult the global CVS list where it stands.
    pub fn is_cvs_list(&self) -> bool {
        self.flags.cvs && !self.action.is_merge()
    }
}

/// The defaults a rule inherits from where it is read (upstream's `rule_template()` or
/// the merge rule a file was named by).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RuleTemplate {
    /// Rules without a prefix (or with the old-style optional prefix absent) include.
    pub include: bool,
    /// Lines are patterns only, no prefixes (a merge rule's `+`/`-`/`C`).
    pub no_prefixes: bool,
    /// Modifiers: `word_split`, `cvs` and the sides affect parsing; `abs_path`,
    /// `dir_only`, `negate` and `perishable` are inherited by each rule
    /// (upstream FILTRULES_FROM_CONTAINER).
    pub flags: RuleFlags,
}

impl RuleTemplate {
    /// `rule_template(0)`: `--filter`, `--exclude`, the wire.
    pub const EXCLUDE: RuleTemplate = RuleTemplate {
        include: false,
        no_prefixes: false,
        flags: RuleFlags {
            abs_path: false,
            negate: false,
            dir_only: false,
            word_split: false,
            no_inherit: false,
            cvs: false,
            exclude_self: false,
            sender_side: false,
            receiver_side: false,
            perishable: false,
            xattr: false,
        },
    };

    /// `rule_template(FILTRULE_INCLUDE)`: `--include`, `include from`.
    pub const INCLUDE: RuleTemplate = RuleTemplate {
        include: true,
        ..RuleTemplate::EXCLUDE
    };

    /// The same template with word splitting (the daemon's parameters).
    pub fn word_split(mut self) -> RuleTemplate {
        self.flags.word_split = true;
        self
    }

    /// The template a merge rule gives the rules of its file.
    pub fn from_merge_rule(rule: &FilterRule) -> RuleTemplate {
        let lines = match rule.action {
            Action::Merge(l) | Action::DirMerge(l) => l,
            _ => MergeLines::Prefixed,
        };
        RuleTemplate {
            include: lines == MergeLines::Includes,
            no_prefixes: lines != MergeLines::Prefixed,
            flags: rule.flags,
        }
    }
}

/// Upstream's XFLG_* parse flags, plus the two globals `add_rule()` and
/// `parse_rule_tok()` consult.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct XFlags {
    /// XFLG_OLD_PREFIXES: only `+ `/`- ` prefixes, both optional (`--include`,
    /// `--exclude`, the wire before protocol 29).
    pub old_prefixes: bool,
    /// XFLG_ANCHORED2ABS: a leading `/` anchors at the directory the rules come from
    /// (per-directory merge files).
    pub anchored2abs: bool,
    /// XFLG_ABS_IF_SLASH: any `/` makes the rule match the module-relative path (the
    /// daemon's parameters).
    pub abs_if_slash: bool,
    /// XFLG_DIR2WILD3: `dir/` excludes become `dir/***` (the daemon's parameters).
    pub dir2wild3: bool,
    /// `--delete-excluded` was given: plain rules become sender-side.
    pub delete_excluded: bool,
    /// This process is the sender. With `anchored2abs` or `abs_if_slash`, rules for the
    /// other side only are dropped (upstream `add_rule()`).
    pub am_sender: bool,
}

impl XFlags {
    /// No flags (`--filter`, the wire from protocol 29 on).
    pub const NONE: XFlags = XFlags {
        old_prefixes: false,
        anchored2abs: false,
        abs_if_slash: false,
        dir2wild3: false,
        delete_excluded: false,
        am_sender: false,
    };

    /// XFLG_OLD_PREFIXES alone (`--include`, `--exclude`, the wire before 29).
    pub const OLD_PREFIXES: XFlags = XFlags {
        old_prefixes: true,
        ..XFlags::NONE
    };
}

/// Which daemon parameter rule text comes from (upstream clientserver.c, rsync_module()).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DaemonParam {
    /// `filter`: full rules, word-split.
    Filter,
    /// `include`: patterns (optional `+ `/`- `), word-split.
    Include,
    /// `exclude`: patterns (optional `+ `/`- `), word-split.
    Exclude,
    /// A line of `include from`.
    IncludeFrom,
    /// A line of `exclude from`.
    ExcludeFrom,
}

/// A problem with rule text (upstream's messages, which all end the session with
/// RERR_SYNTAX, exit code 1), or with the filter list on the wire.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    #[error("Unknown filter rule: {rule}")]
    UnknownRule { rule: String },
    /// `detail` is ` 'c' at position N`, or empty when the text came from a file.
    #[error("invalid modifier{detail} in filter rule: {rule}")]
    InvalidModifier { detail: String, rule: String },
    #[error("specified-side merge file contains specified-side filter: {rule}")]
    SidedRuleInSidedMerge { rule: String },
    #[error("'!' rule has trailing characters: {rule}")]
    ClearWithText { rule: String },
    #[error("unexpected end of filter rule: {rule}")]
    UnexpectedEnd { rule: String },
    /// A rule cannot be expressed at the peer's protocol (RERR_PROTOCOL).
    #[error("filter rules are too modern for remote rsync.")]
    TooModern,
    /// A `.` merge rule reached the encoder; merges are read where they are given.
    #[error("merge rule must be expanded before it is sent: {rule}")]
    UnexpandedMerge { rule: String },
    /// The filter list on the wire is malformed or too large (RERR_PROTOCOL, or
    /// upstream's "buffer overflow in recv_rules").
    #[error(transparent)]
    Wire(#[from] super::WireError),
    /// Merge files nested deeper than upstream's MAX_MERGE_DEPTH (32).
    #[error("merge-file include depth limit (32) exceeded at {name}")]
    MergeDepth { name: String },
    /// A `.` merge file (or `include from`/`exclude from`) could not be read
    /// (RERR_FILEIO).
    #[error("failed to open {kind}clude file {name}")]
    MergeFileMissing { kind: &'static str, name: String },
    /// A merge-file name does not fit (upstream "merge-file name overflows").
    #[error("merge-file name overflows: {name}")]
    MergeNameTooLong { name: String },
    /// More per-directory merge files are active at once than this implementation keeps.
    #[error("too many per-directory merge files ({count})")]
    TooManyMergeFiles { count: usize },
}

impl FilterError {
    /// The same error with the rule text replaced by where it came from, as upstream's
    /// `rule_text()` does for text read from a file: the peer chooses which file is
    /// merged, so a file's contents must never come back in a message.
    pub fn from_file(self, location: &str) -> FilterError {
        let hidden = format!("<rule from {location}>");
        match self {
            FilterError::UnknownRule { .. } => FilterError::UnknownRule { rule: hidden },
            FilterError::InvalidModifier { .. } => FilterError::InvalidModifier {
                detail: String::new(),
                rule: hidden,
            },
            FilterError::SidedRuleInSidedMerge { .. } => {
                FilterError::SidedRuleInSidedMerge { rule: hidden }
            }
            FilterError::ClearWithText { .. } => FilterError::ClearWithText { rule: hidden },
            FilterError::UnexpectedEnd { .. } => FilterError::UnexpectedEnd { rule: hidden },
            FilterError::MergeDepth { .. } => FilterError::MergeDepth { name: hidden },
            FilterError::MergeFileMissing { kind, .. } => {
                FilterError::MergeFileMissing { kind, name: hidden }
            }
            FilterError::MergeNameTooLong { .. } => FilterError::MergeNameTooLong { name: hidden },
            other => other,
        }
    }

    /// Whether upstream ends the session with RERR_SYNTAX (exit code 1) for this error;
    /// the others are protocol (2) or file (11) errors.
    pub fn is_syntax(&self) -> bool {
        matches!(
            self,
            FilterError::UnknownRule { .. }
                | FilterError::InvalidModifier { .. }
                | FilterError::SidedRuleInSidedMerge { .. }
                | FilterError::ClearWithText { .. }
                | FilterError::UnexpectedEnd { .. }
        )
    }
}

use super::WireError;

/// Rule text for an error message: lossy UTF-8 of the bytes.
pub(crate) fn show(text: &[u8]) -> String {
    String::from_utf8_lossy(text).into_owned()
}

/// The helper the wire decoder needs: a WireError when a bound is exceeded.
pub(crate) fn too_large(what: &'static str, got: usize, limit: usize) -> FilterError {
    FilterError::Wire(WireError::TooLarge {
        what,
        got: got as u64,
        limit: limit as u64,
    })
}
