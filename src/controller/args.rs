//! `hydrant controller`'s flags, and the options they make.

use std::net::SocketAddr;
use std::path::PathBuf;

use injector::values::Duration;

use super::{DriftMode, Election, Error, Options, events, git};

/// `hydrant controller`'s flags.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The policy repository's git remote: https://, git:// or file://.
    #[arg(long, value_name = "URL")]
    pub repository: String,
    /// The branch applied.
    #[arg(long, default_value = "main")]
    pub branch: String,
    /// The user name for an https:// remote that asks for credentials.
    #[arg(
        long,
        value_name = "NAME",
        default_value = "git",
        requires = "git_password_file"
    )]
    pub git_username: String,
    /// A file holding the password or token for an https:// remote (a mounted Secret; read
    /// at every fetch). Never put credentials in the URL: it is logged.
    #[arg(long, value_name = "FILE")]
    pub git_password_file: Option<PathBuf>,
    /// Where the clone and checkouts are kept (an emptyDir in a pod).
    #[arg(long, value_name = "DIR", default_value = "/var/lib/hydrant")]
    pub state_dir: PathBuf,
    /// How often the remote is fetched (POST /sync fetches at once).
    #[arg(long, value_name = "DURATION", default_value = "1m", value_parser = crate::cli::parse_duration)]
    pub poll_interval: Duration,
    /// The least time between fetches that POST /sync asks for: requests in between wait for
    /// one fetch together, so that a flood of them cannot make a flood of fetches.
    #[arg(long, env = "HYDRANT_SYNC_INTERVAL", value_name = "DURATION", default_value = "5s", value_parser = crate::cli::parse_duration)]
    pub sync_interval: Duration,
    /// How often Vault is compared with the applied commit.
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = crate::cli::parse_duration)]
    pub drift_interval: Duration,
    /// What drift leads to: correct it, or only report it (log and metric).
    #[arg(long, value_enum, default_value = "correct")]
    pub drift_mode: DriftMode,
    /// Where /healthz, /readyz, /metrics and POST /sync are served.
    #[arg(long, value_name = "ADDR", default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,
    /// Take Vault's address, TLS settings and login from this agent config (otherwise
    /// VAULT_ADDR and VAULT_TOKEN).
    #[arg(long, value_name = "FILE")]
    pub agent_config: Option<PathBuf>,
    /// Follow the cluster's Namespaces that match this label selector (such as
    /// hydrant.dev/policy=enabled): each gets the defaults, and a namespace that is deleted
    /// loses its objects. Namespaces that do not exist or do not match get nothing.
    #[arg(long, value_name = "SELECTOR")]
    pub namespace_selector: Option<String>,
    /// Act only while holding a coordination.k8s.io Lease, for running several replicas.
    #[arg(long)]
    pub leader_election: bool,
    /// The Lease's name.
    #[arg(long, default_value = "hydrant-controller")]
    pub lease_name: String,
    /// The Lease's namespace (in a pod: POD_NAMESPACE from the downward API).
    #[arg(
        long,
        env = "POD_NAMESPACE",
        value_name = "NAMESPACE",
        default_value = "default"
    )]
    pub lease_namespace: String,
    /// This replica's identity in the Lease (in a pod: POD_NAME from the downward API).
    #[arg(long, env = "POD_NAME", value_name = "NAME")]
    pub identity: Option<String>,
    /// How long a leader holds the Lease without renewing it.
    #[arg(long, value_name = "DURATION", default_value = "15s", value_parser = crate::cli::parse_duration)]
    pub lease_duration: Duration,
    /// Publish Kubernetes Events (events.k8s.io) on this controller's Pod: applied and refused
    /// commits, drift, failures. The Pod is POD_NAME in POD_NAMESPACE (--identity,
    /// --lease-namespace), with POD_UID, all from the downward API.
    #[arg(long)]
    pub events: bool,
    /// The uid of this controller's Pod, by which `kubectl describe pod` finds its Events.
    #[arg(long, env = "POD_UID", value_name = "UID")]
    pub pod_uid: Option<String>,
}

impl Args {
    /// What the flags ask the controller to do; `--events` needs the Pod it is about.
    pub fn options(self) -> Result<Options, Error> {
        let election = self.leader_election.then(|| Election {
            namespace: self.lease_namespace.clone(),
            params: crate::lease::Params {
                name: self.lease_name.clone(),
                identity: self
                    .identity
                    .clone()
                    .unwrap_or_else(crate::lease::default_identity),
                duration: self.lease_duration.0,
            },
        });
        let events = if self.events {
            let name = self.identity.clone().ok_or(Error::NoPodForEvents)?;
            if self.pod_uid.is_none() {
                tracing::warn!(
                    "POD_UID is unset: the Events are published, but kubectl describe pod does not show them; set it from the downward API (metadata.uid)"
                );
            }
            Some(events::Regarding {
                namespace: self.lease_namespace.clone(),
                name,
                uid: self.pod_uid.clone(),
            })
        } else {
            None
        };
        Ok(Options {
            repository: self.repository,
            branch: self.branch,
            credentials: self
                .git_password_file
                .map(|password_file| git::Credentials {
                    username: self.git_username,
                    password_file,
                }),
            state_dir: self.state_dir,
            poll_interval: self.poll_interval.0,
            sync_interval: self.sync_interval.0,
            drift_interval: self.drift_interval.0,
            drift_mode: self.drift_mode,
            listen: self.listen,
            agent_config: self.agent_config,
            namespace_selector: self.namespace_selector,
            election,
            events,
        })
    }
}
