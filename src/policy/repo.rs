//! The policy repository on disk: its settings, the defaults every namespace gets, and each
//! namespace's policies and roles, read into the objects hydrant keeps in Vault. Every file is
//! read and every problem reported before anything is decided (fail closed).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use injector::values::Duration;
use serde::Deserialize;
use serde_json::{Value as Json, json};

use super::guard::{self, Refusal};
use super::{Problem, Settings, acl};

/// The settings file at the repository's root.
pub const SETTINGS_FILE: &str = "hydrant-policy.yaml";

/// The longest Vault name hydrant creates.
pub const MAX_NAME: usize = 128;

/// A role file: `namespaces/<ns>/roles/<name>.yaml`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleFile {
    /// The service accounts of the namespace that may log in.
    pub service_accounts: Vec<String>,
    /// Short names of the namespace's policies, or platform policies.
    #[serde(default)]
    pub policies: Vec<String>,
    /// The token's TTL.
    #[serde(default)]
    pub ttl: Option<Duration>,
    /// The token's max TTL.
    #[serde(default)]
    pub max_ttl: Option<Duration>,
    /// The audience the service-account token must carry.
    #[serde(default)]
    pub audience: Option<String>,
    /// Vault's own key, accepted only to refuse anything but the role's namespace.
    #[serde(default)]
    pub bound_service_account_namespaces: Option<Vec<String>>,
    /// Vault's own key, always refused.
    #[serde(default)]
    pub bound_service_account_namespace_selector: Option<Json>,
    /// The line of each top-level key, for problems (not a key of the file).
    #[serde(skip)]
    pub lines: BTreeMap<String, usize>,
}

