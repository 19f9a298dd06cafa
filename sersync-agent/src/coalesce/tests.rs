//! Events in, operations out, with time as values: no sleeps, no filesystem.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::*;

/// sersync's reference confxml: createFolder, closeWrite, moveFrom, moveTo on.
const REFERENCE: EventSwitches = EventSwitches {
    delete: false,
    create_folder: true,
    create_file: false,
    close_write: true,
    move_from: true,
    move_to: true,
    attrib: false,
    modify: false,
};

const ALL: EventSwitches = EventSwitches {
    delete: true,
    create_folder: true,
    create_file: true,
    close_write: true,
    move_from: true,
    move_to: true,
    attrib: true,
    modify: true,
};

const NONE: EventSwitches = EventSwitches {
    delete: false,
    create_folder: false,
    create_file: false,
    close_write: false,
    move_from: false,
    move_to: false,
    attrib: false,
    modify: false,
};

/// One step of a case: an event seen at a time, or a tick, in milliseconds.
enum Step {
    At(u64, WatchEvent),
    Tick(u64),
}
use Step::{At, Tick};

fn t(ms: u64) -> Instant {
    static BASE: OnceLock<Instant> = OnceLock::new();
    *BASE.get_or_init(Instant::now) + Duration::from_millis(ms)
}

fn run(switches: EventSwitches, steps: Vec<Step>) -> Vec<Op> {
    run_excluding(switches, |_| false, steps)
}

fn run_excluding(
    switches: EventSwitches,
    excluded: impl Fn(&Path) -> bool + Send + 'static,
    steps: Vec<Step>,
) -> Vec<Op> {
    let mut c = Coalescer::new(switches, Box::new(excluded));
    let mut ops = Vec::new();
    for step in steps {
        match step {
            At(ms, ev) => ops.extend(c.feed(ev, t(ms))),
            Tick(ms) => ops.extend(c.tick(t(ms))),
        }
    }
    ops
}

fn p(s: &str) -> PathBuf {
    PathBuf::from(s)
}
fn close_write(s: &str) -> WatchEvent {
    WatchEvent::CloseWrite { path: p(s) }
}
fn create(s: &str, is_dir: bool) -> WatchEvent {
    WatchEvent::Create { path: p(s), is_dir }
}
fn moved_from(s: &str, cookie: u32) -> WatchEvent {
    WatchEvent::MovedFrom {
        path: p(s),
        cookie,
        is_dir: false,
    }
}
fn moved_to(s: &str, cookie: u32) -> WatchEvent {
    WatchEvent::MovedTo {
        path: p(s),
        cookie,
        is_dir: false,
    }
}
fn push(s: &str) -> Op {
    Op::Push {
        path: p(s),
        recursive: false,
    }
}
fn push_tree(s: &str) -> Op {
    Op::Push {
        path: p(s),
        recursive: true,
    }
}
fn delete(s: &str) -> Op {
    Op::Delete { path: p(s) }
}
fn rename(from: &str, to: &str) -> Op {
    Op::Rename {
        from: p(from),
        to: p(to),
    }
}

#[test]
fn close_write_pushes_the_file() {
    assert_eq!(
        run(REFERENCE, vec![At(0, close_write("a/f"))]),
        [push("a/f")]
    );
    let off = EventSwitches {
        close_write: false,
        ..REFERENCE
    };
    assert_eq!(run(off, vec![At(0, close_write("a/f"))]), []);
}

#[test]
fn create_folder_pushes_the_directory_recursively() {
    assert_eq!(
        run(REFERENCE, vec![At(0, create("d", true))]),
        [push_tree("d")]
    );
    let off = EventSwitches {
        create_folder: false,
        ..REFERENCE
    };
    assert_eq!(run(off, vec![At(0, create("d", true))]), []);
}

#[test]
fn a_created_file_waits_for_its_close_write_unless_create_file() {
    let steps = || vec![At(0, create("f", false)), At(1, close_write("f"))];
    assert_eq!(run(REFERENCE, steps()), [push("f")]);
    let on = EventSwitches {
        create_file: true,
        ..REFERENCE
    };
    assert_eq!(run(on, steps()), [push("f"), push("f")]);
}

