//! A session's filter lists: the daemon's own chain, the transfer's chain (from the wire
//! or our options), the global CVS list, and the per-directory merge files read while
//! walking the tree.
//!
//! Upstream: exclude.c (daemon_filter_list, filter_list, cvs_filter_list, the
//! mergelist machinery of push_local_filters()/pop_local_filters(), check_filter(),
//! name_is_excluded()) and the receiver-side uses in generator.c and delete.c.
//!
//! Paths: names checked are relative to the transfer root (as upstream's names are
//! relative to `curr_dir`); merge files are read through a callback that gets a path
//! from the module root (no leading slash), so the caller can confine it to the module.

use std::sync::Arc;

use super::exit::ExitCode;
use crate::protocol::WireError;
use crate::protocol::filter::{
    Action, CompiledRule, FilterError, FilterRule, MAXPATHLEN, RuleTemplate, XFlags,
    clean_module_path, cvs_rules, dirs_between, join_path, parse_rule_file, resolve_merge_name,
};

pub use crate::protocol::filter::NameKind;

/// Upstream MAX_MERGE_DEPTH: `.` merge files nested deeper are refused.
pub const MAX_MERGE_DEPTH: usize = 32;

/// The most per-directory merge files active at once (upstream has no limit; each one
/// costs a read per directory).
pub const MAX_MERGE_LISTS: usize = 256;

/// Reads a merge file; `None` when it does not exist or cannot be read.
pub type ReadFile<'a> = &'a mut dyn FnMut(&[u8]) -> Option<Vec<u8>>;

/// What the first matching rule said (upstream check_filter() returning 1 or -1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Included,
    Excluded,
}

/// Where the transfer rules come from, which decides whether their side flags matter
/// here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleOrigin {
    /// Received on the wire: the peer sent only rules for us, so all apply (upstream
    /// leaves `elide` at 0 on a server).
    Peer,
    /// Parsed from our own options: rules for the other side only are skipped here,
    /// as upstream's send_rules() marks them.
    Local,
}

/// What a set needs to know about the session.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FilterContext {
    /// The negotiated protocol (CVS patterns are perishable from 30).
    pub protocol: i32,
    /// This side sends files (a pull from the daemon).
    pub am_sender: bool,
    /// The transfer root's path from the module root, without slashes at either end
    /// (empty when the transfer is rooted at the module root). Rules with the `/`
    /// modifier, the daemon's rules with a slash, and anchored per-directory rules match
    /// against this plus the name.
    pub root: Vec<u8>,
    /// `--delete-excluded`: plain rules in merge files become sender-side.
    pub delete_excluded: bool,
    /// `--from0`: merge files are NUL-separated.
    pub eol_nulls: bool,
}

/// One element of a list.
#[derive(Debug)]
enum Entry {
    Rule {
        rule: CompiledRule,
        elided: bool,
    },
    /// `-C`: the global CVS list goes here.
    Cvs {
        perishable: bool,
    },
    /// `:`: the rules of one per-directory merge file go here.
    DirMerge {
        list: usize,
        perishable: bool,
    },
}

/// One per-directory merge file and the rules read for the current directory.
#[derive(Debug)]
struct MergeList {
    /// The dir-merge rule; its pattern is the file name (its last component once set up).
    rule: FilterRule,
    /// Not yet looked at (upstream FILTRULE_FINISH_SETUP).
    needs_setup: bool,
    /// Still defined (upstream clears `mergelist_parents[i]` when its rule is freed).
    active: bool,
    /// The rules in force, innermost directory first; shared with saved states.
    chain: Vec<Arc<[Entry]>>,
}

/// The state [`FilterSet::enter_dir`] replaced, to be given back to
/// [`FilterSet::leave_dir`].
#[derive(Debug)]
pub struct DirToken {
    saved: Vec<Vec<Arc<[Entry]>>>,
    count: usize,
}

/// Where the rules being added come from, for name resolution and elision.
#[derive(Debug, Clone, Copy)]
struct Load<'a> {
    origin: RuleOrigin,
    /// `.` merges name operator paths, passed to the reader as written.
    config: bool,
    /// The module path plain merge names are relative to (upstream's working directory).
    cwd: &'a [u8],
    /// The module path of the directory being read (upstream's `dirbuf`).
    dir: &'a [u8],
    /// Reading a parent directory before the walk (upstream's parent_dirscan).
    parent_scan: bool,
    depth: usize,
}

/// The filter state of one session.
#[derive(Debug)]
pub struct FilterSet {
    ctx: FilterContext,
    daemon: Vec<Entry>,
    transfer: Vec<Entry>,
    cvs: Option<Vec<Entry>>,
    merges: Vec<MergeList>,
    has_dir_merge: bool,
    dirs: Vec<(usize, DirToken)>,
}

impl FilterSet {
    /// An empty set: nothing is excluded.
    pub fn new(ctx: FilterContext) -> FilterSet {
        FilterSet {
            ctx,
            daemon: Vec::new(),
            transfer: Vec::new(),
            cvs: None,
            merges: Vec::new(),
            has_dir_merge: false,
            dirs: Vec::new(),
        }
    }

