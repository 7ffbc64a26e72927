//! `hydrant webhook`: the mutating admission webhook over HTTPS. The handler only decodes and
//! encodes; `injector::mutate` decides.

pub mod certs;
mod metrics;
pub mod review;
pub mod tls;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use injector::Settings;
use notify::Watcher as _;
use tokio::net::TcpListener;
use tracing::{debug, info, warn};

pub use self::metrics::Metrics;

/// How long a client may take to finish its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long open connections may take to finish after SIGTERM.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// How often the certificate files are read again even without a file event.
const RELOAD_INTERVAL: Duration = Duration::from_secs(60);

/// How long to let a burst of file events settle before reloading.
const RELOAD_SETTLE: Duration = Duration::from_millis(200);

/// Why the webhook could not serve.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The certificate or key cannot be used.
    #[error("TLS: {0}")]
    Tls(#[from] tls::Error),
    /// The TLS configuration cannot be built.
    #[error("TLS configuration: {0}")]
    TlsConfig(#[from] rustls::Error),
    /// The address cannot be listened on.
    #[error("cannot listen on {addr}: {error}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// The I/O error.
        error: std::io::Error,
    },
    /// The certificate files cannot be watched.
    #[error("cannot watch the certificate files: {0}")]
    Watch(#[from] notify::Error),
    /// The runtime cannot start.
    #[error("cannot start: {0}")]
    Runtime(std::io::Error),
    /// Self-managed certificates need the Kubernetes API.
    #[error(
        "no Kubernetes API for --self-managed-certificates: {0}; run in a pod with a service account, or set KUBECONFIG"
    )]
    Kubernetes(String),
}

/// Certificates the webhook makes and renews itself, one replica writing.
#[derive(Debug)]
pub struct SelfManaged {
    /// The Secret, webhook configuration, Service and lifetimes.
    pub certificates: certs::Settings,
    /// The Lease that chooses the replica that writes.
    pub election: crate::lease::Params,
}

/// What `hydrant webhook` was asked to do.
#[derive(Debug)]
pub struct Options {
    /// Where to listen.
    pub listen: SocketAddr,
    /// The serving certificate chain.
    pub tls_cert: PathBuf,
    /// Its key.
    pub tls_key: PathBuf,
    /// The longest time one review may take.
    pub request_timeout: Duration,
    /// The largest body accepted.
    pub max_body_bytes: usize,
    /// What the injector decides for every pod.
    pub settings: Settings,
    /// Make and renew the certificate (written to `tls_cert` and `tls_key`) instead of reading it.
    pub self_managed: Option<SelfManaged>,
}

struct Shared {
    settings: Settings,
    metrics: Metrics,
}

/// Runs the webhook until SIGTERM or SIGINT.
pub fn run(options: Options) -> Result<(), Error> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(Error::Runtime)?;
    runtime.block_on(async move {
        let listener = TcpListener::bind(options.listen)
            .await
            .map_err(|error| Error::Listen {
                addr: options.listen,
                error,
            })?;
        if let Some(self_managed) = &options.self_managed {
            let client = kube::Client::try_default()
                .await
                .map_err(|e| Error::Kubernetes(e.to_string()))?;
            let (leading_tx, leading) = tokio::sync::watch::channel(false);
            let leases =
                kube::Api::namespaced(client.clone(), &self_managed.certificates.namespace);
            tokio::spawn(crate::lease::run(
                leases,
                self_managed.election.clone(),
                leading_tx,
                crate::shutdown_signal(),
            ));
            let (ready_tx, mut ready) = tokio::sync::watch::channel(false);
            tokio::spawn(certs::run(
                client,
                self_managed.certificates.clone(),
                leading,
                options.tls_cert.clone(),
                options.tls_key.clone(),
                ready_tx,
            ));
            info!(secret = %self_managed.certificates.secret, "waiting for the certificate");
            tokio::select! {
                _ = ready.wait_for(|r| *r) => {}
                () = crate::shutdown_signal() => return Ok(()),
            }
        }
        serve(listener, options, crate::shutdown_signal()).await
    })
}

