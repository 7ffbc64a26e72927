//! What a pod's annotations ask for, in either family: the one [`InjectionRequest`] both parsers give.

use super::Family;
use super::snapshot::SnapshotRequest;
use crate::agent_config::{AuthMethod, EnvConfig, SecretFormat};
use crate::settings::Mode;
use crate::values::{Duration, FileMode};

/// vault-k8s's default mount path of the secrets volume.
pub const DEFAULT_MOUNT_PATH: &str = "/vault/secrets";

/// The file, under the mount path, that `agent-inject-token` keeps the Vault token in
/// (vault-k8s's `path.Join(secret-volume-path, "token")`).
pub const TOKEN_FILE: &str = "token";

/// What one file holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OutputSource {
    /// One Vault path written in a format.
    Secret {
        /// The Vault path.
        path: String,
        /// How its data is written.
        format: SecretFormat,
    },
    /// A minijinja template.
    Template(String),
    /// A consul-template template (Go's text/template with consul-template's functions).
    ConsulTemplate(ConsulTemplateSource),
}

/// A consul-template template and how it is run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConsulTemplateSource {
    /// The template text, from the annotation.
    pub text: Option<String>,
    /// Or a template file in the agent's container (vault-k8s `agent-inject-template-file`).
    pub file: Option<String>,
    /// The left delimiter, when not `{{`.
    pub left_delimiter: Option<String>,
    /// The right delimiter, when not `}}`.
    pub right_delimiter: Option<String>,
    /// Whether a missing map key fails the render instead of rendering `<no value>`.
    pub error_on_missing_key: bool,
}

/// One file the agent writes for the app.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Output {
    /// The output's name (vault-k8s: lower-cased unless `preserve-secret-case`).
    pub name: String,
    /// What it holds.
    pub source: OutputSource,
    /// The file, relative to its mount path; the name when `None`.
    pub file: Option<String>,
    /// The file's mode.
    pub perms: Option<FileMode>,
    /// A mount path of its own (vault-k8s `secret-volume-path-<name>`).
    pub mount_path: Option<String>,
    /// A command run after the file changes (argv).
    pub command: Option<Vec<String>>,
}

/// Overrides of one resource quantity: `None` not given, `Some(None)` left out (empty value).
pub type QuantityOverride = Option<Option<String>>;

/// Resource overrides from annotations, applied to every agent container.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResourceOverrides {
    /// CPU request.
    pub cpu_request: QuantityOverride,
    /// Memory request.
    pub memory_request: QuantityOverride,
    /// Ephemeral-storage request.
    pub ephemeral_request: QuantityOverride,
    /// CPU limit.
    pub cpu_limit: QuantityOverride,
    /// Memory limit.
    pub memory_limit: QuantityOverride,
    /// Ephemeral-storage limit.
    pub ephemeral_limit: QuantityOverride,
}

