use super::*;

fn push(p: &str) -> Op {
    Op::Push {
        path: p.into(),
        recursive: false,
    }
}

fn ops(q: &Queue) -> Vec<Op> {
    q.take(usize::MAX).into_iter().map(|t| t.op).collect()
}

fn open(dir: &Path, deletes: bool) -> Queue {
    Queue::open(&dir.join("q"), deletes, 1000).unwrap()
}

#[test]
fn a_path_changed_a_thousand_times_is_one_entry_and_a_change_during_its_session_stays() {
    let d = tempfile::tempdir().unwrap();
    let mut q = open(d.path(), true);
    for _ in 0..1000 {
        q.add(push("f")).unwrap();
    }
    assert_eq!(q.len(), 1);
    let taken = q.take(10);
    q.add(push("f")).unwrap();
    q.done(&taken).unwrap();
    assert_eq!(q.len(), 1, "changed while pushed: still pending");
    let again = q.take(10);
    q.done(&again).unwrap();
    assert!(q.is_empty());
}

#[test]
fn what_was_pending_survives_a_restart_and_acknowledged_work_does_not() {
    let d = tempfile::tempdir().unwrap();
    let mut q = open(d.path(), true);
    for p in ["a", "b", "c"] {
        q.add(push(p)).unwrap();
    }
    q.add(Op::Delete {
        path: "gone".into(),
    })
    .unwrap();
    q.sync().unwrap();
    let taken: Vec<Taken> = q
        .take(usize::MAX)
        .into_iter()
        .filter(|t| {
            t.op == Op::Push {
                path: "b".into(),
                recursive: true,
            }
        })
        .collect();
    q.done(&taken).unwrap();
    drop(q);
    let q = open(d.path(), true);
    assert_eq!(
        ops(&q),
        vec![
            Op::Push {
                path: "a".into(),
                recursive: true
            },
            Op::Push {
                path: "c".into(),
                recursive: true
            },
            Op::Delete {
                path: "gone".into()
            },
        ]
    );
    // New numbers continue after the replayed ones: an old acknowledgement cannot
    // remove a new change.
    let mut q = q;
    q.add(push("d")).unwrap();
    let seqs: std::collections::BTreeSet<u64> = q.take(usize::MAX).iter().map(|t| t.seq).collect();
    assert_eq!(seqs.len(), 4);
}

#[test]
fn deletes_replace_pushes_below_them_and_a_recreated_path_is_pushed() {
    let d = tempfile::tempdir().unwrap();
    let mut q = open(d.path(), true);
    q.add(push("dir/a")).unwrap();
    q.add(push("dir/sub/b")).unwrap();
    q.add(push("dirx")).unwrap();
    q.add(Op::Delete { path: "dir".into() }).unwrap();
    assert_eq!(
        ops(&q),
        vec![
            Op::Delete { path: "dir".into() },
            Op::Push {
                path: "dirx".into(),
                recursive: true
            }
        ]
    );
    q.add(push("dir")).unwrap();
    assert_eq!(
        ops(&q)[0],
        Op::Push {
            path: "dir".into(),
            recursive: true
        }
    );
}

#[test]
fn with_deletes_off_a_rename_is_a_push_and_a_delete_nothing() {
    let d = tempfile::tempdir().unwrap();
    let mut q = open(d.path(), false);
    q.add(Op::Delete { path: "x".into() }).unwrap();
    q.add(Op::Rename {
        from: "a".into(),
        to: "b".into(),
    })
    .unwrap();
    assert_eq!(
        ops(&q),
        vec![Op::Push {
            path: "b".into(),
            recursive: true
        }]
    );
}

#[test]
fn renames_carry_their_basis_through_a_second_rename() {
    let d = tempfile::tempdir().unwrap();
    let mut q = open(d.path(), true);
    q.add(push("a/f")).unwrap();
    q.add(Op::Rename {
        from: "a".into(),
        to: "b".into(),
    })
    .unwrap();
    assert_eq!(
        ops(&q),
        vec![Op::Rename {
            from: "a".into(),
            to: "b".into()
        }]
    );
    q.add(Op::Rename {
        from: "b".into(),
        to: "c".into(),
    })
    .unwrap();
    assert_eq!(
        ops(&q),
        vec![
            Op::Delete { path: "b".into() },
            Op::Rename {
                from: "a".into(),
                to: "c".into()
            },
        ]
    );
    // Replayed the same.
    q.sync().unwrap();
    drop(q);
    let q = open(d.path(), true);
    assert_eq!(
        ops(&q),
        vec![
            Op::Delete { path: "b".into() },
            Op::Rename {
                from: "a".into(),
                to: "c".into()
            },
        ]
    );
}

#[test]
fn a_long_outage_folds_pushes_into_their_top_directories_then_the_root() {
    let d = tempfile::tempdir().unwrap();
    let mut q = Queue::open(&d.path().join("q"), true, 100).unwrap();
    for i in 0..150 {
        q.add(push(&format!("top{}/f{i}", i % 3))).unwrap();
    }
    q.add(Op::Delete { path: "old".into() }).unwrap();
    assert!(q.len() <= 100, "{}", q.len());
    let o = ops(&q);
    assert!(
        o.contains(&Op::Push {
            path: "top0".into(),
            recursive: true
        }),
        "{o:?}"
    );
    assert!(o.contains(&Op::Delete { path: "old".into() }), "{o:?}");
    for i in 0..200 {
        q.add(push(&format!("many{i}"))).unwrap();
    }
    assert!(q.len() <= 100);
    assert!(ops(&q).contains(&Op::Push {
        path: "".into(),
        recursive: true
    }));
    // The folded state is what a restart sees.
    q.sync().unwrap();
    let before = ops(&q);
    drop(q);
    let q = Queue::open(&d.path().join("q"), true, 100).unwrap();
    assert_eq!(ops(&q), before);
}

#[test]
fn a_mirror_stays_a_mirror_through_pushes_and_a_restart() {
    let d = tempfile::tempdir().unwrap();
    let mut q = open(d.path(), true);
    q.add(Op::Mirror).unwrap();
    q.add(push("")).unwrap();
    q.add(push("a")).unwrap();
    assert_eq!(ops(&q)[0], Op::Mirror);
    q.sync().unwrap();
    drop(q);
    let mut q = open(d.path(), true);
    assert_eq!(ops(&q)[0], Op::Mirror);
    let taken = q.take(10);
    q.done(&taken).unwrap();
    assert!(q.is_empty());
}
