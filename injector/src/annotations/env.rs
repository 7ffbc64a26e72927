//! Environment variables from Vault, as a pod asks for them: bank-vaults' `vault:` references
//! in a container's env values (`vault:secret/data/app#password`, with a version:
//! `vault:secret/data/app#password#2`), and hydrant's `hydrant.dev/env-<VAR>` annotations (a
//! `path#key[#version]` reference, or a Jinja template). Each becomes an `env` entry of
//! `hydrant exec`'s configuration; what hydrant cannot honour is refused with what to do
//! instead. Pure: the webhook decides with it, and the values themselves are never seen here.

use crate::agent_config::{EnvConfig, is_env_name};

/// The annotation prefix of one variable: `hydrant.dev/env-DB_PASSWORD`.
pub const ENV_PREFIX: &str = super::keys::hydrant::ENV_PREFIX;

/// What bank-vaults' env values start with.
pub const VAULT_PREFIX: &str = "vault:";

/// One `path#key[#version]` reference.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reference {
    /// The Vault path.
    pub path: String,
    /// The key of its data.
    pub key: String,
    /// A KV v2 version.
    pub version: Option<u64>,
}

impl Reference {
    /// The `env` entry that gives variable `name` this reference's value.
    pub fn entry(&self, name: &str) -> EnvConfig {
        EnvConfig {
            name: name.to_owned(),
            path: Some(self.path.clone()),
            key: Some(self.key.clone()),
            version: self.version,
            ..EnvConfig::default()
        }
    }
}

/// Reads `path#key` or `path#key#version` (without the `vault:` prefix). The error says what
/// is wrong and how it is written.
pub fn parse_reference(text: &str) -> Result<Reference, String> {
    const FORM: &str = "write path#key or path#key#version, such as secret/data/app/db#password";
    let mut parts = text.split('#');
    let path = parts.next().unwrap_or_default().trim();
    let key = parts.next().map(str::trim);
    let version = parts.next().map(str::trim);
    if parts.next().is_some() {
        return Err(format!("has more than two '#'; {FORM}"));
    }
    let Some(key) = key.filter(|k| !k.is_empty()) else {
        return Err(format!("names no key; {FORM}"));
    };
    if path.trim_matches('/').is_empty() {
        return Err(format!("names no Vault path; {FORM}"));
    }
    if path
        .chars()
        .any(|c| c.is_control() || matches!(c, '"' | '\\' | '`' | '?'))
    {
        return Err(
            "the path holds a quote, backslash, '?' or control character, which no Vault path has"
                .to_owned(),
        );
    }
    if key.contains("{{") {
        return Err("a template in the key (bank-vaults' Go templates over the secret) is not supported; give one key per variable, or a template in hydrant.dev/env-<VAR>".to_owned());
    }
    if key.chars().any(char::is_control) {
        return Err("the key holds a control character".to_owned());
    }
    let version = match version {
        None => None,
        Some(v) => match v.parse::<u64>() {
            Ok(n) if n > 0 => Some(n),
            _ => return Err(format!("the version {v:?} is not a number from 1; {FORM}")),
        },
    };
    Ok(Reference {
        path: path.to_owned(),
        key: key.to_owned(),
        version,
    })
}

/// A container env value in bank-vaults' convention: `Ok(None)` when it is no `vault:`
/// reference (the variable stays as it is), the reference when it is one, and an error for the
/// forms hydrant does not take (each says what to do instead).
pub fn container_reference(value: &str) -> Result<Option<Reference>, String> {
    let trimmed = value.trim();
    if trimmed.starts_with(">>vault:") {
        return Err("a write-and-read reference (>>vault:) is not supported; read an existing path, or render the write with a hydrant.dev/env-<VAR> template".to_owned());
    }
    if trimmed.contains("${vault:") {
        return Err("an inline reference (${vault:...} inside a longer value) is not supported; give the whole value with a hydrant.dev/env-<VAR> template".to_owned());
    }
    let Some(rest) = trimmed.strip_prefix(VAULT_PREFIX) else {
        return Ok(None);
    };
    if rest == "login" {
        return Err("vault:login (the login token itself) is not passed on; give the app a token sink, or read what it needs".to_owned());
    }
    if rest.starts_with("v1:") {
        return Err("transit-encrypted values (vault:v1:...) are not decrypted; store the value in KV and reference it".to_owned());
    }
    parse_reference(rest).map(Some)
}

/// The `env` entry of annotation `hydrant.dev/env-<name>` whose value is `value`: a Jinja
/// template when it holds `{{` or `{%`, otherwise a reference (the `vault:` prefix optional).
/// `Ok(None)` when `key` is no such annotation.
pub fn annotation_entry(key: &str, value: &str) -> Result<Option<EnvConfig>, String> {
    let Some(name) = key.strip_prefix(ENV_PREFIX) else {
        return Ok(None);
    };
    check_name(name).map_err(|problem| format!("{key}: {problem}"))?;
    if value.contains("{{") || value.contains("{%") {
        return Ok(Some(EnvConfig {
            name: name.to_owned(),
            contents: Some(value.to_owned()),
            ..EnvConfig::default()
        }));
    }
    let text = value.trim();
    let text = text.strip_prefix(VAULT_PREFIX).unwrap_or(text);
    let reference = parse_reference(text).map_err(|problem| format!("{key}: {problem}"))?;
    Ok(Some(reference.entry(name)))
}

