//! What the daemon tells the operator when it starts: the config's own warnings, and every
//! parameter that is recognised but not acted on yet.

use super::config::DaemonConfig;

/// Module parameters this build parses but does not apply yet.
pub const UNAPPLIED_MODULE_PARAMS: &[&str] = &["temp dir", "charset"];

/// What a module's `insecure links = yes` lets through, in the startup warning and in
/// `syncctl check`.
pub const INSECURE_LINKS_ALLOWS: &str = "symlinks in it are followed wherever they lead, \
     out of the module too: pulls read and pushes write through them (rsync 3.2.7's \
     behaviour); only links a client uploads stay munged or sanitized";

/// Global parameters this build parses but does not apply yet.
pub const UNAPPLIED_GLOBAL_PARAMS: &[&str] = &["socket options"];

/// The startup warnings, one line each, with file and line.
pub fn warnings(config: &DaemonConfig) -> Vec<String> {
    let mut out: Vec<String> = config.warnings.iter().map(ToString::to_string).collect();
    for (name, at) in config.global.explicitly_set() {
        if UNAPPLIED_GLOBAL_PARAMS.contains(&name) {
            out.push(format!(
                "{}:{}: parameter `{name}` is recognised but not applied yet",
                at.path.display(),
                at.line
            ));
        }
    }
    let sections =
        std::iter::once(&config.defaults).chain(config.modules.iter().map(|m| &m.params));
    let mut seen = std::collections::HashSet::new();
    for params in sections {
        for (name, at) in params.explicitly_set() {
            if UNAPPLIED_MODULE_PARAMS.contains(&name)
                && seen.insert((name, at.path.clone(), at.line))
            {
                out.push(format!(
                    "{}:{}: parameter `{name}` is recognised but not applied yet",
                    at.path.display(),
                    at.line
                ));
            }
        }
    }
    // Stock 3.5.0 logs nothing for it; an operator should hear it at every start.
    for m in &config.modules {
        if m.params.insecure_links {
            let at = m
                .params
                .set_location("insecure links")
                .unwrap_or(&m.location);
            out.push(format!(
                "{at}: module [{}] has `insecure links = yes`: {INSECURE_LINKS_ALLOWS}",
                m.name
            ));
        }
    }
    out
}

/// The warning upstream writes to the daemon log at startup when `proxy protocol` is on
/// without `proxy protocol hosts`: every connection will then be refused.
/// Upstream: clientserver.c, daemon_main().
pub fn proxy_protocol_warning(config: &DaemonConfig) -> Option<&'static str> {
    let hosts = config.global.proxy_protocol_hosts.as_deref().unwrap_or("");
    (config.global.proxy_protocol && hosts.is_empty()).then_some(
        "\"proxy protocol = true\" but \"proxy protocol hosts\" is unset: all connections \
         will be rejected as untrusted proxy peers.  Set \"proxy protocol hosts\" to your \
         trusted proxy's address.",
    )
}
