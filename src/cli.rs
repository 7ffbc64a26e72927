//! The command line: one binary, one subcommand per job.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use injector::agent_config::AuthMethod;
use injector::settings::{DefaultTemplate, InjectorSettings, Mode, Resources, RunAs};
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
    Agent(AgentArgs),
    /// Compose an app instance's config snapshot from config containers, validate it against the
    /// app's JSON Schema, and write it in a format or through a template: for CI and laptops.
    ///
    /// Secrets for templates come from --secrets-file, from Vault via --agent-config (its vault
    /// and auth), or from VAULT_ADDR and VAULT_TOKEN.
    ///
    /// Exit status: 0 rendered (or valid, with --check); 1 invalid input or a snapshot that fails
    /// its schema (every error listed); 2 a Vault or file failure; 64 a usage error.
    Render(RenderArgs),
    /// Mutate pod manifests offline: what the webhook would do, for GitOps pipelines and
    /// debugging.
    ///
    /// Reads YAML or JSON documents (Pod, Deployment, StatefulSet, DaemonSet, ReplicaSet, Job,
    /// CronJob, List), mutates every pod template that asks for injection, leaves everything else
    /// as it is, and prints YAML. A pod the webhook would deny makes it exit 1 with the denial.
    Inject(InjectArgs),
    /// Serve the mutating admission webhook over HTTPS.
    ///
    /// POST /mutate takes an AdmissionReview (admission.k8s.io/v1 or v1beta1) and answers in kind;
    /// GET /healthz, /readyz and /metrics serve probes and Prometheus. The certificate and key are
    /// reloaded when their files change.
    Webhook(Box<WebhookArgs>),
    /// Keep a policy repository's branch applied to Vault: fetch on an interval and on POST
    /// /sync, apply each new commit (a commit with any problem is refused whole), correct or
    /// report drift, follow Namespaces, lead through a Lease.
    ///
    /// Vault: --agent-config (its vault and auth; Kubernetes auth in a pod) or VAULT_ADDR and
    /// VAULT_TOKEN. Kubernetes (for --namespace-selector and --leader-election): the pod's
    /// service account, or KUBECONFIG. GET /healthz, /readyz and /metrics serve probes and
    /// Prometheus.
    Controller(ControllerArgs),
    /// Check a policy repository (Vault policies and Kubernetes-auth roles per namespace) against
    /// its guardrails, plan it against Vault, apply it.
    ///
    /// Exit status: 0 clean; 1 with every problem listed (file, line, rule); 64 usage.
    Policy(PolicyArgs),
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
    /// Exit 0 if the running agent has rendered every file, 1 if not: native mode's startup
    /// probe. Reads nothing but the ready file.
    #[arg(long, conflicts_with_all = ["once", "config"])]
    pub check_ready: bool,
    /// The file a running agent creates once every file is rendered.
    #[arg(long, value_name = "FILE", default_value = injector::names::READY_FILE)]
    pub ready_file: PathBuf,
}