    /// Appends the daemon's module rules (from `parse_daemon_param`, in upstream's
    /// order: `filter`, `include from`, `include`, `exclude from`, `exclude`). A `.`
    /// merge among them is read with `read` given the name as configured (the operator's
    /// path). Upstream: clientserver.c, rsync_module().
    pub fn add_daemon_rules(
        &mut self,
        rules: Vec<FilterRule>,
        read: ReadFile<'_>,
    ) -> Result<(), FilterError> {
        let mut list = std::mem::take(&mut self.daemon);
        let load = Load {
            origin: RuleOrigin::Peer,
            config: true,
            cwd: b"",
            dir: b"",
            parent_scan: false,
            depth: 0,
        };
        let result = self.add_entries(&mut list, rules, load, read).map(|_| ());
        self.daemon = list;
        result
    }

    /// Appends transfer rules: those decoded from the wire (`RuleOrigin::Peer`), plus
    /// any the server adds itself (`server_cvs_rules` for `-C`). A `.` merge is read
    /// now with `read` given its module path, relative to the module root as upstream's
    /// recv_filter_list() runs there; a missing one is an error.
    pub fn add_rules(
        &mut self,
        rules: Vec<FilterRule>,
        origin: RuleOrigin,
        read: ReadFile<'_>,
    ) -> Result<(), FilterError> {
        let mut list = std::mem::take(&mut self.transfer);
        let load = Load {
            origin,
            config: false,
            cwd: b"",
            dir: b"",
            parent_scan: false,
            depth: 0,
        };
        let result = self.add_entries(&mut list, rules, load, read).map(|_| ());
        self.transfer = list;
        result
    }

    /// Whether any dir-merge rule was seen (upstream sets `trust_sender_filter`).
    pub fn has_dir_merge(&self) -> bool {
        self.has_dir_merge
    }

    /// The transfer chain's verdict on `name` (relative to the transfer root, never
    /// `.`): the first matching rule decides; `None` if none matched.
    /// Upstream: exclude.c, check_filter(&filter_list, ...).
    pub fn check(&self, name: &[u8], is_dir: bool) -> Option<Verdict> {
        self.check_list(&self.transfer, name, NameKind::of(is_dir), false)
    }

    /// The daemon chain's verdict on `name`. Upstream: check_filter(&daemon_filter_list).
    pub fn check_daemon(&self, name: &[u8], is_dir: bool) -> Option<Verdict> {
        self.check_list(&self.daemon, name, NameKind::of(is_dir), false)
    }

    /// Whether the daemon refuses `name` from a pushing client: the generator then logs
    /// `ERROR: daemon refused to receive file "NAME"` (or `directory`, skipping its
    /// contents) and the session ends with code 23. Not asked for `.`, as upstream.
    /// Upstream: generator.c, recv_generator().
    pub fn daemon_refuses(&self, name: &[u8], is_dir: bool) -> bool {
        name != b"." && self.check_daemon(name, is_dir) == Some(Verdict::Excluded)
    }

    /// Whether `name` is excluded by either chain (upstream name_is_excluded() with
    /// ALL_FILTERS): the sender leaves it out of the file list; the receiver leaves it
    /// out of the directory listing it deletes from, so it is protected from `--delete`.
    pub fn is_excluded(&self, name: &[u8], is_dir: bool) -> bool {
        self.excluded(name, NameKind::of(is_dir), false)
    }

    /// Whether an existing destination entry must survive `--delete` although the
    /// sender did not list it: excluded by the daemon chain, or by an exclude/protect
    /// rule of the transfer chain that an include/risk rule did not override first.
    /// Upstream: generator.c delete_in_dir() → flist.c get_dirlist() → is_excluded().
    pub fn excluded_for_delete(&self, name: &[u8], is_dir: bool) -> bool {
        self.excluded(name, NameKind::of(is_dir), false)
    }

    /// The same inside a directory that is itself being deleted: perishable (`p`)
    /// rules no longer protect. An entry still excluded keeps the directory ("cannot
    /// delete non-empty directory"). Upstream: delete.c, delete_item() setting
    /// `ignore_perishable` around delete_dir_contents().
    pub fn excluded_in_deleted_dir(&self, name: &[u8], is_dir: bool) -> bool {
        self.excluded(name, NameKind::of(is_dir), true)
    }

    /// Whether any rule matches xattr names (upstream's `saw_xattr_filter`): they then
    /// replace the namespace rules of `-X`.
    pub fn has_xattr_rules(&self) -> bool {
        self.daemon
            .iter()
            .chain(&self.transfer)
            .any(|e| matches!(e, Entry::Rule { rule, .. } if rule.is_xattr()))
    }

    /// Whether an xattr name is excluded (only `x` rules match it).
    pub fn xattr_excluded(&self, name: &[u8]) -> bool {
        self.excluded(name, NameKind::Xattr, false)
    }

