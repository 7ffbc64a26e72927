//! Sprig's keys and certificates (`genPrivateKey`, `genCA`, `genSelfSignedCert`,
//! `genSignedCert`, their `WithKey` forms and `buildCustomCert`), as Masterminds/sprig v3.2.3's
//! `crypto.go` makes them with Go's crypto/x509: the same PEM block types, key algorithms and
//! sizes, subject, names, validity, key usages and CA flag.
//!
//! A certificate is a map with `.Cert` and `.Key` (Sprig's `certificate` struct). Keys are made
//! by RustCrypto's `rsa` and ring (through rcgen), certificates by rcgen; a key read from PEM
//! goes back out in the block Go's `pemBlockForKey` writes (PKCS#1 for RSA, SEC1 for ECDSA,
//! PKCS#8 for Ed25519).

use std::net::IpAddr;

use base64::Engine as _;
use gotmpl::Value;
use p256::pkcs8::{DecodePrivateKey as _, EncodePrivateKey as _};
use rcgen::{
    BasicConstraints, CertificateParams, CustomExtension, DistinguishedName, DnType, DnValue,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use rsa::pkcs1::{DecodeRsaPrivateKey as _, EncodeRsaPrivateKey as _};

use super::super::go::{self, arity, fail, string};
use super::super::{STD, text};
use super::Costs;
use crate::template::consul::values;

/// The longest a certificate may be valid, in days: a hundred years.
pub(crate) const MAX_DAYS_VALID: i64 = 36_500;

/// A private key: what signs, and its PEM as Go's `pemBlockForKey` writes it.
struct Key {
    pair: KeyPair,
    pem: String,
}

/// PEM as Go's `pem.EncodeToMemory` writes it: 64-column lines ending in `\n`.
fn pem_block(tag: &str, der: &[u8]) -> String {
    pem::encode_config(
        &pem::Pem::new(tag, der),
        pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
    )
}

/// An RSA key of `bits`, as Go's `rsa.GenerateKey` makes it (exponent 65537).
fn rsa_key(function: &str, bits: usize) -> gotmpl::Result<Key> {
    let key = rsa::PrivateKey::new(&mut getrandom::SysRng, bits)
        .map_err(|_| fail(function, "error generating rsa key"))?;
    rsa_pair(function, &key)
}

fn rsa_pair(function: &str, key: &rsa::PrivateKey) -> gotmpl::Result<Key> {
    let encoding = || fail(function, "error encoding the rsa key");
    let pkcs8 = key.to_pkcs8_der().map_err(|_| encoding())?;
    let pkcs1 = key.to_pkcs1_der().map_err(|_| encoding())?;
    let pair = KeyPair::try_from(pkcs8.as_bytes()).map_err(|_| {
        fail(
            function,
            "hydrant signs with RSA keys of 2048 to 8192 bits; this key is not one",
        )
    })?;
    Ok(Key {
        pair,
        pem: pem_block("RSA PRIVATE KEY", pkcs1.as_bytes()),
    })
}

/// An ECDSA P-256 or Ed25519 key, from ring.
fn ring_key(function: &str, algorithm: &'static rcgen::SignatureAlgorithm) -> gotmpl::Result<Key> {
    let pair = KeyPair::generate_for(algorithm)
        .map_err(|_| fail(function, "failed to generate private key"))?;
    key_of_pkcs8(function, pair)
}

/// A key rcgen read from PKCS#8, with Go's PEM for it.
fn key_of_pkcs8(function: &str, pair: KeyPair) -> gotmpl::Result<Key> {
    let der = pair.serialized_der();
    let encoding = |_| fail(function, "error encoding the key");
    let pem = if pair.algorithm() == &rcgen::PKCS_ECDSA_P256_SHA256 {
        let sec1 = p256::SecretKey::from_pkcs8_der(der)
            .map_err(|_| fail(function, "parsing EC private key"))?
            .to_sec1_der()
            .map_err(encoding)?;
        pem_block("EC PRIVATE KEY", &sec1)
    } else if pair.algorithm() == &rcgen::PKCS_ECDSA_P384_SHA384 {
        let sec1 = p384::SecretKey::from_pkcs8_der(der)
            .map_err(|_| fail(function, "parsing EC private key"))?
            .to_sec1_der()
            .map_err(encoding)?;
        pem_block("EC PRIVATE KEY", &sec1)
    } else if pair.algorithm() == &rcgen::PKCS_ED25519 {
        pem_block("PRIVATE KEY", der)
    } else {
        let key = rsa::PrivateKey::from_pkcs8_der(der)
            .map_err(|_| fail(function, "parsing RSA private key"))?;
        return rsa_pair(function, &key);
    };
    Ok(Key { pair, pem })
}

/// Which keys hydrant can sign certificates with, for the errors that refuse another.
const SIGNING_KEYS: &str =
    "hydrant signs with RSA (2048 to 8192 bits), ECDSA P-256 or P-384 and Ed25519 keys";

/// Sprig's `parsePrivateKeyPEM`: PKCS#8, PKCS#1 (RSA) or SEC1 (EC); then a key hydrant can
/// sign with.
fn parse_key(function: &str, pem_text: &str) -> gotmpl::Result<Key> {
    let block = pem::parse(pem_text)
        .map_err(|_| fail(function, "parsing private key: no PEM data in input"))?;
    let der = block.contents();
    match block.tag() {
        "PRIVATE KEY" => {
            let pair = KeyPair::try_from(der).map_err(|_| {
                fail(
                    function,
                    format!("parsing private key: not a PKCS#8 key hydrant can sign with; {SIGNING_KEYS}"),
                )
            })?;
            key_of_pkcs8(function, pair)
        }
        "RSA PRIVATE KEY" => {
            let key = rsa::PrivateKey::from_pkcs1_der(der).map_err(|_| {
                fail(
                    function,
                    "parsing private key: parsing RSA private key from PEM",
                )
            })?;
            rsa_pair(function, &key)
        }
        "EC PRIVATE KEY" => {
            let pkcs8 = if let Ok(key) = p256::SecretKey::from_sec1_der(der) {
                key.to_pkcs8_der()
            } else if let Ok(key) = p384::SecretKey::from_sec1_der(der) {
                key.to_pkcs8_der()
            } else {
                return Err(fail(
                    function,
                    format!(
                        "parsing private key: not an EC key hydrant can sign with; {SIGNING_KEYS}"
                    ),
                ));
            }
            .map_err(|_| fail(function, "error encoding the key"))?;
            let pair = KeyPair::try_from(pkcs8.as_bytes())
                .map_err(|_| fail(function, "parsing EC private key"))?;
            key_of_pkcs8(function, pair)
        }
        tag if tag.ends_with(" PRIVATE KEY") => Err(fail(
            function,
            format!("a {tag} cannot sign a certificate; {SIGNING_KEYS}"),
        )),
        tag => Err(fail(
            function,
            format!("parsing private key: no private key data in PEM block of type {tag}"),
        )),
    }
}

/// `genPrivateKey TYPE`: an RSA key of 4096 bits (`""` or `"rsa"`), an ECDSA P-256 key
/// (`"ecdsa"`) or an Ed25519 key (`"ed25519"`), in PEM; another type gives Sprig's
/// `Unknown type TYPE`. DSA, which Sprig also makes, is refused: no maintained Rust crate
/// hydrant trusts makes its keys (see the README).
pub(super) fn gen_private_key(costs: &Costs, args: &[Value]) -> gotmpl::Result<Value> {
    const F: &str = "genPrivateKey";
    arity(F, args, 1)?;
    let kind = string(F, &args[0])?;
    let key = match kind {
        "" | "rsa" => {
            costs.key(F)?;
            rsa_key(F, 4096)?
        }
        "ecdsa" => ring_key(F, &rcgen::PKCS_ECDSA_P256_SHA256)?,
        "ed25519" => ring_key(F, &rcgen::PKCS_ED25519)?,
        "dsa" => {
            return Err(fail(
                F,
                "hydrant does not make DSA keys (a deprecated algorithm no certificate \
                 function can sign with); use \"ecdsa\", \"ed25519\" or \"rsa\"",
            ));
        }
        other => return Ok(text(&format!("Unknown type {other}"))),
    };
    Ok(text(&key.pem))
}

/// What a certificate says of its subject.
struct Subject {
    cn: String,
    ips: Vec<IpAddr>,
    dns: Vec<String>,
    days: i64,
}

impl Subject {
    /// From the arguments `CN [IPS DNS] DAYS`.
    fn of(
        function: &str,
        cn: &Value,
        names: Option<(&Value, &Value)>,
        days: &Value,
    ) -> gotmpl::Result<Subject> {
        let cn = string(function, cn)?.to_owned();
        let (ips, dns) = match names {
            Some((ips, dns)) => (ip_list(function, ips)?, dns_list(function, dns)?),
            None => (Vec::new(), Vec::new()),
        };
        let days = go::int(function, days)?;
        if !(1..=MAX_DAYS_VALID).contains(&days) {
            return Err(fail(
                function,
                format!("a certificate is valid for 1 to {MAX_DAYS_VALID} days (daysValid)"),
            ));
        }
        Ok(Subject { cn, ips, dns, days })
    }
}

/// The strings of a list argument (Go's `[]interface{}`; nil is empty).
fn string_items<'a>(function: &str, value: &'a Value, what: &str) -> gotmpl::Result<Vec<&'a str>> {
    let items = go::list_arg(function, value, "[]interface {}")?;
    items
        .iter()
        .map(|item| match item {
            Value::String(s) => Ok(&**s),
            _ => Err(fail(
                function,
                format!("error parsing {what}: an item is not a string"),
            )),
        })
        .collect()
}

