//! The report as a table (tabled) or as JSON: the same rows either way.

use std::io::Write;

use super::{Finding, Report};

/// One row as shown.
#[derive(tabled::Tabled)]
struct Row<'a> {
    check: &'a str,
    target: &'a str,
    result: String,
    detail: &'a str,
}

/// The table: check, target, result, detail.
pub fn table(r: &Report) -> String {
    use tabled::settings::Style;
    let rows: Vec<Row<'_>> = r
        .findings
        .iter()
        .map(|f: &Finding| Row {
            check: &f.check,
            target: &f.target,
            result: f.result.to_string(),
            detail: &f.detail,
        })
        .collect();
    let mut t = tabled::Table::new(rows);
    t.with(Style::blank());
    t.to_string()
}

/// A JSON array of `{check, target, result, detail}`.
pub fn json(r: &Report) -> String {
    serde_json::to_string_pretty(&r.findings).unwrap_or_else(|_| "[]".into())
}

/// Writes the report as asked.
pub fn write(r: &Report, as_json: bool, out: &mut dyn Write) -> std::io::Result<()> {
    let text = if as_json { json(r) } else { table(r) };
    writeln!(out, "{text}")
}
