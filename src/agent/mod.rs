//! The in-pod agent: log in to Vault, render every template and secret, write the files
//! atomically. With `--once` (the init container) it then exits; without, it is the sidecar
//! that keeps every file fresh for the life of the pod.
//!
//! This file is the front door (flags, errors, `run`, which prepares and dispatches); `init` is
//! the `--once` path and `sidecar/` the long-running one; `compile`, `snapshot`, `fetch` and
//! `state` (the hand-over between them) are what both use.

pub(crate) mod compile;
pub mod config;
pub(crate) mod fetch;
pub(crate) mod init;
mod schedule;
pub(crate) mod server;
pub(crate) mod sidecar;
pub(crate) mod sink;
mod snapshot;
pub mod state;
pub mod timing;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use injector::AgentConfig;
use tracing::warn;

use crate::env::Env;
use crate::template;
use crate::vault;

pub use self::config::load as load_config;

/// Why the agent stopped. Each names what failed; none holds a secret.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration cannot be used.
    #[error("config invalid: {0}")]
    Config(String),
    /// A template file cannot be read.
    #[error("template {template}: cannot read source {}: {error}", .path.display())]
    Source {
        /// Template name.
        template: String,
        /// The source file.
        path: PathBuf,
        /// The I/O error (in the message, not the source chain, so it is shown once).
        error: std::io::Error,
    },
    /// Templates do not compile.
    #[error("{}", summary(.0))]
    Syntax(Vec<template::Error>),
    /// Logging in failed.
    #[error("{0}")]
    Login(vault::Error),
    /// Outputs failed to render; nothing was written.
    #[error("{}", summary(.0))]
    Render(Vec<template::Error>),
    /// A destination cannot be written.
    #[error("cannot write {} for {name}: {error}", .path.display())]
    Write {
        /// Template or secret name.
        name: String,
        /// The destination.
        path: PathBuf,
        /// The I/O error (in the message, not the source chain, so it is shown once).
        error: std::io::Error,
    },
    /// A destination directory does not take new files.
    #[error(
        "cannot write files in {} (for {name}): {error}{hint}",
        .dir.display(),
        hint = permission_hint(.error)
    )]
    Unwritable {
        /// Template or secret name.
        name: String,
        /// The directory.
        dir: PathBuf,
        /// The I/O error.
        error: std::io::Error,
    },
    /// The config snapshot cannot be composed, or fails its schema; nothing was written.
    #[error("{0}")]
    Snapshot(String),
    /// The process could not start its runtime.
    #[error("cannot start: {0}")]
    Runtime(String),
    /// `exit_on_retry_failure`: a fetch kept failing; the agent exits so that the kubelet
    /// restarts it (vault-k8s's `template-config-exit-on-retry-failure`).
    #[error(
        "giving up: fetching {path} failed {attempts} times in a row (last: {reason});          exit_on_retry_failure is set, so the agent exits and is restarted"
    )]
    RetriesExhausted {
        /// The Vault path.
        path: String,
        /// Failures in a row.
        attempts: u32,
        /// The last failure's fixed label.
        reason: &'static str,
    },
}

fn permission_hint(error: &std::io::Error) -> &'static str {
    use std::io::ErrorKind::{PermissionDenied, ReadOnlyFilesystem};
    match error.kind() {
        PermissionDenied | ReadOnlyFilesystem => {
            "; the volume may be read-only or belong to another user (check fsGroup and runAsUser)"
        }
        _ => "",
    }
}

/// The first error, and how many more there were (each is logged).
fn summary(errors: &[template::Error]) -> String {
    match errors {
        [] => "no error".to_owned(),
        [only] => only.to_string(),
        [first, rest @ ..] => format!("{first} (and {} more failures, logged above)", rest.len()),
    }
}

/// `hydrant agent`'s flags: what the agent subcommand was asked to do.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The agent configuration: hydrant's own (YAML or JSON), or a Vault Agent configuration
    /// (HCL or its JSON form; told apart by the `.hcl` extension or the text). Vault Agent
    /// configurations may be given several times, or as a directory, and merge as Vault Agent
    /// merges them. A Vault Agent configuration with `exec` and `env_template` runs its command
    /// with the variables, as `bao agent` does (see hydrant exec). Without it,
    /// HYDRANT_AGENT_CONFIG is read.
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: Vec<PathBuf>,
    /// Render every file once, then exit: what the init container does before the app starts.
    #[arg(long)]
    pub once: bool,
    /// Exit 0 if the running agent has rendered every file, 1 if not: native mode's startup
    /// probe. Reads nothing but the ready file.
    #[arg(long, conflicts_with_all = ["once", "config"])]
    pub check_ready: bool,
    /// The file a running agent creates once every file is rendered.
    #[arg(long, value_name = "FILE", default_value = injector::names::READY_FILE)]
    pub ready_file: PathBuf,
    /// The agent's private directory (the init container's token and leases for the sidecar,
    /// the ready file), over the configuration's `state_dir`: what the webhook gives an agent
    /// running on a Vault Agent ConfigMap, whose configuration has no such key.
    #[arg(long, value_name = "DIR", conflicts_with = "check_ready")]
    pub state_dir: Option<PathBuf>,
}

