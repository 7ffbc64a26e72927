//! Reading what Vault holds under the prefix, and applying a plan: the only part of the policy
//! commands that talks to Vault (through `crate::vault`).

use std::collections::BTreeMap;
use std::path::Path;

use futures_util::{StreamExt as _, stream};
use serde_json::{Map, Value as Json, json};
use tracing::info;

use super::plan::{Actual, Change, Kind, Plan};
use super::{Desired, Error, RepoSettings};
use crate::vault::{self, Client};

/// The role fields hydrant sets, and so compares.
pub const ROLE_FIELDS: [&str; 9] = [
    "bound_service_account_names",
    "bound_service_account_namespaces",
    "token_policies",
    "audience",
    "token_no_default_policy",
    "token_ttl",
    "token_max_ttl",
    "token_explicit_max_ttl",
    "token_period",
];

/// Runs `work` with a client logged in as the options say, on a runtime of its own.
pub fn blocking<T>(
    agent_config: Option<&Path>,
    env: &dyn crate::env::Env,
    work: impl AsyncFnOnce(&Client) -> Result<T, Error>,
) -> Result<T, Error> {
    let settings = vault::cli::CliVault::from(agent_config, env)
        .map_err(Error::AgentConfig)?
        .ok_or(Error::NoVault)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            Error::Vault(vault::Error::Config {
                key: "runtime",
                problem: e.to_string(),
            })
        })?;
    let result = runtime.block_on(async {
        let client = settings.connect().await.map_err(Error::Vault)?;
        work(&client).await
    });
    runtime.shutdown_background();
    result
}

fn policy_path(name: &str) -> String {
    format!("sys/policies/acl/{name}")
}

fn role_path(settings: &RepoSettings, name: &str) -> String {
    format!("auth/{}/role/{name}", settings.auth_mount.trim_matches('/'))
}

/// Requests kept in flight at once while reading and writing.
const IN_FLIGHT: usize = 16;

/// The names Vault lists at `path` that start with `prefix`.
async fn names_under(client: &Client, path: &str, prefix: &str) -> Result<Vec<String>, Error> {
    Ok(client
        .list(path)
        .await
        .map_err(Error::Vault)?
        .into_iter()
        .filter(|n| n.starts_with(prefix))
        .collect())
}

/// What Vault holds under the prefix, and the ownership index.
pub async fn read_actual(client: &Client, settings: &RepoSettings) -> Result<Actual, Error> {
    let prefix = format!("{}-", settings.prefix);
    let mut actual = Actual::default();
    let names = names_under(client, "sys/policies/acl", &prefix).await?;
    let mut reads = stream::iter(names.into_iter().map(|name| async move {
        let data = client.read(&policy_path(&name)).await?.data;
        Ok::<_, vault::Error>((name, data["policy"].as_str().unwrap_or_default().to_owned()))
    }))
    .buffer_unordered(IN_FLIGHT);
    while let Some(read) = reads.next().await {
        let (name, text) = read.map_err(Error::Vault)?;
        actual.policies.insert(name, text);
    }
    let roles = format!("auth/{}/role", settings.auth_mount.trim_matches('/'));
    let names = names_under(client, &roles, &prefix).await?;
    let mut reads = stream::iter(names.into_iter().map(|name| async move {
        let data = client.read(&role_path(settings, &name)).await?.data;
        let fields: BTreeMap<String, Json> = ROLE_FIELDS
            .iter()
            .filter_map(|f| data.get(*f).map(|v| (f.to_string(), v.clone())))
            .collect();
        Ok::<_, vault::Error>((name, fields))
    }))
    .buffer_unordered(IN_FLIGHT);
    while let Some(read) = reads.next().await {
        let (name, fields) = read.map_err(Error::Vault)?;
        actual.roles.insert(name, fields);
    }
    match client.read(&settings.index_path()).await {
        Ok(secret) => {
            actual.owned = secret.data["data"]["owned"]
                .as_str()
                .unwrap_or_default()
                .lines()
                .filter(|l| !l.is_empty())
                .map(str::to_owned)
                .collect();
            actual.commit = secret.data["data"]["commit"].as_str().map(str::to_owned);
        }
        Err(vault::Error::NotFound { .. }) => {}
        Err(e) => return Err(Error::Vault(e)),
    }
    Ok(actual)
}

