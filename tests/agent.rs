//! `hydrant agent --once` against a real OpenBao dev server: the four auth methods, KV v1 and v2,
//! a PKI certificate, the shorthand formats, deduplication, atomic files, and every error a user
//! can meet, each as the one line the binary prints.

use std::fs;
use std::os::unix::fs::MetadataExt as _;
use std::path::PathBuf;

use serde_json::{Value, json};

use crate::util::agent::{agent_config, db_template, out};
use crate::util::jwt::{self, Signer};
use crate::util::token_review::{TokenReviewer, kubernetes_setup};
use crate::util::{Hydrant, Vault, VaultOptions, free_port, mode, read};

/// A value that must reach the files and nothing else.
const DB_PASSWORD: &str = "s3cr3t-Pa55w0rd-7f3a91c";

/// A dev server with the secrets and the policy most tests use.
fn seeded() -> Vault {
    seeded_with(VaultOptions::default())
}

fn seeded_with(options: VaultOptions) -> Vault {
    let vault = Vault::start_with(options);
    vault.kv2_put(
        "app/db",
        json!({"username": "app-user", "password": DB_PASSWORD}),
    );
    vault.kv2_put(
        "app/config",
        json!({"log_level": "debug", "port": 8080, "feature_flags": {"beta": true}}),
    );
    vault.policy(
        "app-read",
        r#"
path "secret/data/app/*" { capabilities = ["read"] }
path "kv/app/*" { capabilities = ["read"] }
path "pki/issue/web" { capabilities = ["update"] }
"#,
    );
    vault
}

/// Token auth with a fresh token holding `app-read`.
fn token_auth(vault: &Vault) -> Value {
    let token = vault.token(&["app-read"]);
    let path = vault.file("creds/token", &token);
    json!({"method": "token", "token_path": path})
}

/// Writes an agent config with `auth` and the keys in `rest`; the retry deadline is 10 s unless
/// `rest` sets its own.
fn config(vault: &Vault, auth: Value, mut rest: Value) -> PathBuf {
    rest.as_object_mut()
        .expect("object")
        .entry("retry")
        .or_insert_with(|| json!({"deadline": "10s"}));
    agent_config(vault, auth, rest)
}

fn expected_db() -> String {
    format!("user=app-user\npass={DB_PASSWORD}\n")
}

#[test]
fn token_auth_renders_a_kv2_template_with_its_mode_in_two_requests() {
    let vault = seeded();
    let mut template = db_template(&vault);
    template["perms"] = json!("0640");
    let config = config(
        &vault,
        token_auth(&vault),
        json!({ "templates": [template] }),
    );
    let mark = vault.audit_mark();

    Hydrant::agent_once(&config).run().success();

    let path = out(&vault, "db.env");
    assert_eq!(read(&path), expected_db());
    assert_eq!(mode(&path), 0o640);
    let counts = vault.audit_counts(mark);
    assert_eq!(
        counts.into_iter().collect::<Vec<_>>(),
        [
            ("read auth/token/lookup-self".to_string(), 1),
            ("read secret/data/app/db".to_string(), 1)
        ]
    );
}

#[test]
fn approle_auth_logs_in_with_role_and_secret_id_files() {
    let vault = seeded();
    let (role_id, secret_id) = vault.approle("app", &["app-read"]);
    let auth = json!({
        "method": "approle",
        "role_id_path": vault.file("creds/role-id", &role_id),
        "secret_id_path": vault.file("creds/secret-id", &format!("{secret_id}\n")),
    });
    let config = config(&vault, auth, json!({ "templates": [db_template(&vault)] }));
    let mark = vault.audit_mark();

    Hydrant::agent_once(&config).run().success();

    assert_eq!(read(&out(&vault, "db.env")), expected_db());
    let counts = vault.audit_counts(mark);
    assert_eq!(
        counts.get("update auth/approle/login"),
        Some(&1),
        "{counts:?}"
    );
    assert_eq!(
        counts.values().sum::<usize>(),
        2,
        "login + one read: {counts:?}"
    );
}

#[test]
fn jwt_auth_accepts_a_service_account_shaped_token() {
    let vault = seeded();
    let signer = Signer::new();
    jwt::setup(&vault, &signer, "app-read");
    let token = signer.sign(&jwt::service_account_claims(
        "team-a", "app", "vault", "0b7c-uid",
    ));
    let auth = json!({"method": "jwt", "role": "app", "jwt_path": vault.file("sa/token", &token)});
    let config = config(&vault, auth, json!({ "templates": [db_template(&vault)] }));
    let mark = vault.audit_mark();

    Hydrant::agent_once(&config).run().success();

    assert_eq!(read(&out(&vault, "db.env")), expected_db());
    let counts = vault.audit_counts(mark);
    assert_eq!(counts.get("update auth/jwt/login"), Some(&1), "{counts:?}");
}

