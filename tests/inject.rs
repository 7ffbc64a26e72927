//! `hydrant inject` end to end: a Deployment goes through the real binary, and the agent
//! container it gets (its command and `HYDRANT_AGENT_CONFIG`) runs against a real OpenBao with
//! its paths mapped into a temporary directory; the files are what the annotations asked for.
//! The long-running modes run too: the native agent against its own startup probe, and the
//! classic init container handing its token to the sidecar.
//! The kubernetes login it makes goes through a TokenReview responder standing in for the
//! kube-apiserver, which cannot run on these machines.

use std::fs;
use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use crate::util::token_review::{TokenReviewer, kubernetes_setup};
use crate::util::{Hydrant, Vault, VaultOptions, read};

pub(crate) const PASSWORD: &str = "pa55-e2e-7731";

pub(crate) fn seeded() -> Vault {
    seeded_with(VaultOptions::default())
}

fn seeded_with(options: VaultOptions) -> Vault {
    let vault = Vault::start_with(options);
    vault.kv2_put(
        "app/db",
        json!({"username": "app-user", "password": PASSWORD}),
    );
    vault.kv2_put("app/config", json!({"port": 8080, "name": "shop"}));
    vault.policy(
        "app",
        "path \"secret/data/app/*\" { capabilities = [\"read\"] }\n",
    );
    vault
}

/// Runs `hydrant inject` on one Deployment and returns the mutated Deployment.
fn inject(vault: &Vault, annotations: Value) -> Value {
    inject_with(vault, &[], annotations)
}

/// `hydrant inject` with more settings.
fn inject_with(vault: &Vault, settings: &[&str], annotations: Value) -> Value {
    let deployment = json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "shop", "namespace": "team-a"},
        "spec": {
            "selector": {"matchLabels": {"app": "shop"}},
            "template": {
                "metadata": {"labels": {"app": "shop"}, "annotations": annotations},
                "spec": {"containers": [{"name": "shop", "image": "shop:1"}]}
            }
        }
    });
    let input = vault.file("deployment.json", &deployment.to_string());
    let run = Hydrant::new(["inject", "--vault-addr", &vault.addr])
        .run_with_args(
            &[
                settings.iter().map(|s| s.as_ref()).collect(),
                vec!["-f".as_ref(), input.as_os_str()],
            ]
            .concat(),
        )
        .success();
    let docs: Vec<Value> = serde_saphyr::from_multiple(&run.stdout()).expect("YAML out");
    docs.into_iter().next().expect("one document")
}

/// The named agent container of a Deployment.
fn container<'a>(deployment: &'a Value, name: &str) -> &'a Value {
    let spec = &deployment["spec"]["template"]["spec"];
    spec["initContainers"]
        .as_array()
        .into_iter()
        .flatten()
        .chain(spec["containers"].as_array().into_iter().flatten())
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no container {name} in {spec}"))
}

/// The named agent container's command, ready to run here with its `HYDRANT_AGENT_CONFIG`,
/// every path it names mapped under `root`, and the service-account token in a file.
fn agent_container(
    vault: &Vault,
    deployment: &Value,
    name: &str,
    root: &Path,
    token: &str,
) -> Hydrant {
    let agent = container(deployment, name);
    let command: Vec<String> = serde_json::from_value(agent["command"].clone()).expect("command");
    assert_eq!(command[0], "/usr/local/bin/hydrant");
    let config = agent["env"]
        .as_array()
        .expect("env")
        .iter()
        .find(|e| e["name"] == "HYDRANT_AGENT_CONFIG")
        .and_then(|e| e["value"].as_str())
        .expect("HYDRANT_AGENT_CONFIG")
        .to_owned();
    let token_file = vault.file("sa/token", token);
    let mut mapped = config;
    for (from, to) in [
        ("/vault/secrets", root.join("vault/secrets")),
        // The agent's own volumes (state, config ConfigMaps, schema, pod labels) under one root.
        ("/hydrant/", root.join("hydrant/")),
        (
            "/var/run/secrets/kubernetes.io/serviceaccount/token",
            token_file.clone(),
        ),
        (
            "/var/run/secrets/hydrant.dev/serviceaccount/token",
            token_file.clone(),
        ),
    ] {
        mapped = mapped.replace(from, &to.display().to_string());
    }
    Hydrant::new(&command[1..]).env("HYDRANT_AGENT_CONFIG", mapped)
}

/// Runs the named agent container to its end, paths mapped under `root`.
fn run_agent_container(
    vault: &Vault,
    deployment: &Value,
    container: &str,
    root: &Path,
    token: &str,
) {
    agent_container(vault, deployment, container, root, token)
        .run()
        .success();
}

/// Runs a container's startup probe, its ready file mapped under `root`: whether it passes.
fn startup_probe(deployment: &Value, name: &str, root: &Path) -> bool {
    let probe = &container(deployment, name)["startupProbe"]["exec"]["command"];
    let command: Vec<String> = serde_json::from_value(probe.clone()).expect("probe command");
    assert_eq!(
        command,
        ["/usr/local/bin/hydrant", "agent", "--check-ready"]
    );
    let ready = root.join("hydrant/state/ready");
    let mut args: Vec<&std::ffi::OsStr> = command[1..].iter().map(|a| a.as_ref()).collect();
    args.extend([std::ffi::OsStr::new("--ready-file"), ready.as_os_str()]);
    Hydrant::new(Vec::<String>::new())
        .run_with_args(&args)
        .code()
        == 0
}

