//! Vault Agent configurations as HashiCorp's documentation and vault-k8s write them, read into
//! hydrant's config; and the mistakes each is refused for.

use std::path::Path;

use super::*;
use crate::agent_config::{AuthMethod, RestartOnSecretChanges, TemplateSyntax};

fn hcl(text: &str) -> Translated {
    parse(text, Syntax::Hcl, "agent.hcl")
        .and_then(VaultAgentConfig::translate)
        .unwrap_or_else(|e| panic!("{}", e.in_file("agent.hcl")))
}

fn refused(text: &str) -> String {
    match parse(text, Syntax::Hcl, "agent.hcl").and_then(VaultAgentConfig::translate) {
        Ok(t) => panic!("accepted: {:?}", t.config),
        Err(e) => e.in_file("agent.hcl"),
    }
}

/// The Kubernetes example of Vault Agent's documentation (auto-auth, a file sink, a template).
const DOCS_KUBERNETES: &str = r#"
pid_file = "./pidfile"

vault {
  address = "https://vault.example.com:8200"
  ca_cert = "/vault/tls/ca.pem"
  retry {
    num_retries = 5
  }
}

auto_auth {
  method "kubernetes" {
    mount_path = "auth/kubernetes"
    config = {
      role = "example"
    }
  }

  sink "file" {
    config = {
      path = "/home/vault/.vault-token"
      mode = 0600
    }
  }
}

template_config {
  static_secret_render_interval = "10m"
  exit_on_retry_failure         = true
}

template {
  source      = "/etc/vault/server.key.ctmpl"
  destination = "/etc/vault/server.key"
  perms       = "0640"
  command     = "systemctl reload nginx"
}

template {
  contents    = "{{ with secret \"secret/data/app\" }}{{ .Data.data.password }}{{ end }}"
  destination = "/etc/app/password"
  error_on_missing_key = true
  create_dest_dirs = false
  left_delimiter = "[["
  right_delimiter = "]]"
}
"#;

#[test]
fn the_documentations_kubernetes_example_translates_key_for_key() {
    let t = hcl(DOCS_KUBERNETES);
    let c = &t.config;
    assert_eq!(t.warnings, Vec::<String>::new());
    assert_eq!(c.vault.address, "https://vault.example.com:8200");
    assert_eq!(
        c.vault.ca_cert.as_deref(),
        Some(Path::new("/vault/tls/ca.pem"))
    );
    assert_eq!(c.retry.attempts, Some(5));
    assert_eq!(c.auth.method, AuthMethod::Kubernetes);
    assert_eq!(c.auth.mount(), "kubernetes");
    assert_eq!(c.auth.role.as_deref(), Some("example"));
    assert_eq!(c.token_sinks.len(), 1);
    assert_eq!(c.token_sinks[0].path, Path::new("/home/vault/.vault-token"));
    assert_eq!(c.token_sinks[0].mode(), 0o600);
    assert_eq!(c.refresh_interval().as_secs(), 600);
    assert!(c.exit_on_retry_failure());
    assert_eq!(c.pid_file.as_deref(), Some(Path::new("./pidfile")));
    let [key, password] = c.templates.as_slice() else {
        panic!("{:?}", c.templates)
    };
    assert_eq!(key.name, "server.key");
    assert_eq!(key.syntax, TemplateSyntax::ConsulTemplate);
    assert_eq!(key.perms.map(|p| p.0), Some(0o640));
    assert_eq!(
        key.command.as_deref(),
        Some(
            &[
                "sh".to_owned(),
                "-c".to_owned(),
                "systemctl reload nginx".to_owned()
            ][..]
        )
    );
    assert!(key.create_dest_dirs());
    assert_eq!(password.name, "password");
    assert_eq!(password.error_on_missing_key, Some(true));
    assert!(!password.create_dest_dirs());
    assert_eq!(password.left_delimiter.as_deref(), Some("[["));
    assert!(
        password
            .contents
            .as_deref()
            .is_some_and(|c| c.contains("secret/data/app"))
    );
    assert_eq!(c.validate(), Ok(()));
}

