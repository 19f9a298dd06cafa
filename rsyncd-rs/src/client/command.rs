//! `rsyncd-rs` as an rsync client: `rsyncd-rs [OPTIONS] SRC... DEST` with either side an
//! rsync daemon (`rsync://host/module/path`, `host::module/path`, through TCP or
//! `RSYNC_CONNECT_PROG`), a remote shell's host (`host:path`, with `-e`), or both local
//! (a local copy, with our own binary as the receiving server); `rsyncd-rs [OPTIONS]
//! SRC` lists. The library does the work; this turns rsync's command line into calls
//! and prints what rsync's client prints of the outcome (its summary with `-v` or
//! `--stats`, errors, the exit code). Upstream: main.c, main() and start_client().

use std::path::{Path, PathBuf};

use super::connect::ConnectOptions;
use super::error::ClientError;
use super::options::{ClientArgs, parse_command_line};
use super::pull::pull_from;
use super::push::push_to;
use super::session::Endpoint;
use super::url::{DEFAULT_PORT, Remote};
use crate::engine::exit::ExitCode;
use crate::engine::logfmt::human_num;

/// Where one command-line argument is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Place {
    Local(String),
    /// `host:path` over the remote shell.
    Shell {
        host: String,
        path: String,
    },
    /// A daemon address.
    Daemon(String),
}

/// Reads an argument as upstream's check_for_hostspec() does: `rsync://` or `host::`
/// names a daemon, `host:path` (a colon before any slash) a remote shell's host.
fn place(arg: &str) -> Place {
    if arg.starts_with("rsync://") {
        return Place::Daemon(arg.to_string());
    }
    let before_slash = arg.split('/').next().unwrap_or(arg);
    if let Some(i) = before_slash.find(':') {
        if before_slash[i..].starts_with("::") {
            return Place::Daemon(arg.to_string());
        }
        if i > 0 && !before_slash.starts_with('[') {
            return Place::Shell {
                host: arg[..i].to_string(),
                path: arg[i + 1..].to_string(),
            };
        }
    }
    Place::Local(arg.to_string())
}

/// Runs the client command line `argv` (without the program name); returns the exit
/// code, having printed what rsync prints.
pub fn run(argv: &[String]) -> i32 {
    match run_inner(argv) {
        Ok(code) => code.0,
        Err(e) => {
            eprintln!("{e}");
            if !matches!(e, ClientError::Transfer { .. }) {
                eprintln!(
                    "rsync error: {} (code {})",
                    e.exit_code().text(),
                    e.exit_code().0
                );
            }
            e.exit_code().0
        }
    }
}

fn run_inner(argv: &[String]) -> Result<ExitCode, ClientError> {
    let (args, paths) = parse_command_line(argv)?;
    let Some((last, sources)) = paths.split_last() else {
        return Err(ClientError::Options(
            "usage: rsyncd-rs [OPTIONS] SRC... DEST (or --daemon; see --help)".into(),
        ));
    };
    let c = args.connect_options();
    let verbose = args.options.verbose > 0;
    let stats = args
        .options
        .info
        .at_least(crate::protocol::options::Info::Stats, 1);
    if sources.is_empty() {
        return list(&args, &c, last);
    }
    let outcome = match place(last) {
        Place::Daemon(url) => {
            let remote = Remote::parse(&url, args.port.unwrap_or(DEFAULT_PORT))?;
            push_local(&args, &c, Endpoint::Daemon(&remote), sources)?
        }
        Place::Shell { host, path } => {
            let command = shell_command(&args, Some(&host));
            push_local(
                &args,
                &c,
                Endpoint::Shell {
                    command: &command,
                    path: &path,
                },
                sources,
            )?
        }
        Place::Local(dest) => match sources {
            [one] if !matches!(place(one), Place::Local(_)) => pull_to(&args, &c, one, &dest)?,
            _ => {
                let command = shell_command(&args, None);
                let dest_path = absolute(&dest);
                let shown = dest_path.display().to_string();
                push_local(
                    &args,
                    &c,
                    Endpoint::Shell {
                        command: &command,
                        path: &shown,
                    },
                    sources,
                )?
            }
        },
    };
    for line in &outcome.lines {
        eprintln!("{line}");
    }
    if verbose || stats {
        let speedup = if outcome.sent + outcome.received > 0 {
            outcome.total_size as f64 / (outcome.sent + outcome.received) as f64
        } else {
            0.0
        };
        println!(
            "\nsent {} bytes  received {} bytes  {:.2} bytes/sec",
            human_num(outcome.sent as i64, 1),
            human_num(outcome.received as i64, 1),
            (outcome.sent + outcome.received) as f64 / outcome.seconds.max(0.001)
        );
        println!(
            "total size is {}  speedup is {speedup:.2}",
            human_num(outcome.total_size as i64, 1)
        );
    }
    if outcome.code != ExitCode::OK {
        eprintln!(
            "rsync error: {} (code {})",
            outcome.code.text(),
            outcome.code.0
        );
    }
    Ok(outcome.code)
}