    fn excluded(&self, name: &[u8], kind: NameKind, ignore_perishable: bool) -> bool {
        let ex = Some(Verdict::Excluded);
        self.check_list(&self.daemon, name, kind, ignore_perishable) == ex
            || self.check_list(&self.transfer, name, kind, ignore_perishable) == ex
    }

    /// Upstream: exclude.c, check_filter() (perishable rules skipped when asked).
    fn check_list(
        &self,
        list: &[Entry],
        name: &[u8],
        kind: NameKind,
        ignore_perishable: bool,
    ) -> Option<Verdict> {
        for entry in list {
            let found = match entry {
                Entry::Rule { rule, elided } => {
                    if *elided || (ignore_perishable && rule.is_perishable()) {
                        continue;
                    }
                    if !rule.matches(name, kind, &self.ctx.root) {
                        continue;
                    }
                    Some(if rule.is_include() {
                        Verdict::Included
                    } else {
                        Verdict::Excluded
                    })
                }
                Entry::Cvs { perishable } => {
                    if ignore_perishable && *perishable {
                        continue;
                    }
                    let cvs = self.cvs.as_deref().unwrap_or_default();
                    self.check_list(cvs, name, kind, ignore_perishable)
                }
                Entry::DirMerge { list, perishable } => {
                    if ignore_perishable && *perishable {
                        continue;
                    }
                    let chain = self
                        .merges
                        .get(*list)
                        .map(|m| &m.chain[..])
                        .unwrap_or_default();
                    chain
                        .iter()
                        .find_map(|seg| self.check_list(seg, name, kind, ignore_perishable))
                }
            };
            if found.is_some() {
                return found;
            }
        }
        None
    }

    /// Enters directory `dir` (relative to the transfer root; `""` or `"."` for the
    /// root): each active per-directory merge file is looked for there and its rules
    /// put in front of the inherited ones (not inherited with `n`; a `!` in it drops
    /// the inherited ones). On first use a merge file named with a path
    /// (`: /.rsync-filter`) is first read in each parent directory from where the path
    /// points down to `dir`'s parent. `read` gets module paths.
    ///
    /// Tokens must be given back to [`FilterSet::leave_dir`] innermost first. On an
    /// error (a rule in a merge file does not parse: upstream ends the session with
    /// code 1) the state before the call is restored.
    ///
    /// Upstream: exclude.c, push_local_filters(), setup_merge_file().
    pub fn enter_dir(&mut self, dir: &[u8], read: ReadFile<'_>) -> Result<DirToken, FilterError> {
        let cur = clean_module_path(&join_path(&self.ctx.root, dir));
        let token = DirToken {
            saved: self.merges.iter().map(|m| m.chain.clone()).collect(),
            count: self.merges.len(),
        };
        // Lists defined while reading this directory's files are read here too, as
        // upstream's loop re-reads mergelist_cnt.
        let mut i = 0;
        while i < self.merges.len() {
            if let Err(e) = self.push_list(i, &cur, read) {
                self.leave_dir(token);
                return Err(e);
            }
            i += 1;
        }
        Ok(token)
    }

    /// Leaves the directory `token` came from: its rules are dropped and the inherited
    /// state comes back. Upstream: exclude.c, pop_local_filters().
    pub fn leave_dir(&mut self, token: DirToken) {
        if token.count <= self.merges.len() {
            self.merges.truncate(token.count);
        }
        for (list, saved) in self.merges.iter_mut().zip(token.saved) {
            list.chain = saved;
        }
    }

    /// Moves to `dir` at `depth` (0 for the transfer root): leaves the directories at
    /// that depth or deeper, then enters `dir`. Upstream: change_local_filter_dir().
    pub fn change_dir(
        &mut self,
        dir: &[u8],
        depth: usize,
        read: ReadFile<'_>,
    ) -> Result<(), FilterError> {
        while self.dirs.last().is_some_and(|(d, _)| *d >= depth) {
            if let Some((_, token)) = self.dirs.pop() {
                self.leave_dir(token);
            }
        }
        let token = self.enter_dir(dir, read)?;
        self.dirs.push((depth, token));
        Ok(())
    }

    /// Leaves every directory [`FilterSet::change_dir`] entered (upstream
    /// change_local_filter_dir(NULL, ...)).
    pub fn leave_all_dirs(&mut self) {
        while let Some((_, token)) = self.dirs.pop() {
            self.leave_dir(token);
        }
    }

    fn push_list(&mut self, i: usize, cur: &[u8], read: ReadFile<'_>) -> Result<(), FilterError> {
        let Some(list) = self.merges.get_mut(i) else {
            return Ok(());
        };
        if !list.active {
            return Ok(());
        }
        if list.rule.flags.no_inherit {
            list.chain.clear();
        }
        if std::mem::take(&mut list.needs_setup) {
            self.setup_merge_file(i, cur, read)?;
        }
        let (entries, cleared) = self.read_dir_file(i, cur, false, read)?;
        self.put_local(i, entries, cleared);
        Ok(())
    }