/// Applies the plan: creates and updates, then deletions (never more than `max_deletions`),
/// then the ownership index when it changed, or when `commit` (the repository's commit, which
/// the index records) differs from the one recorded. With nothing to change, nothing is written.
pub async fn apply(
    client: &Client,
    settings: &RepoSettings,
    desired: &Desired,
    actual: &Actual,
    plan: &Plan,
    commit: Option<&str>,
) -> Result<(), Error> {
    let deletions = plan.deletions();
    if deletions > settings.max_deletions {
        return Err(Error::TooManyDeletions {
            deletions,
            max: settings.max_deletions,
        });
    }
    // Policies first (roles name them), then roles; deletions after, roles before the
    // policies they name. Within a phase the requests run concurrently.
    let phases: [fn(&Change) -> bool; 4] = [
        |c| {
            matches!(
                c,
                Change::Create(Kind::Policy, _) | Change::Update(Kind::Policy, ..)
            )
        },
        |c| {
            matches!(
                c,
                Change::Create(Kind::Role, _) | Change::Update(Kind::Role, ..)
            )
        },
        |c| matches!(c, Change::Delete(Kind::Role, _)),
        |c| matches!(c, Change::Delete(Kind::Policy, _)),
    ];
    for phase in phases {
        let mut done = stream::iter(
            plan.changes
                .iter()
                .filter(|c| phase(c))
                .map(|change| execute(client, settings, desired, change)),
        )
        .buffer_unordered(IN_FLIGHT);
        while let Some(result) = done.next().await {
            result.map_err(Error::Vault)?;
        }
    }
    let commit = commit.or(actual.commit.as_deref());
    if plan.owned != actual.owned || commit != actual.commit.as_deref() {
        // One string, a key per line: Vault refuses JSON bodies holding more than a thousand
        // strings, and a platform has thousands of objects.
        let owned: String = plan.owned.iter().map(|k| format!("{k}\n")).collect();
        let mut data = json!({ "owned": owned });
        if let Some(commit) = commit {
            data["commit"] = json!(commit);
        }
        let mut body = Map::new();
        body.insert("data".to_owned(), data);
        client
            .write(&settings.index_path(), &body)
            .await
            .map_err(Error::Vault)?;
    }
    Ok(())
}

async fn execute(
    client: &Client,
    settings: &RepoSettings,
    desired: &Desired,
    change: &Change,
) -> Result<(), vault::Error> {
    match change {
        Change::Create(Kind::Policy, name) | Change::Update(Kind::Policy, name, _) => {
            let mut body = Map::new();
            body.insert("policy".to_owned(), json!(desired.policies[name].text));
            client.write(&policy_path(name), &body).await?;
            let policy = &desired.policies[name];
            info!(policy = %name, namespace = %policy.namespace, source = %policy.source.display(), "policy written");
        }
        Change::Create(Kind::Role, name) | Change::Update(Kind::Role, name, _) => {
            let body: Map<String, Json> = desired.roles[name]
                .body
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            client.write(&role_path(settings, name), &body).await?;
            let role = &desired.roles[name];
            info!(role = %name, namespace = %role.namespace, source = %role.source.display(), "role written");
        }
        Change::Delete(Kind::Policy, name) => {
            client.delete(&policy_path(name)).await?;
            info!(policy = %name, "policy deleted");
        }
        Change::Delete(Kind::Role, name) => {
            client.delete(&role_path(settings, name)).await?;
            info!(role = %name, "role deleted");
        }
    }
    Ok(())
}
