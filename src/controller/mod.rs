//! `hydrant controller`: keeps a policy repository's branch applied to Vault. It fetches the
//! git remote on a poll interval and on `POST /sync`, applies each new commit (fail closed: a
//! commit with any problem is refused whole and the last good one stays), re-reads Vault on a
//! drift interval to correct or report changes made by hand, optionally follows the cluster's
//! Namespaces (a namespace that appears gets the defaults; one that goes loses its objects,
//! within the deletion cap), and acts only while it holds the Lease when there are replicas.
//!
//! Kubernetes I/O (the Namespace watch, the Lease and the Events) is thin and goes through
//! `kube`; the tests run it against a small fake API service because no API server can run there.

mod args;
pub mod events;
pub mod git;
mod metrics;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt as _;
use k8s_openapi::api::core::v1::Namespace;
use kube::runtime::{WatchStreamExt as _, watcher};
use tokio::sync::watch;
use tokio::time::{Instant, MissedTickBehavior};
use tracing::{Instrument as _, error, info, info_span, warn};

pub use self::args::Args;
pub use metrics::ControllerStatus;

use events::Reason;

use crate::policy::plan::{Change, Plan};
use crate::policy::{self, Desired, RepoSettings, apply};
use crate::vault::{self, Client, cli::CliVault};

/// What drift found on the drift interval leads to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum DriftMode {
    /// Put Vault back as the repository says.
    Correct,
    /// Log and count the drift; change nothing.
    Report,
}

/// Leader election: which Lease, and who this replica is.
#[derive(Clone, Debug)]
pub struct Election {
    /// The Lease's namespace.
    pub namespace: String,
    /// The Lease's name and this replica's identity and term.
    pub params: crate::lease::Params,
}

/// The controller's settings, from the command line.
#[derive(Debug)]
pub struct Options {
    /// The git remote (`https://`, `git://`, `file://`).
    pub repository: String,
    /// The branch applied.
    pub branch: String,
    /// Credentials for an `https://` remote.
    pub credentials: Option<git::Credentials>,
    /// Where the bare clone and checkouts live.
    pub state_dir: PathBuf,
    /// How often the remote is fetched.
    pub poll_interval: Duration,
    /// The least time from one fetch to a fetch asked for by `POST /sync`.
    pub sync_interval: Duration,
    /// How often Vault is compared with the last applied commit.
    pub drift_interval: Duration,
    /// What drift leads to.
    pub drift_mode: DriftMode,
    /// Where `/healthz`, `/readyz`, `/metrics` and `POST /sync` are served.
    pub listen: SocketAddr,
    /// Vault's address and login from an agent config (else `VAULT_ADDR`/`VAULT_TOKEN`).
    pub agent_config: Option<PathBuf>,
    /// Follow the Namespaces matching this label selector (`""`: every namespace).
    pub namespace_selector: Option<String>,
    /// Compete for a Lease; without it this process always acts.
    pub election: Option<Election>,
    /// Publish Kubernetes Events regarding this Pod.
    pub events: Option<events::Regarding>,
}

/// Why the controller cannot start. Failures while running are logged and retried instead.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No Vault settings.
    #[error("no Vault: set VAULT_ADDR and VAULT_TOKEN, or pass --agent-config")]
    NoVault,
    /// The agent config given for Vault is invalid.
    #[error("agent config invalid: {0}")]
    AgentConfig(String),
    /// The endpoints' address cannot be bound.
    #[error("cannot listen on {address}: {error}; pass a free --listen address")]
    Listen {
        /// The address.
        address: SocketAddr,
        /// Why (in the message, not the source chain, so it is shown once).
        error: std::io::Error,
    },
    /// The state directory cannot be made.
    #[error("cannot use the state directory {}: {error}; pass a writable --state-dir", path.display())]
    StateDir {
        /// The directory.
        path: PathBuf,
        /// Why (in the message, not the source chain, so it is shown once).
        error: std::io::Error,
    },
    /// The Kubernetes API is needed (namespace watch or Lease) and cannot be reached.
    #[error(
        "no Kubernetes API for --namespace-selector, --leader-election or --events: {0}; run in a pod with a service account, or set KUBECONFIG"
    )]
    Kubernetes(String),
    /// The remote's URL holds a password, which would be logged.
    #[error(
        "--repository holds a password; pass the URL without it and the password through --git-password-file"
    )]
    PasswordInUrl,
    /// `--events` without the Pod they are about.
    #[error(
        "--events needs the controller's Pod name: set POD_NAME (with POD_NAMESPACE and POD_UID) from the downward API, or pass --identity"
    )]
    NoPodForEvents,
    /// The runtime could not start.
    #[error("cannot start the runtime: {0}")]
    Runtime(std::io::Error),
}

