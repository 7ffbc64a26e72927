//! A (merged) Vault Agent configuration written as hydrant's [`AgentConfig`], with Vault
//! Agent's defaults made explicit where hydrant's differ: consul-template syntax, parent
//! directories created, credential files removed after reading, a command string run by `sh`.
//! `env_template` and `exec` become hydrant exec's `env` and `exec`.

use std::collections::BTreeSet;

use super::{
    EnvTemplate, Exec, Problem, Problems, Purpose, Template, Translated, VaultAgentConfig,
};
use crate::agent_config::{
    AgentConfig, AuthConfig, AuthMethod, EnvConfig, ExecConfig, RestartOnSecretChanges,
    RetryConfig, TemplateConfig, TemplateSyntax, TokenSinkConfig, VaultConfig,
};
use crate::values::{Duration, FileMode};

/// `c` as hydrant's config, checked for what `purpose` needs: the agent something to render, sink
/// or run; hydrant exec its variables; a tool that only logs in nothing more.
pub(super) fn translate(c: VaultAgentConfig, purpose: Purpose) -> Result<Translated, Problems> {
    let mut problems = Vec::new();
    let vault = c.vault.unwrap_or_default();
    let address = vault.address.clone().filter(|a| !a.trim().is_empty());
    if address.is_none() {
        problem(
&mut problems,
            "vault.address",
            "is required: add vault { address = \"https://vault.vault:8200\" }, or set VAULT_ADDR (hydrant has no default address)".to_owned(),
        );
    }
    let Some(auto_auth) = c.auto_auth else {
        problem(
&mut problems,
            "auto_auth",
            "is required: hydrant logs in with auto_auth; add auto_auth { method \"kubernetes\" { config = { role = \"app\" } } }".to_owned(),
        );
        return Err(Problems(problems));
    };
    let method = auto_auth.method;
    let namespace = match (&vault.namespace, &method.namespace) {
        (Some(a), Some(b)) if a.trim_matches('/') != b.trim_matches('/') => {
            problem(
                &mut problems,
                "auto_auth.method.namespace",
                format!(
                    "{b:?} differs from vault.namespace {a:?}; hydrant logs in and reads in one namespace, keep one of them"
                ),
            );
            None
        }
        (Some(ns), _) | (None, Some(ns)) => Some(ns.clone()),
        (None, None) => None,
    };
    let mount = match (&method.mount_path, method.kind) {
        (_, AuthMethod::Token) | (None, _) => None,
        (Some(path), _) => {
            let path = path.trim_matches('/');
            match path.strip_prefix("auth/") {
                Some(mount) if !mount.is_empty() => Some(mount.to_owned()),
                _ => {
                    problem(
                        &mut problems,
                        "auto_auth.method.mount_path",
                        format!(
                            "{path:?} is not under auth/; write it as Vault Agent does, such as auth/kubernetes"
                        ),
                    );
                    None
                }
            }
        }
    };
    let remove_after_reading = match method.kind {
        // Vault Agent's default for both is to remove the file.
        AuthMethod::Jwt => Some(method.remove_after_reading.unwrap_or(true)),
        AuthMethod::Approle if method.secret_id_path.is_some() => {
            Some(method.remove_after_reading.unwrap_or(true))
        }
        AuthMethod::Approle | AuthMethod::Kubernetes | AuthMethod::Token => None,
    };
    let auth = AuthConfig {
        method: method.kind,
        mount,
        role: method.role,
        jwt_path: method.jwt_path,
        role_id_path: method.role_id_path,
        secret_id_path: method.secret_id_path,
        token_path: method.token_path,
        min_backoff: method.min_backoff.map(Duration),
        max_backoff: method.max_backoff.map(Duration),
        remove_after_reading,
    };
    let token_sinks: Vec<TokenSinkConfig> = auto_auth
        .sinks
        .into_iter()
        .map(|s| TokenSinkConfig {
            path: s.path,
            mode: s.mode.map(FileMode),
        })
        .collect();
    let mut names = BTreeSet::new();
    let mut templates = Vec::new();
    for (i, t) in c.templates.into_iter().enumerate() {
        match template(t, &mut names) {
            Ok(t) => templates.push(t),
            Err(message) => problem(&mut problems, &format!("template[{i}]"), message),
        }
    }
    let supervisor = c.exec.is_some() || !c.env_templates.is_empty();
    match purpose {
        Purpose::Agent if supervisor => {
            supervisor_problems(&c.exec, &c.env_templates, &templates, &mut problems)
        }
        Purpose::Agent => {
            if templates.is_empty() && token_sinks.is_empty() && problems.is_empty() {
                problem(
                    &mut problems,
                    "",
                    "has no template and no sink: add a template stanza, or a sink \"file\" in auto_auth"
                        .to_owned(),
                );
            }
        }
        Purpose::Exec => {
            if c.env_templates.is_empty() {
                problem(
                    &mut problems,
                    "env_template",
                    "is required by hydrant exec: add env_template \"DB_PASSWORD\" { contents = \"{{ with secret \\\"secret/data/app/db\\\" }}{{ .Data.data.password }}{{ end }}\" }".to_owned(),
                );
            }
        }
        Purpose::Connection => {}
    }
    let mut seen = BTreeSet::new();
    for e in &c.env_templates {
        if !seen.insert(e.name.as_str()) {
            problems.push(Problem {
                pos: e.pos,
                key: format!("env_template[{}]", e.name),
                message:
                    "is given more than once (Vault Agent refuses a duplicate name too); keep one"
                        .to_owned(),
            });
        }
    }
    let env = c.env_templates.into_iter().map(env).collect();
    let exec = c.exec.map(exec);
    let settings = c.template_config.unwrap_or_default();
    let attempts = match vault.num_retries {
        None | Some(0) => None,
        Some(-1) => Some(1),
        Some(n) => match u32::try_from(n) {
            Ok(n) => Some(n),
            Err(_) => {
                problem(
                    &mut problems,
                    "vault.retry.num_retries",
                    format!(
                        "{n} is not a count of retries; give a positive number, 0 for the default (12) or -1 for none"
                    ),
                );
                None
            }
        },
    };
    if !problems.is_empty() {
        return Err(Problems(problems));
    }
    let config = AgentConfig {
        vault: VaultConfig {
            address: address.unwrap_or_default(),
            namespace,
            ca_cert: vault.ca_cert,
            ca_cert_pem: vault.ca_cert_pem,
            tls_server_name: vault.tls_server_name.filter(|n| !n.is_empty()),
            tls_skip_verify: vault.tls_skip_verify,
            max_concurrent_requests: settings.max_connections_per_host,
            timeout: None,
        },
        auth,
        templates,
        secrets: Vec::new(),
        retry: RetryConfig {
            deadline: None,
            attempts,
        },
        refresh_interval: settings.static_secret_render_interval.map(Duration),
        listen: None,
        metrics_port: None,
        revoke_on_shutdown: false,
        revoke_delay: None,
        state_dir: None,
        watch: Vec::new(),
        renewal_threshold: settings.lease_renewal_threshold,
        snapshot: None,
        exit_on_retry_failure: settings.exit_on_retry_failure,
        limits: Default::default(),
        token_sinks,
        exit_after_auth: c.exit_after_auth,
        pid_file: c.pid_file,
        env,
        exec,
    };
    let warnings = c
        .warnings
        .into_iter()
        .map(|(origin, w)| match w.pos {
            Some(_) => format!("{origin}:{w}"),
            None => format!("{origin}: {w}"),
        })
        .collect();
    Ok(Translated { config, warnings })
}

