//! The pod mutation: from a pod and the injector's settings to a JSON Patch that adds hydrant's
//! agent, or a denial. Pure and deterministic: the same pod gives the same bytes.

use std::collections::BTreeMap;

use json_patch::{AddOperation, Patch, PatchOperation};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMapVolumeSource, Container, DownwardAPIVolumeFile, DownwardAPIVolumeSource,
    EmptyDirVolumeSource, EnvVar, ExecAction, ObjectFieldSelector, Pod, PodSpec, Probe,
    ProjectedVolumeSource, ResourceRequirements, SeccompProfile, SecretVolumeSource,
    SecurityContext, ServiceAccountTokenProjection, Volume, VolumeMount, VolumeProjection,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use serde_json::Value;

use crate::agent_config::{
    AgentConfig, AuthConfig, AuthMethod, RetryConfig, SecretFileConfig, SnapshotConfig,
    TemplateConfig, VaultConfig,
};
use crate::annotations::keys::{hydrant as h, vault_k8s as k};
use crate::annotations::{self, Family, INJECTED, Output, OutputSource, QuantityOverride, Request};
use crate::settings::{Mode, Resources, Settings};
use crate::{AGENT_BINARY, AGENT_CONFIG_ENV, Denial, names};

/// What the webhook adds to a pod.
#[derive(Clone, Debug, PartialEq)]
pub struct Mutation {
    /// The JSON Patch (RFC 6902) to apply to the pod.
    pub patch: Patch,
    /// Things the user should know: accepted annotations that change nothing, modes changed.
    pub warnings: Vec<String>,
    /// The mode the pod got.
    pub mode: Mode,
}

/// Where a pod is being created.
#[derive(Clone, Copy, Debug)]
pub struct Context<'a> {
    /// The pod's namespace.
    pub namespace: &'a str,
    /// The pod runs to completion (a Job's or CronJob's): it must never get a sidecar that keeps
    /// it running.
    pub batch: bool,
}

/// Mutates a pod about to be created in `namespace`. `Ok(None)`: nothing to do (not asked for,
/// already injected, or not a pending pod). A pod owned by a Job counts as batch.
pub fn mutate(pod: &Pod, namespace: &str, settings: &Settings) -> Result<Option<Mutation>, Denial> {
    let batch = pod
        .metadata
        .owner_references
        .iter()
        .flatten()
        .any(|o| crate::runs_to_completion(&o.kind, &o.api_version));
    mutate_in(pod, &Context { namespace, batch }, settings)
}

/// [`mutate`] with the context given explicitly: `hydrant inject` knows a Job's or CronJob's pod
/// template has no owner yet.
pub fn mutate_in(
    pod: &Pod,
    context: &Context<'_>,
    settings: &Settings,
) -> Result<Option<Mutation>, Denial> {
    let no_annotations = BTreeMap::new();
    let annotations = pod.metadata.annotations.as_ref().unwrap_or(&no_annotations);
    let Some(family) = annotations::wanted(annotations)? else {
        return Ok(None);
    };
    if annotations::already_injected(annotations) {
        return Ok(None);
    }
    // vault-k8s GH-501: only pods about to be created.
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    if phase.is_some_and(|p| p != "Pending") {
        return Ok(None);
    }
    if settings
        .excluded_namespaces
        .iter()
        .any(|n| n == context.namespace)
    {
        return Err(Denial::new(
            crate::Reason::ExcludedNamespace,
            format!(
                "cannot inject into namespace {}: it is excluded by the injector's settings; run the pod in an application namespace",
                context.namespace
            ),
        ));
    }
    let spec = pod
        .spec
        .as_ref()
        .ok_or_else(|| Denial::new(crate::Reason::NoSpec, "the pod has no spec"))?;
    let request = annotations::parse(annotations, family, settings)?;
    let plan = Plan::new(&request, spec, context, settings)?;
    let mutation = plan.into_mutation(spec, &request);
    let size = json_len(&mutation.patch);
    if size > MAX_PATCH_BYTES {
        return Err(Denial::new(
            crate::Reason::TooLarge,
            format!(
                "the patch for this pod would be {} KiB, over the {} KiB hydrant answers (the API server stores no object over 1.5 MiB); make the templates{} smaller",
                size.div_ceil(1024),
                MAX_PATCH_BYTES / 1024,
                match family {
                    // Only vault-k8s's family patches the agent's containers.
                    Family::VaultK8s => format!(
                        ", or {} and {},",
                        k::AGENT_JSON_PATCH,
                        k::AGENT_INIT_JSON_PATCH
                    ),
                    Family::Hydrant => String::new(),
                },
            ),
        ));
    }
    Ok(Some(mutation))
}

