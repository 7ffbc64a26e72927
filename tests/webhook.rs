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
