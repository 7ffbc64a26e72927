//! The sidecar: keeps every file correct for the life of the pod. The [`Schedule`] says what is
//! due (a login, a renewal, a fetch, a render to retry); this loop does it against Vault and
//! the files and reports back. A changed response re-renders only the files that read it; a
//! file is written only when its content changed, and its change command runs then. Every
//! failure backs off; nothing retries in a tight loop; a stop cancels work in flight.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use injector::AgentConfig;
use serde_json::Value as Json;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::schedule::{Response, Rules, Schedule, Work};
use super::server::{Expiries, Shared};
use super::{Error, Fetched, Output, SourceFile, VaultFetch, files, outputs, state};
use crate::template::{self, Engine, Rendered, Request};
use crate::vault::{self, Token};

/// How long one fetch made while rendering may retry a Vault that is briefly away; after that
/// the schedule's own backoff takes over.
const FETCH_BUDGET: Duration = Duration::from_secs(10);

/// The pause after which a burst of file events is handled.
const WATCH_SETTLE: Duration = Duration::from_millis(100);

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
    shared: Arc<Shared>,
    sources: Vec<SourceFile>,
    /// What templates see of the config snapshot, if any: see [`fingerprint`].
    snapshot: Option<String>,
    /// Set when `exit_on_retry_failure` gives up: the loop ends with this error.
    gave_up: Option<Error>,
    gave_up_notify: Arc<tokio::sync::Notify>,
}

