//! The sidecar's schedule: when the token is renewed or replaced by a new login, when each lease
//! is renewed or replaced, each certificate re-issued, each KV value read again, and each file
//! that failed rendered again. It does no I/O: the sidecar asks what is [`Schedule::due`], does
//! it, and reports what happened; so every rule is tested on tokio's paused clock.
//!
//! A lease belongs to the token that created it and dies with it: after a new login only those
//! leases are fetched again. KV values and certificates keep their own schedule (Vault Agent
//! re-fetches everything on every re-login, vault#10676).

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use injector::AgentConfig;
use tokio::time::Instant;

use super::timing::{backoff, refresh_in, reissue_at, renew_in, replace_in, truncated};
use crate::template::Request;

/// Retries of renewals, fetches and renders: from 1 s to 5 min.
const RETRY_BACKOFF: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(300));

/// The farthest a timer is set: what never expires is looked at again this late.
const FAR: Duration = Duration::from_secs(24 * 3600);

/// The numbers the schedule follows.
#[derive(Clone, Debug)]
pub struct Rules {
    /// How often lease-less values are read again.
    pub refresh: Duration,
    /// The fraction of a lifetime after which what cannot be renewed is replaced.
    pub threshold: f64,
    /// The pauses between failed logins, from and to.
    pub login_backoff: (Duration, Duration),
}

impl Rules {
    /// The config's numbers, with their defaults.
    pub fn of(config: &AgentConfig) -> Rules {
        Rules {
            refresh: config.refresh_interval(),
            threshold: config.renewal_threshold(),
            login_backoff: config.auth.backoff(),
        }
    }
}

/// What a response is, which decides when it is fetched again.
#[derive(Clone, Debug, PartialEq)]
pub enum Response {
    /// No lease: read again every refresh interval.
    Static,
    /// A lease with `ttl` left.
    Lease {
        /// The lease ID.
        id: String,
        /// What is left of it.
        ttl: Duration,
        /// Whether Vault renews it.
        renewable: bool,
    },
    /// A certificate, re-issued at the threshold of its validity.
    Certificate {
        /// Valid from.
        not_before: SystemTime,
        /// Valid until.
        not_after: SystemTime,
    },
    /// A write with neither lease nor certificate: done once.
    Once,
}

/// Something due.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Work {
    /// Log in.
    Login,
    /// Renew the token, asking for `increment`.
    RenewToken {
        /// The TTL asked for.
        increment: Duration,
    },
    /// Renew a lease, asking for `increment`.
    RenewLease {
        /// The request that created it.
        request: Request,
        /// The lease ID.
        id: String,
        /// The TTL asked for.
        increment: Duration,
    },
    /// Fetch a request again.
    Fetch(Request),
    /// Render these outputs again (they failed).
    Render(Vec<usize>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Next {
    Login,
    Renew,
    Fetch,
    Nothing,
}

#[derive(Debug)]
struct Token {
    /// Whether there is a token to use.
    live: bool,
    /// The TTL asked for at each renewal: what the login granted.
    asked: Duration,
    born: Instant,
    expires: Option<Instant>,
    next: Next,
    at: Instant,
    failures: u32,
    /// Counts logins: a lease belongs to the token that created it.
    generation: u64,
    /// Tokens found gone in a row (see [`Schedule::token_lost`]) with none proven alive since.
    lost: u32,
}

#[derive(Debug)]
struct Entry {
    lease: Option<Lease>,
    born: Instant,
    expires: Option<Instant>,
    next: Next,
    at: Instant,
    failures: u32,
}

#[derive(Clone, Debug)]
struct Lease {
    id: String,
    asked: Duration,
    renewable: bool,
    generation: u64,
}

/// A lease as the schedule knows it, for the hand-over and the metrics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseView<'a> {
    /// The lease ID.
    pub id: &'a str,
    /// Whether it can be renewed.
    pub renewable: bool,
    /// When it ends.
    pub expires: Option<Instant>,
    /// When it was created.
    pub born: Instant,
}

/// The sidecar's timers.
#[derive(Debug)]
pub struct Schedule {
    rules: Rules,
    rng: fastrand::Rng,
    token: Token,
    entries: BTreeMap<Request, Entry>,
    /// Per output: when a failed render is tried again, and how many failed in a row.
    renders: Vec<(Option<Instant>, u32)>,
}