/// A service-account-shaped token for `team-a/shop`, accepted by the TokenReview responder
/// that stands in for the kube-apiserver (none can run here).
pub(crate) fn shop_token(vault: &Vault) -> (TokenReviewer, String) {
    let reviewer = TokenReviewer::start();
    kubernetes_setup(vault, &reviewer, "shop", None, &["app"]);
    let token = reviewer.accepted_token("shop", "https://kubernetes.default.svc", "9f1c-uid");
    (reviewer, token)
}

#[test]
fn a_vault_k8s_annotated_deployment_renders_what_vault_k8s_would() {
    let vault = seeded();
    let deployment = inject(
        &vault,
        json!({
            "vault.hashicorp.com/agent-inject": "true",
            "vault.hashicorp.com/role": "shop",
            "vault.hashicorp.com/agent-pre-populate-only": "true",
            "vault.hashicorp.com/agent-inject-secret-db": "secret/data/app/db",
            "vault.hashicorp.com/agent-inject-secret-config.json": "secret/data/app/config",
            "vault.hashicorp.com/agent-inject-default-template": "json",
            "vault.hashicorp.com/agent-inject-template-url": "postgres://{{ with secret \"secret/data/app/db\" }}{{ .Data.data.username }}{{ end }}@db/shop\n",
            "vault.hashicorp.com/agent-inject-file-url": "conf/url",
        }),
    );
    let root = vault.path("root");
    let (_reviewer, token) = shop_token(&vault);
    run_agent_container(&vault, &deployment, "vault-agent-init", &root, &token);

    let secrets = root.join("vault/secrets");
    let db = read(&secrets.join("db"));
    assert!(
        db.starts_with(&format!("{{\"data\":{{\"password\":\"{PASSWORD}\",\"username\":\"app-user\"}},\"metadata\":{{\"created_time\":")),
        "vault-k8s's json template renders the whole response data: {db}"
    );
    assert!(
        read(&secrets.join("config.json")).contains("\"data\":{\"name\":\"shop\",\"port\":8080}")
    );
    assert_eq!(
        read(&secrets.join("conf/url")),
        "postgres://app-user@db/shop\n"
    );
}

#[test]
fn a_hydrant_annotated_deployment_renders_its_formats_and_templates() {
    let vault = seeded();
    let deployment = inject(
        &vault,
        json!({
            "hydrant.dev/inject": "true",
            "hydrant.dev/role": "shop",
            "hydrant.dev/mode": "init-and-sidecar",
            "hydrant.dev/secret-config": "secret/data/app/config",
            "hydrant.dev/format-config": "yaml",
            "hydrant.dev/file-config": "config.yaml",
            "hydrant.dev/template-db.env": "DB_USER={{ secret('secret/data/app/db').data.username }}\nDB_PASSWORD={{ secret('secret/data/app/db').data.password }}\n",
            "hydrant.dev/perms-db.env": "0600",
        }),
    );
    let spec = &deployment["spec"]["template"]["spec"];
    assert_eq!(
        spec["containers"][1]["name"], "vault-agent",
        "the classic pair"
    );
    let root = vault.path("root");
    let (_reviewer, token) = shop_token(&vault);
    run_agent_container(&vault, &deployment, "vault-agent-init", &root, &token);

    let secrets = root.join("vault/secrets");
    assert_eq!(
        read(&secrets.join("config.yaml")),
        "name: shop\nport: 8080\n"
    );
    assert_eq!(
        read(&secrets.join("db.env")),
        format!("DB_USER=app-user\nDB_PASSWORD={PASSWORD}\n")
    );
    assert_eq!(crate::util::mode(&secrets.join("db.env")), 0o600);
    assert!(fs::metadata(secrets.join("db.env")).is_ok());
}

#[test]
fn the_cluster_vault_ca_given_to_inject_lets_agents_reach_a_tls_vault() {
    let vault = seeded_with(VaultOptions { tls: true });
    let ca = vault.ca_cert.clone().expect("dev CA");
    let annotations = json!({
        "vault.hashicorp.com/agent-inject": "true",
        "vault.hashicorp.com/role": "shop",
        "vault.hashicorp.com/agent-pre-populate-only": "true",
        "vault.hashicorp.com/agent-inject-secret-db": "secret/data/app/db",
    });
    let (_reviewer, token) = shop_token(&vault);

    let with_ca = inject_with(
        &vault,
        &["--vault-ca-cert", ca.to_str().expect("utf-8")],
        annotations.clone(),
    );
    let root = vault.path("with-ca");
    run_agent_container(&vault, &with_ca, "vault-agent-init", &root, &token);
    assert!(read(&root.join("vault/secrets/db")).contains(PASSWORD));

    let without = inject(&vault, annotations);
    let run = agent_container(
        &vault,
        &without,
        "vault-agent-init",
        &vault.path("without"),
        &token,
    )
    .run();
    let line = run.failure(1);
    assert!(
        line.contains("TLS to vault at") && line.contains("certificate"),
        "without the CA the agent cannot trust Vault: {line}"
    );
}

