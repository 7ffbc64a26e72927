//! Environment variables from Vault through `hydrant exec`: in a pod opted in with
//! `hydrant.dev/inject`, each container with bank-vaults' `vault:` env values, and each app
//! container the `hydrant.dev/env-<VAR>` annotations reach, runs its command under
//! `/hydrant/bin/hydrant exec`, a copy of hydrant's binary that an init container puts in a
//! memory volume. The pod spec keeps only references: the `vault:` values leave the container's
//! env, and `hydrant exec`'s configuration (paths and keys, never a value) takes their place.

use std::collections::{BTreeMap, BTreeSet};

use json_patch::PatchOperation;
use k8s_openapi::api::core::v1::{Container, EnvVar, PodSpec, Volume, VolumeMount};
use serde_json::Value;

use super::containers::{resource_requirements, security_context};
use super::mounts::{memory_volume, mount, secret_volume, service_account_token};
use super::patch::add;
use super::to_agent_config::unchecked;
use crate::agent_config::{AgentConfig, AuthMethod, EnvConfig};
use crate::annotations::env::{check_name, container_reference};
use crate::annotations::keys::hydrant as h;
use crate::annotations::{Family, InjectionRequest};
use crate::settings::InjectorSettings;
use crate::{AGENT_BINARY, AGENT_CONFIG_ENV, Denial, Reason, names};

/// An image's ENTRYPOINT and CMD, as its configuration in its registry gives them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImageCommand {
    /// The image's ENTRYPOINT (empty when it sets none).
    pub entrypoint: Vec<String>,
    /// The image's CMD (empty when it sets none).
    pub cmd: Vec<String>,
}

/// What the webhook learnt of images from their registries, by the image as the pod writes it:
/// the command, or why it could not be read (one line, naming the registry).
pub type Images = BTreeMap<String, Result<ImageCommand, String>>;

/// Whether a container's env holds bank-vaults' `vault:` values (well formed or not).
fn holds_references(container: &Container) -> bool {
    container
        .env
        .iter()
        .flatten()
        .filter_map(|e| e.value.as_deref())
        .any(|v| !matches!(container_reference(v), Ok(None)))
}

/// The pod's containers, init containers first: where they are and what they are.
fn all_containers(spec: &PodSpec) -> impl Iterator<Item = (bool, &Container)> {
    let init = spec.init_containers.iter().flatten().map(|c| (true, c));
    init.chain(spec.containers.iter().map(|c| (false, c)))
}

/// Whether any container of the pod holds `vault:` values.
pub(super) fn pod_holds_references(spec: &PodSpec) -> bool {
    all_containers(spec).any(|(_, c)| holds_references(c))
}

/// The warning a vault-k8s pod gets when its containers hold `vault:` values: hydrant leaves
/// them as they are, as vault-k8s does; the opt-in is `hydrant.dev/inject`.
pub(super) fn unresolved(spec: &PodSpec) -> Option<String> {
    let (_, c) = all_containers(spec).find(|(_, c)| holds_references(c))?;
    Some(format!(
        "container {} has env values that start with vault:, which hydrant resolves only in pods annotated {}: they are left as they are",
        c.name,
        h::INJECT
    ))
}

/// Whether the `hydrant.dev/env-<VAR>` annotations reach container `name`: an app container
/// named by `hydrant.dev/containers`, or any when it names none.
fn reached(init: bool, name: &str, wanted: Option<&[String]>) -> bool {
    !init && wanted.is_none_or(|w| w.iter().any(|n| n == name))
}

