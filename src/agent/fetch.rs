//! The agent's fetches while rendering: Vault reads and writes, retried until a deadline, each
//! response kept with its lease details for the hand-over and the sidecar's schedule.

use tokio::time::Instant;

use crate::template::{self, Fetch, Request};
use crate::vault;

/// Fetches from Vault, retrying transient failures until a deadline, and keeps every response
/// with its lease details (for the hand-over to the sidecar, and for the sidecar's schedule).
pub(crate) struct VaultFetch<'a> {
    client: &'a vault::Client,
    deadline: Instant,
    /// Which paths the retry warnings may name.
    shown: template::Shown,
    fetched: std::sync::Mutex<Vec<Fetched>>,
}

/// One response, as fetched.
pub(crate) struct Fetched {
    pub(crate) request: Request,
    /// The response, or the failure's fixed label ([`vault::Error::kind`]).
    pub(crate) result: Result<vault::Secret, &'static str>,
    pub(crate) at: std::time::SystemTime,
}

impl<'a> VaultFetch<'a> {
    pub(crate) fn new(
        client: &'a vault::Client,
        deadline: Instant,
        shown: template::Shown,
    ) -> VaultFetch<'a> {
        VaultFetch {
            client,
            deadline,
            shown,
            fetched: std::sync::Mutex::new(Vec::new()),
        }
    }

    /// Everything fetched since the last call.
    pub(crate) fn take(&self) -> Vec<Fetched> {
        std::mem::take(&mut *self.fetched.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

impl Fetch for VaultFetch<'_> {
    async fn fetch(&self, request: &Request) -> Result<vault::Secret, vault::Error> {
        let client = self.client;
        let shown = self.shown.path(&request.path);
        let what = if request.is_write() {
            format!("writing {shown}")
        } else {
            format!("reading {shown}")
        };
        // A certificate in its destination is used while it is good (consul-template's
        // pkiCert): an init container restarted, or a sidecar, issues none.
        let result = vault::retry::until(self.deadline, &what, async || {
            request.send(client, true).await
        })
        .await;
        let record = Fetched {
            request: request.clone(),
            result: result
                .as_ref()
                .map(Clone::clone)
                .map_err(vault::Error::kind),
            at: std::time::SystemTime::now(),
        };
        self.fetched
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(record);
        result
    }
}
