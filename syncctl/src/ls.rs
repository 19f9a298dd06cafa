//! `syncctl ls`: a remote tree as a table or JSON.

use rsyncd_rs::client::{ClientError, ListOptions, Listing, Shown, list, list_modules};
use rsyncd_rs::protocol::flist::{FileEntry, mode};
use serde::Serialize;
use std::io::Write;

use crate::cli::LsArgs;
use crate::remote::connect_options;

/// One entry as shown.
#[derive(Debug, Serialize, tabled::Tabled)]
pub struct Row {
    #[tabled(rename = "mode")]
    pub mode: String,
    #[tabled(rename = "size")]
    pub size: i64,
    #[tabled(rename = "modified")]
    pub mtime: String,
    #[tabled(rename = "owner")]
    pub owner: String,
    #[tabled(rename = "checksum")]
    pub checksum: String,
    #[tabled(rename = "name")]
    pub name: String,
}

/// The rows of a listing, in the server's order.
pub fn rows(l: &Listing) -> Vec<Row> {
    l.entries.iter().map(row).collect()
}

fn row(e: &FileEntry) -> Row {
    let shown = Shown::of(e);
    let owner = match (e.uid, e.gid) {
        (None, None) => String::new(),
        (u, g) => format!(
            "{}:{}",
            u.map_or("-".into(), |u| u.to_string()),
            g.map_or("-".into(), |g| g.to_string())
        ),
    };
    Row {
        mode: shown.mode,
        size: e.size,
        mtime: shown.mtime,
        owner,
        checksum: e
            .checksum
            .as_ref()
            .filter(|_| mode::is_reg(e.mode))
            .map(|c| c.iter().map(|b| format!("{b:02x}")).collect())
            .unwrap_or_default(),
        name: shown.name,
    }
}

/// Runs `syncctl ls`, writing to `out`; returns the exit code.
pub fn run(a: &LsArgs, out: &mut dyn Write) -> Result<i32, ClientError> {
    let (remote, c) =
        connect_options(&a.url, &a.connect).map_err(|e| ClientError::Options(e.to_string()))?;
    if remote.module.is_empty() {
        for line in list_modules(&remote, &c)? {
            writeln!(out, "{line}").map_err(output_error)?;
        }
        return Ok(0);
    }
    let listing = list(
        &remote,
        &c,
        &ListOptions {
            recursive: a.recursive,
            checksum: a.checksum,
            checksum_choice: a.checksum_choice.clone(),
            owners: a.owners || a.numeric_ids,
            numeric_ids: a.numeric_ids,
        },
    )?;
    for line in &listing.motd {
        eprintln!("{line}");
    }
    for line in &listing.lines {
        eprintln!("{}", line.text);
    }
    let rows = rows(&listing);
    if a.json {
        #[derive(Serialize)]
        struct Out<'a> {
            checksum: Option<&'a str>,
            entries: &'a [Row],
        }
        let doc = Out {
            checksum: listing.checksum_name.as_deref(),
            entries: &rows,
        };
        let text = serde_json::to_string_pretty(&doc).unwrap_or_default();
        writeln!(out, "{text}").map_err(output_error)?;
    } else {
        use tabled::settings::{Remove, Style, location::ByColumnName};
        let mut t = tabled::Table::new(&rows);
        t.with(Style::blank());
        if !a.checksum {
            t.with(Remove::column(ByColumnName::new("checksum")));
        }
        if !(a.owners || a.numeric_ids) {
            t.with(Remove::column(ByColumnName::new("owner")));
        }
        writeln!(out, "{t}").map_err(output_error)?;
    }
    Ok(listing.code.0)
}

/// Standard output failed (a closed pipe: `syncctl ls ... | head`).
fn output_error(e: std::io::Error) -> ClientError {
    ClientError::Local(format!("writing the listing: {e}"))
}
