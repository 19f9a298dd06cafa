//! [`AgentConfig`] → our TOML, for `sersync-agent convert confxml.xml`: what an operator
//! moving off sersync gets as a starting point. `load` reads it back to an equal
//! configuration (`source` aside).

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use super::AgentConfig;

/// The TOML that says what `c` says. Every section is written, including the ones at
/// their defaults, so the operator sees each setting there is; settings confxml had
/// switched off (`start="false"`) are absent, since `c` does not hold them.
pub fn to_toml(c: &AgentConfig) -> String {
    let mut out = String::new();
    // `writeln!` into a String cannot fail; the results are ignored for that reason.
    let _ = writeln!(
        out,
        "# sersync-agent configuration, converted from {}.",
        c.source.display()
    );
    let _ = writeln!(out, "watch = {}", path(&c.watch));
    let _ = writeln!(out, "debug = {}", c.debug);
    let _ = writeln!(out, "xfs = {}", c.xfs);
    if let Some((ip, port)) = &c.host {
        let _ = writeln!(out, "\n[host]\nip = {}\nport = {port}", quote(ip));
    }
    for r in &c.remotes {
        let _ = writeln!(out, "\n[[remote]]");
        let _ = writeln!(out, "host = {}", quote(&r.host));
        let _ = writeln!(out, "module = {}", quote(&r.module));
    }
    let r = &c.rsync;
    let _ = writeln!(out, "\n[rsync]\nparams = {}", quote(&r.params));
    if let Some(a) = &r.auth {
        let _ = writeln!(out, "user = {}", quote(&a.user));
        let _ = writeln!(out, "password_file = {}", path(&a.password_file));
    }
    if let Some(p) = r.port {
        let _ = writeln!(out, "port = {p}");
    }
    if let Some(t) = r.timeout {
        let _ = writeln!(out, "timeout = {t}");
    }
    let _ = writeln!(out, "ssh = {}", r.ssh);
    let e = &c.events;
    let _ = writeln!(out, "\n[events]");
    for (k, v) in [
        ("delete", e.delete),
        ("create_folder", e.create_folder),
        ("create_file", e.create_file),
        ("close_write", e.close_write),
        ("move_from", e.move_from),
        ("move_to", e.move_to),
        ("attrib", e.attrib),
        ("modify", e.modify),
    ] {
        let _ = writeln!(out, "{k} = {v}");
    }
    let _ = writeln!(out, "\n[filter]\nexclude = {}", list(&c.filter));
    if let Some(f) = &c.fail_log {
        let _ = writeln!(out, "\n[fail_log]\npath = {}", path(&f.path));
        let _ = writeln!(out, "retry_minutes = {}", minutes(f.every));
    }
    if let Some(cr) = &c.crontab {
        let _ = writeln!(out, "\n[crontab]\nevery_minutes = {}", minutes(cr.every));
        let _ = writeln!(out, "exclude = {}", list(&cr.excludes));
    }
    for p in &c.plugins {
        let _ = writeln!(out, "\n[[plugin]]\nname = {}", quote(&p.name));
        let _ = writeln!(out, "enabled = {}", p.enabled);
        let _ = writeln!(out, "[plugin.settings]");
        // A setting given more than once (include patterns) becomes one list.
        let mut keys: Vec<&str> = Vec::new();
        for (k, _) in &p.settings {
            if !keys.contains(&k.as_str()) {
                keys.push(k);
            }
        }
        for k in keys {
            let values: Vec<String> = p
                .settings
                .iter()
                .filter(|(key, _)| key == k)
                .map(|(_, v)| v.clone())
                .collect();
            let value = match values.as_slice() {
                [one] => quote(one),
                many => list(many),
            };
            let _ = writeln!(out, "{} = {value}", quote(k));
        }
    }
    let a = &c.agent;
    let _ = writeln!(out, "\n[agent]\nstate_dir = {}", path(&a.state_dir));
    let _ = writeln!(out, "coalesce_ms = {}", a.coalesce.as_millis());
    let _ = writeln!(out, "max_paths_per_session = {}", a.max_paths_per_session);
    if let Some(m) = a.metrics {
        let _ = writeln!(out, "metrics = \"{m}\"");
    }
    if a.watcher != super::WatcherKind::default() {
        let _ = writeln!(out, "watcher = \"{}\"", a.watcher.name());
    }
    out
}

fn minutes(d: Duration) -> u64 {
    d.as_secs() / 60
}

/// A path as a TOML string. A path that is not UTF-8 cannot be said in TOML; it is
/// written lossily, which `validate` of the result will then point at.
fn path(p: &Path) -> String {
    quote(&p.to_string_lossy())
}

fn list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| quote(s)).collect();
    format!("[{}]", quoted.join(", "))
}

/// A TOML string: a literal `'...'` when it can be one, since regexes full of
/// backslashes read best unescaped; otherwise a basic string with escapes.
fn quote(s: &str) -> String {
    if !s.contains('\'') && !s.chars().any(char::is_control) {
        return format!("'{s}'");
    }
    let mut out = String::from("\"");
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
