//! Writing the plan as a JSON Patch (RFC 6902) of the pod, and measuring JSON without
//! building it.

use json_patch::{AddOperation, Patch, PatchOperation};
use k8s_openapi::api::core::v1::PodSpec;
use serde_json::Value;

use super::{Mutation, Plan};
use crate::annotations::{INJECTED, InjectionRequest};

impl Plan {
    /// The patch that adds what the plan decided, in a fixed order.
    pub(super) fn into_mutation(self, spec: &PodSpec, request: &InjectionRequest) -> Mutation {
        let mut ops = Vec::new();
        // The pod has annotations: it asked for injection with one.
        ops.push(add(
            &["metadata", "annotations", request.family.status_key()],
            Value::String(INJECTED.to_owned()),
        ));
        let has_volumes = spec.volumes.as_ref().is_some_and(|v| !v.is_empty());
        append_all(
            &mut ops,
            &["spec", "volumes"],
            has_volumes,
            to_values(&self.volumes),
        );
        for &i in &self.targets {
            let has = spec.containers[i]
                .volume_mounts
                .as_ref()
                .is_some_and(|m| !m.is_empty());
            let index = i.to_string();
            let base = ["spec", "containers", &index, "volumeMounts"];
            append_all(&mut ops, &base, has, to_values(&self.app_mounts));
        }
        let app_init = spec.init_containers.as_deref().unwrap_or_default();
        for &i in &self.init_targets {
            let has = app_init[i]
                .volume_mounts
                .as_ref()
                .is_some_and(|m| !m.is_empty());
            let index = i.to_string();
            let base = ["spec", "initContainers", &index, "volumeMounts"];
            append_all(&mut ops, &base, has, to_values(&self.app_mounts));
        }
        if let Some(init) = self.init_container {
            if app_init.is_empty() {
                ops.push(add(&["spec", "initContainers"], Value::Array(vec![init])));
            } else if self.init_first {
                // RFC 6902 add at an index inserts before it.
                ops.push(add(&["spec", "initContainers", "0"], init));
            } else {
                ops.push(add(&["spec", "initContainers", "-"], init));
            }
        }
        if let Some(sidecar) = self.sidecar_container {
            ops.push(add(&["spec", "containers", "-"], sidecar));
        }
        if self.share_process_namespace {
            ops.push(add(&["spec", "shareProcessNamespace"], Value::Bool(true)));
        }
        if let Some(port) = self.scrape_port {
            let [scrape, port_key, path] = super::SCRAPE_ANNOTATIONS;
            for (key, value) in [
                (scrape, "true".to_owned()),
                (port_key, port.to_string()),
                (path, "/metrics".to_owned()),
            ] {
                ops.push(add(&["metadata", "annotations", key], Value::String(value)));
            }
        }
        Mutation {
            patch: Patch(ops),
            warnings: self.warnings,
            mode: self.mode,
            agent: true,
            exec: Vec::new(),
        }
    }
}

/// An `add` at the JSON Pointer made of `tokens` (escaped as RFC 6901 says: `~0`, `~1`).
pub(super) fn add(tokens: &[&str], value: Value) -> PatchOperation {
    PatchOperation::Add(AddOperation {
        path: jsonptr::PointerBuf::from_tokens(tokens.iter().copied()),
        value,
    })
}

/// Appends values to an array: one `add` of the whole array when it is absent or empty (an
/// `add /spec/volumes/-` on a missing array fails, and vault-k8s's repeated whole-array adds
/// replace each other), else one `add .../-` per value.
fn append_all(ops: &mut Vec<PatchOperation>, base: &[&str], exists: bool, values: Vec<Value>) {
    if values.is_empty() {
        return;
    }
    if exists {
        let mut tokens = base.to_vec();
        tokens.push("-");
        for value in values {
            ops.push(add(&tokens, value));
        }
    } else {
        ops.push(add(base, Value::Array(values)));
    }
}

fn to_values<T: serde::Serialize>(items: &[T]) -> Vec<Value> {
    items
        .iter()
        .map(|i| serde_json::to_value(i).unwrap_or(Value::Null))
        .collect()
}

/// The length of `value` serialized as compact JSON, counted without building the text.
pub(super) fn json_len<T: serde::Serialize + ?Sized>(value: &T) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0 = self.0.saturating_add(bytes.len());
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    // Values and patches always serialize; a failure would only undercount an internal value.
    let _ = serde_json::to_writer(&mut count, value);
    count.0
}
