//! The policy repository on disk: its settings, the defaults every namespace gets, and each
//! namespace's policies and roles, read into the objects hydrant keeps in Vault. Every file is
//! read and every problem reported before anything is decided (fail closed).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use injector::values::Duration;
use serde::Deserialize;
use serde_json::{Value as Json, json};

use super::guard::{self, Refusal};
use super::{Guardrail, Problem, RepoSettings, acl};

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
pub fn load(root: &Path) -> Result<(RepoSettings, Desired), Vec<Problem>> {
    load_for(root, None)
}

/// As [`load`], for the namespaces that exist (`live`, from the cluster) when given: each of
/// them gets the defaults, and a namespace that does not exist gets nothing. Every file is
/// checked either way: a problem anywhere still refuses the whole repository.
///
/// Everything is read first (the settings, then a `Tree` of every file); `decide` then judges
/// it without touching the disk.
pub fn load_for(
    root: &Path,
    live: Option<&BTreeSet<String>>,
) -> Result<(RepoSettings, Desired), Vec<Problem>> {
    let settings = read_settings(root)?;
    let (tree, mut problems) = Tree::read(root, &settings, live);
    let desired = decide(&settings, &tree, live, &mut problems);
    if problems.is_empty() {
        Ok((settings, desired))
    } else {
        problems.sort_by(|a, b| (&a.file, a.line).cmp(&(&b.file, b.line)));
        Err(problems)
    }
}

/// The settings file, read and parsed; its problem alone when it cannot be, since nothing else
/// can be judged without it.
fn read_settings(root: &Path) -> Result<RepoSettings, Vec<Problem>> {
    let problem = |message: String| {
        vec![Problem::new(
            SETTINGS_FILE,
            None,
            message,
            Guardrail::Settings,
        )]
    };
    let path = root.join(SETTINGS_FILE);
    if std::fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_symlink()) {
        return Err(problem(
            "is a symlink; hydrant reads regular files only (a link could point outside the repository)".to_owned(),
        ));
    }
    let text = std::fs::read_to_string(&path).map_err(|e| {
        problem(format!(
            "cannot read it: {e}; a policy repository has {SETTINGS_FILE} at its root"
        ))
    })?;
    RepoSettings::parse(&text).map_err(problem)
}

/// A policy or role file, as read.
#[derive(Debug)]
struct File {
    /// Its name without the extension: the policy's or role's short name.
    name: String,
    /// Where it is, relative to the repository.
    path: PathBuf,
    /// Its text, or why it cannot be read.
    text: Result<String, String>,
}

/// One namespace's files, as read; none for a name that is not a namespace's.
#[derive(Debug)]
struct Namespace {
    name: String,
    policies: Vec<File>,
    roles: Vec<File>,
}

/// Every file hydrant reads in a repository besides the settings, as read.
#[derive(Debug)]
struct Tree {
    /// `defaults/policies/*.hcl`: every namespace gets them.
    defaults: Vec<File>,
    /// Every namespace: in the settings, with a directory, or live in the cluster.
    namespaces: Vec<Namespace>,
}

impl Tree {
    /// Reads the defaults and every namespace's policies and roles; what is in the wrong place
    /// comes back as problems.
    fn read(
        root: &Path,
        settings: &RepoSettings,
        live: Option<&BTreeSet<String>>,
    ) -> (Tree, Vec<Problem>) {
        let mut problems = Vec::new();
        let mut names: BTreeSet<String> = settings.namespaces.iter().cloned().collect();
        let namespaces_dir = root.join("namespaces");
        names.extend(dir_names(&namespaces_dir, &mut problems, root));
        if let Some(live) = live {
            names.extend(live.iter().cloned());
        }
        only(&root.join("defaults"), &["policies"], &mut problems, root);
        let defaults = read_files(&root.join("defaults/policies"), "hcl", &mut problems, root);
        let namespaces = names
            .into_iter()
            .map(|name| {
                if !valid_name(&name) {
                    // Never read: a name like ../x is a path.
                    return Namespace {
                        name,
                        policies: Vec::new(),
                        roles: Vec::new(),
                    };
                }
                let dir = namespaces_dir.join(&name);
                only(&dir, &["policies", "roles"], &mut problems, root);
                Namespace {
                    policies: read_files(&dir.join("policies"), "hcl", &mut problems, root),
                    roles: read_files(&dir.join("roles"), "yaml", &mut problems, root),
                    name,
                }
            })
            .collect();
        (
            Tree {
                defaults,
                namespaces,
            },
            problems,
        )
    }
}

/// The files with `ext` in `dir`, each with its text; anything else there is a problem.
fn read_files(dir: &Path, ext: &str, problems: &mut Vec<Problem>, root: &Path) -> Vec<File> {
    files(dir, ext, problems, root)
        .into_iter()
        .map(|(name, path)| File {
            text: std::fs::read_to_string(&path).map_err(|e| format!("cannot read it: {e}")),
            path: relative(root, &path),
            name,
        })
        .collect()
}

