//! consul-template templates, with `bao agent` as the oracle: OpenBao's agent embeds
//! consul-template, so each test gives the same templates to it and to `hydrant agent --once`
//! against the same dev server and compares the files both write, byte for byte. Nothing here
//! types the expected output by hand.

use std::path::Path;

use serde_json::{Value, json};

use crate::util::{Hydrant, Vault, read};

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
    /// Each agent's output directory (`@OUT@` in a template).
    pub(crate) dirs: (std::path::PathBuf, std::path::PathBuf),
}

/// Runs `bao agent` (token_file auto-auth, `exit_after_auth`) and `hydrant agent --once`
/// (token auth) on the same templates, each writing into a directory of its own.
pub(crate) fn both(vault: &Vault, token: &str, cases: &[Case<'_>]) -> Outputs {
    both_with(vault, token, cases, "", json!({}))
}

/// [`both`], with more top-level HCL for `bao agent` and more top-level keys for hydrant's
/// config.
pub(crate) fn both_with(
    vault: &Vault,
    token: &str,
    cases: &[Case<'_>],
    more_hcl: &str,
    more_config: Value,
) -> Outputs {
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
        // `@OUT@` in a template is the agent's own output directory.
        let source_for = |agent: &str, out: &Path| {
            let source = dir.join(format!("{agent}-{}.ctmpl", case.name));
            let text = case.text.replace("@OUT@", &out.display().to_string());
            std::fs::write(&source, text).expect("template");
            source
        };
        let (bao_source, source) = (
            source_for("bao", &bao_dir),
            source_for("hydrant", &hydrant_dir),
        );
        hcl.push_str(&format!(
            "template {{\n  source = {:?}\n  destination = {:?}\n  {}\n}}\n",
            bao_source.display().to_string(),
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
    let mut config = json!({
        "vault": {"address": vault.addr},
        "auth": {"method": "token", "token_path": token_file},
        "retry": {"deadline": "10s"},
        "templates": templates,
    });
    for (k, v) in more_config.as_object().expect("object") {
        config[k] = v.clone();
    }
    let config_path = dir.join("hydrant.json");
    std::fs::write(&config_path, config.to_string()).expect("config");

    let names: Vec<&str> = cases.iter().map(|c| c.name).collect();
    let bao = run_bao(&hcl_path, &dir.join("bao.log"))
        .map(|()| names.iter().map(|n| lossy(&bao_dir.join(n))).collect());
    let run = Hydrant::agent_once(&config_path)
        .env("HYDRANT_LOG", "warn")
        .run();
    let hydrant = if run.code() == 0 {
        Ok(names.iter().map(|n| lossy(&hydrant_dir.join(n))).collect())
    } else {
        Err(run.stderr())
    };
    Outputs {
        bao,
        hydrant,
        dirs: (bao_dir, hydrant_dir),
    }
}

/// A file's text; bytes that are not UTF-8 (a decoded keystore) as U+FFFD.
fn lossy(path: &Path) -> String {
    String::from_utf8_lossy(&std::fs::read(path).unwrap_or_default()).into_owned()
}

/// `bao agent -config FILE`, which exits once every template is rendered.
fn run_bao(config: &Path, log: &Path) -> Result<(), String> {
    crate::util::run_bao_agent(config, log, &[])
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
    let outputs = both_with(&vault, &token, &strict, give_up, json!({}));
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
                "parsed-floats",
                "{{ \"{\\\"a\\\": 5, \\\"b\\\": 1e6, \\\"c\\\": [1.5, 1e21, 1e-7], \\\"d\\\": {\\\"e\\\": -0.0}}\" | parseJSON | toJSON }} {{ \"[2, 3.25]\" | parseJSON | toJSONPretty }}",
            ),
            case(
                "kv2-json",
                "{{ with secret \"secret/data/app/db\" }}{{ .Data | toJSON }}{{ end }}",
            ),
        ],
    );
}

#[test]
fn file_write_to_file_and_execute_template_render_as_bao_agent_renders_them() {
    let (vault, token) = seeded();
    let input = vault.file("ct/input/text.txt", "line one\nline two\n");
    let file_template = format!(
        "{{{{ file {:?} }}}}|{{{{ file {:?} | len }}}}",
        input.display().to_string(),
        input.display().to_string()
    );
    // hydrant reads only files under its watch list; bao agent reads any.
    let watch = json!({"watch": [input.parent().expect("dir")]});
    let outputs = both_with(
        &vault,
        &token,
        &[
            case("file", &file_template),
            case(
                "write",
                "{{ with secret \"secret/data/app/db\" }}{{ writeToFile \"@OUT@/side.txt\" \"\" \"\" \"0640\" .Data.data.username }}{{ writeToFile \"@OUT@/log.txt\" \"\" \"\" \"0600\" \"a\" \"append,newline\" }}{{ writeToFile \"@OUT@/log.txt\" \"\" \"\" \"0600\" \"b\" \"append,newline\" }}done{{ end }}",
            ),
            case(
                "execute",
                "{{ define \"user\" }}<{{ .Data.data.username }}>{{ end }}{{ define \"plain\" }}[{{ . }}]{{ end }}{{ with secret \"secret/data/app/db\" }}{{ executeTemplate \"user\" . }} {{ executeTemplate \"plain\" }} {{ executeTemplate \"plain\" 42 | printf \"%q\" }}{{ end }}",
            ),
        ],
        "",
        watch,
    );
    let (bao, hydrant) = (
        outputs.bao.expect("bao agent"),
        outputs.hydrant.expect("hydrant"),
    );
    assert_eq!(hydrant, bao);
    let (bao_dir, hydrant_dir) = outputs.dirs;
    for name in ["side.txt", "log.txt"] {
        assert_eq!(
            read(&hydrant_dir.join(name)),
            read(&bao_dir.join(name)),
            "{name}"
        );
        assert_eq!(
            crate::util::mode(&hydrant_dir.join(name)),
            crate::util::mode(&bao_dir.join(name)),
            "{name}'s mode"
        );
    }
}

/// `Vault::pki`, and a token that may issue.
fn with_pki(vault: &Vault) -> String {
    vault.pki();
    vault.policy(
        "pki",
        "path \"pki/issue/web\" { capabilities = [\"update\"] }",
    );
    vault.token(&["ct", "pki"])
}

/// What a PEM bundle holds: each block's type, and for certificates the subject and SANs as
/// openssl prints them.
fn pem_shape(bundle: &str, dir: &Path) -> Vec<String> {
    let mut shape = Vec::new();
    for (i, block) in bundle
        .split_inclusive("-----\n")
        .collect::<String>()
        .split("-----BEGIN ")
        .skip(1)
        .enumerate()
    {
        let kind = block.split("-----").next().unwrap_or("").to_owned();
        if kind == "CERTIFICATE" {
            let file = dir.join(format!("block-{i}.pem"));
            std::fs::write(&file, format!("-----BEGIN {block}")).expect("block");
            let out = std::process::Command::new("openssl")
                .args([
                    "x509",
                    "-noout",
                    "-subject",
                    "-ext",
                    "subjectAltName",
                    "-in",
                ])
                .arg(&file)
                .output()
                .expect("openssl");
            assert!(out.status.success(), "not a certificate: {block}");
            shape.push(format!(
                "{kind}: {}",
                String::from_utf8_lossy(&out.stdout).trim()
            ));
        } else {
            shape.push(kind);
        }
    }
    shape
}

#[test]
fn pki_cert_issues_what_bao_agent_issues_and_reuses_a_good_certificate() {
    let (vault, _) = seeded();
    let token = with_pki(&vault);
    // OpenBao's agent has no .CAChain (HashiCorp's consul-template has): checked apart below.
    let text = "{{ with pkiCert \"pki/issue/web\" \"common_name=app.example.com\" \"alt_names=a.example.com\" \"ttl=30m\" }}{{ .Cert }}{{ .Key }}{{ .CA }}{{ eq .Data.Cert .Cert }}{{ end }}";
    let mark = vault.audit_mark();
    let outputs = both(&vault, &token, &[case("tls", text)]);
    let (bao, hydrant) = (
        outputs.bao.expect("bao agent"),
        outputs.hydrant.expect("hydrant"),
    );
    let scratch = vault.dir.path();
    // Certificates differ (each agent issued one): compare what they are made of.
    assert_eq!(pem_shape(&hydrant[0], scratch), pem_shape(&bao[0], scratch));
    assert!(
        hydrant[0].contains("app.example.com")
            || pem_shape(&hydrant[0], scratch)[0].contains("app.example.com")
    );
    let tail = |s: &str| s.rsplit("-----").next().unwrap_or("").to_owned();
    assert_eq!(
        tail(&hydrant[0]),
        tail(&bao[0]),
        "the text after the PEM blocks"
    );
    let issued = |mark| {
        vault
            .audit_counts(mark)
            .get("update pki/issue/web")
            .copied()
            .unwrap_or(0)
    };
    assert_eq!(issued(mark), 2, "one certificate per agent");

    // Again, with the destination in place: the certificate there is good, so none is issued
    // and the file keeps it.
    let (_, hydrant_dir) = outputs.dirs;
    let before = read(&hydrant_dir.join("tls"));
    let mark = vault.audit_mark();
    let config = hydrant_dir.parent().expect("run dir").join("hydrant.json");
    Hydrant::agent_once(&config).run().success();
    assert_eq!(read(&hydrant_dir.join("tls")), before);
    assert_eq!(
        issued(mark),
        0,
        "the certificate in the destination is reused"
    );

    // .CAChain holds the CA.
    let chain = vault.file(
        "ct/chain.ctmpl",
        "{{ with pkiCert \"pki/issue/web\" \"common_name=b.example.com\" }}{{ len .CAChain }} {{ eq (index .CAChain 0) .CA }}{{ end }}",
    );
    let no_containers = tempfile::tempdir().expect("dir");
    let run = Hydrant::new(["render", "--containers"])
        .env("VAULT_ADDR", &vault.addr)
        .env("VAULT_TOKEN", &token)
        .run_with_args(&[
            no_containers.path().as_os_str(),
            "--syntax".as_ref(),
            "consul-template".as_ref(),
            "--template".as_ref(),
            chain.as_os_str(),
        ]);
    assert_eq!(run.stdout(), "1 true", "{}", run.stderr());
}

#[test]
fn n_secrets_cost_n_reads_and_one_token_lookup_where_bao_agent_makes_2n_plus_2() {
    let (vault, token) = seeded();
    let n = 6;
    for i in 0..n {
        vault.kv2_put(&format!("app/s{i}"), json!({"v": i.to_string()}));
    }
    let texts: Vec<String> = (0..n)
        .map(|i| {
            format!(
                "{{{{ with secret \"secret/data/app/s{i}\" }}}}{{{{ .Data.data.v }}}}{{{{ end }}}}"
            )
        })
        .collect();
    let names: Vec<String> = (0..n).map(|i| format!("s{i}")).collect();
    let cases: Vec<Case<'_>> = names
        .iter()
        .zip(&texts)
        .map(|(name, text)| case(name, text))
        .collect();
    let mark = vault.audit_mark();
    let outputs = both(&vault, &token, &cases);
    assert_eq!(
        outputs.hydrant.expect("hydrant"),
        outputs.bao.expect("bao agent")
    );
    // Both ran against one server: tell their requests apart by what only bao agent asks.
    let requests = vault.audit_requests(mark);
    let reads: Vec<&(String, String)> = requests
        .iter()
        .filter(|(_, path)| path.starts_with("secret/data/app/s"))
        .collect();
    assert_eq!(
        reads.len(),
        2 * n,
        "each agent reads each secret once: {requests:?}"
    );
    let lookups = requests
        .iter()
        .filter(|(_, path)| path.starts_with("sys/internal/ui/mounts/"))
        .count();
    assert_eq!(
        lookups, n,
        "only bao agent looks up the mount of a path that says data/"
    );
    // hydrant: N reads and its token's lookup; bao agent: N reads, N mount lookups, and its own.
    let others = requests.len() - reads.len() - lookups;
    assert!(others <= 3, "{requests:?}");
}

/// Templates as HashiCorp's vault-k8s and consul-template documentation write them.
#[test]
fn documentation_examples_render_as_bao_agent_renders_them() {
    let (vault, token) = seeded();
    // The docs' database credentials, as data of the same shape (a KV v1 mount named database).
    vault.mount("database", "kv", json!({}));
    vault.api(
        "POST",
        "database/creds/db-app",
        Some(json!({"username": "v-kube-db-app-x1", "password": "A1a-pw\"'$`\\"})),
    );
    vault.kv2_put(
        "app/multiline",
        json!({"cert": "-----BEGIN X-----\nabc\n-----END X-----\n", "unicode": "ünï ☃ 🦀", "tab": "a\tb"}),
    );
    vault.policy("docs", "path \"database/*\" { capabilities = [\"read\"] }\npath \"secret/data/*\" { capabilities = [\"read\"] }\n");
    let token = {
        let _ = token;
        vault.token(&["ct", "docs"])
    };
    assert_same(
        &vault,
        &token,
        &[
            case(
                "postgres-url",
                "{{- with secret \"database/creds/db-app\" -}}\npostgres://{{ .Data.username }}:{{ .Data.password }}@postgres:5432/appdb?sslmode=disable\n{{- end }}\n",
            ),
            case(
                "exports",
                "{{- with secret \"secret/data/app/db\" -}}\nexport USER=\"{{ .Data.data.username }}\"\nexport PASS=\"{{ .Data.data.password }}\"\n{{- end }}\n",
            ),
            case(
                "properties",
                "{{ with secret \"secret/data/app/config\" }}{{ range $k, $v := .Data.data }}{{ $k }}={{ $v }}\n{{ end }}{{ end }}",
            ),
            case(
                "range-keys",
                "{{ range secrets \"secret/metadata/app/\" }}{{ . }}\n{{ end }}",
            ),
            case(
                "multiline",
                "{{ with secret \"secret/data/app/multiline\" }}{{ .Data.data.cert }}{{ .Data.data.unicode }}|{{ .Data.data.tab }}|{{ printf \"%q\" .Data.data.tab }}{{ end }}\n",
            ),
            case(
                "yaml-by-hand",
                "db:\n{{- with secret \"secret/data/app/db\" }}\n  user: {{ .Data.data.username }}\n  pass: {{ .Data.data.password | printf \"%q\" }}\n{{- end }}\n",
            ),
        ],
    );
}

/// A binary value kept base64 in Vault (a keystore) reaches the file as the same bytes.
#[test]
fn base64_decoded_binary_values_reach_the_file_byte_for_byte() {
    let (vault, token) = seeded();
    let raw: Vec<u8> = (0..=255u8).rev().chain(*b"tail\n").collect();
    use base64::Engine as _;
    let encoded = base64::engine::general_purpose::STANDARD.encode(&raw);
    vault.kv2_put("app/keystore", json!({"jks": encoded}));
    let outputs = both(
        &vault,
        &token,
        &[
            case(
                "jks",
                "{{ with secret \"secret/data/app/keystore\" }}{{ .Data.data.jks | base64Decode }}{{ end }}",
            ),
            case(
                "sprig",
                "{{ with secret \"secret/data/app/keystore\" }}{{ .Data.data.jks | sprig_b64dec }}{{ end }}",
            ),
        ],
    );
    outputs.bao.expect("bao agent");
    outputs.hydrant.expect("hydrant");
    let (bao_dir, hydrant_dir) = outputs.dirs;
    for name in ["jks", "sprig"] {
        let bao = std::fs::read(bao_dir.join(name)).expect("bao's file");
        assert_eq!(bao, raw, "bao agent writes the raw bytes");
        assert_eq!(
            std::fs::read(hydrant_dir.join(name)).expect("hydrant's file"),
            bao,
            "{name}"
        );
    }
}

/// `hydrant render` runs the same engine offline: a consul-template template with secrets from
/// a file, no containers needed, and a syntax error named with its line.
#[test]
fn render_runs_consul_template_templates_offline_from_a_secrets_file() {
    let dir = tempfile::tempdir().expect("dir");
    let template = dir.path().join("db.ctmpl");
    std::fs::write(
        &template,
        "{{ with secret \"secret/data/app/db\" }}{{ .Data.data.user }}:{{ .Data.data.port | printf \"%v\" }}{{ end }}\n",
    )
    .expect("template");
    let secrets = dir.path().join("secrets.yaml");
    std::fs::write(
        &secrets,
        "secret/data/app/db: {data: {user: app, port: 5432}}\n",
    )
    .expect("secrets");
    let run = Hydrant::new(["render", "--syntax", "consul-template", "--template"])
        .run_with_args(&[
            template.as_os_str(),
            "--secrets-file".as_ref(),
            secrets.as_os_str(),
        ])
        .success();
    assert_eq!(run.stdout(), "app:5432\n");

    std::fs::write(&template, "ok\n{{ with secret \"x\" }}").expect("template");
    let line = Hydrant::new(["render", "--syntax", "consul-template", "--template"])
        .run_with_args(&[
            template.as_os_str(),
            "--secrets-file".as_ref(),
            secrets.as_os_str(),
        ])
        .failure(64);
    assert!(line.contains("db.ctmpl line 2"), "{line}");
}
