//! Vault Agent configurations (HCL, or its JSON form) read into hydrant's [`AgentConfig`]: a pure
//! translation, so that `hydrant agent --config agent.hcl` and the webhook (a vault-k8s
//! `agent-configmap`) read them alike.
//!
//! Three steps: `tree` reads the syntax, `decode` gives each key Vault Agent's meaning (and
//! refuses, or warns about, what hydrant does not do), `translate` writes the result as hydrant's
//! config. Several files merge between the last two, as Vault Agent merges them.

mod decode;
mod translate;
mod tree;

use std::fmt;
use std::path::PathBuf;
use std::time;

use crate::AgentConfig;
use crate::agent_config::AuthMethod;

pub use tree::Pos;

/// Which syntax a file is written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Syntax {
    /// HCL.
    Hcl,
    /// Vault Agent's JSON form of the same keys.
    Json,
}

/// One problem in a Vault Agent configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// Where in the file, when known (JSON keeps no positions).
    pub pos: Option<Pos>,
    /// The key, such as `auto_auth.method.config.role`; empty for the whole file.
    pub key: String,
    /// What is wrong and what to do instead.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(pos) = self.pos {
            write!(f, "{pos}: ")?;
        }
        if !self.key.is_empty() {
            write!(f, "{}: ", self.key)?;
        }
        f.write_str(&self.message)
    }
}

/// Every problem found; never empty.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problems(pub Vec<Problem>);

impl Problems {
    /// The problems, each prefixed with the file they are in: `agent.hcl:3:5: key: message`.
    pub fn in_file(&self, origin: &str) -> String {
        self.0
            .iter()
            .map(|p| match p.pos {
                Some(_) => format!("{origin}:{p}"),
                None => format!("{origin}: {p}"),
            })
            .collect::<Vec<_>>()
            .join("; ")
    }
}

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            p.fmt(f)?;
        }
        Ok(())
    }
}

impl std::error::Error for Problems {}

/// A key hydrant accepts but does nothing with, and why that is safe.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Warning {
    /// Where, when known.
    pub pos: Option<Pos>,
    /// The key.
    pub key: String,
    /// What hydrant does instead.
    pub message: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        Problem {
            pos: self.pos,
            key: self.key.clone(),
            message: self.message.clone(),
        }
        .fmt(f)
    }
}

/// A Vault Agent configuration as Vault Agent reads one file, limited to what hydrant can do;
/// several merge with [`VaultAgentConfig::merge`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct VaultAgentConfig {
    vault: Option<VaultStanza>,
    auto_auth: Option<AutoAuth>,
    templates: Vec<Template>,
    template_config: Option<TemplateSettings>,
    env_templates: Vec<EnvTemplate>,
    exec: Option<Exec>,
    exit_after_auth: bool,
    pid_file: Option<PathBuf>,
    /// Keys accepted and ignored, with the file they came from.
    warnings: Vec<(String, Warning)>,
}

#[derive(Clone, Debug, Default, PartialEq)]
struct VaultStanza {
    address: Option<String>,
    ca_cert: Option<PathBuf>,
    /// Only from the environment (`VAULT_CACERT_BYTES`): the stanza has no such key.
    ca_cert_pem: Option<String>,
    tls_server_name: Option<String>,
    tls_skip_verify: bool,
    namespace: Option<String>,
    /// `retry.num_retries`: 0 means consul-template's default (12), -1 no retries.
    num_retries: Option<i64>,
}

#[derive(Clone, Debug, PartialEq)]
struct AutoAuth {
    method: Method,
    sinks: Vec<Sink>,
}

#[derive(Clone, Debug, PartialEq)]
struct Method {
    kind: AuthMethod,
    /// As written: `auth/kubernetes` (the default is `auth/<type>`).
    mount_path: Option<String>,
    namespace: Option<String>,
    min_backoff: Option<time::Duration>,
    max_backoff: Option<time::Duration>,
    role: Option<String>,
    /// kubernetes `token_path`, jwt `path`.
    jwt_path: Option<PathBuf>,
    role_id_path: Option<PathBuf>,
    secret_id_path: Option<PathBuf>,
    token_path: Option<PathBuf>,
    /// jwt `remove_jwt_after_reading`, approle `remove_secret_id_file_after_reading`: both
    /// default to true in Vault Agent.
    remove_after_reading: Option<bool>,
}

