//! The consul-template engine on data in memory; the comparisons with `bao agent` are in the
//! integration tests (`tests/consul_template.rs`).

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::json;

use super::super::{Engine, Fetch, Request, Source};
use super::Options;
use crate::vault;

/// Responses by request; what is not there is a 404.
struct Memory(HashMap<Request, serde_json::Value>);

impl Fetch for Memory {
    async fn fetch(&self, request: &Request) -> Result<vault::Secret, vault::Error> {
        let data = self.0.get(request).cloned().ok_or(vault::Error::NotFound {
            path: request.path.clone(),
        })?;
        Ok(vault::Secret {
            data,
            ..vault::Secret::default()
        })
    }
}

fn consul(name: &str, text: &str) -> (String, Source) {
    (
        name.to_owned(),
        Source::ConsulTemplate {
            text: text.to_owned(),
            options: Options::default(),
        },
    )
}

fn render(outputs: Vec<(String, Source)>, memory: &Memory) -> Vec<Result<String, String>> {
    let engine = Engine::new(outputs, Arc::new(HashMap::<String, String>::new()), 4)
        .unwrap_or_else(|e| panic!("compiles: {e:?}"));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime
        .block_on(engine.render_all(memory))
        .into_iter()
        .map(|r| {
            r.map(|r| String::from_utf8_lossy(r.as_bytes()).into_owned())
                .map_err(|e| e.to_string())
        })
        .collect()
}

#[test]
fn a_secret_nested_in_another_s_body_is_fetched_in_a_second_pass() {
    let memory = Memory(HashMap::from([
        (
            Request::read("secret/data/a"),
            json!({"data": {"next": "secret/data/b"}}),
        ),
        (Request::read("secret/data/b"), json!({"data": {"v": "2"}})),
    ]));
    let out = render(
        vec![consul(
            "t",
            "{{ with secret \"secret/data/a\" }}{{ with secret .Data.data.next }}{{ .Data.data.v }}{{ end }}{{ end }}",
        )],
        &memory,
    );
    assert_eq!(out, [Ok("2".to_owned())]);
}

#[test]
fn a_missing_key_renders_no_value_and_is_reported_unless_it_must_fail() {
    let memory = Memory(HashMap::from([(
        Request::read("secret/data/a"),
        json!({"data": {"k": "v"}}),
    )]));
    let text = "{{ with secret \"secret/data/a\" }}{{ .Data.data.nope }}{{ end }}";
    let engine = Engine::new(
        vec![consul("t", text)],
        Arc::new(HashMap::<String, String>::new()),
        4,
    )
    .expect("compiles");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let out = runtime.block_on(engine.render_all(&memory));
    assert_eq!(out[0].as_ref().expect("renders").as_bytes(), b"<no value>");
    assert_eq!(engine.dependencies(0).missing_key.as_deref(), Some("nope"));

    let strict = Source::ConsulTemplate {
        text: text.to_owned(),
        options: Options {
            error_on_missing_key: true,
            ..Options::default()
        },
    };
    let out = render(vec![("t".to_owned(), strict)], &memory);
    let error = out[0].as_ref().expect_err("fails");
    assert!(error.contains("nope"), "{error}");
}

#[test]
fn a_vault_failure_names_a_literal_path_and_hides_a_computed_one() {
    let memory = Memory(HashMap::from([(
        Request::read("secret/data/a"),
        json!({"data": {"next": "secret/data/hunter2"}}),
    )]));
    let out = render(
        vec![
            consul("lit", "{{ with secret \"secret/data/missing\" }}{{ end }}"),
            consul(
                "computed",
                "{{ with secret \"secret/data/a\" }}{{ with secret .Data.data.next }}{{ end }}{{ end }}",
            ),
        ],
        &memory,
    );
    let literal = out[0].as_ref().expect_err("404");
    assert!(literal.contains("secret/data/missing"), "{literal}");
    let computed = out[1].as_ref().expect_err("404");
    assert!(!computed.contains("hunter2"), "{computed}");
}

#[test]
fn printf_cannot_build_text_past_the_file_limit() {
    let items: Vec<u32> = (0..40).collect();
    let memory = Memory(HashMap::from([(
        Request::read("secret/data/list"),
        json!({"data": {"items": items}}),
    )]));
    // Doubling a string 40 times would make a terabyte; printf refuses past 4 MiB.
    let text = "{{ scratch.Set \"s\" \"xxxxxxxxxxxxxxxx\" }}{{ with secret \"secret/data/list\" }}\
                {{ range .Data.data.items }}{{ scratch.Set \"s\" (printf \"%s%s\" (scratch.Get \"s\") (scratch.Get \"s\")) }}{{ end }}\
                {{ end }}{{ len (scratch.Get \"s\") }}";
    let out = render(vec![consul("t", text)], &memory);
    let error = out[0].as_ref().expect_err("bounded");
    assert!(error.contains("limits.file_bytes"), "{error}");
}

#[test]
fn templates_of_one_engine_keep_their_own_definitions() {
    let memory = Memory(HashMap::new());
    let out = render(
        vec![
            consul(
                "a",
                "{{ define \"row\" }}A{{ end }}{{ template \"row\" }}{{ executeTemplate \"row\" }}",
            ),
            consul(
                "b",
                "{{ define \"row\" }}B{{ end }}{{ template \"row\" }}{{ executeTemplate \"row\" }}",
            ),
            consul("c", "{{ executeTemplate \"row\" }}"),
        ],
        &memory,
    );
    assert_eq!(out[0], Ok("AA".to_owned()));
    assert_eq!(out[1], Ok("BB".to_owned()));
    let error = out[2].as_ref().expect_err("c defines no row");
    assert!(error.contains("no template of that name"), "{error}");
}
