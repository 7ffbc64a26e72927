//! The command line itself.

use crate::util::Hydrant;

#[test]
fn the_controller_refuses_to_start_without_vault_or_with_a_password_in_the_url() {
    let line = Hydrant::new(["controller", "--repository", "file:///nowhere"])
        .run()
        .failure(64);
    assert_eq!(
        line,
        "hydrant: no Vault: set VAULT_ADDR and VAULT_TOKEN, or pass --agent-config"
    );
    let run = Hydrant::new([
        "controller",
        "--repository",
        "https://bot:hunter2@git.example.com/policy.git",
    ])
    .env("VAULT_ADDR", "http://127.0.0.1:1")
    .env("VAULT_TOKEN", "t")
    .run();
    assert_eq!(run.code(), 64);
    assert!(
        run.stderr().contains("--git-password-file"),
        "{}",
        run.stderr()
    );
    assert!(!run.stderr().contains("hunter2"), "{}", run.stderr());
}

#[test]
fn usage_errors_exit_64_and_help_exits_0() {
    let run = Hydrant::new(["agent", "--bogus"]).run();
    assert_eq!(run.code(), 64, "{}", run.stderr());
    assert!(run.stderr().contains("--bogus"), "{}", run.stderr());
    let run = Hydrant::new(["agent", "--help"]).run().success();
    assert!(run.stdout().contains("--once"), "{}", run.stdout());
}

#[test]
fn version_is_printed() {
    let run = Hydrant::new(["--version"]).run().success();
    assert!(run.stdout().starts_with("hydrant "), "{}", run.stdout());
}

/// The sidecar checks its config as the init container does, before anything else.
#[test]
fn the_sidecar_refuses_a_bad_config_with_a_usage_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("agent.yaml");
    std::fs::write(
        &config,
        "vault: {address: 'http://127.0.0.1:1'}\nauth: {method: token, token_path: /t}\nrefresh_interval: 0s\nsecrets: [{name: a, path: kv/a, destination: /tmp/a}]\n",
    )
    .expect("write");
    let line = Hydrant::new(["agent", "--config"])
        .run_with_arg(&config)
        .failure(64);
    assert!(line.contains("refresh_interval"), "{line}");
}

#[test]
fn bad_log_settings_are_usage_errors_naming_the_variable() {
    let line = Hydrant::new(["agent", "--once"])
        .env("HYDRANT_LOG_FORMAT", "xml")
        .run()
        .failure(64);
    assert_eq!(
        line,
        "hydrant: HYDRANT_LOG_FORMAT=\"xml\" is not a log format; use plain or json"
    );
    let line = Hydrant::new(["agent", "--once"])
        .env("HYDRANT_LOG", "hydrant=loud")
        .run()
        .failure(64);
    assert!(
        line.starts_with("hydrant: HYDRANT_LOG=\"hydrant=loud\" is not a valid filter"),
        "{line}"
    );
}

#[test]
fn check_ready_answers_from_the_ready_file_alone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ready = dir.path().join("ready");
    let line = Hydrant::new(["agent", "--check-ready", "--ready-file"])
        .run_with_arg(&ready)
        .failure(1);
    assert!(line.starts_with("hydrant: not ready: "), "{line}");
    std::fs::write(&ready, "").expect("write");
    Hydrant::new(["agent", "--check-ready", "--ready-file"])
        .run_with_arg(&ready)
        .success();
}