#[test]
fn inject_refuses_what_the_webhook_would_deny_and_reads_standard_input() {
    let pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "p", "annotations": {
            "vault.hashicorp.com/agent-inject": "true",
            "vault.hashicorp.com/role": "r",
            "vault.hashicorp.com/client-cert": "/vault/tls/client.pem"}},
        "spec": {"containers": [{"name": "c", "image": "i"}]}
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("pod.json");
    fs::write(&input, pod.to_string()).expect("write");
    let line = Hydrant::new(["inject", "--vault-addr", "https://v:8200", "-f"])
        .run_with_arg(&input)
        .failure(1);
    assert!(
        line.starts_with(
            "hydrant: Pod/p: vault.hashicorp.com/client-cert: TLS client certificates to Vault are not supported"
        ),
        "{line}"
    );

    let run = Hydrant::new(["inject", "--vault-addr", "https://v:8200", "-f", "-"])
        .stdin_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {a: b}\n")
        .run()
        .success();
    assert_eq!(
        run.stdout(),
        "apiVersion: v1\ndata:\n  a: b\nkind: ConfigMap\nmetadata:\n  name: c\n"
    );
}

/// The default mode: one agent init container with `restartPolicy: Always`. Started as the
/// kubelet would, its startup probe fails until every file is complete, then passes; the agent
/// goes on refreshing the files and stops cleanly on SIGTERM.
#[test]
fn native_mode_passes_its_startup_probe_only_with_every_file_and_keeps_them_fresh() {
    let vault = seeded();
    let deployment = inject(
        &vault,
        json!({
            "hydrant.dev/inject": "true",
            "hydrant.dev/role": "shop",
            "hydrant.dev/refresh-interval": "1s",
            "hydrant.dev/secret-config": "secret/data/app/config",
            "hydrant.dev/format-config": "yaml",
            "hydrant.dev/template-db.env": "DB_PASSWORD={{ secret('secret/data/app/db').data.password }}\n",
        }),
    );
    let agent = container(&deployment, "vault-agent");
    assert_eq!(agent["restartPolicy"], "Always");
    assert!(
        deployment["spec"]["template"]["spec"]["containers"]
            .as_array()
            .expect("containers")
            .iter()
            .all(|c| c["name"] != "vault-agent"),
        "no classic sidecar"
    );
    let root = vault.path("root");
    assert!(
        !startup_probe(&deployment, "vault-agent", &root),
        "not ready before it runs"
    );

    let (_reviewer, token) = shop_token(&vault);
    let mut running = agent_container(&vault, &deployment, "vault-agent", &root, &token)
        .spawn(&vault.path("native.log"));
    let secrets = root.join("vault/secrets");
    crate::util::wait_for("the startup probe to pass", Duration::from_secs(20), || {
        startup_probe(&deployment, "vault-agent", &root)
    });
    // The probe passed: the app may start now, and it finds every file whole.
    assert_eq!(read(&secrets.join("config")), "name: shop\nport: 8080\n");
    assert_eq!(
        read(&secrets.join("db.env")),
        format!("DB_PASSWORD={PASSWORD}\n")
    );

    vault.kv2_put("app/config", json!({"port": 9090, "name": "shop"}));
    crate::util::wait_for("the new port in the file", Duration::from_secs(10), || {
        read(&secrets.join("config")).contains("9090")
    });
    running.stop();
}

/// vault-k8s's classic pair: the init container logs in and renders, the sidecar adopts its
/// token from the private state volume. One login for the pod, and the app's volume never
/// holds the token.
#[test]
fn the_init_container_hands_its_token_to_the_sidecar_through_the_state_volume() {
    let vault = seeded();
    let deployment = inject_with(
        &vault,
        &["--mode", "init-and-sidecar"],
        json!({
            "vault.hashicorp.com/agent-inject": "true",
            "vault.hashicorp.com/role": "shop",
            "vault.hashicorp.com/agent-inject-secret-db": "secret/data/app/db",
            "vault.hashicorp.com/agent-inject-template-db": "{{ with secret \"secret/data/app/db\" }}{{ .Data.data.password }}{{ end }}",
        }),
    );
    let root = vault.path("root");
    let (_reviewer, token) = shop_token(&vault);
    let mark = vault.audit_mark();
    run_agent_container(&vault, &deployment, "vault-agent-init", &root, &token);
    let secrets = root.join("vault/secrets");
    assert_eq!(read(&secrets.join("db")), PASSWORD);

    let mut sidecar = agent_container(&vault, &deployment, "vault-agent", &root, &token)
        .spawn(&vault.path("sidecar.log"));
    crate::util::wait_for("the sidecar to be ready", Duration::from_secs(20), || {
        root.join("hydrant/state/ready").exists()
    });
    let counts = vault.audit_counts(mark);
    assert_eq!(
        counts.get("update auth/kubernetes/login"),
        Some(&1),
        "one login for the pod: {counts:?}"
    );
    assert_eq!(
        counts.get("read auth/token/lookup-self"),
        Some(&1),
        "{counts:?}"
    );
    let in_app_volume: Vec<_> = fs::read_dir(&secrets)
        .expect("secrets dir")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(
        in_app_volume,
        ["db"],
        "the app's volume holds its files, no state"
    );
    assert!(
        root.join("hydrant/state/state.json").exists(),
        "the hand-over record"
    );
    sidecar.stop();
}