#[derive(Clone, Debug, PartialEq)]
struct Sink {
    path: PathBuf,
    mode: Option<u32>,
}

#[derive(Clone, Debug, Default, PartialEq)]
struct Template {
    source: Option<PathBuf>,
    contents: Option<String>,
    destination: Option<PathBuf>,
    perms: Option<u32>,
    command: Vec<String>,
    command_timeout: Option<time::Duration>,
    error_on_missing_key: Option<bool>,
    left_delimiter: Option<String>,
    right_delimiter: Option<String>,
    create_dest_dirs: Option<bool>,
    /// Where the stanza starts, for the translation's messages.
    pos: Option<Pos>,
}

/// An `env_template "NAME"`: one variable of the `exec` command's environment.
#[derive(Clone, Debug, Default, PartialEq)]
struct EnvTemplate {
    name: String,
    source: Option<PathBuf>,
    contents: Option<String>,
    error_on_missing_key: Option<bool>,
    left_delimiter: Option<String>,
    right_delimiter: Option<String>,
    pos: Option<Pos>,
}

/// The top-level `exec`: Vault Agent as the process supervisor of this command.
#[derive(Clone, Debug, Default, PartialEq)]
struct Exec {
    /// As written (a string is split at commas); empty when not given.
    command: Vec<String>,
    /// `restart_on_secret_changes`: `always` (the default) or `never`.
    restart_always: bool,
    /// `restart_stop_signal`'s name without `SIG`, when given.
    stop_signal: Option<&'static str>,
    pos: Option<Pos>,
}

#[derive(Clone, Debug, Default, PartialEq)]
struct TemplateSettings {
    exit_on_retry_failure: Option<bool>,
    static_secret_render_interval: Option<time::Duration>,
    lease_renewal_threshold: Option<f64>,
    max_connections_per_host: Option<u16>,
}

/// What Vault Agent takes from its environment over the `vault` stanza (`VAULT_ADDR`,
/// `VAULT_CACERT`, `VAULT_CACERT_BYTES`, `VAULT_TLS_SERVER_NAME`, `VAULT_SKIP_VERIFY`): a variable
/// that is set wins over the file, as in Vault Agent's `applyConfigOverrides`. Read by the caller,
/// so that this translation stays pure.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VaultEnvironment {
    /// Vault's address.
    pub address: Option<String>,
    /// The PEM file of Vault's CA.
    pub ca_cert: Option<PathBuf>,
    /// Vault's CA as PEM text; wins over a CA file, as in the Vault client.
    pub ca_cert_pem: Option<String>,
    /// The name Vault's certificate is checked against.
    pub tls_server_name: Option<String>,
    /// Whether Vault's certificate goes unchecked.
    pub tls_skip_verify: Option<bool>,
}

/// What a translation is checked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Purpose {
    /// `hydrant agent`.
    Agent,
    /// `hydrant exec`.
    Exec,
    /// A tool that only logs in.
    Connection,
}

/// What a translation gives: hydrant's config, and the keys it ignored.
#[derive(Clone, Debug, PartialEq)]
pub struct Translated {
    /// hydrant's configuration; validate it like any other.
    pub config: AgentConfig,
    /// Each key accepted but ignored, as `file:line:col: key: what hydrant does instead`.
    pub warnings: Vec<String>,
}

/// Whether a document is a Vault Agent configuration rather than hydrant's own: by its file
/// name's extension (`.hcl`), else by its text (JSON without hydrant's `auth` key; text whose
/// first statement is HCL rather than YAML).
pub fn is_vault_agent(file_name: &str, text: &str) -> bool {
    if file_name.ends_with(".hcl") {
        return true;
    }
    if file_name.ends_with(".yaml") || file_name.ends_with(".yml") {
        return false;
    }
    let trimmed = text.trim_start();
    if trimmed.starts_with('{') {
        return serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(trimmed)
            .is_ok_and(|map| !map.contains_key("auth"));
    }
    first_statement_is_hcl(text)
}

