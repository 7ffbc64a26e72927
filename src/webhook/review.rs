//! One AdmissionReview in, one out: decoding, the images whose commands the mutation needs,
//! the call to `injector::mutate_with`, and the response in the form the API documents. No I/O.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use injector::InjectorSettings;
use k8s_openapi::api::core::v1::Pod;
use kube_core::admission::{AdmissionReview, Operation};
use serde_json::{Value, json};

/// The API versions of AdmissionReview answered, each in kind.
const VERSIONS: [&str; 2] = ["admission.k8s.io/v1", "admission.k8s.io/v1beta1"];

/// What happened to a review, for metrics and logs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Injected: the response carries a patch.
    Patched,
    /// Allowed unchanged: not asked for, already injected, not a pod creation.
    Allowed,
    /// Refused, with the denial's fixed reason.
    Denied(&'static str),
}

impl Outcome {
    /// A fixed label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Patched => "patched",
            Outcome::Allowed => "allowed",
            Outcome::Denied(_) => "denied",
        }
    }
}

/// A body that is not an AdmissionReview: answered HTTP 400 with this reason.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BadReview(pub String);

/// The answer to one review.
#[derive(Debug)]
pub struct Answer {
    /// The AdmissionReview to send back.
    pub body: Value,
    /// What happened.
    pub outcome: Outcome,
    /// The denial's message, for the log.
    pub message: Option<String>,
    /// The pod's name (or its `generateName` prefix), for the log.
    pub pod: String,
    /// The pod's namespace, for the log.
    pub namespace: String,
    /// The mode an injected pod got, for the log.
    pub mode: Option<injector::Mode>,
}

fn not_a_review(api_version: &str, kind: &str) -> BadReview {
    BadReview(format!(
        "the body is not an AdmissionReview of {} (apiVersion {api_version:?}, kind {kind:?})",
        VERSIONS.join(" or "),
    ))
}

/// Why a body does not decode as an AdmissionReview.
fn explain(body: &[u8], error: serde_json::Error) -> BadReview {
    match serde_json::from_slice::<Value>(body) {
        Err(e) => BadReview(format!("the body is not JSON: {e}")),
        Ok(value)
            if value["kind"] != "AdmissionReview"
                || !VERSIONS.iter().any(|v| value["apiVersion"] == *v) =>
        {
            not_a_review(
                value["apiVersion"].as_str().unwrap_or_default(),
                value["kind"].as_str().unwrap_or_default(),
            )
        }
        Ok(_) => BadReview(format!("the AdmissionReview cannot be read: {error}")),
    }
}

/// Answers one AdmissionReview body, knowing no image's command (see [`decode`]).
pub fn review(body: &[u8], settings: &InjectorSettings) -> Result<Answer, BadReview> {
    decode(body)?.answer(settings, &injector::NO_IMAGES)
}

/// An AdmissionReview, decoded and not answered yet: the webhook first reads the commands of
/// the images it names ([`Decoded::images_to_read`]) from their registries.
#[derive(Debug)]
pub struct Decoded(AdmissionReview<Pod>);

/// Decodes one AdmissionReview body.
pub fn decode(body: &[u8]) -> Result<Decoded, BadReview> {
    // Decoded straight into kube's types; the body is looked at again only to explain a failure.
    let review: AdmissionReview<Pod> =
        serde_json::from_slice(body).map_err(|e| explain(body, e))?;
    if review.types.kind != "AdmissionReview"
        || !VERSIONS.contains(&review.types.api_version.as_str())
    {
        return Err(not_a_review(&review.types.api_version, &review.types.kind));
    }
    Ok(Decoded(review))
}

impl Decoded {
    /// The images whose ENTRYPOINT and CMD the mutation needs: a pod being created whose
    /// containers run under `hydrant exec` without a command of their own.
    pub fn images_to_read(&self) -> Vec<String> {
        match &self.0.request {
            Some(request) if matches!(request.operation, Operation::Create) => request
                .object
                .as_ref()
                .map(injector::images_to_read)
                .unwrap_or_default(),
            _ => Vec::new(),
        }
    }

    /// Answers the review, knowing the commands of `images`.
    pub fn answer(
        self,
        settings: &InjectorSettings,
        images: &injector::Images,
    ) -> Result<Answer, BadReview> {
        answer(self.0, settings, images)
    }
}

fn answer(
    review: AdmissionReview<Pod>,
    settings: &InjectorSettings,
    images: &injector::Images,
) -> Result<Answer, BadReview> {
    let api_version = review.types.api_version.clone();
    let request = review
        .request
        .ok_or_else(|| BadReview("the AdmissionReview has no request".to_owned()))?;
    let uid = request.uid.clone();
    let namespace = request
        .namespace
        .clone()
        .or_else(|| {
            request
                .object
                .as_ref()
                .and_then(|p| p.metadata.namespace.clone())
        })
        .unwrap_or_else(|| "default".to_owned());
    let name = request
        .object
        .as_ref()
        .and_then(|p| {
            p.metadata
                .name
                .clone()
                .or_else(|| p.metadata.generate_name.clone())
        })
        .unwrap_or_else(|| request.name.clone());
    let respond = |response: Value, outcome: Outcome, message: Option<String>| Answer {
        body: json!({
            "apiVersion": api_version,
            "kind": "AdmissionReview",
            "response": response,
        }),
        outcome,
        message,
        pod: name.clone(),
        namespace: namespace.clone(),
        mode: None,
    };
    let allowed = json!({"uid": uid, "allowed": true});
    let is_pod = request.kind.kind == "Pod" && request.kind.group.is_empty();
    let (Operation::Create, true, Some(pod)) = (&request.operation, is_pod, &request.object) else {
        // Not a pod being created: the webhook's rules should not send it; let it through.
        return Ok(respond(allowed, Outcome::Allowed, None));
    };
    match injector::mutate_with(pod, &namespace, images, settings) {
        Ok(None) => Ok(respond(allowed, Outcome::Allowed, None)),
        Ok(Some(mutation)) => {
            let patch = serde_json::to_vec(&mutation.patch)
                .map_err(|e| BadReview(format!("cannot encode the patch: {e}")))?;
            let mut response = json!({
                "uid": uid,
                "allowed": true,
                "patchType": "JSONPatch",
                // admission.k8s.io documents the patch as base64 (kube 5 would send an array of
                // numbers, kube-rs#1781).
                "patch": BASE64.encode(patch),
            });
            if !mutation.warnings.is_empty() {
                response["warnings"] = json!(mutation.warnings);
            }
            Ok(Answer {
                mode: mutation.agent.then_some(mutation.mode),
                ..respond(response, Outcome::Patched, None)
            })
        }
        Err(denial) => {
            let response = json!({
                "uid": uid,
                "allowed": false,
                "status": {
                    "code": 403,
                    "reason": "Forbidden",
                    "message": format!("hydrant: {}", denial.message),
                },
            });
            Ok(respond(
                response,
                Outcome::Denied(denial.reason.label()),
                Some(denial.message),
            ))
        }
    }
}
