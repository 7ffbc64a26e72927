//! The agent's containers: the init container, the sidecar, or native mode's one restartable
//! init container; each runs hydrant's binary hardened, with the agent configuration in its
//! environment (or on the pod's Vault Agent ConfigMap) and vault-k8s's JSON patches applied.

use std::collections::BTreeMap;

use json_patch::{Patch, PatchOperation};
use k8s_openapi::api::core::v1::{
    Capabilities, Container, ContainerPort, EnvVar, EnvVarSource, ExecAction, ObjectFieldSelector,
    PodSpec, Probe, ResourceRequirements, SeccompProfile, SecurityContext, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use serde_json::Value;

use super::MAX_PATCHED_CONTAINER_BYTES;
use super::patch::json_len;
use crate::agent_config::AgentConfig;
use crate::annotations::keys::{hydrant as h, vault_k8s as k};
use crate::annotations::{Family, InjectionRequest, QuantityOverride, ResourceOverrides};
use crate::settings::{DEFAULT_RUN_AS, InjectorSettings, Mode, Resources, VAULT_K8S_RUN_AS};
use crate::{AGENT_BINARY, AGENT_CONFIG_ENV, Denial, names};

/// What the agent containers run on.
#[derive(Clone, Copy)]
pub(super) enum AgentRun<'a> {
    /// The configuration the annotations give, as JSON in `HYDRANT_AGENT_CONFIG`.
    Config(&'a AgentConfig),
    /// The pod's Vault Agent ConfigMap, mounted at [`names::CONFIG_MAP_PATH`]: the init
    /// container runs on its `config-init.hcl`, the sidecar on its `config.hcl`, as in vault-k8s.
    ConfigMap,
}

impl AgentRun<'_> {
    /// `hydrant agent`'s arguments in the init container (`once`) or the sidecar.
    fn args(self, once: bool) -> Vec<String> {
        let mut args = vec!["agent".to_owned()];
        if once {
            args.push("--once".to_owned());
        }
        if let AgentRun::ConfigMap = self {
            let file = if once {
                names::CONFIG_MAP_INIT_FILE
            } else {
                names::CONFIG_MAP_SIDECAR_FILE
            };
            args.extend([
                "--config".to_owned(),
                format!("{}/{file}", names::CONFIG_MAP_PATH),
                // The hand-over from the init container and native mode's ready file.
                "--state-dir".to_owned(),
                names::STATE_PATH.to_owned(),
            ]);
        }
        args
    }
}

/// The agent's containers as JSON, patched as the pod asks.
pub(super) struct AgentContainers {
    /// The container added to `spec.initContainers`, if any.
    pub(super) init: Option<Value>,
    /// The container added to `spec.containers`, if any.
    pub(super) sidecar: Option<Value>,
}