/// The agent has not rendered every file yet (`hydrant agent --check-ready`).
#[derive(Debug, thiserror::Error)]
#[error("not ready: {} does not exist yet", .0.display())]
pub struct NotReady(PathBuf);

/// `hydrant agent`: answers `--check-ready`, or runs the agent to completion; on a Vault Agent
/// configuration with `exec` and `env_template`, runs its command as `hydrant exec` does (what
/// `bao agent` does with it).
pub fn command(args: &Args, env: Arc<dyn Env>) -> anyhow::Result<()> {
    if args.check_ready {
        return check_ready(&args.ready_file).map_err(Into::into);
    }
    let (role, config) = config::load_agent(&args.config, env.as_ref()).map_err(Error::Config)?;
    match role {
        config::Role::Agent => run_config(args, config, env)?,
        config::Role::Supervisor => {
            for (flag, given) in [
                ("--once", args.once),
                ("--state-dir", args.state_dir.is_some()),
            ] {
                if given {
                    return Err(Error::Config(format!(
                        "{flag} is for an agent that renders files; this configuration's exec and env_template run a command under supervision: remove {flag}"
                    ))
                    .into());
                }
            }
            crate::exec::supervise(config, &[], env)?
        }
    }
    Ok(())
}

/// Whether the running agent has rendered every file: native mode's startup probe.
fn check_ready(ready_file: &Path) -> Result<(), NotReady> {
    if ready_file.exists() {
        Ok(())
    } else {
        Err(NotReady(ready_file.to_owned()))
    }
}

/// Runs the agent to completion: loads and compiles everything, composes the config snapshot
/// and checks every destination before anything is sent to Vault, then renders once (the init
/// container) or runs the sidecar.
pub fn run(args: &Args, env: Arc<dyn Env>) -> Result<(), Error> {
    let config = config::load(&args.config, env.as_ref()).map_err(Error::Config)?;
    run_config(args, config, env)
}

/// [`run`] on a configuration already loaded.
fn run_config(args: &Args, mut config: AgentConfig, env: Arc<dyn Env>) -> Result<(), Error> {
    if let Some(dir) = &args.state_dir {
        config.state_dir = Some(dir.clone());
    }
    let (mut engine, sources) = compile::compile(&config, env)?;
    // The snapshot is composed before anything is sent to Vault: an invalid one costs no login.
    let snapshot = config.snapshot.as_ref().map(snapshot::compose);
    if let Some(result) = &snapshot {
        match result {
            Ok(snapshot) => snapshot::show(&mut engine, snapshot),
            Err(e) if args.once || config.exit_after_auth => {
                return Err(Error::Snapshot(e.clone()));
            }
            Err(error) => {
                warn!(%error, "the config snapshot is invalid; templates that read it wait for a valid one")
            }
        }
    }
    check_destinations(&config)?;
    let _pid_file = config
        .pid_file
        .as_deref()
        .map(sink::PidFile::create)
        .transpose()?;
    let once = args.once || config.exit_after_auth;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Runtime(format!("the async runtime: {e}")))?;
    if !once {
        let snapshot = snapshot.and_then(Result::ok);
        let result = runtime.block_on(async {
            let stop = crate::shutdown_signal();
            let status = Arc::new(server::SidecarStatus::new());
            let parts = sidecar::Parts {
                engine,
                sources,
                snapshot,
                outputs: Box::new(sidecar::Files::new(&config, status.clone())),
                status,
                start: None,
            };
            sidecar::run(&config, parts, stop).await
        });
        runtime.shutdown_timeout(std::time::Duration::from_secs(1));
        return result;
    }
    let result = runtime.block_on(init::run(&config, &engine));
    // Every file is written and synced: idle connections and pool threads need no goodbye, and
    // an init container that exits sooner lets the app start sooner.
    runtime.shutdown_background();
    result
}

/// Checks, before anything is fetched, that every destination directory takes new files (and
/// the token sinks' too), creating missing ones unless a template's `create_dest_dirs` is false.
fn check_destinations(config: &AgentConfig) -> Result<(), Error> {
    for template in config.templates.iter().filter(|t| !t.create_dest_dirs()) {
        let dir = crate::files::parent(&template.destination);
        if !dir.is_dir() {
            return Err(Error::Unwritable {
                name: template.name.clone(),
                dir: dir.to_owned(),
                error: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "the directory does not exist and create_dest_dirs is false",
                ),
            });
        }
    }
    let sinks = config
        .token_sinks
        .iter()
        .map(|s| ("token sink", s.path.as_path()));
    let mut checked: Vec<&Path> = Vec::new();
    for (name, destination) in config
        .outputs()
        .map(|o| (o.name, o.destination))
        .chain(sinks)
    {
        let dir = crate::files::parent(destination);
        if checked.contains(&dir) {
            continue;
        }
        checked.push(dir);
        crate::files::check_writable(dir).map_err(|error| Error::Unwritable {
            name: name.to_owned(),
            dir: dir.to_owned(),
            error,
        })?;
    }
    Ok(())
}