/// Runs the sidecar until SIGTERM, SIGINT or `POST /quit`.
pub(super) async fn run(
    config: &AgentConfig,
    engine: Engine,
    sources: Vec<SourceFile>,
    snapshot: Option<Arc<crate::config::Snapshot>>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), Error> {
    let client = vault::Client::connect(&config.vault).map_err(Error::Login)?;
    let shared = Arc::new(Shared::new());
    if let Some(port) = config.listen {
        let local = super::server::serve(port, shared.clone())
            .await
            .map_err(|e| {
                Error::Runtime(format!(
                    "cannot listen on 127.0.0.1:{port} (the config's listen): {e}"
                ))
            })?;
        info!(listen = %local, "local endpoints serving");
    }
    let outputs = engine.len();
    let mut sidecar = Sidecar {
        config,
        schedule: Schedule::new(
            Rules::of(config),
            outputs,
            fastrand::Rng::new(),
            Instant::now(),
        ),
        engine,
        client,
        token: None,
        stored: BTreeMap::new(),
        rendered: vec![false; outputs],
        failing: BTreeSet::new(),
        ready: false,
        shared,
        sources,
        snapshot: snapshot.as_deref().map(fingerprint),
        gave_up: None,
        gave_up_notify: Arc::new(tokio::sync::Notify::new()),
    };
    let (events, mut changes) = tokio::sync::mpsc::unbounded_channel::<PathBuf>();
    let _watcher = watch(config, &sidecar.sources, events);
    let quit = sidecar.shared.clone();
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
        never = sidecar.work(&mut changes) => match never {},
    };
    info!(reason = ?stop, "stopping");
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
        changes: &mut tokio::sync::mpsc::UnboundedReceiver<PathBuf>,
    ) -> std::convert::Infallible {
        self.adopt().await;
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

    /// Takes over what an init container left, if anything: its token (checked with
    /// lookup-self) and what it fetched. Without a usable hand-over, the first login comes next.
    async fn adopt(&mut self) {
        let Some(dir) = &self.config.state_dir else {
            return;
        };
        let handover = match state::load(dir) {
            Ok(Some(handover)) => handover,
            Ok(None) => return,
            Err(error) => {
                warn!(%error, "ignoring the init container's hand-over");
                return;
            }
        };
        let token = Token::new(handover.token.clone());
        let info = match vault::adopt(&mut self.client, token.clone()).await {
            Ok(info) => info,
            Err(error) => {
                // Its leases died with it, and what else it fetched is fetched again with the
                // first render.
                warn!(%error, "the init container's token cannot be used; logging in");
                return;
            }
        };
        info!(
            ttl_s = info.ttl.as_secs(),
            "took over the init container's token"
        );
        let now = Instant::now();
        self.schedule.adopted(now, info.ttl, info.renewable);
        self.token = Some(token);
        let wall = SystemTime::now();
        for entry in handover.entries {
            let request = Request::from_parts(&entry.path, entry.params.as_ref());
            let fetched_at = state::system_time(entry.fetched_at);
            let age = wall.duration_since(fetched_at).unwrap_or_default();
            let response = match entry.lease {
                Some(lease) => Response::Lease {
                    ttl: Duration::from_secs(lease.seconds).saturating_sub(age),
                    id: lease.id,
                    renewable: lease.renewable,
                },
                None => response_of(&request, &entry.data, None),
            };
            self.engine.store(request.clone(), &entry.data);
            self.schedule.fetched(now, wall, age, &request, response);
            self.stored.insert(
                request,
                Stored {
                    data: entry.data,
                    fetched_at,
                },
            );
        }
        debug!(
            entries = self.stored.len(),
            "took over the init container's records"
        );
        self.render((0..self.rendered.len()).collect()).await;
    }

    async fn login(&mut self) {
        match vault::login(&mut self.client, &self.config.auth).await {
            Ok(info) => {
                self.shared.login(true);
                info!(
                    method = %self.config.auth.method,
                    mount = self.config.auth.mount(),
                    ttl_s = info.ttl.as_secs(),
                    "logged in to vault"
                );
                self.schedule
                    .logged_in(Instant::now(), info.ttl, info.renewable);
                self.token = Some(info.token);
                if !self.ready {
                    let pending = (0..self.rendered.len())
                        .filter(|i| !self.rendered[*i])
                        .collect();
                    self.render(pending).await;
                }
                self.save();
            }
            Err(error) => {
                self.shared.login(false);
                let pause = self.schedule.login_failed(Instant::now());
                warn!(%error, retry_in_s = pause.as_secs_f64(), "login failed");
            }
        }
    }

    async fn renew_token(&mut self, increment: Duration) {
        let result = self.client.renew_self(increment).await;
        let now = Instant::now();
        match result {
            Ok(granted) => {
                self.shared.renewal("token", true);
                self.schedule
                    .token_renewed(now, granted.ttl, granted.renewable);
                debug!(ttl_s = granted.ttl.as_secs(), "token renewed");
                self.save();
            }
            Err(error) => {
                self.shared.renewal("token", false);
                let transient = error.is_transient();
                let pause = self.schedule.token_renewal_failed(now, transient);
                if transient {
                    warn!(%error, retry_in_s = pause.as_secs_f64(), "token renewal failed");
                } else {
                    info!(%error, "token renewal refused; logging in again");
                }
            }
        }
    }

    async fn renew_lease(&mut self, request: &Request, id: &str, increment: Duration) {
        let result = self.client.renew_lease(id, increment).await;
        let now = Instant::now();
        match result {
            Ok(granted) => {
                self.shared.renewal("lease", true);
                self.schedule
                    .lease_renewed(now, request, granted.duration, granted.renewable);
                let path = self.engine.shown().path(&request.path).to_owned();
                debug!(path, ttl_s = granted.duration.as_secs(), "lease renewed");
                self.save();
            }
            Err(error) => {
                self.shared.renewal("lease", false);
                let transient = error.is_transient();
                let pause = self.schedule.lease_renewal_failed(now, request, transient);
                let (path, error) = self.shown(&request.path, &error);
                if transient {
                    warn!(
                        error,
                        path,
                        retry_in_s = pause.as_secs_f64(),
                        "lease renewal failed"
                    );
                } else {
                    info!(
                        error,
                        path, "lease renewal refused; fetching new credentials"
                    );
                }
            }
        }
    }

    /// Fetches a request again; a different response re-renders what read it, and what failed.
    async fn refetch(&mut self, request: Request) {
        // A certificate is issued anew: the one in the file is what is being replaced.
        let result = request.send(&self.client, false).await;
        let now = Instant::now();
        match result {
            Ok(secret) => {
                let changed = self
                    .stored
                    .get(&request)
                    .is_none_or(|s| s.data != secret.data);
                self.remember(now, &request, secret);
                if changed {
                    let path = self.engine.shown().path(&request.path).to_owned();
                    debug!(path, "changed; rendering what reads it");
                    let mut which = self.engine.using(&request);
                    which.extend(self.failing.iter().copied());
                    which.sort_unstable();
                    which.dedup();
                    self.render(which).await;
                }
                self.save();
            }
            Err(error) => {
                let pause = self.schedule.fetch_failed(now, &request);
                let (path, shown_error) = self.shown(&request.path, &error);
                warn!(
                    error = shown_error,
                    path,
                    retry_in_s = pause.as_secs_f64(),
                    "fetch failed; the files keep what they have"
                );
                self.fetch_failed(&request, error.kind()).await;
            }
        }
    }

    /// After a failed fetch: counts it, checks the token when Vault said 403, and gives up when
    /// `exit_on_retry_failure` says so.
    async fn fetch_failed(&mut self, request: &Request, reason: &'static str) {
        self.shared.fetch_failed(reason);
        if reason == "permission_denied" {
            self.check_token().await;
        }
        let attempts = self.schedule.fetch_failures(request);
        if self.config.exit_on_retry_failure() && attempts >= self.config.retry.attempts() {
            let path = self.engine.shown().path(&request.path).to_owned();
            warn!(
                path,
                attempts, "fetches keep failing; exiting (exit_on_retry_failure)"
            );
            self.gave_up = Some(Error::RetriesExhausted {
                path,
                attempts,
                reason,
            });
            self.gave_up_notify.notify_one();
        }
    }

    /// A request was denied: either the policies do not allow it, or the token is gone (revoked,
    /// or Vault came back without its data). lookup-self tells them apart; a token that is gone
    /// is replaced by a login at once (backed off if that keeps happening), and what failed is
    /// fetched again with the new token.
    async fn check_token(&mut self) {
        if !self.schedule.has_token() {
            return;
        }
        match self.client.token_alive().await {
            Ok(true) => self.schedule.token_confirmed(),
            Ok(false) => {
                self.shared.token_lost();
                let pause = self.schedule.token_lost(Instant::now());
                warn!(
                    retry_in_s = pause.as_secs_f64(),
                    "vault no longer knows the token (revoked, or Vault lost its data); logging in again"
                );
            }
            Err(error) => debug!(%error, "cannot check the token; the fetch is retried"),
        }
    }

    /// Keeps a response: in the engine's cache, for change detection, and on the schedule.
    fn remember(&mut self, now: Instant, request: &Request, secret: vault::Secret) {
        let wall = SystemTime::now();
        let response = response_of(request, &secret.data, secret.lease.clone());
        self.schedule
            .fetched(now, wall, Duration::ZERO, request, response);
        self.engine.store_secret(request.clone(), secret.clone());
        self.stored.insert(
            request.clone(),
            Stored {
                data: secret.data,
                fetched_at: wall,
            },
        );
    }

    /// Renders `which` against the cache, fetching what is missing, and writes what changed.
    async fn render(&mut self, which: Vec<usize>) {
        if which.is_empty() {
            return;
        }
        let mut results: Vec<(usize, Result<Rendered, template::Error>)> = Vec::new();
        let fetch = VaultFetch::new(
            &self.client,
            Instant::now() + FETCH_BUDGET,
            self.engine.shown(),
        );
        self.engine
            .render_some(&which, &fetch, |i, result| results.push((i, result)))
            .await;
        let fetched = fetch.take();
        let now = Instant::now();
        let mut failed = Vec::new();
        for Fetched {
            request, result, ..
        } in fetched
        {
            match result {
                Ok(secret) => self.remember(now, &request, secret),
                Err(reason) => {
                    // Retried on the schedule, with backoff; the engine must ask again.
                    self.engine.forget(&request);
                    self.schedule.fetch_failed(now, &request);
                    failed.push((request, reason));
                }
            }
        }
        let config_outputs: Vec<Output<'_>> = outputs(self.config).collect();
        let was_ready = self.ready;
        for (i, result) in results {
            self.write(now, i, &config_outputs[i], result, was_ready);
        }
        // The hand-over is saved before readiness is announced: whoever sees the ready file (a
        // restarted sidecar, a probe, a test) finds the state that goes with it.
        self.save();
        if !self.ready && self.rendered.iter().all(|r| *r) {
            self.ready = true;
            self.mark_ready();
        }
        self.publish();
        // One token check for the whole render, however many of its fetches were denied.
        let mut checked = false;
        for (request, reason) in failed {
            if reason == "permission_denied" && std::mem::replace(&mut checked, true) {
                self.shared.fetch_failed(reason);
                continue;
            }
            self.fetch_failed(&request, reason).await;
        }
    }

    fn write(
        &mut self,
        now: Instant,
        i: usize,
        output: &Output<'_>,
        result: Result<Rendered, template::Error>,
        run_command: bool,
    ) {
        let from_vault = matches!(&result, Err(e) if e.vault_error().is_some());
        let written = result.map_err(|e| e.to_string()).and_then(|rendered| {
            files::write_atomic(output.destination, rendered.as_bytes(), output.mode)
                .map_err(|e| format!("cannot write {}: {e}", output.destination.display()))
        });
        match written {
            Ok(written) => {
                self.shared.render(output.name, true);
                self.shared.rendered_at(output.name, SystemTime::now());
                self.schedule.rendered(i);
                self.rendered[i] = true;
                self.failing.remove(&i);
                if written != files::Written::Unchanged {
                    info!(name = output.name, destination = %output.destination.display(), written = ?written, "rendered");
                    if run_command {
                        self.run_command(i);
                    }
                }
            }
            Err(error) => {
                self.shared.render(output.name, false);
                self.failing.insert(i);
                if from_vault {
                    // The failed fetch is retried on its own schedule and renders this again.
                    self.schedule.render_waits_for_vault(i);
                    warn!(name = output.name, %error, "render failed; the file keeps its last good content until Vault answers");
                } else {
                    let pause = self.schedule.render_failed(now, i);
                    warn!(name = output.name, %error, retry_in_s = pause.as_secs_f64(), "render failed; the file keeps its last good content");
                }
            }
        }
    }

    /// Runs an output's change command in the background, with its timeout.
    fn run_command(&self, i: usize) {
        let (name, command, timeout) = command_of(self.config, i);
        let Some(argv) = command else {
            return;
        };
        let shared = self.shared.clone();
        let name = name.to_owned();
        tokio::spawn(async move {
            let mut child = match tokio::process::Command::new(&argv[0])
                .args(&argv[1..])
                .kill_on_drop(true)
                .spawn()
            {
                Ok(child) => child,
                Err(error) => {
                    shared.command(&name, false);
                    warn!(name, %error, program = argv[0], "cannot start the change command");
                    return;
                }
            };
            match tokio::time::timeout(timeout, child.wait()).await {
                Ok(Ok(status)) if status.success() => {
                    shared.command(&name, true);
                    info!(name, "change command ran");
                }
                Ok(Ok(status)) => {
                    shared.command(&name, false);
                    warn!(name, %status, "change command failed");
                }
                Ok(Err(error)) => {
                    shared.command(&name, false);
                    warn!(name, %error, "change command failed");
                }
                Err(_) => {
                    shared.command(&name, false);
                    let _ = child.kill().await;
                    warn!(
                        name,
                        timeout_s = timeout.as_secs(),
                        "change command timed out and was killed"
                    );
                }
            }
        });
    }

    fn mark_ready(&self) {
        self.shared.set_ready();
        info!("every file is rendered; ready");
        if let Some(dir) = &self.config.state_dir
            && let Err(error) = std::fs::create_dir_all(dir).and_then(|()| state::mark_ready(dir))
        {
            warn!(%error, "cannot create the ready file");
        }
    }

    /// Template sources and watched files changed: reload and re-render what read them.
    async fn files_changed(&mut self, paths: &[PathBuf]) {
        let mut which = Vec::new();
        for (i, source, text) in &mut self.sources {
            if !paths.iter().any(|p| {
                source.starts_with(p) || p.starts_with(source.parent().unwrap_or(Path::new("/")))
            }) {
                continue;
            }
            match std::fs::read_to_string(&*source) {
                Ok(fresh) if fresh != *text => match self.engine.set_template(*i, &fresh) {
                    Ok(()) => {
                        *text = fresh;
                        which.push(*i);
                    }
                    Err(error) => {
                        warn!(%error, "the changed template does not compile; the file keeps its last good content")
                    }
                },
                Ok(_) => {}
                Err(error) => {
                    warn!(%error, source = %source.display(), "cannot read the changed template")
                }
            }
        }
        if let Some(settings) = &self.config.snapshot
            && paths.iter().any(|p| snapshot_input(settings, p))
        {
            self.recompose(&mut which);
        }
        for path in paths {
            for watched in &self.config.watch {
                if path.starts_with(watched) || watched.starts_with(path) {
                    which.extend(self.engine.using_file(watched));
                }
            }
        }
        which.sort_unstable();
        which.dedup();
        if !which.is_empty() {
            self.render(which).await;
        }
    }

    /// The config snapshot's inputs changed: compose it again. A valid new snapshot re-renders
    /// every output (the unchanged ones are not written); an invalid one is reported and the
    /// files keep what the last good one gave them.
    fn recompose(&mut self, which: &mut Vec<usize>) {
        let Some(settings) = &self.config.snapshot else {
            return;
        };
        match super::snapshot(settings) {
            Ok(snapshot) => {
                self.shared.snapshot(true);
                // Templates see the labels and containers too, not only the values.
                let seen = fingerprint(&snapshot);
                if self.snapshot.as_ref() == Some(&seen) {
                    return;
                }
                info!(version = snapshot.version(), "config snapshot changed");
                super::use_snapshot(&mut self.engine, &snapshot);
                self.snapshot = Some(seen);
                which.extend(0..self.rendered.len());
            }
            Err(error) => {
                self.shared.snapshot(false);
                warn!(%error, "the changed config snapshot is invalid; the files keep the last good one");
            }
        }
    }

    /// Writes the hand-over so that a restarted sidecar takes over instead of starting again.
    fn save(&self) {
        let (Some(dir), Some(token)) = (&self.config.state_dir, &self.token) else {
            return;
        };
        let now = Instant::now();
        let wall = SystemTime::now();
        let at_wall = |at: Instant| state::unix(wall + at.saturating_duration_since(now));
        let entries = self
            .stored
            .iter()
            .map(|(request, stored)| state::Entry {
                path: request.path.clone(),
                params: request.params(),
                data: stored.data.clone(),
                fetched_at: state::unix(stored.fetched_at),
                lease: self.schedule.lease(request).map(|lease| {
                    let age = wall.duration_since(stored.fetched_at).unwrap_or_default();
                    let left = lease
                        .expires
                        .map_or(Duration::ZERO, |end| end.saturating_duration_since(now));
                    state::LeaseRecord {
                        id: lease.id.to_owned(),
                        seconds: (age + left).as_secs(),
                        renewable: lease.renewable,
                    }
                }),
            })
            .collect();
        let expires = self.schedule.token_expires().map(at_wall);
        let handover = state::State::new(token.expose().to_owned(), expires, entries);
        if let Err(error) = std::fs::create_dir_all(dir).and_then(|()| state::save(dir, &handover))
        {
            warn!(%error, "cannot save the agent's state");
        }
    }

    /// A path and an error as logs may show them: a path no template spells may hold a secret,
    /// and so may the error that names it; then only the error's kind is shown.
    fn shown(&self, path: &str, error: &vault::Error) -> (String, String) {
        let shown = self.engine.shown();
        if shown.is_literal(path) {
            (path.to_owned(), error.to_string())
        } else {
            (shown.path(path).to_owned(), error.kind().to_owned())
        }
    }

    /// Tells the metrics endpoint when things expire.
    fn publish(&self) {
        let shown = self.engine.shown();
        let mut leases: BTreeMap<String, Instant> = BTreeMap::new();
        for (request, end) in self.schedule.lease_ends() {
            // Computed paths share one label: it reports the one that ends first.
            leases
                .entry(shown.path(&request.path).to_owned())
                .and_modify(|at| *at = (*at).min(end))
                .or_insert(end);
        }
        self.shared.set_expiries(Expiries {
            token: self.schedule.token_expires(),
            leases,
        });
    }
}

