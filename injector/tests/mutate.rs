//! The mutation, end to end on pods: the patch applies, the pod it gives is what each mode and
//! annotation asks for, and every refusal names the annotation.

use injector::agent_config::{AgentConfig, AuthMethod, SecretFormat, TemplateSyntax};
use injector::settings::{Mode, RunAsSettings};
use injector::{Denial, InjectorSettings, Mutation, Reason, mutate, mutate_in, names};
use k8s_openapi::api::core::v1::{Container, Pod};
use serde_json::{Value, json};

/// Builds pods the way they reach the webhook.
#[derive(Clone)]
struct PodBuilder(Value);

impl PodBuilder {
    /// An app pod with one container that mounts its service-account token, as the
    /// ServiceAccount admission plugin leaves it.
    fn new() -> PodBuilder {
        PodBuilder(json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "app-0", "namespace": "team-a", "annotations": {}},
            "spec": {
                "serviceAccountName": "app",
                "containers": [{
                    "name": "app",
                    "image": "registry.example/app:1",
                    "volumeMounts": [{"name": "kube-api-access-x", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount", "readOnly": true}]
                }],
                "volumes": [{"name": "kube-api-access-x", "projected": {"sources": [{"serviceAccountToken": {"path": "token", "expirationSeconds": 3607}}]}}]
            }
        }))
    }

    /// A pod with nothing optional: no annotations, no volumes, no mounts.
    fn bare() -> PodBuilder {
        PodBuilder(json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "bare"},
            "spec": {"containers": [{"name": "app", "image": "app"}]}
        }))
    }

    fn annotate(mut self, key: &str, value: &str) -> PodBuilder {
        if self.0["metadata"]["annotations"].is_null() {
            self.0["metadata"]["annotations"] = json!({});
        }
        self.0["metadata"]["annotations"][key] = json!(value);
        self
    }

    fn vault(self, pairs: &[(&str, &str)]) -> PodBuilder {
        pairs.iter().fold(
            self.annotate("vault.hashicorp.com/agent-inject", "true"),
            |p, (k, v)| p.annotate(&format!("vault.hashicorp.com/{k}"), v),
        )
    }

    fn hydrant(self, pairs: &[(&str, &str)]) -> PodBuilder {
        pairs
            .iter()
            .fold(self.annotate("hydrant.dev/inject", "true"), |p, (k, v)| {
                p.annotate(&format!("hydrant.dev/{k}"), v)
            })
    }

    fn init_container(mut self, name: &str) -> PodBuilder {
        let list = self.0["spec"]["initContainers"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let mut list = list;
        list.push(json!({"name": name, "image": "busybox"}));
        self.0["spec"]["initContainers"] = Value::Array(list);
        self
    }

    fn owned_by_job(mut self) -> PodBuilder {
        self.0["metadata"]["ownerReferences"] = json!([{"apiVersion": "batch/v1", "kind": "Job", "name": "migrate", "uid": "u-1", "controller": true}]);
        self
    }

    fn set(mut self, pointer: &str, value: Value) -> PodBuilder {
        *self.0.pointer_mut(pointer).expect("pointer exists") = value;
        self
    }

    fn build(self) -> Pod {
        serde_json::from_value(self.0).expect("a valid pod")
    }
}

fn settings() -> InjectorSettings {
    InjectorSettings::new(
        "https://vault.vault.svc:8200",
        "ghcr.io/hydrant-dev/hydrant:0.1.0",
    )
}

fn mutated(pod: &Pod) -> Mutation {
    mutate(pod, "team-a", &settings())
        .expect("allowed")
        .expect("a patch")
}

fn denied(pod: &Pod) -> Denial {
    mutate(pod, "team-a", &settings()).expect_err("denied")
}

/// The pod after the patch, checked to be a valid pod.
fn apply(pod: &Pod, mutation: &Mutation) -> Pod {
    let mut value = serde_json::to_value(pod).expect("pod json");
    json_patch::patch(&mut value, &mutation.patch).expect("the patch applies");
    serde_json::from_value(value).expect("the result is a pod")
}

fn agent_config(container: &Container) -> AgentConfig {
    let env = container.env.as_ref().expect("env");
    let json = env
        .iter()
        .find(|e| e.name == "HYDRANT_AGENT_CONFIG")
        .and_then(|e| e.value.as_deref())
        .expect("HYDRANT_AGENT_CONFIG");
    let config: AgentConfig = serde_json::from_str(json).expect("the agent reads it");
    config.validate().expect("and finds it valid");
    config
}

fn container<'a>(list: &'a Option<Vec<Container>>, name: &str) -> &'a Container {
    list.iter()
        .flatten()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no container {name}"))
}

#[test]
fn a_vault_k8s_pod_gets_a_native_sidecar_that_renders_its_secrets() {
    let pod = PodBuilder::new()
        .vault(&[
            ("role", "app"),
            ("agent-inject-secret-db-creds", "database/creds/ro"),
            ("agent-inject-secret-config", "secret/data/app/config"),
            (
                "agent-inject-template-config",
                "{{ with secret \"secret/data/app/config\" }}{{ .Data.data.url }}{{ end }}\n",
            ),
        ])
        .build();
    let mutation = mutated(&pod);
    assert_eq!(mutation.mode, Mode::Native);
    let after = apply(&pod, &mutation);
    let spec = after.spec.as_ref().expect("spec");

    let agent = &spec.init_containers.as_ref().expect("init containers")[0];
    assert_eq!(agent.name, "vault-agent");
    assert_eq!(agent.restart_policy.as_deref(), Some("Always"));
    assert_eq!(
        agent.command.as_ref().expect("command"),
        &["/usr/local/bin/hydrant", "agent"]
    );
    let probe = agent.startup_probe.as_ref().expect("startup probe");
    assert_eq!(
        probe
            .exec
            .as_ref()
            .and_then(|e| e.command.clone())
            .expect("exec"),
        ["/usr/local/bin/hydrant", "agent", "--check-ready"]
    );
    assert_eq!(spec.containers.len(), 1, "no classic sidecar");

    let config = agent_config(agent);
    assert_eq!(config.vault.address, "https://vault.vault.svc:8200");
    assert_eq!(config.auth.method, AuthMethod::Kubernetes);
    assert_eq!(config.auth.role.as_deref(), Some("app"));
    assert_eq!(
        config.auth.jwt_path.as_deref(),
        Some(std::path::Path::new(
            "/var/run/secrets/kubernetes.io/serviceaccount/token"
        ))
    );
    assert_eq!(config.secrets.len(), 1);
    assert_eq!(config.secrets[0].name, "db-creds");
    assert_eq!(config.secrets[0].format, SecretFormat::VaultK8sMap);
    assert_eq!(
        config.secrets[0].destination.to_str(),
        Some("/vault/secrets/db-creds")
    );
    assert_eq!(
        config.templates[0].destination.to_str(),
        Some("/vault/secrets/config")
    );
    // vault-k8s's templates are consul-template's, and render `<no value>` for a missing key.
    assert_eq!(config.templates[0].syntax, TemplateSyntax::ConsulTemplate);
    assert_eq!(config.templates[0].error_on_missing_key, Some(false));

    let app = &spec.containers[0];
    let mounts: Vec<(&str, &str)> = app
        .volume_mounts
        .iter()
        .flatten()
        .map(|m| (m.name.as_str(), m.mount_path.as_str()))
        .collect();
    assert!(
        mounts.contains(&("vault-secrets", "/vault/secrets")),
        "{mounts:?}"
    );
    assert!(
        !mounts.iter().any(|(n, _)| *n == names::STATE_VOLUME),
        "the app never sees the agent's state"
    );
    let volumes = spec.volumes.as_ref().expect("volumes");
    for name in [names::STATE_VOLUME, names::SECRETS_VOLUME] {
        let v = volumes.iter().find(|v| v.name == name).expect("volume");
        assert_eq!(
            v.empty_dir.as_ref().and_then(|e| e.medium.as_deref()),
            Some("Memory")
        );
    }
    assert_eq!(
        after
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get("vault.hashicorp.com/agent-inject-status"))
            .map(String::as_str),
        Some("injected")
    );
}