/// `hydrant controller`: runs as the flags say until SIGTERM or SIGINT.
pub fn command(args: Args, env: &dyn crate::env::Env) -> anyhow::Result<()> {
    run(args.options()?, env)?;
    Ok(())
}

/// Runs the controller until SIGTERM or SIGINT.
pub fn run(options: Options, env: &dyn crate::env::Env) -> Result<(), Error> {
    if password_in_url(&options.repository) {
        return Err(Error::PasswordInUrl);
    }
    let vault = CliVault::from(options.agent_config.as_deref(), env)
        .map_err(Error::AgentConfig)?
        .ok_or(Error::NoVault)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(Error::Runtime)?;
    let (stop, stopped) = watch::channel(false);
    runtime.block_on(async move {
        // Installed before the port opens (see shutdown_signal), not when the task first runs.
        let signal = crate::shutdown_signal();
        tokio::spawn(async move {
            signal.await;
            info!("stopping");
            stop.send_replace(true);
        });
        serve(options, vault, Arc::new(ControllerStatus::new()), stopped).await
    })
}

/// Whether a URL carries `user:password@`.
fn password_in_url(url: &str) -> bool {
    url.split_once("://")
        .map(|(_, rest)| rest.split('/').next().unwrap_or_default())
        .and_then(|authority| authority.rsplit_once('@'))
        .is_some_and(|(userinfo, _)| userinfo.contains(':'))
}

/// Resolves once `stopped` turns true (or its sender is gone).
async fn until(mut stopped: watch::Receiver<bool>) {
    let _ = stopped.wait_for(|s| *s).await;
}

/// The controller with its endpoints, until `stopped` turns true.
pub async fn serve(
    options: Options,
    vault: CliVault,
    status: Arc<ControllerStatus>,
    stopped: watch::Receiver<bool>,
) -> Result<(), Error> {
    std::fs::create_dir_all(&options.state_dir).map_err(|error| Error::StateDir {
        path: options.state_dir.clone(),
        error,
    })?;
    let listener = tokio::net::TcpListener::bind(options.listen)
        .await
        .map_err(|error| Error::Listen {
            address: options.listen,
            error,
        })?;
    info!(address = %options.listen, repository = %options.repository, branch = %options.branch, "controller listening");
    let server = {
        let app = metrics::router(status.clone());
        let stopped = stopped.clone();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(until(stopped))
                .await;
        })
    };
    let client = if options.namespace_selector.is_some()
        || options.election.is_some()
        || options.events.is_some()
    {
        Some(
            kube::Client::try_default()
                .await
                .map_err(|e| Error::Kubernetes(e.to_string()))?,
        )
    } else {
        None
    };
    let (leading_tx, leading) = watch::channel(options.election.is_none());
    let election = match (&options.election, &client) {
        (Some(election), Some(client)) => {
            let api = kube::Api::namespaced(client.clone(), &election.namespace);
            Some(tokio::spawn(crate::lease::run(
                api,
                election.params.clone(),
                leading_tx,
                until(stopped.clone()),
            )))
        }
        _ => None,
    };
    let (namespaces_tx, namespaces) = watch::channel(None);
    if let (Some(selector), Some(client)) = (&options.namespace_selector, &client) {
        let api = kube::Api::<Namespace>::all(client.clone());
        let config = watcher::Config::default().labels(selector);
        tokio::spawn(watch_namespaces(api, config, namespaces_tx, status.clone()));
    }
    let mut controller = Controller {
        remote: Arc::new(git::Remote::new(
            options.repository.clone(),
            options.branch.clone(),
            options.state_dir.join("repository.git"),
        )),
        credentials: options.credentials.clone(),
        checkouts: options.state_dir.join("checkouts"),
        vault,
        session: None,
        applied: None,
        refused: None,
        drift_mode: options.drift_mode,
        follow_namespaces: options.namespace_selector.is_some(),
        status: status.clone(),
        events: match (&options.events, &client) {
            (Some(pod), Some(client)) => Some(events::Events::new(client.clone(), pod)),
            _ => None,
        },
    };
    controller
        .run(&options, leading, namespaces, stopped.clone())
        .await;
    if let Some(election) = election {
        let _ = election.await;
    }
    let _ = server.await;
    Ok(())
}

