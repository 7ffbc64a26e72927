//! The command line: the top-level parser, one subcommand per job, and the argument groups
//! several subcommands share. Each subcommand's own flags live with it (`agent::Args`,
//! `render::Args`, ...), as does turning them into what it runs.

use clap::{Args, Parser, Subcommand};
use injector::agent_config::AuthMethod;
use injector::settings::{self, DefaultTemplate, InjectorSettings, Mode, Resources, RunAsSettings};
use injector::values::Duration;
use injector::values::parse_quantity;

use crate::env::Env;

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
    /// Run a command with secrets in its environment: log in, render each variable (a template
    /// in either syntax, or a Vault path and key), start the command with them, keep the token
    /// and leases fresh, and restart the command when a value changes.
    ///
    /// The configuration is the agent's (--config or HYDRANT_AGENT_CONFIG) with `env` entries
    /// instead of templates, and an optional `exec` (restart_on_secret_changes: always or
    /// never, restart_stop_signal, restart_stop_grace). Signals are passed on to the command.
    /// With nothing to renew and restarts off, the command replaces hydrant.
    ///
    /// Exit status: the command's (128 + N when signal N ended it); 1 when logging in or a value
    /// failed (the command is not started); 64 when the configuration is invalid or no command
    /// is given.
    Exec(crate::exec::Args),
    /// Copy this binary into a directory, as DIR/hydrant (mode 0755): the webhook's
    /// hydrant-install init container puts it into the memory volume from which the app's
    /// containers run hydrant exec (the image has no cp).
    ///
    /// Exit status: 0 copied; 1 the directory cannot be written.
    Install(crate::exec::install::InstallArgs),
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
    /// as it is, and prints YAML. A pod the webhook would deny makes it exit 1 with the denial;
    /// a pod template in a kind it does not know (an Argo Rollout) is left as it is, with a
    /// warning.
    Inject(Box<crate::inject::Args>),
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
    /// Send a signal to a process of the pod: by ID, by name (as pidof finds it) or by pattern
    /// (as pkill does), reading /proc. What agent-inject-command-* signalling commands (kill -HUP
    /// $(pidof nginx), pkill -HUP nginx) become, since the image has no shell, kill or pkill.
    ///
    /// Exit status: 0 when every matching process was signalled; 1 when none matches or one
    /// cannot be signalled; 64 for a signal or pattern it cannot use.
    Signal(crate::signal::Args),
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
/// given on the command line wins over its variable). Where vault-k8s's injector has the same
/// setting, its `AGENT_INJECT_*` variable is read too, after hydrant's own ([`vault_k8s_env`]),
/// so that a vault-helm values file's environment keeps working.
#[derive(Debug, Args)]
pub struct InjectorArgs {
    /// Vault's address as agents reach it, with its scheme (https://vault.vault.svc:8200).
    /// Required; also read from AGENT_INJECT_VAULT_ADDR.
    #[arg(long, env = "HYDRANT_VAULT_ADDR")]
    pub vault_addr: Option<String>,
    /// PEM file of the CA(s) that sign Vault's certificate, given to every agent whose pod names
    /// no vault.hashicorp.com/ca-cert of its own. Read once at start.
    #[arg(long, env = "HYDRANT_VAULT_CA_CERT", value_name = "FILE", value_parser = read_ca_bundle)]
    pub vault_ca_cert: Option<CaBundle>,
    /// The Vault namespace of pods that name none (Vault Enterprise, OpenBao); also read from
    /// AGENT_INJECT_VAULT_NAMESPACE. Unset: the root namespace.
    #[arg(long, env = "HYDRANT_VAULT_NAMESPACE", value_name = "NAMESPACE")]
    pub vault_namespace: Option<String>,
    /// The name Vault's certificate is checked against, for pods that name none; unset: the
    /// address's host.
    #[arg(long, env = "HYDRANT_VAULT_TLS_SERVER_NAME", value_name = "NAME")]
    pub vault_tls_server_name: Option<String>,
    /// The proxy agents reach Vault through (HTTPS_PROXY), for pods that name none; also read
    /// from AGENT_INJECT_PROXY_ADDR. Unset: no proxy.
    #[arg(long, env = "HYDRANT_PROXY_ADDRESS", value_name = "URL")]
    pub proxy_address: Option<String>,
    /// The agent image (hydrant's own image; the agent is a subcommand of this binary).
    #[arg(long, env = "HYDRANT_AGENT_IMAGE", default_value = DEFAULT_AGENT_IMAGE)]
    pub agent_image: String,
    /// The auth method of pods that name none: kubernetes, jwt, approle or token; also read from
    /// AGENT_INJECT_VAULT_AUTH_TYPE. [default: kubernetes]
    #[arg(long, env = "HYDRANT_AUTH_METHOD")]
    pub auth_method: Option<AuthMethod>,
    /// The auth mount of pods that name none, with or without auth/ (kubernetes and
    /// auth/kubernetes are the same mount); the method's name when unset. Also read from
    /// AGENT_INJECT_VAULT_AUTH_PATH.
    #[arg(long, env = "HYDRANT_AUTH_MOUNT")]
    pub auth_mount: Option<String>,
    /// The mode of pods that name none: native, init-and-sidecar, init-only or sidecar-only.
    #[arg(long, env = "HYDRANT_MODE", default_value_t = settings::DEFAULT_MODE)]
    pub mode: Mode,
    /// vault-k8s's default template for secrets without one: map or json; also read from
    /// AGENT_INJECT_DEFAULT_TEMPLATE. [default: map]
    #[arg(long, env = "HYDRANT_DEFAULT_TEMPLATE", value_parser = parse_default_template)]
    pub default_template: Option<DefaultTemplate>,
    /// Whether agents revoke their token and its leases when their pod stops, for pods that do
    /// not say (true or false; the flag alone is true); also read from
    /// AGENT_INJECT_REVOKE_ON_SHUTDOWN. [default: false]
    #[arg(long, env = "HYDRANT_REVOKE_ON_SHUTDOWN", value_name = "BOOL", num_args = 0..=1, default_missing_value = "true", value_parser = parse_flag_bool)]
    pub revoke_on_shutdown: Option<bool>,
    /// The agents' log level for pods that name none: trace, debug, info, warn or error (vault-k8s
    /// spellings too). Unset: info.
    #[arg(long, env = "HYDRANT_AGENT_LOG_LEVEL", value_name = "LEVEL", value_parser = parse_log_level)]
    pub agent_log_level: Option<String>,
    /// The agents' log format for pods that name none: plain (vault-k8s's standard) or json.
    /// Unset: plain.
    #[arg(long, env = "HYDRANT_AGENT_LOG_FORMAT", value_name = "FORMAT", value_parser = parse_log_format)]
    pub agent_log_format: Option<String>,
    /// A port on each pod's addresses where its sidecar serves /metrics (and /healthz,
    /// /readyz; never /quit) for Prometheus, for pods that name none with
    /// hydrant.dev/metrics-port: the agent container declares it and the pod gets the
    /// prometheus.io/scrape, port and path annotations unless it sets its own. Unset: none, the
    /// metrics stay on 127.0.0.1.
    #[arg(long, env = "HYDRANT_AGENT_METRICS_PORT", value_name = "PORT", value_parser = clap::value_parser!(u16).range(1..))]
    pub agent_metrics_port: Option<u16>,
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
    /// Memory limit of the init container, so that namespaces whose ResourceQuota covers limits
    /// accept injected pods (the agent peaks under 8 MiB); empty leaves it out.
    #[arg(long, env = "HYDRANT_INIT_MEMORY_LIMIT", default_value = settings::DEFAULT_MEMORY_LIMIT, value_parser = parse_optional_quantity)]
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
    /// Memory limit of the sidecar (and of native mode's one container); empty leaves it out.
    #[arg(long, env = "HYDRANT_SIDECAR_MEMORY_LIMIT", default_value = settings::DEFAULT_MEMORY_LIMIT, value_parser = parse_optional_quantity)]
    pub sidecar_memory_limit: String,
    /// The user agents run as, for pods that name none; also read from AGENT_INJECT_RUN_AS_USER.
    /// Unset: 65532 (the image's nonroot) for hydrant.dev pods, 100 (vault-k8s's) for
    /// vault.hashicorp.com pods.
    #[arg(long, env = "HYDRANT_RUN_AS_USER", value_name = "UID", value_parser = parse_id)]
    pub run_as_user: Option<i64>,
    /// The group agents run as, for pods that name none; also read from
    /// AGENT_INJECT_RUN_AS_GROUP. Unset: 65532 for hydrant.dev pods, 1000 (vault-k8s's: apps read
    /// 0640 files through it) for vault.hashicorp.com pods.
    #[arg(long, env = "HYDRANT_RUN_AS_GROUP", value_name = "GID", value_parser = parse_id)]
    pub run_as_group: Option<i64>,
    /// Run agents as the user of their pod's first container, for pods that name no user (true
    /// or false; the flag alone is true); also read from AGENT_INJECT_RUN_AS_SAME_USER.
    /// [default: false]
    #[arg(long, env = "HYDRANT_RUN_AS_SAME_USER", value_name = "BOOL", num_args = 0..=1, default_missing_value = "true", value_parser = parse_flag_bool)]
    pub run_as_same_user: Option<bool>,
    /// Leave runAsUser and runAsGroup out, for OpenShift, which assigns them (a pod that names
    /// one still gets it; a vault.hashicorp.com pod then gets the other's default, as with
    /// vault-k8s's -set-security-context=false).
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

/// vault-k8s's environment variables for the settings hydrant shares with it, read when neither
/// the flag nor hydrant's own variable is given. Unset or empty: not given.
pub mod vault_k8s_env {
    /// Vault's address (`--vault-addr`).
    pub const VAULT_ADDR: &str = "AGENT_INJECT_VAULT_ADDR";
    /// The default auth method (`--auth-method`).
    pub const VAULT_AUTH_TYPE: &str = "AGENT_INJECT_VAULT_AUTH_TYPE";
    /// The default auth mount (`--auth-mount`), `auth/kubernetes` in vault-k8s.
    pub const VAULT_AUTH_PATH: &str = "AGENT_INJECT_VAULT_AUTH_PATH";
    /// The default Vault namespace (`--vault-namespace`).
    pub const VAULT_NAMESPACE: &str = "AGENT_INJECT_VAULT_NAMESPACE";
    /// The default proxy (`--proxy-address`).
    pub const PROXY_ADDR: &str = "AGENT_INJECT_PROXY_ADDR";
    /// The default of revoke-on-shutdown (`--revoke-on-shutdown`).
    pub const REVOKE_ON_SHUTDOWN: &str = "AGENT_INJECT_REVOKE_ON_SHUTDOWN";
    /// The default of run-as-same-user (`--run-as-same-user`).
    pub const RUN_AS_SAME_USER: &str = "AGENT_INJECT_RUN_AS_SAME_USER";
    /// The default template (`--default-template`).
    pub const DEFAULT_TEMPLATE: &str = "AGENT_INJECT_DEFAULT_TEMPLATE";
    /// The agent's user (`--run-as-user`).
    pub const RUN_AS_USER: &str = "AGENT_INJECT_RUN_AS_USER";
    /// The agent's group (`--run-as-group`).
    pub const RUN_AS_GROUP: &str = "AGENT_INJECT_RUN_AS_GROUP";
}

/// Injector settings that cannot be used: each bad value, named; nothing was served.
#[derive(Debug, thiserror::Error)]
#[error("{}", .0.join("\nhydrant: "))]
pub struct InvalidSettings(pub Vec<String>);

fn parse_id(text: &str) -> Result<i64, String> {
    injector::values::parse_id(text)
}

fn parse_flag_bool(text: &str) -> Result<bool, String> {
    injector::values::parse_bool(text.trim())
}

fn parse_log_level(text: &str) -> Result<String, String> {
    injector::values::parse_log_level(text).map(str::to_owned)
}

fn parse_log_format(text: &str) -> Result<String, String> {
    injector::values::parse_log_format(text).map(str::to_owned)
}

impl InjectorArgs {
    /// The injector's settings: the flags, then hydrant's variables (clap has read both), then
    /// vault-k8s's variables from `env`, then the defaults. Every bad value is reported at once.
    pub fn settings(&self, env: &dyn Env) -> Result<InjectorSettings, InvalidSettings> {
        let mut errors = Vec::new();
        // vault-k8s's variable, for a value neither the flag nor hydrant's variable gave.
        let vault_k8s = |name: &str| crate::env::non_empty(env, name).map(|v| v.trim().to_owned());
        let vault_addr = self
            .vault_addr
            .clone()
            .or_else(|| vault_k8s(vault_k8s_env::VAULT_ADDR));
        let vault_namespace = self
            .vault_namespace
            .clone()
            .or_else(|| vault_k8s(vault_k8s_env::VAULT_NAMESPACE));
        let proxy_address = self
            .proxy_address
            .clone()
            .or_else(|| vault_k8s(vault_k8s_env::PROXY_ADDR));
        let auth_mount = self
            .auth_mount
            .clone()
            .or_else(|| vault_k8s(vault_k8s_env::VAULT_AUTH_PATH));
        // A parsed value: the flag's, or vault-k8s's variable parsed, or the default.
        let mut or_vault_k8s = |name: &str, parse: &dyn Fn(&str) -> Result<(), String>| {
            let text = vault_k8s(name)?;
            match parse(&text) {
                Ok(()) => Some(text),
                Err(e) => {
                    errors.push(format!("{name}: {e}"));
                    None
                }
            }
        };
        let auth_method = self.auth_method.or_else(|| {
            or_vault_k8s(vault_k8s_env::VAULT_AUTH_TYPE, &|t| {
                t.parse::<AuthMethod>().map(drop)
            })
            .and_then(|t| t.parse().ok())
        });
        let default_template = self.default_template.or_else(|| {
            or_vault_k8s(vault_k8s_env::DEFAULT_TEMPLATE, &|t| {
                t.parse::<DefaultTemplate>().map(drop)
            })
            .and_then(|t| t.parse().ok())
        });
        let revoke_on_shutdown = self.revoke_on_shutdown.or_else(|| {
            or_vault_k8s(vault_k8s_env::REVOKE_ON_SHUTDOWN, &|t| {
                parse_flag_bool(t).map(drop)
            })
            .and_then(|t| parse_flag_bool(&t).ok())
        });
        let run_as_same_user = self.run_as_same_user.or_else(|| {
            or_vault_k8s(vault_k8s_env::RUN_AS_SAME_USER, &|t| {
                parse_flag_bool(t).map(drop)
            })
            .and_then(|t| parse_flag_bool(&t).ok())
        });
        let run_as_user = self.run_as_user.or_else(|| {
            or_vault_k8s(vault_k8s_env::RUN_AS_USER, &|t| parse_id(t).map(drop))
                .and_then(|t| parse_id(&t).ok())
        });
        let run_as_group = self.run_as_group.or_else(|| {
            or_vault_k8s(vault_k8s_env::RUN_AS_GROUP, &|t| parse_id(t).map(drop))
                .and_then(|t| parse_id(&t).ok())
        });
        // Refused at start: otherwise the webhook says ready and every agent's login fails.
        let vault_addr = vault_addr.map(|a| match injector::values::vault_address(&a) {
            Ok(a) => a,
            Err(e) => {
                errors.push(format!("--vault-addr: {e}"));
                a
            }
        });
        if vault_addr.is_none() {
            errors.push(format!(
                "--vault-addr (HYDRANT_VAULT_ADDR, or {}) is required: Vault's address as agents reach it, such as https://vault.vault.svc:8200",
                vault_k8s_env::VAULT_ADDR
            ));
        }
        let mut settings =
            InjectorSettings::new(vault_addr.unwrap_or_default(), self.agent_image.clone());
        settings.vault_ca_pem = self.vault_ca_cert.as_ref().map(|ca| ca.0.clone());
        settings.vault_namespace = vault_namespace.filter(|n| !n.trim().is_empty());
        settings.tls_server_name = self
            .vault_tls_server_name
            .clone()
            .filter(|n| !n.trim().is_empty());
        settings.proxy_address = proxy_address.filter(|p| !p.trim().is_empty());
        settings.auth_method = auth_method.unwrap_or(settings::DEFAULT_AUTH_METHOD);
        // As the auth-path annotation: auth/kubernetes is the kubernetes mount.
        settings.auth_mount = auth_mount.as_deref().and_then(injector::values::auth_mount);
        settings.mode = self.mode;
        settings.default_template = default_template.unwrap_or(settings::DEFAULT_TEMPLATE);
        settings.revoke_on_shutdown =
            revoke_on_shutdown.unwrap_or(settings::DEFAULT_REVOKE_ON_SHUTDOWN);
        settings.run_as_same_user = run_as_same_user.unwrap_or(settings::DEFAULT_RUN_AS_SAME_USER);
        settings.agent_log_level = self.agent_log_level.clone();
        settings.agent_log_format = self.agent_log_format.clone();
        settings.agent_metrics_port = self.agent_metrics_port;
        let some = |q: &str| (!q.is_empty()).then(|| q.to_owned());
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
        for (container, resources) in [
            ("init", &settings.init_resources),
            ("sidecar", &settings.sidecar_resources),
        ] {
            if let Some((resource, request, limit)) = resources.request_above_limit() {
                let flag = match resource {
                    "cpu" => "cpu",
                    _ => "memory",
                };
                errors.push(format!(
                    "--{container}-{flag}-request {request} is above --{container}-{flag}-limit {limit}, which Kubernetes refuses in every injected pod; lower the request or raise the limit (an empty limit leaves it out)"
                ));
            }
        }
        settings.run_as = RunAsSettings {
            user: run_as_user,
            group: run_as_group,
            omit: self.omit_run_as,
        };
        settings.excluded_namespaces = self
            .exclude_namespaces
            .iter()
            .map(|n| n.trim().to_owned())
            .filter(|n| !n.is_empty())
            .collect();
        settings.startup_timeout_seconds = self.startup_timeout_seconds;
        settings.host_labels = self.host_labels.iter().cloned().collect();
        settings.label_conflict = self.label_conflict;
        if errors.is_empty() {
            Ok(settings)
        } else {
            Err(InvalidSettings(errors))
        }
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
            args.injector.settings(&no_env()).expect("valid"),
            InjectorSettings::new("https://vault:8200", DEFAULT_AGENT_IMAGE)
        );
    }

