//! A batch of one remote's pending operations carried out in native-client sessions:
//! the pushes in one session (sersync's `cd ROOT && rsync PARAMS -R PATH... host::module`,
//! but with every path of the batch in it), each rename in a session that gives the remote
//! the old path as its basis (`--copy-dest`), so a renamed tree is not sent again, and the
//! deletions in one session that deletes exactly the named paths (`--delete` with rules
//! that protect everything else).

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use rsyncd_rs::client::{
    ClientError, ConnectOptions, ItemWhat, LocalFilter, PushOutcome, Remote, parse_options, push,
};
use rsyncd_rs::engine::exit::ExitCode;

use crate::op::Op;
use crate::queue::Taken;

/// Where and how one remote's sessions go.
#[derive(Debug, Clone)]
pub struct Target {
    /// The module (its `path` is the module root: empty).
    pub remote: Remote,
    pub connect: ConnectOptions,
    /// The rsync options every session starts from (sersync's commonParams).
    pub params: Vec<String>,
    /// The watched root the paths are relative to.
    pub root: PathBuf,
    /// Deletes are on.
    pub deletes: bool,
    /// The configuration's `<timeout>`, seconds (what an rsync command line would carry;
    /// `connect.io_timeout` has a default where this is `None`).
    pub timeout: Option<u64>,
    /// The filter (sersync's regexes): `(path relative to root, is_dir)` → never sent.
    pub excluded: Option<LocalFilter>,
}

impl Target {
    /// A whole-tree push deletes what the tree lacks: with deletes on, and no filter (the
    /// server cannot be told the filter's expressions, so `--delete` would remove its
    /// copies of what the filter leaves out).
    fn deletes_whole_tree(&self) -> bool {
        self.deletes && self.excluded.is_none()
    }
}

/// What a batch came to.
#[derive(Debug, Default)]
pub struct Report {
    /// Carried out (or moot: the path changed since, and a later operation covers it).
    pub done: Vec<Taken>,
    /// Not carried out; stays pending, with rsync's reason.
    pub failed: Vec<(Taken, String)>,
    /// What went wrong but is not worth a retry: the server could not set an entry's
    /// times, permissions or owner (the data is there; a retry would fail the same way).
    pub warnings: Vec<String>,
    /// A session that failed as a whole, by its error: whether waiting can help.
    pub error: Option<ClientError>,
    pub sessions: usize,
    /// Bytes the sessions sent (what a rename saves shows here).
    pub bytes_written: u64,
}

/// Carries out `batch` against `t`.
pub fn run(t: &Target, batch: &[Taken]) -> Report {
    let mut r = Report::default();
    let mut pushes: Vec<(PathBuf, Vec<Taken>)> = Vec::new();
    let mut renames = Vec::new();
    let mut deletes: Vec<Taken> = Vec::new();
    for tk in batch {
        match &tk.op {
            Op::Push { path, .. } => pushes.push((path.clone(), vec![tk.clone()])),
            Op::Mirror => pushes.push((PathBuf::new(), vec![tk.clone()])),
            Op::Rename { to, .. } if !t.deletes => pushes.push((to.clone(), vec![tk.clone()])),
            Op::Rename { .. } => renames.push(tk.clone()),
            Op::Delete { .. } => deletes.push(tk.clone()),
        }
    }
    // A move into a directory too new to be watched yet arrives as a deletion and a
    // push of the same name: sent as the rename it was, the old path as its basis.
    if t.deletes {
        pair_moves(t, &mut r, &mut pushes, &deletes);
    }
    // Renames first: each needs its old path still on the remote as the basis.
    let mut old_paths = Vec::new();
    for tk in renames {
        let Op::Rename { from, to } = &tk.op else {
            continue;
        };
        match rename(t, &mut r, from, to) {
            Ok(()) => old_paths.push((from.clone(), tk)),
            // No basis session could be made (or it failed): the new path goes as a
            // plain push, the old one is deleted all the same.
            Err(()) => {
                pushes.push((to.clone(), Vec::new()));
                old_paths.push((from.clone(), tk));
            }
        }
    }
    push_paths(t, &mut r, pushes);
    if r.error.is_some() {
        r.failed.extend(
            old_paths
                .into_iter()
                .map(|(_, tk)| (tk, "not attempted".into())),
        );
        r.failed
            .extend(deletes.into_iter().map(|tk| (tk, "not attempted".into())));
        return r;
    }
    let mut targets: Vec<(PathBuf, Vec<Taken>)> = deletes
        .into_iter()
        .filter_map(|tk| match &tk.op {
            Op::Delete { path } => Some((path.clone(), vec![tk.clone()])),
            _ => None,
        })
        .collect();
    targets.extend(old_paths.into_iter().map(|(p, tk)| (p, vec![tk])));
    delete_paths(t, &mut r, targets);
    r
}