impl AgentContainers {
    /// The containers `mode` adds, running on `run` with the agent's `mounts`.
    pub(super) fn new(
        mode: Mode,
        request: &InjectionRequest,
        spec: &PodSpec,
        settings: &InjectorSettings,
        run: AgentRun<'_>,
        mounts: &[VolumeMount],
    ) -> Result<AgentContainers, Denial> {
        let config_json = match run {
            AgentRun::Config(config) => Some(serde_json::to_string(config).map_err(|e| {
                Denial::new(
                    crate::Reason::Internal,
                    format!("cannot encode the agent configuration: {e}"),
                )
            })?),
            AgentRun::ConfigMap => None,
        };
        let security = security_context(request, spec, settings)?;
        let image = request
            .image
            .clone()
            .unwrap_or_else(|| settings.agent_image.clone());
        let env = agent_env(request, settings, config_json.as_deref());
        // Native mode's one container takes the sidecar's resources.
        let used: &[&Resources] = match mode {
            Mode::InitAndSidecar => &[&settings.init_resources, &settings.sidecar_resources],
            Mode::InitOnly => &[&settings.init_resources],
            Mode::Native | Mode::SidecarOnly => &[&settings.sidecar_resources],
        };
        for base in used {
            check_resources(base, &request.resources, request.family)?;
        }
        let container = |name: &str, once: bool, resources: &Resources| Container {
            name: name.to_owned(),
            image: Some(image.clone()),
            command: Some(
                std::iter::once(AGENT_BINARY.to_owned())
                    .chain(run.args(once))
                    .collect(),
            ),
            env: Some(env.clone()),
            resources: resource_requirements(resources, &request.resources),
            security_context: security.clone(),
            volume_mounts: Some(mounts.to_vec()),
            ..Container::default()
        };

        // The container that runs all the pod's life declares the metrics port, by name.
        let metrics_port = match run {
            AgentRun::Config(config) => config.metrics_port,
            AgentRun::ConfigMap => None,
        };
        let ports = metrics_port.map(|port| {
            vec![ContainerPort {
                name: Some(names::METRICS_PORT.to_owned()),
                container_port: i32::from(port),
                protocol: Some("TCP".to_owned()),
                ..ContainerPort::default()
            }]
        });
        let init = match mode {
            Mode::InitAndSidecar | Mode::InitOnly => Some(container(
                names::INIT_CONTAINER,
                true,
                &settings.init_resources,
            )),
            Mode::Native => Some(Container {
                restart_policy: Some("Always".to_owned()),
                ports: ports.clone(),
                startup_probe: Some(Probe {
                    exec: Some(ExecAction {
                        command: Some(
                            [AGENT_BINARY, "agent", "--check-ready"]
                                .map(str::to_owned)
                                .to_vec(),
                        ),
                    }),
                    period_seconds: Some(1),
                    timeout_seconds: Some(5),
                    failure_threshold: Some(settings.startup_timeout_seconds.max(1)),
                    ..Probe::default()
                }),
                ..container(names::SIDECAR_CONTAINER, false, &settings.sidecar_resources)
            }),
            Mode::SidecarOnly => None,
        };
        let sidecar = match mode {
            Mode::InitAndSidecar | Mode::SidecarOnly => Some(Container {
                ports,
                ..container(names::SIDECAR_CONTAINER, false, &settings.sidecar_resources)
            }),
            Mode::Native | Mode::InitOnly => None,
        };
        // In native mode the one container is the sidecar: the sidecar's patch applies to it.
        let (init_patch, init_key) = match mode {
            Mode::Native => (&request.sidecar_patch, k::AGENT_JSON_PATCH),
            _ => (&request.init_patch, k::AGENT_INIT_JSON_PATCH),
        };
        Ok(AgentContainers {
            init: init.map(|c| patched(c, init_patch, init_key)).transpose()?,
            sidecar: sidecar
                .map(|c| patched(c, &request.sidecar_patch, k::AGENT_JSON_PATCH))
                .transpose()?,
        })
    }
}

