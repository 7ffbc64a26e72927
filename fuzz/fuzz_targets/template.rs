//! Templates (from pod annotations, so written by anyone who can create a pod): compiling and
//! rendering never panics and always ends, whatever the text and whatever secret() is asked.
#![no_main]

use std::collections::HashMap;
use std::sync::Arc;

use hydrant::template::{Engine, Fetch, Request, Source};
use hydrant::vault;
use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};

/// Answers every read with a KV v2 shape and every write with a certificate; paths containing
/// "missing" are not found.
struct Anything;

impl Fetch for Anything {
    async fn fetch(&self, request: &Request) -> Result<Value, vault::Error> {
        if request.path.contains("missing") {
            return Err(vault::Error::NotFound {
                path: request.path.clone(),
            });
        }
        Ok(match request.params() {
            None => {
                json!({"data": {"user": "u", "port": "5432", "list": [1, 2], "b64": "aGk="}, "metadata": {"version": 1}})
            }
            Some(_) => json!({"certificate": "CERT", "private_key": "KEY"}),
        })
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let outputs = vec![("t".to_string(), Source::Template(text.to_string()))];
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
