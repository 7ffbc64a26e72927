//! Annotation parsing and the mutation (annotations are written by anyone who can create a
//! pod): each input line `key=value` becomes an annotation of a typical pod. Whatever they say,
//! the mutation never panics, and an allowed patch applies, gives a pod, and is not applied
//! twice.
#![no_main]

use std::collections::BTreeMap;

use injector::{InjectorSettings, mutate};
use k8s_openapi::api::core::v1::Pod;
use libfuzzer_sys::fuzz_target;
use serde_json::json;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let annotations: BTreeMap<String, String> = text
        .lines()
        .filter_map(|line| line.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.replace("\\n", "\n")))
        .collect();
    let raw = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "p", "annotations": annotations},
        "spec": {
            "containers": [{"name": "app", "image": "app",
                "volumeMounts": [{"name": "sa", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}]}],
            "initContainers": [{"name": "setup", "image": "setup"}],
            "volumes": [{"name": "sa", "projected": {"sources": [{"serviceAccountToken": {"path": "token"}}]}}]
        }
    });
    let pod: Pod = serde_json::from_value(raw.clone()).expect("a valid pod");
    let settings = InjectorSettings::new("https://vault:8200", "hydrant:fuzz");
    let Ok(Some(mutation)) = mutate(&pod, "team-a", &settings) else {
        return;
    };
    let mut value = raw;
    json_patch::patch(&mut value, &mutation.patch).expect("an allowed patch applies");
    let mutated: Pod = serde_json::from_value(value).expect("the result is a pod");
    assert_eq!(
        mutate(&mutated, "team-a", &settings),
        Ok(None),
        "no second injection"
    );
});
