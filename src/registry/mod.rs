//! Images' ENTRYPOINT and CMD from their registries, for containers that run under `hydrant
//! exec` and set no command: the image's manifest and configuration read through `oci-client`
//! (rustls with ring), with the registry credentials of a `.dockerconfigjson` file, timeouts,
//! and a cache bounded in size and time. The webhook and `hydrant inject` ask; the mutation
//! decides with the answers (`injector::Images`).

pub mod cache;
pub mod credentials;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use injector::values::Duration as FlagDuration;
use injector::{ImageCommand, Images};
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use tracing::{debug, warn};

use self::cache::Cache;

/// How long reading one image's configuration may take in all, unless `--registry-timeout`
/// says otherwise: under the webhook's own 10 s request timeout, with room to answer.
pub const DEFAULT_TIMEOUT: &str = "5s";

/// The registry flags of `hydrant webhook` and `hydrant inject`.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct RegistryArgs {
    /// A .dockerconfigjson file (a kubernetes.io/dockerconfigjson Secret's key, or what docker
    /// login writes) with the credentials of the registries whose images' ENTRYPOINT and CMD are
    /// read, for containers that run under hydrant exec and set no command. Read again when it
    /// changes. Unset: registries are read anonymously.
    #[arg(long, env = "HYDRANT_REGISTRY_CREDENTIALS", value_name = "FILE")]
    pub registry_credentials: Option<PathBuf>,
    /// Registries (host or host:port, comma-separated) reached over plain HTTP instead of HTTPS.
    /// Unset: every registry over HTTPS.
    #[arg(
        long = "insecure-registry",
        env = "HYDRANT_INSECURE_REGISTRIES",
        value_name = "HOST[:PORT]",
        value_delimiter = ','
    )]
    pub insecure_registries: Vec<String>,
    /// How long reading one image's configuration from its registry may take in all.
    #[arg(long, env = "HYDRANT_REGISTRY_TIMEOUT", value_name = "DURATION", default_value = DEFAULT_TIMEOUT, value_parser = crate::cli::parse_duration)]
    pub registry_timeout: Option<FlagDuration>,
}