/// The webhook binary stops cleanly on SIGTERM.
#[test]
fn the_webhook_stops_on_sigterm() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).expect("cert");
    std::fs::write(dir.path().join("tls.crt"), cert.cert.pem()).expect("cert");
    std::fs::write(dir.path().join("tls.key"), cert.signing_key.serialize_pem()).expect("key");
    let port = crate::util::free_port();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_hydrant"))
        .args(["webhook", "--vault-addr", "https://v:8200", "--listen"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("--tls-cert")
        .arg(dir.path().join("tls.crt"))
        .arg("--tls-key")
        .arg(dir.path().join("tls.key"))
        .env_clear()
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start webhook");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "the webhook never listened"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(kill.success());
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "still running after SIGTERM"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert!(status.success(), "exit status {status}");
}

#[test]
fn the_webhook_refuses_a_key_that_does_not_match_its_certificate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let one = rcgen::generate_simple_self_signed(vec!["a".to_string()]).expect("cert");
    let two = rcgen::generate_simple_self_signed(vec!["b".to_string()]).expect("cert");
    std::fs::write(dir.path().join("tls.crt"), one.cert.pem()).expect("cert");
    std::fs::write(dir.path().join("tls.key"), two.signing_key.serialize_pem()).expect("key");
    let line = Hydrant::new([
        "webhook",
        "--vault-addr",
        "https://v:8200",
        "--listen",
        "127.0.0.1:0",
        "--tls-cert",
    ])
    .run_with_args(&[
        dir.path().join("tls.crt").as_os_str(),
        "--tls-key".as_ref(),
        dir.path().join("tls.key").as_os_str(),
    ])
    .failure(64);
    assert!(
        line.contains("does not belong to the certificate"),
        "{line}"
    );
}

#[test]
fn policy_lint_exits_0_on_a_clean_repository_and_64_listing_every_problem() {
    let run = Hydrant::new(["policy", "lint"])
        .run_with_arg(crate::util::root().join("examples/policy"))
        .success();
    assert_eq!(run.stdout(), "ok: 3 namespaces, 4 policies, 2 roles\n");

    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("hydrant-policy.yaml"),
        "prefix: tenant\naudience: vault\nallowed_paths: [\"secret/data/{{ namespace }}/*\"]\n",
    )
    .expect("settings");
    let policies = dir.path().join("namespaces/team-a/policies");
    std::fs::create_dir_all(&policies).expect("dirs");
    std::fs::write(
        policies.join("steal.hcl"),
        "path \"secret/data/team-b/*\" { capabilities = [\"read\"] }\n",
    )
    .expect("policy");
    let run = Hydrant::new(["policy", "lint"]).run_with_arg(dir.path());
    assert_eq!(run.code(), 64);
    assert_eq!(
        run.stderr(),
        "hydrant: 1 problem in the policy repository; nothing is applied:\n  namespaces/team-a/policies/steal.hcl:1: path \"secret/data/team-b/*\" is outside what namespace team-a may use (secret/data/team-a/*) [allowed-paths]\n"
    );
    let plan =
        Hydrant::new(["policy", "plan"]).run_with_arg(crate::util::root().join("examples/policy"));
    assert_eq!(
        plan.code(),
        64,
        "no Vault is a usage error: {}",
        plan.stderr()
    );
    assert_eq!(
        plan.stderr(),
        "hydrant: no Vault: set VAULT_ADDR and VAULT_TOKEN, or pass --agent-config\n"
    );
}

/// Every subcommand prints the cause of a failure once (an error whose cause was both in its
/// message and in its source chain printed it twice under `{:#}`), and exits with the status
/// the README's table gives: 64 for input it cannot use.
#[test]
fn each_subcommand_prints_a_missing_file_s_cause_once_and_exits_64() {
    let cause = "No such file or directory";
    let runs: [&[&str]; 7] = [
        &["agent", "--once", "--config", "/nope"],
        &["agent", "--config", "/nope"],
        &["render", "--containers", "/nope"],
        &["inject", "--vault-addr", "https://v:8200", "-f", "/nope"],
        &["policy", "lint", "/nope"],
        &[
            "controller",
            "--repository",
            "file:///nope",
            "--agent-config",
            "/nope",
        ],
        &[
            "webhook",
            "--vault-addr",
            "https://v:8200",
            "--tls-cert",
            "/nope",
            "--tls-key",
            "/nope",
        ],
    ];
    for args in runs {
        let run = Hydrant::new(args.iter().copied()).run();
        let stderr = run.stderr();
        assert_eq!(run.code(), 64, "{args:?}: {stderr}");
        assert_eq!(stderr.matches(cause).count(), 1, "{args:?}: {stderr}");
    }
}

