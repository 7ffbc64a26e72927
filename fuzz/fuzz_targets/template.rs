//! Templates (from pod annotations, so written by anyone who can create a pod), in both
//! languages: compiling and rendering never panics and always ends, whatever the text and
//! whatever secret() is asked. The first byte chooses the language: odd is consul-template's.
#![no_main]

use std::collections::HashMap;
use std::sync::Arc;

use hydrant::template::{ConsulOptions, Engine, Fetch, Kind, Request, Source};
use hydrant::vault;
use libfuzzer_sys::fuzz_target;
use serde_json::json;

/// Answers every read with a KV v2 shape and every write with a certificate; paths containing
/// "missing" are not found.
struct Anything;

impl Fetch for Anything {
    async fn fetch(&self, request: &Request) -> Result<vault::Secret, vault::Error> {
        if request.path.contains("missing") {
            return Err(vault::Error::NotFound {
                path: request.path.clone(),
            });
        }
        let data = match (request.kind(), request.params()) {
            (Kind::List, _) => json!({"keys": ["a", "b/"]}),
            (_, None) => {
                json!({"data": {"user": "u", "port": 5432, "list": [1, 2], "b64": "aGk="}, "metadata": {"version": 1}})
            }
            (_, Some(_)) => json!({"certificate": "CERT", "private_key": "KEY"}),
        };
        Ok(vault::Secret {
            data,
            ..vault::Secret::default()
        })
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((first, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let source = if first % 2 == 1 {
        Source::ConsulTemplate {
            text: text.to_string(),
            options: ConsulOptions::default(),
        }
    } else {
        Source::Template(text.to_string())
    };
    let outputs = vec![("t".to_string(), source)];
    let env: HashMap<String, String> = [("HOME".to_string(), "/root".to_string())].into();
    let Ok(engine) = Engine::new(outputs, Arc::new(env), 4) else {
        return;
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let results = runtime.block_on(engine.render_all(&Anything));
    assert_eq!(results.len(), 1);
});
