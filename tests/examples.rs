//! Everything under `examples/` runs and renders what it says it renders.

use std::fs;
use std::path::Path;

use crate::util::{self, Hydrant, Vault, mode, read};

/// The quickstart's seed script, configuration and templates against a real OpenBao: the files
/// it renders are byte for byte the ones in `examples/quickstart/expected/` (the certificate and
/// key, which change every run, are checked for shape).
#[test]
fn quickstart_renders_the_expected_files() {
    let vault = Vault::start();
    let work = vault.path("work");
    fs::create_dir_all(&work).expect("work dir");
    std::os::unix::fs::symlink(util::root().join("examples"), work.join("examples"))
        .expect("symlink");
    let bao_dir = util::bao().parent().expect("bao dir").to_owned();
    let path = std::env::join_paths(std::iter::once(bao_dir).chain(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    )))
    .expect("PATH");
    let seed = std::process::Command::new(util::root().join("examples/quickstart/seed.sh"))
        .arg(work.join("target/quickstart"))
        .env("BAO_ADDR", &vault.addr)
        .env("BAO_TOKEN", util::ROOT_TOKEN)
        .env("PATH", path)
        .output()
        .expect("seed.sh");
    assert!(
        seed.status.success(),
        "seed.sh failed: {}",
        String::from_utf8_lossy(&seed.stderr)
    );

    // The example points at the quickstart's fixed port; this test's server has its own.
    let config = read(&util::root().join("examples/quickstart/agent.yaml"))
        .replace("http://127.0.0.1:18200", &vault.addr);
    let config_path = work.join("agent.yaml");
    fs::write(&config_path, config).expect("write config");

    Hydrant::agent_once(&config_path)
        .current_dir(&work)
        .run()
        .success();

    let secrets = work.join("target/quickstart/secrets");
    let expected = util::root().join("examples/quickstart/expected");
    let mut names: Vec<String> = fs::read_dir(&expected)
        .expect("expected dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["app.properties", "db.env", "features.json"]);
    for name in &names {
        assert_eq!(
            read(&secrets.join(name)),
            read(&expected.join(name)),
            "{name}"
        );
    }
    assert_eq!(mode(&secrets.join("db.env")), 0o600);
    assert!(read(&secrets.join("tls.crt")).starts_with("-----BEGIN CERTIFICATE-----\n"));
    assert!(read(&secrets.join("tls.key")).contains("PRIVATE KEY-----"));
    assert_eq!(mode(&secrets.join("tls.key")), 0o600);
    assert_same_key_pair(&secrets.join("tls.crt"), &secrets.join("tls.key"));
}

/// The certificate and key come from one issue request: their public keys match.
fn assert_same_key_pair(cert: &Path, key: &Path) {
    let public = |args: &[&str], file: &Path| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .arg(file)
            .output()
            .expect("openssl");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    };
    assert_eq!(
        public(&["x509", "-noout", "-pubkey", "-in"], cert),
        public(&["pkey", "-pubout", "-in"], key),
        "certificate and key belong together"
    );
}
