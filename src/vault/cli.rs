//! How the command-line tools (`hydrant render`, `hydrant policy`) reach Vault: the `vault` and
//! `auth` of an agent config (hydrant's own or a Vault Agent configuration), or the environment
//! as the Vault and OpenBao CLIs take it (`VAULT_ADDR`, `VAULT_TOKEN` or `~/.vault-token`,
//! `VAULT_CACERT`, `VAULT_NAMESPACE`, `VAULT_TLS_SERVER_NAME`, `VAULT_SKIP_VERIFY`, and
//! OpenBao's `BAO_*` spelling of each).

use std::path::Path;

use injector::agent_config::{AuthConfig, VaultConfig};

use super::{Client, Error, Token, adopt, login};
use crate::env::{Env, non_empty};

/// The Vault address when no agent config is given. Unset or empty: no Vault.
pub const VAULT_ADDR: &str = "VAULT_ADDR";

/// The Vault token used with `VAULT_ADDR`. Unset or empty: no Vault.
pub const VAULT_TOKEN: &str = "VAULT_TOKEN";

/// The PEM file of Vault's CA with `VAULT_ADDR`, as every Vault CLI takes it. Optional.
pub const VAULT_CACERT: &str = "VAULT_CACERT";

/// The Vault Enterprise (or OpenBao) namespace every request is made in. Unset or empty: the
/// root namespace.
pub const VAULT_NAMESPACE: &str = "VAULT_NAMESPACE";

/// The name Vault's certificate is checked against instead of the address's host. Unset or
/// empty: the host.
pub const VAULT_TLS_SERVER_NAME: &str = "VAULT_TLS_SERVER_NAME";

/// `true` (or `1`, `t`, as Go's `ParseBool`) to not check Vault's certificate at all. Unset or
/// empty: checked.
pub const VAULT_SKIP_VERIFY: &str = "VAULT_SKIP_VERIFY";

/// Where the Vault CLI's token helper keeps the token of `vault login`, under `$HOME`; read when
/// `VAULT_TOKEN` is unset.
pub const TOKEN_FILE: &str = ".vault-token";

/// A `VAULT_*` variable, or OpenBao's `BAO_*` spelling of it when that one is unset or empty.
fn var(env: &dyn Env, name: &str) -> Option<String> {
    non_empty(env, name)
        .or_else(|| non_empty(env, &name.replacen("VAULT_", "BAO_", 1)))
        .map(|v| v.trim().to_owned())
}

/// Go's `strconv.ParseBool`, which the Vault CLI parses `VAULT_SKIP_VERIFY` with.
fn parse_bool(name: &str, value: &str) -> Result<bool, String> {
    match value {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        other => Err(format!(
            "{name}={other:?} is not a boolean; use true or false"
        )),
    }
}

