//! The admission webhook: every stored AdmissionReview gets its golden answer, and the HTTPS
//! server serves, refuses what is not a review, reloads its certificate and counts.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use hydrant::webhook::review::{Outcome, review};
use injector::InjectorSettings;
use serde_json::Value;

use crate::util;

fn settings() -> InjectorSettings {
    InjectorSettings::new(
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
            limits: hydrant::webhook::Limits::default(),
            settings: settings(),
            self_managed: None,
            registry: hydrant::registry::RegistryArgs::default(),
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
    let text = util::check_metrics_endpoint(&format!("{}/metrics", server.url));
    for zero in [
        "hydrant_webhook_requests_total{result=\"busy\"} 0",
        "hydrant_webhook_denials_total{reason=\"too_large\"} 0",
        "hydrant_webhook_denials_total{reason=\"excluded_namespace\"} 0",
    ] {
        assert!(
            text.contains(zero),
            "{zero} present from the start:\n{text}"
        );
    }
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

/// The real `hydrant webhook` binary on a free loopback port with a fresh certificate, killed
/// when dropped. `shell` runs before it in `sh` (to lower a limit, say); `env` is added to its
/// otherwise empty environment.
struct WebhookProcess {
    child: util::KillOnDrop,
    url: String,
    addr: std::net::SocketAddr,
    pki: Pki,
    _dir: tempfile::TempDir,
}

impl WebhookProcess {
    fn start(shell: &str, env: &[(&str, &str)]) -> WebhookProcess {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let pki = pki("process");
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("tls.crt"), &pki.cert_pem).expect("cert");
        std::fs::write(dir.path().join("tls.key"), &pki.key_pem).expect("key");
        let addr: std::net::SocketAddr = format!("127.0.0.1:{}", util::free_port())
            .parse()
            .expect("addr");
        let log = std::fs::File::create(dir.path().join("webhook.log")).expect("log");
        let child = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("{shell}\nexec \"$0\" \"$@\""))
            .arg(env!("CARGO_BIN_EXE_hydrant"))
            .args(["webhook", "--listen", &addr.to_string(), "--tls-cert"])
            .arg(dir.path().join("tls.crt"))
            .arg("--tls-key")
            .arg(dir.path().join("tls.key"))
            .args(["--vault-addr", "https://vault.vault.svc:8200"])
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .envs(env.iter().copied())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start hydrant webhook");
        let process = WebhookProcess {
            child: util::KillOnDrop(child),
            url: format!("https://{addr}"),
            addr,
            pki,
            _dir: dir,
        };
        let client = Server::client(&process.pki.ca_pem);
        util::wait_for(
            "the webhook to serve",
            std::time::Duration::from_secs(20),
            || {
                client
                    .get(format!("{}/healthz", process.url))
                    .send()
                    .is_ok_and(|r| r.status() == 200)
            },
        );
        process
    }

    fn pid(&self) -> u32 {
        self.child.0.id()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("webhook.log")).unwrap_or_default()
    }

    /// The peak resident set (VmHWM) so far, in bytes.
    fn peak_rss(&self) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).expect("status");
        let kib: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmHWM in /proc/PID/status");
        kib * 1024
    }
}

/// One TCP connection to `addr` that never sends a byte, as a TLS client that stalls before
/// its ClientHello would.
fn half_open(addr: std::net::SocketAddr) -> std::net::TcpStream {
    std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_secs(5)).expect("connect")
}

/// Whether the server closed `stream` before `deadline` (end of file or a reset).
fn closed_by_server(mut stream: &std::net::TcpStream, deadline: std::time::Instant) -> bool {
    use std::io::Read as _;
    let mut byte = [0u8; 1];
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return false;
        }
        stream.set_read_timeout(Some(left)).expect("read timeout");
        match stream.read(&mut byte) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return false;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => panic!("reading a half-open connection: {e}"),
        }
    }
}