/// What a pod's annotations ask for, in either family.
#[derive(Clone, Debug, PartialEq)]
pub struct InjectionRequest {
    /// The family the pod uses.
    pub family: Family,
    /// The mode, when the pod asks for one.
    pub mode: Option<Mode>,
    /// The auth method, when not the settings' default.
    pub auth_method: Option<AuthMethod>,
    /// The auth mount, when not the settings' default.
    pub auth_mount: Option<String>,
    /// The role.
    pub role: Option<String>,
    /// The JWT file in the agent container (kubernetes, jwt).
    pub jwt_path: Option<String>,
    /// AppRole role ID file.
    pub role_id_path: Option<String>,
    /// AppRole secret ID file.
    pub secret_id_path: Option<String>,
    /// Token file (token method).
    pub token_path: Option<String>,
    /// Audience of a service-account token projected for the agent.
    pub token_audience: Option<String>,
    /// The volume holding the service-account token to use.
    pub token_volume: Option<String>,
    /// Vault's address, when not the settings'.
    pub vault_address: Option<String>,
    /// Vault namespace; the settings' when `None`.
    pub vault_namespace: Option<String>,
    /// Per-request timeout of the agent's Vault client.
    pub client_timeout: Option<Duration>,
    /// CA file in the agent container.
    pub ca_cert: Option<String>,
    /// Name to check Vault's certificate against; the settings' when `None`.
    pub tls_server_name: Option<String>,
    /// Do not check Vault's certificate.
    pub tls_skip_verify: bool,
    /// A Secret mounted read-only at `/vault/tls` in the agent containers.
    pub tls_secret: Option<String>,
    /// A Secret mounted read-only at `/vault/custom` in the agent containers.
    pub extra_secret: Option<String>,
    /// A container whose volume mounts the agent containers get too.
    pub copy_volume_mounts: Option<String>,
    /// The files to write, sorted by name.
    pub outputs: Vec<Output>,
    /// The environment variables the app's containers get from Vault through `hydrant exec`
    /// (`hydrant.dev/env-<VAR>`), sorted by name.
    pub env: Vec<EnvConfig>,
    /// Where the secrets volume is mounted.
    pub mount_path: String,
    /// The app containers that get the secrets volume and the `hydrant.dev/env-<VAR>`
    /// variables; all when `None`.
    pub containers: Option<Vec<String>>,
    /// The agent image, when the pod names hydrant's image itself.
    pub image: Option<String>,
    /// Requests and limits.
    pub resources: ResourceOverrides,
    /// `runAsUser`.
    pub run_as_user: Option<i64>,
    /// `runAsGroup`.
    pub run_as_group: Option<i64>,
    /// Run as the app's first container's user; the settings' when `None`.
    pub run_as_same_user: Option<bool>,
    /// Emit a security context at all.
    pub set_security_context: Option<bool>,
    /// Put the agent's init container before the app's.
    pub init_first: bool,
    /// Set `spec.shareProcessNamespace`.
    pub share_process_namespace: Option<bool>,
    /// `HTTPS_PROXY` for the agent; the settings' when `None`.
    pub proxy_address: Option<String>,
    /// `HYDRANT_LOG` for the agent; the settings' when `None`.
    pub log_level: Option<String>,
    /// `HYDRANT_LOG_FORMAT` for the agent; the settings' when `None`.
    pub log_format: Option<String>,
    /// RFC 6902 patch applied to the sidecar container.
    pub sidecar_patch: Option<json_patch::Patch>,
    /// RFC 6902 patch applied to the init container.
    pub init_patch: Option<json_patch::Patch>,
    /// How often lease-less secrets are read again.
    pub refresh_interval: Option<Duration>,
    /// The sidecar's local port (/quit, /metrics).
    pub listen: Option<u16>,
    /// The sidecar's metrics port on the pod's addresses: `None` the settings', `Some(None)`
    /// none (an empty value), `Some(Some(port))` that port.
    pub metrics_port: Option<Option<u16>>,
    /// Revoke the token when the sidecar stops; the settings' when `None`.
    pub revoke_on_shutdown: Option<bool>,
    /// Exit when a fetch keeps failing (`template-config-exit-on-retry-failure`, true by
    /// default for vault-k8s pods; `hydrant.dev/exit-on-retry-failure`).
    pub exit_on_retry_failure: Option<bool>,
    /// Wait before revoking.
    pub revoke_delay: Option<Duration>,
    /// When certificates and non-renewable leases are replaced.
    pub renewal_threshold: Option<f64>,
    /// Login backoff bounds.
    pub min_backoff: Option<Duration>,
    /// Login backoff bounds.
    pub max_backoff: Option<Duration>,
    /// A config snapshot (`hydrant.dev/config-*`).
    pub snapshot: Option<SnapshotRequest>,
    /// Keep the Vault token in `token` under the mount path, for an app that calls Vault
    /// itself (vault-k8s `agent-inject-token`).
    pub inject_token: bool,
    /// A ConfigMap of Vault Agent configuration the agent runs on instead of one made from the
    /// annotations (vault-k8s `agent-configmap`).
    pub config_map: Option<String>,
    /// With a ConfigMap: the mount paths of the secrets the pod declares, which get volumes of
    /// their own as in vault-k8s although the ConfigMap's templates decide what is rendered.
    pub config_map_mount_paths: Vec<String>,
    /// Annotations accepted that change nothing in hydrant, said back to the user.
    pub warnings: Vec<String>,
}

impl InjectionRequest {
    /// Whether the pod gets agent containers: it asks for a file, the token, or a ConfigMap's
    /// configuration (a pod asking only for variables runs `hydrant exec` and no agent).
    pub fn needs_agent(&self) -> bool {
        !self.outputs.is_empty() || self.inject_token || self.config_map.is_some()
    }

    pub(super) fn new(family: Family) -> InjectionRequest {
        InjectionRequest {
            family,
            mode: None,
            auth_method: None,
            auth_mount: None,
            role: None,
            jwt_path: None,
            role_id_path: None,
            secret_id_path: None,
            token_path: None,
            token_audience: None,
            token_volume: None,
            vault_address: None,
            vault_namespace: None,
            client_timeout: None,
            ca_cert: None,
            tls_server_name: None,
            tls_skip_verify: false,
            tls_secret: None,
            extra_secret: None,
            copy_volume_mounts: None,
            outputs: Vec::new(),
            env: Vec::new(),
            mount_path: DEFAULT_MOUNT_PATH.to_owned(),
            containers: None,
            image: None,
            resources: ResourceOverrides::default(),
            run_as_user: None,
            run_as_group: None,
            run_as_same_user: None,
            set_security_context: None,
            init_first: false,
            share_process_namespace: None,
            proxy_address: None,
            log_level: None,
            log_format: None,
            sidecar_patch: None,
            init_patch: None,
            refresh_interval: None,
            listen: None,
            metrics_port: None,
            revoke_on_shutdown: None,
            exit_on_retry_failure: None,
            revoke_delay: None,
            renewal_threshold: None,
            min_backoff: None,
            max_backoff: None,
            snapshot: None,
            inject_token: false,
            config_map: None,
            config_map_mount_paths: Vec::new(),
            warnings: Vec::new(),
        }
    }
}