/// Pushes of paths whose name a deletion in the same batch had, made as renames from
/// that deletion's path; what succeeds leaves `pushes` (its deletion stays queued).
fn pair_moves(
    t: &Target,
    r: &mut Report,
    pushes: &mut Vec<(PathBuf, Vec<Taken>)>,
    deletes: &[Taken],
) {
    let mut gone: BTreeMap<&OsStr, &Path> = BTreeMap::new();
    for tk in deletes {
        if let Op::Delete { path } = &tk.op
            && let Some(name) = path.file_name()
        {
            gone.insert(name, path);
        }
    }
    if gone.is_empty() {
        return;
    }
    pushes.retain(|(to, tks)| {
        let Some(from) = to.file_name().and_then(|n| gone.get(n)) else {
            return true;
        };
        if std::fs::symlink_metadata(t.root.join(from)).is_ok() || rename(t, r, from, to).is_err() {
            return true;
        }
        r.done.extend(tks.iter().cloned());
        false
    });
}

/// The whole tree in one session (sersync's crontab full sync), with `excludes` as rsync
/// `--exclude` patterns and, when deletes are on, `--delete`.
pub fn full_sync(t: &Target, excludes: &[String]) -> Report {
    let mut r = Report::default();
    let rules: Vec<String> = excludes.iter().map(|e| format!("--exclude={e}")).collect();
    let mut extra: Vec<&str> = vec!["-R"];
    if t.deletes_whole_tree() {
        extra.push("--delete");
    }
    extra.extend(rules.iter().map(String::as_str));
    match session(t, &mut r, &extra, &t.root, &t.remote, &[b"./".to_vec()]) {
        Ok(out) if out.code == ExitCode::OK => {}
        Ok(out) => {
            let why = said(&out);
            r.failed.push((
                Taken {
                    seq: 0,
                    op: Op::Push {
                        path: PathBuf::new(),
                        recursive: true,
                    },
                },
                why,
            ));
        }
        Err(e) => r.error = Some(e),
    }
    r
}

