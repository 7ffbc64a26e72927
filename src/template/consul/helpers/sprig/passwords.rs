//! Sprig's password functions (`bcrypt`, `htpasswd`, `derivePassword`) and its AES
//! (`encryptAES`, `decryptAES`), as Masterminds/sprig v3.2.3's `crypto.go` has them: the same
//! output for the same input (derivePassword and decryptAES byte for byte), and Sprig's texts
//! where it returns a failure as the result instead of an error.

use aes::cipher::block_padding::{NoPadding, Pkcs7};
use aes::cipher::{BlockModeDecrypt as _, BlockModeEncrypt as _, KeyIvInit as _};
use base64::Engine as _;
use gotmpl::Value;

use super::super::go::{self, arity, fail, string};
use super::super::{STD, text};
use super::Costs;
use crate::template::consul::values;

/// golang.org/x/crypto/bcrypt's `DefaultCost`, which Sprig uses.
const BCRYPT_COST: u32 = 10;

/// `bcrypt PASSWORD`: a `$2a$10$` hash, as Go's bcrypt writes it. Go refuses a password past
/// 72 bytes (bcrypt reads no further), and Sprig returns that failure as the text.
pub(super) fn bcrypt(costs: &Costs, args: &[Value]) -> gotmpl::Result<Value> {
    arity("bcrypt", args, 1)?;
    let password = go_bytes(string("bcrypt", &args[0])?);
    costs.hash("bcrypt")?;
    Ok(text(&bcrypt_hash(&password)?))
}

fn bcrypt_hash(password: &[u8]) -> gotmpl::Result<String> {
    match bcrypt::non_truncating_hash_with_result(password, BCRYPT_COST) {
        Ok(parts) => Ok(parts.format_for_version(bcrypt::Version::TwoA)),
        Err(bcrypt::BcryptError::Truncation(_)) => Ok(
            "failed to encrypt string with bcrypt: bcrypt: password length exceeds 72 bytes"
                .to_owned(),
        ),
        Err(_) => Err(fail("bcrypt", "the system's random generator failed")),
    }
}

/// `htpasswd USER PASSWORD`: `USER:HASH`. A user name holding `:` cannot be read back from
/// such a line, and Sprig returns `invalid username: USER` as the text.
pub(super) fn htpasswd(costs: &Costs, args: &[Value]) -> gotmpl::Result<Value> {
    arity("htpasswd", args, 2)?;
    let user = string("htpasswd", &args[0])?;
    let password = go_bytes(string("htpasswd", &args[1])?);
    if user.contains(':') {
        return Ok(text(&format!("invalid username: {user}")));
    }
    costs.hash("htpasswd")?;
    Ok(text(&format!("{user}:{}", bcrypt_hash(&password)?)))
}

/// The Master Password algorithm's namespace, which salts both steps.
const MASTER_PASSWORD_SEED: &[u8] = b"com.lyndir.masterpassword";

/// The Master Password algorithm's templates, by password type.
const PASSWORD_TEMPLATES: &[(&str, &[&str])] = &[
    ("maximum", &["anoxxxxxxxxxxxxxxxxx", "axxxxxxxxxxxxxxxxxno"]),
    (
        "long",
        &[
            "CvcvnoCvcvCvcv",
            "CvcvCvcvnoCvcv",
            "CvcvCvcvCvcvno",
            "CvccnoCvcvCvcv",
            "CvccCvcvnoCvcv",
            "CvccCvcvCvcvno",
            "CvcvnoCvccCvcv",
            "CvcvCvccnoCvcv",
            "CvcvCvccCvcvno",
            "CvcvnoCvcvCvcc",
            "CvcvCvcvnoCvcc",
            "CvcvCvcvCvccno",
            "CvccnoCvccCvcv",
            "CvccCvccnoCvcv",
            "CvccCvccCvcvno",
            "CvcvnoCvccCvcc",
            "CvcvCvccnoCvcc",
            "CvcvCvccCvccno",
            "CvccnoCvcvCvcc",
            "CvccCvcvnoCvcc",
            "CvccCvcvCvccno",
        ],
    ),
    ("medium", &["CvcnoCvc", "CvcCvcno"]),
    ("short", &["Cvcn"]),
    ("basic", &["aaanaaan", "aannaaan", "aaannaaa"]),
    ("pin", &["nnnn"]),
];

/// The characters each template letter draws from.
fn template_characters(class: u8) -> &'static [u8] {
    match class {
        b'V' => b"AEIOU",
        b'C' => b"BCDFGHJKLMNPQRSTVWXYZ",
        b'v' => b"aeiou",
        b'c' => b"bcdfghjklmnpqrstvwxyz",
        b'A' => b"AEIOUBCDFGHJKLMNPQRSTVWXYZ",
        b'a' => b"AEIOUaeiouBCDFGHJKLMNPQRSTVWXYZbcdfghjklmnpqrstvwxyz",
        b'n' => b"0123456789",
        b'o' => b"@&%?,=[]_:-+*$#!'^~;()/.",
        _ => b"AEIOUaeiouBCDFGHJKLMNPQRSTVWXYZbcdfghjklmnpqrstvwxyz0123456789!@#$%^&*()",
    }
}

