//! The agent configuration document: what the webhook writes into `HYDRANT_AGENT_CONFIG` and what
//! `hydrant agent --config FILE` reads. Its keys are a contract; unknown keys are errors so that a
//! typo can never silently change behaviour. The schema and its defaults are here; the checks
//! beyond the types are in `validate`, reading the JSON or YAML text in `document`.

mod document;
mod validate;
pub mod vault_agent;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time;

use serde::{Deserialize, Serialize};

use crate::values::{Duration, FileMode};

pub use document::{parse, parse_json};
pub use validate::{ConfigIssue, ConfigIssues};

/// Where the Kubernetes service-account token is projected into every pod.
pub const SERVICE_ACCOUNT_TOKEN_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount/token";

/// How long `--once` may take in all, retrying a Vault that is unreachable or answers 5xx.
pub const DEFAULT_RETRY_DEADLINE: time::Duration = time::Duration::from_secs(120);

/// The longest `retry.deadline` accepted.
pub const MAX_RETRY_DEADLINE: time::Duration = time::Duration::from_secs(24 * 3600);

/// How many Vault requests a render keeps in flight at most (Vault Agent's
/// `max_connections_per_host` default is the same 10).
pub const DEFAULT_MAX_CONCURRENT_REQUESTS: u16 = 10;

/// The mode of a rendered file when the config gives none.
pub const DEFAULT_FILE_MODE: FileMode = FileMode(0o644);

/// The whole agent configuration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// How to reach Vault.
    pub vault: VaultConfig,
    /// How to log in.
    pub auth: AuthConfig,
    /// Templates rendered into files.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub templates: Vec<TemplateConfig>,
    /// Shorthand: one Vault path into one file, no template.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<SecretFileConfig>,
    /// Retry limits.
    #[serde(default, skip_serializing_if = "RetryConfig::is_default")]
    pub retry: RetryConfig,
    /// Sidecar: how often KV values and other secrets without a lease are read again
    /// (default 5m, ±10% jitter).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_interval: Option<Duration>,
    /// Sidecar: the port on 127.0.0.1 of /healthz, /readyz, /metrics and POST /quit; no
    /// listener when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listen: Option<u16>,
    /// Sidecar: a port on every address of the pod (not only 127.0.0.1) that serves only
    /// /metrics, /healthz and /readyz, for Prometheus to scrape; `POST /quit` is never served
    /// there. No such listener when absent. Must differ from `listen`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics_port: Option<u16>,
    /// Sidecar: revoke the token, and with it its leases, when stopping.
    #[serde(default, skip_serializing_if = "is_false")]
    pub revoke_on_shutdown: bool,
    /// Sidecar: how long to wait after SIGTERM before revoking (the app may still be using
    /// its credentials while it stops).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoke_delay: Option<Duration>,
    /// The agent's private directory: the token and lease records an init container hands to
    /// the sidecar, and the ready file. Never one the app mounts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_dir: Option<PathBuf>,
    /// Files and directories templates may read with `file(path)`; a change re-renders the
    /// templates that read them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub watch: Vec<PathBuf>,
    /// The fraction of a certificate's or non-renewable lease's lifetime after which it is
    /// replaced (default 0.9).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renewal_threshold: Option<f64>,
    /// A composed config snapshot that templates see as `config` and `snapshot` (the key
    /// `config` in the document).
    #[serde(rename = "config", default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<SnapshotConfig>,
    /// Sidecar: exit (status 1) when one fetch has failed `retry.attempts` times in a row, so
    /// that the kubelet restarts the agent and the failure shows in the pod's restarts (Vault
    /// Agent's `exit_on_retry_failure`). Unset: false, the sidecar retries forever with backoff
    /// and the files keep their last good content. The webhook sets it for vault-k8s pods, whose
    /// `template-config-exit-on-retry-failure` defaults to true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_on_retry_failure: Option<bool>,
    /// Bounds on rendering one file: its size and the template's steps.
    #[serde(default, skip_serializing_if = "LimitsConfig::is_default")]
    pub limits: LimitsConfig,
    /// Files the token is written to after every login (Vault Agent's `sink "file"`), for apps
    /// that call Vault themselves. Renewals keep the same token, so the file stays current.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub token_sinks: Vec<TokenSinkConfig>,
    /// Render every file once, then exit, as `--once` does (Vault Agent's `exit_after_auth`).
    #[serde(default, skip_serializing_if = "is_false")]
    pub exit_after_auth: bool,
    /// A file the agent writes its process ID to while it runs, and removes when it exits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid_file: Option<PathBuf>,
    /// `hydrant exec`: the environment variables its command gets, each from a template or a
    /// Vault path and key (Vault Agent's `env_template`). Only `hydrant exec` reads them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvConfig>,
    /// `hydrant exec`: how it runs its command (Vault Agent's `exec`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exec: Option<ExecConfig>,
}

