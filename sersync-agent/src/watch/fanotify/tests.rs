//! The fanotify watcher against the real filesystem under the test's temporary
//! directory. Needs root; without it the tests say so and pass, except under
//! `CI=true`, where a missing capability is a failure.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::RwLock;
use std::time::{Duration, Instant};

use super::*;
use crate::watch::tests::{PATIENCE, collect_until};

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// Says why a test cannot check anything here and lets it pass, except under `CI=true`,
/// where a missing kernel feature or privilege is a failure.
fn skip(why: &str) {
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "under CI=true this test must run: {why}"
    );
    eprintln!("skipped: {why}");
}

/// Held for writing while `fs.fanotify.max_queued_events` is lowered (the kernel
/// reads it when a group is created), for reading while any other group is.
static INIT: RwLock<()> = RwLock::new(());

fn all() -> Interest {
    Interest {
        modify: true,
        attrib: true,
    }
}

/// A watcher, or `None` when this machine cannot run one (not root) outside CI.
fn watcher(
    root: &Path,
    excluded: impl Fn(&Path) -> bool + Send + 'static,
) -> Result<Option<FanWatcher>, WatchError> {
    let _guard = INIT.read();
    match FanWatcher::new(root, all(), excluded) {
        Err(WatchError::Fanotify(why))
            if !nix::unistd::geteuid().is_root()
                && std::env::var("CI").as_deref() != Ok("true") =>
        {
            eprintln!("skipped: {why}");
            Ok(None)
        }
        other => other.map(Some),
    }
}

/// Everything that arrives within `wait`.
fn drain(w: &mut FanWatcher, wait: Duration) -> Result<Vec<WatchEvent>, WatchError> {
    let deadline = Instant::now() + wait;
    let mut seen = Vec::new();
    while Instant::now() < deadline {
        seen.extend(w.next_events_timeout(Duration::from_millis(50))?);
    }
    Ok(seen)
}

fn p(s: &str) -> PathBuf {
    PathBuf::from(s)
}

fn closed(events: &[WatchEvent], path: &str) -> bool {
    events
        .iter()
        .any(|e| matches!(e, WatchEvent::CloseWrite { path: q } if q == Path::new(path)))
}

#[test]
fn entries_anywhere_below_the_root_are_reported_by_path() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let root = tmp.path().join("tree");
    fs::create_dir(&root)?;
    let Some(mut w) = watcher(&root, |_| false)? else {
        return Ok(());
    };
    assert!(w.is_watching());
    fs::create_dir_all(root.join("a/b/c"))?;
    fs::write(root.join("a/b/c/f"), "x")?;
    fs::write(root.join("top"), "y")?;
    std::os::unix::fs::symlink("top", root.join("a/link"))?;
    let seen = collect_until(&mut w, |ev| {
        closed(ev, "a/b/c/f")
            && closed(ev, "top")
            && ev.contains(&WatchEvent::CreateComplete { path: p("a/link") })
    })?;
    for dir in ["a", "a/b", "a/b/c"] {
        assert!(
            seen.contains(&WatchEvent::Create {
                path: p(dir),
                is_dir: true
            }),
            "{dir} in {seen:#?}"
        );
    }
    fs::remove_file(root.join("top"))?;
    fs::remove_dir_all(root.join("a"))?;
    let seen = collect_until(&mut w, |ev| {
        ev.contains(&WatchEvent::Delete {
            path: p("a"),
            is_dir: true,
        })
    })?;
    assert!(seen.contains(&WatchEvent::Delete {
        path: p("top"),
        is_dir: false
    }));
    // Nothing reported outside the tree, by a name with a `..` or absolute.
    assert!(seen.iter().all(|e| !format!("{e:?}").contains("..")));
    Ok(())
}

#[test]
fn a_rename_is_one_pair_and_later_events_carry_the_new_name() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let root = tmp.path().join("tree");
    fs::create_dir_all(root.join("old/deep"))?;
    let Some(mut w) = watcher(&root, |_| false)? else {
        return Ok(());
    };
    if !w.renames {
        skip("no FAN_RENAME on this kernel");
        return Ok(());
    }
    // A file created before the rename resolves the directory once (cached)...
    fs::write(root.join("old/deep/f"), "1")?;
    collect_until(&mut w, |ev| closed(ev, "old/deep/f"))?;
    fs::rename(root.join("old"), root.join("new"))?;
    let seen = collect_until(&mut w, |ev| {
        ev.iter()
            .any(|e| matches!(e, WatchEvent::MovedTo { path, .. } if path == Path::new("new")))
    })?;
    let from = seen.iter().find_map(|e| match e {
        WatchEvent::MovedFrom {
            path,
            cookie,
            is_dir: true,
        } if path == Path::new("old") => Some(*cookie),
        _ => None,
    });
    let to = seen.iter().find_map(|e| match e {
        WatchEvent::MovedTo {
            cookie,
            is_dir: true,
            ..
        } => Some(*cookie),
        _ => None,
    });
    assert_eq!(from, to, "{seen:#?}");
    // ...and after the rename the cached path must not be used.
    fs::write(root.join("new/deep/g"), "2")?;
    collect_until(&mut w, |ev| closed(ev, "new/deep/g"))?;
    // Out of the tree: only the first half.
    let outside = tmp.path().join("outside");
    fs::rename(root.join("new"), &outside)?;
    let seen = collect_until(&mut w, |ev| {
        ev.iter()
            .any(|e| matches!(e, WatchEvent::MovedFrom { path, .. } if path == Path::new("new")))
    })?;
    assert!(
        !seen.iter().any(|e| matches!(e, WatchEvent::MovedTo { .. })),
        "{seen:#?}"
    );
    // Back in: only the second half.
    fs::rename(&outside, root.join("back"))?;
    collect_until(&mut w, |ev| {
        ev.iter()
            .any(|e| matches!(e, WatchEvent::MovedTo { path, is_dir: true, .. } if path == Path::new("back")))
    })?;
    Ok(())
}

