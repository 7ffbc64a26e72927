//! `hydrant webhook`'s flags, and the options they make.

use std::net::SocketAddr;
use std::path::PathBuf;

use injector::values::Duration;

use super::{Limits, Options, SelfManaged, certs};

/// `hydrant webhook`'s flags.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Where to listen.
    #[arg(long, env = "HYDRANT_LISTEN", default_value = "0.0.0.0:8443")]
    pub listen: SocketAddr,
    /// The serving certificate chain (PEM); reloaded when it changes.
    #[arg(long, env = "HYDRANT_TLS_CERT", value_name = "FILE")]
    pub tls_cert: PathBuf,
    /// The serving certificate's private key (PEM); reloaded when it changes.
    #[arg(long, env = "HYDRANT_TLS_KEY", value_name = "FILE")]
    pub tls_key: PathBuf,
    /// How long one review may take before it is answered 503.
    #[arg(long, env = "HYDRANT_REQUEST_TIMEOUT", default_value = "10s", value_parser = crate::cli::parse_duration)]
    pub request_timeout: Duration,
    /// The largest request body accepted, in bytes (a pod is at most about 1.5 MiB).
    #[arg(long, env = "HYDRANT_MAX_BODY_BYTES", default_value_t = 3 * 1024 * 1024)]
    pub max_body_bytes: usize,
    /// The bytes of request bodies held at once, over all connections; a review whose body does
    /// not fit is answered 503. At least --max-body-bytes.
    #[arg(long, env = "HYDRANT_MAX_IN_FLIGHT_BODY_BYTES", default_value_t = 16 * 1024 * 1024)]
    pub max_in_flight_body_bytes: usize,
    /// Connections open at once (fewer if the open files limit is lower); more wait.
    #[arg(long, env = "HYDRANT_MAX_CONNECTIONS", default_value_t = 512)]
    pub max_connections: usize,
    /// HTTP/2 streams open at once on one connection.
    #[arg(long, env = "HYDRANT_MAX_CONCURRENT_STREAMS", default_value_t = 100)]
    pub max_concurrent_streams: u32,
    /// How long a client may take to finish its TLS handshake.
    #[arg(long, env = "HYDRANT_TLS_HANDSHAKE_TIMEOUT", value_name = "DURATION", default_value = "5s", value_parser = crate::cli::parse_duration)]
    pub tls_handshake_timeout: Duration,
    /// HTTP/1: how long a client may take to send a request's headers, also between requests.
    #[arg(long, env = "HYDRANT_HEADER_READ_TIMEOUT", value_name = "DURATION", default_value = "10s", value_parser = crate::cli::parse_duration)]
    pub header_read_timeout: Duration,
    /// How long a connection may stay open with no request in flight.
    #[arg(long, env = "HYDRANT_IDLE_TIMEOUT", value_name = "DURATION", default_value = "30s", value_parser = crate::cli::parse_duration)]
    pub idle_timeout: Duration,
    /// What the webhook decides for every pod.
    #[command(flatten)]
    pub injector: crate::cli::InjectorArgs,
    /// How images' commands are read from their registries.
    #[command(flatten)]
    pub registry: crate::registry::RegistryArgs,
    /// Make the CA and serving certificate, keep them in --cert-secret, put the CA bundle into
    /// every entry of --webhook-config, renew them before they expire (one replica writes, the
    /// holder of a Lease), and serve them from --tls-cert and --tls-key (a writable emptyDir).
    #[arg(long)]
    pub self_managed_certificates: bool,
    /// The Secret holding the self-managed CA and certificate.
    #[arg(long, value_name = "NAME", default_value = "hydrant-webhook-tls")]
    pub cert_secret: String,
    /// The MutatingWebhookConfiguration whose entries get the CA bundle.
    #[arg(long, value_name = "NAME", default_value = "hydrant-webhook")]
    pub webhook_config: String,
    /// The webhook's Service; the certificate is for <service>.<namespace>.svc.
    #[arg(long, value_name = "NAME", default_value = "hydrant-webhook")]
    pub service: String,
    /// The namespace of the Service, Secret and Lease (in a pod: POD_NAMESPACE).
    #[arg(
        long,
        env = "POD_NAMESPACE",
        value_name = "NAMESPACE",
        default_value = "default"
    )]
    pub namespace: String,
    /// How long a self-managed CA lives (replaced at two thirds, trusted until it expires).
    #[arg(long, value_name = "DURATION", default_value = "43800h", value_parser = crate::cli::parse_duration)]
    pub ca_validity: Duration,
    /// How long a self-managed serving certificate lives (renewed at two thirds).
    #[arg(long, value_name = "DURATION", default_value = "8760h", value_parser = crate::cli::parse_duration)]
    pub cert_validity: Duration,
    /// How often the certificate Secret is checked.
    #[arg(long, value_name = "DURATION", default_value = "1m", value_parser = crate::cli::parse_duration)]
    pub cert_check_interval: Duration,
    /// The Lease that chooses the replica writing certificates.
    #[arg(
        long,
        value_name = "NAME",
        default_value = "hydrant-webhook-certificates"
    )]
    pub cert_lease_name: String,
    /// This replica's identity in the Lease (in a pod: POD_NAME).
    #[arg(long, env = "POD_NAME", value_name = "NAME")]
    pub identity: Option<String>,
}

impl Args {
    /// What the flags (and, for the injector's settings, vault-k8s's variables in `env`) ask
    /// the webhook to do; settings that cannot be used are refused here, before anything listens.
    pub fn options(
        self,
        env: &dyn crate::env::Env,
    ) -> Result<Options, crate::cli::InvalidSettings> {
        let settings = self.injector.settings(env)?;
        Ok(Options {
            listen: self.listen,
            tls_cert: self.tls_cert,
            tls_key: self.tls_key,
            request_timeout: self.request_timeout.0,
            max_body_bytes: self.max_body_bytes,
            limits: Limits {
                handshake_timeout: self.tls_handshake_timeout.0,
                header_read_timeout: self.header_read_timeout.0,
                idle_timeout: self.idle_timeout.0,
                max_connections: self.max_connections,
                max_in_flight_body_bytes: self.max_in_flight_body_bytes,
                max_concurrent_streams: self.max_concurrent_streams,
            },
            settings,
            registry: self.registry,
            self_managed: self.self_managed_certificates.then(|| SelfManaged {
                certificates: certs::CertificateSpec {
                    namespace: self.namespace,
                    secret: self.cert_secret,
                    webhook_config: self.webhook_config,
                    service: self.service,
                    ca_validity: self.ca_validity.0,
                    cert_validity: self.cert_validity.0,
                    interval: self.cert_check_interval.0,
                },
                election: crate::lease::Params {
                    name: self.cert_lease_name,
                    identity: self.identity.unwrap_or_else(crate::lease::default_identity),
                    duration: std::time::Duration::from_secs(15),
                },
            }),
        })
    }
}
