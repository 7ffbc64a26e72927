//! What one webhook process holds at most, and for how long (hardening issue, item 4: half-open
//! connections, exhausted descriptors and concurrent large uploads took it down). The decisions
//! are pure functions; `mod.rs` applies them.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::time::Instant;

/// HTTP/1: the most bytes buffered while reading a request head (hyper's floor is 8 KiB).
pub(super) const H1_MAX_BUF_BYTES: usize = 64 * 1024;
/// HTTP/2: the largest frame accepted, the protocol's default.
pub(super) const H2_MAX_FRAME_BYTES: u32 = 16 * 1024;
/// HTTP/2: the largest header list accepted.
pub(super) const H2_MAX_HEADER_LIST_BYTES: u32 = 16 * 1024;
/// HTTP/2: what a client may send on one stream before the webhook reads it.
pub(super) const H2_STREAM_WINDOW_BYTES: u32 = 64 * 1024;
/// HTTP/2: what a client may send on all streams of a connection before the webhook reads it:
/// with the connection cap, the most that unread bodies can take.
pub(super) const H2_CONNECTION_WINDOW_BYTES: u32 = 256 * 1024;
/// How long an idle or draining connection may take to close after being asked to.
pub(super) const CLOSE_GRACE: Duration = Duration::from_secs(5);
/// Descriptors kept for everything but connections: certificate files, the watcher, the
/// Kubernetes client, the runtime.
const RESERVED_FDS: u64 = 64;
/// The first and the longest pause after a failed accept.
const ACCEPT_BACKOFF_FIRST: Duration = Duration::from_millis(10);
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// Connections, timeouts and the bytes held at once. The defaults fit the chart's 128Mi
/// memory limit.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// How long a client may take to finish its TLS handshake.
    pub handshake_timeout: Duration,
    /// HTTP/1: how long a client may take to send a request head, also between requests.
    pub header_read_timeout: Duration,
    /// How long a connection may stay open with no request in flight.
    pub idle_timeout: Duration,
    /// Connections open at once (fewer when the open files limit is lower); when all are
    /// taken, new ones wait in the kernel's backlog.
    pub max_connections: usize,
    /// Bytes of request bodies held at once, over all connections; a request whose body does
    /// not fit is answered 503.
    pub max_in_flight_body_bytes: usize,
    /// HTTP/2: streams open at once on one connection.
    pub max_concurrent_streams: u32,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            handshake_timeout: Duration::from_secs(5),
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(30),
            max_connections: 512,
            max_in_flight_body_bytes: 16 * 1024 * 1024,
            max_concurrent_streams: 100,
        }
    }
}

/// Limits that cannot work together.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum Invalid {
    /// A body of the largest size could never be read.
    #[error(
        "--max-in-flight-body-bytes ({budget}) is smaller than --max-body-bytes ({max_body}): a body of the largest size could never be read; raise it or lower --max-body-bytes"
    )]
    BudgetBelowBody {
        /// The budget.
        budget: usize,
        /// The largest body.
        max_body: usize,
    },
    /// The budget is counted in 32 bits.
    #[error("--max-in-flight-body-bytes ({0}) is above 4 GiB; lower it")]
    BudgetTooLarge(usize),
    /// A timeout or count of zero would refuse everything.
    #[error("{0} must be more than zero")]
    Zero(&'static str),
}

impl Limits {
    /// The body budget in permits, once the limits are known to work together.
    pub(super) fn body_budget(&self, max_body: usize) -> Result<u32, Invalid> {
        let zero = [
            (self.handshake_timeout.is_zero(), "--tls-handshake-timeout"),
            (self.header_read_timeout.is_zero(), "--header-read-timeout"),
            (self.idle_timeout.is_zero(), "--idle-timeout"),
            (self.max_connections == 0, "--max-connections"),
            (self.max_concurrent_streams == 0, "--max-concurrent-streams"),
        ];
        if let Some((_, name)) = zero.iter().find(|(is_zero, _)| *is_zero) {
            return Err(Invalid::Zero(name));
        }
        let budget = self.max_in_flight_body_bytes;
        if budget < max_body {
            return Err(Invalid::BudgetBelowBody { budget, max_body });
        }
        u32::try_from(budget).map_err(|_| Invalid::BudgetTooLarge(budget))
    }
}

/// The connections allowed: as asked, but never more than the open files limit leaves.
pub(super) fn connection_cap(requested: usize, open_files: Option<u64>) -> usize {
    match open_files {
        Some(limit) => {
            let room =
                usize::try_from(limit.saturating_sub(RESERVED_FDS).max(1)).unwrap_or(usize::MAX);
            requested.min(room)
        }
        None => requested,
    }
}

/// The pause after the `failures`-th accept failure in a row: 10 ms, doubling, at most 1 s.
pub(super) fn accept_backoff(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    ACCEPT_BACKOFF_FIRST
        .saturating_mul(1 << doublings)
        .min(ACCEPT_BACKOFF_MAX)
}

/// A request's share of the body budget: its exact size when the framing tells it, else the
/// largest body accepted (the body limit stops it there).
pub(super) fn body_share(exact: Option<u64>, max_body: usize) -> u32 {
    let max = u64::try_from(max_body).unwrap_or(u64::MAX);
    u32::try_from(exact.map_or(max, |n| n.min(max))).unwrap_or(u32::MAX)
}

