//! Every timing rule, on tokio's paused clock: hours of schedule run in milliseconds, against a
//! model of how Vault grants TTLs (capped by a max TTL counted from creation).

use super::*;

const S: fn(u64) -> Duration = Duration::from_secs;

fn rules() -> Rules {
    Rules {
        refresh: S(300),
        threshold: 0.9,
        login_backoff: (S(1), S(300)),
    }
}

fn kv() -> Request {
    Request::read("secret/data/app")
}

fn db() -> Request {
    Request::read("database/creds/app")
}

fn pki() -> Request {
    let mut params = std::collections::BTreeMap::new();
    params.insert("common_name".to_owned(), serde_json::json!("web"));
    Request::write("pki/issue/web", &params)
}

/// How the model Vault answers.
#[derive(Clone)]
struct Vault {
    token_ttl: Duration,
    token_max: Duration,
    lease_ttl: Duration,
    lease_max: Duration,
    lease_renewable: bool,
    cert_ttl: Duration,
    /// Logins fail while this returns true for the elapsed time.
    login_down: fn(Duration) -> bool,
    /// Everything but logins fails (transiently) while this returns true.
    down: fn(Duration) -> bool,
}

impl Default for Vault {
    fn default() -> Vault {
        Vault {
            token_ttl: S(3600),
            token_max: S(32 * 24 * 3600),
            lease_ttl: S(3600),
            lease_max: S(24 * 3600),
            lease_renewable: true,
            cert_ttl: S(72 * 3600),
            login_down: |_| false,
            down: |_| false,
        }
    }
}

/// One step the schedule took, `at` seconds in.
#[derive(Clone, Debug)]
struct Step {
    at: f64,
    work: Work,
    ok: bool,
}

/// Runs the schedule for `duration` of paused-clock time against `vault`, the way the sidecar
/// does: sleep until the next deadline, do what is due, report. Starts with a login and a
/// first fetch of `requests`.
async fn drive(vault: &Vault, requests: &[Request], duration: Duration) -> (Schedule, Vec<Step>) {
    let start = Instant::now();
    let epoch = SystemTime::UNIX_EPOCH + S(1_700_000_000);
    let mut schedule = Schedule::new(rules(), 1, fastrand::Rng::with_seed(7), start);
    let mut steps = Vec::new();
    let mut token_born = start;
    let mut lease_born = start;
    let mut first = true;
    loop {
        let next = schedule.next();
        if next > start + duration {
            break;
        }
        tokio::time::sleep_until(next).await;
        let now = Instant::now();
        let elapsed = now - start;
        let wall = epoch + elapsed;
        for work in schedule.due(now) {
            let down = (vault.down)(elapsed);
            let ok = match &work {
                Work::Login if (vault.login_down)(elapsed) => {
                    schedule.login_failed(now);
                    false
                }
                Work::Login => {
                    token_born = now;
                    schedule.logged_in(now, vault.token_ttl.min(vault.token_max), true);
                    if first {
                        first = false;
                        for request in requests {
                            answer(&mut schedule, vault, request, now, wall, &mut lease_born);
                        }
                    }
                    true
                }
                Work::RenewToken { .. } if down => {
                    schedule.token_renewal_failed(now, true);
                    false
                }
                Work::RenewToken { increment } => {
                    let left = (token_born + vault.token_max).saturating_duration_since(now);
                    if left.is_zero() {
                        schedule.token_renewal_failed(now, false);
                        false
                    } else {
                        schedule.token_renewed(now, (*increment).min(left), true);
                        true
                    }
                }
                Work::RenewLease { .. } if down => {
                    schedule.lease_renewal_failed(now, &db(), true);
                    false
                }
                Work::RenewLease {
                    request, increment, ..
                } => {
                    let left = (lease_born + vault.lease_max).saturating_duration_since(now);
                    if left.is_zero() {
                        schedule.lease_renewal_failed(now, request, false);
                        false
                    } else {
                        schedule.lease_renewed(now, request, (*increment).min(left), true);
                        true
                    }
                }
                Work::Fetch(request) if down => {
                    schedule.fetch_failed(now, request);
                    false
                }
                Work::Fetch(request) => {
                    answer(&mut schedule, vault, request, now, wall, &mut lease_born);
                    true
                }
                Work::Render(which) => {
                    for i in which {
                        schedule.rendered(*i);
                    }
                    true
                }
            };
            steps.push(Step {
                at: elapsed.as_secs_f64(),
                work,
                ok,
            });
        }
    }
    (schedule, steps)
}

