//! Reading every template source and compiling the agent's engine, before anything is sent to
//! Vault: a template that does not compile costs no login.

use std::path::PathBuf;
use std::sync::Arc;

use injector::AgentConfig;
use injector::agent_config::{OutputKind, TemplateSyntax};

use super::Error;
use crate::env::Env;
use crate::template::{self, ConsulOptions, Engine, Source};

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
    let engine = engine(config, sources, env)?;
    Ok((engine, files))
}

/// Reads the sources of `hydrant exec`'s environment and compiles them: output `i` is
/// `env[i]`. A path and key renders the secret's whole data as JSON (the key is taken from it
/// by [`crate::exec`]), with consul-template's reading rules: a KV v2 path without `data/`
/// works, and a version is asked with `?version=`.
pub(crate) fn compile_env(
    config: &AgentConfig,
    env: Arc<dyn Env>,
) -> Result<(Engine, Vec<SourceFile>), Error> {
    let mut sources = Vec::new();
    let mut files = Vec::new();
    for (i, e) in config.env.iter().enumerate() {
        let source = match (&e.contents, &e.source, &e.path) {
            (_, _, Some(path)) => Source::ConsulTemplate {
                text: secret_data_template(path, e.version),
                options: ConsulOptions::default(),
            },
            (contents, source, None) => {
                let text = match (contents, source) {
                    (Some(contents), _) => contents.clone(),
                    (None, Some(path)) => {
                        let text =
                            std::fs::read_to_string(path).map_err(|error| Error::Source {
                                template: e.name.clone(),
                                path: path.clone(),
                                error,
                            })?;
                        files.push((i, path.clone(), text.clone()));
                        text
                    }
                    // Refused by validation.
                    (None, None) => String::new(),
                };
                match e.syntax {
                    TemplateSyntax::Jinja => Source::Template(text),
                    TemplateSyntax::ConsulTemplate => Source::ConsulTemplate {
                        text,
                        options: ConsulOptions {
                            left_delimiter: e.left_delimiter.clone().unwrap_or_default(),
                            right_delimiter: e.right_delimiter.clone().unwrap_or_default(),
                            error_on_missing_key: e.error_on_missing_key.unwrap_or(false),
                            destination: None,
                        },
                    },
                }
            }
        };
        sources.push((e.name.clone(), source));
    }
    let engine = engine(config, sources, env)?;
    Ok((engine, files))
}

/// The consul-template template that renders the data at `path` (a version of it) as JSON.
/// Validation refuses quotes, backslashes and control characters in the path, so it is
/// spelled in the template as it is.
pub(crate) fn secret_data_template(path: &str, version: Option<u64>) -> String {
    let query = version.map(|v| format!("?version={v}")).unwrap_or_default();
    format!("{{{{ with secret \"{path}{query}\" }}}}{{{{ .Data | toJSON }}}}{{{{ end }}}}")
}

/// Compiles `sources` with the config's bounds and readable files.
fn engine(
    config: &AgentConfig,
    sources: Vec<(String, Source)>,
    env: Arc<dyn Env>,
) -> Result<Engine, Error> {
    let mut engine =
        Engine::new(sources, env, config.vault.max_concurrent_requests()).map_err(Error::Syntax)?;
    engine.set_limits(template::Limits {
        file_bytes: config.limits.file_bytes(),
        render_steps: config.limits.render_steps(),
    });
    // The init container and the sidecar read the same files: a config that renders in one
    // renders in the other.
    engine.allow_files(config.watch.clone());
    Ok(engine)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_and_key_renders_the_secrets_data_as_json_at_its_version() {
        assert_eq!(
            secret_data_template("secret/data/app/db", None),
            r#"{{ with secret "secret/data/app/db" }}{{ .Data | toJSON }}{{ end }}"#
        );
        assert_eq!(
            secret_data_template("secret/app", Some(3)),
            r#"{{ with secret "secret/app?version=3" }}{{ .Data | toJSON }}{{ end }}"#
        );
    }
}