#[test]
fn every_mode_adds_the_containers_it_promises() {
    let cases = [
        ("native", vec![], vec![("vault-agent", true)]),
        (
            "init-and-sidecar",
            vec!["vault-agent"],
            vec![("vault-agent-init", false)],
        ),
        ("init-only", vec![], vec![("vault-agent-init", false)]),
        ("sidecar-only", vec!["vault-agent"], vec![]),
    ];
    for (mode, sidecars, inits) in cases {
        let pod = PodBuilder::new()
            .hydrant(&[
                ("role", "app"),
                ("secret-db", "secret/data/db"),
                ("mode", mode),
            ])
            .build();
        let after = apply(&pod, &mutated(&pod));
        let spec = after.spec.expect("spec");
        let added: Vec<&str> = spec.containers[1..]
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(added, sidecars, "{mode}");
        let init: Vec<(&str, bool)> = spec
            .init_containers
            .iter()
            .flatten()
            .map(|c| {
                (
                    c.name.as_str(),
                    c.restart_policy.as_deref() == Some("Always"),
                )
            })
            .collect();
        assert_eq!(init, inits, "{mode}");
        for c in spec
            .init_containers
            .iter()
            .flatten()
            .chain(&spec.containers[1..])
        {
            let once = c
                .command
                .as_ref()
                .expect("command")
                .contains(&"--once".to_string());
            assert_eq!(once, c.name == "vault-agent-init", "{mode}: {}", c.name);
        }
    }
}

#[test]
fn a_job_pod_never_gets_a_classic_sidecar() {
    for mode in ["init-and-sidecar", "sidecar-only"] {
        let pod = PodBuilder::new()
            .owned_by_job()
            .hydrant(&[
                ("role", "app"),
                ("secret-db", "secret/data/db"),
                ("mode", mode),
            ])
            .build();
        let mutation = mutated(&pod);
        assert_eq!(mutation.mode, Mode::Native, "{mode}");
        assert!(
            mutation
                .warnings
                .iter()
                .any(|w| w.contains("runs to completion"))
        );
        let spec = apply(&pod, &mutation).spec.expect("spec");
        assert_eq!(spec.containers.len(), 1, "{mode}: no sidecar in containers");
    }
    let pod = PodBuilder::new()
        .hydrant(&[
            ("role", "app"),
            ("secret-db", "secret/data/db"),
            ("mode", "init-and-sidecar"),
        ])
        .build();
    let batch = injector::Context {
        namespace: "team-a",
        batch: true,
        images: &injector::NO_IMAGES,
    };
    let mutation = mutate_in(&pod, &batch, &settings())
        .expect("allowed")
        .expect("patch");
    assert_eq!(
        mutation.mode,
        Mode::Native,
        "a CronJob's template, through hydrant inject"
    );
    let pod = PodBuilder::new()
        .owned_by_job()
        .vault(&[
            ("role", "app"),
            ("agent-inject-secret-db", "secret/data/db"),
            ("agent-pre-populate-only", "true"),
        ])
        .build();
    assert_eq!(
        mutated(&pod).mode,
        Mode::InitOnly,
        "init-only stays init-only"
    );
}

#[test]
fn a_bare_pod_gets_a_patch_that_applies() {
    let pod = PodBuilder::bare()
        .hydrant(&[("role", "app"), ("secret-db", "secret/data/db")])
        .build();
    let pod = {
        let mut pod = pod;
        pod.metadata.annotations.as_mut().expect("annotations");
        pod
    };
    let mutation = mutated(&pod);
    let ops = serde_json::to_value(&mutation.patch).expect("json");
    let paths: Vec<&str> = ops
        .as_array()
        .expect("ops")
        .iter()
        .map(|o| o["path"].as_str().expect("path"))
        .collect();
    assert_eq!(
        paths,
        [
            "/metadata/annotations/hydrant.dev~1status",
            "/spec/volumes",
            "/spec/containers/0/volumeMounts",
            "/spec/initContainers",
        ],
        "one add per missing array, never a second add replacing the first"
    );
    let spec = apply(&pod, &mutation).spec.expect("spec");
    let volumes: Vec<&str> = spec
        .volumes
        .iter()
        .flatten()
        .map(|v| v.name.as_str())
        .collect();
    assert_eq!(
        volumes,
        [
            names::STATE_VOLUME,
            names::SECRETS_VOLUME,
            names::TOKEN_VOLUME
        ]
    );
}

#[test]
fn a_pod_without_annotations_is_not_asking() {
    let mut pod = PodBuilder::bare().build();
    pod.metadata.annotations = None;
    assert_eq!(
        mutate(&pod, "team-a", &settings()),
        Ok(None),
        "not asked for"
    );
}

#[test]
fn annotation_keys_are_escaped_as_rfc_6901_says() {
    let pod = PodBuilder::new()
        .vault(&[
            ("role", "app"),
            ("agent-inject-secret-db", "secret/data/db"),
        ])
        .build();
    let ops = serde_json::to_value(&mutated(&pod).patch).expect("json");
    assert_eq!(
        ops[0]["path"],
        "/metadata/annotations/vault.hashicorp.com~1agent-inject-status"
    );
}

#[test]
fn mutating_twice_gives_no_patch_and_the_same_input_the_same_bytes() {
    let pod = PodBuilder::new()
        .vault(&[
            ("role", "app"),
            ("agent-inject-secret-b", "secret/data/b"),
            ("agent-inject-secret-a", "secret/data/a"),
            ("agent-inject-secret-c", "secret/data/c"),
            ("secret-volume-path-c", "/etc/c"),
            ("secret-volume-path-a", "/etc/a"),
        ])
        .build();
    let first = serde_json::to_vec(&mutated(&pod).patch).expect("json");
    for _ in 0..20 {
        assert_eq!(
            serde_json::to_vec(&mutated(&pod).patch).expect("json"),
            first
        );
    }
    let after = apply(&pod, &mutated(&pod));
    assert_eq!(mutate(&after, "team-a", &settings()), Ok(None));
}

#[test]
fn pods_not_pending_or_not_asking_are_left_alone() {
    let running = PodBuilder::new()
        .vault(&[
            ("role", "app"),
            ("agent-inject-secret-db", "secret/data/db"),
        ])
        .build();
    let mut running = running;
    running.status = Some(k8s_openapi::api::core::v1::PodStatus {
        phase: Some("Running".into()),
        ..Default::default()
    });
    assert_eq!(mutate(&running, "team-a", &settings()), Ok(None));
    let off = PodBuilder::new()
        .annotate("vault.hashicorp.com/agent-inject", "false")
        .build();
    assert_eq!(mutate(&off, "team-a", &settings()), Ok(None));
}

#[test]
fn the_agent_runs_hardened_with_small_requests() {
    let pod = PodBuilder::new()
        .hydrant(&[("role", "app"), ("secret-db", "secret/data/db")])
        .build();
    let spec = apply(&pod, &mutated(&pod)).spec.expect("spec");
    let agent = container(&spec.init_containers, "vault-agent");
    let sc = agent.security_context.as_ref().expect("security context");
    assert_eq!(sc.run_as_non_root, Some(true));
    assert_eq!(sc.run_as_user, Some(65532));
    assert_eq!(sc.read_only_root_filesystem, Some(true));
    assert_eq!(sc.allow_privilege_escalation, Some(false));
    assert_eq!(
        sc.capabilities.as_ref().and_then(|c| c.drop.clone()),
        Some(vec!["ALL".to_string()])
    );
    assert_eq!(
        sc.seccomp_profile.as_ref().map(|s| s.type_.as_str()),
        Some("RuntimeDefault")
    );
    let resources = agent.resources.as_ref().expect("resources");
    let requests = resources.requests.as_ref().expect("requests");
    assert_eq!(requests["cpu"].0, "10m");
    assert_eq!(requests["memory"].0, "16Mi");
    // A memory limit, so that a ResourceQuota covering limits admits the pod; no CPU limit.
    let limits = resources.limits.as_ref().expect("limits");
    assert_eq!(limits.keys().collect::<Vec<_>>(), ["memory"]);
    assert_eq!(limits["memory"].0, "128Mi");
}