/// The first line that is not blank or a comment reads `name {`, `name "label"` or `name =`.
fn first_statement_is_hcl(text: &str) -> bool {
    let Some(line) = text.lines().map(str::trim).find(|l| {
        !l.is_empty() && !l.starts_with('#') && !l.starts_with("//") && !l.starts_with("/*")
    }) else {
        return false;
    };
    let rest = line.trim_start_matches(|c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    rest.len() < line.len() && matches!(rest.trim_start().chars().next(), Some('{' | '"' | '='))
}

/// Reads one file. `origin` names it in the warnings that are kept for [`translate`].
pub fn parse(text: &str, syntax: Syntax, origin: &str) -> Result<VaultAgentConfig, Problems> {
    let items = match syntax {
        Syntax::Hcl => tree::parse_hcl(text),
        Syntax::Json => tree::parse_json(text),
    }
    .map_err(|e| {
        Problems(vec![Problem {
            pos: e.pos,
            key: String::new(),
            message: e.message,
        }])
    })?;
    let (mut config, warnings) = decode::config(&items)?;
    config.warnings = warnings
        .into_iter()
        .map(|w| (origin.to_owned(), w))
        .collect();
    Ok(config)
}

impl VaultAgentConfig {
    /// `self` with `later` merged over it, as Vault Agent merges its config files: `vault`,
    /// `auto_auth`, `template_config` and `exec` of the later file replace the earlier ones
    /// whole; templates and env templates add up; `exit_after_auth` holds if any file sets it;
    /// the last `pid_file` wins.
    pub fn merge(self, later: VaultAgentConfig) -> VaultAgentConfig {
        let mut templates = self.templates;
        templates.extend(later.templates);
        let mut env_templates = self.env_templates;
        env_templates.extend(later.env_templates);
        let mut warnings = self.warnings;
        warnings.extend(later.warnings);
        VaultAgentConfig {
            vault: later.vault.or(self.vault),
            auto_auth: later.auto_auth.or(self.auto_auth),
            templates,
            template_config: later.template_config.or(self.template_config),
            env_templates,
            exec: later.exec.or(self.exec),
            exit_after_auth: self.exit_after_auth || later.exit_after_auth,
            pid_file: later.pid_file.or(self.pid_file),
            warnings,
        }
    }

    /// `self` with what `env` sets written over its `vault` stanza.
    pub fn with_environment(mut self, env: &VaultEnvironment) -> VaultAgentConfig {
        if env == &VaultEnvironment::default() {
            return self;
        }
        let vault = self.vault.get_or_insert_with(VaultStanza::default);
        if let Some(address) = &env.address {
            vault.address = Some(address.clone());
        }
        if let Some(pem) = &env.ca_cert_pem {
            vault.ca_cert_pem = Some(pem.clone());
            vault.ca_cert = None;
        } else if let Some(file) = &env.ca_cert {
            vault.ca_cert = Some(file.clone());
        }
        if let Some(name) = &env.tls_server_name {
            vault.tls_server_name = Some(name.clone());
        }
        if let Some(skip) = env.tls_skip_verify {
            vault.tls_skip_verify = skip;
        }
        self
    }

    /// hydrant's configuration for this one, as `bao agent` reads it: templates and sinks, or
    /// with `exec` and `env_template` a process supervisor (hydrant exec's `env` and `exec`).
    /// Problems that only the whole (merged) config shows, such as no `auto_auth`, are reported
    /// here.
    pub fn translate(self) -> Result<Translated, Problems> {
        translate::translate(self, Purpose::Agent)
    }

    /// [`VaultAgentConfig::translate`] for `hydrant exec`: `env_template` is required, while
    /// `exec` and its command may be left to the command line.
    pub fn translate_exec(self) -> Result<Translated, Problems> {
        translate::translate(self, Purpose::Exec)
    }

    /// [`VaultAgentConfig::translate`] for a tool that only logs in (`hydrant render` and
    /// `policy` with `--agent-config`): a config without templates or sinks is no problem.
    pub fn translate_connection(self) -> Result<Translated, Problems> {
        translate::translate(self, Purpose::Connection)
    }
}

#[cfg(test)]
mod tests;