/// What vault-k8s writes for an annotated pod: JSON, the sink and the default template.
const VAULT_K8S_JSON: &str = r#"{
  "auto_auth": {
    "method": {
      "type": "kubernetes",
      "mount_path": "auth/kubernetes",
      "config": {"role": "app", "token_path": "/var/run/secrets/kubernetes.io/serviceaccount/token"}
    },
    "sink": [{"type": "file", "config": {"path": "/home/vault/.vault-token"}}]
  },
  "exit_after_auth": true,
  "pid_file": "/home/vault/.pid",
  "vault": {"address": "https://vault.vault.svc:8200"},
  "template": [{
    "destination": "/vault/secrets/db-creds",
    "contents": "{{ with secret \"database/creds/db-app\" }}{{ range $k, $v := .Data }}{{ $k }}: {{ $v }}\n{{ end }}{{ end }}",
    "left_delimiter": "{{",
    "right_delimiter": "}}",
    "command": "",
    "error_on_missing_key": false
  }],
  "template_config": {"exit_on_retry_failure": true}
}"#;

#[test]
fn vault_k8s_json_translates_and_runs_once() {
    let t = parse(VAULT_K8S_JSON, Syntax::Json, "config.json")
        .and_then(VaultAgentConfig::translate)
        .expect("translates");
    let c = t.config;
    assert!(c.exit_after_auth);
    assert_eq!(
        c.auth.jwt_path(),
        Path::new(crate::agent_config::SERVICE_ACCOUNT_TOKEN_PATH)
    );
    assert_eq!(c.token_sinks[0].mode(), 0o640);
    assert_eq!(c.templates[0].name, "db-creds");
    assert_eq!(c.templates[0].command, None);
    assert_eq!(c.validate(), Ok(()));
    assert!(is_vault_agent("config.json", VAULT_K8S_JSON));
}

#[test]
fn each_method_takes_its_own_config_keys() {
    let method = |m: &str| {
        hcl(&format!(
            "vault {{\n  address = \"http://127.0.0.1:8200\"\n}}\nauto_auth {{\n{m}\n  sink \"file\" {{\n    config = {{ path = \"/tmp/t\" }}\n  }}\n}}\n"
        ))
        .config
        .auth
    };
    let jwt = method("method \"jwt\" {\n config = {\n role = \"r\"\n path = \"/jwt\"\n }\n}");
    assert_eq!(
        (jwt.method, jwt.remove_after_reading),
        (AuthMethod::Jwt, Some(true))
    );
    assert_eq!(jwt.jwt_path(), Path::new("/jwt"));
    let approle = method(
        "method \"approle\" {\n mount_path = \"auth/approle-2\"\n config = {\n role_id_file_path = \"/r\"\n secret_id_file_path = \"/s\"\n remove_secret_id_file_after_reading = false\n }\n}",
    );
    assert_eq!(approle.mount(), "approle-2");
    assert_eq!(approle.remove_after_reading, Some(false));
    let token =
        method("method {\n type = \"token_file\"\n config {\n token_file_path = \"/t\"\n }\n}");
    assert_eq!(token.method, AuthMethod::Token);
    assert_eq!(token.token_path.as_deref(), Some(Path::new("/t")));
}

#[test]
fn unknown_and_unsupported_keys_are_refused_with_their_place() {
    let err = refused(
        "vault {\n  address = \"http://x:8200\"\n  adress = \"y\"\n}\nauto_auth {\n  method \"kubernetes\" {\n    config = {\n      rol = \"app\"\n    }\n  }\n}\ncache {\n}\n",
    );
    assert!(
        err.contains("agent.hcl:3:3: vault.adress: unknown key"),
        "{err}"
    );
    assert!(
        err.contains("auto_auth.method.config.rol: unknown key"),
        "{err}"
    );
    assert!(
        err.contains("auto_auth.method.config.role: is required"),
        "{err}"
    );
    assert!(
        err.contains("agent.hcl:12:1: cache: not supported by hydrant"),
        "{err}"
    );

    let err = refused("auto_auth {\n  method \"aws\" {\n    config = { role = \"x\" }\n  }\n}\n");
    assert!(
        err.contains("hydrant has no aws auth method; use kubernetes, jwt, approle or token_file"),
        "{err}"
    );

    let err = refused(
        "vault {\n  address = \"http://x\"\n}\nauto_auth {\n  method \"kubernetes\" {\n    wrap_ttl = \"5m\"\n    config = { role = \"a\" }\n  }\n  sink \"file\" {\n    dh_type = \"curve25519\"\n    config = { path = \"/t\" }\n  }\n}\n",
    );
    assert!(
        err.contains("auto_auth.method.wrap_ttl: not supported"),
        "{err}"
    );
    assert!(
        err.contains("auto_auth.sink[0].dh_type: not supported"),
        "{err}"
    );
}