/// The largest JSON Patch a pod gets, serialized: the API server stores no object over 1.5 MiB
/// (etcd's request limit), so a larger answer could never be admitted anyway.
pub const MAX_PATCH_BYTES: usize = 1536 * 1024;

/// The largest an agent container may grow to under `agent-json-patch` or
/// `agent-init-json-patch`, serialized. Checked before each operation, so that a patch copying
/// a value into itself (doubling it each time) is refused before the copy is made.
pub const MAX_PATCHED_CONTAINER_BYTES: usize = 512 * 1024;

/// Everything decided, ready to be written as a patch.
struct Plan {
    mode: Mode,
    warnings: Vec<String>,
    /// New volumes, in patch order.
    volumes: Vec<Volume>,
    /// Mounts for the app's containers (index into `spec.containers`).
    app_mounts: Vec<VolumeMount>,
    targets: Vec<usize>,
    /// App init containers that run after the agent and get the mounts too.
    init_targets: Vec<usize>,
    init_container: Option<Value>,
    init_first: bool,
    sidecar_container: Option<Value>,
    share_process_namespace: bool,
}

impl Plan {
    fn new(
        request: &Request,
        spec: &PodSpec,
        context: &Context<'_>,
        settings: &Settings,
    ) -> Result<Plan, Denial> {
        let mut warnings = request.warnings.clone();
        let asked = request.mode.unwrap_or(settings.mode);
        let mode = match asked {
            Mode::InitAndSidecar | Mode::SidecarOnly if context.batch => {
                warnings.push(format!(
                    "the pod runs to completion (a Job's): it gets mode native instead of {asked}, so that its sidecar ends with it"
                ));
                Mode::Native
            }
            other => other,
        };
        let targets = target_containers(request, spec)?;
        let agent_first = match mode {
            Mode::Native => true,
            Mode::InitAndSidecar | Mode::InitOnly => request.init_first,
            Mode::SidecarOnly => false,
        };
        let init_targets: Vec<usize> = if agent_first {
            (0..spec.init_containers.as_ref().map_or(0, Vec::len)).collect()
        } else {
            Vec::new()
        };

        // Volumes and mounts for the files.
        let mut volumes = vec![
            memory_volume(names::STATE_VOLUME),
            memory_volume(names::SECRETS_VOLUME),
        ];
        let mut app_mounts = vec![mount(names::SECRETS_VOLUME, &request.mount_path, false)];
        let mut custom: Vec<&str> = request
            .outputs
            .iter()
            .filter_map(|o| o.mount_path.as_deref())
            .filter(|p| *p != request.mount_path)
            .collect();
        custom.sort_unstable();
        custom.dedup();
        for (i, path) in custom.iter().enumerate() {
            let name = format!("{}-custom-{i}", names::SECRETS_VOLUME);
            volumes.push(memory_volume(&name));
            app_mounts.push(mount(&name, path, false));
        }
        let destinations: Vec<String> = request
            .outputs
            .iter()
            .map(|o| destination(request, o))
            .collect();

        // The agent's own mounts: its state, the files, and what it logs in with.
        let mut agent_mounts = vec![mount(names::STATE_VOLUME, names::STATE_PATH, false)];
        agent_mounts.extend(app_mounts.iter().cloned());
        let method = request.auth_method.unwrap_or(settings.auth_method);
        let mut jwt_path = request.jwt_path.clone();
        if matches!(method, AuthMethod::Kubernetes | AuthMethod::Jwt) && jwt_path.is_none() {
            let (volume, token_mount, path) = service_account_token(request, spec)?;
            volumes.extend(volume);
            agent_mounts.push(token_mount);
            jwt_path = Some(path);
        }
        if let Some(secret) = &request.tls_secret {
            volumes.push(secret_volume(names::TLS_VOLUME, secret));
            agent_mounts.push(mount(names::TLS_VOLUME, names::TLS_PATH, true));
        }
        if let Some(secret) = &request.extra_secret {
            volumes.push(secret_volume(names::EXTRA_VOLUME, secret));
            agent_mounts.push(mount(names::EXTRA_VOLUME, names::EXTRA_PATH, true));
        }
        if let Some(source) = &request.copy_volume_mounts {
            agent_mounts.extend(copied_mounts(spec, source)?);
        }
        if let Some(config) = &request.config {
            // Only the agent reads the containers, the schema and the pod's labels.
            for (i, map) in config.config_maps.iter().enumerate() {
                let name = format!("{}-{i}", names::CONFIG_VOLUME);
                volumes.push(config_map_volume(&name, map));
                agent_mounts.push(mount(&name, &format!("{}/{map}", names::CONFIG_PATH), true));
            }
            if let Some((map, _)) = &config.schema {
                volumes.push(config_map_volume(names::SCHEMA_VOLUME, map));
                agent_mounts.push(mount(names::SCHEMA_VOLUME, names::SCHEMA_PATH, true));
            }
            volumes.push(labels_volume());
            agent_mounts.push(mount(names::PODINFO_VOLUME, names::PODINFO_PATH, true));
        }
        check_conflicts(spec, &volumes, &app_mounts, &targets)?;

        let config = agent_config(request, settings, method, jwt_path, &destinations)?;
        let config_json = serde_json::to_string(&config).map_err(|e| {
            Denial::new(
                crate::Reason::Internal,
                format!("cannot encode the agent configuration: {e}"),
            )
        })?;
        let security = security_context(request, spec, settings)?;
        let image = request
            .image
            .clone()
            .unwrap_or_else(|| settings.agent_image.clone());
        let env = agent_env(request, &config_json);
        let container = |name: &str, args: &[&str], resources: &Resources| Container {
            name: name.to_owned(),
            image: Some(image.clone()),
            command: Some(
                std::iter::once(AGENT_BINARY)
                    .chain(args.iter().copied())
                    .map(str::to_owned)
                    .collect(),
            ),
            env: Some(env.clone()),
            resources: resource_requirements(resources, &request.resources),
            security_context: security.clone(),
            volume_mounts: Some(agent_mounts.clone()),
            ..Container::default()
        };

        let init = match mode {
            Mode::InitAndSidecar | Mode::InitOnly => Some(container(
                names::INIT_CONTAINER,
                &["agent", "--once"],
                &settings.init_resources,
            )),
            Mode::Native => Some(Container {
                restart_policy: Some("Always".to_owned()),
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
                ..container(
                    names::SIDECAR_CONTAINER,
                    &["agent"],
                    &settings.sidecar_resources,
                )
            }),
            Mode::SidecarOnly => None,
        };
        let sidecar = match mode {
            Mode::InitAndSidecar | Mode::SidecarOnly => Some(container(
                names::SIDECAR_CONTAINER,
                &["agent"],
                &settings.sidecar_resources,
            )),
            Mode::Native | Mode::InitOnly => None,
        };
        // In native mode the one container is the sidecar: the sidecar's patch applies to it.
        let (init_patch, init_key) = match mode {
            Mode::Native => (&request.sidecar_patch, k::AGENT_JSON_PATCH),
            _ => (&request.init_patch, k::AGENT_INIT_JSON_PATCH),
        };
        let init_container = init.map(|c| patched(c, init_patch, init_key)).transpose()?;
        let sidecar_container = sidecar
            .map(|c| patched(c, &request.sidecar_patch, k::AGENT_JSON_PATCH))
            .transpose()?;

        let share_process_namespace = match request.share_process_namespace {
            Some(true) if spec.share_process_namespace == Some(false) => {
                return Err(Denial::bad(
                    k::AGENT_SHARE_PROCESS_NAMESPACE,
                    "the pod sets shareProcessNamespace: false; remove one of the two".to_owned(),
                ));
            }
            Some(share) => share && spec.share_process_namespace != Some(true),
            None => false,
        };
        Ok(Plan {
            mode,
            warnings,
            volumes,
            app_mounts,
            targets,
            init_targets,
            init_container,
            init_first: agent_first,
            sidecar_container,
            share_process_namespace,
        })
    }