impl Schedule {
    /// A schedule for `outputs` files whose first step, due `now`, is a login.
    pub fn new(rules: Rules, outputs: usize, rng: fastrand::Rng, now: Instant) -> Schedule {
        Schedule {
            rules,
            rng,
            token: Token {
                live: false,
                asked: Duration::ZERO,
                born: now,
                expires: None,
                next: Next::Login,
                at: now,
                failures: 0,
                generation: 0,
                lost: 0,
            },
            entries: BTreeMap::new(),
            renders: vec![(None, 0); outputs],
        }
    }

    /// The next moment something is due.
    pub fn next(&self) -> Instant {
        let token = match self.token.next {
            Next::Nothing => None,
            _ => Some(self.token.at),
        };
        if !self.token.live {
            return token.unwrap_or_else(|| self.token.born + FAR);
        }
        let entries = self
            .entries
            .values()
            .filter(|e| e.next != Next::Nothing)
            .map(|e| e.at);
        let renders = self.renders.iter().filter_map(|(at, _)| *at);
        token
            .into_iter()
            .chain(entries)
            .chain(renders)
            .min()
            .unwrap_or(self.token.born + FAR)
    }

    /// What is due at `now`. A login due comes alone: everything else waits for its token.
    pub fn due(&self, now: Instant) -> Vec<Work> {
        let mut work = Vec::new();
        if self.token.at <= now {
            match self.token.next {
                Next::Login => return vec![Work::Login],
                Next::Renew => work.push(Work::RenewToken {
                    increment: self.token.asked,
                }),
                Next::Fetch | Next::Nothing => {}
            }
        }
        if !self.token.live {
            return work;
        }
        for (request, entry) in &self.entries {
            if entry.at > now {
                continue;
            }
            match (entry.next, &entry.lease) {
                (Next::Renew, Some(lease)) => work.push(Work::RenewLease {
                    request: request.clone(),
                    id: lease.id.clone(),
                    increment: lease.asked,
                }),
                (Next::Fetch, _) => work.push(Work::Fetch(request.clone())),
                _ => {}
            }
        }
        let renders: Vec<usize> = (0..self.renders.len())
            .filter(|i| self.renders[*i].0.is_some_and(|at| at <= now))
            .collect();
        if !renders.is_empty() {
            work.push(Work::Render(renders));
        }
        work
    }

    /// Whether there is a token to use.
    pub fn has_token(&self) -> bool {
        self.token.live
    }

    /// When the token ends; `None` when it does not, or there is none.
    pub fn token_expires(&self) -> Option<Instant> {
        self.token.expires.filter(|_| self.token.live)
    }

    /// A login succeeded with a token of `ttl`. Leases of earlier tokens are due now: they die
    /// with the token that created them; so is what failed to fetch (it may have failed for
    /// want of a live token). Nothing else is fetched again.
    pub fn logged_in(&mut self, now: Instant, ttl: Duration, renewable: bool) {
        self.token.generation += 1;
        self.granted(now, ttl, renewable);
        let generation = self.token.generation;
        for entry in self.entries.values_mut() {
            let old_lease = entry
                .lease
                .as_ref()
                .is_some_and(|l| l.generation < generation);
            if old_lease {
                entry.next = Next::Fetch;
                entry.at = now;
                entry.failures = 0;
            } else if entry.failures > 0 && entry.next == Next::Fetch {
                // Its failures still count (for exit_on_retry_failure and the backoff): a path
                // denied by policy stays denied whatever the token.
                entry.at = now;
            }
        }
    }

    /// Vault no longer knows the token (a request was denied and lookup-self was denied too: it
    /// was revoked, or Vault came back without its data). Nothing can be done with it: the next
    /// login is due at once the first time, and after a backoff (1 s doubling to 5 min) when
    /// tokens keep being found gone with none proven alive in between, so that a role whose
    /// policies do not allow lookup-self costs a login now and then, not a storm. Returns the
    /// pause.
    pub fn token_lost(&mut self, now: Instant) -> Duration {
        let (min, max) = RETRY_BACKOFF;
        let token = &mut self.token;
        let pause = match token.lost {
            0 => Duration::ZERO,
            n => backoff(n - 1, min, max, self.rng.f64()),
        };
        token.lost = token.lost.saturating_add(1);
        token.live = false;
        (token.next, token.at, token.failures) = (Next::Login, now + pause, 0);
        pause
    }

    /// Vault confirmed the token is alive (lookup-self or a renewal answered).
    pub fn token_confirmed(&mut self) {
        self.token.lost = 0;
    }

    /// How many times in a row fetching `request` has failed.
    pub fn fetch_failures(&self, request: &Request) -> u32 {
        self.entries.get(request).map_or(0, |e| e.failures)
    }

    /// An init container's token was taken over: lookup-self says it has `ttl` left.
    pub fn adopted(&mut self, now: Instant, ttl: Duration, renewable: bool) {
        self.granted(now, ttl, renewable);
    }