#[test]
fn jwt_auth_refusal_names_method_mount_and_role() {
    let vault = seeded();
    let signer = Signer::new();
    jwt::setup(&vault, &signer, "app-read");
    // Another namespace's service account: the role's bound_subject refuses it.
    let token = signer.sign(&jwt::service_account_claims(
        "team-b", "app", "vault", "uid",
    ));
    let auth = json!({"method": "jwt", "role": "app", "jwt_path": vault.file("sa/token", &token)});
    let config = config(&vault, auth, json!({ "templates": [db_template(&vault)] }));

    let line = Hydrant::agent_once(&config).run().failure(1);

    assert!(
        line.starts_with("hydrant: login denied: jwt auth at mount \"jwt\" refused role \"app\": "),
        "{line}"
    );
    assert!(!line.contains(&token), "the JWT never appears: {line}");
}

/// Kubernetes auth through a small TokenReview responder standing in for the kube-apiserver as
/// Vault's `kubernetes_host`: no kube-apiserver can run on these machines.
#[test]
fn kubernetes_auth_logs_in_through_a_token_review() {
    let vault = seeded();
    let reviewer = TokenReviewer::start();
    kubernetes_setup(&vault, &reviewer, "app", Some("vault"), &["app-read"]);
    let token = reviewer.accepted_token("app", "vault", "5e1d-uid");
    let auth =
        json!({"method": "kubernetes", "role": "app", "jwt_path": vault.file("sa/token", &token)});
    let config = config(&vault, auth, json!({ "templates": [db_template(&vault)] }));
    let mark = vault.audit_mark();

    Hydrant::agent_once(&config).run().success();

    assert_eq!(read(&out(&vault, "db.env")), expected_db());
    assert_eq!(*reviewer.reviewed.lock().expect("lock"), [token]);
    let counts = vault.audit_counts(mark);
    assert_eq!(
        counts.get("update auth/kubernetes/login"),
        Some(&1),
        "{counts:?}"
    );
}

/// Kubernetes auth refused by the TokenReview responder (the stand-in for the kube-apiserver).
#[test]
fn kubernetes_auth_refusal_names_method_mount_and_role() {
    let vault = seeded();
    let reviewer = TokenReviewer::start();
    kubernetes_setup(&vault, &reviewer, "app", Some("vault"), &["app-read"]);
    let token = Signer::new().sign(&jwt::service_account_claims(
        "team-a", "app", "vault", "uid",
    ));
    let auth =
        json!({"method": "kubernetes", "role": "app", "jwt_path": vault.file("sa/token", &token)});
    let config = config(&vault, auth, json!({ "templates": [db_template(&vault)] }));

    let line = Hydrant::agent_once(&config).run().failure(1);

    assert!(
        line.starts_with(
            "hydrant: login denied: kubernetes auth at mount \"kubernetes\" refused role \"app\": "
        ),
        "{line}"
    );
}

#[test]
fn kv1_kv2_and_every_shorthand_format_render_the_secret_data() {
    let vault = seeded();
    vault.mount("kv", "kv", json!({"version": "1"}));
    vault.api(
        "POST",
        "kv/app/flat",
        Some(json!({"a": "1", "B_KEY": "x y", "quote": "it's"})),
    );
    let shorthand = |name: &str, path: &str, format: &str| json!({"name": name, "path": path, "format": format, "destination": out(&vault, name)});
    let rest = json!({
        "templates": [{
            "name": "kv1-template",
            "contents": "a={{ secret('kv/app/flat').a }} b={{ secret('kv/app/flat').B_KEY }}\n",
            "destination": out(&vault, "kv1-template"),
        }],
        "secrets": [
            shorthand("config.json", "secret/data/app/config", "json"),
            shorthand("config.yaml", "secret/data/app/config", "yaml"),
            shorthand("config.env", "secret/data/app/config", "env"),
            shorthand("flat.map", "kv/app/flat", "map"),
            shorthand("flat.env", "kv/app/flat", "env"),
        ],
    });
    let config = config(&vault, token_auth(&vault), rest);

    Hydrant::agent_once(&config).run().success();

    assert_eq!(read(&out(&vault, "kv1-template")), "a=1 b=x y\n");
    assert_eq!(
        read(&out(&vault, "config.json")),
        "{\n  \"feature_flags\": {\n    \"beta\": true\n  },\n  \"log_level\": \"debug\",\n  \"port\": 8080\n}\n"
    );
    assert_eq!(
        read(&out(&vault, "config.yaml")),
        "feature_flags:\n  beta: true\nlog_level: debug\nport: 8080\n"
    );
    assert_eq!(
        read(&out(&vault, "config.env")),
        "feature_flags='{\"beta\":true}'\nlog_level='debug'\nport='8080'\n"
    );
    assert_eq!(
        read(&out(&vault, "flat.map")),
        "B_KEY: x y\na: 1\nquote: it's\n"
    );
    assert_eq!(
        read(&out(&vault, "flat.env")),
        "B_KEY='x y'\na='1'\nquote='it'\\''s'\n"
    );
    // The env file is what a shell sources.
    let shell = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            ". {}; printf '%s|%s|%s' \"$a\" \"$B_KEY\" \"$quote\"",
            out(&vault, "flat.env").display()
        ))
        .output()
        .expect("sh");
    assert_eq!(String::from_utf8_lossy(&shell.stdout), "1|x y|it's");
}

