//! The sidecar: keeps every file correct for the life of the pod. One loop, one schedule: the
//! token is renewed at about two thirds of its TTL and replaced by a new login near its max
//! TTL; leases are renewed, and replaced before they end when they cannot be renewed further;
//! certificates are re-issued at 90% of their lifetime; KV values are read again every refresh
//! interval. A change re-renders only the files that read it. Every failure backs off; nothing
//! retries in a tight loop.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use injector::AgentConfig;
use serde_json::Value as Json;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::server::{Expiries, Shared};
use super::timing::{backoff, jitter, refresh_in, reissue_at, renew_in, replace_in, truncated};
use super::{Error, Fetched, Output, SourceFile, VaultFetch, files, outputs, state};
use crate::template::{Engine, Rendered, Request};
use crate::vault::{self, Token};

/// The farthest any timer is set: something that never expires is looked at again this late.
const FAR: Duration = Duration::from_secs(24 * 3600);

/// How long one fetch made while rendering may retry a Vault that is briefly away; after that
/// the schedule's own backoff takes over.
const FETCH_BUDGET: Duration = Duration::from_secs(10);

/// The pause after which a burst of file events is handled.
const WATCH_SETTLE: Duration = Duration::from_millis(100);

/// What the token does next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TokenAction {
    Login,
    Renew,
    Nothing,
}

struct TokenState {
    info: Option<vault::TokenInfo>,
    /// The TTL asked for at each renewal: what the login granted.
    asked: Duration,
    expires: Option<Instant>,
    action: TokenAction,
    next: Instant,
    failures: u32,
    /// Counts logins: a lease belongs to the token that created it.
    generation: u64,
}

/// What kind of thing a fetched response is, which decides when it is fetched again.
#[derive(Clone, Debug, PartialEq)]
enum Kind {
    /// No lease: read again every refresh interval.
    Static,
    /// A lease, created by the token of `generation`.
    Lease {
        id: String,
        duration: Duration,
        renewable: bool,
        generation: u64,
    },
    /// A certificate: re-issued at the threshold of its lifetime.
    Certificate,
    /// A write without lease or certificate: done once.
    Once,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum EntryAction {
    /// Fetch again; a changed response re-renders what read it.
    Fetch,
    /// Renew the lease.
    Renew,
    /// Nothing scheduled.
    Nothing,
}

struct Entry {
    kind: Kind,
    data: Json,
    fetched_at: SystemTime,
    /// When the response arrived: a lease's life counts from here.
    born: Instant,
    expires: Option<Instant>,
    action: EntryAction,
    next: Instant,
    failures: u32,
}

#[derive(Default)]
struct OutputState {
    rendered_once: bool,
    failures: u32,
    retry_at: Option<Instant>,
}

/// Why the loop stopped.
#[derive(Debug, PartialEq, Eq)]
enum Stop {
    Signal,
    Quit,
}

struct Sidecar<'a> {
    config: &'a AgentConfig,
    engine: Engine,
    client: vault::Client,
    token: TokenState,
    entries: BTreeMap<Request, Entry>,
    outputs: Vec<OutputState>,
    shared: Arc<Shared>,
    sources: Vec<SourceFile>,
}

