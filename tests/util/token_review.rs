//! A TokenReview responder standing in for the kube-apiserver as Vault's `kubernetes_host`: no
//! kube-apiserver can run on these machines. It accepts exactly the tokens it was given and
//! answers as the API server does, with the service account's name and UID.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use serde_json::{Value, json};

use super::jwt::claims_of;

/// A running responder; it stops with the test process.
pub struct TokenReviewer {
    /// `http://127.0.0.1:PORT`
    pub url: String,
    accepted: Arc<Mutex<HashSet<String>>>,
    /// Every token reviewed, in order.
    pub reviewed: Arc<Mutex<Vec<String>>>,
}

impl TokenReviewer {
    /// Starts serving on a free loopback port.
    pub fn start() -> TokenReviewer {
        let accepted = Arc::new(Mutex::new(HashSet::new()));
        let reviewed = Arc::new(Mutex::new(Vec::new()));
        let state = (accepted.clone(), reviewed.clone());
        let url = super::serve_in_background(
            axum::Router::new()
                .route("/apis/authentication.k8s.io/v1/tokenreviews", post(review))
                .with_state(state),
        );
        TokenReviewer {
            url,
            accepted,
            reviewed,
        }
    }

    /// Makes `token` one the "API server" recognises.
    pub fn accept(&self, token: &str) {
        self.accepted.lock().expect("lock").insert(token.to_owned());
    }

    /// A service-account token for `team-a/<name>` with `audience` and `uid`, newly signed,
    /// that the "API server" recognises.
    pub fn accepted_token(&self, name: &str, audience: &str, uid: &str) -> String {
        let token = super::jwt::Signer::new().sign(&super::jwt::service_account_claims(
            "team-a", name, audience, uid,
        ));
        self.accept(&token);
        token
    }

    /// Makes `token` one the "API server" no longer recognises (it expired, or was rotated).
    pub fn reject(&self, token: &str) {
        self.accepted.lock().expect("lock").remove(token);
    }
}

type Shared = (Arc<Mutex<HashSet<String>>>, Arc<Mutex<Vec<String>>>);

async fn review(
    State((accepted, reviewed)): State<Shared>,
    Json(body): Json<Value>,
) -> (StatusCode, Json<Value>) {
    let token = body["spec"]["token"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    reviewed.lock().expect("lock").push(token.clone());
    let known = accepted.lock().expect("lock").contains(&token);
    let status = match claims_of(&token) {
        Some(claims) if known => {
            let namespace = claims["kubernetes.io"]["namespace"].clone();
            json!({
                "authenticated": true,
                "audiences": body["spec"]["audiences"],
                "user": {
                    "username": claims["sub"],
                    "uid": claims["kubernetes.io"]["serviceaccount"]["uid"],
                    "groups": [
                        "system:serviceaccounts",
                        format!("system:serviceaccounts:{}", namespace.as_str().unwrap_or_default()),
                        "system:authenticated"
                    ]
                }
            })
        }
        _ => json!({"authenticated": false, "error": "invalid bearer token"}),
    };
    let answer = json!({
        "kind": "TokenReview",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"creationTimestamp": null},
        "spec": body["spec"],
        "status": status,
    });
    (StatusCode::CREATED, Json(answer))
}

/// Configures OpenBao's kubernetes auth at `kubernetes/` against `reviewer`: a role `role` for
/// service account `team-a/<role>`, with an audience when given, holding `policies`.
pub fn kubernetes_setup(
    vault: &super::Vault,
    reviewer: &TokenReviewer,
    role: &str,
    audience: Option<&str>,
    policies: &[&str],
) {
    kubernetes_auth(vault, reviewer);
    let mut body = json!({
        "bound_service_account_names": [role],
        "bound_service_account_namespaces": ["team-a"],
        "token_policies": policies,
        "token_ttl": "1h",
    });
    if let Some(audience) = audience {
        body["audience"] = json!(audience);
    }
    vault.api("POST", &format!("auth/kubernetes/role/{role}"), Some(body));
}

/// Enables OpenBao's kubernetes auth at `kubernetes/`, reviewing tokens with `reviewer`.
pub fn kubernetes_auth(vault: &super::Vault, reviewer: &TokenReviewer) {
    vault.enable_auth("kubernetes", "kubernetes");
    let ca = rcgen::generate_simple_self_signed(vec!["kubernetes.default.svc".into()]).expect("ca");
    vault.api(
        "POST",
        "auth/kubernetes/config",
        Some(json!({
            "kubernetes_host": reviewer.url,
            "kubernetes_ca_cert": ca.cert.pem(),
            "disable_local_ca_jwt": true,
        })),
    );
}