    fn no_env() -> std::collections::HashMap<String, String> {
        std::collections::HashMap::new()
    }

    fn injector_args(args: &[&str]) -> InjectorArgs {
        let cli = Cli::try_parse_from(["hydrant", "inject", "-f", "-"].iter().chain(args))
            .expect("parses");
        let Command::Inject(args) = cli.command else {
            panic!("not inject")
        };
        args.injector
    }

    #[test]
    fn cluster_wide_agent_settings_are_flags() {
        let settings = injector_args(&[
            "--vault-addr=https://vault:8200",
            "--vault-namespace=team-a",
            "--vault-tls-server-name=vault.internal",
            "--proxy-address=http://proxy:3128",
            "--revoke-on-shutdown",
            "--run-as-same-user=true",
            "--agent-log-level=WARNING",
            "--agent-log-format=standard",
            "--agent-metrics-port=9102",
        ])
        .settings(&no_env())
        .expect("valid");
        assert_eq!(settings.agent_metrics_port, Some(9102));
        assert_eq!(settings.vault_namespace.as_deref(), Some("team-a"));
        assert_eq!(settings.tls_server_name.as_deref(), Some("vault.internal"));
        assert_eq!(settings.proxy_address.as_deref(), Some("http://proxy:3128"));
        assert!(settings.revoke_on_shutdown);
        assert!(settings.run_as_same_user);
        assert_eq!(settings.agent_log_level.as_deref(), Some("warn"));
        assert_eq!(settings.agent_log_format.as_deref(), Some("plain"));
        let settings = injector_args(&["--vault-addr=https://v", "--revoke-on-shutdown=false"])
            .settings(&no_env())
            .expect("valid");
        assert!(!settings.revoke_on_shutdown);
        assert_eq!(settings.agent_metrics_port, None);
        for bad in ["--agent-log-level=loud", "--agent-metrics-port=0"] {
            assert!(
                Cli::try_parse_from(["hydrant", "inject", "-f", "-", bad]).is_err(),
                "{bad}"
            );
        }
    }

