//! Reading a pod's annotations, in either family: vault-k8s's `vault.hashicorp.com/*` (accepted
//! unchanged) and hydrant's own `hydrant.dev/*`. Both become one [`InjectionRequest`]; what hydrant cannot
//! honour is refused by name, and what it accepts but does not need is reported as a warning.

use std::collections::BTreeMap;

use crate::Denial;
use crate::agent_config::AuthMethod;
use crate::settings::InjectorSettings;
use crate::values::parse_bool;

pub mod env;
mod fields;
mod hydrant;
pub mod keys;
mod request;
mod snapshot;
mod template;
mod vault_k8s;

use keys::hydrant as h;
use keys::vault_k8s as k;

pub use fields::{MAX_PATCH_OPERATIONS, SHELL};
pub use request::{
    ConsulTemplateSource, DEFAULT_MOUNT_PATH, InjectionRequest, Output, OutputSource,
    QuantityOverride, ResourceOverrides, TOKEN_FILE,
};
pub use snapshot::{SNAPSHOT_FORMATS, SNAPSHOT_OUTPUT, SnapshotRequest};
pub use template::{check_consul_template, check_template};

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

/// Reads every annotation of `family` and checks that together they say enough: the role
/// the pod logs in with, when its auth method needs one, and at least one file (the token
/// file counts, as in vault-k8s) or variable. `references`: the pod's containers hold
/// bank-vaults' `vault:` values, which are variables asked for too.
pub fn parse(
    annotations: &BTreeMap<String, String>,
    family: Family,
    settings: &InjectorSettings,
    references: bool,
) -> Result<InjectionRequest, Denial> {
    let request = read(annotations, family, settings)?;
    let method = request.auth_method.unwrap_or(settings.auth_method);
    // With a ConfigMap, its configuration names the method, the role and the files.
    if request.config_map.is_some() {
        return Ok(request);
    }
    if matches!(method, AuthMethod::Kubernetes | AuthMethod::Jwt) && request.role.is_none() {
        let key = match family {
            Family::VaultK8s => k::ROLE,
            Family::Hydrant => h::ROLE,
        };
        return Err(Denial::new(
            crate::Reason::MissingAnnotation,
            format!("{key} is required: name the Vault role the pod logs in with ({method} auth)"),
        ));
    }
    if !request.needs_agent() && request.env.is_empty() && !references {
        let hint = match family {
            Family::VaultK8s => format!(
                "{}<name> (or {}: \"true\" for the token alone)",
                k::AGENT_INJECT_SECRET_PREFIX,
                k::AGENT_INJECT_TOKEN
            ),
            Family::Hydrant => format!(
                "{}<name> or {}<name> (or, for environment variables, {}<VAR> or a container env value vault:<path>#<key>)",
                h::SECRET_PREFIX,
                h::TEMPLATE_PREFIX,
                h::ENV_PREFIX
            ),
        };
        return Err(Denial::new(
            crate::Reason::MissingAnnotation,
            format!(
                "{} is set but no file is asked for: add {hint}",
                family.inject_key()
            ),
        ));
    }
    Ok(request)
}

/// Reads every annotation of `family`, each on its own. Annotations of the other family are
/// refused: their meaning would be unclear.
fn read(
    annotations: &BTreeMap<String, String>,
    family: Family,
    settings: &InjectorSettings,
) -> Result<InjectionRequest, Denial> {
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
        Family::VaultK8s => vault_k8s::parse(&ours, settings),
        Family::Hydrant => hydrant::parse(&ours),
    }
}

