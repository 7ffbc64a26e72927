//! The injector's settings: what the webhook's flags (and the Helm chart's values) decide for
//! every pod, before annotations refine it.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use crate::agent_config::AuthMethod;

/// How the agent is added to a pod.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Mode {
    /// One init container with `restartPolicy: Always` (a native sidecar, Kubernetes ≥ 1.29)
    /// and a startup probe that passes once every file is rendered: the app starts only with its
    /// files, and the agent stops by itself when the app's containers end (Jobs finish).
    Native,
    /// vault-k8s's pair: an init container that renders and exits, and a sidecar container.
    InitAndSidecar,
    /// Only the init container: files are rendered once, nothing is renewed.
    InitOnly,
    /// Only the sidecar container: the app may start before its files exist.
    SidecarOnly,
}

impl Mode {
    /// Every mode, for messages and help.
    pub const ALL: [Mode; 4] = [
        Mode::Native,
        Mode::InitAndSidecar,
        Mode::InitOnly,
        Mode::SidecarOnly,
    ];

    /// The name used in annotations, flags and metrics.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Native => "native",
            Mode::InitAndSidecar => "init-and-sidecar",
            Mode::InitOnly => "init-only",
            Mode::SidecarOnly => "sidecar-only",
        }
    }

    /// Whether the pod gets a container that keeps running beside the app.
    pub fn has_sidecar(self) -> bool {
        matches!(
            self,
            Mode::Native | Mode::InitAndSidecar | Mode::SidecarOnly
        )
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Mode {
    type Err = String;

    fn from_str(s: &str) -> Result<Mode, String> {
        Mode::ALL
            .into_iter()
            .find(|m| m.name() == s.trim())
            .ok_or_else(|| {
                format!(
                    "{s:?} is not a mode; use one of {}",
                    Mode::ALL.map(Mode::name).join(", ")
                )
            })
    }
}

/// What vault-k8s's default template renders when a secret has no template of its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DefaultTemplate {
    /// `key: value` lines of the response's `data`, as Go prints them.
    Map,
    /// The response's `data` as one line of JSON.
    Json,
}

impl DefaultTemplate {
    /// The name used in flags.
    pub fn name(self) -> &'static str {
        match self {
            DefaultTemplate::Map => "map",
            DefaultTemplate::Json => "json",
        }
    }
}

impl fmt::Display for DefaultTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for DefaultTemplate {
    type Err = String;

    fn from_str(s: &str) -> Result<DefaultTemplate, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "map" => Ok(DefaultTemplate::Map),
            "json" => Ok(DefaultTemplate::Json),
            _ => Err(format!("{s:?} is not a default template; use map or json")),
        }
    }
}

/// Requests and limits of one agent container; `None` leaves the key out.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Resources {
    /// CPU request, such as `10m`.
    pub cpu_request: Option<String>,
    /// Memory request, such as `16Mi`.
    pub memory_request: Option<String>,
    /// Ephemeral-storage request.
    pub ephemeral_request: Option<String>,
    /// CPU limit.
    pub cpu_limit: Option<String>,
    /// Memory limit.
    pub memory_limit: Option<String>,
    /// Ephemeral-storage limit.
    pub ephemeral_limit: Option<String>,
}

impl Resources {
    /// hydrant's defaults: it measures about 7 MiB; requests are small, a memory limit with
    /// room to spare ([`DEFAULT_MEMORY_LIMIT`]), no CPU limit.
    pub fn small() -> Resources {
        Resources {
            cpu_request: Some(DEFAULT_CPU_REQUEST.to_owned()),
            memory_request: Some(DEFAULT_MEMORY_REQUEST.to_owned()),
            memory_limit: Some(DEFAULT_MEMORY_LIMIT.to_owned()),
            ..Resources::default()
        }
    }

    /// The first resource whose request is above its limit, which the API server refuses:
    /// (`cpu`, `memory` or `ephemeral-storage`, the request, the limit).
    pub fn request_above_limit(&self) -> Option<(&'static str, &str, &str)> {
        [
            ("cpu", &self.cpu_request, &self.cpu_limit),
            ("memory", &self.memory_request, &self.memory_limit),
            (
                "ephemeral-storage",
                &self.ephemeral_request,
                &self.ephemeral_limit,
            ),
        ]
        .into_iter()
        .find_map(|(resource, request, limit)| {
            let (request, limit) = (request.as_deref()?, limit.as_deref()?);
            let above =
                crate::values::quantity_nanos(request)? > crate::values::quantity_nanos(limit)?;
            above.then_some((resource, request, limit))
        })
    }
}

