//! Everything that speaks Vault's HTTP API: the client, login, and the generic read and write
//! that keep a response's lease fields (vaultrs strips them).

mod auth;
pub mod cli;
mod error;
pub mod redirect;
pub mod retry;
mod tls;

use std::fmt;
use std::time::Duration;

use injector::agent_config::VaultConfig;
use rustify::Endpoint;
use rustify::enums::{RequestMethod, RequestType, ResponseType};
use serde::Deserialize;
use serde_json::{Map, Value};
use vaultrs::client::{Client as _, VaultClient, VaultClientSettings};

pub use self::auth::{TokenInfo, adopt, login};
pub(crate) use self::error::chain;
pub use self::error::{Error, ErrorKind};
pub use self::tls::ca_certificates;

/// How long to wait for a TCP (and TLS) connection to Vault.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A Vault token. Its `Debug` never shows the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    /// Wraps a token value.
    pub fn new(value: String) -> Token {
        Token(value)
    }

    /// The token itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

/// A Vault lease attached to a response (dynamic credentials, leased KV v1 values, ...).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    /// The lease ID, used to renew or revoke it. Not a secret by itself.
    pub id: String,
    /// How long the lease lasts from the response.
    pub duration: Duration,
    /// Whether Vault accepts renewals.
    pub renewable: bool,
}

/// A response to a read or write: its `data`, and its lease when it has one.
#[derive(Clone, Default)]
pub struct Secret {
    /// Vault's ID of the request (not a secret; consul-template templates can show it).
    pub request_id: String,
    /// The response's `data`; `Null` when the response had none.
    pub data: Value,
    /// The lease, when Vault returned a lease ID or duration.
    pub lease: Option<Lease>,
    /// The `auth` section's lifetime, for token operations (renew-self).
    pub auth: Option<AuthLease>,
    /// Vault's warnings about the request.
    pub warnings: Vec<String>,
}

/// What Vault says of the mount a path is on (`sys/internal/ui/mounts/<path>`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mount {
    /// The mount's path, with its trailing slash (`secret/`).
    pub path: String,
    /// Whether it is a KV secrets engine at version 2.
    pub kv_v2: bool,
}

/// The lifetime Vault gives a token in an `auth` section.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AuthLease {
    /// How long the token lives from the response.
    pub ttl: Duration,
    /// Whether it can be renewed.
    pub renewable: bool,
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Secret")
            .field("request_id", &self.request_id)
            .field("data", &"<redacted>")
            .field("lease", &self.lease)
            .field("auth", &self.auth)
            .field("warnings", &self.warnings.len())
            .finish()
    }
}

/// A Vault client: one connection pool, one token.
pub struct Client {
    inner: VaultClient,
    address: String,
    policies: Vec<String>,
    /// Credentials read from files that were removed after reading
    /// (`auth.remove_after_reading`), by file: a later login uses them while no new file
    /// appears.
    remembered: std::collections::BTreeMap<std::path::PathBuf, Token>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("address", &self.address)
            .field("policies", &self.policies)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Builds a client for the configured server. Nothing is sent yet.
    pub fn connect(config: &VaultConfig) -> Result<Client, Error> {
        let address = config.address.trim().trim_end_matches('/').to_owned();
        let url: reqwest::Url = address.parse().map_err(|e| Error::Config {
            key: "vault.address",
            problem: format!("{address:?} is not a valid URL: {e}"),
        })?;
        let timeout = config.timeout();
        let http = tls::http_client(config, &address)?
            .redirect(redirect::policy(url.clone()))
            .connect_timeout(CONNECT_TIMEOUT.min(timeout))
            .timeout(timeout)
            .build()
            .map_err(|e| Error::Config {
                key: "vault",
                problem: format!("cannot build the HTTP client: {}", error::chain(&e)),
            })?;
        // Every field is set here: vaultrs fills unset ones from VAULT_* variables, and the agent's
        // behaviour must come from its config alone. (reqwest does honour HTTPS_PROXY and
        // NO_PROXY, as every Vault client does: vault-k8s's proxy-address sets HTTPS_PROXY.)
        let settings = VaultClientSettings {
            address: url,
            ca_certs: Vec::new(),
            identity: None,
            timeout: Some(timeout),
            token: String::new(),
            verify: !config.tls_skip_verify,
            version: 1,
            wrapping: false,
            namespace: config.namespace().map(str::to_owned),
            proxy: None,
        };
        let middle = vaultrs::api::EndpointMiddleware {
            token: String::new(),
            version: "v1".to_owned(),
            wrap: None,
            namespace: settings.namespace.clone(),
        };
        let inner = VaultClient {
            http: rustify::clients::reqwest::Client::new(&address, http),
            middle,
            settings,
        };
        Ok(Client {
            inner,
            address,
            policies: Vec::new(),
            remembered: std::collections::BTreeMap::new(),
        })
    }

