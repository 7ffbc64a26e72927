//! Embeds the git revision in `hydrant --version`: `HYDRANT_REVISION` when the build sets it
//! (the Dockerfile does, from its build argument), else `git rev-parse`, else "unknown".
//!
//! For the shipped binary (`cargo dist`: release, static, x86_64 glibc, linked by lld) it also
//! hands lld `.cargo/hydrant.order`, the functions the agent runs, to place first and together
//! (see `tests/benches/symbol_order.py`, which writes it).

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=HYDRANT_REVISION");
    let revision = std::env::var("HYDRANT_REVISION")
        .ok()
        .filter(|r| !r.trim().is_empty())
        .or_else(|| {
            let out = Command::new("git")
                .args(["rev-parse", "--short=12", "HEAD"])
                .output()
                .ok()?;
            out.status
                .success()
                .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".to_owned());
    if std::path::Path::new(".git/HEAD").exists() {
        println!("cargo:rerun-if-changed=.git/HEAD");
        println!("cargo:rerun-if-changed=.git/refs/heads");
    }
    println!("cargo:rustc-env=HYDRANT_REVISION={}", revision.trim());
    symbol_order();
}

/// The symbol ordering file, for the one build whose linker is known to be lld.
fn symbol_order() {
    let var = |name: &str| std::env::var(name).unwrap_or_default();
    let order = std::path::Path::new(&var("CARGO_MANIFEST_DIR")).join(".cargo/hydrant.order");
    println!("cargo:rerun-if-changed={}", order.display());
    let shipped = var("PROFILE") == "release"
        && var("TARGET") == "x86_64-unknown-linux-gnu"
        && var("CARGO_CFG_TARGET_FEATURE")
            .split(',')
            .any(|f| f == "crt-static");
    if shipped && order.exists() {
        println!(
            "cargo:rustc-link-arg-bins=-Wl,--symbol-ordering-file={}",
            order.display()
        );
        // A name the code no longer has is skipped: a stale list loses only some benefit.
        println!("cargo:rustc-link-arg-bins=-Wl,--no-warn-symbol-ordering");
    }
}
