//! `hydrant controller` against a real OpenBao and real git remotes (a bare repository served by
//! `git daemon` on 127.0.0.1, and `file://`): each new commit applied, a bad commit refused
//! whole, drift corrected or only reported, the applied commit recorded. Namespaces and the
//! Lease go through the fake Kubernetes API service (no kube-apiserver can run here).

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

use crate::util::fake_kube::FakeKube;
use crate::util::{self, Hydrant, KillOnDrop, ROOT_TOKEN, Running, Vault};

/// A working repository holding `examples/policy`, and the bare repository it pushes to.
struct Remote {
    work: PathBuf,
    bare: PathBuf,
}

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.name=test", "-c", "user.email=test@example.com"])
        .args(args)
        .output()
        .expect("run git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

impl Remote {
    fn new(vault: &Vault) -> Remote {
        let work = vault.path("policy-work");
        crate::policy::copy_dir(&util::root().join("examples/policy"), &work);
        git(&work, &["init", "-q", "-b", "main"]);
        git(&work, &["add", "-A"]);
        git(&work, &["commit", "-q", "-m", "first"]);
        let bare = vault.path("served/policy.git");
        std::fs::create_dir_all(bare.parent().expect("parent")).expect("mkdir");
        git(
            &work,
            &["clone", "-q", "--bare", ".", bare.to_str().expect("utf-8")],
        );
        git(
            &work,
            &["remote", "add", "origin", bare.to_str().expect("utf-8")],
        );
        Remote { work, bare }
    }

    fn file_url(&self) -> String {
        format!("file://{}", self.bare.display())
    }

    /// Writes a file, commits and pushes; returns the commit.
    fn commit(&self, file: &str, text: &str) -> String {
        std::fs::write(self.work.join(file), text).expect("write");
        git(&self.work, &["add", "-A"]);
        git(
            &self.work,
            &["commit", "-q", "-m", &format!("change {file}")],
        );
        git(&self.work, &["push", "-q", "origin", "main"]);
        self.head()
    }

    fn head(&self) -> String {
        git(&self.work, &["rev-parse", "HEAD"])
    }

    /// Serves the bare repository with `git daemon` on a free loopback port.
    fn serve(&self) -> (KillOnDrop, String) {
        let port = util::free_port();
        let base = self.bare.parent().expect("parent");
        // git-daemon itself, not `git daemon`, which would leave it running when killed.
        let exec_path = git(&self.work, &["--exec-path"]);
        let child = Command::new(Path::new(&exec_path).join("git-daemon"))
            .args([
                "--reuseaddr",
                "--export-all",
                "--listen=127.0.0.1",
                &format!("--port={port}"),
                &format!("--base-path={}", base.display()),
            ])
            .arg(base)
            .spawn()
            .expect("start git daemon");
        util::wait_for("git daemon", Duration::from_secs(10), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        (
            KillOnDrop(child),
            format!("git://127.0.0.1:{port}/policy.git"),
        )
    }
}

/// The controller's address and process.
struct Controller {
    url: String,
    process: Running,
}

/// Starts `hydrant controller` on `url` with root's token, a free port and `extra` arguments.
fn start(
    vault: &Vault,
    name: &str,
    url: &str,
    extra: &[&str],
    env: &[(&str, &OsStr)],
) -> Controller {
    let port = util::free_port();
    let state = vault.path(&format!("{name}-state"));
    let listen = format!("127.0.0.1:{port}");
    let mut args = vec![
        "controller",
        "--repository",
        url,
        "--state-dir",
        state.to_str().expect("utf-8"),
        "--listen",
        &listen,
        "--poll-interval",
        "1h",
    ];
    args.extend(extra);
    let mut hydrant = Hydrant::new(args)
        .env("VAULT_ADDR", &vault.addr)
        .env("VAULT_TOKEN", ROOT_TOKEN)
        .env("HYDRANT_LOG", "info");
    for (key, value) in env {
        hydrant = hydrant.env(key, value);
    }
    Controller {
        url: format!("http://{listen}"),
        process: hydrant.spawn(&vault.path(&format!("{name}.log"))),
    }
}

impl Controller {
    fn get(&self, path: &str) -> (u16, String) {
        match reqwest::blocking::get(format!("{}{path}", self.url)) {
            Ok(r) => (r.status().as_u16(), r.text().unwrap_or_default()),
            Err(_) => (0, String::new()),
        }
    }

    fn sync(&self) {
        let response = reqwest::blocking::Client::new()
            .post(format!("{}/sync", self.url))
            .send()
            .expect("POST /sync");
        assert_eq!(response.status().as_u16(), 202);
    }

    /// Waits until /readyz says `commit` is applied.
    fn wait_applied(&mut self, commit: &str) {
        let wanted = format!("ready: applied {commit}\n");
        let mut last = String::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while std::time::Instant::now() < deadline {
            let (code, body) = self.get("/readyz");
            if code == 200 && body == wanted {
                return;
            }
            last = body;
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "{commit} not applied; /readyz: {last}\nlog:\n{}",
            self.process.log()
        );
    }

    /// A metric's value (the sum over label sets whose text contains `labels`).
    fn metric(&self, name: &str, labels: &str) -> f64 {
        let (_, text) = self.get("/metrics");
        text.lines()
            .filter(|l| l.starts_with(name) && l.contains(labels))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }
}

fn policy_text(vault: &Vault, name: &str) -> Option<String> {
    let response = reqwest::blocking::Client::new()
        .get(format!("{}/v1/sys/policies/acl/{name}", vault.addr))
        .header("X-Vault-Token", ROOT_TOKEN)
        .send()
        .expect("read policy");
    if response.status().as_u16() == 404 {
        return None;
    }
    let body: Value = response.json().expect("json");
    Some(body["data"]["policy"].as_str().expect("policy").to_owned())
}

fn recorded_commit(vault: &Vault) -> String {
    vault.api("GET", "secret/data/hydrant/policy-index/tenant", None)["data"]["data"]["commit"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// Where the controller's Events go: its Pod's namespace.
const EVENTS: &str = "/apis/events.k8s.io/v1/namespaces/hydrant/events";

/// The environment of a controller Pod named `name` whose API is `kube`, as the chart gives it.
fn pod_env<'a>(kubeconfig: &'a Path, name: &'a str) -> [(&'static str, &'a OsStr); 4] {
    [
        ("KUBECONFIG", kubeconfig.as_os_str()),
        ("POD_NAME", OsStr::new(name)),
        ("POD_NAMESPACE", OsStr::new("hydrant")),
        ("POD_UID", OsStr::new("0c5e-uid")),
    ]
}

/// The Events published so far with `reason`.
fn events(kube: &FakeKube, reason: &str) -> Vec<Value> {
    kube.list(EVENTS)
        .into_iter()
        .filter(|e| e["reason"] == reason)
        .collect()
}

/// Waits for the Events with `reason` whose note contains `text`.
fn wait_event(kube: &FakeKube, reason: &str, text: &str) -> Value {
    let mut found = None;
    util::wait_for(
        &format!("a {reason} Event"),
        Duration::from_secs(20),
        || {
            found = events(kube, reason)
                .into_iter()
                .find(|e| e["note"].as_str().unwrap_or_default().contains(text));
            found.is_some()
        },
    );
    found.expect("found")
}

#[test]
fn controller_applies_each_new_commit_from_git_daemon_and_refuses_a_bad_one_whole() {
    let vault = Vault::start();
    vault.enable_auth("kubernetes", "kubernetes");
    let remote = Remote::new(&vault);
    let (_daemon, url) = remote.serve();
    // Events on its Pod, through the fake API service (no kube-apiserver can run here).
    let kube = FakeKube::start();
    let kubeconfig = kube.kubeconfig(&vault.path(""));
    let mut c = start(
        &vault,
        "c",
        &url,
        &["--events"],
        &pod_env(&kubeconfig, "controller-0"),
    );
    let first = remote.head();
    c.wait_applied(&first);
    assert_eq!(
        recorded_commit(&vault),
        first,
        "the applied commit is recorded"
    );
    assert!(
        policy_text(&vault, "tenant-team-a-db")
            .expect("created")
            .contains("database/creds/team-a_app")
    );
    assert_eq!(c.metric("hydrant_controller_objects_total", "created"), 6.0);
    let text = crate::util::check_metrics_endpoint(&format!("{}/metrics", c.url));
    assert!(
        text.contains("hydrant_controller_applies_total{result=\"refused\"} 0"),
        "{text}"
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64();
    let applied_at = c.metric(
        "hydrant_controller_last_successful_apply_timestamp_seconds",
        "",
    );
    assert!(
        (now - 120.0..now + 1.0).contains(&applied_at),
        "{applied_at} vs {now}"
    );
    let applied = wait_event(&kube, "Applied", &first[..12]);
    assert_eq!(applied["type"], "Normal");
    assert_eq!(
        applied["note"],
        format!(
            "commit {} applied: 6 created, 0 updated, 0 deleted",
            &first[..12]
        )
    );
    assert_eq!(
        applied["regarding"],
        json!({"apiVersion": "v1", "kind": "Pod", "namespace": "hydrant", "name": "controller-0", "uid": "0c5e-uid"}),
        "the Event is about the controller's own Pod, found by kubectl describe"
    );
    assert_eq!(applied["reportingController"], "hydrant-controller");
    assert_eq!(applied["reportingInstance"], "controller-0");

    // A new commit, fetched on POST /sync.
    let db = "namespaces/team-a/policies/db.hcl";
    let original = std::fs::read_to_string(remote.work.join(db)).expect("read");
    let second = remote.commit(
        db,
        &format!(
            "{original}\npath \"secret/data/team-a/extra\" {{\n  capabilities = [\"read\"]\n}}\n"
        ),
    );
    c.sync();
    c.wait_applied(&second);
    assert!(
        policy_text(&vault, "tenant-team-a-db")
            .expect("policy")
            .contains("secret/data/team-a/extra")
    );
    assert_eq!(c.metric("hydrant_controller_objects_total", "updated"), 1.0);

    // A commit granting team-a team-b's path is refused whole: the harmless change in the
    // same commit is not applied either, and the last good commit stays.
    let defaults = remote.work.join("defaults/policies/app-read.hcl");
    let app_read = std::fs::read_to_string(&defaults).expect("read");
    std::fs::write(
        &defaults,
        format!("{app_read}\npath \"secret/data/{{{{ namespace }}}}/shared\" {{\n  capabilities = [\"read\"]\n}}\n"),
    )
    .expect("write");
    let bad = remote.commit(
        db,
        "path \"secret/data/team-b/*\" {\n  capabilities = [\"read\"]\n}\n",
    );
    c.sync();
    util::wait_for("the refusal", Duration::from_secs(30), || {
        c.metric(
            "hydrant_controller_guardrail_refusals_total",
            "allowed-paths",
        ) >= 1.0
    });
    // The count comes just before the log line.
    util::wait_for(
        "the log naming the commit and file",
        Duration::from_secs(10),
        || {
            let log = c.process.log();
            log.contains(&format!("commit={bad}"))
                && log.contains("namespaces/team-a/policies/db.hcl")
        },
    );
    let refused = wait_event(&kube, "CommitRefused", &bad[..12]);
    assert_eq!(refused["type"], "Warning");
    let note = refused["note"].as_str().expect("note");
    assert!(
        note.contains("namespaces/team-a/policies/db.hcl")
            && note.contains("[allowed-paths]")
            && note.contains(&format!("commit {} stays applied", &second[..12])),
        "the Event names the file, the rule and what stays: {note}"
    );
    assert_eq!(c.get("/readyz").1, format!("ready: applied {second}\n"));
    assert_eq!(recorded_commit(&vault), second);
    let text = policy_text(&vault, "tenant-team-a-db").expect("policy");
    assert!(!text.contains("team-b"), "{text}");
    assert!(
        !policy_text(&vault, "tenant-team-a-app-read")
            .expect("policy")
            .contains("secret/data/team-a/shared"),
        "nothing of the refused commit is applied"
    );

    // The fix is applied.
    let fixed = remote.commit(db, &original);
    c.sync();
    c.wait_applied(&fixed);
    assert!(
        policy_text(&vault, "tenant-team-a-app-read")
            .expect("policy")
            .contains("secret/data/team-a/shared")
    );
    assert_eq!(recorded_commit(&vault), fixed);
    wait_event(&kube, "Applied", &fixed[..12]);
    assert_eq!(
        events(&kube, "Applied").len(),
        3,
        "each applied commit is an Event of its own"
    );
    c.process.stop();
}

#[test]
fn controller_over_file_url_corrects_drift_and_only_reports_it_in_report_mode() {
    let vault = Vault::start();
    vault.enable_auth("kubernetes", "kubernetes");
    let remote = Remote::new(&vault);
    let head = remote.head();
    let url = remote.file_url();
    let mut c = start(&vault, "correct", &url, &["--drift-interval", "1s"], &[]);
    c.wait_applied(&head);
    let good = policy_text(&vault, "tenant-team-a-db").expect("policy");
    vault.policy(
        "tenant-team-a-db",
        "path \"sys/*\" { capabilities = [\"sudo\"] }",
    );
    util::wait_for("drift corrected", Duration::from_secs(20), || {
        policy_text(&vault, "tenant-team-a-db").as_deref() == Some(good.as_str())
    });
    assert!(c.metric("hydrant_controller_drift_objects_total", "") >= 1.0);
    assert!(c.process.log().contains("drift"), "{}", c.process.log());
    c.process.stop();

    // Report mode: found and counted, left alone.
    let kube = FakeKube::start();
    let kubeconfig = kube.kubeconfig(&vault.path(""));
    let mut r = start(
        &vault,
        "report",
        &url,
        &[
            "--drift-interval",
            "1s",
            "--drift-mode",
            "report",
            "--events",
        ],
        &pod_env(&kubeconfig, "controller-1"),
    );
    r.wait_applied(&head);
    let manual = "path \"secret/data/team-a/*\" {\n  capabilities = [\"deny\"]\n}\n";
    vault.policy("tenant-team-a-db", manual);
    util::wait_for("drift reported twice", Duration::from_secs(20), || {
        r.metric("hydrant_controller_drift_objects_total", "") >= 2.0
    });
    // One Warning, counted as a series as the same drift is found again.
    util::wait_for(
        "the DriftFound Event's series",
        Duration::from_secs(20),
        || {
            let found = events(&kube, "DriftFound");
            found.len() == 1 && found[0]["series"]["count"].as_i64().unwrap_or(0) >= 2
        },
    );
    let drift = &events(&kube, "DriftFound")[0];
    assert_eq!(drift["type"], "Warning");
    assert!(
        drift["note"]
            .as_str()
            .unwrap_or_default()
            .contains("policy tenant-team-a-db (changed)"),
        "{drift}"
    );
    assert_eq!(
        policy_text(&vault, "tenant-team-a-db").as_deref(),
        Some(manual)
    );
    r.process.stop();
}

fn namespace(name: &str, labelled: bool) -> Value {
    let labels = if labelled {
        json!({"hydrant.dev/policy": "enabled", "kubernetes.io/metadata.name": name})
    } else {
        json!({"kubernetes.io/metadata.name": name})
    };
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}})
}

#[test]
fn controller_follows_namespaces_defaults_for_new_ones_and_removal_for_deleted_ones() {
    let vault = Vault::start();
    vault.enable_auth("kubernetes", "kubernetes");
    let remote = Remote::new(&vault);
    let kube = FakeKube::start();
    for (name, labelled) in [("team-a", true), ("team-b", true), ("team-x", false)] {
        kube.put("/api/v1/namespaces", namespace(name, labelled));
    }
    let kubeconfig = kube.kubeconfig(&vault.path(""));
    let mut c = start(
        &vault,
        "ns",
        &remote.file_url(),
        &["--namespace-selector", "hydrant.dev/policy=enabled"],
        &[("KUBECONFIG", kubeconfig.as_os_str())],
    );
    c.wait_applied(&remote.head());
    assert!(policy_text(&vault, "tenant-team-a-app-read").is_some());
    assert!(policy_text(&vault, "tenant-team-b-app-read").is_some());
    assert!(
        policy_text(&vault, "tenant-team-c-app-read").is_none(),
        "team-c is in the settings but not in the cluster"
    );
    assert!(
        policy_text(&vault, "tenant-team-x-app-read").is_none(),
        "team-x does not match the selector"
    );

    kube.put("/api/v1/namespaces", namespace("team-d", true));
    util::wait_for("defaults for team-d", Duration::from_secs(20), || {
        policy_text(&vault, "tenant-team-d-app-read").is_some()
    });

    let role = |name: &str| {
        reqwest::blocking::Client::new()
            .get(format!("{}/v1/auth/kubernetes/role/{name}", vault.addr))
            .header("X-Vault-Token", ROOT_TOKEN)
            .send()
            .expect("read role")
            .status()
            .as_u16()
    };
    assert_eq!(role("tenant-team-b-web"), 200);
    kube.delete("/api/v1/namespaces", "team-b");
    util::wait_for("team-b's objects removed", Duration::from_secs(20), || {
        policy_text(&vault, "tenant-team-b-app-read").is_none()
    });
    assert_eq!(role("tenant-team-b-web"), 404);
    assert!(policy_text(&vault, "tenant-team-a-db").is_some());
    assert!(
        kube.requests()
            .iter()
            .any(|r| r.starts_with("GET /api/v1/namespaces?") && r.contains("watch=true")),
        "the namespaces are watched, not polled"
    );
    c.process.stop();
}

#[test]
fn two_controllers_one_lease_only_the_holder_applies_and_a_stopped_leader_hands_over_at_once() {
    let vault = Vault::start();
    vault.enable_auth("kubernetes", "kubernetes");
    let remote = Remote::new(&vault);
    let kube = FakeKube::start();
    let kubeconfig = kube.kubeconfig(&vault.path(""));
    let url = remote.file_url();
    let replica = |name: &str| {
        start(
            &vault,
            name,
            &url,
            &[
                "--leader-election",
                "--lease-namespace",
                "hydrant",
                "--identity",
                name,
                "--lease-duration",
                "60s",
            ],
            &[("KUBECONFIG", kubeconfig.as_os_str())],
        )
    };
    let mut a = replica("a");
    let lease_path = "/apis/coordination.k8s.io/v1/namespaces/hydrant/leases";
    util::wait_for("a holds the lease", Duration::from_secs(20), || {
        kube.get(lease_path, "hydrant-controller")
            .is_some_and(|l| l["spec"]["holderIdentity"] == "a")
    });
    let mut b = replica("b");
    a.wait_applied(&remote.head());
    util::wait_for("b stands by", Duration::from_secs(20), || {
        b.get("/readyz") == (200, "ready: standing by for the lease\n".to_owned())
    });
    assert_eq!(a.metric("hydrant_controller_leading", ""), 1.0);
    assert_eq!(b.metric("hydrant_controller_leading", ""), 0.0);
    assert_eq!(b.metric("hydrant_controller_applies_total", ""), 0.0);
    assert!(!b.process.log().contains("applied"), "{}", b.process.log());

    // The leader releases the Lease when stopped: b takes over well within the 60 s term.
    a.process.stop();
    util::wait_for("b leads", Duration::from_secs(15), || {
        kube.get(lease_path, "hydrant-controller")
            .is_some_and(|l| l["spec"]["holderIdentity"] == "b")
    });
    b.wait_applied(&remote.head());
    let lease = kube.get(lease_path, "hydrant-controller").expect("lease");
    assert_eq!(lease["spec"]["leaseTransitions"], 1, "{lease}");
    b.process.stop();
}

/// The hardening campaign's 500 `POST /sync` made about 500 fetches. Now a storm of them is
/// coalesced: at most one fetch in flight, the rest wait for the next one, and sync fetches are
/// at least `--sync-interval` (5s) apart; a sync after a new commit still applies it within that.
#[test]
fn a_storm_of_sync_requests_makes_few_fetches_and_a_sync_after_a_push_still_applies() {
    let vault = Vault::start();
    vault.enable_auth("kubernetes", "kubernetes");
    let remote = Remote::new(&vault);
    let mut c = start(&vault, "c", &remote.file_url(), &[], &[]);
    let first = remote.head();
    c.wait_applied(&first);
    let fetches = |c: &Controller| c.metric("hydrant_controller_fetches_total", "");
    // Whatever else the start fetched (a closed namespace channel wakes the loop too).
    std::thread::sleep(Duration::from_secs(1));
    let before = fetches(&c);

    // 200 requests, 4 at a time, each sent when the last one was answered: the pace of a
    // client that waits for its 202 before sending the next.
    let client = reqwest::blocking::Client::new();
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| {
                for _ in 0..50 {
                    let response = client
                        .post(format!("{}/sync", c.url))
                        .send()
                        .expect("POST /sync");
                    assert_eq!(response.status().as_u16(), 202);
                }
            });
        }
    });
    // The storm's fetch (at most one more, should the storm outlast the interval).
    util::wait_for("the storm's fetch", Duration::from_secs(30), || {
        fetches(&c) > before
    });
    std::thread::sleep(Duration::from_secs(6));
    let after_storm = fetches(&c);
    assert!(
        after_storm - before <= 2.0,
        "200 syncs made {} fetches\nlog:\n{}",
        after_storm - before,
        c.process.log()
    );

    let db = "namespaces/team-a/policies/db.hcl";
    let original = std::fs::read_to_string(remote.work.join(db)).expect("read");
    let second = remote.commit(
        db,
        &format!(
            "{original}\npath \"secret/data/team-a/extra\" {{\n  capabilities = [\"read\"]\n}}\n"
        ),
    );
    c.sync();
    c.wait_applied(&second);
    assert_eq!(fetches(&c), after_storm + 1.0, "one sync, one fetch");
}

