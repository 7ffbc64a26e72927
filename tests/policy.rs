//! `hydrant policy plan` and `apply` against a real OpenBao: creation, a second apply that
//! writes nothing (counted in the audit log), pruning of owned objects only, the deletion cap,
//! drift correction, fail-closed input, and the provisioned roles letting a service account of
//! the right namespace read its own path and nothing else. Vault's Kubernetes auth reviews
//! tokens through a TokenReview responder standing in for the kube-apiserver.

use std::path::{Path, PathBuf};

use serde_json::json;

use crate::util::jwt::{self, Signer};
use crate::util::token_review::{TokenReviewer, kubernetes_auth};
use crate::util::{self, Hydrant, ROOT_TOKEN, Run, Vault};

/// A copy of `examples/policy` to change.
fn repository(vault: &Vault) -> PathBuf {
    let dir = vault.path("policy-repo");
    copy_dir(&util::root().join("examples/policy"), &dir);
    dir
}

/// Copies a directory tree.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("dir");
    for entry in std::fs::read_dir(from).expect("read_dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).expect("copy");
        }
    }
}

fn policy(vault: &Vault, command: &str, repo: &Path) -> Run {
    policy_as(vault, ROOT_TOKEN, command, repo)
}

fn policy_as(vault: &Vault, token: &str, command: &str, repo: &Path) -> Run {
    Hydrant::new(["policy", command])
        .env("VAULT_ADDR", &vault.addr)
        .env("VAULT_TOKEN", token)
        .run_with_arg(repo)
}

/// Requests that change something in Vault, by operation and path.
fn writes(vault: &Vault, mark: u64) -> Vec<String> {
    vault
        .audit_requests(mark)
        .into_iter()
        .filter(|(op, _)| op == "update" || op == "create" || op == "delete")
        .map(|(op, path)| format!("{op} {path}"))
        .collect()
}

fn policies(vault: &Vault) -> Vec<String> {
    let listed = vault.api("LIST", "sys/policies/acl", None);
    let mut keys: Vec<String> =
        serde_json::from_value(listed["data"]["keys"].clone()).expect("keys");
    keys.sort();
    keys
}

#[test]
fn apply_creates_what_the_repository_asks_for_and_a_second_apply_writes_nothing() {
    let vault = Vault::start();
    vault.enable_auth("kubernetes", "kubernetes");
    let repo = repository(&vault);
    let plan = policy(&vault, "plan", &repo).success();
    assert!(
        plan.stdout()
            .ends_with("6 to create, 0 to update, 0 to delete\n"),
        "{}",
        plan.stdout()
    );
    assert!(
        policies(&vault).iter().all(|p| !p.starts_with("tenant-")),
        "plan writes nothing"
    );

    let first = policy(&vault, "apply", &repo).success();
    assert!(
        first
            .stdout()
            .contains("+ create policy tenant-team-a-db\n"),
        "{}",
        first.stdout()
    );
    assert_eq!(
        policies(&vault),
        [
            "default",
            "root",
            "tenant-team-a-app-read",
            "tenant-team-a-db",
            "tenant-team-b-app-read",
            "tenant-team-c-app-read"
        ]
    );
    let policy_text = vault.api("GET", "sys/policies/acl/tenant-team-c-app-read", None);
    assert_eq!(
        policy_text["data"]["policy"],
        "path \"secret/data/team-c/*\" {\n  capabilities = [\"read\"]\n}\npath \"secret/metadata/team-c/*\" {\n  capabilities = [\"list\", \"read\"]\n}\n"
    );
    let role = vault.api("GET", "auth/kubernetes/role/tenant-team-a-app", None);
    assert_eq!(
        role["data"]["bound_service_account_namespaces"],
        json!(["team-a"])
    );
    assert_eq!(
        role["data"]["token_policies"],
        json!([
            "tenant-team-a-app-read",
            "tenant-team-a-db",
            "platform-read"
        ])
    );
    assert_eq!(role["data"]["audience"], "vault");
    assert_eq!(role["data"]["token_ttl"], 1200);

    let mark = vault.audit_mark();
    let second = policy(&vault, "apply", &repo).success();
    assert_eq!(
        second.stdout(),
        "no changes: Vault holds what the repository asks for\n"
    );
    assert_eq!(
        writes(&vault, mark),
        Vec::<String>::new(),
        "the second apply writes nothing"
    );
}

