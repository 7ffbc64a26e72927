//! Reading a pod's annotations, in either family: vault-k8s's `vault.hashicorp.com/*` (accepted
//! unchanged) and hydrant's own `hydrant.dev/*`. Both become one [`Request`]; what hydrant cannot
//! honour is refused by name, and what it accepts but does not need is reported as a warning.

use std::collections::BTreeMap;

use crate::Denial;
use crate::agent_config::{AuthMethod, Duration, FileMode, SecretFormat};
use crate::settings::{DefaultTemplate, Mode, Settings};
use crate::values::{parse_bool, parse_id, parse_list, parse_quantity};

pub mod keys;

use keys::hydrant as h;
use keys::vault_k8s as k;

/// vault-k8s's default mount path of the secrets volume.
pub const DEFAULT_MOUNT_PATH: &str = "/vault/secrets";

/// Which family of annotations a pod uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    /// `vault.hashicorp.com/*`
    VaultK8s,
    /// `hydrant.dev/*`
    Hydrant,
}

impl Family {
    /// The family's prefix.
    pub fn prefix(self) -> &'static str {
        match self {
            Family::VaultK8s => k::PREFIX,
            Family::Hydrant => h::PREFIX,
        }
    }

    /// The annotation that asks for injection.
    pub fn inject_key(self) -> &'static str {
        match self {
            Family::VaultK8s => k::AGENT_INJECT,
            Family::Hydrant => h::INJECT,
        }
    }

    /// The annotation the webhook sets once it has injected.
    pub fn status_key(self) -> &'static str {
        match self {
            Family::VaultK8s => k::AGENT_INJECT_STATUS,
            Family::Hydrant => h::STATUS,
        }
    }
}

/// The value of the status annotation after injection.
pub const INJECTED: &str = "injected";

/// What one file holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OutputSource {
    /// One Vault path written in a format.
    Secret {
        /// The Vault path.
        path: String,
        /// How its data is written.
        format: SecretFormat,
    },
    /// A minijinja template.
    Template(String),
}

/// One file the agent writes for the app.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Output {
    /// The output's name (vault-k8s: lower-cased unless `preserve-secret-case`).
    pub name: String,
    /// What it holds.
    pub source: OutputSource,
    /// The file, relative to its mount path; the name when `None`.
    pub file: Option<String>,
    /// The file's mode.
    pub perms: Option<FileMode>,
    /// A mount path of its own (vault-k8s `secret-volume-path-<name>`).
    pub mount_path: Option<String>,
    /// A command run after the file changes (argv).
    pub command: Option<Vec<String>>,
}

/// A config snapshot asked for with `hydrant.dev/config-*`: composed by the agent from config
/// containers held in ConfigMaps, for the pod's labels and the host's.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConfigRequest {
    /// ConfigMaps in the pod's namespace holding config containers, mounted into the agent.
    pub config_maps: Vec<String>,
    /// The schema: a ConfigMap and its key.
    pub schema: Option<(String, String)>,
    /// json, yaml, properties or env.
    pub format: String,
    /// The file's name under the mount path.
    pub file: String,
    /// The levels, lowest precedence first, when not the default.
    pub levels: Option<Vec<String>>,
}

/// The formats a snapshot file can have through annotations.
pub const CONFIG_FORMATS: [&str; 4] = ["json", "yaml", "properties", "env"];

/// The name of the output that holds the snapshot.
pub const CONFIG_OUTPUT: &str = "platform-config";

/// Overrides of one resource quantity: `None` not given, `Some(None)` left out (empty value).
pub type QuantityOverride = Option<Option<String>>;

/// Resource overrides from annotations, applied to every agent container.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResourceOverrides {
    /// CPU request.
    pub cpu_request: QuantityOverride,
    /// Memory request.
    pub memory_request: QuantityOverride,
    /// Ephemeral-storage request.
    pub ephemeral_request: QuantityOverride,
    /// CPU limit.
    pub cpu_limit: QuantityOverride,
    /// Memory limit.
    pub memory_limit: QuantityOverride,
    /// Ephemeral-storage limit.
    pub ephemeral_limit: QuantityOverride,
}