/// Go's `net.ParseIP` of each, an IPv4 address mapped into IPv6 written as IPv4 (as x509 does).
fn ip_list(function: &str, value: &Value) -> gotmpl::Result<Vec<IpAddr>> {
    string_items(function, value, "ip")?
        .into_iter()
        .map(|s| {
            s.parse::<IpAddr>()
                .map(|ip| ip.to_canonical())
                .map_err(|_| fail(function, "error parsing ip: an item is not an IP address"))
        })
        .collect()
}

fn dns_list(function: &str, value: &Value) -> gotmpl::Result<Vec<String>> {
    Ok(string_items(function, value, "alternate dns name")?
        .into_iter()
        .map(str::to_owned)
        .collect())
}

/// Sprig's `getBaseCertTemplate` and Go's `CreateCertificate`: a random 128-bit serial, the
/// CN alone as subject, DNS names then IPs as SANs, valid from now for the days asked, for
/// digital signatures and key encipherment, server and client auth, basic constraints always
/// (a CA also signs certificates and has a subject key identifier; a certificate signed by
/// another names its key identifier).
fn build(
    function: &str,
    subject: &Subject,
    ca: bool,
    key: &Key,
    issuer: Option<(&[u8], &Key)>,
) -> gotmpl::Result<Value> {
    let mut params = CertificateParams::default();
    let mut name = DistinguishedName::new();
    if !subject.cn.is_empty() {
        name.push(DnType::CommonName, dn_value(&subject.cn));
    }
    params.distinguished_name = name;
    let serial = super::text::random_bytes(function, 16)?;
    params.serial_number = Some(SerialNumber::from_slice(&serial));
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now;
    params.not_after = now + time::Duration::days(subject.days);
    let mut sans = Vec::with_capacity(subject.dns.len() + subject.ips.len());
    for dns in &subject.dns {
        let name = dns.as_str().try_into().map_err(|_| {
            fail(
                function,
                "error creating certificate: x509: a DNS name cannot be encoded as an IA5String",
            )
        })?;
        sans.push(SanType::DnsName(name));
    }
    sans.extend(subject.ips.iter().copied().map(SanType::IpAddress));
    params.subject_alt_names = sans;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    if ca {
        params.key_usages.push(KeyUsagePurpose::KeyCertSign);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    } else {
        // Go writes basic constraints (not a CA) and no key identifier; rcgen's `ExplicitNoCa`
        // would add a subject key identifier.
        let mut constraints = CustomExtension::from_oid_content(&[2, 5, 29, 19], vec![0x30, 0x00]);
        constraints.set_criticality(true);
        params.custom_extensions.push(constraints);
    }
    let failed = |_| fail(function, "error creating certificate");
    let cert = match issuer {
        None => params.self_signed(&key.pair).map_err(failed)?,
        Some((ca_der, ca_key)) => {
            let (_, parsed) = x509_parser::parse_x509_certificate(ca_der)
                .map_err(|_| fail(function, "error parsing certificate"))?;
            if parsed.public_key().subject_public_key.data.as_ref() != ca_key.pair.public_key_raw()
            {
                return Err(fail(
                    function,
                    "error creating certificate: x509: provided PrivateKey doesn't match \
                     parent's PublicKey",
                ));
            }
            // Go names the issuer's key when it has an identifier and is not the subject.
            params.use_authority_key_identifier_extension = parsed
                .iter_extensions()
                .any(|e| e.oid == x509_parser::oid_registry::OID_X509_EXT_SUBJECT_KEY_IDENTIFIER);
            let issuer = Issuer::from_ca_cert_der(&ca_der.into(), &ca_key.pair)
                .map_err(|_| fail(function, "error parsing certificate"))?;
            params.signed_by(&key.pair, &issuer).map_err(failed)?
        }
    };
    Ok(pair(&pem_block("CERTIFICATE", cert.der()), &key.pem))
}

