//! `sersync-agent`: sersync's command line (`-d -r -n N -o CONFIG -m PLUGIN`) over the
//! agent library, plus `convert` (confxml.xml to our TOML) and `status`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use sersync_agent::agent::{self, RunOptions};
use sersync_agent::config::{self, AgentConfig, DEFAULT_CONFIGS};
use tracing::{error, info};

#[derive(Debug, Parser)]
#[command(
    name = "sersync-agent",
    version,
    about = "Watches a tree and pushes every change to rsync daemons (sersync's replacement)",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    /// Run in the background (a pid file in the state directory); without it the agent
    /// stays in the foreground, as systemd runs it.
    #[arg(short = 'd')]
    detach: bool,
    /// Push the whole watched tree before watching.
    #[arg(short = 'r')]
    initial_sync: bool,
    /// Sessions at once, across remotes.
    #[arg(short = 'n', default_value_t = 10, value_name = "N")]
    sessions: usize,
    /// The configuration: sersync's confxml.xml or our TOML (told apart by content).
    #[arg(short = 'o', value_name = "CONFIG")]
    config: Option<PathBuf>,
    /// Run one plugin alone (command, socket or refreshCDN), pushing nothing.
    #[arg(short = 'm', value_name = "PLUGIN")]
    mode: Option<String>,
    /// Where the journals and the status file go (overrides the configuration).
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// Seconds SIGTERM gives the queues to drain.
    #[arg(long, default_value_t = 10, value_name = "SECONDS")]
    drain: u64,
    /// How to watch: `inotify` (a watch per directory) or `fanotify` (one mark on the
    /// whole filesystem; Linux 5.9+, root). Overrides `[agent] watcher`.
    #[arg(long, value_name = "KIND")]
    watcher: Option<config::WatcherKind>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print a confxml.xml (or TOML) configuration as our TOML.
    Convert { file: PathBuf },
    /// Show the running agent's queues: depth, oldest pending change, last success and
    /// failure per remote.
    Status {
        #[arg(short = 'o', value_name = "CONFIG")]
        config: Option<PathBuf>,
        #[arg(long, value_name = "DIR")]
        state_dir: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("sersync-agent: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Some(Command::Convert { file }) => {
            let cfg = config::load(&file)?;
            print!("{}", config::to_toml(&cfg));
            return Ok(ExitCode::SUCCESS);
        }
        Some(Command::Status {
            config,
            state_dir,
            json,
        }) => return status(config.as_deref(), state_dir, json),
        None => {}
    }
    if let Some(m) = &cli.mode {
        sersync_agent::plugin::check_mode(m)?;
    }
    let path = config_path(cli.config.as_deref())?;
    let overrides = Overrides {
        state_dir: cli.state_dir.clone(),
        watcher: cli.watcher,
        only_plugin: cli.mode.clone(),
    };
    let cfg = load(&path, &overrides)?;
    // confxml's <debug start="true">: every event and session in the log.
    init_logs(cfg.debug);
    if cli.detach {
        nix::unistd::daemon(false, false)?;
        std::fs::create_dir_all(&cfg.agent.state_dir)?;
        std::fs::write(
            cfg.agent.state_dir.join("sersync-agent.pid"),
            format!("{}\n", std::process::id()),
        )?;
    }
    let opts = RunOptions {
        initial_sync: cli.initial_sync,
        sessions: cli.sessions,
        drain: Duration::from_secs(cli.drain),
        only_plugin: cli.mode,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(serve(path, overrides, cfg, opts))?;
    Ok(ExitCode::SUCCESS)
}