/// What a pod's annotations ask for, in either family.
#[derive(Clone, Debug, PartialEq)]
pub struct Request {
    /// The family the pod uses.
    pub family: Family,
    /// The mode, when the pod asks for one.
    pub mode: Option<Mode>,
    /// The auth method, when not the settings' default.
    pub auth_method: Option<AuthMethod>,
    /// The auth mount, when not the settings' default.
    pub auth_mount: Option<String>,
    /// The role.
    pub role: Option<String>,
    /// The JWT file in the agent container (kubernetes, jwt).
    pub jwt_path: Option<String>,
    /// AppRole role ID file.
    pub role_id_path: Option<String>,
    /// AppRole secret ID file.
    pub secret_id_path: Option<String>,
    /// Token file (token method).
    pub token_path: Option<String>,
    /// Audience of a service-account token projected for the agent.
    pub token_audience: Option<String>,
    /// The volume holding the service-account token to use.
    pub token_volume: Option<String>,
    /// Vault's address, when not the settings'.
    pub vault_address: Option<String>,
    /// Vault namespace.
    pub vault_namespace: Option<String>,
    /// Per-request timeout of the agent's Vault client.
    pub client_timeout: Option<Duration>,
    /// CA file in the agent container.
    pub ca_cert: Option<String>,
    /// Name to check Vault's certificate against.
    pub tls_server_name: Option<String>,
    /// Do not check Vault's certificate.
    pub tls_skip_verify: bool,
    /// A Secret mounted read-only at `/vault/tls` in the agent containers.
    pub tls_secret: Option<String>,
    /// A Secret mounted read-only at `/vault/custom` in the agent containers.
    pub extra_secret: Option<String>,
    /// A container whose volume mounts the agent containers get too.
    pub copy_volume_mounts: Option<String>,
    /// The files to write, sorted by name.
    pub outputs: Vec<Output>,
    /// Where the secrets volume is mounted.
    pub mount_path: String,
    /// The app containers that get the secrets volume; all when `None`.
    pub containers: Option<Vec<String>>,
    /// The agent image, when the pod names hydrant's image itself.
    pub image: Option<String>,
    /// Requests and limits.
    pub resources: ResourceOverrides,
    /// `runAsUser`.
    pub run_as_user: Option<i64>,
    /// `runAsGroup`.
    pub run_as_group: Option<i64>,
    /// Run as the app's first container's user.
    pub run_as_same_user: bool,
    /// Emit a security context at all.
    pub set_security_context: Option<bool>,
    /// Put the agent's init container before the app's.
    pub init_first: bool,
    /// Set `spec.shareProcessNamespace`.
    pub share_process_namespace: Option<bool>,
    /// `HTTPS_PROXY` for the agent.
    pub proxy_address: Option<String>,
    /// `HYDRANT_LOG` for the agent.
    pub log_level: Option<String>,
    /// `HYDRANT_LOG_FORMAT` for the agent.
    pub log_format: Option<String>,
    /// RFC 6902 patch applied to the sidecar container.
    pub sidecar_patch: Option<json_patch::Patch>,
    /// RFC 6902 patch applied to the init container.
    pub init_patch: Option<json_patch::Patch>,
    /// How often lease-less secrets are read again.
    pub refresh_interval: Option<Duration>,
    /// The sidecar's local port (/quit, /metrics).
    pub listen: Option<u16>,
    /// Revoke the token when the sidecar stops.
    pub revoke_on_shutdown: bool,
    /// Exit when a fetch keeps failing (`template-config-exit-on-retry-failure`, true by
    /// default for vault-k8s pods; `hydrant.dev/exit-on-retry-failure`).
    pub exit_on_retry_failure: Option<bool>,
    /// Wait before revoking.
    pub revoke_delay: Option<Duration>,
    /// When certificates and non-renewable leases are replaced.
    pub renewal_threshold: Option<f64>,
    /// Login backoff bounds.
    pub min_backoff: Option<Duration>,
    /// Login backoff bounds.
    pub max_backoff: Option<Duration>,
    /// A config snapshot (`hydrant.dev/config-*`).
    pub config: Option<ConfigRequest>,
    /// Annotations accepted that change nothing in hydrant, said back to the user.
    pub warnings: Vec<String>,
}

impl Request {
    fn new(family: Family) -> Request {
        Request {
            family,
            mode: None,
            auth_method: None,
            auth_mount: None,
            role: None,
            jwt_path: None,
            role_id_path: None,
            secret_id_path: None,
            token_path: None,
            token_audience: None,
            token_volume: None,
            vault_address: None,
            vault_namespace: None,
            client_timeout: None,
            ca_cert: None,
            tls_server_name: None,
            tls_skip_verify: false,
            tls_secret: None,
            extra_secret: None,
            copy_volume_mounts: None,
            outputs: Vec::new(),
            mount_path: DEFAULT_MOUNT_PATH.to_owned(),
            containers: None,
            image: None,
            resources: ResourceOverrides::default(),
            run_as_user: None,
            run_as_group: None,
            run_as_same_user: false,
            set_security_context: None,
            init_first: false,
            share_process_namespace: None,
            proxy_address: None,
            log_level: None,
            log_format: None,
            sidecar_patch: None,
            init_patch: None,
            refresh_interval: None,
            listen: None,
            revoke_on_shutdown: false,
            exit_on_retry_failure: None,
            revoke_delay: None,
            renewal_threshold: None,
            min_backoff: None,
            max_backoff: None,
            config: None,
            warnings: Vec::new(),
        }
    }
}

/// The family whose inject annotation is present and true, if any. Both present is a denial:
/// one pod, one family.
pub fn wanted(annotations: &BTreeMap<String, String>) -> Result<Option<Family>, Denial> {
    let mut wanted = None;
    for family in [Family::VaultK8s, Family::Hydrant] {
        let key = family.inject_key();
        let Some(value) = annotations.get(key) else {
            continue;
        };
        let yes = parse_bool(value).map_err(|e| Denial::bad(key, e))?;
        if yes {
            if let Some(first) = wanted {
                return Err(Denial::new(
                    crate::Reason::MixedFamilies,
                    format!(
                        "{} and {key} are both set: use one family of annotations per pod",
                        Family::inject_key(first)
                    ),
                ));
            }
            wanted = Some(family);
        }
    }
    Ok(wanted)
}

/// Whether the pod carries the status annotation of either family.
pub fn already_injected(annotations: &BTreeMap<String, String>) -> bool {
    [Family::VaultK8s, Family::Hydrant]
        .iter()
        .any(|f| annotations.get(f.status_key()).map(String::as_str) == Some(INJECTED))
}

/// Reads every annotation of `family`. Annotations of the other family are refused: their
/// meaning would be unclear.
pub fn parse(
    annotations: &BTreeMap<String, String>,
    family: Family,
    settings: &Settings,
) -> Result<Request, Denial> {
    let other = match family {
        Family::VaultK8s => h::PREFIX,
        Family::Hydrant => k::PREFIX,
    };
    if let Some(key) = annotations
        .keys()
        .find(|k| k.starts_with(other) && !is_status(k))
    {
        return Err(Denial::new(
            crate::Reason::MixedFamilies,
            format!(
                "{key} belongs to the other family than {}: use one family of annotations per pod",
                family.inject_key()
            ),
        ));
    }
    let ours: BTreeMap<&str, &str> = annotations
        .iter()
        .filter(|(key, _)| key.starts_with(family.prefix()))
        .map(|(key, value)| (key.as_str(), value.as_str()))
        .collect();
    match family {
        Family::VaultK8s => vault_k8s(&ours, settings),
        Family::Hydrant => hydrant(&ours),
    }
}

fn is_status(key: &str) -> bool {
    key == Family::VaultK8s.status_key() || key == Family::Hydrant.status_key()
}

