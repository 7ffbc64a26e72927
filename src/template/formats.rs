//! The `secrets` shorthand's formats: a secret's data as JSON, YAML, shell `env` lines or
//! vault-k8s-style `map` lines.

use injector::agent_config::SecretFormat;
use serde_json::{Map, Value as Json};

use super::{Error, Rendered};

/// Writes a secret's data in `format`. For a KV v2 response (`data` and `metadata`), the data is
/// the inner `data` map.
pub fn format_secret(
    name: &str,
    data: &minijinja::Value,
    format: SecretFormat,
) -> Result<Rendered, Error> {
    let fail = |message: String| Error::Format {
        name: name.to_owned(),
        message,
    };
    let json = serde_json::to_value(data)
        .map_err(|_| fail("the secret's data cannot be represented as JSON".to_owned()))?;
    // vault-k8s's templates see the whole response data; hydrant's formats unwrap KV v2.
    let text = match format {
        SecretFormat::VaultK8sMap => {
            let map = as_map(&json, "vault-k8s-map").map_err(fail)?;
            map.iter()
                .map(|(key, value)| format!("{key}: {}\n", go_template_value(value)))
                .collect()
        }
        SecretFormat::VaultK8sJson => {
            let mut text = String::new();
            go_json(&json, &mut text);
            text.push('\n');
            text
        }
        _ => hydrant_format(name, unwrap_kv2(json), format)?,
    };
    Ok(Rendered(text.into_bytes()))
}

fn hydrant_format(name: &str, json: Json, format: SecretFormat) -> Result<String, Error> {
    let fail = |message: String| Error::Format {
        name: name.to_owned(),
        message,
    };
    Ok(match format {
        SecretFormat::Json => {
            let mut text = serde_json::to_string_pretty(&json)
                .map_err(|_| fail("the secret's data cannot be written as JSON".to_owned()))?;
            text.push('\n');
            text
        }
        SecretFormat::Yaml => serde_saphyr::to_string(&json)
            .map_err(|_| fail("the secret's data cannot be written as YAML".to_owned()))?,
        SecretFormat::Env => env_lines(as_map(&json, "env").map_err(fail)?).map_err(fail)?,
        SecretFormat::Map => map_lines(as_map(&json, "map").map_err(fail)?),
        SecretFormat::VaultK8sMap | SecretFormat::VaultK8sJson => {
            unreachable!("handled by format_secret")
        }
    })
}

/// A top-level value as Go's text/template prints it in `{{ $v }}`: a nil interface prints
/// `<no value>`, everything else as `fmt` does.
fn go_template_value(value: &Json) -> String {
    match value {
        Json::Null => "<no value>".to_owned(),
        other => go_fmt(other),
    }
}

/// A value decoded from JSON as Go's `fmt` prints it with `%v`: maps as `map[k:v ...]` with
/// sorted keys, slices as `[a b]`, nil as `<nil>`, numbers as written.
fn go_fmt(value: &Json) -> String {
    match value {
        Json::Null => "<nil>".to_owned(),
        Json::Bool(b) => b.to_string(),
        Json::Number(n) => n.to_string(),
        Json::String(s) => s.clone(),
        Json::Array(items) => {
            let items: Vec<String> = items.iter().map(go_fmt).collect();
            format!("[{}]", items.join(" "))
        }
        Json::Object(map) => {
            let items: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("{k}:{}", go_fmt(v)))
                .collect();
            format!("map[{}]", items.join(" "))
        }
    }
}

/// JSON as Go's `encoding/json` writes it (consul-template's `toJSON`): compact, keys sorted,
/// `<`, `>`, `&`, U+2028 and U+2029 escaped, control characters as `\u00XX` except `\n`, `\r`
/// and `\t`.
fn go_json(value: &Json, out: &mut String) {
    match value {
        Json::Null => out.push_str("null"),
        Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Json::Number(n) => out.push_str(&n.to_string()),
        Json::String(s) => go_json_string(s, out),
        Json::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                go_json(item, out);
            }
            out.push(']');
        }
        Json::Object(map) => {
            out.push('{');
            for (i, (key, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                go_json_string(key, out);
                out.push(':');
                go_json(item, out);
            }
            out.push('}');
        }
    }
}

fn go_json_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                out.push_str(&format!("\\u{:04x}", u32::from(c)))
            }
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// KV v2 wraps a secret's values as `{"data": {...}, "metadata": {"version": N, ...}}`.
fn unwrap_kv2(json: Json) -> Json {
    match json {
        Json::Object(mut outer)
            if outer.len() == 2
                && outer.get("data").is_some_and(Json::is_object)
                && outer
                    .get("metadata")
                    .and_then(Json::as_object)
                    .is_some_and(|m| {
                        m.contains_key("version") && m.contains_key("created_time")
                    }) =>
        {
            outer.remove("data").unwrap_or_default()
        }
        other => other,
    }
}

fn as_map<'a>(json: &'a Json, format: &str) -> Result<&'a Map<String, Json>, String> {
    json.as_object().ok_or_else(|| {
        format!(
            "format {format} needs the secret's data to be a map of keys to values; use format json"
        )
    })
}

