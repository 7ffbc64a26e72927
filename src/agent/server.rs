//! The sidecar's endpoints: on 127.0.0.1, `/healthz`, `/readyz` (ready once every file was
//! rendered, and never back), `/metrics`, and `POST /quit` (also at vault-k8s's
//! `/agent/v1/quit`) for Jobs: the app asks the agent to stop when it is done; on the pod's
//! addresses, when asked, the metrics port: the same reads, and never `/quit`.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
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

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RenewalLabel {
    kind: &'static str,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TemplateLabel {
    template: String,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutputLabel {
    template: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PathLabel {
    path: String,
}

/// What the sidecar shares with its endpoints: readiness, the quit request, metrics.
pub struct SidecarStatus {
    ready: AtomicBool,
    quit: tokio::sync::Notify,
    registry: Registry,
    logins: Family<ResultLabel, Counter>,
    renewals: Family<RenewalLabel, Counter>,
    renders: Family<TemplateLabel, Counter>,
    commands: Family<TemplateLabel, Counter>,
    missing_keys: Family<OutputLabel, Counter>,
    snapshots: Family<ResultLabel, Counter>,
    fetch_failures: Family<ReasonLabel, Counter>,
    tokens_lost: Counter,
    last_render: Family<OutputLabel, Gauge>,
    token_expiry: Gauge<f64, std::sync::atomic::AtomicU64>,
    lease_expiry: Family<PathLabel, Gauge<f64, std::sync::atomic::AtomicU64>>,
    expiries: Mutex<Expiries>,
}

/// When the token and each lease expire, for the gauges (computed when scraped).
#[derive(Debug, Default)]
pub struct Expiries {
    /// The token's end; `None` when it does not expire or there is none.
    pub token: Option<Instant>,
    /// Each lease's end, by Vault path.
    pub leases: BTreeMap<String, Instant>,
}

impl std::fmt::Debug for SidecarStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SidecarStatus")
            .field("ready", &self.ready)
            .finish_non_exhaustive()
    }
}

impl Default for SidecarStatus {
    fn default() -> SidecarStatus {
        SidecarStatus::new()
    }
}

impl SidecarStatus {
    /// Everything at zero, not ready.
    pub fn new() -> SidecarStatus {
        let mut root = crate::metrics::registry();
        let registry = root.sub_registry_with_prefix("hydrant_agent");
        let logins = Family::<ResultLabel, Counter>::default();
        let renewals = Family::<RenewalLabel, Counter>::default();
        let renders = Family::<TemplateLabel, Counter>::default();
        let commands = Family::<TemplateLabel, Counter>::default();
        let missing_keys = Family::<OutputLabel, Counter>::default();
        let snapshots = Family::<ResultLabel, Counter>::default();
        let fetch_failures = Family::<ReasonLabel, Counter>::default();
        let tokens_lost = Counter::default();
        let last_render = Family::<OutputLabel, Gauge>::default();
        let token_expiry = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
        let lease_expiry = Family::<PathLabel, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
        registry.register("logins", "Logins to Vault, by result", logins.clone());
        registry.register(
            "renewals",
            "Renewals of the token and of leases, by result",
            renewals.clone(),
        );
        registry.register(
            "renders",
            "Renders of each file, by result",
            renders.clone(),
        );
        registry.register(
            "commands",
            "Change commands run, by file and result",
            commands.clone(),
        );
        registry.register(
            "missing_keys",
            "Renders of a consul-template template that looked up a key that does not exist and rendered <no value> (as Vault Agent does), by file",
            missing_keys.clone(),
        );
        registry.register(
            "snapshots",
            "Config snapshots composed after a change of their inputs, by result (error: invalid, the files keep the last good one)",
            snapshots.clone(),
        );
        registry.register(
            "fetch_failures",
            "Failed fetches from Vault, by reason (permission_denied, not_found, unreachable, ...); the files keep what they have",
            fetch_failures.clone(),
        );
        registry.register(
            "tokens_lost",
            "Times Vault no longer knew the agent's token (revoked, or Vault lost its data) and the agent logged in again",
            tokens_lost.clone(),
        );
        registry.register(
            "last_render_timestamp_seconds",
            "Unix time of each file's last successful render (written or found unchanged)",
            last_render.clone(),
        );
        registry.register(
            "token_expiry_timestamp_seconds",
            "Unix time at which the token expires (0: it does not, or there is none)",
            token_expiry.clone(),
        );
        registry.register(
            "lease_expiry_timestamp_seconds",
            "Unix time at which each lease expires, by Vault path",
            lease_expiry.clone(),
        );
        for result in ["ok", "error"] {
            drop(logins.get_or_create(&ResultLabel { result }));
            for kind in ["token", "lease"] {
                drop(renewals.get_or_create(&RenewalLabel { kind, result }));
            }
        }
        // Every reason a fetch can fail for, from the one list `vault::Error::kind` gives.
        for kind in crate::vault::ErrorKind::ALL {
            drop(fetch_failures.get_or_create(&ReasonLabel {
                reason: kind.label(),
            }));
        }
        SidecarStatus {
            ready: AtomicBool::new(false),
            quit: tokio::sync::Notify::new(),
            registry: root,
            logins,
            renewals,
            renders,
            commands,
            missing_keys,
            snapshots,
            fetch_failures,
            tokens_lost,
            last_render,
            token_expiry,
            lease_expiry,
            expiries: Mutex::new(Expiries::default()),
        }
    }

