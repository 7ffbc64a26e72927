//! Images' ENTRYPOINT and CMD from a real registry: Debian's `docker-registry` (the CNCF
//! distribution registry) on loopback over plain HTTP, with an image whose manifest and
//! configuration the test pushes. `hydrant inject` and `hydrant webhook` read the command of a
//! container that runs under `hydrant exec` and sets none, with the credentials of a
//! `.dockerconfigjson` file when the registry asks for them; without them, or for an image the
//! registry does not have, the pod is refused naming the container, the registry and the fix.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine as _;
use serde_json::{Value, json};

use crate::inject::{run_app_container, run_install, shop_token};
use crate::util::{Hydrant, Vault, free_port, wait_for};

/// A user and password the test registry takes, and the password's bcrypt hash (htpasswd's
/// only format there).
const USER: &str = "puller";
const PASSWORD: &str = "reg-pass-1";
const PASSWORD_BCRYPT: &str = "$2b$12$7tkNtwW74IJDlYNV3UKQae2DK.cLIVUfe8Un1chmUK13Vnmf8sbd.";

/// A registry served on a loopback port from a scratch directory, stopped when dropped.
struct Registry {
    /// `127.0.0.1:PORT`.
    host: String,
    child: Child,
    _dir: tempfile::TempDir,
    auth: Option<(String, String)>,
}

fn registry_binary() -> PathBuf {
    let path = PathBuf::from("/usr/bin/docker-registry");
    assert!(
        path.exists(),
        "the tests need Debian's docker-registry package (tests/run installs it when root)"
    );
    path
}

impl Registry {
    /// Starts a registry; with `authenticated`, it asks for [`USER`] and [`PASSWORD`].
    fn start(authenticated: bool) -> Registry {
        // The test's own HTTP clients use rustls with ring, as hydrant does.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let host = format!("127.0.0.1:{port}");
        let mut config = format!(
            "version: 0.1\nlog: {{level: error}}\nstorage:\n  filesystem: {{rootdirectory: {}}}\nhttp:\n  addr: {host}\n",
            dir.path().join("data").display()
        );
        if authenticated {
            let htpasswd = dir.path().join("htpasswd");
            std::fs::write(&htpasswd, format!("{USER}:{PASSWORD_BCRYPT}\n")).expect("htpasswd");
            config.push_str(&format!(
                "auth:\n  htpasswd: {{realm: test, path: {}}}\n",
                htpasswd.display()
            ));
        }
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, config).expect("config");
        let child = Command::new(registry_binary())
            .arg("serve")
            .arg(&config_path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start docker-registry");
        let registry = Registry {
            host,
            child,
            _dir: dir,
            auth: authenticated.then(|| (USER.to_owned(), PASSWORD.to_owned())),
        };
        let probe = reqwest::blocking::Client::new();
        wait_for("the registry", Duration::from_secs(20), || {
            probe
                .get(format!("http://{}/v2/", registry.host))
                .send()
                .is_ok()
        });
        registry
    }

    fn request(&self, method: reqwest::Method, url: &str) -> reqwest::blocking::RequestBuilder {
        let request = reqwest::blocking::Client::new().request(method, url);
        match &self.auth {
            Some((user, password)) => request.basic_auth(user, Some(password)),
            None => request,
        }
    }

    /// Pushes a blob; returns its descriptor.
    fn push_blob(&self, name: &str, media_type: &str, bytes: &[u8]) -> Value {
        let digest = format!(
            "sha256:{}",
            data_encoding::HEXLOWER
                .encode(ring::digest::digest(&ring::digest::SHA256, bytes).as_ref())
        );
        let started = self
            .request(
                reqwest::Method::POST,
                &format!("http://{}/v2/{name}/blobs/uploads/", self.host),
            )
            .send()
            .expect("start an upload");
        assert_eq!(started.status(), 202, "{:?}", started.text());
        let location = started.headers()["location"]
            .to_str()
            .expect("location")
            .to_owned();
        let location = if location.starts_with("http") {
            location
        } else {
            format!("http://{}{location}", self.host)
        };
        let separator = if location.contains('?') { '&' } else { '?' };
        let done = self
            .request(
                reqwest::Method::PUT,
                &format!("{location}{separator}digest={digest}"),
            )
            .header("content-type", "application/octet-stream")
            .body(bytes.to_vec())
            .send()
            .expect("upload");
        assert_eq!(done.status(), 201, "{:?}", done.text());
        json!({"mediaType": media_type, "digest": digest, "size": bytes.len()})
    }

