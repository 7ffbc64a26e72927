//! Every annotation key hydrant reads or writes, once, per family: the parser matches on these,
//! the mutation names them in denials, and a test holds them equal to the README's tables.

/// vault-k8s's keys, `vault.hashicorp.com/*`, with vault-k8s's meanings.
pub mod vault_k8s {
    /// A key of this family: the prefix joined to `$name` at compile time.
    macro_rules! key {
        ($name:literal) => {
            concat!("vault.hashicorp.com/", $name)
        };
    }

    /// The family's prefix.
    pub const PREFIX: &str = key!("");

    /// Asks for injection.
    pub const AGENT_INJECT: &str = key!("agent-inject");
    /// Set by the webhook once it has injected.
    pub const AGENT_INJECT_STATUS: &str = key!("agent-inject-status");
    /// Set by vault-k8s's own injector; read by nothing.
    pub const AGENT_REQUEST_NAMESPACE: &str = key!("agent-request-namespace");
    /// Render in an init container (true by default).
    pub const AGENT_PRE_POPULATE: &str = key!("agent-pre-populate");
    /// Only the init container.
    pub const AGENT_PRE_POPULATE_ONLY: &str = key!("agent-pre-populate-only");
    /// The agent's init container before the app's.
    pub const AGENT_INIT_FIRST: &str = key!("agent-init-first");
    /// The app containers that get the files.
    pub const AGENT_INJECT_CONTAINERS: &str = key!("agent-inject-containers");
    /// Vault Agent's image: hydrant runs its own.
    pub const AGENT_IMAGE: &str = key!("agent-image");
    /// `spec.shareProcessNamespace`.
    pub const AGENT_SHARE_PROCESS_NAMESPACE: &str = key!("agent-share-process-namespace");
    /// A Secret mounted at `/vault/custom` in the agent.
    pub const AGENT_EXTRA_SECRET: &str = key!("agent-extra-secret");
    /// A container whose mounts the agent gets too.
    pub const AGENT_COPY_VOLUME_MOUNTS: &str = key!("agent-copy-volume-mounts");
    /// `map` or `json`: how a secret without a template is written.
    pub const AGENT_INJECT_DEFAULT_TEMPLATE: &str = key!("agent-inject-default-template");
    /// Keep the secrets' names as written.
    pub const PRESERVE_SECRET_CASE: &str = key!("preserve-secret-case");
    /// Where the files are mounted.
    pub const SECRET_VOLUME_PATH: &str = key!("secret-volume-path");
    /// The Vault role.
    pub const ROLE: &str = key!("role");
    /// The auth method.
    pub const AUTH_TYPE: &str = key!("auth-type");
    /// The auth mount.
    pub const AUTH_PATH: &str = key!("auth-path");
    /// The Vault namespace.
    pub const NAMESPACE: &str = key!("namespace");
    /// Vault's address.
    pub const SERVICE: &str = key!("service");
    /// Do not check Vault's certificate.
    pub const TLS_SKIP_VERIFY: &str = key!("tls-skip-verify");
    /// The name Vault's certificate is checked against.
    pub const TLS_SERVER_NAME: &str = key!("tls-server-name");
    /// A Secret mounted at `/vault/tls` in the agent.
    pub const TLS_SECRET: &str = key!("tls-secret");
    /// The CA file in the agent.
    pub const CA_CERT: &str = key!("ca-cert");
    /// A CA directory: refused.
    pub const CA_KEY: &str = key!("ca-key");
    /// A client certificate to Vault: refused.
    pub const CLIENT_CERT: &str = key!("client-cert");
    /// A client key to Vault: refused.
    pub const CLIENT_KEY: &str = key!("client-key");
    /// `HTTPS_PROXY` for the agent.
    pub const PROXY_ADDRESS: &str = key!("proxy-address");
    /// The volume of the service-account token to log in with.
    pub const AGENT_SERVICE_ACCOUNT_TOKEN_VOLUME_NAME: &str =
        key!("agent-service-account-token-volume-name");
    /// The agent's log level.
    pub const LOG_LEVEL: &str = key!("log-level");
    /// The agent's log format.
    pub const LOG_FORMAT: &str = key!("log-format");
    /// CPU request of the agent containers.
    pub const AGENT_REQUESTS_CPU: &str = key!("agent-requests-cpu");
    /// Memory request of the agent containers.
    pub const AGENT_REQUESTS_MEM: &str = key!("agent-requests-mem");
    /// Ephemeral-storage request of the agent containers.
    pub const AGENT_REQUESTS_EPHEMERAL: &str = key!("agent-requests-ephemeral");
    /// CPU limit of the agent containers.
    pub const AGENT_LIMITS_CPU: &str = key!("agent-limits-cpu");
    /// Memory limit of the agent containers.
    pub const AGENT_LIMITS_MEM: &str = key!("agent-limits-mem");
    /// Ephemeral-storage limit of the agent containers.
    pub const AGENT_LIMITS_EPHEMERAL: &str = key!("agent-limits-ephemeral");
    /// The agent's user.
    pub const AGENT_RUN_AS_USER: &str = key!("agent-run-as-user");
    /// The agent's group.
    pub const AGENT_RUN_AS_GROUP: &str = key!("agent-run-as-group");
    /// Run as the app's first container's user.
    pub const AGENT_RUN_AS_SAME_USER: &str = key!("agent-run-as-same-user");
    /// Emit a security context at all.
    pub const AGENT_SET_SECURITY_CONTEXT: &str = key!("agent-set-security-context");
    /// An RFC 6902 patch of the sidecar (native mode: the one agent container).
    pub const AGENT_JSON_PATCH: &str = key!("agent-json-patch");
    /// An RFC 6902 patch of the init container.
    pub const AGENT_INIT_JSON_PATCH: &str = key!("agent-init-json-patch");
    /// A ConfigMap of Vault Agent configuration (`config-init.hcl`, `config.hcl`) the agent
    /// runs on.
    pub const AGENT_CONFIGMAP: &str = key!("agent-configmap");
    /// The token in the app's volume, `<secret-volume-path>/token`.
    pub const AGENT_INJECT_TOKEN: &str = key!("agent-inject-token");
    /// The sidecar's local listener with `/quit`.
    pub const AGENT_ENABLE_QUIT: &str = key!("agent-enable-quit");
    /// That listener's port (8200 by default).
    pub const AGENT_CACHE_LISTENER_PORT: &str = key!("agent-cache-listener-port");
    /// Revoke the token when the sidecar stops.
    pub const AGENT_REVOKE_ON_SHUTDOWN: &str = key!("agent-revoke-on-shutdown");
    /// Seconds to wait before revoking.
    pub const AGENT_REVOKE_GRACE: &str = key!("agent-revoke-grace");
    /// How often lease-less secrets are read again.
    pub const TEMPLATE_STATIC_SECRET_RENDER_INTERVAL: &str =
        key!("template-static-secret-render-interval");
    /// When certificates and non-renewable leases are replaced.
    pub const TEMPLATE_LEASE_RENEWAL_THRESHOLD: &str = key!("template-lease-renewal-threshold");
    /// Exit once a fetch keeps failing (true by default).
    pub const TEMPLATE_CONFIG_EXIT_ON_RETRY_FAILURE: &str =
        key!("template-config-exit-on-retry-failure");
    /// The first pause after a failed login.
    pub const AUTH_MIN_BACKOFF: &str = key!("auth-min-backoff");
    /// The longest pause between logins.
    pub const AUTH_MAX_BACKOFF: &str = key!("auth-max-backoff");
    /// The per-request timeout to Vault.
    pub const CLIENT_TIMEOUT: &str = key!("client-timeout");
    /// Vault Agent's cache: no effect.
    pub const AGENT_CACHE_ENABLE: &str = key!("agent-cache-enable");
    /// Vault Agent's cache: no effect.
    pub const AGENT_CACHE_USE_AUTO_AUTH_TOKEN: &str = key!("agent-cache-use-auto-auth-token");
    /// Vault Agent's cache: no effect.
    pub const AGENT_CACHE_EXIT_ON_ERR: &str = key!("agent-cache-exit-on-err");
    /// Vault Agent's auto-auth: no effect.
    pub const AGENT_AUTO_AUTH_EXIT_ON_ERR: &str = key!("agent-auto-auth-exit-on-err");
    /// A Vault Agent tuning knob: no effect.
    pub const CLIENT_MAX_RETRIES: &str = key!("client-max-retries");
    /// A Vault Agent tuning knob: no effect.
    pub const GO_MAX_PROCS: &str = key!("go-max-procs");
    /// A Vault Agent tuning knob: no effect.
    pub const TEMPLATE_MAX_CONNECTIONS_PER_HOST: &str = key!("template-max-connections-per-host");
    /// A Vault Agent tuning knob: no effect.
    pub const AGENT_DISABLE_IDLE_CONNECTIONS: &str = key!("agent-disable-idle-connections");
    /// A Vault Agent tuning knob: no effect.
    pub const AGENT_DISABLE_KEEP_ALIVES: &str = key!("agent-disable-keep-alives");

