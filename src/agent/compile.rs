//! Reading every template source and compiling the agent's engine, before anything is sent to
//! Vault: a template that does not compile costs no login.

use std::path::PathBuf;
use std::sync::Arc;

use injector::AgentConfig;
use injector::agent_config::OutputKind;

use super::Error;
use crate::env::Env;
use crate::template::{self, Engine, Source};

/// A template read from a file: its output's index, the file and the text compiled.
pub(crate) type SourceFile = (usize, PathBuf, String);

/// Reads template sources and compiles everything.
pub(super) fn compile(
    config: &AgentConfig,
    env: Arc<dyn Env>,
) -> Result<(Engine, Vec<SourceFile>), Error> {
    let mut sources = Vec::new();
    let mut files = Vec::new();
    for (i, output) in config.outputs().enumerate() {
        let t = match output.kind {
            OutputKind::Template(t) => t,
            OutputKind::Secret(s) => {
                let source = Source::Secret {
                    path: s.path.clone(),
                    format: s.format,
                };
                sources.push((s.name.clone(), source));
                continue;
            }
        };
        let text = match (&t.contents, &t.source) {
            (Some(contents), _) => contents.clone(),
            (None, Some(path)) => {
                let text = std::fs::read_to_string(path).map_err(|error| Error::Source {
                    template: t.name.clone(),
                    path: path.clone(),
                    error,
                })?;
                files.push((i, path.clone(), text.clone()));
                text
            }
            // Refused by validation.
            (None, None) => String::new(),
        };
        sources.push((t.name.clone(), Source::of_template(t, text)));
    }
    let mut engine =
        Engine::new(sources, env, config.vault.max_concurrent_requests()).map_err(Error::Syntax)?;
    engine.set_limits(template::Limits {
        file_bytes: config.limits.file_bytes(),
        render_steps: config.limits.render_steps(),
    });
    // The init container and the sidecar read the same files: a config that renders in one
    // renders in the other.
    engine.allow_files(config.watch.clone());
    Ok((engine, files))
}

/// Warns when output `i`'s last render looked up a key that does not exist: a
/// consul-template template renders `<no value>` there, as Vault Agent does (which says
/// nothing). The key is the template's own text, never a value. Whether it did.
pub(crate) fn warn_missing_key(engine: &Engine, i: usize, template: &str) -> bool {
    let Some(key) = engine.dependencies(i).missing_key else {
        return false;
    };
    tracing::warn!(
        template,
        key,
        "the template reads a key that does not exist and renders <no value> there, as Vault Agent does; set error_on_missing_key (vault.hashicorp.com/error-on-missing-key-<name>) to fail instead"
    );
    true
}
