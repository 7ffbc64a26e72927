//! Each key of a Vault Agent configuration, with Vault Agent's meaning and defaults
//! (OpenBao's `command/agent/config`, its auto-auth methods and file sink, consul-template's
//! template config). A key hydrant does not do is refused with what to use instead, or accepted
//! with a warning when it changes nothing a user relies on. Unknown keys are errors.

use std::path::PathBuf;
use std::time;

use super::tree::{Item, Node, Pos};
use super::{
    AutoAuth, EnvTemplate, Exec, Method, Problem, Problems, Sink, Template, TemplateSettings,
    VaultAgentConfig, VaultStanza, Warning,
};
use crate::agent_config::AuthMethod;
use crate::values::{Duration, parse_bool};

/// What a refused key's message says, by key.
const REFUSED_TOP: &[(&str, &str)] = &[
    (
        "cache",
        "hydrant has no lease cache or API proxy: the agent's outputs are the templates and the token sink; remove the cache stanza",
    ),
    (
        "listener",
        "hydrant serves no Vault API to the app; the app reads rendered files or the token sink (hydrant's own health and metrics port is the `listen` key of its YAML config)",
    ),
    (
        "api_proxy",
        "hydrant serves no Vault API to the app; the app reads rendered files or the token sink",
    ),
    ("seal", "a Vault server key, not an agent's"),
    ("hsm", "a Vault server key, not an agent's"),
    ("kms", "a Vault server key, not an agent's"),
    ("user_lockout", "a Vault server key, not an agent's"),
];

/// Top-level keys accepted and ignored, and what hydrant does instead.
const IGNORED_TOP: &[(&str, &str)] = &[
    (
        "log_level",
        "ignored; set HYDRANT_LOG (such as info or debug)",
    ),
    (
        "log_format",
        "ignored; set HYDRANT_LOG_FORMAT (plain or json)",
    ),
    ("log_file", "ignored; hydrant logs to standard error"),
    (
        "log_rotate_bytes",
        "ignored; hydrant logs to standard error",
    ),
    (
        "log_rotate_duration",
        "ignored; hydrant logs to standard error",
    ),
    (
        "log_rotate_max_files",
        "ignored; hydrant logs to standard error",
    ),
    (
        "telemetry",
        "ignored; hydrant's metrics are served in Prometheus form on the `listen` port of its YAML config",
    ),
    ("disable_mlock", "ignored; hydrant does not lock its memory"),
    (
        "disable_idle_connections",
        "ignored; hydrant keeps its connections to Vault open",
    ),
    (
        "disable_keep_alives",
        "ignored; hydrant keeps its connections to Vault open",
    ),
    ("cluster_name", "ignored"),
    ("default_max_request_duration", "ignored"),
];

/// The auth methods Vault Agent has and hydrant does not.
const OTHER_METHODS: &[&str] = &[
    "alicloud", "aws", "azure", "cert", "cf", "gcp", "kerberos", "ldap", "oci", "pcf",
];

/// Reads a file's items into a config; every problem is reported at once.
pub(super) fn config(items: &[Item]) -> Result<(VaultAgentConfig, Vec<Warning>), Problems> {
    let mut d = Decoder::default();
    for item in items
        .iter()
        .filter(|i| i.key == "env_template" && i.labels.len() > 1)
    {
        d.problem(
            item.pos,
            "env_template",
            format!(
                "has {} labels; give one, the variable's name: env_template \"DB_PASSWORD\" {{ ... }}",
                item.labels.len()
            ),
        );
    }
    let mut top = Section::new("", items);
    let vault = top.block(&mut d, "vault").map(|(s, _)| d.vault(s));
    let auto_auth = top
        .block(&mut d, "auto_auth")
        .and_then(|(s, pos)| d.auto_auth(s, pos));
    let templates = top
        .blocks("template")
        .into_iter()
        .enumerate()
        .map(|(i, (s, pos))| d.template(s.renamed(format!("template[{i}]")), pos))
        .collect();
    let template_config = top
        .block(&mut d, "template_config")
        .map(|(s, _)| d.template_config(s));
    let env_templates = env_template_blocks(&mut d, top.blocks("env_template"))
        .into_iter()
        .map(|(name, s, pos)| d.env_template(name, s, pos))
        .collect();
    let exec = top.block(&mut d, "exec").map(|(s, pos)| d.exec(s, pos));
    let exit_after_auth = top.boolean(&mut d, "exit_after_auth").unwrap_or(false);
    let pid_file = top.string(&mut d, "pid_file").filter(|p| !p.is_empty());
    top.finish(&mut d, REFUSED_TOP, IGNORED_TOP);
    // In file order, whichever stanza found them.
    d.problems
        .sort_by_key(|p| p.pos.map(|p| (p.line, p.column)));
    d.warnings
        .sort_by_key(|w| w.pos.map(|p| (p.line, p.column)));
    if !d.problems.is_empty() {
        return Err(Problems(d.problems));
    }
    Ok((
        VaultAgentConfig {
            vault,
            auto_auth,
            templates,
            template_config,
            env_templates,
            exec,
            exit_after_auth,
            pid_file: pid_file.map(PathBuf::from),
            warnings: Vec::new(),
        },
        d.warnings,
    ))
}