/// vault-k8s's `agent-inject-token` on a pod with no secret: the init container writes a working
/// token to `/vault/secrets/token` (mode 0640, as Vault Agent's file sink), the sidecar keeps it
/// there, and once the token reaches its max TTL (6 s) and the sidecar logs in again the file
/// holds the new token, which works too.
#[test]
fn agent_inject_token_gives_a_token_file_that_works_and_is_replaced_after_a_re_login() {
    let vault = seeded();
    let deployment = inject_with(
        &vault,
        &["--mode", "init-and-sidecar"],
        json!({
            "vault.hashicorp.com/agent-inject": "true",
            "vault.hashicorp.com/role": "shop",
            "vault.hashicorp.com/agent-inject-token": "true",
        }),
    );
    let root = vault.path("root");
    let (_reviewer, token) = shop_token(&vault);
    vault.api(
        "POST",
        "auth/kubernetes/role/shop",
        Some(json!({
            "bound_service_account_names": ["shop"],
            "bound_service_account_namespaces": ["team-a"],
            "token_policies": ["app"],
            "token_ttl": "3s",
            "token_max_ttl": "6s",
        })),
    );
    run_agent_container(&vault, &deployment, "vault-agent-init", &root, &token);
    let file = root.join("vault/secrets/token");
    assert_eq!(crate::util::mode(&file), 0o640);
    let first = read(&file);
    vault
        .api_as(first.trim(), "GET", "secret/data/app/db", None)
        .expect("the init container's token reads the app's secret");

    let mut sidecar = agent_container(&vault, &deployment, "vault-agent", &root, &token)
        .spawn(&vault.path("sidecar.log"));
    crate::util::wait_for("a new token in the file", Duration::from_secs(30), || {
        read(&file) != first
    });
    let second = read(&file);
    vault
        .api_as(second.trim(), "GET", "secret/data/app/db", None)
        .unwrap_or_else(|e| panic!("the new token does not work: {e:?}\n{}", sidecar.log()));
    sidecar.stop();
}

/// The Vault Agent configuration of [`agent_configmap_runs_the_agent_on_the_mounted_hcl_as_bao_agent_does`]'s
/// ConfigMap, as a vault-k8s user writes it: no `vault` stanza (the injector gives the address),
/// the kubernetes method reading the token where Kubernetes mounts it, a template file beside
/// the configuration, and a token sink. `@ROOT@` stands for the root a test maps the container's
/// paths under.
const CONFIG_INIT_HCL: &str = r#"
exit_after_auth = true
auto_auth {
  method "kubernetes" {
    mount_path = "auth/kubernetes"
    config = {
      role       = "shop"
      token_path = "@ROOT@/var/run/secrets/kubernetes.io/serviceaccount/token"
    }
  }
  sink "file" {
    config = { path = "@ROOT@/vault/secrets/.vault-token" }
  }
}
template {
  source      = "@ROOT@/vault/configs/db.ctmpl"
  destination = "@ROOT@/vault/secrets/db.env"
  perms       = "0640"
}
template {
  destination = "@ROOT@/vault/secrets/config.json"
  contents    = "{{ with secret \"secret/data/app/config\" }}{{ .Data.data | toJSON }}{{ end }}\n"
}
"#;

/// Writes the ConfigMap's files under `root/vault/configs` as the kubelet mounts them, and the
/// service-account token where Kubernetes puts it.
fn mount_config_map(root: &Path, token: &str) {
    let configs = root.join("vault/configs");
    fs::create_dir_all(&configs).expect("configs");
    let hcl = CONFIG_INIT_HCL.replace("@ROOT@", &root.display().to_string());
    fs::write(configs.join("config-init.hcl"), &hcl).expect("config-init.hcl");
    fs::write(
        configs.join("config.hcl"),
        hcl.replace("exit_after_auth = true", ""),
    )
    .expect("config.hcl");
    fs::write(
        configs.join("db.ctmpl"),
        "{{ with secret \"secret/data/app/db\" }}DB_USER={{ .Data.data.username }}\nDB_PASSWORD={{ .Data.data.password }}{{ end }}\n",
    )
    .expect("template file");
    let sa = root.join("var/run/secrets/kubernetes.io/serviceaccount");
    fs::create_dir_all(&sa).expect("sa dir");
    fs::write(sa.join("token"), token).expect("sa token");
    fs::create_dir_all(root.join("vault/secrets")).expect("secrets");
}

/// The named container of a ConfigMap pod, to run here: its command with every path mapped
/// under `root`, and its environment's plain values (`VAULT_ADDR` ...).
fn config_map_container(
    deployment: &Value,
    name: &str,
    root: &Path,
) -> (Hydrant, Vec<(String, String)>) {
    let agent = container(deployment, name);
    let command: Vec<String> = serde_json::from_value(agent["command"].clone()).expect("command");
    assert_eq!(command[0], "/usr/local/bin/hydrant");
    assert!(
        agent["env"]
            .as_array()
            .expect("env")
            .iter()
            .all(|e| e["name"] != "HYDRANT_AGENT_CONFIG"),
        "the ConfigMap is the configuration"
    );
    let env: Vec<(String, String)> = agent["env"]
        .as_array()
        .expect("env")
        .iter()
        .filter_map(|e| {
            Some((
                e["name"].as_str()?.to_owned(),
                e["value"].as_str()?.to_owned(),
            ))
        })
        .collect();
    let args: Vec<String> = command[1..]
        .iter()
        .map(|a| match a.strip_prefix('/') {
            Some(rest) if a.starts_with("/vault/") || a.starts_with("/hydrant/") => {
                root.join(rest).display().to_string()
            }
            _ => a.clone(),
        })
        .collect();
    let mut hydrant = Hydrant::new(args);
    for (k, v) in &env {
        hydrant = hydrant.env(k, v);
    }
    (hydrant, env)
}

