//! `hydrant exec` against a real OpenBao (and PostgreSQL for dynamic credentials): the command
//! sees exactly the variables asked for, a KV change restarts it with the new value, SIGTERM
//! reaches it, its exit status comes back, leases are renewed while it runs, and no value
//! reaches a log line.

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::util::agent::agent_config;
use crate::util::{Hydrant, Postgres, Running, Vault, read};

const S: fn(u64) -> Duration = Duration::from_secs;

const PASSWORD: &str = "pw-exec-1";

/// OpenBao with `secret/app/db` (two versions) and a policy that reads it and PostgreSQL
/// credentials, but not `secret/data/other`.
fn seeded() -> Vault {
    let vault = Vault::start();
    vault.kv2_put("app/db", json!({"username": "app-user", "password": "old"}));
    vault.kv2_put(
        "app/db",
        json!({"username": "app-user", "password": PASSWORD, "port": 5432}),
    );
    vault.kv2_put("other", json!({"k": "v"}));
    vault.policy(
        "app",
        r#"
path "secret/data/app/*" { capabilities = ["read"] }
path "database/creds/app" { capabilities = ["read"] }
"#,
    );
    vault
}

fn approle(vault: &Vault) -> Value {
    let (role_id, secret_id) = vault.approle("app", &["app"]);
    json!({
        "method": "approle",
        "role_id_path": vault.file("creds/role-id", &role_id),
        "secret_id_path": vault.file("creds/secret-id", &secret_id),
    })
}

/// A command that writes its PID and environment to `<dir>/env.<n>` (n counts its starts),
/// then runs until SIGTERM, which it records and answers with exit status 7; `exit` given, it
/// exits with that status at once instead.
fn child(vault: &Vault, exit: Option<u8>) -> Vec<String> {
    let dir = vault.path("child");
    fs::create_dir_all(&dir).expect("mkdir");
    let end = match exit {
        Some(code) => format!("exit {code}"),
        None => "trap 'echo TERM > \"$d/term.$n\"; exit 7' TERM\nwhile :; do sleep 0.05; done"
            .to_owned(),
    };
    let script = vault.file(
        "child.sh",
        &format!(
            "d={dir}\nn=$(( $(cat \"$d/count\" 2>/dev/null || echo 0) + 1 ))\necho $n > \"$d/count\"\n{{ echo \"PID=$$\"; env; }} > \"$d/env.tmp\"\nmv \"$d/env.tmp\" \"$d/env.$n\"\n{end}\n",
            dir = dir.display()
        ),
    );
    vec!["/bin/sh".to_owned(), script.display().to_string()]
}