/// What a transfer did, as the summary shows it.
struct Done {
    code: ExitCode,
    sent: u64,
    received: u64,
    total_size: u64,
    seconds: f64,
    lines: Vec<String>,
}

/// The remote shell command (`-e`, else `RSYNC_RSH`, else ssh) and the program it runs
/// there (`--rsync-path`, else `rsync`); for a local copy, our own binary.
fn shell_command(args: &ClientArgs, host: Option<&str>) -> Vec<String> {
    let Some(host) = host else {
        let me = std::env::current_exe()
            .map_or_else(|_| "rsyncd-rs".into(), |p| p.display().to_string());
        return vec![me];
    };
    let rsh = args
        .rsh
        .clone()
        .or_else(|| std::env::var("RSYNC_RSH").ok())
        .unwrap_or_else(|| "ssh".into());
    let mut cmd: Vec<String> = rsh.split_whitespace().map(str::to_string).collect();
    let (user, host) = match host.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, host),
    };
    if let Some(u) = user {
        cmd.push("-l".into());
        cmd.push(u.into());
    }
    cmd.push(host.into());
    cmd.push(args.rsync_path.clone().unwrap_or_else(|| "rsync".into()));
    cmd
}

/// An absolute form of a local path, kept as written otherwise (no symlink resolved).
fn absolute(p: &str) -> PathBuf {
    let path = Path::new(p);
    if path.is_absolute() {
        return path.to_path_buf();
    }
    let mut out = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
    out.push(path);
    if p.ends_with('/') {
        let mut s = out.into_os_string();
        s.push("/");
        out = PathBuf::from(s);
    }
    out
}

/// Pushes local `sources` to `endpoint`: the sender reads through a tree at the sources'
/// common directory (the working directory with `-R`).
fn push_local(
    args: &ClientArgs,
    c: &ConnectOptions,
    endpoint: Endpoint<'_>,
    sources: &[String],
) -> Result<Done, ClientError> {
    let started = std::time::Instant::now();
    for s in sources {
        if !matches!(place(s), Place::Local(_)) {
            return Err(ClientError::Options(
                "The source and destination cannot both be remote.".into(),
            ));
        }
    }
    let (root, names) = transfer_roots(sources, args.options.relative)?;
    let out = push_to(endpoint, c, &args.options, &root, &names)?;
    Ok(Done {
        code: out.code,
        sent: out.bytes_written,
        received: out.bytes_read,
        total_size: out.total_size,
        seconds: started.elapsed().as_secs_f64(),
        lines: out.lines.into_iter().map(|l| l.text).collect(),
    })
}

/// The tree root and the arguments under it for local sources: the filesystem root,
/// as the user's own rsync reads from anywhere (and follows links anywhere with `-L` or
/// `--copy-unsafe-links`). Each source becomes its absolute path; with `-R` a relative
/// source keeps only its given part, cut from the working directory by a `/./`
/// marker, as upstream's implied-directory rule reads it.
fn transfer_roots(
    sources: &[String],
    relative: bool,
) -> Result<(PathBuf, Vec<Vec<u8>>), ClientError> {
    let cwd = std::env::current_dir().map_err(|e| ClientError::Local(format!("getcwd: {e}")))?;
    let cwd = cwd.display().to_string();
    let names = sources
        .iter()
        .map(|s| {
            let full = if s.starts_with('/') {
                s.trim_start_matches('/').to_string()
            } else if relative {
                let base = cwd.trim_matches('/');
                if base.is_empty() {
                    s.clone()
                } else {
                    format!("{base}/./{s}")
                }
            } else {
                absolute(s)
                    .display()
                    .to_string()
                    .trim_start_matches('/')
                    .to_string()
            };
            if full.is_empty() {
                b".".to_vec()
            } else {
                full.into_bytes()
            }
        })
        .collect();
    Ok((PathBuf::from("/"), names))
}

