//! Config containers as the platform team writes them: YAML documents of `kind: ConfigContainer`,
//! checked field by field so that a typo is an error, never a silently different snapshot.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;
use serde_json::{Map, Value as Json};

use super::Error;

/// The only `kind` a container document may have.
pub const KIND: &str = "ConfigContainer";

/// The `apiVersion` a container document may give (it may also give none).
pub const API_VERSION: &str = "hydrant.dev/v1alpha1";

/// One config container.
#[derive(Clone, Debug, PartialEq)]
pub struct Container {
    /// `metadata.name`: unique among the containers composed together.
    pub name: Arc<str>,
    /// `spec.level`, ranked by the composer's levels; none ranks before every level.
    pub level: Option<String>,
    /// `spec.weight`: within a level, a higher weight wins.
    pub weight: i64,
    /// `spec.selector`: which instances the container applies to.
    pub selector: Selector,
    /// `spec.values`: typed values, merged into the snapshot.
    pub values: Map<String, Json>,
    /// `spec.merge`: strategies per JSON pointer, for this container and the ones after it.
    pub merge: BTreeMap<String, Strategy>,
    /// Where it was read from, for errors: `file` or `file#2` for a file's second document.
    pub origin: String,
}

/// How an overriding value meets the value already there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Strategy {
    /// Maps: merge key by key, recursively (the default for maps).
    Deep,
    /// Maps and lists: the new value replaces the old (the default for lists); also allows
    /// the value's type to change.
    Replace,
    /// Lists: the new elements after the old.
    Append,
    /// Lists: the new elements after the old, each value once (the first occurrence stays).
    Unique,
    /// Lists of maps: a new element with the same value of this field is merged into the old
    /// one; elements without the field, or without a match, are appended.
    MergeByKey(String),
}

impl Strategy {
    /// Parses `deep`, `replace`, `append`, `unique` or `merge-by-key:<field>`.
    pub fn parse(text: &str) -> Result<Strategy, String> {
        let text = text.trim();
        Ok(match text {
            "deep" => Strategy::Deep,
            "replace" => Strategy::Replace,
            "append" => Strategy::Append,
            "unique" => Strategy::Unique,
            _ => match text.strip_prefix("merge-by-key:").map(str::trim) {
                Some(field) if !field.is_empty() => Strategy::MergeByKey(field.to_owned()),
                Some(_) => return Err("merge-by-key needs a field: merge-by-key:name".to_owned()),
                None => {
                    return Err(format!(
                        "{text:?} is not a strategy; use deep or replace (maps), replace, append, unique or merge-by-key:<field> (lists)"
                    ));
                }
            },
        })
    }

    /// Whether the strategy is one for lists.
    pub fn is_for_lists(&self) -> bool {
        matches!(
            self,
            Strategy::Append | Strategy::Unique | Strategy::MergeByKey(_)
        )
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Strategy::Deep => f.write_str("deep"),
            Strategy::Replace => f.write_str("replace"),
            Strategy::Append => f.write_str("append"),
            Strategy::Unique => f.write_str("unique"),
            Strategy::MergeByKey(field) => write!(f, "merge-by-key:{field}"),
        }
    }
}

/// A Kubernetes label selector: every term must hold. No term selects every instance.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Selector {
    /// The terms, `matchLabels` first.
    pub terms: Vec<Term>,
}

/// One requirement of a selector.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Term {
    /// `matchLabels` or `In` with one value: the label is present with this value.
    Equals(String, String),
    /// The label is present with one of the values.
    In(String, BTreeSet<String>),
    /// The label is absent, or present with none of the values.
    NotIn(String, BTreeSet<String>),
    /// The label is present, with any value.
    Exists(String),
    /// The label is absent.
    DoesNotExist(String),
}

