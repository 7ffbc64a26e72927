//! Rendering the anchor's scenario without Vault: one template per KV v2 secret holding five
//! keys, written in consul-template's language (the very template `bao agent` renders in
//! `../shared/bench/`) and the same file in Jinja, the secrets served from memory. One iteration
//! does what an init container does with its templates: compile them all, then render them all
//! through the engine (each attempt on the blocking pool, each distinct request once).
//! Goal (the consul-template issue): consul-template costs at most 10% more than Jinja.

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::Arc;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use hydrant::template::{ConsulOptions, Engine, Fetch, Rendered, Request, Source};
use hydrant::vault;
use injector::agent_config::DEFAULT_MAX_CONCURRENT_REQUESTS;
use serde_json::{Map, Value as Json, json};

/// Secrets by path, shaped as KV v2 returns them.
struct Memory(HashMap<String, Json>);

impl Memory {
    fn new(n: usize) -> Memory {
        let secrets = (0..n)
            .map(|i| {
                let data: Map<String, Json> = (1..=5)
                    .map(|j| {
                        (
                            format!("k{j}"),
                            json!(format!("s{i}-k{j}-{:024x}", i * 7 + j)),
                        )
                    })
                    .collect();
                let metadata = json!({"version": 1, "destroyed": false, "deletion_time": ""});
                (path(i), json!({"data": data, "metadata": metadata}))
            })
            .collect();
        Memory(secrets)
    }
}

impl Fetch for Memory {
    async fn fetch(&self, request: &Request) -> Result<vault::Secret, vault::Error> {
        let data = self
            .0
            .get(&request.path)
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

fn path(i: usize) -> String {
    format!("secret/data/app/s{i}")
}

/// The anchor's template for secret `i`, as `bao agent` renders it.
fn consul_template(i: usize) -> Source {
    let keys: String = (1..=5)
        .map(|j| format!("k{j}={{{{ .Data.data.k{j} }}}}\n"))
        .collect();
    Source::ConsulTemplate {
        text: format!("{{{{ with secret \"{}\" }}}}{keys}{{{{ end }}}}", path(i)),
        options: ConsulOptions::default(),
    }
}

/// The same file in Jinja.
fn jinja(i: usize) -> Source {
    let keys: String = (1..=5)
        .map(|j| format!("k{j}={{{{ secret('{}').data.k{j} }}}}\n", path(i)))
        .collect();
    Source::Template(keys)
}

/// Makes the template of secret `i`.
type Make = fn(usize) -> Source;

/// Compiles `n` templates made by `source` and renders them all.
fn compile_and_render(
    runtime: &tokio::runtime::Runtime,
    memory: &Memory,
    n: usize,
    source: Make,
) -> Vec<Rendered> {
    let outputs = (0..n).map(|i| (format!("s{i}"), source(i))).collect();
    let env = Arc::new(HashMap::<String, String>::new());
    let in_flight = usize::from(DEFAULT_MAX_CONCURRENT_REQUESTS);
    let engine = Engine::new(outputs, env, in_flight).expect("the templates compile");
    let rendered = runtime.block_on(engine.render_all(memory));
    rendered
        .into_iter()
        .map(|r| r.expect("every template renders"))
        .collect()
}

fn render(c: &mut Criterion) {
    // The agent's own runtime: one thread, attempts on the blocking pool.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut group = c.benchmark_group("render");
    for n in [10, 50] {
        let memory = Memory::new(n);
        // Both languages must write the same bytes, or the comparison means nothing.
        assert_eq!(
            compile_and_render(&runtime, &memory, n, consul_template),
            compile_and_render(&runtime, &memory, n, jinja),
        );
        let sources: [(&str, Make); 2] = [("consul-template", consul_template), ("jinja", jinja)];
        for (name, source) in sources {
            group.bench_with_input(BenchmarkId::new(name, n), &n, |b, &n| {
                b.iter(|| black_box(compile_and_render(&runtime, &memory, n, source)))
            });
        }
    }
    group.finish();
}

criterion_group!(benches, render);
criterion_main!(benches);
