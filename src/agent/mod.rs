//! The in-pod agent: log in to Vault, render every template and secret, write the files
//! atomically. With `--once` (the init container) it then exits; without, it is the sidecar
//! that keeps every file fresh for the life of the pod.

pub mod config;
pub(crate) mod files;
mod schedule;
mod server;
mod sidecar;
pub mod state;
pub mod timing;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use injector::AgentConfig;
use tokio::time::Instant;
use tracing::{info, warn};

use crate::env::Env;
use crate::template::{self, Engine, Fetch, Rendered, Request, Source};
use crate::vault;

pub use self::config::load as load_config;
pub use self::files::{FileWrite, Written, write_all, write_atomic};

/// Why the agent stopped. Each names what failed; none holds a secret.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration cannot be used.
    #[error("config invalid: {0}")]
    Config(String),
    /// A template file cannot be read.
    #[error("template {template}: cannot read source {}: {error}", .path.display())]
    Source {
        /// Template name.
        template: String,
        /// The source file.
        path: PathBuf,
        /// The I/O error (in the message, not the source chain, so it is shown once).
        error: std::io::Error,
    },
    /// Templates do not compile.
    #[error("{}", summary(.0))]
    Syntax(Vec<template::Error>),
    /// Logging in failed.
    #[error("{0}")]
    Login(vault::Error),
    /// Outputs failed to render; nothing was written.
    #[error("{}", summary(.0))]
    Render(Vec<template::Error>),
    /// A destination cannot be written.
    #[error("cannot write {} for {name}: {error}", .path.display())]
    Write {
        /// Template or secret name.
        name: String,
        /// The destination.
        path: PathBuf,
        /// The I/O error (in the message, not the source chain, so it is shown once).
        error: std::io::Error,
    },
    /// A destination directory does not take new files.
    #[error(
        "cannot write files in {} (for {name}): {error}{hint}",
        .dir.display(),
        hint = permission_hint(.error)
    )]
    Unwritable {
        /// Template or secret name.
        name: String,
        /// The directory.
        dir: PathBuf,
        /// The I/O error.
        error: std::io::Error,
    },
    /// The config snapshot cannot be composed, or fails its schema; nothing was written.
    #[error("{0}")]
    Snapshot(String),
    /// The process could not start its runtime.
    #[error("cannot start: {0}")]
    Runtime(String),
    /// `exit_on_retry_failure`: a fetch kept failing; the agent exits so that the kubelet
    /// restarts it (vault-k8s's `template-config-exit-on-retry-failure`).
    #[error(
        "giving up: fetching {path} failed {attempts} times in a row (last: {reason});          exit_on_retry_failure is set, so the agent exits and is restarted"
    )]
    RetriesExhausted {
        /// The Vault path.
        path: String,
        /// Failures in a row.
        attempts: u32,
        /// The last failure's fixed label.
        reason: &'static str,
    },
}

fn permission_hint(error: &std::io::Error) -> &'static str {
    use std::io::ErrorKind::{PermissionDenied, ReadOnlyFilesystem};
    match error.kind() {
        PermissionDenied | ReadOnlyFilesystem => {
            "; the volume may be read-only or belong to another user (check fsGroup and runAsUser)"
        }
        _ => "",
    }
}

/// The first error, and how many more there were (each is logged).
fn summary(errors: &[template::Error]) -> String {
    match errors {
        [] => "no error".to_owned(),
        [only] => only.to_string(),
        [first, rest @ ..] => format!("{first} (and {} more failures, logged above)", rest.len()),
    }
}

/// What the agent subcommand was asked to do.
#[derive(Debug)]
pub struct Options<'a> {
    /// The config file; `None` reads `HYDRANT_AGENT_CONFIG`.
    pub config: Option<&'a Path>,
    /// Render once and exit.
    pub once: bool,
}

