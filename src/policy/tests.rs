//! Policy repository tests: a temporary repository per case, every guardrail refused with its
//! file, line and rule, and the objects a clean repository asks for.

use std::path::Path;

use serde_json::json;

use super::{Error, Guardrail, acl, guard, lint, repo};

const SETTINGS: &str = "prefix: tenant\nallowed_paths:\n  - secret/data/{{ namespace }}/*\n  - secret/metadata/{{ namespace }}/*\nplatform_policies: [platform-read]\naudience: vault\nttl_cap: 1h\nmax_ttl_cap: 24h\n";

/// A repository with the settings above (or `settings`) and these files.
fn repository(settings: Option<&str>, files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join(repo::SETTINGS_FILE),
        settings.unwrap_or(SETTINGS),
    )
    .expect("settings");
    for (path, text) in files {
        let path = dir.path().join(path);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("dirs");
        std::fs::write(path, text).expect("file");
    }
    dir
}

/// Every problem line of linting `files`.
fn problems(files: &[(&str, &str)]) -> Vec<String> {
    let dir = repository(None, files);
    match lint(dir.path()) {
        Ok(summary) => panic!("accepted: {summary}"),
        Err(Error::Invalid(problems)) => problems.iter().map(ToString::to_string).collect(),
        Err(other) => panic!("{other}"),
    }
}

const OK_ROLE: &str = "service_accounts: [app]\npolicies: [read]\n";

#[test]
fn a_clean_repository_asks_for_prefixed_objects_with_defaults_per_namespace() {
    let dir = repository(
        Some(&format!(
            "{SETTINGS}namespaces: [team-c]\ntoken_no_default_policy: true\n"
        )),
        &[
            (
                "defaults/policies/base.hcl",
                "path \"secret/data/{{ namespace }}/*\" { capabilities = [\"read\"] }\n",
            ),
            (
                "namespaces/team-a/policies/read.hcl",
                "path \"secret/metadata/team-a/*\" {\n  capabilities = [\"read\", \"list\"]\n}\n",
            ),
            (
                "namespaces/team-a/roles/app.yaml",
                "service_accounts: [app]\npolicies: [read, base, platform-read]\nttl: 20m\n",
            ),
            (
                "namespaces/team-b/policies/read.hcl",
                "path \"secret/data/team-b/x\" { capabilities = [\"read\"] }\n",
            ),
        ],
    );
    let (settings, desired) = repo::load(dir.path()).expect("clean");
    assert_eq!(settings.prefix, "tenant");
    let names: Vec<&str> = desired.policies.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "tenant-team-a-base",
            "tenant-team-a-read",
            "tenant-team-b-base",
            "tenant-team-b-read",
            "tenant-team-c-base",
        ],
        "two namespaces may use one short name; team-c gets the defaults from the settings"
    );
    assert_eq!(
        desired.policies["tenant-team-c-base"].text,
        "path \"secret/data/team-c/*\" {\n  capabilities = [\"read\"]\n}\n"
    );
    assert_eq!(
        desired.policies["tenant-team-a-read"].text,
        "path \"secret/metadata/team-a/*\" {\n  capabilities = [\"list\", \"read\"]\n}\n",
        "capabilities sorted: the normal form"
    );
    let role = &desired.roles["tenant-team-a-app"].body;
    assert_eq!(role["bound_service_account_namespaces"], json!(["team-a"]));
    assert_eq!(
        role["token_policies"],
        json!(["tenant-team-a-read", "tenant-team-a-base", "platform-read"])
    );
    assert_eq!(role["audience"], "vault");
    assert_eq!(role["token_ttl"], 1200);
    assert_eq!(role["token_no_default_policy"], true);
}

#[test]
fn a_namespace_cannot_grant_itself_another_namespaces_path() {
    assert_eq!(
        problems(&[(
            "namespaces/team-a/policies/steal.hcl",
            "# reads team-b's secrets\npath \"secret/data/team-a/*\" { capabilities = [\"read\"] }\npath \"secret/data/team-b/*\" { capabilities = [\"read\"] }\n"
        )]),
        [
            "namespaces/team-a/policies/steal.hcl:3: path \"secret/data/team-b/*\" is outside what namespace team-a may use (secret/data/team-a/*, secret/metadata/team-a/*) [allowed-paths]"
        ]
    );
}

