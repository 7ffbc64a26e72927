//! One active replica through a `coordination.k8s.io/v1` Lease, the way client-go's leader
//! election does it: optimistic concurrency on the Lease's `resourceVersion` (a lost race is a
//! 409, never two leaders), expiry judged by when *this* replica last saw the record change (so
//! clocks need not agree), and the Lease released on shutdown so that the next replica takes
//! over at once instead of waiting out the duration (vault-k8s#412's lock that never frees).

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::PostParams;
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::{info, warn};

/// Who competes for which Lease, and how long a term lasts.
#[derive(Clone, Debug)]
pub struct Params {
    /// The Lease's name.
    pub name: String,
    /// This replica's identity (its pod name).
    pub identity: String,
    /// How long a leader holds the Lease without renewing it.
    pub duration: Duration,
}

/// A Lease identity outside a pod (where POD_NAME names it): the host name and process id.
pub fn default_identity() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "hydrant".to_owned());
    format!("{host}-{}", std::process::id())
}

impl Params {
    /// How often the Lease is renewed or tried: a third of its duration, at most every two
    /// seconds (client-go's retry period), so that a released Lease is taken over at once.
    fn retry(&self) -> Duration {
        (self.duration / 3).min(Duration::from_secs(2))
    }
}

/// What this replica last saw of the Lease, and when it saw it change.
#[derive(Debug, Default)]
struct Observed {
    record: Option<(Option<String>, Option<MicroTime>)>,
    changed_at: Option<Instant>,
}

/// The outcome of one try.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Try {
    Leading,
    Following,
}

/// Competes for the Lease until `shutdown` resolves; `leading` says whether this replica leads.
/// On shutdown a held Lease is released.
pub async fn run(
    api: Api<Lease>,
    params: Params,
    leading: watch::Sender<bool>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let mut observed = Observed::default();
    let mut last_renewal = None::<Instant>;
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        match try_acquire_or_renew(&api, &params, &mut observed).await {
            Ok(Try::Leading) => {
                last_renewal = Some(Instant::now());
                if !*leading.borrow() {
                    info!(lease = %params.name, identity = %params.identity, "leading");
                }
                leading.send_replace(true);
            }
            Ok(Try::Following) => {
                if *leading.borrow() {
                    warn!(lease = %params.name, "another replica took the lease; standing by");
                }
                leading.send_replace(false);
            }
            Err(e) => {
                // A leader that cannot renew steps down before its term could have run out.
                let renew_deadline = params.duration * 2 / 3;
                if *leading.borrow() && last_renewal.is_none_or(|at| at.elapsed() >= renew_deadline)
                {
                    warn!(lease = %params.name, error = %e, "cannot renew the lease; standing by");
                    leading.send_replace(false);
                } else {
                    warn!(lease = %params.name, error = %e, "lease request failed");
                }
            }
        }
        let jitter = params.retry().mul_f64(fastrand::f64() * 0.2);
        tokio::select! {
            () = tokio::time::sleep(params.retry() + jitter) => {}
            () = &mut shutdown => break,
        }
    }
    if leading.send_replace(false) {
        match release(&api, &params).await {
            Ok(()) => info!(lease = %params.name, "lease released"),
            Err(e) => warn!(lease = %params.name, error = %e, "cannot release the lease"),
        }
    }
}

async fn try_acquire_or_renew(
    api: &Api<Lease>,
    params: &Params,
    observed: &mut Observed,
) -> Result<Try, kube::Error> {
    let now = MicroTime(Timestamp::now());
    let Some(mut lease) = api.get_opt(&params.name).await? else {
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(params.name.clone()),
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(params.identity.clone()),
                lease_duration_seconds: Some(seconds(params.duration)),
                acquire_time: Some(now.clone()),
                renew_time: Some(now),
                lease_transitions: Some(0),
                ..LeaseSpec::default()
            }),
        };
        return match api.create(&PostParams::default(), &lease).await {
            Ok(_) => Ok(Try::Leading),
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(Try::Following),
            Err(e) => Err(e),
        };
    };
    let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
    let holder = spec.holder_identity.clone().filter(|h| !h.is_empty());
    let record = (holder.clone(), spec.renew_time.clone());
    if observed.record.as_ref() != Some(&record) {
        observed.record = Some(record);
        observed.changed_at = Some(Instant::now());
    }
    let held_by_me = holder.as_deref() == Some(params.identity.as_str());
    let term = spec
        .lease_duration_seconds
        .map_or(params.duration, |s| Duration::from_secs(s.max(0) as u64));
    let expired = holder.is_none() || observed.changed_at.is_none_or(|at| at.elapsed() >= term);
    if !held_by_me && !expired {
        return Ok(Try::Following);
    }
    if !held_by_me {
        spec.acquire_time = Some(now.clone());
        spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
        spec.holder_identity = Some(params.identity.clone());
    }
    spec.renew_time = Some(now);
    spec.lease_duration_seconds = Some(seconds(params.duration));
    // The resourceVersion read above goes back with the update: if anyone wrote in between,
    // the API server answers 409 and this replica follows.
    match api
        .replace(&params.name, &PostParams::default(), &lease)
        .await
    {
        Ok(_) => Ok(Try::Leading),
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(Try::Following),
        Err(e) => Err(e),
    }
}

/// Gives the Lease up: no holder and a one-second term, as client-go's `ReleaseOnCancel`.
async fn release(api: &Api<Lease>, params: &Params) -> Result<(), kube::Error> {
    let mut lease = api.get(&params.name).await?;
    let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
    if spec.holder_identity.as_deref() != Some(params.identity.as_str()) {
        return Ok(());
    }
    spec.holder_identity = None;
    spec.lease_duration_seconds = Some(1);
    spec.renew_time = Some(MicroTime(Timestamp::now()));
    api.replace(&params.name, &PostParams::default(), &lease)
        .await
        .map(drop)
}

fn seconds(duration: Duration) -> i32 {
    i32::try_from(duration.as_secs().max(1)).unwrap_or(i32::MAX)
}