/// Runs the agent to completion.
pub fn run(options: &Options<'_>, env: Arc<dyn Env>) -> Result<(), Error> {
    let config = config::load(options.config, env.as_ref()).map_err(Error::Config)?;
    let (mut engine, sources) = compile(&config, env)?;
    // The snapshot is composed before anything is sent to Vault: an invalid one costs no login.
    let snapshot = config.snapshot.as_ref().map(snapshot);
    if let Some(result) = &snapshot {
        match result {
            Ok(snapshot) => use_snapshot(&mut engine, snapshot),
            Err(e) if options.once => return Err(Error::Snapshot(e.clone())),
            Err(error) => {
                warn!(%error, "the config snapshot is invalid; templates that read it wait for a valid one")
            }
        }
    }
    let mut checked: Vec<&Path> = Vec::new();
    for output in outputs(&config) {
        let dir = files::parent(output.destination);
        if checked.contains(&dir) {
            continue;
        }
        checked.push(dir);
        files::check_writable(dir).map_err(|error| Error::Unwritable {
            name: output.name.to_owned(),
            dir: dir.to_owned(),
            error,
        })?;
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Runtime(format!("the async runtime: {e}")))?;
    if !options.once {
        let snapshot = snapshot.and_then(Result::ok);
        let result = runtime.block_on(async {
            let stop = crate::shutdown_signal();
            sidecar::run(&config, engine, sources, snapshot, stop).await
        });
        runtime.shutdown_timeout(std::time::Duration::from_secs(1));
        return result;
    }
    let result = runtime.block_on(render_once(&config, &engine));
    // Every file is written and synced: idle connections and pool threads need no goodbye, and
    // an init container that exits sooner lets the app start sooner.
    runtime.shutdown_background();
    result
}

/// Logs in, renders everything, and writes every file only if every output rendered: an app
/// never starts with some of its files.
async fn render_once(config: &AgentConfig, engine: &Engine) -> Result<(), Error> {
    let deadline = Instant::now() + config.retry.deadline();
    let mut client = vault::Client::connect(&config.vault).map_err(Error::Login)?;
    let auth = &config.auth;
    let what = format!("logging in at auth/{}", auth.mount());
    let token = vault::retry::until(deadline, &what, async || {
        vault::login(&mut client, auth).await
    })
    .await
    .map_err(Error::Login)?;
    info!(
        method = %auth.method,
        mount = auth.mount(),
        policies = ?token.policies,
        ttl_s = token.ttl.as_secs(),
        "logged in to vault"
    );
    let fetch = VaultFetch::new(&client, deadline, engine.shown());
    let results = engine.render_all(&fetch).await;
    let mut rendered = Vec::with_capacity(results.len());
    let mut failures = Vec::new();
    for result in results {
        match result {
            Ok(r) => rendered.push(r),
            Err(e) => failures.push(e),
        }
    }
    if !failures.is_empty() {
        if failures.len() > 1 {
            for failure in &failures {
                warn!(error = %failure, "render failed");
            }
        }
        return Err(Error::Render(failures));
    }
    write(config, &rendered)?;
    if let Some(dir) = &config.state_dir {
        hand_over(dir, &token, fetch.take());
    }
    Ok(())
}

/// Leaves the token and what was fetched for the sidecar. A failure here costs the sidecar a
/// login and new dynamic credentials, not the app its files: it is logged, not fatal.
fn hand_over(dir: &Path, token: &vault::TokenInfo, fetched: Vec<Fetched>) {
    let now = std::time::SystemTime::now();
    let expires = (!token.ttl.is_zero()).then(|| state::unix(now + token.ttl));
    let entries = fetched
        .into_iter()
        .filter_map(|f| {
            let secret = f.result.ok()?;
            let (path, params) = (f.request.path.clone(), f.request.params());
            Some(state::Entry {
                path,
                params,
                data: secret.data,
                fetched_at: state::unix(f.at),
                lease: secret
                    .lease
                    .filter(|l| !l.id.is_empty())
                    .map(|l| state::LeaseRecord {
                        id: l.id,
                        seconds: l.duration.as_secs(),
                        renewable: l.renewable,
                    }),
            })
        })
        .collect();
    let handover = state::State::new(token.token.expose().to_owned(), expires, entries);
    match std::fs::create_dir_all(dir).and_then(|()| state::save(dir, &handover)) {
        Ok(()) => info!(dir = %dir.display(), "handed the token and leases over to the sidecar"),
        Err(error) => {
            warn!(%error, dir = %dir.display(), "cannot hand the token and leases over; the sidecar will log in again")
        }
    }
}