#[test]
fn globs_that_escape_the_namespace_are_refused() {
    let lines = problems(&[(
        "namespaces/team-a/policies/globs.hcl",
        "path \"secret/data/team-a*\" { capabilities = [\"read\"] }\npath \"secret/data/+/db\" { capabilities = [\"read\"] }\npath \"secret/*\" { capabilities = [\"read\"] }\n",
    )]);
    assert_eq!(
        lines,
        [
            "namespaces/team-a/policies/globs.hcl:1: path \"secret/data/team-a*\" is outside what namespace team-a may use (secret/data/team-a/*, secret/metadata/team-a/*) [allowed-paths]",
            "namespaces/team-a/policies/globs.hcl:2: path \"secret/data/+/db\" has a + segment, which matches every namespace's name there [no-plus-segments]",
            "namespaces/team-a/policies/globs.hcl:3: path \"secret/*\" is outside what namespace team-a may use (secret/data/team-a/*, secret/metadata/team-a/*) [allowed-paths]",
        ]
    );
}

#[test]
fn system_paths_and_sudo_are_refused_unless_allowed() {
    let files = [(
        "namespaces/team-a/policies/admin.hcl",
        "path \"sys/policies/acl/*\" { capabilities = [\"update\"] }\npath \"secret/data/team-a/*\" { capabilities = [\"read\", \"sudo\"] }\n",
    )];
    assert_eq!(
        problems(&files),
        [
            "namespaces/team-a/policies/admin.hcl:1: path \"sys/policies/acl/*\" is under sys/, which only the platform grants [no-system-paths]",
            "namespaces/team-a/policies/admin.hcl:2: path \"secret/data/team-a/*\" grants sudo, which only the platform grants [no-sudo]",
        ]
    );
    let allowed = repository(
        Some(
            "prefix: tenant\naudience: vault\nallowed_paths:\n  - secret/data/{{ namespace }}/*\n  - sys/policies/acl/x{{ namespace }}\nallow: {sudo: true, system_paths: true}\n",
        ),
        &[(
            "namespaces/team-a/policies/admin.hcl",
            "path \"secret/data/team-a/*\" { capabilities = [\"read\", \"sudo\"] }\npath \"sys/policies/acl/xteam-a\" { capabilities = [\"read\"] }\n",
        )],
    );
    assert!(lint(allowed.path()).is_ok(), "explicitly allowed");
}

#[test]
fn a_role_binds_its_own_namespace_only() {
    let lines = problems(&[
        (
            "namespaces/team-a/policies/read.hcl",
            "path \"secret/data/team-a/*\" { capabilities = [\"read\"] }\n",
        ),
        (
            "namespaces/team-a/roles/other.yaml",
            "service_accounts: [app]\npolicies: [read]\nbound_service_account_namespaces: [team-b]\n",
        ),
        (
            "namespaces/team-a/roles/selector.yaml",
            "service_accounts: [app]\npolicies: [read]\nbound_service_account_namespace_selector: {matchLabels: {team: b}}\n",
        ),
    ]);
    assert_eq!(
        lines,
        [
            "namespaces/team-a/roles/other.yaml:3: binds namespaces [team-b]; a role binds its own namespace, team-a, only (leave the key out) [own-namespace]",
            "namespaces/team-a/roles/selector.yaml:3: has a namespace selector; a role binds its own namespace only [own-namespace]",
        ]
    );
}