    /// A secret's Vault path; the secret's name follows.
    pub const AGENT_INJECT_SECRET_PREFIX: &str = key!("agent-inject-secret-");
    /// A template file: refused.
    pub const AGENT_INJECT_TEMPLATE_FILE_PREFIX: &str = key!("agent-inject-template-file-");
    /// A secret's template.
    pub const AGENT_INJECT_TEMPLATE_PREFIX: &str = key!("agent-inject-template-");
    /// A secret's file name.
    pub const AGENT_INJECT_FILE_PREFIX: &str = key!("agent-inject-file-");
    /// A secret's file mode.
    pub const AGENT_INJECT_PERMS_PREFIX: &str = key!("agent-inject-perms-");
    /// A command run after a secret's file changed.
    pub const AGENT_INJECT_COMMAND_PREFIX: &str = key!("agent-inject-command-");
    /// A secret's own mount path.
    pub const SECRET_VOLUME_PATH_PREFIX: &str = key!("secret-volume-path-");
    /// A secret's `preserve-secret-case`.
    pub const PRESERVE_SECRET_CASE_PREFIX: &str = key!("preserve-secret-case-");
    /// consul-template's missing-key switch; hydrant is always strict.
    pub const ERROR_ON_MISSING_KEY_PREFIX: &str = key!("error-on-missing-key-");
    /// consul-template's left delimiter: refused.
    pub const AGENT_TEMPLATE_LEFT_DELIM_PREFIX: &str = key!("agent-template-left-delim-");
    /// consul-template's right delimiter: refused.
    pub const AGENT_TEMPLATE_RIGHT_DELIM_PREFIX: &str = key!("agent-template-right-delim-");
    /// A parameter of the auth method (`role`, `token-path`, ...) follows.
    pub const AUTH_CONFIG_PREFIX: &str = key!("auth-config-");
    /// Vault Agent's telemetry: no effect.
    pub const AGENT_TELEMETRY_PREFIX: &str = key!("agent-telemetry-");