/// vault-k8s's `agent-configmap` through `hydrant inject`: the agent containers run on the
/// ConfigMap's files as the kubelet mounts them (the init container on `config-init.hcl`, the
/// sidecar on `config.hcl`), with the injector's Vault address in `VAULT_ADDR` as vault-k8s
/// gives it; the init container writes the files `bao agent` writes from the same HCL and
/// environment (the oracle), and the sidecar takes its token over (one login for the pod) and
/// becomes ready. The pod asks for no role and no secret: the HCL says it all.
#[test]
fn agent_configmap_runs_the_agent_on_the_mounted_hcl_as_bao_agent_does() {
    let vault = seeded();
    let deployment = inject_with(
        &vault,
        &["--mode", "init-and-sidecar"],
        json!({
            "vault.hashicorp.com/agent-inject": "true",
            "vault.hashicorp.com/agent-configmap": "shop-agent",
        }),
    );
    let spec = &deployment["spec"]["template"]["spec"];
    assert!(
        spec["volumes"]
            .as_array()
            .expect("volumes")
            .iter()
            .any(|v| v["name"] == "vault-config" && v["configMap"]["name"] == "shop-agent"),
        "{spec}"
    );
    let (_reviewer, token) = shop_token(&vault);
    let (hydrant_root, bao_root) = (vault.path("hydrant"), vault.path("bao"));
    mount_config_map(&hydrant_root, &token);
    mount_config_map(&bao_root, &token);
    let (init, env) = config_map_container(&deployment, "vault-agent-init", &hydrant_root);
    assert!(
        env.contains(&("VAULT_ADDR".to_owned(), vault.addr.clone())),
        "{env:?}"
    );

    let mark = vault.audit_mark();
    init.run().success();
    crate::agent_hcl::run_bao_with(
        &bao_root.join("vault/configs/config-init.hcl"),
        &vault.path("bao.log"),
        &env,
    )
    .unwrap_or_else(|log| panic!("bao agent failed:\n{log}"));
    let (ours, theirs) = (
        hydrant_root.join("vault/secrets"),
        bao_root.join("vault/secrets"),
    );
    let names = crate::agent_hcl::files(&theirs);
    assert_eq!(crate::agent_hcl::files(&ours), names);
    assert_eq!(names.len(), 3, "{names:?}");
    for name in &names {
        let (got, want) = (ours.join(name), theirs.join(name));
        assert_eq!(
            crate::util::mode(&got),
            crate::util::mode(&want),
            "{}",
            name.display()
        );
        if name == Path::new(".vault-token") {
            vault
                .api_as(read(&got).trim(), "GET", "secret/data/app/db", None)
                .expect("the sink's token works");
        } else {
            assert_eq!(
                read(&got),
                read(&want),
                "{} differs from bao agent's",
                name.display()
            );
        }
    }
    assert!(read(&ours.join("db.env")).contains(PASSWORD));

    let logins_before_sidecar = vault.audit_counts(mark);
    let (sidecar, _) = config_map_container(&deployment, "vault-agent", &hydrant_root);
    let mut sidecar = sidecar.spawn(&vault.path("sidecar.log"));
    crate::util::wait_for("the sidecar to be ready", Duration::from_secs(20), || {
        hydrant_root.join("hydrant/state/ready").exists()
    });
    let counts = vault.audit_counts(mark);
    assert_eq!(
        counts.get("update auth/kubernetes/login"),
        logins_before_sidecar.get("update auth/kubernetes/login"),
        "the sidecar takes the init container's token over: {counts:?}"
    );
    sidecar.stop();
}

/// Config snapshot annotations: the agent composes the containers of its ConfigMap volumes for
/// the pod's labels (downward API) and the host's (`--host-labels`), validates them against
/// the schema ConfigMap, and writes the file the annotations ask for, beside a template that
/// mixes config and a secret.
#[test]
fn config_annotations_give_the_composed_snapshot_file() {
    let vault = seeded();
    let deployment = inject_with(
        &vault,
        &[
            "--mode",
            "init-only",
            "--host-labels",
            "region=emea,site=atlantida",
        ],
        json!({
            "hydrant.dev/inject": "true",
            "hydrant.dev/role": "shop",
            "hydrant.dev/config-containers": "platform",
            "hydrant.dev/config-schema": "shop-schema/schema.json",
            "hydrant.dev/config-format": "properties",
            "hydrant.dev/template-db.env": "DB_HOST=db.{{ config.LINE_NAME_LOWER }}.example.com\nDB_PASSWORD={{ secret('secret/data/app/db').data.password }}\n",
        }),
    );
    // What the kubelet would mount: the ConfigMaps, and the pod's labels as the downward API
    // writes them.
    let root = vault.path("root");
    let example = crate::util::root().join("examples/config");
    fs::create_dir_all(root.join("hydrant/config")).expect("config dir");
    std::os::unix::fs::symlink(
        example.join("containers"),
        root.join("hydrant/config/platform"),
    )
    .expect("containers");
    std::os::unix::fs::symlink(&example, root.join("hydrant/schema")).expect("schema");
    fs::create_dir_all(root.join("hydrant/podinfo")).expect("podinfo");
    fs::write(
        root.join("hydrant/podinfo/labels"),
        "app=\"shop\"\nenv=\"qa\"\nline=\"line1\"\npod-template-hash=\"7d9f\"\n",
    )
    .expect("labels");
    let (_reviewer, token) = shop_token(&vault);
    run_agent_container(&vault, &deployment, "vault-agent-init", &root, &token);

    let secrets = root.join("vault/secrets");
    assert_eq!(
        read(&secrets.join("platform-config.properties")),
        read(&example.join("expected/line1-qa.properties"))
    );
    assert_eq!(
        read(&secrets.join("db.env")),
        format!("DB_HOST=db.line1.example.com\nDB_PASSWORD={PASSWORD}\n")
    );
}

