//! `syncctl verify`: the reference deployment's hand test, automated. In a fresh directory
//! inside the watched tree: five files and three directories, content written into one
//! file, one modification, and (deletes on) a deletion; after each step, every remote is
//! listed through the native client until it holds what the local directory holds
//! (names, types, sizes, MD5 sums), and the time that took is measured. The directory is
//! removed on both sides at the end.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use md5::Digest;
use rsyncd_rs::client::{ListOptions, list};
use rsyncd_rs::protocol::flist::mode;
use serde::Serialize;
use sersync_agent::config::AgentConfig;
use sersync_agent::op::Op;
use sersync_agent::push::Target;
use sersync_agent::queue::Taken;

/// How a verification runs.
#[derive(Debug, Clone)]
pub struct VerifyOptions {
    /// How long each step may take to reach every remote.
    pub timeout: Duration,
    /// Leave the directory in place on both sides.
    pub keep: bool,
    /// A progress line on standard error (only drawn on a terminal).
    pub progress: bool,
}

/// One step on one remote.
#[derive(Debug, Clone, Serialize, tabled::Tabled)]
pub struct StepResult {
    pub step: String,
    pub remote: String,
    /// `ok` or `fail`.
    pub result: String,
    /// Seconds from the local change to the remote holding it (or to the timeout).
    #[tabled(display = "secs")]
    pub seconds: f64,
    pub detail: String,
}

fn secs(s: &f64) -> String {
    format!("{s:.3}")
}

/// What a verification found.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The directory made for it, relative to the watched root.
    pub directory: String,
    pub steps: Vec<StepResult>,
    /// Whether the directory was removed everywhere (false with --keep).
    pub cleaned: bool,
}

impl Report {
    pub fn passed(&self) -> bool {
        self.steps.iter().all(|s| s.result == "ok")
    }
}

/// An entry as compared: type, size, and a file's MD5.
type Seen = BTreeMap<String, (char, i64, Option<Vec<u8>>)>;