#[test]
fn a_symlink_or_fifo_is_pushed_with_either_create_switch() {
    let link = || vec![At(0, WatchEvent::CreateComplete { path: p("link") })];
    assert_eq!(run(REFERENCE, link()), [push("link")]);
    let file_only = EventSwitches {
        create_folder: false,
        create_file: true,
        ..REFERENCE
    };
    assert_eq!(run(file_only, link()), [push("link")]);
    let neither = EventSwitches {
        create_folder: false,
        ..REFERENCE
    };
    assert_eq!(run(neither, link()), []);
}

#[test]
fn attrib_pushes_only_when_on() {
    let ev = || {
        vec![At(
            0,
            WatchEvent::Attrib {
                path: p("d"),
                is_dir: true,
            },
        )]
    };
    assert_eq!(run(REFERENCE, ev()), []);
    let on = EventSwitches {
        attrib: true,
        ..REFERENCE
    };
    assert_eq!(run(on, ev()), [push("d")]);
}

#[test]
fn modify_pushes_only_when_on() {
    let ev = || vec![At(0, WatchEvent::Modify { path: p("f") })];
    assert_eq!(run(REFERENCE, ev()), []);
    let on = EventSwitches {
        modify: true,
        ..REFERENCE
    };
    assert_eq!(run(on, ev()), [push("f")]);
}

#[test]
fn delete_removes_only_when_on() {
    let ev = || {
        vec![At(
            0,
            WatchEvent::Delete {
                path: p("f"),
                is_dir: false,
            },
        )]
    };
    assert_eq!(run(REFERENCE, ev()), []);
    let on = EventSwitches {
        delete: true,
        ..REFERENCE
    };
    assert_eq!(run(on, ev()), [delete("f")]);
}

#[test]
fn found_entries_are_pushed_one_by_one_whatever_the_switches() {
    let found = |s: &str, is_dir| WatchEvent::Found { path: p(s), is_dir };
    let steps = vec![At(0, found("d/e", true)), At(0, found("d/e/f", false))];
    assert_eq!(run(NONE, steps), [push("d/e"), push("d/e/f")]);
}

#[test]
fn rescan_pushes_the_subtree() {
    let steps = vec![
        At(0, WatchEvent::Rescan { path: p("") }),
        At(0, WatchEvent::Rescan { path: p("d") }),
    ];
    assert_eq!(run(NONE, steps), [push_tree(""), push_tree("d")]);
}

#[test]
fn a_move_pair_is_a_rename() {
    let steps = || vec![At(0, moved_from("a", 7)), At(0, moved_to("b", 7))];
    assert_eq!(run(REFERENCE, steps()), [rename("a", "b")]);
    let to_only = EventSwitches {
        move_from: false,
        ..ALL
    };
    assert_eq!(run(to_only, steps()), [push("b")]);
    let from_only = EventSwitches {
        move_to: false,
        ..ALL
    };
    assert_eq!(run(from_only, steps()), [delete("a")]);
    assert_eq!(run(NONE, steps()), []);
}

#[test]
fn a_directory_pair_renamed_or_moved_in_is_pushed_whole() {
    let dir_to = WatchEvent::MovedTo {
        path: p("d2"),
        cookie: 9,
        is_dir: true,
    };
    let to_only = EventSwitches {
        move_from: false,
        ..REFERENCE
    };
    let steps = vec![At(0, moved_from("d1", 9)), At(0, dir_to.clone())];
    assert_eq!(run(to_only, steps), [push_tree("d2")]);
    assert_eq!(run(REFERENCE, vec![At(0, dir_to)]), [push_tree("d2")]);
}

#[test]
fn a_move_in_is_a_push() {
    assert_eq!(
        run(REFERENCE, vec![At(0, moved_to("new", 3))]),
        [push("new")]
    );
    let off = EventSwitches {
        move_to: false,
        ..REFERENCE
    };
    assert_eq!(run(off, vec![At(0, moved_to("new", 3))]), []);
}

#[test]
fn an_unpaired_move_from_expires_into_a_delete() {
    let on = EventSwitches {
        delete: true,
        ..REFERENCE
    };
    let mut c = Coalescer::new(on, Box::new(|_| false));
    assert_eq!(c.feed(moved_from("gone", 1), t(0)), []);
    assert_eq!(c.next_deadline(), Some(t(0) + MOVE_PAIR_WINDOW));
    assert_eq!(c.tick(t(5)), []);
    assert_eq!(c.tick(t(10)), [delete("gone")]);
    assert_eq!(c.next_deadline(), None);
    // With deletes off a move out is nothing at all.
    let steps = vec![At(0, moved_from("gone", 1)), Tick(10)];
    assert_eq!(run(REFERENCE, steps), []);
}

