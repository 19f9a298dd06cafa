//! syncctl: see the library's documentation.

use clap::Parser;
use syncctl::cli::{Cli, Command};

fn main() {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Ls(a) => syncctl::ls::run(a, &mut std::io::stdout().lock()),
        Command::Pull(a) => syncctl::transfer::run_pull(a),
        Command::Push(a) => syncctl::transfer::run_push(a),
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
