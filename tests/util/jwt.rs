//! Service-account-shaped JWTs (ES256) signed with a key generated per test, for OpenBao's jwt
//! auth (`jwt_validation_pubkeys`) and kubernetes auth.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use serde_json::{Value, json};

use super::Vault;

/// The issuer projected service-account tokens carry.
pub const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";

/// Signs JWTs with one P-256 key.
pub struct Signer {
    key: EcdsaKeyPair,
    /// The public key as PEM (SubjectPublicKeyInfo), for Vault.
    pub public_pem: String,
}

impl Signer {
    /// A fresh key.
    pub fn new() -> Signer {
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("keygen");
        let key = EcdsaKeyPair::from_pkcs8(
            &ECDSA_P256_SHA256_FIXED_SIGNING,
            &pair.serialize_der(),
            &ring::rand::SystemRandom::new(),
        )
        .expect("pkcs8");
        Signer {
            key,
            public_pem: pair.public_key_pem(),
        }
    }

    /// The compact JWS of `claims`.
    pub fn sign(&self, claims: &Value) -> String {
        let header = json!({"alg": "ES256", "typ": "JWT", "kid": "hydrant-test"});
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signature = self
            .key
            .sign(&ring::rand::SystemRandom::new(), signing_input.as_bytes())
            .expect("sign");
        format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature.as_ref())
        )
    }
}

/// Claims of a projected service-account token for `namespace/name`, valid for an hour.
pub fn service_account_claims(namespace: &str, name: &str, audience: &str, uid: &str) -> Value {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    json!({
        "iss": ISSUER,
        "sub": format!("system:serviceaccount:{namespace}:{name}"),
        "aud": [audience],
        "iat": now,
        "nbf": now,
        "exp": now + 3600,
        "kubernetes.io": {
            "namespace": namespace,
            "serviceaccount": {"name": name, "uid": uid},
            "pod": {"name": format!("{name}-0"), "uid": "3f1e0c52-0000-4000-8000-000000000001"}
        }
    })
}

/// The unverified claims of a JWT.
pub fn claims_of(jwt: &str) -> Option<Value> {
    let payload = jwt.split('.').nth(1)?;
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()
}

/// Configures OpenBao's jwt auth (at `jwt`) to trust `signer`, with a role `app` for the
/// service account `team-a/app` (audience `vault`) that gets `policy` for an hour.
pub fn setup(vault: &Vault, signer: &Signer, policy: &str) {
    vault.enable_auth("jwt", "jwt");
    vault.api(
        "POST",
        "auth/jwt/config",
        Some(json!({"jwt_validation_pubkeys": [signer.public_pem], "bound_issuer": ISSUER})),
    );
    vault.api(
        "POST",
        "auth/jwt/role/app",
        Some(json!({
            "role_type": "jwt",
            "user_claim": "sub",
            "bound_subject": "system:serviceaccount:team-a:app",
            "bound_audiences": ["vault"],
            "token_policies": [policy],
            "token_ttl": "1h",
        })),
    );
}