    /// Puts each file's render counts at zero, so that a failing file shows before it has ever
    /// been rendered.
    pub fn expect_templates<'a>(&self, names: impl IntoIterator<Item = &'a str>) {
        for template in names {
            for result in ["ok", "error"] {
                drop(self.renders.get_or_create(&TemplateLabel {
                    template: template.to_owned(),
                    result,
                }));
            }
        }
    }

    /// Marks the agent ready; it never becomes unready again.
    pub fn set_ready(&self) {
        self.ready.store(true, Ordering::SeqCst);
    }

    /// Whether every file was rendered once.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }

    /// Resolves when `POST /quit` is called.
    pub async fn quit_requested(&self) {
        self.quit.notified().await;
    }

    /// Counts a login.
    pub fn login(&self, ok: bool) {
        self.logins
            .get_or_create(&ResultLabel {
                result: outcome(ok),
            })
            .inc();
    }

    /// Counts a renewal of the token (`kind` "token") or a lease ("lease").
    pub fn renewal(&self, kind: &'static str, ok: bool) {
        self.renewals
            .get_or_create(&RenewalLabel {
                kind,
                result: outcome(ok),
            })
            .inc();
    }

    /// Counts a render of a file.
    pub fn render(&self, template: &str, ok: bool) {
        self.renders
            .get_or_create(&TemplateLabel {
                template: template.to_owned(),
                result: outcome(ok),
            })
            .inc();
    }

    /// Counts a change command.
    pub fn command(&self, template: &str, ok: bool) {
        self.commands
            .get_or_create(&TemplateLabel {
                template: template.to_owned(),
                result: outcome(ok),
            })
            .inc();
    }

    /// Counts a render that met a missing key.
    pub fn missing_key(&self, template: &str) {
        self.missing_keys
            .get_or_create(&OutputLabel {
                template: template.to_owned(),
            })
            .inc();
    }

    /// Counts a config snapshot composed.
    pub fn snapshot(&self, ok: bool) {
        self.snapshots
            .get_or_create(&ResultLabel {
                result: outcome(ok),
            })
            .inc();
    }

    /// Counts a failed fetch by its fixed reason label.
    pub fn fetch_failed(&self, reason: &'static str) {
        self.fetch_failures
            .get_or_create(&ReasonLabel { reason })
            .inc();
    }

    /// Counts a token found gone.
    pub fn token_lost(&self) {
        self.tokens_lost.inc();
    }

    /// Records a file's successful render at `at`.
    pub fn rendered_at(&self, template: &str, at: std::time::SystemTime) {
        let unix = at
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        self.last_render
            .get_or_create(&OutputLabel {
                template: template.to_owned(),
            })
            .set(unix);
    }

    /// Replaces what the expiry gauges report.
    pub fn set_expiries(&self, expiries: Expiries) {
        *self.expiries.lock().unwrap_or_else(|p| p.into_inner()) = expiries;
    }

    fn update_expiries(&self) {
        let expiries = self.expiries.lock().unwrap_or_else(|p| p.into_inner());
        let unix = crate::metrics::unix_seconds;
        self.token_expiry.set(expiries.token.map_or(0.0, unix));
        self.lease_expiry.clear();
        for (path, at) in &expiries.leases {
            self.lease_expiry
                .get_or_create(&PathLabel { path: path.clone() })
                .set(unix(*at));
        }
    }
}

