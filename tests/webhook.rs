//! The admission webhook: every stored AdmissionReview gets its golden answer, and the HTTPS
//! server serves, refuses what is not a review, reloads its certificate and counts.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use hydrant::webhook::review::{Outcome, review};
use injector::Settings;
use serde_json::Value;

use crate::util;

fn settings() -> Settings {
    Settings::new(
        "https://vault.vault.svc:8200",
        "ghcr.io/hydrant-dev/hydrant:test",
    )
}

fn fixtures() -> PathBuf {
    util::root().join("tests/fixtures/admission")
}

/// The response with its base64 patch decoded, so that golden files and diffs can be read.
fn readable(mut body: Value) -> Value {
    if let Some(patch) = body["response"]["patch"].as_str() {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(patch)
            .expect("base64 patch");
        body["response"]["patch"] = serde_json::from_slice(&bytes).expect("a JSON patch");
    }
    body
}

fn compare_golden(path: &Path, actual: &str) {
    if std::env::var_os("HYDRANT_BLESS").is_some() {
        std::fs::write(path, actual).expect("write golden");
        return;
    }
    let expected = std::fs::read_to_string(path).unwrap_or_else(|_| {
        panic!(
            "no golden file {}; run with HYDRANT_BLESS=1 to create it",
            path.display()
        )
    });
    if expected != actual {
        let diff = similar::TextDiff::from_lines(expected.as_str(), actual);
        panic!(
            "{} differs from the golden answer:\n{}",
            path.display(),
            diff.unified_diff()
                .context_radius(3)
                .header("expected", "actual")
        );
    }
}

#[test]
fn every_fixture_review_gets_its_golden_answer() {
    let mut names: Vec<PathBuf> = std::fs::read_dir(fixtures())
        .expect("fixtures")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    names.sort();
    assert!(names.len() >= 20, "fixtures present");
    for path in names {
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .expect("name")
            .to_owned();
        let body = std::fs::read(&path).expect("read fixture");
        let answer = review(&body, &settings()).unwrap_or_else(|e| panic!("{stem}: {e}"));
        let request: Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(
            answer.body["response"]["uid"], request["request"]["uid"],
            "{stem}: uid echoed"
        );
        assert_eq!(
            answer.body["apiVersion"], request["apiVersion"],
            "{stem}: answered in kind"
        );
        match stem.split_once('-').map(|(kind, _)| kind) {
            Some("denied") => {
                let reason = stem.trim_start_matches("denied-").replace('-', "_");
                assert_eq!(answer.outcome, Outcome::Denied(leak(reason)), "{stem}");
                assert_eq!(answer.body["response"]["allowed"], false, "{stem}");
                let message = answer.body["response"]["status"]["message"]
                    .as_str()
                    .expect("message");
                assert!(message.starts_with("hydrant: "), "{stem}: {message}");
            }
            Some("allowed") => {
                assert_eq!(answer.outcome, Outcome::Allowed, "{stem}");
                assert!(answer.body["response"].get("patch").is_none(), "{stem}");
            }
            _ => {
                assert_eq!(answer.outcome, Outcome::Patched, "{stem}");
                assert_eq!(answer.body["response"]["patchType"], "JSONPatch", "{stem}");
            }
        }
        let golden = fixtures().join("expected").join(format!("{stem}.json"));
        let actual = serde_json::to_string_pretty(&readable(answer.body)).expect("json") + "\n";
        compare_golden(&golden, &actual);
    }
}

fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

#[test]
fn the_patch_of_every_injected_fixture_applies_to_its_pod() {
    for entry in std::fs::read_dir(fixtures()).expect("fixtures") {
        let path = entry.expect("entry").path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let body = std::fs::read(&path).expect("read");
        let answer = review(&body, &settings()).expect("valid");
        if answer.outcome != Outcome::Patched {
            continue;
        }
        let request: Value = serde_json::from_slice(&body).expect("json");
        let mut pod = request["request"]["object"].clone();
        let ops = readable(answer.body)["response"]["patch"].clone();
        let patch: json_patch::Patch = serde_json::from_value(ops).expect("patch");
        json_patch::patch(&mut pod, &patch).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let _: k8s_openapi::api::core::v1::Pod = serde_json::from_value(pod).expect("still a pod");
    }
}

#[test]
fn bodies_that_are_not_reviews_are_refused_with_the_reason() {
    let cases: [(&[u8], &str); 4] = [
        (b"not json", "the body is not JSON"),
        (
            br#"{"kind": "Pod", "apiVersion": "v1"}"#,
            "not an AdmissionReview",
        ),
        (
            br#"{"kind": "AdmissionReview", "apiVersion": "admission.k8s.io/v2"}"#,
            "not an AdmissionReview",
        ),
        (
            br#"{"kind": "AdmissionReview", "apiVersion": "admission.k8s.io/v1"}"#,
            "no request",
        ),
    ];
    for (body, want) in cases {
        let err = review(body, &settings()).expect_err("refused");
        assert!(err.to_string().contains(want), "{err}");
    }
}

