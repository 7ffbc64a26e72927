//! The contract between hydrant's webhook and its agent, and the pure pod mutation. This crate
//! does no I/O: no files, no network, no clock.
//!
//! The webhook writes the names defined here into pods; the agent reads them back from the same
//! constants, so the two can never disagree.

pub mod agent_config;
pub mod annotations;
pub mod commands;
pub mod consul_template;
mod mutate;
pub mod settings;
pub mod values;

use std::fmt;

pub use agent_config::AgentConfig;
pub use mutate::{
    Context, ImageCommand, Images, MAX_PATCH_BYTES, MAX_PATCHED_CONTAINER_BYTES, Mutation,
    NO_IMAGES, images_to_read, mutate, mutate_in, mutate_with,
};
pub use settings::{InjectorSettings, Mode};

/// The environment variable through which an injected agent container receives its configuration,
/// as one JSON document (the schema of [`AgentConfig`]). Read only when `--config` is absent.
pub const AGENT_CONFIG_ENV: &str = "HYDRANT_AGENT_CONFIG";

/// The agent's log filter (`EnvFilter` syntax); the webhook sets it from `log-level`.
pub const LOG_ENV: &str = "HYDRANT_LOG";

/// The agent's log format, `plain` or `json`; the webhook sets it from `log-format`.
pub const LOG_FORMAT_ENV: &str = "HYDRANT_LOG_FORMAT";

/// The variables Vault Agent takes over its configuration's `vault` stanza, as the Vault CLI
/// spells them (OpenBao's `BAO_*` spelling is read too). The webhook gives them to an agent
/// running on a pod's `agent-configmap`, as vault-k8s does; `hydrant agent` reads them over a
/// Vault Agent configuration's `vault` stanza.
pub mod vault_env {
    /// Vault's address.
    pub const VAULT_ADDR: &str = "VAULT_ADDR";
    /// The PEM file of Vault's CA.
    pub const VAULT_CACERT: &str = "VAULT_CACERT";
    /// Vault's CA as PEM text.
    pub const VAULT_CACERT_BYTES: &str = "VAULT_CACERT_BYTES";
    /// A directory of CA files: refused by hydrant's agent.
    pub const VAULT_CAPATH: &str = "VAULT_CAPATH";
    /// A client certificate: refused by hydrant's agent.
    pub const VAULT_CLIENT_CERT: &str = "VAULT_CLIENT_CERT";
    /// A client key: refused by hydrant's agent.
    pub const VAULT_CLIENT_KEY: &str = "VAULT_CLIENT_KEY";
    /// Do not check Vault's certificate (a Go boolean).
    pub const VAULT_SKIP_VERIFY: &str = "VAULT_SKIP_VERIFY";
    /// The name Vault's certificate is checked against.
    pub const VAULT_TLS_SERVER_NAME: &str = "VAULT_TLS_SERVER_NAME";
}

/// Whether a pod owned by this owner runs to completion: a Job's pods (a CronJob's pods are
/// owned by its Jobs). Such a pod must never get a sidecar that keeps it running.
pub fn runs_to_completion(owner_kind: &str, owner_api_version: &str) -> bool {
    owner_kind == "Job" && owner_api_version.starts_with("batch/")
}

/// Where hydrant's image holds its binary; the injected containers run it directly (no shell).
pub const AGENT_BINARY: &str = "/usr/local/bin/hydrant";

/// Names the injector gives to what it adds, and paths inside the agent's containers.
pub mod names {
    /// The init container (vault-k8s's name, so `kubectl logs -c vault-agent-init` still works).
    pub const INIT_CONTAINER: &str = "vault-agent-init";
    /// The sidecar container, and in native mode the single agent container.
    pub const SIDECAR_CONTAINER: &str = "vault-agent";
    /// The in-memory volume holding the rendered files.
    pub const SECRETS_VOLUME: &str = "vault-secrets";
    /// The agent's own in-memory state (token, lease records), never mounted in app containers.
    pub const STATE_VOLUME: &str = "hydrant-agent-state";
    /// Where the agent's state volume is mounted.
    pub const STATE_PATH: &str = "/hydrant/state";
    /// The name of the file a running agent creates in its state directory once every file is
    /// rendered (native mode's probe).
    pub const READY_FILE_NAME: &str = "ready";
    /// That file, in the state volume: [`STATE_PATH`]`/`[`READY_FILE_NAME`] (a test checks).
    pub const READY_FILE: &str = "/hydrant/state/ready";
    /// A service-account token projected for the agent.
    pub const TOKEN_VOLUME: &str = "hydrant-token";
    /// Where that token is mounted.
    pub const TOKEN_PATH: &str = "/var/run/secrets/hydrant.dev/serviceaccount";
    /// The first of the ConfigMap volumes holding config containers (`-0`, `-1` ...).
    pub const CONFIG_VOLUME: &str = "hydrant-config";
    /// Where each is mounted, under its ConfigMap's name.
    pub const CONFIG_PATH: &str = "/hydrant/config";
    /// The ConfigMap volume holding the app's schema.
    pub const SCHEMA_VOLUME: &str = "hydrant-config-schema";
    /// Where it is mounted.
    pub const SCHEMA_PATH: &str = "/hydrant/schema";
    /// The downward-API volume with the pod's labels.
    pub const PODINFO_VOLUME: &str = "hydrant-podinfo";
    /// Where it is mounted.
    pub const PODINFO_PATH: &str = "/hydrant/podinfo";
    /// The file of the pod's labels in it.
    pub const LABELS_FILE: &str = "labels";
    /// vault-k8s's `tls-secret` volume.
    pub const TLS_VOLUME: &str = "vault-tls-secrets";
    /// Where it is mounted.
    pub const TLS_PATH: &str = "/vault/tls";
    /// vault-k8s's `agent-configmap` volume: the pod's ConfigMap of Vault Agent configuration.
    pub const CONFIG_MAP_VOLUME: &str = "vault-config";
    /// Where it is mounted in the agent containers, read-only, as vault-k8s mounts it.
    pub const CONFIG_MAP_PATH: &str = "/vault/configs";
    /// The init container's configuration in that ConfigMap.
    pub const CONFIG_MAP_INIT_FILE: &str = "config-init.hcl";
    /// The sidecar's (and native mode's one agent container's) configuration in it.
    pub const CONFIG_MAP_SIDECAR_FILE: &str = "config.hcl";
    /// The agent's metrics port, as its container declares it (at most 15 characters).
    pub const METRICS_PORT: &str = "hydrant-metrics";
    /// The init container that copies hydrant's binary for `hydrant exec` (`hydrant install`).
    pub const INSTALL_CONTAINER: &str = "hydrant-install";
    /// The in-memory volume it copies the binary into, mounted read-only in the containers that
    /// run under `hydrant exec`.
    pub const BIN_VOLUME: &str = "hydrant-bin";
    /// Where that volume is mounted.
    pub const BIN_PATH: &str = "/hydrant/bin";
    /// The copied binary: [`BIN_PATH`]`/hydrant` (a test checks).
    pub const EXEC_BINARY: &str = "/hydrant/bin/hydrant";
    /// vault-k8s's `agent-extra-secret` volume.
    pub const EXTRA_VOLUME: &str = "extra-secrets";
    /// Where it is mounted.
    pub const EXTRA_PATH: &str = "/vault/custom";
}

