//! A snapshot in the format an app reads: JSON, YAML, Java properties, shell `env` lines or a
//! Kubernetes ConfigMap. Templates are the other way out; they go through the template engine.

use std::collections::BTreeMap;
use std::str::FromStr;

use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::Value as Json;

use super::{Error, Snapshot};
use crate::template::formats::{env_assignment, is_env_name, scalar_text};

/// The annotation on a written ConfigMap that holds the snapshot's version.
pub const VERSION_ANNOTATION: &str = "hydrant.dev/config-version";

/// A built-in output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Indented JSON, keys sorted.
    Json,
    /// YAML.
    Yaml,
    /// Java `.properties`: nested keys joined with `.`, list elements as `key[0]`.
    Properties,
    /// `KEY='value'` lines: nested keys joined with `_`, other characters turned into `_`.
    Env,
    /// A ConfigMap whose data holds the top-level keys; nested values as JSON text.
    ConfigMap,
}

impl FromStr for Format {
    type Err = String;

    fn from_str(s: &str) -> Result<Format, String> {
        Ok(match s.trim() {
            "json" => Format::Json,
            "yaml" => Format::Yaml,
            "properties" => Format::Properties,
            "env" => Format::Env,
            "configmap" => Format::ConfigMap,
            other => {
                return Err(format!(
                    "{other:?} is not a format; use json, yaml, properties, env or configmap (or a template)"
                ));
            }
        })
    }
}

impl Format {
    /// The format's name.
    pub fn name(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Yaml => "yaml",
            Format::Properties => "properties",
            Format::Env => "env",
            Format::ConfigMap => "configmap",
        }
    }
}

/// Where a ConfigMap goes.
#[derive(Clone, Debug, Default)]
pub struct Target<'a> {
    /// `metadata.name`.
    pub name: Option<&'a str>,
    /// `metadata.namespace`.
    pub namespace: Option<&'a str>,
}

/// Writes the snapshot's config in `format`.
pub fn write(snapshot: &Snapshot, format: Format, target: &Target<'_>) -> Result<String, Error> {
    let config = snapshot.values();
    let fail = |message: String| Error::Output {
        format: format.name(),
        message,
    };
    match format {
        Format::Json => {
            let mut text = serde_json::to_string_pretty(config).map_err(|e| fail(e.to_string()))?;
            text.push('\n');
            Ok(text)
        }
        Format::Yaml => serde_saphyr::to_string(config).map_err(|e| fail(e.to_string())),
        Format::Properties => {
            let mut flat = Vec::new();
            flatten(config, String::new(), &Style::Properties, &mut flat);
            let mut seen = std::collections::BTreeSet::new();
            if let Some((key, _)) = flat.iter().find(|(k, _)| !seen.insert(k.as_str())) {
                return Err(fail(format!(
                    "two values become property {key} (a key with a dot beside a map of the same name); rename one"
                )));
            }
            let mut bytes = Vec::new();
            let mut writer = java_properties::PropertiesWriter::new(&mut bytes);
            for (key, value) in &flat {
                writer.write(key, value).map_err(|e| fail(e.to_string()))?;
            }
            writer.finish().map_err(|e| fail(e.to_string()))?;
            drop(writer);
            String::from_utf8(bytes).map_err(|e| fail(e.to_string()))
        }
        Format::Env => {
            let mut flat = Vec::new();
            flatten(config, String::new(), &Style::Env, &mut flat);
            let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
            let mut out = String::new();
            for (i, (key, value)) in flat.iter().enumerate() {
                if !is_env_name(key) {
                    return Err(fail(format!(
                        "{key:?} cannot be a variable name (it starts with a digit); rename the key or use another format"
                    )));
                }
                if let Some(first) = seen.insert(key, i) {
                    return Err(fail(format!(
                        "two values become variable {key} (values {} and {} in order); rename one of the keys",
                        first + 1,
                        i + 1
                    )));
                }
                out.push_str(&env_assignment(key, value));
            }
            Ok(out)
        }
        Format::ConfigMap => {
            let Some(name) = target.name else {
                return Err(fail("a ConfigMap needs a name: pass --name".to_owned()));
            };
            let Json::Object(map) = config else {
                return Err(fail("the snapshot is not a map".to_owned()));
            };
            let mut data = BTreeMap::new();
            for (key, value) in map {
                if key.is_empty()
                    || key.len() > 253
                    || !key
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
                {
                    return Err(fail(format!(
                        "{key:?} is not a valid ConfigMap key (letters, digits, '-', '_' and '.', at most 253); rename it or use another format"
                    )));
                }
                data.insert(key.clone(), scalar_text(value));
            }
            let cm = ConfigMap {
                metadata: ObjectMeta {
                    name: Some(name.to_owned()),
                    namespace: target.namespace.map(str::to_owned),
                    annotations: Some(BTreeMap::from([(
                        VERSION_ANNOTATION.to_owned(),
                        snapshot.version().to_owned(),
                    )])),
                    ..ObjectMeta::default()
                },
                data: Some(data),
                ..ConfigMap::default()
            };
            serde_saphyr::to_string(&cm).map_err(|e| fail(e.to_string()))
        }
    }
}

enum Style {
    Properties,
    Env,
}

/// Flattens nested values to `(key, text)` pairs in key order. Empty maps and lists give
/// nothing; `null` gives an empty text.
fn flatten(value: &Json, prefix: String, style: &Style, out: &mut Vec<(String, String)>) {
    match value {
        Json::Object(map) => {
            for (k, v) in map {
                let key = match style {
                    Style::Properties if prefix.is_empty() => k.clone(),
                    Style::Properties => format!("{prefix}.{k}"),
                    Style::Env => {
                        let k: String = k
                            .chars()
                            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                            .collect();
                        if prefix.is_empty() {
                            k
                        } else {
                            format!("{prefix}_{k}")
                        }
                    }
                };
                flatten(v, key, style, out);
            }
        }
        Json::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                let key = match style {
                    Style::Properties => format!("{prefix}[{i}]"),
                    Style::Env => format!("{prefix}_{i}"),
                };
                flatten(v, key, style, out);
            }
        }
        scalar => out.push((prefix, scalar_text(scalar))),
    }
}