/// `hydrant controller`.
#[derive(Debug, Args)]
pub struct ControllerArgs {
    /// The policy repository's git remote: https://, git:// or file://.
    #[arg(long, value_name = "URL")]
    pub repository: String,
    /// The branch applied.
    #[arg(long, default_value = "main")]
    pub branch: String,
    /// The user name for an https:// remote that asks for credentials.
    #[arg(
        long,
        value_name = "NAME",
        default_value = "git",
        requires = "git_password_file"
    )]
    pub git_username: String,
    /// A file holding the password or token for an https:// remote (a mounted Secret; read
    /// at every fetch). Never put credentials in the URL: it is logged.
    #[arg(long, value_name = "FILE")]
    pub git_password_file: Option<PathBuf>,
    /// Where the clone and checkouts are kept (an emptyDir in a pod).
    #[arg(long, value_name = "DIR", default_value = "/var/lib/hydrant")]
    pub state_dir: PathBuf,
    /// How often the remote is fetched (POST /sync fetches at once).
    #[arg(long, value_name = "DURATION", default_value = "1m", value_parser = parse_duration)]
    pub poll_interval: Duration,
    /// The least time between fetches that POST /sync asks for: requests in between wait for
    /// one fetch together, so that a flood of them cannot make a flood of fetches.
    #[arg(long, env = "HYDRANT_SYNC_INTERVAL", value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
    pub sync_interval: Duration,
    /// How often Vault is compared with the applied commit.
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = parse_duration)]
    pub drift_interval: Duration,
    /// What drift leads to: correct it, or only report it (log and metric).
    #[arg(long, value_enum, default_value = "correct")]
    pub drift_mode: crate::controller::DriftMode,
    /// Where /healthz, /readyz, /metrics and POST /sync are served.
    #[arg(long, value_name = "ADDR", default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,
    /// Take Vault's address, TLS settings and login from this agent config (otherwise
    /// VAULT_ADDR and VAULT_TOKEN).
    #[arg(long, value_name = "FILE")]
    pub agent_config: Option<PathBuf>,
    /// Follow the cluster's Namespaces that match this label selector (such as
    /// hydrant.dev/policy=enabled): each gets the defaults, and a namespace that is deleted
    /// loses its objects. Namespaces that do not exist or do not match get nothing.
    #[arg(long, value_name = "SELECTOR")]
    pub namespace_selector: Option<String>,
    /// Act only while holding a coordination.k8s.io Lease, for running several replicas.
    #[arg(long)]
    pub leader_election: bool,
    /// The Lease's name.
    #[arg(long, default_value = "hydrant-controller")]
    pub lease_name: String,
    /// The Lease's namespace (in a pod: POD_NAMESPACE from the downward API).
    #[arg(
        long,
        env = "POD_NAMESPACE",
        value_name = "NAMESPACE",
        default_value = "default"
    )]
    pub lease_namespace: String,
    /// This replica's identity in the Lease (in a pod: POD_NAME from the downward API).
    #[arg(long, env = "POD_NAME", value_name = "NAME")]
    pub identity: Option<String>,
    /// How long a leader holds the Lease without renewing it.
    #[arg(long, value_name = "DURATION", default_value = "15s", value_parser = parse_duration)]
    pub lease_duration: Duration,
    /// Publish Kubernetes Events (events.k8s.io) on this controller's Pod: applied and refused
    /// commits, drift, failures. The Pod is POD_NAME in POD_NAMESPACE (--identity,
    /// --lease-namespace), with POD_UID, all from the downward API.
    #[arg(long)]
    pub events: bool,
    /// The uid of this controller's Pod, by which `kubectl describe pod` finds its Events.
    #[arg(long, env = "POD_UID", value_name = "UID")]
    pub pod_uid: Option<String>,
}

/// `hydrant policy`.
#[derive(Debug, Args)]
pub struct PolicyArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: PolicyCommand,
}

/// `hydrant policy` subcommands.
#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Parse and check every file offline: for CI on the policy repository.
    Lint {
        /// The repository's directory.
        dir: PathBuf,
    },
    /// Compare with Vault and print the plan: creates, updates (with a diff) and deletes.
    /// Nothing is written.
    Plan(PolicyVaultArgs),
    /// Apply the plan: deletes only what hydrant owns, at most max_deletions.
    Apply(PolicyVaultArgs),
}

/// `hydrant policy plan` and `apply`.
#[derive(Debug, Args)]
pub struct PolicyVaultArgs {
    /// The repository's directory.
    pub dir: PathBuf,
    /// Take Vault's address, TLS settings and login from this agent config (otherwise
    /// VAULT_ADDR and VAULT_TOKEN).
    #[arg(long, value_name = "FILE")]
    pub agent_config: Option<PathBuf>,
}