    fn granted(&mut self, now: Instant, ttl: Duration, renewable: bool) {
        let token = &mut self.token;
        token.live = true;
        token.failures = 0;
        token.asked = ttl;
        token.born = now;
        if ttl.is_zero() {
            // A root-like token that never expires.
            (token.expires, token.next, token.at) = (None, Next::Nothing, now + FAR);
            return;
        }
        token.expires = Some(now + ttl);
        (token.next, token.at) = if renewable {
            (Next::Renew, now + renew_in(ttl, self.rng.f64()))
        } else {
            (
                Next::Login,
                now + replace_in(ttl, self.rules.threshold, self.rng.f64()),
            )
        };
    }

    /// A login failed: the next attempt after a pause from the login backoff. Returns it.
    pub fn login_failed(&mut self, now: Instant) -> Duration {
        let (min, max) = self.rules.login_backoff;
        let pause = backoff(self.token.failures, min, max, self.rng.f64());
        self.token.failures = self.token.failures.saturating_add(1);
        self.token.next = Next::Login;
        self.token.at = now + pause;
        if self.token.expires.is_some_and(|e| e <= now) {
            self.token.live = false;
        }
        pause
    }

    /// The token was renewed for `ttl`. A renewal cut short (the max TTL is near) or a token
    /// that cannot be renewed again is replaced by a login at the threshold of its life.
    pub fn token_renewed(&mut self, now: Instant, ttl: Duration, renewable: bool) {
        let token = &mut self.token;
        token.failures = 0;
        token.lost = 0;
        let end = now + ttl;
        token.expires = Some(end);
        if renewable && !truncated(token.asked, ttl) {
            (token.next, token.at) = (Next::Renew, now + renew_in(ttl, self.rng.f64()));
        } else {
            let at = replace_at(token.born, end, self.rules.threshold, self.rng.f64());
            (token.next, token.at) = (Next::Login, at.max(now));
        }
    }

    /// A renewal failed. A refused one (the token is gone) calls for a login now; a transient
    /// one is retried after a pause, or replaced by a login if the token ends first. Returns
    /// the pause.
    pub fn token_renewal_failed(&mut self, now: Instant, transient: bool) -> Duration {
        let token = &mut self.token;
        if !transient {
            (token.next, token.at, token.failures) = (Next::Login, now, 0);
            return Duration::ZERO;
        }
        let (min, max) = RETRY_BACKOFF;
        let pause = backoff(token.failures, min, max, self.rng.f64());
        token.failures = token.failures.saturating_add(1);
        let retry = now + pause;
        match token.expires {
            Some(end) if retry >= end => (token.next, token.at) = (Next::Login, end.max(now)),
            _ => token.at = retry,
        }
        pause
    }

    /// A response arrived at `now` (wall clock `wall`) for `request`, `age` after it was fetched
    /// (zero, but for what an init container handed over).
    pub fn fetched(
        &mut self,
        now: Instant,
        wall: SystemTime,
        age: Duration,
        request: &Request,
        response: Response,
    ) {
        // A response proves the token alive: the next loss is replaced at once again.
        self.token.lost = 0;
        let born = now.checked_sub(age).unwrap_or(now);
        let threshold = self.rules.threshold;
        let jitter = self.rng.f64();
        let (lease, expires, next, at) = match response {
            Response::Lease { id, ttl, renewable } if !ttl.is_zero() => {
                let end = now + ttl;
                let lease = Lease {
                    id,
                    asked: ttl,
                    renewable,
                    generation: self.token.generation,
                };
                if renewable {
                    (
                        Some(lease),
                        Some(end),
                        Next::Renew,
                        now + renew_in(ttl, jitter),
                    )
                } else {
                    let at = replace_at(born, end, threshold, jitter).max(now);
                    (Some(lease), Some(end), Next::Fetch, at)
                }
            }
            Response::Certificate {
                not_before,
                not_after,
            } => {
                let instant = |t: SystemTime| now + t.duration_since(wall).unwrap_or_default();
                let at = reissue_at(not_before, not_after, threshold, jitter);
                (None, Some(instant(not_after)), Next::Fetch, instant(at))
            }
            Response::Once => (None, None, Next::Nothing, now + FAR),
            // A lease of no length would be due at once, again and again: it is read again
            // like a value without a lease.
            Response::Static | Response::Lease { .. } => {
                let at = (born + refresh_in(self.rules.refresh, jitter)).max(now);
                (None, None, Next::Fetch, at)
            }
        };
        self.entries.insert(
            request.clone(),
            Entry {
                lease,
                born,
                expires,
                next,
                at,
                failures: 0,
            },
        );
    }