    /// Upstream: exclude.c, setup_merge_file().
    fn setup_merge_file(
        &mut self,
        i: usize,
        cur: &[u8],
        read: ReadFile<'_>,
    ) -> Result<(), FilterError> {
        let Some(name) = self.merges.get(i).map(|m| m.rule.pattern.clone()) else {
            return Ok(());
        };
        if !name.contains(&b'/') {
            return Ok(());
        }
        let Some(path) = resolve_merge_name(&name, cur, cur) else {
            tracing::warn!(name = %String::from_utf8_lossy(&name), "merge-file name overflows");
            return Ok(());
        };
        let (top, base) = match path.iter().rposition(|&c| c == b'/') {
            Some(at) => (path[..at].to_vec(), path[at + 1..].to_vec()),
            None => (Vec::new(), path),
        };
        let no_inherit = match self.merges.get_mut(i) {
            Some(list) => {
                list.rule.pattern = base;
                list.rule.flags.no_inherit
            }
            None => return Ok(()),
        };
        for dir in dirs_between(&top, cur) {
            let (entries, cleared) = self.read_dir_file(i, &dir, true, read)?;
            if !no_inherit {
                self.put_local(i, entries, cleared);
            }
        }
        Ok(())
    }

    /// Puts a directory's rules in front of list `i`'s inherited ones.
    fn put_local(&mut self, i: usize, entries: Vec<Entry>, cleared: bool) {
        if let Some(list) = self.merges.get_mut(i) {
            if cleared {
                list.chain.clear();
            }
            if !entries.is_empty() {
                list.chain.insert(0, Arc::from(entries));
            }
        }
    }

    /// Reads list `i`'s file in module directory `dir`. Returns its entries and whether
    /// a `!` in it cleared the inherited rules. Upstream: parse_filter_file() called with
    /// XFLG_ANCHORED2ABS from push_local_filters() and setup_merge_file().
    fn read_dir_file(
        &mut self,
        i: usize,
        dir: &[u8],
        parent_scan: bool,
        read: ReadFile<'_>,
    ) -> Result<(Vec<Entry>, bool), FilterError> {
        let Some(rule) = self.merges.get(i).map(|m| m.rule.clone()) else {
            return Ok((Vec::new(), false));
        };
        let path = join_path(dir, &rule.pattern);
        if path.len() >= MAXPATHLEN {
            tracing::warn!(dir = %String::from_utf8_lossy(dir), "cannot add local filter rules in long-named directory");
            return Ok((Vec::new(), false));
        }
        let Some(contents) = self.read_visible(&path, read) else {
            return Ok((Vec::new(), false));
        };
        let xflags = XFlags {
            anchored2abs: true,
            am_sender: self.ctx.am_sender,
            delete_excluded: self.ctx.delete_excluded,
            ..XFlags::NONE
        };
        let template = RuleTemplate::from_merge_rule(&rule);
        let location = String::from_utf8_lossy(&path).into_owned();
        let rules = parse_rule_file(
            &contents,
            &template,
            xflags,
            dir,
            self.ctx.eol_nulls,
            &location,
        )?;
        let root = self.ctx.root.clone();
        let load = Load {
            origin: RuleOrigin::Peer,
            config: false,
            cwd: &root,
            dir,
            parent_scan,
            depth: 1,
        };
        let mut entries = Vec::new();
        let cleared = self.add_entries(&mut entries, rules, load, read)?;
        Ok((entries, cleared))
    }

    /// Reads a merge file at a module path unless the daemon chain hides it, in which
    /// case it counts as missing (upstream parse_filter_file()).
    fn read_visible(&self, path: &[u8], read: ReadFile<'_>) -> Option<Vec<u8>> {
        let mut rooted = Vec::with_capacity(path.len() + 1);
        rooted.push(b'/');
        rooted.extend_from_slice(path);
        if self.check_list(&self.daemon, &rooted, NameKind::File, false) == Some(Verdict::Excluded)
        {
            return None;
        }
        read(path)
    }