/// Checks a variable's name: refused at admission when no shell or runtime could read it back.
pub fn check_name(name: &str) -> Result<(), String> {
    if is_env_name(name) {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not an environment variable name: use letters, digits and '_', not starting with a digit"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(path: &str, key: &str, version: Option<u64>) -> Reference {
        Reference {
            path: path.into(),
            key: key.into(),
            version,
        }
    }

    #[test]
    fn bank_vaults_references_and_their_versions_are_read() {
        let table = [
            (
                "vault:secret/data/app/db#password",
                reference("secret/data/app/db", "password", None),
            ),
            (
                "vault:secret/data/app/db#password#2",
                reference("secret/data/app/db", "password", Some(2)),
            ),
            (
                " vault:kv/app#api-key ",
                reference("kv/app", "api-key", None),
            ),
            (
                "vault:database/creds/app#username",
                reference("database/creds/app", "username", None),
            ),
        ];
        for (value, expected) in table {
            assert_eq!(container_reference(value), Ok(Some(expected)), "{value}");
        }
        for plain in [
            "",
            "postgres",
            "https://vault:8200",
            "VAULT:x#y",
            "my-vault:x",
        ] {
            assert_eq!(container_reference(plain), Ok(None), "{plain}");
        }
    }

    #[test]
    fn forms_hydrant_does_not_take_are_refused_with_what_to_do() {
        let table = [
            ("vault:secret/data/app", "names no key"),
            ("vault:#password", "names no Vault path"),
            ("vault:secret/data/app#", "names no key"),
            ("vault:a#b#c#d", "more than two '#'"),
            ("vault:a#b#0", "not a number from 1"),
            ("vault:a#b#latest", "not a number from 1"),
            ("vault:a?version=2#b", "'?'"),
            ("vault:a\"x#b", "quote"),
            ("vault:secret/data/app#{{.user}}", "template in the key"),
            (
                ">>vault:pki/issue/web#certificate#{\"common_name\":\"x\"}",
                ">>vault:",
            ),
            ("postgres://${vault:secret/data/db#user}@db", "inline"),
            ("vault:login", "vault:login"),
            (
                "vault:v1:8SDd3WHDOjf7mq69CyCqYjBXAiQQAVZRkFM13ok481zoCmHnSeDX9vyf7w==",
                "transit",
            ),
        ];
        for (value, expected) in table {
            let error = container_reference(value).expect_err(value);
            assert!(error.contains(expected), "{value}: {error}");
        }
    }

    #[test]
    fn env_annotations_give_references_or_templates_and_names_are_checked() {
        assert_eq!(
            annotation_entry(
                "hydrant.dev/env-DB_PASSWORD",
                "secret/data/app/db#password#3"
            ),
            Ok(Some(
                reference("secret/data/app/db", "password", Some(3)).entry("DB_PASSWORD")
            ))
        );
        assert_eq!(
            annotation_entry(
                "hydrant.dev/env-DB_PASSWORD",
                "vault:secret/data/app/db#password"
            ),
            Ok(Some(
                reference("secret/data/app/db", "password", None).entry("DB_PASSWORD")
            ))
        );
        let template = "{{ secret('database/creds/app').username }}";
        let entry = annotation_entry("hydrant.dev/env-PGUSER", template)
            .expect("valid")
            .expect("an entry");
        assert_eq!(entry.contents.as_deref(), Some(template));
        assert_eq!(entry.path, None);
        assert_eq!(annotation_entry("hydrant.dev/role", "app"), Ok(None));
        for bad in ["1X", "A-B", "A.B", ""] {
            let error = annotation_entry(&format!("{ENV_PREFIX}{bad}"), "a#b").expect_err(bad);
            assert!(
                error.contains("not an environment variable name"),
                "{error}"
            );
        }
        // What the parsers give is a valid hydrant exec configuration.
        let mut config: crate::AgentConfig = serde_json::from_value(serde_json::json!({
            "vault": {"address": "http://127.0.0.1:8200"},
            "auth": {"method": "kubernetes", "role": "app"},
        }))
        .expect("parses");
        config.env = vec![
            entry,
            container_reference("vault:secret/data/app/db#password#2")
                .expect("valid")
                .expect("a reference")
                .entry("DB_PASSWORD"),
        ];
        assert_eq!(config.validate_exec(), Ok(()));
        let error = annotation_entry("hydrant.dev/env-X", "secret/data/app").expect_err("no key");
        assert!(
            error.starts_with("hydrant.dev/env-X: names no key"),
            "{error}"
        );
    }
}
