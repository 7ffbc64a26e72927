//! The pod mutation: from a pod and the injector's settings to a JSON Patch that adds hydrant's
//! agent, or a denial. Pure and deterministic: the same pod gives the same bytes.

mod containers;
mod exec;
mod mounts;
mod patch;
mod to_agent_config;

use std::collections::BTreeMap;

use json_patch::Patch;
use k8s_openapi::api::core::v1::{Pod, PodSpec, Volume, VolumeMount};
use serde_json::Value;

pub use self::exec::{ImageCommand, Images, images_to_read};

use crate::Denial;
use crate::annotations::keys::vault_k8s as k;
use crate::annotations::{self, Family, InjectionRequest};
use crate::settings::{InjectorSettings, Mode};

use self::containers::AgentContainers;
use self::mounts::Mounts;
use self::to_agent_config::to_agent_config;

/// What the webhook adds to a pod.
#[derive(Clone, Debug, PartialEq)]
pub struct Mutation {
    /// The JSON Patch (RFC 6902) to apply to the pod.
    pub patch: Patch,
    /// Things the user should know: accepted annotations that change nothing, modes changed.
    pub warnings: Vec<String>,
    /// The mode the agent's containers run in (see `agent`).
    pub mode: Mode,
    /// Whether the pod gets the agent's containers: not when it asks only for environment
    /// variables.
    pub agent: bool,
    /// The containers whose command now runs under `hydrant exec`, by name.
    pub exec: Vec<String>,
}

/// Where a pod is being created.
#[derive(Clone, Copy, Debug)]
pub struct Context<'a> {
    /// The pod's namespace.
    pub namespace: &'a str,
    /// The pod runs to completion (a Job's or CronJob's): it must never get a sidecar that keeps
    /// it running.
    pub batch: bool,
    /// The ENTRYPOINT and CMD of the images [`images_to_read`] named, as their registries gave
    /// them: a container that runs under `hydrant exec` and sets no command takes its image's.
    pub images: &'a Images,
}

/// No image read: a container that would run under `hydrant exec` must set its command.
pub static NO_IMAGES: Images = Images::new();

/// Mutates a pod about to be created in `namespace`. `Ok(None)`: nothing to do (not asked for,
/// already injected, or not a pending pod). A pod owned by a Job counts as batch. No image is
/// known ([`NO_IMAGES`]).
pub fn mutate(
    pod: &Pod,
    namespace: &str,
    settings: &InjectorSettings,
) -> Result<Option<Mutation>, Denial> {
    mutate_with(pod, namespace, &NO_IMAGES, settings)
}

/// [`mutate`], knowing the ENTRYPOINT and CMD of `images` (those [`images_to_read`] named, as
/// the webhook read them from their registries).
pub fn mutate_with(
    pod: &Pod,
    namespace: &str,
    images: &Images,
    settings: &InjectorSettings,
) -> Result<Option<Mutation>, Denial> {
    let batch = pod
        .metadata
        .owner_references
        .iter()
        .flatten()
        .any(|o| crate::runs_to_completion(&o.kind, &o.api_version));
    let context = Context {
        namespace,
        batch,
        images,
    };
    mutate_in(pod, &context, settings)
}

/// [`mutate`] with the context given explicitly: `hydrant inject` knows a Job's or CronJob's pod
/// template has no owner yet.
pub fn mutate_in(
    pod: &Pod,
    context: &Context<'_>,
    settings: &InjectorSettings,
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
    let references = family == Family::Hydrant && exec::pod_holds_references(spec);
    let request = annotations::parse(annotations, family, settings, references)?;
    let exec = exec::Exec::new(&request, spec, context.images, settings)?;
    let mut mutation = if request.outputs.is_empty() {
        // Only variables: no agent, no files.
        mounts::target_containers(&request, spec)?;
        Mutation {
            patch: Patch(vec![patch::add(
                &["metadata", "annotations", family.status_key()],
                Value::String(annotations::INJECTED.to_owned()),
            )]),
            warnings: request.warnings.clone(),
            mode: request.mode.unwrap_or(settings.mode),
            agent: false,
            exec: Vec::new(),
        }
    } else {
        let plan = Plan::new(&request, spec, context, settings)?;
        plan.into_mutation(spec, &request)
    };
    if family == Family::VaultK8s {
        mutation.warnings.extend(exec::unresolved(spec));
    }
    if let Some(exec) = exec {
        // The exec operations are written against the pod as the agent's leave it.
        let mut patched = serde_json::to_value(pod).map_err(|e| {
            Denial::new(
                crate::Reason::Internal,
                format!("cannot encode the pod: {e}"),
            )
        })?;
        json_patch::patch(&mut patched, &mutation.patch).map_err(|e| {
            Denial::new(
                crate::Reason::Internal,
                format!("the agent's patch does not apply to the pod: {e}"),
            )
        })?;
        mutation.exec = exec.names();
        mutation.warnings.extend(exec.warnings.iter().cloned());
        mutation.patch.0.extend(exec.operations(&patched));
    }
    let size = patch::json_len(&mutation.patch);
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
    /// App init containers that get the mounts too: those after the agent, or all of a
    /// vault-k8s pod's.
    init_targets: Vec<usize>,
    init_container: Option<Value>,
    init_first: bool,
    sidecar_container: Option<Value>,
    share_process_namespace: bool,
}

