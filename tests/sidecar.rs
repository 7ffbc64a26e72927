//! `hydrant agent` as the sidecar, against a real OpenBao (and a real PostgreSQL for dynamic
//! credentials): token renewal and re-login, lease renewal and replacement, certificate
//! re-issue, KV refresh, an outage, the init-to-sidecar hand-over, watched files, the local
//! endpoints and shutdown. Every schedule is checked in the server's audit log.

use std::fs;
use std::net::SocketAddr;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use serde_json::{Value, json};

use crate::util::agent::{agent_config, db_template, out};
use crate::util::token_review::{TokenReviewer, kubernetes_setup};
use crate::util::{Hydrant, Postgres, Running, Vault, free_port, read, wait_for};

const S: fn(u64) -> Duration = Duration::from_secs;

/// A dev server with a KV secret and a policy that reads it, issues certificates and
/// database credentials.
fn seeded() -> Vault {
    let vault = Vault::start();
    vault.kv2_put(
        "app/db",
        json!({"username": "app-user", "password": "pw-1"}),
    );
    vault.policy(
        "app",
        r#"
path "secret/data/app/*" { capabilities = ["read"] }
path "pki/issue/web" { capabilities = ["update"] }
path "database/creds/app" { capabilities = ["read"] }
"#,
    );
    vault
}

/// AppRole auth whose tokens live `ttl` and at most `max_ttl`.
fn approle(vault: &Vault, ttl: &str, max_ttl: &str) -> Value {
    let (role_id, secret_id) = vault.approle("app", &["app"]);
    vault.api(
        "POST",
        "auth/approle/role/app",
        Some(json!({"token_policies": ["app"], "token_ttl": ttl, "token_max_ttl": max_ttl})),
    );
    json!({
        "method": "approle",
        "role_id_path": vault.file("creds/role-id", &role_id),
        "secret_id_path": vault.file("creds/secret-id", &secret_id),
    })
}