/// A pod for `hydrant inject` on standard input, asking for one vault-k8s secret.
const VAULT_K8S_POD: &str = r#"{"apiVersion": "v1", "kind": "Pod",
  "metadata": {"name": "app", "annotations": {"vault.hashicorp.com/agent-inject": "true",
    "vault.hashicorp.com/role": "app", "vault.hashicorp.com/agent-inject-secret-db": "secret/data/db"}},
  "spec": {"containers": [{"name": "app", "image": "app:1"}]}}"#;

/// The injector-wide settings a vault-helm values file gives through vault-k8s's
/// `AGENT_INJECT_*` variables reach the binary's settings; without any Vault address it refuses
/// to start, naming every way to give one.
#[test]
fn inject_reads_vault_k8s_variables_and_refuses_to_start_without_an_address() {
    let run = Hydrant::new(["inject", "-f", "-"])
        .env("AGENT_INJECT_VAULT_ADDR", "https://vault.vault.svc:8200")
        .env("AGENT_INJECT_VAULT_NAMESPACE", "platform")
        .env("AGENT_INJECT_REVOKE_ON_SHUTDOWN", "true")
        .env("HYDRANT_AGENT_LOG_FORMAT", "json")
        .stdin_text(VAULT_K8S_POD)
        .run()
        .success();
    let stdout = run.stdout();
    for expected in [
        r#"\"address\":\"https://vault.vault.svc:8200\""#,
        r#"\"namespace\":\"platform\""#,
        r#"\"revoke_on_shutdown\":true"#,
    ] {
        assert!(stdout.contains(expected), "{expected} not in {stdout}");
    }
    assert!(
        stdout.contains("- name: HYDRANT_LOG_FORMAT\n      value: json"),
        "{stdout}"
    );
    let run = Hydrant::new(["inject", "-f", "-"])
        .env("AGENT_INJECT_RUN_AS_SAME_USER", "maybe")
        .stdin_text(VAULT_K8S_POD)
        .run();
    let stderr = run.stderr();
    assert_eq!(run.code(), 64, "{stderr}");
    assert!(
        stderr.contains("hydrant: AGENT_INJECT_RUN_AS_SAME_USER: \"maybe\" is not a boolean"),
        "{stderr}"
    );
    assert!(
        stderr.contains(
            "hydrant: --vault-addr (HYDRANT_VAULT_ADDR, or AGENT_INJECT_VAULT_ADDR) is required"
        ),
        "{stderr}"
    );
}

/// `hydrant webhook --vault-addr vault:8200` would say ready and deny nothing, then every
/// agent's login would fail: it is refused at start, before it reads its certificate or
/// listens, naming the fix.
#[test]
fn the_webhook_refuses_an_address_without_a_scheme_before_it_listens() {
    let run = Hydrant::new([
        "webhook",
        "--vault-addr",
        "vault:8200",
        "--auth-mount",
        "auth/kubernetes",
        "--tls-cert",
        "/nope",
        "--tls-key",
        "/nope",
    ])
    .run();
    let stderr = run.stderr();
    assert_eq!(run.code(), 64, "{stderr}");
    assert_eq!(
        stderr,
        "hydrant: --vault-addr: \"vault:8200\" has no scheme; write https://vault:8200 (or http:// for a Vault without TLS)\n"
    );
}