/// One environment variable of `hydrant exec`'s command: a template (`contents` or `source`, in
/// `syntax`), or a Vault path and one key of its data (`path`, `key`, `version`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvConfig {
    /// The variable's name: letters, digits and `_`, not starting with a digit.
    pub name: String,
    /// The template text, in `syntax`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contents: Option<String>,
    /// A file holding the template text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<PathBuf>,
    /// The template language (default `jinja`).
    #[serde(default, skip_serializing_if = "TemplateSyntax::is_default")]
    pub syntax: TemplateSyntax,
    /// consul-template: the left delimiter (default `{{`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub left_delimiter: Option<String>,
    /// consul-template: the right delimiter (default `}}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub right_delimiter: Option<String>,
    /// consul-template: whether a missing map key fails the render (default false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_on_missing_key: Option<bool>,
    /// Instead of a template: the Vault path read (a KV v2 path with or without `data/`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// With `path`: the key of the secret's data (for KV v2, of the inner `data`) whose value
    /// the variable gets; strings as they are, other values as JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// With `path`: the KV v2 version read (default the latest).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
}

/// Whether `hydrant exec` restarts its command when a value changes (Vault Agent's
/// `restart_on_secret_changes`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RestartOnSecretChanges {
    /// Stop the command and start it again with the new values.
    #[default]
    Always,
    /// Leave the command running with the values it started with.
    Never,
}

/// How long `hydrant exec` waits for its command to stop after the stop signal before it kills
/// it: Vault Agent's fixed 30 s.
pub const DEFAULT_STOP_GRACE: time::Duration = time::Duration::from_secs(30);

/// The longest `exec.restart_stop_grace` accepted.
pub const MAX_STOP_GRACE: time::Duration = time::Duration::from_secs(3600);

/// How `hydrant exec` runs its command (Vault Agent's `exec` stanza).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecConfig {
    /// The command (argv, no shell), when the command line gives none after `--`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    /// Whether a changed value restarts the command (default `always`).
    #[serde(default, skip_serializing_if = "is_default")]
    pub restart_on_secret_changes: RestartOnSecretChanges,
    /// The signal that stops the command for a restart (default `SIGTERM`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart_stop_signal: Option<String>,
    /// How long the command may take to stop before it is killed (default 30s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart_stop_grace: Option<Duration>,
}

impl ExecConfig {
    /// `restart_stop_signal`'s name (`TERM`), with its default.
    pub fn stop_signal(&self) -> &'static str {
        self.restart_stop_signal
            .as_deref()
            .and_then(crate::commands::signal_name)
            .unwrap_or("TERM")
    }

    /// `restart_stop_grace`, with its default.
    pub fn stop_grace(&self) -> time::Duration {
        self.restart_stop_grace.map_or(DEFAULT_STOP_GRACE, |d| d.0)
    }
}