fn answer(
    schedule: &mut Schedule,
    vault: &Vault,
    request: &Request,
    now: Instant,
    wall: SystemTime,
    lease_born: &mut Instant,
) {
    let response = if *request == db() {
        *lease_born = now;
        Response::Lease {
            id: format!("database/creds/app/{}", now.elapsed().as_nanos()),
            ttl: vault.lease_ttl.min(vault.lease_max),
            renewable: vault.lease_renewable,
        }
    } else if *request == pki() {
        Response::Certificate {
            not_before: wall,
            not_after: wall + vault.cert_ttl,
        }
    } else {
        Response::Static
    };
    schedule.fetched(now, wall, Duration::ZERO, request, response);
}

fn times(steps: &[Step], pick: impl Fn(&Work) -> bool) -> Vec<f64> {
    steps
        .iter()
        .filter(|s| pick(&s.work))
        .map(|s| s.at)
        .collect()
}

fn gaps(times: &[f64]) -> Vec<f64> {
    times.windows(2).map(|w| w[1] - w[0]).collect()
}

fn is_login(w: &Work) -> bool {
    matches!(w, Work::Login)
}

fn is_token_renewal(w: &Work) -> bool {
    matches!(w, Work::RenewToken { .. })
}

fn fetches(request: Request) -> impl Fn(&Work) -> bool {
    move |w| *w == Work::Fetch(request.clone())
}

#[tokio::test(start_paused = true)]
async fn a_token_is_renewed_at_about_two_thirds_of_its_ttl_and_never_logs_in_again() {
    let (_, steps) = drive(&Vault::default(), &[], S(10 * 3600)).await;
    assert_eq!(times(&steps, is_login), [0.0]);
    let renewals = times(&steps, is_token_renewal);
    assert!(renewals.len() >= 14, "{renewals:?}");
    assert!((2160.0..=2520.0).contains(&renewals[0]), "{renewals:?}");
    for gap in gaps(&renewals) {
        assert!((2160.0..=2520.0).contains(&gap), "renewed after {gap} s");
    }
}

#[tokio::test(start_paused = true)]
async fn a_token_near_its_max_ttl_is_replaced_by_a_login_before_it_ends() {
    let vault = Vault {
        token_ttl: S(3),
        token_max: S(12),
        ..Vault::default()
    };
    let (_, steps) = drive(&vault, &[kv()], S(40)).await;
    let logins = times(&steps, is_login);
    assert_eq!(logins.len(), 4, "{steps:?}");
    for gap in gaps(&logins) {
        // At 90% ±5% of the 12 s life: never after the token ended.
        assert!((10.2..=11.4).contains(&gap), "a new login after {gap} s");
    }
    let renewals = times(&steps, is_token_renewal);
    assert!((16..=20).contains(&renewals.len()), "{renewals:?}");
    assert!(steps.iter().all(|s| s.ok), "no renewal was refused");
    assert_eq!(
        times(&steps, fetches(kv())),
        Vec::<f64>::new(),
        "a login fetches no KV value again"
    );
}

#[tokio::test(start_paused = true)]
async fn a_token_that_cannot_be_renewed_is_replaced_at_about_ninety_percent() {
    let start = Instant::now();
    let mut schedule = Schedule::new(rules(), 0, fastrand::Rng::with_seed(1), start);
    schedule.logged_in(start, S(100), false);
    tokio::time::sleep_until(schedule.next()).await;
    let at = (Instant::now() - start).as_secs_f64();
    assert!((85.0..=95.0).contains(&at), "login again at {at}");
    assert_eq!(schedule.due(Instant::now()), [Work::Login]);
}

