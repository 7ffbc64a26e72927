//! Checking an agent configuration beyond what its types say: keys each auth method requires or
//! refuses, unique names and destinations, values in range. Every problem is reported at once,
//! at its key.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::time;

use super::{
    AgentConfig, AuthMethod, DEFAULT_MAX_FILE_BYTES, DEFAULT_RENDER_STEPS, MAX_FILE_BYTES,
    MAX_RENDER_STEPS, MAX_RETRY_DEADLINE, MAX_STOP_GRACE, TemplateSyntax,
};
use crate::values::Duration;

/// One problem in a configuration, at a key such as `templates[1].destination`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigIssue {
    /// Where: the path of the key.
    pub key: String,
    /// What is wrong and how to fix it.
    pub problem: String,
}

impl fmt::Display for ConfigIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.problem)
    }
}

/// Every problem found in a configuration; never empty.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigIssues(pub Vec<ConfigIssue>);

impl fmt::Display for ConfigIssues {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, issue) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            issue.fmt(f)?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigIssues {}

impl AgentConfig {
    /// Checks only `vault` and `auth`: for tools that log in but render nothing of the
    /// config's own (`hydrant render --agent-config`, `hydrant policy`, `hydrant controller`).
    pub fn validate_connection(&self) -> Result<(), ConfigIssues> {
        let mut issues = Issues::default();
        self.validate_vault(&mut issues);
        self.validate_auth(&mut issues);
        issues.finish()
    }

    /// Checks what the types alone cannot: required and forbidden keys per auth method, unique
    /// names and destinations, values in range. Reports every problem at once.
    pub fn validate(&self) -> Result<(), ConfigIssues> {
        let mut issues = Issues::default();
        self.validate_vault(&mut issues);
        self.validate_auth(&mut issues);
        self.validate_outputs(&mut issues);
        self.validate_sidecar(&mut issues);
        self.validate_bounds(&mut issues);
        for (key, set) in [("env", !self.env.is_empty()), ("exec", self.exec.is_some())] {
            if set {
                issues.push(
                    key,
                    "is read by hydrant exec only; run hydrant exec --config FILE -- COMMAND, or remove it",
                );
            }
        }
        issues.finish()
    }

    /// Checks a configuration for `hydrant exec`: as [`AgentConfig::validate`] does, with
    /// `env` instead of files. What only writes files (templates, secrets, the hand-over) is
    /// refused: Vault Agent refuses `template` next to `env_template` too. Token sinks are kept,
    /// as Vault Agent writes its sink beside `exec`.
    pub fn validate_exec(&self) -> Result<(), ConfigIssues> {
        let mut issues = Issues::default();
        self.validate_vault(&mut issues);
        self.validate_auth(&mut issues);
        self.validate_env(&mut issues);
        self.validate_sinks(&mut issues, &mut BTreeMap::new());
        self.validate_sidecar(&mut issues);
        self.validate_bounds(&mut issues);
        for (key, set) in [
            ("templates", !self.templates.is_empty()),
            ("secrets", !self.secrets.is_empty()),
            ("state_dir", self.state_dir.is_some()),
            ("exit_after_auth", self.exit_after_auth),
        ] {
            if set {
                issues.push(
                    key,
                    "is not used by hydrant exec, which puts values in its command's environment only; render files with hydrant agent, or remove it",
                );
            }
        }
        issues.finish()
    }

