//! `syncctl verify` against live systems: the agent on the reference confxml.xml pushing
//! to stock rsyncd and to rsyncd-rs, and the same with the agent stopped.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use e2e::agent::{Agent, reference_confxml};
use e2e::{Daemon, Fixture, Server};

use crate::push::src_dir;

fn verify(conf: &Path, timeout: u64) -> std::process::Output {
    Command::new(e2e::syncctl_bin())
        .args([
            "verify",
            "--timeout",
            &timeout.to_string(),
            "--agent-config",
        ])
        .arg(conf)
        .output()
        .expect("run syncctl verify")
}

/// Nothing named `syncctl-verify-*` in `dir`.
fn nothing_left(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|r| {
        r.flatten().all(|e| {
            !e.file_name()
                .to_string_lossy()
                .starts_with("syncctl-verify-")
        })
    })
}

#[test]
fn verify_passes_against_a_live_agent_and_fails_without_one() {
    for kind in [Server::Stock, Server::Ours] {
        for deletes in [false, true] {
            let f = Fixture::seed();
            let src = src_dir(&f);
            std::fs::create_dir_all(&src).unwrap();
            let d = Daemon::start(kind, &f);
            let conf_text = reference_confxml(&f, &d, &src, deletes);
            let agent = Agent::start(&f, &conf_text, &[]);
            let conf = f.dir().join("confxml.xml");
            let out = verify(&conf, 20);
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success(),
                "{kind:?} deletes={deletes}: {text}{}\nagent:\n{}",
                String::from_utf8_lossy(&out.stderr),
                agent.log()
            );
            assert!(text.contains("every step reached every remote"), "{text}");
            let steps = if deletes { 4 } else { 3 };
            let oks = text.lines().filter(|l| l.contains(" ok ")).count();
            assert_eq!(oks, steps, "{text}");
            assert!(nothing_left(&src), "{kind:?}: left in the watched tree");
            // The agent pushes the local removal too (deletes on); verify removes it
            // either way.
            agent.wait_for(
                "nothing left on the server",
                Duration::from_secs(10),
                |_| nothing_left(&f.module_dir()),
            );

            // The agent stopped: a failure, within the timeout, and nothing left behind.
            agent.stop();
            let started = Instant::now();
            let out = verify(&conf, 2);
            assert_eq!(out.status.code(), Some(1), "{kind:?}: {out:?}");
            assert!(started.elapsed() < Duration::from_secs(15), "{kind:?}");
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(
                text.contains("FAILED") && text.contains("missing"),
                "{text}"
            );
            assert!(
                nothing_left(&src) && nothing_left(&f.module_dir()),
                "{kind:?}"
            );
        }
    }
}

/// `syncctl demo` (the README's first command): both programs started from the
/// reference files, verified, stopped, and nothing left, in under 30 s.
#[test]
fn the_demo_passes_and_leaves_nothing() {
    let started = Instant::now();
    let out = Command::new(e2e::syncctl_bin())
        .arg("demo")
        .output()
        .expect("run syncctl demo");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(started.elapsed() < Duration::from_secs(30));
    assert!(text.contains("every step reached every remote"), "{text}");
    let dir = text
        .split_whitespace()
        .find(|w| w.contains("syncctl-demo-"))
        .map(|w| w.trim_end_matches(':'))
        .expect("the demo names its directory");
    assert!(!Path::new(dir).exists(), "{dir} left behind");
}
