//! The mutation for environment variables from Vault: containers with bank-vaults' `vault:`
//! values, and those `hydrant.dev/env-<VAR>` reaches, run under the copied `hydrant exec`; the
//! patch applies, gives a valid pod, holds only references, and every refusal names the
//! container and the fix.

use injector::agent_config::AgentConfig;
use injector::{
    Context, ImageCommand, Images, InjectorSettings, Mutation, Reason, images_to_read, mutate,
    mutate_in, names,
};
use k8s_openapi::api::core::v1::{Container, Pod};
use serde_json::{Value, json};

fn settings() -> InjectorSettings {
    InjectorSettings::new(
        "https://vault.vault.svc:8200",
        "ghcr.io/hydrant-dev/hydrant:0.1.0",
    )
}

/// A pod opted in with `hydrant.dev/inject` and a role, with these containers, as the
/// ServiceAccount admission plugin leaves it (the token mounted in each).
fn pod(annotations: Value, containers: Value) -> Pod {
    let mut all = json!({"hydrant.dev/inject": "true", "hydrant.dev/role": "app"});
    for (k, v) in annotations.as_object().into_iter().flatten() {
        all[k] = v.clone();
    }
    let mut containers = containers;
    for c in containers.as_array_mut().into_iter().flatten() {
        c["volumeMounts"] = json!([{"name": "kube-api-access-x", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount", "readOnly": true}]);
    }
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "app-0", "namespace": "team-a", "annotations": all},
        "spec": {
            "containers": containers,
            "volumes": [{"name": "kube-api-access-x", "projected": {"sources": [{"serviceAccountToken": {"path": "token"}}]}}]
        }
    }))
    .expect("a valid pod")
}

/// bank-vaults' example: a container whose env holds `vault:` values beside a plain one.
fn bank_vaults_pod() -> Pod {
    pod(
        json!({}),
        json!([{
            "name": "app",
            "image": "registry.example/app:1",
            "command": ["/app/server"],
            "args": ["--port", "8080"],
            "env": [
                {"name": "DB_PASSWORD", "value": "vault:secret/data/app/db#password"},
                {"name": "LOG_LEVEL", "value": "info"},
                {"name": "API_KEY", "value": "vault:secret/data/app/api#key#2"},
            ]
        }]),
    )
}

fn mutated_with(pod: &Pod, images: &Images) -> Result<Option<Mutation>, injector::Denial> {
    let context = Context {
        namespace: "team-a",
        batch: false,
        images,
    };
    mutate_in(pod, &context, &settings())
}

fn apply(pod: &Pod, mutation: &Mutation) -> Pod {
    let mut value = serde_json::to_value(pod).expect("pod json");
    json_patch::patch(&mut value, &mutation.patch).expect("the patch applies");
    serde_json::from_value(value).expect("the result is a pod")
}

fn find<'a>(list: &'a Option<Vec<Container>>, name: &str) -> &'a Container {
    list.iter()
        .flatten()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no container {name}"))
}

/// The `hydrant exec` configuration a container got, checked as `hydrant exec` checks it.
fn exec_config(container: &Container) -> AgentConfig {
    let json = container
        .env
        .iter()
        .flatten()
        .find(|e| e.name == "HYDRANT_AGENT_CONFIG")
        .and_then(|e| e.value.as_deref())
        .expect("HYDRANT_AGENT_CONFIG");
    let config: AgentConfig = serde_json::from_str(json).expect("hydrant exec reads it");
    config.validate_exec().expect("and finds it valid");
    config
}

fn env_names(container: &Container) -> Vec<&str> {
    container
        .env
        .iter()
        .flatten()
        .map(|e| e.name.as_str())
        .collect()
}

