//! Logging in with the four auth methods. Credential files are read at every login: projected
//! service-account tokens rotate.

use std::path::Path;
use std::time::Duration;

use injector::agent_config::{AuthConfig, AuthMethod};
use vaultrs::error::ClientError;

use super::{Client, Error, Operation, Token, error};

/// The token a login produced, and what Vault said about it.
#[derive(Debug)]
pub struct TokenInfo {
    /// The token; set on the client already.
    pub token: Token,
    /// The token's policies, for messages.
    pub policies: Vec<String>,
    /// How long the token lives from now; zero for tokens that do not expire.
    pub ttl: Duration,
    /// Whether the token can be renewed.
    pub renewable: bool,
}

/// Logs in with the configured method and sets the token on the client.
pub async fn login(client: &mut Client, auth: &AuthConfig) -> Result<TokenInfo, Error> {
    let mount = auth.mount();
    let method = auth.method;
    let result = match method {
        AuthMethod::Kubernetes | AuthMethod::Jwt => {
            let role = auth.role.as_deref().unwrap_or_default();
            let what = if method == AuthMethod::Kubernetes {
                "service-account token"
            } else {
                "JWT"
            };
            let remove = method == AuthMethod::Jwt && auth.remove_after_reading == Some(true);
            let jwt = read_once(client, what, auth.jwt_path(), remove)?;
            let response = if method == AuthMethod::Kubernetes {
                vaultrs::auth::kubernetes::login(&client.inner, mount, role, &jwt).await
            } else {
                vaultrs::auth::oidc::login(&client.inner, mount, &jwt, Some(role.to_owned())).await
            };
            response.map_err(|e| {
                login_error(e, &client.address, method, mount, format!("role {role:?}"))
            })?
        }
        AuthMethod::Approle => {
            let role_id_path = auth.role_id_path.as_deref().unwrap_or(Path::new(""));
            let role_id = read_credential("role ID", role_id_path)?;
            // No secret-ID file: a role that binds none (bind_secret_id=false), whose login
            // takes the role ID alone; Vault ignores the empty secret ID sent then.
            let secret_id = match auth.secret_id_path.as_deref() {
                Some(path) => {
                    let remove = auth.remove_after_reading == Some(true);
                    read_once(client, "secret ID", path, remove)?
                }
                None => String::new(),
            };
            vaultrs::auth::approle::login(&client.inner, mount, &role_id, &secret_id)
                .await
                .map_err(|e| {
                    let who = match &auth.secret_id_path {
                        Some(path) => format!(
                            "the role ID in {} and secret ID in {}",
                            role_id_path.display(),
                            path.display()
                        ),
                        None => {
                            format!("the role ID in {} and no secret ID", role_id_path.display())
                        }
                    };
                    login_error(e, &client.address, method, mount, who)
                })?
        }
        AuthMethod::Token => {
            let path = auth.token_path.as_deref().unwrap_or(Path::new(""));
            let token = Token::new(read_credential("token", path)?);
            let who = format!("the token in {}", path.display());
            return lookup_self(client, token, &who).await;
        }
    };
    let token = Token::new(result.client_token);
    client.set_token(&token, result.policies.clone());
    Ok(TokenInfo {
        token,
        policies: result.policies,
        ttl: Duration::from_secs(result.lease_duration),
        renewable: result.renewable,
    })
}

/// Takes over a token an earlier run left (the init container's, for the sidecar): checks it
/// with `auth/token/lookup-self`, which also tells how long it has left.
pub async fn adopt(client: &mut Client, token: Token) -> Result<TokenInfo, Error> {
    lookup_self(client, token, "the token the init container left").await
}