#[test]
fn changes_outside_the_root_and_below_exclusions_are_dropped() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let root = tmp.path().join("tree");
    let sibling = tmp.path().join("tree-sibling");
    fs::create_dir_all(root.join("skip"))?;
    fs::create_dir(&sibling)?;
    let Some(mut w) = watcher(&root, |p| p == Path::new("skip"))? else {
        return Ok(());
    };
    fs::write(sibling.join("f"), "x")?;
    fs::create_dir(sibling.join("d"))?;
    fs::write(root.join("skip/f"), "x")?;
    fs::create_dir_all(root.join("skip/a/b"))?;
    fs::write(root.join("skip/a/b/f"), "x")?;
    fs::write(root.join("marker"), "x")?;
    let mut seen = collect_until(&mut w, |ev| closed(ev, "marker"))?;
    seen.extend(drain(&mut w, Duration::from_millis(200))?);
    let unexpected: Vec<_> = seen
        .iter()
        .filter(|e| !matches!(e, WatchEvent::Create { path, .. } | WatchEvent::CloseWrite { path } | WatchEvent::Modify { path } if path == Path::new("marker")))
        .collect();
    assert!(unexpected.is_empty(), "{unexpected:#?}");
    Ok(())
}

#[test]
fn a_root_deleted_and_recreated_is_marked_again_and_rescanned() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let root = tmp.path().join("tree");
    fs::create_dir(&root)?;
    let Some(mut w) = watcher(&root, |_| false)? else {
        return Ok(());
    };
    fs::remove_dir(&root)?;
    let deadline = Instant::now() + PATIENCE;
    while w.is_watching() {
        assert!(Instant::now() < deadline, "the root's loss was not noticed");
        w.next_events_timeout(Duration::from_millis(50))?;
    }
    fs::create_dir(&root)?;
    collect_until(&mut w, |ev| {
        ev.contains(&WatchEvent::Rescan { path: p("") })
    })?;
    fs::write(root.join("after"), "x")?;
    collect_until(&mut w, |ev| closed(ev, "after"))?;
    Ok(())
}

#[test]
fn a_queue_overflow_is_a_rescan() -> TestResult {
    const SYSCTL: &str = "/proc/sys/fs/fanotify/max_queued_events";
    let tmp = tempfile::tempdir()?;
    let root = tmp.path().join("tree");
    fs::create_dir(&root)?;
    let w = {
        let _guard = INIT.write();
        let Ok(before) = fs::read_to_string(SYSCTL) else {
            skip(&format!("no {SYSCTL}"));
            return Ok(());
        };
        if fs::write(SYSCTL, "16").is_err() {
            skip(&format!("cannot lower {SYSCTL}"));
            return Ok(());
        }
        let w = FanWatcher::new(&root, all(), |_| false);
        fs::write(SYSCTL, before)?;
        w
    };
    let mut w = match w {
        Err(WatchError::Fanotify(why)) if std::env::var("CI").as_deref() != Ok("true") => {
            eprintln!("skipped: {why}");
            return Ok(());
        }
        other => other?,
    };
    for i in 0..200 {
        fs::write(root.join(format!("f{i}")), "x")?;
    }
    collect_until(&mut w, |ev| {
        ev.contains(&WatchEvent::Rescan { path: p("") })
    })?;
    assert!(w.counts().1 >= 1);
    Ok(())
}

#[test]
fn merged_create_and_delete_end_as_the_entry_is_now() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let root = tmp.path().join("tree");
    fs::create_dir(&root)?;
    let Some(mut w) = watcher(&root, |_| false)? else {
        return Ok(());
    };
    // Created and deleted before the watcher reads: gone, so the last word is delete.
    fs::write(root.join("brief"), "x")?;
    fs::remove_file(root.join("brief"))?;
    // Deleted and created again: there, so the last word is a creation.
    fs::write(root.join("again"), "1")?;
    fs::remove_file(root.join("again"))?;
    fs::write(root.join("again"), "2")?;
    let seen = collect_until(&mut w, |ev| closed(ev, "again"))?;
    let seen = [seen, drain(&mut w, Duration::from_millis(100))?].concat();
    let last_of = |name: &str| {
        seen.iter()
            .rev()
            .find(|e| format!("{e:?}").contains(&format!("\"{name}\"")))
            .cloned()
    };
    assert!(
        matches!(last_of("brief"), Some(WatchEvent::Delete { .. })),
        "{seen:#?}"
    );
    assert!(
        !matches!(last_of("again"), Some(WatchEvent::Delete { .. }) | None),
        "{seen:#?}"
    );
    Ok(())
}