/// `derivePassword COUNTER TYPE PASSWORD USER SITE`: the Master Password algorithm, as Sprig
/// runs it. A key from scrypt (N=32768, r=8, p=2) of the password salted with the user, then an
/// HMAC-SHA256 seed of the site and counter picks a template and its characters.
pub(super) fn derive_password(costs: &Costs, args: &[Value]) -> gotmpl::Result<Value> {
    const F: &str = "derivePassword";
    arity(F, args, 5)?;
    // Go converts the template's integer to the function's uint32.
    let counter = u32::try_from(go::int(F, &args[0])?)
        .map_err(|_| fail(F, "the counter is out of range for a uint32"))?;
    let kind = string(F, &args[1])?;
    let password = go_bytes(string(F, &args[2])?);
    let user = go_bytes(string(F, &args[3])?);
    let site = go_bytes(string(F, &args[4])?);
    let Some((_, templates)) = PASSWORD_TEMPLATES.iter().find(|(k, _)| *k == kind) else {
        return Ok(text(&format!("cannot find password template {kind}")));
    };
    // Go writes the lengths as uint32: a longer input cannot be told from a shorter one.
    let length = |bytes: &[u8]| {
        u32::try_from(bytes.len())
            .map(u32::to_be_bytes)
            .map_err(|_| fail(F, "an input is longer than 4 GiB"))
    };
    costs.hash(F)?;
    let salt = [MASTER_PASSWORD_SEED, &length(&user)?, &user].concat();
    let params = scrypt::Params::new(15, 8, 2).map_err(|_| fail(F, "scrypt's parameters"))?;
    let mut key = [0; 64];
    scrypt::scrypt(&password, &salt, &params, &mut key)
        .map_err(|_| fail(F, "scrypt's output length"))?;
    let message = [
        MASTER_PASSWORD_SEED,
        &length(&site)?,
        &site,
        &counter.to_be_bytes(),
    ]
    .concat();
    let seed = ring::hmac::sign(
        &ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &key),
        &message,
    );
    let seed = seed.as_ref();
    let template = templates[usize::from(seed[0]) % templates.len()].as_bytes();
    let password: String = template
        .iter()
        .zip(&seed[1..])
        .map(|(class, byte)| {
            let characters = template_characters(*class);
            char::from(characters[usize::from(*byte) % characters.len()])
        })
        .collect();
    Ok(text(&password))
}

type Encryptor = cbc::Encryptor<aes::Aes256>;
type Decryptor = cbc::Decryptor<aes::Aes256>;

/// AES's block, and the length of the IV before the ciphertext.
const BLOCK: usize = 16;

/// Sprig's AES key: the password's first 32 bytes, zero-padded (so always AES-256).
fn aes_key(password: &str) -> [u8; 32] {
    let mut key = [0; 32];
    let password = go_bytes(password);
    let n = password.len().min(key.len());
    key[..n].copy_from_slice(&password[..n]);
    key
}

/// `encryptAES PASSWORD PLAINTEXT`: base64 of a random IV and the PKCS#7-padded text in
/// AES-256-CBC; an empty text gives an empty string.
pub(super) fn encrypt_aes(args: &[Value]) -> gotmpl::Result<Value> {
    const F: &str = "encryptAES";
    arity(F, args, 2)?;
    let key = aes_key(string(F, &args[0])?);
    let plaintext = go_bytes(string(F, &args[1])?);
    if plaintext.is_empty() {
        return Ok(text(""));
    }
    let iv: [u8; BLOCK] = super::text::random_bytes(F, BLOCK)?
        .try_into()
        .map_err(|_| fail(F, "the system's random generator failed"))?;
    let ciphertext =
        Encryptor::new(&key.into(), &iv.into()).encrypt_padded_vec::<Pkcs7>(&plaintext);
    Ok(text(&STD.encode([&iv[..], &ciphertext].concat())))
}

