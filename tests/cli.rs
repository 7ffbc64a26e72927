//! The command line itself.

use crate::util::Hydrant;

#[test]
fn subcommands_whose_issue_has_not_landed_exit_64_saying_so() {
    for sub in ["render", "controller", "policy"] {
        let line = Hydrant::new([sub, "--anything"]).run().failure(64);
        assert_eq!(line, format!("hydrant: {sub} is not implemented yet"));
    }
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

#[test]
fn agent_without_once_says_the_sidecar_is_not_there_yet() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("agent.yaml");
    std::fs::write(
        &config,
        "vault: {address: 'http://127.0.0.1:1'}\nauth: {method: token, token_path: /t}\nsecrets: [{name: a, path: kv/a, destination: /tmp/a}]\n",
    )
    .expect("write");
    let line = Hydrant::new(["agent", "--config"])
        .env("X", "y")
        .run_with_arg(&config)
        .failure(64);
    assert!(
        line.contains("not implemented yet; run with --once"),
        "{line}"
    );
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