#[test]
fn vault_values_make_the_container_run_under_the_copied_hydrant_exec() {
    let pod = bank_vaults_pod();
    let mutation = mutate(&pod, "team-a", &settings())
        .expect("allowed")
        .expect("a patch");
    assert!(!mutation.agent, "variables only: no agent");
    assert_eq!(mutation.exec, ["app"]);
    let after = apply(&pod, &mutation);
    let spec = after.spec.as_ref().expect("spec");

    let init = spec.init_containers.as_ref().expect("init containers");
    assert_eq!(init.len(), 1, "the copy only");
    let install = &init[0];
    assert_eq!(install.name, names::INSTALL_CONTAINER);
    assert_eq!(
        install.image.as_deref(),
        Some("ghcr.io/hydrant-dev/hydrant:0.1.0")
    );
    assert_eq!(
        install.command.as_deref().expect("command"),
        ["/usr/local/bin/hydrant", "install", "--to", names::BIN_PATH]
    );
    let security = install.security_context.as_ref().expect("hardened");
    assert_eq!(security.read_only_root_filesystem, Some(true));
    assert_eq!(security.run_as_non_root, Some(true));
    let bin = spec
        .volumes
        .iter()
        .flatten()
        .find(|v| v.name == names::BIN_VOLUME)
        .expect("the binary's volume");
    assert_eq!(
        bin.empty_dir.as_ref().and_then(|e| e.medium.as_deref()),
        Some("Memory")
    );

    let app = &spec.containers[0];
    assert_eq!(
        app.command.as_deref().expect("command"),
        [names::EXEC_BINARY, "exec", "--", "/app/server"]
    );
    assert_eq!(app.args.as_deref().expect("args kept"), ["--port", "8080"]);
    assert_eq!(env_names(app), ["LOG_LEVEL", "HYDRANT_AGENT_CONFIG"]);
    let mounts: Vec<(&str, &str, Option<bool>)> = app
        .volume_mounts
        .iter()
        .flatten()
        .map(|m| (m.name.as_str(), m.mount_path.as_str(), m.read_only))
        .collect();
    assert_eq!(
        mounts,
        [
            (
                "kube-api-access-x",
                "/var/run/secrets/kubernetes.io/serviceaccount",
                Some(true)
            ),
            (names::BIN_VOLUME, names::BIN_PATH, Some(true)),
        ]
    );
    let config = exec_config(app);
    assert_eq!(config.vault.address, "https://vault.vault.svc:8200");
    assert_eq!(config.auth.role.as_deref(), Some("app"));
    assert_eq!(
        config.auth.jwt_path.as_deref().and_then(|p| p.to_str()),
        Some("/var/run/secrets/kubernetes.io/serviceaccount/token")
    );
    type Entry<'a> = (&'a str, Option<&'a str>, Option<&'a str>, Option<u64>);
    let entries: Vec<Entry<'_>> = config
        .env
        .iter()
        .map(|e| {
            (
                e.name.as_str(),
                e.path.as_deref(),
                e.key.as_deref(),
                e.version,
            )
        })
        .collect();
    assert_eq!(
        entries,
        [
            ("API_KEY", Some("secret/data/app/api"), Some("key"), Some(2)),
            (
                "DB_PASSWORD",
                Some("secret/data/app/db"),
                Some("password"),
                None
            ),
        ]
    );
    assert_eq!(config.listen, None);
    assert!(config.templates.is_empty() && config.state_dir.is_none());

    // Only references in the patch: no vault: value is left in any container's env.
    let patch = serde_json::to_string(&mutation.patch).expect("json");
    assert!(!patch.contains("vault:secret"), "{patch}");
    // And the pod is not mutated twice.
    assert_eq!(mutate(&after, "team-a", &settings()), Ok(None));
}

#[test]
fn env_annotations_reach_the_named_app_containers_beside_the_agent_s_files() {
    let pod = pod(
        json!({
            "hydrant.dev/secret-config": "secret/data/app/config",
            "hydrant.dev/env-DB_PASSWORD": "secret/data/app/db#password",
            "hydrant.dev/env-DB_URL": "postgres://{{ secret('database/creds/app').username }}@db/app",
            "hydrant.dev/containers": "app",
        }),
        json!([
            {"name": "app", "image": "app:1", "command": ["/app"]},
            {"name": "metrics", "image": "exporter:1", "command": ["/exporter"]},
        ]),
    );
    let mutation = mutate(&pod, "team-a", &settings())
        .expect("allowed")
        .expect("a patch");
    assert!(mutation.agent);
    assert_eq!(mutation.exec, ["app"]);
    let after = apply(&pod, &mutation);
    let spec = after.spec.as_ref().expect("spec");
    let init: Vec<&str> = spec
        .init_containers
        .iter()
        .flatten()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(
        init,
        [names::INSTALL_CONTAINER, names::SIDECAR_CONTAINER],
        "the copy runs first, then the agent (native)"
    );
    let containers = Some(spec.containers.clone());
    let app = find(&containers, "app").clone();
    assert_eq!(
        app.command.as_deref().expect("command"),
        [names::EXEC_BINARY, "exec", "--", "/app"]
    );
    let config = exec_config(&app);
    let names: Vec<&str> = config.env.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["DB_PASSWORD", "DB_URL"]);
    assert!(config.env[1].contents.is_some());
    let mounts: Vec<&str> = app
        .volume_mounts
        .iter()
        .flatten()
        .map(|m| m.mount_path.as_str())
        .collect();
    assert_eq!(
        mounts,
        [
            "/var/run/secrets/kubernetes.io/serviceaccount",
            "/vault/secrets",
            names::BIN_PATH
        ]
    );
    let metrics = find(&containers, "metrics");
    assert_eq!(
        metrics.command.as_deref(),
        Some(&["/exporter".to_owned()][..])
    );
    assert!(metrics.env.is_none());
}

