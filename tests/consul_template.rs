//! consul-template templates, with `bao agent` as the oracle: OpenBao's agent embeds
//! consul-template, so each test gives the same templates to it and to `hydrant agent --once`
//! against the same dev server and compares the files both write, byte for byte. Nothing here
//! types the expected output by hand.

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use crate::util::{Hydrant, KillOnDrop, Vault, bao, read};

/// A dev server with the secrets the templates read, and a token that may read them.
pub(crate) fn seeded() -> (Vault, String) {
    let vault = Vault::start();
    vault.kv2_put(
        "app/db",
        json!({"username": "app-user", "password": "s3cr3t-Pa55w0rd", "port": 5432}),
    );
    vault.kv2_put(
        "app/config",
        json!({"log_level": "debug", "ratio": 0.25, "flags": {"beta": true, "tags": ["a", "b"]},
               "empty": "", "none": null, "html": "<a href=\"x\">&</a>"}),
    );
    vault.kv2_put("app/list/one", json!({"v": "1"}));
    vault.kv2_put("app/list/two", json!({"v": "2"}));
    vault.mount("kv", "kv", json!({}));
    vault.api(
        "POST",
        "kv/legacy",
        Some(json!({"user": "old", "pass": "timer"})),
    );
    vault.policy(
        "ct",
        r#"
path "secret/data/app/*" { capabilities = ["read"] }
path "secret/metadata/app/*" { capabilities = ["list", "read"] }
path "kv/*" { capabilities = ["read", "list"] }
"#,
    );
    let token = vault.token(&["ct"]);
    (vault, token)
}

/// One template for both agents: its name, its text, and the `template` stanza's extra keys
/// (HCL) and the hydrant config's (JSON).
pub(crate) struct Case<'a> {
    pub(crate) name: &'a str,
    pub(crate) text: &'a str,
    pub(crate) hcl: &'a str,
    pub(crate) extra: Value,
}

pub(crate) fn case<'a>(name: &'a str, text: &'a str) -> Case<'a> {
    Case {
        name,
        text,
        hcl: "",
        extra: json!({}),
    }
}

/// What each agent wrote, by template; `Err` with its log when an agent failed.
pub(crate) struct Outputs {
    pub(crate) bao: Result<Vec<String>, String>,
    pub(crate) hydrant: Result<Vec<String>, String>,
}

