//! hydrant's own family, `hydrant.dev/*`: strict, so that a typo is refused rather than ignored.

use std::collections::BTreeMap;

use super::env;
use super::fields::{absolute_path, command, duration, file_name, non_empty, port};
use super::keys::hydrant as h;
use super::snapshot::{SNAPSHOT_OUTPUT, snapshot_request};
use super::template::{check_consul_template, check_template};
use super::{ConsulTemplateSource, Family, InjectionRequest, Output, OutputSource};
use crate::Denial;
use crate::agent_config::SecretFormat;
use crate::values::FileMode;
use crate::values::{parse_bool, parse_id, parse_list, parse_quantity};

/// Names in hydrant's annotations: what Kubernetes allows in an annotation key's name part.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// Reads the annotations of hydrant's family, by their whole keys.
pub(super) fn parse(ours: &BTreeMap<&str, &str>) -> Result<InjectionRequest, Denial> {
    let mut r = InjectionRequest::new(Family::Hydrant);
    #[derive(Default)]
    struct Parts<'a> {
        secret: Option<&'a str>,
        template: Option<&'a str>,
        syntax: Option<&'a str>,
        file: Option<&'a str>,
        perms: Option<&'a str>,
        format: Option<&'a str>,
        command: Option<&'a str>,
    }
    let mut parts: BTreeMap<&str, Parts<'_>> = BTreeMap::new();
    let mut snapshot: BTreeMap<&str, &str> = BTreeMap::new();
    for (&key, &value) in ours {
        if key.starts_with(h::CONFIG_PREFIX) {
            snapshot.insert(key, value);
            continue;
        }
        let quantity = |v: &str| -> Result<Option<String>, Denial> {
            if v.trim().is_empty() {
                Ok(None)
            } else {
                parse_quantity(v).map(Some).map_err(|e| Denial::bad(key, e))
            }
        };
        match key {
            h::INJECT | h::STATUS => {}
            h::MODE => r.mode = Some(value.parse().map_err(|e| Denial::bad(key, e))?),
            h::ROLE => r.role = non_empty(value),
            h::AUTH_METHOD => r.auth_method = Some(value.parse().map_err(|e| Denial::bad(key, e))?),
            h::AUTH_MOUNT => r.auth_mount = non_empty(value.trim().trim_matches('/')),
            h::TOKEN_AUDIENCE => r.token_audience = non_empty(value),
            h::VAULT_NAMESPACE => r.vault_namespace = non_empty(value),
            h::MOUNT_PATH => r.mount_path = absolute_path(key, value)?,
            h::CONTAINERS => r.containers = Some(parse_list(value)),
            h::IMAGE => r.image = non_empty(value),
            h::CPU_REQUEST => r.resources.cpu_request = Some(quantity(value)?),
            h::MEMORY_REQUEST => r.resources.memory_request = Some(quantity(value)?),
            h::CPU_LIMIT => r.resources.cpu_limit = Some(quantity(value)?),
            h::MEMORY_LIMIT => r.resources.memory_limit = Some(quantity(value)?),
            h::REFRESH_INTERVAL => r.refresh_interval = Some(duration(key, value)?),
            h::REVOKE_ON_SHUTDOWN => {
                r.revoke_on_shutdown = Some(parse_bool(value).map_err(|e| Denial::bad(key, e))?)
            }
            h::EXIT_ON_RETRY_FAILURE => {
                r.exit_on_retry_failure = Some(parse_bool(value).map_err(|e| Denial::bad(key, e))?)
            }
            h::LISTEN => r.listen = Some(port(key, value)?),
            h::METRICS_PORT if value.trim().is_empty() => r.metrics_port = Some(None),
            h::METRICS_PORT => r.metrics_port = Some(Some(port(key, value)?)),
            h::RUN_AS_USER => {
                r.run_as_user = Some(parse_id(value).map_err(|e| Denial::bad(key, e))?)
            }
            h::RUN_AS_GROUP => {
                r.run_as_group = Some(parse_id(value).map_err(|e| Denial::bad(key, e))?)
            }
            _ if key.starts_with(h::ENV_PREFIX) => {
                let entry = env::annotation_entry(key, value)
                    .map_err(|problem| Denial::new(crate::Reason::BadAnnotation, problem))?;
                if let Some(entry) = entry {
                    if let Some(template) = &entry.contents {
                        check_template(key, template)?;
                    }
                    r.env.push(entry);
                }
            }
            _ => {
                let Some((prefix, name)) = h::PER_FILE
                    .iter()
                    .find_map(|p| Some((*p, key.strip_prefix(p)?)))
                else {
                    return Err(Denial::bad(
                        key,
                        "is not a hydrant annotation; see the README for the hydrant.dev/* annotations".to_owned(),
                    ));
                };
                if !valid_name(name) {
                    return Err(Denial::bad(
                        key,
                        format!(
                            "{name:?} is not a valid name: letters, digits, '-', '_' and '.', starting with a letter or digit"
                        ),
                    ));
                }
                let part = parts.entry(name).or_default();
                match prefix {
                    h::SECRET_PREFIX => part.secret = Some(value),
                    h::TEMPLATE_PREFIX => part.template = Some(value),
                    h::SYNTAX_PREFIX => part.syntax = Some(value),
                    h::FILE_PREFIX => part.file = Some(value),
                    h::PERMS_PREFIX => part.perms = Some(value),
                    h::COMMAND_PREFIX => part.command = Some(value),
                    _ => part.format = Some(value),
                }
            }
        }
    }
    if !snapshot.is_empty() {
        let request = snapshot_request(&snapshot)?;
        if parts.contains_key(SNAPSHOT_OUTPUT) {
            return Err(Denial::bad(
                &format!("{}{SNAPSHOT_OUTPUT}", h::SECRET_PREFIX),
                format!(
                    "{SNAPSHOT_OUTPUT} is the config snapshot's name; name this file otherwise"
                ),
            ));
        }
        r.outputs.push(Output {
            name: SNAPSHOT_OUTPUT.to_owned(),
            source: OutputSource::Template(format!("{{{{ config_as('{}') }}}}", request.format)),
            file: Some(request.file.clone()),
            perms: None,
            mount_path: None,
            command: None,
        });
        r.snapshot = Some(request);
    }
    for (name, part) in parts {
        let key = |prefix: &str| format!("{prefix}{name}");
        let source = match (part.secret, part.template) {
            (Some(_), Some(_)) => {
                return Err(Denial::bad(
                    &key(h::TEMPLATE_PREFIX),
                    format!(
                        "{name} has both {} and {}; keep one (a template reads its secrets with secret('path'))",
                        key(h::SECRET_PREFIX),
                        key(h::TEMPLATE_PREFIX)
                    ),
                ));
            }
            (Some(path), None) => OutputSource::Secret {
                path: path.trim().to_owned(),
                format: match part.format {
                    None => SecretFormat::Json,
                    Some(f) => {
                        serde_json::from_value(serde_json::Value::String(f.trim().to_owned()))
                            .map_err(|_| {
                                Denial::bad(
                                    &key(h::FORMAT_PREFIX),
                                    format!("{f:?} is not a format; use json, yaml, env or map"),
                                )
                            })?
                    }
                },
            },
            (None, Some(template)) => {
                if part.format.is_some() {
                    return Err(Denial::bad(
                        &key(h::FORMAT_PREFIX),
                        format!(
                            "applies to {}<name>; a template decides its own format",
                            h::SECRET_PREFIX
                        ),
                    ));
                }
                match part.syntax.map(str::trim) {
                    None | Some("jinja") => {
                        check_template(&key(h::TEMPLATE_PREFIX), template)?;
                        OutputSource::Template(template.to_owned())
                    }
                    Some("consul-template") => {
                        check_consul_template(&key(h::TEMPLATE_PREFIX), template, None, None)?;
                        // hydrant's family is strict in both languages.
                        OutputSource::ConsulTemplate(ConsulTemplateSource {
                            text: Some(template.to_owned()),
                            error_on_missing_key: true,
                            ..ConsulTemplateSource::default()
                        })
                    }
                    Some(other) => {
                        return Err(Denial::bad(
                            &key(h::SYNTAX_PREFIX),
                            format!(
                                "{other:?} is not a template language; use jinja or consul-template"
                            ),
                        ));
                    }
                }
            }
            (None, None) => {
                return Err(Denial::bad(
                    &key(h::FILE_PREFIX),
                    format!(
                        "no {} or {} says what {name} holds",
                        key(h::SECRET_PREFIX),
                        key(h::TEMPLATE_PREFIX)
                    ),
                ));
            }
        };
        if part.syntax.is_some() && part.template.is_none() {
            return Err(Denial::bad(
                &key(h::SYNTAX_PREFIX),
                format!(
                    "applies to {}<name>; remove it or add the template",
                    h::TEMPLATE_PREFIX
                ),
            ));
        }
        let perms = part
            .perms
            .map(|p| FileMode::parse(p).map_err(|e| Denial::bad(&key(h::PERMS_PREFIX), e)))
            .transpose()?;
        let command = part
            .command
            .map(|c| command(&key(h::COMMAND_PREFIX), c))
            .transpose()?
            .flatten();
        r.outputs.push(Output {
            name: name.to_owned(),
            source,
            file: part
                .file
                .map(|f| file_name(&key(h::FILE_PREFIX), f))
                .transpose()?,
            perms,
            mount_path: None,
            command,
        });
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::super::tests::parse_hydrant;
    use super::*;
    use crate::agent_config::AuthMethod;
    use crate::settings::Mode;

    #[test]
    fn hydrant_annotations_parse_outputs_and_settings() {
        let r = parse_hydrant(&[
            ("hydrant.dev/inject", "true"),
            ("hydrant.dev/role", "app"),
            ("hydrant.dev/auth-method", "jwt"),
            ("hydrant.dev/auth-mount", "/jwt-k8s/"),
            ("hydrant.dev/secret-config", "secret/data/app/config"),
            ("hydrant.dev/format-config", "yaml"),
            ("hydrant.dev/file-config", "config.yaml"),
            (
                "hydrant.dev/template-db.env",
                "DB={{ secret('secret/data/db').data.url }}\n",
            ),
            ("hydrant.dev/perms-db.env", "0600"),
            ("hydrant.dev/mode", "init-only"),
            ("hydrant.dev/containers", "app"),
            ("hydrant.dev/memory-limit", "32Mi"),
        ])
        .expect("parses");
        assert_eq!(r.auth_method, Some(AuthMethod::Jwt));
        assert_eq!(r.auth_mount.as_deref(), Some("jwt-k8s"));
        assert_eq!(r.mode, Some(Mode::InitOnly));
        assert_eq!(r.outputs.len(), 2);
        assert_eq!(r.outputs[0].name, "config");
        assert_eq!(
            r.outputs[0].source,
            OutputSource::Secret {
                path: "secret/data/app/config".into(),
                format: SecretFormat::Yaml
            }
        );
        assert_eq!(r.outputs[1].perms, Some(FileMode(0o600)));
        assert_eq!(r.resources.memory_limit, Some(Some("32Mi".into())));
    }

    #[test]
    fn env_annotations_become_the_request_s_variables_sorted_by_name() {
        let r = parse_hydrant(&[
            ("hydrant.dev/role", "app"),
            (
                "hydrant.dev/env-DB_URL",
                "postgres://{{ secret('secret/data/db').data.user }}@db/app",
            ),
            ("hydrant.dev/env-API_KEY", "vault:secret/data/api#key#2"),
        ])
        .expect("parses");
        assert!(r.outputs.is_empty());
        let names: Vec<&str> = r.env.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["API_KEY", "DB_URL"]);
        assert_eq!(r.env[0].path.as_deref(), Some("secret/data/api"));
        assert_eq!(r.env[0].key.as_deref(), Some("key"));
        assert_eq!(r.env[0].version, Some(2));
        assert!(r.env[1].contents.is_some());
    }

    #[test]
    fn hydrant_annotations_are_strict() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (
                &[("hydrant.dev/scret-db", "x")],
                "hydrant.dev/scret-db: is not a hydrant annotation",
            ),
            (
                &[
                    ("hydrant.dev/secret-db", "a"),
                    ("hydrant.dev/template-db", "b"),
                ],
                "keep one",
            ),
            (
                &[("hydrant.dev/file-db", "db.env")],
                "no hydrant.dev/secret-db",
            ),
            (
                &[
                    ("hydrant.dev/secret-db", "a"),
                    ("hydrant.dev/format-db", "toml"),
                ],
                "not a format",
            ),
            (
                &[("hydrant.dev/template-db", "{% if %}")],
                "hydrant.dev/template-db: line 1 column",
            ),
            (&[("hydrant.dev/mode", "sidecar")], "not a mode"),
            (&[("hydrant.dev/auth-method", "aws")], "not an auth method"),
            (&[("vault.hashicorp.com/role", "x")], "other family"),
            (
                &[("hydrant.dev/env-DB-PASSWORD", "secret/data/db#password")],
                "hydrant.dev/env-DB-PASSWORD: \"DB-PASSWORD\" is not an environment variable name",
            ),
            (
                &[("hydrant.dev/env-DB_PASSWORD", "secret/data/db")],
                "hydrant.dev/env-DB_PASSWORD: names no key",
            ),
            (
                &[("hydrant.dev/env-DB_URL", "{{ secret('db').data.url ")],
                "hydrant.dev/env-DB_URL: line 1 column",
            ),
        ];
        for (pairs, want) in cases {
            let err = parse_hydrant(pairs).expect_err(want);
            assert!(
                err.message.contains(want),
                "{} does not contain {want}",
                err.message
            );
        }
    }
}
