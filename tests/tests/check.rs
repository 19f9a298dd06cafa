//! `syncctl check` on the reference deployment's files (paths localised): the
//! reference passes with its two known warnings; each planted fault fails and names
//! its file and line; `--json` is the table's rows; `--remote` reaches a live daemon.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use e2e::agent::reference_confxml_on;
use e2e::{Daemon, Fixture, Server, free_port, syncctl_bin};

/// The reference pair: the fixture's rsyncd.conf (on a free port, so a daemon on 873
/// here does not matter) and the seed's confxml.xml watching `src`, pushing there.
struct Setup {
    f: Fixture,
    agent_conf: PathBuf,
    port: u16,
}

impl Setup {
    fn new() -> Setup {
        let mut f = Fixture::seed();
        let port = free_port();
        f.set_global("port", &port.to_string());
        let src = f.dir().join("src");
        std::fs::create_dir_all(&src).unwrap();
        let agent_conf = f.dir().join("confxml.xml");
        std::fs::write(&agent_conf, reference_confxml_on(&f, port, &src, false)).unwrap();
        Setup {
            f,
            agent_conf,
            port,
        }
    }

    fn edit_agent(&self, from: &str, to: &str) {
        let text = std::fs::read_to_string(&self.agent_conf).unwrap();
        assert!(text.contains(from), "{from} not in confxml");
        std::fs::write(&self.agent_conf, text.replacen(from, to, 1)).unwrap();
    }

    fn run(&self, extra: &[&str]) -> (i32, String) {
        let out = Command::new(syncctl_bin())
            .arg("check")
            .arg("--server-config")
            .arg(self.f.conf_path())
            .arg("--agent-config")
            .arg(&self.agent_conf)
            .args(extra)
            .env("LANG", "C")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let err = String::from_utf8_lossy(&out.stderr);
        (out.status.code().unwrap_or(-1), format!("{text}{err}"))
    }

    fn rows(&self, extra: &[&str]) -> (i32, Vec<serde_json::Value>) {
        let mut args = vec!["--json"];
        args.extend_from_slice(extra);
        let (code, text) = self.run(&args);
        let rows: Vec<serde_json::Value> =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
        (code, rows)
    }
}

/// The 1-based line of `file` whose text starts with `prefix` (after blanks).
fn line_of(file: &Path, prefix: &str) -> u32 {
    let text = std::fs::read_to_string(file).unwrap();
    let i = text
        .lines()
        .position(|l| l.trim_start().starts_with(prefix))
        .unwrap_or_else(|| panic!("{prefix} not in {}", file.display()));
    u32::try_from(i + 1).unwrap()
}

/// Asserts exit 1 and a failed row whose detail names `file:line`.
fn assert_fails_at(s: &Setup, file: &Path, line: u32, what: &str) {
    let (code, rows) = s.rows(&[]);
    let place = format!("{}:{line}", file.display());
    let hit = rows
        .iter()
        .any(|r| r["result"] == "fail" && r["detail"].as_str().is_some_and(|d| d.contains(&place)));
    assert!(hit, "{what}: no fail at {place}: {rows:#?}");
    assert_eq!(code, 1, "{what}: {rows:#?}");
}

#[test]
fn the_reference_configs_pass_with_two_warnings() {
    let s = Setup::new();
    let (code, text) = s.run(&[]);
    assert_eq!(code, 0, "{text}");
    let warned = |check: &str| {
        text.lines()
            .any(|l| l.trim_start().starts_with(check) && l.contains(" warn "))
    };
    assert!(warned("hosts deny"), "{text}");
    assert!(warned("ignore errors"), "{text}");
    assert!(!text.lines().any(|l| l.contains(" fail ")), "{text}");
}

/// `insecure links = yes` is a warning on its module, naming its line and what it lets
/// through; a module without it gets no such row.
#[test]
fn insecure_links_warns_on_its_module() {
    let mut s = Setup::new();
    s.f.set_module("backup", "insecure links", "yes");
    let conf = s.f.conf_path();
    let line = line_of(&conf, "insecure links");
    let (code, rows) = s.rows(&[]);
    assert_eq!(code, 0, "{rows:#?}");
    let hits: Vec<_> = rows
        .iter()
        .filter(|r| r["check"] == "insecure links")
        .collect();
    assert_eq!(hits.len(), 1, "{rows:#?}");
    let detail = hits[0]["detail"].as_str().unwrap();
    assert_eq!(hits[0]["result"], "warn");
    assert_eq!(hits[0]["target"], "[backup]");
    assert!(
        detail.contains(&format!("{}:{line}", conf.display()))
            && detail.contains("out of the module"),
        "{detail}"
    );
}

#[test]
fn json_has_the_tables_rows() {
    let s = Setup::new();
    let (code, table) = s.run(&[]);
    let (jcode, rows) = s.rows(&[]);
    assert_eq!(code, jcode);
    let lines: Vec<&str> = table
        .lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .collect();
    assert_eq!(lines.len(), rows.len(), "{table}\n{rows:#?}");
    for (line, row) in lines.iter().zip(&rows) {
        for key in ["check", "target", "result", "detail"] {
            let v = row[key].as_str().unwrap();
            assert!(line.contains(v), "{key} {v:?} not in {line:?}");
        }
    }
}

