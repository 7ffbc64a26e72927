//! The guardrails: what a namespace's policies may grant and how its roles may bind. Pure
//! functions of the parsed files and the settings; every refusal names its rule.

use std::collections::BTreeSet;

use super::acl::Policy;
use super::repo::RoleFile;
use super::{Guardrail, RepoSettings};
use injector::values::Duration;

/// A refusal: the line (when known), what is wrong, and the rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// The line in the file.
    pub line: Option<usize>,
    /// What is wrong.
    pub message: String,
    /// The rule's name, as the README lists them.
    pub rule: Guardrail,
}

/// Path prefixes no namespace may grant unless the settings allow system paths.
pub const SYSTEM_PREFIXES: [&str; 3] = ["sys/", "auth/", "identity/"];

/// Checks every rule of `namespace`'s policy against the settings.
pub fn check_policy(namespace: &str, policy: &Policy, settings: &RepoSettings) -> Vec<Refusal> {
    let allowed = settings.allowed_paths(namespace);
    let mut refusals = Vec::new();
    for rule in &policy.rules {
        let refuse = |message: String, rule_name: Guardrail| Refusal {
            line: Some(rule.line),
            message,
            rule: rule_name,
        };
        let path = rule.path.as_str();
        if rule.capabilities.contains("sudo") && !settings.allow.sudo {
            refusals.push(refuse(
                format!("path {path:?} grants sudo, which only the platform grants"),
                Guardrail::NoSudo,
            ));
        }
        if !settings.allow.system_paths
            && let Some(prefix) = SYSTEM_PREFIXES
                .iter()
                .find(|p| path.trim_start_matches('/').starts_with(*p))
        {
            refusals.push(refuse(
                format!("path {path:?} is under {prefix}, which only the platform grants"),
                Guardrail::NoSystemPaths,
            ));
            continue;
        }
        if path != path.trim()
            || path.contains("//")
            || path
                .split('/')
                .any(|segment| segment == ".." || segment == ".")
        {
            refusals.push(refuse(
                format!("path {path:?} has spaces around it, an empty, . or .. segment; write the path as Vault stores it"),
                Guardrail::PathSyntax,
            ));
            continue;
        }
        if !settings.allow.plus_segments && path.split('/').any(|s| s == "+") {
            refusals.push(refuse(
                format!(
                    "path {path:?} has a + segment, which matches every namespace's name there"
                ),
                Guardrail::NoPlusSegments,
            ));
            continue;
        }
        if !allowed.iter().any(|t| covers(t, path)) {
            refusals.push(refuse(
                format!(
                    "path {path:?} is outside what namespace {namespace} may use ({})",
                    allowed.join(", ")
                ),
                Guardrail::AllowedPaths,
            ));
        }
    }
    refusals
}

/// Whether every path `path` can match is one the template `allowed` matches. A template
/// ending in `*` allows every path that starts with what comes before the `*` (a `*` in the
/// path comes after that prefix, so it cannot reach beyond it); a template without `*` allows
/// itself alone.
pub fn covers(allowed: &str, path: &str) -> bool {
    match allowed.strip_suffix('*') {
        Some(prefix) => {
            let literal = path.strip_suffix('*').unwrap_or(path);
            literal.starts_with(prefix) && !literal.contains('*')
        }
        None => path == allowed,
    }
}