/// Vault Agent's process-supervisor example (its documentation's `env_template` and `exec`).
const DOCS_PROCESS_SUPERVISOR: &str = r#"
vault {
  address = "http://localhost:8200"
}

auto_auth {
  method "approle" {
    config = {
      role_id_file_path   = "/path/to/roleID"
      secret_id_file_path = "/path/to/secretID"
    }
  }
}

template_config {
  static_secret_render_interval = "5m"
  exit_on_retry_failure         = true
}

env_template "FOO_PASSWORD" {
  contents             = "{{ with secret \"secret/data/foo\" }}{{ .Data.data.password }}{{ end }}"
  error_on_missing_key = true
}

env_template "FOO_USER" {
  source          = "/etc/app/user.ctmpl"
  left_delimiter  = "[["
  right_delimiter = "]]"
}

exec {
  command                   = ["./my-app", "arg1", "arg2"]
  restart_on_secret_changes = "never"
  restart_stop_signal       = "SIGINT"
}
"#;

#[test]
fn the_process_supervisor_example_becomes_hydrant_execs_env_and_exec() {
    let t = hcl(DOCS_PROCESS_SUPERVISOR);
    let c = &t.config;
    assert_eq!(t.warnings, Vec::<String>::new());
    let [password, user] = c.env.as_slice() else {
        panic!("{:?}", c.env)
    };
    assert_eq!(password.name, "FOO_PASSWORD");
    assert_eq!(password.syntax, TemplateSyntax::ConsulTemplate);
    assert_eq!(password.error_on_missing_key, Some(true));
    assert!(
        password
            .contents
            .as_deref()
            .is_some_and(|c| c.contains("secret/data/foo"))
    );
    assert_eq!(user.name, "FOO_USER");
    assert_eq!(
        user.source.as_deref(),
        Some(Path::new("/etc/app/user.ctmpl"))
    );
    assert_eq!(user.left_delimiter.as_deref(), Some("[["));
    assert_eq!(user.right_delimiter.as_deref(), Some("]]"));
    let exec = c.exec.as_ref().expect("exec");
    assert_eq!(
        exec.command,
        Some(vec!["./my-app".into(), "arg1".into(), "arg2".into()])
    );
    assert_eq!(
        exec.restart_on_secret_changes,
        RestartOnSecretChanges::Never
    );
    assert_eq!(exec.stop_signal(), "INT");
    assert_eq!(
        exec.stop_grace().as_secs(),
        30,
        "Vault Agent's fixed kill timeout"
    );
    assert!(c.exit_on_retry_failure());
    assert_eq!(c.refresh_interval().as_secs(), 300);
    assert!(c.templates.is_empty());
    assert_eq!(c.validate_exec(), Ok(()));
}

#[test]
fn exec_takes_vault_agents_defaults_and_prepares_its_command_as_consul_template() {
    let c = hcl(&DOCS_PROCESS_SUPERVISOR
        .replace("restart_on_secret_changes = \"never\"", "")
        .replace("restart_stop_signal       = \"SIGINT\"", "")
        .replace(
            "[\"./my-app\", \"arg1\", \"arg2\"]",
            "\"./my-app --port 8080\"",
        ))
    .config;
    let exec = c.exec.expect("exec");
    assert_eq!(
        exec.restart_on_secret_changes,
        RestartOnSecretChanges::Always
    );
    assert_eq!(exec.stop_signal(), "TERM");
    assert_eq!(
        exec.command,
        Some(vec![
            "sh".into(),
            "-c".into(),
            "./my-app --port 8080".into()
        ]),
        "one string with spaces runs in a shell, as child.CommandPrep does"
    );
}