    fn validate_env(&self, issues: &mut Issues) {
        if self.env.is_empty() {
            issues.push(
                "env",
                "nothing to put in the environment: add env entries, such as {name: DB_PASSWORD, path: secret/data/app/db, key: password}",
            );
        }
        let mut names: BTreeMap<&str, String> = BTreeMap::new();
        for (i, e) in self.env.iter().enumerate() {
            let key = format!("env[{i}]");
            if !super::is_env_name(&e.name) {
                issues.push(
                    format!("{key}.name"),
                    format!("{:?} is not an environment variable name: use letters, digits and '_', not starting with a digit", e.name),
                );
            } else if let Some(first) = names.get(e.name.as_str()) {
                issues.push(
                    format!("{key}.name"),
                    format!("{:?} is also the name of {first}", e.name),
                );
            } else {
                names.insert(&e.name, key.clone());
            }
            match (&e.contents, &e.source, &e.path) {
                (Some(_), None, None) | (None, Some(_), None) | (None, None, Some(_)) => {}
                (None, None, None) => issues.push(&key, "needs contents, source, or path and key"),
                _ => issues.push(
                    &key,
                    "has more than one of contents, source and path; keep one",
                ),
            }
            if e.source.as_ref().is_some_and(|p| p.as_os_str().is_empty()) {
                issues.push(format!("{key}.source"), "is empty; name the template file");
            }
            match &e.path {
                Some(path) => {
                    if let Err(problem) = check_env_path(path) {
                        issues.push(format!("{key}.path"), problem);
                    }
                    match e.key.as_deref() {
                        None => issues.push(
                            format!("{key}.key"),
                            "is required with path; name the key of the secret's data",
                        ),
                        Some("") => issues.push(
                            format!("{key}.key"),
                            "is empty; name the key of the secret's data",
                        ),
                        Some(k) if k.chars().any(char::is_control) => {
                            issues.push(format!("{key}.key"), "holds a control character")
                        }
                        Some(_) => {}
                    }
                    if e.version == Some(0) {
                        issues.push(
                            format!("{key}.version"),
                            "must be 1 or more; leave it out for the latest version",
                        );
                    }
                }
                None => {
                    for (field, set) in [("key", e.key.is_some()), ("version", e.version.is_some())]
                    {
                        if set {
                            issues.push(
                                format!("{key}.{field}"),
                                "applies only with path; remove it or give the path",
                            );
                        }
                    }
                }
            }
            let consul = e.syntax == TemplateSyntax::ConsulTemplate && e.path.is_none();
            if consul {
                let (left, right) = (
                    e.left_delimiter.as_deref().unwrap_or(""),
                    e.right_delimiter.as_deref().unwrap_or(""),
                );
                if let Some(contents) = &e.contents
                    && let Err(problem) = crate::consul_template::check(contents, left, right)
                {
                    issues.push(format!("{key}.contents"), problem.to_string());
                }
            } else {
                for (field, set) in [
                    (
                        "syntax",
                        e.path.is_some() && e.syntax != TemplateSyntax::Jinja,
                    ),
                    ("left_delimiter", e.left_delimiter.is_some()),
                    ("right_delimiter", e.right_delimiter.is_some()),
                    ("error_on_missing_key", e.error_on_missing_key.is_some()),
                ] {
                    if set {
                        issues.push(
                            format!("{key}.{field}"),
                            "applies to consul-template templates only; set syntax: consul-template with contents or source, or remove it",
                        );
                    }
                }
            }
        }
        if let Some(exec) = &self.exec {
            if let Some(argv) = &exec.command
                && argv.first().is_none_or(|program| program.trim().is_empty())
            {
                issues.push("exec.command", "is empty; give the program and its arguments, such as [\"/app/server\", \"--port\", \"8080\"]");
            }
            if let Some(signal) = &exec.restart_stop_signal
                && crate::commands::signal_name(signal).is_none()
            {
                issues.push(
                    "exec.restart_stop_signal",
                    format!(
                        "{signal:?} is not a signal; use TERM, INT, QUIT, HUP, USR1, USR2 or KILL"
                    ),
                );
            }
            if let Some(grace) = exec.restart_stop_grace
                && (grace.0.is_zero() || grace.0 > MAX_STOP_GRACE)
            {
                issues.push(
                    "exec.restart_stop_grace",
                    format!(
                        "{grace} is outside 1s to {}; the default is 30s",
                        Duration(MAX_STOP_GRACE)
                    ),
                );
            }
        }
    }

    fn validate_bounds(&self, issues: &mut Issues) {
        match self.retry.deadline {
            Some(d) if d.0.is_zero() => {
                issues.push("retry.deadline", "must be longer than zero, such as 2m")
            }
            Some(d) if d.0 > MAX_RETRY_DEADLINE => issues.push(
                "retry.deadline",
                format!(
                    "{d} is longer than the limit of {}",
                    Duration(MAX_RETRY_DEADLINE)
                ),
            ),
            _ => {}
        }
        if let Some(bytes) = self.limits.file_bytes
            && !(1..=MAX_FILE_BYTES).contains(&bytes)
        {
            issues.push(
                "limits.file_bytes",
                format!("{bytes} is outside 1 to {MAX_FILE_BYTES}; the default is {DEFAULT_MAX_FILE_BYTES}"),
            );
        }
        if let Some(steps) = self.limits.render_steps
            && !(1..=MAX_RENDER_STEPS).contains(&steps)
        {
            issues.push(
                "limits.render_steps",
                format!("{steps} is outside 1 to {MAX_RENDER_STEPS}; the default is {DEFAULT_RENDER_STEPS}"),
            );
        }
    }

