//! The command line: the top-level parser, one subcommand per job, and the argument groups
//! several subcommands share. Each subcommand's own flags live with it (`agent::Args`,
//! `render::Args`, ...), as does turning them into what it runs.

use clap::{Args, Parser, Subcommand};
use injector::agent_config::AuthMethod;
use injector::settings::{self, DefaultTemplate, InjectorSettings, Mode, Resources, RunAs};
use injector::values::Duration;
use injector::values::parse_quantity;

/// The agent image the injector names when none is configured: this very binary's release.
pub const DEFAULT_AGENT_IMAGE: &str =
    concat!("ghcr.io/hydrant-dev/hydrant:", env!("CARGO_PKG_VERSION"));

/// Delivers Vault secrets and composed platform configuration into Kubernetes pods.
#[derive(Debug, Parser)]
#[command(
    name = "hydrant",
    version = concat!(env!("CARGO_PKG_VERSION"), " (", env!("HYDRANT_REVISION"), ")"),
    propagate_version = true
)]
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
    Agent(crate::agent::Args),
    /// Compose an app instance's config snapshot from config containers, validate it against the
    /// app's JSON Schema, and write it in a format or through a template: for CI and laptops.
    ///
    /// Secrets for templates come from --secrets-file, from Vault via --agent-config (its vault
    /// and auth), or from VAULT_ADDR and VAULT_TOKEN.
    ///
    /// Exit status: 0 rendered (or valid, with --check); 1 a Vault failure or a file that cannot
    /// be written; 64 a usage error, invalid input or a snapshot that fails its schema (every
    /// error listed).
    Render(crate::render::Args),
    /// Mutate pod manifests offline: what the webhook would do, for GitOps pipelines and
    /// debugging.
    ///
    /// Reads YAML or JSON documents (Pod, Deployment, StatefulSet, DaemonSet, ReplicaSet, Job,
    /// CronJob, List), mutates every pod template that asks for injection, leaves everything else
    /// as it is, and prints YAML. A pod the webhook would deny makes it exit 1 with the denial.
    Inject(crate::inject::Args),
    /// Serve the mutating admission webhook over HTTPS.
    ///
    /// POST /mutate takes an AdmissionReview (admission.k8s.io/v1 or v1beta1) and answers in kind;
    /// GET /healthz, /readyz and /metrics serve probes and Prometheus. The certificate and key are
    /// reloaded when their files change.
    Webhook(Box<crate::webhook::Args>),
    /// Send a running webhook one AdmissionReview the way the API server does (HTTPS to its
    /// Service, its certificate checked against --ca-cert) and check that it allows a pod asking
    /// for nothing, unchanged: the chart's `helm test`.
    ///
    /// Exit status: 0 the webhook answered as it should; 1 no answer, or a wrong one; 64 a usage
    /// error or an unusable --ca-cert.
    CheckWebhook(crate::webhook::check::CheckArgs),
    /// Keep a policy repository's branch applied to Vault: fetch on an interval and on POST
    /// /sync, apply each new commit (a commit with any problem is refused whole), correct or
    /// report drift, follow Namespaces, lead through a Lease.
    ///
    /// Vault: --agent-config (its vault and auth; Kubernetes auth in a pod) or VAULT_ADDR and
    /// VAULT_TOKEN. Kubernetes (for --namespace-selector and --leader-election): the pod's
    /// service account, or KUBECONFIG. GET /healthz, /readyz and /metrics serve probes and
    /// Prometheus.
    Controller(crate::controller::Args),
    /// Check a policy repository (Vault policies and Kubernetes-auth roles per namespace) against
    /// its guardrails, plan it against Vault, apply it.
    ///
    /// Exit status: 0 clean; 1 Vault failed; 64 usage, or problems, every one listed (file, line,
    /// rule).
    Policy(crate::policy::Args),
    /// Print the shell completion script for bash, zsh, fish, elvish or powershell.
    ///
    /// bash: hydrant completions bash > /etc/bash_completion.d/hydrant; zsh: hydrant completions
    /// zsh > "${fpath[1]}/_hydrant"; fish: hydrant completions fish >
    /// ~/.config/fish/completions/hydrant.fish.
    Completions(crate::docs::CompletionsArgs),
    /// Print the man page hydrant(1), or write one page per subcommand with --dir.
    ///
    /// man <(hydrant man); hydrant man --dir /usr/local/share/man/man1.
    Man(crate::docs::ManArgs),
}