/// What Vault Agent's `validateEnvTemplateConfig` and its decoder refuse, refused here too, each
/// at its key with the fix.
#[test]
fn process_supervisor_configs_vault_agent_refuses_are_refused_at_their_keys() {
    let head = DOCS_PROCESS_SUPERVISOR
        .split("env_template \"FOO_PASSWORD\"")
        .next()
        .expect("head");
    let env = "env_template \"A\" {\n  contents = \"x\"\n}\n";
    let exec = "exec {\n  command = [\"app\"]\n}\n";
    let cases: &[(String, &str)] = &[
        (
            env.to_owned(),
            "exec: is required with env_template: add exec { command",
        ),
        (
            exec.to_owned(),
            "env_template: at least one is required with exec",
        ),
        (
            format!("{env}exec {{\n  restart_on_secret_changes = \"never\"\n}}\n"),
            "exec.command: is required: the program and its arguments",
        ),
        (
            format!("{env}{exec}template {{\n  contents = \"x\"\n  destination = \"/x\"\n}}\n"),
            "template: cannot be given with env_template",
        ),
        (
            format!(
                "env_template \"A\" {{\n  contents = \"x\"\n  destination = \"/x\"\n}}\n{exec}"
            ),
            "env_template[A].destination: not supported by hydrant: is not allowed in env_template",
        ),
        (
            format!("env_template \"A\" {{\n  contents = \"x\"\n  perms = \"0600\"\n}}\n{exec}"),
            "env_template[A].perms: not supported by hydrant: is not allowed in env_template",
        ),
        (
            format!("env_template \"A\" {{\n  contents = \"x\"\n  source = \"/t\"\n}}\n{exec}"),
            "env_template[A]: has both contents and source",
        ),
        (
            format!("env_template \"A\" {{\n  error_on_missing_key = true\n}}\n{exec}"),
            "env_template[A]: needs contents or source",
        ),
        (
            format!("env_template {{\n  contents = \"x\"\n}}\n{exec}"),
            "env_template: has no variable name",
        ),
        (
            format!("env_template \"1A\" {{\n  contents = \"x\"\n}}\n{exec}"),
            "env_template[1A]: \"1A\" is not an environment variable name",
        ),
        (
            format!(
                "{env}exec {{\n  command = [\"app\"]\n  restart_on_secret_changes = \"sometimes\"\n}}\n"
            ),
            "exec.restart_on_secret_changes: \"sometimes\" is neither \"always\" nor \"never\"",
        ),
        (
            format!(
                "{env}exec {{\n  command = [\"app\"]\n  restart_stop_signal = \"SIGBOGUS\"\n}}\n"
            ),
            "exec.restart_stop_signal: \"SIGBOGUS\" is not a signal hydrant sends",
        ),
        (
            format!("{env}exec {{\n  command = [\"app\"]\n  restart_stop_grace = \"5s\"\n}}\n"),
            "exec.restart_stop_grace: not supported by hydrant: Vault Agent has no such key",
        ),
        (
            format!("{env}exec {{\n  command = [\"app\"]\n  user = \"app\"\n}}\n"),
            "exec.user: unknown key",
        ),
        (
            format!("{env}{exec}{exec}"),
            "exec: is given more than once",
        ),
        (
            format!("{env}{env}{exec}"),
            "env_template[A]: is given more than once",
        ),
        (
            format!("env_template \"A\" \"B\" {{\n  contents = \"x\"\n}}\n{exec}"),
            "env_template: has 2 labels",
        ),
    ];
    for (tail, expected) in cases {
        let err = refused(&format!("{head}{tail}"));
        assert!(err.contains(expected), "{tail}\n{err}");
    }
    // Vault Agent writes a sink beside exec; so does hydrant's supervisor.
    let with_sink = head.replace(
        "\"/path/to/secretID\"\n    }\n",
        "\"/path/to/secretID\"\n    }\n  }\n  sink \"file\" {\n    config = {\n      path = \"/t\"\n    }\n",
    );
    let c = hcl(&format!("{with_sink}{env}{exec}")).config;
    assert_eq!(c.token_sinks[0].path, Path::new("/t"));
    assert_eq!(c.validate_exec(), Ok(()));
}

