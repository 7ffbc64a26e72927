//! Vault Agent configurations, unchanged, with `bao agent` as the oracle: the same HCL (or JSON)
//! file is given to `bao agent` and to `hydrant agent --config`, against the same OpenBao dev
//! server, and the files both write are compared byte for byte. Token sinks hold different
//! tokens, so for them the test checks that each token works. Kubernetes auth goes through the
//! TokenReview stand-in (no kube-apiserver runs here).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::json;

use crate::util::jwt::{self, Signer};
use crate::util::token_review::{TokenReviewer, kubernetes_setup};
use crate::util::{Hydrant, KillOnDrop, Vault, bao, mode, read, wait_for};

/// A dev server with a KV v2 secret, a KV v1 secret and a policy `app` that reads them.
fn seeded() -> Vault {
    let vault = Vault::start();
    vault.kv2_put(
        "app/db",
        json!({"username": "app-user", "password": "s3cr3t", "port": 5432}),
    );
    vault.mount("kv", "kv", json!({}));
    vault.api("POST", "kv/legacy", Some(json!({"user": "old"})));
    vault.policy(
        "app",
        "path \"secret/data/app/*\" { capabilities = [\"read\"] }\npath \"kv/*\" { capabilities = [\"read\"] }\n",
    );
    vault
}

/// The templates every case renders: vault-k8s's default `map` template, a KV v1 read, and a
/// template file with its own delimiters and mode.
const TEMPLATES: &str = r#"
template {
  destination = "@OUT@/db-creds"
  contents    = "{{ with secret \"secret/data/app/db\" }}{{ range $k, $v := .Data }}{{ $k }}: {{ $v }}\n{{ end }}{{ end }}"
}

template {
  destination = "@OUT@/nested/dir/legacy.txt"
  contents    = <<EOT
user={{ with secret "kv/legacy" }}{{ .Data.user }}{{ end }}
home=${HOME}
EOT
  perms = 0600
}

template {
  source          = "@OUT@/../db.ctmpl"
  destination     = "@OUT@/db.json"
  left_delimiter  = "[["
  right_delimiter = "]]"
  perms           = "0640"
  error_on_missing_key = true
}
"#;

/// What one agent run left.
struct Run {
    dir: PathBuf,
    result: Result<(), String>,
}

/// Gives `config` (with `@OUT@` the agent's own output directory and `@DIR@` the test's
/// directory) to `bao agent` and to `hydrant agent`, each on its own copy, and returns each
/// run. `prepare` sets up each agent's credential files in its directory before it runs.
fn both(vault: &Vault, name: &str, config: &str, prepare: impl Fn(&Path)) -> (Run, Run) {
    let base = vault.path(&format!("hcl-{name}"));
    let run = |agent: &str| {
        let dir = base.join(agent);
        let out = dir.join("out");
        std::fs::create_dir_all(&out).expect("out dir");
        std::fs::write(
            dir.join("db.ctmpl"),
            "[[ with secret \"secret/data/app/db\" ]][[ .Data.data | toJSON ]][[ end ]]\n",
        )
        .expect("template file");
        prepare(&dir);
        let text = config
            .replace("@OUT@", &out.display().to_string())
            .replace("@DIR@", &dir.display().to_string());
        let file = dir.join(if text.trim_start().starts_with('{') {
            "agent.json"
        } else {
            "agent.hcl"
        });
        std::fs::write(&file, text).expect("config");
        let log = dir.join("log");
        let result = if agent == "bao" {
            run_bao(&file, &log)
        } else {
            let run = Hydrant::new(["agent", "--config"])
                .env("HYDRANT_LOG", "warn")
                .env("HOME", "/home/app")
                .run_with_arg(&file);
            std::fs::write(&log, run.stderr()).expect("log");
            if run.code() == 0 {
                Ok(())
            } else {
                Err(run.stderr())
            }
        };
        Run { dir, result }
    };
    (run("bao"), run("hydrant"))
}

/// `bao agent -config FILE`, which exits once it has authenticated, written its sinks and
/// rendered every template (`exit_after_auth`).
fn run_bao(config: &Path, log: &Path) -> Result<(), String> {
    run_bao_with(config, log, &[])
}

/// [`run_bao`] with more environment variables (only PATH and HOME otherwise).
pub(crate) fn run_bao_with(
    config: &Path,
    log: &Path,
    env: &[(String, String)],
) -> Result<(), String> {
    let mut all = vec![("HOME", "/home/app")];
    all.extend(env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    crate::util::run_bao_agent(config, log, &all)
}

/// Every file under `dir`, relative, sorted.
pub(crate) fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("read dir").flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path.strip_prefix(dir).expect("under dir").to_owned());
            }
        }
    }
    out.sort();
    out
}