/// A duration flag's value: `90s`, `5m`, `1h30m`.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    Duration::parse(text)
}

fn parse_optional_quantity(text: &str) -> Result<String, String> {
    if text.trim().is_empty() {
        Ok(String::new())
    } else {
        parse_quantity(text)
    }
}

/// What the injector decides for every pod: flags, each with an environment variable (a flag
/// given on the command line wins over its variable).
#[derive(Debug, Args)]
pub struct InjectorArgs {
    /// Vault's address as agents reach it.
    #[arg(long, env = "HYDRANT_VAULT_ADDR")]
    pub vault_addr: String,
    /// PEM file of the CA(s) that sign Vault's certificate, given to every agent whose pod names
    /// no vault.hashicorp.com/ca-cert of its own. Read once at start.
    #[arg(long, env = "HYDRANT_VAULT_CA_CERT", value_name = "FILE", value_parser = read_ca_bundle)]
    pub vault_ca_cert: Option<CaBundle>,
    /// The agent image (hydrant's own image; the agent is a subcommand of this binary).
    #[arg(long, env = "HYDRANT_AGENT_IMAGE", default_value = DEFAULT_AGENT_IMAGE)]
    pub agent_image: String,
    /// The auth method of pods that name none: kubernetes, jwt, approle or token.
    #[arg(long, env = "HYDRANT_AUTH_METHOD", default_value_t = settings::DEFAULT_AUTH_METHOD)]
    pub auth_method: AuthMethod,
    /// The auth mount of pods that name none; the method's name when unset.
    #[arg(long, env = "HYDRANT_AUTH_MOUNT")]
    pub auth_mount: Option<String>,
    /// The mode of pods that name none: native, init-and-sidecar, init-only or sidecar-only.
    #[arg(long, env = "HYDRANT_MODE", default_value_t = settings::DEFAULT_MODE)]
    pub mode: Mode,
    /// vault-k8s's default template for secrets without one: map or json.
    #[arg(long, env = "HYDRANT_DEFAULT_TEMPLATE", default_value_t = settings::DEFAULT_TEMPLATE, value_parser = parse_default_template)]
    pub default_template: DefaultTemplate,
    /// CPU request of the init container (init-and-sidecar and init-only modes; native mode's one
    /// container runs all the pod's life and takes the --sidecar-* values); empty leaves it out.
    #[arg(long, env = "HYDRANT_INIT_CPU_REQUEST", default_value = settings::DEFAULT_CPU_REQUEST, value_parser = parse_optional_quantity)]
    pub init_cpu_request: String,
    /// Memory request of the init container; empty leaves it out.
    #[arg(long, env = "HYDRANT_INIT_MEMORY_REQUEST", default_value = settings::DEFAULT_MEMORY_REQUEST, value_parser = parse_optional_quantity)]
    pub init_memory_request: String,
    /// CPU limit of the init container; empty (the default) leaves it out.
    #[arg(long, env = "HYDRANT_INIT_CPU_LIMIT", default_value = "", value_parser = parse_optional_quantity)]
    pub init_cpu_limit: String,
    /// Memory limit of the init container; empty (the default) leaves it out.
    #[arg(long, env = "HYDRANT_INIT_MEMORY_LIMIT", default_value = "", value_parser = parse_optional_quantity)]
    pub init_memory_limit: String,
    /// CPU request of the sidecar (and of native mode's one container); empty leaves it out.
    #[arg(long, env = "HYDRANT_SIDECAR_CPU_REQUEST", default_value = settings::DEFAULT_CPU_REQUEST, value_parser = parse_optional_quantity)]
    pub sidecar_cpu_request: String,
    /// Memory request of the sidecar; empty leaves it out.
    #[arg(long, env = "HYDRANT_SIDECAR_MEMORY_REQUEST", default_value = settings::DEFAULT_MEMORY_REQUEST, value_parser = parse_optional_quantity)]
    pub sidecar_memory_request: String,
    /// CPU limit of the sidecar; empty (the default) leaves it out.
    #[arg(long, env = "HYDRANT_SIDECAR_CPU_LIMIT", default_value = "", value_parser = parse_optional_quantity)]
    pub sidecar_cpu_limit: String,
    /// Memory limit of the sidecar; empty (the default) leaves it out.
    #[arg(long, env = "HYDRANT_SIDECAR_MEMORY_LIMIT", default_value = "", value_parser = parse_optional_quantity)]
    pub sidecar_memory_limit: String,
    /// The user the agent runs as.
    #[arg(long, env = "HYDRANT_RUN_AS_USER", default_value_t = settings::DEFAULT_RUN_AS.user)]
    pub run_as_user: i64,
    /// The group the agent runs as.
    #[arg(long, env = "HYDRANT_RUN_AS_GROUP", default_value_t = settings::DEFAULT_RUN_AS.group)]
    pub run_as_group: i64,
    /// Leave runAsUser and runAsGroup out, for OpenShift, which assigns them.
    #[arg(long, env = "HYDRANT_OMIT_RUN_AS")]
    pub omit_run_as: bool,
    /// Namespaces where injection is refused (comma-separated).
    #[arg(
        long = "exclude-namespaces",
        env = "HYDRANT_EXCLUDE_NAMESPACES",
        value_delimiter = ',',
        default_value = settings::DEFAULT_EXCLUDED_NAMESPACES
    )]
    pub exclude_namespaces: Vec<String>,
    /// Seconds a native sidecar may take to render every file before the pod fails to start.
    #[arg(long, env = "HYDRANT_STARTUP_TIMEOUT_SECONDS", default_value_t = settings::DEFAULT_STARTUP_TIMEOUT_SECONDS)]
    pub startup_timeout_seconds: i32,
    /// The host's labels (k=v,k=v), added to each pod's own when its config snapshot is composed.
    #[arg(
        long = "host-labels",
        env = "HYDRANT_HOST_LABELS",
        value_name = "K=V,...",
        value_parser = parse_label,
        value_delimiter = ','
    )]
    pub host_labels: Vec<(String, String)>,
    /// When the host's and a pod's labels disagree on a key: error (the snapshot is invalid),
    /// host-wins or app-wins.
    #[arg(long, env = "HYDRANT_LABEL_CONFLICT", value_name = "POLICY", default_value = "error", value_parser = parse_label_conflict)]
    pub label_conflict: injector::agent_config::LabelConflict,
}