/// A request above its limit, from annotations or from the settings they refine, is refused
/// naming the annotations to change, instead of a pod the API server refuses.
#[test]
fn a_request_above_its_limit_is_refused_naming_the_annotations() {
    let vault = |pairs: &[(&str, &str)]| {
        PodBuilder::new()
            .vault(&[
                ("role", "app"),
                ("agent-inject-secret-db", "secret/data/db"),
            ])
            .vault(pairs)
            .build()
    };
    let denial = denied(&vault(&[("agent-requests-mem", "256Mi")]));
    assert_eq!(denial.reason, Reason::Conflict);
    assert_eq!(
        denial.message,
        "the agent's memory request 256Mi is above its limit 128Mi, which Kubernetes refuses; set vault.hashicorp.com/agent-requests-mem and vault.hashicorp.com/agent-limits-mem so that the request is at most the limit (an empty limit leaves it out), or change the injector's defaults"
    );
    let denial = denied(&vault(&[
        ("agent-requests-cpu", "1"),
        ("agent-limits-cpu", "500m"),
    ]));
    assert!(
        denial
            .message
            .starts_with("the agent's cpu request 1 is above its limit 500m"),
        "{}",
        denial.message
    );
    let denial = denied(&vault(&[
        ("agent-requests-ephemeral", "2Gi"),
        ("agent-limits-ephemeral", "1Gi"),
    ]));
    assert!(
        denial
            .message
            .contains("agent-requests-ephemeral and vault.hashicorp.com/agent-limits-ephemeral"),
        "{}",
        denial.message
    );
    // Equal is fine, a larger limit or none too; vault-k8s's own default request/limit fit.
    mutated(&vault(&[("agent-requests-mem", "128Mi")]));
    mutated(&vault(&[
        ("agent-requests-mem", "256Mi"),
        ("agent-limits-mem", ""),
    ]));
    mutated(&vault(&[
        ("agent-requests-mem", "1Gi"),
        ("agent-limits-mem", "1024Mi"),
    ]));
    let pod = PodBuilder::new()
        .hydrant(&[
            ("role", "app"),
            ("secret-db", "secret/data/db"),
            ("cpu-request", "2"),
            ("cpu-limit", "1"),
        ])
        .build();
    assert!(
        denied(&pod)
            .message
            .contains("hydrant.dev/cpu-request and hydrant.dev/cpu-limit")
    );
    // The settings' init resources matter only in the modes with an init container.
    let mut s = settings();
    s.init_resources.memory_request = Some("1Gi".into());
    let native = PodBuilder::new()
        .hydrant(&[("role", "app"), ("secret-db", "secret/data/db")])
        .build();
    mutate(&native, "team-a", &s).expect("native mode uses the sidecar's");
    let init = PodBuilder::new()
        .hydrant(&[
            ("role", "app"),
            ("secret-db", "secret/data/db"),
            ("mode", "init-only"),
        ])
        .build();
    assert!(mutate(&init, "team-a", &s).is_err());
}

/// The init resources are the init container's; native mode's one container lives as long as
/// the pod, so it takes the sidecar's (the chart's agent.resources.sidecar).
#[test]
fn native_mode_takes_the_sidecar_resources_and_init_mode_the_init_ones() {
    let mut settings = settings();
    settings.init_resources.memory_request = Some("11Mi".into());
    settings.sidecar_resources.memory_request = Some("22Mi".into());
    let memory = |mode: &str| {
        let pod = PodBuilder::new()
            .hydrant(&[
                ("role", "app"),
                ("secret-db", "secret/data/db"),
                ("mode", mode),
            ])
            .build();
        let mutation = injector::mutate(&pod, "team-a", &settings)
            .expect("allowed")
            .expect("mutated");
        let spec = apply(&pod, &mutation).spec.expect("spec");
        // The first init container is the agent: vault-agent-init, or native mode's vault-agent.
        let agent = &spec.init_containers.as_ref().expect("init containers")[0];
        assert!(agent.name.starts_with("vault-agent"), "{}", agent.name);
        let resources = agent.resources.clone().expect("resources");
        resources.requests.expect("requests")["memory"].0.clone()
    };
    assert_eq!(memory("native"), "22Mi");
    assert_eq!(memory("init-only"), "11Mi");
}

#[test]
fn openshift_settings_leave_the_ids_out() {
    let pod = PodBuilder::new()
        .hydrant(&[("role", "app"), ("secret-db", "secret/data/db")])
        .build();
    let mut s = settings();
    s.run_as.omit = true;
    let mutation = mutate(&pod, "team-a", &s).expect("allowed").expect("patch");
    let spec = apply(&pod, &mutation).spec.expect("spec");
    let sc = container(&spec.init_containers, "vault-agent")
        .security_context
        .clone()
        .expect("sc");
    assert_eq!((sc.run_as_user, sc.run_as_group), (None, None));
    assert_eq!(sc.run_as_non_root, Some(true));
}

#[test]
fn vault_k8s_resource_and_identity_annotations_apply() {
    let pod = PodBuilder::new()
        .vault(&[
            ("role", "app"),
            ("agent-inject-secret-db", "secret/data/db"),
            ("agent-pre-populate-only", "true"),
            ("agent-limits-mem", "64Mi"),
            ("agent-requests-cpu", ""),
            ("agent-run-as-user", "1000"),
            ("agent-run-as-group", "0"),
        ])
        .build();
    let spec = apply(&pod, &mutated(&pod)).spec.expect("spec");
    let init = container(&spec.init_containers, "vault-agent-init");
    let resources = init.resources.as_ref().expect("resources");
    assert_eq!(
        resources.limits.as_ref().expect("limits")["memory"].0,
        "64Mi"
    );
    assert!(
        !resources
            .requests
            .as_ref()
            .expect("requests")
            .contains_key("cpu"),
        "empty value omits the key"
    );
    let sc = init.security_context.as_ref().expect("sc");
    assert_eq!(
        (sc.run_as_user, sc.run_as_group, sc.run_as_non_root),
        (Some(1000), Some(0), Some(false))
    );
    let pod = PodBuilder::new()
        .vault(&[
            ("role", "app"),
            ("agent-inject-secret-db", "secret/data/db"),
            ("agent-set-security-context", "false"),
        ])
        .build();
    let spec = apply(&pod, &mutated(&pod)).spec.expect("spec");
    assert!(
        container(&spec.init_containers, "vault-agent")
            .security_context
            .is_none()
    );
}

#[test]
fn the_token_comes_from_the_app_mount_a_named_volume_or_a_projection() {
    // No token mounted (automountServiceAccountToken: false): one is projected for the agent.
    let pod = PodBuilder::bare()
        .hydrant(&[("role", "app"), ("secret-db", "secret/data/db")])
        .build();
    let spec = apply(&pod, &mutated(&pod)).spec.expect("spec");
    let config = agent_config(container(&spec.init_containers, "vault-agent"));
    assert_eq!(
        config.auth.jwt_path.as_deref().and_then(|p| p.to_str()),
        Some("/var/run/secrets/hydrant.dev/serviceaccount/token")
    );
    // An audience asked for: projected for it.
    let pod = PodBuilder::new()
        .hydrant(&[
            ("role", "app"),
            ("secret-db", "secret/data/db"),
            ("auth-method", "jwt"),
            ("token-audience", "vault"),
        ])
        .build();
    let spec = apply(&pod, &mutated(&pod)).spec.expect("spec");
    let token = spec
        .volumes
        .iter()
        .flatten()
        .find(|v| v.name == names::TOKEN_VOLUME)
        .expect("token volume");
    let projection = token
        .projected
        .as_ref()
        .and_then(|p| p.sources.as_ref())
        .expect("sources")[0]
        .service_account_token
        .clone()
        .expect("token projection");
    assert_eq!(projection.audience.as_deref(), Some("vault"));
    // approle needs none.
    let pod = PodBuilder::bare()
        .vault(&[
            ("auth-type", "approle"),
            ("auth-config-role-id-file-path", "/vault/custom/role-id"),
            ("auth-config-secret-id-file-path", "/vault/custom/secret-id"),
            ("agent-extra-secret", "approle-creds"),
            ("agent-inject-secret-db", "secret/data/db"),
        ])
        .build();
    let spec = apply(&pod, &mutated(&pod)).spec.expect("spec");
    assert!(
        !spec
            .volumes
            .iter()
            .flatten()
            .any(|v| v.name == names::TOKEN_VOLUME)
    );
    let agent = container(&spec.init_containers, "vault-agent");
    assert!(
        agent
            .volume_mounts
            .iter()
            .flatten()
            .any(|m| m.mount_path == "/vault/custom")
    );
    assert_eq!(agent_config(agent).auth.method, AuthMethod::Approle);
}

#[test]
fn app_init_containers_after_the_agent_and_all_of_a_vault_k8s_pods_get_the_files() {
    let pod = PodBuilder::new()
        .init_container("migrate")
        .hydrant(&[("role", "app"), ("secret-db", "secret/data/db")])
        .build();
    let spec = apply(&pod, &mutated(&pod)).spec.expect("spec");
    let inits = spec.init_containers.expect("init containers");
    assert_eq!(
        inits.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
        ["vault-agent", "migrate"]
    );
    assert!(
        inits[1]
            .volume_mounts
            .iter()
            .flatten()
            .any(|m| m.name == "vault-secrets")
    );

    let pod = PodBuilder::new()
        .init_container("migrate")
        .vault(&[
            ("role", "app"),
            ("agent-inject-secret-db", "secret/data/db"),
            ("agent-pre-populate-only", "true"),
        ])
        .build();
    let spec = apply(&pod, &mutated(&pod)).spec.expect("spec");
    let inits = spec.init_containers.expect("init containers");
    assert_eq!(
        inits.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
        ["migrate", "vault-agent-init"]
    );
    // vault-k8s (GH-91) mounts the volume in an app init container that runs before the
    // agent too: it may write into it, or only expect the mount.
    assert!(
        inits[0]
            .volume_mounts
            .iter()
            .flatten()
            .any(|m| m.name == "vault-secrets" && m.mount_path == "/vault/secrets"),
        "{:?}",
        inits[0].volume_mounts
    );

    // hydrant's own family mounts the files only where they exist already.
    let pod = PodBuilder::new()
        .init_container("migrate")
        .hydrant(&[
            ("role", "app"),
            ("secret-db", "secret/data/db"),
            ("mode", "init-and-sidecar"),
        ])
        .build();
    let spec = apply(&pod, &mutated(&pod)).spec.expect("spec");
    let inits = spec.init_containers.expect("init containers");
    assert_eq!(
        inits.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
        ["migrate", "vault-agent-init"]
    );
    assert!(
        inits[0].volume_mounts.is_none(),
        "it runs before the files exist"
    );
}