#[test]
fn a_pki_certificate_is_issued_once_through_secret_with_parameters() {
    let vault = seeded();
    vault.pki();
    let issue = "secret('pki/issue/web', common_name='web.example.com', ttl='10m')";
    let rest = json!({"templates": [
        {"name": "cert", "contents": format!("{{{{ {issue}.certificate }}}}\n"), "destination": out(&vault, "tls.crt")},
        {"name": "key", "contents": format!("{{{{ {issue}.private_key }}}}\n"), "destination": out(&vault, "tls.key"), "perms": "0600"},
    ]});
    let config = config(&vault, token_auth(&vault), rest);
    let mark = vault.audit_mark();

    Hydrant::agent_once(&config).run().success();

    let cert = read(&out(&vault, "tls.crt"));
    assert!(cert.starts_with("-----BEGIN CERTIFICATE-----"), "{cert}");
    let key = read(&out(&vault, "tls.key"));
    assert!(key.contains("PRIVATE KEY-----"), "a key was written");
    assert_eq!(mode(&out(&vault, "tls.key")), 0o600);
    let subject = std::process::Command::new("openssl")
        .args(["x509", "-noout", "-subject", "-in"])
        .arg(out(&vault, "tls.crt"))
        .output()
        .expect("openssl");
    assert!(
        String::from_utf8_lossy(&subject.stdout).contains("CN = web.example.com"),
        "{}",
        String::from_utf8_lossy(&subject.stdout)
    );
    // Certificate and key come from the same response: one issue request for both templates.
    let counts = vault.audit_counts(mark);
    assert_eq!(counts.get("update pki/issue/web"), Some(&1), "{counts:?}");
}

#[test]
fn each_distinct_path_is_read_once_however_many_outputs_use_it() {
    let vault = seeded();
    let rest = json!({
        "templates": [
            db_template(&vault),
            {"name": "user", "contents": "{{ secret('secret/data/app/db').data.username }}", "destination": out(&vault, "user")},
            {"name": "both", "contents": "{{ secret('secret/data/app/db').data.username }}@{{ secret('secret/data/app/config').data.port }}", "destination": out(&vault, "both")},
        ],
        "secrets": [
            {"name": "db.json", "path": "secret/data/app/db", "destination": out(&vault, "db.json")},
            {"name": "config.json", "path": "/secret/data/app/config/", "destination": out(&vault, "config.json")},
        ],
    });
    let config = config(&vault, token_auth(&vault), rest);
    let mark = vault.audit_mark();

    Hydrant::agent_once(&config).run().success();

    assert_eq!(read(&out(&vault, "both")), "app-user@8080");
    let counts = vault.audit_counts(mark);
    assert_eq!(
        counts.into_iter().collect::<Vec<_>>(),
        [
            ("read auth/token/lookup-self".to_string(), 1),
            ("read secret/data/app/config".to_string(), 1),
            ("read secret/data/app/db".to_string(), 1),
        ],
        "N distinct paths cost N reads and one login"
    );
}

#[test]
fn files_are_replaced_by_rename_only_when_their_content_changes() {
    let vault = seeded();
    let config = config(
        &vault,
        token_auth(&vault),
        json!({ "templates": [db_template(&vault)] }),
    );
    let path = out(&vault, "db.env");

    Hydrant::agent_once(&config).run().success();
    assert_eq!(mode(&path), 0o644, "default mode");
    let first = fs::metadata(&path).expect("metadata");

    Hydrant::agent_once(&config).run().success();
    let second = fs::metadata(&path).expect("metadata");
    assert_eq!(
        second.ino(),
        first.ino(),
        "unchanged content is not rewritten"
    );
    assert_eq!(second.mtime_nsec(), first.mtime_nsec());

    vault.kv2_put(
        "app/db",
        json!({"username": "new-user", "password": DB_PASSWORD}),
    );
    Hydrant::agent_once(&config).run().success();
    let third = fs::metadata(&path).expect("metadata");
    assert_ne!(
        third.ino(),
        first.ino(),
        "a changed file is a new file renamed into place"
    );
    assert!(read(&path).starts_with("user=new-user\n"));

    let names: Vec<String> = fs::read_dir(path.parent().expect("dir"))
        .expect("list")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["db.env"], "no temporary file is left behind");
}

#[test]
fn nothing_is_written_when_any_output_fails() {
    let vault = seeded();
    let rest = json!({"templates": [
        db_template(&vault),
        {"name": "broken", "contents": "{{ secret('secret/data/app/db').data.nope }}", "destination": out(&vault, "broken")},
    ]});
    let config = config(&vault, token_auth(&vault), rest);

    Hydrant::agent_once(&config).run().failure(1);

    assert!(
        !out(&vault, "db.env").exists(),
        "the good file is not written either"
    );
    assert!(!out(&vault, "broken").exists());
    let leftovers: Vec<_> = fs::read_dir(vault.path("out"))
        .map(|dir| dir.map(|e| e.expect("entry").file_name()).collect())
        .unwrap_or_default();
    assert!(
        leftovers.is_empty(),
        "staged files were removed: {leftovers:?}"
    );
}

