//! The init container's path (`hydrant agent --once`): log in, render every output, write every
//! file only if all of them rendered, run the change commands of the files that changed, and hand
//! the token and what was fetched over to the sidecar.

use injector::AgentConfig;
use tokio::time::Instant;
use tracing::{info, warn};

use super::fetch::{Fetched, VaultFetch};
use super::{Error, state};
use crate::files;
use crate::template::{Engine, Rendered};
use crate::vault;

/// Logs in, renders everything, and writes every file only if every output rendered: an app
/// never starts with some of its files.
pub(super) async fn run(config: &AgentConfig, engine: &Engine) -> Result<(), Error> {
    let first = first_render(config, engine).await?;
    let written = write(config, &first.rendered)?;
    run_commands(config, &written).await;
    if let Some(dir) = &config.state_dir {
        hand_over(dir, &first.token, &first.fetched);
    }
    Ok(())
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

/// Logs in and renders every output, retrying a Vault that is away until `retry.deadline`.
/// Fails if any output fails (each failure is logged when there are several).
pub(crate) async fn first_render(
    config: &AgentConfig,
    engine: &Engine,
) -> Result<FirstRender, Error> {
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
        policies = %token.policies.join(","),
        ttl_s = token.ttl.as_secs(),
        "logged in to vault"
    );
    super::sink::write(config, &token.token)?;
    let fetch = VaultFetch::new(&client, deadline, engine.shown());
    let results = engine.render_all(&fetch).await;
    let mut rendered = Vec::with_capacity(results.len());
    let mut failures = Vec::new();
    let names: Vec<&str> = engine.names().collect();
    for (i, result) in results.into_iter().enumerate() {
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

/// Writes every rendered file, all or nothing; says what each write did, in output order.
fn write(config: &AgentConfig, rendered: &[Rendered]) -> Result<Vec<files::Written>, Error> {
    let outputs: Vec<_> = config.outputs().collect();
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
    for ((output, contents), written) in outputs.iter().zip(rendered).zip(&written) {
        if contents.as_bytes().is_empty() {
            warn!(name = output.name, destination = %output.destination.display(), "rendered an empty file");
        }
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
