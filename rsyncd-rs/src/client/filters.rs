//! The client's own filter rules (`--exclude`, `--include`, `--filter` and their `-from`
//! files), parsed as rsync's client parses them and sent to the server ahead of the file
//! list. Upstream: options.c (OPT_EXCLUDE...), exclude.c parse_filter_str(),
//! parse_filter_file().

use super::error::ClientError;
use crate::protocol::filter::{FilterRule, RuleTemplate, XFlags, parse_rules, split_rule_file};
use crate::protocol::options::FilterArg;

/// The rules `args` give, in order.
pub fn client_rules(args: &[FilterArg]) -> Result<Vec<FilterRule>, ClientError> {
    let mut out = Vec::new();
    for a in args {
        let parsed = match a {
            FilterArg::Exclude(p) => {
                rules(p.as_bytes(), &RuleTemplate::EXCLUDE, XFlags::OLD_PREFIXES)
            }
            FilterArg::Include(p) => {
                rules(p.as_bytes(), &RuleTemplate::INCLUDE, XFlags::OLD_PREFIXES)
            }
            FilterArg::Filter(p) => rules(p.as_bytes(), &RuleTemplate::EXCLUDE, XFlags::NONE),
            FilterArg::ExcludeFrom(f) => from_file(f, &RuleTemplate::EXCLUDE),
            FilterArg::IncludeFrom(f) => from_file(f, &RuleTemplate::INCLUDE),
        }?;
        out.extend(parsed);
    }
    Ok(out)
}

fn rules(text: &[u8], t: &RuleTemplate, x: XFlags) -> Result<Vec<FilterRule>, ClientError> {
    parse_rules(text, t, x).map_err(|e| ClientError::Options(e.to_string()))
}

/// A rules file, one rule per line (`-` for standard input is not offered: the library
/// has no terminal).
fn from_file(path: &str, t: &RuleTemplate) -> Result<Vec<FilterRule>, ClientError> {
    let text = std::fs::read(path)
        .map_err(|e| ClientError::Options(format!("failed to open filter file {path}: {e}")))?;
    let mut out = Vec::new();
    for (_, line) in split_rule_file(&text, false, false) {
        out.extend(rules(line, t, XFlags::OLD_PREFIXES)?);
    }
    Ok(out)
}
