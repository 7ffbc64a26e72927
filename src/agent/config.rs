//! Loading the agent configuration: hydrant's own YAML or JSON file, JSON in
//! `HYDRANT_AGENT_CONFIG`, or Vault Agent configurations (HCL or JSON files, or a directory of
//! them) merged and translated as `injector::agent_config::vault_agent` says.

use std::path::{Path, PathBuf};

use injector::agent_config::vault_agent::{self, Syntax, VaultAgentConfig, VaultEnvironment};
use injector::agent_config::{parse, parse_json};
use injector::{AGENT_CONFIG_ENV, AgentConfig, vault_env as v};
use tracing::warn;

use crate::env::{Env, non_empty};

/// Loads and validates the configuration from `paths`, or from the environment when there are
/// none. The error is one line naming the source and every bad key.
pub fn load(paths: &[PathBuf], env: &dyn Env) -> Result<AgentConfig, String> {
    let loaded = read_config(paths, env, Purpose::Agent)?;
    check(&loaded, AgentConfig::validate)?;
    Ok(loaded.config)
}

/// What `hydrant agent` runs for its configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Render the files and sink the token: the agent.
    Agent,
    /// Run the configured command with the variables, as `hydrant exec` does.
    Supervisor,
}

/// The one place `hydrant agent` decides what it runs: a Vault Agent configuration with `exec`
/// or `env_template` makes `bao agent` a process supervisor, and so hydrant. hydrant's own
/// config keeps `env` and `exec` for `hydrant exec`, and `hydrant agent` refuses them.
pub fn role(vault_agent: bool, config: &AgentConfig) -> Role {
    if vault_agent && (config.exec.is_some() || !config.env.is_empty()) {
        Role::Supervisor
    } else {
        Role::Agent
    }
}

/// Loads the configuration for `hydrant agent` and what it runs, validated for that (as
/// [`load`], or as [`load_exec`] for the supervisor).
pub fn load_agent(paths: &[PathBuf], env: &dyn Env) -> Result<(Role, AgentConfig), String> {
    let loaded = read_config(paths, env, Purpose::Agent)?;
    let role = role(loaded.vault_agent, &loaded.config);
    match role {
        Role::Agent => check(&loaded, AgentConfig::validate)?,
        Role::Supervisor => check(&loaded, AgentConfig::validate_exec)?,
    }
    Ok((role, loaded.config))
}

/// Loads and validates a configuration for `hydrant exec` (`env` and `exec` instead of files),
/// as [`load`] does; a Vault Agent configuration gives them with `env_template` and `exec`.
pub fn load_exec(paths: &[PathBuf], env: &dyn Env) -> Result<AgentConfig, String> {
    let loaded = read_config(paths, env, Purpose::Exec)?;
    check(&loaded, AgentConfig::validate_exec)?;
    Ok(loaded.config)
}

/// A configuration as read, before validation.
struct Loaded {
    /// The files (or variable) it came from, for messages.
    origin: String,
    /// Whether it is a Vault Agent configuration rather than hydrant's own.
    vault_agent: bool,
    config: AgentConfig,
}

fn check(
    loaded: &Loaded,
    validate: fn(&AgentConfig) -> Result<(), injector::agent_config::ConfigIssues>,
) -> Result<(), String> {
    validate(&loaded.config).map_err(|issues| format!("{}: {issues}", loaded.origin))
}

fn read_config(paths: &[PathBuf], env: &dyn Env, purpose: Purpose) -> Result<Loaded, String> {
    match paths {
        [] => {
            let text = non_empty(env, AGENT_CONFIG_ENV).ok_or_else(|| {
                format!("no configuration: pass --config FILE or set {AGENT_CONFIG_ENV} to the JSON document")
            })?;
            let config = parse_json(&text).map_err(|e| format!("{AGENT_CONFIG_ENV}: {e}"))?;
            Ok(Loaded {
                origin: AGENT_CONFIG_ENV.to_owned(),
                vault_agent: false,
                config,
            })
        }
        [path] if !path.is_dir() => {
            let origin = path.display().to_string();
            let text = read(path)?;
            let vault_agent = vault_agent::is_vault_agent(&origin, &text);
            let config = if vault_agent {
                vault_agent_config(&[(path.clone(), text)], env, purpose)?
            } else {
                parse(&text).map_err(|e| format!("{origin}: {e}"))?
            };
            Ok(Loaded {
                origin,
                vault_agent,
                config,
            })
        }
        _ => {
            let files = vault_agent_files(paths)?;
            let origin = files
                .iter()
                .map(|(path, _)| path.display().to_string())
                .collect::<Vec<_>>()
                .join(", ");
            Ok(Loaded {
                origin,
                vault_agent: true,
                config: vault_agent_config(&files, env, purpose)?,
            })
        }
    }
}