/// The mode of a token sink when the config gives none: Vault Agent's file sink default.
pub const DEFAULT_TOKEN_SINK_MODE: FileMode = FileMode(0o640);

/// A file the agent keeps the current Vault token in.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenSinkConfig {
    /// The file; written atomically (a temporary file beside it, then a rename).
    pub path: PathBuf,
    /// Its mode, `0640` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<FileMode>,
}

impl TokenSinkConfig {
    /// The mode, with its default.
    pub fn mode(&self) -> u32 {
        self.mode.unwrap_or(DEFAULT_TOKEN_SINK_MODE).0
    }
}

/// Where the agent's config snapshot comes from: container directories, the instance's
/// labels, the levels and the app's schema. The directories and files are watched.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotConfig {
    /// Directories (or files) of config containers.
    pub containers: Vec<PathBuf>,
    /// Labels of the instance (the host's, as the injector settings give them).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// A file of more labels: the downward API's `key="value"` lines of the pod's labels, or a
    /// YAML map. Must agree with `labels`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels_file: Option<PathBuf>,
    /// The levels containers rank by, lowest precedence first (default global, region, site,
    /// line, environment).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub levels: Option<Vec<String>>,
    /// The app's JSON Schema; a snapshot that fails it is never rendered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<PathBuf>,
    /// When `labels` (the host's) and `labels_file` (the pod's) give a key different values.
    #[serde(default, skip_serializing_if = "LabelConflict::is_default")]
    pub label_conflict: LabelConflict,
}

/// What to do when the host's and the pod's labels disagree on a key.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LabelConflict {
    /// Refuse to compose: the snapshot is invalid until they agree.
    #[default]
    Error,
    /// The host's value wins.
    HostWins,
    /// The pod's value wins.
    AppWins,
}

impl LabelConflict {
    fn is_default(&self) -> bool {
        *self == LabelConflict::Error
    }
}

/// How often a sidecar reads lease-less secrets again when the config gives nothing.
pub const DEFAULT_REFRESH_INTERVAL: time::Duration = time::Duration::from_secs(300);

/// The fraction of a lifetime after which certificates and non-renewable leases are replaced.
pub const DEFAULT_RENEWAL_THRESHOLD: f64 = 0.9;

/// How long one Vault request may take when the config gives nothing.
pub const DEFAULT_REQUEST_TIMEOUT: time::Duration = time::Duration::from_secs(30);

/// How long a change command may run.
pub const DEFAULT_COMMAND_TIMEOUT: time::Duration = time::Duration::from_secs(30);

/// The shortest and longest pause between two login attempts.
pub const DEFAULT_LOGIN_BACKOFF: (time::Duration, time::Duration) =
    (time::Duration::from_secs(1), time::Duration::from_secs(300));

/// One file the agent writes, whether a template or a `secrets` shorthand gives it.
#[derive(Clone, Copy, Debug)]
pub struct OutputRef<'a> {
    /// The output's name.
    pub name: &'a str,
    /// Where it is written.
    pub destination: &'a std::path::Path,
    /// Its mode, with the default.
    pub mode: u32,
    /// The command run after it changed.
    pub command: Option<&'a [String]>,
    /// That command's timeout, with the default.
    pub command_timeout: time::Duration,
    /// The template, or the shorthand's path and format.
    pub kind: OutputKind<'a>,
}

