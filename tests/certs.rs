//! `hydrant webhook --self-managed-certificates` through the fake Kubernetes API service (no
//! kube-apiserver can run here): the Secret created once by one of two replicas, the CA bundle
//! in every webhook entry, both replicas serving the certificate, a CA rotation that keeps the
//! old CA trusted during the overlap, and a replica that does not hold the Lease writing nothing.

use std::path::Path;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use serde_json::{Value, json};

use crate::util::fake_kube::FakeKube;
use crate::util::{self, Hydrant, Running};

const SECRETS: &str = "/api/v1/namespaces/hydrant/secrets";
const CONFIGS: &str = "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations";
const LEASES: &str = "/apis/coordination.k8s.io/v1/namespaces/hydrant/leases";
const HOST: &str = "hydrant-webhook.hydrant.svc";

fn webhook_config(kube: &FakeKube) {
    let entry = |name: &str| {
        json!({
            "name": name, "admissionReviewVersions": ["v1"], "sideEffects": "None",
            "clientConfig": {"service": {"name": "hydrant-webhook", "namespace": "hydrant", "path": "/mutate"}},
        })
    };
    kube.put(
        CONFIGS,
        json!({
            "apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration",
            "metadata": {"name": "hydrant-webhook"},
            "webhooks": [entry("inject.hydrant.dev"), entry("inject-jobs.hydrant.dev")],
        }),
    );
}

struct Replica {
    port: u16,
    process: Running,
}

fn replica(dir: &Path, kube: &FakeKube, name: &str, extra: &[&str]) -> Replica {
    let port = util::free_port();
    let tls = dir.join(format!("{name}-tls"));
    let mut args = vec![
        "webhook".to_owned(),
        format!("--listen=127.0.0.1:{port}"),
        format!("--tls-cert={}", tls.join("tls.crt").display()),
        format!("--tls-key={}", tls.join("tls.key").display()),
        "--vault-addr=https://vault.example:8200".to_owned(),
        "--self-managed-certificates".to_owned(),
        "--namespace=hydrant".to_owned(),
        format!("--identity={name}"),
        "--cert-check-interval=300ms".to_owned(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let process = Hydrant::new(args)
        .env("KUBECONFIG", kube.kubeconfig(dir))
        .env("HYDRANT_LOG", "info")
        .spawn(&dir.join(format!("{name}.log")));
    Replica { port, process }
}

fn decode(text: &Value) -> String {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text.as_str().expect("base64 string"))
        .expect("base64");
    String::from_utf8(bytes).expect("utf-8")
}

fn secret(kube: &FakeKube, key: &str) -> Option<String> {
    kube.get(SECRETS, "hydrant-webhook-tls")
        .map(|s| decode(&s["data"][key]))
}

fn certificates(pem: &str) -> Vec<String> {
    pem.split_inclusive("-----END CERTIFICATE-----")
        .map(|c| c.trim().to_owned())
        .filter(|c| c.starts_with("-----BEGIN"))
        .collect()
}

/// GET /healthz over TLS, trusting only `roots`, reaching the replica by the Service's name.
fn healthz(port: u16, roots: &str) -> Result<u16, String> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let roots = reqwest::Certificate::from_pem_bundle(roots.as_bytes()).expect("pem");
    let builder = reqwest::blocking::Client::builder()
        .tls_certs_only(roots)
        .resolve(HOST, ([127, 0, 0, 1], port).into())
        .timeout(Duration::from_secs(2));
    let client = builder.build().expect("client");
    client
        .get(format!("https://{HOST}:{port}/healthz"))
        .send()
        .map(|r| r.status().as_u16())
        .map_err(|e| format!("{e:?}"))
}

fn writes(kube: &FakeKube, collection: &str) -> Vec<String> {
    kube.requests()
        .into_iter()
        .filter(|r| !r.starts_with("GET ") && r.contains(collection))
        .collect()
}

