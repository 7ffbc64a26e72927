//! The agent configuration document: what the webhook writes into `HYDRANT_AGENT_CONFIG` and what
//! `hydrant agent --config FILE` reads. Its keys are a contract; unknown keys are errors so that a
//! typo can never silently change behaviour.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

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
    /// A composed config snapshot that templates see as `config` and `snapshot`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<SnapshotConfig>,
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
    /// File holding the AppRole secret ID (approle).
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

/// A span of time written the way people write it: `90s`, `2m`, `1h30m`; a bare number is seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Duration(pub time::Duration);

impl Duration {
    /// Parses `2m`, `1h 30m`, `500ms` or a number of seconds.
    pub fn parse(text: &str) -> Result<Duration, String> {
        let text = text.trim();
        if text.is_empty() {
            return Err("empty duration; write it like 90s, 2m or 1h".to_owned());
        }
        if let Ok(secs) = text.parse::<u64>() {
            return Ok(Duration(time::Duration::from_secs(secs)));
        }
        humantime::parse_duration(text)
            .map(Duration)
            .map_err(|e| format!("invalid duration {text:?} ({e}); write it like 90s, 2m or 1h"))
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        humantime::format_duration(self.0).fmt(f)
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Duration;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration such as 90s, 2m or 1h, or a number of seconds")
            }
            fn visit_u64<E: serde::de::Error>(self, secs: u64) -> Result<Duration, E> {
                Ok(Duration(time::Duration::from_secs(secs)))
            }
            fn visit_i64<E: serde::de::Error>(self, secs: i64) -> Result<Duration, E> {
                u64::try_from(secs)
                    .map(|secs| Duration(time::Duration::from_secs(secs)))
                    .map_err(|_| {
                        E::custom(format!(
                            "{secs} is negative; a duration is 0 or more, such as 90s"
                        ))
                    })
            }
            fn visit_f64<E: serde::de::Error>(self, secs: f64) -> Result<Duration, E> {
                time::Duration::try_from_secs_f64(secs)
                    .map(Duration)
                    .map_err(|_| {
                        E::custom(format!(
                            "{secs} is not a duration; write it like 90s, 2m or 1h"
                        ))
                    })
            }
            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Duration, E> {
                Duration::parse(text).map_err(E::custom)
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// A file mode written as an octal string, `"0640"`. Numbers are refused: YAML reads an unquoted
/// `0640` as decimal 640, which would silently give the wrong mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileMode(pub u32);

impl FileMode {
    /// Parses `"0640"`, `"640"` or `"0o640"`; only permission bits (at most `0777`).
    pub fn parse(text: &str) -> Result<FileMode, String> {
        let digits = text.trim();
        let digits = digits.strip_prefix("0o").unwrap_or(digits);
        let valid = !digits.is_empty()
            && digits.len() <= 4
            && digits.bytes().all(|b| (b'0'..=b'7').contains(&b));
        match u32::from_str_radix(digits, 8) {
            Ok(mode) if valid && mode <= 0o777 => Ok(FileMode(mode)),
            _ => Err(format!(
                "invalid file mode {text:?}; write it as a quoted octal string such as \"0640\""
            )),
        }
    }
}

impl fmt::Display for FileMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04o}", self.0)
    }
}

impl Serialize for FileMode {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for FileMode {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = FileMode;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a quoted octal file mode such as \"0640\"")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<FileMode, E> {
                FileMode::parse(v).map_err(E::custom)
            }
        }
        deserializer.deserialize_str(Visitor)
    }
}

/// One problem in a configuration, at a key such as `templates[1].destination`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigIssue {
    /// Where: the path of the key.
    pub key: String,
    /// What is wrong and how to fix it.
    pub problem: String,
}

impl fmt::Display for ConfigIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.problem)
    }
}

/// Every problem found in a configuration; never empty.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigIssues(pub Vec<ConfigIssue>);

impl fmt::Display for ConfigIssues {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, issue) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            issue.fmt(f)?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigIssues {}