/// The variables the command's `n`th start saw (and its PID, as `PID`).
fn seen(vault: &Vault, n: u32) -> std::collections::BTreeMap<String, String> {
    read(&vault.path(&format!("child/env.{n}")))
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

fn exec(config: &Path, argv: &[String]) -> Hydrant {
    let mut args: Vec<String> = vec!["exec".into(), "--config".into()];
    args.push(config.display().to_string());
    args.push("--".into());
    args.extend(argv.iter().cloned());
    Hydrant::new(args)
}

fn started(vault: &Vault, hydrant: &mut Running, n: u32) {
    let file = vault.path(&format!("child/env.{n}"));
    let deadline = Instant::now() + S(30);
    while !file.exists() {
        assert!(
            Instant::now() < deadline && hydrant.running(),
            "start {n} of the command never came:\n{}",
            hydrant.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn env_of(vault: &Vault) -> Value {
    json!([
        {"name": "DB_PASSWORD", "path": "secret/data/app/db", "key": "password"},
        {"name": "DB_PORT", "path": "secret/app/db", "key": "port"},
        {"name": "OLD_PASSWORD", "path": "secret/data/app/db", "key": "password", "version": 1},
        {"name": "DB_USER", "contents": "{{ secret('secret/data/app/db').data.username }}"},
        {"name": "DSN", "syntax": "consul-template",
         "contents": "{{ with secret \"secret/data/app/db\" }}user={{ .Data.data.username }} pass={{ .Data.data.password }}{{ end }}"},
        {"name": "FROM_FILE", "source": vault.file("tpl/user.j2", "u={{ secret('secret/data/app/db').data.username }}")},
    ])
}

/// With restarts off and no lease to renew, the command replaces hydrant (same PID): it sees
/// exactly the variables asked for, from templates in both syntaxes and from paths and keys
/// (a version too), over hydrant's environment without its configuration; its exit status is
/// hydrant's.
#[test]
fn with_nothing_to_renew_the_command_replaces_hydrant_with_exactly_its_variables() {
    let vault = seeded();
    let config = agent_config(
        &vault,
        approle(&vault),
        json!({"env": env_of(&vault), "exec": {"restart_on_secret_changes": "never"}}),
    );
    let mut hydrant = exec(&config, &child(&vault, Some(3)))
        .env("INHERITED", "yes")
        .env("DB_PASSWORD", "vault:secret/data/app/db#password")
        .spawn(&vault.path("exec.log"));
    let status = hydrant.wait(S(30));
    assert_eq!(status.code(), Some(3), "{}", hydrant.log());
    let env = seen(&vault, 1);
    assert_eq!(env["PID"], hydrant.pid().to_string(), "exec'd in place");
    assert_eq!(env["DB_PASSWORD"], PASSWORD);
    assert_eq!(env["DB_PORT"], "5432");
    assert_eq!(env["OLD_PASSWORD"], "old");
    assert_eq!(env["DB_USER"], "app-user");
    assert_eq!(env["DSN"], format!("user=app-user pass={PASSWORD}"));
    assert_eq!(env["FROM_FILE"], "u=app-user");
    assert_eq!(env["INHERITED"], "yes");
    let names: Vec<&str> = env.keys().map(String::as_str).collect();
    let shell = ["PID", "PWD", "SHLVL", "_", "OLDPWD"];
    let unexpected: Vec<&&str> = names
        .iter()
        .filter(|n| {
            !shell.contains(n)
                && ![
                    "PATH",
                    "INHERITED",
                    "DB_PASSWORD",
                    "DB_PORT",
                    "OLD_PASSWORD",
                    "DB_USER",
                    "DSN",
                    "FROM_FILE",
                ]
                .contains(n)
        })
        .collect();
    assert!(
        unexpected.is_empty(),
        "unexpected variables: {unexpected:?}"
    );
    assert!(!hydrant.log().contains(PASSWORD), "{}", hydrant.log());
}

/// A supervised command is restarted with the new value when a KV secret changes (stopped
/// with its stop signal first); SIGTERM to hydrant reaches the command, and the command's
/// status is hydrant's. At trace level, no value is in any log line.
#[test]
fn a_kv_change_restarts_the_command_and_sigterm_reaches_it() {
    let vault = seeded();
    let config = agent_config(
        &vault,
        approle(&vault),
        json!({
            "refresh_interval": "1s",
            "env": [{"name": "DB_PASSWORD", "path": "secret/data/app/db", "key": "password"}],
        }),
    );
    let mut hydrant = exec(&config, &child(&vault, None))
        .env("HYDRANT_LOG", "trace,vaultrs=trace,rustify=trace")
        .spawn(&vault.path("exec.log"));
    started(&vault, &mut hydrant, 1);
    let first = seen(&vault, 1);
    assert_eq!(first["DB_PASSWORD"], PASSWORD);
    assert_ne!(first["PID"], hydrant.pid().to_string(), "supervised");

    vault.kv2_put(
        "app/db",
        json!({"username": "app-user", "password": "pw-exec-2"}),
    );
    started(&vault, &mut hydrant, 2);
    assert_eq!(seen(&vault, 2)["DB_PASSWORD"], "pw-exec-2");
    assert!(
        vault.path("child/term.1").exists(),
        "the first start was stopped with SIGTERM"
    );

    hydrant.signal("TERM");
    let status = hydrant.wait(S(15));
    assert_eq!(status.code(), Some(7), "{}", hydrant.log());
    assert!(vault.path("child/term.2").exists(), "SIGTERM reached it");
    let log = hydrant.log();
    assert!(log.lines().count() > 30, "trace logging is on: {log}");
    for value in [PASSWORD, "pw-exec-2"] {
        assert!(!log.contains(value), "a value leaked into the log:\n{log}");
    }
}

/// Dynamic database credentials are renewed while the command runs (restarts off: it keeps
/// the credentials it started with, and they keep working past their first TTL).
#[test]
fn dynamic_credentials_are_renewed_while_the_command_runs() {
    let vault = seeded();
    let postgres = Postgres::start();
    vault.database_role(&postgres, "10s", "1h");
    let config = agent_config(
        &vault,
        approle(&vault),
        json!({
            "env": [
                {"name": "PGUSER", "path": "database/creds/app", "key": "username"},
                {"name": "PGPASSWORD", "path": "database/creds/app", "key": "password"},
            ],
            "exec": {"restart_on_secret_changes": "never"},
        }),
    );
    let mark = vault.audit_mark();
    let mut hydrant = exec(&config, &child(&vault, None)).spawn(&vault.path("exec.log"));
    started(&vault, &mut hydrant, 1);
    let env = seen(&vault, 1);
    assert_ne!(
        env["PID"],
        hydrant.pid().to_string(),
        "a lease keeps hydrant"
    );
    std::thread::sleep(S(14));
    assert!(
        postgres.can_log_in(&env["PGUSER"], &env["PGPASSWORD"]),
        "the credentials outlive their first 10 s: {:?}\n{}",
        vault.audit_counts(mark),
        hydrant.log()
    );
    let counts = vault.audit_counts(mark);
    assert_eq!(
        counts.get("read database/creds/app").copied(),
        Some(1),
        "one set of credentials for both variables: {counts:?}"
    );
    assert!(
        counts.get("update sys/leases/renew").copied().unwrap_or(0) >= 1,
        "renewed: {counts:?}"
    );
    assert!(!vault.path("child/env.2").exists(), "never restarted");
    hydrant.signal("TERM");
    assert_eq!(hydrant.wait(S(15)).code(), Some(7));
}

/// A path the role cannot read fails the start with one line naming it; the command never
/// runs.
#[test]
fn a_path_the_role_cannot_read_fails_the_start_with_one_line() {
    let vault = seeded();
    let config = agent_config(
        &vault,
        approle(&vault),
        json!({"env": [{"name": "K", "path": "secret/data/other", "key": "k"}]}),
    );
    let run = exec(&config, &child(&vault, Some(0))).run();
    let line = run.failure(1);
    assert!(line.contains("secret/data/other"), "{line}");
    assert!(line.contains("permission denied"), "{line}");
    assert!(!vault.path("child/env.1").exists(), "the command never ran");
}

/// Bad configurations and command lines are refused before anything is sent to Vault.
#[test]
fn bad_names_missing_keys_and_missing_commands_are_usage_errors() {
    let vault = seeded();
    let auth = approle(&vault);
    let bad = agent_config(
        &vault,
        auth.clone(),
        json!({"env": [
            {"name": "1BAD", "path": "secret/data/app/db", "key": "password"},
            {"name": "NO_KEY", "path": "secret/data/app/db"},
        ]}),
    );
    let line = exec(&bad, &child(&vault, Some(0))).run().failure(64);
    assert!(line.contains("env[0].name"), "{line}");
    assert!(line.contains("env[1].key"), "{line}");

    let good = agent_config(
        &vault,
        auth.clone(),
        json!({"env": [{"name": "A", "path": "secret/data/app/db", "key": "password"}]}),
    );
    let line = exec(&good, &[]).run().failure(64);
    assert!(line.contains("no command"), "{line}");
    let run = exec(Path::new("/nope"), &["/bin/true".to_owned()]).run();
    let stderr = run.stderr();
    assert_eq!(run.code(), 64, "{stderr}");
    assert_eq!(
        stderr.matches("No such file or directory").count(),
        1,
        "the cause once: {stderr}"
    );
    let files = agent_config(
        &vault,
        auth.clone(),
        json!({"env": [{"name": "A", "path": "secret/data/app/db", "key": "nope"}]}),
    );
    let line = exec(&files, &child(&vault, Some(0))).run().failure(1);
    assert!(line.contains("has no key \"nope\""), "{line}");
}

/// `hydrant install` copies the running binary whole, executable, under the name the webhook's
/// containers run (the image has no `cp`); a directory it cannot write is one line and status 1.
#[test]
fn install_copies_the_binary_that_the_webhook_s_containers_run() {
    let dir = tempfile::tempdir().expect("tempdir");
    let to = dir.path().join("bin");
    fs::create_dir(&to).expect("mkdir");
    Hydrant::new(["install", "--to"])
        .run_with_arg(&to)
        .success();
    let copy = to.join("hydrant");
    assert_eq!(
        fs::read(&copy).expect("copied"),
        fs::read(env!("CARGO_BIN_EXE_hydrant")).expect("the binary")
    );
    assert_eq!(crate::util::mode(&copy), 0o755);
    assert_eq!(
        Path::new(injector::names::EXEC_BINARY).file_name(),
        copy.file_name()
    );
    let version = std::process::Command::new(&copy)
        .arg("--version")
        .output()
        .expect("the copy runs");
    assert!(version.status.success());
    // Again, over the copy: the pod's init container may run twice.
    Hydrant::new(["install", "--to"])
        .run_with_arg(&to)
        .success();
    assert_eq!(fs::read_dir(&to).expect("dir").count(), 1, "no leftovers");

    let line = Hydrant::new(["install", "--to"])
        .run_with_arg(dir.path().join("missing"))
        .failure(1);
    assert!(
        line.starts_with("hydrant: cannot copy hydrant to ") && line.contains("writable volume"),
        "{line}"
    );
}