/// Why a pod is refused, as a kind; [`Reason::label`] is its fixed metric label.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reason {
    /// An annotation whose value is wrong.
    BadAnnotation,
    /// An annotation hydrant cannot honour.
    UnsupportedAnnotation,
    /// Both annotation families on one pod.
    MixedFamilies,
    /// The namespace is excluded from injection.
    ExcludedNamespace,
    /// A template that does not compile.
    InvalidTemplate,
    /// The agent configuration the annotations give is invalid.
    InvalidConfig,
    /// An annotation the others need is missing.
    MissingAnnotation,
    /// The pod conflicts with what would be added (a name, a volume, a setting).
    Conflict,
    /// The pod has no spec.
    NoSpec,
    /// The patch would pass what the API server stores.
    TooLarge,
    /// hydrant could not encode what it built (a bug).
    Internal,
    /// A container that would run under `hydrant exec` has no command the webhook knows.
    UnknownCommand,
}

impl Reason {
    /// The metric label: one fixed string per kind.
    pub fn label(self) -> &'static str {
        match self {
            Reason::BadAnnotation => "bad_annotation",
            Reason::UnsupportedAnnotation => "unsupported_annotation",
            Reason::MixedFamilies => "mixed_families",
            Reason::ExcludedNamespace => "excluded_namespace",
            Reason::InvalidTemplate => "invalid_template",
            Reason::InvalidConfig => "invalid_config",
            Reason::MissingAnnotation => "missing_annotation",
            Reason::Conflict => "conflict",
            Reason::NoSpec => "no_spec",
            Reason::TooLarge => "too_large",
            Reason::Internal => "internal",
            Reason::UnknownCommand => "unknown_command",
        }
    }
}

/// Why a pod is refused. The message names the annotation (or setting) and what to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Denial {
    /// What kind of refusal it is.
    pub reason: Reason,
    /// What a person reads.
    pub message: String,
}

impl Denial {
    /// A denial with a reason label and a message.
    pub fn new(reason: Reason, message: impl Into<String>) -> Denial {
        Denial {
            reason,
            message: message.into(),
        }
    }

    /// An annotation whose value is wrong: `key: problem`.
    pub fn bad(key: &str, problem: impl fmt::Display) -> Denial {
        Denial::new(Reason::BadAnnotation, format!("{key}: {problem}"))
    }

    /// An annotation hydrant cannot honour: `key: what to use instead`.
    pub fn unsupported(key: &str, instead: &str) -> Denial {
        Denial::new(Reason::UnsupportedAnnotation, format!("{key}: {instead}"))
    }
}

impl fmt::Display for Denial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Denial {}

#[cfg(test)]
mod tests {
    #[test]
    fn the_ready_file_is_in_the_state_volume() {
        use super::names::{READY_FILE, READY_FILE_NAME, STATE_PATH};
        assert_eq!(READY_FILE, format!("{STATE_PATH}/{READY_FILE_NAME}"));
    }

    #[test]
    fn the_copied_binary_is_in_the_bin_volume() {
        use super::names::{BIN_PATH, EXEC_BINARY};
        assert_eq!(EXEC_BINARY, format!("{BIN_PATH}/hydrant"));
    }

    #[test]
    fn only_a_batch_job_s_pods_run_to_completion() {
        assert!(super::runs_to_completion("Job", "batch/v1"));
        assert!(!super::runs_to_completion("Job", "example.com/v1"));
        assert!(!super::runs_to_completion("ReplicaSet", "apps/v1"));
    }
}