#[test]
fn every_failure_is_reported_when_several_outputs_fail() {
    let vault = seeded();
    let rest = json!({"templates": [
        {"name": "one", "contents": "{{ secret('secret/data/app/gone').data.x }}", "destination": out(&vault, "one")},
        {"name": "two", "contents": "{{ secret('secret/data/app/db').data.nope }}", "destination": out(&vault, "two")},
    ]});
    let config = config(&vault, token_auth(&vault), rest);

    let run = Hydrant::agent_once(&config).run();
    let stderr = run.stderr();
    let line = run.failure(1);

    assert_eq!(
        line,
        "hydrant: template one: secret not found: secret/data/app/gone (and 1 more failures, logged above)"
    );
    assert!(stderr.contains("template two line 1 column"), "{stderr}");
}

#[test]
fn an_unreachable_vault_is_retried_with_backoff_until_the_deadline() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let token = dir.path().join("token");
    fs::write(&token, "s.sometoken").expect("write");
    let config = dir.path().join("agent.json");
    let doc = json!({
        "vault": {"address": format!("http://127.0.0.1:{port}")},
        "auth": {"method": "token", "token_path": token},
        "secrets": [{"name": "a", "path": "secret/data/a", "destination": dir.path().join("a")}],
        "retry": {"deadline": "4s"},
    });
    fs::write(&config, doc.to_string()).expect("write");

    let run = Hydrant::agent_once(&config).run();
    let elapsed = run.elapsed;
    let retries = run.stderr().matches("retrying").count();
    let line = run.failure(1);

    let prefix = format!("hydrant: vault at http://127.0.0.1:{port} is unreachable: ");
    assert!(line.starts_with(&prefix), "{line}");
    assert!(line.contains("onnection refused"), "{line}");
    assert!(line.contains("(gave up after "), "{line}");
    // Delays start at 250 ms and double with jitter: within 4 s that is 3 to 5 retries, never a
    // tight loop and never a wait past the deadline.
    assert!((3..=6).contains(&retries), "retried {retries} times");
    assert!(elapsed.as_secs_f64() >= 1.5, "backed off: {elapsed:?}");
    assert!(
        elapsed.as_secs_f64() < 8.0,
        "stopped at the deadline: {elapsed:?}"
    );
}

#[test]
fn a_refused_approle_login_names_method_mount_and_credential_files() {
    let vault = seeded();
    let (role_id, _secret_id) = vault.approle("app", &["app-read"]);
    let auth = json!({
        "method": "approle",
        "role_id_path": vault.file("creds/role-id", &role_id),
        "secret_id_path": vault.file("creds/secret-id", "00000000-0000-0000-0000-000000000000"),
    });
    let config = config(&vault, auth, json!({ "templates": [db_template(&vault)] }));

    let line = Hydrant::agent_once(&config).run().failure(1);

    let role_id_file = vault.path("creds/role-id");
    assert!(
        line.starts_with(&format!(
            "hydrant: login denied: approle auth at mount \"approle\" refused the role ID in {}",
            role_id_file.display()
        )),
        "{line}"
    );
    assert!(!line.contains(&role_id), "credentials never appear: {line}");
}

#[test]
fn a_forbidden_path_is_a_permission_error_naming_path_template_and_policies() {
    let vault = seeded();
    vault.kv2_put("other/db", json!({"password": "x"}));
    let rest = json!({"templates": [
        {"name": "db", "contents": "{{ secret('secret/data/other/db').data.password }}", "destination": out(&vault, "db")},
    ]});
    let config = config(&vault, token_auth(&vault), rest);

    let line = Hydrant::agent_once(&config).run().failure(1);

    assert!(
        line.starts_with(
            "hydrant: template db: permission denied reading secret/data/other/db: the token's policies [app-read, default] do not allow it"
        ),
        "{line}"
    );
}

#[test]
fn a_missing_secret_is_named_with_its_path() {
    let vault = seeded();
    let rest = json!({"secrets": [
        {"name": "gone", "path": "secret/data/app/gone", "destination": out(&vault, "gone")},
    ]});
    let config = config(&vault, token_auth(&vault), rest);

    let line = Hydrant::agent_once(&config).run().failure(1);

    assert_eq!(
        line,
        "hydrant: template gone: secret not found: secret/data/app/gone"
    );
}

#[test]
fn a_missing_key_names_template_position_and_key() {
    let vault = seeded();
    let rest = json!({"templates": [
        {"name": "db", "contents": "pass={{ secret('secret/data/app/db').data.pasword }}\n", "destination": out(&vault, "db")},
    ]});
    let config = config(&vault, token_auth(&vault), rest);

    let line = Hydrant::agent_once(&config).run().failure(1);

    assert_eq!(
        line,
        "hydrant: template db line 1 column 37: key missing: pasword (in `.data.pasword`)"
    );
}