fn outcome(ok: bool) -> &'static str {
    if ok { "ok" } else { "error" }
}

/// Serves every endpoint, `/quit` included, on 127.0.0.1:`port` until the process ends: only
/// the pod's own containers reach it.
pub async fn serve(port: u16, status: Arc<SidecarStatus>) -> std::io::Result<SocketAddr> {
    let listener =
        tokio::net::TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port))).await?;
    let app = read_only()
        .route("/quit", post(quit))
        .route("/agent/v1/quit", post(quit))
        .with_state(status);
    spawn(listener, app, "the local endpoints")
}

/// Serves the read-only endpoints (`/metrics`, `/healthz`, `/readyz`) on every address of the pod
/// at `port` until the process ends, for Prometheus to scrape from outside the pod. Nothing there
/// changes the agent: `/quit` stays on 127.0.0.1 ([`serve`]), where only the pod reaches it.
pub async fn serve_metrics(port: u16, status: Arc<SidecarStatus>) -> std::io::Result<SocketAddr> {
    // IPv6's any address also takes IPv4 on Linux (dual-stack and IPv6-only clusters); a pod
    // without IPv6 gets IPv4's.
    let listener = match tokio::net::TcpListener::bind((Ipv6Addr::UNSPECIFIED, port)).await {
        Ok(listener) => listener,
        Err(_) => tokio::net::TcpListener::bind((Ipv4Addr::UNSPECIFIED, port)).await?,
    };
    spawn(listener, read_only().with_state(status), "the metrics port")
}

/// The endpoints that only read the agent's state.
fn read_only() -> Router<Arc<SidecarStatus>> {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
}

fn spawn(
    listener: tokio::net::TcpListener,
    app: Router,
    what: &'static str,
) -> std::io::Result<SocketAddr> {
    let local = listener.local_addr()?;
    tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, app).await {
            tracing::warn!(%error, "{what} stopped");
        }
    });
    Ok(local)
}

async fn readyz(State(status): State<Arc<SidecarStatus>>) -> Response {
    if status.is_ready() {
        "ready".into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not every file is rendered yet\n",
        )
            .into_response()
    }
}

async fn metrics(State(status): State<Arc<SidecarStatus>>, headers: HeaderMap) -> Response {
    status.update_expiries();
    crate::metrics::respond(&headers, &status.registry)
}

async fn quit(State(status): State<Arc<SidecarStatus>>) -> &'static str {
    status.quit.notify_one();
    "stopping\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fetch-failure series at start are exactly one per kind `vault::Error::kind` can give,
    /// at zero: a new kind of Vault failure shows before it first happens.
    #[test]
    fn every_vault_error_kind_has_a_fetch_failure_series_at_zero() {
        let status = SidecarStatus::new();
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &status.registry).expect("encode");
        let mut present: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("hydrant_agent_fetch_failures_total{reason=\""))
            .map(|l| {
                l.strip_suffix("\"} 0")
                    .unwrap_or_else(|| panic!("not at zero: {l}"))
            })
            .collect();
        let mut kinds: Vec<&str> = crate::vault::ErrorKind::ALL
            .iter()
            .map(|k| k.label())
            .collect();
        present.sort_unstable();
        kinds.sort_unstable();
        assert_eq!(present, kinds);
    }
}
