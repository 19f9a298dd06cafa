//! The reference push and a delta re-push from older clients, rsync 3.2.7 and 3.1.2 (see
//! `e2e::old_client` for where they are found; skipped when missing, but under `CI=true`):
//! the same commands against stock `rsync --daemon` and rsyncd-rs, compared as in `push`.

use e2e::tree::Compare;
use e2e::{Rsync, old_client_or_skip};

use crate::push::{assert_same_pushes, literal_data, push_twice, reference_push};

/// The reference push, then after the changes (which include a 4 KiB change inside a
/// 100 KiB random file) the reference push again with `-i --stats`: the itemized list and
/// the literal and matched data the old client counts must agree.
fn reference_and_delta_push(version: &str) {
    let Some(bin) = old_client_or_skip(version) else {
        return;
    };
    let runs = push_twice(
        |_| {},
        |d, f| reference_push(Rsync::with_binary(bin.clone()), d, f, &[]),
        |d, f| reference_push(Rsync::with_binary(bin.clone()), d, f, &["-i", "--stats"]),
    );
    assert_same_pushes(&runs, Compare::ALL);
    for r in &runs {
        let literal = literal_data(&r.steps[1].outcome.stdout);
        assert!(literal < 64 * 1024, "{:?}: literal data {literal}", r.kind);
    }
}

#[test]
fn rsync_3_2_7_reference_push_and_delta_re_push() {
    reference_and_delta_push("3.2.7");
}

#[test]
fn rsync_3_1_2_reference_push_and_delta_re_push() {
    reference_and_delta_push("3.1.2");
}