/// The token method: checks the token with `auth/token/lookup-self`, which also tells its TTL.
async fn lookup_self(client: &mut Client, token: Token, who: &str) -> Result<TokenInfo, Error> {
    client.set_token(&token, Vec::new());
    let data = match client.read("auth/token/lookup-self").await {
        Ok(secret) => secret.data,
        Err(Error::PermissionDenied { .. }) => {
            return Err(Error::LoginDenied {
                method: "token",
                mount: "token".to_owned(),
                who: who.to_owned(),
                message: "permission denied: the token is invalid, expired or revoked, or its \
                          policies do not allow auth/token/lookup-self (the default policy does)"
                    .to_owned(),
            });
        }
        Err(e) => return Err(e),
    };
    let policies: Vec<String> = data["policies"]
        .as_array()
        .map(|p| {
            p.iter()
                .filter_map(|p| p.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    client.set_token(&token, policies.clone());
    Ok(TokenInfo {
        token,
        policies,
        ttl: Duration::from_secs(data["ttl"].as_u64().unwrap_or(0)),
        renewable: data["renewable"].as_bool().unwrap_or(false),
    })
}

/// Reads a credential file and, with `remove`, deletes it and keeps its value: while no new file
/// appears, later logins use the kept value (Vault Agent's `remove_secret_id_file_after_reading`
/// and `remove_jwt_after_reading`).
fn read_once(
    client: &mut Client,
    what: &'static str,
    path: &Path,
    remove: bool,
) -> Result<String, Error> {
    if !remove {
        return read_credential(what, path);
    }
    match read_credential(what, path) {
        Ok(value) => {
            if let Err(error) = std::fs::remove_file(path) {
                tracing::warn!(%error, path = %path.display(), "cannot remove the {what} file after reading it");
            }
            client
                .remembered
                .insert(path.to_owned(), Token::new(value.clone()));
            Ok(value)
        }
        Err(error) => match client.remembered.get(path) {
            Some(kept) => Ok(kept.expose().to_owned()),
            None => Err(error),
        },
    }
}

/// Reads a credential file, trimmed. An empty file is an error: Kubernetes creates the file
/// before it fills it, and an empty JWT would only earn a confusing "permission denied".
fn read_credential(what: &'static str, path: &Path) -> Result<String, Error> {
    let text = std::fs::read_to_string(path).map_err(|error| Error::CredentialFile {
        what,
        path: path.to_owned(),
        error,
    })?;
    let value = text.trim();
    if value.is_empty() {
        return Err(Error::EmptyCredential {
            what,
            path: path.to_owned(),
        });
    }
    // A token goes into an HTTP header: a newline inside it could never work, and two tokens in
    // one file are a mistake worth naming.
    if value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(Error::MalformedCredential {
            what,
            path: path.to_owned(),
        });
    }
    Ok(value.to_owned())
}

fn login_error(
    e: ClientError,
    address: &str,
    method: AuthMethod,
    mount: &str,
    who: String,
) -> Error {
    match e {
        ClientError::APIError { code, errors } => {
            let message = if errors.is_empty() {
                "no error message".to_owned()
            } else {
                let body = serde_json::json!({ "errors": errors }).to_string();
                error::vault_message(Some(&body))
            };
            match code {
                429 | 500..=599 => Error::Unavailable {
                    address: address.to_owned(),
                    status: code,
                    operation: Operation::Login,
                    path: format!("auth/{mount}/login"),
                    message,
                },
                404 => Error::LoginDenied {
                    method: method.name(),
                    mount: mount.to_owned(),
                    who,
                    message: format!("{message}; is auth.mount right?"),
                },
                _ => Error::LoginDenied {
                    method: method.name(),
                    mount: mount.to_owned(),
                    who,
                    message,
                },
            }
        }
        ClientError::RestClientError { source } => error::classify(
            source,
            address,
            Operation::Login,
            &format!("auth/{mount}/login"),
            &[],
        ),
        _ => Error::InvalidResponse {
            operation: Operation::Login,
            path: format!("auth/{mount}/login"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credential_files_are_trimmed_and_empty_ones_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let good = dir.path().join("jwt");
        std::fs::write(&good, "  eyJ.abc.def\n").expect("write");
        assert_eq!(read_credential("JWT", &good).expect("reads"), "eyJ.abc.def");

        let empty = dir.path().join("empty");
        std::fs::write(&empty, "\n  \n").expect("write");
        let err = read_credential("JWT", &empty).expect_err("empty is refused");
        assert!(matches!(err, Error::EmptyCredential { .. }));
        assert!(err.to_string().contains("is empty"), "{err}");

        let two = dir.path().join("two");
        std::fs::write(&two, "hvs.a\nhvs.b\n").expect("write");
        let err = read_credential("token", &two).expect_err("two lines are refused");
        assert!(matches!(err, Error::MalformedCredential { .. }), "{err}");

        let missing = dir.path().join("missing");
        let err = read_credential("JWT", &missing).expect_err("missing is refused");
        assert!(
            err.to_string().starts_with("cannot read the JWT file"),
            "{err}"
        );
    }

    #[test]
    fn login_refusals_name_method_mount_and_role() {
        let err = login_error(
            ClientError::APIError {
                code: 400,
                errors: vec!["invalid role name \"nope\"".into()],
            },
            "http://v",
            AuthMethod::Kubernetes,
            "kubernetes",
            "role \"nope\"".into(),
        );
        assert_eq!(
            err.to_string(),
            "login denied: kubernetes auth at mount \"kubernetes\" refused role \"nope\": invalid role name \"nope\""
        );
        let err = login_error(
            ClientError::APIError {
                code: 503,
                errors: vec!["Vault is sealed".into()],
            },
            "http://v",
            AuthMethod::Jwt,
            "jwt",
            "role \"a\"".into(),
        );
        assert!(err.is_transient());
    }
}
