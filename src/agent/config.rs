//! Loading the agent configuration: a YAML or JSON file, or JSON in `HYDRANT_AGENT_CONFIG`.

use std::path::Path;

use injector::{AGENT_CONFIG_ENV, AgentConfig};

use crate::env::{Env, non_empty};

/// Loads and validates the configuration from `path`, or from the environment when `path` is
/// `None`. The error is one line naming the source and every bad key.
pub fn load(path: Option<&Path>, env: &dyn Env) -> Result<AgentConfig, String> {
    load_checked(path, env, AgentConfig::validate)
}

/// As [`load`], checking only `vault` and `auth`: for the tools that only log in.
pub fn load_connection(path: &Path, env: &dyn Env) -> Result<AgentConfig, String> {
    load_checked(Some(path), env, AgentConfig::validate_connection)
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

/// Parses a document as JSON when it starts with `{`, as YAML otherwise.
pub fn parse(text: &str) -> Result<AgentConfig, String> {
    if text.trim_start().starts_with('{') {
        parse_json(text)
    } else {
        parse_yaml(text)
    }
}

fn parse_json(text: &str) -> Result<AgentConfig, String> {
    let mut de = serde_json::Deserializer::from_str(text);
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        at_key(&path, &inner.to_string())
    })
}

fn parse_yaml(text: &str) -> Result<AgentConfig, String> {
    let options = serde_saphyr::options! { with_snippet: false };
    let mut key = String::new();
    let result = serde_saphyr::with_deserializer_from_str_with_options(text, options, |de| {
        serde_path_to_error::deserialize(de).map_err(|e| {
            key = e.path().to_string();
            e.into_inner()
        })
    });
    result.map_err(|e| at_key(&key, &first_line(&e.to_string())))
}

fn at_key(path: &str, message: &str) -> String {
    if path.is_empty() || path == "." {
        message.to_owned()
    } else {
        format!("{path}: {message}")
    }
}

fn first_line(text: &str) -> String {
    text.lines().next().unwrap_or_default().trim().to_owned()
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
    fn yaml_and_json_give_the_same_config() {
        let yaml = parse(YAML).expect("yaml parses");
        let json = serde_json::to_string(&yaml).expect("serialises");
        assert_eq!(parse(&json).expect("json parses"), yaml);
        assert_eq!(yaml.retry.deadline().as_secs(), 30);
        assert_eq!(yaml.templates[0].perms.map(|p| p.0), Some(0o640));
    }

    #[test]
    fn a_typo_names_the_key_path() {
        let text = YAML.replace("destination: /vault/secrets/app.env", "destnation: /x");
        let err = parse(&text).expect_err("typo refused");
        assert!(err.starts_with("secrets[0]"), "{err}");
        assert!(err.contains("unknown field `destnation`"), "{err}");
    }

    #[test]
    fn a_wrong_type_names_the_key_path_in_json_too() {
        let err = parse(r#"{"vault":{"address":"http://x","tls_skip_verify":"yes"}}"#)
            .expect_err("refused");
        assert!(
            err.starts_with("vault.tls_skip_verify: invalid type"),
            "{err}"
        );
        let err = parse("vault:\n  address: http://x\n  tls_skip_verify: sometimes\n")
            .expect_err("refused");
        assert!(err.starts_with("vault.tls_skip_verify"), "{err}");
    }

    #[test]
    fn an_unquoted_yaml_mode_is_read_as_the_octal_text_written() {
        // YAML 1.2 would read 0640 as decimal 640; the mode is taken from the text as written.
        let text = YAML.replace("perms: \"0640\"", "perms: 0640");
        assert_eq!(
            parse(&text).expect("parses").templates[0]
                .perms
                .map(|p| p.0),
            Some(0o640)
        );
        let text = YAML.replace("perms: \"0640\"", "perms: 0999");
        let err = parse(&text).expect_err("refused");
        assert!(err.starts_with("templates[0].perms"), "{err}");
        assert!(err.contains("\"0640\""), "the fix is shown: {err}");
    }

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
