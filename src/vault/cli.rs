//! How the command-line tools (`hydrant render`, `hydrant policy`) reach Vault: the `vault` and
//! `auth` of an agent config, or `VAULT_ADDR` and `VAULT_TOKEN` (and `VAULT_CACERT`) as every
//! Vault CLI takes them.

use std::path::Path;

use injector::AgentConfig;
use injector::agent_config::{self, AuthConfig, VaultConfig};

use super::{Client, Error, Token, adopt, login};
use crate::env::{Env, non_empty};

/// The Vault address when no agent config is given. Unset or empty: no Vault.
pub const VAULT_ADDR: &str = "VAULT_ADDR";

/// The Vault token used with `VAULT_ADDR`. Unset or empty: no Vault.
pub const VAULT_TOKEN: &str = "VAULT_TOKEN";

/// The PEM file of Vault's CA with `VAULT_ADDR`, as every Vault CLI takes it. Optional.
pub const VAULT_CACERT: &str = "VAULT_CACERT";

/// Where a command-line tool's Vault is and how it logs in.
#[derive(Debug)]
pub struct CliVault {
    vault: VaultConfig,
    login: CliLogin,
}

#[derive(Debug)]
enum CliLogin {
    Agent(AuthConfig),
    Token(Token),
}

impl CliVault {
    /// From an agent config when given, else from `VAULT_ADDR` and `VAULT_TOKEN`; `None` when
    /// neither says where Vault is. The error names what is wrong with the agent config.
    pub fn from(agent_config: Option<&Path>, env: &dyn Env) -> Result<Option<CliVault>, String> {
        if let Some(path) = agent_config {
            let config = load_connection(path)?;
            return Ok(Some(CliVault {
                vault: config.vault,
                login: CliLogin::Agent(config.auth),
            }));
        }
        Ok(
            match (non_empty(env, VAULT_ADDR), non_empty(env, VAULT_TOKEN)) {
                (Some(address), Some(token)) => Some(CliVault {
                    vault: VaultConfig {
                        address: address.trim().to_owned(),
                        namespace: None,
                        ca_cert: non_empty(env, VAULT_CACERT).map(Into::into),
                        ca_cert_pem: None,
                        tls_server_name: None,
                        tls_skip_verify: false,
                        max_concurrent_requests: None,
                        timeout: None,
                    },
                    login: CliLogin::Token(Token::new(token.trim().to_owned())),
                }),
                _ => None,
            },
        )
    }

    /// Connects and logs in (a token is checked with `lookup-self`).
    pub async fn connect(&self) -> Result<Client, Error> {
        Ok(self.session().await?.0)
    }

    /// Connects and logs in; also says how long the token lives (zero: it does not expire).
    pub async fn session(&self) -> Result<(Client, std::time::Duration), Error> {
        let mut client = Client::connect(&self.vault)?;
        let info = match &self.login {
            CliLogin::Agent(auth) => login(&mut client, auth).await?,
            CliLogin::Token(token) => adopt(&mut client, token.clone()).await?,
        };
        Ok((client, info.ttl))
    }
}

/// Reads the agent config at `path`, checking only `vault` and `auth`: the tools only log in.
/// The error names the file and every bad key.
fn load_connection(path: &Path) -> Result<AgentConfig, String> {
    let origin = path.display();
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {origin}: {e}"))?;
    let config = agent_config::parse(&text).map_err(|e| format!("{origin}: {e}"))?;
    config
        .validate_connection()
        .map_err(|issues| format!("{origin}: {issues}"))?;
    Ok(config)
}