/// `hydrant exec --config agent.hcl -- COMMAND` takes its command from the command line: the
/// file needs its variables, not an exec stanza.
#[test]
fn hydrant_exec_needs_env_templates_but_not_an_exec_stanza() {
    let head = DOCS_PROCESS_SUPERVISOR
        .split("env_template \"FOO_PASSWORD\"")
        .next()
        .expect("head");
    let exec = |text: &str| {
        parse(text, Syntax::Hcl, "agent.hcl").and_then(VaultAgentConfig::translate_exec)
    };
    let c = exec(&format!(
        "{head}env_template \"A\" {{\n  contents = \"x\"\n}}\n"
    ))
    .expect("translates")
    .config;
    assert_eq!(c.env.len(), 1);
    assert_eq!(c.exec, None);
    assert_eq!(c.validate_exec(), Ok(()));
    let err = exec(head).expect_err("no variables").in_file("agent.hcl");
    assert!(
        err.contains("env_template: is required by hydrant exec"),
        "{err}"
    );
}

/// The JSON form names each variable as a key of the `env_template` object; files merge as
/// Vault Agent merges them: env templates add up, the later `exec` wins whole.
#[test]
fn env_templates_read_from_json_and_merge_across_files() {
    let json = r#"{
      "vault": {"address": "http://127.0.0.1:8200"},
      "auto_auth": {"method": {"token_file": {"config": {"token_file_path": "/t"}}}},
      "env_template": {"A": {"contents": "a"}, "B": {"contents": "b"}},
      "exec": {"command": ["first"], "restart_on_secret_changes": "never"}
    }"#;
    let first = parse(json, Syntax::Json, "a.json").expect("parses");
    let second = parse(
        "env_template \"C\" {\n  contents = \"c\"\n}\nexec {\n  command = [\"second\"]\n}\n",
        Syntax::Hcl,
        "b.hcl",
    )
    .expect("parses");
    let c = first.merge(second).translate().expect("translates").config;
    let names: Vec<&str> = c.env.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["A", "B", "C"]);
    let exec = c.exec.expect("exec");
    assert_eq!(exec.command, Some(vec!["second".into()]));
    assert_eq!(
        exec.restart_on_secret_changes,
        RestartOnSecretChanges::Always
    );
}

#[test]
fn a_syntax_error_names_file_line_and_column() {
    let err = parse("vault {\n  address = \"x\n}\n", Syntax::Hcl, "a.hcl").expect_err("bad");
    let shown = err.in_file("dir/a.hcl");
    assert!(shown.starts_with("dir/a.hcl:2:"), "{shown}");
}

#[test]
fn keys_that_change_nothing_are_accepted_with_a_warning() {
    let t = hcl(
        "log_level = \"debug\"\ntelemetry {\n  disable_hostname = true\n}\nvault {\n  address = \"http://x:8200\"\n}\nauto_auth {\n  method \"kubernetes\" {\n    config = { role = \"a\" }\n  }\n}\ntemplate {\n  contents = \"x\"\n  destination = \"/x\"\n  wait {\n    min = \"2s\"\n  }\n}\n",
    );
    assert_eq!(t.warnings.len(), 3, "{:?}", t.warnings);
    assert!(
        t.warnings[0].starts_with("agent.hcl:1:1: log_level: ignored; set HYDRANT_LOG"),
        "{:?}",
        t.warnings
    );
}

#[test]
fn modes_are_read_as_hcl_1_reads_numbers() {
    let sink = |mode: &str| {
        parse(
            &format!("vault {{\n address = \"http://x\"\n}}\nauto_auth {{\n method \"kubernetes\" {{\n config = {{ role = \"a\" }}\n }}\n sink \"file\" {{\n config = {{\n path = \"/t\"\n mode = {mode}\n }}\n }}\n}}\n"),
            Syntax::Hcl,
            "a.hcl",
        )
        .and_then(VaultAgentConfig::translate)
        .map(|t| t.config.token_sinks[0].mode())
    };
    assert_eq!(sink("0600"), Ok(0o600));
    assert_eq!(sink("384"), Ok(0o600));
    assert_eq!(sink("\"0644\""), Ok(0o644));
    let err = sink("600").expect_err("decimal 600 is 0o1130");
    assert!(err.to_string().contains("write 0640"), "{err}");
}

