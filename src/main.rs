//! The `hydrant` binary: parse the command line, start logging, run, map the error to a status.

use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser as _;
use hydrant::cli::Cli;
use hydrant::env::ProcessEnv;

fn main() -> ExitCode {
    // Before anything reads a secret: the environment and the command line are read below.
    let unprotected = hydrant::process::harden();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // --help and --version go to stdout and exit 0; usage errors exit 64, not clap's 2.
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() {
                hydrant::EXIT_USAGE
            } else {
                0
            });
        }
    };
    if let Err(errors) = hydrant::telemetry::init(&ProcessEnv) {
        for e in errors {
            eprintln!("hydrant: {e}");
        }
        return ExitCode::from(hydrant::EXIT_USAGE);
    }
    for error in unprotected {
        tracing::warn!(%error, "running without this protection");
    }
    // reqwest and vaultrs use rustls' process-wide provider; ring is the only one built in.
    let _ = rustls::crypto::ring::default_provider().install_default();
    match hydrant::run(cli, Arc::new(ProcessEnv)) {
        Ok(()) => ExitCode::SUCCESS,
        // The command hydrant exec ran said what it had to; its status is passed on as it is.
        Err(e) if e.is::<hydrant::exec::Exited>() => ExitCode::from(hydrant::exit_code(&e)),
        Err(e) => {
            eprintln!("hydrant: {e:#}");
            ExitCode::from(hydrant::exit_code(&e))
        }
    }
}
