//! Composed platform config: config containers selected by an instance's labels, merged in a
//! total order into a snapshot with provenance, validated against the app's JSON Schema,
//! versioned by the SHA-256 of its canonical JSON and written in the format the app wants.

pub mod compose;
pub mod container;
pub mod output;
pub mod schema;
pub mod yaml;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use serde::Serialize;
use serde_json::Value as Json;

pub use compose::{Composer, DEFAULT_LEVELS, Node};
pub use container::{Container, Strategy};
pub use output::Format;
pub use schema::Schema;

/// What can go wrong composing, validating or writing a snapshot.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file or directory could not be read.
    #[error("cannot read {}: {message}", path.display())]
    Read {
        /// The path.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// A container document is invalid.
    #[error("config container {origin}: {message}")]
    Container {
        /// The file (and document number) it came from.
        origin: String,
        /// What is wrong, with the field.
        message: String,
    },
    /// A value would change its type.
    #[error(
        "{pointer}: container {container} sets {to} where container {set_by} set {from}; a value keeps its type unless a container declares `{pointer}: replace` under spec.merge"
    )]
    TypeChange {
        /// Where.
        pointer: String,
        /// The old value's type.
        from: &'static str,
        /// The container that set the old value.
        set_by: String,
        /// The new value's type.
        to: &'static str,
        /// The container that tried.
        container: String,
    },
    /// A strategy declared for a pointer does not fit the value there.
    #[error(
        "{pointer}: strategy {strategy} (declared by container {declared_by}) does not apply to {is}, which container {container} merges there; maps take deep or replace, lists replace, append, unique or merge-by-key"
    )]
    Strategy {
        /// Where.
        pointer: String,
        /// The strategy.
        strategy: String,
        /// The container that declared it.
        declared_by: String,
        /// What the value is.
        is: &'static str,
        /// The container being merged.
        container: String,
    },
    /// Two label sources give one key different values.
    #[error(
        "label {key} is {first:?} in {first_source} and {second:?} in {second_source}; an instance's labels must agree"
    )]
    LabelConflict {
        /// The key.
        key: String,
        /// The first value.
        first: String,
        /// Where it came from.
        first_source: String,
        /// The second value.
        second: String,
        /// Where it came from.
        second_source: String,
    },
    /// A label is not `key=value`.
    #[error("{source_name}: {text:?} is not a label; write key=value")]
    Label {
        /// Where it came from.
        source_name: String,
        /// The text.
        text: String,
    },
    /// The schema itself is invalid.
    #[error("schema {}: {message}", path.display())]
    Schema {
        /// The schema file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// The snapshot does not satisfy the schema: every violation.
    #[error("the snapshot does not satisfy the schema {}:\n{}", schema.display(), violations.iter().map(|v| format!("  {v}")).collect::<Vec<_>>().join("\n"))]
    Invalid {
        /// The schema file.
        schema: PathBuf,
        /// The violations.
        violations: Vec<schema::Violation>,
    },
    /// The snapshot cannot be written in the format asked for.
    #[error("cannot write the snapshot as {format}: {message}")]
    Output {
        /// The format.
        format: &'static str,
        /// Why.
        message: String,
    },
}

/// The labels of an app instance, from several sources that must agree.
#[derive(Clone, Debug, Default)]
pub struct Labels {
    labels: BTreeMap<String, String>,
    sources: BTreeMap<String, String>,
}

/// What to do when a source gives a label another source gave a different value.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OnConflict {
    /// Refuse: the instance's labels must agree.
    #[default]
    Error,
    /// Keep the value given first.
    Keep,
    /// Take the value given now.
    Replace,
}

impl Labels {
    /// Adds the labels of one source (`--labels`, a labels file, the host's labels); a key
    /// another source gave a different value is an error.
    pub fn add(
        &mut self,
        source: &str,
        labels: impl IntoIterator<Item = (String, String)>,
    ) -> Result<(), Error> {
        self.add_with(source, labels, OnConflict::Error)
    }