impl Plan {
    /// Decides in steps, each refusing what it cannot do: the mode, the app containers that get
    /// the files, the volumes and mounts, the agent's configuration, its containers, and the
    /// process namespace.
    fn new(
        request: &InjectionRequest,
        spec: &PodSpec,
        context: &Context<'_>,
        settings: &InjectorSettings,
    ) -> Result<Plan, Denial> {
        let mut warnings = request.warnings.clone();
        let mode = mode(request, context, settings, &mut warnings);
        let targets = mounts::target_containers(request, spec)?;
        let agent_first = match mode {
            Mode::Native => true,
            Mode::InitAndSidecar | Mode::InitOnly => request.init_first,
            Mode::SidecarOnly => false,
        };
        // vault-k8s (GH-91) mounts the files in every app init container, even one that runs
        // before the agent (it may write into the volume, or only expect the mount); hydrant's
        // own family mounts them only where they exist already.
        let init_targets: Vec<usize> = if agent_first || request.family == Family::VaultK8s {
            (0..spec.init_containers.as_ref().map_or(0, Vec::len)).collect()
        } else {
            Vec::new()
        };
        let method = request.auth_method.unwrap_or(settings.auth_method);
        let mounts = Mounts::new(request, spec, method)?;
        mounts::check_conflicts(spec, &mounts.volumes, &mounts.app, &targets, &init_targets)?;
        let config = to_agent_config(request, settings, method, mounts.jwt_path.clone())?;
        let containers =
            AgentContainers::new(mode, request, spec, settings, &config, &mounts.agent)?;
        let image = request.image.as_deref().unwrap_or(&settings.agent_image);
        let signals_by_name = check_commands(request, image)?;
        let share_process_namespace = share_process_namespace(request, spec, signals_by_name)?;
        Ok(Plan {
            mode,
            warnings,
            volumes: mounts.volumes,
            app_mounts: mounts.app,
            targets,
            init_targets,
            init_container: containers.init,
            init_first: agent_first,
            sidecar_container: containers.sidecar,
            share_process_namespace,
        })
    }
}

/// The mode the pod gets: the one it asks for, or the settings'; a pod that runs to completion
/// gets native mode instead of a sidecar that would keep it running, and a warning saying so.
fn mode(
    request: &InjectionRequest,
    context: &Context<'_>,
    settings: &InjectorSettings,
    warnings: &mut Vec<String>,
) -> Mode {
    let asked = request.mode.unwrap_or(settings.mode);
    match asked {
        Mode::InitAndSidecar | Mode::SidecarOnly if context.batch => {
            warnings.push(format!(
                "the pod runs to completion (a Job's): it gets mode native instead of {asked}, so that its sidecar ends with it"
            ));
            Mode::Native
        }
        other => other,
    }
}

/// The image variant with a shell: the image's tag ends with `-shell` (`Dockerfile`, stage
/// `shell`, tagged `<version>-shell`).
fn has_shell(image: &str) -> bool {
    let tail = image.rsplit('/').next().unwrap_or(image);
    !image.contains('@')
        && tail
            .rsplit_once(':')
            .is_some_and(|(_, tag)| tag.ends_with("-shell"))
}

/// Refuses a command only a shell can run when the agent's image has none, naming the command
/// and the variant that has one; says whether a command signals the pod's processes by name,
/// which needs the process namespace shared.
fn check_commands(request: &InjectionRequest, image: &str) -> Result<bool, Denial> {
    let mut by_name = false;
    for output in &request.outputs {
        let Some(argv) = &output.command else {
            continue;
        };
        if let Some((_, target)) = crate::commands::as_signal(argv) {
            by_name |= target.needs_shared_processes();
        }
        if argv.first().map(String::as_str) == Some(annotations::SHELL) && !has_shell(image) {
            let key = match request.family {
                Family::VaultK8s => format!("{}{}", k::AGENT_INJECT_COMMAND_PREFIX, output.name),
                Family::Hydrant => format!(
                    "{}{}",
                    crate::annotations::keys::hydrant::COMMAND_PREFIX,
                    output.name
                ),
            };
            let command = argv.last().map(String::as_str).unwrap_or_default();
            return Err(Denial::unsupported(
                &key,
                &format!(
                    "{command:?} needs a shell, and hydrant's image {image} has none; signalling commands (kill -HUP $(pidof app), pkill -HUP app, kill -s HUP 1) work as they are, and anything else runs in the image variant with a shell, {image}-shell (the injector's --agent-image, or hydrant.dev/image)"
                ),
            ));
        }
    }
    Ok(by_name)
}

/// Whether the patch sets `spec.shareProcessNamespace`: when the pod asks, or when a command
/// signals its processes by name (as vault-k8s's `agent-share-process-namespace` would), and it
/// has not set it already; a pod that sets it to false cannot also ask for it.
fn share_process_namespace(
    request: &InjectionRequest,
    spec: &PodSpec,
    signals_by_name: bool,
) -> Result<bool, Denial> {
    if signals_by_name && request.share_process_namespace != Some(false) {
        if spec.share_process_namespace == Some(false) {
            return Err(Denial::new(
                crate::Reason::Conflict,
                "a command signals the app's processes by name, which needs them in the agent's view, and the pod sets shareProcessNamespace: false; remove that, or signal a process ID",
            ));
        }
        return Ok(spec.share_process_namespace != Some(true));
    }
    match request.share_process_namespace {
        Some(true) if spec.share_process_namespace == Some(false) => Err(Denial::bad(
            k::AGENT_SHARE_PROCESS_NAMESPACE,
            "the pod sets shareProcessNamespace: false; remove one of the two".to_owned(),
        )),
        Some(share) => Ok(share && spec.share_process_namespace != Some(true)),
        None => Ok(false),
    }
}
