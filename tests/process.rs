//! Protections every long-running subcommand sets at start (hardening issue, items 4 and 10):
//! it cannot be dumped, writes no core file, and may open every descriptor its hard limit
//! allows. Each is checked from outside, in `/proc`, on the real binary.

use std::os::unix::fs::MetadataExt as _;
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::{self, KillOnDrop};

/// The user the subcommands run as when the tests run as root: the checks need a process
/// whose `/proc` files would not be root's if it were dumpable.
const NOBODY: u32 = 65534;

/// One limit's soft value from `/proc/PID/limits` ("unlimited" or a number).
fn soft_limit(limits: &str, name: &str) -> String {
    limits
        .lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no {name:?} in:\n{limits}"))
        .to_owned()
}

fn hard_open_files() -> String {
    let ours = std::fs::read_to_string("/proc/self/limits").expect("our limits");
    ours.lines()
        .find_map(|l| l.strip_prefix("Max open files"))
        .and_then(|rest| rest.split_whitespace().nth(1))
        .expect("our hard open files limit")
        .to_owned()
}

/// What a process looks like from outside.
#[derive(Debug, PartialEq)]
struct Seen {
    /// `/proc/PID/comm`.
    command: String,
    /// The state letter from /proc/PID/status: an exited process (Z) is root's too.
    state: String,
    /// The owner of `/proc/PID/status`. proc(5): files in /proc/PID are owned by the process's
    /// effective user, "however, as a security measure, the ownership is made root:root if the
    /// process's dumpable attribute is set to a value other than 1". The process runs as a user
    /// other than root, so root here means: not dumpable. There is no other outside view of
    /// the attribute (it is not in /proc/PID/status), and root's CAP_SYS_PTRACE would make a
    /// ptrace or gcore attempt succeed either way.
    proc_owner: u32,
    /// Its real user, from /proc/PID/status.
    user: u32,
    core_soft: String,
    open_files_soft: String,
}

fn seen(pid: u32) -> Option<Seen> {
    let proc = format!("/proc/{pid}");
    let status = std::fs::read_to_string(format!("{proc}/status")).ok()?;
    let limits = std::fs::read_to_string(format!("{proc}/limits")).ok()?;
    Some(Seen {
        command: std::fs::read_to_string(format!("{proc}/comm"))
            .ok()?
            .trim()
            .to_owned(),
        state: status
            .lines()
            .find_map(|l| l.strip_prefix("State:"))
            .and_then(|v| v.split_whitespace().next())?
            .to_owned(),
        proc_owner: std::fs::metadata(format!("{proc}/status")).ok()?.uid(),
        user: status
            .lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())?,
        core_soft: soft_limit(&limits, "Max core file size"),
        open_files_soft: soft_limit(&limits, "Max open files"),
    })
}

/// Starts `hydrant <args>` from a shell that first allows core files and lowers the soft open
/// files limit to 256, as a user other than root; checks what it looks like once it runs.
fn assert_protected(name: &str, args: &[&str], env: &[(&str, &str)], dir: &Path) {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg("ulimit -Sc unlimited 2>/dev/null || ulimit -Sc 1024; ulimit -Sn 256; exec \"$0\" \"$@\"")
        .arg(env!("CARGO_BIN_EXE_hydrant"))
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .envs(env.iter().copied())
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let root = effective_user() == 0;
    if root {
        cmd.uid(NOBODY).gid(NOBODY);
    }
    let child = KillOnDrop(cmd.spawn().expect("start hydrant"));
    let pid = child.0.id();
    let want = |s: &Seen| {
        s.command == "hydrant"
            && s.state != "Z"
            && s.proc_owner == 0
            && s.core_soft == "0"
            && s.open_files_soft == hard_open_files()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut last = None;
    while Instant::now() < deadline {
        last = seen(pid);
        if last.as_ref().is_some_and(want) {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let last = last.unwrap_or_else(|| panic!("{name}: exited before it could be looked at"));
    assert_ne!(last.user, 0, "{name}: runs as a user other than root");
    assert_eq!(last.command, "hydrant", "{name}: {last:?}");
    assert_ne!(last.state, "Z", "{name}: still runs; {last:?}");
    assert_eq!(last.core_soft, "0", "{name}: no core files; {last:?}");
    assert_eq!(
        last.open_files_soft,
        hard_open_files(),
        "{name}: the soft open files limit is raised to the hard one; {last:?}"
    );
    assert_eq!(
        last.proc_owner, 0,
        "{name}: /proc/{pid}/status is root's: the process is not dumpable; {last:?}"
    );
}

/// Our effective user, from /proc (no libc call needed).
fn effective_user() -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .expect("status")
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|v| v.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .expect("euid")
}

/// A directory the unprivileged user can read and write.
fn open_dir() -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).expect("chmod");
    dir
}

#[test]
fn the_agent_webhook_and_controller_cannot_be_dumped_and_may_open_every_descriptor() {
    let dir = open_dir();
    // The agent keeps retrying a login whose files do not exist: it runs, reading no secret.
    let agent_config = r#"{"vault": {"address": "http://127.0.0.1:1"},
        "auth": {"method": "approle", "role_id_path": "/nonexistent/role-id",
                 "secret_id_path": "/nonexistent/secret-id"},
        "templates": [{"name": "a", "contents": "x", "destination": "out/a"}]}"#;
    assert_protected(
        "agent",
        &["agent"],
        &[("HYDRANT_AGENT_CONFIG", agent_config)],
        dir.path(),
    );

    let key = rcgen::KeyPair::generate().expect("key");
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
        .expect("params")
        .self_signed(&key)
        .expect("cert");
    std::fs::write(dir.path().join("tls.crt"), cert.pem()).expect("cert");
    std::fs::write(dir.path().join("tls.key"), key.serialize_pem()).expect("key");
    let listen = format!("127.0.0.1:{}", util::free_port());
    assert_protected(
        "webhook",
        &[
            "webhook",
            "--listen",
            &listen,
            "--tls-cert",
            "tls.crt",
            "--tls-key",
            "tls.key",
            "--vault-addr",
            "https://vault.vault.svc:8200",
        ],
        &[],
        dir.path(),
    );

    // The controller keeps retrying a fetch from a repository that does not exist.
    let listen = format!("127.0.0.1:{}", util::free_port());
    assert_protected(
        "controller",
        &[
            "controller",
            "--repository",
            "file:///nonexistent/policy",
            "--state-dir",
            "state",
            "--listen",
            &listen,
        ],
        &[("VAULT_ADDR", "http://127.0.0.1:1"), ("VAULT_TOKEN", "t")],
        dir.path(),
    );
}
