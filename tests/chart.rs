//! The Helm chart and the Dockerfile, checked with the real Helm library and Kubernetes' schemas
//! by `tests/chart_test.py` (lint, render with every values file, strict validation for 1.29 and
//! the newest, webhook wiring, every Deployment flag parsed by this binary, the values schema,
//! the image's entrypoint and user).

use std::process::Command;

use crate::util;

#[test]
fn the_chart_lints_renders_validates_and_passes_only_flags_the_binary_takes() {
    let python = util::python_with(
        &["helm_python", "kubernetes_validate", "yaml"],
        &["helm-python-sdk", "kubernetes-validate", "pyyaml"],
    );
    let out = Command::new(python)
        .arg(util::root().join("tests/chart_test.py"))
        .arg(env!("CARGO_BIN_EXE_hydrant"))
        .output()
        .expect("run tests/chart_test.py");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.starts_with("chart ok: 9 values sets"), "{stdout}");
}
