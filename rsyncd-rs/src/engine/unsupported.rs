//! Client options this server does not implement: refused with rsync's own wording, never
//! ignored (upstream: options.c create_refuse_error(), and the "not supported on this
//! server" texts of a build without them).

use crate::protocol::options::Options;

/// The error text for the first option we cannot honour, if any.
pub fn check(o: &Options) -> Option<String> {
    let refused = |name: &str| {
        Some(format!(
            "rsync: The server is configured to refuse --{name}\n"
        ))
    };
    if o.prune_empty_dirs {
        return refused("prune-empty-dirs");
    }
    // A sender reads the names the client forwards (`-`); a file of the server's own
    // is not offered.
    if o.files_from
        .as_deref()
        .is_some_and(|f| !(o.am_sender && f == "-"))
    {
        return refused("files-from");
    }
    if o.temp_dir.is_some() {
        return refused("temp-dir");
    }
    if o.remove_source_files > 0 {
        return refused("remove-source-files");
    }
    if o.one_file_system > 0 && o.deletes() {
        return refused("one-file-system");
    }
    if o.write_devices {
        return refused("write-devices");
    }
    None
}

/// The error text for an option the negotiated protocol cannot carry: xattrs need
/// protocol 30 (both ends refuse them below). Upstream: compat.c, setup_protocol().
pub fn check_protocol(o: &Options, protocol: i32) -> Option<String> {
    if protocol >= 30 {
        return None;
    }
    if o.preserve_acls {
        return Some(format!(
            "--acls requires protocol 30 or higher (negotiated {protocol}).\n"
        ));
    }
    (o.preserve_xattrs > 0)
        .then(|| format!("--xattrs requires protocol 30 or higher (negotiated {protocol}).\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xattrs_need_protocol_30() {
        let o = Options {
            preserve_xattrs: 1,
            ..Options::default()
        };
        assert_eq!(check(&o), None);
        assert_eq!(check_protocol(&o, 30), None);
        assert_eq!(
            check_protocol(&o, 29).as_deref(),
            Some("--xattrs requires protocol 30 or higher (negotiated 29).\n")
        );
    }

    #[test]
    fn refusals() {
        assert_eq!(check(&Options::default()), None);
        let o = Options {
            preserve_acls: true,
            ..Options::default()
        };
        assert_eq!(check(&o), None);
        assert_eq!(
            check_protocol(&o, 29).as_deref(),
            Some("--acls requires protocol 30 or higher (negotiated 29).\n")
        );
        let o = Options {
            fuzzy: 2,
            ..Options::default()
        };
        assert_eq!(check(&o), None);
        let o = Options {
            prune_empty_dirs: true,
            ..Options::default()
        };
        assert_eq!(
            check(&o).as_deref(),
            Some("rsync: The server is configured to refuse --prune-empty-dirs\n")
        );
    }
}
