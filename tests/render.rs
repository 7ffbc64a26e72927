//! `hydrant render` end to end: the example's containers, secrets from a real OpenBao (through
//! VAULT_ADDR and VAULT_TOKEN, or an agent config), from a file, and every exit status.

use std::path::PathBuf;

use serde_json::json;

use crate::util::{self, Hydrant, Vault, VaultOptions, read};

const PASSWORD: &str = "vault-pw-4410";

fn example() -> PathBuf {
    util::root().join("examples/config")
}

/// `hydrant render` in the example's directory, for line 1 in QA.
fn render() -> Hydrant {
    Hydrant::new([
        "render",
        "--containers",
        "containers",
        "--labels",
        "app=patch-to-core,region=emea,site=atlantida,line=line1,env=qa",
    ])
    .current_dir(&example())
}

fn seeded() -> (Vault, String) {
    seeded_with(VaultOptions::default())
}

fn seeded_with(options: VaultOptions) -> (Vault, String) {
    let vault = Vault::start_with(options);
    vault.kv2_put("factory/db", json!({"password": PASSWORD}));
    vault.policy(
        "factory",
        "path \"secret/data/factory/*\" { capabilities = [\"read\"] }\n",
    );
    let token = vault.token(&["factory"]);
    (vault, token)
}

#[test]
fn a_template_reads_its_secret_from_vault_with_vault_addr_and_vault_token() {
    let (vault, token) = seeded();
    let run = render()
        .env("VAULT_ADDR", &vault.addr)
        .env("VAULT_TOKEN", &token)
        .run_with_args(&["--template".as_ref(), "db.env.j2".as_ref()])
        .success();
    let expected = read(&example().join("expected/line1-qa.db.env"))
        .replace("ci-not-a-real-password", PASSWORD);
    assert_eq!(run.stdout(), expected);
    assert!(!run.stderr().contains(&token), "the token is never logged");
}

#[test]
fn vault_cacert_is_the_ca_with_vault_addr_as_for_every_vault_cli() {
    let (vault, token) = seeded_with(VaultOptions { tls: true });
    let ca = vault.ca_cert.clone().expect("dev CA");
    let with_env = |ca: Option<&PathBuf>| {
        let run = render()
            .env("VAULT_ADDR", &vault.addr)
            .env("VAULT_TOKEN", &token);
        match ca {
            Some(ca) => run.env("VAULT_CACERT", ca),
            None => run,
        }
        .run_with_args(&["--template".as_ref(), "db.env.j2".as_ref()])
    };
    assert!(with_env(Some(&ca)).success().stdout().contains(PASSWORD));
    let run = with_env(None);
    assert_ne!(run.code(), 0);
    assert!(
        run.stderr().contains("TLS to vault at"),
        "without VAULT_CACERT Vault's certificate is not trusted: {}",
        run.stderr()
    );
}

#[test]
fn an_agent_config_gives_vault_and_the_login() {
    // The app's own agent config: render takes its vault and auth, not its templates.
    let (vault, token) = seeded();
    let token_file = vault.file("token", &token);
    let agent = vault.file(
        "agent.json",
        &json!({
            "vault": {"address": vault.addr},
            "auth": {"method": "token", "token_path": token_file},
            "templates": [{"name": "unused", "contents": "x", "destination": "/nonexistent/x"}],
        })
        .to_string(),
    );
    let out = vault.path("out/db.env");
    std::fs::create_dir_all(out.parent().expect("dir")).expect("out dir");
    let run = render()
        .run_with_args(&[
            "--template".as_ref(),
            "db.env.j2".as_ref(),
            "--agent-config".as_ref(),
            agent.as_os_str(),
            "--out".as_ref(),
            out.as_os_str(),
        ])
        .success();
    assert_eq!(run.stdout(), "", "the output went to the file");
    assert!(read(&out).contains(&format!("DB_PASSWORD={PASSWORD}\n")));
}

/// The app's Vault Agent configuration serves as well: render takes its `vault` stanza and its
/// `auto_auth` method (here AppRole, the secret ID removed after reading as Vault Agent does),
/// and needs no template or sink in it.
#[test]
fn a_vault_agent_hcl_config_gives_vault_and_the_login() {
    let (vault, _) = seeded();
    let (role_id, secret_id) = vault.approle("render", &["factory"]);
    let role_id_file = vault.file("role-id", &role_id);
    let secret_id_file = vault.file("secret-id", &secret_id);
    let agent = vault.file(
        "agent.hcl",
        &format!(
            "vault {{\n  address = \"{}\"\n}}\nauto_auth {{\n  method \"approle\" {{\n    config = {{\n      role_id_file_path = \"{}\"\n      secret_id_file_path = \"{}\"\n    }}\n  }}\n}}\n",
            vault.addr,
            role_id_file.display(),
            secret_id_file.display()
        ),
    );
    let run = render()
        .run_with_args(&[
            "--template".as_ref(),
            "db.env.j2".as_ref(),
            "--agent-config".as_ref(),
            agent.as_os_str(),
        ])
        .success();
    assert!(run.stdout().contains(&format!("DB_PASSWORD={PASSWORD}\n")));
    assert!(
        !secret_id_file.exists(),
        "removed after reading, as Vault Agent does"
    );
}