    /// Adds parsed rules to `list`: `!` empties it, `.` merges are read in place, `:`
    /// rules start a per-directory list unless one with the same file name exists, and
    /// `-C` stands for the global CVS list. Returns whether a `!` was seen.
    /// Upstream: exclude.c, parse_filter_str() and the list half of add_rule().
    fn add_entries(
        &mut self,
        list: &mut Vec<Entry>,
        rules: Vec<FilterRule>,
        load: Load<'_>,
        read: ReadFile<'_>,
    ) -> Result<bool, FilterError> {
        let mut cleared = false;
        for mut rule in rules {
            match rule.action {
                Action::Clear => {
                    for entry in list.drain(..) {
                        if let Entry::DirMerge { list, .. } = entry {
                            self.teardown(list);
                        }
                    }
                    cleared = true;
                }
                Action::Merge(_) => {
                    cleared |= self.merge_now(list, &rule, load, read)?;
                }
                Action::DirMerge(_) => {
                    if load.parent_scan && rule.pattern.first() != Some(&b'/') {
                        // Upstream makes names found during the parent scan absolute.
                        if let Some(p) = resolve_merge_name(&rule.pattern, load.dir, load.dir) {
                            rule.pattern = [&b"/"[..], &p].concat();
                        }
                    }
                    if self.merge_name_active(&rule.pattern) {
                        continue;
                    }
                    let active = self.merges.iter().filter(|m| m.active).count();
                    if active >= MAX_MERGE_LISTS {
                        return Err(FilterError::TooManyMergeFiles { count: active + 1 });
                    }
                    self.has_dir_merge = true;
                    let perishable = rule.flags.perishable;
                    self.merges.push(MergeList {
                        rule,
                        needs_setup: true,
                        active: true,
                        chain: Vec::new(),
                    });
                    list.push(Entry::DirMerge {
                        list: self.merges.len() - 1,
                        perishable,
                    });
                }
                _ if rule.is_cvs_list() => {
                    if self.cvs.is_none() {
                        let cvs = cvs_rules(&rule, self.ctx.protocol);
                        self.cvs = Some(cvs.iter().map(|r| self.entry(r, load.origin)).collect());
                    }
                    list.push(Entry::Cvs {
                        perishable: rule.flags.perishable,
                    });
                }
                _ => list.push(self.entry(&rule, load.origin)),
            }
        }
        Ok(cleared)
    }

    /// Reads a `.` merge file into `list` where the rule stands.
    fn merge_now(
        &mut self,
        list: &mut Vec<Entry>,
        rule: &FilterRule,
        load: Load<'_>,
        read: ReadFile<'_>,
    ) -> Result<bool, FilterError> {
        let shown = String::from_utf8_lossy(&rule.pattern).into_owned();
        if load.depth >= MAX_MERGE_DEPTH {
            return Err(FilterError::MergeDepth { name: shown });
        }
        let kind = if rule.is_include() { "in" } else { "ex" };
        let (contents, location) = if load.config {
            (read(&rule.pattern), shown)
        } else {
            let Some(path) = resolve_merge_name(&rule.pattern, load.cwd, load.dir) else {
                // Upstream reports "merge-file name overflows" and goes on.
                tracing::warn!(name = %shown, "merge-file name overflows");
                return Ok(false);
            };
            (
                self.read_visible(&path, read),
                String::from_utf8_lossy(&path).into_owned(),
            )
        };
        let contents = contents.ok_or_else(|| FilterError::MergeFileMissing {
            kind,
            name: location.clone(),
        })?;
        let xflags = XFlags {
            delete_excluded: self.ctx.delete_excluded,
            ..XFlags::NONE
        };
        let template = RuleTemplate::from_merge_rule(rule);
        let rules = parse_rule_file(
            &contents,
            &template,
            xflags,
            load.dir,
            self.ctx.eol_nulls,
            &location,
        )?;
        let inner = Load {
            depth: load.depth + 1,
            ..load
        };
        self.add_entries(list, rules, inner, read)
    }

    fn entry(&self, rule: &FilterRule, origin: RuleOrigin) -> Entry {
        let (s, r) = (rule.flags.sender_side, rule.flags.receiver_side);
        Entry::Rule {
            rule: CompiledRule::new(rule),
            elided: origin == RuleOrigin::Local && s != r && s != self.ctx.am_sender,
        }
    }

    /// Whether an active per-directory list already reads a file with this name's last
    /// component (upstream add_rule() then drops the new rule).
    fn merge_name_active(&self, name: &[u8]) -> bool {
        let base = |p: &[u8]| -> Vec<u8> {
            match p.iter().rposition(|&c| c == b'/') {
                Some(i) => p[i + 1..].to_vec(),
                None => p.to_vec(),
            }
        };
        let wanted = base(name);
        self.merges
            .iter()
            .any(|m| m.active && base(&m.rule.pattern) == wanted)
    }

    /// Upstream teardown_mergelist(): the list's rule is gone.
    fn teardown(&mut self, i: usize) {
        if let Some(list) = self.merges.get_mut(i) {
            list.active = false;
        }
    }
}

/// The exit code upstream ends the session with for a filter error.
pub fn exit_code(e: &FilterError) -> ExitCode {
    match e {
        FilterError::TooModern => ExitCode::PROTOCOL,
        FilterError::Wire(WireError::TooLarge { .. }) => ExitCode::MALLOC,
        FilterError::Wire(_) => ExitCode::PROTOCOL,
        FilterError::MergeDepth { .. }
        | FilterError::MergeFileMissing { .. }
        | FilterError::MergeNameTooLong { .. } => ExitCode::FILEIO,
        FilterError::TooManyMergeFiles { .. } => ExitCode::MALLOC,
        _ => ExitCode::SYNTAX,
    }
}

