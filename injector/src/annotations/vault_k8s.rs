//! vault-k8s's family, `vault.hashicorp.com/*`: read with vault-k8s's meanings, defaults and
//! value rules; what hydrant cannot honour is refused by name, what changes nothing is a warning.

use std::collections::BTreeMap;

use super::fields::{
    absolute_path, command, duration, file_name, file_path, json_patch_of, log_format, log_level,
    non_empty, port,
};
use super::keys::vault_k8s as k;
use super::template::check_consul_template;
use super::{ConsulTemplateSource, Family, InjectionRequest, Output, OutputSource};
use crate::Denial;
use crate::agent_config::{AuthMethod, SecretFormat};
use crate::settings::{DefaultTemplate, InjectorSettings, Mode};
use crate::values::{Duration, FileMode};
use crate::values::{parse_bool, parse_id, parse_list, parse_quantity};

/// What a per-secret vault-k8s annotation said, grouped by the secret's raw name.
#[derive(Default)]
struct VaultSecret<'a> {
    command: Option<&'a str>,
    path: Option<&'a str>,
    template: Option<&'a str>,
    template_file: Option<&'a str>,
    left_delimiter: Option<&'a str>,
    right_delimiter: Option<&'a str>,
    error_on_missing_key: Option<bool>,
    file: Option<&'a str>,
    perms: Option<&'a str>,
    mount_path: Option<&'a str>,
    preserve_case: Option<bool>,
}

