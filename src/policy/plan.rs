//! The plan: what must change in Vault for it to hold what the repository asks for. A pure
//! function of the desired objects, the objects Vault holds under the prefix, and the
//! ownership index; deletions touch only what hydrant recorded as its own.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde_json::Value as Json;

use super::Desired;
use super::acl;

/// What Vault holds under the prefix, and what hydrant owns there.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Actual {
    /// Policies by name: their text as Vault returns it.
    pub policies: BTreeMap<String, String>,
    /// Roles by name: the fields hydrant sets, as Vault returns them.
    pub roles: BTreeMap<String, BTreeMap<String, Json>>,
    /// The objects hydrant created (`policy/<name>`, `role/<name>`), from the ownership index.
    pub owned: BTreeSet<String>,
    /// The commit of the policy repository last applied (`hydrant controller` records it).
    pub commit: Option<String>,
}

/// A kind of object.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// An ACL policy.
    Policy,
    /// A Kubernetes-auth role.
    Role,
}

impl Kind {
    /// `policy` or `role`, as in the ownership index.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Policy => "policy",
            Kind::Role => "role",
        }
    }
}

/// One change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// Create an object.
    Create(Kind, String),
    /// Update an object; the diff of its normal forms.
    Update(Kind, String, String),
    /// Delete an object hydrant owns that the repository no longer asks for.
    Delete(Kind, String),
}

/// Every change, policies before roles on the way in and roles before policies on the way out
/// (a role names its policies).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// The changes, in the order they are applied.
    pub changes: Vec<Change>,
    /// The ownership index after the plan is applied.
    pub owned: BTreeSet<String>,
}

impl Plan {
    /// How many deletions the plan makes.
    pub fn deletions(&self) -> usize {
        self.changes
            .iter()
            .filter(|c| matches!(c, Change::Delete(..)))
            .count()
    }
}

/// The key of an object in the ownership index.
pub fn owned_key(kind: Kind, name: &str) -> String {
    format!("{}/{name}", kind.name())
}

/// A policy's text in normal form, or as it is when it does not parse (then it differs from
/// anything hydrant writes, and is rewritten).
fn normal(text: &str) -> String {
    acl::parse(text).map_or_else(|_| text.to_owned(), |p| p.normal_form())
}

/// Computes the plan.
pub fn plan(desired: &Desired, actual: &Actual) -> Plan {
    let mut changes = Vec::new();
    for (name, policy) in &desired.policies {
        match actual.policies.get(name) {
            None => changes.push(Change::Create(Kind::Policy, name.clone())),
            Some(text) => {
                let now = normal(text);
                if now != policy.text {
                    changes.push(Change::Update(
                        Kind::Policy,
                        name.clone(),
                        diff(&now, &policy.text),
                    ));
                }
            }
        }
    }
    for (name, role) in &desired.roles {
        match actual.roles.get(name) {
            None => changes.push(Change::Create(Kind::Role, name.clone())),
            Some(fields) => {
                let now = role_text(fields, role.body.keys());
                let want = role_text(&role.body, role.body.keys());
                if now != want {
                    changes.push(Change::Update(Kind::Role, name.clone(), diff(&now, &want)));
                }
            }
        }
    }
    let mut owned: BTreeSet<String> = desired
        .policies
        .keys()
        .map(|n| owned_key(Kind::Policy, n))
        .chain(desired.roles.keys().map(|n| owned_key(Kind::Role, n)))
        .collect();
    for (kind, present) in [
        (Kind::Role, actual.roles.keys().collect::<Vec<_>>()),
        (Kind::Policy, actual.policies.keys().collect::<Vec<_>>()),
    ] {
        for name in present {
            let key = owned_key(kind, name);
            let wanted = match kind {
                Kind::Policy => desired.policies.contains_key(name),
                Kind::Role => desired.roles.contains_key(name),
            };
            if !wanted && actual.owned.contains(&key) {
                changes.push(Change::Delete(kind, name.clone()));
            } else if !wanted {
                // Under the prefix but not hydrant's: left alone, and not adopted.
                owned.remove(&key);
            }
        }
    }
    Plan { changes, owned }
}

/// A role's fields as `key = value` lines, lists sorted, for comparing and diffing.
fn role_text<'a>(
    fields: &BTreeMap<String, Json>,
    keys: impl Iterator<Item = &'a String>,
) -> String {
    let mut out = String::new();
    for key in keys {
        let value = match fields.get(key) {
            Some(Json::Array(items)) => {
                let mut items: Vec<String> = items.iter().map(ToString::to_string).collect();
                items.sort();
                format!("[{}]", items.join(", "))
            }
            Some(v) => v.to_string(),
            None => "(unset)".to_owned(),
        };
        out.push_str(&format!("{key} = {value}\n"));
    }
    out
}

fn diff(old: &str, new: &str) -> String {
    similar::TextDiff::from_lines(old, new)
        .unified_diff()
        .context_radius(1)
        .header("vault", "repository")
        .to_string()
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.changes.is_empty() {
            return f.write_str("no changes: Vault holds what the repository asks for\n");
        }
        for change in &self.changes {
            match change {
                Change::Create(kind, name) => writeln!(f, "+ create {} {name}", kind.name())?,
                Change::Update(kind, name, diff) => {
                    writeln!(f, "~ update {} {name}", kind.name())?;
                    for line in diff.lines() {
                        writeln!(f, "    {line}")?;
                    }
                }
                Change::Delete(kind, name) => writeln!(f, "- delete {} {name}", kind.name())?,
            }
        }
        let count = |pick: fn(&Change) -> bool| self.changes.iter().filter(|c| pick(c)).count();
        writeln!(
            f,
            "{} to create, {} to update, {} to delete",
            count(|c| matches!(c, Change::Create(..))),
            count(|c| matches!(c, Change::Update(..))),
            count(|c| matches!(c, Change::Delete(..)))
        )
    }
}