/// Each `env_template` with the variable it names: `env_template "NAME" { ... }` in HCL, or in the
/// JSON form an object of them by name (`"env_template": {"NAME": {...}, ...}`).
fn env_template_blocks<'a>(
    d: &mut Decoder,
    blocks: Vec<(Section<'a>, Option<Pos>)>,
) -> Vec<(String, Section<'a>, Option<Pos>)> {
    let mut out = Vec::new();
    for (section, pos) in blocks {
        if let Some((path, kind)) = section.path.split_once('!') {
            d.problem(pos, path, format!("must be a block, not {kind}"));
        } else if let Some(label) = section.label {
            out.push((label.to_owned(), section, pos));
        } else if !section.items.is_empty()
            && section
                .items
                .iter()
                .all(|i| i.labels.is_empty() && matches!(i.value, Node::Map(_)))
        {
            for item in &section.items {
                if let Node::Map(items) = &item.value {
                    out.push((
                        item.key.clone(),
                        Section::new(&section.path, items),
                        item.pos.or(pos),
                    ));
                }
            }
        } else {
            d.problem(
                pos,
                "env_template",
                "has no variable name; write env_template \"DB_PASSWORD\" { contents = \"...\" }",
            );
        }
    }
    out
}

#[derive(Default)]
struct Decoder {
    problems: Vec<Problem>,
    warnings: Vec<Warning>,
}

impl Decoder {
    fn problem(&mut self, pos: Option<Pos>, key: &str, message: impl Into<String>) {
        self.problems.push(Problem {
            pos,
            key: key.to_owned(),
            message: message.into(),
        });
    }

    fn warn(&mut self, pos: Option<Pos>, key: &str, message: impl Into<String>) {
        self.warnings.push(Warning {
            pos,
            key: key.to_owned(),
            message: message.into(),
        });
    }

    fn vault(&mut self, mut s: Section<'_>) -> VaultStanza {
        let mut vault = VaultStanza {
            address: s.string(self, "address"),
            ca_cert: s.string(self, "ca_cert").map(PathBuf::from),
            ca_cert_pem: None,
            tls_server_name: s.string(self, "tls_server_name"),
            tls_skip_verify: s.boolean(self, "tls_skip_verify").unwrap_or(false),
            namespace: s.string(self, "namespace"),
            num_retries: None,
        };
        if let Some((mut retry, _)) = s.block(self, "retry") {
            vault.num_retries = retry.integer(self, "num_retries");
            retry.finish(self, &[], &[]);
        }
        s.finish(
            self,
            &[
                (
                    "ca_path",
                    "hydrant reads one CA bundle; concatenate the directory's PEM files into one and give it as ca_cert",
                ),
                (
                    "client_cert",
                    "hydrant presents no client certificate to Vault; remove client_cert and client_key",
                ),
                (
                    "client_key",
                    "hydrant presents no client certificate to Vault; remove client_cert and client_key",
                ),
            ],
            &[],
        );
        vault
    }