#[cfg(test)]
mod tests {
    //! Receiver-side behaviour checked against rsync 3.5.0, e.g. (a local copy, whose
    //! generator applies the same lists a daemon's does):
    //!
    //! ```text
    //! rsync -r --delete -v --debug=FILTER --filter='R keep2' --filter='P keep*' \
    //!     --filter='-p *.o' --filter=': .rsync-filter' s/ d/
    //! ```
    //!
    //! printed `protecting file a.o`, `protecting file keep1`, `risking file keep2`,
    //! deleted `gone/a.o` inside the deleted `gone/` (perishable), and with
    //! `.rsync-filter` files `- *.tmp` (top), `+ important.tmp` (sub) and
    //! `!`/`- other` (sub/deep) protected `sub/a.tmp` and `sub/deep/other` and deleted
    //! `sub/important.tmp` and `sub/deep/x.tmp`.

    use super::*;
    use crate::protocol::filter::{
        DaemonParam, RuleTemplate, XFlags, parse_daemon_param, parse_rules,
    };
    use std::collections::HashMap;

    fn rules(texts: &[&str]) -> Vec<FilterRule> {
        texts
            .iter()
            .flat_map(|t| {
                parse_rules(t.as_bytes(), &RuleTemplate::EXCLUDE, XFlags::NONE).unwrap_or_default()
            })
            .collect()
    }

    fn ctx(root: &str) -> FilterContext {
        FilterContext {
            protocol: 32,
            root: root.as_bytes().to_vec(),
            ..FilterContext::default()
        }
    }

    /// A module tree of merge files; records what was read.
    struct Files {
        files: HashMap<Vec<u8>, Vec<u8>>,
        reads: Vec<String>,
    }

    impl Files {
        fn new(files: &[(&str, &str)]) -> Files {
            Files {
                files: files
                    .iter()
                    .map(|(p, c)| (p.as_bytes().to_vec(), c.as_bytes().to_vec()))
                    .collect(),
                reads: Vec::new(),
            }
        }
        fn read(&mut self, path: &[u8]) -> Option<Vec<u8>> {
            self.reads.push(String::from_utf8_lossy(path).into_owned());
            self.files.get(path).cloned()
        }
    }

    fn set(root: &str, texts: &[&str], files: &mut Files) -> FilterSet {
        let mut s = FilterSet::new(ctx(root));
        let r = s.add_rules(rules(texts), RuleOrigin::Peer, &mut |p| files.read(p));
        assert_eq!(r, Ok(()));
        s
    }

    #[test]
    fn protect_and_risk_for_delete() {
        let mut none = Files::new(&[]);
        let s = set(
            "",
            &["R keep2", "P keep*", "-p *.o", "- /top", "+ a/", "- a"],
            &mut none,
        );
        let cases: &[(&str, bool, bool, bool)] = &[
            // (name, is_dir, kept by --delete, kept inside a deleted directory)
            ("keep1", false, true, true),
            ("keep2", false, false, false),
            ("x", false, false, false),
            ("a.o", false, true, false),
            ("gone/a.o", false, true, false),
            ("top", false, true, true),
            ("sub/top", false, false, false),
            ("a", true, false, false),
            ("a", false, true, true),
        ];
        for (name, dir, kept, kept_inside) in cases {
            assert_eq!(
                s.excluded_for_delete(name.as_bytes(), *dir),
                *kept,
                "{name}"
            );
            assert_eq!(
                s.excluded_in_deleted_dir(name.as_bytes(), *dir),
                *kept_inside,
                "{name}"
            );
        }
        assert_eq!(s.check(b"keep2", false), Some(Verdict::Included));
        assert_eq!(s.check(b"x", false), None);
    }

    #[test]
    fn the_list_a_stock_client_sent() {
        // The p32 capture in protocol/filter/wire_tests.rs.
        let mut none = Files::new(&[]);
        let s = set(
            "",
            &[
                "- *.o",
                "P keep",
                ": /.rsync-filter",
                "- .rsync-filter",
                "+ sub/",
                "-/ /abs",
                "+! nope",
                "R risky",
            ],
            &mut none,
        );
        assert!(s.has_dir_merge());
        assert!(s.excluded_for_delete(b"x.o", false));
        assert!(s.excluded_for_delete(b"keep", false));
        assert!(s.excluded_for_delete(b".rsync-filter", false));
        assert!(s.excluded_for_delete(b"abs", false));
        // "+! nope" includes everything but "nope", so later rules are not reached.
        assert!(!s.excluded_for_delete(b"risky", false));
        assert_eq!(s.check(b"nope", false), None);
    }