/// What a per-secret vault-k8s annotation said, grouped by the secret's raw name.
#[derive(Default)]
struct VaultSecret<'a> {
    command: Option<&'a str>,
    path: Option<&'a str>,
    template: Option<&'a str>,
    file: Option<&'a str>,
    perms: Option<&'a str>,
    mount_path: Option<&'a str>,
    preserve_case: Option<bool>,
}

fn vault_k8s(ours: &BTreeMap<&str, &str>, settings: &Settings) -> Result<Request, Denial> {
    let mut r = Request::new(Family::VaultK8s);
    let mut default_template = settings.default_template;
    let mut preserve_case = false;
    let mut enable_quit = false;
    let mut listener_port = None;
    let mut pre_populate = true;
    let mut pre_populate_only = false;
    let mut secrets: BTreeMap<&str, VaultSecret<'_>> = BTreeMap::new();
    for (&key, &value) in ours {
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
            k::AUTH_PATH => {
                let mount = value.trim().trim_matches('/');
                let mount = mount.strip_prefix("auth/").unwrap_or(mount);
                r.auth_mount = non_empty(mount);
            }
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
            k::AGENT_RUN_AS_SAME_USER => r.run_as_same_user = bool_of(value)?,
            k::AGENT_SET_SECURITY_CONTEXT => r.set_security_context = Some(bool_of(value)?),
            k::AGENT_JSON_PATCH => r.sidecar_patch = json_patch_of(key, value)?,
            k::AGENT_INIT_JSON_PATCH => r.init_patch = json_patch_of(key, value)?,
            k::AGENT_CONFIGMAP => {
                return Err(Denial::unsupported(
                    key,
                    "hydrant does not run Vault Agent HCL; describe the files with \
                     vault.hashicorp.com/agent-inject-secret-<name> or hydrant.dev/template-<name> \
                     (Jinja) annotations instead",
                ));
            }
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
            k::AGENT_INJECT_TOKEN => {
                if bool_of(value)? {
                    return Err(Denial::unsupported(
                        key,
                        "hydrant does not write its Vault token into the app's volume; give the \
                         app's own role the access it needs and render what it needs instead",
                    ));
                }
            }
            k::AGENT_ENABLE_QUIT => enable_quit = bool_of(value)?,
            k::AGENT_CACHE_LISTENER_PORT => listener_port = Some(port(key, value)?),
            k::AGENT_REVOKE_ON_SHUTDOWN => r.revoke_on_shutdown = bool_of(value)?,
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
    for (raw, secret) in secrets {
        let preserve = secret.preserve_case.unwrap_or(preserve_case);
        let key = |prefix: &str| format!("{prefix}{raw}");
        let name = if preserve {
            raw.to_owned()
        } else {
            raw.to_lowercase()
        };
        let source = match (secret.template, secret.path) {
            (Some(template), _) => {
                let template_key = key(k::AGENT_INJECT_TEMPLATE_PREFIX);
                check_vault_k8s_template(&template_key, template)?;
                OutputSource::Template(template.to_owned())
            }
            (None, Some(path)) => OutputSource::Secret {
                path: path.trim().to_owned(),
                format: match default_template {
                    DefaultTemplate::Map => SecretFormat::VaultK8sMap,
                    DefaultTemplate::Json => SecretFormat::VaultK8sJson,
                },
            },
            // Companion annotations of a secret that was never declared.
            (None, None) => continue,
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

fn vault_per_secret<'a>(
    r: &mut Request,
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
        k::AGENT_INJECT_TEMPLATE_FILE_PREFIX => {
            return Err(Denial::unsupported(
                key,
                "template files are written for consul-template; put the template, in Jinja, in \
                 hydrant.dev/template-<name> (see the README's migration table)",
            ));
        }
        k::AGENT_INJECT_FILE_PREFIX => secrets.entry(raw).or_default().file = Some(value),
        k::AGENT_INJECT_PERMS_PREFIX => secrets.entry(raw).or_default().perms = Some(value),
        k::SECRET_VOLUME_PATH_PREFIX => secrets.entry(raw).or_default().mount_path = Some(value),
        k::PRESERVE_SECRET_CASE_PREFIX => {
            let preserve = parse_bool(value).map_err(|e| Denial::bad(key, e))?;
            secrets.entry(raw).or_default().preserve_case = Some(preserve);
        }
        k::ERROR_ON_MISSING_KEY_PREFIX => {
            // hydrant's templates are always strict: a missing key is always an error.
            parse_bool(value).map_err(|e| Denial::bad(key, e))?;
        }
        k::AGENT_INJECT_COMMAND_PREFIX => secrets.entry(raw).or_default().command = Some(value),
        k::AGENT_TEMPLATE_LEFT_DELIM_PREFIX | k::AGENT_TEMPLATE_RIGHT_DELIM_PREFIX => {
            return Err(Denial::unsupported(
                key,
                "delimiters belong to consul-template templates, which hydrant does not run; \
                 write the template in Jinja in hydrant.dev/template-<name>",
            ));
        }
        k::AUTH_CONFIG_PREFIX => vault_auth_config(r, key, raw, value)?,
        k::AGENT_TELEMETRY_PREFIX => r.warnings.push(format!(
            "{key}: hydrant serves Prometheus metrics itself; telemetry settings have no effect"
        )),
        _ => {}
    }
    Ok(())
}

fn vault_auth_config(r: &mut Request, key: &str, param: &str, value: &str) -> Result<(), Denial> {
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

/// Names in hydrant's annotations: what Kubernetes allows in an annotation key's name part.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

fn hydrant(ours: &BTreeMap<&str, &str>) -> Result<Request, Denial> {
    let mut r = Request::new(Family::Hydrant);
    #[derive(Default)]
    struct Parts<'a> {
        secret: Option<&'a str>,
        template: Option<&'a str>,
        file: Option<&'a str>,
        perms: Option<&'a str>,
        format: Option<&'a str>,
        command: Option<&'a str>,
    }
    let mut parts: BTreeMap<&str, Parts<'_>> = BTreeMap::new();
    let mut config: BTreeMap<&str, &str> = BTreeMap::new();
    for (&key, &value) in ours {
        if key.starts_with(h::CONFIG_PREFIX) {
            config.insert(key, value);
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
                r.revoke_on_shutdown = parse_bool(value).map_err(|e| Denial::bad(key, e))?
            }
            h::EXIT_ON_RETRY_FAILURE => {
                r.exit_on_retry_failure = Some(parse_bool(value).map_err(|e| Denial::bad(key, e))?)
            }
            h::LISTEN => r.listen = Some(port(key, value)?),
            h::RUN_AS_USER => {
                r.run_as_user = Some(parse_id(value).map_err(|e| Denial::bad(key, e))?)
            }
            h::RUN_AS_GROUP => {
                r.run_as_group = Some(parse_id(value).map_err(|e| Denial::bad(key, e))?)
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
                    h::FILE_PREFIX => part.file = Some(value),
                    h::PERMS_PREFIX => part.perms = Some(value),
                    h::COMMAND_PREFIX => part.command = Some(value),
                    _ => part.format = Some(value),
                }
            }
        }
    }
    if !config.is_empty() {
        let request = config_request(&config)?;
        if parts.contains_key(CONFIG_OUTPUT) {
            return Err(Denial::bad(
                &format!("{}{CONFIG_OUTPUT}", h::SECRET_PREFIX),
                format!("{CONFIG_OUTPUT} is the config snapshot's name; name this file otherwise"),
            ));
        }
        r.outputs.push(Output {
            name: CONFIG_OUTPUT.to_owned(),
            source: OutputSource::Template(format!("{{{{ config_as('{}') }}}}", request.format)),
            file: Some(request.file.clone()),
            perms: None,
            mount_path: None,
            command: None,
        });
        r.config = Some(request);
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
                check_template(&key(h::TEMPLATE_PREFIX), template)?;
                OutputSource::Template(template.to_owned())
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

/// `hydrant.dev/config-containers`, `-schema`, `-format`, `-file` and `-levels`, by key.
fn config_request(given: &BTreeMap<&str, &str>) -> Result<ConfigRequest, Denial> {
    for &key in given.keys() {
        if !h::CONFIG_KEYS.contains(&key) {
            return Err(Denial::bad(
                key,
                "is not a hydrant annotation; the config annotations are config-containers, config-schema, config-format, config-file and config-levels".to_owned(),
            ));
        }
    }
    let given_at = |key: &'static str| given.get(key).map(|value| (*value, key));
    let Some((containers, k)) = given_at(h::CONFIG_CONTAINERS) else {
        let k = given
            .keys()
            .next()
            .copied()
            .unwrap_or("hydrant.dev/config-*");
        return Err(Denial::new(
            crate::Reason::MissingAnnotation,
            format!(
                "{k} needs {}: the ConfigMaps that hold the config containers",
                h::CONFIG_CONTAINERS
            ),
        ));
    };
    let mut config_maps = parse_list(containers);
    // Named twice, mounted once: two mounts at one path would be refused by the API server.
    let mut seen = std::collections::BTreeSet::new();
    config_maps.retain(|m| seen.insert(m.clone()));
    if config_maps.is_empty() {
        return Err(Denial::bad(
            k,
            "names no ConfigMap; list them: platform-global,platform-site".to_owned(),
        ));
    }
    for name in &config_maps {
        config_map_name(k, name)?;
    }
    let schema = match given_at(h::CONFIG_SCHEMA) {
        None => None,
        Some((value, k)) => {
            let (map, item) = value
                .trim()
                .split_once('/')
                .unwrap_or((value.trim(), "schema.json"));
            config_map_name(k, map)?;
            no_control(k, item)?;
            if item.is_empty() || item.contains('/') || item.starts_with('.') {
                return Err(Denial::bad(
                    k,
                    format!(
                        "{item:?} is not a ConfigMap key; write configmap/key, such as app-schema/schema.json"
                    ),
                ));
            }
            Some((map.to_owned(), item.to_owned()))
        }
    };
    let format = match given_at(h::CONFIG_FORMAT) {
        None => "json".to_owned(),
        Some((value, k)) => {
            let f = value.trim();
            if !CONFIG_FORMATS.contains(&f) {
                return Err(Denial::bad(
                    k,
                    format!("{f:?} is not a format; use {}", CONFIG_FORMATS.join(", ")),
                ));
            }
            f.to_owned()
        }
    };
    let file = match given_at(h::CONFIG_FILE) {
        None => format!("{CONFIG_OUTPUT}.{format}"),
        Some((value, k)) => file_name(k, value)?,
    };
    let levels = match given_at(h::CONFIG_LEVELS) {
        None => None,
        Some((value, k)) => {
            let levels = parse_list(value);
            if levels.is_empty() {
                return Err(Denial::bad(
                    k,
                    "names no level; leave it out for the default levels".to_owned(),
                ));
            }
            Some(levels)
        }
    };
    Ok(ConfigRequest {
        config_maps,
        schema,
        format,
        file,
        levels,
    })
}

/// A ConfigMap's name: a DNS subdomain.
fn config_map_name(key: &str, name: &str) -> Result<(), Denial> {
    let ok = !name.is_empty()
        && name.len() <= 253
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name.ends_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '.'));
    if ok {
        Ok(())
    } else {
        Err(Denial::bad(
            key,
            format!("{name:?} is not a ConfigMap name (lower-case letters, digits, '-' and '.')"),
        ))
    }
}