#[test]
fn pruning_deletes_only_owned_objects_and_never_more_than_the_cap() {
    let vault = Vault::start();
    vault.enable_auth("kubernetes", "kubernetes");
    let repo = repository(&vault);
    // Made by hand: one under the prefix, one outside. Neither is hydrant's.
    vault.policy(
        "tenant-handmade",
        "path \"secret/data/x\" { capabilities = [\"read\"] }\n",
    );
    vault.policy(
        "ops",
        "path \"secret/data/ops/*\" { capabilities = [\"read\"] }\n",
    );
    policy(&vault, "apply", &repo).success();

    std::fs::remove_dir_all(repo.join("namespaces/team-b")).expect("remove team-b");
    let settings = repo.join("hydrant-policy.yaml");
    let text = std::fs::read_to_string(&settings).expect("settings");
    std::fs::write(
        &settings,
        text.replace("max_deletions: 10", "max_deletions: 1"),
    )
    .expect("cap");
    let mark = vault.audit_mark();
    let refused = policy(&vault, "apply", &repo);
    assert_eq!(refused.code(), 64);
    assert!(
        refused.stderr().contains(
            "the plan deletes 2 objects, more than max_deletions (1) allows; nothing is applied"
        ),
        "{}",
        refused.stderr()
    );
    assert_eq!(writes(&vault, mark), Vec::<String>::new());

    std::fs::write(&settings, text).expect("cap back");
    let applied = policy(&vault, "apply", &repo).success();
    assert!(
        applied
            .stdout()
            .contains("- delete role tenant-team-b-web\n- delete policy tenant-team-b-app-read\n"),
        "{}",
        applied.stdout()
    );
    let left = policies(&vault);
    assert!(
        left.contains(&"tenant-handmade".to_owned()) && left.contains(&"ops".to_owned()),
        "{left:?}"
    );
    assert!(
        !left.contains(&"tenant-team-b-app-read".to_owned()),
        "{left:?}"
    );
}

#[test]
fn drift_in_vault_is_planned_as_a_diff_and_corrected() {
    let vault = Vault::start();
    vault.enable_auth("kubernetes", "kubernetes");
    let repo = repository(&vault);
    policy(&vault, "apply", &repo).success();
    vault.policy(
        "tenant-team-a-db",
        "path \"database/creds/team-a_app\" { capabilities = [\"read\", \"update\"] }\n",
    );
    vault.api(
        "POST",
        "auth/kubernetes/role/tenant-team-b-web",
        Some(json!({"token_ttl": 7200})),
    );

    let plan = policy(&vault, "plan", &repo).success();
    let text = plan.stdout();
    assert!(
        text.contains("~ update policy tenant-team-a-db\n"),
        "{text}"
    );
    assert!(
        text.contains(
            "    -  capabilities = [\"read\", \"update\"]\n    +  capabilities = [\"read\"]\n"
        ),
        "{text}"
    );
    assert!(text.contains("~ update role tenant-team-b-web\n"), "{text}");
    assert!(
        text.contains("    -token_ttl = 7200\n    +token_ttl = 3600\n"),
        "{text}"
    );
    assert!(
        text.ends_with("0 to create, 2 to update, 0 to delete\n"),
        "{text}"
    );

    policy(&vault, "apply", &repo).success();
    let again = policy(&vault, "plan", &repo).success();
    assert_eq!(
        again.stdout(),
        "no changes: Vault holds what the repository asks for\n"
    );
}