/// Reads the annotations of vault-k8s's family, by their whole keys.
pub(super) fn parse(
    ours: &BTreeMap<&str, &str>,
    settings: &InjectorSettings,
) -> Result<InjectionRequest, Denial> {
    let mut r = InjectionRequest::new(Family::VaultK8s);
    let mut default_template = settings.default_template;
    let mut preserve_case = false;
    let mut enable_quit = false;
    let mut listener_port = None;
    let mut pre_populate = true;
    let mut pre_populate_only = false;
    let mut secrets: BTreeMap<&str, VaultSecret<'_>> = BTreeMap::new();
    let config_map = ours.get(k::AGENT_CONFIGMAP).and_then(|v| non_empty(v));
    for (&key, &value) in ours {
        if let Some(why) = config_map.as_ref().and(ignored_with_config_map(key)) {
            r.warnings.push(format!(
                "{key}: has no effect with {}: {why}",
                k::AGENT_CONFIGMAP
            ));
            // A declared secret still gives its secret-volume-path-<name> volume.
            if k::PER_SECRET.iter().any(|p| key.starts_with(p)) {
                vault_per_secret(&mut r, key, value, &mut secrets)?;
            }
            continue;
        }
        let bool_of = |v: &str| parse_bool(v).map_err(|e| Denial::bad(key, e));
        let quantity = |v: &str| -> Result<Option<String>, Denial> {
            if v.trim().is_empty() {
                Ok(None)
            } else {
                parse_quantity(v).map(Some).map_err(|e| Denial::bad(key, e))
            }
        };
        match key {
            k::AGENT_INJECT | k::AGENT_INJECT_STATUS => {}
            k::AGENT_PRE_POPULATE => pre_populate = bool_of(value)?,
            k::AGENT_PRE_POPULATE_ONLY => pre_populate_only = bool_of(value)?,
            k::AGENT_INIT_FIRST => r.init_first = bool_of(value)?,
            k::AGENT_INJECT_CONTAINERS => r.containers = Some(parse_list(value)),
            k::AGENT_IMAGE => {
                r.warnings.push(format!(
                    "{key}: hydrant runs its own agent ({}), not {value:?}",
                    settings.agent_image
                ));
            }
            k::AGENT_REQUEST_NAMESPACE => {}
            k::AGENT_SHARE_PROCESS_NAMESPACE => r.share_process_namespace = Some(bool_of(value)?),
            k::AGENT_EXTRA_SECRET => r.extra_secret = non_empty(value),
            k::AGENT_COPY_VOLUME_MOUNTS => r.copy_volume_mounts = non_empty(value),
            k::AGENT_INJECT_DEFAULT_TEMPLATE => {
                default_template = value.parse().map_err(|e| Denial::bad(key, e))?
            }
            k::PRESERVE_SECRET_CASE => preserve_case = bool_of(value)?,
            k::SECRET_VOLUME_PATH => r.mount_path = absolute_path(key, value)?,
            k::ROLE => r.role = non_empty(value),
            k::AUTH_TYPE => r.auth_method = Some(vault_auth_type(key, value)?),
            k::AUTH_PATH => r.auth_mount = crate::values::auth_mount(value),
            k::NAMESPACE => r.vault_namespace = non_empty(value),
            k::SERVICE => r.vault_address = non_empty(value),
            k::TLS_SKIP_VERIFY => r.tls_skip_verify = bool_of(value)?,
            k::TLS_SERVER_NAME => r.tls_server_name = non_empty(value),
            k::TLS_SECRET => r.tls_secret = non_empty(value),
            k::CA_CERT => r.ca_cert = file_path(key, value)?,
            k::PROXY_ADDRESS => r.proxy_address = non_empty(value),
            k::AGENT_SERVICE_ACCOUNT_TOKEN_VOLUME_NAME => r.token_volume = non_empty(value),
            k::LOG_LEVEL => r.log_level = Some(log_level(key, value)?),
            k::LOG_FORMAT => r.log_format = Some(log_format(key, value)?),
            k::AGENT_REQUESTS_CPU => r.resources.cpu_request = Some(quantity(value)?),
            k::AGENT_REQUESTS_MEM => r.resources.memory_request = Some(quantity(value)?),
            k::AGENT_REQUESTS_EPHEMERAL => r.resources.ephemeral_request = Some(quantity(value)?),
            k::AGENT_LIMITS_CPU => r.resources.cpu_limit = Some(quantity(value)?),
            k::AGENT_LIMITS_MEM => r.resources.memory_limit = Some(quantity(value)?),
            k::AGENT_LIMITS_EPHEMERAL => r.resources.ephemeral_limit = Some(quantity(value)?),
            k::AGENT_RUN_AS_USER => {
                r.run_as_user = Some(parse_id(value).map_err(|e| Denial::bad(key, e))?)
            }
            k::AGENT_RUN_AS_GROUP => {
                r.run_as_group = Some(parse_id(value).map_err(|e| Denial::bad(key, e))?)
            }
            k::AGENT_RUN_AS_SAME_USER => r.run_as_same_user = Some(bool_of(value)?),
            k::AGENT_SET_SECURITY_CONTEXT => r.set_security_context = Some(bool_of(value)?),
            k::AGENT_JSON_PATCH => r.sidecar_patch = json_patch_of(key, value)?,
            k::AGENT_INIT_JSON_PATCH => r.init_patch = json_patch_of(key, value)?,
            k::AGENT_CONFIGMAP => {}
            k::CA_KEY => {
                return Err(Denial::unsupported(
                    key,
                    "a CA directory is not supported; put the CAs in one PEM bundle and name it \
                     with vault.hashicorp.com/ca-cert",
                ));
            }
            k::CLIENT_CERT | k::CLIENT_KEY => {
                return Err(Denial::unsupported(
                    key,
                    "TLS client certificates to Vault are not supported; use the kubernetes, jwt, \
                     approle or token auth method",
                ));
            }
            k::AGENT_INJECT_TOKEN => r.inject_token = bool_of(value)?,
            k::AGENT_ENABLE_QUIT => enable_quit = bool_of(value)?,
            k::AGENT_CACHE_LISTENER_PORT => listener_port = Some(port(key, value)?),
            k::AGENT_REVOKE_ON_SHUTDOWN => r.revoke_on_shutdown = Some(bool_of(value)?),
            k::AGENT_REVOKE_GRACE => {
                let seconds = value.trim().parse::<u64>().map_err(|_| {
                    Denial::bad(key, format!("{value:?} is not a number of seconds"))
                })?;
                r.revoke_delay = Some(Duration(std::time::Duration::from_secs(seconds)));
            }
            k::TEMPLATE_STATIC_SECRET_RENDER_INTERVAL => {
                r.refresh_interval = Some(duration(key, value)?)
            }
            k::TEMPLATE_LEASE_RENEWAL_THRESHOLD => {
                let threshold = value
                    .trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|t| (0.5..1.0).contains(t))
                    .ok_or_else(|| {
                        Denial::bad(
                            key,
                            format!("{value:?} is not a fraction between 0.5 and 1, such as 0.9"),
                        )
                    })?;
                r.renewal_threshold = Some(threshold);
            }
            // vault-k8s validates only a non-empty value: empty is the agent's default.
            k::AUTH_MIN_BACKOFF if value.trim().is_empty() => r.min_backoff = None,
            k::AUTH_MAX_BACKOFF if value.trim().is_empty() => r.max_backoff = None,
            k::AUTH_MIN_BACKOFF => r.min_backoff = Some(duration(key, value)?),
            k::AUTH_MAX_BACKOFF => r.max_backoff = Some(duration(key, value)?),
            k::AGENT_CACHE_ENABLE
            | k::AGENT_CACHE_USE_AUTO_AUTH_TOKEN
            | k::AGENT_CACHE_EXIT_ON_ERR => r.warnings.push(format!(
                "{key}: hydrant's init container always hands its token and leases to the \
                 sidecar; it has no effect"
            )),
            k::TEMPLATE_CONFIG_EXIT_ON_RETRY_FAILURE => {
                r.exit_on_retry_failure = Some(bool_of(value)?)
            }
            k::AGENT_AUTO_AUTH_EXIT_ON_ERR => r.warnings.push(format!(
                "{key}: has no effect; hydrant's init container always exits on failure and its \
                 sidecar retries logins with backoff"
            )),
            k::CLIENT_TIMEOUT => r.client_timeout = Some(duration(key, value)?),
            k::CLIENT_MAX_RETRIES
            | k::GO_MAX_PROCS
            | k::TEMPLATE_MAX_CONNECTIONS_PER_HOST
            | k::AGENT_DISABLE_IDLE_CONNECTIONS
            | k::AGENT_DISABLE_KEEP_ALIVES => r.warnings.push(format!(
                "{key}: a Vault Agent tuning knob with no effect on hydrant's agent"
            )),
            _ => vault_per_secret(&mut r, key, value, &mut secrets)?,
        }
    }
    // vault-k8s's default: Vault Agent exits once a template's retries are spent.
    r.exit_on_retry_failure.get_or_insert(true);
    if enable_quit {
        // vault-k8s's quit endpoint listens on the cache listener's port, 8200 by default.
        r.listen = Some(listener_port.unwrap_or(8200));
    }
    r.mode = match (pre_populate, pre_populate_only) {
        (_, true) => Some(Mode::InitOnly),
        (false, false) => Some(Mode::SidecarOnly),
        (true, false) => None,
    };
    if let Some(map) = config_map {
        for (raw, secret) in secrets {
            let declared = [secret.path, secret.template, secret.template_file]
                .iter()
                .any(Option::is_some);
            if let Some(path) = secret.mount_path.filter(|_| declared) {
                let path = absolute_path(&format!("{}{raw}", k::SECRET_VOLUME_PATH_PREFIX), path)?;
                if !r.config_map_mount_paths.contains(&path) {
                    r.config_map_mount_paths.push(path);
                }
            }
        }
        r.config_map = Some(map);
        return Ok(r);
    }
    for (raw, secret) in secrets {
        let preserve = secret.preserve_case.unwrap_or(preserve_case);
        let key = |prefix: &str| format!("{prefix}{raw}");
        let name = if preserve {
            raw.to_owned()
        } else {
            raw.to_lowercase()
        };
        let consul = |text: Option<&str>, file: Option<&str>| {
            OutputSource::ConsulTemplate(ConsulTemplateSource {
                text: text.map(str::to_owned),
                file: file.map(str::to_owned),
                left_delimiter: secret.left_delimiter.map(str::to_owned),
                right_delimiter: secret.right_delimiter.map(str::to_owned),
                error_on_missing_key: secret.error_on_missing_key.unwrap_or(false),
            })
        };
        let delimited = secret.left_delimiter.is_some() || secret.right_delimiter.is_some();
        // vault-k8s: a template in the annotation wins over a template file.
        let source = match (secret.template, secret.template_file, secret.path) {
            (None, Some(file), _) => {
                let file = absolute_path(&key(k::AGENT_INJECT_TEMPLATE_FILE_PREFIX), file)?;
                consul(None, Some(&file))
            }
            // vault-k8s renders its default template with the secret's delimiters too: with
            // other delimiters its actions are plain text. The same bytes come out here.
            (None, None, Some(path)) if delimited => {
                let text = match default_template {
                    DefaultTemplate::Map => format!(
                        "{{{{ with secret \"{}\" }}}}{{{{ range $k, $v := .Data }}}}{{{{ $k }}}}: {{{{ $v }}}}\n{{{{ end }}}}{{{{ end }}}}",
                        path.trim()
                    ),
                    DefaultTemplate::Json => format!(
                        "{{{{ with secret \"{}\" }}}}{{{{ .Data | toJSON }}}}\n{{{{ end }}}}",
                        path.trim()
                    ),
                };
                consul(Some(&text), None)
            }
            (Some(template), _, _) => {
                let template_key = key(k::AGENT_INJECT_TEMPLATE_PREFIX);
                check_consul_template(
                    &template_key,
                    template,
                    secret.left_delimiter,
                    secret.right_delimiter,
                )?;
                consul(Some(template), None)
            }
            (None, None, Some(path)) => OutputSource::Secret {
                path: path.trim().to_owned(),
                format: match default_template {
                    DefaultTemplate::Map => SecretFormat::VaultK8sMap,
                    DefaultTemplate::Json => SecretFormat::VaultK8sJson,
                },
            },
            // Companion annotations of a secret that was never declared.
            (None, None, None) => continue,
        };
        if r.outputs.iter().any(|o| o.name == name) {
            return Err(Denial::bad(
                &key(k::AGENT_INJECT_SECRET_PREFIX),
                format!(
                    "two secrets are named {name:?} once lower-cased; rename one or set {}",
                    k::PRESERVE_SECRET_CASE
                ),
            ));
        }
        let file = match secret.file {
            Some(f) => Some(file_name(&key(k::AGENT_INJECT_FILE_PREFIX), f)?),
            // The file is named after the secret.
            None => {
                file_name(&key(k::AGENT_INJECT_SECRET_PREFIX), &name)?;
                None
            }
        };
        let perms = secret
            .perms
            .map(|p| {
                FileMode::parse(p).map_err(|e| Denial::bad(&key(k::AGENT_INJECT_PERMS_PREFIX), e))
            })
            .transpose()?;
        let mount_path = secret
            .mount_path
            .map(|p| absolute_path(&key(k::SECRET_VOLUME_PATH_PREFIX), p))
            .transpose()?;
        let command = secret
            .command
            .map(|c| command(&key(k::AGENT_INJECT_COMMAND_PREFIX), c))
            .transpose()?
            .flatten();
        r.outputs.push(Output {
            name,
            source,
            file,
            perms,
            mount_path,
            command,
        });
    }
    r.outputs.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(r)
}