/// Go's encoding of a name's string: PrintableString where it may be one, else UTF8String.
fn dn_value(s: &str) -> DnValue {
    let printable = s
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b" '()+,-./:=?*&".contains(&b));
    match (printable, rcgen::string::PrintableString::try_from(s)) {
        (true, Ok(p)) => DnValue::PrintableString(p),
        _ => DnValue::Utf8String(s.to_owned()),
    }
}

/// Sprig's `certificate`: `.Cert` and `.Key`.
fn pair(cert: &str, key: &str) -> Value {
    values::map([("Cert", text(cert)), ("Key", text(key))])
}

/// A `certificate` argument: its certificate's DER and its key.
fn ca_of(function: &str, value: &Value) -> gotmpl::Result<(Vec<u8>, Key)> {
    let field = |name: &str| match value {
        Value::Map(map) => map.get(name).and_then(Value::as_str).map(str::to_owned),
        _ => None,
    };
    let (Some(cert), Some(key)) = (field("Cert"), field("Key")) else {
        return Err(fail(
            function,
            "the CA must be a certificate from genCA or buildCustomCert (with .Cert and .Key)",
        ));
    };
    let block = pem::parse(&cert).map_err(|_| fail(function, "unable to decode certificate"))?;
    Ok((block.into_contents(), parse_key(function, &key)?))
}