    fn into_mutation(self, spec: &PodSpec, request: &Request) -> Mutation {
        let mut ops = Vec::new();
        // The pod has annotations: it asked for injection with one.
        ops.push(add(
            &["metadata", "annotations", request.family.status_key()],
            Value::String(INJECTED.to_owned()),
        ));
        let has_volumes = spec.volumes.as_ref().is_some_and(|v| !v.is_empty());
        append_all(
            &mut ops,
            &["spec", "volumes"],
            has_volumes,
            to_values(&self.volumes),
        );
        for &i in &self.targets {
            let has = spec.containers[i]
                .volume_mounts
                .as_ref()
                .is_some_and(|m| !m.is_empty());
            let index = i.to_string();
            let base = ["spec", "containers", &index, "volumeMounts"];
            append_all(&mut ops, &base, has, to_values(&self.app_mounts));
        }
        let app_init = spec.init_containers.as_deref().unwrap_or_default();
        for &i in &self.init_targets {
            let has = app_init[i]
                .volume_mounts
                .as_ref()
                .is_some_and(|m| !m.is_empty());
            let index = i.to_string();
            let base = ["spec", "initContainers", &index, "volumeMounts"];
            append_all(&mut ops, &base, has, to_values(&self.app_mounts));
        }
        if let Some(init) = self.init_container {
            if app_init.is_empty() {
                ops.push(add(&["spec", "initContainers"], Value::Array(vec![init])));
            } else if self.init_first {
                // RFC 6902 add at an index inserts before it.
                ops.push(add(&["spec", "initContainers", "0"], init));
            } else {
                ops.push(add(&["spec", "initContainers", "-"], init));
            }
        }
        if let Some(sidecar) = self.sidecar_container {
            ops.push(add(&["spec", "containers", "-"], sidecar));
        }
        if self.share_process_namespace {
            ops.push(add(&["spec", "shareProcessNamespace"], Value::Bool(true)));
        }
        Mutation {
            patch: Patch(ops),
            warnings: self.warnings,
            mode: self.mode,
        }
    }
}