/// `hydrant signal`, what signalling commands become in the image without a shell, signals a
/// real process by name (as pidof), by pattern (as pkill) and by ID, and fails naming the cause
/// when nothing matches. The processes are copies of `sleep` under a name no other process has.
#[test]
fn hydrant_signal_signals_a_process_by_name_pattern_and_id() {
    use std::os::unix::process::ExitStatusExt as _;
    let dir = tempfile::tempdir().expect("tempdir");
    let sleep = ["/bin/sleep", "/usr/bin/sleep"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .expect("a sleep binary");
    // The kernel keeps 15 bytes of a process's name.
    let name = format!("hsig{}", std::process::id() % 100_000_000);
    let program = dir.path().join(&name);
    std::fs::copy(sleep, &program).expect("copy sleep");
    let spawn = || {
        std::process::Command::new(&program)
            .arg("60")
            .spawn()
            .expect("spawn")
    };
    let signalled = |child: &mut std::process::Child| child.wait().expect("wait").signal();

    let mut child = spawn();
    // Its name shows once it has exec'd.
    crate::util::wait_for(
        "the process's name",
        std::time::Duration::from_secs(5),
        || {
            std::fs::read_to_string(format!("/proc/{}/comm", child.id()))
                .is_ok_and(|c| c.trim() == name)
        },
    );
    Hydrant::new(["signal", "--name", &name, "USR1"])
        .run()
        .success();
    assert_eq!(signalled(&mut child), Some(10));

    let mut child = spawn();
    crate::util::wait_for(
        "the process's name",
        std::time::Duration::from_secs(5),
        || {
            std::fs::read_to_string(format!("/proc/{}/comm", child.id()))
                .is_ok_and(|c| c.trim() == name)
        },
    );
    Hydrant::new(["signal", "--pattern", &format!("^{name}$"), "SIGTERM"])
        .run()
        .success();
    assert_eq!(signalled(&mut child), Some(15));

    // A number, and one no parent can have set to be ignored (nohup ignores SIGHUP, and a
    // shell's background jobs SIGINT and SIGQUIT, for the processes they start).
    let mut child = spawn();
    Hydrant::new(["signal", "--pid", &child.id().to_string(), "9"])
        .run()
        .success();
    assert_eq!(signalled(&mut child), Some(9));

    let run = Hydrant::new(["signal", "--name", &format!("{name}x"), "HUP"]).run();
    let stderr = run.stderr();
    assert_eq!(run.code(), 1, "{stderr}");
    assert!(
        stderr.contains("no process named") && stderr.contains("shareProcessNamespace"),
        "{stderr}"
    );
    let run = Hydrant::new(["signal", "--pid", "1", "BOGUS"]).run();
    assert_eq!(run.code(), 64, "{}", run.stderr());
}

/// Shell completions and man pages come from the clap definitions: bash loads the script and
/// registers it, each subcommand gets a page, an unknown shell is a usage error.
#[test]
fn completions_and_man_pages_are_generated_from_the_command_line_definition() {
    let script = Hydrant::new(["completions", "bash"])
        .run()
        .success()
        .stdout();
    assert!(script.contains("check-webhook"), "{script}");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("hydrant.bash");
    std::fs::write(&path, &script).expect("write");
    let registered = std::process::Command::new("bash")
        .arg("-c")
        .arg(format!("source {} && complete -p hydrant", path.display()))
        .output()
        .expect("bash");
    assert!(
        String::from_utf8_lossy(&registered.stdout).contains("hydrant"),
        "{}",
        String::from_utf8_lossy(&registered.stderr)
    );
    for shell in ["zsh", "fish", "elvish", "powershell"] {
        let run = Hydrant::new(["completions", shell]).run().success();
        assert!(run.stdout().contains("policy"), "{shell}");
    }
    let run = Hydrant::new(["completions", "tcsh"]).run();
    assert_eq!(run.code(), 64, "{}", run.stderr());
    assert!(
        run.stderr().contains("invalid value 'tcsh'"),
        "{}",
        run.stderr()
    );

    let page = Hydrant::new(["man"]).run().success().stdout();
    assert!(page.contains(".TH hydrant 1"), "{page}");
    let pages = dir.path().join("man1");
    Hydrant::new(["man", "--dir"])
        .run_with_arg(&pages)
        .success();
    for name in [
        "hydrant.1",
        "hydrant-agent.1",
        "hydrant-webhook.1",
        "hydrant-policy-apply.1",
    ] {
        let text =
            std::fs::read_to_string(pages.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(text.contains(".TH"), "{name}");
    }
}