/// The user and group the agent runs as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RunAs {
    /// `runAsUser`.
    pub user: i64,
    /// `runAsGroup`.
    pub group: i64,
}

/// The injector's choice of the agent's user and group, for pods that name none.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RunAsSettings {
    /// `runAsUser` for every pod; `None`: the family's ([`DEFAULT_RUN_AS`] for hydrant.dev
    /// pods, [`VAULT_K8S_RUN_AS`] for vault.hashicorp.com pods).
    pub user: Option<i64>,
    /// `runAsGroup` for every pod; `None`: the family's.
    pub group: Option<i64>,
    /// Leave the ids out (OpenShift assigns them), unless the pod names one.
    pub omit: bool,
}

// hydrant's production defaults, in one place: `InjectorSettings::new` gives them, and the flags of
// `hydrant webhook` and `hydrant inject` (src/cli.rs) default to them.

/// The distroless `nonroot` user that hydrant's image runs as: the agent of hydrant.dev pods.
pub const DEFAULT_RUN_AS: RunAs = RunAs {
    user: 65532,
    group: 65532,
};

/// vault-k8s's agent user and group, the agent of vault.hashicorp.com pods: apps read its
/// 0640 files through group 1000 (vault-k8s's `-run-as-user`/`-run-as-group` defaults).
pub const VAULT_K8S_RUN_AS: RunAs = RunAs {
    user: 100,
    group: 1000,
};

/// The auth method of pods that name none.
pub const DEFAULT_AUTH_METHOD: AuthMethod = AuthMethod::Kubernetes;

/// The mode of pods that name none.
pub const DEFAULT_MODE: Mode = Mode::Native;

/// vault-k8s's default template for secrets without one.
pub const DEFAULT_TEMPLATE: DefaultTemplate = DefaultTemplate::Map;

/// The CPU request of every agent container (no CPU limit by default: throttling a renewal helps
/// nobody).
pub const DEFAULT_CPU_REQUEST: &str = "10m";

/// The memory request of every agent container: hydrant measures about 7 MiB.
pub const DEFAULT_MEMORY_REQUEST: &str = "16Mi";

/// The memory limit of every agent container, so that a namespace whose ResourceQuota covers
/// `limits.memory` accepts injected pods. The agent's peak RSS measures 5.5 to 8 MiB
/// (tests/benches/README.md: 10 and 50 secrets, an hour as a sidecar); 128Mi is sixteen times
/// that, room for large templates and responses (each bounded by the agent's limits) and for the
/// rendered files, which live in memory-backed volumes charged to the container writing them.
/// It is also vault-k8s's own default limit, so a vault-k8s pod whose annotations raise only the
/// memory request stays as valid as it was there.
pub const DEFAULT_MEMORY_LIMIT: &str = "128Mi";

/// The namespaces where injection is refused, as the flag takes them: comma-separated.
pub const DEFAULT_EXCLUDED_NAMESPACES: &str = "kube-system,kube-public";

/// How long a native sidecar may take to render every file before the pod fails to start.
pub const DEFAULT_STARTUP_TIMEOUT_SECONDS: i32 = 300;

/// Whether agents revoke their token when their pod stops, for pods that do not say
/// (vault-k8s's `-revoke-on-shutdown` default).
pub const DEFAULT_REVOKE_ON_SHUTDOWN: bool = false;

/// Whether agents run as the user of the pod's first container, for pods that do not say
/// (vault-k8s's `-run-as-same-user` default).
pub const DEFAULT_RUN_AS_SAME_USER: bool = false;

