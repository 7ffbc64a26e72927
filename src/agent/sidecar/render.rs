//! The sidecar's renders: rendering outputs against the cache, writing what changed, announcing
//! readiness once, and telling the metrics endpoint when things expire.

use std::collections::BTreeMap;
use std::time::SystemTime;

use tokio::time::Instant;
use tracing::{info, warn};

use super::{FETCH_BUDGET, Sidecar};
use crate::agent::fetch::{Fetched, VaultFetch};
use crate::agent::server::Expiries;
use crate::agent::state;
use crate::template::{self, Rendered};

impl Sidecar<'_> {
    /// Renders `which` against the cache, fetching what is missing, and writes what changed.
    pub(super) async fn render(&mut self, which: Vec<usize>) {
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
        let was_ready = self.ready;
        for (i, result) in results {
            self.put(now, i, result, was_ready);
        }
        self.outputs.settled();
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
                self.status.fetch_failed(reason);
                continue;
            }
            self.fetch_failed(&request, reason).await;
        }
    }

    /// Puts output `i`'s render in place; after readiness, a change is announced (a file's
    /// change command runs).
    pub(super) fn put(
        &mut self,
        now: Instant,
        i: usize,
        result: Result<Rendered, template::Error>,
        announce: bool,
    ) {
        let from_vault = matches!(&result, Err(e) if e.vault_error().is_some());
        let name = self.outputs.name(i).to_owned();
        let put = result
            .map_err(|e| e.to_string())
            .and_then(|rendered| self.outputs.put(i, rendered));
        match put {
            Ok(changed) => {
                self.status.render(&name, true);
                if crate::agent::compile::warn_missing_key(&self.engine, i, &name) {
                    self.status.missing_key(&name);
                }
                self.status.rendered_at(&name, SystemTime::now());
                self.schedule.rendered(i);
                self.rendered[i] = true;
                self.failing.remove(&i);
                if changed && announce {
                    self.outputs.changed(i);
                }
            }
            Err(error) => {
                self.status.render(&name, false);
                self.failing.insert(i);
                if from_vault {
                    // The failed fetch is retried on its own schedule and renders this again.
                    self.schedule.render_waits_for_vault(i);
                    warn!(name, %error, "render failed; the output keeps its last good content until Vault answers");
                } else {
                    let pause = self.schedule.render_failed(now, i);
                    warn!(name, %error, retry_in_s = crate::telemetry::seconds(pause), "render failed; the output keeps its last good content");
                }
            }
        }
    }

    /// Announces readiness: to the endpoints, and with the ready file for the startup probe.
    pub(super) fn mark_ready(&self) {
        self.status.set_ready();
        info!("every file is rendered; ready");
        if let Some(dir) = &self.config.state_dir
            && let Err(error) = state::mark_ready(dir)
        {
            warn!(%error, "cannot create the ready file");
        }
    }

    /// Tells the metrics endpoint when things expire.
    pub(super) fn publish(&self) {
        let shown = self.engine.shown();
        let mut leases: BTreeMap<String, Instant> = BTreeMap::new();
        for (request, end) in self.schedule.lease_ends() {
            // Computed paths share one label: it reports the one that ends first.
            leases
                .entry(shown.path(&request.path).to_owned())
                .and_modify(|at| *at = (*at).min(end))
                .or_insert(end);
        }
        self.status.set_expiries(Expiries {
            token: self.schedule.token_expires(),
            leases,
        });
    }
}