    /// A request above its limit, from flags or the chart's values, would make every injected
    /// pod one the API server refuses: it is refused at start.
    #[test]
    fn a_request_above_its_limit_is_refused_at_start() {
        let err = injector_args(&[
            "--vault-addr=https://v:8200",
            "--sidecar-memory-request=256Mi",
            "--init-cpu-request=1",
            "--init-cpu-limit=500m",
        ])
        .settings(&no_env())
        .expect_err("above")
        .0;
        assert_eq!(err.len(), 2, "{err:?}");
        assert!(
            err[0].starts_with("--init-cpu-request 1 is above --init-cpu-limit 500m"),
            "{err:?}"
        );
        assert!(
            err[1].starts_with(
                "--sidecar-memory-request 256Mi is above --sidecar-memory-limit 128Mi"
            ),
            "{err:?}"
        );
        injector_args(&[
            "--vault-addr=https://v:8200",
            "--sidecar-memory-request=256Mi",
            "--sidecar-memory-limit=",
        ])
        .settings(&no_env())
        .expect("no limit");
    }

    /// `--auth-mount auth/kubernetes` is the kubernetes mount, as the auth-path annotation
    /// reads it (not auth/auth/kubernetes); an address without a scheme is refused.
    #[test]
    fn auth_mounts_are_normalised_and_addresses_need_a_scheme() {
        for mount in ["auth/kubernetes", "/kubernetes/", "kubernetes"] {
            let settings = injector_args(&["--vault-addr=https://v:8200", "--auth-mount", mount])
                .settings(&no_env())
                .expect("valid");
            assert_eq!(
                settings.auth_mount.as_deref(),
                Some("kubernetes"),
                "{mount}"
            );
        }
        let err = injector_args(&["--vault-addr=vault:8200"])
            .settings(&no_env())
            .expect_err("no scheme")
            .0;
        assert_eq!(
            err,
            [
                "--vault-addr: \"vault:8200\" has no scheme; write https://vault:8200 (or http:// for a Vault without TLS)"
            ]
        );
    }