#[test]
fn custom_mount_paths_get_their_own_volumes_in_sorted_order() {
    let pod = PodBuilder::new()
        .vault(&[
            ("role", "app"),
            ("agent-inject-secret-z", "secret/data/z"),
            ("secret-volume-path-z", "/etc/z"),
            ("agent-inject-secret-a", "secret/data/a"),
            ("secret-volume-path-a", "/etc/a"),
            ("agent-inject-file-a", "/conf/a.env"),
        ])
        .build();
    let spec = apply(&pod, &mutated(&pod)).spec.expect("spec");
    let mounts: Vec<(String, String)> = spec.containers[0]
        .volume_mounts
        .iter()
        .flatten()
        .map(|m| (m.name.clone(), m.mount_path.clone()))
        .collect();
    assert!(
        mounts.contains(&("vault-secrets-custom-0".into(), "/etc/a".into())),
        "{mounts:?}"
    );
    assert!(
        mounts.contains(&("vault-secrets-custom-1".into(), "/etc/z".into())),
        "{mounts:?}"
    );
    let config = agent_config(container(&spec.init_containers, "vault-agent"));
    let destinations: Vec<&str> = config
        .secrets
        .iter()
        .map(|s| s.destination.to_str().expect("utf-8"))
        .collect();
    assert_eq!(destinations, ["/etc/a/conf/a.env", "/etc/z/z"]);
}

#[test]
fn json_patch_annotations_apply_to_the_agent_container() {
    let pod = PodBuilder::new()
        .vault(&[
            ("role", "app"),
            ("agent-inject-secret-db", "secret/data/db"),
            (
                "agent-json-patch",
                r#"[{"op": "add", "path": "/env/-", "value": {"name": "EXTRA", "value": "1"}}]"#,
            ),
        ])
        .build();
    let spec = apply(&pod, &mutated(&pod)).spec.expect("spec");
    let env = container(&spec.init_containers, "vault-agent")
        .env
        .clone()
        .expect("env");
    assert!(env.iter().any(|e| e.name == "EXTRA"));
    let pod = PodBuilder::new()
        .vault(&[
            ("role", "app"),
            ("agent-inject-secret-db", "secret/data/db"),
            (
                "agent-json-patch",
                r#"[{"op": "remove", "path": "/nothing"}]"#,
            ),
        ])
        .build();
    let denial = denied(&pod);
    assert!(
        denial
            .message
            .starts_with("vault.hashicorp.com/agent-json-patch: does not apply"),
        "{}",
        denial.message
    );
}

/// The attack of the hardening issue: a value copied into itself doubles at each copy (100
/// bytes, then 1.6 MB after 14 copies); hydrant refuses the copy that would pass its bound.
fn doubling_patch(copies: usize) -> String {
    let mut ops = vec![json!({"op": "add", "path": "/o", "value": {"v": "x".repeat(100)}})];
    ops.extend(
        (0..copies).map(|n| json!({"op": "copy", "from": "/o", "path": format!("/o/c{n}")})),
    );
    Value::Array(ops).to_string()
}

#[test]
fn a_patch_that_doubles_a_value_is_refused_naming_the_annotation_and_the_bound() {
    let mut settings = settings();
    settings.mode = Mode::InitAndSidecar;
    for annotation in ["agent-json-patch", "agent-init-json-patch"] {
        let pod = PodBuilder::new()
            .vault(&[
                ("role", "app"),
                ("agent-inject-secret-db", "secret/data/db"),
                (annotation, &doubling_patch(14)),
            ])
            .build();
        let denial = mutate(&pod, "team-a", &settings).expect_err("denied");
        assert_eq!(denial.reason, Reason::BadAnnotation, "{}", denial.message);
        assert!(
            denial.message.starts_with(&format!(
                "vault.hashicorp.com/{annotation}: operation 13 would make the agent container larger than 512 KiB"
            )),
            "{}",
            denial.message
        );
    }
    // A few copies stay well within the bound and apply.
    let pod = PodBuilder::new()
        .vault(&[
            ("role", "app"),
            ("agent-inject-secret-db", "secret/data/db"),
            ("agent-json-patch", &doubling_patch(3)),
        ])
        .build();
    apply(&pod, &mutated(&pod));
}

#[test]
fn a_json_patch_of_more_than_64_operations_is_refused() {
    let ops = |n: usize| {
        let ops: Vec<Value> = (0..n)
            .map(|i| json!({"op": "add", "path": "/env/-", "value": {"name": format!("E{i}"), "value": "1"}}))
            .collect();
        Value::Array(ops).to_string()
    };
    let pod = |n: usize| {
        PodBuilder::new()
            .vault(&[
                ("role", "app"),
                ("agent-inject-secret-db", "secret/data/db"),
                ("agent-json-patch", &ops(n)),
            ])
            .build()
    };
    apply(&pod(64), &mutated(&pod(64)));
    let denial = denied(&pod(65));
    assert_eq!(
        denial.message,
        "vault.hashicorp.com/agent-json-patch: has 65 operations, over the 64 hydrant applies from one annotation; patch only what you need, such as resources or securityContext"
    );
}

#[test]
fn a_patch_over_what_the_api_server_stores_is_refused() {
    // Annotations are bounded by the API server, not by `hydrant inject`: four templates of
    // 400 KB give an agent configuration, and so a patch, over 1.5 MiB.
    let text = "y".repeat(400_000);
    let pairs: Vec<(String, &str)> = (0..4)
        .map(|i| (format!("template-t{i}"), text.as_str()))
        .chain([("role".to_owned(), "app")])
        .collect();
    let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    let pod = PodBuilder::new().hydrant(&pairs).build();
    let denial = denied(&pod);
    assert_eq!(denial.reason, Reason::TooLarge, "{}", denial.message);
    assert!(
        denial
            .message
            .contains("KiB, over the 1536 KiB hydrant answers"),
        "{}",
        denial.message
    );
    // hydrant's family has no patch annotations: the advice names none.
    assert!(
        denial.message.ends_with("make the templates smaller"),
        "{}",
        denial.message
    );
}

#[test]
fn each_denial_names_what_to_change() {
    let base = || PodBuilder::new();
    let cases: Vec<(Pod, &str, &str)> = vec![
        (
            base()
                .vault(&[("agent-inject-secret-db", "secret/data/db")])
                .build(),
            "missing_annotation",
            "vault.hashicorp.com/role is required",
        ),
        (
            base().vault(&[("role", "app")]).build(),
            "missing_annotation",
            "no file is asked for",
        ),
        (
            base()
                .vault(&[
                    ("role", "app"),
                    ("agent-inject-secret-db", "secret/data/db"),
                    ("agent-inject-containers", "app, nope"),
                ])
                .build(),
            "bad_annotation",
            "the pod has no container \"nope\"",
        ),
        (
            base()
                .vault(&[
                    ("role", "app"),
                    ("agent-inject-secret-db", "secret/data/db"),
                    ("agent-inject-file-db", "../../etc/passwd"),
                ])
                .build(),
            "bad_annotation",
            "without '..'",
        ),
        (
            base()
                .vault(&[
                    ("role", "app"),
                    ("agent-inject-secret-db", "secret/data/db"),
                    ("agent-run-as-same-user", "true"),
                ])
                .build(),
            "bad_annotation",
            "sets no runAsUser",
        ),
        (
            base()
                .vault(&[
                    ("role", "app"),
                    ("agent-inject-secret-db", "secret/data/db"),
                    ("agent-share-process-namespace", "true"),
                ])
                .set("/spec/serviceAccountName", json!("app"))
                .build()
                .with_share(false),
            "bad_annotation",
            "shareProcessNamespace: false",
        ),
        (
            base()
                .hydrant(&[("role", "app"), ("secret-db", "secret/data/db")])
                .build()
                .with_volume("vault-secrets"),
            "conflict",
            "already has a volume named vault-secrets",
        ),
        (
            base()
                .vault(&[
                    ("role", "app"),
                    ("agent-inject-secret-db", "secret/data/db"),
                    ("service", "vault:8200"),
                ])
                .build(),
            "invalid_config",
            "vault.address",
        ),
    ];
    for (pod, reason, text) in cases {
        let denial = denied(&pod);
        assert_eq!(denial.reason.label(), reason, "{}", denial.message);
        assert!(
            denial.message.contains(text),
            "{} does not contain {text}",
            denial.message
        );
    }
    let pod = base()
        .vault(&[
            ("role", "app"),
            ("agent-inject-secret-db", "secret/data/db"),
        ])
        .build();
    let denial = mutate(&pod, "kube-system", &settings()).expect_err("excluded");
    assert_eq!(denial.reason, Reason::ExcludedNamespace);
    assert!(denial.message.contains("kube-system"));
}

