//! The translation of a pod's annotations into the agent configuration its containers run
//! with: the files and their destinations, Vault, the login, the sidecar's settings and the
//! config snapshot, checked as `hydrant agent` would check it.

use crate::agent_config::{
    AgentConfig, AuthConfig, AuthMethod, RetryConfig, SecretFileConfig, SnapshotConfig,
    TemplateConfig, TemplateSyntax, TokenSinkConfig, VaultConfig,
};
use crate::annotations::keys::vault_k8s as k;
use crate::annotations::{InjectionRequest, Output, OutputSource, TOKEN_FILE};
use crate::settings::InjectorSettings;
use crate::{Denial, names};

/// The agent configuration `request` gives under `settings`, logging in with `method` and,
/// for kubernetes and jwt, the token at `jwt_path`.
pub(super) fn to_agent_config(
    request: &InjectionRequest,
    settings: &InjectorSettings,
    method: AuthMethod,
    jwt_path: Option<String>,
) -> Result<AgentConfig, Denial> {
    token_path_is_free(request)?;
    let config = unchecked(request, settings, method, jwt_path);
    config.validate().map_err(|issues| {
        Denial::new(
            crate::Reason::InvalidConfig,
            format!("the agent configuration these annotations give is invalid: {issues}"),
        )
    })?;
    Ok(config)
}

/// [`to_agent_config`] before its checks: `hydrant exec`'s configuration starts from it too.
pub(super) fn unchecked(
    request: &InjectionRequest,
    settings: &InjectorSettings,
    method: AuthMethod,
    jwt_path: Option<String>,
) -> AgentConfig {
    let uses_jwt = matches!(method, AuthMethod::Kubernetes | AuthMethod::Jwt);
    let mut templates = Vec::new();
    let mut secrets = Vec::new();
    for output in &request.outputs {
        let destination = destination(request, output);
        match &output.source {
            OutputSource::Template(text) => templates.push(TemplateConfig {
                name: output.name.clone(),
                contents: Some(text.clone()),
                source: None,
                destination: destination.into(),
                perms: output.perms,
                command: output.command.clone(),
                command_timeout: None,
                ..TemplateConfig::default()
            }),
            OutputSource::ConsulTemplate(ct) => templates.push(TemplateConfig {
                name: output.name.clone(),
                contents: ct.text.clone(),
                source: ct.file.clone().map(Into::into),
                destination: destination.into(),
                perms: output.perms,
                command: output.command.clone(),
                command_timeout: None,
                syntax: TemplateSyntax::ConsulTemplate,
                left_delimiter: ct.left_delimiter.clone(),
                right_delimiter: ct.right_delimiter.clone(),
                error_on_missing_key: Some(ct.error_on_missing_key),
                create_dest_dirs: None,
            }),
            OutputSource::Secret { path, format } => secrets.push(SecretFileConfig {
                name: output.name.clone(),
                path: path.clone(),
                format: *format,
                destination: destination.into(),
                perms: output.perms,
                command: output.command.clone(),
                command_timeout: None,
            }),
        }
    }
    let token_sinks = token_sinks(request);
    let address = request
        .vault_address
        .clone()
        .unwrap_or_else(|| settings.vault_address.clone());
    // The cluster-wide CA bundle, unless the pod names its own CA file or checks nothing.
    let ca_cert_pem = settings
        .vault_ca_pem
        .clone()
        .filter(|_| request.ca_cert.is_none() && !request.tls_skip_verify)
        .filter(|_| address.starts_with("https://"));
    AgentConfig {
        vault: VaultConfig {
            address,
            namespace: request
                .vault_namespace
                .clone()
                .or_else(|| settings.vault_namespace.clone()),
            ca_cert: request.ca_cert.clone().map(Into::into),
            ca_cert_pem,
            tls_server_name: request
                .tls_server_name
                .clone()
                .or_else(|| settings.tls_server_name.clone()),
            tls_skip_verify: request.tls_skip_verify,
            max_concurrent_requests: None,
            timeout: request.client_timeout,
        },
        auth: AuthConfig {
            method,
            mount: request
                .auth_mount
                .clone()
                .or_else(|| settings.auth_mount.clone()),
            role: request.role.clone().filter(|_| uses_jwt),
            jwt_path: jwt_path.filter(|_| uses_jwt).map(Into::into),
            role_id_path: request.role_id_path.clone().map(Into::into),
            secret_id_path: request.secret_id_path.clone().map(Into::into),
            token_path: request.token_path.clone().map(Into::into),
            min_backoff: request.min_backoff,
            max_backoff: request.max_backoff,
            remove_after_reading: None,
        },
        templates,
        secrets,
        retry: RetryConfig::default(),
        refresh_interval: request.refresh_interval,
        listen: request.listen,
        metrics_port: None,
        revoke_on_shutdown: request
            .revoke_on_shutdown
            .unwrap_or(settings.revoke_on_shutdown),
        exit_on_retry_failure: request.exit_on_retry_failure,
        revoke_delay: request.revoke_delay,
        state_dir: Some(names::STATE_PATH.into()),
        watch: Vec::new(),
        limits: Default::default(),
        renewal_threshold: request.renewal_threshold,
        token_sinks,
        exit_after_auth: false,
        pid_file: None,
        env: Vec::new(),
        exec: None,
        snapshot: request.snapshot.as_ref().map(|c| SnapshotConfig {
            containers: c
                .config_maps
                .iter()
                .map(|map| format!("{}/{map}", names::CONFIG_PATH).into())
                .collect(),
            labels: settings.host_labels.clone(),
            label_conflict: settings.label_conflict,
            labels_file: Some(format!("{}/{}", names::PODINFO_PATH, names::LABELS_FILE).into()),
            levels: c.levels.clone(),
            schema: c
                .schema
                .as_ref()
                .map(|(_, item)| format!("{}/{item}", names::SCHEMA_PATH).into()),
        }),
    }
}

/// vault-k8s's `agent-inject-token`: the token kept in `token` under the mount path, with the
/// file sink's default mode (0640) as vault-k8s gives it none.
fn token_sinks(request: &InjectionRequest) -> Vec<TokenSinkConfig> {
    if !request.inject_token {
        return Vec::new();
    }
    vec![TokenSinkConfig {
        path: format!("{}/{TOKEN_FILE}", request.mount_path).into(),
        mode: None,
    }]
}

/// With `agent-inject-token`, no secret's file may land on the token's path.
fn token_path_is_free(request: &InjectionRequest) -> Result<(), Denial> {
    if !request.inject_token {
        return Ok(());
    }
    let path = format!("{}/{TOKEN_FILE}", request.mount_path);
    match request
        .outputs
        .iter()
        .find(|o| destination(request, o) == path)
    {
        Some(output) => Err(Denial::new(
            crate::Reason::Conflict,
            format!(
                "{} writes the Vault token to {path}, where the file of secret {:?} goes too; rename that secret or give it another file name",
                k::AGENT_INJECT_TOKEN,
                output.name
            ),
        )),
        None => Ok(()),
    }
}

/// Where an output's file goes: its file name (checked as the annotations were read) under its
/// mount path.
fn destination(request: &InjectionRequest, output: &Output) -> String {
    let mount = output.mount_path.as_deref().unwrap_or(&request.mount_path);
    let file = output.file.as_deref().unwrap_or(&output.name);
    // vault-k8s joins even an absolute file name under the mount path.
    let relative = file.trim_start_matches('/');
    format!("{mount}/{relative}")
}