    fn validate_sidecar(&self, issues: &mut Issues) {
        if self
            .refresh_interval
            .is_some_and(|d| d.0 < time::Duration::from_secs(1))
        {
            issues.push("refresh_interval", "must be at least 1s, such as 5m");
        }
        if self.listen == Some(0) {
            issues.push("listen", "must be a port number (1 to 65535), such as 8200");
        }
        if self.metrics_port == Some(0) {
            issues.push(
                "metrics_port",
                "must be a port number (1 to 65535), such as 9102",
            );
        } else if self.metrics_port.is_some() && self.metrics_port == self.listen {
            issues.push(
                "metrics_port",
                "is also the listen port; the metrics port serves every address and listen 127.0.0.1, so they need two ports",
            );
        }
        if let Some(t) = self.renewal_threshold
            && !(0.5..1.0).contains(&t)
        {
            issues.push(
                "renewal_threshold",
                format!("{t} is outside 0.5 to 1 (exclusive); the default is 0.9"),
            );
        }
        let (min, max) = self.auth.backoff();
        if min.is_zero() || min > max {
            issues.push(
                "auth.min_backoff",
                "must be longer than zero and not longer than auth.max_backoff",
            );
        }
        if self.watch.iter().any(|p| p.as_os_str().is_empty()) {
            issues.push("watch", "holds an empty path");
        }
        if let Some(snapshot) = &self.snapshot {
            if snapshot.containers.is_empty()
                || snapshot.containers.iter().any(|p| p.as_os_str().is_empty())
            {
                issues.push(
                    "config.containers",
                    "needs at least one directory of config containers, and no empty path",
                );
            }
            if snapshot.levels.as_ref().is_some_and(|l| l.is_empty()) {
                issues.push(
                    "config.levels",
                    "is empty; leave it out for the default levels",
                );
            }
        }
        let commands = self
            .templates
            .iter()
            .enumerate()
            .map(|(i, t)| (format!("templates[{i}]"), &t.command, t.command_timeout))
            .chain(
                self.secrets
                    .iter()
                    .enumerate()
                    .map(|(i, s)| (format!("secrets[{i}]"), &s.command, s.command_timeout)),
            );
        for (key, command, timeout) in commands {
            if let Some(argv) = command
                && argv.first().is_none_or(|program| program.trim().is_empty())
            {
                issues.push(format!("{key}.command"), "is empty; give the program and its arguments, such as [\"/bin/kill\", \"-HUP\", \"1\"]");
            }
            if timeout.is_some_and(|t| t.0.is_zero()) {
                issues.push(format!("{key}.command_timeout"), "must be longer than zero");
            }
        }
    }

    fn validate_vault(&self, issues: &mut Issues) {
        let vault = &self.vault;
        let address = vault.address.trim();
        let (https, rest) = match (
            address.strip_prefix("https://"),
            address.strip_prefix("http://"),
        ) {
            (Some(rest), _) => (true, Some(rest)),
            (None, Some(rest)) => (false, Some(rest)),
            (None, None) => (false, None),
        };
        let (authority, path) =
            rest.map_or(("", ""), |r| r.split_at(r.find('/').unwrap_or(r.len())));
        if rest.is_none() || authority.is_empty() {
            issues.push(
                "vault.address",
                format!(
                    "{address:?} is not an http:// or https:// URL such as https://vault.vault:8200"
                ),
            );
        } else if authority.contains('@') {
            // The address appears in every error message: credentials must not be in it.
            issues.push("vault.address", "must not hold a user name or password");
        } else if !path.is_empty() && path != "/" {
            issues.push(
                "vault.address",
                format!("{address:?} has a path; give only scheme, host and port (Vault's API is always under /v1)"),
            );
        }
        if vault.max_concurrent_requests == Some(0) {
            issues.push("vault.max_concurrent_requests", "must be at least 1");
        }
        if vault.timeout.is_some_and(|t| t.0.is_zero()) {
            issues.push("vault.timeout", "must be longer than zero, such as 30s");
        }
        if let Some(namespace) = vault.namespace()
            && !namespace.bytes().all(|b| b.is_ascii_graphic())
        {
            issues.push(
                "vault.namespace",
                "holds a space or control character; a Vault namespace such as team-a/apps has neither",
            );
        }
        match vault.tls_server_name.as_deref() {
            Some(name) if name.is_empty() || !name.bytes().all(|b| b.is_ascii_graphic()) => issues
                .push(
                    "vault.tls_server_name",
                    "is not a host name; remove it or name the certificate's host",
                ),
            _ => {}
        }
        if let Some(pem) = &vault.ca_cert_pem
            && !pem.contains("-----BEGIN CERTIFICATE-----")
        {
            issues.push(
                "vault.ca_cert_pem",
                "holds no PEM certificate; give the CA as -----BEGIN CERTIFICATE----- text",
            );
        }
        if vault
            .ca_cert_pem
            .as_deref()
            .is_some_and(|pem| pem.contains("PRIVATE KEY"))
        {
            issues.push(
                "vault.ca_cert_pem",
                "holds a private key; give only the CA certificate(s)",
            );
        }
        if vault.ca_cert.is_some() && vault.ca_cert_pem.is_some() {
            issues.push(
                "vault.ca_cert_pem",
                "is set together with vault.ca_cert; keep one of them",
            );
        }
        let tls_keys = [
            ("vault.ca_cert", vault.ca_cert.is_some()),
            ("vault.ca_cert_pem", vault.ca_cert_pem.is_some()),
            ("vault.tls_server_name", vault.tls_server_name.is_some()),
        ];
        for (key, present) in tls_keys {
            if present && rest.is_some() && !https {
                issues.push(key, "applies only to an https:// vault.address");
            } else if present && vault.tls_skip_verify {
                issues.push(
                    key,
                    "is ignored when vault.tls_skip_verify is true; remove one of them",
                );
            }
        }
    }

