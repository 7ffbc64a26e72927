//! The command's environment: each `env` entry's value as its output renders it (a path and
//! key's is taken from the secret's data), kept by the sidecar loop and handed to the
//! supervisor whenever a render changed one.

use std::ffi::OsString;
use std::fmt;
use std::os::unix::ffi::OsStringExt as _;

use injector::AgentConfig;
use serde_json::Value as Json;
use tokio::sync::watch;
use tracing::debug;

use crate::agent::sidecar::Outputs;
use crate::template::Rendered;

/// The variables the command gets, in the config's order. Holds secrets: its `Debug` shows the
/// names only.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Values(Vec<(String, OsString)>);

impl fmt::Debug for Values {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|(name, _)| format!("{name}=<redacted>")))
            .finish()
    }
}

impl Values {
    /// The variables, name and value.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &OsString)> {
        self.0.iter().map(|(name, value)| (name.as_str(), value))
    }
}

/// What an entry's rendered output means.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Shape {
    /// A template: the variable's value as rendered.
    Template,
    /// A path and key: the secret's data as JSON, of which the key's value is taken.
    Key {
        /// The Vault path, for messages.
        path: String,
        /// The key.
        key: String,
    },
}

/// The `env` entries as the sidecar's outputs: a value is kept in memory only, and a render
/// that changed any is handed to the supervisor once it is over.
pub(crate) struct Environment {
    names: Vec<String>,
    shapes: Vec<Shape>,
    values: Vec<Option<OsString>>,
    changed: bool,
    publish: Option<watch::Sender<Values>>,
}

impl Environment {
    /// The entries of `config`, none rendered yet.
    pub(crate) fn new(config: &AgentConfig) -> Environment {
        let shapes = config
            .env
            .iter()
            .map(|e| match (&e.path, &e.key) {
                (Some(path), Some(key)) => Shape::Key {
                    path: path.clone(),
                    key: key.clone(),
                },
                _ => Shape::Template,
            })
            .collect::<Vec<_>>();
        Environment {
            names: config.env.iter().map(|e| e.name.clone()).collect(),
            values: vec![None; shapes.len()],
            shapes,
            changed: false,
            publish: None,
        }
    }

    /// Every value, once each entry has one.
    pub(crate) fn values(&self) -> Option<Values> {
        let values = self
            .names
            .iter()
            .zip(&self.values)
            .map(|(name, value)| Some((name.clone(), value.clone()?)))
            .collect::<Option<Vec<_>>>()?;
        Some(Values(values))
    }

    /// From now on, a render that changed a value hands every value to `publish`.
    pub(crate) fn publish_to(&mut self, publish: watch::Sender<Values>) {
        self.changed = false;
        self.publish = Some(publish);
    }
}

impl Outputs for Environment {
    fn name(&self, i: usize) -> &str {
        self.names.get(i).map_or("", String::as_str)
    }

    fn put(&mut self, i: usize, rendered: Rendered) -> Result<bool, String> {
        let Some(shape) = self.shapes.get(i) else {
            return Ok(false);
        };
        let value = value_of(shape, rendered.as_bytes())?;
        if self.values[i].as_ref() == Some(&value) {
            return Ok(false);
        }
        self.values[i] = Some(value);
        self.changed = true;
        Ok(true)
    }

    fn changed(&mut self, i: usize) {
        debug!(name = self.name(i), "the variable's value changed");
    }

    fn settled(&mut self) {
        if !std::mem::take(&mut self.changed) {
            return;
        }
        if let (Some(publish), Some(values)) = (&self.publish, self.values()) {
            publish.send_replace(values);
        }
    }
}

/// A variable's value from its output. The error names the path and key, never a value.
fn value_of(shape: &Shape, rendered: &[u8]) -> Result<OsString, String> {
    let bytes = match shape {
        Shape::Template => rendered.to_vec(),
        Shape::Key { path, key } => {
            let data: Json = serde_json::from_slice(rendered)
                .map_err(|_| format!("vault returned no data for {path}"))?;
            match unwrap_kv2(&data).get(key.as_str()) {
                Some(Json::String(text)) => text.clone().into_bytes(),
                Some(Json::Null) => Vec::new(),
                Some(other) => other.to_string().into_bytes(),
                None => {
                    return Err(format!(
                        "{path} has no key {key:?}; check the key, or the path's version"
                    ));
                }
            }
        }
    };
    if bytes.contains(&0) {
        return Err("the value holds a NUL byte, which no environment variable can".to_owned());
    }
    Ok(OsString::from_vec(bytes))
}