    #[test]
    fn cvs_patterns_are_perishable_from_protocol_30() {
        let mut none = Files::new(&[]);
        let s = set("", &["-C"], &mut none);
        assert!(s.excluded_for_delete(b"core", false));
        assert!(s.excluded_for_delete(b"x.o", false));
        assert!(s.excluded_for_delete(b".git", true));
        assert!(!s.excluded_for_delete(b".git", false));
        assert!(!s.excluded_in_deleted_dir(b"x.o", false));
        let mut old = FilterSet::new(FilterContext {
            protocol: 29,
            ..ctx("")
        });
        assert_eq!(
            old.add_rules(rules(&["-C"]), RuleOrigin::Peer, &mut |_| None),
            Ok(())
        );
        assert!(old.excluded_in_deleted_dir(b"x.o", false));
    }

    #[test]
    fn daemon_rules_refuse_and_protect() {
        let daemon = |root: &str| {
            let mut s = FilterSet::new(ctx(root));
            let r = parse_daemon_param(DaemonParam::Filter, b"- /secret P foo H hid - priv/")
                .map(|rules| s.add_daemon_rules(rules, &mut |_| None));
            assert_eq!(r, Ok(Ok(())));
            s
        };
        let s = daemon("");
        assert!(s.daemon_refuses(b"secret", false));
        assert!(s.daemon_refuses(b"foo", false));
        assert!(s.daemon_refuses(b"x/foo", false));
        assert!(!s.daemon_refuses(b"hid", false));
        assert!(s.daemon_refuses(b"priv", true));
        assert!(s.daemon_refuses(b"a/priv/x", false));
        assert!(!s.daemon_refuses(b".", true));
        assert!(s.excluded_for_delete(b"foo", false));
        assert_eq!(s.check(b"foo", false), None);
        // Anchored at the module root, not the transfer root.
        let s = daemon("up");
        assert!(!s.daemon_refuses(b"secret", false));
        let s = daemon("");
        assert!(s.daemon_refuses(b"secret", true));
        let mut s = FilterSet::new(ctx(""));
        let r = parse_daemon_param(DaemonParam::Filter, b"- *.log - /newdir/y/")
            .map(|rules| s.add_daemon_rules(rules, &mut |_| None));
        assert_eq!(r, Ok(Ok(())));
        assert!(s.daemon_refuses(b"newdir/y", true));
        assert!(!s.daemon_refuses(b"newdir/y", false));
    }

    #[test]
    fn per_directory_merge_files_during_delete() {
        let mut files = Files::new(&[
            (".rsync-filter", "- *.tmp\nP /keep\n"),
            ("sub/.rsync-filter", "+ important.tmp\n"),
            ("sub/deep/.rsync-filter", "!\n- other\n"),
        ]);
        let mut s = set("", &[": .rsync-filter"], &mut files);
        let ex = |s: &FilterSet, n: &str| s.excluded_for_delete(n.as_bytes(), false);
        let read = &mut |p: &[u8]| files.read(p);
        let root = s.enter_dir(b".", read);
        assert!(ex(&s, "a.tmp") && ex(&s, "keep") && !ex(&s, "sub/keep"));
        let sub = s.enter_dir(b"sub", read);
        assert!(!ex(&s, "sub/important.tmp") && ex(&s, "sub/a.tmp"));
        let deep = s.enter_dir(b"sub/deep", read);
        assert!(!ex(&s, "sub/deep/x.tmp") && ex(&s, "sub/deep/other"));
        if let Ok(t) = deep {
            s.leave_dir(t);
        }
        assert!(ex(&s, "sub/deep/x.tmp") && !ex(&s, "sub/deep/other"));
        if let Ok(t) = sub {
            s.leave_dir(t);
        }
        assert!(ex(&s, "sub/important.tmp"));
        if let Ok(t) = root {
            s.leave_dir(t);
        }
        assert!(!ex(&s, "a.tmp"));
        assert_eq!(
            files.reads,
            [
                ".rsync-filter",
                "sub/.rsync-filter",
                "sub/deep/.rsync-filter"
            ]
        );
    }

    #[test]
    fn no_inherit_and_change_dir_depths() {
        let mut files = Files::new(&[(".ex", "a\n"), ("b/.ex", "c\n")]);
        let mut s = set("", &[":n- .ex"], &mut files);
        let read = &mut |p: &[u8]| files.read(p);
        assert_eq!(s.change_dir(b"", 0, read), Ok(()));
        assert!(s.is_excluded(b"a", false));
        assert_eq!(s.change_dir(b"b", 1, read), Ok(()));
        assert!(!s.is_excluded(b"b/a", false));
        assert!(s.is_excluded(b"b/c", false));
        assert_eq!(s.change_dir(b"d", 1, read), Ok(()));
        assert!(!s.is_excluded(b"d/c", false));
        s.leave_all_dirs();
        assert!(!s.is_excluded(b"a", false));
    }

