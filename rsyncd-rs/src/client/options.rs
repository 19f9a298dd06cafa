//! One parser from an rsync-style option string (`-artuz`, `--delete`, `--exclude=PAT`,
//! `--timeout=100`, `--port=874`: what sersync's `commonParams` and lsyncd's `rsync{}`
//! hold) to the client's options. The words are read with rsync's own option table; an
//! option this client does not carry out is an error naming it, never dropped.

use std::net::IpAddr;
use std::path::PathBuf;

use super::error::ClientError;
use crate::protocol::options::table::{ArgKind, OPTIONS, by_long, by_short};
use crate::protocol::options::{Options, Refusals, parse_server_args};

/// What an option string asks of the client.
#[derive(Debug, Clone)]
pub struct ClientArgs {
    /// The transfer options (the server's view is set by the operation).
    pub options: Options,
    pub port: Option<u16>,
    pub password_file: Option<PathBuf>,
    /// Seconds.
    pub contimeout: Option<u64>,
    pub address: Option<IpAddr>,
    pub protocol: Option<i32>,
    /// `-e`/`--rsh`: the remote shell (command-line client only).
    pub rsh: Option<String>,
    /// `--rsync-path`: the program the remote shell runs.
    pub rsync_path: Option<String>,
}

impl ClientArgs {
    /// How to connect, from these options and rsync's environment variables:
    /// `RSYNC_PASSWORD` when no password file is given, `RSYNC_CONNECT_PROG`.
    pub fn connect_options(&self) -> super::ConnectOptions {
        let password = super::Password::from_file_or_env(self.password_file.as_deref());
        let secs = |s: u64| (s > 0).then(|| std::time::Duration::from_secs(s));
        super::ConnectOptions {
            connect_timeout: self.contimeout.and_then(secs),
            io_timeout: self
                .options
                .io_timeout
                .and_then(|s| u64::try_from(s).ok())
                .and_then(secs),
            bind: self.address,
            password,
            max_protocol: self.protocol.unwrap_or(crate::PROTOCOL_VERSION),
            connect_prog: std::env::var("RSYNC_CONNECT_PROG")
                .ok()
                .filter(|p| !p.is_empty()),
            ..super::ConnectOptions::default()
        }
    }
}

/// The option keys (rows of rsync's table) the client carries out.
const SUPPORTED: &[&str] = &[
    "v",
    "q",
    "do_stats=1",
    "h",
    "dry_run=1",
    "a",
    "recurse=2",
    "recurse=0",
    "preserve_perms=1",
    "preserve_perms=0",
    "preserve_mtimes=1",
    "preserve_mtimes=0",
    "omit_dir_times=1",
    "OPT_MODIFY_WINDOW",
    "preserve_uid=1",
    "preserve_uid=0",
    "preserve_gid=1",
    "preserve_gid=0",
    "OPT_NO_D",
    "preserve_devices=1",
    "preserve_specials=1",
    "preserve_links=1",
    "preserve_links=0",
    "H",
    "A",
    "preserve_acls=0",
    "X",
    "preserve_xattrs=0",
    "relative_paths=1",
    "relative_paths=0",
    "implied_dirs=0",
    "ignore_times=1",
    "size_only=1",
    "update_only=1",
    "ignore_non_existing=1",
    "ignore_existing=1",
    "OPT_MAX_SIZE",
    "OPT_MIN_SIZE",
    "delete_mode=1",
    "delete_before=1",
    "delete_during=1",
    "delete_during=2",
    "delete_after=1",
    "delete_excluded=1",
    "force_delete=1",
    "ignore_errors=1",
    "max_delete",
    "OPT_FILTER",
    "OPT_EXCLUDE",
    "OPT_INCLUDE",
    "OPT_EXCLUDE_FROM",
    "OPT_INCLUDE_FROM",
    "whole_file=1",
    "whole_file=0",
    "always_checksum=1",
    "checksum_choice",
    "OPT_BLOCK_SIZE",
    "OPT_COMPARE_DEST",
    "OPT_COPY_DEST",
    "OPT_LINK_DEST",
    "z",
    "OPT_OLD_COMPRESS",
    "OPT_NEW_COMPRESS",
    "OPT_NO_COMPRESS",
    "compress_choice",
    "do_compression_level",
    "keep_partial=1",
    "partial_dir",
    "i",
    "numeric_ids=1",
    "io_timeout",
    "OPT_BWLIMIT",
    "preserve_specials=1",
    "copy_unsafe_links=1",
    "safe_symlinks=1",
    "copy_links=1",
    "keep_dirlinks=1",
    "D",
    "xfer_dirs=2",
    "list_only=2",
    "allow_inc_recurse=0",
    "allow_inc_recurse=1",
    "sparse_files=1",
    "inplace=1",
    "prune_empty_dirs=1",
    "x",
    "y",
    "fuzzy_basis=0",
    // Said to the client alone, never sent:
    "shell_cmd",
    "rsync_path",
    "connect_timeout",
    "bind_address",
    "rsync_port",
    "password_file",
    "protocol_version",
];

