//! sersync-agent on big trees: 50,000 directories watched with inotify and with
//! fanotify, and 200,000 in fanotify mode with `fs.inotify.max_user_watches` set below
//! the tree's size. Changes land at random depths (new files, new deep directories,
//! renamed and deleted ones) and must all reach rsyncd-rs holding the reference
//! rsyncd.conf. One test at a time: they share the machine's watch limit.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use e2e::agent::{Agent, reference_confxml};
use e2e::{Daemon, Server, root_or_skip};

use crate::agent::fixture;
use crate::push::src_dir;

/// Big trees take their time: the catch-up mirror of a 50,000-directory tree included.
const WAIT: Duration = Duration::from_secs(120);

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// A small deterministic generator: the same choices on every run.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

/// Makes a tree of directories `fanout[0]` wide at the top, `fanout[1]` below each, and
/// so on; returns every directory, relative, by level.
fn make_tree(root: &Path, fanout: &[usize]) -> Vec<Vec<PathBuf>> {
    let mut levels: Vec<Vec<PathBuf>> = Vec::new();
    let mut parents = vec![PathBuf::new()];
    for &n in fanout {
        let mut level = Vec::with_capacity(parents.len() * n);
        for p in &parents {
            for i in 0..n {
                let d = p.join(format!("d{i}"));
                fs::create_dir(root.join(&d)).unwrap();
                level.push(d);
            }
        }
        levels.push(level.clone());
        parents = level;
    }
    levels
}

/// What the replica must hold once the agent caught up.
enum Expect {
    File(Vec<u8>),
    Gone,
}

/// Changes at random depths of `levels` (renamed leaves are updated in place); what
/// each should look like on the replica.
fn change(
    src: &Path,
    levels: &mut [Vec<PathBuf>],
    rng: &mut Rng,
    round: usize,
) -> Vec<(PathBuf, Expect)> {
    let mut expect = Vec::new();
    let leaves = levels.len() - 1;
    // Leaves to rename, chosen first so nothing else writes below them.
    let mut renamed = Vec::new();
    while renamed.len() < 5 {
        let i = rng.below(levels[leaves].len());
        if !renamed.contains(&i) {
            renamed.push(i);
        }
    }
    let pick = |rng: &mut Rng, levels: &[Vec<PathBuf>]| loop {
        let level = rng.below(levels.len());
        let i = rng.below(levels[level].len());
        if level != leaves || !renamed.contains(&i) {
            return levels[level][i].clone();
        }
    };
    for n in 0..200 {
        let rel = pick(rng, levels).join(format!("r{round}-{n}.txt"));
        let body = format!("round {round} file {n}\n").into_bytes();
        fs::write(src.join(&rel), &body).unwrap();
        // One in ten is deleted again at once.
        if n % 10 == 3 {
            fs::remove_file(src.join(&rel)).unwrap();
            expect.push((rel, Expect::Gone));
        } else {
            expect.push((rel, Expect::File(body)));
        }
    }
    for n in 0..10 {
        let deep = pick(rng, levels).join(format!("new{round}-{n}/a/b/c/d"));
        fs::create_dir_all(src.join(&deep)).unwrap();
        let rel = deep.join("bottom.txt");
        let body = format!("deep {round} {n}\n").into_bytes();
        fs::write(src.join(&rel), &body).unwrap();
        expect.push((rel, Expect::File(body)));
    }
    for &i in &renamed {
        let from = levels[leaves][i].clone();
        let to = from.with_file_name(format!(
            "{}-m{round}",
            from.file_name().unwrap().to_string_lossy()
        ));
        let body = format!("inside {}\n", to.display()).into_bytes();
        fs::write(src.join(&from).join("inside.txt"), &body).unwrap();
        fs::rename(src.join(&from), src.join(&to)).unwrap();
        expect.push((to.join("inside.txt"), Expect::File(body)));
        expect.push((from, Expect::Gone));
        levels[leaves][i] = to;
    }
    expect
}

fn missing(module: &Path, expect: &[(PathBuf, Expect)]) -> Vec<String> {
    expect
        .iter()
        .filter(|(rel, e)| match e {
            Expect::File(body) => fs::read(module.join(rel)).ok().as_ref() != Some(body),
            Expect::Gone => fs::symlink_metadata(module.join(rel)).is_ok(),
        })
        .map(|(rel, _)| rel.display().to_string())
        .collect()
}

fn converge(agent: &Agent, module: &Path, expect: &[(PathBuf, Expect)], what: &str) {
    let check = || missing(module, expect).is_empty();
    if !check() {
        agent.wait_for(what, WAIT, |_| check());
    }
}

fn watches(agent: &Agent) -> u64 {
    agent
        .status()
        .and_then(|s| s["watches"].as_u64())
        .unwrap_or(0)
}

