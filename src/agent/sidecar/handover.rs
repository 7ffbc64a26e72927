//! The sidecar's side of the hand-over: it takes over what an init container (or its own
//! previous run) left, and keeps it saved so that a restarted sidecar takes over in turn.

use std::time::{Duration, SystemTime};

use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::responses::response_of;
use super::{Sidecar, Stored};
use crate::agent::fetch::Fetched;
use crate::agent::schedule::Response;
use crate::agent::state;
use crate::template::Request;
use crate::vault::{self, Token};

impl Sidecar<'_> {
    /// Takes over what an init container left, if anything: its token (checked with
    /// lookup-self) and what it fetched. Without a usable hand-over, the first login comes next.
    pub(super) async fn adopt(&mut self) {
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
        self.take_over(token, &info, handover.entries).await;
    }

    /// Takes over `hydrant exec`'s first render: its token, just logged in, and what it fetched.
    pub(super) async fn start_from(&mut self, token: vault::TokenInfo, fetched: Vec<Fetched>) {
        let entries = state::entries(fetched.iter().filter_map(|f| {
            let secret = f.result.as_ref().ok()?;
            Some(state::Held::of(&f.request, secret, f.at))
        }));
        self.take_over(token.token.clone(), &token, entries).await;
    }

    /// Takes over a live token and what was fetched with it, then renders every output from
    /// what was fetched (an output that is already in place does not change).
    async fn take_over(
        &mut self,
        token: Token,
        info: &vault::TokenInfo,
        entries: Vec<state::Entry>,
    ) {
        let now = Instant::now();
        self.schedule.adopted(now, info.ttl, info.renewable);
        crate::agent::sink::write_or_warn(self.config, &token);
        self.token = Some(token);
        let wall = SystemTime::now();
        for entry in entries {
            let request = Request::restore(
                &entry.path,
                entry.kind,
                entry.params.as_ref(),
                entry.query.as_deref(),
                entry.destination.as_deref(),
            );
            let fetched_at = state::system_time(entry.fetched_at);
            let age = wall.duration_since(fetched_at).unwrap_or_default();
            // The lease as fetched, for consul-template's .LeaseID and .LeaseDuration.
            let lease = entry.lease.as_ref().map(|lease| vault::Lease {
                id: lease.id.clone(),
                duration: Duration::from_secs(lease.seconds),
                renewable: lease.renewable,
            });
            let response = match entry.lease {
                Some(lease) => Response::Lease {
                    ttl: Duration::from_secs(lease.seconds).saturating_sub(age),
                    id: lease.id,
                    renewable: lease.renewable,
                },
                None => response_of(&request, &entry.data, None),
            };
            let secret = vault::Secret {
                data: entry.data.clone(),
                lease,
                ..vault::Secret::default()
            };
            self.engine.store_secret(request.clone(), secret);
            self.schedule.fetched(now, wall, age, &request, response);
            self.stored.insert(
                request,
                Stored {
                    data: entry.data,
                    fetched_at,
                },
            );
        }
        debug!(entries = self.stored.len(), "took over the records");
        self.render((0..self.rendered.len()).collect()).await;
    }

    /// Writes the hand-over so that a restarted sidecar takes over instead of starting again.
    pub(super) fn save(&self) {
        let (Some(dir), Some(token)) = (&self.config.state_dir, &self.token) else {
            return;
        };
        let now = Instant::now();
        let wall = SystemTime::now();
        let held = self.stored.iter().map(|(request, stored)| state::Held {
            request,
            data: &stored.data,
            fetched_at: stored.fetched_at,
            lease: self.schedule.lease(request).map(|lease| {
                let age = wall.duration_since(stored.fetched_at).unwrap_or_default();
                let left = lease
                    .expires
                    .map_or(Duration::ZERO, |end| end.saturating_duration_since(now));
                state::HeldLease {
                    id: lease.id,
                    lifetime: age + left,
                    renewable: lease.renewable,
                }
            }),
        });
        let expires = self
            .schedule
            .token_expires()
            .map(|at| wall + at.saturating_duration_since(now));
        if let Err(error) = state::hand_over(dir, token.expose(), expires, held) {
            warn!(%error, "cannot save the agent's state");
        }
    }
}