/// Keeps the set of Namespaces matching the selector; `None` until the first list is complete.
async fn watch_namespaces(
    api: kube::Api<Namespace>,
    config: watcher::Config,
    namespaces: watch::Sender<Option<BTreeSet<String>>>,
    status: Arc<ControllerStatus>,
) {
    let mut listing = BTreeSet::new();
    let mut events = std::pin::pin!(watcher(api, config).default_backoff());
    while let Some(event) = events.next().await {
        let name = |ns: &Namespace| ns.metadata.name.clone().unwrap_or_default();
        match event {
            Ok(watcher::Event::Init) => listing.clear(),
            Ok(watcher::Event::InitApply(ns)) => {
                listing.insert(name(&ns));
            }
            Ok(watcher::Event::InitDone) => {
                info!(count = listing.len(), "namespaces listed");
                namespaces.send_replace(Some(listing.clone()));
            }
            Ok(watcher::Event::Apply(ns)) => {
                let name = name(&ns);
                namespaces.send_if_modified(|set| match set {
                    Some(set) => set.insert(name.clone()),
                    None => false,
                });
            }
            Ok(watcher::Event::Delete(ns)) => {
                let name = name(&ns);
                namespaces.send_if_modified(|set| match set {
                    Some(set) => set.remove(&name),
                    None => false,
                });
            }
            Err(e) => {
                status.watch_error();
                warn!(error = %e, "namespace watch failed; retrying");
            }
        }
    }
}

/// The last commit applied, and where its files are.
#[derive(Debug)]
struct Applied {
    commit: String,
    dir: PathBuf,
}

/// A logged-in client, and when to log in again.
#[derive(Debug)]
struct Session {
    client: Arc<Client>,
    renew_after: Option<Instant>,
}

/// Why a cycle runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Trigger {
    /// The poll interval, `POST /sync`, or becoming the leader: fetch, apply what is new.
    Fetch,
    /// The drift interval: compare Vault with the last applied commit.
    Drift,
    /// The set of namespaces changed.
    Namespaces,
}

impl Trigger {
    fn label(self) -> &'static str {
        match self {
            Trigger::Fetch => "fetch",
            Trigger::Drift => "drift",
            Trigger::Namespaces => "namespaces",
        }
    }
}

struct Controller {
    remote: Arc<git::Remote>,
    credentials: Option<git::Credentials>,
    checkouts: PathBuf,
    vault: CliVault,
    session: Option<Session>,
    applied: Option<Applied>,
    /// A commit refused for problems: not tried again until the branch moves.
    refused: Option<String>,
    drift_mode: DriftMode,
    follow_namespaces: bool,
    status: Arc<ControllerStatus>,
    events: Option<events::Events>,
}