/// What gives an output its content.
#[derive(Clone, Copy, Debug)]
pub enum OutputKind<'a> {
    /// A template.
    Template(&'a TemplateConfig),
    /// A `secrets` shorthand.
    Secret(&'a SecretFileConfig),
}

impl AgentConfig {
    /// Every output, templates first and then secrets: the order in which the engine renders
    /// them, and the index "output i" means everywhere.
    pub fn outputs(&self) -> impl Iterator<Item = OutputRef<'_>> {
        let templates = self.templates.iter().map(|t| OutputRef {
            name: &t.name,
            destination: &t.destination,
            mode: t.perms.unwrap_or(DEFAULT_FILE_MODE).0,
            command: t.command.as_deref(),
            command_timeout: t.command_timeout.map_or(DEFAULT_COMMAND_TIMEOUT, |d| d.0),
            kind: OutputKind::Template(t),
        });
        let secrets = self.secrets.iter().map(|s| OutputRef {
            name: &s.name,
            destination: &s.destination,
            mode: s.perms.unwrap_or(DEFAULT_FILE_MODE).0,
            command: s.command.as_deref(),
            command_timeout: s.command_timeout.map_or(DEFAULT_COMMAND_TIMEOUT, |d| d.0),
            kind: OutputKind::Secret(s),
        });
        templates.chain(secrets)
    }

    /// The refresh interval, with its default.
    pub fn refresh_interval(&self) -> time::Duration {
        self.refresh_interval
            .map_or(DEFAULT_REFRESH_INTERVAL, |d| d.0)
    }

    /// The renewal threshold, with its default.
    pub fn renewal_threshold(&self) -> f64 {
        self.renewal_threshold.unwrap_or(DEFAULT_RENEWAL_THRESHOLD)
    }

    /// Whether the sidecar exits once a fetch has failed `retry.attempts` times in a row.
    pub fn exit_on_retry_failure(&self) -> bool {
        self.exit_on_retry_failure.unwrap_or(false)
    }
}

/// The Vault server and the TLS settings to reach it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VaultConfig {
    /// `http://` or `https://` URL of the server.
    pub address: String,
    /// Sent as `X-Vault-Namespace` when set and non-empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// PEM file of the CA(s) that sign Vault's certificate; the system roots when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_cert: Option<PathBuf>,
    /// The same CA(s) as PEM text, for when no file can be mounted: the injector puts its
    /// cluster-wide Vault CA bundle here. Set `ca_cert` or this, not both.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_cert_pem: Option<String>,
    /// The name Vault's certificate is checked against, when it differs from the address's host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_server_name: Option<String>,
    /// Accept any certificate. For development only.
    #[serde(default, skip_serializing_if = "is_false")]
    pub tls_skip_verify: bool,
    /// Vault requests kept in flight at most while rendering.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrent_requests: Option<u16>,
    /// How long one request may take before it counts as failed (default 30 s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
}

impl VaultConfig {
    /// The namespace to send, if any: an empty string means none.
    pub fn namespace(&self) -> Option<&str> {
        self.namespace.as_deref().filter(|ns| !ns.is_empty())
    }

    /// The per-request timeout, with its default.
    pub fn timeout(&self) -> time::Duration {
        self.timeout.map_or(DEFAULT_REQUEST_TIMEOUT, |d| d.0)
    }

    /// The bound on concurrent requests, with its default.
    pub fn max_concurrent_requests(&self) -> usize {
        usize::from(
            self.max_concurrent_requests
                .unwrap_or(DEFAULT_MAX_CONCURRENT_REQUESTS),
        )
    }
}

/// The auth methods the agent can log in with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthMethod {
    /// Kubernetes auth: the service-account JWT, checked by Vault through a TokenReview.
    Kubernetes,
    /// JWT auth: a JWT checked by Vault against configured keys.
    Jwt,
    /// AppRole: a role ID and a secret ID read from files.
    Approle,
    /// A Vault token read from a file.
    Token,
}

impl AuthMethod {
    /// The name Vault uses for the method, which is also its default mount path.
    pub fn name(self) -> &'static str {
        match self {
            AuthMethod::Kubernetes => "kubernetes",
            AuthMethod::Jwt => "jwt",
            AuthMethod::Approle => "approle",
            AuthMethod::Token => "token",
        }
    }
}

impl std::str::FromStr for AuthMethod {
    type Err = String;