#[test]
fn roles_attach_own_or_platform_policies_name_service_accounts_and_stay_under_the_caps() {
    let lines = problems(&[
        (
            "namespaces/team-a/policies/read.hcl",
            "path \"secret/data/team-a/*\" { capabilities = [\"read\"] }\n",
        ),
        (
            "namespaces/team-b/policies/admin.hcl",
            "path \"secret/data/team-b/*\" { capabilities = [\"read\"] }\n",
        ),
        (
            "namespaces/team-a/roles/borrow.yaml",
            "service_accounts: [app]\npolicies: [read, admin, tenant-team-b-admin]\n",
        ),
        (
            "namespaces/team-a/roles/all.yaml",
            "service_accounts: [\"*\"]\npolicies: [read]\n",
        ),
        (
            "namespaces/team-a/roles/long.yaml",
            "service_accounts: [app]\npolicies: [read]\nttl: 2h\nmax_ttl: 48h\n",
        ),
    ]);
    assert_eq!(
        lines,
        [
            "namespaces/team-a/roles/all.yaml:1: binds every service account (*); name them [no-wildcard-service-account]",
            "namespaces/team-a/roles/borrow.yaml:2: attaches policy \"admin\", which is neither namespace team-a's own nor a platform policy (platform-read) [own-policies]",
            "namespaces/team-a/roles/borrow.yaml:2: attaches policy \"tenant-team-b-admin\", which is neither namespace team-a's own nor a platform policy (platform-read) [own-policies]",
            "namespaces/team-a/roles/long.yaml:3: ttl 2h is over the cap of 1h [ttl-cap]",
            "namespaces/team-a/roles/long.yaml:4: max_ttl 2days is over the cap of 1day [ttl-cap]",
        ]
    );
}

#[test]
fn a_role_needs_an_audience() {
    let dir = repository(
        Some(&SETTINGS.replace("audience: vault\n", "")),
        &[
            (
                "namespaces/team-a/policies/read.hcl",
                "path \"secret/data/team-a/*\" { capabilities = [\"read\"] }\n",
            ),
            ("namespaces/team-a/roles/app.yaml", OK_ROLE),
        ],
    );
    let Err(Error::Invalid(problems)) = lint(dir.path()) else {
        panic!("accepted")
    };
    assert_eq!(
        problems[0].to_string(),
        "namespaces/team-a/roles/app.yaml: has no audience; set audience (or a default in hydrant-policy.yaml) [audience]"
    );
}

#[test]
fn names_are_lower_case_and_files_must_parse() {
    let lines = problems(&[
        (
            "namespaces/team-a/policies/Read.hcl",
            "path \"secret/data/team-a/*\" { capabilities = [\"read\"] }\n",
        ),
        (
            "namespaces/team-a/policies/broken.hcl",
            "path \"secret/data/team-a/*\" {\n  capabilities = [\"read\"\n",
        ),
        (
            "namespaces/team-a/policies/params.hcl",
            "path \"secret/data/team-a/*\" {\n  capabilities = [\"read\"]\n  allowed_parameters = { \"*\" = [] }\n}\n",
        ),
        ("namespaces/team-a/policies/notes.txt", "x"),
        (
            "namespaces/team-a/roles/typo.yaml",
            "service_acounts: [app]\n",
        ),
    ]);
    assert_eq!(lines.len(), 5, "{lines:#?}");
    assert!(lines[0].starts_with("namespaces/team-a/policies/Read.hcl: \"Read\" has upper case, which Vault lower-cases silently"), "{lines:#?}");
    assert!(
        lines[1].starts_with("namespaces/team-a/policies/broken.hcl:"),
        "{lines:#?}"
    );
    assert!(lines[1].ends_with("[parse]"), "{lines:#?}");
    assert_eq!(
        lines[2],
        "namespaces/team-a/policies/notes.txt: is not a .hcl file; namespaces/team-a/policies holds .hcl files only [layout]"
    );
    assert_eq!(
        lines[3],
        "namespaces/team-a/policies/params.hcl:3: path \"secret/data/team-a/*\": allowed_parameters is not checked by hydrant, so it is refused; grant with capabilities only [parse]"
    );
    assert!(
        lines[4].starts_with(
            "namespaces/team-a/roles/typo.yaml: service_acounts: unknown field `service_acounts`"
        ),
        "{lines:#?}"
    );
}

#[test]
fn a_default_that_grants_too_much_is_refused_for_each_namespace() {
    let lines = problems(&[
        (
            "defaults/policies/base.hcl",
            "path \"secret/data/*\" { capabilities = [\"read\"] }\n",
        ),
        (
            "namespaces/team-a/roles/app.yaml",
            "service_accounts: [app]\npolicies: [base]\n",
        ),
    ]);
    assert_eq!(
        lines,
        ["defaults/policies/base.hcl:1: path \"secret/data/*\" is outside what namespace team-a may use (secret/data/team-a/*, secret/metadata/team-a/*) [allowed-paths] (the default, for namespace team-a)".replace(" [allowed-paths] (the default, for namespace team-a)", " (the default, for namespace team-a) [allowed-paths]")]
    );
}