/// The PEM text of a CA bundle, read from the file a flag names.
#[derive(Clone, Debug)]
pub struct CaBundle(pub String);

fn read_ca_bundle(path: &str) -> Result<CaBundle, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"))?;
    // The bundle is copied into every injected pod's environment: never a key with it.
    if text.contains("PRIVATE KEY") {
        return Err(format!(
            "{path} holds a private key; give a file with only the CA certificate(s)"
        ));
    }
    crate::vault::ca_certificates(text.as_bytes(), path)?;
    Ok(CaBundle(text))
}

fn parse_label_conflict(text: &str) -> Result<injector::agent_config::LabelConflict, String> {
    serde_json::from_value(serde_json::Value::String(text.trim().to_owned()))
        .map_err(|_| format!("{text:?} is not a policy; use error, host-wins or app-wins"))
}

fn parse_label(text: &str) -> Result<(String, String), String> {
    crate::snapshot::parse_labels("--host-labels", text)
        .map_err(|e| e.to_string())?
        .pop()
        .ok_or_else(|| format!("{text:?} is not a label; write key=value"))
}

fn parse_default_template(text: &str) -> Result<DefaultTemplate, String> {
    text.parse()
}

impl InjectorArgs {
    /// The injector's settings.
    pub fn settings(&self) -> InjectorSettings {
        let some = |q: &str| (!q.is_empty()).then(|| q.to_owned());
        let mut settings = InjectorSettings::new(self.vault_addr.clone(), self.agent_image.clone());
        settings.vault_ca_pem = self.vault_ca_cert.as_ref().map(|ca| ca.0.clone());
        settings.auth_method = self.auth_method;
        settings.auth_mount = self.auth_mount.clone().filter(|m| !m.is_empty());
        settings.mode = self.mode;
        settings.default_template = self.default_template;
        settings.init_resources = Resources {
            cpu_request: some(&self.init_cpu_request),
            memory_request: some(&self.init_memory_request),
            cpu_limit: some(&self.init_cpu_limit),
            memory_limit: some(&self.init_memory_limit),
            ..Resources::default()
        };
        settings.sidecar_resources = Resources {
            cpu_request: some(&self.sidecar_cpu_request),
            memory_request: some(&self.sidecar_memory_request),
            cpu_limit: some(&self.sidecar_cpu_limit),
            memory_limit: some(&self.sidecar_memory_limit),
            ..Resources::default()
        };
        settings.run_as = (!self.omit_run_as).then_some(RunAs {
            user: self.run_as_user,
            group: self.run_as_group,
        });
        settings.excluded_namespaces = self
            .exclude_namespaces
            .iter()
            .map(|n| n.trim().to_owned())
            .filter(|n| !n.is_empty())
            .collect();
        settings.startup_timeout_seconds = self.startup_timeout_seconds;
        settings.host_labels = self.host_labels.iter().cloned().collect();
        settings.label_conflict = self.label_conflict;
        settings
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use clap::CommandFactory as _;

    #[test]
    fn a_ca_bundle_file_must_hold_certificates_and_no_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = |name: &str, text: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).expect("write");
            path.display().to_string()
        };
        let key = path(
            "with-key.pem",
            "-----BEGIN PRIVATE KEY-----\nMIGH\n-----END PRIVATE KEY-----\n",
        );
        let err = read_ca_bundle(&key).expect_err("a key");
        assert!(err.contains("holds a private key"), "{err}");
        let none = path("empty.pem", "hello\n");
        let err = read_ca_bundle(&none).expect_err("no certificate");
        assert!(err.contains("holds no PEM certificate"), "{err}");
        let err = read_ca_bundle("/nonexistent/ca.pem").expect_err("no file");
        assert!(err.starts_with("cannot read /nonexistent/ca.pem"), "{err}");
    }

    /// The flags' defaults are the injector's (`InjectorSettings::new`), so that the tests, the fuzz
    /// targets and the benchmarks, which build settings with it, see what production runs.
    #[test]
    fn the_injector_flags_default_to_the_injectors_defaults() {
        let cli = Cli::try_parse_from([
            "hydrant",
            "inject",
            "-f",
            "-",
            "--vault-addr",
            "https://vault:8200",
        ])
        .expect("parses");
        let Command::Inject(args) = cli.command else {
            panic!("not inject")
        };
        assert_eq!(
            args.injector.settings(),
            InjectorSettings::new("https://vault:8200", DEFAULT_AGENT_IMAGE)
        );
    }

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
    fn controller_takes_durations_and_a_drift_mode() {
        let cli = Cli::try_parse_from([
            "hydrant",
            "controller",
            "--repository",
            "file:///srv/policy.git",
            "--poll-interval",
            "30s",
            "--drift-mode",
            "report",
        ])
        .expect("parses");
        let Command::Controller(args) = cli.command else {
            panic!("not controller")
        };
        assert_eq!(args.poll_interval.0, std::time::Duration::from_secs(30));
        assert_eq!(args.drift_interval.0, std::time::Duration::from_secs(300));
        assert_eq!(args.drift_mode, crate::controller::DriftMode::Report);
        assert!(
            Cli::try_parse_from([
                "hydrant",
                "controller",
                "--repository",
                "x",
                "--drift-mode",
                "fix"
            ])
            .is_err()
        );
    }
}