    fn from_str(s: &str) -> Result<AuthMethod, String> {
        [
            AuthMethod::Kubernetes,
            AuthMethod::Jwt,
            AuthMethod::Approle,
            AuthMethod::Token,
        ]
        .into_iter()
        .find(|m| m.name() == s.trim())
        .ok_or_else(|| {
            format!("{s:?} is not an auth method; use kubernetes, jwt, approle or token")
        })
    }
}

impl fmt::Display for AuthMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How the agent logs in. Which keys apply depends on `method`; a key that does not apply to the
/// method is an error rather than silently ignored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// The auth method.
    pub method: AuthMethod,
    /// The auth mount path; the method's name when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mount: Option<String>,
    /// The role to log in as (kubernetes, jwt).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// File holding the JWT (kubernetes, jwt); re-read at every login.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwt_path: Option<PathBuf>,
    /// File holding the AppRole role ID (approle).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_id_path: Option<PathBuf>,
    /// File holding the AppRole secret ID (approle); none for a role that binds no secret ID
    /// (`bind_secret_id=false`), which logs in with its role ID alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_id_path: Option<PathBuf>,
    /// File holding a Vault token (token).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_path: Option<PathBuf>,
    /// Sidecar: the first pause after a failed login (default 1s); pauses double with jitter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_backoff: Option<Duration>,
    /// Sidecar: the longest pause between logins (default 5m).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_backoff: Option<Duration>,
    /// Delete the secret-ID file (approle) or the JWT file (jwt) once it has been read, and log
    /// in again with the value kept in memory while no new file appears (Vault Agent's
    /// `remove_secret_id_file_after_reading` and `remove_jwt_after_reading`). Default false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remove_after_reading: Option<bool>,
}

impl AuthConfig {
    /// The mount path without surrounding slashes, defaulting to the method's name.
    pub fn mount(&self) -> &str {
        self.mount
            .as_deref()
            .map(|m| m.trim_matches('/'))
            .unwrap_or(self.method.name())
    }

    /// The login backoff bounds, with their defaults.
    pub fn backoff(&self) -> (time::Duration, time::Duration) {
        (
            self.min_backoff.map_or(DEFAULT_LOGIN_BACKOFF.0, |d| d.0),
            self.max_backoff.map_or(DEFAULT_LOGIN_BACKOFF.1, |d| d.0),
        )
    }

    /// The JWT file, defaulting to the projected service-account token.
    pub fn jwt_path(&self) -> &Path {
        self.jwt_path
            .as_deref()
            .unwrap_or(Path::new(SERVICE_ACCOUNT_TOKEN_PATH))
    }
}

/// A template rendered into a file.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateConfig {
    /// Names the template in errors, logs and metrics.
    pub name: String,
    /// The template text, in `syntax`. Exactly one of `contents` and `source`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contents: Option<String>,
    /// A file holding the template text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<PathBuf>,
    /// The rendered file.
    pub destination: PathBuf,
    /// The rendered file's mode, `0644` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub perms: Option<FileMode>,
    /// Sidecar: a command (argv, no shell) run after the file changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    /// How long the command may run (default 30s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command_timeout: Option<Duration>,
    /// The template language (default `jinja`).
    #[serde(default, skip_serializing_if = "TemplateSyntax::is_default")]
    pub syntax: TemplateSyntax,
    /// consul-template: the left delimiter (default `{{`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub left_delimiter: Option<String>,
    /// consul-template: the right delimiter (default `}}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub right_delimiter: Option<String>,
    /// consul-template: whether a missing map key fails the render (default false: it renders
    /// `<no value>`, as Vault Agent does, and the agent warns).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_on_missing_key: Option<bool>,
    /// Create the destination's missing parent directories before anything is fetched
    /// (default true, as consul-template's `create_dest_dirs`); false: a missing directory is
    /// an error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create_dest_dirs: Option<bool>,
}

impl TemplateConfig {
    /// Whether missing parent directories of the destination are created.
    pub fn create_dest_dirs(&self) -> bool {
        self.create_dest_dirs.unwrap_or(true)
    }
}