/// A KV v2 read's inner `data` (next to its `metadata`); any other data as it is (bank-vaults'
/// `vault:` references read both the same way).
fn unwrap_kv2(data: &Json) -> &Json {
    match (data.get("data"), data.get("metadata")) {
        (Some(inner @ Json::Object(_)), Some(_)) => inner,
        _ => data,
    }
}

/// The command's environment: hydrant's own minus its configuration, with `values` set over
/// it (a pod's `vault:` reference is replaced by the value it refers to).
pub(crate) fn compose(
    inherited: impl IntoIterator<Item = (OsString, OsString)>,
    values: &Values,
) -> Vec<(OsString, OsString)> {
    let mut env: Vec<(OsString, OsString)> = inherited
        .into_iter()
        .filter(|(name, _)| name != injector::AGENT_CONFIG_ENV)
        .filter(|(name, _)| !values.iter().any(|(set, _)| name == set))
        .collect();
    env.extend(
        values
            .iter()
            .map(|(name, value)| (OsString::from(name), value.clone())),
    );
    env
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(path: &str, key: &str) -> Shape {
        Shape::Key {
            path: path.into(),
            key: key.into(),
        }
    }

    #[test]
    fn a_key_is_taken_from_kv_v2_data_and_from_any_other_data() {
        let kv2 = br#"{"data":{"password":"s3cr3t","port":5432,"on":true,"none":null},"metadata":{"version":2}}"#;
        let shape = |k| key("secret/data/app", k);
        assert_eq!(value_of(&shape("password"), kv2), Ok("s3cr3t".into()));
        assert_eq!(value_of(&shape("port"), kv2), Ok("5432".into()));
        assert_eq!(value_of(&shape("on"), kv2), Ok("true".into()));
        assert_eq!(value_of(&shape("none"), kv2), Ok("".into()));
        let creds = br#"{"username":"v-app","password":"pw"}"#;
        assert_eq!(
            value_of(&key("database/creds/app", "username"), creds),
            Ok("v-app".into())
        );
        // A KV v1 secret with a key named data has no metadata next to it: taken as it is.
        let v1 = br#"{"data":{"x":1},"other":"y"}"#;
        assert_eq!(
            value_of(&key("kv/app", "data"), v1),
            Ok(r#"{"x":1}"#.into())
        );
    }

    #[test]
    fn a_missing_key_or_a_nul_byte_is_an_error_that_shows_no_value() {
        let data = br#"{"data":{"password":"s3cr3t"},"metadata":{}}"#;
        let error = value_of(&key("secret/data/app", "passwd"), data).expect_err("missing");
        assert!(
            error.contains("secret/data/app has no key \"passwd\""),
            "{error}"
        );
        assert!(!error.contains("s3cr3t"), "{error}");
        let error = value_of(&Shape::Template, b"a\0b").expect_err("NUL");
        assert!(error.contains("NUL"), "{error}");
        let error = value_of(&key("secret/data/app", "k"), b"").expect_err("no data");
        assert!(error.contains("no data for secret/data/app"), "{error}");
    }

    #[test]
    fn the_values_override_inherited_variables_and_the_config_is_left_out() {
        let values = Values(vec![
            ("DB_PASSWORD".into(), "s3cr3t".into()),
            ("API_KEY".into(), "k".into()),
        ]);
        let inherited = [
            ("PATH", "/bin"),
            ("DB_PASSWORD", "vault:secret/data/app#password"),
            (injector::AGENT_CONFIG_ENV, "{}"),
        ]
        .map(|(n, v)| (OsString::from(n), OsString::from(v)));
        let env = compose(inherited, &values);
        let shown: Vec<(String, String)> = env
            .iter()
            .map(|(n, v)| (n.to_string_lossy().into(), v.to_string_lossy().into()))
            .collect();
        assert_eq!(
            shown,
            [
                ("PATH", "/bin"),
                ("DB_PASSWORD", "s3cr3t"),
                ("API_KEY", "k")
            ]
            .map(|(n, v)| (n.to_owned(), v.to_owned()))
        );
        assert_eq!(
            format!("{values:?}"),
            r#"["DB_PASSWORD=<redacted>", "API_KEY=<redacted>"]"#
        );
    }
}
