//! The volumes hydrant adds and where they are mounted: the files' volumes in the app's
//! containers; the agent's state, the files, its login token, its Vault Agent ConfigMap, TLS and
//! extra Secrets, copied mounts and config-snapshot inputs in the agent's containers.

use k8s_openapi::api::core::v1::{
    ConfigMapVolumeSource, DownwardAPIVolumeFile, DownwardAPIVolumeSource, EmptyDirVolumeSource,
    ObjectFieldSelector, PodSpec, ProjectedVolumeSource, SecretVolumeSource,
    ServiceAccountTokenProjection, Volume, VolumeMount, VolumeProjection,
};

use crate::agent_config::{AuthMethod, SERVICE_ACCOUNT_TOKEN_PATH};
use crate::annotations::keys::{hydrant as h, vault_k8s as k};
use crate::annotations::{Family, InjectionRequest};
use crate::{Denial, names};

/// The volumes to add and the mounts of the app's and the agent's containers.
pub(super) struct Mounts {
    /// New volumes, in patch order.
    pub(super) volumes: Vec<Volume>,
    /// Mounts for the app's containers.
    pub(super) app: Vec<VolumeMount>,
    /// Mounts for the agent's containers.
    pub(super) agent: Vec<VolumeMount>,
    /// The JWT the agent logs in with (kubernetes, jwt).
    pub(super) jwt_path: Option<String>,
}

impl Mounts {
    /// The volumes and mounts `request` needs in `spec`, for an agent logging in with `method`.
    pub(super) fn new(
        request: &InjectionRequest,
        spec: &PodSpec,
        method: AuthMethod,
    ) -> Result<Mounts, Denial> {
        let mut volumes = vec![
            memory_volume(names::STATE_VOLUME),
            memory_volume(names::SECRETS_VOLUME),
        ];
        let mut app = vec![mount(names::SECRETS_VOLUME, &request.mount_path, false)];
        let mut custom: Vec<&str> = request
            .outputs
            .iter()
            .filter_map(|o| o.mount_path.as_deref())
            .chain(request.config_map_mount_paths.iter().map(String::as_str))
            .filter(|p| *p != request.mount_path)
            .collect();
        custom.sort_unstable();
        custom.dedup();
        for (i, path) in custom.iter().enumerate() {
            let name = format!("{}-custom-{i}", names::SECRETS_VOLUME);
            volumes.push(memory_volume(&name));
            app.push(mount(&name, path, false));
        }

        // The agent's own mounts: its state, the files, and what it logs in with.
        let mut agent = vec![mount(names::STATE_VOLUME, names::STATE_PATH, false)];
        agent.extend(app.iter().cloned());
        let mut jwt_path = request.jwt_path.clone();
        // A ConfigMap's configuration names its own method: the token is mounted as vault-k8s
        // always mounts it.
        let uses_token = request.config_map.is_some()
            || matches!(method, AuthMethod::Kubernetes | AuthMethod::Jwt);
        if uses_token && jwt_path.is_none() {
            let (volume, token_mount, path) = service_account_token(request, spec)?;
            volumes.extend(volume);
            agent.push(token_mount);
            jwt_path = Some(path);
        }
        if let Some(map) = &request.config_map {
            volumes.push(config_map_volume(names::CONFIG_MAP_VOLUME, map));
            agent.push(mount(
                names::CONFIG_MAP_VOLUME,
                names::CONFIG_MAP_PATH,
                true,
            ));
        }
        if let Some(secret) = &request.tls_secret {
            volumes.push(secret_volume(names::TLS_VOLUME, secret));
            agent.push(mount(names::TLS_VOLUME, names::TLS_PATH, true));
        }
        if let Some(secret) = &request.extra_secret {
            volumes.push(secret_volume(names::EXTRA_VOLUME, secret));
            agent.push(mount(names::EXTRA_VOLUME, names::EXTRA_PATH, true));
        }
        if let Some(source) = &request.copy_volume_mounts {
            agent.extend(copied_mounts(spec, source)?);
        }
        if let Some(snapshot) = &request.snapshot {
            // Only the agent reads the containers, the schema and the pod's labels.
            for (i, map) in snapshot.config_maps.iter().enumerate() {
                let name = format!("{}-{i}", names::CONFIG_VOLUME);
                volumes.push(config_map_volume(&name, map));
                agent.push(mount(&name, &format!("{}/{map}", names::CONFIG_PATH), true));
            }
            if let Some((map, _)) = &snapshot.schema {
                volumes.push(config_map_volume(names::SCHEMA_VOLUME, map));
                agent.push(mount(names::SCHEMA_VOLUME, names::SCHEMA_PATH, true));
            }
            volumes.push(labels_volume());
            agent.push(mount(names::PODINFO_VOLUME, names::PODINFO_PATH, true));
        }
        Ok(Mounts {
            volumes,
            app,
            agent,
            jwt_path,
        })
    }
}

/// An `emptyDir` in memory.
pub(super) fn memory_volume(name: &str) -> Volume {
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

/// A Secret's volume.
pub(super) fn secret_volume(name: &str, secret: &str) -> Volume {
    Volume {
        name: name.to_owned(),
        secret: Some(SecretVolumeSource {
            secret_name: Some(secret.to_owned()),
            ..SecretVolumeSource::default()
        }),
        ..Volume::default()
    }
}

/// A mount of volume `name` at `path`.
pub(super) fn mount(name: &str, path: &str, read_only: bool) -> VolumeMount {
    VolumeMount {
        name: name.to_owned(),
        mount_path: path.to_owned(),
        read_only: read_only.then_some(true),
        ..VolumeMount::default()
    }
}

/// The app containers that get the files (indexes into `spec.containers`): those the pod names,
/// or all.
pub(super) fn target_containers(
    request: &InjectionRequest,
    spec: &PodSpec,
) -> Result<Vec<usize>, Denial> {
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

/// The service-account token the agent logs in with: a token projected for the audience the
/// pod names, the volume vault-k8s's annotation names, the app's own mounted token, or (when the
/// pod mounts none) a token projected for the agent.
pub(super) fn service_account_token(
    request: &InjectionRequest,
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
    // A ConfigMap's configuration reads the token where Kubernetes puts it, unless it says
    // otherwise.
    let own_path = match &request.config_map {
        Some(_) => SERVICE_ACCOUNT_TOKEN_PATH
            .strip_suffix("/token")
            .unwrap_or(names::TOKEN_PATH),
        None => names::TOKEN_PATH,
    };
    let own_token = |audience: Option<&str>| {
        (
            Some(projected(audience)),
            mount(names::TOKEN_VOLUME, own_path, true),
            format!("{own_path}/token"),
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
pub(super) fn check_conflicts(
    spec: &PodSpec,
    volumes: &[Volume],
    app_mounts: &[VolumeMount],
    targets: &[usize],
    init_targets: &[usize],
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
    let app_init = spec.init_containers.as_deref().unwrap_or_default();
    let containers = targets
        .iter()
        .map(|&i| &spec.containers[i])
        .chain(init_targets.iter().map(|&i| &app_init[i]));
    for container in containers {
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
