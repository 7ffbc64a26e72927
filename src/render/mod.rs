//! `hydrant render`: the agent's config engine on the command line, for CI and laptops.
//! Composes an instance's snapshot from container directories, validates it against the app's
//! schema, and writes it in a format or through a template, with secrets from Vault or a file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value as Json;
use tokio::sync::OnceCell;

use crate::config::output::{self, Format, Target};
use crate::config::{self, Labels, Schema, Snapshot};
use crate::env::Env;
use crate::template::{self, Engine, Fetch, Request, Source};
use crate::vault;

/// What to render.
#[derive(Debug)]
pub struct Options {
    /// Container files and directories.
    pub containers: Vec<PathBuf>,
    /// `k=v,k=v` texts, each a label source.
    pub labels: Vec<String>,
    /// A labels file: downward API lines or a YAML map.
    pub labels_file: Option<PathBuf>,
    /// The levels, lowest precedence first.
    pub levels: Vec<String>,
    /// The app's JSON Schema.
    pub schema: Option<PathBuf>,
    /// A built-in format.
    pub format: Option<Format>,
    /// A template file, instead of a format.
    pub template: Option<PathBuf>,
    /// The ConfigMap's name.
    pub name: Option<String>,
    /// The ConfigMap's namespace.
    pub namespace: Option<String>,
    /// Where to write; standard output when absent or `-`.
    pub out: Option<PathBuf>,
    /// Print every value with its provenance instead of the output.
    pub explain: bool,
    /// Only validate.
    pub check: bool,
    /// Secrets for templates from this file instead of Vault.
    pub secrets_file: Option<PathBuf>,
    /// Vault settings and login from an agent config.
    pub agent_config: Option<PathBuf>,
}