/// Runs the reference scenario against every remote of `cfg`.
pub fn verify(cfg: &AgentConfig, o: &VerifyOptions) -> anyhow::Result<Report> {
    let name = format!(
        "syncctl-verify-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis())
    );
    let dir = cfg.watch.join(&name);
    std::fs::create_dir(&dir).map_err(|e| anyhow::anyhow!("cannot make {}: {e}", dir.display()))?;
    let targets = sersync_agent::agent::targets(cfg);
    let bar = o.progress.then(progress_bar);
    let mut steps = Vec::new();
    let mut scenario: Vec<(&str, Action)> = vec![
        ("touch {1..5}.txt; mkdir dir{1..3}", create),
        ("echo 'test sersync' > 1.txt", write),
        ("echo 'changed' >> 2.txt", modify),
    ];
    if cfg.events.delete {
        scenario.push(("rm 5.txt; rmdir dir3", delete));
    }
    let mut failed = false;
    for (what, act) in &scenario {
        if failed {
            break;
        }
        act(&dir)?;
        let changed = Instant::now();
        let want = local(&dir)?;
        for (rname, t) in &targets {
            if let Some(b) = &bar {
                b.set_message(format!("{what}: waiting for {rname}"));
            }
            let r = wait_for(t, &name, &want, changed, o.timeout);
            failed |= r.is_err();
            let (result, detail) = match &r {
                Ok(()) => ("ok", String::new()),
                Err(why) => ("fail", why.clone()),
            };
            steps.push(StepResult {
                step: (*what).to_string(),
                remote: rname.clone(),
                result: result.into(),
                seconds: changed.elapsed().as_secs_f64(),
                detail,
            });
        }
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let cleaned = if o.keep {
        false
    } else {
        clean(&dir, &name, &targets)
    };
    Ok(Report {
        directory: name,
        steps,
        cleaned,
    })
}

/// One step of the scenario, done in the test directory.
type Action = fn(&Path) -> std::io::Result<()>;

fn create(d: &Path) -> std::io::Result<()> {
    for i in 1..=5 {
        std::fs::File::create(d.join(format!("{i}.txt")))?;
    }
    for i in 1..=3 {
        std::fs::create_dir(d.join(format!("dir{i}")))?;
    }
    Ok(())
}

fn write(d: &Path) -> std::io::Result<()> {
    std::fs::write(d.join("1.txt"), b"test sersync\n")
}

fn modify(d: &Path) -> std::io::Result<()> {
    std::fs::OpenOptions::new()
        .append(true)
        .open(d.join("2.txt"))?
        .write_all(b"changed\n")
}

fn delete(d: &Path) -> std::io::Result<()> {
    std::fs::remove_file(d.join("5.txt"))?;
    std::fs::remove_dir(d.join("dir3"))
}

/// Waits until the remote's listing of `name/` equals `want`: `Err` says what differed
/// at the timeout.
fn wait_for(
    t: &Target,
    name: &str,
    want: &Seen,
    since: Instant,
    timeout: Duration,
) -> Result<(), String> {
    let mut last = String::new();
    while since.elapsed() < timeout {
        match remote(t, name) {
            Ok(have) if &have == want => return Ok(()),
            Ok(have) => last = difference(want, &have),
            Err(e) => last = e,
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err(format!("not within {} s: {last}", timeout.as_secs()))
}

/// The remote's view of `name/`.
fn remote(t: &Target, name: &str) -> Result<Seen, String> {
    let mut r = t.remote.clone();
    r.path = format!("{name}/");
    let l = list(
        &r,
        &t.connect,
        &ListOptions {
            recursive: true,
            checksum: true,
            checksum_choice: Some("md5".into()),
            ..ListOptions::default()
        },
    )
    .map_err(|e| e.to_string())?;
    Ok(l.entries
        .iter()
        .filter(|e| e.name != b".")
        .map(|e| {
            let kind = if mode::is_dir(e.mode) {
                'd'
            } else if mode::is_reg(e.mode) {
                'f'
            } else {
                'o'
            };
            let size = if kind == 'f' { e.size } else { 0 };
            let sum = (kind == 'f').then(|| e.checksum.clone().unwrap_or_default());
            (
                String::from_utf8_lossy(&e.name).into_owned(),
                (kind, size, sum),
            )
        })
        .collect())
}

/// The local directory's view, as [`remote`] gives it.
fn local(dir: &Path) -> anyhow::Result<Seen> {
    let mut out = Seen::new();
    walk(dir, Path::new(""), &mut out)?;
    Ok(out)
}

fn walk(root: &Path, rel: &Path, out: &mut Seen) -> anyhow::Result<()> {
    for e in std::fs::read_dir(root.join(rel))? {
        let e = e?;
        let p = rel.join(e.file_name());
        let meta = std::fs::symlink_metadata(root.join(&p))?;
        let name = p.to_string_lossy().into_owned();
        if meta.is_dir() {
            out.insert(name, ('d', 0, None));
            walk(root, &p, out)?;
        } else if meta.is_file() {
            let sum = md5::Md5::digest(std::fs::read(root.join(&p))?).to_vec();
            out.insert(name, ('f', meta.len() as i64, Some(sum)));
        } else {
            out.insert(name, ('o', 0, None));
        }
    }
    Ok(())
}

/// What differs, in a few words.
fn difference(want: &Seen, have: &Seen) -> String {
    let mut d = Vec::new();
    for (n, w) in want {
        match have.get(n) {
            None => d.push(format!("{n} missing")),
            Some(h) if h != w => d.push(format!("{n} differs (size {} here, {} there)", w.1, h.1)),
            Some(_) => {}
        }
    }
    d.extend(
        have.keys()
            .filter(|n| !want.contains_key(*n))
            .map(|n| format!("{n} extra")),
    );
    d.truncate(5);
    d.join(", ")
}

/// Removes the directory here and on every remote (deleting it remotely as the agent
/// does, in case deletes are off).
fn clean(dir: &Path, name: &str, targets: &[(String, Target)]) -> bool {
    let mut ok = std::fs::remove_dir_all(dir).is_ok();
    for (_, t) in targets {
        let mut t = t.clone();
        t.deletes = true;
        let r = sersync_agent::push::run(
            &t,
            &[Taken {
                seq: 0,
                op: Op::Delete {
                    path: PathBuf::from(name),
                },
            }],
        );
        ok &= r.error.is_none() && r.failed.is_empty();
    }
    ok
}

fn progress_bar() -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} {elapsed} {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
    );
    bar.enable_steady_tick(Duration::from_millis(100));
    bar
}

/// The report as the command prints it: a table, or JSON.
pub fn render(r: &Report, json: bool) -> String {
    if json {
        return serde_json::to_string_pretty(r).unwrap_or_default();
    }
    let mut out = format!("verify in {}:\n", r.directory);
    let mut t = tabled::Table::new(&r.steps);
    t.with(tabled::settings::Style::blank());
    out.push_str(&t.to_string());
    out.push('\n');
    out.push_str(&format!(
        "{}; {}\n",
        if r.passed() {
            "every step reached every remote"
        } else {
            "FAILED: a step did not reach a remote in time"
        },
        if r.cleaned {
            "its directory was removed on both sides"
        } else {
            "its directory was left in place"
        }
    ));
    out
}