#[test]
fn run_as_settings_apply_when_no_annotation_overrides() {
    let pod = PodBuilder::new()
        .hydrant(&[("role", "app"), ("secret-db", "secret/data/db")])
        .build();
    let mut s = settings();
    s.run_as = RunAsSettings {
        user: Some(100),
        group: Some(1000),
        omit: false,
    };
    let mutation = mutate(&pod, "team-a", &s).expect("allowed").expect("patch");
    let spec = apply(&pod, &mutation).spec.expect("spec");
    let sc = container(&spec.init_containers, "vault-agent")
        .security_context
        .clone()
        .expect("sc");
    assert_eq!((sc.run_as_user, sc.run_as_group), (Some(100), Some(1000)));
}

trait PodExt {
    fn with_share(self, share: bool) -> Pod;
    fn with_volume(self, name: &str) -> Pod;
}

impl PodExt for Pod {
    fn with_share(mut self, share: bool) -> Pod {
        self.spec.as_mut().expect("spec").share_process_namespace = Some(share);
        self
    }

    fn with_volume(mut self, name: &str) -> Pod {
        self.spec
            .as_mut()
            .expect("spec")
            .volumes
            .get_or_insert_with(Vec::new)
            .push(k8s_openapi::api::core::v1::Volume {
                name: name.to_owned(),
                ..Default::default()
            });
        self
    }
}

#[test]
fn the_cluster_vault_ca_goes_to_agents_unless_the_pod_names_its_own_or_checks_nothing() {
    const CA: &str = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
    let mut s = settings();
    s.vault_ca_pem = Some(CA.to_owned());
    let config_of = |pod: &Pod, s: &InjectorSettings| {
        let mutation = mutate(pod, "team-a", s).expect("allowed").expect("patch");
        let spec = apply(pod, &mutation).spec.expect("spec");
        agent_config(container(&spec.init_containers, "vault-agent"))
    };
    let plain = PodBuilder::new().vault(&[
        ("role", "app"),
        ("agent-inject-secret-db", "secret/data/db"),
    ]);

    let config = config_of(&plain.clone().build(), &s);
    assert_eq!(config.vault.ca_cert_pem.as_deref(), Some(CA));
    assert_eq!(config.vault.ca_cert, None);

    let own = plain
        .clone()
        .vault(&[("ca-cert", "/vault/tls/ca.crt")])
        .build();
    let config = config_of(&own, &s);
    assert_eq!(
        config.vault.ca_cert.as_deref(),
        Some("/vault/tls/ca.crt".as_ref())
    );
    assert_eq!(config.vault.ca_cert_pem, None, "the pod's own CA file wins");

    let skip = plain.clone().vault(&[("tls-skip-verify", "true")]).build();
    assert_eq!(config_of(&skip, &s).vault.ca_cert_pem, None);

    let http = plain
        .clone()
        .vault(&[("service", "http://vault.dev:8200")])
        .build();
    assert_eq!(
        config_of(&http, &s).vault.ca_cert_pem,
        None,
        "no TLS, no CA"
    );

    assert_eq!(
        config_of(&plain.build(), &settings()).vault.ca_cert_pem,
        None
    );
}

/// The value of an environment variable of a container, if it has it.
fn env_value<'a>(container: &'a Container, name: &str) -> Option<&'a str> {
    container
        .env
        .iter()
        .flatten()
        .find(|e| e.name == name)
        .and_then(|e| e.value.as_deref())
}

/// vault-k8s's injector-wide defaults (Vault namespace, proxy, revoke-on-shutdown, TLS server
/// name, run-as-same-user, the agents' log level and format) apply to pods of either family
/// that do not say; a pod's annotation still wins.
#[test]
fn cluster_wide_settings_apply_unless_the_pod_says_otherwise() {
    let mut s = settings();
    s.vault_namespace = Some("platform".into());
    s.proxy_address = Some("http://proxy:3128".into());
    s.revoke_on_shutdown = true;
    s.tls_server_name = Some("vault.internal".into());
    s.run_as_same_user = true;
    s.agent_log_level = Some("debug".into());
    s.agent_log_format = Some("json".into());
    let agent_of = |pod: &Pod| {
        let mutation = mutate(pod, "team-a", &s).expect("allowed").expect("patch");
        let spec = apply(pod, &mutation).spec.expect("spec");
        container(&spec.init_containers, "vault-agent").clone()
    };
    let app_user = |pod: PodBuilder| {
        let mut pod = pod.build();
        pod.spec.as_mut().expect("spec").containers[0].security_context =
            Some(k8s_openapi::api::core::v1::SecurityContext {
                run_as_user: Some(4242),
                ..Default::default()
            });
        pod
    };

    let pod = app_user(PodBuilder::new().vault(&[
        ("role", "app"),
        ("agent-inject-secret-db", "secret/data/db"),
    ]));
    let agent = agent_of(&pod);
    let config = agent_config(&agent);
    assert_eq!(config.vault.namespace.as_deref(), Some("platform"));
    assert_eq!(
        config.vault.tls_server_name.as_deref(),
        Some("vault.internal")
    );
    assert!(config.revoke_on_shutdown);
    assert_eq!(env_value(&agent, "HTTPS_PROXY"), Some("http://proxy:3128"));
    assert_eq!(env_value(&agent, "HYDRANT_LOG"), Some("debug"));
    assert_eq!(env_value(&agent, "HYDRANT_LOG_FORMAT"), Some("json"));
    let sc = agent.security_context.expect("sc");
    assert_eq!(sc.run_as_user, Some(4242));

    // The same settings reach a hydrant.dev pod.
    let pod =
        app_user(PodBuilder::new().hydrant(&[("role", "app"), ("secret-db", "secret/data/db")]));
    let agent = agent_of(&pod);
    assert_eq!(
        agent_config(&agent).vault.namespace.as_deref(),
        Some("platform")
    );
    assert_eq!(env_value(&agent, "HYDRANT_LOG"), Some("debug"));

    // Every annotation wins over its setting.
    let pod = PodBuilder::new()
        .vault(&[
            ("role", "app"),
            ("agent-inject-secret-db", "secret/data/db"),
            ("namespace", "team-a"),
            ("proxy-address", "http://other:8080"),
            ("agent-revoke-on-shutdown", "false"),
            ("tls-server-name", "vault.team-a"),
            ("agent-run-as-same-user", "false"),
            ("log-level", "error"),
            ("log-format", "standard"),
        ])
        .build();
    let agent = agent_of(&pod);
    let config = agent_config(&agent);
    assert_eq!(config.vault.namespace.as_deref(), Some("team-a"));
    assert_eq!(
        config.vault.tls_server_name.as_deref(),
        Some("vault.team-a")
    );
    assert!(!config.revoke_on_shutdown);
    assert_eq!(env_value(&agent, "HTTPS_PROXY"), Some("http://other:8080"));
    assert_eq!(env_value(&agent, "HYDRANT_LOG"), Some("error"));
    assert_eq!(env_value(&agent, "HYDRANT_LOG_FORMAT"), Some("plain"));
    assert_ne!(agent.security_context.expect("sc").run_as_user, Some(4242));

    // A pod naming its agent's user is not run as its app's; one naming none, with an app
    // running as nobody in particular, is refused naming the setting.
    let pod = PodBuilder::new()
        .vault(&[
            ("role", "app"),
            ("agent-inject-secret-db", "secret/data/db"),
            ("agent-run-as-user", "7"),
        ])
        .build();
    assert_eq!(
        agent_of(&pod).security_context.expect("sc").run_as_user,
        Some(7)
    );
    let pod = PodBuilder::new()
        .vault(&[
            ("role", "app"),
            ("agent-inject-secret-db", "secret/data/db"),
        ])
        .build();
    let denial = mutate(&pod, "team-a", &s).expect_err("no app user");
    assert!(
        denial
            .message
            .starts_with("--run-as-same-user: the pod's first container sets no runAsUser"),
        "{}",
        denial.message
    );
}

