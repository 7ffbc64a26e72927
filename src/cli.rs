//! The command line: one binary, one subcommand per job.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Delivers Vault secrets and composed platform configuration into Kubernetes pods.
#[derive(Debug, Parser)]
#[command(name = "hydrant", version, propagate_version = true)]
pub struct Cli {
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// hydrant's subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Log in to Vault and render secrets into files: the injected init container (--once) and
    /// sidecar.
    ///
    /// The configuration is read from --config (YAML or JSON) or, without it, from the JSON
    /// document in HYDRANT_AGENT_CONFIG. Logging: HYDRANT_LOG (filter, default info) and
    /// HYDRANT_LOG_FORMAT (plain or json).
    ///
    /// Exit status: 0 when every file was written; 1 when logging in, a secret, a render or a write
    /// failed (no file is changed when a render fails); 64 when the configuration or a template's
    /// syntax is invalid (nothing is sent to Vault).
    Agent(AgentArgs),
    /// Render composed config snapshots and templates for CI and laptops (not implemented yet).
    Render(NotYet),
    /// Mutate pod manifests offline (not implemented yet).
    Inject(NotYet),
    /// Serve the mutating admission webhook (not implemented yet).
    Webhook(NotYet),
    /// Keep Vault policies and roles applied from git (not implemented yet).
    Controller(NotYet),
    /// Lint, plan and apply a policy repository (not implemented yet).
    Policy(NotYet),
}

/// `hydrant agent`.
#[derive(Debug, Args)]
pub struct AgentArgs {
    /// The agent configuration, YAML or JSON. Without it, HYDRANT_AGENT_CONFIG is read.
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Render every file once, then exit: what the init container does before the app starts.
    #[arg(long)]
    pub once: bool,
}

/// A subcommand whose issue has not landed: it accepts anything and exits 64.
#[derive(Debug, Args)]
pub struct NotYet {
    #[arg(hide = true, trailing_var_arg = true, allow_hyphen_values = true)]
    args: Vec<String>,
}

impl Command {
    /// The subcommand's name.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Agent(_) => "agent",
            Command::Render(_) => "render",
            Command::Inject(_) => "inject",
            Command::Webhook(_) => "webhook",
            Command::Controller(_) => "controller",
            Command::Policy(_) => "policy",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory as _;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn agent_takes_config_and_once() {
        let cli = Cli::try_parse_from(["hydrant", "agent", "--config", "a.yaml", "--once"])
            .expect("parses");
        let Command::Agent(args) = cli.command else {
            panic!("not agent")
        };
        assert_eq!(args.config, Some(PathBuf::from("a.yaml")));
        assert!(args.once);
    }

    #[test]
    fn pending_subcommands_accept_any_arguments() {
        let cli = Cli::try_parse_from(["hydrant", "render", "--containers", "x", "--check"])
            .expect("parses");
        assert_eq!(cli.command.name(), "render");
    }
}