    /// Every key above that is a whole key.
    pub const KEYS: &[&str] = &[
        AGENT_INJECT,
        AGENT_INJECT_STATUS,
        AGENT_REQUEST_NAMESPACE,
        AGENT_PRE_POPULATE,
        AGENT_PRE_POPULATE_ONLY,
        AGENT_INIT_FIRST,
        AGENT_INJECT_CONTAINERS,
        AGENT_IMAGE,
        AGENT_SHARE_PROCESS_NAMESPACE,
        AGENT_EXTRA_SECRET,
        AGENT_COPY_VOLUME_MOUNTS,
        AGENT_INJECT_DEFAULT_TEMPLATE,
        PRESERVE_SECRET_CASE,
        SECRET_VOLUME_PATH,
        ROLE,
        AUTH_TYPE,
        AUTH_PATH,
        NAMESPACE,
        SERVICE,
        TLS_SKIP_VERIFY,
        TLS_SERVER_NAME,
        TLS_SECRET,
        CA_CERT,
        CA_KEY,
        CLIENT_CERT,
        CLIENT_KEY,
        PROXY_ADDRESS,
        AGENT_SERVICE_ACCOUNT_TOKEN_VOLUME_NAME,
        LOG_LEVEL,
        LOG_FORMAT,
        AGENT_REQUESTS_CPU,
        AGENT_REQUESTS_MEM,
        AGENT_REQUESTS_EPHEMERAL,
        AGENT_LIMITS_CPU,
        AGENT_LIMITS_MEM,
        AGENT_LIMITS_EPHEMERAL,
        AGENT_RUN_AS_USER,
        AGENT_RUN_AS_GROUP,
        AGENT_RUN_AS_SAME_USER,
        AGENT_SET_SECURITY_CONTEXT,
        AGENT_JSON_PATCH,
        AGENT_INIT_JSON_PATCH,
        AGENT_CONFIGMAP,
        AGENT_INJECT_TOKEN,
        AGENT_ENABLE_QUIT,
        AGENT_CACHE_LISTENER_PORT,
        AGENT_REVOKE_ON_SHUTDOWN,
        AGENT_REVOKE_GRACE,
        TEMPLATE_STATIC_SECRET_RENDER_INTERVAL,
        TEMPLATE_LEASE_RENEWAL_THRESHOLD,
        TEMPLATE_CONFIG_EXIT_ON_RETRY_FAILURE,
        AUTH_MIN_BACKOFF,
        AUTH_MAX_BACKOFF,
        CLIENT_TIMEOUT,
        AGENT_CACHE_ENABLE,
        AGENT_CACHE_USE_AUTO_AUTH_TOKEN,
        AGENT_CACHE_EXIT_ON_ERR,
        AGENT_AUTO_AUTH_EXIT_ON_ERR,
        CLIENT_MAX_RETRIES,
        GO_MAX_PROCS,
        TEMPLATE_MAX_CONNECTIONS_PER_HOST,
        AGENT_DISABLE_IDLE_CONNECTIONS,
        AGENT_DISABLE_KEEP_ALIVES,
    ];