/// What the repository asks for, judged from what was read: every policy and role checked
/// against the settings' guardrails, named, and kept once. Reads nothing.
fn decide(
    settings: &RepoSettings,
    tree: &Tree,
    live: Option<&BTreeSet<String>>,
    problems: &mut Vec<Problem>,
) -> Desired {
    let mut desired = Desired::default();
    for namespace in &tree.namespaces {
        let name = &namespace.name;
        if !valid_name(name) {
            problems.push(Problem::new(
                format!("namespaces/{name}"),
                None,
                format!("{name:?} is not a namespace name (lower-case letters, digits and -)"),
                Guardrail::Names,
            ));
            continue;
        }
        let own = own_policies(&tree.defaults, &namespace.policies, problems);
        let own_names: BTreeSet<String> = own.keys().cloned().collect();
        for (policy, (file, is_default)) in &own {
            add_policy(
                settings,
                name,
                policy,
                file,
                *is_default,
                &mut desired,
                problems,
            );
        }
        for file in &namespace.roles {
            add_role(settings, name, &own_names, file, &mut desired, problems);
        }
    }
    if let Some(live) = live {
        desired.policies.retain(|_, p| live.contains(&p.namespace));
        desired.roles.retain(|_, r| live.contains(&r.namespace));
    }
    desired
}

/// A namespace's policies by short name: the defaults, then its own, which may not reuse a
/// default's name. `true` marks a default.
fn own_policies<'a>(
    defaults: &'a [File],
    policies: &'a [File],
    problems: &mut Vec<Problem>,
) -> BTreeMap<String, (&'a File, bool)> {
    let mut own: BTreeMap<String, (&File, bool)> = defaults
        .iter()
        .map(|file| (file.name.clone(), (file, true)))
        .collect();
    for file in policies {
        if let Some((default, _)) = own.get(&file.name) {
            problems.push(Problem::new(
                &file.path,
                None,
                format!(
                    "policy {} is also a default ({}); name it otherwise",
                    file.name,
                    default.path.display()
                ),
                Guardrail::Names,
            ));
            continue;
        }
        own.insert(file.name.clone(), (file, false));
    }
    own
}

/// Checks one of a namespace's policies and adds it to `desired`, or says why not.
fn add_policy(
    settings: &RepoSettings,
    namespace: &str,
    name: &str,
    file: &File,
    is_default: bool,
    desired: &mut Desired,
    problems: &mut Vec<Problem>,
) {
    let path = &file.path;
    let vault_name = match settings.vault_name(namespace, name) {
        Ok(n) => n,
        Err(message) => return problems.push(Problem::new(path, None, message, Guardrail::Names)),
    };
    let text = match &file.text {
        Ok(text) if is_default => text
            .replace("{{ namespace }}", namespace)
            .replace("{{namespace}}", namespace),
        Ok(text) => text.clone(),
        Err(message) => {
            return problems.push(Problem::new(path, None, message.clone(), Guardrail::Parse));
        }
    };
    let policy = match acl::parse(&text) {
        Ok(p) => p,
        Err(errors) => {
            for e in errors {
                problems.push(Problem::new(path, e.line, e.message, Guardrail::Parse));
            }
            return;
        }
    };
    for Refusal {
        line,
        message,
        rule,
    } in guard::check_policy(namespace, &policy, settings)
    {
        let context = if is_default {
            format!("{message} (the default, for namespace {namespace})")
        } else {
            message
        };
        problems.push(Problem::new(path, line, context, rule));
    }
    if let Some(other) = desired.policies.get(&vault_name) {
        return problems.push(collision(
            path,
            &vault_name,
            &other.source,
            &other.namespace,
        ));
    }
    desired.policies.insert(
        vault_name,
        DesiredPolicy {
            namespace: namespace.to_owned(),
            source: path.clone(),
            text: policy.normal_form(),
        },
    );
}

/// Checks one of a namespace's roles and adds it to `desired`, or says why not.
fn add_role(
    settings: &RepoSettings,
    namespace: &str,
    own_names: &BTreeSet<String>,
    file: &File,
    desired: &mut Desired,
    problems: &mut Vec<Problem>,
) {
    let path = &file.path;
    let vault_name = match settings.vault_name(namespace, &file.name) {
        Ok(n) => n,
        Err(message) => return problems.push(Problem::new(path, None, message, Guardrail::Names)),
    };
    let role = match file.text.clone().and_then(|text| parse_role(&text)) {
        Ok(r) => r,
        Err(message) => return problems.push(Problem::new(path, None, message, Guardrail::Parse)),
    };
    for r in guard::check_role(namespace, &role, own_names, settings) {
        problems.push(Problem::new(path, r.line, r.message, r.rule));
    }
    let body = role_body(settings, namespace, &role, own_names);
    if let Some(other) = desired.roles.get(&vault_name) {
        return problems.push(collision(
            path,
            &vault_name,
            &other.source,
            &other.namespace,
        ));
    }
    desired.roles.insert(
        vault_name,
        DesiredRole {
            namespace: namespace.to_owned(),
            source: path.clone(),
            body,
        },
    );
}

