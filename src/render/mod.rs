//! `hydrant render`: the agent's config engine on the command line, for CI and laptops.
//! Composes an instance's snapshot from container directories, validates it against the app's
//! schema, and writes it in a format or through a template, with secrets from Vault or a file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value as Json;
use tokio::sync::OnceCell;

use crate::env::Env;
use crate::snapshot::output::{self, Format, Target};
use crate::snapshot::{self, Labels, Schema, Snapshot};
use crate::template::{self, Engine, Fetch, Request, Source};
use crate::vault;
use injector::agent_config::{TemplateConfig, TemplateSyntax};

/// `hydrant render`'s flags: what to render.
#[derive(Debug, clap::Args)]
#[command(group = clap::ArgGroup::new("output").args(["format", "template"]))]
pub struct Args {
    /// A directory of config containers (.yaml, .yml, .json, read recursively) or one file;
    /// repeat for more. Required unless a --template is given (which then sees an empty
    /// snapshot).
    #[arg(
        long = "containers",
        value_name = "DIR",
        required_unless_present = "template"
    )]
    pub containers: Vec<PathBuf>,
    /// The instance's labels, k=v,k=v; repeat for more. Sources must agree on a key.
    #[arg(long, value_name = "K=V,...")]
    pub labels: Vec<String>,
    /// More labels: a downward API file (key="value" lines) or a YAML map.
    #[arg(long, value_name = "FILE")]
    pub labels_file: Option<PathBuf>,
    /// The levels containers rank by, lowest precedence first.
    #[arg(
        long,
        value_name = "LEVEL,...",
        value_delimiter = ',',
        default_value = "global,region,site,line,environment"
    )]
    pub levels: Vec<String>,
    /// The app's JSON Schema (draft-07 or 2020-12, JSON or YAML).
    #[arg(long, value_name = "FILE")]
    pub schema: Option<PathBuf>,
    /// json (default), yaml, properties, env or configmap.
    #[arg(long, value_name = "FMT", value_parser = |s: &str| s.parse::<Format>())]
    pub format: Option<Format>,
    /// A template that sees config and snapshot (version, labels, containers) and may call
    /// secret(): Jinja, or consul-template's language with --syntax consul-template.
    #[arg(long, value_name = "FILE")]
    pub template: Option<PathBuf>,
    /// The template's language: jinja, or consul-template (Go templates with consul-template's
    /// functions, as Vault Agent runs them; the snapshot is not visible to them).
    #[arg(long, value_name = "SYNTAX", default_value = "jinja", requires = "template",
          value_parser = parse_syntax)]
    pub syntax: TemplateSyntax,
    /// consul-template: the delimiters, as LEFT,RIGHT (default {{,}}).
    #[arg(long, value_name = "LEFT,RIGHT", requires = "template", value_parser = parse_delimiters)]
    pub delimiters: Option<(String, String)>,
    /// The ConfigMap's name (--format configmap).
    #[arg(long, value_name = "N")]
    pub name: Option<String>,
    /// The ConfigMap's namespace (--format configmap).
    #[arg(long, value_name = "NS")]
    pub namespace: Option<String>,
    /// Write here (atomically) instead of standard output; - is standard output.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Print every value with the container that set it and the ones it overrode.
    #[arg(long, conflicts_with = "check")]
    pub explain: bool,
    /// Only validate: exit 0 when the snapshot is valid, 64 with every error.
    #[arg(long)]
    pub check: bool,
    /// Secrets for templates from this YAML file mapping Vault paths to what secret() returns.
    #[arg(long, value_name = "FILE", conflicts_with = "agent_config")]
    pub secrets_file: Option<PathBuf>,
    /// Take Vault's address, TLS settings and login from this agent config: hydrant's own, or a
    /// Vault Agent configuration (HCL or its JSON form; its templates are not rendered).
    #[arg(long, value_name = "FILE")]
    pub agent_config: Option<PathBuf>,
}

fn parse_syntax(text: &str) -> Result<TemplateSyntax, String> {
    match text {
        "jinja" => Ok(TemplateSyntax::Jinja),
        "consul-template" => Ok(TemplateSyntax::ConsulTemplate),
        _ => Err("use jinja or consul-template".to_owned()),
    }
}

fn parse_delimiters(text: &str) -> Result<(String, String), String> {
    match text.split_once(',') {
        Some((left, right)) if !left.is_empty() && !right.is_empty() => {
            Ok((left.to_owned(), right.to_owned()))
        }
        _ => Err("give both delimiters, as in '[[,]]'".to_owned()),
    }
}

