//! Reading an agent configuration from its text: JSON when it starts with `{`, YAML otherwise.
//! An error names the key path where the document went wrong.

use super::AgentConfig;

/// Parses a document as JSON when it starts with `{`, as YAML otherwise.
pub fn parse(text: &str) -> Result<AgentConfig, String> {
    if text.trim_start().starts_with('{') {
        parse_json(text)
    } else {
        parse_yaml(text)
    }
}

/// Parses a JSON document, such as the one the webhook puts in `HYDRANT_AGENT_CONFIG`.
pub fn parse_json(text: &str) -> Result<AgentConfig, String> {
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
}