    fn auto_auth(&mut self, mut s: Section<'_>, pos: Option<Pos>) -> Option<AutoAuth> {
        let methods = s.blocks("method");
        let method = match methods.as_slice() {
            [] => {
                self.problem(
                    pos,
                    "auto_auth",
                    "has no method block; add one, such as method \"kubernetes\" { config = { role = \"app\" } }",
                );
                None
            }
            [_] => methods
                .into_iter()
                .next()
                .and_then(|(m, pos)| self.method(m.renamed("auto_auth.method".to_owned()), pos)),
            [_, (_, second), ..] => {
                self.problem(
                    *second,
                    "auto_auth.method",
                    "is given more than once; Vault Agent logs in with one method",
                );
                None
            }
        };
        let sinks: Vec<Sink> = s
            .blocks("sink")
            .into_iter()
            .enumerate()
            .filter_map(|(i, (sink, pos))| {
                self.sink(sink.renamed(format!("auto_auth.sink[{i}]")), pos)
            })
            .collect();
        s.finish(
            self,
            &[],
            &[(
                "enable_reauth_on_new_credentials",
                "ignored; hydrant reads credential files at every login",
            )],
        );
        Some(AutoAuth {
            method: method?,
            sinks,
        })
    }

    fn method(&mut self, s: Section<'_>, pos: Option<Pos>) -> Option<Method> {
        let mut s = s.unwrapped_label(|key| {
            key == "token_file" || key.parse::<AuthMethod>().is_ok() || OTHER_METHODS.contains(&key)
        });
        let kind = match (s.label, s.string(self, "type")) {
            (Some(label), _) => label.to_ascii_lowercase(),
            (None, Some(kind)) => kind.to_ascii_lowercase(),
            (None, None) => {
                self.problem(
                    pos,
                    &s.path,
                    "has no type; write method \"kubernetes\" { ... } or type = \"kubernetes\"",
                );
                return None;
            }
        };
        let method = match kind.as_str() {
            "kubernetes" => AuthMethod::Kubernetes,
            "jwt" => AuthMethod::Jwt,
            "approle" => AuthMethod::Approle,
            "token_file" => AuthMethod::Token,
            other => {
                let known = if OTHER_METHODS.contains(&other) {
                    format!("hydrant has no {other} auth method")
                } else {
                    format!("{other:?} is not an auth method")
                };
                self.problem(
                    pos,
                    &s.path,
                    format!("{known}; use kubernetes, jwt, approle or token_file"),
                );
                return None;
            }
        };
        let mut m = Method {
            kind: method,
            mount_path: s.string(self, "mount_path"),
            namespace: s.string(self, "namespace"),
            min_backoff: s.duration(self, "min_backoff"),
            max_backoff: s.duration(self, "max_backoff"),
            role: None,
            jwt_path: None,
            role_id_path: None,
            secret_id_path: None,
            token_path: None,
            remove_after_reading: None,
        };
        match s.block(self, "config") {
            Some((mut c, _)) => {
                let path = |p: Option<String>| p.map(PathBuf::from);
                let refused: &[(&str, &str)] = match method {
                    AuthMethod::Kubernetes => {
                        m.role = c.string(self, "role");
                        m.jwt_path = path(c.string(self, "token_path"));
                        &[]
                    }
                    AuthMethod::Jwt => {
                        m.role = c.string(self, "role");
                        m.jwt_path = path(c.string(self, "path"));
                        m.remove_after_reading = c.boolean(self, "remove_jwt_after_reading");
                        if c.boolean(self, "remove_jwt_follows_symlinks") == Some(true) {
                            self.problem(
                                c.pos_of("remove_jwt_follows_symlinks"),
                                &c.key("remove_jwt_follows_symlinks"),
                                "not supported by hydrant: it removes the file at path itself, never a symlink's target; remove the key",
                            );
                        }
                        if c.duration(self, "jwt_read_period").is_some() {
                            self.warn(
                                c.pos_of("jwt_read_period"),
                                &c.key("jwt_read_period"),
                                "ignored; hydrant reads the JWT file at each login",
                            );
                        }
                        &[]
                    }
                    AuthMethod::Approle => {
                        m.role_id_path = path(c.string(self, "role_id_file_path"));
                        // Empty, as absent, is a role with no secret ID (bind_secret_id=false).
                        m.secret_id_path = path(
                            c.string(self, "secret_id_file_path")
                                .filter(|p| !p.is_empty()),
                        );
                        m.remove_after_reading =
                            c.boolean(self, "remove_secret_id_file_after_reading");
                        &[(
                            "secret_id_response_wrapping_path",
                            "hydrant does not unwrap a response-wrapped secret ID; write the secret ID itself to secret_id_file_path",
                        )]
                    }
                    AuthMethod::Token => {
                        m.token_path = path(c.string(self, "token_file_path"));
                        &[]
                    }
                };
                let required: &[&str] = match method {
                    AuthMethod::Kubernetes => &["role"],
                    AuthMethod::Jwt => &["role", "path"],
                    AuthMethod::Approle => &["role_id_file_path"],
                    AuthMethod::Token => &["token_file_path"],
                };
                for key in required {
                    let present = match *key {
                        "role" => m.role.as_deref().is_some_and(|r| !r.is_empty()),
                        "path" | "token_path" => m.jwt_path.is_some(),
                        "role_id_file_path" => m.role_id_path.is_some(),
                        "secret_id_file_path" => m.secret_id_path.is_some(),
                        _ => m.token_path.is_some(),
                    };
                    if !present && !c.has(key) {
                        self.problem(
                            pos,
                            &c.key(key),
                            format!("is required by the {kind} method"),
                        );
                    }
                }
                c.finish(self, refused, &[]);
            }
            None => self.problem(
                pos,
                &format!("{}.config", s.path),
                format!("is missing; the {kind} method needs its config block"),
            ),
        }
        if s.has("exit_on_err") && s.boolean(self, "exit_on_err") == Some(true) {
            self.warn(
                s.pos_of("exit_on_err"),
                &s.key("exit_on_err"),
                "hydrant --once (exit_after_auth) gives up after retry.deadline; the sidecar keeps retrying with backoff",
            );
        }
        s.finish(
            self,
            &[(
                "wrap_ttl",
                "hydrant does not response-wrap its token; remove wrap_ttl",
            )],
            &[],
        );
        Some(m)
    }