#[test]
fn one_bad_file_means_nothing_is_applied() {
    let vault = Vault::start();
    vault.enable_auth("kubernetes", "kubernetes");
    let repo = repository(&vault);
    std::fs::write(
        repo.join("namespaces/team-a/policies/steal.hcl"),
        "path \"secret/data/team-b/*\" { capabilities = [\"read\"] }\n",
    )
    .expect("bad policy");
    let mark = vault.audit_mark();
    let run = policy(&vault, "apply", &repo);
    assert_eq!(run.code(), 64);
    assert!(run.stderr().contains("namespaces/team-a/policies/steal.hcl:1: path \"secret/data/team-b/*\" is outside what namespace team-a may use"), "{}", run.stderr());
    assert!(
        vault.audit_requests(mark).is_empty(),
        "Vault was not even asked"
    );
    assert!(policies(&vault).iter().all(|p| !p.starts_with("tenant-")));
}

#[test]
fn a_provisioned_role_lets_its_namespace_read_its_own_path_and_nothing_else() {
    let vault = Vault::start();
    let reviewer = TokenReviewer::start();
    kubernetes_auth(&vault, &reviewer);
    vault.kv2_put("team-a/db", json!({"password": "a-pw"}));
    vault.kv2_put("team-b/db", json!({"password": "b-pw"}));
    let repo = repository(&vault);
    policy(&vault, "apply", &repo).success();

    let signer = Signer::new();
    let login = |namespace: &str, account: &str| {
        let token = signer.sign(&jwt::service_account_claims(
            namespace, account, "vault", "uid-1",
        ));
        reviewer.accept(&token);
        vault.api_as(
            "",
            "POST",
            "auth/kubernetes/login",
            Some(json!({"role": "tenant-team-a-app", "jwt": token})),
        )
    };
    let answer = login("team-a", "worker").expect("team-a's worker logs in");
    let token = answer["auth"]["client_token"]
        .as_str()
        .expect("token")
        .to_owned();
    let own = vault
        .api_as(&token, "GET", "secret/data/team-a/db", None)
        .expect("reads its own path");
    assert_eq!(own["data"]["data"]["password"], "a-pw");
    let other = vault.api_as(&token, "GET", "secret/data/team-b/db", None);
    assert!(matches!(other, Err((403, _))), "{other:?}");
    let stranger = login("team-b", "worker");
    assert!(
        matches!(stranger, Err((403, _))),
        "another namespace's service account: {stranger:?}"
    );
}

/// The least-privilege policy the README gives is enough to plan, apply and prune, and a
/// token holding it cannot touch a policy outside the prefix.
#[test]
fn the_documented_least_privilege_policy_is_enough() {
    let vault = Vault::start();
    vault.enable_auth("kubernetes", "kubernetes");
    let repo = repository(&vault);
    vault.policy(
        "hydrant-policy",
        &std::fs::read_to_string(repo.join("controller-policy.hcl")).expect("policy"),
    );
    let token = vault.token(&["hydrant-policy"]);
    policy_as(&vault, &token, "apply", &repo).success();
    std::fs::remove_dir_all(repo.join("namespaces/team-b")).expect("remove team-b");
    let pruned = policy_as(&vault, &token, "apply", &repo).success();
    assert!(
        pruned
            .stdout()
            .ends_with("0 to create, 0 to update, 2 to delete\n"),
        "{}",
        pruned.stdout()
    );
    let outside = vault.api_as(
        &token,
        "POST",
        "sys/policies/acl/ops",
        Some(json!({"policy": ""})),
    );
    assert!(matches!(outside, Err((403, _))), "{outside:?}");
}