/// Both agents succeeded and wrote the same files, with the same bytes and modes, except the
/// token sinks named in `sinks`, whose tokens must each work.
fn assert_same(vault: &Vault, (bao, hydrant): &(Run, Run), sinks: &[&str]) {
    if let Err(log) = &bao.result {
        panic!("bao agent failed:\n{log}");
    }
    if let Err(log) = &hydrant.result {
        panic!("hydrant failed:\n{log}");
    }
    let (bao_out, hydrant_out) = (bao.dir.join("out"), hydrant.dir.join("out"));
    let names = files(&bao_out);
    assert_eq!(files(&hydrant_out), names, "the same files");
    assert!(names.len() > sinks.len(), "templates rendered: {names:?}");
    for name in &names {
        let (want, got) = (bao_out.join(name), hydrant_out.join(name));
        assert_eq!(mode(&got), mode(&want), "mode of {}", name.display());
        if sinks.iter().any(|s| Path::new(s) == name) {
            for token in [read(&want), read(&got)] {
                vault
                    .api_as(token.trim(), "GET", "auth/token/lookup-self", None)
                    .unwrap_or_else(|e| {
                        panic!("the token in {} does not work: {e:?}", name.display())
                    });
            }
            continue;
        }
        assert_eq!(
            read(&got),
            read(&want),
            "{} differs from bao agent's",
            name.display()
        );
    }
}

fn hcl(vault: &Vault, auto_auth: &str) -> String {
    format!(
        "vault {{\n  address = \"{}\"\n}}\nexit_after_auth = true\npid_file = \"@DIR@/pid\"\nauto_auth {{\n{auto_auth}\n  sink \"file\" {{\n    config = {{\n      path = \"@OUT@/token\"\n      mode = 0600\n    }}\n  }}\n}}\n{TEMPLATES}",
        vault.addr
    )
}

#[test]
fn token_file_auth_writes_what_bao_agent_writes() {
    let vault = seeded();
    let token = vault.token(&["app"]);
    let config = hcl(
        &vault,
        "  method \"token_file\" {\n    config = {\n      token_file_path = \"@DIR@/vault-token\"\n    }\n  }",
    );
    let runs = both(&vault, "token-file", &config, |dir| {
        std::fs::write(dir.join("vault-token"), &token).expect("token");
    });
    assert_same(&vault, &runs, &["token"]);
    for run in [&runs.0, &runs.1] {
        assert!(
            !run.dir.join("pid").exists(),
            "the pid file is removed at exit"
        );
    }
}

#[test]
fn approle_auth_writes_what_bao_agent_writes_and_removes_the_secret_id() {
    let vault = seeded();
    let (role_id, _) = vault.approle("app", &["app"]);
    let config = hcl(
        &vault,
        "  method \"approle\" {\n    mount_path = \"auth/approle\"\n    config = {\n      role_id_file_path = \"@DIR@/role-id\"\n      secret_id_file_path = \"@DIR@/secret-id\"\n    }\n  }",
    );
    let runs = both(&vault, "approle", &config, |dir| {
        let secret_id =
            vault.api("POST", "auth/approle/role/app/secret-id", None)["data"]["secret_id"]
                .as_str()
                .expect("secret id")
                .to_owned();
        std::fs::write(dir.join("role-id"), &role_id).expect("role id");
        std::fs::write(dir.join("secret-id"), secret_id).expect("secret id");
    });
    assert_same(&vault, &runs, &["token"]);
    for run in [&runs.0, &runs.1] {
        assert!(run.dir.join("role-id").exists());
        assert!(
            !run.dir.join("secret-id").exists(),
            "remove_secret_id_file_after_reading defaults to true"
        );
    }
}

#[test]
fn jwt_auth_writes_what_bao_agent_writes_and_removes_the_jwt() {
    let vault = seeded();
    let signer = Signer::new();
    jwt::setup(&vault, &signer, "app");
    let token = signer.sign(&jwt::service_account_claims(
        "team-a", "app", "vault", "0b7c-uid",
    ));
    let config = hcl(
        &vault,
        "  method \"jwt\" {\n    config = {\n      role = \"app\"\n      path = \"@DIR@/jwt\"\n    }\n  }",
    );
    let runs = both(&vault, "jwt", &config, |dir| {
        std::fs::write(dir.join("jwt"), &token).expect("jwt");
    });
    assert_same(&vault, &runs, &["token"]);
    for run in [&runs.0, &runs.1] {
        assert!(
            !run.dir.join("jwt").exists(),
            "remove_jwt_after_reading defaults to true"
        );
    }
}