fn is_status(key: &str) -> bool {
    key == Family::VaultK8s.status_key() || key == Family::Hydrant.status_key()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Reason;

    pub(super) fn annotations(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    pub(super) fn settings() -> InjectorSettings {
        InjectorSettings::new(
            "https://vault.vault:8200",
            "ghcr.io/hydrant-dev/hydrant:0.1.0",
        )
    }

    pub(super) fn parse_vault(pairs: &[(&str, &str)]) -> Result<InjectionRequest, Denial> {
        read(&annotations(pairs), Family::VaultK8s, &settings())
    }

    pub(super) fn parse_hydrant(pairs: &[(&str, &str)]) -> Result<InjectionRequest, Denial> {
        read(&annotations(pairs), Family::Hydrant, &settings())
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

    /// Signalling commands become `hydrant signal` (the image has no kill or pkill); other shell
    /// syntax is kept for `/bin/sh -c`, which the mutation refuses unless the agent's image has a
    /// shell; a broken quote is refused here.
    #[test]
    fn commands_become_hydrant_signal_or_a_shell_command() {
        let command_of = |command: &str| {
            parse_vault(&[
                (
                    "vault.hashicorp.com/agent-inject-secret-db",
                    "secret/data/db",
                ),
                ("vault.hashicorp.com/agent-inject-command-db", command),
            ])
            .map(|r| r.outputs[0].command.clone().expect("a command"))
        };
        assert_eq!(
            command_of("kill -HUP $(pidof app)").expect("parses"),
            ["/usr/local/bin/hydrant", "signal", "--name", "app", "HUP"]
        );
        for command in [
            "touch /a && echo",
            "echo x > /f",
            "a | b",
            "sh -c 'reload.sh'",
        ] {
            assert_eq!(
                command_of(command).expect(command),
                ["/bin/sh", "-c", command],
                "{command}"
            );
        }
        let err = command_of("cat '").expect_err("unclosed");
        assert!(
            err.message
                .starts_with("vault.hashicorp.com/agent-inject-command-db: "),
            "{}",
            err.message
        );
        let r = parse_hydrant(&[
            ("hydrant.dev/secret-db", "secret/data/db"),
            ("hydrant.dev/command-db", "/usr/bin/pkill -HUP -f 'my app'"),
            ("hydrant.dev/secret-other", "secret/data/other"),
            ("hydrant.dev/command-other", "/vault/custom/reload --now"),
        ])
        .expect("parses");
        assert_eq!(
            r.outputs[0].command.as_deref(),
            Some(
                &[
                    "/usr/local/bin/hydrant".to_string(),
                    "signal".into(),
                    "--pattern".into(),
                    "my app".into(),
                    "--full".into(),
                    "HUP".into()
                ][..]
            )
        );
        assert_eq!(
            r.outputs[1].command.as_deref(),
            Some(&["/vault/custom/reload".to_string(), "--now".into()][..])
        );
    }

    #[test]
    fn a_pod_names_its_role_and_at_least_one_file() {
        let parsed =
            |family, pairs: &[(&str, &str)]| parse(&annotations(pairs), family, &settings(), false);
        let denial = parsed(
            Family::VaultK8s,
            &[(
                "vault.hashicorp.com/agent-inject-secret-db",
                "secret/data/db",
            )],
        )
        .expect_err("no role");
        assert_eq!(denial.reason, Reason::MissingAnnotation);
        assert!(
            denial
                .message
                .starts_with("vault.hashicorp.com/role is required"),
            "{}",
            denial.message
        );
        let denial = parsed(Family::Hydrant, &[("hydrant.dev/role", "app")]).expect_err("no file");
        assert_eq!(denial.reason, Reason::MissingAnnotation);
        assert!(
            denial.message.contains(
                "no file is asked for: add hydrant.dev/secret-<name> or hydrant.dev/template-<name> (or, for environment variables, hydrant.dev/env-<VAR> or a container env value vault:<path>#<key>)"
            ),
            "{}",
            denial.message
        );
        // The token file alone is enough, as in vault-k8s.
        parsed(
            Family::VaultK8s,
            &[
                ("vault.hashicorp.com/role", "app"),
                ("vault.hashicorp.com/agent-inject-token", "true"),
            ],
        )
        .expect("the token is a file");
        // A variable is enough: from an annotation, or from a container's vault: value.
        parsed(
            Family::Hydrant,
            &[
                ("hydrant.dev/role", "app"),
                ("hydrant.dev/env-DB_PASSWORD", "secret/data/db#password"),
            ],
        )
        .expect("a variable is asked for");
        parse(
            &annotations(&[("hydrant.dev/role", "app")]),
            Family::Hydrant,
            &settings(),
            true,
        )
        .expect("the containers hold vault: values");
        // The token method needs no role.
        parsed(
            Family::Hydrant,
            &[
                ("hydrant.dev/auth-method", "token"),
                ("hydrant.dev/secret-db", "secret/data/db"),
            ],
        )
        .expect("no role needed");
    }
}