/// `KEY='value'` lines, sorted by key, that a POSIX shell can `source` (each value single-quoted,
/// a quote inside written as `'\''`). Values that are not strings are written as JSON.
fn env_lines(map: &Map<String, Json>) -> Result<String, String> {
    let mut out = String::new();
    let mut keys: Vec<&String> = map.keys().collect();
    keys.sort();
    for key in keys {
        if !is_env_name(key) {
            return Err(format!(
                "key {key:?} is not a valid environment variable name (letters, digits and _, not starting with a digit); use format json or yaml"
            ));
        }
        out.push_str(&env_assignment(key, &scalar_text(&map[key])));
    }
    Ok(out)
}

/// One `KEY='value'` line, single-quoted so that a shell can `source` it whatever the value.
pub(crate) fn env_assignment(key: &str, value: &str) -> String {
    format!("{key}='{}'\n", value.replace('\'', r"'\''"))
}

/// `key: value` lines, sorted by key, as vault-k8s's default `map` template writes them for a
/// flat secret. Nested values are written as JSON.
fn map_lines(map: &Map<String, Json>) -> String {
    let mut keys: Vec<&String> = map.keys().collect();
    keys.sort();
    keys.into_iter()
        .map(|key| format!("{key}: {}\n", scalar_text(&map[key])))
        .collect()
}

/// A value as one line of text: strings as they are, null as nothing, the rest as JSON.
pub(crate) fn scalar_text(value: &Json) -> String {
    match value {
        Json::String(s) => s.clone(),
        Json::Null => String::new(),
        other => other.to_string(),
    }
}

/// Whether a key can be a shell variable's name.
pub(crate) fn is_env_name(key: &str) -> bool {
    let mut chars = key.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn render(data: Json, format: SecretFormat) -> Result<String, Error> {
        format_secret(
            "app",
            &minijinja::Value::from(minijinja::value::Serde(&data)),
            format,
        )
        .map(|r| String::from_utf8(r.as_bytes().to_vec()).expect("utf-8"))
    }

    fn kv2(data: Json) -> Json {
        json!({"data": data, "metadata": {"version": 3, "created_time": "2026-01-01T00:00:00Z",
               "deletion_time": "", "destroyed": false, "custom_metadata": null}})
    }

    #[test]
    fn kv2_responses_are_unwrapped_to_their_data() {
        let out =
            render(kv2(json!({"user": "u", "port": 5432})), SecretFormat::Json).expect("renders");
        assert_eq!(out, "{\n  \"port\": 5432,\n  \"user\": \"u\"\n}\n");
    }

    #[test]
    fn other_responses_are_written_whole() {
        let out =
            render(json!({"data": {"a": 1}, "other": 2}), SecretFormat::Json).expect("renders");
        assert!(out.contains("\"other\": 2"), "{out}");
    }

    #[test]
    fn env_lines_are_sorted_quoted_and_shell_safe() {
        let data = json!({"B": "it's", "A": "x y", "N": 5, "L": [1, 2]});
        let out = render(data, SecretFormat::Env).expect("renders");
        assert_eq!(out, "A='x y'\nB='it'\\''s'\nL='[1,2]'\nN='5'\n");
    }

    #[test]
    fn env_refuses_keys_that_are_not_variable_names() {
        let err = render(json!({"db-host": "h"}), SecretFormat::Env).expect_err("refused");
        let message = err.to_string();
        assert!(
            message.starts_with("secret app: key \"db-host\""),
            "{message}"
        );
        assert!(
            !message.contains("\"h\""),
            "the value never appears: {message}"
        );
    }

    #[test]
    fn map_lines_match_vault_k8s_map_template() {
        let out = render(
            kv2(json!({"username": "u", "password": "p"})),
            SecretFormat::Map,
        )
        .expect("renders");
        assert_eq!(out, "password: p\nusername: u\n");
    }

    #[test]
    fn vault_k8s_map_prints_the_whole_data_as_go_does() {
        let data = kv2(json!({"username": "u", "password": "p", "n": 5}));
        let out = render(data, SecretFormat::VaultK8sMap).expect("renders");
        assert_eq!(
            out,
            "data: map[n:5 password:p username:u]\n\
             metadata: map[created_time:2026-01-01T00:00:00Z custom_metadata:<nil> deletion_time: destroyed:false version:3]\n"
        );
        let out = render(
            json!({"a": null, "b": [1, "x", {"k": true}]}),
            SecretFormat::VaultK8sMap,
        )
        .expect("renders");
        assert_eq!(out, "a: <no value>\nb: [1 x map[k:true]]\n");
    }

    #[test]
    fn vault_k8s_json_is_compact_sorted_and_html_escaped_like_go() {
        let data = json!({"z": "<a&b>", "a": [1, null], "c": "l1\nl2\u{8}"});
        let out = render(data, SecretFormat::VaultK8sJson).expect("renders");
        assert_eq!(
            out,
            "{\"a\":[1,null],\"c\":\"l1\\nl2\\u0008\",\"z\":\"\\u003ca\\u0026b\\u003e\"}\n"
        );
    }

    #[test]
    fn yaml_writes_a_mapping() {
        let out = render(json!({"a": "x", "b": 2}), SecretFormat::Yaml).expect("renders");
        assert_eq!(out, "a: x\nb: 2\n");
    }

    #[test]
    fn env_and_map_need_a_map() {
        for format in [SecretFormat::Env, SecretFormat::Map] {
            let err = render(json!(["a"]), format).expect_err("refused");
            assert!(
                err.to_string()
                    .contains("needs the secret's data to be a map")
            );
        }
    }
}