/// `genCA CN DAYS` and `genCAWithKey CN DAYS KEY`: a self-signed CA (a new RSA key of 2048
/// bits without KEY).
pub(super) fn gen_ca(costs: &Costs, args: &[Value], with_key: bool) -> gotmpl::Result<Value> {
    let function = if with_key { "genCAWithKey" } else { "genCA" };
    arity(function, args, if with_key { 3 } else { 2 })?;
    let subject = Subject::of(function, &args[0], None, &args[1])?;
    let key = subject_key(costs, function, args.get(2))?;
    build(function, &subject, true, &key, None)
}

/// `genSelfSignedCert CN IPS DNS DAYS` and `genSelfSignedCertWithKey CN IPS DNS DAYS KEY`.
pub(super) fn gen_self_signed(
    costs: &Costs,
    args: &[Value],
    with_key: bool,
) -> gotmpl::Result<Value> {
    let function = if with_key {
        "genSelfSignedCertWithKey"
    } else {
        "genSelfSignedCert"
    };
    arity(function, args, if with_key { 5 } else { 4 })?;
    let subject = Subject::of(function, &args[0], Some((&args[1], &args[2])), &args[3])?;
    let key = subject_key(costs, function, args.get(4))?;
    build(function, &subject, false, &key, None)
}

