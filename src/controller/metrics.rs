//! The controller's endpoints: `/healthz`, `/readyz` (ready once the leader applied a commit, or
//! at once for a replica standing by), `/metrics` (prefix `hydrant_controller_`) and
//! `POST /sync` (fetch now instead of at the next poll).

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::time::Instant;

use crate::policy::Guardrail;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ChangeLabel {
    change: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RuleLabel {
    rule: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CommitLabel {
    commit: String,
}

/// How an apply ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApplyResult {
    /// Vault holds what the commit asks for.
    Ok,
    /// Vault or the login failed; retried.
    Error,
    /// Refused before anything was written: a guardrail, a parse error, the deletion cap.
    Refused,
}

/// What the controller shares with its endpoints.
pub struct ControllerStatus {
    registry: Registry,
    applies: Family<ResultLabel, Counter>,
    objects: Family<ChangeLabel, Counter>,
    drift: Counter,
    refusals: Family<RuleLabel, Counter>,
    fetches: Family<ResultLabel, Counter>,
    watch_errors: Counter,
    leading: Gauge,
    last_apply: Gauge<f64, AtomicU64>,
    applied_commit: Family<CommitLabel, Gauge>,
    state: Mutex<Progress>,
    sync: tokio::sync::Notify,
}

/// The last successful apply, its commit, and whether this replica leads.
#[derive(Debug, Default)]
struct Progress {
    last_success: Option<Instant>,
    commit: Option<String>,
    leading: bool,
}

impl std::fmt::Debug for ControllerStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControllerStatus").finish_non_exhaustive()
    }
}

impl Default for ControllerStatus {
    fn default() -> ControllerStatus {
        ControllerStatus::new()
    }
}

