//! Vault's responses as consul-template's functions return them, in Go template values.
//!
//! `secret` returns consul-template's `dependency.Secret` (`.RequestID`, `.LeaseID`,
//! `.LeaseDuration`, `.Renewable`, `.Data`, `.Warnings`, `.Auth`, `.WrapInfo`), `secrets` the
//! sorted keys, and `pkiCert` its `PemEncoded` (`.Cert`, `.Key`, `.CA`, `.CAChain`, and `.Data`
//! for the same fields). A Go struct prints as `{...}` where these maps print as `map[...]`; a
//! template that prints a whole response is the only one that sees the difference.

use std::collections::BTreeMap;
use std::sync::Arc;

use gotmpl::Value;
use serde_json::Value as Json;

use crate::template::pki::PemEncoded;
use crate::vault;

/// A JSON value as a Go template sees the `interface{}` Vault's client decodes.
pub fn from_json(json: &Json) -> Value {
    match json {
        Json::Null => Value::Nil,
        Json::Bool(b) => Value::Bool(*b),
        Json::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => Value::Int(i),
            (None, Some(u), _) => Value::Uint(u),
            (None, None, Some(f)) => Value::Float(f),
            (None, None, None) => Value::String(n.to_string().into()),
        },
        Json::String(s) => Value::String(s.as_str().into()),
        Json::Array(items) => Value::List(items.iter().map(from_json).collect()),
        Json::Object(fields) => map(fields.iter().map(|(k, v)| (k.as_str(), from_json(v)))),
    }
}

/// A map from names to values.
pub fn map<'a>(fields: impl IntoIterator<Item = (&'a str, Value)>) -> Value {
    let fields: BTreeMap<Arc<str>, Value> =
        fields.into_iter().map(|(k, v)| (Arc::from(k), v)).collect();
    Value::Map(Arc::new(fields))
}

/// What `secret` returns: consul-template's `Secret`.
pub fn secret(response: &vault::Secret) -> Value {
    let (lease_id, lease_duration, renewable) = match &response.lease {
        Some(lease) => (
            lease.id.as_str(),
            i64::try_from(lease.duration.as_secs()).unwrap_or(i64::MAX),
            lease.renewable,
        ),
        None => ("", 0, false),
    };
    map([
        (
            "RequestID",
            Value::String(response.request_id.as_str().into()),
        ),
        ("LeaseID", Value::String(lease_id.into())),
        ("LeaseDuration", Value::Int(lease_duration)),
        ("Renewable", Value::Bool(renewable)),
        ("Data", data(&response.data)),
        (
            "Warnings",
            Value::List(
                response
                    .warnings
                    .iter()
                    .map(|w| Value::String(w.as_str().into()))
                    .collect(),
            ),
        ),
        ("Auth", Value::Nil),
        ("WrapInfo", Value::Nil),
    ])
}

/// A response's `data` as `.Data`: a map, empty when Vault sent none (Go's nil map prints as
/// `map[]`).
fn data(json: &Json) -> Value {
    match json {
        Json::Null => map([]),
        other => from_json(other),
    }
}

/// What `secrets` returns: the keys listed, sorted.
pub fn keys(response: &vault::Secret) -> Value {
    let mut keys: Vec<&str> = response
        .data
        .get("keys")
        .and_then(Json::as_array)
        .into_iter()
        .flatten()
        .filter_map(Json::as_str)
        .collect();
    keys.sort_unstable();
    Value::List(keys.into_iter().map(|k| Value::String(k.into())).collect())
}

/// What `pkiCert` returns: consul-template's `PemEncoded`, whose `.Data` is itself.
pub fn certificate(response: &vault::Secret) -> Value {
    let pems = PemEncoded::of_data(&response.data);
    let fields = [
        ("Cert", Value::String(pems.cert.as_str().into())),
        ("Key", Value::String(pems.key.as_str().into())),
        ("CA", Value::String(pems.ca.as_str().into())),
        (
            "CAChain",
            Value::List(
                pems.ca_chain
                    .iter()
                    .map(|c| Value::String(c.as_str().into()))
                    .collect(),
            ),
        ),
    ];
    let inner = map(fields.clone());
    map(fields.into_iter().chain([("Data", inner)]))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;

    use super::*;

    #[test]
    fn json_keeps_its_shape_and_go_prints_it_as_go_does() {
        let value = from_json(&json!({"b": [1, "x", null], "a": {"n": 1.5, "t": true}}));
        assert_eq!(value.to_string(), "map[a:map[n:1.5 t:true] b:[1 x <nil>]]");
    }

    #[test]
    fn a_secret_has_consul_template_s_fields() {
        let response = vault::Secret {
            request_id: "r-1".into(),
            data: json!({"username": "u"}),
            lease: Some(vault::Lease {
                id: "database/creds/ro/1".into(),
                duration: Duration::from_secs(3600),
                renewable: true,
            }),
            ..vault::Secret::default()
        };
        let value = secret(&response);
        let field = |name: &str| value.field(name).cloned().unwrap_or(Value::Nil).to_string();
        assert_eq!(field("LeaseID"), "database/creds/ro/1");
        assert_eq!(field("LeaseDuration"), "3600");
        assert_eq!(field("Renewable"), "true");
        assert_eq!(field("Data"), "map[username:u]");
        assert_eq!(field("Warnings"), "[]");
        assert_eq!(field("RequestID"), "r-1");
    }

    #[test]
    fn listed_keys_are_sorted() {
        let response = vault::Secret {
            data: json!({"keys": ["b", "a/", "c"]}),
            ..vault::Secret::default()
        };
        assert_eq!(keys(&response).to_string(), "[a/ b c]");
        assert_eq!(keys(&vault::Secret::default()).to_string(), "[]");
    }
}