fn duration(key: &str, value: &str) -> Result<Duration, Denial> {
    Duration::parse(value).map_err(|e| Denial::bad(key, e))
}

fn port(key: &str, value: &str) -> Result<u16, Denial> {
    value
        .trim()
        .parse::<u16>()
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| Denial::bad(key, format!("{value:?} is not a port number, such as 8200")))
}

/// A command written the way a shell would split it. hydrant's image has no shell, so shell
/// syntax (pipes, `&&`, redirections, variables) is refused rather than passed as arguments.
/// An empty value means no command.
fn command(key: &str, value: &str) -> Result<Option<Vec<String>>, Denial> {
    if value.trim().is_empty() {
        return Ok(None);
    }
    let argv = shlex::split(value)
        .ok_or_else(|| Denial::bad(key, format!("{value:?} has an unclosed quote")))?;
    let shell = argv.iter().any(|arg| {
        matches!(
            arg.as_str(),
            "|" | "||" | "&&" | "&" | ";" | ">" | ">>" | "<"
        ) || arg.contains('$')
            || arg.contains('`')
    });
    if shell {
        return Err(Denial::unsupported(
            key,
            "it needs a shell (pipes, &&, redirections or variables), and hydrant's image has \
             none; give one program and its arguments, such as \"kill -HUP 1\" with a shared \
             process namespace",
        ));
    }
    Ok(Some(argv))
}

