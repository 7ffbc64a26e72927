//! The init container's path (`hydrant agent --once`): log in, render every output, write every
//! file only if all of them rendered, and hand the token and what was fetched over to the
//! sidecar.

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
    write(config, &first.rendered)?;
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

/// Writes every rendered file, all or nothing.
fn write(config: &AgentConfig, rendered: &[Rendered]) -> Result<(), Error> {
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
    for ((output, contents), written) in outputs.iter().zip(rendered).zip(written) {
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
    Ok(())
}
