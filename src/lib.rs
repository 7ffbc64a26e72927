//! hydrant: delivers Vault secrets and composed platform configuration into Kubernetes pods.
//!
//! One binary with several subcommands; this library holds all of them so that tests and
//! benchmarks reach the same code the binary runs.

pub mod agent;
pub mod cli;
pub mod controller;
pub mod docs;
pub mod env;
pub mod exec;
pub mod files;
pub mod inject;
pub mod lease;
pub mod metrics;
pub mod policy;
pub mod process;
pub mod registry;
pub mod render;
pub mod signal;
pub mod snapshot;
pub mod telemetry;
pub mod template;
pub mod vault;
pub mod webhook;

use std::sync::Arc;

use crate::cli::{Cli, Command};
use crate::env::Env;

/// Exit status for a failure at run time.
pub const EXIT_FAILURE: u8 = 1;

/// Exit status for a usage or configuration error (BSD `EX_USAGE`).
pub const EXIT_USAGE: u8 = 64;

/// Runs the parsed command line: each subcommand turns its own flags into what it runs.
pub fn run(cli: Cli, env: Arc<dyn Env>) -> anyhow::Result<()> {
    match cli.command {
        Command::Agent(args) => agent::command(&args, env),
        Command::Exec(args) => exec::command(&args, env),
        Command::Install(args) => Ok(exec::install::command(&args)?),
        Command::Render(args) => render::command(&args, env),
        Command::Inject(args) => inject::command(&args, env.as_ref()),
        Command::Webhook(args) => webhook::command(*args, env.as_ref()),
        Command::CheckWebhook(args) => webhook::check::command(&args),
        Command::Completions(args) => docs::completions_command(&args),
        Command::Man(args) => docs::man_command(&args),
        Command::Policy(args) => policy::command(args, env.as_ref()),
        Command::Controller(args) => controller::command(args, env.as_ref()),
        Command::Signal(args) => Ok(signal::command(&args)?),
    }
}

/// Resolves on SIGTERM or SIGINT. The handlers are installed when this is called, not when the
/// future is first polled: a SIGTERM that comes right after a listener is bound must stop the
/// process gracefully, not kill it by the signal's default action. Call it inside the runtime.
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    use tokio::signal::unix::{SignalKind, signal};
    let term = signal(SignalKind::terminate());
    let interrupt = signal(SignalKind::interrupt());
    async move {
        match (term, interrupt) {
            (Ok(mut term), Ok(mut interrupt)) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = interrupt.recv() => {}
                }
            }
            (Ok(mut one), Err(_)) | (Err(_), Ok(mut one)) => {
                one.recv().await;
            }
            (Err(_), Err(_)) => std::future::pending().await,
        }
    }
}

/// The exit status for an error returned by [`run`], for every subcommand, decided here and
/// nowhere else (the README's table):
///
/// - `0`: done.
/// - `1` ([`EXIT_FAILURE`]): the command ran and failed: Vault, Kubernetes or git refused or
///   could not be reached, a file could not be written, a template failed while rendering, a pod
///   was denied (`inject`), the agent is not ready yet (`--check-ready`).
/// - `64` ([`EXIT_USAGE`]): the command could not run on what it was given: a bad flag, a missing
///   or invalid config, input, template or repository file, a template that does not compile, a
///   snapshot that fails its schema, policy problems. Nothing was sent to Vault.
pub fn exit_code(error: &anyhow::Error) -> u8 {
    use vault::Error as Vault;
    // A template's failure is the input's when it never reached a live Vault.
    let template_input = |errors: &[template::Error]| {
        errors.iter().all(|e| {
            e.vault_error()
                .is_none_or(|v| matches!(v, Vault::NotInFile { .. } | Vault::Config { .. }))
        })
    };
    if let Some(exec::Exited(code)) = error.downcast_ref::<exec::Exited>() {
        return *code;
    }
    let usage = if error.downcast_ref::<cli::InvalidSettings>().is_some() {
        true
    } else if let Some(e) = error.downcast_ref::<agent::Error>() {
        match e {
            agent::Error::Config(_)
            | agent::Error::Source { .. }
            | agent::Error::Syntax(_)
            | agent::Error::Snapshot(_)
            | agent::Error::Login(Vault::Config { .. }) => true,
            agent::Error::Login(_)
            | agent::Error::Render(_)
            | agent::Error::Write { .. }
            | agent::Error::Unwritable { .. }
            | agent::Error::Runtime(_)
            | agent::Error::RetriesExhausted { .. } => false,
        }
    } else if let Some(e) = error.downcast_ref::<render::Error>() {
        match e {
            render::Error::Input(_)
            | render::Error::Snapshot(_)
            | render::Error::SecretsFile { .. }
            | render::Error::AgentConfig(_) => true,
            render::Error::Io { what, .. } => *what == "read",
            render::Error::Template(errors) => template_input(errors),
        }
    } else if let Some(e) = error.downcast_ref::<inject::Error>() {
        match e {
            inject::Error::Denied(_) => false,
            inject::Error::Read { .. } | inject::Error::Parse { .. } => true,
        }
    } else if let Some(e) = error.downcast_ref::<webhook::Error>() {
        matches!(
            e,
            webhook::Error::Tls(_)
                | webhook::Error::TlsConfig(_)
                | webhook::Error::Limits(_)
                | webhook::Error::Kubernetes(_)
        )
    } else if let Some(e) = error.downcast_ref::<exec::Error>() {
        matches!(e, exec::Error::NoCommand | exec::Error::TwoCommands)
    } else if let Some(e) = error.downcast_ref::<signal::Error>() {
        matches!(e, signal::Error::Signal(_) | signal::Error::Pattern { .. })
    } else if let Some(e) = error.downcast_ref::<webhook::check::CheckError>() {
        matches!(
            e,
            webhook::check::CheckError::Ca(_) | webhook::check::CheckError::Url(_)
        )
    } else if let Some(e) = error.downcast_ref::<policy::Error>() {
        !matches!(e, policy::Error::Vault(_))
    } else if let Some(e) = error.downcast_ref::<controller::Error>() {
        !matches!(e, controller::Error::Runtime(_))
    } else {
        false
    };
    if usage { EXIT_USAGE } else { EXIT_FAILURE }
}
