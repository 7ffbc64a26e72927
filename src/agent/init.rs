//! The init container's path (`hydrant agent --once`): log in, render every output, write every
//! file only if all of them rendered, run the change commands of the files that changed, and hand
//! the token and what was fetched over to the sidecar.

use injector::AgentConfig;
use tokio::time::Instant;
use tracing::{info, warn};

use super::fetch::{Fetched, VaultFetch};
use super::{Error, state};
use crate::files;
use std::sync::Arc;

use crate::template::{self, Engine, Rendered};
use crate::vault;

/// Logs in, renders everything, and writes every file only if every output rendered: an app
/// never starts with some of its files. Each file is written beside its destination as soon as
/// its output is final, while the others still wait for Vault; all are renamed into place once
/// every output rendered.
pub(super) async fn run(config: &AgentConfig, engine: &Engine) -> Result<(), Error> {
    let mut staging = Staging::new(config);
    let first = first_render(config, engine, |i, rendered| staging.start(i, rendered)).await;
    let staged = staging.finish().await;
    let first = first?;
    let written = commit(config, staged)?;
    run_commands(config, &written).await;
    if let Some(dir) = &config.state_dir {
        hand_over(dir, &first.token, &first.fetched);
    }
    Ok(())
}

/// Files written beside their destinations while the render goes on, at most
/// [`STAGING_AT_ONCE`] at a time, each on the blocking pool (a write and an fsync).
struct Staging<'a> {
    outputs: Vec<injector::agent_config::OutputRef<'a>>,
    at_once: Arc<tokio::sync::Semaphore>,
    tasks: Vec<Option<tokio::task::JoinHandle<std::io::Result<files::Staged>>>>,
}

/// Files staged at once: on a disk the fsyncs dominate and overlap well.
const STAGING_AT_ONCE: usize = 8;