/// One option as read: its table row and its value.
struct Word {
    row: usize,
    value: Option<String>,
}

/// Parses `words` (options only; paths are the caller's). Errors name the option.
pub fn parse_options<S: AsRef<str>>(words: &[S]) -> Result<ClientArgs, ClientError> {
    let (args, paths) = parse_command_line(words)?;
    match paths.first() {
        Some(p) => Err(ClientError::Options(format!(
            "{p}: not an option (paths are given apart)"
        ))),
        None => Ok(args),
    }
}

/// Parses a whole client command line: options anywhere (as popt reads them), the
/// other words are the paths, in order; `--` ends the options.
pub fn parse_command_line<S: AsRef<str>>(
    words: &[S],
) -> Result<(ClientArgs, Vec<String>), ClientError> {
    let words: Vec<&str> = words.iter().map(AsRef::as_ref).collect();
    let mut read = Vec::new();
    let mut paths = Vec::new();
    let mut i = 0;
    while i < words.len() {
        let w = words[i];
        i += 1;
        if w == "--" {
            paths.extend(words[i..].iter().map(|s| (*s).to_string()));
            break;
        }
        if let Some(body) = w.strip_prefix("--") {
            let (name, inline) = match body.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (body, None),
            };
            let row = by_long(name).ok_or_else(|| unknown(w))?;
            let value = match (OPTIONS[row].arg, inline) {
                (ArgKind::Flag, Some(_)) => {
                    return Err(ClientError::Options(format!("{w}: takes no value")));
                }
                (ArgKind::Flag, None) => None,
                (_, Some(v)) => Some(v),
                (_, None) => {
                    let v = words
                        .get(i)
                        .ok_or_else(|| ClientError::Options(format!("{w}: needs a value")))?;
                    i += 1;
                    Some((*v).to_string())
                }
            };
            read.push(Word { row, value });
        } else if let Some(letters) = w.strip_prefix('-').filter(|l| !l.is_empty()) {
            let chars: Vec<char> = letters.chars().collect();
            let mut j = 0;
            while j < chars.len() {
                let c = chars[j];
                j += 1;
                let row = by_short(c).ok_or_else(|| unknown(&format!("-{c}")))?;
                let value = if OPTIONS[row].arg == ArgKind::Flag {
                    None
                } else if j < chars.len() {
                    let v: String = chars[j..].iter().collect();
                    j = chars.len();
                    Some(v)
                } else {
                    let v = words
                        .get(i)
                        .ok_or_else(|| ClientError::Options(format!("-{c}: needs a value")))?;
                    i += 1;
                    Some((*v).to_string())
                };
                read.push(Word { row, value });
            }
        } else {
            paths.push(w.to_string());
        }
    }
    let mut out = ClientArgs {
        options: Options::default(),
        port: None,
        password_file: None,
        contimeout: None,
        address: None,
        protocol: None,
        rsh: None,
        rsync_path: None,
    };
    let mut transfer = Vec::new();
    for Word { row, value } in read {
        let def = &OPTIONS[row];
        let shown = def.long.map_or_else(
            || format!("-{}", def.short.unwrap_or('?')),
            |l| format!("--{l}"),
        );
        if !SUPPORTED.contains(&def.key) {
            return Err(ClientError::Options(format!(
                "{shown}: not supported by this client"
            )));
        }
        let v = value.unwrap_or_default();
        let bad = |what: &str| ClientError::Options(format!("{shown}={v}: {what}"));
        match def.key {
            "rsync_port" => {
                out.port = Some(
                    v.parse()
                        .ok()
                        .filter(|p| *p != 0)
                        .ok_or_else(|| bad("not a port"))?,
                );
            }
            "password_file" => out.password_file = Some(PathBuf::from(&v)),
            "shell_cmd" => out.rsh = Some(v.clone()),
            "rsync_path" => out.rsync_path = Some(v.clone()),
            "connect_timeout" => {
                out.contimeout = Some(v.parse().map_err(|_| bad("not a number of seconds"))?);
            }
            "bind_address" => out.address = Some(v.parse().map_err(|_| bad("not an address"))?),
            "protocol_version" => {
                let p: i32 = v.parse().map_err(|_| bad("not a number"))?;
                if !(crate::MIN_PROTOCOL_VERSION..=crate::PROTOCOL_VERSION).contains(&p) {
                    return Err(bad("outside the protocols this client speaks (27-32)"));
                }
                out.protocol = Some(p);
            }
            _ => match (def.long, def.arg) {
                (Some(l), ArgKind::Flag) => transfer.push(format!("--{l}")),
                (Some(l), _) => transfer.push(format!("--{l}={v}")),
                (None, ArgKind::Flag) => transfer.push(format!("-{}", def.short.unwrap_or('?'))),
                (None, _) => {
                    transfer.push(format!("-{}", def.short.unwrap_or('?')));
                    transfer.push(v.clone());
                }
            },
        }
    }
    out.options = parse_server_args(&transfer, &Refusals::none())
        .map_err(|e| ClientError::Options(e.to_string()))?;
    Ok((out, paths))
}