impl Controller {
    async fn run(
        &mut self,
        options: &Options,
        mut leading: watch::Receiver<bool>,
        mut namespaces: watch::Receiver<Option<BTreeSet<String>>>,
        mut stopped: watch::Receiver<bool>,
    ) {
        let mut poll = tokio::time::interval(options.poll_interval);
        poll.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut drift = tokio::time::interval_at(
            Instant::now() + options.drift_interval,
            options.drift_interval,
        );
        drift.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut leading_open = true;
        let mut namespaces_open = true;
        // POST /sync asks for a fetch that starts after the request: requests coalesce into one
        // pending fetch, due `sync_interval` after the last fetch started (the hardening
        // campaign's 500 requests made about 500 fetches).
        let mut last_fetch: Option<Instant> = None;
        let mut sync_due: Option<Instant> = None;
        loop {
            let due = sync_due;
            let trigger = tokio::select! {
                _ = poll.tick() => Trigger::Fetch,
                () = self.status.sync_requested() => {
                    if sync_due.is_none() {
                        sync_due = Some(sync_at(last_fetch, Instant::now(), options.sync_interval));
                    }
                    continue;
                }
                () = tokio::time::sleep_until(due.unwrap_or_else(Instant::now)), if due.is_some() => {
                    sync_due = None;
                    Trigger::Fetch
                }
                _ = drift.tick() => Trigger::Drift,
                changed = leading.changed(), if leading_open => {
                    leading_open = changed.is_ok();
                    Trigger::Fetch
                }
                changed = namespaces.changed(), if namespaces_open => {
                    namespaces_open = changed.is_ok();
                    Trigger::Namespaces
                }
                _ = stopped.wait_for(|s| *s) => break,
            };
            let is_leader = *leading.borrow();
            self.status.set_leading(is_leader);
            if !is_leader {
                continue;
            }
            let live = namespaces.borrow().clone();
            if self.follow_namespaces && live.is_none() {
                info!("waiting for the namespace list before applying");
                continue;
            }
            // Until a commit is applied, whatever woke the loop (the namespace list arriving,
            // say) is a reason to fetch.
            let trigger = if self.applied.is_none() {
                Trigger::Fetch
            } else {
                trigger
            };
            match trigger {
                Trigger::Fetch => {
                    // Any fetch starting now answers the syncs asked for so far.
                    last_fetch = Some(Instant::now());
                    sync_due = None;
                    self.fetch_and_apply(live.as_ref()).await;
                }
                Trigger::Drift | Trigger::Namespaces => {
                    self.reapply(trigger, live.as_ref()).await;
                }
            }
        }
    }