#[test]
fn fifty_thousand_directories_in_both_modes_replicate_changes_at_random_depths() {
    if !root_or_skip("fanotify mode needs root") {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let f = fixture();
    let src = src_dir(&f);
    let mut levels = make_tree(&src, &[10, 10, 10, 50]);
    let dirs: usize = levels.iter().map(Vec::len).sum();
    assert_eq!(dirs, 51_110);
    let d = Daemon::start(Server::Ours, &f);
    let conf = reference_confxml(&f, &d, &src, true);
    let mut rng = Rng(50_000);
    for (round, mode) in ["inotify", "fanotify"].into_iter().enumerate() {
        let agent = Agent::start(&f, &conf, &["--watcher", mode]);
        let expect_watches = if mode == "inotify" {
            dirs as u64 + 1
        } else {
            1
        };
        agent.wait_for("the watch count", WAIT, |a| watches(a) == expect_watches);
        let expect = change(&src, &mut levels, &mut rng, round);
        converge(
            &agent,
            &f.module_dir(),
            &expect,
            &format!("{mode}: every change on the replica"),
        );
        if mode == "fanotify" {
            assert!(
                agent
                    .log()
                    .contains("watching the whole filesystem with fanotify")
            );
        }
        assert_eq!(agent.stop().map(|s| s.success()), Some(true), "{mode}");
    }
}

/// Restores `fs.inotify.max_user_watches` when dropped.
struct WatchLimit(String);

const MAX_USER_WATCHES: &str = "/proc/sys/fs/inotify/max_user_watches";

impl Drop for WatchLimit {
    fn drop(&mut self) {
        let _ = fs::write(MAX_USER_WATCHES, &self.0);
    }
}

#[test]
fn two_hundred_thousand_directories_in_fanotify_mode_need_no_inotify_watches() {
    if !root_or_skip("fanotify mode and lowering the inotify watch limit need root") {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let f = fixture();
    let src = src_dir(&f);
    let mut levels = make_tree(&src, &[20, 10, 10, 100]);
    let dirs: usize = levels.iter().map(Vec::len).sum();
    assert_eq!(dirs, 202_220);
    let before = fs::read_to_string(MAX_USER_WATCHES).unwrap();
    let _restore = WatchLimit(before);
    // Below the tree, and well above what the other tests running now need.
    fs::write(MAX_USER_WATCHES, "100000\n").unwrap();
    let d = Daemon::start(Server::Ours, &f);
    let conf = reference_confxml(&f, &d, &src, true);
    let agent = Agent::start(&f, &conf, &["--watcher", "fanotify"]);
    agent.wait_for("the watch count", WAIT, |a| watches(a) == 1);
    let mut rng = Rng(200_000);
    let expect = change(&src, &mut levels, &mut rng, 0);
    converge(
        &agent,
        &f.module_dir(),
        &expect,
        "every change on the replica",
    );
    // Nothing needed the inotify limit raised.
    assert_eq!(
        fs::read_to_string(MAX_USER_WATCHES).unwrap().trim(),
        "100000"
    );
    assert_eq!(agent.stop().map(|s| s.success()), Some(true));
    // In inotify mode the same tree runs into the limit, and the agent says to use
    // fanotify (as root it also raises the limit, restored by `_restore`).
    let agent = Agent::start(&f, &conf, &["--watcher", "inotify"]);
    agent.wait_for("the suggestion to use fanotify", WAIT, |a| {
        a.log().contains("better watched in fanotify mode")
    });
    drop(agent);
}

/// Fanotify mode run by a user without CAP_SYS_ADMIN stops at once and says why.
#[test]
fn fanotify_mode_without_root_says_what_is_missing() {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    use std::process::{Command, Stdio};
    if !root_or_skip("running the agent as nobody needs root") {
        return;
    }
    let f = fixture();
    let nobody = nix::unistd::User::from_name("nobody").unwrap().unwrap();
    // A directory nobody can reach (the fixture's is private to root).
    let dir = tempfile::Builder::new()
        .prefix("agent-nobody")
        .tempdir()
        .unwrap();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let own = |p: &Path| nix::unistd::chown(p, Some(nobody.uid), Some(nobody.gid)).unwrap();
    let watch = dir.path().join("watch");
    let state = dir.path().join("state");
    fs::create_dir(&watch).unwrap();
    fs::create_dir(&state).unwrap();
    own(&state);
    let password = dir.path().join("rsync.password");
    fs::copy(f.password_file(), &password).unwrap();
    fs::set_permissions(&password, fs::Permissions::from_mode(0o600)).unwrap();
    own(&password);
    let conf = dir.path().join("confxml.xml");
    let text = e2e::agent::reference_confxml_on(&f, 9, &watch, false)
        .replace(
            &f.password_file().display().to_string(),
            &password.display().to_string(),
        )
        .replace(
            &f.dir().join("rsync_fail_log.sh").display().to_string(),
            &dir.path().join("fail.sh").display().to_string(),
        );
    fs::write(&conf, text).unwrap();
    let mut child = Command::new(e2e::agent::agent_bin())
        .args(["--watcher", "fanotify", "-o"])
        .arg(&conf)
        .arg("--state-dir")
        .arg(&state)
        .uid(nobody.uid.as_raw())
        .gid(nobody.gid.as_raw())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("the agent ran in fanotify mode without root");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert!(!status.success(), "{err}");
    assert!(err.contains("fanotify mode needs root"), "{err}");
}