fn unknown(w: &str) -> ClientError {
    ClientError::Options(format!("{w}: unknown option"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<ClientArgs, ClientError> {
        parse_options(&s.split_whitespace().collect::<Vec<_>>())
    }

    #[test]
    fn sersync_and_lsyncd_strings() {
        let a = parse("-artuz -R --delete --timeout=100 --port=874 --exclude=*.tmp").unwrap();
        let o = &a.options;
        assert!(o.recurse && o.preserve_links && o.preserve_perms && o.preserve_mtimes);
        assert!(o.update_only && o.compress > 0 && o.relative && o.deletes());
        assert_eq!(o.io_timeout, Some(100));
        assert_eq!(a.port, Some(874));
        assert_eq!(o.filters.len(), 1);
        let a = parse("-a --password-file /etc/p --contimeout 5 --address 127.0.0.2 --bwlimit=100")
            .unwrap();
        assert_eq!(a.options.bwlimit, Some(100));
        assert_eq!(a.password_file, Some(PathBuf::from("/etc/p")));
        assert_eq!(a.contimeout, Some(5));
        assert_eq!(a.address, Some("127.0.0.2".parse().unwrap()));
        assert!(parse("-avzH --compress-choice=zstd -c --numeric-ids --partial -n").is_ok());
    }

    proptest::proptest! {
        #[test]
        fn any_words_parse_or_fail_cleanly(words in proptest::collection::vec(".{0,12}", 0..8)) {
            if let Ok((a, _)) = parse_command_line(&words) {
                let _ = crate::protocol::options::server_args(&a.options, 32);
            }
        }
    }

    #[test]
    fn acls_are_carried_and_imply_perms() {
        let o = parse("-rA").unwrap().options;
        assert!(o.preserve_acls && o.preserve_perms);
        assert!(!parse("-aA --no-A").unwrap().options.preserve_acls);
    }

    #[test]
    fn what_the_client_does_not_do_is_named() {
        for (s, named) in [
            ("-a --progress", "--progress"),
            ("--frobnicate", "--frobnicate"),
            ("-a somepath", "somepath"),
            ("--port=x", "--port"),
            ("--protocol=26", "--protocol"),
        ] {
            let e = parse(s).unwrap_err().to_string();
            assert!(e.contains(named), "{s}: {e}");
        }
    }
}
