//! Vault policies and Kubernetes-auth roles from a git repository, per namespace, with
//! guardrails: a namespace may grant only its own paths and bind only its own service accounts.
//! This module reads and checks the repository (`hydrant policy lint`); nothing here speaks to
//! Vault.

pub mod acl;
pub mod apply;
pub mod guard;
pub mod plan;
pub mod repo;

#[cfg(test)]
mod tests;

use std::fmt;
use std::path::{Path, PathBuf};

use injector::values::Duration;
use serde::Deserialize;

pub use repo::{Desired, DesiredPolicy, DesiredRole};

/// `hydrant policy`'s flags.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// `hydrant policy` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Parse and check every file offline: for CI on the policy repository.
    Lint {
        /// The repository's directory.
        dir: PathBuf,
    },
    /// Compare with Vault and print the plan: creates, updates (with a diff) and deletes.
    /// Nothing is written.
    Plan(VaultArgs),
    /// Apply the plan: deletes only what hydrant owns, at most max_deletions.
    Apply(VaultArgs),
}

/// `hydrant policy plan` and `apply`.
#[derive(Debug, clap::Args)]
pub struct VaultArgs {
    /// The repository's directory.
    pub dir: PathBuf,
    /// Take Vault's address, TLS settings and login from this agent config (otherwise
    /// VAULT_ADDR, VAULT_TOKEN or ~/.vault-token, VAULT_CACERT, VAULT_NAMESPACE,
    /// VAULT_TLS_SERVER_NAME and VAULT_SKIP_VERIFY, or their BAO_* spelling).
    #[arg(long, value_name = "FILE")]
    pub agent_config: Option<PathBuf>,
}

/// `hydrant policy`: lints, plans or applies, and prints the summary or the plan.
pub fn command(args: Args, env: &dyn crate::env::Env) -> anyhow::Result<()> {
    let text = match args.command {
        Command::Lint { dir } => lint(&dir)?,
        Command::Plan(a) => plan_command(&a.dir, a.agent_config.as_deref(), env, false)?,
        Command::Apply(a) => plan_command(&a.dir, a.agent_config.as_deref(), env, true)?,
    };
    std::io::Write::write_all(&mut std::io::stdout(), text.as_bytes())?;
    Ok(())
}

/// `hydrant-policy.yaml`: what every namespace may do.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RepoSettings {
    /// Vault names are `<prefix>-<namespace>-<name>`; nothing outside the prefix is touched.
    pub prefix: String,
    /// The Kubernetes auth mount the roles live under.
    #[serde(default = "default_mount")]
    pub auth_mount: String,
    /// Path templates a namespace's policies may grant; `{{ namespace }}` is its name.
    pub allowed_paths: Vec<String>,
    /// Namespaces that get the defaults even without a directory of their own.
    #[serde(default)]
    pub namespaces: Vec<String>,
    /// Policies outside the prefix that roles may also attach.
    #[serde(default)]
    pub platform_policies: Vec<String>,
    /// The audience roles get when their file gives none.
    #[serde(default)]
    pub audience: Option<String>,
    /// Whether roles leave Vault's `default` policy out of their tokens.
    #[serde(default)]
    pub token_no_default_policy: bool,
    /// The longest `ttl` a role may ask for, and the `ttl` of a role that asks for none.
    #[serde(default)]
    pub ttl_cap: Option<Duration>,
    /// The longest `max_ttl` a role may ask for, and the `max_ttl` of a role that asks for none.
    #[serde(default)]
    pub max_ttl_cap: Option<Duration>,
    /// The most objects one apply may delete.
    #[serde(default = "default_max_deletions")]
    pub max_deletions: usize,
    /// Explicit exceptions to the guardrails.
    #[serde(default)]
    pub allow: Allow,
    /// The KV v2 path of the ownership index (default `secret/data/hydrant/policy-index/<prefix>`).
    #[serde(default)]
    pub ownership_index: Option<String>,
}

/// Guardrails the platform team may lift, each explicitly.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Allow {
    /// Let policies grant `sudo`.
    #[serde(default)]
    pub sudo: bool,
    /// Let policies grant paths under `sys/`, `auth/` and `identity/` (when allowed_paths does).
    #[serde(default)]
    pub system_paths: bool,
    /// Let policies use `+` segments.
    #[serde(default)]
    pub plus_segments: bool,
    /// Let roles bind every service account of their namespace (`*`).
    #[serde(default)]
    pub any_service_account: bool,
}

fn default_mount() -> String {
    "kubernetes".to_owned()
}

fn default_max_deletions() -> usize {
    10
}