/// The security context of hydrant's own containers: hardened, as the pod and the settings say.
pub(super) fn security_context(
    request: &InjectionRequest,
    spec: &PodSpec,
    settings: &InjectorSettings,
) -> Result<Option<SecurityContext>, Denial> {
    // The injector's --run-as-same-user applies to pods that name no user of their own.
    let same_user = request
        .run_as_same_user
        .unwrap_or(settings.run_as_same_user && request.run_as_user.is_none());
    let names_ids = request.run_as_user.is_some()
        || request.run_as_group.is_some()
        || request.run_as_same_user == Some(true);
    // vault-k8s's `agent-set-security-context: "false"` wins over every id annotation (they
    // override only its injector-wide -set-security-context=false).
    if request.set_security_context == Some(false) {
        return Ok(None);
    }
    let vault_k8s = request.family == Family::VaultK8s;
    let family_default = if vault_k8s {
        VAULT_K8S_RUN_AS
    } else {
        DEFAULT_RUN_AS
    };
    // Under --omit-run-as the ids are left out, unless the pod names one: then vault-k8s's pods
    // get the other from the defaults too, as vault-k8s's injector gives them once a pod's id
    // annotation turns its security context on.
    let defaults = !settings.run_as.omit
        || (vault_k8s && (names_ids || request.set_security_context == Some(true)));
    let default_user = settings.run_as.user.unwrap_or(family_default.user);
    let default_group = settings.run_as.group.unwrap_or(family_default.group);
    let mut user = request.run_as_user.or(defaults.then_some(default_user));
    let group = request.run_as_group.or(defaults.then_some(default_group));
    if same_user {
        // The annotation, or else the injector's --run-as-same-user, asked for it.
        let (asked_by, fix) = if request.run_as_same_user.is_some() {
            (k::AGENT_RUN_AS_SAME_USER, "remove the annotation")
        } else {
            (
                "--run-as-same-user",
                "name the agent's user with vault.hashicorp.com/agent-run-as-user (hydrant.dev/run-as-user)",
            )
        };
        let same = spec
            .containers
            .first()
            .and_then(|c| c.security_context.as_ref())
            .and_then(|s| s.run_as_user)
            .filter(|uid| *uid != 0)
            .ok_or_else(|| {
                Denial::bad(
                    asked_by,
                    format!("the pod's first container sets no runAsUser, or runs as root; set one or {fix}"),
                )
            })?;
        user = Some(same);
    }
    let root = user == Some(0) || group == Some(0);
    Ok(Some(SecurityContext {
        run_as_user: user,
        run_as_group: group,
        run_as_non_root: Some(!root),
        read_only_root_filesystem: Some(true),
        allow_privilege_escalation: Some(false),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".to_owned()]),
            ..Capabilities::default()
        }),
        seccomp_profile: Some(SeccompProfile {
            type_: "RuntimeDefault".to_owned(),
            ..SeccompProfile::default()
        }),
        ..SecurityContext::default()
    }))
}

/// The pod's own facts every agent container gets from the downward API, first and in this
/// order as vault-k8s gives them (templates use them, e.g. for certificate SANs, and
/// `agent-json-patch` operations count on their places): variable and field.
pub(crate) const DOWNWARD_ENV: [(&str, &str); 3] = [
    ("NAMESPACE", "metadata.namespace"),
    ("HOST_IP", "status.hostIP"),
    ("POD_IP", "status.podIP"),
];

/// The agent's environment: the pod's namespace and IPs, its configuration (or, on a ConfigMap,
/// Vault's address and TLS settings), then what the pod (or else the settings) says of its logs
/// and proxy.
fn agent_env(
    request: &InjectionRequest,
    settings: &InjectorSettings,
    config_json: Option<&str>,
) -> Vec<EnvVar> {
    let var = |name: &str, value: &str| EnvVar {
        name: name.to_owned(),
        value: Some(value.to_owned()),
        ..EnvVar::default()
    };
    let mut env: Vec<EnvVar> = DOWNWARD_ENV
        .iter()
        .map(|(name, field)| EnvVar {
            name: (*name).to_owned(),
            value_from: Some(EnvVarSource {
                field_ref: Some(ObjectFieldSelector {
                    field_path: (*field).to_owned(),
                    ..ObjectFieldSelector::default()
                }),
                ..EnvVarSource::default()
            }),
            ..EnvVar::default()
        })
        .collect();
    match config_json {
        Some(json) => env.push(var(AGENT_CONFIG_ENV, json)),
        None => env.extend(
            config_map_vault_env(request, settings)
                .into_iter()
                .map(|(name, value)| var(name, &value)),
        ),
    }
    if let Some(level) = request
        .log_level
        .as_ref()
        .or(settings.agent_log_level.as_ref())
    {
        env.push(var(crate::LOG_ENV, level));
    }
    if let Some(format) = request
        .log_format
        .as_ref()
        .or(settings.agent_log_format.as_ref())
    {
        env.push(var(crate::LOG_FORMAT_ENV, format));
    }
    if let Some(proxy) = request
        .proxy_address
        .as_ref()
        .or(settings.proxy_address.as_ref())
    {
        env.push(var("HTTPS_PROXY", proxy));
    }
    env
}