    fn validate_auth(&self, issues: &mut Issues) {
        use AuthMethod::*;
        let auth = &self.auth;
        let method = auth.method;
        let keys: [(&str, bool, &[AuthMethod], &[AuthMethod]); 5] = [
            // (key, present, methods that require it, methods that accept it)
            (
                "role",
                auth.role.is_some(),
                &[Kubernetes, Jwt],
                &[Kubernetes, Jwt],
            ),
            ("jwt_path", auth.jwt_path.is_some(), &[], &[Kubernetes, Jwt]),
            (
                "role_id_path",
                auth.role_id_path.is_some(),
                &[Approle],
                &[Approle],
            ),
            // A role with bind_secret_id=false logs in with its role ID alone.
            (
                "secret_id_path",
                auth.secret_id_path.is_some(),
                &[],
                &[Approle],
            ),
            ("token_path", auth.token_path.is_some(), &[Token], &[Token]),
        ];
        for (key, present, required_by, accepted_by) in keys {
            if !present && required_by.contains(&method) {
                issues.push(
                    format!("auth.{key}"),
                    format!("is required by method {method}"),
                );
            }
            if present && !accepted_by.contains(&method) {
                issues.push(
                    format!("auth.{key}"),
                    format!("is not used by method {method}; remove it or change auth.method"),
                );
            }
        }
        match auth.role.as_deref() {
            Some(role) if role.trim().is_empty() => {
                issues.push("auth.role", "is empty; name the Vault role to log in as")
            }
            Some(role) if role.trim() != role => issues.push(
                "auth.role",
                format!("{role:?} has spaces around it; remove them"),
            ),
            _ => {}
        }
        if auth
            .mount
            .as_deref()
            .is_some_and(|m| m.trim_matches('/').is_empty())
        {
            issues.push("auth.mount", "is empty; remove it to use the method's name");
        }
        if auth.remove_after_reading.is_some() && !matches!(method, Approle | Jwt) {
            issues.push(
                "auth.remove_after_reading",
                format!("is not used by method {method} (only approle and jwt); remove it"),
            );
        }
        if method == Token && auth.mount.is_some() {
            issues.push("auth.mount", "is not used by method token; remove it");
        }
    }