/// `hydrant render`.
#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("output").args(["format", "template"]))]
pub struct RenderArgs {
    /// A directory of config containers (.yaml, .yml, .json, read recursively) or one file;
    /// repeat for more.
    #[arg(long = "containers", value_name = "DIR", required = true)]
    pub containers: Vec<PathBuf>,
    /// The instance's labels, k=v,k=v; repeat for more. Sources must agree on a key.
    #[arg(long, value_name = "K=V,...")]
    pub labels: Vec<String>,
    /// More labels: a downward API file (key="value" lines) or a YAML map.
    #[arg(long, value_name = "FILE")]
    pub labels_file: Option<PathBuf>,
    /// The levels containers rank by, lowest precedence first.
    #[arg(
        long,
        value_name = "LEVEL,...",
        value_delimiter = ',',
        default_value = "global,region,site,line,environment"
    )]
    pub levels: Vec<String>,
    /// The app's JSON Schema (draft-07 or 2020-12, JSON or YAML).
    #[arg(long, value_name = "FILE")]
    pub schema: Option<PathBuf>,
    /// json (default), yaml, properties, env or configmap.
    #[arg(long, value_name = "FMT", value_parser = |s: &str| s.parse::<crate::config::Format>())]
    pub format: Option<crate::config::Format>,
    /// A template that sees config and snapshot (version, labels, containers) and may call
    /// secret(): Jinja, or consul-template's language with --syntax consul-template.
    #[arg(long, value_name = "FILE")]
    pub template: Option<PathBuf>,
    /// The template's language: jinja, or consul-template (Go templates with consul-template's
    /// functions, as Vault Agent runs them; the snapshot is not visible to them).
    #[arg(long, value_name = "SYNTAX", default_value = "jinja", requires = "template",
          value_parser = parse_syntax)]
    pub syntax: injector::agent_config::TemplateSyntax,
    /// consul-template: the delimiters, as LEFT,RIGHT (default {{,}}).
    #[arg(long, value_name = "LEFT,RIGHT", requires = "template", value_parser = parse_delimiters)]
    pub delimiters: Option<(String, String)>,
    /// The ConfigMap's name (--format configmap).
    #[arg(long, value_name = "N")]
    pub name: Option<String>,
    /// The ConfigMap's namespace (--format configmap).
    #[arg(long, value_name = "NS")]
    pub namespace: Option<String>,
    /// Write here (atomically) instead of standard output; - is standard output.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Print every value with the container that set it and the ones it overrode.
    #[arg(long, conflicts_with = "check")]
    pub explain: bool,
    /// Only validate: exit 0 when the snapshot is valid, 1 with every error.
    #[arg(long)]
    pub check: bool,
    /// Secrets for templates from this YAML file mapping Vault paths to what secret() returns.
    #[arg(long, value_name = "FILE", conflicts_with = "agent_config")]
    pub secrets_file: Option<PathBuf>,
    /// Take Vault's address, TLS settings and login from this agent config.
    #[arg(long, value_name = "FILE")]
    pub agent_config: Option<PathBuf>,
}

fn parse_syntax(text: &str) -> Result<injector::agent_config::TemplateSyntax, String> {
    use injector::agent_config::TemplateSyntax;
    match text {
        "jinja" => Ok(TemplateSyntax::Jinja),
        "consul-template" => Ok(TemplateSyntax::ConsulTemplate),
        _ => Err("use jinja or consul-template".to_owned()),
    }
}

fn parse_delimiters(text: &str) -> Result<(String, String), String> {
    match text.split_once(',') {
        Some((left, right)) if !left.is_empty() && !right.is_empty() => {
            Ok((left.to_owned(), right.to_owned()))
        }
        _ => Err("give both delimiters, as in '[[,]]'".to_owned()),
    }
}

/// `hydrant inject`.
#[derive(Debug, Args)]
pub struct InjectArgs {
    /// The manifests: a file of YAML or JSON documents, or - for standard input.
    #[arg(short = 'f', long = "filename", value_name = "FILE")]
    pub file: PathBuf,
    /// The namespace of documents that name none.
    #[arg(short = 'n', long, default_value = "default")]
    pub namespace: String,
    /// What the webhook decides for every pod.
    #[command(flatten)]
    pub injector: InjectorArgs,
}