/// The images whose ENTRYPOINT and CMD the mutation of `pod` needs: those of the containers
/// that would run under `hydrant exec` and set no command. Empty for a pod not opted in with
/// `hydrant.dev/inject`, or already injected. The webhook reads them from their registries
/// before it mutates the pod, and gives them in [`super::Context::images`].
pub fn images_to_read(pod: &k8s_openapi::api::core::v1::Pod) -> Vec<String> {
    let no_annotations = BTreeMap::new();
    let annotations = pod.metadata.annotations.as_ref().unwrap_or(&no_annotations);
    let (Ok(Some(Family::Hydrant)), false) = (
        crate::annotations::wanted(annotations),
        crate::annotations::already_injected(annotations),
    ) else {
        return Vec::new();
    };
    let Some(spec) = &pod.spec else {
        return Vec::new();
    };
    let variables = annotations.keys().any(|k| k.starts_with(h::ENV_PREFIX));
    let wanted = annotations
        .get(h::CONTAINERS)
        .map(|v| crate::values::parse_list(v));
    let images: BTreeSet<String> = all_containers(spec)
        .filter(|(init, c)| {
            holds_references(c) || (variables && reached(*init, &c.name, wanted.as_deref()))
        })
        .filter(|(_, c)| set(&c.command).is_none())
        .filter_map(|(_, c)| c.image.clone())
        .collect();
    images.into_iter().collect()
}

/// A list the pod sets: Kubernetes treats an empty `command` or `args` as unset.
fn set(list: &Option<Vec<String>>) -> Option<&[String]> {
    list.as_deref().filter(|l| !l.is_empty())
}

/// One container that runs under `hydrant exec`.
struct Wrapped {
    /// An init container.
    init: bool,
    /// Its name.
    name: String,
    /// Its new command: `hydrant exec --` and the program.
    command: Vec<String>,
    /// Its new args, when the image's CMD must be given (setting `command` drops it).
    args: Option<Vec<String>>,
    /// Its new env: without the `vault:` values, with `hydrant exec`'s configuration.
    env: Vec<EnvVar>,
}

/// Everything decided for the containers that run under `hydrant exec`.
pub(super) struct Exec {
    wrapped: Vec<Wrapped>,
    /// The init container that copies the binary.
    install: Container,
    /// The volumes these containers need (the binary's; the token, TLS and extra Secret when
    /// the agent does not add them already).
    volumes: Vec<Volume>,
    /// The mounts every wrapped container gets.
    mounts: Vec<VolumeMount>,
    /// Things the user should know.
    pub(super) warnings: Vec<String>,
}