#[test]
fn a_usage_error_exits_2() {
    let out = Command::new(syncctl_bin())
        .args(["check", "--no-such-flag"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn a_secrets_file_others_can_read_fails() {
    let s = Setup::new();
    let secrets = s.f.secrets_path();
    std::fs::set_permissions(&secrets, std::fs::Permissions::from_mode(0o644)).unwrap();
    let conf = s.f.conf_path();
    assert_fails_at(&s, &conf, line_of(&conf, "secrets file"), "secrets 0644");
}

#[test]
fn a_password_file_others_can_read_fails() {
    let s = Setup::new();
    let pw = s.f.password_file();
    std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o644)).unwrap();
    let line = line_of(&s.agent_conf, "<auth ");
    assert_fails_at(&s, &s.agent_conf, line, "password file 0644");
}

#[test]
fn a_missing_module_path_fails() {
    let s = Setup::new();
    std::fs::remove_dir_all(s.f.module_dir()).unwrap();
    let conf = s.f.conf_path();
    assert_fails_at(&s, &conf, line_of(&conf, "path ="), "module path");
}

#[test]
fn an_unknown_uid_fails() {
    let mut s = Setup::new();
    s.f.set_global("uid", "no_such_user_here");
    let conf = s.f.conf_path();
    assert_fails_at(&s, &conf, line_of(&conf, "uid ="), "uid");
}

#[test]
fn a_bad_host_pattern_fails() {
    let mut s = Setup::new();
    s.f.set_global("hosts allow", "127.0.0.1/33");
    let conf = s.f.conf_path();
    assert_fails_at(&s, &conf, line_of(&conf, "hosts allow"), "host pattern");
}

#[test]
fn an_auth_user_without_a_secret_fails() {
    let mut s = Setup::new();
    s.f.set_global("auth users", "rsync_backup, nobody_else");
    let conf = s.f.conf_path();
    assert_fails_at(&s, &conf, line_of(&conf, "auth users"), "auth user");
}

#[test]
fn an_agent_module_unknown_to_the_server_fails() {
    let s = Setup::new();
    s.edit_agent(r#"name="backup""#, r#"name="nosuchmodule""#);
    let line = line_of(&s.agent_conf, "<remote ");
    assert_fails_at(&s, &s.agent_conf, line, "unknown module");
}

#[test]
fn a_password_mismatch_fails() {
    let s = Setup::new();
    e2e::fixture::write_private(&s.f.password_file(), "not-the-secret\n");
    let line = line_of(&s.agent_conf, "<auth ");
    assert_fails_at(&s, &s.agent_conf, line, "password mismatch");
}

#[test]
fn a_missing_watch_dir_fails() {
    let s = Setup::new();
    std::fs::remove_dir_all(s.f.dir().join("src")).unwrap();
    let line = line_of(&s.agent_conf, "<localpath ");
    assert_fails_at(&s, &s.agent_conf, line, "watch dir");
}

#[test]
fn a_misspelt_parameter_fails() {
    let mut s = Setup::new();
    s.f.set_module("backup", "read onyl", "false");
    let conf = s.f.conf_path();
    assert_fails_at(&s, &conf, line_of(&conf, "read onyl"), "misspelt parameter");
}

#[test]
fn a_refused_option_the_agent_sends_fails() {
    let mut s = Setup::new();
    // The agent's commonParams is -artuz: -z is refused.
    s.f.set_module("backup", "refuse options", "compress");
    let conf = s.f.conf_path();
    assert_fails_at(
        &s,
        &conf,
        line_of(&conf, "refuse options"),
        "refused option",
    );
}

#[test]
fn remote_reaches_and_logs_in_to_a_live_daemon() {
    let s = Setup::new();
    let d = Daemon::start(Server::Ours, &s.f);
    // Point the agent at the live daemon's port.
    s.edit_agent(
        &format!(r#"port="{}""#, s.port),
        &format!(r#"port="{}""#, d.port),
    );
    let (code, rows) = s.rows(&["--remote"]);
    let verdict = |check: &str| {
        rows.iter()
            .find(|r| r["check"] == check)
            .map(|r| r["result"].as_str().unwrap().to_string())
    };
    assert_eq!(
        verdict("remote reachable").as_deref(),
        Some("ok"),
        "{rows:#?}"
    );
    assert_eq!(verdict("remote auth").as_deref(), Some("ok"), "{rows:#?}");
    assert_eq!(
        verdict("remote writable").as_deref(),
        Some("ok"),
        "{rows:#?}"
    );
    assert_eq!(code, 0, "{rows:#?}");
}

/// An agent in fanotify mode is checked for what that mode needs (this machine: root,
/// ext4, a recent kernel), not for inotify watches.
#[test]
fn fanotify_mode_is_checked_for_its_needs() {
    let s = Setup::new();
    let toml = sersync_agent::config::to_toml(&sersync_agent::config::load(&s.agent_conf).unwrap())
        + "watcher = \"fanotify\"\n";
    let conf = s.f.dir().join("agent.toml");
    std::fs::write(&conf, toml).unwrap();
    let out = Command::new(syncctl_bin())
        .args(["check", "--json", "--server-config"])
        .arg(s.f.conf_path())
        .arg("--agent-config")
        .arg(&conf)
        .output()
        .unwrap();
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let checks: Vec<&str> = rows.iter().filter_map(|r| r["check"].as_str()).collect();
    assert!(!checks.contains(&"inotify watches"), "{rows:#?}");
    let row = rows.iter().find(|r| r["check"] == "fanotify").unwrap();
    let expected = if e2e::is_root() { "ok" } else { "warn" };
    assert_eq!(row["result"], expected, "{row:#?}");
}