/// `genSignedCert CN IPS DNS DAYS CA` and `genSignedCertWithKey CN IPS DNS DAYS CA KEY`.
pub(super) fn gen_signed(costs: &Costs, args: &[Value], with_key: bool) -> gotmpl::Result<Value> {
    let function = if with_key {
        "genSignedCertWithKey"
    } else {
        "genSignedCert"
    };
    arity(function, args, if with_key { 6 } else { 5 })?;
    let subject = Subject::of(function, &args[0], Some((&args[1], &args[2])), &args[3])?;
    let (ca_der, ca_key) = ca_of(function, &args[4])?;
    let key = subject_key(costs, function, args.get(5))?;
    build(function, &subject, false, &key, Some((&ca_der, &ca_key)))
}

/// The key given in PEM, or a new RSA key of 2048 bits.
fn subject_key(costs: &Costs, function: &str, given: Option<&Value>) -> gotmpl::Result<Key> {
    match given {
        Some(pem) => parse_key(function, string(function, pem)?),
        None => {
            costs.key(function)?;
            rsa_key(function, 2048)
        }
    }
}

/// `buildCustomCert CERT KEY`: a `certificate` from a base64 PEM certificate and key, both
/// checked as Sprig checks them.
pub(super) fn build_custom_cert(args: &[Value]) -> gotmpl::Result<Value> {
    const F: &str = "buildCustomCert";
    arity(F, args, 2)?;
    let decode = |value: &Value, what: &str| -> gotmpl::Result<String> {
        let encoded: String = string(F, value)?
            .chars()
            .filter(|c| !matches!(c, '\r' | '\n'))
            .collect();
        STD.decode(encoded)
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .ok_or_else(|| fail(F, format!("unable to decode base64 {what}")))
    };
    let cert = decode(&args[0], "certificate")?;
    let key = decode(&args[1], "private key")?;
    let block = pem::parse(&cert).map_err(|_| fail(F, "unable to decode certificate"))?;
    x509_parser::parse_x509_certificate(block.contents()).map_err(|_| {
        fail(
            F,
            "error parsing certificate: decodedCert.Bytes: not a valid X.509 certificate",
        )
    })?;
    check_key(&key)?;
    Ok(pair(&cert, &key))
}