    /// Fetching `request` failed: tried again after a pause, which is returned.
    pub fn fetch_failed(&mut self, now: Instant, request: &Request) -> Duration {
        let (min, max) = RETRY_BACKOFF;
        let jitter = self.rng.f64();
        let entry = self.entries.entry(request.clone()).or_insert(Entry {
            lease: None,
            born: now,
            expires: None,
            next: Next::Fetch,
            at: now,
            failures: 0,
        });
        let pause = backoff(entry.failures, min, max, jitter);
        entry.failures = entry.failures.saturating_add(1);
        entry.next = Next::Fetch;
        entry.at = now + pause;
        pause
    }

    /// A lease was renewed for `ttl`. One cut short (its max TTL is near) or that cannot be
    /// renewed again is replaced at the threshold of its whole life, before it ends.
    pub fn lease_renewed(
        &mut self,
        now: Instant,
        request: &Request,
        ttl: Duration,
        renewable: bool,
    ) {
        let threshold = self.rules.threshold;
        let jitter = self.rng.f64();
        let Some(entry) = self.entries.get_mut(request) else {
            return;
        };
        let Some(lease) = &entry.lease else {
            return;
        };
        entry.failures = 0;
        let end = now + ttl;
        entry.expires = Some(end);
        if renewable && !truncated(lease.asked, ttl) && !ttl.is_zero() {
            (entry.next, entry.at) = (Next::Renew, now + renew_in(ttl, jitter));
        } else {
            let at = replace_at(entry.born, end, threshold, jitter);
            (entry.next, entry.at) = (Next::Fetch, at.max(now));
        }
    }

    /// Renewing a lease failed. A refused renewal calls for new credentials now; a transient
    /// failure is retried after a pause, or replaced by a fetch if the lease ends first.
    pub fn lease_renewal_failed(
        &mut self,
        now: Instant,
        request: &Request,
        transient: bool,
    ) -> Duration {
        let jitter = self.rng.f64();
        let Some(entry) = self.entries.get_mut(request) else {
            return Duration::ZERO;
        };
        if !transient {
            (entry.next, entry.at, entry.failures) = (Next::Fetch, now, 0);
            return Duration::ZERO;
        }
        let (min, max) = RETRY_BACKOFF;
        let pause = backoff(entry.failures, min, max, jitter);
        entry.failures = entry.failures.saturating_add(1);
        entry.at = now + pause;
        if entry.expires.is_some_and(|end| entry.at >= end) {
            entry.next = Next::Fetch;
        }
        pause
    }

    /// Output `i` was rendered and written.
    pub fn rendered(&mut self, i: usize) {
        if let Some(output) = self.renders.get_mut(i) {
            *output = (None, 0);
        }
    }

    /// Output `i` failed to render or write: tried again after a pause, which is returned.
    pub fn render_failed(&mut self, now: Instant, i: usize) -> Duration {
        let (min, max) = RETRY_BACKOFF;
        let jitter = self.rng.f64();
        let Some((at, failures)) = self.renders.get_mut(i) else {
            return Duration::ZERO;
        };
        let pause = backoff(*failures, min, max, jitter);
        *failures = failures.saturating_add(1);
        *at = Some(now + pause);
        pause
    }

    /// Output `i` failed because Vault did: the fetch's own retry renders it again.
    pub fn render_waits_for_vault(&mut self, i: usize) {
        if let Some(output) = self.renders.get_mut(i) {
            output.0 = None;
        }
    }

    /// The lease `request` holds, if any.
    pub fn lease(&self, request: &Request) -> Option<LeaseView<'_>> {
        let entry = self.entries.get(request)?;
        let lease = entry.lease.as_ref()?;
        Some(LeaseView {
            id: &lease.id,
            renewable: lease.renewable,
            expires: entry.expires,
            born: entry.born,
        })
    }

    /// Every lease with its end, for the metrics.
    pub fn lease_ends(&self) -> impl Iterator<Item = (&Request, Instant)> {
        self.entries
            .iter()
            .filter(|(_, e)| e.lease.is_some())
            .filter_map(|(r, e)| Some((r, e.expires?)))
    }
}

/// When to replace something created at `born` that ends at `end`: at the threshold of its
/// whole life (±5%), never at or after its end.
fn replace_at(born: Instant, end: Instant, threshold: f64, jitter: f64) -> Instant {
    born + replace_in(end.saturating_duration_since(born), threshold, jitter)
}

#[cfg(test)]
mod tests;