fn non_empty(value: &str) -> Option<String> {
    let v = value.trim();
    (!v.is_empty()).then(|| v.to_owned())
}

/// A mount path: absolute, on one line, without `.`, `..` or empty segments, and not the
/// container's root (`/`, `//`, `/.` and `/./` all are). A trailing `/` is dropped.
fn absolute_path(key: &str, value: &str) -> Result<String, Denial> {
    let trimmed = value.trim();
    no_control(key, trimmed)?;
    let path = trimmed.trim_end_matches('/');
    if trimmed.starts_with('/') && path.split('/').skip(1).all(|s| s.is_empty() || s == ".") {
        return Err(Denial::bad(
            key,
            format!(
                "{value:?} is the container's root directory; mount the files in a directory of their own, such as /vault/secrets"
            ),
        ));
    }
    if !path.starts_with('/')
        || path
            .split('/')
            .skip(1)
            .any(|s| s.is_empty() || s == "." || s == "..")
    {
        return Err(Denial::bad(
            key,
            format!(
                "{value:?} is not an absolute path without '..', '.' or '//', such as /vault/secrets"
            ),
        ));
    }
    Ok(path.to_owned())
}

/// A file's name under its mount path (`db.env`, `conf/db.env`): on one line, without `.`,
/// `..` or empty segments. A leading `/` is allowed, as vault-k8s joins even an absolute name
/// under the mount path; the value is returned trimmed, otherwise as given.
pub(crate) fn file_name(key: &str, value: &str) -> Result<String, Denial> {
    let file = value.trim();
    no_control(key, file)?;
    let relative = file.trim_start_matches('/');
    if relative.is_empty()
        || relative
            .split('/')
            .any(|s| s.is_empty() || s == "." || s == "..")
    {
        return Err(Denial::bad(
            key,
            format!(
                "{value:?} is not a file name; use a name such as db.env or conf/db.env, without '..', '.', '//' or a trailing '/'"
            ),
        ));
    }
    Ok(file.to_owned())
}

/// A file the agent reads in its own container (a CA bundle, a token, an AppRole ID): on one
/// line, and a file rather than the root directory. Empty means none.
fn file_path(key: &str, value: &str) -> Result<Option<String>, Denial> {
    no_control(key, value.trim())?;
    let Some(path) = non_empty(value) else {
        return Ok(None);
    };
    if path
        .split('/')
        .all(|s| s.is_empty() || s == "." || s == "..")
    {
        return Err(Denial::bad(
            key,
            format!(
                "{value:?} names a directory, not a file; give the file's path, such as /vault/tls/ca.crt"
            ),
        ));
    }
    Ok(Some(path))
}

/// Paths and file names hold no control characters: a NUL or a newline would cut or split
/// the name where the agent, the kubelet or a log reads it.
fn no_control(key: &str, value: &str) -> Result<(), Denial> {
    if value.chars().any(char::is_control) {
        return Err(Denial::bad(
            key,
            format!(
                "{value:?} holds a control character (such as a NUL, a tab or a newline); write the path on one line with printable characters"
            ),
        ));
    }
    Ok(())
}

fn log_level(key: &str, value: &str) -> Result<String, Denial> {
    match value.trim().to_ascii_lowercase().as_str() {
        "trace" => Ok("trace".to_owned()),
        "debug" => Ok("debug".to_owned()),
        "info" | "" => Ok("info".to_owned()),
        "warn" | "warning" => Ok("warn".to_owned()),
        "err" | "error" => Ok("error".to_owned()),
        other => Err(Denial::bad(
            key,
            format!("{other:?} is not a log level; use trace, debug, info, warn or error"),
        )),
    }
}

fn log_format(key: &str, value: &str) -> Result<String, Denial> {
    match value.trim().to_ascii_lowercase().as_str() {
        "standard" | "plain" | "" => Ok("plain".to_owned()),
        "json" => Ok("json".to_owned()),
        other => Err(Denial::bad(
            key,
            format!("{other:?} is not a log format; use standard or json"),
        )),
    }
}

fn json_patch_of(key: &str, value: &str) -> Result<Option<json_patch::Patch>, Denial> {
    let text = value.trim();
    if text.is_empty() || text == "null" || text == "[]" {
        return Ok(None);
    }
    let patch: json_patch::Patch = serde_json::from_str(text).map_err(|e| {
        Denial::bad(
            key,
            format!("is not an RFC 6902 JSON patch ({e}); write it like [{{\"op\": \"replace\", \"path\": \"/resources\", \"value\": {{}}}}]"),
        )
    })?;
    if patch.0.len() > MAX_PATCH_OPERATIONS {
        return Err(Denial::bad(
            key,
            format!(
                "has {} operations, over the {MAX_PATCH_OPERATIONS} hydrant applies from one annotation; patch only what you need, such as resources or securityContext",
                patch.0.len()
            ),
        ));
    }
    Ok(Some(patch))
}