/// `hydrant webhook`.
#[derive(Debug, Args)]
pub struct WebhookArgs {
    /// Where to listen.
    #[arg(long, env = "HYDRANT_LISTEN", default_value = "0.0.0.0:8443")]
    pub listen: SocketAddr,
    /// The serving certificate chain (PEM); reloaded when it changes.
    #[arg(long, env = "HYDRANT_TLS_CERT", value_name = "FILE")]
    pub tls_cert: PathBuf,
    /// The serving certificate's private key (PEM); reloaded when it changes.
    #[arg(long, env = "HYDRANT_TLS_KEY", value_name = "FILE")]
    pub tls_key: PathBuf,
    /// How long one review may take before it is answered 503.
    #[arg(long, env = "HYDRANT_REQUEST_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub request_timeout: Duration,
    /// The largest request body accepted, in bytes (a pod is at most about 1.5 MiB).
    #[arg(long, env = "HYDRANT_MAX_BODY_BYTES", default_value_t = 3 * 1024 * 1024)]
    pub max_body_bytes: usize,
    /// The bytes of request bodies held at once, over all connections; a review whose body does
    /// not fit is answered 503. At least --max-body-bytes.
    #[arg(long, env = "HYDRANT_MAX_IN_FLIGHT_BODY_BYTES", default_value_t = 16 * 1024 * 1024)]
    pub max_in_flight_body_bytes: usize,
    /// Connections open at once (fewer if the open files limit is lower); more wait.
    #[arg(long, env = "HYDRANT_MAX_CONNECTIONS", default_value_t = 512)]
    pub max_connections: usize,
    /// HTTP/2 streams open at once on one connection.
    #[arg(long, env = "HYDRANT_MAX_CONCURRENT_STREAMS", default_value_t = 100)]
    pub max_concurrent_streams: u32,
    /// How long a client may take to finish its TLS handshake.
    #[arg(long, env = "HYDRANT_TLS_HANDSHAKE_TIMEOUT", value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
    pub tls_handshake_timeout: Duration,
    /// HTTP/1: how long a client may take to send a request's headers, also between requests.
    #[arg(long, env = "HYDRANT_HEADER_READ_TIMEOUT", value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub header_read_timeout: Duration,
    /// How long a connection may stay open with no request in flight.
    #[arg(long, env = "HYDRANT_IDLE_TIMEOUT", value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    pub idle_timeout: Duration,
    /// What the webhook decides for every pod.
    #[command(flatten)]
    pub injector: InjectorArgs,
    /// Make the CA and serving certificate, keep them in --cert-secret, put the CA bundle into
    /// every entry of --webhook-config, renew them before they expire (one replica writes, the
    /// holder of a Lease), and serve them from --tls-cert and --tls-key (a writable emptyDir).
    #[arg(long)]
    pub self_managed_certificates: bool,
    /// The Secret holding the self-managed CA and certificate.
    #[arg(long, value_name = "NAME", default_value = "hydrant-webhook-tls")]
    pub cert_secret: String,
    /// The MutatingWebhookConfiguration whose entries get the CA bundle.
    #[arg(long, value_name = "NAME", default_value = "hydrant-webhook")]
    pub webhook_config: String,
    /// The webhook's Service; the certificate is for <service>.<namespace>.svc.
    #[arg(long, value_name = "NAME", default_value = "hydrant-webhook")]
    pub service: String,
    /// The namespace of the Service, Secret and Lease (in a pod: POD_NAMESPACE).
    #[arg(
        long,
        env = "POD_NAMESPACE",
        value_name = "NAMESPACE",
        default_value = "default"
    )]
    pub namespace: String,
    /// How long a self-managed CA lives (replaced at two thirds, trusted until it expires).
    #[arg(long, value_name = "DURATION", default_value = "43800h", value_parser = parse_duration)]
    pub ca_validity: Duration,
    /// How long a self-managed serving certificate lives (renewed at two thirds).
    #[arg(long, value_name = "DURATION", default_value = "8760h", value_parser = parse_duration)]
    pub cert_validity: Duration,
    /// How often the certificate Secret is checked.
    #[arg(long, value_name = "DURATION", default_value = "1m", value_parser = parse_duration)]
    pub cert_check_interval: Duration,
    /// The Lease that chooses the replica writing certificates.
    #[arg(
        long,
        value_name = "NAME",
        default_value = "hydrant-webhook-certificates"
    )]
    pub cert_lease_name: String,
    /// This replica's identity in the Lease (in a pod: POD_NAME).
    #[arg(long, env = "POD_NAME", value_name = "NAME")]
    pub identity: Option<String>,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
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
    #[arg(long, env = "HYDRANT_AUTH_METHOD", default_value = "kubernetes")]
    pub auth_method: AuthMethod,
    /// The auth mount of pods that name none; the method's name when unset.
    #[arg(long, env = "HYDRANT_AUTH_MOUNT")]
    pub auth_mount: Option<String>,
    /// The mode of pods that name none: native, init-and-sidecar, init-only or sidecar-only.
    #[arg(long, env = "HYDRANT_MODE", default_value = "native")]
    pub mode: Mode,
    /// vault-k8s's default template for secrets without one: map or json.
    #[arg(long, env = "HYDRANT_DEFAULT_TEMPLATE", default_value = "map", value_parser = parse_default_template)]
    pub default_template: DefaultTemplate,
    /// CPU request of the init container (init-and-sidecar and init-only modes; native mode's one
    /// container runs all the pod's life and takes the --sidecar-* values); empty leaves it out.
    #[arg(long, env = "HYDRANT_INIT_CPU_REQUEST", default_value = "10m", value_parser = parse_optional_quantity)]
    pub init_cpu_request: String,
    /// Memory request of the init container; empty leaves it out.
    #[arg(long, env = "HYDRANT_INIT_MEMORY_REQUEST", default_value = "16Mi", value_parser = parse_optional_quantity)]
    pub init_memory_request: String,
    /// CPU limit of the init container; empty (the default) leaves it out.
    #[arg(long, env = "HYDRANT_INIT_CPU_LIMIT", default_value = "", value_parser = parse_optional_quantity)]
    pub init_cpu_limit: String,
    /// Memory limit of the init container; empty (the default) leaves it out.
    #[arg(long, env = "HYDRANT_INIT_MEMORY_LIMIT", default_value = "", value_parser = parse_optional_quantity)]
    pub init_memory_limit: String,
    /// CPU request of the sidecar (and of native mode's one container); empty leaves it out.
    #[arg(long, env = "HYDRANT_SIDECAR_CPU_REQUEST", default_value = "10m", value_parser = parse_optional_quantity)]
    pub sidecar_cpu_request: String,
    /// Memory request of the sidecar; empty leaves it out.
    #[arg(long, env = "HYDRANT_SIDECAR_MEMORY_REQUEST", default_value = "16Mi", value_parser = parse_optional_quantity)]
    pub sidecar_memory_request: String,
    /// CPU limit of the sidecar; empty (the default) leaves it out.
    #[arg(long, env = "HYDRANT_SIDECAR_CPU_LIMIT", default_value = "", value_parser = parse_optional_quantity)]
    pub sidecar_cpu_limit: String,
    /// Memory limit of the sidecar; empty (the default) leaves it out.
    #[arg(long, env = "HYDRANT_SIDECAR_MEMORY_LIMIT", default_value = "", value_parser = parse_optional_quantity)]
    pub sidecar_memory_limit: String,
    /// The user the agent runs as.
    #[arg(long, env = "HYDRANT_RUN_AS_USER", default_value_t = 65532)]
    pub run_as_user: i64,
    /// The group the agent runs as.
    #[arg(long, env = "HYDRANT_RUN_AS_GROUP", default_value_t = 65532)]
    pub run_as_group: i64,
    /// Leave runAsUser and runAsGroup out, for OpenShift, which assigns them.
    #[arg(long, env = "HYDRANT_OMIT_RUN_AS")]
    pub omit_run_as: bool,
    /// Namespaces where injection is refused (comma-separated).
    #[arg(
        long = "exclude-namespaces",
        env = "HYDRANT_EXCLUDE_NAMESPACES",
        value_delimiter = ',',
        default_value = "kube-system,kube-public"
    )]
    pub exclude_namespaces: Vec<String>,
    /// Seconds a native sidecar may take to render every file before the pod fails to start.
    #[arg(long, env = "HYDRANT_STARTUP_TIMEOUT_SECONDS", default_value_t = 300)]
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
    crate::config::parse_labels("--host-labels", text)
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
