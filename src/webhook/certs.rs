//! Self-managed serving certificates: the webhook makes its own CA and serving certificate
//! (rcgen), keeps them in a Secret, writes the CA bundle into every entry of its
//! MutatingWebhookConfiguration, and renews them before they expire. One replica writes, the
//! holder of a Lease; every replica copies the Secret's certificate into the files it serves
//! from, which [`super::tls::Reloading`] picks up.
//!
//! A CA is replaced in two steps so that the API server never meets a certificate it does not
//! trust: first the new CA joins the bundle (the old one stays until it expires) while the
//! serving certificate is still the old CA's; a later round issues the serving certificate from
//! the new CA. The bundle is written to the webhook configuration before the Secret.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Api;
use kube::api::PostParams;
use tokio::sync::watch;
use tracing::{info, warn};

/// What the certificate manager looks after.
#[derive(Clone, Debug)]
pub struct CertificateSpec {
    /// The namespace of the Secret and Lease (the webhook's own).
    pub namespace: String,
    /// The Secret holding the CA and serving certificate.
    pub secret: String,
    /// The MutatingWebhookConfiguration whose entries get the CA bundle.
    pub webhook_config: String,
    /// The webhook's Service: the certificate is for `<service>.<namespace>.svc`.
    pub service: String,
    /// How long a CA lives.
    pub ca_validity: Duration,
    /// How long a serving certificate lives (at most as long as its CA).
    pub cert_validity: Duration,
    /// How often the Secret is checked.
    pub interval: Duration,
}

impl CertificateSpec {
    fn dns_names(&self) -> Vec<String> {
        vec![
            format!("{}.{}.svc", self.service, self.namespace),
            format!("{}.{}.svc.cluster.local", self.service, self.namespace),
        ]
    }
}

/// Why certificates could not be made or read.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// rcgen failed.
    #[error("cannot make a certificate: {0}")]
    Generate(rcgen::Error),
    /// The Secret holds something that is not a usable certificate.
    #[error("the Secret's {key} is not a usable PEM certificate: {problem}")]
    Invalid {
        /// The Secret's key.
        key: &'static str,
        /// What is wrong.
        problem: String,
    },
    /// The Kubernetes API failed.
    #[error("{0}")]
    Kube(kube::Error),
    /// Writing the served files failed.
    #[error("cannot write {}: {error}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
}

// The causes are in the messages, not in the source chain, so that `{:#}` shows each once.
impl From<rcgen::Error> for Error {
    fn from(cause: rcgen::Error) -> Error {
        Error::Generate(cause)
    }
}

impl From<kube::Error> for Error {
    fn from(cause: kube::Error) -> Error {
        Error::Kube(cause)
    }
}

/// The Secret's contents, PEM text by key.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Material {
    /// `ca.crt`: the CA that signs new serving certificates.
    pub ca_cert: String,
    /// `ca.key`.
    pub ca_key: String,
    /// `tls.crt`: the serving certificate.
    pub tls_cert: String,
    /// `tls.key`.
    pub tls_key: String,
    /// `ca-bundle.crt`: every CA the API server must trust, the current one first.
    pub bundle: String,
}

const KEYS: [&str; 5] = ["ca.crt", "ca.key", "tls.crt", "tls.key", "ca-bundle.crt"];

impl Material {
    fn from_secret(secret: &Secret) -> Option<Material> {
        let data = secret.data.as_ref()?;
        let text = |key: &str| {
            data.get(key)
                .map(|b| String::from_utf8_lossy(&b.0).into_owned())
        };
        Some(Material {
            ca_cert: text("ca.crt")?,
            ca_key: text("ca.key")?,
            tls_cert: text("tls.crt")?,
            tls_key: text("tls.key")?,
            bundle: text("ca-bundle.crt")?,
        })
    }

    fn data(&self) -> BTreeMap<String, ByteString> {
        let values = [
            &self.ca_cert,
            &self.ca_key,
            &self.tls_cert,
            &self.tls_key,
            &self.bundle,
        ];
        KEYS.iter()
            .zip(values)
            .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
            .collect()
    }
}

/// What one certificate says about itself.
#[derive(Debug)]
struct Facts {
    not_before: SystemTime,
    not_after: SystemTime,
    subject: String,
    issuer: String,
    dns_names: Vec<String>,
}

