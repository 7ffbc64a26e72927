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

use self::containers::{AgentContainers, AgentRun};
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
    let mut mutation = if !request.needs_agent() {
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
        let plan = Plan::new(&request, annotations, spec, context, settings)?;
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
    /// The sidecar's metrics port, when the pod gets Prometheus's scrape annotations for it.
    scrape_port: Option<u16>,
}

impl Plan {
    /// Decides in steps, each refusing what it cannot do: the mode, the app containers that get
    /// the files, the volumes and mounts, the agent's configuration and metrics port, its
    /// containers, and the process namespace.
    fn new(
        request: &InjectionRequest,
        annotations: &BTreeMap<String, String>,
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
        // A ConfigMap's configuration is read by the agent, at its start; Vault Agent's HCL has
        // no metrics port to give it.
        let mut config = match request.config_map {
            Some(_) => None,
            None => Some(to_agent_config(
                request,
                settings,
                method,
                mounts.jwt_path.clone(),
            )?),
        };
        let mut scrape_port = None;
        if let Some(config) = &mut config {
            config.metrics_port = metrics_port(request, spec, mode, settings, &mut warnings)?;
            scrape_port = config
                .metrics_port
                .filter(|port| scrape_annotations_free(annotations, *port, &mut warnings));
        }
        let run = config
            .as_ref()
            .map_or(AgentRun::ConfigMap, AgentRun::Config);
        let containers = AgentContainers::new(mode, request, spec, settings, run, &mounts.agent)?;
        let image = request.image.as_deref().unwrap_or(&settings.agent_image);
        let by_name = check_commands(request, annotations, image, &program_mounts(&containers))?;
        let share_process_namespace = share_process_namespace(request, spec, by_name.as_ref())?;
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
            scrape_port,
        })
    }
}

/// The annotations by which Prometheus's usual Kubernetes scrape configuration finds a pod's
/// metrics.
pub const SCRAPE_ANNOTATIONS: [&str; 3] = [
    "prometheus.io/scrape",
    "prometheus.io/port",
    "prometheus.io/path",
];

/// The sidecar's metrics port: the pod's `hydrant.dev/metrics-port`, else the injector's
/// setting; none without a sidecar. A port the pod's containers already use, or the agent's own
/// local port, is refused when the pod asked for it, and skipped with a warning when only the
/// setting gave it (a cluster-wide opt-in never costs a pod its admission).
fn metrics_port(
    request: &InjectionRequest,
    spec: &PodSpec,
    mode: Mode,
    settings: &InjectorSettings,
    warnings: &mut Vec<String>,
) -> Result<Option<u16>, Denial> {
    let asked = request.metrics_port.is_some();
    let Some(port) = request.metrics_port.unwrap_or(settings.agent_metrics_port) else {
        return Ok(None);
    };
    if !mode.has_sidecar() {
        if asked {
            warnings.push(format!(
                "{}: mode {mode} has no sidecar, so nothing serves metrics",
                annotations::keys::hydrant::METRICS_PORT
            ));
        }
        return Ok(None);
    }
    let app_port = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .find_map(|c| {
            c.ports
                .iter()
                .flatten()
                .any(|p| p.container_port == i32::from(port))
                .then_some(c.name.as_str())
        });
    let conflict = match (app_port, request.listen) {
        (Some(container), _) => Some(format!("container {container} already uses port {port}")),
        (None, Some(listen)) if listen == port => Some(format!(
            "port {port} is also the agent's local port (for /quit), which stays on 127.0.0.1"
        )),
        _ => None,
    };
    match conflict {
        None => Ok(Some(port)),
        Some(conflict) if asked => Err(Denial::new(
            crate::Reason::Conflict,
            format!(
                "{}: {conflict}; choose another port for the agent's metrics",
                annotations::keys::hydrant::METRICS_PORT
            ),
        )),
        Some(conflict) => {
            let fix = match request.family {
                Family::Hydrant => {
                    "set hydrant.dev/metrics-port to another port, or empty for none"
                }
                Family::VaultK8s => "the injector's --agent-metrics-port names it",
            };
            warnings.push(format!(
                "the injector's metrics port is not opened: {conflict} ({fix})"
            ));
            Ok(None)
        }
    }
}

