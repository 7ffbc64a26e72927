//! Retrying transient Vault failures (unreachable, sealed, overloaded) with jittered exponential
//! backoff until a deadline. Every retry sleeps: a retry path without a sleep is how agents have
//! taken Vault down (vault#26844, openbao#3747).

use std::time::Duration;

use backon::{BackoffBuilder as _, ExponentialBuilder};
use tokio::time::Instant;

use super::Error;

/// The first delay; later ones double, with jitter, up to [`MAX_DELAY`] (jitter included).
const MIN_DELAY: Duration = Duration::from_millis(250);

/// The longest delay between two attempts, jitter included. backon adds its jitter on top of the
/// doubled step (up to as much again), so the step stops doubling at half of this.
const MAX_DELAY: Duration = Duration::from_secs(10);

/// Runs `op` until it succeeds, fails for good, or `deadline` would pass before the next attempt.
/// `what` says what `op` asks, for messages ("reading secret/data/app/db").
pub async fn until<T>(
    deadline: Instant,
    what: &str,
    mut op: impl AsyncFnMut() -> Result<T, Error>,
) -> Result<T, Error> {
    let started = Instant::now();
    let mut delays = ExponentialBuilder::default()
        .with_jitter()
        .with_min_delay(MIN_DELAY)
        .with_max_delay(MAX_DELAY / 2)
        .without_max_times()
        .build();
    let mut attempts = 0;
    loop {
        attempts += 1;
        let error = match tokio::time::timeout_at(deadline, op()).await {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(e)) if e.is_transient() => e,
            Ok(Err(e)) => return Err(e),
            Err(_elapsed) => Error::Unanswered {
                what: what.to_owned(),
            },
        };
        let delay = delays.next().unwrap_or(MAX_DELAY).min(MAX_DELAY);
        if Instant::now() + delay >= deadline {
            return Err(Error::GaveUp {
                attempts,
                waited: started.elapsed(),
                last: Box::new(error),
            });
        }
        // `what` is the caller's to word (it leaves out a path computed from a secret); the
        // error may name the path, so only its kind is logged here. The last one is returned.
        tracing::warn!(
            what,
            kind = error.kind(),
            attempt = attempts,
            retry_in_ms = delay.as_millis() as u64,
            "vault request failed; retrying"
        );
        tokio::time::sleep(delay).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unreachable() -> Error {
        Error::Unreachable {
            address: "http://v".into(),
            reason: "connection refused".into(),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn transient_failures_are_retried_with_growing_sleeps_until_the_deadline() {
        let start = Instant::now();
        let mut calls = Vec::new();
        let result: Result<(), Error> =
            until(start + Duration::from_secs(30), "reading x", async || {
                calls.push(Instant::now() - start);
                Err(unreachable())
            })
            .await;
        let Err(Error::GaveUp { attempts, last, .. }) = result else {
            panic!("expected GaveUp, got {result:?}");
        };
        assert!(matches!(*last, Error::Unreachable { .. }));
        assert_eq!(attempts as usize, calls.len());
        // Never a tight loop: every gap is at least the minimum delay, and they grow.
        let gaps: Vec<Duration> = calls.windows(2).map(|w| w[1] - w[0]).collect();
        assert!(gaps.iter().all(|g| *g >= MIN_DELAY), "{gaps:?}");
        assert!(gaps.iter().all(|g| *g <= MAX_DELAY), "{gaps:?}");
        assert!(gaps.last() > gaps.first(), "{gaps:?}");
        assert!(*calls.last().expect("calls") < Duration::from_secs(30));
        assert!(
            (5..=16).contains(&calls.len()),
            "{} attempts in 30 s",
            calls.len()
        );
    }

    /// The documented cap holds with jitter: over ten minutes of failures no pause passes 10 s,
    /// and the late ones come close to it (backon's jitter alone reached 20 s).
    #[tokio::test(start_paused = true)]
    async fn no_pause_passes_the_cap_even_with_jitter() {
        let start = Instant::now();
        let mut calls = Vec::new();
        let _: Result<(), Error> =
            until(start + Duration::from_secs(600), "reading x", async || {
                calls.push(Instant::now());
                Err(unreachable())
            })
            .await;
        let gaps: Vec<Duration> = calls.windows(2).map(|w| w[1] - w[0]).collect();
        assert!(gaps.len() > 50, "{} attempts", calls.len());
        assert!(gaps.iter().all(|g| *g <= MAX_DELAY), "{gaps:?}");
        assert!(
            gaps.iter().rev().take(20).all(|g| *g >= MAX_DELAY / 2),
            "{gaps:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn permanent_failures_are_not_retried() {
        let mut calls = 0;
        let result: Result<(), Error> = until(
            Instant::now() + Duration::from_secs(30),
            "reading x",
            async || {
                calls += 1;
                Err(Error::NotFound { path: "x".into() })
            },
        )
        .await;
        assert!(matches!(result, Err(Error::NotFound { .. })));
        assert_eq!(calls, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn success_after_failures_returns_the_value() {
        let mut calls = 0;
        let result = until(
            Instant::now() + Duration::from_secs(30),
            "reading x",
            async || {
                calls += 1;
                if calls < 3 {
                    Err(unreachable())
                } else {
                    Ok(calls)
                }
            },
        )
        .await;
        assert_eq!(result.expect("succeeds"), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn a_hung_request_is_cut_at_the_deadline() {
        let start = Instant::now();
        let result: Result<(), Error> =
            until(start + Duration::from_secs(5), "reading x", async || {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                Ok(())
            })
            .await;
        assert!(
            matches!(result, Err(Error::GaveUp { attempts: 1, .. })),
            "{result:?}"
        );
        assert_eq!(Instant::now() - start, Duration::from_secs(5));
    }
}