    fn sink(&mut self, s: Section<'_>, pos: Option<Pos>) -> Option<Sink> {
        let mut s = s.unwrapped_label(|key| key == "file");
        let kind = s
            .label
            .map(str::to_owned)
            .or_else(|| s.string(self, "type"));
        match kind.as_deref() {
            Some("file") => {}
            Some(other) => {
                self.problem(
                    pos,
                    &s.path,
                    format!("hydrant writes the token to file sinks only, not {other:?}"),
                );
                return None;
            }
            None => {
                self.problem(pos, &s.path, "has no type; write sink \"file\" { ... }");
                return None;
            }
        }
        let mut sink = None;
        match s.block(self, "config") {
            Some((mut c, _)) => {
                let path = c.string(self, "path").filter(|p| !p.is_empty());
                let mode = c.mode(self, "mode");
                if path.is_none() && !c.has("path") {
                    self.problem(
                        pos,
                        &c.key("path"),
                        "is required: the file the token is written to",
                    );
                }
                c.finish(
                    self,
                    &[
                        (
                            "uid",
                            "hydrant writes the token file as its own user; remove uid",
                        ),
                        (
                            "gid",
                            "hydrant writes the token file as its own group; remove gid",
                        ),
                    ],
                    &[],
                );
                sink = path.map(|p| Sink {
                    path: PathBuf::from(p),
                    mode,
                });
            }
            None => self.problem(
                pos,
                &format!("{}.config", s.path),
                "is missing; give the token file as config = { path = \"...\" }",
            ),
        }
        let refuse =
            "hydrant writes the token itself: no response-wrapping or encryption; remove the key";
        s.finish(
            self,
            &[
                ("wrap_ttl", refuse),
                ("dh_type", refuse),
                ("dh_path", refuse),
                ("aad", refuse),
                ("aad_env_var", refuse),
                ("derive_key", refuse),
            ],
            &[],
        );
        sink
    }

