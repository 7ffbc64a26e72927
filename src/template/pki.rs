//! consul-template's `pkiCert`: a certificate issued by Vault's PKI engine, kept in the
//! template's destination file and taken from there while it is good, so that an init container
//! and its sidecar (or a restarted agent) share one certificate instead of each issuing one.
//!
//! The PEM blocks are split as consul-template splits them (`dependency/vault_pki.go`): the
//! private key, the first CA certificate, every CA certificate once (the chain), and the leaf.

use std::io::Read as _;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Value as Json, json};

use crate::vault;

/// The part of a certificate's life after which it is issued again (Vault Agent's
/// `template_config.lease_renewal_threshold`, 0.9 by default).
pub const RENEWAL_THRESHOLD: f64 = 0.9;

/// The largest destination file read back (a certificate, its key and a long chain fit many
/// times over).
const MAX_DESTINATION_BYTES: u64 = 1 << 20;

/// The PEM blocks of a certificate response, as consul-template's `PemEncoded`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct PemEncoded {
    /// The leaf certificate.
    pub cert: String,
    /// The private key.
    pub key: String,
    /// The first CA certificate.
    pub ca: String,
    /// Every CA certificate, once each, in the order met.
    pub ca_chain: Vec<String>,
}

impl std::fmt::Debug for PemEncoded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PemEncoded")
            .field("key", &"<redacted>")
            .field("ca_chain", &self.ca_chain.len())
            .finish_non_exhaustive()
    }
}

impl PemEncoded {
    /// Splits the PEM blocks in `text`. Text between blocks is ignored; a block that is neither
    /// a private key nor a certificate makes the whole text unusable.
    pub fn parse(text: &str) -> Option<(PemEncoded, Option<Validity>)> {
        let mut pems = PemEncoded::default();
        let mut validity = None;
        for pem in x509_parser::pem::Pem::iter_from_buffer(text.as_bytes()) {
            let pem = pem.ok()?;
            let block = encode(&pem.label, &pem.contents);
            if pem.label.ends_with("PRIVATE KEY") {
                pems.key = block;
                continue;
            }
            let cert = pem.parse_x509().ok()?;
            if cert.is_ca() {
                if pems.ca.is_empty() {
                    pems.ca = block.clone();
                }
                if !pems.ca_chain.contains(&block) {
                    pems.ca_chain.push(block);
                }
            } else {
                let v = cert.validity();
                validity = Some(Validity {
                    not_before: system_time(v.not_before.timestamp()),
                    not_after: system_time(v.not_after.timestamp()),
                });
                pems.cert = block;
            }
        }
        Some((pems, validity))
    }

    /// The blocks of a response's data: every string field and the `ca_chain` list, each
    /// followed by a newline, as consul-template concatenates them before splitting.
    pub fn of_data(data: &Json) -> PemEncoded {
        let mut text = String::new();
        if let Some(fields) = data.as_object() {
            // Go visits the map in random order; the leaf, the key and the CA come out the same
            // in any order, and so does the chain when it is `issuing_ca` then `ca_chain`.
            for key in ["certificate", "private_key", "issuing_ca"] {
                if let Some(value) = fields.get(key).and_then(Json::as_str) {
                    text.push_str(value);
                    text.push('\n');
                }
            }
            for item in fields
                .get("ca_chain")
                .and_then(Json::as_array)
                .into_iter()
                .flatten()
            {
                if let Some(item) = item.as_str() {
                    text.push_str(item);
                    text.push('\n');
                }
            }
        }
        PemEncoded::parse(&text).map(|(p, _)| p).unwrap_or_default()
    }
}

/// When a certificate is valid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Validity {
    /// Its start.
    pub not_before: SystemTime,
    /// Its end.
    pub not_after: SystemTime,
}

impl Validity {
    /// Whether a certificate with this validity is still used at `now`: before
    /// [`RENEWAL_THRESHOLD`] of its life has passed.
    pub fn good_at(&self, now: SystemTime) -> bool {
        let life = self
            .not_after
            .duration_since(self.not_before)
            .unwrap_or_default();
        let renew_at = self.not_before + life.mul_f64(RENEWAL_THRESHOLD);
        now < renew_at && now < self.not_after
    }
}