/// Found in review: namespace `team` with policy `a-db` and namespace `team-a` with policy
/// `db` are both `tenant-team-a-db`; one would silently replace the other.
#[test]
fn two_files_that_give_one_vault_name_are_refused() {
    let lines = problems(&[
        (
            "namespaces/team/policies/a-db.hcl",
            "path \"secret/data/team/db\" { capabilities = [\"read\"] }\n",
        ),
        (
            "namespaces/team-a/policies/db.hcl",
            "path \"secret/data/team-a/db\" { capabilities = [\"read\"] }\n",
        ),
        (
            "namespaces/team/roles/a-app.yaml",
            "service_accounts: [app]\npolicies: [a-db]\n",
        ),
        (
            "namespaces/team-a/roles/app.yaml",
            "service_accounts: [app]\npolicies: [db]\n",
        ),
    ]);
    assert_eq!(
        lines,
        [
            "namespaces/team-a/policies/db.hcl: its Vault name tenant-team-a-db is also the name of namespaces/team/policies/a-db.hcl (namespace team); rename one [names]",
            "namespaces/team-a/roles/app.yaml: its Vault name tenant-team-a-app is also the name of namespaces/team/roles/a-app.yaml (namespace team); rename one [names]",
        ]
    );
}

#[test]
fn paths_are_written_as_vault_stores_them() {
    let lines = problems(&[(
        "namespaces/team/policies/odd.hcl",
        "path \"secret/data/team/../team-a/x\" { capabilities = [\"read\"] }\npath \"secret/data/team//x\" { capabilities = [\"read\"] }\npath \"secret/data/team/x \" { capabilities = [\"read\"] }\n",
    )]);
    assert_eq!(lines.len(), 3, "{lines:#?}");
    assert!(
        lines.iter().all(|l| l.ends_with("[path-syntax]")),
        "{lines:#?}"
    );
}

#[test]
fn a_template_must_end_the_namespace_where_no_namespace_name_can_go_on() {
    let dir = repository(
        Some("prefix: t\naudience: vault\nallowed_paths: [\"database/creds/{{ namespace }}-*\"]\n"),
        &[],
    );
    let Err(Error::Invalid(problems)) = lint(dir.path()) else {
        panic!("accepted")
    };
    assert!(
        problems[0].message.contains(
            "so one namespace's paths could start with another's name; follow it with /, _ or ."
        ),
        "{problems:?}"
    );
}

/// Hardening item 3: a role without `ttl`/`max_ttl` got Vault's 0, the mount's default (768h),
/// whatever the caps. It gets the caps, renewals included, and never a period.
#[test]
fn a_role_without_ttls_gets_the_caps_and_removing_one_resets_it_to_the_cap() {
    let dir = repository(
        None,
        &[
            (
                "namespaces/team-a/policies/read.hcl",
                "path \"secret/data/team-a/*\" { capabilities = [\"read\"] }\n",
            ),
            ("namespaces/team-a/roles/app.yaml", OK_ROLE),
            (
                "namespaces/team-a/roles/short.yaml",
                "service_accounts: [app]\npolicies: [read]\nttl: 5m\nmax_ttl: 2h\n",
            ),
        ],
    );
    let (_, desired) = repo::load(dir.path()).expect("clean");
    let role = &desired.roles["tenant-team-a-app"].body;
    assert_eq!(role["token_ttl"], 3600, "ttl_cap: 1h");
    assert_eq!(role["token_max_ttl"], 86400, "max_ttl_cap: 24h");
    assert_eq!(role["token_explicit_max_ttl"], 86400);
    assert_eq!(role["token_period"], 0, "a periodic token renews forever");
    let short = &desired.roles["tenant-team-a-short"].body;
    assert_eq!(short["token_ttl"], 300);
    assert_eq!(short["token_max_ttl"], 7200);
    assert_eq!(short["token_explicit_max_ttl"], 7200);

    // Without caps in the settings, nothing caps: Vault's 0, written, not left out.
    let uncapped = SETTINGS.replace("ttl_cap: 1h\nmax_ttl_cap: 24h\n", "");
    std::fs::write(dir.path().join(repo::SETTINGS_FILE), uncapped).expect("settings");
    let (_, desired) = repo::load(dir.path()).expect("clean");
    let role = &desired.roles["tenant-team-a-app"].body;
    assert_eq!(role["token_ttl"], 0);
    assert_eq!(role["token_max_ttl"], 0);
}