/// One session pushing `paths` (with `-R`), each path's operations acknowledged when
/// nothing at or below it failed.
fn push_paths(t: &Target, r: &mut Report, paths: Vec<(PathBuf, Vec<Taken>)>) {
    if paths.is_empty() {
        return;
    }
    // A path below another one pushed is sent with it.
    let mut by_path: BTreeMap<PathBuf, Vec<Taken>> = BTreeMap::new();
    for (p, tks) in paths {
        by_path.entry(p).or_default().extend(tks);
    }
    let mut kept: Vec<(PathBuf, Vec<Taken>)> = Vec::new();
    for (p, tks) in by_path {
        match kept.last_mut() {
            Some((top, top_tks)) if is_below(&p, top) => top_tks.extend(tks),
            _ => kept.push((p, tks)),
        }
    }
    // What is gone locally is not pushed: its deletion, when deletes are on, is queued
    // of its own.
    let (present, gone): (Vec<_>, Vec<_>) = kept
        .into_iter()
        .partition(|(p, _)| std::fs::symlink_metadata(t.root.join(p)).is_ok());
    r.done.extend(gone.into_iter().flat_map(|(_, tks)| tks));
    if present.is_empty() {
        return;
    }
    let names: Vec<Vec<u8>> = present.iter().map(|(p, _)| wire_name(p)).collect();
    // The whole tree mirrored (-r, the catch-up after a restart) with deletes on, as
    // sersync's -r does: what was deleted while nobody watched goes too. A rescan
    // (after an overflow, or a root that came back) pushes without deleting: a root
    // emptied by mistake must not empty the replica.
    let mirror = present
        .iter()
        .flat_map(|(_, tks)| tks)
        .any(|tk| tk.op == Op::Mirror);
    // With deletes on, a directory replaced by a file or a symlink is replaced on the
    // server too (`--force`); with deletes off it cannot be, and the server says so.
    let extra: &[&str] = match (mirror && t.deletes_whole_tree(), t.deletes) {
        (true, _) => &["-R", "--delete", "--force"],
        (false, true) => &["-R", "--force"],
        (false, false) => &["-R"],
    };
    let outcome = session(t, r, extra, &t.root, &t.remote, &names);
    match outcome {
        Ok(out) => {
            let (failures, attrs): (Vec<_>, Vec<_>) = failures(&out)
                .into_iter()
                .partition(|(_, why)| !is_attribute_failure(why));
            r.warnings.extend(attrs.into_iter().map(|(_, why)| why));
            for (p, tks) in present {
                let why = failures
                    .iter()
                    .find(|(n, _)| is_below(n, &p))
                    .map(|(_, why)| why.clone());
                match why {
                    // Gone since the session listed it: nothing left to push.
                    Some(_) if std::fs::symlink_metadata(t.root.join(&p)).is_err() => {
                        r.done.extend(tks)
                    }
                    Some(why) => r.failed.extend(tks.into_iter().map(|tk| (tk, why.clone()))),
                    None => r.done.extend(tks),
                }
            }
        }
        Err(e) => {
            let why = e.to_string();
            r.failed.extend(
                present
                    .into_iter()
                    .flat_map(|(_, tks)| tks)
                    .map(|tk| (tk, why.clone())),
            );
            r.error = Some(e);
        }
    }
}

/// The renamed `to` pushed with the remote's `from` as its basis: a directory into itself
/// (`to/`) with `--copy-dest` pointing at `from`; a file into its directory with
/// `--copy-dest` pointing at `from`'s, and, renamed to another name, `-yy` (rsync's fuzzy
/// basis search, which looks in the basis directories too and takes a file of the same
/// size and time first). `Err` when the session could not be made or failed: the caller
/// pushes `to` plainly.
fn rename(t: &Target, r: &mut Report, from: &Path, to: &Path) -> Result<(), ()> {
    let Ok(meta) = std::fs::symlink_metadata(t.root.join(to)) else {
        // Gone again: only the old path's deletion is left.
        return Ok(());
    };
    let (dest, basis_of) = if meta.is_dir() {
        (to.to_path_buf(), from.to_path_buf())
    } else {
        (parent(to), parent(from))
    };
    let copy_dest = format!("--copy-dest={}", relative(&dest, &basis_of).display());
    let renamed = from.file_name() != to.file_name();
    let extra: Vec<&str> = match (meta.is_dir(), dest == basis_of, renamed) {
        // Renamed in its own directory: the fuzzy search there finds the old file
        // (stock 3.5.0's daemon does not search a basis directory, so -yy would not).
        (false, true, _) => vec!["-y"],
        (false, false, true) => vec![copy_dest.as_str(), "-yy"],
        _ => vec![copy_dest.as_str()],
    };
    let mut remote = t.remote.clone();
    remote.path = if dest.as_os_str().is_empty() {
        String::new()
    } else {
        format!("{}/", dest.display())
    };
    let (root, names) = if meta.is_dir() {
        (t.root.join(to), vec![b"./".to_vec()])
    } else {
        (
            t.root.join(parent(to)),
            vec![
                to.file_name()
                    .map(OsStr::as_bytes)
                    .unwrap_or_default()
                    .to_vec(),
            ],
        )
    };
    match session(t, r, &extra, &root, &remote, &names) {
        Ok(out) if out.code == ExitCode::OK => Ok(()),
        Ok(_) | Err(_) => Err(()),
    }
}