/// What a response is, for the schedule: a lease, a certificate, a one-off write, or a value.
fn response_of(request: &Request, data: &Json, lease: Option<vault::Lease>) -> Response {
    match lease {
        Some(lease) if !lease.id.is_empty() => Response::Lease {
            id: lease.id,
            ttl: lease.duration,
            renewable: lease.renewable,
        },
        _ => match certificate_validity(data) {
            Some((not_before, not_after)) => Response::Certificate {
                not_before,
                not_after,
            },
            None if request.is_write() => Response::Once,
            None => Response::Static,
        },
    }
}

fn command_of(config: &AgentConfig, i: usize) -> (&str, Option<Vec<String>>, Duration) {
    match config.outputs().nth(i) {
        Some(output) => (
            output.name,
            output.command.map(<[String]>::to_vec),
            output.command_timeout,
        ),
        None => ("", None, injector::agent_config::DEFAULT_COMMAND_TIMEOUT),
    }
}

/// The validity of the certificate in a response's `certificate` field, if it has one.
pub fn certificate_validity(data: &Json) -> Option<(SystemTime, SystemTime)> {
    let pem = data.get("certificate")?.as_str()?;
    let (_, pem) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).ok()?;
    let cert = pem.parse_x509().ok()?;
    let validity = cert.validity();
    let at =
        |t: &x509_parser::time::ASN1Time| u64::try_from(t.timestamp()).ok().map(state::system_time);
    Some((at(&validity.not_before)?, at(&validity.not_after)?))
}