#[test]
fn a_zero_ttl_a_period_and_a_ttl_over_the_max_cap_are_refused_with_their_line() {
    let lines = problems(&[
        (
            "namespaces/team-a/policies/read.hcl",
            "path \"secret/data/team-a/*\" { capabilities = [\"read\"] }\n",
        ),
        (
            "namespaces/team-a/roles/zero.yaml",
            "service_accounts: [app]\npolicies: [read]\nttl: 0s\nmax_ttl: 0\n",
        ),
        (
            "namespaces/team-a/roles/periodic.yaml",
            "service_accounts: [app]\nperiod: 1h\n",
        ),
        (
            "namespaces/team-a/roles/token-period.yaml",
            "service_accounts: [app]\ntoken_period: 1h\n",
        ),
        (
            "namespaces/team-a/roles/explicit.yaml",
            "service_accounts: [app]\ntoken_explicit_max_ttl: 0\n",
        ),
        (
            "namespaces/team-a/roles/batch.yaml",
            "service_accounts: [app]\ntoken_type: batch\n",
        ),
    ]);
    assert_eq!(lines.len(), 6, "{lines:#?}");
    for (line, key) in [
        (&lines[0], "token_type"),
        (&lines[1], "token_explicit_max_ttl"),
        (&lines[2], "period"),
        (&lines[3], "token_period"),
    ] {
        assert!(
            line.contains(&format!("{key}: unknown field `{key}`")) && line.ends_with("[parse]"),
            "{lines:#?}"
        );
    }
    assert_eq!(
        lines[4],
        "namespaces/team-a/roles/zero.yaml:3: ttl 0s is Vault's \"the mount's default\" (768h unless tuned), not a short TTL; give a duration up to 1h, or leave ttl out to get 1h [ttl-cap]"
    );
    assert_eq!(
        lines[5],
        "namespaces/team-a/roles/zero.yaml:4: max_ttl 0s is Vault's \"the mount's default\" (768h unless tuned), not a short TTL; give a duration up to 1day, or leave max_ttl out to get 1day [ttl-cap]"
    );

    // A ttl the ttl cap allows but the max_ttl cap does not, the role giving no max_ttl.
    let dir = repository(
        Some(&SETTINGS.replace("ttl_cap: 1h\n", "")),
        &[
            (
                "namespaces/team-a/policies/read.hcl",
                "path \"secret/data/team-a/*\" { capabilities = [\"read\"] }\n",
            ),
            (
                "namespaces/team-a/roles/app.yaml",
                "service_accounts: [app]\npolicies: [read]\nttl: 48h\n",
            ),
        ],
    );
    let Err(Error::Invalid(problems)) = lint(dir.path()) else {
        panic!("accepted")
    };
    assert_eq!(
        problems[0].to_string(),
        "namespaces/team-a/roles/app.yaml:3: ttl 2days is longer than the max_ttl cap 1day [ttl-cap]"
    );
}

