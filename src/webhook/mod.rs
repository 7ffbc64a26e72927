//! `hydrant webhook`: the mutating admission webhook over HTTPS. The handler only decodes and
//! encodes; `injector::mutate` decides.

mod args;
pub mod certs;
pub mod check;
mod limits;
mod metrics;
pub mod review;
pub mod tls;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::body::HttpBody as _;
use axum::extract::{DefaultBodyLimit, Request as HttpRequest, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use injector::InjectorSettings;
use notify::Watcher as _;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tracing::{debug, info, warn};

pub use self::args::Args;
pub use self::limits::Limits;
pub use self::metrics::Metrics;

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
    Tls(tls::Error),
    /// The TLS configuration cannot be built.
    #[error("TLS configuration: {0}")]
    TlsConfig(rustls::Error),
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
    Watch(notify::Error),
    /// The runtime cannot start.
    #[error("cannot start: {0}")]
    Runtime(std::io::Error),
    /// The limits contradict each other.
    #[error("{0}")]
    Limits(limits::Invalid),
    /// Self-managed certificates need the Kubernetes API.
    #[error(
        "no Kubernetes API for --self-managed-certificates: {0}; run in a pod with a service account, or set KUBECONFIG"
    )]
    Kubernetes(String),
}

// The causes are in the messages, not in the source chain, so that `{:#}` shows each once.
macro_rules! from_cause {
    ($($variant:ident($cause:ty)),* $(,)?) => {$(
        impl From<$cause> for Error {
            fn from(cause: $cause) -> Error {
                Error::$variant(cause)
            }
        }
    )*};
}
from_cause!(
    Tls(tls::Error),
    TlsConfig(rustls::Error),
    Watch(notify::Error),
    Limits(limits::Invalid),
);

/// Certificates the webhook makes and renews itself, one replica writing.
#[derive(Debug)]
pub struct SelfManaged {
    /// The Secret, webhook configuration, Service and lifetimes.
    pub certificates: certs::CertificateSpec,
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
    /// Connections, timeouts and the bytes held at once.
    pub limits: Limits,
    /// What the injector decides for every pod.
    pub settings: InjectorSettings,
    /// Make and renew the certificate (written to `tls_cert` and `tls_key`) instead of reading it.
    pub self_managed: Option<SelfManaged>,
    /// How images' commands are read from their registries.
    pub registry: crate::registry::RegistryArgs,
}

/// What the webhook's handlers share: the injector's settings, the metrics and the body budget.
struct WebhookState {
    settings: InjectorSettings,
    /// Images' commands, for containers that run under `hydrant exec` and set none.
    registry: crate::registry::Registry,
    metrics: Metrics,
    /// One permit per byte of request body that may be held at once.
    bodies: Arc<Semaphore>,
    max_body: usize,
}

/// `hydrant webhook`: serves as the flags say until SIGTERM or SIGINT.
pub fn command(args: Args, env: &dyn crate::env::Env) -> anyhow::Result<()> {
    run(args.options(env)?)?;
    Ok(())
}

/// Runs the webhook until SIGTERM or SIGINT.
pub fn run(options: Options) -> Result<(), Error> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(Error::Runtime)?;
    runtime.block_on(async move {
        let mut stop = Box::pin(crate::shutdown_signal());
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
                () = &mut stop => return Ok(()),
            }
        }
        serve(listener, options, stop).await
    })
}