/// The hardening issue's attack on `hydrant inject`: an `agent-json-patch` adding a 100-byte
/// value and copying it into itself 20 times (1.7 GB before the fix). It is denied naming the
/// annotation and the bound, quickly, and the process's peak RSS stays under 64 MiB: measured
/// by the kernel (`ru_maxrss` of the one child a Python wrapper waits for), not by polling.
#[test]
fn inject_denies_a_self_doubling_json_patch_within_64_mib() {
    let mut ops = vec![json!({"op": "add", "path": "/o", "value": {"v": "x".repeat(100)}})];
    ops.extend((0..20).map(|n| json!({"op": "copy", "from": "/o", "path": format!("/o/c{n}")})));
    let pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "p", "annotations": {
            "vault.hashicorp.com/agent-inject": "true",
            "vault.hashicorp.com/role": "r",
            "vault.hashicorp.com/agent-inject-secret-db": "secret/data/db",
            "vault.hashicorp.com/agent-json-patch": Value::Array(ops).to_string()}},
        "spec": {"containers": [{"name": "c", "image": "i"}]}
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("pod.json");
    fs::write(&input, pod.to_string()).expect("write");
    // The stdlib's resource module: nothing to install.
    let python = crate::util::python_with(&["resource"], &[]);
    let measure = "import json, resource, subprocess, sys\n\
                   run = subprocess.run(sys.argv[1:], capture_output=True, text=True, env={})\n\
                   peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss\n\
                   print(json.dumps({'code': run.returncode, 'stderr': run.stderr, 'peak_kib': peak}))\n";
    let started = std::time::Instant::now();
    let out = std::process::Command::new(python)
        .args(["-c", measure, env!("CARGO_BIN_EXE_hydrant")])
        .args(["inject", "--vault-addr", "https://v:8200", "-f"])
        .arg(&input)
        .output()
        .expect("run python");
    let elapsed = started.elapsed();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let result: Value = serde_json::from_slice(&out.stdout).expect("the wrapper's JSON");
    let stderr = result["stderr"].as_str().expect("stderr");
    assert_eq!(result["code"], 1, "{stderr}");
    assert!(
        stderr.contains(
            "hydrant: Pod/p: vault.hashicorp.com/agent-json-patch: operation 13 would make the agent container larger than 512 KiB"
        ),
        "{stderr}"
    );
    let peak_kib = result["peak_kib"].as_u64().expect("peak");
    eprintln!("peak RSS of hydrant inject: {peak_kib} KiB");
    assert!(peak_kib < 64 * 1024, "peak RSS {peak_kib} KiB");
    // Generous on a loaded machine: the denial takes milliseconds, the unbounded copy took
    // seconds and gigabytes.
    assert!(elapsed < Duration::from_secs(20), "{elapsed:?}");
}

/// `agent-inject: yes` unquoted is a YAML boolean where Kubernetes wants a string: the error
/// names the field as Kubernetes writes it, and the fix.
#[test]
fn an_unquoted_boolean_annotation_is_refused_naming_the_field() {
    let manifest = "\
apiVersion: apps/v1
kind: Deployment
metadata: {name: shop}
spec:
  selector: {matchLabels: {app: shop}}
  template:
    metadata:
      labels: {app: shop}
      annotations:
        vault.hashicorp.com/agent-inject: yes
        vault.hashicorp.com/role: shop
    spec:
      containers: [{name: shop, image: shop:1}]
";
    let line = Hydrant::new(["inject", "--vault-addr", "https://v:8200", "-f", "-"])
        .stdin_text(manifest)
        .run()
        .failure(1);
    assert_eq!(
        line,
        "hydrant: Deployment/shop: spec.template.metadata.annotations[\"vault.hashicorp.com/agent-inject\"]: a boolean where Kubernetes wants a string; quote it"
    );
}