#[test]
fn a_template_syntax_error_is_a_usage_error_found_before_any_request() {
    let vault = seeded();
    let rest = json!({"templates": [
        {"name": "db", "contents": "ok\n{{ secret('secret/data/app/db').data.username }\n", "destination": out(&vault, "db")},
    ]});
    let config = config(&vault, token_auth(&vault), rest);
    let mark = vault.audit_mark();

    let line = Hydrant::agent_once(&config).run().failure(64);

    assert!(
        line.starts_with("hydrant: template db line 2 column "),
        "{line}"
    );
    assert!(line.contains("syntax error"), "{line}");
    assert!(
        vault.audit_requests(mark).is_empty(),
        "nothing was sent to Vault"
    );
}

#[test]
fn a_template_source_file_is_read_and_a_missing_one_named() {
    let vault = seeded();
    let source = vault.file(
        "templates/db.j2",
        "u={{ secret('secret/data/app/db').data.username }}\n",
    );
    let rest = json!({"templates": [
        {"name": "db", "source": source, "destination": out(&vault, "db")},
    ]});
    let config = config(&vault, token_auth(&vault), rest);
    Hydrant::agent_once(&config).run().success();
    assert_eq!(read(&out(&vault, "db")), "u=app-user\n");

    fs::remove_file(&source).expect("remove");
    let line = Hydrant::agent_once(&config).run().failure(64);
    assert!(
        line.starts_with(&format!(
            "hydrant: template db: cannot read source {}: ",
            source.display()
        )),
        "{line}"
    );
}

#[test]
fn an_unwritable_destination_fails_before_logging_in() {
    let vault = seeded();
    let blocker = vault.file("out/not-a-dir", "x");
    let destination = blocker.join("db.env");
    let rest = json!({"templates": [
        {"name": "db", "contents": "x", "destination": destination},
    ]});
    let config = config(&vault, token_auth(&vault), rest);
    let mark = vault.audit_mark();

    let line = Hydrant::agent_once(&config).run().failure(1);

    assert_eq!(
        line,
        format!(
            "hydrant: cannot write files in {} (for db): {} is a file, not a directory",
            blocker.display(),
            blocker.display()
        )
    );
    assert!(
        vault.audit_requests(mark).is_empty(),
        "no login, no secret fetched for nothing"
    );
}

#[test]
fn an_invalid_config_is_a_usage_error_naming_the_key() {
    let vault = seeded();
    let path = vault.file(
        "agent.yaml",
        &format!(
            "vault:\n  address: {}\nauth:\n  method: token\n  token_path: /t\ntemplates:\n  - name: db\n    contents: x\n    destnation: /tmp/x\n",
            vault.addr
        ),
    );
    let line = Hydrant::agent_once(&path).run().failure(64);
    assert!(
        line.starts_with(&format!(
            "hydrant: config invalid: {}: templates[0].destnation: unknown field `destnation`, expected one of name, contents, source, destination, perms, command, command_timeout, syntax, left_delimiter, right_delimiter, error_on_missing_key, create_dest_dirs at line 9",
            path.display()
        )),
        "{line}"
    );

    let path = vault.file(
        "agent2.yaml",
        &format!(
            "vault:\n  address: {}\nauth:\n  method: kubernetes\ntemplates: []\n",
            vault.addr
        ),
    );
    let line = Hydrant::agent_once(&path).run().failure(64);
    assert_eq!(
        line,
        format!(
            "hydrant: config invalid: {}: auth.role: is required by method kubernetes; templates: nothing to render: add templates, secrets or token_sinks",
            path.display()
        )
    );
}

#[test]
fn an_empty_credential_file_is_refused_by_name() {
    let vault = seeded();
    let empty = vault.file("creds/token", "\n");
    let auth = json!({"method": "token", "token_path": empty});
    let config = config(&vault, auth, json!({ "templates": [db_template(&vault)] }));
    let mark = vault.audit_mark();

    let line = Hydrant::agent_once(&config).run().failure(1);

    assert_eq!(
        line,
        format!(
            "hydrant: the token file {} is empty; check the volume that provides it",
            empty.display()
        )
    );
    assert!(vault.audit_requests(mark).is_empty());
}

#[test]
fn the_config_can_come_from_hydrant_agent_config() {
    let vault = seeded();
    let config = config(
        &vault,
        token_auth(&vault),
        json!({ "templates": [db_template(&vault)] }),
    );
    let json = read(&config);

    Hydrant::new(["agent", "--once"])
        .env("HYDRANT_AGENT_CONFIG", json)
        .run()
        .success();

    assert_eq!(read(&out(&vault, "db.env")), expected_db());
}