/// The ownership index of more than a thousand objects is stored: Vault refuses JSON bodies
/// with more than a thousand strings (the 1,000-namespace benchmark found it).
#[test]
fn an_ownership_index_of_thousands_of_objects_is_stored_and_read_back() {
    let vault = Vault::start();
    vault.enable_auth("kubernetes", "kubernetes");
    let repo = vault.path("big-repo");
    let names: Vec<String> = (0..1100).map(|i| format!("ns-{i:04}")).collect();
    std::fs::create_dir_all(repo.join("defaults/policies")).expect("dirs");
    std::fs::write(
        repo.join("hydrant-policy.yaml"),
        format!(
            "prefix: t\naudience: vault\nallowed_paths: [\"secret/data/{{{{ namespace }}}}/*\"]\nnamespaces: [{}]\n",
            names.join(", ")
        ),
    )
    .expect("settings");
    std::fs::write(
        repo.join("defaults/policies/read.hcl"),
        "path \"secret/data/{{ namespace }}/*\" { capabilities = [\"read\"] }\n",
    )
    .expect("default");
    let first = policy(&vault, "apply", &repo).success();
    assert!(
        first
            .stdout()
            .ends_with("1100 to create, 0 to update, 0 to delete\n"),
        "{}",
        first.stdout()
    );
    let mark = vault.audit_mark();
    let second = policy(&vault, "apply", &repo).success();
    assert_eq!(
        second.stdout(),
        "no changes: Vault holds what the repository asks for\n"
    );
    assert_eq!(writes(&vault, mark), Vec::<String>::new());
}

/// Hardening item 3: a role file without `ttl`/`max_ttl` passed, and Vault issued 768h tokens
/// (the mount's default) under caps of 1h/24h. Now, through a real Kubernetes-auth login (the
/// TokenReview responder stands in for the kube-apiserver), the token lives the ttl cap and a
/// renewal asking for ten years gets no more than the max_ttl cap.
#[test]
fn a_role_without_ttls_issues_tokens_within_the_caps_at_login_and_renewal() {
    let vault = Vault::start();
    let reviewer = TokenReviewer::start();
    kubernetes_auth(&vault, &reviewer);
    let repo = repository(&vault);
    std::fs::write(
        repo.join("namespaces/team-a/roles/app.yaml"),
        "service_accounts: [app]\npolicies: [db]\n",
    )
    .expect("role without ttls");
    policy(&vault, "apply", &repo).success();

    let signer = Signer::new();
    let jwt = signer.sign(&jwt::service_account_claims(
        "team-a", "app", "vault", "uid-1",
    ));
    reviewer.accept(&jwt);
    let login = vault
        .api_as(
            "",
            "POST",
            "auth/kubernetes/login",
            Some(json!({"role": "tenant-team-a-app", "jwt": jwt})),
        )
        .expect("team-a's app logs in");
    let ttl = login["auth"]["lease_duration"].as_u64().expect("ttl");
    assert!(
        ttl > 0 && ttl <= 3600,
        "ttl_cap is 1h; the token got {ttl}s"
    );
    assert_eq!(login["auth"]["renewable"], true);
    assert_eq!(login["auth"]["token_type"], "service");
    let token = login["auth"]["client_token"]
        .as_str()
        .expect("token")
        .to_owned();
    // The token has no default policy (token_no_default_policy), so renew-self is denied:
    // root renews it, which Vault caps the same way.
    let renewed = vault.api(
        "POST",
        "auth/token/renew",
        Some(json!({"token": token, "increment": "87600h"})),
    );
    let renewed_ttl = renewed["auth"]["lease_duration"]
        .as_u64()
        .expect("renewed ttl");
    assert!(
        renewed_ttl <= 24 * 3600,
        "max_ttl_cap is 24h; a renewal got {renewed_ttl}s"
    );
    let looked_up = vault.api("POST", "auth/token/lookup", Some(json!({"token": token})));
    assert_eq!(
        looked_up["data"]["explicit_max_ttl"], 86400,
        "a hard cap, should a period ever be set by hand"
    );
    let period = &looked_up["data"]["period"];
    assert!(period.is_null() || period == 0, "not periodic: {period}");
}