/// An `add` at the JSON Pointer made of `tokens` (escaped as RFC 6901 says: `~0`, `~1`).
fn add(tokens: &[&str], value: Value) -> PatchOperation {
    PatchOperation::Add(AddOperation {
        path: jsonptr::PointerBuf::from_tokens(tokens.iter().copied()),
        value,
    })
}

/// Appends values to an array: one `add` of the whole array when it is absent or empty (an
/// `add /spec/volumes/-` on a missing array fails, and vault-k8s's repeated whole-array adds
/// replace each other), else one `add .../-` per value.
fn append_all(ops: &mut Vec<PatchOperation>, base: &[&str], exists: bool, values: Vec<Value>) {
    if values.is_empty() {
        return;
    }
    if exists {
        let mut tokens = base.to_vec();
        tokens.push("-");
        for value in values {
            ops.push(add(&tokens, value));
        }
    } else {
        ops.push(add(base, Value::Array(values)));
    }
}

fn to_values<T: serde::Serialize>(items: &[T]) -> Vec<Value> {
    items
        .iter()
        .map(|i| serde_json::to_value(i).unwrap_or(Value::Null))
        .collect()
}

fn memory_volume(name: &str) -> Volume {
    Volume {
        name: name.to_owned(),
        empty_dir: Some(EmptyDirVolumeSource {
            medium: Some("Memory".to_owned()),
            ..EmptyDirVolumeSource::default()
        }),
        ..Volume::default()
    }
}

fn config_map_volume(name: &str, map: &str) -> Volume {
    Volume {
        name: name.to_owned(),
        config_map: Some(ConfigMapVolumeSource {
            name: map.to_owned(),
            ..ConfigMapVolumeSource::default()
        }),
        ..Volume::default()
    }
}

/// The pod's labels as the downward API writes them: `key="value"` lines, updated in place.
fn labels_volume() -> Volume {
    Volume {
        name: names::PODINFO_VOLUME.to_owned(),
        downward_api: Some(DownwardAPIVolumeSource {
            items: Some(vec![DownwardAPIVolumeFile {
                path: names::LABELS_FILE.to_owned(),
                field_ref: Some(ObjectFieldSelector {
                    field_path: "metadata.labels".to_owned(),
                    ..ObjectFieldSelector::default()
                }),
                ..DownwardAPIVolumeFile::default()
            }]),
            ..DownwardAPIVolumeSource::default()
        }),
        ..Volume::default()
    }
}