/// Loads only what a command-line tool needs to reach Vault and log in (`hydrant render` and
/// `policy` with `--agent-config`): the `vault` and `auth` of hydrant's own config, or of a
/// Vault Agent configuration (HCL or its JSON form, with the environment's `VAULT_*` over its
/// `vault` stanza as Vault Agent takes them), whatever its templates say. The error names the
/// file and every bad key.
pub fn load_connection(path: &Path, env: &dyn Env) -> Result<AgentConfig, String> {
    let origin = path.display().to_string();
    let text = read(path)?;
    let config = if vault_agent::is_vault_agent(&origin, &text) {
        vault_agent_config(&[(path.to_owned(), text)], env, Purpose::Connection)?
    } else {
        parse(&text).map_err(|e| format!("{origin}: {e}"))?
    };
    config
        .validate_connection()
        .map_err(|issues| format!("{origin}: {issues}"))?;
    Ok(config)
}

/// What a Vault Agent configuration is read for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Purpose {
    /// The agent: it must render or sink something, or run its `exec` command.
    Agent,
    /// `hydrant exec`: it must give variables.
    Exec,
    /// A tool that only logs in.
    Connection,
}

fn read(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

/// Every file of several `--config`s, in the order given; a directory gives its `.hcl` and
/// `.json` files in name order, as Vault Agent reads a config directory (editors' temporary
/// files left out). Each must be a Vault Agent configuration: hydrant's own is one file.
fn vault_agent_files(paths: &[PathBuf]) -> Result<Vec<(PathBuf, String)>, String> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            let entries = std::fs::read_dir(path)
                .map_err(|e| format!("cannot read the directory {}: {e}", path.display()))?;
            let mut found: Vec<PathBuf> = entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.is_file() && is_config_file_name(p))
                .collect();
            found.sort();
            if found.is_empty() {
                return Err(format!(
                    "{}: the directory holds no .hcl or .json file",
                    path.display()
                ));
            }
            files.extend(found);
        } else {
            files.push(path.clone());
        }
    }
    files
        .into_iter()
        .map(|path| {
            let text = read(&path)?;
            let name = path.display().to_string();
            if !vault_agent::is_vault_agent(&name, &text) {
                return Err(format!(
                    "{name}: several --config files merge only as Vault Agent configurations (HCL or its JSON form); hydrant's own config is one file"
                ));
            }
            Ok((path, text))
        })
        .collect()
}

fn is_config_file_name(path: &Path) -> bool {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let temporary = name.ends_with('~')
        || name.starts_with(".#")
        || (name.starts_with('#') && name.ends_with('#'));
    !temporary && (name.ends_with(".hcl") || name.ends_with(".json"))
}

/// Reads, merges and translates Vault Agent configuration files, with what the environment sets
/// over their `vault` stanza as Vault Agent takes it, logging each key that is accepted and
/// ignored.
fn vault_agent_config(
    files: &[(PathBuf, String)],
    env: &dyn Env,
    purpose: Purpose,
) -> Result<AgentConfig, String> {
    let environment = vault_environment(env)?;
    let mut merged: Option<VaultAgentConfig> = None;
    let mut problems = Vec::new();
    for (path, text) in files {
        let origin = path.display().to_string();
        let syntax = if origin.ends_with(".json") || text.trim_start().starts_with('{') {
            Syntax::Json
        } else {
            Syntax::Hcl
        };
        match vault_agent::parse(text, syntax, &origin) {
            Ok(config) => {
                merged = Some(match merged {
                    Some(earlier) => earlier.merge(config),
                    None => config,
                })
            }
            Err(e) => problems.push(e.in_file(&origin)),
        }
    }
    if !problems.is_empty() {
        return Err(problems.join("; "));
    }
    let origin = files
        .iter()
        .map(|(path, _)| path.display().to_string())
        .collect::<Vec<_>>()
        .join(", ");
    let merged = merged.unwrap_or_default().with_environment(&environment);
    let translated = match purpose {
        Purpose::Agent => merged.translate(),
        Purpose::Exec => merged.translate_exec(),
        Purpose::Connection => merged.translate_connection(),
    }
    .map_err(|e| e.in_file(&origin))?;
    for warning in &translated.warnings {
        warn!(%warning, "a Vault Agent key hydrant ignores");
    }
    Ok(translated.config)
}