/// The hardening issue, item 4: 1,000 half-open TLS connections stayed open for 70 s and, with
/// `nofile=256`, every review timed out. Here 300 connections that never send a ClientHello
/// meet a webhook started under a soft limit of 256 descriptors: a review must still be
/// answered within a second, and the server must close every one of them within its TLS
/// handshake timeout (2 s here) and some slack.
#[test]
fn half_open_connections_are_closed_by_the_handshake_timeout_while_a_review_is_answered() {
    const HANDSHAKE: std::time::Duration = std::time::Duration::from_secs(2);
    let webhook =
        WebhookProcess::start("ulimit -Sn 256", &[("HYDRANT_TLS_HANDSHAKE_TIMEOUT", "2s")]);
    let opened = std::time::Instant::now();
    let stalled: Vec<_> = (0..300).map(|_| half_open(webhook.addr)).collect();
    // Let the server accept them all before the review competes with them.
    std::thread::sleep(std::time::Duration::from_millis(300));

    let client = Server::client(&webhook.pki.ca_pem);
    let body = std::fs::read(fixtures().join("vault-k8s-secret-map-native.json")).expect("fixture");
    let started = std::time::Instant::now();
    let answer = client
        .post(format!("{}/mutate", webhook.url))
        .header("content-type", "application/json")
        .body(body)
        .send();
    let took = started.elapsed();
    let status = answer.map(|r| r.status().as_u16());
    assert!(
        matches!(status, Ok(200)) && took < std::time::Duration::from_secs(1),
        "a review beside 300 half-open connections: {status:?} after {took:?}; log:\n{}",
        webhook.log()
    );

    let deadline = opened + HANDSHAKE + std::time::Duration::from_secs(4);
    let open = stalled
        .iter()
        .filter(|s| !closed_by_server(s, deadline))
        .count();
    assert_eq!(
        open,
        0,
        "half-open connections still open {:?} after they were opened; log:\n{}",
        opened.elapsed(),
        webhook.log()
    );
}

/// A review of about 3 MiB: a real one whose pod carries one huge annotation.
fn large_review(bytes: usize) -> Vec<u8> {
    let mut review: Value = serde_json::from_slice(
        &std::fs::read(fixtures().join("vault-k8s-secret-map-native.json")).expect("fixture"),
    )
    .expect("json");
    let filler = "x".repeat(bytes.saturating_sub(8 * 1024));
    review["request"]["object"]["metadata"]["annotations"]["example.com/filler"] =
        Value::String(filler);
    serde_json::to_vec(&review).expect("json")
}

/// A body that sends all but its last byte, then waits (up to a few seconds) until every
/// upload sharing `sent` has done the same: so that the webhook holds all of them at once, as
/// a client sending slowly makes it.
struct StallingBody {
    data: std::sync::Arc<Vec<u8>>,
    at: usize,
    sent: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    uploads: usize,
}