fn secret_volume(name: &str, secret: &str) -> Volume {
    Volume {
        name: name.to_owned(),
        secret: Some(SecretVolumeSource {
            secret_name: Some(secret.to_owned()),
            ..SecretVolumeSource::default()
        }),
        ..Volume::default()
    }
}

fn mount(name: &str, path: &str, read_only: bool) -> VolumeMount {
    VolumeMount {
        name: name.to_owned(),
        mount_path: path.to_owned(),
        read_only: read_only.then_some(true),
        ..VolumeMount::default()
    }
}

fn target_containers(request: &Request, spec: &PodSpec) -> Result<Vec<usize>, Denial> {
    let Some(wanted) = &request.containers else {
        return Ok((0..spec.containers.len()).collect());
    };
    let key = match request.family {
        Family::VaultK8s => k::AGENT_INJECT_CONTAINERS,
        Family::Hydrant => h::CONTAINERS,
    };
    let mut targets = Vec::new();
    for name in wanted {
        let i = spec
            .containers
            .iter()
            .position(|c| &c.name == name)
            .ok_or_else(|| {
                let known: Vec<&str> = spec.containers.iter().map(|c| c.name.as_str()).collect();
                Denial::bad(
                    key,
                    format!(
                        "the pod has no container {name:?}; its containers are {}",
                        known.join(", ")
                    ),
                )
            })?;
        if !targets.contains(&i) {
            targets.push(i);
        }
    }
    targets.sort_unstable();
    Ok(targets)
}

/// Where an output's file goes: its file name (checked as the annotations were read) under its
/// mount path.
fn destination(request: &Request, output: &Output) -> String {
    let mount = output.mount_path.as_deref().unwrap_or(&request.mount_path);
    let file = output.file.as_deref().unwrap_or(&output.name);
    // vault-k8s joins even an absolute file name under the mount path.
    let relative = file.trim_start_matches('/');
    format!("{mount}/{relative}")
}

/// The service-account token the agent logs in with: a token projected for the audience the
/// pod names, the volume vault-k8s's annotation names, the app's own mounted token, or (when the
/// pod mounts none) a token projected for the agent.
fn service_account_token(
    request: &Request,
    spec: &PodSpec,
) -> Result<(Option<Volume>, VolumeMount, String), Denial> {
    let projected = |audience: Option<&str>| Volume {
        name: names::TOKEN_VOLUME.to_owned(),
        projected: Some(ProjectedVolumeSource {
            sources: Some(vec![VolumeProjection {
                service_account_token: Some(ServiceAccountTokenProjection {
                    audience: audience.map(str::to_owned),
                    expiration_seconds: Some(3600),
                    path: "token".to_owned(),
                }),
                ..VolumeProjection::default()
            }]),
            ..ProjectedVolumeSource::default()
        }),
        ..Volume::default()
    };
    let own_token = |audience: Option<&str>| {
        (
            Some(projected(audience)),
            mount(names::TOKEN_VOLUME, names::TOKEN_PATH, true),
            format!("{}/token", names::TOKEN_PATH),
        )
    };
    if let Some(audience) = &request.token_audience {
        return Ok(own_token(Some(audience)));
    }
    let all_mounts = || {
        spec.containers
            .iter()
            .chain(spec.init_containers.iter().flatten())
            .flat_map(|c| c.volume_mounts.iter().flatten())
    };
    if let Some(name) = &request.token_volume {
        let volume = spec
            .volumes
            .iter()
            .flatten()
            .find(|v| &v.name == name)
            .ok_or_else(|| {
                Denial::bad(
                    k::AGENT_SERVICE_ACCOUNT_TOKEN_VOLUME_NAME,
                    format!("the pod has no volume named {name:?}"),
                )
            })?;
        let file = volume
            .projected
            .iter()
            .flat_map(|p| p.sources.iter().flatten())
            .find_map(|s| s.service_account_token.as_ref().map(|t| t.path.clone()))
            .unwrap_or_else(|| "token".to_owned());
        let path = all_mounts()
            .find(|m| &m.name == name)
            .map(|m| m.mount_path.clone())
            .unwrap_or_else(|| "/var/run/secrets/vault.hashicorp.com/serviceaccount".to_owned());
        return Ok((None, mount(name, &path, true), format!("{path}/{file}")));
    }
    match spec
        .containers
        .iter()
        .flat_map(|c| c.volume_mounts.iter().flatten())
        .find(|m| m.mount_path.contains("serviceaccount"))
    {
        Some(m) => Ok((
            None,
            mount(&m.name, &m.mount_path, true),
            format!("{}/token", m.mount_path.trim_end_matches('/')),
        )),
        None => Ok(own_token(None)),
    }
}