/// The most operations one `agent-json-patch` or `agent-init-json-patch` may hold. Tweaking
/// the agent's container takes a handful; more only serves to blow it up.
pub const MAX_PATCH_OPERATIONS: usize = 64;

/// Whether a vault-k8s template is written for consul-template (Go templates): those are
/// refused, while a template in Jinja is accepted as it is.
pub fn looks_like_consul_template(text: &str) -> bool {
    // Go template keywords, followed by anything but a name character or a call's "(".
    const GO_KEYWORDS: [&str; 8] = [
        "with", "range", "end", "if", "else", "define", "template", "block",
    ];
    // consul-template calls take space-separated string arguments; Go variables start with $.
    const GO_STARTS: [&str; 3] = ["secret \"", "pkiCert \"", "$"];
    if text.contains(".Data") || text.contains("{{-") || text.contains("-}}") {
        return true;
    }
    text.match_indices("{{").any(|(i, _)| {
        let after = text[i + 2..].trim_start();
        GO_STARTS.iter().any(|start| after.starts_with(start))
            || GO_KEYWORDS.iter().any(|keyword| {
                after.starts_with(keyword)
                    && after[keyword.len()..]
                        .chars()
                        .next()
                        .is_none_or(|c| !c.is_ascii_alphanumeric() && c != '_' && c != '(')
            })
    })
}

fn check_vault_k8s_template(key: &str, text: &str) -> Result<(), Denial> {
    if looks_like_consul_template(text) {
        return Err(Denial::unsupported(
            key,
            "it is written for consul-template (Go templates), which hydrant does not run; write \
             it in Jinja in hydrant.dev/template-<name>, where {{ with secret \"p\" }}{{ .Data.data.k }}{{ end }} \
             becomes {{ secret('p').data.k }} (see the README's migration table)",
        ));
    }
    check_template(key, text)
}

