//! `hydrant check-webhook`: one AdmissionReview sent to a running webhook the way the API server
//! sends it (HTTPS to its Service, checked against the CA bundle of its configuration), for
//! `helm test` and for debugging a cluster.

use std::path::PathBuf;
use std::sync::Arc;

use injector::values::Duration;
use serde_json::{Value, json};

/// `hydrant check-webhook`'s flags.
#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// The webhook's URL as the API server calls it:
    /// https://SERVICE.NAMESPACE.svc:443/mutate.
    #[arg(long, value_name = "URL")]
    pub url: String,
    /// PEM file of the CA that signs the webhook's certificate (the caBundle of its
    /// MutatingWebhookConfiguration; ca.crt of its Secret).
    #[arg(long, value_name = "FILE")]
    pub ca_cert: PathBuf,
    /// How long one try may take.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = crate::cli::parse_duration)]
    pub timeout: Duration,
    /// How many times to try before failing, two seconds apart (a replica may still be
    /// starting).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    pub attempts: u32,
}

/// Why the webhook did not answer as it should.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// The CA file cannot be read or holds no certificate.
    #[error("--ca-cert: {0}")]
    Ca(String),
    /// The URL is not an https URL.
    #[error("--url {0:?} is not an https:// URL; give https://SERVICE.NAMESPACE.svc:443/mutate")]
    Url(String),
    /// No answer: connection, TLS or timeout.
    #[error(
        "no answer from {url} after {attempts} tries: {reason}; check that the webhook's pods are ready and that its certificate is signed by --ca-cert for the Service's name"
    )]
    Unreachable {
        /// The URL tried.
        url: String,
        /// How many tries.
        attempts: u32,
        /// The last failure, with its causes.
        reason: String,
    },
    /// An answer that is not an AdmissionReview allowing the test pod.
    #[error("{url} answered, but not as a webhook should: {what}")]
    Answer {
        /// The URL tried.
        url: String,
        /// What was wrong.
        what: String,
    },
}

/// The test review's uid: the answer must echo it.
const UID: &str = "00000000-0000-4000-8000-00000000c4ec";

/// A pod that asks for nothing: the webhook must allow it unchanged.
fn review() -> Value {
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": UID,
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": "hydrant-check",
            "operation": "CREATE",
            "userInfo": {"username": "hydrant-check"},
            "dryRun": true,
            "object": {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "hydrant-check", "namespace": "hydrant-check"},
                "spec": {"containers": [{"name": "check", "image": "check"}]}
            }
        }
    })
}

/// What is wrong with an answer to [`review`], if anything.
pub fn judge(status: u16, body: &[u8]) -> Result<(), String> {
    if status != 200 {
        let text = String::from_utf8_lossy(body);
        return Err(format!("HTTP {status}: {}", text.trim()));
    }
    let answer: Value =
        serde_json::from_slice(body).map_err(|e| format!("the body is not JSON: {e}"))?;
    let response = &answer["response"];
    if answer["apiVersion"] != "admission.k8s.io/v1" || answer["kind"] != "AdmissionReview" {
        return Err("the body is not an admission.k8s.io/v1 AdmissionReview".to_owned());
    }
    if response["uid"] != UID {
        return Err(format!("uid {} instead of {UID}", response["uid"]));
    }
    if response["allowed"] != true {
        let message = response["status"]["message"].as_str().unwrap_or("");
        return Err(format!("a pod asking for nothing was denied: {message}"));
    }
    if response.get("patch").is_some() {
        return Err("a pod asking for nothing was changed".to_owned());
    }
    Ok(())
}

fn client(args: &CheckArgs) -> Result<reqwest::Client, CheckError> {
    let shown = args.ca_cert.display().to_string();
    let pem = std::fs::read(&args.ca_cert)
        .map_err(|e| CheckError::Ca(format!("cannot read {shown}: {e}")))?;
    let mut roots = rustls::RootCertStore::empty();
    let (added, _) = roots.add_parsable_certificates(
        crate::vault::ca_certificates(&pem, &shown).map_err(CheckError::Ca)?,
    );
    if added == 0 {
        return Err(CheckError::Ca(format!(
            "{shown} holds no valid certificate"
        )));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| CheckError::Ca(format!("no usable TLS versions: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .timeout(args.timeout.0)
        .build()
        .map_err(|e| CheckError::Ca(format!("cannot build the HTTPS client: {e}")))
}

/// Sends the review until the webhook answers (or the tries run out), then judges the answer.
pub async fn check(args: &CheckArgs) -> Result<String, CheckError> {
    if !args.url.starts_with("https://") {
        return Err(CheckError::Url(args.url.clone()));
    }
    let client = client(args)?;
    let body = serde_json::to_vec(&review()).unwrap_or_default();
    let mut last = String::new();
    for attempt in 1..=args.attempts {
        if attempt > 1 {
            tokio::time::sleep(std::time::Duration::from_secs(2)).await;
        }
        let sent = client
            .post(&args.url)
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await;
        match sent {
            Ok(response) => {
                let status = response.status().as_u16();
                match response.bytes().await {
                    Ok(bytes) => {
                        return judge(status, &bytes)
                            .map(|()| {
                                format!(
                                    "{} answered: a pod asking for nothing is allowed unchanged",
                                    args.url
                                )
                            })
                            .map_err(|what| CheckError::Answer {
                                url: args.url.clone(),
                                what,
                            });
                    }
                    Err(e) => last = chain(&e),
                }
            }
            Err(e) => last = chain(&e),
        }
        tracing::info!(attempt, error = %last, "no answer yet");
    }
    Err(CheckError::Unreachable {
        url: args.url.clone(),
        attempts: args.attempts,
        reason: last,
    })
}

/// An error with its causes: reqwest's own message says only "error sending request".
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Runs `hydrant check-webhook`.
pub fn command(args: &CheckArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let said = runtime.block_on(check(args))?;
    std::io::Write::write_all(&mut std::io::stdout(), format!("{said}\n").as_bytes())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(response: Value) -> Vec<u8> {
        serde_json::to_vec(&json!({
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "response": response,
        }))
        .expect("json")
    }

    #[test]
    fn only_an_unchanged_allowed_answer_with_the_uid_passes() {
        assert_eq!(
            judge(200, &answer(json!({"uid": UID, "allowed": true}))),
            Ok(())
        );
        let cases = [
            (503, b"busy\n".to_vec(), "HTTP 503: busy"),
            (200, b"<html>".to_vec(), "not JSON"),
            (
                200,
                answer(json!({"uid": "x", "allowed": true})),
                "uid \"x\"",
            ),
            (
                200,
                answer(json!({"uid": UID, "allowed": false, "status": {"message": "hydrant: no"}})),
                "denied: hydrant: no",
            ),
            (
                200,
                answer(json!({"uid": UID, "allowed": true, "patch": "W10="})),
                "was changed",
            ),
            (200, b"{}".to_vec(), "not an admission.k8s.io/v1"),
        ];
        for (status, body, want) in cases {
            let got = judge(status, &body).expect_err(want);
            assert!(got.contains(want), "{want}: {got}");
        }
    }

    #[test]
    fn the_review_is_a_dry_run_of_a_pod_asking_for_nothing() {
        let review = review();
        assert_eq!(review["request"]["dryRun"], true);
        assert!(
            review["request"]["object"]["metadata"]
                .get("annotations")
                .is_none()
        );
    }
}