fn copied_mounts(spec: &PodSpec, source: &str) -> Result<Vec<VolumeMount>, Denial> {
    let container = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .find(|c| c.name == source)
        .ok_or_else(|| {
            Denial::bad(
                k::AGENT_COPY_VOLUME_MOUNTS,
                format!("the pod has no container {source:?}"),
            )
        })?;
    Ok(container
        .volume_mounts
        .iter()
        .flatten()
        .filter(|m| !m.mount_path.contains("serviceaccount"))
        .cloned()
        .collect())
}

/// Names already used in the pod would make the patch clobber or duplicate them.
fn check_conflicts(
    spec: &PodSpec,
    volumes: &[Volume],
    app_mounts: &[VolumeMount],
    targets: &[usize],
) -> Result<(), Denial> {
    for volume in volumes {
        if spec.volumes.iter().flatten().any(|v| v.name == volume.name) {
            return Err(Denial::new(
                crate::Reason::Conflict,
                format!(
                    "the pod already has a volume named {}; hydrant adds its own under that name",
                    volume.name
                ),
            ));
        }
    }
    for &i in targets {
        let container = &spec.containers[i];
        for m in app_mounts {
            if container
                .volume_mounts
                .iter()
                .flatten()
                .any(|e| e.mount_path == m.mount_path)
            {
                return Err(Denial::new(
                    crate::Reason::Conflict,
                    format!(
                        "container {} already mounts something at {}, where the secrets go; choose another mount path",
                        container.name, m.mount_path
                    ),
                ));
            }
        }
    }
    let taken = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten());
    for c in taken {
        if c.name == names::INIT_CONTAINER || c.name == names::SIDECAR_CONTAINER {
            return Err(Denial::new(
                crate::Reason::Conflict,
                format!("the pod already has a container named {}", c.name),
            ));
        }
    }
    Ok(())
}

