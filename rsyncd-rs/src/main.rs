//! `rsyncd-rs`: the daemon binary, a thin layer over the `rsyncd_rs` library.
//!
//! The command line is `rsync --daemon`'s: `rsyncd-rs --daemon [--no-detach]
//! [--config=FILE] [--port=N] [--address=IP] [--ipv4|--ipv6] [--log-file=FILE]
//! [--bwlimit=RATE] [--dparam=PARAM=VALUE]`. With a socket on standard input it serves
//! that one connection; `--server --daemon .` serves one session over a remote shell, and
//! `--server ARGS . DEST` (without `--daemon`) is the receiving end of `rsync -e ssh`.

use std::net::IpAddr;
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Parser;
use rsyncd_rs::daemon::config::DaemonConfig;
use rsyncd_rs::daemon::listener::{self, Family, ListenSpec};
use rsyncd_rs::daemon::log::{DaemonLog, LogTarget, target_for};
use rsyncd_rs::daemon::session::{self, SessionKind, SessionSetup};
use rsyncd_rs::daemon::{pidfile, privileges, startup};

/// The default configuration file, as rsyncd's.
const DEFAULT_CONFIG: &str = "/etc/rsyncd.conf";
/// The default port, as rsyncd's.
const DEFAULT_PORT: u16 = 873;

/// rsync-compatible daemon
#[derive(Debug, Parser)]
#[command(
    name = "rsyncd-rs",
    version = concat!(env!("CARGO_PKG_VERSION"), " (rsync 3.5.0 compatible, protocol versions 27-32)"),
    about = "An rsync daemon: serves rsyncd.conf modules to stock rsync clients.",
    disable_help_flag = true
)]
struct Cli {
    /// Run as an rsync daemon (required).
    #[arg(long)]
    daemon: bool,
    /// Do not detach from the parent (stay in the foreground).
    #[arg(long)]
    no_detach: bool,
    /// Detach from the parent (the default).
    #[arg(long, overrides_with = "no_detach")]
    detach: bool,
    /// Specify alternate rsyncd.conf file.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Listen on alternate port number.
    #[arg(long, value_name = "PORT")]
    port: Option<u16>,
    /// Bind to the specified address.
    #[arg(long, value_name = "ADDRESS")]
    address: Option<IpAddr>,
    /// Prefer IPv4.
    #[arg(short = '4', long)]
    ipv4: bool,
    /// Prefer IPv6.
    #[arg(short = '6', long)]
    ipv6: bool,
    /// Override the "log file" setting.
    #[arg(long, value_name = "FILE")]
    log_file: Option<PathBuf>,
    /// Override the "log format" setting.
    #[arg(long, value_name = "FMT")]
    log_file_format: Option<String>,
    /// Override the config's global parameter PARAM with VALUE.
    #[arg(short = 'M', long, value_name = "PARAM=VALUE")]
    dparam: Vec<String>,
    /// Limit socket I/O bandwidth (KiB/s, or with a K/M/G suffix).
    #[arg(long, value_name = "RATE")]
    bwlimit: Option<String>,
    /// Specify custom TCP options.
    #[arg(long, value_name = "OPTIONS")]
    sockopts: Option<String>,
    /// Serve one session over standard input and output (what a remote shell runs).
    #[arg(long)]
    server: bool,
    /// Seconds running sessions may take to finish after SIGTERM (rsyncd-rs extension).
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    shutdown_grace: u64,
    /// Increase verbosity.
    #[arg(short, long, action = clap::ArgAction::Count)]
    verbose: u8,
    /// Show this help.
    #[arg(short, long, action = clap::ArgAction::Help)]
    help: Option<bool>,
    /// The `.` a remote shell passes with `--server --daemon`.
    #[arg(hide = true)]
    rest: Vec<String>,
}