    fn template(&mut self, mut s: Section<'_>, pos: Option<Pos>) -> Template {
        let mut t = Template {
            source: s
                .string(self, "source")
                .filter(|p| !p.is_empty())
                .map(PathBuf::from),
            contents: s.string(self, "contents"),
            destination: s
                .string(self, "destination")
                .filter(|p| !p.is_empty())
                .map(PathBuf::from),
            perms: s.mode(self, "perms"),
            command: s.strings(self, "command").unwrap_or_default(),
            command_timeout: s.duration(self, "command_timeout"),
            error_on_missing_key: s.boolean(self, "error_on_missing_key"),
            left_delimiter: s.string(self, "left_delimiter").filter(|d| !d.is_empty()),
            right_delimiter: s.string(self, "right_delimiter").filter(|d| !d.is_empty()),
            create_dest_dirs: s.boolean(self, "create_dest_dirs"),
            pos,
        };
        if let Some((mut exec, _)) = s.block(self, "exec") {
            if let Some(command) = exec.strings(self, "command") {
                t.command = command;
            }
            if let Some(timeout) = exec.duration(self, "timeout") {
                t.command_timeout = Some(timeout);
            }
            exec.finish(
                self,
                &[
                    ("enabled", "hydrant runs a template's command whenever the file changes; remove the key"),
                    ("env", "hydrant runs the command with its own environment; remove the key"),
                    ("kill_signal", "hydrant stops a command that outlives its timeout with SIGKILL; remove the key"),
                    ("kill_timeout", "hydrant stops a command that outlives its timeout with SIGKILL; remove the key"),
                    ("reload_signal", "hydrant runs the command again rather than signalling it; remove the key"),
                    ("splay", "hydrant runs the command at once; remove the key"),
                ],
                &[],
            );
        }
        if s.has("backup") && s.boolean(self, "backup") == Some(true) {
            self.warn(
                s.pos_of("backup"),
                &s.key("backup"),
                "ignored; hydrant keeps no .bak copy of the file it replaces",
            );
        }
        if s.has("error_fatal") && s.boolean(self, "error_fatal") == Some(false) {
            self.warn(
                s.pos_of("error_fatal"),
                &s.key("error_fatal"),
                "ignored; a render error fails --once, and the sidecar keeps the file's last good content and retries",
            );
        }
        if s.has("wait") {
            let at = s.pos_of("wait");
            s.take("wait");
            self.warn(
                at,
                &s.key("wait"),
                "ignored; hydrant writes a file as soon as its content changes",
            );
        }
        let owner = "hydrant writes files as its own user and group (set the pod's runAsUser and fsGroup); remove the key";
        s.finish(
            self,
            &[
                ("user", owner),
                ("uid", owner),
                ("group", owner),
                ("gid", owner),
                (
                    "sandbox_path",
                    "hydrant's templates read files only under the paths its config watches; remove sandbox_path",
                ),
                (
                    "function_denylist",
                    "hydrant has no per-template function denylist (it refuses the functions that run commands or read the environment for all templates); remove the key",
                ),
                (
                    "function_blacklist",
                    "hydrant has no per-template function denylist (it refuses the functions that run commands or read the environment for all templates); remove the key",
                ),
            ],
            &[],
        );
        t
    }

    /// One `env_template "NAME"`: the keys Vault Agent allows there (a template's text and how
    /// it renders), and its refusal of the ones that only mean something for a file.
    fn env_template(&mut self, name: String, s: Section<'_>, pos: Option<Pos>) -> EnvTemplate {
        let mut s = s.renamed(format!("env_template[{name}]"));
        if !crate::agent_config::is_env_name(&name) {
            self.problem(
                pos,
                &s.path,
                format!(
                    "{name:?} is not an environment variable name: use letters, digits and '_', not starting with a digit"
                ),
            );
        }
        let t = EnvTemplate {
            name,
            source: s
                .string(self, "source")
                .filter(|p| !p.is_empty())
                .map(PathBuf::from),
            contents: s.string(self, "contents"),
            error_on_missing_key: s.boolean(self, "error_on_missing_key"),
            left_delimiter: s.string(self, "left_delimiter").filter(|d| !d.is_empty()),
            right_delimiter: s.string(self, "right_delimiter").filter(|d| !d.is_empty()),
            pos,
        };
        match (&t.contents, &t.source) {
            (Some(_), Some(_)) => self.problem(
                pos,
                &s.path,
                "has both contents and source (Vault Agent refuses them together); keep one",
            ),
            (None, None) => self.problem(
                pos,
                &s.path,
                "needs contents or source: the template whose output is the variable's value",
            ),
            _ => {}
        }
        if s.has("error_fatal") && s.boolean(self, "error_fatal") == Some(false) {
            self.warn(
                s.pos_of("error_fatal"),
                &s.key("error_fatal"),
                "ignored; a render error before the command starts fails the start, and later the command keeps its values while hydrant retries",
            );
        }
        // Vault Agent's validateEnvTemplateConfig: what only a file has is not allowed here.
        let file_only = "is not allowed in env_template (Vault Agent refuses it too): the value goes into the command's environment, not a file; remove it";
        let denylist = "hydrant has no per-template function denylist (it refuses the functions that run commands or read the environment for all templates); remove the key";
        s.finish(
            self,
            &[
                ("backup", file_only),
                ("command", file_only),
                ("command_timeout", file_only),
                ("create_dest_dirs", file_only),
                ("destination", file_only),
                ("exec", file_only),
                ("perms", file_only),
                ("user", file_only),
                ("uid", file_only),
                ("group", file_only),
                ("gid", file_only),
                ("wait", file_only),
                ("sandbox_path", file_only),
                ("function_denylist", denylist),
                ("function_blacklist", denylist),
            ],
            &[],
        );
        t
    }