/// How long to wait before a connection may count as idle: `None` when it is idle now.
fn idle_wait(in_flight: usize, since_last: Duration, timeout: Duration) -> Option<Duration> {
    if in_flight > 0 {
        return Some(timeout);
    }
    let left = timeout.saturating_sub(since_last);
    (!left.is_zero()).then_some(left)
}

/// Requests in flight on one connection and when the last one started or ended.
#[derive(Debug)]
pub(super) struct Activity {
    origin: Instant,
    in_flight: AtomicUsize,
    last_ms: AtomicU64,
}

/// One request in flight; it ends when dropped.
#[derive(Debug)]
pub(super) struct InFlight(Arc<Activity>);

impl Activity {
    pub(super) fn new() -> Activity {
        Activity {
            origin: Instant::now(),
            in_flight: AtomicUsize::new(0),
            last_ms: AtomicU64::new(0),
        }
    }

    fn touch(&self) {
        let ms = u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::SeqCst);
    }

    /// Counts a request until the guard is dropped.
    pub(super) fn begin(self: &Arc<Activity>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        self.touch();
        InFlight(self.clone())
    }

    /// Resolves once no request has been in flight for `timeout`.
    pub(super) async fn idle(&self, timeout: Duration) {
        loop {
            let since_last = self
                .origin
                .elapsed()
                .saturating_sub(Duration::from_millis(self.last_ms.load(Ordering::SeqCst)));
            match idle_wait(self.in_flight.load(Ordering::SeqCst), since_last, timeout) {
                None => return,
                Some(wait) => tokio::time::sleep(wait).await,
            }
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.touch();
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: usize = 1024 * 1024;

    #[test]
    fn the_body_budget_must_hold_the_largest_body_and_fit_32_bits() {
        let with = |budget| Limits {
            max_in_flight_body_bytes: budget,
            ..Limits::default()
        };
        assert_eq!(with(16 * MIB).body_budget(3 * MIB), Ok(16 * MIB as u32));
        assert_eq!(with(3 * MIB).body_budget(3 * MIB), Ok(3 * MIB as u32));
        assert_eq!(
            with(MIB).body_budget(3 * MIB),
            Err(Invalid::BudgetBelowBody {
                budget: MIB,
                max_body: 3 * MIB
            })
        );
        assert_eq!(
            with(5 << 30).body_budget(3 * MIB),
            Err(Invalid::BudgetTooLarge(5 << 30))
        );
        let no_idle = Limits {
            idle_timeout: Duration::ZERO,
            ..Limits::default()
        };
        assert_eq!(
            no_idle.body_budget(MIB),
            Err(Invalid::Zero("--idle-timeout"))
        );
        let no_connections = Limits {
            max_connections: 0,
            ..Limits::default()
        };
        assert_eq!(
            no_connections.body_budget(MIB),
            Err(Invalid::Zero("--max-connections"))
        );
    }

    #[test]
    fn connections_leave_descriptors_for_the_rest() {
        let cases = [
            (512, Some(20_000), 512),
            (512, Some(256), 192),
            (512, None, 512),
            (512, Some(10), 1),
        ];
        for (requested, limit, want) in cases {
            assert_eq!(
                connection_cap(requested, limit),
                want,
                "{requested} {limit:?}"
            );
        }
    }

    #[test]
    fn failed_accepts_back_off_doubling_up_to_a_second() {
        let ms = |n| accept_backoff(n).as_millis();
        assert_eq!(
            [ms(1), ms(2), ms(3), ms(7), ms(8), ms(100), ms(u32::MAX)],
            [10, 20, 40, 640, 1000, 1000, 1000]
        );
    }

    #[test]
    fn a_body_takes_its_size_or_the_largest_when_unknown() {
        let cases = [
            (Some(0), 0),
            (Some(1234), 1234),
            (Some(10 * MIB as u64), 3 * MIB as u32),
            (None, 3 * MIB as u32),
        ];
        for (exact, want) in cases {
            assert_eq!(body_share(exact, 3 * MIB), want, "{exact:?}");
        }
    }

    #[test]
    fn a_connection_is_idle_only_with_nothing_in_flight_for_the_timeout() {
        let s = Duration::from_secs;
        let cases = [
            (1, s(100), Some(s(30))),
            (0, s(0), Some(s(30))),
            (0, s(20), Some(s(10))),
            (0, s(30), None),
            (0, s(31), None),
        ];
        for (in_flight, since, want) in cases {
            assert_eq!(
                idle_wait(in_flight, since, s(30)),
                want,
                "{in_flight} {since:?}"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_in_flight_keeps_the_connection_busy() {
        let activity = Arc::new(Activity::new());
        let request = activity.begin();
        let idle = activity.idle(Duration::from_secs(30));
        tokio::pin!(idle);
        assert!(
            tokio::time::timeout(Duration::from_secs(90), &mut idle)
                .await
                .is_err(),
            "busy"
        );
        drop(request);
        tokio::time::timeout(Duration::from_secs(61), idle)
            .await
            .expect("idle once the request ended");
    }
}