/// Writes every rendered file, all or nothing.
fn write(config: &AgentConfig, rendered: &[Rendered]) -> Result<(), Error> {
    let outputs: Vec<Output<'_>> = outputs(config).collect();
    let writes: Vec<files::FileWrite<'_>> = outputs
        .iter()
        .zip(rendered)
        .map(|(output, contents)| files::FileWrite {
            path: output.destination,
            contents: contents.as_bytes(),
            mode: output.mode,
        })
        .collect();
    let written = files::write_all(&writes).map_err(|(i, error)| Error::Write {
        name: outputs[i].name.to_owned(),
        path: outputs[i].destination.to_owned(),
        error,
    })?;
    for ((output, contents), written) in outputs.iter().zip(rendered).zip(written) {
        if contents.as_bytes().is_empty() {
            warn!(name = output.name, destination = %output.destination.display(), "rendered an empty file");
        }
        info!(
            name = output.name,
            destination = %output.destination.display(),
            written = ?written,
            "rendered"
        );
    }
    Ok(())
}

/// One file the agent writes.
type Output<'a> = injector::agent_config::OutputRef<'a>;

/// Templates, then secrets: the order the engine renders them in.
fn outputs(config: &AgentConfig) -> impl Iterator<Item = Output<'_>> {
    config.outputs()
}

/// A template read from a file: its output's index, the file and the text compiled.
pub(crate) type SourceFile = (usize, PathBuf, String);

/// Composes the config snapshot the agent config asks for and checks it against its schema.
/// The error lists every problem, one per line.
pub(crate) fn snapshot(
    settings: &injector::agent_config::SnapshotConfig,
) -> Result<Arc<crate::config::Snapshot>, String> {
    use crate::config::{self, Labels, Schema};
    let lines = |errors: Vec<config::Error>| {
        errors
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    };
    let mut labels = Labels::default();
    labels
        .add("config.labels", settings.labels.clone())
        .map_err(|e| e.to_string())?;
    if let Some(path) = &settings.labels_file {
        use injector::agent_config::LabelConflict;
        let on_conflict = match settings.label_conflict {
            LabelConflict::Error => config::OnConflict::Error,
            LabelConflict::HostWins => config::OnConflict::Keep,
            LabelConflict::AppWins => config::OnConflict::Replace,
        };
        labels
            .add_file_with(path, on_conflict)
            .map_err(|e| e.to_string())?;
    }
    let levels: Vec<String> = match &settings.levels {
        Some(levels) => levels.clone(),
        None => config::DEFAULT_LEVELS
            .iter()
            .map(|l| l.to_string())
            .collect(),
    };
    let snapshot = config::compose_from(&settings.containers, &labels, &levels).map_err(lines)?;
    if let Some(path) = &settings.schema {
        let schema = Schema::load(path).map_err(|e| e.to_string())?;
        schema.check(&snapshot).map_err(|e| e.to_string())?;
    }
    Ok(Arc::new(snapshot))
}

/// Makes a snapshot what templates see as `config`, `snapshot` and `config_as`.
pub(crate) fn use_snapshot(engine: &mut Engine, snapshot: &Arc<crate::config::Snapshot>) {
    for (name, value) in crate::config::template_globals(snapshot) {
        engine.set_global(name, value);
    }
}

