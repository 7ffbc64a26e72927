//! `hydrant exec`: logs in, renders a command's environment (each variable from a template in
//! either syntax, or a Vault path and key), and runs the command with it. As its supervisor it
//! keeps the token and leases fresh with the agent's own sidecar loop, restarts the command
//! when a value changes (unless told not to), passes signals on, reaps, and exits with the
//! command's status; token sinks are kept current as the agent keeps them. With nothing to
//! renew, restarts off and no sink, it becomes the command (exec), so that no supervisor stays.
//!
//! The values live in memory only: in this process and the command's environment, never in a
//! file, a log line, an error or a metric.

mod child;
mod environment;
pub mod install;

use std::ffi::OsString;
use std::os::unix::process::CommandExt as _;
use std::path::PathBuf;
use std::sync::Arc;

use injector::AgentConfig;
use injector::agent_config::RestartOnSecretChanges;
use tokio::sync::{oneshot, watch};
use tracing::info;

use crate::agent::compile::compile_env;
use crate::agent::init::{FirstRender, first_render};
use crate::agent::server::SidecarStatus;
use crate::agent::sidecar::{self, Outputs as _};
use crate::agent::{self, Error as AgentError};
use crate::env::Env;

pub use self::environment::Values;

/// `hydrant exec`'s flags.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The configuration: hydrant's own (YAML or JSON) with `vault`, `auth`, `env` and
    /// optionally `exec`, or a Vault Agent configuration (HCL or its JSON form, several merged)
    /// with `env_template` and optionally `exec`. Without it, HYDRANT_AGENT_CONFIG is read.
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: Vec<PathBuf>,
    /// The command and its arguments, after `--`. Without them, the config's exec.command.
    #[arg(last = true, value_name = "COMMAND")]
    pub command: Vec<OsString>,
}

/// Why `hydrant exec` could not run its command. None holds a value.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No command was given.
    #[error(
        "no command: give it after --, as in hydrant exec --config FILE -- /app/server --port 8080, or set exec.command in the configuration"
    )]
    NoCommand,
    /// A command was given twice.
    #[error("a command is given after -- and in exec.command; keep one")]
    TwoCommands,
    /// A variable has no value to give.
    #[error("env {name}: {message}")]
    Value {
        /// The variable.
        name: String,
        /// Why (names the path and key, never a value).
        message: String,
    },
    /// The command cannot be started (or replace hydrant).
    #[error("cannot start {program}: {error}")]
    Start {
        /// The program.
        program: String,
        /// What the kernel said.
        error: std::io::Error,
    },
    /// The signal handlers cannot be installed.
    #[error("cannot handle signals: {0}")]
    Signals(std::io::Error),
}

/// The command ended with this nonzero status; `hydrant exec` exits with it and prints nothing
/// (the command said what it had to).
#[derive(Debug, thiserror::Error)]
#[error("the command exited with status {0}")]
pub struct Exited(pub u8);

/// `hydrant exec`: runs the command to its end. Its nonzero status comes back as [`Exited`].
pub fn command(args: &Args, env: Arc<dyn Env>) -> anyhow::Result<()> {
    let config =
        agent::config::load_exec(&args.config, env.as_ref()).map_err(AgentError::Config)?;
    supervise(config, &args.command, env)
}

/// Runs the command (`given` after `--`, else the config's `exec.command`) with the config's
/// variables to its end: `hydrant exec`, and `hydrant agent` on a Vault Agent configuration
/// with `exec` (validated with [`AgentConfig::validate_exec`]). Its nonzero status comes back
/// as [`Exited`].
pub fn supervise(config: AgentConfig, given: &[OsString], env: Arc<dyn Env>) -> anyhow::Result<()> {
    let argv = command_line(given, &config)?;
    let (engine, sources) = compile_env(&config, env)?;
    // Vault Agent's pid_file: this process, which the command replaces when nothing stays.
    let _pid_file = config
        .pid_file
        .as_deref()
        .map(agent::sink::PidFile::create)
        .transpose()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| AgentError::Runtime(format!("the async runtime: {e}")))?;
    let code = runtime.block_on(run(&config, engine, sources, argv))?;
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    match code {
        0 => Ok(()),
        code => Err(Exited(code).into()),
    }
}