    /// Each token sink names a file of its own; `destinations` collects them.
    fn validate_sinks<'a>(
        &'a self,
        issues: &mut Issues,
        destinations: &mut BTreeMap<&'a Path, String>,
    ) {
        for (i, sink) in self.token_sinks.iter().enumerate() {
            let key = format!("token_sinks[{i}]");
            let path = sink.path.as_path();
            if path.as_os_str().is_empty() || path.file_name().is_none() {
                issues.push(
                    format!("{key}.path"),
                    "must name the file the token is written to",
                );
            } else if let Some(first) = destinations.get(path) {
                issues.push(
                    format!("{key}.path"),
                    format!("{} is also the destination of {first}", path.display()),
                );
            } else {
                destinations.insert(path, key);
            }
        }
    }

    fn validate_outputs(&self, issues: &mut Issues) {
        if self.templates.is_empty() && self.secrets.is_empty() && self.token_sinks.is_empty() {
            issues.push(
                "templates",
                "nothing to render: add templates, secrets or token_sinks",
            );
        }
        let mut names: BTreeMap<&str, String> = BTreeMap::new();
        let mut destinations: BTreeMap<&Path, String> = BTreeMap::new();
        self.validate_sinks(issues, &mut destinations);
        if self
            .pid_file
            .as_ref()
            .is_some_and(|p| p.file_name().is_none())
        {
            issues.push("pid_file", "must name a file");
        }
        for (i, t) in self.templates.iter().enumerate() {
            let key = format!("templates[{i}]");
            check_name(issues, &key, &t.name, &mut names);
            check_destination(issues, &key, &t.destination, &mut destinations);
            match (&t.contents, &t.source) {
                (Some(_), Some(_)) => issues.push(&key, "has both contents and source; keep one"),
                (None, None) => issues.push(&key, "needs contents or source"),
                (None, Some(source)) if source.as_os_str().is_empty() => {
                    issues.push(format!("{key}.source"), "is empty; name the template file")
                }
                _ => {}
            }
            match t.syntax {
                TemplateSyntax::ConsulTemplate => {
                    let (left, right) = (
                        t.left_delimiter.as_deref().unwrap_or(""),
                        t.right_delimiter.as_deref().unwrap_or(""),
                    );
                    if let Some(contents) = &t.contents
                        && let Err(problem) = crate::consul_template::check(contents, left, right)
                    {
                        issues.push(format!("{key}.contents"), problem.to_string());
                    }
                }
                TemplateSyntax::Jinja => {
                    for (field, set) in [
                        ("left_delimiter", t.left_delimiter.is_some()),
                        ("right_delimiter", t.right_delimiter.is_some()),
                        ("error_on_missing_key", t.error_on_missing_key.is_some()),
                    ] {
                        if set {
                            issues.push(
                                format!("{key}.{field}"),
                                "applies to consul-template templates only; set syntax: consul-template or remove it",
                            );
                        }
                    }
                }
            }
        }
        for (i, s) in self.secrets.iter().enumerate() {
            let key = format!("secrets[{i}]");
            check_name(issues, &key, &s.name, &mut names);
            check_destination(issues, &key, &s.destination, &mut destinations);
            if s.path.trim_matches('/').is_empty() {
                issues.push(
                    format!("{key}.path"),
                    "is empty; name the Vault path to read",
                );
            }
        }
    }
}

/// A Vault path an env entry reads: it becomes a string in a consul-template template, and its
/// version is given apart.
fn check_env_path(path: &str) -> Result<(), &'static str> {
    if path.trim_matches('/').trim().is_empty() {
        Err("is empty; name the Vault path to read, such as secret/data/app/db")
    } else if path
        .chars()
        .any(|c| c.is_control() || c == '"' || c == '\\' || c == '`')
    {
        Err("holds a quote, backslash or control character, which no Vault path has")
    } else if path.contains('?') {
        Err("holds a query; give a KV v2 version with version: N")
    } else {
        Ok(())
    }
}

fn check_name<'a>(
    issues: &mut Issues,
    key: &str,
    name: &'a str,
    names: &mut BTreeMap<&'a str, String>,
) {
    let valid = name.len() <= 253
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if !valid {
        issues.push(
            format!("{key}.name"),
            format!("{name:?} is not a valid name: use letters, digits, '.', '_' and '-', starting with a letter or digit"),
        );
    } else if let Some(first) = names.get(name) {
        issues.push(
            format!("{key}.name"),
            format!("{name:?} is also the name of {first}"),
        );
    } else {
        names.insert(name, key.to_owned());
    }
}

fn check_destination<'a>(
    issues: &mut Issues,
    key: &str,
    destination: &'a Path,
    destinations: &mut BTreeMap<&'a Path, String>,
) {
    let text = destination.as_os_str().to_string_lossy();
    if destination.as_os_str().is_empty() {
        issues.push(
            format!("{key}.destination"),
            "is empty; name the file to write",
        );
    } else if text.ends_with('/') || destination.file_name().is_none() {
        issues.push(
            format!("{key}.destination"),
            format!(
                "{text:?} names a directory; name the file to write, such as /vault/secrets/db.env"
            ),
        );
    } else if let Some(first) = destinations.get(destination) {
        issues.push(
            format!("{key}.destination"),
            format!(
                "{} is also the destination of {first}",
                destination.display()
            ),
        );
    } else {
        destinations.insert(destination, key.to_owned());
    }
}

