//! Loading the agent configuration: a YAML or JSON file, or JSON in `HYDRANT_AGENT_CONFIG`.

use std::path::Path;

use injector::agent_config::{parse, parse_json};
use injector::{AGENT_CONFIG_ENV, AgentConfig};

use crate::env::{Env, non_empty};

/// Loads and validates the configuration from `path`, or from the environment when `path` is
/// `None`. The error is one line naming the source and every bad key.
pub fn load(path: Option<&Path>, env: &dyn Env) -> Result<AgentConfig, String> {
    load_checked(path, env, AgentConfig::validate)
}

fn load_checked(
    path: Option<&Path>,
    env: &dyn Env,
    validate: fn(&AgentConfig) -> Result<(), injector::agent_config::ConfigIssues>,
) -> Result<AgentConfig, String> {
    let (origin, config) = match path {
        Some(path) => {
            let origin = path.display().to_string();
            let text =
                std::fs::read_to_string(path).map_err(|e| format!("cannot read {origin}: {e}"))?;
            let config = parse(&text).map_err(|e| format!("{origin}: {e}"))?;
            (origin, config)
        }
        None => {
            let text = non_empty(env, AGENT_CONFIG_ENV).ok_or_else(|| {
                format!("no configuration: pass --config FILE or set {AGENT_CONFIG_ENV} to the JSON document")
            })?;
            let config = parse_json(&text).map_err(|e| format!("{AGENT_CONFIG_ENV}: {e}"))?;
            (AGENT_CONFIG_ENV.to_owned(), config)
        }
    };
    validate(&config).map_err(|issues| format!("{origin}: {issues}"))?;
    Ok(config)
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
        let config = load(None, &env).expect("loads");
        assert_eq!(config.templates[0].name, "db");

        let err = load(None, &HashMap::new()).expect_err("nothing given");
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
        let err = load(Some(&path), &HashMap::new()).expect_err("invalid");
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