/// A role file's text as a [`RoleFile`], with the line of each key.
fn parse_role(text: &str) -> Result<RoleFile, String> {
    let doc = serde_saphyr::from_str::<Json>(text).map_err(|e| e.to_string())?;
    serde_path_to_error::deserialize(doc)
        .map(|role: RoleFile| RoleFile {
            lines: key_lines(text),
            ..role
        })
        .map_err(|e| format!("{}: {}", e.path(), e.inner()))
}

/// The role's fields as Vault's API takes them. A policy of the namespace is named by its
/// Vault name; any other (a platform policy) as it is.
fn role_body(
    settings: &RepoSettings,
    namespace: &str,
    role: &RoleFile,
    own_names: &BTreeSet<String>,
) -> BTreeMap<String, Json> {
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
    // Always given, so that removing a TTL from the file resets it in Vault rather than
    // leaving it. A TTL the file leaves out is the cap: Vault's 0 would be the mount's default,
    // 768h unless tuned, whatever the caps say. The max TTL caps renewals, the explicit max
    // caps the token even if a period were set by hand, and the period is 0 because a
    // periodic token renews forever.
    let (ttl, max_ttl) = guard::ttls(role, settings);
    let secs = |d: Option<Duration>| d.map_or(0, |d| d.0.as_secs());
    body.insert("token_ttl".to_owned(), json!(secs(ttl)));
    body.insert("token_max_ttl".to_owned(), json!(secs(max_ttl)));
    body.insert("token_explicit_max_ttl".to_owned(), json!(secs(max_ttl)));
    body.insert("token_period".to_owned(), json!(0));
    body
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
        Guardrail::Names,
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
            Guardrail::Layout,
        ));
        return Vec::new();
    }
    let Ok(read) = std::fs::read_dir(dir) else {
        problems.push(Problem::new(
            relative(root, dir),
            None,
            "cannot be read".to_owned(),
            Guardrail::Layout,
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
        Guardrail::Layout,
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
                Guardrail::Layout,
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
                Guardrail::Layout,
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
                Guardrail::Layout,
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
                Guardrail::Layout,
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str, path: &str, text: &str) -> File {
        File {
            name: name.to_owned(),
            path: PathBuf::from(path),
            text: Ok(text.to_owned()),
        }
    }

    /// Deciding needs no disk: a default reaches every namespace with its name filled in, a
    /// namespace's own policy may not take a default's name, and a file that could not be read
    /// is a problem of that file alone.
    #[test]
    fn deciding_judges_what_was_read_without_the_disk() {
        let settings = RepoSettings::parse(
            "prefix: t\naudience: vault\nallowed_paths: ['secret/data/{{ namespace }}/*']\n",
        )
        .expect("settings");
        let read =
            |ns: &str| format!("path \"secret/data/{ns}/*\" {{ capabilities = [\"read\"] }}\n");
        let tree = Tree {
            defaults: vec![file(
                "base",
                "defaults/policies/base.hcl",
                "path \"secret/data/{{ namespace }}/*\" { capabilities = [\"read\"] }\n",
            )],
            namespaces: vec![
                Namespace {
                    name: "a".to_owned(),
                    policies: vec![
                        file("base", "namespaces/a/policies/base.hcl", &read("a")),
                        File {
                            text: Err("cannot read it: gone".to_owned()),
                            ..file("gone", "namespaces/a/policies/gone.hcl", "")
                        },
                    ],
                    roles: Vec::new(),
                },
                Namespace {
                    name: "b".to_owned(),
                    policies: Vec::new(),
                    roles: vec![file(
                        "app",
                        "namespaces/b/roles/app.yaml",
                        "service_accounts: [app]\npolicies: [base]\n",
                    )],
                },
            ],
        };
        let mut problems = Vec::new();
        let desired = decide(&settings, &tree, None, &mut problems);
        let lines: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert_eq!(
            lines,
            [
                "namespaces/a/policies/base.hcl: policy base is also a default (defaults/policies/base.hcl); name it otherwise [names]",
                "namespaces/a/policies/gone.hcl: cannot read it: gone [parse]",
            ]
        );
        assert_eq!(
            desired.policies["t-b-base"].text,
            "path \"secret/data/b/*\" {\n  capabilities = [\"read\"]\n}\n"
        );
        assert_eq!(
            desired.roles["t-b-app"].body["token_policies"],
            json!(["t-b-base"])
        );
    }
}