    /// Pushes `name:tag`: an image configuration with this ENTRYPOINT and CMD, and one layer;
    /// returns the manifest's digest.
    fn push_image(&self, name: &str, tag: &str, entrypoint: Value, cmd: Value) -> String {
        let configuration = json!({
            "architecture": "amd64",
            "os": "linux",
            "config": {"Env": ["PATH=/usr/local/bin:/usr/bin:/bin"], "Entrypoint": entrypoint, "Cmd": cmd},
            "rootfs": {"type": "layers", "diff_ids": []},
        })
        .to_string();
        self.push_image_configuration(name, tag, configuration.as_bytes())
    }

    /// Pushes `name:tag` with this image configuration and one layer; returns the manifest's
    /// digest.
    fn push_image_configuration(&self, name: &str, tag: &str, configuration: &[u8]) -> String {
        let config = self.push_blob(
            name,
            "application/vnd.oci.image.config.v1+json",
            configuration,
        );
        let layer = self.push_blob(
            name,
            "application/vnd.oci.image.layer.v1.tar+gzip",
            b"not a real layer: the registry does not look",
        );
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": config,
            "layers": [layer],
        });
        let put = self
            .request(
                reqwest::Method::PUT,
                &format!("http://{}/v2/{name}/manifests/{tag}", self.host),
            )
            .header("content-type", "application/vnd.oci.image.manifest.v1+json")
            .body(manifest.to_string())
            .send()
            .expect("push the manifest");
        assert_eq!(put.status(), 201, "{:?}", put.text());
        format!(
            "sha256:{}",
            data_encoding::HEXLOWER.encode(
                ring::digest::digest(&ring::digest::SHA256, manifest.to_string().as_bytes())
                    .as_ref()
            )
        )
    }

    /// A `.dockerconfigjson` file with this registry's credentials, in `dir`.
    fn credentials_file(&self, dir: &Path) -> PathBuf {
        let (user, password) = self.auth.clone().expect("an authenticated registry");
        let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        let path = dir.join("config.json");
        std::fs::write(
            &path,
            json!({"auths": {(format!("http://{}", self.host)): {"auth": auth}}}).to_string(),
        )
        .expect("write credentials");
        path
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The pod annotations and containers of a Deployment whose container sets no command.
fn no_command(image: &str) -> (Value, Value) {
    (
        json!({"hydrant.dev/inject": "true", "hydrant.dev/role": "shop"}),
        json!([{
            "name": "shop",
            "image": image,
            "env": [{"name": "DB_PASSWORD", "value": "vault:secret/data/app/db#password"}],
        }]),
    )
}

/// Runs `hydrant inject` on a Deployment with these annotations and containers.
fn inject(vault: &Vault, flags: &[&str], annotations: &Value, containers: &Value) -> Hydrant {
    let deployment = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "shop", "namespace": "team-a"},
        "spec": {"selector": {"matchLabels": {"app": "shop"}}, "template": {
            "metadata": {"labels": {"app": "shop"}, "annotations": annotations},
            "spec": {"containers": containers}}}
    });
    let input = vault.file("deployment.json", &deployment.to_string());
    let mut args: Vec<String> = vec!["inject".into(), "--vault-addr".into(), vault.addr.clone()];
    args.extend(flags.iter().map(|f| (*f).to_owned()));
    args.extend(["-f".to_owned(), input.display().to_string()]);
    Hydrant::new(args)
}