/// Runs the sidecar until SIGTERM, SIGINT or `POST /quit`.
pub(super) async fn run(
    config: &AgentConfig,
    engine: Engine,
    sources: Vec<SourceFile>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), Error> {
    let client = vault::Client::connect(&config.vault).map_err(Error::Login)?;
    let shared = Arc::new(Shared::new());
    if let Some(port) = config.listen {
        let local = super::server::serve(port, shared.clone())
            .await
            .map_err(|e| Error::Runtime(format!("cannot listen on 127.0.0.1:{port}: {e}")))?;
        info!(listen = %local, "local endpoints serving");
    }
    engine.allow_files(config.watch.clone());
    let now = Instant::now();
    let mut sidecar = Sidecar {
        config,
        outputs: (0..engine.len()).map(|_| OutputState::default()).collect(),
        engine,
        client,
        token: TokenState {
            info: None,
            asked: Duration::ZERO,
            expires: None,
            action: TokenAction::Login,
            next: now,
            failures: 0,
            generation: 0,
        },
        entries: BTreeMap::new(),
        shared,
        sources,
    };
    let (events, mut changes) = tokio::sync::mpsc::unbounded_channel::<PathBuf>();
    let _watcher = watch(config, &sidecar.sources, events);
    let quit = sidecar.shared.clone();
    tokio::pin!(shutdown);
    // Work is cancelled by a stop, in the middle of a request if need be: a stop never waits
    // for a Vault that does not answer. Everything a step does to the state follows an answer,
    // so a cancelled step leaves nothing half done.
    let stop = tokio::select! {
        biased;
        () = &mut shutdown => Stop::Signal,
        () = quit.quit_requested() => Stop::Quit,
        never = sidecar.work(&mut changes) => match never {},
    };
    info!(reason = ?stop, "stopping");
    if config.revoke_on_shutdown && sidecar.token.info.is_some() {
        if let Some(delay) = config.revoke_delay {
            tokio::time::sleep(delay.0).await;
        }
        match sidecar.client.revoke_self().await {
            Ok(()) => info!("token revoked, and with it its leases"),
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
            let next = self.next_deadline();
            tokio::select! {
                Some(path) = changes.recv() => {
                    tokio::time::sleep(WATCH_SETTLE).await;
                    let mut paths = vec![path];
                    while let Ok(more) = changes.try_recv() {
                        paths.push(more);
                    }
                    self.files_changed(&paths).await;
                }
                () = tokio::time::sleep_until(next) => self.due().await,
            }
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
        let adopted = vault::adopt(&mut self.client, Token::new(handover.token.clone())).await;
        let token_alive = match adopted {
            Ok(info) => {
                info!(
                    ttl_s = info.ttl.as_secs(),
                    "took over the init container's token"
                );
                self.token_granted(info, true);
                true
            }
            Err(error) => {
                warn!(%error, "the init container's token cannot be used; logging in");
                false
            }
        };
        let now = Instant::now();
        let wall = SystemTime::now();
        for entry in handover.entries {
            let request = Request::from_parts(&entry.path, entry.params.as_ref());
            let age = wall
                .duration_since(state::system_time(entry.fetched_at))
                .unwrap_or_default();
            let lease = entry.lease.map(|l| vault::Lease {
                id: l.id,
                duration: Duration::from_secs(l.seconds).saturating_sub(age),
                renewable: l.renewable,
            });
            // Leases die with the token that created them.
            if lease.is_some() && !token_alive {
                continue;
            }
            let secret = vault::Secret {
                data: entry.data,
                lease,
                auth: None,
            };
            self.engine.store(request.clone(), &secret.data);
            let fetched_at = state::system_time(entry.fetched_at);
            let mut scheduled = self.classify(&request, secret, fetched_at, now);
            scheduled.born = now.checked_sub(age).unwrap_or(now);
            if scheduled.kind == Kind::Static {
                let due = refresh_in(self.config.refresh_interval(), jitter()).saturating_sub(age);
                scheduled.next = now + due;
            }
            self.entries.insert(request, scheduled);
        }
        debug!(
            entries = self.entries.len(),
            "took over the init container's records"
        );
        if token_alive {
            self.render(self.all()).await;
        }
    }

    fn all(&self) -> Vec<usize> {
        (0..self.outputs.len()).collect()
    }

    /// The next moment something is due.
    fn next_deadline(&self) -> Instant {
        let mut next = self.token.next;
        for entry in self.entries.values() {
            if entry.action != EntryAction::Nothing {
                next = next.min(entry.next);
            }
        }
        for output in &self.outputs {
            if let Some(at) = output.retry_at {
                next = next.min(at);
            }
        }
        next
    }

    /// Handles everything whose time has come.
    async fn due(&mut self) {
        let now = Instant::now();
        if self.token.action != TokenAction::Nothing && self.token.next <= now {
            match self.token.action {
                TokenAction::Login => self.login().await,
                TokenAction::Renew => self.renew_token().await,
                TokenAction::Nothing => {}
            }
        }
        if self.token.info.is_none() {
            return;
        }
        let due: Vec<Request> = self
            .entries
            .iter()
            .filter(|(_, e)| e.action != EntryAction::Nothing && e.next <= now)
            .map(|(r, _)| r.clone())
            .collect();
        for request in due {
            self.entry_due(request).await;
        }
        let retries: Vec<usize> = (0..self.outputs.len())
            .filter(|i| self.outputs[*i].retry_at.is_some_and(|at| at <= now))
            .collect();
        if !retries.is_empty() {
            self.render(retries).await;
        }
        self.publish();
    }

    async fn login(&mut self) {
        let first = self.token.info.is_none();
        match vault::login(&mut self.client, &self.config.auth).await {
            Ok(info) => {
                self.shared.login(true);
                info!(
                    method = %self.config.auth.method,
                    mount = self.config.auth.mount(),
                    ttl_s = info.ttl.as_secs(),
                    "logged in to vault"
                );
                self.token_granted(info, false);
                // Leases die with the token that created them: fetch them again with the new
                // one now, while the old ones still work. Nothing else is fetched again.
                let now = Instant::now();
                for entry in self.entries.values_mut() {
                    if matches!(entry.kind, Kind::Lease { generation, .. } if generation < self.token.generation)
                    {
                        entry.action = EntryAction::Fetch;
                        entry.next = now;
                        entry.failures = 0;
                    }
                }
                if first {
                    self.render(self.all()).await;
                }
                self.save();
            }
            Err(error) => {
                self.shared.login(false);
                let (min, max) = self.config.auth.backoff();
                let pause = backoff(self.token.failures, min, max, jitter());
                self.token.failures = self.token.failures.saturating_add(1);
                self.token.next = Instant::now() + pause;
                warn!(%error, retry_in_s = pause.as_secs_f64(), "login failed");
            }
        }
    }

    /// Takes a token Vault gave (a login) or that lookup-self described (a hand-over).
    fn token_granted(&mut self, info: vault::TokenInfo, adopted: bool) {
        let now = Instant::now();
        let ttl = info.ttl;
        self.token.failures = 0;
        if !adopted {
            self.token.generation += 1;
        }
        self.token.asked = ttl;
        self.token.expires = (!ttl.is_zero()).then(|| now + ttl);
        (self.token.action, self.token.next) = if ttl.is_zero() {
            (TokenAction::Nothing, now + FAR)
        } else if info.renewable {
            (TokenAction::Renew, now + renew_in(ttl, jitter()))
        } else {
            (TokenAction::Login, now + renew_in(ttl, jitter()))
        };
        self.token.info = Some(info);
    }

    async fn renew_token(&mut self) {
        let now = Instant::now();
        match self.client.renew_self(self.token.asked).await {
            Ok(granted) => {
                self.shared.renewal("token", true);
                self.token.failures = 0;
                self.token.expires = Some(now + granted.ttl);
                let near_max = !granted.renewable || truncated(self.token.asked, granted.ttl);
                self.token.action = if near_max {
                    TokenAction::Login
                } else {
                    TokenAction::Renew
                };
                self.token.next = now + renew_in(granted.ttl, jitter());
                debug!(ttl_s = granted.ttl.as_secs(), next = ?self.token.action, "token renewed");
                self.save();
            }
            Err(error) if error.is_transient() => {
                self.shared.renewal("token", false);
                let pause = backoff(
                    self.token.failures,
                    Duration::from_secs(1),
                    Duration::from_secs(300),
                    jitter(),
                );
                self.token.failures = self.token.failures.saturating_add(1);
                let retry = now + pause;
                // Once the token has run out, only a login helps.
                match self.token.expires {
                    Some(expires) if retry >= expires => {
                        self.token.action = TokenAction::Login;
                        self.token.next = expires;
                    }
                    _ => self.token.next = retry,
                }
                warn!(%error, retry_in_s = pause.as_secs_f64(), "token renewal failed");
            }
            Err(error) => {
                self.shared.renewal("token", false);
                info!(%error, "token renewal refused; logging in again");
                self.token.action = TokenAction::Login;
                self.token.failures = 0;
                self.token.next = now;
            }
        }
    }

    /// Classifies a response and schedules what comes next for it.
    fn classify(
        &self,
        request: &Request,
        secret: vault::Secret,
        fetched_at: SystemTime,
        now: Instant,
    ) -> Entry {
        let threshold = self.config.renewal_threshold();
        let (kind, action, next, expires) = match &secret.lease {
            Some(lease) if !lease.id.is_empty() => {
                let kind = Kind::Lease {
                    id: lease.id.clone(),
                    duration: lease.duration,
                    renewable: lease.renewable,
                    generation: self.token.generation,
                };
                let expires = now + lease.duration;
                if lease.duration.is_zero() {
                    (kind, EntryAction::Fetch, now, Some(expires))
                } else if lease.renewable {
                    (
                        kind,
                        EntryAction::Renew,
                        now + renew_in(lease.duration, jitter()),
                        Some(expires),
                    )
                } else {
                    let at = now + replace_in(lease.duration, threshold, jitter());
                    (kind, EntryAction::Fetch, at, Some(expires))
                }
            }
            _ => match certificate_validity(&secret.data) {
                Some((not_before, not_after)) => {
                    let at = reissue_at(not_before, not_after, threshold, jitter());
                    let wall = SystemTime::now();
                    let until = |t: SystemTime| t.duration_since(wall).unwrap_or_default();
                    (
                        Kind::Certificate,
                        EntryAction::Fetch,
                        now + until(at),
                        Some(now + until(not_after)),
                    )
                }
                None if request.is_write() => (Kind::Once, EntryAction::Nothing, now + FAR, None),
                None => (
                    Kind::Static,
                    EntryAction::Fetch,
                    now + refresh_in(self.config.refresh_interval(), jitter()),
                    None,
                ),
            },
        };
        Entry {
            kind,
            data: secret.data,
            fetched_at,
            born: now,
            expires,
            action,
            next,
            failures: 0,
        }
    }

    async fn entry_due(&mut self, request: Request) {
        let Some(entry) = self.entries.get(&request) else {
            return;
        };
        match (entry.action, &entry.kind) {
            (EntryAction::Renew, Kind::Lease { id, duration, .. }) => {
                let (id, duration) = (id.clone(), *duration);
                self.renew_lease(request, &id, duration).await;
            }
            (EntryAction::Fetch, _) => self.refetch(request).await,
            _ => {}
        }
    }

    async fn renew_lease(&mut self, request: Request, id: &str, asked: Duration) {
        let now = Instant::now();
        let result = self.client.renew_lease(id, asked).await;
        let threshold = self.config.renewal_threshold();
        let Some(entry) = self.entries.get_mut(&request) else {
            return;
        };
        match result {
            Ok(granted) => {
                self.shared.renewal("lease", true);
                entry.failures = 0;
                entry.expires = Some(now + granted.duration);
                if !granted.renewable || truncated(asked, granted.duration) {
                    // Near the lease's max TTL: new credentials at the threshold of the lease's
                    // whole life (now known to end at `now + granted`), or at once if that is
                    // past, so that the app has them before these end.
                    let life = (now + granted.duration).saturating_duration_since(entry.born);
                    let at = entry.born + replace_in(life, threshold, jitter());
                    entry.action = EntryAction::Fetch;
                    entry.next = at.max(now);
                    info!(path = %request.path, ttl_s = granted.duration.as_secs(), "lease near its max TTL; new credentials before it ends");
                } else {
                    entry.next = now + renew_in(granted.duration, jitter());
                    debug!(path = %request.path, ttl_s = granted.duration.as_secs(), "lease renewed");
                }
            }
            Err(error) if error.is_transient() => {
                self.shared.renewal("lease", false);
                let pause = backoff(
                    entry.failures,
                    Duration::from_secs(1),
                    Duration::from_secs(300),
                    jitter(),
                );
                entry.failures = entry.failures.saturating_add(1);
                let retry = now + pause;
                if entry.expires.is_some_and(|e| retry >= e) {
                    entry.action = EntryAction::Fetch;
                }
                entry.next = retry;
                warn!(%error, path = %request.path, retry_in_s = pause.as_secs_f64(), "lease renewal failed");
            }
            Err(error) => {
                self.shared.renewal("lease", false);
                info!(%error, path = %request.path, "lease renewal refused; fetching new credentials");
                entry.action = EntryAction::Fetch;
                entry.failures = 0;
                entry.next = now;
            }
        }
        self.save();
    }

    /// Fetches a request again; a different response re-renders what read it.
    async fn refetch(&mut self, request: Request) {
        let now = Instant::now();
        let params = request.params();
        let result = match &params {
            None => self.client.read(&request.path).await,
            Some(params) => self.client.write(&request.path, params).await,
        };
        match result {
            Ok(secret) => {
                let changed = self
                    .entries
                    .get(&request)
                    .is_none_or(|e| e.data != secret.data);
                let entry = self.classify(&request, secret, SystemTime::now(), now);
                if changed {
                    self.engine.store(request.clone(), &entry.data);
                }
                self.entries.insert(request.clone(), entry);
                if changed {
                    debug!(path = %request.path, "changed; rendering what reads it");
                    let using = self.engine.using(&request);
                    self.render(using).await;
                }
                self.save();
            }
            Err(error) => {
                let Some(entry) = self.entries.get_mut(&request) else {
                    return;
                };
                let pause = backoff(
                    entry.failures,
                    Duration::from_secs(1),
                    Duration::from_secs(300),
                    jitter(),
                );
                entry.failures = entry.failures.saturating_add(1);
                entry.next = now + pause;
                warn!(%error, path = %request.path, retry_in_s = pause.as_secs_f64(), "fetch failed; the files keep what they have");
            }
        }
    }

    /// Renders `which` against the cache, fetching what is missing, and writes what changed.
    async fn render(&mut self, which: Vec<usize>) {
        if which.is_empty() {
            return;
        }
        let mut results: Vec<(usize, Result<Rendered, crate::template::Error>)> = Vec::new();
        let fetch = VaultFetch::new(&self.client, Instant::now() + FETCH_BUDGET);
        self.engine
            .render_some(&which, &fetch, |i, result| results.push((i, result)))
            .await;
        let fetched = fetch.take();
        let now = Instant::now();
        for Fetched {
            request,
            result,
            at,
        } in fetched
        {
            let entry = match result {
                Ok(secret) => self.classify(&request, secret, at, now),
                Err(()) => {
                    // Failed while rendering: retried on the schedule, with backoff.
                    self.engine.forget(&request);
                    let failures = self.entries.get(&request).map_or(0, |e| e.failures);
                    Entry {
                        kind: Kind::Static,
                        data: Json::Null,
                        fetched_at: at,
                        born: now,
                        expires: None,
                        action: EntryAction::Fetch,
                        next: now
                            + backoff(
                                failures,
                                Duration::from_secs(1),
                                Duration::from_secs(300),
                                jitter(),
                            ),
                        failures: failures.saturating_add(1),
                    }
                }
            };
            self.entries.insert(request, entry);
        }
        let config_outputs: Vec<Output<'_>> = outputs(self.config).collect();
        let ready_before = self.outputs.iter().all(|o| o.rendered_once);
        for (i, result) in results {
            let output = &config_outputs[i];
            self.write(i, output, result, ready_before);
        }
        if !ready_before && self.outputs.iter().all(|o| o.rendered_once) {
            self.mark_ready();
        }
        self.save();
        self.publish();
    }

    fn write(
        &mut self,
        i: usize,
        output: &Output<'_>,
        result: Result<Rendered, crate::template::Error>,
        ready: bool,
    ) {
        let now = Instant::now();
        let state = &mut self.outputs[i];
        let written = result.map_err(|e| e.to_string()).and_then(|rendered| {
            files::write_atomic(output.destination, rendered.as_bytes(), output.mode)
                .map_err(|e| format!("cannot write {}: {e}", output.destination.display()))
        });
        match written {
            Ok(written) => {
                self.shared.render(output.name, true);
                state.rendered_once = true;
                state.failures = 0;
                state.retry_at = None;
                if written != files::Written::Unchanged {
                    info!(name = output.name, destination = %output.destination.display(), written = ?written, "rendered");
                    if ready {
                        self.run_command(i);
                    }
                }
            }
            Err(error) => {
                self.shared.render(output.name, false);
                let pause = backoff(
                    state.failures,
                    Duration::from_secs(1),
                    Duration::from_secs(300),
                    jitter(),
                );
                state.failures = state.failures.saturating_add(1);
                state.retry_at = Some(now + pause);
                warn!(name = output.name, %error, retry_in_s = pause.as_secs_f64(), "render failed; the file keeps its last good content");
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

    /// Writes the hand-over so that a restarted sidecar takes over instead of starting again.
    fn save(&self) {
        let (Some(dir), Some(info)) = (&self.config.state_dir, &self.token.info) else {
            return;
        };
        let now = Instant::now();
        let wall = SystemTime::now();
        let expires = self
            .token
            .expires
            .map(|e| state::unix(wall + e.saturating_duration_since(now)));
        let entries = self
            .entries
            .iter()
            .filter(|(_, e)| !e.data.is_null())
            .map(|(request, e)| state::Entry {
                path: request.path.clone(),
                params: request.params(),
                data: e.data.clone(),
                fetched_at: state::unix(e.fetched_at),
                lease: match &e.kind {
                    Kind::Lease {
                        id,
                        duration,
                        renewable,
                        ..
                    } => Some(state::LeaseRecord {
                        id: id.clone(),
                        seconds: e.expires.map_or(duration.as_secs(), |x| {
                            x.saturating_duration_since(now).as_secs()
                                + wall
                                    .duration_since(e.fetched_at)
                                    .unwrap_or_default()
                                    .as_secs()
                        }),
                        renewable: *renewable,
                    }),
                    _ => None,
                },
            })
            .collect();
        let handover = state::State::new(info.token.expose().to_owned(), expires, entries);
        if let Err(error) = std::fs::create_dir_all(dir).and_then(|()| state::save(dir, &handover))
        {
            warn!(%error, "cannot save the agent's state");
        }
    }

    /// Tells the metrics endpoint when things expire.
    fn publish(&self) {
        let leases = self
            .entries
            .iter()
            .filter(|(_, e)| matches!(e.kind, Kind::Lease { .. }))
            .filter_map(|(r, e)| Some((r.path.clone(), e.expires?)))
            .collect();
        self.shared.set_expiries(Expiries {
            token: self.token.expires,
            leases,
        });
    }
}

fn command_of(config: &AgentConfig, i: usize) -> (&str, Option<Vec<String>>, Duration) {
    let default = injector::agent_config::DEFAULT_COMMAND_TIMEOUT;
    let templates = config.templates.len();
    if i < templates {
        let t = &config.templates[i];
        (
            &t.name,
            t.command.clone(),
            t.command_timeout.map_or(default, |d| d.0),
        )
    } else {
        let s = &config.secrets[i - templates];
        (
            &s.name,
            s.command.clone(),
            s.command_timeout.map_or(default, |d| d.0),
        )
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
    for path in &config.watch {
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
        let mode = if config.watch.contains(dir) {
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