impl Exec {
    /// Decides which containers run under `hydrant exec` and how; `None` when none does (and
    /// for vault-k8s's family, whose pods keep vault-k8s's meaning: see [`unresolved`]).
    pub(super) fn new(
        request: &InjectionRequest,
        spec: &PodSpec,
        images: &Images,
        settings: &InjectorSettings,
    ) -> Result<Option<Exec>, Denial> {
        let mut warnings = Vec::new();
        if request.family == Family::VaultK8s {
            return Ok(None);
        }
        let method = request.auth_method.unwrap_or(settings.auth_method);
        let uses_jwt = matches!(method, AuthMethod::Kubernetes | AuthMethod::Jwt);
        let token = match (&request.jwt_path, uses_jwt) {
            (None, true) => Some(service_account_token(request, spec)?),
            _ => None,
        };
        let jwt_path = request
            .jwt_path
            .clone()
            .or_else(|| token.as_ref().map(|(_, _, path)| path.clone()));
        let mut base = unchecked(request, settings, method, jwt_path);
        base.templates.clear();
        base.secrets.clear();
        base.state_dir = None;
        base.snapshot = None;
        // Every container of the pod shares its network: only the agent listens.
        base.listen = None;

        let mut wrapped = Vec::new();
        for (init, container) in all_containers(spec) {
            let annotated = !request.env.is_empty()
                && reached(init, &container.name, request.containers.as_deref());
            let Some(entries) = variables(container, annotated.then_some(&request.env[..]))? else {
                continue;
            };
            let mut config = base.clone();
            config.env = entries;
            wrapped.push(wrap(init, container, config, images, &mut warnings)?);
        }
        if wrapped.is_empty() {
            return Ok(None);
        }
        check_conflicts(spec)?;
        let (mut volumes, mut mounts) = (
            vec![memory_volume(names::BIN_VOLUME)],
            vec![mount(names::BIN_VOLUME, names::BIN_PATH, true)],
        );
        if let Some((volume, token_mount, _)) = token {
            volumes.extend(volume);
            mounts.push(token_mount);
        }
        if let Some(secret) = &request.tls_secret {
            volumes.push(secret_volume(names::TLS_VOLUME, secret));
            mounts.push(mount(names::TLS_VOLUME, names::TLS_PATH, true));
        }
        if let Some(secret) = &request.extra_secret {
            volumes.push(secret_volume(names::EXTRA_VOLUME, secret));
            mounts.push(mount(names::EXTRA_VOLUME, names::EXTRA_PATH, true));
        }
        for w in &wrapped {
            let container = all_containers(spec)
                .find(|(_, c)| c.name == w.name)
                .map(|(_, c)| c);
            check_mounts(container, &mounts)?;
        }
        let install = Container {
            name: names::INSTALL_CONTAINER.to_owned(),
            image: Some(
                request
                    .image
                    .clone()
                    .unwrap_or_else(|| settings.agent_image.clone()),
            ),
            command: Some(
                [AGENT_BINARY, "install", "--to", names::BIN_PATH]
                    .map(str::to_owned)
                    .to_vec(),
            ),
            resources: resource_requirements(&settings.init_resources, &request.resources),
            security_context: security_context(request, spec, settings)?,
            volume_mounts: Some(vec![mount(names::BIN_VOLUME, names::BIN_PATH, false)]),
            ..Container::default()
        };
        Ok(Some(Exec {
            wrapped,
            install,
            volumes,
            mounts,
            warnings,
        }))
    }

    /// The containers that run under `hydrant exec`, by name.
    pub(super) fn names(&self) -> Vec<String> {
        self.wrapped.iter().map(|w| w.name.clone()).collect()
    }