/// Starts the sidecar and waits for its first complete render.
fn start(vault: &Vault, config: &Path) -> Running {
    let mut agent = Hydrant::sidecar(config)
        .env("HYDRANT_LOG", "hydrant=debug")
        .spawn(&vault.path("agent.log"));
    let ready = vault.path("state/ready");
    let deadline = Instant::now() + S(20);
    while !ready.exists() {
        assert!(agent.running(), "the sidecar exited:\n{}", agent.log());
        assert!(Instant::now() < deadline, "never ready:\n{}", agent.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    agent
}

fn state_dir(vault: &Vault) -> PathBuf {
    vault.path("state")
}

fn count(counts: &std::collections::BTreeMap<String, usize>, key: &str) -> usize {
    counts.get(key).copied().unwrap_or(0)
}

/// The seconds between consecutive times.
fn gaps(times: &[SystemTime]) -> Vec<f64> {
    times
        .windows(2)
        .map(|w| w[1].duration_since(w[0]).unwrap_or_default().as_secs_f64())
        .collect()
}

/// Polls for `duration`, asserting `check` every 100 ms.
fn holds_for(duration: Duration, mut check: impl FnMut()) {
    let end = Instant::now() + duration;
    while Instant::now() < end {
        check();
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A token living 3 s, at most 12 s: for 40 s the sidecar renews it at about two thirds of its
/// TTL and logs in again near the max TTL (re-reading the service-account token each time), and
/// reads the KV secret only once: a new token does not re-fetch what did not die with the old.
#[test]
fn the_token_is_renewed_and_replaced_on_schedule_and_nothing_is_fetched_again() {
    let vault = seeded();
    let reviewer = TokenReviewer::start();
    kubernetes_setup(&vault, &reviewer, "app", None, &["app"]);
    vault.api(
        "POST",
        "auth/kubernetes/role/app",
        Some(json!({
            "bound_service_account_names": ["app"],
            "bound_service_account_namespaces": ["team-a"],
            "token_policies": ["app"],
            "token_ttl": "3s",
            "token_max_ttl": "12s",
        })),
    );
    let first = reviewer.accepted_token("app", "", "uid-1");
    let jwt_path = vault.file("sa/token", &first);
    let auth = json!({"method": "kubernetes", "role": "app", "jwt_path": jwt_path});
    let config = agent_config(
        &vault,
        auth,
        json!({"state_dir": state_dir(&vault), "templates": [db_template(&vault)]}),
    );
    let mark = vault.audit_mark();
    let agent = start(&vault, &config);
    let expected = "user=app-user\npass=pw-1\n";

    holds_for(S(20), || assert_eq!(read(&out(&vault, "db.env")), expected));
    // The kubelet rotates the projected token: the next login must use the new one.
    let second = reviewer.accepted_token("app", "", "uid-1");
    reviewer.reject(&first);
    fs::write(&jwt_path, &second).expect("rotate the token");
    holds_for(S(20), || assert_eq!(read(&out(&vault, "db.env")), expected));

    drop(agent);
    let counts = vault.audit_counts(mark);
    let logins = count(&counts, "update auth/kubernetes/login");
    let renewals = count(&counts, "update auth/token/renew-self");
    // Each token lives about 11 s (renewed at ~2 s intervals until its max TTL cuts a renewal
    // short): 4 logins in 40 s, 5 renewals each.
    assert!((3..=5).contains(&logins), "logins: {counts:?}");
    assert!((12..=26).contains(&renewals), "renewals: {counts:?}");
    assert_eq!(count(&counts, "read secret/data/app/db"), 1, "{counts:?}");
    let total: usize = counts.values().sum();
    assert_eq!(total, logins + renewals + 1, "nothing else: {counts:?}");
    let reviewed = reviewer.reviewed.lock().expect("lock").clone();
    assert!(reviewed.contains(&second), "the rotated token was used");
    assert!(
        !reviewed
            .iter()
            .skip_while(|t| **t != second)
            .any(|t| *t == first),
        "the old token was not sent after the rotation"
    );
}

/// KV values are read again every refresh interval: an update reaches the file within it, and
/// an unchanged value does not touch the file.
#[test]
fn a_kv_update_reaches_the_file_within_the_refresh_interval_and_no_change_means_no_write() {
    let vault = seeded();
    let auth = approle(&vault, "1h", "24h");
    let config = agent_config(
        &vault,
        auth,
        json!({
            "state_dir": state_dir(&vault),
            "refresh_interval": "2s",
            "templates": [db_template(&vault)],
        }),
    );
    let agent = start(&vault, &config);
    let file = out(&vault, "db.env");
    let before = fs::metadata(&file).expect("metadata");
    let mark = vault.audit_mark();

    std::thread::sleep(S(5));
    let reads = count(&vault.audit_counts(mark), "read secret/data/app/db");
    assert!((2..=3).contains(&reads), "read every 2 s ±10%: {reads}");
    let after = fs::metadata(&file).expect("metadata");
    assert_eq!(
        (before.ino(), before.mtime_nsec()),
        (after.ino(), after.mtime_nsec()),
        "an unchanged value leaves the file alone"
    );

    vault.kv2_put(
        "app/db",
        json!({"username": "app-user", "password": "pw-2"}),
    );
    wait_for("the new password in the file", S(10), || {
        read(&file).contains("pw-2")
    });
    assert_eq!(read(&file), "user=app-user\npass=pw-2\n");
    drop(agent);
}

/// A certificate issued for 10 s is re-issued at about 90% of its life, while the 3-second
/// tokens come and go: a login does not re-issue it.
#[test]
fn a_certificate_is_reissued_at_ninety_percent_of_its_life_not_at_each_login() {
    let vault = seeded();
    vault.pki();
    let auth = approle(&vault, "3s", "6s");
    let issue = "secret('pki/issue/web', common_name='web.example.com', ttl='10s')";
    let config = agent_config(
        &vault,
        auth,
        json!({
            "state_dir": state_dir(&vault),
            "templates": [
                {"name": "cert", "contents": format!("{{{{ {issue}.certificate }}}}\n"), "destination": out(&vault, "tls.crt")},
                {"name": "key", "contents": format!("{{{{ {issue}.private_key }}}}\n"), "destination": out(&vault, "tls.key")},
            ],
        }),
    );
    let mark = vault.audit_mark();
    let agent = start(&vault, &config);
    let mut certs = vec![read(&out(&vault, "tls.crt"))];
    // A certificate lives 11 s (not_before is 1 s back), so issues fall at about 0, 8.9 and
    // 17.8 s; 22 s ends the watch far from the fourth, so no issue is caught half-written.
    holds_for(S(22), || {
        let cert = read(&out(&vault, "tls.crt"));
        if certs.last() != Some(&cert) {
            certs.push(cert);
        }
    });
    drop(agent);

    let counts = vault.audit_counts(mark);
    let issued = vault.audit_times(mark, "update pki/issue/web");
    let logins = count(&counts, "update auth/approle/login");
    assert!(logins >= 3, "tokens were replaced: {counts:?}");
    assert_eq!(issued.len(), 3, "{counts:?}");
    assert_eq!(
        certs.len(),
        issued.len(),
        "each certificate reached the file"
    );
    // Each is re-issued at 90% ±2% of the previous one's validity (notBefore to notAfter), as
    // Vault's audit log times the request: up to a second later on a loaded machine.
    for (cert, next) in certs.iter().zip(&issued[1..]) {
        let (not_before, not_after) = validity(cert);
        let life = not_after
            .duration_since(not_before)
            .expect("valid")
            .as_secs_f64();
        let at = next
            .duration_since(not_before)
            .expect("after")
            .as_secs_f64();
        assert!(
            (0.87 * life..=0.92 * life + 1.0).contains(&at),
            "re-issued at {:.1}% of its life",
            at / life * 100.0
        );
    }
}

/// A PEM certificate's notBefore and notAfter.
fn validity(pem: &str) -> (SystemTime, SystemTime) {
    let (_, pem) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).expect("PEM");
    let cert = pem.parse_x509().expect("certificate");
    let at = |t: &x509_parser::time::ASN1Time| {
        SystemTime::UNIX_EPOCH
            + Duration::from_secs(u64::try_from(t.timestamp()).expect("after 1970"))
    };
    (
        at(&cert.validity().not_before),
        at(&cert.validity().not_after),
    )
}

/// Dynamic PostgreSQL credentials with a 5 s default and 15 s max TTL: renewed while they can
/// be, replaced before they expire, the newest always able to log in, and the change command
/// run once per change.
#[test]
fn database_credentials_are_renewed_then_replaced_before_they_expire() {
    let vault = seeded();
    let postgres = Postgres::start();
    vault.database_role(&postgres, "5s", "15s");
    let auth = approle(&vault, "1h", "24h");
    let changes = vault.path("changes.log");
    let config = agent_config(
        &vault,
        auth,
        json!({
            "state_dir": state_dir(&vault),
            "templates": [{
                "name": "pg",
                "contents": "{% set c = secret('database/creds/app') %}{{ c.username }}\n{{ c.password }}\n",
                "destination": out(&vault, "pg"),
                "command": ["sh", "-c", format!("cat {} >> {}", out(&vault, "pg").display(), changes.display())],
            }],
        }),
    );
    let mark = vault.audit_mark();
    let agent = start(&vault, &config);
    let mut seen = vec![read(&out(&vault, "pg"))];
    holds_for(S(35), || {
        let creds = read(&out(&vault, "pg"));
        if seen.last() != Some(&creds) {
            seen.push(creds);
        }
    });
    let newest = seen.last().expect("credentials").clone();
    let (user, password) = newest.trim().split_once('\n').expect("two lines");
    assert!(
        postgres.can_log_in(user, password),
        "the newest credentials log in"
    );
    drop(agent);

    let counts = vault.audit_counts(mark);
    let reads = vault.audit_times(mark, "read database/creds/app");
    assert!(
        count(&counts, "update sys/leases/renew") >= 3,
        "renewed: {counts:?}"
    );
    assert!(reads.len() >= 3, "replaced twice in 35 s: {counts:?}");
    // Each set is replaced before its lease's 15 s max TTL ends.
    for gap in gaps(&reads) {
        assert!((9.0..15.0).contains(&gap), "replaced after {gap:.2} s");
    }
    assert_eq!(seen.len(), reads.len(), "every new set reached the file");
    // The command ran once per change, after the file held the new credentials.
    let ran = fs::read_to_string(&changes).unwrap_or_default();
    assert_eq!(ran, seen[1..].concat(), "one command run per change");
}

/// The init container renders and leaves its token and lease records; the sidecar adopts them:
/// one login and one set of database credentials in all.
#[test]
fn the_sidecar_takes_over_the_init_containers_token_and_leases() {
    let vault = seeded();
    let postgres = Postgres::start();
    vault.database_role(&postgres, "1h", "24h");
    let auth = approle(&vault, "1h", "24h");
    let config = agent_config(
        &vault,
        auth,
        json!({
            "state_dir": state_dir(&vault),
            "templates": [
                db_template(&vault),
                {
                    "name": "pg",
                    "contents": "{% set c = secret('database/creds/app') %}{{ c.username }}\n{{ c.password }}\n",
                    "destination": out(&vault, "pg"),
                },
            ],
        }),
    );
    let mark = vault.audit_mark();

    Hydrant::agent_once(&config).run().success();
    let state = state_dir(&vault).join("state.json");
    assert_eq!(
        crate::util::mode(&state) & 0o777,
        0o600,
        "private hand-over"
    );
    let init_creds = read(&out(&vault, "pg"));
    let handed = read(&state);
    assert!(
        !handed.contains("pw-1") || handed.contains("\"data\""),
        "records"
    );
    let agent = start(&vault, &config);
    std::thread::sleep(S(3));
    drop(agent);

    assert_eq!(read(&out(&vault, "pg")), init_creds, "the same credentials");
    let (user, password) = init_creds.trim().split_once('\n').expect("two lines");
    assert!(postgres.can_log_in(user, password));
    let counts = vault.audit_counts(mark);
    assert_eq!(count(&counts, "update auth/approle/login"), 1, "{counts:?}");
    assert_eq!(count(&counts, "read database/creds/app"), 1, "{counts:?}");
    assert_eq!(count(&counts, "read secret/data/app/db"), 1, "{counts:?}");
    assert_eq!(
        count(&counts, "read auth/token/lookup-self"),
        1,
        "the sidecar checks the token it adopts: {counts:?}"
    );
}

/// OpenBao paused (SIGSTOP) for 20 s: the files keep their content, the sidecar retries with
/// growing, jittered pauses instead of a loop, and after the outage it picks up a change by
/// itself.
#[test]
fn a_paused_vault_leaves_the_files_alone_and_the_sidecar_backs_off_then_recovers() {
    let vault = seeded();
    let auth = approle(&vault, "1h", "24h");
    let config = agent_config(
        &vault,
        auth,
        json!({
            "vault": {"address": vault.addr, "timeout": "2s"},
            "state_dir": state_dir(&vault),
            "refresh_interval": "2s",
            "templates": [db_template(&vault)],
        }),
    );
    let agent = start(&vault, &config);
    let file = out(&vault, "db.env");
    let before = read(&file);
    let mark = vault.audit_mark();

    crate::util::signal(vault.pid(), "STOP");
    holds_for(S(20), || assert_eq!(read(&file), before));
    crate::util::signal(vault.pid(), "CONT");
    // The attempts made during the outage reach the audit log once Vault runs again.
    wait_for("the attempts in the audit log", S(10), || {
        vault.audit_requests(mark).len() >= 2
    });
    let during = vault.audit_requests(mark);
    // Attempts at 0, ~3, ~7, ~13 s (2 s timeouts, pauses of 1, 2, 4, 8 s less jitter).
    assert!(
        (2..=7).contains(&during.len()),
        "backoff, not a loop: {during:?}"
    );
    let log = agent.log();
    let pauses: Vec<f64> = log
        .lines()
        .filter(|l| l.contains("fetch failed"))
        .filter_map(|l| {
            l.split("retry_in_s=")
                .nth(1)?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .collect();
    assert!(pauses.len() >= 2, "retries were logged:\n{log}");
    for pair in pauses.windows(2) {
        assert!(pair[1] > pair[0], "growing pauses: {pauses:?}");
    }
    assert!(
        pauses.iter().any(|p| p.fract() != 0.0),
        "jittered pauses: {pauses:?}"
    );

    vault.kv2_put(
        "app/db",
        json!({"username": "app-user", "password": "pw-3"}),
    );
    wait_for(
        "the sidecar to recover and render the change",
        S(30),
        || read(&file).contains("pw-3"),
    );
    drop(agent);
}

/// `POST /quit` stops the sidecar with status 0 (for Jobs); the local endpoints answer.
#[test]
fn the_local_endpoints_answer_and_quit_stops_the_sidecar() {
    let vault = seeded();
    let auth = approle(&vault, "1h", "24h");
    let port = free_port();
    let config = agent_config(
        &vault,
        auth,
        json!({"state_dir": state_dir(&vault), "listen": port, "templates": [db_template(&vault)]}),
    );
    let mut agent = start(&vault, &config);
    let http = reqwest::blocking::Client::new();
    let url = |path: &str| format!("http://127.0.0.1:{port}{path}");
    let get = |path: &str| http.get(url(path)).send().expect("get");

    assert_eq!(get("/healthz").status(), 200);
    assert_eq!(get("/readyz").status(), 200);
    let metrics = get("/metrics").text().expect("metrics");
    for line in [
        "hydrant_agent_logins_total{result=\"ok\"} 1",
        "hydrant_agent_renders_total{template=\"db\",result=\"ok\"} 1",
        "hydrant_agent_renders_total{template=\"db\",result=\"error\"} 0",
        "hydrant_agent_logins_total{result=\"error\"} 0",
        "hydrant_agent_fetch_failures_total{reason=\"permission_denied\"} 0",
    ] {
        assert!(metrics.contains(line), "{line} in:\n{metrics}");
    }
    // A timestamp, not "seconds until": about an hour from now for a 1 h token.
    let expiry: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("hydrant_agent_token_expiry_timestamp_seconds "))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no token expiry in:\n{metrics}"));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64();
    assert!(
        (now + 3000.0..now + 3700.0).contains(&expiry),
        "{expiry} vs {now}"
    );
    crate::util::check_metrics_endpoint(&url("/metrics"));
    assert!(!metrics.contains("pw-1"), "no secret in metrics");

    let quit = http.post(url("/quit")).send().expect("quit");
    assert_eq!(quit.status(), 200);
    let status = agent.wait(S(5));
    assert!(status.success(), "{status}");
}

/// An address of this machine that is not loopback, as a pod's IP is: the one its route out
/// would use. Without a route, 127.0.0.2, which a listener on 127.0.0.1 alone never answers.
fn outward_address() -> std::net::IpAddr {
    std::net::UdpSocket::bind("0.0.0.0:0")
        .and_then(|socket| {
            // No packet is sent: connecting a UDP socket only chooses the route (TEST-NET-3).
            socket.connect("203.0.113.1:9")?;
            socket.local_addr()
        })
        .map(|local| local.ip())
        .ok()
        .filter(|ip| !ip.is_loopback() && !ip.is_unspecified())
        .unwrap_or(std::net::IpAddr::from([127, 0, 0, 2]))
}

/// `metrics_port` serves the read-only endpoints on the pod's addresses for Prometheus; `/quit`
/// is not there (only on 127.0.0.1's `listen`), so nobody outside the pod can stop its agent.
#[test]
fn the_metrics_port_serves_reads_on_the_pods_address_and_never_quit() {
    let vault = seeded();
    let auth = approle(&vault, "1h", "24h");
    let (port, metrics_port) = (free_port(), free_port());
    let config = agent_config(
        &vault,
        auth,
        json!({
            "state_dir": state_dir(&vault),
            "listen": port,
            "metrics_port": metrics_port,
            "templates": [db_template(&vault)],
        }),
    );
    let mut agent = start(&vault, &config);
    let http = reqwest::blocking::Client::builder()
        .timeout(S(5))
        .build()
        .expect("client");
    let address = outward_address();
    let outside = |path: &str| format!("http://{}{path}", SocketAddr::new(address, metrics_port));

    assert_eq!(
        http.get(outside("/healthz")).send().expect("get").status(),
        200
    );
    assert_eq!(
        http.get(outside("/readyz")).send().expect("get").status(),
        200
    );
    let metrics = crate::util::check_metrics_endpoint(&outside("/metrics"));
    assert!(
        metrics.contains("hydrant_agent_renders_total{template=\"db\",result=\"ok\"} 1"),
        "{metrics}"
    );
    for path in ["/quit", "/agent/v1/quit"] {
        let answer = http.post(outside(path)).send().expect("post");
        assert_eq!(answer.status(), 404, "{path} on the metrics port");
    }
    // The local port stays on loopback: from the pod's address there is nothing to connect to.
    let local_from_outside = format!("http://{}/quit", SocketAddr::new(address, port));
    assert!(
        http.post(&local_from_outside).send().is_err(),
        "{local_from_outside} answered"
    );
    std::thread::sleep(Duration::from_millis(300));
    assert!(agent.running(), "the sidecar stopped:\n{}", agent.log());

    let quit = http
        .post(format!("http://127.0.0.1:{port}/quit"))
        .send()
        .expect("quit");
    assert_eq!(quit.status(), 200);
    let status = agent.wait(S(5));
    assert!(status.success(), "{status}");
}

/// SIGTERM stops the sidecar; with `revoke_on_shutdown` its token is revoked first, and with it
/// the database credentials it created.
#[test]
fn sigterm_with_revoke_on_shutdown_revokes_the_token_and_its_leases() {
    let vault = seeded();
    let postgres = Postgres::start();
    vault.database_role(&postgres, "1h", "24h");
    let auth = approle(&vault, "1h", "24h");
    let config = agent_config(
        &vault,
        auth,
        json!({
            "state_dir": state_dir(&vault),
            "revoke_on_shutdown": true,
            "templates": [{
                "name": "pg",
                "contents": "{% set c = secret('database/creds/app') %}{{ c.username }}\n{{ c.password }}\n",
                "destination": out(&vault, "pg"),
            }],
        }),
    );
    let mut agent = start(&vault, &config);
    let state: Value =
        serde_json::from_str(&read(&state_dir(&vault).join("state.json"))).expect("state");
    let token = state["token"].as_str().expect("token").to_owned();
    let creds = read(&out(&vault, "pg"));
    let (user, password) = creds.trim().split_once('\n').expect("two lines");
    assert!(postgres.can_log_in(user, password));

    agent.signal("TERM");
    let status = agent.wait(S(10));
    assert!(status.success(), "{status}");

    let lookup = vault.api_as(&token, "GET", "auth/token/lookup-self", None);
    assert!(
        matches!(lookup, Err((403, _))),
        "the token is revoked: {lookup:?}"
    );
    // Vault invalidates the token at once but revokes its leases in the background (since
    // Vault 0.11), so the credentials go a moment later.
    wait_for("its credentials to be revoked with it", S(15), || {
        !postgres.can_log_in(user, password)
    });
    assert!(
        !state_dir(&vault).join("state.json").exists(),
        "no hand-over of a revoked token"
    );
}

/// SIGTERM without `revoke_on_shutdown` leaves the token alone; a Vault that does not answer
/// does not hold the stop up.
#[test]
fn sigterm_stops_the_sidecar_even_while_vault_does_not_answer() {
    let vault = seeded();
    let auth = approle(&vault, "1h", "24h");
    let config = agent_config(
        &vault,
        auth,
        json!({
            "state_dir": state_dir(&vault),
            "refresh_interval": "1s",
            "templates": [db_template(&vault)],
        }),
    );
    let mut agent = start(&vault, &config);
    crate::util::signal(vault.pid(), "STOP");
    std::thread::sleep(S(2));
    agent.signal("TERM");
    let status = agent.wait(S(10));
    crate::util::signal(vault.pid(), "CONT");
    assert!(status.success(), "{status}");
}

/// A template that stops rendering keeps its last good file and retries with backoff; the other
/// template goes on updating.
#[test]
fn a_failing_template_keeps_its_file_and_does_not_hold_up_the_others() {
    let vault = seeded();
    vault.kv2_put("app/flags", json!({"beta": "on"}));
    let auth = approle(&vault, "1h", "24h");
    let config = agent_config(
        &vault,
        auth,
        json!({
            "state_dir": state_dir(&vault),
            "refresh_interval": "1s",
            "templates": [
                db_template(&vault),
                {
                    "name": "flags",
                    "contents": "beta={{ secret('secret/data/app/flags').data.beta }}\n",
                    "destination": out(&vault, "flags"),
                },
            ],
        }),
    );
    let agent = start(&vault, &config);
    assert_eq!(read(&out(&vault, "flags")), "beta=on\n");

    // The key the template needs disappears: rendering `flags` fails from now on.
    vault.kv2_put("app/flags", json!({"gamma": "on"}));
    let mark = vault.audit_mark();
    let window = Instant::now();
    std::thread::sleep(S(3));
    vault.kv2_put(
        "app/db",
        json!({"username": "app-user", "password": "pw-4"}),
    );
    wait_for("db to update", S(4), || {
        read(&out(&vault, "db.env")).contains("pw-4")
    });
    std::thread::sleep(S(3));
    drop(agent);
    let window = window.elapsed().as_secs_f64();

    assert_eq!(read(&out(&vault, "flags")), "beta=on\n", "last good file");
    let log = read(&vault.path("agent.log"));
    let failures = log
        .lines()
        .filter(|l| l.contains("render failed") && l.contains("flags"))
        .count();
    // Retried at 1, 2, 4 s (and when its secret is read again): a handful in 8 s, not a loop.
    assert!((1..=8).contains(&failures), "{failures} failures:\n{log}");
    let counts = vault.audit_counts(mark);
    // Once a refresh interval (1 s, -10% at worst) over the window, which is ~6 to 10 s.
    let reads = count(&counts, "read secret/data/app/flags");
    assert!(
        reads as f64 <= window / 0.9 + 1.0,
        "read on its schedule only: {reads} in {window:.1} s: {counts:?}"
    );
    assert!(
        !log.contains("pw-4") && !log.contains("pw-1"),
        "no secret in the log"
    );
}

/// A template source and a ConfigMap-style directory (files behind a `..data` symlink swapped
/// atomically) are watched: a change re-renders what used them.
#[test]
fn watched_template_sources_and_configmap_volumes_re_render_on_change() {
    let vault = seeded();
    let auth = approle(&vault, "1h", "24h");
    let source = vault.file(
        "templates/app.j2",
        "user={{ secret('secret/data/app/db').data.username }}\n",
    );
    let cm = vault.path("configmap");
    configmap_version(&cm, "v1", r#"{"region": "eu-west-1"}"#);
    let config = agent_config(
        &vault,
        auth,
        json!({
            "state_dir": state_dir(&vault),
            "watch": [cm],
            "templates": [
                {"name": "app", "source": source, "destination": out(&vault, "app")},
                {
                    "name": "settings",
                    "contents": format!("{{{{ (file('{}') | fromjson).region }}}}\n", cm.join("settings.json").display()),
                    "destination": out(&vault, "settings"),
                },
            ],
        }),
    );
    let mark = vault.audit_mark();
    let agent = start(&vault, &config);
    assert_eq!(read(&out(&vault, "app")), "user=app-user\n");
    assert_eq!(read(&out(&vault, "settings")), "eu-west-1\n");

    fs::write(
        &source,
        "user={{ secret('secret/data/app/db').data.username | upper }}\n",
    )
    .expect("edit template");
    wait_for("the edited template's output", S(5), || {
        read(&out(&vault, "app")) == "user=APP-USER\n"
    });
    configmap_version(&cm, "v2", r#"{"region": "us-east-2"}"#);
    wait_for("the new ConfigMap value", S(5), || {
        read(&out(&vault, "settings")) == "us-east-2\n"
    });
    drop(agent);
    let counts = vault.audit_counts(mark);
    assert_eq!(
        count(&counts, "read secret/data/app/db"),
        1,
        "a template edit re-renders from what was fetched: {counts:?}"
    );
}

/// Writes a ConfigMap volume's next version the way the kubelet does: a new timestamped
/// directory, a `..data_tmp` symlink to it renamed over `..data`, and file symlinks into `..data`.
fn configmap_version(dir: &Path, version: &str, settings: &str) {
    use std::os::unix::fs::symlink;
    let versioned = dir.join(format!("..{version}"));
    fs::create_dir_all(&versioned).expect("mkdir");
    fs::write(versioned.join("settings.json"), settings).expect("write");
    let tmp = dir.join("..data_tmp");
    let _ = fs::remove_file(&tmp);
    symlink(format!("..{version}"), &tmp).expect("symlink");
    fs::rename(&tmp, dir.join("..data")).expect("swap ..data");
    let link = dir.join("settings.json");
    if fs::symlink_metadata(&link).is_err() {
        symlink("..data/settings.json", &link).expect("symlink");
    }
}

/// Writes a file the way a ConfigMap volume or an editor's save does: beside it, then renamed.
fn replace_file(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp-write");
    fs::write(&tmp, text).expect("write");
    fs::rename(&tmp, path).expect("rename");
}

fn site_container(query_interval: &str) -> String {
    format!(
        "kind: ConfigContainer\nmetadata: {{name: site-atlantida}}\nspec:\n  level: site\n  selector: {{matchLabels: {{site: atlantida}}}}\n  values: {{FACTORY_NAME: Atlantida, QueryIntervalSec: {query_interval}}}\n"
    )
}

/// A config snapshot in the sidecar: a container edit reaches the file; an edit that breaks
/// the schema is reported in the log and in /metrics, the file keeps its last good content and
/// the other templates go on; the fix is picked up.
#[test]
fn a_container_change_re_renders_and_an_invalid_one_keeps_the_last_good_file() {
    let vault = seeded();
    let auth = approle(&vault, "1h", "24h");
    let containers = vault.path("platform/containers");
    fs::create_dir_all(&containers).expect("containers dir");
    fs::write(
        containers.join("global.yaml"),
        "kind: ConfigContainer\nmetadata: {name: global}\nspec:\n  level: global\n  values: {QueryIntervalSec: 60, ENVIRONMENT: qa}\n",
    )
    .expect("global");
    fs::write(containers.join("site.yaml"), site_container("911")).expect("site");
    let labels = vault.file("podinfo/labels", "app=\"shop\"\nsite=\"atlantida\"\n");
    let schema = vault.file(
        "platform/schema.json",
        r#"{"type": "object", "properties": {"QueryIntervalSec": {"type": "integer", "minimum": 1}}, "required": ["ENVIRONMENT"]}"#,
    );
    let port = free_port();
    let config = agent_config(
        &vault,
        auth,
        json!({
            "state_dir": state_dir(&vault),
            "listen": port,
            "refresh_interval": "1s",
            "config": {"containers": [containers], "labels_file": labels, "schema": schema},
            "templates": [
                {"name": "platform", "contents": "{{ config_as('env') }}# {{ snapshot.version }}\n", "destination": out(&vault, "platform.env")},
                db_template(&vault),
            ],
        }),
    );
    let mut agent = start(&vault, &config);
    let platform = out(&vault, "platform.env");
    let first = read(&platform);
    assert!(
        first.starts_with("ENVIRONMENT='qa'\nFACTORY_NAME='Atlantida'\nQueryIntervalSec='911'\n# "),
        "{first}"
    );

    replace_file(&containers.join("site.yaml"), &site_container("30"));
    wait_for("the new interval in the file", S(10), || {
        read(&platform).contains("QueryIntervalSec='30'")
    });
    let good = read(&platform);
    assert_ne!(good.lines().last(), first.lines().last(), "a new version");

    // Zero breaks the schema's minimum: reported, and the file stays as it was.
    replace_file(&containers.join("site.yaml"), &site_container("0"));
    let metrics = || {
        reqwest::blocking::get(format!("http://127.0.0.1:{port}/metrics"))
            .and_then(|r| r.text())
            .unwrap_or_default()
    };
    wait_for("the invalid snapshot counted", S(10), || {
        metrics().contains("hydrant_agent_snapshots_total{result=\"error\"} 1")
    });
    // The count comes just before the log line.
    wait_for("the schema error in the log", S(10), || {
        agent.log().contains(
            "/QueryIntervalSec: 0 is less than the minimum of 1 (minimum; set by site-atlantida)",
        )
    });
    // Meanwhile a template that does not read the config goes on: a KV change reaches it.
    vault.kv2_put(
        "app/db",
        json!({"username": "app-user", "password": "pw-2"}),
    );
    wait_for("the KV change", S(10), || {
        read(&out(&vault, "db.env")).contains("pw-2")
    });
    assert_eq!(read(&platform), good, "the last good snapshot stays");

    replace_file(&containers.join("site.yaml"), &site_container("45"));
    wait_for("the fix in the file", S(10), || {
        read(&platform).contains("QueryIntervalSec='45'")
    });
    agent.stop();
}

/// `--once` with a snapshot that fails its schema: exit 1 with every violation, no file
/// written and nothing sent to Vault.
#[test]
fn an_invalid_snapshot_stops_the_init_container_before_it_logs_in() {
    let vault = seeded();
    let auth = approle(&vault, "1h", "24h");
    let containers = vault.path("platform");
    fs::create_dir_all(&containers).expect("dir");
    fs::write(containers.join("site.yaml"), site_container("\"911\"")).expect("site");
    let schema = vault.file(
        "schema.json",
        r#"{"type": "object", "properties": {"QueryIntervalSec": {"type": "integer"}}, "required": ["ENVIRONMENT"]}"#,
    );
    let config = agent_config(
        &vault,
        auth,
        json!({
            "config": {"containers": [containers], "labels": {"site": "atlantida"}, "schema": schema},
            "templates": [{"name": "platform", "contents": "{{ config | tojson }}", "destination": out(&vault, "platform.json")}],
        }),
    );
    let mark = vault.audit_mark();
    let run = Hydrant::agent_once(&config).run();
    assert_eq!(run.code(), 64);
    let line = run.stderr();
    assert!(line.contains("/ENVIRONMENT: \"ENVIRONMENT\" is a required property (required; required by the schema, set by no container)"), "{line}");
    assert!(
        line.contains(
            "/QueryIntervalSec: \"911\" is not of type \"integer\" (type; set by site-atlantida)"
        ),
        "{line}"
    );
    assert!(!out(&vault, "platform.json").exists());
    assert!(vault.audit_counts(mark).is_empty(), "nothing sent to Vault");
}

/// The sidecar's token, as its hand-over file has it.
fn agent_token(vault: &Vault) -> String {
    let state: Value =
        serde_json::from_str(&read(&state_dir(vault).join("state.json"))).expect("state json");
    state["token"].as_str().expect("token").to_owned()
}

fn scrape(port: u16) -> String {
    reqwest::blocking::get(format!("http://127.0.0.1:{port}/metrics"))
        .and_then(|r| r.text())
        .unwrap_or_default()
}

/// A token revoked behind the agent's back (hardening #2): with a 1 h TTL its renewal is 40 min
/// away, but the next KV read is denied; lookup-self says the token is gone, so the agent logs in
/// again at once and reads what failed with the new token. The rotated value reaches the file
/// within about one refresh interval, with one login and a bounded number of requests.
#[test]
fn a_revoked_token_is_replaced_at_the_next_denial_and_the_rotated_value_arrives() {
    let vault = seeded();
    let auth = approle(&vault, "1h", "24h");
    let port = free_port();
    let config = agent_config(
        &vault,
        auth,
        json!({"state_dir": state_dir(&vault), "listen": port, "refresh_interval": "3s",
               "templates": [db_template(&vault)]}),
    );
    let agent = start(&vault, &config);
    let mark = vault.audit_mark();
    let revoked_at = SystemTime::now();
    vault.api(
        "POST",
        "auth/token/revoke",
        Some(json!({"token": agent_token(&vault)})),
    );
    vault.kv2_put(
        "app/db",
        json!({"username": "app-user", "password": "pw-2"}),
    );
    let file = out(&vault, "db.env");
    // One refresh interval (3 s ±10%), a lookup and a login, with slack for a loaded machine.
    wait_for("the rotated value in the file", S(10), || {
        read(&file).contains("pw-2")
    });
    let logins = vault.audit_times(mark, "update auth/approle/login");
    assert_eq!(logins.len(), 1, "{:?}", vault.audit_counts(mark));
    let after = logins[0].duration_since(revoked_at).unwrap_or_default();
    assert!(after < S(10), "logged in {after:?} after the revocation");

    // Bounded afterwards: no storm of logins or lookups, reads at the refresh interval.
    std::thread::sleep(S(6));
    let counts = vault.audit_counts(mark);
    assert_eq!(count(&counts, "update auth/approle/login"), 1, "{counts:?}");
    assert!(
        count(&counts, "read auth/token/lookup-self") <= 2,
        "{counts:?}"
    );
    let elapsed = SystemTime::now()
        .duration_since(revoked_at)
        .unwrap_or_default()
        .as_secs_f64();
    assert!(
        (count(&counts, "read secret/data/app/db") as f64) <= elapsed / 2.7 + 3.0,
        "{counts:?} in {elapsed:.1}s"
    );
    let metrics = scrape(port);
    for line in [
        "hydrant_agent_tokens_lost_total 1",
        "hydrant_agent_fetch_failures_total{reason=\"permission_denied\"} 1",
        "hydrant_agent_last_render_timestamp_seconds{template=\"db\"} ",
    ] {
        assert!(metrics.contains(line), "{line} in:\n{metrics}");
    }
    assert!(!agent.log().contains("pw-2"), "no secret in the log");
}

/// A Vault that comes back without its data (restored, rebuilt): the agent's token is unknown
/// there, every read is denied, logins fail until the auth method is set up again; the agent
/// recovers by itself, without a storm of requests meanwhile.
#[test]
fn the_agent_recovers_by_itself_when_vault_comes_back_empty() {
    let mut vault = seeded();
    let reviewer = TokenReviewer::start();
    let setup = |vault: &Vault| {
        kubernetes_setup(vault, &reviewer, "app", None, &["app"]);
    };
    setup(&vault);
    let jwt = reviewer.accepted_token("app", "", "uid-1");
    let auth =
        json!({"method": "kubernetes", "role": "app", "jwt_path": vault.file("sa/token", &jwt)});
    let config = agent_config(
        &vault,
        auth,
        json!({"state_dir": state_dir(&vault), "refresh_interval": "2s",
               "templates": [db_template(&vault)]}),
    );
    let agent = start(&vault, &config);
    vault.restart_empty();
    let mark = vault.audit_mark();
    // Empty for a while: reads are denied, logins find no auth method.
    std::thread::sleep(S(6));
    let empty = vault.audit_counts(mark);
    vault.policy(
        "app",
        r#"path "secret/data/app/*" { capabilities = ["read"] }"#,
    );
    setup(&vault);
    vault.kv2_put(
        "app/db",
        json!({"username": "app-user", "password": "pw-restored"}),
    );
    let file = out(&vault, "db.env");
    wait_for("the restored value in the file", S(30), || {
        read(&file).contains("pw-restored")
    });
    // While Vault was empty: a login now and then (backoff from 1 s), a read now and then.
    let requests: usize = empty.values().sum();
    assert!(requests <= 15, "{requests} requests in 6 s: {empty:?}");
    let counts = vault.audit_counts(mark);
    assert!(
        count(&counts, "update auth/kubernetes/login") <= 8,
        "{counts:?}"
    );
    assert!(!agent.log().contains("pw-restored"), "no secret in the log");
}

/// `exit_on_retry_failure` (vault-k8s's `template-config-exit-on-retry-failure`): once a fetch
/// has failed `retry.attempts` times in a row the sidecar exits 1 naming the path, so the kubelet
/// restarts it; the file keeps its last good content and the failures are counted by reason.
#[test]
fn with_exit_on_retry_failure_the_sidecar_exits_when_a_fetch_keeps_failing() {
    let vault = seeded();
    let auth = approle(&vault, "1h", "24h");
    let port = free_port();
    let config = agent_config(
        &vault,
        auth,
        json!({"state_dir": state_dir(&vault), "listen": port, "refresh_interval": "1s",
               "exit_on_retry_failure": true, "retry": {"attempts": 3},
               "templates": [db_template(&vault)]}),
    );
    let mut agent = start(&vault, &config);
    let good = read(&out(&vault, "db.env"));
    vault.api("DELETE", "secret/metadata/app/db", None);
    wait_for("two failures counted", S(15), || {
        scrape(port).contains("hydrant_agent_fetch_failures_total{reason=\"not_found\"} 2")
    });
    // 1 s refresh, then pauses of about 1 and 2 s: gone well within 20 s.
    let status = agent.wait(S(20));
    assert_eq!(status.code(), Some(1), "{}", agent.log());
    let log = agent.log();
    assert!(
        log.contains("fetching secret/data/app/db failed 3 times in a row"),
        "{log}"
    );
    assert_eq!(read(&out(&vault, "db.env")), good, "the last good content");
}

/// A template that never ends (hardening #5). With the default steps it fails, naming itself,
/// and the other file is written; with the most steps allowed (half a minute or more of one core
/// in a debug build) it runs beside the runtime, so /healthz answers while it runs and SIGTERM stops the
/// agent at once.
#[test]
fn an_endless_template_neither_starves_health_nor_holds_up_sigterm() {
    let vault = seeded();
    let spin = json!({
        "name": "spin",
        "contents": "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
        "destination": out(&vault, "spin"),
    });
    let http = reqwest::blocking::Client::builder()
        .timeout(S(3))
        .build()
        .expect("client");
    let auth = approle(&vault, "1h", "24h");
    for steps in [None, Some(100_000_000_u64)] {
        let port = free_port();
        let mut rest = json!({
            "state_dir": state_dir(&vault),
            "listen": port,
            "templates": [db_template(&vault), spin],
        });
        if let Some(steps) = steps {
            rest["limits"] = json!({"render_steps": steps});
        }
        let config = agent_config(&vault, auth.clone(), rest);
        let mut agent = Hydrant::sidecar(&config)
            .env("HYDRANT_LOG", "hydrant=debug")
            .spawn(&vault.path("agent.log"));
        wait_for("the login", S(20), || {
            agent.log().contains("logged in to vault")
        });
        if steps.is_none() {
            wait_for("spin to fail", S(60), || {
                agent.log().lines().any(|l| {
                    l.contains("render failed")
                        && l.contains("template spin: stopped after 10000000 steps")
                })
            });
            wait_for("db to render", S(20), || out(&vault, "db.env").exists());
        } else {
            // The first attempt at spin runs now, for half a minute or more.
            std::thread::sleep(S(1));
            for _ in 0..5 {
                let health = http
                    .get(format!("http://127.0.0.1:{port}/healthz"))
                    .send()
                    .unwrap_or_else(|e| panic!("/healthz answers: {e}\n{}", agent.log()));
                assert_eq!(health.status(), 200);
                std::thread::sleep(Duration::from_millis(500));
            }
        }
        agent.signal("TERM");
        let status = agent.wait(S(10));
        assert!(status.success(), "{status}; log:\n{}", agent.log());
        let _ = fs::remove_file(out(&vault, "db.env"));
        let _ = fs::remove_dir_all(state_dir(&vault));
    }
}

/// An output that grows past `limits.file_bytes` (hardening #5) is refused naming the template
/// and the limit; the file keeps its last good content.
#[test]
fn an_output_grown_past_the_file_limit_keeps_the_last_good_file() {
    let vault = seeded();
    vault.kv2_put("app/blob", json!({"blob": "small"}));
    let auth = approle(&vault, "1h", "24h");
    let config = agent_config(
        &vault,
        auth,
        json!({
            "state_dir": state_dir(&vault),
            "refresh_interval": "1s",
            "limits": {"file_bytes": 1000},
            "templates": [{
                "name": "blob",
                "contents": "{{ secret('secret/data/app/blob').data.blob }}\n",
                "destination": out(&vault, "blob"),
            }],
        }),
    );
    let mut agent = start(&vault, &config);
    assert_eq!(read(&out(&vault, "blob")), "small\n");

    vault.kv2_put("app/blob", json!({"blob": "x".repeat(1000)}));
    wait_for("the refusal", S(15), || {
        agent.log().lines().any(|l| {
            l.contains("render failed")
                && l.contains("template blob: the output is larger than 1000 bytes, the limit of one file (limits.file_bytes)")
        })
    });

    assert_eq!(read(&out(&vault, "blob")), "small\n", "the last good file");
    agent.stop();
}

/// Hardening #9 in the sidecar: a path built from a secret is never named in its logs, neither
/// when the render fails nor when the schedule fetches it again and again; a literal path is.
#[test]
fn the_sidecar_never_logs_a_path_computed_from_a_secret() {
    let vault = seeded();
    let auth = approle(&vault, "1h", "24h");
    let computed = json!({
        "name": "computed",
        "contents": "{{ secret('secret/data/' ~ secret('secret/data/app/db').data.password).data.x }}",
        "destination": out(&vault, "computed"),
    });
    let config = agent_config(
        &vault,
        auth,
        json!({"state_dir": state_dir(&vault), "templates": [computed]}),
    );
    let mut agent = Hydrant::sidecar(&config)
        .env("HYDRANT_LOG", "hydrant=debug")
        .spawn(&vault.path("agent.log"));
    // The first render fails, then the schedule's fetch of the computed path fails (1 s later).
    wait_for("a failed fetch logged twice", S(20), || {
        agent.log().matches("fetch failed").count() >= 2
    });
    agent.stop();
    let log = agent.log();
    assert!(!log.contains("pw-1"), "{log}");
    assert!(log.contains("<a path computed while rendering>"), "{log}");
}

/// consul-template templates go through the same engine as Jinja ones in the sidecar: a KV
/// change reaches the file within the refresh interval, database credentials are renewed and
/// replaced (the change command running once per change), a pkiCert certificate is re-issued
/// at about 90% of its life, and a missing key is warned about and counted.
#[test]
fn consul_template_templates_are_refreshed_renewed_and_reissued_as_jinja_ones() {
    let vault = seeded();
    let postgres = Postgres::start();
    vault.database_role(&postgres, "5s", "15s");
    vault.pki();
    let auth = approle(&vault, "1h", "24h");
    let changes = vault.path("changes.log");
    let port = free_port();
    let consul = |name: &str, text: &str| json!({"name": name, "contents": text, "destination": out(&vault, name), "syntax": "consul-template"});
    let mut pg = consul(
        "pg",
        "{{ with secret \"database/creds/app\" }}{{ .Data.username }}\n{{ .Data.password }}\n{{ end }}",
    );
    pg["command"] = json!([
        "sh",
        "-c",
        format!(
            "cat {} >> {}",
            out(&vault, "pg").display(),
            changes.display()
        )
    ]);
    let config = agent_config(
        &vault,
        auth,
        json!({
            "state_dir": state_dir(&vault),
            "refresh_interval": "2s",
            "listen": port,
            "templates": [
                consul("kv", "{{ with secret \"secret/data/app/db\" }}pass={{ .Data.data.password }} {{ .Data.data.nope }}{{ end }}\n"),
                pg,
                consul("tls", "{{ with pkiCert \"pki/issue/web\" \"common_name=web.example.com\" \"ttl=10s\" }}{{ .Cert }}{{ .Key }}{{ end }}"),
            ],
        }),
    );
    let mark = vault.audit_mark();
    let agent = start(&vault, &config);
    assert_eq!(read(&out(&vault, "kv")), "pass=pw-1 <no value>\n");
    vault.kv2_put(
        "app/db",
        json!({"username": "app-user", "password": "pw-2"}),
    );
    let mut seen = vec![read(&out(&vault, "pg"))];
    let mut certs = vec![read(&out(&vault, "tls"))];
    holds_for(S(22), || {
        let creds = read(&out(&vault, "pg"));
        if seen.last() != Some(&creds) {
            seen.push(creds);
        }
        let cert = read(&out(&vault, "tls"));
        if certs.last() != Some(&cert) {
            certs.push(cert);
        }
    });
    assert_eq!(read(&out(&vault, "kv")), "pass=pw-2 <no value>\n");
    let metrics = scrape(port);
    assert!(
        metrics.contains("hydrant_agent_missing_keys_total{template=\"kv\"}"),
        "{metrics}"
    );
    drop(agent);
    let log = read(&vault.path("agent.log"));
    assert!(
        log.contains("key=\"nope\"") || log.contains("key=nope"),
        "the missing key is named: {log}"
    );

    let counts = vault.audit_counts(mark);
    assert!(
        count(&counts, "update sys/leases/renew") >= 2,
        "renewed: {counts:?}"
    );
    let reads = vault.audit_times(mark, "read database/creds/app");
    assert!(
        reads.len() >= 2,
        "replaced before its 15 s max TTL: {counts:?}"
    );
    assert_eq!(seen.len(), reads.len(), "every new set reached the file");
    let ran = fs::read_to_string(&changes).unwrap_or_default();
    assert_eq!(ran, seen[1..].concat(), "one command run per change");
    let issued = vault.audit_times(mark, "update pki/issue/web");
    // Issued, then re-issued at about 8.9 and 17.8 s (a loaded machine may push the second
    // past the watch's end).
    assert!(
        (2..=3).contains(&issued.len()),
        "re-issued in 22 s: {counts:?}"
    );
    assert_eq!(
        certs.len(),
        issued.len(),
        "each certificate reached the file"
    );
}

/// The init container renders consul-template templates and hands over; the sidecar adopts
/// them: one login, one certificate, one set of database credentials in all.
#[test]
fn an_init_container_and_its_sidecar_share_one_certificate_and_one_lease() {
    let vault = seeded();
    let postgres = Postgres::start();
    vault.database_role(&postgres, "1h", "24h");
    vault.pki();
    let auth = approle(&vault, "1h", "24h");
    let consul = |name: &str, text: &str| json!({"name": name, "contents": text, "destination": out(&vault, name), "syntax": "consul-template"});
    let config = agent_config(
        &vault,
        auth,
        json!({
            "state_dir": state_dir(&vault),
            "templates": [
                consul("tls", "{{ with pkiCert \"pki/issue/web\" \"common_name=web.example.com\" \"ttl=1h\" }}{{ .Cert }}{{ .Key }}{{ .CA }}{{ end }}"),
                consul("pg", "{{ with secret \"database/creds/app\" }}{{ .Data.username }} {{ .LeaseID }}{{ end }}"),
                consul("kv", "{{ with secret \"secret/app/db\" }}{{ .Data.data.password }}{{ end }}"),
            ],
        }),
    );
    let mark = vault.audit_mark();
    Hydrant::agent_once(&config).run().success();
    let (tls, pg) = (read(&out(&vault, "tls")), read(&out(&vault, "pg")));
    let agent = start(&vault, &config);
    std::thread::sleep(S(3));
    drop(agent);
    assert_eq!(read(&out(&vault, "tls")), tls, "the same certificate");
    assert_eq!(
        read(&out(&vault, "pg")),
        pg,
        "the same credentials and lease"
    );
    let counts = vault.audit_counts(mark);
    assert_eq!(count(&counts, "update auth/approle/login"), 1, "{counts:?}");
    assert_eq!(count(&counts, "update pki/issue/web"), 1, "{counts:?}");
    assert_eq!(count(&counts, "read database/creds/app"), 1, "{counts:?}");
    assert_eq!(count(&counts, "read secret/data/app/db"), 1, "{counts:?}");
}