impl std::io::Read for StallingBody {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        use std::sync::atomic::Ordering;
        let last = self.data.len() - 1;
        if self.at == last {
            self.sent.fetch_add(1, Ordering::SeqCst);
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
            while self.sent.load(Ordering::SeqCst) < self.uploads
                && std::time::Instant::now() < deadline
            {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        }
        let end = if self.at < last {
            last
        } else {
            self.data.len()
        };
        let n = buf.len().min(end - self.at);
        buf[..n].copy_from_slice(&self.data[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// The hardening issue, item 4: 64 concurrent 3 MiB uploads took about 245 MiB. With the
/// in-flight body budget the webhook's peak resident set stays under the chart's 128Mi memory
/// limit while 64 clients each hold a 3 MiB review open: what does not fit is answered 503,
/// and the webhook keeps answering afterwards.
#[test]
fn concurrent_large_uploads_keep_the_webhook_under_the_chart_memory_limit() {
    const CHART_LIMIT: u64 = 128 * 1024 * 1024;
    const UPLOADS: usize = 64;
    let webhook = WebhookProcess::start(":", &[]);
    let body = std::sync::Arc::new(large_review(3 * 1024 * 1024 - 16 * 1024));
    let sent = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let url = format!("{}/mutate", webhook.url);
    let uploads: Vec<_> = (0..UPLOADS)
        .map(|_| {
            let (url, ca) = (url.clone(), webhook.pki.ca_pem.clone());
            let reader = StallingBody {
                data: body.clone(),
                at: 0,
                sent: sent.clone(),
                uploads: UPLOADS,
            };
            std::thread::spawn(move || {
                // A client each: 64 connections, as 64 attackers would open.
                let roots = reqwest::Certificate::from_pem_bundle(ca.as_bytes()).expect("ca");
                let client = reqwest::blocking::Client::builder()
                    .tls_certs_only(roots)
                    .timeout(std::time::Duration::from_secs(60))
                    .build()
                    .expect("client");
                let len = reader.data.len() as u64;
                client
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(reqwest::blocking::Body::sized(reader, len))
                    .send()
                    .map(|r| r.status().as_u16())
                    .map_err(|e| e.to_string())
            })
        })
        .collect();
    let statuses: Vec<_> = uploads
        .into_iter()
        .map(|u| u.join().expect("upload thread"))
        .collect();
    let peak = webhook.peak_rss();
    assert!(
        peak < CHART_LIMIT,
        "peak RSS {} MiB under {UPLOADS} concurrent 3 MiB uploads; answers {statuses:?}",
        peak / (1024 * 1024)
    );
    assert!(
        statuses
            .iter()
            .all(|s| matches!(s, Ok(200) | Ok(503) | Err(_))),
        "{statuses:?}"
    );
    assert!(
        statuses.iter().any(|s| matches!(s, Ok(200))),
        "some uploads are answered: {statuses:?}"
    );
    let client = Server::client(&webhook.pki.ca_pem);
    let normal =
        std::fs::read(fixtures().join("vault-k8s-secret-map-native.json")).expect("fixture");
    assert_eq!(
        post_json(&client, &url, normal).status(),
        200,
        "still answers"
    );
    let metrics = client
        .get(format!("{}/metrics", webhook.url))
        .send()
        .expect("metrics")
        .text()
        .expect("text");
    assert!(
        metrics.contains("hydrant_webhook_requests_total{result=\"busy\"}"),
        "the uploads that did not fit were refused: {metrics}"
    );
}

/// One HTTP/2 connection to the webhook (as the kube-apiserver opens), trusting `ca_pem`.
async fn h2_connection(
    addr: std::net::SocketAddr,
    ca_pem: &str,
) -> hyper::client::conn::http2::SendRequest<axum::body::Body> {
    use rustls::pki_types::pem::PemObject as _;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.expect("CA pem")).expect("CA");
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
    let tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
        .connect(name, tcp)
        .await
        .expect("TLS");
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]), "HTTP/2");
    let (sender, connection) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tls),
    )
    .await
    .expect("HTTP/2 handshake");
    tokio::spawn(connection);
    sender
}