/// vault-k8s's consul-template templates through `hydrant inject`: the agent container renders
/// them against OpenBao as `bao agent` does (delimiters and a missing key included), and a
/// template that does not parse denies the Deployment with line and column.
#[test]
fn consul_template_annotations_render_through_inject_as_bao_agent_renders_them() {
    use crate::consul_template::{Case, both, case};
    let vault = seeded();
    let delimited = "[[ with secret \"secret/data/app/db\" ]]user=[[ .Data.data.username ]] {{ literal }}\n[[ end ]]";
    let missing = "{{- with secret \"secret/data/app/config\" }}{{ .Data.data.name }}:{{ .Data.data.port }}:{{ .Data.data.nope }}{{ end -}}\n";
    let deployment = inject(
        &vault,
        json!({
            "vault.hashicorp.com/agent-inject": "true",
            "vault.hashicorp.com/role": "shop",
            "vault.hashicorp.com/agent-pre-populate-only": "true",
            "vault.hashicorp.com/agent-inject-template-delimited": delimited,
            "vault.hashicorp.com/agent-template-left-delim-delimited": "[[",
            "vault.hashicorp.com/agent-template-right-delim-delimited": "]]",
            "vault.hashicorp.com/agent-inject-template-missing": missing,
            // vault-k8s renders its default template with these delimiters: its actions stay text.
            "vault.hashicorp.com/agent-inject-secret-plain": "secret/data/app/config",
            "vault.hashicorp.com/agent-template-left-delim-plain": "[[",
            "vault.hashicorp.com/agent-template-right-delim-plain": "]]",
        }),
    );
    let root = vault.path("root");
    let (_reviewer, token) = shop_token(&vault);
    run_agent_container(&vault, &deployment, "vault-agent-init", &root, &token);
    let secrets = root.join("vault/secrets");

    let oracle = both(
        &vault,
        &vault.token(&["app"]),
        &[
            Case {
                hcl: "left_delimiter = \"[[\"\n  right_delimiter = \"]]\"",
                extra: json!({"left_delimiter": "[[", "right_delimiter": "]]"}),
                ..case("delimited", delimited)
            },
            case("missing", missing),
            Case {
                hcl: "left_delimiter = \"[[\"\n  right_delimiter = \"]]\"",
                extra: json!({"left_delimiter": "[[", "right_delimiter": "]]"}),
                // vault-k8s's default map template, as its config.go writes it.
                ..case(
                    "plain",
                    "{{ with secret \"secret/data/app/config\" }}{{ range $k, $v := .Data }}{{ $k }}: {{ $v }}\n{{ end }}{{ end }}",
                )
            },
        ],
    );
    let bao = oracle.bao.expect("bao agent");
    assert_eq!(read(&secrets.join("delimited")), bao[0]);
    assert_eq!(read(&secrets.join("missing")), bao[1]);
    assert_eq!(read(&secrets.join("plain")), bao[2]);

    let deployment = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "shop", "namespace": "team-a"},
        "spec": {"selector": {"matchLabels": {"app": "shop"}}, "template": {
            "metadata": {"labels": {"app": "shop"}, "annotations": {
                "vault.hashicorp.com/agent-inject": "true",
                "vault.hashicorp.com/role": "shop",
                "vault.hashicorp.com/agent-inject-template-db": "ok\n{{ with secret \"secret/data/app/db\" }}{{ .Data.data.password }}"}},
            "spec": {"containers": [{"name": "shop", "image": "shop:1"}]}}}
    });
    let input = vault.file("broken.json", &deployment.to_string());
    let line = Hydrant::new(["inject", "--vault-addr", &vault.addr, "-f"])
        .run_with_arg(&input)
        .failure(1);
    assert!(
        line.contains("vault.hashicorp.com/agent-inject-template-db: line 2 column"),
        "{line}"
    );
}

/// Runs `hydrant inject` on a Deployment of `shop` with these pod annotations and containers,
/// with more flags; returns the mutated Deployment and what the run said on standard error.
fn inject_containers(
    vault: &Vault,
    flags: &[&str],
    annotations: Value,
    containers: Value,
) -> (Value, String) {
    let deployment = json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "shop", "namespace": "team-a"},
        "spec": {
            "selector": {"matchLabels": {"app": "shop"}},
            "template": {
                "metadata": {"labels": {"app": "shop"}, "annotations": annotations},
                "spec": {"containers": containers}
            }
        }
    });
    let input = vault.file("deployment.json", &deployment.to_string());
    let mut args: Vec<&std::ffi::OsStr> = vec!["--vault-addr".as_ref(), vault.addr.as_ref()];
    args.extend(flags.iter().map(std::ffi::OsStr::new));
    args.extend(["-f".as_ref(), input.as_os_str()]);
    let run = Hydrant::new(["inject"]).run_with_args(&args).success();
    let docs: Vec<Value> = serde_saphyr::from_multiple(&run.stdout()).expect("YAML out");
    (docs.into_iter().next().expect("one document"), run.stderr())
}

/// Runs the pod's `hydrant-install` init container here, its volume under `root`.
pub(crate) fn run_install(deployment: &Value, root: &Path) {
    let install = container(deployment, "hydrant-install");
    let command: Vec<String> = serde_json::from_value(install["command"].clone()).expect("command");
    assert_eq!(
        command,
        ["/usr/local/bin/hydrant", "install", "--to", "/hydrant/bin"]
    );
    let to = root.join("hydrant/bin");
    fs::create_dir_all(&to).expect("mkdir");
    Hydrant::new(&command[1..3]).run_with_arg(&to).success();
}

/// Runs app container `name` as the kubelet would, from the copy `hydrant-install` made under
/// `root`: its command and args, its env (paths in `HYDRANT_AGENT_CONFIG` mapped, the token in
/// a file), hydrant logging at trace. Returns the output.
pub(crate) fn run_app_container(
    vault: &Vault,
    deployment: &Value,
    name: &str,
    root: &Path,
    token: &str,
) -> std::process::Output {
    let app = container(deployment, name);
    let mut argv: Vec<String> = serde_json::from_value(app["command"].clone()).expect("command");
    argv.extend(
        app["args"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|a| a.as_str().expect("string").to_owned()),
    );
    assert_eq!(
        argv[..3],
        ["/hydrant/bin/hydrant", "exec", "--"],
        "{argv:?}"
    );
    let token_file = vault.file("sa/token", token);
    let mut command = std::process::Command::new(root.join("hydrant/bin/hydrant"));
    command
        .args(&argv[1..])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HYDRANT_LOG", "trace");
    for var in app["env"].as_array().expect("env") {
        let value = var["value"].as_str().expect("a plain value").to_owned();
        let value = if var["name"] == "HYDRANT_AGENT_CONFIG" {
            value
                .replace(
                    "/var/run/secrets/hydrant.dev/serviceaccount/token",
                    &token_file.display().to_string(),
                )
                .replace(
                    "/var/run/secrets/kubernetes.io/serviceaccount/token",
                    &token_file.display().to_string(),
                )
        } else {
            value
        };
        command.env(var["name"].as_str().expect("name"), value);
    }
    command.output().expect("run the copied hydrant")
}