    /// Adds the labels of one source, resolving a conflict with an earlier source as asked.
    pub fn add_with(
        &mut self,
        source: &str,
        labels: impl IntoIterator<Item = (String, String)>,
        on_conflict: OnConflict,
    ) -> Result<(), Error> {
        for (key, value) in labels {
            match self.labels.get(&key) {
                Some(existing) if *existing != value && on_conflict == OnConflict::Keep => {}
                Some(existing) if *existing != value && on_conflict == OnConflict::Replace => {
                    self.sources.insert(key.clone(), source.to_owned());
                    self.labels.insert(key, value);
                }
                Some(existing) if *existing != value => {
                    return Err(Error::LabelConflict {
                        first: existing.clone(),
                        first_source: self.sources[&key].clone(),
                        second: value,
                        second_source: source.to_owned(),
                        key,
                    });
                }
                Some(_) => {}
                None => {
                    self.sources.insert(key.clone(), source.to_owned());
                    self.labels.insert(key, value);
                }
            }
        }
        Ok(())
    }

    /// Adds the labels of a labels file (see [`parse_labels_file`]), named by its path.
    pub fn add_file(&mut self, path: &std::path::Path) -> Result<(), Error> {
        self.add_file_with(path, OnConflict::Error)
    }

    /// Adds the labels of a labels file, resolving conflicts as asked.
    pub fn add_file_with(
        &mut self,
        path: &std::path::Path,
        on_conflict: OnConflict,
    ) -> Result<(), Error> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::Read {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        let source = path.display().to_string();
        let labels = parse_labels_file(&source, &text)?;
        self.add_with(&source, labels, on_conflict)
    }

    /// The combined labels.
    pub fn map(&self) -> &BTreeMap<String, String> {
        &self.labels
    }
}

/// Loads the containers under `paths` and composes the snapshot of an instance with these
/// labels. Every problem with the containers is reported.
pub fn compose_from(
    paths: &[PathBuf],
    labels: &Labels,
    levels: &[String],
) -> Result<Snapshot, Vec<Error>> {
    let containers = container::load(paths)?;
    let composer = Composer::new(containers, levels)?;
    composer.compose(labels.map()).map_err(|e| vec![e])
}

/// What templates see of a snapshot: `config` (the values), `snapshot` (version, labels,
/// containers) and `config_as(format)` (the values in a built-in format, such as
/// `{{ config_as('properties') }}`).
pub fn template_globals(snapshot: &Arc<Snapshot>) -> Vec<(&'static str, minijinja::Value)> {
    let for_function = snapshot.clone();
    let config_as = move |format: String| -> Result<String, minijinja::Error> {
        let format: Format = format.parse().map_err(|e: String| {
            minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, e)
        })?;
        output::write(&for_function, format, &output::Target::default()).map_err(|e| {
            minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, e.to_string())
        })
    };
    vec![
        (
            "config",
            minijinja::Value::from(minijinja::value::Serde(snapshot.values())),
        ),
        (
            "snapshot",
            minijinja::Value::from(minijinja::value::Serde(snapshot.info())),
        ),
        ("config_as", minijinja::Value::from_function(config_as)),
    ]
}

/// Parses `k=v,k=v` (spaces around pairs ignored; an empty text gives no labels).
pub fn parse_labels(source: &str, text: &str) -> Result<Vec<(String, String)>, Error> {
    text.split(',')
        .map(str::trim)
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            pair.split_once('=')
                .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
                .filter(|(k, _)| !k.is_empty())
                .ok_or_else(|| Error::Label {
                    source_name: source.to_owned(),
                    text: pair.to_owned(),
                })
        })
        .collect()
}

/// Parses a labels file: the Kubernetes downward API's `key="value"` lines (a pod's
/// `metadata.labels`), or a YAML or JSON map.
pub fn parse_labels_file(source: &str, text: &str) -> Result<Vec<(String, String)>, Error> {
    let downward = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .all(|l| l.split_once('=').is_some_and(|(_, v)| v.starts_with('"')));
    if downward && !text.trim().is_empty() {
        return text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|line| {
                let bad = || Error::Label {
                    source_name: source.to_owned(),
                    text: line.to_owned(),
                };
                let (k, v) = line.split_once('=').ok_or_else(bad)?;
                // The downward API writes Go-quoted strings, which JSON strings read.
                let v: String = serde_json::from_str(v).map_err(|_| bad())?;
                Ok((k.trim().to_owned(), v))
            })
            .collect();
    }
    let map: BTreeMap<String, Json> = serde_saphyr::from_str(text).map_err(|e| Error::Label {
        source_name: source.to_owned(),
        text: format!("not key=\"value\" lines nor a YAML map: {e}"),
    })?;
    map.into_iter()
        .map(|(k, v)| match v {
            Json::String(s) => Ok((k, s)),
            Json::Number(_) | Json::Bool(_) => Ok((k, v.to_string())),
            other => Err(Error::Label {
                source_name: source.to_owned(),
                text: format!("{k}: {other}"),
            }),
        })
        .collect()
}

