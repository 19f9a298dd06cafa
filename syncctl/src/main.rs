//! syncctl: see the library's documentation.

use clap::Parser;
use syncctl::cli::{Cli, Command};

/// `syncctl verify`: 0 when every step reached every remote, 1 otherwise.
fn verify(a: &syncctl::cli::VerifyArgs) -> i32 {
    use std::io::IsTerminal;
    let run = || -> anyhow::Result<syncctl::verify::Report> {
        let path = match &a.agent_config {
            Some(p) => p.clone(),
            None => sersync_agent::config::default_path().ok_or_else(|| {
                anyhow::anyhow!(
                    "no agent configuration (looked for {}): give --agent-config FILE",
                    sersync_agent::config::DEFAULT_CONFIGS.join(" and ")
                )
            })?,
        };
        let cfg = sersync_agent::config::load(&path)?;
        let o = syncctl::verify::VerifyOptions {
            timeout: std::time::Duration::from_secs(a.timeout),
            keep: a.keep,
            progress: !a.json && std::io::stderr().is_terminal(),
        };
        syncctl::verify::verify(&cfg, &o)
    };
    match run() {
        Ok(r) => {
            print!("{}", syncctl::verify::render(&r, a.json));
            if r.passed() { 0 } else { 1 }
        }
        Err(e) => {
            eprintln!("syncctl: verify: {e:#}");
            1
        }
    }
}

fn main() {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Ls(a) => syncctl::ls::run(a, &mut std::io::stdout().lock()),
        Command::Pull(a) => syncctl::transfer::run_pull(a),
        Command::Push(a) => syncctl::transfer::run_push(a),
        Command::Verify(a) => std::process::exit(verify(a)),
        Command::Demo => {
            std::process::exit(match syncctl::demo::run(&mut std::io::stdout().lock()) {
                Ok(code) => code,
                Err(e) => {
                    eprintln!("syncctl: demo: {e:#}");
                    1
                }
            })
        }
        Command::Check(a) => Ok(syncctl::check::main(a)),
    };
    let code = match result {
        Ok(code) => code,
        // A reader that went away (`| head`) is not worth a message.
        Err(rsyncd_rs::client::ClientError::Local(m)) if m.contains("Broken pipe") => 0,
        Err(e) => {
            eprintln!("syncctl: {e}");
            e.exit_code().0
        }
    };
    std::process::exit(code);
}
