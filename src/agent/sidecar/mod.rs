//! The sidecar: keeps every file correct for the life of the pod. The [`Schedule`] says what is
//! due (a login, a renewal, a fetch, a render to retry); this loop does it against Vault and
//! the files and reports back. A changed response re-renders only the files that read it; a
//! file is written only when its content changed, and its change command runs then. Every
//! failure backs off; nothing retries in a tight loop; a stop cancels work in flight.
//!
//! What a render gives goes to [`Outputs`]: files with their change commands for `hydrant
//! agent` ([`Files`]), a command's environment for `hydrant exec`. Either way the loop, its
//! schedule and its renewals are this one.
//!
//! This file holds the loop; each of its jobs has a file: taking over and saving the hand-over
//! (`handover`), the token (`tokens`), leases and fetches (`responses`), renders (`render`),
//! files and their change commands (`files`) and watched files (`watch`).

mod files;
mod handover;
mod render;
mod responses;
mod tokens;
mod watch;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use injector::AgentConfig;
use serde_json::Value as Json;
use tokio::time::Instant;
use tracing::{info, warn};

use super::compile::SourceFile;
use super::fetch::Fetched;
use super::schedule::{Rules, Schedule, Work};
use super::server::SidecarStatus;
use super::{Error, snapshot, state};
use crate::template::{Engine, Rendered, Request};
use crate::vault::{self, Token};

pub(crate) use self::files::Files;

/// How long one fetch made while rendering may retry a Vault that is briefly away; after that
/// the schedule's own backoff takes over.
const FETCH_BUDGET: Duration = Duration::from_secs(10);

/// The pause after which a burst of file events is handled.
const WATCH_SETTLE: Duration = Duration::from_millis(100);

/// Where renders go. Each output is put in place when it renders; the loop announces a change
/// once every output has rendered, and says when a render is over.
pub(crate) trait Outputs {
    /// Output `i`'s name, for logs and metrics.
    fn name(&self, i: usize) -> &str;
    /// Puts output `i`'s content in place; whether it changed. The error is one line that
    /// holds no secret.
    fn put(&mut self, i: usize, rendered: Rendered) -> Result<bool, String>;
    /// Output `i` changed after every output had rendered once.
    fn changed(&mut self, i: usize);
    /// A render is over: what changed in it is complete.
    fn settled(&mut self) {}
}

/// What the sidecar starts from when it does not start afresh or from an init container's
/// hand-over: `hydrant exec`'s first render, whose token and responses it takes over.
pub(crate) struct Start {
    /// The client, logged in.
    pub(crate) client: vault::Client,
    /// Its token.
    pub(crate) token: vault::TokenInfo,
    /// What the first render fetched.
    pub(crate) fetched: Vec<Fetched>,
}

/// What the sidecar needs besides its configuration.
pub(crate) struct Parts<'a> {
    /// The compiled templates.
    pub(crate) engine: Engine,
    /// Templates read from files, watched.
    pub(crate) sources: Vec<SourceFile>,
    /// The config snapshot, if valid.
    pub(crate) snapshot: Option<Arc<crate::snapshot::Snapshot>>,
    /// Where renders go.
    pub(crate) outputs: Box<dyn Outputs + 'a>,
    /// Shared with the endpoints and whoever else reports.
    pub(crate) status: Arc<SidecarStatus>,
    /// A first render to take over, if any.
    pub(crate) start: Option<Start>,
}

/// A response kept for change detection and the hand-over.
struct Stored {
    data: Json,
    fetched_at: SystemTime,
}

/// Why the loop stopped.
#[derive(Debug, PartialEq, Eq)]
enum Stop {
    Signal,
    Quit,
    GaveUp,
}

impl Stop {
    fn label(&self) -> &'static str {
        match self {
            Stop::Signal => "signal",
            Stop::Quit => "quit",
            Stop::GaveUp => "gave_up",
        }
    }
}

struct Sidecar<'a> {
    config: &'a AgentConfig,
    engine: Engine,
    client: vault::Client,
    schedule: Schedule,
    /// The token in use, for the hand-over.
    token: Option<Token>,
    stored: BTreeMap<Request, Stored>,
    /// Outputs rendered at least once.
    rendered: Vec<bool>,
    /// Outputs whose last render failed.
    failing: BTreeSet<usize>,
    ready: bool,
    status: Arc<SidecarStatus>,
    sources: Vec<SourceFile>,
    /// What templates see of the config snapshot, if any: see [`snapshot::fingerprint`].
    snapshot: Option<String>,
    /// Set when `exit_on_retry_failure` gives up: the loop ends with this error.
    gave_up: Option<Error>,
    gave_up_notify: Arc<tokio::sync::Notify>,
    outputs: Box<dyn Outputs + 'a>,
}