    /// A vault-helm values file sets vault-k8s's variables: they are read when hydrant's flag
    /// and variable are not given, and a bad one is named.
    #[test]
    fn vault_k8s_variables_are_read_after_hydrants_own() {
        let env: std::collections::HashMap<String, String> = [
            ("AGENT_INJECT_VAULT_ADDR", "https://vault.vault.svc:8200"),
            ("AGENT_INJECT_VAULT_AUTH_TYPE", "jwt"),
            ("AGENT_INJECT_VAULT_AUTH_PATH", "jwt-k8s"),
            ("AGENT_INJECT_VAULT_NAMESPACE", "ns1"),
            ("AGENT_INJECT_PROXY_ADDR", "http://proxy:3128"),
            ("AGENT_INJECT_REVOKE_ON_SHUTDOWN", "true"),
            ("AGENT_INJECT_RUN_AS_SAME_USER", "1"),
            ("AGENT_INJECT_DEFAULT_TEMPLATE", "json"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let settings = injector_args(&[]).settings(&env).expect("valid");
        assert_eq!(settings.vault_address, "https://vault.vault.svc:8200");
        assert_eq!(settings.auth_method, AuthMethod::Jwt);
        assert_eq!(settings.auth_mount.as_deref(), Some("jwt-k8s"));
        assert_eq!(settings.vault_namespace.as_deref(), Some("ns1"));
        assert_eq!(settings.proxy_address.as_deref(), Some("http://proxy:3128"));
        assert!(settings.revoke_on_shutdown);
        assert!(settings.run_as_same_user);
        assert_eq!(settings.default_template, DefaultTemplate::Json);
        // The flag wins.
        let settings = injector_args(&[
            "--vault-addr=https://other:8200",
            "--vault-namespace=ns2",
            "--revoke-on-shutdown=false",
            "--auth-method=kubernetes",
        ])
        .settings(&env)
        .expect("valid");
        assert_eq!(settings.vault_address, "https://other:8200");
        assert_eq!(settings.vault_namespace.as_deref(), Some("ns2"));
        assert!(!settings.revoke_on_shutdown);
        assert_eq!(settings.auth_method, AuthMethod::Kubernetes);
        // Every bad value is named, and a missing address too.
        let bad: std::collections::HashMap<String, String> = [
            ("AGENT_INJECT_REVOKE_ON_SHUTDOWN", "yes please"),
            ("AGENT_INJECT_VAULT_AUTH_TYPE", "aws"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let err = injector_args(&[]).settings(&bad).expect_err("invalid").0;
        assert_eq!(err.len(), 3, "{err:?}");
        assert!(
            err[0].starts_with("AGENT_INJECT_VAULT_AUTH_TYPE: \"aws\""),
            "{err:?}"
        );
        assert!(
            err[1].starts_with("AGENT_INJECT_REVOKE_ON_SHUTDOWN: "),
            "{err:?}"
        );
        assert!(
            err[2].starts_with(
                "--vault-addr (HYDRANT_VAULT_ADDR, or AGENT_INJECT_VAULT_ADDR) is required"
            ),
            "{err:?}"
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
        assert_eq!(args.config, [PathBuf::from("a.yaml")]);
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