/// A composed snapshot: the values, their version, the labels it was composed for and the
/// containers it was composed from.
#[derive(Clone, Debug)]
pub struct Snapshot {
    root: Node,
    values: Json,
    version: String,
    labels: BTreeMap<String, String>,
    containers: Vec<Arc<str>>,
}

/// What templates see as `snapshot`.
#[derive(Clone, Debug, Serialize)]
pub struct SnapshotInfo<'a> {
    /// The version: SHA-256 of the canonical JSON, in hex.
    pub version: &'a str,
    /// The instance's labels.
    pub labels: &'a BTreeMap<String, String>,
    /// The containers it was composed from, in precedence order.
    pub containers: Vec<&'a str>,
}

impl Snapshot {
    fn new(root: Node, labels: BTreeMap<String, String>, containers: Vec<Arc<str>>) -> Snapshot {
        let values = root.to_json();
        let version = version_of(&values);
        Snapshot {
            root,
            values,
            version,
            labels,
            containers,
        }
    }

    /// The composed values: what templates see as `config`.
    pub fn values(&self) -> &Json {
        &self.values
    }

    /// SHA-256 of the canonical JSON (RFC 8785) of the values, in lowercase hex.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The labels it was composed for.
    pub fn labels(&self) -> &BTreeMap<String, String> {
        &self.labels
    }

    /// The containers it was composed from, in precedence order.
    pub fn containers(&self) -> impl Iterator<Item = &str> {
        self.containers.iter().map(|c| &**c)
    }

    /// The value with provenance at a JSON pointer.
    pub fn at(&self, pointer: &str) -> Option<&Node> {
        self.root.at(pointer)
    }

    /// What templates see as `snapshot`.
    pub fn info(&self) -> SnapshotInfo<'_> {
        SnapshotInfo {
            version: &self.version,
            labels: &self.labels,
            containers: self.containers().collect(),
        }
    }

    /// Every value (scalars, and empty maps and lists) with the container that set it and the
    /// ones it overrode, in pointer order.
    pub fn explain(&self) -> Vec<Explained> {
        let mut out = Vec::new();
        explain(&self.root, &mut String::new(), &mut out);
        out
    }
}

/// One line of `--explain`.
#[derive(Clone, Debug, PartialEq)]
pub struct Explained {
    /// The JSON pointer.
    pub pointer: String,
    /// The value.
    pub value: Json,
    /// The container that set it.
    pub set_by: String,
    /// The containers it overrode, oldest first.
    pub overrode: Vec<String>,
}

impl fmt::Display for Explained {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} = {}  (set by {}",
            self.pointer, self.value, self.set_by
        )?;
        if !self.overrode.is_empty() {
            write!(f, "; overrode {}", self.overrode.join(", "))?;
        }
        f.write_str(")")
    }
}

fn explain(node: &Node, pointer: &mut String, out: &mut Vec<Explained>) {
    let leaf = match &node.value {
        compose::Value::Scalar(_) => true,
        compose::Value::Map(map) if map.is_empty() => !pointer.is_empty(),
        compose::Value::List(items) if items.is_empty() => true,
        _ => false,
    };
    if leaf {
        out.push(Explained {
            pointer: pointer.clone(),
            value: node.to_json(),
            set_by: node.origin.set_by.as_deref().unwrap_or("?").to_owned(),
            overrode: node.origin.overrode.iter().map(|c| c.to_string()).collect(),
        });
        return;
    }
    let len = pointer.len();
    match &node.value {
        compose::Value::Map(map) => {
            for (k, v) in map {
                pointer.push('/');
                pointer.push_str(&pointer_token(k));
                explain(v, pointer, out);
                pointer.truncate(len);
            }
        }
        compose::Value::List(items) => {
            for (i, v) in items.iter().enumerate() {
                pointer.push_str(&format!("/{i}"));
                explain(v, pointer, out);
                pointer.truncate(len);
            }
        }
        compose::Value::Scalar(_) => {}
    }
}

/// A map key as one JSON pointer token (RFC 6901): `~` and `/` escaped.
pub fn pointer_token(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// SHA-256 of the canonical JSON (RFC 8785) of a value, in lowercase hex.
pub fn version_of(config: &Json) -> String {
    let canonical =
        serde_json_canonicalizer::to_vec(config).expect("a serde_json value always canonicalizes");
    let digest = ring::digest::digest(&ring::digest::SHA256, &canonical);
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}