fn problem(problems: &mut Vec<Problem>, key: &str, message: String) {
    problems.push(Problem {
        pos: None,
        key: key.to_owned(),
        message,
    });
}

/// What Vault Agent's `validateEnvTemplateConfig` refuses once `exec` or `env_template` makes it
/// a process supervisor.
fn supervisor_problems(
    exec: &Option<Exec>,
    env_templates: &[EnvTemplate],
    templates: &[TemplateConfig],
    problems: &mut Vec<Problem>,
) {
    let mut at = |pos, key: &str, message: &str| {
        problems.push(Problem {
            pos,
            key: key.to_owned(),
            message: message.to_owned(),
        })
    };
    match exec {
        None => at(
            env_templates.first().and_then(|e| e.pos),
            "exec",
            "is required with env_template: add exec { command = [\"/app/server\"] }, the command that gets the variables (or run hydrant exec --config FILE -- COMMAND)",
        ),
        Some(exec) if exec.command.first().is_none_or(|p| p.trim().is_empty()) => at(
            exec.pos,
            "exec.command",
            "is required: the program and its arguments, such as command = [\"/app/server\", \"--port\", \"8080\"]",
        ),
        Some(_) => {}
    }
    if let Some(exec) = exec
        && env_templates.is_empty()
    {
        at(
            exec.pos,
            "env_template",
            "at least one is required with exec (as in Vault Agent): add env_template \"DB_PASSWORD\" { contents = \"...\" }, or remove exec",
        );
    }
    if !env_templates.is_empty() && !templates.is_empty() {
        at(
            None,
            "template",
            "cannot be given with env_template (Vault Agent refuses them together): the process supervisor puts values in its command's environment only; render files with a second agent",
        );
    }
}