    #[test]
    fn a_merge_file_named_with_a_path_is_read_in_parent_directories_first() {
        // -F: ": /.rsync-filter", transfer rooted at module path t/r.
        let mut files = Files::new(&[
            (".rsync-filter", "- fromtop\n- x\n"),
            ("t/.rsync-filter", "- fromt\n- /r/only\n"),
            ("t/r/.rsync-filter", "- fromr\n+ x\n"),
        ]);
        let mut s = set("t/r", &[": /.rsync-filter"], &mut files);
        let token = s.enter_dir(b"", &mut |p| files.read(p));
        assert!(token.is_ok());
        for name in ["fromtop", "fromt", "fromr", "only", "sub/fromtop"] {
            assert!(s.is_excluded(name.as_bytes(), false), "{name}");
        }
        assert!(!s.is_excluded(b"x", false));
        assert!(!s.is_excluded(b"sub/only", false));
        assert_eq!(
            files.reads,
            [".rsync-filter", "t/.rsync-filter", "t/r/.rsync-filter"]
        );
    }

    #[test]
    fn the_daemon_hides_merge_files_and_names_are_not_read_twice() {
        let mut files = Files::new(&[(".rsync-filter", "- a\n"), ("priv/rules", "- b\n")]);
        let mut s = FilterSet::new(ctx(""));
        let d = parse_daemon_param(
            DaemonParam::Filter,
            b"- /.rsync-filter : .rsync-filter - /priv/",
        )
        .map(|r| s.add_daemon_rules(r, &mut |p| files.read(p)));
        assert_eq!(d, Ok(Ok(())));
        // The client's -F names the same file: upstream keeps only the first list.
        let r = s.add_rules(rules(&[": /.rsync-filter"]), RuleOrigin::Peer, &mut |p| {
            files.read(p)
        });
        assert_eq!(r, Ok(()));
        assert!(s.enter_dir(b"", &mut |p| files.read(p)).is_ok());
        assert!(!s.is_excluded(b"a", false));
        // A `.` merge of a hidden file is missing, which is fatal.
        let r = s.add_rules(rules(&[". /priv/rules"]), RuleOrigin::Peer, &mut |p| {
            files.read(p)
        });
        let e = r.map_err(|e| (e.to_string(), exit_code(&e)));
        assert_eq!(
            e,
            Err((
                "failed to open exclude file priv/rules".to_string(),
                ExitCode::FILEIO
            ))
        );
        assert!(files.reads.is_empty());
    }

    #[test]
    fn merge_files_from_the_wire_and_clears() {
        let mut files = Files::new(&[("rules.txt", "- a\n+ b\n. more\n"), ("more", "- c\n")]);
        let s = set("", &["- z", "!", ". rules.txt", "- b"], &mut files);
        assert!(!s.is_excluded(b"z", false));
        assert!(
            s.is_excluded(b"a", false) && !s.is_excluded(b"b", false) && s.is_excluded(b"c", false)
        );
        let mut loops = Files::new(&[("self", ". self\n")]);
        let mut s = FilterSet::new(ctx(""));
        let r = s.add_rules(rules(&[". self"]), RuleOrigin::Peer, &mut |p| loops.read(p));
        assert!(matches!(r, Err(FilterError::MergeDepth { .. })));
    }

    #[test]
    fn bad_rules_in_a_merge_file_end_the_session_without_echoing_it() {
        let mut files = Files::new(&[("sub/.f", "- ok\nsecret: text\n")]);
        let mut s = set("", &[": .f"], &mut files);
        let r = s.enter_dir(b"sub", &mut |p| files.read(p)).map(|_| ());
        let e = r.map_err(|e| (e.to_string(), exit_code(&e)));
        assert_eq!(
            e,
            Err((
                "Unknown filter rule: <rule from sub/.f line 2>".to_string(),
                ExitCode::SYNTAX
            ))
        );
        assert!(!s.is_excluded(b"sub/ok", false));
    }

    #[test]
    fn our_own_rules_skip_the_other_side() {
        let mut none = Files::new(&[]);
        let texts = ["P p", "H h", "- both"];
        for am_sender in [true, false] {
            let mut s = FilterSet::new(FilterContext {
                am_sender,
                ..ctx("")
            });
            let r = s.add_rules(rules(&texts), RuleOrigin::Local, &mut |p| none.read(p));
            assert_eq!(r, Ok(()));
            assert_eq!(s.is_excluded(b"p", false), !am_sender);
            assert_eq!(s.is_excluded(b"h", false), am_sender);
            assert!(s.is_excluded(b"both", false));
        }
    }

    #[test]
    fn per_directory_rules_for_the_other_side_are_dropped() {
        let mut files = Files::new(&[(".f", "H hid\nP prot\n")]);
        let mut s = set("", &[": .f"], &mut files);
        assert!(s.enter_dir(b"", &mut |p| files.read(p)).is_ok());
        assert!(!s.is_excluded(b"hid", false));
        assert!(s.is_excluded(b"prot", false));
    }

    #[test]
    fn xattr_rules() {
        let mut none = Files::new(&[]);
        let s = set("", &["-x security.*", "- user.*"], &mut none);
        assert!(s.xattr_excluded(b"security.selinux"));
        assert!(!s.xattr_excluded(b"user.x"));
        assert!(s.is_excluded(b"user.x", false));
    }
}