    /// Fetches; applies the branch's commit when it is new.
    async fn fetch_and_apply(&mut self, live: Option<&BTreeSet<String>>) {
        let remote = self.remote.clone();
        let credentials = self.credentials.clone();
        let fetched = tokio::task::spawn_blocking(move || remote.fetch(credentials.as_ref())).await;
        let commit = match fetched {
            Ok(Ok(commit)) => {
                self.status.fetched(true);
                commit
            }
            Ok(Err(e)) => {
                self.status.fetched(false);
                error!(error = %e, "fetch failed; the last applied commit stays");
                self.event(Reason::FetchFailed, || {
                    format!("fetch failed: {e}; {}", self.last_applied())
                });
                return;
            }
            Err(e) => {
                self.status.fetched(false);
                error!(error = %e, "fetch panicked");
                return;
            }
        };
        if self.applied.as_ref().is_some_and(|a| a.commit == commit)
            || self.refused.as_deref() == Some(commit.as_str())
        {
            return;
        }
        let mut dir = self.checkouts.join(&commit);
        // Entries that are not files fail the commit, as `policy lint` fails them in a
        // working tree; such a checkout stays in staging, so that a restart checks it again.
        let mut not_regular = Vec::new();
        if !dir.exists() {
            let remote = self.remote.clone();
            let (c, d) = (commit.clone(), dir.clone());
            let staging = self.checkouts.join(format!(".{commit}"));
            let s = staging.clone();
            let written = tokio::task::spawn_blocking(move || {
                let _ = std::fs::remove_dir_all(&s);
                let not_regular = policy::repo::not_regular(&remote.checkout(&c, &s)?);
                if not_regular.is_empty() {
                    std::fs::rename(&s, &d).map_err(|e| git::Error::Read {
                        commit: c.clone(),
                        message: e.to_string(),
                    })?;
                }
                Ok::<_, git::Error>(not_regular)
            })
            .await;
            match written {
                Ok(Ok(problems)) => {
                    if !problems.is_empty() {
                        dir = staging;
                    }
                    not_regular = problems;
                }
                Ok(Err(e)) => {
                    error!(commit = %commit, error = %e, "cannot read the commit");
                    self.event(Reason::FetchFailed, || {
                        format!(
                            "cannot read commit {}: {e}; {}",
                            short(&commit),
                            self.last_applied()
                        )
                    });
                    return;
                }
                Err(e) => {
                    error!(commit = %commit, error = %e, "checkout panicked");
                    return;
                }
            }
        }
        let Some((settings, desired)) = self.load(&commit, &dir, live, not_regular) else {
            self.refused = Some(commit);
            let _ = std::fs::remove_dir_all(&dir);
            return;
        };
        let span = info_span!("apply", commit = %commit);
        if self
            .apply(&settings, &desired, &commit, Trigger::Fetch)
            .instrument(span)
            .await
        {
            self.refused = None;
            if let Some(old) = self.applied.replace(Applied { commit, dir }) {
                let _ = std::fs::remove_dir_all(old.dir);
            }
        }
    }

    /// Applies the last applied commit again: for drift, or for a changed set of namespaces.
    async fn reapply(&mut self, trigger: Trigger, live: Option<&BTreeSet<String>>) {
        let Some(applied) = &self.applied else {
            return;
        };
        let (commit, dir) = (applied.commit.clone(), applied.dir.clone());
        let Some((settings, desired)) = self.load(&commit, &dir, live, Vec::new()) else {
            return;
        };
        let span = info_span!("apply", commit = %commit);
        self.apply(&settings, &desired, &commit, trigger)
            .instrument(span)
            .await;
    }

    /// Reads and checks a commit's files; every problem, with those found before (`found`), is
    /// logged and counted.
    fn load(
        &self,
        commit: &str,
        dir: &Path,
        live: Option<&BTreeSet<String>>,
        found: Vec<policy::Problem>,
    ) -> Option<(RepoSettings, Desired)> {
        let loaded = match policy::repo::load_for(dir, live) {
            Ok(loaded) if found.is_empty() => Ok(loaded),
            Ok(_) => Err(Vec::new()),
            Err(problems) => Err(problems),
        }
        .map_err(|mut problems| {
            problems.extend(found);
            problems.sort_by(|a, b| (&a.file, a.line).cmp(&(&b.file, b.line)));
            problems
        });
        match loaded {
            Ok(loaded) => Some(loaded),
            Err(problems) => {
                for problem in &problems {
                    self.status.refused(problem.rule);
                    error!(
                        commit = %commit,
                        file = %problem.file.display(),
                        line = problem.line,
                        rule = problem.rule.name(),
                        "{}",
                        problem.message
                    );
                }
                error!(
                    commit = %commit,
                    problems = problems.len(),
                    "commit refused; nothing is applied and the last applied commit stays"
                );
                self.event(Reason::CommitRefused, || {
                    let listed: Vec<String> = problems.iter().map(ToString::to_string).collect();
                    format!(
                        "commit {} refused, nothing of it is applied ({}): {} problem(s): {}",
                        short(commit),
                        self.last_applied(),
                        problems.len(),
                        listed.join("; ")
                    )
                });
                self.status.applied(metrics::ApplyResult::Refused, None);
                None
            }
        }
    }