/// `hydrant inject` reads the image's ENTRYPOINT and CMD from an anonymous registry: the
/// container's command becomes hydrant exec and the ENTRYPOINT, its args the CMD; the
/// mutated container then runs here from the copy against OpenBao.
#[test]
fn inject_reads_the_image_s_command_from_its_registry() {
    let registry = Registry::start(false);
    let digest = registry.push_image(
        "shop",
        "1",
        json!(["/usr/bin/env"]),
        json!(["-u", "GREETING"]),
    );
    let vault = crate::inject::seeded();
    let image = format!("{}/shop:1", registry.host);
    let (annotations, containers) = no_command(&image);
    let insecure = format!("--insecure-registry={}", registry.host);
    let run = inject(&vault, &[&insecure], &annotations, &containers)
        .run()
        .success();
    let docs: Vec<Value> = serde_saphyr::from_multiple(&run.stdout()).expect("YAML");
    let deployment = &docs[0];
    let shop = &deployment["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(
        shop["command"],
        json!(["/hydrant/bin/hydrant", "exec", "--", "/usr/bin/env"])
    );
    assert_eq!(shop["args"], json!(["-u", "GREETING"]));

    let root = vault.path("root");
    let (_reviewer, token) = shop_token(&vault);
    run_install(deployment, &root);
    let output = run_app_container(&vault, deployment, "shop", &root, &token);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout
            .lines()
            .any(|l| l == format!("DB_PASSWORD={}", crate::inject::PASSWORD)),
        "{stdout}"
    );

    // By digest: the manifest's bytes are checked against it, and the command is the same.
    let (annotations, containers) = no_command(&format!("{}/shop@{digest}", registry.host));
    let run = inject(&vault, &[&insecure], &annotations, &containers)
        .run()
        .success();
    let docs: Vec<Value> = serde_saphyr::from_multiple(&run.stdout()).expect("YAML");
    let by_digest = &docs[0]["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(by_digest["command"], shop["command"]);
    assert_eq!(by_digest["args"], shop["args"]);

    // An image the registry does not have: refused naming the container, the registry, the fix.
    let (annotations, containers) = no_command(&format!("{}/shop:missing", registry.host));
    let line = inject(&vault, &[&insecure], &annotations, &containers)
        .run()
        .failure(1);
    assert!(
        line.contains("container shop runs under hydrant exec")
            && line.contains(&registry.host)
            && line.contains("set command (and args) on container shop in the pod spec"),
        "{line}"
    );
}

/// What a registry sends is bounded, not only in time: an image whose configuration is over
/// 4 MiB (its manifest says so) is refused naming the bound, before the blob is read.
#[test]
fn an_oversized_image_configuration_is_refused() {
    let registry = Registry::start(false);
    let padding = "x".repeat(5 << 20);
    let configuration = json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Entrypoint": ["/app"]},
        "history": [{"comment": padding}],
    })
    .to_string();
    registry.push_image_configuration("big", "1", configuration.as_bytes());
    let vault = crate::inject::seeded();
    let (annotations, containers) = no_command(&format!("{}/big:1", registry.host));
    let insecure = format!("--insecure-registry={}", registry.host);
    let line = inject(&vault, &[&insecure], &annotations, &containers)
        .run()
        .failure(1);
    assert!(
        line.contains(&registry.host) && line.contains("over the 4 MiB hydrant reads"),
        "{line}"
    );
}

/// A registry that asks for credentials: without them the pod is refused naming the
/// registry; with a `.dockerconfigjson` file (the chart mounts a Secret's) the command is read,
/// and the password is in no output.
#[test]
fn registry_credentials_come_from_a_dockerconfigjson_file() {
    let registry = Registry::start(true);
    registry.push_image("private/api", "2.0", json!(["/srv/api"]), Value::Null);
    let vault = crate::inject::seeded();
    let image = format!("{}/private/api:2.0", registry.host);
    let (annotations, containers) = no_command(&image);
    let insecure = format!("--insecure-registry={}", registry.host);

    let run = inject(&vault, &[&insecure], &annotations, &containers).run();
    let stderr = run.stderr();
    assert_eq!(run.code(), 1, "{stderr}");
    assert!(
        stderr.contains(&format!(
            "the configuration of its image {image} cannot be read from its registry: {}",
            registry.host
        )),
        "{stderr}"
    );

    let dir = tempfile::tempdir().expect("tempdir");
    let credentials = registry.credentials_file(dir.path());
    let run = inject(&vault, &[&insecure], &annotations, &containers)
        .env("HYDRANT_REGISTRY_CREDENTIALS", &credentials)
        .run()
        .success();
    let docs: Vec<Value> = serde_saphyr::from_multiple(&run.stdout()).expect("YAML");
    let api = &docs[0]["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(
        api["command"],
        json!(["/hydrant/bin/hydrant", "exec", "--", "/srv/api"])
    );
    assert!(api["args"].is_null(), "the image has no CMD: {api}");
    assert!(!run.stdout().contains(PASSWORD) && !run.stderr().contains(PASSWORD));
}