impl Selector {
    /// Whether an instance with these labels is selected. An empty value is a value: it
    /// matches a label present with `""`, never an absent one.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.terms.iter().all(|term| match term {
            Term::Equals(k, v) => labels.get(k) == Some(v),
            Term::In(k, values) => labels.get(k).is_some_and(|v| values.contains(v)),
            Term::NotIn(k, values) => labels.get(k).is_none_or(|v| !values.contains(v)),
            Term::Exists(k) => labels.contains_key(k),
            Term::DoesNotExist(k) => !labels.contains_key(k),
        })
    }

    /// The selector's specificity: how many terms it has.
    pub fn specificity(&self) -> usize {
        self.terms.len()
    }

    /// Label pairs of which an instance must have at least one to be selected, when the
    /// selector says so (an `Equals` or an `In` term): what the composer indexes it by.
    pub fn required_pairs(&self) -> Option<Vec<(&str, &str)>> {
        self.terms.iter().find_map(|term| match term {
            Term::Equals(k, v) => Some(vec![(k.as_str(), v.as_str())]),
            Term::In(k, values) => Some(values.iter().map(|v| (k.as_str(), v.as_str())).collect()),
            _ => None,
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Document {
    #[serde(rename = "apiVersion", default)]
    api_version: Option<String>,
    kind: String,
    metadata: Metadata,
    spec: Spec,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Metadata {
    name: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Spec {
    #[serde(default)]
    selector: SelectorSpec,
    #[serde(default)]
    level: Option<String>,
    #[serde(default)]
    weight: i64,
    #[serde(default)]
    values: Option<Map<String, Json>>,
    #[serde(default)]
    merge: BTreeMap<String, String>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SelectorSpec {
    #[serde(rename = "matchLabels", default)]
    match_labels: BTreeMap<String, String>,
    #[serde(rename = "matchExpressions", default)]
    match_expressions: Vec<Requirement>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Requirement {
    key: String,
    operator: String,
    #[serde(default)]
    values: Option<Vec<String>>,
}

/// Reads every `.yaml`, `.yml` and `.json` file under each directory (recursively, in name
/// order; hidden files and directories, such as a ConfigMap volume's `..data`, are skipped, the
/// `..data` link being followed through the visible names). A path that is a file is read
/// itself. Every problem in every file is reported.
pub fn load(paths: &[PathBuf]) -> Result<Vec<Container>, Vec<Error>> {
    let mut files = Vec::new();
    let mut errors = Vec::new();
    for path in paths {
        if let Err(e) = collect(path, &mut files) {
            errors.push(e);
        }
    }
    let mut containers = Vec::new();
    for file in files {
        match std::fs::read_to_string(&file) {
            Ok(text) => match parse(&text, &file.display().to_string()) {
                Ok(mut parsed) => containers.append(&mut parsed),
                Err(mut e) => errors.append(&mut e),
            },
            Err(e) => errors.push(Error::Read {
                path: file.clone(),
                message: e.to_string(),
            }),
        }
    }
    if errors.is_empty() {
        Ok(containers)
    } else {
        Err(errors)
    }
}

fn collect(path: &Path, files: &mut Vec<PathBuf>) -> Result<(), Error> {
    let read_error = |e: std::io::Error| Error::Read {
        path: path.to_owned(),
        message: e.to_string(),
    };
    let meta = std::fs::metadata(path).map_err(read_error)?;
    if meta.is_file() {
        files.push(path.to_owned());
        return Ok(());
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(read_error)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            !p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with('.'))
        })
        .collect();
    entries.sort();
    for entry in entries {
        if entry.is_dir() {
            collect(&entry, files)?;
        } else if entry
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| matches!(e, "yaml" | "yml" | "json"))
        {
            files.push(entry);
        }
    }
    Ok(())
}

/// Parses the container documents of one file (`---`-separated YAML, or JSON). `origin`
/// names the file in errors.
pub fn parse(text: &str, origin: &str) -> Result<Vec<Container>, Vec<Error>> {
    // YAML 1.2 booleans: only true and false. `no`, `y` and `off` stay strings (a country
    // code NO, a line named y), as a platform team writing values means them.
    // These files are the operator's (or a platform team's ConfigMaps, at most 1 MiB each):
    // they may hold thousands of containers.
    let options = serde_saphyr::options! {
        strict_booleans: true,
        budget: Some(super::yaml::file_budget()),
    };
    let documents: Vec<Json> =
        serde_saphyr::from_multiple_with_options(text, options).map_err(|e| {
            vec![Error::Container {
                origin: origin.to_owned(),
                message: super::yaml::describe(&e),
            }]
        })?;
    let many = documents.len() > 1;
    let mut containers = Vec::new();
    let mut errors = Vec::new();
    for (i, document) in documents.into_iter().enumerate() {
        if document.is_null() {
            continue;
        }
        let origin = if many {
            format!("{origin}#{}", i + 1)
        } else {
            origin.to_owned()
        };
        match container(document, &origin) {
            Ok(c) => containers.push(c),
            Err(message) => errors.push(Error::Container { origin, message }),
        }
    }
    if errors.is_empty() {
        Ok(containers)
    } else {
        Err(errors)
    }
}

fn container(document: Json, origin: &str) -> Result<Container, String> {
    let document: Document = serde_path_to_error::deserialize(document)
        .map_err(|e| format!("{}: {}", e.path(), e.inner()))?;
    if document.kind != KIND {
        return Err(format!(
            "kind: {:?} is not {KIND}; only config containers belong in these directories",
            document.kind
        ));
    }
    if let Some(v) = document.api_version.filter(|v| v != API_VERSION) {
        return Err(format!("apiVersion: {v:?} is not {API_VERSION}"));
    }
    let name = document.metadata.name.trim().to_owned();
    if name.is_empty() {
        return Err("metadata.name: is empty; every container needs a name".to_owned());
    }
    let spec = document.spec;
    let mut terms: Vec<Term> = spec
        .selector
        .match_labels
        .into_iter()
        .map(|(k, v)| Term::Equals(k, v))
        .collect();
    for (i, requirement) in spec.selector.match_expressions.into_iter().enumerate() {
        terms.push(
            term(requirement).map_err(|e| {
                format!("spec.selector.matchExpressions[{i}]: {e} (container {name})")
            })?,
        );
    }
    let mut merge = BTreeMap::new();
    for (pointer, strategy) in spec.merge {
        if !pointer.starts_with('/') {
            return Err(format!(
                "spec.merge: {pointer:?} is not a JSON pointer; write /key/subkey (container {name})"
            ));
        }
        let strategy = Strategy::parse(&strategy)
            .map_err(|e| format!("spec.merge.{pointer}: {e} (container {name})"))?;
        merge.insert(pointer, strategy);
    }
    Ok(Container {
        name: name.into(),
        level: spec.level.map(|l| l.trim().to_owned()),
        weight: spec.weight,
        selector: Selector { terms },
        values: spec.values.unwrap_or_default(),
        merge,
        origin: origin.to_owned(),
    })
}

fn term(requirement: Requirement) -> Result<Term, String> {
    let Requirement {
        key,
        operator,
        values,
    } = requirement;
    if key.trim().is_empty() {
        return Err("key is empty".to_owned());
    }
    let set = |values: Option<Vec<String>>| -> Result<BTreeSet<String>, String> {
        match values {
            Some(v) if !v.is_empty() => Ok(v.into_iter().collect()),
            _ => Err(format!("operator {operator} needs at least one value")),
        }
    };
    match operator.as_str() {
        "In" => {
            let values = set(values)?;
            Ok(if values.len() == 1 {
                let value = values.into_iter().next().unwrap_or_default();
                Term::Equals(key, value)
            } else {
                Term::In(key, values)
            })
        }
        "NotIn" => Ok(Term::NotIn(key, set(values)?)),
        "Exists" | "DoesNotExist" if values.as_ref().is_some_and(|v| !v.is_empty()) => {
            Err(format!("operator {operator} takes no values; remove them"))
        }
        "Exists" => Ok(Term::Exists(key)),
        "DoesNotExist" => Ok(Term::DoesNotExist(key)),
        other => Err(format!(
            "operator {other:?} is not In, NotIn, Exists or DoesNotExist"
        )),
    }
}