#[test]
fn secrets_never_reach_the_logs_even_at_trace_level() {
    let vault = seeded();
    let token = vault.token(&["app-read"]);
    let auth = json!({"method": "token", "token_path": vault.file("creds/token", &token)});
    let rest = json!({
        "templates": [db_template(&vault)],
        "secrets": [{"name": "db.json", "path": "secret/data/app/db", "format": "env", "destination": out(&vault, "db.sh")}],
    });
    let config = config(&vault, auth, rest);

    // Every library at trace too: vaultrs and rustify are quiet by default, not trusted.
    for format in ["plain", "json"] {
        let run = Hydrant::agent_once(&config)
            .env("HYDRANT_LOG", "trace,vaultrs=trace,rustify=trace")
            .env("HYDRANT_LOG_FORMAT", format)
            .run()
            .success();
        let logs = format!("{}{}", run.stdout(), run.stderr());
        assert!(logs.lines().count() > 30, "trace logging is on: {logs}");
        assert!(
            logs.contains("Sending Request"),
            "rustify's own events are in: {logs}"
        );
        assert!(logs.contains("rendered"), "{logs}");
        assert!(
            !logs.contains(DB_PASSWORD),
            "the secret value leaked into the {format} logs"
        );
        assert!(
            !logs.contains(&token),
            "the token leaked into the {format} logs"
        );
        assert!(
            read(&out(&vault, "db.env")).contains(DB_PASSWORD),
            "yet the file has it"
        );
        fs::remove_file(out(&vault, "db.env")).expect("remove");
    }
}

#[test]
fn json_logs_are_one_object_per_line() {
    let vault = seeded();
    let config = config(
        &vault,
        token_auth(&vault),
        json!({ "templates": [db_template(&vault)] }),
    );

    let run = Hydrant::agent_once(&config)
        .env("HYDRANT_LOG_FORMAT", "json")
        .run()
        .success();

    let lines: Vec<Value> = run
        .stderr()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let rendered = lines
        .iter()
        .find(|l| l["message"] == "rendered")
        .expect("a rendered event");
    assert_eq!(rendered["name"], "db");
    assert_eq!(rendered["level"], "INFO");
}

#[test]
fn tls_to_vault_checks_the_configured_ca_and_server_name() {
    let vault = seeded_with(VaultOptions { tls: true });
    let ca = vault.ca_cert.clone().expect("dev CA");
    let base = |vault_section: Value| {
        let mut path = config(
            &vault,
            token_auth(&vault),
            json!({ "templates": [db_template(&vault)] }),
        );
        let mut doc: Value = serde_json::from_str(&read(&path)).expect("json");
        doc["vault"] = vault_section;
        path.set_file_name("tls.json");
        fs::write(&path, doc.to_string()).expect("write");
        path
    };

    let ok = base(json!({"address": vault.addr, "ca_cert": ca}));
    Hydrant::agent_once(&ok).run().success();
    assert_eq!(read(&out(&vault, "db.env")), expected_db());

    let pem = base(json!({"address": vault.addr, "ca_cert_pem": read(&ca)}));
    Hydrant::agent_once(&pem).run().success();

    let named = base(json!({"address": vault.addr, "ca_cert": ca, "tls_server_name": "localhost"}));
    Hydrant::agent_once(&named).run().success();

    let wrong_name = base(
        json!({"address": vault.addr, "ca_cert": ca, "tls_server_name": "vault.example.com", }),
    );
    let run = Hydrant::agent_once(&wrong_name).run();
    assert!(
        run.elapsed.as_secs() < 10,
        "a certificate problem is not retried until the deadline (2 min)"
    );
    let line = run.failure(1);
    assert!(
        line.starts_with(&format!(
            "hydrant: TLS to vault at {} failed: invalid peer certificate: ",
            vault.addr
        )),
        "{line}"
    );
    assert!(
        line.ends_with(
            "; check vault.ca_cert (or VAULT_CACERT, or the injector's --vault-ca-cert) and vault.tls_server_name"
        ),
        "{line}"
    );

    let unknown_ca = base(json!({"address": vault.addr}));
    let line = Hydrant::agent_once(&unknown_ca).run().failure(1);
    assert!(
        line.contains("TLS to vault at") && line.contains("certificate"),
        "{line}"
    );

    let skip = base(json!({"address": vault.addr, "tls_skip_verify": true}));
    Hydrant::agent_once(&skip).run().success();

    let bad_ca =
        base(json!({"address": vault.addr, "ca_cert": vault.file("not-a-ca.pem", "hello")}));
    let line = Hydrant::agent_once(&bad_ca).run().failure(64);
    assert!(
        line.contains("vault.ca_cert") && line.contains("holds no PEM certificate"),
        "{line}"
    );
}

/// What a stand-in server on loopback received: each request's path, token header and body.
type Received = std::sync::Arc<std::sync::Mutex<Vec<(String, Option<String>, String)>>>;

/// A server that records every request and answers 200 with an empty Vault response.
fn recorder() -> (String, Received) {
    let received: Received = Default::default();
    let seen = received.clone();
    let app = axum::Router::new().fallback(
        move |headers: axum::http::HeaderMap, uri: axum::http::Uri, body: String| {
            let seen = seen.clone();
            async move {
                let token = headers
                    .get("x-vault-token")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                seen.lock()
                    .expect("lock")
                    .push((uri.to_string(), token, body));
                axum::Json(json!({"data": {"ttl": 3600, "policies": ["default"]}}))
            }
        },
    );
    (crate::util::serve_in_background(app), received)
}