/// The webhook, as the API server reaches it, reads the image's command too (one review, over
/// HTTPS), with its registry flags.
#[test]
fn the_webhook_reads_the_image_s_command_from_its_registry() {
    let registry = Registry::start(true);
    registry.push_image(
        "web",
        "3",
        json!(["/docker-entrypoint.sh"]),
        json!(["nginx"]),
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let credentials = registry.credentials_file(dir.path());
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .expect("params")
        .self_signed(&key)
        .expect("cert");
    std::fs::write(dir.path().join("tls.crt"), cert.pem()).expect("cert");
    std::fs::write(dir.path().join("tls.key"), key.serialize_pem()).expect("key");
    let listen = format!("127.0.0.1:{}", free_port());
    let mut webhook = Command::new(env!("CARGO_BIN_EXE_hydrant"))
        .args([
            "webhook",
            "--listen",
            &listen,
            "--vault-addr",
            "https://vault:8200",
        ])
        .arg("--tls-cert")
        .arg(dir.path().join("tls.crt"))
        .arg("--tls-key")
        .arg(dir.path().join("tls.key"))
        .arg(format!("--insecure-registry={}", registry.host))
        .arg("--registry-credentials")
        .arg(&credentials)
        .env_clear()
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the webhook");
    let client = reqwest::blocking::Client::builder()
        .tls_certs_only(reqwest::Certificate::from_pem(cert.pem().as_bytes()))
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    wait_for("the webhook", Duration::from_secs(20), || {
        client
            .get(format!("https://{listen}/readyz"))
            .send()
            .is_ok()
    });
    let pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web-0", "namespace": "team-a", "annotations": {
            "hydrant.dev/inject": "true", "hydrant.dev/role": "web"}},
        "spec": {"containers": [{"name": "web", "image": format!("{}/web:3", registry.host),
            "env": [{"name": "TOKEN", "value": "vault:secret/data/web#token"}]}]}
    });
    let review = json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {
            "uid": "1b2c", "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": "team-a", "operation": "CREATE",
            "userInfo": {"username": "system:serviceaccount:kube-system:replicaset-controller"},
            "object": pod,
        }
    });
    let answer: Value = client
        .post(format!("https://{listen}/mutate"))
        .header("content-type", "application/json")
        .body(review.to_string())
        .send()
        .expect("review")
        .json()
        .expect("json");
    let _ = webhook.kill();
    let output = webhook.wait_with_output().expect("webhook output");
    assert_eq!(answer["response"]["allowed"], true, "{answer}");
    let patch = base64::engine::general_purpose::STANDARD
        .decode(answer["response"]["patch"].as_str().expect("a patch"))
        .expect("base64");
    let patch: json_patch::Patch = serde_json::from_slice(&patch).expect("JSON Patch");
    let mut mutated = pod;
    json_patch::patch(&mut mutated, &patch).expect("applies");
    let web = &mutated["spec"]["containers"][0];
    assert_eq!(
        web["command"],
        json!([
            "/hydrant/bin/hydrant",
            "exec",
            "--",
            "/docker-entrypoint.sh"
        ])
    );
    assert_eq!(web["args"], json!(["nginx"]));
    assert!(!String::from_utf8_lossy(&output.stderr).contains(PASSWORD));
}