/// Serves on `listener` until `shutdown` resolves, then lets open connections finish.
pub async fn serve(
    listener: TcpListener,
    options: Options,
    shutdown: impl Future<Output = ()>,
) -> Result<(), Error> {
    let resolver = Arc::new(tls::Reloading::new(&options.tls_cert, &options.tls_key)?);
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls::server_config(resolver.clone())?));
    let shared = Arc::new(Shared {
        settings: options.settings,
        metrics: Metrics::new(),
    });
    let _watcher = watch_certificates(resolver, shared.clone())?;
    let app = router(shared, options.request_timeout, options.max_body_bytes);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let local = listener.local_addr().ok();
    info!(listen = ?local, "webhook serving");
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let service = TowerToHyperService::new(app.clone());
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(error)) => {
                    debug!(%error, %peer, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    debug!(%peer, "TLS handshake timed out");
                    return;
                }
            };
            let builder = auto::Builder::new(TokioExecutor::new());
            let connection = builder
                .serve_connection(TokioIo::new(tls), service)
                .into_owned();
            if let Err(error) = watcher.watch(connection).await {
                debug!(%error, %peer, "connection ended with an error");
            }
        });
    }
    info!("shutting down: letting open connections finish");
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        warn!("connections still open after the drain timeout; closing them");
    }
    Ok(())
}

/// The routes, with the body limit and the per-request timeout.
fn router(shared: Arc<Shared>, timeout: Duration, max_body: usize) -> Router {
    Router::new()
        .route("/mutate", post(mutate))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(|| async { "ok" }))
        .route("/metrics", get(metrics))
        .layer(DefaultBodyLimit::max(max_body))
        .layer(middleware::from_fn(move |req: Request, next: Next| {
            deadline(timeout, req, next)
        }))
        .with_state(shared)
}

async fn deadline(timeout: Duration, req: Request, next: Next) -> Response {
    match tokio::time::timeout(timeout, next.run(req)).await {
        Ok(response) => response,
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "the review took too long\n",
        )
            .into_response(),
    }
}

async fn mutate(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let started = Instant::now();
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !json {
        shared.metrics.invalid();
        return (
            StatusCode::BAD_REQUEST,
            "content-type must be application/json\n",
        )
            .into_response();
    }
    match review::review(&body, &shared.settings) {
        Ok(answer) => {
            shared
                .metrics
                .answered(&answer.outcome, started.elapsed().as_secs_f64());
            match &answer.outcome {
                review::Outcome::Denied(reason) => info!(
                    pod = %answer.pod,
                    reason,
                    message = answer.message.as_deref().unwrap_or_default(),
                    "injection denied"
                ),
                review::Outcome::Patched => debug!(pod = %answer.pod, "injected"),
                review::Outcome::Allowed => {}
            }
            axum::Json(answer.body).into_response()
        }
        Err(bad) => {
            shared.metrics.invalid();
            debug!(reason = %bad, "not an admission review");
            (StatusCode::BAD_REQUEST, format!("{bad}\n")).into_response()
        }
    }
}

async fn metrics(State(shared): State<Arc<Shared>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        shared.metrics.encode(),
    )
        .into_response()
}

/// Reloads the certificate when its directory changes, and every minute in case an event was
/// missed. Events are coalesced: a burst of them (a Secret volume swaps several links) causes
/// one reload, and reloads happen at most every [`RELOAD_SETTLE`].
fn watch_certificates(
    resolver: Arc<tls::Reloading>,
    shared: Arc<Shared>,
) -> Result<notify::RecommendedWatcher, Error> {
    let changed = Arc::new(tokio::sync::Notify::new());
    let on_event = changed.clone();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        // Reading the files raises access events in the same directory: reacting to those
        // would reload in a loop.
        if let Ok(event) = event
            && !matches!(event.kind, notify::EventKind::Access(_))
        {
            on_event.notify_one();
        }
    })?;
    for dir in resolver.watched_dirs() {
        watcher.watch(&dir, notify::RecursiveMode::NonRecursive)?;
    }
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(RELOAD_INTERVAL);
        tick.tick().await;
        loop {
            tokio::select! {
                () = changed.notified() => tokio::time::sleep(RELOAD_SETTLE).await,
                _ = tick.tick() => {}
            }
            shared.metrics.certificate_read();
            match resolver.reload() {
                Ok(true) => info!("serving certificate reloaded"),
                Ok(false) => {}
                Err(error) => {
                    warn!(%error, "cannot reload the serving certificate; keeping the current one")
                }
            }
        }
    });
    Ok(watcher)
}
