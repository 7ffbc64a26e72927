//! TLS to Vault with rustls and the ring provider: the configured CA or the system roots, an
//! optional name to check the certificate against, and (for development) no verification at all.

use std::sync::Arc;

use injector::agent_config::VaultConfig;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};

use super::Error;

/// A reqwest builder with TLS set up for the configured server.
pub(super) fn http_client(
    config: &VaultConfig,
    address: &str,
) -> Result<reqwest::ClientBuilder, Error> {
    let builder = reqwest::Client::builder().tls_backend_rustls();
    if !address.starts_with("https://") {
        // Plain HTTP: skip loading any roots (reqwest#2988: building the platform verifier reads
        // the system store even when no TLS connection is ever made).
        return Ok(builder.tls_certs_only(Vec::new()));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = verifier(config, &provider)?;
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_error("vault", format!("no usable TLS versions: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(builder.tls_backend_preconfigured(tls))
}

fn verifier(
    config: &VaultConfig,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<dyn ServerCertVerifier>, Error> {
    if config.tls_skip_verify {
        tracing::warn!("vault.tls_skip_verify is set: Vault's certificate is not checked");
        return Ok(Arc::new(AcceptAnyCertificate {
            algorithms: provider.signature_verification_algorithms,
        }));
    }
    let bundle = match (&config.ca_cert, &config.ca_cert_pem) {
        (Some(path), _) => {
            let shown = path.display().to_string();
            let pem = std::fs::read(path)
                .map_err(|e| tls_error("vault.ca_cert", format!("cannot read {shown}: {e}")))?;
            Some(("vault.ca_cert", shown, pem))
        }
        (None, Some(pem)) => Some((
            "vault.ca_cert_pem",
            "the PEM text".to_owned(),
            pem.as_bytes().to_vec(),
        )),
        (None, None) => None,
    };
    let inner: Arc<dyn ServerCertVerifier> = match bundle {
        Some((key, shown, pem)) => {
            let certs = ca_certificates(&pem, &shown).map_err(|problem| tls_error(key, problem))?;
            let mut roots = RootCertStore::empty();
            let (added, _ignored) = roots.add_parsable_certificates(certs);
            if added == 0 {
                return Err(tls_error(
                    key,
                    format!("{shown} holds no valid certificate"),
                ));
            }
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .build()
                .map_err(|e| tls_error(key, format!("{shown}: {e}")))?
        }
        None => Arc::new(
            rustls_platform_verifier::Verifier::new(provider.clone())
                .map_err(|e| tls_error("vault", format!("cannot load the system roots: {e}")))?,
        ),
    };
    match &config.tls_server_name {
        Some(name) => {
            let name = ServerName::try_from(name.clone()).map_err(|e| {
                tls_error(
                    "vault.tls_server_name",
                    format!("{name:?} is not a host name: {e}"),
                )
            })?;
            Ok(Arc::new(CheckAgainstName { inner, name }))
        }
        None => Ok(inner),
    }
}

/// The certificates of a PEM CA bundle: what `vault.ca_cert`, `vault.ca_cert_pem` and the
/// injector's `--vault-ca-cert` hold. The error names `shown` and what to give instead.
pub fn ca_certificates(pem: &[u8], shown: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{shown} is not PEM: {e}"))?;
    if certs.is_empty() {
        return Err(format!(
            "{shown} holds no PEM certificate; give the CA that signs Vault's certificate"
        ));
    }
    Ok(certs)
}

fn tls_error(key: &'static str, problem: String) -> Error {
    Error::Config { key, problem }
}

/// Checks the certificate against a fixed name instead of the address's host
/// (`vault.tls_server_name`).
#[derive(Debug)]
struct CheckAgainstName {
    inner: Arc<dyn ServerCertVerifier>,
    name: ServerName<'static>,
}

impl ServerCertVerifier for CheckAgainstName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.inner
            .verify_server_cert(end_entity, intermediates, &self.name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// `vault.tls_skip_verify`: any certificate is accepted, but the handshake signatures are still
/// checked so the connection is at least bound to the certificate presented.
#[derive(Debug)]
struct AcceptAnyCertificate {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