/// What an agent running on a ConfigMap takes over its `vault` stanza, as vault-k8s gives it
/// (`container_env.go`): the address always (the pod's `service`, else the injector's), the CA
/// file, server name and skipping of verification when the pod or the injector names them, and
/// the injector's cluster-wide CA bundle as PEM text when the pod names no CA of its own.
/// vault-k8s always sets `VAULT_SKIP_VERIFY`, which Vault Agent reads as true whenever it is
/// non-empty, "false" included; hydrant sets it only when verification is skipped.
fn config_map_vault_env(
    request: &InjectionRequest,
    settings: &InjectorSettings,
) -> Vec<(&'static str, String)> {
    use crate::vault_env as v;
    let address = request
        .vault_address
        .clone()
        .unwrap_or_else(|| settings.vault_address.clone());
    let mut env = Vec::new();
    if let Some(ca) = &request.ca_cert {
        env.push((v::VAULT_CACERT, ca.clone()));
    } else if let Some(pem) = settings
        .vault_ca_pem
        .clone()
        .filter(|_| !request.tls_skip_verify && address.starts_with("https://"))
    {
        env.push((v::VAULT_CACERT_BYTES, pem));
    }
    if request.tls_skip_verify {
        env.push((v::VAULT_SKIP_VERIFY, "true".to_owned()));
    }
    if let Some(name) = request
        .tls_server_name
        .clone()
        .or_else(|| settings.tls_server_name.clone())
    {
        env.push((v::VAULT_TLS_SERVER_NAME, name));
    }
    env.insert(0, (v::VAULT_ADDR, address));
    env
}

/// The resources of an agent container: the settings', each overridden by the pod's annotation.
fn effective(base: &Resources, overrides: &ResourceOverrides) -> Resources {
    let pick = |base: &Option<String>, over: &QuantityOverride| match over {
        Some(value) => value.clone(),
        None => base.clone(),
    };
    Resources {
        cpu_request: pick(&base.cpu_request, &overrides.cpu_request),
        memory_request: pick(&base.memory_request, &overrides.memory_request),
        ephemeral_request: pick(&base.ephemeral_request, &overrides.ephemeral_request),
        cpu_limit: pick(&base.cpu_limit, &overrides.cpu_limit),
        memory_limit: pick(&base.memory_limit, &overrides.memory_limit),
        ephemeral_limit: pick(&base.ephemeral_limit, &overrides.ephemeral_limit),
    }
}

/// Refuses a request above its limit, which the API server would refuse with the whole pod,
/// naming what to change: the pod's annotations, or the injector's settings.
fn check_resources(
    base: &Resources,
    overrides: &ResourceOverrides,
    family: Family,
) -> Result<(), Denial> {
    let resources = effective(base, overrides);
    let Some((resource, request, limit)) = resources.request_above_limit() else {
        return Ok(());
    };
    let keys = match (family, resource) {
        (Family::VaultK8s, "cpu") => {
            format!("{} and {}", k::AGENT_REQUESTS_CPU, k::AGENT_LIMITS_CPU)
        }
        (Family::VaultK8s, "memory") => {
            format!("{} and {}", k::AGENT_REQUESTS_MEM, k::AGENT_LIMITS_MEM)
        }
        (Family::VaultK8s, _) => format!(
            "{} and {}",
            k::AGENT_REQUESTS_EPHEMERAL,
            k::AGENT_LIMITS_EPHEMERAL
        ),
        (Family::Hydrant, "cpu") => format!("{} and {}", h::CPU_REQUEST, h::CPU_LIMIT),
        (Family::Hydrant, _) => format!("{} and {}", h::MEMORY_REQUEST, h::MEMORY_LIMIT),
    };
    Err(Denial::new(
        crate::Reason::Conflict,
        format!(
            "the agent's {resource} request {request} is above its limit {limit}, which Kubernetes refuses; set {keys} so that the request is at most the limit (an empty limit leaves it out), or change the injector's defaults"
        ),
    ))
}