/// A streamed body that holds back its last 64 KiB until every body sharing `sent` got that
/// far (or a few seconds passed): the HTTP/2 counterpart of [`StallingBody`].
fn stalling_stream(
    data: axum::body::Bytes,
    sent: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    bodies: usize,
) -> axum::body::Body {
    const CHUNK: usize = 64 * 1024;
    let stream = futures_util::stream::unfold(0usize, move |at| {
        let (data, sent) = (data.clone(), sent.clone());
        async move {
            if at >= data.len() {
                return None;
            }
            if at + CHUNK >= data.len() {
                use std::sync::atomic::Ordering;
                sent.fetch_add(1, Ordering::SeqCst);
                let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
                while sent.load(Ordering::SeqCst) < bodies && tokio::time::Instant::now() < deadline
                {
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
            }
            let end = (at + CHUNK).min(data.len());
            Some((Ok::<_, std::io::Error>(data.slice(at..end)), end))
        }
    });
    axum::body::Body::from_stream(stream)
}

/// The hardening issue, item 4: one HTTP/2 connection with 100 streams took about 160 MiB.
/// 100 streams of 3 MiB reviews, all held open at once on one connection, keep the webhook
/// under the chart's 128Mi memory limit: the streams beyond the body budget are answered 503.
#[test]
fn one_http2_connection_with_100_large_streams_keeps_the_webhook_under_the_chart_memory_limit() {
    const CHART_LIMIT: u64 = 128 * 1024 * 1024;
    const STREAMS: usize = 100;
    let webhook = WebhookProcess::start(":", &[]);
    let body = axum::body::Bytes::from(large_review(3 * 1024 * 1024 - 16 * 1024));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let statuses: Vec<Result<u16, String>> = runtime.block_on(async {
        let sender = h2_connection(webhook.addr, &webhook.pki.ca_pem).await;
        let sent = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let streams: Vec<_> = (0..STREAMS)
            .map(|_| {
                let mut sender = sender.clone();
                let request = axum::http::Request::post(format!("{}/mutate", webhook.url))
                    .header("content-type", "application/json")
                    .header("content-length", body.len())
                    .body(stalling_stream(body.clone(), sent.clone(), STREAMS))
                    .expect("request");
                tokio::spawn(async move {
                    sender.ready().await.map_err(|e| e.to_string())?;
                    let response = sender.send_request(request).await;
                    response
                        .map(|r| r.status().as_u16())
                        .map_err(|e| e.to_string())
                })
            })
            .collect();
        let mut statuses = Vec::new();
        for stream in streams {
            statuses.push(stream.await.expect("stream task"));
        }
        statuses
    });
    let peak = webhook.peak_rss();
    assert!(
        peak < CHART_LIMIT,
        "peak RSS {} MiB under {STREAMS} streams of 3 MiB on one connection; answers {statuses:?}",
        peak / (1024 * 1024)
    );
    assert!(
        statuses.iter().any(|s| matches!(s, Ok(200))),
        "some streams are answered: {statuses:?}"
    );
    assert!(
        statuses.iter().any(|s| matches!(s, Ok(503))),
        "the streams that did not fit are refused 503: {statuses:?}"
    );
    let client = Server::client(&webhook.pki.ca_pem);
    let normal =
        std::fs::read(fixtures().join("vault-k8s-secret-map-native.json")).expect("fixture");
    assert_eq!(
        post_json(&client, &format!("{}/mutate", webhook.url), normal).status(),
        200,
        "still answers"
    );
}

/// TLS to the webhook with `alpn`, then nothing: a client that holds a connection open.
async fn silent_tls(
    addr: std::net::SocketAddr,
    ca_pem: &str,
    alpn: &[u8],
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    use rustls::pki_types::pem::PemObject as _;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.expect("CA pem")).expect("CA");
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![alpn.to_vec()];
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
    tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
        .connect(name, tcp)
        .await
        .expect("TLS")
}

/// The hardening issue, item 4: hyper's header read timeout did nothing without a timer, and
/// nothing closed an idle connection. An HTTP/1 client that never sends its request head is
/// cut off by the header read timeout, and an HTTP/2 connection with no stream by the idle
/// timeout (1 s each here, generous slack for a loaded machine).
#[test]
fn silent_http1_and_idle_http2_connections_are_closed() {
    use tokio::io::AsyncReadExt as _;
    let webhook = WebhookProcess::start(
        ":",
        &[
            ("HYDRANT_HEADER_READ_TIMEOUT", "1s"),
            ("HYDRANT_IDLE_TIMEOUT", "1s"),
        ],
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let slack = std::time::Duration::from_secs(6);
        let mut h1 = silent_tls(webhook.addr, &webhook.pki.ca_pem, b"http/1.1").await;
        let mut rest = Vec::new();
        let read = tokio::time::timeout(slack, h1.read_to_end(&mut rest)).await;
        assert!(
            read.is_ok(),
            "an HTTP/1 connection without a request head is still open after {slack:?}"
        );

        let h2 = silent_tls(webhook.addr, &webhook.pki.ca_pem, b"h2").await;
        let (_sender, connection) =
            hyper::client::conn::http2::handshake::<_, _, axum::body::Body>(
                hyper_util::rt::TokioExecutor::new(),
                hyper_util::rt::TokioIo::new(h2),
            )
            .await
            .expect("HTTP/2 handshake");
        assert!(
            tokio::time::timeout(slack, connection).await.is_ok(),
            "an HTTP/2 connection without a stream is still open after {slack:?}"
        );
    });
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