/// Why `key` has no effect on a pod with `agent-configmap`, if it has none. vault-k8s reads these
/// only into the Vault Agent configuration it generates, which the ConfigMap's replaces
/// (`container_env.go`: `newConfig` only without a ConfigMap; `Validate` skips the auth checks),
/// so they are ignored as vault-k8s ignores them. hydrant's agent also takes no timeout or
/// revocation from annotations then: its settings are the ConfigMap's.
fn ignored_with_config_map(key: &str) -> Option<&'static str> {
    const GENERATED_ONLY: &[&str] = &[
        k::ROLE,
        k::AUTH_TYPE,
        k::AUTH_PATH,
        k::NAMESPACE,
        k::AGENT_INJECT_TOKEN,
        k::AGENT_INJECT_DEFAULT_TEMPLATE,
        k::PRESERVE_SECRET_CASE,
        k::AGENT_ENABLE_QUIT,
        k::AGENT_CACHE_LISTENER_PORT,
        k::AGENT_CACHE_ENABLE,
        k::AGENT_CACHE_USE_AUTO_AUTH_TOKEN,
        k::AGENT_CACHE_EXIT_ON_ERR,
        k::AGENT_AUTO_AUTH_EXIT_ON_ERR,
        k::TEMPLATE_STATIC_SECRET_RENDER_INTERVAL,
        k::TEMPLATE_LEASE_RENEWAL_THRESHOLD,
        k::TEMPLATE_CONFIG_EXIT_ON_RETRY_FAILURE,
        k::TEMPLATE_MAX_CONNECTIONS_PER_HOST,
        k::AUTH_MIN_BACKOFF,
        k::AUTH_MAX_BACKOFF,
        k::AGENT_DISABLE_IDLE_CONNECTIONS,
        k::AGENT_DISABLE_KEEP_ALIVES,
    ];
    const AGENT_SETTINGS: &[&str] = &[
        k::CLIENT_TIMEOUT,
        k::AGENT_REVOKE_ON_SHUTDOWN,
        k::AGENT_REVOKE_GRACE,
    ];
    let per_secret = k::PER_SECRET
        .iter()
        .filter(|p| **p != k::SECRET_VOLUME_PATH_PREFIX)
        .any(|p| key.starts_with(p) && key.len() > p.len());
    if GENERATED_ONLY.contains(&key) || per_secret {
        Some("vault-k8s reads it only into the configuration the ConfigMap's replaces")
    } else if AGENT_SETTINGS.contains(&key) {
        Some("hydrant's agent takes its settings from the ConfigMap's configuration")
    } else {
        None
    }
}

