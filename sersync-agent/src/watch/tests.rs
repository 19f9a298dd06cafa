//! The watcher against a real filesystem: every wait has a deadline, no sleep assumes
//! how fast the kernel or the watcher is.

use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::RwLock;
use std::time::{Duration, Instant};

use super::*;

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// Held for reading while a watcher is created, for writing while the overflow test
/// has `max_queued_events` lowered (the kernel reads it when an instance is created).
static INIT: RwLock<()> = RwLock::new(());

/// Generous: only reached when a test fails.
pub(super) const PATIENCE: Duration = Duration::from_secs(5);

fn watcher(root: &Path) -> Result<Watcher, WatchError> {
    watcher_excluding(root, |_| false)
}

fn watcher_excluding(
    root: &Path,
    excluded: impl Fn(&Path) -> bool + Send + 'static,
) -> Result<Watcher, WatchError> {
    let _guard = INIT.read();
    Watcher::new(root, excluded)
}

/// Collects events until `done` says so, or fails after [`PATIENCE`] (either watcher).
pub(super) fn collect_until(
    w: &mut impl EventSource,
    mut done: impl FnMut(&[WatchEvent]) -> bool,
) -> Result<Vec<WatchEvent>, String> {
    let deadline = Instant::now() + PATIENCE;
    let mut seen = Vec::new();
    while !done(&seen) {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!("gave up waiting; saw {seen:#?}"));
        }
        let batch = w
            .next_events_timeout(left.min(Duration::from_millis(100)))
            .map_err(|e| e.to_string())?;
        seen.extend(batch);
    }
    Ok(seen)
}

/// Whether the file at `path` was reported written or found.
fn has_file(events: &[WatchEvent], path: &Path) -> bool {
    events.iter().any(|e| match e {
        WatchEvent::CloseWrite { path: p } | WatchEvent::Found { path: p, .. } => p == path,
        _ => false,
    })
}

fn mentions(events: &[WatchEvent], path: &Path) -> bool {
    events
        .iter()
        .any(|e| format!("{e:?}").contains(&*path.to_string_lossy()))
}

fn rescan_of(events: &[WatchEvent], path: &Path) -> bool {
    events
        .iter()
        .any(|e| matches!(e, WatchEvent::Rescan { path: p } if p == path))
}

#[test]
fn every_file_in_quickly_made_nested_dirs_arrives() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let mut w = watcher(tmp.path())?;
    let files: Vec<PathBuf> = (0..50)
        .map(|i| PathBuf::from(format!("d{i}/a/b/c/f")))
        .collect();
    for f in &files {
        let abs = tmp.path().join(f);
        if let Some(parent) = abs.parent() {
            fs::create_dir_all(parent)?;
        }
        fs::write(abs, "x\n")?;
    }
    collect_until(&mut w, |seen| files.iter().all(|f| has_file(seen, f)))?;
    assert_eq!(w.watch_count(), 1 + 50 * 4);
    Ok(())
}

#[test]
fn a_directory_renamed_inside_the_tree_reports_its_new_path() -> TestResult {
    let tmp = tempfile::tempdir()?;
    fs::create_dir_all(tmp.path().join("d/sub"))?;
    let mut w = watcher(tmp.path())?;
    fs::rename(tmp.path().join("d"), tmp.path().join("e"))?;
    fs::write(tmp.path().join("e/f"), "x")?;
    fs::write(tmp.path().join("e/sub/g"), "x")?;
    let seen = collect_until(&mut w, |s| {
        has_file(s, Path::new("e/f")) && has_file(s, Path::new("e/sub/g"))
    })?;
    assert!(!mentions(&seen, Path::new("d/")), "{seen:#?}");
    assert_eq!(w.watch_count(), 3);
    Ok(())
}

#[test]
fn a_directory_moved_out_loses_its_watches() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let outside = tempfile::tempdir()?;
    fs::create_dir_all(tmp.path().join("d/sub"))?;
    let mut w = watcher(tmp.path())?;
    fs::rename(tmp.path().join("d"), outside.path().join("d"))?;
    let seen = collect_until(&mut w, |s| {
        s.iter()
            .any(|e| matches!(e, WatchEvent::MovedFrom { is_dir: true, .. }))
    })?;
    assert_eq!(seen.len(), 1, "{seen:#?}");
    // Past the pairing window the watches go.
    wait_for(&mut w, |w| w.watch_count() == 1)?;
    fs::write(outside.path().join("d/sub/f"), "x")?;
    fs::write(tmp.path().join("marker"), "x")?;
    let seen = collect_until(&mut w, |s| has_file(s, Path::new("marker")))?;
    assert!(!mentions(&seen, Path::new("sub")), "{seen:#?}");
    Ok(())
}