#[test]
fn the_secret_is_created_once_its_bundle_reaches_every_webhook_entry_and_both_replicas_serve_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let kube = FakeKube::start();
    webhook_config(&kube);
    let mut a = replica(dir.path(), &kube, "a", &[]);
    let mut b = replica(dir.path(), &kube, "b", &[]);
    util::wait_for("the Secret", Duration::from_secs(20), || {
        secret(&kube, "ca-bundle.crt").is_some()
    });
    let bundle = secret(&kube, "ca-bundle.crt").expect("bundle");
    util::wait_for(
        "the bundle in the webhook entries",
        Duration::from_secs(20),
        || {
            kube.get(CONFIGS, "hydrant-webhook").is_some_and(|c| {
                c["webhooks"].as_array().expect("webhooks").iter().all(|w| {
                    w["clientConfig"]["caBundle"].is_string()
                        && decode(&w["clientConfig"]["caBundle"]) == bundle
                })
            })
        },
    );
    for replica in [&a, &b] {
        util::wait_for("the replica serving", Duration::from_secs(20), || {
            healthz(replica.port, &bundle) == Ok(200)
        });
    }
    // Both replicas ran for seconds, at a 300 ms interval: one wrote, once.
    std::thread::sleep(Duration::from_secs(2));
    let created: Vec<String> = writes(&kube, SECRETS);
    assert_eq!(created.len(), 1, "{created:?}");
    assert!(created[0].starts_with("POST "), "{created:?}");
    let holder = kube
        .get(LEASES, "hydrant-webhook-certificates")
        .expect("lease");
    assert!(
        ["a", "b"].contains(
            &holder["spec"]["holderIdentity"]
                .as_str()
                .unwrap_or_default()
        ),
        "{holder}"
    );
    let stranger = rcgen::generate_simple_self_signed(vec!["stranger".to_owned()]).expect("ca");
    assert!(
        healthz(a.port, &stranger.cert.pem()).is_err(),
        "a client trusting another CA is refused"
    );
    a.process.stop();
    b.process.stop();
}

#[test]
fn a_ca_rotation_keeps_the_old_ca_in_the_bundle_while_the_certificate_moves_to_the_new_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let kube = FakeKube::start();
    webhook_config(&kube);
    let mut a = replica(
        dir.path(),
        &kube,
        "a",
        &["--ca-validity=12s", "--cert-validity=6s"],
    );
    util::wait_for("the Secret", Duration::from_secs(20), || {
        secret(&kube, "ca.crt").is_some()
    });
    let first_ca = secret(&kube, "ca.crt").expect("ca");
    util::wait_for("the first CA served", Duration::from_secs(20), || {
        healthz(a.port, &first_ca) == Ok(200)
    });
    // At two thirds of 12 s the CA is replaced.
    util::wait_for("a new CA", Duration::from_secs(30), || {
        secret(&kube, "ca.crt").is_some_and(|ca| ca != first_ca)
    });
    let new_ca = secret(&kube, "ca.crt").expect("ca");
    let bundle = certificates(&secret(&kube, "ca-bundle.crt").expect("bundle"));
    assert_eq!(
        bundle,
        vec![new_ca.trim().to_owned(), first_ca.trim().to_owned()],
        "the new CA first, the old one still trusted"
    );
    let config = kube.get(CONFIGS, "hydrant-webhook").expect("config");
    for webhook in config["webhooks"].as_array().expect("webhooks") {
        assert_eq!(
            certificates(&decode(&webhook["clientConfig"]["caBundle"])),
            bundle,
            "every entry trusts both CAs"
        );
    }
    // Then the serving certificate moves to the new CA, and the replica reloads it.
    util::wait_for("the new CA served", Duration::from_secs(30), || {
        healthz(a.port, &new_ca) == Ok(200)
    });
    a.process.stop();
}

#[test]
fn a_replica_that_does_not_hold_the_lease_writes_nothing_and_waits_for_the_secret() {
    let dir = tempfile::tempdir().expect("tempdir");
    let kube = FakeKube::start();
    webhook_config(&kube);
    kube.put(
        LEASES,
        json!({
            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": "hydrant-webhook-certificates", "namespace": "hydrant"},
            "spec": {
                "holderIdentity": "another-replica",
                "leaseDurationSeconds": 3600,
                "renewTime": humantime::format_rfc3339_micros(SystemTime::now()).to_string(),
            },
        }),
    );
    let mut b = replica(dir.path(), &kube, "b", &[]);
    util::wait_for("it reads the Secret", Duration::from_secs(20), || {
        kube.requests()
            .iter()
            .any(|r| r.starts_with(&format!("GET {SECRETS}/hydrant-webhook-tls")))
    });
    util::wait_for(
        "it waits for the certificate",
        Duration::from_secs(20),
        || b.process.log().contains("waiting for the certificate"),
    );
    // It goes on holding back while the other holds the Lease.
    std::thread::sleep(Duration::from_secs(3));
    assert!(b.process.running(), "{}", b.process.log());
    assert_eq!(writes(&kube, SECRETS), Vec::<String>::new());
    assert_eq!(writes(&kube, CONFIGS), Vec::<String>::new());
    assert_eq!(writes(&kube, LEASES), Vec::<String>::new());
    b.process.stop();
}