/// One session deleting exactly `targets` on the remote: their parents are pushed with
/// `--delete` and rules that include each target and exclude (so protect) everything
/// else in those parents. A target that exists locally again is not deleted.
fn delete_paths(t: &Target, r: &mut Report, targets: Vec<(PathBuf, Vec<Taken>)>) {
    let mut gone: BTreeMap<PathBuf, Vec<Taken>> = BTreeMap::new();
    for (p, tks) in targets {
        if p.as_os_str().is_empty() || std::fs::symlink_metadata(t.root.join(&p)).is_ok() {
            r.done.extend(tks);
            continue;
        }
        // The top-most missing ancestor is what was really deleted.
        let top = top_missing(&t.root, &p);
        gone.entry(top).or_default().extend(tks);
    }
    let mut tops: Vec<(PathBuf, Vec<Taken>)> = Vec::new();
    for (p, tks) in gone {
        match tops.last_mut() {
            Some((top, top_tks)) if is_below(&p, top) => top_tks.extend(tks),
            _ => tops.push((p, tks)),
        }
    }
    if tops.is_empty() {
        return;
    }
    let mut parents: BTreeSet<PathBuf> = BTreeSet::new();
    let mut rules: Vec<String> = Vec::new();
    for (p, _) in &tops {
        rules.push(format!("--include=/{}", escape_pattern(p)));
        parents.insert(parent(p));
    }
    // Each parent and its ancestors are sent (rules match first to last, and another
    // parent's exclude could hide them), but never their other contents.
    let mut dirs: BTreeSet<PathBuf> = BTreeSet::new();
    for dir in &parents {
        for a in dir.ancestors().filter(|a| !a.as_os_str().is_empty()) {
            dirs.insert(a.to_path_buf());
        }
    }
    rules.extend(
        dirs.iter()
            .map(|d| format!("--include=/{}/", escape_pattern(d))),
    );
    for dir in &parents {
        rules.push(if dir.as_os_str().is_empty() {
            "--exclude=/*".to_string()
        } else {
            format!("--exclude=/{}/*", escape_pattern(dir))
        });
    }
    let mut extra: Vec<&str> = vec!["-R", "-r", "--delete"];
    extra.extend(rules.iter().map(String::as_str));
    // A parent below another is reached by the other's recursion (and named twice, it
    // would be listed twice).
    let mut named: Vec<&PathBuf> = Vec::new();
    for d in &parents {
        if !named.last().is_some_and(|top| is_below(d, top)) {
            named.push(d);
        }
    }
    let names: Vec<Vec<u8>> = named.iter().map(|d| wire_name(d)).collect();
    match session(t, r, &extra, &t.root, &t.remote, &names) {
        Ok(out) if out.code == ExitCode::OK => r.done.extend(tops.into_iter().flat_map(|(_, t)| t)),
        // The parents' times or modes could not be set (a module root the daemon's user
        // does not own): the deletions were made.
        Ok(out) if only_attribute_failures(&out) => {
            r.warnings.push(said(&out));
            r.done.extend(tops.into_iter().flat_map(|(_, t)| t));
        }
        Ok(out) => {
            let why = said(&out);
            r.failed.extend(
                tops.into_iter()
                    .flat_map(|(_, t)| t)
                    .map(|tk| (tk, why.clone())),
            );
        }
        Err(e) => {
            let why = e.to_string();
            r.failed.extend(
                tops.into_iter()
                    .flat_map(|(_, t)| t)
                    .map(|tk| (tk, why.clone())),
            );
            r.error = Some(e);
        }
    }
}

/// Runs one push session with the common parameters plus `extra`.
fn session(
    t: &Target,
    r: &mut Report,
    extra: &[&str],
    root: &Path,
    remote: &Remote,
    names: &[Vec<u8>],
) -> Result<PushOutcome, ClientError> {
    let words: Vec<&str> = t
        .params
        .iter()
        .map(String::as_str)
        .chain(extra.iter().copied())
        .collect();
    let args = parse_options(&words)?;
    r.sessions += 1;
    let mut connect = t.connect.clone();
    if let Some(f) = &t.excluded {
        // The sender names entries below the session's root; the filter reads paths
        // below the watched one.
        let below = root
            .strip_prefix(&t.root)
            .unwrap_or(Path::new(""))
            .to_path_buf();
        let f = f.clone();
        connect.local_filter = Some(LocalFilter(std::sync::Arc::new(move |name, is_dir| {
            let name = name.strip_prefix(b"./").unwrap_or(name);
            (f.0)(
                below.join(OsStr::from_bytes(name)).as_os_str().as_bytes(),
                is_dir,
            )
        })));
    }
    let out = push(remote, &connect, &args.options, root, names);
    tracing::debug!(
        module_path = %remote.path,
        root = %root.display(),
        paths = names.len(),
        extra = ?extra,
        result = ?out.as_ref().map(|o| (o.code, o.bytes_written)),
        "session"
    );
    let out = out?;
    r.bytes_written += out.bytes_written;
    Ok(out)
}