#[tokio::test(start_paused = true)]
async fn login_failures_back_off_from_one_second_to_five_minutes_and_reset_on_success() {
    let vault = Vault {
        login_down: |t| t < S(1800),
        ..Vault::default()
    };
    let (_, steps) = drive(&vault, &[], S(2200)).await;
    let attempts = times(&steps, is_login);
    let pauses = gaps(&attempts);
    // 1, 2, 4, ... 256, then 300 s at most, each jittered down by up to a quarter.
    for (n, pause) in pauses.iter().enumerate() {
        let full = f64::from(1u32 << n.min(20)).min(300.0);
        assert!(
            *pause <= full + 1e-6 && *pause >= full * 0.75 - 1e-6,
            "pause {n} was {pause} s, not within 75-100% of {full}"
        );
    }
    assert!(
        pauses.iter().any(|p| *p > 200.0),
        "the pause reaches its cap"
    );
    assert!(attempts.len() < 20, "no tight loop: {}", attempts.len());
    assert!(
        steps.last().expect("steps").ok,
        "logged in once Vault was back"
    );

    // After a success the backoff starts again from 1 s.
    let now = Instant::now();
    let mut schedule = Schedule::new(rules(), 0, fastrand::Rng::with_seed(3), now);
    for _ in 0..6 {
        schedule.login_failed(now);
    }
    schedule.logged_in(now, S(3600), true);
    assert!(schedule.login_failed(now) <= S(1));
}