impl AgentConfig {
    /// Checks only `vault` and `auth`: for tools that log in but render nothing of the
    /// config's own (`hydrant render --agent-config`, `hydrant policy`, `hydrant controller`).
    pub fn validate_connection(&self) -> Result<(), ConfigIssues> {
        let mut issues = Issues::default();
        self.validate_vault(&mut issues);
        self.validate_auth(&mut issues);
        issues.finish()
    }

    /// Checks what the types alone cannot: required and forbidden keys per auth method, unique
    /// names and destinations, values in range. Reports every problem at once.
    pub fn validate(&self) -> Result<(), ConfigIssues> {
        let mut issues = Issues::default();
        self.validate_vault(&mut issues);
        self.validate_auth(&mut issues);
        self.validate_outputs(&mut issues);
        self.validate_sidecar(&mut issues);
        match self.retry.deadline {
            Some(d) if d.0.is_zero() => {
                issues.push("retry.deadline", "must be longer than zero, such as 2m")
            }
            Some(d) if d.0 > MAX_RETRY_DEADLINE => issues.push(
                "retry.deadline",
                format!(
                    "{d} is longer than the limit of {}",
                    Duration(MAX_RETRY_DEADLINE)
                ),
            ),
            _ => {}
        }
        if let Some(bytes) = self.limits.file_bytes
            && !(1..=MAX_FILE_BYTES).contains(&bytes)
        {
            issues.push(
                "limits.file_bytes",
                format!("{bytes} is outside 1 to {MAX_FILE_BYTES}; the default is {DEFAULT_MAX_FILE_BYTES}"),
            );
        }
        if let Some(steps) = self.limits.render_steps
            && !(1..=MAX_RENDER_STEPS).contains(&steps)
        {
            issues.push(
                "limits.render_steps",
                format!("{steps} is outside 1 to {MAX_RENDER_STEPS}; the default is {DEFAULT_RENDER_STEPS}"),
            );
        }
        issues.finish()
    }

    fn validate_sidecar(&self, issues: &mut Issues) {
        if self
            .refresh_interval
            .is_some_and(|d| d.0 < time::Duration::from_secs(1))
        {
            issues.push("refresh_interval", "must be at least 1s, such as 5m");
        }
        if self.listen == Some(0) {
            issues.push("listen", "must be a port number (1 to 65535), such as 8200");
        }
        if let Some(t) = self.renewal_threshold
            && !(0.5..1.0).contains(&t)
        {
            issues.push(
                "renewal_threshold",
                format!("{t} is outside 0.5 to 1 (exclusive); the default is 0.9"),
            );
        }
        let (min, max) = self.auth.backoff();
        if min.is_zero() || min > max {
            issues.push(
                "auth.min_backoff",
                "must be longer than zero and not longer than auth.max_backoff",
            );
        }
        if self.watch.iter().any(|p| p.as_os_str().is_empty()) {
            issues.push("watch", "holds an empty path");
        }
        if let Some(config) = &self.config {
            if config.containers.is_empty()
                || config.containers.iter().any(|p| p.as_os_str().is_empty())
            {
                issues.push(
                    "config.containers",
                    "needs at least one directory of config containers, and no empty path",
                );
            }
            if config.levels.as_ref().is_some_and(|l| l.is_empty()) {
                issues.push(
                    "config.levels",
                    "is empty; leave it out for the default levels",
                );
            }
        }
        let commands = self
            .templates
            .iter()
            .enumerate()
            .map(|(i, t)| (format!("templates[{i}]"), &t.command, t.command_timeout))
            .chain(
                self.secrets
                    .iter()
                    .enumerate()
                    .map(|(i, s)| (format!("secrets[{i}]"), &s.command, s.command_timeout)),
            );
        for (key, command, timeout) in commands {
            if let Some(argv) = command
                && argv.first().is_none_or(|program| program.trim().is_empty())
            {
                issues.push(format!("{key}.command"), "is empty; give the program and its arguments, such as [\"/bin/kill\", \"-HUP\", \"1\"]");
            }
            if timeout.is_some_and(|t| t.0.is_zero()) {
                issues.push(format!("{key}.command_timeout"), "must be longer than zero");
            }
        }
    }