/// The certificate in `destination` as a response, when the file holds one that is still good.
pub fn reusable(destination: &Path) -> Option<vault::Secret> {
    let file = std::fs::File::open(destination).ok()?;
    let mut text = String::new();
    file.take(MAX_DESTINATION_BYTES)
        .read_to_string(&mut text)
        .ok()?;
    let (pems, validity) = PemEncoded::parse(&text)?;
    if pems.cert.is_empty() || !validity?.good_at(SystemTime::now()) {
        return None;
    }
    Some(vault::Secret {
        data: json!({
            "certificate": pems.cert,
            "private_key": pems.key,
            "issuing_ca": pems.ca,
            "ca_chain": pems.ca_chain,
        }),
        ..vault::Secret::default()
    })
}

/// A PEM block as Go's `pem.EncodeToMemory` writes it: 64 columns of base64.
fn encode(label: &str, der: &[u8]) -> String {
    let body = BASE64.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in body.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

fn system_time(unix: i64) -> SystemTime {
    match u64::try_from(unix) {
        Ok(seconds) => UNIX_EPOCH + Duration::from_secs(seconds),
        Err(_) => UNIX_EPOCH,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn issued(days: u64) -> (String, String, String) {
        let now = SystemTime::now();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca_key = rcgen::KeyPair::generate().expect("key");
        let ca = ca_params.self_signed(&ca_key).expect("ca");
        let mut params = rcgen::CertificateParams::new(vec!["app.example".to_owned()]).expect("p");
        params.not_before = (now - Duration::from_secs(60)).into();
        params.not_after = (now + Duration::from_secs(days * 86_400)).into();
        let key = rcgen::KeyPair::generate().expect("key");
        let issuer = rcgen::Issuer::from_ca_cert_pem(&ca.pem(), ca_key).expect("issuer");
        let leaf = params.signed_by(&key, &issuer).expect("leaf");
        (leaf.pem(), key.serialize_pem(), ca.pem())
    }

    #[test]
    fn blocks_are_split_as_consul_template_splits_them() {
        let (cert, key, ca) = issued(30);
        let text = format!("junk\n{cert}\n{ca}{key}serial 1:2:3\n{ca}");
        let (pems, validity) = PemEncoded::parse(&text).expect("parses");
        assert_eq!(pems.cert, cert);
        assert_eq!(pems.key, key);
        assert_eq!(pems.ca, ca);
        assert_eq!(pems.ca_chain, std::slice::from_ref(&ca));
        assert!(validity.expect("leaf").good_at(SystemTime::now()));
    }

    #[test]
    fn a_certificate_past_nine_tenths_of_its_life_is_not_reused() {
        let start = UNIX_EPOCH + Duration::from_secs(1_000_000);
        let validity = Validity {
            not_before: start,
            not_after: start + Duration::from_secs(1000),
        };
        assert!(validity.good_at(start + Duration::from_secs(899)));
        assert!(!validity.good_at(start + Duration::from_secs(900)));
        assert!(!validity.good_at(start + Duration::from_secs(2000)));
    }

    #[test]
    fn a_destination_with_a_good_certificate_is_reused_and_one_without_is_not() {
        let dir = tempfile::tempdir().expect("dir");
        let file = dir.path().join("tls.pem");
        assert!(reusable(&file).is_none(), "no file");
        std::fs::write(&file, "not a certificate").expect("write");
        assert!(reusable(&file).is_none(), "no certificate");
        let (cert, key, ca) = issued(30);
        std::fs::write(&file, format!("{cert}{key}{ca}")).expect("write");
        let secret = reusable(&file).expect("reused");
        assert_eq!(secret.data["certificate"], cert.as_str());
        assert_eq!(secret.data["private_key"], key.as_str());
        assert_eq!(PemEncoded::of_data(&secret.data).ca, ca);
    }
}