/// The language of a template.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum TemplateSyntax {
    /// Jinja, as minijinja runs it: hydrant's own templates.
    #[default]
    #[serde(rename = "jinja")]
    Jinja,
    /// consul-template's: Go's text/template with consul-template's functions, as Vault Agent
    /// and vault-k8s run them.
    #[serde(rename = "consul-template")]
    ConsulTemplate,
}

impl TemplateSyntax {
    fn is_default(&self) -> bool {
        *self == TemplateSyntax::Jinja
    }
}

/// How the `secrets` shorthand writes a secret's data.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SecretFormat {
    /// One JSON object.
    #[default]
    Json,
    /// One YAML mapping.
    Yaml,
    /// `KEY='value'` lines that a POSIX shell can source.
    Env,
    /// `key: value` lines, as vault-k8s's default `map` template writes them.
    Map,
    /// Exactly what vault-k8s's default `map` template renders: one `key: value` line per key of
    /// the whole response `data` (for KV v2 that is `data: map[...]` and `metadata: map[...]`),
    /// values printed as Go prints them.
    #[serde(rename = "vault-k8s-map")]
    VaultK8sMap,
    /// Exactly what vault-k8s's default `json` template renders: the whole response `data` as
    /// one line of JSON, as Go encodes it.
    #[serde(rename = "vault-k8s-json")]
    VaultK8sJson,
}

/// The `secrets` shorthand: one Vault path into one file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretFileConfig {
    /// Names the secret in errors, logs and metrics.
    pub name: String,
    /// The Vault path read; for KV v2 the file holds the inner `data` map.
    pub path: String,
    /// How the data is written.
    #[serde(default)]
    pub format: SecretFormat,
    /// The rendered file.
    pub destination: PathBuf,
    /// The rendered file's mode, `0644` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub perms: Option<FileMode>,
    /// Sidecar: a command (argv, no shell) run after the file changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    /// How long the command may run (default 30s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command_timeout: Option<Duration>,
}

/// Retry limits.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryConfig {
    /// With `--once`: how long the whole run may take; transient Vault failures (unreachable,
    /// sealed, overloaded) are retried until then, after which the agent exits 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline: Option<Duration>,
    /// Sidecar, with `exit_on_retry_failure`: the failures in a row of one fetch after which
    /// the agent exits (default 12, Vault Agent's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempts: Option<u32>,
}

/// Bounds on rendering one file, so that a template (written by whoever may create a pod) cannot
/// take the agent's memory, disk or CPU.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// The largest file a template or secret may render, in bytes (default 4 MiB); a larger
    /// one is refused and the destination keeps what it had.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_bytes: Option<u64>,
    /// The steps (minijinja instructions) one render of one template may take (default 10
    /// million, about a second of one core): a loop that does not end fails instead of running
    /// on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub render_steps: Option<u64>,
}

/// The default of `limits.file_bytes`: 4 MiB holds the largest certificate bundles and configs
/// seen in pods (a full public CA bundle is about 220 KiB) many times over.
pub const DEFAULT_MAX_FILE_BYTES: u64 = 4 << 20;

/// The largest `limits.file_bytes` accepted: 256 MiB.
pub const MAX_FILE_BYTES: u64 = 256 << 20;

/// The default of `limits.render_steps`: 0.6 to 1.5 s of one core in a release build. Large
/// real templates (a loop over thousands of entries) take well under a million.
pub const DEFAULT_RENDER_STEPS: u64 = 10_000_000;

/// The largest `limits.render_steps` accepted: about 10 s of one core, during which the sidecar's
/// renewals wait for the render.
pub const MAX_RENDER_STEPS: u64 = 100_000_000;

impl LimitsConfig {
    /// `limits.file_bytes`, with its default.
    pub fn file_bytes(&self) -> u64 {
        self.file_bytes.unwrap_or(DEFAULT_MAX_FILE_BYTES)
    }