    fn validate_vault(&self, issues: &mut Issues) {
        let vault = &self.vault;
        let address = vault.address.trim();
        let (https, rest) = match (
            address.strip_prefix("https://"),
            address.strip_prefix("http://"),
        ) {
            (Some(rest), _) => (true, Some(rest)),
            (None, Some(rest)) => (false, Some(rest)),
            (None, None) => (false, None),
        };
        let (authority, path) =
            rest.map_or(("", ""), |r| r.split_at(r.find('/').unwrap_or(r.len())));
        if rest.is_none() || authority.is_empty() {
            issues.push(
                "vault.address",
                format!(
                    "{address:?} is not an http:// or https:// URL such as https://vault.vault:8200"
                ),
            );
        } else if authority.contains('@') {
            // The address appears in every error message: credentials must not be in it.
            issues.push("vault.address", "must not hold a user name or password");
        } else if !path.is_empty() && path != "/" {
            issues.push(
                "vault.address",
                format!("{address:?} has a path; give only scheme, host and port (Vault's API is always under /v1)"),
            );
        }
        if vault.max_concurrent_requests == Some(0) {
            issues.push("vault.max_concurrent_requests", "must be at least 1");
        }
        if vault.timeout.is_some_and(|t| t.0.is_zero()) {
            issues.push("vault.timeout", "must be longer than zero, such as 30s");
        }
        if let Some(namespace) = vault.namespace()
            && !namespace.bytes().all(|b| b.is_ascii_graphic())
        {
            issues.push(
                "vault.namespace",
                "holds a space or control character; a Vault namespace such as team-a/apps has neither",
            );
        }
        match vault.tls_server_name.as_deref() {
            Some(name) if name.is_empty() || !name.bytes().all(|b| b.is_ascii_graphic()) => issues
                .push(
                    "vault.tls_server_name",
                    "is not a host name; remove it or name the certificate's host",
                ),
            _ => {}
        }
        if let Some(pem) = &vault.ca_cert_pem
            && !pem.contains("-----BEGIN CERTIFICATE-----")
        {
            issues.push(
                "vault.ca_cert_pem",
                "holds no PEM certificate; give the CA as -----BEGIN CERTIFICATE----- text",
            );
        }
        if vault
            .ca_cert_pem
            .as_deref()
            .is_some_and(|pem| pem.contains("PRIVATE KEY"))
        {
            issues.push(
                "vault.ca_cert_pem",
                "holds a private key; give only the CA certificate(s)",
            );
        }
        if vault.ca_cert.is_some() && vault.ca_cert_pem.is_some() {
            issues.push(
                "vault.ca_cert_pem",
                "is set together with vault.ca_cert; keep one of them",
            );
        }
        let tls_keys = [
            ("vault.ca_cert", vault.ca_cert.is_some()),
            ("vault.ca_cert_pem", vault.ca_cert_pem.is_some()),
            ("vault.tls_server_name", vault.tls_server_name.is_some()),
        ];
        for (key, present) in tls_keys {
            if present && rest.is_some() && !https {
                issues.push(key, "applies only to an https:// vault.address");
            } else if present && vault.tls_skip_verify {
                issues.push(
                    key,
                    "is ignored when vault.tls_skip_verify is true; remove one of them",
                );
            }
        }
    }

