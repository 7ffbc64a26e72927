//! hydrant: delivers Vault secrets and composed platform configuration into Kubernetes pods.
//!
//! One binary with several subcommands; this library holds all of them so that tests and
//! benchmarks reach the same code the binary runs.

pub mod agent;
pub mod cli;
pub mod config;
pub mod controller;
pub mod env;
pub mod files;
pub mod inject;
pub mod lease;
pub mod policy;
pub mod process;
pub mod render;
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

/// The agent has not rendered every file yet (`hydrant agent --check-ready`).
#[derive(Debug, thiserror::Error)]
#[error("not ready: {} does not exist yet", .0.display())]
pub struct NotReady(std::path::PathBuf);

/// Runs the parsed command line.
pub fn run(cli: Cli, env: Arc<dyn Env>) -> anyhow::Result<()> {
    match cli.command {
        Command::Agent(args) if args.check_ready => {
            if args.ready_file.exists() {
                Ok(())
            } else {
                Err(NotReady(args.ready_file).into())
            }
        }
        Command::Agent(args) => {
            let options = agent::Options {
                config: args.config.as_deref(),
                once: args.once,
            };
            agent::run(&options, env)?;
            Ok(())
        }
        Command::Render(args) => {
            let options = render::Options {
                containers: args.containers,
                labels: args.labels,
                labels_file: args.labels_file,
                levels: args.levels,
                schema: args.schema,
                format: args.format,
                template: args.template,
                name: args.name,
                namespace: args.namespace,
                out: args.out,
                explain: args.explain,
                check: args.check,
                secrets_file: args.secrets_file,
                agent_config: args.agent_config,
            };
            let text = render::run(&options, env)?;
            std::io::Write::write_all(&mut std::io::stdout(), text.as_bytes())?;
            Ok(())
        }
        Command::Inject(args) => {
            let settings = args.injector.settings();
            let injected = inject::run(&args.file, &args.namespace, &settings)?;
            for warning in &injected.warnings {
                eprintln!("hydrant: warning: {warning}");
            }
            std::io::Write::write_all(&mut std::io::stdout(), injected.yaml.as_bytes())?;
            Ok(())
        }
        Command::Webhook(args) => {
            webhook::run(webhook::Options {
                listen: args.listen,
                tls_cert: args.tls_cert,
                tls_key: args.tls_key,
                request_timeout: args.request_timeout.0,
                max_body_bytes: args.max_body_bytes,
                limits: webhook::Limits {
                    handshake_timeout: args.tls_handshake_timeout.0,
                    header_read_timeout: args.header_read_timeout.0,
                    idle_timeout: args.idle_timeout.0,
                    max_connections: args.max_connections,
                    max_in_flight_body_bytes: args.max_in_flight_body_bytes,
                    max_concurrent_streams: args.max_concurrent_streams,
                },
                settings: args.injector.settings(),
                self_managed: args
                    .self_managed_certificates
                    .then(|| webhook::SelfManaged {
                        certificates: webhook::certs::Settings {
                            namespace: args.namespace.clone(),
                            secret: args.cert_secret.clone(),
                            webhook_config: args.webhook_config.clone(),
                            service: args.service.clone(),
                            ca_validity: args.ca_validity.0,
                            cert_validity: args.cert_validity.0,
                            interval: args.cert_check_interval.0,
                        },
                        election: lease::Params {
                            name: args.cert_lease_name.clone(),
                            identity: args.identity.clone().unwrap_or_else(default_identity),
                            duration: std::time::Duration::from_secs(15),
                        },
                    }),
            })?;
            Ok(())
        }
        Command::Policy(args) => match args.command {
            cli::PolicyCommand::Lint { dir } => {
                let summary = policy::lint(&dir)?;
                std::io::Write::write_all(&mut std::io::stdout(), summary.as_bytes())?;
                Ok(())
            }
            cli::PolicyCommand::Plan(a) => policy_plan(&a, env.as_ref(), false),
            cli::PolicyCommand::Apply(a) => policy_plan(&a, env.as_ref(), true),
        },
        Command::Controller(args) => {
            let election = args.leader_election.then(|| controller::Election {
                namespace: args.lease_namespace.clone(),
                params: lease::Params {
                    name: args.lease_name.clone(),
                    identity: args.identity.clone().unwrap_or_else(default_identity),
                    duration: args.lease_duration.0,
                },
            });
            let events = if args.events {
                let name = args
                    .identity
                    .clone()
                    .ok_or(controller::Error::NoPodForEvents)?;
                if args.pod_uid.is_none() {
                    tracing::warn!(
                        "POD_UID is unset: the Events are published, but kubectl describe pod does not show them; set it from the downward API (metadata.uid)"
                    );
                }
                Some(controller::events::Regarding {
                    namespace: args.lease_namespace.clone(),
                    name,
                    uid: args.pod_uid.clone(),
                })
            } else {
                None
            };
            controller::run(
                controller::Options {
                    repository: args.repository,
                    branch: args.branch,
                    credentials: args.git_password_file.map(|password_file| {
                        controller::git::Credentials {
                            username: args.git_username,
                            password_file,
                        }
                    }),
                    state_dir: args.state_dir,
                    poll_interval: args.poll_interval.0,
                    sync_interval: args.sync_interval.0,
                    drift_interval: args.drift_interval.0,
                    drift_mode: args.drift_mode,
                    listen: args.listen,
                    agent_config: args.agent_config,
                    namespace_selector: args.namespace_selector,
                    election,
                    events,
                },
                env.as_ref(),
            )?;
            Ok(())
        }
    }
}

/// A Lease identity outside a pod: the host name and process id.
fn default_identity() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "hydrant".to_owned());
    format!("{host}-{}", std::process::id())
}

/// `hydrant policy plan` and `apply`: prints the plan, applied when `apply`.
fn policy_plan(args: &cli::PolicyVaultArgs, env: &dyn Env, apply: bool) -> anyhow::Result<()> {
    let text = policy::plan_command(&args.dir, args.agent_config.as_deref(), env, apply)?;
    std::io::Write::write_all(&mut std::io::stdout(), text.as_bytes())?;
    Ok(())
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
    let usage = if let Some(e) = error.downcast_ref::<agent::Error>() {
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
    } else if let Some(e) = error.downcast_ref::<policy::Error>() {
        !matches!(e, policy::Error::Vault(_))
    } else if let Some(e) = error.downcast_ref::<controller::Error>() {
        !matches!(e, controller::Error::Runtime(_))
    } else {
        false
    };
    if usage { EXIT_USAGE } else { EXIT_FAILURE }
}