    /// Every per-secret prefix, in the order vault-k8s matches them (`template-file-` before
    /// `template-`).
    pub const PER_SECRET: &[&str] = &[
        AGENT_INJECT_SECRET_PREFIX,
        AGENT_INJECT_TEMPLATE_FILE_PREFIX,
        AGENT_INJECT_TEMPLATE_PREFIX,
        AGENT_INJECT_FILE_PREFIX,
        AGENT_INJECT_PERMS_PREFIX,
        AGENT_INJECT_COMMAND_PREFIX,
        SECRET_VOLUME_PATH_PREFIX,
        PRESERVE_SECRET_CASE_PREFIX,
        ERROR_ON_MISSING_KEY_PREFIX,
        AGENT_TEMPLATE_LEFT_DELIM_PREFIX,
        AGENT_TEMPLATE_RIGHT_DELIM_PREFIX,
        AUTH_CONFIG_PREFIX,
        AGENT_TELEMETRY_PREFIX,
    ];
}

/// hydrant's own keys, `hydrant.dev/*`.
pub mod hydrant {
    /// A key of this family: the prefix joined to `$name` at compile time.
    macro_rules! key {
        ($name:literal) => {
            concat!("hydrant.dev/", $name)
        };
    }

    /// The family's prefix.
    pub const PREFIX: &str = key!("");

    /// Asks for injection.
    pub const INJECT: &str = key!("inject");
    /// Set by the webhook once it has injected.
    pub const STATUS: &str = key!("status");
    /// The mode.
    pub const MODE: &str = key!("mode");
    /// The Vault role.
    pub const ROLE: &str = key!("role");
    /// The auth method.
    pub const AUTH_METHOD: &str = key!("auth-method");
    /// The auth mount.
    pub const AUTH_MOUNT: &str = key!("auth-mount");
    /// A service-account token projected for this audience.
    pub const TOKEN_AUDIENCE: &str = key!("token-audience");
    /// The Vault namespace.
    pub const VAULT_NAMESPACE: &str = key!("vault-namespace");
    /// Where the files are mounted.
    pub const MOUNT_PATH: &str = key!("mount-path");
    /// The app containers that get the files.
    pub const CONTAINERS: &str = key!("containers");
    /// Another build of hydrant's image.
    pub const IMAGE: &str = key!("image");
    /// CPU request of the agent containers.
    pub const CPU_REQUEST: &str = key!("cpu-request");
    /// Memory request of the agent containers.
    pub const MEMORY_REQUEST: &str = key!("memory-request");
    /// CPU limit of the agent containers.
    pub const CPU_LIMIT: &str = key!("cpu-limit");
    /// Memory limit of the agent containers.
    pub const MEMORY_LIMIT: &str = key!("memory-limit");
    /// How often lease-less secrets are read again.
    pub const REFRESH_INTERVAL: &str = key!("refresh-interval");
    /// Revoke the token when the sidecar stops.
    pub const REVOKE_ON_SHUTDOWN: &str = key!("revoke-on-shutdown");
    /// Exit once a fetch keeps failing.
    pub const EXIT_ON_RETRY_FAILURE: &str = key!("exit-on-retry-failure");
    /// The sidecar's local port.
    pub const LISTEN: &str = key!("listen");
    /// The sidecar's metrics port on the pod's addresses, for Prometheus.
    pub const METRICS_PORT: &str = key!("metrics-port");
    /// The agent's user.
    pub const RUN_AS_USER: &str = key!("run-as-user");
    /// The agent's group.
    pub const RUN_AS_GROUP: &str = key!("run-as-group");