fn main() -> ExitCode {
    // `--server` without `--daemon`: the remote end of `rsync -e ssh`, whose arguments are
    // rsync's server arguments, not ours.
    let args: Vec<String> = std::env::args().skip(1).collect();
    // `--version`/`-V` and `-VV`: stock's capability text and JSON, with our values.
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["--version"] | ["-V"] => {
            print!("{}", rsyncd_rs::version::text());
            return ExitCode::SUCCESS;
        }
        ["-VV"] | ["-V", "-V"] | ["--version", "--version"] => {
            print!("{}", rsyncd_rs::version::json());
            return ExitCode::SUCCESS;
        }
        _ => {}
    }
    if args.first().is_some_and(|a| a == "--server") && !args.iter().any(|a| a == "--daemon") {
        let code = rsyncd_rs::shell::serve(&args);
        return ExitCode::from(u8::try_from(code.0).unwrap_or(1));
    }
    // Anything else that is not the daemon's own command line is rsync's client command
    // line: `rsyncd-rs -a SRC rsync://host/module/`, `-e ssh`, local copies.
    if is_client_command_line(&args) {
        let code = rsyncd_rs::client::run_command_line(&args);
        return ExitCode::from(u8::try_from(code).unwrap_or(1));
    }
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            // rsync's syntax-error exit code; help and version exit 0.
            return ExitCode::from(if e.use_stderr() { 1 } else { 0 });
        }
    };
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("rsyncd-rs: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// Whether `args` ask for the client: no `--daemon`, no `--server`, not only help or
/// version, and some path argument.
fn is_client_command_line(args: &[String]) -> bool {
    let daemonish = args.iter().any(|a| a == "--daemon" || a == "--server");
    let only_asks = args
        .iter()
        .all(|a| matches!(a.as_str(), "--help" | "-h" | "--version" | "-V" | "-VV"));
    !daemonish && !only_asks && args.iter().any(|a| !a.starts_with('-'))
}

fn run(cli: Cli) -> anyhow::Result<u8> {
    if !cli.daemon {
        bail!("this program only runs as a daemon: use --daemon (see --help)");
    }
    let config_path = cli
        .config
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG));
    let bwlimit = cli.bwlimit.as_deref().map(parse_rate).transpose()?;
    let setup = |kind| SessionSetup {
        config_path: config_path.clone(),
        dparams: cli.dparam.clone(),
        log_file: cli.log_file.clone(),
        kind,
        bwlimit,
        log_file_format: cli.log_file_format.clone(),
    };

    if cli.server {
        let stdin = std::io::stdin().as_fd().try_clone_to_owned()?;
        let stdout = std::io::stdout().as_fd().try_clone_to_owned()?;
        return Ok(exit_byte(session::serve(
            &setup(SessionKind::RemoteShell),
            stdin,
            stdout,
            None,
        )));
    }
    if listener::stdin_is_socket() {
        let sock = std::io::stdin().as_fd().try_clone_to_owned()?;
        let peer = std::net::TcpStream::from(sock.try_clone()?)
            .peer_addr()
            .ok();
        let out = sock.try_clone()?;
        // Library code must not write to a client's socket by accident: stdout/stderr go
        // to /dev/null, as rsync does under inetd.
        privileges::redirect_stdio_to_null(false)?;
        return Ok(exit_byte(session::serve(
            &setup(SessionKind::Socket),
            sock,
            out,
            peer,
        )));
    }

    let config = DaemonConfig::load(&config_path, &cli.dparam).map_err(|errors| {
        anyhow::anyhow!(
            "Failed to parse config file: {}\n{}",
            config_path.display(),
            errors
        )
    })?;
    for warning in startup::warnings(&config) {
        eprintln!("rsyncd-rs: warning: {warning}");
    }
    let family = match (cli.ipv4, cli.ipv6) {
        (true, false) => Family::V4,
        (false, true) => Family::V6,
        _ => Family::Any,
    };
    let spec = ListenSpec {
        address: cli.address.or(config
            .global
            .address
            .as_deref()
            .and_then(|a| a.parse().ok())),
        port: cli
            .port
            .or(Some(config.global.port).filter(|p| *p != 0))
            .unwrap_or(DEFAULT_PORT),
        family,
        backlog: config.global.listen_backlog,
        shutdown_grace: Duration::from_secs(cli.shutdown_grace),
    };
    let listeners =
        listener::bind(&spec).with_context(|| format!("failed to bind to port {}", spec.port))?;
    let pid_file = config.global.pid_file.clone().filter(|p| !p.is_empty());
    if !cli.no_detach {
        privileges::become_daemon()?;
    }
    let _pid_guard = match &pid_file {
        Some(p) => Some(pidfile::PidFile::create(std::path::Path::new(p))?),
        None => None,
    };
    let target = match &cli.log_file {
        Some(p) => LogTarget::File(p.clone()),
        None => target_for(
            config.defaults.log_file.as_deref().unwrap_or(""),
            config.defaults.syslog_facility.code(),
            &config.defaults.syslog_tag,
        ),
    };
    let mut log = DaemonLog::open(&target).with_context(|| format!("opening log {target:?}"))?;
    if let Some(warning) = startup::proxy_protocol_warning(&config) {
        log.line(warning);
    }
    log.line(&format!(
        "rsyncd-rs version {} starting, listening on port {}",
        rsyncd_rs::VERSION,
        spec.port
    ));
    let session_setup = setup(SessionKind::Listener);
    listener::accept_loop(
        listeners,
        &spec,
        |stream| {
            let peer = stream.peer_addr().ok();
            let fd = std::os::fd::OwnedFd::from(stream);
            match fd.try_clone() {
                Ok(out) => session::serve(&session_setup, fd, out, peer),
                Err(_) => 10,
            }
        },
        |event| log.line(event),
    )?;
    Ok(0)
}

fn exit_byte(code: i32) -> u8 {
    u8::try_from(code).unwrap_or(255)
}

/// `--bwlimit` values: KiB/s, or a number with a K/M/G suffix.
fn parse_rate(s: &str) -> anyhow::Result<u64> {
    let s = s.trim();
    let (num, mult) = match s.chars().last().map(|c| c.to_ascii_lowercase()) {
        Some('k') => (&s[..s.len() - 1], 1),
        Some('m') => (&s[..s.len() - 1], 1024),
        Some('g') => (&s[..s.len() - 1], 1024 * 1024),
        _ => (s, 1),
    };
    let n: f64 = num
        .parse()
        .with_context(|| format!("invalid --bwlimit value: {s}"))?;
    if n < 0.0 {
        bail!("invalid --bwlimit value: {s}");
    }
    Ok((n * mult as f64) as u64)
}