#[test]
fn an_init_container_with_vault_values_runs_after_the_copy() {
    let mut value = serde_json::to_value(bank_vaults_pod()).expect("json");
    value["spec"]["initContainers"] = json!([{
        "name": "migrate", "image": "app:1", "command": ["/migrate"],
        "env": [{"name": "DB_PASSWORD", "value": "vault:secret/data/app/db#password"}],
    }]);
    let pod: Pod = serde_json::from_value(value).expect("pod");
    let mutation = mutate(&pod, "team-a", &settings())
        .expect("allowed")
        .expect("a patch");
    assert_eq!(mutation.exec, ["migrate", "app"]);
    let after = apply(&pod, &mutation);
    let init = after.spec.expect("spec").init_containers.expect("init");
    assert_eq!(init[0].name, names::INSTALL_CONTAINER);
    assert_eq!(init[1].name, "migrate");
    assert_eq!(
        init[1].command.as_deref().expect("command"),
        [names::EXEC_BINARY, "exec", "--", "/migrate"]
    );
}

#[test]
fn without_a_command_the_image_s_entrypoint_and_cmd_are_used_or_the_pod_is_refused() {
    let no_command = pod(
        json!({"hydrant.dev/env-TOKEN": "secret/data/app/api#token"}),
        json!([{"name": "web", "image": "registry.example/web:2"}]),
    );
    assert_eq!(images_to_read(&no_command), ["registry.example/web:2"]);
    assert!(images_to_read(&bank_vaults_pod()).is_empty(), "it sets one");

    let denial = mutate(&no_command, "team-a", &settings()).expect_err("unknown");
    assert_eq!(denial.reason, Reason::UnknownCommand);
    assert!(
        denial
            .message
            .starts_with("container web runs under hydrant exec")
            && denial.message.contains(
                "the ENTRYPOINT and CMD of its image registry.example/web:2 are not known here"
            )
            && denial
                .message
                .ends_with("set command (and args) on container web in the pod spec"),
        "{}",
        denial.message
    );

    let mut images = Images::new();
    images.insert(
        "registry.example/web:2".to_owned(),
        Err("registry.example: 401 Unauthorized".to_owned()),
    );
    let denial = mutated_with(&no_command, &images).expect_err("unreadable");
    assert!(
        denial.message.contains(
            "the configuration of its image registry.example/web:2 cannot be read from its registry: registry.example: 401 Unauthorized; set command (and args) on container web in the pod spec, or give the injector the registry's credentials (--registry-credentials"
        ),
        "{}",
        denial.message
    );

    images.insert(
        "registry.example/web:2".to_owned(),
        Ok(ImageCommand {
            entrypoint: vec!["/docker-entrypoint.sh".to_owned()],
            cmd: vec![
                "nginx".to_owned(),
                "-g".to_owned(),
                "daemon off;".to_owned(),
            ],
        }),
    );
    let mutation = mutated_with(&no_command, &images)
        .expect("allowed")
        .expect("patch");
    let web = apply(&no_command, &mutation).spec.expect("spec").containers[0].clone();
    assert_eq!(
        web.command.as_deref().expect("command"),
        [names::EXEC_BINARY, "exec", "--", "/docker-entrypoint.sh"]
    );
    assert_eq!(
        web.args
            .as_deref()
            .expect("the image's CMD, which command would drop"),
        ["nginx", "-g", "daemon off;"]
    );

    // The pod's own args replace the image's CMD, as Kubernetes runs them.
    let mut value = serde_json::to_value(&no_command).expect("json");
    value["spec"]["containers"][0]["args"] = json!(["-v"]);
    let with_args: Pod = serde_json::from_value(value).expect("pod");
    let mutation = mutated_with(&with_args, &images)
        .expect("allowed")
        .expect("patch");
    let web = apply(&with_args, &mutation).spec.expect("spec").containers[0].clone();
    assert_eq!(web.args.as_deref().expect("args"), ["-v"]);

    images.insert(
        "registry.example/web:2".to_owned(),
        Ok(ImageCommand::default()),
    );
    let denial = mutated_with(&no_command, &images).expect_err("nothing to run");
    assert!(
        denial.message.contains("sets neither ENTRYPOINT nor CMD"),
        "{}",
        denial.message
    );
}