/// bank-vaults' convention through `hydrant inject`: the `vault:` values leave the container's
/// env (only references are in the output), the copy `hydrant-install` makes runs the command
/// under `hydrant exec` against OpenBao, and the command sees the values; no value is in any
/// log line at trace.
#[test]
fn a_deployment_with_vault_env_values_runs_its_command_under_the_copied_hydrant_exec() {
    let vault = seeded();
    let (deployment, warnings) = inject_containers(
        &vault,
        &[],
        json!({"hydrant.dev/inject": "true", "hydrant.dev/role": "shop"}),
        json!([{
            "name": "shop",
            "image": "shop:1",
            "command": ["/usr/bin/env"],
            "env": [
                {"name": "DB_PASSWORD", "value": "vault:secret/data/app/db#password"},
                {"name": "PORT", "value": "vault:secret/data/app/config#port"},
                {"name": "GREETING", "value": "hello"},
            ]
        }]),
    );
    assert_eq!(warnings, "");
    let text = deployment.to_string();
    assert!(!text.contains(PASSWORD), "no value in the manifest");
    assert!(
        !text.contains("vault:secret"),
        "no vault: value left: {text}"
    );
    let spec = &deployment["spec"]["template"]["spec"];
    assert_eq!(
        spec["initContainers"].as_array().expect("init").len(),
        1,
        "the copy, no agent: {spec}"
    );

    let root = vault.path("root");
    let (_reviewer, token) = shop_token(&vault);
    run_install(&deployment, &root);
    let output = run_app_container(&vault, &deployment, "shop", &root, &token);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let env: Vec<&str> = stdout.lines().collect();
    for expected in [
        format!("DB_PASSWORD={PASSWORD}").as_str(),
        "PORT=8080",
        "GREETING=hello",
    ] {
        assert!(env.contains(&expected), "{expected} in {env:?}");
    }
    assert!(
        !stdout.contains("HYDRANT_AGENT_CONFIG"),
        "hydrant's config is not passed on"
    );
    assert!(stderr.contains("DEBUG"), "logged at trace: {stderr}");
    assert!(!stderr.contains(PASSWORD), "no value in the logs: {stderr}");
}

/// hydrant's own annotations through `hydrant inject`: `hydrant.dev/env-<VAR>` (a reference
/// and a template) reach the app containers `hydrant.dev/containers` names, beside a file the
/// agent renders; the copied `hydrant exec` gives them to the command. A path the role cannot
/// read fails the start with one line naming it, and no value.
#[test]
fn a_deployment_with_env_annotations_gives_its_command_the_variables() {
    let vault = seeded();
    vault.kv2_put("other", json!({"k": "not-for-shop"}));
    let annotations = json!({
        "hydrant.dev/inject": "true",
        "hydrant.dev/role": "shop",
        "hydrant.dev/secret-config": "secret/data/app/config",
        "hydrant.dev/containers": "shop",
        "hydrant.dev/env-DB_PASSWORD": "secret/data/app/db#password",
        "hydrant.dev/env-DB_URL": "postgres://{{ secret('secret/data/app/db').data.username }}:{{ secret('secret/data/app/db').data.password }}@db/shop",
    });
    let containers = json!([
        {"name": "shop", "image": "shop:1", "command": ["/usr/bin/env"]},
        {"name": "exporter", "image": "exporter:1", "command": ["/exporter"]},
    ]);
    let (deployment, _) = inject_containers(&vault, &[], annotations.clone(), containers.clone());
    assert!(!deployment.to_string().contains(PASSWORD));
    let init: Vec<&str> = deployment["spec"]["template"]["spec"]["initContainers"]
        .as_array()
        .expect("init")
        .iter()
        .map(|c| c["name"].as_str().expect("name"))
        .collect();
    assert_eq!(init, ["hydrant-install", "vault-agent"]);
    assert_eq!(
        container(&deployment, "exporter")["command"],
        json!(["/exporter"])
    );

    let root = vault.path("root");
    let (_reviewer, token) = shop_token(&vault);
    run_install(&deployment, &root);
    let output = run_app_container(&vault, &deployment, "shop", &root, &token);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let env: Vec<&str> = stdout.lines().collect();
    assert!(
        env.contains(&format!("DB_PASSWORD={PASSWORD}").as_str()),
        "{env:?}"
    );
    assert!(
        env.contains(&format!("DB_URL=postgres://app-user:{PASSWORD}@db/shop").as_str()),
        "{env:?}"
    );
    assert!(!stderr.contains(PASSWORD), "no value in the logs: {stderr}");

    let mut denied = annotations;
    denied["hydrant.dev/env-OTHER"] = json!("secret/data/other#k");
    let (deployment, _) = inject_containers(&vault, &[], denied, containers);
    let output = run_app_container(&vault, &deployment, "shop", &root, &token);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(output.stdout.is_empty(), "the command never ran");
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("hydrant: ") && last.contains("secret/data/other"),
        "one line naming the path: {last}"
    );
    assert!(!stderr.contains(PASSWORD) && !stderr.contains("not-for-shop"));
}