/// Hardening item 3: `namespaces/team-a/policies/.evil.hcl` was skipped silently. Every entry
/// under `defaults/` and `namespaces/` is read or refused by name; the rest of the repository
/// (README, CI configuration) is its owners'.
#[test]
fn hidden_stray_and_linked_files_where_hydrant_reads_are_refused_by_name() {
    let dir = repository(
        None,
        &[
            (
                "namespaces/team-a/policies/read.hcl",
                "path \"secret/data/team-a/*\" { capabilities = [\"read\"] }\n",
            ),
            (
                "namespaces/team-a/policies/.evil.hcl",
                "path \"secret/data/team-b/*\" { capabilities = [\"read\"] }\n",
            ),
            ("namespaces/team-a/roles/.old.yaml", OK_ROLE),
            ("namespaces/team-a/notes.txt", "x"),
            ("namespaces/team-a/policy/x.hcl", "x"),
            ("namespaces/.hidden/policies/x.hcl", "x"),
            ("defaults/README.md", "x"),
            ("defaults/policies/.gitkeep", ""),
            ("README.md", "the repository's own"),
            (".github/workflows/lint.yaml", "the repository's own"),
            ("controller-policy.hcl", "the repository's own"),
        ],
    );
    std::os::unix::fs::symlink(
        "/etc/passwd",
        dir.path().join("namespaces/team-a/policies/link.hcl"),
    )
    .expect("symlink");
    let Err(Error::Invalid(problems)) = lint(dir.path()) else {
        panic!("accepted")
    };
    let lines: Vec<String> = problems.iter().map(ToString::to_string).collect();
    let hidden = ": is hidden, and hydrant reads no hidden file: remove it (nothing under defaults/ or namespaces/ is skipped silently) [layout]";
    assert_eq!(
        lines,
        [
            "defaults/README.md: is not read by hydrant: defaults holds policies/ only [layout]".to_owned(),
            format!("defaults/policies/.gitkeep{hidden}"),
            format!("namespaces/.hidden{hidden}"),
            "namespaces/team-a/notes.txt: is not read by hydrant: namespaces/team-a holds policies/ and roles/ only [layout]".to_owned(),
            format!("namespaces/team-a/policies/.evil.hcl{hidden}"),
            "namespaces/team-a/policies/link.hcl: is a symlink or special file; hydrant reads directories and regular files only: replace it with the file itself [layout]".to_owned(),
            "namespaces/team-a/policy: is not read by hydrant: namespaces/team-a holds policies/ and roles/ only [layout]".to_owned(),
            format!("namespaces/team-a/roles/.old.yaml{hidden}"),
        ]
    );

    // A directory hydrant reads that is a symlink is not followed either.
    let dir = repository(None, &[("elsewhere/policies/x.hcl", "x")]);
    std::os::unix::fs::symlink(dir.path().join("elsewhere"), dir.path().join("defaults"))
        .expect("symlink");
    let Err(Error::Invalid(problems)) = lint(dir.path()) else {
        panic!("accepted")
    };
    assert_eq!(
        problems[0].to_string(),
        "defaults: is a symlink, not a directory; hydrant reads directories and regular files only [layout]"
    );
}

#[test]
fn bad_settings_stop_everything() {
    let dir = repository(Some("prefix: Tenant\nallowed_paths: [x]\n"), &[]);
    let Err(Error::Invalid(problems)) = lint(dir.path()) else {
        panic!("accepted")
    };
    assert!(
        problems[0]
            .to_string()
            .starts_with("hydrant-policy.yaml: prefix \"Tenant\" is not a name"),
        "{problems:?}"
    );
    let dir = repository(Some("prefix: t\nallowed_paths: [\"secret/data/*\"]\n"), &[]);
    let Err(Error::Invalid(problems)) = lint(dir.path()) else {
        panic!("accepted")
    };
    assert!(
        problems[0].message.contains("does not name the namespace"),
        "{problems:?}"
    );
    for (caps, wanted) in [
        ("ttl_cap: 0s\n", "ttl_cap 0s caps nothing"),
        ("max_ttl_cap: 0\n", "max_ttl_cap 0s caps nothing"),
        (
            "ttl_cap: 2h\nmax_ttl_cap: 1h\n",
            "ttl_cap 2h is longer than max_ttl_cap 1h",
        ),
    ] {
        let settings =
            format!("prefix: t\nallowed_paths: [\"secret/data/{{{{ namespace }}}}/*\"]\n{caps}");
        let dir = repository(Some(&settings), &[]);
        let Err(Error::Invalid(problems)) = lint(dir.path()) else {
            panic!("accepted {caps:?}")
        };
        assert!(problems[0].message.starts_with(wanted), "{problems:?}");
    }
}

