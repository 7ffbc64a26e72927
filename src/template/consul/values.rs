//! Vault's responses as consul-template's functions return them, in Go template values.
//!
//! `secret` returns consul-template's `dependency.Secret` (`.RequestID`, `.LeaseID`,
//! `.LeaseDuration`, `.Renewable`, `.Data`, `.Warnings`, `.Auth`, `.WrapInfo`), `secrets` the
//! sorted keys, and `pkiCert` its `PemEncoded` (`.Cert`, `.Key`, `.CA`, `.CAChain`, and `.Data`
//! for the same fields). A Go struct prints as `{...}` where these maps print as `map[...]`; a
//! template that prints a whole response is the only one that sees the difference.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, LazyLock, Mutex, Weak};

use gotmpl::Value;
use serde_json::Value as Json;

use super::helpers::time::GoTime;
use crate::template::pki::PemEncoded;
use crate::vault;

/// A JSON value as a Go template sees the `interface{}` Vault's client decodes. Vault's client
/// decodes numbers as `json.Number`, a string type: it prints as the number, compares equal to
/// the string of its digits, is true when not empty, and encodes as a number again. So a number
/// becomes a string here, remembered as a number for [`to_json`].
pub fn from_json(json: &Json) -> Value {
    match json {
        Json::Null => Value::Nil,
        Json::Bool(b) => Value::Bool(*b),
        Json::Number(n) => number(&n.to_string()),
        Json::String(s) => Value::String(s.as_str().into()),
        Json::Array(items) => Value::List(items.iter().map(from_json).collect()),
        Json::Object(fields) => map(fields.iter().map(|(k, v)| (k.as_str(), from_json(v)))),
    }
}

/// A Go template value as JSON, as `encoding/json` encodes it: a string that came from a Vault
/// number (a `json.Number`) is a number again, a time is its RFC 3339 text. `None` for a
/// function.
pub fn to_json(value: &Value) -> Option<Json> {
    Some(match value {
        Value::Nil => Json::Null,
        Value::Bool(b) => Json::Bool(*b),
        Value::Int(i) => Json::from(*i),
        Value::Uint(u) => Json::from(*u),
        Value::Float(f) => serde_json::Number::from_f64(*f).map_or(Json::Null, Json::Number),
        // encoding/json writes a time.Time as RFC 3339 with nanoseconds.
        Value::String(s) if let Some(time) = time_of(s) => {
            Json::String(time.format("2006-01-02T15:04:05.999999999Z07:00"))
        }
        Value::String(s) => match is_number(s).then(|| s.parse::<serde_json::Number>()) {
            Some(Ok(n)) => Json::Number(n),
            _ => Json::String(s.to_string()),
        },
        Value::List(items) => Json::Array(items.iter().map(to_json).collect::<Option<_>>()?),
        Value::Map(fields) => Json::Object(
            fields
                .iter()
                .map(|(k, v)| Some((k.to_string(), to_json(v)?)))
                .collect::<Option<_>>()?,
        ),
        Value::Function(_) => return None,
    })
}

/// The strings made from Vault's numbers, by address. Weak: an entry whose string is gone no
/// longer matches, even when a new string takes its address.
static NUMBERS: LazyLock<Mutex<Numbers>> = LazyLock::new(Mutex::default);

#[derive(Default)]
struct Numbers {
    by_address: HashMap<usize, Weak<str>>,
    /// Live entries at the last sweep; the next sweep comes at twice as many entries.
    live: usize,
}

fn address(s: &Arc<str>) -> usize {
    Arc::as_ptr(s).cast::<u8>() as usize
}

/// A string holding a number's digits, remembered as a `json.Number`.
pub fn number(digits: &str) -> Value {
    let s: Arc<str> = Arc::from(digits);
    let mut numbers = NUMBERS.lock().unwrap_or_else(|p| p.into_inner());
    if numbers.by_address.len() > 2 * numbers.live.max(1024) {
        numbers.by_address.retain(|_, weak| weak.strong_count() > 0);
        numbers.live = numbers.by_address.len();
    }
    numbers.by_address.insert(address(&s), Arc::downgrade(&s));
    Value::String(s)
}