    /// The top-level `exec`: the command Vault Agent runs as its child with the `env_template`
    /// variables, and how a changed value restarts it (Vault Agent's defaults: `always`,
    /// `SIGTERM`).
    fn exec(&mut self, mut s: Section<'_>, pos: Option<Pos>) -> Exec {
        let restart = s.string(self, "restart_on_secret_changes");
        let restart_always = match restart.as_deref() {
            None | Some("" | "always") => true,
            Some("never") => false,
            Some(other) => {
                self.problem(
                    s.pos_of("restart_on_secret_changes"),
                    &s.key("restart_on_secret_changes"),
                    format!(
                        "{other:?} is neither \"always\" nor \"never\" (Vault Agent's only values)"
                    ),
                );
                true
            }
        };
        let stop_signal = s.string(self, "restart_stop_signal");
        let stop_signal = match stop_signal.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(given) => match crate::commands::signal_name(given) {
                Some(name) => Some(name),
                None => {
                    self.problem(
                        s.pos_of("restart_stop_signal"),
                        &s.key("restart_stop_signal"),
                        format!(
                            "{given:?} is not a signal hydrant sends; use SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGUSR1, SIGUSR2 or SIGKILL"
                        ),
                    );
                    None
                }
            },
        };
        let exec = Exec {
            command: s.strings(self, "command").unwrap_or_default(),
            restart_always,
            stop_signal,
            pos,
        };
        s.finish(
            self,
            &[(
                "restart_stop_grace",
                "Vault Agent has no such key (it waits a fixed 30s before it kills the command); hydrant's own YAML config has exec.restart_stop_grace",
            )],
            &[],
        );
        exec
    }

    fn template_config(&mut self, mut s: Section<'_>) -> TemplateSettings {
        let settings = TemplateSettings {
            exit_on_retry_failure: s.boolean(self, "exit_on_retry_failure"),
            static_secret_render_interval: s.duration(self, "static_secret_render_interval"),
            lease_renewal_threshold: s.number(self, "lease_renewal_threshold"),
            max_connections_per_host: s
                .integer(self, "max_connections_per_host")
                .and_then(|n| u16::try_from(n).ok()),
        };
        s.finish(self, &[], &[]);
        settings
    }
}

/// The items of one block or object, and which of them were read: whatever is left at
/// [`Section::finish`] is an unknown key.
pub(super) struct Section<'a> {
    path: String,
    items: Vec<&'a Item>,
    used: Vec<bool>,
    /// The block's own label (`method "kubernetes"`), if it has one.
    label: Option<&'a str>,
}

impl<'a> Section<'a> {
    fn new(path: &str, items: &'a [Item]) -> Section<'a> {
        Section {
            path: path.to_owned(),
            items: items.iter().collect(),
            used: vec![false; items.len()],
            label: None,
        }
    }

    /// The JSON form of a labelled block, `{"kubernetes": {...}}`: when the section has no
    /// label and no `type`, and holds one block whose key `is_label` accepts, that block with
    /// its key as the label.
    fn unwrapped_label(self, is_label: impl Fn(&str) -> bool) -> Section<'a> {
        if self.label.is_some() || self.items.iter().any(|i| i.key == "type") {
            return self;
        }
        match self.items.as_slice() {
            [only] if is_label(&only.key) => match &only.value {
                Node::Map(items) => Section {
                    label: Some(only.key.as_str()),
                    ..Section::new(&self.path, items)
                },
                _ => self,
            },
            _ => self,
        }
    }