/// The requests and limits of one of hydrant's containers: `base`, each overridden by the pod.
pub(super) fn resource_requirements(
    base: &Resources,
    overrides: &ResourceOverrides,
) -> Option<ResourceRequirements> {
    let pick = |base: &Option<String>, over: &QuantityOverride| match over {
        Some(value) => value.clone(),
        None => base.clone(),
    };
    let map = |entries: [(&str, Option<String>); 3]| {
        let map: BTreeMap<String, Quantity> = entries
            .into_iter()
            .filter_map(|(k, v)| Some((k.to_owned(), Quantity(v?))))
            .collect();
        (!map.is_empty()).then_some(map)
    };
    let requests = map([
        ("cpu", pick(&base.cpu_request, &overrides.cpu_request)),
        (
            "ephemeral-storage",
            pick(&base.ephemeral_request, &overrides.ephemeral_request),
        ),
        (
            "memory",
            pick(&base.memory_request, &overrides.memory_request),
        ),
    ]);
    let limits = map([
        ("cpu", pick(&base.cpu_limit, &overrides.cpu_limit)),
        (
            "ephemeral-storage",
            pick(&base.ephemeral_limit, &overrides.ephemeral_limit),
        ),
        ("memory", pick(&base.memory_limit, &overrides.memory_limit)),
    ]);
    (requests.is_some() || limits.is_some()).then(|| ResourceRequirements {
        requests,
        limits,
        ..ResourceRequirements::default()
    })
}

/// Applies vault-k8s's `agent-json-patch` / `agent-init-json-patch` to a generated container,
/// one operation at a time, refusing an operation that would grow the container past
/// [`MAX_PATCHED_CONTAINER_BYTES`] before it runs.
fn patched(container: Container, patch: &Option<Patch>, key: &str) -> Result<Value, Denial> {
    let mut value = serde_json::to_value(&container).map_err(|e| {
        Denial::new(
            crate::Reason::Internal,
            format!("cannot encode the agent container: {e}"),
        )
    })?;
    if let Some(patch) = patch {
        let mut size = json_len(&value);
        for (i, operation) in patch.0.iter().enumerate() {
            let growth = growth(&value, operation);
            if growth > 0 && size.saturating_add(growth) > MAX_PATCHED_CONTAINER_BYTES {
                return Err(Denial::bad(
                    key,
                    format!(
                        "operation {i} would make the agent container larger than {} KiB, hydrant's bound for a patched container; patch only what you need, such as resources or securityContext",
                        MAX_PATCHED_CONTAINER_BYTES / 1024
                    ),
                ));
            }
            json_patch::patch(&mut value, std::slice::from_ref(operation)).map_err(|e| {
                Denial::bad(
                    key,
                    format!(
                        "does not apply to the agent container: operation '/{i}' failed at path '{}': {}",
                        e.path, e.kind
                    ),
                )
            })?;
            size = json_len(&value);
        }
        serde_json::from_value::<Container>(value.clone())
            .map_err(|e| Denial::bad(key, format!("leaves the agent container invalid: {e}")))?;
    }
    Ok(value)
}

/// At most how many bytes `operation` adds to `document` once serialized: the value it adds
/// (for a copy, the value it copies) and the key it adds it under, with quotes, colon and comma.
fn growth(document: &Value, operation: &PatchOperation) -> usize {
    let key = |path: &jsonptr::Pointer| path.as_str().len() + 4;
    match operation {
        PatchOperation::Add(op) => json_len(&op.value) + key(&op.path),
        PatchOperation::Replace(op) => json_len(&op.value) + key(&op.path),
        PatchOperation::Copy(op) => {
            document.pointer(op.from.as_str()).map_or(0, json_len) + key(&op.path)
        }
        PatchOperation::Move(op) => key(&op.path),
        PatchOperation::Remove(_) | PatchOperation::Test(_) => 0,
    }
}