/// A symlink in a commit was left out of the checkout silently, so the controller applied a
/// commit that `policy lint` refuses. It is refused whole, naming the link, which is never
/// followed; the last good commit stays.
#[test]
fn a_commit_with_a_symlink_where_hydrant_reads_is_refused_by_name() {
    let vault = Vault::start();
    vault.enable_auth("kubernetes", "kubernetes");
    let remote = Remote::new(&vault);
    let mut c = start(&vault, "c", &remote.file_url(), &[], &[]);
    let first = remote.head();
    c.wait_applied(&first);

    std::os::unix::fs::symlink(
        "/etc/passwd",
        remote.work.join("namespaces/team-a/policies/link.hcl"),
    )
    .expect("symlink");
    let db = "namespaces/team-a/policies/db.hcl";
    let bad = remote.commit(
        db,
        "path \"database/creds/team-a_other\" {\n  capabilities = [\"read\"]\n}\n",
    );
    c.sync();
    util::wait_for("the refusal", Duration::from_secs(30), || {
        c.metric("hydrant_controller_guardrail_refusals_total", "layout") >= 1.0
    });
    util::wait_for("the log naming the link", Duration::from_secs(10), || {
        let log = c.process.log();
        log.contains(&format!("commit={bad}"))
            && log.contains("namespaces/team-a/policies/link.hcl")
    });
    assert_eq!(
        c.get("/readyz").1,
        format!("ready: applied {first}\n"),
        "the last good commit stays"
    );
    assert!(
        !policy_text(&vault, "tenant-team-a-db")
            .expect("policy")
            .contains("team-a_other"),
        "nothing of the commit is applied"
    );
}