/// `decryptAES PASSWORD CIPHERTEXT`: what `encryptAES` encrypted. As in Sprig, the padding is
/// not checked: the wrong password gives other bytes, or an error when the last byte cannot be
/// a padding's length.
pub(super) fn decrypt_aes(args: &[Value]) -> gotmpl::Result<Value> {
    const F: &str = "decryptAES";
    arity(F, args, 2)?;
    let key = aes_key(string(F, &args[0])?);
    let encoded = string(F, &args[1])?;
    if encoded.is_empty() {
        return Ok(text(""));
    }
    // Go's decoder skips line breaks.
    let encoded: String = encoded
        .chars()
        .filter(|c| !matches!(c, '\r' | '\n'))
        .collect();
    let crypt = STD
        .decode(encoded)
        .map_err(|_| fail(F, "the ciphertext is not valid base64"))?;
    let Some((iv, body)) = crypt.split_first_chunk::<BLOCK>() else {
        return Err(fail(F, "the ciphertext is shorter than its 16-byte IV"));
    };
    if body.is_empty() || body.len() % BLOCK != 0 {
        return Err(fail(
            F,
            "the ciphertext after its IV is not a whole number of 16-byte blocks",
        ));
    }
    let mut plain = Decryptor::new(&key.into(), iv.into())
        .decrypt_padded_vec::<NoPadding>(body)
        .map_err(|_| fail(F, "the ciphertext is not a whole number of blocks"))?;
    let padding = usize::from(plain[plain.len() - 1]);
    let Some(kept) = plain.len().checked_sub(padding) else {
        return Err(fail(
            F,
            "the decrypted text does not end in a valid padding (wrong password?)",
        ));
    };
    plain.truncate(kept);
    Ok(values::bytes(&plain))
}

/// A template string's bytes as Go holds them (raw bytes from `base64Decode` included).
fn go_bytes(s: &str) -> Vec<u8> {
    values::unmark_bytes(s.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(text: &str) -> Value {
        Value::String(text.into())
    }

    fn call(f: fn(&[Value]) -> gotmpl::Result<Value>, args: &[Value]) -> String {
        f(args).expect("runs").to_string()
    }

    #[test]
    fn aes_round_trips_and_keeps_sprig_s_layout() {
        for plain in [
            "x",
            "exactly sixteen!",
            "a longer text, more than one block",
        ] {
            let sealed = call(encrypt_aes, &[s("pw"), s(plain)]);
            let raw = STD.decode(&sealed).expect("base64");
            // The IV, then the text padded to the next whole block (a full block when whole).
            assert_eq!(raw.len(), BLOCK + (plain.len() / BLOCK + 1) * BLOCK);
            assert_eq!(call(decrypt_aes, &[s("pw"), s(&sealed)]), plain);
        }
        assert_eq!(call(encrypt_aes, &[s("pw"), s("")]), "");
        assert_eq!(call(decrypt_aes, &[s("pw"), s("")]), "");
    }

    #[test]
    fn aes_key_is_the_password_cut_or_zero_padded_to_32_bytes() {
        let long = "k".repeat(40);
        let sealed = call(encrypt_aes, &[s(&long), s("text")]);
        assert_eq!(call(decrypt_aes, &[s(&"k".repeat(32)), s(&sealed)]), "text");
        assert_eq!(aes_key("ab")[..3], [b'a', b'b', 0]);
    }

    #[test]
    fn decrypt_aes_refuses_what_go_would_panic_on() {
        for bad in ["!!", "AAAA", &STD.encode([0u8; 20]), &STD.encode([0u8; 16])] {
            let e = decrypt_aes(&[s("pw"), s(bad)]).expect_err(bad);
            assert!(e.to_string().contains("decryptAES: "), "{e}");
        }
    }

    #[test]
    fn htpasswd_refuses_a_user_with_a_colon_as_sprig_does() {
        let costs = Costs::default();
        let out = htpasswd(&costs, &[s("a:b"), s("pw")]).expect("runs");
        assert_eq!(out.to_string(), "invalid username: a:b");
    }

    #[test]
    fn bcrypt_writes_2a_hashes_that_verify_and_refuses_long_passwords_as_go() {
        let costs = Costs::default();
        let hash = bcrypt(&costs, &[s("pw")]).expect("runs").to_string();
        assert!(hash.starts_with("$2a$10$") && hash.len() == 60, "{hash}");
        assert!(::bcrypt::verify("pw", &hash).expect("verifies"));
        let long = bcrypt(&costs, &[s(&"x".repeat(73))]).expect("runs");
        assert_eq!(
            long.to_string(),
            "failed to encrypt string with bcrypt: bcrypt: password length exceeds 72 bytes"
        );
    }

    #[test]
    fn a_render_computes_a_bounded_number_of_password_hashes() {
        let costs = Costs::default();
        for _ in 0..super::super::MAX_HASHES_PER_RENDER {
            costs.hash("bcrypt").expect("within the bound");
        }
        let e = costs.hash("bcrypt").expect_err("past the bound");
        assert!(e.to_string().contains("at most 32 password hashes"), "{e}");
        costs.reset();
        costs.hash("bcrypt").expect("a new render starts again");
    }

    #[test]
    fn derive_password_names_an_unknown_type_as_sprig_does() {
        let costs = Costs::default();
        let args = [Value::Int(1), s("nope"), s("pw"), s("user"), s("site")];
        assert_eq!(
            derive_password(&costs, &args).expect("runs").to_string(),
            "cannot find password template nope"
        );
        let args = [Value::Int(-1), s("long"), s("pw"), s("user"), s("site")];
        assert!(derive_password(&costs, &args).is_err());
    }
}