/// Sprig's `parsePrivateKeyPEM` as `buildCustomCert` uses it: the key must parse, whether or
/// not hydrant could sign with it.
fn check_key(pem_text: &str) -> gotmpl::Result<()> {
    const F: &str = "buildCustomCert";
    let bad = |what: &str| fail(F, format!("error parsing private key: {what}"));
    let block = pem::parse(pem_text).map_err(|_| bad("no PEM data in input"))?;
    let der = block.contents();
    let parsed = match block.tag() {
        "PRIVATE KEY" => rsa::pkcs8::PrivateKeyInfoRef::try_from(der).is_ok(),
        "RSA PRIVATE KEY" => rsa::PrivateKey::from_pkcs1_der(der).is_ok(),
        "EC PRIVATE KEY" => {
            p256::SecretKey::from_sec1_der(der).is_ok()
                || p384::SecretKey::from_sec1_der(der).is_ok()
        }
        // Go reads DSA keys (it cannot sign certificates with them).
        "DSA PRIVATE KEY" => true,
        tag if tag.ends_with(" PRIVATE KEY") => {
            return Err(bad(&format!("invalid private key type {tag}")));
        }
        tag => {
            return Err(bad(&format!(
                "no private key data in PEM block of type {tag}"
            )));
        }
    };
    if parsed {
        Ok(())
    } else {
        Err(bad(&format!("the {} does not parse", block.tag())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(text: &str) -> Value {
        Value::String(text.into())
    }

    fn list(items: &[&str]) -> Value {
        Value::List(items.iter().map(|i| s(i)).collect())
    }

    fn field(value: &Value, name: &str) -> String {
        let Value::Map(map) = value else {
            panic!("a certificate is a map")
        };
        map[name].to_string()
    }

    #[test]
    fn a_certificate_s_days_and_names_are_checked_without_quoting_them() {
        let costs = Costs::default();
        let key = gen_private_key(&costs, &[s("ecdsa")]).expect("a key");
        for days in [0, -1, MAX_DAYS_VALID + 1] {
            let args = [
                s("cn"),
                Value::Nil,
                Value::Nil,
                Value::Int(days),
                key.clone(),
            ];
            let e = gen_self_signed(&costs, &args, true).expect_err("out of bounds");
            assert!(e.to_string().contains("1 to 36500 days"), "{e}");
        }
        let args = [
            s("cn"),
            list(&["s3cr3t"]),
            Value::Nil,
            Value::Int(1),
            key.clone(),
        ];
        let e = gen_self_signed(&costs, &args, true).expect_err("not an IP");
        assert!(!e.to_string().contains("s3cr3t"), "{e}");
        let args = [s("cn"), Value::Nil, list(&["s3cr3t-é"]), Value::Int(1), key];
        let e = gen_self_signed(&costs, &args, true).expect_err("not IA5");
        assert!(!e.to_string().contains("s3cr3t"), "{e}");
    }

    #[test]
    fn gen_private_key_refuses_dsa_at_render_and_names_unknown_types_as_sprig() {
        let costs = Costs::default();
        let e = gen_private_key(&costs, &[s("dsa")]).expect_err("no DSA");
        assert!(e.to_string().contains("does not make DSA keys"), "{e}");
        let unknown = gen_private_key(&costs, &[s("rsa3")]).expect("Sprig's text");
        assert_eq!(unknown.to_string(), "Unknown type rsa3");
    }

    #[test]
    fn keys_go_back_out_in_go_s_pem_blocks() {
        let costs = Costs::default();
        let ec = gen_private_key(&costs, &[s("ecdsa")])
            .expect("a key")
            .to_string();
        assert!(ec.starts_with("-----BEGIN EC PRIVATE KEY-----\n"), "{ec}");
        let ed = gen_private_key(&costs, &[s("ed25519")])
            .expect("a key")
            .to_string();
        assert!(ed.starts_with("-----BEGIN PRIVATE KEY-----\n"), "{ed}");
        // An EC key given as PKCS#8 comes back as SEC1, as Go's pemBlockForKey writes it.
        let pkcs8 = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("a key");
        let args = [s("cn"), Value::Int(1), s(&pkcs8.serialize_pem())];
        let ca = gen_ca(&costs, &args, true).expect("a CA");
        assert!(field(&ca, "Key").starts_with("-----BEGIN EC PRIVATE KEY-----\n"));
        assert!(field(&ca, "Cert").starts_with("-----BEGIN CERTIFICATE-----\n"));
    }

    #[test]
    fn a_ca_whose_key_is_not_its_own_cannot_sign() {
        let costs = Costs::default();
        let key = |_| gen_private_key(&costs, &[s("ecdsa")]).expect("a key");
        let ca = gen_ca(&costs, &[s("ca"), Value::Int(1), key(0)], true).expect("a CA");
        let other = key(1);
        let forged = values::map([("Cert", s(&field(&ca, "Cert"))), ("Key", other)]);
        let args = [
            s("leaf"),
            Value::Nil,
            Value::Nil,
            Value::Int(1),
            forged,
            key(2),
        ];
        let e = gen_signed(&costs, &args, true).expect_err("refused");
        assert!(
            e.to_string().contains("doesn't match parent's PublicKey"),
            "{e}"
        );
    }

    #[test]
    fn a_render_makes_a_bounded_number_of_rsa_keys() {
        let costs = Costs::default();
        for _ in 0..super::super::MAX_KEYS_PER_RENDER {
            costs.key("genCA").expect("within the bound");
        }
        let e = gen_ca(&costs, &[s("ca"), Value::Int(1)], false).expect_err("past it");
        assert!(e.to_string().contains("at most 8 RSA keys"), "{e}");
    }
}