    /// Whether the key is given at all.
    fn has(&self, key: &str) -> bool {
        self.items.iter().any(|i| i.key == key)
    }

    /// Where the key is given first, if anywhere.
    fn pos_of(&self, key: &str) -> Option<Pos> {
        self.items.iter().find(|i| i.key == key).and_then(|i| i.pos)
    }

    fn renamed(mut self, path: String) -> Section<'a> {
        self.path = path;
        self
    }

    fn key(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    /// Every item with this key, marked as read.
    fn take(&mut self, key: &str) -> Vec<&'a Item> {
        let mut found = Vec::new();
        for (i, item) in self.items.iter().enumerate() {
            if item.key == key {
                self.used[i] = true;
                found.push(*item);
            }
        }
        found
    }

    /// The one item with this key; a second is a problem.
    fn one(&mut self, d: &mut Decoder, key: &str) -> Option<&'a Item> {
        let found = self.take(key);
        if let Some(second) = found.get(1) {
            d.problem(second.pos, &self.key(key), "is given more than once");
        }
        found.into_iter().next()
    }

    /// Every block with this key: `key { }`, `key "label" { }`, `key = { }`, or a list of
    /// objects (JSON).
    fn blocks(&mut self, key: &str) -> Vec<(Section<'a>, Option<Pos>)> {
        let path = self.key(key);
        let mut out = Vec::new();
        for item in self.take(key) {
            let label = item.labels.first().map(String::as_str);
            match &item.value {
                Node::Map(items) => out.push((
                    Section {
                        label,
                        ..Section::new(&path, items)
                    },
                    item.pos,
                )),
                Node::List(nodes) => {
                    for node in nodes {
                        if let Node::Map(items) = node {
                            out.push((Section::new(&path, items), item.pos));
                        }
                    }
                }
                _ => out.push((
                    Section {
                        label: None,
                        path: format!("{path}!{}", item.value.kind()),
                        items: Vec::new(),
                        used: Vec::new(),
                    },
                    item.pos,
                )),
            }
        }
        out
    }

    /// The one block with this key.
    fn block(&mut self, d: &mut Decoder, key: &str) -> Option<(Section<'a>, Option<Pos>)> {
        let mut blocks = self.blocks(key);
        if blocks.len() > 1 {
            d.problem(blocks[1].1, &self.key(key), "is given more than once");
        }
        if blocks.is_empty() {
            return None;
        }
        let (section, pos) = blocks.remove(0);
        if let Some((path, kind)) = section.path.split_once('!') {
            d.problem(pos, path, format!("must be a block, not {kind}"));
            return None;
        }
        Some((section, pos))
    }

    fn string(&mut self, d: &mut Decoder, key: &str) -> Option<String> {
        let item = self.one(d, key)?;
        match &item.value {
            Node::Str(s) => Some(s.clone()),
            other => {
                d.problem(
                    item.pos,
                    &self.key(key),
                    format!("must be a string, not {}", other.kind()),
                );
                None
            }
        }
    }

    /// A boolean, or a string Go's `strconv.ParseBool` reads (as `parseutil.ParseBool` does).
    fn boolean(&mut self, d: &mut Decoder, key: &str) -> Option<bool> {
        let item = self.one(d, key)?;
        let parsed = match &item.value {
            Node::Bool(b) => Ok(*b),
            Node::Str(s) => parse_bool(s),
            Node::Num(n) if n == "0" || n == "1" => Ok(n == "1"),
            other => Err(format!("must be true or false, not {}", other.kind())),
        };
        parsed
            .map_err(|message| d.problem(item.pos, &self.key(key), message))
            .ok()
    }

    fn integer(&mut self, d: &mut Decoder, key: &str) -> Option<i64> {
        let item = self.one(d, key)?;
        let parsed = match &item.value {
            Node::Num(n) | Node::Str(n) => n.parse::<i64>().ok(),
            _ => None,
        };
        if parsed.is_none() {
            d.problem(item.pos, &self.key(key), "must be a whole number");
        }
        parsed
    }

    fn number(&mut self, d: &mut Decoder, key: &str) -> Option<f64> {
        let item = self.one(d, key)?;
        let parsed = match &item.value {
            Node::Num(n) | Node::Str(n) => n.parse::<f64>().ok(),
            _ => None,
        };
        if parsed.is_none() {
            d.problem(item.pos, &self.key(key), "must be a number such as 0.9");
        }
        parsed
    }

    /// A duration as `parseutil.ParseDurationSecond` reads it: a number of seconds, or text
    /// such as `90s`, `5m` or `1h30m`.
    fn duration(&mut self, d: &mut Decoder, key: &str) -> Option<time::Duration> {
        let item = self.one(d, key)?;
        let parsed = match &item.value {
            Node::Num(n) | Node::Str(n) => Duration::parse(n).map(|d| d.0),
            other => Err(format!(
                "must be a duration such as \"5m\", not {}",
                other.kind()
            )),
        };
        parsed
            .map_err(|message| d.problem(item.pos, &self.key(key), message))
            .ok()
    }

    /// A file mode: a number as HCL 1 reads it (`0640` is octal, `420` decimal) or an octal
    /// string (`"0640"`).
    fn mode(&mut self, d: &mut Decoder, key: &str) -> Option<u32> {
        let item = self.one(d, key)?;
        let parsed = match &item.value {
            Node::Num(n) if n.len() > 1 && n.starts_with('0') => {
                u32::from_str_radix(&n[1..], 8).ok()
            }
            Node::Num(n) => n.parse::<u32>().ok(),
            Node::Str(s) => crate::values::FileMode::parse(s).ok().map(|m| m.0),
            _ => None,
        };
        match parsed {
            Some(mode) if mode <= 0o777 => Some(mode),
            Some(mode) => {
                d.problem(
                    item.pos,
                    &self.key(key),
                    format!(
                        "{mode:o} (octal) is not a file mode of permission bits; a number without a leading 0 is decimal, so write 0640 or \"0640\""
                    ),
                );
                None
            }
            None => {
                d.problem(
                    item.pos,
                    &self.key(key),
                    "must be a file mode such as 0640 or \"0640\"",
                );
                None
            }
        }
    }

    /// A list of strings; a string is split at commas (mapstructure's weak slice, as
    /// consul-template decodes `command`).
    fn strings(&mut self, d: &mut Decoder, key: &str) -> Option<Vec<String>> {
        let item = self.one(d, key)?;
        match &item.value {
            Node::Str(s) if s.is_empty() => Some(Vec::new()),
            Node::Str(s) => Some(s.split(',').map(str::to_owned).collect()),
            Node::List(nodes) => {
                let list: Option<Vec<String>> = nodes
                    .iter()
                    .map(|n| match n {
                        Node::Str(s) => Some(s.clone()),
                        _ => None,
                    })
                    .collect();
                if list.is_none() {
                    d.problem(item.pos, &self.key(key), "must be a list of strings");
                }
                list
            }
            other => {
                d.problem(
                    item.pos,
                    &self.key(key),
                    format!(
                        "must be a string or a list of strings, not {}",
                        other.kind()
                    ),
                );
                None
            }
        }
    }

    /// Reports every key not read: refused ones with their message, ignored ones as warnings,
    /// the rest as unknown.
    fn finish(self, d: &mut Decoder, refused: &[(&str, &str)], ignored: &[(&str, &str)]) {
        for (item, used) in self.items.iter().zip(&self.used) {
            if *used {
                continue;
            }
            let key = self.key(&item.key);
            if let Some((_, why)) = refused.iter().find(|(k, _)| *k == item.key) {
                d.problem(item.pos, &key, format!("not supported by hydrant: {why}"));
            } else if let Some((_, why)) = ignored.iter().find(|(k, _)| *k == item.key) {
                d.warn(item.pos, &key, *why);
            } else {
                d.problem(
                    item.pos,
                    &key,
                    "unknown key; check its spelling against Vault Agent's documentation",
                );
            }
        }
    }
}
