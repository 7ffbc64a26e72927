//! hydrant: delivers Vault secrets and composed platform configuration into Kubernetes pods.
//!
//! One binary with several subcommands; this library holds all of them so that tests and
//! benchmarks reach the same code the binary runs.

pub mod agent;
pub mod cli;
pub mod env;
pub mod telemetry;
pub mod template;
pub mod vault;

use std::sync::Arc;

use crate::cli::{Cli, Command};
use crate::env::Env;

/// Exit status for a failure at run time.
pub const EXIT_FAILURE: u8 = 1;

/// Exit status for a usage or configuration error (BSD `EX_USAGE`).
pub const EXIT_USAGE: u8 = 64;

/// A subcommand whose issue has not landed yet.
#[derive(Debug, thiserror::Error)]
#[error("{0} is not implemented yet")]
pub struct NotImplemented(&'static str);

/// Runs the parsed command line.
pub fn run(cli: Cli, env: Arc<dyn Env>) -> anyhow::Result<()> {
    match cli.command {
        Command::Agent(args) => {
            let options = agent::Options {
                config: args.config.as_deref(),
                once: args.once,
            };
            agent::run(&options, env)?;
            Ok(())
        }
        other => Err(NotImplemented(other.name()).into()),
    }
}

/// The exit status for an error returned by [`run`].
pub fn exit_code(error: &anyhow::Error) -> u8 {
    if let Some(e) = error.downcast_ref::<agent::Error>() {
        e.exit_code()
    } else if error.is::<NotImplemented>() {
        EXIT_USAGE
    } else {
        EXIT_FAILURE
    }
}