/// Runs until SIGTERM or SIGINT; SIGHUP reloads the configuration (the queues are on
/// disk, so nothing pending is lost across the reload).
async fn serve(
    path: PathBuf,
    overrides: Overrides,
    mut cfg: AgentConfig,
    mut opts: RunOptions,
) -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    loop {
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let mut task = tokio::spawn(agent::run(cfg.clone(), opts.clone(), stop_rx));
        let reload = tokio::select! {
            r = &mut task => return r?,
            _ = term.recv() => false,
            _ = int.recv() => false,
            _ = hup.recv() => true,
        };
        let _ = stop_tx.send(true);
        task.await??;
        if !reload {
            info!("stopped");
            return Ok(());
        }
        match load(&path, &overrides) {
            Ok(new) => {
                info!(config = %path.display(), "configuration reloaded");
                cfg = new;
            }
            Err(e) => error!("reload failed, keeping the running configuration: {e:#}"),
        }
        opts.initial_sync = false;
    }
}

/// What the command line sets over the configuration file (and over each reload).
#[derive(Debug, Default)]
struct Overrides {
    state_dir: Option<PathBuf>,
    watcher: Option<config::WatcherKind>,
    /// `-m`: that plugin alone, no pushes.
    only_plugin: Option<String>,
}

/// Loads and validates the configuration for what runs: the pushes, or with `-m`
/// that plugin alone.
fn load(path: &Path, overrides: &Overrides) -> anyhow::Result<AgentConfig> {
    let mut cfg = config::load(path)?;
    if let Some(d) = &overrides.state_dir {
        cfg.agent.state_dir = d.clone();
    }
    if let Some(w) = overrides.watcher {
        cfg.agent.watcher = w;
    }
    cfg.validate_for(overrides.only_plugin.as_deref())?;
    Ok(cfg)
}

fn config_path(given: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(p) = given {
        return Ok(std::path::absolute(p)?);
    }
    config::default_path()
        .map(std::path::absolute)
        .transpose()?
        .ok_or_else(|| {
            anyhow::anyhow!(
                "no configuration: give -o CONFIG (looked for {})",
                DEFAULT_CONFIGS.join(" and ")
            )
        })
}

fn status(
    config: Option<&Path>,
    state_dir: Option<PathBuf>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let dir = match state_dir {
        Some(d) => d,
        None => config::load(&config_path(config)?)?.agent.state_dir,
    };
    let snap = sersync_agent::status::read(&dir).map_err(|e| {
        anyhow::anyhow!(
            "no status in {} (is the agent running?): {e}",
            dir.display()
        )
    })?;
    if json {
        println!("{}", serde_json::to_string_pretty(&snap)?);
        return Ok(ExitCode::SUCCESS);
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    println!(
        "agent pid {} (status written {} s ago): {} kernel watches, {} queue overflows",
        snap.pid,
        now.saturating_sub(snap.written),
        snap.watches,
        snap.overflows
    );
    for r in &snap.remotes {
        let ago = |t: Option<u64>| {
            t.map_or("never".to_string(), |t| {
                format!("{} s ago", now.saturating_sub(t))
            })
        };
        println!(
            "{}: pending {}, oldest {}, pushed {} changes in {} sessions ({} bytes), \
             failures {} session / {} refused / {} path, last success {}, last failure {}{}",
            r.remote,
            r.pending,
            r.oldest_pending_secs
                .map_or("-".into(), |s| format!("{s:.1} s")),
            r.changes_pushed,
            r.sessions,
            r.bytes_sent,
            r.session_errors,
            r.refusals,
            r.path_failures,
            ago(r.last_success),
            ago(r.last_failure),
            r.last_failure_reason
                .as_deref()
                .map(|w| format!(" ({w})"))
                .unwrap_or_default(),
        );
    }
    for p in &snap.plugins {
        println!(
            "plugin {}: {} done, {} failed, {} dropped",
            p.plugin, p.done, p.failed, p.dropped
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Logs on standard error (journald under systemd), at `RUST_LOG`'s level, or `debug`
/// with the configuration's debug switch, `info` otherwise.
fn init_logs(debug: bool) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(if debug { "debug" } else { "info" })
    });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .init();
}