/// Whether `s` is one of the strings [`number`] made (the same allocation, still alive).
pub fn is_number(s: &Arc<str>) -> bool {
    let numbers = NUMBERS.lock().unwrap_or_else(|p| p.into_inner());
    numbers
        .by_address
        .get(&address(s))
        .and_then(Weak::upgrade)
        .is_some_and(|known| Arc::ptr_eq(&known, s))
}

/// The strings that stand for Go `time.Time`s (what `sprig_now`, `sprig_toDate`... return), by
/// address, with the time each stands for. A template prints a time as Go does (its `String`),
/// and the date functions take the time back from it.
static TIMES: LazyLock<Mutex<Times>> = LazyLock::new(Mutex::default);

#[derive(Default)]
struct Times {
    by_address: HashMap<usize, (Weak<str>, GoTime)>,
    /// Live entries at the last sweep; the next sweep comes at twice as many entries.
    live: usize,
}

/// A Go `time.Time` as a template value: its text as Go prints it, remembered as the time.
pub(crate) fn time(time: GoTime) -> Value {
    let s: Arc<str> = Arc::from(time.go_string());
    let mut times = TIMES.lock().unwrap_or_else(|p| p.into_inner());
    if times.by_address.len() > 2 * times.live.max(1024) {
        times
            .by_address
            .retain(|_, (weak, _)| weak.strong_count() > 0);
        times.live = times.by_address.len();
    }
    times
        .by_address
        .insert(address(&s), (Arc::downgrade(&s), time));
    Value::String(s)
}

/// The time a string made by [`time`] stands for.
pub(crate) fn time_of(s: &Arc<str>) -> Option<GoTime> {
    let times = TIMES.lock().unwrap_or_else(|p| p.into_inner());
    let (weak, time) = times.by_address.get(&address(s))?;
    weak.upgrade()
        .is_some_and(|known| Arc::ptr_eq(&known, s))
        .then(|| time.clone())
}

/// The first of the 256 characters that stand for raw bytes in a template's strings (the end of
/// Unicode's last private-use plane, which no text uses): Go's strings hold any bytes, and
/// `base64Decode` of a keystore gives bytes that are not UTF-8. The output turns them back into
/// the bytes.
const BYTE_MARK: u32 = 0x10_FF00;

/// Bytes as a template string: UTF-8 stays text, any other byte a marker character.
pub fn bytes(bytes: &[u8]) -> Value {
    let mut text = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        text.push_str(chunk.valid());
        for byte in chunk.invalid() {
            text.push(char::from_u32(BYTE_MARK + u32::from(*byte)).unwrap_or('\u{FFFD}'));
        }
    }
    Value::String(text.into())
}

/// A rendered output's bytes: its text, with the marker characters of [`bytes`] back as bytes.
pub fn unmark_bytes(text: String) -> Vec<u8> {
    let marked = |c: char| (BYTE_MARK..=BYTE_MARK + 0xFF).contains(&u32::from(c));
    if !text.chars().any(marked) {
        return text.into_bytes();
    }
    let mut out = Vec::with_capacity(text.len());
    for c in text.chars() {
        if marked(c) {
            out.push(u8::try_from(u32::from(c) - BYTE_MARK).unwrap_or(b'?'));
        } else {
            let mut buf = [0; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
        }
    }
    out
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
        let json = json!({"b": [1, "x", null], "a": {"n": 1.5, "t": true, "s": "7"}});
        let value = from_json(&json);
        assert_eq!(
            value.to_string(),
            "map[a:map[n:1.5 s:7 t:true] b:[1 x <nil>]]"
        );
        // Numbers come back as numbers, and strings of digits as strings.
        assert_eq!(to_json(&value), Some(json));
        assert!(matches!(
            value.field("b").and_then(|b| b.index(&Value::Int(0)).ok()),
            Some(Value::String(_))
        ));
        assert_eq!(
            to_json(&Value::String("1".into())),
            Some(Json::String("1".into())),
            "a string made elsewhere stays a string"
        );
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
    fn bytes_that_are_not_utf8_come_out_as_they_went_in() {
        let raw = [b'a', 0xfe, 0xed, b'\n', 0xc3, 0xa9, 0xff];
        let Value::String(text) = bytes(&raw) else {
            panic!("a string")
        };
        assert!(text.starts_with('a') && text.contains('é'));
        assert_eq!(unmark_bytes(text.to_string()), raw);
        assert_eq!(unmark_bytes("plain é".to_owned()), "plain é".as_bytes());
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