    /// The operations that make it so, written against `pod`: the pod as it is once the
    /// agent's operations have applied (so that arrays the agent created are appended to).
    pub(super) fn operations(self, pod: &Value) -> Vec<PatchOperation> {
        let mut ops = Vec::new();
        let spec = &pod["spec"];
        for w in &self.wrapped {
            let list = if w.init {
                "initContainers"
            } else {
                "containers"
            };
            let Some((index, current)) = spec[list]
                .as_array()
                .into_iter()
                .flatten()
                .enumerate()
                .find(|(_, c)| c["name"] == w.name.as_str())
            else {
                continue;
            };
            let index = index.to_string();
            let at = |field: &'static str| ["spec", list, &index, field];
            ops.push(add(&at("command"), to_value(&w.command)));
            if let Some(args) = &w.args {
                ops.push(add(&at("args"), to_value(args)));
            }
            ops.push(add(&at("env"), to_value(&w.env)));
            // The whole list: the agent may have added the files' mounts already.
            let mut mounts: Vec<Value> = current["volumeMounts"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            for m in &self.mounts {
                if !mounts
                    .iter()
                    .any(|e| e["mountPath"] == m.mount_path.as_str())
                {
                    mounts.push(to_value(m));
                }
            }
            ops.push(add(&at("volumeMounts"), Value::Array(mounts)));
        }
        let existing = |name: &str| {
            spec["volumes"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|v| v["name"] == name)
        };
        let volumes: Vec<Value> = self
            .volumes
            .iter()
            .filter(|v| !existing(&v.name))
            .map(to_value)
            .collect();
        match spec["volumes"].as_array() {
            Some(list) if !list.is_empty() => {
                for volume in volumes {
                    ops.push(add(&["spec", "volumes", "-"], volume));
                }
            }
            _ => ops.push(add(&["spec", "volumes"], Value::Array(volumes))),
        }
        // First of all: every container that runs the copy, the agent's included, starts after.
        let install = to_value(&self.install);
        match spec["initContainers"].as_array() {
            Some(list) if !list.is_empty() => {
                ops.push(add(&["spec", "initContainers", "0"], install));
            }
            _ => ops.push(add(
                &["spec", "initContainers"],
                Value::Array(vec![install]),
            )),
        }
        ops
    }
}

fn to_value<T: serde::Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

/// The variables container `c` gets: its own `vault:` values, then the annotations' (when they
/// reach it); `None` when it gets none. Refuses a malformed reference, a name no shell reads
/// back, and a name given twice, each naming the container.
fn variables(
    c: &Container,
    annotated: Option<&[EnvConfig]>,
) -> Result<Option<Vec<EnvConfig>>, Denial> {
    let env = c.env.as_deref().unwrap_or_default();
    let mut entries = Vec::new();
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for var in env {
        *seen.entry(var.name.as_str()).or_default() += 1;
    }
    for var in env {
        let Some(value) = var.value.as_deref() else {
            continue;
        };
        let bad = |problem: String| {
            Denial::new(
                Reason::BadAnnotation,
                format!("container {}: env {}: {problem}", c.name, var.name),
            )
        };
        let Some(reference) = container_reference(value).map_err(bad)? else {
            continue;
        };
        check_name(&var.name).map_err(bad)?;
        if seen.get(var.name.as_str()).copied().unwrap_or(0) > 1 {
            return Err(bad(
                "is set more than once in the container; keep one".to_owned()
            ));
        }
        entries.push(reference.entry(&var.name));
    }
    for entry in annotated.into_iter().flatten() {
        if seen.contains_key(entry.name.as_str()) {
            return Err(Denial::new(
                Reason::Conflict,
                format!(
                    "container {} sets {} in its env, and {}{} gives it too; keep one",
                    c.name,
                    entry.name,
                    h::ENV_PREFIX,
                    entry.name
                ),
            ));
        }
        entries.push(entry.clone());
    }
    if entries.is_empty() {
        return Ok(None);
    }
    if seen.contains_key(AGENT_CONFIG_ENV) {
        return Err(Denial::new(
            Reason::Conflict,
            format!(
                "container {} sets {AGENT_CONFIG_ENV}, which hydrant exec reads its configuration from; remove it",
                c.name
            ),
        ));
    }
    Ok(Some(entries))
}

/// How container `c` runs under `hydrant exec` with `config`: its command from the pod spec,
/// or else from its image's configuration in `images`; refused when neither is known.
fn wrap(
    init: bool,
    c: &Container,
    mut config: AgentConfig,
    images: &Images,
    warnings: &mut Vec<String>,
) -> Result<Wrapped, Denial> {
    config.env.sort_by(|a, b| a.name.cmp(&b.name));
    config.validate_exec().map_err(|issues| {
        Denial::new(
            Reason::InvalidConfig,
            format!(
                "the hydrant exec configuration of container {} is invalid: {issues}",
                c.name
            ),
        )
    })?;
    let (program, args) = match set(&c.command) {
        Some(command) => (command.to_vec(), None),
        None => {
            let image = c.image.as_deref().unwrap_or_default();
            let fix = format!(
                "set command (and args) on container {} in the pod spec",
                c.name
            );
            let unknown = |why: String| {
                Denial::new(
                    Reason::UnknownCommand,
                    format!(
                        "container {} runs under hydrant exec for its env values from Vault, which needs its command: the pod sets none, and {why}; {fix}",
                        c.name
                    ),
                )
            };
            match images.get(image) {
                None => {
                    return Err(unknown(format!(
                        "the ENTRYPOINT and CMD of its image {image} are not known here (no registry lookup)"
                    )));
                }
                Some(Err(error)) => {
                    return Err(Denial::new(
                        Reason::UnknownCommand,
                        format!(
                            "container {} runs under hydrant exec for its env values from Vault, which needs its command: the pod sets none, and the configuration of its image {image} cannot be read from its registry: {error}; {fix}, or give the injector the registry's credentials (--registry-credentials, the chart's webhook.registry.credentialsSecret) or, for a registry without TLS, --insecure-registry",
                            c.name
                        ),
                    ));
                }
                Some(Ok(found)) => {
                    let args = match set(&c.args) {
                        Some(_) => None,
                        // Once `command` is set, Kubernetes no longer runs the image's CMD.
                        None => Some(found.cmd.clone()),
                    };
                    if found.entrypoint.is_empty() && args.as_ref().is_some_and(|a| a.is_empty()) {
                        return Err(unknown(format!(
                            "its image {image} sets neither ENTRYPOINT nor CMD"
                        )));
                    }
                    (found.entrypoint.clone(), args.filter(|a| !a.is_empty()))
                }
            }
        }
    };
    let secret: BTreeSet<&str> = config.env.iter().map(|e| e.name.as_str()).collect();
    let expanded = c
        .command
        .iter()
        .chain(c.args.iter())
        .flatten()
        .find_map(|arg| {
            secret
                .iter()
                .find(|name| arg.contains(&format!("$({name})")))
        });
    if let Some(name) = expanded {
        warnings.push(format!(
            "container {}: Kubernetes expands $({name}) in command and args before hydrant exec sets {name}, so it stays as written; read {name} from the environment in the program",
            c.name
        ));
    }
    let json = serde_json::to_string(&config).map_err(|e| {
        Denial::new(
            Reason::Internal,
            format!("cannot encode the hydrant exec configuration: {e}"),
        )
    })?;
    let mut env: Vec<EnvVar> = c
        .env
        .iter()
        .flatten()
        .filter(|e| {
            !e.value
                .as_deref()
                .is_some_and(|v| matches!(container_reference(v), Ok(Some(_))))
        })
        .cloned()
        .collect();
    env.push(EnvVar {
        name: AGENT_CONFIG_ENV.to_owned(),
        value: Some(json),
        ..EnvVar::default()
    });
    let command = [names::EXEC_BINARY, "exec", "--"]
        .into_iter()
        .map(str::to_owned)
        .chain(program)
        .collect();
    Ok(Wrapped {
        init,
        name: c.name.clone(),
        command,
        args,
        env,
    })
}

/// Names hydrant adds for `hydrant exec` that the pod already uses.
fn check_conflicts(spec: &PodSpec) -> Result<(), Denial> {
    if spec
        .volumes
        .iter()
        .flatten()
        .any(|v| v.name == names::BIN_VOLUME)
    {
        return Err(Denial::new(
            Reason::Conflict,
            format!(
                "the pod already has a volume named {}; hydrant adds its own under that name",
                names::BIN_VOLUME
            ),
        ));
    }
    if all_containers(spec).any(|(_, c)| c.name == names::INSTALL_CONTAINER) {
        return Err(Denial::new(
            Reason::Conflict,
            format!(
                "the pod already has a container named {}",
                names::INSTALL_CONTAINER
            ),
        ));
    }
    Ok(())
}

/// A wrapped container must not mount something else where hydrant's mounts go.
fn check_mounts(container: Option<&Container>, mounts: &[VolumeMount]) -> Result<(), Denial> {
    let Some(container) = container else {
        return Ok(());
    };
    for m in mounts {
        if let Some(other) = container
            .volume_mounts
            .iter()
            .flatten()
            .find(|e| e.mount_path == m.mount_path && e.name != m.name)
        {
            return Err(Denial::new(
                Reason::Conflict,
                format!(
                    "container {} mounts volume {} at {}, where hydrant exec needs {}; mount it elsewhere",
                    container.name, other.name, m.mount_path, m.name
                ),
            ));
        }
    }
    Ok(())
}