    /// `limits.render_steps`, with its default.
    pub fn render_steps(&self) -> u64 {
        self.render_steps.unwrap_or(DEFAULT_RENDER_STEPS)
    }

    fn is_default(&self) -> bool {
        *self == LimitsConfig::default()
    }
}

/// The default of `retry.attempts`: Vault Agent's 12.
pub const DEFAULT_RETRY_ATTEMPTS: u32 = 12;

impl RetryConfig {
    /// The deadline, with its default.
    pub fn deadline(&self) -> time::Duration {
        self.deadline.map_or(DEFAULT_RETRY_DEADLINE, |d| d.0)
    }

    /// `retry.attempts`, with its default; at least 1.
    pub fn attempts(&self) -> u32 {
        self.attempts.unwrap_or(DEFAULT_RETRY_ATTEMPTS).max(1)
    }

    fn is_default(&self) -> bool {
        *self == RetryConfig::default()
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// Whether `name` can name an environment variable a shell and every runtime read back:
/// letters, digits and `_`, not starting with a digit (POSIX's portable names, any case).
pub fn is_env_name(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn is_default<T: Default + PartialEq>(value: &T) -> bool {
    *value == T::default()
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn minimal() -> AgentConfig {
        serde_json::from_value(serde_json::json!({
            "vault": {"address": "http://127.0.0.1:8200"},
            "auth": {"method": "kubernetes", "role": "app"},
            "templates": [{"name": "db", "contents": "x", "destination": "/vault/secrets/db"}],
        }))
        .expect("minimal config parses")
    }

    #[test]
    fn minimal_config_is_valid_and_defaults_apply() {
        let config = minimal();
        assert_eq!(config.validate(), Ok(()));
        assert_eq!(config.auth.mount(), "kubernetes");
        assert_eq!(
            config.auth.jwt_path(),
            Path::new(SERVICE_ACCOUNT_TOKEN_PATH)
        );
        assert_eq!(config.retry.deadline(), DEFAULT_RETRY_DEADLINE);
        assert_eq!(config.vault.max_concurrent_requests(), 10);
        assert_eq!(config.vault.namespace(), None);
    }

    #[test]
    fn config_round_trips_through_json() {
        let mut config = minimal();
        config.retry.deadline = Some(Duration(time::Duration::from_secs(30)));
        config.templates[0].perms = Some(FileMode(0o600));
        let json = serde_json::to_string(&config).expect("serialises");
        let back: AgentConfig = serde_json::from_str(&json).expect("parses back");
        assert_eq!(back, config);
    }

    #[test]
    fn unknown_keys_are_refused() {
        let err = serde_json::from_value::<AgentConfig>(serde_json::json!({
            "vault": {"address": "http://x"},
            "auth": {"method": "token", "token_path": "/t"},
            "templates": [{"name": "a", "contents": "x", "destnation": "/a"}],
        }))
        .expect_err("typo is refused");
        assert!(
            err.to_string().contains("unknown field `destnation`"),
            "{err}"
        );
    }

    #[test]
    fn empty_namespace_means_none() {
        let mut config = minimal();
        config.vault.namespace = Some(String::new());
        assert_eq!(config.vault.namespace(), None);
        config.vault.namespace = Some("team-a".into());
        assert_eq!(config.vault.namespace(), Some("team-a"));
    }

    #[test]
    fn the_snapshot_is_written_under_the_key_config() {
        let mut config = minimal();
        config.snapshot = Some(SnapshotConfig {
            containers: vec!["/hydrant/config/platform".into()],
            ..SnapshotConfig::default()
        });
        let json = serde_json::to_value(&config).expect("serialises");
        assert_eq!(
            json["config"]["containers"],
            serde_json::json!(["/hydrant/config/platform"])
        );
        let back: AgentConfig = serde_json::from_value(json).expect("parses back");
        assert_eq!(back, config);
    }
}
