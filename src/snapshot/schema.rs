//! The app's JSON Schema (draft-07 or 2020-12, as its `$schema` says; 2020-12 when it says
//! nothing), and violations reported with the container that supplied the value.

use std::fmt;
use std::path::{Path, PathBuf};

use jsonschema::error::ValidationErrorKind;

use super::{Error, Snapshot};

/// A compiled schema.
#[derive(Debug)]
pub struct Schema {
    path: PathBuf,
    validator: jsonschema::Validator,
}

/// One way a snapshot fails its schema.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// The JSON pointer of the value (for `required`, of the missing member).
    pub pointer: String,
    /// The schema keyword that failed (`type`, `required`, `minimum` ...).
    pub keyword: String,
    /// What is wrong.
    pub message: String,
    /// The containers that supplied the value; empty when no container set it.
    pub containers: Vec<String>,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pointer = if self.pointer.is_empty() {
            "/"
        } else {
            &self.pointer
        };
        write!(f, "{pointer}: {} ({}; ", self.message, self.keyword)?;
        if self.containers.is_empty() {
            f.write_str("required by the schema, set by no container)")
        } else {
            write!(f, "set by {})", self.containers.join(", "))
        }
    }
}

impl Schema {
    /// Reads and compiles a schema file (JSON or YAML).
    pub fn load(path: &Path) -> Result<Schema, Error> {
        let fail = |message: String| Error::Schema {
            path: path.to_owned(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| Error::Read {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        let json: serde_json::Value = if text.trim_start().starts_with('{') {
            serde_json::from_str(&text).map_err(|e| fail(e.to_string()))?
        } else {
            let options = serde_saphyr::options! { budget: Some(super::yaml::file_budget()) };
            serde_saphyr::from_str_with_options(&text, options)
                .map_err(|e| fail(super::yaml::describe(&e)))?
        };
        Schema::compile(path, &json)
    }

    /// Compiles a schema given as JSON; `path` names it in errors.
    pub fn compile(path: &Path, json: &serde_json::Value) -> Result<Schema, Error> {
        // The draft comes from `$schema`; without one, 2020-12.
        let validator = jsonschema::validator_for(json).map_err(|e| Error::Schema {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        Ok(Schema {
            path: path.to_owned(),
            validator,
        })
    }

    /// The schema file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every violation of the snapshot, each with its provenance, in pointer order.
    pub fn violations(&self, snapshot: &Snapshot) -> Vec<Violation> {
        let mut out: Vec<Violation> = self
            .validator
            .iter_errors(snapshot.values())
            .map(|e| {
                let mut pointer = e.instance_path().as_str().to_owned();
                let keyword = e.kind().keyword().to_owned();
                if let ValidationErrorKind::Required { property } = e.kind() {
                    let name = property
                        .as_str()
                        .map_or_else(|| property.to_string(), str::to_owned);
                    pointer = format!("{pointer}/{}", super::pointer_token(&name));
                }
                let containers = snapshot
                    .at(&pointer)
                    .map(|node| node.contributors().iter().map(|c| c.to_string()).collect())
                    .unwrap_or_default();
                Violation {
                    pointer,
                    keyword,
                    message: e.to_string(),
                    containers,
                }
            })
            .collect();
        out.sort_by(|a, b| (&a.pointer, &a.keyword).cmp(&(&b.pointer, &b.keyword)));
        out.dedup();
        out
    }

    /// Checks a snapshot: every violation at once, or nothing.
    pub fn check(&self, snapshot: &Snapshot) -> Result<(), Error> {
        let violations = self.violations(snapshot);
        if violations.is_empty() {
            Ok(())
        } else {
            Err(Error::Invalid {
                schema: self.path.clone(),
                violations,
            })
        }
    }
}