#[test]
fn bad_names_references_and_conflicts_are_refused_naming_the_container() {
    let cases = [
        (
            json!({}),
            json!([{"name": "app", "image": "a", "command": ["/a"], "env": [{"name": "DB-PASSWORD", "value": "vault:secret/data/db#password"}]}]),
            "container app: env DB-PASSWORD: \"DB-PASSWORD\" is not an environment variable name",
        ),
        (
            json!({}),
            json!([{"name": "app", "image": "a", "command": ["/a"], "env": [{"name": "DB", "value": "vault:secret/data/db"}]}]),
            "container app: env DB: names no key",
        ),
        (
            json!({}),
            json!([{"name": "app", "image": "a", "command": ["/a"], "env": [{"name": "DB", "value": ">>vault:pki/issue/x#certificate#{}"}]}]),
            "container app: env DB: a write-and-read reference",
        ),
        (
            json!({}),
            json!([{"name": "app", "image": "a", "command": ["/a"], "env": [
                {"name": "DB", "value": "vault:secret/data/db#password"},
                {"name": "DB", "value": "plain"}]}]),
            "container app: env DB: is set more than once",
        ),
        (
            json!({"hydrant.dev/env-DB": "secret/data/db#password"}),
            json!([{"name": "app", "image": "a", "command": ["/a"], "env": [{"name": "DB", "value": "plain"}]}]),
            "container app sets DB in its env, and hydrant.dev/env-DB gives it too; keep one",
        ),
        (
            json!({"hydrant.dev/env-DB": "secret/data/db#password"}),
            json!([{"name": "app", "image": "a", "command": ["/a"], "env": [{"name": "HYDRANT_AGENT_CONFIG", "value": "{}"}]}]),
            "container app sets HYDRANT_AGENT_CONFIG",
        ),
        (
            json!({"hydrant.dev/env-DB": "secret/data/db#password", "hydrant.dev/containers": "ap"}),
            json!([{"name": "app", "image": "a", "command": ["/a"]}]),
            "hydrant.dev/containers: the pod has no container \"ap\"",
        ),
        (
            json!({"hydrant.dev/env-DB": "secret/data/db#password"}),
            json!([{"name": "hydrant-install", "image": "a", "command": ["/a"]}]),
            "the pod already has a container named hydrant-install",
        ),
    ];
    for (annotations, containers, expected) in cases {
        let denial =
            mutate(&pod(annotations, containers), "team-a", &settings()).expect_err(expected);
        assert!(
            denial.message.starts_with(expected),
            "{} does not start with {expected}",
            denial.message
        );
    }
}

#[test]
fn a_secret_named_in_command_or_args_is_warned_about_and_vault_k8s_pods_keep_their_values() {
    let pod = pod(
        json!({}),
        json!([{"name": "app", "image": "a", "command": ["/a"], "args": ["--password=$(DB_PASSWORD)"],
            "env": [{"name": "DB_PASSWORD", "value": "vault:secret/data/db#password"}]}]),
    );
    let mutation = mutate(&pod, "team-a", &settings())
        .expect("allowed")
        .expect("patch");
    assert_eq!(
        mutation.warnings,
        [
            "container app: Kubernetes expands $(DB_PASSWORD) in command and args before hydrant exec sets DB_PASSWORD, so it stays as written; read DB_PASSWORD from the environment in the program"
        ]
    );

    let vault_k8s: Pod = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "p", "annotations": {
            "vault.hashicorp.com/agent-inject": "true",
            "vault.hashicorp.com/role": "app",
            "vault.hashicorp.com/agent-inject-secret-db": "secret/data/db"}},
        "spec": {"containers": [{"name": "app", "image": "a",
            "env": [{"name": "DB_PASSWORD", "value": "vault:secret/data/db#password"}]}]}
    }))
    .expect("pod");
    let mutation = mutate(&vault_k8s, "team-a", &settings())
        .expect("allowed")
        .expect("patch");
    assert!(mutation.exec.is_empty());
    assert_eq!(
        mutation.warnings,
        [
            "container app has env values that start with vault:, which hydrant resolves only in pods annotated hydrant.dev/inject: they are left as they are"
        ]
    );
    assert!(images_to_read(&vault_k8s).is_empty());
}