#[test]
fn kubernetes_auth_writes_what_bao_agent_writes() {
    let vault = seeded();
    let reviewer = TokenReviewer::start();
    kubernetes_setup(&vault, &reviewer, "app", None, &["app"]);
    let token = reviewer.accepted_token("app", "vault", "0b7c-uid");
    let config = hcl(
        &vault,
        "  method \"kubernetes\" {\n    mount_path = \"auth/kubernetes\"\n    config = {\n      role = \"app\"\n      token_path = \"@DIR@/sa-token\"\n    }\n  }",
    );
    let runs = both(&vault, "kubernetes", &config, |dir| {
        std::fs::write(dir.join("sa-token"), &token).expect("sa token");
    });
    assert_same(&vault, &runs, &["token"]);
}

/// What vault-k8s gives its init container for an annotated pod, in its JSON form.
#[test]
fn vault_k8s_json_config_writes_what_bao_agent_writes() {
    let vault = seeded();
    let reviewer = TokenReviewer::start();
    kubernetes_setup(&vault, &reviewer, "app", None, &["app"]);
    let token = reviewer.accepted_token("app", "vault", "0b7c-uid");
    let config = json!({
        "auto_auth": {
            "method": {
                "type": "kubernetes",
                "mount_path": "auth/kubernetes",
                "config": {"role": "app", "token_path": "@DIR@/sa-token"}
            },
            "sink": [{"type": "file", "config": {"path": "@OUT@/.vault-token"}}]
        },
        "exit_after_auth": true,
        "pid_file": "@DIR@/.pid",
        "vault": {"address": vault.addr},
        "template": [{
            "destination": "@OUT@/db-creds",
            "contents": "{{ with secret \"secret/data/app/db\" }}{{ range $k, $v := .Data }}{{ $k }}: {{ $v }}\n{{ end }}{{ end }}",
            "left_delimiter": "{{",
            "right_delimiter": "}}",
            "command": "",
            "error_on_missing_key": false
        }],
        "template_config": {"exit_on_retry_failure": true}
    });
    let runs = both(&vault, "vault-k8s", &config.to_string(), |dir| {
        std::fs::write(dir.join("sa-token"), &token).expect("sa token");
    });
    assert_same(&vault, &runs, &[".vault-token"]);
}

#[test]
fn a_config_directory_merges_as_bao_agent_merges_it() {
    let vault = seeded();
    let token = vault.token(&["app"]);
    let base = vault.path("hcl-dir");
    let run = |agent: &str| {
        let dir = base.join(agent);
        let (conf, out) = (dir.join("conf.d"), dir.join("out"));
        std::fs::create_dir_all(&conf).expect("conf dir");
        std::fs::create_dir_all(&out).expect("out dir");
        std::fs::write(dir.join("vault-token"), &token).expect("token");
        let o = out.display();
        std::fs::write(
            conf.join("10-auth.hcl"),
            format!(
                "vault {{\n  address = \"http://127.0.0.1:1\"\n}}\nauto_auth {{\n  method \"token_file\" {{\n    config = {{ token_file_path = \"{}/vault-token\" }}\n  }}\n}}\ntemplate {{\n  destination = \"{o}/a\"\n  contents = \"{{{{ with secret \\\"secret/data/app/db\\\" }}}}{{{{ .Data.data.username }}}}{{{{ end }}}}\"\n}}\n",
                dir.display()
            ),
        )
        .expect("first");
        std::fs::write(
            conf.join("20-more.json"),
            json!({
                "vault": {"address": vault.addr},
                "exit_after_auth": true,
                "template": {"destination": format!("{o}/b"), "contents": "{{ with secret \"kv/legacy\" }}{{ .Data.user }}{{ end }}"}
            })
            .to_string(),
        )
        .expect("second");
        std::fs::write(conf.join("notes.txt~"), "not a config").expect("other");
        let log = dir.join("log");
        let result = if agent == "bao" {
            run_bao(&conf, &log)
        } else {
            let run = Hydrant::new(["agent", "--config"]).run_with_arg(&conf);
            if run.code() == 0 {
                Ok(())
            } else {
                Err(run.stderr())
            }
        };
        Run { dir, result }
    };
    let runs = (run("bao"), run("hydrant"));
    assert_same(&vault, &runs, &[]);
}

