//! AdmissionReview decoding (the body of every request to the webhook): any bytes are answered
//! or refused without a panic, and a patch in an answer is base64 of a JSON Patch that applies
//! to the reviewed pod.
#![no_main]

use base64::Engine as _;
use hydrant::webhook::review::{Outcome, review};
use injector::InjectorSettings;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let settings = InjectorSettings::new("https://vault:8200", "hydrant:fuzz");
    let Ok(answer) = review(data, &settings) else {
        return;
    };
    if answer.outcome != Outcome::Patched {
        return;
    }
    let patch = answer.body["response"]["patch"]
        .as_str()
        .expect("a base64 patch");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(patch)
        .expect("base64");
    let patch: json_patch::Patch = serde_json::from_slice(&bytes).expect("a JSON patch");
    // The pod as the webhook decoded it (serde skips ignored fields without checking their
    // UTF-8, so the body itself need not be valid JSON everywhere).
    let review: kube_core::admission::AdmissionReview<k8s_openapi::api::core::v1::Pod> =
        serde_json::from_slice(data).expect("the webhook decoded it");
    let object = review.request.and_then(|r| r.object).expect("a pod");
    let mut pod = serde_json::to_value(object).expect("encodes");
    json_patch::patch(&mut pod, &patch).expect("the patch applies to the pod");
});
