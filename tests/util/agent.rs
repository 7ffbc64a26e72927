//! What the agent's tests share (`agent`, `sidecar`, `inject`): writing an agent config, the
//! directory outputs go to, and the template most of them render.

use std::path::PathBuf;

use serde_json::{Value, json};

use super::Vault;

/// Writes an agent config (JSON) for `vault` with `auth` and the other top-level keys in `rest`.
pub fn agent_config(vault: &Vault, auth: Value, rest: Value) -> PathBuf {
    let mut doc = json!({"vault": {"address": vault.addr}, "auth": auth});
    for (key, value) in rest.as_object().expect("object") {
        doc[key] = value.clone();
    }
    vault.file(
        "agent.json",
        &serde_json::to_string_pretty(&doc).expect("json"),
    )
}

/// Where an output named `name` is written.
pub fn out(vault: &Vault, name: &str) -> PathBuf {
    vault.path("out").join(name)
}

/// The template most tests render: `db.env`, the user and password of `secret/data/app/db`.
pub fn db_template(vault: &Vault) -> Value {
    json!({
        "name": "db",
        "contents": "user={{ secret('secret/data/app/db').data.username }}\npass={{ secret('secret/data/app/db').data.password }}\n",
        "destination": out(vault, "db.env"),
    })
}