    /// What every config-snapshot key starts with.
    pub const CONFIG_PREFIX: &str = key!("config-");
    /// ConfigMaps holding config containers.
    pub const CONFIG_CONTAINERS: &str = key!("config-containers");
    /// The app's schema: a ConfigMap and its key.
    pub const CONFIG_SCHEMA: &str = key!("config-schema");
    /// The snapshot file's format.
    pub const CONFIG_FORMAT: &str = key!("config-format");
    /// The snapshot file's name.
    pub const CONFIG_FILE: &str = key!("config-file");
    /// The levels, when not the default.
    pub const CONFIG_LEVELS: &str = key!("config-levels");

    /// A file holding a Vault path's data; the file's name follows.
    pub const SECRET_PREFIX: &str = key!("secret-");
    /// A file rendered from a template.
    pub const TEMPLATE_PREFIX: &str = key!("template-");
    /// A template's language: `jinja` (the default) or `consul-template`.
    pub const SYNTAX_PREFIX: &str = key!("syntax-");
    /// A file's name under the mount path.
    pub const FILE_PREFIX: &str = key!("file-");
    /// A file's mode.
    pub const PERMS_PREFIX: &str = key!("perms-");
    /// A secret file's format.
    pub const FORMAT_PREFIX: &str = key!("format-");
    /// A command run after a file changed.
    pub const COMMAND_PREFIX: &str = key!("command-");

    /// An environment variable of the app's containers, from Vault (`hydrant exec`); the
    /// variable's name follows.
    pub const ENV_PREFIX: &str = key!("env-");

    /// Every key above that is a whole key.
    pub const KEYS: &[&str] = &[
        INJECT,
        STATUS,
        MODE,
        ROLE,
        AUTH_METHOD,
        AUTH_MOUNT,
        TOKEN_AUDIENCE,
        VAULT_NAMESPACE,
        MOUNT_PATH,
        CONTAINERS,
        IMAGE,
        CPU_REQUEST,
        MEMORY_REQUEST,
        CPU_LIMIT,
        MEMORY_LIMIT,
        REFRESH_INTERVAL,
        REVOKE_ON_SHUTDOWN,
        EXIT_ON_RETRY_FAILURE,
        LISTEN,
        METRICS_PORT,
        RUN_AS_USER,
        RUN_AS_GROUP,
        CONFIG_CONTAINERS,
        CONFIG_SCHEMA,
        CONFIG_FORMAT,
        CONFIG_FILE,
        CONFIG_LEVELS,
    ];

    /// The config-snapshot keys.
    pub const CONFIG_KEYS: &[&str] = &[
        CONFIG_CONTAINERS,
        CONFIG_SCHEMA,
        CONFIG_FORMAT,
        CONFIG_FILE,
        CONFIG_LEVELS,
    ];

    /// Every per-file prefix.
    pub const PER_FILE: &[&str] = &[
        SECRET_PREFIX,
        TEMPLATE_PREFIX,
        SYNTAX_PREFIX,
        FILE_PREFIX,
        PERMS_PREFIX,
        FORMAT_PREFIX,
        COMMAND_PREFIX,
    ];

    /// Every per-variable prefix.
    pub const PER_VARIABLE: &[&str] = &[ENV_PREFIX];
}
