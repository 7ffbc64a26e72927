//! The sidecar's responses: renewing leases, fetching again what is due, keeping what came back
//! for change detection and the schedule, and giving up when `exit_on_retry_failure` says so.

use std::time::{Duration, SystemTime};

use serde_json::Value as Json;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::{Sidecar, Stored};
use crate::agent::schedule::Response;
use crate::agent::{Error, state};
use crate::template::Request;
use crate::vault;

impl Sidecar<'_> {
    pub(super) async fn renew_lease(&mut self, request: &Request, id: &str, increment: Duration) {
        let result = self.client.renew_lease(id, increment).await;
        let now = Instant::now();
        match result {
            Ok(granted) => {
                self.status.renewal("lease", true);
                self.schedule
                    .lease_renewed(now, request, granted.duration, granted.renewable);
                let path = self.engine.shown().path(&request.path).to_owned();
                debug!(path, ttl_s = granted.duration.as_secs(), "lease renewed");
                self.save();
            }
            Err(error) => {
                self.status.renewal("lease", false);
                let transient = error.is_transient();
                let pause = self.schedule.lease_renewal_failed(now, request, transient);
                let (path, error) = self.shown(&request.path, &error);
                if transient {
                    warn!(
                        error,
                        path,
                        retry_in_s = crate::telemetry::seconds(pause),
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
    pub(super) async fn refetch(&mut self, request: Request) {
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
                    retry_in_s = crate::telemetry::seconds(pause),
                    "fetch failed; the files keep what they have"
                );
                self.fetch_failed(&request, error.kind()).await;
            }
        }
    }

    /// After a failed fetch: counts it, checks the token when Vault said 403, and gives up when
    /// `exit_on_retry_failure` says so.
    pub(super) async fn fetch_failed(&mut self, request: &Request, reason: &'static str) {
        self.status.fetch_failed(reason);
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

    /// Keeps a response: in the engine's cache, for change detection, and on the schedule.
    pub(super) fn remember(&mut self, now: Instant, request: &Request, secret: vault::Secret) {
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

    /// A path and an error as logs may show them: a path no template spells may hold a secret,
    /// and so may the error that names it; then only the error's kind is shown.
    pub(super) fn shown(&self, path: &str, error: &vault::Error) -> (String, String) {
        let shown = self.engine.shown();
        if shown.is_literal(path) {
            (path.to_owned(), error.to_string())
        } else {
            (shown.path(path).to_owned(), error.kind().to_owned())
        }
    }
}

/// What a response is, for the schedule: a lease, a certificate, a one-off write, or a value.
pub(super) fn response_of(request: &Request, data: &Json, lease: Option<vault::Lease>) -> Response {
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