/// Why rendering failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The containers, labels or schema are invalid.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Input(Vec<config::Error>),
    /// The snapshot does not satisfy the schema, or cannot be written in the format.
    #[error(transparent)]
    Snapshot(config::Error),
    /// The template failed to compile or render.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Template(Vec<template::Error>),
    /// A file could not be read or written.
    #[error("cannot {what} {}: {error}", path.display())]
    Io {
        /// Read or write.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// The secrets file is not a map of Vault paths.
    #[error("secrets file {}: {message}", path.display())]
    SecretsFile {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// The agent config is invalid.
    #[error("agent config invalid: {0}")]
    AgentConfig(String),
}

/// Renders as the options say and returns what to print on standard output (empty when the
/// output went to a file).
pub fn run(options: &Options, env: Arc<dyn Env>) -> Result<String, Error> {
    let snapshot = compose(options)?;
    if options.explain {
        let mut text = format!("# version {}\n", snapshot.version());
        text.push_str(&format!(
            "# containers, in precedence order: {}\n",
            snapshot.containers().collect::<Vec<_>>().join(", ")
        ));
        for line in snapshot.explain() {
            text.push_str(&format!("{line}\n"));
        }
        validate(options, &snapshot)?;
        return Ok(text);
    }
    validate(options, &snapshot)?;
    if options.check {
        return Ok(format!(
            "valid: version {} from {} containers\n",
            snapshot.version(),
            snapshot.containers().count()
        ));
    }
    let text = match &options.template {
        Some(path) => render_template(options, path, &snapshot, env)?,
        None => output::write(
            &snapshot,
            options.format.unwrap_or(Format::Json),
            &Target {
                name: options.name.as_deref(),
                namespace: options.namespace.as_deref(),
            },
        )
        .map_err(Error::Snapshot)?,
    };
    match options.out.as_deref() {
        Some(path) if path != Path::new("-") => {
            // 0600: a template's output may hold secrets.
            crate::files::write_atomic(path, text.as_bytes(), 0o600).map_err(|error| {
                Error::Io {
                    what: "write",
                    path: path.to_owned(),
                    error,
                }
            })?;
            Ok(String::new())
        }
        _ => Ok(text),
    }
}

/// Composes the instance's snapshot from the options' containers and labels.
pub fn compose(options: &Options) -> Result<Snapshot, Error> {
    let mut labels = Labels::default();
    let input = |e| Error::Input(vec![e]);
    for text in &options.labels {
        let parsed = config::parse_labels("--labels", text).map_err(input)?;
        labels.add("--labels", parsed).map_err(input)?;
    }
    if let Some(path) = &options.labels_file {
        labels.add_file(path).map_err(input)?;
    }
    config::compose_from(&options.containers, &labels, &options.levels).map_err(Error::Input)
}

fn validate(options: &Options, snapshot: &Snapshot) -> Result<(), Error> {
    if let Some(path) = &options.schema {
        let schema = Schema::load(path).map_err(|e| Error::Input(vec![e]))?;
        schema.check(snapshot).map_err(Error::Snapshot)?;
    }
    Ok(())
}

fn render_template(
    options: &Options,
    path: &Path,
    snapshot: &Snapshot,
    env: Arc<dyn Env>,
) -> Result<String, Error> {
    let text = std::fs::read_to_string(path).map_err(|error| Error::Io {
        what: "read",
        path: path.to_owned(),
        error,
    })?;
    let name = path.file_name().map_or_else(
        || "template".to_owned(),
        |n| n.to_string_lossy().into_owned(),
    );
    let mut engine = Engine::new(vec![(name, Source::Template(text))], env.clone(), 10)
        .map_err(Error::Template)?;
    for (name, value) in config::template_globals(&Arc::new(snapshot.clone())) {
        engine.set_global(name, value);
    }
    let secrets = match &options.secrets_file {
        Some(path) => Secrets::File(read_secrets_file(path)?, path.clone()),
        None => Secrets::Vault(Box::new(VaultSource::new(options, env.as_ref())?)),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|error| Error::Io {
            what: "start the runtime for",
            path: path.to_owned(),
            error,
        })?;
    let mut results = runtime.block_on(engine.render_all(&secrets));
    runtime.shutdown_background();
    match results.pop() {
        Some(Ok(rendered)) => Ok(String::from_utf8_lossy(rendered.as_bytes()).into_owned()),
        Some(Err(e)) => Err(Error::Template(vec![e])),
        None => Ok(String::new()),
    }
}

fn read_secrets_file(path: &Path) -> Result<BTreeMap<String, Json>, Error> {
    let text = std::fs::read_to_string(path).map_err(|error| Error::Io {
        what: "read",
        path: path.to_owned(),
        error,
    })?;
    serde_saphyr::from_str(&text).map_err(|e| Error::SecretsFile {
        path: path.to_owned(),
        message: format!("{e}; it must map Vault paths to what secret() returns"),
    })
}

/// Where a template's secrets come from.
enum Secrets {
    /// A file mapping paths to data.
    File(BTreeMap<String, Json>, PathBuf),
    /// Vault, logged in on the first secret a template reads.
    Vault(Box<VaultSource>),
}

impl Fetch for Secrets {
    async fn fetch(&self, request: &Request) -> Result<Json, vault::Error> {
        match self {
            Secrets::File(map, file) => {
                map.get(&request.path)
                    .cloned()
                    .ok_or_else(|| vault::Error::NotInFile {
                        path: request.path.clone(),
                        file: file.clone(),
                    })
            }
            Secrets::Vault(source) => source.fetch(request).await,
        }
    }
}

/// Vault from an agent config (its `vault` and `auth`), or from `VAULT_ADDR` and
/// `VAULT_TOKEN`; connected on first use, so that a template without secrets needs neither.
struct VaultSource {
    settings: Option<vault::cli::CliVault>,
    client: OnceCell<vault::Client>,
}

impl VaultSource {
    fn new(options: &Options, env: &dyn Env) -> Result<VaultSource, Error> {
        let settings = vault::cli::CliVault::from(options.agent_config.as_deref(), env)
            .map_err(Error::AgentConfig)?;
        Ok(VaultSource {
            settings,
            client: OnceCell::new(),
        })
    }

    async fn client(&self) -> Result<&vault::Client, vault::Error> {
        self.client
            .get_or_try_init(async || {
                let Some(settings) = &self.settings else {
                    return Err(vault::Error::Config {
                        key: "VAULT_ADDR",
                        problem: "a template reads a secret but no Vault is configured; set \
                                  VAULT_ADDR and VAULT_TOKEN, pass --agent-config, or pass \
                                  --secrets-file"
                            .to_owned(),
                    });
                };
                settings.connect().await
            })
            .await
    }

    async fn fetch(&self, request: &Request) -> Result<Json, vault::Error> {
        let client = self.client().await?;
        let secret = match request.params() {
            None => client.read(&request.path).await?,
            Some(params) => client.write(&request.path, &params).await?,
        };
        Ok(secret.data)
    }
}