/// Every agent container gets `NAMESPACE`, `HOST_IP` and `POD_IP` from the downward API, first
/// and in vault-k8s's order, so templates and `agent-json-patch` operations written for it work.
#[test]
fn agent_containers_get_the_pods_namespace_and_ips_as_vault_k8s_gives_them() {
    for mode in ["native", "init-and-sidecar", "init-only", "sidecar-only"] {
        let pod = PodBuilder::new()
            .hydrant(&[
                ("role", "app"),
                ("secret-db", "secret/data/db"),
                ("mode", mode),
            ])
            .build();
        let spec = apply(&pod, &mutated(&pod)).spec.expect("spec");
        let agents = spec
            .init_containers
            .iter()
            .flatten()
            .chain(&spec.containers)
            .filter(|c| c.name.starts_with("vault-agent"));
        let mut seen = 0;
        for agent in agents {
            seen += 1;
            let env = agent.env.as_ref().expect("env");
            let downward: Vec<(&str, &str)> = env[..3]
                .iter()
                .map(|e| {
                    let field = e
                        .value_from
                        .as_ref()
                        .and_then(|v| v.field_ref.as_ref())
                        .map(|f| f.field_path.as_str())
                        .expect("a field reference");
                    (e.name.as_str(), field)
                })
                .collect();
            assert_eq!(
                downward,
                [
                    ("NAMESPACE", "metadata.namespace"),
                    ("HOST_IP", "status.hostIP"),
                    ("POD_IP", "status.podIP")
                ],
                "{mode}: {}",
                agent.name
            );
        }
        assert!(seen > 0, "{mode}");
    }
}

/// The ids a pod's agent runs as under `s`: (runAsUser, runAsGroup), or `None` without a
/// security context.
fn agent_ids(pod: &Pod, s: &InjectorSettings) -> Option<(Option<i64>, Option<i64>)> {
    let mutation = mutate(pod, "team-a", s).expect("allowed").expect("patch");
    let spec = apply(pod, &mutation).spec.expect("spec");
    let agent = spec
        .init_containers
        .iter()
        .flatten()
        .chain(&spec.containers)
        .find(|c| c.name.starts_with("vault-agent"))
        .expect("an agent");
    agent
        .security_context
        .as_ref()
        .map(|sc| (sc.run_as_user, sc.run_as_group))
}

/// vault-k8s's pods get vault-k8s's ids (uid 100, gid 1000: apps read 0640 files through
/// group 1000), hydrant's pods the image's nonroot 65532; --run-as-user/--run-as-group set them
/// for both.
#[test]
fn each_family_gets_its_own_default_ids_unless_the_injector_names_them() {
    let vault = PodBuilder::new()
        .vault(&[
            ("role", "app"),
            ("agent-inject-secret-db", "secret/data/db"),
        ])
        .build();
    let hydrant = PodBuilder::new()
        .hydrant(&[("role", "app"), ("secret-db", "secret/data/db")])
        .build();
    let s = settings();
    assert_eq!(agent_ids(&vault, &s), Some((Some(100), Some(1000))));
    assert_eq!(agent_ids(&hydrant, &s), Some((Some(65532), Some(65532))));
    let mut s = settings();
    s.run_as.user = Some(2000);
    assert_eq!(agent_ids(&vault, &s), Some((Some(2000), Some(1000))));
    assert_eq!(agent_ids(&hydrant, &s), Some((Some(2000), Some(65532))));
}

/// vault-k8s's `agent-set-security-context: "false"` wins over its id annotations; under
/// --omit-run-as (vault-k8s's -set-security-context=false) a vault-k8s pod that names one id
/// gets the other's default, as vault-k8s keeps it, and one that names none gets none.
#[test]
fn vault_k8s_security_context_rules_hold_under_omit_run_as_and_set_security_context() {
    let vault = |pairs: &[(&str, &str)]| {
        PodBuilder::new()
            .vault(&[
                ("role", "app"),
                ("agent-inject-secret-db", "secret/data/db"),
            ])
            .vault(pairs)
            .build()
    };
    let pod = vault(&[
        ("agent-set-security-context", "false"),
        ("agent-run-as-user", "1234"),
    ]);
    assert_eq!(agent_ids(&pod, &settings()), None);
    let pod = vault(&[
        ("agent-set-security-context", "false"),
        ("agent-run-as-same-user", "true"),
    ]);
    assert_eq!(agent_ids(&pod, &settings()), None);

    let mut omit = settings();
    omit.run_as.omit = true;
    assert_eq!(agent_ids(&vault(&[]), &omit), Some((None, None)));
    let pod = vault(&[("agent-run-as-user", "1234")]);
    assert_eq!(agent_ids(&pod, &omit), Some((Some(1234), Some(1000))));
    let pod = vault(&[("agent-run-as-group", "3000")]);
    assert_eq!(agent_ids(&pod, &omit), Some((Some(100), Some(3000))));
    let pod = vault(&[("agent-set-security-context", "true")]);
    assert_eq!(agent_ids(&pod, &omit), Some((Some(100), Some(1000))));
    // hydrant's own family gets only what it names.
    let pod = PodBuilder::new()
        .hydrant(&[
            ("role", "app"),
            ("secret-db", "secret/data/db"),
            ("run-as-user", "1234"),
        ])
        .build();
    assert_eq!(agent_ids(&pod, &omit), Some((Some(1234), None)));
}

/// A command that signals the app's processes by name gets the process namespace shared, as
/// vault-k8s's `agent-share-process-namespace` would; a command only a shell can run is refused
/// naming it and the image variant with a shell, which runs it.
#[test]
fn commands_signal_by_name_with_shared_processes_and_shell_commands_need_the_shell_image() {
    let with_command = |command: &str| {
        PodBuilder::new()
            .vault(&[
                ("role", "app"),
                ("agent-inject-secret-db", "secret/data/db"),
                ("agent-inject-command-db", command),
            ])
            .build()
    };
    let pod = with_command("pkill -HUP nginx");
    let patched = apply(&pod, &mutated(&pod));
    let spec = patched.spec.expect("spec");
    assert_eq!(spec.share_process_namespace, Some(true));
    let config = agent_config(container(&spec.init_containers, "vault-agent"));
    assert_eq!(
        config.secrets[0].command.as_deref(),
        Some(
            &[
                "/usr/local/bin/hydrant",
                "signal",
                "--pattern",
                "nginx",
                "HUP"
            ]
            .map(String::from)[..]
        )
    );
    // A process ID keeps the pod's own view.
    let pod = with_command("kill -s HUP 1");
    assert_eq!(
        apply(&pod, &mutated(&pod))
            .spec
            .expect("spec")
            .share_process_namespace,
        None
    );
    let denial = denied(&with_command("kill -HUP $(pidof nginx)").with_share(false));
    assert_eq!(denial.reason, Reason::Conflict);

    let denial = denied(&with_command("nginx -s reload && echo done"));
    assert_eq!(denial.reason, Reason::UnsupportedAnnotation);
    assert_eq!(
        denial.message,
        "vault.hashicorp.com/agent-inject-command-db: \"nginx -s reload && echo done\" cannot run in hydrant's image ghcr.io/hydrant-dev/hydrant:0.1.0: it needs a shell; signalling commands (kill -HUP $(pidof app), pkill -HUP app, kill -s HUP 1) work as they are, a program of the pod's own runs by its absolute path under a volume the agent mounts, and anything else runs in the image variant with a shell, ghcr.io/hydrant-dev/hydrant:0.1.0-shell (the injector's --agent-image)"
    );
    let mut s = settings();
    s.agent_image = "ghcr.io/hydrant-dev/hydrant:0.1.0-shell".into();
    let pod = with_command("nginx -s reload && echo done");
    let mutation = mutate(&pod, "team-a", &s).expect("allowed").expect("patch");
    let spec = apply(&pod, &mutation).spec.expect("spec");
    let config = agent_config(container(&spec.init_containers, "vault-agent"));
    assert_eq!(
        config.secrets[0].command.as_deref(),
        Some(&["/bin/sh", "-c", "nginx -s reload && echo done"].map(String::from)[..])
    );
    // hydrant.dev/image names the variant for one pod.
    let pod = PodBuilder::new()
        .hydrant(&[
            ("role", "app"),
            ("secret-db", "secret/data/db"),
            ("command-db", "echo changed > /tmp/x"),
            ("image", "registry.example/hydrant:0.1.0-shell"),
        ])
        .build();
    mutated(&pod);
}