/// `hydrant check-webhook`, the chart's `helm test`: against the real webhook it passes; with
/// another CA it fails naming the certificate problem; a missing CA file is a usage error.
#[test]
fn check_webhook_passes_against_the_webhook_and_fails_against_a_wrong_ca() {
    let webhook = WebhookProcess::start("", &[]);
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = dir.path().join("ca.crt");
    std::fs::write(&ca, &webhook.pki.ca_pem).expect("ca");
    let url = format!("{}/mutate", webhook.url);
    let run = util::Hydrant::new(["check-webhook", "--url", &url, "--ca-cert"])
        .run_with_arg(&ca)
        .success();
    assert!(
        run.stdout()
            .contains("a pod asking for nothing is allowed unchanged"),
        "{}",
        run.stdout()
    );

    std::fs::write(&ca, pki("other").ca_pem).expect("other ca");
    let error = util::Hydrant::new([
        "check-webhook",
        "--attempts",
        "1",
        "--url",
        &url,
        "--ca-cert",
    ])
    .run_with_arg(&ca)
    .failure(1);
    assert!(
        error.contains("no answer from") && error.contains("certificate"),
        "{error}"
    );

    let error = util::Hydrant::new(["check-webhook", "--url", &url, "--ca-cert"])
        .run_with_arg(dir.path().join("absent.crt"))
        .failure(64);
    assert!(error.contains("--ca-cert: cannot read"), "{error}");
}

/// The webhook's JSON log: one line per injection (pod, namespace, mode), a denial's text in a
/// field of its own (a second `message` key is lost to every JSON parser), addresses without
/// Rust's `Some(..)`.
#[test]
fn json_log_lines_name_each_injection_and_keep_one_message_per_line() {
    let webhook = WebhookProcess::start("", &[("HYDRANT_LOG_FORMAT", "json")]);
    let client = Server::client(&webhook.pki.ca_pem);
    for fixture in [
        "vault-k8s-secret-map-native.json",
        "denied-mixed-families.json",
    ] {
        let body = std::fs::read(fixtures().join(fixture)).expect("fixture");
        let status = post_json(&client, &format!("{}/mutate", webhook.url), body).status();
        assert_eq!(status, 200, "{fixture}");
    }
    let log = webhook.log();
    let lines: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    for line in log.lines() {
        assert_eq!(line.matches("\"message\":").count(), 1, "{line}");
        assert!(!line.contains("Some("), "{line}");
    }
    let find = |message: &str| {
        lines
            .iter()
            .find(|l| l["message"] == message)
            .unwrap_or_else(|| panic!("no {message:?} line in:\n{log}"))
    };
    let serving = find("webhook serving");
    assert_eq!(serving["listen"], webhook.addr.to_string());
    let injected = find("injected");
    assert_eq!(injected["level"], "INFO");
    assert_eq!(injected["namespace"], "team-a", "{injected}");
    assert_eq!(injected["mode"], "native", "{injected}");
    assert!(
        injected["pod"].as_str().is_some_and(|p| !p.is_empty()),
        "{injected}"
    );
    let denied = find("injection denied");
    assert_eq!(denied["reason"], "mixed_families", "{denied}");
    assert!(
        denied["denial"]
            .as_str()
            .is_some_and(|d| d.contains("vault.hashicorp.com")),
        "{denied}"
    );
}

/// vault-k8s's spelling of levels: `HYDRANT_LOG=warning` keeps warnings (it once named a target
/// and turned every line off) and drops info.
#[test]
fn hydrant_log_warning_keeps_warnings_and_drops_info() {
    let webhook = WebhookProcess::start("", &[("HYDRANT_LOG", "warning")]);
    std::fs::write(webhook._dir.path().join("tls.crt"), "not a certificate\n").expect("junk");
    util::wait_for(
        "the reload warning",
        std::time::Duration::from_secs(20),
        || {
            webhook
                .log()
                .contains("cannot reload the serving certificate")
        },
    );
    assert!(
        !webhook.log().contains("webhook serving"),
        "{}",
        webhook.log()
    );
}
