//! Images' ENTRYPOINT and CMD from their registries, for containers that run under `hydrant
//! exec` and set no command: the registry's login and the configuration blob through
//! `oci-client` (rustls with ring), the manifests read here (oci-client reads them whole), with
//! the registry credentials of a `.dockerconfigjson` file, timeouts, reads bounded in size, and
//! a cache bounded in size and time. The webhook and `hydrant inject` ask; the mutation
//! decides with the answers (`injector::Images`).

pub mod cache;
pub mod credentials;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use injector::values::Duration as FlagDuration;
use injector::{ImageCommand, Images};
use oci_client::client::{ClientConfig, ClientProtocol, current_platform_resolver};
use oci_client::manifest::{
    IMAGE_MANIFEST_LIST_MEDIA_TYPE, IMAGE_MANIFEST_MEDIA_TYPE, OCI_IMAGE_INDEX_MEDIA_TYPE,
    OCI_IMAGE_MEDIA_TYPE, OciManifest,
};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference, RegistryOperation};
use tracing::{debug, warn};

use self::cache::Cache;

/// How long reading one image's configuration may take in all, unless `--registry-timeout`
/// says otherwise: under the webhook's own 10 s request timeout, with room to answer.
pub const DEFAULT_TIMEOUT: &str = "5s";

/// The largest manifest (or image index) read: what the OCI distribution spec asks registries
/// to accept. A registry is chosen by the pod's author, so what it sends is bounded here, not
/// only in time.
const MAX_MANIFEST_BYTES: usize = 4 << 20;

/// The largest image configuration read (real ones are a few KiB; their history grows them).
const MAX_CONFIGURATION_BYTES: usize = 4 << 20;

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
    /// The plain HTTP client the manifests are read with (bounded, which oci-client's reads
    /// are not), or why it could not be built.
    http: Result<reqwest::Client, String>,
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
            http: reqwest::Client::builder()
                .connect_timeout(timeout)
                .read_timeout(timeout)
                .user_agent(concat!("hydrant/", env!("CARGO_PKG_VERSION")))
                .build()
                .map_err(|e| format!("cannot build the registry client: {}", with_causes(&e))),
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
        tokio::time::timeout(self.timeout, self.pull(&client, &reference, &auth))
            .await
            .map_err(|_| {
                format!(
                    "{registry} did not answer within {}",
                    humantime::format_duration(self.timeout)
                )
            })?
            .map_err(|problem| format!("{registry}: {problem}"))
    }

    /// The image's command: its manifest (through the image index, for this platform) and its
    /// configuration, each read up to its bound. oci-client logs in (token or basic auth) and
    /// fetches the configuration blob; the manifests are read here because oci-client reads
    /// them whole.
    async fn pull(
        &self,
        client: &Client,
        reference: &Reference,
        auth: &RegistryAuth,
    ) -> Result<ImageCommand, String> {
        let bearer = client
            .auth(reference, auth, RegistryOperation::Pull)
            .await
            .map_err(|e| with_causes(&e))?;
        let credentials = Credentials { bearer, auth };
        let tag = reference
            .digest()
            .or(reference.tag())
            .unwrap_or("latest")
            .to_owned();
        let mut manifest = self.manifest(reference, &tag, &credentials).await?;
        if let OciManifest::ImageIndex(index) = &manifest {
            let digest = current_platform_resolver(&index.manifests).ok_or_else(|| {
                "the image index has no image for this platform (linux/amd64 or linux/arm64)"
                    .to_owned()
            })?;
            manifest = self.manifest(reference, &digest, &credentials).await?;
        }
        let OciManifest::Image(image) = manifest else {
            return Err("an image index points to another image index".to_owned());
        };
        let size = usize::try_from(image.config.size).unwrap_or(usize::MAX);
        if size > MAX_CONFIGURATION_BYTES {
            return Err(format!(
                "the image's configuration is {size} bytes, over the {} MiB hydrant reads",
                MAX_CONFIGURATION_BYTES >> 20
            ));
        }
        let blob = client
            .pull_blob_stream(reference, &image.config)
            .await
            .map_err(|e| with_causes(&e))?;
        let mut configuration = Vec::new();
        let mut chunks = blob.stream;
        while let Some(chunk) = chunks.next().await {
            let chunk = chunk.map_err(|e| with_causes(&e))?;
            if configuration.len() + chunk.len() > MAX_CONFIGURATION_BYTES.min(size) {
                return Err(format!(
                    "the image's configuration is longer than its manifest says ({size} bytes)"
                ));
            }
            configuration.extend_from_slice(&chunk);
        }
        let text = String::from_utf8(configuration)
            .map_err(|_| "the image's configuration is not UTF-8 JSON".to_owned())?;
        image_command(&text)
    }

    /// One manifest or image index, by tag or digest, read up to [`MAX_MANIFEST_BYTES`].
    async fn manifest(
        &self,
        reference: &Reference,
        tag: &str,
        credentials: &Credentials<'_>,
    ) -> Result<OciManifest, String> {
        let registry = reference.resolve_registry();
        let scheme = if self.insecure.iter().any(|r| r == registry) {
            "http"
        } else {
            "https"
        };
        let namespace = reference
            .namespace()
            .map(|ns| format!("?ns={ns}"))
            .unwrap_or_default();
        let url = format!(
            "{scheme}://{registry}/v2/{}/manifests/{tag}{namespace}",
            reference.repository()
        );
        let accept = [
            OCI_IMAGE_MEDIA_TYPE,
            IMAGE_MANIFEST_MEDIA_TYPE,
            OCI_IMAGE_INDEX_MEDIA_TYPE,
            IMAGE_MANIFEST_LIST_MEDIA_TYPE,
        ]
        .join(", ");
        let request = self
            .http
            .as_ref()
            .map_err(Clone::clone)?
            .get(&url)
            .header(reqwest::header::ACCEPT, accept);
        let request = match (&credentials.bearer, credentials.auth) {
            (Some(token), _) => request.bearer_auth(token),
            (None, RegistryAuth::Basic(user, password)) => request.basic_auth(user, Some(password)),
            (None, _) => request,
        };
        let mut response = request.send().await.map_err(|e| with_causes(&e))?;
        let status = response.status();
        if !status.is_success() {
            return Err(format!("{url}: {status}"));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| with_causes(&e))? {
            if body.len() + chunk.len() > MAX_MANIFEST_BYTES {
                return Err(format!(
                    "{url}: the manifest is over the {} MiB hydrant reads",
                    MAX_MANIFEST_BYTES >> 20
                ));
            }
            body.extend_from_slice(&chunk);
        }
        if let Some(want) = tag.strip_prefix("sha256:") {
            // Asked by digest: the registry must send those very bytes.
            let got = data_encoding::HEXLOWER
                .encode(ring::digest::digest(&ring::digest::SHA256, &body).as_ref());
            if got != want {
                return Err(format!("{url}: the manifest sent has digest sha256:{got}"));
            }
        }
        serde_json::from_slice(&body).map_err(|e| format!("{url}: not an image manifest: {e}"))
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

/// What a manifest request presents: the registry's token, else the basic credentials.
struct Credentials<'a> {
    bearer: Option<String>,
    auth: &'a RegistryAuth,
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