/// An `env_template` as one of hydrant exec's variables: always consul-template syntax.
fn env(e: EnvTemplate) -> EnvConfig {
    EnvConfig {
        name: e.name,
        contents: e.contents,
        source: e.source,
        syntax: TemplateSyntax::ConsulTemplate,
        left_delimiter: e.left_delimiter,
        right_delimiter: e.right_delimiter,
        error_on_missing_key: e.error_on_missing_key,
        path: None,
        key: None,
        version: None,
    }
}

/// `exec` as hydrant exec's: the command prepared as consul-template prepares it, the stop
/// signal by its name; the grace is Vault Agent's fixed 30 s (hydrant's default).
fn exec(e: Exec) -> ExecConfig {
    ExecConfig {
        command: command(e.command),
        restart_on_secret_changes: if e.restart_always {
            RestartOnSecretChanges::Always
        } else {
            RestartOnSecretChanges::Never
        },
        restart_stop_signal: e.stop_signal.map(str::to_owned),
        restart_stop_grace: None,
    }
}

fn template(t: Template, names: &mut BTreeSet<String>) -> Result<TemplateConfig, String> {
    let Some(destination) = t.destination else {
        return Err("destination: is required: the file the template renders into".to_owned());
    };
    let name = unique_name(&destination, names);
    Ok(TemplateConfig {
        name,
        contents: t.contents,
        source: t.source,
        destination,
        perms: t.perms.map(FileMode),
        command: command(t.command),
        command_timeout: t.command_timeout.map(Duration),
        syntax: TemplateSyntax::ConsulTemplate,
        left_delimiter: t.left_delimiter,
        right_delimiter: t.right_delimiter,
        error_on_missing_key: t.error_on_missing_key,
        create_dest_dirs: t.create_dest_dirs,
    })
}

/// A template's command as consul-template runs it (`child.CommandPrep`): one string with
/// spaces goes to `sh -c`, anything else is the argv itself; an empty one is no command.
fn command(command: Vec<String>) -> Option<Vec<String>> {
    match command.as_slice() {
        [] => None,
        [first, ..] if first.trim().is_empty() => None,
        [only] if only.split_whitespace().count() > 1 => {
            Some(vec!["sh".to_owned(), "-c".to_owned(), only.clone()])
        }
        _ => Some(command),
    }
}

/// A name for the template from its destination's file name, in the characters hydrant's names
/// allow, made unique with `-2`, `-3` ...
fn unique_name(destination: &std::path::Path, names: &mut BTreeSet<String>) -> String {
    let file = destination
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut base: String = file
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '-'
            }
        })
        .take(200)
        .collect();
    if !base.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        base.insert_str(0, "template");
    }
    let mut name = base.clone();
    let mut n = 1;
    while names.contains(&name) {
        n += 1;
        name = format!("{base}-{n}");
    }
    names.insert(name.clone());
    name
}