#[derive(Default)]
struct Issues(Vec<ConfigIssue>);

impl Issues {
    fn push(&mut self, key: impl Into<String>, problem: impl Into<String>) {
        self.0.push(ConfigIssue {
            key: key.into(),
            problem: problem.into(),
        });
    }

    fn finish(self) -> Result<(), ConfigIssues> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(ConfigIssues(self.0))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::minimal;
    use super::super::*;
    use super::*;

    #[test]
    fn validation_reports_every_problem_with_its_key() {
        let mut config = minimal();
        config.vault.address = "vault:8200".into();
        config.auth.role = None;
        config.auth.token_path = Some("/t".into());
        config.templates.push(TemplateConfig {
            name: "db".into(),
            contents: None,
            source: None,
            destination: "/vault/secrets/db".into(),
            perms: None,
            command: None,
            command_timeout: None,
            ..TemplateConfig::default()
        });
        let issues = config.validate().expect_err("invalid").0;
        let keys: Vec<&str> = issues.iter().map(|i| i.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "vault.address",
                "auth.role",
                "auth.token_path",
                "templates[1].name",
                "templates[1].destination",
                "templates[1]",
            ]
        );
        assert!(issues[3].problem.contains("also the name of templates[0]"));
    }

    #[test]
    fn each_auth_method_requires_its_own_keys() {
        let cases = [
            (AuthMethod::Kubernetes, vec!["auth.role"]),
            (AuthMethod::Jwt, vec!["auth.role"]),
            // The secret ID is optional: a role may not bind one (bind_secret_id=false).
            (AuthMethod::Approle, vec!["auth.role_id_path"]),
            (AuthMethod::Token, vec!["auth.token_path"]),
        ];
        for (method, want) in cases {
            let mut config = minimal();
            config.auth = AuthConfig {
                method,
                mount: None,
                role: None,
                jwt_path: None,
                role_id_path: None,
                secret_id_path: None,
                token_path: None,
                min_backoff: None,
                max_backoff: None,
                remove_after_reading: None,
            };
            let issues = config.validate().expect_err("keys missing").0;
            let keys: Vec<&str> = issues.iter().map(|i| i.key.as_str()).collect();
            assert_eq!(keys, want, "method {method}");
        }
    }

    #[test]
    fn addresses_with_paths_credentials_or_other_schemes_are_refused() {
        let cases = [
            ("https://vault.vault:8200", true),
            ("http://127.0.0.1:8200/", true),
            ("https://user:pw@vault:8200", false),
            ("https://vault:8200/v1", false),
            ("vault:8200", false),
            ("https://", false),
            ("ftp://vault", false),
        ];
        for (address, valid) in cases {
            let mut config = minimal();
            config.vault.address = address.into();
            assert_eq!(config.validate().is_ok(), valid, "{address}");
        }
    }

    #[test]
    fn tls_settings_that_would_be_ignored_are_refused() {
        let mut config = minimal();
        config.vault.ca_cert = Some("/ca.pem".into());
        let issues = config.validate().expect_err("http with a CA").0;
        assert_eq!(issues[0].key, "vault.ca_cert");
        assert!(issues[0].problem.contains("https://"));

        config.vault.address = "https://vault:8200".into();
        assert_eq!(config.validate(), Ok(()));
        config.vault.tls_skip_verify = true;
        let issues = config.validate().expect_err("skip with a CA").0;
        assert!(issues[0].problem.contains("tls_skip_verify"));
    }

    #[test]
    fn a_ca_as_text_must_be_pem_and_cannot_join_a_ca_file() {
        let mut config = minimal();
        config.vault.address = "https://vault:8200".into();
        config.vault.ca_cert_pem =
            Some("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n".into());
        assert_eq!(config.validate(), Ok(()));
        config.vault.ca_cert = Some("/ca.pem".into());
        let issues = config.validate().expect_err("both").0;
        assert_eq!(issues[0].key, "vault.ca_cert_pem");
        assert!(
            issues[0].problem.contains("keep one"),
            "{}",
            issues[0].problem
        );
        config.vault.ca_cert = None;
        config.vault.ca_cert_pem = Some("/etc/ssl/ca.pem".into());
        let issues = config.validate().expect_err("a path, not PEM").0;
        assert!(issues[0].problem.contains("no PEM certificate"));
        config.vault.ca_cert_pem = Some(
            "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n-----BEGIN PRIVATE KEY-----\nMIGH\n-----END PRIVATE KEY-----\n".into(),
        );
        let issues = config.validate().expect_err("a key travels with it").0;
        assert!(
            issues[0].problem.contains("private key"),
            "{}",
            issues[0].problem
        );
    }

    #[test]
    fn namespaces_roles_and_destinations_that_cannot_work_are_refused() {
        let mut config = minimal();
        config.vault.namespace = Some("team a\n".into());
        config.auth.role = Some(" app".into());
        config.templates[0].destination = "/vault/secrets/".into();
        let keys: Vec<String> = config
            .validate()
            .expect_err("invalid")
            .0
            .into_iter()
            .map(|i| i.key)
            .collect();
        assert_eq!(
            keys,
            ["vault.namespace", "auth.role", "templates[0].destination"]
        );
    }

    #[test]
    fn deadlines_are_bounded_and_negative_numbers_explained() {
        let mut config = minimal();
        config.retry.deadline = Some(Duration(time::Duration::from_secs(u64::MAX)));
        assert_eq!(
            config.validate().expect_err("too long").0[0].key,
            "retry.deadline"
        );
        let err = serde_json::from_str::<Duration>("-5").expect_err("negative");
        assert!(err.to_string().contains("-5 is negative"), "{err}");
        assert_eq!(
            serde_json::from_str::<Duration>("1.5").expect("float").0,
            time::Duration::from_millis(1500)
        );
        assert_eq!(
            serde_json::from_str::<Duration>("\"2m\"").expect("text").0,
            time::Duration::from_secs(120)
        );
    }

    #[test]
    fn sidecar_keys_are_checked() {
        let mut config = minimal();
        config.refresh_interval = Some(Duration(time::Duration::from_millis(10)));
        config.listen = Some(0);
        config.metrics_port = Some(0);
        config.renewal_threshold = Some(1.5);
        config.auth.min_backoff = Some(Duration(time::Duration::from_secs(600)));
        config.templates[0].command = Some(vec![String::new()]);
        let keys: Vec<String> = config
            .validate()
            .expect_err("invalid")
            .0
            .into_iter()
            .map(|i| i.key)
            .collect();
        assert_eq!(
            keys,
            [
                "refresh_interval",
                "listen",
                "metrics_port",
                "renewal_threshold",
                "auth.min_backoff",
                "templates[0].command"
            ]
        );
        let mut config = minimal();
        config.listen = Some(8099);
        config.metrics_port = Some(8099);
        let issues = config.validate().expect_err("one port for both").0;
        assert_eq!(issues[0].key, "metrics_port");
        assert!(
            issues[0].problem.contains("also the listen port"),
            "{}",
            issues[0].problem
        );
        config.metrics_port = Some(9102);
        config.validate().expect("two ports");
        let config = minimal();
        assert_eq!(config.refresh_interval(), DEFAULT_REFRESH_INTERVAL);
        assert_eq!(config.auth.backoff(), DEFAULT_LOGIN_BACKOFF);
    }

    #[test]
    fn render_limits_have_defaults_and_bounds() {
        let config = minimal();
        assert_eq!(config.limits.file_bytes(), 4 << 20);
        assert_eq!(config.limits.render_steps(), 10_000_000);
        let cases: &[(Option<u64>, Option<u64>, &[&str])] = &[
            (Some(1), Some(1), &[]),
            (Some(MAX_FILE_BYTES), Some(MAX_RENDER_STEPS), &[]),
            (
                Some(0),
                Some(0),
                &["limits.file_bytes", "limits.render_steps"],
            ),
            (
                Some(MAX_FILE_BYTES + 1),
                Some(MAX_RENDER_STEPS + 1),
                &["limits.file_bytes", "limits.render_steps"],
            ),
        ];
        for (file_bytes, render_steps, want) in cases {
            let mut config = minimal();
            config.limits = LimitsConfig {
                file_bytes: *file_bytes,
                render_steps: *render_steps,
            };
            let keys: Vec<String> = config
                .validate()
                .err()
                .map(|e| e.0.into_iter().map(|i| i.key).collect())
                .unwrap_or_default();
            assert_eq!(keys, *want, "{file_bytes:?} {render_steps:?}");
        }
        let parsed: AgentConfig = serde_json::from_value(serde_json::json!({
            "vault": {"address": "http://127.0.0.1:8200"},
            "auth": {"method": "token", "token_path": "/t"},
            "limits": {"file_bytes": 1024, "render_steps": 5000},
        }))
        .expect("parses");
        assert_eq!(parsed.limits.file_bytes(), 1024);
        assert_eq!(parsed.limits.render_steps(), 5000);
    }

    fn exec_config(env: serde_json::Value, exec: serde_json::Value) -> AgentConfig {
        serde_json::from_value(serde_json::json!({
            "vault": {"address": "http://127.0.0.1:8200"},
            "auth": {"method": "kubernetes", "role": "app"},
            "env": env,
            "exec": exec,
        }))
        .expect("parses")
    }

    fn exec_issues(config: &AgentConfig) -> Vec<String> {
        match config.validate_exec() {
            Ok(()) => Vec::new(),
            Err(issues) => issues.0.iter().map(ToString::to_string).collect(),
        }
    }

    #[test]
    fn an_exec_config_takes_templates_and_paths_with_keys() {
        let config = exec_config(
            serde_json::json!([
                {"name": "DB_PASSWORD", "path": "secret/data/app/db", "key": "password", "version": 2},
                {"name": "_dsn", "contents": "{{ secret('secret/data/app/db').data.user }}"},
                {"name": "CT", "syntax": "consul-template", "contents": "<< .Data >>",
                 "left_delimiter": "<<", "right_delimiter": ">>", "error_on_missing_key": true},
            ]),
            serde_json::json!({"restart_on_secret_changes": "never", "restart_stop_signal": "SIGINT", "restart_stop_grace": "5s"}),
        );
        assert_eq!(exec_issues(&config), Vec::<String>::new());
        let exec = config.exec.as_ref().expect("exec");
        assert_eq!(
            exec.restart_on_secret_changes,
            RestartOnSecretChanges::Never
        );
        assert_eq!(exec.stop_signal(), "INT");
        assert_eq!(exec.stop_grace(), time::Duration::from_secs(5));
        assert_eq!(ExecConfig::default().stop_signal(), "TERM");
        assert_eq!(ExecConfig::default().stop_grace(), DEFAULT_STOP_GRACE);
        // hydrant agent reads no env: it says which command does.
        let issues = config.validate().expect_err("not for the agent");
        assert!(
            issues
                .to_string()
                .contains("env: is read by hydrant exec only"),
            "{issues}"
        );
    }

    #[test]
    fn exec_configs_that_cannot_work_are_refused_at_their_keys() {
        let config = exec_config(
            serde_json::json!([
                {"name": "1X", "contents": "x"},
                {"name": "A-B", "contents": "x"},
                {"name": "OK", "contents": "x", "path": "secret/data/a", "key": "k"},
                {"name": "OK", "contents": "x"},
                {"name": "NOKEY", "path": "secret/data/a"},
                {"name": "QUOTE", "path": "secret/data/\"a", "key": "k"},
                {"name": "QUERY", "path": "secret/data/a?version=1", "key": "k", "version": 0},
                {"name": "STRAY", "contents": "x", "key": "k", "left_delimiter": "<<"},
                {"name": "NONE"},
            ]),
            serde_json::json!({"command": [""], "restart_stop_signal": "SIGNOPE", "restart_stop_grace": "0s"}),
        );
        let issues = exec_issues(&config);
        let keys: Vec<&str> = issues
            .iter()
            .map(|i| i.split(": ").next().unwrap_or(""))
            .collect();
        assert_eq!(
            keys,
            [
                "env[0].name",
                "env[1].name",
                "env[2]",
                "env[3].name",
                "env[4].key",
                "env[5].path",
                "env[6].path",
                "env[6].version",
                "env[7].key",
                "env[7].left_delimiter",
                "env[8]",
                "exec.command",
                "exec.restart_stop_signal",
                "exec.restart_stop_grace",
            ],
            "{issues:#?}"
        );
        let mut files = minimal();
        files.env = config.env[..1].to_vec();
        files.env[0].name = "A".into();
        let issues = exec_issues(&files);
        assert!(
            issues
                .iter()
                .any(|i| i.starts_with("templates: is not used by hydrant exec")),
            "{issues:?}"
        );
        let mut empty = exec_config(serde_json::json!([]), serde_json::json!(null));
        empty.exec = None;
        assert!(exec_issues(&empty)[0].starts_with("env: nothing to put in the environment"));
    }

    #[test]
    fn env_names_are_what_a_shell_reads_back() {
        for name in ["A", "_", "DB_PASSWORD", "a1", "_9"] {
            assert!(is_env_name(name), "{name}");
        }
        for name in ["", "1A", "A-B", "A.B", "A B", "Ä", "A=B"] {
            assert!(!is_env_name(name), "{name}");
        }
    }
}