    /// Plans against Vault and applies; true when Vault now holds what `desired` asks for
    /// (or, for drift in report mode, when the comparison worked). Reads Vault, lets
    /// [`action`] decide, writes, then reports.
    async fn apply(
        &mut self,
        settings: &RepoSettings,
        desired: &Desired,
        commit: &str,
        trigger: Trigger,
    ) -> bool {
        let client = match self.client().await {
            Ok(client) => client,
            Err(e) => {
                error!(error = %e, "cannot log in to Vault; retrying at the next interval");
                self.status.applied(metrics::ApplyResult::Error, None);
                self.event(Reason::ApplyFailed, || {
                    format!("cannot log in to Vault: {e}; retrying at the next interval")
                });
                return false;
            }
        };
        let actual = match apply::read_actual(&client, settings).await {
            Ok(actual) => actual,
            Err(e) => return self.failed(&e),
        };
        let plan = policy::plan::plan(desired, &actual);
        match action(trigger, self.drift_mode, &plan) {
            Action::Verified => {
                self.status.verified();
                return true;
            }
            Action::ReportDrift => {
                self.drifted(&plan);
                self.event(Reason::DriftFound, || drift_found_note(commit, &plan));
                return true;
            }
            Action::CorrectDrift => self.drifted(&plan),
            Action::Apply => {}
        }
        match apply::apply(&client, settings, desired, &actual, &plan, Some(commit)).await {
            Ok(()) => {
                let counts = counts(&plan);
                self.status
                    .applied(metrics::ApplyResult::Ok, Some((commit, counts)));
                info!(
                    created = counts.0,
                    updated = counts.1,
                    deleted = counts.2,
                    reason = trigger.label(),
                    "applied"
                );
                if let Some((reason, note)) = applied_note(trigger, commit, &plan) {
                    self.event(reason, || note);
                }
                true
            }
            Err(policy::Error::TooManyDeletions { deletions, max }) => {
                self.status.applied(metrics::ApplyResult::Refused, None);
                error!(
                    deletions,
                    max, "the plan deletes more than max_deletions allows; nothing is applied"
                );
                self.event(Reason::TooManyDeletions, || {
                    format!(
                        "commit {} would delete {deletions} objects, more than max_deletions ({max}) allows; nothing is applied: raise max_deletions in the repository's settings, or restore the objects",
                        short(commit)
                    )
                });
                false
            }
            Err(e) => self.failed(&e),
        }
    }

    /// Counts and logs drift: each object in Vault that differs from the repository.
    fn drifted(&self, plan: &Plan) {
        self.status.drift(plan.changes.len());
        for change in &plan.changes {
            let (what, kind, name) = describe(change);
            warn!(object = %name, kind, change = what, "drift: Vault differs from the repository");
        }
    }

    fn failed(&mut self, e: &policy::Error) -> bool {
        if let policy::Error::Vault(vault::Error::PermissionDenied { .. }) = e {
            // The token may be gone: log in again next time.
            self.session = None;
        }
        self.status.applied(metrics::ApplyResult::Error, None);
        error!(error = %e, "apply failed; retrying at the next interval");
        self.event(Reason::ApplyFailed, || {
            format!("apply failed: {e}; retrying at the next interval")
        });
        false
    }

    /// Publishes an Event when Events are on; `note` is only made then.
    fn event(&self, reason: Reason, note: impl FnOnce() -> String) {
        if let Some(events) = &self.events {
            events.publish(reason, &note());
        }
    }

    /// What stays in Vault, for a note.
    fn last_applied(&self) -> String {
        match &self.applied {
            Some(applied) => format!("commit {} stays applied", short(&applied.commit)),
            None => "no commit is applied yet".to_owned(),
        }
    }