/// Compiles a template so that a syntax error denies the pod instead of failing its start.
pub fn check_template(key: &str, text: &str) -> Result<(), Denial> {
    let mut env = minijinja::Environment::new();
    env.set_debug(true);
    match env.template_from_str(text) {
        Ok(_) => Ok(()),
        Err(e) => {
            let line = e.line().unwrap_or(1);
            let column = e
                .range()
                .filter(|r| r.start <= text.len())
                .map(|r| {
                    let start = text[..r.start].rfind('\n').map_or(0, |i| i + 1);
                    text[start..r.start].chars().count() + 1
                })
                .unwrap_or(1);
            Err(Denial::new(
                crate::Reason::InvalidTemplate,
                format!(
                    "{key}: line {line} column {column}: syntax error: {}",
                    e.detail().unwrap_or("invalid syntax")
                ),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Reason;

    fn annotations(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn settings() -> Settings {
        Settings::new(
            "https://vault.vault:8200",
            "ghcr.io/hydrant-dev/hydrant:0.1.0",
        )
    }

    fn parse_vault(pairs: &[(&str, &str)]) -> Result<Request, Denial> {
        parse(&annotations(pairs), Family::VaultK8s, &settings())
    }

    fn parse_hydrant(pairs: &[(&str, &str)]) -> Result<Request, Denial> {
        parse(&annotations(pairs), Family::Hydrant, &settings())
    }

    #[test]
    fn mount_paths_are_absolute_printable_and_never_the_root() {
        let cases: [(&str, Result<&str, &str>); 19] = [
            ("/vault/secrets", Ok("/vault/secrets")),
            ("/etc/db/", Ok("/etc/db")),
            (" /etc/db \n", Ok("/etc/db")),
            ("/", Err("is the container's root directory")),
            ("//", Err("is the container's root directory")),
            ("///", Err("is the container's root directory")),
            ("/.", Err("is the container's root directory")),
            ("/./", Err("is the container's root directory")),
            ("/./.", Err("is the container's root directory")),
            ("/..", Err("without '..'")),
            ("/a/../b", Err("without '..'")),
            ("/a/./b", Err("without '..'")),
            ("/a//b", Err("without '..'")),
            ("relative/path", Err("is not an absolute path")),
            ("", Err("is not an absolute path")),
            ("/vault\nsecrets", Err("holds a control character")),
            ("/vault/\0", Err("holds a control character")),
            ("/a\tb", Err("holds a control character")),
            ("/a\u{7f}b", Err("holds a control character")),
        ];
        for (value, expected) in cases {
            let got = absolute_path("k", value);
            match expected {
                Ok(path) => assert_eq!(got, Ok(path.to_owned()), "{value:?}"),
                Err(text) => {
                    let message = got.expect_err(value).message;
                    assert!(message.starts_with("k: "), "{message}");
                    assert!(message.contains(text), "{value:?}: {message}");
                }
            }
        }
    }

    #[test]
    fn file_names_are_printable_relative_names() {
        let cases: [(&str, Result<&str, &str>); 15] = [
            ("db.env", Ok("db.env")),
            ("conf/db.env", Ok("conf/db.env")),
            ("/db.env", Ok("/db.env")),
            (" db.env ", Ok("db.env")),
            ("", Err("is not a file name")),
            ("/", Err("is not a file name")),
            ("conf/", Err("is not a file name")),
            ("conf//db.env", Err("is not a file name")),
            ("./db.env", Err("is not a file name")),
            ("conf/..", Err("is not a file name")),
            ("../../etc/passwd", Err("without '..'")),
            ("db\0.env", Err("holds a control character")),
            ("db\n.env", Err("holds a control character")),
            ("db\r.env", Err("holds a control character")),
            ("db\u{1b}[2J", Err("holds a control character")),
        ];
        for (value, expected) in cases {
            let got = file_name("k", value);
            match expected {
                Ok(name) => assert_eq!(got, Ok(name.to_owned()), "{value:?}"),
                Err(text) => {
                    let message = got.expect_err(value).message;
                    assert!(message.contains(text), "{value:?}: {message}");
                }
            }
        }
    }

    #[test]
    fn agent_file_paths_are_printable_files() {
        let cases: [(&str, Result<Option<&str>, &str>); 9] = [
            ("/vault/tls/ca.crt", Ok(Some("/vault/tls/ca.crt"))),
            ("token", Ok(Some("token"))),
            ("", Ok(None)),
            ("  ", Ok(None)),
            ("/", Err("names a directory, not a file")),
            ("/.", Err("names a directory, not a file")),
            ("//..", Err("names a directory, not a file")),
            ("/ca\n.crt", Err("holds a control character")),
            ("/ca.crt\0", Err("holds a control character")),
        ];
        for (value, expected) in cases {
            let got = file_path("k", value);
            match expected {
                Ok(path) => assert_eq!(got, Ok(path.map(str::to_owned)), "{value:?}"),
                Err(text) => {
                    let message = got.expect_err(value).message;
                    assert!(message.contains(text), "{value:?}: {message}");
                }
            }
        }
    }

    #[test]
    fn every_path_annotation_refuses_control_characters_and_the_root_by_name() {
        let vault = [
            ("vault.hashicorp.com/secret-volume-path", "/."),
            ("vault.hashicorp.com/secret-volume-path", "/vault/\nsecrets"),
            ("vault.hashicorp.com/secret-volume-path-db", "//"),
            ("vault.hashicorp.com/agent-inject-file-db", "db\0.env"),
            (
                "vault.hashicorp.com/agent-inject-secret-d\nb",
                "secret/data/db",
            ),
            ("vault.hashicorp.com/ca-cert", "/vault/tls/ca\n.crt"),
            ("vault.hashicorp.com/auth-config-token-path", "/"),
            (
                "vault.hashicorp.com/auth-config-role-id-file-path",
                "/role\0id",
            ),
            ("vault.hashicorp.com/auth-config-secret-id-file-path", "/."),
        ];
        for (key, value) in vault {
            let mut pairs = vec![("vault.hashicorp.com/agent-inject", "true"), (key, value)];
            if !key.starts_with("vault.hashicorp.com/agent-inject-secret-") {
                pairs.push((
                    "vault.hashicorp.com/agent-inject-secret-db",
                    "secret/data/db",
                ));
            }
            let message = parse_vault(&pairs).expect_err(key).message;
            assert!(message.starts_with(&format!("{key}: ")), "{message}");
        }
        let hydrant = [
            ("hydrant.dev/mount-path", "/./"),
            ("hydrant.dev/mount-path", "/etc\0"),
            ("hydrant.dev/file-db", "db\n.env"),
            ("hydrant.dev/config-file", "app\0.json"),
            ("hydrant.dev/config-schema", "app-schema/sch\nema.json"),
        ];
        for (key, value) in hydrant {
            let pairs = [
                ("hydrant.dev/inject", "true"),
                ("hydrant.dev/secret-db", "secret/data/db"),
                ("hydrant.dev/config-containers", "platform"),
                (key, value),
            ];
            let message = parse_hydrant(&pairs).expect_err(key).message;
            assert!(message.starts_with(&format!("{key}: ")), "{message}");
        }
    }

    #[test]
    fn inject_annotations_choose_the_family() {
        let a = annotations(&[("vault.hashicorp.com/agent-inject", "true")]);
        assert_eq!(wanted(&a), Ok(Some(Family::VaultK8s)));
        let a = annotations(&[("hydrant.dev/inject", "1")]);
        assert_eq!(wanted(&a), Ok(Some(Family::Hydrant)));
        let a = annotations(&[("vault.hashicorp.com/agent-inject", "false")]);
        assert_eq!(wanted(&a), Ok(None));
        let a = annotations(&[("vault.hashicorp.com/agent-inject", "tRuE")]);
        assert_eq!(
            wanted(&a).expect_err("bad bool").reason,
            Reason::BadAnnotation
        );
        let a = annotations(&[
            ("vault.hashicorp.com/agent-inject", "true"),
            ("hydrant.dev/inject", "true"),
        ]);
        assert_eq!(wanted(&a).expect_err("both").reason, Reason::MixedFamilies);
    }

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
    fn template_file_prefix_wins_over_template_prefix() {
        let err = parse_vault(&[(
            "vault.hashicorp.com/agent-inject-template-file-db",
            "/vault/templates/db.ctmpl",
        )])
        .expect_err("template files are refused");
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
    fn consul_templates_are_refused_and_jinja_accepted() {
        let ct = "{{ with secret \"secret/data/db\" }}{{ .Data.data.password }}{{ end }}";
        let err = parse_vault(&[("vault.hashicorp.com/agent-inject-template-db", ct)])
            .expect_err("consul-template");
        assert_eq!(err.reason, Reason::UnsupportedAnnotation);
        assert!(
            err.message.contains("hydrant.dev/template-<name>"),
            "{}",
            err.message
        );
        let jinja = "{{ secret('secret/data/db').data.password }}";
        let r =
            parse_vault(&[("vault.hashicorp.com/agent-inject-template-db", jinja)]).expect("jinja");
        assert_eq!(r.outputs[0].source, OutputSource::Template(jinja.into()));
    }

    #[test]
    fn consul_template_detection() {
        let go = [
            "{{ with secret \"a\" }}x{{ end }}",
            "{{- with secret \"a\" -}}",
            "{{ range $k, $v := .Data }}{{ end }}",
            "{{ if .Data.x }}y{{ end }}",
            "{{ secret \"pki/issue/x\" \"common_name=a\" }}",
            "{{ $x := 1 }}",
        ];
        for t in go {
            assert!(looks_like_consul_template(t), "{t}");
        }
        let jinja = [
            "{{ secret('a').data.b }}",
            "{% if x %}{{ y }}{% endif %}",
            "{{ endpoint }}",
            "{{ ifconfig }}",
            "plain text",
            "{{ range(3) | list }}",
        ];
        for t in jinja {
            assert!(!looks_like_consul_template(t), "{t}");
        }
    }

    #[test]
    fn unsupported_annotations_are_denied_naming_the_alternative() {
        let cases = [
            (
                "vault.hashicorp.com/agent-configmap",
                "my-config",
                "Vault Agent HCL",
            ),
            ("vault.hashicorp.com/auth-type", "aws", "kubernetes, jwt"),
            (
                "vault.hashicorp.com/client-cert",
                "/c.pem",
                "client certificates",
            ),
            ("vault.hashicorp.com/agent-inject-token", "true", "token"),
            (
                "vault.hashicorp.com/agent-template-left-delim-db",
                "[[",
                "Jinja",
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

    /// vault-k8s's `template-config-exit-on-retry-failure` defaults to true; hydrant's own
    /// family retries forever unless asked.
    #[test]
    fn exit_on_retry_failure_defaults_as_each_family_does() {
        let secret = (
            "vault.hashicorp.com/agent-inject-secret-db",
            "secret/data/db",
        );
        let r = parse_vault(&[secret]).expect("parses");
        assert_eq!(r.exit_on_retry_failure, Some(true));
        let r = parse_vault(&[
            secret,
            (
                "vault.hashicorp.com/template-config-exit-on-retry-failure",
                "false",
            ),
        ])
        .expect("parses");
        assert_eq!(r.exit_on_retry_failure, Some(false));
        let r = parse_hydrant(&[("hydrant.dev/secret-db", "secret/data/db")]).expect("parses");
        assert_eq!(r.exit_on_retry_failure, None);
        let r = parse_hydrant(&[
            ("hydrant.dev/secret-db", "secret/data/db"),
            ("hydrant.dev/exit-on-retry-failure", "true"),
        ])
        .expect("parses");
        assert_eq!(r.exit_on_retry_failure, Some(true));
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
            Some(vec!["kill".into(), "-HUP".into(), "1".into()])
        );
        assert_eq!(r.listen, Some(8200));
        assert!(r.revoke_on_shutdown);
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
    fn commands_that_need_a_shell_are_refused() {
        for command in [
            "kill -HUP $(pidof app)",
            "touch /a && echo",
            "echo x > /f",
            "a | b",
            "cat '",
        ] {
            let err = parse_vault(&[
                (
                    "vault.hashicorp.com/agent-inject-secret-db",
                    "secret/data/db",
                ),
                ("vault.hashicorp.com/agent-inject-command-db", command),
            ])
            .expect_err(command);
            assert!(
                err.message
                    .starts_with("vault.hashicorp.com/agent-inject-command-db: "),
                "{}",
                err.message
            );
        }
        let r = parse_hydrant(&[
            ("hydrant.dev/secret-db", "secret/data/db"),
            ("hydrant.dev/command-db", "/usr/bin/pkill -HUP -f 'my app'"),
        ])
        .expect("parses");
        assert_eq!(
            r.outputs[0].command.as_deref(),
            Some(
                &[
                    "/usr/bin/pkill".to_string(),
                    "-HUP".into(),
                    "-f".into(),
                    "my app".into()
                ][..]
            )
        );
    }

    #[test]
    fn empty_resource_values_leave_the_key_out() {
        let r = parse_vault(&[("vault.hashicorp.com/agent-limits-cpu", "")]).expect("parses");
        assert_eq!(r.resources.cpu_limit, Some(None));
    }

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

    #[test]
    fn config_annotations_ask_for_a_snapshot_file() {
        let r = parse_hydrant(&[
            ("hydrant.dev/inject", "true"),
            ("hydrant.dev/role", "app"),
            (
                "hydrant.dev/config-containers",
                " platform-global , platform-site ",
            ),
            ("hydrant.dev/config-schema", "app-schema"),
            ("hydrant.dev/config-format", "env"),
            ("hydrant.dev/config-levels", "global,site"),
        ])
        .expect("allowed");
        let config = r.config.expect("a snapshot");
        assert_eq!(config.config_maps, ["platform-global", "platform-site"]);
        assert_eq!(
            config.schema,
            Some(("app-schema".to_owned(), "schema.json".to_owned()))
        );
        assert_eq!(config.file, "platform-config.env");
        assert_eq!(
            config.levels,
            Some(vec!["global".to_owned(), "site".to_owned()])
        );
        assert_eq!(r.outputs.len(), 1);
        assert_eq!(r.outputs[0].name, CONFIG_OUTPUT);
        assert_eq!(
            r.outputs[0].source,
            OutputSource::Template("{{ config_as('env') }}".to_owned())
        );
    }

    #[test]
    fn config_annotations_are_refused_with_the_fix() {
        let refused = |pairs: &[(&str, &str)]| -> String {
            let mut all = vec![("hydrant.dev/inject", "true"), ("hydrant.dev/role", "app")];
            all.extend_from_slice(pairs);
            parse_hydrant(&all).expect_err("refused").message
        };
        assert_eq!(
            refused(&[("hydrant.dev/config-format", "yaml")]),
            "hydrant.dev/config-format needs hydrant.dev/config-containers: the ConfigMaps that hold the config containers"
        );
        assert!(
            refused(&[("hydrant.dev/config-containers", "Platform_Global")])
                .contains("\"Platform_Global\" is not a ConfigMap name"),
        );
        assert!(
            refused(&[
                ("hydrant.dev/config-containers", "p"),
                ("hydrant.dev/config-format", "toml")
            ])
            .contains("\"toml\" is not a format; use json, yaml, properties, env"),
        );
        assert!(
            refused(&[
                ("hydrant.dev/config-containers", "p"),
                ("hydrant.dev/config-sheme", "s")
            ])
            .contains("the config annotations are config-containers, config-schema"),
        );
        assert!(
            refused(&[
                ("hydrant.dev/config-containers", "p"),
                ("hydrant.dev/config-schema", "s/../x")
            ])
            .contains("is not a ConfigMap key"),
        );
        assert!(
            refused(&[
                ("hydrant.dev/config-containers", "p"),
                ("hydrant.dev/secret-platform-config", "secret/data/x"),
            ])
            .contains("platform-config is the config snapshot's name"),
        );
    }
}