/// Hardening item 3: `apply` refuses, naming each, a zero TTL (with its line), a hidden policy
/// and a stray file; Vault is not even asked.
#[test]
fn apply_refuses_a_zero_ttl_a_hidden_policy_and_a_stray_file_by_name() {
    let vault = Vault::start();
    vault.enable_auth("kubernetes", "kubernetes");
    let repo = repository(&vault);
    std::fs::write(
        repo.join("namespaces/team-a/roles/app.yaml"),
        "service_accounts: [app]\npolicies: [db]\nttl: 0s\n",
    )
    .expect("zero ttl");
    std::fs::write(
        repo.join("namespaces/team-a/policies/.evil.hcl"),
        "path \"secret/data/team-b/*\" { capabilities = [\"read\"] }\n",
    )
    .expect("hidden policy");
    std::fs::write(repo.join("namespaces/team-a/policies/notes.txt"), "x").expect("stray");
    std::fs::write(repo.join("README.md"), "The repository's own: not read.\n").expect("readme");
    let mark = vault.audit_mark();
    let run = policy(&vault, "apply", &repo);
    assert_eq!(run.code(), 64, "{}", run.stderr());
    let stderr = run.stderr();
    for wanted in [
        "3 problems in the policy repository; nothing is applied",
        "namespaces/team-a/policies/.evil.hcl: is hidden",
        "namespaces/team-a/policies/notes.txt: is not a .hcl file",
        "namespaces/team-a/roles/app.yaml:3: ttl 0s is Vault's \"the mount's default\"",
    ] {
        assert!(stderr.contains(wanted), "{wanted:?} in\n{stderr}");
    }
    assert!(!stderr.contains("README"), "{stderr}");
    assert!(
        vault.audit_requests(mark).is_empty(),
        "Vault was not even asked"
    );
}

/// Vault Enterprise namespaces, with OpenBao's: `VAULT_NAMESPACE` (or `BAO_NAMESPACE`) makes
/// `policy apply` act in that namespace, as the Vault CLI does, and leave the root namespace
/// alone; the token comes from `~/.vault-token` when `VAULT_TOKEN` is unset, as after
/// `vault login`.
#[test]
fn apply_acts_in_the_namespace_given_as_the_vault_cli_does() {
    let vault = Vault::start();
    vault.api("POST", "sys/namespaces/platform", None);
    vault.api(
        "POST",
        "platform/sys/auth/kubernetes",
        Some(json!({"type": "kubernetes"})),
    );
    // The policy index lives in KV v2 at secret/, as on the dev server's root namespace.
    vault.api(
        "POST",
        "platform/sys/mounts/secret",
        Some(json!({"type": "kv", "options": {"version": "2"}})),
    );
    let repo = repository(&vault);
    let home = vault.path("home");
    std::fs::create_dir_all(&home).expect("home");
    std::fs::write(home.join(".vault-token"), format!("{ROOT_TOKEN}\n")).expect("token");
    let run = Hydrant::new(["policy", "apply"])
        .env("BAO_ADDR", &vault.addr)
        .env("VAULT_NAMESPACE", "platform")
        .env("HOME", &home)
        .run_with_arg(&repo)
        .success();
    assert!(
        run.stdout().contains("+ create policy tenant-team-a-db\n"),
        "{}",
        run.stdout()
    );
    let listed = vault.api("LIST", "platform/sys/policies/acl", None);
    let keys: Vec<String> = serde_json::from_value(listed["data"]["keys"].clone()).expect("keys");
    assert!(keys.contains(&"tenant-team-a-db".to_owned()), "{keys:?}");
    assert!(
        policies(&vault).iter().all(|p| !p.starts_with("tenant-")),
        "the root namespace is left alone: {:?}",
        policies(&vault)
    );
    let role = vault.api(
        "GET",
        "platform/auth/kubernetes/role/tenant-team-a-app",
        None,
    );
    assert!(role["data"]["token_policies"].is_array(), "{role}");
}