fn facts(key: &'static str, pem: &str) -> Result<Facts, Error> {
    let invalid = |problem: String| Error::Invalid { key, problem };
    let (_, pem) =
        x509_parser::pem::parse_x509_pem(pem.as_bytes()).map_err(|e| invalid(e.to_string()))?;
    let cert = pem.parse_x509().map_err(|e| invalid(e.to_string()))?;
    let time = |t: x509_parser::time::ASN1Time| {
        SystemTime::UNIX_EPOCH + Duration::from_secs(t.timestamp().max(0) as u64)
    };
    let dns_names = cert
        .subject_alternative_name()
        .ok()
        .flatten()
        .map(|san| {
            san.value
                .general_names
                .iter()
                .filter_map(|n| match n {
                    x509_parser::extensions::GeneralName::DNSName(d) => Some(d.to_string()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(Facts {
        not_before: time(cert.validity().not_before),
        not_after: time(cert.validity().not_after),
        subject: cert.subject().to_string(),
        issuer: cert.issuer().to_string(),
        dns_names,
    })
}

/// Whether less than a third of the certificate's life is left.
fn due(facts: &Facts, now: SystemTime) -> bool {
    let life = facts
        .not_after
        .duration_since(facts.not_before)
        .unwrap_or_default();
    let left = facts.not_after.duration_since(now).unwrap_or_default();
    left < life / 3
}

/// How far before now a certificate starts, for API servers whose clocks run behind: a
/// minute, or a tenth of a short lifetime.
fn backdate(validity: Duration) -> Duration {
    (validity / 10).min(Duration::from_secs(60))
}

fn new_ca(now: SystemTime, validity: Duration) -> Result<(String, String), Error> {
    let key = rcgen::KeyPair::generate()?;
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
    ];
    let stamp = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis();
    // A CA's name is unique, so that a serving certificate's issuer tells which CA signed it.
    params.distinguished_name.push(
        rcgen::DnType::CommonName,
        format!("hydrant webhook CA {stamp}"),
    );
    params.not_before = (now - backdate(validity)).into();
    params.not_after = (now + validity).into();
    let cert = params.self_signed(&key)?;
    Ok((cert.pem(), key.serialize_pem()))
}

fn new_serving(
    now: SystemTime,
    settings: &CertificateSpec,
    ca_cert: &str,
    ca_key: &str,
) -> Result<(String, String), Error> {
    let ca_until = facts("ca.crt", ca_cert)?.not_after;
    let signing = rcgen::KeyPair::from_pem(ca_key)?;
    let issuer = rcgen::Issuer::from_ca_cert_pem(ca_cert, signing)?;
    let key = rcgen::KeyPair::generate()?;
    let mut params = rcgen::CertificateParams::new(settings.dns_names())?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, settings.dns_names()[0].clone());
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    params.not_before = (now - backdate(settings.cert_validity)).into();
    params.not_after = (now + settings.cert_validity).min(ca_until).into();
    let cert = params.signed_by(&key, &issuer)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// The PEM certificates of a bundle.
fn split_bundle(bundle: &str) -> Vec<String> {
    bundle
        .split_inclusive("-----END CERTIFICATE-----")
        .map(str::trim)
        .filter(|c| c.starts_with("-----BEGIN CERTIFICATE-----"))
        .map(|c| format!("{c}\n"))
        .collect()
}

/// What the Secret should hold next, or `None` when it is fine as it is. Pure but for key
/// generation: the renewal rules live here.
pub fn next(
    now: SystemTime,
    current: Option<&Material>,
    settings: &CertificateSpec,
) -> Result<Option<Material>, Error> {
    let Some(current) = current else {
        let (ca_cert, ca_key) = new_ca(now, settings.ca_validity)?;
        let (tls_cert, tls_key) = new_serving(now, settings, &ca_cert, &ca_key)?;
        return Ok(Some(Material {
            bundle: ca_cert.clone(),
            ca_cert,
            ca_key,
            tls_cert,
            tls_key,
        }));
    };
    let ca = facts("ca.crt", &current.ca_cert)?;
    // Step one of a CA rotation: a new CA joins the bundle; the old CA's serving certificate
    // stays until the next round.
    if due(&ca, now) {
        let (ca_cert, ca_key) = new_ca(now, settings.ca_validity)?;
        let mut bundle = vec![ca_cert.clone()];
        bundle.extend(live_cas(&current.bundle, now));
        // A serving certificate due as well is renewed from the old CA, still trusted.
        let (tls_cert, tls_key) =
            if facts("tls.crt", &current.tls_cert).is_ok_and(|f| !due(&f, now)) {
                (current.tls_cert.clone(), current.tls_key.clone())
            } else {
                new_serving(now, settings, &current.ca_cert, &current.ca_key)?
            };
        return Ok(Some(Material {
            ca_cert,
            ca_key,
            tls_cert,
            tls_key,
            bundle: bundle.concat(),
        }));
    }
    let serving = facts("tls.crt", &current.tls_cert)?;
    let stale = due(&serving, now)
        || serving.issuer != ca.subject
        || serving.dns_names != settings.dns_names();
    let bundle = live_cas(&current.bundle, now).concat();
    if !stale && bundle == current.bundle {
        return Ok(None);
    }
    let (tls_cert, tls_key) = if stale {
        new_serving(now, settings, &current.ca_cert, &current.ca_key)?
    } else {
        (current.tls_cert.clone(), current.tls_key.clone())
    };
    Ok(Some(Material {
        ca_cert: current.ca_cert.clone(),
        ca_key: current.ca_key.clone(),
        tls_cert,
        tls_key,
        bundle,
    }))
}

/// The bundle's CAs that have not expired.
fn live_cas(bundle: &str, now: SystemTime) -> Vec<String> {
    split_bundle(bundle)
        .into_iter()
        .filter(|pem| facts("ca-bundle.crt", pem).is_ok_and(|f| f.not_after > now))
        .collect()
}

/// One round for the leader: renew what is due, bundle into the webhook configuration first,
/// then the Secret. Returns what the Secret holds after the round.
async fn reconcile(
    secrets: &Api<Secret>,
    configs: &Api<MutatingWebhookConfiguration>,
    settings: &CertificateSpec,
) -> Result<Material, Error> {
    let existing = secrets.get_opt(&settings.secret).await?;
    let current = existing.as_ref().and_then(Material::from_secret);
    let next = next(SystemTime::now(), current.as_ref(), settings)?;
    let bundle = next
        .as_ref()
        .or(current.as_ref())
        .map(|m| m.bundle.clone())
        .unwrap_or_default();
    write_bundle(configs, settings, &bundle).await?;
    let Some(next) = next else {
        return Ok(current.unwrap_or_default());
    };
    match existing {
        Some(mut secret) => {
            secret.data = Some(next.data());
            secrets
                .replace(&settings.secret, &PostParams::default(), &secret)
                .await?;
            info!(secret = %settings.secret, cas = split_bundle(&next.bundle).len(), "webhook certificate renewed");
        }
        None => {
            let secret = Secret {
                metadata: ObjectMeta {
                    name: Some(settings.secret.clone()),
                    namespace: Some(settings.namespace.clone()),
                    ..ObjectMeta::default()
                },
                type_: Some("kubernetes.io/tls".to_owned()),
                data: Some(next.data()),
                ..Secret::default()
            };
            secrets.create(&PostParams::default(), &secret).await?;
            info!(secret = %settings.secret, "webhook CA and certificate created");
        }
    }
    Ok(next)
}

/// Puts the bundle into every webhook entry that does not hold it yet.
async fn write_bundle(
    configs: &Api<MutatingWebhookConfiguration>,
    settings: &CertificateSpec,
    bundle: &str,
) -> Result<(), Error> {
    if bundle.is_empty() {
        return Ok(());
    }
    let Some(mut config) = configs.get_opt(&settings.webhook_config).await? else {
        warn!(config = %settings.webhook_config, "no such MutatingWebhookConfiguration; the CA bundle waits for it");
        return Ok(());
    };
    let wanted = ByteString(bundle.as_bytes().to_vec());
    let mut changed = false;
    for webhook in config.webhooks.iter_mut().flatten() {
        if webhook.client_config.ca_bundle.as_ref() != Some(&wanted) {
            webhook.client_config.ca_bundle = Some(wanted.clone());
            changed = true;
        }
    }
    if changed {
        configs
            .replace(&settings.webhook_config, &PostParams::default(), &config)
            .await?;
        info!(config = %settings.webhook_config, "CA bundle written into every webhook entry");
    }
    Ok(())
}

/// Copies the serving certificate into `cert` and `key` (unchanged files are left alone).
fn copy_to_files(material: &Material, cert: &Path, key: &Path) -> Result<(), Error> {
    // Key first: the reloader refuses a certificate whose key does not match, and the
    // certificate's change is the one that makes it load both.
    for (path, text, mode) in [
        (key, &material.tls_key, 0o600),
        (cert, &material.tls_cert, 0o644),
    ] {
        let fail = |error| Error::Write {
            path: path.to_owned(),
            error,
        };
        std::fs::create_dir_all(crate::files::parent(path)).map_err(fail)?;
        crate::files::write_atomic(path, text.as_bytes(), mode).map_err(fail)?;
    }
    Ok(())
}

/// Keeps the certificate: the leader renews, every replica copies. `ready` turns true once the
/// files hold a certificate.
pub async fn run(
    client: kube::Client,
    settings: CertificateSpec,
    leading: watch::Receiver<bool>,
    cert: PathBuf,
    key: PathBuf,
    ready: watch::Sender<bool>,
) {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &settings.namespace);
    let configs: Api<MutatingWebhookConfiguration> = Api::all(client);
    let mut tick = tokio::time::interval(settings.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut leading = leading;
    let mut leading_open = true;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            changed = leading.changed(), if leading_open => leading_open = changed.is_ok(),
        }
        let is_leader = *leading.borrow();
        // The leader has the Secret's contents from its round; the others read them.
        let material = if is_leader {
            reconcile(&secrets, &configs, &settings).await.map(Some)
        } else {
            secrets
                .get_opt(&settings.secret)
                .await
                .map(|s| s.as_ref().and_then(Material::from_secret))
                .map_err(Error::from)
        };
        match material {
            Ok(Some(material)) if !material.tls_cert.is_empty() => {
                match copy_to_files(&material, &cert, &key) {
                    Ok(()) => {
                        ready.send_replace(true);
                    }
                    Err(e) => warn!(error = %e, "cannot write the certificate files; retrying"),
                }
            }
            Ok(_) => info!(secret = %settings.secret, "waiting for the certificate Secret"),
            Err(e) => warn!(error = %e, "cannot renew or read the webhook certificate; retrying"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(ca: u64, cert: u64) -> CertificateSpec {
        CertificateSpec {
            namespace: "hydrant".to_owned(),
            secret: "tls".to_owned(),
            webhook_config: "hydrant".to_owned(),
            service: "hydrant-webhook".to_owned(),
            ca_validity: Duration::from_secs(ca),
            cert_validity: Duration::from_secs(cert),
            interval: Duration::from_secs(1),
        }
    }

    #[test]
    fn a_new_secret_holds_a_ca_its_bundle_and_a_certificate_for_the_service() {
        let now = SystemTime::now();
        let s = settings(3_600, 600);
        let m = next(now, None, &s).expect("next").expect("material");
        assert_eq!(m.bundle, m.ca_cert);
        let serving = facts("tls.crt", &m.tls_cert).expect("facts");
        assert_eq!(serving.dns_names, s.dns_names());
        assert_eq!(
            serving.issuer,
            facts("ca.crt", &m.ca_cert).expect("ca").subject
        );
        assert_eq!(next(now, Some(&m), &s).expect("next"), None, "nothing due");
    }

    #[test]
    fn a_serving_certificate_is_renewed_at_two_thirds_and_never_outlives_its_ca() {
        let start = SystemTime::now();
        let s = settings(3_600, 600);
        let m = next(start, None, &s).expect("next").expect("material");
        let later = start + Duration::from_secs(420);
        let renewed = next(later, Some(&m), &s).expect("next").expect("renewed");
        assert_eq!(renewed.ca_cert, m.ca_cert);
        assert_ne!(renewed.tls_cert, m.tls_cert);
        let long = settings(3_600, 86_400);
        let m = next(start, None, &long).expect("next").expect("material");
        let ca_end = facts("ca.crt", &m.ca_cert).expect("ca").not_after;
        assert!(facts("tls.crt", &m.tls_cert).expect("tls").not_after <= ca_end);
    }

    #[test]
    fn a_ca_is_replaced_in_two_rounds_and_the_old_one_stays_in_the_bundle_until_it_expires() {
        let start = SystemTime::now();
        let s = settings(600, 300);
        let first = next(start, None, &s).expect("next").expect("material");
        let t1 = start + Duration::from_secs(450);
        let step1 = next(t1, Some(&first), &s).expect("next").expect("new CA");
        assert_ne!(step1.ca_cert, first.ca_cert);
        assert_eq!(
            facts("tls.crt", &step1.tls_cert).expect("tls").issuer,
            facts("ca.crt", &first.ca_cert).expect("ca").subject,
            "the old CA's certificate serves one more round"
        );
        assert_eq!(
            split_bundle(&step1.bundle),
            vec![step1.ca_cert.clone(), first.ca_cert.clone()]
        );
        let step2 = next(t1 + Duration::from_secs(1), Some(&step1), &s)
            .expect("next")
            .expect("new certificate");
        assert_eq!(
            facts("tls.crt", &step2.tls_cert).expect("tls").issuer,
            facts("ca.crt", &step2.ca_cert).expect("ca").subject
        );
        assert_eq!(step2.bundle, step1.bundle, "the old CA is still trusted");
        let t3 = start + Duration::from_secs(700);
        let step3 = next(t3, Some(&step2), &s).expect("next").expect("pruned");
        assert_eq!(
            split_bundle(&step3.bundle),
            vec![step2.ca_cert.clone()],
            "expired CA dropped"
        );
    }
}
