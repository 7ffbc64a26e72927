//! Environment variables from Vault as a pod asks for them (anyone who can create a pod writes
//! them): input lines are a container env name and value (bank-vaults' `vault:` convention), then
//! a `hydrant.dev/env-<VAR>` annotation's name and value (`\n` written as `\\n`). Whatever they
//! say, the parsers and the mutation never panic; an allowed patch applies, gives a pod whose
//! every `hydrant exec` configuration is valid and holds no `vault:` value, and is not applied
//! twice.
#![no_main]

use injector::agent_config::AgentConfig;
use injector::annotations::env::{annotation_entry, container_reference};
use injector::{InjectorSettings, mutate};
use k8s_openapi::api::core::v1::Pod;
use libfuzzer_sys::fuzz_target;
use serde_json::json;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut lines = text.lines().map(|l| l.replace("\\n", "\n"));
    let (name, value) = (
        lines.next().unwrap_or_default(),
        lines.next().unwrap_or_default(),
    );
    let (var, template) = (
        lines.next().unwrap_or_default(),
        lines.next().unwrap_or_default(),
    );
    if let Ok(Some(reference)) = container_reference(&value) {
        assert!(!reference.key.is_empty(), "a reference names its key");
        assert_ne!(reference.version, Some(0), "versions count from 1");
    }
    let key = format!("hydrant.dev/env-{var}");
    if let Ok(Some(entry)) = annotation_entry(&key, &template) {
        assert_eq!(entry.name, var);
    }
    let mut annotations = json!({"hydrant.dev/inject": "true", "hydrant.dev/role": "app"});
    if !var.is_empty() {
        annotations[key] = json!(template);
    }
    let raw = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "p", "annotations": annotations},
        "spec": {
            "containers": [{"name": "app", "image": "app", "command": ["/app"],
                "env": [{"name": name, "value": value}, {"name": "PLAIN", "value": "x"}]}],
        }
    });
    let Ok(pod) = serde_json::from_value::<Pod>(raw.clone()) else {
        return;
    };
    let settings = InjectorSettings::new("https://vault:8200", "hydrant:fuzz");
    let Ok(Some(mutation)) = mutate(&pod, "team-a", &settings) else {
        return;
    };
    let mut value = raw;
    json_patch::patch(&mut value, &mutation.patch).expect("an allowed patch applies");
    let mutated: Pod = serde_json::from_value(value).expect("the result is a pod");
    let spec = mutated.spec.as_ref().expect("a spec");
    for container in &spec.containers {
        if !mutation.exec.contains(&container.name) {
            continue;
        }
        let env = container.env.as_deref().unwrap_or_default();
        for var in env {
            let value = var.value.as_deref().unwrap_or_default();
            assert!(
                !matches!(container_reference(value), Ok(Some(_))),
                "a vault: value is left in the env"
            );
        }
        let config = env
            .iter()
            .find(|e| e.name == "HYDRANT_AGENT_CONFIG")
            .and_then(|e| e.value.as_deref())
            .expect("hydrant exec's configuration");
        let config: AgentConfig = serde_json::from_str(config).expect("it parses");
        config.validate_exec().expect("and is valid");
    }
    assert_eq!(
        mutate(&mutated, "team-a", &settings),
        Ok(None),
        "no second injection"
    );
});