/// Serves on `listener` until `shutdown` resolves, then lets open connections finish.
pub async fn serve(
    listener: TcpListener,
    options: Options,
    shutdown: impl Future<Output = ()>,
) -> Result<(), Error> {
    let limits = options.limits;
    let body_budget = limits.body_budget(options.max_body_bytes)?;
    let max_connections =
        limits::connection_cap(limits.max_connections, crate::process::open_files_limit());
    if max_connections < limits.max_connections {
        warn!(
            requested = limits.max_connections,
            max_connections,
            "the open files limit allows fewer connections; raise the pod's nofile limit"
        );
    }
    let resolver = Arc::new(tls::Reloading::new(&options.tls_cert, &options.tls_key)?);
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls::server_config(resolver.clone())?));
    let state = Arc::new(WebhookState {
        settings: options.settings,
        registry: crate::registry::Registry::new(&options.registry),
        metrics: Metrics::new(),
        bodies: Arc::new(Semaphore::new(body_budget as usize)),
        max_body: options.max_body_bytes,
    });
    let _watcher = watch_certificates(resolver, state.clone())?;
    let app = router(
        state.clone(),
        options.request_timeout,
        options.max_body_bytes,
    );
    let builders = Arc::new(Builders::new(&limits));
    // A permit per open connection: when none is left, nothing is accepted (the kernel's
    // backlog holds the rest), and the drain waits for every permit to come back.
    let connections = Arc::new(Semaphore::new(max_connections));
    let (draining, drain) = tokio::sync::watch::channel(false);
    let mut failed_accepts: u32 = 0;
    let local = listener
        .local_addr()
        .map_or_else(|_| String::new(), |a| a.to_string());
    info!(listen = %local, max_connections, body_budget, "webhook serving");
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = connections.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // EMFILE leaves the connection in the backlog, so accept fails again at
                    // once: back off instead of logging 20 times a second.
                    failed_accepts = failed_accepts.saturating_add(1);
                    state.metrics.accept_failed();
                    let pause = limits::accept_backoff(failed_accepts);
                    if failed_accepts == 1 {
                        warn!(%error, "accept failed; backing off until it succeeds");
                    } else {
                        let pause_ms = u64::try_from(pause.as_millis()).unwrap_or(u64::MAX);
                        debug!(%error, failed_accepts, pause_ms, "accept failed");
                    }
                    drop(permit);
                    tokio::select! {
                        () = tokio::time::sleep(pause) => {}
                        () = &mut shutdown => break,
                    }
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        if failed_accepts > 0 {
            info!(failed_accepts, "accepting connections again");
            failed_accepts = 0;
        }
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let service = TowerToHyperService::new(app.clone());
        let builders = builders.clone();
        let drain = drain.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let tls =
                match tokio::time::timeout(limits.handshake_timeout, acceptor.accept(tcp)).await {
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
            // hyper's automatic choice waits for the client's first bytes before any timeout
            // runs; ALPN has chosen already (RFC 9113: HTTP/2 over TLS is negotiated).
            let builder = if tls.get_ref().1.alpn_protocol() == Some(b"h2") {
                &builders.h2
            } else {
                &builders.h1
            };
            serve_connection(builder, tls, service, limits.idle_timeout, drain, peer).await;
        });
    }
    info!("shutting down: letting open connections finish");
    let _ = draining.send(true);
    let all = u32::try_from(max_connections).unwrap_or(u32::MAX);
    if tokio::time::timeout(DRAIN_TIMEOUT, connections.acquire_many(all))
        .await
        .is_err()
    {
        warn!("connections still open after the drain timeout; closing them");
    }
    Ok(())
}

/// HTTP/1 and HTTP/2 with every limit set: hyper's header read timeout does nothing without
/// a timer, and its HTTP/2 defaults let one connection buffer megabytes.
struct Builders {
    h1: auto::Builder<TokioExecutor>,
    h2: auto::Builder<TokioExecutor>,
}

impl Builders {
    fn new(limits: &Limits) -> Builders {
        let mut h1 = auto::Builder::new(TokioExecutor::new()).http1_only();
        h1.http1()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_read_timeout)
            .max_buf_size(limits::H1_MAX_BUF_BYTES);
        let mut h2 = auto::Builder::new(TokioExecutor::new()).http2_only();
        h2.http2()
            .timer(TokioTimer::new())
            .max_concurrent_streams(limits.max_concurrent_streams)
            .max_frame_size(limits::H2_MAX_FRAME_BYTES)
            .max_header_list_size(limits::H2_MAX_HEADER_LIST_BYTES)
            .initial_stream_window_size(limits::H2_STREAM_WINDOW_BYTES)
            .initial_connection_window_size(limits::H2_CONNECTION_WINDOW_BYTES)
            .keep_alive_interval(None);
        Builders { h1, h2 }
    }
}

/// Serves one connection until it ends, is idle for `idle_timeout` (no request in flight),
/// or the server drains; then closes it gracefully, and drops it if that takes too long.
async fn serve_connection(
    builder: &auto::Builder<TokioExecutor>,
    tls: tokio_rustls::server::TlsStream<tokio::net::TcpStream>,
    service: TowerToHyperService<Router>,
    idle_timeout: Duration,
    mut drain: tokio::sync::watch::Receiver<bool>,
    peer: SocketAddr,
) {
    let activity = Arc::new(limits::Activity::new());
    let tracked = activity.clone();
    let service = hyper::service::service_fn(move |request| {
        let in_flight = tracked.begin();
        let call = hyper::service::Service::call(&service, request);
        async move {
            let response = call.await;
            drop(in_flight);
            response
        }
    });
    let connection = builder.serve_connection(TokioIo::new(tls), service);
    tokio::pin!(connection);
    let mut closing: Option<tokio::time::Instant> = None;
    loop {
        let close_by = closing.unwrap_or_else(tokio::time::Instant::now);
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(error) = result {
                    debug!(%error, %peer, "connection ended with an error");
                }
                return;
            }
            () = activity.idle(idle_timeout), if closing.is_none() => {
                debug!(%peer, "closing an idle connection");
                connection.as_mut().graceful_shutdown();
                closing = Some(tokio::time::Instant::now() + limits::CLOSE_GRACE);
            }
            _ = drain.wait_for(|d| *d), if closing.is_none() => {
                connection.as_mut().graceful_shutdown();
                closing = Some(tokio::time::Instant::now() + DRAIN_TIMEOUT);
            }
            () = tokio::time::sleep_until(close_by), if closing.is_some() => {
                debug!(%peer, "dropping a connection that did not close in time");
                return;
            }
        }
    }
}