/// A server that answers every request with a 307 to `target` (the same path appended), or,
/// when `target` is `None`, to another path on itself.
fn redirector(target: Option<String>) -> String {
    let app = axum::Router::new().fallback(move |uri: axum::http::Uri| {
        let target = target.clone();
        async move {
            let location = match target {
                Some(base) => format!("{base}{uri}"),
                None => format!("/v1/again{}", uri.path()),
            };
            (
                axum::http::StatusCode::TEMPORARY_REDIRECT,
                [(axum::http::header::LOCATION, location)],
            )
        }
    });
    crate::util::serve_in_background(app)
}

/// The config of [`db_template`] with `auth`, pointed at `address` instead of the dev server.
fn config_at(vault: &Vault, address: &str, auth: Value) -> PathBuf {
    let written = config(vault, auth, json!({"templates": [db_template(vault)]}));
    let mut doc: Value = serde_json::from_str(&read(&written)).expect("config");
    doc["vault"]["address"] = json!(address);
    vault.file(
        "elsewhere.json",
        &serde_json::to_string(&doc).expect("json"),
    )
}

/// Hardening #6: a redirect never carries the token or a login's JWT to another host over plain
/// http, and a request follows one redirect at most. The agent fails with one line saying why,
/// and the other host sees nothing.
#[test]
fn redirects_never_carry_credentials_to_another_host_in_clear() {
    let vault = seeded();
    let (elsewhere, received) = recorder();
    let cross_host = redirector(Some(elsewhere));
    let token_file = vault.file("creds/token", "hvs.the-agents-token");
    let signer = Signer::new();
    let jwt = signer.sign(&jwt::service_account_claims("team-a", "app", "", "uid-1"));
    let jwt_file = vault.file("sa/token", &jwt);
    let cases = [
        json!({"method": "token", "token_path": token_file}),
        json!({"method": "kubernetes", "role": "app", "jwt_path": jwt_file}),
    ];
    for auth in cases {
        let path = config_at(&vault, &cross_host, auth);
        let stderr = Hydrant::agent_once(&path).run().failure(1);
        assert!(
            stderr.contains("redirected to another host over plain http"),
            "{stderr}"
        );
        assert!(
            !stderr.contains("the-agents-token") && !stderr.contains(&jwt),
            "{stderr}"
        );
        assert!(
            received.lock().expect("lock").is_empty(),
            "the other host got a request"
        );
    }

    // Same origin, but a second hop: refused.
    let looping = redirector(None);
    let path = config_at(
        &vault,
        &looping,
        json!({"method": "token", "token_path": token_file}),
    );
    let stderr = Hydrant::agent_once(&path).run().failure(1);
    assert!(stderr.contains("redirected more than 1 time"), "{stderr}");
}

/// A template that never ends (hardening #5): the init container stops it after its steps and
/// exits 1 naming it, instead of running for ever.
#[test]
fn an_endless_loop_fails_the_init_container_promptly_naming_the_template() {
    let vault = seeded();
    let rest = json!({"templates": [
        db_template(&vault),
        {"name": "spin", "contents": "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}", "destination": out(&vault, "spin")},
    ]});
    let config = config(&vault, token_auth(&vault), rest);

    // Spawned, not run: before the fix it never exits, and the test must fail, not hang.
    let mut agent = Hydrant::agent_once(&config).spawn(&vault.path("agent.log"));
    let status = agent.wait(std::time::Duration::from_secs(90));

    assert_eq!(status.code(), Some(1), "{}", agent.log());
    let log = agent.log();
    let line = log.lines().last().unwrap_or_default();
    assert_eq!(
        line,
        "hydrant: template spin: stopped after 10000000 steps, the limit of one render (limits.render_steps); does a loop never end?"
    );
    assert!(!out(&vault, "db.env").exists(), "all or nothing");
}

/// An output past the file limit (hardening #5, 4 MiB by default) is refused naming the
/// template and the limit, and the destination keeps what it had.
#[test]
fn an_output_past_the_file_limit_is_refused_and_the_file_keeps_its_content() {
    let vault = seeded();
    let destination = out(&vault, "big");
    fs::create_dir_all(destination.parent().expect("dir")).expect("mkdir");
    fs::write(&destination, "old\n").expect("old content");
    // 50 000 lines of 100 bytes: 5 MB.
    let rest = json!({"templates": [
        {"name": "big", "contents": "{% for i in range(50000) %}{{ 'x' * 99 }}\n{% endfor %}", "destination": destination},
    ]});
    let config = config(&vault, token_auth(&vault), rest);

    let line = Hydrant::agent_once(&config).run().failure(1);

    assert_eq!(
        line,
        "hydrant: template big: the output is larger than 4194304 bytes, the limit of one file (limits.file_bytes); the file keeps what it had"
    );
    assert_eq!(read(&destination), "old\n");
}