#[test]
fn coverage_is_by_prefix_and_exact_paths_match_only_themselves() {
    assert!(guard::covers("secret/data/a/*", "secret/data/a/*"));
    assert!(guard::covers("secret/data/a/*", "secret/data/a/db"));
    assert!(guard::covers("secret/data/a/*", "secret/data/a/x/*"));
    assert!(!guard::covers("secret/data/a/*", "secret/data/a*"));
    assert!(!guard::covers("secret/data/a/*", "secret/data/ab/*"));
    assert!(!guard::covers("secret/data/a/*", "secret/data/*/x"));
    assert!(guard::covers("database/creds/a-*", "database/creds/a-app"));
    assert!(!guard::covers(
        "database/creds/a-app",
        "database/creds/a-app2"
    ));
    assert!(guard::covers(
        "database/creds/a-app",
        "database/creds/a-app"
    ));
}

#[test]
fn two_spellings_of_a_policy_have_one_normal_form() {
    let one = acl::parse("path \"b\" { capabilities = [\"read\", \"list\"] }\npath \"a\" {\n  capabilities = [\"read\"]\n}\n").expect("parses");
    let two = acl::parse("# comment\npath \"a\" { capabilities = [\"read\"] }\n\npath \"b\" {\n    capabilities = [ \"list\", \"read\" ]\n}").expect("parses");
    assert_eq!(one.normal_form(), two.normal_form());
    assert!(acl::parse("path \"a\" { capabilities = [\"reed\"] }").is_err());
    assert!(
        acl::parse(
            "path \"a\" { capabilities = [\"read\"] }\npath \"a\" { capabilities = [\"list\"] }"
        )
        .is_err()
    );
}

/// Found by fuzzing: `$${` is an escaped `${` in HCL and control characters pass the parser,
/// but neither reads back the same from an encoder's output; no Vault path needs them, so they
/// are refused, and what is accepted survives the normal form.
#[test]
fn template_sequences_and_control_characters_are_refused_and_the_rest_survives() {
    for text in [
        "path \"secret/$${x}/y\" { capabilities = [\"read\"] }\n",
        "path \"secret/%%{x}/y\" { capabilities = [\"read\"] }\n",
        "path \"secret/\\u0001/y\" { capabilities = [\"read\"] }\n",
    ] {
        let errors = acl::parse(text).expect_err(text);
        assert!(
            errors[0]
                .message
                .contains("a control character or a template sequence"),
            "{errors:?}"
        );
    }
    let policy = acl::parse("path \"secret/\\\"q\\\"/é/*\" { capabilities = [\"read\"] }\n")
        .expect("parses");
    assert_eq!(policy.rules[0].path, "secret/\"q\"/é/*");
    let again = acl::parse(&policy.normal_form()).expect("the normal form parses");
    assert_eq!(again, policy);
}

#[test]
fn the_example_repository_is_clean() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/policy");
    assert_eq!(
        lint(&root).expect("clean"),
        "ok: 3 namespaces, 4 policies, 2 roles\n"
    );
}

/// The rules named in the README's `| rule | refuses |` table are exactly [`Guardrail::ALL`],
/// each once: a new rule cannot be left out of the table (nor of the controller's series,
/// which come from the same list).
#[test]
fn the_readme_s_rule_table_names_every_rule_once() {
    let readme = include_str!("../../README.md");
    let mut in_table = false;
    let mut named = Vec::new();
    for line in readme.lines() {
        if line.starts_with("| rule | refuses |") {
            in_table = true;
            continue;
        }
        if !line.starts_with('|') {
            in_table = false;
        }
        if !in_table || line.starts_with("|---") {
            continue;
        }
        let first = line.split('|').nth(1).unwrap_or_default();
        named.extend(first.split('`').skip(1).step_by(2).map(str::to_owned));
    }
    let mut code: Vec<String> = Guardrail::ALL.iter().map(|r| r.name().to_owned()).collect();
    let unique: std::collections::BTreeSet<&String> = code.iter().collect();
    assert_eq!(unique.len(), code.len(), "a rule name twice: {code:?}");
    named.sort();
    code.sort();
    assert_eq!(
        named, code,
        "the README's rule table and Guardrail::ALL differ"
    );
}