/// The program and its arguments: after `--`, or the config's `exec.command`.
fn command_line(given: &[OsString], config: &AgentConfig) -> Result<Vec<OsString>, Error> {
    let configured = config.exec.as_ref().and_then(|e| e.command.as_ref());
    match (given.is_empty(), configured) {
        (false, Some(_)) => Err(Error::TwoCommands),
        (false, None) => Ok(given.to_vec()),
        (true, Some(argv)) => Ok(argv.iter().map(OsString::from).collect()),
        (true, None) => Err(Error::NoCommand),
    }
}

async fn run(
    config: &AgentConfig,
    engine: crate::template::Engine,
    sources: Vec<agent::compile::SourceFile>,
    argv: Vec<OsString>,
) -> anyhow::Result<u8> {
    let first = first_render(config, &engine, |_, _| ()).await?;
    let mut environment = environment::Environment::new(config);
    for (i, rendered) in first.rendered.iter().enumerate() {
        environment
            .put(i, rendered.clone())
            .map_err(|message| Error::Value {
                name: environment.name(i).to_owned(),
                message,
            })?;
    }
    let values = environment.values().unwrap_or_default();
    let exec = config.exec.clone().unwrap_or_default();
    let (stop_signal, stop_name) =
        child::signal_of(exec.stop_signal()).unwrap_or((rustix::process::Signal::TERM, "TERM"));
    let inherited: Vec<(OsString, OsString)> = std::env::vars_os().collect();
    if exec.restart_on_secret_changes == RestartOnSecretChanges::Never
        && !renews(&first)
        && config.token_sinks.is_empty()
    {
        // Nothing to renew, nothing to restart for and no token sink to keep current: no
        // supervisor needs to stay.
        info!(
            variables = ?values,
            "nothing to renew and restarts are off; the command replaces hydrant"
        );
        let program = argv[0].to_string_lossy().into_owned();
        let error = std::process::Command::new(&argv[0])
            .args(&argv[1..])
            .env_clear()
            .envs(environment::compose(inherited, &values))
            .exec();
        return Err(Error::Start { program, error }.into());
    }
    let (publish, changes) = watch::channel(values);
    environment.publish_to(publish);
    let settings = child::Settings {
        argv,
        inherited,
        restart: exec.restart_on_secret_changes,
        stop_signal: (stop_signal, stop_name),
        grace: exec.stop_grace(),
    };
    let (give_up, asked) = oneshot::channel();
    let supervisor = child::supervise(settings, changes, asked);
    tokio::pin!(supervisor);
    let status = Arc::new(SidecarStatus::new());
    let FirstRender {
        client,
        token,
        fetched,
        ..
    } = first;
    let parts = sidecar::Parts {
        engine,
        sources,
        snapshot: None,
        outputs: Box::new(environment),
        status,
        start: Some(sidecar::Start {
            client,
            token,
            fetched,
        }),
    };
    let mut ended = None;
    let result = sidecar::run(config, parts, async {
        ended = Some((&mut supervisor).await);
    })
    .await;
    let code = match ended {
        Some(code) => code?,
        None => {
            // The sidecar stopped first (exit_on_retry_failure, POST /quit): so does the command.
            let _ = give_up.send(());
            supervisor.await?
        }
    };
    result?;
    Ok(code)
}

/// Whether anything fetched has a lease that must be renewed while the command runs.
fn renews(first: &FirstRender) -> bool {
    first.fetched.iter().any(|f| {
        f.result.as_ref().is_ok_and(|s| {
            s.lease
                .as_ref()
                .is_some_and(|l| l.renewable && !l.id.is_empty())
        })
    })
}