#[test]
fn a_late_move_to_still_pairs_if_not_expired_yet() {
    let steps = vec![At(0, moved_from("a", 4)), At(50, moved_to("b", 4))];
    assert_eq!(run(ALL, steps), [rename("a", "b")]);
}

#[test]
fn an_expired_move_comes_before_the_event_that_expired_it() {
    let steps = vec![At(0, moved_from("a", 4)), At(20, close_write("b"))];
    assert_eq!(run(ALL, steps), [delete("a"), push("b")]);
}

#[test]
fn temporary_files_are_never_pushed() {
    let mut steps = Vec::new();
    for name in [".f.Xa9fQ2", ".f.swp", "4913", "f~", "#f#", ".#f"] {
        steps.push(At(0, create(name, false)));
        steps.push(At(0, WatchEvent::Modify { path: p(name) }));
        steps.push(At(0, close_write(name)));
        steps.push(At(
            0,
            WatchEvent::Delete {
                path: p(name),
                is_dir: false,
            },
        ));
    }
    assert_eq!(run(ALL, steps), []);
}

#[test]
fn an_editor_save_renaming_a_temp_file_onto_its_name_pushes_it() {
    for temp in [".f.Xa9fQ2", ".f.swp", "f~", "f___jb_tmp___"] {
        let steps = || vec![At(0, moved_from(temp, 5)), At(0, moved_to("f", 5))];
        assert_eq!(run(REFERENCE, steps()), [push("f")], "{temp}");
        let moves_off = EventSwitches {
            move_from: false,
            move_to: false,
            ..REFERENCE
        };
        assert_eq!(run(moves_off, steps()), [push("f")], "{temp}");
    }
}

#[test]
fn renaming_onto_a_temp_name_is_a_removal() {
    // vim without backupcopy: f -> f~, then a new f is written.
    let steps = || {
        vec![
            At(0, moved_from("f", 6)),
            At(0, moved_to("f~", 6)),
            At(1, close_write("f")),
        ]
    };
    assert_eq!(run(ALL, steps()), [delete("f"), push("f")]);
    assert_eq!(run(REFERENCE, steps()), [push("f")]);
}

#[test]
fn excluded_paths_and_everything_below_them_are_dropped() {
    let excluded = |path: &Path| path == Path::new("cache") || path == Path::new("a/tmp");
    let steps = vec![
        At(0, close_write("cache")),
        At(0, close_write("cache/x/y")),
        At(0, WatchEvent::Rescan { path: p("a/tmp") }),
        At(0, close_write("cached")),
        At(0, close_write("a/tmpfile")),
        At(0, moved_from("cache/built", 1)),
        At(0, moved_to("built", 1)),
        At(0, moved_from("kept", 2)),
        At(0, moved_to("a/tmp/kept", 2)),
    ];
    assert_eq!(
        run_excluding(ALL, excluded, steps),
        [
            push("cached"),
            push("a/tmpfile"),
            push("built"),
            delete("kept")
        ]
    );
}

#[test]
fn one_batch_collapses_what_is_trivially_redundant() {
    let on = ALL;
    let mut c = Coalescer::new(on, Box::new(|_| false));
    let ops = c.feed_all(
        [
            create("d", true),
            WatchEvent::Found {
                path: p("d"),
                is_dir: true,
            },
            create("d/f", false),
            WatchEvent::Modify { path: p("d/f") },
            close_write("d/f"),
            WatchEvent::Delete {
                path: p("d/f"),
                is_dir: false,
            },
            WatchEvent::Delete {
                path: p("d/f"),
                is_dir: false,
            },
            close_write("d/f"),
        ],
        t(0),
    );
    assert_eq!(
        ops,
        [push_tree("d"), push("d/f"), delete("d/f"), push("d/f")]
    );
}

#[test]
fn no_deduplication_across_calls() {
    let steps = vec![At(0, close_write("f")), At(1, close_write("f"))];
    assert_eq!(run(REFERENCE, steps), [push("f"), push("f")]);
}