/// A directory moved out and made again under the same name before the watcher read
/// either event: the new one stays watched once the old one's pairing window ends.
#[test]
fn a_directory_moved_out_and_made_again_at_once_stays_watched() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let outside = tempfile::tempdir()?;
    fs::create_dir_all(tmp.path().join("d/sub"))?;
    let mut w = watcher(tmp.path())?;
    fs::rename(tmp.path().join("d"), outside.path().join("d"))?;
    fs::create_dir(tmp.path().join("d"))?;
    collect_until(&mut w, |s| {
        s.iter()
            .any(|e| matches!(e, WatchEvent::Create { is_dir: true, .. }))
    })?;
    // Past the pairing window of the directory that left.
    let until = Instant::now() + MOVE_PAIR_WINDOW * 3;
    while Instant::now() < until {
        w.next_events_timeout(Duration::from_millis(5))?;
    }
    fs::write(tmp.path().join("d/after"), "x")?;
    fs::write(outside.path().join("d/sub/gone"), "x")?;
    let seen = collect_until(&mut w, |s| has_file(s, Path::new("d/after")))?;
    assert!(!mentions(&seen, Path::new("sub")), "{seen:#?}");
    assert_eq!(w.watch_count(), 2, "{w:?}");
    Ok(())
}

/// Runs the watcher until `cond` holds of it, or fails after [`PATIENCE`].
fn wait_for(w: &mut Watcher, cond: impl Fn(&Watcher) -> bool) -> Result<(), String> {
    let deadline = Instant::now() + PATIENCE;
    while !cond(w) {
        if Instant::now() > deadline {
            return Err(format!("gave up waiting on {w:?}"));
        }
        w.next_events_timeout(Duration::from_millis(20))
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

#[test]
fn a_directory_moved_in_is_listed_and_watched() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let outside = tempfile::tempdir()?;
    fs::create_dir_all(outside.path().join("d/sub"))?;
    fs::write(outside.path().join("d/sub/old"), "x")?;
    let mut w = watcher(tmp.path())?;
    fs::rename(outside.path().join("d"), tmp.path().join("d"))?;
    let seen = collect_until(&mut w, |s| has_file(s, Path::new("d/sub/old")))?;
    let moved_in = |e: &WatchEvent| matches!(e, WatchEvent::MovedTo { path, is_dir: true, .. } if path == Path::new("d"));
    assert!(seen.iter().any(moved_in), "{seen:#?}");
    fs::write(tmp.path().join("d/sub/new"), "x")?;
    collect_until(&mut w, |s| has_file(s, Path::new("d/sub/new")))?;
    assert_eq!(w.watch_count(), 3);
    Ok(())
}

#[test]
fn an_overflow_resync_forgets_directories_gone_meanwhile() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let outside = tempfile::tempdir()?;
    fs::create_dir_all(tmp.path().join("d/sub"))?;
    let mut w = watcher(tmp.path())?;
    // Moved away and renamed inside with the events never read, as in an overflow.
    fs::rename(tmp.path().join("d"), outside.path().join("d"))?;
    fs::create_dir_all(tmp.path().join("e/sub"))?;
    let mut out = Vec::new();
    w.resync(&mut out);
    assert_eq!(
        out,
        [WatchEvent::Rescan {
            path: PathBuf::new()
        }]
    );
    assert_eq!(w.watch_count(), 3);
    assert!(w.map.wd_of(Path::new("d")).is_none());
    Ok(())
}

#[test]
fn names_with_newlines_and_invalid_utf8_survive() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let mut w = watcher(tmp.path())?;
    let dir = PathBuf::from(OsStr::from_bytes(b"new\nline dir"));
    let file = dir.join(OsStr::from_bytes(b"bad \xff\xfe utf8\n"));
    fs::create_dir(tmp.path().join(&dir))?;
    fs::write(tmp.path().join(&file), "x")?;
    collect_until(&mut w, |s| has_file(s, &file))?;
    Ok(())
}

#[test]
fn a_symlink_is_created_complete() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let mut w = watcher(tmp.path())?;
    std::os::unix::fs::symlink("target", tmp.path().join("link"))?;
    fs::write(tmp.path().join("plain"), "x")?;
    let seen = collect_until(&mut w, |s| has_file(s, Path::new("plain")))?;
    assert!(seen.contains(&WatchEvent::CreateComplete {
        path: PathBuf::from("link")
    }));
    assert!(seen.contains(&WatchEvent::Create {
        path: PathBuf::from("plain"),
        is_dir: false
    }));
    Ok(())
}

#[test]
fn excluded_directories_are_not_watched() -> TestResult {
    let tmp = tempfile::tempdir()?;
    fs::create_dir_all(tmp.path().join("skip/deep"))?;
    fs::create_dir(tmp.path().join("keep"))?;
    let mut w = watcher_excluding(tmp.path(), |p| p.starts_with("skip"))?;
    assert_eq!(w.watch_count(), 2);
    fs::write(tmp.path().join("skip/deep/f"), "x")?;
    fs::write(tmp.path().join("keep/f"), "x")?;
    let seen = collect_until(&mut w, |s| has_file(s, Path::new("keep/f")))?;
    assert!(!mentions(&seen, Path::new("skip")), "{seen:#?}");
    Ok(())
}