/// A `VAULT_*` variable, or OpenBao's `BAO_*` spelling of it, trimmed; empty is unset.
fn vault_var(env: &dyn Env, name: &str) -> Option<String> {
    non_empty(env, name)
        .or_else(|| non_empty(env, &name.replacen("VAULT_", "BAO_", 1)))
        .map(|v| v.trim().to_owned())
}

/// What Vault Agent takes from the environment over a configuration's `vault` stanza: a set
/// variable wins, as in Vault Agent (`VAULT_ADDR` and the rest, or `BAO_*`). The ones naming what
/// hydrant cannot do (a CA directory, a client certificate) are refused by name, as the stanza's
/// keys are; `VAULT_SKIP_VERIFY` is read as a Go boolean (Vault Agent takes any non-empty value,
/// "false" included, as true).
fn vault_environment(env: &dyn Env) -> Result<VaultEnvironment, String> {
    for (name, instead) in [
        (
            v::VAULT_CAPATH,
            "hydrant reads one CA bundle; concatenate the directory's PEM files into one and name it with VAULT_CACERT",
        ),
        (
            v::VAULT_CLIENT_CERT,
            "hydrant presents no client certificate to Vault; unset it",
        ),
        (
            v::VAULT_CLIENT_KEY,
            "hydrant presents no client certificate to Vault; unset it",
        ),
    ] {
        if vault_var(env, name).is_some() {
            return Err(format!("{name} is set: {instead}"));
        }
    }
    let tls_skip_verify = vault_var(env, v::VAULT_SKIP_VERIFY)
        .map(|value| {
            injector::values::parse_bool(&value)
                .map_err(|e| format!("{}: {e}", v::VAULT_SKIP_VERIFY))
        })
        .transpose()?;
    Ok(VaultEnvironment {
        address: vault_var(env, v::VAULT_ADDR),
        ca_cert: vault_var(env, v::VAULT_CACERT).map(PathBuf::from),
        // PEM text keeps its lines: read as given, not trimmed.
        ca_cert_pem: non_empty(env, v::VAULT_CACERT_BYTES)
            .or_else(|| non_empty(env, "BAO_CACERT_BYTES")),
        tls_server_name: vault_var(env, v::VAULT_TLS_SERVER_NAME),
        tls_skip_verify,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const YAML: &str = "\
vault:
  address: http://127.0.0.1:8200
auth:
  method: approle
  role_id_path: /etc/approle/role-id
  secret_id_path: /etc/approle/secret-id
templates:
  - name: db
    contents: \"user={{ secret('secret/data/app/db').data.username }}\"
    destination: /vault/secrets/db.env
    perms: \"0640\"
secrets:
  - name: app
    path: secret/data/app/config
    format: env
    destination: /vault/secrets/app.env
retry:
  deadline: 30s
";

    #[test]
    fn the_environment_is_read_when_no_file_is_given() {
        let json = serde_json::to_string(&parse(YAML).expect("parses")).expect("serialises");
        let env: HashMap<String, String> = [(AGENT_CONFIG_ENV.to_string(), json)].into();
        let config = load(&[], &env).expect("loads");
        assert_eq!(config.templates[0].name, "db");

        let err = load(&[], &HashMap::new()).expect_err("nothing given");
        assert!(
            err.contains("pass --config FILE or set HYDRANT_AGENT_CONFIG"),
            "{err}"
        );
    }

    #[test]
    fn validation_problems_name_the_source_and_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("agent.yaml");
        std::fs::write(&path, YAML.replace("method: approle", "method: kubernetes"))
            .expect("write");
        let err = load(std::slice::from_ref(&path), &HashMap::new()).expect_err("invalid");
        assert!(
            err.starts_with(&format!("{}: auth.role: is required", path.display())),
            "{err}"
        );
        assert!(
            err.contains("auth.role_id_path: is not used by method kubernetes"),
            "{err}"
        );
    }

    /// Vault Agent takes `VAULT_ADDR` and its kin over the `vault` stanza (vault-k8s relies on it
    /// for a ConfigMap without one); a CA directory or client certificate in the environment is
    /// refused as the stanza's keys are, and `VAULT_SKIP_VERIFY` is a boolean ("false" is false).
    #[test]
    fn vault_agent_configs_take_the_vault_variables_over_their_vault_stanza() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("agent.hcl");
        let hcl = "auto_auth {\n  method \"token_file\" {\n    config = { token_file_path = \"/t\" }\n  }\n}\ntemplate {\n  destination = \"/tmp/x\"\n  contents = \"x\"\n}\n";
        std::fs::write(&path, hcl).expect("write");
        let paths = std::slice::from_ref(&path);
        let env = |pairs: &[(&str, &str)]| -> HashMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let err = load(paths, &env(&[])).expect_err("no address");
        assert!(err.contains("vault.address: is required"), "{err}");
        assert!(err.contains("or set VAULT_ADDR"), "{err}");
        let config = load(paths, &env(&[("BAO_ADDR", "http://127.0.0.1:8200")])).expect("loads");
        assert_eq!(config.vault.address, "http://127.0.0.1:8200");

        std::fs::write(
            &path,
            format!("vault {{\n  address = \"https://vault.example:8200\"\n  tls_skip_verify = true\n}}\n{hcl}"),
        )
        .expect("write");
        let config = load(paths, &env(&[])).expect("loads");
        assert_eq!(config.vault.address, "https://vault.example:8200");
        assert!(config.vault.tls_skip_verify);
        let config = load(
            paths,
            &env(&[
                ("VAULT_ADDR", "https://vault.vault.svc:8200"),
                ("VAULT_SKIP_VERIFY", "false"),
                ("VAULT_TLS_SERVER_NAME", "vault.internal"),
                ("VAULT_CACERT", "/vault/tls/ca.crt"),
            ]),
        )
        .expect("loads");
        assert_eq!(config.vault.address, "https://vault.vault.svc:8200");
        assert!(!config.vault.tls_skip_verify, "false is false");
        assert_eq!(
            config.vault.tls_server_name.as_deref(),
            Some("vault.internal")
        );
        assert_eq!(
            config.vault.ca_cert.as_deref(),
            Some(Path::new("/vault/tls/ca.crt"))
        );
        let err = load(paths, &env(&[("VAULT_SKIP_VERIFY", "yes")])).expect_err("not a bool");
        assert!(err.starts_with("VAULT_SKIP_VERIFY: "), "{err}");
        let err = load(paths, &env(&[("VAULT_CAPATH", "/etc/ssl/certs")])).expect_err("capath");
        assert!(err.starts_with("VAULT_CAPATH is set: "), "{err}");
    }

    /// `hydrant agent` on a Vault Agent configuration with `exec` and `env_template` is the
    /// process supervisor, as `bao agent` is; on hydrant's own config, `env` stays refused with
    /// the command that reads it.
    #[test]
    fn the_agent_supervises_a_command_only_for_a_vault_agent_exec_config() {
        let dir = tempfile::tempdir().expect("tempdir");
        let hcl = dir.path().join("agent.hcl");
        let base = "vault {\n  address = \"http://127.0.0.1:8200\"\n}\nauto_auth {\n  method \"token_file\" {\n    config = { token_file_path = \"/t\" }\n  }\n}\n";
        std::fs::write(
            &hcl,
            format!("{base}env_template \"A\" {{\n  contents = \"a\"\n}}\nexec {{\n  command = [\"/bin/true\"]\n}}\n"),
        )
        .expect("write");
        let (chosen, config) =
            load_agent(std::slice::from_ref(&hcl), &HashMap::new()).expect("loads");
        assert_eq!(chosen, Role::Supervisor);
        assert_eq!(config.env[0].name, "A");
        assert_eq!(
            load_exec(std::slice::from_ref(&hcl), &HashMap::new())
                .expect("hydrant exec reads it too")
                .exec,
            config.exec
        );

        std::fs::write(
            &hcl,
            format!("{base}template {{\n  contents = \"a\"\n  destination = \"/tmp/a\"\n}}\n"),
        )
        .expect("write");
        let (chosen, _) = load_agent(std::slice::from_ref(&hcl), &HashMap::new()).expect("loads");
        assert_eq!(chosen, Role::Agent);
        let err = load_exec(std::slice::from_ref(&hcl), &HashMap::new()).expect_err("no env");
        assert!(
            err.contains("env_template: is required by hydrant exec"),
            "{err}"
        );

        let mut own = parse(YAML).expect("parses");
        own.env = vec![injector::agent_config::EnvConfig {
            name: "A".into(),
            contents: Some("a".into()),
            ..Default::default()
        }];
        assert_eq!(role(false, &own), Role::Agent);
        assert_eq!(role(true, &own), Role::Supervisor);
    }
}