/// vault-k8s's `agent-inject-token`: the token in `token` under the secrets volume's mount path,
/// with the file sink's default mode; a pod with a role and the token but no secret is injected,
/// as vault-k8s injects it; a secret whose file would land on the token's path is refused.
#[test]
fn agent_inject_token_keeps_the_token_in_the_secrets_volume_without_any_secret() {
    let pod = PodBuilder::new()
        .vault(&[("role", "app"), ("agent-inject-token", "true")])
        .build();
    let after = apply(&pod, &mutated(&pod));
    let spec = after.spec.as_ref().expect("spec");
    let config = agent_config(container(&spec.init_containers, "vault-agent"));
    assert_eq!(config.token_sinks.len(), 1);
    assert_eq!(
        config.token_sinks[0].path.to_str(),
        Some("/vault/secrets/token")
    );
    assert_eq!(config.token_sinks[0].mode(), 0o640, "Vault Agent's default");
    assert!(config.templates.is_empty() && config.secrets.is_empty());

    let pod = PodBuilder::new()
        .vault(&[
            ("role", "app"),
            ("agent-inject-token", "true"),
            ("secret-volume-path", "/etc/app/"),
            ("agent-inject-secret-db", "secret/data/db"),
        ])
        .build();
    let after = apply(&pod, &mutated(&pod));
    let spec = after.spec.as_ref().expect("spec");
    let config = agent_config(container(&spec.init_containers, "vault-agent"));
    assert_eq!(config.token_sinks[0].path.to_str(), Some("/etc/app/token"));
    assert_eq!(config.secrets.len(), 1);

    let denial = denied(
        &PodBuilder::new()
            .vault(&[
                ("role", "app"),
                ("agent-inject-token", "true"),
                ("agent-inject-secret-token", "secret/data/db"),
            ])
            .build(),
    );
    assert_eq!(denial.reason, Reason::Conflict);
    assert!(
        denial.message.starts_with(
            "vault.hashicorp.com/agent-inject-token writes the Vault token to /vault/secrets/token, where the file of secret \"token\" goes too"
        ),
        "{}",
        denial.message
    );
    let denial = denied(
        &PodBuilder::new()
            .vault(&[("role", "app"), ("agent-inject-token", "false")])
            .build(),
    );
    assert_eq!(denial.reason, Reason::MissingAnnotation);
    assert!(
        denial.message.contains("agent-inject-token"),
        "{}",
        denial.message
    );
}

/// vault-k8s's `agent-configmap`: the ConfigMap is mounted read-only at /vault/configs in the
/// agent containers (volume `vault-config`), the init container runs on its `config-init.hcl`
/// and the sidecar on its `config.hcl`, with Vault's address in `VAULT_ADDR` instead of a
/// generated configuration; no role or secret is needed, and the annotations that only shape
/// the generated configuration are ignored with a warning (a template that would not compile
/// included), while a declared secret's own mount path still gets its volume.
#[test]
fn agent_configmap_runs_the_agents_on_the_mounted_vault_agent_configuration() {
    let pod = PodBuilder::new()
        .vault(&[
            ("agent-configmap", "shop-agent"),
            ("agent-pre-populate", "true"),
            ("role", "ignored"),
            ("auth-type", "aws"),
            ("agent-inject-token", "true"),
            ("agent-inject-template-broken", "{{ with secret \"a\" }}"),
            ("secret-volume-path-broken", "/etc/broken"),
            ("ca-cert", "/vault/tls/ca.crt"),
        ])
        .build();
    let s = InjectorSettings {
        mode: Mode::InitAndSidecar,
        ..settings()
    };
    let mutation = mutate(&pod, "team-a", &s)
        .expect("allowed")
        .expect("a patch");
    for key in [
        "role",
        "auth-type",
        "agent-inject-token",
        "agent-inject-template-broken",
    ] {
        assert!(
            mutation.warnings.iter().any(|w| w.starts_with(&format!(
                "vault.hashicorp.com/{key}: has no effect with vault.hashicorp.com/agent-configmap"
            ))),
            "{key}: {:?}",
            mutation.warnings
        );
    }
    let after = apply(&pod, &mutation);
    let spec = after.spec.as_ref().expect("spec");
    let volumes = spec.volumes.as_ref().expect("volumes");
    let config_map = volumes
        .iter()
        .find(|v| v.name == "vault-config")
        .and_then(|v| v.config_map.as_ref())
        .expect("the ConfigMap's volume");
    assert_eq!(config_map.name, "shop-agent");
    assert!(
        volumes.iter().any(|v| v.name == "vault-secrets-custom-0"),
        "the declared secret's mount path"
    );
    for (name, once, file) in [
        ("vault-agent-init", true, "config-init.hcl"),
        ("vault-agent", false, "config.hcl"),
    ] {
        let agent = if once {
            container(&spec.init_containers, name)
        } else {
            spec.containers
                .iter()
                .find(|c| c.name == name)
                .expect("sidecar")
        };
        let mut want = vec!["/usr/local/bin/hydrant", "agent"];
        if once {
            want.push("--once");
        }
        let config = format!("/vault/configs/{file}");
        want.extend(["--config", &config, "--state-dir", "/hydrant/state"]);
        assert_eq!(agent.command.as_deref().expect("command"), want);
        let mount = agent
            .volume_mounts
            .iter()
            .flatten()
            .find(|m| m.name == "vault-config")
            .expect("mounted");
        assert_eq!(
            (mount.mount_path.as_str(), mount.read_only),
            ("/vault/configs", Some(true))
        );
        assert!(
            agent
                .volume_mounts
                .iter()
                .flatten()
                .any(|m| m.mount_path == "/var/run/secrets/kubernetes.io/serviceaccount"),
            "the service-account token, as vault-k8s mounts it"
        );
        assert_eq!(env_value(agent, "HYDRANT_AGENT_CONFIG"), None);
        assert_eq!(
            env_value(agent, "VAULT_ADDR"),
            Some("https://vault.vault.svc:8200")
        );
        assert_eq!(env_value(agent, "VAULT_CACERT"), Some("/vault/tls/ca.crt"));
        assert_eq!(env_value(agent, "VAULT_SKIP_VERIFY"), None, "checked");
    }

    // Without a token mount in the pod, one is projected where the HCL's kubernetes method
    // looks by default.
    let bare = PodBuilder::bare()
        .vault(&[("agent-configmap", "shop-agent")])
        .build();
    let after = apply(&bare, &mutated(&bare));
    let agent = container(
        &after.spec.as_ref().expect("spec").init_containers,
        "vault-agent",
    );
    assert_eq!(
        agent.command.as_deref().expect("command"),
        [
            "/usr/local/bin/hydrant",
            "agent",
            "--config",
            "/vault/configs/config.hcl",
            "--state-dir",
            "/hydrant/state"
        ],
        "native mode's one container runs as the sidecar"
    );
    assert!(
        agent
            .volume_mounts
            .iter()
            .flatten()
            .any(|m| m.name == "hydrant-token"
                && m.mount_path == "/var/run/secrets/kubernetes.io/serviceaccount"),
        "{:?}",
        agent.volume_mounts
    );
}

/// The container port named `hydrant-metrics` of an agent container, if it declares one.
fn metrics_port_of(container: &Container) -> Option<i32> {
    container
        .ports
        .iter()
        .flatten()
        .find(|p| p.name.as_deref() == Some(names::METRICS_PORT))
        .map(|p| p.container_port)
}

fn annotation<'a>(pod: &'a Pod, key: &str) -> Option<&'a str> {
    pod.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(key))
        .map(String::as_str)
}