#[test]
fn an_overflow_flag_means_rescan_the_root() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let mut w = watcher(tmp.path())?;
    let wd = w.map.wd_of(Path::new("")).cloned().ok_or("no root watch")?;
    let mut out = Vec::new();
    let raw = RawEvent {
        wd,
        mask: EventMask::Q_OVERFLOW,
        cookie: 0,
        name: None,
    };
    w.handle(raw, Instant::now(), &mut out);
    assert_eq!(w.overflows, 1, "counted for status");
    assert_eq!(
        out,
        vec![WatchEvent::Rescan {
            path: PathBuf::new()
        }]
    );
    Ok(())
}

/// A true overflow: the queue made tiny for this one instance. Needs root, as it
/// lowers `fs.inotify.max_queued_events` for the moment the instance is created.
#[test]
fn a_real_overflow_is_reported_as_a_rescan() -> TestResult {
    const KNOB: &str = "/proc/sys/fs/inotify/max_queued_events";
    if !nix::unistd::geteuid().is_root() {
        return Ok(());
    }
    let tmp = tempfile::tempdir()?;
    let mut w = {
        let _guard = INIT.write();
        let saved = fs::read_to_string(KNOB)?;
        fs::write(KNOB, "16\n")?;
        let w = Watcher::new(tmp.path(), |_| false);
        fs::write(KNOB, saved)?;
        w?
    };
    for i in 0..64 {
        fs::write(tmp.path().join(format!("f{i}")), "x")?;
    }
    let seen = collect_until(&mut w, |s| rescan_of(s, Path::new("")))?;
    assert!(seen.len() <= 17, "{} events from a queue of 16", seen.len());
    // Still watching after the overflow.
    fs::write(tmp.path().join("after"), "x")?;
    collect_until(&mut w, |s| has_file(s, Path::new("after")))?;
    Ok(())
}

#[test]
fn a_root_deleted_and_recreated_is_rescanned() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let root = tmp.path().join("root");
    fs::create_dir_all(root.join("sub"))?;
    let mut w = watcher(&root)?;
    w.root_poll_every = Duration::from_millis(20);
    fs::remove_dir_all(&root)?;
    collect_until(&mut w, |s| {
        s.iter()
            .any(|e| matches!(e, WatchEvent::Delete { path, .. } if path == Path::new("sub")))
    })?;
    // The DELETE_SELF may be read in a later batch: wait for the watcher to give up.
    wait_for(&mut w, |w| w.root_state != RootState::Watched)?;
    fs::create_dir_all(root.join("new"))?;
    collect_until(&mut w, |s| rescan_of(s, Path::new("")))?;
    fs::write(root.join("new/f"), "x")?;
    collect_until(&mut w, |s| has_file(s, Path::new("new/f")))?;
    Ok(())
}

#[test]
fn out_of_watches_as_root_raises_the_limit_and_retries() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let knob = tempfile::NamedTempFile::new()?;
    fs::write(knob.path(), "100\n")?;
    let mut w = watcher(tmp.path())?;
    w.limit = WatchLimit {
        file: knob.path().to_path_buf(),
        may_raise: true,
    };
    w.refuse_watches = 1;
    fs::create_dir(tmp.path().join("d"))?;
    fs::write(tmp.path().join("d/f"), "x")?;
    collect_until(&mut w, |s| has_file(s, Path::new("d/f")))?;
    assert_eq!(fs::read_to_string(knob.path())?, "200\n");
    assert_eq!(w.watch_count(), 2);
    Ok(())
}

#[test]
fn out_of_watches_otherwise_heals_later_with_a_rescan() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let knob = tempfile::NamedTempFile::new()?;
    fs::write(knob.path(), "100\n")?;
    let mut w = watcher(tmp.path())?;
    w.limit = WatchLimit {
        file: knob.path().to_path_buf(),
        may_raise: false,
    };
    w.heal_every = Duration::from_millis(20);
    w.refuse_watches = 1;
    fs::create_dir(tmp.path().join("d"))?;
    collect_until(&mut w, |s| rescan_of(s, Path::new("d")))?;
    assert_eq!(fs::read_to_string(knob.path())?, "100\n");
    fs::write(tmp.path().join("d/g"), "x")?;
    collect_until(&mut w, |s| has_file(s, Path::new("d/g")))?;
    Ok(())
}

#[tokio::test]
async fn the_spawned_watcher_feeds_a_channel_until_dropped() -> TestResult {
    let tmp = tempfile::tempdir()?;
    let WatchThread {
        mut events,
        stats,
        thread,
    } = watcher(tmp.path())?.spawn()?;
    fs::write(tmp.path().join("f"), "x")?;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let ev = tokio::time::timeout_at(deadline, events.recv()).await?;
        if ev
            == Some(WatchEvent::CloseWrite {
                path: PathBuf::from("f"),
            })
        {
            break;
        }
        if ev.is_none() {
            return Err("the watcher thread ended".into());
        }
    }
    // Counted once the thread has read its first batch.
    assert_eq!(
        stats.watches.load(std::sync::atomic::Ordering::Relaxed),
        1,
        "the root's watch, for status"
    );
    drop(events);
    let ended = tokio::task::spawn_blocking(move || thread.join()).await?;
    assert!(matches!(ended, Ok(Ok(()))));
    Ok(())
}