/// Runs `bao agent` (token_file auto-auth, `exit_after_auth`) and `hydrant agent --once`
/// (token auth) on the same templates, each writing into a directory of its own.
pub(crate) fn both(vault: &Vault, token: &str, cases: &[Case<'_>]) -> Outputs {
    both_with(vault, token, cases, "")
}

/// [`both`], with more top-level HCL for `bao agent`.
pub(crate) fn both_with(vault: &Vault, token: &str, cases: &[Case<'_>], more_hcl: &str) -> Outputs {
    let token_file = vault.file("ct/token", token);
    let run_dir = tempfile::tempdir_in(vault.dir.path()).expect("run dir");
    let dir = run_dir.keep();
    let (bao_dir, hydrant_dir) = (dir.join("bao"), dir.join("hydrant"));
    std::fs::create_dir_all(&bao_dir).expect("bao dir");
    std::fs::create_dir_all(&hydrant_dir).expect("hydrant dir");
    let mut hcl = format!(
        "vault {{\n  address = {:?}\n}}\nauto_auth {{\n  method \"token_file\" {{\n    config = {{\n      token_file_path = {:?}\n    }}\n  }}\n}}\nexit_after_auth = true\n",
        vault.addr,
        token_file.display().to_string()
    );
    let mut templates = Vec::new();
    for case in cases {
        let source = dir.join(format!("{}.ctmpl", case.name));
        std::fs::write(&source, case.text).expect("template");
        hcl.push_str(&format!(
            "template {{\n  source = {:?}\n  destination = {:?}\n  {}\n}}\n",
            source.display().to_string(),
            bao_dir.join(case.name).display().to_string(),
            case.hcl
        ));
        let mut template = json!({
            "name": case.name,
            "source": source,
            "destination": hydrant_dir.join(case.name),
            "syntax": "consul-template",
        });
        for (k, v) in case.extra.as_object().expect("object") {
            template[k] = v.clone();
        }
        templates.push(template);
    }
    hcl.push_str(more_hcl);
    let hcl_path = dir.join("agent.hcl");
    std::fs::write(&hcl_path, &hcl).expect("hcl");
    let config = json!({
        "vault": {"address": vault.addr},
        "auth": {"method": "token", "token_path": token_file},
        "retry": {"deadline": "10s"},
        "templates": templates,
    });
    let config_path = dir.join("hydrant.json");
    std::fs::write(&config_path, config.to_string()).expect("config");

    let names: Vec<&str> = cases.iter().map(|c| c.name).collect();
    let bao = run_bao(&hcl_path, &dir.join("bao.log"))
        .map(|()| names.iter().map(|n| read(&bao_dir.join(n))).collect());
    let run = Hydrant::agent_once(&config_path)
        .env("HYDRANT_LOG", "warn")
        .run();
    let hydrant = if run.code() == 0 {
        Ok(names.iter().map(|n| read(&hydrant_dir.join(n))).collect())
    } else {
        Err(run.stderr())
    };
    Outputs { bao, hydrant }
}

/// `bao agent -config FILE`, which exits once every template is rendered.
fn run_bao(config: &Path, log: &Path) -> Result<(), String> {
    let out = std::fs::File::create(log).expect("log");
    let mut child = KillOnDrop(
        std::process::Command::new(bao())
            .arg("agent")
            .arg(format!("-config={}", config.display()))
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .stdout(out.try_clone().expect("log"))
            .stderr(out)
            .spawn()
            .expect("bao agent"),
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.0.try_wait().expect("wait") {
            return if status.success() {
                Ok(())
            } else {
                Err(read(log))
            };
        }
        if std::time::Instant::now() > deadline {
            return Err(format!("bao agent did not finish: {}", read(log)));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Asserts that both agents wrote the same bytes for every template.
pub(crate) fn assert_same(vault: &Vault, token: &str, cases: &[Case<'_>]) -> Vec<String> {
    let outputs = both(vault, token, cases);
    let bao = outputs
        .bao
        .unwrap_or_else(|log| panic!("bao agent failed:\n{log}"));
    let hydrant = outputs
        .hydrant
        .unwrap_or_else(|log| panic!("hydrant failed:\n{log}"));
    for ((case, want), got) in cases.iter().zip(&bao).zip(&hydrant) {
        assert_eq!(
            got, want,
            "template {} differs from bao agent's\n--- template ---\n{}",
            case.name, case.text
        );
    }
    bao
}

#[test]
fn vault_k8s_default_templates_render_as_bao_agent_renders_them() {
    let (vault, token) = seeded();
    // vault-k8s's default template for agent-inject-secret-<name>, and its json form.
    let out = assert_same(
        &vault,
        &token,
        &[
            case(
                "map",
                "{{ with secret \"secret/data/app/db\" }}{{ range $k, $v := .Data }}{{ $k }}: {{ $v }}\n{{ end }}{{ end }}",
            ),
            case(
                "kv1",
                "{{ with secret \"kv/legacy\" }}{{ range $k, $v := .Data }}{{ $k }}: {{ $v }}\n{{ end }}{{ end }}",
            ),
        ],
    );
    assert!(out[0].contains("password:s3cr3t-Pa55w0rd"), "{}", out[0]);
}

#[test]
fn go_template_language_features_render_as_bao_agent_renders_them() {
    let (vault, token) = seeded();
    assert_same(
        &vault,
        &token,
        &[
            case(
                "trim",
                "a  \n  {{- with secret \"secret/data/app/db\" -}}\n   {{ .Data.data.username }}  \n{{- end }}  \nb\n",
            ),
            case(
                "vars",
                "{{ $db := secret \"secret/data/app/db\" }}{{ with $db }}{{ $u := .Data.data.username }}{{ $u }}@{{ .Data.data.port }}{{ end }}\n",
            ),
            case(
                "control",
                "{{ with secret \"secret/data/app/config\" }}{{ if eq .Data.data.log_level \"debug\" }}debug{{ else if .Data.data.empty }}x{{ else }}quiet{{ end }}\n{{ range $i, $t := .Data.data.flags.tags }}{{ $i }}={{ $t }} {{ end }}\n{{ range .Data.data.nothing }}never{{ else }}empty range{{ end }}\n{{ if and .Data.data.flags.beta (not .Data.data.empty) }}beta{{ end }}{{ end }}\n",
            ),
            case(
                "printing",
                "{{ with secret \"secret/data/app/config\" }}{{ .Data.data.flags }}|{{ .Data.data.none }}|{{ .Data.data.ratio }}|{{ .Data.data.missing }}|{{ printf \"%q %v %5.2f %x %d %s\" .Data.data.log_level .Data.data.flags.tags 3.14159 \"hi\" 42 .Data.data.ratio }}|{{ index .Data.data.flags.tags 1 }}|{{ len .Data.data.flags.tags }}{{ end }}\n{{/* a comment */}}{{ print 1 2 \"a\" \"b\" }}|{{ println \"x\" }}",
            ),
            case(
                "define",
                "{{ define \"row\" }}[{{ . }}]{{ end }}{{ with secret \"secret/data/app/db\" }}{{ template \"row\" .Data.data.username }}{{ block \"b\" .Data.data.port }}<{{ . }}>{{ end }}{{ end }}",
            ),
            case(
                "compare",
                "{{ with secret \"secret/data/app/db\" }}{{ if eq .Data.data.port \"5432\" }}json.Number{{ end }} {{ if .Data.data.port }}true{{ end }} {{ lt 1 2 }} {{ ne \"a\" \"b\" }} {{ le 2 2 }} {{ ge 1.5 2.5 }} {{ or \"\" \"y\" }} {{ and 1 0 }}{{ end }}",
            ),
        ],
    );
}

#[test]
fn secret_read_forms_and_the_response_fields_match_bao_agent() {
    let (vault, token) = seeded();
    vault.kv2_put(
        "app/db",
        json!({"username": "app-user-2", "password": "second", "port": 5432}),
    );
    assert_same(
        &vault,
        &token,
        &[
            // Without data/: consul-template finds the KV v2 mount and reads data/.
            case(
                "shim",
                "{{ with secret \"secret/app/db\" }}{{ .Data.data.username }} v{{ .Data.metadata.version }}{{ end }}",
            ),
            case(
                "version",
                "{{ with secret \"secret/data/app/db?version=1\" }}{{ .Data.data.username }} v{{ .Data.metadata.version }}{{ end }}",
            ),
            case(
                "fields",
                "{{ with secret \"secret/data/app/db\" }}{{ .LeaseID }}|{{ .LeaseDuration }}|{{ .Renewable }}|{{ .Warnings }}|{{ .Data.metadata.destroyed }}{{ end }}",
            ),
            case(
                "list",
                "{{ range secrets \"secret/metadata/app/list\" }}{{ . }},{{ end }}|{{ range secrets \"kv/\" }}{{ . }};{{ end }}",
            ),
            case(
                "list-shim",
                "{{ range secrets \"secret/app/list\" }}{{ . }} {{ with secret (printf \"secret/data/app/list/%s\" .) }}{{ .Data.data.v }}{{ end }};{{ end }}",
            ),
        ],
    );
}

#[test]
fn a_missing_key_renders_no_value_and_error_on_missing_key_fails_both() {
    let (vault, token) = seeded();
    assert_same(
        &vault,
        &token,
        &[case(
            "missing",
            "{{ with secret \"secret/data/app/db\" }}{{ .Data.data.nope }}|{{ .Data.nope }}{{ end }}",
        )],
    );
    let strict = [Case {
        hcl: "error_on_missing_key = true",
        extra: json!({"error_on_missing_key": true}),
        ..case(
            "strict",
            "{{ with secret \"secret/data/app/db\" }}{{ .Data.data.nope }}{{ end }}",
        )
    }];
    // Without this, bao agent retries the render for ever.
    let give_up = "template_config {\n  exit_on_retry_failure = true\n}\n";
    let outputs = both_with(&vault, &token, &strict, give_up);
    let bao_log = outputs
        .bao
        .expect_err("bao agent fails with error_on_missing_key");
    assert!(bao_log.contains("nope"), "{bao_log}");
    let error = outputs.hydrant.expect_err("hydrant fails too");
    assert!(error.contains("nope"), "{error}");
}

#[test]
fn custom_delimiters_render_as_bao_agent_renders_them() {
    let (vault, token) = seeded();
    assert_same(
        &vault,
        &token,
        &[Case {
            hcl: "left_delimiter = \"[[\"\n  right_delimiter = \"]]\"",
            extra: json!({"left_delimiter": "[[", "right_delimiter": "]]"}),
            ..case(
                "delims",
                "{{ not an action }} [[ with secret \"secret/data/app/db\" ]][[ .Data.data.username ]][[ end ]]\n",
            )
        }],
    );
}

#[test]
fn scratch_and_env_render_as_bao_agent_renders_them() {
    let (vault, token) = seeded();
    assert_same(
        &vault,
        &token,
        &[case(
            "scratch",
            "{{ scratch.Set \"a\" \"1\" }}{{ scratch.SetX \"a\" \"2\" }}{{ scratch.Get \"a\" }} {{ scratch.Key \"a\" }} {{ scratch.Key \"b\" }}\
             {{ scratch.MapSet \"m\" \"z\" \"last\" }}{{ scratch.MapSet \"m\" \"a\" \"first\" }}{{ scratch.MapSetX \"m\" \"a\" \"no\" }} {{ scratch.MapValues \"m\" }} {{ scratch.MapValues \"none\" }}\
             {{ with secret \"secret/data/app/db\" }}{{ scratch.Set \"u\" .Data.data.username }}{{ end }} {{ scratch.Get \"u\" }}\
             |{{ env \"PATH\" | len }}|{{ env \"HYDRANT_NO_SUCH_VAR\" }}|{{ envOrDefault \"HYDRANT_NO_SUCH_VAR\" \"dflt\" }}",
        )],
    );
}

#[test]
fn json_encodings_match_bao_agent_numbers_and_escapes_included() {
    let (vault, token) = seeded();
    assert_same(
        &vault,
        &token,
        &[
            case(
                "json",
                "{{ with secret \"secret/data/app/config\" }}{{ .Data.data | toJSON }}\n{{ .Data.data | toJSONPretty }}\n{{ .Data.data | toUnescapedJSON }}\n{{ toUnescapedJSONPretty .Data.data.flags }}\n{{ .Data.data.ratio | toJSON }} {{ .Data.data.html | toJSON }}{{ end }}\n",
            ),
            case(
                "kv2-json",
                "{{ with secret \"secret/data/app/db\" }}{{ .Data | toJSON }}{{ end }}",
            ),
        ],
    );
}