    /// The logged-in client, logging in again when two thirds of the token's life are gone.
    async fn client(&mut self) -> Result<Arc<Client>, vault::Error> {
        if let Some(session) = &self.session
            && session.renew_after.is_none_or(|at| Instant::now() < at)
        {
            return Ok(session.client.clone());
        }
        let (client, ttl) = self.vault.session().await?;
        let client = Arc::new(client);
        let renew_after = (!ttl.is_zero()).then(|| Instant::now() + ttl * 2 / 3);
        self.session = Some(Session {
            client: client.clone(),
            renew_after,
        });
        Ok(client)
    }
}

/// What a cycle does once it has compared Vault with the commit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Action {
    /// The drift check found Vault as the commit says: nothing to do.
    Verified,
    /// Drift in report mode: report it, change nothing.
    ReportDrift,
    /// Drift in correct mode: report it, then apply.
    CorrectDrift,
    /// A fetched commit or a change of namespaces: apply.
    Apply,
}

/// What a cycle started by `trigger` does with `plan`.
fn action(trigger: Trigger, drift_mode: DriftMode, plan: &Plan) -> Action {
    match trigger {
        Trigger::Drift if plan.changes.is_empty() => Action::Verified,
        Trigger::Drift if drift_mode == DriftMode::Report => Action::ReportDrift,
        Trigger::Drift => Action::CorrectDrift,
        Trigger::Fetch | Trigger::Namespaces => Action::Apply,
    }
}

/// The Event for drift that `--drift-mode report` leaves.
fn drift_found_note(commit: &str, plan: &Plan) -> String {
    format!(
        "{} object(s) in Vault differ from commit {}: {}; --drift-mode report leaves them",
        plan.changes.len(),
        short(commit),
        listed(plan)
    )
}

/// The Event for a plan applied, if the trigger calls for one: a change of namespaces that
/// changed nothing is not news.
fn applied_note(trigger: Trigger, commit: &str, plan: &Plan) -> Option<(Reason, String)> {
    let (created, updated, deleted) = counts(plan);
    match trigger {
        Trigger::Fetch => Some((
            Reason::Applied,
            format!(
                "commit {} applied: {created} created, {updated} updated, {deleted} deleted",
                short(commit)
            ),
        )),
        Trigger::Namespaces if plan.changes.is_empty() => None,
        Trigger::Namespaces => Some((
            Reason::Applied,
            format!(
                "commit {} applied again for a change of namespaces: {created} created, {updated} updated, {deleted} deleted",
                short(commit)
            ),
        )),
        Trigger::Drift => Some((
            Reason::DriftCorrected,
            format!(
                "{} object(s) in Vault differed from commit {} and were put back: {}",
                plan.changes.len(),
                short(commit),
                listed(plan)
            ),
        )),
    }
}

/// When a fetch asked for by `POST /sync` at `now` runs: at once, unless the last fetch started
/// less than `interval` ago, then `interval` after it.
fn sync_at(last_fetch: Option<Instant>, now: Instant, interval: Duration) -> Instant {
    last_fetch.map_or(now, |last| (last + interval).max(now))
}

/// A commit's short name, as `git log --oneline` shows it.
fn short(commit: &str) -> &str {
    &commit[..commit.len().min(12)]
}

/// The changed objects, as `kind name (missing|changed|unexpected)`, for a note.
fn listed(plan: &Plan) -> String {
    let names: Vec<String> = plan
        .changes
        .iter()
        .map(|change| {
            let (what, kind, name) = describe(change);
            format!("{kind} {name} ({what})")
        })
        .collect();
    names.join(", ")
}

/// Created, updated, deleted.
fn counts(plan: &Plan) -> (u64, u64, u64) {
    let mut counts = (0, 0, 0);
    for change in &plan.changes {
        match change {
            Change::Create(..) => counts.0 += 1,
            Change::Update(..) => counts.1 += 1,
            Change::Delete(..) => counts.2 += 1,
        }
    }
    counts
}