    /// The server's address, for messages.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// Uses this token for every later request.
    pub fn set_token(&mut self, token: &Token, policies: Vec<String>) {
        self.inner.set_token(token.expose());
        self.policies = policies;
    }

    /// Renews the client's token (`auth/token/renew-self`), asking for `increment` more; returns
    /// what Vault granted.
    pub async fn renew_self(&self, increment: Duration) -> Result<AuthLease, Error> {
        let mut params = Map::new();
        params.insert(
            "increment".to_owned(),
            format!("{}s", increment.as_secs()).into(),
        );
        let secret = self.write("auth/token/renew-self", &params).await?;
        secret.auth.ok_or(Error::InvalidResponse {
            operation: Operation::Write,
            path: "auth/token/renew-self".to_owned(),
        })
    }

    /// Whether the client's token still exists: `auth/token/lookup-self`, which the default
    /// policy allows. A 403 from any other path means either a policy that does not allow it or
    /// a token that is gone (revoked, expired, or a Vault restored without it); this tells them
    /// apart. `Ok(false)` is a 403 here too.
    pub async fn token_alive(&self) -> Result<bool, Error> {
        match self.read("auth/token/lookup-self").await {
            Ok(_) => Ok(true),
            Err(Error::PermissionDenied { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Revokes the client's token, and with it every lease it created.
    pub async fn revoke_self(&self) -> Result<(), Error> {
        self.write("auth/token/revoke-self", &Map::new())
            .await
            .map(drop)
    }

    /// Renews a lease (`sys/leases/renew`), asking for `increment` more; returns what Vault
    /// granted.
    pub async fn renew_lease(&self, lease_id: &str, increment: Duration) -> Result<Lease, Error> {
        let mut params = Map::new();
        params.insert("lease_id".to_owned(), lease_id.into());
        params.insert("increment".to_owned(), increment.as_secs().into());
        let secret = self.write("sys/leases/renew", &params).await?;
        secret.lease.ok_or(Error::InvalidResponse {
            operation: Operation::Write,
            path: "sys/leases/renew".to_owned(),
        })
    }

    /// Reads any path (`GET /v1/<path>`) and returns its data and lease.
    pub async fn read(&self, path: &str) -> Result<Secret, Error> {
        self.send(RawRequest::get(path)).await
    }

    /// Reads a path with a query string (`version=2` for an older KV v2 version).
    pub async fn read_with_query(&self, path: &str, query: Option<&str>) -> Result<Secret, Error> {
        let mut request = RawRequest::get(path);
        request.query = query.filter(|q| !q.is_empty()).map(str::to_owned);
        self.send(request).await
    }

    /// The mount `path` is on, as `sys/internal/ui/mounts/<path>` tells it (the default policy
    /// allows it for paths the token may use); `None` when Vault knows no mount there.
    pub async fn mount_of(&self, path: &str) -> Result<Option<Mount>, Error> {
        let lookup = format!("sys/internal/ui/mounts/{}", path.trim_matches('/'));
        let data = match self.read(&lookup).await {
            Ok(secret) => secret.data,
            Err(Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let Some(mount) = data.get("path").and_then(Value::as_str) else {
            return Ok(None);
        };
        let kv = data.get("type").and_then(Value::as_str) == Some("kv");
        let version = data
            .get("options")
            .and_then(|o| o.get("version"))
            .and_then(Value::as_str);
        Ok(Some(Mount {
            path: mount.to_owned(),
            kv_v2: kv && version == Some("2"),
        }))
    }

    /// Lists the keys under a path (`LIST /v1/<path>`) and returns the whole response; nothing
    /// there is a response without data.
    pub async fn list_response(&self, path: &str) -> Result<Secret, Error> {
        let request = RawRequest {
            method: RequestMethod::LIST,
            path: path.trim_matches('/').to_owned(),
            body: None,
            query: None,
        };
        match self.send(request).await {
            Err(Error::NotFound { .. }) => Ok(Secret::default()),
            other => other,
        }
    }

    /// Writes parameters to a path (`POST /v1/<path>`) and returns the response's data and lease:
    /// `pki/issue/<role>`, `database/creds/<role>` with options, and the like.
    pub async fn write(&self, path: &str, params: &Map<String, Value>) -> Result<Secret, Error> {
        let body = Value::Object(params.clone()).to_string().into_bytes();
        self.send(RawRequest::post(path, body)).await
    }

    /// Lists the keys under a path (`LIST /v1/<path>`); nothing there gives no keys.
    pub async fn list(&self, path: &str) -> Result<Vec<String>, Error> {
        let request = RawRequest {
            method: RequestMethod::LIST,
            path: path.trim_matches('/').to_owned(),
            body: None,
            query: None,
        };
        match self.send(request).await {
            Ok(secret) => Ok(secret.data["keys"]
                .as_array()
                .map(|keys| {
                    keys.iter()
                        .filter_map(|k| k.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default()),
            Err(Error::NotFound { .. }) => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }

    /// Deletes a path (`DELETE /v1/<path>`).
    pub async fn delete(&self, path: &str) -> Result<(), Error> {
        let request = RawRequest {
            method: RequestMethod::DELETE,
            path: path.trim_matches('/').to_owned(),
            body: None,
            query: None,
        };
        self.send(request).await.map(drop)
    }

    async fn send(&self, request: RawRequest) -> Result<Secret, Error> {
        let operation = request.operation();
        let path = request.path.clone();
        let result = request
            .with_middleware(&self.inner.middle)
            .exec(&self.inner.http)
            .await;
        let response = match result {
            Ok(response) => response,
            Err(e) => return Err(self.classify(e, operation, &path)),
        };
        let body = &response.response.body()[..];
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Secret::default());
        }
        // Parsed here rather than through rustify: its parse error carries the body, which holds
        // secrets.
        let envelope: Envelope =
            serde_json::from_slice(body).map_err(|_| Error::InvalidResponse {
                operation,
                path: path.clone(),
            })?;
        Ok(envelope.into_secret())
    }

    fn classify(&self, e: rustify::errors::ClientError, operation: Operation, path: &str) -> Error {
        error::classify(e, &self.address, operation, path, &self.policies)
    }
}

/// What a request does, for messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    /// `GET`
    Read,
    /// `POST` with parameters
    Write,
    /// A login to an auth method
    Login,
}

impl Operation {
    fn gerund(self) -> &'static str {
        match self {
            Operation::Read => "reading",
            Operation::Write => "writing",
            Operation::Login => "logging in at",
        }
    }
}

/// A request to any path, with the body as raw JSON.
struct RawRequest {
    method: RequestMethod,
    path: String,
    body: Option<Vec<u8>>,
    query: Option<String>,
}

impl RawRequest {
    fn get(path: &str) -> RawRequest {
        RawRequest {
            method: RequestMethod::GET,
            path: path.trim_matches('/').to_owned(),
            body: None,
            query: None,
        }
    }

    fn post(path: &str, body: Vec<u8>) -> RawRequest {
        RawRequest {
            method: RequestMethod::POST,
            path: path.trim_matches('/').to_owned(),
            body: Some(body),
            query: None,
        }
    }

    fn operation(&self) -> Operation {
        match self.method {
            RequestMethod::GET => Operation::Read,
            _ => Operation::Write,
        }
    }
}

impl Endpoint for RawRequest {
    // The body is parsed by `Client::send`, never by rustify.
    type Response = ();
    const REQUEST_BODY_TYPE: RequestType = RequestType::JSON;
    const RESPONSE_BODY_TYPE: ResponseType = ResponseType::JSON;

    fn path(&self) -> String {
        self.path.clone()
    }

    fn method(&self) -> RequestMethod {
        self.method.clone()
    }

    fn body(&self) -> Result<Option<Vec<u8>>, rustify::errors::ClientError> {
        Ok(self.body.clone())
    }

    fn query(&self) -> Result<Option<String>, rustify::errors::ClientError> {
        Ok(self.query.clone())
    }
}

/// The envelope of every Vault response.
#[derive(Deserialize)]
struct Envelope {
    #[serde(default)]
    request_id: String,
    #[serde(default)]
    data: Option<Value>,
    #[serde(default)]
    warnings: Option<Vec<String>>,
    #[serde(default)]
    lease_id: String,
    #[serde(default)]
    lease_duration: u64,
    #[serde(default)]
    renewable: bool,
    #[serde(default)]
    auth: Option<AuthEnvelope>,
}

/// The lifetime fields of a response's `auth` section (the token itself is never kept here).
#[derive(Deserialize)]
struct AuthEnvelope {
    #[serde(default)]
    lease_duration: u64,
    #[serde(default)]
    renewable: bool,
}

impl Envelope {
    fn into_secret(self) -> Secret {
        let lease = (!self.lease_id.is_empty() || self.lease_duration > 0).then(|| Lease {
            id: self.lease_id,
            duration: Duration::from_secs(self.lease_duration),
            renewable: self.renewable,
        });
        Secret {
            request_id: self.request_id,
            data: self.data.unwrap_or(Value::Null),
            warnings: self.warnings.unwrap_or_default(),
            lease,
            auth: self.auth.map(|a| AuthLease {
                ttl: Duration::from_secs(a.lease_duration),
                renewable: a.renewable,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_keeps_lease_fields() {
        let envelope: Envelope = serde_json::from_str(
            r#"{"request_id":"r","lease_id":"database/creds/ro/abc","renewable":true,
                "lease_duration":3600,"data":{"username":"u"},"wrap_info":null,"warnings":null,"auth":null}"#,
        )
        .expect("parses");
        let secret = envelope.into_secret();
        assert_eq!(
            secret.lease,
            Some(Lease {
                id: "database/creds/ro/abc".into(),
                duration: Duration::from_secs(3600),
                renewable: true
            })
        );
        assert_eq!(secret.data["username"], "u");
    }

    #[test]
    fn envelope_keeps_the_auth_lifetime_but_not_the_token() {
        let envelope: Envelope = serde_json::from_str(
            r#"{"lease_id":"","lease_duration":0,"renewable":false,"data":null,
                "auth":{"client_token":"hvs.secret","lease_duration":120,"renewable":true}}"#,
        )
        .expect("parses");
        let secret = envelope.into_secret();
        assert_eq!(
            secret.auth,
            Some(AuthLease {
                ttl: Duration::from_secs(120),
                renewable: true
            })
        );
        assert!(!format!("{secret:?}").contains("hvs.secret"));
    }

    #[test]
    fn envelope_without_lease_has_none() {
        let envelope: Envelope = serde_json::from_str(
            r#"{"lease_id":"","lease_duration":0,"renewable":false,"data":{"data":{"a":1}}}"#,
        )
        .expect("parses");
        assert_eq!(envelope.into_secret().lease, None);
    }

    #[test]
    fn debug_output_redacts_tokens_and_data() {
        let token = Token::new("hvs.very-secret".into());
        assert!(!format!("{token:?}").contains("very-secret"));
        let secret = Secret {
            data: serde_json::json!({"password": "hunter2"}),
            ..Secret::default()
        };
        assert!(!format!("{secret:?}").contains("hunter2"));
    }
}
