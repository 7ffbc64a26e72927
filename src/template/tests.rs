//! The engine against an in-memory secret source: rounds, deduplication, strictness, positions.
//! Real Vault is exercised by the integration tests.

use std::collections::HashMap;
use std::sync::Mutex;

use serde_json::json;

use super::*;

/// Secrets by request, and every request made, in order.
#[derive(Default)]
struct Memory {
    secrets: HashMap<Request, Json>,
    requests: Mutex<Vec<Request>>,
}

impl Memory {
    fn with(mut self, path: &str, data: Json) -> Memory {
        self.secrets.insert(Request::read(path), data);
        self
    }

    fn with_write(mut self, path: &str, params: Json, data: Json) -> Memory {
        let params: BTreeMap<String, Json> = serde_json::from_value(params).expect("map");
        self.secrets.insert(Request::write(path, &params), data);
        self
    }

    fn requests(&self) -> Vec<Request> {
        self.requests.lock().expect("lock").clone()
    }
}

impl Fetch for Memory {
    async fn fetch(&self, request: &Request) -> Result<vault::Secret, vault::Error> {
        self.requests.lock().expect("lock").push(request.clone());
        let data = self
            .secrets
            .get(request)
            .cloned()
            .ok_or_else(|| vault::Error::NotFound {
                path: request.path.clone(),
            })?;
        Ok(vault::Secret {
            data,
            ..vault::Secret::default()
        })
    }
}

fn engine(templates: &[(&str, &str)]) -> Engine {
    let outputs = templates
        .iter()
        .map(|(name, text)| (name.to_string(), Source::Template(text.to_string())))
        .collect();
    Engine::new(outputs, Arc::new(HashMap::<String, String>::new()), 10).expect("compiles")
}

fn text(result: &Result<Rendered, Error>) -> &str {
    std::str::from_utf8(result.as_ref().expect("renders").as_bytes()).expect("utf-8")
}

fn block_on<F: Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime")
        .block_on(future)
}

#[test]
fn each_distinct_request_is_fetched_once_across_templates() {
    let memory = Memory::default()
        .with(
            "secret/data/db",
            json!({"data": {"user": "u", "pass": "p"}}),
        )
        .with("secret/data/api", json!({"data": {"key": "k"}}));
    let engine = engine(&[
        (
            "a",
            "{{ secret('secret/data/db').data.user }}:{{ secret('secret/data/db').data.pass }}",
        ),
        (
            "b",
            "{{ secret('secret/data/db').data.user }}-{{ secret('/secret/data/api/').data.key }}",
        ),
    ]);
    let results = block_on(engine.render_all(&memory));
    assert_eq!(text(&results[0]), "u:p");
    assert_eq!(text(&results[1]), "u-k");
    let mut requests = memory.requests();
    requests.sort();
    assert_eq!(
        requests,
        [
            Request::read("secret/data/api"),
            Request::read("secret/data/db")
        ]
    );
}

#[test]
fn writes_with_parameters_are_distinct_requests_in_canonical_order() {
    let memory = Memory::default().with_write(
        "pki/issue/web",
        json!({"common_name": "web.example.com", "ttl": "1h"}),
        json!({"certificate": "CERT"}),
    );
    let engine = engine(&[
        (
            "a",
            "{{ secret('pki/issue/web', ttl='1h', common_name='web.example.com').certificate }}",
        ),
        (
            "b",
            "{{ secret('pki/issue/web', common_name='web.example.com', ttl='1h').certificate }}",
        ),
    ]);
    let results = block_on(engine.render_all(&memory));
    assert_eq!(text(&results[0]), "CERT");
    assert_eq!(text(&results[1]), "CERT");
    assert_eq!(
        memory.requests().len(),
        1,
        "same parameters in another order: one request"
    );
}