/// `VAULT_TOKEN` (or `BAO_TOKEN`), else the token `vault login` (or `bao login`) left in
/// `~/.vault-token`.
fn token(env: &dyn Env) -> Option<String> {
    var(env, VAULT_TOKEN).or_else(|| {
        let home = non_empty(env, "HOME")?;
        let text = std::fs::read_to_string(std::path::Path::new(&home).join(TOKEN_FILE)).ok()?;
        Some(text.trim().to_owned()).filter(|t| !t.is_empty())
    })
}

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
    /// From an agent config when given, else from the environment as the Vault CLI reads it;
    /// `None` when neither says where Vault is. The error names what is wrong with the agent
    /// config or the variable.
    pub fn from(agent_config: Option<&Path>, env: &dyn Env) -> Result<Option<CliVault>, String> {
        if let Some(path) = agent_config {
            let config = crate::agent::config::load_connection(path, env)?;
            return Ok(Some(CliVault {
                vault: config.vault,
                login: CliLogin::Agent(config.auth),
            }));
        }
        let (Some(address), Some(token)) = (var(env, VAULT_ADDR), token(env)) else {
            return Ok(None);
        };
        let skip = var(env, VAULT_SKIP_VERIFY)
            .map(|v| parse_bool(VAULT_SKIP_VERIFY, &v))
            .transpose()?;
        Ok(Some(CliVault {
            vault: VaultConfig {
                address,
                namespace: var(env, VAULT_NAMESPACE),
                ca_cert: var(env, VAULT_CACERT).map(Into::into),
                ca_cert_pem: None,
                tls_server_name: var(env, VAULT_TLS_SERVER_NAME),
                tls_skip_verify: skip.unwrap_or(false),
                max_concurrent_requests: None,
                timeout: None,
            },
            login: CliLogin::Token(Token::new(token)),
        }))
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

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn vault_of(pairs: &[(&str, &str)]) -> Option<VaultConfig> {
        CliVault::from(None, &env(pairs))
            .expect("valid")
            .map(|v| v.vault)
    }

    #[test]
    fn the_environment_is_read_as_the_vault_cli_reads_it() {
        let vault = vault_of(&[
            ("VAULT_ADDR", " https://vault:8200 "),
            ("VAULT_TOKEN", "s.x"),
            ("VAULT_NAMESPACE", "team-a"),
            ("VAULT_TLS_SERVER_NAME", "vault.internal"),
            ("VAULT_SKIP_VERIFY", "true"),
            ("VAULT_CACERT", "/ca.pem"),
        ])
        .expect("a vault");
        assert_eq!(vault.address, "https://vault:8200");
        assert_eq!(vault.namespace.as_deref(), Some("team-a"));
        assert_eq!(vault.tls_server_name.as_deref(), Some("vault.internal"));
        assert!(vault.tls_skip_verify);
        assert_eq!(vault.ca_cert, Some("/ca.pem".into()));
    }

    #[test]
    fn openbaos_spelling_is_read_when_vaults_is_unset() {
        let vault = vault_of(&[
            ("BAO_ADDR", "https://bao:8200"),
            ("BAO_TOKEN", "s.x"),
            ("BAO_NAMESPACE", "ns1"),
            ("BAO_SKIP_VERIFY", "1"),
        ])
        .expect("a vault");
        assert_eq!(vault.address, "https://bao:8200");
        assert_eq!(vault.namespace.as_deref(), Some("ns1"));
        assert!(vault.tls_skip_verify);
        let vault = vault_of(&[
            ("VAULT_ADDR", "https://vault:8200"),
            ("BAO_ADDR", "https://bao:8200"),
            ("VAULT_TOKEN", "s.x"),
        ])
        .expect("a vault");
        assert_eq!(vault.address, "https://vault:8200", "VAULT_* wins");
    }

    #[test]
    fn without_vault_token_the_token_of_vault_login_is_used() {
        let home = tempfile::tempdir().expect("home");
        std::fs::write(home.path().join(TOKEN_FILE), "s.from-login\n").expect("token");
        let home = home.path().display().to_string();
        let with = |pairs: &[(&str, &str)]| {
            let mut all = env(pairs);
            all.insert("HOME".to_owned(), home.clone());
            CliVault::from(None, &all).expect("valid")
        };
        let cli = with(&[("VAULT_ADDR", "http://127.0.0.1:8200")]).expect("a vault");
        assert!(matches!(&cli.login, CliLogin::Token(t) if t.expose() == "s.from-login"));
        let cli = with(&[
            ("VAULT_ADDR", "http://127.0.0.1:8200"),
            ("VAULT_TOKEN", "s.env"),
        ])
        .expect("a vault");
        assert!(matches!(&cli.login, CliLogin::Token(t) if t.expose() == "s.env"));
        assert!(vault_of(&[("VAULT_ADDR", "http://127.0.0.1:8200")]).is_none());
    }

    #[test]
    fn a_skip_verify_that_is_not_a_boolean_is_refused_by_name() {
        for (value, want) in [("t", true), ("FALSE", false), ("0", false)] {
            let vault = vault_of(&[
                ("VAULT_ADDR", "https://v"),
                ("VAULT_TOKEN", "x"),
                ("VAULT_SKIP_VERIFY", value),
            ])
            .expect("a vault");
            assert_eq!(vault.tls_skip_verify, want, "{value}");
        }
        let error = CliVault::from(
            None,
            &env(&[
                ("VAULT_ADDR", "https://v"),
                ("VAULT_TOKEN", "x"),
                ("VAULT_SKIP_VERIFY", "yes"),
            ]),
        )
        .expect_err("refused");
        assert_eq!(
            error,
            "VAULT_SKIP_VERIFY=\"yes\" is not a boolean; use true or false"
        );
    }
}