/// Whether the pod leaves Prometheus's scrape annotations to the agent: a pod that sets any of
/// them keeps its own (they point at one port, the app's), with a warning.
fn scrape_annotations_free(
    annotations: &BTreeMap<String, String>,
    port: u16,
    warnings: &mut Vec<String>,
) -> bool {
    let Some(own) = SCRAPE_ANNOTATIONS
        .iter()
        .find(|key| annotations.contains_key(**key))
    else {
        return true;
    };
    warnings.push(format!(
        "the pod sets {own}, so its own scrape annotations stay; the agent's metrics on port {port} are scraped only by a PodMonitor or scrape job that names port {}",
        crate::names::METRICS_PORT
    ));
    false
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

/// Where the agent container that runs the commands (the sidecar, or native mode's one
/// container; init-only's, which runs none, is checked alike) mounts volumes the pod could have
/// filled with programs, as it stands after `agent-json-patch`: every mount but the agent's own
/// state, the pod's labels and service-account tokens.
fn program_mounts(containers: &AgentContainers) -> Vec<String> {
    let Some(agent) = containers.sidecar.as_ref().or(containers.init.as_ref()) else {
        return Vec::new();
    };
    agent["volumeMounts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["mountPath"].as_str())
        .filter(|path| {
            *path != crate::names::STATE_PATH
                && *path != crate::names::PODINFO_PATH
                && !path.contains("serviceaccount")
        })
        .map(str::to_owned)
        .collect()
}

/// A command that signals the pod's processes by name: its annotation and its text.
struct ByName {
    key: String,
    command: String,
}

/// Refuses a command hydrant's image cannot run, naming the command and what to do instead: one
/// only a shell can run, or a program the image does not have, unless the image is the variant
/// with a shell; a program by an absolute path under a volume the agent mounts runs as it is.
/// Says which command, if any, signals the pod's processes by name, which needs the process
/// namespace shared.
fn check_commands(
    request: &InjectionRequest,
    pod_annotations: &BTreeMap<String, String>,
    image: &str,
    mounts: &[String],
) -> Result<Option<ByName>, Denial> {
    let mut by_name = None;
    let shell = has_shell(image);
    let mounts: Vec<&str> = mounts.iter().map(String::as_str).collect();
    for output in &request.outputs {
        let Some(argv) = &output.command else {
            continue;
        };
        let key = match request.family {
            Family::VaultK8s => format!("{}{}", k::AGENT_INJECT_COMMAND_PREFIX, output.name),
            Family::Hydrant => format!(
                "{}{}",
                crate::annotations::keys::hydrant::COMMAND_PREFIX,
                output.name
            ),
        };
        // As the pod wrote it (what it became, `hydrant signal ...`, would puzzle).
        let command = pod_annotations
            .get(&key)
            .map_or_else(|| argv.join(" "), |c| c.trim().to_owned());
        if let Some((_, target)) = crate::commands::as_signal(argv)
            && target.needs_shared_processes()
            && by_name.is_none()
        {
            by_name = Some(ByName {
                key: key.clone(),
                command: command.clone(),
            });
        }
        if shell {
            continue;
        }
        let Err(problem) = crate::commands::runnable(argv, &mounts) else {
            continue;
        };
        let what = match problem {
            crate::commands::NotInImage::NeedsShell => "needs a shell".to_owned(),
            crate::commands::NotInImage::Program(program) => {
                format!("runs {program}, which is not in it (only hydrant is)")
            }
            crate::commands::NotInImage::Unmounted(program) => format!(
                "runs {program}, which is not in it (only hydrant is) and under no volume the agent mounts ({})",
                if mounts.is_empty() {
                    "none".to_owned()
                } else {
                    mounts.join(", ")
                }
            ),
        };
        let image_setting = match request.family {
            Family::VaultK8s => "the injector's --agent-image",
            Family::Hydrant => "the injector's --agent-image, or hydrant.dev/image",
        };
        return Err(Denial::unsupported(
            &key,
            &format!(
                "{command:?} cannot run in hydrant's image {image}: it {what}; signalling commands (kill -HUP $(pidof app), pkill -HUP app, kill -s HUP 1) work as they are, a program of the pod's own runs by its absolute path under a volume the agent mounts, and anything else runs in the image variant with a shell, {image}-shell ({image_setting})"
            ),
        ));
    }
    Ok(by_name)
}

/// Whether the patch sets `spec.shareProcessNamespace`: when the pod asks, or when a command
/// signals its processes by name (as vault-k8s's `agent-share-process-namespace` would), and it
/// has not set it already; a pod that sets it to false cannot also ask for it, nor signal by
/// name (the agent would see none of the app's processes, and the command would fail at the
/// first change).
fn share_process_namespace(
    request: &InjectionRequest,
    spec: &PodSpec,
    by_name: Option<&ByName>,
) -> Result<bool, Denial> {
    if let Some(ByName { key, command }) = by_name {
        if request.share_process_namespace == Some(false) {
            return Err(Denial::new(
                crate::Reason::Conflict,
                format!(
                    "{key}: {command:?} signals the app's processes by name, which the agent sees only in the pod's shared process namespace, and {} is \"false\": the agent cannot see the app to signal it; remove that annotation, or drop the command and let the app watch its file",
                    k::AGENT_SHARE_PROCESS_NAMESPACE
                ),
            ));
        }
        if spec.share_process_namespace == Some(false) {
            return Err(Denial::new(
                crate::Reason::Conflict,
                format!(
                    "{key}: {command:?} signals the app's processes by name, which needs them in the agent's view, and the pod sets shareProcessNamespace: false; remove that, or drop the command and let the app watch its file"
                ),
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