#[test]
fn a_path_built_from_another_secret_takes_one_more_round_and_no_stray_request() {
    let memory = Memory::default()
        .with(
            "secret/data/pointer",
            json!({"data": {"target": "secret/data/real"}}),
        )
        .with("secret/data/real", json!({"data": {"v": "found"}}));
    let engine = engine(&[(
        "a",
        "{% set p = secret('secret/data/pointer').data.target %}{{ secret(p).data.v | upper }}",
    )]);
    let results = block_on(engine.render_all(&memory));
    assert_eq!(text(&results[0]), "FOUND");
    assert_eq!(
        memory.requests(),
        [
            Request::read("secret/data/pointer"),
            Request::read("secret/data/real")
        ],
        "the placeholder path is never requested"
    );
}

#[test]
fn loops_and_conditions_over_secret_data_render_after_fetching() {
    let memory = Memory::default().with("kv/app", json!({"b": "2", "a": "1"}));
    let engine = engine(&[(
        "a",
        "{% for k, v in secret('kv/app')|items %}{{ k }}={{ v }}\n{% endfor %}{% if secret('kv/app').a == '1' %}yes{% endif %}",
    )]);
    let results = block_on(engine.render_all(&memory));
    assert_eq!(text(&results[0]), "a=1\nb=2\nyes");
}

#[test]
fn a_missing_key_is_an_error_naming_template_position_and_expression() {
    let memory = Memory::default().with("secret/data/db", json!({"data": {"user": "u"}}));
    let engine = engine(&[(
        "db",
        "user={{ secret('secret/data/db').data.user }}\npass={{ secret('secret/data/db').data.password }}\n",
    )]);
    let results = block_on(engine.render_all(&memory));
    let err = results[0].as_ref().expect_err("strict");
    assert_eq!(
        err.to_string(),
        "template db line 2 column 33: key missing: password (in `.data.password`)"
    );
}

#[test]
fn an_undefined_variable_or_index_is_named() {
    let memory = Memory::default().with("kv/x", json!({"list": ["a"]}));
    let engine = engine(&[
        ("var", "{{ nothing }}"),
        ("index", "{{ secret('kv/x')['other'] }}"),
    ]);
    let results = block_on(engine.render_all(&memory));
    let message = results[0].as_ref().expect_err("strict").to_string();
    assert_eq!(
        message,
        "template var line 1 column 4: key missing: nothing (in `nothing`)"
    );
    let message = results[1].as_ref().expect_err("strict").to_string();
    assert!(message.contains("key missing: other (in `"), "{message}");
}

#[test]
fn syntax_errors_name_template_line_and_column_and_are_all_reported() {
    let outputs = vec![
        ("good".to_string(), Source::Template("{{ 1 }}".into())),
        (
            "bad1".to_string(),
            Source::Template("line one\n{{ secret('x') }\n".into()),
        ),
        ("bad2".to_string(), Source::Template("{% if %}".into())),
    ];
    let errors = Engine::new(outputs, Arc::new(HashMap::<String, String>::new()), 10)
        .expect_err("syntax errors");
    assert_eq!(errors.len(), 2);
    let first = errors[0].to_string();
    assert!(first.starts_with("template bad1 line 2 column "), "{first}");
    assert!(first.contains("syntax error"), "{first}");
    assert!(
        errors[1].to_string().starts_with("template bad2 line 1"),
        "{}",
        errors[1]
    );
}

#[test]
fn a_failed_request_fails_only_the_templates_that_need_it() {
    let memory = Memory::default().with("secret/data/ok", json!({"data": {"v": "fine"}}));
    let engine = engine(&[
        ("broken", "{{ secret('secret/data/nope').data.v }}"),
        ("works", "{{ secret('secret/data/ok').data.v }}"),
    ]);
    let results = block_on(engine.render_all(&memory));
    let err = results[0].as_ref().expect_err("fails");
    assert_eq!(
        err.to_string(),
        "template broken: secret not found: secret/data/nope"
    );
    assert!(matches!(
        err.vault_error(),
        Some(vault::Error::NotFound { .. })
    ));
    assert_eq!(text(&results[1]), "fine");
}