fn vault_per_secret<'a>(
    r: &mut InjectionRequest,
    key: &'a str,
    value: &'a str,
    secrets: &mut BTreeMap<&'a str, VaultSecret<'a>>,
) -> Result<(), Denial> {
    let Some((prefix, raw)) = k::PER_SECRET
        .iter()
        .find_map(|p| Some((*p, key.strip_prefix(p)?)))
        .filter(|(_, raw)| !raw.is_empty())
    else {
        r.warnings.push(format!(
            "{key}: not a vault-k8s annotation hydrant knows; it has no effect"
        ));
        return Ok(());
    };
    let blank = value.trim().is_empty();
    match prefix {
        k::AGENT_INJECT_SECRET_PREFIX if !blank => {
            secrets.entry(raw).or_default().path = Some(value)
        }
        k::AGENT_INJECT_TEMPLATE_PREFIX if !blank => {
            secrets.entry(raw).or_default().template = Some(value)
        }
        k::AGENT_INJECT_SECRET_PREFIX | k::AGENT_INJECT_TEMPLATE_PREFIX => {}
        k::AGENT_INJECT_TEMPLATE_FILE_PREFIX if !blank => {
            secrets.entry(raw).or_default().template_file = Some(value)
        }
        k::AGENT_INJECT_TEMPLATE_FILE_PREFIX => {}
        k::AGENT_INJECT_FILE_PREFIX => secrets.entry(raw).or_default().file = Some(value),
        k::AGENT_INJECT_PERMS_PREFIX => secrets.entry(raw).or_default().perms = Some(value),
        k::SECRET_VOLUME_PATH_PREFIX => secrets.entry(raw).or_default().mount_path = Some(value),
        k::PRESERVE_SECRET_CASE_PREFIX => {
            let preserve = parse_bool(value).map_err(|e| Denial::bad(key, e))?;
            secrets.entry(raw).or_default().preserve_case = Some(preserve);
        }
        k::ERROR_ON_MISSING_KEY_PREFIX => {
            let strict = parse_bool(value).map_err(|e| Denial::bad(key, e))?;
            secrets.entry(raw).or_default().error_on_missing_key = Some(strict);
        }
        k::AGENT_INJECT_COMMAND_PREFIX => secrets.entry(raw).or_default().command = Some(value),
        k::AGENT_TEMPLATE_LEFT_DELIM_PREFIX | k::AGENT_TEMPLATE_RIGHT_DELIM_PREFIX
            if value.is_empty() => {}
        k::AGENT_TEMPLATE_LEFT_DELIM_PREFIX => {
            secrets.entry(raw).or_default().left_delimiter = Some(value)
        }
        k::AGENT_TEMPLATE_RIGHT_DELIM_PREFIX => {
            secrets.entry(raw).or_default().right_delimiter = Some(value)
        }
        k::AUTH_CONFIG_PREFIX => vault_auth_config(r, key, raw, value)?,
        k::AGENT_TELEMETRY_PREFIX => r.warnings.push(format!(
            "{key}: hydrant serves Prometheus metrics itself; telemetry settings have no effect (the injector's --agent-metrics-port opens them to scraping)"
        )),
        _ => {}
    }
    Ok(())
}