/// The sidecar's metrics port, asked by the pod or by the injector's setting: the agent config
/// opens it, the long-running agent container declares it, and the pod gets Prometheus's scrape
/// annotations unless it has its own.
#[test]
fn the_metrics_port_is_opened_declared_and_annotated_for_prometheus() {
    let hydrant = |extra: &[(&str, &str)]| {
        let mut pairs = vec![("role", "app"), ("secret-db", "secret/data/db")];
        pairs.extend_from_slice(extra);
        PodBuilder::new().hydrant(&pairs).build()
    };
    // Native mode: the one agent container serves it.
    let pod = hydrant(&[("metrics-port", "9102")]);
    let patched = apply(&pod, &mutated(&pod));
    let agent = container(
        &patched.spec.as_ref().expect("spec").init_containers,
        "vault-agent",
    );
    assert_eq!(metrics_port_of(agent), Some(9102));
    assert_eq!(agent_config(agent).metrics_port, Some(9102));
    assert_eq!(annotation(&patched, "prometheus.io/scrape"), Some("true"));
    assert_eq!(annotation(&patched, "prometheus.io/port"), Some("9102"));
    assert_eq!(annotation(&patched, "prometheus.io/path"), Some("/metrics"));

    // The injector's setting, for a vault-k8s pod in init-and-sidecar mode: the sidecar serves
    // it, the init container (which exits) declares nothing.
    let mut s = settings();
    s.agent_metrics_port = Some(9102);
    s.mode = Mode::InitAndSidecar;
    let pod = PodBuilder::new()
        .vault(&[
            ("role", "app"),
            ("agent-inject-secret-db", "secret/data/db"),
        ])
        .build();
    let mutation = mutate(&pod, "team-a", &s).expect("allowed").expect("patch");
    let patched = apply(&pod, &mutation);
    let spec = patched.spec.as_ref().expect("spec");
    assert_eq!(
        metrics_port_of(container(&spec.init_containers, "vault-agent-init")),
        None
    );
    assert_eq!(
        metrics_port_of(container(&Some(spec.containers.clone()), "vault-agent")),
        Some(9102)
    );
    assert_eq!(annotation(&patched, "prometheus.io/port"), Some("9102"));

    // A pod with its own scrape annotations keeps them, and is told.
    let pod = PodBuilder::new()
        .annotate("prometheus.io/scrape", "true")
        .annotate("prometheus.io/port", "8080")
        .hydrant(&[
            ("role", "app"),
            ("secret-db", "secret/data/db"),
            ("metrics-port", "9102"),
        ])
        .build();
    let mutation = mutated(&pod);
    let patched = apply(&pod, &mutation);
    assert_eq!(annotation(&patched, "prometheus.io/port"), Some("8080"));
    assert_eq!(annotation(&patched, "prometheus.io/path"), None);
    assert!(
        mutation
            .warnings
            .iter()
            .any(|w| w.contains("prometheus.io/scrape") && w.contains("9102")),
        "{:?}",
        mutation.warnings
    );
    let agent = container(
        &patched.spec.as_ref().expect("spec").init_containers,
        "vault-agent",
    );
    assert_eq!(metrics_port_of(agent), Some(9102));

    // An empty annotation turns the setting off for the pod; without a sidecar there is none.
    let mut s = settings();
    s.agent_metrics_port = Some(9102);
    for pod in [
        hydrant(&[("metrics-port", "")]),
        hydrant(&[("mode", "init-only")]),
    ] {
        let mutation = mutate(&pod, "team-a", &s).expect("allowed").expect("patch");
        let patched = apply(&pod, &mutation);
        assert_eq!(annotation(&patched, "prometheus.io/scrape"), None);
        let spec = patched.spec.expect("spec");
        let all = spec
            .init_containers
            .iter()
            .flatten()
            .chain(&spec.containers);
        assert!(all.clone().all(|c| metrics_port_of(c).is_none()));
    }
    let mutation = mutated(&hydrant(&[("mode", "init-only"), ("metrics-port", "9102")]));
    assert!(
        mutation
            .warnings
            .iter()
            .any(|w| w.starts_with("hydrant.dev/metrics-port: mode init-only has no sidecar")),
        "{:?}",
        mutation.warnings
    );
}

/// A metrics port the app already uses, or the agent's own local port, is refused when the pod
/// asks for it; the injector's setting only warns and leaves the port closed.
#[test]
fn a_metrics_port_in_use_is_refused_when_asked_and_skipped_when_set_cluster_wide() {
    let app_port = |extra: &[(&str, &str)]| {
        let mut pairs = vec![("role", "app"), ("secret-db", "secret/data/db")];
        pairs.extend_from_slice(extra);
        let mut pod = PodBuilder::new();
        pod.0["spec"]["containers"][0]["ports"] = json!([{"containerPort": 9102}]);
        pod.hydrant(&pairs).build()
    };
    let denial = denied(&app_port(&[("metrics-port", "9102")]));
    assert_eq!(denial.reason, Reason::Conflict);
    assert_eq!(
        denial.message,
        "hydrant.dev/metrics-port: container app already uses port 9102; choose another port for the agent's metrics"
    );
    let denial = denied(&app_port(&[("metrics-port", "8099"), ("listen", "8099")]));
    assert!(
        denial.message.contains("also the agent's local port"),
        "{}",
        denial.message
    );
    assert_eq!(
        denied(&app_port(&[("metrics-port", "0")])).reason,
        Reason::BadAnnotation
    );

    let mut s = settings();
    s.agent_metrics_port = Some(9102);
    let pod = app_port(&[]);
    let mutation = mutate(&pod, "team-a", &s).expect("allowed").expect("patch");
    assert!(
        mutation.warnings.iter().any(|w| w.starts_with(
            "the injector's metrics port is not opened: container app already uses port 9102"
        )),
        "{:?}",
        mutation.warnings
    );
    let patched = apply(&pod, &mutation);
    assert_eq!(annotation(&patched, "prometheus.io/scrape"), None);
    let agent = container(
        &patched.spec.as_ref().expect("spec").init_containers,
        "vault-agent",
    );
    assert_eq!(metrics_port_of(agent), None);
    assert_eq!(agent_config(agent).metrics_port, None);
}

/// Plain programs the default image does not have (it holds only hydrant) are refused at
/// admission, naming the command and the image variant with a shell, unless given by an absolute
/// path under a volume the agent container mounts, which the pod may have filled; a pod that
/// turns the shared process namespace off cannot signal by name.
#[test]
fn programs_not_in_the_image_are_refused_unless_under_a_volume_the_agent_mounts() {
    let with = |command: &str, extra: &[(&str, &str)]| {
        let mut pairs = vec![
            ("role", "app"),
            ("agent-inject-secret-db", "secret/data/db"),
            ("agent-inject-command-db", command),
        ];
        pairs.extend_from_slice(extra);
        PodBuilder::new().vault(&pairs).build()
    };
    for (command, runs) in [
        (
            "touch /x",
            "runs touch, which is not in it (only hydrant is)",
        ),
        (
            "nginx -s reload",
            "runs nginx, which is not in it (only hydrant is)",
        ),
        (
            "/usr/sbin/nginx -s reload",
            "runs /usr/sbin/nginx, which is not in it (only hydrant is) and under no volume the agent mounts (/vault/secrets)",
        ),
    ] {
        let denial = denied(&with(command, &[]));
        assert_eq!(denial.reason, Reason::UnsupportedAnnotation, "{command}");
        assert!(
            denial.message.starts_with(&format!(
                "vault.hashicorp.com/agent-inject-command-db: {command:?} cannot run in hydrant's image ghcr.io/hydrant-dev/hydrant:0.1.0: it {runs}; "
            )) && denial.message.contains("ghcr.io/hydrant-dev/hydrant:0.1.0-shell"),
            "{}",
            denial.message
        );
    }
    // A program the pod mounts for the agent: agent-extra-secret's /vault/custom, a volume
    // copied from an app container, or one agent-json-patch adds.
    mutated(&with(
        "/vault/custom/reload --now",
        &[("agent-extra-secret", "tools")],
    ));
    let pod = with("/opt/tools/reload", &[("agent-copy-volume-mounts", "app")]);
    let mut pod = serde_json::to_value(pod).expect("json");
    pod["spec"]["containers"][0]["volumeMounts"]
        .as_array_mut()
        .expect("mounts")
        .push(json!({"name": "tools", "mountPath": "/opt/tools"}));
    pod["spec"]["volumes"]
        .as_array_mut()
        .expect("volumes")
        .push(json!({"name": "tools", "emptyDir": {}}));
    mutated(&serde_json::from_value(pod).expect("pod"));
    mutated(&with(
        "/opt/bin/reload",
        &[(
            "agent-json-patch",
            r#"[{"op": "add", "path": "/volumeMounts/-", "value": {"name": "bin", "mountPath": "/opt/bin"}}]"#,
        )],
    ).with_volume("bin"));
    // hydrant's own binary, and anything in the image variant with a shell.
    mutated(&with("/usr/local/bin/hydrant signal --pid 1 HUP", &[]));
    let mut s = settings();
    s.agent_image = "ghcr.io/hydrant-dev/hydrant:0.1.0-shell".into();
    mutate(&with("touch /x", &[]), "team-a", &s)
        .expect("allowed")
        .expect("patch");

    // agent-share-process-namespace: "false" and a command that signals by name.
    let denial = denied(&with(
        "pkill -HUP nginx",
        &[("agent-share-process-namespace", "false")],
    ));
    assert_eq!(denial.reason, Reason::Conflict);
    assert_eq!(
        denial.message,
        "vault.hashicorp.com/agent-inject-command-db: \"pkill -HUP nginx\" signals the app's processes by name, which the agent sees only in the pod's shared process namespace, and vault.hashicorp.com/agent-share-process-namespace is \"false\": the agent cannot see the app to signal it; remove that annotation, or drop the command and let the app watch its file"
    );
    // A process ID does not need the app's processes.
    mutated(&with(
        "kill -HUP 1",
        &[("agent-share-process-namespace", "false")],
    ));
}