/// Runs the sidecar until `shutdown` resolves (SIGTERM or SIGINT for `hydrant agent`) or
/// `POST /quit`.
pub(crate) async fn run<'a>(
    config: &'a AgentConfig,
    parts: Parts<'a>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), Error> {
    let Parts {
        engine,
        sources,
        snapshot,
        outputs,
        status,
        start,
    } = parts;
    let (client, start) = match start {
        Some(Start {
            client,
            token,
            fetched,
        }) => (client, Some((token, fetched))),
        None => (
            vault::Client::connect(&config.vault).map_err(Error::Login)?,
            None,
        ),
    };
    status.expect_templates(engine.names());
    if let Some(port) = config.listen {
        let local = super::server::serve(port, status.clone())
            .await
            .map_err(|e| {
                Error::Runtime(format!(
                    "cannot listen on 127.0.0.1:{port} (the config's listen): {e}"
                ))
            })?;
        info!(listen = %local, "local endpoints serving");
    }
    if let Some(port) = config.metrics_port {
        let local = super::server::serve_metrics(port, status.clone())
            .await
            .map_err(|e| {
                Error::Runtime(format!(
                    "cannot listen on port {port} of the pod's addresses (the config's metrics_port): {e}"
                ))
            })?;
        info!(listen = %local, "metrics port serving");
    }
    let count = engine.len();
    let mut sidecar = Sidecar {
        config,
        schedule: Schedule::new(
            Rules::of(config),
            count,
            fastrand::Rng::new(),
            Instant::now(),
        ),
        engine,
        client,
        token: None,
        stored: BTreeMap::new(),
        rendered: vec![false; count],
        failing: BTreeSet::new(),
        ready: false,
        status,
        sources,
        snapshot: snapshot.as_deref().map(snapshot::fingerprint),
        gave_up: None,
        gave_up_notify: Arc::new(tokio::sync::Notify::new()),
        outputs,
    };
    let (events, mut changes) = tokio::sync::mpsc::unbounded_channel::<PathBuf>();
    let _watcher = watch::watch(config, &sidecar.sources, events);
    let quit = sidecar.status.clone();
    let gave_up = sidecar.gave_up_notify.clone();
    tokio::pin!(shutdown);
    // A stop cancels work in flight, in the middle of a request if need be: it never waits for
    // a Vault that does not answer. The schedule changes only after an answer, so a cancelled
    // step leaves nothing half done.
    let stop = tokio::select! {
        biased;
        () = &mut shutdown => Stop::Signal,
        () = quit.quit_requested() => Stop::Quit,
        () = gave_up.notified() => Stop::GaveUp,
        never = sidecar.work(start, &mut changes) => match never {},
    };
    info!(reason = stop.label(), "stopping");
    if let Some(error) = sidecar.gave_up.take() {
        // The token is kept: the restarted agent takes it over from the hand-over.
        return Err(error);
    }
    if config.revoke_on_shutdown && sidecar.schedule.has_token() {
        if let Some(delay) = config.revoke_delay {
            tokio::time::sleep(delay.0).await;
        }
        match sidecar.client.revoke_self().await {
            Ok(()) => info!("token revoked; Vault revokes its leases in the background"),
            Err(error) => warn!(%error, "cannot revoke the token"),
        }
        if let Some(dir) = &config.state_dir {
            let _ = std::fs::remove_file(dir.join(state::STATE_FILE));
        }
    }
    Ok(())
}

impl Sidecar<'_> {
    /// Takes over the hand-over, then does what is due, and what file changes call for, forever.
    async fn work(
        &mut self,
        start: Option<(vault::TokenInfo, Vec<Fetched>)>,
        changes: &mut tokio::sync::mpsc::UnboundedReceiver<PathBuf>,
    ) -> std::convert::Infallible {
        match start {
            Some((token, fetched)) => self.start_from(token, fetched).await,
            None => self.adopt().await,
        }
        loop {
            let next = self.schedule.next();
            tokio::select! {
                Some(path) = changes.recv() => {
                    tokio::time::sleep(WATCH_SETTLE).await;
                    let mut paths = vec![path];
                    while let Ok(more) = changes.try_recv() {
                        paths.push(more);
                    }
                    self.files_changed(&paths).await;
                }
                () = tokio::time::sleep_until(next) => {
                    for work in self.schedule.due(Instant::now()) {
                        self.perform(work).await;
                    }
                    self.publish();
                }
            }
        }
    }

    async fn perform(&mut self, work: Work) {
        match work {
            Work::Login => self.login().await,
            Work::RenewToken { increment } => self.renew_token(increment).await,
            Work::RenewLease {
                request,
                id,
                increment,
            } => self.renew_lease(&request, &id, increment).await,
            Work::Fetch(request) => self.refetch(request).await,
            Work::Render(which) => self.render(which).await,
        }
    }
}