#[test]
fn a_config_mistake_names_file_line_and_key_and_costs_no_login() {
    let vault = seeded();
    let token_file = vault.file("hcl-mistake/token", &vault.token(&["app"]));
    let config = vault.file(
        "hcl-mistake/agent.hcl",
        &format!(
            "vault {{\n  address = \"{}\"\n}}\nexit_after_auth = true\nauto_auth {{\n  method \"token_file\" {{\n    config = {{\n      token_file_path = \"{}\"\n      remove_token = true\n    }}\n  }}\n}}\ntemplate {{\n  destination = \"/tmp/x\"\n  contents = \"x\"\n}}\ncache {{\n  use_auto_auth_token = true\n}}\n",
            vault.addr,
            token_file.display()
        ),
    );
    let mark = vault.audit_mark();
    let err = Hydrant::new(["agent", "--config"])
        .run_with_arg(&config)
        .failure(64);
    let shown = config.display();
    assert!(
        err.contains(&format!(
            "{shown}:9:7: auto_auth.method.config.remove_token: unknown key"
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!("{shown}:17:1: cache: not supported by hydrant")),
        "{err}"
    );
    let syntax = vault.file(
        "hcl-mistake/broken.hcl",
        "vault {\n  address = \"x\"\n  retry {\n",
    );
    let err = Hydrant::new(["agent", "--config"])
        .run_with_arg(&syntax)
        .failure(64);
    assert!(err.contains(&format!("{}:3:", syntax.display())), "{err}");
    assert_eq!(
        vault.audit_requests(mark),
        Vec::new(),
        "nothing reached Vault"
    );
}

/// Without `exit_after_auth` the same HCL runs the sidecar: the token sink is replaced at each
/// re-login (the token lives 3 s, at most 6 s) and always holds a token that works; the secret-ID
/// file, removed after the first read, is not needed for the next logins; the pid file holds the
/// agent's process ID while it runs and is gone after SIGTERM.
#[test]
fn the_sidecar_keeps_the_token_sink_current_across_re_logins() {
    let vault = seeded();
    let (role_id, secret_id) = vault.approle("app", &["app"]);
    vault.api(
        "POST",
        "auth/approle/role/app",
        Some(json!({"token_policies": ["app"], "token_ttl": "3s", "token_max_ttl": "6s"})),
    );
    let dir = vault.path("hcl-sidecar");
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::write(dir.join("role-id"), &role_id).expect("role id");
    std::fs::write(dir.join("secret-id"), &secret_id).expect("secret id");
    let d = dir.display();
    let config = vault.file(
        "hcl-sidecar/agent.hcl",
        &format!(
            "vault {{\n  address = \"{}\"\n}}\npid_file = \"{d}/pid\"\nauto_auth {{\n  method \"approle\" {{\n    config = {{\n      role_id_file_path = \"{d}/role-id\"\n      secret_id_file_path = \"{d}/secret-id\"\n    }}\n  }}\n  sink \"file\" {{\n    config = {{ path = \"{d}/out/token\" }}\n  }}\n}}\ntemplate {{\n  destination = \"{d}/out/user\"\n  contents = \"{{{{ with secret \\\"secret/data/app/db\\\" }}}}{{{{ .Data.data.username }}}}{{{{ end }}}}\"\n}}\n",
            vault.addr
        ),
    );
    let mut agent = Hydrant::sidecar(&config)
        .env("HYDRANT_LOG", "hydrant=debug")
        .spawn(&dir.join("log"));
    let sink = dir.join("out/token");
    wait_for("the token sink", Duration::from_secs(20), || sink.exists());
    let first = read(&sink);
    assert_eq!(mode(&sink), 0o640, "Vault Agent's default sink mode");
    assert_eq!(read(&dir.join("pid")), agent.pid().to_string());
    assert!(!dir.join("secret-id").exists(), "removed after reading");
    wait_for("a new token in the sink", Duration::from_secs(20), || {
        read(&sink) != first
    });
    let second = read(&sink);
    vault
        .api_as(second.trim(), "GET", "auth/token/lookup-self", None)
        .unwrap_or_else(|e| panic!("the new token does not work: {e:?}\n{}", agent.log()));
    assert_eq!(read(&dir.join("out/user")), "app-user");
    agent.stop();
    assert!(!dir.join("pid").exists(), "the pid file is removed at exit");
}

/// `create_dest_dirs = false` refuses a destination whose directory is missing, before any login;
/// by default (consul-template's true) the directories are created.
#[test]
fn create_dest_dirs_false_refuses_a_missing_directory_before_logging_in() {
    let vault = seeded();
    let token_file = vault.file("hcl-dirs/token", &vault.token(&["app"]));
    let out = vault.path("hcl-dirs/out");
    let config = |create: &str| {
        vault.file(
            "hcl-dirs/agent.hcl",
            &format!(
                "vault {{\n  address = \"{}\"\n}}\nexit_after_auth = true\nauto_auth {{\n  method \"token_file\" {{\n    config = {{ token_file_path = \"{}\" }}\n  }}\n}}\ntemplate {{\n  destination = \"{}/a/b/user\"\n  contents = \"x\"\n  {create}\n}}\n",
                vault.addr,
                token_file.display(),
                out.display()
            ),
        )
    };
    let mark = vault.audit_mark();
    let err = Hydrant::new(["agent", "--config"])
        .run_with_arg(config("create_dest_dirs = false"))
        .failure(1);
    assert!(err.contains("create_dest_dirs is false"), "{err}");
    assert_eq!(vault.audit_requests(mark), Vec::new(), "no login");
    Hydrant::new(["agent", "--config"])
        .run_with_arg(config(""))
        .success();
    assert_eq!(read(&out.join("a/b/user")), "x");
}

/// A template's `command` under `exit_after_auth`, as consul-template runs it in once mode: after
/// the files are written, for each file that changed, in order, a command shared by two files
/// once; a file already holding its content runs none. A string with spaces runs under `sh -c`,
/// a list is the argv. Both agents leave the same log of commands. (consul-template shares a
/// command only within one render pass, and a template that reads no secret renders in a pass of
/// its own: the two files sharing a command here both read the same secret.)
#[test]
fn template_commands_run_once_after_auth_as_bao_agent_runs_them() {
    let vault = seeded();
    let token = vault.token(&["app"]);
    let extra = r#"
template {
  destination = "@OUT@/user"
  contents    = "{{ with secret \"secret/data/app/db\" }}{{ .Data.data.username }}{{ end }}"
  command     = "echo user >> @OUT@/commands.log"
}
template {
  destination = "@OUT@/same-command"
  contents    = "{{ with secret \"secret/data/app/db\" }}{{ .Data.data.password }}{{ end }}"
  command     = "echo user >> @OUT@/commands.log"
}
template {
  destination = "@OUT@/unchanged"
  contents    = "already there"
  command     = "echo unchanged >> @OUT@/commands.log"
}
template {
  destination = "@OUT@/port"
  contents    = "{{ with secret \"secret/data/app/db\" }}{{ .Data.data.port }}{{ end }}"
  command     = ["touch", "@OUT@/touched"]
}
"#;
    let config = hcl(
        &vault,
        "  method \"token_file\" {\n    config = {\n      token_file_path = \"@DIR@/vault-token\"\n    }\n  }",
    ) + extra;
    let runs = both(&vault, "commands", &config, |dir| {
        std::fs::write(dir.join("vault-token"), &token).expect("token");
        std::fs::write(dir.join("out/unchanged"), "already there").expect("unchanged");
    });
    assert_same(&vault, &runs, &["token"]);
    let log = read(&runs.1.dir.join("out/commands.log"));
    assert_eq!(
        log, "user\n",
        "one run of the shared command, none for the unchanged file"
    );
    assert!(runs.1.dir.join("out/touched").exists());
}

/// AppRole without `secret_id_file_path`: a role that binds no secret ID (`bind_secret_id=false`,
/// limited to this machine's address instead) logs in with its role ID alone, in Vault Agent as
/// in hydrant.
#[test]
fn approle_without_a_secret_id_logs_in_with_the_role_id_alone_as_bao_agent_does() {
    let vault = seeded();
    let (role_id, _) = vault.approle("app", &["app"]);
    vault.api(
        "POST",
        "auth/approle/role/app",
        Some(json!({"bind_secret_id": false, "secret_id_bound_cidrs": ["127.0.0.0/8"]})),
    );
    let config = hcl(
        &vault,
        "  method \"approle\" {\n    config = {\n      role_id_file_path = \"@DIR@/role-id\"\n    }\n  }",
    );
    let runs = both(&vault, "approle-no-secret-id", &config, |dir| {
        std::fs::write(dir.join("role-id"), &role_id).expect("role id");
    });
    assert_same(&vault, &runs, &["token"]);
    assert!(runs.1.dir.join("role-id").exists(), "the role ID is kept");
}

// Vault Agent's process supervisor (`env_template` and `exec`): both agents run the same file at
// once against one OpenBao, each with its own child, which writes its environment to a file at
// every start; what the two children saw is compared, name for name.

/// The variables every process-supervisor case renders: KV v2 and v1 reads, a template file with
/// its own delimiters (a value ending in a newline), a missing key, and `DB_USER`, which the
/// agents' own environment holds too (the template's value must win).
const ENV_TEMPLATES: &str = r#"
env_template "DB_USER" {
  contents = "{{ with secret \"secret/data/app/db\" }}{{ .Data.data.username }}{{ end }}"
}

env_template "DB_PASSWORD" {
  contents             = "{{ with secret \"secret/data/app/db\" }}{{ .Data.data.password }}{{ end }}"
  error_on_missing_key = true
}

env_template "DSN" {
  contents = "{{ with secret \"secret/data/app/db\" }}user={{ .Data.data.username }} port={{ .Data.data.port }}{{ end }}"
}

env_template "LEGACY" {
  contents = <<EOT
{{ with secret "kv/legacy" }}{{ .Data.user }}{{ end }}
EOT
}

env_template "FROM_FILE" {
  source          = "@DIR@/db.ctmpl"
  left_delimiter  = "[["
  right_delimiter = "]]"
}

env_template "MISSING" {
  contents = "{{ with secret \"secret/data/app/db\" }}{{ .Data.data.nope }}{{ end }}"
}
"#;

/// The names compared: the templates' and two the child inherits from its agent.
const SEEN: [&str; 8] = [
    "DB_USER",
    "DB_PASSWORD",
    "DSN",
    "LEGACY",
    "FROM_FILE",
    "MISSING",
    "HOME",
    "INHERITED",
];

/// A process-supervisor file: token_file auth, the variables, and `exec` running `@DIR@/child.sh`
/// (which writes its environment to `@DIR@/seen.<n>` at its `n`th start, then runs `end`); with
/// `sink`, a token sink `@DIR@/token` too.
fn supervisor_hcl(vault: &Vault, restart: &str, sink: bool) -> String {
    let hcl = format!(
        "vault {{\n  address = \"{}\"\n}}\npid_file = \"@DIR@/pid\"\nauto_auth {{\n  method \"token_file\" {{\n    config = {{\n      token_file_path = \"@DIR@/vault-token\"\n    }}\n  }}\n}}\ntemplate_config {{\n  static_secret_render_interval = \"1s\"\n}}\n{ENV_TEMPLATES}\nexec {{\n  command                   = [\"/bin/sh\", \"@DIR@/child.sh\"]\n  restart_on_secret_changes = \"{restart}\"\n  restart_stop_signal       = \"SIGTERM\"\n}}\n",
        vault.addr
    );
    if sink {
        hcl.replace(
            "\n}\ntemplate_config",
            "\n  sink \"file\" {\n    config = {\n      path = \"@DIR@/token\"\n    }\n  }\n}\ntemplate_config",
        )
    } else {
        hcl
    }
}

/// One agent running a process-supervisor file, with its child's directory.
struct Supervisor {
    agent: &'static str,
    dir: PathBuf,
    process: KillOnDrop,
}

impl Supervisor {
    /// Starts `agent` on `config` in its own directory under the test's, the child running
    /// `end` after it has written what it saw. The agent is `bao` (`bao agent -config`),
    /// `hydrant` (`hydrant agent --config`), `hydrant-exec` (`hydrant exec --config`, the
    /// command from the file) or `hydrant-exec--` (the file's exec stanza without its command,
    /// which comes after `--`).
    fn start(vault: &Vault, case: &str, agent: &'static str, config: &str, end: &str) -> Self {
        let dir = vault.path(&format!("supervisor-{case}/{agent}"));
        std::fs::create_dir_all(&dir).expect("dir");
        std::fs::write(dir.join("vault-token"), vault.token(&["app"])).expect("token");
        std::fs::write(
            dir.join("db.ctmpl"),
            "[[ with secret \"secret/data/app/db\" ]][[ .Data.data | toJSON ]][[ end ]]\n",
        )
        .expect("template file");
        std::fs::write(
            dir.join("child.sh"),
            format!(
                "d={d}\nn=$(( $(cat \"$d/count\" 2>/dev/null || echo 0) + 1 ))\necho $n > \"$d/count\"\nenv -0 > \"$d/seen.tmp\"\nmv \"$d/seen.tmp\" \"$d/seen.$n\"\n{end}\n",
                d = dir.display()
            ),
        )
        .expect("child");
        let file = dir.join("agent.hcl");
        let config = match agent {
            "hydrant-exec--" => config
                .lines()
                .filter(|line| !line.trim_start().starts_with("command "))
                .collect::<Vec<_>>()
                .join("\n"),
            _ => config.to_owned(),
        };
        std::fs::write(&file, config.replace("@DIR@", &dir.display().to_string())).expect("config");
        let log = std::fs::File::create(dir.join("log")).expect("log");
        let hydrant = |args: &[&str]| {
            let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_hydrant"));
            c.args(args).arg(&file).env("HYDRANT_LOG", "info");
            c
        };
        let mut command = match agent {
            "bao" => {
                let mut c = std::process::Command::new(bao());
                c.arg("agent").arg(format!("-config={}", file.display()));
                c
            }
            "hydrant" => hydrant(&["agent", "--config"]),
            "hydrant-exec" => hydrant(&["exec", "--config"]),
            _ => {
                let mut c = hydrant(&["exec", "--config"]);
                c.arg("--").arg("/bin/sh").arg(dir.join("child.sh"));
                c
            }
        };
        let process = command
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", "/home/app")
            .env("INHERITED", "from the agent")
            .env("DB_USER", "placeholder")
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start the agent");
        Supervisor {
            agent,
            dir,
            process: KillOnDrop(process),
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("log")).unwrap_or_default()
    }

    /// Waits for the child's `n`th start; the agent must not have exited.
    fn started(&mut self, n: u32, timeout: Duration) {
        let file = self.dir.join(format!("seen.{n}"));
        let deadline = std::time::Instant::now() + timeout;
        while !file.exists() {
            let exited = self.process.0.try_wait().expect("wait").is_some();
            assert!(
                !exited && std::time::Instant::now() < deadline,
                "{}: start {n} of the child never came:\n{}",
                self.agent,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// What the child's `n`th start saw, of the names compared.
    fn seen(&self, n: u32) -> std::collections::BTreeMap<String, String> {
        let bytes = std::fs::read(self.dir.join(format!("seen.{n}"))).expect("seen");
        String::from_utf8(bytes)
            .expect("utf-8")
            .split('\0')
            .filter_map(|pair| pair.split_once('='))
            .filter(|(name, _)| SEEN.contains(name))
            .map(|(name, value)| (name.to_owned(), value.to_owned()))
            .collect()
    }

    fn starts(&self) -> u32 {
        read(&self.dir.join("count")).trim().parse().expect("count")
    }

    /// Waits for the agent to exit (after `signal`, if given); its exit status.
    fn exit(&mut self, signal: Option<&str>) -> Option<i32> {
        if let Some(name) = signal {
            crate::util::signal(self.process.0.id(), name);
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(40);
        loop {
            if let Some(status) = self.process.0.try_wait().expect("wait") {
                return status.code();
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{} did not exit:\n{}",
                self.agent,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Both children's `n`th start saw the same variables; returns them.
fn same_seen(
    bao: &Supervisor,
    hydrant: &Supervisor,
    n: u32,
) -> std::collections::BTreeMap<String, String> {
    let want = bao.seen(n);
    assert_eq!(
        want.keys().map(String::as_str).collect::<Vec<_>>().len(),
        SEEN.len(),
        "bao agent's child saw every name: {:?}",
        want.keys()
    );
    assert_eq!(
        hydrant.seen(n),
        want,
        "start {n}: hydrant's child saw other variables than bao agent's"
    );
    want
}

/// `restart_on_secret_changes = "always"`: both children start with the same variables (KV v2
/// and v1, a template file, a missing key, a name the agent's environment already has, what the
/// child inherits), a KV change restarts both with the same new values, and SIGTERM to the agent
/// ends both alike; each keeps its `pid_file` while it runs and writes a working token sink.
#[test]
fn the_process_supervisor_gives_its_command_what_bao_agent_gives_and_restarts_it_on_a_change() {
    let vault = seeded();
    let config = supervisor_hcl(&vault, "always", true);
    let end = "trap 'exit 0' TERM\nwhile :; do sleep 0.05; done";
    let mut bao = Supervisor::start(&vault, "always", "bao", &config, end);
    let mut hydrant = Supervisor::start(&vault, "always", "hydrant", &config, end);
    bao.started(1, Duration::from_secs(30));
    hydrant.started(1, Duration::from_secs(30));
    let first = same_seen(&bao, &hydrant, 1);
    assert_ne!(first["DB_USER"], "placeholder", "the template's value wins");

    vault.kv2_put(
        "app/db",
        json!({"username": "app-user", "password": "changed", "port": 5432}),
    );
    bao.started(2, Duration::from_secs(30));
    hydrant.started(2, Duration::from_secs(30));
    let second = same_seen(&bao, &hydrant, 2);
    assert_ne!(second["DB_PASSWORD"], first["DB_PASSWORD"], "the new value");
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!((bao.starts(), hydrant.starts()), (2, 2), "one restart each");

    for s in [&bao, &hydrant] {
        assert_eq!(
            read(&s.dir.join("pid")).trim(),
            s.process.0.id().to_string(),
            "{}: pid_file holds the agent's process ID",
            s.agent
        );
        let token = read(&s.dir.join("token"));
        vault
            .api_as(token.trim(), "GET", "auth/token/lookup-self", None)
            .unwrap_or_else(|e| panic!("{}: the sink's token does not work: {e:?}", s.agent));
    }

    let statuses = (bao.exit(Some("TERM")), hydrant.exit(Some("TERM")));
    assert_eq!(statuses.1, statuses.0, "hydrant exits as bao agent does");
    for s in [&bao, &hydrant] {
        assert!(!s.dir.join("pid").exists(), "{}: pid_file removed", s.agent);
    }
}

/// `restart_on_secret_changes = "never"`: a KV change leaves every child running with what it
/// started with, and a child's own exit status is its agent's. `hydrant exec` on the same file
/// (the command from its exec stanza, or after `--`) gives its child the
/// same as `bao agent`, and keeps it as bao agent does.
#[test]
fn with_restarts_never_the_command_keeps_its_values_and_its_status_is_the_agents() {
    let vault = seeded();
    let config = supervisor_hcl(&vault, "never", false);
    let end = "while [ ! -e \"$d/quit\" ]; do sleep 0.05; done\nexit 3";
    let mut agents: Vec<Supervisor> = ["bao", "hydrant", "hydrant-exec", "hydrant-exec--"]
        .into_iter()
        .map(|agent| Supervisor::start(&vault, "never", agent, &config, end))
        .collect();
    for agent in &mut agents {
        agent.started(1, Duration::from_secs(30));
    }
    let (bao, others) = agents.split_first_mut().expect("bao first");
    for other in others.iter() {
        same_seen(bao, other, 1);
    }

    vault.kv2_put(
        "app/db",
        json!({"username": "app-user", "password": "changed", "port": 5432}),
    );
    // bao agent reads the secret again after 1 s and acts 2 s after a render: it would have
    // restarted its child by now.
    std::thread::sleep(Duration::from_secs(6));
    for agent in &agents {
        assert_eq!(
            agent.starts(),
            1,
            "{} never restarted its child",
            agent.agent
        );
        std::fs::write(agent.dir.join("quit"), "").expect("quit");
    }
    let mut statuses = agents
        .iter_mut()
        .map(|agent| (agent.agent, agent.exit(None)));
    let (_, want) = statuses.next().expect("bao");
    assert_eq!(want, Some(3), "bao agent exits with its child's status");
    for (agent, status) in statuses {
        assert_eq!(status, want, "{agent} exits as bao agent does");
    }
}

/// A process-supervisor file that Vault Agent refuses is refused by `hydrant agent` with the key
/// and the fix (exit 64), before anything reaches Vault; so are flags for an agent that renders
/// files.
#[test]
fn a_process_supervisor_file_bao_agent_refuses_is_refused_before_any_login() {
    let vault = seeded();
    let config = supervisor_hcl(&vault, "always", false);
    let without_exec = config.split("\nexec {").next().expect("head").to_owned();
    let with_template =
        format!("{config}template {{\n  destination = \"/tmp/x\"\n  contents = \"x\"\n}}\n");
    let mark = vault.audit_mark();
    for (case, text, expected) in [
        (
            "no-exec",
            &without_exec,
            "exec: is required with env_template",
        ),
        (
            "template",
            &with_template,
            "template: cannot be given with env_template",
        ),
    ] {
        let file = vault.file(&format!("supervisor-refused/{case}.hcl"), text);
        let err = Hydrant::new(["agent", "--config"])
            .run_with_arg(&file)
            .failure(64);
        assert!(err.contains(expected), "{err}");
        assert!(
            run_bao(
                &file,
                &vault.path(&format!("supervisor-refused/{case}.log"))
            )
            .is_err(),
            "bao agent refuses it too"
        );
    }
    let file = vault.file("supervisor-refused/once.hcl", &config);
    let err = Hydrant::new(["agent", "--once", "--config"])
        .run_with_arg(&file)
        .failure(64);
    assert!(err.contains("remove --once"), "{err}");
    assert_eq!(
        vault.audit_requests(mark),
        Vec::new(),
        "nothing reached Vault"
    );
}