#[test]
fn each_failure_has_its_exit_status_and_a_line_that_names_the_fix() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "kind: ConfigContainer\nmetadata: {name: a}\nspec: {level: plant}\n",
    )
    .expect("write");
    let line = render()
        .run_with_args(&["--containers".as_ref(), bad.as_os_str()])
        .failure(64);
    assert!(
        line.contains("spec.level: \"plant\" is not one of the levels [global, region, site, line, environment] (container a)"),
        "{line}"
    );

    let line = render()
        .run_with_args(&["--labels".as_ref(), "site=elsewhere".as_ref()])
        .failure(64);
    assert_eq!(
        line,
        "hydrant: label site is \"atlantida\" in --labels and \"elsewhere\" in --labels; an instance's labels must agree"
    );

    let missing = dir.path().join("secrets.yaml");
    std::fs::write(&missing, "secret/data/other: {data: {}}\n").expect("write");
    let line = render()
        .run_with_args(&[
            "--template".as_ref(),
            "db.env.j2".as_ref(),
            "--secrets-file".as_ref(),
            missing.as_os_str(),
        ])
        .failure(64);
    assert!(
        line.contains("secret secret/data/factory/db is not in the secrets file"),
        "{line}"
    );

    let line = render()
        .run_with_args(&["--template".as_ref(), "db.env.j2".as_ref()])
        .failure(64);
    assert!(
        line.contains("no Vault is configured; set VAULT_ADDR and VAULT_TOKEN"),
        "{line}"
    );

    let line = render()
        .env(
            "VAULT_ADDR",
            format!("http://127.0.0.1:{}", util::free_port()),
        )
        .env("VAULT_TOKEN", "s.unused")
        .run_with_args(&["--template".as_ref(), "db.env.j2".as_ref()])
        .failure(1);
    assert!(line.contains("is unreachable"), "{line}");
    assert!(!line.contains("s.unused"), "{line}");

    let unwritable =
        render().run_with_args(&["--out".as_ref(), "/proc/hydrant-cannot-write-here".as_ref()]);
    assert_eq!(unwritable.code(), 1, "{}", unwritable.stderr());

    let both = render().run_with_args(&[
        "--format".as_ref(),
        "json".as_ref(),
        "--template".as_ref(),
        "catalog.yaml.j2".as_ref(),
    ]);
    assert_eq!(both.code(), 64, "{}", both.stderr());
    let unknown = render().run_with_args(&["--format".as_ref(), "toml".as_ref()]);
    assert_eq!(unknown.code(), 64);
    assert!(
        unknown.stderr().contains("\"toml\" is not a format"),
        "{}",
        unknown.stderr()
    );
}

#[test]
fn labels_can_come_from_a_downward_api_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let labels = dir.path().join("labels");
    std::fs::write(
        &labels,
        "app=\"patch-to-core\"\nline=\"line1\"\npod-template-hash=\"7d9f\"\n",
    )
    .expect("write");
    let run = Hydrant::new([
        "render",
        "--containers",
        "containers",
        "--labels",
        "region=emea,site=atlantida,env=qa",
        "--schema",
        "schema.json",
    ])
    .current_dir(&example())
    .run_with_args(&["--labels-file".as_ref(), labels.as_os_str()])
    .success();
    assert_eq!(
        run.stdout(),
        read(&example().join("expected/line1-qa.json"))
    );
}

/// A platform team's file of 10,000 containers (more documents and nodes than serde-saphyr's
/// defaults, 1,024 and 250,000, allow) composes: files the operator gives are read with
/// bounds sized for them.
#[test]
fn a_file_of_ten_thousand_containers_composes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut text = String::from(
        "kind: ConfigContainer\nmetadata: {name: global}\nspec:\n  level: global\n  values: {site: none, retries: 3}\n",
    );
    for i in 0..10_000 {
        text.push_str(&format!(
            "---\nkind: ConfigContainer\nmetadata:\n  name: site-{i}\nspec:\n  level: site\n  selector:\n    matchLabels: {{site: s{i}, region: emea}}\n  values:\n    site: s{i}\n    owner: {{team: platform, tier: sites}}\n    module: {{drop-threshold: 0.{i}, window: {i}, tags: [a, b, c]}}\n"
        ));
    }
    let file = dir.path().join("sites.yaml");
    std::fs::write(&file, text).expect("write");
    let run = Hydrant::new([
        "render",
        "--labels",
        "site=s9876,region=emea",
        "--containers",
    ])
    .run_with_arg(&file)
    .success();
    let snapshot: serde_json::Value = serde_json::from_str(&run.stdout()).expect("JSON");
    assert_eq!(snapshot["site"], "s9876", "{snapshot}");
    assert_eq!(snapshot["retries"], 3, "{snapshot}");
    assert_eq!(snapshot["module"]["window"], 9876, "{snapshot}");
}
