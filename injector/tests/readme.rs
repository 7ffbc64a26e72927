//! The README's annotation tables and the keys the code reads name the same annotations.

use std::collections::BTreeSet;

use injector::annotations::keys::{hydrant, vault_k8s};

const README: &str = include_str!("../../README.md");

/// The keys named in the first column of every README table headed `| annotation | ...`: each
/// backticked span up to `: ` (an example value); `hydrant.dev/*` as written and any other span
/// under `vault.hashicorp.com/`; a per-name key's `*` or `<name>` becomes `*`.
fn readme_keys() -> BTreeSet<String> {
    let mut keys = BTreeSet::new();
    let mut in_table = false;
    for line in README.lines() {
        if line.starts_with("| annotation |") {
            in_table = true;
            continue;
        }
        if !line.starts_with('|') {
            in_table = false;
        }
        if !in_table || line.starts_with("|---") {
            continue;
        }
        let first = line.split('|').nth(1).unwrap_or_default();
        for span in first.split('`').skip(1).step_by(2) {
            let key = span.split(": ").next().unwrap_or(span);
            let key = key
                .strip_suffix("<name>")
                .map_or(key.to_owned(), |k| format!("{k}*"));
            if key.starts_with(hydrant::PREFIX) {
                keys.insert(key);
            } else {
                keys.insert(format!("{}{key}", vault_k8s::PREFIX));
            }
        }
    }
    keys
}

/// Every key in the code, per-name prefixes with a `*`.
fn code_keys() -> BTreeSet<String> {
    let exact = vault_k8s::KEYS.iter().chain(hydrant::KEYS);
    let prefixes = vault_k8s::PER_SECRET
        .iter()
        .chain(hydrant::PER_FILE)
        .chain(hydrant::PER_VARIABLE);
    exact
        .map(|k| k.to_string())
        .chain(prefixes.map(|p| format!("{p}*")))
        .collect()
}

#[test]
fn every_key_in_the_code_is_in_the_readme_s_annotation_tables() {
    let readme = readme_keys();
    let missing: Vec<String> = code_keys().difference(&readme).cloned().collect();
    assert!(
        missing.is_empty(),
        "not in the README's tables: {missing:?}"
    );
}

#[test]
fn every_key_the_readme_s_annotation_tables_name_is_in_the_code() {
    let code = code_keys();
    let prefixes: Vec<&str> = vault_k8s::PER_SECRET
        .iter()
        .chain(hydrant::PER_FILE)
        .chain(hydrant::PER_VARIABLE)
        .copied()
        .collect();
    // A key with a name filled in (`auth-config-role`) is one of a per-name prefix.
    let unknown: Vec<String> = readme_keys()
        .into_iter()
        .filter(|k| !code.contains(k))
        .filter(|k| {
            !prefixes
                .iter()
                .any(|p| k.strip_prefix(p).is_some_and(|name| !name.is_empty()))
        })
        .collect();
    assert!(unknown.is_empty(), "not in the code: {unknown:?}");
}

#[test]
fn the_tables_are_found() {
    let readme = readme_keys();
    assert!(readme.contains(vault_k8s::AGENT_INJECT), "{readme:?}");
    assert!(readme.contains(hydrant::INJECT), "{readme:?}");
    assert!(readme.contains(hydrant::CONFIG_CONTAINERS), "{readme:?}");
}