impl<'a> Staging<'a> {
    fn new(config: &'a AgentConfig) -> Staging<'a> {
        let outputs: Vec<_> = config.outputs().collect();
        let tasks = outputs.iter().map(|_| None).collect();
        Staging {
            outputs,
            at_once: Arc::new(tokio::sync::Semaphore::new(STAGING_AT_ONCE)),
            tasks,
        }
    }

    /// Starts writing output `i` beside its destination.
    fn start(&mut self, i: usize, rendered: &Rendered) {
        let Some(output) = self.outputs.get(i) else {
            return;
        };
        if rendered.as_bytes().is_empty() {
            warn!(name = output.name, destination = %output.destination.display(), "rendered an empty file");
        }
        let (path, mode) = (output.destination.to_owned(), output.mode);
        let contents = rendered.clone();
        let at_once = self.at_once.clone();
        let task = tokio::spawn(async move {
            let _permit = at_once.acquire_owned().await;
            tokio::task::spawn_blocking(move || {
                files::stage(&files::FileWrite {
                    path: &path,
                    contents: contents.as_bytes(),
                    mode,
                })
            })
            .await
            .unwrap_or_else(|_| Err(std::io::Error::other("staging stopped unexpectedly")))
        });
        self.tasks[i] = Some(task);
    }

    /// Waits for every write started: each output's staged file, or why it could not be
    /// written (`None`: never started, its output failed). Whatever is not renamed into place
    /// is removed when dropped, so a failed render leaves no temporary file with secrets.
    async fn finish(self) -> Vec<(usize, Option<std::io::Result<files::Staged>>)> {
        let mut staged = Vec::with_capacity(self.tasks.len());
        for (i, task) in self.tasks.into_iter().enumerate() {
            let result = match task {
                Some(task) => Some(task.await.unwrap_or_else(|_| {
                    Err(std::io::Error::other("staging stopped unexpectedly"))
                })),
                None => None,
            };
            staged.push((i, result));
        }
        staged
    }
}

/// What a first render gives: the client, logged in, its token, every output, and what was
/// fetched (for the hand-over).
pub(crate) struct FirstRender {
    /// The client, logged in.
    pub(crate) client: vault::Client,
    /// Its token.
    pub(crate) token: vault::TokenInfo,
    /// Every output, in order.
    pub(crate) rendered: Vec<Rendered>,
    /// Every response.
    pub(crate) fetched: Vec<Fetched>,
}

/// Logs in and renders every output, retrying a Vault that is away until `retry.deadline`;
/// hands each output to `each` as soon as it is final. Fails if any output fails (each
/// failure is logged when there are several). The templates are first run while the login is
/// under way: what they need from Vault is known, and asked for, the moment a token is.
pub(crate) async fn first_render(
    config: &AgentConfig,
    engine: &Engine,
    mut each: impl FnMut(usize, &Rendered),
) -> Result<FirstRender, Error> {
    let deadline = Instant::now() + config.retry.deadline();
    let mut client = vault::Client::connect(&config.vault).map_err(Error::Login)?;
    let auth = &config.auth;
    let what = format!("logging in at auth/{}", auth.mount());
    let mut results: Vec<Option<Result<Rendered, template::Error>>> =
        engine.names().map(|_| None).collect();
    let mut done = |i: usize, result: Result<Rendered, template::Error>| {
        if let Ok(rendered) = &result {
            each(i, rendered);
        }
        if let Some(slot) = results.get_mut(i) {
            *slot = Some(result);
        }
    };
    let mut render = engine.begin_all();
    let login = vault::retry::until(deadline, &what, async || {
        vault::login(&mut client, auth).await
    });
    let (token, ()) = tokio::join!(login, engine.discover(&mut render, &mut done));
    let token = token.map_err(Error::Login)?;
    info!(
        method = %auth.method,
        mount = auth.mount(),
        policies = %token.policies.join(","),
        ttl_s = token.ttl.as_secs(),
        "logged in to vault"
    );
    // The sinks are written while the secrets are read.
    let sinks = {
        let (sinks, token) = (config.token_sinks.clone(), token.token.clone());
        tokio::task::spawn_blocking(move || super::sink::write_to(&sinks, &token))
    };
    let fetch = VaultFetch::new(&client, deadline, engine.shown());
    engine.finish(render, &fetch, &mut done).await;
    engine.forget_all();
    sinks.await.map_err(|_| Error::Write {
        name: "token sink".to_owned(),
        path: std::path::PathBuf::new(),
        error: std::io::Error::other("the sink write stopped unexpectedly"),
    })??;
    let mut rendered = Vec::with_capacity(results.len());
    let mut failures = Vec::new();
    let names: Vec<&str> = engine.names().collect();
    for (i, result) in results.into_iter().enumerate() {
        let result = result.unwrap_or_else(|| Err(engine.too_many_rounds(i)));
        match result {
            Ok(r) => {
                super::compile::warn_missing_key(engine, i, names.get(i).copied().unwrap_or(""));
                rendered.push(r);
            }
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
    let fetched = fetch.take();
    Ok(FirstRender {
        client,
        token,
        rendered,
        fetched,
    })
}

/// Leaves the token and what was fetched for the sidecar. A failure here costs the sidecar a
/// login and new dynamic credentials, not the app its files: it is logged, not fatal.
fn hand_over(dir: &std::path::Path, token: &vault::TokenInfo, fetched: &[Fetched]) {
    let now = std::time::SystemTime::now();
    let expires = (!token.ttl.is_zero()).then(|| now + token.ttl);
    let held = fetched.iter().filter_map(|f| {
        let secret = f.result.as_ref().ok()?;
        Some(state::Held::of(&f.request, secret, f.at))
    });
    match state::hand_over(dir, token.token.expose(), expires, held) {
        Ok(()) => info!(dir = %dir.display(), "handed the token and leases over to the sidecar"),
        Err(error) => {
            warn!(%error, dir = %dir.display(), "cannot hand the token and leases over; the sidecar will log in again")
        }
    }
}

/// Puts every staged file in place if all of them were written, else none; says what each
/// write did, in output order.
fn commit(
    config: &AgentConfig,
    staged: Vec<(usize, Option<std::io::Result<files::Staged>>)>,
) -> Result<Vec<files::Written>, Error> {
    let outputs: Vec<_> = config.outputs().collect();
    let failed = |i: usize, error| Error::Write {
        name: outputs[i].name.to_owned(),
        path: outputs[i].destination.to_owned(),
        error,
    };
    let mut ready = Vec::with_capacity(staged.len());
    for (i, result) in staged {
        match result {
            Some(Ok(staged)) => ready.push(staged),
            Some(Err(error)) => return Err(failed(i, error)),
            None => {
                return Err(failed(
                    i,
                    std::io::Error::other("the output was never written"),
                ));
            }
        }
    }
    let written = files::commit(ready).map_err(|(i, error)| failed(i, error))?;
    for (output, written) in outputs.iter().zip(&written) {
        info!(
            name = output.name,
            destination = %output.destination.display(),
            written = written.label(),
            "rendered"
        );
    }
    Ok(written)
}

/// The commands of the files that changed, as consul-template runs them in once mode (Vault
/// Agent's `exit_after_auth`): after every file is written, one at a time in output order, each
/// command once however many files share it, each waited for up to its timeout and killed after.
/// A failing command is logged, not fatal: the files are written, and Vault Agent too ends with
/// success once its retry finds them unchanged.
async fn run_commands(config: &AgentConfig, written: &[files::Written]) {
    let mut ran: Vec<&[String]> = Vec::new();
    for (output, written) in config.outputs().zip(written) {
        let Some(argv) = output.command else {
            continue;
        };
        if *written == files::Written::Unchanged || ran.contains(&argv) || argv.is_empty() {
            continue;
        }
        ran.push(argv);
        let name = output.name;
        let mut child = match tokio::process::Command::new(&argv[0])
            .args(&argv[1..])
            .kill_on_drop(true)
            .spawn()
        {
            Ok(child) => child,
            Err(error) => {
                warn!(name, %error, program = argv[0], "cannot start the change command");
                continue;
            }
        };
        match tokio::time::timeout(output.command_timeout, child.wait()).await {
            Ok(Ok(exit)) if exit.success() => info!(name, "change command ran"),
            Ok(Ok(exit)) => warn!(name, status = %exit, "change command failed"),
            Ok(Err(error)) => warn!(name, %error, "change command failed"),
            Err(_) => {
                let _ = child.kill().await;
                warn!(
                    name,
                    timeout_s = output.command_timeout.as_secs(),
                    "change command timed out and was killed"
                );
            }
        }
    }
}