fn agent_config(
    request: &Request,
    settings: &Settings,
    method: AuthMethod,
    jwt_path: Option<String>,
    destinations: &[String],
) -> Result<AgentConfig, Denial> {
    let uses_jwt = matches!(method, AuthMethod::Kubernetes | AuthMethod::Jwt);
    let mut templates = Vec::new();
    let mut secrets = Vec::new();
    for (output, destination) in request.outputs.iter().zip(destinations) {
        match &output.source {
            OutputSource::Template(text) => templates.push(TemplateConfig {
                name: output.name.clone(),
                contents: Some(text.clone()),
                source: None,
                destination: destination.into(),
                perms: output.perms,
                command: output.command.clone(),
                command_timeout: None,
            }),
            OutputSource::Secret { path, format } => secrets.push(SecretFileConfig {
                name: output.name.clone(),
                path: path.clone(),
                format: *format,
                destination: destination.into(),
                perms: output.perms,
                command: output.command.clone(),
                command_timeout: None,
            }),
        }
    }
    let address = request
        .vault_address
        .clone()
        .unwrap_or_else(|| settings.vault_address.clone());
    // The cluster-wide CA bundle, unless the pod names its own CA file or checks nothing.
    let ca_cert_pem = settings
        .vault_ca_pem
        .clone()
        .filter(|_| request.ca_cert.is_none() && !request.tls_skip_verify)
        .filter(|_| address.starts_with("https://"));
    let config = AgentConfig {
        vault: VaultConfig {
            address,
            namespace: request.vault_namespace.clone(),
            ca_cert: request.ca_cert.clone().map(Into::into),
            ca_cert_pem,
            tls_server_name: request.tls_server_name.clone(),
            tls_skip_verify: request.tls_skip_verify,
            max_concurrent_requests: None,
            timeout: request.client_timeout,
        },
        auth: AuthConfig {
            method,
            mount: request
                .auth_mount
                .clone()
                .or_else(|| settings.auth_mount.clone()),
            role: request.role.clone().filter(|_| uses_jwt),
            jwt_path: jwt_path.filter(|_| uses_jwt).map(Into::into),
            role_id_path: request.role_id_path.clone().map(Into::into),
            secret_id_path: request.secret_id_path.clone().map(Into::into),
            token_path: request.token_path.clone().map(Into::into),
            min_backoff: request.min_backoff,
            max_backoff: request.max_backoff,
        },
        templates,
        secrets,
        retry: RetryConfig::default(),
        refresh_interval: request.refresh_interval,
        listen: request.listen,
        revoke_on_shutdown: request.revoke_on_shutdown,
        exit_on_retry_failure: request.exit_on_retry_failure,
        revoke_delay: request.revoke_delay,
        state_dir: Some(names::STATE_PATH.into()),
        watch: Vec::new(),
        limits: Default::default(),
        renewal_threshold: request.renewal_threshold,
        config: request.config.as_ref().map(|c| SnapshotConfig {
            containers: c
                .config_maps
                .iter()
                .map(|map| format!("{}/{map}", names::CONFIG_PATH).into())
                .collect(),
            labels: settings.host_labels.clone(),
            label_conflict: settings.label_conflict,
            labels_file: Some(format!("{}/{}", names::PODINFO_PATH, names::LABELS_FILE).into()),
            levels: c.levels.clone(),
            schema: c
                .schema
                .as_ref()
                .map(|(_, item)| format!("{}/{item}", names::SCHEMA_PATH).into()),
        }),
    };
    config.validate().map_err(|issues| {
        Denial::new(
            crate::Reason::InvalidConfig,
            format!("the agent configuration these annotations give is invalid: {issues}"),
        )
    })?;
    Ok(config)
}

fn security_context(
    request: &Request,
    spec: &PodSpec,
    settings: &Settings,
) -> Result<Option<SecurityContext>, Denial> {
    let explicit_ids =
        request.run_as_user.is_some() || request.run_as_group.is_some() || request.run_as_same_user;
    if request.set_security_context == Some(false) && !explicit_ids {
        return Ok(None);
    }
    let mut user = request.run_as_user.or(settings.run_as.map(|r| r.user));
    let group = request.run_as_group.or(settings.run_as.map(|r| r.group));
    if request.run_as_same_user {
        let same = spec
            .containers
            .first()
            .and_then(|c| c.security_context.as_ref())
            .and_then(|s| s.run_as_user)
            .filter(|uid| *uid != 0)
            .ok_or_else(|| {
                Denial::bad(
                    k::AGENT_RUN_AS_SAME_USER,
                    "the pod's first container sets no runAsUser, or runs as root; set one or remove the annotation".to_owned(),
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

fn agent_env(request: &Request, config_json: &str) -> Vec<EnvVar> {
    let var = |name: &str, value: &str| EnvVar {
        name: name.to_owned(),
        value: Some(value.to_owned()),
        ..EnvVar::default()
    };
    let mut env = vec![var(AGENT_CONFIG_ENV, config_json)];
    if let Some(level) = &request.log_level {
        env.push(var(crate::LOG_ENV, level));
    }
    if let Some(format) = &request.log_format {
        env.push(var(crate::LOG_FORMAT_ENV, format));
    }
    if let Some(proxy) = &request.proxy_address {
        env.push(var("HTTPS_PROXY", proxy));
    }
    env
}

fn resource_requirements(
    base: &Resources,
    overrides: &crate::annotations::ResourceOverrides,
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

/// The length of `value` serialized as compact JSON, counted without building the text.
fn json_len<T: serde::Serialize + ?Sized>(value: &T) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0 = self.0.saturating_add(bytes.len());
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    // Values and patches always serialize; a failure would only undercount an internal value.
    let _ = serde_json::to_writer(&mut count, value);
    count.0
}