/// Checks a role: bound to its own namespace, no wildcard service account, its own policies
/// and the platform's only, an audience, TTLs under the caps.
pub fn check_role(
    namespace: &str,
    role: &RoleFile,
    own_policies: &BTreeSet<String>,
    settings: &RepoSettings,
) -> Vec<Refusal> {
    let mut refusals = Vec::new();
    // Each refusal points at the line of the key it is about, when the file has that key.
    let mut refuse = |key: &str, message: String, rule: Guardrail| {
        refusals.push(Refusal {
            line: role.lines.get(key).copied(),
            message,
            rule,
        })
    };
    if let Some(bound) = &role.bound_service_account_namespaces
        && bound.iter().any(|n| n != namespace)
    {
        refuse(
            "bound_service_account_namespaces",
            format!(
                "binds namespaces [{}]; a role binds its own namespace, {namespace}, only (leave the key out)",
                bound.join(", ")
            ),
            Guardrail::OwnNamespace,
        );
    }
    if role.bound_service_account_namespace_selector.is_some() {
        refuse(
            "bound_service_account_namespace_selector",
            "has a namespace selector; a role binds its own namespace only".to_owned(),
            Guardrail::OwnNamespace,
        );
    }
    if role.service_accounts.is_empty() {
        refuse(
            "service_accounts",
            "names no service account; list the ones that may log in".to_owned(),
            Guardrail::ServiceAccounts,
        );
    }
    if role.service_accounts.iter().any(|s| s.contains('*')) && !settings.allow.any_service_account
    {
        refuse(
            "service_accounts",
            "binds every service account (*); name them".to_owned(),
            Guardrail::NoWildcardServiceAccount,
        );
    }
    for policy in &role.policies {
        if !own_policies.contains(policy) && !settings.platform_policies.contains(policy) {
            refuse(
                "policies",
                format!(
                    "attaches policy {policy:?}, which is neither namespace {namespace}'s own nor a platform policy ({})",
                    settings.platform_policies.join(", ")
                ),
                Guardrail::OwnPolicies,
            );
        }
    }
    if role
        .audience
        .as_deref()
        .or(settings.audience.as_deref())
        .is_none_or(|a| a.trim().is_empty())
    {
        refuse(
            "audience",
            "has no audience; set audience (or a default in hydrant-policy.yaml)".to_owned(),
            Guardrail::Audience,
        );
    }
    for (key, given, cap) in [
        ("ttl", role.ttl, settings.ttl_cap),
        ("max_ttl", role.max_ttl, settings.max_ttl_cap),
    ] {
        if given.is_some_and(|d| d.0.is_zero()) {
            let instead = match cap {
                Some(cap) => {
                    format!("give a duration up to {cap}, or leave {key} out to get {cap}")
                }
                None => "give a duration".to_owned(),
            };
            refuse(
                key,
                format!(
                    "{key} 0s is Vault's \"the mount's default\" (768h unless tuned), not a short TTL; {instead}"
                ),
                Guardrail::TtlCap,
            );
        }
    }
    if let (Some(ttl), Some(cap)) = (role.ttl, settings.ttl_cap)
        && ttl.0 > cap.0
    {
        refuse(
            "ttl",
            format!("ttl {ttl} is over the cap of {cap}"),
            Guardrail::TtlCap,
        );
    }
    if let (Some(max), Some(cap)) = (role.max_ttl, settings.max_ttl_cap)
        && max.0 > cap.0
    {
        refuse(
            "max_ttl",
            format!("max_ttl {max} is over the cap of {cap}"),
            Guardrail::TtlCap,
        );
    }
    if let (Some(ttl), (_, Some(max))) = (role.ttl, ttls(role, settings))
        && !max.0.is_zero()
        && ttl.0 > max.0
    {
        let whose = if role.max_ttl.is_some() {
            "max_ttl"
        } else {
            "the max_ttl cap"
        };
        refuse(
            "ttl",
            format!("ttl {ttl} is longer than {whose} {max}"),
            Guardrail::TtlCap,
        );
    }
    refusals
}

/// The TTL and max TTL a role's tokens get: the file's, else the settings' caps; `None` (Vault's
/// 0, the mount's default) only where the settings have no cap either.
pub fn ttls(role: &RoleFile, settings: &RepoSettings) -> (Option<Duration>, Option<Duration>) {
    (
        role.ttl.or(settings.ttl_cap),
        role.max_ttl.or(settings.max_ttl_cap),
    )
}