/// Pulls `src` (a daemon address or `host:path`) into the local `dest`.
fn pull_to(
    args: &ClientArgs,
    c: &ConnectOptions,
    src: &str,
    dest: &str,
) -> Result<Done, ClientError> {
    let started = std::time::Instant::now();
    // `dest/` or an existing directory receives into itself; another name is what the
    // single file (or the top directory) becomes.
    let dest_abs = absolute(dest);
    let (root, dest_arg) = if dest.ends_with('/') || dest_abs.is_dir() {
        (dest_abs.clone(), None)
    } else {
        let parent = dest_abs
            .parent()
            .map_or_else(|| PathBuf::from("/"), Path::to_path_buf);
        let name = dest_abs
            .file_name()
            .map(|n| std::os::unix::ffi::OsStrExt::as_bytes(n).to_vec());
        (parent, name)
    };
    let out = match place(src) {
        Place::Daemon(url) => {
            let remote = Remote::parse(&url, args.port.unwrap_or(DEFAULT_PORT))?;
            pull_from(Endpoint::Daemon(&remote), c, &args.options, &root, dest_arg)?
        }
        Place::Shell { host, path } => {
            let command = shell_command(args, Some(&host));
            pull_from(
                Endpoint::Shell {
                    command: &command,
                    path: &path,
                },
                c,
                &args.options,
                &root,
                dest_arg,
            )?
        }
        Place::Local(_) => return Err(ClientError::Options("internal: a local pull".into())),
    };
    Ok(Done {
        code: out.code,
        sent: out.server.read.max(0) as u64,
        received: out.server.written.max(0) as u64,
        total_size: out.server.total_size.max(0) as u64,
        seconds: started.elapsed().as_secs_f64(),
        lines: out.lines.into_iter().map(|l| l.text).collect(),
    })
}

/// `rsyncd-rs [OPTIONS] rsync://host/module/path`: the listing (or the module list).
fn list(args: &ClientArgs, c: &ConnectOptions, what: &str) -> Result<ExitCode, ClientError> {
    let Place::Daemon(url) = place(what) else {
        return Err(ClientError::Options(
            "listing is offered for daemon addresses (rsync://host/module/path)".into(),
        ));
    };
    let remote = Remote::parse(&url, args.port.unwrap_or(DEFAULT_PORT))?;
    if remote.module.is_empty() {
        for line in super::list_modules(&remote, c)? {
            println!("{line}");
        }
        return Ok(ExitCode::OK);
    }
    let o = &args.options;
    let l = super::list(
        &remote,
        c,
        &super::ListOptions {
            recursive: o.recurse,
            checksum: o.always_checksum,
            checksum_choice: o.checksum_choice.clone(),
            owners: o.preserve_uid || o.preserve_gid,
            numeric_ids: o.numeric_ids,
        },
    )?;
    for e in &l.entries {
        let shown = super::list::Shown::of(e);
        println!(
            "{} {:>14} {} {}",
            shown.mode,
            human_num(e.size.max(0), 1),
            shown.mtime,
            shown.name
        );
    }
    Ok(l.code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_as_upstream_reads_them() {
        assert_eq!(place("rsync://h/m"), Place::Daemon("rsync://h/m".into()));
        assert_eq!(place("h::m/p"), Place::Daemon("h::m/p".into()));
        assert_eq!(
            place("localhost:/tmp/x"),
            Place::Shell {
                host: "localhost".into(),
                path: "/tmp/x".into()
            }
        );
        assert_eq!(
            place("u@h:p"),
            Place::Shell {
                host: "u@h".into(),
                path: "p".into()
            }
        );
        assert_eq!(place("dir/a:b"), Place::Local("dir/a:b".into()));
        assert_eq!(place("/abs/path"), Place::Local("/abs/path".into()));
        assert_eq!(place(":x"), Place::Local(":x".into()));
    }

    #[test]
    fn transfer_roots_of_local_sources() {
        let two = ["/a/b/file".to_string(), "/a/b/dir/".to_string()];
        let (root, names) = transfer_roots(&two, false).unwrap();
        assert_eq!(root, PathBuf::from("/"));
        assert_eq!(names, vec![b"a/b/file".to_vec(), b"a/b/dir/".to_vec()]);
        let (_, names) = transfer_roots(&["/a/x".to_string(), "/".to_string()], true).unwrap();
        assert_eq!(names, vec![b"a/x".to_vec(), b".".to_vec()]);
        let cwd = std::env::current_dir().unwrap().display().to_string();
        let (_, names) = transfer_roots(&["x/y".to_string()], true).unwrap();
        let want = format!("{}/./x/y", cwd.trim_matches('/')).into_bytes();
        assert_eq!(names, vec![want]);
    }
}