/// A certificate authority and a serving certificate for 127.0.0.1, as PEM.
struct Pki {
    ca_pem: String,
    cert_pem: String,
    key_pem: String,
}

fn pki(name: &str) -> Pki {
    let ca_key = rcgen::KeyPair::generate().expect("ca key");
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, format!("{name} CA"));
    let ca = ca_params.self_signed(&ca_key).expect("ca");
    let issuer = rcgen::Issuer::from_params(&ca_params, &ca_key);
    let key = rcgen::KeyPair::generate().expect("key");
    let params =
        rcgen::CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
            .expect("params");
    let cert = params.signed_by(&key, &issuer).expect("cert");
    Pki {
        ca_pem: ca.pem(),
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    }
}

/// The webhook served in this process on a free port, stopped when dropped.
struct Server {
    url: String,
    dir: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    fn start(pki: &Pki, max_body_bytes: usize) -> Server {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("tls.crt"), &pki.cert_pem).expect("cert");
        std::fs::write(dir.path().join("tls.key"), &pki.key_pem).expect("key");
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        std_listener.set_nonblocking(true).expect("nonblocking");
        let url = format!("https://{}", std_listener.local_addr().expect("addr"));
        let options = hydrant::webhook::Options {
            listen: std_listener.local_addr().expect("addr"),
            tls_cert: dir.path().join("tls.crt"),
            tls_key: dir.path().join("tls.key"),
            request_timeout: std::time::Duration::from_secs(5),
            max_body_bytes,
            settings: settings(),
            self_managed: None,
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(std_listener).expect("listener");
                hydrant::webhook::serve(listener, options, async {
                    let _ = stopped.await;
                })
                .await
                .expect("serves");
            });
        });
        Server {
            url,
            dir,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    fn client(ca_pem: &str) -> reqwest::blocking::Client {
        let roots = reqwest::Certificate::from_pem_bundle(ca_pem.as_bytes()).expect("ca");
        reqwest::blocking::Client::builder()
            .tls_certs_only(roots)
            .timeout(std::time::Duration::from_secs(5))
            .build()
            .expect("client")
    }

    /// Stops the server and waits for it, returning how long the drain took.
    fn shutdown(mut self) -> std::time::Duration {
        let started = std::time::Instant::now();
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            thread.join().expect("server thread");
        }
        started.elapsed()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

fn post_json(
    client: &reqwest::blocking::Client,
    url: &str,
    body: Vec<u8>,
) -> reqwest::blocking::Response {
    client
        .post(url)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .expect("request")
}

#[test]
fn the_https_server_reviews_probes_and_counts() {
    let pki = pki("first");
    let server = Server::start(&pki, 3 * 1024 * 1024);
    let client = Server::client(&pki.ca_pem);
    for probe in ["healthz", "readyz"] {
        let r = client
            .get(format!("{}/{probe}", server.url))
            .send()
            .expect("probe");
        assert_eq!(r.status(), 200, "{probe}");
    }
    let body = std::fs::read(fixtures().join("vault-k8s-secret-map-native.json")).expect("fixture");
    let response = post_json(&client, &format!("{}/mutate", server.url), body);
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().expect("json");
    assert_eq!(
        answer["response"]["uid"],
        "2f0c1e8a-0001-4a7b-9c3d-000000000001"
    );
    assert!(
        answer["response"]["patch"].is_string(),
        "base64, as the API documents"
    );
    let denied = std::fs::read(fixtures().join("denied-mixed-families.json")).expect("fixture");
    let answer: Value = post_json(&client, &format!("{}/mutate", server.url), denied)
        .json()
        .expect("json");
    assert_eq!(answer["response"]["allowed"], false);

    let response = post_json(
        &client,
        &format!("{}/mutate", server.url),
        b"{\"hello\": 1}".to_vec(),
    );
    assert_eq!(response.status(), 400);
    assert!(
        response
            .text()
            .expect("text")
            .contains("not an AdmissionReview")
    );
    let response = client
        .post(format!("{}/mutate", server.url))
        .body("x")
        .send()
        .expect("request");
    assert_eq!(response.status(), 400, "content-type is checked");

    let metrics = client
        .get(format!("{}/metrics", server.url))
        .send()
        .expect("metrics")
        .text()
        .expect("text");
    assert!(
        metrics.contains("hydrant_webhook_requests_total{result=\"patched\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("hydrant_webhook_requests_total{result=\"denied\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("hydrant_webhook_requests_total{result=\"invalid\"} 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("hydrant_webhook_denials_total{reason=\"mixed_families\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("hydrant_webhook_request_duration_seconds_bucket"),
        "{metrics}"
    );
    assert!(
        server.shutdown() < std::time::Duration::from_secs(5),
        "drains promptly"
    );
}

#[test]
fn an_oversized_body_is_refused() {
    let pki = pki("small");
    let server = Server::start(&pki, 16 * 1024);
    let client = Server::client(&pki.ca_pem);
    let response = post_json(
        &client,
        &format!("{}/mutate", server.url),
        vec![b' '; 64 * 1024],
    );
    assert_eq!(response.status(), 413);
}

#[test]
fn a_new_certificate_is_served_without_a_restart() {
    let first = pki("first");
    let server = Server::start(&first, 3 * 1024 * 1024);
    let old_client = Server::client(&first.ca_pem);
    assert_eq!(
        old_client
            .get(format!("{}/healthz", server.url))
            .send()
            .expect("ok")
            .status(),
        200
    );

    let second = pki("second");
    std::fs::write(server.dir.path().join("tls.key"), &second.key_pem).expect("key");
    std::fs::write(server.dir.path().join("tls.crt"), &second.cert_pem).expect("cert");
    let new_client = Server::client(&second.ca_pem);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        if new_client
            .get(format!("{}/healthz", server.url))
            .send()
            .is_ok()
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the new certificate was never served"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let fresh_old = Server::client(&first.ca_pem);
    assert!(
        fresh_old
            .get(format!("{}/healthz", server.url))
            .send()
            .is_err(),
        "new handshakes get the new certificate"
    );
}

/// The hardening issue's attack on the webhook: a 2 KB review whose `agent-json-patch` copies
/// a value into itself 19 times (about 1 GiB before the fix). The real `hydrant webhook`
/// binary denies it naming the annotation and its bound, and its peak RSS (VmHWM, which only
/// grows) stays where it was after an ordinary review.
#[test]
fn the_webhook_denies_a_self_doubling_json_patch_without_growing() {
    let pki = pki("doubling");
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("tls.crt"), &pki.cert_pem).expect("cert");
    std::fs::write(dir.path().join("tls.key"), &pki.key_pem).expect("key");
    let port = util::free_port();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_hydrant"))
        .args(["webhook", "--vault-addr", "https://v:8200", "--listen"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("--tls-cert")
        .arg(dir.path().join("tls.crt"))
        .arg("--tls-key")
        .arg(dir.path().join("tls.key"))
        .env_clear()
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start webhook");
    let webhook = util::KillOnDrop(child);
    let pid = webhook.0.id();
    util::wait_for(
        "the webhook to listen",
        std::time::Duration::from_secs(20),
        || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok(),
    );
    let peak_kib = || {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .expect("VmHWM")
    };
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = Server::client(&pki.ca_pem);
    let url = format!("https://127.0.0.1:{port}/mutate");
    let review = |patch: Option<String>| {
        let mut annotations = serde_json::json!({
            "vault.hashicorp.com/agent-inject": "true",
            "vault.hashicorp.com/role": "app",
            "vault.hashicorp.com/agent-inject-secret-db": "secret/data/db",
        });
        if let Some(patch) = patch {
            annotations["vault.hashicorp.com/agent-json-patch"] = Value::String(patch);
        }
        serde_json::json!({
            "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "request": {
                "uid": "doubling", "name": "p", "namespace": "team-a", "operation": "CREATE",
                "kind": {"group": "", "version": "v1", "kind": "Pod"},
                "resource": {"group": "", "version": "v1", "resource": "pods"},
                "userInfo": {"username": "someone"},
                "object": {"apiVersion": "v1", "kind": "Pod",
                    "metadata": {"name": "p", "namespace": "team-a", "annotations": annotations},
                    "spec": {"containers": [{"name": "app", "image": "app"}]}}
            }
        })
        .to_string()
        .into_bytes()
    };
    // An ordinary review first, so that the baseline holds what answering costs.
    let answer: Value = post_json(&client, &url, review(None)).json().expect("json");
    assert_eq!(answer["response"]["allowed"], true, "{answer}");
    let before = peak_kib();

    let mut ops =
        vec![serde_json::json!({"op": "add", "path": "/o", "value": {"v": "x".repeat(100)}})];
    ops.extend(
        (0..19)
            .map(|n| serde_json::json!({"op": "copy", "from": "/o", "path": format!("/o/c{n}")})),
    );
    let body = review(Some(Value::Array(ops).to_string()));
    assert!(body.len() < 4096, "a small review: {} bytes", body.len());
    let answer: Value = post_json(&client, &url, body).json().expect("json");
    assert_eq!(answer["response"]["allowed"], false, "{answer}");
    let message = answer["response"]["status"]["message"]
        .as_str()
        .expect("message");
    assert!(
        message.starts_with(
            "hydrant: vault.hashicorp.com/agent-json-patch: operation 13 would make the agent container larger than 512 KiB"
        ),
        "{message}"
    );
    let after = peak_kib();
    assert!(
        after < before + 16 * 1024 && after < 64 * 1024,
        "peak RSS went from {before} KiB to {after} KiB"
    );
}
