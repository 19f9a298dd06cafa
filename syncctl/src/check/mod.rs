//! `syncctl check`: the daemon's and the agent's configuration files read by their own
//! parsers (`rsyncd_rs::daemon::config`, `sersync_agent::config`), then checked against
//! the system they will run on and against each other. Each finding is one row: which
//! check, on what, ok / warn / fail, and a detail naming file and line.
//!
//! - [`server`]: rsyncd.conf alone; [`agent`]: the agent's config alone;
//! - [`cross`]: both (the pre-rollout case); [`remote`]: `--remote`, live sessions;
//! - [`render`]: the table and the JSON.

pub mod agent;
pub mod cross;
pub mod remote;
pub mod render;
pub mod server;
mod unix;

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::cli::CheckArgs;

/// Where rsyncd reads its configuration when none is named.
pub const DEFAULT_SERVER_CONFIG: &str = "/etc/rsyncd.conf";

/// A finding's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Ok,
    /// Works, but does not do what it seems to.
    Warn,
    /// Will not work as configured.
    Fail,
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Verdict::Ok => "ok",
            Verdict::Warn => "warn",
            Verdict::Fail => "fail",
        })
    }
}

/// One row of the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// What was checked (`module path`, `secrets file`, ...).
    pub check: String,
    /// What it was checked on (a module, a file, a remote).
    pub target: String,
    pub result: Verdict,
    /// Why, starting with `FILE:LINE:` where the cause has a place.
    pub detail: String,
}

/// The findings so far, in order.
#[derive(Debug, Default)]
pub struct Report {
    pub findings: Vec<Finding>,
}

impl Report {
    /// Adds a row.
    pub fn add(
        &mut self,
        check: &str,
        target: impl Into<String>,
        result: Verdict,
        detail: impl Into<String>,
    ) {
        self.findings.push(Finding {
            check: check.to_string(),
            target: target.into(),
            result,
            detail: detail.into(),
        });
    }

    pub fn ok(&mut self, check: &str, target: impl Into<String>, detail: impl Into<String>) {
        self.add(check, target, Verdict::Ok, detail);
    }

    pub fn warn(&mut self, check: &str, target: impl Into<String>, detail: impl Into<String>) {
        self.add(check, target, Verdict::Warn, detail);
    }

    pub fn fail(&mut self, check: &str, target: impl Into<String>, detail: impl Into<String>) {
        self.add(check, target, Verdict::Fail, detail);
    }

    /// Whether any row failed.
    pub fn failed(&self) -> bool {
        self.findings.iter().any(|f| f.result == Verdict::Fail)
    }

    /// 0 when nothing failed, 1 otherwise.
    pub fn exit_code(&self) -> i32 {
        i32::from(self.failed())
    }
}

/// `FILE:LINE` (`FILE` alone for line 0).
pub fn at(path: &Path, line: u32) -> String {
    if line == 0 {
        path.display().to_string()
    } else {
        format!("{}:{line}", path.display())
    }
}

/// Which files to check: as given, else the defaults that exist. `None` for both is a
/// usage error (nothing to check).
pub fn config_paths(a: &CheckArgs) -> (Option<PathBuf>, Option<PathBuf>) {
    let server = a.server_config.clone().or_else(|| {
        let p = Path::new(DEFAULT_SERVER_CONFIG);
        p.exists().then(|| p.to_path_buf())
    });
    let agent = a
        .agent_config
        .clone()
        .or_else(sersync_agent::config::default_path);
    (server, agent)
}

/// Runs every check the arguments ask for. `Err` is a usage error (exit 2).
pub fn run(a: &CheckArgs) -> Result<Report, String> {
    let (server_path, agent_path) = config_paths(a);
    if server_path.is_none() && agent_path.is_none() {
        return Err(format!(
            "nothing to check: give --server-config or --agent-config (looked for {} and {})",
            DEFAULT_SERVER_CONFIG,
            sersync_agent::config::DEFAULT_CONFIGS.join(", ")
        ));
    }
    if a.remote && agent_path.is_none() {
        return Err("--remote needs the agent's config (--agent-config)".into());
    }
    let mut r = Report::default();
    let server = server_path.map(|p| server::check(&p, &mut r));
    let agent = agent_path.map(|p| agent::check(&p, &mut r));
    if let (Some(Some(s)), Some(Some(g))) = (&server, &agent) {
        cross::check(s, g, &mut r);
    }
    if a.remote {
        if let Some(Some(g)) = &agent {
            remote::check(g, &mut r);
        }
    }
    Ok(r)
}

/// `syncctl check` from its arguments to its exit code: the report on standard output;
/// a usage error (exit 2) on standard error.
pub fn main(a: &CheckArgs) -> i32 {
    match run(a) {
        Ok(r) => {
            let mut out = std::io::stdout().lock();
            match render::write(&r, a.json, &mut out) {
                Ok(()) => r.exit_code(),
                Err(_) => 1,
            }
        }
        Err(usage) => {
            eprintln!("syncctl check: {usage}");
            2
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // Tests may panic.
mod tests {
    use super::*;

    #[test]
    fn a_warning_alone_exits_0_a_failure_1() {
        let mut r = Report::default();
        r.ok("a", "t", "fine");
        r.warn("b", "t", "odd");
        assert_eq!(r.exit_code(), 0);
        r.fail("c", "t", "broken");
        assert_eq!(r.exit_code(), 1);
    }

    #[test]
    fn json_and_table_carry_the_same_rows() {
        let mut r = Report::default();
        r.warn("hosts deny", "[backup]", "rsyncd.conf:12: matches nothing");
        r.fail(
            "module path",
            "[backup]",
            "rsyncd.conf:19: /backup: missing",
        );
        let rows: Vec<serde_json::Value> = serde_json::from_str(&render::json(&r)).unwrap();
        let table = render::table(&r);
        let lines: Vec<&str> = table.lines().skip(1).collect();
        assert_eq!(rows.len(), lines.len());
        for (row, line) in rows.iter().zip(lines) {
            for key in ["check", "target", "result", "detail"] {
                assert!(line.contains(row[key].as_str().unwrap()), "{line}");
            }
        }
        assert_eq!(rows[1]["result"], "fail");
    }

    #[test]
    fn places_read_file_colon_line() {
        assert_eq!(at(Path::new("/etc/rsyncd.conf"), 7), "/etc/rsyncd.conf:7");
        assert_eq!(at(Path::new("/etc/rsyncd.conf"), 0), "/etc/rsyncd.conf");
    }
}