    fn validate_auth(&self, issues: &mut Issues) {
        use AuthMethod::*;
        let auth = &self.auth;
        let method = auth.method;
        let keys: [(&str, bool, &[AuthMethod], &[AuthMethod]); 5] = [
            // (key, present, methods that require it, methods that accept it)
            (
                "role",
                auth.role.is_some(),
                &[Kubernetes, Jwt],
                &[Kubernetes, Jwt],
            ),
            ("jwt_path", auth.jwt_path.is_some(), &[], &[Kubernetes, Jwt]),
            (
                "role_id_path",
                auth.role_id_path.is_some(),
                &[Approle],
                &[Approle],
            ),
            (
                "secret_id_path",
                auth.secret_id_path.is_some(),
                &[Approle],
                &[Approle],
            ),
            ("token_path", auth.token_path.is_some(), &[Token], &[Token]),
        ];
        for (key, present, required_by, accepted_by) in keys {
            if !present && required_by.contains(&method) {
                issues.push(
                    format!("auth.{key}"),
                    format!("is required by method {method}"),
                );
            }
            if present && !accepted_by.contains(&method) {
                issues.push(
                    format!("auth.{key}"),
                    format!("is not used by method {method}; remove it or change auth.method"),
                );
            }
        }
        match auth.role.as_deref() {
            Some(role) if role.trim().is_empty() => {
                issues.push("auth.role", "is empty; name the Vault role to log in as")
            }
            Some(role) if role.trim() != role => issues.push(
                "auth.role",
                format!("{role:?} has spaces around it; remove them"),
            ),
            _ => {}
        }
        if auth
            .mount
            .as_deref()
            .is_some_and(|m| m.trim_matches('/').is_empty())
        {
            issues.push("auth.mount", "is empty; remove it to use the method's name");
        }
        if method == Token && auth.mount.is_some() {
            issues.push("auth.mount", "is not used by method token; remove it");
        }
    }

    fn validate_outputs(&self, issues: &mut Issues) {
        if self.templates.is_empty() && self.secrets.is_empty() {
            issues.push("templates", "nothing to render: add templates or secrets");
        }
        let mut names: BTreeMap<&str, String> = BTreeMap::new();
        let mut destinations: BTreeMap<&Path, String> = BTreeMap::new();
        for (i, t) in self.templates.iter().enumerate() {
            let key = format!("templates[{i}]");
            check_name(issues, &key, &t.name, &mut names);
            check_destination(issues, &key, &t.destination, &mut destinations);
            match (&t.contents, &t.source) {
                (Some(_), Some(_)) => issues.push(&key, "has both contents and source; keep one"),
                (None, None) => issues.push(&key, "needs contents or source"),
                (None, Some(source)) if source.as_os_str().is_empty() => {
                    issues.push(format!("{key}.source"), "is empty; name the template file")
                }
                _ => {}
            }
            match t.syntax {
                TemplateSyntax::ConsulTemplate => {
                    let (left, right) = (
                        t.left_delimiter.as_deref().unwrap_or(""),
                        t.right_delimiter.as_deref().unwrap_or(""),
                    );
                    if let Some(contents) = &t.contents
                        && let Err(problem) = crate::consul_template::check(contents, left, right)
                    {
                        issues.push(format!("{key}.contents"), problem.to_string());
                    }
                }
                TemplateSyntax::Jinja => {
                    for (field, set) in [
                        ("left_delimiter", t.left_delimiter.is_some()),
                        ("right_delimiter", t.right_delimiter.is_some()),
                        ("error_on_missing_key", t.error_on_missing_key.is_some()),
                    ] {
                        if set {
                            issues.push(
                                format!("{key}.{field}"),
                                "applies to consul-template templates only; set syntax: consul-template or remove it",
                            );
                        }
                    }
                }
            }
        }
        for (i, s) in self.secrets.iter().enumerate() {
            let key = format!("secrets[{i}]");
            check_name(issues, &key, &s.name, &mut names);
            check_destination(issues, &key, &s.destination, &mut destinations);
            if s.path.trim_matches('/').is_empty() {
                issues.push(
                    format!("{key}.path"),
                    "is empty; name the Vault path to read",
                );
            }
        }
    }
}

fn check_name<'a>(
    issues: &mut Issues,
    key: &str,
    name: &'a str,
    names: &mut BTreeMap<&'a str, String>,
) {
    let valid = name.len() <= 253
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if !valid {
        issues.push(
            format!("{key}.name"),
            format!("{name:?} is not a valid name: use letters, digits, '.', '_' and '-', starting with a letter or digit"),
        );
    } else if let Some(first) = names.get(name) {
        issues.push(
            format!("{key}.name"),
            format!("{name:?} is also the name of {first}"),
        );
    } else {
        names.insert(name, key.to_owned());
    }
}

