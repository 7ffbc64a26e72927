//! `injector::mutate` on a typical pod (a Deployment's pod with a service-account token, three
//! secrets, a template and resource annotations), and the whole review around it (decode the
//! AdmissionReview, mutate, encode the answer). Goal: mutate under 50 µs.

use criterion::{Criterion, criterion_group, criterion_main};
use injector::InjectorSettings;
use k8s_openapi::api::core::v1::Pod;

fn fixture() -> Vec<u8> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/admission/vault-k8s-secret-map-native.json"
    );
    std::fs::read(path).expect("fixture")
}

fn typical_pod() -> Pod {
    let review: serde_json::Value = serde_json::from_slice(&fixture()).expect("json");
    let mut pod = review["request"]["object"].clone();
    let annotations = pod["metadata"]["annotations"]
        .as_object_mut()
        .expect("annotations");
    annotations.insert(
        "vault.hashicorp.com/agent-inject-secret-api-key".into(),
        "secret/data/web/api".into(),
    );
    annotations.insert(
        "vault.hashicorp.com/agent-inject-template-app.env".into(),
        "DB_URL={{ secret('secret/data/web/db').data.url }}\nAPI_KEY={{ secret('secret/data/web/api').data.key }}\n".into(),
    );
    annotations.insert("vault.hashicorp.com/agent-limits-mem".into(), "64Mi".into());
    annotations.insert("vault.hashicorp.com/agent-requests-cpu".into(), "5m".into());
    serde_json::from_value(pod).expect("pod")
}

fn bench(c: &mut Criterion) {
    let settings = InjectorSettings::new(
        "https://vault.vault.svc:8200",
        "ghcr.io/hydrant-dev/hydrant:0.1.0",
    );
    let pod = typical_pod();
    assert!(
        injector::mutate(&pod, "team-a", &settings)
            .expect("allowed")
            .is_some()
    );
    c.bench_function("mutate typical pod", |b| {
        b.iter(|| injector::mutate(std::hint::black_box(&pod), "team-a", &settings))
    });
    let body = fixture();
    c.bench_function("review: decode, mutate, encode", |b| {
        b.iter(|| hydrant::webhook::review::review(std::hint::black_box(&body), &settings))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
