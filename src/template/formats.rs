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
    let json = unwrap_kv2(json);
    let text = match format {
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
    };
    Ok(Rendered(text))
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
        let value = scalar_text(&map[key]);
        out.push_str(key);
        out.push_str("='");
        out.push_str(&value.replace('\'', r"'\''"));
        out.push_str("'\n");
    }
    Ok(out)
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

fn scalar_text(value: &Json) -> String {
    match value {
        Json::String(s) => s.clone(),
        Json::Null => String::new(),
        other => other.to_string(),
    }
}

fn is_env_name(key: &str) -> bool {
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
