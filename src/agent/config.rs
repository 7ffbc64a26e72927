//! Loading the agent configuration: hydrant's own YAML or JSON file, JSON in
//! `HYDRANT_AGENT_CONFIG`, or Vault Agent configurations (HCL or JSON files, or a directory of
//! them) merged and translated as `injector::agent_config::vault_agent` says.

use std::path::{Path, PathBuf};

use injector::agent_config::vault_agent::{self, Syntax, VaultAgentConfig};
use injector::agent_config::{parse, parse_json};
use injector::{AGENT_CONFIG_ENV, AgentConfig};
use tracing::warn;

use crate::env::{Env, non_empty};

/// Loads and validates the configuration from `paths`, or from the environment when there are
/// none. The error is one line naming the source and every bad key.
pub fn load(paths: &[PathBuf], env: &dyn Env) -> Result<AgentConfig, String> {
    load_checked(paths, env, AgentConfig::validate)
}

/// Loads and validates a configuration for `hydrant exec` (`env` and `exec` instead of files),
/// as [`load`] does.
pub fn load_exec(paths: &[PathBuf], env: &dyn Env) -> Result<AgentConfig, String> {
    load_checked(paths, env, AgentConfig::validate_exec)
}

fn load_checked(
    paths: &[PathBuf],
    env: &dyn Env,
    validate: fn(&AgentConfig) -> Result<(), injector::agent_config::ConfigIssues>,
) -> Result<AgentConfig, String> {
    let (origin, config) = match paths {
        [] => {
            let text = non_empty(env, AGENT_CONFIG_ENV).ok_or_else(|| {
                format!("no configuration: pass --config FILE or set {AGENT_CONFIG_ENV} to the JSON document")
            })?;
            let config = parse_json(&text).map_err(|e| format!("{AGENT_CONFIG_ENV}: {e}"))?;
            (AGENT_CONFIG_ENV.to_owned(), config)
        }
        [path] if !path.is_dir() => {
            let origin = path.display().to_string();
            let text = read(path)?;
            let config = if vault_agent::is_vault_agent(&origin, &text) {
                vault_agent_config(&[(path.clone(), text)])?
            } else {
                parse(&text).map_err(|e| format!("{origin}: {e}"))?
            };
            (origin, config)
        }
        _ => {
            let files = vault_agent_files(paths)?;
            let origin = files
                .iter()
                .map(|(path, _)| path.display().to_string())
                .collect::<Vec<_>>()
                .join(", ");
            (origin, vault_agent_config(&files)?)
        }
    };
    validate(&config).map_err(|issues| format!("{origin}: {issues}"))?;
    Ok(config)
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

/// Reads, merges and translates Vault Agent configuration files, logging each key that is
/// accepted and ignored.
fn vault_agent_config(files: &[(PathBuf, String)]) -> Result<AgentConfig, String> {
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
    let translated = merged
        .unwrap_or_default()
        .translate()
        .map_err(|e| e.in_file(&origin))?;
    for warning in &translated.warnings {
        warn!(%warning, "a Vault Agent key hydrant ignores");
    }
    Ok(translated.config)
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
}