/// What the server said in a session, on one line.
fn said(out: &PushOutcome) -> String {
    out.lines
        .iter()
        .map(|l| l.text.as_str())
        .collect::<Vec<_>>()
        .join("; ")
}

/// The entries the session reports failed, by path.
fn failures(out: &PushOutcome) -> Vec<(PathBuf, String)> {
    out.items
        .iter()
        .filter_map(|(name, what)| match what {
            ItemWhat::Failed(why) => Some((PathBuf::from(OsStr::from_bytes(name)), why.clone())),
            _ => None,
        })
        .collect()
}

/// A server's error a retry cannot help with and that loses no data: about an entry's
/// attributes (upstream: rsync.c, set_file_attrs(): "failed to set times on", "failed to
/// set permissions on", "chown"), or a directory kept in the way of what replaced it.
fn is_attribute_failure(why: &str) -> bool {
    // A directory that would have to go for a new file or symlink, deletes off: it is
    // kept, and would be again at every retry.
    why.contains("could not make way for")
        || why.contains("failed to set times on")
        || why.contains("failed to set permissions on")
        || why.contains("failed to modify permissions on")
        || why.contains("chown ")
}

/// A partial session whose only errors are about attributes.
fn only_attribute_failures(out: &PushOutcome) -> bool {
    out.code == ExitCode::PARTIAL
        && out
            .lines
            .iter()
            .filter(|l| {
                matches!(
                    l.code,
                    rsyncd_rs::protocol::mux::MsgCode::Error
                        | rsyncd_rs::protocol::mux::MsgCode::ErrorXfer
                )
            })
            .all(|l| is_attribute_failure(&l.text) || l.text.starts_with("rsync error:"))
}

/// `p` is `top` or below it.
fn is_below(p: &Path, top: &Path) -> bool {
    top.as_os_str().is_empty() || p.starts_with(top)
}

fn parent(p: &Path) -> PathBuf {
    p.parent().map(Path::to_path_buf).unwrap_or_default()
}

/// The path from directory `from` to `to` (both relative to the same root).
fn relative(from: &Path, to: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in from.components() {
        if matches!(c, Component::Normal(_)) {
            out.push("..");
        }
    }
    out.push(to);
    if out.as_os_str().is_empty() {
        out.push(".");
    }
    out
}

/// The highest ancestor of `p` (or `p`) missing under `root`.
fn top_missing(root: &Path, p: &Path) -> PathBuf {
    let mut top = p.to_path_buf();
    let mut cur = parent(p);
    while !cur.as_os_str().is_empty() && std::fs::symlink_metadata(root.join(&cur)).is_err() {
        top = cur.clone();
        cur = parent(&cur);
    }
    top
}

/// A relative path as the client's path argument: the root is `./`.
fn wire_name(p: &Path) -> Vec<u8> {
    if p.as_os_str().is_empty() {
        b"./".to_vec()
    } else {
        p.as_os_str().as_bytes().to_vec()
    }
}

/// `p` as an rsync pattern matching only itself: wildcard characters escaped.
fn escape_pattern(p: &Path) -> String {
    let mut out = String::new();
    for ch in p.to_string_lossy().chars() {
        if matches!(ch, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(ch);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_between_directories() {
        assert_eq!(relative(Path::new("b"), Path::new("a")), Path::new("../a"));
        assert_eq!(
            relative(Path::new("x/y/b"), Path::new("a")),
            Path::new("../../../a")
        );
        assert_eq!(relative(Path::new(""), Path::new("a/b")), Path::new("a/b"));
        assert_eq!(relative(Path::new("a"), Path::new("")), Path::new(".."));
    }

    #[test]
    fn patterns_match_only_their_own_name() {
        assert_eq!(escape_pattern(Path::new("a*/b?[c]")), "a\\*/b\\?\\[c\\]");
    }
}