/// The routes, with the body limit and the per-request timeout.
fn router(state: Arc<WebhookState>, timeout: Duration, max_body: usize) -> Router {
    Router::new()
        .route("/mutate", post(mutate_handler))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(|| async { "ok" }))
        .route("/metrics", get(metrics))
        .layer(DefaultBodyLimit::max(max_body))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            hold_body_budget,
        ))
        .layer(middleware::from_fn(move |req: HttpRequest, next: Next| {
            deadline(timeout, req, next)
        }))
        .with_state(state)
}

/// Takes the request's share of the body budget before its body is read, or answers 503 at
/// once: many large bodies at once must cost a refusal, never memory.
async fn hold_body_budget(
    State(state): State<Arc<WebhookState>>,
    req: HttpRequest,
    next: Next,
) -> Response {
    // hyper derives the exact size from the framing (HTTP/1 Content-Length, HTTP/2
    // content-length, which h2 enforces); a body of unknown size may grow to the limit.
    let share = limits::body_share(req.body().size_hint().exact(), state.max_body);
    let Ok(permit) = state.bodies.clone().try_acquire_many_owned(share) else {
        state.metrics.busy();
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, "1")],
            "the webhook holds as many request bodies as it may; retry\n",
        )
            .into_response();
    };
    let response = next.run(req).await;
    drop(permit);
    response
}

async fn deadline(timeout: Duration, req: HttpRequest, next: Next) -> Response {
    match tokio::time::timeout(timeout, next.run(req)).await {
        Ok(response) => response,
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "the review took too long\n",
        )
            .into_response(),
    }
}

/// `POST /mutate`: checks the content type, decodes the body ([`review::decode`]), reads the
/// commands of the images the pod needs from their registries, and lets `injector::mutate_with`
/// decide; then counts and logs the outcome.
async fn mutate_handler(
    State(state): State<Arc<WebhookState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let started = Instant::now();
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !json {
        state.metrics.invalid();
        return (
            StatusCode::BAD_REQUEST,
            "content-type must be application/json\n",
        )
            .into_response();
    }
    let answer = match review::decode(&body) {
        Ok(decoded) => {
            let images = decoded.images_to_read();
            let known = if images.is_empty() {
                injector::Images::new()
            } else {
                state.registry.commands(&images).await
            };
            decoded.answer(&state.settings, &known)
        }
        Err(bad) => Err(bad),
    };
    match answer {
        Ok(answer) => {
            state
                .metrics
                .answered(&answer.outcome, started.elapsed().as_secs_f64());
            match &answer.outcome {
                // `message` is the event's own field in JSON lines: the denial's text has a
                // name of its own, or every JSON parser would keep only one of the two.
                review::Outcome::Denied(reason) => info!(
                    pod = %answer.pod,
                    namespace = %answer.namespace,
                    reason,
                    denial = answer.message.as_deref().unwrap_or_default(),
                    "injection denied"
                ),
                review::Outcome::Patched => info!(
                    pod = %answer.pod,
                    namespace = %answer.namespace,
                    mode = answer.mode.map_or("", |m| m.name()),
                    "injected"
                ),
                review::Outcome::Allowed => {}
            }
            axum::Json(answer.body).into_response()
        }
        Err(bad) => {
            state.metrics.invalid();
            debug!(reason = %bad, "not an admission review");
            (StatusCode::BAD_REQUEST, format!("{bad}\n")).into_response()
        }
    }
}

async fn metrics(State(state): State<Arc<WebhookState>>, headers: HeaderMap) -> Response {
    state.metrics.respond(&headers)
}

/// Reloads the certificate when its directory changes, and every minute in case an event was
/// missed. Events are coalesced: a burst of them (a Secret volume swaps several links) causes
/// one reload, and reloads happen at most every [`RELOAD_SETTLE`].
fn watch_certificates(
    resolver: Arc<tls::Reloading>,
    state: Arc<WebhookState>,
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
            state.metrics.certificate_read();
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
