//! The `hydrant` binary: parse the command line, start logging, run, map the error to a status.

use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser as _;
use hydrant::cli::Cli;
use hydrant::env::ProcessEnv;

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(e) = hydrant::telemetry::init(&ProcessEnv) {
        eprintln!("hydrant: {e}");
        return ExitCode::from(hydrant::EXIT_USAGE);
    }
    // reqwest and vaultrs use rustls' process-wide provider; ring is the only one built in.
    let _ = rustls::crypto::ring::default_provider().install_default();
    match hydrant::run(cli, Arc::new(ProcessEnv)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hydrant: {e:#}");
            ExitCode::from(hydrant::exit_code(&e))
        }
    }
}
