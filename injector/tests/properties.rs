//! Properties of the mutation over generated pods: whatever the pod, an allowed patch applies
//! cleanly, gives a valid pod, is byte-identical on every run, and mutating its result again gives
//! no patch.

use injector::{InjectorSettings, mutate};
use k8s_openapi::api::core::v1::Pod;
use proptest::prelude::*;
use serde_json::{Map, Value, json};

fn settings() -> InjectorSettings {
    InjectorSettings::new("https://vault:8200", "hydrant:test")
}

prop_compose! {
    fn container(index: usize)(mounts in proptest::collection::vec("[a-z]{1,6}", 0..3), sa in any::<bool>()) -> Value {
        let mut volume_mounts: Vec<Value> = mounts
            .iter()
            .enumerate()
            .map(|(i, m)| json!({"name": format!("{m}{index}{i}"), "mountPath": format!("/data/{m}/{index}/{i}")}))
            .collect();
        if sa {
            volume_mounts.push(json!({"name": "kube-api-access", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount", "readOnly": true}));
        }
        let mut c = json!({"name": format!("c{index}"), "image": "app"});
        if !volume_mounts.is_empty() {
            c["volumeMounts"] = Value::Array(volume_mounts);
        }
        c
    }
}

/// One annotation of a family, with values mostly valid for its key and sometimes not.
fn vault_annotation() -> impl Strategy<Value = (String, String)> {
    let name = "[a-zA-Z][a-zA-Z0-9-]{0,8}";
    let boolean = prop_oneof![Just("true"), Just("false"), Just("maybe")].prop_map(str::to_owned);
    prop_oneof![
        (
            name,
            prop_oneof![
                Just("secret/data/app"),
                Just("kv/app"),
                Just("database/creds/ro")
            ]
        )
            .prop_map(|(n, v)| (
                format!("vault.hashicorp.com/agent-inject-secret-{n}"),
                v.to_owned()
            )),
        (
            name,
            prop_oneof![Just("conf/x.env"), Just("x"), Just("/abs/y")]
        )
            .prop_map(|(n, v)| (
                format!("vault.hashicorp.com/agent-inject-file-{n}"),
                v.to_owned()
            )),
        (name, prop_oneof![Just("/etc/app"), Just("/etc/other")]).prop_map(|(n, v)| (
            format!("vault.hashicorp.com/secret-volume-path-{n}"),
            v.to_owned()
        )),
        (
            prop_oneof![
                Just("agent-pre-populate-only"),
                Just("agent-pre-populate"),
                Just("agent-init-first"),
                Just("preserve-secret-case"),
            ],
            boolean
        )
            .prop_map(|(k, v)| (format!("vault.hashicorp.com/{k}"), v)),
        prop_oneof![Just("c0"), Just("c0,c1")].prop_map(|v| (
            "vault.hashicorp.com/agent-inject-containers".to_owned(),
            v.to_owned()
        )),
        prop_oneof![Just("64Mi"), Just(""), Just("64mb")].prop_map(|v| (
            "vault.hashicorp.com/agent-limits-mem".to_owned(),
            v.to_owned()
        )),
    ]
}

fn hydrant_annotation() -> impl Strategy<Value = (String, String)> {
    let name = "[a-z][a-z0-9.-]{0,8}";
    prop_oneof![
        (name, prop_oneof![Just("secret/data/app"), Just("kv/app")])
            .prop_map(|(n, v)| (format!("hydrant.dev/secret-{n}"), v.to_owned())),
        name.prop_map(|n| (
            format!("hydrant.dev/template-{n}"),
            "{{ secret('secret/data/a').data.k }}".to_owned()
        )),
        prop_oneof![
            Just("native"),
            Just("init-and-sidecar"),
            Just("init-only"),
            Just("sidecar-only"),
            Just("sidecar")
        ]
        .prop_map(|v| ("hydrant.dev/mode".to_owned(), v.to_owned())),
        prop_oneof![Just("c0"), Just("c0,c1")]
            .prop_map(|v| ("hydrant.dev/containers".to_owned(), v.to_owned())),
    ]
}

fn annotations() -> impl Strategy<Value = Map<String, Value>> {
    let family = |entries: Vec<(String, String)>, base: [(&'static str, &'static str); 3]| {
        let mut m: Map<String, Value> = entries
            .into_iter()
            .map(|(k, v)| (k, Value::String(v)))
            .collect();
        for (k, v) in base {
            m.insert(k.to_owned(), v.into());
        }
        m
    };
    prop_oneof![
        proptest::collection::vec(vault_annotation(), 0..6).prop_map(move |e| family(
            e,
            [
                ("vault.hashicorp.com/agent-inject", "true"),
                ("vault.hashicorp.com/role", "app"),
                (
                    "vault.hashicorp.com/agent-inject-secret-base",
                    "secret/data/base"
                ),
            ]
        )),
        proptest::collection::vec(hydrant_annotation(), 0..5).prop_map(move |e| family(
            e,
            [
                ("hydrant.dev/inject", "true"),
                ("hydrant.dev/role", "app"),
                ("hydrant.dev/secret-base", "secret/data/base"),
            ]
        )),
    ]
}

prop_compose! {
    fn pod()(
        containers in (1usize..4).prop_flat_map(|n| (0..n).map(container).collect::<Vec<_>>()),
        init in proptest::collection::vec("[a-z]{1,5}", 0..3),
        volumes in proptest::collection::vec("[a-z]{1,5}", 0..3),
        annotations in annotations(),
        job in any::<bool>(),
    ) -> Value {
        let mut spec = json!({"containers": containers});
        if !init.is_empty() {
            spec["initContainers"] = Value::Array(init.iter().enumerate().map(|(i, n)| json!({"name": format!("init-{n}-{i}"), "image": "x"})).collect());
        }
        if !volumes.is_empty() {
            spec["volumes"] = Value::Array(volumes.iter().enumerate().map(|(i, n)| json!({"name": format!("v-{n}-{i}"), "emptyDir": {}})).collect());
        }
        let mut metadata = json!({"name": "p", "annotations": annotations});
        if job {
            metadata["ownerReferences"] = json!([{"apiVersion": "batch/v1", "kind": "Job", "name": "j", "uid": "u"}]);
        }
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec})
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn an_allowed_patch_applies_gives_a_pod_and_is_not_applied_twice(raw in pod()) {
        let pod: Pod = serde_json::from_value(raw.clone()).expect("generated pods are valid");
        let Ok(Some(mutation)) = mutate(&pod, "team-a", &settings()) else {
            return Ok(());
        };
        let again = mutate(&pod, "team-a", &settings()).expect("same answer").expect("same patch");
        prop_assert_eq!(
            serde_json::to_vec(&mutation.patch).expect("json"),
            serde_json::to_vec(&again.patch).expect("json"),
            "deterministic"
        );
        let mut value = raw;
        json_patch::patch(&mut value, &mutation.patch).expect("the patch applies");
        let mutated: Pod = serde_json::from_value(value).expect("the result is a pod");
        prop_assert_eq!(mutate(&mutated, "team-a", &settings()), Ok(None), "no second injection");
        let spec = mutated.spec.expect("spec");
        let names: Vec<&str> = spec.containers.iter().chain(spec.init_containers.iter().flatten()).map(|c| c.name.as_str()).collect();
        let mut unique = names.clone();
        unique.sort_unstable();
        unique.dedup();
        prop_assert_eq!(unique.len(), names.len(), "container names stay unique");
    }
}

/// The generator reaches the interesting cases: most generated pods are mutated, some denied.
#[test]
fn the_generator_mostly_produces_pods_that_are_mutated() {
    use proptest::strategy::ValueTree;
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let (mut mutated, mut denied, mut total) = (0, 0, 0);
    for _ in 0..400 {
        let raw = pod().new_tree(&mut runner).expect("tree").current();
        let pod: Pod = serde_json::from_value(raw).expect("valid pod");
        total += 1;
        match mutate(&pod, "team-a", &settings()) {
            Ok(Some(_)) => mutated += 1,
            Ok(None) => {}
            Err(_) => denied += 1,
        }
    }
    assert!(mutated * 2 > total, "{mutated} of {total} mutated");
    assert!(denied > 0, "some denials are generated too");
}