/// Reads template sources and compiles everything.
fn compile(config: &AgentConfig, env: Arc<dyn Env>) -> Result<(Engine, Vec<SourceFile>), Error> {
    let mut sources = Vec::new();
    let mut files = Vec::new();
    use injector::agent_config::OutputKind;
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

/// Fetches from Vault, retrying transient failures until a deadline, and keeps every response
/// with its lease details (for the hand-over to the sidecar, and for the sidecar's schedule).
pub(crate) struct VaultFetch<'a> {
    client: &'a vault::Client,
    deadline: Instant,
    /// Which paths the retry warnings may name.
    shown: template::Shown,
    fetched: std::sync::Mutex<Vec<Fetched>>,
}

/// One response, as fetched.
pub(crate) struct Fetched {
    pub(crate) request: Request,
    /// The response, or the failure's fixed label ([`vault::Error::kind`]).
    pub(crate) result: Result<vault::Secret, &'static str>,
    pub(crate) at: std::time::SystemTime,
}

impl<'a> VaultFetch<'a> {
    pub(crate) fn new(
        client: &'a vault::Client,
        deadline: Instant,
        shown: template::Shown,
    ) -> VaultFetch<'a> {
        VaultFetch {
            client,
            deadline,
            shown,
            fetched: std::sync::Mutex::new(Vec::new()),
        }
    }

    /// Everything fetched since the last call.
    pub(crate) fn take(&self) -> Vec<Fetched> {
        std::mem::take(&mut *self.fetched.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

impl Fetch for VaultFetch<'_> {
    async fn fetch(&self, request: &Request) -> Result<vault::Secret, vault::Error> {
        let client = self.client;
        let shown = self.shown.path(&request.path);
        let what = if request.is_write() {
            format!("writing {shown}")
        } else {
            format!("reading {shown}")
        };
        let result = vault::retry::until(self.deadline, &what, async || {
            request.send(client, true).await
        })
        .await;
        let record = Fetched {
            request: request.clone(),
            result: result
                .as_ref()
                .map(Clone::clone)
                .map_err(vault::Error::kind),
            at: std::time::SystemTime::now(),
        };
        self.fetched
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(record);
        result
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use injector::agent_config::{LabelConflict, SnapshotConfig};

    /// The host says site a, the pod says site b: the policy decides which container applies.
    #[test]
    fn the_label_conflict_policy_decides_between_the_host_and_the_pod() {
        let dir = tempfile::tempdir().expect("tempdir");
        let containers = dir.path().join("containers");
        std::fs::create_dir(&containers).expect("dir");
        for site in ["a", "b"] {
            std::fs::write(
                containers.join(format!("{site}.yaml")),
                format!("kind: ConfigContainer\nmetadata: {{name: site-{site}}}\nspec:\n  selector: {{matchLabels: {{site: {site}}}}}\n  values: {{SITE: {site}}}\n"),
            )
            .expect("container");
        }
        let labels_file = dir.path().join("labels");
        std::fs::write(&labels_file, "site=\"b\"\n").expect("labels");
        let settings = |label_conflict| SnapshotConfig {
            containers: vec![containers.clone()],
            labels: BTreeMap::from([("site".to_owned(), "a".to_owned())]),
            labels_file: Some(labels_file.clone()),
            label_conflict,
            ..SnapshotConfig::default()
        };
        let error = super::snapshot(&settings(LabelConflict::Error)).expect_err("conflict");
        assert!(
            error.starts_with("label site is \"a\" in config.labels and \"b\" in "),
            "{error}"
        );
        let site = |policy| {
            super::snapshot(&settings(policy))
                .expect("composes")
                .config()["SITE"]
                .clone()
        };
        assert_eq!(site(LabelConflict::HostWins), "a");
        assert_eq!(site(LabelConflict::AppWins), "b");
    }
}