/// The line of each top-level key of a YAML mapping; empty when the text is not one.
fn key_lines(text: &str) -> BTreeMap<String, usize> {
    serde_saphyr::from_str::<BTreeMap<String, serde_saphyr::Spanned<serde::de::IgnoredAny>>>(text)
        .map(|keys| {
            keys.into_iter()
                .filter_map(|(key, value)| {
                    let line = usize::try_from(value.referenced.line()).ok()?;
                    (line > 0).then_some((key, line))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// A policy as hydrant keeps it in Vault.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DesiredPolicy {
    /// The namespace.
    pub namespace: String,
    /// The file it came from, relative to the repository.
    pub source: PathBuf,
    /// The policy in normal form.
    pub text: String,
}

/// A Kubernetes-auth role as hydrant keeps it in Vault.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DesiredRole {
    /// The namespace.
    pub namespace: String,
    /// The file it came from, relative to the repository.
    pub source: PathBuf,
    /// The role's fields, as Vault's API takes them.
    pub body: BTreeMap<String, Json>,
}

/// Everything the repository asks for, by Vault name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Desired {
    /// Policies.
    pub policies: BTreeMap<String, DesiredPolicy>,
    /// Roles.
    pub roles: BTreeMap<String, DesiredRole>,
}

/// The settings and everything asked for, or every problem found.
pub fn load(root: &Path) -> Result<(Settings, Desired), Vec<Problem>> {
    load_for(root, None)
}

/// As [`load`], for the namespaces that exist (`live`, from the cluster) when given: each of
/// them gets the defaults, and a namespace that does not exist gets nothing. Every file is
/// checked either way: a problem anywhere still refuses the whole repository.
pub fn load_for(
    root: &Path,
    live: Option<&BTreeSet<String>>,
) -> Result<(Settings, Desired), Vec<Problem>> {
    let mut problems = Vec::new();
    let settings_path = root.join(SETTINGS_FILE);
    if std::fs::symlink_metadata(&settings_path).is_ok_and(|m| m.file_type().is_symlink()) {
        return Err(vec![Problem::new(
            SETTINGS_FILE,
            None,
            "is a symlink; hydrant reads regular files only (a link could point outside the repository)".to_owned(),
            "settings",
        )]);
    }
    let settings = match std::fs::read_to_string(&settings_path) {
        Ok(text) => match Settings::parse(&text) {
            Ok(s) => s,
            Err(message) => {
                return Err(vec![Problem::new(SETTINGS_FILE, None, message, "settings")]);
            }
        },
        Err(e) => {
            return Err(vec![Problem::new(
                SETTINGS_FILE,
                None,
                format!("cannot read it: {e}; a policy repository has {SETTINGS_FILE} at its root"),
                "settings",
            )]);
        }
    };
    let mut namespaces: BTreeSet<String> = settings.namespaces.iter().cloned().collect();
    let namespaces_dir = root.join("namespaces");
    for name in dir_names(&namespaces_dir, &mut problems, root) {
        namespaces.insert(name);
    }
    if let Some(live) = live {
        namespaces.extend(live.iter().cloned());
    }
    only(&root.join("defaults"), &["policies"], &mut problems, root);
    let defaults = files(&root.join("defaults/policies"), "hcl", &mut problems, root);
    let mut desired = Desired::default();
    for namespace in &namespaces {
        if !valid_name(namespace) {
            problems.push(Problem::new(
                format!("namespaces/{namespace}"),
                None,
                format!("{namespace:?} is not a namespace name (lower-case letters, digits and -)"),
                "names",
            ));
            continue;
        }
        let dir = namespaces_dir.join(namespace);
        only(&dir, &["policies", "roles"], &mut problems, root);
        let mut own = BTreeMap::new();
        for (name, path) in &defaults {
            own.insert(name.clone(), (path.clone(), true));
        }
        for (name, path) in files(&dir.join("policies"), "hcl", &mut problems, root) {
            if let Some((default, _)) = own.get(&name) {
                problems.push(Problem::new(
                    relative(root, &path),
                    None,
                    format!(
                        "policy {name} is also a default ({}); name it otherwise",
                        relative(root, default).display()
                    ),
                    "names",
                ));
                continue;
            }
            own.insert(name, (path, false));
        }
        let own_names: BTreeSet<String> = own.keys().cloned().collect();
        for (name, (path, is_default)) in &own {
            let file = relative(root, path);
            let vault_name = match settings.vault_name(namespace, name) {
                Ok(n) => n,
                Err(message) => {
                    problems.push(Problem::new(&file, None, message, "names"));
                    continue;
                }
            };
            let text = match std::fs::read_to_string(path) {
                Ok(t) => t,
                Err(e) => {
                    problems.push(Problem::new(
                        &file,
                        None,
                        format!("cannot read it: {e}"),
                        "parse",
                    ));
                    continue;
                }
            };
            let text = if *is_default {
                text.replace("{{ namespace }}", namespace)
                    .replace("{{namespace}}", namespace)
            } else {
                text
            };
            let policy = match acl::parse(&text) {
                Ok(p) => p,
                Err(errors) => {
                    for e in errors {
                        problems.push(Problem::new(&file, e.line, e.message, "parse"));
                    }
                    continue;
                }
            };
            for Refusal {
                line,
                message,
                rule,
            } in guard::check_policy(namespace, &policy, &settings)
            {
                let context = if *is_default {
                    format!("{message} (the default, for namespace {namespace})")
                } else {
                    message
                };
                problems.push(Problem::new(&file, line, context, rule));
            }
            if let Some(other) = desired.policies.get(&vault_name) {
                problems.push(collision(
                    &file,
                    &vault_name,
                    &other.source,
                    &other.namespace,
                ));
                continue;
            }
            desired.policies.insert(
                vault_name,
                DesiredPolicy {
                    namespace: namespace.clone(),
                    source: file,
                    text: policy.normal_form(),
                },
            );
        }
        for (name, path) in files(&dir.join("roles"), "yaml", &mut problems, root) {
            let file = relative(root, &path);
            let vault_name = match settings.vault_name(namespace, &name) {
                Ok(n) => n,
                Err(message) => {
                    problems.push(Problem::new(&file, None, message, "names"));
                    continue;
                }
            };
            let role: RoleFile = match std::fs::read_to_string(&path)
                .map_err(|e| format!("cannot read it: {e}"))
                .and_then(|t| {
                    let doc = serde_saphyr::from_str::<Json>(&t).map_err(|e| e.to_string())?;
                    Ok((doc, key_lines(&t)))
                })
                .and_then(|(doc, lines)| {
                    serde_path_to_error::deserialize(doc)
                        .map(|role: RoleFile| RoleFile { lines, ..role })
                        .map_err(|e| format!("{}: {}", e.path(), e.inner()))
                }) {
                Ok(r) => r,
                Err(message) => {
                    problems.push(Problem::new(&file, None, message, "parse"));
                    continue;
                }
            };
            for r in guard::check_role(namespace, &role, &own_names, &settings) {
                problems.push(Problem::new(&file, r.line, r.message, r.rule));
            }
            let policies: Vec<String> = role
                .policies
                .iter()
                .map(|p| {
                    if own_names.contains(p) {
                        settings.vault_name(namespace, p).unwrap_or_default()
                    } else {
                        p.clone()
                    }
                })
                .collect();
            let mut body = BTreeMap::from([
                (
                    "bound_service_account_names".to_owned(),
                    json!(role.service_accounts),
                ),
                (
                    "bound_service_account_namespaces".to_owned(),
                    json!([namespace]),
                ),
                ("token_policies".to_owned(), json!(policies)),
                (
                    "audience".to_owned(),
                    json!(
                        role.audience
                            .clone()
                            .or(settings.audience.clone())
                            .unwrap_or_default()
                    ),
                ),
                (
                    "token_no_default_policy".to_owned(),
                    json!(settings.token_no_default_policy),
                ),
            ]);
            // Always given, so that removing a TTL from the file resets it in Vault rather
            // than leaving it. A TTL the file leaves out is the cap: Vault's 0 would be the
            // mount's default, 768h unless tuned, whatever the caps say. The max TTL caps
            // renewals, the explicit max caps the token even if a period were set by hand,
            // and the period is 0 because a periodic token renews forever.
            let (ttl, max_ttl) = guard::ttls(&role, &settings);
            let secs = |d: Option<Duration>| d.map_or(0, |d| d.0.as_secs());
            body.insert("token_ttl".to_owned(), json!(secs(ttl)));
            body.insert("token_max_ttl".to_owned(), json!(secs(max_ttl)));
            body.insert("token_explicit_max_ttl".to_owned(), json!(secs(max_ttl)));
            body.insert("token_period".to_owned(), json!(0));
            if let Some(other) = desired.roles.get(&vault_name) {
                problems.push(collision(
                    &file,
                    &vault_name,
                    &other.source,
                    &other.namespace,
                ));
                continue;
            }
            desired.roles.insert(
                vault_name,
                DesiredRole {
                    namespace: namespace.clone(),
                    source: file,
                    body,
                },
            );
        }
    }
    if let Some(live) = live {
        desired.policies.retain(|_, p| live.contains(&p.namespace));
        desired.roles.retain(|_, r| live.contains(&r.namespace));
    }
    if problems.is_empty() {
        Ok((settings, desired))
    } else {
        problems.sort_by(|a, b| (&a.file, a.line).cmp(&(&b.file, b.line)));
        Err(problems)
    }
}

/// Two files that give one Vault name: the later one is refused.
fn collision(file: &Path, vault_name: &str, other: &Path, namespace: &str) -> Problem {
    Problem::new(
        file,
        None,
        format!(
            "its Vault name {vault_name} is also the name of {} (namespace {namespace}); rename one",
            other.display()
        ),
        "names",
    )
}

/// A name hydrant accepts for a namespace, policy or role: lower-case, as Vault keeps names.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && !name.ends_with('-')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

fn relative(root: &Path, path: &Path) -> PathBuf {
    path.strip_prefix(root).unwrap_or(path).to_owned()
}

/// An entry of a directory hydrant reads, as it is on disk: symlinks are not followed.
struct Entry {
    name: String,
    path: PathBuf,
    /// `Some(true)` for a directory, `Some(false)` for a regular file, `None` for anything
    /// else (a symlink, a socket).
    is_dir: Option<bool>,
}

/// The entries of `dir`, by name; none when it does not exist. A `dir` that is not a directory
/// (a symlink to one, a file) is a problem. Reading never follows a symlink: a link in the
/// repository could point anywhere on the machine that lints or applies it.
fn entries(dir: &Path, problems: &mut Vec<Problem>, root: &Path) -> Vec<Entry> {
    let Ok(meta) = std::fs::symlink_metadata(dir) else {
        return Vec::new();
    };
    if !meta.is_dir() {
        problems.push(Problem::new(
            relative(root, dir),
            None,
            format!(
                "is {}, not a directory; hydrant reads directories and regular files only",
                describe(&meta.file_type())
            ),
            "layout",
        ));
        return Vec::new();
    }
    let Ok(read) = std::fs::read_dir(dir) else {
        problems.push(Problem::new(
            relative(root, dir),
            None,
            "cannot be read".to_owned(),
            "layout",
        ));
        return Vec::new();
    };
    let mut out: Vec<Entry> = read
        .flatten()
        .map(|entry| {
            let file_type = entry.file_type().ok();
            Entry {
                name: entry.file_name().to_string_lossy().into_owned(),
                path: entry.path(),
                is_dir: match file_type {
                    Some(t) if t.is_dir() => Some(true),
                    Some(t) if t.is_file() => Some(false),
                    _ => None,
                },
            }
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

fn describe(file_type: &std::fs::FileType) -> &'static str {
    if file_type.is_symlink() {
        "a symlink"
    } else if file_type.is_file() {
        "a file"
    } else {
        "neither a file nor a directory"
    }
}

/// The problem with an entry hydrant does not read, or None for a visible directory or file
/// (whose place the caller judges). Hidden entries are problems too: skipping them silently
/// would let `.evil.hcl` sit in a namespace's policies unread and unreviewed.
fn unread(entry: &Entry, root: &Path) -> Option<Problem> {
    let message = if entry.name.starts_with('.') {
        "is hidden, and hydrant reads no hidden file: remove it (nothing under defaults/ or namespaces/ is skipped silently)"
    } else if entry.is_dir.is_none() {
        "is a symlink or special file; hydrant reads directories and regular files only: replace it with the file itself"
    } else {
        return None;
    };
    Some(Problem::new(
        relative(root, &entry.path),
        None,
        message.to_owned(),
        "layout",
    ))
}

/// `dir` (when it exists) holds the directories `allowed` and nothing else.
fn only(dir: &Path, allowed: &[&str], problems: &mut Vec<Problem>, root: &Path) {
    for entry in entries(dir, problems, root) {
        if let Some(problem) = unread(&entry, root) {
            problems.push(problem);
        } else if entry.is_dir != Some(true) || !allowed.contains(&entry.name.as_str()) {
            problems.push(Problem::new(
                relative(root, &entry.path),
                None,
                format!(
                    "is not read by hydrant: {} holds {} only",
                    relative(root, dir).display(),
                    allowed
                        .iter()
                        .map(|a| format!("{a}/"))
                        .collect::<Vec<_>>()
                        .join(" and ")
                ),
                "layout",
            ));
        }
    }
}

fn dir_names(dir: &Path, problems: &mut Vec<Problem>, root: &Path) -> Vec<String> {
    let mut names = Vec::new();
    for entry in entries(dir, problems, root) {
        if let Some(problem) = unread(&entry, root) {
            problems.push(problem);
        } else if entry.is_dir == Some(true) {
            names.push(entry.name);
        } else {
            problems.push(Problem::new(
                relative(root, &entry.path),
                None,
                "is a file; namespaces/ holds one directory per namespace".to_owned(),
                "layout",
            ));
        }
    }
    names
}

/// The files with `ext` in `dir`, by their name without it; anything else there is a problem.
fn files(
    dir: &Path,
    ext: &str,
    problems: &mut Vec<Problem>,
    root: &Path,
) -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    for entry in entries(dir, problems, root) {
        if let Some(problem) = unread(&entry, root) {
            problems.push(problem);
            continue;
        }
        match entry.name.strip_suffix(&format!(".{ext}")) {
            Some(stem) if entry.is_dir == Some(false) => out.push((stem.to_owned(), entry.path)),
            _ => problems.push(Problem::new(
                relative(root, &entry.path),
                None,
                format!(
                    "is not a .{ext} file; {} holds .{ext} files only",
                    relative(root, dir).display()
                ),
                "layout",
            )),
        }
    }
    out
}

/// Whether hydrant reads `path` (relative to the repository): the settings file and everything
/// under `defaults/` and `namespaces/`. The rest of the repository (a README, CI configuration,
/// CODEOWNERS) is its owners' and never read.
pub fn is_read(path: &Path) -> bool {
    path == Path::new(SETTINGS_FILE)
        || path.starts_with("defaults")
        || path.starts_with("namespaces")
}

/// The problems of entries that a checkout could not write as regular files (symlinks,
/// submodules) where hydrant reads: `policy lint` refuses them in a working tree, so the
/// controller refuses them in a commit.
pub fn not_regular(paths: &[PathBuf]) -> Vec<Problem> {
    paths
        .iter()
        .filter(|p| is_read(p))
        .map(|p| {
            Problem::new(
                p,
                None,
                "is a symlink or submodule; hydrant reads directories and regular files only: replace it with the file itself".to_owned(),
                "layout",
            )
        })
        .collect()
}