/// Everything the webhook decides for all pods.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InjectorSettings {
    /// Vault's address as the agent reaches it (`vault.hashicorp.com/service` overrides it).
    pub vault_address: String,
    /// PEM of the CA(s) that sign Vault's certificate, given to every agent whose pod names no
    /// `ca-cert` of its own (vault-k8s's `-vault-cacert-bytes`).
    pub vault_ca_pem: Option<String>,
    /// The agent's image: hydrant's own.
    pub agent_image: String,
    /// The auth method when a pod names none.
    pub auth_method: AuthMethod,
    /// The auth mount when a pod names none; the method's name when `None`.
    pub auth_mount: Option<String>,
    /// The mode when a pod names none.
    pub mode: Mode,
    /// vault-k8s's default template for secrets without one.
    pub default_template: DefaultTemplate,
    /// The init container's resources, in the init-and-sidecar and init-only modes.
    pub init_resources: Resources,
    /// The sidecar container's resources, and those of native mode's single container (a
    /// restartable init container that lives as long as the pod).
    pub sidecar_resources: Resources,
    /// The user and group to run as, for pods that name none.
    pub run_as: RunAsSettings,
    /// Namespaces where pods are never mutated: asking for injection there is denied.
    pub excluded_namespaces: Vec<String>,
    /// How long a native sidecar may take to render every file before the pod fails to start.
    pub startup_timeout_seconds: i32,
    /// The host's labels, added to a pod's own when composing its config snapshot.
    pub host_labels: BTreeMap<String, String>,
    /// When the host's and a pod's labels disagree on a key.
    pub label_conflict: crate::agent_config::LabelConflict,
    /// The Vault namespace of pods that name none (vault-k8s's `-vault-namespace`); `None`:
    /// Vault's root namespace.
    pub vault_namespace: Option<String>,
    /// `HTTPS_PROXY` of agents whose pod names no `proxy-address` (vault-k8s's
    /// `-proxy-address`); `None`: no proxy.
    pub proxy_address: Option<String>,
    /// Whether agents revoke their token when their pod stops, unless the pod says
    /// (vault-k8s's `-revoke-on-shutdown`).
    pub revoke_on_shutdown: bool,
    /// The name Vault's certificate is checked against, unless the pod names one; `None`:
    /// the address's host.
    pub tls_server_name: Option<String>,
    /// Whether agents run as the user of the pod's first container, unless the pod says
    /// (vault-k8s's `-run-as-same-user`).
    pub run_as_same_user: bool,
    /// The agents' log level (`HYDRANT_LOG`: trace, debug, info, warn or error) unless the pod
    /// names one; `None` leaves it to the agent (info).
    pub agent_log_level: Option<String>,
    /// The agents' log format (`HYDRANT_LOG_FORMAT`: plain or json) unless the pod names one;
    /// `None` leaves it to the agent (plain).
    pub agent_log_format: Option<String>,
    /// The port on the pod's addresses where each sidecar serves its metrics (read-only:
    /// `/metrics`, `/healthz`, `/readyz`) for Prometheus, for pods that name none
    /// (`hydrant.dev/metrics-port`); `None`: no such port, the metrics stay on 127.0.0.1.
    pub agent_metrics_port: Option<u16>,
}

impl InjectorSettings {
    /// Settings with hydrant's defaults for everything but the two things it cannot guess:
    /// what the webhook's flags give when only `--vault-addr` and `--agent-image` are passed.
    pub fn new(
        vault_address: impl Into<String>,
        agent_image: impl Into<String>,
    ) -> InjectorSettings {
        InjectorSettings {
            vault_address: vault_address.into(),
            vault_ca_pem: None,
            agent_image: agent_image.into(),
            auth_method: DEFAULT_AUTH_METHOD,
            auth_mount: None,
            mode: DEFAULT_MODE,
            default_template: DEFAULT_TEMPLATE,
            init_resources: Resources::small(),
            sidecar_resources: Resources::small(),
            run_as: RunAsSettings::default(),
            excluded_namespaces: DEFAULT_EXCLUDED_NAMESPACES
                .split(',')
                .map(str::to_owned)
                .collect(),
            startup_timeout_seconds: DEFAULT_STARTUP_TIMEOUT_SECONDS,
            host_labels: BTreeMap::new(),
            label_conflict: crate::agent_config::LabelConflict::default(),
            vault_namespace: None,
            proxy_address: None,
            revoke_on_shutdown: DEFAULT_REVOKE_ON_SHUTDOWN,
            tls_server_name: None,
            run_as_same_user: DEFAULT_RUN_AS_SAME_USER,
            agent_log_level: None,
            agent_log_format: None,
            agent_metrics_port: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_by_name_and_refuse_others_listing_them() {
        for mode in Mode::ALL {
            assert_eq!(mode.name().parse::<Mode>(), Ok(mode));
        }
        let err = "sidecar".parse::<Mode>().expect_err("unknown");
        assert!(
            err.contains("native, init-and-sidecar, init-only, sidecar-only"),
            "{err}"
        );
    }

    #[test]
    fn default_templates_parse_case_insensitively() {
        for template in [DefaultTemplate::Map, DefaultTemplate::Json] {
            assert_eq!(template.name().parse(), Ok(template));
        }
        assert_eq!("MAP".parse(), Ok(DefaultTemplate::Map));
        assert_eq!(" json".parse(), Ok(DefaultTemplate::Json));
        assert!("yaml".parse::<DefaultTemplate>().is_err());
    }
}
