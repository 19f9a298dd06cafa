//! The command line.

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "syncctl",
    version,
    about = "Manage rsyncd-rs and sersync-agent, and reach rsync daemons"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// List a remote tree (rsync://[user@]host[:port]/module[/path] or host::module/path);
    /// without a module, the daemon's module list.
    Ls(LsArgs),
    /// Pull a remote path into a local directory: `syncctl pull [RSYNC OPTIONS] URL DEST`
    /// (options as rsync spells them: -a, -z, --delete, --exclude=PAT, --password-file=F...).
    Pull(PullArgs),
    /// Push local paths to a module: `syncctl push [RSYNC OPTIONS] SRC... URL`. With -R
    /// (sersync's way) the paths' directories are recreated; `--root DIR` first says what
    /// they are relative to (default: the current directory).
    Push(PushArgs),
    /// The touch-and-compare test against the live systems: in a fresh directory of the
    /// watched tree, files, directories, content, a change (and, deletes on, a deletion),
    /// each waited for on every remote of the agent's configuration.
    Verify(VerifyArgs),
    /// Everything on this machine: rsyncd-rs and sersync-agent started on loopback from
    /// the reference deployment's files, verified, stopped and removed.
    Demo,
    /// Check rsyncd.conf and the agent's config with the programs' own parsers, each on
    /// its own and against each other; exit 0 when nothing fails, 1 otherwise.
    Check(CheckArgs),
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The agent's configuration (confxml.xml or TOML); default: where the agent looks.
    #[arg(long, value_name = "FILE")]
    pub agent_config: Option<std::path::PathBuf>,
    /// Seconds each step may take to reach every remote.
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    pub timeout: u64,
    /// Leave the test directory in place on both sides.
    #[arg(long)]
    pub keep: bool,
    /// Print the results as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The daemon's config (default: /etc/rsyncd.conf, if present).
    #[arg(long, value_name = "FILE")]
    pub server_config: Option<std::path::PathBuf>,
    /// The agent's config, confxml.xml or TOML (default: the agent's own default paths,
    /// if present).
    #[arg(long, value_name = "FILE")]
    pub agent_config: Option<std::path::PathBuf>,
    /// Also connect to each of the agent's remotes with its credentials.
    #[arg(long)]
    pub remote: bool,
    /// JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct PushArgs {
    /// The local directory the paths are relative to.
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub root: std::path::PathBuf,
    /// rsync options, then the paths and the destination URL.
    #[arg(allow_hyphen_values = true, trailing_var_arg = true, num_args = 2.., value_name = "ARGS")]
    pub words: Vec<String>,
}

#[derive(Debug, Args)]
pub struct PullArgs {
    /// rsync options, then the source URL and the destination directory.
    #[arg(allow_hyphen_values = true, trailing_var_arg = true, num_args = 2.., value_name = "ARGS")]
    pub words: Vec<String>,
}

/// How to reach the daemon: rsync's option names.
#[derive(Debug, Args)]
pub struct ConnectArgs {
    /// Read the daemon password from FILE (its first line; not readable by others).
    /// Without it, RSYNC_PASSWORD is used when set.
    #[arg(long, value_name = "FILE")]
    pub password_file: Option<std::path::PathBuf>,
    /// The daemon's port where the address gives none.
    #[arg(long, default_value_t = rsyncd_rs::client::DEFAULT_PORT)]
    pub port: u16,
    /// I/O timeout in seconds (0: none).
    #[arg(long, value_name = "SECONDS", default_value_t = 0)]
    pub timeout: u64,
    /// Connect timeout in seconds (0: the system's).
    #[arg(long, value_name = "SECONDS", default_value_t = 0)]
    pub contimeout: u64,
    /// Connect from this local address.
    #[arg(long, value_name = "ADDRESS")]
    pub address: Option<std::net::IpAddr>,
    /// The highest protocol version to offer (27 to 32).
    #[arg(long, value_name = "NUM")]
    pub protocol: Option<i32>,
}

#[derive(Debug, Args)]
pub struct LsArgs {
    /// The whole tree, not only the top level.
    #[arg(short, long)]
    pub recursive: bool,
    /// Each file's strong checksum, as the daemon computes it (rsync -c).
    #[arg(short = 'c', long)]
    pub checksum: bool,
    /// The checksum for -c instead of the negotiated one (md5, sha1, xxh128, ...).
    #[arg(long, value_name = "NAME")]
    pub checksum_choice: Option<String>,
    /// Owners and groups.
    #[arg(short = 'o', long)]
    pub owners: bool,
    /// Owners and groups as numbers, not names.
    #[arg(long)]
    pub numeric_ids: bool,
    /// JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// rsync://[user@]host[:port]/module[/path] or [user@]host::module[/path]
    pub url: String,
}