#[test]
fn filters_encode_decode_and_serialise() {
    let memory = Memory::default().with("kv/x", json!({"s": "aGVsbG8=", "m": {"k": [1, 2]}}));
    let engine = engine(&[
        ("dec", "{{ secret('kv/x').s | b64decode }}"),
        ("enc", "{{ 'hello' | b64encode }}"),
        ("json", "{{ secret('kv/x').m | tojson }}"),
        ("yaml", "{{ secret('kv/x').m | toyaml }}"),
    ]);
    let results = block_on(engine.render_all(&memory));
    assert_eq!(text(&results[0]), "hello");
    assert_eq!(text(&results[1]), "aGVsbG8=");
    assert_eq!(text(&results[2]), r#"{"k": [1, 2]}"#);
    assert_eq!(text(&results[3]), "k:\n- 1\n- 2\n");
}

#[test]
fn b64decode_errors_never_show_the_input() {
    let memory = Memory::default().with("kv/x", json!({"s": "not base64 SECRETVALUE"}));
    let engine = engine(&[("dec", "{{ secret('kv/x').s | b64decode }}")]);
    let results = block_on(engine.render_all(&memory));
    let message = results[0].as_ref().expect_err("fails").to_string();
    assert!(message.contains("not valid base64"), "{message}");
    assert!(!message.contains("SECRETVALUE"), "{message}");
}

#[test]
fn env_reads_the_given_environment_and_fails_clearly_when_unset() {
    let env: HashMap<String, String> = [("REGION".to_string(), "eu-1".to_string())].into();
    let outputs = vec![
        (
            "a".to_string(),
            Source::Template("{{ env('REGION') }}/{{ env('ZONE', 'z1') }}".into()),
        ),
        (
            "b".to_string(),
            Source::Template("{{ env('MISSING') }}".into()),
        ),
    ];
    let engine = Engine::new(outputs, Arc::new(env), 10).expect("compiles");
    let results = block_on(engine.render_all(&Memory::default()));
    assert_eq!(text(&results[0]), "eu-1/z1");
    let message = results[1].as_ref().expect_err("fails").to_string();
    assert_eq!(
        message,
        "template b line 1 column 4: invalid operation: env(): the environment variable is not set; set it or give env() a default, as in env('NAME', 'value') (in `env('MISSING')`)"
    );
}

#[test]
fn secrets_shorthand_shares_requests_with_templates() {
    let memory = Memory::default().with(
        "secret/data/app",
        json!({"data": {"a": "1"}, "metadata": {"version": 1, "created_time": "t"}}),
    );
    let outputs = vec![
        (
            "t".to_string(),
            Source::Template("{{ secret('secret/data/app').data.a }}".into()),
        ),
        (
            "s".to_string(),
            Source::Secret {
                path: "secret/data/app".into(),
                format: SecretFormat::Env,
            },
        ),
    ];
    let engine =
        Engine::new(outputs, Arc::new(HashMap::<String, String>::new()), 10).expect("compiles");
    let results = block_on(engine.render_all(&memory));
    assert_eq!(text(&results[0]), "1");
    assert_eq!(text(&results[1]), "a='1'\n");
    assert_eq!(memory.requests().len(), 1);
}

#[test]
fn trailing_newlines_are_kept_and_nothing_is_escaped() {
    let engine = engine(&[("a", "<{{ '&' }}>\n")]);
    let results = block_on(engine.render_all(&Memory::default()));
    assert_eq!(text(&results[0]), "<&>\n");
}

#[test]
fn rendered_debug_output_is_redacted() {
    let rendered = Rendered(b"password=hunter2".to_vec());
    assert_eq!(format!("{rendered:?}"), "Rendered(<16 bytes redacted>)");
}

#[test]
fn column_counts_characters_from_the_line_start() {
    assert_eq!(column_of("abc\nde{{ x }}", 6), 3);
    assert_eq!(column_of("éé{{", 4), 3);
    assert_eq!(column_of("x", 0), 1);
}

#[test]
fn a_branch_the_real_data_does_not_take_sends_no_request_with_side_effects() {
    let memory = Memory::default()
        .with("secret/data/flags", json!({"data": {"on": true}}))
        .with("database/creds/ro", json!({"username": "v-ro-1"}));
    let engine = engine(&[(
        "t",
        "{% if secret('secret/data/flags').data.on %}on{% else %}{{ secret('database/creds/ro').username }}{% endif %}",
    )]);
    let results = block_on(engine.render_all(&memory));
    assert_eq!(text(&results[0]), "on");
    assert_eq!(
        memory.requests(),
        [Request::read("secret/data/flags")],
        "no database credentials were created for the branch not taken"
    );
}

#[test]
fn parameters_made_from_unfetched_secrets_are_never_sent() {
    let memory = Memory::default()
        .with("secret/data/a", json!({"data": {"cn": "web"}}))
        .with_write(
            "pki/issue/r",
            json!({"common_name": "web.example.com", "alt_names": ["web"]}),
            json!({"certificate": "CERT"}),
        );
    let engine = engine(&[(
        "t",
        "{{ secret('pki/issue/r', common_name=secret('secret/data/a').data.cn ~ '.example.com', alt_names=[secret('secret/data/a').data.cn]).certificate }}",
    )]);
    let results = block_on(engine.render_all(&memory));
    assert_eq!(text(&results[0]), "CERT");
    let requests = memory.requests();
    assert_eq!(
        requests.len(),
        2,
        "one read, one write with the real parameters: {requests:?}"
    );
}

#[test]
fn kv2_reads_after_a_placeholder_are_fetched_ahead_in_the_same_round() {
    let mut memory = Memory::default();
    let mut text_in = String::new();
    for i in 0..18 {
        memory = memory.with(
            &format!("secret/data/s{i}"),
            json!({"data": {"port": format!("{}", 5000 + i)}}),
        );
        text_in.push_str(&format!(
            "{{{{ secret('secret/data/s{i}').data.port | int + 1 }}}}\n"
        ));
    }
    let engine = engine(&[("ports", &text_in)]);
    let results = block_on(engine.render_all(&memory));
    assert!(
        text(&results[0]).starts_with("5001\n5002\n"),
        "{}",
        text(&results[0])
    );
    assert_eq!(memory.requests().len(), 18, "each read once");
}

#[test]
fn requests_with_side_effects_in_one_template_are_fetched_in_order() {
    let memory = Memory::default()
        .with("database/creds/a", json!({"username": "a"}))
        .with("database/creds/b", json!({"username": "b"}))
        .with("database/creds/c", json!({"username": "c"}));
    let engine = engine(&[(
        "t",
        "{{ secret('database/creds/a').username }}{{ secret('database/creds/b').username }}{{ secret('database/creds/c').username }}",
    )]);
    let results = block_on(engine.render_all(&memory));
    assert_eq!(text(&results[0]), "abc");
    assert_eq!(
        memory.requests(),
        [
            Request::read("database/creds/a"),
            Request::read("database/creds/b"),
            Request::read("database/creds/c")
        ]
    );
}

#[test]
fn request_debug_output_hides_parameters() {
    let params: BTreeMap<String, Json> = [("secret_id".to_string(), json!("s3cr3t"))].into();
    let debug = format!("{:?}", Request::write("auth/approle/login", &params));
    assert!(!debug.contains("s3cr3t"), "{debug}");
    assert!(debug.contains("auth/approle/login"), "{debug}");
}

/// Answers after a delay per path, on tokio's clock.
struct Slow(Memory, HashMap<String, u64>);

impl Fetch for Slow {
    async fn fetch(&self, request: &Request) -> Result<vault::Secret, vault::Error> {
        let ms = self.1.get(&request.path).copied().unwrap_or(0);
        tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
        self.0.fetch(request).await
    }
}

#[test]
fn each_output_is_handed_over_as_soon_as_its_secrets_arrive() {
    let memory = Memory::default()
        .with("secret/data/fast", json!({"data": {"v": "f"}}))
        .with("secret/data/slow", json!({"data": {"v": "s"}}));
    let slow = Slow(memory, [("secret/data/slow".to_string(), 100)].into());
    let engine = engine(&[
        ("slow", "{{ secret('secret/data/slow').data.v }}"),
        ("fast", "{{ secret('secret/data/fast').data.v }}"),
    ]);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("runtime");
    let order = runtime.block_on(async {
        let start = tokio::time::Instant::now();
        let mut order = Vec::new();
        engine
            .render_each(&slow, |i, result| {
                assert!(result.is_ok());
                order.push((i, start.elapsed().as_millis()));
            })
            .await;
        order
    });
    assert_eq!(
        order,
        [(1, 0), (0, 100)],
        "the fast output did not wait for the slow one"
    );
}

#[test]
fn dependencies_name_what_each_output_read() {
    let memory = Memory::default()
        .with("secret/data/a", json!({"data": {"v": "1"}}))
        .with("secret/data/b", json!({"data": {"v": "2"}}));
    let engine = engine(&[
        ("one", "{{ secret('secret/data/a').data.v }}"),
        (
            "both",
            "{{ secret('secret/data/a').data.v }}{{ secret('secret/data/b').data.v }}",
        ),
    ]);
    block_on(engine.render_all(&memory));
    assert_eq!(engine.using(&Request::read("secret/data/a")), [0, 1]);
    assert_eq!(engine.using(&Request::read("secret/data/b")), [1]);
    assert_eq!(engine.dependencies(1).requests.len(), 2);
}

#[test]
fn a_kept_cache_fetches_only_what_was_forgotten() {
    let memory = Memory::default()
        .with("secret/data/a", json!({"data": {"v": "1"}}))
        .with("secret/data/b", json!({"data": {"v": "2"}}));
    let engine = engine(&[(
        "t",
        "{{ secret('secret/data/a').data.v }}{{ secret('secret/data/b').data.v }}",
    )]);
    let render = |which: &[usize]| {
        let mut out = Vec::new();
        block_on(engine.render_some(which, &memory, |i, r| out.push((i, text(&r).to_owned()))));
        out
    };
    assert_eq!(render(&[0]), [(0, "12".to_string())]);
    assert_eq!(memory.requests().len(), 2);
    assert_eq!(render(&[0]), [(0, "12".to_string())]);
    assert_eq!(memory.requests().len(), 2, "everything came from the cache");
    engine.store(Request::read("secret/data/b"), &json!({"data": {"v": "3"}}));
    assert_eq!(render(&[0]), [(0, "13".to_string())]);
    engine.forget(&Request::read("secret/data/a"));
    assert_eq!(render(&[0]), [(0, "13".to_string())]);
    assert_eq!(
        memory.requests().len(),
        3,
        "only the forgotten request was fetched again"
    );
}

#[test]
fn file_reads_only_watched_paths_and_is_a_dependency() {
    let dir = tempfile::tempdir().expect("tempdir");
    let watched = dir.path().join("conf");
    std::fs::create_dir(&watched).expect("mkdir");
    std::fs::write(watched.join("site"), "atlantida").expect("write");
    let engine = engine(&[
        (
            "ok",
            &format!(
                "{{{{ file('{}') | upper }}}}",
                watched.join("site").display()
            ),
        ),
        ("outside", "{{ file('/etc/hostname') }}"),
        (
            "escape",
            &format!("{{{{ file('{}/../../etc/hostname') }}}}", watched.display()),
        ),
    ]);
    engine.allow_files(vec![watched.clone()]);
    let results = block_on(engine.render_all(&Memory::default()));
    assert_eq!(text(&results[0]), "ATLANTIDA");
    let message = results[1].as_ref().expect_err("sandboxed").to_string();
    assert!(
        message.contains("only files under the config's watch list"),
        "{message}"
    );
    let message = results[2].as_ref().expect_err("no way out").to_string();
    assert!(message.contains("a path with `..`"), "{message}");
    assert_eq!(engine.using_file(&watched), [0]);
}

#[test]
fn fromjson_parses_json_text_and_names_the_position_of_an_error() {
    let engine = engine(&[
        (
            "ok",
            r#"{{ ('{"region": "eu", "n": [1, 2]}' | fromjson).n[1] }}"#,
        ),
        ("bad", r#"{{ '{"password": "hunter2",' | fromjson }}"#),
    ]);
    let results = block_on(engine.render_all(&Memory::default()));
    assert_eq!(text(&results[0]), "2");
    let message = results[1].as_ref().expect_err("invalid").to_string();
    assert!(
        message.contains("fromjson: not valid JSON (line 1"),
        "{message}"
    );
    assert!(!message.contains("hunter2"), "no text quoted: {message}");
}

#[test]
fn an_endless_loop_stops_after_its_steps_naming_the_template() {
    let mut engine = engine(&[
        (
            "spin",
            "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
        ),
        ("fine", "{% for i in range(100) %}{{ i }}{% endfor %}"),
    ]);
    engine.set_limits(Limits {
        render_steps: 100_000,
        ..Limits::default()
    });
    let results = block_on(engine.render_all(&Memory::default()));
    let error = results[0].as_ref().expect_err("stopped");
    assert!(matches!(error, Error::OutOfSteps { .. }), "{error:?}");
    assert_eq!(
        error.to_string(),
        "template spin: stopped after 100000 steps, the limit of one render (limits.render_steps); does a loop never end?"
    );
    assert!(text(&results[1]).ends_with("9899"), "the other renders");
}

#[test]
fn an_output_past_the_file_limit_is_refused_naming_template_and_limit() {
    let memory = Memory::default().with(
        "secret/data/big",
        json!({"data": {"blob": "y".repeat(2000)}}),
    );
    let outputs = vec![
        (
            "exact".to_string(),
            Source::Template("{% for i in range(100) %}0123456789{% endfor %}".into()),
        ),
        (
            "over".to_string(),
            Source::Template("{% for i in range(100) %}0123456789{% endfor %}!".into()),
        ),
        (
            "blob".to_string(),
            Source::Secret {
                path: "secret/data/big".into(),
                format: SecretFormat::Json,
            },
        ),
    ];
    let mut engine =
        Engine::new(outputs, Arc::new(HashMap::<String, String>::new()), 10).expect("compiles");
    engine.set_limits(Limits {
        file_bytes: 1000,
        ..Limits::default()
    });
    let results = block_on(engine.render_all(&memory));
    assert_eq!(text(&results[0]).len(), 1000, "exactly the limit is fine");
    for (i, name) in [(1, "over"), (2, "blob")] {
        let error = results[i].as_ref().expect_err("too large");
        assert_eq!(
            error.to_string(),
            format!(
                "template {name}: the output is larger than 1000 bytes, the limit of one file (limits.file_bytes); the file keeps what it had"
            )
        );
    }
}

/// minijinja's own bounds, which hydrant relies on: `*` on a string and `range()` refuse sizes
/// past theirs (100 MB and 100 000 items).
#[test]
fn string_repetition_and_ranges_have_minijinja_s_bounds() {
    let engine = engine(&[
        ("repeat", "{{ 'x' * 1000000000 }}"),
        ("range", "{% for i in range(1000000) %}{% endfor %}"),
    ]);
    let results = block_on(engine.render_all(&Memory::default()));
    let repeat = results[0].as_ref().expect_err("refused").to_string();
    assert!(repeat.contains("repeated string is too large"), "{repeat}");
    let range = results[1].as_ref().expect_err("refused").to_string();
    assert!(range.contains("range has too many elements"), "{range}");
}

/// hardening #9: a name or path computed from a secret never reaches an error; the template's
/// own text of the failing call does.
#[test]
fn errors_quote_the_template_s_text_never_a_value_computed_from_a_secret() {
    const SECRET: &str = "Zq9-leaky-value";
    const NUMBER: &str = "987654321987654321987";
    let memory =
        Memory::default().with("secret/data/s", json!({"data": {"v": SECRET, "n": NUMBER}}));
    let dir = tempfile::tempdir().expect("tempdir");
    let s = "secret('secret/data/s').data.v";
    let engine = engine(&[
        ("include", &format!("{{% include {s} %}}")),
        ("env", &format!("{{{{ env({s}) }}}}")),
        (
            "file",
            &format!("{{{{ file('{}/' ~ {s}) }}}}", dir.path().display()),
        ),
        ("path", &format!("{{{{ secret('secret/data/' ~ {s}) }}}}")),
        (
            "arith",
            "{{ (secret('secret/data/s').data.n | int) * 99999999999999999999 }}",
        ),
        ("format", &format!("{{{{ ({s} ~ '%') | format(1) }}}}")),
    ]);
    engine.allow_files(vec![dir.path().to_owned()]);
    let results = block_on(engine.render_all(&memory));
    let message = |i: usize| results[i].as_ref().expect_err("fails").to_string();
    for i in 0..results.len() {
        let message = message(i);
        assert!(
            !message.contains(SECRET) && !message.contains(NUMBER),
            "output {i} quotes the secret: {message}"
        );
    }
    assert!(
        message(0).contains("no template of that name"),
        "{}",
        message(0)
    );
    assert!(
        message(1).ends_with(&format!("(in `env({s})`)")),
        "{}",
        message(1)
    );
    assert!(
        message(2).contains("file(): cannot read it"),
        "{}",
        message(2)
    );
    assert!(
        message(3).starts_with(
            "template path line 1 column 4: vault request failed (not_found) for a path computed while rendering"
        ),
        "{}",
        message(3)
    );
}

/// hardening #11: a link planted in a watched directory may not lead outside it (here to the
/// agent's state file); the links of a ConfigMap volume, which stay inside, are followed.
#[test]
fn file_follows_links_only_while_they_stay_in_the_watched_directories() {
    use std::os::unix::fs::symlink;
    const TOKEN: &str = "hvs.agent-token-do-not-leak";
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state");
    std::fs::create_dir(&state).expect("mkdir");
    std::fs::write(state.join("state.json"), TOKEN).expect("write");
    // A ConfigMap volume: settings -> ..data/settings, ..data -> ..2024_01_01.
    let config = dir.path().join("config");
    std::fs::create_dir_all(config.join("..2024_01_01")).expect("mkdir");
    std::fs::write(config.join("..2024_01_01/settings"), "site=a\n").expect("write");
    symlink("..2024_01_01", config.join("..data")).expect("link");
    symlink("..data/settings", config.join("settings")).expect("link");
    symlink(state.join("state.json"), config.join("planted")).expect("link");
    let engine = engine(&[
        (
            "configmap",
            &format!("{{{{ file('{}') }}}}", config.join("settings").display()),
        ),
        (
            "planted",
            &format!("{{{{ file('{}') }}}}", config.join("planted").display()),
        ),
    ]);
    engine.allow_files(vec![config.clone()]);
    let results = block_on(engine.render_all(&Memory::default()));
    assert_eq!(text(&results[0]), "site=a\n");
    let message = results[1].as_ref().expect_err("refused").to_string();
    assert!(
        message.contains("file(): refused: the path goes through a link to a file outside the watched directories"),
        "{message}"
    );
    assert!(
        message.contains(&format!(
            "(in `file('{}')`)",
            config.join("planted").display()
        )),
        "names the file: {message}"
    );
    assert!(!message.contains(TOKEN), "{message}");
}

/// file() reads regular files only (a FIFO would block the render for ever) and no more than
/// a file may hold.
#[test]
fn file_refuses_fifos_and_files_past_the_file_limit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fifo = dir.path().join("fifo");
    let status = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo");
    assert!(status.success());
    std::fs::write(dir.path().join("big"), "x".repeat(2000)).expect("write");
    let call = |name: &str| format!("{{{{ file('{}') }}}}", dir.path().join(name).display());
    let mut engine = engine(&[("fifo", &call("fifo")), ("big", &call("big"))]);
    engine.set_limits(Limits {
        file_bytes: 1000,
        ..Limits::default()
    });
    engine.allow_files(vec![dir.path().to_owned()]);
    let results = block_on(engine.render_all(&Memory::default()));
    let message = |i: usize| results[i].as_ref().expect_err("refused").to_string();
    assert!(
        message(0).contains("file(): refused: not a regular file"),
        "{}",
        message(0)
    );
    assert!(
        message(1).contains(
            "file(): refused: larger than 1000 bytes, the limit of one file (limits.file_bytes)"
        ),
        "{}",
        message(1)
    );
}

#[test]
fn only_paths_a_source_spells_may_be_shown() {
    let shown = Shown {
        sources: Arc::new(vec![
            "{{ secret('secret/data/app/db').data.x }}".to_owned(),
            "kv/app/config".to_owned(),
        ]),
    };
    assert_eq!(shown.path("secret/data/app/db"), "secret/data/app/db");
    assert_eq!(shown.path("kv/app/config"), "kv/app/config");
    assert_eq!(shown.path("secret/data/hunter2"), COMPUTED_PATH);
    assert_eq!(shown.path(""), COMPUTED_PATH);
}

#[test]
fn discovery_needs_no_vault_and_queues_what_the_outputs_need() {
    let memory = Memory::default().with("secret/data/db", json!({"data": {"user": "u"}}));
    let engine = engine(&[
        ("plain", "no secret here"),
        ("db", "{{ secret('secret/data/db').data.user }}"),
    ]);
    let mut done: Vec<(usize, String)> = Vec::new();
    let mut render = engine.begin_all();
    block_on(engine.discover(&mut render, |i, r| done.push((i, text(&r).to_owned()))));
    assert_eq!(done, [(0, "no secret here".to_owned())]);
    assert!(memory.requests().is_empty(), "discovery fetches nothing");

    block_on(engine.finish(render, &memory, |i, r| done.push((i, text(&r).to_owned()))));
    assert_eq!(done[1], (1, "u".to_owned()));
    assert_eq!(memory.requests(), [Request::read("secret/data/db")]);
}

/// A fetcher that notes how many outputs were final when its request for `watched` went on:
/// when it was sent, or (with `give_way`) when it resumed after giving way once.
struct Watching {
    memory: Memory,
    watched: Request,
    give_way: bool,
    final_outputs: Arc<std::sync::atomic::AtomicUsize>,
    seen: Mutex<Option<usize>>,
}

impl Watching {
    /// Secrets a and b; watches b's request.
    fn b(give_way: bool) -> Watching {
        Watching {
            memory: Memory::default()
                .with("secret/data/a", json!({"data": {"x": "a"}}))
                .with("secret/data/b", json!({"data": {"x": "b"}})),
            watched: Request::read("secret/data/b"),
            give_way,
            final_outputs: Arc::default(),
            seen: Mutex::new(None),
        }
    }

    /// Renders every output, counting the final ones; the outputs' texts in order.
    fn render(&self, engine: &Engine) -> Vec<String> {
        block_on(async {
            let mut results = vec![String::new(); engine.len()];
            engine
                .render_each(self, |i, r| {
                    results[i] = text(&r).to_owned();
                    self.final_outputs
                        .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                })
                .await;
            results
        })
    }

    fn seen(&self) -> Option<usize> {
        *self.seen.lock().expect("lock")
    }
}

impl Fetch for Watching {
    async fn fetch(&self, request: &Request) -> Result<vault::Secret, vault::Error> {
        if *request == self.watched {
            if self.give_way {
                tokio::task::yield_now().await;
            }
            let finals = self.final_outputs.load(std::sync::atomic::Ordering::SeqCst);
            *self.seen.lock().expect("lock") = Some(finals);
        }
        self.memory.fetch(request).await
    }
}

/// Output a takes a while to render once its secret is back (a few milliseconds of loop); b
/// needs its own secret.
const SLOW_A_AND_B: [(&str, &str); 2] = [
    (
        "a",
        "{% for i in range(20000) %}{% endfor %}{{ secret('secret/data/a').data.x }}",
    ),
    ("b", "{{ secret('secret/data/b').data.x }}"),
];

#[test]
fn fetches_go_on_while_an_output_renders() {
    let fetcher = Watching::b(true);
    let results = fetcher.render(&engine(&SLOW_A_AND_B));
    assert_eq!(results, ["a", "b"]);
    assert_eq!(
        fetcher.seen(),
        Some(0),
        "the request for b went on while a rendered"
    );
}

#[test]
fn a_place_freed_is_used_while_an_output_renders() {
    let fetcher = Watching::b(false);
    let outputs = SLOW_A_AND_B
        .iter()
        .map(|(name, text)| (name.to_string(), Source::Template(text.to_string())))
        .collect();
    // One request at a time: b's waits for a's to come back, not for a to render.
    let engine =
        Engine::new(outputs, Arc::new(HashMap::<String, String>::new()), 1).expect("compiles");
    assert_eq!(fetcher.render(&engine), ["a", "b"]);
    assert_eq!(
        fetcher.seen(),
        Some(0),
        "b's request was sent while a rendered"
    );
}