fn describe(change: &Change) -> (&'static str, &'static str, &str) {
    match change {
        Change::Create(kind, name) => ("missing", kind.name(), name),
        Change::Update(kind, name, _) => ("changed", kind.name(), name),
        Change::Delete(kind, name) => ("unexpected", kind.name(), name),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::time::Instant;

    use super::{
        Action, DriftMode, Reason, Trigger, action, applied_note, password_in_url, sync_at,
    };
    use crate::policy::plan::{Change, Kind, Plan};

    fn plan(changes: Vec<Change>) -> Plan {
        Plan {
            changes,
            owned: Default::default(),
        }
    }

    /// Only the drift check may leave Vault as it is; report mode never writes.
    #[test]
    fn a_cycle_applies_unless_the_drift_check_finds_nothing_or_only_reports() {
        let same = plan(Vec::new());
        let drifted = plan(vec![Change::Delete(Kind::Role, "t-a-app".into())]);
        let table = [
            (Trigger::Drift, DriftMode::Correct, &same, Action::Verified),
            (Trigger::Drift, DriftMode::Report, &same, Action::Verified),
            (
                Trigger::Drift,
                DriftMode::Report,
                &drifted,
                Action::ReportDrift,
            ),
            (
                Trigger::Drift,
                DriftMode::Correct,
                &drifted,
                Action::CorrectDrift,
            ),
            (Trigger::Fetch, DriftMode::Report, &same, Action::Apply),
            (
                Trigger::Namespaces,
                DriftMode::Report,
                &drifted,
                Action::Apply,
            ),
        ];
        for (trigger, mode, plan, want) in table {
            assert_eq!(action(trigger, mode, plan), want, "{trigger:?} {mode:?}");
        }
    }

    #[test]
    fn an_applied_plan_is_an_event_unless_namespaces_changed_nothing() {
        let commit = "0123456789abcdef";
        let changed = plan(vec![
            Change::Create(Kind::Policy, "t-a-read".into()),
            Change::Delete(Kind::Role, "t-a-app".into()),
        ]);
        assert_eq!(
            applied_note(Trigger::Fetch, commit, &changed),
            Some((
                Reason::Applied,
                "commit 0123456789ab applied: 1 created, 0 updated, 1 deleted".to_owned()
            ))
        );
        assert_eq!(
            applied_note(Trigger::Drift, commit, &changed),
            Some((
                Reason::DriftCorrected,
                "2 object(s) in Vault differed from commit 0123456789ab and were put back: policy t-a-read (missing), role t-a-app (unexpected)".to_owned()
            ))
        );
        assert_eq!(
            applied_note(Trigger::Namespaces, commit, &plan(Vec::new())),
            None
        );
        assert!(applied_note(Trigger::Namespaces, commit, &changed).is_some());
    }

    #[test]
    fn a_sync_fetches_at_once_unless_the_last_fetch_is_too_recent() {
        // Far enough from the clock's start that subtracting a minute cannot underflow.
        let now = Instant::now() + Duration::from_secs(3600);
        let five = Duration::from_secs(5);
        let table = [
            (None, now),
            (Some(now - Duration::from_secs(60)), now),
            (Some(now - five), now),
            (
                Some(now - Duration::from_secs(2)),
                now + Duration::from_secs(3),
            ),
            (Some(now), now + five),
        ];
        for (last, want) in table {
            assert_eq!(sync_at(last, now, five), want, "last fetch {last:?}");
        }
        assert_eq!(sync_at(Some(now), now, Duration::ZERO), now, "no interval");
    }

    #[test]
    fn a_password_in_the_url_is_found_and_a_user_name_alone_is_not() {
        assert!(password_in_url(
            "https://bot:s3cret@git.example.com/policy.git"
        ));
        assert!(!password_in_url("https://bot@git.example.com/policy.git"));
        assert!(!password_in_url("https://git.example.com/a:b@c"));
        assert!(!password_in_url("file:///srv/policy.git"));
        assert!(!password_in_url("git://127.0.0.1:9418/policy.git"));
    }
}
