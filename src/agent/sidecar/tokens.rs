//! The sidecar's token: logging in, renewing it, and telling a token Vault no longer knows from
//! a policy that denies.

use std::time::Duration;

use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::Sidecar;
use crate::vault;

impl Sidecar<'_> {
    pub(super) async fn login(&mut self) {
        match vault::login(&mut self.client, &self.config.auth).await {
            Ok(info) => {
                self.status.login(true);
                info!(
                    method = %self.config.auth.method,
                    mount = self.config.auth.mount(),
                    ttl_s = info.ttl.as_secs(),
                    "logged in to vault"
                );
                self.schedule
                    .logged_in(Instant::now(), info.ttl, info.renewable);
                crate::agent::sink::write_or_warn(self.config, &info.token);
                self.token = Some(info.token);
                if !self.ready {
                    let pending = (0..self.rendered.len())
                        .filter(|i| !self.rendered[*i])
                        .collect();
                    self.render(pending).await;
                }
                self.save();
            }
            Err(error) => {
                self.status.login(false);
                let pause = self.schedule.login_failed(Instant::now());
                warn!(%error, retry_in_s = crate::telemetry::seconds(pause), "login failed");
            }
        }
    }

    pub(super) async fn renew_token(&mut self, increment: Duration) {
        let result = self.client.renew_self(increment).await;
        let now = Instant::now();
        match result {
            Ok(granted) => {
                self.status.renewal("token", true);
                self.schedule
                    .token_renewed(now, granted.ttl, granted.renewable);
                debug!(ttl_s = granted.ttl.as_secs(), "token renewed");
                self.save();
            }
            Err(error) => {
                self.status.renewal("token", false);
                let transient = error.is_transient();
                let pause = self.schedule.token_renewal_failed(now, transient);
                if transient {
                    warn!(%error, retry_in_s = crate::telemetry::seconds(pause), "token renewal failed");
                } else {
                    info!(%error, "token renewal refused; logging in again");
                }
            }
        }
    }

    /// A request was denied: either the policies do not allow it, or the token is gone (revoked,
    /// or Vault came back without its data). lookup-self tells them apart; a token that is gone
    /// is replaced by a login at once (backed off if that keeps happening), and what failed is
    /// fetched again with the new token.
    pub(super) async fn check_token(&mut self) {
        if !self.schedule.has_token() {
            return;
        }
        match self.client.token_alive().await {
            Ok(true) => self.schedule.token_confirmed(),
            Ok(false) => {
                self.status.token_lost();
                let pause = self.schedule.token_lost(Instant::now());
                warn!(
                    retry_in_s = crate::telemetry::seconds(pause),
                    "vault no longer knows the token (revoked, or Vault lost its data); logging in again"
                );
            }
            Err(error) => debug!(%error, "cannot check the token; the fetch is retried"),
        }
    }
}