fn check_destination<'a>(
    issues: &mut Issues,
    key: &str,
    destination: &'a Path,
    destinations: &mut BTreeMap<&'a Path, String>,
) {
    let text = destination.as_os_str().to_string_lossy();
    if destination.as_os_str().is_empty() {
        issues.push(
            format!("{key}.destination"),
            "is empty; name the file to write",
        );
    } else if text.ends_with('/') || destination.file_name().is_none() {
        issues.push(
            format!("{key}.destination"),
            format!(
                "{text:?} names a directory; name the file to write, such as /vault/secrets/db.env"
            ),
        );
    } else if let Some(first) = destinations.get(destination) {
        issues.push(
            format!("{key}.destination"),
            format!(
                "{} is also the destination of {first}",
                destination.display()
            ),
        );
    } else {
        destinations.insert(destination, key.to_owned());
    }
}

#[derive(Default)]
struct Issues(Vec<ConfigIssue>);

impl Issues {
    fn push(&mut self, key: impl Into<String>, problem: impl Into<String>) {
        self.0.push(ConfigIssue {
            key: key.into(),
            problem: problem.into(),
        });
    }

    fn finish(self) -> Result<(), ConfigIssues> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(ConfigIssues(self.0))
        }
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minimal() -> AgentConfig {
        serde_json::from_value(serde_json::json!({
            "vault": {"address": "http://127.0.0.1:8200"},
            "auth": {"method": "kubernetes", "role": "app"},
            "templates": [{"name": "db", "contents": "x", "destination": "/vault/secrets/db"}],
        }))
        .expect("minimal config parses")
    }

    #[test]
    fn durations_parse_units_numbers_and_reject_garbage() {
        let s = time::Duration::from_secs;
        let cases: &[(&str, Option<time::Duration>)] = &[
            ("2m", Some(s(120))),
            ("90s", Some(s(90))),
            ("1h30m", Some(s(5400))),
            ("1h 30m", Some(s(5400))),
            ("500ms", Some(time::Duration::from_millis(500))),
            (" 45 ", Some(s(45))),
            ("0", Some(s(0))),
            ("", None),
            ("   ", None),
            ("2 minutes please", None),
            ("-5s", None),
            ("5x", None),
            ("99999999999999999999999h", None),
        ];
        for (text, want) in cases {
            assert_eq!(
                Duration::parse(text).ok().map(|d| d.0),
                *want,
                "parsing {text:?}"
            );
        }
    }

    #[test]
    fn file_modes_parse_octal_strings_only() {
        let cases: &[(&str, Option<u32>)] = &[
            ("0640", Some(0o640)),
            ("640", Some(0o640)),
            ("0o600", Some(0o600)),
            ("0777", Some(0o777)),
            (" 0400 ", Some(0o400)),
            ("0000", Some(0)),
            ("4755", None),
            ("0800", None),
            ("rw-r-----", None),
            ("", None),
            ("07777", None),
            ("-644", None),
        ];
        for (text, want) in cases {
            assert_eq!(
                FileMode::parse(text).ok().map(|m| m.0),
                *want,
                "parsing {text:?}"
            );
        }
        assert!(
            serde_json::from_str::<FileMode>("640").is_err(),
            "numbers are refused"
        );
        assert_eq!(FileMode(0o640).to_string(), "0640");
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
    fn validation_reports_every_problem_with_its_key() {
        let mut config = minimal();
        config.vault.address = "vault:8200".into();
        config.auth.role = None;
        config.auth.token_path = Some("/t".into());
        config.templates.push(TemplateConfig {
            name: "db".into(),
            contents: None,
            source: None,
            destination: "/vault/secrets/db".into(),
            perms: None,
            command: None,
            command_timeout: None,
            ..TemplateConfig::default()
        });
        let issues = config.validate().expect_err("invalid").0;
        let keys: Vec<&str> = issues.iter().map(|i| i.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "vault.address",
                "auth.role",
                "auth.token_path",
                "templates[1].name",
                "templates[1].destination",
                "templates[1]",
            ]
        );
        assert!(issues[3].problem.contains("also the name of templates[0]"));
    }

    #[test]
    fn each_auth_method_requires_its_own_keys() {
        let cases = [
            (AuthMethod::Kubernetes, vec!["auth.role"]),
            (AuthMethod::Jwt, vec!["auth.role"]),
            (
                AuthMethod::Approle,
                vec!["auth.role_id_path", "auth.secret_id_path"],
            ),
            (AuthMethod::Token, vec!["auth.token_path"]),
        ];
        for (method, want) in cases {
            let mut config = minimal();
            config.auth = AuthConfig {
                method,
                mount: None,
                role: None,
                jwt_path: None,
                role_id_path: None,
                secret_id_path: None,
                token_path: None,
                min_backoff: None,
                max_backoff: None,
            };
            let issues = config.validate().expect_err("keys missing").0;
            let keys: Vec<&str> = issues.iter().map(|i| i.key.as_str()).collect();
            assert_eq!(keys, want, "method {method}");
        }
    }

    #[test]
    fn addresses_with_paths_credentials_or_other_schemes_are_refused() {
        let cases = [
            ("https://vault.vault:8200", true),
            ("http://127.0.0.1:8200/", true),
            ("https://user:pw@vault:8200", false),
            ("https://vault:8200/v1", false),
            ("vault:8200", false),
            ("https://", false),
            ("ftp://vault", false),
        ];
        for (address, valid) in cases {
            let mut config = minimal();
            config.vault.address = address.into();
            assert_eq!(config.validate().is_ok(), valid, "{address}");
        }
    }

    #[test]
    fn tls_settings_that_would_be_ignored_are_refused() {
        let mut config = minimal();
        config.vault.ca_cert = Some("/ca.pem".into());
        let issues = config.validate().expect_err("http with a CA").0;
        assert_eq!(issues[0].key, "vault.ca_cert");
        assert!(issues[0].problem.contains("https://"));

        config.vault.address = "https://vault:8200".into();
        assert_eq!(config.validate(), Ok(()));
        config.vault.tls_skip_verify = true;
        let issues = config.validate().expect_err("skip with a CA").0;
        assert!(issues[0].problem.contains("tls_skip_verify"));
    }

    #[test]
    fn a_ca_as_text_must_be_pem_and_cannot_join_a_ca_file() {
        let mut config = minimal();
        config.vault.address = "https://vault:8200".into();
        config.vault.ca_cert_pem =
            Some("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n".into());
        assert_eq!(config.validate(), Ok(()));
        config.vault.ca_cert = Some("/ca.pem".into());
        let issues = config.validate().expect_err("both").0;
        assert_eq!(issues[0].key, "vault.ca_cert_pem");
        assert!(
            issues[0].problem.contains("keep one"),
            "{}",
            issues[0].problem
        );
        config.vault.ca_cert = None;
        config.vault.ca_cert_pem = Some("/etc/ssl/ca.pem".into());
        let issues = config.validate().expect_err("a path, not PEM").0;
        assert!(issues[0].problem.contains("no PEM certificate"));
        config.vault.ca_cert_pem = Some(
            "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n-----BEGIN PRIVATE KEY-----\nMIGH\n-----END PRIVATE KEY-----\n".into(),
        );
        let issues = config.validate().expect_err("a key travels with it").0;
        assert!(
            issues[0].problem.contains("private key"),
            "{}",
            issues[0].problem
        );
    }

    #[test]
    fn namespaces_roles_and_destinations_that_cannot_work_are_refused() {
        let mut config = minimal();
        config.vault.namespace = Some("team a\n".into());
        config.auth.role = Some(" app".into());
        config.templates[0].destination = "/vault/secrets/".into();
        let keys: Vec<String> = config
            .validate()
            .expect_err("invalid")
            .0
            .into_iter()
            .map(|i| i.key)
            .collect();
        assert_eq!(
            keys,
            ["vault.namespace", "auth.role", "templates[0].destination"]
        );
    }

    #[test]
    fn deadlines_are_bounded_and_negative_numbers_explained() {
        let mut config = minimal();
        config.retry.deadline = Some(Duration(time::Duration::from_secs(u64::MAX)));
        assert_eq!(
            config.validate().expect_err("too long").0[0].key,
            "retry.deadline"
        );
        let err = serde_json::from_str::<Duration>("-5").expect_err("negative");
        assert!(err.to_string().contains("-5 is negative"), "{err}");
        assert_eq!(
            serde_json::from_str::<Duration>("1.5").expect("float").0,
            time::Duration::from_millis(1500)
        );
        assert_eq!(
            serde_json::from_str::<Duration>("\"2m\"").expect("text").0,
            time::Duration::from_secs(120)
        );
    }

    #[test]
    fn sidecar_keys_are_checked() {
        let mut config = minimal();
        config.refresh_interval = Some(Duration(time::Duration::from_millis(10)));
        config.listen = Some(0);
        config.renewal_threshold = Some(1.5);
        config.auth.min_backoff = Some(Duration(time::Duration::from_secs(600)));
        config.templates[0].command = Some(vec![String::new()]);
        let keys: Vec<String> = config
            .validate()
            .expect_err("invalid")
            .0
            .into_iter()
            .map(|i| i.key)
            .collect();
        assert_eq!(
            keys,
            [
                "refresh_interval",
                "listen",
                "renewal_threshold",
                "auth.min_backoff",
                "templates[0].command"
            ]
        );
        let config = minimal();
        assert_eq!(config.refresh_interval(), DEFAULT_REFRESH_INTERVAL);
        assert_eq!(config.auth.backoff(), DEFAULT_LOGIN_BACKOFF);
    }

    #[test]
    fn render_limits_have_defaults_and_bounds() {
        let config = minimal();
        assert_eq!(config.limits.file_bytes(), 4 << 20);
        assert_eq!(config.limits.render_steps(), 10_000_000);
        let cases: &[(Option<u64>, Option<u64>, &[&str])] = &[
            (Some(1), Some(1), &[]),
            (Some(MAX_FILE_BYTES), Some(MAX_RENDER_STEPS), &[]),
            (
                Some(0),
                Some(0),
                &["limits.file_bytes", "limits.render_steps"],
            ),
            (
                Some(MAX_FILE_BYTES + 1),
                Some(MAX_RENDER_STEPS + 1),
                &["limits.file_bytes", "limits.render_steps"],
            ),
        ];
        for (file_bytes, render_steps, want) in cases {
            let mut config = minimal();
            config.limits = LimitsConfig {
                file_bytes: *file_bytes,
                render_steps: *render_steps,
            };
            let keys: Vec<String> = config
                .validate()
                .err()
                .map(|e| e.0.into_iter().map(|i| i.key).collect())
                .unwrap_or_default();
            assert_eq!(keys, *want, "{file_bytes:?} {render_steps:?}");
        }
        let parsed: AgentConfig = serde_json::from_value(serde_json::json!({
            "vault": {"address": "http://127.0.0.1:8200"},
            "auth": {"method": "token", "token_path": "/t"},
            "limits": {"file_bytes": 1024, "render_steps": 5000},
        }))
        .expect("parses");
        assert_eq!(parsed.limits.file_bytes(), 1024);
        assert_eq!(parsed.limits.render_steps(), 5000);
    }

    #[test]
    fn empty_namespace_means_none() {
        let mut config = minimal();
        config.vault.namespace = Some(String::new());
        assert_eq!(config.vault.namespace(), None);
        config.vault.namespace = Some("team-a".into());
        assert_eq!(config.vault.namespace(), Some("team-a"));
    }
}