impl RepoSettings {
    /// Parses and checks the settings file.
    pub fn parse(text: &str) -> Result<RepoSettings, String> {
        let settings: RepoSettings = serde_saphyr::from_str(text).map_err(|e| e.to_string())?;
        if !repo::valid_name(&settings.prefix) {
            return Err(format!(
                "prefix {:?} is not a name (lower-case letters, digits and -)",
                settings.prefix
            ));
        }
        for (key, cap) in [
            ("ttl_cap", settings.ttl_cap),
            ("max_ttl_cap", settings.max_ttl_cap),
        ] {
            if cap.is_some_and(|c| c.0.is_zero()) {
                return Err(format!(
                    "{key} 0s caps nothing (Vault reads 0 as the mount's default, 768h unless tuned); give a duration such as 1h, or leave it out"
                ));
            }
        }
        if let (Some(ttl), Some(max)) = (settings.ttl_cap, settings.max_ttl_cap)
            && ttl.0 > max.0
        {
            return Err(format!(
                "ttl_cap {ttl} is longer than max_ttl_cap {max}; a token cannot outlive its max TTL"
            ));
        }
        if settings.allowed_paths.is_empty() {
            return Err("allowed_paths is empty; list the path templates namespaces may use, such as secret/data/{{ namespace }}/*".to_owned());
        }
        for template in &settings.allowed_paths {
            let expanded = template.replace("{{ namespace }}", "x");
            if expanded.contains("{{") {
                return Err(format!(
                    "allowed_paths: {template:?} uses a variable other than {{{{ namespace }}}}"
                ));
            }
            let Some((_, after)) = template.split_once("{{ namespace }}") else {
                return Err(format!(
                    "allowed_paths: {template:?} does not name the namespace; every namespace could use it"
                ));
            };
            // A namespace name is letters, digits and '-': what follows it must not be one of
            // those, or namespace team could use team-a's paths (team-a-admin starts with team-).
            if after
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphanumeric() || c == '-' || c == '*' || c == '+')
            {
                return Err(format!(
                    "allowed_paths: {template:?}: after {{{{ namespace }}}} comes {:?}, so one namespace's paths could start with another's name; follow it with /, _ or . (database/creds/{{{{ namespace }}}}_*)",
                    after.chars().next().unwrap_or_default()
                ));
            }
        }
        Ok(settings)
    }

    /// The KV v2 path of the ownership index.
    pub fn index_path(&self) -> String {
        self.ownership_index
            .clone()
            .unwrap_or_else(|| format!("secret/data/hydrant/policy-index/{}", self.prefix))
    }

    /// The path templates for one namespace.
    pub fn allowed_paths(&self, namespace: &str) -> Vec<String> {
        self.allowed_paths
            .iter()
            .map(|t| t.replace("{{ namespace }}", namespace))
            .collect()
    }

    /// The Vault name of a namespace's policy or role.
    pub fn vault_name(&self, namespace: &str, name: &str) -> Result<String, String> {
        if name.chars().any(|c| c.is_ascii_uppercase()) {
            return Err(format!(
                "{name:?} has upper case, which Vault lower-cases silently; use lower case"
            ));
        }
        if !repo::valid_name(name) {
            return Err(format!(
                "{name:?} is not a name (lower-case letters, digits and -)"
            ));
        }
        let full = format!("{}-{namespace}-{name}", self.prefix);
        if full.len() > repo::MAX_NAME {
            return Err(format!(
                "the Vault name {full} is longer than {} characters",
                repo::MAX_NAME
            ));
        }
        Ok(full)
    }
}