/// `--once` lets `file()` read the config's `watch` list as the sidecar does (hardening #8):
/// the same config works in the init container.
#[test]
fn the_init_container_reads_watched_files_as_the_sidecar_does() {
    let vault = seeded();
    let site = vault.file("podinfo/site", "atlantida\n");
    let rest = json!({
        "watch": [site.parent().expect("dir")],
        "templates": [
            {"name": "site", "contents": format!("site={{{{ file('{}') | trim }}}}\n", site.display()), "destination": out(&vault, "site")},
        ],
    });
    let config = config(&vault, token_auth(&vault), rest);

    Hydrant::agent_once(&config).run().success();

    assert_eq!(read(&out(&vault, "site")), "site=atlantida\n");
}

/// hardening #9: names and paths built from a secret (an include, a `secret()` path, an `env()`
/// name, a `file()` path) and Vault's echo of a write parameter (PKI's `common name ... not
/// allowed`) never reach the error lines or the logs; the template's own text does.
#[test]
fn errors_never_quote_values_computed_from_secrets() {
    const LEAK: &str = "zq9leakvalue";
    let vault = seeded();
    vault.kv2_put("app/leak", json!({"name": LEAK}));
    vault.pki();
    let watched = vault.file("podinfo/site", "a\n");
    let watched = watched.parent().expect("dir");
    let s = "secret('secret/data/app/leak').data.name";
    let probes = [
        ("include", format!("{{% include {s} %}}")),
        (
            "path",
            format!("{{{{ secret('secret/data/app/' ~ {s}) }}}}"),
        ),
        ("env", format!("{{{{ env({s}) }}}}")),
        (
            "file",
            format!("{{{{ file('{}/' ~ {s}) }}}}", watched.display()),
        ),
        (
            "pki",
            format!("{{{{ secret('pki/issue/web', common_name={s} ~ '.evil.org').certificate }}}}"),
        ),
    ];
    let templates: Vec<Value> = probes
        .iter()
        .map(|(name, contents)| json!({"name": name, "contents": contents, "destination": out(&vault, name)}))
        .collect();
    let rest = json!({"watch": [watched], "templates": templates});
    let config = config(&vault, token_auth(&vault), rest);

    let run = Hydrant::agent_once(&config)
        .env("HYDRANT_LOG", "debug")
        .run();
    let stderr = run.stderr();
    let line = run.failure(1);

    assert!(!stderr.contains(LEAK), "a secret in the output:\n{stderr}");
    for (name, _) in &probes {
        assert!(
            stderr.contains(&format!("template {name}")),
            "{name} is reported:\n{stderr}"
        );
    }
    assert!(
        line.starts_with("hydrant: template include line 1 column 4: template not found"),
        "{line}"
    );
    assert!(
        stderr.contains(&format!("(in `env({s})`)")),
        "the template's text is shown:\n{stderr}"
    );
    assert!(
        stderr.contains(
            "template pki: vault refused writing pki/issue/web (400): vault's reason is not shown"
        ),
        "{stderr}"
    );
}

/// hardening #11: a link planted in a watched directory that leads to the agent's state file is
/// refused, naming the file and not its content; a ConfigMap volume's own links are followed.
#[test]
fn file_refuses_a_link_out_of_the_watched_directory_and_follows_configmap_links() {
    use std::os::unix::fs::symlink;
    let vault = seeded();
    let state = vault.file("state/state.json", r#"{"token":"hvs.planted-link-target"}"#);
    let watched = vault.path("podinfo");
    fs::create_dir_all(watched.join("..2024_01_01")).expect("mkdir");
    fs::write(watched.join("..2024_01_01/site"), "atlantida\n").expect("write");
    symlink("..2024_01_01", watched.join("..data")).expect("link");
    symlink("..data/site", watched.join("site")).expect("link");
    symlink(&state, watched.join("planted")).expect("link");
    let template = |name: &str, file: &str| json!({"name": name, "contents": format!("{{{{ file('{}') }}}}", watched.join(file).display()), "destination": out(&vault, name)});
    let rest = json!({"watch": [watched], "templates": [template("site", "site")]});
    let good = config(&vault, token_auth(&vault), rest);
    Hydrant::agent_once(&good).run().success();
    assert_eq!(read(&out(&vault, "site")), "atlantida\n");

    let rest = json!({"watch": [watched], "templates": [template("planted", "planted")]});
    let planted = config(&vault, token_auth(&vault), rest);
    let line = Hydrant::agent_once(&planted).run().failure(1);

    assert!(
        line.starts_with("hydrant: template planted line 1 column 4: invalid operation: file(): refused: the path goes through a link to a file outside the watched directories"),
        "{line}"
    );
    assert!(
        line.contains(&format!(
            "(in `file('{}')`)",
            watched.join("planted").display()
        )),
        "{line}"
    );
    assert!(!line.contains("hvs.planted"), "{line}");
    assert!(!out(&vault, "planted").exists());
}