#[test]
fn files_merge_as_vault_agent_merges_them() {
    let first = parse(
        "vault {\n address = \"http://first\"\n}\nauto_auth {\n method \"kubernetes\" {\n config = { role = \"a\" }\n }\n}\ntemplate {\n contents = \"1\"\n destination = \"/out/a\"\n}\npid_file = \"/p1\"\n",
        Syntax::Hcl,
        "1.hcl",
    )
    .expect("first");
    let second = parse(
        "vault {\n address = \"http://second\"\n}\nexit_after_auth = true\ntemplate {\n contents = \"2\"\n destination = \"/out/a\"\n}\n",
        Syntax::Hcl,
        "2.hcl",
    )
    .expect("second");
    let c = first.merge(second).translate().expect("translates").config;
    assert_eq!(c.vault.address, "http://second");
    assert_eq!(c.auth.role.as_deref(), Some("a"));
    assert!(c.exit_after_auth);
    assert_eq!(c.pid_file.as_deref(), Some(Path::new("/p1")));
    let names: Vec<&str> = c.templates.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["a", "a-2"]);
}

#[test]
fn a_whole_config_needs_auth_an_address_and_an_output() {
    let err = refused("template {\n contents = \"x\"\n destination = \"/x\"\n}\n");
    assert!(err.contains("vault.address: is required"), "{err}");
    assert!(err.contains("auto_auth: is required"), "{err}");
    let err = refused(
        "vault {\n address = \"http://x\"\n}\nauto_auth {\n method \"kubernetes\" {\n config = { role = \"a\" }\n }\n}\n",
    );
    assert!(err.contains("has no template and no sink"), "{err}");
}

#[test]
fn the_format_is_told_by_extension_or_content() {
    assert!(is_vault_agent("agent.hcl", "vault:\n"));
    assert!(!is_vault_agent("agent.yaml", "vault {\n"));
    assert!(is_vault_agent(
        "agent",
        "# comment\nvault {\n  address = \"x\"\n}\n"
    ));
    assert!(is_vault_agent("agent", "pid_file = \"/p\"\n"));
    assert!(!is_vault_agent("agent", "vault:\n  address: http://x\n"));
    assert!(!is_vault_agent(
        "agent.json",
        r#"{"vault": {"address": "x"}, "auth": {"method": "token"}}"#
    ));
    assert!(is_vault_agent(
        "agent.json",
        r#"{"vault": {"address": "x"}, "auto_auth": {}}"#
    ));
}

/// Whatever is read and translated survives the webhook's trip through JSON; nothing panics.
fn round_trips(text: &str) {
    for syntax in [Syntax::Hcl, Syntax::Json] {
        let Ok(t) = parse(text, syntax, "p.hcl").and_then(VaultAgentConfig::translate) else {
            continue;
        };
        let json = serde_json::to_string(&t.config).expect("serialises");
        let back = crate::agent_config::parse(&json).expect("parses back");
        assert_eq!(back, t.config);
    }
}

proptest::proptest! {
    #[test]
    fn edited_configs_are_translated_or_refused_cleanly(
        at in 0usize..DOCS_KUBERNETES.len(),
        cut in 0usize..40,
        insert in "[ -~\n]{0,12}",
    ) {
        let mut text = DOCS_KUBERNETES.to_owned();
        let at = (0..=at).rev().find(|i| text.is_char_boundary(*i)).unwrap_or(0);
        let end = (at + cut).min(text.len());
        let end = (end..=text.len()).find(|i| text.is_char_boundary(*i)).unwrap_or(text.len());
        text.replace_range(at..end, &insert);
        round_trips(&text);
        round_trips(VAULT_K8S_JSON);
        round_trips(DOCS_PROCESS_SUPERVISOR);
    }
}