/// Declares [`Guardrail`], [`Guardrail::ALL`] and [`Guardrail::name`] from one list, so that no rule can be
/// missing from `ALL` (the controller's refusal series at zero, the README's table).
macro_rules! rules {
    ($($(#[$doc:meta])* $variant:ident => $name:literal,)*) => {
        /// The rule a repository problem breaks: a guardrail, or a check of the repository's shape. Its name is
        /// what the README's table, the problem lines and
        /// `hydrant_controller_guardrail_refusals_total{rule}` show.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Guardrail {
            $($(#[$doc])* $variant,)*
        }

        impl Guardrail {
            /// Every rule, in the README's order.
            pub const ALL: &[Guardrail] = &[$(Guardrail::$variant,)*];

            /// The rule's name, a fixed label.
            pub fn name(self) -> &'static str {
                match self {
                    $(Guardrail::$variant => $name,)*
                }
            }
        }
    };
}

rules! {
    /// A policy path outside the namespace's `allowed_paths`.
    AllowedPaths => "allowed-paths",
    /// A `+` segment, which matches any namespace's name.
    NoPlusSegments => "no-plus-segments",
    /// `..`, `.` or empty segments, spaces around a path.
    PathSyntax => "path-syntax",
    /// `sys/`, `auth/`, `identity/`.
    NoSystemPaths => "no-system-paths",
    /// The `sudo` capability.
    NoSudo => "no-sudo",
    /// A role binding another namespace, `*`, or a namespace selector.
    OwnNamespace => "own-namespace",
    /// `service_accounts: ["*"]`.
    NoWildcardServiceAccount => "no-wildcard-service-account",
    /// A role that names no service account.
    ServiceAccounts => "service-accounts",
    /// A role attaching a policy that is neither its namespace's nor a platform policy.
    OwnPolicies => "own-policies",
    /// A role without an audience.
    Audience => "audience",
    /// TTLs over the caps, `0s`, or `ttl` over `max_ttl`.
    TtlCap => "ttl-cap",
    /// Names Vault would change or two files would share.
    Names => "names",
    /// HCL or YAML that does not parse, unknown keys.
    Parse => "parse",
    /// Anything under `defaults/` or `namespaces/` that hydrant does not read.
    Layout => "layout",
    /// `hydrant-policy.yaml` missing, a symlink, or invalid.
    Settings => "settings",
}

impl fmt::Display for Guardrail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A problem in the repository: the file, the line when known, what is wrong, the rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// The file, relative to the repository.
    pub file: PathBuf,
    /// The line.
    pub line: Option<usize>,
    /// What is wrong.
    pub message: String,
    /// The rule (`allowed-paths`, `own-namespace` ...), or `parse`, `layout`, `names`.
    pub rule: Guardrail,
}

impl Problem {
    fn new(
        file: impl AsRef<Path>,
        line: Option<usize>,
        message: String,
        rule: Guardrail,
    ) -> Problem {
        Problem {
            file: file.as_ref().to_owned(),
            line,
            message,
            rule,
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        write!(f, ": {} [{}]", self.message, self.rule)
    }
}

/// Why a policy command failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The repository has problems; nothing was applied.
    #[error("{} problem{} in the policy repository; nothing is applied:\n{}", .0.len(), if .0.len() == 1 { "" } else { "s" }, .0.iter().map(|p| format!("  {p}")).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<Problem>),
    /// No Vault to plan against.
    #[error("no Vault: set VAULT_ADDR and VAULT_TOKEN, or pass --agent-config")]
    NoVault,
    /// The agent config given for Vault is invalid.
    #[error("agent config invalid: {0}")]
    AgentConfig(String),
    /// Vault refused or failed; what was applied before is listed in the log.
    #[error("{0}")]
    Vault(crate::vault::Error),
    /// The plan deletes more than the settings allow; nothing was applied.
    #[error(
        "the plan deletes {deletions} objects, more than max_deletions ({max}) allows; nothing is applied. Check the repository, or raise max_deletions in hydrant-policy.yaml"
    )]
    TooManyDeletions {
        /// Deletions in the plan.
        deletions: usize,
        /// The cap.
        max: usize,
    },
}

/// `hydrant policy plan DIR` (`apply: false`: nothing is written) and `hydrant policy apply
/// DIR`: the plan against Vault, as text, applied when asked.
pub fn plan_command(
    dir: &Path,
    agent_config: Option<&Path>,
    env: &dyn crate::env::Env,
    apply: bool,
) -> Result<String, Error> {
    let (settings, desired) = repo::load(dir).map_err(Error::Invalid)?;
    apply::blocking(agent_config, env, async |client| {
        let actual = apply::read_actual(client, &settings).await?;
        let plan = plan::plan(&desired, &actual);
        if apply {
            apply::apply(client, &settings, &desired, &actual, &plan, None).await?;
        }
        Ok(plan.to_string())
    })
}

/// `hydrant policy lint DIR`: reads and checks everything; returns the summary line.
pub fn lint(dir: &Path) -> Result<String, Error> {
    let (_, desired) = repo::load(dir).map_err(Error::Invalid)?;
    let namespaces: std::collections::BTreeSet<&str> = desired
        .policies
        .values()
        .map(|p| p.namespace.as_str())
        .chain(desired.roles.values().map(|r| r.namespace.as_str()))
        .collect();
    Ok(format!(
        "ok: {} namespaces, {} policies, {} roles\n",
        namespaces.len(),
        desired.policies.len(),
        desired.roles.len()
    ))
}