/// `hydrant render`: renders as the flags say and prints the result (nothing with `--out`).
pub fn command(args: &Args, env: Arc<dyn Env>) -> anyhow::Result<()> {
    let text = run(args, env)?;
    std::io::Write::write_all(&mut std::io::stdout(), text.as_bytes())?;
    Ok(())
}

/// Why rendering failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The containers, labels or schema are invalid.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Input(Vec<snapshot::Error>),
    /// The snapshot does not satisfy the schema, or cannot be written in the format.
    #[error(transparent)]
    Snapshot(snapshot::Error),
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

/// Renders as the flags say and returns what to print on standard output (empty when the
/// output went to a file).
pub fn run(args: &Args, env: Arc<dyn Env>) -> Result<String, Error> {
    let snapshot = compose(args)?;
    if args.explain {
        let mut text = format!("# version {}\n", snapshot.version());
        text.push_str(&format!(
            "# containers, in precedence order: {}\n",
            snapshot.containers().collect::<Vec<_>>().join(", ")
        ));
        for line in snapshot.explain() {
            text.push_str(&format!("{line}\n"));
        }
        validate(args, &snapshot)?;
        return Ok(text);
    }
    validate(args, &snapshot)?;
    if args.check {
        return Ok(format!(
            "valid: version {} from {} containers\n",
            snapshot.version(),
            snapshot.containers().count()
        ));
    }
    let text = match &args.template {
        Some(path) => render_template(args, path, &snapshot, env)?,
        None => output::write(
            &snapshot,
            args.format.unwrap_or(Format::Json),
            &Target {
                name: args.name.as_deref(),
                namespace: args.namespace.as_deref(),
            },
        )
        .map_err(Error::Snapshot)?,
    };
    match args.out.as_deref() {
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

/// Composes the instance's snapshot from the flags' containers and labels.
pub fn compose(args: &Args) -> Result<Snapshot, Error> {
    let mut labels = Labels::default();
    let input = |e| Error::Input(vec![e]);
    for text in &args.labels {
        let parsed = snapshot::parse_labels("--labels", text).map_err(input)?;
        labels.add("--labels", parsed).map_err(input)?;
    }
    if let Some(path) = &args.labels_file {
        labels.add_file(path).map_err(input)?;
    }
    snapshot::compose_from(&args.containers, &labels, &args.levels).map_err(Error::Input)
}

fn validate(args: &Args, snapshot: &Snapshot) -> Result<(), Error> {
    if let Some(path) = &args.schema {
        let schema = Schema::load(path).map_err(|e| Error::Input(vec![e]))?;
        schema.check(snapshot).map_err(Error::Snapshot)?;
    }
    Ok(())
}

fn render_template(
    args: &Args,
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
    let (left, right) = args.delimiters.clone().unwrap_or_default();
    let config = TemplateConfig {
        syntax: args.syntax,
        left_delimiter: Some(left),
        right_delimiter: Some(right),
        ..TemplateConfig::default()
    };
    let mut source = Source::of_template(&config, text);
    if let Source::ConsulTemplate { options, .. } = &mut source {
        // pkiCert reuses a good certificate in --out, and writeToFile writes beside it.
        options.destination = args.out.clone();
    }
    let mut engine = Engine::new(vec![(name, source)], env.clone(), 10).map_err(Error::Template)?;
    for (name, value) in snapshot::template_globals(&Arc::new(snapshot.clone())) {
        engine.set_global(name, value);
    }
    let secrets = match &args.secrets_file {
        Some(path) => Secrets::File(read_secrets_file(path)?, path.clone()),
        None => Secrets::Vault(Box::new(VaultSource::new(args, env.as_ref())?)),
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
    async fn fetch(&self, request: &Request) -> Result<vault::Secret, vault::Error> {
        match self {
            Secrets::File(map, file) => {
                let data =
                    map.get(&request.path)
                        .cloned()
                        .ok_or_else(|| vault::Error::NotInFile {
                            path: request.path.clone(),
                            file: file.clone(),
                        })?;
                Ok(vault::Secret {
                    data,
                    ..vault::Secret::default()
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
    fn new(args: &Args, env: &dyn Env) -> Result<VaultSource, Error> {
        let settings = vault::cli::CliVault::from(args.agent_config.as_deref(), env)
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

    async fn fetch(&self, request: &Request) -> Result<vault::Secret, vault::Error> {
        let client = self.client().await?;
        request.send(client, true).await
    }
}