impl ControllerStatus {
    /// Everything at zero, not ready.
    pub fn new() -> ControllerStatus {
        let mut root = crate::metrics::registry();
        let registry = root.sub_registry_with_prefix("hydrant_controller");
        let applies = Family::<ResultLabel, Counter>::default();
        let objects = Family::<ChangeLabel, Counter>::default();
        let drift = Counter::default();
        let refusals = Family::<RuleLabel, Counter>::default();
        let fetches = Family::<ResultLabel, Counter>::default();
        let watch_errors = Counter::default();
        let leading = Gauge::default();
        let last_apply = Gauge::<f64, AtomicU64>::default();
        let applied_commit = Family::<CommitLabel, Gauge>::default();
        registry.register(
            "applies",
            "Applies of the repository to Vault, by result (ok, error, refused)",
            applies.clone(),
        );
        registry.register(
            "objects",
            "Policies and roles written or deleted, by change (created, updated, deleted)",
            objects.clone(),
        );
        registry.register(
            "drift_objects",
            "Objects found differing from the repository on the drift interval",
            drift.clone(),
        );
        registry.register(
            "guardrail_refusals",
            "Problems that made a commit be refused, by rule",
            refusals.clone(),
        );
        registry.register(
            "fetches",
            "Fetches of the git remote, by result",
            fetches.clone(),
        );
        registry.register(
            "namespace_watch_errors",
            "Failures of the Namespace watch (retried with backoff)",
            watch_errors.clone(),
        );
        registry.register(
            "leading",
            "1 while this replica holds the Lease (or runs without election)",
            leading.clone(),
        );
        registry.register(
            "last_successful_apply_timestamp_seconds",
            "Unix time at which Vault was last found holding what the repository asks for (0 before the first apply)",
            last_apply.clone(),
        );
        registry.register(
            "applied_commit",
            "The commit last applied, as a label; the value is 1",
            applied_commit.clone(),
        );
        for result in ["ok", "error", "refused"] {
            drop(applies.get_or_create(&ResultLabel { result }));
        }
        for result in ["ok", "error"] {
            drop(fetches.get_or_create(&ResultLabel { result }));
        }
        for change in ["created", "updated", "deleted"] {
            drop(objects.get_or_create(&ChangeLabel { change }));
        }
        // The rules are a fixed set: each series is there before the first refusal.
        for rule in Guardrail::ALL {
            drop(refusals.get_or_create(&RuleLabel { rule: rule.name() }));
        }
        ControllerStatus {
            registry: root,
            applies,
            objects,
            drift,
            refusals,
            fetches,
            watch_errors,
            leading,
            last_apply,
            applied_commit,
            state: Mutex::new(Progress::default()),
            sync: tokio::sync::Notify::new(),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, Progress> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Resolves when `POST /sync` is called (several calls while nobody waits make one).
    pub async fn sync_requested(&self) {
        self.sync.notified().await;
    }

    /// Whether this replica leads.
    pub fn set_leading(&self, leading: bool) {
        self.leading.set(i64::from(leading));
        self.state().leading = leading;
    }

    /// Counts a fetch.
    pub fn fetched(&self, ok: bool) {
        self.fetches
            .get_or_create(&ResultLabel {
                result: if ok { "ok" } else { "error" },
            })
            .inc();
    }

    /// Counts a Namespace watch failure.
    pub fn watch_error(&self) {
        self.watch_errors.inc();
    }

    /// Counts a problem that refused a commit.
    pub fn refused(&self, rule: Guardrail) {
        self.refusals
            .get_or_create(&RuleLabel { rule: rule.name() })
            .inc();
    }

    /// Counts drifted objects.
    pub fn drift(&self, objects: usize) {
        self.drift.inc_by(objects as u64);
    }

    /// Counts an apply; a successful one gives its commit and (created, updated, deleted).
    pub fn applied(&self, result: ApplyResult, success: Option<(&str, (u64, u64, u64))>) {
        let label = match result {
            ApplyResult::Ok => "ok",
            ApplyResult::Error => "error",
            ApplyResult::Refused => "refused",
        };
        self.applies
            .get_or_create(&ResultLabel { result: label })
            .inc();
        if let Some((commit, (created, updated, deleted))) = success {
            for (change, n) in [
                ("created", created),
                ("updated", updated),
                ("deleted", deleted),
            ] {
                self.objects
                    .get_or_create(&ChangeLabel { change })
                    .inc_by(n);
            }
            let mut state = self.state();
            state.last_success = Some(Instant::now());
            if state.commit.as_deref() != Some(commit) {
                self.applied_commit.clear();
                self.applied_commit
                    .get_or_create(&CommitLabel {
                        commit: commit.to_owned(),
                    })
                    .set(1);
                state.commit = Some(commit.to_owned());
            }
        }
    }

    /// Vault was compared with the applied commit and holds what it asks for.
    pub fn verified(&self) {
        self.state().last_success = Some(Instant::now());
    }

    /// The commit last applied.
    pub fn applied_commit(&self) -> Option<String> {
        self.state().commit.clone()
    }

    fn ready(&self) -> Result<String, &'static str> {
        let state = self.state();
        match (&state.commit, state.leading) {
            (Some(commit), _) => Ok(format!("ready: applied {commit}\n")),
            (None, false) => Ok("ready: standing by for the lease\n".to_owned()),
            (None, true) => Err("no commit applied yet\n"),
        }
    }

    fn update_last_apply(&self) {
        if let Some(at) = self.state().last_success {
            self.last_apply.set(crate::metrics::unix_seconds(at));
        }
    }
}

/// The routes.
pub fn router(status: Arc<ControllerStatus>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/sync", post(sync))
        .with_state(status)
}

async fn readyz(State(status): State<Arc<ControllerStatus>>) -> Response {
    match status.ready() {
        Ok(text) => text.into_response(),
        Err(text) => (StatusCode::SERVICE_UNAVAILABLE, text).into_response(),
    }
}

async fn metrics(State(status): State<Arc<ControllerStatus>>, headers: HeaderMap) -> Response {
    status.update_last_apply();
    crate::metrics::respond(&headers, &status.registry)
}

async fn sync(State(status): State<Arc<ControllerStatus>>) -> (StatusCode, &'static str) {
    status.sync.notify_one();
    (StatusCode::ACCEPTED, "fetching\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every rule's refusal series is there before the first refusal, at zero, so that an alert
    /// on `increase(...[1h]) > 0` sees the first one.
    #[test]
    fn every_rule_s_refusal_series_is_present_at_zero_from_the_start() {
        let status = ControllerStatus::new();
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &status.registry).expect("encode");
        for rule in Guardrail::ALL {
            let line = format!(
                "hydrant_controller_guardrail_refusals_total{{rule=\"{}\"}} 0",
                rule.name()
            );
            assert!(text.contains(&line), "{line} in:\n{text}");
        }
        status.refused(Guardrail::Layout);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &status.registry).expect("encode");
        assert!(
            text.contains("hydrant_controller_guardrail_refusals_total{rule=\"layout\"} 1"),
            "{text}"
        );
    }
}
