//! The serving certificate: loaded from PEM files and reloaded when they change (cert-manager
//! and Secret volumes replace them by swapping a symlink), without dropping connections: a new
//! certificate serves the next handshakes, open connections keep theirs.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// A certificate or key that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{}: {problem}", .path.display())]
pub struct Error {
    /// The file.
    pub path: PathBuf,
    /// What is wrong with it.
    pub problem: String,
}

/// Reads the certificate chain and key.
pub fn load(cert: &Path, key: &Path) -> Result<Arc<CertifiedKey>, Error> {
    let fail = |path: &Path, problem: String| Error {
        path: path.to_owned(),
        problem,
    };
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| fail(cert, format!("cannot read the certificate: {e}")))?;
    if chain.is_empty() {
        return Err(fail(cert, "holds no PEM certificate".to_owned()));
    }
    let der = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| fail(key, format!("cannot read the private key: {e}")))?;
    let signing = rustls::crypto::ring::sign::any_supported_type(&der)
        .map_err(|e| fail(key, format!("unsupported private key: {e}")))?;
    let certified = CertifiedKey::new(chain, signing);
    certified
        .keys_match()
        .map_err(|e| fail(key, format!("does not belong to the certificate: {e}")))?;
    Ok(Arc::new(certified))
}

/// Serves whichever certificate was loaded last.
pub struct Reloading {
    cert: PathBuf,
    key: PathBuf,
    current: RwLock<Arc<CertifiedKey>>,
}

impl fmt::Debug for Reloading {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reloading")
            .field("cert", &self.cert)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl Reloading {
    /// Loads the files once; fails if they cannot be used.
    pub fn new(cert: &Path, key: &Path) -> Result<Reloading, Error> {
        Ok(Reloading {
            current: RwLock::new(load(cert, key)?),
            cert: cert.to_owned(),
            key: key.to_owned(),
        })
    }

    /// Loads the files again. On failure (a half-written pair, say) the current certificate
    /// stays and the error is returned.
    pub fn reload(&self) -> Result<bool, Error> {
        let fresh = load(&self.cert, &self.key)?;
        let mut current = self.current.write().unwrap_or_else(|p| p.into_inner());
        if current.cert == fresh.cert {
            return Ok(false);
        }
        *current = fresh;
        Ok(true)
    }

    /// The directories to watch: a Secret volume swaps a `..data` symlink beside the files.
    pub fn watched_dirs(&self) -> Vec<PathBuf> {
        let mut dirs: Vec<PathBuf> = [&self.cert, &self.key]
            .iter()
            .map(|p| {
                p.parent()
                    .map_or_else(|| PathBuf::from("."), Path::to_owned)
            })
            .collect();
        dirs.dedup();
        dirs
    }
}

impl ResolvesServerCert for Reloading {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        )
    }
}

/// A server config for the resolver: TLS 1.2 and 1.3 with ring, HTTP/2 and HTTP/1.1.
pub fn server_config(resolver: Arc<Reloading>) -> Result<rustls::ServerConfig, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}