/// Reads images' commands from their registries, remembering the answers.
pub struct Registry {
    credentials_file: Option<PathBuf>,
    insecure: Vec<String>,
    timeout: Duration,
    /// The client, built for the credentials file's content it was built with (oci-client
    /// keeps a registry's credentials once it has used them).
    client: Mutex<Option<(Vec<u8>, Arc<Client>)>>,
    cache: Mutex<Cache>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("credentials_file", &self.credentials_file)
            .field("insecure", &self.insecure)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Registry {
    /// A registry reader as the flags say.
    pub fn new(args: &RegistryArgs) -> Registry {
        // reqwest uses rustls' process-wide provider; ring is the only one built in.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let timeout = args
            .registry_timeout
            .map_or(Duration::from_secs(5), |d| d.0);
        Registry {
            credentials_file: args.registry_credentials.clone(),
            insecure: args
                .insecure_registries
                .iter()
                .map(|r| r.trim().to_owned())
                .filter(|r| !r.is_empty())
                .collect(),
            timeout,
            client: Mutex::new(None),
            cache: Mutex::new(Cache::new(cache::MAX_ENTRIES)),
        }
    }

    /// The commands of `images`, read at once (each from the cache when it can).
    pub async fn commands(&self, images: &[String]) -> Images {
        let lookups = images.iter().map(|image| async move {
            let result = self.command(image).await;
            (image.clone(), result)
        });
        futures_util::future::join_all(lookups)
            .await
            .into_iter()
            .collect()
    }

    /// One image's command, or why it cannot be read (one line naming the registry).
    pub async fn command(&self, image: &str) -> Result<ImageCommand, String> {
        let now = Instant::now();
        if let Some(known) = self.lock_cache().get(image, now) {
            return known;
        }
        let result = self.read(image).await;
        match &result {
            Ok(command) => debug!(
                image,
                entrypoint = ?command.entrypoint,
                cmd = ?command.cmd,
                "read the image's command from its registry"
            ),
            Err(error) => warn!(image, %error, "cannot read the image's command from its registry"),
        }
        self.lock_cache().put(image, now, result.clone());
        result
    }

    fn lock_cache(&self) -> std::sync::MutexGuard<'_, Cache> {
        self.cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    async fn read(&self, image: &str) -> Result<ImageCommand, String> {
        let reference: Reference = image
            .parse()
            .map_err(|e| format!("{image:?} is not an image reference: {e}"))?;
        let registry = reference.resolve_registry().to_owned();
        let (text, client) = self.client()?;
        let auth = match credentials::credentials_for(&text, &registry) {
            Ok(Some(c)) => RegistryAuth::Basic(c.username, c.password),
            Ok(None) => RegistryAuth::Anonymous,
            Err(problem) => {
                let file = self
                    .credentials_file
                    .as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default();
                return Err(format!("the registry credentials {file} {problem}"));
            }
        };
        let pulled = tokio::time::timeout(
            self.timeout,
            client.pull_manifest_and_config(&reference, &auth),
        )
        .await
        .map_err(|_| {
            format!(
                "{registry} did not answer within {}",
                humantime::format_duration(self.timeout)
            )
        })?
        .map_err(|e| format!("{registry}: {}", with_causes(&e)))?;
        image_command(&pulled.2).map_err(|problem| format!("{registry}: {problem}"))
    }

    /// The client for the credentials file's current content (its text, empty when none is
    /// configured), built anew when the content changed.
    fn client(&self) -> Result<(String, Arc<Client>), String> {
        let text = match &self.credentials_file {
            None => Vec::new(),
            Some(path) => std::fs::read(path).map_err(|e| {
                format!(
                    "cannot read the registry credentials {}: {e}",
                    path.display()
                )
            })?,
        };
        let mut held = self
            .client
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let client = match held.as_ref() {
            Some((built_for, client)) if *built_for == text => client.clone(),
            _ => {
                let config = ClientConfig {
                    protocol: if self.insecure.is_empty() {
                        ClientProtocol::Https
                    } else {
                        ClientProtocol::HttpsExcept(self.insecure.clone())
                    },
                    connect_timeout: Some(self.timeout),
                    read_timeout: Some(self.timeout),
                    user_agent: concat!("hydrant/", env!("CARGO_PKG_VERSION")),
                    ..ClientConfig::default()
                };
                let client = Arc::new(
                    Client::try_from(config)
                        .map_err(|e| format!("cannot build the registry client: {e}"))?,
                );
                *held = Some((text.clone(), client.clone()));
                client
            }
        };
        let text = if text.is_empty() {
            "{}".to_owned()
        } else {
            String::from_utf8(text).map_err(|_| {
                "the registry credentials file is not UTF-8 text (a .dockerconfigjson document)"
                    .to_owned()
            })?
        };
        Ok((text, client))
    }
}

/// An error and its causes, `: `-separated, each once (reqwest's says only "error sending
/// request" without them).
fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(c) = cause {
        let line = c.to_string();
        if !text.contains(&line) {
            text.push_str(": ");
            text.push_str(&line);
        }
        cause = c.source();
    }
    text
}

/// ENTRYPOINT and CMD from an image's configuration (`config.Entrypoint`, `config.Cmd`; absent
/// or null: none).
pub fn image_command(configuration: &str) -> Result<ImageCommand, String> {
    let value: serde_json::Value = serde_json::from_str(configuration)
        .map_err(|e| format!("the image's configuration is not JSON: {e}"))?;
    let list = |key: &str| -> Result<Vec<String>, String> {
        match &value["config"][key] {
            serde_json::Value::Null => Ok(Vec::new()),
            other => serde_json::from_value(other.clone()).map_err(|_| {
                format!(
                    "the image's configuration has a config.{key} that is not a list of strings"
                )
            }),
        }
    };
    Ok(ImageCommand {
        entrypoint: list("Entrypoint")?,
        cmd: list("Cmd")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entrypoint_and_cmd_come_from_the_image_configuration() {
        let config = r#"{"architecture":"amd64","os":"linux","config":{"Env":["PATH=/usr/bin"],"Entrypoint":["/docker-entrypoint.sh"],"Cmd":["nginx","-g","daemon off;"]},"rootfs":{"type":"layers","diff_ids":[]}}"#;
        assert_eq!(
            image_command(config),
            Ok(ImageCommand {
                entrypoint: vec!["/docker-entrypoint.sh".into()],
                cmd: vec!["nginx".into(), "-g".into(), "daemon off;".into()],
            })
        );
        assert_eq!(
            image_command(r#"{"config":{"Entrypoint":null,"Cmd":["/bin/sh"]}}"#),
            Ok(ImageCommand {
                entrypoint: Vec::new(),
                cmd: vec!["/bin/sh".into()],
            })
        );
        assert_eq!(image_command("{}"), Ok(ImageCommand::default()));
        let error = image_command(r#"{"config":{"Cmd":"nginx"}}"#).expect_err("a string");
        assert!(error.contains("config.Cmd"), "{error}");
        assert!(image_command("not json").is_err());
    }
}