fn vault_auth_config(
    r: &mut InjectionRequest,
    key: &str,
    param: &str,
    value: &str,
) -> Result<(), Denial> {
    match param.replace('-', "_").as_str() {
        "role" => {
            if r.role.is_none() {
                r.role = non_empty(value);
            }
        }
        "token_path" | "path" => r.jwt_path = file_path(key, value)?,
        "role_id_file_path" => r.role_id_path = file_path(key, value)?,
        "secret_id_file_path" => r.secret_id_path = file_path(key, value)?,
        "remove_secret_id_file_after_reading" | "remove_jwt_after_reading" => r.warnings.push(
            format!("{key}: hydrant never deletes credential files; it has no effect"),
        ),
        _ => {
            return Err(Denial::unsupported(
                key,
                "hydrant's auth methods take role, token_path (or path), role_id_file_path and \
                 secret_id_file_path",
            ));
        }
    }
    Ok(())
}

fn vault_auth_type(key: &str, value: &str) -> Result<AuthMethod, Denial> {
    match value.trim() {
        "kubernetes" => Ok(AuthMethod::Kubernetes),
        "jwt" => Ok(AuthMethod::Jwt),
        "approle" => Ok(AuthMethod::Approle),
        "token" | "token_file" => Ok(AuthMethod::Token),
        other => Err(Denial::unsupported(
            key,
            &format!(
                "auth type {other:?} is not supported; hydrant logs in with kubernetes, jwt, \
                 approle or token"
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::parse_vault;
    use super::*;
    use crate::Reason;

    #[test]
    fn vault_secret_names_are_lower_cased_unless_preserved() {
        let r = parse_vault(&[
            (
                "vault.hashicorp.com/agent-inject-secret-DB-Creds",
                "database/creds/ro",
            ),
            (
                "vault.hashicorp.com/agent-inject-secret-Keep",
                "secret/data/k",
            ),
            ("vault.hashicorp.com/preserve-secret-case-Keep", "true"),
        ])
        .expect("parses");
        let names: Vec<&str> = r.outputs.iter().map(|o| o.name.as_str()).collect();
        assert_eq!(names, ["Keep", "db-creds"]);
        let r = parse_vault(&[
            (
                "vault.hashicorp.com/agent-inject-secret-Upper",
                "secret/data/u",
            ),
            ("vault.hashicorp.com/preserve-secret-case", "true"),
        ])
        .expect("parses");
        assert_eq!(r.outputs[0].name, "Upper");
    }

    #[test]
    fn a_template_wins_over_a_template_file_as_in_vault_k8s() {
        let r = parse_vault(&[
            (
                "vault.hashicorp.com/agent-inject-template-file-db",
                "/vault/custom/db.ctmpl",
            ),
            (
                "vault.hashicorp.com/agent-inject-template-db",
                "{{ .inline }}",
            ),
        ])
        .expect("a template");
        assert_eq!(
            r.outputs[0].source,
            OutputSource::ConsulTemplate(ConsulTemplateSource {
                text: Some("{{ .inline }}".into()),
                ..ConsulTemplateSource::default()
            })
        );
        let r = parse_vault(&[
            (
                "vault.hashicorp.com/agent-inject-template-file-db",
                "/vault/custom/db.ctmpl",
            ),
            ("vault.hashicorp.com/agent-template-left-delim-db", "[["),
        ])
        .expect("a template file");
        assert_eq!(
            r.outputs[0].source,
            OutputSource::ConsulTemplate(ConsulTemplateSource {
                file: Some("/vault/custom/db.ctmpl".into()),
                left_delimiter: Some("[[".into()),
                ..ConsulTemplateSource::default()
            })
        );
        // Delimiters apply to vault-k8s's default template too.
        let r = parse_vault(&[
            (
                "vault.hashicorp.com/agent-inject-secret-db",
                "secret/data/db",
            ),
            ("vault.hashicorp.com/agent-template-left-delim-db", "[["),
        ])
        .expect("a default template");
        assert!(
            matches!(&r.outputs[0].source, OutputSource::ConsulTemplate(ct)
                if ct.text.as_deref().is_some_and(|t| t.starts_with("{{ with secret \"secret/data/db\" }}"))),
            "{:?}",
            r.outputs[0].source
        );
        let err = parse_vault(&[(
            "vault.hashicorp.com/agent-inject-template-file-db",
            "relative/db.ctmpl",
        )])
        .expect_err("relative");
        assert!(
            err.message
                .starts_with("vault.hashicorp.com/agent-inject-template-file-db:"),
            "{}",
            err.message
        );
    }

    #[test]
    fn default_templates_and_companions_apply_to_secrets() {
        let r = parse_vault(&[
            (
                "vault.hashicorp.com/agent-inject-secret-db",
                "secret/data/db",
            ),
            ("vault.hashicorp.com/agent-inject-file-db", "conf/db.env"),
            ("vault.hashicorp.com/agent-inject-perms-db", "0400"),
            ("vault.hashicorp.com/agent-inject-default-template", "JSON"),
            ("vault.hashicorp.com/secret-volume-path-db", "/etc/db/"),
        ])
        .expect("parses");
        assert_eq!(
            r.outputs,
            [Output {
                name: "db".into(),
                source: OutputSource::Secret {
                    path: "secret/data/db".into(),
                    format: SecretFormat::VaultK8sJson
                },
                file: Some("conf/db.env".into()),
                perms: Some(FileMode(0o400)),
                mount_path: Some("/etc/db".into()),
                command: None,
            }]
        );
    }

    #[test]
    fn templates_are_consul_template_s_with_their_delimiters_and_missing_key_rule() {
        let ct = "[[ with secret \"secret/data/db\" ]][[ .Data.data.password ]][[ end ]]";
        let r = parse_vault(&[
            ("vault.hashicorp.com/agent-inject-template-db", ct),
            ("vault.hashicorp.com/agent-template-left-delim-db", "[["),
            ("vault.hashicorp.com/agent-template-right-delim-db", "]]"),
            ("vault.hashicorp.com/error-on-missing-key-db", "true"),
        ])
        .expect("consul-template");
        assert_eq!(
            r.outputs[0].source,
            OutputSource::ConsulTemplate(ConsulTemplateSource {
                text: Some(ct.into()),
                left_delimiter: Some("[[".into()),
                right_delimiter: Some("]]".into()),
                error_on_missing_key: true,
                ..ConsulTemplateSource::default()
            })
        );
        let err = parse_vault(&[(
            "vault.hashicorp.com/agent-inject-template-db",
            "{{ with secret \"a\" }}",
        )])
        .expect_err("unclosed");
        assert_eq!(err.reason, Reason::InvalidTemplate);
        assert!(
            err.message
                .starts_with("vault.hashicorp.com/agent-inject-template-db: line 1 column"),
            "{}",
            err.message
        );
        let jinja = "{{ secret('secret/data/db').data.password }}";
        let err = parse_vault(&[("vault.hashicorp.com/agent-inject-template-db", jinja)])
            .expect_err("jinja");
        assert!(
            err.message.contains("hydrant.dev/template-<name>"),
            "{}",
            err.message
        );
    }

    #[test]
    fn unsupported_annotations_are_denied_naming_the_alternative() {
        let cases = [
            ("vault.hashicorp.com/auth-type", "aws", "kubernetes, jwt"),
            (
                "vault.hashicorp.com/client-cert",
                "/c.pem",
                "client certificates",
            ),
            (
                "vault.hashicorp.com/auth-config-region",
                "eu",
                "role_id_file_path",
            ),
        ];
        for (key, value, hint) in cases {
            let err = parse_vault(&[(key, value)]).expect_err(key);
            assert!(
                err.message.starts_with(&format!("{key}: ")),
                "{}",
                err.message
            );
            assert!(err.message.contains(hint), "{}", err.message);
        }
    }

    #[test]
    fn harmless_vault_agent_knobs_and_unknown_keys_become_warnings() {
        let r = parse_vault(&[
            ("vault.hashicorp.com/go-max-procs", "2"),
            ("vault.hashicorp.com/agent-image", "hashicorp/vault:1.15"),
            ("vault.hashicorp.com/agnet-inject-secret-x", "typo"),
        ])
        .expect("parses");
        assert_eq!(r.warnings.len(), 3, "{:?}", r.warnings);
        assert!(
            r.warnings
                .iter()
                .any(|w| w.contains("agnet-inject-secret-x"))
        );
    }

    #[test]
    fn modes_follow_pre_populate_annotations() {
        let mode = |pairs: &[(&str, &str)]| parse_vault(pairs).expect("parses").mode;
        assert_eq!(mode(&[]), None);
        assert_eq!(
            mode(&[("vault.hashicorp.com/agent-pre-populate-only", "true")]),
            Some(Mode::InitOnly)
        );
        assert_eq!(
            mode(&[("vault.hashicorp.com/agent-pre-populate", "false")]),
            Some(Mode::SidecarOnly)
        );
    }

    #[test]
    fn bad_values_are_denied_with_the_key_and_a_valid_example() {
        let cases = [
            ("vault.hashicorp.com/agent-limits-cpu", "500mi"),
            ("vault.hashicorp.com/agent-requests-mem", "128mb"),
            ("vault.hashicorp.com/agent-run-as-user", "root"),
            ("vault.hashicorp.com/agent-inject-perms-db", "777x"),
            ("vault.hashicorp.com/agent-inject-default-template", "yaml"),
            ("vault.hashicorp.com/secret-volume-path", "relative/path"),
            ("vault.hashicorp.com/log-level", "loud"),
            ("vault.hashicorp.com/agent-json-patch", "{not json"),
        ];
        for (key, value) in cases {
            let mut pairs = vec![(key, value)];
            if key.ends_with("-db") {
                pairs.push((
                    "vault.hashicorp.com/agent-inject-secret-db",
                    "secret/data/db",
                ));
            }
            let err = parse_vault(&pairs).expect_err(key);
            assert_eq!(err.reason, Reason::BadAnnotation, "{key}");
            assert!(
                err.message.starts_with(&format!("{key}: ")),
                "{}",
                err.message
            );
        }
    }

    #[test]
    fn sidecar_annotations_map_to_the_agent_config() {
        let r = parse_vault(&[
            (
                "vault.hashicorp.com/agent-inject-secret-db",
                "secret/data/db",
            ),
            ("vault.hashicorp.com/agent-inject-command-db", "kill -HUP 1"),
            ("vault.hashicorp.com/agent-enable-quit", "true"),
            ("vault.hashicorp.com/agent-revoke-on-shutdown", "true"),
            ("vault.hashicorp.com/agent-revoke-grace", "7"),
            (
                "vault.hashicorp.com/template-static-secret-render-interval",
                "30s",
            ),
            (
                "vault.hashicorp.com/template-lease-renewal-threshold",
                "0.8",
            ),
            ("vault.hashicorp.com/auth-min-backoff", "2s"),
        ])
        .expect("parses");
        assert_eq!(
            r.outputs[0].command,
            Some(
                ["/usr/local/bin/hydrant", "signal", "--pid", "1", "HUP"]
                    .map(String::from)
                    .to_vec()
            )
        );
        assert_eq!(r.listen, Some(8200));
        assert_eq!(r.revoke_on_shutdown, Some(true));
        assert_eq!(r.revoke_delay.map(|d| d.0.as_secs()), Some(7));
        assert_eq!(r.refresh_interval.map(|d| d.0.as_secs()), Some(30));
        assert_eq!(r.renewal_threshold, Some(0.8));
        assert_eq!(r.min_backoff.map(|d| d.0.as_secs()), Some(2));
        let r = parse_vault(&[
            ("vault.hashicorp.com/agent-enable-quit", "true"),
            ("vault.hashicorp.com/agent-cache-listener-port", "9000"),
        ])
        .expect("parses");
        assert_eq!(r.listen, Some(9000));
    }

    #[test]
    fn empty_backoffs_are_the_default_as_in_vault_k8s() {
        let r = parse_vault(&[
            ("vault.hashicorp.com/auth-min-backoff", ""),
            ("vault.hashicorp.com/auth-max-backoff", " "),
        ])
        .expect("parses");
        assert_eq!((r.min_backoff, r.max_backoff), (None, None));
        let err = parse_vault(&[("vault.hashicorp.com/auth-max-backoff", "soon")])
            .expect_err("not a duration");
        assert!(
            err.message
                .starts_with("vault.hashicorp.com/auth-max-backoff: "),
            "{}",
            err.message
        );
    }

    #[test]
    fn empty_resource_values_leave_the_key_out() {
        let r = parse_vault(&[("vault.hashicorp.com/agent-limits-cpu", "")]).expect("parses");
        assert_eq!(r.resources.cpu_limit, Some(None));
    }
}
