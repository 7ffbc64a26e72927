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
    assert_eq!(
        names,
        [
            "app.properties",
            "db.env",
            "features.json",
            "platform.properties"
        ]
    );
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

/// `examples/config/`: the factory scenario of the platform-config article. Every format, both
/// templates, `--explain` and a failing `--check` give exactly the files in `expected/`.
#[test]
fn the_config_example_renders_every_expected_file() {
    let dir = util::root().join("examples/config");
    let line1 = "app=patch-to-core,region=emea,site=atlantida,line=line1,env=qa";
    let cases: &[(&str, &[&str])] = &[
        (
            "line1-qa.json",
            &[
                "--labels",
                line1,
                "--schema",
                "schema.json",
                "--format",
                "json",
            ],
        ),
        (
            "line1-qa.yaml",
            &[
                "--labels",
                line1,
                "--schema",
                "schema.json",
                "--format",
                "yaml",
            ],
        ),
        (
            "line1-qa.properties",
            &[
                "--labels",
                line1,
                "--schema",
                "schema.json",
                "--format",
                "properties",
            ],
        ),
        (
            "line1-qa.env",
            &[
                "--labels",
                line1,
                "--schema",
                "schema.json",
                "--format",
                "env",
            ],
        ),
        (
            "line1-qa.configmap.yaml",
            &[
                "--labels",
                line1,
                "--format",
                "configmap",
                "--name",
                "platform-config",
                "--namespace",
                "line1",
            ],
        ),
        (
            "line1-qa.catalog.yaml",
            &["--labels", line1, "--template", "catalog.yaml.j2"],
        ),
        (
            "line1-qa.db.env",
            &[
                "--labels",
                line1,
                "--template",
                "db.env.j2",
                "--secrets-file",
                "secrets.yaml",
            ],
        ),
        ("line1-qa.explain.txt", &["--labels", line1, "--explain"]),
        (
            "line2-prod.json",
            &[
                "--labels",
                "app=patch-to-core,region=amer,site=atlantida,line=line2,env=prod",
                "--schema",
                "schema.json",
            ],
        ),
    ];
    for (expected, args) in cases {
        let run = Hydrant::new(["render", "--containers", "containers"])
            .current_dir(&dir)
            .run_with_args(&args.iter().map(|a| a.as_ref()).collect::<Vec<_>>())
            .success();
        assert_eq!(
            run.stdout(),
            read(&dir.join("expected").join(expected)),
            "{expected}"
        );
    }
    let failed = Hydrant::new([
        "render",
        "--containers",
        "containers",
        "--schema",
        "schema.json",
        "--check",
    ])
    .current_dir(&dir)
    .run_with_args(&[
        "--labels".as_ref(),
        "app=patch-to-core,site=atlantida,line=line2,env=dev".as_ref(),
    ]);
    assert_eq!(failed.code(), 64);
    assert_eq!(
        failed.stderr(),
        read(&dir.join("expected/line2-dev.check.txt"))
    );
}