#[tokio::test(start_paused = true)]
async fn a_renewable_lease_is_renewed_then_replaced_before_its_max_ttl() {
    let vault = Vault {
        lease_ttl: S(5),
        lease_max: S(15),
        ..Vault::default()
    };
    let (_, steps) = drive(&vault, &[db()], S(60)).await;
    let replacements = times(&steps, fetches(db()));
    assert!(replacements.len() >= 4, "{steps:?}");
    let mut born = 0.0;
    for at in &replacements {
        let age = at - born;
        // At 85-95% of the 15 s life, or when a renewal first shows the end is near.
        assert!((12.0..15.0).contains(&age), "replaced at {age} s of 15");
        born = *at;
    }
    let renewals = steps
        .iter()
        .filter(|s| matches!(s.work, Work::RenewLease { .. }))
        .count();
    assert!(
        renewals >= 3 * replacements.len(),
        "renewed in between: {renewals}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_lease_that_cannot_be_renewed_is_replaced_at_about_ninety_percent() {
    let vault = Vault {
        lease_ttl: S(100),
        lease_renewable: false,
        ..Vault::default()
    };
    let (_, steps) = drive(&vault, &[db()], S(400)).await;
    let replacements = times(&steps, fetches(db()));
    assert!(replacements.len() >= 4, "{replacements:?}");
    let mut born = 0.0;
    for at in &replacements {
        assert!((85.0..=95.0).contains(&(at - born)), "{replacements:?}");
        born = *at;
    }
    assert!(
        !steps
            .iter()
            .any(|s| matches!(s.work, Work::RenewLease { .. })),
        "never renewed"
    );
}

#[tokio::test(start_paused = true)]
async fn a_certificate_is_reissued_at_ninety_percent_of_its_life_and_not_at_a_login() {
    let vault = Vault {
        token_ttl: S(3),
        token_max: S(12),
        cert_ttl: S(100),
        ..Vault::default()
    };
    let (_, steps) = drive(&vault, &[pki()], S(300)).await;
    let issued = times(&steps, fetches(pki()));
    assert_eq!(issued.len(), 3, "{issued:?}");
    let mut last = 0.0;
    for at in &issued {
        assert!((88.0..=92.0).contains(&(at - last)), "{issued:?}");
        last = *at;
    }
    assert!(times(&steps, is_login).len() > 20, "many logins meanwhile");
}

#[tokio::test(start_paused = true)]
async fn kv_values_are_read_again_every_refresh_interval_within_ten_percent() {
    let (_, steps) = drive(&Vault::default(), &[kv()], S(3600)).await;
    let reads = times(&steps, fetches(kv()));
    assert!((11..=13).contains(&reads.len()), "{reads:?}");
    let mut last = 0.0;
    for at in &reads {
        assert!((270.0..=330.0).contains(&(at - last)), "{reads:?}");
        last = *at;
    }
}

#[tokio::test(start_paused = true)]
async fn a_new_login_fetches_again_only_the_leases_of_the_old_token() {
    let vault = Vault {
        token_ttl: S(3),
        token_max: S(12),
        ..Vault::default()
    };
    let (_, steps) = drive(&vault, &[kv(), db(), pki()], S(40)).await;
    let logins = times(&steps, is_login);
    let db_fetches = times(&steps, fetches(db()));
    // The lease died with each replaced token: fetched again right after each new login.
    assert_eq!(db_fetches, logins[1..], "{steps:?}");
    assert!(times(&steps, fetches(kv())).is_empty());
    assert!(times(&steps, fetches(pki())).is_empty());
}

#[tokio::test(start_paused = true)]
async fn failing_fetches_and_renewals_back_off_and_never_loop() {
    let vault = Vault {
        lease_ttl: S(30),
        down: |t| t > S(5) && t < S(3600),
        ..Vault::default()
    };
    let (schedule, steps) = drive(&vault, &[kv(), db()], S(3700)).await;
    let failed: Vec<&Step> = steps.iter().filter(|s| !s.ok).collect();
    assert!(!failed.is_empty());
    // A down hour costs a few dozen requests, not thousands.
    assert!(failed.len() < 60, "{} failed steps", failed.len());
    for pick in [fetches(kv()), fetches(db())] {
        let attempts: Vec<f64> = failed
            .iter()
            .filter(|s| pick(&s.work))
            .map(|s| s.at)
            .collect();
        for pair in gaps(&attempts).windows(2) {
            assert!(
                pair[1] >= pair[0] * 1.4 || pair[1] >= 225.0,
                "growing pauses: {attempts:?}"
            );
        }
    }
    assert!(schedule.has_token());
    assert!(steps.last().expect("steps").ok, "recovered");
}

#[tokio::test(start_paused = true)]
async fn a_transient_token_renewal_failure_is_retried_but_a_login_comes_before_the_end() {
    let start = Instant::now();
    let mut schedule = Schedule::new(rules(), 0, fastrand::Rng::with_seed(5), start);
    schedule.logged_in(start, S(10), true);
    let mut steps = Vec::new();
    while steps.len() < 8 {
        tokio::time::sleep_until(schedule.next()).await;
        let now = Instant::now();
        for work in schedule.due(now) {
            steps.push(((now - start).as_secs_f64(), work.clone()));
            match work {
                Work::RenewToken { .. } => {
                    schedule.token_renewal_failed(now, true);
                }
                Work::Login => schedule.logged_in(now, S(10), true),
                _ => {}
            }
        }
    }
    let first_login = steps
        .iter()
        .find(|(_, w)| *w == Work::Login)
        .expect("a login");
    assert!(
        first_login.0 <= 10.0,
        "logged in by the token's end: {steps:?}"
    );
    // A refused renewal means a login at once.
    let now = Instant::now();
    schedule.token_renewal_failed(now, false);
    assert_eq!(schedule.next(), now);
    assert_eq!(schedule.due(now), [Work::Login]);
}

#[tokio::test(start_paused = true)]
async fn a_failed_render_is_retried_with_backoff_until_it_succeeds() {
    let start = Instant::now();
    let mut schedule = Schedule::new(rules(), 2, fastrand::Rng::with_seed(9), start);
    schedule.logged_in(start, Duration::ZERO, false);
    let mut retries = Vec::new();
    schedule.render_failed(start, 1);
    while retries.len() < 5 {
        tokio::time::sleep_until(schedule.next()).await;
        let now = Instant::now();
        let due = schedule.due(now);
        assert_eq!(due, [Work::Render(vec![1])]);
        retries.push((now - start).as_secs_f64());
        schedule.render_failed(now, 1);
    }
    for (n, gap) in gaps(&retries).iter().enumerate() {
        let full = f64::from(2u32 << n);
        assert!(*gap <= full && *gap >= full * 0.75, "{retries:?}");
    }
    schedule.rendered(1);
    assert!(schedule.due(Instant::now() + S(3600)).is_empty());
    // A failure caused by Vault waits for the fetch's retry instead.
    schedule.render_failed(Instant::now(), 0);
    schedule.render_waits_for_vault(0);
    assert!(schedule.due(Instant::now() + S(3600)).is_empty());
}

#[tokio::test(start_paused = true)]
async fn what_an_init_container_fetched_keeps_its_age() {
    let now = Instant::now();
    let wall = SystemTime::UNIX_EPOCH + S(1_700_000_000);
    let mut schedule = Schedule::new(rules(), 1, fastrand::Rng::with_seed(11), now);
    schedule.adopted(now, S(3000), true);
    schedule.fetched(now, wall, S(120), &kv(), Response::Static);
    schedule.fetched(
        now,
        wall,
        S(120),
        &db(),
        Response::Lease {
            id: "l".into(),
            ttl: S(100),
            renewable: false,
        },
    );
    tokio::time::sleep_until(schedule.next()).await;
    let at = (Instant::now() - now).as_secs_f64();
    // The 220 s lease, 120 s old, is replaced at 85-95% of its whole life.
    assert!((67.0..=89.0).contains(&at), "{at}");
    assert_eq!(schedule.due(Instant::now()), [Work::Fetch(db())]);
    let lease = schedule.lease(&db()).expect("lease");
    assert_eq!(lease.born, now - S(120));
    // The KV value, read 120 s before, is due 150-210 s from now, not 270-330.
    schedule.fetched(Instant::now(), wall, Duration::ZERO, &db(), Response::Once);
    tokio::time::sleep_until(schedule.next()).await;
    let at = (Instant::now() - now).as_secs_f64();
    assert!((150.0..=210.0).contains(&at), "{at}");
    // The adopted token is renewed, and a first login later fetches the lease again.
    assert_eq!(schedule.due(Instant::now()), [Work::Fetch(kv())]);
}

#[tokio::test(start_paused = true)]
async fn a_lease_of_no_length_is_read_again_like_a_plain_value() {
    let now = Instant::now();
    let mut schedule = Schedule::new(rules(), 1, fastrand::Rng::with_seed(13), now);
    schedule.logged_in(now, Duration::ZERO, false);
    let lease = Response::Lease {
        id: "l".into(),
        ttl: Duration::ZERO,
        renewable: true,
    };
    schedule.fetched(now, SystemTime::now(), Duration::ZERO, &db(), lease);
    assert!(schedule.next() >= now + S(270), "not due again at once");
}

/// A token found gone is replaced by a login at once, and what failed with it is fetched again
/// right after; a token found gone again and again (a role whose policies do not allow
/// lookup-self, say) costs logins backed off from 1 s to 5 min, not a storm.
#[tokio::test(start_paused = true)]
async fn a_lost_token_is_replaced_at_once_and_then_backed_off_while_it_keeps_happening() {
    let start = Instant::now();
    let mut schedule = Schedule::new(rules(), 1, fastrand::Rng::with_seed(7), start);
    schedule.logged_in(start, S(3600), true);
    schedule.fetched(
        start,
        SystemTime::now(),
        Duration::ZERO,
        &kv(),
        Response::Static,
    );
    let now = start + S(60);
    schedule.fetch_failed(now, &kv());
    assert_eq!(schedule.token_lost(now), Duration::ZERO);
    assert!(!schedule.has_token());
    assert_eq!(schedule.due(now), vec![Work::Login]);
    schedule.logged_in(now, S(3600), true);
    assert_eq!(
        schedule.due(now),
        vec![Work::Fetch(kv())],
        "what failed, at once"
    );

    let mut pauses = Vec::new();
    for _ in 0..12 {
        pauses.push(schedule.token_lost(now));
        schedule.logged_in(now, S(3600), true);
    }
    assert!(pauses[0] >= Duration::from_millis(750), "{pauses:?}");
    assert!(
        pauses.windows(2).all(|w| w[1] >= w[0].mul_f64(0.7)),
        "{pauses:?}"
    );
    assert!(pauses.iter().all(|p| *p <= S(300)), "{pauses:?}");
    assert!(*pauses.last().expect("pauses") >= S(225), "{pauses:?}");

    // Proven alive: the next loss is replaced at once again.
    schedule.token_confirmed();
    assert_eq!(schedule.token_lost(now), Duration::ZERO);
}

/// A path the policies deny stays denied whatever the token: its failures keep counting across
/// the logins that lost tokens call for (so exit_on_retry_failure can fire, and its backoff
/// grows), while a response with a new token proves it alive and resets the loss backoff.
#[tokio::test(start_paused = true)]
async fn failures_keep_counting_across_logins_and_a_response_resets_the_loss_backoff() {
    let start = Instant::now();
    let mut schedule = Schedule::new(rules(), 1, fastrand::Rng::with_seed(3), start);
    schedule.logged_in(start, S(3600), true);
    for round in 1..=4 {
        schedule.fetch_failed(start, &kv());
        schedule.token_lost(start);
        schedule.logged_in(start, S(3600), true);
        assert_eq!(schedule.fetch_failures(&kv()), round);
    }
    assert!(
        schedule.token_lost(start) > Duration::ZERO,
        "backed off by now"
    );
    schedule.logged_in(start, S(3600), true);
    schedule.fetched(
        start,
        SystemTime::now(),
        Duration::ZERO,
        &db(),
        Response::Static,
    );
    assert_eq!(
        schedule.token_lost(start),
        Duration::ZERO,
        "proven alive, so at once"
    );
}
