//! The pod mutation: from a pod and the injector's settings to a JSON Patch that adds hydrant's
//! agent, or a denial. Pure and deterministic: the same pod gives the same bytes.

mod containers;
mod mounts;
mod patch;
mod to_agent_config;

use std::collections::BTreeMap;

use json_patch::Patch;
use k8s_openapi::api::core::v1::{Pod, PodSpec, Volume, VolumeMount};
use serde_json::Value;

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
pub fn mutate(
    pod: &Pod,
    namespace: &str,
    settings: &InjectorSettings,
) -> Result<Option<Mutation>, Denial> {
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
    let request = annotations::parse(annotations, family, settings)?;
    let plan = Plan::new(&request, spec, context, settings)?;
    let mutation = plan.into_mutation(spec, &request);
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
        let share_process_namespace = share_process_namespace(request, spec)?;
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

/// Whether the patch sets `spec.shareProcessNamespace`: when the pod asks and has not set it
/// already; a pod that sets it to false cannot also ask for it.
fn share_process_namespace(request: &InjectionRequest, spec: &PodSpec) -> Result<bool, Denial> {
    match request.share_process_namespace {
        Some(true) if spec.share_process_namespace == Some(false) => Err(Denial::bad(
            k::AGENT_SHARE_PROCESS_NAMESPACE,
            "the pod sets shareProcessNamespace: false; remove one of the two".to_owned(),
        )),
        Some(share) => Ok(share && spec.share_process_namespace != Some(true)),
        None => Ok(false),
    }
}
