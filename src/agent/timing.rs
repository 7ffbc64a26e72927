//! When the sidecar renews, replaces, re-issues, refreshes and retries: pure functions of
//! lifetimes and a jitter sample in `[0, 1)`, so that every rule is tested without waiting.
//!
//! The numbers follow Vault Agent's (see the reference on vault-agent): renewals at about two
//! thirds of what is left, replacements of what cannot be renewed at about 90% of its life
//! (`renewal_threshold`), KV refreshes at the interval ±10%, login backoff from 1 s to 5 min.

use std::time::{Duration, SystemTime};

/// When to renew a token or lease that has `ttl` left: 60% to 70% of it.
pub fn renew_in(ttl: Duration, jitter: f64) -> Duration {
    ttl.mul_f64(0.6 + 0.1 * clamp(jitter))
}

/// When to replace something that will not last (a non-renewable lease, a renewal cut short by
/// its max TTL) with `remaining` left: at `threshold` of it, ±5%, never at or after the end.
pub fn replace_in(remaining: Duration, threshold: f64, jitter: f64) -> Duration {
    let fraction = (threshold + (clamp(jitter) - 0.5) * 0.1).clamp(0.5, 0.95);
    remaining.mul_f64(fraction)
}

/// When to re-issue a certificate valid from `not_before` to `not_after`: at `threshold` of its
/// lifetime, ±2%.
pub fn reissue_at(
    not_before: SystemTime,
    not_after: SystemTime,
    threshold: f64,
    jitter: f64,
) -> SystemTime {
    let lifetime = not_after.duration_since(not_before).unwrap_or_default();
    let fraction = (threshold + (clamp(jitter) - 0.5) * 0.04).clamp(0.5, 0.98);
    not_before + lifetime.mul_f64(fraction)
}

/// When to read a lease-less secret again: the interval ±10%.
pub fn refresh_in(interval: Duration, jitter: f64) -> Duration {
    interval.mul_f64(0.9 + 0.2 * clamp(jitter))
}

/// Whether a renewal came back cut short: Vault granted noticeably less than was asked, which
/// it does when the max TTL is near. Renewing again would only shrink further.
pub fn truncated(asked: Duration, granted: Duration) -> bool {
    granted < asked.mul_f64(0.9)
}

/// The pause before attempt `failures + 1` after `failures` failures in a row: doubling from
/// `min` to `max`, each pause jittered down by up to 25% (Vault Agent's login backoff).
pub fn backoff(failures: u32, min: Duration, max: Duration, jitter: f64) -> Duration {
    let doubled = min.saturating_mul(2u32.saturating_pow(failures.min(30)));
    doubled.min(max).mul_f64(1.0 - 0.25 * clamp(jitter))
}

fn clamp(jitter: f64) -> f64 {
    if jitter.is_finite() {
        jitter.clamp(0.0, 1.0)
    } else {
        0.5
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn renewals_come_at_about_two_thirds_of_what_is_left() {
        assert_eq!(renew_in(S(3600), 0.0), S(2160));
        assert_eq!(renew_in(S(3600), 1.0), S(2520));
        for j in [0.0, 0.25, 0.5, 0.99] {
            let at = renew_in(S(3), j);
            assert!(
                at >= Duration::from_millis(1800) && at <= Duration::from_millis(2100),
                "{at:?}"
            );
        }
        assert_eq!(renew_in(Duration::ZERO, 0.5), Duration::ZERO);
    }

    #[test]
    fn replacements_come_at_the_threshold_never_at_the_end() {
        assert_eq!(replace_in(S(100), 0.9, 0.5), S(90));
        assert_eq!(replace_in(S(100), 0.9, 0.0), S(85));
        assert_eq!(replace_in(S(100), 0.9, 1.0), S(95));
        assert!(
            replace_in(S(100), 0.99, 1.0) <= S(95),
            "capped below the end"
        );
        assert_eq!(replace_in(S(100), 0.8, 0.5), S(80));
    }

    #[test]
    fn certificates_are_reissued_at_the_threshold_of_their_lifetime() {
        let start = SystemTime::UNIX_EPOCH + S(1_000_000);
        let end = start + S(1000);
        assert_eq!(reissue_at(start, end, 0.9, 0.5), start + S(900));
        let early = reissue_at(start, end, 0.9, 0.0);
        let late = reissue_at(start, end, 0.9, 1.0);
        assert!(
            early >= start + S(880) && late <= start + S(920),
            "{early:?} {late:?}"
        );
        assert_eq!(
            reissue_at(end, start, 0.9, 0.5),
            end,
            "a backwards certificate is due now"
        );
    }

    #[test]
    fn refreshes_come_at_the_interval_within_ten_percent() {
        assert_eq!(refresh_in(S(300), 0.0), S(270));
        assert_eq!(refresh_in(S(300), 1.0), S(330));
        assert_eq!(refresh_in(S(300), 0.5), S(300));
    }

    #[test]
    fn a_renewal_granting_less_than_asked_is_truncated() {
        assert!(!truncated(S(3600), S(3600)));
        assert!(!truncated(S(3600), S(3300)));
        assert!(truncated(S(3600), S(1200)));
        assert!(truncated(S(3), S(1)));
    }

    #[test]
    fn backoff_doubles_from_min_to_max_with_jitter_below() {
        let (min, max) = (S(1), S(300));
        let pauses: Vec<Duration> = (0..12).map(|n| backoff(n, min, max, 0.0)).collect();
        assert_eq!(&pauses[..4], [S(1), S(2), S(4), S(8)]);
        assert_eq!(pauses[8], S(256));
        assert_eq!(pauses[9], S(300), "capped");
        assert_eq!(pauses[11], S(300));
        assert_eq!(backoff(0, min, max, 1.0), Duration::from_millis(750));
        assert_eq!(backoff(u32::MAX, min, max, 0.0), S(300), "no overflow");
        assert!(
            pauses.iter().all(|p| *p >= Duration::from_millis(750)),
            "never a tight loop"
        );
    }

    #[test]
    fn odd_jitter_samples_are_clamped() {
        assert_eq!(renew_in(S(100), f64::NAN), renew_in(S(100), 0.5));
        assert_eq!(renew_in(S(100), 7.0), renew_in(S(100), 1.0));
    }
}