/// What templates see of a snapshot, in one string: a change to it re-renders them.
fn fingerprint(snapshot: &crate::config::Snapshot) -> String {
    serde_json::to_string(&snapshot.info()).unwrap_or_default()
}

/// Whether a changed path is one the config snapshot is composed from.
fn snapshot_input(settings: &injector::agent_config::SnapshotConfig, path: &Path) -> bool {
    let related = |input: &PathBuf| {
        path.starts_with(input)
            || input.starts_with(path)
            || input.parent().is_some_and(|parent| parent == path)
    };
    settings.containers.iter().any(related)
        || settings
            .labels_file
            .iter()
            .chain(&settings.schema)
            .any(related)
}

/// Watches template sources and the config's watch list (their directories: a ConfigMap volume
/// changes by swapping a symlink beside the files). Access events are ignored: reading the files
/// raises them.
fn watch(
    config: &AgentConfig,
    sources: &[SourceFile],
    events: tokio::sync::mpsc::UnboundedSender<PathBuf>,
) -> Option<notify::RecommendedWatcher> {
    use notify::Watcher as _;
    let mut dirs: Vec<PathBuf> = sources
        .iter()
        .filter_map(|(_, p, _)| p.parent().map(Path::to_owned))
        .collect();
    let mut recursive: Vec<&PathBuf> = config.watch.iter().collect();
    let mut inputs: Vec<&PathBuf> = config.watch.iter().collect();
    if let Some(settings) = &config.snapshot {
        recursive.extend(&settings.containers);
        inputs.extend(&settings.containers);
        inputs.extend(settings.labels_file.iter().chain(&settings.schema));
    }
    for path in inputs {
        if path.is_dir() {
            dirs.push(path.clone());
        } else if let Some(parent) = path.parent() {
            dirs.push(parent.to_owned());
        }
    }
    dirs.sort();
    dirs.dedup();
    if dirs.is_empty() {
        return None;
    }
    let watched = dirs.clone();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let Ok(event) = event else {
            return;
        };
        if matches!(event.kind, notify::EventKind::Access(_)) {
            return;
        }
        for path in event.paths {
            let dir = watched
                .iter()
                .find(|d| path.starts_with(d))
                .cloned()
                .unwrap_or(path);
            let _ = events.send(dir);
        }
    })
    .map_err(|error| warn!(%error, "cannot watch files; changes to them are not picked up"))
    .ok()?;
    for dir in &dirs {
        let mode = if recursive.contains(&dir) {
            notify::RecursiveMode::Recursive
        } else {
            notify::RecursiveMode::NonRecursive
        };
        if let Err(error) = watcher.watch(dir, mode) {
            warn!(%error, dir = %dir.display(), "cannot watch");
        }
    }
    Some(watcher)
}
